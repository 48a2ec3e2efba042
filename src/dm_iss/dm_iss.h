/* dm-iss: the role's table, its configuration, its state and its database. */
#ifndef DM_ISS_H
#define DM_ISS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "opendm/capability.h"
#include "opendm/daemon.h"
#include "opendm/httpc.h"
#include "opendm/httpd.h"
#include "opendm/replay.h"

#define DM_ISS_CERT_DAYS_DEFAULT 30
#define DM_ISS_CERT_DAYS_MAX     397
#define DM_ISS_HWID_MIN          4
#define DM_ISS_HWID_MAX          64
#define DM_ISS_ACCOUNT_MAX       64
#define DM_ISS_LIST_MAX          1000 /* rows of one operator listing */
#define DM_ISS_DMID_HEX_BYTES    12   /* "dm-" + 24 hex characters */
#define DM_ISS_DMID_MAX          (3 + 2 * DM_ISS_DMID_HEX_BYTES + 1)
#define DM_ISS_URL_MAX           512
#define DM_ISS_ERRLEN            512

/* The "dm_iss" config section. */
struct dm_iss_conf {
	char *app_ca;           /* the CA that issues application certificates */
	char *enrolment_pubkey; /* verifies enrolment tokens (iss dm-mss, aud dm-iss) */
	char *device_ca_cert;
	char *device_ca_key; /* private, 0600 */
	char *trust_bundle;  /* PEM returned to the agent */
	char *dm_mss_url;    /* asked whether a device is revoked */
	char *cdcs_pss_url;  /* given to the agent */
	int64_t cert_days;   /* 0 (absent): DM_ISS_CERT_DAYS_DEFAULT */
};

struct dm_iss_pending;
struct dm_iss_lookup;

/*
 * Loaded once by init and kept for the life of the process: a SIGHUP swaps d->cfg, so
 * nothing here points into it.
 */
struct dm_iss {
	struct daemon_ctx *d;
	char app_ca_fp[65];
	EVP_PKEY *enrolment_pub;
	X509 *ca_cert;
	EVP_PKEY *ca_key;
	char *ca_pem;       /* appended to every leaf in the answer */
	char *trust_bundle; /* the file's contents */
	char *dm_mss_url;   /* without a trailing '/' */
	char *cdcs_pss_url;
	int64_t cert_days;
	struct httpc *mss;
	struct event *ev_purge;
	TAILQ_HEAD(, dm_iss_pending) pending; /* requests waiting for dm-mss */
	TAILQ_HEAD(, dm_iss_lookup) lookups;  /* GET /v1/internal/dm/ waiting for dm-mss */
};

/* What issued_cert remembers of a token's certificate, to answer a retry identically. */
struct dm_iss_issued {
	char dm_id[DM_ISS_DMID_MAX];
	char csr_key_fp[65];
	char *cert_pem; /* leaf only */
	int64_t not_after;
};

extern const struct daemon_role dm_iss_role;
extern const struct db_migration dm_iss_migrations[];

/* POST /v1/agent/personalize (steps 7-10) and its body. */
struct dm_iss_agent_info {
	char *version;
	int64_t version_number;
};

struct dm_iss_personalize_body {
	char *hw_id;
	char *csr;
	struct capability capability;
	struct dm_iss_agent_info agent;
	char *enrolment_token;
};

extern const struct schema_field dm_iss_personalize_fields[];
void dm_iss_personalize(struct httpd_req *req, void *arg);
/* What a checked request asks for: copied out of it, since it may be freed meanwhile. */
struct dm_iss_enrol {
	char rid[HTTPD_RID_MAX + 1];
	char hw_id[DM_ISS_HWID_MAX + 1];
	char jti[REPLAY_JTI_MAX + 1];         /* of the enrolment token */
	int64_t exp;                          /* of the enrolment token */
	char key_fp[65];                      /* dm_iss_csr_key_fp() of the CSR */
	EVP_PKEY *pub;                        /* the CSR's public key */
	char account[DM_ISS_ACCOUNT_MAX + 1]; /* the token's, "" if it had none we could use */
	char actor[256];                      /* who asked, for the audit row */
};

/* fini: drop the requests still waiting for dm-mss (httpc is already freed). */
void dm_iss_pending_drop(struct dm_iss *s);

/* lookup.c: a DM id's device, account and status, for the CDCS daemons
 * (GET /v1/internal/dm/<dm_id>) and operators (GET /v1/admin/dms?hw_id=, /v1/admin/dms/<id>);
 * and what fini drops of them, as above. */
void dm_iss_lookup(struct httpd_req *req, void *arg);
void dm_iss_admin_dms(struct httpd_req *req, void *arg);
void dm_iss_admin_dm(struct httpd_req *req, void *arg);
void dm_iss_lookup_drop(struct dm_iss *s);

/* check.c: 1 if s is a hw id (4-64 of A-Z a-z 0-9 . _ : -), an account (1-64 of A-Z a-z 0-9
 * . _ -). */
int dm_iss_hwid_ok(const char *s);
int dm_iss_account_ok(const char *s);
/* A DM id's status from its certificate (revoked, not_after) and what dm-mss says of its
 * device: "revoked", "expired" or "active". */
const char *dm_iss_dm_status(int cert_revoked, int64_t not_after, int64_t now, int mss_revoked);

/* csr.c: the one subject CN (0/-1); 1 if the key is EC P-256; sha256 hex of its SPKI DER. */
int dm_iss_csr_cn(X509_REQ *csr, char *buf, size_t len);
int dm_iss_csr_key_ok(EVP_PKEY *pub);
int dm_iss_csr_key_fp(EVP_PKEY *pub, char fp[65]);

/*
 * issue.c: a DM id and certificate for e->pub, recorded with e->jti in one transaction.
 * 0 (*out filled; free out->cert_pem), 1 the token is already spent, -1 error (logged).
 */
int dm_iss_issue(struct dm_iss *s, const struct dm_iss_enrol *e, struct dm_iss_issued *out);

/*
 * store.c: the live certificate a token bought: 1 found (*out filled; free out->cert_pem),
 * 0 none (a revoked one is not given again: the spent jti then makes it a 409), -1 error.
 */
int dm_iss_store_find(struct db *db, const char *jti, struct dm_iss_issued *out);
/* The DM ids of hw_id, or the one dm_id (the other NULL), oldest first, at most
 * DM_ISS_LIST_MAX: [{"dm_id", "hw_id", "status" (from the certificate alone), "issued_at",
 * "expires_at"}], or NULL on error (logged). */
json_t *dm_iss_store_dms(struct db *db, const char *hw_id, const char *dm_id, int64_t now);
/* Insert the certificate issued for a token. 0/-1; the caller holds the transaction (and
 * writes the dm.issue audit row in it). */
int dm_iss_store_insert(struct db *db, const char *serial, const char *dm_id, const char *hw_id,
                        const char *jti, const char *csr_key_fp, const char *cert_pem,
                        int64_t not_after, int64_t issued_at);

#endif
