/*
 * httpc against the project's own httpd, both on one event_base in this process: mutual
 * TLS round trips, request ids, connection reuse, trust and name failures, limits,
 * timeouts, concurrency and freeing with requests in flight.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <jansson.h>

#include "opendm/file.h"
#include "opendm/filesrv.h"
#include "opendm/httpc.h"
#include "opendm/httpd.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/tls.h"
#include "testutil.h"

#define NCONC   50
#define NHANG   5
#define BIGSIZE 5000
#define PKGSIZE (300 * 1000 + 7)
#define PKGETAG "\"pkg-v1\""

struct fx {
	char dir[PATH_MAX];
	char ca[PATH_MAX];
	char srv_cert[PATH_MAX], srv_key[PATH_MAX];
	char cli_cert[PATH_MAX], cli_key[PATH_MAX];
	char evil_cert[PATH_MAX], evil_key[PATH_MAX];   /* from a CA the client does not trust */
	char other_cert[PATH_MAX], other_key[PATH_MAX]; /* our CA, but named other.example */
	char loose_key[PATH_MAX];                       /* mode 0644 */
};

/* One test's world: a server, its base, and what handlers and callbacks saw. */
struct env {
	struct fx *fx;
	struct event_base *base;
	SSL_CTX *ctx;
	struct httpd *h;
	int port;
	struct httpd_req *hung[NHANG];
	int nhung;
	int ncb;
	struct httpc *c; /* for the callback that frees its client */
	int nranged;     /* /v1/pkg requests that carried a Range header */
};

struct result {
	int done;
	long status;
	char rid[65];
	char error[CURL_ERROR_SIZE];
	int has_error;
	int curl_code;
	json_t *json;
	size_t len;
	struct env *env;
};

struct post_body {
	char *msg;
	int64_t n;
};

static const struct schema_field post_fields[] = {
    {"msg", SCHEMA_STRING, offsetof(struct post_body, msg), 1, 0, 256, 0, NULL},
    {"n", SCHEMA_INT, offsetof(struct post_body, n), 1, 0, 1000000, 0, NULL},
    SCHEMA_END,
};

static void h_echo(struct httpd_req *req, void *arg)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(httpd_req_ev(req));
	const struct tls_peer *peer = httpd_req_peer(req);
	json_t *body = httpd_req_json(req);
	char *addr = NULL;
	uint16_t port = 0;

	evhttp_connection_get_peer(conn, &addr, &port);
	/* The client's source port identifies the TCP connection the request came on. */
	httpd_reply_json(
	    req, 200,
	    json_pack(
	        "{s:s, s:s, s:i, s:O?, s:s}", "rid", httpd_req_id(req), "cn",
	        peer != NULL ? peer->subject_cn : "", "port", (int)port, "echo", body, "method",
	        evhttp_request_get_command(httpd_req_ev(req)) == EVHTTP_REQ_POST ? "POST" : "GET"));
}

static void h_big(struct httpd_req *req, void *arg)
{
	char *pad = malloc(BIGSIZE + 1);

	assert_non_null(pad);
	memset(pad, 'x', BIGSIZE);
	pad[BIGSIZE] = '\0';
	httpd_reply_json(req, 200, json_pack("{s:s}", "pad", pad));
	free(pad);
}

static int fill_big(struct evbuffer *out, size_t want, void *arg)
{
	size_t *left = arg, n = want < *left ? want : *left;
	char chunk[1024];

	if (n > sizeof(chunk))
		n = sizeof(chunk);
	memset(chunk, 'y', n);
	if (evbuffer_add(out, chunk, n) == -1)
		return -1;
	*left -= n;
	return *left > 0 ? 1 : 0;
}

static void fill_done(void *arg, int ok)
{
	free(arg);
}

/* Chunked, no Content-Length: only the write callback can notice the size. */
static void h_bigstream(struct httpd_req *req, void *arg)
{
	size_t *left = malloc(sizeof(*left));

	assert_non_null(left);
	*left = BIGSIZE;
	httpd_add_header(req, "Content-Type", "application/json");
	if (httpd_reply_stream(req, 200, -1, fill_big, fill_done, left) == -1)
		free(left);
}

static void hung_abort(void *arg)
{
	struct httpd_req **slot = arg;

	*slot = NULL;
}

/* Never replies by itself: keeps requests in flight on the client. */
static void h_hang(struct httpd_req *req, void *arg)
{
	struct env *env = arg;

	assert_true(env->nhung < NHANG);
	env->hung[env->nhung] = req;
	httpd_req_set_abort_cb(req, hung_abort, &env->hung[env->nhung]);
	env->nhung++;
}

static void pkg_path(char *out, size_t len, const struct fx *fx)
{
	int n = snprintf(out, len, "%s/pkg.bin", fx->dir);

	assert_true(n > 0 && (size_t)n < len);
}

static void h_pkg(struct httpd_req *req, void *arg)
{
	struct env *env = arg;
	char path[PATH_MAX];

	if (evhttp_find_header(evhttp_request_get_input_headers(httpd_req_ev(req)), "Range") !=
	    NULL)
		env->nranged++;
	pkg_path(path, sizeof(path), env->fx);
	(void)filesrv_reply(req, path, PKGETAG, NULL);
}

static const struct httpd_route routes[] = {
    {EVHTTP_REQ_GET, "/v1/pkg", h_pkg, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/echo", h_echo, NULL, 0},
    {EVHTTP_REQ_POST, "/v1/echo", h_echo, post_fields, sizeof(struct post_body)},
    {EVHTTP_REQ_GET, "/v1/big", h_big, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/bigstream", h_bigstream, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/hang", h_hang, NULL, 0},
    {0, NULL, NULL, NULL, 0},
};

/*
 * A minimal HTTPS CONNECT proxy (the CPE relay's role): mutual TLS with the client, then
 * bytes spliced to the target, inside which the client runs its own TLS with the server.
 */
struct pconn {
	struct proxy *p;
	struct pconn *next;
	struct bufferevent *in, *out;
};

struct proxy {
	struct event_base *base;
	SSL_CTX *ctx;
	struct evconnlistener *l;
	int port;
	int nconnect;
	char target[128];
	char peer_cn[128];
	struct pconn *conns;
};

static void pconn_free(struct pconn *pc)
{
	struct pconn **pp;

	for (pp = &pc->p->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == pc) {
			*pp = pc->next;
			break;
		}
	if (pc->in != NULL)
		bufferevent_free(pc->in);
	if (pc->out != NULL)
		bufferevent_free(pc->out);
	free(pc);
}

static void p_splice(struct bufferevent *bev, void *arg)
{
	struct pconn *pc = arg;
	struct bufferevent *other = bev == pc->in ? pc->out : pc->in;

	evbuffer_add_buffer(bufferevent_get_output(other), bufferevent_get_input(bev));
}

static void p_event(struct bufferevent *bev, short what, void *arg)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	struct pconn *pc = arg;

	if (bev == pc->out && (what & BEV_EVENT_CONNECTED)) {
		bufferevent_write(pc->in, ok, sizeof(ok) - 1);
		bufferevent_setcb(pc->in, p_splice, NULL, p_event, pc);
		bufferevent_setcb(pc->out, p_splice, NULL, p_event, pc);
		bufferevent_enable(pc->out, EV_READ | EV_WRITE);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		pconn_free(pc);
}

static void p_head(struct bufferevent *bev, void *arg)
{
	struct pconn *pc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	struct sockaddr_in sin;
	struct tls_peer peer;
	char *line, *colon;

	if (end.pos < 0) {
		if (evbuffer_get_length(in) > 4096)
			pconn_free(pc);
		return;
	}
	line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
	assert_non_null(line);
	assert_int_equal(sscanf(line, "CONNECT %127s HTTP/1.1", pc->p->target), 1);
	free(line);
	/* The client sends nothing more until it has our 200. */
	evbuffer_drain(in, evbuffer_get_length(in));
	if (tls_peer_from_ssl(bufferevent_openssl_get_ssl(bev), &peer) == 0)
		snprintf(pc->p->peer_cn, sizeof(pc->p->peer_cn), "%s", peer.subject_cn);
	pc->p->nconnect++;
	assert_non_null(colon = strrchr(pc->p->target, ':'));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	pc->out = bufferevent_socket_new(pc->p->base, -1, BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(pc->out);
	bufferevent_setcb(pc->out, NULL, NULL, p_event, pc);
	bufferevent_setcb(pc->in, NULL, NULL, p_event, pc);
	assert_int_equal(bufferevent_socket_connect(pc->out, (struct sockaddr *)&sin, sizeof(sin)),
	                 0);
}

static void p_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                     void *arg)
{
	struct proxy *p = arg;
	struct pconn *pc = calloc(1, sizeof(*pc));
	SSL *ssl = SSL_new(p->ctx);

	assert_non_null(pc);
	assert_non_null(ssl);
	pc->p = p;
	pc->in = bufferevent_openssl_socket_new(p->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                        BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(pc->in);
	pc->next = p->conns;
	p->conns = pc;
	bufferevent_setcb(pc->in, p_head, NULL, p_event, pc);
	bufferevent_enable(pc->in, EV_READ | EV_WRITE);
}

static void proxy_start(struct proxy *p, struct event_base *base, SSL_CTX *ctx)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	memset(p, 0, sizeof(*p));
	p->base = base;
	p->ctx = ctx;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->l = evconnlistener_new_bind(base, p_accept, p, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
	                               16, (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(p->l);
	assert_int_equal(getsockname(evconnlistener_get_fd(p->l), (struct sockaddr *)&sin, &slen),
	                 0);
	p->port = ntohs(sin.sin_port);
}

static void proxy_stop(struct proxy *p)
{
	while (p->conns != NULL)
		pconn_free(p->conns);
	evconnlistener_free(p->l);
}

static void path_in(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	assert_true(n > 0 && n < PATH_MAX);
}

static X509 *make_root(const char *cn, EVP_PKEY **key)
{
	struct pki_issue req = {PKI_PROFILE_ROOT, {cn, NULL, NULL}, NULL, NULL, NULL, 0, 2};
	char err[256];
	X509 *cert;

	assert_non_null(*key = pki_key_new());
	cert = pki_issue(&req, *key, NULL, *key, err, sizeof(err));
	if (cert == NULL)
		fail_msg("pki_issue root: %s", err);
	return cert;
}

static int group_setup(void **state)
{
	static const char *const dns[] = {"localhost", NULL};
	static const char *const other[] = {"other.example", NULL};
	static const char *const ips[] = {"127.0.0.1", NULL};
	struct fx *fx;
	EVP_PKEY *ca_key, *evil_key;
	X509 *ca, *evil;
	char err[256];

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	log_init("test_httpc", LOG_LVL_ERR);
	assert_non_null(fx = calloc(1, sizeof(*fx)));
	assert_int_equal(tu_tmpdir(fx->dir, sizeof(fx->dir), "httpc"), 0);
	path_in(fx->ca, fx->dir, "ca.pem");
	path_in(fx->srv_cert, fx->dir, "server.pem");
	path_in(fx->srv_key, fx->dir, "server.key");
	path_in(fx->cli_cert, fx->dir, "client.pem");
	path_in(fx->cli_key, fx->dir, "client.key");
	path_in(fx->evil_cert, fx->dir, "evil.pem");
	path_in(fx->evil_key, fx->dir, "evil.key");
	path_in(fx->other_cert, fx->dir, "other.pem");
	path_in(fx->other_key, fx->dir, "other.key");
	path_in(fx->loose_key, fx->dir, "loose.key");

	ca = make_root("Test Root", &ca_key);
	evil = make_root("Evil Root", &evil_key);
	assert_int_equal(pki_certs_write(fx->ca, &ca, 1, err, sizeof(err)), 0);
	tu_make_leaf(fx->srv_cert, fx->srv_key, PKI_PROFILE_SERVER, "server", dns, ips, ca, ca_key);
	tu_make_leaf(fx->cli_cert, fx->cli_key, PKI_PROFILE_CLIENT, "device-1", NULL, NULL, ca,
	             ca_key);
	tu_make_leaf(fx->evil_cert, fx->evil_key, PKI_PROFILE_SERVER, "server", dns, ips, evil,
	             evil_key);
	tu_make_leaf(fx->other_cert, fx->other_key, PKI_PROFILE_SERVER, "other", other, NULL, ca,
	             ca_key);
	assert_int_equal(pki_key_write(fx->loose_key, ca_key, err, sizeof(err)), 0);
	assert_int_equal(chmod(fx->loose_key, 0644), 0);
	X509_free(ca);
	X509_free(evil);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(evil_key);
	*state = fx;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *fx = *state;
	const char *files[] = {fx->ca,        fx->srv_cert,  fx->srv_key,  fx->cli_cert,
	                       fx->cli_key,   fx->evil_cert, fx->evil_key, fx->other_cert,
	                       fx->other_key, fx->loose_key};
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		(void)unlink(files[i]);
	(void)rmdir(fx->dir);
	free(fx);
	curl_global_cleanup();
	return 0;
}

static void env_start(struct env *env, struct fx *fx, const char *cert, const char *key)
{
	struct tls_conf tc = {(char *)cert, (char *)key, fx->ca, NULL};
	struct httpd_conf hc = {"127.0.0.1", 0, 64 * 1024, 16 * 1024, 2 * NCONC, 30};
	char err[256];

	memset(env, 0, sizeof(*env));
	env->fx = fx;
	assert_non_null(env->base = event_base_new());
	if ((env->ctx = tls_server_ctx(&tc, err, sizeof(err))) == NULL)
		fail_msg("tls_server_ctx: %s", err);
	env->h = httpd_new(env->base, &hc, env->ctx, routes, env, err, sizeof(err));
	if (env->h == NULL)
		fail_msg("httpd_new: %s", err);
	env->port = httpd_port(env->h);
	assert_true(env->port > 0);
}

static void env_stop(struct env *env)
{
	httpd_free(env->h);
	SSL_CTX_free(env->ctx);
	event_base_free(env->base);
}

static void client_conf(struct httpc_conf *conf, struct fx *fx)
{
	memset(conf, 0, sizeof(*conf));
	conf->tls.cert = fx->cli_cert;
	conf->tls.key = fx->cli_key;
	conf->tls.ca = fx->ca;
	conf->timeout_ms = 10000;
}

static struct httpc *client_new(struct env *env, const struct httpc_conf *conf)
{
	char err[512];
	struct httpc *c = httpc_new(env->base, conf, err, sizeof(err));

	if (c == NULL)
		fail_msg("httpc_new: %s", err);
	return c;
}

static void url(char *buf, size_t len, int port, const char *path)
{
	int n = snprintf(buf, len, "https://127.0.0.1:%d%s", port, path);

	assert_true(n > 0 && (size_t)n < len);
}

static void on_result(struct httpc_resp *resp, void *arg)
{
	struct result *r = arg;

	assert_false(r->done);
	r->done = 1;
	r->env->ncb++;
	r->status = resp->status;
	r->curl_code = resp->curl_code;
	r->len = resp->len;
	assert_non_null(resp->body);
	assert_int_equal(resp->body[resp->len], '\0');
	snprintf(r->rid, sizeof(r->rid), "%s", resp->rid);
	r->has_error = resp->error != NULL;
	if (resp->error != NULL)
		snprintf(r->error, sizeof(r->error), "%s", resp->error);
	r->json = json_incref(resp->json);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Run the loop until *count reaches want or ms pass; returns 0 if reached. */
static int run_until(struct event_base *base, const int *count, int want, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	int expired = 0;
	struct event *t = evtimer_new(base, deadline_cb, &expired);

	assert_non_null(t);
	evtimer_add(t, &tv);
	while (*count < want && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return *count >= want ? 0 : -1;
}

static const char *jstr(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));

	assert_non_null(s);
	return s;
}

static void test_get_post_roundtrip(void **state)
{
	struct fx *fx = *state;
	struct env env;
	struct httpc_conf conf;
	struct httpc *c;
	struct httpc_resp *r;
	json_t *body;
	char u[128];

	env_start(&env, fx, fx->srv_cert, fx->srv_key);
	client_conf(&conf, fx);
	c = client_new(&env, &conf);
	url(u, sizeof(u), env.port, "/v1/echo");

	r = httpc_request_sync(c, "GET", u, "test-rid-0001", NULL);
	assert_non_null(r);
	if (r->error != NULL)
		fail_msg("GET: %s", r->error);
	assert_int_equal(r->status, 200);
	assert_non_null(r->json);
	assert_string_equal(jstr(r->json, "method"), "GET");
	/* The server saw our client certificate and our request id, and echoed the id. */
	assert_string_equal(jstr(r->json, "cn"), "device-1");
	assert_string_equal(jstr(r->json, "rid"), "test-rid-0001");
	assert_string_equal(r->rid, "test-rid-0001");
	assert_true(r->len > 0 && r->len == strlen(r->body));
	httpc_resp_free(r);

	body = json_pack("{s:s, s:i}", "msg", "hello \"world\"", "n", 42);
	r = httpc_request_sync(c, "POST", u, NULL, body);
	json_decref(body);
	assert_non_null(r);
	if (r->error != NULL)
		fail_msg("POST: %s", r->error);
	assert_int_equal(r->status, 200);
	assert_string_equal(jstr(r->json, "method"), "POST");
	assert_string_equal(jstr(json_object_get(r->json, "echo"), "msg"), "hello \"world\"");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r->json, "echo"), "n")),
	                 42);
	/* A generated id: 8 random bytes in hex, the same on both sides. */
	assert_int_equal(strlen(r->rid), 16);
	assert_int_equal(strspn(r->rid, "0123456789abcdef"), 16);
	assert_string_equal(jstr(r->json, "rid"), r->rid);
	httpc_resp_free(r);

	/* A body the route's schema refuses is an HTTP answer, not a transport error. */
	body = json_pack("{s:s}", "unknown", "x");
	r = httpc_request_sync(c, "POST", u, NULL, body);
	json_decref(body);
	assert_non_null(r);
	assert_null(r->error);
	assert_int_equal(r->status, 400);
	assert_non_null(json_object_get(r->json, "error"));
	httpc_resp_free(r);

	url(u, sizeof(u), env.port, "/v1/nothing-here");
	r = httpc_request_sync(c, "GET", u, NULL, NULL);
	assert_non_null(r);
	assert_null(r->error);
	assert_int_equal(r->status, 404);
	httpc_resp_free(r);

	httpc_free(c);
	env_stop(&env);
}

static void test_connection_reuse(void **state)
{
	struct fx *fx = *state;
	struct env env;
	struct httpc_conf conf;
	struct httpc *c;
	struct httpc_resp *r1, *r2;
	char u[128];

	env_start(&env, fx, fx->srv_cert, fx->srv_key);
	client_conf(&conf, fx);
	c = client_new(&env, &conf);
	url(u, sizeof(u), env.port, "/v1/echo");
	r1 = httpc_request_sync(c, "GET", u, NULL, NULL);
	r2 = httpc_request_sync(c, "GET", u, NULL, NULL);
	assert_non_null(r1);
	assert_non_null(r2);
	assert_int_equal(r1->status, 200);
	assert_int_equal(r2->status, 200);
	/* Same source port: the second request rode the first one's connection. */
	assert_int_equal(json_integer_value(json_object_get(r1->json, "port")),
	                 json_integer_value(json_object_get(r2->json, "port")));
	assert_int_equal(httpd_connections(env.h), 1);
	assert_string_not_equal(r1->rid, r2->rid);
	httpc_resp_free(r1);
	httpc_resp_free(r2);
	httpc_free(c);
	env_stop(&env);
}

static void expect_transport_error(struct env *env, const struct httpc_conf *conf, const char *what)
{
	struct httpc *c = client_new(env, conf);
	struct httpc_resp *r;
	char u[128];

	url(u, sizeof(u), env->port, "/v1/echo");
	r = httpc_request_sync(c, "GET", u, NULL, NULL);
	assert_non_null(r);
	if (r->error == NULL)
		fail_msg("%s: expected an error, got status %ld", what, r->status);
	assert_int_equal(r->status, 0);
	assert_int_not_equal(r->curl_code, CURLE_OK);
	assert_null(r->json);
	assert_int_equal(r->len, 0);
	assert_string_equal(r->body, "");
	httpc_resp_free(r);
	httpc_free(c);
}

static void test_untrusted_server(void **state)
{
	struct fx *fx = *state;
	struct env env;
	struct httpc_conf conf;

	env_start(&env, fx, fx->evil_cert, fx->evil_key);
	client_conf(&conf, fx);
	expect_transport_error(&env, &conf, "untrusted CA");
	env_stop(&env);
}

static void test_name_mismatch(void **state)
{
	struct fx *fx = *state;
	struct env env;
	struct httpc_conf conf;

	env_start(&env, fx, fx->other_cert, fx->other_key);
	client_conf(&conf, fx);
	expect_transport_error(&env, &conf, "name mismatch");
	env_stop(&env);
}

static void test_no_client_cert(void **state)
{
	struct fx *fx = *state;
	struct env env;
	struct httpc_conf conf;

	env_start(&env, fx, fx->srv_cert, fx->srv_key);
	client_conf(&conf, fx);
	conf.tls.cert = NULL;
	conf.tls.key = NULL;
	expect_transport_error(&env, &conf, "no client certificate");
	env_stop(&env);
}

static void expect_too_large(struct env *env, struct httpc *c, const char *path)
{
	struct httpc_resp *r;
	char u[128];

	url(u, sizeof(u), env->port, path);
	r = httpc_request_sync(c, "GET", u, NULL, NULL);
	assert_non_null(r);
	assert_non_null(r->error);
	assert_string_equal(r->error, "response too large");
	assert_int_equal(r->status, 0);
	assert_null(r->json);
	httpc_resp_free(r);
}

static void test_max_response(void **state)
{
	struct fx *fx = *state;
	struct env env;
	struct httpc_conf conf;
	struct httpc *c;
	struct httpc_resp *r;
	char u[128];

	env_start(&env, fx, fx->srv_cert, fx->srv_key);
	client_conf(&conf, fx);
	conf.max_response = BIGSIZE / 2;
	c = client_new(&env, &conf);
	expect_too_large(&env, c, "/v1/big");
	expect_too_large(&env, c, "/v1/bigstream");
	/* Small answers still pass under the same limit. */
	url(u, sizeof(u), env.port, "/v1/echo");
	r = httpc_request_sync(c, "GET", u, NULL, NULL);
	assert_non_null(r);
	assert_null(r->error);
	assert_int_equal(r->status, 200);
	httpc_resp_free(r);
	httpc_free(c);

	/* And the default limit (1 MiB) lets both big ones through whole. */
	conf.max_response = 0;
	c = client_new(&env, &conf);
	url(u, sizeof(u), env.port, "/v1/bigstream");
	r = httpc_request_sync(c, "GET", u, NULL, NULL);
	assert_non_null(r);
	if (r->error != NULL)
		fail_msg("bigstream: %s", r->error);
	assert_int_equal(r->len, BIGSIZE);
	httpc_resp_free(r);
	httpc_free(c);
	env_stop(&env);
}

static void test_unsafe_key(void **state)
{
	struct fx *fx = *state;
	struct event_base *base = event_base_new();
	struct httpc_conf conf;
	char err[512] = "";

	assert_non_null(base);
	client_conf(&conf, fx);
	conf.tls.key = fx->loose_key;
	assert_null(httpc_new(base, &conf, err, sizeof(err)));
	assert_non_null(strstr(err, fx->loose_key));

	/* The proxy's key is held to the same rule. */
	client_conf(&conf, fx);
	conf.proxy = "https://127.0.0.1:1";
	conf.proxy_tls.cert = fx->cli_cert;
	conf.proxy_tls.key = fx->loose_key;
	conf.proxy_tls.ca = fx->ca;
	err[0] = '\0';
	assert_null(httpc_new(base, &conf, err, sizeof(err)));
	assert_non_null(strstr(err, fx->loose_key));

	/* A plain-text proxy would expose the CONNECT target and the proxy credentials. */
	conf.proxy = "http://127.0.0.1:1";
	conf.proxy_tls.key = fx->cli_key;
	assert_null(httpc_new(base, &conf, err, sizeof(err)));
	event_base_free(base);
}

static void test_bad_arguments(void **state)
{
	struct fx *fx = *state;
	struct event_base *base = event_base_new();
	struct httpc_conf conf;
	struct httpc *c;
	struct result res;
	struct env env;
	char err[256], longrid[80];

	assert_non_null(base);
	memset(&env, 0, sizeof(env));
	memset(&res, 0, sizeof(res));
	res.env = &env;
	client_conf(&conf, fx);
	conf.tls.ca = NULL;
	assert_null(httpc_new(base, &conf, err, sizeof(err)));
	client_conf(&conf, fx);
	assert_non_null(c = httpc_new(base, &conf, err, sizeof(err)));
	assert_int_equal(
	    httpc_request(c, "PATCH", "https://127.0.0.1:1/", NULL, NULL, on_result, &res), -1);
	assert_int_equal(
	    httpc_request(c, "GET", "https://127.0.0.1:1/", "bad id", NULL, on_result, &res), -1);
	memset(longrid, 'a', sizeof(longrid) - 1);
	longrid[sizeof(longrid) - 1] = '\0';
	assert_int_equal(
	    httpc_request(c, "GET", "https://127.0.0.1:1/", longrid, NULL, on_result, &res), -1);
	/* Plain http is refused by curl, as a transport error. */
	assert_int_equal(
	    httpc_request(c, "GET", "http://127.0.0.1:1/", NULL, NULL, on_result, &res), 0);
	assert_int_equal(run_until(base, &res.done, 1, 5000), 0);
	assert_true(res.has_error);
	assert_int_equal(res.curl_code, CURLE_UNSUPPORTED_PROTOCOL);
	httpc_free(c);
	event_base_free(base);
}

static void test_timeout(void **state)
{
	struct fx *fx = *state;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	struct event_base *base = event_base_new();
	struct httpc_conf conf;
	struct httpc *c;
	struct httpc_resp *r;
	struct timespec t0, t1;
	char u[128], err[256];
	long ms;
	int fd;

	assert_non_null(base);
	/* Accepted by the kernel (backlog), never read: the handshake never completes. */
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);

	client_conf(&conf, fx);
	conf.timeout_ms = 300;
	assert_non_null(c = httpc_new(base, &conf, err, sizeof(err)));
	url(u, sizeof(u), ntohs(sin.sin_port), "/v1/echo");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = httpc_request_sync(c, "GET", u, NULL, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_non_null(r);
	assert_non_null(r->error);
	assert_int_equal(r->status, 0);
	assert_int_equal(r->curl_code, CURLE_OPERATION_TIMEDOUT);
	assert_true(ms >= 250 && ms < 3000);
	httpc_resp_free(r);
	httpc_free(c);
	close(fd);
	event_base_free(base);
}

static void test_concurrent(void **state)
{
	struct fx *fx = *state;
	struct env env;
	struct httpc_conf conf;
	struct httpc *c;
	struct result *res;
	char u[128], rid[32];
	int i;

	env_start(&env, fx, fx->srv_cert, fx->srv_key);
	client_conf(&conf, fx);
	c = client_new(&env, &conf);
	url(u, sizeof(u), env.port, "/v1/echo");
	assert_non_null(res = calloc(NCONC, sizeof(*res)));
	for (i = 0; i < NCONC; i++) {
		res[i].env = &env;
		snprintf(rid, sizeof(rid), "conc-%d", i);
		assert_int_equal(httpc_request(c, "GET", u, rid, NULL, on_result, &res[i]), 0);
	}
	assert_int_equal(run_until(env.base, &env.ncb, NCONC, 20000), 0);
	for (i = 0; i < NCONC; i++) {
		snprintf(rid, sizeof(rid), "conc-%d", i);
		if (res[i].has_error)
			fail_msg("request %d: %s", i, res[i].error);
		assert_int_equal(res[i].status, 200);
		assert_string_equal(res[i].rid, rid);
		assert_string_equal(jstr(res[i].json, "rid"), rid);
		json_decref(res[i].json);
	}
	free(res);
	httpc_free(c);
	env_stop(&env);
}

static void test_free_in_flight(void **state)
{
	struct fx *fx = *state;
	struct env env;
	struct httpc_conf conf;
	struct httpc *c;
	struct result res[NHANG];
	char u[128];
	int i, zero = 0;

	env_start(&env, fx, fx->srv_cert, fx->srv_key);
	client_conf(&conf, fx);
	c = client_new(&env, &conf);
	url(u, sizeof(u), env.port, "/v1/hang");
	memset(res, 0, sizeof(res));
	for (i = 0; i < NHANG; i++) {
		res[i].env = &env;
		assert_int_equal(httpc_request(c, "GET", u, NULL, NULL, on_result, &res[i]), 0);
	}
	/* Wait until every request has reached the handler, i.e. is truly in flight. */
	assert_int_equal(run_until(env.base, &env.nhung, NHANG, 10000), 0);
	httpc_free(c);
	/* Nothing of c may fire later (ASan would also catch a stale event or timer). */
	(void)run_until(env.base, &zero, 1, 300);
	assert_int_equal(env.ncb, 0);
	/* The connections really closed: the server saw every request's client go away. */
	for (i = 0; i < NHANG; i++)
		assert_null(env.hung[i]);
	assert_int_equal(httpd_inflight(env.h), 0);
	env_stop(&env);
}

static void on_result_free(struct httpc_resp *resp, void *arg)
{
	struct result *r = arg;

	on_result(resp, arg);
	httpc_free(r->env->c);
	r->env->c = NULL;
}

/* A callback may free its own client while others are still in flight. */
static void test_free_from_callback(void **state)
{
	struct fx *fx = *state;
	struct env env;
	struct httpc_conf conf;
	struct result res[3];
	char u[128];
	int i, zero = 0;

	env_start(&env, fx, fx->srv_cert, fx->srv_key);
	client_conf(&conf, fx);
	env.c = client_new(&env, &conf);
	memset(res, 0, sizeof(res));
	for (i = 0; i < 3; i++)
		res[i].env = &env;
	url(u, sizeof(u), env.port, "/v1/hang");
	assert_int_equal(httpc_request(env.c, "GET", u, NULL, NULL, on_result, &res[0]), 0);
	assert_int_equal(httpc_request(env.c, "GET", u, NULL, NULL, on_result, &res[1]), 0);
	assert_int_equal(run_until(env.base, &env.nhung, 2, 10000), 0);
	url(u, sizeof(u), env.port, "/v1/echo");
	assert_int_equal(httpc_request(env.c, "GET", u, NULL, NULL, on_result_free, &res[2]), 0);
	assert_int_equal(run_until(env.base, &env.ncb, 1, 10000), 0);
	assert_null(env.c);
	assert_int_equal(res[2].status, 200);
	json_decref(res[2].json);
	(void)run_until(env.base, &zero, 1, 300);
	assert_int_equal(env.ncb, 1);
	env_stop(&env);
}

/* Through an HTTPS proxy with its own client certificate; the tunnel is reused. */
static void test_proxy(void **state)
{
	struct fx *fx = *state;
	struct env env;
	struct proxy p;
	struct httpc_conf conf;
	struct httpc *c;
	struct httpc_resp *r;
	char u[128], purl[64], target[64];
	int i;

	env_start(&env, fx, fx->srv_cert, fx->srv_key);
	proxy_start(&p, env.base, env.ctx);
	client_conf(&conf, fx);
	snprintf(purl, sizeof(purl), "https://127.0.0.1:%d", p.port);
	conf.proxy = purl;
	conf.proxy_tls.cert = fx->cli_cert;
	conf.proxy_tls.key = fx->cli_key;
	conf.proxy_tls.ca = fx->ca;
	c = client_new(&env, &conf);
	url(u, sizeof(u), env.port, "/v1/echo");
	for (i = 0; i < 2; i++) {
		r = httpc_request_sync(c, "GET", u, NULL, NULL);
		assert_non_null(r);
		if (r->error != NULL)
			fail_msg("via proxy: %s", r->error);
		assert_int_equal(r->status, 200);
		/* End to end: the server sees the device's own certificate through the tunnel. */
		assert_string_equal(jstr(r->json, "cn"), "device-1");
		httpc_resp_free(r);
	}
	snprintf(target, sizeof(target), "127.0.0.1:%d", env.port);
	assert_string_equal(p.target, target);
	assert_string_equal(p.peer_cn, "device-1");
	assert_int_equal(p.nconnect, 1);
	httpc_free(c);

	/* Without a client certificate for the proxy, the proxy refuses the link. */
	conf.proxy_tls.cert = NULL;
	conf.proxy_tls.key = NULL;
	c = client_new(&env, &conf);
	r = httpc_request_sync(c, "GET", u, NULL, NULL);
	assert_non_null(r);
	assert_non_null(r->error);
	assert_int_equal(r->status, 0);
	assert_int_equal(p.nconnect, 1);
	httpc_resp_free(r);
	httpc_free(c);
	proxy_stop(&p);
	env_stop(&env);
}

static unsigned char pkg_byte(size_t i)
{
	return (unsigned char)((i * 31 + i / 251) & 0xff);
}

static void pkg_write(struct fx *fx)
{
	char path[PATH_MAX], err[256];
	unsigned char *b = malloc(PKGSIZE);
	size_t i;

	assert_non_null(b);
	for (i = 0; i < PKGSIZE; i++)
		b[i] = pkg_byte(i);
	pkg_path(path, sizeof(path), fx);
	assert_int_equal(file_write_atomic(path, b, PKGSIZE, 0644, err, sizeof(err)), 0);
	free(b);
}

/* The file at path holds exactly the first len bytes of the pattern. */
static void expect_pattern(const char *path, size_t len)
{
	char err[256];
	size_t n, i;
	char *b = file_read(path, PKGSIZE * 2, &n, err, sizeof(err));

	if (b == NULL)
		fail_msg("%s", err);
	assert_int_equal(n, len);
	for (i = 0; i < n; i++)
		if ((unsigned char)b[i] != pkg_byte(i))
			fail_msg("byte %zu differs", i);
	free(b);
}

/* Put the first len bytes of the pattern (or len bytes of junk) in path. */
static void part_write(const char *path, size_t len, int junk)
{
	char err[256];
	unsigned char *b = malloc(len + 1);
	size_t i;

	assert_non_null(b);
	for (i = 0; i < len; i++)
		b[i] = junk ? (unsigned char)'J' : pkg_byte(i);
	assert_int_equal(file_write_atomic(path, b, len, 0600, err, sizeof(err)), 0);
	free(b);
}

static void test_download(void **state)
{
	struct fx *fx = *state;
	struct env env;
	struct httpc_conf conf;
	struct httpc *c;
	struct httpc_resp *r;
	char u[256], out[PATH_MAX];
	struct stat sb;

	pkg_write(fx);
	assert_true((size_t)snprintf(out, sizeof(out), "%s/out.part", fx->dir) < sizeof(out));
	(void)unlink(out);
	env_start(&env, fx, fx->srv_cert, fx->srv_key);
	client_conf(&conf, fx);
	c = client_new(&env, &conf);
	url(u, sizeof(u), env.port, "/v1/pkg");

	/* Whole file; written 0600, body not kept in memory. */
	assert_non_null(r = httpc_download_sync(c, u, "dl-1", out, PKGETAG, PKGSIZE));
	assert_null(r->error);
	assert_int_equal(r->status, 200);
	assert_int_equal(r->len, 0);
	assert_string_equal(r->rid, "dl-1");
	httpc_resp_free(r);
	expect_pattern(out, PKGSIZE);
	assert_int_equal(stat(out, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(env.nranged, 0);

	/* Resume from a partial file: one ranged request, 206 appended. */
	part_write(out, 123457, 0);
	assert_non_null(r = httpc_download_sync(c, u, NULL, out, PKGETAG, PKGSIZE));
	assert_null(r->error);
	assert_int_equal(r->status, 206);
	httpc_resp_free(r);
	expect_pattern(out, PKGSIZE);
	assert_int_equal(env.nranged, 1);

	/* If-Range names another version: the server sends it all, the junk is replaced. */
	part_write(out, 5000, 1);
	assert_non_null(r = httpc_download_sync(c, u, NULL, out, "\"pkg-v0\"", PKGSIZE));
	assert_null(r->error);
	assert_int_equal(r->status, 200);
	httpc_resp_free(r);
	expect_pattern(out, PKGSIZE);
	assert_int_equal(env.nranged, 2);

	/* Already complete: 416 and the file is left alone. */
	assert_non_null(r = httpc_download_sync(c, u, NULL, out, PKGETAG, PKGSIZE));
	assert_null(r->error);
	assert_int_equal(r->status, 416);
	httpc_resp_free(r);
	expect_pattern(out, PKGSIZE);

	/* Bigger than allowed: refused, from scratch and when resuming. */
	(void)unlink(out);
	assert_non_null(r = httpc_download_sync(c, u, NULL, out, NULL, PKGSIZE - 1));
	assert_non_null(r->error);
	assert_int_equal(r->status, 0);
	httpc_resp_free(r);
	assert_int_equal(stat(out, &sb), 0);
	assert_true(sb.st_size < PKGSIZE);
	part_write(out, 1000, 0);
	assert_non_null(r = httpc_download_sync(c, u, NULL, out, PKGETAG, 2000));
	assert_non_null(r->error);
	httpc_resp_free(r);
	assert_int_equal(stat(out, &sb), 0);
	assert_true(sb.st_size <= 2000);

	/* An error status keeps its JSON body and leaves the file untouched. */
	part_write(out, 1000, 0);
	url(u, sizeof(u), env.port, "/v1/nope");
	assert_non_null(r = httpc_download_sync(c, u, NULL, out, NULL, PKGSIZE));
	assert_null(r->error);
	assert_int_equal(r->status, 404);
	assert_non_null(r->json);
	httpc_resp_free(r);
	expect_pattern(out, 1000);

	/* Bad arguments are refused before any request. */
	assert_non_null(r = httpc_download_sync(c, u, NULL, out, "\"a\"\r\nX: y", PKGSIZE));
	assert_non_null(r->error);
	httpc_resp_free(r);
	assert_non_null(r = httpc_download_sync(c, u, NULL, out, NULL, 0));
	assert_non_null(r->error);
	httpc_resp_free(r);

	httpc_free(c);
	env_stop(&env);
	(void)unlink(out);
	pkg_path(out, sizeof(out), fx);
	(void)unlink(out);
}

struct dl_wait {
	int done;
	long status;
	int had_error;
	struct stat sb; /* of the file, seen from inside the callback */
	const char *path;
};

static void dl_wait_cb(struct httpc_resp *resp, void *arg)
{
	struct dl_wait *w = arg;

	w->done = 1;
	w->status = resp->status;
	w->had_error = resp->error != NULL;
	/* The file is complete and synced when the callback runs. */
	assert_int_equal(stat(w->path, &w->sb), 0);
}

/* The asynchronous download: completes from the loop, resumes a part, and is cancelled
 * without a callback (or a leak) by httpc_free(). */
static void test_download_async(void **state)
{
	struct fx *fx = *state;
	struct env env;
	struct httpc_conf conf;
	struct httpc *c;
	struct dl_wait w;
	char u[256], out[PATH_MAX];

	pkg_write(fx);
	assert_true((size_t)snprintf(out, sizeof(out), "%s/async.part", fx->dir) < sizeof(out));
	(void)unlink(out);
	env_start(&env, fx, fx->srv_cert, fx->srv_key);
	client_conf(&conf, fx);
	c = client_new(&env, &conf);
	url(u, sizeof(u), env.port, "/v1/pkg");

	memset(&w, 0, sizeof(w));
	w.path = out;
	assert_int_equal(httpc_download(c, u, "dla-1", out, PKGETAG, PKGSIZE, dl_wait_cb, &w), 0);
	while (!w.done)
		assert_true(event_base_loop(env.base, EVLOOP_ONCE) >= 0);
	assert_int_equal(w.status, 200);
	assert_false(w.had_error);
	assert_int_equal(w.sb.st_size, PKGSIZE);
	expect_pattern(out, PKGSIZE);

	/* A part of the right file is completed with a range. */
	part_write(out, 1000, 0);
	memset(&w, 0, sizeof(w));
	w.path = out;
	assert_int_equal(httpc_download(c, u, NULL, out, PKGETAG, PKGSIZE, dl_wait_cb, &w), 0);
	while (!w.done)
		assert_true(event_base_loop(env.base, EVLOOP_ONCE) >= 0);
	assert_int_equal(w.status, 206);
	expect_pattern(out, PKGSIZE);

	/* Refused arguments start nothing; a transfer in flight is cancelled by httpc_free(). */
	assert_int_equal(httpc_download(c, u, NULL, out, NULL, 0, dl_wait_cb, &w), -1);
	assert_int_equal(httpc_download(c, u, NULL, out, NULL, PKGSIZE, NULL, &w), -1);
	(void)unlink(out);
	memset(&w, 0, sizeof(w));
	w.path = out;
	assert_int_equal(httpc_download(c, u, NULL, out, NULL, PKGSIZE, dl_wait_cb, &w), 0);
	httpc_free(c);
	assert_false(w.done);

	env_stop(&env);
	(void)unlink(out);
	pkg_path(out, sizeof(out), fx);
	(void)unlink(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get_post_roundtrip),
	    cmocka_unit_test(test_connection_reuse),
	    cmocka_unit_test(test_untrusted_server),
	    cmocka_unit_test(test_name_mismatch),
	    cmocka_unit_test(test_no_client_cert),
	    cmocka_unit_test(test_max_response),
	    cmocka_unit_test(test_unsafe_key),
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_concurrent),
	    cmocka_unit_test(test_free_in_flight),
	    cmocka_unit_test(test_free_from_callback),
	    cmocka_unit_test(test_proxy),
	    cmocka_unit_test(test_download),
	    cmocka_unit_test(test_download_async),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
