/* Unit tests for replay: new and replayed jtis, purge, rollback with the caller's
 * transaction, and the error paths. */
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
#include "opendm/replay.h"

struct tctx {
	char dir[256];
	char path[512];
	char err[1024];
	struct db *db;
};

static const struct db_migration migs[] = {
    {1, REPLAY_TABLE_SQL},
};

/* A database where the role forgot the table: every call must fail, not report "new". */
static const struct db_migration no_table[] = {
    {1, "CREATE TABLE other (x INTEGER);"},
};

static int tctx_open(void **state, const struct db_migration *m)
{
	const char *base = getenv("ODM_TEST_TMP");
	struct tctx *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	if (base != NULL && base[0] != '\0') {
		mkdir(base, 0700);
		snprintf(t->dir, sizeof(t->dir), "%s/replay.XXXXXX", base);
	} else
		snprintf(t->dir, sizeof(t->dir), "/tmp/odm-replay.XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->path, sizeof(t->path), "%s/test.db", t->dir);
	if ((t->db = db_open(t->path, m, 1, DB_SYNC_FULL, t->err, sizeof(t->err))) == NULL) {
		rmdir(t->dir);
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int setup(void **state)
{
	return tctx_open(state, migs);
}

static int setup_no_table(void **state)
{
	return tctx_open(state, no_table);
}

static int teardown(void **state)
{
	struct tctx *t = *state;
	char p[600];

	db_close(t->db);
	snprintf(p, sizeof(p), "%s", t->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-wal", t->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", t->path);
	unlink(p);
	rmdir(t->dir);
	free(t);
	return 0;
}

static int count(struct db *db)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT count(*) FROM used_token");
	int v;

	assert_non_null(st);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return v;
}

static void test_new_then_replay(void **state)
{
	struct tctx *t = *state;

	assert_int_equal(replay_record(t->db, "jti-a", 1000), 0);
	assert_int_equal(replay_record(t->db, "jti-a", 1000), 1);
	/* A replay with another exp is still a replay. */
	assert_int_equal(replay_record(t->db, "jti-a", 99999), 1);
	assert_int_equal(replay_record(t->db, "jti-b", 1000), 0);
	assert_int_equal(count(t->db), 2);
}

static void test_survives_reopen(void **state)
{
	struct tctx *t = *state;

	assert_int_equal(replay_record(t->db, "jti-persist", 5000), 0);
	db_close(t->db);
	t->db = db_open(t->path, migs, 1, DB_SYNC_FULL, t->err, sizeof(t->err));
	assert_non_null(t->db);
	assert_int_equal(replay_record(t->db, "jti-persist", 5000), 1);
}

static void test_in_caller_transaction(void **state)
{
	struct tctx *t = *state;

	/* Rolled back with the caller's transaction: the token is usable again. */
	assert_int_equal(db_begin(t->db), 0);
	assert_int_equal(replay_record(t->db, "jti-tx", 1000), 0);
	assert_int_equal(replay_record(t->db, "jti-tx", 1000), 1);
	assert_int_equal(db_rollback(t->db), 0);
	assert_int_equal(count(t->db), 0);

	assert_int_equal(db_begin(t->db), 0);
	assert_int_equal(replay_record(t->db, "jti-tx", 1000), 0);
	assert_int_equal(db_commit(t->db), 0);
	assert_int_equal(replay_record(t->db, "jti-tx", 1000), 1);
}

static void test_purge(void **state)
{
	struct tctx *t = *state;

	assert_int_equal(replay_record(t->db, "old-1", 100), 0);
	assert_int_equal(replay_record(t->db, "old-2", 199), 0);
	assert_int_equal(replay_record(t->db, "edge", 200), 0);
	assert_int_equal(replay_record(t->db, "fresh", 500), 0);
	assert_int_equal(replay_purge(t->db, 200), 2);
	assert_int_equal(count(t->db), 2);
	/* Still current: still a replay. */
	assert_int_equal(replay_record(t->db, "edge", 200), 1);
	assert_int_equal(replay_record(t->db, "fresh", 500), 1);
	assert_int_equal(replay_record(t->db, "old-1", 100), 0);
	assert_int_equal(replay_purge(t->db, 1000), 3);
	assert_int_equal(replay_purge(t->db, 1000), 0);
	assert_int_equal(count(t->db), 0);
}

static void test_bad_input(void **state)
{
	struct tctx *t = *state;
	char big[REPLAY_JTI_MAX + 2];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(replay_record(NULL, "x", 1), -1);
	assert_int_equal(replay_record(t->db, NULL, 1), -1);
	assert_int_equal(replay_record(t->db, "", 1), -1);
	assert_int_equal(replay_record(t->db, big, 1), -1);
	big[REPLAY_JTI_MAX] = '\0';
	assert_int_equal(replay_record(t->db, big, 1), 0);
	assert_int_equal(replay_purge(NULL, 1), -1);
	assert_int_equal(count(t->db), 1);
}

static void test_table_missing(void **state)
{
	struct tctx *t = *state;

	assert_int_equal(replay_record(t->db, "jti-a", 1000), -1);
	assert_int_equal(replay_record(t->db, "jti-a", 1000), -1);
	assert_int_equal(replay_purge(t->db, 1000), -1);
	/* The handle stays usable for the rest of the role's work. */
	assert_int_equal(db_ping(t->db), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_new_then_replay, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_in_caller_transaction, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_table_missing, setup_no_table, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
