/* Unit tests of dmctl's pure parts: how values are shown in tables, the command-line checks,
 * query encoding, campaign stages, the merge order of audit rows and explain's comparison of
 * its choices with the last decision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "../../src/dmctl/dmctl.h"

static json_t *parse(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);

	assert_non_null(j);
	return j;
}

static void check_cell(const char *row_text, const char *key, int flags, const char *want)
{
	json_t *row = parse(row_text);
	struct dmctl_col col = {"H", key, flags};
	char *got = dmctl_cell(row, &col);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
	json_decref(row);
}

static void test_cells(void **state)
{
	(void)state;
	check_cell("{\"a\":\"x\"}", "a", 0, "x");
	check_cell("{\"a\":\"\"}", "a", 0, "-");
	check_cell("{\"a\":null}", "a", 0, "-");
	check_cell("{}", "a", 0, "-");
	check_cell("{\"a\":42}", "a", 0, "42");
	check_cell("{\"a\":true,\"b\":false}", "a", 0, "yes");
	check_cell("{\"a\":true,\"b\":false}", "b", 0, "no");
	check_cell("{\"a\":[\"basic\",\"premium\"]}", "a", 0, "basic,premium");
	check_cell("{\"a\":[50,100]}", "a", 0, "50,100");
	check_cell("{\"a\":[]}", "a", 0, "-");
	check_cell("{\"a\":{}}", "a", 0, "-");
	check_cell("{\"a\":[{\"x\":1}]}", "a", 0, "[{\"x\":1}]");
	check_cell("{\"a\":{\"z\":1,\"b\":\"c\"}}", "a", 0, "{\"b\":\"c\",\"z\":1}");
	/* Times are UTC; 0 is no time. */
	check_cell("{\"ts\":1700000000}", "ts", DMCTL_COL_TIME, "2023-11-14T22:13:20Z");
	check_cell("{\"ts\":0}", "ts", DMCTL_COL_TIME, "0");
	/* Nested members and vendor/name pairs. */
	check_cell("{\"counts\":{\"failed\":3}}", "counts.failed", 0, "3");
	check_cell("{\"counts\":{}}", "counts.failed", 0, "-");
	check_cell("{\"vendor\":\"vendor-a\",\"cdcs\":\"sample-ca\"}", "vendor/cdcs", 0,
	           "vendor-a/sample-ca");
	check_cell("{\"to\":{\"vendor\":\"v\",\"name\":\"n\",\"variant\":\"sw\"}}", "to",
	           DMCTL_COL_CDCS, "v/n");
	/* Without the flag an object stays whole (an audit row's detail names a CDCS too). */
	check_cell("{\"d\":{\"vendor\":\"v\",\"name\":\"n\"}}", "d", 0,
	           "{\"name\":\"n\",\"vendor\":\"v\"}");
	check_cell("{\"from\":\"v/n\"}", "from", DMCTL_COL_CDCS, "v/n");
}

static void test_ids(void **state)
{
	char v[65], n[65];

	(void)state;
	assert_true(dmctl_dm_id_ok("dm-0123456789abcdef01234567"));
	assert_false(dmctl_dm_id_ok("dm-0123456789abcdef0123456"));  /* 23 digits */
	assert_false(dmctl_dm_id_ok("dm-0123456789ABCDEF01234567")); /* upper case */
	assert_false(dmctl_dm_id_ok("hw-0123456789abcdef01234567"));
	assert_true(dmctl_hw_id_ok("hw-never-seen"));
	assert_true(dmctl_hw_id_ok("a:b.c_d"));
	assert_false(dmctl_hw_id_ok("abc"));
	assert_false(dmctl_hw_id_ok("bad id!"));
	assert_true(dmctl_account_ok("acme-1.x_y"));
	assert_false(dmctl_account_ok("bad/account"));
	assert_false(dmctl_account_ok(""));
	assert_false(dmctl_account_ok("a:b"));

	assert_int_equal(dmctl_parse_slot("vendor-a/sample-ca", v, n), 0);
	assert_string_equal(v, "vendor-a");
	assert_string_equal(n, "sample-ca");
	assert_int_equal(dmctl_parse_slot("no-slash", v, n), -1);
	assert_int_equal(dmctl_parse_slot("/x", v, n), -1);
	assert_int_equal(dmctl_parse_slot("x/", v, n), -1);
	assert_int_equal(dmctl_parse_slot("a/b/c", v, n), -1);
	assert_int_equal(dmctl_parse_slot("../x", v, n), -1);
}

static void test_query(void **state)
{
	char p[64] = "/v1/admin/audit";

	(void)state;
	assert_int_equal(dmctl_query_add(p, sizeof(p), "subject", "vendor-a/x y"), 0);
	assert_int_equal(dmctl_query_add(p, sizeof(p), "action", NULL), 0);
	assert_int_equal(dmctl_query_add(p, sizeof(p), "limit", "5"), 0);
	assert_string_equal(p, "/v1/admin/audit?subject=vendor-a%2Fx%20y&limit=5");
	/* No room: refused, never cut. */
	assert_int_equal(dmctl_query_add(p, sizeof(p), "after", "123456789012345678901234567"), -1);
	assert_string_equal(p, "/v1/admin/audit?subject=vendor-a%2Fx%20y&limit=5");
}

static void check_stages(const char *text, const char *want)
{
	json_t *got = dmctl_campaign_stages(text);
	char *s;

	if (want == NULL) {
		assert_null(got);
		return;
	}
	assert_non_null(got);
	s = json_dumps(got, JSON_COMPACT);
	assert_string_equal(s, want);
	free(s);
	json_decref(got);
}

static void test_stages(void **state)
{
	(void)state;
	check_stages("50,100", "[50,100]");
	check_stages("100", "[100]");
	check_stages("1,2,3,4,5,6,7,8,9,10", "[1,2,3,4,5,6,7,8,9,10]");
	check_stages("1,2,3,4,5,6,7,8,9,10,11", NULL);
	check_stages("50,40", NULL);
	check_stages("50,50", NULL);
	check_stages("0,100", NULL);
	check_stages("50,101", NULL);
	check_stages("50,", NULL);
	check_stages(",50", NULL);
	check_stages("", NULL);
	check_stages("50;100", NULL);
	check_stages("5x", NULL);
}

static void test_audit_sort(void **state)
{
	json_t *e = parse("[{\"ts\":20,\"role\":\"dm-mss\",\"seq\":9},"
	                  "{\"ts\":10,\"role\":\"dm-mss\",\"seq\":7},"
	                  "{\"ts\":20,\"role\":\"cdcs-pss\",\"seq\":3},"
	                  "{\"ts\":10,\"role\":\"dm-mss\",\"seq\":2}]");
	char *s;

	(void)state;
	dmctl_audit_sort(e);
	s = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "[{\"role\":\"dm-mss\",\"seq\":2,\"ts\":10},"
	                       "{\"role\":\"dm-mss\",\"seq\":7,\"ts\":10},"
	                       "{\"role\":\"cdcs-pss\",\"seq\":3,\"ts\":20},"
	                       "{\"role\":\"dm-mss\",\"seq\":9,\"ts\":20}]");
	free(s);
	json_decref(e);
}

static void check_diff(const char *choices, const char *install, const char *want)
{
	json_t *c = parse(choices), *i = parse(install), *d = dmctl_explain_diff(c, i);
	char *s;

	assert_non_null(d);
	s = json_dumps(d, JSON_COMPACT);
	assert_string_equal(s, want);
	free(s);
	json_decref(d);
	json_decref(c);
	json_decref(i);
}

static void test_explain_diff(void **state)
{
	(void)state;
	/* Same CDCSs, variants and rights (rights in another order): they agree. */
	check_diff("[{\"vendor\":\"a\",\"name\":\"ca\",\"variant\":\"sw\","
	           "\"rights\":[\"basic\",\"premium\"],\"rule\":\"r\",\"min_version\":1}]",
	           "[{\"vendor\":\"a\",\"name\":\"ca\",\"variant\":\"sw\","
	           "\"rights\":[\"premium\",\"basic\"],\"version_number\":3}]",
	           "[]");
	check_diff("[]", "[]", "[]");
	/* Variant and rights differ; one is new, one is gone. */
	check_diff("[{\"vendor\":\"a\",\"name\":\"ca\",\"variant\":\"hw\",\"rights\":[\"uhd\"]},"
	           "{\"vendor\":\"b\",\"name\":\"ca\",\"variant\":\"sw\",\"rights\":[]}]",
	           "[{\"vendor\":\"a\",\"name\":\"ca\",\"variant\":\"sw\",\"rights\":[\"basic\"]},"
	           "{\"vendor\":\"b\",\"name\":\"drm\",\"variant\":\"sw\",\"rights\":[]}]",
	           "[\"a/ca: variant hw now, sw in the last decision\","
	           "\"a/ca: rights uhd now, basic in the last decision\","
	           "\"b/ca: chosen now, not in the last decision\","
	           "\"b/drm: in the last decision, not chosen now\"]");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cells),      cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_query),      cmocka_unit_test(test_stages),
	    cmocka_unit_test(test_audit_sort), cmocka_unit_test(test_explain_diff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
