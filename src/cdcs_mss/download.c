/*
 * POST /v1/cdcs/download: Figure 5 steps 9-11 at cdcs-mss (docs/protocol.md).
 *
 * The device presents the download ticket from step 6 on its DM certificate. Everything that
 * needs no one else is checked at once (step 9: peer, ticket, image still offered); then
 * cdcs-iss is asked for a personalization ticket (step 11) without blocking the loop, and the
 * answer is given from that callback. The request waits in a struct cdcs_mss_pending, which
 * outlives the client if it leaves (req set to NULL by the abort callback), since an httpc
 * call cannot be cancelled on its own; fini drops the rest.
 *
 * The ticket is single use, but its jti is spent only once cdcs-iss has answered, in one
 * transaction with the download session it buys: a device whose download failed because
 * cdcs-iss could not be reached retries with the same ticket.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/replay.h"
#include "opendm/tls.h"
#include "cdcs_mss.h"

#define CDCS_MSS_URLBUF (CDCS_MSS_URL_MAX + 64)

const struct schema_field cdcs_mss_download_fields[] = {
    {"download_ticket", SCHEMA_STRING, offsetof(struct cdcs_mss_download_body, download_ticket), 1,
     1, JOSE_MAX_TOKEN, 0, NULL},
    SCHEMA_END,
};

/* A download waiting for cdcs-iss: what the answer needs, copied out of the request. */
struct cdcs_mss_pending {
	TAILQ_ENTRY(cdcs_mss_pending) entry;
	struct cdcs_mss *s;
	struct httpd_req *req; /* NULL once the client has gone */
	char rid[HTTPD_RID_MAX + 1];
	char dm_id[DMPEER_ID_MAX + 1];
	char jti[REPLAY_JTI_MAX + 1]; /* of the download ticket */
	int64_t exp;                  /* of the download ticket */
	struct cdcs_mss_image img;
};

static void cdcs_mss_pending_free(struct cdcs_mss_pending *p)
{
	if (p == NULL)
		return;
	cdcs_mss_image_clear(&p->img);
	free(p);
}

static void cdcs_mss_pending_abort(void *arg)
{
	struct cdcs_mss_pending *p = arg;

	/* The reply would go nowhere; the cdcs-iss answer still comes and frees p. Nothing is
	 * recorded then, so the ticket stays usable. */
	log_rinfo(p->rid, "client left before the answer from cdcs-iss");
	p->req = NULL;
}

void cdcs_mss_pending_drop(struct cdcs_mss *s)
{
	struct cdcs_mss_pending *p;

	while ((p = TAILQ_FIRST(&s->pending)) != NULL) {
		TAILQ_REMOVE(&s->pending, p, entry);
		/* httpd_free() ends the request after us; it must not call back into p. */
		if (p->req != NULL) {
			log_rwarn(p->rid,
			          "stopping: dropping a download still waiting for cdcs-iss");
			httpd_req_set_abort_cb(p->req, NULL, NULL);
		}
		cdcs_mss_pending_free(p);
	}
}

/* The image the ticket names, still registered and offered, with the ticket's digest.
 * 0, or -1 replied. */
static int cdcs_mss_ticket_image(struct daemon_ctx *d, struct httpd_req *req, const json_t *im,
                                 struct cdcs_mss_image *out)
{
	const char *vendor = json_string_value(json_object_get(im, "vendor"));
	const char *name = json_string_value(json_object_get(im, "name"));
	const char *variant = json_string_value(json_object_get(im, "variant"));
	const char *platform = json_string_value(json_object_get(im, "platform"));
	const char *sha = json_string_value(json_object_get(im, "sha256"));
	json_t *vn = json_object_get(im, "version_number");
	const char *gone = NULL;
	int r;

	if (vendor == NULL || name == NULL || variant == NULL || platform == NULL || sha == NULL ||
	    !json_is_integer(vn)) {
		httpd_reply_error(req, 401, "bad_token", "download ticket: no usable image claim");
		return -1;
	}
	r = cdcs_mss_store_image_get(d->db, vendor, name, variant, platform,
	                             (int64_t)json_integer_value(vn), out);
	if (r == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return -1;
	}
	if (r == 0 || (gone = cdcs_mss_image_gone(out)) != NULL ||
	    strcmp(out->m.sha256, sha) != 0) {
		if (gone == NULL)
			gone = "image_withdrawn";
		log_rwarn(httpd_req_id(req), "download of %s/%s %s v%lld refused: %s", vendor, name,
		          variant, (long long)json_integer_value(vn), gone);
		httpd_reply_error(req, 410, gone, "%s/%s %s version %lld is no longer offered",
		                  vendor, name, variant, (long long)json_integer_value(vn));
		if (r == 1)
			cdcs_mss_image_clear(out);
		return -1;
	}
	return 0;
}

/*
 * Step 9: the ticket (signed by us for this device, not expired, not spent) and its image.
 * On success p is filled and *iss_body is what cdcs-iss gets. 0, or -1 replied.
 */
static int cdcs_mss_check(struct daemon_ctx *d, struct httpd_req *req, struct cdcs_mss_pending *p,
                          json_t **iss_body)
{
	struct cdcs_mss *s = d->role_state;
	struct cdcs_mss_download_body *b = httpd_req_body(req);
	struct jose_expect want;
	const char *code = NULL, *jti, *decision;
	char err[CDCS_MSS_ERRLEN];
	json_t *claims, *rights;
	int r, rc = -1;

	/* No jti_fn: the jti is spent with the session, once cdcs-iss has answered. */
	memset(&want, 0, sizeof(want));
	want.iss = "cdcs-mss";
	want.aud = "cdcs-mss";
	want.sub = p->dm_id;
	if ((claims = jose_verify(s->ticket_key, b->download_ticket, &want, &code, err,
	                          sizeof(err))) == NULL) {
		log_rwarn(p->rid, "download ticket of %s refused: %s", p->dm_id, err);
		httpd_reply_error(req, jose_code_status(code), code, "download ticket: %s", err);
		return -1;
	}
	jti = json_string_value(json_object_get(claims, "jti"));
	decision = json_string_value(json_object_get(claims, "decision"));
	rights = json_object_get(claims, "rights");
	if (jti == NULL || !cdcs_mss_text_ok(jti, REPLAY_JTI_MAX) || decision == NULL ||
	    !json_is_array(rights)) {
		httpd_reply_error(req, 401, "bad_token", "download ticket: missing claims");
		goto out;
	}
	memcpy(p->jti, jti, strlen(jti) + 1);
	p->exp = (int64_t)json_integer_value(json_object_get(claims, "exp"));
	/* Refused early; spent for good only with the session (checked again then). */
	if ((r = cdcs_mss_store_jti_spent(d->db, p->jti)) != 0) {
		if (r == 1)
			httpd_reply_error(req, 409, "token_replayed",
			                  "this download ticket has already been used");
		else
			httpd_reply_error(req, 500, "internal_error", "database error");
		goto out;
	}
	if (cdcs_mss_ticket_image(d, req, json_object_get(claims, "image"), &p->img) == -1)
		goto out;
	*iss_body = json_pack("{s:s, s:s, s:s, s:s, s:I, s:O, s:s}", "dm_id", p->dm_id, "vendor",
	                      p->img.m.vendor, "name", p->img.m.name, "variant", p->img.m.variant,
	                      "version_number", (json_int_t)p->img.m.version_number, "rights",
	                      rights, "decision", decision);
	if (*iss_body == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		goto out;
	}
	rc = 0;
out:
	json_decref(claims);
	return rc;
}

/* What cdcs-iss answered, if usable: 0 and the three values (borrowed from resp), or -1. */
static int cdcs_mss_iss_answer(const struct httpc_resp *resp, const char **ticket, const char **url,
                               int64_t *exp)
{
	json_t *e;

	if (resp->status != 200 || resp->json == NULL)
		return -1;
	*ticket = json_string_value(json_object_get(resp->json, "personalization_ticket"));
	*url = json_string_value(json_object_get(resp->json, "cdcs_iss_url"));
	e = json_object_get(resp->json, "exp");
	if (*ticket == NULL || strlen(*ticket) == 0 || strlen(*ticket) > JOSE_MAX_TOKEN ||
	    *url == NULL || strncmp(*url, "https://", 8) != 0 || strlen(*url) > CDCS_MSS_URL_MAX ||
	    !json_is_integer(e))
		return -1;
	*exp = (int64_t)json_integer_value(e);
	return 0;
}

/* The session and the spent jti, in one transaction. 0, or -1 replied. */
static int cdcs_mss_session_open(struct cdcs_mss_pending *p, struct httpd_req *req,
                                 const char *perso, struct cdcs_mss_session *ss)
{
	struct daemon_ctx *d = p->s->d;
	struct cdcs_mss_image now_img;
	const char *gone = NULL;
	int r;

	memset(ss, 0, sizeof(*ss));
	if (jose_random_hex(ss->id, sizeof(ss->id), CDCS_MSS_SESSION_HEX_BYTES) == -1) {
		httpd_reply_error(req, 500, "internal_error", "no randomness");
		return -1;
	}
	memcpy(ss->dm_id, p->dm_id, strlen(p->dm_id) + 1);
	ss->image = p->img.id;
	ss->created = (int64_t)time(NULL);
	ss->expires = ss->created + cdcs_mss_session_ttl(d);
	if (db_begin(d->db) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return -1;
	}
	/* Withdrawn or revoked while cdcs-iss was asked: refused like any later request. */
	if ((r = cdcs_mss_store_image_by_id(d->db, p->img.id, &now_img)) != 1 ||
	    (gone = cdcs_mss_image_gone(&now_img)) != NULL) {
		db_rollback(d->db);
		if (r == 1)
			cdcs_mss_image_clear(&now_img);
		if (r == -1)
			httpd_reply_error(req, 500, "internal_error", "database error");
		else if (gone != NULL && strcmp(gone, "image_revoked") == 0)
			httpd_reply_error(req, 410, gone, "the image was just revoked");
		else
			httpd_reply_error(req, 410, "image_withdrawn",
			                  "the image was just withdrawn");
		return -1;
	}
	cdcs_mss_image_clear(&now_img);
	if ((r = replay_record(d->db, p->jti, p->exp)) != 0) {
		db_rollback(d->db);
		if (r == 1)
			httpd_reply_error(req, 409, "token_replayed",
			                  "this download ticket has already been used");
		else
			httpd_reply_error(req, 500, "internal_error", "database error");
		return -1;
	}
	if (cdcs_mss_store_session_insert(d->db, ss, perso) == -1 || db_commit(d->db) == -1) {
		db_rollback(d->db);
		httpd_reply_error(req, 500, "internal_error", "database error");
		return -1;
	}
	return 0;
}

static void cdcs_mss_reply(struct cdcs_mss_pending *p, struct httpd_req *req, const char *perso,
                           const char *iss_url)
{
	struct cdcs_mss_session ss;
	char url[CDCS_MSS_URLBUF], etag[70];
	json_t *body;

	if (cdcs_mss_session_open(p, req, perso, &ss) == -1)
		return;
	snprintf(url, sizeof(url), "%s/v1/cdcs/images/%s", p->s->public_url, ss.id);
	snprintf(etag, sizeof(etag), "\"%s\"", p->img.m.sha256);
	body = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:I}", "image_url", url, "etag", etag,
	                 "size", (json_int_t)p->img.m.size, "sha256", p->img.m.sha256,
	                 "personalization_ticket", perso, "cdcs_iss_url", iss_url, "expires",
	                 (json_int_t)ss.expires);
	if (body == NULL) {
		/* The session exists; the device retries with a new ticket. */
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	log_rinfo(p->rid, "download session %.8s... for %s: %s/%s %s v%lld until %lld", ss.id,
	          p->dm_id, p->img.m.vendor, p->img.m.name, p->img.m.variant,
	          (long long)p->img.m.version_number, (long long)ss.expires);
	httpd_reply_json(req, 200, body);
}

static void cdcs_mss_iss_done(struct httpc_resp *resp, void *arg)
{
	struct cdcs_mss_pending *p = arg;
	struct httpd_req *req = p->req;
	const char *perso = NULL, *iss_url = NULL;
	int64_t exp = 0;

	TAILQ_REMOVE(&p->s->pending, p, entry);
	if (req == NULL)
		goto out;
	httpd_req_set_abort_cb(req, NULL, NULL);
	if (cdcs_mss_iss_answer(resp, &perso, &iss_url, &exp) == -1) {
		/* Nothing is recorded: the device may retry with the same ticket. */
		log_rerr(p->rid, "cdcs-iss did not answer usably for %s: %s (HTTP %ld)", p->dm_id,
		         resp->error != NULL ? resp->error : "unexpected answer", resp->status);
		httpd_reply_error(req, 503, "cdcs_iss_unavailable",
		                  "the CDCS personalization server cannot be reached");
		goto out;
	}
	cdcs_mss_reply(p, req, perso, iss_url);
out:
	cdcs_mss_pending_free(p);
}

void cdcs_mss_download(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_mss *s = d->role_state;
	const struct tls_peer *peer = httpd_req_peer(req);
	struct cdcs_mss_pending *p;
	char url[CDCS_MSS_URLBUF];
	json_t *body = NULL;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	p->s = s;
	snprintf(p->rid, sizeof(p->rid), "%s", httpd_req_id(req));
	if (dmpeer_require(req, s->device_ca_fp, p->dm_id, sizeof(p->dm_id)) == -1 ||
	    cdcs_mss_check(d, req, p, &body) == -1)
		goto fail;
	log_step("fig5", 9, p->rid, p->dm_id,
	         "download ticket %.8s... verified (sub = DM id, single use) for %s/%s %s v%lld, "
	         "image registered and not withdrawn",
	         p->jti, p->img.m.vendor, p->img.m.name, p->img.m.variant,
	         (long long)p->img.m.version_number);
	log_step("fig5", 10, p->rid, p->dm_id,
	         "secure channel: mutual TLS 1.3 with DM certificate '%s' (issued by '%s')",
	         peer->subject_cn, peer->issuer_cn);

	snprintf(url, sizeof(url), "%s/v1/internal/personalization-ticket", s->cdcs_iss_url);
	/* Hooked up before the call, so that nothing httpc does can find p half set. */
	p->req = req;
	TAILQ_INSERT_TAIL(&s->pending, p, entry);
	httpd_req_set_abort_cb(req, cdcs_mss_pending_abort, p);
	if (httpc_request(s->iss, "POST", url, p->rid, body, cdcs_mss_iss_done, p) == -1) {
		TAILQ_REMOVE(&s->pending, p, entry);
		httpd_req_set_abort_cb(req, NULL, NULL);
		log_rerr(p->rid, "cannot start the request to cdcs-iss");
		httpd_reply_error(req, 503, "cdcs_iss_unavailable",
		                  "the CDCS personalization server cannot be reached");
		goto fail;
	}
	log_step("fig5", 11, p->rid, p->dm_id,
	         "personalization ticket requested from cdcs-iss for %s/%s %s v%lld",
	         p->img.m.vendor, p->img.m.name, p->img.m.variant,
	         (long long)p->img.m.version_number);
	json_decref(body);
	return;
fail:
	json_decref(body);
	cdcs_mss_pending_free(p);
}
