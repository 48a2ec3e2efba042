/* cdcs-pss device: what operators see of the devices: the list (GET /v1/admin/devices) and
 * one device (GET /v1/admin/devices/<dm_id>): the CDCSs it has, the last decisions made for
 * it with their reasons, and its campaigns. */
#include <stdio.h>
#include <string.h>

#include "opendm/admin.h"
#include "cdcs_pss.h"

const char *cdcs_pss_path_dm_id(struct httpd_req *req)
{
	const char *dm_id = httpd_req_tail(req);

	if (dmpeer_id_ok(dm_id))
		return dm_id;
	httpd_reply_error(req, 400, "bad_request",
	                  "dm_id: 1-128 characters of A-Z a-z 0-9 . _ : -");
	return NULL;
}

void cdcs_pss_device_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	const char *dm_id;
	json_t *doc;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ) || (dm_id = cdcs_pss_path_dm_id(req)) == NULL)
		return;
	/* An unknown DM id has no CDCS and no decision: that is the answer, not a 404, since
	 * dm-iss, not we, knows which DM ids exist. */
	if ((doc = cdcs_pss_store_device(d->db, dm_id)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	httpd_reply_json(req, 200, doc);
}

/* ?cdcs=VENDOR/NAME into vendor and name: 1 given, 0 absent, -1 replied 400. */
static int cdcs_pss_query_cdcs(struct httpd_req *req, char *vendor, char *name)
{
	char v[2 * POLICY_ID_MAX + 2], *slash;
	int rc;

	if ((rc = httpd_req_query(req, "cdcs", v, sizeof(v))) == 0)
		return 0;
	if (rc == 1 && (slash = strchr(v, '/')) != NULL) {
		*slash = '\0';
		if (policy_id_ok(v) && policy_id_ok(slash + 1)) {
			/* policy_id_ok(): at most POLICY_ID_MAX characters each. */
			memcpy(vendor, v, strlen(v) + 1);
			memcpy(name, slash + 1, strlen(slash + 1) + 1);
			return 1;
		}
	}
	httpd_reply_error(req, 400, "bad_request", "cdcs: VENDOR/NAME, each of a-z 0-9 . _ -");
	return -1;
}

void cdcs_pss_device_list(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	char account[POLICY_ACCOUNT_MAX + 1], vendor[POLICY_ID_MAX + 1], name[POLICY_ID_MAX + 1];
	json_t *list;
	int has_account, has_cdcs;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ))
		return;
	if ((has_account = httpd_req_query(req, "account", account, sizeof(account))) == -1 ||
	    (has_account == 1 && !policy_account_ok(account))) {
		httpd_reply_error(req, 400, "bad_request",
		                  "account: 1-64 characters of A-Z a-z 0-9 . _ -");
		return;
	}
	if ((has_cdcs = cdcs_pss_query_cdcs(req, vendor, name)) == -1)
		return;
	if ((list = cdcs_pss_store_devices(d->db, has_account ? account : NULL,
	                                   has_cdcs ? vendor : NULL, has_cdcs ? name : NULL,
	                                   CDCS_PSS_DEVICES_MAX)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	httpd_reply_json(req, 200, json_pack("{s:o}", "devices", list));
}
