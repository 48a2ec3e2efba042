/*
 * cdcs-iss store: the role's schema, one migration per version, and its queries. SQL stays
 * portable (DESIGN.md §7) so that a PostgreSQL backend can reuse it.
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "opendm/log.h"
#include "opendm/replay.h"
#include "cdcs_iss.h"

const struct db_migration cdcs_iss_migrations[] = {
    /* A placeholder that nothing ever wrote to; version 2 replaces it. */
    {1, "CREATE TABLE personalization ("
        " id INTEGER PRIMARY KEY,"
        " dm_id TEXT NOT NULL,"
        " cdcs TEXT NOT NULL,"
        " cdcs_version INTEGER NOT NULL,"
        " cdcs_identity TEXT NOT NULL UNIQUE,"
        " personalized_at INTEGER NOT NULL,"
        " UNIQUE (dm_id, cdcs, cdcs_version));"},
    /*
     * Single-use personalization tickets; one row per personalization handed out (its
     * confirmation kept only as a hash); and the step-20 reports still owed to cdcs-pss,
     * which must survive a restart.
     */
    {2, "DROP TABLE personalization;" REPLAY_TABLE_SQL "CREATE TABLE personalization ("
        " perso_id TEXT PRIMARY KEY,"
        " dm_id TEXT NOT NULL,"
        " vendor TEXT NOT NULL,"
        " name TEXT NOT NULL,"
        " variant TEXT NOT NULL,"
        " version_number INTEGER NOT NULL,"
        " cdcs_id TEXT NOT NULL UNIQUE,"
        " rights TEXT NOT NULL,"
        " confirm_sha256 TEXT NOT NULL,"
        " decision TEXT NOT NULL,"
        " created INTEGER NOT NULL,"
        " confirmed_at INTEGER);"
        "CREATE INDEX personalization_dm"
        " ON personalization (dm_id);"
        "CREATE TABLE report_outbox ("
        " id INTEGER PRIMARY KEY,"
        " perso_id TEXT NOT NULL UNIQUE"
        "  REFERENCES personalization (perso_id),"
        " rid TEXT NOT NULL,"
        " body TEXT NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0,"
        " next_at INTEGER NOT NULL);"
        "CREATE INDEX report_outbox_next"
        " ON report_outbox (next_at);"},
    {0, NULL},
};

static int cdcs_iss_copy(char *dst, size_t len, const unsigned char *src)
{
	if (src == NULL || strlen((const char *)src) >= len)
		return -1;
	memcpy(dst, src, strlen((const char *)src) + 1);
	return 0;
}

/* Step a statement that returns no row; always reset. 0/-1 (logged with what). */
static int cdcs_iss_done(struct db *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		log_err("cannot %s: %s", what, db_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int cdcs_iss_bind_fail(struct db *db, sqlite3_stmt *st)
{
	log_err("cannot bind: %s", db_errmsg(db));
	sqlite3_reset(st);
	return -1;
}

static char *cdcs_iss_rights_json(const struct cdcs_iss_grant *g)
{
	json_t *a;
	char *text = NULL;
	size_t i;

	if ((a = json_array()) == NULL)
		return NULL;
	for (i = 0; i < g->n_rights; i++)
		if (json_array_append_new(a, json_string(g->rights[i])) == -1)
			goto out;
	text = json_dumps(a, JSON_COMPACT);
out:
	json_decref(a);
	return text;
}

static int cdcs_iss_perso_insert(struct db *db, const struct cdcs_iss_grant *g,
                                 const struct cdcs_iss_perso *p, int64_t now)
{
	sqlite3_stmt *st;
	char *rights;
	int rc = -1;

	if ((rights = cdcs_iss_rights_json(g)) == NULL) {
		log_err("out of memory");
		return -1;
	}
	if ((st = db_prepare(db, "INSERT INTO personalization (perso_id, dm_id, vendor, name,"
	                         " variant, version_number, cdcs_id, rights, confirm_sha256,"
	                         " decision, created) VALUES"
	                         " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")) == NULL)
		goto out;
	if (sqlite3_bind_text(st, 1, p->perso_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, g->dm_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, g->vendor, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, g->name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, g->variant, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 6, g->version_number) != SQLITE_OK ||
	    sqlite3_bind_text(st, 7, p->cdcs_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 8, rights, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 9, p->confirm_sha256, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 10, g->decision, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 11, now) != SQLITE_OK) {
		cdcs_iss_bind_fail(db, st);
		goto out;
	}
	rc = cdcs_iss_done(db, st, "record the personalization");
out:
	free(rights);
	return rc;
}

/* Open a transaction unless the caller holds one (to add its audit row): 1 opened here, 0
 * the caller's, -1 error. */
static int cdcs_iss_tx_begin(struct db *db)
{
	if (!sqlite3_get_autocommit(db_handle(db)))
		return 0;
	return db_begin(db) == 0 ? 1 : -1;
}

/* End what cdcs_iss_tx_begin() opened: commit if ok, else roll back. 0/-1. */
static int cdcs_iss_tx_end(struct db *db, int own, int ok)
{
	if (!own)
		return ok ? 0 : -1;
	if (ok && db_commit(db) == 0)
		return 0;
	db_rollback(db);
	return -1;
}

int cdcs_iss_store_personalize(struct db *db, const struct cdcs_iss_grant *g,
                               const struct cdcs_iss_perso *p, int64_t now)
{
	int own, r;

	if ((own = cdcs_iss_tx_begin(db)) == -1)
		return -1;
	r = replay_record(db, g->jti, g->exp);
	if (r == 0 && cdcs_iss_perso_insert(db, g, p, now) == -1)
		r = -1;
	if (cdcs_iss_tx_end(db, own, r == 0) == -1)
		return r == 1 ? 1 : -1;
	return 0;
}

int cdcs_iss_store_perso_find(struct db *db, const char *perso_id, struct cdcs_iss_perso_row *out)
{
	sqlite3_stmt *st;
	int rc, ret = -1;

	memset(out, 0, sizeof(*out));
	if ((st = db_prepare(db, "SELECT dm_id, vendor, name, variant, version_number, cdcs_id,"
	                         " confirm_sha256, decision, confirmed_at FROM personalization"
	                         " WHERE perso_id = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, perso_id, -1, SQLITE_TRANSIENT) != SQLITE_OK)
		return cdcs_iss_bind_fail(db, st);
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		log_err("cannot look up a personalization: %s", db_errmsg(db));
		goto out;
	}
	if (cdcs_iss_copy(out->dm_id, sizeof(out->dm_id), sqlite3_column_text(st, 0)) == -1 ||
	    cdcs_iss_copy(out->vendor, sizeof(out->vendor), sqlite3_column_text(st, 1)) == -1 ||
	    cdcs_iss_copy(out->name, sizeof(out->name), sqlite3_column_text(st, 2)) == -1 ||
	    cdcs_iss_copy(out->variant, sizeof(out->variant), sqlite3_column_text(st, 3)) == -1 ||
	    cdcs_iss_copy(out->cdcs_id, sizeof(out->cdcs_id), sqlite3_column_text(st, 5)) == -1 ||
	    cdcs_iss_copy(out->confirm_sha256, sizeof(out->confirm_sha256),
	                  sqlite3_column_text(st, 6)) == -1 ||
	    cdcs_iss_copy(out->decision, sizeof(out->decision), sqlite3_column_text(st, 7)) == -1) {
		log_err("personalization row %s is incomplete", perso_id);
		goto out;
	}
	out->version_number = sqlite3_column_int64(st, 4);
	out->confirmed_at = sqlite3_column_int64(st, 8); /* NULL reads as 0 */
	ret = 1;
out:
	sqlite3_reset(st);
	return ret;
}

int cdcs_iss_store_confirm(struct db *db, const char *perso_id, const char *rid, const char *body,
                           int64_t now)
{
	sqlite3_stmt *st;
	int own;

	if ((own = cdcs_iss_tx_begin(db)) == -1)
		return -1;
	/* The condition makes a second confirmation (a retry, or a race) change nothing. */
	if ((st = db_prepare(db, "UPDATE personalization SET confirmed_at = ?2"
	                         " WHERE perso_id = ?1 AND confirmed_at IS NULL")) == NULL)
		goto fail;
	if (sqlite3_bind_text(st, 1, perso_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, now) != SQLITE_OK) {
		cdcs_iss_bind_fail(db, st);
		goto fail;
	}
	if (cdcs_iss_done(db, st, "mark the personalization confirmed") == -1)
		goto fail;
	if (sqlite3_changes(db_handle(db)) == 0) {
		(void)cdcs_iss_tx_end(db, own, 0);
		return 1;
	}
	if ((st = db_prepare(db, "INSERT INTO report_outbox (perso_id, rid, body, attempts,"
	                         " next_at) VALUES (?1, ?2, ?3, 0, ?4)")) == NULL)
		goto fail;
	if (sqlite3_bind_text(st, 1, perso_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, rid, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, body, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, now) != SQLITE_OK) {
		cdcs_iss_bind_fail(db, st);
		goto fail;
	}
	if (cdcs_iss_done(db, st, "queue the report") == -1)
		goto fail;
	return cdcs_iss_tx_end(db, own, 1);
fail:
	(void)cdcs_iss_tx_end(db, own, 0);
	return -1;
}

int cdcs_iss_store_outbox_due(struct db *db, int64_t now, struct cdcs_iss_outbox_row *rows,
                              size_t max)
{
	sqlite3_stmt *st;
	const unsigned char *body;
	size_t n = 0;
	int rc = SQLITE_DONE;

	if ((st = db_prepare(db, "SELECT id, attempts, rid, body FROM report_outbox"
	                         " WHERE next_at <= ?1 ORDER BY next_at, id LIMIT ?2")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, now) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, (sqlite3_int64)max) != SQLITE_OK)
		return cdcs_iss_bind_fail(db, st);
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&rows[n], 0, sizeof(rows[n]));
		rows[n].id = sqlite3_column_int64(st, 0);
		rows[n].attempts = sqlite3_column_int64(st, 1);
		if (cdcs_iss_copy(rows[n].rid, sizeof(rows[n].rid), sqlite3_column_text(st, 2)) ==
		        -1 ||
		    (body = sqlite3_column_text(st, 3)) == NULL ||
		    (rows[n].body = strdup((const char *)body)) == NULL) {
			log_err("cannot read outbox row %lld", (long long)rows[n].id);
			goto fail;
		}
		n++;
	}
	if (n < max && rc != SQLITE_DONE) {
		log_err("cannot read the outbox: %s", db_errmsg(db));
		goto fail;
	}
	sqlite3_reset(st);
	return (int)n;
fail:
	sqlite3_reset(st);
	while (n > 0)
		free(rows[--n].body);
	return -1;
}

int cdcs_iss_store_outbox_next(struct db *db, int64_t *at)
{
	sqlite3_stmt *st;
	int rc, ret = -1;

	if ((st = db_prepare(db, "SELECT MIN(next_at) FROM report_outbox")) == NULL)
		return -1;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		log_err("cannot read the outbox: %s", db_errmsg(db));
		goto out;
	}
	ret = 0;
	if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*at = sqlite3_column_int64(st, 0);
		ret = 1;
	}
out:
	sqlite3_reset(st);
	return ret;
}

int cdcs_iss_store_outbox_delete(struct db *db, int64_t id)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "DELETE FROM report_outbox WHERE id = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
		return cdcs_iss_bind_fail(db, st);
	return cdcs_iss_done(db, st, "delete an outbox row");
}

int cdcs_iss_store_outbox_retry(struct db *db, int64_t id, int64_t at)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "UPDATE report_outbox SET attempts = attempts + 1, next_at = ?2"
	                         " WHERE id = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, at) != SQLITE_OK)
		return cdcs_iss_bind_fail(db, st);
	return cdcs_iss_done(db, st, "reschedule an outbox row");
}

int cdcs_iss_store_outbox_reset(struct db *db, int64_t now)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "UPDATE report_outbox SET next_at = ?1 WHERE next_at > ?1")) ==
	    NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, now) != SQLITE_OK)
		return cdcs_iss_bind_fail(db, st);
	return cdcs_iss_done(db, st, "reset the outbox");
}
