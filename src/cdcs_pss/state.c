/*
 * cdcs-pss state: what each device has, as its agent reports it after a run
 * (POST /v1/cdcs/report) and as cdcs-iss reports each personalization
 * (POST /v1/internal/cdcs-state, the receiving end of Figure 5 step 20). Each change of a
 * device's CDCS is audited (cdcs.state) and moves the device's campaigns, in the same
 * transaction as the change.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "opendm/admin.h"
#include "opendm/audit.h"
#include "opendm/log.h"
#include "opendm/schema.h"
#include "cdcs_pss.h"

#define CDCS_PSS_STATE_MAX   16
#define CDCS_PSS_CDCS_ID_MAX 128

static const struct schema_field cdcs_pss_result_fields[] = {
    {"vendor", SCHEMA_STRING, offsetof(struct cdcs_pss_result, vendor), 1, 1, POLICY_ID_MAX, 0,
     NULL},
    {"name", SCHEMA_STRING, offsetof(struct cdcs_pss_result, name), 1, 1, POLICY_ID_MAX, 0, NULL},
    {"version_number", SCHEMA_INT, offsetof(struct cdcs_pss_result, version_number), 1, 1,
     INT32_MAX, 0, NULL},
    {"state", SCHEMA_STRING, offsetof(struct cdcs_pss_result, state), 1, 1, CDCS_PSS_STATE_MAX, 0,
     NULL},
    {"error", SCHEMA_STRING, offsetof(struct cdcs_pss_result, error), 0, 0, CDCS_PSS_ERROR_TEXT_MAX,
     0, NULL},
    SCHEMA_END,
};

const struct schema_field cdcs_pss_report_fields[] = {
    {"decision", SCHEMA_STRING, offsetof(struct cdcs_pss_report_body, decision), 1, 1,
     CDCS_PSS_DECISION_MAX - 1, 0, NULL},
    {"results", SCHEMA_OBJLIST, offsetof(struct cdcs_pss_report_body, results), 1, 0,
     sizeof(struct cdcs_pss_result), CDCS_PSS_ITEMS_MAX, cdcs_pss_result_fields},
    SCHEMA_END,
};

const struct schema_field cdcs_pss_state_fields[] = {
    {"dm_id", SCHEMA_STRING, offsetof(struct cdcs_pss_state_body, dm_id), 1, 1, DMPEER_ID_MAX, 0,
     NULL},
    {"vendor", SCHEMA_STRING, offsetof(struct cdcs_pss_state_body, vendor), 1, 1, POLICY_ID_MAX, 0,
     NULL},
    {"name", SCHEMA_STRING, offsetof(struct cdcs_pss_state_body, name), 1, 1, POLICY_ID_MAX, 0,
     NULL},
    {"variant", SCHEMA_STRING, offsetof(struct cdcs_pss_state_body, variant), 1, 1,
     POLICY_VARIANT_MAX, 0, NULL},
    {"version_number", SCHEMA_INT, offsetof(struct cdcs_pss_state_body, version_number), 1, 1,
     INT32_MAX, 0, NULL},
    {"state", SCHEMA_STRING, offsetof(struct cdcs_pss_state_body, state), 1, 1, CDCS_PSS_STATE_MAX,
     0, NULL},
    {"cdcs_id", SCHEMA_STRING, offsetof(struct cdcs_pss_state_body, cdcs_id), 1, 1,
     CDCS_PSS_CDCS_ID_MAX, 0, NULL},
    {"decision", SCHEMA_STRING, offsetof(struct cdcs_pss_state_body, decision), 1, 1,
     CDCS_PSS_DECISION_MAX - 1, 0, NULL},
    {"personalized_at", SCHEMA_INT, offsetof(struct cdcs_pss_state_body, personalized_at), 1, 0,
     INT64_MAX, 0, NULL},
    SCHEMA_END,
};

/* "dec-" and 32 lower-case hex digits, as authorize makes them. */
static int cdcs_pss_decision_ok(const char *s)
{
	size_t i;

	if (strncmp(s, "dec-", 4) != 0 || strlen(s) != CDCS_PSS_DECISION_MAX - 1)
		return 0;
	for (i = 4; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Printable ASCII only: the error text of a device is logged and shown to operators. */
static int cdcs_pss_text_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e)
			return 0;
	return 1;
}

/* Each result checked; 0, or -1 replied. */
static int cdcs_pss_results_check(struct httpd_req *req, const struct cdcs_pss_report_body *b)
{
	const struct cdcs_pss_result *r = b->results.v;
	const char *bad;
	size_t i;

	for (i = 0; i < b->results.n; i++) {
		bad = !policy_id_ok(r[i].vendor) ? "vendor"
		      : !policy_id_ok(r[i].name) ? "name"
		                                 : NULL;
		if (bad != NULL) {
			httpd_reply_error(req, 400, "bad_request",
			                  "key 'results[%zu].%s': only a-z 0-9 . _ - are allowed",
			                  i, bad);
			return -1;
		}
		if (strcmp(r[i].state, "personalized") != 0 && strcmp(r[i].state, "failed") != 0 &&
		    strcmp(r[i].state, "removed") != 0) {
			httpd_reply_error(
			    req, 400, "bad_request",
			    "key 'results[%zu].state': must be personalized, failed or "
			    "removed",
			    i);
			return -1;
		}
		if (r[i].error != NULL && !cdcs_pss_text_ok(r[i].error)) {
			httpd_reply_error(req, 400, "bad_request",
			                  "key 'results[%zu].error': printable characters only", i);
			return -1;
		}
	}
	return 0;
}

/* 1 if a slot changed from before to after (cdcs_pss_store_slot()); a failure leaves the
 * stored state as it was, so a new error is the change then. */
static int cdcs_pss_slot_changed(const json_t *before, const json_t *after, int failed)
{
	if (json_is_null(before) ||
	    !json_equal(json_object_get(before, "state"), json_object_get(after, "state")) ||
	    !json_equal(json_object_get(before, "version_number"),
	                json_object_get(after, "version_number")))
		return 1;
	return failed &&
	       !json_equal(json_object_get(before, "error"), json_object_get(after, "error"));
}

/*
 * After a report is stored: cdcs.state with what was reported when it changed the slot,
 * and the device's campaigns told (each status moves once, so a report repeated moves
 * nothing, while a device that had `to` already still counts as switched).
 */
static int cdcs_pss_state_changed(struct daemon_ctx *d, struct httpd_req *req, const char *dm_id,
                                  const char *vendor, const char *name, int64_t version_number,
                                  const char *state, const char *error, const json_t *before)
{
	const int failed = strcmp(state, "failed") == 0;
	json_t *after, *detail = NULL;
	char actor[200];
	int rc = -1;

	if ((after = cdcs_pss_store_slot(d->db, dm_id, vendor, name)) == NULL)
		return -1;
	if (cdcs_pss_slot_changed(before, after, failed) &&
	    ((detail = json_pack("{s:s, s:s, s:I, s:s, s:s?}", "vendor", vendor, "name", name,
	                         "version_number", (json_int_t)version_number, "state", state,
	                         "error", error)) == NULL ||
	     audit_req(d, req, "cdcs.state", dm_id, detail) == -1))
		goto out;
	if (failed || strcmp(state, "personalized") == 0)
		rc = cdcs_pss_campaign_event(
		    d->db, httpd_req_id(req), admin_actor(d, req, actor, sizeof(actor)), dm_id,
		    vendor, name, failed ? CAMPAIGN_EV_FAILED : CAMPAIGN_EV_PERSONALIZED, error);
	else
		rc = 0;
out:
	json_decref(after);
	json_decref(detail);
	return rc;
}

/* One result of the agent's report: stored, audited, its campaigns moved. */
static int cdcs_pss_result_record(struct daemon_ctx *d, struct httpd_req *req, const char *dm_id,
                                  const char *decision, const struct cdcs_pss_result *r)
{
	json_t *before;
	int rc = -1;

	if ((before = cdcs_pss_store_slot(d->db, dm_id, r->vendor, r->name)) == NULL)
		return -1;
	if (cdcs_pss_store_result(d->db, dm_id, decision, r) == 0)
		rc = cdcs_pss_state_changed(d, req, dm_id, r->vendor, r->name, r->version_number,
		                            r->state, r->error, before);
	json_decref(before);
	return rc;
}

void cdcs_pss_report(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_pss *s = d->role_state;
	struct cdcs_pss_report_body *b = httpd_req_body(req);
	const struct cdcs_pss_result *r = b->results.v;
	char dm_id[DMPEER_ID_MAX + 1], owner[DMPEER_ID_MAX + 1];
	size_t i;
	int found;

	if (dmpeer_require(req, s->device_ca_fp, dm_id, sizeof(dm_id)) == -1)
		return;
	if (!cdcs_pss_decision_ok(b->decision)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "key 'decision': \"dec-\" and 32 lower-case hex digits");
		return;
	}
	if (cdcs_pss_results_check(req, b) == -1)
		return;
	if ((found = cdcs_pss_store_decision_dm(d->db, b->decision, owner, sizeof(owner))) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if (found == 0) {
		httpd_reply_error(req, 404, "unknown_decision", "no decision %s", b->decision);
		return;
	}
	if (strcmp(owner, dm_id) != 0) {
		log_rwarn(httpd_req_id(req), "%s reported on %s, made for %s", dm_id, b->decision,
		          owner);
		httpd_reply_error(req, 403, "wrong_subject", "decision %s was made for another DM",
		                  b->decision);
		return;
	}
	/* All results or none, with their audit rows and campaign moves. */
	if (db_begin(d->db) == -1)
		goto fail;
	for (i = 0; i < b->results.n; i++)
		if (cdcs_pss_result_record(d, req, dm_id, b->decision, &r[i]) == -1) {
			db_rollback(d->db);
			goto fail;
		}
	if (db_commit(d->db) == -1) {
		/* A failed COMMIT leaves the transaction open: end it, or every later BEGIN fails.
		 */
		db_rollback(d->db);
		goto fail;
	}
	for (i = 0; i < b->results.n; i++)
		log_rinfo(httpd_req_id(req), "%s reports %s/%s v%lld %s%s%s (%s)", dm_id,
		          r[i].vendor, r[i].name, (long long)r[i].version_number, r[i].state,
		          r[i].error != NULL ? ": " : "", r[i].error != NULL ? r[i].error : "",
		          b->decision);
	httpd_reply_json(req, 200, json_pack("{s:I}", "recorded", (json_int_t)b->results.n));
	return;
fail:
	httpd_reply_error(req, 500, "internal_error", "database error");
}

/* A CDCS id as cdcs-iss makes them ("<vendor>-<24 hex>"): 1-128 of [A-Za-z0-9._-]. */
static int cdcs_pss_cdcs_id_ok(const char *s)
{
	return schema_token_ok(s, 0, SIZE_MAX, "._-");
}

void cdcs_pss_state(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_pss_state_body *b = httpd_req_body(req);
	const char *bad = NULL;
	json_t *before = NULL;

	if (!admin_authorize_service(d, req, "cdcs-iss"))
		return;
	if (!dmpeer_id_ok(b->dm_id))
		bad = "dm_id";
	else if (!policy_id_ok(b->vendor))
		bad = "vendor";
	else if (!policy_id_ok(b->name))
		bad = "name";
	else if (!policy_variant_ok(b->variant))
		bad = "variant";
	else if (!cdcs_pss_cdcs_id_ok(b->cdcs_id))
		bad = "cdcs_id";
	else if (!cdcs_pss_decision_ok(b->decision))
		bad = "decision";
	if (bad != NULL) {
		httpd_reply_error(req, 400, "bad_request", "key '%s': not a valid value", bad);
		return;
	}
	if (strcmp(b->state, "personalized") != 0) {
		httpd_reply_error(req, 400, "bad_request", "key 'state': must be personalized");
		return;
	}
	if (db_begin(d->db) == -1)
		goto fail;
	if ((before = cdcs_pss_store_slot(d->db, b->dm_id, b->vendor, b->name)) == NULL ||
	    cdcs_pss_store_state(d->db, b) == -1 ||
	    cdcs_pss_state_changed(d, req, b->dm_id, b->vendor, b->name, b->version_number,
	                           b->state, NULL, before) == -1 ||
	    db_commit(d->db) == -1) {
		db_rollback(d->db);
		json_decref(before);
		goto fail;
	}
	json_decref(before);
	log_rinfo(httpd_req_id(req),
	          "cdcs-iss reports %s: %s/%s %s v%lld personalized cdcs_id=%s (%s)", b->dm_id,
	          b->vendor, b->name, b->variant, (long long)b->version_number, b->cdcs_id,
	          b->decision);
	httpd_reply_json(req, 200, json_pack("{s:b}", "recorded", 1));
	return;
fail:
	httpd_reply_error(req, 500, "internal_error", "database error");
}
