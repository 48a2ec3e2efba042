/* dmctl subscriber: create a subscriber account and suspend or reactivate it (dm-mss). */
#include <stdio.h>
#include <string.h>

#include "dmctl.h"

#define DMCTL_ACCOUNT_MAX 64

static const char dmctl_subscriber_usage[] =
    "usage: dmctl [-c config] [--json] subscriber add ACCOUNT [--device-limit N]\n"
    "       dmctl [-c config] [--json] subscriber suspend ACCOUNT\n"
    "       dmctl [-c config] [--json] subscriber activate ACCOUNT\n"
    "\n"
    "add creates the account (default device limit 3, at most 1000 devices); suspend\n"
    "refuses its downloads until activate. Asks dm-mss with the operator certificate.\n";

static void dmctl_subscriber_print(const json_t *doc)
{
	printf("%-24s %-13s %s\n", "ACCOUNT", "DEVICE_LIMIT", "STATUS");
	printf("%-24s %-13lld %s\n", json_string_value(json_object_get(doc, "account")),
	       (long long)json_integer_value(json_object_get(doc, "device_limit")),
	       json_string_value(json_object_get(doc, "status")));
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
	if (account == NULL || strlen(account) > DMCTL_ACCOUNT_MAX)
		return dmctl_usage_error(dmctl_subscriber_usage,
		                         "an ACCOUNT of 1-64 characters is required", NULL);
	status = dmctl_api_once(
	    opts, "POST", "/v1/admin/subscribers",
	    json_pack("{s:s, s:I}", "account", account, "device_limit", (json_int_t)limit), &out);
	if (status == DMCTL_EXIT_OK) {
		if (opts->json)
			status = dmctl_print_json(out);
		else
			dmctl_subscriber_print(out);
	}
	json_decref(out);
	return status;
}

static int dmctl_subscriber_status(const struct dmctl_opts *opts, const char *new_status, int argc,
                                   char **argv)
{
	json_t *out = NULL;
	int status;

	if (argc != 1 || argv[0][0] == '-' || strlen(argv[0]) > DMCTL_ACCOUNT_MAX)
		return dmctl_usage_error(dmctl_subscriber_usage,
		                         "exactly one ACCOUNT of 1-64 characters is required",
		                         NULL);
	status =
	    dmctl_api_once(opts, "POST", "/v1/admin/subscribers/status",
	                   json_pack("{s:s, s:s}", "account", argv[0], "status", new_status), &out);
	if (status != DMCTL_EXIT_OK)
		goto out;
	if (opts->json)
		status = dmctl_print_json(out);
	else
		printf("subscriber %s: %s\n", argv[0], new_status);
out:
	json_decref(out);
	return status;
}

int dmctl_subscriber_main(const struct dmctl_opts *opts, int argc, char **argv)
{
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
	return dmctl_usage_error(dmctl_subscriber_usage, "subscriber: unknown action", argv[0]);
}
