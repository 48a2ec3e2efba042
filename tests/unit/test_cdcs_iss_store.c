/*
 * Unit tests for cdcs-iss: the store (ticket jti and personalization in one transaction,
 * idempotent confirmation with its outbox row, the outbox queries), the ticket claims check,
 * the personalization data and the report backoff.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjose/cjose.h>
#include <jansson.h>
#include <sqlite3.h>

#include "../../src/cdcs_iss/cdcs_iss.h"
#include "testutil.h"

#define NOW 1800000000

struct tctx {
	char dir[512];
	struct db *db;
};

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));
	char path[600], err[256];
	size_t n = 0;

	if (t == NULL || tu_tmpdir(t->dir, sizeof(t->dir), "cdcs-iss-store") == -1)
		return -1;
	while (cdcs_iss_migrations[n].sql != NULL)
		n++;
	snprintf(path, sizeof(path), "%s/cdcs-iss.db", t->dir);
	if ((t->db = db_open(path, cdcs_iss_migrations, n, DB_SYNC_FULL, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
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

static int64_t count(struct db *db, const char *sql)
{
	sqlite3_stmt *st = db_prepare(db, sql);
	int64_t n;

	assert_non_null(st);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return n;
}

static void grant(struct cdcs_iss_grant *g, const char *jti)
{
	memset(g, 0, sizeof(*g));
	snprintf(g->dm_id, sizeof(g->dm_id), "dm-0123456789abcdef01234567");
	snprintf(g->vendor, sizeof(g->vendor), "vendor-a");
	snprintf(g->name, sizeof(g->name), "sample-ca");
	snprintf(g->variant, sizeof(g->variant), "sw");
	g->version_number = 3;
	snprintf(g->rights[0], sizeof(g->rights[0]), "basic");
	snprintf(g->rights[1], sizeof(g->rights[1]), "premium");
	g->n_rights = 2;
	snprintf(g->decision, sizeof(g->decision), "dec-00112233445566778899aabbccddeeff");
	snprintf(g->jti, sizeof(g->jti), "%s", jti);
	g->exp = NOW + 600;
}

static void perso(struct cdcs_iss_perso *p, const char *perso_id, const char *cdcs_id)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->perso_id, sizeof(p->perso_id), "%s", perso_id);
	snprintf(p->cdcs_id, sizeof(p->cdcs_id), "%s", cdcs_id);
	snprintf(p->confirm, sizeof(p->confirm), "0123456789abcdef0123456789abcdef");
	cdcsimg_sha256_hex(p->confirm, strlen(p->confirm), p->confirm_sha256);
	p->iat = NOW;
}

#define PID1 "11111111111111111111111111111111"
#define PID2 "22222222222222222222222222222222"

static void test_personalize_once(void **state)
{
	struct tctx *t = *state;
	struct cdcs_iss_grant g;
	struct cdcs_iss_perso p;
	struct cdcs_iss_perso_row row;

	grant(&g, "jti-1");
	perso(&p, PID1, "vendor-a-000000000000000000000001");
	assert_int_equal(cdcs_iss_store_personalize(t->db, &g, &p, NOW), 0);
	/* The same ticket again buys nothing, even for another personalization. */
	perso(&p, PID2, "vendor-a-000000000000000000000002");
	assert_int_equal(cdcs_iss_store_personalize(t->db, &g, &p, NOW), 1);
	assert_int_equal(count(t->db, "SELECT COUNT(*) FROM personalization"), 1);

	assert_int_equal(cdcs_iss_store_perso_find(t->db, PID2, &row), 0);
	assert_int_equal(cdcs_iss_store_perso_find(t->db, PID1, &row), 1);
	assert_string_equal(row.dm_id, g.dm_id);
	assert_string_equal(row.vendor, "vendor-a");
	assert_string_equal(row.name, "sample-ca");
	assert_string_equal(row.variant, "sw");
	assert_int_equal(row.version_number, 3);
	assert_string_equal(row.cdcs_id, "vendor-a-000000000000000000000001");
	assert_string_equal(row.decision, g.decision);
	assert_int_equal(row.confirmed_at, 0);
	assert_int_equal(strlen(row.confirm_sha256), 64);
	assert_int_equal(
	    count(t->db,
	          "SELECT COUNT(*) FROM personalization WHERE rights = '[\"basic\",\"premium\"]'"),
	    1);
}

static void test_personalize_all_or_nothing(void **state)
{
	struct tctx *t = *state;
	struct cdcs_iss_grant g;
	struct cdcs_iss_perso p;

	grant(&g, "jti-1");
	perso(&p, PID1, "vendor-a-000000000000000000000001");
	assert_int_equal(cdcs_iss_store_personalize(t->db, &g, &p, NOW), 0);
	/* A new ticket whose personalization cannot be written (perso_id taken): its jti must
	 * not be spent either. */
	grant(&g, "jti-2");
	assert_int_equal(cdcs_iss_store_personalize(t->db, &g, &p, NOW), -1);
	assert_int_equal(count(t->db, "SELECT COUNT(*) FROM used_token WHERE jti = 'jti-2'"), 0);
	assert_int_equal(count(t->db, "SELECT COUNT(*) FROM personalization"), 1);
	perso(&p, PID2, "vendor-a-000000000000000000000002");
	assert_int_equal(cdcs_iss_store_personalize(t->db, &g, &p, NOW), 0);
	assert_int_equal(count(t->db, "SELECT COUNT(*) FROM used_token"), 2);
}

static void test_confirm_and_outbox(void **state)
{
	struct tctx *t = *state;
	struct cdcs_iss_grant g;
	struct cdcs_iss_perso p;
	struct cdcs_iss_perso_row row;
	struct cdcs_iss_outbox_row rows[4];
	int64_t at;

	assert_int_equal(cdcs_iss_store_outbox_next(t->db, &at), 0);
	assert_int_equal(cdcs_iss_store_outbox_due(t->db, NOW, rows, 4), 0);
	grant(&g, "jti-1");
	perso(&p, PID1, "vendor-a-000000000000000000000001");
	assert_int_equal(cdcs_iss_store_personalize(t->db, &g, &p, NOW), 0);

	assert_int_equal(cdcs_iss_store_confirm(t->db, PID1, "rid-1", "{\"x\":1}", NOW + 5), 0);
	/* Again: already confirmed, nothing queued twice, the first time kept. */
	assert_int_equal(cdcs_iss_store_confirm(t->db, PID1, "rid-2", "{\"x\":2}", NOW + 9), 1);
	assert_int_equal(count(t->db, "SELECT COUNT(*) FROM report_outbox"), 1);
	assert_int_equal(cdcs_iss_store_perso_find(t->db, PID1, &row), 1);
	assert_int_equal(row.confirmed_at, NOW + 5);
	/* An unknown one changes nothing either. */
	assert_int_equal(cdcs_iss_store_confirm(t->db, PID2, "rid-3", "{}", NOW), 1);

	assert_int_equal(cdcs_iss_store_outbox_due(t->db, NOW + 4, rows, 4), 0);
	assert_int_equal(cdcs_iss_store_outbox_due(t->db, NOW + 5, rows, 4), 1);
	assert_int_equal(rows[0].attempts, 0);
	assert_string_equal(rows[0].rid, "rid-1");
	assert_string_equal(rows[0].body, "{\"x\":1}");
	free(rows[0].body);

	/* A failure pushes it back; a restart makes it due at once. */
	assert_int_equal(cdcs_iss_store_outbox_retry(t->db, rows[0].id, NOW + 100), 0);
	assert_int_equal(cdcs_iss_store_outbox_due(t->db, NOW + 99, rows, 4), 0);
	assert_int_equal(cdcs_iss_store_outbox_next(t->db, &at), 1);
	assert_int_equal(at, NOW + 100);
	assert_int_equal(cdcs_iss_store_outbox_reset(t->db, NOW + 10), 0);
	assert_int_equal(cdcs_iss_store_outbox_next(t->db, &at), 1);
	assert_int_equal(at, NOW + 10);
	assert_int_equal(cdcs_iss_store_outbox_due(t->db, NOW + 10, rows, 4), 1);
	assert_int_equal(rows[0].attempts, 1);
	free(rows[0].body);

	assert_int_equal(cdcs_iss_store_outbox_delete(t->db, rows[0].id), 0);
	assert_int_equal(cdcs_iss_store_outbox_next(t->db, &at), 0);
	/* Delivered: a late confirmation does not queue it again. */
	assert_int_equal(cdcs_iss_store_confirm(t->db, PID1, "rid-4", "{}", NOW + 20), 1);
	assert_int_equal(count(t->db, "SELECT COUNT(*) FROM report_outbox"), 0);
}

static void test_outbox_batch(void **state)
{
	struct tctx *t = *state;
	struct cdcs_iss_grant g;
	struct cdcs_iss_perso p;
	struct cdcs_iss_outbox_row rows[3];
	char pid[CDCS_ISS_HEX_ID + 1], jti[16], cid[64];
	int i;

	for (i = 0; i < 5; i++) {
		snprintf(pid, sizeof(pid), "%032d", i);
		snprintf(jti, sizeof(jti), "jti-%d", i);
		snprintf(cid, sizeof(cid), "vendor-a-%024d", i);
		grant(&g, jti);
		perso(&p, pid, cid);
		assert_int_equal(cdcs_iss_store_personalize(t->db, &g, &p, NOW), 0);
		assert_int_equal(cdcs_iss_store_confirm(t->db, pid, "r", "{}", NOW + 10 - i), 0);
	}
	/* At most max rows, the longest waiting first. */
	assert_int_equal(cdcs_iss_store_outbox_due(t->db, NOW + 100, rows, 3), 3);
	for (i = 0; i < 3; i++)
		free(rows[i].body);
	assert_true(rows[0].id > rows[1].id && rows[1].id > rows[2].id);
	assert_int_equal(cdcs_iss_store_outbox_due(t->db, NOW + 7, rows, 3), 2);
	free(rows[0].body);
	free(rows[1].body);
}

static json_t *claims(void)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:[s,s], s:s, s:i, s:i, s:s}", "iss",
	                 "cdcs-iss", "aud", "cdcs-iss", "sub", "dm-0123", "vendor", "vendor-a",
	                 "name", "sample-ca", "variant", "hw", "version_number", 2, "rights",
	                 "basic", "uhd", "decision", "dec-0011", "iat", NOW, "exp", NOW + 600,
	                 "jti", "00112233445566778899aabbccddeeff");
}

static void test_grant_from_claims(void **state)
{
	static const char *const drop[] = {"sub",      "vendor", "name",           "variant",
	                                   "decision", "jti",    "version_number", "rights"};
	struct cdcs_iss_grant g;
	char err[256], big[64];
	json_t *c;
	size_t i;

	(void)state;
	c = claims();
	assert_int_equal(cdcs_iss_grant_from_claims(c, &g, err, sizeof(err)), 0);
	assert_string_equal(g.dm_id, "dm-0123");
	assert_string_equal(g.vendor, "vendor-a");
	assert_string_equal(g.name, "sample-ca");
	assert_string_equal(g.variant, "hw");
	assert_int_equal(g.version_number, 2);
	assert_int_equal(g.n_rights, 2);
	assert_string_equal(g.rights[1], "uhd");
	assert_string_equal(g.decision, "dec-0011");
	assert_string_equal(g.jti, "00112233445566778899aabbccddeeff");
	assert_int_equal(g.exp, NOW + 600);
	json_decref(c);

	for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
		c = claims();
		json_object_del(c, drop[i]);
		assert_int_equal(cdcs_iss_grant_from_claims(c, &g, err, sizeof(err)), -1);
		assert_non_null(strstr(err, drop[i]));
		json_decref(c);
	}
	c = claims();
	json_object_set_new(c, "variant", json_string("HW"));
	assert_int_equal(cdcs_iss_grant_from_claims(c, &g, err, sizeof(err)), -1);
	json_object_set_new(c, "variant", json_string("hw"));
	json_object_set_new(c, "vendor", json_string("../x"));
	assert_int_equal(cdcs_iss_grant_from_claims(c, &g, err, sizeof(err)), -1);
	json_object_set_new(c, "vendor", json_string("vendor-a"));
	json_object_set_new(c, "version_number", json_integer(0));
	assert_int_equal(cdcs_iss_grant_from_claims(c, &g, err, sizeof(err)), -1);
	json_object_set_new(c, "version_number", json_string("2"));
	assert_int_equal(cdcs_iss_grant_from_claims(c, &g, err, sizeof(err)), -1);
	json_object_set_new(c, "version_number", json_integer(2));
	json_object_set_new(c, "rights", json_pack("[s]", "Basic"));
	assert_int_equal(cdcs_iss_grant_from_claims(c, &g, err, sizeof(err)), -1);
	json_object_set_new(c, "rights", json_pack("[i]", 1));
	assert_int_equal(cdcs_iss_grant_from_claims(c, &g, err, sizeof(err)), -1);
	json_object_set_new(c, "rights", json_array());
	for (i = 0; i <= CDCS_ISS_RIGHTS_MAX; i++) {
		snprintf(big, sizeof(big), "l%zu", i);
		json_array_append_new(json_object_get(c, "rights"), json_string(big));
	}
	assert_int_equal(cdcs_iss_grant_from_claims(c, &g, err, sizeof(err)), -1);
	json_object_set_new(c, "rights", json_array());
	assert_int_equal(cdcs_iss_grant_from_claims(c, &g, err, sizeof(err)), 0);
	assert_int_equal(g.n_rights, 0);
	json_decref(c);
}

static void test_perso_build(void **state)
{
	static const char set[] = "{\"keys\":["
	                          "{\"kty\":\"oct\",\"kid\":\"vendor-a/sample-ca/basic\","
	                          "\"k\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"},"
	                          "{\"kty\":\"oct\",\"kid\":\"vendor-a/sample-ca/premium\","
	                          "\"k\":\"__79_Pv6-fj39vX08_Lx8O_u7ezr6uno5-bl5OPi4eA\"},"
	                          "{\"kty\":\"oct\",\"kid\":\"vendor-b/sample-drm/uhd\","
	                          "\"k\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}]}";
	struct cdcs_iss_keyset ks;
	struct cdcs_iss_grant g;
	struct cdcs_iss_perso p, p2;
	char err[256], hash[65], *text, *text2;
	json_t *doc, *keys;
	json_error_t jerr;

	(void)state;
	assert_int_equal(cdcs_iss_keys_parse(set, strlen(set), &ks, err, sizeof(err)), 0);
	grant(&g, "jti-1");
	/* uhd: vendor-b has a uhd key, vendor-a has none: left out of keys, kept in rights. */
	snprintf(g.rights[2], sizeof(g.rights[2]), "uhd");
	g.n_rights = 3;
	assert_non_null(text = cdcs_iss_perso_build(&ks, &g, "rid", NOW, &p));
	assert_non_null(doc = json_loads(text, 0, &jerr));
	assert_int_equal(json_integer_value(json_object_get(doc, "v")), 1);
	assert_string_equal(json_string_value(json_object_get(doc, "dm_id")), g.dm_id);
	assert_string_equal(json_string_value(json_object_get(doc, "vendor")), "vendor-a");
	assert_string_equal(json_string_value(json_object_get(doc, "name")), "sample-ca");
	assert_string_equal(json_string_value(json_object_get(doc, "cdcs_id")), p.cdcs_id);
	assert_string_equal(json_string_value(json_object_get(doc, "perso_id")), p.perso_id);
	assert_string_equal(json_string_value(json_object_get(doc, "confirm")), p.confirm);
	assert_int_equal(json_integer_value(json_object_get(doc, "iat")), NOW);
	assert_int_equal(json_array_size(json_object_get(doc, "rights")), 3);
	keys = json_object_get(doc, "keys");
	assert_int_equal(json_object_size(keys), 2);
	assert_string_equal(json_string_value(json_object_get(keys, "basic")),
	                    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
	assert_string_equal(json_string_value(json_object_get(keys, "premium")),
	                    "__79_Pv6-fj39vX08_Lx8O_u7ezr6uno5-bl5OPi4eA");
	assert_null(json_object_get(keys, "uhd"));
	assert_int_equal(json_object_size(doc), 10);
	json_decref(doc);

	/* Identifiers: the right shapes, the confirmation kept only as its hash, all fresh. */
	assert_true(cdcs_iss_hex_ok(p.perso_id, CDCS_ISS_HEX_ID));
	assert_true(cdcs_iss_hex_ok(p.confirm, CDCS_ISS_HEX_ID));
	assert_int_equal(strncmp(p.cdcs_id, "vendor-a-", 9), 0);
	assert_true(cdcs_iss_hex_ok(p.cdcs_id + 9, 24));
	cdcsimg_sha256_hex(p.confirm, strlen(p.confirm), hash);
	assert_string_equal(p.confirm_sha256, hash);
	assert_non_null(text2 = cdcs_iss_perso_build(&ks, &g, "rid", NOW, &p2));
	assert_string_not_equal(p.perso_id, p2.perso_id);
	assert_string_not_equal(p.confirm, p2.confirm);
	assert_string_not_equal(p.cdcs_id, p2.cdcs_id);
	free(text);
	free(text2);
	cdcs_iss_keys_free(&ks);
}

static void test_checks(void **state)
{
	(void)state;
	assert_true(cdcs_iss_hex_ok("0123456789abcdef", 16));
	assert_false(cdcs_iss_hex_ok("0123456789ABCDEF", 16));
	assert_false(cdcs_iss_hex_ok("0123456789abcde", 16));
	assert_false(cdcs_iss_hex_ok("0123456789abcdefa", 16));
	assert_false(cdcs_iss_hex_ok("0123456789abcdeg", 16));
}

/* header.payload.signature with claims as the payload (the signature is not looked at). */
static const char *token(const char *claims)
{
	static char buf[1024];
	char *b64 = NULL;
	size_t len;
	cjose_err cerr;

	assert_true(
	    cjose_base64url_encode((const uint8_t *)claims, strlen(claims), &b64, &len, &cerr));
	snprintf(buf, sizeof(buf), "eyJhbGciOiJFUzI1NiJ9.%s.c2ln", b64);
	cjose_get_dealloc()(b64);
	return buf;
}

static void test_foreign_code(void **state)
{
	(void)state;
	/* A download ticket (iss = aud = cdcs-mss). */
	assert_string_equal(
	    cdcs_iss_foreign_code(token("{\"iss\":\"cdcs-mss\",\"aud\":\"cdcs-mss\"}")),
	    "wrong_audience");
	assert_string_equal(cdcs_iss_foreign_code(token("{\"iss\":\"cdcs-iss\",\"aud\":[\"x\"]}")),
	                    "wrong_audience");
	assert_string_equal(cdcs_iss_foreign_code(token("{\"iss\":\"cdcs-iss\"}")),
	                    "wrong_audience");
	assert_string_equal(
	    cdcs_iss_foreign_code(token("{\"iss\":\"dm-mss\",\"aud\":[\"x\",\"cdcs-iss\"]}")),
	    "wrong_issuer");
	assert_string_equal(cdcs_iss_foreign_code(token("{\"aud\":\"cdcs-iss\"}")), "wrong_issuer");
	/* Our own claims with a signature that does not verify: a forgery, bad_token. */
	assert_string_equal(
	    cdcs_iss_foreign_code(token("{\"iss\":\"cdcs-iss\",\"aud\":\"cdcs-iss\"}")),
	    "bad_token");
	assert_string_equal(cdcs_iss_foreign_code(token("[]")), "bad_token");
	assert_string_equal(cdcs_iss_foreign_code(token("{\"aud\":")), "bad_token");
	assert_string_equal(cdcs_iss_foreign_code("not.a!token.x"), "bad_token");
	assert_string_equal(cdcs_iss_foreign_code("no-dots"), "bad_token");
	assert_string_equal(cdcs_iss_foreign_code(""), "bad_token");
	assert_string_equal(cdcs_iss_foreign_code(".."), "bad_token");
}

static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(cdcs_iss_report_backoff(0), 0);
	assert_int_equal(cdcs_iss_report_backoff(1), 1);
	assert_int_equal(cdcs_iss_report_backoff(2), 2);
	assert_int_equal(cdcs_iss_report_backoff(3), 4);
	assert_int_equal(cdcs_iss_report_backoff(4), 8);
	assert_int_equal(cdcs_iss_report_backoff(5), 16);
	assert_int_equal(cdcs_iss_report_backoff(6), 30);
	assert_int_equal(cdcs_iss_report_backoff(64), 30);
	assert_int_equal(cdcs_iss_report_backoff(INT64_MAX), 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_personalize_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_personalize_all_or_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_confirm_and_outbox, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_batch, setup, teardown),
	    cmocka_unit_test(test_grant_from_claims),
	    cmocka_unit_test(test_perso_build),
	    cmocka_unit_test(test_checks),
	    cmocka_unit_test(test_foreign_code),
	    cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
