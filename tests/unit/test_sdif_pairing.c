/*
 * sd-if-agent pairing, the pure parts (src/sd_if_agent/pin.c): the PIN, its state machine
 * (attempts, expiry, one PIN one device) and the proof bound to the TLS session.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "opendm/pairproof.h"
#include "opendm/pki.h"
#include "sd_if_agent.h"

/* HMAC-SHA256(key "123456", bytes 0..31 || bytes 32..63 || "hw-0001"), computed apart
 * (Python hmac) so that the test does not check the code against itself. */
#define VECTOR "775d3d355b75060108253434473798dcaf08d881f91fd4c3b22b614f5fbe8a76"

static void vector_inputs(unsigned char exporter[32], unsigned char spki[32])
{
	int i;

	for (i = 0; i < 32; i++) {
		exporter[i] = (unsigned char)i;
		spki[i] = (unsigned char)(32 + i);
	}
}

static void test_proof_vector(void **state)
{
	unsigned char exporter[32], spki[32];
	char hex[65];

	vector_inputs(exporter, spki);
	assert_int_equal(pairproof_make("123456", exporter, spki, "hw-0001", hex), 0);
	assert_string_equal(hex, VECTOR);
	assert_int_equal(pairproof_check("123456", exporter, spki, "hw-0001", VECTOR), 1);
}

static void test_proof_refused(void **state)
{
	unsigned char exporter[32], spki[32];
	char bad[65];

	vector_inputs(exporter, spki);
	/* Each input is bound: PIN, session (exporter, i.e. a man in the middle), link key,
	 * hardware id. */
	assert_int_equal(pairproof_check("123457", exporter, spki, "hw-0001", VECTOR), 0);
	exporter[31] ^= 1;
	assert_int_equal(pairproof_check("123456", exporter, spki, "hw-0001", VECTOR), 0);
	exporter[31] ^= 1;
	spki[0] ^= 0x80;
	assert_int_equal(pairproof_check("123456", exporter, spki, "hw-0001", VECTOR), 0);
	spki[0] ^= 0x80;
	assert_int_equal(pairproof_check("123456", exporter, spki, "hw-0002", VECTOR), 0);
	/* One flipped bit of the proof, the last byte (a prefix compare would pass it). */
	memcpy(bad, VECTOR, sizeof(bad));
	bad[63] = bad[63] == '6' ? '7' : '6';
	assert_int_equal(pairproof_check("123456", exporter, spki, "hw-0001", bad), 0);
	/* Malformed: upper case, short, long, not hex, empty. */
	memcpy(bad, VECTOR, sizeof(bad));
	bad[0] = 'F';
	bad[1] = 'F';
	assert_int_equal(pairproof_check("123456", exporter, spki, "hw-0001", bad), 0);
	assert_int_equal(pairproof_check("123456", exporter, spki, "hw-0001", VECTOR + 2), 0);
	assert_int_equal(pairproof_check("123456", exporter, spki, "hw-0001", VECTOR "00"), 0);
	memcpy(bad, VECTOR, sizeof(bad));
	bad[10] = 'g';
	assert_int_equal(pairproof_check("123456", exporter, spki, "hw-0001", bad), 0);
	assert_int_equal(pairproof_check("123456", exporter, spki, "hw-0001", ""), 0);
	/* No PIN (pairing mode off) never matches, even an all-zero HMAC key. */
	assert_int_equal(pairproof_check("", exporter, spki, "hw-0001", VECTOR), 0);
}

static void test_pin_new(void **state)
{
	struct sdif s;
	int seen_first[10] = {0}, i, j, differ = 0;
	char prev[7] = "";

	memset(&s, 0, sizeof(s));
	assert_int_equal(sdif_pin_new(&s, 1000, 300, 5), 0);
	assert_int_equal(s.pin_expires, 1300);
	assert_int_equal(s.pin_attempts_left, 5);
	for (i = 0; i < 2000; i++) {
		assert_int_equal(sdif_pin_new(&s, 1000, 300, 5), 0);
		assert_int_equal(strlen(s.pin), 6);
		for (j = 0; j < 6; j++)
			assert_true(isdigit((unsigned char)s.pin[j]));
		seen_first[s.pin[0] - '0']++;
		differ += strcmp(prev, s.pin) != 0;
		memcpy(prev, s.pin, sizeof(prev));
	}
	/* Leading zeros are kept and every leading digit occurs (p of missing one ~ 1e-90). */
	for (j = 0; j < 10; j++)
		assert_true(seen_first[j] > 100 && seen_first[j] < 320);
	assert_true(differ > 1990);
	assert_int_equal(sdif_pin_new(&s, 1000, 0, 5), -1);
	assert_int_equal(s.pin[0], '\0');
	assert_int_equal(sdif_pin_new(&s, 1000, 300, 0), -1);
	assert_false(sdif_pin_active(&s, 1000));
}

static void test_pin_attempts(void **state)
{
	struct sdif s;

	memset(&s, 0, sizeof(s));
	/* No PIN yet: not pairing, whatever the proof. */
	assert_int_equal(sdif_pin_try(&s, 1000, 1), SDIF_PIN_NONE);
	assert_int_equal(sdif_pin_new(&s, 1000, 300, 3), 0);
	assert_int_equal(sdif_pin_try(&s, 1001, 0), SDIF_PIN_WRONG);
	assert_int_equal(s.pin_attempts_left, 2);
	assert_int_equal(sdif_pin_try(&s, 1002, 0), SDIF_PIN_WRONG);
	assert_int_equal(s.pin_attempts_left, 1);
	/* The last allowed wrong proof voids the PIN... */
	assert_int_equal(sdif_pin_try(&s, 1003, 0), SDIF_PIN_VOID);
	assert_int_equal(s.pin[0], '\0');
	assert_false(sdif_pin_active(&s, 1003));
	/* ...so even the right proof now finds no pairing mode. */
	assert_int_equal(sdif_pin_try(&s, 1004, 1), SDIF_PIN_NONE);

	/* A right proof with attempts spent but some left still pairs. */
	assert_int_equal(sdif_pin_new(&s, 1000, 300, 2), 0);
	assert_int_equal(sdif_pin_try(&s, 1001, 0), SDIF_PIN_WRONG);
	assert_int_equal(sdif_pin_try(&s, 1002, 1), SDIF_PIN_OK);
	/* One PIN pairs one device: the caller clears it after recording the pairing. */
	sdif_pin_clear(&s);
	assert_int_equal(sdif_pin_try(&s, 1003, 1), SDIF_PIN_NONE);
}

static void test_pin_expiry(void **state)
{
	struct sdif s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(sdif_pin_new(&s, 1000, 300, 5), 0);
	assert_true(sdif_pin_active(&s, 1299));
	assert_false(sdif_pin_active(&s, 1300));
	/* Expired: refused without costing an attempt, and the secret is forgotten. */
	assert_int_equal(sdif_pin_try(&s, 1300, 1), SDIF_PIN_NONE);
	assert_int_equal(s.pin[0], '\0');
	/* A new PIN replaces the old one with full attempts. */
	assert_int_equal(sdif_pin_new(&s, 2000, 300, 5), 0);
	assert_int_equal(sdif_pin_try(&s, 2001, 0), SDIF_PIN_WRONG);
	assert_int_equal(sdif_pin_new(&s, 2002, 300, 5), 0);
	assert_int_equal(s.pin_attempts_left, 5);
}

static void test_spki_fp(void **state)
{
	EVP_PKEY *a = pki_key_new(), *b = pki_key_new(), *pub;
	unsigned char raw[32], *der = NULL;
	char hex[65], hex2[65], want[65];
	unsigned int mdlen = 0;
	unsigned char md[32];
	int len, i;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(pairproof_spki(a, raw, hex), 0);
	assert_int_equal(strlen(hex), 64);
	/* sha256 of the DER SubjectPublicKeyInfo, computed here with EVP directly. */
	assert_true((len = i2d_PUBKEY(a, &der)) > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL), 1);
	OPENSSL_free(der);
	assert_memory_equal(raw, md, 32);
	for (i = 0; i < 32; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	assert_string_equal(hex, want);
	/* Only the public part counts: the key alone gives the same value. */
	der = NULL;
	assert_true((len = i2d_PUBKEY(a, &der)) > 0);
	{
		const unsigned char *p = der;

		assert_non_null(pub = d2i_PUBKEY(NULL, &p, len));
	}
	OPENSSL_free(der);
	assert_int_equal(pairproof_spki(pub, NULL, hex2), 0);
	assert_string_equal(hex, hex2);
	assert_int_equal(pairproof_spki(b, NULL, hex2), 0);
	assert_string_not_equal(hex, hex2);
	assert_int_equal(pairproof_spki(NULL, NULL, hex2), -1);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_proof_vector), cmocka_unit_test(test_proof_refused),
	    cmocka_unit_test(test_pin_new),      cmocka_unit_test(test_pin_attempts),
	    cmocka_unit_test(test_pin_expiry),   cmocka_unit_test(test_spki_fp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
