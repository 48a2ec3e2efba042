/*
 * httpc: the HTTPS client for devices, daemon-to-daemon calls and dmctl.
 *
 * libcurl multi interface driven by the caller's libevent loop (CURLMOPT_SOCKETFUNCTION /
 * TIMERFUNCTION), so many requests run at once on one thread and connections are reused.
 * Mutual TLS under the policy of tls.h (applied through CURLOPT_SSL_CTX_FUNCTION), optional
 * HTTPS proxy with its own client certificate (the CPE relay), response size bounded.
 */
#ifndef OPENDM_HTTPC_H
#define OPENDM_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <jansson.h>

#include "opendm/tls.h"

struct httpc;

struct httpc_conf {
	struct tls_conf tls;       /* client cert/key and CA for the server */
	const char *proxy;         /* "https://127.0.0.1:7443" or NULL */
	struct tls_conf proxy_tls; /* client cert/key and CA for the proxy (when proxy set) */
	long connect_timeout_ms;   /* 0 = 10000 */
	long timeout_ms;           /* whole request; 0 = 30000 */
	size_t max_response;       /* bytes of body kept; 0 = 1 MiB; more is an error */
};

struct httpc_resp {
	long status; /* HTTP status, 0 if no response */
	char *body;  /* NUL-terminated body (may be empty) */
	size_t len;
	json_t *json;      /* parsed body if it was JSON, else NULL */
	char rid[65];      /* X-Request-Id of the response */
	const char *error; /* transport error text, NULL if a response arrived */
	int curl_code;     /* CURLcode */
};

typedef void (*httpc_cb)(struct httpc_resp *resp, void *arg);

/* NULL + err on error (e.g. unreadable or unsafe key file). */
struct httpc *httpc_new(struct event_base *base, const struct httpc_conf *conf, char *err,
                        size_t errlen);
/* Cancel what is in flight (callbacks are not called) and free. */
void httpc_free(struct httpc *c);
/*
 * Start a request; cb(resp, arg) runs later from the loop with resp owned by httpc (valid
 * only during the call). body (borrowed, may be NULL) is sent as application/json. rid NULL
 * makes a new request id. 0/-1.
 */
int httpc_request(struct httpc *c, const char *method, const char *url, const char *rid,
                  const json_t *body, httpc_cb cb, void *arg);
/*
 * Blocking form for command-line tools: runs the loop until the response arrives. Returns
 * a response the caller frees with httpc_resp_free(), or NULL on allocation failure.
 */
struct httpc_resp *httpc_request_sync(struct httpc *c, const char *method, const char *url,
                                      const char *rid, const json_t *body);
void httpc_resp_free(struct httpc_resp *resp);

/*
 * Blocking, resumable download of url into path (created 0600, appended to). When path
 * already holds N > 0 bytes the request carries "Range: bytes=N-" (and "If-Range: etag" when
 * etag is given): a 206 starting at N is appended, a 200 replaces the file from byte 0. The
 * body is written as it arrives, never held in memory; the transfer is aborted ("response too
 * large") when the file would grow past max_size, and a stalled transfer (no byte for the
 * client's timeout_ms) fails, leaving what arrived in place for the next attempt. Any other
 * status (e.g. 416, 404) leaves the file untouched and its (bounded) body in resp->body /
 * resp->json as for httpc_request_sync(). The caller checks the result (size, digest); a
 * partial file is never complete just because a call returned. Free with httpc_resp_free().
 */
struct httpc_resp *httpc_download_sync(struct httpc *c, const char *url, const char *rid,
                                       const char *path, const char *etag, int64_t max_size);

/*
 * The same download without blocking: cb(resp, arg) runs from the loop once the transfer
 * ends, with the file in the state described above (resp->error set on a cut or stall).
 * httpc_free() cancels it without calling back. 0/-1 (nothing started, cb never called).
 */
int httpc_download(struct httpc *c, const char *url, const char *rid, const char *path,
                   const char *etag, int64_t max_size, httpc_cb cb, void *arg);

#endif
