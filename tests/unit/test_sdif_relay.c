/*
 * test_sdif_relay: the CONNECT relay of sd-if-agent, in process. The relay, an echo target
 * and a "blaster" target (sends 8 MiB, then closes) run on a libevent loop in a second
 * thread; the test thread plays devices with raw OpenSSL clients and self-signed link
 * certificates, and asks the loop thread (over a socketpair) to count or close tunnels.
 * The pairing store is a fake: one link fingerprint is paired.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "opendm/pairproof.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/tls.h"
#include "relay.h"
#include "sd_if_agent.h"
#include "testutil.h"

#define BLAST_BYTES      (8 * 1024 * 1024)
#define MAX_TARGET_CONNS 64

struct fixture {
	char dir[512];
	char ca[600], srv_cert[600], srv_key[600];
	char link_cert[600], link_key[600], other_cert[600], other_key[600];
	char paired_fp[65];
	struct event_base *base;
	struct daemon_ctx d;
	struct sdif s;
	struct evconnlistener *echo, *blast;
	struct bufferevent *conns[MAX_TARGET_CONNS];
	int echo_port, blast_port, dead_port, relay_port;
	int cmd[2]; /* [0] loop side, [1] test side */
	struct event *cmd_ev;
	pthread_t loop;
	SSL_CTX *paired_ctx, *unpaired_ctx;
};

static struct fixture *fx; /* the fake store below has no other way to reach it */

/* The fake pairing store: only the fixture's link key is paired (hw_id "dev-1"). */
int sdif_store_link_active(struct db *db, const char *link_fp, char *hw_id, size_t len)
{
	if (fx == NULL || strcmp(link_fp, fx->paired_fp) != 0)
		return 0;
	snprintf(hw_id, len, "dev-1");
	return 1;
}

/* ---- the targets (loop thread) ---- */

static void conn_forget(struct bufferevent *bev)
{
	int i;

	for (i = 0; i < MAX_TARGET_CONNS; i++)
		if (fx->conns[i] == bev)
			fx->conns[i] = NULL;
	bufferevent_free(bev);
}

static void conn_keep(struct bufferevent *bev)
{
	int i;

	for (i = 0; i < MAX_TARGET_CONNS; i++) {
		if (fx->conns[i] == NULL) {
			fx->conns[i] = bev;
			return;
		}
	}
	bufferevent_free(bev);
}

static void echo_read(struct bufferevent *bev, void *arg)
{
	evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void target_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_forget(bev);
}

static void echo_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                        int salen, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(fx->base, fd, BEV_OPT_CLOSE_ON_FREE);
	int one = 1;

	/* As the daemons do: small echoes must not wait for delayed ACKs. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bufferevent_setcb(bev, echo_read, NULL, target_event, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	conn_keep(bev);
}

static void blast_written(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_forget(bev);
}

static void blast_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(fx->base, fd, BEV_OPT_CLOSE_ON_FREE);
	unsigned char chunk[4096];
	int i;

	/* A pattern that shows a lost or reordered chunk. */
	for (i = 0; i < BLAST_BYTES / (int)sizeof(chunk); i++) {
		memset(chunk, 'a' + i % 26, sizeof(chunk));
		bufferevent_write(bev, chunk, sizeof(chunk));
	}
	bufferevent_setcb(bev, NULL, blast_written, target_event, NULL);
	bufferevent_enable(bev, EV_WRITE);
	conn_keep(bev);
}

static int listener_port(struct evconnlistener *l)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_int_equal(getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static struct evconnlistener *listen_local(evconnlistener_cb cb)
{
	struct sockaddr_in sin;
	struct evconnlistener *l;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = evconnlistener_new_bind(fx->base, cb, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
	                            16, (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(l);
	return l;
}

/* A port nothing listens on: bound, then closed. */
static int dead_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* Commands from the test thread: 'N' count, 'C' close the paired link, 'Q' stop. */
static void cmd_read(evutil_socket_t fd, short what, void *arg)
{
	char c;
	long v = 0;

	if (read(fd, &c, 1) != 1)
		return;
	switch (c) {
	case 'N':
		v = (long)sdif_relay_count(&fx->s, NULL);
		break;
	case 'P':
		v = (long)sdif_relay_count(&fx->s, fx->paired_fp);
		break;
	case 'C':
		v = sdif_relay_close_link(&fx->s, fx->paired_fp);
		break;
	case 'Q':
		sdif_relay_stop(&fx->s);
		evconnlistener_free(fx->echo);
		evconnlistener_free(fx->blast);
		event_base_loopbreak(fx->base);
		break;
	}
	if (write(fd, &v, sizeof(v)) != sizeof(v))
		abort();
}

static long cmd(char c)
{
	long v = -1;

	assert_int_equal(write(fx->cmd[1], &c, 1), 1);
	assert_int_equal(read(fx->cmd[1], &v, sizeof(v)), sizeof(v));
	return v;
}

static void *loop_main(void *arg)
{
	event_base_dispatch(fx->base);
	return NULL;
}

/* ---- certificates ---- */

/* A link certificate as dm-app makes it (dev_link_new): a client leaf signed by its own key
 * under its own name. */
static void make_self_signed(const char *cert_path, const char *key_path, const char *cn,
                             char fp[65])
{
	struct pki_issue req = {PKI_PROFILE_ROOT, {cn, "link", NULL}, NULL, NULL, NULL, 0, 2};
	char err[256];
	EVP_PKEY *key;
	X509 *self, *cert;

	assert_non_null(key = pki_key_new());
	if ((self = pki_issue(&req, key, NULL, key, err, sizeof(err))) == NULL)
		fail_msg("self-signed %s: %s", cn, err);
	req.profile = PKI_PROFILE_CLIENT;
	if ((cert = pki_issue(&req, key, self, key, err, sizeof(err))) == NULL)
		fail_msg("link %s: %s", cn, err);
	assert_int_equal(pki_key_write(key_path, key, err, sizeof(err)), 0);
	assert_int_equal(pki_certs_write(cert_path, &cert, 1, err, sizeof(err)), 0);
	if (fp != NULL)
		assert_int_equal(pairproof_spki(key, NULL, fp), 0);
	X509_free(self);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void make_pki(void)
{
	struct pki_issue root = {
	    PKI_PROFILE_ROOT, {"test cpe ca", NULL, NULL}, NULL, NULL, NULL, 0, 2};
	static const char *const ips[] = {"127.0.0.1", NULL};
	char err[256];
	EVP_PKEY *ca_key;
	X509 *ca;

	snprintf(fx->ca, sizeof(fx->ca), "%s/ca.pem", fx->dir);
	snprintf(fx->srv_cert, sizeof(fx->srv_cert), "%s/cpe.pem", fx->dir);
	snprintf(fx->srv_key, sizeof(fx->srv_key), "%s/cpe.key", fx->dir);
	snprintf(fx->link_cert, sizeof(fx->link_cert), "%s/link.pem", fx->dir);
	snprintf(fx->link_key, sizeof(fx->link_key), "%s/link.key", fx->dir);
	snprintf(fx->other_cert, sizeof(fx->other_cert), "%s/other.pem", fx->dir);
	snprintf(fx->other_key, sizeof(fx->other_key), "%s/other.key", fx->dir);
	assert_non_null(ca_key = pki_key_new());
	assert_non_null(ca = pki_issue(&root, ca_key, NULL, ca_key, err, sizeof(err)));
	assert_int_equal(pki_certs_write(fx->ca, &ca, 1, err, sizeof(err)), 0);
	tu_make_leaf(fx->srv_cert, fx->srv_key, PKI_PROFILE_SERVER, "cpe-0001", NULL, ips, ca,
	             ca_key);
	make_self_signed(fx->link_cert, fx->link_key, "dev-1", fx->paired_fp);
	make_self_signed(fx->other_cert, fx->other_key, "dev-2", NULL);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
}

static SSL_CTX *client_ctx(char *cert, char *key)
{
	struct tls_conf c = {cert, key, fx->ca, NULL};
	char err[256];
	SSL_CTX *ctx = tls_client_ctx(&c, err, sizeof(err));

	if (ctx == NULL)
		fail_msg("client ctx: %s", err);
	return ctx;
}

/* ---- the fixture ---- */

static int setup(void **state)
{
	static char allow_buf[3][32];
	static char *allow[3];
	struct sdif_relay_conf c;
	char err[256];

	log_init("test", LOG_LVL_ERR);
	assert_non_null(fx = calloc(1, sizeof(*fx)));
	assert_int_equal(tu_tmpdir(fx->dir, sizeof(fx->dir), "sdif_relay"), 0);
	make_pki();
	assert_non_null(fx->base = event_base_new());
	fx->d.base = fx->base;
	fx->d.cfg.tls.cert = fx->srv_cert;
	fx->d.cfg.tls.key = fx->srv_key;
	fx->d.cfg.tls.ca = fx->ca;
	fx->s.d = &fx->d;
	fx->echo = listen_local(echo_accept);
	fx->blast = listen_local(blast_accept);
	fx->echo_port = listener_port(fx->echo);
	fx->blast_port = listener_port(fx->blast);
	fx->dead_port = dead_port();
	snprintf(allow_buf[0], sizeof(allow_buf[0]), "127.0.0.1:%d", fx->echo_port);
	snprintf(allow_buf[1], sizeof(allow_buf[1]), "127.0.0.1:%d", fx->blast_port);
	snprintf(allow_buf[2], sizeof(allow_buf[2]), "127.0.0.1:%d", fx->dead_port);
	allow[0] = allow_buf[0];
	allow[1] = allow_buf[1];
	allow[2] = allow_buf[2];
	memset(&c, 0, sizeof(c));
	c.address = "127.0.0.1";
	c.port = 0;
	c.allow.v = allow;
	c.allow.n = 3;
	c.max_tunnels_per_device = 2;
	c.max_preamble = 1024;
	c.connect_timeout_s = 5;
	if (sdif_relay_start(&fx->s, &c, err, sizeof(err)) == -1)
		fail_msg("relay start: %s", err);
	fx->relay_port = sdif_relay_port(&fx->s);
	assert_true(fx->relay_port > 0);
	fx->paired_ctx = client_ctx(fx->link_cert, fx->link_key);
	fx->unpaired_ctx = client_ctx(fx->other_cert, fx->other_key);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fx->cmd), 0);
	fx->cmd_ev = event_new(fx->base, fx->cmd[0], EV_READ | EV_PERSIST, cmd_read, NULL);
	assert_int_equal(event_add(fx->cmd_ev, NULL), 0);
	assert_int_equal(pthread_create(&fx->loop, NULL, loop_main, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	int i;

	cmd('Q');
	pthread_join(fx->loop, NULL);
	for (i = 0; i < MAX_TARGET_CONNS; i++)
		if (fx->conns[i] != NULL)
			bufferevent_free(fx->conns[i]);
	event_free(fx->cmd_ev);
	close(fx->cmd[0]);
	close(fx->cmd[1]);
	event_base_free(fx->base);
	SSL_CTX_free(fx->paired_ctx);
	SSL_CTX_free(fx->unpaired_ctx);
	tu_rmtree(fx->dir);
	free(fx);
	fx = NULL;
	return 0;
}

/* ---- a device ---- */

static SSL *dev_connect_buf(SSL_CTX *ctx, int rcvbuf)
{
	struct sockaddr_in sin;
	struct timeval tv = {10, 0};
	SSL *ssl;
	int fd, one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)fx->relay_port);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	/* A relay bug must fail the test, not hang it. */
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
	if (rcvbuf > 0)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_non_null(ssl = SSL_new(ctx));
	assert_int_equal(SSL_set_fd(ssl, fd), 1);
	if (SSL_connect(ssl) != 1) {
		char e[256];
		fail_msg("handshake with the relay: %s", tls_errstr(e, sizeof(e)));
	}
	return ssl;
}

static SSL *dev_connect(SSL_CTX *ctx)
{
	return dev_connect_buf(ctx, 0);
}

static void dev_close(SSL *ssl)
{
	int fd = SSL_get_fd(ssl);

	SSL_free(ssl);
	close(fd);
	ERR_clear_error();
}

static void dev_write(SSL *ssl, const void *p, size_t n)
{
	assert_int_equal(SSL_write(ssl, p, (int)n), (int)n);
}

/* Read exactly n bytes. */
static void dev_read_n(SSL *ssl, char *p, size_t n)
{
	size_t got = 0;
	int k;

	while (got < n) {
		k = SSL_read(ssl, p + got, (int)(n - got));
		assert_true(k > 0);
		got += (size_t)k;
	}
}

/* Send a preamble, read the reply head (and a body of Content-Length); the status. */
static int dev_request(SSL *ssl, const char *preamble, char *body, size_t blen)
{
	char head[2048];
	size_t n = 0;
	int status = 0, clen = 0;
	const char *cl;

	dev_write(ssl, preamble, strlen(preamble));
	while (n < sizeof(head) - 1) {
		if (SSL_read(ssl, head + n, 1) != 1)
			fail_msg("reply head cut after %zu bytes", n);
		n++;
		head[n] = '\0';
		if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	assert_int_equal(sscanf(head, "HTTP/1.1 %d", &status), 1);
	if ((cl = strstr(head, "Content-Length: ")) != NULL)
		clen = atoi(cl + 16);
	if (body != NULL) {
		assert_true((size_t)clen < blen);
		dev_read_n(ssl, body, (size_t)clen);
		body[clen] = '\0';
	}
	return status;
}

/* After an error reply the relay closes the link with a close_notify. */
static void assert_closed(SSL *ssl)
{
	char c;

	assert_true(SSL_read(ssl, &c, 1) <= 0);
}

static void refused(SSL_CTX *ctx, const char *preamble, int want, const char *code)
{
	char body[512];
	SSL *ssl = dev_connect(ctx);

	assert_int_equal(dev_request(ssl, preamble, body, sizeof(body)), want);
	if (strstr(body, code) == NULL)
		fail_msg("want code %s in %s", code, body);
	assert_closed(ssl);
	dev_close(ssl);
}

static SSL *tunnel_buf(int port, int rcvbuf)
{
	char pre[128];
	SSL *ssl = dev_connect_buf(fx->paired_ctx, rcvbuf);

	snprintf(pre, sizeof(pre), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
	         port, port);
	assert_int_equal(dev_request(ssl, pre, NULL, 0), 200);
	return ssl;
}

static SSL *tunnel(int port)
{
	return tunnel_buf(port, 0);
}

/* ---- the tests ---- */

static void test_preamble_parse(void **state)
{
	char t[64];
	size_t used = 0;
	const char *ok = "CONNECT 127.0.0.1:8441 HTTP/1.1\r\nHost: x\r\n\r\nrest";

	assert_int_equal(sdif_relay_preamble(ok, strlen(ok), 4096, t, sizeof(t), &used),
	                 SDIF_PRE_OK);
	assert_string_equal(t, "127.0.0.1:8441");
	assert_int_equal(used, strlen(ok) - 4);
	assert_int_equal(sdif_relay_preamble(ok, 20, 4096, t, sizeof(t), &used), SDIF_PRE_MORE);
	assert_int_equal(sdif_relay_preamble(ok, 20, 20, t, sizeof(t), &used), SDIF_PRE_TOO_LONG);
#define PRE(s, want)                                                                               \
	assert_int_equal(sdif_relay_preamble(s, strlen(s), 4096, t, sizeof(t), &used), want)
	PRE("CONNECT [::1]:8441 HTTP/1.0\r\n\r\n", SDIF_PRE_OK);
	PRE("GET / HTTP/1.1\r\n\r\n", SDIF_PRE_METHOD);
	PRE("connect 127.0.0.1:1 HTTP/1.1\r\n\r\n", SDIF_PRE_BAD);
	PRE("CONNECT 127.0.0.1:1 HTTP/2\r\n\r\n", SDIF_PRE_BAD);
	PRE("CONNECT  127.0.0.1:1 HTTP/1.1\r\n\r\n", SDIF_PRE_BAD);
	PRE("CONNECT 127.0.0.1:1\r\n\r\n", SDIF_PRE_BAD);
	PRE("CONNECT a/b:1 HTTP/1.1\r\n\r\n", SDIF_PRE_BAD);
	PRE("CONNECT 127.0.0.1:1 HTTP/1.1\r\nno colon\r\n\r\n", SDIF_PRE_BAD);
	PRE("CONNECT 127.0.0.1:1 HTTP/1.1\r\n: empty name\r\n\r\n", SDIF_PRE_BAD);
	PRE("CONNECT 127.0.0.1:1 HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", SDIF_PRE_BAD);
	PRE("CONNECT 127.0.0.1:1 HTTP/1.1\nA: 1\r\n\r\n", SDIF_PRE_BAD);
	PRE("CONNECT 0123456789012345678901234567890123456789012345678901234567890123:1 "
	    "HTTP/1.1\r\n\r\n",
	    SDIF_PRE_BAD);
#undef PRE
	/* A NUL inside a header. */
	assert_int_equal(sdif_relay_preamble("CONNECT 1.2.3.4:5 HTTP/1.1\r\nA:\0\r\n\r\n", 36, 4096,
	                                     t, sizeof(t), &used),
	                 SDIF_PRE_BAD);
}

static void test_paired_echo(void **state)
{
	char buf[16384], back[16384];
	SSL *ssl = tunnel(fx->echo_port);
	int i;

	dev_write(ssl, "hello", 5);
	dev_read_n(ssl, back, 5);
	assert_memory_equal(back, "hello", 5);
	/* 4 MiB through in 16 KiB steps: the bytes come back in order, unaltered. */
	for (i = 0; i < 256; i++) {
		memset(buf, 'A' + i % 26, sizeof(buf));
		buf[0] = (char)i;
		dev_write(ssl, buf, sizeof(buf));
		dev_read_n(ssl, back, sizeof(back));
		assert_memory_equal(buf, back, sizeof(buf));
	}
	assert_int_equal(cmd('N'), 1);
	dev_close(ssl);
}

static void test_download_then_close(void **state)
{
	static char buf[BLAST_BYTES];
	SSL *ssl = tunnel_buf(fx->blast_port, 8192);
	size_t got = 0;
	int k, i;

	/* The target writes 8 MiB and closes at once: the relay must still deliver it all
	 * (past its 64 KiB backpressure mark), then end the link cleanly. A slow reader with a
	 * small socket buffer leaves bytes queued in the relay when the target's EOF comes. */
	while ((k = SSL_read(ssl, buf + got, 4096)) > 0) {
		got += (size_t)k;
		usleep(200);
	}
	assert_int_equal(SSL_get_error(ssl, k), SSL_ERROR_ZERO_RETURN);
	assert_int_equal(got, BLAST_BYTES);
	for (i = 0; i < BLAST_BYTES / 4096; i++)
		assert_int_equal(buf[i * 4096 + 4095], 'a' + i % 26);
	dev_close(ssl);
}

static void test_unpaired(void **state)
{
	char pre[128];

	snprintf(pre, sizeof(pre), "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", fx->echo_port);
	refused(fx->unpaired_ctx, pre, 403, "not_paired");
	/* Not paired comes first, whatever else is wrong. */
	refused(fx->unpaired_ctx, "GET / HTTP/1.1\r\n\r\n", 403, "not_paired");
}

static void test_not_allowed(void **state)
{
	char pre[128];

	refused(fx->paired_ctx, "CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n", 403, "target_not_allowed");
	/* Exact match only: the same port by name is not the allowed string. */
	snprintf(pre, sizeof(pre), "CONNECT localhost:%d HTTP/1.1\r\n\r\n", fx->echo_port);
	refused(fx->paired_ctx, pre, 403, "target_not_allowed");
}

static void test_too_long(void **state)
{
	char pre[2048];

	snprintf(pre, sizeof(pre), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nX-Pad: %01500d\r\n\r\n",
	         fx->echo_port, 0);
	refused(fx->paired_ctx, pre, 431, "preamble_too_large");
}

static void test_method_and_malformed(void **state)
{
	refused(fx->paired_ctx, "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", 405,
	        "method_not_allowed");
	refused(fx->paired_ctx, "CONNECT 127.0.0.1:1 HTTP/1.1\r\nbad header\r\n\r\n", 400,
	        "bad_request");
}

static void test_bad_gateway(void **state)
{
	char pre[128];

	snprintf(pre, sizeof(pre), "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", fx->dead_port);
	refused(fx->paired_ctx, pre, 502, "bad_gateway");
	assert_int_equal(cmd('N'), 0);
}

static void test_limit_and_close_link(void **state)
{
	char pre[128], c;
	SSL *a = tunnel(fx->echo_port), *b = tunnel(fx->echo_port);

	snprintf(pre, sizeof(pre), "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", fx->echo_port);
	refused(fx->paired_ctx, pre, 503, "too_many_tunnels");
	assert_int_equal(cmd('P'), 2);
	/* Unpairing closes the open tunnels at once. */
	assert_int_equal(cmd('C'), 2);
	assert_int_equal(cmd('N'), 0);
	assert_true(SSL_read(a, &c, 1) <= 0);
	assert_true(SSL_read(b, &c, 1) <= 0);
	dev_close(a);
	dev_close(b);
	/* The slots are free again. */
	a = tunnel(fx->echo_port);
	dev_write(a, "x", 1);
	dev_read_n(a, &c, 1);
	assert_int_equal(c, 'x');
	dev_close(a);
}

static void test_port_in_use(void **state)
{
	struct sdif other;
	struct sdif_relay_conf c;
	char err[256], want[64];
	char *allow[] = {"127.0.0.1:1"};

	memset(&other, 0, sizeof(other));
	other.d = &fx->d;
	memset(&c, 0, sizeof(c));
	c.address = "127.0.0.1";
	c.port = fx->echo_port;
	c.allow.v = allow;
	c.allow.n = 1;
	assert_int_equal(sdif_relay_start(&other, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "relay 127.0.0.1:%d: Address already in use", fx->echo_port);
	assert_string_equal(err, want);
	assert_null(other.relay);
	/* A name in the allow-list is refused at start. */
	allow[0] = "localhost:8441";
	c.port = 0;
	assert_int_equal(sdif_relay_start(&other, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "localhost:8441"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_preamble_parse),       cmocka_unit_test(test_paired_echo),
	    cmocka_unit_test(test_download_then_close),  cmocka_unit_test(test_unpaired),
	    cmocka_unit_test(test_not_allowed),          cmocka_unit_test(test_too_long),
	    cmocka_unit_test(test_method_and_malformed), cmocka_unit_test(test_bad_gateway),
	    cmocka_unit_test(test_limit_and_close_link), cmocka_unit_test(test_port_in_use),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
