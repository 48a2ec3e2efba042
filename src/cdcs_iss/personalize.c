/*
 * POST /v1/cdcs/personalize: Figure 5 steps 16-18 (docs/protocol.md).
 *
 * The body is built by the CDCS inside the device and forwarded unchanged by the agent: the
 * personalization ticket it got with its image, and the public key it generated. The
 * personalization data (a device-unique CDCS id, the entitlement keys of the rights the
 * ticket carries, and a one-time confirmation secret) goes back as a JWE to that key, so that
 * neither the agent nor the CPE relay can read it.
 *
 * The ticket's jti is spent in the same transaction that records the personalization: after
 * a crash either both are on disk or neither is. A ticket is single use: a CDCS whose answer
 * was lost needs a new download ticket (and with it a new personalization ticket).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjose/cjose.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "opendm/jose.h"
#include "opendm/log.h"
#include "cdcs_iss.h"

#define CDCS_ISS_PEM_MAX     1024 /* an EC P-256 SPKI is about 180 bytes of PEM */
#define CDCS_ISS_CDCS_ID_HEX 12   /* random bytes of a cdcs_id */

const struct schema_field cdcs_iss_personalize_fields[] = {
    {"personalization_ticket", SCHEMA_STRING,
     offsetof(struct cdcs_iss_personalize_body, personalization_ticket), 1, 1, JOSE_MAX_TOKEN, 0,
     NULL},
    {"public_key", SCHEMA_STRING, offsetof(struct cdcs_iss_personalize_body, public_key), 1, 1,
     CDCS_ISS_PEM_MAX, 0, NULL},
    {"vendor", SCHEMA_STRING, offsetof(struct cdcs_iss_personalize_body, vendor), 1, 1,
     CDCS_ISS_ID_MAX, 0, NULL},
    {"name", SCHEMA_STRING, offsetof(struct cdcs_iss_personalize_body, name), 1, 1, CDCS_ISS_ID_MAX,
     0, NULL},
    SCHEMA_END,
};

/* A string claim that valid() accepts, copied into buf. 0/-1 + err naming it. */
static int cdcs_iss_claim_str(const json_t *claims, const char *key, int (*valid)(const char *),
                              char *buf, size_t len, char *err, size_t errlen)
{
	const char *v = json_string_value(json_object_get(claims, key));

	if (v == NULL || strlen(v) >= len || (valid != NULL && !valid(v))) {
		snprintf(err, errlen, "claim '%s' missing or invalid", key);
		return -1;
	}
	memcpy(buf, v, strlen(v) + 1);
	return 0;
}

/* A jti as replay.h takes it, printable since it is logged. */
static int cdcs_iss_jti_ok(const char *s)
{
	return dmpeer_id_ok(s) && strlen(s) <= REPLAY_JTI_MAX;
}

int cdcs_iss_grant_from_claims(const json_t *claims, struct cdcs_iss_grant *g, char *err,
                               size_t errlen)
{
	const json_t *v, *r;
	size_t i;

	memset(g, 0, sizeof(*g));
	if (cdcs_iss_claim_str(claims, "sub", dmpeer_id_ok, g->dm_id, sizeof(g->dm_id), err,
	                       errlen) == -1 ||
	    cdcs_iss_claim_str(claims, "vendor", cdcsimg_valid_id, g->vendor, sizeof(g->vendor),
	                       err, errlen) == -1 ||
	    cdcs_iss_claim_str(claims, "name", cdcsimg_valid_id, g->name, sizeof(g->name), err,
	                       errlen) == -1 ||
	    cdcs_iss_claim_str(claims, "variant", cdcsimg_valid_variant, g->variant,
	                       sizeof(g->variant), err, errlen) == -1 ||
	    cdcs_iss_claim_str(claims, "decision", dmpeer_id_ok, g->decision, sizeof(g->decision),
	                       err, errlen) == -1 ||
	    cdcs_iss_claim_str(claims, "jti", cdcs_iss_jti_ok, g->jti, sizeof(g->jti), err,
	                       errlen) == -1)
		return -1;
	v = json_object_get(claims, "version_number");
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > INT32_MAX) {
		snprintf(err, errlen, "claim 'version_number' missing or invalid");
		return -1;
	}
	g->version_number = (int64_t)json_integer_value(v);
	/* jose_verify() has checked it is an integer. */
	g->exp = (int64_t)json_integer_value(json_object_get(claims, "exp"));
	r = json_object_get(claims, "rights");
	if (!json_is_array(r) || json_array_size(r) > CDCS_ISS_RIGHTS_MAX) {
		snprintf(err, errlen, "claim 'rights' missing or invalid");
		return -1;
	}
	json_array_foreach(r, i, v)
	{
		if (!json_is_string(v) || !cdcsimg_valid_level(json_string_value(v))) {
			snprintf(err, errlen, "claim 'rights' missing or invalid");
			return -1;
		}
		memcpy(g->rights[i], json_string_value(v), strlen(json_string_value(v)) + 1);
		g->n_rights++;
	}
	return 0;
}

/* The CDCS's key: one PEM SubjectPublicKeyInfo, EC P-256. NULL if it is anything else. */
static EVP_PKEY *cdcs_iss_cdcs_key(const char *pem)
{
	char group[32];
	EVP_PKEY *k = NULL;
	BIO *bio;

	/* The schema bounded the length. */
	if ((bio = BIO_new_mem_buf(pem, (int)strlen(pem))) == NULL)
		goto out;
	k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (k != NULL && (!EVP_PKEY_is_a(k, "EC") ||
	                  !EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group,
	                                                  sizeof(group), NULL) ||
	                  strcmp(group, "prime256v1") != 0)) {
		EVP_PKEY_free(k);
		k = NULL;
	}
out:
	ERR_clear_error();
	return k;
}

/* Jansson frees without wiping: overwrite the key strings of the document in place first. */
static void cdcs_iss_keys_wipe(json_t *keys)
{
	const char *level;
	json_t *v;

	json_object_foreach(keys, level, v)
	{
		if (json_is_string(v))
			OPENSSL_cleanse((char *)(uintptr_t)json_string_value(v),
			                json_string_length(v));
	}
}

/* keys: {"<level>": "<b64url key>"} for each right that has a key. 0/-1. */
static int cdcs_iss_perso_keys(const struct cdcs_iss_keyset *ks, const struct cdcs_iss_grant *g,
                               const char *rid, json_t *keys)
{
	const struct cdcs_iss_key *key;
	char kid[CDCS_ISS_KID_MAX + 1], *k = NULL;
	size_t i, klen = 0;
	cjose_err cerr;
	int rc;

	for (i = 0; i < g->n_rights; i++) {
		snprintf(kid, sizeof(kid), "%s/%s/%s", g->vendor, g->name, g->rights[i]);
		if ((key = cdcs_iss_keys_find(ks, kid)) == NULL) {
			log_rwarn(rid, "no entitlement key %s: right '%s' gets no key", kid,
			          g->rights[i]);
			continue;
		}
		if (!cjose_base64url_encode(key->k, sizeof(key->k), &k, &klen, &cerr))
			return -1;
		rc = json_object_set_new(keys, g->rights[i], json_stringn(k, klen));
		OPENSSL_cleanse(k, klen);
		cjose_get_dealloc()(k);
		if (rc == -1)
			return -1;
	}
	return 0;
}

char *cdcs_iss_perso_build(const struct cdcs_iss_keyset *ks, const struct cdcs_iss_grant *g,
                           const char *rid, int64_t now, struct cdcs_iss_perso *p)
{
	char hex[2 * CDCS_ISS_CDCS_ID_HEX + 1], *text = NULL;
	json_t *doc = NULL, *rights = NULL, *keys = NULL;
	size_t i;

	memset(p, 0, sizeof(*p));
	if (jose_random_hex(p->perso_id, sizeof(p->perso_id), CDCS_ISS_HEX_ID / 2) == -1 ||
	    jose_random_hex(p->confirm, sizeof(p->confirm), CDCS_ISS_HEX_ID / 2) == -1 ||
	    jose_random_hex(hex, sizeof(hex), CDCS_ISS_CDCS_ID_HEX) == -1) {
		log_rerr(rid, "no randomness");
		return NULL;
	}
	snprintf(p->cdcs_id, sizeof(p->cdcs_id), "%s-%s", g->vendor, hex);
	cdcsimg_sha256_hex(p->confirm, strlen(p->confirm), p->confirm_sha256);
	p->iat = now;
	if ((rights = json_array()) == NULL || (keys = json_object()) == NULL)
		goto fail;
	for (i = 0; i < g->n_rights; i++)
		if (json_array_append_new(rights, json_string(g->rights[i])) == -1)
			goto fail;
	if (cdcs_iss_perso_keys(ks, g, rid, keys) == -1)
		goto fail;
	/* "o" steals: from here on doc owns both (or, if json_pack failed, freed them). */
	doc = json_pack("{s:i, s:s, s:s, s:s, s:s, s:o, s:O, s:s, s:s, s:I}", "v", 1, "dm_id",
	                g->dm_id, "vendor", g->vendor, "name", g->name, "cdcs_id", p->cdcs_id,
	                "rights", rights, "keys", keys, "confirm", p->confirm, "perso_id",
	                p->perso_id, "iat", (json_int_t)now);
	rights = NULL;
	if (doc == NULL)
		goto fail;
	text = json_dumps(doc, JSON_COMPACT);
fail:
	if (text == NULL)
		log_rerr(rid, "cannot build the personalization data");
	if (keys != NULL) {
		cdcs_iss_keys_wipe(keys);
		json_decref(keys);
	}
	json_decref(rights);
	json_decref(doc);
	return text;
}

const char *cdcs_iss_foreign_code(const char *token)
{
	const char *dot1, *dot2, *code = "bad_token";
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	cjose_err cerr;
	json_t *c = NULL, *aud, *v;
	size_t i;
	int ours = 0;

	if ((dot1 = strchr(token, '.')) == NULL || (dot2 = strchr(dot1 + 1, '.')) == NULL ||
	    !cjose_base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &raw, &rawlen, &cerr) ||
	    (c = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(c))
		goto out;
	aud = json_object_get(c, "aud");
	if (json_is_string(aud))
		ours = strcmp(json_string_value(aud), "cdcs-iss") == 0;
	json_array_foreach(aud, i, v)
	{
		if (json_is_string(v) && strcmp(json_string_value(v), "cdcs-iss") == 0)
			ours = 1;
	}
	if (!ours)
		code = "wrong_audience";
	else if (!json_is_string(v = json_object_get(c, "iss")) ||
	         strcmp(json_string_value(v), "cdcs-iss") != 0)
		code = "wrong_issuer";
out:
	json_decref(c);
	if (raw != NULL)
		cjose_get_dealloc()(raw);
	return code;
}

/* Step 16's checks of what the device sent. 0, or -1 replied. */
static int cdcs_iss_check(struct cdcs_iss *s, struct httpd_req *req, const char *dm_id,
                          struct cdcs_iss_grant *g, EVP_PKEY **key)
{
	const struct cdcs_iss_personalize_body *b = httpd_req_body(req);
	const char *rid = httpd_req_id(req), *code = NULL;
	struct jose_expect want;
	char err[CDCS_ISS_ERRLEN];
	json_t *claims;
	int rc;

	/* No jti_fn: the jti is spent with the personalization it buys (one transaction). */
	memset(&want, 0, sizeof(want));
	want.iss = "cdcs-iss";
	want.aud = "cdcs-iss";
	want.sub = dm_id;
	if ((claims = jose_verify(s->ticket_key, b->personalization_ticket, &want, &code, err,
	                          sizeof(err))) == NULL) {
		if (strcmp(code, "bad_token") == 0 &&
		    strcmp(code = cdcs_iss_foreign_code(b->personalization_ticket), "bad_token") !=
		        0)
			snprintf(err, sizeof(err), "not a personalization ticket of cdcs-iss (%s)",
			         code);
		log_rwarn(rid, "personalization ticket of %s refused: %s", dm_id, err);
		httpd_reply_error(req, jose_code_status(code), code, "personalization ticket: %s",
		                  err);
		return -1;
	}
	rc = cdcs_iss_grant_from_claims(claims, g, err, sizeof(err));
	json_decref(claims);
	if (rc == -1) {
		log_rwarn(rid, "personalization ticket of %s: %s", dm_id, err);
		httpd_reply_error(req, 401, "bad_token", "personalization ticket: %s", err);
		return -1;
	}
	if (strcmp(b->vendor, g->vendor) != 0 || strcmp(b->name, g->name) != 0) {
		log_rwarn(rid, "%s asks to personalize %.64s/%.64s with a ticket for %s/%s", dm_id,
		          b->vendor, b->name, g->vendor, g->name);
		httpd_reply_error(req, 403, "ticket_mismatch",
		                  "the ticket is for %s/%s, not for this vendor/name", g->vendor,
		                  g->name);
		return -1;
	}
	if ((*key = cdcs_iss_cdcs_key(b->public_key)) == NULL) {
		httpd_reply_error(req, 400, "bad_key",
		                  "key 'public_key': a PEM EC P-256 public key is required");
		return -1;
	}
	return 0;
}

void cdcs_iss_personalize(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_iss *s = d->role_state;
	const struct tls_peer *peer = httpd_req_peer(req);
	const char *rid = httpd_req_id(req);
	char dm_id[DMPEER_ID_MAX + 1], err[CDCS_ISS_ERRLEN], *text = NULL, *jwe = NULL;
	struct cdcs_iss_grant g;
	struct cdcs_iss_perso p;
	int64_t now = (int64_t)time(NULL);
	EVP_PKEY *key = NULL;
	json_t *reply;
	int r;

	memset(&p, 0, sizeof(p));
	if (dmpeer_require(req, s->device_ca_fp, dm_id, sizeof(dm_id)) == -1 ||
	    cdcs_iss_check(s, req, dm_id, &g, &key) == -1)
		goto out;
	if ((text = cdcs_iss_perso_build(&s->keys, &g, rid, now, &p)) == NULL ||
	    (jwe = jose_encrypt(key, text, strlen(text), err, sizeof(err))) == NULL) {
		if (text != NULL)
			log_rerr(rid, "cannot encrypt the personalization data: %s", err);
		httpd_reply_error(req, 500, "internal_error",
		                  "cannot make the personalization data");
		goto out;
	}
	/* Made before the ticket is spent, so that nothing can fail between the two. */
	if ((reply = json_pack("{s:s, s:s}", "personalization_data", jwe, "perso_id",
	                       p.perso_id)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		goto out;
	}
	/* The personalization, its spent ticket and its audit row together. */
	if (db_begin(d->db) == -1)
		r = -1;
	else if ((r = cdcs_iss_store_personalize(d->db, &g, &p, now)) != 0 ||
	         cdcs_iss_audit(d, req, "cdcs.personalize", dm_id, g.vendor, g.name,
	                        g.version_number, p.perso_id) == -1 ||
	         db_commit(d->db) == -1) {
		db_rollback(d->db);
		if (r == 0)
			r = -1;
	}
	if (r != 0) {
		json_decref(reply);
		if (r == 1) {
			log_rwarn(rid, "personalization ticket %.8s... of %s presented again",
			          g.jti, dm_id);
			httpd_reply_error(req, 409, "token_replayed",
			                  "this personalization ticket has already been used");
		} else
			httpd_reply_error(req, 500, "internal_error", "database error");
		goto out;
	}
	/* Only now is the ticket known to be unspent, the last of step 16's checks. */
	log_step("fig5", 16, rid, dm_id,
	         "authenticated: personalization ticket %.8s... (sub = DM id) for %s/%s %s v%lld, "
	         "CDCS key EC P-256",
	         g.jti, g.vendor, g.name, g.variant, (long long)g.version_number);
	log_step("fig5", 17, rid, dm_id,
	         "secure channel: mutual TLS 1.3 with '%s' (DM certificate issued by '%s')",
	         peer->subject_cn, peer->issuer_cn);

	httpd_reply_json(req, 200, reply);
	log_step("fig5", 18, rid, dm_id,
	         "personalization data for %s/%s v%lld sent as JWE to the CDCS key: cdcs_id=%s "
	         "perso_id=%s, %zu right(s)",
	         g.vendor, g.name, (long long)g.version_number, p.cdcs_id, p.perso_id, g.n_rights);
out:
	if (text != NULL) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	OPENSSL_cleanse(p.confirm, sizeof(p.confirm));
	free(jwe);
	EVP_PKEY_free(key);
}
