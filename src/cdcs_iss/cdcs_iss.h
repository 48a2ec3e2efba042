/* cdcs-iss: the role's table, its configuration, its state and its database. */
#ifndef CDCS_ISS_H
#define CDCS_ISS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <openssl/evp.h>

#include "opendm/cdcsimg.h"
#include "opendm/daemon.h"
#include "opendm/dmpeer.h"
#include "opendm/httpc.h"
#include "opendm/httpd.h"
#include "opendm/replay.h"

#define CDCS_ISS_TICKET_TTL_DEFAULT 600
#define CDCS_ISS_TICKET_TTL_MAX     86400
#define CDCS_ISS_URL_MAX            512
#define CDCS_ISS_ERRLEN             512
#define CDCS_ISS_ID_MAX             CDCSIMG_ID_MAX /* vendor, name */
#define CDCS_ISS_VARIANT_MAX        CDCSIMG_VARIANT_MAX
#define CDCS_ISS_LEVEL_MAX          CDCSIMG_LEVEL_MAX /* an entitlement level */
#define CDCS_ISS_RIGHTS_MAX         16
#define CDCS_ISS_DECISION_MAX       64
#define CDCS_ISS_HEX_ID             32 /* perso_id, confirm: 16 random bytes in hex */
/* "<vendor>-<24 hex>" */
#define CDCS_ISS_CDCS_ID_MAX (CDCS_ISS_ID_MAX + 1 + 24)

/* Entitlement keys: kid "<vendor>/<name>/<level>", 32 bytes each. */
#define CDCS_ISS_KEY_LEN  32
#define CDCS_ISS_KID_MAX  (2 * CDCS_ISS_ID_MAX + CDCS_ISS_LEVEL_MAX + 2)
#define CDCS_ISS_KEYS_MAX 1024

struct cdcs_iss_key {
	char kid[CDCS_ISS_KID_MAX + 1];
	unsigned char k[CDCS_ISS_KEY_LEN];
};

struct cdcs_iss_keyset {
	struct cdcs_iss_key *v;
	size_t n;
};

/* The "cdcs_iss" config section. */
struct cdcs_iss_conf {
	char *device_ca;        /* the CA that issues DM certificates */
	char *ticket_key;       /* signs personalization tickets; private, 0600 */
	char *entitlement_keys; /* JWK Set; private, 0600 */
	char *cdcs_pss_url;     /* step 20 reports go there */
	char *public_url;       /* where devices reach us, given to cdcs-mss */
	int64_t ticket_ttl_s;   /* 0 (absent): CDCS_ISS_TICKET_TTL_DEFAULT */
};

struct cdcs_iss_report;

/*
 * Loaded once by init and kept for the life of the process: a SIGHUP swaps d->cfg, so
 * nothing here points into it.
 */
struct cdcs_iss {
	struct daemon_ctx *d;
	char device_ca_fp[65];
	EVP_PKEY *ticket_key; /* signs, and verifies what it signed */
	struct cdcs_iss_keyset keys;
	char *cdcs_pss_url; /* without a trailing '/' */
	char *public_url;
	int64_t ticket_ttl_s;
	struct httpc *pss;
	struct event *ev_purge;
	struct event *ev_outbox;
	TAILQ_HEAD(, cdcs_iss_report) sending; /* outbox rows in flight to cdcs-pss */
};

extern const struct daemon_role cdcs_iss_role;
extern const struct db_migration cdcs_iss_migrations[];

/*
 * check.c: what the endpoints share. (Vendor, name, variant and entitlement levels are
 * checked with cdcsimg.h, a DM id or decision id with dmpeer_id_ok().)
 */
int cdcs_iss_hex_ok(const char *s, size_t len); /* exactly len lower-case hex */
/* The audit row of a device's personalization (cdcs.personalize, cdcs.confirm): subject its
 * DM id, in the caller's transaction. 0/-1. */
int cdcs_iss_audit(struct daemon_ctx *d, struct httpd_req *req, const char *action,
                   const char *dm_id, const char *vendor, const char *name, int64_t version_number,
                   const char *perso_id);

/* keys.c: the entitlement keys (a JWK Set of "oct" keys). */
/* Parse text into *out (fresh; free with cdcs_iss_keys_free). 0/-1 + err. */
int cdcs_iss_keys_parse(const char *text, size_t len, struct cdcs_iss_keyset *out, char *err,
                        size_t errlen);
/* The same from a file that must be private (0600). 0/-1 + err. */
int cdcs_iss_keys_load(const char *path, struct cdcs_iss_keyset *out, char *err, size_t errlen);
/* The key with this kid, or NULL. */
const struct cdcs_iss_key *cdcs_iss_keys_find(const struct cdcs_iss_keyset *ks, const char *kid);
/* Wipe and free; *ks is left empty. */
void cdcs_iss_keys_free(struct cdcs_iss_keyset *ks);

/* ticket.c: POST /v1/internal/personalization-ticket (step 12). */
struct cdcs_iss_ticket_body {
	char *dm_id;
	char *vendor;
	char *name;
	char *variant;
	int64_t version_number;
	struct schema_strlist rights;
	char *decision;
};
extern const struct schema_field cdcs_iss_ticket_fields[];
void cdcs_iss_ticket(struct httpd_req *req, void *arg);

/* personalize.c: POST /v1/cdcs/personalize (steps 16-18). */
struct cdcs_iss_personalize_body {
	char *personalization_ticket;
	char *public_key;
	char *vendor;
	char *name;
};
extern const struct schema_field cdcs_iss_personalize_fields[];
void cdcs_iss_personalize(struct httpd_req *req, void *arg);

/* What a personalization ticket grants, as checked and copied out of its claims. */
struct cdcs_iss_grant {
	char dm_id[DMPEER_ID_MAX + 1];
	char vendor[CDCS_ISS_ID_MAX + 1];
	char name[CDCS_ISS_ID_MAX + 1];
	char variant[CDCS_ISS_VARIANT_MAX + 1];
	int64_t version_number;
	char rights[CDCS_ISS_RIGHTS_MAX][CDCS_ISS_LEVEL_MAX + 1];
	size_t n_rights;
	char decision[CDCS_ISS_DECISION_MAX + 1];
	char jti[REPLAY_JTI_MAX + 1];
	int64_t exp;
};

/* The claims of a verified ticket into *g. 0, or -1 with the offending claim in err. */
int cdcs_iss_grant_from_claims(const json_t *claims, struct cdcs_iss_grant *g, char *err,
                               size_t errlen);

/*
 * The code to refuse a token with when its signature does not verify with our key: it may be
 * another daemon's (a download ticket sent here by mistake), which its claims, read WITHOUT
 * verification, tell: "wrong_audience" (aud is not cdcs-iss), "wrong_issuer", else
 * "bad_token". Only the error code depends on them; the token is refused either way.
 */
const char *cdcs_iss_foreign_code(const char *token);

/* What step 18 hands out; confirm is only kept hashed (confirm_sha256). */
struct cdcs_iss_perso {
	char perso_id[CDCS_ISS_HEX_ID + 1];
	char cdcs_id[CDCS_ISS_CDCS_ID_MAX + 1];
	char confirm[CDCS_ISS_HEX_ID + 1];
	char confirm_sha256[65];
	int64_t iat;
};

/*
 * New random ids for g, and the personalization data plaintext (the JSON of docs/protocol.md)
 * with the entitlement key of each right that has one (a right without one is logged under
 * rid and left out). Returns the malloc'd text (the caller wipes and frees it) or NULL.
 */
char *cdcs_iss_perso_build(const struct cdcs_iss_keyset *ks, const struct cdcs_iss_grant *g,
                           const char *rid, int64_t now, struct cdcs_iss_perso *p);

/* confirm.c: POST /v1/cdcs/confirm. */
struct cdcs_iss_confirm_body {
	char *perso_id;
	char *confirmation;
	char *result;
};
extern const struct schema_field cdcs_iss_confirm_fields[];
void cdcs_iss_confirm(struct httpd_req *req, void *arg);

/* report.c: the step-20 outbox. */
/* init: the outbox timer, armed to send at once what a previous run left queued. 0/-1. */
int cdcs_iss_report_init(struct cdcs_iss *s);
/* Arm the outbox: send what is due now (after a confirmation, or at start). */
void cdcs_iss_report_kick(struct cdcs_iss *s);
/* fini: forget the reports in flight (httpc is already freed; their rows stay queued) and
 * the timer. */
void cdcs_iss_report_drop(struct cdcs_iss *s);
/* Seconds before attempt number attempts + 1, after attempts failures: 1, 2, 4 ... 30. */
int64_t cdcs_iss_report_backoff(int64_t attempts);

/* store.c */
#define CDCS_ISS_BATCH 16 /* outbox rows sent at once */

/* A personalization row, as confirm needs it. */
struct cdcs_iss_perso_row {
	char dm_id[DMPEER_ID_MAX + 1];
	char vendor[CDCS_ISS_ID_MAX + 1];
	char name[CDCS_ISS_ID_MAX + 1];
	char variant[CDCS_ISS_VARIANT_MAX + 1];
	int64_t version_number;
	char cdcs_id[CDCS_ISS_CDCS_ID_MAX + 1];
	char confirm_sha256[65];
	char decision[CDCS_ISS_DECISION_MAX + 1];
	int64_t confirmed_at; /* 0: not yet */
};

/* An outbox row on its way to cdcs-pss. */
struct cdcs_iss_outbox_row {
	int64_t id;
	int64_t attempts;
	char rid[HTTPD_RID_MAX + 1];
	char *body; /* JSON text; malloc'd */
};

/*
 * Record a personalization and spend its ticket's jti, in one transaction (the caller's when
 * one is open, which it must then roll back unless 0): 0 both written, 1 the jti was already
 * spent (nothing written), -1 error (nothing written).
 */
int cdcs_iss_store_personalize(struct db *db, const struct cdcs_iss_grant *g,
                               const struct cdcs_iss_perso *p, int64_t now);
/* 1 found (*out filled), 0 no such perso_id, -1 error. */
int cdcs_iss_store_perso_find(struct db *db, const char *perso_id, struct cdcs_iss_perso_row *out);
/*
 * Mark perso_id confirmed at now and queue body for cdcs-pss under rid, in one transaction
 * (the caller's when one is open, as above): 0 done, 1 it was already confirmed (nothing
 * changed), -1 error (nothing changed).
 */
int cdcs_iss_store_confirm(struct db *db, const char *perso_id, const char *rid, const char *body,
                           int64_t now);
/* Up to max outbox rows due at now, oldest first: how many were filled into rows (free each
 * body with free()), or -1. */
int cdcs_iss_store_outbox_due(struct db *db, int64_t now, struct cdcs_iss_outbox_row *rows,
                              size_t max);
/* The earliest next_at of the queued rows: 1 (*at set), 0 none queued, -1 error. */
int cdcs_iss_store_outbox_next(struct db *db, int64_t *at);
int cdcs_iss_store_outbox_delete(struct db *db, int64_t id);
/* One more failed attempt: attempts + 1, next_at = at. 0/-1. */
int cdcs_iss_store_outbox_retry(struct db *db, int64_t id, int64_t at);
/* At start: whatever waited for a backoff is due now. 0/-1. */
int cdcs_iss_store_outbox_reset(struct db *db, int64_t now);

#endif
