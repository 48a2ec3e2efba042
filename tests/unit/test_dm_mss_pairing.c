/* Unit tests for src/dm_mss/pairing.c: a CPE's pairing assertion as device authentication. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "opendm/jose.h"
#include "opendm/pki.h"
#include "../../src/dm_mss/dm_mss.h"
#include "testutil.h"

struct fx {
	char dir[512], root_path[600], cpe_ca_path[600], svc_ca_path[600];
	EVP_PKEY *root_key, *cpe_ca_key, *svc_ca_key, *cpe_key, *svc_key;
	X509 *root, *cpe_ca, *svc_ca;
	char *cpe_pem, *svc_pem; /* leaf + its CA */
	struct dm_mss_state st;
};

/* check.c's authorization helpers want the role state; not used by what is tested here. */
struct dm_mss_state *dm_mss_state(const struct daemon_ctx *d)
{
	(void)d;
	return NULL;
}

static X509 *issue(enum pki_profile profile, const char *cn, EVP_PKEY *key, X509 *ca,
                   EVP_PKEY *ca_key)
{
	struct pki_issue req = {profile, {cn, NULL, NULL}, NULL, NULL, NULL, 0, 2};
	char err[256] = "";
	X509 *x;

	if ((x = pki_issue(&req, key, ca, ca_key, err, sizeof(err))) == NULL)
		fail_msg("pki_issue %s: %s", cn, err);
	return x;
}

/* A leaf of ca for a new key (*key), as leaf + CA PEM. */
static char *leaf_pem(const char *cn, EVP_PKEY **key, X509 *ca, EVP_PKEY *ca_key)
{
	X509 *leaf;
	char *a, *b, *out;

	assert_non_null(*key = pki_key_new());
	leaf = issue(PKI_PROFILE_SERVER, cn, *key, ca, ca_key);
	assert_non_null(a = pki_cert_pem(leaf));
	assert_non_null(b = pki_cert_pem(ca));
	assert_non_null(out = malloc(strlen(a) + strlen(b) + 1));
	strcpy(out, a);
	strcat(out, b);
	free(a);
	free(b);
	X509_free(leaf);
	return out;
}

static void write_cert(const char *path, X509 *x)
{
	char err[256] = "";

	if (pki_certs_write(path, &x, 1, err, sizeof(err)) == -1)
		fail_msg("%s", err);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[512] = "";

	assert_non_null(f);
	assert_int_equal(tu_tmpdir(f->dir, sizeof(f->dir), "dm_mss_pairing"), 0);
	assert_non_null(f->root_key = pki_key_new());
	assert_non_null(f->cpe_ca_key = pki_key_new());
	assert_non_null(f->svc_ca_key = pki_key_new());
	f->root = issue(PKI_PROFILE_ROOT, "Root", f->root_key, NULL, f->root_key);
	f->cpe_ca = issue(PKI_PROFILE_SUBCA, "CPE CA", f->cpe_ca_key, f->root, f->root_key);
	f->svc_ca = issue(PKI_PROFILE_SUBCA, "Service CA", f->svc_ca_key, f->root, f->root_key);
	f->cpe_pem = leaf_pem("cpe-0001", &f->cpe_key, f->cpe_ca, f->cpe_ca_key);
	f->svc_pem = leaf_pem("dm-mss", &f->svc_key, f->svc_ca, f->svc_ca_key);
	snprintf(f->root_path, sizeof(f->root_path), "%s/ca.crt", f->dir);
	snprintf(f->cpe_ca_path, sizeof(f->cpe_ca_path), "%s/cpe-ca.crt", f->dir);
	snprintf(f->svc_ca_path, sizeof(f->svc_ca_path), "%s/service-ca.crt", f->dir);
	write_cert(f->root_path, f->root);
	write_cert(f->cpe_ca_path, f->cpe_ca);
	write_cert(f->svc_ca_path, f->svc_ca);
	if (dm_mss_pairing_load(&f->st, f->cpe_ca_path, f->root_path, err, sizeof(err)) == -1)
		fail_msg("load: %s", err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	dm_mss_pairing_free(&f->st);
	EVP_PKEY_free(f->root_key);
	EVP_PKEY_free(f->cpe_ca_key);
	EVP_PKEY_free(f->svc_ca_key);
	EVP_PKEY_free(f->cpe_key);
	EVP_PKEY_free(f->svc_key);
	X509_free(f->root);
	X509_free(f->cpe_ca);
	X509_free(f->svc_ca);
	free(f->cpe_pem);
	free(f->svc_pem);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

/* An assertion by key: iss, aud, sub as given (NULL: left out), 300 s. */
static char *assertion(EVP_PKEY *key, const char *iss, const char *aud, const char *sub)
{
	json_t *c = json_object();
	char err[256] = "", *jws;

	assert_non_null(c);
	if (iss != NULL)
		json_object_set_new(c, "iss", json_string(iss));
	if (aud != NULL)
		json_object_set_new(c, "aud", json_string(aud));
	if (sub != NULL)
		json_object_set_new(c, "sub", json_string(sub));
	json_object_set_new(c, "link_fp", json_string("00"));
	if ((jws = jose_sign(key, NULL, c, 300, err, sizeof(err))) == NULL)
		fail_msg("jose_sign: %s", err);
	json_decref(c);
	return jws;
}

/* Verify and expect status/code (0: success). */
static void expect(struct fx *f, const char *pem, char *jws, time_t now, int want_status,
                   const char *want_code)
{
	struct dm_mss_pairing p;
	const char *code = NULL;
	char err[512] = "";
	int status = 0, rc;

	rc = dm_mss_pairing_verify(&f->st, pem, jws, "hw-0001", now != 0 ? now : time(NULL), &p,
	                           &status, &code, err, sizeof(err));
	free(jws);
	if (want_status == 0) {
		if (rc != 0)
			fail_msg("refused: %d %s: %s", status, code, err);
		assert_string_equal(p.cpe, "cpe-0001");
		assert_int_equal(strlen(p.jti), 32);
		assert_true(p.exp > (int64_t)time(NULL));
		return;
	}
	assert_int_equal(rc, -1);
	assert_int_equal(status, want_status);
	assert_string_equal(code, want_code);
	assert_true(err[0] != '\0');
}

static void test_valid(void **state)
{
	struct fx *f = *state;

	expect(f, f->cpe_pem, assertion(f->cpe_key, "cpe-0001", "dm-mss", "hw-0001"), 0, 0, NULL);
}

static void test_claims_refused(void **state)
{
	struct fx *f = *state;

	expect(f, f->cpe_pem, assertion(f->cpe_key, "cpe-0001", "dm-mss", "hw-0002"), 0, 403,
	       "wrong_subject");
	expect(f, f->cpe_pem, assertion(f->cpe_key, "cpe-0001", "dm-iss", "hw-0001"), 0, 401,
	       "bad_assertion");
	expect(f, f->cpe_pem, assertion(f->cpe_key, "cpe-0002", "dm-mss", "hw-0001"), 0, 401,
	       "bad_assertion");
	expect(f, f->cpe_pem, assertion(f->cpe_key, "cpe-0001", "dm-mss", NULL), 0, 403,
	       "wrong_subject");
	/* Past exp (300 s) and the clock skew. */
	expect(f, f->cpe_pem, assertion(f->cpe_key, "cpe-0001", "dm-mss", "hw-0001"),
	       time(NULL) + 300 + JOSE_CLOCK_SKEW + 5, 401, "assertion_expired");
	/* Signed by another key than the certificate's. */
	expect(f, f->cpe_pem, assertion(f->svc_key, "cpe-0001", "dm-mss", "hw-0001"), 0, 401,
	       "bad_assertion");
	expect(f, f->cpe_pem, strdup("not.a.jws"), 0, 401, "bad_assertion");
}

static void test_certificate_refused(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *k2 = NULL;
	X509 *other_root;
	EVP_PKEY *other_key;
	char *pem;

	/* A certificate of another CA under the same root, with its own key (and that CA sent
	 * along: only the configured CPE CA counts). */
	expect(f, f->svc_pem, assertion(f->svc_key, "dm-mss", "dm-mss", "hw-0001"), 0, 403,
	       "bad_cpe_certificate");
	/* A CA named like ours under another root. */
	assert_non_null(other_key = pki_key_new());
	other_root = issue(PKI_PROFILE_ROOT, "CPE CA", other_key, NULL, other_key);
	pem = leaf_pem("cpe-0001", &k2, other_root, other_key);
	expect(f, pem, assertion(k2, "cpe-0001", "dm-mss", "hw-0001"), 0, 403,
	       "bad_cpe_certificate");
	free(pem);
	EVP_PKEY_free(k2);
	X509_free(other_root);
	EVP_PKEY_free(other_key);
	expect(f, "garbage", assertion(f->cpe_key, "cpe-0001", "dm-mss", "hw-0001"), 0, 403,
	       "bad_cpe_certificate");
}

static void test_disabled_and_load(void **state)
{
	struct fx *f = *state;
	struct dm_mss_state st;
	char err[512] = "";

	memset(&st, 0, sizeof(st));
	assert_int_equal(dm_mss_pairing_verify(&st, f->cpe_pem, "x", "hw-0001", time(NULL),
	                                       &(struct dm_mss_pairing){0}, &(int){0},
	                                       &(const char *){NULL}, err, sizeof(err)),
	                 -1);
	/* The CPE CA must chain to tls.ca, and must be a CA. */
	memset(&st, 0, sizeof(st));
	assert_int_equal(dm_mss_pairing_load(&st, f->cpe_ca_path, f->cpe_ca_path, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "does not chain"));
	dm_mss_pairing_free(&st);
	memset(&st, 0, sizeof(st));
	assert_int_equal(dm_mss_pairing_load(&st, f->svc_ca_path, f->root_path, err, sizeof(err)),
	                 0);
	/* tls.ca holding an intermediate too: its leaves chain, yet are not the CPE CA's. */
	{
		X509 *both[2] = {f->root, f->svc_ca};
		char path[700], *jws = assertion(f->svc_key, "dm-mss", "dm-mss", "hw-0001");
		struct dm_mss_pairing p;
		const char *code = NULL;
		int status = 0;

		snprintf(path, sizeof(path), "%s/both.crt", f->dir);
		assert_int_equal(pki_certs_write(path, both, 2, err, sizeof(err)), 0);
		dm_mss_pairing_free(&st);
		memset(&st, 0, sizeof(st));
		assert_int_equal(dm_mss_pairing_load(&st, f->cpe_ca_path, path, err, sizeof(err)),
		                 0);
		assert_int_equal(dm_mss_pairing_verify(&st, f->svc_pem, jws, "hw-0001", time(NULL),
		                                       &p, &status, &code, err, sizeof(err)),
		                 -1);
		assert_string_equal(code, "bad_cpe_certificate");
		assert_non_null(strstr(err, "not issued by the CPE CA"));
		free(jws);
		dm_mss_pairing_free(&st);
		memset(&st, 0, sizeof(st));
		assert_int_equal(
		    dm_mss_pairing_load(&st, f->svc_ca_path, f->root_path, err, sizeof(err)), 0);
	}
	/* With the service CA configured, the CPE's certificate is no longer accepted. */
	{
		struct dm_mss_pairing p;
		const char *code = NULL;
		int status = 0;
		char *jws = assertion(f->cpe_key, "cpe-0001", "dm-mss", "hw-0001");

		assert_int_equal(dm_mss_pairing_verify(&st, f->cpe_pem, jws, "hw-0001", time(NULL),
		                                       &p, &status, &code, err, sizeof(err)),
		                 -1);
		assert_string_equal(code, "bad_cpe_certificate");
		free(jws);
	}
	dm_mss_pairing_free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_valid, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_claims_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_certificate_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_disabled_and_load, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
