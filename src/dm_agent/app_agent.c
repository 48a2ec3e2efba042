/* app_agent: starting, stopping and talking to dm-agent (Figure 4 steps 5-6, 12). */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "dev_link.h"

#define APP_AGENT_WAIT_MS 10000
#define APP_POLL_MS       100

static void app_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Wait until the agent with pid is gone; 0 if it went within ms. */
static int app_wait_gone(struct app *app, long pid, long ms)
{
	for (; ms > 0; ms -= APP_POLL_MS) {
		if (dev_agent_pid(&app->cfg) != pid)
			return 0;
		app_sleep_ms(APP_POLL_MS);
	}
	return dev_agent_pid(&app->cfg) != pid ? 0 : -1;
}

int app_agent_stop(struct app *app)
{
	char err[256];
	json_t *req, *resp;
	long pid;

	if ((pid = dev_agent_pid(&app->cfg)) == 0)
		return 0;
	if ((req = json_pack("{s:s}", "cmd", "stop")) != NULL) {
		resp = dev_ctl_call(&app->cfg, req, 3000, err, sizeof(err));
		json_decref(req);
		json_decref(resp);
		if (app_wait_gone(app, pid, 5000) == 0)
			return 0;
	}
	/* dev_agent_pid() checked /proc/<pid>/exe: this is our agent, not a recycled pid. */
	log_warn("dm-agent (pid %ld) did not stop on request, sending SIGTERM", pid);
	if (kill((pid_t)pid, SIGTERM) == -1 && errno != ESRCH)
		return -1;
	return app_wait_gone(app, pid, 5000);
}

/* The grandchild: detached from dm-app, output to the agent log, then the agent itself. */
static void app_agent_exec(const char *bin, const char *logf, const char *conf)
{
	char *const args[] = {"dm-agent", "-c", (char *)conf, NULL};
	int fd;

	if ((fd = open("/dev/null", O_RDONLY)) == -1 || dup2(fd, 0) == -1)
		_exit(127);
	close(fd);
	if ((fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0600)) == -1 || dup2(fd, 1) == -1 ||
	    dup2(fd, 2) == -1)
		_exit(127);
	close(fd);
	execv(bin, args);
	_exit(127);
}

int app_agent_start(struct app *app, char *err, size_t errlen)
{
	char bin[PATH_MAX], logf[PATH_MAX], e[256];
	json_t *req = NULL, *resp = NULL;
	pid_t pid;
	int status, rc = -1;
	long ms;

	if (dev_path(bin, sizeof(bin), &app->cfg, "agent/dm-agent") == -1 ||
	    dev_path(logf, sizeof(logf), &app->cfg, "log/dm-agent.log") == -1) {
		snprintf(err, errlen, "state_dir too long");
		return -1;
	}
	fflush(NULL);
	if ((pid = fork()) == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* Double fork: the agent outlives dm-app and is never its zombie. */
		if (setsid() == -1)
			_exit(127);
		if ((pid = fork()) != 0)
			_exit(pid == -1 ? 127 : 0);
		app_agent_exec(bin, logf, app->cfg.path);
	}
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if ((req = json_pack("{s:s}", "cmd", "status")) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (ms = 0; ms < APP_AGENT_WAIT_MS; ms += APP_POLL_MS) {
		if ((resp = dev_ctl_call(&app->cfg, req, 1000, e, sizeof(e))) != NULL) {
			rc = 0;
			break;
		}
		app_sleep_ms(APP_POLL_MS);
	}
	if (rc == -1)
		snprintf(err, errlen, "dm-agent did not start (see %s): %s", logf, e);
	json_decref(req);
	json_decref(resp);
	return rc;
}

int app_personalize(struct app *app, const char *token, const char *dm_iss_url)
{
	const char *code, *msg, *dm;
	char err[512];
	json_t *req, *resp;
	int rc;

	if ((req = json_pack("{s:s, s:s, s:s, s:s}", "cmd", "personalize", "rid", app->rid,
	                     "enrolment_token", token, "dm_iss_url", dm_iss_url)) == NULL)
		return app_fail(APP_EXIT_REFUSED, "internal_error", "out of memory");
	log_step("fig4", 6, app->rid, app->cfg.hw_id, "personalize requested from dm-agent");
	/* The agent retries dm-iss for up to retry_max_s; give it that plus a margin. */
	resp = dev_ctl_call(&app->cfg, req, (long)app->cfg.retry_max_s * 1000 + 15000, err,
	                    sizeof(err));
	json_decref(req);
	if (resp == NULL)
		return app_fail(APP_EXIT_REFUSED, "agent_failed", "%s", err);
	dm = json_string_value(json_object_get(resp, "dm_id"));
	if (json_is_true(json_object_get(resp, "ok")) && dm != NULL) {
		printf("dm-app: personalized hw_id=%s dm_id=%s\n", app->cfg.hw_id, dm);
		rc = APP_EXIT_OK;
	} else {
		code = json_string_value(json_object_get(resp, "code"));
		msg = json_string_value(json_object_get(resp, "message"));
		if (code == NULL)
			code = "agent_failed";
		rc = app_fail(json_is_true(json_object_get(resp, "unavailable"))
		                  ? APP_EXIT_UNREACHABLE
		                  : APP_EXIT_REFUSED,
		              code, "%s", msg != NULL ? msg : "personalization failed");
	}
	json_decref(resp);
	return rc;
}

int app_status(struct app *app, int as_json)
{
	struct dev_manifest m;
	struct dev_identity id;
	int have_m = dev_manifest_installed(&app->cfg, &m) == 0;
	int have_id = dev_identity_load(&app->cfg, &id) == 0;
	long pid = dev_agent_pid(&app->cfg);
	struct dev_link link;
	json_t *j;
	char *text, err[1024];

	/* A damaged record shows as not paired; install and the agent refuse to use it. */
	if (dev_link_load(&app->cfg, &link, err, sizeof(err)) == -1)
		log_warn("%s", err);
	if (as_json) {
		j = json_pack("{s:s, s:I, s:s?, s:b, s:I, s:b, s:s?, s:I}", "hw_id", app->cfg.hw_id,
		              "installed_version", (json_int_t)(have_m ? m.version_number : 0),
		              "version", have_m ? m.version : NULL, "agent_running", pid > 0,
		              "agent_pid", (json_int_t)pid, "personalized", have_id, "dm_id",
		              have_id ? id.dm_id : NULL, "not_after",
		              (json_int_t)(have_id ? id.not_after : 0));
		if (j != NULL && json_object_get(j, "dm_id") == NULL)
			json_object_set_new(j, "dm_id", json_null());
		if (j != NULL &&
		    (json_object_set_new(j, "paired", json_boolean(link.paired)) == -1 ||
		     json_object_set_new(
		         j, "cpe", link.paired ? json_string(link.cpe) : json_null()) == -1)) {
			json_decref(j);
			j = NULL;
		}
		if (j == NULL || (text = json_dumps(j, JSON_COMPACT)) == NULL) {
			json_decref(j);
			return app_fail(APP_EXIT_REFUSED, "internal_error", "out of memory");
		}
		printf("%s\n", text);
		free(text);
		json_decref(j);
		return APP_EXIT_OK;
	}
	printf("hw_id: %s\n", app->cfg.hw_id);
	if (have_m)
		printf("installed: %s (version_number %lld)\n", m.version,
		       (long long)m.version_number);
	else
		printf("installed: none\n");
	if (pid > 0)
		printf("agent: running (pid %ld)\n", pid);
	else
		printf("agent: not running\n");
	if (have_id)
		printf("personalized: dm_id=%s not_after=%lld\n", id.dm_id,
		       (long long)id.not_after);
	else
		printf("personalized: no\n");
	if (link.paired)
		printf("paired: cpe=%s relay=%s\n", link.cpe, link.relay_url);
	else
		printf("paired: no\n");
	return APP_EXIT_OK;
}
