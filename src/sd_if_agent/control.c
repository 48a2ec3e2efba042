/*
 * control: the local admin socket of the CPE (sd_if_agent.control_socket, 0600), what the
 * TV or remote-control UI of a set-top box talks to. One JSON request line per connection
 * (at most SDIF_CTL_LINE bytes), one JSON answer line, then close; as the device agent's
 * (src/dm_agent/agent_control.c). Commands:
 *   {"cmd":"pair"}                 enter pairing mode: a new PIN (the old one is void)
 *   {"cmd":"unpair","hw_id":"..."} end a pairing and close the device's open tunnels
 *   {"cmd":"list"}                 pairings and their open tunnels
 * Every answer has "ok"; a refusal has "code" and "message".
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "opendm/log.h"
#include "sd_if_agent.h"

#define SDIF_CTL_LINE    4096
#define SDIF_CTL_CONNS   16 /* at once; more are closed at accept */
#define SDIF_CTL_TIMEOUT 10 /* seconds a client may take to send its line */

struct sdif_ctl_conn {
	struct sdif_ctl *ctl;
	struct sdif_ctl_conn *next, **prevp;
	struct bufferevent *bev;
};

struct sdif_ctl {
	struct sdif *s;
	struct evconnlistener *l;
	struct sdif_ctl_conn *conns;
	size_t nconns;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void sdif_ctl_conn_free(struct sdif_ctl_conn *conn)
{
	*conn->prevp = conn->next;
	if (conn->next != NULL)
		conn->next->prevp = conn->prevp;
	conn->ctl->nconns--;
	bufferevent_free(conn->bev);
	free(conn);
}

static void sdif_ctl_written(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		sdif_ctl_conn_free(arg);
}

static void sdif_ctl_event(struct bufferevent *bev, short what, void *arg)
{
	/* EOF, error, or the client's time to send its line is over. */
	sdif_ctl_conn_free(arg);
}

static json_t *sdif_ctl_error(const char *code, const char *msg)
{
	return json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "message", msg);
}

static void sdif_ctl_reply(struct sdif_ctl_conn *conn, json_t *resp)
{
	char *text = NULL;

	bufferevent_disable(conn->bev, EV_READ);
	if (resp == NULL || (text = json_dumps(resp, JSON_COMPACT)) == NULL ||
	    evbuffer_add_printf(bufferevent_get_output(conn->bev), "%s\n", text) == -1) {
		log_err("cannot send the answer");
		sdif_ctl_conn_free(conn);
		goto out;
	}
	bufferevent_setcb(conn->bev, NULL, sdif_ctl_written, sdif_ctl_event, conn);
	bufferevent_enable(conn->bev, EV_WRITE);
out:
	free(text);
	json_decref(resp);
}

static json_t *sdif_ctl_pair(struct sdif *s)
{
	time_t now = time(NULL);

	if (sdif_pin_new(s, now, s->pin_ttl_s, s->pin_attempts) == -1) {
		log_err("cannot make a PIN: no randomness");
		return sdif_ctl_error("internal_error", "cannot make a PIN");
	}
	/* The PIN itself is a secret: shown to the user, never logged. */
	log_info("sdif=pairing_mode expires=%lld attempts=%d", (long long)s->pin_expires,
	         s->pin_attempts_left);
	return json_pack("{s:b, s:s, s:I, s:I}", "ok", 1, "pin", s->pin, "expires",
	                 (json_int_t)s->pin_expires, "ttl", (json_int_t)s->pin_ttl_s);
}

static json_t *sdif_ctl_unpair(struct sdif *s, const json_t *req)
{
	const char *hw_id = json_string_value(json_object_get(req, "hw_id"));
	char fp[65];
	int r, closed;

	if (hw_id == NULL || !sdif_hwid_ok(hw_id))
		return sdif_ctl_error("bad_request",
		                      "hw_id: 4-64 characters of A-Z a-z 0-9 . _ : -");
	if ((r = sdif_store_unpair(s->d->db, hw_id, (int64_t)time(NULL), fp)) == -1)
		return sdif_ctl_error("internal_error", "database error");
	if (r == 0)
		return sdif_ctl_error("not_paired", "no active pairing for this hw_id");
	/* The relay checks the pairing at every new tunnel; the open ones end now. */
	closed = s->relay != NULL ? sdif_relay_close_link(s, fp) : 0;
	log_info("sdif=unpaired hw_id=%s link_fp=%s tunnels_closed=%d", hw_id, fp, closed);
	return json_pack("{s:b, s:s, s:i}", "ok", 1, "hw_id", hw_id, "tunnels_closed", closed);
}

static json_t *sdif_ctl_list(struct sdif *s)
{
	json_t *list, *row;
	const char *fp;
	size_t i, n;

	if ((list = sdif_store_list(s->d->db)) == NULL)
		return sdif_ctl_error("internal_error", "database error");
	json_array_foreach(list, i, row)
	{
		fp = json_string_value(json_object_get(row, "link_fp"));
		n = fp != NULL && s->relay != NULL ? sdif_relay_count(s, fp) : 0;
		json_object_set_new(
		    row, "active", json_boolean(json_is_null(json_object_get(row, "unpaired_at"))));
		json_object_set_new(row, "tunnels", json_integer((json_int_t)n));
	}
	return json_pack("{s:b, s:o, s:I, s:b}", "ok", 1, "pairings", list, "tunnels",
	                 (json_int_t)(s->relay != NULL ? sdif_relay_count(s, NULL) : 0),
	                 "pairing_mode", sdif_pin_active(s, time(NULL)));
}

static void sdif_ctl_read(struct bufferevent *bev, void *arg)
{
	struct sdif_ctl_conn *conn = arg;
	struct sdif *s = conn->ctl->s;
	struct evbuffer *in = bufferevent_get_input(bev);
	const char *cmd;
	json_t *req;
	size_t n;
	char *line;

	if ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) == NULL) {
		if (evbuffer_get_length(in) > SDIF_CTL_LINE)
			sdif_ctl_reply(conn,
			               sdif_ctl_error("bad_request", "request line too long"));
		return;
	}
	req = n <= SDIF_CTL_LINE ? json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL) : NULL;
	free(line);
	cmd = json_string_value(json_object_get(req, "cmd"));
	if (cmd == NULL)
		sdif_ctl_reply(conn, sdif_ctl_error("bad_request", "no cmd"));
	else if (strcmp(cmd, "pair") == 0)
		sdif_ctl_reply(conn, sdif_ctl_pair(s));
	else if (strcmp(cmd, "unpair") == 0)
		sdif_ctl_reply(conn, sdif_ctl_unpair(s, req));
	else if (strcmp(cmd, "list") == 0)
		sdif_ctl_reply(conn, sdif_ctl_list(s));
	else
		sdif_ctl_reply(conn, sdif_ctl_error("bad_request", "unknown cmd"));
	json_decref(req);
}

static void sdif_ctl_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
	struct sdif_ctl *ctl = arg;
	struct sdif_ctl_conn *conn;
	struct timeval tv = {SDIF_CTL_TIMEOUT, 0};

	if (ctl->nconns >= SDIF_CTL_CONNS) {
		log_warn("control socket: %d connections open, closing a new one", SDIF_CTL_CONNS);
		close(fd);
		return;
	}
	if ((conn = calloc(1, sizeof(*conn))) == NULL ||
	    (conn->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	                                        BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		log_err("out of memory");
		free(conn);
		close(fd);
		return;
	}
	conn->ctl = ctl;
	conn->next = ctl->conns;
	if (ctl->conns != NULL)
		ctl->conns->prevp = &conn->next;
	conn->prevp = &ctl->conns;
	ctl->conns = conn;
	ctl->nconns++;
	bufferevent_setwatermark(conn->bev, EV_READ, 0, SDIF_CTL_LINE + 2);
	bufferevent_set_timeouts(conn->bev, &tv, &tv);
	bufferevent_setcb(conn->bev, sdif_ctl_read, NULL, sdif_ctl_event, conn);
	bufferevent_enable(conn->bev, EV_READ);
}

/*
 * A socket file left by an earlier run is removed, but not one a live agent still answers
 * on (two agents on one database and one socket would confuse the admin), nor anything
 * that is not a socket. 0/-1 + err.
 */
static int sdif_ctl_clear(const struct sockaddr_un *sa, char *err, size_t errlen)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", sa->sun_path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", sa->sun_path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (r == 0) {
		snprintf(err, errlen, "%s: another sd-if-agent is running on it", sa->sun_path);
		return -1;
	}
	(void)unlink(sa->sun_path);
	return 0;
}

int sdif_control_start(struct sdif *s, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct sdif_ctl *ctl;
	mode_t old;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "sd_if_agent.control_socket: longer than %zu bytes",
		         sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (sdif_ctl_clear(&sa, err, errlen) == -1)
		return -1;
	if ((ctl = calloc(1, sizeof(*ctl))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ctl->s = s;
	s->ctl = ctl;
	/* Created 0600 from the start: a chmod after bind would leave a window open. */
	old = umask(077);
	ctl->l = evconnlistener_new_bind(s->d->base, sdif_ctl_accept, ctl,
	                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	                                 (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ctl->l == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	memcpy(ctl->path, sa.sun_path, sizeof(ctl->path));
	log_info("control socket %s", ctl->path);
	return 0;
}

void sdif_control_stop(struct sdif *s)
{
	struct sdif_ctl *ctl = s->ctl;

	if (ctl == NULL)
		return;
	while (ctl->conns != NULL)
		sdif_ctl_conn_free(ctl->conns);
	if (ctl->l != NULL) {
		evconnlistener_free(ctl->l);
		if (ctl->path[0] != '\0')
			(void)unlink(ctl->path);
	}
	free(ctl);
	s->ctl = NULL;
}
