/*
 * Unit tests for src/dm_iss/check.c and the DM id listing of store.c: hw id and account
 * shapes, a DM id's status, and the rows operators and the CDCS daemons are given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opendm/db.h"
#include "../../src/dm_iss/dm_iss.h"
#include "testutil.h"

#define NOW 1700000000

struct tctx {
	char dir[256];
	char path[512];
	struct db *db;
};

static void test_hwid_account(void **state)
{
	char long_id[DM_ISS_HWID_MAX + 2];

	(void)state;
	assert_true(dm_iss_hwid_ok("hw-0001"));
	assert_true(dm_iss_hwid_ok("AB:cd_9.x"));
	assert_false(dm_iss_hwid_ok("abc"));
	assert_false(dm_iss_hwid_ok("hw 0001"));
	assert_false(dm_iss_hwid_ok("hw/0001"));
	assert_false(dm_iss_hwid_ok("hw-\xc3\xa9t\xc3\xa9"));
	assert_false(dm_iss_hwid_ok(NULL));
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[DM_ISS_HWID_MAX] = '\0';
	assert_true(dm_iss_hwid_ok(long_id));
	long_id[DM_ISS_HWID_MAX] = 'a';
	long_id[DM_ISS_HWID_MAX + 1] = '\0';
	assert_false(dm_iss_hwid_ok(long_id));

	assert_true(dm_iss_account_ok("acme-0001"));
	assert_true(dm_iss_account_ok("a"));
	assert_false(dm_iss_account_ok(""));
	assert_false(dm_iss_account_ok("acme:1"));
	assert_false(dm_iss_account_ok(NULL));
}

static void test_status(void **state)
{
	(void)state;
	assert_string_equal(dm_iss_dm_status(0, NOW + 1, NOW, 0), "active");
	assert_string_equal(dm_iss_dm_status(0, NOW, NOW, 0), "active");
	assert_string_equal(dm_iss_dm_status(0, NOW - 1, NOW, 0), "expired");
	assert_string_equal(dm_iss_dm_status(1, NOW + 1, NOW, 0), "revoked");
	assert_string_equal(dm_iss_dm_status(0, NOW + 1, NOW, 1), "revoked");
	/* Revoked is final: it wins over expired. */
	assert_string_equal(dm_iss_dm_status(0, NOW - 1, NOW, 1), "revoked");
	assert_string_equal(dm_iss_dm_status(1, NOW - 1, NOW, 0), "revoked");
}

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));
	char err[512];
	size_t n = 0;

	assert_non_null(t);
	assert_int_equal(tu_tmpdir(t->dir, sizeof(t->dir), "dm_iss_store"), 0);
	snprintf(t->path, sizeof(t->path), "%s/dm-iss.db", t->dir);
	while (dm_iss_migrations[n].sql != NULL)
		n++;
	t->db = db_open(t->path, dm_iss_migrations, n, DB_SYNC_NORMAL, err, sizeof(err));
	if (t->db == NULL)
		fail_msg("db_open: %s", err);
	/* Two DM ids for hw-a (the newer inserted first), one for hw-b. */
	assert_int_equal(dm_iss_store_insert(t->db, "02", "dm-bbb", "hw-a", "jti-2", "fp", "pem",
	                                     NOW + 100, NOW - 10),
	                 0);
	assert_int_equal(dm_iss_store_insert(t->db, "01", "dm-aaa", "hw-a", "jti-1", "fp", "pem",
	                                     NOW - 5, NOW - 20),
	                 0);
	assert_int_equal(dm_iss_store_insert(t->db, "03", "dm-ccc", "hw-b", "jti-3", "fp", "pem",
	                                     NOW + 100, NOW - 30),
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

static void assert_json(json_t *j, const char *want)
{
	char *text;

	assert_non_null(j);
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_non_null(text);
	assert_string_equal(text, want);
	free(text);
	json_decref(j);
}

static void test_dms(void **state)
{
	struct tctx *t = *state;

	/* Oldest first; the older certificate has expired. */
	assert_json(dm_iss_store_dms(t->db, "hw-a", NULL, NOW),
	            "[{\"dm_id\":\"dm-aaa\",\"expires_at\":1699999995,\"hw_id\":\"hw-a\","
	            "\"issued_at\":1699999980,\"status\":\"expired\"},"
	            "{\"dm_id\":\"dm-bbb\",\"expires_at\":1700000100,\"hw_id\":\"hw-a\","
	            "\"issued_at\":1699999990,\"status\":\"active\"}]");
	assert_json(dm_iss_store_dms(t->db, NULL, "dm-ccc", NOW),
	            "[{\"dm_id\":\"dm-ccc\",\"expires_at\":1700000100,\"hw_id\":\"hw-b\","
	            "\"issued_at\":1699999970,\"status\":\"active\"}]");
	assert_json(dm_iss_store_dms(t->db, "hw-none", NULL, NOW), "[]");
	assert_json(dm_iss_store_dms(t->db, NULL, "dm-none", NOW), "[]");
	assert_int_equal(db_exec(t->db, "UPDATE issued_cert SET revoked_at = 1 WHERE dm_id = "
	                                "'dm-ccc'"),
	                 0);
	assert_json(dm_iss_store_dms(t->db, "hw-b", NULL, NOW),
	            "[{\"dm_id\":\"dm-ccc\",\"expires_at\":1700000100,\"hw_id\":\"hw-b\","
	            "\"issued_at\":1699999970,\"status\":\"revoked\"}]");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hwid_account),
	    cmocka_unit_test(test_status),
	    cmocka_unit_test_setup_teardown(test_dms, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
