/*
 * sample_common: the personalization and decryption logic both sample CDCSs share.
 *
 * The personalization data is a compact JWE, ECDH-ES + A256GCM, to the CDCS's own public key.
 * It is opened here with OpenSSL rather than with cjose: cjose 0.6.2 leaks one byte per
 * ECDH-ES decryption (see tests/unit/test_jose.c), and this code runs in every device's CDCS
 * child, where LeakSanitizer watches too. The JWE is small and its shape is fixed, so the
 * steps of RFC 7518 4.6 are few: ECDH with the sender's ephemeral key, Concat KDF (OpenSSL's
 * SSKDF), AES-256-GCM over the protected header as AAD.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>

#include "sample_common.h"

#define SAMPLE_MAX_KEYS    16
#define SAMPLE_MAX_TICKET  (16 * 1024)
#define SAMPLE_MAX_PERSO   (64 * 1024) /* personalization data, the JWE text */
#define SAMPLE_MAX_STATE   (64 * 1024) /* perso.json */
#define SAMPLE_MAX_KEYFILE (8 * 1024)
#define SAMPLE_EC_LEN      32
#define SAMPLE_GCM_IV      12
#define SAMPLE_GCM_TAG     16
#define SAMPLE_HEX_ID      32 /* perso_id and confirm: 32 hex digits */
#define SAMPLE_CDCS_ID_HEX 24 /* cdcs_id: "<vendor>-" and 24 hex digits */
#define SAMPLE_MAX_DM_ID   128
#define SAMPLE_ERR         256

struct sample_key {
	char level[SAMPLE_LEVEL_MAX + 1];
	unsigned char key[SAMPLE_KEY_LEN];
};

/* The entitlement keys of one personalization. */
struct sample_keys {
	size_t n;
	struct sample_key k[SAMPLE_MAX_KEYS];
};

struct sample_cdcs {
	const struct odm_cdcs_host *host;
	const struct odm_cdcs_ops *ops;
	struct sample_system sys; /* "<vendor>/<name>" of ops: the kid prefix of our content */
	json_t *perso;            /* perso.json as stored, or NULL while not personalized */
	struct sample_keys keys;
};

static void sample_log(struct sample_cdcs *c, enum odm_cdcs_log level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sample_log(struct sample_cdcs *c, enum odm_cdcs_log level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->host->log(c->host->arg, level, msg);
}

static int sample_hex_ok(const char *s, size_t n)
{
	return s != NULL && strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

/* base64url of exactly want bytes (0: any length up to max) into a malloc'd buffer. */
static unsigned char *sample_b64url(const char *s, size_t want, size_t max, size_t *len)
{
	uint8_t *raw = NULL;
	size_t n = 0;
	cjose_err cerr;

	if (s == NULL || strlen(s) > (max + 2) / 3 * 4 ||
	    !cjose_base64url_decode(s, strlen(s), &raw, &n, &cerr))
		return NULL;
	if ((want != 0 && n != want) || n > max) {
		OPENSSL_cleanse(raw, n);
		cjose_get_dealloc()(raw);
		return NULL;
	}
	*len = n;
	return raw;
}

static void sample_b64url_free(unsigned char *p, size_t len)
{
	if (p != NULL) {
		OPENSSL_cleanse(p, len);
		cjose_get_dealloc()(p);
	}
}

/* A sealed storage item as a NUL-terminated text of at most max bytes; NULL if absent. */
static char *sample_store_text(struct sample_cdcs *c, const char *name, size_t max, size_t *len)
{
	void *data = NULL;
	size_t n = 0;
	char *text;

	if (c->host->store_get(c->host->arg, name, &data, &n) == -1)
		return NULL;
	if (n > max || (text = malloc(n + 1)) == NULL) {
		OPENSSL_cleanse(data, n);
		free(data);
		return NULL;
	}
	memcpy(text, data, n);
	text[n] = '\0';
	OPENSSL_cleanse(data, n);
	free(data);
	*len = n;
	return text;
}

/* A PEM text of key (private: PKCS#8, unencrypted) as a malloc'd string. */
static char *sample_pem(EVP_PKEY *key, int private)
{
	BIO *bio;
	char *data, *out = NULL;
	long n;

	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		return NULL;
	if ((private ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
	             : PEM_write_bio_PUBKEY(bio, key)) == 1 &&
	    (n = BIO_get_mem_data(bio, &data)) > 0 && (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(bio);
	ERR_clear_error();
	return out;
}

static int sample_is_p256(EVP_PKEY *key)
{
	char group[32];

	return key != NULL && EVP_PKEY_is_a(key, "EC") &&
	       EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                      NULL) &&
	       strcmp(group, "prime256v1") == 0;
}

/* The CDCS private key from sealed storage, or NULL. */
static EVP_PKEY *sample_key_load(struct sample_cdcs *c)
{
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	char *pem;
	size_t len = 0;

	if ((pem = sample_store_text(c, "key.pem", SAMPLE_MAX_KEYFILE, &len)) == NULL) {
		sample_log(c, ODM_CDCS_LOG_ERR, "no key pair: perso_request has not run");
		return NULL;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)len)) != NULL)
		key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!sample_is_p256(key)) {
		sample_log(c, ODM_CDCS_LOG_ERR, "the stored key is not an EC P-256 private key");
		EVP_PKEY_free(key);
		key = NULL;
	}
	BIO_free(bio);
	OPENSSL_cleanse(pem, len);
	free(pem);
	ERR_clear_error();
	return key;
}

/* The sender's ephemeral public key from the epk header member, checked to be on P-256. */
static EVP_PKEY *sample_epk(const json_t *epk)
{
	unsigned char pub[1 + 2 * SAMPLE_EC_LEN], *x = NULL, *y = NULL;
	const char *kty = json_string_value(json_object_get(epk, "kty"));
	const char *crv = json_string_value(json_object_get(epk, "crv"));
	EVP_PKEY_CTX *pctx = NULL, *cctx = NULL;
	EVP_PKEY *peer = NULL;
	OSSL_PARAM p[3];
	size_t xl = 0, yl = 0;

	if (kty == NULL || crv == NULL || strcmp(kty, "EC") != 0 || strcmp(crv, "P-256") != 0 ||
	    json_object_get(epk, "d") != NULL ||
	    (x = sample_b64url(json_string_value(json_object_get(epk, "x")), SAMPLE_EC_LEN,
	                       SAMPLE_EC_LEN, &xl)) == NULL ||
	    (y = sample_b64url(json_string_value(json_object_get(epk, "y")), SAMPLE_EC_LEN,
	                       SAMPLE_EC_LEN, &yl)) == NULL)
		goto fail;
	pub[0] = 0x04; /* uncompressed point */
	memcpy(pub + 1, x, SAMPLE_EC_LEN);
	memcpy(pub + 1 + SAMPLE_EC_LEN, y, SAMPLE_EC_LEN);
	p[0] =
	    OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0);
	p[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
	p[2] = OSSL_PARAM_construct_end();
	if ((pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(pctx) != 1 ||
	    EVP_PKEY_fromdata(pctx, &peer, EVP_PKEY_PUBLIC_KEY, p) != 1 ||
	    (cctx = EVP_PKEY_CTX_new(peer, NULL)) == NULL || EVP_PKEY_public_check(cctx) != 1) {
		EVP_PKEY_free(peer);
		peer = NULL;
	}
fail:
	EVP_PKEY_CTX_free(cctx);
	EVP_PKEY_CTX_free(pctx);
	sample_b64url_free(x, xl);
	sample_b64url_free(y, yl);
	ERR_clear_error();
	return peer;
}

/* Append a 32-bit big-endian length and the bytes (Concat KDF's OtherInfo fields). */
static size_t sample_put_field(unsigned char *buf, size_t off, const void *data, size_t len)
{
	buf[off] = (unsigned char)(len >> 24);
	buf[off + 1] = (unsigned char)(len >> 16);
	buf[off + 2] = (unsigned char)(len >> 8);
	buf[off + 3] = (unsigned char)len;
	if (len > 0)
		memcpy(buf + off + 4, data, len);
	return off + 4 + len;
}

/*
 * The A256GCM content key of ECDH-ES (RFC 7518 4.6.2): Concat KDF over Z with OtherInfo =
 * AlgorithmID ("A256GCM") || PartyUInfo (apu) || PartyVInfo (apv) || SuppPubInfo (256).
 */
static int sample_ecdh_cek(EVP_PKEY *key, const json_t *hdr, unsigned char cek[32])
{
	unsigned char z[SAMPLE_EC_LEN], info[4 + 7 + 2 * (4 + 64) + 4], bits[4] = {0, 0, 1, 0};
	unsigned char *apu = NULL, *apv = NULL;
	size_t zlen = sizeof(z), apul = 0, apvl = 0, off;
	const char *s;
	EVP_PKEY_CTX *dctx = NULL;
	EVP_PKEY *peer;
	int rc = -1;

	if ((peer = sample_epk(json_object_get(hdr, "epk"))) == NULL)
		return -1;
	if (((s = json_string_value(json_object_get(hdr, "apu"))) != NULL &&
	     (apu = sample_b64url(s, 0, 64, &apul)) == NULL) ||
	    ((s = json_string_value(json_object_get(hdr, "apv"))) != NULL &&
	     (apv = sample_b64url(s, 0, 64, &apvl)) == NULL))
		goto fail;
	if ((dctx = EVP_PKEY_CTX_new(key, NULL)) == NULL || EVP_PKEY_derive_init(dctx) != 1 ||
	    EVP_PKEY_derive_set_peer(dctx, peer) != 1 || EVP_PKEY_derive(dctx, z, &zlen) != 1 ||
	    zlen != sizeof(z))
		goto fail;
	off = sample_put_field(info, 0, "A256GCM", 7);
	off = sample_put_field(info, off, apu, apul);
	off = sample_put_field(info, off, apv, apvl);
	memcpy(info + off, bits, sizeof(bits));
	off += sizeof(bits);
	rc = sample_kdf(OSSL_KDF_NAME_SSKDF, z, zlen, NULL, 0, info, off, cek, 32);
fail:
	OPENSSL_cleanse(z, sizeof(z));
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(peer);
	sample_b64url_free(apu, apul);
	sample_b64url_free(apv, apvl);
	ERR_clear_error();
	return rc;
}

/* AES-256-GCM decryption: a malloc'd NUL-terminated plaintext, or NULL. */
static char *sample_gcm_open(const unsigned char cek[32], const unsigned char *iv, const char *aad,
                             size_t aadlen, const unsigned char *ct, size_t ctlen,
                             unsigned char *tag, size_t *ptlen)
{
	EVP_CIPHER_CTX *cc;
	char *pt;
	int n = 0, m = 0, ok;

	if (ctlen > SAMPLE_MAX_PERSO || (pt = malloc(ctlen + 1)) == NULL)
		return NULL;
	if ((cc = EVP_CIPHER_CTX_new()) == NULL) {
		free(pt);
		return NULL;
	}
	ok = EVP_DecryptInit_ex(cc, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
	     EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_GCM_SET_IVLEN, SAMPLE_GCM_IV, NULL) == 1 &&
	     EVP_DecryptInit_ex(cc, NULL, NULL, cek, iv) == 1 &&
	     EVP_DecryptUpdate(cc, NULL, &n, (const unsigned char *)aad, (int)aadlen) == 1 &&
	     EVP_DecryptUpdate(cc, (unsigned char *)pt, &n, ct, (int)ctlen) == 1 &&
	     EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_GCM_SET_TAG, SAMPLE_GCM_TAG, tag) == 1 &&
	     EVP_DecryptFinal_ex(cc, (unsigned char *)pt + n, &m) == 1;
	EVP_CIPHER_CTX_free(cc);
	ERR_clear_error();
	if (!ok) {
		OPENSSL_cleanse(pt, ctlen);
		free(pt);
		return NULL;
	}
	*ptlen = (size_t)(n + m);
	pt[*ptlen] = '\0';
	return pt;
}

/* Open the personalization data: compact JWE, ECDH-ES + A256GCM, to our key. */
static char *sample_jwe_open(EVP_PKEY *key, const char *jwe, size_t *ptlen, char *err,
                             size_t errlen)
{
	unsigned char cek[32], *iv = NULL, *ct = NULL, *tag = NULL;
	const char *part[5], *alg, *enc;
	char *dup = NULL, *pt = NULL, *hdrtext = NULL, *p;
	size_t n, hl = 0, ivl = 0, ctl = 0, tagl = 0;
	json_t *hdr = NULL;
	int k = 0;

	if (jwe == NULL || (n = strnlen(jwe, SAMPLE_MAX_PERSO + 1)) == 0 || n > SAMPLE_MAX_PERSO ||
	    (dup = strdup(jwe)) == NULL) {
		snprintf(err, errlen, "personalization data missing or too long");
		return NULL;
	}
	part[0] = dup;
	for (p = dup; *p != '\0' && k < 5; p++)
		if (*p == '.') {
			*p = '\0';
			if (++k < 5)
				part[k] = p + 1;
		}
	/* ECDH-ES in direct key agreement mode has no encrypted key. */
	if (k != 4 || part[1][0] != '\0') {
		snprintf(err, errlen, "personalization data is not a compact ECDH-ES JWE");
		goto fail;
	}
	if ((hdrtext = (char *)sample_b64url(part[0], 0, 4096, &hl)) == NULL ||
	    (hdr = json_loadb(hdrtext, hl, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(hdr) ||
	    (alg = json_string_value(json_object_get(hdr, "alg"))) == NULL ||
	    (enc = json_string_value(json_object_get(hdr, "enc"))) == NULL ||
	    strcmp(alg, "ECDH-ES") != 0 || strcmp(enc, "A256GCM") != 0 ||
	    json_object_get(hdr, "zip") != NULL || json_object_get(hdr, "crit") != NULL) {
		snprintf(err, errlen, "personalization data is not ECDH-ES with A256GCM");
		goto fail;
	}
	if ((iv = sample_b64url(part[2], SAMPLE_GCM_IV, SAMPLE_GCM_IV, &ivl)) == NULL ||
	    (ct = sample_b64url(part[3], 0, SAMPLE_MAX_PERSO, &ctl)) == NULL || ctl == 0 ||
	    (tag = sample_b64url(part[4], SAMPLE_GCM_TAG, SAMPLE_GCM_TAG, &tagl)) == NULL) {
		snprintf(err, errlen, "personalization data has malformed parts");
		goto fail;
	}
	if (sample_ecdh_cek(key, hdr, cek) == -1) {
		snprintf(err, errlen, "personalization data: no key agreement with its epk");
		goto fail;
	}
	/* The AAD is the protected header exactly as sent (RFC 7516 5.2 step 14). */
	if ((pt = sample_gcm_open(cek, iv, part[0], strlen(part[0]), ct, ctl, tag, ptlen)) == NULL)
		snprintf(err, errlen, "personalization data does not decrypt with this CDCS's key");
	OPENSSL_cleanse(cek, sizeof(cek));
fail:
	json_decref(hdr);
	sample_b64url_free((unsigned char *)hdrtext, hl);
	sample_b64url_free(iv, ivl);
	sample_b64url_free(ct, ctl);
	sample_b64url_free(tag, tagl);
	free(dup);
	return pt;
}

/* 1 if v is an array of at most SAMPLE_MAX_KEYS distinct valid levels. */
static int sample_rights_ok(const json_t *v)
{
	size_t i, j;

	if (!json_is_array(v) || json_array_size(v) > SAMPLE_MAX_KEYS)
		return 0;
	for (i = 0; i < json_array_size(v); i++) {
		if (!sample_level_ok(json_string_value(json_array_get(v, i))))
			return 0;
		for (j = 0; j < i; j++)
			if (json_equal(json_array_get(v, i), json_array_get(v, j)))
				return 0;
	}
	return 1;
}

static int sample_has_right(const json_t *rights, const char *level)
{
	size_t i;

	for (i = 0; i < json_array_size(rights); i++)
		if (strcmp(json_string_value(json_array_get(rights, i)), level) == 0)
			return 1;
	return 0;
}

/*
 * Check personalization data d (docs/cdcs-abi.md) for this CDCS and decode its keys into ks:
 * confirm is required when it is being applied, absent in the stored perso.json.
 */
static int sample_perso_check(struct sample_cdcs *c, const json_t *d, int applying,
                              struct sample_keys *ks, char *err, size_t errlen)
{
	const char *vendor = c->ops->vendor, *s, *level;
	const json_t *rights, *keys, *v;
	unsigned char *raw;
	size_t vl = strlen(vendor), len;

	memset(ks, 0, sizeof(*ks));
	if (!json_is_object(d) || !json_is_integer(json_object_get(d, "v")) ||
	    json_integer_value(json_object_get(d, "v")) != 1) {
		snprintf(err, errlen, "personalization data: not version 1");
		return -1;
	}
	if ((s = json_string_value(json_object_get(d, "vendor"))) == NULL ||
	    strcmp(s, vendor) != 0 || (s = json_string_value(json_object_get(d, "name"))) == NULL ||
	    strcmp(s, c->ops->name) != 0) {
		snprintf(err, errlen, "personalization data is for another CDCS, not %s/%s", vendor,
		         c->ops->name);
		return -1;
	}
	if ((s = json_string_value(json_object_get(d, "dm_id"))) == NULL || s[0] == '\0' ||
	    strlen(s) > SAMPLE_MAX_DM_ID) {
		snprintf(err, errlen, "personalization data: bad 'dm_id'");
		return -1;
	}
	if ((s = json_string_value(json_object_get(d, "cdcs_id"))) == NULL ||
	    strncmp(s, vendor, vl) != 0 || s[vl] != '-' ||
	    !sample_hex_ok(s + vl + 1, SAMPLE_CDCS_ID_HEX)) {
		snprintf(err, errlen, "personalization data: bad 'cdcs_id'");
		return -1;
	}
	if (!sample_hex_ok(json_string_value(json_object_get(d, "perso_id")), SAMPLE_HEX_ID) ||
	    (applying &&
	     !sample_hex_ok(json_string_value(json_object_get(d, "confirm")), SAMPLE_HEX_ID))) {
		snprintf(err, errlen, "personalization data: bad 'perso_id' or 'confirm'");
		return -1;
	}
	if (!json_is_integer(json_object_get(d, "iat"))) {
		snprintf(err, errlen, "personalization data: bad 'iat'");
		return -1;
	}
	rights = json_object_get(d, "rights");
	keys = json_object_get(d, "keys");
	if (!sample_rights_ok(rights) || !json_is_object(keys) ||
	    json_object_size(keys) > SAMPLE_MAX_KEYS) {
		snprintf(err, errlen, "personalization data: bad 'rights' or 'keys'");
		return -1;
	}
	/* A key only for a level among the rights: the keys never give more than the rights. */
	json_object_foreach((json_t *)keys, level, v)
	{
		if (!sample_level_ok(level) || !sample_has_right(rights, level) ||
		    (raw = sample_b64url(json_string_value(v), SAMPLE_KEY_LEN, SAMPLE_KEY_LEN,
		                         &len)) == NULL) {
			snprintf(err, errlen, "personalization data: bad key for level '%.32s'",
			         level);
			OPENSSL_cleanse(ks, sizeof(*ks));
			return -1;
		}
		snprintf(ks->k[ks->n].level, sizeof(ks->k[ks->n].level), "%s", level);
		memcpy(ks->k[ks->n].key, raw, SAMPLE_KEY_LEN);
		ks->n++;
		sample_b64url_free(raw, len);
	}
	return 0;
}

int sample_init(const struct odm_cdcs_host *host, const struct odm_cdcs_ops *ops, void **ctx)
{
	struct sample_cdcs *c;
	char err[SAMPLE_ERR], sys[2 * SAMPLE_VENDOR_MAX + 2], *text;
	size_t len = 0;

	if (host == NULL || host->abi_version != ODM_CDCS_ABI_VERSION || ctx == NULL ||
	    (c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->host = host;
	c->ops = ops;
	snprintf(sys, sizeof(sys), "%s/%s", ops->vendor, ops->name);
	if (sample_system_parse(sys, &c->sys) == -1) {
		sample_log(c, ODM_CDCS_LOG_ERR, "%.130s is no sample content system", sys);
		free(c);
		return -1;
	}
	/* An item that is there but not valid is a fault to show, not a reason to start over. */
	if ((text = sample_store_text(c, "perso.json", SAMPLE_MAX_STATE, &len)) != NULL) {
		c->perso = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
		OPENSSL_cleanse(text, len);
		free(text);
		if (sample_perso_check(c, c->perso, 0, &c->keys, err, sizeof(err)) == -1) {
			sample_log(c, ODM_CDCS_LOG_ERR, "sealed state perso.json: %s", err);
			sample_fini(c);
			return -1;
		}
	}
	sample_log(c, ODM_CDCS_LOG_INFO, "started: %s", c->perso != NULL ? "personalized" : "new");
	*ctx = c;
	return 0;
}

int sample_perso_request(void *ctx, const char *ticket, char **request_json)
{
	struct sample_cdcs *c = ctx;
	char *priv = NULL, *pub = NULL;
	EVP_PKEY *key = NULL;
	json_t *req = NULL;
	int rc = -1;

	if (ticket == NULL || ticket[0] == '\0' || strlen(ticket) > SAMPLE_MAX_TICKET) {
		sample_log(c, ODM_CDCS_LOG_ERR, "personalization ticket missing or too long");
		return -1;
	}
	/* A new key pair per request: the private key never leaves sealed storage. */
	if ((key = EVP_EC_gen("P-256")) == NULL || (priv = sample_pem(key, 1)) == NULL ||
	    (pub = sample_pem(key, 0)) == NULL) {
		sample_log(c, ODM_CDCS_LOG_ERR, "cannot make the CDCS key pair");
		goto fail;
	}
	if (c->host->store_put(c->host->arg, "key.pem", priv, strlen(priv)) == -1) {
		sample_log(c, ODM_CDCS_LOG_ERR, "cannot keep the CDCS key in sealed storage");
		goto fail;
	}
	if ((req = json_pack("{s:s, s:s, s:s, s:s}", "personalization_ticket", ticket, "public_key",
	                     pub, "vendor", c->ops->vendor, "name", c->ops->name)) == NULL ||
	    (*request_json = json_dumps(req, JSON_COMPACT)) == NULL)
		goto fail;
	sample_log(c, ODM_CDCS_LOG_INFO, "personalization request made (new EC P-256 key)");
	rc = 0;
fail:
	if (priv != NULL) {
		OPENSSL_cleanse(priv, strlen(priv));
		free(priv);
	}
	free(pub);
	json_decref(req);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

int sample_perso_apply(void *ctx, const char *data, char **confirmation)
{
	struct sample_cdcs *c = ctx;
	struct sample_keys ks;
	char err[SAMPLE_ERR], *pt = NULL, *state = NULL;
	EVP_PKEY *key;
	json_t *d = NULL;
	size_t ptlen = 0;
	int rc = -1;

	memset(&ks, 0, sizeof(ks));
	if ((key = sample_key_load(c)) == NULL)
		return -1;
	if ((pt = sample_jwe_open(key, data, &ptlen, err, sizeof(err))) == NULL ||
	    (d = json_loadb(pt, ptlen, JSON_REJECT_DUPLICATES, NULL)) == NULL) {
		sample_log(c, ODM_CDCS_LOG_ERR, "%s", pt == NULL ? err : "not a JSON object");
		goto fail;
	}
	if (sample_perso_check(c, d, 1, &ks, err, sizeof(err)) == -1) {
		sample_log(c, ODM_CDCS_LOG_ERR, "%s", err);
		goto fail;
	}
	if ((*confirmation = strdup(json_string_value(json_object_get(d, "confirm")))) == NULL)
		goto fail;
	/* The confirm value is proof for the CDCS_ISS, once: it is not kept. */
	json_object_del(d, "confirm");
	if ((state = json_dumps(d, JSON_COMPACT)) == NULL ||
	    c->host->store_put(c->host->arg, "perso.json", state, strlen(state)) == -1) {
		sample_log(c, ODM_CDCS_LOG_ERR,
		           "cannot keep the personalization in sealed storage");
		free(*confirmation);
		*confirmation = NULL;
		goto fail;
	}
	json_decref(c->perso);
	c->perso = d;
	d = NULL;
	OPENSSL_cleanse(&c->keys, sizeof(c->keys));
	c->keys = ks;
	sample_log(c, ODM_CDCS_LOG_INFO, "personalized: cdcs_id=%s, %zu entitlement key(s)",
	           json_string_value(json_object_get(c->perso, "cdcs_id")), ks.n);
	rc = 0;
fail:
	OPENSSL_cleanse(&ks, sizeof(ks));
	if (pt != NULL) {
		OPENSSL_cleanse(pt, ptlen);
		free(pt);
	}
	if (state != NULL) {
		OPENSSL_cleanse(state, strlen(state));
		free(state);
	}
	json_decref(d);
	EVP_PKEY_free(key);
	return rc;
}

int sample_decrypt(void *ctx, const void *in, size_t inlen, void **out, size_t *outlen)
{
	struct sample_cdcs *c = ctx;
	struct sample_content sc;
	char err[SAMPLE_ERR];
	size_t i;

	if (c->perso == NULL) {
		sample_log(c, ODM_CDCS_LOG_WARN, "not personalized: no content can be opened");
		return -1;
	}
	if (sample_content_parse(&c->sys, in, inlen, &sc, err, sizeof(err)) == -1) {
		sample_log(c, ODM_CDCS_LOG_WARN, "%s", err);
		return -1;
	}
	for (i = 0; i < c->keys.n; i++)
		if (strcmp(c->keys.k[i].level, sc.level) == 0)
			break;
	if (i == c->keys.n) {
		sample_log(c, ODM_CDCS_LOG_WARN, "not entitled to level %s", sc.level);
		return -1;
	}
	if (sample_content_decrypt(&sc, c->keys.k[i].key, in, inlen, out, outlen, err,
	                           sizeof(err)) == -1) {
		sample_log(c, ODM_CDCS_LOG_WARN, "%s", err);
		return -1;
	}
	return 0;
}

int sample_status(void *ctx, char **status_json)
{
	struct sample_cdcs *c = ctx;
	json_t *st, *entitled;
	size_t i;
	int rc = -1;

	if ((st = json_pack("{s:s, s:s, s:s, s:b}", "vendor", c->ops->vendor, "name", c->ops->name,
	                    "kind", c->ops->kind, "personalized", c->perso != NULL)) == NULL)
		return -1;
	/* Identity and levels only: the keys and the confirm value stay inside. */
	if (c->perso != NULL) {
		if ((entitled = json_array()) == NULL ||
		    json_object_set_new(st, "entitled", entitled) == -1)
			goto fail;
		for (i = 0; i < c->keys.n; i++)
			if (json_array_append_new(entitled, json_string(c->keys.k[i].level)) == -1)
				goto fail;
		if (json_object_set(st, "dm_id", json_object_get(c->perso, "dm_id")) == -1 ||
		    json_object_set(st, "cdcs_id", json_object_get(c->perso, "cdcs_id")) == -1 ||
		    json_object_set(st, "perso_id", json_object_get(c->perso, "perso_id")) == -1 ||
		    json_object_set(st, "rights", json_object_get(c->perso, "rights")) == -1)
			goto fail;
	}
	if ((*status_json = json_dumps(st, JSON_COMPACT)) != NULL)
		rc = 0;
fail:
	json_decref(st);
	return rc;
}

void sample_fini(void *ctx)
{
	struct sample_cdcs *c = ctx;

	if (c == NULL)
		return;
	OPENSSL_cleanse(&c->keys, sizeof(c->keys));
	json_decref(c->perso);
	free(c);
}
