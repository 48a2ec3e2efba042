/*
 * cdcs-pss choose: what a device gets now, from its account's levels, the rules, its
 * capability and its campaigns. Authorize records it and explain shows it: one path, so that
 * an explanation cannot disagree with what the device receives at its next check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/log.h"
#include "cdcs_pss.h"

/* The device's campaigns as views (borrowed from c->campaigns), oldest first. */
static struct campaign_view *cdcs_pss_views(const struct cdcs_pss_choice *c, size_t *n)
{
	struct campaign_view *v;
	json_t *o;
	size_t i;

	*n = 0;
	if ((v = calloc(json_array_size(c->campaigns) + 1, sizeof(*v))) == NULL)
		return NULL;
	json_array_foreach(c->campaigns, i, o)
	{
		if (campaign_view_parse(o, &v[*n]) == 0)
			(*n)++;
		else
			log_err("campaign '%s' is damaged: ignored",
			        json_string_value(json_object_get(o, "name")));
	}
	return v;
}

int cdcs_pss_choose(struct db *db, const char *dm_id, const char *account,
                    const struct capability *cap, struct cdcs_pss_choice *out)
{
	struct campaign_view *views = NULL;
	char *notes = NULL;
	size_t i, n_views = 0, len;

	memset(out, 0, sizeof(*out));
	if ((out->levels = cdcs_pss_store_levels(db, account)) == NULL ||
	    cdcs_pss_store_rules(db, &out->rules, &out->n_rules) == -1 ||
	    (out->campaigns = cdcs_pss_store_device_campaigns(db, dm_id, NULL, NULL)) == NULL)
		goto fail;
	if ((out->lv = calloc(json_array_size(out->levels) + 1, sizeof(*out->lv))) == NULL)
		goto oom;
	for (i = 0; i < json_array_size(out->levels); i++)
		out->lv[i] = json_string_value(json_array_get(out->levels, i));
	if (policy_decide(out->rules, out->n_rules, cap, out->lv, json_array_size(out->levels),
	                  &out->dec) == -1 ||
	    (out->choices = policy_decision_to_json(&out->dec)) == NULL ||
	    (views = cdcs_pss_views(out, &n_views)) == NULL ||
	    campaign_override(out->choices, views, n_views, &notes) == -1)
		goto oom;
	len = strlen(out->dec.reason) + 1 + strlen(notes) + 1;
	if ((out->reason = malloc(len)) == NULL)
		goto oom;
	snprintf(out->reason, len, "%s%s%s", out->dec.reason, notes[0] != '\0' ? "\n" : "", notes);
	free(views);
	free(notes);
	return 0;
oom:
	log_err("%s: out of memory", dm_id);
fail:
	free(views);
	free(notes);
	cdcs_pss_choice_free(out);
	return -1;
}

void cdcs_pss_choice_free(struct cdcs_pss_choice *c)
{
	policy_decision_free(&c->dec);
	cdcs_pss_rules_free(c->rules, c->n_rules);
	free(c->lv);
	free(c->reason);
	json_decref(c->levels);
	json_decref(c->campaigns);
	json_decref(c->choices);
	memset(c, 0, sizeof(*c));
}
