/*
 * app_pair: pairing with the primary CPE (sd-if-agent, issue 5) and the pairing assertion
 * that replaces an activation code in Figure 4 step 1.
 *
 * Pairing is a raw OpenSSL client, not httpc: the proof binds the PIN to this TLS session
 * through its exporter, which libcurl does not expose. A man in the middle terminates TLS
 * itself, so its session (and exporter) differs from the CPE's and the proof fails there;
 * the PIN is never sent, and never logged.
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "opendm/pairproof.h"
#include "opendm/jose.h"
#include "opendm/pki.h"

#include "app.h"
#include "dev_link.h"

#define APP_PAIR_IO_S       10
#define APP_PAIR_MAX_HEADER (16 * 1024)
#define APP_PAIR_MAX_BODY   (64 * 1024)
#define APP_PROOF_TTL_S     60
#define APP_MAX_CPE_CERT    (16 * 1024)

/* pairing_url split: "https://host:port/prefix" (IPv6 as [addr]). */
struct app_url {
	char host[256];
	char port[8];
	char prefix[1024];
	int is_ip6; /* host was [addr] */
};

static int app_url_split(const char *url, struct app_url *u)
{
	const char *h = url + 8, *end, *p, *colon;
	size_t n;

	memset(u, 0, sizeof(*u));
	if (strncmp(url, "https://", 8) != 0)
		return -1;
	p = h + strcspn(h, "/");
	if (*h == '[') {
		if ((end = memchr(h, ']', (size_t)(p - h))) == NULL)
			return -1;
		h++;
		u->is_ip6 = 1;
		colon = end + 1 < p && end[1] == ':' ? end + 1 : NULL;
		if (colon == NULL && end + 1 != p)
			return -1;
	} else {
		colon = memchr(h, ':', (size_t)(p - h));
		end = colon != NULL ? colon : p;
	}
	n = (size_t)(end - h);
	if (n == 0 || n >= sizeof(u->host))
		return -1;
	memcpy(u->host, h, n);
	if (colon != NULL) {
		n = (size_t)(p - colon - 1);
		if (n == 0 || n >= sizeof(u->port) || strspn(colon + 1, "0123456789") < n)
			return -1;
		memcpy(u->port, colon + 1, n);
	} else
		snprintf(u->port, sizeof(u->port), "443");
	if (strlen(p) >= sizeof(u->prefix))
		return -1;
	snprintf(u->prefix, sizeof(u->prefix), "%s", p);
	return 0;
}

/* A connected TCP socket with send/receive timeouts, or -1. */
static int app_tcp_connect(const struct app_url *u, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct timeval tv = {APP_PAIR_IO_S, 0};
	int fd = -1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(u->host, u->port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: %s", u->host, gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol)) ==
		    -1)
			continue;
		/* Linux bounds connect() by SO_SNDTIMEO too. */
		if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0 &&
		    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
		    connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	if (fd == -1)
		snprintf(err, errlen, "%s:%s: %s", u->host, u->port, strerror(errno));
	freeaddrinfo(res);
	return fd;
}

/*
 * The TLS client: our application credential, the CPE checked against the CPE CA alone
 * (partial chain: the CPE CA is an intermediate of the operator root, and it is the only
 * anchor that may vouch for a CPE) and against the pairing URL's host or address.
 */
static SSL *app_pair_ssl(struct app *app, const struct app_url *u, SSL_CTX **ctx, char *err,
                         size_t errlen)
{
	struct tls_conf tc = app->cfg.tls;
	unsigned char ip[16];
	SSL *ssl = NULL;
	int is_ip;

	tc.ca = app->cfg.cpe.ca;
	tc.crl = NULL;
	if ((*ctx = tls_client_ctx(&tc, err, errlen)) == NULL)
		return NULL;
	X509_STORE_set_flags(SSL_CTX_get_cert_store(*ctx), X509_V_FLAG_PARTIAL_CHAIN);
	is_ip = inet_pton(AF_INET, u->host, ip) == 1 || inet_pton(AF_INET6, u->host, ip) == 1;
	if ((ssl = SSL_new(*ctx)) == NULL ||
	    (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), u->host) != 1
	           : (SSL_set1_host(ssl, u->host) != 1 ||
	              SSL_set_tlsext_host_name(ssl, u->host) != 1))) {
		tls_seterr(err, errlen, "cannot set up TLS for %s", u->host);
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

static int app_ssl_write_all(SSL *ssl, const char *buf, size_t len)
{
	size_t done = 0, n;

	while (done < len) {
		if (SSL_write_ex(ssl, buf + done, len - done, &n) != 1)
			return -1;
		done += n;
	}
	return 0;
}

/* The value of header name in a header block (lines after the status line), or NULL. */
static const char *app_header(const char *head, const char *name)
{
	size_t n = strlen(name);
	const char *p = head;

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			p += n + 1;
			return p + strspn(p, " \t");
		}
	}
	return NULL;
}

/*
 * One HTTP/1.1 response, bounded: a header block of at most APP_PAIR_MAX_HEADER bytes with a
 * Content-Length (required) of at most APP_PAIR_MAX_BODY. *json is the body if it is JSON.
 */
static int app_read_response(SSL *ssl, long *status, json_t **json, char *err, size_t errlen)
{
	size_t cap = APP_PAIR_MAX_HEADER + APP_PAIR_MAX_BODY, have = 0, n, hlen = 0;
	const char *cl;
	char *buf, *eoh = NULL, *endp;
	unsigned long long blen = 0;
	int rc = -1;

	*json = NULL;
	if ((buf = malloc(cap + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (;;) {
		if (eoh != NULL && have >= hlen + blen)
			break;
		if (SSL_read_ex(ssl, buf + have, cap - have, &n) != 1) {
			tls_seterr(err, errlen, "the CPE closed or timed out before a full answer");
			goto out;
		}
		have += n;
		buf[have] = '\0';
		if (eoh != NULL)
			continue;
		if ((eoh = strstr(buf, "\r\n\r\n")) == NULL) {
			if (have > APP_PAIR_MAX_HEADER) {
				snprintf(err, errlen, "answer header too large");
				goto out;
			}
			continue;
		}
		*eoh = '\0';
		if ((hlen = (size_t)(eoh - buf) + 4) > APP_PAIR_MAX_HEADER) {
			snprintf(err, errlen, "answer header too large");
			goto out;
		}
		if (sscanf(buf, "HTTP/1.%*1[01] %3ld", status) != 1 || *status < 100) {
			snprintf(err, errlen, "not an HTTP/1.1 answer");
			goto out;
		}
		errno = 0;
		if ((cl = app_header(buf, "Content-Length")) == NULL || *cl < '0' || *cl > '9' ||
		    (blen = strtoull(cl, &endp, 10), errno != 0) ||
		    (*endp != '\0' && *endp != '\r' && *endp != ' ') || blen > APP_PAIR_MAX_BODY) {
			snprintf(err, errlen, "answer without a valid Content-Length of at most %d",
			         APP_PAIR_MAX_BODY);
			goto out;
		}
	}
	if (have != hlen + blen) {
		snprintf(err, errlen, "bytes after the answer");
		goto out;
	}
	*json = json_loadb(buf + hlen, (size_t)blen, JSON_REJECT_DUPLICATES, NULL);
	rc = 0;
out:
	free(buf);
	return rc;
}

/* The pair request on ssl: the proof for this session, POST, the answer. */
static int app_pair_exchange(struct app *app, SSL *ssl, const struct app_url *u, const char *pin,
                             X509 *link_cert, long *status, json_t **resp, char *err, size_t errlen)
{
	unsigned char exporter[PAIRPROOF_EXPORTER_LEN], spki[32];
	char proof[65], *pem = NULL, *body = NULL, *req = NULL;
	json_t *j = NULL;
	size_t blen, cap;
	int n, rc = -1;

	if (pairproof_exporter(ssl, exporter) == -1 || dev_link_spki(link_cert, spki, NULL) == -1 ||
	    pairproof_make(pin, exporter, spki, app->cfg.hw_id, proof) == -1 ||
	    (pem = pki_cert_pem(link_cert)) == NULL) {
		tls_seterr(err, errlen, "cannot compute the pairing proof");
		goto out;
	}
	if ((j = json_pack("{s:s, s:s, s:s}", "hw_id", app->cfg.hw_id, "link_cert", pem, "proof",
	                   proof)) == NULL ||
	    (body = json_dumps(j, JSON_COMPACT)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	blen = strlen(body);
	cap = blen + sizeof(u->prefix) + sizeof(u->host) + sizeof(app->rid) + 256;
	if ((req = malloc(cap)) == NULL ||
	    (n = snprintf(req, cap,
	                  "POST %s/v1/pairing/pair HTTP/1.1\r\nHost: %s%s%s:%s\r\n"
	                  "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	                  "X-Request-Id: %s\r\nConnection: close\r\n\r\n%s",
	                  u->prefix, u->is_ip6 ? "[" : "", u->host, u->is_ip6 ? "]" : "", u->port,
	                  blen, app->rid, body)) < 0 ||
	    (size_t)n >= cap) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (app_ssl_write_all(ssl, req, (size_t)n) == -1) {
		tls_seterr(err, errlen, "sending the pair request");
		goto out;
	}
	rc = app_read_response(ssl, status, resp, err, errlen);
out:
	OPENSSL_cleanse(exporter, sizeof(exporter));
	OPENSSL_cleanse(proof, sizeof(proof));
	free(req);
	free(body);
	free(pem);
	json_decref(j);
	return rc;
}

/* The server's {"error": {"code", "message"}}, or fallbacks. */
void app_json_error(const json_t *j, const char **code, const char **msg)
{
	json_t *e = json_object_get(j, "error");

	*code = json_string_value(json_object_get(e, "code"));
	*msg = json_string_value(json_object_get(e, "message"));
	if (*code == NULL)
		*code = "refused";
	if (*msg == NULL)
		*msg = "the server refused the request";
}

/* A 201: check the answer names us, our link key and the CPE we verified, then store it. */
static int app_pair_store(struct app *app, const json_t *resp, const char *peer_cn, EVP_PKEY *key,
                          X509 *cert)
{
	const char *cpe = json_string_value(json_object_get(resp, "cpe"));
	const char *hw = json_string_value(json_object_get(resp, "hw_id"));
	const char *fp = json_string_value(json_object_get(resp, "link_fp"));
	const char *relay = json_string_value(json_object_get(resp, "relay_url"));
	struct dev_link l;
	char err[1024];

	memset(&l, 0, sizeof(l));
	if (dev_link_spki(cert, NULL, l.link_fp) == -1)
		return app_fail(APP_EXIT_REFUSED, "internal_error", "cannot hash the link key");
	if (cpe == NULL || strcmp(cpe, peer_cn) != 0 || hw == NULL ||
	    strcmp(hw, app->cfg.hw_id) != 0 || fp == NULL || strcmp(fp, l.link_fp) != 0 ||
	    relay == NULL || strlen(relay) >= sizeof(l.relay_url) || !dev_url_ok(relay))
		return app_fail(APP_EXIT_REFUSED, "bad_response",
		                "the CPE's answer does not match this pairing");
	snprintf(l.cpe, sizeof(l.cpe), "%s", cpe);
	snprintf(l.relay_url, sizeof(l.relay_url), "%s", relay);
	l.paired_at = (int64_t)time(NULL);
	if (dev_link_save(&app->cfg, key, cert, &l, err, sizeof(err)) == -1)
		return app_fail(APP_EXIT_REFUSED, "internal_error", "%s", err);
	log_rdebug(app->rid, "sdif=pair cpe=%s link_fp=%s", cpe, l.link_fp);
	printf("dm-app: paired with %s relay=%s\n", cpe, relay);
	return APP_EXIT_OK;
}

int app_pair(struct app *app, const char *pin)
{
	struct app_url u;
	const char *code, *msg;
	char err[1024], peer_cn[129];
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	json_t *resp = NULL;
	long status = 0;
	int fd = -1, rc;

	if (app->cfg.cpe.pairing_url == NULL)
		return app_fail(APP_EXIT_USAGE, "config", "%s: no 'cpe' section", app->cfg.path);
	if (app_url_split(app->cfg.cpe.pairing_url, &u) == -1)
		return app_fail(APP_EXIT_USAGE, "config", "%s: key 'cpe.pairing_url': bad URL",
		                app->cfg.path);
	if (jose_random_hex(app->rid, sizeof(app->rid), 12) == -1)
		return app_fail(APP_EXIT_REFUSED, "internal_error", "no randomness");
	if ((ssl = app_pair_ssl(app, &u, &ctx, err, sizeof(err))) == NULL) {
		rc = app_fail(APP_EXIT_USAGE, "config", "%s", err);
		goto out;
	}
	if (dev_link_new(app->cfg.hw_id, &key, &cert, err, sizeof(err)) == -1) {
		rc = app_fail(APP_EXIT_REFUSED, "internal_error", "%s", err);
		goto out;
	}
	if ((fd = app_tcp_connect(&u, err, sizeof(err))) == -1) {
		rc = app_fail(APP_EXIT_UNREACHABLE, "unreachable", "CPE %s", err);
		goto out;
	}
	if (SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1) {
		/* Nothing was sent: the proof goes out only to a CPE the CPE CA vouches for. */
		if (SSL_get_verify_result(ssl) != X509_V_OK) {
			rc = app_fail(APP_EXIT_REFUSED, "bad_cpe_certificate", "%s: %s",
			              app->cfg.cpe.pairing_url,
			              X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
			ERR_clear_error();
		} else {
			tls_seterr(err, sizeof(err), "TLS with %s failed",
			           app->cfg.cpe.pairing_url);
			rc = app_fail(APP_EXIT_UNREACHABLE, "unreachable", "%s", err);
		}
		goto out;
	}
	if (pki_cert_cn(SSL_get0_peer_certificate(ssl), peer_cn, sizeof(peer_cn)) == -1) {
		rc = app_fail(APP_EXIT_REFUSED, "bad_cpe_certificate",
		              "the CPE certificate has no CN");
		goto out;
	}
	if (app_pair_exchange(app, ssl, &u, pin, cert, &status, &resp, err, sizeof(err)) == -1) {
		rc = app_fail(APP_EXIT_UNREACHABLE, "unreachable", "%s", err);
		goto out;
	}
	if (status == 201) {
		rc = app_pair_store(app, resp, peer_cn, key, cert);
		goto out;
	}
	app_json_error(resp, &code, &msg);
	rc = app_fail(status >= 500 ? APP_EXIT_UNREACHABLE : APP_EXIT_REFUSED, code, "%s", msg);
out:
	if (ssl != NULL && fd != -1)
		(void)SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd != -1)
		close(fd);
	EVP_PKEY_free(key);
	X509_free(cert);
	json_decref(resp);
	return rc;
}

/* The link proof: a short JWS by the link key, for the CPE we paired with. */
static char *app_link_proof(struct app *app, const struct dev_link *l, int *rc)
{
	char err[512], *jws = NULL;
	EVP_PKEY *key;
	json_t *claims;

	if ((key = pki_key_load(l->key, err, sizeof(err))) == NULL) {
		*rc = app_fail(APP_EXIT_REFUSED, "not_paired", "link key: %s (pair again)", err);
		return NULL;
	}
	/* iss as well as sub: jose_verify() on the CPE requires an issuer. */
	if ((claims = json_pack("{s:s, s:s, s:s}", "iss", app->cfg.hw_id, "sub", app->cfg.hw_id,
	                        "aud", l->cpe)) == NULL ||
	    (jws = jose_sign(key, NULL, claims, APP_PROOF_TTL_S, err, sizeof(err))) == NULL)
		*rc = app_fail(APP_EXIT_REFUSED, "internal_error", "link proof: %s", err);
	json_decref(claims);
	EVP_PKEY_free(key);
	return jws;
}

json_t *app_pair_assertion(struct app *app, int *rc)
{
	struct httpc_conf hc;
	struct httpc *c = NULL;
	struct httpc_resp *r = NULL;
	struct dev_link l;
	const char *code, *msg, *a, *pem;
	char err[1024], url[1200], *proof = NULL;
	json_t *body = NULL, *out = NULL;

	if (dev_link_load(&app->cfg, &l, err, sizeof(err)) == -1) {
		*rc = app_fail(APP_EXIT_REFUSED, "not_paired", "%s", err);
		return NULL;
	}
	if (!l.paired) {
		*rc = app_fail(APP_EXIT_REFUSED, "not_paired",
		               "this device is not paired with a CPE (dm-app pair --pin PIN)");
		return NULL;
	}
	if ((proof = app_link_proof(app, &l, rc)) == NULL)
		return NULL;
	/* Straight to the CPE (it is in the home): the application credential, the CPE CA. */
	memset(&hc, 0, sizeof(hc));
	hc.tls = app->cfg.tls;
	hc.tls.ca = app->cfg.cpe.ca;
	hc.tls.crl = NULL;
	snprintf(url, sizeof(url), "%s/v1/pairing/assertion", app->cfg.cpe.pairing_url);
	if ((c = httpc_new(app->base, &hc, err, sizeof(err))) == NULL) {
		*rc = app_fail(APP_EXIT_USAGE, "config", "%s", err);
		goto done;
	}
	if ((body = json_pack("{s:s, s:s}", "hw_id", app->cfg.hw_id, "link_proof", proof)) ==
	        NULL ||
	    (r = httpc_request_sync(c, "POST", url, app->rid, body)) == NULL) {
		*rc = app_fail(APP_EXIT_REFUSED, "internal_error", "out of memory");
		goto done;
	}
	if (r->error != NULL) {
		*rc = app_fail(APP_EXIT_UNREACHABLE, "unreachable", "CPE: %s", r->error);
		goto done;
	}
	if (r->status != 200) {
		app_json_error(r->json, &code, &msg);
		*rc = app_fail(r->status >= 500 ? APP_EXIT_UNREACHABLE : APP_EXIT_REFUSED, code,
		               "CPE: %s", msg);
		goto done;
	}
	a = json_string_value(json_object_get(r->json, "assertion"));
	pem = json_string_value(json_object_get(r->json, "cpe_certificate"));
	if (a == NULL || strlen(a) > JOSE_MAX_TOKEN || pem == NULL ||
	    strlen(pem) > APP_MAX_CPE_CERT) {
		*rc =
		    app_fail(APP_EXIT_REFUSED, "bad_response", "the CPE's assertion is incomplete");
		goto done;
	}
	if ((out = json_pack("{s:s, s:s}", "assertion", a, "cpe_certificate", pem)) == NULL)
		*rc = app_fail(APP_EXIT_REFUSED, "internal_error", "out of memory");
done:
	httpc_resp_free(r);
	httpc_free(c);
	json_decref(body);
	free(proof);
	return out;
}
