/*
 * GET /v1/internal/dm/<dm_id>: what the CDCS daemons ask before they serve a device (Figure 5
 * steps 2, 9, 16): is this DM id still good, and for which subscriber account. Operators ask
 * the same of one DM id (GET /v1/admin/dms/<dm_id>) or of every DM id of a device
 * (GET /v1/admin/dms?hw_id=).
 *
 * The certificate we issued gives the hw id, its revocation and its expiry; dm-mss, asked
 * without blocking the loop as in personalize.c, gives the device's status and account. The
 * request waits meanwhile in a struct dm_iss_lookup, which outlives the client if it leaves;
 * fini drops the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opendm/admin.h"
#include "opendm/dmpeer.h"
#include "opendm/log.h"
#include "dm_iss.h"

#define DM_ISS_LOOKUP_URLBUF (DM_ISS_URL_MAX + 64 + DM_ISS_HWID_MAX)

/* Who asked, hence what the answer looks like. */
enum dm_iss_lookup_kind {
	DM_ISS_LOOKUP_INTERNAL, /* a CDCS daemon, about one DM id */
	DM_ISS_LOOKUP_ONE,      /* an operator, about one DM id */
	DM_ISS_LOOKUP_LIST,     /* an operator, about every DM id of a hw id */
};

struct dm_iss_lookup {
	TAILQ_ENTRY(dm_iss_lookup) entry;
	struct dm_iss *s;
	struct httpd_req *req; /* NULL once the client has gone */
	enum dm_iss_lookup_kind kind;
	char rid[HTTPD_RID_MAX + 1];
	char hw_id[DM_ISS_HWID_MAX + 1];
	json_t *dms; /* dm_iss_store_dms() rows, all of hw_id: status from the certificates */
};

/* The daemons that may ask, each by its service certificate's CN. */
static const char *const dm_iss_lookup_peers[] = {"cdcs-pss", "cdcs-mss", "cdcs-iss", NULL};

/* 1 if the peer is one of them (issued by the service CA, no OU, as
 * admin_authorize_service() checks one), else replies 403 and returns 0. */
static int dm_iss_lookup_peer_ok(struct dm_iss *s, struct httpd_req *req)
{
	const struct tls_peer *p = httpd_req_peer(req);
	const char *const *cn;

	if (p != NULL && s->d->admin_ca_fp[0] != '\0' &&
	    strcmp(p->issuer_fp, s->d->admin_ca_fp) == 0 && p->ou[0] == '\0')
		for (cn = dm_iss_lookup_peers; *cn != NULL; cn++)
			if (strcmp(p->subject_cn, *cn) == 0)
				return 1;
	log_rwarn(httpd_req_id(req), "refused DM lookup from '%s' (only the CDCS daemons may ask)",
	          p != NULL ? p->subject_cn : "?");
	httpd_reply_error(req, 403, "forbidden",
	                  "only cdcs-pss, cdcs-mss and cdcs-iss may call this "
	                  "endpoint");
	return 0;
}

static void dm_iss_lookup_abort(void *arg)
{
	struct dm_iss_lookup *l = arg;

	/* The reply would go nowhere; the dm-mss answer still comes and frees l. */
	l->req = NULL;
}

static void dm_iss_lookup_free(struct dm_iss_lookup *l)
{
	json_decref(l->dms);
	free(l);
}

void dm_iss_lookup_drop(struct dm_iss *s)
{
	struct dm_iss_lookup *l;

	while ((l = TAILQ_FIRST(&s->lookups)) != NULL) {
		TAILQ_REMOVE(&s->lookups, l, entry);
		/* httpd_free() ends the request after us; it must not call back into l. */
		if (l->req != NULL)
			httpd_req_set_abort_cb(l->req, NULL, NULL);
		dm_iss_lookup_free(l);
	}
}

/*
 * The answer from what dm-mss said: 0 with *account (borrowed from resp, NULL when dm-mss no
 * longer knows the device) and *mss_revoked set, or -1 when it said nothing usable.
 */
static int dm_iss_lookup_mss(const struct httpc_resp *resp, const char *hw_id, const char **account,
                             int *mss_revoked)
{
	const char *code, *v;

	*account = NULL;
	*mss_revoked = 0;
	if (resp->json == NULL)
		return -1;
	if (resp->status == 404) {
		/* A device dm-mss forgot cannot be served: as good as revoked. */
		code = json_string_value(
		    json_object_get(json_object_get(resp->json, "error"), "code"));
		*mss_revoked = 1;
		return code != NULL && strcmp(code, "unknown_device") == 0 ? 0 : -1;
	}
	if (resp->status != 200 ||
	    (v = json_string_value(json_object_get(resp->json, "hw_id"))) == NULL ||
	    strcmp(v, hw_id) != 0 ||
	    (*account = json_string_value(json_object_get(resp->json, "account"))) == NULL ||
	    (v = json_string_value(json_object_get(resp->json, "status"))) == NULL)
		return -1;
	if (strcmp(v, "revoked") == 0)
		*mss_revoked = 1;
	else if (strcmp(v, "active") != 0)
		return -1;
	return 0;
}

/* The rows completed with account (NULL: null) and dm-mss's revocation; 0/-1. */
static int dm_iss_lookup_complete(json_t *dms, const char *account, int mss_revoked)
{
	json_t *row;
	size_t i;

	json_array_foreach(dms, i, row)
	{
		if (json_object_set_new(row, "account",
		                        account != NULL ? json_string(account) : json_null()) ==
		        -1 ||
		    (mss_revoked &&
		     json_object_set_new(row, "status", json_string("revoked")) == -1))
			return -1;
	}
	return 0;
}

static void dm_iss_lookup_reply(struct dm_iss_lookup *l, struct httpd_req *req)
{
	json_t *row = json_array_get(l->dms, 0), *body;

	switch (l->kind) {
	case DM_ISS_LOOKUP_INTERNAL:
		/* What the CDCS daemons have always been given (account null when dm-mss forgot
		 * the device). */
		body = json_pack("{s:O, s:O, s:O, s:O}", "dm_id", json_object_get(row, "dm_id"),
		                 "hw_id", json_object_get(row, "hw_id"), "account",
		                 json_object_get(row, "account"), "status",
		                 json_object_get(row, "status"));
		break;
	case DM_ISS_LOOKUP_ONE:
		body = json_incref(row);
		break;
	default:
		body = json_pack("{s:O}", "dms", l->dms);
		break;
	}
	if (body == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	log_rdebug(l->rid, "%s: %zu DM id(s), the first %s", l->hw_id, json_array_size(l->dms),
	           json_string_value(json_object_get(row, "status")));
	httpd_reply_json(req, 200, body);
}

static void dm_iss_lookup_done(struct httpc_resp *resp, void *arg)
{
	struct dm_iss_lookup *l = arg;
	struct httpd_req *req = l->req;
	const char *account;
	int mss_revoked;

	TAILQ_REMOVE(&l->s->lookups, l, entry);
	if (req == NULL)
		goto out;
	httpd_req_set_abort_cb(req, NULL, NULL);
	if (dm_iss_lookup_mss(resp, l->hw_id, &account, &mss_revoked) == -1) {
		log_rerr(l->rid, "dm-mss did not answer usably for %s: %s (HTTP %ld)", l->hw_id,
		         resp->error != NULL ? resp->error : "unexpected answer", resp->status);
		httpd_reply_error(req, 503, "dm_mss_unavailable",
		                  "the subscriber management server cannot be reached");
		goto out;
	}
	if (dm_iss_lookup_complete(l->dms, account, mss_revoked) == -1) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		goto out;
	}
	dm_iss_lookup_reply(l, req);
out:
	dm_iss_lookup_free(l);
}

/*
 * Answer req about the DM ids of hw_id (dm_id NULL) or the one dm_id: read them, then ask
 * dm-mss about their device and reply from its answer. Replies now on any failure; a dm_id we
 * never issued is a 404 unknown_dm, a hw id with none an empty list.
 */
static void dm_iss_lookup_start(struct dm_iss *s, struct httpd_req *req,
                                enum dm_iss_lookup_kind kind, const char *hw_id, const char *dm_id)
{
	struct dm_iss_lookup *l;
	char url[DM_ISS_LOOKUP_URLBUF];
	const char *hw;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	l->s = s;
	l->kind = kind;
	snprintf(l->rid, sizeof(l->rid), "%s", httpd_req_id(req));
	if ((l->dms = dm_iss_store_dms(s->d->db, hw_id, dm_id, (int64_t)time(NULL))) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto fail;
	}
	if (json_array_size(l->dms) == 0) {
		if (kind == DM_ISS_LOOKUP_LIST)
			httpd_reply_json(req, 200, json_pack("{s:[]}", "dms"));
		else
			httpd_reply_error(req, 404, "unknown_dm", "no DM id %s", dm_id);
		goto fail;
	}
	hw = json_string_value(json_object_get(json_array_get(l->dms, 0), "hw_id"));
	if (hw == NULL || strlen(hw) >= sizeof(l->hw_id)) {
		log_rerr(l->rid, "issued_cert row of %s has no usable hw id",
		         dm_id != NULL ? dm_id : hw_id);
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto fail;
	}
	memcpy(l->hw_id, hw, strlen(hw) + 1);

	snprintf(url, sizeof(url), "%s/v1/internal/devices/%s", s->dm_mss_url, l->hw_id);
	/* Hooked up before the call, so that nothing httpc does can find l half set. */
	l->req = req;
	TAILQ_INSERT_TAIL(&s->lookups, l, entry);
	httpd_req_set_abort_cb(req, dm_iss_lookup_abort, l);
	if (httpc_request(s->mss, "GET", url, l->rid, NULL, dm_iss_lookup_done, l) == -1) {
		TAILQ_REMOVE(&s->lookups, l, entry);
		httpd_req_set_abort_cb(req, NULL, NULL);
		log_rerr(l->rid, "cannot start the request to dm-mss");
		httpd_reply_error(req, 503, "dm_mss_unavailable",
		                  "the subscriber management server cannot be reached");
		goto fail;
	}
	return;
fail:
	dm_iss_lookup_free(l);
}

/* The DM id of a path tail: 1, or 0 after replying 400. */
static int dm_iss_dm_id_check(struct httpd_req *req, const char *dm_id)
{
	if (dmpeer_id_ok(dm_id) && strlen(dm_id) < DM_ISS_DMID_MAX)
		return 1;
	httpd_reply_error(req, 400, "bad_request", "dm_id: \"dm-\" and 24 hex digits");
	return 0;
}

void dm_iss_lookup(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_iss *s = d->role_state;
	const char *dm_id = httpd_req_tail(req);

	if (dm_iss_lookup_peer_ok(s, req) && dm_iss_dm_id_check(req, dm_id))
		dm_iss_lookup_start(s, req, DM_ISS_LOOKUP_INTERNAL, NULL, dm_id);
}

void dm_iss_admin_dm(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	const char *dm_id = httpd_req_tail(req);

	if (admin_authorize(d, req, ADMIN_ROLE_READ) && dm_iss_dm_id_check(req, dm_id))
		dm_iss_lookup_start(d->role_state, req, DM_ISS_LOOKUP_ONE, NULL, dm_id);
}

void dm_iss_admin_dms(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	char hw_id[DM_ISS_HWID_MAX + 1];

	if (!admin_authorize(d, req, ADMIN_ROLE_READ))
		return;
	/* Required: each hw id is one question to dm-mss, so a list spans one device. */
	if (httpd_req_query(req, "hw_id", hw_id, sizeof(hw_id)) != 1 || !dm_iss_hwid_ok(hw_id)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "query parameter 'hw_id': required, 4-64 characters of A-Z a-z "
		                  "0-9 . _ : -");
		return;
	}
	dm_iss_lookup_start(d->role_state, req, DM_ISS_LOOKUP_LIST, hw_id, NULL);
}
