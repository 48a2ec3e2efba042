/* dmctl subscriber: create, suspend, reactivate, list and show subscriber accounts (dm-mss). */
#include <stdio.h>
#include <string.h>

#include "dmctl.h"

static const char dmctl_subscriber_usage[] =
    "usage: dmctl [-c config] [--json] subscriber add ACCOUNT [--device-limit N]\n"
    "       dmctl [-c config] [--json] subscriber suspend ACCOUNT\n"
    "       dmctl [-c config] [--json] subscriber activate ACCOUNT\n"
    "       dmctl [-c config] [--json] subscriber list\n"
    "       dmctl [-c config] [--json] subscriber show ACCOUNT\n"
    "\n"
    "add creates the account (default device limit 3, at most 1000 devices); suspend\n"
    "refuses its downloads until activate. list shows every account with its number of\n"
    "devices and CPEs; show one account with its devices' hardware ids and CPEs' CNs.\n"
    "ACCOUNT is 1-64 of A-Z a-z 0-9 . _ -. Asks dm-mss with the operator certificate\n"
    "(role subscribers for changes).\n";

static const struct dmctl_col dmctl_subscriber_cols[] = {
    {"ACCOUNT", "account", 0},         {"DEVICE_LIMIT", "device_limit", DMCTL_COL_RIGHT},
    {"STATUS", "status", 0},           {"DEVICES", "devices", DMCTL_COL_RIGHT},
    {"CPES", "cpes", DMCTL_COL_RIGHT}, {NULL, NULL, 0},
};

static const struct dmctl_col dmctl_subscriber_fields[] = {
    {"account", "account", 0}, {"device_limit", "device_limit", 0},
    {"status", "status", 0},   {"devices", "devices", 0},
    {"cpes", "cpes", 0},       {"device_ids", "device_ids", 0},
    {"cpe_cns", "cpe_cns", 0}, {NULL, NULL, 0},
};

/* add answers {"account","device_limit","status"}: the first three columns. */
static int dmctl_subscriber_added(const json_t *doc)
{
	static const struct dmctl_col cols[] = {
	    {"ACCOUNT", "account", 0},
	    {"DEVICE_LIMIT", "device_limit", DMCTL_COL_RIGHT},
	    {"STATUS", "status", 0},
	    {NULL, NULL, 0},
	};

	return dmctl_table_one(cols, doc);
}

static int dmctl_subscriber_list_print(const json_t *doc)
{
	return dmctl_table(dmctl_subscriber_cols, json_object_get(doc, "subscribers"));
}

static int dmctl_subscriber_show_print(const json_t *doc)
{
	return dmctl_fields(dmctl_subscriber_fields, doc);
}

static int dmctl_subscriber_status_print(const json_t *doc)
{
	printf("subscriber %s: %s\n", dmctl_str(doc, "account"), dmctl_str(doc, "status"));
	return 0;
}

static int dmctl_subscriber_add(const struct dmctl_opts *opts, int argc, char **argv)
{
	const char *account = NULL;
	long long limit = 3;
	json_t *out = NULL;
	int i, status;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--device-limit") == 0) {
			if (i + 1 == argc || dmctl_parse_int(argv[++i], 1, 1000, &limit) == -1)
				return dmctl_usage_error(dmctl_subscriber_usage,
				                         "--device-limit wants 1..1000, not",
				                         i < argc ? argv[i] : "");
		} else if (account == NULL && argv[i][0] != '-')
			account = argv[i];
		else
			return dmctl_usage_error(dmctl_subscriber_usage, "unexpected argument",
			                         argv[i]);
	}
	if (account == NULL || !dmctl_account_ok(account))
		return dmctl_usage_error(dmctl_subscriber_usage,
		                         "an ACCOUNT of 1-64 of A-Z a-z 0-9 . _ - is required, not",
		                         account != NULL ? account : "");
	status = dmctl_api_once(
	    opts, "POST", "/v1/admin/subscribers",
	    json_pack("{s:s, s:I}", "account", account, "device_limit", (json_int_t)limit), &out);
	return dmctl_done(opts, status, out, dmctl_subscriber_added);
}

/* The one ACCOUNT argument of suspend, activate and show; NULL after a usage message. */
static const char *dmctl_subscriber_account(int argc, char **argv)
{
	if (argc != 1 || !dmctl_account_ok(argv[0])) {
		dmctl_usage_error(
		    dmctl_subscriber_usage,
		    "exactly one ACCOUNT of 1-64 of A-Z a-z 0-9 . _ - is required, not",
		    argc > 0 ? argv[0] : "");
		return NULL;
	}
	return argv[0];
}

static int dmctl_subscriber_status(const struct dmctl_opts *opts, const char *new_status, int argc,
                                   char **argv)
{
	const char *account = dmctl_subscriber_account(argc, argv);
	json_t *out = NULL;
	int status;

	if (account == NULL)
		return DMCTL_EXIT_USAGE;
	status =
	    dmctl_api_once(opts, "POST", "/v1/admin/subscribers/status",
	                   json_pack("{s:s, s:s}", "account", account, "status", new_status), &out);
	return dmctl_done(opts, status, out, dmctl_subscriber_status_print);
}

static int dmctl_subscriber_show(const struct dmctl_opts *opts, int argc, char **argv)
{
	const char *account = dmctl_subscriber_account(argc, argv);
	char path[128];
	json_t *out = NULL;
	int status;

	if (account == NULL)
		return DMCTL_EXIT_USAGE;
	snprintf(path, sizeof(path), "/v1/admin/subscribers/%s", account);
	status = dmctl_api_once(opts, "GET", path, NULL, &out);
	return dmctl_done(opts, status, out, dmctl_subscriber_show_print);
}

int dmctl_subscriber_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	json_t *out = NULL;
	int status;

	if (dmctl_want_help(argc, argv, dmctl_subscriber_usage))
		return DMCTL_EXIT_OK;
	if (argc < 1)
		return dmctl_usage_error(dmctl_subscriber_usage, "subscriber: missing action",
		                         NULL);
	if (strcmp(argv[0], "add") == 0)
		return dmctl_subscriber_add(opts, argc - 1, argv + 1);
	if (strcmp(argv[0], "suspend") == 0)
		return dmctl_subscriber_status(opts, "suspended", argc - 1, argv + 1);
	if (strcmp(argv[0], "activate") == 0)
		return dmctl_subscriber_status(opts, "active", argc - 1, argv + 1);
	if (strcmp(argv[0], "show") == 0)
		return dmctl_subscriber_show(opts, argc - 1, argv + 1);
	if (strcmp(argv[0], "list") == 0) {
		if (argc != 1)
			return dmctl_usage_error(dmctl_subscriber_usage, "unexpected argument",
			                         argv[1]);
		status = dmctl_api_once(opts, "GET", "/v1/admin/subscribers", NULL, &out);
		return dmctl_done(opts, status, out, dmctl_subscriber_list_print);
	}
	return dmctl_usage_error(dmctl_subscriber_usage, "subscriber: unknown action", argv[0]);
}
