/* Unit tests for schema: every accepted type and every error path, with exact messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "opendm/schema.h"

struct inner {
	char *name;
	int64_t n;
};

struct target {
	char *s;
	int64_t i;
	int b;
	struct inner in;
	struct schema_strlist list;
	json_t *j;
	char *opt;
};

static const struct schema_field inner_fields[] = {
    {"name", SCHEMA_STRING, offsetof(struct inner, name), 1, 0, 16, 0, NULL},
    {"n", SCHEMA_INT, offsetof(struct inner, n), 0, -5, 5, 0, NULL},
    SCHEMA_END,
};

static const struct schema_field fields[] = {
    {"s", SCHEMA_STRING, offsetof(struct target, s), 1, 1, 8, 0, NULL},
    {"i", SCHEMA_INT, offsetof(struct target, i), 1, 1, 65535, 0, NULL},
    {"b", SCHEMA_BOOL, offsetof(struct target, b), 0, 0, 0, 0, NULL},
    {"in", SCHEMA_OBJECT, offsetof(struct target, in), 1, 0, 0, 0, inner_fields},
    {"list", SCHEMA_STRLIST, offsetof(struct target, list), 0, 1, 4, 3, NULL},
    {"j", SCHEMA_JSON, offsetof(struct target, j), 0, 0, 0, 0, NULL},
    {"opt", SCHEMA_STRING, offsetof(struct target, opt), 0, 0, 32, 0, NULL},
    SCHEMA_END,
};

static const char *valid = "{\"s\":\"abc\",\"i\":443,\"b\":true,\"in\":{\"name\":\"x\",\"n\":-5},"
                           "\"list\":[\"a\",\"bcd\"],\"j\":{\"k\":[1,2]},\"opt\":\"o\"}";

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &e);

	if (j == NULL)
		fail_msg("bad test JSON: %s: %s", text, e.text);
	return j;
}

/* Decode text, expect failure with exactly msg, and leave nothing allocated. */
static void expect_error(const char *text, const char *msg)
{
	struct target t;
	char err[256];
	json_t *j = parse(text);

	memset(&t, 0, sizeof(t));
	strcpy(err, "unset");
	assert_int_equal(schema_decode(j, fields, &t, "body", err, sizeof(err)), -1);
	assert_string_equal(err, msg);
	schema_free(fields, &t);
	assert_null(t.s);
	assert_null(t.in.name);
	assert_null(t.list.v);
	assert_int_equal(t.list.n, 0);
	assert_null(t.j);
	json_decref(j);
}

static void test_valid(void **state)
{
	struct target t;
	char err[256];
	json_t *j = parse(valid), *sub;

	memset(&t, 0, sizeof(t));
	assert_int_equal(schema_decode(j, fields, &t, "body", err, sizeof(err)), 0);
	assert_string_equal(t.s, "abc");
	assert_int_equal(t.i, 443);
	assert_int_equal(t.b, 1);
	assert_string_equal(t.in.name, "x");
	assert_int_equal(t.in.n, -5);
	assert_int_equal(t.list.n, 2);
	assert_string_equal(t.list.v[0], "a");
	assert_string_equal(t.list.v[1], "bcd");
	sub = json_object_get(j, "j");
	/* A new reference to the very same value, not a copy. */
	assert_ptr_equal(t.j, sub);
	assert_int_equal(sub->refcount, 2);
	assert_string_equal(t.opt, "o");
	/* Strings are copies, independent of the JSON. */
	assert_ptr_not_equal(t.s, json_string_value(json_object_get(j, "s")));
	schema_free(fields, &t);
	assert_int_equal(sub->refcount, 1);
	assert_null(t.s);
	assert_null(t.in.name);
	assert_null(t.list.v);
	assert_null(t.j);
	assert_null(t.opt);
	/* Twice is harmless. */
	schema_free(fields, &t);
	json_decref(j);
}

static void test_defaults_kept(void **state)
{
	struct target t;
	char err[256];
	json_t *j = parse("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"\"},\"list\":[]}");

	memset(&t, 0, sizeof(t));
	t.b = 1;
	t.in.n = 3;
	assert_int_equal(schema_decode(j, fields, &t, "body", err, sizeof(err)), 0);
	assert_int_equal(t.b, 1);
	assert_int_equal(t.in.n, 3);
	assert_string_equal(t.in.name, "");
	assert_int_equal(t.list.n, 0);
	assert_null(t.j);
	assert_null(t.opt);
	schema_free(fields, &t);
	json_decref(j);
}

static void test_redecode_frees_old(void **state)
{
	struct target t;
	char err[256];
	json_t *j = parse(valid);

	memset(&t, 0, sizeof(t));
	assert_int_equal(schema_decode(j, fields, &t, "body", err, sizeof(err)), 0);
	/* Values already held are replaced, not leaked (ASan checks). */
	assert_int_equal(schema_decode(j, fields, &t, "body", err, sizeof(err)), 0);
	assert_int_equal(json_object_get(j, "j")->refcount, 2);
	schema_free(fields, &t);
	json_decref(j);
}

static void test_root(void **state)
{
	struct target t;
	char err[256];
	json_t *a = parse("[1]");

	memset(&t, 0, sizeof(t));
	assert_int_equal(schema_decode(a, fields, &t, "body", err, sizeof(err)), -1);
	assert_string_equal(err, "body: expected a JSON object");
	assert_int_equal(schema_decode(NULL, fields, &t, "cfg.json", err, sizeof(err)), -1);
	assert_string_equal(err, "cfg.json: expected a JSON object");
	assert_int_equal(schema_decode(NULL, fields, &t, NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "input: expected a JSON object");
	/* No buffer: logged, still an error. */
	assert_int_equal(schema_decode(a, fields, &t, "body", NULL, 0), -1);
	json_decref(a);
}

static void test_unknown(void **state)
{
	expect_error("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"\"},\"foo\":1}",
	             "body: unknown key 'foo'");
	expect_error("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"\",\"foo\":true}}",
	             "body: unknown key 'in.foo'");
	/* A peer's key is shown printable and bounded. */
	expect_error("{\"a\\nb'c\":1}", "body: unknown key 'a?b?c'");
	expect_error(
	    "{\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\":1}",
	    "body: unknown key "
	    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'");
}

static void test_missing(void **state)
{
	expect_error("{\"i\":1,\"in\":{\"name\":\"\"}}", "body: missing key 's'");
	expect_error("{\"s\":\"a\",\"in\":{\"name\":\"\"}}", "body: missing key 'i'");
	expect_error("{\"s\":\"a\",\"i\":1}", "body: missing key 'in'");
	expect_error("{\"s\":\"a\",\"i\":1,\"in\":{}}", "body: missing key 'in.name'");
}

static void test_types(void **state)
{
	expect_error("{\"s\":1}", "body: key 's': expected string");
	expect_error("{\"s\":\"a\",\"i\":\"1\"}", "body: key 'i': expected integer");
	expect_error("{\"s\":\"a\",\"i\":1.0}", "body: key 'i': expected integer");
	expect_error("{\"s\":\"a\",\"i\":true}", "body: key 'i': expected integer");
	expect_error("{\"s\":\"a\",\"i\":1,\"b\":1}", "body: key 'b': expected boolean");
	expect_error("{\"s\":\"a\",\"i\":1,\"in\":[]}", "body: key 'in': expected object");
	expect_error("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":2}}",
	             "body: key 'in.name': expected string");
	expect_error("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"\"},\"list\":\"a\"}",
	             "body: key 'list': expected array of strings");
	expect_error("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"\"},\"list\":[\"a\",2]}",
	             "body: key 'list[1]': expected string");
	expect_error("{\"s\":null}", "body: key 's': null is not allowed");
	expect_error("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"\"},\"j\":null}",
	             "body: key 'j': null is not allowed");
}

static void test_ranges(void **state)
{
	expect_error("{\"s\":\"a\",\"i\":70000}",
	             "body: key 'i': 70000 is out of range [1, 65535]");
	expect_error("{\"s\":\"a\",\"i\":0}", "body: key 'i': 0 is out of range [1, 65535]");
	expect_error("{\"s\":\"a\",\"i\":-9223372036854775808}",
	             "body: key 'i': -9223372036854775808 is out of range [1, 65535]");
	expect_error("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"\",\"n\":6}}",
	             "body: key 'in.n': 6 is out of range [-5, 5]");
	expect_error("{\"s\":\"\"}", "body: key 's': length 0 is out of range [1, 8]");
	expect_error("{\"s\":\"123456789\"}", "body: key 's': length 9 is out of range [1, 8]");
	expect_error(
	    "{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"\"},\"list\":[\"a\",\"b\",\"c\",\"d\"]}",
	    "body: key 'list': 4 items, at most 3 allowed");
	expect_error("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"\"},\"list\":[\"a\",\"bcdef\"]}",
	             "body: key 'list[1]': length 5 is out of range [1, 4]");
	expect_error("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"\"},\"list\":[\"\"]}",
	             "body: key 'list[0]': length 0 is out of range [1, 4]");
}

static void test_embedded_nul(void **state)
{
	struct target t;
	char err[256];
	json_t *j = parse("{\"i\":1,\"in\":{\"name\":\"\"}}");

	/* Escaped \u0000 in the text: jansson accepts it, we must not. */
	json_object_set_new(j, "s", json_stringn("a\0b", 3));
	memset(&t, 0, sizeof(t));
	assert_int_equal(schema_decode(j, fields, &t, "body", err, sizeof(err)), -1);
	assert_string_equal(err, "body: key 's': string contains a NUL byte");
	schema_free(fields, &t);
	json_decref(j);

	j = json_loads("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"x\\u0000y\"}}", JSON_ALLOW_NUL,
	               NULL);
	assert_non_null(j);
	memset(&t, 0, sizeof(t));
	assert_int_equal(schema_decode(j, fields, &t, "body", err, sizeof(err)), -1);
	assert_string_equal(err, "body: key 'in.name': string contains a NUL byte");
	schema_free(fields, &t);
	json_decref(j);
}

static void test_partial_free(void **state)
{
	struct target t;
	char err[256];
	/* s, in.name and list[0] are copied before list[1] fails: all must be freeable. */
	json_t *j = parse("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"nm\"},\"list\":[\"ok\",7]}");

	memset(&t, 0, sizeof(t));
	assert_int_equal(schema_decode(j, fields, &t, "body", err, sizeof(err)), -1);
	assert_string_equal(err, "body: key 'list[1]': expected string");
	assert_string_equal(t.s, "a");
	assert_string_equal(t.in.name, "nm");
	assert_int_equal(t.list.n, 1);
	schema_free(fields, &t);
	assert_null(t.s);
	assert_null(t.in.name);
	assert_null(t.list.v);
	schema_free(fields, &t);
	json_decref(j);
}

static void test_json_any(void **state)
{
	struct target t;
	char err[256];
	json_t *j = parse("{\"s\":\"a\",\"i\":1,\"in\":{\"name\":\"\"},\"j\":[1,\"x\"]}");

	memset(&t, 0, sizeof(t));
	assert_int_equal(schema_decode(j, fields, &t, "body", err, sizeof(err)), 0);
	assert_true(json_is_array(t.j));
	schema_free(fields, &t);
	json_decref(j);
}

static void test_long_error_truncated(void **state)
{
	struct target t;
	char err[16];
	json_t *j = parse("{\"s\":1}");

	memset(&t, 0, sizeof(t));
	assert_int_equal(schema_decode(j, fields, &t, "body", err, sizeof(err)), -1);
	assert_string_equal(err, "body: key 's': ");
	json_decref(j);
}

struct ol_item {
	char *name;
	int64_t n;
};

struct ol_body {
	struct schema_objlist items;
};

static const struct schema_field ol_item_fields[] = {
    {"name", SCHEMA_STRING, offsetof(struct ol_item, name), 1, 1, 8, 0, NULL},
    {"n", SCHEMA_INT, offsetof(struct ol_item, n), 0, 0, 9, 0, NULL},
    SCHEMA_END,
};

static const struct schema_field ol_fields[] = {
    {"items", SCHEMA_OBJLIST, offsetof(struct ol_body, items), 1, 1, sizeof(struct ol_item), 2,
     ol_item_fields},
    SCHEMA_END,
};

/* Decode text into b; 0/-1 with err. */
static int ol_decode(const char *text, struct ol_body *b, char *err, size_t len)
{
	json_t *j = json_loads(text, 0, NULL);
	int rc;

	assert_non_null(j);
	memset(b, 0, sizeof(*b));
	rc = schema_decode(j, ol_fields, b, "body", err, len);
	json_decref(j);
	return rc;
}

static void test_objlist(void **state)
{
	struct ol_body b;
	struct ol_item *it;
	char err[256];

	(void)state;
	assert_int_equal(ol_decode("{\"items\":[{\"name\":\"a\",\"n\":3},{\"name\":\"b\"}]}", &b,
	                           err, sizeof(err)),
	                 0);
	assert_int_equal(b.items.n, 2);
	it = b.items.v;
	assert_string_equal(it[0].name, "a");
	assert_int_equal(it[0].n, 3);
	assert_string_equal(it[1].name, "b");
	schema_free(ol_fields, &b);
	assert_null(b.items.v);

	/* The second element's bad key is named with its index; what was decoded is freed. */
	assert_int_equal(ol_decode("{\"items\":[{\"name\":\"a\"},{\"name\":\"b\",\"x\":1}]}", &b,
	                           err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "items[1].x"));
	schema_free(ol_fields, &b);
	assert_int_equal(ol_decode("{\"items\":[{\"name\":\"a\",\"n\":10}]}", &b, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "items[0].n"));
	schema_free(ol_fields, &b);
	assert_int_equal(ol_decode("{\"items\":[]}", &b, err, sizeof(err)), -1);
	schema_free(ol_fields, &b);
	assert_int_equal(
	    ol_decode("{\"items\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"}]}", &b, err,
	              sizeof(err)),
	    -1);
	schema_free(ol_fields, &b);
	assert_int_equal(ol_decode("{\"items\":[1]}", &b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "items[0]"));
	schema_free(ol_fields, &b);
}

static void test_token_ok(void **state)
{
	(void)state;
	assert_true(schema_token_ok("dm-ab_C.9", 1, 64, "._-"));
	assert_true(schema_token_ok("urn:x", 1, 64, ":"));
	assert_false(schema_token_ok("urn:x", 1, 64, "._-"));
	assert_false(schema_token_ok("", 1, 64, "._-"));
	assert_true(schema_token_ok("", 0, 64, "._-"));
	assert_false(schema_token_ok(NULL, 0, 64, "._-"));
	assert_false(schema_token_ok("abcd", 1, 3, ""));
	assert_true(schema_token_ok("abc", 3, 3, ""));
	assert_false(schema_token_ok("a b", 1, 64, "._-"));
	assert_false(schema_token_ok("a/b", 1, 64, "._-"));
	assert_false(schema_token_ok("\xc3\xa9", 1, 64, "._-"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_defaults_kept),
	    cmocka_unit_test(test_redecode_frees_old),
	    cmocka_unit_test(test_root),
	    cmocka_unit_test(test_unknown),
	    cmocka_unit_test(test_missing),
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_ranges),
	    cmocka_unit_test(test_embedded_nul),
	    cmocka_unit_test(test_partial_free),
	    cmocka_unit_test(test_json_any),
	    cmocka_unit_test(test_objlist),
	    cmocka_unit_test(test_long_error_truncated),
	    cmocka_unit_test(test_token_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
