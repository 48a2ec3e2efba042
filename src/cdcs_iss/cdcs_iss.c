/*
 * cdcs-iss: the role's description for the shared daemon runtime: its config section, the
 * keys and the client it loads once at start, and its endpoints.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/replay.h"
#include "cdcs_iss.h"

#define CDCS_ISS_PATH_MAX 4096
#define CDCS_ISS_PURGE_S  60
/* Daemon-to-daemon calls (CONTRACT: the same limits for the three CDCS daemons). */
#define CDCS_ISS_PSS_MAX_RESPONSE (64 * 1024)

static const struct schema_field cdcs_iss_conf_fields[] = {
    {"device_ca", SCHEMA_STRING, offsetof(struct cdcs_iss_conf, device_ca), 1, 1, CDCS_ISS_PATH_MAX,
     0, NULL},
    {"ticket_key", SCHEMA_STRING, offsetof(struct cdcs_iss_conf, ticket_key), 1, 1,
     CDCS_ISS_PATH_MAX, 0, NULL},
    {"entitlement_keys", SCHEMA_STRING, offsetof(struct cdcs_iss_conf, entitlement_keys), 1, 1,
     CDCS_ISS_PATH_MAX, 0, NULL},
    {"cdcs_pss_url", SCHEMA_STRING, offsetof(struct cdcs_iss_conf, cdcs_pss_url), 1, 9,
     CDCS_ISS_URL_MAX, 0, NULL},
    {"public_url", SCHEMA_STRING, offsetof(struct cdcs_iss_conf, public_url), 1, 9,
     CDCS_ISS_URL_MAX, 0, NULL},
    {"ticket_ttl_s", SCHEMA_INT, offsetof(struct cdcs_iss_conf, ticket_ttl_s), 0, 1,
     CDCS_ISS_TICKET_TTL_MAX, 0, NULL},
    SCHEMA_END,
};

static const struct httpd_route cdcs_iss_routes[] = {
    {EVHTTP_REQ_POST, "/v1/internal/personalization-ticket", cdcs_iss_ticket,
     cdcs_iss_ticket_fields, sizeof(struct cdcs_iss_ticket_body)},
    {EVHTTP_REQ_POST, "/v1/cdcs/personalize", cdcs_iss_personalize, cdcs_iss_personalize_fields,
     sizeof(struct cdcs_iss_personalize_body)},
    {EVHTTP_REQ_POST, "/v1/cdcs/confirm", cdcs_iss_confirm, cdcs_iss_confirm_fields,
     sizeof(struct cdcs_iss_confirm_body)},
    {0, NULL, NULL, NULL, 0},
};

static void cdcs_iss_purge(evutil_socket_t fd, short what, void *arg)
{
	struct cdcs_iss *s = arg;
	int n;

	/* A ticket past exp + skew fails its exp check anyway; its jti is no longer needed. */
	if ((n = replay_purge(s->d->db, (int64_t)time(NULL) - JOSE_CLOCK_SKEW)) > 0)
		log_debug("forgot %d expired ticket id(s)", n);
}

static int cdcs_iss_init(struct daemon_ctx *d)
{
	const struct cdcs_iss_conf *c = d->cfg.role;
	struct cdcs_iss *s;
	char err[CDCS_ISS_ERRLEN];

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_err("out of memory");
		return -1;
	}
	d->role_state = s;
	s->d = d;
	TAILQ_INIT(&s->sending);
	if (c == NULL) {
		snprintf(err, sizeof(err), "no cdcs_iss section");
		goto fail;
	}
	if (pki_cert_file_fingerprint(c->device_ca, 0, s->device_ca_fp, err, sizeof(err)) == -1 ||
	    (s->ticket_key = pki_key_load(c->ticket_key, err, sizeof(err))) == NULL ||
	    cdcs_iss_keys_load(c->entitlement_keys, &s->keys, err, sizeof(err)) == -1 ||
	    (s->cdcs_pss_url = cfg_https_url("cdcs_iss", "cdcs_pss_url", c->cdcs_pss_url, err,
	                                     sizeof(err))) == NULL ||
	    (s->public_url =
	         cfg_https_url("cdcs_iss", "public_url", c->public_url, err, sizeof(err))) == NULL)
		goto fail;
	s->ticket_ttl_s = c->ticket_ttl_s > 0 ? c->ticket_ttl_s : CDCS_ISS_TICKET_TTL_DEFAULT;

	/* Our service certificate is serverAuth + clientAuth: it is also who we are to
	 * cdcs-pss. */
	if ((s->pss = daemon_peer_client(d, CDCS_ISS_PSS_MAX_RESPONSE, err, sizeof(err))) == NULL)
		goto fail;

	if ((s->ev_purge =
	         daemon_every(d, CDCS_ISS_PURGE_S, cdcs_iss_purge, s, err, sizeof(err))) == NULL)
		goto fail;
	if (cdcs_iss_report_init(s) == -1) {
		snprintf(err, sizeof(err), "cannot start the report outbox");
		goto fail;
	}
	log_info("%zu entitlement key(s), tickets valid %llds, cdcs-pss at %s", s->keys.n,
	         (long long)s->ticket_ttl_s, s->cdcs_pss_url);
	return 0;
fail:
	log_err("%s", err);
	return -1;
}

/* Also runs when init failed half-way or never ran. */
static void cdcs_iss_fini(struct daemon_ctx *d)
{
	struct cdcs_iss *s = d->role_state;

	if (s == NULL)
		return;
	if (s->ev_purge != NULL)
		event_free(s->ev_purge);
	/* Cancels the reports in flight without calling back; their rows stay queued. */
	httpc_free(s->pss);
	cdcs_iss_report_drop(s);
	EVP_PKEY_free(s->ticket_key);
	cdcs_iss_keys_free(&s->keys);
	free(s->cdcs_pss_url);
	free(s->public_url);
	free(s);
	d->role_state = NULL;
}

const struct daemon_role cdcs_iss_role = {
    .name = "cdcs-iss",
    .migrations = cdcs_iss_migrations,
    .sync = DB_SYNC_FULL,
    .routes = cdcs_iss_routes,
    .cfg = {"cdcs_iss", cdcs_iss_conf_fields, sizeof(struct cdcs_iss_conf), 1},
    .init = cdcs_iss_init,
    .fini = cdcs_iss_fini,
};
