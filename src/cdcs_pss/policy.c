/*
 * cdcs-pss policy: rule checking and the decision of Figure 5 step 4 (policy.h).
 *
 * A slot is a (vendor, cdcs) pair: a device holds at most one variant of a given CDCS, so
 * the operator orders the rules of a slot by priority and the first one that applies wins
 * (e.g. "hw" for devices with a secure video path before "sw" for the rest).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define POLICY_VALUE_MAX 32 /* capability values are at most this long (capability.c) */

const struct schema_field policy_when_fields[] = {
    {"secure_video_path", SCHEMA_JSON, offsetof(struct policy_when, secure_video_path), 0, 0, 0, 0,
     NULL},
    {"tee", SCHEMA_STRLIST, offsetof(struct policy_when, tee), 0, 1, POLICY_VALUE_MAX,
     POLICY_WHEN_MAX, NULL},
    {"platform", SCHEMA_STRING, offsetof(struct policy_when, platform), 0, 1, POLICY_VALUE_MAX, 0,
     NULL},
    {"max_resolution", SCHEMA_STRLIST, offsetof(struct policy_when, max_resolution), 0, 1,
     POLICY_VALUE_MAX, POLICY_WHEN_MAX, NULL},
    SCHEMA_END,
};

const struct schema_field policy_rule_fields[] = {
    {"name", SCHEMA_STRING, offsetof(struct policy_rule, name), 1, 1, POLICY_NAME_MAX, 0, NULL},
    {"priority", SCHEMA_INT, offsetof(struct policy_rule, priority), 1, 0, POLICY_PRIORITY_MAX, 0,
     NULL},
    {"entitlement", SCHEMA_STRING, offsetof(struct policy_rule, entitlement), 1, 1,
     POLICY_LEVEL_MAX, 0, NULL},
    {"when", SCHEMA_OBJECT, offsetof(struct policy_rule, when), 1, 0, 0, 0, policy_when_fields},
    {"vendor", SCHEMA_STRING, offsetof(struct policy_rule, vendor), 1, 1, POLICY_ID_MAX, 0, NULL},
    {"cdcs", SCHEMA_STRING, offsetof(struct policy_rule, cdcs), 1, 1, POLICY_ID_MAX, 0, NULL},
    {"variant", SCHEMA_STRING, offsetof(struct policy_rule, variant), 1, 1, POLICY_VARIANT_MAX, 0,
     NULL},
    {"min_version", SCHEMA_INT, offsetof(struct policy_rule, min_version), 1, 1, INT32_MAX, 0,
     NULL},
    {"grants", SCHEMA_STRLIST, offsetof(struct policy_rule, grants), 1, 1, POLICY_LEVEL_MAX,
     POLICY_LEVELS_MAX, NULL},
    SCHEMA_END,
};

/* 1 if s is made only of a-z 0-9 and the characters of extra (upper case too if upper). */
static int policy_chars_ok(const char *s, const char *extra, int upper)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      (upper && *s >= 'A' && *s <= 'Z') || strchr(extra, *s) != NULL))
			return 0;
	return 1;
}

int policy_name_ok(const char *s)
{
	return s != NULL && s[0] != '\0' && strlen(s) <= POLICY_NAME_MAX &&
	       policy_chars_ok(s, "._-", 1);
}

int policy_level_ok(const char *s)
{
	return s != NULL && s[0] != '\0' && strlen(s) <= POLICY_LEVEL_MAX &&
	       policy_chars_ok(s, "_-", 0);
}

int policy_account_ok(const char *s)
{
	return s != NULL && s[0] != '\0' && strlen(s) <= POLICY_ACCOUNT_MAX &&
	       policy_chars_ok(s, "._-", 1);
}

/* Vendor ids and CDCS names become catalogue path components: no "." or ".." either. */
int policy_id_ok(const char *s)
{
	return s != NULL && s[0] != '\0' && s[0] != '.' && strlen(s) <= POLICY_ID_MAX &&
	       policy_chars_ok(s, "._-", 0);
}

int policy_variant_ok(const char *s)
{
	return s != NULL && s[0] != '\0' && strlen(s) <= POLICY_VARIANT_MAX &&
	       policy_chars_ok(s, "_-", 0);
}

/*
 * A when.* value is checked by capability_check() itself, so that the vocabulary of a
 * capability stays in capability.c: a misspelt "trustzon" would otherwise never match.
 */
static int policy_cap_value_ok(const char *key, const char *v)
{
	char platform[] = "any", tee[] = "none", hdcp[] = "none", res[] = "sd";
	char val[POLICY_VALUE_MAX + 1], err[128];
	struct capability c = {
	    .platform = platform, .tee = tee, .hdcp = hdcp, .max_resolution = res};

	snprintf(val, sizeof(val), "%s", v);
	if (strcmp(key, "platform") == 0)
		c.platform = val;
	else if (strcmp(key, "tee") == 0)
		c.tee = val;
	else
		c.max_resolution = val;
	return capability_check(&c, "when", err, sizeof(err)) == 0;
}

/* Every item of a present list is a valid capability value, none twice. */
static int policy_when_list_ok(const struct schema_strlist *l, const char *where, const char *key,
                               char *err, size_t errlen)
{
	size_t i, j;

	if (l->v == NULL)
		return 0;
	if (l->n == 0) {
		snprintf(err, errlen, "key '%s.%s': an empty list matches nothing; leave it out",
		         where, key);
		return -1;
	}
	for (i = 0; i < l->n; i++) {
		if (!policy_cap_value_ok(key, l->v[i])) {
			snprintf(err, errlen, "key '%s.%s[%zu]': not a %s value of a capability",
			         where, key, i, key);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(l->v[i], l->v[j]) == 0) {
				snprintf(err, errlen, "key '%s.%s[%zu]': '%s' is listed twice",
				         where, key, i, l->v[i]);
				return -1;
			}
	}
	return 0;
}

int policy_when_check(const struct policy_when *w, const char *where, char *err, size_t errlen)
{
	if (w->secure_video_path != NULL && !json_is_boolean(w->secure_video_path)) {
		snprintf(err, errlen, "key '%s.secure_video_path': expected true or false", where);
		return -1;
	}
	if (w->platform != NULL && !policy_cap_value_ok("platform", w->platform)) {
		snprintf(err, errlen, "key '%s.platform': only a-z, 0-9, '-' and '_' allowed",
		         where);
		return -1;
	}
	if (policy_when_list_ok(&w->tee, where, "tee", err, errlen) == -1 ||
	    policy_when_list_ok(&w->max_resolution, where, "max_resolution", err, errlen) == -1)
		return -1;
	return 0;
}

int policy_rule_check(const struct policy_rule *r, char *err, size_t errlen)
{
	size_t i, j;

	if (!policy_name_ok(r->name)) {
		snprintf(err, errlen, "key 'name': only A-Z a-z 0-9 . _ - are allowed");
		return -1;
	}
	if (!policy_level_ok(r->entitlement)) {
		snprintf(err, errlen, "key 'entitlement': 1-32 characters of a-z 0-9 _ -");
		return -1;
	}
	if (!policy_id_ok(r->vendor) || !policy_id_ok(r->cdcs)) {
		snprintf(err, errlen, "key '%s': only a-z 0-9 . _ - are allowed, not first '.'",
		         policy_id_ok(r->vendor) ? "cdcs" : "vendor");
		return -1;
	}
	if (!policy_variant_ok(r->variant)) {
		snprintf(err, errlen, "key 'variant': 1-16 characters of a-z 0-9 _ -");
		return -1;
	}
	if (policy_when_check(&r->when, "when", err, errlen) == -1)
		return -1;
	for (i = 0; i < r->grants.n; i++) {
		if (!policy_level_ok(r->grants.v[i])) {
			snprintf(err, errlen, "key 'grants[%zu]': 1-32 characters of a-z 0-9 _ -",
			         i);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(r->grants.v[i], r->grants.v[j]) == 0) {
				snprintf(err, errlen, "key 'grants[%zu]': '%s' is listed twice", i,
				         r->grants.v[i]);
				return -1;
			}
	}
	return 0;
}

int policy_rule_parse(const json_t *j, struct policy_rule *r, char *err, size_t errlen)
{
	if (!json_is_object(j)) {
		snprintf(err, errlen, "a rule is a JSON object");
		return -1;
	}
	if (schema_decode(j, policy_rule_fields, r, "rule", err, errlen) == -1)
		return -1;
	return policy_rule_check(r, err, errlen);
}

void policy_rule_free(struct policy_rule *r)
{
	schema_free(policy_rule_fields, r);
}

static json_t *policy_strlist_json(const struct schema_strlist *l)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a != NULL && i < l->n; i++)
		if (json_array_append_new(a, json_string(l->v[i])) == -1) {
			json_decref(a);
			a = NULL;
		}
	return a;
}

json_t *policy_when_to_json(const struct policy_when *w)
{
	json_t *when = json_object();

	if (when == NULL ||
	    (w->secure_video_path != NULL &&
	     json_object_set(when, "secure_video_path", w->secure_video_path) == -1) ||
	    (w->tee.v != NULL &&
	     json_object_set_new(when, "tee", policy_strlist_json(&w->tee)) == -1) ||
	    (w->platform != NULL &&
	     json_object_set_new(when, "platform", json_string(w->platform)) == -1) ||
	    (w->max_resolution.v != NULL &&
	     json_object_set_new(when, "max_resolution", policy_strlist_json(&w->max_resolution)) ==
	         -1)) {
		json_decref(when);
		return NULL;
	}
	return when;
}

json_t *policy_rule_to_json(const struct policy_rule *r)
{
	json_t *when, *out;

	if ((when = policy_when_to_json(&r->when)) == NULL)
		return NULL;
	out =
	    json_pack("{s:s, s:I, s:s, s:o, s:s, s:s, s:s, s:I, s:o*}", "name", r->name, "priority",
	              (json_int_t)r->priority, "entitlement", r->entitlement, "when", when,
	              "vendor", r->vendor, "cdcs", r->cdcs, "variant", r->variant, "min_version",
	              (json_int_t)r->min_version, "grants", policy_strlist_json(&r->grants));
	/* json_pack steals "o" values even on failure, but not when an "o*" is NULL: the
	 * resulting object simply lacks the key, which we refuse. */
	if (out != NULL && json_object_get(out, "grants") == NULL) {
		json_decref(out);
		out = NULL;
	}
	return out;
}

/* ---- decision ---------------------------------------------------------------------- */

static int policy_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int policy_cmp_rule(const void *a, const void *b)
{
	const struct policy_rule *x = *(const struct policy_rule *const *)a;
	const struct policy_rule *y = *(const struct policy_rule *const *)b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int policy_has(const char *const *v, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

static int policy_in_list(const struct schema_strlist *l, const char *s)
{
	return l->v == NULL || policy_has((const char *const *)l->v, l->n, s);
}

int policy_when_holds(const struct policy_when *w, const struct capability *cap)
{
	if (w->secure_video_path != NULL &&
	    json_is_true(w->secure_video_path) != (cap->secure_video_path != 0))
		return 0;
	if (w->platform != NULL && strcmp(w->platform, cap->platform) != 0)
		return 0;
	return policy_in_list(&w->tee, cap->tee) &&
	       policy_in_list(&w->max_resolution, cap->max_resolution);
}

/* "a,b,c", or none when n is 0. */
static void policy_print_list(FILE *f, const char *const *v, size_t n)
{
	size_t i;

	if (n == 0)
		fputs("none", f);
	for (i = 0; i < n; i++)
		fprintf(f, "%s%s", i > 0 ? "," : "", v[i]);
}

/* Why r chose its CDCS: the entitlement, each condition as the device met it, the rights. */
static char *policy_reason(const struct policy_rule *r, const struct capability *cap,
                           const char *const *rights, size_t n_rights)
{
	const struct policy_when *w = &r->when;
	char *text = NULL;
	size_t len;
	FILE *f;

	if ((f = open_memstream(&text, &len)) == NULL)
		return NULL;
	fprintf(f, "rule '%s' (priority %lld): entitlement %s", r->name, (long long)r->priority,
	        r->entitlement);
	if (w->secure_video_path != NULL)
		fprintf(f, ", secure_video_path=%s", cap->secure_video_path ? "true" : "false");
	if (w->tee.v != NULL)
		fprintf(f, ", tee=%s", cap->tee);
	if (w->platform != NULL)
		fprintf(f, ", platform=%s", cap->platform);
	if (w->max_resolution.v != NULL)
		fprintf(f, ", max_resolution=%s", cap->max_resolution);
	fputs("; rights ", f);
	policy_print_list(f, rights, n_rights);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* The choice already made for r's slot (by an earlier, higher priority rule), or NULL. */
static const struct policy_choice *policy_slot_choice(const struct policy_decision *d,
                                                      const struct policy_rule *r)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strcmp(d->v[i].rule->vendor, r->vendor) == 0 &&
		    strcmp(d->v[i].rule->cdcs, r->cdcs) == 0)
			return &d->v[i];
	return NULL;
}

static int policy_choose(struct policy_decision *d, const struct policy_rule *r,
                         const struct capability *cap, const char *const *levels, size_t n_levels)
{
	struct policy_choice *c = &d->v[d->n];
	size_t i;

	memset(c, 0, sizeof(*c));
	c->rule = r;
	if ((c->rights = calloc(r->grants.n > 0 ? r->grants.n : 1, sizeof(*c->rights))) == NULL)
		return -1;
	d->n++;
	/* Borrowed from levels, not from the rule: what the account holds is what is granted. */
	for (i = 0; i < n_levels; i++)
		if (policy_in_list(&r->grants, levels[i]) &&
		    !policy_has(c->rights, c->n_rights, levels[i]))
			c->rights[c->n_rights++] = levels[i];
	qsort(c->rights, c->n_rights, sizeof(*c->rights), policy_cmp_str);
	c->reason = policy_reason(r, cap, c->rights, c->n_rights);
	return c->reason != NULL ? 0 : -1;
}

/* The decision's summary: every choice's reason on its own line, or why nothing applied. */
static char *policy_summary(const struct policy_decision *d, const char *const *levels,
                            size_t n_levels)
{
	const char **sorted = NULL;
	char *text = NULL;
	size_t i, len;
	FILE *f;

	if ((f = open_memstream(&text, &len)) == NULL)
		return NULL;
	for (i = 0; i < d->n; i++)
		fprintf(f, "%s%s/%s: %s", i > 0 ? "\n" : "", d->v[i].rule->vendor,
		        d->v[i].rule->cdcs, d->v[i].reason);
	if (d->n == 0 && (sorted = calloc(n_levels + 1, sizeof(*sorted))) != NULL) {
		if (n_levels > 0)
			memcpy(sorted, levels, n_levels * sizeof(*sorted));
		qsort(sorted, n_levels, sizeof(*sorted), policy_cmp_str);
		fputs("no rule matches (entitlements: ", f);
		policy_print_list(f, sorted, n_levels);
		fputs(")", f);
	}
	if (fclose(f) != 0 || (d->n == 0 && sorted == NULL)) {
		free(text);
		text = NULL;
	}
	free(sorted);
	return text;
}

/* The rules in the order they are taken: (priority, name). A new array, or NULL. */
static const struct policy_rule **policy_order(const struct policy_rule *rules, size_t n_rules)
{
	const struct policy_rule **order;
	size_t i;

	if ((order = calloc(n_rules + 1, sizeof(*order))) == NULL)
		return NULL;
	for (i = 0; i < n_rules; i++)
		order[i] = &rules[i];
	qsort(order, n_rules, sizeof(*order), policy_cmp_rule);
	return order;
}

int policy_decide(const struct policy_rule *rules, size_t n_rules, const struct capability *cap,
                  const char *const *levels, size_t n_levels, struct policy_decision *out)
{
	const struct policy_rule **order;
	const struct policy_rule *r;
	size_t i;

	memset(out, 0, sizeof(*out));
	if ((order = policy_order(rules, n_rules)) == NULL ||
	    (out->v = calloc(n_rules + 1, sizeof(*out->v))) == NULL)
		goto fail;
	for (i = 0; i < n_rules; i++) {
		r = order[i];
		if (!policy_has(levels, n_levels, r->entitlement) ||
		    !policy_when_holds(&r->when, cap) || policy_slot_choice(out, r) != NULL)
			continue;
		if (policy_choose(out, r, cap, levels, n_levels) == -1)
			goto fail;
	}
	if ((out->reason = policy_summary(out, levels, n_levels)) == NULL)
		goto fail;
	free(order);
	return 0;
fail:
	free(order);
	policy_decision_free(out);
	return -1;
}

void policy_decision_free(struct policy_decision *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		free(d->v[i].rights);
		free(d->v[i].reason);
	}
	free(d->v);
	free(d->reason);
	memset(d, 0, sizeof(*d));
}

json_t *policy_decision_to_json(const struct policy_decision *d)
{
	const struct policy_choice *c;
	json_t *out = json_array(), *rights;
	size_t i, j;

	for (i = 0; out != NULL && i < d->n; i++) {
		c = &d->v[i];
		rights = json_array();
		for (j = 0; rights != NULL && j < c->n_rights; j++)
			if (json_array_append_new(rights, json_string(c->rights[j])) == -1) {
				json_decref(rights);
				rights = NULL;
			}
		if (rights == NULL ||
		    json_array_append_new(
		        out,
		        json_pack("{s:s, s:s, s:s, s:I, s:s, s:o, s:s}", "vendor", c->rule->vendor,
		                  "name", c->rule->cdcs, "variant", c->rule->variant, "min_version",
		                  (json_int_t)c->rule->min_version, "rule", c->rule->name, "rights",
		                  rights, "reason", c->reason)) == -1) {
			json_decref(out);
			out = NULL;
		}
	}
	return out;
}

/* ---- explanation ------------------------------------------------------------------- */

/* Each condition of w that cap does not meet, onto f after the n reasons already there;
 * the new count. */
static int policy_when_unmet(FILE *f, const struct policy_when *w, const struct capability *cap,
                             int n)
{
	if (w->secure_video_path != NULL &&
	    json_is_true(w->secure_video_path) != (cap->secure_video_path != 0))
		fprintf(f, "%swhen.secure_video_path: device has %s, rule wants %s",
		        n++ > 0 ? "; " : "", cap->secure_video_path ? "true" : "false",
		        json_is_true(w->secure_video_path) ? "true" : "false");
	if (!policy_in_list(&w->tee, cap->tee)) {
		fprintf(f, "%swhen.tee: device has %s, rule wants ", n++ > 0 ? "; " : "", cap->tee);
		policy_print_list(f, (const char *const *)w->tee.v, w->tee.n);
	}
	if (w->platform != NULL && strcmp(w->platform, cap->platform) != 0)
		fprintf(f, "%swhen.platform: device has %s, rule wants %s", n++ > 0 ? "; " : "",
		        cap->platform, w->platform);
	if (!policy_in_list(&w->max_resolution, cap->max_resolution)) {
		fprintf(f, "%swhen.max_resolution: device has %s, rule wants ", n++ > 0 ? "; " : "",
		        cap->max_resolution);
		policy_print_list(f, (const char *const *)w->max_resolution.v, w->max_resolution.n);
	}
	return n;
}

/* Why r was or was not chosen, into e. 0/-1. */
static int policy_why(struct policy_rule_why *e, const struct policy_rule *r,
                      const struct capability *cap, const char *const *levels, size_t n_levels,
                      const struct policy_decision *d)
{
	const struct policy_choice *c;
	size_t len;
	FILE *f;
	int n = 0;

	e->rule = r;
	if ((f = open_memstream(&e->why, &len)) == NULL)
		return -1;
	if (!policy_has(levels, n_levels, r->entitlement)) {
		fprintf(f, "entitlement '%s' missing", r->entitlement);
		n++;
	}
	n = policy_when_unmet(f, &r->when, cap, n);
	e->matched = n == 0;
	if (e->matched) {
		c = policy_slot_choice(d, r);
		if (c != NULL && c->rule == r) {
			e->chosen = 1;
			fputs("chosen: rights ", f);
			policy_print_list(f, c->rights, c->n_rights);
		} else if (c != NULL)
			fprintf(f, "slot %s/%s already taken by rule '%s'", r->vendor, r->cdcs,
			        c->rule->name);
		else
			/* d was made from other inputs than ours: say so rather than guess. */
			fputs("matched, but the decision has nothing for its slot", f);
	}
	if (fclose(f) != 0) {
		free(e->why);
		e->why = NULL;
		return -1;
	}
	return 0;
}

int policy_explain(const struct policy_rule *rules, size_t n_rules, const struct capability *cap,
                   const char *const *levels, size_t n_levels, const struct policy_decision *d,
                   struct policy_explanation *out)
{
	const struct policy_rule **order;
	size_t i;

	memset(out, 0, sizeof(*out));
	if ((order = policy_order(rules, n_rules)) == NULL ||
	    (out->v = calloc(n_rules + 1, sizeof(*out->v))) == NULL)
		goto fail;
	for (i = 0; i < n_rules; i++) {
		if (policy_why(&out->v[i], order[i], cap, levels, n_levels, d) == -1)
			goto fail;
		out->n++;
	}
	free(order);
	return 0;
fail:
	free(order);
	policy_explanation_free(out);
	return -1;
}

void policy_explanation_free(struct policy_explanation *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		free(e->v[i].why);
	free(e->v);
	memset(e, 0, sizeof(*e));
}

json_t *policy_explanation_to_json(const struct policy_explanation *e)
{
	const struct policy_rule_why *w;
	json_t *out = json_array();
	size_t i;

	for (i = 0; out != NULL && i < e->n; i++) {
		w = &e->v[i];
		if (json_array_append_new(
		        out, json_pack("{s:s, s:I, s:s, s:s, s:s, s:b, s:b, s:s}", "name",
		                       w->rule->name, "priority", (json_int_t)w->rule->priority,
		                       "vendor", w->rule->vendor, "cdcs", w->rule->cdcs, "variant",
		                       w->rule->variant, "matched", w->matched, "chosen", w->chosen,
		                       "why", w->why)) == -1) {
			json_decref(out);
			out = NULL;
		}
	}
	return out;
}
