/*
 * cdcs-mss images: the operator's side of the catalogue. POST /v1/admin/images registers a
 * directory dmctl published (verified in full: catalogue.c), POST /v1/admin/images/withdraw
 * stops an image being offered or served, GET /v1/admin/images lists them. Each change is
 * audited in its own transaction.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "opendm/admin.h"
#include "opendm/audit.h"
#include "opendm/log.h"
#include "cdcs_mss.h"

const struct schema_field cdcs_mss_path_fields[] = {
    {"path", SCHEMA_STRING, offsetof(struct cdcs_mss_path_body, path), 1, 1, CDCS_MSS_RELPATH_MAX,
     0, NULL},
    SCHEMA_END,
};

const struct schema_field cdcs_mss_ident_fields[] = {
    {"vendor", SCHEMA_STRING, offsetof(struct cdcs_mss_ident_body, vendor), 1, 1, CDCSIMG_ID_MAX, 0,
     NULL},
    {"name", SCHEMA_STRING, offsetof(struct cdcs_mss_ident_body, name), 1, 1, CDCSIMG_ID_MAX, 0,
     NULL},
    {"variant", SCHEMA_STRING, offsetof(struct cdcs_mss_ident_body, variant), 1, 1,
     CDCSIMG_VARIANT_MAX, 0, NULL},
    {"platform", SCHEMA_STRING, offsetof(struct cdcs_mss_ident_body, platform), 1, 1,
     CDCSIMG_PLATFORM_MAX, 0, NULL},
    {"version_number", SCHEMA_INT, offsetof(struct cdcs_mss_ident_body, version_number), 1, 1,
     INT64_MAX, 0, NULL},
    SCHEMA_END,
};

/* The audit row of an operator's change to an image: subject vendor/name. 0/-1. */
static int cdcs_mss_audit_image(struct daemon_ctx *d, struct httpd_req *req, const char *action,
                                const char *vendor, const char *name, const char *variant,
                                const char *platform, int64_t version_number)
{
	char subject[2 * CDCSIMG_ID_MAX + 2];
	json_t *detail;
	int rc;

	snprintf(subject, sizeof(subject), "%s/%s", vendor, name);
	if ((detail = json_pack("{s:s, s:s, s:I}", "variant", variant, "platform", platform,
	                        "version_number", (json_int_t)version_number)) == NULL)
		return -1;
	rc = audit_req(d, req, action, subject, detail);
	json_decref(detail);
	return rc;
}

/* Insert img and its audit row together. 0/-1. */
static int cdcs_mss_register_tx(struct daemon_ctx *d, struct httpd_req *req,
                                struct cdcs_mss_image *img)
{
	const struct cdcsimg_manifest *m = &img->m;

	if (db_begin(d->db) == -1)
		return -1;
	if (cdcs_mss_store_image_insert(d->db, img) == -1 ||
	    cdcs_mss_audit_image(d, req, "image.register", m->vendor, m->name, m->variant,
	                         m->platform, m->version_number) == -1 ||
	    db_commit(d->db) == -1) {
		db_rollback(d->db);
		return -1;
	}
	return 0;
}

/* The vendor key that verified img into img->key_sha256, then whether the stored revocation
 * list revokes img. 0, or -1 replied (422 revoked, 500). */
static int cdcs_mss_register_check(struct daemon_ctx *d, struct httpd_req *req,
                                   struct cdcs_mss_image *img)
{
	struct cdcs_mss *s = d->role_state;
	char why[CDCS_MSS_ERRLEN];
	int r;

	/* One key per vendor in the ring, and cdcsimg_verify() used that one. */
	if (revocation_key_sha256(cdcsimg_keyring_find(&s->v.vendors, img->m.vendor),
	                          img->key_sha256) == -1) {
		log_rerr(httpd_req_id(req), "no digest of the %s key", img->m.vendor);
		httpd_reply_error(req, 500, "internal_error", "cannot identify the vendor key");
		return -1;
	}
	if ((r = cdcs_mss_revoked(s, img, why, sizeof(why))) == 0)
		return 0;
	if (r == -1) {
		httpd_reply_error(req, 500, "internal_error",
		                  "the stored revocation list cannot be read or verified");
		return -1;
	}
	log_rwarn(httpd_req_id(req), "image %s refused: %s", img->path, why);
	httpd_reply_error(req, 422, "revoked", "key 'path': %s", why);
	return -1;
}

static void cdcs_mss_reply_image(struct httpd_req *req, int status,
                                 const struct cdcs_mss_image *img)
{
	json_t *o;

	if ((o = cdcs_mss_image_json(img)) == NULL)
		httpd_reply_error(req, 500, "internal_error", "out of memory");
	else
		httpd_reply_json(req, status, o);
}

void cdcs_mss_admin_register(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_mss *s = d->role_state;
	struct cdcs_mss_path_body *b = httpd_req_body(req);
	const char *rid = httpd_req_id(req), *code = NULL;
	struct cdcs_mss_image img, old;
	char err[CDCS_MSS_ERRLEN];
	int status = 0, r;

	memset(&old, 0, sizeof(old));
	if (!admin_authorize(d, req, ADMIN_ROLE_CATALOGUE))
		return;
	/* Hashes the image in the loop: an operator action, bounded by CDCSIMG_MAX_SIZE. */
	if (cdcs_mss_catalogue_verify(&s->v, s->catalogue_dir, b->path, time(NULL), &img, &status,
	                              &code, err, sizeof(err)) == -1) {
		log_rwarn(rid, "image %s refused (%s): %s", b->path, code, err);
		httpd_reply_error(req, status, code, "%s", err);
		return;
	}
	if (cdcs_mss_register_check(d, req, &img) == -1)
		goto out;
	r = cdcs_mss_store_image_get(d->db, img.m.vendor, img.m.name, img.m.variant, img.m.platform,
	                             img.m.version_number, &old);
	if (r == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto out;
	}
	if (r == 1) {
		/* The same bytes again is a retry; other bytes under a used version never are. */
		if (strcmp(old.m.sha256, img.m.sha256) != 0) {
			log_rwarn(rid,
			          "image %s refused: version %lld already registered with "
			          "sha256 %.12s...",
			          b->path, (long long)old.m.version_number, old.m.sha256);
			httpd_reply_error(
			    req, 409, "image_exists",
			    "%s/%s %s %s version %lld is already registered with other "
			    "content",
			    old.m.vendor, old.m.name, old.m.variant, old.m.platform,
			    (long long)old.m.version_number);
		} else
			cdcs_mss_reply_image(req, 200, &old);
		goto out;
	}
	img.registered_at = (int64_t)time(NULL);
	if (cdcs_mss_register_tx(d, req, &img) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto out;
	}
	log_rinfo(rid, "registered %s/%s %s %s v%lld (%s, %lld bytes, sha256 %.12s...) by '%s'",
	          img.m.vendor, img.m.name, img.m.variant, img.m.platform,
	          (long long)img.m.version_number, img.m.version, (long long)img.m.size,
	          img.m.sha256, httpd_req_peer(req)->subject_cn);
	cdcs_mss_reply_image(req, 201, &img);
out:
	cdcs_mss_image_clear(&img);
	cdcs_mss_image_clear(&old);
}

void cdcs_mss_admin_withdraw(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_mss_ident_body *b = httpd_req_body(req);
	struct cdcs_mss_image img;
	int r;

	if (!admin_authorize(d, req, ADMIN_ROLE_CATALOGUE))
		return;
	if (!cdcsimg_valid_id(b->vendor) || !cdcsimg_valid_id(b->name) ||
	    !cdcsimg_valid_variant(b->variant) || !cdcsimg_valid_platform(b->platform)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "body: vendor, name, platform: [A-Za-z0-9._-]; variant: "
		                  "[a-z0-9_-]");
		return;
	}
	if (db_begin(d->db) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	r = cdcs_mss_store_image_withdraw(d->db, b->vendor, b->name, b->variant, b->platform,
	                                  b->version_number, (int64_t)time(NULL));
	if (r == 1 && (cdcs_mss_audit_image(d, req, "image.withdraw", b->vendor, b->name,
	                                    b->variant, b->platform, b->version_number) == -1 ||
	               db_commit(d->db) == -1))
		r = -1;
	if (r != 1)
		db_rollback(d->db);
	if (r == 0) {
		httpd_reply_error(req, 404, "unknown_image", "no image %s/%s %s %s version %lld",
		                  b->vendor, b->name, b->variant, b->platform,
		                  (long long)b->version_number);
		return;
	}
	if (r == -1 || cdcs_mss_store_image_get(d->db, b->vendor, b->name, b->variant, b->platform,
	                                        b->version_number, &img) != 1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	log_rinfo(httpd_req_id(req), "withdrawn %s/%s %s %s v%lld by '%s'", b->vendor, b->name,
	          b->variant, b->platform, (long long)b->version_number,
	          httpd_req_peer(req)->subject_cn);
	cdcs_mss_reply_image(req, 200, &img);
	cdcs_mss_image_clear(&img);
}

void cdcs_mss_admin_list(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	json_t *list, *o;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ))
		return;
	if ((list = cdcs_mss_store_image_list(d->db)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if ((o = json_pack("{s:o}", "images", list)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	httpd_reply_json(req, 200, o);
}
