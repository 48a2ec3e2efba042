/*
 * dmctl policy: the rules cdcs-pss decides with (add, list, rm), what it decided for a device
 * (device) with the reasons it recorded, and why it would decide what it decides now
 * (explain, also `dmctl explain`), compared with what the device was last given.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmctl.h"

#define DMCTL_RULE_MAX    (64 * 1024)
#define DMCTL_DM_ID_EXTRA "._:-"

static const char dmctl_policy_usage[] =
    "usage: dmctl [-c config] [--json] policy add FILE|-\n"
    "       dmctl [-c config] [--json] policy list\n"
    "       dmctl [-c config] [--json] policy rm NAME\n"
    "       dmctl [-c config] [--json] policy device DM_ID\n"
    "       dmctl [-c config] [--json] policy explain DM_ID\n"
    "       dmctl [-c config] [--json] explain DM_ID\n"
    "\n"
    "add sends one rule (a JSON object, from FILE or standard input), e.g.\n"
    "  {\"name\":\"ca-hw\",\"priority\":10,\"entitlement\":\"basic\",\n"
    "   \"when\":{\"secure_video_path\":true,\"tee\":[\"trustzone\",\"sgx\"]},\n"
    "   \"vendor\":\"vendor-a\",\"cdcs\":\"sample-ca\",\"variant\":\"hw\",\"min_version\":1,\n"
    "   \"grants\":[\"basic\",\"premium\",\"uhd\"]}\n"
    "Rules apply in (priority, name) order; for each (vendor, cdcs) the first rule whose\n"
    "entitlement the account has and whose conditions the device meets wins. list shows\n"
    "them in that order; rm deletes one (add and rm need the role policy); device shows a\n"
    "device's CDCSs and its last decisions with their reasons. explain shows, from the\n"
    "device's last reported capability and its account's entitlements, each rule (matched,\n"
    "chosen, and why), the campaigns that concern the device, the choices its next check\n"
    "will get, and whether they agree with the last decision it was given (or how they\n"
    "differ). Asks cdcs-pss with the operator certificate.\n";

/* The rule in FILE ("-": standard input), at most DMCTL_RULE_MAX bytes; NULL after a message. */
static json_t *dmctl_rule_read(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *buf = NULL;
	json_t *rule = NULL;
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "dmctl: input: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(DMCTL_RULE_MAX + 1)) == NULL) {
		fprintf(stderr, "dmctl: out of memory\n");
		goto out;
	}
	n = fread(buf, 1, DMCTL_RULE_MAX + 1, f);
	if (ferror(f) || n > DMCTL_RULE_MAX) {
		fprintf(stderr, "dmctl: input: %s: %s\n", path,
		        ferror(f) ? "cannot read" : "larger than 64 KiB");
		goto out;
	}
	rule = dmctl_json_object(path, buf, n);
out:
	free(buf);
	if (f != stdin)
		fclose(f);
	return rule;
}

static const struct dmctl_col dmctl_rule_cols[] = {
    {"NAME", "name", 0},
    {"PRIORITY", "priority", DMCTL_COL_RIGHT},
    {"ENTITLEMENT", "entitlement", 0},
    {"CDCS", "vendor/cdcs", 0},
    {"VARIANT", "variant", 0},
    {"MIN", "min_version", DMCTL_COL_RIGHT},
    {"GRANTS", "grants", 0},
    {"WHEN", "when", 0},
    {NULL, NULL, 0},
};

static int dmctl_rule_print(const json_t *doc)
{
	return dmctl_table_one(dmctl_rule_cols, doc);
}

static int dmctl_rules_print(const json_t *doc)
{
	return dmctl_table(dmctl_rule_cols, json_object_get(doc, "rules"));
}

/* A multi-line text, each line indented. */
static void dmctl_indented(const char *text)
{
	const char *nl;

	for (; (nl = strchr(text, '\n')) != NULL; text = nl + 1)
		printf("  %.*s\n", (int)(nl - text), text);
	printf("  %s\n", text);
}

static int dmctl_policy_device_print(const json_t *doc)
{
	static const struct dmctl_col cols[] = {
	    {"CDCS", "vendor/name", 0},
	    {"VARIANT", "variant", 0},
	    {"VERSION", "version_number", DMCTL_COL_RIGHT},
	    {"STATE", "state", 0},
	    {"CDCS_ID", "cdcs_id", 0},
	    {"SOURCE", "source", 0},
	    {"ERROR", "error", 0},
	    {NULL, NULL, 0},
	};
	const json_t *v;
	size_t i;

	printf("%s\n\n", dmctl_str(doc, "dm_id"));
	if (dmctl_table(cols, json_object_get(doc, "cdcs")) == -1)
		return -1;
	printf("\nDECISIONS (newest first)\n");
	json_array_foreach(json_object_get(doc, "decisions"), i, v)
	{
		printf("%s at %lld:\n", dmctl_str(v, "id"),
		       (long long)json_integer_value(json_object_get(v, "created")));
		dmctl_indented(dmctl_str(v, "reason"));
	}
	return 0;
}

static int dmctl_strcmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The strings of a JSON array, sorted and joined with ',' ("-" if none). New string or NULL. */
static char *dmctl_sorted_join(const json_t *list)
{
	json_t *copy = json_array();
	const char **v = NULL;
	size_t n = json_array_size(list), i;
	char *out = NULL;

	if (copy == NULL || (n > 0 && (v = calloc(n, sizeof(*v))) == NULL))
		goto out;
	for (i = 0; i < n; i++)
		v[i] = json_string_value(json_array_get(list, i)) != NULL
		           ? json_string_value(json_array_get(list, i))
		           : "";
	qsort(v, n, sizeof(*v), dmctl_strcmp);
	for (i = 0; i < n; i++)
		if (json_array_append_new(copy, json_string(v[i])) == -1)
			goto out;
	out = dmctl_value_text(copy, 0);
out:
	free(v);
	json_decref(copy);
	return out;
}

/* The item of list for the slot vendor/name, or NULL. */
static const json_t *dmctl_slot_find(const json_t *list, const json_t *item)
{
	const json_t *v;
	size_t i;

	json_array_foreach(list, i, v)
	{
		if (strcmp(dmctl_str(v, "vendor"), dmctl_str(item, "vendor")) == 0 &&
		    strcmp(dmctl_str(v, "name"), dmctl_str(item, "name")) == 0)
			return v;
	}
	return NULL;
}

/* Append "vendor/name: " and the formatted text to out. 0/-1. */
static int dmctl_diff_add(json_t *out, const json_t *item, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int dmctl_diff_add(json_t *out, const json_t *item, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "%s/%s: ", dmctl_str(item, "vendor"),
	             dmctl_str(item, "name"));
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	return json_array_append_new(out, json_string(line));
}

json_t *dmctl_explain_diff(const json_t *choices, const json_t *install)
{
	json_t *out = json_array();
	const json_t *c, *old;
	char *r1 = NULL, *r2 = NULL;
	size_t i;
	int rc = 0;

	if (out == NULL)
		return NULL;
	json_array_foreach(choices, i, c)
	{
		if ((old = dmctl_slot_find(install, c)) == NULL) {
			rc |= dmctl_diff_add(out, c, "chosen now, not in the last decision");
			continue;
		}
		if (strcmp(dmctl_str(c, "variant"), dmctl_str(old, "variant")) != 0)
			rc |= dmctl_diff_add(out, c, "variant %s now, %s in the last decision",
			                     dmctl_str(c, "variant"), dmctl_str(old, "variant"));
		r1 = dmctl_sorted_join(json_object_get(c, "rights"));
		r2 = dmctl_sorted_join(json_object_get(old, "rights"));
		if (r1 == NULL || r2 == NULL)
			rc = -1;
		else if (strcmp(r1, r2) != 0)
			rc |= dmctl_diff_add(out, c, "rights %s now, %s in the last decision", r1,
			                     r2);
		free(r1);
		free(r2);
	}
	json_array_foreach(install, i, old)
	{
		if (dmctl_slot_find(choices, old) == NULL)
			rc |= dmctl_diff_add(out, old, "in the last decision, not chosen now");
	}
	if (rc != 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static int dmctl_explain_print(const json_t *doc)
{
	static const struct dmctl_col head[] = {
	    {"dm_id", "dm_id", 0},           {"account", "account", 0}, {"levels", "levels", 0},
	    {"capability", "capability", 0}, {NULL, NULL, 0},
	};
	static const struct dmctl_col rules[] = {
	    {"RULE", "name", 0},        {"PRIORITY", "priority", DMCTL_COL_RIGHT},
	    {"CDCS", "vendor/cdcs", 0}, {"VARIANT", "variant", 0},
	    {"MATCHED", "matched", 0},  {"CHOSEN", "chosen", 0},
	    {"WHY", "why", 0},          {NULL, NULL, 0},
	};
	static const struct dmctl_col campaigns[] = {
	    {"CAMPAIGN", "name", 0},
	    {"STATUS", "status", 0},
	    {"DEVICE", "device_status", 0},
	    {"FROM", "from", DMCTL_COL_CDCS},
	    {"TO", "to", DMCTL_COL_CDCS},
	    {"APPLIES", "applies", 0},
	    {NULL, NULL, 0},
	};
	static const struct dmctl_col choices[] = {
	    {"CDCS", "vendor/name", 0},
	    {"VARIANT", "variant", 0},
	    {"MIN", "min_version", DMCTL_COL_RIGHT},
	    {"RIGHTS", "rights", 0},
	    {"RULE", "rule", 0},
	    {"CAMPAIGN", "campaign", 0},
	    {"REASON", "reason", 0},
	    {NULL, NULL, 0},
	};
	static const struct dmctl_col installed[] = {
	    {"CDCS", "vendor/name", 0},
	    {"VARIANT", "variant", 0},
	    {"VERSION", "version_number", DMCTL_COL_RIGHT},
	    {"RIGHTS", "rights", 0},
	    {NULL, NULL, 0},
	};
	const json_t *last = json_object_get(doc, "last_decision"), *v;
	char *created;
	json_t *diff;
	size_t i;

	if (dmctl_fields(head, doc) == -1)
		return -1;
	printf("\nRULES\n");
	if (dmctl_table(rules, json_object_get(doc, "rules")) == -1)
		return -1;
	if (json_array_size(json_object_get(doc, "campaigns")) > 0) {
		printf("\nCAMPAIGNS\n");
		if (dmctl_table(campaigns, json_object_get(doc, "campaigns")) == -1)
			return -1;
	}
	printf("\nCHOICES (what the device gets at its next check)\n");
	if (dmctl_table(choices, json_object_get(doc, "choices")) == -1)
		return -1;
	if (!json_is_object(last)) {
		printf("\nno decision was made for this device yet\n");
		return 0;
	}
	if ((created = dmctl_value_text(json_object_get(last, "created"), DMCTL_COL_TIME)) == NULL)
		return -1;
	printf("\nLAST DECISION %s at %s\n", dmctl_str(last, "id"), created);
	free(created);
	if (dmctl_table(installed, json_object_get(last, "install")) == -1)
		return -1;
	if (json_array_size(json_object_get(last, "remove")) > 0) {
		printf("removed:");
		json_array_foreach(json_object_get(last, "remove"), i, v)
		    printf(" %s/%s", dmctl_str(v, "vendor"), dmctl_str(v, "name"));
		printf("\n");
	}
	if ((diff = dmctl_explain_diff(json_object_get(doc, "choices"),
	                               json_object_get(last, "install"))) == NULL)
		return -1;
	if (json_array_size(diff) == 0)
		printf("\nexplain agrees with the last decision\n");
	else {
		printf("\nexplain differs from the last decision:\n");
		json_array_foreach(diff, i, v) printf("  %s\n", json_string_value(v));
	}
	json_decref(diff);
	return 0;
}

/* A DM id as cdcs-pss takes it (it goes into the URL). */
static int dmctl_policy_dm_id(const char *s)
{
	if (dmctl_valid_id(s, 1, 128, DMCTL_DM_ID_EXTRA))
		return DMCTL_EXIT_OK;
	return dmctl_usage_error(dmctl_policy_usage,
	                         "not a DM id (1-128 of A-Z a-z 0-9 . _ : -):", s);
}

static int dmctl_policy_explain(const struct dmctl_opts *opts, const char *dm_id)
{
	char path[256];
	json_t *out = NULL;
	int status;

	if ((status = dmctl_policy_dm_id(dm_id)) != DMCTL_EXIT_OK)
		return status;
	snprintf(path, sizeof(path), "/v1/admin/policy/explain/%s", dm_id);
	status = dmctl_api_once_role(opts, "cdcs-pss", "GET", path, NULL, &out);
	return dmctl_done(opts, status, out, dmctl_explain_print);
}

int dmctl_explain_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	if (dmctl_want_help(argc, argv, dmctl_policy_usage))
		return DMCTL_EXIT_OK;
	if (argc != 1)
		return dmctl_usage_error(dmctl_policy_usage,
		                         "explain: exactly one DM_ID is required", NULL);
	return dmctl_policy_explain(opts, argv[0]);
}

int dmctl_policy_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	char path[256];
	json_t *out = NULL, *rule;
	int status;

	if (dmctl_want_help(argc, argv, dmctl_policy_usage))
		return DMCTL_EXIT_OK;
	if (argc == 2 && strcmp(argv[0], "add") == 0) {
		if ((rule = dmctl_rule_read(argv[1])) == NULL)
			return DMCTL_EXIT_USAGE;
		status = dmctl_api_once_role(opts, "cdcs-pss", "POST", "/v1/admin/policy/rules",
		                             rule, &out);
		return dmctl_done(opts, status, out, dmctl_rule_print);
	}
	if (argc == 1 && strcmp(argv[0], "list") == 0) {
		status = dmctl_api_once_role(opts, "cdcs-pss", "GET", "/v1/admin/policy/rules",
		                             NULL, &out);
		return dmctl_done(opts, status, out, dmctl_rules_print);
	}
	if (argc == 2 && strcmp(argv[0], "rm") == 0) {
		if (!dmctl_name_ok(argv[1]))
			return dmctl_usage_error(
			    dmctl_policy_usage,
			    "not a rule name (1-64 of A-Z a-z 0-9 . _ -):", argv[1]);
		snprintf(path, sizeof(path), "/v1/admin/policy/rules/%s", argv[1]);
		status = dmctl_api_once_role(opts, "cdcs-pss", "DELETE", path, NULL, &out);
		if ((status = dmctl_done(opts, status, out, NULL)) == DMCTL_EXIT_OK && !opts->json)
			printf("rule %s: deleted\n", argv[1]);
		return status;
	}
	if (argc == 2 && strcmp(argv[0], "device") == 0) {
		if ((status = dmctl_policy_dm_id(argv[1])) != DMCTL_EXIT_OK)
			return status;
		snprintf(path, sizeof(path), "/v1/admin/devices/%s", argv[1]);
		status = dmctl_api_once_role(opts, "cdcs-pss", "GET", path, NULL, &out);
		return dmctl_done(opts, status, out, dmctl_policy_device_print);
	}
	if (argc == 2 && strcmp(argv[0], "explain") == 0)
		return dmctl_policy_explain(opts, argv[1]);
	return dmctl_usage_error(
	    dmctl_policy_usage,
	    "policy: expected add FILE|-, list, rm NAME, device DM_ID or explain DM_ID", NULL);
}
