/* Unit tests for src/common/jose.c (cjose JWS ES256 tokens and ECDH-ES JWE secrets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <cjose/cjose.h>
#include <openssl/x509.h>

#include "opendm/jose.h"
#include "opendm/pki.h"

/*
 * cjose 0.6.2 leaks one byte per ECDH-ES decryption: cjose_jwe_import() allocates the empty
 * encrypted-key part and _cjose_jwe_decrypt_ek_ecdh_es() overwrites the pointer with NULL.
 * Not ours to fix; every other leak under ASan still fails the test. libcjose has no frame
 * pointers, so the slow unwinder is needed for the suppression to see cjose_jwe_import.
 */
const char *__asan_default_options(void);
__attribute__((used)) const char *__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

const char *__lsan_default_suppressions(void);
__attribute__((used)) const char *__lsan_default_suppressions(void)
{
	return "leak:cjose_jwe_import\n";
}

/* The test's replay store: a list of seen jti values, or a failing store. */
struct jti_store {
	char seen[16][64];
	int n;
	int broken;
};

static int jti_record(void *arg, const char *jti, int64_t exp)
{
	struct jti_store *st = arg;
	int i;

	if (st->broken || exp <= 0)
		return -1;
	for (i = 0; i < st->n; i++)
		if (strcmp(st->seen[i], jti) == 0)
			return 1;
	if (st->n == 16 || strlen(jti) >= sizeof(st->seen[0]))
		return -1;
	snprintf(st->seen[st->n++], sizeof(st->seen[0]), "%s", jti);
	return 0;
}

struct fx {
	EVP_PKEY *key, *pub, *other;
	struct jti_store store;
	struct jose_expect want;
};

static EVP_PKEY *public_only(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pub;
	int n;

	assert_true((n = i2d_PUBKEY(key, &der)) > 0);
	p = der;
	assert_non_null(pub = d2i_PUBKEY(NULL, &p, n));
	OPENSSL_free(der);
	return pub;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_non_null(f->key = pki_key_new());
	assert_non_null(f->other = pki_key_new());
	f->pub = public_only(f->key);
	f->want.iss = "dm-mss";
	f->want.aud = "dm-iss";
	f->want.sub = "hw-0001";
	f->want.jti_fn = jti_record;
	f->want.jti_arg = &f->store;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	EVP_PKEY_free(f->key);
	EVP_PKEY_free(f->pub);
	EVP_PKEY_free(f->other);
	free(f);
	return 0;
}

static json_t *claims(const char *iss, const char *aud, const char *sub)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:s}", "iss", iss, "aud", aud, "sub", sub, "cdcs",
	                      "vendor-a/ca/1.2.0");

	assert_non_null(c);
	return c;
}

static char *sign(struct fx *f, json_t *c, int64_t ttl)
{
	char err[256] = "";
	char *tok = jose_sign(f->key, "dm-mss-1", c, ttl, err, sizeof(err));

	if (tok == NULL)
		fail_msg("jose_sign: %s", err);
	json_decref(c);
	return tok;
}

/* Verify and expect a refusal with the given code. */
static void expect_refused(struct fx *f, EVP_PKEY *pub, const char *tok, const char *want_code)
{
	const char *code = NULL;
	char err[256] = "";
	json_t *c;

	c = jose_verify(pub, tok, &f->want, &code, err, sizeof(err));
	if (c != NULL) {
		json_decref(c);
		fail_msg("token accepted, expected %s", want_code);
	}
	assert_non_null(code);
	if (strcmp(code, want_code) != 0)
		fail_msg("code %s (%s), expected %s", code, err, want_code);
	assert_true(strlen(err) > 0);
}

static void test_sign_verify(void **state)
{
	struct fx *f = *state;
	char *tok = sign(f, claims("dm-mss", "dm-iss", "hw-0001"), 300);
	const char *code = NULL;
	char err[256] = "", *dot, *hdr;
	uint8_t *raw = NULL;
	size_t rawlen;
	cjose_err cerr;
	json_t *c, *h;
	time_t now = time(NULL);

	assert_non_null(c = jose_verify(f->pub, tok, &f->want, &code, err, sizeof(err)));
	assert_string_equal(json_string_value(json_object_get(c, "cdcs")), "vendor-a/ca/1.2.0");
	assert_true(json_integer_value(json_object_get(c, "iat")) >= now - 5);
	assert_int_equal(json_integer_value(json_object_get(c, "exp")) -
	                     json_integer_value(json_object_get(c, "iat")),
	                 300);
	assert_int_equal(strlen(json_string_value(json_object_get(c, "jti"))), 32);
	assert_int_equal(f->store.n, 1);
	json_decref(c);

	/* The protected header is exactly alg, typ and kid. */
	assert_non_null(dot = strchr(tok, '.'));
	assert_true(cjose_base64url_decode(tok, (size_t)(dot - tok), &raw, &rawlen, &cerr));
	assert_non_null(hdr = strndup((char *)raw, rawlen));
	assert_non_null(h = json_loads(hdr, 0, NULL));
	assert_int_equal(json_object_size(h), 3);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "dm-mss-1");
	json_decref(h);
	free(hdr);
	free(raw);

	/* The same token a second time is a replay; a broken store is our fault. */
	expect_refused(f, f->pub, tok, "token_replayed");
	f->store.n = 0;
	f->store.broken = 1;
	expect_refused(f, f->pub, tok, "internal_error");
	f->store.broken = 0;

	/* A private key verifies as well as its public half. */
	f->want.jti_fn = NULL;
	assert_non_null(c = jose_verify(f->key, tok, &f->want, NULL, err, sizeof(err)));
	json_decref(c);
	free(tok);
}

static void test_caller_claims_kept(void **state)
{
	struct fx *f = *state;
	json_t *in = claims("dm-mss", "dm-iss", "hw-0001"), *c;
	time_t now = time(NULL);
	char err[256] = "", *tok;

	assert_int_equal(json_object_set_new(in, "jti", json_string("fixed-id")), 0);
	assert_int_equal(json_object_set_new(in, "iat", json_integer(now - 10)), 0);
	assert_int_equal(json_object_set_new(in, "exp", json_integer(now + 50)), 0);
	tok = sign(f, in, 0);
	assert_non_null(c = jose_verify(f->pub, tok, &f->want, NULL, err, sizeof(err)));
	assert_string_equal(json_string_value(json_object_get(c, "jti")), "fixed-id");
	assert_int_equal(json_integer_value(json_object_get(c, "exp")), now + 50);
	json_decref(c);
	free(tok);
}

static void test_tampered(void **state)
{
	struct fx *f = *state;
	char *tok = sign(f, claims("dm-mss", "dm-iss", "hw-0001"), 300);
	char *p1 = strchr(tok, '.'), *p2 = strrchr(tok, '.');
	char *copy;
	size_t mid;

	/* One changed character in the payload, then in the signature. */
	assert_non_null(copy = strdup(tok));
	mid = (size_t)(p1 - tok) + (size_t)(p2 - p1) / 2;
	copy[mid] = copy[mid] == 'A' ? 'B' : 'A';
	expect_refused(f, f->pub, copy, "bad_token");
	memcpy(copy, tok, strlen(tok));
	mid = (size_t)(p2 - tok) + 10;
	copy[mid] = copy[mid] == 'A' ? 'B' : 'A';
	expect_refused(f, f->pub, copy, "bad_token");
	/* The untouched token still passes, so the refusals above were the tampering. */
	memcpy(copy, tok, strlen(tok));
	f->want.jti_fn = NULL;
	{
		char err[256];
		json_t *c = jose_verify(f->pub, copy, &f->want, NULL, err, sizeof(err));
		assert_non_null(c);
		json_decref(c);
	}
	free(copy);
	free(tok);
}

static void test_claim_mismatches(void **state)
{
	struct fx *f = *state;
	char *tok;
	json_t *c;
	char err[256] = "";
	time_t now = time(NULL);

	tok = sign(f, claims("dm-mss", "cdcs-mss", "hw-0001"), 300);
	expect_refused(f, f->pub, tok, "wrong_audience");
	free(tok);
	tok = sign(f, claims("evil", "dm-iss", "hw-0001"), 300);
	expect_refused(f, f->pub, tok, "wrong_issuer");
	free(tok);
	tok = sign(f, claims("dm-mss", "dm-iss", "hw-0002"), 300);
	expect_refused(f, f->pub, tok, "wrong_subject");
	/* sub is only checked when asked for. */
	f->want.sub = NULL;
	assert_non_null(c = jose_verify(f->pub, tok, &f->want, NULL, err, sizeof(err)));
	json_decref(c);
	f->want.sub = "hw-0001";
	free(tok);

	/* aud as an array: containing us passes, not containing us fails. */
	c = json_pack("{s:s, s:[s,s], s:s}", "iss", "dm-mss", "aud", "x", "dm-iss", "sub",
	              "hw-0001");
	tok = sign(f, c, 300);
	assert_non_null(c = jose_verify(f->pub, tok, &f->want, NULL, err, sizeof(err)));
	json_decref(c);
	free(tok);
	c = json_pack("{s:s, s:[s], s:s}", "iss", "dm-mss", "aud", "x", "sub", "hw-0001");
	tok = sign(f, c, 300);
	expect_refused(f, f->pub, tok, "wrong_audience");
	free(tok);

	/* Expired beyond the skew; expired within it is still fine. */
	c = claims("dm-mss", "dm-iss", "hw-0001");
	json_object_set_new(c, "iat", json_integer(now - 7200));
	json_object_set_new(c, "exp", json_integer(now - 3600));
	tok = sign(f, c, 0);
	expect_refused(f, f->pub, tok, "token_expired");
	free(tok);
	c = claims("dm-mss", "dm-iss", "hw-0001");
	json_object_set_new(c, "iat", json_integer(now - 600));
	json_object_set_new(c, "exp", json_integer(now - JOSE_CLOCK_SKEW / 2));
	tok = sign(f, c, 0);
	assert_non_null(c = jose_verify(f->pub, tok, &f->want, NULL, err, sizeof(err)));
	json_decref(c);
	/* want.now moves the clock. */
	f->want.now = now + 3600;
	expect_refused(f, f->pub, tok, "token_expired");
	f->want.now = 0;
	free(tok);

	/* Issued in the future. */
	c = claims("dm-mss", "dm-iss", "hw-0001");
	json_object_set_new(c, "iat", json_integer(now + 3600));
	tok = sign(f, c, 300);
	expect_refused(f, f->pub, tok, "bad_token");
	free(tok);

	/* An empty jti cannot be recorded, so it is refused when replay is checked. */
	c = claims("dm-mss", "dm-iss", "hw-0001");
	json_object_set_new(c, "jti", json_string(""));
	tok = sign(f, c, 300);
	expect_refused(f, f->pub, tok, "bad_token");
	free(tok);
}

static char *b64(const char *s)
{
	char *out = NULL;
	size_t n;
	cjose_err cerr;

	assert_true(cjose_base64url_encode((const uint8_t *)s, strlen(s), &out, &n, &cerr));
	return out;
}

static void test_crafted_algs(void **state)
{
	struct fx *f = *state;
	char *tok = sign(f, claims("dm-mss", "dm-iss", "hw-0001"), 300);
	char *payload, *h, forged[4096];
	char *p1 = strchr(tok, '.'), *p2 = strrchr(tok, '.');
	static const char *hdrs[] = {
	    "{\"alg\":\"none\",\"typ\":\"JWT\"}",
	    "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
	    "{\"alg\":\"ES384\",\"typ\":\"JWT\"}",
	    "{\"typ\":\"JWT\"}",
	};
	size_t i;

	/* The genuine payload and signature under a rewritten header, and with no signature. */
	assert_non_null(payload = strndup(p1 + 1, (size_t)(p2 - p1 - 1)));
	for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		h = b64(hdrs[i]);
		snprintf(forged, sizeof(forged), "%s.%s.", h, payload);
		expect_refused(f, f->pub, forged, "bad_token");
		snprintf(forged, sizeof(forged), "%s.%s.%s", h, payload, p2 + 1);
		expect_refused(f, f->pub, forged, "bad_token");
		free(h);
	}
	free(payload);

	/* A key that did not sign it. */
	expect_refused(f, f->other, tok, "bad_token");
	free(tok);

	expect_refused(f, f->pub, "", "bad_token");
	expect_refused(f, f->pub, "not.a.token", "bad_token");
	expect_refused(f, f->pub, NULL, "bad_token");
	{
		char *big = malloc(JOSE_MAX_TOKEN + 2);
		assert_non_null(big);
		memset(big, 'A', JOSE_MAX_TOKEN + 1);
		big[JOSE_MAX_TOKEN + 1] = '\0';
		expect_refused(f, f->pub, big, "bad_token");
		free(big);
	}
}

static void test_sign_errors(void **state)
{
	struct fx *f = *state;
	json_t *arr = json_array(), *c = claims("a", "b", "c");
	char err[256] = "";

	assert_null(jose_sign(f->key, NULL, arr, 300, err, sizeof(err)));
	assert_null(jose_sign(f->key, NULL, NULL, 300, err, sizeof(err)));
	assert_null(jose_sign(f->pub, NULL, c, 300, err, sizeof(err)));
	assert_non_null(strstr(err, "private"));
	assert_null(jose_sign(f->key, NULL, c, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "exp"));
	/* The caller's object is not modified. */
	assert_null(json_object_get(c, "jti"));
	json_decref(arr);
	json_decref(c);
}

static void test_jwe(void **state)
{
	struct fx *f = *state;
	static const char secret[] = "{\"entitlement_key\":\"00112233445566778899aabbccddeeff\"}";
	char err[256] = "", *jwe, *copy;
	size_t len = 0, n;
	char *pt;

	assert_non_null(jwe = jose_encrypt(f->pub, secret, strlen(secret), err, sizeof(err)));
	assert_null(strstr(jwe, "entitlement"));
	assert_non_null(pt = jose_decrypt(f->key, jwe, &len, err, sizeof(err)));
	assert_int_equal(len, strlen(secret));
	assert_memory_equal(pt, secret, len);
	assert_string_equal(pt, secret);
	free(pt);

	/* Another key, or only the public key, cannot open it. */
	assert_null(jose_decrypt(f->other, jwe, &len, err, sizeof(err)));
	assert_int_equal(len, 0);
	assert_null(jose_decrypt(f->pub, jwe, &len, err, sizeof(err)));

	/* One changed character in the ciphertext, in the tag; a truncated tag. */
	assert_non_null(copy = strdup(jwe));
	n = (size_t)(strrchr(copy, '.') - copy) - 3;
	copy[n] = copy[n] == 'A' ? 'B' : 'A';
	assert_null(jose_decrypt(f->key, copy, &len, err, sizeof(err)));
	strcpy(copy, jwe);
	n = (size_t)(strrchr(copy, '.') - copy) + 5;
	copy[n] = copy[n] == 'A' ? 'B' : 'A';
	assert_null(jose_decrypt(f->key, copy, &len, err, sizeof(err)));
	strcpy(copy, jwe);
	copy[strlen(copy) - 4] = '\0';
	assert_null(jose_decrypt(f->key, copy, &len, err, sizeof(err)));
	assert_non_null(strstr(err, "malformed"));
	free(copy);

	assert_null(jose_decrypt(f->key, "a.b.c", &len, err, sizeof(err)));
	assert_null(jose_decrypt(f->key, NULL, &len, err, sizeof(err)));
	assert_null(jose_encrypt(f->pub, secret, 0, err, sizeof(err)));
	free(jwe);
}

static void test_random_hex(void **state)
{
	char a[33], b[33], small[8];
	size_t i;

	assert_int_equal(jose_random_hex(a, sizeof(a), 16), 0);
	assert_int_equal(jose_random_hex(b, sizeof(b), 16), 0);
	assert_int_equal(strlen(a), 32);
	assert_string_not_equal(a, b);
	for (i = 0; i < 32; i++)
		assert_non_null(strchr("0123456789abcdef", a[i]));
	assert_int_equal(jose_random_hex(small, sizeof(small), 4), -1);
	assert_int_equal(jose_random_hex(small, sizeof(small), 0), -1);
}

static void test_code_status(void **state)
{
	(void)state;
	assert_int_equal(jose_code_status("bad_token"), 401);
	assert_int_equal(jose_code_status("token_expired"), 401);
	assert_int_equal(jose_code_status("wrong_audience"), 401);
	assert_int_equal(jose_code_status("wrong_subject"), 403);
	assert_int_equal(jose_code_status("token_replayed"), 409);
	assert_int_equal(jose_code_status("internal_error"), 500);
	assert_int_equal(jose_code_status(NULL), 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sign_verify, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_caller_claims_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tampered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_claim_mismatches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crafted_algs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sign_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_jwe, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_random_hex, setup, teardown),
	    cmocka_unit_test(test_code_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
