/* Unit tests of the daemon module: sd_notify, operator CA detection, command line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "opendm/admin.h"
#include "opendm/daemon.h"
#include "opendm/pki.h"
#include "testutil.h"

struct fixture {
	char dir[256];
	char chain[300], leaf_only[300], key[300], ca[300], conf[300];
	char ca_fp[65];
};

static const struct daemon_role test_role = {
    .name = "test-daemon",
    .migrations = NULL,
    .sync = DB_SYNC_NORMAL,
    .routes = NULL,
};

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	static const char *const ips[] = {"127.0.0.1", NULL};
	struct pki_issue ca_req = {
	    PKI_PROFILE_ROOT, {"test CA", NULL, NULL}, NULL, NULL, NULL, 0, 10};
	struct pki_issue leaf_req = {
	    PKI_PROFILE_SERVER, {"test-daemon", NULL, NULL}, NULL, ips, NULL, 0, 10};
	struct fixture *f = calloc(1, sizeof(*f));
	const char *base = getenv("ODM_TEST_TMP");
	EVP_PKEY *ca_key = pki_key_new(), *leaf_key = pki_key_new();
	X509 *ca, *leaf, *pair[2];
	unsigned char md[32];
	unsigned int mdlen = 0;
	char err[512], conf[2048];
	int i;

	assert_non_null(f);
	if (base != NULL)
		mkdir(base, 0700);
	snprintf(f->dir, sizeof(f->dir), "%s/test_daemon.XXXXXX", base ? base : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	ca = pki_issue(&ca_req, ca_key, NULL, ca_key, err, sizeof(err));
	assert_non_null(ca);
	leaf = pki_issue(&leaf_req, leaf_key, ca, ca_key, err, sizeof(err));
	assert_non_null(leaf);
	snprintf(f->chain, sizeof(f->chain), "%s/chain.crt", f->dir);
	snprintf(f->leaf_only, sizeof(f->leaf_only), "%s/leaf.crt", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/leaf.key", f->dir);
	snprintf(f->ca, sizeof(f->ca), "%s/ca.crt", f->dir);
	snprintf(f->conf, sizeof(f->conf), "%s/daemon.json", f->dir);
	pair[0] = leaf;
	pair[1] = ca;
	assert_int_equal(pki_certs_write(f->chain, pair, 2, err, sizeof(err)), 0);
	assert_int_equal(pki_certs_write(f->leaf_only, pair, 1, err, sizeof(err)), 0);
	assert_int_equal(pki_certs_write(f->ca, &pair[1], 1, err, sizeof(err)), 0);
	assert_int_equal(pki_key_write(f->key, leaf_key, err, sizeof(err)), 0);
	assert_int_equal(X509_digest(ca, EVP_sha256(), md, &mdlen), 1);
	for (i = 0; i < 32; i++)
		snprintf(f->ca_fp + 2 * i, 3, "%02x", md[i]);
	snprintf(conf, sizeof(conf),
	         "{\"listen\": {\"address\": \"127.0.0.1\", \"port\": 1},"
	         " \"database\": \"%s/test.db\","
	         " \"tls\": {\"cert\": \"%s\", \"key\": \"%s\", \"ca\": \"%s\"}}",
	         f->dir, f->chain, f->key, f->ca);
	write_text(f->conf, conf);
	X509_free(ca);
	X509_free(leaf);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_rmtree(f->dir);
	free(f);
	return 0;
}

static void test_notify_unset(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(daemon_notify("READY=1"), 0);
}

static int bind_dgram(const char *name, int abstract)
{
	struct sockaddr_un sun;
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (abstract) {
		memcpy(sun.sun_path + 1, name, strlen(name));
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	} else {
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", name);
		len = sizeof(sun);
	}
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, len), 0);
	return fd;
}

static void test_notify_path_and_abstract(void **state)
{
	struct fixture *f = *state;
	char path[300], abs_name[64], env[80], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/notify.sock", f->dir);
	fd = bind_dgram(path, 0);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(daemon_notify("READY=1\nSTATUS=serving"), 0);
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "READY=1\nSTATUS=serving");
	close(fd);

	snprintf(abs_name, sizeof(abs_name), "odm-test-%ld", (long)getpid());
	fd = bind_dgram(abs_name, 1);
	snprintf(env, sizeof(env), "@%s", abs_name);
	setenv("NOTIFY_SOCKET", env, 1);
	assert_int_equal(daemon_notify("STOPPING=1"), 0);
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "STOPPING=1");
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static void test_notify_bad_socket(void **state)
{
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(daemon_notify("READY=1"), -1);
	setenv("NOTIFY_SOCKET", "/nonexistent/dir/sock", 1);
	assert_int_equal(daemon_notify("READY=1"), -1);
	unsetenv("NOTIFY_SOCKET");
}

static void test_admin_ca_fingerprint(void **state)
{
	struct fixture *f = *state;
	char fp[65], err[512];

	assert_int_equal(admin_ca_fingerprint(f->chain, fp, err, sizeof(err)), 0);
	assert_string_equal(fp, f->ca_fp);
	assert_int_equal(admin_ca_fingerprint(f->leaf_only, fp, err, sizeof(err)), -1);
	assert_non_null(strstr(err, f->leaf_only));
	assert_int_equal(admin_ca_fingerprint("/nonexistent.crt", fp, err, sizeof(err)), -1);
}

static void test_main_command_line(void **state)
{
	struct fixture *f = *state;
	char *ok[] = {"test-daemon", "-n", "-c", f->conf, NULL};
	char *missing[] = {"test-daemon", "-n", "-c", "/nonexistent/x.json", NULL};
	char *bad_opt[] = {"test-daemon", "-x", NULL};
	char *extra[] = {"test-daemon", "-n", "-c", f->conf, "extra", NULL};
	char *version[] = {"test-daemon", "-V", NULL};

	optind = 1;
	assert_int_equal(daemon_main(4, ok, &test_role), 0);
	optind = 1;
	assert_int_equal(daemon_main(4, missing, &test_role), 1);
	optind = 1;
	opterr = 0;
	assert_int_equal(daemon_main(2, bad_opt, &test_role), 2);
	optind = 1;
	assert_int_equal(daemon_main(5, extra, &test_role), 2);
	optind = 1;
	assert_int_equal(daemon_main(2, version, &test_role), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_notify_unset),
	    cmocka_unit_test(test_notify_path_and_abstract),
	    cmocka_unit_test(test_notify_bad_socket),
	    cmocka_unit_test(test_admin_ca_fingerprint),
	    cmocka_unit_test(test_main_command_line),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
