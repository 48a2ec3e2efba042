/*
 * cdcs-mss revocations: the operator's signed list of revoked CDCS versions and vendor keys
 * (docs/protocol.md, "Revocation list"). PUT /v1/admin/revocations stores a newer list and
 * marks what it revokes, which is then never offered, served or registered again; cdcs-pss
 * passes the list on to devices with each prepare answer. GET shows the list in force.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opendm/admin.h"
#include "opendm/audit.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "cdcs_mss.h"

const struct schema_field cdcs_mss_revocations_fields[] = {
    {"revocations", SCHEMA_STRING, offsetof(struct cdcs_mss_revocations_body, revocations), 1, 1,
     REVOCATION_MAX_JWS, 0, NULL},
    SCHEMA_END,
};

/*
 * The list in force, verified again with the operator key (what was stored verified then; a
 * changed operator_pubkey shows here). 1 (*rl filled, *jws malloc'd), 0 none, -1 (logged).
 */
static int cdcs_mss_revocations_load(struct cdcs_mss *s, struct revocation_list *rl, char **jws)
{
	char err[CDCS_MSS_ERRLEN];
	const char *code = NULL;
	int64_t serial;
	int r;

	memset(rl, 0, sizeof(*rl));
	if ((r = cdcs_mss_store_revocations_get(s->d->db, &serial, jws)) != 1)
		return r;
	if (revocation_verify(*jws, s->v.operator_pub, rl, &code, err, sizeof(err)) == -1 ||
	    rl->serial != serial) {
		log_err("the stored revocation list (serial %lld) does not verify with "
		        "operator_pubkey: %s",
		        (long long)serial, code != NULL ? err : "serial differs");
		revocation_free(rl);
		free(*jws);
		*jws = NULL;
		return -1;
	}
	return 1;
}

int cdcs_mss_revoked(struct cdcs_mss *s, const struct cdcs_mss_image *img, char *why, size_t whylen)
{
	struct revocation_list rl;
	char *jws = NULL;
	int r;

	if ((r = cdcs_mss_revocations_load(s, &rl, &jws)) != 1)
		return r;
	free(jws);
	r = 1;
	if (revocation_version_revoked(&rl, img->m.vendor, img->m.name, img->m.version_number))
		snprintf(why, whylen,
		         "%s/%s version %lld is revoked by revocation list serial %lld",
		         img->m.vendor, img->m.name, (long long)img->m.version_number,
		         (long long)rl.serial);
	else if (revocation_key_revoked(&rl, img->m.vendor, img->key_sha256))
		snprintf(why, whylen,
		         "the %s key that signed it (sha256 %s) is revoked by revocation list "
		         "serial %lld",
		         img->m.vendor, img->key_sha256, (long long)rl.serial);
	else
		r = 0;
	revocation_free(&rl);
	return r;
}

/* Store rl (as jws), mark what it revokes and audit it, in one transaction: the number of
 * images it revokes, or -1 replied (409 stale_revocations, 500). */
static int cdcs_mss_revocations_store(struct daemon_ctx *d, struct httpd_req *req,
                                      const struct revocation_list *rl, const char *jws)
{
	int64_t cur = 0, now = (int64_t)time(NULL);
	char subject[24], *old = NULL;
	json_t *detail = NULL;
	int n = -1, r;

	if (db_begin(d->db) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return -1;
	}
	if ((r = cdcs_mss_store_revocations_get(d->db, &cur, &old)) == -1)
		goto fail;
	free(old);
	if (rl->serial <= cur) {
		db_rollback(d->db);
		httpd_reply_error(req, 409, "stale_revocations",
		                  "key 'revocations': serial %lld is not newer than the stored "
		                  "serial %lld",
		                  (long long)rl->serial, (long long)cur);
		return -1;
	}
	snprintf(subject, sizeof(subject), "%lld", (long long)rl->serial);
	if (cdcs_mss_store_revocations_put(d->db, rl->serial, jws, now) == -1 ||
	    (n = cdcs_mss_store_image_revoke(d->db, rl, now)) == -1 ||
	    (detail = json_pack("{s:I, s:I, s:I, s:i}", "previous_serial", (json_int_t)cur,
	                        "versions", (json_int_t)rl->n_versions, "vendor_keys",
	                        (json_int_t)rl->n_keys, "revoked_images", n)) == NULL ||
	    audit_req(d, req, "revocations.update", subject, detail) == -1 ||
	    db_commit(d->db) == -1)
		goto fail;
	json_decref(detail);
	return n;
fail:
	json_decref(detail);
	db_rollback(d->db);
	httpd_reply_error(req, 500, "internal_error", "database error");
	return -1;
}

void cdcs_mss_revocations_put(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_mss *s = d->role_state;
	const struct cdcs_mss_revocations_body *b = httpd_req_body(req);
	const char *rid = httpd_req_id(req), *code = NULL;
	struct revocation_list rl;
	char err[CDCS_MSS_ERRLEN];
	int n;

	if (!admin_authorize(d, req, ADMIN_ROLE_CATALOGUE))
		return;
	if (revocation_verify(b->revocations, s->v.operator_pub, &rl, &code, err, sizeof(err)) ==
	    -1) {
		log_rwarn(rid, "revocation list refused (%s): %s", code, err);
		httpd_reply_error(req, 422, code, "key 'revocations': %s", err);
		return;
	}
	if ((n = cdcs_mss_revocations_store(d, req, &rl, b->revocations)) >= 0) {
		log_rinfo(rid,
		          "revocation list serial %lld stored by '%s': %zu version(s), %zu vendor "
		          "key(s), %d image(s) revoked",
		          (long long)rl.serial, httpd_req_peer(req)->subject_cn, rl.n_versions,
		          rl.n_keys, n);
		httpd_reply_json(
		    req, 200,
		    json_pack("{s:I, s:i}", "serial", (json_int_t)rl.serial, "revoked_images", n));
	}
	revocation_free(&rl);
}

void cdcs_mss_revocations_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_mss *s = d->role_state;
	struct revocation_list rl;
	json_t *o = NULL, *j = NULL;
	char *jws = NULL;
	int r;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ))
		return;
	if ((r = cdcs_mss_revocations_load(s, &rl, &jws)) == -1) {
		httpd_reply_error(req, 500, "internal_error",
		                  "the stored revocation list cannot be read or verified");
		return;
	}
	if ((j = revocation_to_json(&rl)) != NULL)
		o = json_pack("{s:I, s:s?, s:O, s:O}", "serial", (json_int_t)rl.serial,
		              "revocations", jws, "versions", json_object_get(j, "versions"),
		              "vendor_keys", json_object_get(j, "vendor_keys"));
	if (o == NULL)
		httpd_reply_error(req, 500, "internal_error", "out of memory");
	else
		httpd_reply_json(req, 200, o);
	json_decref(j);
	free(jws);
	revocation_free(&rl);
}

/* 1 if manifest_jws carries a valid signature by key (its expiry aside: it was valid when
 * it was registered, which is what is asked), else 0. */
static int cdcs_mss_signed_by(const char *manifest_jws, EVP_PKEY *key)
{
	struct cdcsimg_manifest m;
	struct jose_expect ex;
	char err[CDCS_MSS_ERRLEN];
	const char *code;
	json_t *c;

	if (cdcsimg_manifest_peek(manifest_jws, &m, err, sizeof(err)) == -1)
		return 0;
	memset(&ex, 0, sizeof(ex));
	ex.iss = m.vendor;
	ex.aud = CDCSIMG_AUD;
	ex.sub = CDCSIMG_SUB;
	ex.now = (time_t)m.iat;
	if ((c = jose_verify(key, manifest_jws, &ex, &code, err, sizeof(err))) == NULL)
		return 0;
	json_decref(c);
	return 1;
}

int cdcs_mss_revocations_init(struct cdcs_mss *s)
{
	struct db *db = s->d->db;
	struct cdcs_mss_image img;
	struct revocation_list rl;
	char hex[65], *jws = NULL;
	int64_t id = 0;
	EVP_PKEY *key;
	int r, n;

	while ((r = cdcs_mss_store_image_next_unkeyed(db, id, &id)) == 1) {
		if ((r = cdcs_mss_store_image_by_id(db, id, &img)) != 1)
			return -1;
		key = cdcsimg_keyring_find(&s->v.vendors, img.m.vendor);
		if (key != NULL && cdcs_mss_signed_by(img.manifest, key) &&
		    revocation_key_sha256(key, hex) == 0) {
			if (cdcs_mss_store_image_set_key(db, id, hex) == -1) {
				cdcs_mss_image_clear(&img);
				return -1;
			}
			log_info("image %s: vendor key sha256 %.12s... recorded", img.path, hex);
		} else
			log_warn("image %s: the %s key in vendor_keys did not sign it, so a "
			         "revoked vendor key cannot be matched to it",
			         img.path, img.m.vendor);
		cdcs_mss_image_clear(&img);
	}
	if (r == -1)
		return -1;
	/* The list may revoke a key only now recorded; a list that no longer verifies leaves
	 * the marks as they are (and GET says so). */
	if ((r = cdcs_mss_revocations_load(s, &rl, &jws)) != 1)
		return 0;
	if ((n = db_begin(db)) == 0 &&
	    ((n = cdcs_mss_store_image_revoke(db, &rl, time(NULL))) == -1 || db_commit(db) == -1)) {
		db_rollback(db);
		n = -1;
	}
	if (n != -1)
		log_info("revocation list serial %lld in force: %d image(s) revoked",
		         (long long)rl.serial, n);
	revocation_free(&rl);
	free(jws);
	return n == -1 ? -1 : 0;
}
