/* dmctl cpe: register a subscriber's CPE (set-top box), deactivate or reactivate it, list them
 * (dm-mss). */
#include <stdio.h>
#include <string.h>

#include "dmctl.h"

static const char dmctl_cpe_usage[] =
    "usage: dmctl [-c config] [--json] cpe add CN ACCOUNT\n"
    "       dmctl [-c config] [--json] cpe deactivate CN\n"
    "       dmctl [-c config] [--json] cpe activate CN\n"
    "       dmctl [-c config] [--json] cpe show CN\n"
    "       dmctl [-c config] [--json] cpe list [--account ACCOUNT]\n"
    "\n"
    "CN is the CN of the CPE's certificate (from the CPE CA). add registers the CPE to the\n"
    "subscriber ACCOUNT: devices paired with it may then install the DM agent with its\n"
    "pairing assertion instead of an activation code; deactivate refuses its assertions\n"
    "until activate. list shows every CPE, or those of one account. CN and ACCOUNT are\n"
    "1-64 of A-Z a-z 0-9 . _ -. Asks dm-mss with the operator certificate (role\n"
    "subscribers for changes).\n";

static const struct dmctl_col dmctl_cpe_cols[] = {
    {"CN", "cn", 0},         {"ACCOUNT", "account", 0},
    {"STATUS", "status", 0}, {"CREATED", "created_at", DMCTL_COL_TIME},
    {NULL, NULL, 0},
};

static int dmctl_cpe_print(const json_t *doc)
{
	return dmctl_table_one(dmctl_cpe_cols, doc);
}

static int dmctl_cpe_list_print(const json_t *doc)
{
	return dmctl_table(dmctl_cpe_cols, json_object_get(doc, "cpes"));
}

static int dmctl_cpe_status_print(const json_t *doc)
{
	printf("cpe %s: %s\n", dmctl_str(doc, "cn"), dmctl_str(doc, "status"));
	return 0;
}

static int dmctl_cpe_add(const struct dmctl_opts *opts, int argc, char **argv)
{
	json_t *out = NULL;
	int status;

	if (argc != 2 || !dmctl_name_ok(argv[0]) || !dmctl_account_ok(argv[1]))
		return dmctl_usage_error(
		    dmctl_cpe_usage, "a CN and an ACCOUNT (1-64 of A-Z a-z 0-9 . _ -) are required",
		    NULL);
	status = dmctl_api_once(opts, "POST", "/v1/admin/cpes",
	                        json_pack("{s:s, s:s}", "cn", argv[0], "account", argv[1]), &out);
	return dmctl_done(opts, status, out, dmctl_cpe_print);
}

/* One CN: set its status (activate, deactivate) or, new_status NULL, show it. */
static int dmctl_cpe_one(const struct dmctl_opts *opts, const char *new_status, int argc,
                         char **argv)
{
	char path[128];
	json_t *out = NULL;
	int status;

	/* The CN goes into the URL: only the characters dm-mss accepts, so no escaping. */
	if (argc != 1 || !dmctl_name_ok(argv[0]))
		return dmctl_usage_error(dmctl_cpe_usage,
		                         "exactly one CN (1-64 of A-Z a-z 0-9 . _ -) is required",
		                         NULL);
	if (new_status == NULL) {
		snprintf(path, sizeof(path), "/v1/admin/cpes/%s", argv[0]);
		status = dmctl_api_once(opts, "GET", path, NULL, &out);
		return dmctl_done(opts, status, out, dmctl_cpe_print);
	}
	status = dmctl_api_once(opts, "POST", "/v1/admin/cpes/status",
	                        json_pack("{s:s, s:s}", "cn", argv[0], "status", new_status), &out);
	return dmctl_done(opts, status, out, dmctl_cpe_status_print);
}

static int dmctl_cpe_list(const struct dmctl_opts *opts, int argc, char **argv)
{
	char path[256] = "/v1/admin/cpes";
	const char *account = NULL;
	json_t *out = NULL;
	int i, status;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--account") != 0)
			return dmctl_usage_error(dmctl_cpe_usage, "unexpected argument", argv[i]);
		if (dmctl_opt_value(argc, argv, &i, dmctl_cpe_usage, &account) == -1)
			return DMCTL_EXIT_USAGE;
		if (!dmctl_account_ok(account))
			return dmctl_usage_error(dmctl_cpe_usage,
			                         "--account wants 1-64 of A-Z a-z 0-9 . _ -, not",
			                         account);
	}
	if (dmctl_query_add(path, sizeof(path), "account", account) == -1)
		return dmctl_usage_error(dmctl_cpe_usage, "query too long", NULL);
	status = dmctl_api_once(opts, "GET", path, NULL, &out);
	return dmctl_done(opts, status, out, dmctl_cpe_list_print);
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
	if (strcmp(argv[0], "list") == 0)
		return dmctl_cpe_list(opts, argc - 1, argv + 1);
	return dmctl_usage_error(dmctl_cpe_usage, "cpe: unknown action", argv[0]);
}
