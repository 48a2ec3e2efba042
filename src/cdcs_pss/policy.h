/*
 * cdcs-pss policy: the rules an operator writes and the decision they give for one device
 * (Figure 5 step 4). Pure functions: no database, no network, so that every outcome can be
 * tested on its own (tests/unit/test_cdcs_pss_policy.c).
 */
#ifndef CDCS_PSS_POLICY_H
#define CDCS_PSS_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "opendm/capability.h"
#include "opendm/schema.h"

#define POLICY_NAME_MAX     64
#define POLICY_LEVEL_MAX    32 /* an entitlement level: 1-32 of [a-z0-9_-] */
#define POLICY_LEVELS_MAX   32 /* levels per account, grants per rule */
#define POLICY_ID_MAX       64 /* vendor id, CDCS name */
#define POLICY_VARIANT_MAX  16
#define POLICY_PRIORITY_MAX 1000000
#define POLICY_WHEN_MAX     8 /* values in a when.tee / when.max_resolution list */
#define POLICY_ACCOUNT_MAX  64

/* The optional conditions of a rule; absent (NULL) means any value. */
struct policy_when {
	json_t *secure_video_path; /* a JSON boolean */
	struct schema_strlist tee;
	char *platform;
	struct schema_strlist max_resolution;
};

struct policy_rule {
	char *name;
	int64_t priority;
	char *entitlement;
	struct policy_when when;
	char *vendor;
	char *cdcs;
	char *variant;
	int64_t min_version;
	struct schema_strlist grants;
};

/* Decodes a rule (the body of POST /v1/admin/policy/rules and each stored rule), and a
 * rule's `when` on its own (a campaign's filter uses the same conditions). */
extern const struct schema_field policy_rule_fields[];
extern const struct schema_field policy_when_fields[];

/* The checks of policy_rule_check() for a `when` found at key path where ("when"). 0/-1. */
int policy_when_check(const struct policy_when *w, const char *where, char *err, size_t errlen);
/* 1 if every condition of w holds for cap (no condition: 1). */
int policy_when_holds(const struct policy_when *w, const struct capability *cap);
/* w in canonical form (absent conditions left out), or NULL. */
json_t *policy_when_to_json(const struct policy_when *w);

/* What schema_decode() cannot say: alphabets, enumerations, duplicates. 0, or -1 with
 * "key 'when.tee[1]': ..." in err. */
int policy_rule_check(const struct policy_rule *r, char *err, size_t errlen);
/* schema_decode() + policy_rule_check() of j into a zeroed *r. 0/-1 (+ err); free r either way. */
int policy_rule_parse(const json_t *j, struct policy_rule *r, char *err, size_t errlen);
void policy_rule_free(struct policy_rule *r);
/* The rule in its canonical form (absent conditions left out), or NULL. */
json_t *policy_rule_to_json(const struct policy_rule *r);

/* 1 if s is a rule name (1-64 of [A-Za-z0-9._-]) / an entitlement level / an account name
 * (as dm-mss spells them) / a vendor id or CDCS name (1-64 of [a-z0-9._-], not first '.') /
 * a variant (1-16 of [a-z0-9_-]). */
int policy_name_ok(const char *s);
int policy_level_ok(const char *s);
int policy_account_ok(const char *s);
int policy_id_ok(const char *s);
int policy_variant_ok(const char *s);

/* The CDCS a rule chose for one slot (vendor, cdcs). */
struct policy_choice {
	const struct policy_rule *rule; /* borrowed from the caller's rules */
	const char **rights;            /* grants ∩ levels, sorted; borrowed from levels */
	size_t n_rights;
	char *reason;
};

struct policy_decision {
	struct policy_choice *v; /* one per slot, in rule order */
	size_t n;
	char *reason; /* the choices' reasons one per line, or "no rule matches (...)" */
};

/*
 * Rules are taken in (priority, name) order; a rule matches when levels holds its
 * entitlement and every condition of its `when` holds for cap; the first matching rule of
 * each slot wins. levels must outlive *out. 0, or -1 (out of memory) with *out empty.
 */
int policy_decide(const struct policy_rule *rules, size_t n_rules, const struct capability *cap,
                  const char *const *levels, size_t n_levels, struct policy_decision *out);
void policy_decision_free(struct policy_decision *d);
/* [{"vendor","name","variant","min_version","rule","rights","reason"}...], or NULL. */
json_t *policy_decision_to_json(const struct policy_decision *d);

/* Why one rule was chosen or not: "entitlement 'x' missing", "when.tee: device has none,
 * rule wants trustzone,sgx" (every unmet condition, "; "-separated), "slot v/c already
 * taken by rule 'r'" or "chosen: rights a,b". */
struct policy_rule_why {
	const struct policy_rule *rule; /* borrowed */
	int matched;                    /* entitlement held and `when` met */
	int chosen;
	char *why;
};

struct policy_explanation {
	struct policy_rule_why *v; /* every rule, in (priority, name) order */
	size_t n;
};

/* Explain d, which policy_decide() made from the same rules, cap and levels. 0/-1. */
int policy_explain(const struct policy_rule *rules, size_t n_rules, const struct capability *cap,
                   const char *const *levels, size_t n_levels, const struct policy_decision *d,
                   struct policy_explanation *out);
void policy_explanation_free(struct policy_explanation *e);
/* [{"name","priority","vendor","cdcs","variant","matched","chosen","why"}...], or NULL. */
json_t *policy_explanation_to_json(const struct policy_explanation *e);

#endif
