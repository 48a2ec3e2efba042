/*
 * agent: the DM agent process. One context for the whole process: the event base, the httpc
 * client (application certificate until personalized), the control socket and the flow in
 * progress. Figure 5 (issue 4) adds its work to the same context.
 */
#ifndef OPENDM_AGENT_H
#define OPENDM_AGENT_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdint.h>
#include <jansson.h>

#include "opendm/httpc.h"
#include "opendm/revocation.h"

#include "dev.h"
#include "dev_cdcs.h"

struct agent_pers;
struct agent_conn;
struct agent_fig5;
struct agent_play;

struct agent {
	struct dev_config cfg;
	struct event_base *base;
	struct httpc *http;
	struct evconnlistener *ctl;
	struct event *sigterm, *sigint;
	struct agent_pers *pers;  /* the personalization in progress, or NULL */
	struct agent_conn *conns; /* open control connections, freed on exit */
	/* Figure 5 (issue 4). */
	struct httpc *http5;      /* DM certificate as client identity; NULL until personalized */
	struct agent_fig5 *run;   /* the Figure 5 run in progress, or NULL */
	struct agent_play *plays; /* content being decrypted by a CDCS child */
	struct event *sched;      /* the next scheduled Figure 5 run */
	int64_t pss_interval_s;   /* interval_s of cdcs-pss's last answer, 0 before any */
	int sched_fails;          /* scheduled runs in a row that did not reach cdcs-pss */
	/* Issue 6: what decides which CDCS may run, reloaded at start and by every run. */
	struct dev_cdcs_keys keys;   /* vendor keys and operator key of device.json */
	struct revocation_list revs; /* the newest verified revocation list (serial 0: none) */
	char sock_path[108];
	char pid_path[4096];
	int stopping;
};

/* Control socket: listen on state_dir/agent.sock. 0/-1. */
int agent_control_start(struct agent *a, char *err, size_t errlen);
void agent_control_stop(struct agent *a);
/* Send one JSON answer line to a control connection, which is then closed. Takes resp. */
void agent_control_reply(struct bufferevent *bev, json_t *resp);
/* {"ok": false, "code": code, "message": msg} */
json_t *agent_control_error(const char *code, const char *msg);

/*
 * Figure 4 steps 7 and 11-12 for a "personalize" command: the answer goes to bev (may be NULL
 * if the caller went away) when done.
 */
void agent_personalize(struct agent *a, struct bufferevent *bev, json_t *cmd);
void agent_personalize_cancel(struct agent *a);
/* The control connection bev went away: finish the flow without answering. */
void agent_personalize_detach(struct agent *a, struct bufferevent *bev);

/*
 * Figure 5: run it now for a "cdcs-sync" command (bev, rid from dm-app) or for the scheduler
 * (bev and rid NULL). A request while a run is in progress joins it: every waiter gets the
 * run's answer. The answer goes to bev (unless it went away) when the run is done.
 */
void agent_fig5_start(struct agent *a, struct bufferevent *bev, const char *rid);
void agent_fig5_detach(struct agent *a, struct bufferevent *bev);
void agent_fig5_cancel(struct agent *a);
/* {"ok":true,"cdcs":[state.json of each current version]} */
json_t *agent_cdcs_status(struct agent *a);
/* The Figure 5 client (DM certificate), made once the identity exists; NULL + err if not. */
struct httpc *agent_fig5_http(struct agent *a, char *err, size_t errlen);

/* Scheduling: a run at start when personalized, then every interval with +-10% jitter. */
int agent_sched_start(struct agent *a, char *err, size_t errlen);
/* A run ended; reached: cdcs-pss answered. Arms the next scheduled run. */
void agent_sched_next(struct agent *a, int reached);
void agent_sched_stop(struct agent *a);

/* Reload a->keys from device.json and a->revs from the kept list (warnings logged under
 * rid, may be NULL): a key or list that cannot be read leaves it empty. */
void agent_trust_load(struct agent *a, const char *rid);
void agent_trust_free(struct agent *a);

/* A "play" command: decrypt a content file with the CDCS of its system. */
void agent_play(struct agent *a, struct bufferevent *bev, json_t *cmd);
/* Stop the play children of vendor/name (before its removal); their callers get code/msg. */
void agent_play_stop(struct agent *a, const char *vendor, const char *name, const char *code,
                     const char *msg);
void agent_play_detach(struct agent *a, struct bufferevent *bev);
void agent_play_cancel(struct agent *a);

/* Stop the loop: SIGTERM, or a "stop" command once its answer is sent. */
void agent_stop(struct agent *a);

#endif
