/* dev_manifest: the signed agent manifest (docs/protocol.md, "Agent manifest"). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/file.h"
#include "opendm/jose.h"

#include "dev.h"

static int dev_hex64(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != 64)
		return 0;
	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Copy the claims we use, checking each type and bound. */
static int dev_manifest_claims(json_t *c, struct dev_manifest *m, char *err, size_t errlen)
{
	const char *platform = json_string_value(json_object_get(c, "platform"));
	const char *version = json_string_value(json_object_get(c, "version"));
	const char *sha = json_string_value(json_object_get(c, "sha256"));
	const char *sub = json_string_value(json_object_get(c, "sub"));
	json_t *vn = json_object_get(c, "version_number"), *size = json_object_get(c, "size");

	memset(m, 0, sizeof(*m));
	if (sub == NULL || strcmp(sub, "dm-agent") != 0 || platform == NULL ||
	    strlen(platform) >= sizeof(m->platform) || version == NULL ||
	    strlen(version) >= sizeof(m->version) || !dev_hex64(sha) || !json_is_integer(vn) ||
	    json_integer_value(vn) < 1 || !json_is_integer(size) || json_integer_value(size) < 1 ||
	    json_integer_value(size) > DEV_MAX_PACKAGE) {
		snprintf(err, errlen, "manifest claims missing or out of range");
		return -1;
	}
	snprintf(m->platform, sizeof(m->platform), "%s", platform);
	snprintf(m->version, sizeof(m->version), "%s", version);
	snprintf(m->sha256, sizeof(m->sha256), "%s", sha);
	m->version_number = json_integer_value(vn);
	m->size = json_integer_value(size);
	return 0;
}

int dev_manifest_verify(EVP_PKEY *pub, const char *jws, const char *platform, int64_t installed,
                        struct dev_manifest *m, const char **code, char *err, size_t errlen)
{
	struct jose_expect ex = {DEV_MANIFEST_ISS, DEV_APP_AUD, "dm-agent", 0, NULL, NULL};
	const char *jcode = NULL;
	char e[256];
	json_t *c;

	*code = "bad_signature";
	if (jws == NULL || (c = jose_verify(pub, jws, &ex, &jcode, e, sizeof(e))) == NULL) {
		snprintf(err, errlen, "manifest: %s", jws == NULL ? "missing" : e);
		return -1;
	}
	if (dev_manifest_claims(c, m, err, errlen) == -1) {
		json_decref(c);
		return -1;
	}
	json_decref(c);
	if (strcmp(m->platform, platform) != 0) {
		*code = "wrong_platform";
		snprintf(err, errlen, "manifest is for %s, this device is %s", m->platform,
		         platform);
		return -1;
	}
	if (m->version_number < installed) {
		*code = "rollback";
		snprintf(err, errlen, "manifest version %lld is older than installed %lld",
		         (long long)m->version_number, (long long)installed);
		return -1;
	}
	*code = NULL;
	return 0;
}

int dev_manifest_installed(const struct dev_config *cfg, struct dev_manifest *m)
{
	char path[PATH_MAX], err[256], *text = NULL, *dot1, *dot2;
	unsigned char *payload = NULL;
	json_t *c = NULL;
	size_t len, plen;
	int rc = -1;

	/* Our own file, written only after full verification: read, not re-verified (an
	 * expired manifest must still count as installed, or rollback would be allowed). */
	if (dev_path(path, sizeof(path), cfg, "agent/manifest.jws") == -1 ||
	    (text = file_read(path, JOSE_MAX_TOKEN, &len, err, sizeof(err))) == NULL)
		goto out;
	if ((dot1 = strchr(text, '.')) == NULL || (dot2 = strchr(dot1 + 1, '.')) == NULL)
		goto out;
	if ((payload = dev_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &plen)) == NULL)
		goto out;
	if ((c = json_loadb((char *)payload, plen, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		goto out;
	rc = dev_manifest_claims(c, m, err, sizeof(err));
out:
	json_decref(c);
	free(payload);
	free(text);
	return rc;
}
