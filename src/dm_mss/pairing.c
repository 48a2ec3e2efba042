/*
 * dm-mss pairing: a CPE's pairing assertion as the device authentication of Figure 4 step 2,
 * in place of an activation code (issue 5). The CPE (sd-if-agent) signs, with the key of its
 * certificate from the CPE CA, that this hardware id paired with it; the device passes the
 * assertion and the CPE certificate on. These checks need no database: the caller spends the
 * jti and looks the CPE up in the transaction that records the device.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "dm_mss.h"

int dm_mss_pairing_load(struct dm_mss_state *st, const char *cpe_ca, const char *tls_ca, char *err,
                        size_t errlen)
{
	STACK_OF(X509) * certs;

	if ((certs = pki_certs_load(cpe_ca, err, errlen)) == NULL)
		return -1;
	st->cpe_ca = sk_X509_shift(certs);
	sk_X509_pop_free(certs, X509_free);
	if (st->cpe_ca == NULL || X509_check_ca(st->cpe_ca) == 0) {
		snprintf(err, errlen, "dm_mss.cpe_ca: %s is not a CA certificate", cpe_ca);
		return -1;
	}
	if ((st->cpe_anchors = pki_certs_load(tls_ca, err, errlen)) == NULL)
		return -1;
	/* Checked now: a CPE CA outside our trust anchors would refuse every CPE later. */
	if (pki_verify(st->cpe_ca, NULL, st->cpe_anchors, 0, err, errlen) == -1) {
		snprintf(err, errlen, "dm_mss.cpe_ca: %s does not chain to tls.ca %s", cpe_ca,
		         tls_ca);
		return -1;
	}
	if (!X509_up_ref(st->cpe_ca) || !sk_X509_push(st->cpe_anchors, st->cpe_ca)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void dm_mss_pairing_free(struct dm_mss_state *st)
{
	sk_X509_pop_free(st->cpe_anchors, X509_free);
	st->cpe_anchors = NULL;
	X509_free(st->cpe_ca);
	st->cpe_ca = NULL;
}

/* The CPE's leaf: issued by the configured CPE CA itself, not just by some CA we trust. */
static X509 *dm_mss_pairing_leaf(const struct dm_mss_state *st, const char *pem, char *cn,
                                 size_t cnlen, char *err, size_t errlen)
{
	char verr[256];
	X509 *leaf;

	if ((leaf = pki_cert_from_pem(pem, strlen(pem), verr, sizeof(verr))) == NULL) {
		snprintf(err, errlen, "cpe_certificate: %s", verr);
		return NULL;
	}
	/* Only the leaf is used from what the device sent: the CA is the configured one. */
	if (pki_verify(leaf, NULL, st->cpe_anchors, X509_PURPOSE_SSL_SERVER, verr, sizeof(verr)) ==
	    -1) {
		snprintf(err, errlen, "cpe_certificate: %s", verr);
		goto fail;
	}
	if (X509_verify(leaf, X509_get0_pubkey(st->cpe_ca)) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "cpe_certificate: not issued by the CPE CA");
		goto fail;
	}
	if (pki_cert_cn(leaf, cn, cnlen) == -1 || !dm_mss_cpe_cn_ok(cn)) {
		snprintf(err, errlen, "cpe_certificate: no usable subject CN");
		goto fail;
	}
	return leaf;
fail:
	X509_free(leaf);
	return NULL;
}

/* The protocol's names for what jose_verify() found wrong with an assertion. */
static void dm_mss_pairing_code(const char *jcode, int *status, const char **code)
{
	if (jcode != NULL && strcmp(jcode, "token_expired") == 0) {
		*status = 401;
		*code = "assertion_expired";
	} else if (jcode != NULL && strcmp(jcode, "wrong_subject") == 0) {
		*status = 403;
		*code = "wrong_subject";
	} else if (jcode != NULL && strcmp(jcode, "internal_error") == 0) {
		*status = 500;
		*code = "internal_error";
	} else {
		*status = 401;
		*code = "bad_assertion";
	}
}

int dm_mss_pairing_verify(const struct dm_mss_state *st, const char *cert_pem,
                          const char *assertion, const char *hw_id, time_t now,
                          struct dm_mss_pairing *out, int *status, const char **code, char *err,
                          size_t errlen)
{
	struct jose_expect want;
	const char *jcode = NULL, *jti;
	json_t *claims = NULL, *v;
	X509 *leaf;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (st->cpe_ca == NULL) {
		*status = 403;
		*code = "pairing_disabled";
		snprintf(err, errlen, "this server accepts no pairing assertion");
		return -1;
	}
	if ((leaf = dm_mss_pairing_leaf(st, cert_pem, out->cpe, sizeof(out->cpe), err, errlen)) ==
	    NULL) {
		*status = 403;
		*code = "bad_cpe_certificate";
		return -1;
	}
	/* No jti_fn: the jti is spent with the device record, in the caller's transaction. */
	memset(&want, 0, sizeof(want));
	want.iss = out->cpe;
	want.aud = "dm-mss";
	want.sub = hw_id;
	want.now = now;
	if ((claims = jose_verify(X509_get0_pubkey(leaf), assertion, &want, &jcode, err, errlen)) ==
	    NULL) {
		dm_mss_pairing_code(jcode, status, code);
		goto fail;
	}
	v = json_object_get(claims, "jti");
	if (!json_is_string(v) || (jti = json_string_value(v))[0] == '\0' ||
	    strlen(jti) > REPLAY_JTI_MAX || !dm_mss_cpe_cn_ok(jti)) {
		*status = 401;
		*code = "bad_assertion";
		snprintf(err, errlen, "no usable jti");
		goto fail;
	}
	memcpy(out->jti, jti, strlen(jti) + 1);
	out->exp = (int64_t)json_integer_value(json_object_get(claims, "exp"));
	rc = 0;
fail:
	json_decref(claims);
	X509_free(leaf);
	return rc;
}
