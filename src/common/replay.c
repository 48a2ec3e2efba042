/* replay: single-use tokens recorded in the role's database (see replay.h). */
#include <string.h>

#include <sqlite3.h>

#include "opendm/log.h"
#include "opendm/replay.h"

int replay_record(void *arg, const char *jti, int64_t exp)
{
	struct db *db = arg;
	sqlite3_stmt *st;
	size_t len;
	int rc, changes;

	if (db == NULL || jti == NULL || (len = strlen(jti)) == 0 || len > REPLAY_JTI_MAX) {
		log_err("missing or oversized jti");
		return -1;
	}
	/* OR IGNORE + changes(): one statement tells new from seen, with no race between a
	 * SELECT and an INSERT. */
	if ((st = db_prepare(db, "INSERT OR IGNORE INTO used_token (jti, exp) VALUES (?1, ?2)")) ==
	    NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, jti, (int)len, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, exp) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	rc = sqlite3_step(st);
	changes = sqlite3_changes(db_handle(db));
	if (rc != SQLITE_DONE) {
		log_err("cannot record token: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	sqlite3_reset(st);
	return changes == 1 ? 0 : 1;
}

int replay_purge(struct db *db, int64_t now)
{
	sqlite3_stmt *st;
	int rc, changes;

	if (db == NULL)
		return -1;
	if ((st = db_prepare(db, "DELETE FROM used_token WHERE exp < ?1")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, now) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	rc = sqlite3_step(st);
	changes = sqlite3_changes(db_handle(db));
	if (rc != SQLITE_DONE)
		log_err("cannot purge used tokens: %s", db_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? changes : -1;
}
