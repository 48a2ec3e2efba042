/*
 * cdcs-pss entitlement: operators set and read the entitlement levels of a subscriber
 * account (the account as dm-mss names it), the input of every decision.
 */
#include <stdio.h>

#include "opendm/admin.h"
#include "opendm/audit.h"
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

/* The levels and their audit row (the levels as they now are), together. 0/-1. */
static int cdcs_pss_levels_store(struct daemon_ctx *d, struct httpd_req *req, const char *account)
{
	struct cdcs_pss_levels_body *b = httpd_req_body(req);
	json_t *levels = NULL, *detail = NULL;
	int rc = -1;

	if (db_begin(d->db) == -1)
		return -1;
	if (cdcs_pss_store_levels_set(d->db, account, &b->levels) == 0 &&
	    (levels = cdcs_pss_store_levels(d->db, account)) != NULL &&
	    (detail = json_pack("{s:O}", "levels", levels)) != NULL &&
	    audit_req(d, req, "entitlement.set", account, detail) == 0 && db_commit(d->db) == 0)
		rc = 0;
	else
		db_rollback(d->db);
	json_decref(levels);
	json_decref(detail);
	return rc;
}

void cdcs_pss_entitlement_put(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_pss_levels_body *b = httpd_req_body(req);
	const char *account;
	size_t i;

	if (!admin_authorize(d, req, ADMIN_ROLE_SUBSCRIBERS) ||
	    (account = cdcs_pss_account(req)) == NULL)
		return;
	for (i = 0; i < b->levels.n; i++)
		if (!policy_level_ok(b->levels.v[i])) {
			httpd_reply_error(req, 400, "bad_request",
			                  "key 'levels[%zu]': 1-32 characters of a-z 0-9 _ -", i);
			return;
		}
	if (cdcs_pss_levels_store(d, req, account) == -1) {
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

	if (!admin_authorize(d, req, ADMIN_ROLE_READ) || (account = cdcs_pss_account(req)) == NULL)
		return;
	/* An account with no levels is not an error: it simply gets nothing. */
	cdcs_pss_levels_reply(d, req, account);
}
