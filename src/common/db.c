/* db: a daemon's own SQLite database: pragmas, migrations, a prepared-statement cache. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "opendm/db.h"
#include "opendm/log.h"

#define DB_BUSY_MS 5000
/*
 * Statements come from SQL text in the code, so the cache stays small; hitting this bound
 * means a caller builds SQL at run time, which is a bug we report instead of growing forever.
 */
#define DB_CACHE_MAX 1024

struct db_stmt {
	char *sql; /* our own copy: the caller's text may not outlive the cache */
	sqlite3_stmt *st;
};

struct db {
	sqlite3 *h;
	char *path;
	struct db_stmt *cache;
	size_t n, cap;
};

/* One integer from a one-row query (PRAGMA user_version and the like), or -1. */
static int query_int(sqlite3 *h, const char *sql, int *out)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

static int exec_err(sqlite3 *h, const char *sql, char *msg, size_t msglen)
{
	char *emsg = NULL;

	if (sqlite3_exec(h, sql, NULL, NULL, &emsg) == SQLITE_OK)
		return 0;
	snprintf(msg, msglen, "%s", emsg != NULL ? emsg : sqlite3_errmsg(h));
	sqlite3_free(emsg);
	return -1;
}

static int set_wal(struct db *db, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *mode;
	int rc = -1;

	if (sqlite3_prepare_v2(db->h, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		log_seterr(err, errlen, __func__, "%s: journal_mode=WAL: %s", db->path,
		           sqlite3_errmsg(db->h));
		goto out;
	}
	mode = sqlite3_column_text(st, 0);
	/* SQLite answers with the mode it could set; an in-memory database has no WAL. */
	if (mode == NULL ||
	    (strcmp((const char *)mode, "wal") != 0 && strcmp((const char *)mode, "memory") != 0)) {
		log_seterr(err, errlen, __func__, "%s: cannot use WAL (journal_mode is %s)",
		           db->path, mode != NULL ? (const char *)mode : "unknown");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

static int migrate(struct db *db, const struct db_migration *migs, size_t n, char *err,
                   size_t errlen)
{
	char sql[64], msg[512];
	int cur, latest = 0, prev = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (migs[i].version <= prev || migs[i].sql == NULL) {
			log_seterr(err, errlen, __func__,
			           "%s: migration table: version %d out of order", db->path,
			           migs[i].version);
			return -1;
		}
		prev = latest = migs[i].version;
	}
	if (query_int(db->h, "PRAGMA user_version", &cur) == -1) {
		log_seterr(err, errlen, __func__, "%s: reading schema version: %s", db->path,
		           sqlite3_errmsg(db->h));
		return -1;
	}
	if (cur > latest) {
		log_seterr(err, errlen, __func__,
		           "%s: schema version %d is newer than this build (%d)", db->path, cur,
		           latest);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (migs[i].version <= cur)
			continue;
		if (exec_err(db->h, "BEGIN IMMEDIATE", msg, sizeof(msg)) == -1) {
			log_seterr(err, errlen, __func__, "%s: migration %d: %s", db->path,
			           migs[i].version, msg);
			return -1;
		}
		/* Another process may have migrated between our read and our lock. */
		if (query_int(db->h, "PRAGMA user_version", &cur) == -1) {
			snprintf(msg, sizeof(msg), "%s", sqlite3_errmsg(db->h));
			goto fail;
		}
		if (migs[i].version <= cur) {
			if (exec_err(db->h, "COMMIT", msg, sizeof(msg)) == -1)
				goto fail;
			continue;
		}
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", migs[i].version);
		if (exec_err(db->h, migs[i].sql, msg, sizeof(msg)) == -1 ||
		    exec_err(db->h, sql, msg, sizeof(msg)) == -1 ||
		    exec_err(db->h, "COMMIT", msg, sizeof(msg)) == -1)
			goto fail;
		log_info("%s: migrated to schema version %d", db->path, migs[i].version);
		cur = migs[i].version;
	}
	return 0;
fail:
	log_seterr(err, errlen, __func__, "%s: migration %d: %s", db->path, migs[i].version, msg);
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

struct db *db_open(const char *path, const struct db_migration *migs, size_t n_migs,
                   enum db_sync sync, char *err, size_t errlen)
{
	struct db *db;
	char msg[512];
	int rc;

	if ((db = calloc(1, sizeof(*db))) == NULL || (db->path = strdup(path)) == NULL) {
		log_seterr(err, errlen, __func__, "%s: out of memory", path);
		goto fail;
	}
	rc = sqlite3_open_v2(
	    path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		log_seterr(err, errlen, __func__, "%s: %s", path,
		           db->h != NULL ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_timeout(db->h, DB_BUSY_MS);
	if (set_wal(db, err, errlen) == -1)
		goto fail;
	if (exec_err(db->h, "PRAGMA foreign_keys = ON", msg, sizeof(msg)) == -1 ||
	    exec_err(db->h,
	             sync == DB_SYNC_FULL ? "PRAGMA synchronous = FULL"
	                                  : "PRAGMA synchronous = NORMAL",
	             msg, sizeof(msg)) == -1) {
		log_seterr(err, errlen, __func__, "%s: %s", path, msg);
		goto fail;
	}
	if (migrate(db, migs, n_migs, err, errlen) == -1)
		goto fail;
	return db;
fail:
	db_close(db);
	return NULL;
}

void db_close(struct db *db)
{
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < db->n; i++) {
		sqlite3_finalize(db->cache[i].st);
		free(db->cache[i].sql);
	}
	free(db->cache);
	/* v2: should a statement still be alive, the handle closes when it is finalized. */
	if (db->h != NULL && sqlite3_close_v2(db->h) != SQLITE_OK)
		log_err("%s: close: %s", db->path, sqlite3_errmsg(db->h));
	free(db->path);
	free(db);
}

int db_schema_version(struct db *db)
{
	int v;

	if (db == NULL || query_int(db->h, "PRAGMA user_version", &v) == -1)
		return -1;
	return v;
}

int db_ping(struct db *db)
{
	int v;

	if (db == NULL || query_int(db->h, "SELECT 1", &v) == -1 || v != 1)
		return -1;
	return 0;
}

int db_exec(struct db *db, const char *sql)
{
	char msg[512];

	if (exec_err(db->h, sql, msg, sizeof(msg)) == -1) {
		log_err("%s: %s", db->path, msg);
		return -1;
	}
	return 0;
}

sqlite3_stmt *db_prepare(struct db *db, const char *sql)
{
	struct db_stmt *ncache;
	sqlite3_stmt *st = NULL;
	const char *tail = NULL;
	char *copy = NULL;
	size_t i, ncap;

	for (i = 0; i < db->n; i++) {
		if (strcmp(db->cache[i].sql, sql) == 0) {
			sqlite3_reset(db->cache[i].st);
			sqlite3_clear_bindings(db->cache[i].st);
			return db->cache[i].st;
		}
	}
	if (db->n == DB_CACHE_MAX) {
		log_err("%s: statement cache full (%d statements)", db->path, DB_CACHE_MAX);
		return NULL;
	}
	if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail) !=
	    SQLITE_OK) {
		log_err("%s: prepare: %s", db->path, sqlite3_errmsg(db->h));
		goto fail;
	}
	if (st == NULL) {
		log_err("%s: prepare: no statement in SQL text", db->path);
		goto fail;
	}
	/* Only the first statement would ever run: refuse rather than ignore the rest. */
	while (tail != NULL && *tail != '\0' && isspace((unsigned char)*tail))
		tail++;
	if (tail != NULL && *tail != '\0') {
		log_err("%s: prepare: more than one statement in SQL text", db->path);
		goto fail;
	}
	if (db->n == db->cap) {
		ncap = db->cap > 0 ? db->cap * 2 : 16;
		if ((ncache = realloc(db->cache, ncap * sizeof(*ncache))) == NULL) {
			log_err("%s: out of memory", db->path);
			goto fail;
		}
		db->cache = ncache;
		db->cap = ncap;
	}
	if ((copy = strdup(sql)) == NULL) {
		log_err("%s: out of memory", db->path);
		goto fail;
	}
	db->cache[db->n].sql = copy;
	db->cache[db->n].st = st;
	db->n++;
	return st;
fail:
	sqlite3_finalize(st);
	free(copy);
	return NULL;
}

int db_begin(struct db *db)
{
	return db_exec(db, "BEGIN IMMEDIATE");
}

int db_commit(struct db *db)
{
	return db_exec(db, "COMMIT");
}

int db_rollback(struct db *db)
{
	return db_exec(db, "ROLLBACK");
}

sqlite3 *db_handle(struct db *db)
{
	return db != NULL ? db->h : NULL;
}

const char *db_errmsg(struct db *db)
{
	return db != NULL && db->h != NULL ? sqlite3_errmsg(db->h) : "no database";
}
