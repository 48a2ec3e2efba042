/* Unit tests for config: a valid file, defaults, and each way a file can be wrong. */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "opendm/config.h"
#include "testutil.h"

struct role_conf {
	char *name;
	int64_t n;
};

static const struct schema_field role_fields[] = {
    {"name", SCHEMA_STRING, offsetof(struct role_conf, name), 1, 1, 32, 0, NULL},
    {"n", SCHEMA_INT, offsetof(struct role_conf, n), 0, 0, 10, 0, NULL},
    SCHEMA_END,
};

static const struct cfg_role_section role_opt = {"dm_mss", role_fields, sizeof(struct role_conf),
                                                 0};
static const struct cfg_role_section role_req = {"dm_mss", role_fields, sizeof(struct role_conf),
                                                 1};

struct tctx {
	char dir[256];
	char cfg[512];
	char err[1024];
	char want[2048];
};

static void put(const char *path, const char *data, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void tpath(struct tctx *t, char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", t->dir, name);
}

static int setup(void **state)
{
	const char *base = getenv("ODM_TEST_TMP");
	struct tctx *t = calloc(1, sizeof(*t));
	char p[512];

	if (t == NULL)
		return -1;
	if (base != NULL && base[0] != '\0') {
		mkdir(base, 0700);
		snprintf(t->dir, sizeof(t->dir), "%s/config.XXXXXX", base);
	} else
		snprintf(t->dir, sizeof(t->dir), "/tmp/odm-config.XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		free(t);
		return -1;
	}
	/* The loader checks these exist with the right modes; it does not parse PEM. */
	tpath(t, p, sizeof(p), "cert.pem");
	put(p, "cert", 0644);
	tpath(t, p, sizeof(p), "ca.pem");
	put(p, "ca", 0644);
	tpath(t, p, sizeof(p), "crl.pem");
	put(p, "crl", 0644);
	tpath(t, p, sizeof(p), "key.pem");
	put(p, "key", 0600);
	tpath(t, t->cfg, sizeof(t->cfg), "d.json");
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tctx *t = *state;

	tu_rmtree(t->dir);
	free(t);
	return 0;
}

/* Write the config file; each '@' in body stands for the test directory. */
static void write_cfg(struct tctx *t, const char *body)
{
	char buf[8192];
	size_t n = 0, dl = strlen(t->dir);

	for (; *body != '\0'; body++) {
		assert_true(n + dl + 1 < sizeof(buf));
		if (*body == '@') {
			memcpy(buf + n, t->dir, dl);
			n += dl;
		} else
			buf[n++] = *body;
	}
	buf[n] = '\0';
	put(t->cfg, buf, 0644);
}

#define TLS_OK "\"tls\":{\"cert\":\"@/cert.pem\",\"key\":\"@/key.pem\",\"ca\":\"@/ca.pem\"}"
#define BASE_OK                                                                                    \
	"\"listen\":{\"address\":\"127.0.0.1\",\"port\":8443},\"database\":\"@/d.db\"," TLS_OK

/* Load, expect failure with exactly "<cfg path>: <rest>", and nothing left allocated. */
static void expect_fail(struct tctx *t, const struct cfg_role_section *role, const char *rest)
{
	struct cfg_daemon c;

	assert_int_equal(cfg_load(t->cfg, role, &c, t->err, sizeof(t->err)), -1);
	snprintf(t->want, sizeof(t->want), "%s: %s", t->cfg, rest);
	assert_string_equal(t->err, t->want);
	assert_null(strchr(t->err, '\n'));
	assert_null(c.listen.address);
	assert_null(c.database);
	assert_null(c.tls.cert);
	assert_null(c.tls.key);
	assert_null(c.role);
	cfg_free(role, &c);
}

static void test_valid(void **state)
{
	struct tctx *t = *state;
	struct cfg_daemon c;
	struct role_conf *r;
	char p[512];

	write_cfg(t, "{" BASE_OK ",\"log_level\":\"debug\","
	             "\"limits\":{\"max_body_bytes\":2048,\"max_header_bytes\":1024,"
	             "\"max_connections\":5,\"idle_timeout_s\":3600,\"shutdown_grace_s\":0},"
	             "\"dm_mss\":{\"name\":\"centre\",\"n\":7}}");
	assert_int_equal(cfg_load(t->cfg, &role_req, &c, t->err, sizeof(t->err)), 0);
	assert_string_equal(c.listen.address, "127.0.0.1");
	assert_int_equal(c.listen.port, 8443);
	tpath(t, p, sizeof(p), "d.db");
	assert_string_equal(c.database, p);
	tpath(t, p, sizeof(p), "key.pem");
	assert_string_equal(c.tls.key, p);
	assert_null(c.tls.crl);
	assert_string_equal(c.log_level_name, "debug");
	assert_int_equal(c.log_level, LOG_LVL_DEBUG);
	assert_int_equal(c.limits.max_body_bytes, 2048);
	assert_int_equal(c.limits.max_header_bytes, 1024);
	assert_int_equal(c.limits.max_connections, 5);
	assert_int_equal(c.limits.idle_timeout_s, 3600);
	assert_int_equal(c.limits.shutdown_grace_s, 0);
	r = c.role;
	assert_non_null(r);
	assert_string_equal(r->name, "centre");
	assert_int_equal(r->n, 7);
	cfg_free(&role_req, &c);
	assert_null(c.role);
	assert_null(c.database);
	/* Twice is harmless. */
	cfg_free(&role_req, &c);
}

static void test_defaults(void **state)
{
	struct tctx *t = *state;
	struct cfg_daemon c;
	struct role_conf *r;

	write_cfg(t, "{\"listen\":{\"address\":\"::1\",\"port\":1},\"database\":\"x.db\","
	             "\"tls\":{\"cert\":\"@/cert.pem\",\"key\":\"@/key.pem\",\"ca\":\"@/ca.pem\","
	             "\"crl\":\"@/crl.pem\"},\"limits\":{\"max_connections\":100000}}");
	assert_int_equal(cfg_load(t->cfg, &role_opt, &c, t->err, sizeof(t->err)), 0);
	assert_string_equal(c.listen.address, "::1");
	assert_non_null(c.tls.crl);
	assert_string_equal(c.log_level_name, "info");
	assert_int_equal(c.log_level, LOG_LVL_INFO);
	assert_int_equal(c.limits.max_body_bytes, 1024 * 1024);
	assert_int_equal(c.limits.max_header_bytes, 8192);
	assert_int_equal(c.limits.max_connections, 100000);
	assert_int_equal(c.limits.idle_timeout_s, 60);
	assert_int_equal(c.limits.shutdown_grace_s, 10);
	/* An optional role section that is absent still gives a zeroed struct. */
	r = c.role;
	assert_non_null(r);
	assert_null(r->name);
	assert_int_equal(r->n, 0);
	cfg_free(&role_opt, &c);

	/* No role section at all. */
	write_cfg(t, "{" BASE_OK "}");
	assert_int_equal(cfg_load(t->cfg, NULL, &c, t->err, sizeof(t->err)), 0);
	assert_null(c.role);
	cfg_free(NULL, &c);
}

static void test_missing_file(void **state)
{
	struct tctx *t = *state;

	expect_fail(t, NULL, strerror(ENOENT));
}

static void test_too_big(void **state)
{
	struct tctx *t = *state;
	char *big = malloc(CFG_MAX_FILE + 2);

	assert_non_null(big);
	memset(big, ' ', CFG_MAX_FILE + 1);
	big[0] = '{';
	big[CFG_MAX_FILE] = '}';
	big[CFG_MAX_FILE + 1] = '\0';
	put(t->cfg, big, 0644);
	free(big);
	expect_fail(t, NULL, "file is larger than 262144 bytes");
}

static void test_bad_json(void **state)
{
	struct tctx *t = *state;
	struct cfg_daemon c;

	write_cfg(t, "{\n  \"listen\": {\n    \"port\": 1,,\n  }\n}\n");
	assert_int_equal(cfg_load(t->cfg, NULL, &c, t->err, sizeof(t->err)), -1);
	snprintf(t->want, sizeof(t->want), "%s: line 3 column ", t->cfg);
	assert_memory_equal(t->err, t->want, strlen(t->want));
	assert_null(strchr(t->err, '\n'));

	write_cfg(t, "{\"database\":\"a\",\n\"database\":\"b\"}");
	assert_int_equal(cfg_load(t->cfg, NULL, &c, t->err, sizeof(t->err)), -1);
	snprintf(t->want, sizeof(t->want), "%s: line 2 column ", t->cfg);
	assert_memory_equal(t->err, t->want, strlen(t->want));
	assert_non_null(strstr(t->err, "duplicate"));

	write_cfg(t, "[1]");
	expect_fail(t, NULL, "expected a JSON object at the top level");
}

static void test_unknown_key(void **state)
{
	struct tctx *t = *state;

	write_cfg(t, "{" BASE_OK ",\"foo\":1}");
	expect_fail(t, NULL, "unknown key 'foo'");
	write_cfg(t, "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":8443},\"database\":\"d\","
	             "\"tls\":{\"cert\":\"c\",\"key\":\"k\",\"ca\":\"a\",\"foo\":\"x\"}}");
	expect_fail(t, NULL, "unknown key 'tls.foo'");
	write_cfg(t, "{" BASE_OK ",\"limits\":{\"max_body\":1}}");
	expect_fail(t, NULL, "unknown key 'limits.max_body'");
	/* Without a role, a role-like section is just an unknown key. */
	write_cfg(t, "{" BASE_OK ",\"dm_mss\":{\"name\":\"x\"}}");
	expect_fail(t, NULL, "unknown key 'dm_mss'");
}

static void test_wrong_type(void **state)
{
	struct tctx *t = *state;

	write_cfg(
	    t,
	    "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":\"8443\"},\"database\":\"d\"," TLS_OK
	    "}");
	expect_fail(t, NULL, "key 'listen.port': expected integer");
	write_cfg(t, "{" BASE_OK ",\"log_level\":3}");
	expect_fail(t, NULL, "key 'log_level': expected string");
	write_cfg(t, "{\"listen\":[],\"database\":\"d\"," TLS_OK "}");
	expect_fail(t, NULL, "key 'listen': expected object");
}

static void test_out_of_range(void **state)
{
	struct tctx *t = *state;

	write_cfg(
	    t, "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":70000},\"database\":\"d\"," TLS_OK
	       "}");
	expect_fail(t, NULL, "key 'listen.port': 70000 is out of range [1, 65535]");
	write_cfg(t, "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":0},\"database\":\"d\"," TLS_OK
	             "}");
	expect_fail(t, NULL, "key 'listen.port': 0 is out of range [1, 65535]");
	write_cfg(t, "{" BASE_OK ",\"limits\":{\"max_body_bytes\":100}}");
	expect_fail(t, NULL, "key 'limits.max_body_bytes': 100 is out of range [1024, 1073741824]");
	write_cfg(t, "{" BASE_OK ",\"limits\":{\"shutdown_grace_s\":601}}");
	expect_fail(t, NULL, "key 'limits.shutdown_grace_s': 601 is out of range [0, 600]");
	write_cfg(t, "{" BASE_OK ",\"limits\":{\"idle_timeout_s\":0}}");
	expect_fail(t, NULL, "key 'limits.idle_timeout_s': 0 is out of range [1, 3600]");
	write_cfg(t, "{" BASE_OK ",\"limits\":{\"max_header_bytes\":65537}}");
	expect_fail(t, NULL, "key 'limits.max_header_bytes': 65537 is out of range [1024, 65536]");
	write_cfg(t, "{" BASE_OK ",\"limits\":{\"max_connections\":0}}");
	expect_fail(t, NULL, "key 'limits.max_connections': 0 is out of range [1, 100000]");
	write_cfg(t, "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":1},\"database\":\"\"," TLS_OK
	             "}");
	expect_fail(t, NULL, "key 'database': length 0 is out of range [1, 4096]");
}

static void test_missing_required(void **state)
{
	struct tctx *t = *state;

	write_cfg(t, "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":1}," TLS_OK "}");
	expect_fail(t, NULL, "missing key 'database'");
	write_cfg(t, "{\"database\":\"d\"," TLS_OK "}");
	expect_fail(t, NULL, "missing key 'listen'");
	write_cfg(t, "{\"listen\":{\"port\":1},\"database\":\"d\"," TLS_OK "}");
	expect_fail(t, NULL, "missing key 'listen.address'");
	write_cfg(t, "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":1},\"database\":\"d\","
	             "\"tls\":{\"cert\":\"c\",\"key\":\"k\"}}");
	expect_fail(t, NULL, "missing key 'tls.ca'");
	write_cfg(t, "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":1},\"database\":\"d\"}");
	expect_fail(t, NULL, "missing key 'tls'");
}

static void test_bad_address(void **state)
{
	struct tctx *t = *state;

	write_cfg(t, "{\"listen\":{\"address\":\"localhost\",\"port\":1},\"database\":\"d\"," TLS_OK
	             "}");
	expect_fail(t, NULL,
	            "key 'listen.address': 'localhost' is not a numeric IPv4 or IPv6 address");
	write_cfg(t,
	          "{\"listen\":{\"address\":\"10.0.0.256\",\"port\":1},\"database\":\"d\"," TLS_OK
	          "}");
	expect_fail(t, NULL,
	            "key 'listen.address': '10.0.0.256' is not a numeric IPv4 or IPv6 address");
}

static void test_bad_log_level(void **state)
{
	struct tctx *t = *state;

	write_cfg(t, "{" BASE_OK ",\"log_level\":\"verbose\"}");
	expect_fail(t, NULL, "key 'log_level': 'verbose' is not one of err, warn, info, debug");
}

static void test_key_mode(void **state)
{
	struct tctx *t = *state;
	char p[512], rest[1024];

	tpath(t, p, sizeof(p), "key.pem");
	assert_int_equal(chmod(p, 0644), 0);
	write_cfg(t, "{" BASE_OK "}");
	snprintf(rest, sizeof(rest),
	         "key 'tls.key': %s: private key is readable by group or others (mode 0644); "
	         "chmod 600 it",
	         p);
	expect_fail(t, NULL, rest);
}

static void test_tls_files(void **state)
{
	struct tctx *t = *state;
	char p[512], rest[1024];

	write_cfg(t,
	          "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":1},\"database\":\"d\","
	          "\"tls\":{\"cert\":\"@/nocert.pem\",\"key\":\"@/key.pem\",\"ca\":\"@/ca.pem\"}}");
	tpath(t, p, sizeof(p), "nocert.pem");
	snprintf(rest, sizeof(rest), "key 'tls.cert': %s: %s", p, strerror(ENOENT));
	expect_fail(t, NULL, rest);

	write_cfg(t, "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":1},\"database\":\"d\","
	             "\"tls\":{\"cert\":\"@/cert.pem\",\"key\":\"@/key.pem\",\"ca\":\"@\"}}");
	snprintf(rest, sizeof(rest), "key 'tls.ca': %s: not a regular file", t->dir);
	expect_fail(t, NULL, rest);

	write_cfg(t, "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":1},\"database\":\"d\","
	             "\"tls\":{\"cert\":\"@/cert.pem\",\"key\":\"@/key.pem\",\"ca\":\"@/ca.pem\","
	             "\"crl\":\"@/nocrl.pem\"}}");
	tpath(t, p, sizeof(p), "nocrl.pem");
	snprintf(rest, sizeof(rest), "key 'tls.crl': %s: %s", p, strerror(ENOENT));
	expect_fail(t, NULL, rest);

	write_cfg(t,
	          "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":1},\"database\":\"d\","
	          "\"tls\":{\"cert\":\"@/cert.pem\",\"key\":\"@/nokey.pem\",\"ca\":\"@/ca.pem\"}}");
	tpath(t, p, sizeof(p), "nokey.pem");
	snprintf(rest, sizeof(rest), "key 'tls.key': %s: %s", p, strerror(ENOENT));
	expect_fail(t, NULL, rest);
}

static void test_role_section(void **state)
{
	struct tctx *t = *state;

	write_cfg(t, "{" BASE_OK ",\"dm_mss\":{\"name\":\"x\",\"bogus\":1}}");
	expect_fail(t, &role_opt, "unknown key 'dm_mss.bogus'");
	write_cfg(t, "{" BASE_OK "}");
	expect_fail(t, &role_req, "missing key 'dm_mss'");
	write_cfg(t, "{" BASE_OK ",\"dm_mss\":{}}");
	expect_fail(t, &role_opt, "missing key 'dm_mss.name'");
	write_cfg(t, "{" BASE_OK ",\"dm_mss\":{\"name\":\"x\",\"n\":11}}");
	expect_fail(t, &role_opt, "key 'dm_mss.n': 11 is out of range [0, 10]");
	write_cfg(t, "{" BASE_OK ",\"dm_mss\":[]}");
	expect_fail(t, &role_opt, "key 'dm_mss': expected object");
	/* The role's own values are freed when a later check fails (ASan checks). */
	write_cfg(t, "{\"listen\":{\"address\":\"nowhere\",\"port\":1},\"database\":\"d\"," TLS_OK
	             ",\"dm_mss\":{\"name\":\"x\"}}");
	expect_fail(t, &role_opt,
	            "key 'listen.address': 'nowhere' is not a numeric IPv4 or IPv6 address");
}

static void test_no_err_buffer(void **state)
{
	struct tctx *t = *state;
	struct cfg_daemon c;

	write_cfg(t, "{" BASE_OK ",\"foo\":1}");
	assert_int_equal(cfg_load(t->cfg, NULL, &c, NULL, 0), -1);
	cfg_free(NULL, &c);
}

static void test_https_url(void **state)
{
	char err[256], *u;

	(void)state;
	/* Trailing slashes go, so that "/v1/..." can be appended. */
	assert_non_null(u = cfg_https_url("s", "k", "https://127.0.0.1:8443//", err, sizeof(err)));
	assert_string_equal(u, "https://127.0.0.1:8443");
	free(u);
	assert_null(cfg_https_url("s", "k", "http://127.0.0.1:8443", err, sizeof(err)));
	assert_non_null(strstr(err, "key 's.k'"));
	assert_null(cfg_https_url("s", "k", "https://", err, sizeof(err)));
	assert_null(cfg_https_url("s", "k", "https:///x", err, sizeof(err)));
	assert_null(cfg_https_url("s", "k", "https://h/a?b", err, sizeof(err)));
	assert_null(cfg_https_url("s", "k", "https://h/a b", err, sizeof(err)));
	assert_null(cfg_https_url("s", "k", "https://h/\"", err, sizeof(err)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_valid, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_json, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_required, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_address, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_log_level, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_mode, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_role_section, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_err_buffer, setup, teardown),
	    cmocka_unit_test(test_https_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
