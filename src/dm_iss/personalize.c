/*
 * POST /v1/agent/personalize: Figure 4 steps 8-10 (docs/protocol.md).
 *
 * Everything that needs no one else is checked at once (application certificate, body,
 * CSR, token signature and claims); then dm-mss is asked, without blocking the loop,
 * whether the device is still active, and the answer is given from that callback. The
 * request is held meanwhile in a struct dm_iss_pending, which outlives the client if it
 * leaves (req set to NULL by the abort callback), since an httpc call cannot be cancelled
 * on its own; fini drops the rest.
 *
 * Idempotent retry: the token is single use, but the jti is spent together with the
 * certificate it bought, in one transaction. The same token again with a CSR for the same
 * key gets that certificate again; with another key, 409 token_replayed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "opendm/admin.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/replay.h"
#include "opendm/tls.h"
#include "dm_iss.h"

#define DM_ISS_CSR_MAX     (8 * 1024)
#define DM_ISS_VERSION_MAX 32
#define DM_ISS_URLBUF      (DM_ISS_URL_MAX + 64 + DM_ISS_HWID_MAX)

static const struct schema_field dm_iss_agent_fields[] = {
    {"version", SCHEMA_STRING, offsetof(struct dm_iss_agent_info, version), 1, 1,
     DM_ISS_VERSION_MAX, 0, NULL},
    {"version_number", SCHEMA_INT, offsetof(struct dm_iss_agent_info, version_number), 1, 1,
     INT32_MAX, 0, NULL},
    SCHEMA_END,
};

const struct schema_field dm_iss_personalize_fields[] = {
    {"hw_id", SCHEMA_STRING, offsetof(struct dm_iss_personalize_body, hw_id), 1, 4, DM_ISS_HWID_MAX,
     0, NULL},
    {"csr", SCHEMA_STRING, offsetof(struct dm_iss_personalize_body, csr), 1, 1, DM_ISS_CSR_MAX, 0,
     NULL},
    {"capability", SCHEMA_OBJECT, offsetof(struct dm_iss_personalize_body, capability), 1, 0, 0, 0,
     capability_fields},
    {"agent", SCHEMA_OBJECT, offsetof(struct dm_iss_personalize_body, agent), 1, 0, 0, 0,
     dm_iss_agent_fields},
    {"enrolment_token", SCHEMA_STRING, offsetof(struct dm_iss_personalize_body, enrolment_token), 1,
     1, JOSE_MAX_TOKEN, 0, NULL},
    SCHEMA_END,
};

/* A request waiting for dm-mss. Everything the answer needs is copied out of the request,
 * whose body is freed with it. */
struct dm_iss_pending {
	TAILQ_ENTRY(dm_iss_pending) entry;
	struct dm_iss *s;
	struct httpd_req *req; /* NULL once the client has gone */
	struct dm_iss_enrol e;
	int retry; /* the token already bought a certificate for this key */
};

/* Printable ASCII only, since it is logged. */
static int dm_iss_text_ok(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s < 0x21 || *s > 0x7e)
			return 0;
	}
	return 1;
}

/*
 * What the token already bought: 1 a certificate for this very key (a retry), 0 nothing,
 * -1 replied (another key: 409; or a database error: 500).
 */
static int dm_iss_prior(struct dm_iss_pending *p, struct httpd_req *req, struct dm_iss_issued *out)
{
	int r;

	if ((r = dm_iss_store_find(p->s->d->db, p->e.jti, out)) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return -1;
	}
	if (r == 1 && strcmp(out->csr_key_fp, p->e.key_fp) != 0) {
		log_rwarn(p->e.rid, "token %.8s... presented again for another key by %s", p->e.jti,
		          p->e.hw_id);
		free(out->cert_pem);
		out->cert_pem = NULL;
		httpd_reply_error(req, 409, "token_replayed",
		                  "this enrolment token has already been used");
		return -1;
	}
	return r;
}

static void dm_iss_pending_free(struct dm_iss_pending *p)
{
	if (p == NULL)
		return;
	EVP_PKEY_free(p->e.pub);
	free(p);
}

static void dm_iss_pending_abort(void *arg)
{
	struct dm_iss_pending *p = arg;

	/* The reply would go nowhere; the dm-mss answer still comes and frees p. */
	log_rinfo(p->e.rid, "client left before the answer from dm-mss");
	p->req = NULL;
}

void dm_iss_pending_drop(struct dm_iss *s)
{
	struct dm_iss_pending *p;

	while ((p = TAILQ_FIRST(&s->pending)) != NULL) {
		TAILQ_REMOVE(&s->pending, p, entry);
		/* httpd_free() ends the request after us; it must not call back into p. */
		if (p->req != NULL) {
			log_rwarn(p->e.rid,
			          "stopping: dropping a request still waiting for dm-mss");
			httpd_req_set_abort_cb(p->req, NULL, NULL);
		}
		dm_iss_pending_free(p);
	}
}

static void dm_iss_reply(struct dm_iss_pending *p, struct httpd_req *req,
                         const struct dm_iss_issued *is)
{
	struct dm_iss *s = p->s;
	size_t a = strlen(is->cert_pem), b = strlen(s->ca_pem);
	char *chain;
	json_t *body;

	if ((chain = malloc(a + b + 1)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	memcpy(chain, is->cert_pem, a);
	memcpy(chain + a, s->ca_pem, b + 1);
	body = json_pack("{s:s, s:s, s:s, s:s, s:I}", "dm_id", is->dm_id, "certificate", chain,
	                 "trust_bundle", s->trust_bundle, "cdcs_pss_url", s->cdcs_pss_url,
	                 "not_after", (json_int_t)is->not_after);
	free(chain);
	if (body == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	httpd_reply_json(req, 200, body);
}

/* The device is active at dm-mss: steps 8 (done), 9 and 10. */
static void dm_iss_proceed(struct dm_iss_pending *p, struct httpd_req *req)
{
	const struct tls_peer *peer = httpd_req_peer(req);
	struct dm_iss_issued is;
	int r;

	/* Looked up again: another request may have spent the token while we waited. */
	if ((p->retry = dm_iss_prior(p, req, &is)) == -1)
		return;
	log_step("fig4", 8, p->e.rid, p->e.hw_id,
	         "authenticated: enrolment token %.8s... (sub = hw id = CSR CN), device active at "
	         "dm-mss%s",
	         p->e.jti, p->retry ? " (retry)" : "");
	log_step("fig4", 9, p->e.rid, p->e.hw_id,
	         "secure channel: mutual TLS 1.3 with '%s' (application certificate issued by "
	         "'%s')",
	         peer != NULL ? peer->subject_cn : "?", peer != NULL ? peer->issuer_cn : "?");
	if (!p->retry && (r = dm_iss_issue(p->s, &p->e, &is)) != 0) {
		if (r == 1)
			httpd_reply_error(req, 409, "token_replayed",
			                  "this enrolment token has already been used");
		else
			httpd_reply_error(req, 500, "internal_error",
			                  "cannot issue the certificate");
		return;
	}
	dm_iss_reply(p, req, &is);
	log_step("fig4", 10, p->e.rid, p->e.hw_id, "%s DM id %s, certificate valid until %lld",
	         p->retry ? "delivered again (retry):" : "issued", is.dm_id,
	         (long long)is.not_after);
	free(is.cert_pem);
}

enum dm_iss_mss_verdict { DM_ISS_ACTIVE, DM_ISS_REVOKED, DM_ISS_UNKNOWN, DM_ISS_NO_ANSWER };

/* What dm-mss said about hw_id. An answer about another device, or a 404 that is not
 * unknown_device (a wrong dm_mss_url), is no answer. */
static enum dm_iss_mss_verdict dm_iss_mss_verdict(const struct httpc_resp *resp, const char *hw_id)
{
	const char *v;

	if (resp->json == NULL)
		return DM_ISS_NO_ANSWER;
	if (resp->status == 404) {
		v = json_string_value(
		    json_object_get(json_object_get(resp->json, "error"), "code"));
		return v != NULL && strcmp(v, "unknown_device") == 0 ? DM_ISS_UNKNOWN
		                                                     : DM_ISS_NO_ANSWER;
	}
	if (resp->status != 200 ||
	    (v = json_string_value(json_object_get(resp->json, "hw_id"))) == NULL ||
	    strcmp(v, hw_id) != 0 ||
	    (v = json_string_value(json_object_get(resp->json, "status"))) == NULL)
		return DM_ISS_NO_ANSWER;
	if (strcmp(v, "active") == 0)
		return DM_ISS_ACTIVE;
	if (strcmp(v, "revoked") == 0)
		return DM_ISS_REVOKED;
	return DM_ISS_NO_ANSWER;
}

static void dm_iss_mss_done(struct httpc_resp *resp, void *arg)
{
	struct dm_iss_pending *p = arg;
	struct httpd_req *req = p->req;

	TAILQ_REMOVE(&p->s->pending, p, entry);
	if (req == NULL)
		goto out;
	httpd_req_set_abort_cb(req, NULL, NULL);
	switch (dm_iss_mss_verdict(resp, p->e.hw_id)) {
	case DM_ISS_ACTIVE:
		dm_iss_proceed(p, req);
		break;
	case DM_ISS_REVOKED:
		log_rwarn(p->e.rid, "refused %s: revoked", p->e.hw_id);
		httpd_reply_error(req, 403, "device_revoked", "this device has been revoked");
		break;
	case DM_ISS_UNKNOWN:
		log_rwarn(p->e.rid, "refused %s: unknown to dm-mss", p->e.hw_id);
		httpd_reply_error(req, 403, "unknown_device", "this device is not registered");
		break;
	default:
		/* Nothing is recorded: the agent may retry with the same token. */
		log_rerr(p->e.rid, "dm-mss did not answer usably for %s: %s (HTTP %ld)", p->e.hw_id,
		         resp->error != NULL ? resp->error : "unexpected answer", resp->status);
		httpd_reply_error(req, 503, "dm_mss_unavailable",
		                  "the subscriber management server cannot be reached");
		break;
	}
out:
	dm_iss_pending_free(p);
}

/* Everything checked without asking anyone; the token claims go into p. 0, or -1 replied. */
static int dm_iss_check(struct dm_iss *s, struct httpd_req *req, struct dm_iss_pending *p)
{
	struct dm_iss_personalize_body *b = httpd_req_body(req);
	struct jose_expect want;
	const char *code = NULL, *jti;
	char err[DM_ISS_ERRLEN], cn[DM_ISS_HWID_MAX + 1];
	X509_REQ *csr = NULL;
	json_t *claims = NULL, *v;
	int rc = -1;

	if (!dm_iss_hwid_ok(b->hw_id)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "key 'hw_id': only A-Z a-z 0-9 . _ : - are allowed");
		goto fail;
	}
	if (capability_check(&b->capability, "capability", err, sizeof(err)) == -1) {
		httpd_reply_error(req, 400, "bad_request", "%s", err);
		goto fail;
	}
	if (!dm_iss_text_ok(b->agent.version)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "key 'agent.version': printable characters only");
		goto fail;
	}
	memcpy(p->e.hw_id, b->hw_id, strlen(b->hw_id) + 1);

	if ((csr = pki_csr_from_pem(b->csr, strlen(b->csr), err, sizeof(err))) == NULL) {
		log_rwarn(p->e.rid, "bad CSR from %s: %s", p->e.hw_id, err);
		httpd_reply_error(
		    req, 400, "bad_csr",
		    "the CSR is not a PEM certificate request with a valid signature");
		goto fail;
	}
	p->e.pub = X509_REQ_get0_pubkey(csr);
	if (!dm_iss_csr_key_ok(p->e.pub) || !EVP_PKEY_up_ref(p->e.pub)) {
		p->e.pub = NULL;
		httpd_reply_error(req, 400, "bad_csr", "the CSR key must be EC P-256");
		goto fail;
	}
	if (dm_iss_csr_key_fp(p->e.pub, p->e.key_fp) == -1) {
		httpd_reply_error(req, 500, "internal_error", "cannot hash the CSR key");
		goto fail;
	}
	if (dm_iss_csr_cn(csr, cn, sizeof(cn)) == -1 || strcmp(cn, p->e.hw_id) != 0) {
		log_rwarn(p->e.rid, "CSR subject does not name %s", p->e.hw_id);
		httpd_reply_error(req, 403, "csr_mismatch", "the CSR subject CN must be the hw_id");
		goto fail;
	}

	/* No jti_fn: spending the jti waits for the certificate (same transaction), and a
	 * spent token may still be a retry for the same key. */
	memset(&want, 0, sizeof(want));
	want.iss = "dm-mss";
	want.aud = "dm-iss";
	want.sub = p->e.hw_id;
	if ((claims = jose_verify(s->enrolment_pub, b->enrolment_token, &want, &code, err,
	                          sizeof(err))) == NULL) {
		log_rwarn(p->e.rid, "enrolment token of %s refused: %s", p->e.hw_id, err);
		httpd_reply_error(req, jose_code_status(code), code, "enrolment token: %s", err);
		goto fail;
	}
	v = json_object_get(claims, "jti");
	if (!json_is_string(v) || (jti = json_string_value(v))[0] == '\0' ||
	    strlen(jti) > REPLAY_JTI_MAX || !dm_iss_text_ok(jti)) {
		httpd_reply_error(req, 401, "bad_token", "enrolment token: no usable jti");
		goto fail;
	}
	memcpy(p->e.jti, jti, strlen(jti) + 1);
	p->e.exp = (int64_t)json_integer_value(json_object_get(claims, "exp"));
	/* For the audit row only: dm-mss signed it, so a bad one is a bug there, not a refusal. */
	v = json_object_get(claims, "account");
	if (json_is_string(v) && dm_iss_account_ok(json_string_value(v)))
		snprintf(p->e.account, sizeof(p->e.account), "%s", json_string_value(v));
	else
		log_rwarn(p->e.rid, "enrolment token of %s names no usable account", p->e.hw_id);
	rc = 0;
fail:
	json_decref(claims);
	X509_REQ_free(csr);
	return rc;
}

void dm_iss_personalize(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_iss *s = d->role_state;
	const struct tls_peer *peer = httpd_req_peer(req);
	struct dm_iss_personalize_body *b = httpd_req_body(req);
	struct dm_iss_pending *p = NULL;
	struct dm_iss_issued prior;
	char url[DM_ISS_URLBUF];

	if (peer == NULL || strcmp(peer->issuer_fp, s->app_ca_fp) != 0) {
		log_rwarn(httpd_req_id(req), "refused '%s': not an application certificate",
		          peer != NULL ? peer->subject_cn : "?");
		httpd_reply_error(req, 403, "not_application",
		                  "an application certificate is required");
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	p->s = s;
	snprintf(p->e.rid, sizeof(p->e.rid), "%s", httpd_req_id(req));
	admin_actor(d, req, p->e.actor, sizeof(p->e.actor));
	if (dm_iss_check(s, req, p) == -1)
		goto fail;
	/* Early answer for a token spent on another key; settled again after dm-mss. */
	if ((p->retry = dm_iss_prior(p, req, &prior)) == -1)
		goto fail;
	free(prior.cert_pem);

	snprintf(url, sizeof(url), "%s/v1/internal/devices/%s", s->dm_mss_url, p->e.hw_id);
	/* Hooked up before the call, so that nothing httpc does can find p half set. */
	p->req = req;
	TAILQ_INSERT_TAIL(&s->pending, p, entry);
	httpd_req_set_abort_cb(req, dm_iss_pending_abort, p);
	if (httpc_request(s->mss, "GET", url, p->e.rid, NULL, dm_iss_mss_done, p) == -1) {
		TAILQ_REMOVE(&s->pending, p, entry);
		httpd_req_set_abort_cb(req, NULL, NULL);
		log_rerr(p->e.rid, "cannot start the request to dm-mss");
		httpd_reply_error(req, 503, "dm_mss_unavailable",
		                  "the subscriber management server cannot be reached");
		goto fail;
	}
	log_rdebug(p->e.rid, "agent %s (%lld) of %s: asking dm-mss about it%s", b->agent.version,
	           (long long)b->agent.version_number, p->e.hw_id, p->retry ? " (retry)" : "");
	return;
fail:
	dm_iss_pending_free(p);
}
