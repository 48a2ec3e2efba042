/* dm-mss subscriber: operators create subscribers and suspend or reactivate them. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "opendm/admin.h"
#include "opendm/log.h"
#include "dm_mss.h"

#define DM_MSS_DEVICE_LIMIT_MAX 1000

const struct schema_field dm_mss_subscriber_fields[] = {
    {"account", SCHEMA_STRING, offsetof(struct dm_mss_subscriber_body, account), 1, 1,
     DM_MSS_ACCOUNT_MAX, 0, NULL},
    {"device_limit", SCHEMA_INT, offsetof(struct dm_mss_subscriber_body, device_limit), 1, 0,
     DM_MSS_DEVICE_LIMIT_MAX, 0, NULL},
    SCHEMA_END,
};

const struct schema_field dm_mss_status_fields[] = {
    {"account", SCHEMA_STRING, offsetof(struct dm_mss_status_body, account), 1, 1,
     DM_MSS_ACCOUNT_MAX, 0, NULL},
    {"status", SCHEMA_STRING, offsetof(struct dm_mss_status_body, status), 1, 1, 16, 0, NULL},
    SCHEMA_END,
};

static int dm_mss_account_check(struct httpd_req *req, const char *account)
{
	if (dm_mss_account_ok(account))
		return 0;
	httpd_reply_error(req, 400, "bad_request",
	                  "body: key 'account': 1-64 characters of A-Z a-z 0-9 . _ -");
	return -1;
}

void dm_mss_subscriber_create(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_mss_subscriber_body *b = httpd_req_body(req);
	sqlite3_stmt *s;
	int rc;

	if (!admin_authorize(d, req) || dm_mss_account_check(req, b->account) == -1)
		return;
	s = db_prepare(d->db, "INSERT INTO subscriber (account, status, device_limit, created_at)"
	                      " VALUES (?, 'active', ?, ?)");
	if (s == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	sqlite3_bind_text(s, 1, b->account, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, b->device_limit);
	sqlite3_bind_int64(s, 3, (int64_t)time(NULL));
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		httpd_reply_error(req, 409, "subscriber_exists", "subscriber %s exists",
		                  b->account);
		return;
	}
	if (rc != SQLITE_DONE) {
		log_rerr(httpd_req_id(req), "insert subscriber: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	log_rinfo(httpd_req_id(req), "subscriber %s created (device_limit %lld) by '%s'",
	          b->account, (long long)b->device_limit, httpd_req_peer(req)->subject_cn);
	dm_mss_reply(req, 201,
	             json_pack("{s:s, s:I, s:s}", "account", b->account, "device_limit",
	                       (json_int_t)b->device_limit, "status", "active"));
}

void dm_mss_subscriber_status(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_mss_status_body *b = httpd_req_body(req);
	sqlite3_stmt *s;
	int rc, changed;

	if (!admin_authorize(d, req) || dm_mss_account_check(req, b->account) == -1)
		return;
	if (strcmp(b->status, "active") != 0 && strcmp(b->status, "suspended") != 0) {
		httpd_reply_error(req, 400, "bad_request",
		                  "body: key 'status': must be active or suspended");
		return;
	}
	if ((s = db_prepare(d->db, "UPDATE subscriber SET status = ? WHERE account = ?")) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	sqlite3_bind_text(s, 1, b->status, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, b->account, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	changed = sqlite3_changes(db_handle(d->db));
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		log_rerr(httpd_req_id(req), "update subscriber: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if (changed == 0) {
		httpd_reply_error(req, 404, "unknown_subscriber", "no subscriber %s", b->account);
		return;
	}
	log_rinfo(httpd_req_id(req), "subscriber %s set %s by '%s'", b->account, b->status,
	          httpd_req_peer(req)->subject_cn);
	dm_mss_reply(req, 200, json_pack("{s:s, s:s}", "account", b->account, "status", b->status));
}

int dm_mss_subscriber_find(struct daemon_ctx *d, const char *account, int64_t *id,
                           int64_t *device_limit, char *status, size_t statuslen)
{
	sqlite3_stmt *s;
	int rc;

	s = db_prepare(d->db, "SELECT id, device_limit, status FROM subscriber WHERE account = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		*device_limit = sqlite3_column_int64(s, 1);
		snprintf(status, statuslen, "%s", dm_mss_col_text(s, 2));
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}
