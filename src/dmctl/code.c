/* dmctl code: issue a one-time activation code for a subscriber (dm-mss). */
#include <stdio.h>
#include <string.h>

#include "dmctl.h"

#define DMCTL_CODE_TTL_MAX (90LL * 86400)

static const char dmctl_code_usage[] =
    "usage: dmctl [-c config] [--json] code issue ACCOUNT [--ttl SECONDS]\n"
    "\n"
    "Prints a new single-use activation code for ACCOUNT, valid for SECONDS (default\n"
    "86400, at most 90 days). dm-mss keeps only its hash: it cannot be shown again. With\n"
    "--json: {\"code\", \"expires_at\"}. Needs the role subscribers.\n";

static int dmctl_code_print(const json_t *doc)
{
	const char *code = json_string_value(json_object_get(doc, "code"));

	if (code == NULL) {
		fprintf(stderr, "dmctl: bad_response: no code in the answer\n");
		return -1;
	}
	printf("%s\n", code);
	return 0;
}

static int dmctl_code_issue(const struct dmctl_opts *opts, int argc, char **argv)
{
	const char *account = NULL;
	long long ttl = 86400;
	json_t *out = NULL;
	int i, status;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--ttl") == 0) {
			if (i + 1 == argc ||
			    dmctl_parse_int(argv[++i], 1, DMCTL_CODE_TTL_MAX, &ttl) == -1)
				return dmctl_usage_error(dmctl_code_usage,
				                         "--ttl wants 1..7776000 seconds, not",
				                         i < argc ? argv[i] : "");
		} else if (account == NULL && argv[i][0] != '-')
			account = argv[i];
		else
			return dmctl_usage_error(dmctl_code_usage, "unexpected argument", argv[i]);
	}
	if (account == NULL || !dmctl_account_ok(account))
		return dmctl_usage_error(dmctl_code_usage,
		                         "an ACCOUNT of 1-64 of A-Z a-z 0-9 . _ - is required, not",
		                         account != NULL ? account : "");
	status = dmctl_api_once(
	    opts, "POST", "/v1/admin/activation-codes",
	    json_pack("{s:s, s:I}", "account", account, "ttl_s", (json_int_t)ttl), &out);
	return dmctl_done(opts, status, out, dmctl_code_print);
}

int dmctl_code_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	if (dmctl_want_help(argc, argv, dmctl_code_usage))
		return DMCTL_EXIT_OK;
	if (argc >= 1 && strcmp(argv[0], "issue") == 0)
		return dmctl_code_issue(opts, argc - 1, argv + 1);
	return dmctl_usage_error(dmctl_code_usage, "code: unknown or missing action",
	                         argc >= 1 ? argv[0] : NULL);
}
