/*
 * sample_content: encrypt and decrypt the content of the sample systems.
 *
 * cjose does the JWE work, but it trusts whatever "alg" and "enc" a header names, so every
 * field of the protected header and the length of every part are checked here first: a
 * content file is accepted only in the one exact shape its system defines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "sample_content.h"

#define SAMPLE_HEADER_MAX 1024 /* a content file's protected header, decoded */
#define SAMPLE_DRM_CEK    64   /* A256CBC-HS512: MAC key and AES key */
#define SAMPLE_B64URL     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

/* One scheme: its JWE parameters and the exact base64url lengths of the parts they imply. */
struct sample_format {
	const char *suffix; /* "/<name>" of every system of the scheme */
	const char *alg, *enc;
	size_t ek_b64, iv_b64, tag_b64;
	int has_cid;
};

static const struct sample_format sample_formats[] = {
    /* A256KW wraps the 32-byte CEK into 40 bytes; GCM: 12-byte IV, 16-byte tag. */
    [SAMPLE_CA] = {"/sample-ca", "A256KW", "A256GCM", 54, 16, 22, 0},
    /* dir: no encrypted key; CBC: 16-byte IV; HS512 tag truncated to 32 bytes. */
    [SAMPLE_DRM] = {"/sample-drm", "dir", "A256CBC-HS512", 0, 22, 43, 1},
};

/* A vendor id as cdcsimg_valid_id() has it (a CDCS links no opendm library). */
static int sample_vendor_ok(const char *s, size_t n)
{
	static const char alnum[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	size_t i;

	if (n == 0 || n > SAMPLE_VENDOR_MAX || strchr(alnum, s[0]) == NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] == '\0' || (strchr(alnum, s[i]) == NULL && strchr("._-", s[i]) == NULL))
			return 0;
	return 1;
}

int sample_system_parse(const char *s, struct sample_system *out)
{
	const char *slash = s != NULL ? strchr(s, '/') : NULL;
	size_t i;

	if (slash == NULL || !sample_vendor_ok(s, (size_t)(slash - s)))
		return -1;
	for (i = 0; i < sizeof(sample_formats) / sizeof(sample_formats[0]); i++) {
		if (strcmp(slash, sample_formats[i].suffix) == 0) {
			out->scheme = (enum sample_scheme)i;
			snprintf(out->name, sizeof(out->name), "%s", s);
			return 0;
		}
	}
	return -1;
}

int sample_level_ok(const char *level)
{
	size_t n;

	if (level == NULL || (n = strlen(level)) == 0 || n > SAMPLE_LEVEL_MAX)
		return 0;
	return strspn(level, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static int sample_hex_ok(const char *s, size_t n)
{
	return s != NULL && strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

/* n characters of the base64url alphabet (the text need not be NUL-terminated). */
static int sample_b64url_ok(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == '\0' || strchr(SAMPLE_B64URL, s[i]) == NULL)
			return 0;
	return 1;
}

int sample_kdf(const char *name, const void *key, size_t keylen, const void *salt, size_t saltlen,
               const void *info, size_t infolen, unsigned char *out, size_t outlen)
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM p[5], *q = p;
	int rc = -1;

	if ((kdf = EVP_KDF_fetch(NULL, name, NULL)) == NULL ||
	    (kctx = EVP_KDF_CTX_new(kdf)) == NULL)
		goto fail;
	*q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, keylen);
	if (salt != NULL)
		*q++ =
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen);
	*q = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, outlen, p) == 1)
		rc = 0;
fail:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	ERR_clear_error();
	return rc;
}

/* The content key of a sample-drm file: HKDF-SHA256(key, salt = cid, info). */
static int sample_drm_cek(const unsigned char key[SAMPLE_KEY_LEN], const char *cid,
                          unsigned char cek[SAMPLE_DRM_CEK])
{
	return sample_kdf(OSSL_KDF_NAME_HKDF, key, SAMPLE_KEY_LEN, cid, strlen(cid),
	                  SAMPLE_DRM_INFO, sizeof(SAMPLE_DRM_INFO) - 1, cek, SAMPLE_DRM_CEK);
}

/* The cjose key of content of a scheme: the entitlement key itself, or the derived content
 * key. */
static cjose_jwk_t *sample_jwk(enum sample_scheme scheme, const unsigned char key[SAMPLE_KEY_LEN],
                               const char *cid)
{
	unsigned char cek[SAMPLE_DRM_CEK];
	cjose_jwk_t *jwk = NULL;
	cjose_err cerr;

	if (scheme == SAMPLE_CA)
		return cjose_jwk_create_oct_spec(key, SAMPLE_KEY_LEN, &cerr);
	if (sample_drm_cek(key, cid, cek) == 0)
		jwk = cjose_jwk_create_oct_spec(cek, sizeof(cek), &cerr);
	OPENSSL_cleanse(cek, sizeof(cek));
	return jwk;
}

char *sample_content_encrypt(const struct sample_system *sys, const char *level,
                             const unsigned char key[SAMPLE_KEY_LEN], const void *pt, size_t len,
                             char *err, size_t errlen)
{
	const struct sample_format *f = &sample_formats[sys->scheme];
	char kid[128], cid[SAMPLE_CID_LEN + 1], *ser = NULL, *out = NULL;
	unsigned char rnd[SAMPLE_CID_LEN / 2];
	cjose_header_t *hdr = NULL;
	cjose_jwk_t *jwk = NULL;
	cjose_jwe_t *jwe = NULL;
	cjose_err cerr = {0};
	size_t i;

	if (!sample_level_ok(level)) {
		snprintf(err, errlen, "level must be 1-%d of [a-z0-9_-]", SAMPLE_LEVEL_MAX);
		goto fail;
	}
	if (pt == NULL || len == 0) {
		snprintf(err, errlen, "nothing to encrypt");
		goto fail;
	}
	snprintf(kid, sizeof(kid), "%s/%s", sys->name, level);
	cid[0] = '\0';
	if (f->has_cid) {
		/* A fresh content id per file, so no two files share a content key. */
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			snprintf(err, errlen, "no randomness for the content id");
			goto fail;
		}
		for (i = 0; i < sizeof(rnd); i++)
			snprintf(cid + 2 * i, 3, "%02x", rnd[i]);
	}
	if ((jwk = sample_jwk(sys->scheme, key, cid)) == NULL) {
		snprintf(err, errlen, "cannot make the content key");
		goto fail;
	}
	if ((hdr = cjose_header_new(&cerr)) == NULL ||
	    !cjose_header_set(hdr, CJOSE_HDR_ALG, f->alg, &cerr) ||
	    !cjose_header_set(hdr, CJOSE_HDR_ENC, f->enc, &cerr) ||
	    !cjose_header_set(hdr, CJOSE_HDR_KID, kid, &cerr) ||
	    (f->has_cid && !cjose_header_set(hdr, "cid", cid, &cerr))) {
		snprintf(err, errlen, "JWE header: %s",
		         cerr.message != NULL ? cerr.message : "failed");
		goto fail;
	}
	if ((jwe = cjose_jwe_encrypt(jwk, hdr, pt, len, &cerr)) == NULL ||
	    (ser = cjose_jwe_export(jwe, &cerr)) == NULL) {
		snprintf(err, errlen, "JWE encryption: %s",
		         cerr.message != NULL ? cerr.message : "failed");
		goto fail;
	}
	if ((out = strdup(ser)) == NULL)
		snprintf(err, errlen, "out of memory");
fail:
	if (ser != NULL)
		cjose_get_dealloc()(ser);
	cjose_jwe_release(jwe);
	cjose_header_release(hdr);
	cjose_jwk_release(jwk);
	ERR_clear_error();
	return out;
}

/* The protected header of a compact JWE: a JSON object, or NULL. */
static json_t *sample_header(const char *b64, size_t n)
{
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	cjose_err cerr;
	json_t *h = NULL;

	if (n == 0 || n > SAMPLE_HEADER_MAX * 4 / 3 + 4 ||
	    !cjose_base64url_decode(b64, n, &raw, &rawlen, &cerr))
		return NULL;
	h = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
	cjose_get_dealloc()(raw);
	if (h != NULL && !json_is_object(h)) {
		json_decref(h);
		h = NULL;
	}
	return h;
}

/* The header names exactly alg, enc, kid (and cid for sample-drm); nothing else. */
static int sample_header_check(const struct sample_system *sys, json_t *h, struct sample_content *c,
                               char *err, size_t errlen)
{
	const struct sample_format *f = &sample_formats[sys->scheme];
	const char *alg, *enc, *kid, *cid, *key;
	size_t plen = strlen(sys->name);
	json_t *v;

	kid = json_string_value(json_object_get(h, "kid"));
	if (kid == NULL || strncmp(kid, sys->name, plen) != 0 || kid[plen] != '/') {
		snprintf(err, errlen, "content is not %s content (kid %.80s)", sys->name,
		         kid != NULL ? kid : "missing");
		return -1;
	}
	if (!sample_level_ok(kid + plen + 1)) {
		snprintf(err, errlen, "content kid names no valid level");
		return -1;
	}
	alg = json_string_value(json_object_get(h, "alg"));
	enc = json_string_value(json_object_get(h, "enc"));
	if (alg == NULL || enc == NULL || strcmp(alg, f->alg) != 0 || strcmp(enc, f->enc) != 0) {
		snprintf(err, errlen, "content is not %s with %s", f->alg, f->enc);
		return -1;
	}
	cid = json_string_value(json_object_get(h, "cid"));
	if (f->has_cid && !sample_hex_ok(cid, SAMPLE_CID_LEN)) {
		snprintf(err, errlen, "content has no cid of %d hex digits", SAMPLE_CID_LEN);
		return -1;
	}
	json_object_foreach(h, key, v)
	{
		if (strcmp(key, "alg") != 0 && strcmp(key, "enc") != 0 && strcmp(key, "kid") != 0 &&
		    !(f->has_cid && strcmp(key, "cid") == 0)) {
			snprintf(err, errlen, "content header has an unexpected '%.32s'", key);
			return -1;
		}
	}
	snprintf(c->level, sizeof(c->level), "%s", kid + plen + 1);
	snprintf(c->cid, sizeof(c->cid), "%s", f->has_cid ? cid : "");
	return 0;
}

int sample_content_parse(const struct sample_system *sys, const char *jwe, size_t len,
                         struct sample_content *c, char *err, size_t errlen)
{
	const struct sample_format *f = &sample_formats[sys->scheme];
	const char *part[5], *p;
	size_t plen[5], i, k = 0;
	json_t *h;
	int rc;

	memset(c, 0, sizeof(*c));
	c->scheme = sys->scheme;
	if (jwe == NULL || len == 0 || len > SAMPLE_CONTENT_MAX) {
		snprintf(err, errlen, "content empty or larger than %d bytes", SAMPLE_CONTENT_MAX);
		return -1;
	}
	part[0] = jwe;
	for (p = jwe; p < jwe + len; p++) {
		if (*p != '.')
			continue;
		if (k == 4)
			break;
		plen[k] = (size_t)(p - part[k]);
		part[++k] = p + 1;
	}
	if (k != 4 || p != jwe + len) {
		snprintf(err, errlen, "content is not a compact JWE");
		return -1;
	}
	plen[4] = (size_t)(jwe + len - part[4]);
	for (i = 0; i < 5; i++) {
		if (!sample_b64url_ok(part[i], plen[i])) {
			snprintf(err, errlen, "content is not a compact JWE");
			return -1;
		}
	}
	if ((h = sample_header(part[0], plen[0])) == NULL) {
		snprintf(err, errlen, "content header is not a JSON object");
		return -1;
	}
	rc = sample_header_check(sys, h, c, err, errlen);
	json_decref(h);
	if (rc == -1)
		return -1;
	/* Exact lengths: among others, a truncated authentication tag is refused. */
	if (plen[1] != f->ek_b64 || plen[2] != f->iv_b64 || plen[3] == 0 || plen[4] != f->tag_b64) {
		snprintf(err, errlen, "content parts have the wrong lengths for %s", sys->name);
		return -1;
	}
	return 0;
}

int sample_content_decrypt(const struct sample_content *c, const unsigned char key[SAMPLE_KEY_LEN],
                           const char *jwe, size_t len, void **out, size_t *outlen, char *err,
                           size_t errlen)
{
	cjose_jwk_t *jwk = NULL;
	cjose_jwe_t *obj = NULL;
	cjose_err cerr = {0};
	uint8_t *pt = NULL;
	size_t ptlen = 0;
	int rc = -1;

	*out = NULL;
	*outlen = 0;
	if ((jwk = sample_jwk(c->scheme, key, c->cid)) == NULL) {
		snprintf(err, errlen, "cannot make the content key");
		goto fail;
	}
	if ((obj = cjose_jwe_import(jwe, len, &cerr)) == NULL) {
		snprintf(err, errlen, "content is not a compact JWE");
		goto fail;
	}
	if ((pt = cjose_jwe_decrypt(obj, jwk, &ptlen, &cerr)) == NULL) {
		snprintf(err, errlen, "content does not decrypt with the %s key", c->level);
		goto fail;
	}
	/* The host frees with free(): hand over a buffer of our own, not cjose's. */
	if ((*out = malloc(ptlen > 0 ? ptlen : 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(*out, pt, ptlen);
	*outlen = ptlen;
	rc = 0;
fail:
	if (pt != NULL) {
		OPENSSL_cleanse(pt, ptlen);
		cjose_get_dealloc()(pt);
	}
	cjose_jwe_release(obj);
	cjose_jwk_release(jwk);
	ERR_clear_error();
	return rc;
}
