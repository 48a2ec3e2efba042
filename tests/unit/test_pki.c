/* Unit tests for src/common/pki.c and dmctl pki init (src/dmctl/pki.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include "opendm/pki.h"
#include "opendm/tls.h"
#include "../../src/dmctl/dmctl.h"
#include "testutil.h"

struct fx {
	char dir[512];
	EVP_PKEY *root_key, *sub_key, *leaf_key;
	X509 *root, *sub, *leaf;
	STACK_OF(X509) * anchors, *untrusted;
};

static const char *const leaf_dns[] = {"localhost", "dm-mss.opendm.test", NULL};
static const char *const leaf_ips[] = {"127.0.0.1", "::1", NULL};

static void tmpdir_make(char *buf, size_t len)
{
	const char *base = getenv("ODM_TEST_TMP");

	if (base == NULL)
		base = "/tmp";
	assert_int_equal(tu_mkdir_p(base), 0);
	assert_true(snprintf(buf, len, "%s/pki.XXXXXX", base) < (int)len);
	assert_non_null(mkdtemp(buf));
}

static void rm_rf(const char *dir)
{
	char cmd[1024];

	/* Test cleanup only; the path is one mkdtemp made. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static X509 *issue(enum pki_profile profile, const char *cn, const char *ou, EVP_PKEY *key,
                   X509 *ica, EVP_PKEY *ikey, int64_t not_before, int64_t days)
{
	struct pki_issue req = {
	    .profile = profile,
	    .subject = {.cn = cn, .ou = ou},
	    .not_before = not_before,
	    .days = days,
	};
	char err[256] = "";
	X509 *x;

	if (profile == PKI_PROFILE_SERVER) {
		req.dns = leaf_dns;
		req.ips = leaf_ips;
		req.uri = "urn:opendm:dm:0001";
	}
	x = pki_issue(&req, key, ica, ikey, err, sizeof(err));
	if (x == NULL)
		fail_msg("pki_issue %s: %s", cn, err);
	return x;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	tmpdir_make(f->dir, sizeof(f->dir));
	assert_non_null(f->root_key = pki_key_new());
	assert_non_null(f->sub_key = pki_key_new());
	assert_non_null(f->leaf_key = pki_key_new());
	f->root = issue(PKI_PROFILE_ROOT, "Test Root", NULL, f->root_key, NULL, f->root_key, 0, 30);
	f->sub =
	    issue(PKI_PROFILE_SUBCA, "Test Sub", NULL, f->sub_key, f->root, f->root_key, 0, 30);
	f->leaf =
	    issue(PKI_PROFILE_SERVER, "dm-mss", "daemon", f->leaf_key, f->sub, f->sub_key, 0, 30);
	assert_non_null(f->anchors = sk_X509_new_null());
	assert_non_null(f->untrusted = sk_X509_new_null());
	assert_true(sk_X509_push(f->anchors, f->root) > 0);
	assert_true(X509_up_ref(f->root));
	assert_true(sk_X509_push(f->untrusted, f->sub) > 0);
	assert_true(X509_up_ref(f->sub));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sk_X509_pop_free(f->anchors, X509_free);
	sk_X509_pop_free(f->untrusted, X509_free);
	X509_free(f->leaf);
	X509_free(f->sub);
	X509_free(f->root);
	EVP_PKEY_free(f->leaf_key);
	EVP_PKEY_free(f->sub_key);
	EVP_PKEY_free(f->root_key);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static void test_chain_verifies(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	BIGNUM *bn;

	assert_int_equal(pki_verify(f->leaf, f->untrusted, f->anchors, X509_PURPOSE_SSL_SERVER, err,
	                            sizeof(err)),
	                 0);
	assert_int_equal(pki_verify(f->leaf, f->untrusted, f->anchors, X509_PURPOSE_SSL_CLIENT, err,
	                            sizeof(err)),
	                 0);
	assert_int_equal(pki_verify(f->leaf, f->untrusted, f->anchors, 0, err, sizeof(err)), 0);
	/* Without the intermediate there is no path. */
	assert_int_equal(pki_verify(f->leaf, NULL, f->anchors, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "issuer"));

	assert_non_null(bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(f->leaf), NULL));
	assert_int_equal(BN_num_bits(bn), 128);
	assert_false(BN_is_negative(bn));
	BN_free(bn);
	assert_int_equal(X509_get_version(f->leaf), X509_VERSION_3);
	assert_int_equal(X509_get_signature_nid(f->leaf), NID_ecdsa_with_SHA256);
	assert_true(X509_check_ca(f->sub) > 0);
	assert_int_equal(X509_check_ca(f->leaf), 0);
	assert_non_null(X509_get0_subject_key_id(f->leaf));
	assert_non_null(X509_get0_authority_key_id(f->leaf));
	assert_non_null(X509_get0_authority_key_id(f->root));
	assert_int_equal(X509_check_host(f->leaf, "dm-mss.opendm.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(f->leaf, "::1", 0), 1);
}

static void test_other_root_fails(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *k2;
	X509 *root2;
	STACK_OF(X509) * anchors2;
	char err[256] = "";

	assert_non_null(k2 = pki_key_new());
	root2 = issue(PKI_PROFILE_ROOT, "Test Root", NULL, k2, NULL, k2, 0, 30);
	assert_non_null(anchors2 = sk_X509_new_null());
	assert_true(sk_X509_push(anchors2, root2) > 0);
	/* Same subject name as the real root, different key: must not verify. */
	assert_int_equal(pki_verify(f->leaf, f->untrusted, anchors2, 0, err, sizeof(err)), -1);
	assert_true(strlen(err) > 0);
	/* An empty anchor set is an error, not "anything goes". */
	sk_X509_pop_free(anchors2, X509_free);
	assert_non_null(anchors2 = sk_X509_new_null());
	assert_int_equal(pki_verify(f->leaf, f->untrusted, anchors2, 0, err, sizeof(err)), -1);
	sk_X509_free(anchors2);
	EVP_PKEY_free(k2);
}

static void test_expired_fails(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *k;
	X509 *old, *future;
	char err[256] = "";
	int64_t now = (int64_t)time(NULL);

	assert_non_null(k = pki_key_new());
	old = issue(PKI_PROFILE_CLIENT, "old", NULL, k, f->sub, f->sub_key, now - 400 * 86400, 30);
	assert_int_equal(pki_verify(old, f->untrusted, f->anchors, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expired"));
	future = issue(PKI_PROFILE_CLIENT, "future", NULL, k, f->sub, f->sub_key, now + 86400, 30);
	assert_int_equal(pki_verify(future, f->untrusted, f->anchors, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not yet valid"));
	X509_free(old);
	X509_free(future);
	EVP_PKEY_free(k);
}

static void test_wrong_purpose_fails(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *k;
	X509 *client;
	char err[256] = "";

	assert_non_null(k = pki_key_new());
	client = issue(PKI_PROFILE_CLIENT, "operator", "admin", k, f->sub, f->sub_key, 0, 30);
	assert_int_equal(
	    pki_verify(client, f->untrusted, f->anchors, X509_PURPOSE_SSL_CLIENT, err, sizeof(err)),
	    0);
	assert_int_equal(
	    pki_verify(client, f->untrusted, f->anchors, X509_PURPOSE_SSL_SERVER, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "purpose"));
	X509_free(client);
	EVP_PKEY_free(k);
}

static void test_issue_errors(void **state)
{
	struct fx *f = *state;
	const char *const bad_dns[] = {"has space", NULL};
	const char *const bad_ip[] = {"300.1.1.1", NULL};
	struct pki_issue req = {.profile = PKI_PROFILE_CLIENT, .subject = {.cn = "x"}, .days = 1};
	char err[256] = "";
	char longcn[100];

	req.days = 0;
	assert_null(pki_issue(&req, f->leaf_key, f->sub, f->sub_key, err, sizeof(err)));
	assert_non_null(strstr(err, "days"));
	req.days = 1;
	req.subject.cn = NULL;
	assert_null(pki_issue(&req, f->leaf_key, f->sub, f->sub_key, err, sizeof(err)));
	memset(longcn, 'a', sizeof(longcn) - 1);
	longcn[sizeof(longcn) - 1] = '\0';
	req.subject.cn = longcn;
	assert_null(pki_issue(&req, f->leaf_key, f->sub, f->sub_key, err, sizeof(err)));
	req.subject.cn = "x";
	req.dns = bad_dns;
	assert_null(pki_issue(&req, f->leaf_key, f->sub, f->sub_key, err, sizeof(err)));
	assert_non_null(strstr(err, "DNS"));
	req.dns = NULL;
	req.ips = bad_ip;
	assert_null(pki_issue(&req, f->leaf_key, f->sub, f->sub_key, err, sizeof(err)));
	assert_non_null(strstr(err, "300.1.1.1"));
	req.ips = NULL;
	/* A leaf cannot issue, nor can a CA certificate with somebody else's key. */
	assert_null(pki_issue(&req, f->leaf_key, f->leaf, f->leaf_key, err, sizeof(err)));
	assert_non_null(strstr(err, "not a CA"));
	assert_null(pki_issue(&req, f->leaf_key, f->sub, f->root_key, err, sizeof(err)));
	assert_non_null(strstr(err, "does not match"));
	/* Only a root is self-signed. */
	assert_null(pki_issue(&req, f->leaf_key, NULL, f->leaf_key, err, sizeof(err)));
	req.profile = PKI_PROFILE_ROOT;
	assert_null(pki_issue(&req, f->leaf_key, f->sub, f->sub_key, err, sizeof(err)));
}

static void test_csr_roundtrip(void **state)
{
	struct fx *f = *state;
	X509_REQ *req, *back;
	STACK_OF(X509_EXTENSION) * exts;
	GENERAL_NAMES *gens = NULL;
	char *pem, *pem2;
	char err[256] = "";
	int i;

	assert_non_null(req = pki_csr_new(f->leaf_key, "dm-agent", "urn:opendm:dm:42"));
	assert_non_null(pem = pki_csr_pem(req));
	assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE REQUEST-----"));
	assert_non_null(back = pki_csr_from_pem(pem, strlen(pem), err, sizeof(err)));
	assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(back), f->leaf_key), 1);
	assert_non_null(pem2 = pki_csr_pem(back));
	assert_string_equal(pem, pem2);
	assert_non_null(exts = X509_REQ_get_extensions(back));
	for (i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
		if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) == NID_subject_alt_name)
			gens = X509V3_EXT_d2i(e);
	}
	assert_non_null(gens);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
	assert_int_equal(sk_GENERAL_NAME_value(gens, 0)->type, GEN_URI);
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);

	/* Garbage, truncation and an empty buffer are refused. */
	assert_null(pki_csr_from_pem("hello", 5, err, sizeof(err)));
	assert_null(pki_csr_from_pem(pem, strlen(pem) / 2, err, sizeof(err)));
	assert_null(pki_csr_from_pem(pem, 0, err, sizeof(err)));
	X509_REQ_free(back);
	free(pem2);
	free(pem);
	X509_REQ_free(req);

	/* Without a URI there is no SAN extension at all. */
	assert_non_null(req = pki_csr_new(f->leaf_key, "plain", NULL));
	exts = X509_REQ_get_extensions(req);
	assert_int_equal(sk_X509_EXTENSION_num(exts), exts == NULL ? -1 : 0);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	assert_null(pki_csr_new(f->leaf_key, NULL, NULL));
	assert_null(pki_csr_new(f->leaf_key, "x", "bad uri"));
}

static void test_cert_pem_roundtrip(void **state)
{
	struct fx *f = *state;
	char *pem;
	X509 *back;
	char err[256] = "";

	assert_non_null(pem = pki_cert_pem(f->leaf));
	assert_non_null(back = pki_cert_from_pem(pem, strlen(pem), err, sizeof(err)));
	assert_int_equal(X509_cmp(back, f->leaf), 0);
	X509_free(back);
	assert_null(pki_cert_from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n", 33, err, sizeof(err)));
	assert_non_null(strstr(err, "certificate"));
	free(pem);
}

static void test_key_files(void **state)
{
	struct fx *f = *state;
	char path[600], pub[600], err[512] = "";
	struct stat st;
	EVP_PKEY *k;

	snprintf(path, sizeof(path), "%s/a.key", f->dir);
	snprintf(pub, sizeof(pub), "%s/a.pub", f->dir);
	assert_int_equal(pki_key_write(path, f->leaf_key, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_non_null(k = pki_key_load(path, err, sizeof(err)));
	assert_int_equal(EVP_PKEY_eq(k, f->leaf_key), 1);
	EVP_PKEY_free(k);

	assert_int_equal(chmod(path, 0644), 0);
	assert_null(pki_key_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_int_equal(chmod(path, 0640), 0);
	assert_null(pki_key_load(path, err, sizeof(err)));

	assert_int_equal(pki_pubkey_write(pub, f->leaf_key, err, sizeof(err)), 0);
	assert_int_equal(stat(pub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_non_null(k = pki_pubkey_load(pub, err, sizeof(err)));
	assert_int_equal(EVP_PKEY_eq(k, f->leaf_key), 1);
	EVP_PKEY_free(k);

	/* A public key file is not a private key, even with a private mode. */
	assert_int_equal(chmod(pub, 0600), 0);
	assert_null(pki_key_load(pub, err, sizeof(err)));
	assert_non_null(strstr(err, "private key"));
	snprintf(path, sizeof(path), "%s/missing.key", f->dir);
	assert_null(pki_key_load(path, err, sizeof(err)));
	assert_null(pki_pubkey_load(path, err, sizeof(err)));
	/* A directory that does not exist: the write fails and says so. */
	snprintf(path, sizeof(path), "%s/no/such/dir.key", f->dir);
	assert_int_equal(pki_key_write(path, f->leaf_key, err, sizeof(err)), -1);
	assert_true(strlen(err) > 0);
}

static void test_certs_file(void **state)
{
	struct fx *f = *state;
	X509 *chain[2] = {f->leaf, f->sub};
	STACK_OF(X509) * sk;
	char path[600], err[512] = "";
	struct stat st;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/chain.crt", f->dir);
	assert_int_equal(pki_certs_write(path, chain, 2, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_non_null(sk = pki_certs_load(path, err, sizeof(err)));
	assert_int_equal(sk_X509_num(sk), 2);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 0), f->leaf), 0);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 1), f->sub), 0);
	sk_X509_pop_free(sk, X509_free);
	assert_int_equal(pki_certs_write(path, chain, 0, err, sizeof(err)), -1);

	/* A file with no certificate, or with a broken one after a good one, is refused. */
	assert_non_null(fp = fopen(path, "w"));
	fputs("nothing here\n", fp);
	fclose(fp);
	assert_null(pki_certs_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_int_equal(pki_certs_write(path, chain, 1, err, sizeof(err)), 0);
	assert_non_null(fp = fopen(path, "a"));
	fputs("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", fp);
	fclose(fp);
	assert_null(pki_certs_load(path, err, sizeof(err)));
}

static void test_names(void **state)
{
	struct fx *f = *state;
	char buf[64];

	assert_int_equal(pki_cert_uri(f->leaf, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "urn:opendm:dm:0001");
	assert_int_equal(pki_cert_uri(f->leaf, buf, 10), -1);
	assert_int_equal(pki_cert_uri(f->sub, buf, sizeof(buf)), -1);
	assert_int_equal(pki_cert_cn(f->leaf, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "dm-mss");
	assert_int_equal(pki_cert_cn(f->leaf, buf, 6), -1);
	assert_int_equal(pki_cert_cn(f->root, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "Test Root");
}

/* dmctl pki init: every file, private modes, and every leaf verifying against ca.crt. */
static void check_leaf(const char *dir, const char *name, int purpose)
{
	char path[700], err[512] = "";
	STACK_OF(X509) * anchors, *chain;
	X509 *leaf;
	EVP_PKEY *key;
	struct stat st;

	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	assert_non_null(anchors = pki_certs_load(path, err, sizeof(err)));
	snprintf(path, sizeof(path), "%s/%s.crt", dir, name);
	if ((chain = pki_certs_load(path, err, sizeof(err))) == NULL)
		fail_msg("%s: %s", name, err);
	assert_int_equal(sk_X509_num(chain), 2);
	leaf = sk_X509_shift(chain);
	if (pki_verify(leaf, chain, anchors, purpose, err, sizeof(err)) != 0)
		fail_msg("%s: %s", name, err);
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_non_null(key = pki_key_load(path, err, sizeof(err)));
	assert_int_equal(X509_check_private_key(leaf, key), 1);
	EVP_PKEY_free(key);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(anchors, X509_free);
}

static void test_dmctl_pki_init(void **state)
{
	struct fx *f = *state;
	static const char *daemons[] = {"dm-mss", "dm-iss", "cdcs-pss", "cdcs-mss", "cdcs-iss"};
	static const char *cas[] = {"root-ca", "service-ca", "cpe-ca", "app-ca", "device-ca"};
	static const char *signers[] = {"dm-agent-signing", "vendor-a-signing", "vendor-b-signing",
	                                "operator-signing", "enrolment-signing"};
	char dir[600], path[700], err[512] = "", buf[128];
	char *argv[3];
	struct stat st;
	STACK_OF(X509) * sk;
	EVP_PKEY *k;
	size_t i;

	snprintf(dir, sizeof(dir), "%s/pki", f->dir);
	argv[0] = "init";
	argv[1] = dir;
	argv[2] = NULL;
	assert_int_equal(dmctl_pki_main(2, argv), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	for (i = 0; i < sizeof(daemons) / sizeof(daemons[0]); i++)
		check_leaf(dir, daemons[i], X509_PURPOSE_SSL_SERVER);
	check_leaf(dir, "sd-if-agent", X509_PURPOSE_SSL_SERVER);
	check_leaf(dir, "app", X509_PURPOSE_SSL_CLIENT);
	check_leaf(dir, "operator", X509_PURPOSE_SSL_CLIENT);
	check_leaf(dir, "thirdparty", X509_PURPOSE_SSL_CLIENT);
	for (i = 0; i < sizeof(cas) / sizeof(cas[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s.key", dir, cas[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0600);
		snprintf(path, sizeof(path), "%s/%s.crt", dir, cas[i]);
		assert_non_null(sk = pki_certs_load(path, err, sizeof(err)));
		assert_true(X509_check_ca(sk_X509_value(sk, 0)) > 0);
		sk_X509_pop_free(sk, X509_free);
	}
	for (i = 0; i < sizeof(signers) / sizeof(signers[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s.key", dir, signers[i]);
		assert_non_null(k = pki_key_load(path, err, sizeof(err)));
		EVP_PKEY_free(k);
		snprintf(path, sizeof(path), "%s/%s.pub", dir, signers[i]);
		assert_non_null(k = pki_pubkey_load(path, err, sizeof(err)));
		EVP_PKEY_free(k);
	}
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	assert_non_null(sk = pki_certs_load(path, err, sizeof(err)));
	assert_int_equal(sk_X509_num(sk), 1);
	sk_X509_pop_free(sk, X509_free);

	/* Identity details the daemons rely on. */
	snprintf(path, sizeof(path), "%s/operator.crt", dir);
	assert_non_null(sk = pki_certs_load(path, err, sizeof(err)));
	assert_int_equal(pki_cert_cn(sk_X509_value(sk, 0), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "operator");
	sk_X509_pop_free(sk, X509_free);
	snprintf(path, sizeof(path), "%s/sd-if-agent.crt", dir);
	assert_non_null(sk = pki_certs_load(path, err, sizeof(err)));
	assert_int_equal(pki_cert_cn(sk_X509_value(sk, 0), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "cpe-0001");
	assert_int_equal(X509_check_host(sk_X509_value(sk, 0), "localhost", 0, 0, NULL), 1);
	/* Devices check the CPE by address when they pair and open the relay link. */
	assert_int_equal(
	    X509_check_host(sk_X509_value(sk, 0), "sd-if-agent.opendm.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(sk_X509_value(sk, 0), "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(sk_X509_value(sk, 0), "::1", 0), 1);
	assert_int_equal(X509_check_host(sk_X509_value(sk, 0), "dm-mss.opendm.test", 0, 0, NULL),
	                 0);
	assert_int_equal(X509_check_purpose(sk_X509_value(sk, 0), X509_PURPOSE_SSL_CLIENT, 0), 1);
	sk_X509_pop_free(sk, X509_free);
	snprintf(path, sizeof(path), "%s/cdcs-iss.crt", dir);
	assert_non_null(sk = pki_certs_load(path, err, sizeof(err)));
	assert_int_equal(X509_check_host(sk_X509_value(sk, 0), "cdcs-iss.opendm.test", 0, 0, NULL),
	                 1);
	sk_X509_pop_free(sk, X509_free);

	/* A second init must not overwrite the root key. */
	assert_int_not_equal(dmctl_pki_main(2, argv), 0);
	/* Usage errors. */
	argv[1] = NULL;
	assert_int_not_equal(dmctl_pki_main(1, argv), 0);
	argv[0] = "frobnicate";
	argv[1] = dir;
	assert_int_not_equal(dmctl_pki_main(2, argv), 0);
	assert_int_not_equal(dmctl_pki_main(0, argv), 0);
}

/* dmctl pki operator: roles become OU values, which tls_peer reads back in full. */
static void test_dmctl_pki_operator(void **state)
{
	struct fx *f = *state;
	char dir[600], path[700], err[512] = "";
	char *argv[8];
	struct tls_peer peer;
	struct stat st;
	STACK_OF(X509) * sk;

	snprintf(dir, sizeof(dir), "%s/pki", f->dir);
	argv[0] = "init";
	argv[1] = dir;
	assert_int_equal(dmctl_pki_main(2, argv), 0);
	argv[0] = "operator";
	argv[2] = "--name";
	argv[3] = "alice";
	argv[4] = "--role";
	argv[5] = "viewer,policy";
	assert_int_equal(dmctl_pki_main(6, argv), 0);
	snprintf(path, sizeof(path), "%s/operator-alice.key", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s/operator-alice.crt", dir);
	assert_non_null(sk = pki_certs_load(path, err, sizeof(err)));
	assert_int_equal(tls_peer_from_cert(sk_X509_value(sk, 0), &peer), 0);
	assert_string_equal(peer.subject_cn, "alice");
	assert_string_equal(peer.ou, "viewer");
	assert_string_equal(peer.ous, "viewer,policy");
	assert_int_equal(X509_check_purpose(sk_X509_value(sk, 0), X509_PURPOSE_SSL_CLIENT, 0), 1);
	sk_X509_pop_free(sk, X509_free);
	/* Never over an existing key; unknown roles, bad names and lists are usage errors. */
	assert_int_equal(dmctl_pki_main(6, argv), DMCTL_EXIT_FAIL);
	argv[3] = "bob";
	argv[5] = "root";
	assert_int_equal(dmctl_pki_main(6, argv), DMCTL_EXIT_USAGE);
	argv[5] = "viewer,,policy";
	assert_int_equal(dmctl_pki_main(6, argv), DMCTL_EXIT_USAGE);
	argv[5] = "viewer,";
	assert_int_equal(dmctl_pki_main(6, argv), DMCTL_EXIT_USAGE);
	argv[3] = "../evil";
	argv[5] = "viewer";
	assert_int_equal(dmctl_pki_main(6, argv), DMCTL_EXIT_USAGE);
	argv[3] = "bob";
	assert_int_equal(dmctl_pki_main(4, argv), DMCTL_EXIT_USAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_chain_verifies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_root_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expired_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_purpose_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_issue_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_csr_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cert_pem_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_certs_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dmctl_pki_init, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dmctl_pki_operator, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
