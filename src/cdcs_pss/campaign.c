/*
 * cdcs-pss campaign: the rules of a campaign (campaign.h), apart from where it is stored.
 *
 * The device set is fixed when the campaign is created and ordered by a hash of the
 * campaign's name and the DM id: a stage admits a prefix of that order, so the devices of
 * stage 1 are the same whoever asks and whenever, and another campaign picks another sample.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/cdcsimg.h"
#include "campaign.h"

static const char *const campaign_status_names[] = {"running", "paused", "stopped", "archived"};
static const char *const campaign_dev_names[] = {"pending", "admitted", "switched", "failed",
                                                 "cancelled"};

static const struct schema_field campaign_from_fields[] = {
    {"vendor", SCHEMA_STRING, offsetof(struct campaign_from, vendor), 1, 1, POLICY_ID_MAX, 0, NULL},
    {"name", SCHEMA_STRING, offsetof(struct campaign_from, name), 1, 1, POLICY_ID_MAX, 0, NULL},
    SCHEMA_END,
};

static const struct schema_field campaign_to_fields[] = {
    {"vendor", SCHEMA_STRING, offsetof(struct campaign_to, vendor), 1, 1, POLICY_ID_MAX, 0, NULL},
    {"name", SCHEMA_STRING, offsetof(struct campaign_to, name), 1, 1, POLICY_ID_MAX, 0, NULL},
    {"variant", SCHEMA_STRING, offsetof(struct campaign_to, variant), 1, 1, POLICY_VARIANT_MAX, 0,
     NULL},
    {"min_version", SCHEMA_INT, offsetof(struct campaign_to, min_version), 0, 1, INT32_MAX, 0,
     NULL},
    SCHEMA_END,
};

static const struct schema_field campaign_filter_fields[] = {
    {"accounts", SCHEMA_STRLIST, offsetof(struct campaign_filter, accounts), 0, 1,
     POLICY_ACCOUNT_MAX, CAMPAIGN_ACCOUNTS_MAX, NULL},
    {"when", SCHEMA_OBJECT, offsetof(struct campaign_filter, when), 0, 0, 0, 0, policy_when_fields},
    SCHEMA_END,
};

const struct schema_field campaign_spec_fields[] = {
    {"name", SCHEMA_STRING, offsetof(struct campaign_spec, name), 1, 1, POLICY_NAME_MAX, 0, NULL},
    {"from", SCHEMA_OBJECT, offsetof(struct campaign_spec, from), 1, 0, 0, 0, campaign_from_fields},
    {"to", SCHEMA_OBJECT, offsetof(struct campaign_spec, to), 1, 0, 0, 0, campaign_to_fields},
    {"filter", SCHEMA_OBJECT, offsetof(struct campaign_spec, filter), 0, 0, 0, 0,
     campaign_filter_fields},
    {"stages", SCHEMA_JSON, offsetof(struct campaign_spec, stages), 1, 0, 0, 0, NULL},
    {"failure_threshold", SCHEMA_INT, offsetof(struct campaign_spec, failure_threshold), 1, 0, 100,
     0, NULL},
    SCHEMA_END,
};

const char *campaign_status_name(enum campaign_status s)
{
	return (size_t)s < sizeof(campaign_status_names) / sizeof(campaign_status_names[0])
	           ? campaign_status_names[s]
	           : "?";
}

const char *campaign_dev_name(enum campaign_dev s)
{
	return (size_t)s < CAMPAIGN_DEV_N ? campaign_dev_names[s] : "?";
}

int campaign_status_parse(const char *name, enum campaign_status *out)
{
	size_t i;

	for (i = 0;
	     name != NULL && i < sizeof(campaign_status_names) / sizeof(*campaign_status_names);
	     i++)
		if (strcmp(name, campaign_status_names[i]) == 0) {
			*out = (enum campaign_status)i;
			return 0;
		}
	return -1;
}

int campaign_dev_parse(const char *name, enum campaign_dev *out)
{
	size_t i;

	for (i = 0; name != NULL && i < CAMPAIGN_DEV_N; i++)
		if (strcmp(name, campaign_dev_names[i]) == 0) {
			*out = (enum campaign_dev)i;
			return 0;
		}
	return -1;
}

int campaign_stages_parse(const json_t *stages, struct campaign_stages *st, char *err,
                          size_t errlen)
{
	json_int_t pct;
	json_t *v;
	size_t i;

	memset(st, 0, sizeof(*st));
	if (!json_is_array(stages) || json_array_size(stages) < 1 ||
	    json_array_size(stages) > CAMPAIGN_STAGES_MAX) {
		snprintf(err, errlen, "key 'stages': 1 to %d percentages, e.g. [50, 100]",
		         CAMPAIGN_STAGES_MAX);
		return -1;
	}
	json_array_foreach(stages, i, v)
	{
		pct = json_is_integer(v) ? json_integer_value(v) : 0;
		if (pct < 1 || pct > 100) {
			snprintf(err, errlen, "key 'stages[%zu]': an integer from 1 to 100", i);
			return -1;
		}
		if (i > 0 && pct <= st->v[i - 1]) {
			snprintf(err, errlen, "key 'stages[%zu]': must be above stages[%zu] (%d)",
			         i, i - 1, st->v[i - 1]);
			return -1;
		}
		st->v[i] = (int)pct;
		st->n++;
	}
	return 0;
}

static int campaign_accounts_check(const struct schema_strlist *l, char *err, size_t errlen)
{
	size_t i, j;

	if (l->v == NULL)
		return 0;
	if (l->n == 0) {
		snprintf(err, errlen,
		         "key 'filter.accounts': an empty list matches nothing; leave it out");
		return -1;
	}
	for (i = 0; i < l->n; i++) {
		if (!policy_account_ok(l->v[i])) {
			snprintf(err, errlen,
			         "key 'filter.accounts[%zu]': 1-64 characters of A-Z a-z 0-9 . _ -",
			         i);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(l->v[i], l->v[j]) == 0) {
				snprintf(err, errlen,
				         "key 'filter.accounts[%zu]': '%s' is listed twice", i,
				         l->v[i]);
				return -1;
			}
	}
	return 0;
}

int campaign_spec_check(const struct campaign_spec *c, struct campaign_stages *st, char *err,
                        size_t errlen)
{
	const char *bad;

	if (!policy_name_ok(c->name)) {
		snprintf(err, errlen, "key 'name': 1-64 characters of A-Z a-z 0-9 . _ -");
		return -1;
	}
	bad = !policy_id_ok(c->from.vendor) ? "from.vendor"
	      : !policy_id_ok(c->from.name) ? "from.name"
	      : !policy_id_ok(c->to.vendor) ? "to.vendor"
	      : !policy_id_ok(c->to.name)   ? "to.name"
	                                    : NULL;
	if (bad != NULL) {
		snprintf(err, errlen, "key '%s': only a-z 0-9 . _ - are allowed, not first '.'",
		         bad);
		return -1;
	}
	if (!policy_variant_ok(c->to.variant)) {
		snprintf(err, errlen, "key 'to.variant': 1-16 characters of a-z 0-9 _ -");
		return -1;
	}
	if (strcmp(c->from.vendor, c->to.vendor) == 0 && strcmp(c->from.name, c->to.name) == 0) {
		snprintf(err, errlen,
		         "key 'to': %s/%s is 'from' too; a campaign moves devices "
		         "to another CDCS",
		         c->to.vendor, c->to.name);
		return -1;
	}
	if (campaign_accounts_check(&c->filter.accounts, err, errlen) == -1 ||
	    policy_when_check(&c->filter.when, "filter.when", err, errlen) == -1)
		return -1;
	return campaign_stages_parse(c->stages, st, err, errlen);
}

static int campaign_when_empty(const struct policy_when *w)
{
	return w->secure_video_path == NULL && w->tee.v == NULL && w->platform == NULL &&
	       w->max_resolution.v == NULL;
}

json_t *campaign_filter_to_json(const struct campaign_filter *f)
{
	json_t *out, *accounts;
	size_t i;

	if (f->accounts.v == NULL && campaign_when_empty(&f->when))
		return json_null();
	if ((out = json_object()) == NULL)
		return NULL;
	if (f->accounts.v != NULL) {
		if ((accounts = json_array()) == NULL ||
		    json_object_set_new(out, "accounts", accounts) == -1)
			goto fail;
		for (i = 0; i < f->accounts.n; i++)
			if (json_array_append_new(accounts, json_string(f->accounts.v[i])) == -1)
				goto fail;
	}
	if (!campaign_when_empty(&f->when) &&
	    json_object_set_new(out, "when", policy_when_to_json(&f->when)) == -1)
		goto fail;
	return out;
fail:
	json_decref(out);
	return NULL;
}

int campaign_filter_matches(const struct campaign_filter *f, const char *account,
                            const struct capability *cap)
{
	size_t i;

	if (f == NULL)
		return 1;
	if (f->accounts.v != NULL) {
		for (i = 0; i < f->accounts.n; i++)
			if (strcmp(f->accounts.v[i], account) == 0)
				break;
		if (i == f->accounts.n)
			return 0;
	}
	return policy_when_holds(&f->when, cap);
}

int campaign_order_key(const char *name, const char *dm_id, char hex[65])
{
	char buf[POLICY_NAME_MAX + 1 + 256];
	int n = snprintf(buf, sizeof(buf), "%s/%s", name, dm_id);

	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	cdcsimg_sha256_hex(buf, (size_t)n, hex);
	return 0;
}

static int campaign_member_cmp(const void *a, const void *b)
{
	const struct campaign_member *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c != 0 ? c : strcmp(x->dm_id, y->dm_id);
}

void campaign_order(struct campaign_member *m, size_t n)
{
	if (n > 1)
		qsort(m, n, sizeof(*m), campaign_member_cmp);
}

int64_t campaign_admit_target(int64_t n, int pct)
{
	return (n * pct + 99) / 100;
}

int campaign_stage_of(int64_t ord, int64_t n, const struct campaign_stages *st)
{
	size_t k;

	for (k = 0; k < st->n; k++)
		if (ord < campaign_admit_target(n, st->v[k]))
			return (int)k + 1;
	return 0;
}

int campaign_failure_rate(const struct campaign_counts *c)
{
	int64_t tried =
	    c->n[CAMPAIGN_DEV_ADMITTED] + c->n[CAMPAIGN_DEV_SWITCHED] + c->n[CAMPAIGN_DEV_FAILED];

	return tried > 0 ? (int)(c->n[CAMPAIGN_DEV_FAILED] * 100 / tried) : 0;
}

int campaign_over_threshold(const struct campaign_counts *c, int64_t threshold)
{
	return campaign_failure_rate(c) > threshold;
}

int campaign_complete(int stage, const struct campaign_stages *st, const struct campaign_counts *c)
{
	return stage >= (int)st->n && c->n[CAMPAIGN_DEV_ADMITTED] == 0;
}

const char *campaign_action(enum campaign_status cur, int stage, const struct campaign_stages *st,
                            const char *action, enum campaign_status *next)
{
	if (strcmp(action, "advance") == 0) {
		if (cur != CAMPAIGN_RUNNING)
			return "campaign_not_running";
		if (stage >= (int)st->n)
			return "last_stage";
		*next = CAMPAIGN_RUNNING;
	} else if (strcmp(action, "pause") == 0) {
		if (cur != CAMPAIGN_RUNNING)
			return "campaign_not_running";
		*next = CAMPAIGN_PAUSED;
	} else if (strcmp(action, "resume") == 0) {
		if (cur != CAMPAIGN_PAUSED)
			return "campaign_not_paused";
		*next = CAMPAIGN_RUNNING;
	} else if (strcmp(action, "stop") == 0) {
		if (cur != CAMPAIGN_RUNNING && cur != CAMPAIGN_PAUSED)
			return "campaign_not_running";
		*next = CAMPAIGN_STOPPED;
	} else if (strcmp(action, "archive") == 0) {
		/* Only a stopped campaign: archiving hands switched devices back to the rules,
		 * which an operator does on purpose, after changing them. */
		if (cur != CAMPAIGN_STOPPED)
			return "campaign_not_stopped";
		*next = CAMPAIGN_ARCHIVED;
	} else
		return "unknown_action";
	return NULL;
}

int campaign_dev_next(enum campaign_dev cur, enum campaign_event ev, enum campaign_dev *next)
{
	enum campaign_dev to;

	switch (ev) {
	case CAMPAIGN_EV_ADMIT:
		if (cur != CAMPAIGN_DEV_PENDING)
			return 0;
		to = CAMPAIGN_DEV_ADMITTED;
		break;
	case CAMPAIGN_EV_PERSONALIZED:
		/* A cancelled device whose switch was already under way when the campaign
		 * stopped has `to` working and `from` gone: moving it back is another switch. */
		if (cur != CAMPAIGN_DEV_ADMITTED && cur != CAMPAIGN_DEV_CANCELLED)
			return 0;
		to = CAMPAIGN_DEV_SWITCHED;
		break;
	case CAMPAIGN_EV_FAILED:
		/* A switched device that fails an update of `to` still runs the `to` it has. */
		if (cur != CAMPAIGN_DEV_ADMITTED)
			return 0;
		to = CAMPAIGN_DEV_FAILED;
		break;
	case CAMPAIGN_EV_STOP:
		if (cur != CAMPAIGN_DEV_ADMITTED)
			return 0;
		to = CAMPAIGN_DEV_CANCELLED;
		break;
	default:
		return 0;
	}
	*next = to;
	return 1;
}

int campaign_applies(enum campaign_status s, enum campaign_dev dev)
{
	if (s == CAMPAIGN_ARCHIVED)
		return 0;
	return dev == CAMPAIGN_DEV_SWITCHED ||
	       (dev == CAMPAIGN_DEV_ADMITTED && s != CAMPAIGN_STOPPED);
}

int campaign_view_parse(const json_t *o, struct campaign_view *v)
{
	const json_t *from = json_object_get(o, "from"), *to = json_object_get(o, "to");
	const json_t *mv = json_object_get(to, "min_version");

	memset(v, 0, sizeof(*v));
	v->name = json_string_value(json_object_get(o, "name"));
	v->from_vendor = json_string_value(json_object_get(from, "vendor"));
	v->from_name = json_string_value(json_object_get(from, "name"));
	v->to_vendor = json_string_value(json_object_get(to, "vendor"));
	v->to_name = json_string_value(json_object_get(to, "name"));
	v->to_variant = json_string_value(json_object_get(to, "variant"));
	if (v->name == NULL || v->from_vendor == NULL || v->from_name == NULL ||
	    v->to_vendor == NULL || v->to_name == NULL || v->to_variant == NULL ||
	    !json_is_integer(mv) ||
	    campaign_status_parse(json_string_value(json_object_get(o, "status")), &v->status) ==
	        -1 ||
	    campaign_dev_parse(json_string_value(json_object_get(o, "device_status")), &v->dev) ==
	        -1)
		return -1;
	v->to_min_version = json_integer_value(mv);
	return 0;
}

/* ---- override ---------------------------------------------------------------------- */

static const char *campaign_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

static int campaign_same_slot(const json_t *a, const json_t *b)
{
	return strcmp(campaign_str(a, "vendor"), campaign_str(b, "vendor")) == 0 &&
	       strcmp(campaign_str(a, "name"), campaign_str(b, "name")) == 0;
}

/* Position of the campaign that made choice c in v (n when none): lower is older. */
static size_t campaign_rank(const json_t *c, const struct campaign_view *v, size_t n)
{
	const char *name = json_string_value(json_object_get(c, "campaign"));
	size_t k;

	for (k = 0; name != NULL && k < n; k++)
		if (strcmp(v[k].name, name) == 0)
			return k;
	return n;
}

/* The oldest applying campaign whose `from` is c's slot (the others noted), or NULL. */
static const struct campaign_view *campaign_winner(FILE *f, const json_t *c,
                                                   const struct campaign_view *v, size_t n)
{
	const struct campaign_view *win = NULL;
	const char *vendor = campaign_str(c, "vendor"), *name = campaign_str(c, "name");
	size_t k;

	for (k = 0; k < n; k++) {
		if (!campaign_applies(v[k].status, v[k].dev) ||
		    strcmp(v[k].from_vendor, vendor) != 0 || strcmp(v[k].from_name, name) != 0)
			continue;
		if (win == NULL)
			win = &v[k];
		else
			fprintf(f, "campaign '%s' also applies to %s/%s: the oldest, '%s', wins\n",
			        v[k].name, vendor, name, win->name);
	}
	return win;
}

/* c (a choice of w's `from`) becomes w's `to`, its reason saying so and why. 0/-1. */
static int campaign_switch(FILE *f, json_t *c, const struct campaign_view *w)
{
	char line[512], *reason;
	size_t len;
	int rc = -1;

	snprintf(line, sizeof(line),
	         "campaign '%s' (device %s): %s/%s %s (min_version %lld) instead of %s/%s", w->name,
	         campaign_dev_name(w->dev), w->to_vendor, w->to_name, w->to_variant,
	         (long long)w->to_min_version, w->from_vendor, w->from_name);
	fprintf(f, "%s\n", line);
	len = strlen(campaign_str(c, "reason")) + 2 + strlen(line) + 1;
	if ((reason = malloc(len)) == NULL)
		return -1;
	snprintf(reason, len, "%s; %s", campaign_str(c, "reason"), line);
	if (json_object_set_new(c, "vendor", json_string(w->to_vendor)) == 0 &&
	    json_object_set_new(c, "name", json_string(w->to_name)) == 0 &&
	    json_object_set_new(c, "variant", json_string(w->to_variant)) == 0 &&
	    json_object_set_new(c, "min_version", json_integer(w->to_min_version)) == 0 &&
	    json_object_set_new(c, "campaign", json_string(w->name)) == 0 &&
	    json_object_set_new(c, "reason", json_string(reason)) == 0)
		rc = 0;
	free(reason);
	return rc;
}

/* Who made choice c, for a note: "campaign 'x'" or "rule 'y'". */
static void campaign_maker(const json_t *c, char *buf, size_t len)
{
	if (json_is_string(json_object_get(c, "campaign")))
		snprintf(buf, len, "campaign '%s'", campaign_str(c, "campaign"));
	else
		snprintf(buf, len, "rule '%s'", campaign_str(c, "rule"));
}

/* One choice per slot: a campaign's over the rules', the older campaign's over another. */
static void campaign_dedupe(FILE *f, json_t *choices, const struct campaign_view *v, size_t n)
{
	char win[POLICY_NAME_MAX + 16], lose[POLICY_NAME_MAX + 16];
	size_t i = 0, j, gone;
	json_t *a, *b = NULL;

	while (i < json_array_size(choices)) {
		a = json_array_get(choices, i);
		for (j = i + 1; j < json_array_size(choices); j++)
			if (campaign_same_slot(a, b = json_array_get(choices, j)))
				break;
		if (j == json_array_size(choices)) {
			i++;
			continue;
		}
		/* Ties (two rules' choices cannot share a slot) keep the earlier choice. */
		gone = campaign_rank(b, v, n) < campaign_rank(a, v, n) ? i : j;
		campaign_maker(gone == i ? b : a, win, sizeof(win));
		campaign_maker(gone == i ? a : b, lose, sizeof(lose));
		fprintf(f, "%s/%s: %s gives way to %s\n", campaign_str(a, "vendor"),
		        campaign_str(a, "name"), lose, win);
		/* i is looked at again: it holds the winner or, when it lost, the next choice. */
		json_array_remove(choices, gone);
	}
}

int campaign_override(json_t *choices, const struct campaign_view *v, size_t n, char **notes)
{
	const struct campaign_view *w;
	size_t i, n_policy = json_array_size(choices), len;
	char *text = NULL;
	json_t *c;
	FILE *f;
	int rc = 0;

	*notes = NULL;
	if ((f = open_memstream(&text, &len)) == NULL)
		return -1;
	json_array_foreach(choices, i, c)
	{
		if (json_object_set_new(c, "campaign", json_null()) == -1)
			rc = -1;
	}
	/* Against the slots the rules chose: a campaign's `to` is never another's `from`. */
	for (i = 0; rc == 0 && i < n_policy; i++) {
		c = json_array_get(choices, i);
		if ((w = campaign_winner(f, c, v, n)) != NULL && campaign_switch(f, c, w) == -1)
			rc = -1;
	}
	if (rc == 0)
		campaign_dedupe(f, choices, v, n);
	if (fclose(f) != 0 || rc == -1) {
		free(text);
		return -1;
	}
	/* One line per change, without the last newline. */
	if (len > 0 && text[len - 1] == '\n')
		text[len - 1] = '\0';
	*notes = text;
	return 0;
}
