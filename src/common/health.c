/*
 * health: GET /v1/health, served by every daemon. 200 while the database answers, 503
 * otherwise, so a load balancer or systemd watchdog script can act on the status alone.
 */
#include <stdio.h>
#include <time.h>

#include "opendm/daemon.h"
#include "opendm/health.h"
#include "opendm/version.h"

void health_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	time_t now = time(NULL);
	char body[512];
	int n;

	/* Load balancers poll this endpoint hard: ask the database at most once a second while
	 * it is fine, and on every request while it is not. */
	if (now != d->db_checked || !d->db_ok) {
		d->db_ok = d->db != NULL && db_ping(d->db) == 0;
		d->db_schema = d->db != NULL ? db_schema_version(d->db) : -1;
		d->db_checked = now;
	}
	/* Every value is a number or one of our own constant names (no escaping needed), so
	 * the body is formatted directly rather than through a jansson tree per poll. */
	n = snprintf(body, sizeof(body),
	             "{\"role\":\"%s\",\"version\":\"%s\",\"status\":\"%s\","
	             "\"database\":{\"state\":\"%s\",\"schema_version\":%d},"
	             "\"uptime_s\":%lld,\"connections\":%zu,\"inflight\":%zu}",
	             d->role->name, OPENDM_VERSION, d->db_ok ? "ok" : "degraded",
	             d->db_ok ? "ok" : "error", d->db_schema, (long long)(now - d->started),
	             httpd_connections(d->httpd), httpd_inflight(d->httpd));
	if (n < 0 || (size_t)n >= sizeof(body)) {
		httpd_reply_error(req, 500, "internal_error", "health report too long");
		return;
	}
	httpd_reply_json_text(req, d->db_ok ? 200 : 503, body);
}
