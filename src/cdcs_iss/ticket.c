/*
 * POST /v1/internal/personalization-ticket: Figure 5 step 12 (docs/protocol.md).
 *
 * cdcs-mss asks, while it serves a download (step 11), for a ticket that lets the device's
 * new CDCS be personalized here. The ticket is a JWS that only this daemon checks (iss = aud =
 * "cdcs-iss"), bound to the DM id and to the CDCS and rights cdcs-pss decided on; nothing is
 * stored: its jti is spent when the device presents it (personalize.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opendm/admin.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "cdcs_iss.h"

const struct schema_field cdcs_iss_ticket_fields[] = {
    {"dm_id", SCHEMA_STRING, offsetof(struct cdcs_iss_ticket_body, dm_id), 1, 1, DMPEER_ID_MAX, 0,
     NULL},
    {"vendor", SCHEMA_STRING, offsetof(struct cdcs_iss_ticket_body, vendor), 1, 1, CDCS_ISS_ID_MAX,
     0, NULL},
    {"name", SCHEMA_STRING, offsetof(struct cdcs_iss_ticket_body, name), 1, 1, CDCS_ISS_ID_MAX, 0,
     NULL},
    {"variant", SCHEMA_STRING, offsetof(struct cdcs_iss_ticket_body, variant), 1, 1,
     CDCS_ISS_VARIANT_MAX, 0, NULL},
    {"version_number", SCHEMA_INT, offsetof(struct cdcs_iss_ticket_body, version_number), 1, 1,
     INT32_MAX, 0, NULL},
    {"rights", SCHEMA_STRLIST, offsetof(struct cdcs_iss_ticket_body, rights), 1, 1,
     CDCS_ISS_LEVEL_MAX, CDCS_ISS_RIGHTS_MAX, NULL},
    {"decision", SCHEMA_STRING, offsetof(struct cdcs_iss_ticket_body, decision), 1, 1,
     CDCS_ISS_DECISION_MAX, 0, NULL},
    SCHEMA_END,
};

/* The body's values, beyond what the schema checked. NULL, or the offending key. */
static const char *cdcs_iss_ticket_bad(const struct cdcs_iss_ticket_body *b)
{
	size_t i, j;

	if (!dmpeer_id_ok(b->dm_id))
		return "dm_id";
	if (!cdcsimg_valid_id(b->vendor))
		return "vendor";
	if (!cdcsimg_valid_id(b->name))
		return "name";
	if (!cdcsimg_valid_variant(b->variant))
		return "variant";
	if (!dmpeer_id_ok(b->decision))
		return "decision";
	for (i = 0; i < b->rights.n; i++) {
		if (!cdcsimg_valid_level(b->rights.v[i]))
			return "rights";
		for (j = 0; j < i; j++)
			if (strcmp(b->rights.v[i], b->rights.v[j]) == 0)
				return "rights";
	}
	return NULL;
}

static json_t *cdcs_iss_ticket_claims(const struct cdcs_iss *s,
                                      const struct cdcs_iss_ticket_body *b, const char *jti,
                                      int64_t now)
{
	json_t *rights, *c;
	size_t i;

	if ((rights = json_array()) == NULL)
		return NULL;
	for (i = 0; i < b->rights.n; i++)
		if (json_array_append_new(rights, json_string(b->rights.v[i])) == -1) {
			json_decref(rights);
			return NULL;
		}
	c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:s, s:I, s:I, s:s}", "iss",
	              "cdcs-iss", "aud", "cdcs-iss", "sub", b->dm_id, "vendor", b->vendor, "name",
	              b->name, "variant", b->variant, "version_number",
	              (json_int_t)b->version_number, "rights", rights, "decision", b->decision,
	              "iat", (json_int_t)now, "exp", (json_int_t)(now + s->ticket_ttl_s), "jti",
	              jti);
	return c;
}

void cdcs_iss_ticket(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_iss *s = d->role_state;
	const struct cdcs_iss_ticket_body *b = httpd_req_body(req);
	const char *rid = httpd_req_id(req), *bad;
	char jti[CDCS_ISS_HEX_ID + 1], err[CDCS_ISS_ERRLEN], *ticket = NULL, *rights = NULL;
	int64_t now = (int64_t)time(NULL);
	json_t *claims = NULL, *reply;

	if (!admin_authorize_service(d, req, "cdcs-mss"))
		return;
	if ((bad = cdcs_iss_ticket_bad(b)) != NULL) {
		httpd_reply_error(req, 400, "bad_request", "key '%s': invalid value", bad);
		return;
	}
	if (jose_random_hex(jti, sizeof(jti), CDCS_ISS_HEX_ID / 2) == -1 ||
	    (claims = cdcs_iss_ticket_claims(s, b, jti, now)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "cannot make the ticket");
		goto out;
	}
	if ((ticket = jose_sign(s->ticket_key, NULL, claims, s->ticket_ttl_s, err, sizeof(err))) ==
	    NULL) {
		log_rerr(rid, "cannot sign a personalization ticket: %s", err);
		httpd_reply_error(req, 500, "internal_error", "cannot sign the ticket");
		goto out;
	}
	if ((reply = json_pack("{s:s, s:s, s:I}", "personalization_ticket", ticket, "cdcs_iss_url",
	                       s->public_url, "exp", (json_int_t)(now + s->ticket_ttl_s))) ==
	    NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		goto out;
	}
	httpd_reply_json(req, 200, reply);
	rights = json_dumps(json_object_get(claims, "rights"), JSON_COMPACT);
	log_step(
	    "fig5", 12, rid, b->dm_id,
	    "personalization ticket %.8s... for %s/%s %s v%lld (rights %s, decision %s) issued "
	    "to cdcs-mss, valid until %lld",
	    jti, b->vendor, b->name, b->variant, (long long)b->version_number,
	    rights != NULL ? rights : "?", b->decision, (long long)(now + s->ticket_ttl_s));
out:
	free(rights);
	free(ticket);
	json_decref(claims);
}
