/*
 * cdcsimg: the signed description of a CDCS image (docs/protocol.md, "Figure 5").
 *
 * A CDCS image is acceptable only with BOTH signatures:
 *  - the manifest, a compact JWS ES256 signed by the vendor it names (iss = vendor), verified
 *    with that vendor's public key from a key ring (no key for the vendor: refused);
 *  - the operator approval, a compact JWS ES256 signed with the operator key, whose
 *    manifest_sha256 is the sha256 of the manifest's exact compact text and whose vendor, name,
 *    variant, platform and version_number equal the manifest's.
 *
 * The same code builds the claims (dmctl cdcs publish) and checks them (cdcs-mss when an image
 * is registered, dm-agent before installing one), so the two sides cannot drift.
 *
 * Refusals carry a snake_case code in *code:
 *   unknown_vendor     no key in the ring for the manifest's vendor (or no readable vendor)
 *   bad_signature      the manifest's signature, alg, issuer/audience/subject or expiry is wrong
 *   not_approved       approval missing, or not signed by the operator key, or not valid
 *                      (audience/issuer/subject/expiry)
 *   approval_mismatch  approval valid but bound to another manifest (manifest_sha256) or to
 *                      another vendor/name/variant/platform/version_number
 *   bad_claims         a signed object whose claims are missing, of the wrong type or out of
 *                      range (e.g. abi != ODM_CDCS_ABI_VERSION, size out of 1..256 MiB)
 * and, for cdcsimg_file_check():
 *   bad_size           the file is not m->size bytes long (or cannot be read)
 *   bad_digest         the file's sha256 is not m->sha256
 */
#ifndef OPENDM_CDCSIMG_H
#define OPENDM_CDCSIMG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>
#include <openssl/evp.h>

#define CDCSIMG_AUD          "opendm-dm-agent"
#define CDCSIMG_SUB          "cdcs"
#define CDCSIMG_APPROVAL_ISS "opendm-operator"
#define CDCSIMG_APPROVAL_SUB "cdcs-approval"
#define CDCSIMG_MAX_SIZE     (256 * 1024 * 1024) /* bytes of an image */
#define CDCSIMG_DEFAULT_TTL  (365 * 86400)       /* manifest / approval validity, seconds */
#define CDCSIMG_MAX_VENDORS  32                  /* keys in a ring */

/* Bounds of the identity strings (buffers below are one byte larger for the NUL). */
#define CDCSIMG_ID_MAX       64 /* vendor, name: [A-Za-z0-9._-], first char alphanumeric */
#define CDCSIMG_VARIANT_MAX  16 /* variant: [a-z0-9_-] */
#define CDCSIMG_PLATFORM_MAX 32 /* platform: [A-Za-z0-9._-], first char alphanumeric */
#define CDCSIMG_VERSION_MAX  32 /* version: printable ASCII */
#define CDCSIMG_LEVEL_MAX    32 /* an entitlement level (a right): [a-z0-9_-] */

/* The claims of a manifest (iat, exp, jti are filled by verify/peek; ignored by sign). */
struct cdcsimg_manifest {
	char vendor[CDCSIMG_ID_MAX + 1];
	char name[CDCSIMG_ID_MAX + 1];
	char kind[8]; /* "ca" or "drm" */
	char variant[CDCSIMG_VARIANT_MAX + 1];
	char platform[CDCSIMG_PLATFORM_MAX + 1];
	char version[CDCSIMG_VERSION_MAX + 1];
	int64_t version_number; /* >= 1 */
	int64_t abi;            /* ODM_CDCS_ABI_VERSION */
	char sha256[65];        /* lower-case hex of the image */
	int64_t size;           /* bytes, 1..CDCSIMG_MAX_SIZE */
	int64_t iat, exp;
	char jti[65];
	/* Set by cdcsimg_verify(): lower-case hex sha256 of the manifest's compact text. */
	char manifest_sha256[65];
};

/* Public keys of the vendors, by vendor id. */
struct cdcsimg_vendor_key {
	char vendor[CDCSIMG_ID_MAX + 1];
	EVP_PKEY *pub;
};

struct cdcsimg_keyring {
	struct cdcsimg_vendor_key keys[CDCSIMG_MAX_VENDORS];
	size_t n;
};

/* Syntax checks of the identity strings (1 = valid). */
int cdcsimg_valid_id(const char *s);       /* vendor, name */
int cdcsimg_valid_variant(const char *s);  /* variant */
int cdcsimg_valid_platform(const char *s); /* platform */
int cdcsimg_valid_version(const char *s);  /* version text */
int cdcsimg_valid_kind(const char *s);     /* "ca" | "drm" */
int cdcsimg_valid_sha256(const char *s);   /* 64 lower-case hex */
int cdcsimg_valid_level(const char *s);    /* entitlement level, e.g. "premium" */

/*
 * Load a key ring from the config form of vendor_keys: a JSON object
 * {"vendor-a": "/etc/opendm/vendor-a-signing.pub", ...} (1..CDCSIMG_MAX_VENDORS entries, each
 * key a valid vendor id). kr is filled from scratch; on error -1 + err naming the vendor, and
 * nothing stays allocated. Free with cdcsimg_keyring_free().
 */
int cdcsimg_keyring_load(struct cdcsimg_keyring *kr, const json_t *vendor_keys, char *err,
                         size_t errlen);
void cdcsimg_keyring_free(struct cdcsimg_keyring *kr);
/* The key of vendor, or NULL. Borrowed from the ring. */
EVP_PKEY *cdcsimg_keyring_find(const struct cdcsimg_keyring *kr, const char *vendor);

/*
 * Sign m as a manifest with the vendor's key (iss = vendor = m->vendor, abi as given in m,
 * valid ttl_s seconds). Every field of m is checked first. malloc'd compact JWS or NULL + err.
 */
char *cdcsimg_manifest_sign(EVP_PKEY *vendor_key, const struct cdcsimg_manifest *m, int64_t ttl_s,
                            char *err, size_t errlen);
/*
 * Sign the operator approval of manifest_jws (whose claims are m) with the operator key.
 * malloc'd compact JWS or NULL + err.
 */
char *cdcsimg_approval_sign(EVP_PKEY *operator_key, const struct cdcsimg_manifest *m,
                            const char *manifest_jws, int64_t ttl_s, char *err, size_t errlen);

/*
 * Verify manifest_jws with the key of the vendor it names from vendors, then approval_jws
 * (NULL = missing → not_approved) with operator_pub and its binding to the manifest. now = 0:
 * time(NULL). On success 0 and *out holds the manifest's claims (and manifest_sha256). On
 * refusal -1, *code as above, a one-line reason in err; *out is then unspecified.
 */
int cdcsimg_verify(const struct cdcsimg_keyring *vendors, EVP_PKEY *operator_pub,
                   const char *manifest_jws, const char *approval_jws, time_t now,
                   struct cdcsimg_manifest *out, const char **code, char *err, size_t errlen);

/*
 * The claims of a manifest WITHOUT checking its signature or expiry: only for a manifest this
 * program verified itself before storing it (e.g. the installed version, for anti-rollback,
 * must still count after the manifest expired). 0, or -1 + err (code bad_claims).
 */
int cdcsimg_manifest_peek(const char *manifest_jws, struct cdcsimg_manifest *out, char *err,
                          size_t errlen);

/*
 * sha256 (lower-case hex) and size of a regular file, read in blocks (never held in memory);
 * refuses files larger than max bytes. 0, or -1 + err.
 */
int cdcsimg_file_digest(const char *path, int64_t max, char sha256[65], int64_t *size, char *err,
                        size_t errlen);
/*
 * Check that the file at path has m's size and sha256. 0, or -1 with *code bad_size (also
 * when the file cannot be read or exceeds CDCSIMG_MAX_SIZE) or bad_digest, and err.
 */
int cdcsimg_file_check(const char *path, const struct cdcsimg_manifest *m, const char **code,
                       char *err, size_t errlen);

/* lower-case hex sha256 of len bytes of data into hex. */
void cdcsimg_sha256_hex(const void *data, size_t len, char hex[65]);

/*
 * The identity of m as a JSON object {vendor,name,kind,variant,platform,version,
 * version_number,sha256,size} (new reference, or NULL on allocation failure); what a
 * catalogue answer or a device state file shows.
 */
json_t *cdcsimg_manifest_json(const struct cdcsimg_manifest *m);

#endif
