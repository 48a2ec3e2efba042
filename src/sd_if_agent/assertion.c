/*
 * POST /v1/pairing/assertion: a paired device gets a fresh pairing assertion for dm-mss
 * (docs/protocol.md, "SD I/F agent"), proving with a link proof (a JWS by its link key,
 * the key of the certificate recorded at pairing) that it is the device that paired.
 *
 * The assertion is a JWS by this CPE's own TLS key: dm-mss checks it against the CPE
 * certificate sent with it, which chains to the CPE CA.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjose/cjose.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/replay.h"
#include "sd_if_agent.h"

#define SDIF_ISS_MAX 256

const struct schema_field sdif_assertion_fields[] = {
    {"hw_id", SCHEMA_STRING, offsetof(struct sdif_assertion_body, hw_id), 1, 4, SDIF_HWID_MAX, 0,
     NULL},
    {"link_proof", SCHEMA_STRING, offsetof(struct sdif_assertion_body, link_proof), 1, 1,
     JOSE_MAX_TOKEN, 0, NULL},
    SCHEMA_END,
};

/*
 * The link proof's unverified iss and exp. Its issuer is the device's own business (the
 * key is what identifies it), and jose_verify() insists on an expected issuer, so it is
 * given back its own; exp is bounded here, before jose_verify() spends the jti, so that a
 * refused proof records nothing. The claims read are the ones jose_verify() then checks
 * under the signature. 0, or -1 if the token cannot be read.
 */
static int sdif_proof_peek(const char *token, char *iss, size_t isslen, int64_t *exp)
{
	cjose_err cerr = {0};
	cjose_jws_t *jws;
	uint8_t *pt = NULL;
	size_t ptlen = 0;
	json_t *c = NULL, *v;
	int ret = -1;

	if ((jws = cjose_jws_import(token, strlen(token), &cerr)) == NULL)
		return -1;
	if (!cjose_jws_get_plaintext(jws, &pt, &ptlen, &cerr) ||
	    (c = json_loadb((const char *)pt, ptlen, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_string(v = json_object_get(c, "iss")) || json_string_length(v) == 0 ||
	    json_string_length(v) >= isslen)
		goto out;
	memcpy(iss, json_string_value(v), json_string_length(v) + 1);
	if (!json_is_integer(v = json_object_get(c, "exp")))
		goto out;
	*exp = json_integer_value(v);
	ret = 0;
out:
	json_decref(c);
	cjose_jws_release(jws);
	return ret;
}

/* The pairing's link key (from the stored certificate) and its fingerprint; 1 paired,
 * 0 not (replied 403), -1 replied 500. */
static int sdif_link_key(struct sdif *s, struct httpd_req *req, const char *hw_id, EVP_PKEY **pub,
                         char fp[65])
{
	char *pem = NULL, err[256];
	X509 *x = NULL;
	int r;

	*pub = NULL;
	if ((r = sdif_store_link_cert(s->d->db, hw_id, &pem)) == 0) {
		log_rwarn(httpd_req_id(req), "sdif=assertion_refused hw_id=%s reason=not_paired",
		          hw_id);
		httpd_reply_error(req, 403, "not_paired", "hw_id: %s is not paired with this CPE",
		                  hw_id);
		return 0;
	}
	if (r == -1 || (x = pki_cert_from_pem(pem, strlen(pem), err, sizeof(err))) == NULL ||
	    (*pub = X509_get_pubkey(x)) == NULL || pairproof_spki(*pub, NULL, fp) == -1) {
		log_rerr(httpd_req_id(req), "cannot load the link certificate of %s", hw_id);
		EVP_PKEY_free(*pub);
		*pub = NULL;
		r = -1;
		httpd_reply_error(req, 500, "internal_error", "cannot load the pairing");
	}
	ERR_clear_error();
	X509_free(x);
	free(pem);
	return r;
}

void sdif_assertion(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct sdif *s = d->role_state;
	struct sdif_assertion_body *b = httpd_req_body(req);
	const char *rid = httpd_req_id(req), *code = NULL;
	struct jose_expect want;
	char iss[SDIF_ISS_MAX], fp[65], err[256] = "", *token = NULL;
	json_t *claims = NULL, *body;
	EVP_PKEY *pub = NULL;
	time_t now = time(NULL);
	int64_t exp = 0;

	if (!sdif_request_ok(s, req, b->hw_id))
		return;
	if (sdif_link_key(s, req, b->hw_id, &pub, fp) != 1)
		return;
	if (sdif_proof_peek(b->link_proof, iss, sizeof(iss), &exp) == -1) {
		httpd_reply_error(req, 401, "bad_token",
		                  "link_proof: not a signed token with iss and exp");
		goto out;
	}
	if (exp > (int64_t)now + SDIF_PROOF_TTL_MAX + JOSE_CLOCK_SKEW) {
		httpd_reply_error(req, 401, "bad_token", "link_proof: exp more than %d s ahead",
		                  SDIF_PROOF_TTL_MAX);
		goto out;
	}
	want = (struct jose_expect){.iss = iss,
	                            .aud = s->cn,
	                            .sub = b->hw_id,
	                            .now = now,
	                            .jti_fn = replay_record,
	                            .jti_arg = d->db};
	if ((claims = jose_verify(pub, b->link_proof, &want, &code, err, sizeof(err))) == NULL) {
		log_rwarn(rid, "sdif=assertion_refused hw_id=%s reason=%s (%s)", b->hw_id, code,
		          err);
		httpd_reply_error(req, jose_code_status(code), code, "link_proof: %s", err);
		goto out;
	}
	json_decref(claims);
	claims = json_pack("{s:s, s:s, s:s, s:s}", "iss", s->cn, "aud", "dm-mss", "sub", b->hw_id,
	                   "link_fp", fp);
	if (claims == NULL || (token = jose_sign(s->key, NULL, claims, s->assertion_ttl_s, err,
	                                         sizeof(err))) == NULL) {
		log_rerr(rid, "cannot sign the pairing assertion: %s", err);
		httpd_reply_error(req, 500, "internal_error", "cannot sign the pairing assertion");
		goto out;
	}
	if ((body = json_pack("{s:s, s:s}", "assertion", token, "cpe_certificate",
	                      s->cert_chain)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		goto out;
	}
	log_rinfo(rid, "sdif=assertion hw_id=%s link_fp=%s ttl=%llds", b->hw_id, fp,
	          (long long)s->assertion_ttl_s);
	httpd_reply_json(req, 200, body);
out:
	json_decref(claims);
	EVP_PKEY_free(pub);
	free(token);
}
