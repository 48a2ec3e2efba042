/* Unit tests of capability: strict decoding, enumerations, re-encoding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "opendm/capability.h"

static int decode(const char *text, struct capability *c, char *err, size_t errlen)
{
	json_t *j = json_loads(text, 0, NULL);
	int rc;

	assert_non_null(j);
	memset(c, 0, sizeof(*c));
	rc = schema_decode(j, capability_fields, c, "body", err, errlen);
	if (rc == 0)
		rc = capability_check(c, "capability", err, errlen);
	json_decref(j);
	return rc;
}

static void test_good_roundtrip(void **state)
{
	const char *text =
	    "{\"platform\":\"linux-x86_64\",\"tee\":\"trustzone\","
	    "\"secure_video_path\":true,\"hdcp\":\"2.2\",\"max_resolution\":\"uhd\"}";
	struct capability c;
	char err[256];
	json_t *out, *in = json_loads(text, 0, NULL);

	assert_int_equal(decode(text, &c, err, sizeof(err)), 0);
	assert_string_equal(c.platform, "linux-x86_64");
	assert_int_equal(c.secure_video_path, 1);
	out = capability_to_json(&c);
	assert_non_null(out);
	assert_true(json_equal(in, out));
	json_decref(in);
	json_decref(out);
	capability_free(&c);
}

static void test_refused(void **state)
{
	static const struct {
		const char *text, *needle;
	} cases[] = {
	    {"{\"platform\":\"Linux\",\"tee\":\"none\",\"secure_video_path\":false,\"hdcp\":"
	     "\"none\","
	     "\"max_resolution\":\"sd\"}",
	     "capability.platform"},
	    {"{\"platform\":\"../"
	     "x\",\"tee\":\"none\",\"secure_video_path\":false,\"hdcp\":\"none\","
	     "\"max_resolution\":\"sd\"}",
	     "capability.platform"},
	    {"{\"platform\":\"linux\",\"tee\":\"magic\",\"secure_video_path\":false,\"hdcp\":"
	     "\"none\","
	     "\"max_resolution\":\"sd\"}",
	     "capability.tee"},
	    {"{\"platform\":\"linux\",\"tee\":\"none\",\"secure_video_path\":false,\"hdcp\":\"3."
	     "0\","
	     "\"max_resolution\":\"sd\"}",
	     "capability.hdcp"},
	    {"{\"platform\":\"linux\",\"tee\":\"none\",\"secure_video_path\":false,\"hdcp\":"
	     "\"none\","
	     "\"max_resolution\":\"8k\"}",
	     "capability.max_resolution"},
	    {"{\"platform\":\"linux\",\"tee\":\"none\",\"secure_video_path\":false,\"hdcp\":"
	     "\"none\","
	     "\"max_resolution\":\"sd\",\"gpu\":\"x\"}",
	     "gpu"},
	    {"{\"platform\":\"linux\",\"tee\":\"none\",\"hdcp\":\"none\",\"max_resolution\":"
	     "\"sd\"}",
	     "secure_video_path"},
	};
	struct capability c;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_equal(decode(cases[i].text, &c, err, sizeof(err)), -1);
		if (strstr(err, cases[i].needle) == NULL)
			fail_msg("case %zu: '%s' does not name %s", i, err, cases[i].needle);
		capability_free(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_roundtrip),
	    cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
