/*
 * cdcs-pss campaign store: the campaign and campaign_device tables (migration 2 in store.c)
 * and the campaign as operators read it. Portable SQL, as in store.c.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "opendm/log.h"
#include "cdcs_pss.h"

#define CDCS_PSS_CAMPAIGN_COLS                                                                     \
	"name, status, stage, stages, from_vendor, from_name, to_vendor, to_name, to_variant,"     \
	" to_min_version, filter, failure_threshold, stop_reason, created, updated, n_devices"

int cdcs_pss_store_campaign_get(struct db *db, const char *name, struct cdcs_pss_campaign *c)
{
	const char *status, *stages;
	char err[128];
	sqlite3_stmt *st;
	json_t *j;
	int rc, ret = -1;

	memset(c, 0, sizeof(*c));
	if ((st = db_prepare(db, "SELECT name, status, stage, stages, failure_threshold, n_devices"
	                         " FROM campaign WHERE name = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK)
		goto out;
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW)
		goto out;
	snprintf(c->name, sizeof(c->name), "%s", (const char *)sqlite3_column_text(st, 0));
	status = (const char *)sqlite3_column_text(st, 1);
	stages = (const char *)sqlite3_column_text(st, 3);
	c->stage = sqlite3_column_int(st, 2);
	c->threshold = sqlite3_column_int64(st, 4);
	c->n_devices = sqlite3_column_int64(st, 5);
	j = stages != NULL ? json_loads(stages, 0, NULL) : NULL;
	if (campaign_status_parse(status, &c->status) == 0 &&
	    campaign_stages_parse(j, &c->stages, err, sizeof(err)) == 0)
		ret = 1;
	else
		log_err("campaign '%s' is damaged (status %s, stages %s)", name,
		        status != NULL ? status : "NULL", stages != NULL ? stages : "NULL");
	json_decref(j);
	sqlite3_reset(st);
	return ret;
out:
	if (ret == -1)
		log_err("cannot read campaign '%s': %s", name, db_errmsg(db));
	sqlite3_reset(st);
	return ret;
}

int cdcs_pss_store_campaign_counts(struct db *db, const char *name, struct campaign_counts *out)
{
	enum campaign_dev s;
	sqlite3_stmt *st;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((st = db_prepare(db, "SELECT status, COUNT(*) FROM campaign_device"
	                         " WHERE campaign = ?1 GROUP BY status")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (campaign_dev_parse((const char *)sqlite3_column_text(st, 0), &s) == 0)
			out->n[s] = sqlite3_column_int64(st, 1);
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_reset(st);
	return 0;
fail:
	log_err("cannot count the devices of campaign '%s': %s", name, db_errmsg(db));
	sqlite3_reset(st);
	return -1;
}

static json_t *cdcs_pss_row_candidate(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o}", "dm_id", cdcs_pss_col_str(st, 0), "account",
	                 cdcs_pss_col_str(st, 1), "capability", cdcs_pss_col_json(st, 2));
}

json_t *cdcs_pss_store_campaign_candidates(struct db *db, const char *vendor, const char *name,
                                           const char *to_vendor, const char *to_name)
{
	const char *texts[] = {vendor, name, to_vendor, to_name};

	return cdcs_pss_rows_texts(
	    db,
	    "SELECT d.dm_id, d.account, d.capability FROM device d"
	    " JOIN device_cdcs c ON c.dm_id = d.dm_id"
	    " WHERE c.vendor = ?1 AND c.name = ?2"
	    " AND c.state = 'personalized'"
	    /* One campaign at a time: one that still applies (or may)
	     * to a device would hide this one's override from it. */
	    " AND NOT EXISTS (SELECT 1 FROM campaign_device m"
	    " JOIN campaign k ON k.name = m.campaign WHERE m.dm_id = d.dm_id"
	    " AND k.status != 'archived' AND (m.status = 'switched'"
	    " OR (m.status IN ('pending', 'admitted') AND k.status != 'stopped')))"
	    /* A device that has `to` already has nothing to switch to, and
	     * would never report the switch. */
	    " AND NOT EXISTS (SELECT 1 FROM device_cdcs t"
	    " WHERE t.dm_id = d.dm_id AND t.vendor = ?3 AND t.name = ?4"
	    " AND t.state = 'personalized')"
	    " ORDER BY d.dm_id",
	    texts, 4, cdcs_pss_row_candidate, "a campaign's devices");
}

int cdcs_pss_store_campaign_add(struct db *db, const struct campaign_spec *spec, const char *stages,
                                const char *filter, int64_t n_devices)
{
	const int64_t now = (int64_t)time(NULL);
	sqlite3_stmt *st;
	int rc;

	/* seq: creation order ("the oldest campaign wins"), finer than created's seconds. */
	st = db_prepare(db, "INSERT INTO campaign (name, seq, status, stage, stages, from_vendor,"
	                    " from_name, to_vendor, to_name, to_variant, to_min_version, filter,"
	                    " failure_threshold, n_devices, stop_reason, created, updated)"
	                    " SELECT ?1, COALESCE(MAX(seq), 0) + 1, 'running', 1, ?2, ?3, ?4, ?5,"
	                    " ?6, ?7, ?8, ?9, ?10, ?11, NULL, ?12, ?12 FROM campaign");
	if (st == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, stages, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, spec->from.vendor, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, spec->from.name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, spec->to.vendor, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 6, spec->to.name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 7, spec->to.variant, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 8, spec->to.min_version > 0 ? spec->to.min_version : 1) !=
	        SQLITE_OK ||
	    cdcs_pss_bind_text(st, 9, filter) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 10, spec->failure_threshold) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 11, n_devices) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 12, now) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	rc = cdcs_pss_step(db, st, "insert campaign");
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return 1;
	return rc == SQLITE_DONE ? 0 : -1;
}

int cdcs_pss_store_campaign_member_add(struct db *db, const char *campaign, const char *dm_id,
                                       const char *account, int64_t ord, enum campaign_dev s)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(
	         db, "INSERT INTO campaign_device (campaign, dm_id, account, ord,"
	             " status, error, updated) VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, campaign, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, dm_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, account, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, ord) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, campaign_dev_name(s), -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 6, (int64_t)time(NULL)) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return cdcs_pss_step(db, st, "insert campaign device") == SQLITE_DONE ? 0 : -1;
}

static json_t *cdcs_pss_row_first(sqlite3_stmt *st)
{
	return cdcs_pss_col_str(st, 0);
}

json_t *cdcs_pss_store_campaign_members(struct db *db, const char *campaign, enum campaign_dev s,
                                        int64_t below)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "SELECT dm_id FROM campaign_device WHERE campaign = ?1"
	                         " AND status = ?2 AND (?3 < 0 OR ord < ?3) ORDER BY ord")) == NULL)
		return NULL;
	if (sqlite3_bind_text(st, 1, campaign, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, campaign_dev_name(s), -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, below) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return NULL;
	}
	return cdcs_pss_rows_step(db, st, cdcs_pss_row_first, "a campaign's devices");
}

int cdcs_pss_store_campaign_member_set(struct db *db, const char *campaign, const char *dm_id,
                                       enum campaign_dev s, const char *error)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "UPDATE campaign_device SET status = ?1, error = ?2, updated = ?3"
	                         " WHERE campaign = ?4 AND dm_id = ?5")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, campaign_dev_name(s), -1, SQLITE_STATIC) != SQLITE_OK ||
	    cdcs_pss_bind_text(st, 2, error) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, (int64_t)time(NULL)) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, campaign, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, dm_id, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return cdcs_pss_step(db, st, "update campaign device") == SQLITE_DONE ? 0 : -1;
}

int cdcs_pss_store_campaign_set(struct db *db, const char *name, enum campaign_status s, int stage,
                                const char *stop_reason)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "UPDATE campaign SET status = ?1, stage = ?2,"
	                         " stop_reason = COALESCE(?3, stop_reason), updated = ?4"
	                         " WHERE name = ?5")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, campaign_status_name(s), -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, stage) != SQLITE_OK ||
	    cdcs_pss_bind_text(st, 3, stop_reason) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, (int64_t)time(NULL)) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, name, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return cdcs_pss_step(db, st, "update campaign") == SQLITE_DONE ? 0 : -1;
}

/* ---- the campaign as operators see it ---------------------------------------------- */

static json_t *cdcs_pss_row_campaign(sqlite3_stmt *st)
{
	return json_pack(
	    "{s:o, s:o, s:i, s:o, s:{s:o, s:o}, s:{s:o, s:o, s:o, s:I}, s:o, s:I,"
	    " s:o, s:I, s:I}",
	    "name", cdcs_pss_col_str(st, 0), "status", cdcs_pss_col_str(st, 1), "stage",
	    sqlite3_column_int(st, 2), "stages", cdcs_pss_col_json(st, 3), "from", "vendor",
	    cdcs_pss_col_str(st, 4), "name", cdcs_pss_col_str(st, 5), "to", "vendor",
	    cdcs_pss_col_str(st, 6), "name", cdcs_pss_col_str(st, 7), "variant",
	    cdcs_pss_col_str(st, 8), "min_version", (json_int_t)sqlite3_column_int64(st, 9),
	    "filter", cdcs_pss_col_json(st, 10), "failure_threshold",
	    (json_int_t)sqlite3_column_int64(st, 11), "stop_reason", cdcs_pss_col_str(st, 12),
	    "created", (json_int_t)sqlite3_column_int64(st, 13), "updated",
	    (json_int_t)sqlite3_column_int64(st, 14));
}

static json_t *cdcs_pss_row_member(sqlite3_stmt *st)
{
	/* "stage" is filled in by the caller, which knows the stages (ord in its place). */
	return json_pack("{s:o, s:o, s:I, s:o, s:o, s:I}", "dm_id", cdcs_pss_col_str(st, 0),
	                 "account", cdcs_pss_col_str(st, 1), "stage",
	                 (json_int_t)sqlite3_column_int64(st, 2), "status", cdcs_pss_col_str(st, 3),
	                 "error", cdcs_pss_col_str(st, 4), "updated",
	                 (json_int_t)sqlite3_column_int64(st, 5));
}

/* Each device's stage: the one that admits (or will admit) it, null if none will. */
static int cdcs_pss_campaign_stages_of(json_t *devices, const struct campaign_stages *st)
{
	int64_t n = (int64_t)json_array_size(devices);
	json_t *dev;
	size_t i;
	int k;

	json_array_foreach(devices, i, dev)
	{
		k = campaign_stage_of(json_integer_value(json_object_get(dev, "stage")), n, st);
		if (json_object_set_new(dev, "stage", k > 0 ? json_integer(k) : json_null()) == -1)
			return -1;
	}
	return 0;
}

/* Counts, failure rate, completeness and (if devices) the device list onto c. 0/-1. */
static int cdcs_pss_campaign_finish(struct db *db, json_t *c, int devices)
{
	const char *name = json_string_value(json_object_get(c, "name"));
	struct campaign_counts counts;
	struct campaign_stages st;
	json_t *o, *list;
	char err[128];
	int i;

	if (campaign_stages_parse(json_object_get(c, "stages"), &st, err, sizeof(err)) == -1) {
		log_err("campaign '%s': %s", name, err);
		return -1;
	}
	if (cdcs_pss_store_campaign_counts(db, name, &counts) == -1 || (o = json_object()) == NULL)
		return -1;
	if (json_object_set_new(c, "counts", o) == -1)
		return -1;
	for (i = 0; i < CAMPAIGN_DEV_N; i++)
		if (json_object_set_new(o, campaign_dev_name((enum campaign_dev)i),
		                        json_integer(counts.n[i])) == -1)
			return -1;
	if (json_object_set_new(c, "failure_rate", json_integer(campaign_failure_rate(&counts))) ==
	        -1 ||
	    json_object_set_new(
	        c, "complete",
	        json_boolean(campaign_complete((int)json_integer_value(json_object_get(c, "stage")),
	                                       &st, &counts))) == -1)
		return -1;
	if (!devices)
		return 0;
	if ((list = cdcs_pss_rows(db,
	                          "SELECT dm_id, account, ord, status, error, updated"
	                          " FROM campaign_device WHERE campaign = ?1 ORDER BY ord",
	                          name, 0, cdcs_pss_row_member, "a campaign's devices")) == NULL ||
	    json_object_set_new(c, "devices", list) == -1)
		return -1;
	return cdcs_pss_campaign_stages_of(list, &st);
}

json_t *cdcs_pss_store_campaign_json(struct db *db, const char *name, int devices)
{
	json_t *rows, *c;

	if ((rows = cdcs_pss_rows(db,
	                          "SELECT " CDCS_PSS_CAMPAIGN_COLS " FROM campaign"
	                          " WHERE name = ?1",
	                          name, 0, cdcs_pss_row_campaign, "a campaign")) == NULL)
		return NULL;
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		return json_null();
	}
	c = json_incref(json_array_get(rows, 0));
	json_decref(rows);
	if (cdcs_pss_campaign_finish(db, c, devices) == -1) {
		json_decref(c);
		return NULL;
	}
	return c;
}

json_t *cdcs_pss_store_campaigns_json(struct db *db)
{
	json_t *rows, *c;
	size_t i;

	if ((rows =
	         cdcs_pss_rows(db, "SELECT " CDCS_PSS_CAMPAIGN_COLS " FROM campaign ORDER BY seq",
	                       NULL, 0, cdcs_pss_row_campaign, "the campaigns")) == NULL)
		return NULL;
	json_array_foreach(rows, i, c)
	{
		if (cdcs_pss_campaign_finish(db, c, 0) == -1) {
			json_decref(rows);
			return NULL;
		}
	}
	return rows;
}

static json_t *cdcs_pss_row_device_campaign(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:I, s:{s:o, s:o}, s:{s:o, s:o, s:o, s:I}}", "name",
	                 cdcs_pss_col_str(st, 0), "status", cdcs_pss_col_str(st, 1),
	                 "device_status", cdcs_pss_col_str(st, 2), "error", cdcs_pss_col_str(st, 3),
	                 "updated", (json_int_t)sqlite3_column_int64(st, 4), "from", "vendor",
	                 cdcs_pss_col_str(st, 5), "name", cdcs_pss_col_str(st, 6), "to", "vendor",
	                 cdcs_pss_col_str(st, 7), "name", cdcs_pss_col_str(st, 8), "variant",
	                 cdcs_pss_col_str(st, 9), "min_version",
	                 (json_int_t)sqlite3_column_int64(st, 10));
}

json_t *cdcs_pss_store_device_campaigns(struct db *db, const char *dm_id, const char *to_vendor,
                                        const char *to_name)
{
	const char *texts[] = {dm_id, to_vendor, to_name};

	return cdcs_pss_rows_texts(
	    db,
	    "SELECT c.name, c.status, m.status, m.error, m.updated, c.from_vendor, c.from_name,"
	    " c.to_vendor, c.to_name, c.to_variant, c.to_min_version"
	    " FROM campaign_device m JOIN campaign c ON c.name = m.campaign"
	    " WHERE m.dm_id = ?1 AND (?2 IS NULL OR (c.to_vendor = ?2 AND c.to_name = ?3))"
	    " ORDER BY c.seq",
	    texts, 3, cdcs_pss_row_device_campaign, "a device's campaigns");
}
