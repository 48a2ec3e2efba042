/*
 * dm-mss download: POST /v1/agent/download-request, Figure 4 steps 2-4. Every check runs
 * before anything is written; the code is spent and the device recorded in one transaction,
 * so a refused request leaves the code usable and the database unchanged.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opendm/log.h"
#include "dm_mss.h"

#define DM_MSS_ERRLEN 512

const struct schema_field dm_mss_download_fields[] = {
    {"hw_id", SCHEMA_STRING, offsetof(struct dm_mss_download_body, hw_id), 1, DM_MSS_HW_ID_MIN,
     DM_MSS_HW_ID_MAX, 0, NULL},
    {"capability", SCHEMA_OBJECT, offsetof(struct dm_mss_download_body, capability), 1, 0, 0, 0,
     capability_fields},
    {"activation_code", SCHEMA_STRING, offsetof(struct dm_mss_download_body, activation_code), 1, 1,
     32, 0, NULL},
    {"installed_version", SCHEMA_INT, offsetof(struct dm_mss_download_body, installed_version), 1,
     0, 1LL << 53, 0, NULL},
    SCHEMA_END,
};

/* The code row, looked up by hash, with its subscriber. */
struct dm_mss_code_row {
	int64_t expires_at;
	int used;
	int64_t device_limit;
	char status[16];
};

/* 1 found, 0 unknown, -1 database error. */
static int dm_mss_code_lookup(struct daemon_ctx *d, const char *hash, struct dm_mss_admit *a,
                              struct dm_mss_code_row *row)
{
	sqlite3_stmt *s;
	int rc;

	s = db_prepare(d->db, "SELECT c.subscriber_id, c.expires_at, c.used_at IS NOT NULL,"
	                      " s.account, s.status, s.device_limit FROM activation_code c"
	                      " JOIN subscriber s ON s.id = c.subscriber_id WHERE c.code_hash = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, hash, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		a->subscriber_id = sqlite3_column_int64(s, 0);
		row->expires_at = sqlite3_column_int64(s, 1);
		row->used = sqlite3_column_int(s, 2);
		snprintf(a->account, sizeof(a->account), "%s", dm_mss_col_text(s, 3));
		snprintf(row->status, sizeof(row->status), "%s", dm_mss_col_text(s, 4));
		row->device_limit = sqlite3_column_int64(s, 5);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int dm_mss_code_spend(struct daemon_ctx *d, const char *hash, const char *hw_id, int64_t now)
{
	sqlite3_stmt *s;
	int rc;

	s = db_prepare(d->db, "UPDATE activation_code SET used_at = ?, used_by_hw_id = ?"
	                      " WHERE code_hash = ? AND used_at IS NULL");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, now);
	sqlite3_bind_text(s, 2, hw_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE && sqlite3_changes(db_handle(d->db)) == 1 ? 0 : -1;
}

/* Steps 2 and 3 checks that need no database; on refusal reply and return -1. */
static int dm_mss_download_check(struct httpd_req *req, struct dm_mss_download_body *b,
                                 char code[DM_MSS_CODE_LEN + 1])
{
	char err[DM_MSS_ERRLEN];

	if (!dm_mss_hw_id_ok(b->hw_id)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "body: key 'hw_id': 4-64 characters of A-Z a-z 0-9 . _ : -");
		return -1;
	}
	if (capability_check(&b->capability, "capability", err, sizeof(err)) == -1) {
		httpd_reply_error(req, 400, "bad_request", "body: %s", err);
		return -1;
	}
	if (dm_mss_code_normalize(b->activation_code, code) == -1) {
		/* Not one of ours, whatever its shape: the same answer as an unknown code. */
		httpd_reply_error(req, 403, "activation_code_unknown", "unknown activation code");
		return -1;
	}
	return 0;
}

void dm_mss_download_request(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_mss_download_body *b = httpd_req_body(req);
	const struct dm_mss_conf *c = dm_mss_conf(d);
	const struct tls_peer *peer = httpd_req_peer(req);
	const char *rid = httpd_req_id(req);
	char code[DM_MSS_CODE_LEN + 1], hash[65], url[128], err[DM_MSS_ERRLEN];
	const struct dm_mss_pkg *pkg;
	struct dm_mss_code_row row;
	struct dm_mss_admit a;
	char *token = NULL;
	int64_t now = (int64_t)time(NULL);
	int found;

	if (!dm_mss_authorize_app(d, req))
		return;
	if (dm_mss_download_check(req, b, code) == -1)
		return;
	if (dm_mss_sha256_hex(code, DM_MSS_CODE_LEN, hash) == -1) {
		httpd_reply_error(req, 500, "internal_error", "cannot hash the code");
		return;
	}
	memset(&a, 0, sizeof(a));
	memset(&row, 0, sizeof(row));
	if (db_begin(d->db) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if ((found = dm_mss_code_lookup(d, hash, &a, &row)) == -1) {
		log_rerr(rid, "activation code lookup: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto fail;
	}
	if (found == 0) {
		log_rwarn(rid, "unknown activation code %.8s for %s", hash, b->hw_id);
		httpd_reply_error(req, 403, "activation_code_unknown", "unknown activation code");
		goto fail;
	}
	if (row.used) {
		log_rwarn(rid, "activation code %.8s presented again, by %s", hash, b->hw_id);
		httpd_reply_error(req, 403, "activation_code_used", "activation code already used");
		goto fail;
	}
	if (row.expires_at <= now) {
		httpd_reply_error(req, 403, "activation_code_expired", "activation code expired");
		goto fail;
	}
	if (dm_mss_admit_device(d, req, b->hw_id, &a, row.device_limit, row.status) == -1)
		goto fail;
	if ((pkg = dm_mss_package_newest(dm_mss_state(d), b->capability.platform)) == NULL) {
		httpd_reply_error(req, 404, "no_package", "no DM agent for platform %s",
		                  b->capability.platform);
		goto fail;
	}
	if (b->installed_version >= pkg->version_number) {
		httpd_reply_error(req, 409, "already_installed",
		                  "version_number %lld installed, the newest is %lld",
		                  (long long)b->installed_version, (long long)pkg->version_number);
		goto fail;
	}
	if ((token = dm_mss_enrolment_token(d, b->hw_id, a.account, pkg->platform,
	                                    dm_mss_token_ttl(d), err, sizeof(err))) == NULL) {
		log_rerr(rid, "cannot sign the enrolment token: %s", err);
		httpd_reply_error(req, 500, "internal_error", "cannot sign the enrolment token");
		goto fail;
	}
	if (dm_mss_code_spend(d, hash, b->hw_id, now) == -1 ||
	    dm_mss_record_device(d, &a, b->hw_id, &b->capability, now) == -1 ||
	    db_commit(d->db) == -1) {
		log_rerr(rid, "cannot record the enrolment: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto fail;
	}

	log_step("fig4", 2, rid, b->hw_id,
	         "authenticated: application certificate, activation code %.8s, subscriber %s "
	         "active, device %s",
	         hash, a.account, a.device_id != 0 ? "re-installing" : "recorded");
	log_step("fig4", 3, rid, b->hw_id,
	         "secure channel: mutual TLS 1.3 with application certificate cn=%s issuer=%s "
	         "issuer_fp=%.16s",
	         peer->subject_cn, peer->issuer_cn, peer->issuer_fp);
	dm_mss_package_url(pkg, url, sizeof(url));
	log_step("fig4", 4, rid, b->hw_id,
	         "returned manifest %s version_number %lld, package %s, enrolment token (%llds)",
	         pkg->platform, (long long)pkg->version_number, url,
	         (long long)dm_mss_token_ttl(d));
	dm_mss_reply(req, 200,
	             json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "hw_id", b->hw_id, "account",
	                       a.account, "manifest", pkg->manifest, "package_url", url,
	                       "enrolment_token", token, "dm_iss_url", c->dm_iss_url));
	free(token);
	return;

fail:
	db_rollback(d->db);
	free(token);
}
