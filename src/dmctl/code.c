/* dmctl code: issue a one-time activation code for a subscriber (dm-mss). */
#include <stdio.h>
#include <string.h>

#include "dmctl.h"

#define DMCTL_CODE_TTL_MAX (90LL * 86400)

static const char dmctl_code_usage[] =
    "usage: dmctl [-c config] [--json] code issue ACCOUNT [--ttl SECONDS]\n"
    "\n"
    "Prints a new single-use activation code for ACCOUNT, valid for SECONDS (default\n"
    "86400). dm-mss keeps only its hash: it cannot be shown again. With --json:\n"
    "{\"code\", \"expires_at\"}.\n";

static int dmctl_code_issue(const struct dmctl_opts *opts, int argc, char **argv)
{
	const char *account = NULL;
	long long ttl = 86400;
	json_t *out = NULL;
	const char *code;
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
	if (account == NULL || strlen(account) > 64)
		return dmctl_usage_error(dmctl_code_usage,
		                         "an ACCOUNT of 1-64 characters is required", NULL);
	status = dmctl_api_once(
	    opts, "POST", "/v1/admin/activation-codes",
	    json_pack("{s:s, s:I}", "account", account, "ttl_s", (json_int_t)ttl), &out);
	if (status != DMCTL_EXIT_OK)
		goto out;
	code = json_string_value(json_object_get(out, "code"));
	if (code == NULL) {
		fprintf(stderr, "dmctl: bad_response: no code in the answer\n");
		status = DMCTL_EXIT_FAIL;
		goto out;
	}
	if (opts->json)
		status = dmctl_print_json(out);
	else
		printf("%s\n", code);
out:
	json_decref(out);
	return status;
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
