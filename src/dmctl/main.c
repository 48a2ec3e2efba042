/* dmctl: the opendm operator tool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "opendm/log.h"
#include "opendm/version.h"
#include "dmctl.h"

static void dmctl_usage(FILE *f)
{
	fprintf(f,
	        "usage: dmctl [-c config] [--json] command [args] [--json]\n"
	        "\n"
	        "commands:\n"
	        "  subscriber add|suspend|activate|show ACCOUNT, subscriber list\n"
	        "                                    subscribers (dm-mss)\n"
	        "  code issue ACCOUNT [--ttl S]      issue an activation code (dm-mss)\n"
	        "  cpe add|activate|deactivate|show CN [ACCOUNT], cpe list [--account A]\n"
	        "                                    subscribers' CPEs (dm-mss)\n"
	        "  device list|show|revoke|history [ID]\n"
	        "                                    devices and their history (every daemon)\n"
	        "  offline-bundle --hw-id ID ...     make an offline installation bundle\n"
	        "  entitlement set|show ACCOUNT ...  entitlement levels of an account (cdcs-pss)\n"
	        "  policy add|list|rm|device|explain ...\n"
	        "                                    CDCS policy rules and decisions (cdcs-pss)\n"
	        "  explain DM_ID                     why a device gets its CDCSs (cdcs-pss)\n"
	        "  campaign create|list|show|advance|pause|resume|stop|archive\n"
	        "                                    staged switches between CDCSs (cdcs-pss)\n"
	        "  cdcs publish|register|withdraw|retire|list|revoke|revoke-key|revocations\n"
	        "                                    the CDCS catalogue (cdcs-mss)\n"
	        "  audit [--role ROLE] ...           the audit log of the daemons\n"
	        "  health [ROLE...]                  show the health of the head-end daemons\n"
	        "  pki init|operator ...             development PKI and operator certificates\n"
	        "  agent-package --binary PATH ...   sign and lay out a DM agent package\n"
	        "  content encrypt --keys FILE ...   protected content for a sample CA/DRM system\n"
	        "  version                           print the version\n"
	        "\n"
	        "'dmctl COMMAND --help' describes each command. Output is a table by default;\n"
	        "--json (before or after the command) prints the daemon's JSON answer instead.\n"
	        "\n"
	        "The config (default $DMCTL_CONFIG, else /etc/opendm/dmctl.json) names the\n"
	        "operator certificate and each daemon's URL. Errors are one line on stderr,\n"
	        "'dmctl: CODE: message'. Exit status:\n"
	        "  0  success\n"
	        "  1  the daemon refused or the operation failed\n"
	        "  2  usage, malformed input or configuration error (nothing was sent)\n"
	        "  3  a daemon could not be reached\n"
	        "  4  forbidden: not an operator, or without the role the action needs (HTTP 403)\n"
	        "  5  not found: no such subscriber, device, campaign... (HTTP 404)\n");
}

static int dmctl_health(const struct dmctl_opts *opts, int argc, char **argv)
{
	return dmctl_health_main(opts, argc, argv);
}

static int dmctl_pki(const struct dmctl_opts *opts, int argc, char **argv)
{
	return dmctl_pki_main(argc, argv);
}

static int dmctl_version(const struct dmctl_opts *opts, int argc, char **argv)
{
	printf("dmctl %s\n", OPENDM_VERSION);
	return DMCTL_EXIT_OK;
}

static const struct dmctl_cmd {
	const char *name;
	int (*fn)(const struct dmctl_opts *, int, char **);
} dmctl_cmds[] = {
    {"agent-package", dmctl_agent_package_main},
    {"audit", dmctl_audit_main},
    {"campaign", dmctl_campaign_main},
    {"cdcs", dmctl_cdcs_main},
    {"code", dmctl_code_main},
    {"cpe", dmctl_cpe_main},
    {"content", dmctl_content_main},
    {"device", dmctl_device_main},
    {"entitlement", dmctl_entitlement_main},
    {"explain", dmctl_explain_main},
    {"health", dmctl_health},
    {"offline-bundle", dmctl_offline_bundle_main},
    {"policy", dmctl_policy_main},
    {"subscriber", dmctl_subscriber_main},
    {"pki", dmctl_pki},
    {"version", dmctl_version},
    {NULL, NULL},
};

/* --json is global but also accepted anywhere after the command: take it out of the
 * command's arguments (argv is ours to reorder). Returns the new argc. */
static int dmctl_take_json(struct dmctl_opts *opts, int argc, char **argv)
{
	int i, n = 0;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			opts->json = 1;
		else
			argv[n++] = argv[i];
	}
	return n;
}

int main(int argc, char **argv)
{
	struct dmctl_opts opts;
	const struct dmctl_cmd *c;
	int i, n, status;

	memset(&opts, 0, sizeof(opts));
	opts.config = getenv("DMCTL_CONFIG");
	if (opts.config == NULL)
		opts.config = "/etc/opendm/dmctl.json";
	log_init("dmctl", LOG_LVL_WARN);

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			opts.config = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			opts.json = 1;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			dmctl_usage(stdout);
			return DMCTL_EXIT_OK;
		} else {
			fprintf(stderr, "dmctl: usage: unknown option '%s' (see 'dmctl --help')\n",
			        argv[i]);
			return DMCTL_EXIT_USAGE;
		}
	}
	if (i == argc) {
		fprintf(stderr, "dmctl: usage: a command is required (see 'dmctl --help')\n");
		return DMCTL_EXIT_USAGE;
	}
	for (c = dmctl_cmds; c->name != NULL; c++)
		if (strcmp(c->name, argv[i]) == 0)
			break;
	if (c->name == NULL) {
		fprintf(stderr, "dmctl: usage: unknown command '%s' (see 'dmctl --help')\n",
		        argv[i]);
		return DMCTL_EXIT_USAGE;
	}
	n = dmctl_take_json(&opts, argc - i - 1, argv + i + 1);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "dmctl: curl: cannot initialise libcurl\n");
		return DMCTL_EXIT_FAIL;
	}
	status = c->fn(&opts, n, argv + i + 1);
	curl_global_cleanup();
	return status;
}
