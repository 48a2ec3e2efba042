/*
 * cdcs-pss store: the role's schema, one migration per version, and its queries. SQL stays
 * portable (DESIGN.md §7: ON CONFLICT, ||, CASE are PostgreSQL too) so that a PostgreSQL
 * backend can reuse it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "opendm/log.h"
#include "cdcs_pss.h"

#define CDCS_PSS_DEVICE_DECISIONS 10

const struct db_migration cdcs_pss_migrations[] = {
    /*
     * Entitlement levels per subscriber account and the operator's rules: the inputs of
     * every decision. Each decision is kept with its inputs and reasons (an operator must
     * be able to say why a device got what it got), and device_cdcs is what each device
     * has, as its agent and cdcs-iss report it (one row per slot).
     */
    {1, "CREATE TABLE entitlement ("
        " account TEXT NOT NULL,"
        " level TEXT NOT NULL,"
        " granted_at INTEGER NOT NULL,"
        " PRIMARY KEY (account, level));"
        "CREATE TABLE policy_rule ("
        " name TEXT PRIMARY KEY,"
        " priority INTEGER NOT NULL,"
        " rule TEXT NOT NULL,"
        " created INTEGER NOT NULL);"
        "CREATE TABLE decision ("
        " id TEXT PRIMARY KEY,"
        " dm_id TEXT NOT NULL,"
        " account TEXT NOT NULL,"
        " capability TEXT NOT NULL,"
        " result TEXT NOT NULL,"
        " reason TEXT NOT NULL,"
        " created INTEGER NOT NULL,"
        " seq INTEGER NOT NULL);"
        "CREATE INDEX decision_dm ON decision (dm_id, seq);"
        "CREATE INDEX decision_seq ON decision (seq);"
        "CREATE INDEX decision_created ON decision (created);"
        "CREATE TABLE device_cdcs ("
        " dm_id TEXT NOT NULL,"
        " vendor TEXT NOT NULL,"
        " name TEXT NOT NULL,"
        " variant TEXT,"
        " version_number INTEGER NOT NULL,"
        " state TEXT NOT NULL,"
        " cdcs_id TEXT,"
        " decision TEXT,"
        " source TEXT NOT NULL,"
        " updated INTEGER NOT NULL,"
        " error TEXT,"
        " PRIMARY KEY (dm_id, vendor, name));"},
    /*
     * Issue 6. device: every DM id seen at authorize, with its account and last capability
     * (what explain, the device list and a campaign's filter read), filled from the last
     * decision of each. decision.delivered: what the device was actually sent (versions
     * from cdcs-mss, removals kept back). campaign and campaign_device: the campaigns and
     * their fixed device sets, ord being the admission order.
     */
    {2, "CREATE TABLE device ("
        " dm_id TEXT PRIMARY KEY,"
        " account TEXT NOT NULL,"
        " capability TEXT NOT NULL,"
        " last_seen INTEGER NOT NULL);"
        "INSERT INTO device (dm_id, account, capability, last_seen)"
        " SELECT dm_id, account, capability, created FROM decision d"
        " WHERE seq = (SELECT MAX(seq) FROM decision e WHERE e.dm_id = d.dm_id);"
        "CREATE INDEX device_account ON device (account, dm_id);"
        "ALTER TABLE decision ADD COLUMN delivered TEXT;"
        "CREATE TABLE campaign ("
        " name TEXT PRIMARY KEY,"
        " seq INTEGER NOT NULL,"
        " status TEXT NOT NULL,"
        " stage INTEGER NOT NULL,"
        " stages TEXT NOT NULL,"
        " from_vendor TEXT NOT NULL,"
        " from_name TEXT NOT NULL,"
        " to_vendor TEXT NOT NULL,"
        " to_name TEXT NOT NULL,"
        " to_variant TEXT NOT NULL,"
        " to_min_version INTEGER NOT NULL,"
        " filter TEXT,"
        " failure_threshold INTEGER NOT NULL,"
        " n_devices INTEGER NOT NULL,"
        " stop_reason TEXT,"
        " created INTEGER NOT NULL,"
        " updated INTEGER NOT NULL);"
        "CREATE TABLE campaign_device ("
        " campaign TEXT NOT NULL REFERENCES campaign (name),"
        " dm_id TEXT NOT NULL,"
        " account TEXT NOT NULL,"
        " ord INTEGER NOT NULL,"
        " status TEXT NOT NULL,"
        " error TEXT,"
        " updated INTEGER NOT NULL,"
        " PRIMARY KEY (campaign, dm_id));"
        "CREATE INDEX campaign_device_dm ON campaign_device (dm_id);"
        "CREATE UNIQUE INDEX campaign_device_ord ON campaign_device (campaign, ord);"},
    {0, NULL},
};

int cdcs_pss_bind_text(sqlite3_stmt *st, int i, const char *v)
{
	return v != NULL ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT)
	                 : sqlite3_bind_null(st, i);
}

int cdcs_pss_step(struct db *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE && (rc & 0xff) != SQLITE_CONSTRAINT)
		log_err("%s: %s", what, db_errmsg(db));
	sqlite3_reset(st);
	return rc;
}

json_t *cdcs_pss_col_json(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	json_t *j;

	if (t == NULL)
		return json_null();
	/* Written by us as JSON; should a row be damaged, show it rather than hide it. */
	return (j = json_loads(t, 0, NULL)) != NULL ? j : json_string(t);
}

json_t *cdcs_pss_col_str(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);

	return t != NULL ? json_string(t) : json_null();
}

json_t *cdcs_pss_rows_step(struct db *db, sqlite3_stmt *st, cdcs_pss_row_fn row, const char *what)
{
	json_t *out;
	int rc;

	if ((out = json_array()) == NULL)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (json_array_append_new(out, row(st)) == -1)
			goto fail;
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_reset(st);
	return out;
fail:
	log_err("cannot read %s: %s", what, db_errmsg(db));
	sqlite3_reset(st);
	json_decref(out);
	return NULL;
}

json_t *cdcs_pss_rows(struct db *db, const char *sql, const char *key, int limit,
                      cdcs_pss_row_fn row, const char *what)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, sql)) == NULL)
		return NULL;
	if ((key != NULL && sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT) != SQLITE_OK) ||
	    (limit > 0 && sqlite3_bind_int(st, 2, limit) != SQLITE_OK)) {
		log_err("cannot read %s: %s", what, db_errmsg(db));
		sqlite3_reset(st);
		return NULL;
	}
	return cdcs_pss_rows_step(db, st, row, what);
}

json_t *cdcs_pss_rows_texts(struct db *db, const char *sql, const char *const *texts, int n,
                            cdcs_pss_row_fn row, const char *what)
{
	sqlite3_stmt *st;
	int i;

	if ((st = db_prepare(db, sql)) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (cdcs_pss_bind_text(st, i + 1, texts[i]) != SQLITE_OK) {
			log_err("cannot read %s: %s", what, db_errmsg(db));
			sqlite3_reset(st);
			return NULL;
		}
	return cdcs_pss_rows_step(db, st, row, what);
}

static json_t *cdcs_pss_row_text(sqlite3_stmt *st)
{
	return cdcs_pss_col_str(st, 0);
}

static json_t *cdcs_pss_row_json(sqlite3_stmt *st)
{
	return cdcs_pss_col_json(st, 0);
}

json_t *cdcs_pss_store_levels(struct db *db, const char *account)
{
	return cdcs_pss_rows(db, "SELECT level FROM entitlement WHERE account = ?1 ORDER BY level",
	                     account, 0, cdcs_pss_row_text, "entitlement levels");
}

int cdcs_pss_store_levels_set(struct db *db, const char *account, const struct schema_strlist *l)
{
	const int64_t now = (int64_t)time(NULL);
	sqlite3_stmt *del, *ins;
	size_t i;

	if ((del = db_prepare(db, "DELETE FROM entitlement WHERE account = ?1")) == NULL ||
	    sqlite3_bind_text(del, 1, account, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    cdcs_pss_step(db, del, "delete levels") != SQLITE_DONE)
		return -1;
	for (i = 0; i < l->n; i++) {
		/* A level given twice is one level. */
		if ((ins = db_prepare(db, "INSERT INTO entitlement (account, level, granted_at)"
		                          " VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")) == NULL ||
		    sqlite3_bind_text(ins, 1, account, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_text(ins, 2, l->v[i], -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_int64(ins, 3, now) != SQLITE_OK ||
		    cdcs_pss_step(db, ins, "insert level") != SQLITE_DONE)
			return -1;
	}
	return 0;
}

void cdcs_pss_rules_free(struct policy_rule *rules, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		policy_rule_free(&rules[i]);
	free(rules);
}

int cdcs_pss_store_rules(struct db *db, struct policy_rule **out, size_t *n)
{
	struct policy_rule *rules = NULL, *grown;
	sqlite3_stmt *st;
	char err[CDCS_PSS_ERRLEN];
	size_t cap = 0;
	json_t *j;
	int rc;

	*out = NULL;
	*n = 0;
	if ((st = db_prepare(db, "SELECT name, rule FROM policy_rule")) == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap > 0 ? 2 * cap : 16;
			if ((grown = realloc(rules, cap * sizeof(*rules))) == NULL)
				goto fail;
			rules = grown;
		}
		memset(&rules[*n], 0, sizeof(*rules));
		j = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
		if (policy_rule_parse(j, &rules[*n], err, sizeof(err)) == -1) {
			/* Checked when added: only a damaged row gets here. Dropping it narrows
			 * what is granted, never widens it. */
			log_err("policy rule '%s' is unusable, ignored: %s",
			        (const char *)sqlite3_column_text(st, 0), err);
			policy_rule_free(&rules[*n]);
		} else
			(*n)++;
		json_decref(j);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_reset(st);
	*out = rules;
	return 0;
fail:
	log_err("cannot read the policy rules: %s", db_errmsg(db));
	sqlite3_reset(st);
	cdcs_pss_rules_free(rules, *n);
	*n = 0;
	return -1;
}

json_t *cdcs_pss_store_rules_json(struct db *db)
{
	return cdcs_pss_rows(db, "SELECT rule FROM policy_rule ORDER BY priority, name", NULL, 0,
	                     cdcs_pss_row_json, "policy rules");
}

int cdcs_pss_store_rule_add(struct db *db, const char *name, int64_t priority, const char *json)
{
	sqlite3_stmt *st;
	int64_t count;
	int rc;

	if ((st = db_prepare(db, "SELECT COUNT(*) FROM policy_rule")) == NULL)
		return -1;
	rc = sqlite3_step(st);
	count = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW) {
		log_err("cannot count the policy rules: %s", db_errmsg(db));
		return -1;
	}
	if (count >= CDCS_PSS_RULES_MAX)
		return 2;
	if ((st = db_prepare(db, "INSERT INTO policy_rule (name, priority, rule, created)"
	                         " VALUES (?1, ?2, ?3, ?4)")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, priority) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, json, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, (int64_t)time(NULL)) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	rc = cdcs_pss_step(db, st, "insert policy rule");
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return 1;
	return rc == SQLITE_DONE ? 0 : -1;
}

int cdcs_pss_store_rule_delete(struct db *db, const char *name)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "DELETE FROM policy_rule WHERE name = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    cdcs_pss_step(db, st, "delete policy rule") != SQLITE_DONE) {
		sqlite3_reset(st);
		return -1;
	}
	return sqlite3_changes(db_handle(db)) > 0 ? 1 : 0;
}

int cdcs_pss_store_decision_add(struct db *db, const char *id, const char *dm_id,
                                const char *account, const char *capability, const char *result,
                                const char *reason)
{
	sqlite3_stmt *st;

	/* seq orders the decisions of one second (created is in seconds), portably. */
	if ((st = db_prepare(db, "INSERT INTO decision (id, dm_id, account, capability, result,"
	                         " reason, created, seq) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7,"
	                         " COALESCE(MAX(seq), 0) + 1 FROM decision")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, dm_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, account, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, capability, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, result, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 6, reason, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 7, (int64_t)time(NULL)) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return cdcs_pss_step(db, st, "insert decision") == SQLITE_DONE ? 0 : -1;
}

int cdcs_pss_store_decision_note(struct db *db, const char *id, const char *line)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(
	         db, "UPDATE decision SET reason = reason || ?1 || ?2 WHERE id = ?3")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, "\n", -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, line, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return cdcs_pss_step(db, st, "note on a decision") == SQLITE_DONE ? 0 : -1;
}

int cdcs_pss_store_decision_dm(struct db *db, const char *id, char *dm_id, size_t len)
{
	const unsigned char *v;
	sqlite3_stmt *st;
	int rc, ret = -1;

	if ((st = db_prepare(db, "SELECT dm_id FROM decision WHERE id = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK)
		goto out;
	if ((rc = sqlite3_step(st)) == SQLITE_DONE)
		ret = 0;
	else if (rc == SQLITE_ROW && (v = sqlite3_column_text(st, 0)) != NULL &&
	         strlen((const char *)v) < len) {
		memcpy(dm_id, v, strlen((const char *)v) + 1);
		ret = 1;
	}
out:
	if (ret == -1)
		log_err("cannot look up decision %s: %s", id, db_errmsg(db));
	sqlite3_reset(st);
	return ret;
}

int cdcs_pss_store_result(struct db *db, const char *dm_id, const char *decision,
                          const struct cdcs_pss_result *r)
{
	sqlite3_stmt *st;

	/* A failed update leaves what the device still runs (make-before-break) as it was:
	 * only the error and the time change. */
	st = db_prepare(db, "INSERT INTO device_cdcs (dm_id, vendor, name, variant, version_number,"
	                    " state, cdcs_id, decision, source, updated, error)"
	                    " VALUES (?1, ?2, ?3, NULL, ?4, ?5, NULL, ?6, 'agent', ?7, ?8)"
	                    " ON CONFLICT (dm_id, vendor, name) DO UPDATE SET"
	                    " version_number = CASE WHEN excluded.state = 'failed'"
	                    "  THEN device_cdcs.version_number ELSE excluded.version_number END,"
	                    " state = CASE WHEN excluded.state = 'failed'"
	                    "  THEN device_cdcs.state ELSE excluded.state END,"
	                    " decision = excluded.decision, source = excluded.source,"
	                    " updated = excluded.updated, error = excluded.error");
	if (st == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, dm_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, r->vendor, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, r->name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, r->version_number) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, r->state, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 6, decision, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 7, (int64_t)time(NULL)) != SQLITE_OK ||
	    cdcs_pss_bind_text(st, 8, r->error) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return cdcs_pss_step(db, st, "record a device's result") == SQLITE_DONE ? 0 : -1;
}

int cdcs_pss_store_state(struct db *db, const struct cdcs_pss_state_body *b)
{
	sqlite3_stmt *st;

	/*
	 * cdcs-iss reports from an outbox, possibly late: a report never takes a slot back to
	 * an older version, nor undoes a removal the agent reported after this
	 * personalization. The same report again changes nothing.
	 */
	st = db_prepare(db, "INSERT INTO device_cdcs (dm_id, vendor, name, variant, version_number,"
	                    " state, cdcs_id, decision, source, updated, error)"
	                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'cdcs-iss', ?9, NULL)"
	                    " ON CONFLICT (dm_id, vendor, name) DO UPDATE SET"
	                    " variant = excluded.variant, version_number = excluded.version_number,"
	                    " state = excluded.state, cdcs_id = excluded.cdcs_id,"
	                    " decision = excluded.decision, source = excluded.source,"
	                    " updated = CASE WHEN device_cdcs.updated > excluded.updated"
	                    "  THEN device_cdcs.updated ELSE excluded.updated END, error = NULL"
	                    " WHERE excluded.version_number > device_cdcs.version_number"
	                    " OR (excluded.version_number = device_cdcs.version_number"
	                    "  AND (device_cdcs.state <> 'removed'"
	                    "   OR device_cdcs.updated <= excluded.updated))");
	if (st == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, b->dm_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, b->vendor, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, b->name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, b->variant, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, b->version_number) != SQLITE_OK ||
	    sqlite3_bind_text(st, 6, b->state, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 7, b->cdcs_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 8, b->decision, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 9, b->personalized_at) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return cdcs_pss_step(db, st, "record a CDCS state") == SQLITE_DONE ? 0 : -1;
}

static json_t *cdcs_pss_row_cdcs(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:I, s:o}", "vendor",
	                 cdcs_pss_col_str(st, 0), "name", cdcs_pss_col_str(st, 1), "variant",
	                 cdcs_pss_col_str(st, 2), "version_number",
	                 (json_int_t)sqlite3_column_int64(st, 3), "state", cdcs_pss_col_str(st, 4),
	                 "cdcs_id", cdcs_pss_col_str(st, 5), "decision", cdcs_pss_col_str(st, 6),
	                 "source", cdcs_pss_col_str(st, 7), "updated",
	                 (json_int_t)sqlite3_column_int64(st, 8), "error", cdcs_pss_col_str(st, 9));
}

static json_t *cdcs_pss_row_decision(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:I, s:o, s:o}", "id", cdcs_pss_col_str(st, 0), "created",
	                 (json_int_t)sqlite3_column_int64(st, 1), "result",
	                 cdcs_pss_col_json(st, 2), "reason", cdcs_pss_col_str(st, 3));
}

json_t *cdcs_pss_store_device(struct db *db, const char *dm_id)
{
	json_t *cdcs, *decisions, *campaigns;

	if ((cdcs = cdcs_pss_rows(db,
	                          "SELECT vendor, name, variant, version_number, state, cdcs_id,"
	                          " decision, source, updated, error FROM device_cdcs"
	                          " WHERE dm_id = ?1 ORDER BY vendor, name",
	                          dm_id, 0, cdcs_pss_row_cdcs, "a device's CDCSs")) == NULL)
		return NULL;
	if ((decisions = cdcs_pss_rows(db,
	                               "SELECT id, created, result, reason FROM decision"
	                               " WHERE dm_id = ?1 ORDER BY seq DESC LIMIT ?2",
	                               dm_id, CDCS_PSS_DEVICE_DECISIONS, cdcs_pss_row_decision,
	                               "a device's decisions")) == NULL) {
		json_decref(cdcs);
		return NULL;
	}
	if ((campaigns = cdcs_pss_store_device_campaigns(db, dm_id, NULL, NULL)) == NULL) {
		json_decref(cdcs);
		json_decref(decisions);
		return NULL;
	}
	return json_pack("{s:s, s:o, s:o, s:o}", "dm_id", dm_id, "cdcs", cdcs, "decisions",
	                 decisions, "campaigns", campaigns);
}

int cdcs_pss_store_purge(struct db *db, int64_t before)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "DELETE FROM decision WHERE created < ?1")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, before) != SQLITE_OK ||
	    cdcs_pss_step(db, st, "purge decisions") != SQLITE_DONE) {
		sqlite3_reset(st);
		return -1;
	}
	return sqlite3_changes(db_handle(db));
}

int cdcs_pss_store_decision_delivered(struct db *db, const char *id, const char *json)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "UPDATE decision SET delivered = ?1 WHERE id = ?2")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, json, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return cdcs_pss_step(db, st, "record what was delivered") == SQLITE_DONE ? 0 : -1;
}

static json_t *cdcs_pss_row_last_decision(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:I, s:o, s:o}", "id", cdcs_pss_col_str(st, 0), "created",
	                 (json_int_t)sqlite3_column_int64(st, 1), "result",
	                 cdcs_pss_col_json(st, 2), "delivered", cdcs_pss_col_json(st, 3));
}

json_t *cdcs_pss_store_last_decision(struct db *db, const char *dm_id)
{
	json_t *rows, *out;

	if ((rows = cdcs_pss_rows(db,
	                          "SELECT id, created, result, delivered FROM decision"
	                          " WHERE dm_id = ?1 ORDER BY seq DESC LIMIT ?2",
	                          dm_id, 1, cdcs_pss_row_last_decision,
	                          "a device's last decision")) == NULL)
		return NULL;
	out = json_array_size(rows) > 0 ? json_incref(json_array_get(rows, 0)) : json_null();
	json_decref(rows);
	return out;
}

int cdcs_pss_store_device_seen(struct db *db, const char *dm_id, const char *account,
                               const char *capability)
{
	sqlite3_stmt *st;

	st = db_prepare(db, "INSERT INTO device (dm_id, account, capability, last_seen)"
	                    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (dm_id) DO UPDATE SET"
	                    " account = excluded.account, capability = excluded.capability,"
	                    " last_seen = excluded.last_seen");
	if (st == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, dm_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, account, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, capability, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, (int64_t)time(NULL)) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return cdcs_pss_step(db, st, "record a device") == SQLITE_DONE ? 0 : -1;
}

/* The platform of a stored capability, or null. */
static json_t *cdcs_pss_col_platform(sqlite3_stmt *st, int i)
{
	json_t *cap = cdcs_pss_col_json(st, i), *p;

	p = json_incref(json_object_get(cap, "platform"));
	json_decref(cap);
	return p != NULL ? p : json_null();
}

static json_t *cdcs_pss_row_device(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:I}", "dm_id", cdcs_pss_col_str(st, 0), "account",
	                 cdcs_pss_col_str(st, 1), "capability", cdcs_pss_col_json(st, 2),
	                 "platform", cdcs_pss_col_platform(st, 2), "last_seen",
	                 (json_int_t)sqlite3_column_int64(st, 3));
}

json_t *cdcs_pss_store_device_row(struct db *db, const char *dm_id)
{
	json_t *rows, *out;

	if ((rows = cdcs_pss_rows(db,
	                          "SELECT dm_id, account, capability, last_seen FROM device"
	                          " WHERE dm_id = ?1",
	                          dm_id, 0, cdcs_pss_row_device, "a device")) == NULL)
		return NULL;
	out = json_array_size(rows) > 0 ? json_incref(json_array_get(rows, 0)) : json_null();
	json_decref(rows);
	return out;
}

/* A device as listed: without its capability, but its platform. */
static json_t *cdcs_pss_row_device_item(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:I}", "dm_id", cdcs_pss_col_str(st, 0), "account",
	                 cdcs_pss_col_str(st, 1), "platform", cdcs_pss_col_platform(st, 2),
	                 "last_seen", (json_int_t)sqlite3_column_int64(st, 3));
}

static json_t *cdcs_pss_row_device_cdcs(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:I, s:o}", "vendor", cdcs_pss_col_str(st, 0), "name",
	                 cdcs_pss_col_str(st, 1), "variant", cdcs_pss_col_str(st, 2),
	                 "version_number", (json_int_t)sqlite3_column_int64(st, 3), "state",
	                 cdcs_pss_col_str(st, 4));
}

json_t *cdcs_pss_store_devices(struct db *db, const char *account, const char *vendor,
                               const char *name, int limit)
{
	sqlite3_stmt *st;
	json_t *out, *dev, *cdcs;
	size_t i;

	/* A CDCS the agent reported removed is one the device no longer has. */
	st = db_prepare(db, "SELECT dm_id, account, capability, last_seen FROM device"
	                    " WHERE (?1 IS NULL OR account = ?1) AND (?2 IS NULL OR EXISTS"
	                    "  (SELECT 1 FROM device_cdcs c WHERE c.dm_id = device.dm_id"
	                    "   AND c.vendor = ?2 AND c.name = ?3 AND c.state <> 'removed'))"
	                    " ORDER BY dm_id LIMIT ?4");
	if (st == NULL)
		return NULL;
	if (cdcs_pss_bind_text(st, 1, account) != SQLITE_OK ||
	    cdcs_pss_bind_text(st, 2, vendor) != SQLITE_OK ||
	    cdcs_pss_bind_text(st, 3, name) != SQLITE_OK ||
	    sqlite3_bind_int(st, 4, limit) != SQLITE_OK) {
		log_err("cannot list the devices: %s", db_errmsg(db));
		sqlite3_reset(st);
		return NULL;
	}
	if ((out = cdcs_pss_rows_step(db, st, cdcs_pss_row_device_item, "the devices")) == NULL)
		return NULL;
	json_array_foreach(out, i, dev)
	{
		cdcs = cdcs_pss_rows(db,
		                     "SELECT vendor, name, variant, version_number, state"
		                     " FROM device_cdcs WHERE dm_id = ?1 ORDER BY vendor, name",
		                     json_string_value(json_object_get(dev, "dm_id")), 0,
		                     cdcs_pss_row_device_cdcs, "a device's CDCSs");
		if (json_object_set_new(dev, "cdcs", cdcs) == -1) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

static json_t *cdcs_pss_row_slot(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:I, s:o}", "state", cdcs_pss_col_str(st, 0), "version_number",
	                 (json_int_t)sqlite3_column_int64(st, 1), "error", cdcs_pss_col_str(st, 2));
}

json_t *cdcs_pss_store_slot(struct db *db, const char *dm_id, const char *vendor, const char *name)
{
	sqlite3_stmt *st;
	json_t *out = NULL;
	int rc;

	st = db_prepare(db, "SELECT state, version_number, error FROM device_cdcs"
	                    " WHERE dm_id = ?1 AND vendor = ?2 AND name = ?3");
	if (st == NULL)
		return NULL;
	if (sqlite3_bind_text(st, 1, dm_id, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
	    sqlite3_bind_text(st, 2, vendor, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
	    sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT) == SQLITE_OK) {
		if ((rc = sqlite3_step(st)) == SQLITE_ROW)
			out = cdcs_pss_row_slot(st);
		else if (rc == SQLITE_DONE)
			out = json_null();
	}
	if (out == NULL)
		log_err("cannot read %s's %s/%s: %s", dm_id, vendor, name, db_errmsg(db));
	sqlite3_reset(st);
	return out;
}

json_t *cdcs_pss_store_rule_json(struct db *db, const char *name)
{
	json_t *rows, *out;

	if ((rows = cdcs_pss_rows(db, "SELECT rule FROM policy_rule WHERE name = ?1", name, 0,
	                          cdcs_pss_row_json, "a policy rule")) == NULL)
		return NULL;
	out = json_array_size(rows) > 0 ? json_incref(json_array_get(rows, 0)) : json_null();
	json_decref(rows);
	return out;
}
