/* Unit tests for db: migrations, pragmas, statement cache, transactions. */
#include <sys/stat.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "opendm/db.h"
#include "testutil.h"

struct tctx {
	char dir[256];
	char path[512];
	char err[1024];
};

static const struct db_migration migs[] = {
    {1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);"},
    /* A data migration: re-running it would insert a second row. */
    {2, "INSERT INTO t (v) VALUES ('seed');"},
    {3, "CREATE TABLE u (id INTEGER PRIMARY KEY, t_id INTEGER NOT NULL REFERENCES t(id));"
        "CREATE INDEX u_t ON u (t_id);"},
};

static const struct db_migration bad_migs[] = {
    {1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);"},
    {2, "INSERT INTO t (v) VALUES ('seed');"},
    /* The first statement works, the second fails: the first must be undone. */
    {3, "INSERT INTO t (v) VALUES ('partial'); CREATE TABLE t (x);"},
};

static const struct db_migration unordered[] = {
    {2, "CREATE TABLE a (x);"},
    {1, "CREATE TABLE b (x);"},
};

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	if (tu_tmpdir(t->dir, sizeof(t->dir), "db") == -1) {
		free(t);
		return -1;
	}
	snprintf(t->path, sizeof(t->path), "%s/test.db", t->dir);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tctx *t = *state;

	tu_rmtree(t->dir);
	free(t);
	return 0;
}

static int int_query(struct db *db, const char *sql)
{
	sqlite3_stmt *st = db_prepare(db, sql);
	int v;

	assert_non_null(st);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return v;
}

static void test_fresh_and_reopen(void **state)
{
	struct tctx *t = *state;
	struct db *db;

	db = db_open(t->path, migs, 3, DB_SYNC_FULL, t->err, sizeof(t->err));
	assert_non_null(db);
	assert_int_equal(db_schema_version(db), 3);
	assert_int_equal(int_query(db, "SELECT count(*) FROM t"), 1);
	assert_int_equal(db_ping(db), 0);
	db_close(db);

	/* Re-opening runs nothing again. */
	db = db_open(t->path, migs, 3, DB_SYNC_FULL, t->err, sizeof(t->err));
	assert_non_null(db);
	assert_int_equal(db_schema_version(db), 3);
	assert_int_equal(int_query(db, "SELECT count(*) FROM t"), 1);
	db_close(db);
}

static void test_incremental(void **state)
{
	struct tctx *t = *state;
	struct db *db;

	db = db_open(t->path, migs, 2, DB_SYNC_NORMAL, t->err, sizeof(t->err));
	assert_non_null(db);
	assert_int_equal(db_schema_version(db), 2);
	db_close(db);
	/* A newer build applies only what is new. */
	db = db_open(t->path, migs, 3, DB_SYNC_NORMAL, t->err, sizeof(t->err));
	assert_non_null(db);
	assert_int_equal(db_schema_version(db), 3);
	assert_int_equal(int_query(db, "SELECT count(*) FROM t"), 1);
	assert_int_equal(int_query(db, "SELECT count(*) FROM sqlite_master WHERE name = 'u'"), 1);
	db_close(db);
}

static void test_failed_migration(void **state)
{
	struct tctx *t = *state;
	char want[1024];
	struct db *db;

	db = db_open(t->path, bad_migs, 3, DB_SYNC_FULL, t->err, sizeof(t->err));
	assert_null(db);
	snprintf(want, sizeof(want), "%s: migration 3: ", t->path);
	assert_memory_equal(t->err, want, strlen(want));
	assert_non_null(strstr(t->err, "already exists"));

	/* Versions 1 and 2 stay applied, and nothing of version 3 is left behind. */
	db = db_open(t->path, bad_migs, 2, DB_SYNC_FULL, t->err, sizeof(t->err));
	assert_non_null(db);
	assert_int_equal(db_schema_version(db), 2);
	assert_int_equal(int_query(db, "SELECT count(*) FROM t"), 1);
	assert_int_equal(int_query(db, "SELECT count(*) FROM t WHERE v = 'partial'"), 0);
	db_close(db);
}

static void test_newer_schema(void **state)
{
	struct tctx *t = *state;
	char want[1024];
	sqlite3 *h;

	assert_int_equal(sqlite3_open(t->path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "PRAGMA user_version = 7", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	assert_null(db_open(t->path, migs, 3, DB_SYNC_FULL, t->err, sizeof(t->err)));
	snprintf(want, sizeof(want), "%s: schema version 7 is newer than this build (3)", t->path);
	assert_string_equal(t->err, want);
	/* Refused, not touched. */
	assert_int_equal(sqlite3_open(t->path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "SELECT * FROM t", NULL, NULL, NULL), SQLITE_ERROR);
	sqlite3_close(h);
}

static void test_bad_migration_table(void **state)
{
	struct tctx *t = *state;

	assert_null(db_open(t->path, unordered, 2, DB_SYNC_FULL, t->err, sizeof(t->err)));
	assert_non_null(strstr(t->err, t->path));
	assert_non_null(strstr(t->err, "out of order"));
}

static void test_open_fail(void **state)
{
	struct tctx *t = *state;
	char p[600];

	snprintf(p, sizeof(p), "%s/no/such/dir/x.db", t->dir);
	assert_null(db_open(p, migs, 3, DB_SYNC_FULL, t->err, sizeof(t->err)));
	assert_memory_equal(t->err, p, strlen(p));
	assert_null(db_open(p, migs, 3, DB_SYNC_FULL, NULL, 0));
}

static void test_no_migrations(void **state)
{
	struct tctx *t = *state;
	struct db *db;

	db = db_open(t->path, NULL, 0, DB_SYNC_NORMAL, t->err, sizeof(t->err));
	assert_non_null(db);
	assert_int_equal(db_schema_version(db), 0);
	db_close(db);
}

static void test_pragmas(void **state)
{
	struct tctx *t = *state;
	sqlite3_stmt *st;
	struct db *db;

	db = db_open(t->path, migs, 3, DB_SYNC_FULL, t->err, sizeof(t->err));
	assert_non_null(db);
	st = db_prepare(db, "PRAGMA journal_mode");
	assert_non_null(st);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_reset(st);
	assert_int_equal(int_query(db, "PRAGMA foreign_keys"), 1);
	assert_int_equal(int_query(db, "PRAGMA synchronous"), 2);
	assert_int_equal(int_query(db, "PRAGMA busy_timeout"), 5000);
	/* Foreign keys are enforced, not just declared. */
	assert_int_equal(db_exec(db, "INSERT INTO u (t_id) VALUES (999)"), -1);
	assert_non_null(strstr(db_errmsg(db), "FOREIGN KEY"));
	db_close(db);

	db = db_open(t->path, migs, 3, DB_SYNC_NORMAL, t->err, sizeof(t->err));
	assert_non_null(db);
	assert_int_equal(int_query(db, "PRAGMA synchronous"), 1);
	db_close(db);
}

static void test_stmt_cache(void **state)
{
	struct tctx *t = *state;
	sqlite3_stmt *a, *b, *c;
	char copy[64];
	struct db *db;

	db = db_open(t->path, migs, 3, DB_SYNC_FULL, t->err, sizeof(t->err));
	assert_non_null(db);
	a = db_prepare(db, "SELECT v FROM t WHERE id = ?");
	assert_non_null(a);
	b = db_prepare(db, "SELECT v FROM t WHERE id = ?");
	assert_ptr_equal(a, b);
	/* Keyed by the text, not by where the text lives. */
	snprintf(copy, sizeof(copy), "%s", "SELECT v FROM t WHERE id = ?");
	assert_ptr_equal(db_prepare(db, copy), a);
	c = db_prepare(db, "SELECT v FROM t WHERE id = ?1 OR 0");
	assert_non_null(c);
	assert_ptr_not_equal(a, c);

	/* Handed back reset and unbound, even if left mid-step and bound. */
	assert_int_equal(sqlite3_bind_int(a, 1, 1), SQLITE_OK);
	assert_int_equal(sqlite3_step(a), SQLITE_ROW);
	a = db_prepare(db, "SELECT v FROM t WHERE id = ?");
	assert_int_equal(sqlite3_step(a), SQLITE_DONE);
	sqlite3_reset(a);

	assert_null(db_prepare(db, "SELEKT nonsense"));
	assert_null(db_prepare(db, "SELECT 1; SELECT 2"));
	assert_null(db_prepare(db, "   "));
	assert_non_null(db_prepare(db, "SELECT 1;  \n"));
	db_close(db);
}

static void test_transactions(void **state)
{
	struct tctx *t = *state;
	struct db *db;

	db = db_open(t->path, migs, 3, DB_SYNC_FULL, t->err, sizeof(t->err));
	assert_non_null(db);
	assert_int_equal(db_begin(db), 0);
	assert_int_equal(db_exec(db, "INSERT INTO t (v) VALUES ('gone')"), 0);
	assert_int_equal(db_rollback(db), 0);
	assert_int_equal(int_query(db, "SELECT count(*) FROM t WHERE v = 'gone'"), 0);

	assert_int_equal(db_begin(db), 0);
	assert_int_equal(db_exec(db, "INSERT INTO t (v) VALUES ('kept')"), 0);
	assert_int_equal(db_begin(db), -1);
	assert_int_equal(db_commit(db), 0);
	assert_int_equal(db_commit(db), -1);
	assert_int_equal(db_rollback(db), -1);
	db_close(db);

	/* Committed means on disk: visible to a fresh handle. */
	db = db_open(t->path, migs, 3, DB_SYNC_FULL, t->err, sizeof(t->err));
	assert_non_null(db);
	assert_int_equal(int_query(db, "SELECT count(*) FROM t WHERE v = 'kept'"), 1);
	assert_int_equal(db_exec(db, "NOT SQL"), -1);
	assert_non_null(db_handle(db));
	db_close(db);
	db_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_fresh_and_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_incremental, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_migration, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_migration_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_fail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_migrations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pragmas, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stmt_cache, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
