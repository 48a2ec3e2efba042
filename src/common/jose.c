/*
 * jose: compact JWS (ES256) tokens and compact JWE (ECDH-ES + A256GCM) secrets with cjose.
 *
 * cjose trusts the "alg" of whatever it imports, so the algorithm is pinned here before any
 * key is used: a token saying "none" or "HS256" is refused whatever cjose would make of it.
 * The JWE tag length is checked here too, because cjose before 0.6.2.2 accepted truncated
 * GCM tags (CVE-2023-37464), and a distribution may ship such a build.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "opendm/jose.h"
#include "opendm/log.h"

#define JOSE_EC_LEN      32
#define JOSE_MAX_JTI     128
#define JOSE_MAX_KID     128
#define JOSE_MAX_SECRET  (1024 * 1024)
#define JOSE_MAX_JWE     (2 * JOSE_MAX_SECRET)
#define JOSE_GCM_TAG_B64 22 /* 16 bytes, base64url without padding */
#define JOSE_JTI_BYTES   16

/* Errors go to the caller's buffer (log.c). */
#define jose_seterr(err, errlen, ...) log_seterr(err, errlen, __func__, __VA_ARGS__)

static const char *jose_cjerr(const cjose_err *cerr)
{
	return cerr->message != NULL ? cerr->message : "unknown cjose error";
}

cjose_jwk_t *jose_jwk(EVP_PKEY *key, int priv, char *err, size_t errlen)
{
	unsigned char xb[JOSE_EC_LEN], yb[JOSE_EC_LEN], db[JOSE_EC_LEN];
	BIGNUM *x = NULL, *y = NULL, *d = NULL;
	cjose_jwk_ec_keyspec spec;
	cjose_jwk_t *jwk = NULL;
	cjose_err cerr = {0};
	char group[32];

	if (key == NULL || !EVP_PKEY_is_a(key, "EC") ||
	    !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                    NULL) ||
	    strcmp(group, "prime256v1") != 0) {
		jose_seterr(err, errlen, "key is not EC P-256");
		goto fail;
	}
	if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
	    !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) ||
	    BN_bn2binpad(x, xb, JOSE_EC_LEN) != JOSE_EC_LEN ||
	    BN_bn2binpad(y, yb, JOSE_EC_LEN) != JOSE_EC_LEN) {
		jose_seterr(err, errlen, "cannot read the public key");
		goto fail;
	}
	memset(&spec, 0, sizeof(spec));
	spec.crv = CJOSE_JWK_EC_P_256;
	spec.x = xb;
	spec.xlen = JOSE_EC_LEN;
	spec.y = yb;
	spec.ylen = JOSE_EC_LEN;
	if (priv) {
		if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) ||
		    BN_bn2binpad(d, db, JOSE_EC_LEN) != JOSE_EC_LEN) {
			jose_seterr(err, errlen, "not a private key");
			goto fail;
		}
		spec.d = db;
		spec.dlen = JOSE_EC_LEN;
	}
	if ((jwk = cjose_jwk_create_EC_spec(&spec, &cerr)) == NULL)
		jose_seterr(err, errlen, "cannot make JWK: %s", jose_cjerr(&cerr));
fail:
	OPENSSL_cleanse(db, sizeof(db));
	BN_clear_free(d);
	BN_free(x);
	BN_free(y);
	return jwk;
}

int jose_random_hex(char *buf, size_t buflen, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[64];
	size_t i;

	if (buf == NULL || nbytes == 0 || nbytes > sizeof(rnd) || buflen < 2 * nbytes + 1)
		return -1;
	if (RAND_bytes(rnd, (int)nbytes) != 1) {
		ERR_clear_error();
		return -1;
	}
	for (i = 0; i < nbytes; i++) {
		buf[2 * i] = hex[rnd[i] >> 4];
		buf[2 * i + 1] = hex[rnd[i] & 0xf];
	}
	buf[2 * nbytes] = '\0';
	return 0;
}

/* iat, exp and jti, each unless the caller set it. */
static int jose_claims_complete(json_t *c, int64_t ttl_s, char *err, size_t errlen)
{
	char jti[2 * JOSE_JTI_BYTES + 1];
	json_t *iat;
	json_int_t iat_v;

	if ((iat = json_object_get(c, "iat")) == NULL) {
		iat_v = (json_int_t)time(NULL);
		if (json_object_set_new(c, "iat", json_integer(iat_v)) == -1)
			goto nomem;
	} else if (json_is_integer(iat)) {
		iat_v = json_integer_value(iat);
	} else {
		jose_seterr(err, errlen, "claim iat is not an integer");
		return -1;
	}
	if (json_object_get(c, "exp") == NULL) {
		if (ttl_s <= 0) {
			jose_seterr(err, errlen, "no exp claim and no positive ttl");
			return -1;
		}
		if (json_object_set_new(c, "exp", json_integer(iat_v + (json_int_t)ttl_s)) == -1)
			goto nomem;
	}
	if (json_object_get(c, "jti") == NULL) {
		if (jose_random_hex(jti, sizeof(jti), JOSE_JTI_BYTES) == -1) {
			jose_seterr(err, errlen, "no randomness for jti");
			return -1;
		}
		if (json_object_set_new(c, "jti", json_string(jti)) == -1)
			goto nomem;
	}
	return 0;
nomem:
	jose_seterr(err, errlen, "out of memory");
	return -1;
}

char *jose_sign(EVP_PKEY *key, const char *kid, const json_t *claims, int64_t ttl_s, char *err,
                size_t errlen)
{
	cjose_jwk_t *jwk = NULL;
	cjose_header_t *hdr = NULL;
	cjose_jws_t *jws = NULL;
	cjose_err cerr = {0};
	json_t *c = NULL;
	char *payload = NULL, *out = NULL;
	const char *ser = NULL;

	if (claims == NULL || !json_is_object(claims)) {
		jose_seterr(err, errlen, "claims are not a JSON object");
		goto fail;
	}
	if (kid != NULL && strlen(kid) > JOSE_MAX_KID) {
		jose_seterr(err, errlen, "kid too long");
		goto fail;
	}
	if ((c = json_deep_copy(claims)) == NULL) {
		jose_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (jose_claims_complete(c, ttl_s, err, errlen) == -1)
		goto fail;
	if ((payload = json_dumps(c, JSON_COMPACT)) == NULL) {
		jose_seterr(err, errlen, "cannot serialize claims");
		goto fail;
	}
	if ((jwk = jose_jwk(key, 1, err, errlen)) == NULL)
		goto fail;
	if ((hdr = cjose_header_new(&cerr)) == NULL ||
	    !cjose_header_set(hdr, CJOSE_HDR_ALG, CJOSE_HDR_ALG_ES256, &cerr) ||
	    !cjose_header_set(hdr, "typ", "JWT", &cerr) ||
	    (kid != NULL && !cjose_header_set(hdr, CJOSE_HDR_KID, kid, &cerr))) {
		jose_seterr(err, errlen, "JWS header: %s", jose_cjerr(&cerr));
		goto fail;
	}
	if ((jws = cjose_jws_sign(jwk, hdr, (const uint8_t *)payload, strlen(payload), &cerr)) ==
	        NULL ||
	    !cjose_jws_export(jws, &ser, &cerr)) {
		jose_seterr(err, errlen, "JWS signing: %s", jose_cjerr(&cerr));
		goto fail;
	}
	if ((out = strdup(ser)) == NULL)
		jose_seterr(err, errlen, "out of memory");
fail:
	cjose_jws_release(jws);
	cjose_header_release(hdr);
	cjose_jwk_release(jwk);
	free(payload);
	json_decref(c);
	ERR_clear_error();
	return out;
}

static int jose_aud_ok(const json_t *aud, const char *want)
{
	size_t i;
	const json_t *v;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (!json_is_array(aud))
		return 0;
	json_array_foreach(aud, i, v)
	{
		if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
			return 1;
	}
	return 0;
}

static int jose_str_eq(const json_t *v, const char *want)
{
	return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

/*
 * A replay store that cannot be written is a fault on our side, not in the token: its code
 * is "internal_error", so that the caller answers 500 and the client may retry.
 */
json_t *jose_verify(EVP_PKEY *pub, const char *token, const struct jose_expect *want,
                    const char **code, char *err, size_t errlen)
{
	cjose_jwk_t *jwk = NULL;
	cjose_jws_t *jws = NULL;
	cjose_header_t *hdr;
	cjose_err cerr = {0};
	json_error_t jerr;
	json_t *c = NULL, *v;
	const char *alg, *jti, *dummy;
	uint8_t *pt = NULL;
	size_t len, ptlen = 0;
	json_int_t exp_v, iat_v;
	time_t now;
	int r;

	if (code == NULL)
		code = &dummy;
	*code = "bad_token";
	if (want == NULL || want->iss == NULL || want->aud == NULL) {
		jose_seterr(err, errlen, "no expected issuer or audience");
		*code = "internal_error";
		goto fail;
	}
	if (token == NULL || (len = strnlen(token, JOSE_MAX_TOKEN + 1)) == 0 ||
	    len > JOSE_MAX_TOKEN) {
		jose_seterr(err, errlen, "token missing or longer than %d bytes", JOSE_MAX_TOKEN);
		goto fail;
	}
	if ((jws = cjose_jws_import(token, len, &cerr)) == NULL) {
		jose_seterr(err, errlen, "malformed token: %s", jose_cjerr(&cerr));
		goto fail;
	}
	if ((hdr = cjose_jws_get_protected(jws)) == NULL ||
	    (alg = cjose_header_get(hdr, CJOSE_HDR_ALG, &cerr)) == NULL ||
	    strcmp(alg, CJOSE_HDR_ALG_ES256) != 0) {
		jose_seterr(err, errlen, "token algorithm is not ES256");
		goto fail;
	}
	if ((jwk = jose_jwk(pub, 0, err, errlen)) == NULL) {
		*code = "internal_error";
		goto fail;
	}
	if (!cjose_jws_verify(jws, jwk, &cerr)) {
		jose_seterr(err, errlen, "token signature does not verify");
		goto fail;
	}
	if (!cjose_jws_get_plaintext(jws, &pt, &ptlen, &cerr) ||
	    (c = json_loadb((const char *)pt, ptlen, JSON_REJECT_DUPLICATES, &jerr)) == NULL ||
	    !json_is_object(c)) {
		jose_seterr(err, errlen, "token claims are not a JSON object");
		goto fail;
	}
	if (!jose_str_eq(json_object_get(c, "iss"), want->iss)) {
		*code = "wrong_issuer";
		jose_seterr(err, errlen, "token issuer is not %s", want->iss);
		goto fail;
	}
	if (!jose_aud_ok(json_object_get(c, "aud"), want->aud)) {
		*code = "wrong_audience";
		jose_seterr(err, errlen, "token audience is not %s", want->aud);
		goto fail;
	}
	now = want->now != 0 ? want->now : time(NULL);
	v = json_object_get(c, "exp");
	if (!json_is_integer(v)) {
		jose_seterr(err, errlen, "token has no integer exp");
		goto fail;
	}
	exp_v = json_integer_value(v);
	if (exp_v <= (json_int_t)now - JOSE_CLOCK_SKEW) {
		*code = "token_expired";
		jose_seterr(err, errlen, "token expired");
		goto fail;
	}
	v = json_object_get(c, "iat");
	if (!json_is_integer(v)) {
		jose_seterr(err, errlen, "token has no integer iat");
		goto fail;
	}
	iat_v = json_integer_value(v);
	if (iat_v > (json_int_t)now + JOSE_CLOCK_SKEW) {
		jose_seterr(err, errlen, "token issued in the future");
		goto fail;
	}
	if (want->sub != NULL && !jose_str_eq(json_object_get(c, "sub"), want->sub)) {
		*code = "wrong_subject";
		jose_seterr(err, errlen, "token subject does not match");
		goto fail;
	}
	if (want->jti_fn != NULL) {
		v = json_object_get(c, "jti");
		if (!json_is_string(v) || (jti = json_string_value(v))[0] == '\0' ||
		    strlen(jti) > JOSE_MAX_JTI) {
			jose_seterr(err, errlen, "token has no usable jti");
			goto fail;
		}
		if ((r = want->jti_fn(want->jti_arg, jti, (int64_t)exp_v)) == 1) {
			*code = "token_replayed";
			jose_seterr(err, errlen, "token already used");
			goto fail;
		}
		if (r != 0) {
			*code = "internal_error";
			jose_seterr(err, errlen, "cannot record token id");
			goto fail;
		}
	}
	cjose_jws_release(jws);
	cjose_jwk_release(jwk);
	ERR_clear_error();
	return c;
fail:
	json_decref(c);
	cjose_jws_release(jws);
	cjose_jwk_release(jwk);
	ERR_clear_error();
	return NULL;
}

char *jose_encrypt(EVP_PKEY *pub, const void *plaintext, size_t len, char *err, size_t errlen)
{
	cjose_jwk_t *jwk = NULL;
	cjose_header_t *hdr = NULL;
	cjose_jwe_t *jwe = NULL;
	cjose_err cerr = {0};
	char *ser = NULL, *out = NULL;

	if (plaintext == NULL || len == 0 || len > JOSE_MAX_SECRET) {
		jose_seterr(err, errlen, "secret empty or larger than %d bytes", JOSE_MAX_SECRET);
		goto fail;
	}
	if ((jwk = jose_jwk(pub, 0, err, errlen)) == NULL)
		goto fail;
	if ((hdr = cjose_header_new(&cerr)) == NULL ||
	    !cjose_header_set(hdr, CJOSE_HDR_ALG, CJOSE_HDR_ALG_ECDH_ES, &cerr) ||
	    !cjose_header_set(hdr, CJOSE_HDR_ENC, CJOSE_HDR_ENC_A256GCM, &cerr)) {
		jose_seterr(err, errlen, "JWE header: %s", jose_cjerr(&cerr));
		goto fail;
	}
	if ((jwe = cjose_jwe_encrypt(jwk, hdr, plaintext, len, &cerr)) == NULL ||
	    (ser = cjose_jwe_export(jwe, &cerr)) == NULL) {
		jose_seterr(err, errlen, "JWE encryption: %s", jose_cjerr(&cerr));
		goto fail;
	}
	if ((out = strdup(ser)) == NULL)
		jose_seterr(err, errlen, "out of memory");
fail:
	if (ser != NULL)
		cjose_get_dealloc()(ser);
	cjose_jwe_release(jwe);
	cjose_header_release(hdr);
	cjose_jwk_release(jwk);
	ERR_clear_error();
	return out;
}

/* Five parts, and a 128-bit tag (see the top of this file). */
static int jose_jwe_shape_ok(const char *jwe, size_t len)
{
	const char *p, *last = jwe;
	int dots = 0;

	for (p = jwe; p < jwe + len; p++)
		if (*p == '.') {
			dots++;
			last = p + 1;
		}
	return dots == 4 && (size_t)(jwe + len - last) == JOSE_GCM_TAG_B64;
}

void *jose_decrypt(EVP_PKEY *key, const char *jwe, size_t *len, char *err, size_t errlen)
{
	cjose_jwk_t *jwk = NULL;
	cjose_jwe_t *obj = NULL;
	cjose_header_t *hdr;
	cjose_err cerr = {0};
	const char *alg, *enc;
	uint8_t *pt = NULL;
	size_t n, ptlen = 0;
	void *out = NULL;

	if (len != NULL)
		*len = 0;
	if (jwe == NULL || len == NULL || (n = strnlen(jwe, JOSE_MAX_JWE + 1)) == 0 ||
	    n > JOSE_MAX_JWE || !jose_jwe_shape_ok(jwe, n)) {
		jose_seterr(err, errlen, "malformed JWE");
		goto fail;
	}
	if ((obj = cjose_jwe_import(jwe, n, &cerr)) == NULL) {
		jose_seterr(err, errlen, "malformed JWE: %s", jose_cjerr(&cerr));
		goto fail;
	}
	if ((hdr = cjose_jwe_get_protected(obj)) == NULL ||
	    (alg = cjose_header_get(hdr, CJOSE_HDR_ALG, &cerr)) == NULL ||
	    (enc = cjose_header_get(hdr, CJOSE_HDR_ENC, &cerr)) == NULL ||
	    strcmp(alg, CJOSE_HDR_ALG_ECDH_ES) != 0 || strcmp(enc, CJOSE_HDR_ENC_A256GCM) != 0) {
		jose_seterr(err, errlen, "JWE is not ECDH-ES with A256GCM");
		goto fail;
	}
	if ((jwk = jose_jwk(key, 1, err, errlen)) == NULL)
		goto fail;
	if ((pt = cjose_jwe_decrypt(obj, jwk, &ptlen, &cerr)) == NULL) {
		jose_seterr(err, errlen, "JWE does not decrypt with this key");
		goto fail;
	}
	/* One byte more, so that text secrets can be used as C strings. */
	if ((out = malloc(ptlen + 1)) == NULL) {
		jose_seterr(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(out, pt, ptlen);
	((char *)out)[ptlen] = '\0';
	*len = ptlen;
fail:
	if (pt != NULL) {
		OPENSSL_cleanse(pt, ptlen);
		cjose_get_dealloc()(pt);
	}
	cjose_jwe_release(obj);
	cjose_jwk_release(jwk);
	ERR_clear_error();
	return out;
}

int jose_code_status(const char *code)
{
	if (code == NULL || strcmp(code, "internal_error") == 0)
		return 500;
	if (strcmp(code, "wrong_subject") == 0)
		return 403;
	if (strcmp(code, "token_replayed") == 0)
		return 409;
	return 401; /* bad_token, token_expired, wrong_audience, wrong_issuer */
}
