/*
 * cdcs-pss: the role's description for the shared daemon runtime: its config section, what
 * it loads once at start, and its endpoints (one handler per endpoint).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "opendm/log.h"
#include "opendm/pki.h"
#include "cdcs_pss.h"

#define CDCS_PSS_PATH_MAX 4096
/* cdcs-mss answers up to 16 items, each with three JWS (manifest, approval, ticket). */
#define CDCS_PSS_MAX_RESPONSE (1024 * 1024)
#define CDCS_PSS_PURGE_S      3600
/* Decisions are kept for an operator's questions ("why did this device get that?"). */
#define CDCS_PSS_DECISION_KEEP_S (90 * 86400)

static const struct schema_field cdcs_pss_conf_fields[] = {
    {"device_ca", SCHEMA_STRING, offsetof(struct cdcs_pss_conf, device_ca), 1, 1, CDCS_PSS_PATH_MAX,
     0, NULL},
    {"dm_iss_url", SCHEMA_STRING, offsetof(struct cdcs_pss_conf, dm_iss_url), 1, 9,
     CDCS_PSS_URL_MAX, 0, NULL},
    {"cdcs_mss_url", SCHEMA_STRING, offsetof(struct cdcs_pss_conf, cdcs_mss_url), 1, 9,
     CDCS_PSS_URL_MAX, 0, NULL},
    {"interval_s", SCHEMA_INT, offsetof(struct cdcs_pss_conf, interval_s), 0, 1,
     CDCS_PSS_INTERVAL_MAX, 0, NULL},
    SCHEMA_END,
};

static const struct httpd_route cdcs_pss_routes[] = {
    {EVHTTP_REQ_POST, "/v1/cdcs/authorize", cdcs_pss_authorize, cdcs_pss_authorize_fields,
     sizeof(struct cdcs_pss_authorize_body)},
    {EVHTTP_REQ_POST, "/v1/cdcs/report", cdcs_pss_report, cdcs_pss_report_fields,
     sizeof(struct cdcs_pss_report_body)},
    {EVHTTP_REQ_POST, "/v1/internal/cdcs-state", cdcs_pss_state, cdcs_pss_state_fields,
     sizeof(struct cdcs_pss_state_body)},
    {EVHTTP_REQ_PUT, "/v1/admin/entitlements/*", cdcs_pss_entitlement_put, cdcs_pss_levels_fields,
     sizeof(struct cdcs_pss_levels_body)},
    {EVHTTP_REQ_GET, "/v1/admin/entitlements/*", cdcs_pss_entitlement_get, NULL, 0},
    {EVHTTP_REQ_POST, "/v1/admin/policy/rules", cdcs_pss_rule_add, policy_rule_fields,
     sizeof(struct policy_rule)},
    {EVHTTP_REQ_GET, "/v1/admin/policy/rules", cdcs_pss_rule_list, NULL, 0},
    {EVHTTP_REQ_DELETE, "/v1/admin/policy/rules/*", cdcs_pss_rule_delete, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/admin/policy/explain/*", cdcs_pss_explain, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/admin/devices", cdcs_pss_device_list, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/admin/devices/*", cdcs_pss_device_get, NULL, 0},
    {EVHTTP_REQ_POST, "/v1/admin/campaigns", cdcs_pss_campaign_create, campaign_spec_fields,
     sizeof(struct campaign_spec)},
    {EVHTTP_REQ_GET, "/v1/admin/campaigns", cdcs_pss_campaign_list, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/admin/campaigns/*", cdcs_pss_campaign_get, NULL, 0},
    /* <name>/advance, <name>/pause, <name>/resume, <name>/stop: a prefix route cannot end
     * with the action, so one route takes them all (body {}). */
    {EVHTTP_REQ_POST, "/v1/admin/campaigns/*", cdcs_pss_campaign_action,
     cdcs_pss_campaign_action_fields, 1},
    {0, NULL, NULL, NULL, 0},
};

static void cdcs_pss_purge(evutil_socket_t fd, short what, void *arg)
{
	struct cdcs_pss *s = arg;
	int n;

	if ((n = cdcs_pss_store_purge(s->d->db, (int64_t)time(NULL) - CDCS_PSS_DECISION_KEEP_S)) >
	    0)
		log_info("forgot %d decision(s) older than %d days", n,
		         CDCS_PSS_DECISION_KEEP_S / 86400);
}

static int cdcs_pss_init(struct daemon_ctx *d)
{
	const struct cdcs_pss_conf *c = d->cfg.role;
	struct cdcs_pss *s;
	char err[CDCS_PSS_ERRLEN];

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_err("out of memory");
		return -1;
	}
	d->role_state = s;
	s->d = d;
	TAILQ_INIT(&s->pending);
	TAILQ_INIT(&s->lookups);
	if (c == NULL) {
		snprintf(err, sizeof(err), "no cdcs_pss section");
		goto fail;
	}
	if (pki_cert_file_fingerprint(c->device_ca, 0, s->device_ca_fp, err, sizeof(err)) == -1 ||
	    (s->dm_iss_url = cfg_https_url("cdcs_pss", "dm_iss_url", c->dm_iss_url, err,
	                                   sizeof(err))) == NULL ||
	    (s->cdcs_mss_url = cfg_https_url("cdcs_pss", "cdcs_mss_url", c->cdcs_mss_url, err,
	                                     sizeof(err))) == NULL)
		goto fail;
	s->interval_s = c->interval_s > 0 ? c->interval_s : CDCS_PSS_INTERVAL_DEFAULT;

	/* Our service certificate is serverAuth + clientAuth: it is who we are to dm-iss and
	 * cdcs-mss, which accept cdcs-pss by its CN. */
	if ((s->http = daemon_peer_client(d, CDCS_PSS_MAX_RESPONSE, err, sizeof(err))) == NULL)
		goto fail;

	if ((s->ev_purge =
	         daemon_every(d, CDCS_PSS_PURGE_S, cdcs_pss_purge, s, err, sizeof(err))) == NULL)
		goto fail;
	log_info("device CA %s, dm-iss at %s, cdcs-mss at %s, agents run every %lld s",
	         c->device_ca, s->dm_iss_url, s->cdcs_mss_url, (long long)s->interval_s);
	return 0;
fail:
	log_err("%s", err);
	return -1;
}

/* Also runs when init failed half-way or never ran. */
static void cdcs_pss_fini(struct daemon_ctx *d)
{
	struct cdcs_pss *s = d->role_state;

	if (s == NULL)
		return;
	if (s->ev_purge != NULL)
		event_free(s->ev_purge);
	/* Cancels what is in flight without calling back: the waiting requests go next. */
	if (s->http != NULL)
		httpc_free(s->http);
	cdcs_pss_pending_drop(s);
	cdcs_pss_lookups_drop(s);
	free(s->dm_iss_url);
	free(s->cdcs_mss_url);
	free(s);
	d->role_state = NULL;
}

const struct daemon_role cdcs_pss_role = {
    .name = "cdcs-pss",
    .migrations = cdcs_pss_migrations,
    /* Decisions and device states are the operator's record: they must survive a crash. */
    .sync = DB_SYNC_FULL,
    .routes = cdcs_pss_routes,
    .cfg = {"cdcs_pss", cdcs_pss_conf_fields, sizeof(struct cdcs_pss_conf), 1},
    .init = cdcs_pss_init,
    .fini = cdcs_pss_fini,
};
