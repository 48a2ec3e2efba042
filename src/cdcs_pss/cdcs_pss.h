/* cdcs-pss: the role's table, its configuration, its state and its database. */
#ifndef CDCS_PSS_H
#define CDCS_PSS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "opendm/capability.h"
#include "opendm/daemon.h"
#include "opendm/dmpeer.h"
#include "opendm/httpc.h"
#include "opendm/httpd.h"
#include "policy.h"

#define CDCS_PSS_INTERVAL_DEFAULT 3600
#define CDCS_PSS_INTERVAL_MAX     (30 * 86400)
#define CDCS_PSS_URL_MAX          512
#define CDCS_PSS_ERRLEN           512
#define CDCS_PSS_DECISION_MAX     (4 + 32 + 1) /* "dec-" + 32 hex */
#define CDCS_PSS_ITEMS_MAX        16           /* installed, results */
#define CDCS_PSS_RULES_MAX        1000         /* all of them are read for every decision */
#define CDCS_PSS_ERROR_TEXT_MAX   256

/* The "cdcs_pss" config section. */
struct cdcs_pss_conf {
	char *device_ca;    /* the device CA certificate: who may be a device */
	char *dm_iss_url;   /* asked whether a DM id is active (step 2) */
	char *cdcs_mss_url; /* asked to prepare the chosen CDCSs (step 5) */
	int64_t interval_s; /* 0 (absent): CDCS_PSS_INTERVAL_DEFAULT */
};

struct cdcs_pss_pending;

/* Loaded once by init and kept for the life of the process (a SIGHUP swaps d->cfg). */
struct cdcs_pss {
	struct daemon_ctx *d;
	char device_ca_fp[65];
	char *dm_iss_url; /* without a trailing '/' */
	char *cdcs_mss_url;
	int64_t interval_s;
	struct httpc *http; /* to dm-iss and cdcs-mss, with our service certificate */
	struct event *ev_purge;
	TAILQ_HEAD(, cdcs_pss_pending) pending; /* authorize requests waiting for a daemon */
};

extern const struct daemon_role cdcs_pss_role;
extern const struct db_migration cdcs_pss_migrations[];

/* POST /v1/cdcs/authorize (steps 1-6). */
struct cdcs_pss_installed {
	char *vendor;
	char *name;
	char *variant;
	int64_t version_number;
	int personalized;
};

struct cdcs_pss_authorize_body {
	struct capability capability;
	struct schema_objlist installed; /* struct cdcs_pss_installed */
};

extern const struct schema_field cdcs_pss_authorize_fields[];
void cdcs_pss_authorize(struct httpd_req *req, void *arg);
/* fini: drop the requests still waiting for another daemon (httpc is already freed). */
void cdcs_pss_pending_drop(struct cdcs_pss *s);

/* POST /v1/cdcs/report (device) and POST /v1/internal/cdcs-state (cdcs-iss, step 20). */
struct cdcs_pss_result {
	char *vendor;
	char *name;
	int64_t version_number;
	char *state;
	char *error;
};

struct cdcs_pss_report_body {
	char *decision;
	struct schema_objlist results; /* struct cdcs_pss_result */
};

struct cdcs_pss_state_body {
	char *dm_id;
	char *vendor;
	char *name;
	char *variant;
	int64_t version_number;
	char *state;
	char *cdcs_id;
	char *decision;
	int64_t personalized_at;
};

extern const struct schema_field cdcs_pss_report_fields[];
extern const struct schema_field cdcs_pss_state_fields[];
void cdcs_pss_report(struct httpd_req *req, void *arg);
void cdcs_pss_state(struct httpd_req *req, void *arg);

/* Operator endpoints: entitlements, policy rules, what a device has. */
struct cdcs_pss_levels_body {
	struct schema_strlist levels;
};

extern const struct schema_field cdcs_pss_levels_fields[];
void cdcs_pss_entitlement_put(struct httpd_req *req, void *arg);
void cdcs_pss_entitlement_get(struct httpd_req *req, void *arg);
void cdcs_pss_rule_add(struct httpd_req *req, void *arg);
void cdcs_pss_rule_list(struct httpd_req *req, void *arg);
void cdcs_pss_rule_delete(struct httpd_req *req, void *arg);
void cdcs_pss_device_get(struct httpd_req *req, void *arg);

/*
 * store.c. Functions that return an int give 0 (or the count / 1 found) and -1 on a
 * database error (logged); none opens a transaction unless it says so.
 */
/* The account's levels, sorted, as a new JSON array of strings; NULL on error. */
json_t *cdcs_pss_store_levels(struct db *db, const char *account);
/* Replace the account's levels with levels (in its own transaction). */
int cdcs_pss_store_levels_set(struct db *db, const char *account, const struct schema_strlist *l);
/* Every rule, decoded and checked, into a new array (*out, free with cdcs_pss_rules_free). */
int cdcs_pss_store_rules(struct db *db, struct policy_rule **out, size_t *n);
void cdcs_pss_rules_free(struct policy_rule *rules, size_t n);
/* Every rule as stored (JSON objects), in (priority, name) order; NULL on error. */
json_t *cdcs_pss_store_rules_json(struct db *db);
/* 0 added, 1 a rule of that name exists, 2 the limit is reached, -1 error. */
int cdcs_pss_store_rule_add(struct db *db, const char *name, int64_t priority, const char *json);
/* 1 deleted, 0 no such rule, -1 error. */
int cdcs_pss_store_rule_delete(struct db *db, const char *name);
int cdcs_pss_store_decision_add(struct db *db, const char *id, const char *dm_id,
                                const char *account, const char *capability, const char *result,
                                const char *reason);
/* Append a line to a decision's reason (what happened after the decision itself). */
int cdcs_pss_store_decision_note(struct db *db, const char *id, const char *line);
/* The DM id a decision was made for: 1 found (dm_id filled), 0 none, -1 error. */
int cdcs_pss_store_decision_dm(struct db *db, const char *id, char *dm_id, size_t len);
/* What the agent reports (device_cdcs, source "agent"). */
int cdcs_pss_store_result(struct db *db, const char *dm_id, const char *decision,
                          const struct cdcs_pss_result *r);
/* What cdcs-iss reports (device_cdcs, source "cdcs-iss"); idempotent. */
int cdcs_pss_store_state(struct db *db, const struct cdcs_pss_state_body *b);
/* {"dm_id","cdcs":[...],"decisions":[the last 10]} or NULL on error. */
json_t *cdcs_pss_store_device(struct db *db, const char *dm_id);
/* Forget decisions made before `before`. The count, or -1. */
int cdcs_pss_store_purge(struct db *db, int64_t before);

#endif
