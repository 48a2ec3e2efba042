/* cdcs-pss device: what operators see of one device (GET /v1/admin/devices/<dm_id>): the
 * CDCSs it has and the last decisions made for it, with their reasons. */
#include "opendm/admin.h"
#include "cdcs_pss.h"

void cdcs_pss_device_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	const char *dm_id = httpd_req_tail(req);
	json_t *doc;

	if (!admin_authorize(d, req))
		return;
	if (!dmpeer_id_ok(dm_id)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "dm_id: 1-128 characters of A-Z a-z 0-9 . _ : -");
		return;
	}
	/* An unknown DM id has no CDCS and no decision: that is the answer, not a 404, since
	 * dm-iss, not we, knows which DM ids exist. */
	if ((doc = cdcs_pss_store_device(d->db, dm_id)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	httpd_reply_json(req, 200, doc);
}
