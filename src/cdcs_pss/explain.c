/*
 * cdcs-pss explain: GET /v1/admin/policy/explain/<dm_id>: why a device gets what it gets.
 * Each rule with whether it matched and was chosen and why, the device's campaigns, the
 * choices (made by choose.c, as authorize makes them, from the device's last capability and
 * account and the current rules, levels and campaigns) and the last decision, to compare.
 */
#include <stdio.h>
#include <string.h>

#include "opendm/admin.h"
#include "opendm/log.h"
#include "cdcs_pss.h"

/* 1 if a choice was made by the campaign named name. */
static int cdcs_pss_campaign_chose(const json_t *choices, const char *name)
{
	const char *by;
	json_t *c;
	size_t i;

	json_array_foreach(choices, i, c)
	{
		by = json_string_value(json_object_get(c, "campaign"));
		if (by != NULL && name != NULL && strcmp(by, name) == 0)
			return 1;
	}
	return 0;
}

/* [{"name","status","device_status","from","to","applies"}]: applies when it changed a
 * choice. */
static json_t *cdcs_pss_explain_campaigns(const struct cdcs_pss_choice *ch)
{
	json_t *out = json_array(), *c;
	const char *name;
	size_t i;

	json_array_foreach(ch->campaigns, i, c)
	{
		name = json_string_value(json_object_get(c, "name"));
		if (out != NULL &&
		    json_array_append_new(
		        out, json_pack(
		                 "{s:O, s:O, s:O, s:O, s:O, s:b}", "name",
		                 json_object_get(c, "name"), "status", json_object_get(c, "status"),
		                 "device_status", json_object_get(c, "device_status"), "from",
		                 json_object_get(c, "from"), "to", json_object_get(c, "to"),
		                 "applies", cdcs_pss_campaign_chose(ch->choices, name))) == -1) {
			json_decref(out);
			out = NULL;
		}
	}
	return out;
}

/* {"id","created","install","remove","delivered"} from the stored decision, or null. What
 * was delivered (versions from cdcs-mss) when it is known; else nothing was installed
 * (cdcs-mss failed, or the decision predates that record). */
static json_t *cdcs_pss_explain_last(const json_t *last)
{
	const json_t *delivered = json_object_get(last, "delivered");
	const json_t *result = json_object_get(last, "result");
	json_t *install, *remove;

	if (json_is_null(last))
		return json_null();
	if (json_is_object(delivered)) {
		install = json_object_get(delivered, "install");
		remove = json_object_get(delivered, "remove");
	} else {
		install = NULL;
		remove = json_object_get(result, "remove");
	}
	return json_pack("{s:O, s:O, s:o, s:o, s:b}", "id", json_object_get(last, "id"), "created",
	                 json_object_get(last, "created"), "install",
	                 install != NULL ? json_incref(install) : json_array(), "remove",
	                 remove != NULL ? json_incref(remove) : json_array(), "delivered",
	                 json_is_object(delivered));
}

/* Everything explain needs, read in one transaction; 0, or -1 replied. */
static int cdcs_pss_explain_read(struct daemon_ctx *d, struct httpd_req *req, const char *dm_id,
                                 json_t **dev, struct capability *cap, struct cdcs_pss_choice *ch,
                                 json_t **last)
{
	char err[CDCS_PSS_ERRLEN];

	if (db_begin(d->db) == -1)
		goto fail;
	if ((*dev = cdcs_pss_store_device_row(d->db, dm_id)) == NULL)
		goto fail;
	if (json_is_null(*dev)) {
		db_rollback(d->db);
		httpd_reply_error(req, 404, "unknown_device", "cdcs-pss has never seen %s", dm_id);
		return -1;
	}
	if (schema_decode(json_object_get(*dev, "capability"), capability_fields, cap, "capability",
	                  err, sizeof(err)) == -1) {
		log_rerr(httpd_req_id(req), "%s: stored capability unusable: %s", dm_id, err);
		goto fail;
	}
	if (cdcs_pss_choose(d->db, dm_id, json_string_value(json_object_get(*dev, "account")), cap,
	                    ch) == -1 ||
	    (*last = cdcs_pss_store_last_decision(d->db, dm_id)) == NULL)
		goto fail;
	/* Nothing written: the transaction only holds the reads together. */
	db_rollback(d->db);
	return 0;
fail:
	db_rollback(d->db);
	httpd_reply_error(req, 500, "internal_error", "database error");
	return -1;
}

void cdcs_pss_explain(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	const char *dm_id;
	struct cdcs_pss_choice ch;
	struct policy_explanation ex;
	struct capability cap;
	json_t *dev = NULL, *last = NULL, *doc;

	memset(&ch, 0, sizeof(ch));
	memset(&ex, 0, sizeof(ex));
	memset(&cap, 0, sizeof(cap));
	if (!admin_authorize(d, req, ADMIN_ROLE_READ) || (dm_id = cdcs_pss_path_dm_id(req)) == NULL)
		return;
	if (cdcs_pss_explain_read(d, req, dm_id, &dev, &cap, &ch, &last) == -1)
		goto out;
	if (policy_explain(ch.rules, ch.n_rules, &cap, ch.lv, json_array_size(ch.levels), &ch.dec,
	                   &ex) == -1 ||
	    (doc = json_pack("{s:s, s:O, s:O, s:O, s:o, s:o, s:O, s:o}", "dm_id", dm_id, "account",
	                     json_object_get(dev, "account"), "capability",
	                     json_object_get(dev, "capability"), "levels", ch.levels, "rules",
	                     policy_explanation_to_json(&ex), "campaigns",
	                     cdcs_pss_explain_campaigns(&ch), "choices", ch.choices,
	                     "last_decision", cdcs_pss_explain_last(last))) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		goto out;
	}
	httpd_reply_json(req, 200, doc);
out:
	policy_explanation_free(&ex);
	cdcs_pss_choice_free(&ch);
	capability_free(&cap);
	json_decref(dev);
	json_decref(last);
}
