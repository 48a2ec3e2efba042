/*
 * agent_personalize: Figure 4 steps 7, 11 and 12. The request to dm-iss is retried with
 * backoff (transport errors, 5xx) until retry_max_s, always with the same key, token and
 * request id, so dm-iss can answer a retry whose first answer was lost with the certificate it
 * already issued.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "opendm/file.h"
#include "opendm/jose.h"
#include "opendm/pki.h"

#include "opendm/schema.h"
#include "agent.h"

#define AGENT_RETRY_FIRST_MS 200
#define AGENT_RETRY_MAX_MS   2000

struct agent_pers {
	struct agent *a;
	struct bufferevent *bev; /* dm-app's control connection, NULL once it went away */
	char rid[65];
	char url[1200];
	EVP_PKEY *key;
	json_t *body;
	struct event *retry;
	struct timespec deadline;
	long delay_ms;
	int attempts;
};

static void agent_pers_free(struct agent_pers *p)
{
	if (p == NULL)
		return;
	if (p->retry != NULL)
		event_free(p->retry);
	EVP_PKEY_free(p->key);
	json_decref(p->body);
	free(p);
}

/* Step 12: the result to dm-app (when it still listens) and to the log. Takes resp. */
static void agent_pers_finish(struct agent_pers *p, json_t *resp)
{
	struct agent *a = p->a;
	const char *dm = json_string_value(json_object_get(resp, "dm_id"));
	const char *code = json_string_value(json_object_get(resp, "code"));

	if (dm != NULL)
		log_step("fig4", 12, p->rid, a->cfg.hw_id, "personalized dm_id=%s", dm);
	else
		log_step("fig4", 12, p->rid, a->cfg.hw_id, "personalization failed: %s",
		         code != NULL ? code : "internal_error");
	a->pers = NULL;
	if (p->bev != NULL)
		agent_control_reply(p->bev, resp);
	else
		json_decref(resp);
	agent_pers_free(p);
}

static int agent_rid_ok(const char *s)
{
	return schema_token_ok(s, 1, 64, "._-");
}

static int agent_dm_id_ok(const char *s)
{
	return schema_token_ok(s, 1, 128, "._:-");
}

/* Step 11: check what dm-iss issued against our key and its trust bundle, then store it. */
static int agent_store(struct agent_pers *p, json_t *j, const char **dm_out, char *err,
                       size_t errlen)
{
	const struct dev_config *cfg = &p->a->cfg;
	const char *dm = json_string_value(json_object_get(j, "dm_id"));
	const char *cert = json_string_value(json_object_get(j, "certificate"));
	const char *trust = json_string_value(json_object_get(j, "trust_bundle"));
	const char *pss = json_string_value(json_object_get(j, "cdcs_pss_url"));
	json_t *na = json_object_get(j, "not_after"), *id = NULL;
	STACK_OF(X509) *certs = NULL, *anchors = NULL;
	char cn[256], uri[256], want[300], path[PATH_MAX], *text = NULL;
	X509 *leaf;
	int rc = -1;

	if (!agent_dm_id_ok(dm) || cert == NULL || trust == NULL || pss == NULL ||
	    strlen(pss) > 1000 || !json_is_integer(na) || strlen(cert) > 64 * 1024 ||
	    strlen(trust) > 256 * 1024) {
		snprintf(err, errlen, "dm-iss answer is missing fields");
		goto out;
	}
	if ((certs = dev_certs_from_pem(cert, err, errlen)) == NULL ||
	    (anchors = dev_certs_from_pem(trust, err, errlen)) == NULL)
		goto out;
	leaf = sk_X509_value(certs, 0);
	if (pki_verify(leaf, certs, anchors, X509_PURPOSE_SSL_CLIENT, err, errlen) == -1)
		goto out;
	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), p->key) != 1) {
		snprintf(err, errlen, "the certificate is not for our key");
		goto out;
	}
	snprintf(want, sizeof(want), "urn:opendm:dm:%s", dm);
	if (pki_cert_cn(leaf, cn, sizeof(cn)) == -1 || strcmp(cn, dm) != 0 ||
	    pki_cert_uri(leaf, uri, sizeof(uri)) == -1 || strcmp(uri, want) != 0) {
		snprintf(err, errlen, "the certificate does not name dm_id %s", dm);
		goto out;
	}
	if ((id = json_pack("{s:s, s:s, s:s, s:I}", "dm_id", dm, "hw_id", cfg->hw_id,
	                    "cdcs_pss_url", pss, "not_after", json_integer_value(na))) == NULL ||
	    (text = json_dumps(id, JSON_INDENT(2))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* identity.json last: its presence is what "personalized" means. */
	if (dev_path(path, sizeof(path), cfg, "identity/cert.pem") == -1 ||
	    file_write_atomic(path, cert, strlen(cert), 0644, err, errlen) == -1 ||
	    dev_path(path, sizeof(path), cfg, "identity/trust.pem") == -1 ||
	    file_write_atomic(path, trust, strlen(trust), 0644, err, errlen) == -1 ||
	    dev_path(path, sizeof(path), cfg, "identity/identity.json") == -1 ||
	    file_write_atomic(path, text, strlen(text), 0644, err, errlen) == -1)
		goto out;
	*dm_out = dm;
	rc = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(anchors, X509_free);
	json_decref(id);
	free(text);
	return rc;
}

static long agent_ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static void agent_pers_send(struct agent_pers *p);

static void agent_pers_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	agent_pers_send(arg);
}

static void agent_pers_cb(struct httpc_resp *resp, void *arg)
{
	struct agent_pers *p = arg;
	json_t *err_obj = json_object_get(resp->json, "error");
	const char *code = json_string_value(json_object_get(err_obj, "code"));
	const char *msg = json_string_value(json_object_get(err_obj, "message"));
	const char *dm = NULL;
	json_t *reply;
	struct timeval tv;
	char err[512];
	long left;

	if (resp->error != NULL || resp->status >= 500) {
		left = agent_ms_left(&p->deadline);
		if (left > 0) {
			log_rwarn(p->rid, "dm-iss %s (attempt %d), retrying in %ld ms",
			          resp->error != NULL ? resp->error
			          : code != NULL      ? code
			                              : "5xx",
			          p->attempts, p->delay_ms);
			tv.tv_sec = p->delay_ms / 1000;
			tv.tv_usec = (p->delay_ms % 1000) * 1000;
			p->delay_ms = p->delay_ms * 2 > AGENT_RETRY_MAX_MS ? AGENT_RETRY_MAX_MS
			                                                   : p->delay_ms * 2;
			if (evtimer_add(p->retry, &tv) == 0)
				return;
		}
		/* Out of retries: "unavailable" tells dm-app to exit 3, not 1. */
		if (resp->error != NULL || code == NULL)
			reply = agent_control_error("unreachable", resp->error != NULL
			                                               ? resp->error
			                                               : "dm-iss unavailable");
		else
			reply = agent_control_error(code, msg != NULL ? msg : code);
		json_object_set_new(reply, "unavailable", json_true());
		agent_pers_finish(p, reply);
		return;
	}
	if (resp->status != 200) {
		agent_pers_finish(p, agent_control_error(code != NULL ? code : "refused",
		                                         msg != NULL ? msg : "dm-iss refused"));
		return;
	}
	if (agent_store(p, resp->json, &dm, err, sizeof(err)) == -1) {
		log_rerr(p->rid, "step 11: %s", err);
		agent_pers_finish(p, agent_control_error("bad_certificate", err));
		return;
	}
	log_step("fig4", 11, p->rid, p->a->cfg.hw_id, "identity stored dm_id=%s", dm);
	agent_pers_finish(
	    p, json_pack("{s:b, s:s, s:s}", "ok", 1, "dm_id", dm, "hw_id", p->a->cfg.hw_id));
}

static void agent_pers_send(struct agent_pers *p)
{
	p->attempts++;
	if (p->attempts == 1)
		log_step("fig4", 7, p->rid, p->a->cfg.hw_id, "personalize request to %s", p->url);
	if (httpc_request(p->a->http, "POST", p->url, p->rid, p->body, agent_pers_cb, p) == -1)
		agent_pers_finish(p, agent_control_error("internal_error", "cannot send"));
}

static json_t *agent_pers_body(struct agent *a, EVP_PKEY *key, const char *token, char *err,
                               size_t errlen)
{
	struct dev_manifest m;
	X509_REQ *csr = NULL;
	char *pem = NULL;
	json_t *body = NULL, *cap = NULL;

	if (dev_manifest_installed(&a->cfg, &m) == -1) {
		snprintf(err, errlen, "no agent installed (no manifest)");
		goto out;
	}
	if ((csr = pki_csr_new(key, a->cfg.hw_id, NULL)) == NULL ||
	    (pem = pki_csr_pem(csr)) == NULL ||
	    (cap = capability_to_json(&a->cfg.capability)) == NULL) {
		snprintf(err, errlen, "cannot make the CSR");
		goto out;
	}
	body = json_pack("{s:s, s:s, s:O, s:{s:s, s:I}, s:s}", "hw_id", a->cfg.hw_id, "csr", pem,
	                 "capability", cap, "agent", "version", m.version, "version_number",
	                 (json_int_t)m.version_number, "enrolment_token", token);
	if (body == NULL)
		snprintf(err, errlen, "out of memory");
out:
	X509_REQ_free(csr);
	free(pem);
	json_decref(cap);
	return body;
}

void agent_personalize(struct agent *a, struct bufferevent *bev, json_t *cmd)
{
	const char *rid = json_string_value(json_object_get(cmd, "rid"));
	const char *token = json_string_value(json_object_get(cmd, "enrolment_token"));
	const char *url = json_string_value(json_object_get(cmd, "dm_iss_url"));
	struct agent_pers *p = NULL;
	struct dev_identity id;
	char err[512];
	int n;

	if (a->pers != NULL) {
		agent_control_reply(bev,
		                    agent_control_error("busy", "personalization in progress"));
		return;
	}
	if (!agent_rid_ok(rid) || token == NULL || strlen(token) > JOSE_MAX_TOKEN || url == NULL ||
	    strncmp(url, "https://", 8) != 0 || strlen(url) > 1024) {
		agent_control_reply(bev, agent_control_error("bad_request", "bad personalize"));
		return;
	}
	if (dev_identity_load(&a->cfg, &id) == 0) {
		/* Idempotent: a re-install keeps the identity it already has. */
		log_step("fig4", 12, rid, a->cfg.hw_id, "already personalized dm_id=%s", id.dm_id);
		agent_control_reply(bev, json_pack("{s:b, s:s, s:s}", "ok", 1, "dm_id", id.dm_id,
		                                   "hw_id", a->cfg.hw_id));
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		agent_control_reply(bev, agent_control_error("internal_error", "out of memory"));
		return;
	}
	p->a = a;
	p->bev = bev;
	snprintf(p->rid, sizeof(p->rid), "%s", rid);
	n = snprintf(p->url, sizeof(p->url), "%s/v1/agent/personalize", url);
	if (n < 0 || (size_t)n >= sizeof(p->url))
		goto fail;
	if ((p->key = dev_key_load_or_new(&a->cfg, err, sizeof(err))) == NULL ||
	    (p->body = agent_pers_body(a, p->key, token, err, sizeof(err))) == NULL ||
	    (p->retry = evtimer_new(a->base, agent_pers_retry_cb, p)) == NULL) {
		log_rerr(rid, "%s", err);
		goto fail;
	}
	clock_gettime(CLOCK_MONOTONIC, &p->deadline);
	p->deadline.tv_sec += a->cfg.retry_max_s;
	p->delay_ms = AGENT_RETRY_FIRST_MS;
	a->pers = p;
	agent_pers_send(p);
	return;
fail:
	agent_pers_free(p);
	agent_control_reply(bev, agent_control_error("internal_error", "cannot personalize"));
}

void agent_personalize_detach(struct agent *a, struct bufferevent *bev)
{
	if (a->pers != NULL && a->pers->bev == bev)
		a->pers->bev = NULL;
}

void agent_personalize_cancel(struct agent *a)
{
	/*
	 * Called after the loop stopped: httpc_free() cancels the request in flight and
	 * agent_control_stop() frees the control connection with the others.
	 */
	agent_pers_free(a->pers);
	a->pers = NULL;
}
