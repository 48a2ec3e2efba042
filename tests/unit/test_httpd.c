/*
 * httpd tests: the server runs on an event loop in the main thread (where all cmocka
 * assertions live); clients are blocking OpenSSL sockets in a second thread that only
 * records what it saw.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "opendm/httpd.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/schema.h"
#include "opendm/tls.h"

#define STREAM_CAP (256 * 1024)
#define NRESP      24

struct resp {
	int status;
	char head[4096];
	char body[8192];
	size_t len;
	uint64_t total;
	int pattern_bad;
	uint64_t stop_at;
};

struct cli {
	int fd;
	SSL *ssl;
	char buf[16384];
	size_t have;
};

struct fx {
	char dir[200];
	char ca[256], srv_crt[256], srv_key[256], cli_crt[256], cli_key[256];
	SSL_CTX *sctx, *cctx;
	struct event_base *base;
	struct httpd *h;
	int port;
	/* client thread results, read after the join */
	atomic_int client_done;
	struct resp r[NRESP];
	int ok[NRESP];
	double elapsed;
	/* server side (main thread) */
	size_t max_queued, max_commit, fills, fill_oversize;
	int stream_done, stream_ok;
	uint64_t stream_len;
	int aborts, async_replies, slow_ms, shutdown_on_slow, shutdown_done;
	size_t shutdown_inflight;
	int shutdown_after_reply;
	char seen_cn[128];
	/* TLS exporter of one session, as each end computes it */
	char srv_export[65], srv_export_other[65], cli_export[65];
	int export_rc;
};

struct echo_body {
	char *name;
	int64_t n;
};

static const struct schema_field echo_fields[] = {
    {"name", SCHEMA_STRING, offsetof(struct echo_body, name), 1, 1, 32, 0, NULL},
    {"n", SCHEMA_INT, offsetof(struct echo_body, n), 0, 0, 1000, 0, NULL},
    SCHEMA_END,
};

/* ---- handlers ---- */

static void h_hello(struct httpd_req *req, void *arg)
{
	struct fx *t = arg;
	const struct tls_peer *p = httpd_req_peer(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(httpd_req_ev(req));
	int fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	int nodelay = 0;
	socklen_t sl = sizeof(nodelay);

	getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &sl);
	snprintf(t->seen_cn, sizeof(t->seen_cn), "%s", p != NULL ? p->subject_cn : "");
	httpd_reply_json(req, 200,
	                 json_pack("{s:s,s:s,s:s,s:b}", "hello", "world", "cn",
	                           p != NULL ? p->subject_cn : "", "rid", httpd_req_id(req),
	                           "nodelay", nodelay));
}

static void h_files(struct httpd_req *req, void *arg)
{
	httpd_reply_json(req, 200, json_pack("{s:s}", "tail", httpd_req_tail(req)));
}

static void h_echo(struct httpd_req *req, void *arg)
{
	struct echo_body *b = httpd_req_body(req);

	httpd_reply_json(req, 200, json_pack("{s:s,s:I}", "name", b->name, "n", (json_int_t)b->n));
}

static void to_hex(const unsigned char *b, size_t n, char *hex)
{
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", b[i]);
}

static void h_export(struct httpd_req *req, void *arg)
{
	struct fx *t = arg;
	unsigned char a[32], b[32];

	t->export_rc = httpd_req_tls_export(req, "EXPORTER-opendm-test", a, sizeof(a)) |
	               httpd_req_tls_export(req, "EXPORTER-opendm-other", b, sizeof(b));
	to_hex(a, sizeof(a), t->srv_export);
	to_hex(b, sizeof(b), t->srv_export_other);
	httpd_reply_json(req, 200, json_object());
}

static void h_nobody(struct httpd_req *req, void *arg)
{
	httpd_reply_json(req, 200, json_object());
}

struct strm {
	struct fx *t;
	struct httpd_req *req;
	uint64_t off, total;
};

static int s_fill(struct evbuffer *out, size_t want, void *arg)
{
	struct strm *s = arg;
	struct fx *t = s->t;
	struct evhttp_connection *evcon = evhttp_request_get_connection(httpd_req_ev(s->req));
	unsigned char tmp[65536];
	size_t q = 0, n, i;

	if (evcon != NULL)
		q = evbuffer_get_length(
		    bufferevent_get_output(evhttp_connection_get_bufferevent(evcon)));
	if (q > t->max_queued)
		t->max_queued = q;
	if (q + want > t->max_commit)
		t->max_commit = q + want;
	t->fills++;
	if (want > sizeof(tmp)) {
		t->fill_oversize++;
		want = sizeof(tmp);
	}
	n = s->total - s->off < want ? (size_t)(s->total - s->off) : want;
	for (i = 0; i < n; i++)
		tmp[i] = (unsigned char)((s->off + i) % 251);
	evbuffer_add(out, tmp, n);
	s->off += n;
	return s->off < s->total;
}

static void s_done(void *arg, int ok)
{
	struct strm *s = arg;

	s->t->stream_done++;
	s->t->stream_ok += ok;
	free(s);
}

static void stream_start(struct httpd_req *req, struct fx *t, int with_length)
{
	struct strm *s = calloc(1, sizeof(*s));

	s->t = t;
	s->req = req;
	s->total = t->stream_len;
	if (httpd_reply_stream(req, 200, with_length ? (int64_t)s->total : -1, s_fill, s_done, s) ==
	    -1) {
		free(s);
		httpd_reply_error(req, 500, "internal_error", "stream");
	}
}

static void h_stream(struct httpd_req *req, void *arg)
{
	stream_start(req, arg, 0);
}

static void h_stream_cl(struct httpd_req *req, void *arg)
{
	stream_start(req, arg, 1);
}

struct async {
	struct fx *t;
	struct httpd_req *req;
	struct event *tm;
};

static void a_timer(evutil_socket_t fd, short what, void *arg)
{
	struct async *a = arg;

	a->t->async_replies++;
	httpd_reply_json(a->req, 200, json_pack("{s:b}", "async", 1));
	event_free(a->tm);
	free(a);
}

static void a_abort(void *arg)
{
	struct async *a = arg;

	a->t->aborts++;
	event_free(a->tm);
	free(a);
}

static void shutdown_done(void *arg)
{
	struct fx *t = arg;

	t->shutdown_done++;
	t->shutdown_inflight = httpd_inflight(t->h);
	t->shutdown_after_reply = t->async_replies > 0;
}

static void h_async(struct httpd_req *req, void *arg)
{
	struct fx *t = arg;
	struct async *a = calloc(1, sizeof(*a));
	struct timeval tv = {t->slow_ms / 1000, (t->slow_ms % 1000) * 1000};

	a->t = t;
	a->req = req;
	a->tm = evtimer_new(t->base, a_timer, a);
	evtimer_add(a->tm, &tv);
	httpd_req_set_abort_cb(req, a_abort, a);
	if (t->shutdown_on_slow)
		httpd_shutdown(t->h, shutdown_done, t);
}

static const struct httpd_route routes[] = {
    {EVHTTP_REQ_GET, "/v1/hello", h_hello, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/files/*", h_files, NULL, 0},
    {EVHTTP_REQ_POST, "/v1/echo", h_echo, echo_fields, sizeof(struct echo_body)},
    {EVHTTP_REQ_POST, "/v1/nobody", h_nobody, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/stream", h_stream, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/stream-cl", h_stream_cl, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/async", h_async, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/export", h_export, NULL, 0},
    {0, NULL, NULL, NULL, 0},
};

/* ---- blocking client (client thread only: no cmocka calls) ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cli_open(struct fx *t, struct cli *c)
{
	struct sockaddr_in sa;
	struct timeval tv = {5, 0};

	memset(c, 0, sizeof(*c));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)t->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		goto fail;
	if ((c->ssl = SSL_new(t->cctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
	    SSL_connect(c->ssl) != 1)
		goto fail;
	return 0;
fail:
	SSL_free(c->ssl);
	close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
	return -1;
}

static void cli_close(struct cli *c)
{
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->fd != -1)
		close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
}

static int cli_send(struct cli *c, const char *s)
{
	size_t len = strlen(s), off = 0;
	int n;

	while (off < len) {
		if ((n = SSL_write(c->ssl, s + off, (int)(len - off))) <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

static char *find(char *buf, size_t len, const char *pat)
{
	size_t n = strlen(pat), i;

	for (i = 0; i + n <= len; i++)
		if (memcmp(buf + i, pat, n) == 0)
			return buf + i;
	return NULL;
}

static int cli_fill(struct cli *c)
{
	int n;

	if (c->have == sizeof(c->buf))
		return -1;
	if ((n = SSL_read(c->ssl, c->buf + c->have, (int)(sizeof(c->buf) - c->have))) <= 0)
		return -1;
	c->have += (size_t)n;
	return n;
}

static void cli_consume(struct cli *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->have - n);
	c->have -= n;
}

static int cli_line(struct cli *c, char *line, size_t len)
{
	char *p;
	size_t n;

	while ((p = find(c->buf, c->have, "\r\n")) == NULL)
		if (cli_fill(c) == -1)
			return -1;
	n = (size_t)(p - c->buf);
	if (n >= len)
		return -1;
	memcpy(line, c->buf, n);
	line[n] = '\0';
	cli_consume(c, n + 2);
	return 0;
}

static void resp_add(struct resp *r, const char *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)d[i] != (r->total + i) % 251)
			r->pattern_bad = 1;
	if (r->len + n < sizeof(r->body)) {
		memcpy(r->body + r->len, d, n);
		r->len += n;
		r->body[r->len] = '\0';
	}
	r->total += n;
}

static int cli_body(struct cli *c, struct resp *r, uint64_t n)
{
	size_t k;

	while (n > 0) {
		if (c->have == 0 && cli_fill(c) == -1)
			return -1;
		k = c->have < n ? c->have : (size_t)n;
		resp_add(r, c->buf, k);
		cli_consume(c, k);
		n -= k;
		if (r->stop_at != 0 && r->total >= r->stop_at)
			return -2;
	}
	return 0;
}

/* Case-insensitive header lookup in a stored response head. */
static int resp_header(const struct resp *r, const char *name, char *out, size_t len)
{
	const char *p = r->head;
	size_t n = strlen(name);

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *e;

			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			if (e == NULL || (size_t)(e - v) >= len)
				return -1;
			memcpy(out, v, (size_t)(e - v));
			out[e - v] = '\0';
			return 0;
		}
	}
	return -1;
}

static int cli_resp(struct cli *c, struct resp *r, int head_only)
{
	char v[64], line[64], *p;
	uint64_t stop = r->stop_at;
	size_t n;
	long sz;
	int rc;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	r->stop_at = stop;
	while ((p = find(c->buf, c->have, "\r\n\r\n")) == NULL)
		if (cli_fill(c) == -1)
			return -1;
	n = (size_t)(p - c->buf) + 4;
	if (n >= sizeof(r->head))
		return -1;
	memcpy(r->head, c->buf, n);
	r->head[n] = '\0';
	cli_consume(c, n);
	if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
		return -1;
	if (head_only)
		return 0;
	if (resp_header(r, "Transfer-Encoding", v, sizeof(v)) == 0 &&
	    strcasecmp(v, "chunked") == 0) {
		for (;;) {
			if (cli_line(c, line, sizeof(line)) == -1)
				return -1;
			if ((sz = strtol(line, NULL, 16)) == 0)
				return cli_line(c, line, sizeof(line));
			if ((rc = cli_body(c, r, (uint64_t)sz)) != 0)
				return rc;
			if (cli_line(c, line, sizeof(line)) == -1 || line[0] != '\0')
				return -1;
		}
	}
	if (resp_header(r, "Content-Length", v, sizeof(v)) == 0)
		return cli_body(c, r, strtoull(v, NULL, 10));
	return -1;
}

/* One request, one response; records into t->r[i] / t->ok[i]. */
static void cli_do(struct fx *t, struct cli *c, int i, const char *req)
{
	int head = strncmp(req, "HEAD ", 5) == 0;

	t->ok[i] = cli_send(c, req) == 0 && cli_resp(c, &t->r[i], head) == 0;
}

/* ---- harness ---- */

struct run {
	struct fx *t;
	void (*fn)(struct fx *);
};

static void *run_thread(void *arg)
{
	struct run *r = arg;

	r->fn(r->t);
	atomic_store(&r->t->client_done, 1);
	return NULL;
}

/* Run the loop in slices until cond holds or ms pass; returns cond. */
static int loop_until(struct fx *t, int (*cond)(struct fx *), int ms)
{
	double end = now_s() + ms / 1000.0;
	struct timeval tv = {0, 10000};

	while (!cond(t) && now_s() < end) {
		event_base_loopexit(t->base, &tv);
		event_base_dispatch(t->base);
	}
	return cond(t);
}

static int cond_client(struct fx *t)
{
	return atomic_load(&t->client_done);
}

static void run_client(struct fx *t, void (*fn)(struct fx *))
{
	struct run r = {t, fn};
	pthread_t th;

	atomic_store(&t->client_done, 0);
	assert_int_equal(pthread_create(&th, NULL, run_thread, &r), 0);
	loop_until(t, cond_client, 60000);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(atomic_load(&t->client_done));
}

static struct httpd_conf conf_default(void)
{
	struct httpd_conf c = {
	    .address = "127.0.0.1",
	    .port = 0,
	    .max_body_bytes = 4096,
	    .max_header_bytes = 8192,
	    .max_connections = 16,
	    .idle_timeout_s = 30,
	};
	return c;
}

static void start(struct fx *t, const struct httpd_conf *c)
{
	char err[256] = "";

	t->h = httpd_new(t->base, c, t->sctx, routes, t, err, sizeof(err));
	if (t->h == NULL)
		fail_msg("httpd_new: %s", err);
	t->port = httpd_port(t->h);
	assert_true(t->port > 0);
}

/* ---- fixture ---- */

static X509 *issue(enum pki_profile profile, const char *cn, EVP_PKEY *key, X509 *ca,
                   EVP_PKEY *cakey)
{
	static const char *const ips[] = {"127.0.0.1", NULL};
	struct pki_issue req = {.profile = profile, .subject = {.cn = cn}, .days = 2};
	char err[256] = "";
	X509 *x;

	if (profile == PKI_PROFILE_SERVER)
		req.ips = ips;
	if ((x = pki_issue(&req, key, ca, cakey, err, sizeof(err))) == NULL)
		fail_msg("pki_issue %s: %s", cn, err);
	return x;
}

static int group_setup(void **state)
{
	struct fx *t = calloc(1, sizeof(*t));
	const char *base = getenv("ODM_TEST_TMP");
	EVP_PKEY *rk, *sk, *ck;
	X509 *root, *srv, *cli;
	char err[512] = "";
	struct tls_conf sc, cc;

	assert_non_null(t);
	if (base == NULL)
		base = "/tmp";
	mkdir(base, 0700);
	snprintf(t->dir, sizeof(t->dir), "%s/httpd.XXXXXX", base);
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->ca, sizeof(t->ca), "%s/ca.crt", t->dir);
	snprintf(t->srv_crt, sizeof(t->srv_crt), "%s/srv.crt", t->dir);
	snprintf(t->srv_key, sizeof(t->srv_key), "%s/srv.key", t->dir);
	snprintf(t->cli_crt, sizeof(t->cli_crt), "%s/cli.crt", t->dir);
	snprintf(t->cli_key, sizeof(t->cli_key), "%s/cli.key", t->dir);

	assert_non_null(rk = pki_key_new());
	assert_non_null(sk = pki_key_new());
	assert_non_null(ck = pki_key_new());
	root = issue(PKI_PROFILE_ROOT, "test root", rk, NULL, rk);
	srv = issue(PKI_PROFILE_SERVER, "localhost", sk, root, rk);
	cli = issue(PKI_PROFILE_CLIENT, "client-1", ck, root, rk);
	if (pki_certs_write(t->ca, &root, 1, err, sizeof(err)) == -1 ||
	    pki_certs_write(t->srv_crt, &srv, 1, err, sizeof(err)) == -1 ||
	    pki_certs_write(t->cli_crt, &cli, 1, err, sizeof(err)) == -1 ||
	    pki_key_write(t->srv_key, sk, err, sizeof(err)) == -1 ||
	    pki_key_write(t->cli_key, ck, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	X509_free(root);
	X509_free(srv);
	X509_free(cli);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(sk);
	EVP_PKEY_free(ck);

	sc = (struct tls_conf){.cert = t->srv_crt, .key = t->srv_key, .ca = t->ca};
	cc = (struct tls_conf){.cert = t->cli_crt, .key = t->cli_key, .ca = t->ca};
	if ((t->sctx = tls_server_ctx(&sc, err, sizeof(err))) == NULL)
		fail_msg("tls_server_ctx: %s", err);
	if ((t->cctx = tls_client_ctx(&cc, err, sizeof(err))) == NULL)
		fail_msg("tls_client_ctx: %s", err);
	*state = t;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *t = *state;
	const char *names[] = {t->ca, t->srv_crt, t->srv_key, t->cli_crt, t->cli_key};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(names[i]);
	rmdir(t->dir);
	SSL_CTX_free(t->sctx);
	SSL_CTX_free(t->cctx);
	free(t);
	return 0;
}

static int setup(void **state)
{
	struct fx *t = *state;
	SSL_CTX *s = t->sctx, *c = t->cctx;
	char dir[200], ca[256], sc[256], sk[256], cc[256], ck[256];

	/* keep the PKI, reset everything else */
	memcpy(dir, t->dir, sizeof(dir));
	memcpy(ca, t->ca, sizeof(ca));
	memcpy(sc, t->srv_crt, sizeof(sc));
	memcpy(sk, t->srv_key, sizeof(sk));
	memcpy(cc, t->cli_crt, sizeof(cc));
	memcpy(ck, t->cli_key, sizeof(ck));
	memset(t, 0, sizeof(*t));
	memcpy(t->dir, dir, sizeof(dir));
	memcpy(t->ca, ca, sizeof(ca));
	memcpy(t->srv_crt, sc, sizeof(sc));
	memcpy(t->srv_key, sk, sizeof(sk));
	memcpy(t->cli_crt, cc, sizeof(cc));
	memcpy(t->cli_key, ck, sizeof(ck));
	t->sctx = s;
	t->cctx = c;
	assert_non_null(t->base = event_base_new());
	return 0;
}

static int teardown(void **state)
{
	struct fx *t = *state;

	httpd_free(t->h);
	t->h = NULL;
	/* runs the finalizers of the freed bufferevents (and so frees their SSLs) */
	event_base_free(t->base);
	t->base = NULL;
	return 0;
}

static json_t *body_json(const struct resp *r)
{
	json_t *j = json_loadb(r->body, r->len, 0, NULL);

	if (j == NULL)
		fail_msg("not JSON: %.*s", (int)r->len, r->body);
	return j;
}

static void assert_error(const struct resp *r, int status, const char *code)
{
	json_t *j;
	const char *c = NULL, *m = NULL;
	char v[128];

	assert_int_equal(r->status, status);
	assert_int_equal(resp_header(r, "Content-Type", v, sizeof(v)), 0);
	assert_string_equal(v, "application/json");
	j = body_json(r);
	assert_int_equal(json_unpack(j, "{s:{s:s,s:s}}", "error", "code", &c, "message", &m), 0);
	assert_string_equal(c, code);
	json_decref(j);
}

/* ---- tests ---- */

static void c_basic(struct fx *t)
{
	struct cli c;
	int i = 0;

	if (cli_open(t, &c) == -1)
		return;
	cli_do(t, &c, i++, "GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n");
	cli_do(t, &c, i++,
	       "GET /v1/hello HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc.DEF_1-2\r\n\r\n");
	cli_do(t, &c, i++, "GET /v1/hello HTTP/1.1\r\nHost: x\r\nX-Request-Id: bad/id\r\n\r\n");
	cli_do(t, &c, i++, "HEAD /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n");
	cli_do(t, &c, i++, "GET /v1/files/a/b.txt HTTP/1.1\r\nHost: x\r\n\r\n");
	cli_do(t, &c, i++, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
	cli_do(t, &c, i++, "DELETE /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n");
	cli_do(t, &c, i++,
	       "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	       "Content-Length: 21\r\n\r\n{\"name\":\"bob\",\"n\":42}");
	cli_do(t, &c, i++,
	       "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	       "Content-Length: 10\r\n\r\n{\"name\":\"b");
	cli_do(t, &c, i++,
	       "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	       "Content-Length: 26\r\n\r\n{\"name\":\"bob\",\"evil\":true}");
	cli_do(t, &c, i++,
	       "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
	       "Content-Length: 14\r\n\r\n{\"name\":\"bob\"}");
	cli_do(t, &c, i++,
	       "POST /v1/nobody HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	       "Content-Length: 2\r\n\r\n{}");
	cli_do(
	    t, &c, i++,
	    "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json; charset=utf-8\r\n"
	    "Content-Length: 9\r\n\r\n{\"n\":\"x\"}");
	cli_do(t, &c, i++, "POST /v1/nobody HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
	cli_close(&c);
}

static void test_basic(void **state)
{
	struct fx *t = *state;
	struct httpd_conf c = conf_default();
	const char *s = NULL;
	char v[128], rid0[128];
	json_t *j;
	int i, b = 0;

	start(t, &c);
	run_client(t, c_basic);
	for (i = 0; i < 14; i++)
		if (!t->ok[i])
			fail_msg("request %d failed", i);

	/* 200 JSON with the standard headers, generated request id, peer CN, NODELAY */
	assert_int_equal(t->r[0].status, 200);
	assert_int_equal(resp_header(&t->r[0], "Content-Type", v, sizeof(v)), 0);
	assert_string_equal(v, "application/json");
	assert_int_equal(resp_header(&t->r[0], "Cache-Control", v, sizeof(v)), 0);
	assert_string_equal(v, "no-store");
	assert_int_equal(resp_header(&t->r[0], "X-Content-Type-Options", v, sizeof(v)), 0);
	assert_string_equal(v, "nosniff");
	assert_int_equal(resp_header(&t->r[0], "Content-Length", v, sizeof(v)), 0);
	assert_int_equal(resp_header(&t->r[0], "X-Request-Id", rid0, sizeof(rid0)), 0);
	assert_int_equal(strlen(rid0), 16);
	j = body_json(&t->r[0]);
	assert_int_equal(json_unpack(j, "{s:s,s:b}", "cn", &s, "nodelay", &b), 0);
	assert_string_equal(s, "client-1");
	assert_true(b);
	json_decref(j);
	assert_string_equal(t->seen_cn, "client-1");

	/* a valid client request id is kept, an invalid one replaced */
	assert_int_equal(resp_header(&t->r[1], "X-Request-Id", v, sizeof(v)), 0);
	assert_string_equal(v, "abc.DEF_1-2");
	assert_int_equal(resp_header(&t->r[2], "X-Request-Id", v, sizeof(v)), 0);
	assert_int_equal(strlen(v), 16);
	assert_string_not_equal(v, rid0);

	/* HEAD: length of the GET body, no body (the next response parses) */
	assert_int_equal(t->r[3].status, 200);
	assert_int_equal(resp_header(&t->r[3], "Content-Length", v, sizeof(v)), 0);
	assert_true(atoi(v) > 10);

	/* prefix route tail */
	j = body_json(&t->r[4]);
	assert_int_equal(json_unpack(j, "{s:s}", "tail", &s), 0);
	assert_string_equal(s, "a/b.txt");
	json_decref(j);

	assert_error(&t->r[5], 404, "not_found");
	assert_error(&t->r[6], 405, "method_not_allowed");
	assert_int_equal(resp_header(&t->r[6], "Allow", v, sizeof(v)), 0);
	assert_string_equal(v, "GET, HEAD");

	/* schema body decoded */
	assert_int_equal(t->r[7].status, 200);
	j = body_json(&t->r[7]);
	assert_int_equal(json_unpack(j, "{s:s,s:i}", "name", &s, "n", &b), 0);
	assert_string_equal(s, "bob");
	assert_int_equal(b, 42);
	json_decref(j);

	assert_error(&t->r[8], 400, "bad_json");
	assert_error(&t->r[9], 400, "bad_request");
	assert_non_null(strstr(t->r[9].body, "evil"));
	assert_error(&t->r[10], 415, "unsupported_media_type");
	assert_error(&t->r[11], 400, "bad_request");
	assert_error(&t->r[12], 400, "bad_request");
	assert_int_equal(t->r[13].status, 200);

	assert_int_equal(httpd_inflight(t->h), 0);
}

static void c_export(struct fx *t)
{
	unsigned char k[32];
	struct cli c;

	if (cli_open(t, &c) == -1)
		return;
	if (SSL_export_keying_material(c.ssl, k, sizeof(k), "EXPORTER-opendm-test", 20, NULL, 0,
	                               0) == 1)
		to_hex(k, sizeof(k), t->cli_export);
	cli_do(t, &c, 0, "GET /v1/export HTTP/1.1\r\nHost: x\r\n\r\n");
	cli_close(&c);
}

/* Both ends of one session agree on the exporter (what binds a pairing PIN to it); another
 * label gives other bytes. */
static void test_tls_export(void **state)
{
	struct fx *t = *state;
	struct httpd_conf c = conf_default();

	start(t, &c);
	run_client(t, c_export);
	assert_true(t->ok[0]);
	assert_int_equal(t->r[0].status, 200);
	assert_int_equal(t->export_rc, 0);
	assert_int_equal(strlen(t->cli_export), 64);
	assert_string_equal(t->srv_export, t->cli_export);
	assert_string_not_equal(t->srv_export_other, t->cli_export);
	assert_int_equal(httpd_req_tls_export(NULL, "x", (unsigned char *)t->cli_export, 1), -1);
}

static void c_limits(struct fx *t)
{
	char big[20000 + 64];
	struct cli c;

	/* headers only, announcing a body over the limit; the body is never sent */
	if (cli_open(t, &c) == 0) {
		cli_do(t, &c, 0,
		       "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		       "Content-Length: 100000000\r\n\r\n");
		cli_close(&c);
	}
	if (cli_open(t, &c) == 0) {
		snprintf(big, sizeof(big),
		         "GET /v1/hello HTTP/1.1\r\nHost: x\r\nX-Big: %0*d\r\n\r\n", 20000, 7);
		cli_do(t, &c, 1, big);
		cli_close(&c);
	}
	/* a body just under the limit still works */
	if (cli_open(t, &c) == 0) {
		snprintf(big, sizeof(big),
		         "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		         "Content-Length: 4096\r\n\r\n{\"name\":\"bob\"%*s}",
		         4096 - 14, "");
		cli_do(t, &c, 2, big);
		cli_close(&c);
	}
}

static void test_limits(void **state)
{
	struct fx *t = *state;
	struct httpd_conf c = conf_default();

	start(t, &c);
	run_client(t, c_limits);
	assert_true(t->ok[0]);
	assert_int_equal(t->r[0].status, 413);
	assert_true(t->ok[1]);
	assert_int_equal(t->r[1].status, 400);
	assert_true(t->ok[2]);
	assert_int_equal(t->r[2].status, 200);
}

static void c_stream(struct fx *t)
{
	struct cli c;

	if (cli_open(t, &c) == -1)
		return;
	cli_do(t, &c, 0, "GET /v1/stream HTTP/1.1\r\nHost: x\r\n\r\n");
	cli_do(t, &c, 1, "GET /v1/stream-cl HTTP/1.1\r\nHost: x\r\n\r\n");
	cli_close(&c);
}

static int cond_two_streams(struct fx *t)
{
	return t->stream_done == 2;
}

static void test_stream(void **state)
{
	struct fx *t = *state;
	struct httpd_conf c = conf_default();
	char v[64];

	t->stream_len = 20 * 1024 * 1024 + 13;
	start(t, &c);
	run_client(t, c_stream);
	assert_true(t->ok[0]);
	assert_int_equal(t->r[0].status, 200);
	assert_int_equal(resp_header(&t->r[0], "Transfer-Encoding", v, sizeof(v)), 0);
	assert_string_equal(v, "chunked");
	assert_true(t->r[0].total == t->stream_len);
	assert_false(t->r[0].pattern_bad);

	assert_true(t->ok[1]);
	assert_int_equal(resp_header(&t->r[1], "Content-Length", v, sizeof(v)), 0);
	assert_true(strtoull(v, NULL, 10) == t->stream_len);
	assert_int_not_equal(resp_header(&t->r[1], "Transfer-Encoding", v, sizeof(v)), 0);
	assert_true(t->r[1].total == t->stream_len);
	assert_false(t->r[1].pattern_bad);

	/* memory stayed bounded: fill() was only asked while under the cap */
	assert_true(loop_until(t, cond_two_streams, 2000));
	assert_int_equal(t->stream_done, 2);
	assert_int_equal(t->stream_ok, 2);
	assert_true(t->fills > 2 * t->stream_len / STREAM_CAP);
	assert_true(t->max_queued <= STREAM_CAP);
	assert_true(t->max_commit <= STREAM_CAP);
	assert_int_equal(t->fill_oversize, 0);
	assert_int_equal(httpd_inflight(t->h), 0);
}

static void c_stream_abort(struct fx *t)
{
	struct cli c;

	if (cli_open(t, &c) == -1)
		return;
	t->r[0].stop_at = 1024 * 1024;
	cli_send(&c, "GET /v1/stream HTTP/1.1\r\nHost: x\r\n\r\n");
	t->ok[0] = cli_resp(&c, &t->r[0], 0) == -2;
	/* vanish without close_notify */
	close(c.fd);
	c.fd = -1;
	cli_close(&c);
}

static int cond_stream_done(struct fx *t)
{
	return t->stream_done > 0 && httpd_inflight(t->h) == 0;
}

static void test_stream_abort(void **state)
{
	struct fx *t = *state;
	struct httpd_conf c = conf_default();

	t->stream_len = 200 * 1024 * 1024;
	start(t, &c);
	run_client(t, c_stream_abort);
	assert_true(t->ok[0]);
	assert_true(loop_until(t, cond_stream_done, 10000));
	assert_int_equal(t->stream_done, 1);
	assert_int_equal(t->stream_ok, 0);
	assert_true(t->fills < 200);
}

static void c_async(struct fx *t)
{
	struct cli c;
	double t0;

	if (cli_open(t, &c) == -1)
		return;
	t0 = now_s();
	cli_do(t, &c, 0, "GET /v1/async HTTP/1.1\r\nHost: x\r\n\r\n");
	t->elapsed = now_s() - t0;
	cli_do(t, &c, 1, "GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n");
	cli_close(&c);
}

static void test_async(void **state)
{
	struct fx *t = *state;
	struct httpd_conf c = conf_default();

	t->slow_ms = 150;
	start(t, &c);
	run_client(t, c_async);
	assert_true(t->ok[0]);
	assert_int_equal(t->r[0].status, 200);
	assert_non_null(strstr(t->r[0].body, "\"async\":true"));
	assert_true(t->elapsed >= 0.14);
	assert_true(t->ok[1]);
	assert_int_equal(t->r[1].status, 200);
	assert_int_equal(t->async_replies, 1);
	assert_int_equal(t->aborts, 0);
}

static void c_async_abort(struct fx *t)
{
	struct cli c;

	if (cli_open(t, &c) == -1)
		return;
	t->ok[0] = cli_send(&c, "GET /v1/async HTTP/1.1\r\nHost: x\r\n\r\n") == 0;
	usleep(200 * 1000);
	cli_close(&c);
}

static int cond_aborted(struct fx *t)
{
	return t->aborts > 0 && httpd_inflight(t->h) == 0;
}

static void test_async_abort(void **state)
{
	struct fx *t = *state;
	struct httpd_conf c = conf_default();

	t->slow_ms = 2000;
	start(t, &c);
	run_client(t, c_async_abort);
	assert_true(t->ok[0]);
	assert_true(loop_until(t, cond_aborted, 1500));
	assert_int_equal(t->aborts, 1);
	assert_int_equal(t->async_replies, 0);
	assert_int_equal(httpd_inflight(t->h), 0);
}

static void c_connlimit(struct fx *t)
{
	struct cli a, b, c, d;

	t->ok[0] = cli_open(t, &a) == 0;
	t->ok[1] = cli_open(t, &b) == 0;
	if (t->ok[0])
		cli_do(t, &a, 2, "GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n");
	if (t->ok[1])
		cli_do(t, &b, 3, "GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n");
	/* the third: a refused handshake, or (at worst) a dead connection */
	t->ok[4] = cli_open(t, &c) == 0;
	if (t->ok[4]) {
		cli_do(t, &c, 5, "GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n");
		cli_close(&c);
	}
	cli_close(&a);
	usleep(300 * 1000);
	t->ok[6] = cli_open(t, &d) == 0;
	if (t->ok[6]) {
		cli_do(t, &d, 7, "GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n");
		cli_close(&d);
	}
	cli_close(&b);
}

static void test_connlimit(void **state)
{
	struct fx *t = *state;
	struct httpd_conf c = conf_default();

	c.max_connections = 2;
	start(t, &c);
	run_client(t, c_connlimit);
	assert_true(t->ok[0] && t->ok[1] && t->ok[2] && t->ok[3]);
	assert_int_equal(t->r[2].status, 200);
	assert_int_equal(t->r[3].status, 200);
	assert_false(t->ok[4]);
	assert_true(t->ok[6] && t->ok[7]);
	assert_int_equal(t->r[7].status, 200);
}

static void c_idle(struct fx *t)
{
	struct cli c;
	double t0;
	char b;

	if (cli_open(t, &c) == -1)
		return;
	cli_do(t, &c, 0, "GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n");
	t0 = now_s();
	/* blocks until the server closes (or SO_RCVTIMEO, 5 s) */
	t->ok[1] = SSL_read(c.ssl, &b, 1) <= 0;
	t->elapsed = now_s() - t0;
	cli_close(&c);
}

static void test_idle_timeout(void **state)
{
	struct fx *t = *state;
	struct httpd_conf c = conf_default();

	c.idle_timeout_s = 1;
	start(t, &c);
	run_client(t, c_idle);
	assert_true(t->ok[0]);
	assert_int_equal(t->r[0].status, 200);
	assert_true(t->ok[1]);
	assert_true(t->elapsed > 0.5 && t->elapsed < 3.0);
}

static void c_shutdown(struct fx *t)
{
	struct cli a, b, c;

	if (cli_open(t, &a) == -1 || cli_open(t, &b) == -1)
		return;
	cli_do(t, &b, 0, "GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n");
	t->ok[1] = cli_send(&a, "GET /v1/async HTTP/1.1\r\nHost: x\r\n\r\n") == 0;
	usleep(100 * 1000);
	/* the server is now stopping: a new request on an open connection gets 503 */
	cli_do(t, &b, 2, "GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n");
	/* and a new connection is refused */
	t->ok[3] = cli_open(t, &c) == -1;
	if (!t->ok[3])
		cli_close(&c);
	/* the request in flight still completes */
	t->ok[4] = cli_resp(&a, &t->r[4], 0) == 0;
	cli_close(&a);
	cli_close(&b);
}

static int cond_shutdown(struct fx *t)
{
	return t->shutdown_done > 0;
}

static void test_shutdown(void **state)
{
	struct fx *t = *state;
	struct httpd_conf c = conf_default();
	char v[64];

	t->slow_ms = 400;
	t->shutdown_on_slow = 1;
	start(t, &c);
	run_client(t, c_shutdown);
	assert_true(t->ok[0] && t->ok[1] && t->ok[2]);
	assert_int_equal(t->r[0].status, 200);
	assert_error(&t->r[2], 503, "shutting_down");
	assert_int_equal(resp_header(&t->r[2], "Connection", v, sizeof(v)), 0);
	assert_string_equal(v, "close");
	assert_true(t->ok[3]);
	assert_true(t->ok[4]);
	assert_int_equal(t->r[4].status, 200);
	assert_true(loop_until(t, cond_shutdown, 2000));
	assert_int_equal(t->shutdown_done, 1);
	assert_int_equal(t->shutdown_inflight, 0);
	assert_true(t->shutdown_after_reply);
}

static void c_reload(struct fx *t)
{
	struct cli c;

	if (cli_open(t, &c) == -1)
		return;
	cli_do(t, &c, 0, "GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n");
	cli_do(t, &c, 1,
	       "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	       "Content-Length: 21\r\n\r\n{\"name\":\"bob\",\"n\":42}");
	cli_close(&c);
}

static void test_reload(void **state)
{
	struct fx *t = *state;
	struct httpd_conf c = conf_default();
	struct tls_conf sc = {.cert = t->srv_crt, .key = t->srv_key, .ca = t->ca};
	SSL_CTX *ctx2;
	char err[256] = "";

	start(t, &c);
	if ((ctx2 = tls_server_ctx(&sc, err, sizeof(err))) == NULL)
		fail_msg("tls_server_ctx: %s", err);
	/* the httpd keeps its own reference */
	httpd_set_ctx(t->h, ctx2);
	SSL_CTX_free(ctx2);
	c.max_body_bytes = 10;
	httpd_set_limits(t->h, &c);
	run_client(t, c_reload);
	assert_true(t->ok[0]);
	assert_int_equal(t->r[0].status, 200);
	assert_true(t->ok[1]);
	assert_int_equal(t->r[1].status, 413);
}

static void test_bind_error(void **state)
{
	struct fx *t = *state;
	struct httpd_conf c = conf_default();
	struct httpd *h2;
	char err[256] = "", want[64];

	start(t, &c);
	c.port = t->port;
	h2 = httpd_new(t->base, &c, t->sctx, routes, t, err, sizeof(err));
	assert_null(h2);
	snprintf(want, sizeof(want), "127.0.0.1:%d: ", t->port);
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, strerror(EADDRINUSE)));
	c.address = "not-an-address";
	assert_null(httpd_new(t->base, &c, t->sctx, routes, t, err, sizeof(err)));
	c.address = "127.0.0.1";
	c.max_connections = 0;
	assert_null(httpd_new(t->base, &c, t->sctx, routes, t, err, sizeof(err)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_export, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stream_abort, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_async, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_async_abort, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connlimit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bind_error, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	log_init("test_httpd", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
