/*
 * httpc: libcurl multi driven by libevent (the hiperfifo pattern).
 *
 * curl tells us which sockets to watch (sock_cb) and when to wake it (timer_cb); libevent
 * tells curl what happened (curl_multi_socket_action); finished transfers are collected with
 * curl_multi_info_read and handed to their callback. curl_global_init() is the program's job
 * (main or the test setup): it is not thread-safe and this module keeps no global state.
 */
#include <sys/queue.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "opendm/file.h"
#include "opendm/httpc.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/tls.h"

#define HTTPC_CONNECT_TIMEOUT_MS 10000L
#define HTTPC_TIMEOUT_MS         30000L
#define HTTPC_MAX_RESPONSE       (1024 * 1024)
#define HTTPC_MAX_URL            8192
#define HTTPC_RID_MAX            64
#define HTTPC_RID_BYTES          8
#define HTTPC_ERR_TOO_LARGE      "response too large"

struct httpc_sock {
	LIST_ENTRY(httpc_sock) link;
	struct httpc *c;
	curl_socket_t fd;
	struct event *ev;
};

struct httpc_xfer {
	TAILQ_ENTRY(httpc_xfer) link;
	struct httpc *c;
	CURL *easy;
	struct curl_slist *headers;
	httpc_cb cb;
	void *arg;
	char method[8];
	char rid[HTTPC_RID_MAX + 1];
	char resp_rid[HTTPC_RID_MAX + 1];
	char *buf;
	size_t len;
	size_t cap;
	int too_large;
	char errbuf[CURL_ERROR_SIZE];
	struct httpc_dl *dl; /* NULL unless this is a download to a file */
};

/*
 * A download's state: the body of a 200/206 goes to fd; any other status (an error reply) is
 * kept in memory like a normal response so the caller sees the server's JSON error.
 */
struct httpc_dl {
	int fd;
	int64_t have;        /* bytes already in the file when the request started */
	int64_t max_size;    /* the whole file may not grow past this */
	int64_t written;     /* bytes of this response written to fd */
	int64_t range_start; /* first byte of a 206's Content-Range, -1 if none seen */
	int mode;            /* 0 undecided, 1 to the file, 2 to memory */
	int failed;          /* a local write error or a mismatched range */
	char why[128];
	int owned;        /* httpc_download(): freed (and fd closed) with the transfer */
	httpc_cb user_cb; /* httpc_download(): the caller's callback */
	void *user_arg;
};

/* A response plus room for its error text, so a copy owns everything it points to. */
struct httpc_resp_store {
	struct httpc_resp r; /* first: httpc_resp_free() frees the store through it */
	char error[CURL_ERROR_SIZE];
};

struct httpc_tls {
	char *cert;
	char *key;
	char *ca;
	char *crl;
};

struct httpc {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct httpc_tls tls;
	char *proxy;
	struct httpc_tls proxy_tls;
	long connect_timeout_ms;
	long timeout_ms;
	size_t max_response;
	TAILQ_HEAD(, httpc_xfer) xfers;
	LIST_HEAD(, httpc_sock) socks;
	/*
	 * A callback may call httpc_free(); while we are inside our own dispatch the free is
	 * deferred until the outermost libevent callback unwinds.
	 */
	int busy;
	int dying;
};

static void httpc_destroy(struct httpc *c);

static int httpc_set_str(char **dst, const char *src, const char *what, char *err, size_t errlen)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	if (strnlen(src, PATH_MAX) >= PATH_MAX) {
		snprintf(err, errlen, "%s: path too long", what);
		return -1;
	}
	if ((*dst = strdup(src)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", what);
		return -1;
	}
	return 0;
}

static void httpc_tls_clear(struct httpc_tls *t)
{
	free(t->cert);
	free(t->key);
	free(t->ca);
	free(t->crl);
	memset(t, 0, sizeof(*t));
}

/*
 * Copy one side's TLS files, refusing a key anyone else can read before curl ever loads it
 * (curl would happily use it), and a missing CA (curl would fall back to the system store).
 */
static int httpc_tls_copy(struct httpc_tls *t, const struct tls_conf *conf, const char *what,
                          char *err, size_t errlen)
{
	char e[256];

	if (conf->ca == NULL) {
		snprintf(err, errlen, "%s: no CA file configured", what);
		return -1;
	}
	if ((conf->cert == NULL) != (conf->key == NULL)) {
		snprintf(err, errlen, "%s: client certificate and key go together", what);
		return -1;
	}
	if (conf->key != NULL && file_check_private(conf->key, e, sizeof(e)) == -1) {
		snprintf(err, errlen, "%s: unsafe client key: %s", what, e);
		return -1;
	}
	if (httpc_set_str(&t->cert, conf->cert, what, err, errlen) == -1 ||
	    httpc_set_str(&t->key, conf->key, what, err, errlen) == -1 ||
	    httpc_set_str(&t->ca, conf->ca, what, err, errlen) == -1 ||
	    httpc_set_str(&t->crl, conf->crl, what, err, errlen) == -1)
		return -1;
	return 0;
}

static void httpc_sock_free(struct httpc *c, struct httpc_sock *s)
{
	LIST_REMOVE(s, link);
	/* Safe from within the event's own callback: libevent has copied what it needs. */
	event_free(s->ev);
	free(s);
}

static void httpc_resp_fill(struct httpc_xfer *x, CURLcode rc, struct httpc_resp_store *rs)
{
	struct httpc_resp *r = &rs->r;
	const char *ct = NULL;
	json_error_t jerr;
	size_t n;

	memset(rs, 0, sizeof(*rs));
	r->curl_code = (int)rc;
	if (rc == CURLE_WRITE_ERROR && x->dl != NULL && x->dl->failed) {
		snprintf(rs->error, sizeof(rs->error), "%s", x->dl->why);
		r->error = rs->error;
		x->len = 0;
		rc = CURLE_OK; /* reported; skip the generic text below */
		goto body;
	}
	if (rc == CURLE_WRITE_ERROR && x->too_large)
		rc = CURLE_FILESIZE_EXCEEDED;
	if (rc != CURLE_OK) {
		if (rc == CURLE_FILESIZE_EXCEEDED)
			snprintf(rs->error, sizeof(rs->error), "%s", HTTPC_ERR_TOO_LARGE);
		else if (x->errbuf[0] != '\0')
			snprintf(rs->error, sizeof(rs->error), "%s", x->errbuf);
		else
			snprintf(rs->error, sizeof(rs->error), "%s", curl_easy_strerror(rc));
		r->error = rs->error;
		/* A partial body is not a response: callers only see status 0 and the error. */
		x->len = 0;
	} else {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->status);
		memcpy(r->rid, x->resp_rid, sizeof(r->rid));
	}
body:
	if (x->buf == NULL)
		x->buf = calloc(1, 1);
	if (x->buf != NULL)
		x->buf[x->len] = '\0';
	else if (r->error == NULL) {
		/* The body cannot be represented; report it rather than hand out NULL. */
		snprintf(rs->error, sizeof(rs->error), "out of memory");
		r->error = rs->error;
		r->status = 0;
	}
	r->body = x->buf;
	r->len = r->body != NULL ? x->len : 0;
	x->buf = NULL;
	x->len = x->cap = 0;

	if (r->error != NULL || r->body == NULL)
		return;
	curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
	if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
		return;
	n = strlen("application/json");
	if (ct[n] != '\0' && ct[n] != ';' && ct[n] != ' ')
		return;
	r->json = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &jerr);
	if (r->json == NULL)
		log_rdebug(x->rid, "status %ld: JSON body does not parse: %s", r->status,
		           jerr.text);
}

static void httpc_xfer_free(struct httpc_xfer *x)
{
	if (x == NULL)
		return;
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	free(x->buf);
	if (x->dl != NULL && x->dl->owned) {
		if (x->dl->fd != -1)
			close(x->dl->fd);
		free(x->dl);
	}
	free(x);
}

/* Take x out of the multi and the list; no callback. */
static void httpc_xfer_cancel(struct httpc_xfer *x)
{
	struct httpc *c = x->c;

	curl_multi_remove_handle(c->multi, x->easy);
	TAILQ_REMOVE(&c->xfers, x, link);
	httpc_xfer_free(x);
}

static void httpc_xfer_done(struct httpc_xfer *x, CURLcode rc)
{
	struct httpc *c = x->c;
	struct httpc_resp_store rs;
	httpc_cb cb = x->cb;
	void *arg = x->arg;
	struct httpc_dl *owned = NULL;

	curl_multi_remove_handle(c->multi, x->easy);
	TAILQ_REMOVE(&c->xfers, x, link);
	httpc_resp_fill(x, rc, &rs);
	if (rs.r.error != NULL)
		log_rwarn(x->rid, "%s: %s", x->method, rs.r.error);
	/* An httpc_download() state is the callback's argument: it outlives the transfer and
	 * goes after the callback. */
	if (x->dl != NULL && x->dl->owned) {
		owned = x->dl;
		x->dl = NULL;
	}
	/* Freed before the callback so that it may start new requests or free c. */
	httpc_xfer_free(x);
	cb(&rs.r, arg);
	if (owned != NULL) {
		close(owned->fd);
		free(owned);
	}
	free(rs.r.body);
	json_decref(rs.r.json);
}

static void httpc_dispatch(struct httpc *c)
{
	CURLMsg *msg;
	struct httpc_xfer *x;
	CURLcode rc;
	CURL *easy;
	char *priv;
	int left;

	while (!c->dying && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg dies with curl_multi_remove_handle(): copy out first. */
		easy = msg->easy_handle;
		rc = msg->data.result;
		priv = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		if ((x = (struct httpc_xfer *)priv) == NULL) {
			log_err("transfer without context");
			curl_multi_remove_handle(c->multi, easy);
			continue;
		}
		httpc_xfer_done(x, rc);
	}
}

static void httpc_leave(struct httpc *c)
{
	if (--c->busy == 0 && c->dying)
		httpc_destroy(c);
}

static void httpc_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpc_sock *s = arg;
	/* s may be freed by curl inside socket_action; keep c. */
	struct httpc *c = s->c;
	int action = 0, running;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	c->busy++;
	curl_multi_socket_action(c->multi, fd, action, &running);
	httpc_dispatch(c);
	httpc_leave(c);
}

static void httpc_timer_ev(evutil_socket_t fd, short what, void *arg)
{
	struct httpc *c = arg;
	int running;

	c->busy++;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	httpc_dispatch(c);
	httpc_leave(c);
}

static int httpc_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct httpc *c = arg;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	/* Never call socket_action from here (curl forbids it): a 0 timeout fires next turn. */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(c->timer, &tv) == 0 ? 0 : -1;
}

static int httpc_sock_cb(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct httpc *c = arg;
	struct httpc_sock *s = sockp;
	short kind = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL)
			httpc_sock_free(c, s);
		return 0;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			goto fail;
		s->c = c;
		s->fd = fd;
		if ((s->ev = event_new(c->base, fd, 0, httpc_event_cb, s)) == NULL) {
			free(s);
			goto fail;
		}
		LIST_INSERT_HEAD(&c->socks, s, link);
		curl_multi_assign(c->multi, fd, s);
	}
	event_del(s->ev);
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (!(kind & (EV_READ | EV_WRITE)))
		return 0;
	event_assign(s->ev, c->base, fd, kind, httpc_event_cb, s);
	if (event_add(s->ev, NULL) == -1)
		goto fail;
	return 0;
fail:
	/* curl (>= 7.84) fails the transfers on this multi when we return -1. */
	log_err("cannot watch socket %d", (int)fd);
	return -1;
}

static CURLcode httpc_ssl_ctx_cb(CURL *easy, void *ssl_ctx, void *arg)
{
	char err[256];

	if (tls_apply_policy(ssl_ctx, err, sizeof(err)) == -1) {
		log_err("TLS policy: %s", err);
		return CURLE_SSL_CERTPROBLEM;
	}
	return CURLE_OK;
}

static size_t httpc_dl_write(struct httpc_xfer *x, const char *data, size_t n);

static size_t httpc_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct httpc_xfer *x = arg;
	size_t n = size * nmemb, max = x->c->max_response, cap;
	char *p;

	if (x->dl != NULL && x->dl->mode != 2)
		return httpc_dl_write(x, data, n);

	if (n > max - x->len) {
		x->too_large = 1;
		return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
	}
	if (x->len + n + 1 > x->cap) {
		cap = x->cap == 0 ? 4096 : x->cap;
		while (cap < x->len + n + 1)
			cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
		if ((p = realloc(x->buf, cap)) == NULL)
			return 0;
		x->buf = p;
		x->cap = cap;
	}
	memcpy(x->buf + x->len, data, n);
	x->len += n;
	return n;
}

static size_t httpc_dl_write(struct httpc_xfer *x, const char *data, size_t n)
{
	struct httpc_dl *dl = x->dl;
	long status = 0;
	size_t off = 0;
	ssize_t w;

	if (dl->mode == 0) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 206) {
			if (dl->range_start != dl->have) {
				snprintf(dl->why, sizeof(dl->why),
				         "206 starts at byte %" PRId64 ", file has %" PRId64,
				         dl->range_start, dl->have);
				dl->failed = 1;
				return 0;
			}
		} else if (status == 200) {
			/* The server sent the whole file (no range support or a new ETag). */
			if (ftruncate(dl->fd, 0) == -1) {
				snprintf(dl->why, sizeof(dl->why), "truncate: %s", strerror(errno));
				dl->failed = 1;
				return 0;
			}
			dl->have = 0;
		} else {
			dl->mode = 2;
			return httpc_write_cb((char *)data, 1, n, x);
		}
		dl->mode = 1;
	}
	if ((int64_t)n > dl->max_size - dl->have - dl->written) {
		x->too_large = 1;
		return 0;
	}
	while (off < n) {
		if ((w = write(dl->fd, data + off, n - off)) == -1) {
			if (errno == EINTR)
				continue;
			snprintf(dl->why, sizeof(dl->why), "write: %s", strerror(errno));
			dl->failed = 1;
			return 0;
		}
		off += (size_t)w;
	}
	dl->written += (int64_t)n;
	return n;
}

static int httpc_rid_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > HTTPC_RID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("-_.:", s[i]) == NULL)
			return 0;
	return 1;
}

/* Content-Range: bytes A-B/T — only A matters: it must be where our file ends. */
static void httpc_dl_header(struct httpc_dl *dl, const char *data, size_t n)
{
	static const char name[] = "content-range:";
	char line[128], *end;
	const char *v;
	long long a;

	if (n < sizeof(name) - 1 || n >= sizeof(line) ||
	    strncasecmp(data, name, sizeof(name) - 1) != 0)
		return;
	memcpy(line, data, n);
	line[n] = '\0';
	v = line + sizeof(name) - 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (strncmp(v, "bytes ", 6) != 0 || !isdigit((unsigned char)v[6]))
		return;
	errno = 0;
	a = strtoll(v + 6, &end, 10);
	if (errno == 0 && *end == '-' && a >= 0)
		dl->range_start = a;
}

static size_t httpc_header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	static const char name[] = "x-request-id:";
	struct httpc_xfer *x = arg;
	size_t n = size * nmemb, i, len;
	const char *v;

	/* A new status line (e.g. after 1xx) starts a new header block. */
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		x->resp_rid[0] = '\0';
		if (x->dl != NULL)
			x->dl->range_start = -1;
		return n;
	}
	if (x->dl != NULL)
		httpc_dl_header(x->dl, data, n);
	if (n < sizeof(name) - 1 || strncasecmp(data, name, sizeof(name) - 1) != 0)
		return n;
	v = data + sizeof(name) - 1;
	len = n - (sizeof(name) - 1);
	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)v[len - 1]))
		len--;
	if (!httpc_rid_ok(v, len)) {
		log_rdebug(x->rid, "ignoring malformed X-Request-Id in response");
		return n;
	}
	for (i = 0; i < len; i++)
		x->resp_rid[i] = v[i];
	x->resp_rid[len] = '\0';
	return n;
}

#define SETOPT(opt, val)                                                                           \
	do {                                                                                       \
		if ((rc = curl_easy_setopt(x->easy, (opt), (val))) != CURLE_OK) {                  \
			log_rerr(x->rid, "%s: %s", #opt, curl_easy_strerror(rc));                  \
			goto fail;                                                                 \
		}                                                                                  \
	} while (0)

static int httpc_xfer_tls(struct httpc_xfer *x, const struct httpc_tls *t)
{
	CURLcode rc;

	SETOPT(CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3);
	SETOPT(CURLOPT_TLS13_CIPHERS, TLS_CIPHERSUITES);
	SETOPT(CURLOPT_SSL_EC_CURVES, TLS_GROUPS);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(CURLOPT_CAINFO, t->ca);
	/* Only our trust anchors, never the distribution's directory. */
	SETOPT(CURLOPT_CAPATH, (char *)NULL);
	if (t->crl != NULL)
		SETOPT(CURLOPT_CRLFILE, t->crl);
	if (t->cert != NULL) {
		SETOPT(CURLOPT_SSLCERT, t->cert);
		SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
		SETOPT(CURLOPT_SSLKEY, t->key);
		SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
	}
	return 0;
fail:
	return -1;
}

static int httpc_xfer_proxy(struct httpc_xfer *x, const char *proxy, const struct httpc_tls *t)
{
	CURLcode rc;

	if (proxy == NULL) {
		/* "" rather than unset: curl would otherwise obey https_proxy from the env. */
		SETOPT(CURLOPT_PROXY, "");
		return 0;
	}
	SETOPT(CURLOPT_PROXY, proxy);
	SETOPT(CURLOPT_PROXYTYPE, (long)CURLPROXY_HTTPS);
	SETOPT(CURLOPT_HTTPPROXYTUNNEL, 1L);
	SETOPT(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	SETOPT(CURLOPT_PROXY_SSLVERSION, CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3);
	SETOPT(CURLOPT_PROXY_TLS13_CIPHERS, TLS_CIPHERSUITES);
	SETOPT(CURLOPT_PROXY_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_PROXY_SSL_VERIFYHOST, 2L);
	SETOPT(CURLOPT_PROXY_CAINFO, t->ca);
	SETOPT(CURLOPT_PROXY_CAPATH, (char *)NULL);
	if (t->crl != NULL)
		SETOPT(CURLOPT_PROXY_CRLFILE, t->crl);
	if (t->cert != NULL) {
		SETOPT(CURLOPT_PROXY_SSLCERT, t->cert);
		SETOPT(CURLOPT_PROXY_SSLCERTTYPE, "PEM");
		SETOPT(CURLOPT_PROXY_SSLKEY, t->key);
		SETOPT(CURLOPT_PROXY_SSLKEYTYPE, "PEM");
	}
	return 0;
fail:
	return -1;
}

static int httpc_xfer_headers(struct httpc_xfer *x, int has_body, const char *etag)
{
	static const char *const fixed[] = {
	    "Accept: application/json",
	    "Expect:", /* no 100-continue round trip for small JSON bodies */
	};
	static const char *const fixed_dl[] = {
	    "Accept: application/octet-stream, application/json",
	    "Expect:",
	};
	const char *const *f = x->dl != NULL ? fixed_dl : fixed;
	struct curl_slist *l;
	char line[32 + HTTPC_RID_MAX], range[320];
	size_t i;

	for (i = 0; i < 2; i++) {
		if ((l = curl_slist_append(x->headers, f[i])) == NULL)
			return -1;
		x->headers = l;
	}
	if (x->dl != NULL && x->dl->have > 0) {
		snprintf(range, sizeof(range), "Range: bytes=%" PRId64 "-", x->dl->have);
		if ((l = curl_slist_append(x->headers, range)) == NULL)
			return -1;
		x->headers = l;
		if (etag != NULL) {
			snprintf(range, sizeof(range), "If-Range: %s", etag);
			if ((l = curl_slist_append(x->headers, range)) == NULL)
				return -1;
			x->headers = l;
		}
	}
	if (has_body) {
		if ((l = curl_slist_append(x->headers, "Content-Type: application/json")) == NULL)
			return -1;
		x->headers = l;
	}
	snprintf(line, sizeof(line), "X-Request-Id: %s", x->rid);
	if ((l = curl_slist_append(x->headers, line)) == NULL)
		return -1;
	x->headers = l;
	return 0;
}

static struct httpc_xfer *httpc_start(struct httpc *c, const char *method, const char *url,
                                      const char *rid, const json_t *body, httpc_cb cb, void *arg,
                                      struct httpc_dl *dl, const char *etag)
{
	struct httpc_xfer *x = NULL;
	char *text = NULL;
	CURLcode rc;
	CURLMcode mrc;

	if (c == NULL || c->dying || method == NULL || url == NULL || cb == NULL) {
		log_err("invalid arguments");
		goto fail;
	}
	if (strnlen(url, HTTPC_MAX_URL) >= HTTPC_MAX_URL) {
		log_rerr(rid, "URL too long");
		goto fail;
	}
	if (rid != NULL && !httpc_rid_ok(rid, strnlen(rid, HTTPC_RID_MAX + 1))) {
		log_err("invalid request id");
		goto fail;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 &&
	    strcmp(method, "PUT") != 0 && strcmp(method, "DELETE") != 0) {
		log_rerr(rid, "unsupported method");
		goto fail;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		log_rerr(rid, "out of memory");
		goto fail;
	}
	x->c = c;
	x->cb = cb;
	x->arg = arg;
	x->dl = dl;
	snprintf(x->method, sizeof(x->method), "%s", method);
	if (rid != NULL)
		snprintf(x->rid, sizeof(x->rid), "%s", rid);
	else if (jose_random_hex(x->rid, sizeof(x->rid), HTTPC_RID_BYTES) == -1) {
		log_err("cannot make a request id");
		goto fail;
	}
	if ((x->easy = curl_easy_init()) == NULL) {
		log_rerr(x->rid, "curl_easy_init failed");
		goto fail;
	}
	if (httpc_xfer_headers(x, body != NULL, etag) == -1) {
		log_rerr(x->rid, "out of memory");
		goto fail;
	}
	SETOPT(CURLOPT_URL, url);
	/* Plain http would silently drop mutual TLS. */
	SETOPT(CURLOPT_PROTOCOLS_STR, "https");
	SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_PRIVATE, x);
	SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
	SETOPT(CURLOPT_HTTPHEADER, x->headers);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	if (dl == NULL) {
		SETOPT(CURLOPT_TIMEOUT_MS, c->timeout_ms);
		/* Refused early when Content-Length is known; the write callback does the rest. */
		SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response);
	} else {
		/* A large package may take long: give up on a stalled transfer, not a slow one. */
		SETOPT(CURLOPT_TIMEOUT_MS, 0L);
		SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
		SETOPT(CURLOPT_LOW_SPEED_TIME, (c->timeout_ms + 999) / 1000);
		SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)dl->max_size);
	}
	SETOPT(CURLOPT_WRITEFUNCTION, httpc_write_cb);
	SETOPT(CURLOPT_WRITEDATA, x);
	SETOPT(CURLOPT_HEADERFUNCTION, httpc_header_cb);
	SETOPT(CURLOPT_HEADERDATA, x);
	SETOPT(CURLOPT_SSL_CTX_FUNCTION, httpc_ssl_ctx_cb);
	SETOPT(CURLOPT_SSL_CTX_DATA, c);
	if (httpc_xfer_tls(x, &c->tls) == -1 || httpc_xfer_proxy(x, c->proxy, &c->proxy_tls) == -1)
		goto fail;

	if (body != NULL) {
		if ((text = json_dumps(body, JSON_COMPACT)) == NULL) {
			log_rerr(x->rid, "cannot serialize the body");
			goto fail;
		}
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(text));
		SETOPT(CURLOPT_COPYPOSTFIELDS, text);
	} else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		/* An empty body with Content-Length: 0, not a chunked upload from stdin. */
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		SETOPT(CURLOPT_COPYPOSTFIELDS, "");
	}
	if (strcmp(method, "GET") == 0 && body == NULL)
		SETOPT(CURLOPT_HTTPGET, 1L);
	else if (strcmp(method, "POST") != 0)
		SETOPT(CURLOPT_CUSTOMREQUEST, method);

	if ((mrc = curl_multi_add_handle(c->multi, x->easy)) != CURLM_OK) {
		log_rerr(x->rid, "curl_multi_add_handle: %s", curl_multi_strerror(mrc));
		goto fail;
	}
	TAILQ_INSERT_TAIL(&c->xfers, x, link);
	free(text);
	return x;
fail:
	free(text);
	if (x != NULL)
		httpc_xfer_free(x);
	else if (dl != NULL && dl->owned) {
		/* Not attached to a transfer yet, so not freed with one. */
		close(dl->fd);
		free(dl);
	}
	return NULL;
}

#undef SETOPT

int httpc_request(struct httpc *c, const char *method, const char *url, const char *rid,
                  const json_t *body, httpc_cb cb, void *arg)
{
	return httpc_start(c, method, url, rid, body, cb, arg, NULL, NULL) == NULL ? -1 : 0;
}

struct httpc_sync {
	struct httpc_resp_store *rs;
	int done;
};

static struct httpc_resp_store *httpc_store_new(void)
{
	struct httpc_resp_store *rs;

	if ((rs = calloc(1, sizeof(*rs))) == NULL)
		return NULL;
	if ((rs->r.body = calloc(1, 1)) == NULL) {
		free(rs);
		return NULL;
	}
	return rs;
}

static void httpc_sync_cb(struct httpc_resp *resp, void *arg)
{
	struct httpc_sync *st = arg;
	struct httpc_resp_store *rs;

	st->done = 1;
	if ((rs = calloc(1, sizeof(*rs))) == NULL)
		return;
	if ((rs->r.body = malloc(resp->len + 1)) == NULL) {
		free(rs);
		return;
	}
	memcpy(rs->r.body, resp->body, resp->len);
	rs->r.body[resp->len] = '\0';
	rs->r.len = resp->len;
	rs->r.status = resp->status;
	rs->r.json = json_incref(resp->json);
	memcpy(rs->r.rid, resp->rid, sizeof(rs->r.rid));
	rs->r.curl_code = resp->curl_code;
	if (resp->error != NULL) {
		snprintf(rs->error, sizeof(rs->error), "%s", resp->error);
		rs->r.error = rs->error;
	}
	st->rs = rs;
}

/*
 * Must not be called from a callback of c's event_base (libevent refuses to re-enter its
 * loop); other events on the base (e.g. an in-process server) keep being served.
 */
static struct httpc_resp *httpc_sync_error(const char *text)
{
	struct httpc_resp_store *rs;

	if ((rs = httpc_store_new()) == NULL)
		return NULL;
	/* A path in the text may be longer than the error buffer: cut, say so by length. */
	snprintf(rs->error, sizeof(rs->error), "%.*s", (int)sizeof(rs->error) - 1, text);
	rs->r.error = rs->error;
	return &rs->r;
}

static struct httpc_resp *httpc_sync_wait(struct httpc *c, struct httpc_xfer *x,
                                          struct httpc_sync *st)
{
	int rc;

	if (x == NULL)
		return httpc_sync_error("request refused");
	while (!st->done) {
		rc = event_base_loop(c->base, EVLOOP_ONCE);
		if (rc != 0 && !st->done) {
			/* Nothing left to wait for (or a loop error): do not spin or hang. */
			log_rerr(x->rid, "event loop stopped (%d)", rc);
			httpc_xfer_cancel(x);
			return httpc_sync_error("event loop stopped");
		}
	}
	return st->rs != NULL ? &st->rs->r : NULL;
}

struct httpc_resp *httpc_request_sync(struct httpc *c, const char *method, const char *url,
                                      const char *rid, const json_t *body)
{
	struct httpc_sync st = {NULL, 0};

	return httpc_sync_wait(
	    c, httpc_start(c, method, url, rid, body, httpc_sync_cb, &st, NULL, NULL), &st);
}

static int httpc_etag_ok(const char *etag)
{
	size_t i, n = strnlen(etag, 257);

	if (n == 0 || n > 256)
		return 0;
	for (i = 0; i < n; i++)
		if (etag[i] < 0x21 || etag[i] > 0x7e)
			return 0;
	return 1;
}

/* Open path for appending and fill dl for a download of at most max_size. NULL, or a
 * message into text. */
static int httpc_dl_open(struct httpc_dl *dl, const char *path, const char *etag, int64_t max_size,
                         char *text, size_t len)
{
	struct stat sb;

	memset(dl, 0, sizeof(*dl));
	dl->fd = -1;
	dl->range_start = -1;
	if (path == NULL || max_size <= 0 || (etag != NULL && !httpc_etag_ok(etag))) {
		snprintf(text, len, "invalid download arguments");
		return -1;
	}
	if ((dl->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600)) ==
	    -1) {
		snprintf(text, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(dl->fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		snprintf(text, len, "%s: not a regular file", path);
		goto fail;
	}
	dl->have = (int64_t)sb.st_size;
	dl->max_size = max_size;
	if (dl->have > max_size) {
		/* Cannot be the file we want: start over rather than ask for a bogus range. */
		if (ftruncate(dl->fd, 0) == -1) {
			snprintf(text, len, "%s: truncate: %s", path, strerror(errno));
			goto fail;
		}
		dl->have = 0;
	}
	return 0;
fail:
	close(dl->fd);
	dl->fd = -1;
	return -1;
}

/* What every finished download does to its file before the caller sees the answer. */
static void httpc_dl_finish(struct httpc_dl *dl, const struct httpc_resp *r, const char *rid)
{
	/* An empty 200 never reached the write callback: the file is still the old part. */
	if (r != NULL && r->error == NULL && r->status == 200 && dl->mode == 0 &&
	    ftruncate(dl->fd, 0) == -1)
		log_rerr(rid, "truncate: %s", strerror(errno));
	if (r != NULL && r->error == NULL && dl->mode == 1 && fsync(dl->fd) == -1)
		log_rwarn(rid, "fsync: %s", strerror(errno));
}

struct httpc_resp *httpc_download_sync(struct httpc *c, const char *url, const char *rid,
                                       const char *path, const char *etag, int64_t max_size)
{
	struct httpc_dl dl;
	struct httpc_sync st = {NULL, 0};
	struct httpc_resp *r;
	char text[PATH_MAX + 64];

	if (httpc_dl_open(&dl, path, etag, max_size, text, sizeof(text)) == -1)
		return httpc_sync_error(text);
	r = httpc_sync_wait(c, httpc_start(c, "GET", url, rid, NULL, httpc_sync_cb, &st, &dl, etag),
	                    &st);
	httpc_dl_finish(&dl, r, rid);
	close(dl.fd);
	return r;
}

static void httpc_download_cb(struct httpc_resp *resp, void *arg)
{
	struct httpc_dl *dl = arg;

	httpc_dl_finish(dl, resp, resp->rid);
	dl->user_cb(resp, dl->user_arg);
}

int httpc_download(struct httpc *c, const char *url, const char *rid, const char *path,
                   const char *etag, int64_t max_size, httpc_cb cb, void *arg)
{
	struct httpc_dl *dl;
	char text[PATH_MAX + 64];

	if (cb == NULL || (dl = malloc(sizeof(*dl))) == NULL)
		return -1;
	if (httpc_dl_open(dl, path, etag, max_size, text, sizeof(text)) == -1) {
		log_rerr(rid, "%s", text);
		free(dl);
		return -1;
	}
	dl->owned = 1;
	dl->user_cb = cb;
	dl->user_arg = arg;
	/* From here dl belongs to the transfer, freed with it even when it cannot start. */
	return httpc_start(c, "GET", url, rid, NULL, httpc_download_cb, dl, dl, etag) == NULL ? -1
	                                                                                      : 0;
}

void httpc_resp_free(struct httpc_resp *resp)
{
	if (resp == NULL)
		return;
	free(resp->body);
	json_decref(resp->json);
	/* resp is the first member of its httpc_resp_store. */
	free(resp);
}

struct httpc *httpc_new(struct event_base *base, const struct httpc_conf *conf, char *err,
                        size_t errlen)
{
	struct httpc *c = NULL;

	if (base == NULL || conf == NULL) {
		snprintf(err, errlen, "invalid arguments");
		goto fail;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	c->base = base;
	TAILQ_INIT(&c->xfers);
	LIST_INIT(&c->socks);
	c->connect_timeout_ms =
	    conf->connect_timeout_ms > 0 ? conf->connect_timeout_ms : HTTPC_CONNECT_TIMEOUT_MS;
	c->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : HTTPC_TIMEOUT_MS;
	c->max_response = conf->max_response > 0 ? conf->max_response : HTTPC_MAX_RESPONSE;
	/* Keeps max + 1 (the NUL) and curl_off_t conversions from overflowing. */
	if (c->max_response > (size_t)INT32_MAX) {
		snprintf(err, errlen, "max_response too large");
		goto fail;
	}
	if (httpc_tls_copy(&c->tls, &conf->tls, "server TLS", err, errlen) == -1)
		goto fail;
	if (conf->proxy != NULL) {
		if (strncmp(conf->proxy, "https://", 8) != 0 ||
		    strnlen(conf->proxy, HTTPC_MAX_URL) >= HTTPC_MAX_URL) {
			snprintf(err, errlen, "proxy must be an https:// URL");
			goto fail;
		}
		if ((c->proxy = strdup(conf->proxy)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		if (httpc_tls_copy(&c->proxy_tls, &conf->proxy_tls, "proxy TLS", err, errlen) == -1)
			goto fail;
	}
	if ((c->timer = evtimer_new(base, httpc_timer_ev, c)) == NULL) {
		snprintf(err, errlen, "evtimer_new failed");
		goto fail;
	}
	if ((c->multi = curl_multi_init()) == NULL) {
		snprintf(err, errlen, "curl_multi_init failed (curl_global_init not called?)");
		goto fail;
	}
	if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, httpc_sock_cb) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, httpc_timer_cb) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
		snprintf(err, errlen, "curl_multi_setopt failed");
		goto fail;
	}
	return c;
fail:
	if (c != NULL)
		httpc_destroy(c);
	if (err != NULL && errlen > 0)
		log_err("%s", err);
	return NULL;
}

static void httpc_destroy(struct httpc *c)
{
	struct httpc_xfer *x;
	struct httpc_sock *s;

	while ((x = TAILQ_FIRST(&c->xfers)) != NULL)
		httpc_xfer_cancel(x);
	/* Closes cached connections; curl reports their sockets removed as it goes. */
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);
	while ((s = LIST_FIRST(&c->socks)) != NULL)
		httpc_sock_free(c, s);
	if (c->timer != NULL)
		event_free(c->timer);
	httpc_tls_clear(&c->tls);
	httpc_tls_clear(&c->proxy_tls);
	free(c->proxy);
	free(c);
}

void httpc_free(struct httpc *c)
{
	struct httpc_xfer *x;

	if (c == NULL)
		return;
	if (c->busy > 0) {
		/* Called from one of our callbacks: cancel now, free when the stack unwinds. */
		c->dying = 1;
		while ((x = TAILQ_FIRST(&c->xfers)) != NULL)
			httpc_xfer_cancel(x);
		return;
	}
	httpc_destroy(c);
}
