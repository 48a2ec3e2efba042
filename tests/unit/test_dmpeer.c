/* dmpeer: who a device is on Figure 5 links, from its DM certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "opendm/dmpeer.h"

#define CA_FP "5f0c9a0000000000000000000000000000000000000000000000000000000000"

static void peer_init(struct tls_peer *p, const char *cn, const char *uri, const char *issuer)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->subject_cn, sizeof(p->subject_cn), "%s", cn);
	snprintf(p->san_uri, sizeof(p->san_uri), "%s", uri);
	snprintf(p->issuer_fp, sizeof(p->issuer_fp), "%s", issuer);
}

static void test_dm_certificate(void **state)
{
	struct tls_peer p;
	char id[DMPEER_ID_MAX + 1];

	(void)state;
	peer_init(&p, "dm-0011aabb", "urn:opendm:dm:dm-0011aabb", CA_FP);
	assert_int_equal(dmpeer_id(&p, CA_FP, id, sizeof(id)), 0);
	assert_string_equal(id, "dm-0011aabb");
	/* The buffer must hold it. */
	assert_int_equal(dmpeer_id(&p, CA_FP, id, 5), -1);
}

static void test_not_a_dm_certificate(void **state)
{
	struct tls_peer p;
	char id[DMPEER_ID_MAX + 1];

	(void)state;
	/* Another issuer (an application or operator certificate). */
	peer_init(&p, "dm-0011aabb", "urn:opendm:dm:dm-0011aabb",
	          "6f0c9a0000000000000000000000000000000000000000000000000000000000");
	assert_int_equal(dmpeer_id(&p, CA_FP, id, sizeof(id)), -1);
	/* CN and URI SAN disagree, or no URI SAN, or another URN. */
	peer_init(&p, "dm-0011aabb", "urn:opendm:dm:dm-0011aabc", CA_FP);
	assert_int_equal(dmpeer_id(&p, CA_FP, id, sizeof(id)), -1);
	peer_init(&p, "dm-0011aabb", "", CA_FP);
	assert_int_equal(dmpeer_id(&p, CA_FP, id, sizeof(id)), -1);
	peer_init(&p, "dm-0011aabb", "urn:opendm:cpe:dm-0011aabb", CA_FP);
	assert_int_equal(dmpeer_id(&p, CA_FP, id, sizeof(id)), -1);
	/* A CN with characters a DM id never has. */
	peer_init(&p, "dm 0011", "urn:opendm:dm:dm 0011", CA_FP);
	assert_int_equal(dmpeer_id(&p, CA_FP, id, sizeof(id)), -1);
	/* No peer, or no configured CA. */
	assert_int_equal(dmpeer_id(NULL, CA_FP, id, sizeof(id)), -1);
	peer_init(&p, "dm-0011aabb", "urn:opendm:dm:dm-0011aabb", "");
	assert_int_equal(dmpeer_id(&p, "", id, sizeof(id)), -1);
}

static void test_id_syntax(void **state)
{
	char long_id[DMPEER_ID_MAX + 2];

	(void)state;
	assert_true(dmpeer_id_ok("dm-5f0c9a"));
	assert_true(dmpeer_id_ok("A.b_c:d-9"));
	assert_false(dmpeer_id_ok(""));
	assert_false(dmpeer_id_ok(NULL));
	assert_false(dmpeer_id_ok("dm/1"));
	assert_false(dmpeer_id_ok("dm\n1"));
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_false(dmpeer_id_ok(long_id));
	long_id[DMPEER_ID_MAX] = '\0';
	assert_true(dmpeer_id_ok(long_id));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dm_certificate),
	    cmocka_unit_test(test_not_a_dm_certificate),
	    cmocka_unit_test(test_id_syntax),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
