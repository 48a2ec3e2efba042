/*
 * app: dm-app, the Application role of Figure 4 (steps 1, 5, 6; prints the result of 12).
 * Exit statuses are part of the interface (docs/integrator-guide.md).
 */
#ifndef OPENDM_APP_H
#define OPENDM_APP_H

#include <event2/event.h>

#include "opendm/httpc.h"

#include "dev.h"

#define APP_EXIT_OK          0
#define APP_EXIT_REFUSED     1 /* refused by the head-end, or verification failed */
#define APP_EXIT_USAGE       2 /* usage or config error */
#define APP_EXIT_UNREACHABLE 3 /* head-end unreachable after retries */

struct app {
	struct dev_config cfg;
	struct event_base *base;
	struct httpc *http;
	char rid[65];
	int lock_fd; /* state_dir/app.lock, held by install and stop */
};

/* Print "dm-app: code: message" on stderr and return status. */
int app_fail(int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int app_install_online(struct app *app, const char *code);
/* Figure 4 step 1 with a pairing assertion from the CPE instead of a code (issue 5). */
int app_install_paired(struct app *app);
int app_install_offline(struct app *app, const char *file);

/* Stop a running agent (control command, then SIGTERM); 0 once it is gone, -1 if not. */
int app_agent_stop(struct app *app);
/* Start the installed agent and wait for its control socket. 0/-1 + err. */
int app_agent_start(struct app *app, char *err, size_t errlen);
/* Steps 6 and 12: ask the agent to personalize, print the result; an exit status. */
int app_personalize(struct app *app, const char *token, const char *dm_iss_url);
int app_status(struct app *app, int as_json);

/* Pairing with the primary CPE (app_pair.c): "dm-app pair --pin PIN"; an exit status. */
int app_pair(struct app *app, const char *pin);
/* A fresh {"assertion", "cpe_certificate"} from the CPE we are paired with, or NULL with
 * *rc set (not_paired, unreachable, the CPE's refusal). */
json_t *app_pair_assertion(struct app *app, int *rc);
/* The error code and message of a server's JSON error body (j may be NULL), or fallbacks. */
void app_json_error(const json_t *j, const char **code, const char **msg);

/* Figure 5 (app_cdcs.c): through the agent; an exit status. */
int app_cdcs_sync(struct app *app, int as_json);
int app_cdcs_status(struct app *app, int as_json);
/* Decrypt content file into out (NULL: stdout). */
int app_play(struct app *app, const char *file, const char *out);

#endif
