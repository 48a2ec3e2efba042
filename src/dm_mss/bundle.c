/*
 * dm-mss bundle: POST /v1/admin/offline-bundles. A commissioned third party (or an operator)
 * gets, for one device, everything steps 1-4 would have given it online, so the device can do
 * steps 5-12 without reaching dm-mss. The same checks as step 2 apply, except the activation
 * code: the caller's certificate stands for it. bundle_sig binds manifest and token together
 * for the device, which trusts the enrolment key.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opendm/jose.h"
#include "opendm/log.h"
#include "dm_mss.h"

#define DM_MSS_ERRLEN 512

const struct schema_field dm_mss_bundle_fields[] = {
    {"hw_id", SCHEMA_STRING, offsetof(struct dm_mss_bundle_body, hw_id), 1, DM_MSS_HW_ID_MIN,
     DM_MSS_HW_ID_MAX, 0, NULL},
    {"account", SCHEMA_STRING, offsetof(struct dm_mss_bundle_body, account), 1, 1,
     DM_MSS_ACCOUNT_MAX, 0, NULL},
    {"capability", SCHEMA_OBJECT, offsetof(struct dm_mss_bundle_body, capability), 1, 0, 0, 0,
     capability_fields},
    SCHEMA_END,
};

static char *dm_mss_bundle_sig(struct daemon_ctx *d, const char *hw_id, const char *manifest,
                               const char *token, int64_t ttl_s, char *err, size_t errlen)
{
	char msha[65], tsha[65];
	json_t *claims;
	char *jws;

	if (dm_mss_sha256_hex(manifest, strlen(manifest), msha) == -1 ||
	    dm_mss_sha256_hex(token, strlen(token), tsha) == -1 ||
	    (claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "iss", "dm-mss", "aud",
	                        "opendm-dm-app", "sub", hw_id, "manifest_sha256", msha,
	                        "token_sha256", tsha, "dm_iss_url", dm_mss_conf(d)->dm_iss_url)) ==
	        NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	jws = jose_sign(dm_mss_state(d)->enrol_key, NULL, claims, ttl_s, err, errlen);
	json_decref(claims);
	return jws;
}

/* Input checks that need no database; on refusal reply and return -1. */
static int dm_mss_bundle_check(struct httpd_req *req, struct dm_mss_bundle_body *b)
{
	char err[DM_MSS_ERRLEN];

	if (!dm_mss_hw_id_ok(b->hw_id)) {
		httpd_reply_error(req, 400, "bad_request", "body: key 'hw_id': " DM_MSS_HW_ID_WHAT);
		return -1;
	}
	if (!dm_mss_account_ok(b->account)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "body: key 'account': " DM_MSS_NAME_WHAT);
		return -1;
	}
	if (capability_check(&b->capability, "capability", err, sizeof(err)) == -1) {
		httpd_reply_error(req, 400, "bad_request", "body: %s", err);
		return -1;
	}
	return 0;
}

void dm_mss_bundle_create(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct dm_mss_bundle_body *b = httpd_req_body(req);
	const char *rid = httpd_req_id(req);
	int64_t now = (int64_t)time(NULL), limit = 0, ttl = dm_mss_bundle_ttl(d);
	char status[16], url[128], err[DM_MSS_ERRLEN];
	const struct dm_mss_pkg *pkg;
	char *token = NULL, *sig = NULL;
	json_t *how = NULL;
	struct dm_mss_admit a;
	int found;

	if (!dm_mss_authorize_bundle_maker(d, req) || dm_mss_bundle_check(req, b) == -1)
		return;
	memset(&a, 0, sizeof(a));
	snprintf(a.account, sizeof(a.account), "%s", b->account);
	if (db_begin(d->db) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	found =
	    dm_mss_subscriber_find(d, b->account, &a.subscriber_id, &limit, status, sizeof(status));
	if (found == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto fail;
	}
	if (found == 0) {
		httpd_reply_error(req, 404, "unknown_subscriber", "no subscriber %s", b->account);
		goto fail;
	}
	if (dm_mss_admit_device(d, req, b->hw_id, &a, limit, status) == -1)
		goto fail;
	if ((pkg = dm_mss_package_newest(dm_mss_state(d), b->capability.platform)) == NULL) {
		httpd_reply_error(req, 404, "no_package", "no DM agent for platform %s",
		                  b->capability.platform);
		goto fail;
	}
	if ((token = dm_mss_enrolment_token(d, b->hw_id, a.account, pkg->platform, ttl, err,
	                                    sizeof(err))) == NULL ||
	    (sig = dm_mss_bundle_sig(d, b->hw_id, pkg->manifest, token, ttl, err, sizeof(err))) ==
	        NULL) {
		log_rerr(rid, "cannot sign the bundle: %s", err);
		httpd_reply_error(req, 500, "internal_error", "cannot sign the bundle");
		goto fail;
	}
	if ((how = json_pack("{s:s}", "via", "offline_bundle")) == NULL ||
	    dm_mss_record_device(d, req, &a, b->hw_id, &b->capability, now, how) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto fail;
	}
	/* Committed (or rolled back) with the device row and its device.register row. */
	if (dm_mss_commit_audited(d, req, "offline_bundle.issue", b->hw_id,
	                          json_pack("{s:s, s:s, s:I, s:I}", "account", a.account,
	                                    "platform", pkg->platform, "version_number",
	                                    (json_int_t)pkg->version_number, "expires_at",
	                                    (json_int_t)(now + ttl))) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto out;
	}
	dm_mss_package_url(pkg, url, sizeof(url));
	log_rinfo(rid,
	          "offline bundle for %s (subscriber %s, %s version_number %lld, valid %llds) "
	          "made by '%s'",
	          b->hw_id, a.account, pkg->platform, (long long)pkg->version_number,
	          (long long)ttl, httpd_req_peer(req)->subject_cn);
	dm_mss_reply(req, 201,
	             json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "hw_id", b->hw_id, "manifest",
	                       pkg->manifest, "package_url", url, "enrolment_token", token,
	                       "dm_iss_url", dm_mss_conf(d)->dm_iss_url, "bundle_sig", sig));
	goto out;

fail:
	db_rollback(d->db);
out:
	json_decref(how);
	free(token);
	free(sig);
}
