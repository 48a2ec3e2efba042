/*
 * relay: the CONNECT relay of the CPE (DESIGN.md §2, docs/protocol.md "SD I/F agent").
 *
 * A second listener, written on plain bufferevents because evhttp cannot serve CONNECT. A
 * device opens a mutual-TLS link with its self-signed link certificate; the key, not a CA,
 * is what identifies it: the SHA-256 of its SubjectPublicKeyInfo must be the link_fp of an
 * active pairing, checked again at every new tunnel so that an unpaired device is refused at
 * once. It then sends "CONNECT host:port"; the target must be on the allow-list, and from
 * then on bytes are spliced both ways without being looked at (the device's own end-to-end
 * TLS to the head-end runs inside, so the CPE can neither read nor alter it).
 *
 * One tunnel = one link connection = one upstream connection. Memory per idle tunnel is the
 * SSL object (buffers released while idle), two bufferevents and this struct: evbuffers grow
 * only while bytes are in flight, and are bounded by the 64 KiB backpressure mark.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "opendm/log.h"
#include "opendm/tls.h"
#include "relay.h"
#include "sd_if_agent.h"

/* Past this much queued for one side, stop reading the other until it drains to half. */
#define RELAY_MAX_OUTPUT (64 * 1024)
#define RELAY_BACKLOG    128
#define RELAY_TARGET_MAX 64 /* "[v6 address]:port" fits */

#define RELAY_DEF_TUNNELS   1024
#define RELAY_DEF_PER_DEV   32
#define RELAY_DEF_CONNECT_S 10
#define RELAY_DEF_IDLE_S    300
#define RELAY_DEF_PREAMBLE  4096

const struct schema_field sdif_relay_fields[] = {
    {"address", SCHEMA_STRING, offsetof(struct sdif_relay_conf, address), 1, 1, 64, 0, NULL},
    {"port", SCHEMA_INT, offsetof(struct sdif_relay_conf, port), 1, 1, 65535, 0, NULL},
    {"allow", SCHEMA_STRLIST, offsetof(struct sdif_relay_conf, allow), 1, 1, RELAY_TARGET_MAX - 1,
     64, NULL},
    {"max_tunnels", SCHEMA_INT, offsetof(struct sdif_relay_conf, max_tunnels), 0, 1, 65536, 0,
     NULL},
    {"max_tunnels_per_device", SCHEMA_INT, offsetof(struct sdif_relay_conf, max_tunnels_per_device),
     0, 1, 65536, 0, NULL},
    {"connect_timeout_s", SCHEMA_INT, offsetof(struct sdif_relay_conf, connect_timeout_s), 0, 1,
     300, 0, NULL},
    {"idle_timeout_s", SCHEMA_INT, offsetof(struct sdif_relay_conf, idle_timeout_s), 0, 1, 86400, 0,
     NULL},
    {"max_preamble", SCHEMA_INT, offsetof(struct sdif_relay_conf, max_preamble), 0, 256, 65536, 0,
     NULL},
    SCHEMA_END,
};

enum relay_state {
	RELAY_HANDSHAKE,  /* TLS handshake with the device */
	RELAY_PREAMBLE,   /* reading the CONNECT request */
	RELAY_CONNECTING, /* connecting to the target */
	RELAY_OPEN,       /* splicing both ways */
	RELAY_CLOSING,    /* one side gone: flushing what is left to the other, then close */
	RELAY_REFUSING,   /* an error reply is being flushed to the device, then close */
};

struct relay_target {
	char name[RELAY_TARGET_MAX]; /* as in the allow-list: what CONNECT must say exactly */
	struct sockaddr_storage sa;
	int salen;
};

struct relay_tunnel {
	TAILQ_ENTRY(relay_tunnel) entry;
	struct sdif_relay *r;
	struct bufferevent *dev; /* TLS link to the device */
	struct bufferevent *up;  /* plain TCP to the target */
	enum relay_state state;
	int counted;  /* counts against the tunnel limits */
	int dev_dead; /* the device's side failed: no close_notify */
	const struct relay_target *target;
	uint64_t bytes_up;   /* device to target */
	uint64_t bytes_down; /* target to device */
	time_t last_active;
	char tid[19]; /* "t-" + 16 hex: the request id of every log line */
	char link_fp[65];
	char hw_id[SDIF_HWID_MAX + 1];
};

TAILQ_HEAD(relay_tunnels, relay_tunnel);

struct sdif_relay {
	struct sdif *s;
	struct event_base *base;
	struct evconnlistener *lev;
	SSL_CTX *ctx;
	int port;
	struct relay_target *allow;
	size_t nallow;
	size_t max_tunnels, max_per_device, max_preamble;
	int connect_s, idle_s;
	struct relay_tunnels tunnels;
	size_t nconn;    /* every open link connection */
	size_t ntunnels; /* the counted ones */
};

static void relay_dev_read(struct bufferevent *bev, void *arg);
static void relay_dev_event(struct bufferevent *bev, short what, void *arg);
static void relay_up_read(struct bufferevent *bev, void *arg);
static void relay_up_event(struct bufferevent *bev, short what, void *arg);

/* ---- the preamble ---- */

/* 1 if c may appear in a header line (visible ASCII, space, tab, obs-text). */
static int relay_hdr_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int relay_target_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '.' || c == ':' || c == '-' || c == '[' || c == ']';
}

/* The request line p[0..n) (no CRLF): "CONNECT target HTTP/1.x". */
static enum sdif_preamble relay_request_line(const char *p, size_t n, char *target, size_t tlen)
{
	const char *sp1, *sp2, *end = p + n;
	size_t mlen, tl, i;

	if ((sp1 = memchr(p, ' ', n)) == NULL)
		return SDIF_PRE_BAD;
	mlen = (size_t)(sp1 - p);
	if (mlen == 0)
		return SDIF_PRE_BAD;
	for (i = 0; i < mlen; i++)
		if (p[i] < 'A' || p[i] > 'Z')
			return SDIF_PRE_BAD;
	if ((sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1))) == NULL)
		return SDIF_PRE_BAD;
	if (!((size_t)(end - sp2 - 1) == 8 &&
	      (memcmp(sp2 + 1, "HTTP/1.1", 8) == 0 || memcmp(sp2 + 1, "HTTP/1.0", 8) == 0)))
		return SDIF_PRE_BAD;
	if (mlen != 7 || memcmp(p, "CONNECT", 7) != 0)
		return SDIF_PRE_METHOD;
	tl = (size_t)(sp2 - sp1 - 1);
	if (tl == 0 || tl >= tlen)
		return SDIF_PRE_BAD;
	for (i = 0; i < tl; i++)
		if (!relay_target_char((unsigned char)sp1[1 + i]))
			return SDIF_PRE_BAD;
	memcpy(target, sp1 + 1, tl);
	target[tl] = '\0';
	return SDIF_PRE_OK;
}

enum sdif_preamble sdif_relay_preamble(const char *p, size_t n, size_t max, char *target,
                                       size_t tlen, size_t *used)
{
	const char *line, *eol, *end, *colon;
	enum sdif_preamble v;
	size_t i, total = 0;

	if (n > max)
		n = max;
	/* The end first: nothing is judged before the whole preamble is in (or over the limit). */
	for (i = 0; i + 3 < n; i++) {
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
			total = i + 4;
			break;
		}
	}
	if (total == 0)
		return n >= max ? SDIF_PRE_TOO_LONG : SDIF_PRE_MORE;
	end = p + total - 2; /* the blank line's CRLF */
	if ((eol = memchr(p, '\r', total)) == NULL || eol[1] != '\n')
		return SDIF_PRE_BAD;
	if ((v = relay_request_line(p, (size_t)(eol - p), target, tlen)) != SDIF_PRE_OK)
		return v;
	/* Headers are not used (no proxy authentication: the link certificate is the
	 * credential) but must be well-formed lines: "name: value", no folding, no NUL. */
	for (line = eol + 2; line < end; line = eol + 2) {
		eol = line;
		while (eol < end && *eol != '\r')
			eol++;
		if (eol >= end || eol[1] != '\n' || eol == line || *line == ' ' || *line == '\t' ||
		    (colon = memchr(line, ':', (size_t)(eol - line))) == NULL || colon == line)
			return SDIF_PRE_BAD;
		for (i = 0; i < (size_t)(eol - line); i++)
			if (!relay_hdr_char((unsigned char)line[i]))
				return SDIF_PRE_BAD;
	}
	*used = total;
	return SDIF_PRE_OK;
}

/* ---- tunnels ---- */

static time_t relay_now(struct sdif_relay *r)
{
	struct timeval tv;

	if (event_base_gettimeofday_cached(r->base, &tv) == -1)
		return time(NULL);
	return tv.tv_sec;
}

static void relay_nodelay(struct bufferevent *bev)
{
	evutil_socket_t fd = bufferevent_getfd(bev);
	int one = 1;

	/* Without it small records (TLS handshakes inside the tunnel) wait for delayed ACKs. */
	if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		log_debug("TCP_NODELAY: %s", strerror(errno));
}

static void relay_free_dev(struct relay_tunnel *t)
{
	SSL *ssl;

	if (t->dev == NULL)
		return;
	/* A clean close_notify once everything was flushed, so the device sees an orderly end
	 * rather than a truncation; the socket BIO takes the few bytes at once. */
	if (!t->dev_dead && t->state != RELAY_HANDSHAKE &&
	    evbuffer_get_length(bufferevent_get_output(t->dev)) == 0 &&
	    (ssl = bufferevent_openssl_get_ssl(t->dev)) != NULL)
		(void)SSL_shutdown(ssl);
	ERR_clear_error();
	bufferevent_free(t->dev);
	t->dev = NULL;
}

static void relay_close(struct relay_tunnel *t, const char *reason)
{
	struct sdif_relay *r = t->r;

	if (t->state == RELAY_OPEN || t->state == RELAY_CLOSING)
		log_rinfo(t->tid,
		          "sdif=tunnel close hw_id=%s target=%s up=%llu down=%llu reason=%s",
		          t->hw_id, t->target->name, (unsigned long long)t->bytes_up,
		          (unsigned long long)t->bytes_down, reason);
	else
		log_rdebug(t->tid, "sdif=link close reason=%s", reason);
	relay_free_dev(t);
	if (t->up != NULL)
		bufferevent_free(t->up);
	if (t->counted)
		r->ntunnels--;
	TAILQ_REMOVE(&r->tunnels, t, entry);
	r->nconn--;
	free(t);
}

/* Close once bev's output is flushed (the last reply, or what the other side left). */
static void relay_flushed(struct bufferevent *bev, void *arg)
{
	struct relay_tunnel *t = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		relay_close(t, t->state == RELAY_REFUSING ? "refused" : "peer closed");
}

static void relay_close_after_flush(struct relay_tunnel *t, struct bufferevent *bev,
                                    bufferevent_event_cb eventcb)
{
	struct timeval tv = {t->r->idle_s, 0};

	bufferevent_disable(bev, EV_READ);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_setcb(bev, NULL, relay_flushed, eventcb, t);
	/* A peer that stops reading must not hold the tunnel for ever. */
	bufferevent_set_timeouts(bev, NULL, &tv);
	bufferevent_enable(bev, EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		relay_close(t, t->state == RELAY_REFUSING ? "refused" : "peer closed");
}

/* Answer the device with an error and close after the flush. */
static void relay_refuse(struct relay_tunnel *t, int status, const char *reason, const char *code,
                         const char *msg)
{
	struct evbuffer *out = bufferevent_get_output(t->dev);
	char body[256];
	int n;

	log_rwarn(t->tid, "sdif=tunnel refused status=%d code=%s hw_id=%s link_fp=%s", status, code,
	          t->hw_id[0] != '\0' ? t->hw_id : "-", t->link_fp);
	if (t->up != NULL) {
		bufferevent_free(t->up);
		t->up = NULL;
	}
	n = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
	             msg);
	evbuffer_drain(bufferevent_get_input(t->dev),
	               evbuffer_get_length(bufferevent_get_input(t->dev)));
	evbuffer_add_printf(out,
	                    "HTTP/1.1 %d %s\r\n%sContent-Type: application/json\r\n"
	                    "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
	                    status, reason, status == 405 ? "Allow: CONNECT\r\n" : "", n, body);
	t->state = RELAY_REFUSING;
	relay_close_after_flush(t, t->dev, relay_dev_event);
}

static struct bufferevent *relay_other(struct relay_tunnel *t, struct bufferevent *bev)
{
	return bev == t->dev ? t->up : t->dev;
}

static void relay_drained(struct bufferevent *bev, void *arg);

/* Move what from has read to the other side; stop reading when the other is backed up. */
static void relay_splice(struct relay_tunnel *t, struct bufferevent *from)
{
	struct bufferevent *to = relay_other(t, from);
	struct evbuffer *in = bufferevent_get_input(from), *out;
	size_t n = evbuffer_get_length(in);

	if (n == 0)
		return;
	if (to == NULL) {
		evbuffer_drain(in, n);
		return;
	}
	out = bufferevent_get_output(to);
	evbuffer_add_buffer(out, in);
	if (from == t->dev)
		t->bytes_up += n;
	else
		t->bytes_down += n;
	t->last_active = relay_now(t->r);
	if (evbuffer_get_length(out) >= RELAY_MAX_OUTPUT && t->state == RELAY_OPEN) {
		bufferevent_setcb(to, to == t->dev ? relay_dev_read : relay_up_read, relay_drained,
		                  to == t->dev ? relay_dev_event : relay_up_event, t);
		bufferevent_setwatermark(to, EV_WRITE, RELAY_MAX_OUTPUT / 2, RELAY_MAX_OUTPUT);
		bufferevent_disable(from, EV_READ);
	}
}

/* The backed-up side drained to half: read the other again. */
static void relay_drained(struct bufferevent *bev, void *arg)
{
	struct relay_tunnel *t = arg;
	struct bufferevent *other = relay_other(t, bev);

	bufferevent_setcb(bev, bev == t->dev ? relay_dev_read : relay_up_read, NULL,
	                  bev == t->dev ? relay_dev_event : relay_up_event, t);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	if (other != NULL && t->state == RELAY_OPEN)
		bufferevent_enable(other, EV_READ);
}

/* One side ended (EOF or error): hand over what it read, flush to the other, then close. */
static void relay_side_gone(struct relay_tunnel *t, struct bufferevent *bev, short what)
{
	struct bufferevent *other = relay_other(t, bev);
	const char *reason = bev == t->dev ? "device closed" : "target closed";

	if (what & BEV_EVENT_TIMEOUT) {
		relay_close(t, "idle timeout");
		return;
	}
	relay_splice(t, bev);
	if (bev == t->dev) {
		t->dev_dead = 1;
		relay_free_dev(t);
	} else {
		bufferevent_free(t->up);
		t->up = NULL;
	}
	if (other == NULL || evbuffer_get_length(bufferevent_get_output(other)) == 0) {
		relay_close(t, reason);
		return;
	}
	t->state = RELAY_CLOSING;
	relay_close_after_flush(t, other, other == t->dev ? relay_dev_event : relay_up_event);
}

/* A read or write timeout on one side: idle only if neither side moved for idle_s. */
static void relay_timeout(struct relay_tunnel *t, struct bufferevent *bev, short what)
{
	/* Reading from a side that never speaks (a download) times out although bytes flow the
	 * other way; libevent disabled the event, so re-arm it while the tunnel is busy. */
	if (t->state == RELAY_OPEN && relay_now(t->r) - t->last_active < t->r->idle_s) {
		bufferevent_enable(bev, (what & BEV_EVENT_READING) ? EV_READ : EV_WRITE);
		return;
	}
	relay_close(t, t->state == RELAY_OPEN ? "idle timeout" : "timeout");
}

static size_t relay_count_fp(struct sdif_relay *r, const char *fp)
{
	struct relay_tunnel *t;
	size_t n = 0;

	TAILQ_FOREACH(t, &r->tunnels, entry)
	{
		if (t->counted && (fp == NULL || strcmp(t->link_fp, fp) == 0))
			n++;
	}
	return n;
}

static const struct relay_target *relay_allowed(struct sdif_relay *r, const char *target)
{
	size_t i;

	for (i = 0; i < r->nallow; i++)
		if (strcmp(r->allow[i].name, target) == 0)
			return &r->allow[i];
	return NULL;
}

/* The whole preamble is in (or too long): check the device, the request, the limits. */
static void relay_preamble(struct relay_tunnel *t)
{
	struct sdif_relay *r = t->r;
	struct evbuffer *in = bufferevent_get_input(t->dev);
	char target[RELAY_TARGET_MAX];
	struct timeval tv = {r->connect_s, 0};
	size_t n = evbuffer_get_length(in), used = 0;
	enum sdif_preamble v;
	const char *p;
	int rc;

	if (n > r->max_preamble)
		n = r->max_preamble;
	if ((p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n)) == NULL) {
		relay_close(t, "out of memory");
		return;
	}
	v = sdif_relay_preamble(p, n, r->max_preamble, target, sizeof(target), &used);
	if (v == SDIF_PRE_MORE)
		return;
	bufferevent_disable(t->dev, EV_READ);
	/* Who it is comes first: an unpaired device learns nothing else. */
	rc = sdif_store_link_active(r->s->d->db, t->link_fp, t->hw_id, sizeof(t->hw_id));
	if (rc == -1) {
		t->hw_id[0] = '\0';
		relay_refuse(t, 500, "Internal Server Error", "internal",
		             "cannot check the pairing");
		return;
	}
	if (rc == 0) {
		t->hw_id[0] = '\0';
		relay_refuse(t, 403, "Forbidden", "not_paired",
		             "this link certificate belongs to no active pairing");
		return;
	}
	switch (v) {
	case SDIF_PRE_TOO_LONG:
		relay_refuse(t, 431, "Request Header Fields Too Large", "preamble_too_large",
		             "the CONNECT request is too long");
		return;
	case SDIF_PRE_METHOD:
		relay_refuse(t, 405, "Method Not Allowed", "method_not_allowed",
		             "only CONNECT is served");
		return;
	case SDIF_PRE_BAD:
		relay_refuse(t, 400, "Bad Request", "bad_request", "malformed CONNECT request");
		return;
	default:
		break;
	}
	if ((t->target = relay_allowed(r, target)) == NULL) {
		log_rinfo(t->tid, "sdif=tunnel target=%s not on the allow-list", target);
		relay_refuse(t, 403, "Forbidden", "target_not_allowed",
		             "the target is not on the relay's allow-list");
		return;
	}
	if (r->ntunnels >= r->max_tunnels || relay_count_fp(r, t->link_fp) >= r->max_per_device) {
		t->target = NULL;
		relay_refuse(t, 503, "Service Unavailable", "too_many_tunnels",
		             "too many open tunnels");
		return;
	}
	evbuffer_drain(in, used);
	t->counted = 1;
	r->ntunnels++;
	t->state = RELAY_CONNECTING;
	bufferevent_set_timeouts(t->dev, NULL, NULL);
	t->up =
	    bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (t->up == NULL) {
		relay_refuse(t, 502, "Bad Gateway", "bad_gateway", "cannot reach the target");
		return;
	}
	bufferevent_setcb(t->up, relay_up_read, NULL, relay_up_event, t);
	/* libevent applies the write timeout to the connect itself. */
	bufferevent_set_timeouts(t->up, NULL, &tv);
	if (bufferevent_socket_connect(t->up, (struct sockaddr *)&t->target->sa,
	                               t->target->salen) == -1) {
		log_rwarn(t->tid, "sdif=tunnel connect target=%s: %s", t->target->name,
		          strerror(errno));
		relay_refuse(t, 502, "Bad Gateway", "bad_gateway", "cannot reach the target");
	}
}

static void relay_dev_read(struct bufferevent *bev, void *arg)
{
	struct relay_tunnel *t = arg;

	if (t->state == RELAY_PREAMBLE)
		relay_preamble(t);
	else if (t->state == RELAY_OPEN)
		relay_splice(t, bev);
	else
		evbuffer_drain(bufferevent_get_input(bev),
		               evbuffer_get_length(bufferevent_get_input(bev)));
}

static void relay_handshake_done(struct relay_tunnel *t)
{
	SSL *ssl = bufferevent_openssl_get_ssl(t->dev);
	X509 *peer;

	/* The verify callback let any certificate through; the key is the identity. */
	if (ssl == NULL || (peer = SSL_get0_peer_certificate(ssl)) == NULL ||
	    pairproof_spki(X509_get0_pubkey(peer), NULL, t->link_fp) == -1) {
		ERR_clear_error();
		log_rinfo(t->tid, "sdif=link refused reason=no usable link certificate");
		t->dev_dead = 1;
		relay_close(t, "no link certificate");
		return;
	}
	t->state = RELAY_PREAMBLE;
	relay_nodelay(t->dev);
	log_rdebug(t->tid, "sdif=link up link_fp=%s", t->link_fp);
	if (evbuffer_get_length(bufferevent_get_input(t->dev)) > 0)
		relay_preamble(t);
}

static void relay_dev_event(struct bufferevent *bev, short what, void *arg)
{
	struct relay_tunnel *t = arg;
	char ossl[256];
	unsigned long e;

	if (what & BEV_EVENT_CONNECTED) {
		relay_handshake_done(t);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		relay_timeout(t, bev, what);
		return;
	}
	t->dev_dead = 1;
	switch (t->state) {
	case RELAY_HANDSHAKE:
		e = bufferevent_get_openssl_error(bev);
		if (e != 0)
			ERR_error_string_n(e, ossl, sizeof(ossl));
		else
			snprintf(ossl, sizeof(ossl), "%s",
			         (what & BEV_EVENT_EOF) ? "peer closed" : strerror(errno));
		log_rinfo(t->tid, "sdif=link refused reason=\"TLS handshake: %s\"", ossl);
		relay_close(t, "handshake failed");
		break;
	case RELAY_OPEN:
		relay_side_gone(t, bev, what);
		break;
	default:
		relay_close(t, "device closed");
		break;
	}
}

static void relay_up_read(struct bufferevent *bev, void *arg)
{
	struct relay_tunnel *t = arg;

	if (t->state == RELAY_OPEN)
		relay_splice(t, bev);
}

static void relay_up_connected(struct relay_tunnel *t)
{
	struct timeval tv = {t->r->idle_s, 0};
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";

	t->state = RELAY_OPEN;
	t->last_active = relay_now(t->r);
	relay_nodelay(t->up);
	bufferevent_set_timeouts(t->up, &tv, &tv);
	bufferevent_set_timeouts(t->dev, &tv, &tv);
	/* Fewer, larger reads and writes per wake-up: syscalls are the relay's main cost. */
	bufferevent_set_max_single_read(t->up, RELAY_MAX_OUTPUT);
	bufferevent_set_max_single_write(t->up, RELAY_MAX_OUTPUT);
	bufferevent_set_max_single_read(t->dev, RELAY_MAX_OUTPUT);
	bufferevent_set_max_single_write(t->dev, RELAY_MAX_OUTPUT);
	bufferevent_setwatermark(t->dev, EV_READ, 0, 0);
	log_rinfo(t->tid, "sdif=tunnel open hw_id=%s target=%s", t->hw_id, t->target->name);
	bufferevent_write(t->dev, ok, sizeof(ok) - 1);
	bufferevent_enable(t->up, EV_READ | EV_WRITE);
	bufferevent_enable(t->dev, EV_READ | EV_WRITE);
	/* Bytes the device sent right behind its CONNECT belong to the target. */
	relay_splice(t, t->dev);
}

static void relay_up_event(struct bufferevent *bev, short what, void *arg)
{
	struct relay_tunnel *t = arg;
	int e = EVUTIL_SOCKET_ERROR();

	if (t->state == RELAY_CONNECTING) {
		if (what & BEV_EVENT_CONNECTED) {
			relay_up_connected(t);
			return;
		}
		log_rwarn(t->tid, "sdif=tunnel connect target=%s: %s", t->target->name,
		          (what & BEV_EVENT_TIMEOUT) ? "timed out"
		          : e != 0                   ? evutil_socket_error_to_string(e)
		                                     : "failed");
		relay_refuse(t, 502, "Bad Gateway", "bad_gateway", "cannot reach the target");
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		relay_timeout(t, bev, what);
		return;
	}
	if (t->state == RELAY_OPEN)
		relay_side_gone(t, bev, what);
	else
		relay_close(t, "target closed");
}

static void relay_tid(char tid[19])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[8];
	int i;

	if (RAND_bytes(b, sizeof(b)) != 1) {
		ERR_clear_error();
		memset(b, 0, sizeof(b));
	}
	tid[0] = 't';
	tid[1] = '-';
	for (i = 0; i < 8; i++) {
		tid[2 + 2 * i] = hex[b[i] >> 4];
		tid[3 + 2 * i] = hex[b[i] & 0xf];
	}
	tid[18] = '\0';
}

static void relay_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
	struct sdif_relay *r = arg;
	struct relay_tunnel *t;
	struct timeval tv = {r->connect_s, 0};
	SSL *ssl;

	/* Links still in their handshake or preamble are bounded too (counted tunnels are
	 * refused with a 503 later, when the device is known). */
	if (r->nconn - r->ntunnels >= r->max_tunnels) {
		log_warn("sdif=link refused reason=\"%zu links not yet tunnels\"",
		         r->nconn - r->ntunnels);
		evutil_closesocket(fd);
		return;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL || (ssl = SSL_new(r->ctx)) == NULL) {
		log_err("sdif=link refused reason=\"out of memory\"");
		ERR_clear_error();
		free(t);
		evutil_closesocket(fd);
		return;
	}
	/* On failure this frees the SSL, which closes the socket. */
	t->dev = bufferevent_openssl_socket_new(r->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (t->dev == NULL) {
		log_err("sdif=link refused reason=\"cannot make a TLS bufferevent\"");
		ERR_clear_error();
		free(t);
		return;
	}
	t->r = r;
	t->state = RELAY_HANDSHAKE;
	relay_tid(t->tid);
	snprintf(t->link_fp, sizeof(t->link_fp), "-");
	TAILQ_INSERT_TAIL(&r->tunnels, t, entry);
	r->nconn++;
	/* Handshake and preamble must both arrive within connect_timeout_s, and the preamble
	 * is never buffered past its limit. */
	bufferevent_setwatermark(t->dev, EV_READ, 0, r->max_preamble);
	bufferevent_set_timeouts(t->dev, &tv, &tv);
	bufferevent_setcb(t->dev, relay_dev_read, NULL, relay_dev_event, t);
	bufferevent_enable(t->dev, EV_READ | EV_WRITE);
}

/* Any certificate passes the handshake (links are self-signed): relay_handshake_done pins the
 * key against the pairings instead, and TLS has proved the device holds it. */
static int relay_verify_cb(int ok, X509_STORE_CTX *x)
{
	return 1;
}

static SSL_CTX *relay_ssl_ctx(struct sdif *s, char *err, size_t errlen)
{
	STACK_OF(X509_NAME) * none;
	SSL_CTX *ctx;

	if ((ctx = tls_server_ctx(&s->d->cfg.tls, err, errlen)) == NULL)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, relay_verify_cb);
	/* The daemon CA's name would only mislead a client choosing a certificate by issuer. */
	if ((none = sk_X509_NAME_new_null()) == NULL) {
		SSL_CTX_free(ctx);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	SSL_CTX_set_client_CA_list(ctx, none);
	/* Idle tunnels are the common case: give their 2 x 17 KiB record buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

static int relay_listen(struct sdif_relay *r, const struct sdif_relay_conf *c, char *err,
                        size_t errlen)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd = -1, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (c->address != NULL && inet_pton(AF_INET, c->address, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)c->port);
		len = sizeof(*sin);
	} else if (c->address != NULL && inet_pton(AF_INET6, c->address, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)c->port);
		len = sizeof(*sin6);
	} else {
		snprintf(err, errlen, "key 'sd_if_agent.relay.address': not a numeric address: %s",
		         c->address != NULL ? c->address : "(none)");
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, (struct sockaddr *)&ss, len) == -1) {
		snprintf(err, errlen, "relay %s:%lld: %s", c->address, (long long)c->port,
		         strerror(errno));
		goto fail;
	}
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		snprintf(err, errlen, "relay %s: %s", c->address, strerror(errno));
		goto fail;
	}
	r->port = ntohs(ss.ss_family == AF_INET ? sin->sin_port : sin6->sin6_port);
	r->lev =
	    evconnlistener_new(r->base, relay_accept, r,
	                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, RELAY_BACKLOG, fd);
	if (r->lev == NULL) {
		snprintf(err, errlen, "relay %s:%d: %s", c->address, r->port, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (fd != -1)
		close(fd);
	return -1;
}

static int relay_allow_list(struct sdif_relay *r, const struct sdif_relay_conf *c, char *err,
                            size_t errlen)
{
	size_t i;

	if (c->allow.n == 0) {
		snprintf(err, errlen, "key 'sd_if_agent.relay.allow': at least one target needed");
		return -1;
	}
	if ((r->allow = calloc(c->allow.n, sizeof(*r->allow))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->nallow = c->allow.n;
	for (i = 0; i < c->allow.n; i++) {
		struct relay_target *a = &r->allow[i];

		a->salen = sizeof(a->sa);
		/* Numeric only: a name would be resolved here and could change under us. */
		if (strlen(c->allow.v[i]) >= sizeof(a->name) ||
		    evutil_parse_sockaddr_port(c->allow.v[i], (struct sockaddr *)&a->sa,
		                               &a->salen) == -1 ||
		    strchr(c->allow.v[i], ':') == NULL ||
		    ((struct sockaddr_in *)&a->sa)->sin_port == 0) {
			snprintf(err, errlen,
			         "key 'sd_if_agent.relay.allow': '%s' is not a numeric host:port",
			         c->allow.v[i]);
			return -1;
		}
		snprintf(a->name, sizeof(a->name), "%s", c->allow.v[i]);
	}
	return 0;
}

static size_t relay_def(int64_t v, size_t def)
{
	return v > 0 ? (size_t)v : def;
}

int sdif_relay_start(struct sdif *s, const struct sdif_relay_conf *c, char *err, size_t errlen)
{
	struct sdif_relay *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	TAILQ_INIT(&r->tunnels);
	r->s = s;
	r->base = s->d->base;
	r->max_tunnels = relay_def(c->max_tunnels, RELAY_DEF_TUNNELS);
	r->max_per_device = relay_def(c->max_tunnels_per_device, RELAY_DEF_PER_DEV);
	r->max_preamble = relay_def(c->max_preamble, RELAY_DEF_PREAMBLE);
	r->connect_s = (int)relay_def(c->connect_timeout_s, RELAY_DEF_CONNECT_S);
	r->idle_s = (int)relay_def(c->idle_timeout_s, RELAY_DEF_IDLE_S);
	s->relay = r;
	if (relay_allow_list(r, c, err, errlen) == -1 ||
	    (r->ctx = relay_ssl_ctx(s, err, errlen)) == NULL ||
	    relay_listen(r, c, err, errlen) == -1)
		goto fail;
	log_info("sdif=relay listening %s:%d targets=%zu max_tunnels=%zu per_device=%zu",
	         c->address, r->port, r->nallow, r->max_tunnels, r->max_per_device);
	return 0;
fail:
	sdif_relay_stop(s);
	return -1;
}

void sdif_relay_stop(struct sdif *s)
{
	struct sdif_relay *r;

	if (s == NULL || (r = s->relay) == NULL)
		return;
	if (r->lev != NULL)
		evconnlistener_free(r->lev);
	while (!TAILQ_EMPTY(&r->tunnels))
		relay_close(TAILQ_FIRST(&r->tunnels), "shutdown");
	SSL_CTX_free(r->ctx);
	free(r->allow);
	free(r);
	s->relay = NULL;
}

int sdif_relay_close_link(struct sdif *s, const char *link_fp)
{
	struct relay_tunnel *t, *next;
	int n = 0;

	if (s == NULL || s->relay == NULL || link_fp == NULL)
		return 0;
	for (t = TAILQ_FIRST(&s->relay->tunnels); t != NULL; t = next) {
		next = TAILQ_NEXT(t, entry);
		if (t->state == RELAY_HANDSHAKE || strcmp(t->link_fp, link_fp) != 0)
			continue;
		if (t->counted)
			n++;
		relay_close(t, "unpaired");
	}
	return n;
}

size_t sdif_relay_count(struct sdif *s, const char *link_fp)
{
	if (s == NULL || s->relay == NULL)
		return 0;
	return relay_count_fp(s->relay, link_fp);
}

int sdif_relay_port(struct sdif *s)
{
	return s != NULL && s->relay != NULL ? s->relay->port : -1;
}
