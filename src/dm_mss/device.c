/*
 * dm-mss device: the device records as dm-iss (GET /v1/internal/devices/<hw_id>, step 8) and
 * operators (GET /v1/admin/devices[/<hw_id>], POST /v1/admin/devices/revoke) see them.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "opendm/admin.h"
#include "opendm/log.h"
#include "dm_mss.h"

const struct schema_field dm_mss_hw_id_fields[] = {
    {"hw_id", SCHEMA_STRING, offsetof(struct dm_mss_hw_id_body, hw_id), 1, DM_MSS_HW_ID_MIN,
     DM_MSS_HW_ID_MAX, 0, NULL},
    SCHEMA_END,
};

/*
 * The device named by the path tail as a JSON object (full: with platform, creation time and
 * capability), or NULL after replying (bad hw id, unknown device, database error).
 */
static json_t *dm_mss_device_load(struct daemon_ctx *d, struct httpd_req *req, int full)
{
	const char *hw_id = httpd_req_tail(req);
	json_t *out = NULL, *cap;
	sqlite3_stmt *s;
	int rc;

	if (!dm_mss_hw_id_ok(hw_id)) {
		httpd_reply_error(req, 400, "bad_request", "hw_id: " DM_MSS_HW_ID_WHAT);
		return NULL;
	}
	s = db_prepare(d->db, "SELECT s.account, d.platform, d.status, d.created_at, d.capability"
	                      " FROM device d JOIN subscriber s ON s.id = d.subscriber_id"
	                      " WHERE d.hw_id = ?");
	if (s == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return NULL;
	}
	sqlite3_bind_text(s, 1, hw_id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		out = json_pack("{s:s, s:s, s:s}", "hw_id", hw_id, "account", dm_mss_col_text(s, 0),
		                "status", dm_mss_col_text(s, 2));
		if (out != NULL && full) {
			cap = json_loads(dm_mss_col_text(s, 4), 0, NULL);
			if (json_object_set_new(out, "platform",
			                        json_string(dm_mss_col_text(s, 1))) == -1 ||
			    json_object_set_new(out, "created_at",
			                        json_integer(sqlite3_column_int64(s, 3))) == -1 ||
			    json_object_set_new(out, "capability",
			                        cap != NULL ? cap : json_object()) == -1) {
				json_decref(out);
				out = NULL;
			}
		}
	}
	sqlite3_reset(s);
	if (rc == SQLITE_DONE) {
		httpd_reply_error(req, 404, "unknown_device", "no device %s", hw_id);
		return NULL;
	}
	if (rc != SQLITE_ROW) {
		log_rerr(httpd_req_id(req), "device lookup: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		return NULL;
	}
	if (out == NULL)
		httpd_reply_error(req, 500, "internal_error", "out of memory");
	return out;
}

void dm_mss_internal_device(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	json_t *dev;

	if (!admin_authorize_service(d, req, "dm-iss"))
		return;
	if ((dev = dm_mss_device_load(d, req, 0)) != NULL)
		httpd_reply_json(req, 200, dev);
}

void dm_mss_admin_device_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	json_t *dev;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ))
		return;
	if ((dev = dm_mss_device_load(d, req, 1)) != NULL)
		httpd_reply_json(req, 200, dev);
}

void dm_mss_admin_device_revoke(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_mss_hw_id_body *b = httpd_req_body(req);
	char actor[256], from[16];
	int rc;

	if (!admin_authorize(d, req, ADMIN_ROLE_SUBSCRIBERS))
		return;
	if (!dm_mss_hw_id_ok(b->hw_id)) {
		httpd_reply_error(req, 400, "bad_request", "body: key 'hw_id': " DM_MSS_HW_ID_WHAT);
		return;
	}
	rc = dm_mss_status_set(d->db, httpd_req_id(req), admin_actor(d, req, actor, sizeof(actor)),
	                       &dm_mss_device_revoke_kind, b->hw_id, "revoked", (int64_t)time(NULL),
	                       from, sizeof(from));
	if (rc == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if (rc == 0) {
		httpd_reply_error(req, 404, "unknown_device", "no device %s", b->hw_id);
		return;
	}
	log_rinfo(httpd_req_id(req), "device %s revoked (was %s) by '%s'", b->hw_id, from,
	          httpd_req_peer(req)->subject_cn);
	dm_mss_reply(req, 200, json_pack("{s:s, s:s}", "hw_id", b->hw_id, "status", "revoked"));
}

void dm_mss_admin_device_list(struct httpd_req *req, void *arg)
{
	static const char *const keys[] = {"hw_id",  "account",    "platform",
	                                   "status", "created_at", NULL};
	struct daemon_ctx *d = arg;
	char account[DM_MSS_ACCOUNT_MAX + 1], status[16];
	json_t *rows = NULL;
	sqlite3_stmt *s;
	int ra, rs;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ) ||
	    (ra = dm_mss_query(req, "account", account, sizeof(account), dm_mss_account_ok,
	                       DM_MSS_NAME_WHAT)) == -1 ||
	    (rs = dm_mss_query(req, "status", status, sizeof(status), dm_mss_device_status_ok,
	                       "active or revoked")) == -1)
		return;
	s = db_prepare(d->db,
	               "SELECT d.hw_id, s.account, d.platform, d.status, d.created_at"
	               " FROM device d JOIN subscriber s ON s.id = d.subscriber_id"
	               " WHERE (?1 IS NULL OR s.account = ?1) AND (?2 IS NULL OR d.status = ?2)"
	               " ORDER BY d.created_at, d.hw_id LIMIT ?3");
	if (s != NULL) {
		if (ra == 1)
			sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC);
		if (rs == 1)
			sqlite3_bind_text(s, 2, status, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 3, DM_MSS_LIST_MAX);
		rows = dm_mss_rows(d->db, s, keys);
	}
	if (rows == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	dm_mss_reply(req, 200, json_pack("{s:o}", "devices", rows));
}
