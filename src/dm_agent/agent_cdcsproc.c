/*
 * agent_cdcsproc: the agent's side of a CDCS child (cdcsproc.h).
 *
 * One request line out on the child's stdin, one answer line back on its stdout, both pipes
 * driven by bufferevents on the agent's loop. Whatever the child does, a call ends in exactly
 * one callback: its answer; cdcs_timeout (killed after timeout_ms); cdcs_protocol (an answer
 * that is not one bounded JSON object line); or cdcs_crashed once its output closed and it
 * was reaped. Reaping polls waitpid(WNOHANG) on a timer instead of watching SIGCHLD, so the
 * agent's signal set-up stays its own. The caller must ignore SIGPIPE (the agent does): a
 * write to a dead child then fails instead of killing the agent.
 */
#define _GNU_SOURCE /* pipe2, posix_spawn_file_actions_addclosefrom_np */
#include <sys/types.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "opendm/log.h"

#include "cdcsproc.h"

#define CDCSPROC_POLL_MS  5    /* waitpid polling while a child that closed its output exits */
#define CDCSPROC_GRACE_MS 1000 /* then it is killed */
#define CDCSPROC_EXIT_MS  500  /* cdcsproc_free: time to exit on end of input before SIGKILL */
#define CDCSPROC_LOG_ENV  "ODM_CDCS_LOG_LEVEL"

extern char **environ;

enum cdcsproc_state {
	CDCSPROC_IDLE,
	CDCSPROC_CALL,  /* a request is out, the timer is its timeout */
	CDCSPROC_DYING, /* output closed: the timer polls for the exit status */
	CDCSPROC_DEAD,  /* reaped; a call now fails at once (through the timer) */
};

struct cdcsproc {
	struct event_base *base;
	pid_t pid; /* 0 once reaped */
	enum cdcsproc_state state;
	struct bufferevent *to;   /* the child's stdin */
	struct bufferevent *from; /* the child's stdout */
	int to_fd, from_fd;       /* theirs: closed by us, not by the bufferevents */
	struct event *timer;
	cdcsproc_cb cb; /* the call in progress, or NULL */
	void *arg;
	long timeout_ms;
	long grace_ms;
	int in_cb, free_pending;
	char why[96];  /* how it ended: "killed by signal 11" */
	char dir[128]; /* for the log */
};

static void cdcsproc_destroy(struct cdcsproc *p);

static void cdcsproc_timer_add(struct cdcsproc *p, long ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(p->timer, &tv);
}

/*
 * End the call in progress with cb. The caller may free p from the callback: then p is gone
 * on return, so callers touch nothing after this.
 */
static void cdcsproc_finish(struct cdcsproc *p, json_t *resp, const char *code, const char *err)
{
	cdcsproc_cb cb = p->cb;

	if (cb == NULL)
		return;
	p->cb = NULL;
	if (p->state == CDCSPROC_CALL) {
		p->state = CDCSPROC_IDLE;
		evtimer_del(p->timer);
	}
	p->in_cb = 1;
	cb(resp, code, err, p->arg);
	p->in_cb = 0;
	if (p->free_pending)
		cdcsproc_destroy(p);
}

/*
 * libevent 2.1 closes a CLOSE_ON_FREE descriptor only when the loop runs the bufferevent's
 * finalizer; the child must see the end of its input now, so the pipes are closed here.
 */
static void cdcsproc_close_pipes(struct cdcsproc *p)
{
	if (p->to != NULL)
		bufferevent_free(p->to);
	if (p->from != NULL)
		bufferevent_free(p->from);
	p->to = p->from = NULL;
	if (p->to_fd != -1)
		close(p->to_fd);
	if (p->from_fd != -1)
		close(p->from_fd);
	p->to_fd = p->from_fd = -1;
}

static void cdcsproc_status(struct cdcsproc *p, int status)
{
	if (WIFSIGNALED(status))
		snprintf(p->why, sizeof(p->why), "killed by signal %d", WTERMSIG(status));
	else if (WIFEXITED(status))
		snprintf(p->why, sizeof(p->why), "exited with %d", WEXITSTATUS(status));
	else
		snprintf(p->why, sizeof(p->why), "ended (status %d)", status);
}

/* waitpid without blocking (block: until it is gone): 1 reaped, 0 still there. */
static int cdcsproc_reap(struct cdcsproc *p, int block)
{
	int status = 0;
	pid_t r;

	if (p->pid <= 0)
		return 1;
	while ((r = waitpid(p->pid, &status, block ? 0 : WNOHANG)) == -1 && errno == EINTR)
		;
	if (r == 0)
		return 0;
	if (r == -1) /* ECHILD: someone else reaped it (SIGCHLD ignored) */
		snprintf(p->why, sizeof(p->why), "ended (exit status lost: %s)", strerror(errno));
	else
		cdcsproc_status(p, status);
	p->pid = 0;
	return 1;
}

/* SIGKILL and reap: a killed process goes at once, so the wait is short. */
static void cdcsproc_kill(struct cdcsproc *p)
{
	if (p->pid > 0)
		(void)kill(p->pid, SIGKILL);
	(void)cdcsproc_reap(p, 1);
	cdcsproc_close_pipes(p);
	p->state = CDCSPROC_DEAD;
}

/* The child is reaped: a call still waiting learns how it ended. */
static void cdcsproc_dead(struct cdcsproc *p)
{
	p->state = CDCSPROC_DEAD;
	evtimer_del(p->timer);
	cdcsproc_close_pipes(p);
	log_warn("CDCS child for %s %s", p->dir, p->why);
	cdcsproc_finish(p, NULL, "cdcs_crashed", p->why);
}

/* Its output closed: reap it now, or poll for a grace period, then kill it. */
static void cdcsproc_dying(struct cdcsproc *p)
{
	if (p->state == CDCSPROC_DYING || p->state == CDCSPROC_DEAD)
		return;
	p->state = CDCSPROC_DYING;
	evtimer_del(p->timer);
	if (p->from != NULL)
		bufferevent_disable(p->from, EV_READ);
	if (cdcsproc_reap(p, 0)) {
		cdcsproc_dead(p);
		return;
	}
	p->grace_ms = CDCSPROC_GRACE_MS;
	cdcsproc_timer_add(p, CDCSPROC_POLL_MS);
}

static void cdcsproc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cdcsproc *p = arg;
	char msg[96];

	switch (p->state) {
	case CDCSPROC_CALL:
		snprintf(msg, sizeof(msg), "no answer within %ld ms: killed", p->timeout_ms);
		log_warn("CDCS child for %s: %s", p->dir, msg);
		cdcsproc_kill(p);
		cdcsproc_finish(p, NULL, "cdcs_timeout", msg);
		break;
	case CDCSPROC_DYING:
		if (cdcsproc_reap(p, 0)) {
			cdcsproc_dead(p);
		} else if ((p->grace_ms -= CDCSPROC_POLL_MS) <= 0) {
			cdcsproc_kill(p);
			snprintf(p->why, sizeof(p->why),
			         "closed its output without exiting: killed");
			cdcsproc_dead(p);
		} else
			cdcsproc_timer_add(p, CDCSPROC_POLL_MS);
		break;
	case CDCSPROC_DEAD: /* a call made after the end */
		cdcsproc_finish(p, NULL, "cdcs_crashed", p->why);
		break;
	case CDCSPROC_IDLE:
		break;
	}
}

/* A bad answer: the child is no longer trusted to speak the protocol. */
static void cdcsproc_protocol(struct cdcsproc *p, const char *msg)
{
	log_warn("CDCS child for %s: %s", p->dir, msg);
	evtimer_del(p->timer);
	cdcsproc_kill(p);
	cdcsproc_finish(p, NULL, "cdcs_protocol", msg);
}

static void cdcsproc_read_cb(struct bufferevent *bev, void *arg)
{
	struct cdcsproc *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n = 0;
	json_t *resp;
	int more;

	if ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) == NULL) {
		if (evbuffer_get_length(in) > CDCSPROC_MAX_LINE)
			cdcsproc_protocol(p, "answer line too long");
		return;
	}
	/* Anything after the answer was sent before any next request: one answer per request. */
	more = evbuffer_get_length(in) > 0;
	if (p->state != CDCSPROC_CALL || more) {
		free(line);
		cdcsproc_protocol(p, "answer without a request");
		return;
	}
	resp = n <= CDCSPROC_MAX_LINE ? json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL) : NULL;
	free(line);
	if (!json_is_object(resp) || !json_is_boolean(json_object_get(resp, "ok"))) {
		json_decref(resp);
		cdcsproc_protocol(p, "answer is not a JSON object with \"ok\"");
		return;
	}
	cdcsproc_finish(p, resp, NULL, NULL);
	json_decref(resp);
}

static void cdcsproc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct cdcsproc *p = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		cdcsproc_dying(p);
}

/* environ with ODM_CDCS_LOG_LEVEL set to the agent's level: the child logs as the agent. */
static char **cdcsproc_env(char *var, size_t varlen)
{
	size_t n = 0, i, k = 0;
	char **env;

	snprintf(var, varlen, "%s=%s", CDCSPROC_LOG_ENV, log_level_name(log_get_level()));
	while (environ != NULL && environ[n] != NULL)
		n++;
	if ((env = calloc(n + 2, sizeof(*env))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], CDCSPROC_LOG_ENV "=", sizeof(CDCSPROC_LOG_ENV)) != 0)
			env[k++] = environ[i];
	env[k] = var;
	return env;
}

/* posix_spawn with the pipes as stdin/stdout, log_fd as stderr, nothing else open. */
static pid_t cdcsproc_spawn(const char *self, const char *dir, int in_fd, int out_fd, int log_fd,
                            char *err, size_t errlen)
{
	char *argv[] = {(char *)self, (char *)"--cdcs-host", (char *)dir, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t def, none;
	char var[64], **env;
	pid_t pid = -1;
	int r;

	if ((env = cdcsproc_env(var, sizeof(var))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* Signals the agent ignores or handles start at their defaults in the child. */
	sigfillset(&def);
	sigdelset(&def, SIGKILL);
	sigdelset(&def, SIGSTOP);
	sigemptyset(&none);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	if ((r = posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO)) != 0 ||
	    (r = posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO)) != 0 ||
	    (r = posix_spawn_file_actions_adddup2(&fa, log_fd, STDERR_FILENO)) != 0 ||
	    (r = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1)) != 0 ||
	    (r = posix_spawnattr_setsigdefault(&at, &def)) != 0 ||
	    (r = posix_spawnattr_setsigmask(&at, &none)) != 0 ||
	    (r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)) !=
	        0 ||
	    (r = posix_spawn(&pid, self, &fa, &at, argv, env)) != 0) {
		snprintf(err, errlen, "cannot start %s --cdcs-host: %s", self, strerror(r));
		pid = -1;
	}
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	return pid;
}

struct cdcsproc *cdcsproc_start(struct event_base *base, const char *self, const char *dir,
                                int log_fd, char *err, size_t errlen)
{
	struct cdcsproc *p = NULL;
	int in[2] = {-1, -1}, out[2] = {-1, -1}, lfd = -1;
	size_t len;

	if (base == NULL || self == NULL || dir == NULL) {
		snprintf(err, errlen, "cdcsproc_start: missing argument");
		return NULL;
	}
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	/* A log fd among 0 and 1 would be replaced by the pipes before it is copied to 2. */
	if (log_fd < 0)
		log_fd = STDERR_FILENO;
	if ((lfd = fcntl(log_fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1)) == -1) {
		snprintf(err, errlen, "log fd: %s", strerror(errno));
		goto fail;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	p->base = base;
	p->to_fd = p->from_fd = -1;
	/* The log names the CDCS by its directory, or the end of it: <vendor>/<name>/<version>. */
	len = strlen(dir);
	snprintf(p->dir, sizeof(p->dir), "%s",
	         len < sizeof(p->dir) ? dir : dir + len - (sizeof(p->dir) - 1));
	if ((p->timer = evtimer_new(base, cdcsproc_timer_cb, p)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((p->pid = cdcsproc_spawn(self, dir, in[0], out[1], lfd, err, errlen)) == -1) {
		p->pid = 0;
		goto fail;
	}
	close(in[0]);
	close(out[1]);
	close(lfd);
	in[0] = out[1] = lfd = -1;
	p->to_fd = in[1];
	p->from_fd = out[0];
	in[1] = out[0] = -1;
	if (evutil_make_socket_nonblocking(p->to_fd) == -1 ||
	    evutil_make_socket_nonblocking(p->from_fd) == -1 ||
	    (p->to = bufferevent_socket_new(base, p->to_fd, 0)) == NULL ||
	    (p->from = bufferevent_socket_new(base, p->from_fd, 0)) == NULL) {
		snprintf(err, errlen, "cannot watch the CDCS pipes");
		goto fail;
	}
	bufferevent_setcb(p->to, NULL, NULL, cdcsproc_event_cb, p);
	bufferevent_setcb(p->from, cdcsproc_read_cb, NULL, cdcsproc_event_cb, p);
	/* Reading stops at the limit, so a child cannot make us buffer without end. */
	bufferevent_setwatermark(p->from, EV_READ, 0, CDCSPROC_MAX_LINE + 1);
	if (bufferevent_enable(p->to, EV_WRITE) == -1 ||
	    bufferevent_enable(p->from, EV_READ) == -1) {
		snprintf(err, errlen, "cannot watch the CDCS pipes");
		goto fail;
	}
	p->state = CDCSPROC_IDLE;
	return p;
fail:
	for (int i = 0; i < 2; i++) {
		if (in[i] != -1)
			close(in[i]);
		if (out[i] != -1)
			close(out[i]);
	}
	if (lfd != -1)
		close(lfd);
	if (p != NULL)
		cdcsproc_destroy(p);
	return NULL;
}

int cdcsproc_call(struct cdcsproc *p, const json_t *req, long timeout_ms, cdcsproc_cb cb, void *arg)
{
	char *text;
	size_t len;
	int rc = 0;

	if (p == NULL || req == NULL || cb == NULL || timeout_ms <= 0 || p->cb != NULL ||
	    p->free_pending)
		return -1;
	p->cb = cb;
	p->arg = arg;
	p->timeout_ms = timeout_ms;
	/* A child already gone (or going) answers through the timer: one path for the caller. */
	if (p->state == CDCSPROC_DEAD) {
		cdcsproc_timer_add(p, 0);
		return 0;
	}
	if (p->state == CDCSPROC_DYING)
		return 0;
	/* Compact JSON escapes every newline: the request is one line. */
	if ((text = json_dumps(req, JSON_COMPACT)) == NULL ||
	    (len = strlen(text)) > CDCSPROC_MAX_LINE || bufferevent_write(p->to, text, len) == -1 ||
	    bufferevent_write(p->to, "\n", 1) == -1)
		rc = -1;
	free(text);
	if (rc == -1) {
		p->cb = NULL;
		return -1;
	}
	p->state = CDCSPROC_CALL;
	cdcsproc_timer_add(p, timeout_ms);
	return 0;
}

/* Wait up to ms for the child to exit by itself. */
static void cdcsproc_wait(struct cdcsproc *p, long ms)
{
	struct timespec ts = {0, 2 * 1000 * 1000};

	for (; ms > 0 && !cdcsproc_reap(p, 0); ms -= 2)
		nanosleep(&ts, NULL);
}

static void cdcsproc_destroy(struct cdcsproc *p)
{
	/* End of input first: a well-behaved CDCS runs fini and exits 0. */
	cdcsproc_close_pipes(p);
	if (p->pid > 0) {
		cdcsproc_wait(p, CDCSPROC_EXIT_MS);
		if (p->pid > 0) {
			log_warn("CDCS child for %s did not exit at end of input: killed", p->dir);
			cdcsproc_kill(p);
		}
	}
	if (p->timer != NULL)
		event_free(p->timer);
	free(p);
}

void cdcsproc_free(struct cdcsproc *p)
{
	if (p == NULL)
		return;
	if (p->in_cb) {
		p->free_pending = 1;
		return;
	}
	cdcsproc_destroy(p);
}
