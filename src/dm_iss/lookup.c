/*
 * GET /v1/internal/dm/<dm_id>: what the CDCS daemons ask before they serve a device (Figure 5
 * steps 2, 9, 16): is this DM id still good, and for which subscriber account.
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

#include "opendm/dmpeer.h"
#include "opendm/log.h"
#include "dm_iss.h"

#define DM_ISS_LOOKUP_URLBUF (DM_ISS_URL_MAX + 64 + DM_ISS_HWID_MAX)

struct dm_iss_lookup {
	TAILQ_ENTRY(dm_iss_lookup) entry;
	struct dm_iss *s;
	struct httpd_req *req; /* NULL once the client has gone */
	char rid[HTTPD_RID_MAX + 1];
	char dm_id[DM_ISS_DMID_MAX];
	char hw_id[DM_ISS_HWID_MAX + 1];
	int revoked; /* the certificate itself */
	int64_t not_after;
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

void dm_iss_lookup_drop(struct dm_iss *s)
{
	struct dm_iss_lookup *l;

	while ((l = TAILQ_FIRST(&s->lookups)) != NULL) {
		TAILQ_REMOVE(&s->lookups, l, entry);
		/* httpd_free() ends the request after us; it must not call back into l. */
		if (l->req != NULL)
			httpd_req_set_abort_cb(l->req, NULL, NULL);
		free(l);
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

static void dm_iss_lookup_done(struct httpc_resp *resp, void *arg)
{
	struct dm_iss_lookup *l = arg;
	struct httpd_req *req = l->req;
	const char *account, *status;
	int mss_revoked;

	TAILQ_REMOVE(&l->s->lookups, l, entry);
	if (req == NULL)
		goto out;
	httpd_req_set_abort_cb(req, NULL, NULL);
	if (dm_iss_lookup_mss(resp, l->hw_id, &account, &mss_revoked) == -1) {
		log_rerr(l->rid, "dm-mss did not answer usably for %s (%s): %s (HTTP %ld)",
		         l->dm_id, l->hw_id,
		         resp->error != NULL ? resp->error : "unexpected answer", resp->status);
		httpd_reply_error(req, 503, "dm_mss_unavailable",
		                  "the subscriber management server cannot be reached");
		goto out;
	}
	if (l->revoked || mss_revoked)
		status = "revoked";
	else if (l->not_after < (int64_t)time(NULL))
		status = "expired";
	else
		status = "active";
	log_rdebug(l->rid, "DM id %s (%s): %s", l->dm_id, l->hw_id, status);
	httpd_reply_json(req, 200,
	                 json_pack("{s:s, s:s, s:s?, s:s}", "dm_id", l->dm_id, "hw_id", l->hw_id,
	                           "account", account, "status", status));
out:
	free(l);
}

void dm_iss_lookup(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_iss *s = d->role_state;
	const char *dm_id = httpd_req_tail(req);
	struct dm_iss_lookup *l;
	char url[DM_ISS_LOOKUP_URLBUF];
	int found;

	if (!dm_iss_lookup_peer_ok(s, req))
		return;
	if (!dmpeer_id_ok(dm_id) || strlen(dm_id) >= DM_ISS_DMID_MAX) {
		httpd_reply_error(req, 400, "bad_request", "dm_id: \"dm-\" and 24 hex digits");
		return;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	l->s = s;
	snprintf(l->rid, sizeof(l->rid), "%s", httpd_req_id(req));
	memcpy(l->dm_id, dm_id, strlen(dm_id) + 1);
	found = dm_iss_store_by_dm(d->db, dm_id, l->hw_id, sizeof(l->hw_id), &l->revoked,
	                           &l->not_after);
	if (found != 1) {
		if (found == 0)
			httpd_reply_error(req, 404, "unknown_dm", "no DM id %s", dm_id);
		else
			httpd_reply_error(req, 500, "internal_error", "database error");
		free(l);
		return;
	}

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
		free(l);
	}
}
