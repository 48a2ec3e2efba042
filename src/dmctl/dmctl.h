/* dmctl: the operator tool. Each command group lives in its own file. */
#ifndef DMCTL_H
#define DMCTL_H

#include <jansson.h>

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

#endif
