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
int app_install_offline(struct app *app, const char *file);

/* Stop a running agent (control command, then SIGTERM); 0 once it is gone, -1 if not. */
int app_agent_stop(struct app *app);
/* Start the installed agent and wait for its control socket. 0/-1 + err. */
int app_agent_start(struct app *app, char *err, size_t errlen);
/* Steps 6 and 12: ask the agent to personalize, print the result; an exit status. */
int app_personalize(struct app *app, const char *token, const char *dm_iss_url);
int app_status(struct app *app, int as_json);

/* Figure 5 (app_cdcs.c): through the agent; an exit status. */
int app_cdcs_sync(struct app *app, int as_json);
int app_cdcs_status(struct app *app, int as_json);
/* Decrypt content file into out (NULL: stdout). */
int app_play(struct app *app, const char *file, const char *out);

#endif
