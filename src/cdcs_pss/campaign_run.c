/*
 * cdcs-pss campaign run: what moves a campaign and its devices (creation, stages, stop, the
 * devices' reports), each change with its audit row, in the caller's transaction, so that
 * a campaign is never seen half moved.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/audit.h"
#include "opendm/log.h"
#include "cdcs_pss.h"

static int cdcs_pss_member_audit(struct db *db, const char *rid, const char *actor,
                                 const char *campaign, const char *dm_id, enum campaign_dev s,
                                 const char *error)
{
	json_t *detail;
	int rc;

	if ((detail = json_pack("{s:s, s:s, s:s?}", "campaign", campaign, "status",
	                        campaign_dev_name(s), "error", error)) == NULL)
		return -1;
	rc = audit_add(db, rid, actor, "campaign.device", dm_id, detail);
	json_decref(detail);
	return rc;
}

/* Move one device of campaign to s, with its audit row. */
static int cdcs_pss_member_move(struct db *db, const char *rid, const char *actor,
                                const char *campaign, const char *dm_id, enum campaign_dev s,
                                const char *error)
{
	if (cdcs_pss_store_campaign_member_set(db, campaign, dm_id, s, error) == -1 ||
	    cdcs_pss_member_audit(db, rid, actor, campaign, dm_id, s, error) == -1)
		return -1;
	log_rinfo(rid, "campaign '%s': %s %s%s%s", campaign, dm_id, campaign_dev_name(s),
	          error != NULL ? ": " : "", error != NULL ? error : "");
	return 0;
}

/* Every device of campaign in status from with ord < below (below < 0: any) moves to `to`.
 * The count, or -1. */
static int cdcs_pss_members_move(struct db *db, const char *rid, const char *actor,
                                 const char *campaign, enum campaign_dev from, int64_t below,
                                 enum campaign_dev to)
{
	json_t *ids, *id;
	size_t i;
	int n = 0;

	if ((ids = cdcs_pss_store_campaign_members(db, campaign, from, below)) == NULL)
		return -1;
	json_array_foreach(ids, i, id)
	{
		if (cdcs_pss_member_move(db, rid, actor, campaign, json_string_value(id), to,
		                         NULL) == -1) {
			n = -1;
			break;
		}
		n++;
	}
	json_decref(ids);
	return n;
}

static int cdcs_pss_campaign_audit(struct db *db, const char *rid, const char *actor,
                                   const char *action, const char *name, json_t *detail)
{
	int rc;

	if (detail == NULL)
		return -1;
	rc = audit_add(db, rid, actor, action, name, detail);
	json_decref(detail);
	return rc;
}

/* The devices the spec selects, in admission order (strings borrowed from cands). */
static struct campaign_member *cdcs_pss_campaign_select(const struct campaign_spec *spec,
                                                        const json_t *cands, size_t *n)
{
	struct campaign_member *m;
	struct capability cap;
	char err[CDCS_PSS_ERRLEN] = "no DM id or account";
	const char *dm_id, *account;
	json_t *c;
	size_t i;

	*n = 0;
	if ((m = calloc(json_array_size(cands) + 1, sizeof(*m))) == NULL)
		return NULL;
	json_array_foreach(cands, i, c)
	{
		dm_id = json_string_value(json_object_get(c, "dm_id"));
		account = json_string_value(json_object_get(c, "account"));
		memset(&cap, 0, sizeof(cap));
		if (dm_id == NULL || account == NULL ||
		    schema_decode(json_object_get(c, "capability"), capability_fields, &cap,
		                  "capability", err, sizeof(err)) == -1) {
			/* Stored by authorize after checking: only a damaged row gets here. */
			log_warn("campaign '%s': device %s left out: %s", spec->name,
			         dm_id != NULL ? dm_id : "?", err);
			capability_free(&cap);
			continue;
		}
		if (campaign_filter_matches(&spec->filter, account, &cap) &&
		    campaign_order_key(spec->name, dm_id, m[*n].key) == 0) {
			m[*n].dm_id = dm_id;
			m[*n].account = account;
			(*n)++;
		}
		capability_free(&cap);
	}
	campaign_order(m, *n);
	return m;
}

/* The stages as stored: the checked percentages, nothing else. */
static char *cdcs_pss_stages_text(const struct campaign_stages *st)
{
	json_t *a = json_array();
	char *text = NULL;
	size_t i;

	for (i = 0; a != NULL && i < st->n; i++)
		if (json_array_append_new(a, json_integer(st->v[i])) == -1)
			goto out;
	if (a != NULL)
		text = json_dumps(a, JSON_COMPACT);
out:
	json_decref(a);
	return text;
}

int cdcs_pss_campaign_start(struct db *db, const char *rid, const char *actor,
                            const struct campaign_spec *spec, const struct campaign_stages *st,
                            int64_t *n)
{
	struct campaign_member *m = NULL;
	json_t *cands, *filter = NULL;
	char *stages = NULL, *ftext = NULL;
	int64_t target = 0;
	size_t count = 0, i;
	int rc = -1, r;

	*n = 0;
	if ((cands = cdcs_pss_store_campaign_candidates(db, spec->from.vendor, spec->from.name,
	                                                spec->to.vendor, spec->to.name)) == NULL ||
	    (m = cdcs_pss_campaign_select(spec, cands, &count)) == NULL)
		goto out;
	*n = (int64_t)count;
	if (count == 0 || count > CAMPAIGN_DEVICES_MAX) {
		rc = count == 0 ? 0 : 2;
		goto out;
	}
	if ((stages = cdcs_pss_stages_text(st)) == NULL ||
	    (filter = campaign_filter_to_json(&spec->filter)) == NULL ||
	    (!json_is_null(filter) &&
	     (ftext = json_dumps(filter, JSON_COMPACT | JSON_SORT_KEYS)) == NULL))
		goto out;
	if ((r = cdcs_pss_store_campaign_add(db, spec, stages, ftext, *n)) != 0) {
		rc = r == 1 ? 3 : -1;
		goto out;
	}
	target = campaign_admit_target(*n, st->v[0]);
	for (i = 0; i < count; i++) {
		enum campaign_dev s =
		    (int64_t)i < target ? CAMPAIGN_DEV_ADMITTED : CAMPAIGN_DEV_PENDING;

		if (cdcs_pss_store_campaign_member_add(db, spec->name, m[i].dm_id, m[i].account,
		                                       (int64_t)i, s) == -1 ||
		    cdcs_pss_member_audit(db, rid, actor, spec->name, m[i].dm_id, s, NULL) == -1)
			goto out;
	}
	if (cdcs_pss_campaign_audit(
	        db, rid, actor, "campaign.create", spec->name,
	        json_pack("{s:{s:s, s:s}, s:{s:s, s:s, s:s, s:I}, s:O, s:o, s:I, s:I, s:I}", "from",
	                  "vendor", spec->from.vendor, "name", spec->from.name, "to", "vendor",
	                  spec->to.vendor, "name", spec->to.name, "variant", spec->to.variant,
	                  "min_version",
	                  (json_int_t)(spec->to.min_version > 0 ? spec->to.min_version : 1),
	                  "filter", filter, "stages", json_loads(stages, 0, NULL),
	                  "failure_threshold", (json_int_t)spec->failure_threshold, "devices",
	                  (json_int_t)*n, "admitted", (json_int_t)target)) == -1)
		goto out;
	log_rinfo(rid,
	          "campaign '%s' created by %s: %s/%s -> %s/%s %s, %lld device(s), stages %s,"
	          " %lld admitted",
	          spec->name, actor, spec->from.vendor, spec->from.name, spec->to.vendor,
	          spec->to.name, spec->to.variant, (long long)*n, stages, (long long)target);
	rc = 1;
out:
	free(m);
	free(stages);
	free(ftext);
	json_decref(filter);
	json_decref(cands);
	return rc;
}

int cdcs_pss_campaign_admit(struct db *db, const char *rid, const char *actor,
                            struct cdcs_pss_campaign *c)
{
	int64_t target;
	int n;

	if (c->stage >= (int)c->stages.n)
		return -1;
	target = campaign_admit_target(c->n_devices, c->stages.v[c->stage]);
	if ((n = cdcs_pss_members_move(db, rid, actor, c->name, CAMPAIGN_DEV_PENDING, target,
	                               CAMPAIGN_DEV_ADMITTED)) == -1)
		return -1;
	c->stage++;
	if (cdcs_pss_store_campaign_set(db, c->name, c->status, c->stage, NULL) == -1 ||
	    cdcs_pss_campaign_audit(db, rid, actor, "campaign.advance", c->name,
	                            json_pack("{s:i, s:i, s:i}", "stage", c->stage, "percent",
	                                      c->stages.v[c->stage - 1], "admitted", n)) == -1)
		return -1;
	log_rinfo(rid, "campaign '%s': stage %d (%d%%) by %s, %d device(s) admitted", c->name,
	          c->stage, c->stages.v[c->stage - 1], actor, n);
	return 0;
}

int cdcs_pss_campaign_stop(struct db *db, const char *rid, const char *actor,
                           struct cdcs_pss_campaign *c, const char *reason)
{
	int n;

	if ((n = cdcs_pss_members_move(db, rid, actor, c->name, CAMPAIGN_DEV_ADMITTED, -1,
	                               CAMPAIGN_DEV_CANCELLED)) == -1)
		return -1;
	c->status = CAMPAIGN_STOPPED;
	if (cdcs_pss_store_campaign_set(db, c->name, c->status, c->stage, reason) == -1 ||
	    cdcs_pss_campaign_audit(db, rid, actor, "campaign.stop", c->name,
	                            json_pack("{s:s, s:i}", "reason", reason, "cancelled", n)) ==
	        -1)
		return -1;
	log_rinfo(rid, "campaign '%s' stopped: %s; %d device(s) cancelled", c->name, reason, n);
	return 0;
}

/* A device of c has failed: over the threshold, c stops itself. */
static int cdcs_pss_campaign_check(struct db *db, const char *rid, const char *name)
{
	struct cdcs_pss_campaign c;
	struct campaign_counts counts;
	char reason[128];
	int found;

	if ((found = cdcs_pss_store_campaign_get(db, name, &c)) != 1)
		return found == 0 ? 0 : -1;
	if (c.status == CAMPAIGN_STOPPED || c.status == CAMPAIGN_ARCHIVED)
		return 0;
	if (cdcs_pss_store_campaign_counts(db, name, &counts) == -1)
		return -1;
	if (!campaign_over_threshold(&counts, c.threshold))
		return 0;
	snprintf(reason, sizeof(reason), "failure rate %d%% over the threshold %lld%%",
	         campaign_failure_rate(&counts), (long long)c.threshold);
	log_rwarn(rid, "campaign '%s': %s: stopping it", name, reason);
	return cdcs_pss_campaign_stop(db, rid, CDCS_PSS_ACTOR, &c, reason);
}

int cdcs_pss_campaign_event(struct db *db, const char *rid, const char *actor, const char *dm_id,
                            const char *vendor, const char *name, enum campaign_event ev,
                            const char *error)
{
	struct campaign_view v;
	enum campaign_dev next;
	json_t *list, *o;
	size_t i;
	int rc = 0;

	if ((list = cdcs_pss_store_device_campaigns(db, dm_id, vendor, name)) == NULL)
		return -1;
	json_array_foreach(list, i, o)
	{
		/* An archived campaign is history: its devices no longer move. */
		if (campaign_view_parse(o, &v) == -1 || v.status == CAMPAIGN_ARCHIVED ||
		    !campaign_dev_next(v.dev, ev, &next))
			continue;
		if (next == CAMPAIGN_DEV_FAILED && error == NULL)
			error = "reported failed, without an error";
		if (cdcs_pss_member_move(db, rid, actor, v.name, dm_id, next,
		                         next == CAMPAIGN_DEV_FAILED ? error : NULL) == -1 ||
		    (next == CAMPAIGN_DEV_FAILED &&
		     cdcs_pss_campaign_check(db, rid, v.name) == -1)) {
			rc = -1;
			break;
		}
	}
	json_decref(list);
	return rc;
}
