/* cdcs-mss: the role's table, its configuration, its state and its database. */
#ifndef CDCS_MSS_H
#define CDCS_MSS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "opendm/cdcsimg.h"
#include "opendm/daemon.h"
#include "opendm/dmpeer.h"
#include "opendm/httpc.h"
#include "opendm/httpd.h"
#include "opendm/replay.h"
#include "opendm/revocation.h"

#define CDCS_MSS_ERRLEN            512
#define CDCS_MSS_URL_MAX           512
#define CDCS_MSS_PATH_MAX          4096
#define CDCS_MSS_RELPATH_MAX       256 /* "V/N/X/P/NUM" under catalogue_dir */
#define CDCS_MSS_TICKET_TTL        300
#define CDCS_MSS_TICKET_TTL_MAX    86400
#define CDCS_MSS_SESSION_TTL       3600
#define CDCS_MSS_SESSION_TTL_MAX   (7 * 86400)
#define CDCS_MSS_SESSION_HEX_BYTES 16 /* a session id is 32 hex characters */
#define CDCS_MSS_SESSION_MAX       (2 * CDCS_MSS_SESSION_HEX_BYTES + 1)
#define CDCS_MSS_DECISION_MAX      64
#define CDCS_MSS_RIGHTS_MAX        16
#define CDCS_MSS_ITEMS_MAX         16

/* The "cdcs_mss" config section. */
struct cdcs_mss_conf {
	char *device_ca;       /* the CA that issues DM certificates */
	char *catalogue_dir;   /* published images: V/N/X/P/NUM/{image,manifest.jws,approval.jws} */
	json_t *vendor_keys;   /* {"vendor-a": "/etc/opendm/pki/vendor-a-signing.pub", ...} */
	char *operator_pubkey; /* verifies operator approvals */
	char *ticket_key;      /* signs download tickets (and checks them): private, 0600 */
	char *public_url;      /* how devices reach us: image_url and download_url */
	char *cdcs_iss_url;    /* asked for personalization tickets (step 11) */
	int64_t download_ticket_ttl_s; /* 0 (absent): CDCS_MSS_TICKET_TTL */
	int64_t session_ttl_s;         /* 0 (absent): CDCS_MSS_SESSION_TTL */
};

/* What init loads: the keys and what checks images. */
struct cdcs_mss_verifier {
	struct cdcsimg_keyring vendors;
	EVP_PKEY *operator_pub;
};

struct cdcs_mss_pending;

/*
 * Loaded once by init and kept for the life of the process: a SIGHUP swaps d->cfg, so nothing
 * here points into it (TTLs are read from the config at each use).
 */
struct cdcs_mss {
	struct daemon_ctx *d;
	char device_ca_fp[65];
	struct cdcs_mss_verifier v;
	EVP_PKEY *ticket_key;
	char *catalogue_dir;
	char *public_url;   /* without a trailing '/' */
	char *cdcs_iss_url; /* without a trailing '/' */
	struct httpc *iss;
	struct event *ev_purge;
	TAILQ_HEAD(, cdcs_mss_pending) pending; /* downloads waiting for cdcs-iss */
};

/* One catalogue entry (a row of table image). Strings are NUL-terminated copies. */
struct cdcs_mss_image {
	int64_t id;
	struct cdcsimg_manifest m; /* vendor, name, kind, variant, platform, version, ... */
	char path[CDCS_MSS_RELPATH_MAX + 1];
	char *manifest; /* malloc'd JWS text */
	char *approval; /* malloc'd JWS text */
	int64_t registered_at;
	int64_t withdrawn_at; /* 0 = not withdrawn */
	int64_t revoked_at;   /* 0 = not revoked by the stored revocation list */
	char key_sha256[65];  /* the vendor key that verified it at registration; "" unknown */
};

void cdcs_mss_image_clear(struct cdcs_mss_image *img);
/* The record operators see (without the JWS texts); NULL on allocation failure. */
json_t *cdcs_mss_image_json(const struct cdcs_mss_image *img);
/* NULL while img may be served, else why not, the 410 code: image_withdrawn, image_revoked. */
const char *cdcs_mss_image_gone(const struct cdcs_mss_image *img);

extern const struct daemon_role cdcs_mss_role;
extern const struct db_migration cdcs_mss_migrations[];

int64_t cdcs_mss_ticket_ttl(const struct daemon_ctx *d);
int64_t cdcs_mss_session_ttl(const struct daemon_ctx *d);

/*
 * catalogue.c (no daemon dependency): verify the published directory relpath under dir
 * (image, manifest.jws, approval.jws): path syntax, vendor signature, operator approval and
 * its binding, path components = manifest fields, size and sha256 of the image. On success
 * 0 and *out filled (manifest/approval malloc'd: cdcs_mss_image_clear()). On refusal -1,
 * *status (400 bad path, 404 no such image, 422 refused) and *code (bad_request, not_found,
 * unknown_vendor, bad_signature, not_approved, bad_claims, bad_digest, bad_size,
 * path_mismatch) and a one-line reason in err.
 */
int cdcs_mss_catalogue_verify(const struct cdcs_mss_verifier *v, const char *dir,
                              const char *relpath, time_t now, struct cdcs_mss_image *out,
                              int *status, const char **code, char *err, size_t errlen);

/* store.c: the catalogue. Each returns 1 found (*out filled), 0 none, -1 error (logged). */
int cdcs_mss_store_image_get(struct db *db, const char *vendor, const char *name,
                             const char *variant, const char *platform, int64_t version_number,
                             struct cdcs_mss_image *out);
int cdcs_mss_store_image_by_id(struct db *db, int64_t id, struct cdcs_mss_image *out);
/* The newest registered, not withdrawn, not revoked image with version_number >=
 * min_version. */
int cdcs_mss_store_image_choose(struct db *db, const char *vendor, const char *name,
                                const char *variant, const char *platform, int64_t min_version,
                                struct cdcs_mss_image *out);
/* Insert img (img->id set). 0/-1. */
int cdcs_mss_store_image_insert(struct db *db, struct cdcs_mss_image *img);
/* Mark withdrawn (the first time is kept). 1 done, 0 unknown image, -1 error. */
int cdcs_mss_store_image_withdraw(struct db *db, const char *vendor, const char *name,
                                  const char *variant, const char *platform, int64_t version_number,
                                  int64_t now);
/* Every image as records, ordered by identity. New reference or NULL. */
json_t *cdcs_mss_store_image_list(struct db *db);
/* Every image of vendor/name as catalogue records {variant, platform, version_number,
 * version, withdrawn, revoked} ordered by variant, platform, version_number, and their kind
 * (one manifest field, the same in each). 1 (*images new reference), 0 none ever
 * registered, -1 error. */
int cdcs_mss_store_catalogue(struct db *db, const char *vendor, const char *name, json_t **images,
                             char kind[8]);
/* The smallest id > after of an image whose vendor key is not recorded: 1/0/-1. */
int cdcs_mss_store_image_next_unkeyed(struct db *db, int64_t after, int64_t *id);
int cdcs_mss_store_image_set_key(struct db *db, int64_t id, const char *key_sha256);
/* Mark revoked every image rl revokes (keeping an earlier time) and unmark the others; the
 * caller holds the transaction. The number of images rl revokes, or -1. */
int cdcs_mss_store_image_revoke(struct db *db, const struct revocation_list *rl, int64_t now);

/* The stored revocation list with the highest serial: 1 (*serial, *jws malloc'd), 0 none
 * (*serial 0, *jws NULL), -1 error. */
int cdcs_mss_store_revocations_get(struct db *db, int64_t *serial, char **jws);
int cdcs_mss_store_revocations_put(struct db *db, int64_t serial, const char *jws, int64_t now);

/* A download session (table session). */
struct cdcs_mss_session {
	char id[CDCS_MSS_SESSION_MAX];
	char dm_id[DMPEER_ID_MAX + 1];
	int64_t image;
	int64_t created, expires;
};
/* Insert a session; the caller holds the transaction. 0/-1. */
int cdcs_mss_store_session_insert(struct db *db, const struct cdcs_mss_session *s,
                                  const char *perso_ticket);
/* 1 found, 0 unknown, -1 error. */
int cdcs_mss_store_session_get(struct db *db, const char *id, struct cdcs_mss_session *out);
/* Count n more image bytes delivered to a session (for operators: a download that needed far
 * more than the image's size was cut many times). 0/-1. */
int cdcs_mss_store_session_sent(struct db *db, const char *id, int64_t n);
/* 1 if jti is already spent, 0 if not, -1 error. */
int cdcs_mss_store_jti_spent(struct db *db, const char *jti);
/* Forget sessions that expired before now. Rows deleted or -1. */
int cdcs_mss_store_session_purge(struct db *db, int64_t now);

/* Endpoints. */
struct cdcs_mss_path_body {
	char *path;
};
extern const struct schema_field cdcs_mss_path_fields[];
void cdcs_mss_admin_register(struct httpd_req *req, void *arg);

struct cdcs_mss_ident_body {
	char *vendor, *name, *variant, *platform;
	int64_t version_number;
};
extern const struct schema_field cdcs_mss_ident_fields[];
void cdcs_mss_admin_withdraw(struct httpd_req *req, void *arg);
void cdcs_mss_admin_list(struct httpd_req *req, void *arg);

struct cdcs_mss_prepare_item {
	char *vendor, *name, *variant;
	int64_t min_version;
	int64_t floor; /* the version the device has installed; 0 = none */
	struct schema_strlist rights;
};
struct cdcs_mss_prepare_body {
	char *dm_id, *decision, *platform;
	struct schema_objlist items; /* struct cdcs_mss_prepare_item */
};
extern const struct schema_field cdcs_mss_prepare_fields[];
void cdcs_mss_prepare(struct httpd_req *req, void *arg);

struct cdcs_mss_download_body {
	char *download_ticket;
};
extern const struct schema_field cdcs_mss_download_fields[];
void cdcs_mss_download(struct httpd_req *req, void *arg);
/* fini: drop the downloads still waiting for cdcs-iss (httpc is already freed). */
void cdcs_mss_pending_drop(struct cdcs_mss *s);

void cdcs_mss_image_get(struct httpd_req *req, void *arg);

/* lookup.c: GET /v1/internal/catalogue/<vendor>/<name> (cdcs-pss only). */
void cdcs_mss_catalogue_get(struct httpd_req *req, void *arg);

/* revocations.c: the operator's revocation list (revocation.h). */
struct cdcs_mss_revocations_body {
	char *revocations;
};
extern const struct schema_field cdcs_mss_revocations_fields[];
void cdcs_mss_revocations_put(struct httpd_req *req, void *arg);
void cdcs_mss_revocations_get(struct httpd_req *req, void *arg);
/* Whether the stored list revokes img (its version or img->key_sha256): 1 with the reason
 * in why, 0 not (or no list), -1 error (logged). */
int cdcs_mss_revoked(struct cdcs_mss *s, const struct cdcs_mss_image *img, char *why,
                     size_t whylen);
/* init: record the vendor key of images registered before keys were recorded, then apply
 * the stored list again (it may now match them). 0/-1 (logged). */
int cdcs_mss_revocations_init(struct cdcs_mss *s);

/* 1 if s is printable ASCII without spaces (1..max chars): ids and tokens that get logged. */
int cdcs_mss_text_ok(const char *s, size_t max);

#endif
