/*
 * POST /v1/pairing/pair: a device pairs with this CPE (docs/protocol.md, "SD I/F agent").
 *
 * The device holds an application certificate on this mutual-TLS session and proves it
 * knows the PIN shown on the TV with an HMAC over the session's TLS exporter, the hash of
 * its new link key and its hardware id (pin.c). Every refusal leaves the database as it was;
 * only a wrong proof changes anything, and only in memory: one attempt fewer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "opendm/log.h"
#include "opendm/pki.h"
#include "sd_if_agent.h"

const struct schema_field sdif_pair_fields[] = {
    {"hw_id", SCHEMA_STRING, offsetof(struct sdif_pair_body, hw_id), 1, 4, SDIF_HWID_MAX, 0, NULL},
    {"link_cert", SCHEMA_STRING, offsetof(struct sdif_pair_body, link_cert), 1, 1,
     SDIF_LINK_CERT_MAX, 0, NULL},
    {"proof", SCHEMA_STRING, offsetof(struct sdif_pair_body, proof), 1, 64, 64, 0, NULL},
    SCHEMA_END,
};

int sdif_hwid_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 4 || n > SDIF_HWID_MAX)
		return 0;
	for (; *s != '\0'; s++) {
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == ':' || *s == '-'))
			return 0;
	}
	return 1;
}

int sdif_request_ok(struct sdif *s, struct httpd_req *req, const char *hw_id)
{
	const struct tls_peer *peer = httpd_req_peer(req);

	if (peer == NULL || strcmp(peer->issuer_fp, s->app_ca_fp) != 0) {
		log_rwarn(httpd_req_id(req), "sdif=refused '%s': not an application certificate",
		          peer != NULL ? peer->subject_cn : "?");
		httpd_reply_error(req, 403, "not_application",
		                  "an application certificate is required");
		return 0;
	}
	if (!sdif_hwid_ok(hw_id)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "hw_id: 4-64 characters of A-Z a-z 0-9 . _ : -");
		return 0;
	}
	return 1;
}

/*
 * The device's link certificate: one self-signed X.509 with an EC P-256 key (what the
 * relay will accept as the device's client certificate). Its canonical PEM into *pem and
 * its SPKI hash. 0, or -1 with the reason in err.
 */
static int sdif_link_cert(const char *text, char **pem, unsigned char spki[32], char fp[65],
                          char *err, size_t errlen)
{
	X509 *x;
	EVP_PKEY *pub;
	char group[64];
	size_t gl = 0;
	int ret = -1;

	*pem = NULL;
	if ((x = pki_cert_from_pem(text, strlen(text), err, errlen)) == NULL)
		return -1;
	if ((pub = X509_get0_pubkey(x)) == NULL || !EVP_PKEY_is_a(pub, "EC") ||
	    EVP_PKEY_get_group_name(pub, group, sizeof(group), &gl) != 1 ||
	    strcmp(group, SN_X9_62_prime256v1) != 0) {
		snprintf(err, errlen, "the link key is not an EC P-256 key");
		goto out;
	}
	if (X509_check_issued(x, x) != X509_V_OK || X509_verify(x, pub) != 1) {
		snprintf(err, errlen, "the link certificate is not self-signed");
		goto out;
	}
	if (pairproof_spki(pub, spki, fp) == -1 || (*pem = pki_cert_pem(x)) == NULL) {
		snprintf(err, errlen, "cannot encode the link certificate");
		goto out;
	}
	ret = 0;
out:
	ERR_clear_error();
	X509_free(x);
	return ret;
}

static void sdif_pair_refused(struct httpd_req *req, const char *hw_id, const char *reason,
                              int attempts_left)
{
	log_rwarn(httpd_req_id(req), "sdif=pair_refused hw_id=%s reason=%s attempts_left=%d", hw_id,
	          reason, attempts_left);
}

void sdif_pair(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct sdif *s = d->role_state;
	struct sdif_pair_body *b = httpd_req_body(req);
	const char *rid = httpd_req_id(req);
	unsigned char exporter[PAIRPROOF_EXPORTER_LEN], spki[32];
	char fp[65], err[256] = "", *pem = NULL;
	time_t now = time(NULL);
	json_t *body;
	int ok;

	if (!sdif_request_ok(s, req, b->hw_id))
		return;
	if (!sdif_pin_active(s, now)) {
		sdif_pin_clear(s);
		sdif_pair_refused(req, b->hw_id, "not_pairing", 0);
		httpd_reply_error(req, 409, "not_pairing", "the CPE is not in pairing mode");
		return;
	}
	/* Before the proof: a malformed request costs no attempt. */
	if (sdif_link_cert(b->link_cert, &pem, spki, fp, err, sizeof(err)) == -1) {
		sdif_pair_refused(req, b->hw_id, "bad_link_cert", s->pin_attempts_left);
		httpd_reply_error(req, 400, "bad_link_cert", "link_cert: %s", err);
		return;
	}
	if (httpd_req_tls_export(req, PAIRPROOF_EXPORTER_LABEL, exporter, sizeof(exporter)) == -1) {
		log_rerr(rid, "cannot read the TLS exporter of the session");
		httpd_reply_error(req, 500, "internal_error", "TLS exporter unavailable");
		goto out;
	}
	ok = pairproof_check(s->pin, exporter, spki, b->hw_id, b->proof);
	OPENSSL_cleanse(exporter, sizeof(exporter));
	switch (sdif_pin_try(s, now, ok)) {
	case SDIF_PIN_NONE:
		httpd_reply_error(req, 409, "not_pairing", "the CPE is not in pairing mode");
		goto out;
	case SDIF_PIN_WRONG:
		sdif_pair_refused(req, b->hw_id, "wrong_pin", s->pin_attempts_left);
		httpd_reply_error(req, 403, "wrong_pin", "proof: wrong PIN (%d attempt(s) left)",
		                  s->pin_attempts_left);
		goto out;
	case SDIF_PIN_VOID:
		sdif_pair_refused(req, b->hw_id, "too_many_attempts", 0);
		httpd_reply_error(req, 429, "too_many_attempts",
		                  "proof: wrong PIN; the PIN is void, start pairing again");
		goto out;
	case SDIF_PIN_OK:
		break;
	}
	if (db_begin(d->db) == -1) {
		httpd_reply_error(req, 500, "internal_error", "cannot record the pairing");
		goto out;
	}
	if (sdif_store_pair(d->db, b->hw_id, fp, pem, now) == -1 || db_commit(d->db) == -1) {
		/* The PIN stays: the device may try again with it. */
		db_rollback(d->db);
		httpd_reply_error(req, 500, "internal_error", "cannot record the pairing");
		goto out;
	}
	sdif_pin_clear(s);
	log_rinfo(rid, "sdif=paired hw_id=%s link_fp=%s", b->hw_id, fp);
	body = json_pack("{s:s, s:s, s:s, s:s}", "cpe", s->cn, "hw_id", b->hw_id, "link_fp", fp,
	                 "relay_url", s->relay_public_url);
	if (body == NULL)
		httpd_reply_error(req, 500, "internal_error", "out of memory");
	else
		httpd_reply_json(req, 201, body);
out:
	free(pem);
}
