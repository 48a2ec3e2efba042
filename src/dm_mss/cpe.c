/*
 * dm-mss cpe: the registry of CPEs (set-top boxes, by their certificate's CN) whose pairing
 * assertions authenticate devices for a subscriber. Operators register a CPE to an account
 * and deactivate it (lost, returned, replaced) or activate it again.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "opendm/admin.h"
#include "opendm/log.h"
#include "dm_mss.h"

const struct schema_field dm_mss_cpe_fields[] = {
    {"cn", SCHEMA_STRING, offsetof(struct dm_mss_cpe_body, cn), 1, 1, DM_MSS_CPE_CN_MAX, 0, NULL},
    {"account", SCHEMA_STRING, offsetof(struct dm_mss_cpe_body, account), 1, 1, DM_MSS_ACCOUNT_MAX,
     0, NULL},
    SCHEMA_END,
};

const struct schema_field dm_mss_cpe_status_fields[] = {
    {"cn", SCHEMA_STRING, offsetof(struct dm_mss_cpe_status_body, cn), 1, 1, DM_MSS_CPE_CN_MAX, 0,
     NULL},
    {"status", SCHEMA_STRING, offsetof(struct dm_mss_cpe_status_body, status), 1, 1, 16, 0, NULL},
    SCHEMA_END,
};

static int dm_mss_cpe_cn_check(struct httpd_req *req, const char *where, const char *cn)
{
	if (dm_mss_cpe_cn_ok(cn))
		return 0;
	httpd_reply_error(req, 400, "bad_request", "%s: 1-64 characters of A-Z a-z 0-9 . _ -",
	                  where);
	return -1;
}

void dm_mss_cpe_create(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_mss_cpe_body *b = httpd_req_body(req);
	int64_t sub_id, limit, now = (int64_t)time(NULL);
	char sub_status[16];
	sqlite3_stmt *s;
	int rc;

	if (!admin_authorize(d, req) || dm_mss_cpe_cn_check(req, "body: key 'cn'", b->cn) == -1)
		return;
	if (!dm_mss_account_ok(b->account)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "body: key 'account': 1-64 characters of A-Z a-z 0-9 . _ -");
		return;
	}
	if ((rc = dm_mss_subscriber_find(d, b->account, &sub_id, &limit, sub_status,
	                                 sizeof(sub_status))) == 0) {
		httpd_reply_error(req, 404, "unknown_subscriber", "no subscriber %s", b->account);
		return;
	}
	s = rc == 1 ? db_prepare(d->db, "INSERT INTO cpe (cn, subscriber_id, status, created_at)"
	                                " VALUES (?, ?, 'active', ?)")
	            : NULL;
	if (s == NULL) {
		log_rerr(httpd_req_id(req), "insert cpe: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	sqlite3_bind_text(s, 1, b->cn, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, sub_id);
	sqlite3_bind_int64(s, 3, now);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		httpd_reply_error(req, 409, "cpe_exists", "CPE %s is registered", b->cn);
		return;
	}
	if (rc != SQLITE_DONE) {
		log_rerr(httpd_req_id(req), "insert cpe: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	log_rinfo(httpd_req_id(req), "CPE %s registered to subscriber %s by '%s'", b->cn,
	          b->account, httpd_req_peer(req)->subject_cn);
	dm_mss_reply(req, 201,
	             json_pack("{s:s, s:s, s:s, s:I}", "cn", b->cn, "account", b->account, "status",
	                       "active", "created_at", (json_int_t)now));
}

void dm_mss_cpe_status(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_mss_cpe_status_body *b = httpd_req_body(req);
	sqlite3_stmt *s;
	int rc, changed;

	if (!admin_authorize(d, req) || dm_mss_cpe_cn_check(req, "body: key 'cn'", b->cn) == -1)
		return;
	if (strcmp(b->status, "active") != 0 && strcmp(b->status, "inactive") != 0) {
		httpd_reply_error(req, 400, "bad_request",
		                  "body: key 'status': must be active or inactive");
		return;
	}
	if ((s = db_prepare(d->db, "UPDATE cpe SET status = ? WHERE cn = ?")) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	sqlite3_bind_text(s, 1, b->status, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, b->cn, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	changed = sqlite3_changes(db_handle(d->db));
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		log_rerr(httpd_req_id(req), "update cpe: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if (changed == 0) {
		httpd_reply_error(req, 404, "unknown_cpe", "no CPE %s", b->cn);
		return;
	}
	log_rinfo(httpd_req_id(req), "CPE %s set %s by '%s'", b->cn, b->status,
	          httpd_req_peer(req)->subject_cn);
	dm_mss_reply(req, 200, json_pack("{s:s, s:s}", "cn", b->cn, "status", b->status));
}

void dm_mss_cpe_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	const char *cn = httpd_req_tail(req);
	json_t *out = NULL;
	sqlite3_stmt *s;
	int rc;

	if (!admin_authorize(d, req) || dm_mss_cpe_cn_check(req, "cn", cn) == -1)
		return;
	s = db_prepare(d->db, "SELECT s.account, c.status, c.created_at FROM cpe c"
	                      " JOIN subscriber s ON s.id = c.subscriber_id WHERE c.cn = ?");
	if (s == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	sqlite3_bind_text(s, 1, cn, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		out = json_pack("{s:s, s:s, s:s, s:I}", "cn", cn, "account", dm_mss_col_text(s, 0),
		                "status", dm_mss_col_text(s, 1), "created_at",
		                (json_int_t)sqlite3_column_int64(s, 2));
	sqlite3_reset(s);
	if (rc == SQLITE_DONE) {
		httpd_reply_error(req, 404, "unknown_cpe", "no CPE %s", cn);
		return;
	}
	if (rc != SQLITE_ROW) {
		log_rerr(httpd_req_id(req), "cpe lookup: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	dm_mss_reply(req, 200, out);
}

int dm_mss_cpe_find(struct daemon_ctx *d, const char *cn, struct dm_mss_admit *a, char *status,
                    size_t statuslen, int64_t *device_limit, char *sub_status, size_t sub_statuslen)
{
	sqlite3_stmt *s;
	int rc;

	s = db_prepare(d->db, "SELECT c.subscriber_id, c.status, s.account, s.status,"
	                      " s.device_limit FROM cpe c"
	                      " JOIN subscriber s ON s.id = c.subscriber_id WHERE c.cn = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, cn, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		a->subscriber_id = sqlite3_column_int64(s, 0);
		snprintf(status, statuslen, "%s", dm_mss_col_text(s, 1));
		snprintf(a->account, sizeof(a->account), "%s", dm_mss_col_text(s, 2));
		snprintf(sub_status, sub_statuslen, "%s", dm_mss_col_text(s, 3));
		*device_limit = sqlite3_column_int64(s, 4);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}
