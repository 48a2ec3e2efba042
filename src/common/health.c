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
	int db_ok = d->db != NULL && db_ping(d->db) == 0;
	json_t *body;

	body = json_pack("{s:s, s:s, s:s, s:{s:s, s:i}, s:I, s:I, s:I}", "role", d->role->name,
	                 "version", OPENDM_VERSION, "status", db_ok ? "ok" : "degraded", "database",
	                 "state", db_ok ? "ok" : "error", "schema_version",
	                 d->db != NULL ? db_schema_version(d->db) : -1, "uptime_s",
	                 (json_int_t)(time(NULL) - d->started), "connections",
	                 (json_int_t)httpd_connections(d->httpd), "inflight",
	                 (json_int_t)httpd_inflight(d->httpd));
	if (body == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	httpd_reply_json(req, db_ok ? 200 : 503, body);
}
