/* Unit tests of the cdcs-pss campaign rules: the body's checks, admission order and stages,
 * failure rate and auto-stop, status transitions, and the override of a device's choices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "../../src/cdcs_pss/campaign.h"

static const char good_body[] =
    "{\"name\":\"to-vendor-b\",\"from\":{\"vendor\":\"vendor-a\",\"name\":\"sample-ca\"},"
    "\"to\":{\"vendor\":\"vendor-b\",\"name\":\"sample-ca\",\"variant\":\"sw\",\"min_version\":1},"
    "\"filter\":{\"accounts\":[\"acme-1\",\"acme-2\"],\"when\":{\"tee\":[\"trustzone\"]}},"
    "\"stages\":[50,100],\"failure_threshold\":20}";

static struct capability cap_of(const char *platform, const char *tee, int svp)
{
	struct capability c;

	/* Only read: string literals are fine here. */
	c.platform = (char *)(uintptr_t)platform;
	c.tee = (char *)(uintptr_t)tee;
	c.secure_video_path = svp;
	c.hdcp = (char *)(uintptr_t) "2.2";
	c.max_resolution = (char *)(uintptr_t) "hd";
	return c;
}

/* Decode and check text as the handler does: 0, or -1 with err. */
static int spec_of(const char *text, struct campaign_spec *c, struct campaign_stages *st, char *err,
                   size_t errlen)
{
	json_t *j = json_loads(text, 0, NULL);
	int rc;

	assert_non_null(j);
	memset(c, 0, sizeof(*c));
	rc = schema_decode(j, campaign_spec_fields, c, "body", err, errlen);
	if (rc == 0)
		rc = campaign_spec_check(c, st, err, errlen);
	json_decref(j);
	return rc;
}

static void test_spec_good(void **state)
{
	struct campaign_spec c;
	struct campaign_stages st;
	struct capability tz = cap_of("linux-x86_64", "trustzone", 1);
	struct capability sw = cap_of("linux-x86_64", "software", 1);
	char err[256] = "";
	json_t *f, *want;

	if (spec_of(good_body, &c, &st, err, sizeof(err)) != 0)
		fail_msg("refused: %s", err);
	assert_int_equal(st.n, 2);
	assert_int_equal(st.v[0], 50);
	assert_int_equal(st.v[1], 100);
	assert_int_equal(c.failure_threshold, 20);
	assert_true(campaign_filter_matches(&c.filter, "acme-2", &tz));
	assert_false(campaign_filter_matches(&c.filter, "acme-3", &tz));
	assert_false(campaign_filter_matches(&c.filter, "acme-1", &sw));
	assert_true(campaign_filter_matches(NULL, "anyone", &sw));
	f = campaign_filter_to_json(&c.filter);
	want = json_loads(
	    "{\"accounts\":[\"acme-1\",\"acme-2\"],\"when\":{\"tee\":[\"trustzone\"]}}", 0, NULL);
	assert_true(json_equal(f, want));
	json_decref(f);
	json_decref(want);
	schema_free(campaign_spec_fields, &c);

	/* No filter: every device, shown as null; min_version may be left out. */
	if (spec_of("{\"name\":\"x\",\"from\":{\"vendor\":\"a\",\"name\":\"c\"},\"to\":{\"vendor\":"
	            "\"b\",\"name\":\"c\",\"variant\":\"sw\"},\"stages\":[100],"
	            "\"failure_threshold\":0}",
	            &c, &st, err, sizeof(err)) != 0)
		fail_msg("refused: %s", err);
	assert_int_equal(c.to.min_version, 0);
	assert_true(campaign_filter_matches(&c.filter, "anyone", &sw));
	f = campaign_filter_to_json(&c.filter);
	assert_true(json_is_null(f));
	json_decref(f);
	schema_free(campaign_spec_fields, &c);
}

static void test_spec_refused(void **state)
{
	static const struct {
		const char *from, *to, *needle;
	} cases[] = {
	    {"\"name\":\"to-vendor-b\"", "\"name\":\"to vendor b\"", "'name'"},
	    {"\"name\":\"to-vendor-b\",", "", "name"},
	    {"\"vendor\":\"vendor-b\"", "\"vendor\":\"vendor-a\"", "'to'"},
	    {"\"vendor\":\"vendor-b\"", "\"vendor\":\"Vendor-B\"", "'to.vendor'"},
	    {"\"vendor\":\"vendor-a\"", "\"vendor\":\"../x\"", "'from.vendor'"},
	    {"\"variant\":\"sw\"", "\"variant\":\"s.w\"", "'to.variant'"},
	    {"\"min_version\":1", "\"min_version\":0", "min_version"},
	    {"[\"acme-1\",\"acme-2\"]", "[]", "'filter.accounts'"},
	    {"[\"acme-1\",\"acme-2\"]", "[\"acme-1\",\"acme-1\"]", "'filter.accounts[1]'"},
	    {"[\"acme-1\",\"acme-2\"]", "[\"acme/1\"]", "'filter.accounts[0]'"},
	    {"[\"trustzone\"]", "[\"trustzon\"]", "'filter.when.tee[0]'"},
	    {"\"tee\":", "\"hdcp\":", "hdcp"},
	    {"[50,100]", "[]", "'stages'"},
	    {"[50,100]", "[0,100]", "'stages[0]'"},
	    {"[50,100]", "[50,101]", "'stages[1]'"},
	    {"[50,100]", "[50,50]", "'stages[1]'"},
	    {"[50,100]", "[60,50]", "'stages[1]'"},
	    {"[50,100]", "[\"50\"]", "'stages[0]'"},
	    {"[50,100]", "[1,2,3,4,5,6,7,8,9,10,11]", "'stages'"},
	    {"[50,100]", "50", "'stages'"},
	    {"\"failure_threshold\":20", "\"failure_threshold\":101", "failure_threshold"},
	    {"\"failure_threshold\":20", "\"failure_threshold\":20,\"x\":1", "'x'"},
	};
	struct campaign_spec c;
	struct campaign_stages st;
	char text[1024], err[256];
	const char *at;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		at = strstr(good_body, cases[i].from);
		assert_non_null(at);
		snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - good_body), good_body,
		         cases[i].to, at + strlen(cases[i].from));
		err[0] = '\0';
		if (spec_of(text, &c, &st, err, sizeof(err)) != -1)
			fail_msg("case %zu accepted: %s", i, text);
		if (strstr(err, cases[i].needle) == NULL)
			fail_msg("case %zu: '%s' does not name %s", i, err, cases[i].needle);
		schema_free(campaign_spec_fields, &c);
	}
}

static void test_order(void **state)
{
	struct campaign_member m[4] = {
	    {"", "dm-1", "a"}, {"", "dm-2", "a"}, {"", "dm-3", "b"}, {"", "dm-4", "b"}};
	const char *want[] = {"dm-1", "dm-2", "dm-4", "dm-3"};
	char key[65];
	size_t i;

	/* sha256("to-vendor-b/dm-1"), as any other implementation computes it. */
	assert_int_equal(campaign_order_key("to-vendor-b", "dm-1", key), 0);
	assert_string_equal(key,
	                    "50cc943270f9f8d2dcfd5d158a38598fdacfa2c37a351bb953a50d52ba64a717");
	for (i = 0; i < 4; i++)
		assert_int_equal(campaign_order_key("to-vendor-b", m[i].dm_id, m[i].key), 0);
	campaign_order(m, 4);
	for (i = 0; i < 4; i++)
		assert_string_equal(m[i].dm_id, want[i]);
	/* Another campaign, another sample. */
	assert_int_equal(campaign_order_key("other", "dm-1", key), 0);
	assert_string_not_equal(key, m[0].key);
}

static void test_stages(void **state)
{
	struct campaign_stages half = {{50, 100}, 2}, some = {{30}, 1};
	int64_t ord;

	assert_int_equal(campaign_admit_target(10, 50), 5);
	assert_int_equal(campaign_admit_target(10, 100), 10);
	assert_int_equal(campaign_admit_target(3, 50), 2);
	assert_int_equal(campaign_admit_target(7, 33), 3);
	assert_int_equal(campaign_admit_target(1, 1), 1);
	assert_int_equal(campaign_admit_target(0, 50), 0);
	for (ord = 0; ord < 10; ord++)
		assert_int_equal(campaign_stage_of(ord, 10, &half), ord < 5 ? 1 : 2);
	assert_int_equal(campaign_stage_of(2, 10, &some), 1);
	assert_int_equal(campaign_stage_of(3, 10, &some), 0); /* never admitted */
}

static void test_failure_rate(void **state)
{
	struct campaign_counts c;
	struct campaign_stages st = {{50, 100}, 2};

	memset(&c, 0, sizeof(c));
	assert_int_equal(campaign_failure_rate(&c), 0);
	assert_false(campaign_over_threshold(&c, 0));
	c.n[CAMPAIGN_DEV_PENDING] = 5;
	c.n[CAMPAIGN_DEV_ADMITTED] = 3;
	c.n[CAMPAIGN_DEV_SWITCHED] = 1;
	c.n[CAMPAIGN_DEV_FAILED] = 1;
	c.n[CAMPAIGN_DEV_CANCELLED] = 7; /* neither pending nor cancelled count */
	assert_int_equal(campaign_failure_rate(&c), 20);
	assert_false(campaign_over_threshold(&c, 20));
	assert_true(campaign_over_threshold(&c, 19));
	c.n[CAMPAIGN_DEV_FAILED] = 2; /* 2 * 100 / 6 */
	assert_int_equal(campaign_failure_rate(&c), 33);
	assert_true(campaign_over_threshold(&c, 0));

	assert_false(campaign_complete(1, &st, &c));
	assert_false(campaign_complete(2, &st, &c)); /* still admitted devices */
	c.n[CAMPAIGN_DEV_ADMITTED] = 0;
	assert_true(campaign_complete(2, &st, &c));
}

static void test_actions(void **state)
{
	struct campaign_stages st = {{50, 100}, 2};
	enum campaign_status next;

	assert_null(campaign_action(CAMPAIGN_RUNNING, 1, &st, "advance", &next));
	assert_int_equal(next, CAMPAIGN_RUNNING);
	assert_string_equal(campaign_action(CAMPAIGN_RUNNING, 2, &st, "advance", &next),
	                    "last_stage");
	assert_string_equal(campaign_action(CAMPAIGN_PAUSED, 1, &st, "advance", &next),
	                    "campaign_not_running");
	assert_string_equal(campaign_action(CAMPAIGN_STOPPED, 1, &st, "advance", &next),
	                    "campaign_not_running");
	assert_null(campaign_action(CAMPAIGN_RUNNING, 1, &st, "pause", &next));
	assert_int_equal(next, CAMPAIGN_PAUSED);
	assert_string_equal(campaign_action(CAMPAIGN_PAUSED, 1, &st, "pause", &next),
	                    "campaign_not_running");
	assert_null(campaign_action(CAMPAIGN_PAUSED, 1, &st, "resume", &next));
	assert_int_equal(next, CAMPAIGN_RUNNING);
	assert_string_equal(campaign_action(CAMPAIGN_RUNNING, 1, &st, "resume", &next),
	                    "campaign_not_paused");
	assert_null(campaign_action(CAMPAIGN_PAUSED, 1, &st, "stop", &next));
	assert_int_equal(next, CAMPAIGN_STOPPED);
	assert_null(campaign_action(CAMPAIGN_RUNNING, 2, &st, "stop", &next));
	assert_string_equal(campaign_action(CAMPAIGN_STOPPED, 1, &st, "stop", &next),
	                    "campaign_not_running");
	assert_string_equal(campaign_action(CAMPAIGN_RUNNING, 1, &st, "delete", &next),
	                    "unknown_action");
	/* Only a stopped campaign is archived, and an archived one is final. */
	assert_null(campaign_action(CAMPAIGN_STOPPED, 2, &st, "archive", &next));
	assert_int_equal(next, CAMPAIGN_ARCHIVED);
	assert_string_equal(campaign_action(CAMPAIGN_RUNNING, 2, &st, "archive", &next),
	                    "campaign_not_stopped");
	assert_string_equal(campaign_action(CAMPAIGN_PAUSED, 1, &st, "archive", &next),
	                    "campaign_not_stopped");
	assert_string_equal(campaign_action(CAMPAIGN_ARCHIVED, 2, &st, "archive", &next),
	                    "campaign_not_stopped");
	assert_string_equal(campaign_action(CAMPAIGN_ARCHIVED, 2, &st, "stop", &next),
	                    "campaign_not_running");
	assert_string_equal(campaign_action(CAMPAIGN_ARCHIVED, 1, &st, "resume", &next),
	                    "campaign_not_paused");
	assert_string_equal(campaign_action(CAMPAIGN_ARCHIVED, 1, &st, "advance", &next),
	                    "campaign_not_running");
}

static void test_device_moves(void **state)
{
	/* want[current][event]: the next status, or -1 for "no change". */
	static const int want[CAMPAIGN_DEV_N][4] = {
	    /* admit, personalized, failed, stop */
	    [CAMPAIGN_DEV_PENDING] = {CAMPAIGN_DEV_ADMITTED, -1, -1, -1},
	    [CAMPAIGN_DEV_ADMITTED] = {-1, CAMPAIGN_DEV_SWITCHED, CAMPAIGN_DEV_FAILED,
	                               CAMPAIGN_DEV_CANCELLED},
	    [CAMPAIGN_DEV_SWITCHED] = {-1, -1, -1, -1},
	    [CAMPAIGN_DEV_FAILED] = {-1, -1, -1, -1},
	    [CAMPAIGN_DEV_CANCELLED] = {-1, CAMPAIGN_DEV_SWITCHED, -1, -1},
	};
	enum campaign_dev next;
	int cur, ev, moved;

	for (cur = 0; cur < CAMPAIGN_DEV_N; cur++)
		for (ev = 0; ev < 4; ev++) {
			next = CAMPAIGN_DEV_N;
			moved = campaign_dev_next((enum campaign_dev)cur, (enum campaign_event)ev,
			                          &next);
			if (moved != (want[cur][ev] != -1) || (moved && (int)next != want[cur][ev]))
				fail_msg("%s on event %d: moved %d to %d", campaign_dev_name(cur),
				         ev, moved, (int)next);
		}
	assert_true(campaign_applies(CAMPAIGN_RUNNING, CAMPAIGN_DEV_ADMITTED));
	assert_true(campaign_applies(CAMPAIGN_PAUSED, CAMPAIGN_DEV_ADMITTED));
	assert_false(campaign_applies(CAMPAIGN_STOPPED, CAMPAIGN_DEV_ADMITTED));
	assert_true(campaign_applies(CAMPAIGN_STOPPED, CAMPAIGN_DEV_SWITCHED));
	assert_true(campaign_applies(CAMPAIGN_RUNNING, CAMPAIGN_DEV_SWITCHED));
	assert_false(campaign_applies(CAMPAIGN_ARCHIVED, CAMPAIGN_DEV_SWITCHED));
	assert_false(campaign_applies(CAMPAIGN_ARCHIVED, CAMPAIGN_DEV_ADMITTED));
	assert_false(campaign_applies(CAMPAIGN_RUNNING, CAMPAIGN_DEV_PENDING));
	assert_false(campaign_applies(CAMPAIGN_RUNNING, CAMPAIGN_DEV_FAILED));
	assert_false(campaign_applies(CAMPAIGN_RUNNING, CAMPAIGN_DEV_CANCELLED));
}

/* The choices of policy_decision_to_json() for the CA (vendor-a) and a DRM. */
static json_t *choices(void)
{
	json_t *c = json_loads(
	    "[{\"vendor\":\"vendor-a\",\"name\":\"sample-ca\",\"variant\":\"hw\",\"min_version\":1,"
	    "\"rule\":\"ca-hw\",\"rights\":[\"basic\"],\"reason\":\"rule 'ca-hw'\"},"
	    "{\"vendor\":\"vendor-b\",\"name\":\"sample-drm\",\"variant\":\"sw\",\"min_version\":2,"
	    "\"rule\":\"drm\",\"rights\":[\"premium\"],\"reason\":\"rule 'drm'\"}]",
	    0, NULL);

	assert_non_null(c);
	return c;
}

static struct campaign_view view(const char *name, enum campaign_status s, enum campaign_dev d,
                                 const char *to_vendor, const char *to_name)
{
	struct campaign_view v = {name, s, d, "vendor-a", "sample-ca", to_vendor, to_name, "sw", 3};

	return v;
}

static void test_override(void **state)
{
	struct campaign_view v[2];
	json_t *c = choices(), *ca;
	char *notes;

	v[0] = view("old", CAMPAIGN_PAUSED, CAMPAIGN_DEV_ADMITTED, "vendor-b", "sample-ca");
	v[1] = view("new", CAMPAIGN_RUNNING, CAMPAIGN_DEV_SWITCHED, "vendor-c", "sample-ca");
	assert_int_equal(campaign_override(c, v, 2, &notes), 0);
	assert_int_equal(json_array_size(c), 2);
	ca = json_array_get(c, 0);
	/* The oldest wins; rule and rights are kept; the reason says why. */
	assert_string_equal(json_string_value(json_object_get(ca, "vendor")), "vendor-b");
	assert_string_equal(json_string_value(json_object_get(ca, "name")), "sample-ca");
	assert_string_equal(json_string_value(json_object_get(ca, "variant")), "sw");
	assert_int_equal(json_integer_value(json_object_get(ca, "min_version")), 3);
	assert_string_equal(json_string_value(json_object_get(ca, "campaign")), "old");
	assert_string_equal(json_string_value(json_object_get(ca, "rule")), "ca-hw");
	assert_string_equal(json_string_value(json_array_get(json_object_get(ca, "rights"), 0)),
	                    "basic");
	assert_string_equal(json_string_value(json_object_get(ca, "reason")),
	                    "rule 'ca-hw'; campaign 'old' (device admitted): vendor-b/sample-ca sw "
	                    "(min_version 3) instead of vendor-a/sample-ca");
	assert_true(json_is_null(json_object_get(json_array_get(c, 1), "campaign")));
	assert_non_null(strstr(notes, "campaign 'new' also applies to vendor-a/sample-ca: the "
	                              "oldest, 'old', wins"));
	assert_non_null(strstr(notes, "campaign 'old' (device admitted)"));
	free(notes);
	json_decref(c);
}

static void test_override_not_applied(void **state)
{
	static const struct {
		enum campaign_status s;
		enum campaign_dev d;
	} cases[] = {
	    {CAMPAIGN_RUNNING, CAMPAIGN_DEV_PENDING},
	    {CAMPAIGN_RUNNING, CAMPAIGN_DEV_FAILED},
	    {CAMPAIGN_STOPPED, CAMPAIGN_DEV_CANCELLED},
	    {CAMPAIGN_STOPPED, CAMPAIGN_DEV_ADMITTED},
	};
	struct campaign_view v;
	json_t *c, *want;
	char *notes;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = choices();
		want = choices();
		json_object_set_new(json_array_get(want, 0), "campaign", json_null());
		json_object_set_new(json_array_get(want, 1), "campaign", json_null());
		v = view("c", cases[i].s, cases[i].d, "vendor-b", "sample-ca");
		assert_int_equal(campaign_override(c, &v, 1, &notes), 0);
		if (!json_equal(c, want))
			fail_msg("case %zu changed the choices", i);
		assert_string_equal(notes, "");
		free(notes);
		json_decref(c);
		json_decref(want);
	}
	/* A stopped campaign keeps its switched devices on `to`. */
	c = choices();
	v = view("c", CAMPAIGN_STOPPED, CAMPAIGN_DEV_SWITCHED, "vendor-b", "sample-ca");
	assert_int_equal(campaign_override(c, &v, 1, &notes), 0);
	assert_string_equal(json_string_value(json_object_get(json_array_get(c, 0), "vendor")),
	                    "vendor-b");
	free(notes);
	json_decref(c);
}

/* The rules chose the campaign's `to` slot too: one choice per slot, the campaign's. */
static void test_override_slot_once(void **state)
{
	struct campaign_view v =
	    view("c", CAMPAIGN_RUNNING, CAMPAIGN_DEV_ADMITTED, "vendor-b", "sample-drm");
	json_t *c = choices(), *only;
	char *notes;

	assert_int_equal(campaign_override(c, &v, 1, &notes), 0);
	assert_int_equal(json_array_size(c), 1);
	only = json_array_get(c, 0);
	assert_string_equal(json_string_value(json_object_get(only, "campaign")), "c");
	assert_string_equal(json_string_value(json_object_get(only, "name")), "sample-drm");
	assert_int_equal(json_integer_value(json_object_get(only, "min_version")), 3);
	assert_non_null(strstr(notes, "vendor-b/sample-drm: rule 'drm' gives way to campaign 'c'"));
	free(notes);
	json_decref(c);
}

static void test_view_parse(void **state)
{
	json_t *o = json_loads(
	    "{\"name\":\"c\",\"status\":\"paused\",\"device_status\":\"switched\",\"error\":null,"
	    "\"from\":{\"vendor\":\"a\",\"name\":\"x\"},"
	    "\"to\":{\"vendor\":\"b\",\"name\":\"x\",\"variant\":\"sw\",\"min_version\":4}}",
	    0, NULL);
	struct campaign_view v;

	assert_int_equal(campaign_view_parse(o, &v), 0);
	assert_int_equal(v.status, CAMPAIGN_PAUSED);
	assert_int_equal(v.dev, CAMPAIGN_DEV_SWITCHED);
	assert_string_equal(v.to_vendor, "b");
	assert_int_equal(v.to_min_version, 4);
	json_object_set_new(o, "device_status", json_string("gone"));
	assert_int_equal(campaign_view_parse(o, &v), -1);
	json_object_set_new(o, "device_status", json_string("failed"));
	json_object_del(json_object_get(o, "to"), "variant");
	assert_int_equal(campaign_view_parse(o, &v), -1);
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_good),
	    cmocka_unit_test(test_spec_refused),
	    cmocka_unit_test(test_order),
	    cmocka_unit_test(test_stages),
	    cmocka_unit_test(test_failure_rate),
	    cmocka_unit_test(test_actions),
	    cmocka_unit_test(test_device_moves),
	    cmocka_unit_test(test_override),
	    cmocka_unit_test(test_override_not_applied),
	    cmocka_unit_test(test_override_slot_once),
	    cmocka_unit_test(test_view_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
