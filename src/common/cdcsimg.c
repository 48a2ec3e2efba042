/*
 * cdcsimg: build and check the vendor manifest and the operator approval of a CDCS image.
 * Both sides (dmctl publish; cdcs-mss and dm-agent verify) use the claim tables below.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjose/cjose.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "opendm/cdcs.h"
#include "opendm/cdcsimg.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/pki.h"

/* Errors go to the caller's buffer (log.c). */
#define cdcsimg_seterr(err, errlen, ...) log_seterr(err, errlen, __func__, __VA_ARGS__)

static int cdcsimg_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* 1..max chars of [A-Za-z0-9._-], the first alphanumeric: safe as a path component. */
static int cdcsimg_valid_name(const char *s, size_t max)
{
	size_t i, n;

	if (s == NULL || (n = strnlen(s, max + 1)) == 0 || n > max || !cdcsimg_alnum(s[0]))
		return 0;
	for (i = 0; i < n; i++)
		if (!cdcsimg_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

int cdcsimg_valid_id(const char *s)
{
	return cdcsimg_valid_name(s, CDCSIMG_ID_MAX);
}

int cdcsimg_valid_platform(const char *s)
{
	return cdcsimg_valid_name(s, CDCSIMG_PLATFORM_MAX);
}

/* 1..max chars of [a-z0-9_-]. */
static int cdcsimg_valid_lower(const char *s, size_t max)
{
	size_t i, n;

	if (s == NULL || (n = strnlen(s, max + 1)) == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '-'))
			return 0;
	return 1;
}

int cdcsimg_valid_variant(const char *s)
{
	return cdcsimg_valid_lower(s, CDCSIMG_VARIANT_MAX);
}

int cdcsimg_valid_level(const char *s)
{
	return cdcsimg_valid_lower(s, CDCSIMG_LEVEL_MAX);
}

int cdcsimg_valid_version(const char *s)
{
	size_t i, n;

	if (s == NULL || (n = strnlen(s, CDCSIMG_VERSION_MAX + 1)) == 0 || n > CDCSIMG_VERSION_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

int cdcsimg_valid_kind(const char *s)
{
	return s != NULL && (strcmp(s, "ca") == 0 || strcmp(s, "drm") == 0);
}

int cdcsimg_valid_sha256(const char *s)
{
	size_t i;

	if (s == NULL || strnlen(s, 65) != 64)
		return 0;
	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

void cdcsimg_sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	size_t i;

	SHA256(data, len, md);
	for (i = 0; i < sizeof(md); i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* Every field of a manifest within its bounds. */
static int cdcsimg_manifest_check(const struct cdcsimg_manifest *m, char *err, size_t errlen)
{
	const char *bad = NULL;

	if (!cdcsimg_valid_id(m->vendor))
		bad = "vendor";
	else if (!cdcsimg_valid_id(m->name))
		bad = "name";
	else if (!cdcsimg_valid_kind(m->kind))
		bad = "kind";
	else if (!cdcsimg_valid_variant(m->variant))
		bad = "variant";
	else if (!cdcsimg_valid_platform(m->platform))
		bad = "platform";
	else if (!cdcsimg_valid_version(m->version))
		bad = "version";
	else if (m->version_number < 1)
		bad = "version_number";
	else if (m->abi != ODM_CDCS_ABI_VERSION)
		bad = "abi";
	else if (!cdcsimg_valid_sha256(m->sha256))
		bad = "sha256";
	else if (m->size < 1 || m->size > CDCSIMG_MAX_SIZE)
		bad = "size";
	if (bad != NULL) {
		cdcsimg_seterr(err, errlen, "manifest claim %s missing or out of range", bad);
		return -1;
	}
	return 0;
}

/* Copy a string claim into buf when it is a string that fits; else leave buf empty. */
static void cdcsimg_copy(const json_t *c, const char *key, char *buf, size_t len)
{
	const char *s = json_string_value(json_object_get(c, key));

	buf[0] = '\0';
	if (s != NULL && strlen(s) < len)
		memcpy(buf, s, strlen(s) + 1);
}

static int64_t cdcsimg_int(const json_t *c, const char *key)
{
	const json_t *v = json_object_get(c, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* Decode and check the manifest claims (types, bounds, iss == vendor, sub, aud). */
static int cdcsimg_manifest_from_json(const json_t *c, struct cdcsimg_manifest *m, char *err,
                                      size_t errlen)
{
	const char *iss = json_string_value(json_object_get(c, "iss"));
	const char *sub = json_string_value(json_object_get(c, "sub"));

	memset(m, 0, sizeof(*m));
	cdcsimg_copy(c, "vendor", m->vendor, sizeof(m->vendor));
	cdcsimg_copy(c, "name", m->name, sizeof(m->name));
	cdcsimg_copy(c, "kind", m->kind, sizeof(m->kind));
	cdcsimg_copy(c, "variant", m->variant, sizeof(m->variant));
	cdcsimg_copy(c, "platform", m->platform, sizeof(m->platform));
	cdcsimg_copy(c, "version", m->version, sizeof(m->version));
	cdcsimg_copy(c, "sha256", m->sha256, sizeof(m->sha256));
	cdcsimg_copy(c, "jti", m->jti, sizeof(m->jti));
	m->version_number = cdcsimg_int(c, "version_number");
	m->abi = cdcsimg_int(c, "abi");
	m->size = cdcsimg_int(c, "size");
	m->iat = cdcsimg_int(c, "iat");
	m->exp = cdcsimg_int(c, "exp");
	if (cdcsimg_manifest_check(m, err, errlen) == -1)
		return -1;
	if (iss == NULL || strcmp(iss, m->vendor) != 0) {
		cdcsimg_seterr(err, errlen, "manifest issuer is not its vendor %s", m->vendor);
		return -1;
	}
	if (sub == NULL || strcmp(sub, CDCSIMG_SUB) != 0) {
		cdcsimg_seterr(err, errlen, "manifest subject is not %s", CDCSIMG_SUB);
		return -1;
	}
	return 0;
}

/* The claims of the payload of a compact JWS, signature NOT checked. New ref or NULL. */
static json_t *cdcsimg_payload(const char *jws_text)
{
	cjose_jws_t *jws;
	cjose_err cerr = {0};
	uint8_t *pt = NULL;
	size_t len, ptlen = 0;
	json_t *c = NULL;

	if (jws_text == NULL || (len = strnlen(jws_text, JOSE_MAX_TOKEN + 1)) == 0 ||
	    len > JOSE_MAX_TOKEN)
		return NULL;
	if ((jws = cjose_jws_import(jws_text, len, &cerr)) == NULL)
		return NULL;
	if (cjose_jws_get_plaintext(jws, &pt, &ptlen, &cerr))
		c = json_loadb((const char *)pt, ptlen, JSON_REJECT_DUPLICATES, NULL);
	cjose_jws_release(jws);
	if (c != NULL && !json_is_object(c)) {
		json_decref(c);
		c = NULL;
	}
	return c;
}

int cdcsimg_manifest_peek(const char *manifest_jws, struct cdcsimg_manifest *out, char *err,
                          size_t errlen)
{
	json_t *c;
	int rc;

	if ((c = cdcsimg_payload(manifest_jws)) == NULL) {
		cdcsimg_seterr(err, errlen, "manifest is not a compact JWS with JSON claims");
		return -1;
	}
	rc = cdcsimg_manifest_from_json(c, out, err, errlen);
	json_decref(c);
	if (rc == 0)
		cdcsimg_sha256_hex(manifest_jws, strlen(manifest_jws), out->manifest_sha256);
	return rc;
}

/* The binding fields shared by the manifest and the approval. */
static int cdcsimg_set_binding(json_t *c, const struct cdcsimg_manifest *m)
{
	return json_object_set_new(c, "vendor", json_string(m->vendor)) |
	       json_object_set_new(c, "name", json_string(m->name)) |
	       json_object_set_new(c, "variant", json_string(m->variant)) |
	       json_object_set_new(c, "platform", json_string(m->platform)) |
	       json_object_set_new(c, "version_number", json_integer(m->version_number));
}

char *cdcsimg_manifest_sign(EVP_PKEY *vendor_key, const struct cdcsimg_manifest *m, int64_t ttl_s,
                            char *err, size_t errlen)
{
	json_t *c = NULL;
	char *jws = NULL;

	if (cdcsimg_manifest_check(m, err, errlen) == -1)
		return NULL;
	if ((c = json_object()) == NULL || cdcsimg_set_binding(c, m) != 0 ||
	    json_object_set_new(c, "iss", json_string(m->vendor)) != 0 ||
	    json_object_set_new(c, "aud", json_string(CDCSIMG_AUD)) != 0 ||
	    json_object_set_new(c, "sub", json_string(CDCSIMG_SUB)) != 0 ||
	    json_object_set_new(c, "kind", json_string(m->kind)) != 0 ||
	    json_object_set_new(c, "version", json_string(m->version)) != 0 ||
	    json_object_set_new(c, "abi", json_integer(m->abi)) != 0 ||
	    json_object_set_new(c, "sha256", json_string(m->sha256)) != 0 ||
	    json_object_set_new(c, "size", json_integer(m->size)) != 0) {
		cdcsimg_seterr(err, errlen, "out of memory");
		goto fail;
	}
	jws = jose_sign(vendor_key, NULL, c, ttl_s, err, errlen);
fail:
	json_decref(c);
	return jws;
}

char *cdcsimg_approval_sign(EVP_PKEY *operator_key, const struct cdcsimg_manifest *m,
                            const char *manifest_jws, int64_t ttl_s, char *err, size_t errlen)
{
	char msha[65];
	json_t *c = NULL;
	char *jws = NULL;

	if (cdcsimg_manifest_check(m, err, errlen) == -1)
		return NULL;
	if (manifest_jws == NULL || manifest_jws[0] == '\0') {
		cdcsimg_seterr(err, errlen, "no manifest to approve");
		return NULL;
	}
	cdcsimg_sha256_hex(manifest_jws, strlen(manifest_jws), msha);
	if ((c = json_object()) == NULL || cdcsimg_set_binding(c, m) != 0 ||
	    json_object_set_new(c, "iss", json_string(CDCSIMG_APPROVAL_ISS)) != 0 ||
	    json_object_set_new(c, "aud", json_string(CDCSIMG_AUD)) != 0 ||
	    json_object_set_new(c, "sub", json_string(CDCSIMG_APPROVAL_SUB)) != 0 ||
	    json_object_set_new(c, "manifest_sha256", json_string(msha)) != 0) {
		cdcsimg_seterr(err, errlen, "out of memory");
		goto fail;
	}
	jws = jose_sign(operator_key, NULL, c, ttl_s, err, errlen);
fail:
	json_decref(c);
	return jws;
}

/* The approval's claims bind exactly this manifest and its identity. */
static int cdcsimg_approval_binds(const json_t *a, const struct cdcsimg_manifest *m, char *err,
                                  size_t errlen)
{
	static const char *const strs[] = {"vendor", "name", "variant", "platform",
	                                   "manifest_sha256"};
	const char *want[] = {m->vendor, m->name, m->variant, m->platform, m->manifest_sha256};
	const char *s;
	size_t i;

	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		s = json_string_value(json_object_get(a, strs[i]));
		if (s == NULL || strcmp(s, want[i]) != 0) {
			cdcsimg_seterr(err, errlen, "approval %s does not match the manifest",
			               strs[i]);
			return -1;
		}
	}
	if (cdcsimg_int(a, "version_number") != m->version_number) {
		cdcsimg_seterr(err, errlen, "approval version_number does not match the manifest");
		return -1;
	}
	return 0;
}

int cdcsimg_verify(const struct cdcsimg_keyring *vendors, EVP_PKEY *operator_pub,
                   const char *manifest_jws, const char *approval_jws, time_t now,
                   struct cdcsimg_manifest *out, const char **code, char *err, size_t errlen)
{
	struct jose_expect ex = {NULL, CDCSIMG_AUD, CDCSIMG_SUB, now, NULL, NULL};
	struct cdcsimg_manifest peek;
	const char *jcode = NULL;
	EVP_PKEY *vkey;
	char e[256];
	json_t *c = NULL, *a = NULL;
	int rc = -1;

	/* The vendor named by the (not yet trusted) claims only selects the key to try. */
	*code = "bad_claims";
	if (cdcsimg_manifest_peek(manifest_jws, &peek, e, sizeof(e)) == -1) {
		cdcsimg_seterr(err, errlen, "%s", e);
		goto fail;
	}
	if (vendors == NULL || (vkey = cdcsimg_keyring_find(vendors, peek.vendor)) == NULL) {
		*code = "unknown_vendor";
		cdcsimg_seterr(err, errlen, "no key for vendor %s", peek.vendor);
		goto fail;
	}
	ex.iss = peek.vendor;
	if ((c = jose_verify(vkey, manifest_jws, &ex, &jcode, e, sizeof(e))) == NULL) {
		*code = "bad_signature";
		cdcsimg_seterr(err, errlen, "manifest (%s): %s", peek.vendor, e);
		goto fail;
	}
	*code = "bad_claims";
	if (cdcsimg_manifest_from_json(c, out, err, errlen) == -1)
		goto fail;
	cdcsimg_sha256_hex(manifest_jws, strlen(manifest_jws), out->manifest_sha256);

	*code = "not_approved";
	if (approval_jws == NULL || approval_jws[0] == '\0') {
		cdcsimg_seterr(err, errlen, "no operator approval");
		goto fail;
	}
	ex.iss = CDCSIMG_APPROVAL_ISS;
	ex.sub = CDCSIMG_APPROVAL_SUB;
	if (operator_pub == NULL ||
	    (a = jose_verify(operator_pub, approval_jws, &ex, &jcode, e, sizeof(e))) == NULL) {
		cdcsimg_seterr(err, errlen, "operator approval: %s",
		               operator_pub == NULL ? "no operator key" : e);
		goto fail;
	}
	*code = "approval_mismatch";
	if (cdcsimg_approval_binds(a, out, err, errlen) == -1)
		goto fail;
	*code = NULL;
	rc = 0;
fail:
	json_decref(c);
	json_decref(a);
	return rc;
}

void cdcsimg_keyring_free(struct cdcsimg_keyring *kr)
{
	size_t i;

	if (kr == NULL)
		return;
	for (i = 0; i < kr->n; i++)
		EVP_PKEY_free(kr->keys[i].pub);
	memset(kr, 0, sizeof(*kr));
}

int cdcsimg_keyring_load(struct cdcsimg_keyring *kr, const json_t *vendor_keys, char *err,
                         size_t errlen)
{
	const char *vendor;
	json_t *path;
	char e[256];

	memset(kr, 0, sizeof(*kr));
	if (!json_is_object(vendor_keys) || json_object_size(vendor_keys) == 0 ||
	    json_object_size(vendor_keys) > CDCSIMG_MAX_VENDORS) {
		cdcsimg_seterr(err, errlen,
		               "vendor_keys: expected an object of 1..%d vendor -> public key path",
		               CDCSIMG_MAX_VENDORS);
		return -1;
	}
	json_object_foreach((json_t *)vendor_keys, vendor, path)
	{
		if (!cdcsimg_valid_id(vendor)) {
			cdcsimg_seterr(err, errlen, "vendor_keys: invalid vendor id");
			goto fail;
		}
		if (!json_is_string(path) || json_string_length(path) == 0) {
			cdcsimg_seterr(err, errlen, "vendor_keys.%s: expected a file path", vendor);
			goto fail;
		}
		memcpy(kr->keys[kr->n].vendor, vendor, strlen(vendor) + 1);
		if ((kr->keys[kr->n].pub =
		         pki_pubkey_load(json_string_value(path), e, sizeof(e))) == NULL) {
			cdcsimg_seterr(err, errlen, "vendor_keys.%s: %s", vendor, e);
			goto fail;
		}
		kr->n++;
	}
	return 0;
fail:
	cdcsimg_keyring_free(kr);
	return -1;
}

EVP_PKEY *cdcsimg_keyring_find(const struct cdcsimg_keyring *kr, const char *vendor)
{
	size_t i;

	for (i = 0; kr != NULL && vendor != NULL && i < kr->n; i++)
		if (strcmp(kr->keys[i].vendor, vendor) == 0)
			return kr->keys[i].pub;
	return NULL;
}

int cdcsimg_file_digest(const char *path, int64_t max, char sha256[65], int64_t *size, char *err,
                        size_t errlen)
{
	unsigned char buf[64 * 1024], md[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *ctx = NULL;
	struct stat st;
	unsigned int mdlen = 0, i;
	int64_t total = 0;
	ssize_t n;
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		cdcsimg_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		cdcsimg_seterr(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		cdcsimg_seterr(err, errlen, "sha256: out of memory");
		goto fail;
	}
	for (;;) {
		if ((n = read(fd, buf, sizeof(buf))) == -1) {
			if (errno == EINTR)
				continue;
			cdcsimg_seterr(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		total += n;
		if (total > max) {
			cdcsimg_seterr(err, errlen, "%s: larger than %lld bytes", path,
			               (long long)max);
			goto fail;
		}
		if (!EVP_DigestUpdate(ctx, buf, (size_t)n))
			goto fail;
	}
	if (!EVP_DigestFinal_ex(ctx, md, &mdlen))
		goto fail;
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(sha256 + 2 * i, 3, "%02x", md[i]);
	*size = total;
	rc = 0;
fail:
	EVP_MD_CTX_free(ctx);
	close(fd);
	return rc;
}

int cdcsimg_file_check(const char *path, const struct cdcsimg_manifest *m, const char **code,
                       char *err, size_t errlen)
{
	char sha[65];
	int64_t size = 0;

	*code = "bad_size";
	if (cdcsimg_file_digest(path, CDCSIMG_MAX_SIZE, sha, &size, err, errlen) == -1)
		return -1;
	if (size != m->size) {
		cdcsimg_seterr(err, errlen, "image is %lld bytes, manifest says %lld",
		               (long long)size, (long long)m->size);
		return -1;
	}
	if (strcmp(sha, m->sha256) != 0) {
		*code = "bad_digest";
		cdcsimg_seterr(err, errlen, "image sha256 %s, manifest says %s", sha, m->sha256);
		return -1;
	}
	*code = NULL;
	return 0;
}

json_t *cdcsimg_manifest_json(const struct cdcsimg_manifest *m)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:I}", "vendor", m->vendor,
	                 "name", m->name, "kind", m->kind, "variant", m->variant, "platform",
	                 m->platform, "version", m->version, "version_number",
	                 (json_int_t)m->version_number, "sha256", m->sha256, "size",
	                 (json_int_t)m->size);
}
