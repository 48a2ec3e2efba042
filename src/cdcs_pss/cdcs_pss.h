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
#include "campaign.h"
#include "policy.h"

#define CDCS_PSS_INTERVAL_DEFAULT 3600
#define CDCS_PSS_INTERVAL_MAX     (30 * 86400)
#define CDCS_PSS_URL_MAX          512
#define CDCS_PSS_ERRLEN           512
#define CDCS_PSS_DECISION_MAX     (4 + 32 + 1) /* "dec-" + 32 hex */
#define CDCS_PSS_ITEMS_MAX        16           /* installed, results */
#define CDCS_PSS_RULES_MAX        1000         /* all of them are read for every decision */
#define CDCS_PSS_ERROR_TEXT_MAX   256
#define CDCS_PSS_DEVICES_MAX      1000               /* rows of GET /v1/admin/devices */
#define CDCS_PSS_ACTOR            "service:cdcs-pss" /* what it does on its own, for audit */

/* The "cdcs_pss" config section. */
struct cdcs_pss_conf {
	char *device_ca;    /* the device CA certificate: who may be a device */
	char *dm_iss_url;   /* asked whether a DM id is active (step 2) */
	char *cdcs_mss_url; /* asked to prepare the chosen CDCSs (step 5) */
	int64_t interval_s; /* 0 (absent): CDCS_PSS_INTERVAL_DEFAULT */
};

struct cdcs_pss_pending;
struct cdcs_pss_lookup;

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
	TAILQ_HEAD(, cdcs_pss_lookup) lookups;  /* operator requests waiting for cdcs-mss */
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

/*
 * What a device gets now (choose.c): the account's levels and the rules decided over the
 * device's capability (policy.h), then its campaigns' overrides (campaign.h). The one path
 * authorize and explain share, so an explanation says what the device will get.
 */
struct cdcs_pss_choice {
	json_t *levels; /* the account's levels, sorted */
	const char **lv;
	struct policy_rule *rules;
	size_t n_rules;
	struct policy_decision dec;
	json_t *campaigns; /* the device's campaigns, oldest first */
	json_t *choices;   /* policy_decision_to_json() + "campaign", after the overrides */
	char *reason;      /* the decision's reason and the overrides', one per line */
};

/* Inside the caller's transaction if any. 0, or -1 (logged) with *out freed. */
int cdcs_pss_choose(struct db *db, const char *dm_id, const char *account,
                    const struct capability *cap, struct cdcs_pss_choice *out);
void cdcs_pss_choice_free(struct cdcs_pss_choice *c);

/* cdcs-mss's catalogue (catalogue.c): does a vendor/name exist? Asked before a rule or a
 * campaign names it. */
enum cdcs_pss_cat { CDCS_PSS_CAT_KNOWN, CDCS_PSS_CAT_UNKNOWN, CDCS_PSS_CAT_UNAVAILABLE };
/* Called once with the answer, unless the client has gone (nothing is done then). */
typedef void (*cdcs_pss_cat_fn)(struct daemon_ctx *d, struct httpd_req *req, enum cdcs_pss_cat v);
/* Ask; 0 (fn will be called), or -1 after replying 503. */
int cdcs_pss_catalogue_check(struct daemon_ctx *d, struct httpd_req *req, const char *vendor,
                             const char *name, cdcs_pss_cat_fn fn);
/* Replies 422 unknown_cdcs / 503 cdcs_mss_unavailable unless v is KNOWN: 1 known, else 0. */
int cdcs_pss_catalogue_known(struct httpd_req *req, enum cdcs_pss_cat v, const char *vendor,
                             const char *name);
/* fini: forget the lookups still waiting (httpc is already freed). */
void cdcs_pss_lookups_drop(struct cdcs_pss *s);

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
/* The DM id that is the path's tail, or NULL after replying 400. */
const char *cdcs_pss_path_dm_id(struct httpd_req *req);
void cdcs_pss_device_get(struct httpd_req *req, void *arg);
void cdcs_pss_device_list(struct httpd_req *req, void *arg);
void cdcs_pss_explain(struct httpd_req *req, void *arg);

/* Campaigns (campaigns.c): create, list, show, and advance|pause|resume|stop. */
extern const struct schema_field cdcs_pss_campaign_action_fields[];
void cdcs_pss_campaign_create(struct httpd_req *req, void *arg);
void cdcs_pss_campaign_list(struct httpd_req *req, void *arg);
void cdcs_pss_campaign_get(struct httpd_req *req, void *arg);
void cdcs_pss_campaign_action(struct httpd_req *req, void *arg);

/*
 * campaign_run.c: what happens to campaigns and their devices, with audit rows, inside the
 * caller's transaction. actor: "operator:<CN>" or CDCS_PSS_ACTOR. 0/-1 (logged).
 */
struct cdcs_pss_campaign {
	char name[POLICY_NAME_MAX + 1];
	enum campaign_status status;
	int stage; /* 1-based */
	struct campaign_stages stages;
	int64_t threshold;
	int64_t n_devices;
};

/* Fix the device set of a new campaign and admit stage 1: 1 created, 0 no device matches,
 * 2 too many devices, -1 error. *n set to the count. */
int cdcs_pss_campaign_start(struct db *db, const char *rid, const char *actor,
                            const struct campaign_spec *spec, const struct campaign_stages *st,
                            int64_t *n);
/* Admit the devices of stage c->stage + 1. */
int cdcs_pss_campaign_admit(struct db *db, const char *rid, const char *actor,
                            struct cdcs_pss_campaign *c);
/* status stopped with reason; every admitted device cancelled. */
int cdcs_pss_campaign_stop(struct db *db, const char *rid, const char *actor,
                           struct cdcs_pss_campaign *c, const char *reason);
/* A device's CDCS vendor/name changed (ev PERSONALIZED or FAILED): every campaign of the
 * device with that `to` moves its status, and stops itself over its failure threshold. */
int cdcs_pss_campaign_event(struct db *db, const char *rid, const char *actor, const char *dm_id,
                            const char *vendor, const char *name, enum campaign_event ev,
                            const char *error);

/* store.c helpers, for the other store files. */
typedef json_t *(*cdcs_pss_row_fn)(sqlite3_stmt *st); /* one row as JSON, NULL if no memory */
int cdcs_pss_bind_text(sqlite3_stmt *st, int i, const char *v); /* v NULL binds NULL */
/* Step a statement that returns no rows; reset it. SQLITE_DONE, or the error code (logged
 * unless it is a constraint, which callers turn into an answer). */
int cdcs_pss_step(struct db *db, sqlite3_stmt *st, const char *what);
json_t *cdcs_pss_col_str(sqlite3_stmt *st, int i);  /* text or null */
json_t *cdcs_pss_col_json(sqlite3_stmt *st, int i); /* stored JSON, or null */
/* Every row of the bound statement st as an element of a new array; st reset. NULL on error
 * (logged as "cannot read what"). */
json_t *cdcs_pss_rows_step(struct db *db, sqlite3_stmt *st, cdcs_pss_row_fn row, const char *what);
/* Every row of sql as an element of a new array, with key bound to ?1 when given and limit
 * to ?2 when positive; NULL on error (logged as "cannot read what"). */
json_t *cdcs_pss_rows(struct db *db, const char *sql, const char *key, int limit,
                      cdcs_pss_row_fn row, const char *what);
/* The same with texts[0..n) bound to ?1..?n (NULL binds NULL). */
json_t *cdcs_pss_rows_texts(struct db *db, const char *sql, const char *const *texts, int n,
                            cdcs_pss_row_fn row, const char *what);

/*
 * store.c. Functions that return an int give 0 (or the count / 1 found) and -1 on a
 * database error (logged); none opens a transaction. Functions that return JSON give
 * NULL on error and JSON null for "no such row" where they say "or null".
 */
/* The account's levels, sorted, as a new JSON array of strings; NULL on error. */
json_t *cdcs_pss_store_levels(struct db *db, const char *account);
/* Replace the account's levels with levels. */
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
/* {"dm_id","cdcs":[...],"decisions":[the last 10],"campaigns":[...]} or NULL on error. */
json_t *cdcs_pss_store_device(struct db *db, const char *dm_id);
/* What the device was sent for decision id: {"install":[...],"remove":[...]} as text. */
int cdcs_pss_store_decision_delivered(struct db *db, const char *id, const char *json);
/* {"id","created","result","delivered"} of the device's last decision, or null. */
json_t *cdcs_pss_store_last_decision(struct db *db, const char *dm_id);
/* The device table: seen at authorize (capability as JSON text). */
int cdcs_pss_store_device_seen(struct db *db, const char *dm_id, const char *account,
                               const char *capability);
/* {"dm_id","account","capability","platform","last_seen"}, or null. */
json_t *cdcs_pss_store_device_row(struct db *db, const char *dm_id);
/* [{"dm_id","account","platform","last_seen","cdcs":[{vendor,name,variant,version_number,
 * state}]}] by dm_id, at most limit; account, vendor/name NULL: any. */
json_t *cdcs_pss_store_devices(struct db *db, const char *account, const char *vendor,
                               const char *name, int limit);
/* {"state","version_number","error"} of a device's slot, or null. */
json_t *cdcs_pss_store_slot(struct db *db, const char *dm_id, const char *vendor, const char *name);
/* A rule as stored, or null. */
json_t *cdcs_pss_store_rule_json(struct db *db, const char *name);

/* campaign_store.c: the campaign tables. */
/* 1 found (*c filled), 0 none, -1 error. */
int cdcs_pss_store_campaign_get(struct db *db, const char *name, struct cdcs_pss_campaign *c);
int cdcs_pss_store_campaign_counts(struct db *db, const char *name, struct campaign_counts *out);
/* [{"dm_id","account","capability"}] of the devices that have vendor/name personalized, not
 * to_vendor/to_name, and no campaign that applies (or may) to them. */
json_t *cdcs_pss_store_campaign_candidates(struct db *db, const char *vendor, const char *name,
                                           const char *to_vendor, const char *to_name);
/* 0 added, 1 the name exists, -1 error. */
int cdcs_pss_store_campaign_add(struct db *db, const struct campaign_spec *spec, const char *stages,
                                const char *filter, int64_t n_devices);
int cdcs_pss_store_campaign_member_add(struct db *db, const char *campaign, const char *dm_id,
                                       const char *account, int64_t ord, enum campaign_dev s);
/* The DM ids (strings) of the campaign's devices in status s with ord < below (below < 0:
 * any), in admission order. */
json_t *cdcs_pss_store_campaign_members(struct db *db, const char *campaign, enum campaign_dev s,
                                        int64_t below);
int cdcs_pss_store_campaign_member_set(struct db *db, const char *campaign, const char *dm_id,
                                       enum campaign_dev s, const char *error);
int cdcs_pss_store_campaign_set(struct db *db, const char *name, enum campaign_status s, int stage,
                                const char *stop_reason);
/* The campaign as GET shows it (with its devices if devices), or null. */
json_t *cdcs_pss_store_campaign_json(struct db *db, const char *name, int devices);
/* Every campaign, oldest first, without devices. */
json_t *cdcs_pss_store_campaigns_json(struct db *db);
/* [{"name","status","device_status","error","updated","from":{vendor,name},"to":{vendor,
 * name,variant,min_version}}] of the device's campaigns, oldest first; to_vendor/to_name
 * NULL: all, else those whose `to` it is. */
json_t *cdcs_pss_store_device_campaigns(struct db *db, const char *dm_id, const char *to_vendor,
                                        const char *to_name);
/* Forget decisions made before `before`. The count, or -1. */
int cdcs_pss_store_purge(struct db *db, int64_t before);

#endif
