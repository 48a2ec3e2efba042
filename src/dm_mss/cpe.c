/*
 * dm-mss cpe: the registry of CPEs (set-top boxes, by their certificate's CN) whose pairing
 * assertions authenticate devices for a subscriber. Operators register a CPE to an account,
 * deactivate it (lost, returned, replaced) or activate it again, and list them.
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
	httpd_reply_error(req, 400, "bad_request", "%s: " DM_MSS_NAME_WHAT, where);
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

	if (!admin_authorize(d, req, ADMIN_ROLE_SUBSCRIBERS) ||
	    dm_mss_cpe_cn_check(req, "body: key 'cn'", b->cn) == -1)
		return;
	if (!dm_mss_account_ok(b->account)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "body: key 'account': " DM_MSS_NAME_WHAT);
		return;
	}
	if (db_begin(d->db) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if ((rc = dm_mss_subscriber_find(d, b->account, &sub_id, &limit, sub_status,
	                                 sizeof(sub_status))) == 0) {
		db_rollback(d->db);
		httpd_reply_error(req, 404, "unknown_subscriber", "no subscriber %s", b->account);
		return;
	}
	s = rc == 1 ? db_prepare(d->db, "INSERT INTO cpe (cn, subscriber_id, status, created_at)"
	                                " VALUES (?, ?, 'active', ?)")
	            : NULL;
	if (s == NULL)
		goto fail;
	sqlite3_bind_text(s, 1, b->cn, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, sub_id);
	sqlite3_bind_int64(s, 3, now);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		db_rollback(d->db);
		httpd_reply_error(req, 409, "cpe_exists", "CPE %s is registered", b->cn);
		return;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	if (dm_mss_commit_audited(d, req, "cpe.add", b->cn,
	                          json_pack("{s:s}", "account", b->account)) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	log_rinfo(httpd_req_id(req), "CPE %s registered to subscriber %s by '%s'", b->cn,
	          b->account, httpd_req_peer(req)->subject_cn);
	dm_mss_reply(req, 201,
	             json_pack("{s:s, s:s, s:s, s:I}", "cn", b->cn, "account", b->account, "status",
	                       "active", "created_at", (json_int_t)now));
	return;

fail:
	log_rerr(httpd_req_id(req), "insert cpe: %s", db_errmsg(d->db));
	db_rollback(d->db);
	httpd_reply_error(req, 500, "internal_error", "database error");
}

void dm_mss_cpe_status(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_mss_cpe_status_body *b = httpd_req_body(req);
	char actor[256], from[16];
	int rc;

	if (!admin_authorize(d, req, ADMIN_ROLE_SUBSCRIBERS) ||
	    dm_mss_cpe_cn_check(req, "body: key 'cn'", b->cn) == -1)
		return;
	if (strcmp(b->status, "active") != 0 && strcmp(b->status, "inactive") != 0) {
		httpd_reply_error(req, 400, "bad_request",
		                  "body: key 'status': must be active or inactive");
		return;
	}
	rc = dm_mss_status_set(d->db, httpd_req_id(req), admin_actor(d, req, actor, sizeof(actor)),
	                       &dm_mss_cpe_status_kind, b->cn, b->status, (int64_t)time(NULL), from,
	                       sizeof(from));
	if (rc == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if (rc == 0) {
		httpd_reply_error(req, 404, "unknown_cpe", "no CPE %s", b->cn);
		return;
	}
	log_rinfo(httpd_req_id(req), "CPE %s set %s (was %s) by '%s'", b->cn, b->status, from,
	          httpd_req_peer(req)->subject_cn);
	dm_mss_reply(req, 200, json_pack("{s:s, s:s}", "cn", b->cn, "status", b->status));
}

void dm_mss_cpe_list(struct httpd_req *req, void *arg)
{
	static const char *const keys[] = {"cn", "account", "status", "created_at", NULL};
	struct daemon_ctx *d = arg;
	char account[DM_MSS_ACCOUNT_MAX + 1];
	json_t *rows = NULL;
	sqlite3_stmt *s;
	int rc;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ) ||
	    (rc = dm_mss_query(req, "account", account, sizeof(account), dm_mss_account_ok,
	                       DM_MSS_NAME_WHAT)) == -1)
		return;
	s = db_prepare(d->db, "SELECT c.cn, s.account, c.status, c.created_at FROM cpe c"
	                      " JOIN subscriber s ON s.id = c.subscriber_id"
	                      " WHERE (?1 IS NULL OR s.account = ?1)"
	                      " ORDER BY c.created_at, c.cn LIMIT ?2");
	if (s != NULL) {
		if (rc == 1)
			sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 2, DM_MSS_LIST_MAX);
		rows = dm_mss_rows(d->db, s, keys);
	}
	if (rows == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	dm_mss_reply(req, 200, json_pack("{s:o}", "cpes", rows));
}

void dm_mss_cpe_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	const char *cn = httpd_req_tail(req);
	json_t *out = NULL;
	sqlite3_stmt *s;
	int rc;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ) || dm_mss_cpe_cn_check(req, "cn", cn) == -1)
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
