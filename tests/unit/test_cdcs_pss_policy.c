/* Unit tests of the cdcs-pss policy: rule checking, and the decision (rules + capability +
 * entitlement levels -> chosen CDCSs with rights and reasons). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "../../src/cdcs_pss/policy.h"

/* The contract's example rule and its lower-priority fallback for the same slot, plus a DRM
 * rule for another slot (given out of order: the decision sorts). */
static const char *const rules_text[] = {
    "{\"name\":\"drm-premium\",\"priority\":30,\"entitlement\":\"premium\",\"when\":{},"
    "\"vendor\":\"vendor-b\",\"cdcs\":\"sample-drm\",\"variant\":\"sw\",\"min_version\":2,"
    "\"grants\":[\"uhd\",\"premium\"]}",
    "{\"name\":\"ca-sw\",\"priority\":20,\"entitlement\":\"basic\",\"when\":{},"
    "\"vendor\":\"vendor-a\",\"cdcs\":\"sample-ca\",\"variant\":\"sw\",\"min_version\":1,"
    "\"grants\":[\"basic\"]}",
    "{\"name\":\"ca-hw\",\"priority\":10,\"entitlement\":\"basic\","
    "\"when\":{\"secure_video_path\":true,\"tee\":[\"trustzone\",\"sgx\"],"
    "\"platform\":\"linux-x86_64\"},"
    "\"vendor\":\"vendor-a\",\"cdcs\":\"sample-ca\",\"variant\":\"hw\",\"min_version\":1,"
    "\"grants\":[\"basic\",\"premium\",\"uhd\"]}",
};
#define N_RULES (sizeof(rules_text) / sizeof(rules_text[0]))

struct fixture {
	struct policy_rule rules[N_RULES];
};

static void parse_ok(const char *text, struct policy_rule *r)
{
	json_t *j = json_loads(text, 0, NULL);
	char err[256] = "";

	assert_non_null(j);
	memset(r, 0, sizeof(*r));
	if (policy_rule_parse(j, r, err, sizeof(err)) != 0)
		fail_msg("refused %s: %s", text, err);
	json_decref(j);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	size_t i;

	if (f == NULL)
		return -1;
	for (i = 0; i < N_RULES; i++)
		parse_ok(rules_text[i], &f->rules[i]);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	size_t i;

	for (i = 0; i < N_RULES; i++)
		policy_rule_free(&f->rules[i]);
	free(f);
	return 0;
}

static struct capability cap_of(const char *platform, const char *tee, int svp, const char *res)
{
	struct capability c;

	/* The policy only reads the capability: string literals are fine here. */
	c.platform = (char *)(uintptr_t)platform;
	c.tee = (char *)(uintptr_t)tee;
	c.secure_video_path = svp;
	c.hdcp = (char *)(uintptr_t) "2.2";
	c.max_resolution = (char *)(uintptr_t)res;
	return c;
}

static void assert_rights(const struct policy_choice *c, const char *want)
{
	char got[256] = "";
	size_t i;

	for (i = 0; i < c->n_rights; i++) {
		strcat(got, i > 0 ? "," : "");
		strcat(got, c->rights[i]);
	}
	assert_string_equal(got, want);
}

static void test_hw_first(void **state)
{
	struct fixture *f = *state;
	struct capability cap = cap_of("linux-x86_64", "trustzone", 1, "uhd");
	const char *levels[] = {"premium", "basic"};
	struct policy_decision d;

	assert_int_equal(policy_decide(f->rules, N_RULES, &cap, levels, 2, &d), 0);
	assert_int_equal(d.n, 2);
	/* In rule order: ca-hw (10) before drm-premium (30); ca-sw (20) lost its slot. */
	assert_string_equal(d.v[0].rule->name, "ca-hw");
	assert_rights(&d.v[0], "basic,premium");
	assert_string_equal(d.v[0].reason, "rule 'ca-hw' (priority 10): entitlement basic, "
	                                   "secure_video_path=true, tee=trustzone, "
	                                   "platform=linux-x86_64; rights basic,premium");
	assert_string_equal(d.v[1].rule->name, "drm-premium");
	assert_rights(&d.v[1], "premium");
	assert_string_equal(
	    d.v[1].reason, "rule 'drm-premium' (priority 30): entitlement premium; rights premium");
	assert_non_null(strstr(d.reason, "vendor-a/sample-ca: rule 'ca-hw'"));
	assert_non_null(strstr(d.reason, "\nvendor-b/sample-drm: rule 'drm-premium'"));
	policy_decision_free(&d);
}

static void test_fallback_sw(void **state)
{
	struct fixture *f = *state;
	const char *levels[] = {"basic", "uhd"};
	struct capability no_svp = cap_of("linux-x86_64", "trustzone", 0, "uhd");
	struct capability wrong_tee = cap_of("linux-x86_64", "software", 1, "uhd");
	struct capability wrong_platform = cap_of("android-arm64", "sgx", 1, "uhd");
	struct capability *caps[] = {&no_svp, &wrong_tee, &wrong_platform};
	struct policy_decision d;
	size_t i;

	for (i = 0; i < 3; i++) {
		assert_int_equal(policy_decide(f->rules, N_RULES, caps[i], levels, 2, &d), 0);
		assert_int_equal(d.n, 1);
		assert_string_equal(d.v[0].rule->name, "ca-sw");
		assert_string_equal(d.v[0].rule->variant, "sw");
		/* Only what the rule grants: uhd is held but ca-sw does not grant it. */
		assert_rights(&d.v[0], "basic");
		assert_string_equal(d.v[0].reason,
		                    "rule 'ca-sw' (priority 20): entitlement basic; rights basic");
		policy_decision_free(&d);
	}
}

static void test_no_match(void **state)
{
	struct fixture *f = *state;
	struct capability cap = cap_of("linux-x86_64", "trustzone", 1, "uhd");
	const char *levels[] = {"uhd", "gold"};
	struct policy_decision d;

	assert_int_equal(policy_decide(f->rules, N_RULES, &cap, levels, 2, &d), 0);
	assert_int_equal(d.n, 0);
	assert_string_equal(d.reason, "no rule matches (entitlements: gold,uhd)");
	policy_decision_free(&d);

	assert_int_equal(policy_decide(f->rules, N_RULES, &cap, NULL, 0, &d), 0);
	assert_int_equal(d.n, 0);
	assert_string_equal(d.reason, "no rule matches (entitlements: none)");
	policy_decision_free(&d);

	assert_int_equal(policy_decide(NULL, 0, &cap, levels, 2, &d), 0);
	assert_int_equal(d.n, 0);
	policy_decision_free(&d);
}

/* Equal priorities: the name decides, whatever order the rules come in. */
static void test_tie_by_name(void **state)
{
	struct policy_rule r[2];
	struct capability cap = cap_of("linux-x86_64", "none", 0, "sd");
	const char *levels[] = {"basic"};
	struct policy_decision d;

	parse_ok("{\"name\":\"zz\",\"priority\":5,\"entitlement\":\"basic\",\"when\":{},"
	         "\"vendor\":\"v\",\"cdcs\":\"c\",\"variant\":\"one\",\"min_version\":1,"
	         "\"grants\":[]}",
	         &r[0]);
	parse_ok("{\"name\":\"aa\",\"priority\":5,\"entitlement\":\"basic\",\"when\":{},"
	         "\"vendor\":\"v\",\"cdcs\":\"c\",\"variant\":\"two\",\"min_version\":1,"
	         "\"grants\":[\"basic\"]}",
	         &r[1]);
	assert_int_equal(policy_decide(r, 2, &cap, levels, 1, &d), 0);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.v[0].rule->name, "aa");
	policy_decision_free(&d);
	/* The first rule wins even when it grants nothing the account holds. */
	r[1].priority = 6;
	assert_int_equal(policy_decide(r, 2, &cap, levels, 1, &d), 0);
	assert_string_equal(d.v[0].rule->name, "zz");
	assert_int_equal(d.v[0].n_rights, 0);
	assert_string_equal(d.v[0].reason,
	                    "rule 'zz' (priority 5): entitlement basic; rights none");
	policy_decision_free(&d);
	policy_rule_free(&r[0]);
	policy_rule_free(&r[1]);
}

static void test_resolution_and_svp_false(void **state)
{
	struct policy_rule r;
	struct capability fhd = cap_of("linux-x86_64", "none", 0, "fhd");
	struct capability sd = cap_of("linux-x86_64", "none", 0, "sd");
	struct capability svp = cap_of("linux-x86_64", "none", 1, "fhd");
	const char *levels[] = {"basic", "basic"};
	struct policy_decision d;

	parse_ok("{\"name\":\"r\",\"priority\":0,\"entitlement\":\"basic\","
	         "\"when\":{\"max_resolution\":[\"hd\",\"fhd\"],\"secure_video_path\":false},"
	         "\"vendor\":\"v\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":1,"
	         "\"grants\":[\"basic\"]}",
	         &r);
	assert_int_equal(policy_decide(&r, 1, &fhd, levels, 2, &d), 0);
	assert_int_equal(d.n, 1);
	/* A level held twice is granted once. */
	assert_rights(&d.v[0], "basic");
	assert_string_equal(d.v[0].reason, "rule 'r' (priority 0): entitlement basic, "
	                                   "secure_video_path=false, max_resolution=fhd; rights "
	                                   "basic");
	policy_decision_free(&d);
	assert_int_equal(policy_decide(&r, 1, &sd, levels, 2, &d), 0);
	assert_int_equal(d.n, 0);
	policy_decision_free(&d);
	assert_int_equal(policy_decide(&r, 1, &svp, levels, 2, &d), 0);
	assert_int_equal(d.n, 0);
	policy_decision_free(&d);
	policy_rule_free(&r);
}

static void test_to_json(void **state)
{
	struct fixture *f = *state;
	struct capability cap = cap_of("linux-x86_64", "sgx", 1, "uhd");
	const char *levels[] = {"uhd", "basic"};
	struct policy_decision d;
	json_t *j, *want;

	assert_int_equal(policy_decide(f->rules, N_RULES, &cap, levels, 2, &d), 0);
	j = policy_decision_to_json(&d);
	assert_non_null(j);
	want = json_pack("[{s:s, s:s, s:s, s:i, s:s, s:[s, s], s:s}]", "vendor", "vendor-a", "name",
	                 "sample-ca", "variant", "hw", "min_version", 1, "rule", "ca-hw", "rights",
	                 "basic", "uhd", "reason", d.v[0].reason);
	assert_true(json_equal(j, want));
	json_decref(j);
	json_decref(want);
	policy_decision_free(&d);

	/* The canonical form of a rule leaves out absent conditions and keeps the others. */
	j = policy_rule_to_json(&f->rules[2]);
	want = json_loads(rules_text[2], 0, NULL);
	assert_true(json_equal(j, want));
	json_decref(j);
	json_decref(want);
	j = policy_rule_to_json(&f->rules[0]);
	assert_int_equal(json_object_size(json_object_get(j, "when")), 0);
	json_decref(j);
}

static void test_refused(void **state)
{
	static const struct {
		const char *text, *needle;
	} cases[] = {
	    {"{\"name\":\"a b\",\"priority\":1,\"entitlement\":\"basic\",\"when\":{},\"vendor\":"
	     "\"v\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":1,\"grants\":[]}",
	     "'name'"},
	    {"{\"name\":\"a\",\"priority\":1000001,\"entitlement\":\"basic\",\"when\":{},"
	     "\"vendor\":\"v\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":1,\"grants\":[]}",
	     "priority"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"Basic\",\"when\":{},\"vendor\":"
	     "\"v\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":1,\"grants\":[]}",
	     "'entitlement'"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"basic\",\"when\":{\"tee\":["
	     "\"trustzon\"]},\"vendor\":\"v\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":1,"
	     "\"grants\":[]}",
	     "when.tee[0]"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"basic\",\"when\":{\"tee\":[]},"
	     "\"vendor\":\"v\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":1,\"grants\":[]}",
	     "when.tee"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"basic\",\"when\":{"
	     "\"max_resolution\":[\"hd\",\"hd\"]},\"vendor\":\"v\",\"cdcs\":\"c\",\"variant\":"
	     "\"x\",\"min_version\":1,\"grants\":[]}",
	     "when.max_resolution[1]"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"basic\",\"when\":{"
	     "\"secure_video_path\":\"yes\"},\"vendor\":\"v\",\"cdcs\":\"c\",\"variant\":\"x\","
	     "\"min_version\":1,\"grants\":[]}",
	     "when.secure_video_path"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"basic\",\"when\":{\"platform\":"
	     "\"../x\"},\"vendor\":\"v\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":1,"
	     "\"grants\":[]}",
	     "when.platform"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"basic\",\"when\":{\"hdcp\":\"2.2\"},"
	     "\"vendor\":\"v\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":1,\"grants\":[]}",
	     "hdcp"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"basic\",\"when\":{},\"vendor\":"
	     "\"..\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":1,\"grants\":[]}",
	     "'vendor'"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"basic\",\"when\":{},\"vendor\":"
	     "\"v\",\"cdcs\":\"c/d\",\"variant\":\"x\",\"min_version\":1,\"grants\":[]}",
	     "'cdcs'"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"basic\",\"when\":{},\"vendor\":"
	     "\"v\",\"cdcs\":\"c\",\"variant\":\"x.y\",\"min_version\":1,\"grants\":[]}",
	     "'variant'"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"basic\",\"when\":{},\"vendor\":"
	     "\"v\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":0,\"grants\":[]}",
	     "min_version"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"basic\",\"when\":{},\"vendor\":"
	     "\"v\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":1,\"grants\":[\"b\",\"b\"]}",
	     "grants[1]"},
	    {"{\"name\":\"a\",\"priority\":1,\"entitlement\":\"basic\",\"vendor\":"
	     "\"v\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":1,\"grants\":[]}",
	     "when"},
	    {"[]", "object"},
	};
	struct policy_rule r;
	char err[256];
	json_t *j;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		j = json_loads(cases[i].text, 0, NULL);
		assert_non_null(j);
		memset(&r, 0, sizeof(r));
		err[0] = '\0';
		if (policy_rule_parse(j, &r, err, sizeof(err)) != -1)
			fail_msg("case %zu accepted: %s", i, cases[i].text);
		if (strstr(err, cases[i].needle) == NULL)
			fail_msg("case %zu: '%s' does not name %s", i, err, cases[i].needle);
		policy_rule_free(&r);
		json_decref(j);
	}
}

static void test_names(void **state)
{
	assert_true(policy_level_ok("premium_2-x"));
	assert_false(policy_level_ok(""));
	assert_false(policy_level_ok("Premium"));
	assert_false(policy_level_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 33 */
	assert_true(policy_account_ok("Acme.0001_x-y"));
	assert_false(policy_account_ok("acme/1"));
	assert_true(policy_id_ok("vendor-a"));
	assert_false(policy_id_ok(".hidden"));
	assert_false(policy_id_ok("Vendor"));
	assert_true(policy_variant_ok("hw"));
	assert_false(policy_variant_ok("h.w"));
	assert_true(policy_name_ok("Ca.hw-1_x"));
	assert_false(policy_name_ok("ca hw"));
}

/* Every rule explained, in decision order, agreeing with the decision. */
static void test_explain(void **state)
{
	struct fixture *f = *state;
	struct capability hw = cap_of("linux-x86_64", "trustzone", 1, "uhd");
	struct capability plain = cap_of("android-arm64", "none", 0, "sd");
	const char *levels[] = {"premium", "basic"};
	struct policy_explanation ex;
	struct policy_decision d;

	assert_int_equal(policy_decide(f->rules, N_RULES, &hw, levels, 2, &d), 0);
	assert_int_equal(policy_explain(f->rules, N_RULES, &hw, levels, 2, &d, &ex), 0);
	assert_int_equal(ex.n, 3);
	assert_string_equal(ex.v[0].rule->name, "ca-hw");
	assert_true(ex.v[0].matched && ex.v[0].chosen);
	assert_string_equal(ex.v[0].why, "chosen: rights basic,premium");
	assert_string_equal(ex.v[1].rule->name, "ca-sw");
	assert_true(ex.v[1].matched);
	assert_false(ex.v[1].chosen);
	assert_string_equal(ex.v[1].why, "slot vendor-a/sample-ca already taken by rule 'ca-hw'");
	assert_string_equal(ex.v[2].rule->name, "drm-premium");
	assert_true(ex.v[2].chosen);
	assert_string_equal(ex.v[2].why, "chosen: rights premium");
	policy_explanation_free(&ex);
	policy_decision_free(&d);

	/* Every unmet condition is named, the entitlement first. */
	assert_int_equal(policy_decide(f->rules, N_RULES, &plain, levels + 1, 1, &d), 0);
	assert_int_equal(policy_explain(f->rules, N_RULES, &plain, levels + 1, 1, &d, &ex), 0);
	assert_false(ex.v[0].matched || ex.v[0].chosen);
	assert_string_equal(ex.v[0].why,
	                    "when.secure_video_path: device has false, rule wants true; "
	                    "when.tee: device has none, rule wants trustzone,sgx; "
	                    "when.platform: device has android-arm64, rule wants linux-x86_64");
	assert_true(ex.v[1].chosen);
	assert_string_equal(ex.v[1].why, "chosen: rights basic");
	assert_false(ex.v[2].matched);
	assert_string_equal(ex.v[2].why, "entitlement 'premium' missing");
	policy_explanation_free(&ex);
	policy_decision_free(&d);
}

static void test_explain_json_and_resolution(void **state)
{
	struct policy_rule r;
	struct capability sd = cap_of("linux-x86_64", "none", 0, "sd");
	const char *levels[] = {"gold"};
	struct policy_explanation ex;
	struct policy_decision d;
	json_t *j, *want;

	parse_ok("{\"name\":\"r\",\"priority\":7,\"entitlement\":\"basic\","
	         "\"when\":{\"max_resolution\":[\"hd\",\"fhd\"]},"
	         "\"vendor\":\"v\",\"cdcs\":\"c\",\"variant\":\"x\",\"min_version\":1,"
	         "\"grants\":[]}",
	         &r);
	assert_int_equal(policy_decide(&r, 1, &sd, levels, 1, &d), 0);
	assert_int_equal(policy_explain(&r, 1, &sd, levels, 1, &d, &ex), 0);
	j = policy_explanation_to_json(&ex);
	want =
	    json_pack("[{s:s, s:i, s:s, s:s, s:s, s:b, s:b, s:s}]", "name", "r", "priority", 7,
	              "vendor", "v", "cdcs", "c", "variant", "x", "matched", 0, "chosen", 0, "why",
	              "entitlement 'basic' missing; when.max_resolution: device has sd, rule "
	              "wants hd,fhd");
	assert_true(json_equal(j, want));
	json_decref(j);
	json_decref(want);
	policy_explanation_free(&ex);
	policy_decision_free(&d);

	/* No rules: nothing to explain, and no failure. */
	assert_int_equal(policy_decide(NULL, 0, &sd, levels, 1, &d), 0);
	assert_int_equal(policy_explain(NULL, 0, &sd, levels, 1, &d, &ex), 0);
	assert_int_equal(ex.n, 0);
	j = policy_explanation_to_json(&ex);
	assert_int_equal(json_array_size(j), 0);
	json_decref(j);
	policy_explanation_free(&ex);
	policy_decision_free(&d);
	policy_rule_free(&r);
}

/* A `when` alone (a campaign's filter) is checked and evaluated as a rule's. */
static void test_when_alone(void **state)
{
	struct policy_when w;
	struct capability tz = cap_of("linux-x86_64", "trustzone", 1, "uhd");
	struct capability none = cap_of("linux-x86_64", "none", 1, "uhd");
	json_t *j = json_loads("{\"tee\":[\"trustzone\"],\"secure_video_path\":true}", 0, NULL);
	char err[256];

	memset(&w, 0, sizeof(w));
	assert_int_equal(schema_decode(j, policy_when_fields, &w, "when", err, sizeof(err)), 0);
	assert_int_equal(policy_when_check(&w, "filter.when", err, sizeof(err)), 0);
	assert_true(policy_when_holds(&w, &tz));
	assert_false(policy_when_holds(&w, &none));
	json_decref(j);
	schema_free(policy_when_fields, &w);

	j = json_loads("{\"tee\":[\"trustzon\"]}", 0, NULL);
	memset(&w, 0, sizeof(w));
	assert_int_equal(schema_decode(j, policy_when_fields, &w, "when", err, sizeof(err)), 0);
	assert_int_equal(policy_when_check(&w, "filter.when", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'filter.when.tee[0]'"));
	json_decref(j);
	schema_free(policy_when_fields, &w);

	/* No condition: every device. */
	memset(&w, 0, sizeof(w));
	assert_true(policy_when_holds(&w, &none));
	j = policy_when_to_json(&w);
	assert_int_equal(json_object_size(j), 0);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_hw_first, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fallback_sw, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_match, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_to_json, setup, teardown),
	    cmocka_unit_test(test_tie_by_name),
	    cmocka_unit_test(test_resolution_and_svp_false),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test_setup_teardown(test_explain, setup, teardown),
	    cmocka_unit_test(test_explain_json_and_resolution),
	    cmocka_unit_test(test_when_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
