/*
 * app_cdcs: dm-app's Figure 5 commands. The agent does the work; dm-app asks it over the
 * control socket and shows the answer.
 *   cdcs sync [--json]     run Figure 5 now (or join the run in progress)
 *   cdcs status [--json]   the installed CDCSs (state.json of each current version)
 *   play FILE [--out OUT]  decrypt protected content with the CDCS of its system
 * Exit: 0 ok, 1 refused or failed, 3 the agent or the head-end could not be reached.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/file.h"
#include "opendm/jose.h"

#include "app.h"
#include "dev_cdcs.h"

#define APP_RID_BYTES 12
/* A run installs up to 16 CDCSs, each with downloads and CDCS calls bounded by retry_max_s
 * and cdcs_timeout_s; this only guards against an agent that never answers. */
#define APP_SYNC_WAIT_MS (30L * 60 * 1000)

static int app_print_json(const json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT);

	if (text == NULL)
		return app_fail(APP_EXIT_REFUSED, "internal_error", "out of memory");
	printf("%s\n", text);
	free(text);
	return APP_EXIT_OK;
}

/* The agent's answer to req, or NULL after saying why (*rc: the exit status). */
static json_t *app_ask(struct app *app, json_t *req, long timeout_ms, int *rc)
{
	char err[512];
	json_t *resp;

	if (req == NULL) {
		*rc = app_fail(APP_EXIT_REFUSED, "internal_error", "out of memory");
		return NULL;
	}
	if (dev_agent_pid(&app->cfg) == 0) {
		json_decref(req);
		*rc = app_fail(APP_EXIT_UNREACHABLE, "agent_not_running",
		               "dm-agent is not running (dm-app install first)");
		return NULL;
	}
	resp = dev_ctl_call(&app->cfg, req, timeout_ms, err, sizeof(err));
	json_decref(req);
	if (resp == NULL)
		*rc = app_fail(APP_EXIT_UNREACHABLE, "agent_failed", "%s", err);
	return resp;
}

/* ok false: say why on stderr; the exit status. */
static int app_refused(const json_t *resp, const char *what)
{
	const char *code = json_string_value(json_object_get(resp, "code"));
	const char *msg = json_string_value(json_object_get(resp, "message"));

	return app_fail(json_is_true(json_object_get(resp, "unavailable")) ? APP_EXIT_UNREACHABLE
	                                                                   : APP_EXIT_REFUSED,
	                code != NULL ? code : "failed", "%s", msg != NULL ? msg : what);
}

static void app_print_items(const char *label, const json_t *items)
{
	const json_t *o;
	size_t i;

	json_array_foreach(items, i, o)
	{
		printf("%s: %s/%s", label, json_string_value(json_object_get(o, "vendor")),
		       json_string_value(json_object_get(o, "name")));
		if (json_object_get(o, "code") != NULL)
			printf(": %s: %s", json_string_value(json_object_get(o, "code")),
			       json_string_value(json_object_get(o, "message")));
		else if (json_string_value(json_object_get(o, "reason")) != NULL)
			printf(" (version_number %lld): %s",
			       (long long)json_integer_value(json_object_get(o, "version_number")),
			       json_string_value(json_object_get(o, "reason")));
		else if (json_string_value(json_object_get(o, "version")) != NULL)
			printf(" %s (version_number %lld, %s)",
			       json_string_value(json_object_get(o, "version")),
			       (long long)json_integer_value(json_object_get(o, "version_number")),
			       json_string_value(json_object_get(o, "variant")));
		else
			printf(" (version_number %lld)",
			       (long long)json_integer_value(json_object_get(o, "version_number")));
		printf("\n");
	}
}

int app_cdcs_sync(struct app *app, int as_json)
{
	json_t *resp, *failed;
	int rc = APP_EXIT_OK;

	if (jose_random_hex(app->rid, sizeof(app->rid), APP_RID_BYTES) == -1)
		return app_fail(APP_EXIT_REFUSED, "internal_error", "no randomness");
	resp = app_ask(app, json_pack("{s:s, s:s}", "cmd", "cdcs-sync", "rid", app->rid),
	               APP_SYNC_WAIT_MS, &rc);
	if (resp == NULL)
		return rc;
	failed = json_object_get(resp, "failed");
	if (as_json)
		rc = app_print_json(resp);
	else {
		app_print_items("installed", json_object_get(resp, "installed"));
		app_print_items("skipped", json_object_get(resp, "skipped"));
		app_print_items("removed", json_object_get(resp, "removed"));
		app_print_items("failed", failed);
		app_print_items("postponed", json_object_get(resp, "postponed"));
	}
	if (rc == APP_EXIT_OK && !json_is_true(json_object_get(resp, "ok"))) {
		if (json_object_get(resp, "code") != NULL)
			rc = app_refused(resp, "Figure 5 failed");
		else
			rc = app_fail(APP_EXIT_REFUSED, "cdcs_failed", "%zu CDCS(s) failed",
			              json_array_size(failed));
	}
	json_decref(resp);
	return rc;
}

int app_cdcs_status(struct app *app, int as_json)
{
	const json_t *c, *r;
	json_t *resp = NULL;
	char rights[512];
	size_t i, j;
	int rc = APP_EXIT_OK;

	/* The agent's view when it runs; the same files read here when it does not. */
	if (dev_agent_pid(&app->cfg) > 0)
		resp = app_ask(app, json_pack("{s:s}", "cmd", "cdcs-status"), 10000, &rc);
	else
		resp = json_pack("{s:b, s:o}", "ok", 1, "cdcs", dev_cdcs_list(&app->cfg));
	if (resp == NULL)
		return rc != APP_EXIT_OK
		           ? rc
		           : app_fail(APP_EXIT_REFUSED, "internal_error", "out of memory");
	if (!json_is_true(json_object_get(resp, "ok"))) {
		rc = app_refused(resp, "cdcs-status failed");
		json_decref(resp);
		return rc;
	}
	if (as_json) {
		rc = app_print_json(resp);
		json_decref(resp);
		return rc;
	}
	if (json_array_size(json_object_get(resp, "cdcs")) == 0)
		printf("no CDCS installed\n");
	json_array_foreach(json_object_get(resp, "cdcs"), i, c)
	{
		rights[0] = '\0';
		json_array_foreach(json_object_get(c, "rights"), j, r) snprintf(
		    rights + strlen(rights), sizeof(rights) - strlen(rights), "%s%s",
		    j > 0 ? "," : "", json_string_value(r) != NULL ? json_string_value(r) : "");
		printf("%s/%s: %s (version_number %lld, %s, %s) %s cdcs_id=%s rights=%s\n",
		       json_string_value(json_object_get(c, "vendor")),
		       json_string_value(json_object_get(c, "name")),
		       json_string_value(json_object_get(c, "version")),
		       (long long)json_integer_value(json_object_get(c, "version_number")),
		       json_string_value(json_object_get(c, "variant")),
		       json_string_value(json_object_get(c, "kind")),
		       json_is_true(json_object_get(c, "personalized")) ? "personalized"
		                                                        : "not personalized",
		       json_string_value(json_object_get(c, "cdcs_id")) != NULL
		           ? json_string_value(json_object_get(c, "cdcs_id"))
		           : "-",
		       rights[0] != '\0' ? rights : "-");
	}
	json_decref(resp);
	return rc;
}

int app_play(struct app *app, const char *file, const char *out)
{
	char path[PATH_MAX], err[512];
	const char *b64;
	unsigned char *pt = NULL;
	size_t len = 0;
	json_t *resp;
	int rc = APP_EXIT_OK;

	/* The agent opens the file itself: it needs a path that does not depend on our cwd. */
	if (realpath(file, path) == NULL)
		return app_fail(APP_EXIT_REFUSED, "bad_content", "%s: cannot be read", file);
	resp = app_ask(app, json_pack("{s:s, s:s}", "cmd", "play", "path", path),
	               (long)app->cfg.cdcs_timeout_s * 1000 + 10000, &rc);
	if (resp == NULL)
		return rc;
	if (!json_is_true(json_object_get(resp, "ok"))) {
		rc = app_refused(resp, "play failed");
		goto out;
	}
	if ((b64 = json_string_value(json_object_get(resp, "plaintext"))) == NULL ||
	    (pt = dev_b64_decode(b64, strlen(b64), &len)) == NULL) {
		rc = app_fail(APP_EXIT_REFUSED, "bad_answer", "dm-agent sent no plaintext");
		goto out;
	}
	if (out != NULL) {
		if (file_write_atomic(out, pt, len, 0600, err, sizeof(err)) == -1)
			rc = app_fail(APP_EXIT_REFUSED, "write_failed", "%s", err);
	} else if (fwrite(pt, 1, len, stdout) != len || fflush(stdout) != 0)
		rc = app_fail(APP_EXIT_REFUSED, "write_failed", "stdout");
out:
	free(pt);
	json_decref(resp);
	return rc;
}
