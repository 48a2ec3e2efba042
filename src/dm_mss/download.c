/*
 * dm-mss download: POST /v1/agent/download-request, Figure 4 steps 2-4. The device proves
 * its subscriber with an activation code or, when it paired with the household's CPE, with
 * the CPE's pairing assertion. Every check runs before anything is written; the code (or the
 * assertion's jti) is spent and the device recorded in one transaction, so a refused request
 * leaves the code usable and the database unchanged.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opendm/jose.h"
#include "opendm/log.h"
#include "dm_mss.h"

#define DM_MSS_ERRLEN 512

static const struct schema_field dm_mss_pairing_fields[] = {
    {"assertion", SCHEMA_STRING, offsetof(struct dm_mss_pairing_body, assertion), 1, 1,
     JOSE_MAX_TOKEN, 0, NULL},
    {"cpe_certificate", SCHEMA_STRING, offsetof(struct dm_mss_pairing_body, cpe_certificate), 1, 1,
     DM_MSS_CPE_PEM_MAX, 0, NULL},
    SCHEMA_END,
};

const struct schema_field dm_mss_download_fields[] = {
    {"hw_id", SCHEMA_STRING, offsetof(struct dm_mss_download_body, hw_id), 1, DM_MSS_HW_ID_MIN,
     DM_MSS_HW_ID_MAX, 0, NULL},
    {"capability", SCHEMA_OBJECT, offsetof(struct dm_mss_download_body, capability), 1, 0, 0, 0,
     capability_fields},
    {"activation_code", SCHEMA_STRING, offsetof(struct dm_mss_download_body, activation_code), 0, 1,
     32, 0, NULL},
    {"pairing", SCHEMA_OBJECT, offsetof(struct dm_mss_download_body, pairing), 0, 0, 0, 0,
     dm_mss_pairing_fields},
    {"installed_version", SCHEMA_INT, offsetof(struct dm_mss_download_body, installed_version), 1,
     0, 1LL << 53, 0, NULL},
    SCHEMA_END,
};

/* Who vouches for the device's subscriber: the activation code or the CPE it paired with. */
struct dm_mss_auth {
	int64_t device_limit;
	char sub_status[16];
	char what[128]; /* for the step 2 log line */
	json_t *how;    /* for the device.register audit row */
};

/* The code row, looked up by hash, with its subscriber. */
struct dm_mss_code_row {
	int64_t expires_at;
	int used;
};

/* 1 found, 0 unknown, -1 database error. */
static int dm_mss_code_lookup(struct daemon_ctx *d, const char *hash, struct dm_mss_admit *a,
                              struct dm_mss_code_row *row, struct dm_mss_auth *au)
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
		snprintf(au->sub_status, sizeof(au->sub_status), "%s", dm_mss_col_text(s, 4));
		au->device_limit = sqlite3_column_int64(s, 5);
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

/* The activation code's subscriber, inside the transaction; on refusal reply, return -1. */
static int dm_mss_code_auth(struct daemon_ctx *d, struct httpd_req *req, const char *hash,
                            const char *hw_id, int64_t now, struct dm_mss_admit *a,
                            struct dm_mss_auth *au)
{
	const char *rid = httpd_req_id(req);
	struct dm_mss_code_row row;
	int found;

	memset(&row, 0, sizeof(row));
	if ((found = dm_mss_code_lookup(d, hash, a, &row, au)) == -1) {
		log_rerr(rid, "activation code lookup: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		return -1;
	}
	if (found == 0) {
		log_rwarn(rid, "unknown activation code %.8s for %s", hash, hw_id);
		httpd_reply_error(req, 403, "activation_code_unknown", "unknown activation code");
		return -1;
	}
	if (row.used) {
		log_rwarn(rid, "activation code %.8s presented again, by %s", hash, hw_id);
		httpd_reply_error(req, 403, "activation_code_used", "activation code already used");
		return -1;
	}
	if (row.expires_at <= now) {
		httpd_reply_error(req, 403, "activation_code_expired", "activation code expired");
		return -1;
	}
	snprintf(au->what, sizeof(au->what), "activation code %.8s", hash);
	/* The prefix code.issue recorded: enough to link the two, useless to enrol with. */
	if ((au->how = json_pack("{s:s, s:s%}", "via", "activation_code", "code_id", hash,
	                         (size_t)8)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return -1;
	}
	return 0;
}

/*
 * The subscriber of the CPE that vouched for the device, inside the transaction; the
 * assertion's jti is spent here and kept only if the device is recorded (same transaction).
 * On refusal reply and return -1.
 */
static int dm_mss_pairing_auth(struct daemon_ctx *d, struct httpd_req *req,
                               const struct dm_mss_pairing *p, const char *hw_id,
                               struct dm_mss_admit *a, struct dm_mss_auth *au)
{
	const char *rid = httpd_req_id(req);
	char status[16];
	int r;

	if ((r = replay_record(d->db, p->jti, p->exp)) == 1) {
		log_rwarn(rid, "pairing assertion %.8s of CPE %s presented again, for %s", p->jti,
		          p->cpe, hw_id);
		httpd_reply_error(req, 409, "token_replayed", "pairing assertion already used");
		return -1;
	}
	if (r == -1 || (r = dm_mss_cpe_find(d, p->cpe, a, status, sizeof(status), &au->device_limit,
	                                    au->sub_status, sizeof(au->sub_status))) == -1) {
		log_rerr(rid, "pairing assertion: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		return -1;
	}
	if (r == 0) {
		log_rwarn(rid, "pairing assertion for %s from unregistered CPE %s", hw_id, p->cpe);
		httpd_reply_error(req, 403, "cpe_unknown", "CPE %s is not registered", p->cpe);
		return -1;
	}
	if (strcmp(status, "active") != 0) {
		log_rwarn(rid, "pairing assertion for %s from %s CPE %s", hw_id, status, p->cpe);
		httpd_reply_error(req, 403, "cpe_inactive", "CPE %s is %s", p->cpe, status);
		return -1;
	}
	snprintf(au->what, sizeof(au->what), "paired with CPE %s", p->cpe);
	if ((au->how = json_pack("{s:s, s:s}", "via", "pairing", "cpe", p->cpe)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return -1;
	}
	return 0;
}

/* Steps 2 and 3 checks that need no database; on refusal reply and return -1. */
static int dm_mss_download_check(struct httpd_req *req, struct dm_mss_download_body *b)
{
	char err[DM_MSS_ERRLEN];

	if (!dm_mss_hw_id_ok(b->hw_id)) {
		httpd_reply_error(req, 400, "bad_request", "body: key 'hw_id': " DM_MSS_HW_ID_WHAT);
		return -1;
	}
	if (capability_check(&b->capability, "capability", err, sizeof(err)) == -1) {
		httpd_reply_error(req, 400, "bad_request", "body: %s", err);
		return -1;
	}
	if ((b->activation_code == NULL) == (b->pairing.assertion == NULL)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "body: exactly one of keys 'activation_code' and 'pairing'");
		return -1;
	}
	return 0;
}

/* What stands for the subscriber, checked before the transaction (no database; the
 * signature checks stay out of the write lock). On refusal reply and return -1. */
static int dm_mss_download_credential(struct daemon_ctx *d, struct httpd_req *req,
                                      const struct dm_mss_download_body *b, int64_t now,
                                      char hash[65], struct dm_mss_pairing *p)
{
	char code[DM_MSS_CODE_LEN + 1], err[DM_MSS_ERRLEN];
	const char *ecode;
	int status;

	if (b->pairing.assertion != NULL) {
		if (dm_mss_pairing_verify(dm_mss_state(d), b->pairing.cpe_certificate,
		                          b->pairing.assertion, b->hw_id, (time_t)now, p, &status,
		                          &ecode, err, sizeof(err)) == 0)
			return 0;
		log_rwarn(httpd_req_id(req), "pairing assertion for %s refused: %s", b->hw_id, err);
		httpd_reply_error(req, status, ecode, "pairing: %s", err);
		return -1;
	}
	if (dm_mss_code_normalize(b->activation_code, code) == -1) {
		/* Not one of ours, whatever its shape: the same answer as an unknown code. */
		httpd_reply_error(req, 403, "activation_code_unknown", "unknown activation code");
		return -1;
	}
	if (dm_mss_sha256_hex(code, DM_MSS_CODE_LEN, hash) == -1) {
		httpd_reply_error(req, 500, "internal_error", "cannot hash the code");
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
	char hash[65] = "", url[128], err[DM_MSS_ERRLEN];
	const struct dm_mss_pkg *pkg;
	struct dm_mss_pairing p;
	struct dm_mss_auth au;
	struct dm_mss_admit a;
	char *token = NULL;
	int64_t now = (int64_t)time(NULL);
	int paired;

	if (!dm_mss_authorize_app(d, req) || dm_mss_download_check(req, b) == -1)
		return;
	paired = b->pairing.assertion != NULL;
	memset(&p, 0, sizeof(p));
	if (dm_mss_download_credential(d, req, b, now, hash, &p) == -1)
		return;
	memset(&a, 0, sizeof(a));
	memset(&au, 0, sizeof(au));
	if (db_begin(d->db) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if ((paired ? dm_mss_pairing_auth(d, req, &p, b->hw_id, &a, &au)
	            : dm_mss_code_auth(d, req, hash, b->hw_id, now, &a, &au)) == -1)
		goto fail;
	if (dm_mss_admit_device(d, req, b->hw_id, &a, au.device_limit, au.sub_status) == -1)
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
	if ((!paired && dm_mss_code_spend(d, hash, b->hw_id, now) == -1) ||
	    dm_mss_record_device(d, req, &a, b->hw_id, &b->capability, now, au.how) == -1 ||
	    db_commit(d->db) == -1) {
		log_rerr(rid, "cannot record the enrolment: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto fail;
	}

	log_step("fig4", 2, rid, b->hw_id,
	         "authenticated: application certificate, %s, subscriber %s active, device %s",
	         au.what, a.account, a.device_id != 0 ? "re-installing" : "recorded");
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
	json_decref(au.how);
	free(token);
	return;

fail:
	db_rollback(d->db);
	json_decref(au.how);
	free(token);
}
