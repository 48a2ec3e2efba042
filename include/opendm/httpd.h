/*
 * httpd: the HTTPS (mutual TLS) JSON API server every daemon uses.
 *
 * libevent evhttp over bufferevent_openssl. Routes are a table: one handler per
 * (method, path). A route may carry a body schema: the body must then be a JSON object
 * (Content-Type application/json) that schema_decode() accepts, or the client gets 400/415
 * before the handler runs. Errors are {"error":{"code":"snake_case","message":"..."}}.
 * Every request gets a request id (the client's valid X-Request-Id, else a new one),
 * echoed in the X-Request-Id response header. The TLS peer identity is captured when the
 * handshake completes and is available to every request on that connection.
 *
 * A handler must reply exactly once, now or later (asynchronous handlers keep the
 * struct httpd_req * and reply from another callback). If the client goes away first, the
 * reply is dropped and the request freed; httpd_req_set_abort_cb() tells the handler.
 *
 * Limits: max header bytes, max body bytes (413, refused on Content-Length before any
 * body is read), max open connections (further handshakes are refused), idle timeout.
 * Accepted sockets get TCP_NODELAY.
 */
#ifndef OPENDM_HTTPD_H
#define OPENDM_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/buffer.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "opendm/schema.h"
#include "opendm/tls.h"

#define HTTPD_RID_MAX 64

struct httpd;
struct httpd_req;

typedef void (*httpd_handler_fn)(struct httpd_req *req, void *arg);

struct httpd_route {
	enum evhttp_cmd_type method; /* EVHTTP_REQ_GET, EVHTTP_REQ_POST, ... */
	const char *path;            /* exact path, or a prefix ending in '*' */
	httpd_handler_fn fn;
	const struct schema_field *body; /* NULL: no body expected (a body is a 400) */
	size_t body_size;                /* size of the struct body decodes into */
};

struct httpd_conf {
	const char *address; /* numeric address to bind */
	int port;
	size_t max_body_bytes;
	size_t max_header_bytes;
	int max_connections;
	int idle_timeout_s;
};

/*
 * Bind and start serving on base. routes ends with fn == NULL; arg is passed to handlers.
 * ctx is referenced (SSL_CTX_up_ref). NULL + message (e.g. "127.0.0.1:8443: Address
 * already in use") on error.
 */
struct httpd *httpd_new(struct event_base *base, const struct httpd_conf *conf, SSL_CTX *ctx,
                        const struct httpd_route *routes, void *arg, char *err, size_t errlen);
/* Use ctx for connections accepted from now on (certificate reload); open ones keep theirs. */
void httpd_set_ctx(struct httpd *h, SSL_CTX *ctx);
/* Apply new limits (body, headers, connections, timeout) to new requests/connections. */
void httpd_set_limits(struct httpd *h, const struct httpd_conf *conf);
/*
 * Graceful stop: close the listener at once, refuse new requests on open connections, and
 * call done(arg) once no request is in flight (immediately if none is).
 */
void httpd_shutdown(struct httpd *h, void (*done)(void *arg), void *arg);
/* Free everything, closing any connection still open. */
void httpd_free(struct httpd *h);
size_t httpd_inflight(const struct httpd *h);
size_t httpd_connections(const struct httpd *h);
/* The port actually bound (useful when conf->port was 0). */
int httpd_port(const struct httpd *h);

/* Request accessors. */
const char *httpd_req_id(const struct httpd_req *req);
const struct tls_peer *httpd_req_peer(const struct httpd_req *req);
/* The decoded body (the route's schema), or NULL when the route has none. */
void *httpd_req_body(struct httpd_req *req);
/* The parsed JSON body (borrowed), or NULL. */
json_t *httpd_req_json(struct httpd_req *req);
const char *httpd_req_path(const struct httpd_req *req);
/* "GET", "POST"... */
const char *httpd_req_method_name(const struct httpd_req *req);
/* The URL-decoded query parameter key into buf: 1 found, 0 absent, -1 malformed query, empty
 * value or a value that does not fit in len (reply 400 naming the parameter). */
#define HTTPD_QUERY_MAX 2048
int httpd_req_query(struct httpd_req *req, const char *key, char *buf, size_t len);
/* For a prefix route: the part of the path after the prefix. */
const char *httpd_req_tail(const struct httpd_req *req);
/* A request header, or NULL. */
const char *httpd_req_header(const struct httpd_req *req, const char *name);
struct evhttp_request *httpd_req_ev(struct httpd_req *req);
/* Called (once) if the client goes away before the reply; the req is then freed. */
void httpd_req_set_abort_cb(struct httpd_req *req, void (*cb)(void *arg), void *arg);
/*
 * The TLS exporter (RFC 8446 §7.5, SSL_export_keying_material, no context) of the request's
 * connection: len bytes for label into out, the same the client computes on its side of
 * this session. Binds an application secret (a pairing PIN) to the session. 0/-1.
 */
int httpd_req_tls_export(struct httpd_req *req, const char *label, unsigned char *out, size_t len);

/* Add a response header (before replying). */
void httpd_add_header(struct httpd_req *req, const char *name, const char *value);
/* Reply with a JSON body; steals body. */
void httpd_reply_json(struct httpd_req *req, int status, json_t *body);
/* Reply with JSON text the caller already encoded (hot paths such as health that build their
 * body with snprintf from trusted values, sparing a jansson tree per request). */
void httpd_reply_json_text(struct httpd_req *req, int status, const char *json);
/* Reply {"error":{"code":code,"message":...}} with status. */
void httpd_reply_error(struct httpd_req *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Streaming reply. fill() appends up to want bytes to out; returns 1 while more remains,
 * 0 at the end, -1 on error (connection then closed). It is called again only when the
 * client has drained what was sent, so memory stays bounded whatever the size.
 * done(arg, ok) is called exactly once: ok = 1 all sent, 0 aborted or failed.
 * content_length < 0 sends chunked. Headers added with httpd_add_header() go out first.
 */
typedef int (*httpd_fill_fn)(struct evbuffer *out, size_t want, void *arg);
int httpd_reply_stream(struct httpd_req *req, int status, int64_t content_length,
                       httpd_fill_fn fill, void (*done)(void *arg, int ok), void *arg);

#endif
