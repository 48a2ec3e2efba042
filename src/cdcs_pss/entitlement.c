/*
 * cdcs-pss entitlement: operators set and read the entitlement levels of a subscriber
 * account (the account as dm-mss names it), the input of every decision.
 */
#include <stdio.h>

#include "opendm/admin.h"
#include "opendm/log.h"
#include "cdcs_pss.h"

const struct schema_field cdcs_pss_levels_fields[] = {
    {"levels", SCHEMA_STRLIST, offsetof(struct cdcs_pss_levels_body, levels), 1, 1,
     POLICY_LEVEL_MAX, POLICY_LEVELS_MAX, NULL},
    SCHEMA_END,
};

/* The account named by the path tail, or NULL after replying. */
static const char *cdcs_pss_account(struct httpd_req *req)
{
	const char *account = httpd_req_tail(req);

	if (policy_account_ok(account))
		return account;
	httpd_reply_error(req, 400, "bad_request", "account: 1-64 characters of A-Z a-z 0-9 . _ -");
	return NULL;
}

static void cdcs_pss_levels_reply(struct daemon_ctx *d, struct httpd_req *req, const char *account)
{
	json_t *levels;

	if ((levels = cdcs_pss_store_levels(d->db, account)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	httpd_reply_json(req, 200, json_pack("{s:s, s:o}", "account", account, "levels", levels));
}

void cdcs_pss_entitlement_put(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_pss_levels_body *b = httpd_req_body(req);
	const char *account;
	size_t i;

	if (!admin_authorize(d, req) || (account = cdcs_pss_account(req)) == NULL)
		return;
	for (i = 0; i < b->levels.n; i++)
		if (!policy_level_ok(b->levels.v[i])) {
			httpd_reply_error(req, 400, "bad_request",
			                  "key 'levels[%zu]': 1-32 characters of a-z 0-9 _ -", i);
			return;
		}
	if (cdcs_pss_store_levels_set(d->db, account, &b->levels) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	log_rinfo(httpd_req_id(req), "entitlements of %s set (%zu level(s)) by '%s'", account,
	          b->levels.n, httpd_req_peer(req)->subject_cn);
	cdcs_pss_levels_reply(d, req, account);
}

void cdcs_pss_entitlement_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	const char *account;

	if (!admin_authorize(d, req) || (account = cdcs_pss_account(req)) == NULL)
		return;
	/* An account with no levels is not an error: it simply gets nothing. */
	cdcs_pss_levels_reply(d, req, account);
}
