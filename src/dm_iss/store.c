/*
 * dm-iss store: the role's schema, one migration per version, and its queries. SQL stays
 * portable (DESIGN.md §7) so that a PostgreSQL backend can reuse it.
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "opendm/log.h"
#include "opendm/replay.h"
#include "dm_iss.h"

const struct db_migration dm_iss_migrations[] = {
    /* Every certificate issued, so a serial or a DM id is never handed out twice. */
    {1, "CREATE TABLE issued_cert ("
        " serial TEXT PRIMARY KEY,"
        " dm_id TEXT NOT NULL UNIQUE,"
        " hw_id TEXT NOT NULL,"
        " not_after INTEGER NOT NULL,"
        " revoked_at INTEGER,"
        " issued_at INTEGER NOT NULL);"
        "CREATE INDEX issued_cert_hw ON issued_cert (hw_id);"},
    /*
     * Single-use enrolment tokens, and what each one bought: an agent whose answer was lost
     * retries with the same token and key and must get the same certificate back. (ADD
     * COLUMN cannot carry UNIQUE, hence the index; rows of version 1 keep NULLs.)
     */
    {2, REPLAY_TABLE_SQL "ALTER TABLE issued_cert ADD COLUMN token_jti TEXT;"
                         "ALTER TABLE issued_cert ADD COLUMN csr_key_fp TEXT;"
                         "ALTER TABLE issued_cert ADD COLUMN cert_pem TEXT;"
                         "CREATE UNIQUE INDEX issued_cert_jti ON issued_cert (token_jti);"},
    {0, NULL},
};

static int dm_iss_copy(char *dst, size_t len, const unsigned char *src)
{
	if (src == NULL || strlen((const char *)src) >= len)
		return -1;
	memcpy(dst, src, strlen((const char *)src) + 1);
	return 0;
}

int dm_iss_store_find(struct db *db, const char *jti, struct dm_iss_issued *out)
{
	sqlite3_stmt *st;
	const unsigned char *pem;
	int rc, ret = -1;

	memset(out, 0, sizeof(*out));
	if ((st = db_prepare(db, "SELECT dm_id, csr_key_fp, cert_pem, not_after FROM issued_cert"
	                         " WHERE token_jti = ?1 AND revoked_at IS NULL")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, jti, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		goto fail;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		ret = 0;
		goto fail;
	}
	if (rc != SQLITE_ROW) {
		log_err("cannot look up token: %s", db_errmsg(db));
		goto fail;
	}
	if (dm_iss_copy(out->dm_id, sizeof(out->dm_id), sqlite3_column_text(st, 0)) == -1 ||
	    dm_iss_copy(out->csr_key_fp, sizeof(out->csr_key_fp), sqlite3_column_text(st, 1)) ==
	        -1 ||
	    (pem = sqlite3_column_text(st, 2)) == NULL) {
		log_err("issued_cert row for a token is incomplete");
		goto fail;
	}
	if ((out->cert_pem = strdup((const char *)pem)) == NULL) {
		log_err("out of memory");
		goto fail;
	}
	out->not_after = sqlite3_column_int64(st, 3);
	ret = 1;
fail:
	sqlite3_reset(st);
	return ret;
}

#define DM_ISS_DM_COLS "dm_id, hw_id, revoked_at IS NOT NULL, not_after, issued_at FROM issued_cert"

json_t *dm_iss_store_dms(struct db *db, const char *hw_id, const char *dm_id, int64_t now)
{
	sqlite3_stmt *st;
	json_t *out = NULL, *row;
	const char *dm, *hw;
	int rc;

	/* One statement each, so that each uses its index (CDCS daemons look DM ids up often). */
	st = db_prepare(db, dm_id != NULL ? "SELECT " DM_ISS_DM_COLS " WHERE dm_id = ?1"
	                                  : "SELECT " DM_ISS_DM_COLS " WHERE hw_id = ?1"
	                                    " ORDER BY issued_at, dm_id LIMIT ?2");
	if (st == NULL)
		return NULL;
	if (sqlite3_bind_text(st, 1, dm_id != NULL ? dm_id : hw_id, -1, SQLITE_TRANSIENT) !=
	        SQLITE_OK ||
	    (dm_id == NULL && sqlite3_bind_int(st, 2, DM_ISS_LIST_MAX) != SQLITE_OK)) {
		log_err("cannot bind: %s", db_errmsg(db));
		goto fail;
	}
	if ((out = json_array()) == NULL)
		goto nomem;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		dm = (const char *)sqlite3_column_text(st, 0);
		hw = (const char *)sqlite3_column_text(st, 1);
		row = json_pack("{s:s, s:s, s:s, s:I, s:I}", "dm_id", dm != NULL ? dm : "", "hw_id",
		                hw != NULL ? hw : "", "status",
		                dm_iss_dm_status(sqlite3_column_int(st, 2),
		                                 sqlite3_column_int64(st, 3), now, 0),
		                "issued_at", (json_int_t)sqlite3_column_int64(st, 4), "expires_at",
		                (json_int_t)sqlite3_column_int64(st, 3));
		if (json_array_append_new(out, row) == -1)
			goto nomem;
	}
	if (rc != SQLITE_DONE) {
		log_err("cannot list DM ids: %s", db_errmsg(db));
		goto fail;
	}
	sqlite3_reset(st);
	return out;

nomem:
	log_err("out of memory");
fail:
	sqlite3_reset(st);
	json_decref(out);
	return NULL;
}

int dm_iss_store_insert(struct db *db, const char *serial, const char *dm_id, const char *hw_id,
                        const char *jti, const char *csr_key_fp, const char *cert_pem,
                        int64_t not_after, int64_t issued_at)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = db_prepare(db, "INSERT INTO issued_cert (serial, dm_id, hw_id, not_after,"
	                         " issued_at, token_jti, csr_key_fp, cert_pem)"
	                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, serial, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, dm_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, hw_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, not_after) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, issued_at) != SQLITE_OK ||
	    sqlite3_bind_text(st, 6, jti, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 7, csr_key_fp, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 8, cert_pem, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		log_err("cannot record certificate %s: %s", serial, db_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}
