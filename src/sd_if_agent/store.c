/*
 * sd-if-agent store: the role's schema, one migration per version, and its queries. SQL
 * stays portable (DESIGN.md §7) so that a PostgreSQL backend can reuse it.
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "opendm/log.h"
#include "opendm/replay.h"
#include "sd_if_agent.h"

const struct db_migration sd_if_agent_migrations[] = {
    /* Secondary devices paired with this CPE; only these get a relay link. */
    {1, "CREATE TABLE pairing ("
        " hw_id TEXT PRIMARY KEY,"
        " link_cert_fp TEXT NOT NULL UNIQUE,"
        " paired_at INTEGER NOT NULL,"
        " unpaired_at INTEGER);"},
    /*
     * The link certificate itself, whose key checks the device's link proofs when it asks
     * for a pairing assertion; and the single-use ids of those proofs. (Rows of version 1
     * keep NULL, and such a pairing cannot get assertions until paired again.)
     */
    {2, REPLAY_TABLE_SQL "ALTER TABLE pairing ADD COLUMN link_cert TEXT;"},
    {0, NULL},
};

static int sdif_store_bind_text(struct db *db, sqlite3_stmt *st, int i, const char *v)
{
	if (sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		return -1;
	}
	return 0;
}

int sdif_store_link_active(struct db *db, const char *link_fp, char *hw_id, size_t len)
{
	sqlite3_stmt *st;
	const unsigned char *v;
	int rc, ret = -1;

	if ((st = db_prepare(db, "SELECT hw_id FROM pairing"
	                         " WHERE link_cert_fp = ?1 AND unpaired_at IS NULL")) == NULL)
		return -1;
	if (sdif_store_bind_text(db, st, 1, link_fp) == -1)
		goto out;
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW || (v = sqlite3_column_text(st, 0)) == NULL ||
	    strlen((const char *)v) >= len) {
		log_err("cannot look up link %.16s...: %s", link_fp, db_errmsg(db));
		goto out;
	}
	memcpy(hw_id, v, strlen((const char *)v) + 1);
	ret = 1;
out:
	sqlite3_reset(st);
	return ret;
}

int sdif_store_link_cert(struct db *db, const char *hw_id, char **pem)
{
	sqlite3_stmt *st;
	const unsigned char *v;
	int rc, ret = -1;

	*pem = NULL;
	if ((st = db_prepare(db, "SELECT link_cert FROM pairing"
	                         " WHERE hw_id = ?1 AND unpaired_at IS NULL")) == NULL)
		return -1;
	if (sdif_store_bind_text(db, st, 1, hw_id) == -1)
		goto out;
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		log_err("cannot look up the pairing of %s: %s", hw_id, db_errmsg(db));
		goto out;
	}
	/* A version-1 row has no certificate: as good as not paired for assertions. */
	if ((v = sqlite3_column_text(st, 0)) == NULL) {
		ret = 0;
		goto out;
	}
	if ((*pem = strdup((const char *)v)) == NULL) {
		log_err("out of memory");
		goto out;
	}
	ret = 1;
out:
	sqlite3_reset(st);
	return ret;
}

int sdif_store_pair(struct db *db, const char *hw_id, const char *link_fp, const char *link_pem,
                    int64_t now)
{
	sqlite3_stmt *st;
	int rc;

	/* A re-pair replaces the device's row; the same link key under another (ended) hw_id
	 * row would break UNIQUE(link_cert_fp), so that row goes too. */
	if ((st = db_prepare(db, "DELETE FROM pairing WHERE hw_id = ?1 OR link_cert_fp = ?2")) ==
	    NULL)
		return -1;
	if (sdif_store_bind_text(db, st, 1, hw_id) == -1 ||
	    sdif_store_bind_text(db, st, 2, link_fp) == -1) {
		sqlite3_reset(st);
		return -1;
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_err("cannot replace the pairing of %s: %s", hw_id, db_errmsg(db));
		return -1;
	}
	if ((st = db_prepare(db, "INSERT INTO pairing (hw_id, link_cert_fp, link_cert, paired_at)"
	                         " VALUES (?1, ?2, ?3, ?4)")) == NULL)
		return -1;
	if (sdif_store_bind_text(db, st, 1, hw_id) == -1 ||
	    sdif_store_bind_text(db, st, 2, link_fp) == -1 ||
	    sdif_store_bind_text(db, st, 3, link_pem) == -1 ||
	    sqlite3_bind_int64(st, 4, now) != SQLITE_OK) {
		sqlite3_reset(st);
		return -1;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		log_err("cannot record the pairing of %s: %s", hw_id, db_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int sdif_store_unpair(struct db *db, const char *hw_id, int64_t now, char link_fp[65])
{
	sqlite3_stmt *st;
	const unsigned char *v;
	int rc, ret = -1;

	/* One statement, so the row read is the row ended (no transaction needed). */
	if ((st = db_prepare(db, "UPDATE pairing SET unpaired_at = ?2"
	                         " WHERE hw_id = ?1 AND unpaired_at IS NULL"
	                         " RETURNING link_cert_fp")) == NULL)
		return -1;
	if (sdif_store_bind_text(db, st, 1, hw_id) == -1 ||
	    sqlite3_bind_int64(st, 2, now) != SQLITE_OK)
		goto out;
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW || (v = sqlite3_column_text(st, 0)) == NULL ||
	    strlen((const char *)v) != 64) {
		log_err("cannot unpair %s: %s", hw_id, db_errmsg(db));
		goto out;
	}
	memcpy(link_fp, v, 65);
	/* RETURNING: the update is complete only once the statement has run to its end. */
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		log_err("cannot unpair %s: %s", hw_id, db_errmsg(db));
		goto out;
	}
	ret = 1;
out:
	sqlite3_reset(st);
	return ret;
}

json_t *sdif_store_list(struct db *db)
{
	sqlite3_stmt *st;
	json_t *list, *row;
	const char *hw, *fp;
	int rc;

	if ((list = json_array()) == NULL ||
	    (st = db_prepare(db, "SELECT hw_id, link_cert_fp, paired_at, unpaired_at FROM pairing"
	                         " ORDER BY paired_at, hw_id")) == NULL) {
		json_decref(list);
		return NULL;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		hw = (const char *)sqlite3_column_text(st, 0);
		fp = (const char *)sqlite3_column_text(st, 1);
		row = json_pack("{s:s, s:s, s:I, s:o}", "hw_id", hw != NULL ? hw : "", "link_fp",
		                fp != NULL ? fp : "", "paired_at",
		                (json_int_t)sqlite3_column_int64(st, 2), "unpaired_at",
		                sqlite3_column_type(st, 3) == SQLITE_NULL
		                    ? json_null()
		                    : json_integer(sqlite3_column_int64(st, 3)));
		if (row == NULL || json_array_append_new(list, row) == -1) {
			log_err("out of memory");
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_err("cannot list pairings: %s", db_errmsg(db));
		json_decref(list);
		return NULL;
	}
	return list;
}
