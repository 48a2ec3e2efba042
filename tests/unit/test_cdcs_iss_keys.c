/*
 * Unit tests for cdcs-iss keys.c: the entitlement keys JWK Set. A good set; each way an
 * entry can be wrong (kty, kid, base64url, length, duplicate, missing or unknown member); a
 * file that is not private; and no key material in error messages.
 */
#include <sys/stat.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/cdcs_iss/cdcs_iss.h"
#include "testutil.h"

/* Bytes 0x00..0x1f and 0xff..0xe0 in base64url. */
#define K_SEQ "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define K_REV "__79_Pv6-fj39vX08_Lx8O_u7ezr6uno5-bl5OPi4eA"
#define K_16  "AAECAwQFBgcICQoLDA0ODw"                       /* 16 bytes */
#define K_33  "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g" /* 33 bytes */

static char err[CDCS_ISS_ERRLEN];

static int parse(const char *text, struct cdcs_iss_keyset *ks)
{
	err[0] = '\0';
	return cdcs_iss_keys_parse(text, strlen(text), ks, err, sizeof(err));
}

/* One entry in an otherwise good set. */
static int parse_one(const char *entry)
{
	struct cdcs_iss_keyset ks;
	char text[2048];
	int rc;

	snprintf(text, sizeof(text), "{\"keys\":[%s]}", entry);
	rc = parse(text, &ks);
	if (rc == 0)
		cdcs_iss_keys_free(&ks);
	else {
		assert_null(ks.v);
		assert_int_equal(ks.n, 0);
	}
	return rc;
}

static void test_good_set(void **state)
{
	struct cdcs_iss_keyset ks;
	const struct cdcs_iss_key *k;
	unsigned char want[CDCS_ISS_KEY_LEN];
	size_t i;

	(void)state;
	assert_int_equal(
	    parse("{\"keys\":["
	          "{\"kty\":\"oct\",\"kid\":\"vendor-a/sample-ca/basic\",\"k\":\"" K_SEQ "\"},"
	          "{\"kid\":\"vendor-b/sample-drm/uhd\",\"k\":\"" K_REV "\",\"kty\":\"oct\"}]}",
	          &ks),
	    0);
	assert_int_equal(ks.n, 2);
	assert_non_null(k = cdcs_iss_keys_find(&ks, "vendor-a/sample-ca/basic"));
	for (i = 0; i < sizeof(want); i++)
		want[i] = (unsigned char)i;
	assert_memory_equal(k->k, want, sizeof(want));
	assert_non_null(k = cdcs_iss_keys_find(&ks, "vendor-b/sample-drm/uhd"));
	for (i = 0; i < sizeof(want); i++)
		want[i] = (unsigned char)(0xff - i);
	assert_memory_equal(k->k, want, sizeof(want));
	assert_null(cdcs_iss_keys_find(&ks, "vendor-a/sample-ca/premium"));
	assert_null(cdcs_iss_keys_find(&ks, "vendor-a/sample-ca"));
	cdcs_iss_keys_free(&ks);
	assert_null(ks.v);
	assert_int_equal(ks.n, 0);
	assert_null(cdcs_iss_keys_find(&ks, "vendor-a/sample-ca/basic"));
}

static void test_wrong_kty(void **state)
{
	(void)state;
	assert_int_equal(parse_one("{\"kty\":\"EC\",\"kid\":\"v/n/basic\",\"k\":\"" K_SEQ "\"}"),
	                 -1);
	assert_non_null(strstr(err, "keys[0].kty"));
	assert_int_equal(parse_one("{\"kty\":\"OCT\",\"kid\":\"v/n/basic\",\"k\":\"" K_SEQ "\"}"),
	                 -1);
	assert_int_equal(parse_one("{\"kty\":1,\"kid\":\"v/n/basic\",\"k\":\"" K_SEQ "\"}"), -1);
	assert_non_null(strstr(err, "kty"));
}

static void test_bad_base64url(void **state)
{
	(void)state;
	/* Standard base64 alphabet, padding, whitespace, 4n+1 characters. */
	assert_int_equal(parse_one("{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":"
	                           "\"__79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA\"}"),
	                 -1);
	assert_non_null(strstr(err, "keys[0].k"));
	assert_null(strstr(err, "Pv6"));
	assert_int_equal(parse_one("{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":\"" K_SEQ "=\"}"),
	                 -1);
	assert_int_equal(parse_one("{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":\" " K_SEQ "\"}"),
	                 -1);
	assert_int_equal(parse_one("{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":"
	                           "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8AA\"}"),
	                 -1);
	assert_non_null(strstr(err, "keys[0].k"));
	assert_null(strstr(err, "AAEC"));
	assert_int_equal(parse_one("{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":\"\"}"), -1);
}

static void test_wrong_length(void **state)
{
	(void)state;
	assert_int_equal(parse_one("{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":\"" K_16 "\"}"),
	                 -1);
	assert_non_null(strstr(err, "16 bytes"));
	assert_null(strstr(err, K_16));
	assert_int_equal(parse_one("{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":\"" K_33 "\"}"),
	                 -1);
	assert_non_null(strstr(err, "33 bytes"));
}

static void test_duplicate_kid(void **state)
{
	struct cdcs_iss_keyset ks;

	(void)state;
	assert_int_equal(parse("{\"keys\":["
	                       "{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":\"" K_SEQ "\"},"
	                       "{\"kty\":\"oct\",\"kid\":\"v/n/premium\",\"k\":\"" K_SEQ "\"},"
	                       "{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":\"" K_REV "\"}]}",
	                       &ks),
	                 -1);
	assert_non_null(strstr(err, "keys[2].kid"));
	assert_non_null(strstr(err, "twice"));
	assert_null(ks.v);
	/* A JSON object with a member twice is refused too, rather than one of them winning. */
	assert_int_equal(parse_one("{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":\"" K_SEQ
	                           "\",\"k\":\"" K_REV "\"}"),
	                 -1);
}

static void test_missing_and_unknown(void **state)
{
	struct cdcs_iss_keyset ks;

	(void)state;
	assert_int_equal(parse_one("{\"kid\":\"v/n/basic\",\"k\":\"" K_SEQ "\"}"), -1);
	assert_non_null(strstr(err, "kty"));
	assert_int_equal(parse_one("{\"kty\":\"oct\",\"k\":\"" K_SEQ "\"}"), -1);
	assert_non_null(strstr(err, "kid"));
	assert_int_equal(parse_one("{\"kty\":\"oct\",\"kid\":\"v/n/basic\"}"), -1);
	assert_non_null(strstr(err, "'keys[0].k'"));
	assert_int_equal(
	    parse_one("{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":\"" K_SEQ "\",\"alg\":\"x\"}"),
	    -1);
	assert_non_null(strstr(err, "alg"));
	assert_int_equal(parse("{}", &ks), -1);
	assert_non_null(strstr(err, "keys"));
	assert_int_equal(parse("{\"keys\":[]}", &ks), -1);
	assert_int_equal(parse("{\"keys\":{}}", &ks), -1);
	assert_int_equal(parse("[]", &ks), -1);
	assert_int_equal(parse("{\"keys\":[", &ks), -1);
	assert_int_equal(parse("", &ks), -1);
	assert_int_equal(parse_one("\"v/n/basic\""), -1);
}

static void test_bad_kid(void **state)
{
	static const char *const bad[] = {
	    "v/n",
	    "v/n/basic/x",
	    "/n/basic",
	    "v//basic",
	    "v/n/",
	    "v n/n/basic",
	    "v/n/Basic",
	    "-v/n/basic",
	    "v/n/b.c",
	    "v/n/" /* then 33 chars */
	    "abcdefghijabcdefghijabcdefghijabc",
	};
	char entry[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(entry, sizeof(entry),
		         "{\"kty\":\"oct\",\"kid\":\"%s\",\"k\":\"" K_SEQ "\"}", bad[i]);
		if (parse_one(entry) != -1)
			fail_msg("kid '%s' accepted", bad[i]);
		assert_non_null(strstr(err, "kid"));
	}
	assert_int_equal(
	    parse_one("{\"kty\":\"oct\",\"kid\":\"Vendor.A/Sample_CA/uhd-4k\",\"k\":\"" K_SEQ
	              "\"}"),
	    0);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_load_file(void **state)
{
	static const char good[] =
	    "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"vendor-a/sample-ca/basic\",\"k\":\"" K_SEQ
	    "\"}]}\n";
	struct cdcs_iss_keyset ks;
	char dir[512], path[600];

	(void)state;
	assert_int_equal(tu_tmpdir(dir, sizeof(dir), "cdcs-iss-keys"), 0);
	snprintf(path, sizeof(path), "%s/entitlement-keys.json", dir);

	write_file(path, good, 0600);
	assert_int_equal(cdcs_iss_keys_load(path, &ks, err, sizeof(err)), 0);
	assert_int_equal(ks.n, 1);
	cdcs_iss_keys_free(&ks);

	/* Group- or world-readable: refused, whatever it holds. */
	write_file(path, good, 0640);
	assert_int_equal(cdcs_iss_keys_load(path, &ks, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chmod 600"));
	assert_null(ks.v);
	write_file(path, good, 0604);
	assert_int_equal(cdcs_iss_keys_load(path, &ks, err, sizeof(err)), -1);

	/* A bad entry names the file and the key, never the key material. */
	write_file(path, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":\"" K_16 "\"}]}",
	           0600);
	assert_int_equal(cdcs_iss_keys_load(path, &ks, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "keys[0].k"));
	assert_null(strstr(err, K_16));

	/* Invalid JSON: the parser's message would quote the text, so only the line is said. */
	write_file(path, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"v/n/basic\",\"k\":\"" K_SEQ "\"",
	           0600);
	assert_int_equal(cdcs_iss_keys_load(path, &ks, err, sizeof(err)), -1);
	assert_null(strstr(err, K_SEQ));

	unlink(path);
	assert_int_equal(cdcs_iss_keys_load(path, &ks, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	tu_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_set),      cmocka_unit_test(test_wrong_kty),
	    cmocka_unit_test(test_bad_base64url), cmocka_unit_test(test_wrong_length),
	    cmocka_unit_test(test_duplicate_kid), cmocka_unit_test(test_missing_and_unknown),
	    cmocka_unit_test(test_bad_kid),       cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
