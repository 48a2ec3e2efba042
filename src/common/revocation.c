/*
 * revocation: the operator's signed revocation list (see revocation.h).
 *
 * The list is a compact JWS ES256 like the operator approvals (cdcsimg.c), but it has no exp
 * (a revocation does not lapse) and a full list is larger than JOSE_MAX_TOKEN, and
 * jose_sign()/jose_verify() insist on both; so it is signed and checked here with cjose,
 * the algorithm pinned to ES256 before the key is used, as jose.c does. Every claim is
 * checked, and nothing else is accepted, by one decoder that signing runs too, so that
 * dmctl cannot sign a list that cdcs-mss or an agent would refuse.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjose/cjose.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "opendm/cdcsimg.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/revocation.h"

#define REVOCATION_CLAIMS 7 /* iss, aud, sub, serial, iat, versions, vendor_keys */

/* Errors go to the caller's buffer (log.c). */
#define revocation_seterr(err, errlen, ...) log_seterr(err, errlen, __func__, __VA_ARGS__)

void revocation_free(struct revocation_list *rl)
{
	if (rl == NULL)
		return;
	free(rl->versions);
	free(rl->keys);
	memset(rl, 0, sizeof(*rl));
}

int revocation_version_revoked(const struct revocation_list *rl, const char *vendor,
                               const char *name, int64_t version_number)
{
	size_t i;

	for (i = 0; rl != NULL && vendor != NULL && name != NULL && i < rl->n_versions; i++)
		if (rl->versions[i].version_number == version_number &&
		    strcmp(rl->versions[i].vendor, vendor) == 0 &&
		    strcmp(rl->versions[i].name, name) == 0)
			return 1;
	return 0;
}

int revocation_key_revoked(const struct revocation_list *rl, const char *vendor,
                           const char *key_sha256)
{
	size_t i;

	for (i = 0; rl != NULL && vendor != NULL && key_sha256 != NULL && i < rl->n_keys; i++)
		if (strcmp(rl->keys[i].key_sha256, key_sha256) == 0 &&
		    strcmp(rl->keys[i].vendor, vendor) == 0)
			return 1;
	return 0;
}

int revocation_key_sha256(EVP_PKEY *key, char out[65])
{
	unsigned char *der = NULL;
	int len;

	if (key == NULL || (len = i2d_PUBKEY(key, &der)) <= 0) {
		ERR_clear_error();
		return -1;
	}
	cdcsimg_sha256_hex(der, (size_t)len, out);
	OPENSSL_free(der);
	return 0;
}

/* A string member of o that is a valid id (vendor, name), copied into buf. 0/-1 + err. */
static int revocation_id(const json_t *o, const char *key, const char *where, size_t i, char *buf,
                         size_t len, char *err, size_t errlen)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (s == NULL || !cdcsimg_valid_id(s) || strlen(s) >= len) {
		revocation_seterr(
		    err, errlen,
		    "%s[%zu].%s: 1-%d of [A-Za-z0-9._-] starting alphanumeric required", where, i,
		    key, CDCSIMG_ID_MAX);
		return -1;
	}
	memcpy(buf, s, strlen(s) + 1);
	return 0;
}

static int revocation_versions(const json_t *a, struct revocation_list *rl, char *err,
                               size_t errlen)
{
	struct revocation_version *v;
	const json_t *o, *n;
	size_t i;

	if (!json_is_array(a) || json_array_size(a) > REVOCATION_MAX_VERSIONS) {
		revocation_seterr(err, errlen, "versions: an array of at most %d entries required",
		                  REVOCATION_MAX_VERSIONS);
		return -1;
	}
	if (json_array_size(a) > 0 &&
	    (rl->versions = calloc(json_array_size(a), sizeof(*rl->versions))) == NULL) {
		revocation_seterr(err, errlen, "out of memory");
		return -1;
	}
	json_array_foreach(a, i, o)
	{
		v = &rl->versions[i];
		if (!json_is_object(o) || json_object_size(o) != 3) {
			revocation_seterr(err, errlen,
			                  "versions[%zu]: an object of vendor, name and "
			                  "version_number required",
			                  i);
			return -1;
		}
		if (revocation_id(o, "vendor", "versions", i, v->vendor, sizeof(v->vendor), err,
		                  errlen) == -1 ||
		    revocation_id(o, "name", "versions", i, v->name, sizeof(v->name), err,
		                  errlen) == -1)
			return -1;
		n = json_object_get(o, "version_number");
		if (!json_is_integer(n) || json_integer_value(n) < 1) {
			revocation_seterr(err, errlen,
			                  "versions[%zu].version_number: an integer >= 1 required",
			                  i);
			return -1;
		}
		v->version_number = (int64_t)json_integer_value(n);
		if (revocation_version_revoked(rl, v->vendor, v->name, v->version_number)) {
			revocation_seterr(err, errlen, "versions[%zu]: listed twice", i);
			return -1;
		}
		rl->n_versions++;
	}
	return 0;
}

static int revocation_keys(const json_t *a, struct revocation_list *rl, char *err, size_t errlen)
{
	struct revocation_key *k;
	const json_t *o;
	const char *hex;
	size_t i;

	if (!json_is_array(a) || json_array_size(a) > REVOCATION_MAX_KEYS) {
		revocation_seterr(err, errlen,
		                  "vendor_keys: an array of at most %d entries required",
		                  REVOCATION_MAX_KEYS);
		return -1;
	}
	if (json_array_size(a) > 0 &&
	    (rl->keys = calloc(json_array_size(a), sizeof(*rl->keys))) == NULL) {
		revocation_seterr(err, errlen, "out of memory");
		return -1;
	}
	json_array_foreach(a, i, o)
	{
		k = &rl->keys[i];
		if (!json_is_object(o) || json_object_size(o) != 2) {
			revocation_seterr(err, errlen,
			                  "vendor_keys[%zu]: an object of vendor and key_sha256 "
			                  "required",
			                  i);
			return -1;
		}
		if (revocation_id(o, "vendor", "vendor_keys", i, k->vendor, sizeof(k->vendor), err,
		                  errlen) == -1)
			return -1;
		hex = json_string_value(json_object_get(o, "key_sha256"));
		if (!cdcsimg_valid_sha256(hex)) {
			revocation_seterr(err, errlen,
			                  "vendor_keys[%zu].key_sha256: 64 lower-case hex required",
			                  i);
			return -1;
		}
		memcpy(k->key_sha256, hex, 65);
		if (revocation_key_revoked(rl, k->vendor, k->key_sha256)) {
			revocation_seterr(err, errlen, "vendor_keys[%zu]: listed twice", i);
			return -1;
		}
		rl->n_keys++;
	}
	return 0;
}

/* serial, iat and both entry lists of j into rl (zeroed first). 0/-1 + err. */
static int revocation_decode(const json_t *j, int64_t min_serial, int iat_required,
                             struct revocation_list *rl, char *err, size_t errlen)
{
	const json_t *serial, *iat;

	memset(rl, 0, sizeof(*rl));
	serial = json_object_get(j, "serial");
	if (!json_is_integer(serial) || json_integer_value(serial) < min_serial) {
		revocation_seterr(err, errlen, "serial: an integer >= %lld required",
		                  (long long)min_serial);
		return -1;
	}
	rl->serial = (int64_t)json_integer_value(serial);
	iat = json_object_get(j, "iat");
	if ((iat != NULL || iat_required) &&
	    (!json_is_integer(iat) || json_integer_value(iat) < 0)) {
		revocation_seterr(err, errlen, "iat: an integer >= 0 required");
		return -1;
	}
	rl->iat = iat != NULL ? (int64_t)json_integer_value(iat) : 0;
	if (revocation_versions(json_object_get(j, "versions"), rl, err, errlen) == -1 ||
	    revocation_keys(json_object_get(j, "vendor_keys"), rl, err, errlen) == -1) {
		revocation_free(rl);
		return -1;
	}
	return 0;
}

/* The signed claims: exactly these seven, each as the contract has it. 0/-1 + err. */
static int revocation_claims(const json_t *c, struct revocation_list *rl, char *err, size_t errlen)
{
	static const struct {
		const char *key, *want;
	} fixed[] = {{"iss", REVOCATION_ISS}, {"aud", REVOCATION_AUD}, {"sub", REVOCATION_SUB}};
	const char *s;
	size_t i;

	memset(rl, 0, sizeof(*rl));
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		s = json_string_value(json_object_get(c, fixed[i].key));
		if (s == NULL || strcmp(s, fixed[i].want) != 0) {
			revocation_seterr(err, errlen, "%s: \"%s\" required", fixed[i].key,
			                  fixed[i].want);
			return -1;
		}
	}
	if (revocation_decode(c, 1, 1, rl, err, errlen) == -1)
		return -1;
	/* All seven present, so any more is a claim this version does not know (e.g. exp). */
	if (json_object_size(c) != REVOCATION_CLAIMS) {
		revocation_free(rl);
		revocation_seterr(err, errlen,
		                  "unexpected claims: only iss, aud, sub, serial, iat, versions "
		                  "and vendor_keys are allowed");
		return -1;
	}
	return 0;
}

json_t *revocation_to_json(const struct revocation_list *rl)
{
	json_t *o, *versions, *keys, *e;
	size_t i;

	versions = json_array();
	keys = json_array();
	o = json_pack("{s:I, s:I, s:o, s:o}", "serial", (json_int_t)rl->serial, "iat",
	              (json_int_t)rl->iat, "versions", versions, "vendor_keys", keys);
	if (o == NULL)
		return NULL; /* "o" steals even on failure */
	for (i = 0; i < rl->n_versions; i++) {
		e = json_pack("{s:s, s:s, s:I}", "vendor", rl->versions[i].vendor, "name",
		              rl->versions[i].name, "version_number",
		              (json_int_t)rl->versions[i].version_number);
		if (json_array_append_new(versions, e) == -1)
			goto fail;
	}
	for (i = 0; i < rl->n_keys; i++) {
		e = json_pack("{s:s, s:s}", "vendor", rl->keys[i].vendor, "key_sha256",
		              rl->keys[i].key_sha256);
		if (json_array_append_new(keys, e) == -1)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

int revocation_from_json(const json_t *j, struct revocation_list *rl, char *err, size_t errlen)
{
	if (!json_is_object(j)) {
		memset(rl, 0, sizeof(*rl));
		revocation_seterr(err, errlen, "not a JSON object");
		return -1;
	}
	return revocation_decode(j, 0, 0, rl, err, errlen);
}

/* The operator key as a cjose JWK (jose.c), with the error naming it. */
static cjose_jwk_t *revocation_jwk(EVP_PKEY *key, int priv, char *err, size_t errlen)
{
	char why[256] = "";
	cjose_jwk_t *jwk = jose_jwk(key, priv, why, sizeof(why));

	if (jwk == NULL)
		revocation_seterr(err, errlen, "operator key: %s", why);
	return jwk;
}

char *revocation_sign(const struct revocation_list *rl, EVP_PKEY *operator_key, char *err,
                      size_t errlen)
{
	struct revocation_list check;
	cjose_header_t *hdr = NULL;
	cjose_jwk_t *jwk = NULL;
	cjose_jws_t *jws = NULL;
	cjose_err cerr = {0};
	const char *ser = NULL;
	char *payload = NULL, *out = NULL;
	json_t *c;

	if ((c = revocation_to_json(rl)) == NULL) {
		revocation_seterr(err, errlen, "out of memory");
		return NULL;
	}
	if ((rl->iat <= 0 &&
	     json_object_set_new(c, "iat", json_integer((json_int_t)time(NULL))) == -1) ||
	    json_object_set_new(c, "iss", json_string(REVOCATION_ISS)) == -1 ||
	    json_object_set_new(c, "aud", json_string(REVOCATION_AUD)) == -1 ||
	    json_object_set_new(c, "sub", json_string(REVOCATION_SUB)) == -1 ||
	    (payload = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		revocation_seterr(err, errlen, "out of memory");
		goto fail;
	}
	/* What a verifier will decode, checked the same way before it is signed. */
	if (revocation_claims(c, &check, err, errlen) == -1)
		goto fail;
	revocation_free(&check);
	if ((jwk = revocation_jwk(operator_key, 1, err, errlen)) == NULL)
		goto fail;
	if ((hdr = cjose_header_new(&cerr)) == NULL ||
	    !cjose_header_set(hdr, CJOSE_HDR_ALG, CJOSE_HDR_ALG_ES256, &cerr) ||
	    !cjose_header_set(hdr, "typ", "JWT", &cerr) ||
	    (jws = cjose_jws_sign(jwk, hdr, (const uint8_t *)payload, strlen(payload), &cerr)) ==
	        NULL ||
	    !cjose_jws_export(jws, &ser, &cerr)) {
		revocation_seterr(err, errlen, "JWS signing: %s",
		                  cerr.message != NULL ? cerr.message : "failed");
		goto fail;
	}
	if (strlen(ser) > REVOCATION_MAX_JWS)
		revocation_seterr(err, errlen, "the signed list is longer than %d bytes",
		                  REVOCATION_MAX_JWS);
	else if ((out = strdup(ser)) == NULL)
		revocation_seterr(err, errlen, "out of memory");
fail:
	cjose_jws_release(jws);
	cjose_header_release(hdr);
	cjose_jwk_release(jwk);
	free(payload);
	json_decref(c);
	ERR_clear_error();
	return out;
}

/* The claims of jws if its signature by pub verifies (alg pinned to ES256). New ref/NULL. */
static json_t *revocation_signed(const char *text, EVP_PKEY *pub, const char **code, char *err,
                                 size_t errlen)
{
	cjose_jwk_t *jwk = NULL;
	cjose_jws_t *jws = NULL;
	cjose_header_t *hdr;
	cjose_err cerr = {0};
	const char *alg;
	uint8_t *pt = NULL;
	size_t len, ptlen = 0;
	json_t *c = NULL;

	*code = "bad_signature";
	if (text == NULL || (len = strnlen(text, REVOCATION_MAX_JWS + 1)) == 0 ||
	    len > REVOCATION_MAX_JWS) {
		revocation_seterr(err, errlen, "revocation list missing or longer than %d bytes",
		                  REVOCATION_MAX_JWS);
		goto out;
	}
	if ((jws = cjose_jws_import(text, len, &cerr)) == NULL) {
		revocation_seterr(err, errlen, "revocation list is not a compact JWS");
		goto out;
	}
	/* Before the key is used: cjose would follow whatever alg the header names. */
	if ((hdr = cjose_jws_get_protected(jws)) == NULL ||
	    (alg = cjose_header_get(hdr, CJOSE_HDR_ALG, &cerr)) == NULL ||
	    strcmp(alg, CJOSE_HDR_ALG_ES256) != 0) {
		revocation_seterr(err, errlen, "revocation list algorithm is not ES256");
		goto out;
	}
	if ((jwk = revocation_jwk(pub, 0, err, errlen)) == NULL)
		goto out;
	if (!cjose_jws_verify(jws, jwk, &cerr)) {
		revocation_seterr(
		    err, errlen, "revocation list signature does not verify with the operator key");
		goto out;
	}
	*code = "bad_claims";
	if (!cjose_jws_get_plaintext(jws, &pt, &ptlen, &cerr) ||
	    (c = json_loadb((const char *)pt, ptlen, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(c)) {
		json_decref(c);
		c = NULL;
		revocation_seterr(err, errlen, "revocation list claims are not a JSON object");
	}
out:
	cjose_jws_release(jws);
	cjose_jwk_release(jwk);
	ERR_clear_error();
	return c;
}

int revocation_verify(const char *jws, EVP_PKEY *operator_pub, struct revocation_list *rl,
                      const char **code, char *err, size_t errlen)
{
	const char *dummy;
	json_t *c;
	int rc;

	if (code == NULL)
		code = &dummy;
	memset(rl, 0, sizeof(*rl));
	if ((c = revocation_signed(jws, operator_pub, code, err, errlen)) == NULL)
		return -1;
	*code = "bad_claims";
	if ((rc = revocation_claims(c, rl, err, errlen)) == 0)
		*code = NULL;
	json_decref(c);
	return rc;
}
