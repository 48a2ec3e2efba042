/*
 * dmctl policy: the rules cdcs-pss decides with (add, list, rm) and what it decided for a
 * device (device), with the reasons it recorded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmctl.h"

#define DMCTL_RULE_MAX    (64 * 1024)
#define DMCTL_NAME_EXTRA  "._-"
#define DMCTL_DM_ID_EXTRA "._:-"

static const char dmctl_policy_usage[] =
    "usage: dmctl [-c config] [--json] policy add FILE|-\n"
    "       dmctl [-c config] [--json] policy list\n"
    "       dmctl [-c config] [--json] policy rm NAME\n"
    "       dmctl [-c config] [--json] policy device DM_ID\n"
    "\n"
    "add sends one rule (a JSON object, from FILE or standard input), e.g.\n"
    "  {\"name\":\"ca-hw\",\"priority\":10,\"entitlement\":\"basic\",\n"
    "   \"when\":{\"secure_video_path\":true,\"tee\":[\"trustzone\",\"sgx\"]},\n"
    "   \"vendor\":\"vendor-a\",\"cdcs\":\"sample-ca\",\"variant\":\"hw\",\"min_version\":1,\n"
    "   \"grants\":[\"basic\",\"premium\",\"uhd\"]}\n"
    "Rules apply in (priority, name) order; for each (vendor, cdcs) the first rule whose\n"
    "entitlement the account has and whose conditions the device meets wins. list shows\n"
    "them in that order; rm deletes one; device shows a device's CDCSs and its last\n"
    "decisions with their reasons. Asks cdcs-pss with the operator certificate.\n";

/* The rule in FILE ("-": standard input), at most DMCTL_RULE_MAX bytes; NULL after a message. */
static json_t *dmctl_rule_read(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *buf = NULL;
	json_error_t jerr;
	json_t *rule = NULL;
	size_t n;

	if (f == NULL) {
		perror(path);
		return NULL;
	}
	if ((buf = malloc(DMCTL_RULE_MAX + 1)) == NULL) {
		fprintf(stderr, "dmctl: out of memory\n");
		goto out;
	}
	n = fread(buf, 1, DMCTL_RULE_MAX + 1, f);
	if (ferror(f) || n > DMCTL_RULE_MAX) {
		fprintf(stderr, "dmctl: %s: %s\n", path,
		        ferror(f) ? "cannot read" : "larger than 64 KiB");
		goto out;
	}
	if ((rule = json_loadb(buf, n, 0, &jerr)) == NULL || !json_is_object(rule)) {
		fprintf(stderr, "dmctl: %s: %s\n", path,
		        rule == NULL ? jerr.text : "a rule is a JSON object");
		json_decref(rule);
		rule = NULL;
	}
out:
	free(buf);
	if (f != stdin)
		fclose(f);
	return rule;
}

static void dmctl_strlist_print(const json_t *list)
{
	const json_t *v;
	size_t i;

	if (json_array_size(list) == 0)
		printf("-");
	json_array_foreach(list, i, v) printf("%s%s", i > 0 ? "," : "", json_string_value(v));
}

static void dmctl_rule_print(const json_t *r)
{
	char *when = json_dumps(json_object_get(r, "when"), JSON_COMPACT | JSON_SORT_KEYS);

	printf("%-20s %8lld %-12s %s/%s %s min %lld grants ",
	       json_string_value(json_object_get(r, "name")),
	       (long long)json_integer_value(json_object_get(r, "priority")),
	       json_string_value(json_object_get(r, "entitlement")),
	       json_string_value(json_object_get(r, "vendor")),
	       json_string_value(json_object_get(r, "cdcs")),
	       json_string_value(json_object_get(r, "variant")),
	       (long long)json_integer_value(json_object_get(r, "min_version")));
	dmctl_strlist_print(json_object_get(r, "grants"));
	printf(" when %s\n", when != NULL ? when : "?");
	free(when);
}

static void dmctl_rules_print(const json_t *doc)
{
	const json_t *rules = json_object_get(doc, "rules"), *r;
	size_t i;

	printf("%-20s %8s %-12s %s\n", "NAME", "PRIORITY", "ENTITLEMENT", "CDCS");
	json_array_foreach(rules, i, r) dmctl_rule_print(r);
}

/* The text of a string member, or "-" when it is null or absent. */
static const char *dmctl_str(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL ? v : "-";
}

/* A multi-line text, each line indented. */
static void dmctl_indented(const char *text)
{
	const char *nl;

	for (; (nl = strchr(text, '\n')) != NULL; text = nl + 1)
		printf("  %.*s\n", (int)(nl - text), text);
	printf("  %s\n", text);
}

static void dmctl_policy_device_print(const json_t *doc)
{
	const json_t *cdcs = json_object_get(doc, "cdcs");
	const json_t *decisions = json_object_get(doc, "decisions"), *v;
	char slot[2 * 64 + 2];
	size_t i;

	printf("%s\n\n%-28s %-8s %7s %-12s %-30s %s\n", dmctl_str(doc, "dm_id"), "CDCS", "VARIANT",
	       "VERSION", "STATE", "CDCS_ID", "SOURCE");
	json_array_foreach(cdcs, i, v)
	{
		snprintf(slot, sizeof(slot), "%s/%s", dmctl_str(v, "vendor"), dmctl_str(v, "name"));
		printf("%-28s %-8s %7lld %-12s %-30s %s\n", slot, dmctl_str(v, "variant"),
		       (long long)json_integer_value(json_object_get(v, "version_number")),
		       dmctl_str(v, "state"), dmctl_str(v, "cdcs_id"), dmctl_str(v, "source"));
		if (json_is_string(json_object_get(v, "error")))
			printf("  error: %s\n", dmctl_str(v, "error"));
	}
	printf("\nDECISIONS (newest first)\n");
	json_array_foreach(decisions, i, v)
	{
		printf("%s at %lld:\n", dmctl_str(v, "id"),
		       (long long)json_integer_value(json_object_get(v, "created")));
		dmctl_indented(dmctl_str(v, "reason"));
	}
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
	} else if (argc == 1 && strcmp(argv[0], "list") == 0)
		status = dmctl_api_once_role(opts, "cdcs-pss", "GET", "/v1/admin/policy/rules",
		                             NULL, &out);
	else if (argc == 2 && strcmp(argv[0], "rm") == 0) {
		if (!dmctl_valid_id(argv[1], 1, 64, DMCTL_NAME_EXTRA))
			return dmctl_usage_error(
			    dmctl_policy_usage,
			    "not a rule name (1-64 of A-Z a-z 0-9 . _ -):", argv[1]);
		snprintf(path, sizeof(path), "/v1/admin/policy/rules/%s", argv[1]);
		status = dmctl_api_once_role(opts, "cdcs-pss", "DELETE", path, NULL, &out);
	} else if (argc == 2 && strcmp(argv[0], "device") == 0) {
		if (!dmctl_valid_id(argv[1], 1, 128, DMCTL_DM_ID_EXTRA))
			return dmctl_usage_error(
			    dmctl_policy_usage,
			    "not a DM id (1-128 of A-Z a-z 0-9 . _ : -):", argv[1]);
		snprintf(path, sizeof(path), "/v1/admin/devices/%s", argv[1]);
		status = dmctl_api_once_role(opts, "cdcs-pss", "GET", path, NULL, &out);
	} else
		return dmctl_usage_error(
		    dmctl_policy_usage,
		    "policy: expected add FILE|-, list, rm NAME or device DM_ID", NULL);
	if (status != DMCTL_EXIT_OK)
		goto out;
	if (opts->json)
		status = dmctl_print_json(out);
	else if (strcmp(argv[0], "add") == 0) {
		printf("%-20s %8s %-12s %s\n", "NAME", "PRIORITY", "ENTITLEMENT", "CDCS");
		dmctl_rule_print(out);
	} else if (strcmp(argv[0], "list") == 0)
		dmctl_rules_print(out);
	else if (strcmp(argv[0], "rm") == 0)
		printf("rule %s: deleted\n", argv[1]);
	else
		dmctl_policy_device_print(out);
out:
	json_decref(out);
	return status;
}
