/*
 * Unit tests for src/common/revocation.c: the operator's signed revocation list. Crafted
 * lists are signed here with plain OpenSSL (a standard compact JWS ES256), independently of
 * the module, so that each wrong claim reaches the claim checks under a good signature.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjose/cjose.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "opendm/cdcsimg.h"
#include "opendm/pki.h"
#include "opendm/revocation.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct fx {
	EVP_PKEY *key, *pub, *other;
	struct revocation_list rl;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	unsigned char *der = NULL, *p;
	int len;

	if (f == NULL || (f->key = pki_key_new()) == NULL || (f->other = pki_key_new()) == NULL)
		return -1;
	/* The public half alone, as cdcs-mss and agents hold it. */
	if ((len = i2d_PUBKEY(f->key, &der)) <= 0)
		return -1;
	p = der;
	f->pub = d2i_PUBKEY(NULL, (const unsigned char **)&p, len);
	OPENSSL_free(der);
	if (f->pub == NULL)
		return -1;
	f->rl.serial = 3;
	f->rl.iat = 1800000000;
	f->rl.n_versions = 2;
	f->rl.n_keys = 1;
	f->rl.versions = calloc(2, sizeof(*f->rl.versions));
	f->rl.keys = calloc(1, sizeof(*f->rl.keys));
	if (f->rl.versions == NULL || f->rl.keys == NULL)
		return -1;
	snprintf(f->rl.versions[0].vendor, 65, "vendor-a");
	snprintf(f->rl.versions[0].name, 65, "sample-ca");
	f->rl.versions[0].version_number = 2;
	snprintf(f->rl.versions[1].vendor, 65, "vendor-b");
	snprintf(f->rl.versions[1].name, 65, "sample-drm");
	f->rl.versions[1].version_number = 7;
	snprintf(f->rl.keys[0].vendor, 65, "vendor-c");
	snprintf(f->rl.keys[0].key_sha256, 65, "%s", HEX_B);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	EVP_PKEY_free(f->key);
	EVP_PKEY_free(f->pub);
	EVP_PKEY_free(f->other);
	revocation_free(&f->rl);
	free(f);
	return 0;
}

static char *b64(const void *data, size_t len)
{
	char *out = NULL, *dup;
	size_t olen = 0;
	cjose_err cerr;

	assert_true(cjose_base64url_encode(data, len, &out, &olen, &cerr));
	dup = strndup(out, olen);
	cjose_get_dealloc()(out);
	assert_non_null(dup);
	return dup;
}

/* A compact JWS of payload under header, signed ES256 by key with OpenSSL alone. */
static char *sign_raw(EVP_PKEY *key, const char *header, const char *payload)
{
	unsigned char der[128], raw[64];
	const unsigned char *p = der;
	char *h = b64(header, strlen(header)), *pl = b64(payload, strlen(payload)), *s, *input,
	     *out;
	size_t derlen = sizeof(der), n;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	ECDSA_SIG *sig;

	n = strlen(h) + strlen(pl) + 2;
	assert_non_null(input = malloc(n));
	snprintf(input, n, "%s.%s", h, pl);
	assert_non_null(ctx);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
	assert_int_equal(
	    EVP_DigestSign(ctx, der, &derlen, (const unsigned char *)input, strlen(input)), 1);
	assert_non_null(sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen));
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32), 32);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32), 32);
	s = b64(raw, sizeof(raw));
	n = strlen(input) + strlen(s) + 2;
	assert_non_null(out = malloc(n));
	snprintf(out, n, "%s.%s", input, s);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(ctx);
	free(h);
	free(pl);
	free(s);
	free(input);
	return out;
}

static char *sign_claims(EVP_PKEY *key, const json_t *c)
{
	char *payload = json_dumps(c, JSON_COMPACT), *jws;

	assert_non_null(payload);
	jws = sign_raw(key, "{\"alg\":\"ES256\",\"typ\":\"JWT\"}", payload);
	free(payload);
	return jws;
}

/* Valid claims of a one-entry list, for the tests to spoil. */
static json_t *good_claims(void)
{
	json_t *c;

	c = json_pack("{s:s, s:s, s:s, s:I, s:I, s:[{s:s, s:s, s:I}], s:[{s:s, s:s}]}", "iss",
	              REVOCATION_ISS, "aud", REVOCATION_AUD, "sub", REVOCATION_SUB, "serial",
	              (json_int_t)1, "iat", (json_int_t)1800000000, "versions", "vendor",
	              "vendor-a", "name", "sample-ca", "version_number", (json_int_t)2,
	              "vendor_keys", "vendor", "vendor-b", "key_sha256", HEX_B);
	assert_non_null(c);
	return c;
}

/* verify refuses jws with code, and says why in err (which mentions needle, if given). */
static void expect_refused(EVP_PKEY *pub, const char *jws, const char *code, const char *needle)
{
	struct revocation_list rl;
	const char *got = NULL;
	char err[256] = "";

	assert_int_equal(revocation_verify(jws, pub, &rl, &got, err, sizeof(err)), -1);
	assert_non_null(got);
	if (strcmp(got, code) != 0)
		fail_msg("expected %s, got %s (%s)", code, got, err);
	assert_true(err[0] != '\0');
	if (needle != NULL && strstr(err, needle) == NULL)
		fail_msg("expected the reason to name %s: %s", needle, err);
	/* Nothing is left to free, and freeing is harmless. */
	assert_null(rl.versions);
	assert_null(rl.keys);
	assert_int_equal(rl.n_versions + rl.n_keys, 0);
	revocation_free(&rl);
}

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	struct revocation_list rl;
	const char *code = "unset";
	char err[256] = "", *jws;

	assert_non_null(jws = revocation_sign(&f->rl, f->key, err, sizeof(err)));
	assert_int_equal(revocation_verify(jws, f->pub, &rl, &code, err, sizeof(err)), 0);
	assert_null(code);
	assert_int_equal(rl.serial, 3);
	assert_int_equal(rl.iat, 1800000000);
	assert_int_equal(rl.n_versions, 2);
	assert_int_equal(rl.n_keys, 1);
	assert_string_equal(rl.versions[1].vendor, "vendor-b");
	assert_string_equal(rl.versions[1].name, "sample-drm");
	assert_int_equal(rl.versions[1].version_number, 7);
	assert_string_equal(rl.keys[0].vendor, "vendor-c");
	assert_string_equal(rl.keys[0].key_sha256, HEX_B);
	revocation_free(&rl);
	assert_null(rl.versions);
	free(jws);

	/* iat 0 is "now"; an empty list is a list. */
	revocation_free(&f->rl);
	f->rl.serial = 1;
	assert_non_null(jws = revocation_sign(&f->rl, f->key, err, sizeof(err)));
	assert_int_equal(revocation_verify(jws, f->pub, &rl, &code, err, sizeof(err)), 0);
	assert_true(rl.iat > 1600000000);
	assert_int_equal(rl.n_versions + rl.n_keys, 0);
	revocation_free(&rl);
	free(jws);
}

static void test_lookup(void **state)
{
	struct fx *f = *state;

	assert_int_equal(revocation_version_revoked(&f->rl, "vendor-a", "sample-ca", 2), 1);
	assert_int_equal(revocation_version_revoked(&f->rl, "vendor-b", "sample-drm", 7), 1);
	assert_int_equal(revocation_version_revoked(&f->rl, "vendor-a", "sample-ca", 3), 0);
	assert_int_equal(revocation_version_revoked(&f->rl, "vendor-a", "sample-drm", 2), 0);
	assert_int_equal(revocation_version_revoked(&f->rl, "vendor-b", "sample-ca", 2), 0);
	assert_int_equal(revocation_version_revoked(&f->rl, NULL, "sample-ca", 2), 0);
	assert_int_equal(revocation_version_revoked(NULL, "vendor-a", "sample-ca", 2), 0);
	assert_int_equal(revocation_key_revoked(&f->rl, "vendor-c", HEX_B), 1);
	/* A key is revoked for the vendor named with it only. */
	assert_int_equal(revocation_key_revoked(&f->rl, "vendor-a", HEX_B), 0);
	assert_int_equal(revocation_key_revoked(&f->rl, "vendor-c", HEX_A), 0);
	assert_int_equal(revocation_key_revoked(&f->rl, "vendor-c", NULL), 0);
}

static void test_key_sha256(void **state)
{
	struct fx *f = *state;
	unsigned char *der = NULL;
	char a[65], b[65], want[65];
	int len;

	assert_int_equal(revocation_key_sha256(f->key, a), 0);
	assert_int_equal(revocation_key_sha256(f->pub, b), 0);
	/* The private key and its public half are the same key. */
	assert_string_equal(a, b);
	assert_true(cdcsimg_valid_sha256(a));
	assert_true((len = i2d_PUBKEY(f->pub, &der)) > 0);
	cdcsimg_sha256_hex(der, (size_t)len, want);
	OPENSSL_free(der);
	assert_string_equal(a, want);
	assert_int_equal(revocation_key_sha256(f->other, b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(revocation_key_sha256(NULL, b), -1);
}

static void test_bad_signature(void **state)
{
	struct fx *f = *state;
	char err[256], *jws, *bad, *payload;
	const char *p1, *p2;
	json_t *c;

	assert_non_null(jws = revocation_sign(&f->rl, f->key, err, sizeof(err)));
	/* Another key. */
	expect_refused(f->other, jws, "bad_signature", NULL);
	/* One character of the signature changed. */
	assert_non_null(bad = strdup(jws));
	bad[strlen(bad) - 3] = bad[strlen(bad) - 3] == 'A' ? 'B' : 'A';
	expect_refused(f->pub, bad, "bad_signature", NULL);
	free(bad);
	/* Its payload under alg none / HS256 headers, with and without the signature. */
	p1 = strchr(jws, '.');
	p2 = strrchr(jws, '.');
	assert_non_null(payload = strndup(p1 + 1, (size_t)(p2 - p1 - 1)));
	{
		static const char *hdrs[] = {"{\"alg\":\"none\"}", "{\"alg\":\"HS256\"}",
		                             "{\"typ\":\"JWT\"}"};
		char forged[8192], *h;
		size_t i;

		for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
			h = b64(hdrs[i], strlen(hdrs[i]));
			snprintf(forged, sizeof(forged), "%s.%s.", h, payload);
			expect_refused(f->pub, forged, "bad_signature", NULL);
			snprintf(forged, sizeof(forged), "%s.%s.%s", h, payload, p2 + 1);
			expect_refused(f->pub, forged, "bad_signature", NULL);
			free(h);
		}
	}
	free(payload);
	expect_refused(f->pub, "", "bad_signature", NULL);
	expect_refused(f->pub, "not.a.jws", "bad_signature", NULL);
	expect_refused(f->pub, NULL, "bad_signature", NULL);
	expect_refused(NULL, jws, "bad_signature", NULL);
	free(jws);

	/* Good claims, signed by a key that is not the operator's. */
	c = good_claims();
	jws = sign_claims(f->other, c);
	expect_refused(f->pub, jws, "bad_signature", NULL);
	free(jws);
	/* ... and the very same claims signed by the operator key pass. */
	jws = sign_claims(f->key, c);
	{
		struct revocation_list rl;
		const char *code;

		assert_int_equal(revocation_verify(jws, f->pub, &rl, &code, err, sizeof(err)), 0);
		assert_int_equal(rl.serial, 1);
		revocation_free(&rl);
	}
	free(jws);
	json_decref(c);

	/* Longer than any list can be. */
	assert_non_null(bad = malloc(REVOCATION_MAX_JWS + 2));
	memset(bad, 'A', REVOCATION_MAX_JWS + 1);
	bad[REVOCATION_MAX_JWS + 1] = '\0';
	expect_refused(f->pub, bad, "bad_signature", NULL);
	free(bad);
}

/* Good claims spoilt in one place, signed by the operator: refused, the reason naming it. */
static void spoil(const struct fx *f, const char *needle, json_t *c)
{
	char *jws = sign_claims(f->key, c);

	expect_refused(f->pub, jws, "bad_claims", needle);
	free(jws);
	json_decref(c);
}

static json_t *entry(json_t *c, const char *list, size_t i)
{
	json_t *e = json_array_get(json_object_get(c, list), i);

	assert_non_null(e);
	return e;
}

static void test_bad_claims(void **state)
{
	struct fx *f = *state;
	json_t *c, *a;
	char *jws;
	size_t i;

	c = good_claims();
	json_object_set_new(c, "iss", json_string("vendor-a"));
	spoil(f, "iss:", c);
	c = good_claims();
	json_object_del(c, "iss");
	spoil(f, "iss:", c);
	c = good_claims();
	json_object_set_new(c, "aud", json_string("cdcs-mss"));
	spoil(f, "aud:", c);
	c = good_claims();
	json_object_set_new(c, "aud", json_pack("[s]", REVOCATION_AUD));
	spoil(f, "aud:", c);
	c = good_claims();
	json_object_set_new(c, "sub", json_string("cdcs-approval"));
	spoil(f, "sub:", c);
	c = good_claims();
	json_object_set_new(c, "serial", json_integer(0));
	spoil(f, "serial:", c);
	c = good_claims();
	json_object_set_new(c, "serial", json_integer(-5));
	spoil(f, "serial:", c);
	c = good_claims();
	json_object_set_new(c, "serial", json_string("2"));
	spoil(f, "serial:", c);
	c = good_claims();
	json_object_set_new(c, "serial", json_real(2.0));
	spoil(f, "serial:", c);
	c = good_claims();
	json_object_del(c, "serial");
	spoil(f, "serial:", c);
	c = good_claims();
	json_object_del(c, "iat");
	spoil(f, "iat:", c);
	c = good_claims();
	json_object_set_new(c, "iat", json_integer(-1));
	spoil(f, "iat:", c);
	c = good_claims();
	json_object_set_new(c, "exp", json_integer(1900000000));
	spoil(f, "unexpected claims", c);
	c = good_claims();
	json_object_del(c, "versions");
	spoil(f, "versions:", c);
	c = good_claims();
	json_object_del(c, "vendor_keys");
	spoil(f, "vendor_keys:", c);
	c = good_claims();
	json_object_set_new(c, "versions", json_object());
	spoil(f, "versions:", c);

	/* Too many entries. */
	c = good_claims();
	a = json_object_get(c, "versions");
	for (i = 1; i <= REVOCATION_MAX_VERSIONS; i++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "vendor", "vendor-a", "name",
		                                   "sample-ca", "version_number",
		                                   (json_int_t)(100 + i)));
	spoil(f, "versions:", c);
	c = good_claims();
	a = json_object_get(c, "vendor_keys");
	for (i = 1; i <= REVOCATION_MAX_KEYS; i++) {
		char hex[65];

		snprintf(hex, sizeof(hex), "%064zx", i);
		json_array_append_new(
		    a, json_pack("{s:s, s:s}", "vendor", "vendor-a", "key_sha256", hex));
	}
	spoil(f, "vendor_keys:", c);

	/* Entries. */
	c = good_claims();
	json_object_set_new(entry(c, "vendor_keys", 0), "key_sha256", json_string(HEX_B "00"));
	spoil(f, "vendor_keys[0].key_sha256", c);
	c = good_claims();
	json_object_set_new(
	    entry(c, "vendor_keys", 0), "key_sha256",
	    json_string("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789a"
	                "bcdef"));
	spoil(f, "vendor_keys[0].key_sha256", c);
	c = good_claims();
	json_object_set_new(
	    entry(c, "vendor_keys", 0), "key_sha256",
	    json_string("g123456789abcdef0123456789abcdef0123456789abcdef0123456789a"
	                "bcdef"));
	spoil(f, "vendor_keys[0].key_sha256", c);
	c = good_claims();
	json_object_del(entry(c, "vendor_keys", 0), "key_sha256");
	spoil(f, "vendor_keys[0]", c);
	c = good_claims();
	json_object_del(entry(c, "vendor_keys", 0), "vendor");
	spoil(f, "vendor_keys[0]", c);
	c = good_claims();
	json_object_set_new(entry(c, "vendor_keys", 0), "note", json_string("x"));
	spoil(f, "vendor_keys[0]", c);
	c = good_claims();
	json_object_set_new(entry(c, "versions", 0), "vendor", json_string("../etc"));
	spoil(f, "versions[0].vendor", c);
	c = good_claims();
	json_object_del(entry(c, "versions", 0), "name");
	spoil(f, "versions[0]", c);
	c = good_claims();
	json_object_set_new(entry(c, "versions", 0), "version_number", json_integer(0));
	spoil(f, "versions[0].version_number", c);
	c = good_claims();
	json_object_set_new(entry(c, "versions", 0), "version_number", json_string("2"));
	spoil(f, "versions[0].version_number", c);
	c = good_claims();
	json_object_del(entry(c, "versions", 0), "version_number");
	json_object_set_new(entry(c, "versions", 0), "variant", json_string("sw"));
	spoil(f, "versions[0].version_number", c);
	c = good_claims();
	json_array_append_new(json_object_get(c, "versions"), json_string("vendor-a/sample-ca"));
	spoil(f, "versions[1]", c);
	c = good_claims();
	json_array_append(json_object_get(c, "versions"), entry(c, "versions", 0));
	spoil(f, "versions[1]: listed twice", c);

	/* Claims that are no object. */
	jws = sign_raw(f->key, "{\"alg\":\"ES256\"}", "[1,2]");
	expect_refused(f->pub, jws, "bad_claims", NULL);
	free(jws);
	jws = sign_raw(f->key, "{\"alg\":\"ES256\"}", "{\"serial\":1,\"serial\":2}");
	expect_refused(f->pub, jws, "bad_claims", NULL);
	free(jws);
}

static void test_sign_refuses(void **state)
{
	struct fx *f = *state;
	struct revocation_list big;
	char err[256] = "";
	size_t i;

	f->rl.serial = 0;
	assert_null(revocation_sign(&f->rl, f->key, err, sizeof(err)));
	assert_non_null(strstr(err, "serial"));
	f->rl.serial = 4;
	snprintf(f->rl.keys[0].key_sha256, 65, "xyz");
	assert_null(revocation_sign(&f->rl, f->key, err, sizeof(err)));
	assert_non_null(strstr(err, "key_sha256"));
	snprintf(f->rl.keys[0].key_sha256, 65, "%s", HEX_A);
	/* The public half cannot sign. */
	assert_null(revocation_sign(&f->rl, f->pub, err, sizeof(err)));
	assert_non_null(strstr(err, "private"));

	/* The largest list there can be fits, and one more entry is refused. */
	memset(&big, 0, sizeof(big));
	big.serial = INT64_MAX;
	big.iat = INT64_MAX;
	big.n_versions = REVOCATION_MAX_VERSIONS + 1;
	big.n_keys = REVOCATION_MAX_KEYS;
	assert_non_null(big.versions = calloc(big.n_versions, sizeof(*big.versions)));
	assert_non_null(big.keys = calloc(big.n_keys, sizeof(*big.keys)));
	for (i = 0; i < big.n_versions; i++) {
		memset(big.versions[i].vendor, 'v', 64);
		memset(big.versions[i].name, 'n', 64);
		big.versions[i].version_number = INT64_MAX - (int64_t)i;
	}
	for (i = 0; i < big.n_keys; i++) {
		memset(big.keys[i].vendor, 'v', 64);
		snprintf(big.keys[i].key_sha256, 65, "%064zx", i);
	}
	assert_null(revocation_sign(&big, f->key, err, sizeof(err)));
	assert_non_null(strstr(err, "versions"));
	big.n_versions--;
	{
		struct revocation_list rl;
		const char *code;
		char *jws = revocation_sign(&big, f->key, err, sizeof(err));

		if (jws == NULL)
			fail_msg("the largest list: %s", err);
		print_message("  the largest list: %zu bytes of JWS (limit %d)\n", strlen(jws),
		              REVOCATION_MAX_JWS);
		assert_int_equal(revocation_verify(jws, f->pub, &rl, &code, err, sizeof(err)), 0);
		assert_int_equal(rl.n_versions, REVOCATION_MAX_VERSIONS);
		assert_int_equal(rl.n_keys, REVOCATION_MAX_KEYS);
		assert_int_equal(rl.serial, INT64_MAX);
		revocation_free(&rl);
		free(jws);
	}
	revocation_free(&big);
}

static void test_json(void **state)
{
	struct fx *f = *state;
	struct revocation_list rl;
	char err[256] = "";
	json_t *j, *j2, *doc;

	assert_non_null(j = revocation_to_json(&f->rl));
	assert_int_equal(json_integer_value(json_object_get(j, "serial")), 3);
	assert_int_equal(json_array_size(json_object_get(j, "versions")), 2);
	assert_string_equal(
	    json_string_value(json_object_get(entry(j, "vendor_keys", 0), "key_sha256")), HEX_B);
	assert_int_equal(revocation_from_json(j, &rl, err, sizeof(err)), 0);
	assert_int_equal(rl.serial, 3);
	assert_int_equal(rl.iat, 1800000000);
	assert_int_equal(revocation_version_revoked(&rl, "vendor-b", "sample-drm", 7), 1);
	assert_int_equal(revocation_key_revoked(&rl, "vendor-c", HEX_B), 1);
	assert_non_null(j2 = revocation_to_json(&rl));
	assert_true(json_equal(j, j2));
	revocation_free(&rl);
	json_decref(j2);

	/* What GET /v1/admin/revocations answers before any list: serial 0, extra keys. */
	doc = json_pack("{s:i, s:n, s:[], s:[]}", "serial", 0, "revocations", "versions",
	                "vendor_keys");
	assert_int_equal(revocation_from_json(doc, &rl, err, sizeof(err)), 0);
	assert_int_equal(rl.serial, 0);
	assert_int_equal(rl.n_versions + rl.n_keys, 0);
	revocation_free(&rl);
	json_decref(doc);

	/* Entries are checked as verify checks them. */
	json_object_set_new(entry(j, "versions", 1), "version_number", json_integer(0));
	assert_int_equal(revocation_from_json(j, &rl, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "versions[1].version_number"));
	assert_null(rl.versions);
	json_object_set_new(j, "serial", json_integer(-1));
	assert_int_equal(revocation_from_json(j, &rl, err, sizeof(err)), -1);
	assert_int_equal(
	    revocation_from_json(json_object_get(j, "versions"), &rl, err, sizeof(err)), -1);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_sha256, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_signature, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_claims, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sign_refuses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_json, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
