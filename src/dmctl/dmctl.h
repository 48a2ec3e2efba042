/* dmctl: the operator tool. Each command group lives in its own file. */
#ifndef DMCTL_H
#define DMCTL_H

#include <jansson.h>

#include <event2/event.h>

#include "opendm/httpc.h"
#include "opendm/tls.h"

/* Exit statuses every command uses. */
#define DMCTL_EXIT_OK      0
#define DMCTL_EXIT_FAIL    1 /* the operation failed or a daemon said no */
#define DMCTL_EXIT_USAGE   2 /* bad command line or configuration */
#define DMCTL_EXIT_UNREACH 3 /* a daemon could not be reached */

/* What dmctl needs to talk to the head-end: the operator's certificate and the endpoints. */
struct dmctl_conf {
	struct tls_conf tls;
	json_t *endpoints; /* {"dm-mss": "https://127.0.0.1:8443", ...} */
};

/* Global options, parsed before the command. */
struct dmctl_opts {
	const char *config; /* -c FILE */
	int json;           /* --json: machine-readable output */
};

/* Load and validate the dmctl config file. 0/-1, message on stderr naming file and key. */
int dmctl_conf_load(const char *path, struct dmctl_conf *conf);
void dmctl_conf_free(struct dmctl_conf *conf);

/* dmctl pki init DIR: create the development PKI of DESIGN.md §3. Returns an exit status. */
int dmctl_pki_main(int argc, char **argv);
/* dmctl health [ROLE...]: query GET /v1/health of the configured daemons. */
int dmctl_health_main(const struct dmctl_opts *opts, int argc, char **argv);

/* dmctl agent-package: sign and lay out a DM agent package (local, no daemon). */
int dmctl_agent_package_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl subscriber add|suspend|activate ACCOUNT (dm-mss). */
int dmctl_subscriber_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl cpe add CN ACCOUNT | activate|deactivate|show CN: a subscriber's CPE (dm-mss). */
int dmctl_cpe_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl code issue ACCOUNT [--ttl S]: a new activation code (dm-mss). */
int dmctl_code_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl device show|revoke HW_ID (dm-mss). */
int dmctl_device_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl offline-bundle: an offline installation bundle for one device (dm-mss). */
int dmctl_offline_bundle_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl content encrypt: protected content of a sample CA/DRM system (local). */
int dmctl_content_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl entitlement set|show ACCOUNT (cdcs-pss). */
int dmctl_entitlement_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl policy add|list|rm|device (cdcs-pss). */
int dmctl_policy_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl cdcs publish|register|withdraw|list: the CDCS catalogue (cdcs-mss). */
int dmctl_cdcs_main(const struct dmctl_opts *opts, int argc, char **argv);

/* A session with one configured daemon (api.c). */
struct dmctl_api {
	struct dmctl_conf conf;
	int loaded;
	struct event_base *base;
	struct httpc *c;
	const char *url; /* endpoints[role], borrowed from conf */
};

/* Load the config and connect-ready a client for endpoints[role]; max_response 0 = 1 MiB.
 * Returns an exit status (message printed). */
int dmctl_api_open(struct dmctl_api *a, const struct dmctl_opts *opts, const char *role,
                   size_t max_response);
void dmctl_api_close(struct dmctl_api *a);
/* method path (e.g. "/v1/admin/subscribers") with an optional JSON body. On a 2xx, *out is
 * the response (caller frees); otherwise an exit status and one stderr line: "dmctl: <code>:
 * <message>" from the daemon's error, or "dmctl: unreachable: ..." (exit 3). */
int dmctl_api_raw(struct dmctl_api *a, const char *method, const char *path, const json_t *body,
                  struct httpc_resp **out);
/* The same, for a JSON object answer (*out: new reference). */
int dmctl_api_call(struct dmctl_api *a, const char *method, const char *path, const json_t *body,
                   json_t **out);
/* One call to dm-mss; takes body (may be NULL only for GET; NULL for another method means an
 * allocation failed). */
int dmctl_api_once(const struct dmctl_opts *opts, const char *method, const char *path,
                   json_t *body, json_t **out);
/* The same with the daemon endpoints[role]; body may also be NULL for DELETE. */
int dmctl_api_once_role(const struct dmctl_opts *opts, const char *role, const char *method,
                        const char *path, json_t *body, json_t **out);

/* Small helpers shared by the commands (api.c). */
int dmctl_print_json(const json_t *doc);
/* 1 (usage printed on stdout) if -h/--help is among the arguments. */
int dmctl_want_help(int argc, char **argv, const char *usage);
/* Print "dmctl: what 'arg'" and the usage on stderr; returns DMCTL_EXIT_USAGE. */
int dmctl_usage_error(const char *usage, const char *what, const char *arg);
/* Decimal integer in [min, max]: 0/-1. */
int dmctl_parse_int(const char *s, long long min, long long max, long long *out);
/* 1 if s is min..max characters of [A-Za-z0-9] or a character in extra. */
int dmctl_valid_id(const char *s, size_t min, size_t max, const char *extra);

#endif
