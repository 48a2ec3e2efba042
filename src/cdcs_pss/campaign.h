/*
 * cdcs-pss campaign: moving a fixed set of devices from one CDCS (`from`) to another (`to`)
 * in stages, and what that changes in a device's decision. Pure functions: no database, no
 * network (tests/unit/test_cdcs_pss_campaign.c); campaigns.c stores and serves them.
 */
#ifndef CDCS_PSS_CAMPAIGN_H
#define CDCS_PSS_CAMPAIGN_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "opendm/capability.h"
#include "opendm/schema.h"
#include "policy.h"

#define CAMPAIGN_STAGES_MAX   10
#define CAMPAIGN_ACCOUNTS_MAX 100
/* A campaign's device list is answered whole: this bounds that answer (~600 KiB). */
#define CAMPAIGN_DEVICES_MAX 5000

/* archived: ended for good, its devices handed back to the rules (it overrides nothing). */
enum campaign_status { CAMPAIGN_RUNNING, CAMPAIGN_PAUSED, CAMPAIGN_STOPPED, CAMPAIGN_ARCHIVED };

enum campaign_dev {
	CAMPAIGN_DEV_PENDING,   /* not admitted yet */
	CAMPAIGN_DEV_ADMITTED,  /* offered `to` */
	CAMPAIGN_DEV_SWITCHED,  /* `to` recorded personalized */
	CAMPAIGN_DEV_FAILED,    /* the device reported `to` failed */
	CAMPAIGN_DEV_CANCELLED, /* was admitted when the campaign stopped */
	CAMPAIGN_DEV_N
};

/* What happens to a device of a campaign. */
enum campaign_event {
	CAMPAIGN_EV_ADMIT,
	CAMPAIGN_EV_PERSONALIZED, /* `to` personalized (step 20 or the agent's report) */
	CAMPAIGN_EV_FAILED,       /* the agent reported `to` failed */
	CAMPAIGN_EV_STOP,
};

const char *campaign_status_name(enum campaign_status s);
const char *campaign_dev_name(enum campaign_dev s);
/* 0 and *out, or -1 for an unknown name. */
int campaign_status_parse(const char *name, enum campaign_status *out);
int campaign_dev_parse(const char *name, enum campaign_dev *out);

/* The body of POST /v1/admin/campaigns. */
struct campaign_from {
	char *vendor;
	char *name;
};

struct campaign_to {
	char *vendor;
	char *name;
	char *variant;
	int64_t min_version; /* 0 (absent): 1 */
};

struct campaign_filter {
	struct schema_strlist accounts; /* absent: any account */
	struct policy_when when;
};

struct campaign_spec {
	char *name;
	struct campaign_from from;
	struct campaign_to to;
	struct campaign_filter filter;
	json_t *stages;
	int64_t failure_threshold;
};

extern const struct schema_field campaign_spec_fields[];

struct campaign_stages {
	int v[CAMPAIGN_STAGES_MAX]; /* percentages, strictly increasing, 1..100 */
	size_t n;
};

/* What schema_decode() cannot say: names, stages, the filter, from != to. 0, or -1 with a
 * message naming the key in err. */
int campaign_spec_check(const struct campaign_spec *c, struct campaign_stages *st, char *err,
                        size_t errlen);
/* stages as a JSON array of integers (from the body or the store) into st. 0/-1 + err. */
int campaign_stages_parse(const json_t *stages, struct campaign_stages *st, char *err,
                          size_t errlen);
/* The filter in canonical form, or JSON null when it holds no condition; NULL on error. */
json_t *campaign_filter_to_json(const struct campaign_filter *f);
/* 1 if a device of account with capability cap passes the filter (f NULL: every device). */
int campaign_filter_matches(const struct campaign_filter *f, const char *account,
                            const struct capability *cap);

/* Admission order: sha256(name + "/" + dm_id), lower-case hex. 0/-1. */
int campaign_order_key(const char *name, const char *dm_id, char hex[65]);

struct campaign_member {
	char key[65];
	const char *dm_id; /* borrowed */
	const char *account;
};

/* Sort members by key (then dm_id, should two keys ever be equal). */
void campaign_order(struct campaign_member *m, size_t n);
/* How many of n devices a stage of pct percent admits in all: ceil(n * pct / 100). */
int64_t campaign_admit_target(int64_t n, int pct);
/* The stage (1-based) that admits the device at position ord (0-based) of n, or 0 if none. */
int campaign_stage_of(int64_t ord, int64_t n, const struct campaign_stages *st);

struct campaign_counts {
	int64_t n[CAMPAIGN_DEV_N];
};

/* failed * 100 / (admitted + switched + failed), 0 if that is none. */
int campaign_failure_rate(const struct campaign_counts *c);
/* 1 when the failure rate is over threshold percent: the campaign stops itself. */
int campaign_over_threshold(const struct campaign_counts *c, int64_t threshold);
/* The last stage is reached and nothing is left admitted. */
int campaign_complete(int stage, const struct campaign_stages *st, const struct campaign_counts *c);

/* An operator's action ("advance", "pause", "resume", "stop", "archive") on a campaign in status
 * cur at stage (1-based): NULL and *next, or the error code to answer with (409). */
const char *campaign_action(enum campaign_status cur, int stage, const struct campaign_stages *st,
                            const char *action, enum campaign_status *next);
/* A device's next status on ev: 1 and *next when it changes, else 0. */
int campaign_dev_next(enum campaign_dev cur, enum campaign_event ev, enum campaign_dev *next);
/* 1 if a device in status dev of a campaign in status s gets `to` instead of `from`. */
int campaign_applies(enum campaign_status s, enum campaign_dev dev);

/* A campaign as one device sees it (borrowed strings). */
struct campaign_view {
	const char *name;
	enum campaign_status status;
	enum campaign_dev dev;
	const char *from_vendor, *from_name;
	const char *to_vendor, *to_name, *to_variant;
	int64_t to_min_version;
};

/* From {"name","status","device_status","from":{vendor,name},"to":{vendor,name,variant,
 * min_version}} (borrowed from o). 0/-1. */
int campaign_view_parse(const json_t *o, struct campaign_view *v);

/*
 * The campaigns' say in a decision: choices (policy_decision_to_json()) is changed in place.
 * Each choice gets "campaign": null, or the name of the campaign that turned its `from` into
 * its `to` (vendor, name, variant, min_version from the campaign; rule and rights kept);
 * v is oldest first and the oldest applying campaign wins. A choice the rules made for a
 * campaign's `to` slot gives way to the campaign's. *notes: one line per change (new string,
 * "" when none). 0/-1.
 */
int campaign_override(json_t *choices, const struct campaign_view *v, size_t n, char **notes);

#endif
