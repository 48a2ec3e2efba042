/* dm-mss subscriber: operators create subscribers, suspend or reactivate them, list them and
 * look at one with its devices and CPEs. */
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
	httpd_reply_error(req, 400, "bad_request", "body: key 'account': " DM_MSS_NAME_WHAT);
	return -1;
}

void dm_mss_subscriber_create(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_mss_subscriber_body *b = httpd_req_body(req);
	sqlite3_stmt *s;
	int rc;

	if (!admin_authorize(d, req, ADMIN_ROLE_SUBSCRIBERS) ||
	    dm_mss_account_check(req, b->account) == -1)
		return;
	if (db_begin(d->db) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	s = db_prepare(d->db, "INSERT INTO subscriber (account, status, device_limit, created_at)"
	                      " VALUES (?, 'active', ?, ?)");
	if (s == NULL)
		goto fail;
	sqlite3_bind_text(s, 1, b->account, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, b->device_limit);
	sqlite3_bind_int64(s, 3, (int64_t)time(NULL));
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		db_rollback(d->db);
		httpd_reply_error(req, 409, "subscriber_exists", "subscriber %s exists",
		                  b->account);
		return;
	}
	if (rc != SQLITE_DONE) {
		log_rerr(httpd_req_id(req), "insert subscriber: %s", db_errmsg(d->db));
		goto fail;
	}
	if (dm_mss_commit_audited(
	        d, req, "subscriber.add", b->account,
	        json_pack("{s:I}", "device_limit", (json_int_t)b->device_limit)) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	log_rinfo(httpd_req_id(req), "subscriber %s created (device_limit %lld) by '%s'",
	          b->account, (long long)b->device_limit, httpd_req_peer(req)->subject_cn);
	dm_mss_reply(req, 201,
	             json_pack("{s:s, s:I, s:s}", "account", b->account, "device_limit",
	                       (json_int_t)b->device_limit, "status", "active"));
	return;

fail:
	db_rollback(d->db);
	httpd_reply_error(req, 500, "internal_error", "database error");
}

void dm_mss_subscriber_status(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_mss_status_body *b = httpd_req_body(req);
	char actor[256], from[16];
	int rc;

	if (!admin_authorize(d, req, ADMIN_ROLE_SUBSCRIBERS) ||
	    dm_mss_account_check(req, b->account) == -1)
		return;
	if (strcmp(b->status, "active") != 0 && strcmp(b->status, "suspended") != 0) {
		httpd_reply_error(req, 400, "bad_request",
		                  "body: key 'status': must be active or suspended");
		return;
	}
	rc = dm_mss_status_set(d->db, httpd_req_id(req), admin_actor(d, req, actor, sizeof(actor)),
	                       &dm_mss_subscriber_status_kind, b->account, b->status,
	                       (int64_t)time(NULL), from, sizeof(from));
	if (rc == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if (rc == 0) {
		httpd_reply_error(req, 404, "unknown_subscriber", "no subscriber %s", b->account);
		return;
	}
	log_rinfo(httpd_req_id(req), "subscriber %s set %s (was %s) by '%s'", b->account, b->status,
	          from, httpd_req_peer(req)->subject_cn);
	dm_mss_reply(req, 200, json_pack("{s:s, s:s}", "account", b->account, "status", b->status));
}

/* What a listing and a show share: the subscriber and how many devices and CPEs it has. */
#define DM_MSS_SUBSCRIBER_SQL                                                                      \
	"SELECT s.account, s.device_limit, s.status,"                                              \
	" (SELECT COUNT(*) FROM device d WHERE d.subscriber_id = s.id),"                           \
	" (SELECT COUNT(*) FROM cpe c WHERE c.subscriber_id = s.id) FROM subscriber s"

static const char *const dm_mss_subscriber_keys[] = {"account", "device_limit", "status",
                                                     "devices", "cpes",         NULL};

void dm_mss_subscriber_list(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	sqlite3_stmt *s;
	json_t *rows = NULL;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ))
		return;
	if ((s = db_prepare(d->db, DM_MSS_SUBSCRIBER_SQL " ORDER BY s.account LIMIT ?1")) != NULL) {
		sqlite3_bind_int(s, 1, DM_MSS_LIST_MAX);
		rows = dm_mss_rows(d->db, s, dm_mss_subscriber_keys);
	}
	if (rows == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	dm_mss_reply(req, 200, json_pack("{s:o}", "subscribers", rows));
}

/* The hw ids or CPE cns (column 0 of sql, ?1 the account, ?2 the limit) of a subscriber. */
static json_t *dm_mss_subscriber_ids(struct daemon_ctx *d, const char *sql, const char *account)
{
	sqlite3_stmt *s;

	if ((s = db_prepare(d->db, sql)) == NULL)
		return NULL;
	sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, DM_MSS_LIST_MAX);
	return dm_mss_rows(d->db, s, NULL);
}

void dm_mss_subscriber_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	const char *account = httpd_req_tail(req);
	json_t *rows = NULL, *out = NULL, *ids;
	sqlite3_stmt *s;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ))
		return;
	if (!dm_mss_account_ok(account)) {
		httpd_reply_error(req, 400, "bad_request", "account: " DM_MSS_NAME_WHAT);
		return;
	}
	if ((s = db_prepare(d->db, DM_MSS_SUBSCRIBER_SQL " WHERE s.account = ?1")) != NULL) {
		sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC);
		rows = dm_mss_rows(d->db, s, dm_mss_subscriber_keys);
	}
	if (rows == NULL)
		goto fail;
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		httpd_reply_error(req, 404, "unknown_subscriber", "no subscriber %s", account);
		return;
	}
	out = json_incref(json_array_get(rows, 0));
	ids = dm_mss_subscriber_ids(d,
	                            "SELECT d.hw_id FROM device d"
	                            " JOIN subscriber s ON s.id = d.subscriber_id"
	                            " WHERE s.account = ?1 ORDER BY d.created_at, d.hw_id LIMIT ?2",
	                            account);
	if (json_object_set_new(out, "device_ids", ids) == -1)
		goto fail;
	ids = dm_mss_subscriber_ids(
	    d,
	    "SELECT c.cn FROM cpe c JOIN subscriber s ON s.id = c.subscriber_id"
	    " WHERE s.account = ?1 ORDER BY c.created_at, c.cn LIMIT ?2",
	    account);
	if (json_object_set_new(out, "cpe_cns", ids) == -1)
		goto fail;
	json_decref(rows);
	httpd_reply_json(req, 200, out);
	return;

fail:
	json_decref(out);
	json_decref(rows);
	httpd_reply_error(req, 500, "internal_error", "database error");
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
