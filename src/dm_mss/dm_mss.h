/*
 * dm-mss: the DM agent management server (J.1020 §9, Figure 4 steps 1-4). It authenticates
 * a new secondary device (application certificate, activation code, subscriber, household
 * limit, revocation), records it, and hands out the signed DM agent package and a single-use
 * enrolment token for dm-iss. Shared declarations of the role's files.
 */
#ifndef DM_MSS_H
#define DM_MSS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "opendm/capability.h"
#include "opendm/daemon.h"
#include "opendm/replay.h"

#define DM_MSS_PLATFORM_MAX 32
#define DM_MSS_ACCOUNT_MAX  64
#define DM_MSS_HW_ID_MIN    4
#define DM_MSS_HW_ID_MAX    64
#define DM_MSS_CODE_LEN     12 /* activation code characters, dashes aside */
#define DM_MSS_TOKEN_TTL    600
#define DM_MSS_BUNDLE_TTL   604800
#define DM_MSS_CPE_CN_MAX   64    /* a CPE certificate's CN, the key of the CPE registry */
#define DM_MSS_CPE_PEM_MAX  16384 /* the CPE certificate chain a device passes on */
#define DM_MSS_PURGE_S      600   /* how often spent pairing assertions are forgotten */
#define DM_MSS_LIST_MAX     1000  /* rows of one operator listing */
#define DM_MSS_NAME_WHAT    "1-64 characters of A-Z a-z 0-9 . _ -" /* accounts, CPE cns */
#define DM_MSS_HW_ID_WHAT   "4-64 characters of A-Z a-z 0-9 . _ : -"

extern const struct daemon_role dm_mss_role;
extern const struct db_migration dm_mss_migrations[];

/* The "dm_mss" section of the configuration file. */
struct dm_mss_conf {
	char *app_ca;         /* application CA certificate: device requests must chain to it */
	char *enrolment_key;  /* signs enrolment tokens and offline bundles (private, 0600) */
	char *agent_pubkey;   /* verifies the agent manifests at start */
	char *packages_dir;   /* <platform>/<version_number>/{dm-agent,manifest.jws} */
	char *dm_iss_url;     /* where devices personalize (step 7) */
	int64_t token_ttl_s;  /* 0: DM_MSS_TOKEN_TTL */
	int64_t bundle_ttl_s; /* 0: DM_MSS_BUNDLE_TTL */
	char *cpe_ca;         /* optional: CPE CA certificate; pairing assertions refused without */
};

/* The newest verified agent package of one platform. */
struct dm_mss_pkg {
	char platform[DM_MSS_PLATFORM_MAX + 1];
	int64_t version_number;
	char *manifest; /* compact JWS, as read */
	char sha256[65];
	int64_t size;
	char path[PATH_MAX]; /* the binary: built from directory entries, never from a request */
	char etag[68];       /* "\"<sha256>\"" */
};

struct dm_mss_state {
	char app_ca_fp[65]; /* sha256 of the application CA: the issuer of app certificates */
	EVP_PKEY *enrol_key;
	struct dm_mss_pkg *pkgs;
	size_t npkgs;
	X509 *cpe_ca;                 /* NULL: pairing disabled */
	STACK_OF(X509) * cpe_anchors; /* the CPE CA and the roots of tls.ca */
	struct event *ev_purge;
};

/* What a valid pairing assertion says: which CPE vouches for the device, and its token id. */
struct dm_mss_pairing {
	char cpe[DM_MSS_CPE_CN_MAX + 1];
	char jti[REPLAY_JTI_MAX + 1];
	int64_t exp;
};

/* A device's right to enrol, as the checks of step 2 (or of an offline bundle) found it. */
struct dm_mss_admit {
	int64_t subscriber_id;
	char account[DM_MSS_ACCOUNT_MAX + 1];
	int64_t device_id; /* the existing active device row, 0 for a new device */
};

/* dm_mss.c */
const struct dm_mss_conf *dm_mss_conf(const struct daemon_ctx *d);
struct dm_mss_state *dm_mss_state(const struct daemon_ctx *d);
int64_t dm_mss_token_ttl(const struct daemon_ctx *d);
int64_t dm_mss_bundle_ttl(const struct daemon_ctx *d);

/* check.c: input validation shared by the handlers. 1 if valid. */
int dm_mss_hw_id_ok(const char *s);
int dm_mss_account_ok(const char *s);
int dm_mss_cpe_cn_ok(const char *s);
/* A device status an operator may filter on: active or revoked. */
int dm_mss_device_status_ok(const char *s);
/* Canonical activation code (12 upper-case characters of the code alphabet) from what a user
 * typed: case-insensitive, dashes ignored. 0/-1. */
int dm_mss_code_normalize(const char *in, char out[DM_MSS_CODE_LEN + 1]);
/* sha256 of data as lower-case hex. 0/-1. */
int dm_mss_sha256_hex(const void *data, size_t len, char out[65]);
/* sha256 and size of a regular file, read in blocks. 0/-1 + err naming the file. */
int dm_mss_sha256_file(const char *path, char out[65], int64_t *size, char *err, size_t errlen);
/* 1 if the TLS peer holds an application certificate, else replies 403 not_application. */
int dm_mss_authorize_app(struct daemon_ctx *d, struct httpd_req *req);
/* 1 if the peer is an operator (role admin or subscribers) or a commissioned offline-bundle
 * maker (OU offline), both from the service CA; else replies 403 forbidden. */
int dm_mss_authorize_bundle_maker(struct daemon_ctx *d, struct httpd_req *req);

/* Column col of the current row as text, "" for NULL (or out of memory). */
const char *dm_mss_col_text(sqlite3_stmt *s, int col);
/* Reply with body (stolen), or 500 when building it failed (body NULL). */
void dm_mss_reply(struct httpd_req *req, int status, json_t *body);

/* query.c: the query parameter key into buf, checked with ok(): 1 found, 0 absent, -1 after
 * replying 400 bad_request naming the parameter (what says what is allowed). */
int dm_mss_query(struct httpd_req *req, const char *key, char *buf, size_t len,
                 int (*ok)(const char *), const char *what);
/* Step s to its end (then reset it): an array of one object per row, the columns named by
 * keys (NULL-terminated), or with keys NULL of column 0's values. NULL on error (logged). */
json_t *dm_mss_rows(struct db *db, sqlite3_stmt *s, const char *const *keys);

/* store.c: an operator's change of a row's status, as the handlers of subscribers, CPEs and
 * device revocation make it. */
struct dm_mss_status_kind {
	const char *select; /* the row's status: ?1 is the key */
	const char *update; /* ?1 the new status, ?2 the key, ?3 (if used) the time */
	const char *action; /* what the audit row calls it */
};
extern const struct dm_mss_status_kind dm_mss_subscriber_status_kind;
extern const struct dm_mss_status_kind dm_mss_cpe_status_kind;
extern const struct dm_mss_status_kind dm_mss_device_revoke_kind;
/* Set key's status and write the audit row (subject key, detail {"status", "from"}) in one
 * transaction: 1 done (*from is the old status), 0 no such row, -1 error (logged). Nothing is
 * written unless 1. */
int dm_mss_status_set(struct db *db, const char *rid, const char *actor,
                      const struct dm_mss_status_kind *k, const char *key, const char *status,
                      int64_t now, char *from, size_t fromlen);
/* Inside an open transaction: write the audit row of req's change (detail stolen; NULL is out
 * of memory) and commit; on failure roll back. 0/-1 (logged). */
int dm_mss_commit_audited(struct daemon_ctx *d, struct httpd_req *req, const char *action,
                          const char *subject, json_t *detail);

/* subscriber.c: look a subscriber up by account. 1 found, 0 unknown, -1 database error. */
int dm_mss_subscriber_find(struct daemon_ctx *d, const char *account, int64_t *id,
                           int64_t *device_limit, char *status, size_t statuslen);

/* cpe.c: the CPE cn with its subscriber. 1 found, 0 unknown, -1 database error. */
int dm_mss_cpe_find(struct daemon_ctx *d, const char *cn, struct dm_mss_admit *a, char *status,
                    size_t statuslen, int64_t *device_limit, char *sub_status,
                    size_t sub_statuslen);

/* pairing.c: load dm_mss.cpe_ca and the roots of tls.ca it must chain to. 0/-1 + err. */
int dm_mss_pairing_load(struct dm_mss_state *st, const char *cpe_ca, const char *tls_ca, char *err,
                        size_t errlen);
void dm_mss_pairing_free(struct dm_mss_state *st);
/*
 * Check a pairing assertion for hw_id: cert_pem's leaf issued by the CPE CA, the JWS signed
 * by that leaf's key with iss = its CN, aud dm-mss, sub = hw_id, not expired, with a jti.
 * No database: the caller spends the jti. 0, or -1 with *status, *code and err for the reply.
 */
int dm_mss_pairing_verify(const struct dm_mss_state *st, const char *cert_pem,
                          const char *assertion, const char *hw_id, time_t now,
                          struct dm_mss_pairing *out, int *status, const char **code, char *err,
                          size_t errlen);

/* package.c */
int dm_mss_packages_load(struct dm_mss_state *st, const char *dir, EVP_PKEY *pub, char *err,
                         size_t errlen);
void dm_mss_packages_free(struct dm_mss_state *st);
const struct dm_mss_pkg *dm_mss_package_newest(const struct dm_mss_state *st, const char *platform);

/* enrol.c: what the online request and the offline bundle share. Inside an open transaction;
 * on refusal reply with the protocol's error and return -1. */
int dm_mss_admit_device(struct daemon_ctx *d, struct httpd_req *req, const char *hw_id,
                        struct dm_mss_admit *a, int64_t device_limit, const char *sub_status);
/* Insert the device, or refresh the platform and capability of an existing one, with its
 * device.register audit row (detail: account, platform, reinstall, and the keys of how,
 * borrowed, which tell what vouched for it). Inside the caller's transaction. 0/-1. */
int dm_mss_record_device(struct daemon_ctx *d, struct httpd_req *req, const struct dm_mss_admit *a,
                         const char *hw_id, const struct capability *cap, int64_t now, json_t *how);
/* The enrolment token for dm-iss (malloc'd), or NULL + err. */
char *dm_mss_enrolment_token(struct daemon_ctx *d, const char *hw_id, const char *account,
                             const char *platform, int64_t ttl_s, char *err, size_t errlen);
/* The package URL of pkg into buf. */
void dm_mss_package_url(const struct dm_mss_pkg *pkg, char *buf, size_t len);

/* Handlers, one per endpoint (arg is the struct daemon_ctx). */
void dm_mss_download_request(struct httpd_req *req, void *arg); /* download.c */
void dm_mss_package_get(struct httpd_req *req, void *arg);      /* package_get.c */
void dm_mss_internal_device(struct httpd_req *req, void *arg);  /* device.c */
void dm_mss_admin_device_get(struct httpd_req *req, void *arg);
void dm_mss_admin_device_revoke(struct httpd_req *req, void *arg);
void dm_mss_admin_device_list(struct httpd_req *req, void *arg);
void dm_mss_subscriber_create(struct httpd_req *req, void *arg); /* subscriber.c */
void dm_mss_subscriber_status(struct httpd_req *req, void *arg);
void dm_mss_subscriber_list(struct httpd_req *req, void *arg);
void dm_mss_subscriber_get(struct httpd_req *req, void *arg);
void dm_mss_code_create(struct httpd_req *req, void *arg);   /* code.c */
void dm_mss_bundle_create(struct httpd_req *req, void *arg); /* bundle.c */
void dm_mss_cpe_create(struct httpd_req *req, void *arg);    /* cpe.c */
void dm_mss_cpe_status(struct httpd_req *req, void *arg);
void dm_mss_cpe_get(struct httpd_req *req, void *arg);
void dm_mss_cpe_list(struct httpd_req *req, void *arg);

/* Request bodies. */
struct dm_mss_pairing_body {
	char *assertion;
	char *cpe_certificate;
};
struct dm_mss_download_body {
	char *hw_id;
	struct capability capability;
	char *activation_code;              /* exactly one of activation_code */
	struct dm_mss_pairing_body pairing; /* and pairing (assertion set) */
	int64_t installed_version;
};
struct dm_mss_subscriber_body {
	char *account;
	int64_t device_limit;
};
struct dm_mss_status_body {
	char *account;
	char *status;
};
struct dm_mss_code_body {
	char *account;
	int64_t ttl_s;
};
struct dm_mss_hw_id_body {
	char *hw_id;
};
struct dm_mss_cpe_body {
	char *cn;
	char *account;
};
struct dm_mss_cpe_status_body {
	char *cn;
	char *status;
};
struct dm_mss_bundle_body {
	char *hw_id;
	char *account;
	struct capability capability;
};
extern const struct schema_field dm_mss_download_fields[];
extern const struct schema_field dm_mss_subscriber_fields[];
extern const struct schema_field dm_mss_status_fields[];
extern const struct schema_field dm_mss_code_fields[];
extern const struct schema_field dm_mss_hw_id_fields[];
extern const struct schema_field dm_mss_bundle_fields[];
extern const struct schema_field dm_mss_cpe_fields[];
extern const struct schema_field dm_mss_cpe_status_fields[];

#endif
