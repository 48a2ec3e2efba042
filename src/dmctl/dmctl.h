/* dmctl: the operator tool. Each command group lives in its own file. */
#ifndef DMCTL_H
#define DMCTL_H

#include <jansson.h>

#include <event2/event.h>

#include "opendm/httpc.h"
#include "opendm/tls.h"

/* Exit statuses every command uses. */
#define DMCTL_EXIT_OK        0
#define DMCTL_EXIT_FAIL      1 /* the operation failed or a daemon said no */
#define DMCTL_EXIT_USAGE     2 /* bad command line or configuration */
#define DMCTL_EXIT_UNREACH   3 /* a daemon could not be reached */
#define DMCTL_EXIT_FORBIDDEN 4 /* HTTP 403: not an operator, or without the role needed */
#define DMCTL_EXIT_NOTFOUND  5 /* HTTP 404: no such subscriber, device, campaign... */

#define DMCTL_ACCOUNT_MAX 64

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
/* dmctl subscriber add|suspend|activate|show ACCOUNT, list (dm-mss). */
int dmctl_subscriber_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl cpe add CN ACCOUNT | activate|deactivate|show CN | list: subscribers' CPEs (dm-mss). */
int dmctl_cpe_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl code issue ACCOUNT [--ttl S]: a new activation code (dm-mss). */
int dmctl_code_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl device list | show|revoke|history ID: devices, as every daemon knows them. */
int dmctl_device_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl offline-bundle: an offline installation bundle for one device (dm-mss). */
int dmctl_offline_bundle_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl content encrypt: protected content of a sample CA/DRM system (local). */
int dmctl_content_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl entitlement set|show ACCOUNT (cdcs-pss). */
int dmctl_entitlement_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl policy add|list|rm|device|explain (cdcs-pss). */
int dmctl_policy_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl explain DM_ID: the same as policy explain. */
int dmctl_explain_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl cdcs publish|register|withdraw|retire|list|revoke|revoke-key|revocations (cdcs-mss). */
int dmctl_cdcs_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl cdcs revoke|revoke-key|revocations: the signed revocation list (revoke.c). */
int dmctl_revoke_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl campaign create|list|show|advance|pause|resume|stop (cdcs-pss). */
int dmctl_campaign_main(const struct dmctl_opts *opts, int argc, char **argv);
/* dmctl audit: the audit log of one daemon or of all of them, merged. */
int dmctl_audit_main(const struct dmctl_opts *opts, int argc, char **argv);

/* A session with one configured daemon (api.c). */
struct dmctl_api {
	struct dmctl_conf conf;
	const char *config; /* the config file's path */
	int loaded;
	struct event_base *base;
	struct httpc *c;
	const char *url;  /* endpoints[role], borrowed from conf */
	const char *role; /* the role url belongs to */
};

/* Load the config and connect-ready a client for endpoints[role] (NULL: none yet, see
 * dmctl_api_use); max_response 0 = 1 MiB. Returns an exit status (message printed). */
int dmctl_api_open(struct dmctl_api *a, const struct dmctl_opts *opts, const char *role,
                   size_t max_response);
void dmctl_api_close(struct dmctl_api *a);
/* Talk to endpoints[role] from now on. DMCTL_EXIT_USAGE (message) if it is not configured. */
int dmctl_api_use(struct dmctl_api *a, const char *role);
/* method path (e.g. "/v1/admin/subscribers") with an optional JSON body. On a 2xx, *out is
 * the response (caller frees); otherwise an exit status and one stderr line: "dmctl: <code>:
 * <message>" from the daemon's error, or "dmctl: unreachable: ..." (exit 3). */
int dmctl_api_raw(struct dmctl_api *a, const char *method, const char *path, const json_t *body,
                  struct httpc_resp **out);
/* The same, for a JSON object answer (*out: new reference). */
int dmctl_api_call(struct dmctl_api *a, const char *method, const char *path, const json_t *body,
                   json_t **out);
/* A GET where 404 is an answer: DMCTL_EXIT_NOTFOUND with *out NULL and nothing printed. */
int dmctl_api_get_opt(struct dmctl_api *a, const char *path, json_t **out);
/* One call to dm-mss; takes body (may be NULL only for GET; NULL for another method means an
 * allocation failed). */
int dmctl_api_once(const struct dmctl_opts *opts, const char *method, const char *path,
                   json_t *body, json_t **out);
/* The same with the daemon endpoints[role]; body may also be NULL for DELETE. */
int dmctl_api_once_role(const struct dmctl_opts *opts, const char *role, const char *method,
                        const char *path, json_t *body, json_t **out);

/* Small helpers shared by the commands (api.c). */
int dmctl_print_json(const json_t *doc);
/* A command's end: on success out as --json asks, else print(out) (NULL: nothing). Frees
 * out; returns status (or DMCTL_EXIT_FAIL if printing failed). */
int dmctl_done(const struct dmctl_opts *opts, int status, json_t *out,
               int (*print)(const json_t *));

/* Command-line checks (args.c): nothing is sent before they pass. */
/* 1 (usage printed on stdout) if -h/--help is among the arguments. */
int dmctl_want_help(int argc, char **argv, const char *usage);
/* Print "dmctl: what 'arg'" and the usage on stderr; returns DMCTL_EXIT_USAGE. */
int dmctl_usage_error(const char *usage, const char *what, const char *arg);
/* Decimal integer in [min, max]: 0/-1. */
int dmctl_parse_int(const char *s, long long min, long long max, long long *out);
/* 1 if s is min..max characters of [A-Za-z0-9] or a character in extra. */
int dmctl_valid_id(const char *s, size_t min, size_t max, const char *extra);
/* Accounts, CPE CNs, rule and campaign names: 1-64 of [A-Za-z0-9._-]. */
int dmctl_account_ok(const char *s);
int dmctl_name_ok(const char *s);
/* A hardware id: 4-64 of [A-Za-z0-9._:-]. */
int dmctl_hw_id_ok(const char *s);
/* A DM id as dm-iss makes them: "dm-" and 24 lower-case hex digits. */
int dmctl_dm_id_ok(const char *s);
/* "VENDOR/NAME", each a CDCS id: 0/-1. */
int dmctl_parse_slot(const char *s, char vendor[65], char name[65]);
/* Append ?key=value (or &key=value), value percent-encoded; value NULL: nothing. 0/-1 (no
 * room). */
int dmctl_query_add(char *path, size_t len, const char *key, const char *value);
/* text (len bytes, what names it in messages) as a JSON object, duplicates refused; NULL after
 * a message. */
json_t *dmctl_json_object(const char *what, const char *text, size_t len);
/* The value of option argv[*i] (advancing *i): 0, or -1 after a usage message. */
int dmctl_opt_value(int argc, char **argv, int *i, const char *usage, const char **out);

/* Tables (table.c): rows are daemons' JSON objects, a column names the member it shows. */
#define DMCTL_COL_TIME  1 /* an integer is a unix time, shown as UTC */
#define DMCTL_COL_RIGHT 2 /* right-aligned (numbers) */
#define DMCTL_COL_CDCS  4 /* an object {"vendor","name",...} is shown as vendor/name */
struct dmctl_col {
	const char *header;
	const char *key; /* "a", "a.b" (nested), or "x/y" (two members shown as x/y) */
	int flags;
};
/* The text of a value: "-" for absent, null or empty; lists as "a,b"; objects as compact JSON
 * (DMCTL_COL_CDCS: {"vendor","name",...} as vendor/name); yes/no. New string (free), NULL if
 * out of memory. */
char *dmctl_value_text(const json_t *v, int flags);
/* The text of col in row (as dmctl_value_text). */
char *dmctl_cell(const json_t *row, const struct dmctl_col *col);
/* rows (an array of objects) as a header row and aligned columns; cols ends with {NULL}. 0/-1. */
int dmctl_table(const struct dmctl_col *cols, const json_t *rows);
/* A table of the one row `row`. 0/-1. */
int dmctl_table_one(const struct dmctl_col *cols, const json_t *row);
/* One object as "HEADER  value" lines. 0/-1. */
int dmctl_fields(const struct dmctl_col *cols, const json_t *obj);
/* A string member, or "-" when absent, null or empty. */
const char *dmctl_str(const json_t *o, const char *key);

/* The audit log (audit.c), shared with device history. */
/* Entries of every configured head-end daemon (roles NULL: not sd-if-agent) or of roles, for each
 * subject in subjects (NULL: any), action (NULL: any), each daemon's rows after `after`, at most
 * limit per daemon and subject (0: all, page by page). A new array, each entry with "role", ordered
 * by ts, role, seq; *status gets the first failure (reported on stderr), the entries that came
 * still returned. NULL if out of memory. */
json_t *dmctl_audit_collect(struct dmctl_api *a, const json_t *roles, const json_t *subjects,
                            const char *action, long long after, int limit, int *status);
/* Entries as TIME ROLE ACTOR ACTION SUBJECT DETAIL. */
int dmctl_audit_print(const json_t *entries);
/* Sort entries by ts, then role, then seq. */
void dmctl_audit_sort(json_t *entries);

/* "50,100": 1-10 strictly increasing integers 1..100 as a JSON array, or NULL (campaign.c). */
json_t *dmctl_campaign_stages(const char *text);

/* explain (policy.c): how choices differ from a decision's install list, per vendor/name
 * (variant, rights as sets, present or not), as lines of text; an empty array when they agree.
 * New array or NULL. */
json_t *dmctl_explain_diff(const json_t *choices, const json_t *install);

#endif
