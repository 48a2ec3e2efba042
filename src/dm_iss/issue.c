/*
 * dm-iss issue: step 10's certificate. The DM id and certificate are made first, then the
 * token's jti, the certificate and its dm.issue audit row are recorded in one transaction
 * (synchronous=FULL): after a crash either all are on disk, and a retry gets this certificate
 * again, or none is, and a retry is a first attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opendm/audit.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/replay.h"
#include "opendm/tls.h"
#include "dm_iss.h"

/* Backdated a little, so that a device whose clock is slightly behind accepts it at once. */
#define DM_ISS_BACKDATE_S 300

int dm_iss_issue(struct dm_iss *s, const struct dm_iss_enrol *e, struct dm_iss_issued *out)
{
	struct db *db = s->d->db;
	struct pki_issue pi;
	struct tls_peer leaf;
	char dm_hex[2 * DM_ISS_DMID_HEX_BYTES + 1], uri[64 + DM_ISS_DMID_MAX];
	char err[DM_ISS_ERRLEN];
	int64_t now = (int64_t)time(NULL), nb = now - DM_ISS_BACKDATE_S;
	X509 *cert = NULL;
	json_t *detail = NULL;
	int r, rc = -1, in_tx = 0;

	memset(out, 0, sizeof(*out));
	if (jose_random_hex(dm_hex, sizeof(dm_hex), DM_ISS_DMID_HEX_BYTES) == -1) {
		log_rerr(e->rid, "no randomness for a DM id");
		goto fail;
	}
	snprintf(out->dm_id, sizeof(out->dm_id), "dm-%s", dm_hex);
	snprintf(uri, sizeof(uri), "urn:opendm:dm:%s", out->dm_id);
	memset(&pi, 0, sizeof(pi));
	pi.profile = PKI_PROFILE_CLIENT;
	pi.subject.cn = out->dm_id;
	pi.uri = uri;
	pi.not_before = nb;
	pi.days = s->cert_days;
	if ((cert = pki_issue(&pi, e->pub, s->ca_cert, s->ca_key, err, sizeof(err))) == NULL) {
		log_rerr(e->rid, "cannot issue: %s", err);
		goto fail;
	}
	out->not_after = nb + s->cert_days * 86400;
	if ((out->cert_pem = pki_cert_pem(cert)) == NULL || tls_peer_from_cert(cert, &leaf) == -1) {
		log_rerr(e->rid, "cannot encode the certificate");
		goto fail;
	}

	if (db_begin(db) == -1)
		goto fail;
	in_tx = 1;
	/* Spent with no live certificate to give again (the one it bought was revoked). */
	if ((r = replay_record(db, e->jti, e->exp)) == 1) {
		log_rwarn(e->rid, "token %.8s... already spent", e->jti);
		rc = 1;
		goto fail;
	}
	if (r == -1 ||
	    dm_iss_store_insert(db, leaf.serial, out->dm_id, e->hw_id, e->jti, e->key_fp,
	                        out->cert_pem, out->not_after, now) == -1 ||
	    (detail = json_pack("{s:s, s:s?}", "hw_id", e->hw_id, "account",
	                        e->account[0] != '\0' ? e->account : NULL)) == NULL ||
	    audit_add(db, e->rid, e->actor, "dm.issue", out->dm_id, detail) == -1 ||
	    db_commit(db) == -1)
		goto fail;
	json_decref(detail);
	X509_free(cert);
	return 0;
fail:
	if (in_tx)
		db_rollback(db);
	json_decref(detail);
	X509_free(cert);
	free(out->cert_pem);
	out->cert_pem = NULL;
	return rc;
}
