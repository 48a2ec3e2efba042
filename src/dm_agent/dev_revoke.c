/* dev_revoke: the kept revocation list and the decisions it drives (see dev_revoke.h). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "opendm/file.h"

#include "dev_revoke.h"

int dev_revocations_load(const struct dev_config *cfg, EVP_PKEY *operator_pub,
                         struct revocation_list *rl, char *err, size_t errlen)
{
	char path[PATH_MAX], *text = NULL;
	const char *code = NULL;
	struct stat sb;
	size_t len = 0;
	int rc = -1;

	memset(rl, 0, sizeof(*rl));
	if (dev_path(path, sizeof(path), cfg, DEV_REVOCATIONS_FILE) == -1) {
		snprintf(err, errlen, "state_dir too long");
		return -1;
	}
	if (lstat(path, &sb) == -1 && errno == ENOENT)
		return 0;
	/* Without the key nothing can be trusted, the kept list included. */
	if (operator_pub == NULL)
		return 0;
	if ((text = file_read(path, DEV_REVOCATIONS_MAX, &len, err, errlen)) == NULL)
		return -1;
	if (revocation_verify(text, operator_pub, rl, &code, err, errlen) == -1) {
		memset(rl, 0, sizeof(*rl));
		goto out;
	}
	rc = 1;
out:
	free(text);
	return rc;
}

int dev_revocations_update(const struct dev_config *cfg, EVP_PKEY *operator_pub,
                           struct revocation_list *rl, const char *jws, const char **code,
                           char *err, size_t errlen)
{
	struct revocation_list next;
	char path[PATH_MAX];

	memset(&next, 0, sizeof(next));
	*code = "bad_signature";
	if (operator_pub == NULL) {
		snprintf(err, errlen, "no operator_pubkey configured to verify it with");
		return -1;
	}
	if (jws == NULL || strlen(jws) > DEV_REVOCATIONS_MAX) {
		*code = "bad_claims";
		snprintf(err, errlen, "not a revocation list of at most %d bytes",
		         DEV_REVOCATIONS_MAX);
		return -1;
	}
	if (revocation_verify(jws, operator_pub, &next, code, err, errlen) == -1)
		return -1;
	/* Never back: an old list replayed would bring revoked clients back to life. */
	if (next.serial <= rl->serial) {
		revocation_free(&next);
		return 0;
	}
	*code = "internal_error";
	if (dev_path(path, sizeof(path), cfg, DEV_REVOCATIONS_FILE) == -1) {
		snprintf(err, errlen, "state_dir too long");
		revocation_free(&next);
		return -1;
	}
	/* Enforced even if it cannot be kept: the disk failing must not keep a client alive. */
	if (file_write_atomic(path, jws, strlen(jws), 0600, err, errlen) == -1)
		log_warn("revocation list serial %lld enforced but not kept: %s",
		         (long long)next.serial, err);
	revocation_free(rl);
	*rl = next;
	*code = NULL;
	return 1;
}

int dev_cdcs_key_sha256(const struct dev_cdcs_keys *k, const char *vendor, char out[65])
{
	EVP_PKEY *key = cdcsimg_keyring_find(&k->vendors, vendor);

	out[0] = '\0';
	return key != NULL ? revocation_key_sha256(key, out) : -1;
}

const char *dev_revoked(const struct revocation_list *rl, const char *vendor, const char *name,
                        int64_t version_number, const char *key_sha256)
{
	if (rl == NULL || vendor == NULL || name == NULL)
		return NULL;
	if (revocation_version_revoked(rl, vendor, name, version_number))
		return "version";
	if (key_sha256 != NULL && key_sha256[0] != '\0' &&
	    revocation_key_revoked(rl, vendor, key_sha256))
		return "vendor_key";
	return NULL;
}

const char *dev_revoked_installed(const struct revocation_list *rl, const struct dev_cdcs_keys *k,
                                  const json_t *state)
{
	const char *vendor = json_string_value(json_object_get(state, "vendor"));
	const char *name = json_string_value(json_object_get(state, "name"));
	const char *key = json_string_value(json_object_get(state, "key_sha256"));
	char now[65];

	if (key == NULL && k != NULL && vendor != NULL && dev_cdcs_key_sha256(k, vendor, now) == 0)
		key = now;
	return dev_revoked(rl, vendor, name,
	                   json_integer_value(json_object_get(state, "version_number")), key);
}

unsigned dev_kind_bit(const char *kind)
{
	if (kind != NULL && strcmp(kind, "ca") == 0)
		return DEV_KIND_CA;
	if (kind != NULL && strcmp(kind, "drm") == 0)
		return DEV_KIND_DRM;
	return DEV_KIND_UNKNOWN;
}

int dev_removal_postponed(const char *kind, unsigned failed)
{
	unsigned bit = dev_kind_bit(kind);

	if (failed == 0)
		return 0;
	/* What failed might be this one's replacement: keep the old one working. */
	if ((failed & DEV_KIND_UNKNOWN) != 0 || bit == DEV_KIND_UNKNOWN)
		return 1;
	return (failed & bit) != 0;
}
