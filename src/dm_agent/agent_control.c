/*
 * agent_control: the unix control socket (state_dir/agent.sock, 0600). One JSON request line
 * per connection (at most DEV_MAX_CTL_LINE bytes), one JSON answer line, then close.
 * Commands: status, stop, personalize (Figure 4), cdcs-sync, cdcs-status, play (Figure 5).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "agent.h"

struct agent_conn {
	struct agent *a;
	struct agent_conn *next, **prevp;
	struct bufferevent *bev;
	int stop_after; /* a "stop" command: exit once the answer is out */
};

static void agent_conn_free(struct agent_conn *conn)
{
	if (conn->a->pers != NULL)
		agent_personalize_detach(conn->a, conn->bev);
	agent_fig5_detach(conn->a, conn->bev);
	agent_play_detach(conn->a, conn->bev);
	*conn->prevp = conn->next;
	if (conn->next != NULL)
		conn->next->prevp = conn->prevp;
	bufferevent_free(conn->bev);
	free(conn);
}

static void agent_conn_close(struct bufferevent *bev)
{
	struct agent_conn *conn = NULL;

	bufferevent_getcb(bev, NULL, NULL, NULL, (void **)&conn);
	if (conn != NULL)
		agent_conn_free(conn);
	else
		bufferevent_free(bev);
}

static void agent_conn_written(struct bufferevent *bev, void *arg)
{
	struct agent_conn *conn = arg;
	struct agent *a = conn->a;
	int stop = conn->stop_after;

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	agent_conn_close(bev);
	if (stop)
		agent_stop(a);
}

static void agent_conn_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		agent_conn_close(bev);
}

json_t *agent_control_error(const char *code, const char *msg)
{
	return json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "message", msg);
}

void agent_control_reply(struct bufferevent *bev, json_t *resp)
{
	struct agent_conn *conn = NULL;
	char *text = NULL;

	if (resp == NULL || (text = json_dumps(resp, JSON_COMPACT)) == NULL) {
		log_err("cannot encode the answer");
		agent_conn_close(bev);
		goto out;
	}
	bufferevent_getcb(bev, NULL, NULL, NULL, (void **)&conn);
	bufferevent_disable(bev, EV_READ);
	if (evbuffer_add_printf(bufferevent_get_output(bev), "%s\n", text) == -1) {
		agent_conn_close(bev);
		goto out;
	}
	bufferevent_setcb(bev, NULL, agent_conn_written, agent_conn_event, conn);
	bufferevent_enable(bev, EV_WRITE);
out:
	free(text);
	json_decref(resp);
}

static json_t *agent_status(struct agent *a)
{
	struct dev_identity id;
	int ok = dev_identity_load(&a->cfg, &id) == 0;

	return json_pack("{s:b, s:b, s:s?, s:s, s:I}", "ok", 1, "personalized", ok, "dm_id",
	                 ok ? id.dm_id : NULL, "hw_id", a->cfg.hw_id, "not_after",
	                 (json_int_t)(ok ? id.not_after : 0));
}

static void agent_conn_read(struct bufferevent *bev, void *arg)
{
	struct agent_conn *conn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const char *cmd;
	json_t *req;
	size_t n;
	char *line;

	if ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) == NULL) {
		if (evbuffer_get_length(in) > DEV_MAX_CTL_LINE)
			agent_control_reply(
			    bev, agent_control_error("bad_request", "request line too long"));
		return;
	}
	req = n <= DEV_MAX_CTL_LINE ? json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL) : NULL;
	free(line);
	cmd = json_string_value(json_object_get(req, "cmd"));
	if (cmd == NULL)
		agent_control_reply(bev, agent_control_error("bad_request", "no cmd"));
	else if (strcmp(cmd, "status") == 0)
		agent_control_reply(bev, agent_status(conn->a));
	else if (strcmp(cmd, "stop") == 0) {
		log_info("stop requested");
		conn->stop_after = 1;
		agent_control_reply(bev, json_pack("{s:b}", "ok", 1));
	} else if (strcmp(cmd, "personalize") == 0)
		agent_personalize(conn->a, bev, req);
	else if (strcmp(cmd, "cdcs-sync") == 0)
		agent_fig5_start(conn->a, bev, json_string_value(json_object_get(req, "rid")));
	else if (strcmp(cmd, "cdcs-status") == 0)
		agent_control_reply(bev, agent_cdcs_status(conn->a));
	else if (strcmp(cmd, "play") == 0)
		agent_play(conn->a, bev, req);
	else
		agent_control_reply(bev, agent_control_error("bad_request", "unknown cmd"));
	json_decref(req);
}

static void agent_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
	struct agent *a = arg;
	struct agent_conn *conn;
	struct bufferevent *bev;

	if ((conn = calloc(1, sizeof(*conn))) == NULL ||
	    (bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		log_err("out of memory");
		free(conn);
		close(fd);
		return;
	}
	conn->a = a;
	conn->bev = bev;
	conn->next = a->conns;
	if (a->conns != NULL)
		a->conns->prevp = &conn->next;
	conn->prevp = &a->conns;
	a->conns = conn;
	bufferevent_setwatermark(bev, EV_READ, 0, DEV_MAX_CTL_LINE + 2);
	bufferevent_setcb(bev, agent_conn_read, NULL, agent_conn_event, conn);
	bufferevent_enable(bev, EV_READ);
}

int agent_control_start(struct agent *a, char *err, size_t errlen)
{
	struct sockaddr_un sa;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (dev_path(sa.sun_path, sizeof(sa.sun_path), &a->cfg, "agent.sock") == -1) {
		snprintf(err, errlen, "state_dir too long for a unix socket path");
		return -1;
	}
	/* The pid file check has made sure no live agent owns a socket left here. */
	(void)unlink(sa.sun_path);
	a->ctl = evconnlistener_new_bind(a->base, agent_accept, a,
	                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	                                 (struct sockaddr *)&sa, sizeof(sa));
	if (a->ctl == NULL) {
		snprintf(err, errlen, "%s: %s", sa.sun_path, strerror(errno));
		return -1;
	}
	snprintf(a->sock_path, sizeof(a->sock_path), "%s", sa.sun_path);
	/* umask 077 already; chmod says it again whatever the caller's umask was. */
	if (chmod(a->sock_path, 0600) == -1) {
		snprintf(err, errlen, "%s: %s", a->sock_path, strerror(errno));
		return -1;
	}
	return 0;
}

void agent_control_stop(struct agent *a)
{
	while (a->conns != NULL)
		agent_conn_free(a->conns);
	if (a->ctl != NULL) {
		evconnlistener_free(a->ctl);
		a->ctl = NULL;
	}
	if (a->sock_path[0] != '\0')
		(void)unlink(a->sock_path);
}
