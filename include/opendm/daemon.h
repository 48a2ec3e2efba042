/*
 * daemon: what every head-end and CPE daemon shares, so that each role's main.c is one line.
 *
 * daemon_main() parses -c FILE / -n / -h, loads and checks the config, opens and migrates
 * the role's database, builds the TLS context, serves GET /v1/health plus the role's routes,
 * and runs the loop. SIGTERM/SIGINT: stop accepting, let in-flight requests finish (up to
 * limits.shutdown_grace_s), exit 0. SIGHUP: re-read the config and certificates into fresh
 * structures; swap them in only if all is valid (open connections keep working; listen
 * address and database path changes need a restart and are reported). Tells systemd
 * READY=1 / RELOADING=1 / STOPPING=1 when NOTIFY_SOCKET is set.
 */
#ifndef OPENDM_DAEMON_H
#define OPENDM_DAEMON_H

#include <stddef.h>
#include <time.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "opendm/config.h"
#include "opendm/db.h"
#include "opendm/httpc.h"
#include "opendm/httpd.h"

struct daemon_ctx;

struct daemon_role {
	const char *name;                      /* "dm-mss" */
	const struct db_migration *migrations; /* ends with sql == NULL */
	enum db_sync sync;                     /* DB_SYNC_FULL where a loss matters */
	const struct httpd_route *routes;      /* the role's endpoints; ends with fn == NULL */
	struct cfg_role_section cfg;           /* the role's config section, if any */
	int (*init)(struct daemon_ctx *d);     /* after the database is open; 0/-1 */
	void (*fini)(struct daemon_ctx *d);
};

struct daemon_ctx {
	const struct daemon_role *role;
	const char *config_path;
	struct event_base *base;
	struct cfg_daemon cfg;
	struct db *db;
	SSL_CTX *ssl;
	struct httpd *httpd;
	struct httpd_route *routes; /* health + the role's, built at start */
	time_t started;
	struct event *ev_term, *ev_int, *ev_hup, *ev_grace;
	int stopping;
	char admin_ca_fp[65];
	time_t db_checked;    /* health: when the database was last asked */
	int db_ok, db_schema; /* CA that issues operator certificates */
	void *role_state;     /* owned by the role's init/fini */
};

/* The whole life of a daemon; returns the process exit status. */
int daemon_main(int argc, char **argv, const struct daemon_role *role);

/*
 * An HTTPS client for calls to other daemons (on the daemon's loop), presenting the daemon's
 * own service certificate (serverAuth + clientAuth: the CN other daemons authorize) with short
 * timeouts, so that a daemon waiting on a peer still answers within its shutdown grace.
 * max_response bounds an answer. NULL + err.
 */
struct httpc *daemon_peer_client(struct daemon_ctx *d, size_t max_response, char *err,
                                 size_t errlen);
/* Run cb(-1, 0, arg) now and every every_s seconds on the daemon's loop (housekeeping such as
 * purging spent tokens); event_free() the result in fini. NULL + err. */
struct event *daemon_every(struct daemon_ctx *d, int every_s, event_callback_fn cb, void *arg,
                           char *err, size_t errlen);

/* Send a state string ("READY=1") to systemd if NOTIFY_SOCKET is set. 0 (also when unset)/-1. */
int daemon_notify(const char *state);

#endif
