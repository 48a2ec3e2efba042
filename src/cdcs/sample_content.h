/*
 * sample_content: the protected content formats of the sample CA/DRM systems
 * (docs/cdcs-abi.md). Compiled into each sample CDCS (decryption) and into dmctl, whose
 * "content encrypt" makes test content; OpenSSL, cjose and jansson only, no opendm library,
 * since a CDCS is vendor code.
 *
 * A system is "<vendor>/<name>"; its name says its scheme, the vendor only who runs it (the
 * sample CA ships as vendor-a/sample-ca and vendor-b/sample-ca, with separate keys):
 *   <vendor>/sample-ca:  compact JWE, alg A256KW with the entitlement key, enc A256GCM,
 *                        kid "<vendor>/sample-ca/<level>".
 *   <vendor>/sample-drm: compact JWE, alg "dir", enc A256CBC-HS512, kid
 *                        "<vendor>/sample-drm/<level>", cid = 32 hex; the 64-byte content key
 *                        is HKDF-SHA256(entitlement key, salt = cid, info = SAMPLE_DRM_INFO).
 */
#ifndef SAMPLE_CONTENT_H
#define SAMPLE_CONTENT_H

#include <stddef.h>

#define SAMPLE_CONTENT_MAX (4 * 1024 * 1024) /* a protected content file (the JWE text) */
#define SAMPLE_KEY_LEN     32                /* an entitlement key */
#define SAMPLE_LEVEL_MAX   32
#define SAMPLE_CID_LEN     32 /* hex characters */
#define SAMPLE_DRM_INFO    "opendm sample-drm content key"
#define SAMPLE_VENDOR_MAX  64 /* [A-Za-z0-9._-], first character alphanumeric */

enum sample_scheme {
	SAMPLE_CA,
	SAMPLE_DRM,
};

/* A content system: its scheme and its name, the kid prefix of its content. */
struct sample_system {
	enum sample_scheme scheme;
	char name[SAMPLE_VENDOR_MAX + 16]; /* "<vendor>/sample-ca" or "<vendor>/sample-drm" */
};

/* The system "<vendor>/sample-ca" or "<vendor>/sample-drm" (any valid vendor): 0/-1. */
int sample_system_parse(const char *s, struct sample_system *out);
/* 1 if level is 1-32 characters of [a-z0-9_-]. */
int sample_level_ok(const char *level);

/*
 * The OpenSSL KDF name ("HKDF", "SSKDF") with SHA-256 over key, salt (NULL: none) and info
 * into outlen bytes of out. 0/-1.
 */
int sample_kdf(const char *name, const void *key, size_t keylen, const void *salt, size_t saltlen,
               const void *info, size_t infolen, unsigned char *out, size_t outlen);

/* What the protected header of a content file says, once checked. */
struct sample_content {
	enum sample_scheme scheme;
	char level[SAMPLE_LEVEL_MAX + 1];
	char cid[SAMPLE_CID_LEN + 1]; /* sample-drm only */
};

/*
 * Encrypt plaintext (1 byte or more) for sys at level with the entitlement key: a malloc'd
 * compact JWE, or NULL + err.
 */
char *sample_content_encrypt(const struct sample_system *sys, const char *level,
                             const unsigned char key[SAMPLE_KEY_LEN], const void *pt, size_t len,
                             char *err, size_t errlen);
/*
 * Check that jwe (len bytes, not NUL-terminated) is content of system sys in its format, and
 * tell its level: 0, or -1 + err (bad content or content of another system).
 */
int sample_content_parse(const struct sample_system *sys, const char *jwe, size_t len,
                         struct sample_content *c, char *err, size_t errlen);
/* Decrypt content c checked by sample_content_parse with the key of its level: 0 with a
 * malloc'd *out, or -1 + err. */
int sample_content_decrypt(const struct sample_content *c, const unsigned char key[SAMPLE_KEY_LEN],
                           const char *jwe, size_t len, void **out, size_t *outlen, char *err,
                           size_t errlen);

#endif
