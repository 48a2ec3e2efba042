/*
 * Unit tests for src/common/tls.c: real handshakes in one thread, the two ends joined by an
 * OpenSSL BIO pair and pumped in turn, with certificates made by the pki module.
 */
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

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "opendm/pki.h"
#include "opendm/tls.h"
#include "testutil.h"

struct fx {
	char dir[512];
	char ca[600], srv_crt[600], srv_key[600], cli_crt[600], cli_key[600];
	char bad_crt[600], bad_key[600], other_ca[600], crl[600], crl_ok[600];
	char client_fp[65], sub_fp[65], client_serial[80];
};

static const char *const srv_dns[] = {"localhost", NULL};
static const char *const srv_ips[] = {"127.0.0.1", NULL};

static void path_in(char *buf, size_t len, const char *dir, const char *name)
{
	assert_true(snprintf(buf, len, "%s/%s", dir, name) < (int)len);
}

static X509 *issue(enum pki_profile profile, const char *cn, const char *ou, const char *uri,
                   EVP_PKEY *key, X509 *ica, EVP_PKEY *ikey)
{
	struct pki_issue req = {
	    .profile = profile,
	    .subject = {.cn = cn, .ou = ou},
	    .uri = uri,
	    .days = 30,
	};
	char err[256] = "";
	X509 *x;

	if (profile == PKI_PROFILE_SERVER) {
		req.dns = srv_dns;
		req.ips = srv_ips;
	}
	if ((x = pki_issue(&req, key, ica, ikey, err, sizeof(err))) == NULL)
		fail_msg("pki_issue %s: %s", cn, err);
	return x;
}

static void write_pair(const char *crt, const char *key, X509 *leaf, X509 *ca, EVP_PKEY *k)
{
	X509 *chain[2] = {leaf, ca};
	char err[512] = "";

	if (pki_certs_write(crt, chain, 2, err, sizeof(err)) == -1 ||
	    pki_key_write(key, k, err, sizeof(err)) == -1)
		fail_msg("%s", err);
}

static X509_CRL *make_crl(X509 *ca, EVP_PKEY *key, X509 *revoked)
{
	X509_CRL *crl;
	X509_REVOKED *r;
	ASN1_TIME *t;

	assert_non_null(crl = X509_CRL_new());
	assert_true(X509_CRL_set_version(crl, 1));
	assert_true(X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)));
	assert_non_null(t = ASN1_TIME_set(NULL, time(NULL) - 60));
	assert_true(X509_CRL_set1_lastUpdate(crl, t));
	assert_non_null(ASN1_TIME_set(t, time(NULL) + 86400));
	assert_true(X509_CRL_set1_nextUpdate(crl, t));
	if (revoked != NULL) {
		assert_non_null(r = X509_REVOKED_new());
		assert_true(X509_REVOKED_set_serialNumber(
		    r, (ASN1_INTEGER *)X509_get0_serialNumber(revoked)));
		assert_non_null(ASN1_TIME_set(t, time(NULL) - 30));
		assert_true(X509_REVOKED_set_revocationDate(r, t));
		assert_true(X509_CRL_add0_revoked(crl, r));
		assert_true(X509_CRL_sort(crl));
	}
	ASN1_TIME_free(t);
	assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
	return crl;
}

static void write_crls(const char *path, X509_CRL *a, X509_CRL *b)
{
	FILE *fp;

	assert_non_null(fp = fopen(path, "w"));
	assert_true(PEM_write_X509_CRL(fp, a));
	assert_true(PEM_write_X509_CRL(fp, b));
	assert_int_equal(fclose(fp), 0);
}

static void fp_hex(X509 *x, char *buf)
{
	unsigned char md[32];
	unsigned int n, i;

	assert_true(X509_digest(x, EVP_sha256(), md, &n));
	for (i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02x", md[i]);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *base = getenv("ODM_TEST_TMP");
	EVP_PKEY *rk, *sk, *srvk, *clik, *rk2, *sk2, *badk;
	X509 *root, *sub, *srv, *cli, *root2, *sub2, *bad;
	X509_CRL *crl_root, *crl_sub, *crl_sub_empty;
	char err[512] = "";
	BIGNUM *bn;
	char *hex;

	assert_non_null(f);
	if (base == NULL)
		base = "/tmp";
	assert_int_equal(tu_mkdir_p(base), 0);
	assert_true(snprintf(f->dir, sizeof(f->dir), "%s/tls.XXXXXX", base) < (int)sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	path_in(f->ca, sizeof(f->ca), f->dir, "ca.crt");
	path_in(f->srv_crt, sizeof(f->srv_crt), f->dir, "server.crt");
	path_in(f->srv_key, sizeof(f->srv_key), f->dir, "server.key");
	path_in(f->cli_crt, sizeof(f->cli_crt), f->dir, "client.crt");
	path_in(f->cli_key, sizeof(f->cli_key), f->dir, "client.key");
	path_in(f->bad_crt, sizeof(f->bad_crt), f->dir, "bad.crt");
	path_in(f->bad_key, sizeof(f->bad_key), f->dir, "bad.key");
	path_in(f->other_ca, sizeof(f->other_ca), f->dir, "other-ca.crt");
	path_in(f->crl, sizeof(f->crl), f->dir, "revoked.crl");
	path_in(f->crl_ok, sizeof(f->crl_ok), f->dir, "ok.crl");

	assert_non_null(rk = pki_key_new());
	assert_non_null(sk = pki_key_new());
	assert_non_null(srvk = pki_key_new());
	assert_non_null(clik = pki_key_new());
	assert_non_null(rk2 = pki_key_new());
	assert_non_null(sk2 = pki_key_new());
	assert_non_null(badk = pki_key_new());
	root = issue(PKI_PROFILE_ROOT, "Root", NULL, NULL, rk, NULL, rk);
	sub = issue(PKI_PROFILE_SUBCA, "Device CA", NULL, NULL, sk, root, rk);
	srv = issue(PKI_PROFILE_SERVER, "dm-iss", NULL, NULL, srvk, sub, sk);
	cli = issue(PKI_PROFILE_CLIENT, "dm-agent", "device", "urn:opendm:dm:00ff", clik, sub, sk);
	/* Another PKI with the very same names: only the keys differ. */
	root2 = issue(PKI_PROFILE_ROOT, "Root", NULL, NULL, rk2, NULL, rk2);
	sub2 = issue(PKI_PROFILE_SUBCA, "Device CA", NULL, NULL, sk2, root2, rk2);
	bad =
	    issue(PKI_PROFILE_CLIENT, "dm-agent", "device", "urn:opendm:dm:00ff", badk, sub2, sk2);

	assert_int_equal(pki_certs_write(f->ca, &root, 1, err, sizeof(err)), 0);
	assert_int_equal(pki_certs_write(f->other_ca, &root2, 1, err, sizeof(err)), 0);
	write_pair(f->srv_crt, f->srv_key, srv, sub, srvk);
	write_pair(f->cli_crt, f->cli_key, cli, sub, clik);
	write_pair(f->bad_crt, f->bad_key, bad, sub2, badk);

	/* CRL_CHECK_ALL wants a CRL from every CA of the chain. */
	crl_root = make_crl(root, rk, NULL);
	crl_sub = make_crl(sub, sk, cli);
	crl_sub_empty = make_crl(sub, sk, NULL);
	write_crls(f->crl, crl_root, crl_sub);
	write_crls(f->crl_ok, crl_root, crl_sub_empty);

	fp_hex(cli, f->client_fp);
	fp_hex(sub, f->sub_fp);
	assert_non_null(bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cli), NULL));
	assert_non_null(hex = BN_bn2hex(bn));
	snprintf(f->client_serial, sizeof(f->client_serial), "%s", hex);
	OPENSSL_free(hex);
	BN_free(bn);

	X509_CRL_free(crl_root);
	X509_CRL_free(crl_sub);
	X509_CRL_free(crl_sub_empty);
	X509_free(root);
	X509_free(sub);
	X509_free(srv);
	X509_free(cli);
	X509_free(root2);
	X509_free(sub2);
	X509_free(bad);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(sk);
	EVP_PKEY_free(srvk);
	EVP_PKEY_free(clik);
	EVP_PKEY_free(rk2);
	EVP_PKEY_free(sk2);
	EVP_PKEY_free(badk);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static SSL_CTX *server_ctx(struct fx *f, const char *crl)
{
	struct tls_conf c = {
	    .cert = f->srv_crt, .key = f->srv_key, .ca = f->ca, .crl = (char *)crl};
	char err[512] = "";
	SSL_CTX *ctx;

	if ((ctx = tls_server_ctx(&c, err, sizeof(err))) == NULL)
		fail_msg("tls_server_ctx: %s", err);
	return ctx;
}

static SSL_CTX *client_ctx(const char *crt, const char *key, const char *ca)
{
	struct tls_conf c = {.cert = (char *)crt, .key = (char *)key, .ca = (char *)ca};
	char err[512] = "";
	SSL_CTX *ctx;

	if ((ctx = tls_client_ctx(&c, err, sizeof(err))) == NULL)
		fail_msg("tls_client_ctx: %s", err);
	return ctx;
}

static int step(SSL *ssl, int *done)
{
	int r;

	if (*done)
		return 0;
	if ((r = SSL_do_handshake(ssl)) == 1) {
		*done = 1;
		return 0;
	}
	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	default:
		return -1;
	}
}

/*
 * Handshake, then one message each way (in TLS 1.3 the server judges the client certificate
 * after the client already thinks it is done, so only application data proves acceptance).
 * 0 when both sides accepted; -1 otherwise. Both SSLs are returned for inspection.
 */
static int connect_pair(SSL_CTX *sctx, SSL_CTX *cctx, SSL **cp, SSL **sp)
{
	BIO *cb = NULL, *sb = NULL;
	SSL *c, *s;
	char buf[16];
	int i, cdone = 0, sdone = 0, cfail = 0, sfail = 0;

	assert_non_null(c = SSL_new(cctx));
	assert_non_null(s = SSL_new(sctx));
	assert_true(BIO_new_bio_pair(&cb, 0, &sb, 0));
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	*cp = c;
	*sp = s;
	for (i = 0; i < 50 && !cfail && !sfail && !(cdone && sdone); i++) {
		cfail = step(c, &cdone) == -1;
		sfail = step(s, &sdone) == -1;
	}
	ERR_clear_error();
	if (!cdone || !sdone)
		return -1;
	if (SSL_write(c, "ping", 4) != 4 || SSL_read(s, buf, sizeof(buf)) != 4 ||
	    memcmp(buf, "ping", 4) != 0)
		return -1;
	if (SSL_write(s, "pong", 4) != 4 || SSL_read(c, buf, sizeof(buf)) != 4 ||
	    memcmp(buf, "pong", 4) != 0)
		return -1;
	return 0;
}

static void test_mutual_ok(void **state)
{
	struct fx *f = *state;
	SSL_CTX *sctx = server_ctx(f, NULL);
	SSL_CTX *cctx = client_ctx(f->cli_crt, f->cli_key, f->ca);
	struct tls_peer p;
	SSL *c, *s;
	const char *suite;

	assert_int_equal(connect_pair(sctx, cctx, &c, &s), 0);
	assert_int_equal(SSL_version(s), TLS1_3_VERSION);
	suite = SSL_CIPHER_get_name(SSL_get_current_cipher(s));
	assert_non_null(strstr(TLS_CIPHERSUITES, suite));
	assert_int_equal(SSL_CTX_get_num_tickets(sctx), 0);
	assert_int_equal(SSL_SESSION_has_ticket(SSL_get0_session(c)), 0);
	assert_true(SSL_CTX_get_options(sctx) & SSL_OP_IGNORE_UNEXPECTED_EOF);
	assert_true(SSL_CTX_get_options(sctx) & SSL_OP_NO_RENEGOTIATION);
	assert_int_equal(SSL_CTX_get_max_early_data(sctx), 0);
	assert_int_equal(SSL_CTX_get_mode(sctx) & SSL_MODE_RELEASE_BUFFERS, 0);

	/* The server sees the device. */
	assert_int_equal(tls_peer_from_ssl(s, &p), 0);
	assert_string_equal(p.subject_cn, "dm-agent");
	assert_string_equal(p.issuer_cn, "Device CA");
	assert_string_equal(p.ou, "device");
	assert_string_equal(p.san_uri, "urn:opendm:dm:00ff");
	assert_string_equal(p.fingerprint, f->client_fp);
	assert_string_equal(p.issuer_fp, f->sub_fp);
	assert_string_equal(p.serial, f->client_serial);
	assert_int_equal(strlen(p.serial), 32);

	/* And the client the daemon. */
	assert_int_equal(tls_peer_from_ssl(c, &p), 0);
	assert_string_equal(p.subject_cn, "dm-iss");
	assert_string_equal(p.ou, "");
	assert_string_equal(p.san_uri, "");
	assert_string_equal(p.issuer_fp, f->sub_fp);

	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void test_client_without_cert_refused(void **state)
{
	struct fx *f = *state;
	SSL_CTX *sctx = server_ctx(f, NULL);
	SSL_CTX *cctx;
	struct tls_peer p;
	SSL *c, *s;
	char err[256];

	/* tls_client_ctx() insists on a certificate, so build a bare client by hand. */
	assert_non_null(cctx = SSL_CTX_new(TLS_client_method()));
	assert_int_equal(tls_apply_policy(cctx, err, sizeof(err)), 0);
	assert_int_equal(SSL_CTX_load_verify_locations(cctx, f->ca, NULL), 1);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	assert_int_equal(connect_pair(sctx, cctx, &c, &s), -1);
	assert_int_equal(tls_peer_from_ssl(s, &p), -1);
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void test_untrusted_client_refused(void **state)
{
	struct fx *f = *state;
	SSL_CTX *sctx = server_ctx(f, NULL);
	SSL_CTX *cctx = client_ctx(f->bad_crt, f->bad_key, f->ca);
	SSL *c, *s;

	assert_int_equal(connect_pair(sctx, cctx, &c, &s), -1);
	assert_int_not_equal(SSL_get_verify_result(s), X509_V_OK);
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void test_untrusted_server_refused(void **state)
{
	struct fx *f = *state;
	SSL_CTX *sctx = server_ctx(f, NULL);
	SSL_CTX *cctx = client_ctx(f->cli_crt, f->cli_key, f->other_ca);
	SSL *c, *s;

	assert_int_equal(connect_pair(sctx, cctx, &c, &s), -1);
	assert_int_not_equal(SSL_get_verify_result(c), X509_V_OK);
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void test_tls12_client_refused(void **state)
{
	struct fx *f = *state;
	SSL_CTX *sctx = server_ctx(f, NULL);
	SSL_CTX *cctx = client_ctx(f->cli_crt, f->cli_key, f->ca);
	SSL *c, *s;

	assert_true(SSL_CTX_set_min_proto_version(cctx, TLS1_2_VERSION));
	assert_true(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION));
	assert_true(SSL_CTX_set_cipher_list(cctx, "ECDHE-ECDSA-AES128-GCM-SHA256"));
	assert_int_equal(connect_pair(sctx, cctx, &c, &s), -1);
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void test_crl(void **state)
{
	struct fx *f = *state;
	SSL_CTX *sctx, *cctx = client_ctx(f->cli_crt, f->cli_key, f->ca);
	SSL *c, *s;

	/* Control: CRLs present, the client not on them. */
	sctx = server_ctx(f, f->crl_ok);
	assert_int_equal(connect_pair(sctx, cctx, &c, &s), 0);
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(sctx);

	sctx = server_ctx(f, f->crl);
	assert_int_equal(connect_pair(sctx, cctx, &c, &s), -1);
	assert_int_equal(SSL_get_verify_result(s), X509_V_ERR_CERT_REVOKED);
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static void expect_conf_error(struct tls_conf *c, int server, const char *needle)
{
	char err[1024] = "";
	SSL_CTX *ctx;

	ctx = server ? tls_server_ctx(c, err, sizeof(err)) : tls_client_ctx(c, err, sizeof(err));
	if (ctx != NULL) {
		SSL_CTX_free(ctx);
		fail_msg("context made, expected an error naming %s", needle);
	}
	if (strstr(err, needle) == NULL)
		fail_msg("error \"%s\" does not name %s", err, needle);
}

static void test_conf_errors(void **state)
{
	struct fx *f = *state;
	struct tls_conf c = {.cert = f->srv_crt, .key = f->srv_key, .ca = f->ca};
	char missing[600];

	path_in(missing, sizeof(missing), f->dir, "missing.pem");

	assert_int_equal(chmod(f->srv_key, 0644), 0);
	expect_conf_error(&c, 1, f->srv_key);
	expect_conf_error(&c, 0, f->srv_key);
	assert_int_equal(chmod(f->srv_key, 0600), 0);

	c.cert = missing;
	expect_conf_error(&c, 1, missing);
	c.cert = f->srv_crt;
	c.key = f->cli_key; /* another key, properly private */
	expect_conf_error(&c, 1, f->cli_key);
	c.key = f->srv_key;
	c.ca = missing;
	expect_conf_error(&c, 1, missing);
	c.ca = f->ca;
	c.crl = missing;
	expect_conf_error(&c, 1, missing);
	c.crl = f->ca; /* a file without any CRL */
	expect_conf_error(&c, 1, f->ca);
	c.crl = NULL;
	c.key = NULL;
	expect_conf_error(&c, 0, "key");
	expect_conf_error(NULL, 1, "certificate");
}

static void test_helpers(void **state)
{
	struct fx *f = *state;
	STACK_OF(X509) * sk;
	struct tls_peer p;
	char err[512], buf[256], tiny[8];

	assert_non_null(sk = pki_certs_load(f->cli_crt, err, sizeof(err)));
	assert_int_equal(tls_peer_from_cert(sk_X509_value(sk, 0), &p), 0);
	assert_string_equal(p.subject_cn, "dm-agent");
	assert_string_equal(p.issuer_fp, "");
	assert_string_equal(p.fingerprint, f->client_fp);
	sk_X509_pop_free(sk, X509_free);
	assert_int_equal(tls_peer_from_cert(NULL, &p), -1);
	assert_int_equal(tls_peer_from_ssl(NULL, &p), -1);

	ERR_clear_error();
	assert_string_equal(tls_errstr(buf, sizeof(buf)), "no OpenSSL error");
	ERR_raise(ERR_LIB_SSL, SSL_R_NO_CERTIFICATE_ASSIGNED);
	ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
	tls_errstr(buf, sizeof(buf));
	assert_non_null(strstr(buf, "no certificate assigned"));
	assert_non_null(strstr(buf, "; "));
	assert_int_equal(ERR_peek_error(), 0);
	ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
	tls_errstr(tiny, sizeof(tiny));
	assert_true(strlen(tiny) < sizeof(tiny));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mutual_ok),
	    cmocka_unit_test(test_client_without_cert_refused),
	    cmocka_unit_test(test_untrusted_client_refused),
	    cmocka_unit_test(test_untrusted_server_refused),
	    cmocka_unit_test(test_tls12_client_refused),
	    cmocka_unit_test(test_crl),
	    cmocka_unit_test(test_conf_errors),
	    cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
