/*
 * dm-mss device: the device records as dm-iss (GET /v1/internal/devices/<hw_id>, step 8) and
 * operators (GET /v1/admin/devices/<hw_id>, POST /v1/admin/devices/revoke) see them.
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
		httpd_reply_error(req, 400, "bad_request",
		                  "hw_id: 4-64 characters of A-Z a-z 0-9 . _ : -");
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

	if (!admin_authorize(d, req))
		return;
	if ((dev = dm_mss_device_load(d, req, 1)) != NULL)
		httpd_reply_json(req, 200, dev);
}

void dm_mss_admin_device_revoke(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_mss_hw_id_body *b = httpd_req_body(req);
	sqlite3_stmt *s;
	int rc, changed;

	if (!admin_authorize(d, req))
		return;
	if (!dm_mss_hw_id_ok(b->hw_id)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "body: key 'hw_id': 4-64 characters of A-Z a-z 0-9 . _ : -");
		return;
	}
	/* Revoking twice keeps the first time: that is when the device stopped being trusted. */
	s = db_prepare(d->db, "UPDATE device SET status = 'revoked',"
	                      " revoked_at = COALESCE(revoked_at, ?) WHERE hw_id = ?");
	if (s == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	sqlite3_bind_int64(s, 1, (int64_t)time(NULL));
	sqlite3_bind_text(s, 2, b->hw_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	changed = sqlite3_changes(db_handle(d->db));
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		log_rerr(httpd_req_id(req), "revoke: %s", db_errmsg(d->db));
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if (changed == 0) {
		httpd_reply_error(req, 404, "unknown_device", "no device %s", b->hw_id);
		return;
	}
	log_rinfo(httpd_req_id(req), "device %s revoked by '%s'", b->hw_id,
	          httpd_req_peer(req)->subject_cn);
	dm_mss_reply(req, 200, json_pack("{s:s, s:s}", "hw_id", b->hw_id, "status", "revoked"));
}
