/*
 * health: GET /v1/health, served by every daemon. 200 while the database answers, 503
 * otherwise, so a load balancer or systemd watchdog script can act on the status alone.
 */
#include <time.h>

#include "opendm/daemon.h"
#include "opendm/health.h"
#include "opendm/version.h"

void health_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	time_t now = time(NULL);
	json_t *body;

	/* Load balancers poll this endpoint hard: ask the database at most once a second while
	 * it is fine, and on every request while it is not. */
	if (now != d->db_checked || !d->db_ok) {
		d->db_ok = d->db != NULL && db_ping(d->db) == 0;
		d->db_schema = d->db != NULL ? db_schema_version(d->db) : -1;
		d->db_checked = now;
	}

	body = json_pack("{s:s, s:s, s:s, s:{s:s, s:i}, s:I, s:I, s:I}", "role", d->role->name,
	                 "version", OPENDM_VERSION, "status", d->db_ok ? "ok" : "degraded",
	                 "database", "state", d->db_ok ? "ok" : "error", "schema_version",
	                 d->db_schema, "uptime_s", (json_int_t)(now - d->started), "connections",
	                 (json_int_t)httpd_connections(d->httpd), "inflight",
	                 (json_int_t)httpd_inflight(d->httpd));
	if (body == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	httpd_reply_json(req, d->db_ok ? 200 : 503, body);
}
