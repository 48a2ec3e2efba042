/* Unit tests for log: format, escaping, filtering, flow steps, truncation, journald. */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "opendm/log.h"

struct capture {
	char dir[512];
	char path[600];
	int fd;
	int saved;
	char buf[16384];
};

static struct capture *cap_start(void)
{
	const char *base = getenv("ODM_TEST_TMP");
	struct capture *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	if (base != NULL && base[0] != '\0') {
		mkdir(base, 0700);
		snprintf(c->dir, sizeof(c->dir), "%s/log.XXXXXX", base);
	} else
		snprintf(c->dir, sizeof(c->dir), "/tmp/odm-log.XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	snprintf(c->path, sizeof(c->path), "%s/stderr", c->dir);
	c->fd = open(c->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(c->fd >= 0);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_int_equal(dup2(c->fd, STDERR_FILENO), STDERR_FILENO);
	return c;
}

/* Restore stderr and return everything written meanwhile (NUL-terminated). */
static const char *cap_stop(struct capture *c)
{
	ssize_t n;

	assert_int_equal(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
	close(c->saved);
	assert_int_equal(lseek(c->fd, 0, SEEK_SET), 0);
	n = read(c->fd, c->buf, sizeof(c->buf) - 1);
	assert_true(n >= 0);
	c->buf[n] = '\0';
	close(c->fd);
	unlink(c->path);
	rmdir(c->dir);
	return c->buf;
}

static void assert_match(const char *s, const char *re)
{
	regex_t r;
	int rc;

	assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	rc = regexec(&r, s, 0, NULL, 0);
	regfree(&r);
	if (rc != 0)
		fail_msg("'%s' does not match /%s/", s, re);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return n;
}

static int setup(void **state)
{
	unsetenv("JOURNAL_STREAM");
	log_init("dm-mss", LOG_LVL_INFO);
	return 0;
}

static void test_format(void **state)
{
	struct capture *c = cap_start();
	const char *out;

	log_msg(LOG_LVL_INFO, "foo", "abc", "hello %s", "world");
	log_msg(LOG_LVL_ERR, "bar", NULL, "plain");
	out = cap_stop(c);
	assert_match(out, "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	                  "level=info daemon=dm-mss func=foo rid=abc msg=\"hello world\"\n"
	                  "ts=[^ ]+ level=err daemon=dm-mss func=bar msg=\"plain\"\n$");
	free(c);
}

static void test_macros(void **state)
{
	struct capture *c = cap_start();
	const char *out;

	log_err("e%d", 1);
	log_rinfo("rid-9", "i");
	out = cap_stop(c);
	assert_non_null(strstr(out, "level=err daemon=dm-mss func=test_macros msg=\"e1\"\n"));
	assert_non_null(
	    strstr(out, "level=info daemon=dm-mss func=test_macros rid=rid-9 msg=\"i\"\n"));
	free(c);
}

static void test_escaping(void **state)
{
	struct capture *c = cap_start();
	const char *out;

	log_msg(LOG_LVL_WARN, "f", "a b\"c", "q\"b\\s\nn\tt\rr\x01z\x7f \xc3\xa9 \xff\xc3");
	out = cap_stop(c);
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, " rid=\"a b\\\"c\" "));
	assert_non_null(
	    strstr(out, " msg=\"q\\\"b\\\\s\\nn\\tt\\rr\\x01z\\x7f \xc3\xa9 \\xff\\xc3\"\n"));
	free(c);
}

static void test_empty_values(void **state)
{
	struct capture *c = cap_start();
	const char *out;

	log_msg(LOG_LVL_INFO, "f", "", "%s", "");
	out = cap_stop(c);
	assert_non_null(strstr(out, " func=f rid=\"\" msg=\"\"\n"));
	free(c);
}

static void test_level_filter(void **state)
{
	struct capture *c;
	const char *out;

	log_set_level(LOG_LVL_WARN);
	assert_int_equal(log_get_level(), LOG_LVL_WARN);
	c = cap_start();
	log_msg(LOG_LVL_DEBUG, "f", NULL, "debug-line");
	log_msg(LOG_LVL_INFO, "f", NULL, "info-line");
	log_step("fig4", 1, "r", "s", "step-line");
	log_msg(LOG_LVL_WARN, "f", NULL, "warn-line");
	log_msg(LOG_LVL_ERR, "f", NULL, "err-line");
	out = cap_stop(c);
	assert_null(strstr(out, "debug-line"));
	assert_null(strstr(out, "info-line"));
	assert_null(strstr(out, "step-line"));
	assert_non_null(strstr(out, "level=warn daemon=dm-mss func=f msg=\"warn-line\""));
	assert_non_null(strstr(out, "level=err daemon=dm-mss func=f msg=\"err-line\""));
	assert_int_equal(count_lines(out), 2);
	free(c);

	log_set_level(LOG_LVL_DEBUG);
	c = cap_start();
	log_msg(LOG_LVL_DEBUG, "f", NULL, "debug-line");
	out = cap_stop(c);
	assert_non_null(strstr(out, "level=debug"));
	free(c);
	log_set_level(LOG_LVL_INFO);
}

static void test_step(void **state)
{
	struct capture *c = cap_start();
	const char *out;

	log_step("fig4", 7, "req-1", "hw-0042", "CSR sent to %s", "dm-iss");
	log_step("fig5", 12, NULL, NULL, "no ids");
	out = cap_stop(c);
	assert_match(out, "^ts=[^ ]+ level=info daemon=dm-mss flow=fig4 step=7 rid=req-1 "
	                  "subject=hw-0042 msg=\"CSR sent to dm-iss\"\n"
	                  "ts=[^ ]+ level=info daemon=dm-mss flow=fig5 step=12 rid=\"\" "
	                  "subject=\"\" msg=\"no ids\"\n$");
	free(c);
}

static void test_truncation(void **state)
{
	struct capture *c;
	const char *out;
	char *big;
	size_t len;

	big = malloc(10001);
	assert_non_null(big);
	memset(big, 'a', 10000);
	big[10000] = '\0';
	c = cap_start();
	log_msg(LOG_LVL_INFO, "f", NULL, "%s", big);
	out = cap_stop(c);
	len = strlen(out);
	assert_int_equal(count_lines(out), 1);
	assert_true(len <= 4096);
	assert_true(len > 4000);
	assert_string_equal(out + len - 6, "a\xe2\x80\xa6\"\n");
	free(c);

	/* Every byte escapes to two: a cut must never split an escape sequence. */
	memset(big, '\n', 10000);
	c = cap_start();
	log_msg(LOG_LVL_INFO, "f", NULL, "%s", big);
	out = cap_stop(c);
	len = strlen(out);
	assert_int_equal(count_lines(out), 1);
	assert_true(len <= 4096);
	assert_string_equal(out + len - 7, "\\n\xe2\x80\xa6\"\n");
	free(c);
	free(big);
}

static void test_journald(void **state)
{
	struct capture *c = cap_start();
	const char *out;
	struct stat st;
	char js[64];

	assert_int_equal(fstat(c->fd, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_init("dm-iss", LOG_LVL_DEBUG);
	log_msg(LOG_LVL_ERR, "f", NULL, "e");
	log_msg(LOG_LVL_WARN, "f", NULL, "w");
	log_msg(LOG_LVL_INFO, "f", NULL, "i");
	log_msg(LOG_LVL_DEBUG, "f", NULL, "d");
	out = cap_stop(c);
	assert_string_equal(out, "<3>level=err daemon=dm-iss func=f msg=\"e\"\n"
	                         "<4>level=warn daemon=dm-iss func=f msg=\"w\"\n"
	                         "<6>level=info daemon=dm-iss func=f msg=\"i\"\n"
	                         "<7>level=debug daemon=dm-iss func=f msg=\"d\"\n");
	free(c);

	/* The variable names another stream: stderr was redirected, so no prefix. */
	c = cap_start();
	assert_int_equal(fstat(c->fd, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", js, 1);
	log_init("dm-iss", LOG_LVL_INFO);
	log_msg(LOG_LVL_INFO, "f", NULL, "i");
	out = cap_stop(c);
	assert_match(out, "^ts=[^ ]+ level=info daemon=dm-iss func=f msg=\"i\"\n$");
	free(c);
	unsetenv("JOURNAL_STREAM");
	log_init("dm-mss", LOG_LVL_INFO);
}

static void test_level_parse(void **state)
{
	enum log_level l = LOG_LVL_ERR;

	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("warn", &l), 0);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_level_parse("err", &l), 0);
	assert_int_equal(l, LOG_LVL_ERR);
	assert_int_equal(log_level_parse("info", &l), 0);
	assert_int_equal(l, LOG_LVL_INFO);
	assert_int_equal(log_level_parse("INFO", &l), -1);
	assert_int_equal(log_level_parse("verbose", &l), -1);
	assert_int_equal(log_level_parse("", &l), -1);
	assert_int_equal(log_level_parse(NULL, &l), -1);
	assert_int_equal(l, LOG_LVL_INFO);
	assert_string_equal(log_level_name(LOG_LVL_ERR), "err");
	assert_string_equal(log_level_name(LOG_LVL_DEBUG), "debug");
	assert_string_equal(log_level_name((enum log_level)9), "?");
}

static void test_errno_preserved(void **state)
{
	struct capture *c = cap_start();

	errno = ENOENT;
	log_msg(LOG_LVL_INFO, "f", NULL, "x");
	assert_int_equal(errno, ENOENT);
	cap_stop(c);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_format, setup),
	    cmocka_unit_test_setup(test_macros, setup),
	    cmocka_unit_test_setup(test_escaping, setup),
	    cmocka_unit_test_setup(test_empty_values, setup),
	    cmocka_unit_test_setup(test_level_filter, setup),
	    cmocka_unit_test_setup(test_step, setup),
	    cmocka_unit_test_setup(test_truncation, setup),
	    cmocka_unit_test_setup(test_journald, setup),
	    cmocka_unit_test_setup(test_level_parse, setup),
	    cmocka_unit_test_setup(test_errno_preserved, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
