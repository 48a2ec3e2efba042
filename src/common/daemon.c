/*
 * daemon: the life of a head-end or CPE daemon, shared by all roles (see daemon.h).
 */
#include <errno.h>
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "opendm/admin.h"
#include "opendm/audit.h"
#include "opendm/daemon.h"
#include "opendm/health.h"
#include "opendm/log.h"
#include "opendm/tls.h"
#include "opendm/version.h"

#define DAEMON_ERRLEN 1024

/*
 * Every request allocates and frees buffers at the top of the heap; with glibc's default
 * 128 KiB trim threshold the heap is shrunk and regrown (brk + page faults) constantly.
 * Keeping a few MiB is worth ~15% of keep-alive throughput (bench/README.md). Fixing the mmap
 * threshold also stops glibc from adapting the trim threshold back.
 */
static void daemon_tune_malloc(void)
{
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_TOP_PAD, 16 << 20);
#endif
}

/* The changelist coalesces the epoll_ctl add/del pairs bufferevents make in one loop pass. */
static struct event_base *daemon_event_base(void)
{
	struct event_config *ec;
	struct event_base *base = NULL;

	if ((ec = event_config_new()) == NULL)
		return NULL;
	if (event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) == 0)
		base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

static void daemon_usage(const struct daemon_role *role)
{
	fprintf(stderr,
	        "usage: %s [-nhV] [-c file]\n"
	        "  -c file  configuration file (default /etc/opendm/%s.json)\n"
	        "  -n       check the configuration and certificates, then exit\n"
	        "  -V       print the version and exit\n",
	        role->name, role->name);
}

static void daemon_httpd_conf(const struct cfg_daemon *cfg, struct httpd_conf *hc)
{
	memset(hc, 0, sizeof(*hc));
	hc->address = cfg->listen.address;
	hc->port = (int)cfg->listen.port;
	hc->max_body_bytes = (size_t)cfg->limits.max_body_bytes;
	hc->max_header_bytes = (size_t)cfg->limits.max_header_bytes;
	hc->max_connections = (int)cfg->limits.max_connections;
	hc->idle_timeout_s = (int)cfg->limits.idle_timeout_s;
}

/* The endpoints every daemon serves, then the role's own, in one table for httpd. */
static const struct httpd_route daemon_common_routes[] = {
    {EVHTTP_REQ_GET, "/v1/health", health_get, NULL, 0},
    {EVHTTP_REQ_POST, "/v1/admin/log-level", admin_log_level, admin_log_level_fields,
     sizeof(struct admin_log_level_body)},
    {EVHTTP_REQ_GET, "/v1/admin/audit", audit_get, NULL, 0},
};
#define DAEMON_N_COMMON (sizeof(daemon_common_routes) / sizeof(daemon_common_routes[0]))

static struct httpd_route *daemon_routes(const struct daemon_role *role)
{
	struct httpd_route *routes;
	size_t n = 0;

	while (role->routes != NULL && role->routes[n].fn != NULL)
		n++;
	if ((routes = calloc(DAEMON_N_COMMON + n + 1, sizeof(*routes))) == NULL)
		return NULL;
	memcpy(routes, daemon_common_routes, sizeof(daemon_common_routes));
	if (n > 0)
		memcpy(&routes[DAEMON_N_COMMON], role->routes, n * sizeof(*routes));
	return routes;
}

static void daemon_on_drained(void *arg)
{
	struct daemon_ctx *d = arg;

	log_info("no request in flight; stopping");
	event_base_loopbreak(d->base);
}

static void daemon_on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_ctx *d = arg;

	log_warn("%zu request(s) still in flight after %llds; closing them",
	         httpd_inflight(d->httpd), (long long)d->cfg.limits.shutdown_grace_s);
	event_base_loopbreak(d->base);
}

static void daemon_on_term(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_ctx *d = arg;
	struct timeval tv;

	if (d->stopping) {
		log_warn("signal %d again: stopping now", (int)sig);
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = 1;
	log_info("signal %d: stopping gracefully", (int)sig);
	daemon_notify("STOPPING=1");
	tv.tv_sec = (time_t)d->cfg.limits.shutdown_grace_s;
	tv.tv_usec = 0;
	if ((d->ev_grace = evtimer_new(d->base, daemon_on_grace, d)) != NULL)
		evtimer_add(d->ev_grace, &tv);
	httpd_shutdown(d->httpd, daemon_on_drained, d);
}

/*
 * Keep what cannot change without a restart (the bound socket, the open database) and say
 * so, rather than half-applying it.
 */
static void daemon_keep_fixed(struct cfg_daemon *fresh, struct cfg_daemon *cur)
{
	char *tmp;

	if (strcmp(fresh->listen.address, cur->listen.address) != 0 ||
	    fresh->listen.port != cur->listen.port)
		log_warn("listen address change needs a restart; still on %s:%lld",
		         cur->listen.address, (long long)cur->listen.port);
	if (strcmp(fresh->database, cur->database) != 0)
		log_warn("database path change needs a restart; still using %s", cur->database);
	tmp = fresh->listen.address;
	fresh->listen.address = cur->listen.address;
	cur->listen.address = tmp;
	fresh->listen.port = cur->listen.port;
	tmp = fresh->database;
	fresh->database = cur->database;
	cur->database = tmp;
}

static void daemon_on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cfg_daemon fresh;
	struct httpd_conf hc;
	char err[DAEMON_ERRLEN], admin_fp[65];
	SSL_CTX *ssl = NULL;

	if (d->stopping)
		return;
	daemon_notify("RELOADING=1");
	memset(&fresh, 0, sizeof(fresh));
	if (cfg_load(d->config_path, &d->role->cfg, &fresh, err, sizeof(err)) == -1) {
		log_err("reload refused, keeping the running configuration: %s", err);
		goto done;
	}
	if ((ssl = tls_server_ctx(&fresh.tls, err, sizeof(err))) == NULL ||
	    admin_ca_fingerprint(fresh.tls.cert, admin_fp, err, sizeof(err)) == -1) {
		log_err("reload refused, keeping the running certificates: %s", err);
		SSL_CTX_free(ssl);
		cfg_free(&d->role->cfg, &fresh);
		goto done;
	}
	memcpy(d->admin_ca_fp, admin_fp, sizeof(d->admin_ca_fp));
	daemon_keep_fixed(&fresh, &d->cfg);
	httpd_set_ctx(d->httpd, ssl);
	SSL_CTX_free(d->ssl);
	d->ssl = ssl;
	daemon_httpd_conf(&fresh, &hc);
	httpd_set_limits(d->httpd, &hc);
	log_set_level(fresh.log_level);
	cfg_free(&d->role->cfg, &d->cfg);
	d->cfg = fresh;
	log_info("configuration and certificates reloaded from %s", d->config_path);
done:
	daemon_notify("READY=1");
}

static int daemon_signals(struct daemon_ctx *d)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		return -1;
	d->ev_term = evsignal_new(d->base, SIGTERM, daemon_on_term, d);
	d->ev_int = evsignal_new(d->base, SIGINT, daemon_on_term, d);
	d->ev_hup = evsignal_new(d->base, SIGHUP, daemon_on_hup, d);
	if (d->ev_term == NULL || d->ev_int == NULL || d->ev_hup == NULL)
		return -1;
	if (evsignal_add(d->ev_term, NULL) == -1 || evsignal_add(d->ev_int, NULL) == -1 ||
	    evsignal_add(d->ev_hup, NULL) == -1)
		return -1;
	return 0;
}

static void daemon_cleanup(struct daemon_ctx *d)
{
	if (d->role->fini != NULL)
		d->role->fini(d);
	if (d->httpd != NULL)
		httpd_free(d->httpd);
	free(d->routes);
	if (d->ev_grace != NULL)
		event_free(d->ev_grace);
	if (d->ev_term != NULL)
		event_free(d->ev_term);
	if (d->ev_int != NULL)
		event_free(d->ev_int);
	if (d->ev_hup != NULL)
		event_free(d->ev_hup);
	if (d->db != NULL)
		db_close(d->db);
	SSL_CTX_free(d->ssl);
	cfg_free(&d->role->cfg, &d->cfg);
	if (d->base != NULL)
		event_base_free(d->base);
}

int daemon_main(int argc, char **argv, const struct daemon_role *role)
{
	struct daemon_ctx d;
	struct httpd_conf hc;
	char err[DAEMON_ERRLEN], defpath[256];
	size_t n_migs = 0;
	int ch, check_only = 0, status = 1, curl_ready = 0;

	memset(&d, 0, sizeof(d));
	d.role = role;
	log_init(role->name, LOG_LVL_INFO);
	snprintf(defpath, sizeof(defpath), "/etc/opendm/%s.json", role->name);
	d.config_path = defpath;

	while ((ch = getopt(argc, argv, "c:nhV")) != -1) {
		switch (ch) {
		case 'c':
			d.config_path = optarg;
			break;
		case 'n':
			check_only = 1;
			break;
		case 'V':
			printf("%s %s\n", role->name, OPENDM_VERSION);
			return 0;
		case 'h':
			daemon_usage(role);
			return 0;
		default:
			daemon_usage(role);
			return 2;
		}
	}
	if (optind != argc) {
		daemon_usage(role);
		return 2;
	}

	if (cfg_load(d.config_path, &role->cfg, &d.cfg, err, sizeof(err)) == -1) {
		log_err("%s", err);
		goto out;
	}
	log_set_level(d.cfg.log_level);
	if ((d.ssl = tls_server_ctx(&d.cfg.tls, err, sizeof(err))) == NULL) {
		log_err("%s", err);
		goto out;
	}
	if (admin_ca_fingerprint(d.cfg.tls.cert, d.admin_ca_fp, err, sizeof(err)) == -1) {
		log_err("%s", err);
		goto out;
	}
	if (check_only) {
		printf("%s: configuration %s is valid\n", role->name, d.config_path);
		status = 0;
		goto out;
	}

	/* Roles that call other daemons use httpc (libcurl), which needs this once per process. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_err("cannot initialise libcurl");
		goto out;
	}
	curl_ready = 1;
	daemon_tune_malloc();
	if ((d.base = daemon_event_base()) == NULL) {
		log_err("cannot create the event loop");
		goto out;
	}
	/* Bind first: a port in use is reported before the database is touched. Nothing is
	 * served until the loop runs, after the database is open. */
	if ((d.routes = daemon_routes(role)) == NULL) {
		log_err("out of memory");
		goto out;
	}
	daemon_httpd_conf(&d.cfg, &hc);
	if ((d.httpd = httpd_new(d.base, &hc, d.ssl, d.routes, &d, err, sizeof(err))) == NULL) {
		log_err("%s", err);
		goto out;
	}
	while (role->migrations != NULL && role->migrations[n_migs].sql != NULL)
		n_migs++;
	if ((d.db = db_open(d.cfg.database, role->migrations, n_migs, role->sync, err,
	                    sizeof(err))) == NULL) {
		log_err("%s", err);
		goto out;
	}
	if (audit_init(d.db, err, sizeof(err)) == -1) {
		log_err("%s: %s", d.cfg.database, err);
		goto out;
	}
	if (role->init != NULL && role->init(&d) == -1)
		goto out;
	if (daemon_signals(&d) == -1) {
		log_err("cannot install signal handlers: %s", strerror(errno));
		goto out;
	}
	d.started = time(NULL);
	log_info("%s %s listening on %s:%d (database %s, schema %d)", role->name, OPENDM_VERSION,
	         d.cfg.listen.address, httpd_port(d.httpd), d.cfg.database,
	         db_schema_version(d.db));
	daemon_notify("READY=1\nSTATUS=serving");

	if (event_base_dispatch(d.base) == -1) {
		log_err("event loop failed");
		goto out;
	}
	log_info("stopped");
	status = 0;
out:
	daemon_cleanup(&d);
	if (curl_ready)
		curl_global_cleanup();
	return status;
}

#define DAEMON_PEER_CONNECT_MS 3000
/* Well under the default shutdown grace, so that a stopping daemon still answers. */
#define DAEMON_PEER_TIMEOUT_MS 5000

struct httpc *daemon_peer_client(struct daemon_ctx *d, size_t max_response, char *err,
                                 size_t errlen)
{
	struct httpc_conf hc;

	memset(&hc, 0, sizeof(hc));
	hc.tls = d->cfg.tls;
	hc.connect_timeout_ms = DAEMON_PEER_CONNECT_MS;
	hc.timeout_ms = DAEMON_PEER_TIMEOUT_MS;
	hc.max_response = max_response;
	return httpc_new(d->base, &hc, err, errlen);
}

struct event *daemon_every(struct daemon_ctx *d, int every_s, event_callback_fn cb, void *arg,
                           char *err, size_t errlen)
{
	const struct timeval every = {every_s, 0};
	struct event *ev;

	if ((ev = event_new(d->base, -1, EV_PERSIST, cb, arg)) == NULL ||
	    event_add(ev, &every) == -1) {
		if (ev != NULL)
			event_free(ev);
		snprintf(err, errlen, "cannot arm a timer");
		return NULL;
	}
	cb(-1, 0, arg);
	return ev;
}
