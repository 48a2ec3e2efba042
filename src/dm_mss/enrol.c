/*
 * dm-mss enrol: the part of step 2 that the online download request and the offline bundle
 * share (subscriber active, device not revoked nor someone else's, household limit), the
 * device record, and the enrolment token that lets the device personalize at dm-iss.
 */
#include <stdlib.h>
#include <string.h>

#include "opendm/audit.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "dm_mss.h"

static void dm_mss_db_fail(struct daemon_ctx *d, struct httpd_req *req, const char *what)
{
	log_rerr(httpd_req_id(req), "%s: %s", what, db_errmsg(d->db));
	httpd_reply_error(req, 500, "internal_error", "database error");
}

int dm_mss_admit_device(struct daemon_ctx *d, struct httpd_req *req, const char *hw_id,
                        struct dm_mss_admit *a, int64_t device_limit, const char *sub_status)
{
	sqlite3_stmt *s;
	int64_t dev_sub = 0, count = 0;
	const unsigned char *status;
	int rc, revoked = 0;

	if (strcmp(sub_status, "active") != 0) {
		httpd_reply_error(req, 403, "subscriber_inactive", "the subscriber is %s",
		                  sub_status);
		return -1;
	}
	if ((s = db_prepare(
	         d->db, "SELECT id, subscriber_id, status FROM device WHERE hw_id = ?")) == NULL) {
		dm_mss_db_fail(d, req, "device lookup");
		return -1;
	}
	sqlite3_bind_text(s, 1, hw_id, -1, SQLITE_STATIC);
	a->device_id = 0;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		a->device_id = sqlite3_column_int64(s, 0);
		dev_sub = sqlite3_column_int64(s, 1);
		status = sqlite3_column_text(s, 2);
		revoked = status == NULL || strcmp((const char *)status, "active") != 0;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		dm_mss_db_fail(d, req, "device lookup");
		return -1;
	}
	if (revoked) {
		httpd_reply_error(req, 403, "device_revoked", "device %s is revoked", hw_id);
		return -1;
	}
	if (a->device_id != 0 && dev_sub != a->subscriber_id) {
		/* hw ids are unique: letting another household take one over would hand it the
		 * device's identity; the operator revokes it first if it really changed hands. */
		httpd_reply_error(req, 409, "device_registered",
		                  "device %s is registered to another subscriber", hw_id);
		return -1;
	}
	if (a->device_id != 0)
		return 0; /* a re-install: already counted in the household */
	if ((s = db_prepare(d->db, "SELECT COUNT(*) FROM device"
	                           " WHERE subscriber_id = ? AND status = 'active'")) == NULL) {
		dm_mss_db_fail(d, req, "device count");
		return -1;
	}
	sqlite3_bind_int64(s, 1, a->subscriber_id);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		count = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW) {
		dm_mss_db_fail(d, req, "device count");
		return -1;
	}
	if (count >= device_limit) {
		httpd_reply_error(req, 409, "household_limit",
		                  "subscriber %s already has %lld of %lld devices", a->account,
		                  (long long)count, (long long)device_limit);
		return -1;
	}
	return 0;
}

int dm_mss_record_device(struct daemon_ctx *d, struct httpd_req *req, const struct dm_mss_admit *a,
                         const char *hw_id, const struct capability *cap, int64_t now, json_t *how)
{
	json_t *cj = capability_to_json(cap), *detail = NULL;
	char *text = cj != NULL ? json_dumps(cj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	sqlite3_stmt *s;
	int rc = -1;

	json_decref(cj);
	if (text == NULL)
		return -1;
	if (a->device_id != 0) {
		s = db_prepare(d->db,
		               "UPDATE device SET platform = ?, capability = ? WHERE id = ?");
		if (s == NULL)
			goto fail;
		sqlite3_bind_text(s, 1, cap->platform, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, a->device_id);
	} else {
		s = db_prepare(d->db, "INSERT INTO device (hw_id, subscriber_id, platform, status,"
		                      " created_at, capability) VALUES (?, ?, ?, 'active', ?, ?)");
		if (s == NULL)
			goto fail;
		sqlite3_bind_text(s, 1, hw_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, a->subscriber_id);
		sqlite3_bind_text(s, 3, cap->platform, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, now);
		sqlite3_bind_text(s, 5, text, -1, SQLITE_STATIC);
	}
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
	sqlite3_reset(s);
	if (rc == 0 &&
	    ((detail = json_pack("{s:s, s:s, s:b}", "account", a->account, "platform",
	                         cap->platform, "reinstall", a->device_id != 0)) == NULL ||
	     (how != NULL && json_object_update(detail, how) == -1) ||
	     audit_req(d, req, "device.register", hw_id, detail) == -1))
		rc = -1;
fail:
	if (rc == -1)
		log_rerr(httpd_req_id(req), "cannot record device %s: %s", hw_id, db_errmsg(d->db));
	json_decref(detail);
	free(text);
	return rc;
}

char *dm_mss_enrolment_token(struct daemon_ctx *d, const char *hw_id, const char *account,
                             const char *platform, int64_t ttl_s, char *err, size_t errlen)
{
	json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:s}", "iss", "dm-mss", "aud", "dm-iss",
	                           "sub", hw_id, "account", account, "platform", platform);
	char *jws;

	if (claims == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	jws = jose_sign(dm_mss_state(d)->enrol_key, NULL, claims, ttl_s, err, errlen);
	json_decref(claims);
	return jws;
}
