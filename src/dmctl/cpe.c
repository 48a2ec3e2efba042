/* dmctl cpe: register a subscriber's CPE (set-top box), deactivate or reactivate it (dm-mss). */
#include <stdio.h>
#include <string.h>

#include "dmctl.h"

#define DMCTL_CPE_CN_MAX  64
#define DMCTL_ACCOUNT_MAX 64

static const char dmctl_cpe_usage[] =
    "usage: dmctl [-c config] [--json] cpe add CN ACCOUNT\n"
    "       dmctl [-c config] [--json] cpe deactivate CN\n"
    "       dmctl [-c config] [--json] cpe activate CN\n"
    "       dmctl [-c config] [--json] cpe show CN\n"
    "\n"
    "CN is the CN of the CPE's certificate (from the CPE CA). add registers the CPE to the\n"
    "subscriber ACCOUNT: devices paired with it may then install the DM agent with its\n"
    "pairing assertion instead of an activation code; deactivate refuses its assertions\n"
    "until activate. Asks dm-mss with the operator certificate.\n";

static void dmctl_cpe_print(const json_t *doc)
{
	printf("%-24s %-24s %s\n", "CN", "ACCOUNT", "STATUS");
	printf("%-24s %-24s %s\n", json_string_value(json_object_get(doc, "cn")),
	       json_string_value(json_object_get(doc, "account")),
	       json_string_value(json_object_get(doc, "status")));
}

static int dmctl_cpe_cn_ok(const char *cn)
{
	return dmctl_valid_id(cn, 1, DMCTL_CPE_CN_MAX, "._-");
}

/* Print a daemon's answer as --json asked, else with print (NULL: one status line). */
static int dmctl_cpe_done(const struct dmctl_opts *opts, int status, json_t *out,
                          void (*print)(const json_t *))
{
	if (status == DMCTL_EXIT_OK) {
		if (opts->json)
			status = dmctl_print_json(out);
		else if (print != NULL)
			print(out);
		else
			printf("cpe %s: %s\n", json_string_value(json_object_get(out, "cn")),
			       json_string_value(json_object_get(out, "status")));
	}
	json_decref(out);
	return status;
}

static int dmctl_cpe_add(const struct dmctl_opts *opts, int argc, char **argv)
{
	json_t *out = NULL;
	int status;

	if (argc != 2 || !dmctl_cpe_cn_ok(argv[0]) ||
	    !dmctl_valid_id(argv[1], 1, DMCTL_ACCOUNT_MAX, "._-"))
		return dmctl_usage_error(
		    dmctl_cpe_usage, "a CN and an ACCOUNT (1-64 of A-Z a-z 0-9 . _ -) are required",
		    NULL);
	status = dmctl_api_once(opts, "POST", "/v1/admin/cpes",
	                        json_pack("{s:s, s:s}", "cn", argv[0], "account", argv[1]), &out);
	return dmctl_cpe_done(opts, status, out, dmctl_cpe_print);
}

/* One CN: set its status (activate, deactivate) or, new_status NULL, show it. */
static int dmctl_cpe_one(const struct dmctl_opts *opts, const char *new_status, int argc,
                         char **argv)
{
	char path[128];
	json_t *out = NULL;
	int status;

	/* The CN goes into the URL: only the characters dm-mss accepts, so no escaping. */
	if (argc != 1 || !dmctl_cpe_cn_ok(argv[0]))
		return dmctl_usage_error(dmctl_cpe_usage,
		                         "exactly one CN (1-64 of A-Z a-z 0-9 . _ -) is required",
		                         NULL);
	if (new_status == NULL) {
		snprintf(path, sizeof(path), "/v1/admin/cpes/%s", argv[0]);
		status = dmctl_api_once(opts, "GET", path, NULL, &out);
		return dmctl_cpe_done(opts, status, out, dmctl_cpe_print);
	}
	status = dmctl_api_once(opts, "POST", "/v1/admin/cpes/status",
	                        json_pack("{s:s, s:s}", "cn", argv[0], "status", new_status), &out);
	return dmctl_cpe_done(opts, status, out, NULL);
}

int dmctl_cpe_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	if (dmctl_want_help(argc, argv, dmctl_cpe_usage))
		return DMCTL_EXIT_OK;
	if (argc < 1)
		return dmctl_usage_error(dmctl_cpe_usage, "cpe: missing action", NULL);
	if (strcmp(argv[0], "add") == 0)
		return dmctl_cpe_add(opts, argc - 1, argv + 1);
	if (strcmp(argv[0], "deactivate") == 0)
		return dmctl_cpe_one(opts, "inactive", argc - 1, argv + 1);
	if (strcmp(argv[0], "activate") == 0)
		return dmctl_cpe_one(opts, "active", argc - 1, argv + 1);
	if (strcmp(argv[0], "show") == 0)
		return dmctl_cpe_one(opts, NULL, argc - 1, argv + 1);
	return dmctl_usage_error(dmctl_cpe_usage, "cpe: unknown action", argv[0]);
}
