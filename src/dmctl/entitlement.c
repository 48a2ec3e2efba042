/* dmctl entitlement: set and show the entitlement levels of a subscriber account (cdcs-pss). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmctl.h"

#define DMCTL_LEVEL_EXTRA "_-"

static const char dmctl_entitlement_usage[] =
    "usage: dmctl [-c config] [--json] entitlement set ACCOUNT LEVEL[,LEVEL...]\n"
    "       dmctl [-c config] [--json] entitlement show ACCOUNT\n"
    "\n"
    "set replaces the account's entitlement levels (e.g. basic,premium; \"\" clears them);\n"
    "cdcs-pss decides from them which CA/DRM clients the account's devices get. A level is\n"
    "1-32 characters of a-z 0-9 _ -. Asks cdcs-pss with the operator certificate (role\n"
    "subscribers for set).\n";

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

static int dmctl_entitlement_print(const json_t *doc)
{
	static const struct dmctl_col cols[] = {
	    {"ACCOUNT", "account", 0},
	    {"LEVELS", "levels", 0},
	    {NULL, NULL, 0},
	};

	return dmctl_table_one(cols, doc);
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
	if (!dmctl_account_ok(argv[1]))
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
	return dmctl_done(opts, status, out, dmctl_entitlement_print);
}
