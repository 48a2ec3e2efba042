/*
 * The agent's side of a CDCS child (src/dm_agent/agent_cdcsproc.c) against the real host,
 * the built "dm-agent --cdcs-host": normal calls with the sample CA, and a CDCS that aborts,
 * exits, hangs, prints or answers nonsense (tests/unit/cdcs_faulty.c, chosen through
 * ODM_TEST_CDCS_FAULT, which the child inherits). Every misbehaviour must end in exactly one
 * callback with its code while this process carries on. Small shell scripts stand in for a
 * host that breaks the protocol.
 */
#include <sys/stat.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "opendm/file.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/pki.h"

#include "../../src/dm_agent/cdcsproc.h"
#include "testutil.h"

#define SO_MAX     (64 * 1024 * 1024)
#define WAIT_MS    15000
#define FAULT_ENV  "ODM_TEST_CDCS_FAULT"
#define CONFIRM_OK "0123456789abcdef0123456789abcdef"

struct fx {
	char dir[PATH_MAX];
	char ca[PATH_MAX];     /* the sample CA, installed */
	char faulty[PATH_MAX]; /* cdcs_faulty */
	char wrong[PATH_MAX];  /* the sample CA under a manifest naming another CDCS */
	char log[PATH_MAX];
	int log_fd;
	struct event_base *base;
};

/* What one call ended with. */
struct res {
	int called;
	json_t *resp;
	char code[64];
	char err[256];
	struct event_base *base;
	struct cdcsproc *free_me; /* freed from inside the callback */
};

static void in_dir(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	assert_true(n > 0 && n < PATH_MAX);
}

/* An installed CDCS directory: cdcs.so and a manifest.jws naming vendor/name/kind. */
static void make_cdcs(const char *dir, const char *so, const char *vendor, const char *name,
                      const char *kind)
{
	char path[PATH_MAX], err[256], *img, *jws;
	EVP_PKEY *key;
	json_t *claims;
	size_t len;

	assert_int_equal(tu_mkdir_p(dir), 0);
	if ((img = file_read(so, SO_MAX, &len, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	in_dir(path, dir, "cdcs.so");
	assert_int_equal(file_write_atomic(path, img, len, 0755, err, sizeof(err)), 0);
	free(img);
	assert_non_null(key = pki_key_new());
	claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "iss", vendor, "aud",
	                   "opendm-dm-agent", "sub", "cdcs", "vendor", vendor, "name", name, "kind",
	                   kind, "platform", "linux-x86_64", "abi", 1);
	assert_non_null(jws = jose_sign(key, NULL, claims, 3600, err, sizeof(err)));
	in_dir(path, dir, "manifest.jws");
	assert_int_equal(file_write_atomic(path, jws, strlen(jws), 0644, err, sizeof(err)), 0);
	free(jws);
	json_decref(claims);
	EVP_PKEY_free(key);
}

/* A stand-in for the host: a shell script that ignores its arguments. */
static void make_script(char *path, const struct fx *fx, const char *name, const char *body)
{
	char err[256], text[1024];

	in_dir(path, fx->dir, name);
	snprintf(text, sizeof(text), "#!/bin/sh\nread line\n%s\nexec sleep 30\n", body);
	assert_int_equal(file_write_atomic(path, text, strlen(text), 0755, err, sizeof(err)), 0);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_int_equal(tu_tmpdir(fx->dir, sizeof(fx->dir), "cdcsproc"), 0);
	in_dir(fx->ca, fx->dir, "vendor-a/sample-ca/1");
	in_dir(fx->faulty, fx->dir, "vendor-t/faulty/1");
	in_dir(fx->wrong, fx->dir, "vendor-x/other/1");
	make_cdcs(fx->ca, CDCS_SAMPLE_CA, "vendor-a", "sample-ca", "ca");
	make_cdcs(fx->faulty, CDCS_FAULTY, "vendor-t", "faulty", "ca");
	make_cdcs(fx->wrong, CDCS_SAMPLE_CA, "vendor-x", "other", "ca");
	in_dir(fx->log, fx->dir, "children.log");
	fx->log_fd = open(fx->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	assert_true(fx->log_fd >= 0);
	assert_non_null(fx->base = event_base_new());
	/* The agent ignores SIGPIPE (cdcsproc.h's caller contract). */
	signal(SIGPIPE, SIG_IGN);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	event_base_free(fx->base);
	close(fx->log_fd);
	tu_rmtree(fx->dir);
	free(fx);
	return 0;
}

static void on_answer(json_t *resp, const char *code, const char *err, void *arg)
{
	struct res *r = arg;

	r->called++;
	r->resp = resp != NULL ? json_incref(resp) : NULL;
	snprintf(r->code, sizeof(r->code), "%s", code != NULL ? code : "");
	snprintf(r->err, sizeof(r->err), "%s", err != NULL ? err : "");
	if (r->free_me != NULL)
		cdcsproc_free(r->free_me);
	event_base_loopbreak(r->base);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Run the loop for up to ms (until a callback breaks it). */
static void run_loop(struct fx *fx, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	struct event *t = evtimer_new(fx->base, on_deadline, fx->base);

	assert_non_null(t);
	evtimer_add(t, &tv);
	event_base_dispatch(fx->base);
	event_free(t);
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct cdcsproc *start(struct fx *fx, const char *self, const char *dir)
{
	char err[256];
	struct cdcsproc *p = cdcsproc_start(fx->base, self, dir, fx->log_fd, err, sizeof(err));

	if (p == NULL)
		fail_msg("cdcsproc_start: %s", err);
	return p;
}

/* One call (takes req); the callback must come exactly once. */
static void call(struct fx *fx, struct cdcsproc *p, json_t *req, long timeout_ms, struct res *r)
{
	memset(r, 0, sizeof(*r));
	r->base = fx->base;
	assert_non_null(req);
	assert_int_equal(cdcsproc_call(p, req, timeout_ms, on_answer, r), 0);
	assert_int_equal(cdcsproc_call(p, req, timeout_ms, on_answer, r), -1); /* one at a time */
	json_decref(req);
	run_loop(fx, WAIT_MS);
	assert_int_equal(r->called, 1);
}

static void res_clear(struct res *r)
{
	json_decref(r->resp);
	r->resp = NULL;
}

static json_t *op(const char *name)
{
	return json_pack("{s:s}", "op", name);
}

static json_t *apply(void)
{
	return json_pack("{s:s, s:s}", "op", "perso_apply", "data", "x.y.z");
}

/* No child of ours is left, not even as a zombie. */
static void assert_no_children(void)
{
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static char *log_text(const struct fx *fx)
{
	char err[256], *t = file_read(fx->log, SO_MAX, NULL, err, sizeof(err));

	assert_non_null(t);
	return t;
}

static void test_normal(void **state)
{
	struct fx *fx = *state;
	struct cdcsproc *p;
	struct res r;
	char *log;

	/* The child logs at the agent's level. */
	log_set_level(LOG_LVL_DEBUG);
	p = start(fx, DM_AGENT, fx->ca);
	log_set_level(LOG_LVL_INFO);

	call(fx, p, op("status"), 5000, &r);
	assert_true(json_is_true(json_object_get(r.resp, "ok")));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(r.resp, "status"), "vendor")),
	    "vendor-a");
	res_clear(&r);
	call(fx, p,
	     json_pack("{s:s, s:s, s:s}", "op", "perso_request", "ticket", "t.t.t", "rid", "r-1"),
	     5000, &r);
	assert_true(json_is_true(json_object_get(r.resp, "ok")));
	assert_non_null(
	    json_string_value(json_object_get(json_object_get(r.resp, "request"), "public_key")));
	res_clear(&r);
	/* The CDCS's own reason comes back as the message. */
	call(fx, p, json_pack("{s:s, s:s}", "op", "decrypt", "content", "YWJj"), 5000, &r);
	assert_false(json_is_true(json_object_get(r.resp, "ok")));
	assert_string_equal(json_string_value(json_object_get(r.resp, "code")), "cdcs_failed");
	assert_non_null(
	    strstr(json_string_value(json_object_get(r.resp, "message")), "not personalized"));
	res_clear(&r);
	call(fx, p, op("reboot"), 5000, &r);
	assert_string_equal(json_string_value(json_object_get(r.resp, "code")), "bad_request");
	res_clear(&r);
	cdcsproc_free(p);
	assert_no_children();
	/* Its log lines, and (in a sanitizer build) no report of a leak or an error. */
	log = log_text(fx);
	assert_non_null(strstr(log, "daemon=cdcs:vendor-a/sample-ca func=perso_request rid=r-1"));
	/* It ended by itself at the end of its input, not killed. */
	assert_non_null(strstr(log, "end of input: exit 0"));
	assert_null(strstr(log, "Sanitizer"));
	free(log);
}

/* perso_apply of cdcs_faulty with fault set ends in code, err containing want. */
static struct cdcsproc *faulty_apply(struct fx *fx, const char *fault, long timeout_ms,
                                     const char *code, const char *want, struct res *r)
{
	struct cdcsproc *p;

	setenv(FAULT_ENV, fault, 1);
	p = start(fx, DM_AGENT, fx->faulty);
	unsetenv(FAULT_ENV);
	call(fx, p, op("status"), 5000, r); /* alive and well first */
	assert_true(json_is_true(json_object_get(r->resp, "ok")));
	res_clear(r);
	call(fx, p, apply(), timeout_ms, r);
	assert_null(r->resp);
	assert_string_equal(r->code, code);
	if (strstr(r->err, want) == NULL)
		fail_msg("'%s' does not say '%s'", r->err, want);
	/* Nothing more comes for that call. */
	run_loop(fx, 50);
	assert_int_equal(r->called, 1);
	return p;
}

static void test_crash(void **state)
{
	struct fx *fx = *state;
	struct res r;
	struct cdcsproc *p;

	p = faulty_apply(fx, "abort", 5000, "cdcs_crashed", "killed by signal 6", &r);
	/* A call after the end fails at once, the same way. */
	call(fx, p, op("status"), 5000, &r);
	assert_string_equal(r.code, "cdcs_crashed");
	cdcsproc_free(p);
	p = faulty_apply(fx, "exit", 5000, "cdcs_crashed", "exited with 7", &r);
	cdcsproc_free(p);
	assert_no_children();
}

static void test_timeout(void **state)
{
	struct fx *fx = *state;
	struct res r;
	struct cdcsproc *p;
	long t0 = now_ms(), dt;

	p = faulty_apply(fx, "hang", 300, "cdcs_timeout", "300 ms", &r);
	dt = now_ms() - t0;
	assert_true(dt >= 300 && dt < 10000);
	call(fx, p, op("status"), 5000, &r);
	assert_string_equal(r.code, "cdcs_crashed");
	assert_string_equal(r.err, "killed by signal 9");
	cdcsproc_free(p);
	assert_no_children();
}

static void test_misbehaving_cdcs(void **state)
{
	struct fx *fx = *state;
	struct cdcsproc *p;
	struct res r;
	char *log;

	/* Printing on stdout reaches the log, never the protocol. */
	setenv(FAULT_ENV, "print", 1);
	p = start(fx, DM_AGENT, fx->faulty);
	unsetenv(FAULT_ENV);
	call(fx, p, apply(), 5000, &r);
	assert_string_equal(json_string_value(json_object_get(r.resp, "confirmation")), CONFIRM_OK);
	res_clear(&r);
	cdcsproc_free(p);
	log = log_text(fx);
	assert_non_null(strstr(log, "forged"));
	free(log);

	setenv(FAULT_ENV, "badstatus", 1);
	p = start(fx, DM_AGENT, fx->faulty);
	unsetenv(FAULT_ENV);
	call(fx, p, op("status"), 5000, &r);
	assert_string_equal(json_string_value(json_object_get(r.resp, "code")), "cdcs_failed");
	res_clear(&r);
	cdcsproc_free(p);

	/* A cdcs.so that is not what its manifest names says why, then ends. */
	p = start(fx, DM_AGENT, fx->wrong);
	call(fx, p, op("status"), 5000, &r);
	assert_string_equal(json_string_value(json_object_get(r.resp, "code")), "cdcs_unusable");
	assert_non_null(strstr(json_string_value(json_object_get(r.resp, "message")),
	                       "names itself vendor-a/sample-ca"));
	res_clear(&r);
	call(fx, p, op("status"), 5000, &r);
	assert_string_equal(r.code, "cdcs_crashed");
	assert_string_equal(r.err, "exited with 1");
	cdcsproc_free(p);
	assert_no_children();
}

static void test_protocol(void **state)
{
	static const struct {
		const char *name, *body, *want;
	} cases[] = {
	    {"junk.sh", "echo notjson", "not a JSON object"},
	    {"array.sh", "echo '[1]'", "not a JSON object"},
	    {"two.sh", "printf '{\"ok\":true}\\n{\"ok\":true}\\n'", "without a request"},
	    {"long.sh", "head -c 9000000 /dev/zero | tr '\\0' a", "too long"},
	};
	struct fx *fx = *state;
	char self[PATH_MAX];
	struct cdcsproc *p;
	struct res r;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		make_script(self, fx, cases[i].name, cases[i].body);
		p = start(fx, self, fx->ca);
		call(fx, p, op("status"), 5000, &r);
		assert_null(r.resp);
		assert_string_equal(r.code, "cdcs_protocol");
		if (strstr(r.err, cases[i].want) == NULL)
			fail_msg("%s: '%s' does not say '%s'", cases[i].name, r.err, cases[i].want);
		cdcsproc_free(p);
	}
	assert_no_children();
}

static void test_release(void **state)
{
	struct fx *fx = *state;
	struct cdcsproc *p;
	struct res r;
	char err[256];
	json_t *req;

	/* Freed with a call in progress: no callback, the hung child is killed and reaped. */
	setenv(FAULT_ENV, "hang", 1);
	p = start(fx, DM_AGENT, fx->faulty);
	unsetenv(FAULT_ENV);
	memset(&r, 0, sizeof(r));
	r.base = fx->base;
	req = apply();
	assert_int_equal(cdcsproc_call(p, req, 5000, on_answer, &r), 0);
	json_decref(req);
	run_loop(fx, 200);
	cdcsproc_free(p);
	run_loop(fx, 50);
	assert_int_equal(r.called, 0);
	assert_no_children();

	/* Freed from its own callback. */
	p = start(fx, DM_AGENT, fx->ca);
	memset(&r, 0, sizeof(r));
	r.base = fx->base;
	r.free_me = p;
	req = op("status");
	assert_int_equal(cdcsproc_call(p, req, 5000, on_answer, &r), 0);
	json_decref(req);
	run_loop(fx, WAIT_MS);
	assert_int_equal(r.called, 1);
	res_clear(&r);
	assert_no_children();

	assert_null(
	    cdcsproc_start(fx->base, "/nonexistent/dm-agent", fx->ca, -1, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot start"));
	assert_no_children();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_normal),   cmocka_unit_test(test_crash),
	    cmocka_unit_test(test_timeout),  cmocka_unit_test(test_misbehaving_cdcs),
	    cmocka_unit_test(test_protocol), cmocka_unit_test(test_release),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
