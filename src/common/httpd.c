/*
 * httpd: the HTTPS (mutual TLS) JSON API server, on libevent 2.1 evhttp.
 *
 * Lifetimes, because evhttp 2.1 leaves most of them to the user:
 *
 * - struct httpd_conn is the per-connection state. It hangs off the SSL (ex_data at an
 *   index owned by this httpd) and dies with it, through the ex_data free callback, which
 *   is the one hook that runs however the connection ends (failed handshake, refused
 *   connection, evhttp_free, ...). It holds the peer identity captured when the handshake
 *   completes and the request being served, if any.
 * - struct httpd_req lives from the moment evhttp hands us a request until the reply has
 *   been written (evhttp's on_complete callback) or the connection is gone (the evhttp
 *   close callback). Only one request is in flight per connection (HTTP/1.1 without
 *   pipelined handling), so one close callback per connection, pointing at the conn,
 *   reaches it.
 * - When a client goes away while a handler still holds the request, evhttp 2.1 unhooks
 *   the evhttp_request from the connection and forgets it (it expects the user's reply to
 *   free it); the close callback frees it instead, tells the handler through its abort
 *   callback, and frees our request, so a handler that was told cannot touch freed memory.
 *
 * Connection limit: evhttp 2.1 has no evhttp_set_max_connections. Open connections are
 * counted by their SSL objects (created in the bevcb, released in the ex_data free
 * callback). A connection that arrives over the limit still gets an SSL (the bevcb must not
 * return NULL, or evhttp would serve it in plaintext), but one with no cipher suite: the
 * server fails its first handshake step (no ciphers available) as soon as the ClientHello
 * arrives, before any key exchange, and the connection is freed. No callback on the
 * caller's SSL_CTX is needed, so a context shared with other code is left untouched.
 */

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "opendm/httpd.h"
#include "opendm/log.h"

/* Plaintext queued for one streaming reply before fill() is asked for more. */
#define HTTPD_STREAM_CAP (256 * 1024)
/* Largest single fill() request. */
#define HTTPD_STREAM_CHUNK (64 * 1024)
#define HTTPD_MAX_ROUTES   1024
#define HTTPD_MSG_MAX      512
#define HTTPD_COALESCE_MAX (16 * 1024)

enum httpd_req_state {
	HTTPD_REQ_HANDLER, /* the handler owns it and must reply */
	HTTPD_REQ_SENT,    /* reply queued; waiting for evhttp to finish writing it */
	HTTPD_REQ_STREAM,  /* streaming through fill()/done() */
};

struct httpd_conn {
	struct httpd *h; /* NULL once the httpd is gone */
	TAILQ_ENTRY(httpd_conn) entry;
	struct httpd_req *req;
	struct tls_peer peer;
	int peer_ok;
	int closecb_set;
	int refused;
};

struct httpd_req {
	struct httpd *h;
	struct httpd_conn *conn;
	struct evhttp_request *ev;
	struct bufferevent *bev;
	enum evhttp_cmd_type method;
	TAILQ_ENTRY(httpd_req) entry;
	enum httpd_req_state state;
	int status;
	char rid[HTTPD_RID_MAX + 1];
	char *path;
	const char *tail;
	const struct httpd_route *route;
	json_t *json;
	void *body;
	void (*abort_cb)(void *);
	void *abort_arg;
	/* streaming */
	httpd_fill_fn fill;
	void (*done)(void *, int);
	void *done_arg;
	struct evbuffer *chunk;
	int64_t length; /* announced Content-Length, or -1 */
	int64_t sent;
};

struct httpd {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	SSL_CTX *ctx;
	struct httpd_conf conf; /* address not kept */
	int port;
	int ex_idx;
	const struct httpd_route *routes;
	void *arg;
	size_t nconn;
	size_t inflight;
	TAILQ_HEAD(, httpd_conn) conns;
	TAILQ_HEAD(, httpd_req) reqs;
	int shutting_down;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
	struct event *ev_done;
	uint64_t rid_base; /* random at start; request ids are rid_base + rid_next */
	uint64_t rid_next;
};

static const char httpd_oom_body[] =
    "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\"}}";

static void httpd_req_end(struct httpd_req *r, int ok);
static void httpd_stream_pump(struct httpd_req *r);

static const char *httpd_method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "?";
}

/* ---- connection state, attached to the SSL ---- */

static void httpd_conn_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                               void *argp)
{
	struct httpd_conn *conn = ptr;

	if (conn == NULL)
		return;
	if (conn->h != NULL) {
		TAILQ_REMOVE(&conn->h->conns, conn, entry);
		conn->h->nconn--;
	}
	/* evhttp runs the close callback before freeing the bufferevent, so this is only
	 * reached with a request left if evhttp skipped it; never leave a dangling link. */
	if (conn->req != NULL)
		conn->req->conn = NULL;
	free(conn);
}

static void httpd_info_cb(const SSL *cssl, int where, int ret)
{
	/* OpenSSL hands a const SSL to info callbacks; this SSL is ours (made in the bevcb). */
	SSL *ssl = (SSL *)cssl;
	struct httpd_conn *conn;
	int fd, one = 1;

	if (where & SSL_CB_HANDSHAKE_START) {
		/* The first point where the accepted socket is known (evhttp sets the fd after
		 * the bevcb); without NODELAY keep-alive JSON stalls on delayed ACKs. */
		if ((fd = SSL_get_fd(ssl)) >= 0 &&
		    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
			log_debug("TCP_NODELAY: %s", strerror(errno));
	}
	if (where & SSL_CB_HANDSHAKE_DONE) {
		/* Info callbacks carry no argument: the conn is also the SSL's app data. */
		conn = SSL_get_app_data(ssl);
		if (conn != NULL && !conn->peer_ok)
			conn->peer_ok = tls_peer_from_ssl(ssl, &conn->peer) == 0;
	}
}

static struct bufferevent *httpd_bev_refuse(struct event_base *base)
{
	struct bufferevent *pair[2];

	/*
	 * Could not build a TLS bufferevent. Returning NULL would make evhttp serve plaintext;
	 * a pair cannot take the socket, so evhttp drops the connection instead.
	 */
	if (bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE, pair) == -1)
		return NULL; /* out of memory; httpd_gencb still refuses non-TLS requests */
	bufferevent_free(pair[1]);
	return pair[0];
}

static struct bufferevent *httpd_bevcb(struct event_base *base, void *arg)
{
	struct httpd *h = arg;
	struct httpd_conn *conn = NULL;
	struct bufferevent *bev;
	SSL *ssl;
	size_t wm;

	if ((ssl = SSL_new(h->ctx)) == NULL) {
		log_err("SSL_new failed");
		ERR_clear_error();
		return httpd_bev_refuse(base);
	}
	if ((conn = calloc(1, sizeof(*conn))) == NULL ||
	    SSL_set_ex_data(ssl, h->ex_idx, conn) != 1) {
		log_err("out of memory");
		free(conn);
		SSL_free(ssl);
		return httpd_bev_refuse(base);
	}
	conn->h = h;
	TAILQ_INSERT_TAIL(&h->conns, conn, entry);
	h->nconn++;
	SSL_set_app_data(ssl, conn);
	SSL_set_info_callback(ssl, httpd_info_cb);

	if (h->nconn > (size_t)h->conf.max_connections) {
		conn->refused = 1;
		log_warn("connection limit (%d) reached: refusing a connection",
		         h->conf.max_connections);
		/* No suite for any version: the handshake fails on the ClientHello. */
		SSL_set_ciphersuites(ssl, "");
		if (SSL_set_cipher_list(ssl, "") != 1)
			ERR_clear_error();
	}

	/* On failure this frees the SSL, and with it the conn. */
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		log_err("bufferevent_openssl_socket_new failed");
		return httpd_bev_refuse(base);
	}
	/*
	 * evhttp keeps reading while a request is handled or a reply written (to see the
	 * client go away) and buffers whatever arrives; bound that to one request's worth.
	 */
	wm = h->conf.max_header_bytes + h->conf.max_body_bytes + 16384;
	bufferevent_setwatermark(bev, EV_READ, 0, wm);
	return bev;
}

/* ---- request lifetime ---- */

static void httpd_timeouts(struct httpd_req *r, int serving)
{
	struct timeval tv = {r->h->conf.idle_timeout_s, 0};

	/*
	 * evhttp applies its timeout to reads and writes alike, and reads stay enabled while a
	 * request is served, so a slow handler or a long download would be cut as "idle".
	 * While serving, only a client that stops reading our output counts as idle.
	 */
	if (r->bev != NULL)
		bufferevent_set_timeouts(r->bev, serving ? NULL : &tv, &tv);
}

static void httpd_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpd *h = arg;
	void (*done)(void *) = h->shutdown_done;

	h->shutdown_done = NULL;
	if (done != NULL)
		done(h->shutdown_arg);
}

static void httpd_req_end(struct httpd_req *r, int ok)
{
	struct httpd *h = r->h;
	const char *cn = "-";
	void (*abort_cb)(void *) = NULL;
	void (*done)(void *, int) = NULL;

	if (r->state == HTTPD_REQ_HANDLER)
		abort_cb = r->abort_cb;
	else if (r->state == HTTPD_REQ_STREAM)
		done = r->done;

	if (r->conn != NULL) {
		if (r->conn->peer_ok && r->conn->peer.subject_cn[0] != '\0')
			cn = r->conn->peer.subject_cn;
		r->conn->req = NULL;
	}
	log_rdebug(r->rid, "%s %s %d%s cn=%s", httpd_method_name(r->method), r->path, r->status,
	           ok ? "" : " aborted", cn);

	TAILQ_REMOVE(&h->reqs, r, entry);
	h->inflight--;

	/* Told last, with the request already unlinked, so they may do anything. */
	if (abort_cb != NULL)
		abort_cb(r->abort_arg);
	if (done != NULL)
		done(r->done_arg, ok);

	if (r->route != NULL && r->route->body != NULL && r->body != NULL)
		schema_free(r->route->body, r->body);
	free(r->body);
	json_decref(r->json);
	if (r->chunk != NULL)
		evbuffer_free(r->chunk);
	free(r->path);
	free(r);

	/* Deferred: done() may free the httpd, and we may be deep inside evhttp here. */
	if (h->shutting_down && h->inflight == 0 && h->shutdown_done != NULL)
		event_active(h->ev_done, EV_TIMEOUT, 1);
}

/* evhttp_send_done(): the reply has been written. */
static void httpd_complete_cb(struct evhttp_request *ev, void *arg)
{
	struct httpd_req *r = arg;

	httpd_timeouts(r, 0);
	/*
	 * Still in the handler's hands: evhttp answered on its own (an I/O error it reports
	 * with an error page), so for the handler the client is gone.
	 */
	httpd_req_end(r, r->state != HTTPD_REQ_HANDLER);
}

/* evhttp_connection_free(): the connection is going away. */
static void httpd_closecb(struct evhttp_connection *evcon, void *arg)
{
	struct httpd_conn *conn = arg;
	struct httpd_req *r = conn->req;

	if (r == NULL)
		return;
	/*
	 * On EOF or timeout evhttp unhooks a request the user has not finished (so that the
	 * user's reply frees it) and then frees the connection: free it here or it leaks.
	 * Otherwise the request is still on the connection and evhttp frees it.
	 */
	if (evhttp_request_get_connection(r->ev) == NULL)
		evhttp_request_free(r->ev);
	r->bev = NULL;
	httpd_req_end(r, 0);
}

/* ---- replies ---- */

static int httpd_replyable(struct httpd_req *r, const char *func)
{
	if (r == NULL) {
		log_msg(LOG_LVL_ERR, func, NULL, "reply to a NULL request");
		return 0;
	}
	if (r->state != HTTPD_REQ_HANDLER) {
		log_msg(LOG_LVL_ERR, func, r->rid, "request already answered");
		return 0;
	}
	return 1;
}

static void httpd_set_header(struct evhttp_request *ev, const char *name, const char *value)
{
	struct evkeyvalq *hdrs = evhttp_request_get_output_headers(ev);

	evhttp_remove_header(hdrs, name);
	if (evhttp_add_header(hdrs, name, value) == -1)
		log_err("cannot add header %s", name);
}

static int httpd_no_body_status(int status)
{
	return (status >= 100 && status < 200) || status == 204 || status == 304;
}

void httpd_add_header(struct httpd_req *req, const char *name, const char *value)
{
	if (req == NULL || name == NULL || value == NULL)
		return;
	if (req->state != HTTPD_REQ_HANDLER) {
		log_rerr(req->rid, "header %s added after the reply", name);
		return;
	}
	/* evhttp refuses CR/LF in values, so a peer-derived value cannot split the header. */
	if (evhttp_add_header(evhttp_request_get_output_headers(req->ev), name, value) == -1)
		log_rerr(req->rid, "invalid header %s", name);
}

/*
 * bufferevent_openssl makes one TLS record and one write(2) per evbuffer chain, and evhttp
 * leaves the header and the body in separate chains: joining a small reply halves both.
 */
static void httpd_coalesce(struct httpd_req *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req->ev);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	struct evbuffer *out = bev != NULL ? bufferevent_get_output(bev) : NULL;

	if (out != NULL && evbuffer_get_length(out) <= HTTPD_COALESCE_MAX)
		evbuffer_pullup(out, -1);
}

/* Queue the reply; text NULL for none. The request stays ours until it is written. */
static void httpd_send(struct httpd_req *req, int status, const char *text)
{
	struct evhttp_request *ev = req->ev;
	struct evbuffer *buf = NULL;
	size_t n = text != NULL ? strlen(text) : 0;
	char len[32];

	httpd_set_header(ev, "Content-Type", "application/json");
	if (req->h->shutting_down)
		httpd_set_header(ev, "Connection", "close");
	if (req->method == EVHTTP_REQ_HEAD && !httpd_no_body_status(status)) {
		/* evhttp would send a HEAD body and omit the length: do both by hand. */
		snprintf(len, sizeof(len), "%zu", n);
		httpd_set_header(ev, "Content-Length", len);
	} else if (n > 0 && !httpd_no_body_status(status)) {
		if ((buf = evbuffer_new()) == NULL || evbuffer_add(buf, text, n) == -1) {
			log_rerr(req->rid, "out of memory");
			status = HTTP_INTERNAL;
		}
	}
	req->status = status;
	req->state = HTTPD_REQ_SENT;
	/* Writing happens from the loop, so this never completes (and frees req) inline. */
	evhttp_send_reply(ev, status, NULL, buf);
	if (buf != NULL)
		evbuffer_free(buf);
	httpd_coalesce(req);
}

void httpd_reply_json(struct httpd_req *req, int status, json_t *body)
{
	char *text = NULL;

	if (!httpd_replyable(req, __func__)) {
		json_decref(body);
		return;
	}
	if (status < 100 || status > 599) {
		log_rerr(req->rid, "invalid status %d", status);
		status = HTTP_INTERNAL;
	}
	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		log_rerr(req->rid, "cannot encode the reply");
		json_decref(body);
		httpd_send(req, HTTP_INTERNAL, httpd_oom_body);
		return;
	}
	json_decref(body);
	httpd_send(req, status, text);
	free(text);
}

void httpd_reply_json_text(struct httpd_req *req, int status, const char *json)
{
	if (!httpd_replyable(req, __func__))
		return;
	if (status < 100 || status > 599) {
		log_rerr(req->rid, "invalid status %d", status);
		status = HTTP_INTERNAL;
	}
	httpd_send(req, status, json);
}

static char *httpd_ascii(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

void httpd_reply_error(struct httpd_req *req, int status, const char *code, const char *fmt, ...)
{
	char msg[HTTPD_MSG_MAX], safe[HTTPD_MSG_MAX];
	json_t *m, *body;
	va_list ap;

	if (!httpd_replyable(req, __func__))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages may quote peer input; JSON strings must be valid UTF-8. */
	if ((m = json_string(msg)) == NULL)
		m = json_string(httpd_ascii(msg, safe, sizeof(safe)));
	body = json_pack("{s:{s:s,s:o*}}", "error", "code", code != NULL ? code : "error",
	                 "message", m);
	if (status >= 500 && status != HTTP_SERVUNAVAIL)
		log_rwarn(req->rid, "%d %s: %s", status, code != NULL ? code : "error", msg);
	if (body == NULL) {
		httpd_send(req, HTTP_INTERNAL, httpd_oom_body);
		return;
	}
	httpd_reply_json(req, status, body);
}

/* ---- streaming ---- */

static void httpd_stream_fail(struct httpd_req *r, const char *why)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);

	log_rwarn(r->rid, "stream aborted: %s", why);
	/* The close callback ends the request (done(arg, 0)); r is gone afterwards. */
	if (evcon != NULL)
		evhttp_connection_free(evcon);
	else
		httpd_req_end(r, 0);
}

static void httpd_stream_end(struct httpd_req *r)
{
	if (r->length >= 0 && r->sent != r->length) {
		httpd_stream_fail(r, "body length differs from Content-Length");
		return;
	}
	/* Completion (all written) arrives through httpd_complete_cb: done(arg, 1). */
	evhttp_send_reply_end(r->ev);
}

/* evhttp: the output of the connection has drained. */
static void httpd_stream_cb(struct evhttp_connection *evcon, void *arg)
{
	httpd_stream_pump(arg);
}

static void httpd_stream_pump(struct httpd_req *r)
{
	struct evbuffer *out = bufferevent_get_output(r->bev);
	size_t queued = evbuffer_get_length(out), want, n;
	int rc;

	while (queued < HTTPD_STREAM_CAP) {
		want = HTTPD_STREAM_CAP - queued;
		if (want > HTTPD_STREAM_CHUNK)
			want = HTTPD_STREAM_CHUNK;
		rc = r->fill(r->chunk, want, r->done_arg);
		n = evbuffer_get_length(r->chunk);
		if (rc < 0) {
			httpd_stream_fail(r, "fill failed");
			return;
		}
		if (n > want) {
			httpd_stream_fail(r, "fill returned more than asked");
			return;
		}
		r->sent += (int64_t)n;
		if (r->length >= 0 && r->sent > r->length) {
			httpd_stream_fail(r, "body longer than Content-Length");
			return;
		}
		if (n > 0) {
			evhttp_send_reply_chunk_with_cb(r->ev, r->chunk, httpd_stream_cb, r);
			/* chunk framing counts too */
			queued = evbuffer_get_length(out);
		}
		if (rc == 0) {
			httpd_stream_end(r);
			return;
		}
		if (n == 0) {
			/* Nothing queued means no drain event would ever call us again. */
			if (queued == 0)
				httpd_stream_fail(r, "fill returned no data");
			return;
		}
	}
}

int httpd_reply_stream(struct httpd_req *req, int status, int64_t content_length,
                       httpd_fill_fn fill, void (*done)(void *arg, int ok), void *arg)
{
	struct evkeyvalq *hdrs;
	char len[32];

	if (!httpd_replyable(req, __func__))
		return -1;
	if (fill == NULL || done == NULL || status < 200 || status > 599 ||
	    httpd_no_body_status(status)) {
		log_rerr(req->rid, "invalid stream reply");
		return -1;
	}
	if ((req->chunk = evbuffer_new()) == NULL) {
		log_rerr(req->rid, "out of memory");
		return -1;
	}
	hdrs = evhttp_request_get_output_headers(req->ev);
	if (evhttp_find_header(hdrs, "Content-Type") == NULL)
		evhttp_add_header(hdrs, "Content-Type", "application/octet-stream");
	if (req->h->shutting_down)
		httpd_set_header(req->ev, "Connection", "close");
	if (content_length >= 0) {
		/* With a length evhttp sends the body raw instead of chunked. */
		snprintf(len, sizeof(len), "%lld", (long long)content_length);
		httpd_set_header(req->ev, "Content-Length", len);
	}
	req->fill = fill;
	req->done = done;
	req->done_arg = arg;
	req->length = content_length;
	req->status = status;
	req->state = HTTPD_REQ_STREAM;
	evhttp_send_reply_start(req->ev, status, NULL);
	if (evhttp_request_get_command(req->ev) == EVHTTP_REQ_HEAD) {
		evhttp_send_reply_end(req->ev);
		return 0;
	}
	httpd_stream_pump(req);
	return 0;
}

/* ---- dispatch ---- */

static int httpd_rid_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i >= HTTPD_RID_MAX)
			return 0;
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	}
	return i > 0;
}

/*
 * A request id only has to be unique and hard to confuse across daemons: a random base drawn
 * once plus a counter gives that without a trip through the DRBG (and its locks) per request.
 */
static void httpd_rid_init(struct httpd_req *r)
{
	const char *in =
	    evhttp_find_header(evhttp_request_get_input_headers(r->ev), "X-Request-Id");
	static const char hex[] = "0123456789abcdef";
	uint64_t v;
	size_t i;

	if (in != NULL && httpd_rid_valid(in)) {
		snprintf(r->rid, sizeof(r->rid), "%s", in);
		return;
	}
	v = r->h->rid_base + r->h->rid_next++;
	for (i = 16; i > 0; i--, v >>= 4)
		r->rid[i - 1] = hex[v & 0xf];
	r->rid[16] = '\0';
}

static int httpd_is_json(const char *ct)
{
	static const char mt[] = "application/json";
	size_t n = sizeof(mt) - 1;

	if (ct == NULL || strncasecmp(ct, mt, n) != 0)
		return 0;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

static int httpd_path_match(const char *route, const char *path, const char **tail)
{
	size_t n = strlen(route);

	if (n > 0 && route[n - 1] == '*') {
		if (strncmp(route, path, n - 1) != 0)
			return 0;
		*tail = path + n - 1;
		return 1;
	}
	if (strcmp(route, path) != 0)
		return 0;
	*tail = path + n;
	return 1;
}

static void httpd_allow_add(char *allow, size_t len, const char *m)
{
	size_t n = strlen(allow);

	if (strstr(allow, m) != NULL)
		return;
	snprintf(allow + n, len - n, "%s%s", n > 0 ? ", " : "", m);
}

/* Find the route; on failure reply 404/405 and return NULL. */
static const struct httpd_route *httpd_route_find(struct httpd_req *r)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(r->ev);
	const struct httpd_route *rt, *get = NULL;
	const char *tail, *get_tail = NULL;
	char allow[128] = "";
	int path_seen = 0;

	for (rt = r->h->routes; rt->fn != NULL; rt++) {
		if (!httpd_path_match(rt->path, r->path, &tail))
			continue;
		path_seen = 1;
		if (rt->method == m) {
			r->tail = tail;
			return rt;
		}
		if (rt->method == EVHTTP_REQ_GET && get == NULL) {
			get = rt;
			get_tail = tail;
		}
		httpd_allow_add(allow, sizeof(allow), httpd_method_name(rt->method));
		if (rt->method == EVHTTP_REQ_GET)
			httpd_allow_add(allow, sizeof(allow), "HEAD");
	}
	/* HEAD is GET without the body, unless a route says otherwise. */
	if (m == EVHTTP_REQ_HEAD && get != NULL) {
		r->tail = get_tail;
		return get;
	}
	if (!path_seen) {
		httpd_reply_error(r, HTTP_NOTFOUND, "not_found", "no such resource");
		return NULL;
	}
	httpd_add_header(r, "Allow", allow);
	httpd_reply_error(r, 405, "method_not_allowed", "method %s not allowed here",
	                  httpd_method_name(m));
	return NULL;
}

/* Parse and decode the body for the route; on failure reply and return -1. */
static int httpd_body_decode(struct httpd_req *r)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
	const struct httpd_route *rt = r->route;
	size_t len = evbuffer_get_length(in);
	char err[HTTPD_MSG_MAX];
	json_error_t jerr;
	unsigned char *data;

	if (rt->body == NULL) {
		if (len == 0)
			return 0;
		httpd_reply_error(r, HTTP_BADREQUEST, "bad_request", "this resource takes no body");
		return -1;
	}
	if (!httpd_is_json(
	        evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Content-Type"))) {
		httpd_reply_error(r, 415, "unsupported_media_type",
		                  "the body must be application/json");
		return -1;
	}
	/* evhttp enforces the limit while reading; a lowered limit applies from here. */
	if (len > r->h->conf.max_body_bytes) {
		httpd_reply_error(r, 413, "body_too_large", "body larger than %zu bytes",
		                  r->h->conf.max_body_bytes);
		return -1;
	}
	if ((data = evbuffer_pullup(in, -1)) == NULL && len > 0) {
		httpd_reply_error(r, HTTP_INTERNAL, "internal_error", "out of memory");
		return -1;
	}
	r->json = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (r->json == NULL) {
		httpd_reply_error(r, HTTP_BADREQUEST, "bad_json", "%s (line %d, column %d)",
		                  jerr.text, jerr.line, jerr.column);
		return -1;
	}
	if (!json_is_object(r->json)) {
		httpd_reply_error(r, HTTP_BADREQUEST, "bad_json", "the body must be a JSON object");
		return -1;
	}
	if ((r->body = calloc(1, rt->body_size > 0 ? rt->body_size : 1)) == NULL) {
		httpd_reply_error(r, HTTP_INTERNAL, "internal_error", "out of memory");
		return -1;
	}
	if (schema_decode(r->json, rt->body, r->body, "body", err, sizeof(err)) == -1) {
		httpd_reply_error(r, HTTP_BADREQUEST, "bad_request", "%s", err);
		return -1;
	}
	return 0;
}

static void httpd_gencb(struct evhttp_request *ev, void *arg)
{
	struct httpd *h = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
	struct httpd_conn *conn = ssl != NULL ? SSL_get_ex_data(ssl, h->ex_idx) : NULL;
	bufferevent_data_cb rcb, wcb;
	bufferevent_event_cb ecb;
	const char *path;
	struct httpd_req *r;
	void *cbarg;

	if (conn == NULL || conn->h != h) {
		/* Only reachable if the bevcb could not build TLS: never serve plaintext. */
		log_err("request on a connection without TLS: closing it");
		if (evcon != NULL)
			evhttp_connection_free(evcon);
		return;
	}
	if (!conn->closecb_set) {
		evhttp_connection_set_closecb(evcon, httpd_closecb, conn);
		conn->closecb_set = 1;
	}
	if (!conn->peer_ok)
		conn->peer_ok = tls_peer_from_ssl(ssl, &conn->peer) == 0;

	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(ev));
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->path = strdup(path != NULL ? path : "")) == NULL) {
		free(r);
		log_err("out of memory");
		evhttp_send_error(ev, HTTP_INTERNAL, NULL);
		return;
	}
	r->h = h;
	r->conn = conn;
	r->ev = ev;
	r->bev = bev;
	r->method = evhttp_request_get_command(ev);
	r->length = -1;
	r->tail = "";
	conn->req = r;
	TAILQ_INSERT_TAIL(&h->reqs, r, entry);
	h->inflight++;
	evhttp_request_set_on_complete_cb(ev, httpd_complete_cb, r);
	httpd_rid_init(r);

	httpd_add_header(r, "X-Request-Id", r->rid);
	httpd_add_header(r, "Cache-Control", "no-store");
	httpd_add_header(r, "X-Content-Type-Options", "nosniff");

	/*
	 * evhttp stops reading once a request is complete, so a client that leaves while an
	 * asynchronous handler works would go unnoticed. Read again, with no read callback
	 * (what evhttp itself does while writing a reply): data waits in the input buffer,
	 * EOF or an error ends the connection and reaches the close callback.
	 */
	bufferevent_getcb(bev, &rcb, &wcb, &ecb, &cbarg);
	bufferevent_setcb(bev, NULL, wcb, ecb, cbarg);
	bufferevent_enable(bev, EV_READ);
	httpd_timeouts(r, 1);

	if (h->shutting_down) {
		httpd_reply_error(r, HTTP_SERVUNAVAIL, "shutting_down", "the server is stopping");
		return;
	}
	if ((r->route = httpd_route_find(r)) == NULL)
		return;
	if (httpd_body_decode(r) == -1)
		return;
	/* The handler may reply now or later; r may be gone when it returns. */
	r->route->fn(r, h->arg);
}

/* ---- accessors ---- */

const char *httpd_req_id(const struct httpd_req *req)
{
	return req != NULL ? req->rid : "";
}

const struct tls_peer *httpd_req_peer(const struct httpd_req *req)
{
	if (req == NULL || req->conn == NULL || !req->conn->peer_ok)
		return NULL;
	return &req->conn->peer;
}

void *httpd_req_body(struct httpd_req *req)
{
	return req != NULL ? req->body : NULL;
}

json_t *httpd_req_json(struct httpd_req *req)
{
	return req != NULL ? req->json : NULL;
}

const char *httpd_req_method_name(const struct httpd_req *req)
{
	return httpd_method_name(req->method);
}

int httpd_req_query(struct httpd_req *req, const char *key, char *buf, size_t len)
{
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req->ev)), *v = NULL;
	struct evkeyvalq kv;
	struct evkeyval *e;
	int rc = 0, seen = 0;

	buf[0] = '\0';
	if (q == NULL || q[0] == '\0')
		return 0;
	TAILQ_INIT(&kv);
	/* A query that does not decode is refused rather than half read; an encoded NUL would
	 * silently shorten a value after decoding. */
	if (strlen(q) > HTTPD_QUERY_MAX || strstr(q, "%00") != NULL ||
	    evhttp_parse_query_str(q, &kv) != 0) {
		evhttp_clear_headers(&kv);
		return -1;
	}
	/* Exact key (evhttp_find_header ignores case), and only once: a repeated key is
	 * ambiguous. */
	TAILQ_FOREACH(e, &kv, next)
	if (strcmp(e->key, key) == 0) {
		v = e->value;
		seen++;
	}
	if (seen > 1 || (v != NULL && (strlen(v) >= len || v[0] == '\0')))
		rc = -1;
	else if (v != NULL) {
		memcpy(buf, v, strlen(v) + 1);
		rc = 1;
	}
	evhttp_clear_headers(&kv);
	return rc;
}

const char *httpd_req_path(const struct httpd_req *req)
{
	return req != NULL ? req->path : "";
}

const char *httpd_req_tail(const struct httpd_req *req)
{
	return req != NULL ? req->tail : "";
}

const char *httpd_req_header(const struct httpd_req *req, const char *name)
{
	if (req == NULL || name == NULL)
		return NULL;
	return evhttp_find_header(evhttp_request_get_input_headers(req->ev), name);
}

struct evhttp_request *httpd_req_ev(struct httpd_req *req)
{
	return req != NULL ? req->ev : NULL;
}

void httpd_req_set_abort_cb(struct httpd_req *req, void (*cb)(void *arg), void *arg)
{
	if (req == NULL)
		return;
	req->abort_cb = cb;
	req->abort_arg = arg;
}

int httpd_req_tls_export(struct httpd_req *req, const char *label, unsigned char *out, size_t len)
{
	SSL *ssl;

	/* The connection may be gone (an asynchronous handler answering late). */
	if (req == NULL || req->conn == NULL || req->bev == NULL || label == NULL ||
	    (ssl = bufferevent_openssl_get_ssl(req->bev)) == NULL)
		return -1;
	if (SSL_export_keying_material(ssl, out, len, label, strlen(label), NULL, 0, 0) != 1) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* ---- server ---- */

static int httpd_conf_check(const struct httpd_conf *c, char *err, size_t errlen)
{
	if (c->port < 0 || c->port > 65535) {
		snprintf(err, errlen, "port %d out of range", c->port);
		return -1;
	}
	if (c->max_body_bytes == 0 || c->max_body_bytes > SSIZE_MAX / 4 ||
	    c->max_header_bytes == 0 || c->max_header_bytes > SSIZE_MAX / 4) {
		snprintf(err, errlen, "body and header limits must be positive");
		return -1;
	}
	if (c->max_connections <= 0 || c->idle_timeout_s <= 0) {
		snprintf(err, errlen, "max_connections and idle_timeout_s must be positive");
		return -1;
	}
	return 0;
}

static void httpd_apply_limits(struct httpd *h, const struct httpd_conf *conf)
{
	h->conf.max_body_bytes = conf->max_body_bytes;
	h->conf.max_header_bytes = conf->max_header_bytes;
	h->conf.max_connections = conf->max_connections;
	h->conf.idle_timeout_s = conf->idle_timeout_s;
	evhttp_set_max_body_size(h->http, (ev_ssize_t)conf->max_body_bytes);
	evhttp_set_max_headers_size(h->http, (ev_ssize_t)conf->max_header_bytes);
	evhttp_set_timeout(h->http, conf->idle_timeout_s);
}

static int httpd_listen(const struct httpd_conf *conf, char *err, size_t errlen)
{
	struct addrinfo hints, *ai = NULL;
	char port[16];
	int fd = -1, one = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", conf->port);
	if ((rc = getaddrinfo(conf->address, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "%s:%d: %s", conf->address, conf->port, gai_strerror(rc));
		return -1;
	}
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 || listen(fd, SOMAXCONN) == -1) {
		snprintf(err, errlen, "%s:%d: %s", conf->address, conf->port, strerror(errno));
		if (fd != -1)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

struct httpd *httpd_new(struct event_base *base, const struct httpd_conf *conf, SSL_CTX *ctx,
                        const struct httpd_route *routes, void *arg, char *err, size_t errlen)
{
	struct httpd *h = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	size_t i;
	int fd = -1;

	if (base == NULL || conf == NULL || conf->address == NULL || ctx == NULL ||
	    routes == NULL) {
		snprintf(err, errlen, "missing argument");
		return NULL;
	}
	if (httpd_conf_check(conf, err, errlen) == -1)
		return NULL;
	for (i = 0; routes[i].fn != NULL; i++) {
		if (i >= HTTPD_MAX_ROUTES || routes[i].path == NULL || routes[i].path[0] != '/') {
			snprintf(err, errlen, "route %zu: bad path", i);
			return NULL;
		}
	}

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->base = base;
	h->routes = routes;
	h->arg = arg;
	h->ex_idx = -1;
	if (RAND_bytes((unsigned char *)&h->rid_base, sizeof(h->rid_base)) != 1)
		h->rid_base = ((uint64_t)time(NULL) << 24) ^ (uint64_t)(uintptr_t)h;
	TAILQ_INIT(&h->conns);
	TAILQ_INIT(&h->reqs);

	if ((h->ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, httpd_conn_free_cb)) < 0 ||
	    (h->http = evhttp_new(base)) == NULL ||
	    (h->ev_done = event_new(base, -1, 0, httpd_done_cb, h)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	evhttp_set_bevcb(h->http, httpd_bevcb, h);
	evhttp_set_gencb(h->http, httpd_gencb, h);
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
	evhttp_set_default_content_type(h->http, "application/json");
	httpd_apply_limits(h, conf);

	if ((fd = httpd_listen(conf, err, errlen)) == -1)
		goto fail;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
		snprintf(err, errlen, "%s:%d: %s", conf->address, conf->port, strerror(errno));
		goto fail;
	}
	h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	if ((h->bound = evhttp_accept_socket_with_handle(h->http, fd)) == NULL) {
		snprintf(err, errlen, "%s:%d: cannot listen", conf->address, conf->port);
		goto fail;
	}
	fd = -1; /* the listener owns it */

	SSL_CTX_up_ref(ctx);
	h->ctx = ctx;
	return h;

fail:
	if (fd != -1)
		close(fd);
	if (h->http != NULL)
		evhttp_free(h->http);
	if (h->ev_done != NULL)
		event_free(h->ev_done);
	if (h->ex_idx >= 0)
		CRYPTO_free_ex_index(CRYPTO_EX_INDEX_SSL, h->ex_idx);
	free(h);
	return NULL;
}

void httpd_set_ctx(struct httpd *h, SSL_CTX *ctx)
{
	if (h == NULL || ctx == NULL || ctx == h->ctx)
		return;
	/* Open connections keep their SSL, which holds its own reference to the old ctx. */
	SSL_CTX_up_ref(ctx);
	SSL_CTX_free(h->ctx);
	h->ctx = ctx;
}

void httpd_set_limits(struct httpd *h, const struct httpd_conf *conf)
{
	char err[128];

	if (h == NULL || conf == NULL)
		return;
	if (httpd_conf_check(conf, err, sizeof(err)) == -1) {
		log_err("limits not changed: %s", err);
		return;
	}
	httpd_apply_limits(h, conf);
}

void httpd_shutdown(struct httpd *h, void (*done)(void *arg), void *arg)
{
	if (h == NULL)
		return;
	if (h->bound != NULL) {
		evhttp_del_accept_socket(h->http, h->bound);
		h->bound = NULL;
	}
	h->shutting_down = 1;
	h->shutdown_done = done;
	h->shutdown_arg = arg;
	/* From the loop, never from here: the caller may still be using h. */
	if (h->inflight == 0 && done != NULL)
		event_active(h->ev_done, EV_TIMEOUT, 1);
}

void httpd_free(struct httpd *h)
{
	struct httpd_conn *conn;
	struct httpd_req *r;
	int orphans;

	if (h == NULL)
		return;
	h->shutdown_done = NULL;
	/* Closes every connection: their close callbacks end the requests in flight. */
	evhttp_free(h->http);
	while ((r = TAILQ_FIRST(&h->reqs)) != NULL) {
		/* Not reached through a close callback: evhttp has freed r->ev already. */
		if (r->conn != NULL)
			r->conn->req = NULL;
		r->conn = NULL;
		r->bev = NULL;
		httpd_req_end(r, 0);
	}
	/*
	 * bufferevents (and their SSLs) are finalized from the loop, after this: detach the
	 * conns so that their free callback does not reach back into h.
	 */
	orphans = !TAILQ_EMPTY(&h->conns);
	while ((conn = TAILQ_FIRST(&h->conns)) != NULL) {
		TAILQ_REMOVE(&h->conns, conn, entry);
		conn->h = NULL;
	}
	/* A freed index no longer runs its free callback; keep it while conns remain. */
	if (!orphans)
		CRYPTO_free_ex_index(CRYPTO_EX_INDEX_SSL, h->ex_idx);
	event_free(h->ev_done);
	SSL_CTX_free(h->ctx);
	free(h);
}

size_t httpd_inflight(const struct httpd *h)
{
	return h != NULL ? h->inflight : 0;
}

size_t httpd_connections(const struct httpd *h)
{
	return h != NULL ? h->nconn : 0;
}

int httpd_port(const struct httpd *h)
{
	return h != NULL ? h->port : -1;
}
