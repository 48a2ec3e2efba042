/*
 * dmctl campaign: move a fixed set of devices from one CDCS to another in stages, with pause,
 * resume, stop, and the automatic stop cdcs-pss applies at the failure threshold.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/cdcsimg.h"
#include "dmctl.h"

#define DMCTL_CAMPAIGN_STAGES   10
#define DMCTL_CAMPAIGN_ACCOUNTS 1000
#define DMCTL_CAMPAIGN_WHEN_MAX (16 * 1024)
#define DMCTL_CAMPAIGN_VNUM_MAX 2147483647LL

static const char dmctl_campaign_usage[] =
    "usage: dmctl [-c config] [--json] campaign create NAME --from VENDOR/NAME\n"
    "            --to VENDOR/NAME --variant V [--min-version N] --stages P1,P2,...\n"
    "            [--failure-threshold PCT] [--account ACCOUNT]... [--when JSON]\n"
    "       dmctl [-c config] [--json] campaign list\n"
    "       dmctl [-c config] [--json] campaign show NAME\n"
    "       dmctl [-c config] [--json] campaign advance|pause|resume|stop|archive NAME\n"
    "\n"
    "create moves the devices that have --from personalized (of the --account(s) given,\n"
    "and whose last reported capability meets --when, a rule's \"when\" object, e.g.\n"
    "'{\"secure_video_path\":true}') to --to in its --variant (at least version N,\n"
    "default 1). The device set is fixed at creation. --stages are cumulative\n"
    "percentages (1-10 of them, strictly increasing, 1-100, e.g. 50,100): the first stage\n"
    "is admitted at once, each advance admits the next. A device offered --to whose\n"
    "personalization fails keeps --from; when the failure rate passes --failure-threshold\n"
    "(0-100 percent, default 10) the campaign stops itself. pause admits nothing new\n"
    "(admitted devices still switch), resume undoes it, stop ends the campaign (devices\n"
    "admitted but not switched keep --from; switched ones keep --to). archive, on a\n"
    "stopped campaign, hands its devices back to the policy rules (change the rules\n"
    "first to keep them on --to) and frees them for another campaign. NAME is 1-64 of\n"
    "A-Z a-z 0-9 . _ -. show prints the summary, then one row per device. Asks cdcs-pss\n"
    "(role policy for changes).\n";

static const struct dmctl_col dmctl_campaign_cols[] = {
    {"NAME", "name", 0},
    {"STATUS", "status", 0},
    {"STAGE", "stage", DMCTL_COL_RIGHT},
    {"STAGES", "stages", 0},
    {"FROM", "from", DMCTL_COL_CDCS},
    {"TO", "to", DMCTL_COL_CDCS},
    {"PENDING", "counts.pending", DMCTL_COL_RIGHT},
    {"ADMITTED", "counts.admitted", DMCTL_COL_RIGHT},
    {"SWITCHED", "counts.switched", DMCTL_COL_RIGHT},
    {"FAILED", "counts.failed", DMCTL_COL_RIGHT},
    {"CANCELLED", "counts.cancelled", DMCTL_COL_RIGHT},
    {"FAIL%", "failure_rate", DMCTL_COL_RIGHT},
    {NULL, NULL, 0},
};

static const struct dmctl_col dmctl_campaign_fields[] = {
    {"name", "name", 0},
    {"status", "status", 0},
    {"stop_reason", "stop_reason", 0},
    {"stage", "stage", 0},
    {"stages", "stages", 0},
    {"complete", "complete", 0},
    {"from", "from", DMCTL_COL_CDCS},
    {"to", "to", DMCTL_COL_CDCS},
    {"variant", "to.variant", 0},
    {"min_version", "to.min_version", 0},
    {"filter", "filter", 0},
    {"failure_threshold", "failure_threshold", 0},
    {"failure_rate", "failure_rate", 0},
    {"counts", "counts", 0},
    {"created", "created", DMCTL_COL_TIME},
    {"updated", "updated", DMCTL_COL_TIME},
    {NULL, NULL, 0},
};

static const struct dmctl_col dmctl_campaign_device_cols[] = {
    {"DM_ID", "dm_id", 0},
    {"ACCOUNT", "account", 0},
    {"STAGE", "stage", DMCTL_COL_RIGHT},
    {"STATUS", "status", 0},
    {"UPDATED", "updated", DMCTL_COL_TIME},
    {"ERROR", "error", 0},
    {NULL, NULL, 0},
};

static int dmctl_campaign_list_print(const json_t *doc)
{
	return dmctl_table(dmctl_campaign_cols, json_object_get(doc, "campaigns"));
}

static int dmctl_campaign_show_print(const json_t *doc)
{
	if (dmctl_fields(dmctl_campaign_fields, doc) == -1)
		return -1;
	printf("\n");
	return dmctl_table(dmctl_campaign_device_cols, json_object_get(doc, "devices"));
}

json_t *dmctl_campaign_stages(const char *text)
{
	json_t *out = json_array();
	const char *p = text;
	long long v, prev = 0;
	char num[8];
	size_t n;

	if (out == NULL)
		return NULL;
	for (;;) {
		n = strcspn(p, ",");
		if (n == 0 || n >= sizeof(num) || json_array_size(out) == DMCTL_CAMPAIGN_STAGES)
			goto fail;
		memcpy(num, p, n);
		num[n] = '\0';
		if (dmctl_parse_int(num, prev + 1, 100, &v) == -1 ||
		    json_array_append_new(out, json_integer(v)) == -1)
			goto fail;
		prev = v;
		if (p[n] == '\0')
			return out;
		p += n + 1;
	}
fail:
	json_decref(out);
	return NULL;
}

struct dmctl_campaign_args {
	const char *name, *from, *to, *variant, *stages, *when;
	long long min_version, threshold;
	json_t *accounts;
};

/* One option of create and its value into a; an exit status. */
static int dmctl_campaign_opt(struct dmctl_campaign_args *a, const char *opt, const char *v)
{
	if (strcmp(opt, "--from") == 0)
		a->from = v;
	else if (strcmp(opt, "--to") == 0)
		a->to = v;
	else if (strcmp(opt, "--variant") == 0)
		a->variant = v;
	else if (strcmp(opt, "--stages") == 0)
		a->stages = v;
	else if (strcmp(opt, "--when") == 0)
		a->when = v;
	else if (strcmp(opt, "--min-version") == 0) {
		if (dmctl_parse_int(v, 1, DMCTL_CAMPAIGN_VNUM_MAX, &a->min_version) == -1)
			return dmctl_usage_error(dmctl_campaign_usage,
			                         "--min-version wants an integer >= 1, not", v);
	} else if (strcmp(opt, "--failure-threshold") == 0) {
		if (dmctl_parse_int(v, 0, 100, &a->threshold) == -1)
			return dmctl_usage_error(dmctl_campaign_usage,
			                         "--failure-threshold wants 0..100, not", v);
	} else if (strcmp(opt, "--account") == 0) {
		if (!dmctl_account_ok(v))
			return dmctl_usage_error(dmctl_campaign_usage,
			                         "--account wants 1-64 of A-Z a-z 0-9 . _ -, not",
			                         v);
		if (json_array_size(a->accounts) == DMCTL_CAMPAIGN_ACCOUNTS)
			return dmctl_usage_error(dmctl_campaign_usage, "too many --account", NULL);
		if (json_array_append_new(a->accounts, json_string(v)) == -1)
			return DMCTL_EXIT_FAIL;
	} else
		return dmctl_usage_error(dmctl_campaign_usage, "unexpected argument", opt);
	return DMCTL_EXIT_OK;
}

/* The request body create sends, every value checked; NULL after a message (*status set). */
static json_t *dmctl_campaign_body(struct dmctl_campaign_args *a, int *status)
{
	char fv[65], fn[65], tv[65], tn[65];
	json_t *stages = NULL, *when = NULL, *filter = NULL, *body = NULL;

	*status = DMCTL_EXIT_USAGE;
	if (a->name == NULL || a->from == NULL || a->to == NULL || a->variant == NULL ||
	    a->stages == NULL) {
		dmctl_usage_error(dmctl_campaign_usage,
		                  "NAME, --from, --to, --variant and --stages are required", NULL);
		return NULL;
	}
	if (!dmctl_name_ok(a->name)) {
		dmctl_usage_error(dmctl_campaign_usage,
		                  "not a campaign name (1-64 of A-Z a-z 0-9 . _ -):", a->name);
		return NULL;
	}
	if (dmctl_parse_slot(a->from, fv, fn) == -1 || dmctl_parse_slot(a->to, tv, tn) == -1) {
		dmctl_usage_error(dmctl_campaign_usage, "--from and --to want VENDOR/NAME, not",
		                  dmctl_parse_slot(a->from, fv, fn) == -1 ? a->from : a->to);
		return NULL;
	}
	if (strcmp(fv, tv) == 0 && strcmp(fn, tn) == 0) {
		dmctl_usage_error(dmctl_campaign_usage, "--from and --to are the same CDCS", a->to);
		return NULL;
	}
	if (!cdcsimg_valid_variant(a->variant)) {
		dmctl_usage_error(dmctl_campaign_usage, "--variant wants 1-16 of [a-z0-9_-], not",
		                  a->variant);
		return NULL;
	}
	if ((stages = dmctl_campaign_stages(a->stages)) == NULL) {
		dmctl_usage_error(dmctl_campaign_usage,
		                  "--stages wants 1-10 strictly increasing percentages 1-100 "
		                  "(e.g. 50,100), not",
		                  a->stages);
		return NULL;
	}
	if (a->when != NULL &&
	    (strlen(a->when) > DMCTL_CAMPAIGN_WHEN_MAX ||
	     (when = dmctl_json_object("--when", a->when, strlen(a->when))) == NULL))
		goto fail;
	*status = DMCTL_EXIT_FAIL;
	if (json_array_size(a->accounts) > 0 || when != NULL) {
		if ((filter = json_object()) == NULL ||
		    (json_array_size(a->accounts) > 0 &&
		     json_object_set(filter, "accounts", a->accounts) == -1) ||
		    (when != NULL && json_object_set(filter, "when", when) == -1))
			goto fail;
	}
	body = json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:I}, s:O, s:I}", "name", a->name,
	                 "from", "vendor", fv, "name", fn, "to", "vendor", tv, "name", tn,
	                 "variant", a->variant, "min_version", (json_int_t)a->min_version, "stages",
	                 stages, "failure_threshold", (json_int_t)a->threshold);
	if (body != NULL && filter != NULL && json_object_set(body, "filter", filter) == -1) {
		json_decref(body);
		body = NULL;
	}
	if (body != NULL)
		*status = DMCTL_EXIT_OK;
fail:
	json_decref(filter);
	json_decref(when);
	json_decref(stages);
	return body;
}

static int dmctl_campaign_create(const struct dmctl_opts *opts, int argc, char **argv)
{
	struct dmctl_campaign_args a;
	const char *v;
	json_t *body = NULL, *out = NULL;
	int i, status = DMCTL_EXIT_OK;

	memset(&a, 0, sizeof(a));
	a.min_version = 1;
	a.threshold = 10;
	if ((a.accounts = json_array()) == NULL)
		return DMCTL_EXIT_FAIL;
	for (i = 0; i < argc && status == DMCTL_EXIT_OK; i++) {
		if (argv[i][0] != '-' && a.name == NULL)
			a.name = argv[i];
		else if (dmctl_opt_value(argc, argv, &i, dmctl_campaign_usage, &v) == -1)
			status = DMCTL_EXIT_USAGE;
		else
			status = dmctl_campaign_opt(&a, argv[i - 1], v);
	}
	if (status == DMCTL_EXIT_OK && (body = dmctl_campaign_body(&a, &status)) != NULL) {
		status = dmctl_api_once_role(opts, "cdcs-pss", "POST", "/v1/admin/campaigns", body,
		                             &out);
		status = dmctl_done(opts, status, out, dmctl_campaign_show_print);
	}
	json_decref(a.accounts);
	return status;
}

/* show and the actions on one campaign: GET or POST /v1/admin/campaigns/NAME[/action]. */
static int dmctl_campaign_one(const struct dmctl_opts *opts, const char *action, int argc,
                              char **argv)
{
	char path[256];
	json_t *out = NULL;
	int status;

	if (argc != 1 || !dmctl_name_ok(argv[0]))
		return dmctl_usage_error(dmctl_campaign_usage,
		                         "exactly one campaign NAME (1-64 of A-Z a-z 0-9 . _ -) is "
		                         "required",
		                         NULL);
	if (action == NULL) {
		snprintf(path, sizeof(path), "/v1/admin/campaigns/%s", argv[0]);
		status = dmctl_api_once_role(opts, "cdcs-pss", "GET", path, NULL, &out);
		return dmctl_done(opts, status, out, dmctl_campaign_show_print);
	}
	snprintf(path, sizeof(path), "/v1/admin/campaigns/%s/%s", argv[0], action);
	status = dmctl_api_once_role(opts, "cdcs-pss", "POST", path, json_object(), &out);
	if (status == DMCTL_EXIT_OK && !opts->json &&
	    json_is_string(json_object_get(out, "status")))
		printf("campaign %s: %s, stage %lld of %zu\n", argv[0], dmctl_str(out, "status"),
		       (long long)json_integer_value(json_object_get(out, "stage")),
		       json_array_size(json_object_get(out, "stages")));
	else if (status == DMCTL_EXIT_OK && !opts->json)
		printf("campaign %s: %s done\n", argv[0], action);
	return dmctl_done(opts, status, out, NULL);
}

int dmctl_campaign_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	static const char *const actions[] = {"advance", "pause",   "resume",
	                                      "stop",    "archive", NULL};
	json_t *out = NULL;
	int status;
	size_t i;

	if (dmctl_want_help(argc, argv, dmctl_campaign_usage))
		return DMCTL_EXIT_OK;
	if (argc < 1)
		return dmctl_usage_error(dmctl_campaign_usage, "campaign: missing action", NULL);
	if (strcmp(argv[0], "create") == 0)
		return dmctl_campaign_create(opts, argc - 1, argv + 1);
	if (strcmp(argv[0], "show") == 0)
		return dmctl_campaign_one(opts, NULL, argc - 1, argv + 1);
	for (i = 0; actions[i] != NULL; i++)
		if (strcmp(argv[0], actions[i]) == 0)
			return dmctl_campaign_one(opts, actions[i], argc - 1, argv + 1);
	if (strcmp(argv[0], "list") == 0) {
		if (argc != 1)
			return dmctl_usage_error(dmctl_campaign_usage, "unexpected argument",
			                         argv[1]);
		status =
		    dmctl_api_once_role(opts, "cdcs-pss", "GET", "/v1/admin/campaigns", NULL, &out);
		return dmctl_done(opts, status, out, dmctl_campaign_list_print);
	}
	return dmctl_usage_error(dmctl_campaign_usage, "campaign: unknown action", argv[0]);
}
