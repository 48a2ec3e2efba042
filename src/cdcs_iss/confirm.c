/*
 * POST /v1/cdcs/confirm: the CDCS applied its personalization data (docs/protocol.md).
 *
 * The confirmation is the one-time secret that travelled inside the JWE, so only the CDCS
 * that could decrypt it can confirm. The personalization is marked confirmed and the step-20
 * report to cdcs-pss is queued in one transaction; the report itself is sent by report.c,
 * which retries until cdcs-pss has it, across restarts. Confirming again is a no-op 200, so
 * an agent whose answer was lost may simply retry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "opendm/log.h"
#include "cdcs_iss.h"

const struct schema_field cdcs_iss_confirm_fields[] = {
    {"perso_id", SCHEMA_STRING, offsetof(struct cdcs_iss_confirm_body, perso_id), 1,
     CDCS_ISS_HEX_ID, CDCS_ISS_HEX_ID, 0, NULL},
    {"confirmation", SCHEMA_STRING, offsetof(struct cdcs_iss_confirm_body, confirmation), 1,
     CDCS_ISS_HEX_ID, CDCS_ISS_HEX_ID, 0, NULL},
    {"result", SCHEMA_STRING, offsetof(struct cdcs_iss_confirm_body, result), 1, 1, 16, 0, NULL},
    SCHEMA_END,
};

/* What cdcs-pss records (POST /v1/internal/cdcs-state). malloc'd JSON text or NULL. */
static char *cdcs_iss_report_body(const struct cdcs_iss_perso_row *row, int64_t now)
{
	json_t *b;
	char *text;

	if ((b = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I}", "dm_id", row->dm_id,
	                   "vendor", row->vendor, "name", row->name, "variant", row->variant,
	                   "version_number", (json_int_t)row->version_number, "state",
	                   "personalized", "cdcs_id", row->cdcs_id, "decision", row->decision,
	                   "personalized_at", (json_int_t)now)) == NULL)
		return NULL;
	text = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	return text;
}

static void cdcs_iss_confirmed(struct httpd_req *req)
{
	httpd_reply_json(req, 200, json_pack("{s:b}", "confirmed", 1));
}

void cdcs_iss_confirm(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_iss *s = d->role_state;
	const struct cdcs_iss_confirm_body *b = httpd_req_body(req);
	const char *rid = httpd_req_id(req);
	char dm_id[DMPEER_ID_MAX + 1], hash[65], *body = NULL;
	struct cdcs_iss_perso_row row;
	int64_t now = (int64_t)time(NULL);
	int r;

	if (dmpeer_require(req, s->device_ca_fp, dm_id, sizeof(dm_id)) == -1)
		return;
	if (!cdcs_iss_hex_ok(b->perso_id, CDCS_ISS_HEX_ID) ||
	    !cdcs_iss_hex_ok(b->confirmation, CDCS_ISS_HEX_ID)) {
		httpd_reply_error(req, 400, "bad_request", "key '%s': 32 lower-case hex characters",
		                  cdcs_iss_hex_ok(b->perso_id, CDCS_ISS_HEX_ID) ? "confirmation"
		                                                                : "perso_id");
		return;
	}
	if (strcmp(b->result, "ok") != 0) {
		httpd_reply_error(req, 400, "bad_request", "key 'result': must be \"ok\"");
		return;
	}
	if ((r = cdcs_iss_store_perso_find(d->db, b->perso_id, &row)) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if (r == 0) {
		httpd_reply_error(req, 404, "unknown_personalization",
		                  "no personalization %s is known", b->perso_id);
		return;
	}
	if (strcmp(row.dm_id, dm_id) != 0) {
		log_rwarn(rid, "%s tried to confirm personalization %s of %s", dm_id, b->perso_id,
		          row.dm_id);
		httpd_reply_error(req, 403, "wrong_subject",
		                  "this personalization belongs to another device");
		return;
	}
	cdcsimg_sha256_hex(b->confirmation, strlen(b->confirmation), hash);
	if (CRYPTO_memcmp(hash, row.confirm_sha256, sizeof(hash)) != 0) {
		log_rwarn(rid, "wrong confirmation for personalization %s of %s", b->perso_id,
		          dm_id);
		httpd_reply_error(req, 403, "bad_confirmation",
		                  "the confirmation does not match this personalization");
		return;
	}
	if (row.confirmed_at != 0) {
		log_rinfo(rid, "personalization %s of %s was already confirmed", b->perso_id,
		          dm_id);
		cdcs_iss_confirmed(req);
		return;
	}
	if ((body = cdcs_iss_report_body(&row, now)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	/* 1: confirmed meanwhile by a parallel request, which queued the report (and audited). */
	if (db_begin(d->db) == -1)
		r = -1;
	else if ((r = cdcs_iss_store_confirm(d->db, b->perso_id, rid, body, now)) != 0 ||
	         cdcs_iss_audit(d, req, "cdcs.confirm", dm_id, row.vendor, row.name,
	                        row.version_number, b->perso_id) == -1 ||
	         db_commit(d->db) == -1) {
		db_rollback(d->db);
		if (r == 0)
			r = -1;
	}
	if (r == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		goto out;
	}
	cdcs_iss_confirmed(req);
	if (r == 0) {
		log_rinfo(rid, "%s confirmed %s/%s v%lld cdcs_id=%s: report to cdcs-pss queued",
		          dm_id, row.vendor, row.name, (long long)row.version_number, row.cdcs_id);
		cdcs_iss_report_kick(s);
	}
out:
	free(body);
}
