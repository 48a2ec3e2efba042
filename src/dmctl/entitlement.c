/* dmctl entitlement: set and show the entitlement levels of a subscriber account (cdcs-pss). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmctl.h"

#define DMCTL_ACCOUNT_EXTRA "._-"
#define DMCTL_LEVEL_EXTRA   "_-"

static const char dmctl_entitlement_usage[] =
    "usage: dmctl [-c config] [--json] entitlement set ACCOUNT LEVEL[,LEVEL...]\n"
    "       dmctl [-c config] [--json] entitlement show ACCOUNT\n"
    "\n"
    "set replaces the account's entitlement levels (e.g. basic,premium; \"\" clears them);\n"
    "cdcs-pss decides from them which CA/DRM clients the account's devices get. A level is\n"
    "1-32 characters of a-z 0-9 _ -. Asks cdcs-pss with the operator certificate.\n";

/* "basic,premium" as a JSON array, each level checked; NULL after a usage message. */
static json_t *dmctl_levels_parse(const char *text)
{
	char *copy, *save = NULL, *lv;
	json_t *levels = json_array();

	if (levels == NULL || (copy = strdup(text)) == NULL) {
		fprintf(stderr, "dmctl: out of memory\n");
		json_decref(levels);
		return NULL;
	}
	for (lv = strtok_r(copy, ",", &save); lv != NULL; lv = strtok_r(NULL, ",", &save)) {
		if (!dmctl_valid_id(lv, 1, 32, DMCTL_LEVEL_EXTRA)) {
			dmctl_usage_error(dmctl_entitlement_usage,
			                  "not a level (1-32 of a-z 0-9 _ -):", lv);
			goto fail;
		}
		if (json_array_append_new(levels, json_string(lv)) == -1) {
			fprintf(stderr, "dmctl: out of memory\n");
			goto fail;
		}
	}
	free(copy);
	return levels;
fail:
	free(copy);
	json_decref(levels);
	return NULL;
}

static void dmctl_entitlement_print(const json_t *doc)
{
	const json_t *levels = json_object_get(doc, "levels"), *v;
	size_t i;

	printf("%-24s %s\n", "ACCOUNT", "LEVELS");
	printf("%-24s ", json_string_value(json_object_get(doc, "account")));
	if (json_array_size(levels) == 0)
		printf("-");
	json_array_foreach(levels, i, v) printf("%s%s", i > 0 ? "," : "", json_string_value(v));
	printf("\n");
}

int dmctl_entitlement_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	char path[128];
	json_t *out = NULL, *levels = NULL;
	int status, set;

	if (dmctl_want_help(argc, argv, dmctl_entitlement_usage))
		return DMCTL_EXIT_OK;
	set = argc == 3 && strcmp(argv[0], "set") == 0;
	if (!set && !(argc == 2 && strcmp(argv[0], "show") == 0))
		return dmctl_usage_error(dmctl_entitlement_usage,
		                         "entitlement: expected set ACCOUNT LEVELS or show ACCOUNT",
		                         NULL);
	if (!dmctl_valid_id(argv[1], 1, 64, DMCTL_ACCOUNT_EXTRA))
		return dmctl_usage_error(dmctl_entitlement_usage,
		                         "not an account (1-64 of A-Z a-z 0-9 . _ -):", argv[1]);
	snprintf(path, sizeof(path), "/v1/admin/entitlements/%s", argv[1]);
	if (set) {
		if ((levels = dmctl_levels_parse(argv[2])) == NULL)
			return DMCTL_EXIT_USAGE;
		status = dmctl_api_once_role(opts, "cdcs-pss", "PUT", path,
		                             json_pack("{s:o}", "levels", levels), &out);
	} else
		status = dmctl_api_once_role(opts, "cdcs-pss", "GET", path, NULL, &out);
	if (status == DMCTL_EXIT_OK) {
		if (opts->json)
			status = dmctl_print_json(out);
		else
			dmctl_entitlement_print(out);
	}
	json_decref(out);
	return status;
}
