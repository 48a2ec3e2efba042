/*
 * POST /v1/internal/prepare: Figure 5 step 5 (docs/protocol.md). cdcs-pss names the CDCSs its
 * decision chose; for each, the newest registered image that fits (not withdrawn, not revoked,
 * not older than what the device has) is offered with its manifest, approval and a single-use
 * download ticket bound to the device. The revocation list in force goes with the answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/admin.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "cdcs_mss.h"

#define CDCS_MSS_REASON_MAX 256

static const struct schema_field cdcs_mss_prepare_item_fields[] = {
    {"vendor", SCHEMA_STRING, offsetof(struct cdcs_mss_prepare_item, vendor), 1, 1, CDCSIMG_ID_MAX,
     0, NULL},
    {"name", SCHEMA_STRING, offsetof(struct cdcs_mss_prepare_item, name), 1, 1, CDCSIMG_ID_MAX, 0,
     NULL},
    {"variant", SCHEMA_STRING, offsetof(struct cdcs_mss_prepare_item, variant), 1, 1,
     CDCSIMG_VARIANT_MAX, 0, NULL},
    {"min_version", SCHEMA_INT, offsetof(struct cdcs_mss_prepare_item, min_version), 1, 1,
     INT64_MAX, 0, NULL},
    {"floor", SCHEMA_INT, offsetof(struct cdcs_mss_prepare_item, floor), 0, 0, INT64_MAX, 0, NULL},
    {"rights", SCHEMA_STRLIST, offsetof(struct cdcs_mss_prepare_item, rights), 1, 1,
     CDCSIMG_LEVEL_MAX, CDCS_MSS_RIGHTS_MAX, NULL},
    SCHEMA_END,
};

const struct schema_field cdcs_mss_prepare_fields[] = {
    {"dm_id", SCHEMA_STRING, offsetof(struct cdcs_mss_prepare_body, dm_id), 1, 1, DMPEER_ID_MAX, 0,
     NULL},
    {"decision", SCHEMA_STRING, offsetof(struct cdcs_mss_prepare_body, decision), 1, 1,
     CDCS_MSS_DECISION_MAX, 0, NULL},
    {"platform", SCHEMA_STRING, offsetof(struct cdcs_mss_prepare_body, platform), 1, 1,
     CDCSIMG_PLATFORM_MAX, 0, NULL},
    {"items", SCHEMA_OBJLIST, offsetof(struct cdcs_mss_prepare_body, items), 1, 1,
     sizeof(struct cdcs_mss_prepare_item), CDCS_MSS_ITEMS_MAX, cdcs_mss_prepare_item_fields},
    SCHEMA_END,
};

/* The syntax the schema cannot express. 0, or -1 with the offending key in err. */
static int cdcs_mss_prepare_check(const struct cdcs_mss_prepare_body *b, char *err, size_t errlen)
{
	const struct cdcs_mss_prepare_item *it;
	size_t i, j;

	if (!dmpeer_id_ok(b->dm_id)) {
		snprintf(err, errlen, "body: key 'dm_id': not a DM id");
		return -1;
	}
	if (!cdcs_mss_text_ok(b->decision, CDCS_MSS_DECISION_MAX)) {
		snprintf(err, errlen, "body: key 'decision': printable characters only");
		return -1;
	}
	if (!cdcsimg_valid_platform(b->platform)) {
		snprintf(err, errlen, "body: key 'platform': [A-Za-z0-9._-] only");
		return -1;
	}
	for (i = 0; i < b->items.n; i++) {
		it = (const struct cdcs_mss_prepare_item *)b->items.v + i;
		if (!cdcsimg_valid_id(it->vendor) || !cdcsimg_valid_id(it->name) ||
		    !cdcsimg_valid_variant(it->variant)) {
			snprintf(err, errlen,
			         "body: key 'items[%zu]': vendor, name: [A-Za-z0-9._-]; variant: "
			         "[a-z0-9_-]",
			         i);
			return -1;
		}
		for (j = 0; j < it->rights.n; j++)
			if (!cdcsimg_valid_level(it->rights.v[j])) {
				snprintf(err, errlen,
				         "body: key 'items[%zu].rights[%zu]': 1-32 of [a-z0-9_-]",
				         i, j);
				return -1;
			}
	}
	return 0;
}

static json_t *cdcs_mss_rights(const struct schema_strlist *l)
{
	json_t *a;
	size_t i;

	if ((a = json_array()) == NULL)
		return NULL;
	for (i = 0; i < l->n; i++)
		if (json_array_append_new(a, json_string(l->v[i])) == -1) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* A download ticket for img, bound to the device and the decision. malloc'd or NULL. */
static char *cdcs_mss_ticket(struct daemon_ctx *d, const struct cdcs_mss_prepare_body *b,
                             const struct cdcs_mss_image *img, const json_t *rights, char *err,
                             size_t errlen)
{
	struct cdcs_mss *s = d->role_state;
	const struct cdcsimg_manifest *m = &img->m;
	json_t *c;
	char *jws = NULL;

	c = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:I, s:s, s:I}, s:O, s:s}", "iss",
	              "cdcs-mss", "aud", "cdcs-mss", "sub", b->dm_id, "image", "vendor", m->vendor,
	              "name", m->name, "variant", m->variant, "platform", m->platform,
	              "version_number", (json_int_t)m->version_number, "sha256", m->sha256, "size",
	              (json_int_t)m->size, "rights", rights, "decision", b->decision);
	if (c == NULL)
		snprintf(err, errlen, "out of memory");
	else
		jws = jose_sign(s->ticket_key, NULL, c, cdcs_mss_ticket_ttl(d), err, errlen);
	json_decref(c);
	return jws;
}

/* The install item the device gets for img (contract ITEM). NULL + err. */
static json_t *cdcs_mss_item(struct daemon_ctx *d, const struct cdcs_mss_prepare_body *b,
                             const struct cdcs_mss_prepare_item *it,
                             const struct cdcs_mss_image *img, char *err, size_t errlen)
{
	struct cdcs_mss *s = d->role_state;
	char url[CDCS_MSS_URL_MAX + 32];
	json_t *rights, *item = NULL;
	char *ticket = NULL;

	if ((rights = cdcs_mss_rights(&it->rights)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((ticket = cdcs_mss_ticket(d, b, img, rights, err, errlen)) == NULL)
		goto out;
	snprintf(url, sizeof(url), "%s/v1/cdcs/download", s->public_url);
	if ((item = cdcsimg_manifest_json(&img->m)) == NULL ||
	    json_object_set_new(item, "manifest", json_string(img->manifest)) == -1 ||
	    json_object_set_new(item, "approval", json_string(img->approval)) == -1 ||
	    json_object_set_new(item, "download_ticket", json_string(ticket)) == -1 ||
	    json_object_set_new(item, "download_url", json_string(url)) == -1 ||
	    json_object_set(item, "rights", rights) == -1) {
		snprintf(err, errlen, "out of memory");
		json_decref(item);
		item = NULL;
	}
out:
	free(ticket);
	json_decref(rights);
	return item;
}

/* One item: appended to items or to missing, step 5 logged. 0, or -1 on an internal error. */
static int cdcs_mss_prepare_one(struct daemon_ctx *d, const struct cdcs_mss_prepare_body *b,
                                const struct cdcs_mss_prepare_item *it, const char *rid,
                                json_t *items, json_t *missing)
{
	struct cdcs_mss_image img;
	char err[CDCS_MSS_ERRLEN], reason[CDCS_MSS_REASON_MAX];
	/* Never below what the device has: an older image would be a rollback. */
	int64_t min = it->floor > it->min_version ? it->floor : it->min_version;
	json_t *o;
	int r;

	if ((r = cdcs_mss_store_image_choose(d->db, it->vendor, it->name, it->variant, b->platform,
	                                     min, &img)) == -1)
		return -1;
	if (r == 0) {
		snprintf(reason, sizeof(reason),
		         "no image for %s/%s variant %s on %s with version_number >= %lld%s "
		         "that is neither withdrawn nor revoked",
		         it->vendor, it->name, it->variant, b->platform, (long long)min,
		         min > it->min_version ? " (installed)" : "");
		log_step("fig5", 5, rid, b->dm_id, "%s (decision %s)", reason, b->decision);
		o = json_pack("{s:s, s:s, s:s, s:s}", "vendor", it->vendor, "name", it->name,
		              "variant", it->variant, "reason", reason);
		return o != NULL && json_array_append_new(missing, o) == 0 ? 0 : -1;
	}
	o = cdcs_mss_item(d, b, it, &img, err, sizeof(err));
	if (o == NULL || json_array_append_new(items, o) == -1) {
		log_rerr(rid, "cannot prepare %s: %s", img.path, o == NULL ? err : "out of memory");
		cdcs_mss_image_clear(&img);
		return -1;
	}
	log_step("fig5", 5, rid, b->dm_id,
	         "prepared %s/%s %s v%lld (%s, %lld bytes, sha256 %.12s...) for decision %s: "
	         "manifest, approval, download ticket valid %llds",
	         img.m.vendor, img.m.name, img.m.variant, (long long)img.m.version_number,
	         img.m.version, (long long)img.m.size, img.m.sha256, b->decision,
	         (long long)cdcs_mss_ticket_ttl(d));
	cdcs_mss_image_clear(&img);
	return 0;
}

void cdcs_mss_prepare(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_mss_prepare_body *b = httpd_req_body(req);
	const char *rid = httpd_req_id(req);
	json_t *items = NULL, *missing = NULL, *out;
	char err[CDCS_MSS_ERRLEN], *revocations = NULL;
	int64_t serial;
	size_t i;

	if (!admin_authorize_service(d, req, "cdcs-pss"))
		return;
	if (cdcs_mss_prepare_check(b, err, sizeof(err)) == -1) {
		httpd_reply_error(req, 400, "bad_request", "%s", err);
		return;
	}
	if ((items = json_array()) == NULL || (missing = json_array()) == NULL)
		goto fail;
	for (i = 0; i < b->items.n; i++)
		if (cdcs_mss_prepare_one(d, b, (const struct cdcs_mss_prepare_item *)b->items.v + i,
		                         rid, items, missing) == -1)
			goto fail;
	/* Verified when it was stored: passed on as it is, for the device to verify. */
	if (cdcs_mss_store_revocations_get(d->db, &serial, &revocations) == -1)
		goto fail;
	out = json_pack("{s:o, s:o}", "items", items, "missing", missing);
	items = missing = NULL; /* json_pack "o" steals even on failure */
	if (out == NULL ||
	    (revocations != NULL &&
	     json_object_set_new(out, "revocations", json_string(revocations)) == -1)) {
		json_decref(out);
		goto fail;
	}
	free(revocations);
	httpd_reply_json(req, 200, out);
	return;
fail:
	free(revocations);
	json_decref(items);
	json_decref(missing);
	httpd_reply_error(req, 500, "internal_error", "cannot prepare the download");
}
