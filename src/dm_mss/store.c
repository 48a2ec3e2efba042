/*
 * dm-mss store: the role's schema, one migration per version, and the writes that share a
 * shape: a change and its audit row always commit together. SQL stays portable
 * (DESIGN.md §7) so that a PostgreSQL backend can reuse it.
 */
#include <stdio.h>

#include "opendm/audit.h"
#include "opendm/log.h"
#include "dm_mss.h"

const struct db_migration dm_mss_migrations[] = {
    /* Subscribers and the devices registered to them: Figure 4 step 2 checks these. */
    {1, "CREATE TABLE subscriber ("
        " id INTEGER PRIMARY KEY,"
        " account TEXT NOT NULL UNIQUE,"
        " status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),"
        " device_limit INTEGER NOT NULL DEFAULT 5 CHECK (device_limit >= 0),"
        " created_at INTEGER NOT NULL);"
        "CREATE TABLE device ("
        " id INTEGER PRIMARY KEY,"
        " hw_id TEXT NOT NULL UNIQUE,"
        " subscriber_id INTEGER NOT NULL REFERENCES subscriber (id),"
        " platform TEXT NOT NULL,"
        " status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),"
        " created_at INTEGER NOT NULL);"
        "CREATE INDEX device_subscriber ON device (subscriber_id);"},
    /*
     * Figure 4: one-time activation codes (only their sha256 is kept, so a copy of the
     * database gives no usable code) and what each device said it is. revoked_at records
     * when an operator revoked the device.
     */
    {2, "CREATE TABLE activation_code ("
        " code_hash TEXT PRIMARY KEY,"
        " subscriber_id INTEGER NOT NULL REFERENCES subscriber (id),"
        " created_at INTEGER NOT NULL,"
        " expires_at INTEGER NOT NULL,"
        " used_at INTEGER,"
        " used_by_hw_id TEXT);"
        "CREATE INDEX activation_code_subscriber ON activation_code (subscriber_id);"
        "ALTER TABLE device ADD COLUMN capability TEXT NOT NULL DEFAULT '{}';"
        "ALTER TABLE device ADD COLUMN revoked_at INTEGER;"},
    /*
     * Issue 5: CPEs (set-top boxes) whose pairing assertions stand for an activation code,
     * each belonging to one subscriber, and the ids of the assertions already spent.
     */
    {3, "CREATE TABLE cpe ("
        " cn TEXT PRIMARY KEY,"
        " subscriber_id INTEGER NOT NULL REFERENCES subscriber (id),"
        " status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),"
        " created_at INTEGER NOT NULL);"
        "CREATE INDEX cpe_subscriber ON cpe (subscriber_id);" REPLAY_TABLE_SQL},
    {0, NULL},
};

const struct dm_mss_status_kind dm_mss_subscriber_status_kind = {
    "SELECT status FROM subscriber WHERE account = ?1",
    "UPDATE subscriber SET status = ?1 WHERE account = ?2",
    "subscriber.status",
};

const struct dm_mss_status_kind dm_mss_cpe_status_kind = {
    "SELECT status FROM cpe WHERE cn = ?1",
    "UPDATE cpe SET status = ?1 WHERE cn = ?2",
    "cpe.status",
};

/* Revoking twice keeps the first time: that is when the device stopped being trusted. */
const struct dm_mss_status_kind dm_mss_device_revoke_kind = {
    "SELECT status FROM device WHERE hw_id = ?1",
    "UPDATE device SET status = ?1, revoked_at = COALESCE(revoked_at, ?3) WHERE hw_id = ?2",
    "device.revoke",
};

int dm_mss_status_set(struct db *db, const char *rid, const char *actor,
                      const struct dm_mss_status_kind *k, const char *key, const char *status,
                      int64_t now, char *from, size_t fromlen)
{
	sqlite3_stmt *s;
	json_t *detail = NULL;
	int rc, ret = -1;

	if (db_begin(db) == -1)
		return -1;
	if ((s = db_prepare(db, k->select)) == NULL)
		goto fail;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		snprintf(from, fromlen, "%s", dm_mss_col_text(s, 0));
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		ret = 0;
	if (rc != SQLITE_ROW)
		goto fail;
	if ((s = db_prepare(db, k->update)) == NULL)
		goto fail;
	sqlite3_bind_text(s, 1, status, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(s) >= 3)
		sqlite3_bind_int64(s, 3, now);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		log_rerr(rid, "%s %s: %s", k->action, key, db_errmsg(db));
		goto fail;
	}
	if ((detail = json_pack("{s:s, s:s}", "status", status, "from", from)) == NULL ||
	    audit_add(db, rid, actor, k->action, key, detail) == -1 || db_commit(db) == -1)
		goto fail;
	json_decref(detail);
	return 1;

fail:
	json_decref(detail);
	db_rollback(db);
	return ret;
}

int dm_mss_commit_audited(struct daemon_ctx *d, struct httpd_req *req, const char *action,
                          const char *subject, json_t *detail)
{
	int rc = -1;

	if (detail == NULL)
		log_rerr(httpd_req_id(req), "%s %s: out of memory", action, subject);
	else if (audit_req(d, req, action, subject, detail) == 0 && db_commit(d->db) == 0)
		rc = 0;
	if (rc == -1)
		db_rollback(d->db);
	json_decref(detail);
	return rc;
}
