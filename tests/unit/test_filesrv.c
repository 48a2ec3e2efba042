/*
 * filesrv behind the project's httpd, on a server thread, against a raw OpenSSL client that
 * sends exactly the headers under test and sees the raw response: whole files, byte ranges,
 * suffix ranges, 416, ignored Range headers, If-Range, HEAD, a 20 MiB file in bounded
 * memory, and files that are gone or unreadable.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <dirent.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "opendm/filesrv.h"
#include "opendm/httpd.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/tls.h"
#include "testutil.h"

#define SMALL_SIZE 1000
#define BIG_SIZE   (20 * 1024 * 1024)
#define BODY_KEEP  (64 * 1024)
#define ETAG_SMALL "\"small-v1\""
#define ETAG_BIG   "\"big-v1\""

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

struct fx {
	char dir[PATH_MAX];
	char ca[PATH_MAX], srv_cert[PATH_MAX], srv_key[PATH_MAX];
	char cli_cert[PATH_MAX], cli_key[PATH_MAX];
	char small[PATH_MAX], big[PATH_MAX], empty[PATH_MAX], gone[PATH_MAX], sub[PATH_MAX];
	unsigned char small_data[SMALL_SIZE];
	unsigned char big_md[32];
	/* What filesrv_reply_cb() reported, written by the server thread (mutex). */
	pthread_mutex_t cb_lock;
	int cb_calls, cb_ok;
	int64_t cb_first, cb_sent, cb_size;
	struct event_base *base;
	SSL_CTX *srv_ctx, *cli_ctx;
	struct httpd *h;
	struct event *ev_stop;
	int stop_pipe[2];
	int port;
	pthread_t thread;
};

struct resp {
	int status;
	char head[8192]; /* status line and headers */
	unsigned char body[BODY_KEEP];
	size_t len; /* body bytes received (all of them, even past BODY_KEEP) */
	unsigned char md[32];
};

/* The certificates name the loopback address the tests connect to. */
static const char *const leaf_ips[] = {"127.0.0.1", NULL};

static void cb_done(void *arg, int ok, int64_t first, int64_t sent, int64_t size)
{
	struct fx *fx = arg;

	pthread_mutex_lock(&fx->cb_lock);
	fx->cb_calls++;
	fx->cb_ok = ok;
	fx->cb_first = first;
	fx->cb_sent = sent;
	fx->cb_size = size;
	pthread_mutex_unlock(&fx->cb_lock);
}

static void h_file(struct httpd_req *req, void *arg)
{
	struct fx *fx = arg;
	const char *t = httpd_req_tail(req);

	if (strcmp(t, "small") == 0)
		filesrv_reply(req, fx->small, ETAG_SMALL, NULL);
	else if (strcmp(t, "big") == 0)
		filesrv_reply(req, fx->big, ETAG_BIG, NULL);
	else if (strcmp(t, "bigcb") == 0)
		filesrv_reply_cb(req, fx->big, ETAG_BIG, NULL, cb_done, fx);
	else if (strcmp(t, "gonecb") == 0)
		filesrv_reply_cb(req, fx->gone, "\"gone\"", NULL, cb_done, fx);
	else if (strcmp(t, "empty") == 0)
		filesrv_reply(req, fx->empty, "\"empty\"", "text/plain");
	else if (strcmp(t, "gone") == 0)
		filesrv_reply(req, fx->gone, "\"gone\"", NULL);
	else if (strcmp(t, "dir") == 0)
		filesrv_reply(req, fx->sub, "\"dir\"", NULL);
	else
		httpd_reply_error(req, 404, "not_found", "no such test file");
}

static const struct httpd_route routes[] = {
    {EVHTTP_REQ_GET, "/f/*", h_file, NULL, 0},
    {0, NULL, NULL, NULL, 0},
};

static void path_in(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	assert_true(n > 0 && n < PATH_MAX);
}

static void make_files(struct fx *fx)
{
	unsigned char *chunk;
	EVP_MD_CTX *md;
	unsigned int mdlen;
	FILE *f;
	size_t i, off;

	for (i = 0; i < SMALL_SIZE; i++)
		fx->small_data[i] = (unsigned char)(i * 7 + i / 256);
	assert_non_null(f = fopen(fx->small, "wb"));
	assert_int_equal(fwrite(fx->small_data, 1, SMALL_SIZE, f), SMALL_SIZE);
	assert_int_equal(fclose(f), 0);
	assert_non_null(f = fopen(fx->empty, "wb"));
	assert_int_equal(fclose(f), 0);
	assert_int_equal(mkdir(fx->sub, 0700), 0);

	assert_non_null(chunk = malloc(65536));
	assert_non_null(md = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
	assert_non_null(f = fopen(fx->big, "wb"));
	for (off = 0; off < BIG_SIZE; off += 65536) {
		for (i = 0; i < 65536; i++)
			chunk[i] = (unsigned char)((off + i) * 2654435761u >> 24);
		assert_int_equal(fwrite(chunk, 1, 65536, f), 65536);
		assert_int_equal(EVP_DigestUpdate(md, chunk, 65536), 1);
	}
	assert_int_equal(fclose(f), 0);
	assert_int_equal(EVP_DigestFinal_ex(md, fx->big_md, &mdlen), 1);
	EVP_MD_CTX_free(md);
	free(chunk);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void *server_main(void *arg)
{
	struct fx *fx = arg;

	event_base_dispatch(fx->base);
	return NULL;
}

static int group_setup(void **state)
{
	struct pki_issue rreq = {
	    PKI_PROFILE_ROOT, {"Test Root", NULL, NULL}, NULL, NULL, NULL, 0, 2};
	struct httpd_conf hc = {"127.0.0.1", 0, 64 * 1024, 16 * 1024, 16, 30};
	struct tls_conf stc, ctc;
	EVP_PKEY *ca_key;
	struct fx *fx;
	char err[256];
	X509 *ca;

	log_init("test_filesrv", LOG_LVL_ERR);
	assert_non_null(fx = calloc(1, sizeof(*fx)));
	assert_int_equal(pthread_mutex_init(&fx->cb_lock, NULL), 0);
	assert_int_equal(tu_tmpdir(fx->dir, sizeof(fx->dir), "filesrv"), 0);
	path_in(fx->ca, fx->dir, "ca.pem");
	path_in(fx->srv_cert, fx->dir, "server.pem");
	path_in(fx->srv_key, fx->dir, "server.key");
	path_in(fx->cli_cert, fx->dir, "client.pem");
	path_in(fx->cli_key, fx->dir, "client.key");
	path_in(fx->small, fx->dir, "small.bin");
	path_in(fx->big, fx->dir, "big.bin");
	path_in(fx->empty, fx->dir, "empty.bin");
	path_in(fx->gone, fx->dir, "gone.bin");
	path_in(fx->sub, fx->dir, "sub");

	assert_non_null(ca_key = pki_key_new());
	if ((ca = pki_issue(&rreq, ca_key, NULL, ca_key, err, sizeof(err))) == NULL)
		fail_msg("pki_issue root: %s", err);
	assert_int_equal(pki_certs_write(fx->ca, &ca, 1, err, sizeof(err)), 0);
	tu_make_leaf(fx->srv_cert, fx->srv_key, PKI_PROFILE_SERVER, "server", NULL, leaf_ips, ca,
	             ca_key);
	tu_make_leaf(fx->cli_cert, fx->cli_key, PKI_PROFILE_CLIENT, "client", NULL, leaf_ips, ca,
	             ca_key);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	make_files(fx);

	stc = (struct tls_conf){fx->srv_cert, fx->srv_key, fx->ca, NULL};
	ctc = (struct tls_conf){fx->cli_cert, fx->cli_key, fx->ca, NULL};
	assert_non_null(fx->base = event_base_new());
	if ((fx->srv_ctx = tls_server_ctx(&stc, err, sizeof(err))) == NULL)
		fail_msg("tls_server_ctx: %s", err);
	if ((fx->cli_ctx = tls_client_ctx(&ctc, err, sizeof(err))) == NULL)
		fail_msg("tls_client_ctx: %s", err);
	if ((fx->h = httpd_new(fx->base, &hc, fx->srv_ctx, routes, fx, err, sizeof(err))) == NULL)
		fail_msg("httpd_new: %s", err);
	fx->port = httpd_port(fx->h);
	/* The loop belongs to the server thread; the main thread only wakes it to stop. */
	assert_int_equal(pipe(fx->stop_pipe), 0);
	assert_non_null(fx->ev_stop =
	                    event_new(fx->base, fx->stop_pipe[0], EV_READ, stop_cb, fx->base));
	assert_int_equal(event_add(fx->ev_stop, NULL), 0);
	assert_int_equal(pthread_create(&fx->thread, NULL, server_main, fx), 0);
	*state = fx;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *fx = *state;
	const char *files[] = {fx->ca,      fx->srv_cert, fx->srv_key, fx->cli_cert,
	                       fx->cli_key, fx->small,    fx->big,     fx->empty};
	size_t i;

	assert_int_equal(write(fx->stop_pipe[1], "x", 1), 1);
	assert_int_equal(pthread_join(fx->thread, NULL), 0);
	event_free(fx->ev_stop);
	close(fx->stop_pipe[0]);
	close(fx->stop_pipe[1]);
	httpd_free(fx->h);
	/* Let the bufferevents httpd_free() left to the loop be finalized. */
	event_base_loop(fx->base, EVLOOP_NONBLOCK);
	SSL_CTX_free(fx->srv_ctx);
	SSL_CTX_free(fx->cli_ctx);
	event_base_free(fx->base);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		(void)unlink(files[i]);
	(void)rmdir(fx->sub);
	(void)rmdir(fx->dir);
	pthread_mutex_destroy(&fx->cb_lock);
	free(fx);
	return 0;
}

/* One request on a fresh connection ("Connection: close": the body ends at EOF). */
static void fetch(struct fx *fx, const char *method, const char *path, const char *extra,
                  struct resp *r)
{
	struct sockaddr_in sa;
	char req[1024], buf[16384];
	size_t hlen = 0;
	int fd, n, in_body = 0;
	unsigned int mdlen;
	EVP_MD_CTX *md;
	char *end;
	SSL *ssl;

	memset(r, 0, sizeof(*r));
	n = snprintf(req, sizeof(req),
	             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n", method,
	             path, extra != NULL ? extra : "");
	assert_true(n > 0 && (size_t)n < sizeof(req));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)fx->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_non_null(ssl = SSL_new(fx->cli_ctx));
	assert_int_equal(SSL_set_fd(ssl, fd), 1);
	assert_int_equal(SSL_connect(ssl), 1);
	assert_int_equal(SSL_write(ssl, req, n), n);
	assert_non_null(md = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);

	while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
		char *p = buf;
		size_t len = (size_t)n;

		if (!in_body) {
			size_t take =
			    len < sizeof(r->head) - 1 - hlen ? len : sizeof(r->head) - 1 - hlen;

			memcpy(r->head + hlen, buf, take);
			hlen += take;
			r->head[hlen] = '\0';
			if ((end = strstr(r->head, "\r\n\r\n")) == NULL) {
				assert_true(hlen < sizeof(r->head) - 1);
				continue;
			}
			in_body = 1;
			/* What followed the blank line in this read is body. */
			p = buf + (size_t)(end + 4 - r->head) - (hlen - take);
			len = (size_t)(buf + n - p);
			end[2] = '\0';
		}
		if (r->len < BODY_KEEP)
			memcpy(r->body + r->len, p,
			       len < BODY_KEEP - r->len ? len : BODY_KEEP - r->len);
		assert_int_equal(EVP_DigestUpdate(md, p, len), 1);
		r->len += len;
	}
	assert_true(in_body);
	assert_int_equal(EVP_DigestFinal_ex(md, r->md, &mdlen), 1);
	EVP_MD_CTX_free(md);
	SSL_free(ssl);
	close(fd);
	assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
}

/* The value of a response header ("" when absent), in buf. */
static const char *header(const struct resp *r, const char *name, char *buf, size_t len)
{
	const char *line = strstr(r->head, "\r\n");
	size_t nl = strlen(name);

	buf[0] = '\0';
	while (line != NULL && line[2] != '\0') {
		const char *s = line + 2, *e = strstr(s, "\r\n");

		if (e == NULL)
			break;
		if ((size_t)(e - s) > nl && strncasecmp(s, name, nl) == 0 && s[nl] == ':') {
			s += nl + 1;
			while (*s == ' ')
				s++;
			snprintf(buf, len, "%.*s", (int)(e - s), s);
			return buf;
		}
		line = e;
	}
	return buf;
}

static void assert_header(const struct resp *r, const char *name, const char *want)
{
	char buf[256];

	assert_string_equal(header(r, name, buf, sizeof(buf)), want);
}

static void assert_error_code(const struct resp *r, const char *code)
{
	json_t *j, *c;

	assert_non_null(j = json_loadb((const char *)r->body, r->len, 0, NULL));
	c = json_object_get(json_object_get(j, "error"), "code");
	assert_non_null(c);
	assert_string_equal(json_string_value(c), code);
	json_decref(j);
}

static void assert_part(const struct resp *r, size_t first, size_t last, struct fx *fx)
{
	char want[64];

	assert_int_equal(r->status, 206);
	snprintf(want, sizeof(want), "bytes %zu-%zu/%d", first, last, SMALL_SIZE);
	assert_header(r, "Content-Range", want);
	snprintf(want, sizeof(want), "%zu", last - first + 1);
	assert_header(r, "Content-Length", want);
	assert_int_equal(r->len, last - first + 1);
	assert_memory_equal(r->body, fx->small_data + first, r->len);
}

static void assert_whole_small(const struct resp *r, struct fx *fx)
{
	assert_int_equal(r->status, 200);
	assert_header(r, "Content-Length", "1000");
	assert_header(r, "Content-Range", "");
	assert_int_equal(r->len, SMALL_SIZE);
	assert_memory_equal(r->body, fx->small_data, SMALL_SIZE);
}

/* How many descriptors of this process are open on path: a download must give it back. */
static int fds_on(const char *path)
{
	DIR *dp = opendir("/proc/self/fd");
	char link[PATH_MAX + 64], target[PATH_MAX];
	struct dirent *e;
	ssize_t n;
	int count = 0;

	assert_non_null(dp);
	while ((e = readdir(dp)) != NULL) {
		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		if ((n = readlink(link, target, sizeof(target) - 1)) <= 0)
			continue;
		target[n] = '\0';
		count += strcmp(target, path) == 0;
	}
	closedir(dp);
	return count;
}

static void test_whole(void **state)
{
	struct fx *fx = *state;
	struct resp r;

	fetch(fx, "GET", "/f/small", NULL, &r);
	assert_whole_small(&r, fx);
	assert_header(&r, "ETag", ETAG_SMALL);
	assert_header(&r, "Accept-Ranges", "bytes");
	assert_header(&r, "Content-Type", "application/octet-stream");

	fetch(fx, "GET", "/f/empty", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Length", "0");
	assert_header(&r, "Content-Type", "text/plain");
	assert_int_equal(r.len, 0);
}

static void test_ranges(void **state)
{
	struct fx *fx = *state;
	struct resp r;

	fetch(fx, "GET", "/f/small", "Range: bytes=10-\r\n", &r);
	assert_part(&r, 10, 999, fx);
	assert_header(&r, "ETag", ETAG_SMALL);
	fetch(fx, "GET", "/f/small", "Range: bytes=10-19\r\n", &r);
	assert_part(&r, 10, 19, fx);
	fetch(fx, "GET", "/f/small", "Range: bytes=0-0\r\n", &r);
	assert_part(&r, 0, 0, fx);
	fetch(fx, "GET", "/f/small", "Range: bytes=999-999\r\n", &r);
	assert_part(&r, 999, 999, fx);
	/* A last position past the end is clamped to it. */
	fetch(fx, "GET", "/f/small", "Range: BYTES=990-5000\r\n", &r);
	assert_part(&r, 990, 999, fx);
	/* The file is closed when the reply is complete, before the connection closes. */
	assert_int_equal(fds_on(fx->small), 0);
}

static void test_suffix(void **state)
{
	struct fx *fx = *state;
	struct resp r;

	fetch(fx, "GET", "/f/small", "Range: bytes=-100\r\n", &r);
	assert_part(&r, 900, 999, fx);
	fetch(fx, "GET", "/f/small", "Range: bytes=-5000\r\n", &r);
	assert_part(&r, 0, 999, fx);
}

static void test_unsatisfiable(void **state)
{
	static const char *const ranges[] = {"bytes=1000-", "bytes=1000-2000", "bytes=-0",
	                                     "bytes=99999999999999-"};
	struct fx *fx = *state;
	char extra[128];
	struct resp r;
	size_t i;

	for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		snprintf(extra, sizeof(extra), "Range: %s\r\n", ranges[i]);
		fetch(fx, "GET", "/f/small", extra, &r);
		assert_int_equal(r.status, 416);
		assert_header(&r, "Content-Range", "bytes */1000");
		assert_error_code(&r, "range_not_satisfiable");
	}
	fetch(fx, "GET", "/f/empty", "Range: bytes=0-\r\n", &r);
	assert_int_equal(r.status, 416);
	assert_header(&r, "Content-Range", "bytes */0");
}

/* Malformed, multi-range, other units, overflow: ignored, so the whole file (200). */
static void test_ignored_ranges(void **state)
{
	static const char *const ranges[] = {"bytes=1-2,5-6",  "bytes=abc",
	                                     "items=1-2",      "bytes=5-2",
	                                     "bytes=",         "bytes=-",
	                                     "bytes=1-2x",     "bytes=--5",
	                                     "bytes=1",        "bytes=99999999999999999999999-",
	                                     "bytes= 1-2, 3-4"};
	struct fx *fx = *state;
	char extra[128];
	struct resp r;
	size_t i;

	for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		snprintf(extra, sizeof(extra), "Range: %s\r\n", ranges[i]);
		fetch(fx, "GET", "/f/small", extra, &r);
		assert_whole_small(&r, fx);
	}
}

static void test_if_range(void **state)
{
	struct fx *fx = *state;
	struct resp r;

	fetch(fx, "GET", "/f/small", "Range: bytes=100-\r\nIf-Range: \"small-v0\"\r\n", &r);
	assert_whole_small(&r, fx);
	fetch(fx, "GET", "/f/small",
	      "Range: bytes=100-\r\nIf-Range: Tue, 24 Nov 2026 17:00:00 GMT\r\n", &r);
	assert_whole_small(&r, fx);
	fetch(fx, "GET", "/f/small", "Range: bytes=100-\r\nIf-Range: " ETAG_SMALL "\r\n", &r);
	assert_part(&r, 100, 999, fx);
	/* A resume made of two ranges gives back the whole file. */
	fetch(fx, "GET", "/f/small", "Range: bytes=0-499\r\nIf-Range: " ETAG_SMALL "\r\n", &r);
	assert_part(&r, 0, 499, fx);
}

static void test_head(void **state)
{
	struct fx *fx = *state;
	struct resp r;

	fetch(fx, "HEAD", "/f/small", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Length", "1000");
	assert_header(&r, "ETag", ETAG_SMALL);
	assert_header(&r, "Accept-Ranges", "bytes");
	assert_int_equal(r.len, 0);

	fetch(fx, "HEAD", "/f/small", "Range: bytes=-10\r\n", &r);
	assert_int_equal(r.status, 206);
	assert_header(&r, "Content-Range", "bytes 990-999/1000");
	assert_header(&r, "Content-Length", "10");
	assert_int_equal(r.len, 0);
}

static long maxrss_kib(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_maxrss;
}

static void test_big_bounded(void **state)
{
	struct fx *fx = *state;
	long before = maxrss_kib(), grown;
	char want[64];
	struct resp r;

	fetch(fx, "GET", "/f/big", NULL, &r);
	assert_int_equal(r.status, 200);
	snprintf(want, sizeof(want), "%d", BIG_SIZE);
	assert_header(&r, "Content-Length", want);
	assert_int_equal(r.len, BIG_SIZE);
	assert_memory_equal(r.md, fx->big_md, 32);
	grown = maxrss_kib() - before;
#ifndef UNDER_ASAN
	/* The file is never held whole: serving 20 MiB costs a few buffers. (ASan keeps freed
	 * memory in quarantine, so there the peak says nothing about the server.) */
	assert_true(grown < 8 * 1024);
#endif
	(void)grown;

	/* The tail of the big file, as a resumed download would ask for it. */
	fetch(fx, "GET", "/f/big", "Range: bytes=20971000-\r\n", &r);
	assert_int_equal(r.status, 206);
	assert_header(&r, "Content-Range", "bytes 20971000-20971519/20971520");
	assert_int_equal(r.len, 520);
}

static void test_missing(void **state)
{
	struct fx *fx = *state;
	struct resp r;

	fetch(fx, "GET", "/f/gone", NULL, &r);
	assert_int_equal(r.status, 404);
	assert_error_code(&r, "not_found");
	assert_header(&r, "Content-Type", "application/json");
	fetch(fx, "GET", "/f/dir", NULL, &r);
	assert_int_equal(r.status, 500);
	assert_error_code(&r, "internal_error");
}

/* The done callback's report once it came (the server finishes after the client read it). */
static int cb_wait(struct fx *fx, int calls)
{
	int i, n = 0;

	for (i = 0; i < 500 && n < calls; i++) {
		pthread_mutex_lock(&fx->cb_lock);
		n = fx->cb_calls;
		pthread_mutex_unlock(&fx->cb_lock);
		if (n < calls)
			usleep(10000);
	}
	return n;
}

static void test_done_callback(void **state)
{
	struct fx *fx = *state;
	struct resp r;

	pthread_mutex_lock(&fx->cb_lock);
	fx->cb_calls = 0;
	pthread_mutex_unlock(&fx->cb_lock);
	/* A resumed download to the end: all of it sent, from where it started. */
	fetch(fx, "GET", "/f/bigcb", "Range: bytes=1000-\r\n", &r);
	assert_int_equal(r.status, 206);
	assert_int_equal(cb_wait(fx, 1), 1);
	assert_int_equal(fx->cb_ok, 1);
	assert_int_equal(fx->cb_first, 1000);
	assert_int_equal(fx->cb_sent, BIG_SIZE - 1000);
	assert_int_equal(fx->cb_size, BIG_SIZE);
	/* Nothing streamed (416, a vanished file): told once, not ok. */
	fetch(fx, "GET", "/f/bigcb", "Range: bytes=99999999-\r\n", &r);
	assert_int_equal(r.status, 416);
	assert_int_equal(cb_wait(fx, 2), 2);
	assert_int_equal(fx->cb_ok, 0);
	assert_int_equal(fx->cb_size, BIG_SIZE);
	fetch(fx, "GET", "/f/gonecb", NULL, &r);
	assert_int_equal(r.status, 404);
	assert_int_equal(cb_wait(fx, 3), 3);
	assert_int_equal(fx->cb_ok, 0);
	assert_int_equal(fx->cb_size, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_whole),          cmocka_unit_test(test_ranges),
	    cmocka_unit_test(test_suffix),         cmocka_unit_test(test_unsatisfiable),
	    cmocka_unit_test(test_ignored_ranges), cmocka_unit_test(test_if_range),
	    cmocka_unit_test(test_head),           cmocka_unit_test(test_big_bounded),
	    cmocka_unit_test(test_missing),        cmocka_unit_test(test_done_callback),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
