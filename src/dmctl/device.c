/* dmctl device: show a recorded device or revoke it (dm-mss). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmctl.h"

/* docs/protocol.md: a hardware id is 4-64 characters of A-Z a-z 0-9 . _ : - (safe in a path). */
#define DMCTL_HW_ID_EXTRA "._:-"

static const char dmctl_device_usage[] =
    "usage: dmctl [-c config] [--json] device show HW_ID\n"
    "       dmctl [-c config] [--json] device revoke HW_ID\n"
    "\n"
    "show prints what dm-mss recorded about the device; revoke refuses it any further\n"
    "download or personalization.\n";

static void dmctl_device_print(const json_t *doc)
{
	static const char *const keys[] = {"hw_id", "account", "platform", "status", NULL};
	const json_t *v;
	char *cap;
	size_t i;

	for (i = 0; keys[i] != NULL; i++) {
		v = json_object_get(doc, keys[i]);
		printf("%-12s %s\n", keys[i], json_is_string(v) ? json_string_value(v) : "-");
	}
	printf("%-12s %lld\n", "created_at",
	       (long long)json_integer_value(json_object_get(doc, "created_at")));
	cap = json_dumps(json_object_get(doc, "capability"), JSON_COMPACT | JSON_SORT_KEYS);
	printf("%-12s %s\n", "capability", cap != NULL ? cap : "-");
	free(cap);
}

int dmctl_device_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	char path[128];
	json_t *out = NULL;
	int status;

	if (dmctl_want_help(argc, argv, dmctl_device_usage))
		return DMCTL_EXIT_OK;
	if (argc != 2 || (strcmp(argv[0], "show") != 0 && strcmp(argv[0], "revoke") != 0))
		return dmctl_usage_error(dmctl_device_usage, "device: expected show|revoke HW_ID",
		                         NULL);
	if (!dmctl_valid_id(argv[1], 4, 64, DMCTL_HW_ID_EXTRA))
		return dmctl_usage_error(
		    dmctl_device_usage,
		    "not a hardware id (4-64 of A-Z a-z 0-9 . _ : -):", argv[1]);
	if (strcmp(argv[0], "show") == 0) {
		snprintf(path, sizeof(path), "/v1/admin/devices/%s", argv[1]);
		status = dmctl_api_once(opts, "GET", path, NULL, &out);
	} else
		status = dmctl_api_once(opts, "POST", "/v1/admin/devices/revoke",
		                        json_pack("{s:s}", "hw_id", argv[1]), &out);
	if (status != DMCTL_EXIT_OK)
		goto out;
	if (opts->json)
		status = dmctl_print_json(out);
	else if (strcmp(argv[0], "show") == 0)
		dmctl_device_print(out);
	else
		printf("device %s: revoked\n", argv[1]);
out:
	json_decref(out);
	return status;
}
