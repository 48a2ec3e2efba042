/*
 * db: a daemon's own SQLite database.
 *
 * WAL, busy_timeout, foreign keys on, synchronous FULL or NORMAL as the role chooses.
 * The schema is versioned with PRAGMA user_version; db_open() applies each migration whose
 * version is above the stored one, each in its own transaction, so a failed migration leaves
 * the previous version intact and re-opening is idempotent. Prepared statements are cached
 * per SQL text for the life of the handle.
 */
#ifndef OPENDM_DB_H
#define OPENDM_DB_H

#include <stddef.h>
#include <sqlite3.h>

struct db;

struct db_migration {
	int version;     /* 1, 2, 3 ... strictly increasing */
	const char *sql; /* one or more statements */
};

enum db_sync { DB_SYNC_NORMAL, DB_SYNC_FULL };

/* Open (creating if needed) and migrate. NULL + message naming the path on error. */
struct db *db_open(const char *path, const struct db_migration *migs, size_t n_migs,
                   enum db_sync sync, char *err, size_t errlen);
void db_close(struct db *db);
/* Current schema version (PRAGMA user_version), or -1. */
int db_schema_version(struct db *db);
/* A cheap liveness check for health reports: 0 if a trivial query succeeds. */
int db_ping(struct db *db);
/* Run SQL with no result rows. 0/-1 (logged). */
int db_exec(struct db *db, const char *sql);
/*
 * A cached, reset and unbound prepared statement for sql; do not finalize it. NULL on error.
 * Call sqlite3_reset() when done stepping (db_prepare() also resets before returning it).
 */
sqlite3_stmt *db_prepare(struct db *db, const char *sql);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. 0/-1. */
int db_begin(struct db *db);
int db_commit(struct db *db);
int db_rollback(struct db *db);
sqlite3 *db_handle(struct db *db);
const char *db_errmsg(struct db *db);

#endif
