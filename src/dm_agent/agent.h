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
#include <jansson.h>

#include "opendm/httpc.h"

#include "dev.h"

struct agent_pers;
struct agent_conn;

struct agent {
	struct dev_config cfg;
	struct event_base *base;
	struct httpc *http;
	struct evconnlistener *ctl;
	struct event *sigterm, *sigint;
	struct agent_pers *pers;  /* the personalization in progress, or NULL */
	struct agent_conn *conns; /* open control connections, freed on exit */
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

/* Stop the loop: SIGTERM, or a "stop" command once its answer is sent. */
void agent_stop(struct agent *a);

#endif
