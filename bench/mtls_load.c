/*
 * odm-bench: a small mutual-TLS HTTP/1.1 load client for the daemon benchmark.
 *
 * wrk and h2load cannot present a client certificate and every opendm daemon requires one, so
 * the benchmark needs a client of its own. One process, one thread, C non-blocking connections
 * multiplexed with epoll: the bench machine gives the client one core, and a single event loop
 * is the cheapest way to keep C requests in flight on it (no context switches, no locks).
 *
 * Modes:
 *   new        every request on a fresh TCP connection with a full TLS 1.3 mutual-auth
 *              handshake (no session resumption) and "Connection: close".
 *   keepalive  requests one after another on C persistent connections (no pipelining).
 *
 * Output, one line of key=value pairs on stdout:
 *   mode=new requests=N errors=E seconds=S rate=R/s p50_ms=.. p99_ms=.. client_cpu=..
 * client_cpu is the client's own CPU time over wall time: near 1.00 means the client, not the
 * server, may be the limit. The first few errors are described on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "opendm/tls.h"

#define RESP_MAX     16384 /* the bench endpoints answer a few hundred bytes */
#define LAT_BUCKETS  20000 /* 10 us buckets up to 200 ms, then one overflow bucket */
#define LAT_US       10
#define ERRORS_SHOWN 5

/* The one unavoidable global: a signal handler can only reach static storage. */
static volatile sig_atomic_t g_stop;

enum mode {
	MODE_NEW,
	MODE_KEEPALIVE,
};

enum cstate {
	C_CONNECTING, /* TCP connect in progress */
	C_HANDSHAKE,  /* TLS handshake in progress */
	C_WRITE,      /* request not yet accepted by SSL_write */
	C_READ,       /* reading the response */
};

struct opts {
	const char *host;
	int port;
	const char *cert, *key, *ca;
	const char *path;
	const char *groups;
	const char *verify_host;
	enum mode mode;
	double duration;
	int concurrency;
	double timeout;
	bool full_verify;
};

struct conn {
	int fd;
	SSL *ssl;
	enum cstate st;
	uint32_t events; /* what epoll is watching for this fd; 0 = not registered */
	double t_req;    /* start of the current request (of the connection in "new" mode) */
	size_t len;      /* bytes of response in buf */
	size_t hdr_end;  /* offset of the body once the header is complete, else 0 */
	size_t body_len; /* Content-Length */
	bool peer_close; /* the server said "Connection: close" */
	char buf[RESP_MAX];
};

struct bench {
	const struct opts *o;
	SSL_CTX *ctx;
	int ep;
	struct sockaddr_in sa;
	struct conn *conns;
	char req[1024];
	int reqlen;
	double t_start, t_end;
	uint64_t ok, errors;
	uint32_t *lat; /* LAT_BUCKETS + 1 counters */
	X509 *pinned;  /* the server leaf whose chain passed full verification */
};

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void conn_close(struct conn *c)
{
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd); /* also drops it from the epoll set */
	c->fd = -1;
	c->events = 0;
}

/* Count an error, describe the first few (with the OpenSSL queue, if any), drop the connection. */
static void conn_error(struct bench *b, struct conn *c, const char *what)
{
	char tlserr[512] = "";
	int saved = errno;

	b->errors++;
	if (ERR_peek_error() != 0)
		tls_errstr(tlserr, sizeof(tlserr)); /* also clears the queue for the next one */
	if (b->errors <= ERRORS_SHOWN)
		fprintf(stderr, "odm-bench: error: %s%s%s (%s)\n", what, tlserr[0] ? ": " : "",
		        tlserr, saved ? strerror(saved) : "no errno");
	conn_close(c);
}

static int conn_want(struct bench *b, struct conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};

	if (c->events == events)
		return 0;
	if (epoll_ctl(b->ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) == -1)
		return -1;
	c->events = events;
	return 0;
}

static void conn_open(struct bench *b, struct conn *c)
{
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		conn_error(b, c, "socket");
		return;
	}
	/* Small request records must leave at once, as the servers also set it. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&b->sa, sizeof(b->sa)) == -1 &&
	    errno != EINPROGRESS) {
		conn_error(b, c, "connect");
		return;
	}
	c->st = C_CONNECTING;
	c->t_req = now_mono();
	c->len = c->hdr_end = c->body_len = 0;
	c->peer_close = false;
	if (conn_want(b, c, EPOLLOUT) == -1)
		conn_error(b, c, "epoll_ctl");
}

static void lat_record(struct bench *b, double seconds)
{
	long us = (long)(seconds * 1e6);
	long i = us / LAT_US;

	b->lat[i < LAT_BUCKETS ? i : LAT_BUCKETS]++;
}

static double lat_quantile(const struct bench *b, double q)
{
	uint64_t total = 0, seen = 0;

	for (long i = 0; i <= LAT_BUCKETS; i++)
		total += b->lat[i];
	if (total == 0)
		return 0;
	for (long i = 0; i <= LAT_BUCKETS; i++) {
		seen += b->lat[i];
		if ((double)seen >= q * (double)total)
			return (double)((i + 1) * LAT_US) / 1000.0;
	}
	return (double)(LAT_BUCKETS * LAT_US) / 1000.0;
}

/*
 * Certificate verification, once. With OpenSSL 3.0 a TLS 1.3 mutual-auth handshake costs the
 * client about as much CPU as the server (parse the peer's chain, verify it, verify its
 * CertificateVerify, ECDH, sign), so a client on one core barely keeps one server core busy.
 * The first connection verifies the server's chain fully (trust anchor, validity, host name if
 * asked); later ones accept a leaf byte-identical to that verified one, which saves the chain's
 * signature checks and keeps the client from being the bottleneck. The CertificateVerify
 * signature, which proves the server holds the key, is still checked on every handshake.
 */
static int verify_pinned(X509_STORE_CTX *xs, void *arg)
{
	struct bench *b = arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);

	if (b->pinned != NULL && leaf != NULL && X509_cmp(leaf, b->pinned) == 0)
		return 1;
	if (X509_verify_cert(xs) != 1)
		return 0;
	if (b->pinned == NULL && X509_up_ref(leaf))
		b->pinned = leaf;
	return 1;
}

/* memmem and strcasestr are GNU extensions; the project builds with POSIX + _DEFAULT_SOURCE. */
static char *find_header_end(char *buf, size_t len)
{
	for (size_t i = 0; i + 4 <= len; i++)
		if (buf[i] == '\r' && memcmp(buf + i, "\r\n\r\n", 4) == 0)
			return buf + i;
	return NULL;
}

static bool has_token_close(const char *s)
{
	for (; *s != '\0' && *s != '\r'; s++)
		if (strncasecmp(s, "close", 5) == 0)
			return true;
	return false;
}

/*
 * Parse the header once it is complete: status must be 200 and a Content-Length given, since
 * the daemons always send a length (DESIGN.md §2) and a chunked answer would be a regression.
 * Returns 0 (header incomplete or parsed) or -1 with *what set.
 */
static int parse_header(struct conn *c, const char **what)
{
	char *end = find_header_end(c->buf, c->len);
	char *line, *next;
	bool have_len = false;

	if (end == NULL) {
		if (c->len == sizeof(c->buf)) {
			*what = "response header too large";
			return -1;
		}
		return 0;
	}
	*end = '\0'; /* the header is done with once parsed, so it can be cut */
	if (strncmp(c->buf, "HTTP/1.1 200 ", 13) != 0 &&
	    strncmp(c->buf, "HTTP/1.0 200 ", 13) != 0) {
		*what = "status not 200";
		return -1;
	}
	for (line = strstr(c->buf, "\r\n"); line != NULL; line = next) {
		line += 2;
		next = strstr(line, "\r\n");
		if (strncasecmp(line, "Content-Length:", 15) == 0) {
			char *e;
			unsigned long v = strtoul(line + 15, &e, 10);

			if (e == line + 15 || v > RESP_MAX) {
				*what = "bad Content-Length";
				return -1;
			}
			c->body_len = v;
			have_len = true;
		} else if (strncasecmp(line, "Connection:", 11) == 0 &&
		           has_token_close(line + 11)) {
			c->peer_close = true;
		}
	}
	if (!have_len) {
		*what = "no Content-Length";
		return -1;
	}
	c->hdr_end = (size_t)(end - c->buf) + 4;
	return 0;
}

/* One response is complete: count it and start the next request on this slot. */
static void conn_done(struct bench *b, struct conn *c, double now)
{
	b->ok++;
	lat_record(b, now - c->t_req);
	if (b->o->mode == MODE_KEEPALIVE && !c->peer_close) {
		c->st = C_WRITE;
		c->t_req = now;
		c->len = c->hdr_end = c->body_len = 0;
		return;
	}
	/*
	 * Connection: close. Read once more so that a close_notify already queued is consumed
	 * (closing with unread data makes the kernel send a reset); if it is not there yet, send
	 * ours. Either way the server is not kept waiting, as wrk does.
	 */
	char scratch[256];
	int r = SSL_read(c->ssl, scratch, sizeof(scratch));

	if (r <= 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ)
		SSL_shutdown(c->ssl);
	ERR_clear_error();
	conn_close(c);
	conn_open(b, c);
}

/* Advance a connection as far as it can go without blocking. */
static void conn_step(struct bench *b, struct conn *c)
{
	const char *what = NULL;
	int r, err;

	for (;;) {
		switch (c->st) {
		case C_CONNECTING: {
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1 || soerr) {
				errno = soerr;
				conn_error(b, c, "connect");
				return;
			}
			c->ssl = SSL_new(b->ctx);
			if (c->ssl == NULL || !SSL_set_fd(c->ssl, c->fd)) {
				conn_error(b, c, "SSL_new");
				return;
			}
			if (b->o->verify_host && !SSL_set1_host(c->ssl, b->o->verify_host)) {
				conn_error(b, c, "SSL_set1_host");
				return;
			}
			SSL_set_connect_state(c->ssl);
			c->st = C_HANDSHAKE;
			break;
		}
		case C_HANDSHAKE:
			r = SSL_connect(c->ssl);
			if (r == 1) {
				c->st = C_WRITE;
				break;
			}
			what = "handshake";
			goto io_wait;
		case C_WRITE:
			r = SSL_write(c->ssl, b->req, b->reqlen);
			if (r > 0) {
				c->st = C_READ;
				break;
			}
			what = "write";
			goto io_wait;
		case C_READ:
			if (c->len == sizeof(c->buf)) {
				conn_error(b, c, "response too large");
				return;
			}
			r = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len));
			if (r <= 0) {
				what = "read";
				goto io_wait;
			}
			c->len += (size_t)r;
			if (c->hdr_end == 0 && parse_header(c, &what) == -1) {
				conn_error(b, c, what);
				return;
			}
			if (c->hdr_end != 0 && c->len >= c->hdr_end + c->body_len) {
				if (c->len > c->hdr_end + c->body_len) {
					conn_error(b, c, "data after the response");
					return;
				}
				conn_done(b, c, now_mono());
				if (c->fd == -1)
					return; /* reconnect failed; already counted */
				if (c->st == C_CONNECTING)
					return; /* wait for EPOLLOUT */
			}
			break;
		}
	}

io_wait:
	err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ)
		r = conn_want(b, c, EPOLLIN);
	else if (err == SSL_ERROR_WANT_WRITE)
		r = conn_want(b, c, EPOLLOUT);
	else {
		conn_error(b, c,
		           err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL
		               ? "connection closed by server"
		               : what);
		return;
	}
	if (r == -1)
		conn_error(b, c, "epoll_ctl");
}

/* Drop connections stuck longer than the timeout, so that one lost reply cannot hide. */
static void sweep_timeouts(struct bench *b, double now)
{
	for (int i = 0; i < b->o->concurrency; i++) {
		struct conn *c = &b->conns[i];

		if (c->fd >= 0 && now - c->t_req > b->o->timeout) {
			conn_error(b, c, "timeout");
			conn_open(b, c);
		}
	}
}

static int run(struct bench *b)
{
	int n = b->o->concurrency;
	struct epoll_event *evs = calloc((size_t)n, sizeof(*evs));
	double now, last_sweep;

	if (evs == NULL)
		return -1;
	b->t_start = last_sweep = now_mono();
	b->t_end = b->t_start + b->o->duration;
	for (int i = 0; i < n; i++)
		conn_open(b, &b->conns[i]);
	while (!g_stop && (now = now_mono()) < b->t_end) {
		/* Wake at least every 100 ms for timeouts, the end of the run and failed slots. */
		int ms = (int)((b->t_end - now) * 1000) + 1;
		int k = epoll_wait(b->ep, evs, n, ms < 100 ? ms : 100);

		if (k == -1 && errno != EINTR)
			break;
		for (int i = 0; i < k; i++)
			conn_step(b, evs[i].data.ptr);
		now = now_mono();
		if (now - last_sweep >= 0.1) {
			sweep_timeouts(b, now);
			/* A slot whose reconnect failed is retried here, not in a busy loop. */
			for (int i = 0; i < n; i++)
				if (b->conns[i].fd == -1)
					conn_open(b, &b->conns[i]);
			last_sweep = now;
		}
	}
	b->t_end = now_mono();
	free(evs);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: odm-bench --port N --cert F --key F --ca F [--host 127.0.0.1]\n"
	        "                 [--path /v1/health] [--mode new|keepalive] [--duration S]\n"
	        "                 [--concurrency C] [--groups P-256:X25519] [--verify-host NAME]\n"
	        "                 [--timeout S] [--full-verify]\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"cert", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {"ca", required_argument, NULL, 'a'},
	    {"path", required_argument, NULL, 'u'},
	    {"mode", required_argument, NULL, 'm'},
	    {"duration", required_argument, NULL, 'd'},
	    {"concurrency", required_argument, NULL, 'n'},
	    {"groups", required_argument, NULL, 'g'},
	    {"verify-host", required_argument, NULL, 'v'},
	    {"timeout", required_argument, NULL, 't'},
	    {"full-verify", no_argument, NULL, 'F'},
	    {"help", no_argument, NULL, 'H'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	*o = (struct opts){
	    .host = "127.0.0.1",
	    .path = "/v1/health",
	    /* P-256 first: the key share the client sends is for its first group, and the
	     * benchmark is specified with P-256; both servers accept either group. */
	    .groups = "P-256:X25519",
	    .mode = MODE_NEW,
	    .duration = 5,
	    .concurrency = 32,
	    .timeout = 10,
	};
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'h':
			o->host = optarg;
			break;
		case 'p':
			o->port = atoi(optarg);
			break;
		case 'c':
			o->cert = optarg;
			break;
		case 'k':
			o->key = optarg;
			break;
		case 'a':
			o->ca = optarg;
			break;
		case 'u':
			o->path = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "new") == 0)
				o->mode = MODE_NEW;
			else if (strcmp(optarg, "keepalive") == 0)
				o->mode = MODE_KEEPALIVE;
			else
				return -1;
			break;
		case 'd':
			o->duration = atof(optarg);
			break;
		case 'n':
			o->concurrency = atoi(optarg);
			break;
		case 'g':
			o->groups = optarg;
			break;
		case 'v':
			o->verify_host = optarg;
			break;
		case 't':
			o->timeout = atof(optarg);
			break;
		case 'F':
			o->full_verify = true;
			break;
		case 'H':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind != argc || o->port <= 0 || o->port > 65535 || !o->cert || !o->key || !o->ca ||
	    o->duration <= 0 || o->duration > 3600 || o->concurrency < 1 ||
	    o->concurrency > 10000 || o->timeout <= 0 || o->path[0] != '/')
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct bench b = {.o = &o, .ep = -1};
	struct tls_conf tc;
	struct rusage ru;
	char err[512];
	double secs, cpu;
	int rc = 1;

	if (parse_opts(argc, argv, &o) == -1) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN); /* a server closing first must be an error count, not death */
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	b.sa.sin_family = AF_INET;
	b.sa.sin_port = htons((uint16_t)o.port);
	if (inet_pton(AF_INET, o.host, &b.sa.sin_addr) != 1) {
		fprintf(stderr, "odm-bench: --host must be an IPv4 address\n");
		goto fail;
	}
	b.reqlen =
	    snprintf(b.req, sizeof(b.req),
	             "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: odm-bench\r\n"
	             "Accept: application/json\r\n%s\r\n",
	             o.path, o.host, o.port, o.mode == MODE_NEW ? "Connection: close\r\n" : "");
	if (b.reqlen < 0 || (size_t)b.reqlen >= sizeof(b.req)) {
		fprintf(stderr, "odm-bench: --path too long\n");
		goto fail;
	}

	/* The project's client policy (TLS 1.3, suites, verification), then the bench's group
	 * order on top of it. No session is ever offered to SSL_new, so no resumption. */
	tc = (struct tls_conf){.cert = (char *)o.cert, .key = (char *)o.key, .ca = (char *)o.ca};
	b.ctx = tls_client_ctx(&tc, err, sizeof(err));
	if (b.ctx == NULL) {
		fprintf(stderr, "odm-bench: %s\n", err);
		goto fail;
	}
	if (!SSL_CTX_set1_groups_list(b.ctx, o.groups)) {
		fprintf(stderr, "odm-bench: bad --groups %s\n", o.groups);
		goto fail;
	}
	SSL_CTX_set_session_cache_mode(b.ctx, SSL_SESS_CACHE_OFF);
	if (!o.full_verify)
		SSL_CTX_set_cert_verify_callback(b.ctx, verify_pinned, &b);

	b.ep = epoll_create1(EPOLL_CLOEXEC);
	b.conns = calloc((size_t)o.concurrency, sizeof(*b.conns));
	b.lat = calloc(LAT_BUCKETS + 1, sizeof(*b.lat));
	if (b.ep == -1 || b.conns == NULL || b.lat == NULL) {
		fprintf(stderr, "odm-bench: out of resources: %s\n", strerror(errno));
		goto fail;
	}
	for (int i = 0; i < o.concurrency; i++)
		b.conns[i].fd = -1;
	if (run(&b) == -1) {
		fprintf(stderr, "odm-bench: event loop failed: %s\n", strerror(errno));
		goto fail;
	}

	secs = b.t_end - b.t_start;
	getrusage(RUSAGE_SELF, &ru);
	cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	      (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	printf("mode=%s requests=%llu errors=%llu seconds=%.2f rate=%.1f/s p50_ms=%.2f "
	       "p99_ms=%.2f client_cpu=%.2f\n",
	       o.mode == MODE_NEW ? "new" : "keepalive", (unsigned long long)b.ok,
	       (unsigned long long)b.errors, secs, secs > 0 ? (double)b.ok / secs : 0.0,
	       lat_quantile(&b, 0.50), lat_quantile(&b, 0.99), secs > 0 ? cpu / secs : 0.0);
	rc = b.ok > 0 ? 0 : 1;
fail:
	if (b.conns != NULL)
		for (int i = 0; i < o.concurrency; i++)
			conn_close(&b.conns[i]);
	free(b.conns);
	free(b.lat);
	if (b.ep >= 0)
		close(b.ep);
	SSL_CTX_free(b.ctx);
	X509_free(b.pinned);
	return rc;
}
