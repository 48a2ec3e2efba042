/*
 * Unit tests for src/dm_mss/store.c and query.c: an operator's status change commits with its
 * audit row or not at all, and listing rows become JSON by column type.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "opendm/audit.h"
#include "opendm/db.h"
#include "../../src/dm_mss/dm_mss.h"
#include "testutil.h"

struct tctx {
	char dir[256];
	char path[512];
	struct db *db;
};

/* check.c's authorization helpers want the role state; not used by what is tested here. */
struct dm_mss_state *dm_mss_state(const struct daemon_ctx *d)
{
	(void)d;
	return NULL;
}

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));
	char err[512];
	size_t n = 0;

	assert_non_null(t);
	assert_int_equal(tu_tmpdir(t->dir, sizeof(t->dir), "dm_mss_store"), 0);
	snprintf(t->path, sizeof(t->path), "%s/dm-mss.db", t->dir);
	while (dm_mss_migrations[n].sql != NULL)
		n++;
	t->db = db_open(t->path, dm_mss_migrations, n, DB_SYNC_NORMAL, err, sizeof(err));
	if (t->db == NULL)
		fail_msg("db_open: %s", err);
	if (audit_init(t->db, err, sizeof(err)) == -1)
		fail_msg("audit_init: %s", err);
	assert_int_equal(db_exec(t->db, "INSERT INTO subscriber (account, device_limit, created_at)"
	                                " VALUES ('acme-1', 3, 100), ('acme-2', 5, 90);"
	                                "INSERT INTO device (hw_id, subscriber_id, platform,"
	                                " created_at) VALUES ('hw-0001', 1, 'linux-x86_64', 200);"),
	                 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tctx *t = *state;

	db_close(t->db);
	tu_rmtree(t->dir);
	free(t);
	return 0;
}

/* The single text (or integer as text) result of sql, "" if no row. */
static void query1(struct tctx *t, const char *sql, char *out, size_t len)
{
	sqlite3_stmt *s = db_prepare(t->db, sql);

	assert_non_null(s);
	out[0] = '\0';
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL)
		snprintf(out, len, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
}

static void test_status_set_with_audit(void **state)
{
	struct tctx *t = *state;
	char from[16] = "", buf[256];

	assert_int_equal(dm_mss_status_set(t->db, "rid-1", "operator:alice",
	                                   &dm_mss_subscriber_status_kind, "acme-1", "suspended",
	                                   1000, from, sizeof(from)),
	                 1);
	assert_string_equal(from, "active");
	query1(t, "SELECT status FROM subscriber WHERE account = 'acme-1'", buf, sizeof(buf));
	assert_string_equal(buf, "suspended");
	query1(t, "SELECT status FROM subscriber WHERE account = 'acme-2'", buf, sizeof(buf));
	assert_string_equal(buf, "active");
	query1(t,
	       "SELECT rid || ' ' || actor || ' ' || action || ' ' || subject || ' ' || detail"
	       " FROM audit",
	       buf, sizeof(buf));
	assert_string_equal(buf, "rid-1 operator:alice subscriber.status acme-1 "
	                         "{\"from\":\"active\",\"status\":\"suspended\"}");
}

static void test_status_set_unknown_writes_nothing(void **state)
{
	struct tctx *t = *state;
	char from[16] = "", buf[64];

	assert_int_equal(dm_mss_status_set(t->db, "rid-2", "operator:alice",
	                                   &dm_mss_cpe_status_kind, "no-such-cpe", "inactive", 1000,
	                                   from, sizeof(from)),
	                 0);
	query1(t, "SELECT COUNT(*) FROM audit", buf, sizeof(buf));
	assert_string_equal(buf, "0");
	/* No transaction left open: the next one begins. */
	assert_int_equal(db_begin(t->db), 0);
	assert_int_equal(db_rollback(t->db), 0);
}

/* Without its audit row the change does not happen either. */
static void test_status_set_rolls_back_without_audit(void **state)
{
	struct tctx *t = *state;
	char from[16] = "", buf[64];

	assert_int_equal(db_exec(t->db, "DROP TABLE audit"), 0);
	assert_int_equal(dm_mss_status_set(t->db, "rid-3", "operator:alice",
	                                   &dm_mss_device_revoke_kind, "hw-0001", "revoked", 1000,
	                                   from, sizeof(from)),
	                 -1);
	query1(t, "SELECT status || ' ' || COALESCE(revoked_at, 'none') FROM device", buf,
	       sizeof(buf));
	assert_string_equal(buf, "active none");
}

static void test_revoke_keeps_first_time(void **state)
{
	struct tctx *t = *state;
	char from[16] = "", buf[64];

	assert_int_equal(dm_mss_status_set(t->db, "r", "a", &dm_mss_device_revoke_kind, "hw-0001",
	                                   "revoked", 1000, from, sizeof(from)),
	                 1);
	assert_string_equal(from, "active");
	assert_int_equal(dm_mss_status_set(t->db, "r", "a", &dm_mss_device_revoke_kind, "hw-0001",
	                                   "revoked", 2000, from, sizeof(from)),
	                 1);
	assert_string_equal(from, "revoked");
	query1(t, "SELECT status || ' ' || revoked_at FROM device", buf, sizeof(buf));
	assert_string_equal(buf, "revoked 1000");
	query1(t, "SELECT COUNT(*) FROM audit WHERE action = 'device.revoke'", buf, sizeof(buf));
	assert_string_equal(buf, "2");
}

static void test_rows(void **state)
{
	static const char *const keys[] = {"account", "device_limit", "none", NULL};
	struct tctx *t = *state;
	sqlite3_stmt *s;
	json_t *rows;
	char *text;

	s = db_prepare(t->db,
	               "SELECT account, device_limit, NULL FROM subscriber ORDER BY account");
	assert_non_null(s);
	assert_non_null(rows = dm_mss_rows(t->db, s, keys));
	text = json_dumps(rows, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "[{\"account\":\"acme-1\",\"device_limit\":3,\"none\":null},"
	                          "{\"account\":\"acme-2\",\"device_limit\":5,\"none\":null}]");
	free(text);
	json_decref(rows);

	s = db_prepare(t->db, "SELECT account FROM subscriber ORDER BY account DESC LIMIT ?1");
	assert_non_null(s);
	sqlite3_bind_int(s, 1, 1);
	assert_non_null(rows = dm_mss_rows(t->db, s, NULL));
	text = json_dumps(rows, JSON_COMPACT);
	assert_string_equal(text, "[\"acme-2\"]");
	free(text);
	json_decref(rows);

	s = db_prepare(t->db, "SELECT hw_id FROM device WHERE platform = 'none'");
	assert_non_null(s);
	assert_non_null(rows = dm_mss_rows(t->db, s, NULL));
	assert_int_equal(json_array_size(rows), 0);
	json_decref(rows);
}

static void test_device_status_ok(void **state)
{
	(void)state;
	assert_true(dm_mss_device_status_ok("active"));
	assert_true(dm_mss_device_status_ok("revoked"));
	assert_false(dm_mss_device_status_ok("Active"));
	assert_false(dm_mss_device_status_ok("suspended"));
	assert_false(dm_mss_device_status_ok(""));
	assert_false(dm_mss_device_status_ok(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_status_set_with_audit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status_set_unknown_writes_nothing, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_status_set_rolls_back_without_audit, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_revoke_keeps_first_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rows, setup, teardown),
	    cmocka_unit_test(test_device_status_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
