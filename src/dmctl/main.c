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
	        "usage: dmctl [-c config] [--json] command [args]\n"
	        "\n"
	        "commands:\n"
	        "  pki init DIR                      create a development PKI in DIR\n"
	        "  health [ROLE...]                  show the health of the head-end daemons\n"
	        "  agent-package --binary PATH ...   sign and lay out a DM agent package\n"
	        "  subscriber add|suspend|activate ACCOUNT\n"
	        "                                    manage a subscriber (dm-mss)\n"
	        "  code issue ACCOUNT [--ttl S]      issue an activation code (dm-mss)\n"
	        "  cpe add|activate|deactivate|show CN [ACCOUNT]\n"
	        "                                    a subscriber's CPE (dm-mss)\n"
	        "  device show|revoke HW_ID          show or revoke a device (dm-mss)\n"
	        "  offline-bundle --hw-id ID ...     make an offline installation bundle\n"
	        "  entitlement set|show ACCOUNT ...  entitlement levels of an account (cdcs-pss)\n"
	        "  policy add|list|rm|device ...     CDCS policy rules and decisions (cdcs-pss)\n"
	        "  cdcs publish|register|withdraw|list\n"
	        "                                    the CDCS catalogue (cdcs-mss)\n"
	        "  content encrypt --keys FILE ...   protected content for a sample CA/DRM system\n"
	        "  version                           print the version\n"
	        "\n"
	        "'dmctl COMMAND --help' describes each command.\n"
	        "\n"
	        "The config (default $DMCTL_CONFIG, else /etc/opendm/dmctl.json) names the\n"
	        "operator certificate and each daemon's URL. Exit status: 0 success, 1 failure,\n"
	        "2 usage or configuration error, 3 a daemon could not be reached.\n");
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
    {"cdcs", dmctl_cdcs_main},
    {"code", dmctl_code_main},
    {"cpe", dmctl_cpe_main},
    {"content", dmctl_content_main},
    {"device", dmctl_device_main},
    {"entitlement", dmctl_entitlement_main},
    {"health", dmctl_health},
    {"offline-bundle", dmctl_offline_bundle_main},
    {"policy", dmctl_policy_main},
    {"subscriber", dmctl_subscriber_main},
    {"pki", dmctl_pki},
    {"version", dmctl_version},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
	struct dmctl_opts opts;
	const struct dmctl_cmd *c;
	int i, status;

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
			fprintf(stderr, "dmctl: unknown option %s\n", argv[i]);
			dmctl_usage(stderr);
			return DMCTL_EXIT_USAGE;
		}
	}
	if (i == argc) {
		dmctl_usage(stderr);
		return DMCTL_EXIT_USAGE;
	}
	for (c = dmctl_cmds; c->name != NULL; c++)
		if (strcmp(c->name, argv[i]) == 0)
			break;
	if (c->name == NULL) {
		fprintf(stderr, "dmctl: unknown command '%s'\n", argv[i]);
		dmctl_usage(stderr);
		return DMCTL_EXIT_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "dmctl: cannot initialise libcurl\n");
		return DMCTL_EXIT_FAIL;
	}
	status = c->fn(&opts, argc - i - 1, argv + i + 1);
	curl_global_cleanup();
	return status;
}
