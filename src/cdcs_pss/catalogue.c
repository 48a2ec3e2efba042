/*
 * cdcs-pss catalogue: asks cdcs-mss (GET /v1/internal/catalogue/<vendor>/<name>) whether a
 * CDCS exists before a rule or a campaign names it, so that a typo is refused rather than
 * stored as a rule that never delivers anything. The operator's request waits meanwhile in
 * a struct cdcs_pss_lookup (as authorize.c's requests do), which outlives the client if it
 * leaves, since an httpc call cannot be cancelled on its own; fini drops the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/log.h"
#include "cdcs_pss.h"

struct cdcs_pss_lookup {
	TAILQ_ENTRY(cdcs_pss_lookup) entry;
	struct cdcs_pss *s;
	struct httpd_req *req; /* NULL once the client has gone */
	cdcs_pss_cat_fn fn;
	char rid[HTTPD_RID_MAX + 1];
	char vendor[POLICY_ID_MAX + 1];
	char name[POLICY_ID_MAX + 1];
};

static void cdcs_pss_lookup_abort(void *arg)
{
	struct cdcs_pss_lookup *l = arg;

	log_rinfo(l->rid, "client left before cdcs-mss answered about %s/%s", l->vendor, l->name);
	l->req = NULL;
}

/* The lookup leaves the queue: its client, if still there, else NULL. */
static struct httpd_req *cdcs_pss_lookup_take(struct cdcs_pss_lookup *l)
{
	struct httpd_req *req = l->req;

	TAILQ_REMOVE(&l->s->lookups, l, entry);
	if (req != NULL)
		httpd_req_set_abort_cb(req, NULL, NULL);
	l->req = NULL;
	return req;
}

void cdcs_pss_lookups_drop(struct cdcs_pss *s)
{
	struct cdcs_pss_lookup *l;

	while ((l = TAILQ_FIRST(&s->lookups)) != NULL) {
		TAILQ_REMOVE(&s->lookups, l, entry);
		if (l->req != NULL) {
			log_rwarn(l->rid,
			          "stopping: dropping a request still waiting for cdcs-mss");
			httpd_req_set_abort_cb(l->req, NULL, NULL);
		}
		free(l);
	}
}

/* 200 about this very CDCS: known; 404 unknown_cdcs: unknown; anything else (a cdcs-mss
 * without the endpoint answers 404 not_found) is no answer. */
static enum cdcs_pss_cat cdcs_pss_cat_verdict(const struct httpc_resp *resp,
                                              const struct cdcs_pss_lookup *l)
{
	const char *v, *n, *code;

	if (resp->json == NULL)
		return CDCS_PSS_CAT_UNAVAILABLE;
	if (resp->status == 404) {
		code = json_string_value(
		    json_object_get(json_object_get(resp->json, "error"), "code"));
		return code != NULL && strcmp(code, "unknown_cdcs") == 0 ? CDCS_PSS_CAT_UNKNOWN
		                                                         : CDCS_PSS_CAT_UNAVAILABLE;
	}
	v = json_string_value(json_object_get(resp->json, "vendor"));
	n = json_string_value(json_object_get(resp->json, "name"));
	if (resp->status == 200 && v != NULL && n != NULL && strcmp(v, l->vendor) == 0 &&
	    strcmp(n, l->name) == 0)
		return CDCS_PSS_CAT_KNOWN;
	return CDCS_PSS_CAT_UNAVAILABLE;
}

static void cdcs_pss_lookup_done(struct httpc_resp *resp, void *arg)
{
	struct cdcs_pss_lookup *l = arg;
	struct httpd_req *req = cdcs_pss_lookup_take(l);
	enum cdcs_pss_cat v = cdcs_pss_cat_verdict(resp, l);

	if (v == CDCS_PSS_CAT_UNAVAILABLE)
		log_rerr(l->rid, "cdcs-mss did not say whether %s/%s exists: %s (HTTP %ld)",
		         l->vendor, l->name,
		         resp->error != NULL ? resp->error : "unexpected answer", resp->status);
	if (req != NULL)
		l->fn(l->s->d, req, v);
	free(l);
}

int cdcs_pss_catalogue_check(struct daemon_ctx *d, struct httpd_req *req, const char *vendor,
                             const char *name, cdcs_pss_cat_fn fn)
{
	struct cdcs_pss *s = d->role_state;
	struct cdcs_pss_lookup *l;
	char url[CDCS_PSS_URL_MAX + 64 + 2 * POLICY_ID_MAX];

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return -1;
	}
	l->s = s;
	l->fn = fn;
	l->req = req;
	snprintf(l->rid, sizeof(l->rid), "%s", httpd_req_id(req));
	/* Checked by the caller (policy_id_ok): safe in a path as they are. */
	snprintf(l->vendor, sizeof(l->vendor), "%s", vendor);
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(url, sizeof(url), "%s/v1/internal/catalogue/%s/%s", s->cdcs_mss_url, vendor, name);
	TAILQ_INSERT_TAIL(&s->lookups, l, entry);
	httpd_req_set_abort_cb(req, cdcs_pss_lookup_abort, l);
	if (httpc_request(s->http, "GET", url, l->rid, NULL, cdcs_pss_lookup_done, l) == -1) {
		cdcs_pss_lookup_take(l);
		free(l);
		log_rerr(httpd_req_id(req), "cannot start the request to cdcs-mss");
		httpd_reply_error(req, 503, "cdcs_mss_unavailable",
		                  "the CDCS management server cannot be reached");
		return -1;
	}
	return 0;
}

int cdcs_pss_catalogue_known(struct httpd_req *req, enum cdcs_pss_cat v, const char *vendor,
                             const char *name)
{
	if (v == CDCS_PSS_CAT_KNOWN)
		return 1;
	if (v == CDCS_PSS_CAT_UNKNOWN)
		httpd_reply_error(req, 422, "unknown_cdcs", "no CDCS %s/%s in the catalogue",
		                  vendor, name);
	else
		httpd_reply_error(req, 503, "cdcs_mss_unavailable",
		                  "the CDCS management server cannot say whether %s/%s exists",
		                  vendor, name);
	return 0;
}
