/*
 * dm-mss code: POST /v1/admin/activation-codes. An operator makes a one-time code for a
 * subscriber; the user types it into the application (step 1). Only its sha256 is stored:
 * the code itself exists in this reply and nowhere else.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "opendm/admin.h"
#include "opendm/log.h"
#include "dm_mss.h"

#define DM_MSS_CODE_TTL     86400
#define DM_MSS_CODE_TTL_MAX (90 * 86400)

/* 32 symbols: one random byte gives one symbol with no bias (byte & 31). */
static const char dm_mss_code_symbols[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

const struct schema_field dm_mss_code_fields[] = {
    {"account", SCHEMA_STRING, offsetof(struct dm_mss_code_body, account), 1, 1, DM_MSS_ACCOUNT_MAX,
     0, NULL},
    {"ttl_s", SCHEMA_INT, offsetof(struct dm_mss_code_body, ttl_s), 0, 1, DM_MSS_CODE_TTL_MAX, 0,
     NULL},
    SCHEMA_END,
};

/* A fresh code: raw (12 symbols) and as shown to people (XXXX-XXXX-XXXX). 0/-1. */
static int dm_mss_code_new(char raw[DM_MSS_CODE_LEN + 1], char shown[DM_MSS_CODE_LEN + 3])
{
	unsigned char rnd[DM_MSS_CODE_LEN];
	size_t i, j = 0;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	for (i = 0; i < DM_MSS_CODE_LEN; i++) {
		raw[i] = dm_mss_code_symbols[rnd[i] & 31];
		if (i > 0 && i % 4 == 0)
			shown[j++] = '-';
		shown[j++] = raw[i];
	}
	raw[DM_MSS_CODE_LEN] = '\0';
	shown[j] = '\0';
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return 0;
}

void dm_mss_code_create(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_mss_code_body *b = httpd_req_body(req);
	char raw[DM_MSS_CODE_LEN + 1], shown[DM_MSS_CODE_LEN + 3], hash[65], status[16];
	int64_t sub_id, limit, now = (int64_t)time(NULL), ttl, expires;
	sqlite3_stmt *s;
	int rc;

	if (!admin_authorize(d, req, ADMIN_ROLE_SUBSCRIBERS))
		return;
	if (!dm_mss_account_ok(b->account)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "body: key 'account': " DM_MSS_NAME_WHAT);
		return;
	}
	ttl = b->ttl_s > 0 ? b->ttl_s : DM_MSS_CODE_TTL;
	expires = now + ttl;
	if ((rc = dm_mss_subscriber_find(d, b->account, &sub_id, &limit, status, sizeof(status))) ==
	    -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if (rc == 0) {
		httpd_reply_error(req, 404, "unknown_subscriber", "no subscriber %s", b->account);
		return;
	}
	if (dm_mss_code_new(raw, shown) == -1 ||
	    dm_mss_sha256_hex(raw, DM_MSS_CODE_LEN, hash) == -1) {
		httpd_reply_error(req, 500, "internal_error", "cannot make a code");
		return;
	}
	if (db_begin(d->db) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto done;
	}
	s = db_prepare(d->db, "INSERT INTO activation_code (code_hash, subscriber_id, created_at,"
	                      " expires_at) VALUES (?, ?, ?, ?)");
	if (s == NULL) {
		db_rollback(d->db);
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto done;
	}
	sqlite3_bind_text(s, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, sub_id);
	sqlite3_bind_int64(s, 3, now);
	sqlite3_bind_int64(s, 4, expires);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		/* A collision of 60 random bits, or a database error: either way, no code. */
		log_rerr(httpd_req_id(req), "insert activation code: %s", db_errmsg(d->db));
		db_rollback(d->db);
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto done;
	}
	/* The hash prefix the logs use, never the code: the row must not let anyone enrol. */
	if (dm_mss_commit_audited(d, req, "code.issue", b->account,
	                          json_pack("{s:s%, s:I}", "code_id", hash, (size_t)8, "expires_at",
	                                    (json_int_t)expires)) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto done;
	}
	log_rinfo(httpd_req_id(req), "activation code %.8s for %s (expires in %llds) by '%s'", hash,
	          b->account, (long long)ttl, httpd_req_peer(req)->subject_cn);
	dm_mss_reply(req, 201,
	             json_pack("{s:s, s:s, s:I}", "code", shown, "account", b->account,
	                       "expires_at", (json_int_t)expires));
done:
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(shown, sizeof(shown));
}
