/*
 * cdcs-pss rules: operators add, list and delete the policy rules (policy.h says what a
 * rule means). A rule is stored in its canonical JSON form and never edited in place:
 * changing one is delete + add, so that every decision recorded names a rule as it was.
 * A rule names a CDCS that cdcs-mss's catalogue knows, or it is refused.
 */
#include <stdio.h>
#include <stdlib.h>

#include "opendm/admin.h"
#include "opendm/audit.h"
#include "opendm/log.h"
#include "cdcs_pss.h"

/* The rule stored with its audit row: 0, 1 exists, 2 too many, -1 error. */
static int cdcs_pss_rule_store(struct daemon_ctx *d, struct httpd_req *req,
                               const struct policy_rule *r, const json_t *canon, const char *text)
{
	int rc;

	if (db_begin(d->db) == -1)
		return -1;
	if ((rc = cdcs_pss_store_rule_add(d->db, r->name, r->priority, text)) != 0 ||
	    (rc = audit_req(d, req, "rule.add", r->name, canon)) != 0 ||
	    (rc = db_commit(d->db)) != 0) {
		db_rollback(d->db);
		return rc;
	}
	return 0;
}

/* cdcs-mss has answered about the rule's CDCS. */
static void cdcs_pss_rule_known(struct daemon_ctx *d, struct httpd_req *req, enum cdcs_pss_cat v)
{
	struct policy_rule *r = httpd_req_body(req);
	char *text = NULL;
	json_t *canon = NULL;
	int rc;

	if (!cdcs_pss_catalogue_known(req, v, r->vendor, r->cdcs))
		return;
	if ((canon = policy_rule_to_json(r)) == NULL ||
	    (text = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		goto out;
	}
	if ((rc = cdcs_pss_rule_store(d, req, r, canon, text)) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto out;
	}
	if (rc == 1) {
		httpd_reply_error(req, 409, "rule_exists", "a rule named '%s' exists", r->name);
		goto out;
	}
	if (rc == 2) {
		httpd_reply_error(req, 409, "too_many_rules", "at most %d rules",
		                  CDCS_PSS_RULES_MAX);
		goto out;
	}
	log_rinfo(httpd_req_id(req), "policy rule '%s' added by '%s': %s", r->name,
	          httpd_req_peer(req)->subject_cn, text);
	httpd_reply_json(req, 201, canon);
	canon = NULL;
out:
	free(text);
	json_decref(canon);
}

void cdcs_pss_rule_add(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct policy_rule *r = httpd_req_body(req);
	char err[CDCS_PSS_ERRLEN];

	if (!admin_authorize(d, req, ADMIN_ROLE_POLICY))
		return;
	if (policy_rule_check(r, err, sizeof(err)) == -1) {
		httpd_reply_error(req, 400, "bad_request", "%s", err);
		return;
	}
	cdcs_pss_catalogue_check(d, req, r->vendor, r->cdcs, cdcs_pss_rule_known);
}

void cdcs_pss_rule_list(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	json_t *rules;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ))
		return;
	if ((rules = cdcs_pss_store_rules_json(d->db)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	httpd_reply_json(req, 200, json_pack("{s:o}", "rules", rules));
}

/* The rule deleted with its audit row (the rule as it was): 1, 0 no such rule, -1 error. */
static int cdcs_pss_rule_remove(struct daemon_ctx *d, struct httpd_req *req, const char *name)
{
	json_t *rule = NULL, *detail = NULL;
	int rc = -1;

	if (db_begin(d->db) == -1)
		return -1;
	if ((rule = cdcs_pss_store_rule_json(d->db, name)) == NULL ||
	    (rc = cdcs_pss_store_rule_delete(d->db, name)) != 1)
		goto out;
	rc = -1;
	if ((detail = json_pack("{s:O}", "rule", rule)) != NULL &&
	    audit_req(d, req, "rule.rm", name, detail) == 0 && db_commit(d->db) == 0)
		rc = 1;
out:
	if (rc != 1)
		db_rollback(d->db);
	json_decref(rule);
	json_decref(detail);
	return rc;
}

void cdcs_pss_rule_delete(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	const char *name = httpd_req_tail(req);
	int rc;

	if (!admin_authorize(d, req, ADMIN_ROLE_POLICY))
		return;
	if (!policy_name_ok(name)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "name: 1-64 characters of A-Z a-z 0-9 . _ -");
		return;
	}
	if ((rc = cdcs_pss_rule_remove(d, req, name)) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if (rc == 0) {
		httpd_reply_error(req, 404, "unknown_rule", "no rule named '%s'", name);
		return;
	}
	log_rinfo(httpd_req_id(req), "policy rule '%s' deleted by '%s'", name,
	          httpd_req_peer(req)->subject_cn);
	httpd_reply_json(req, 200, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
}
