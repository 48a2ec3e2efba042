/*
 * dm-mss: the role's description for the shared daemon runtime: its configuration section,
 * its endpoints (one handler per endpoint) and the state loaded at start (keys, packages).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/replay.h"
#include "dm_mss.h"

#define DM_MSS_ERRLEN 1024

static const struct schema_field dm_mss_conf_fields[] = {
    {"app_ca", SCHEMA_STRING, offsetof(struct dm_mss_conf, app_ca), 1, 1, PATH_MAX - 1, 0, NULL},
    {"enrolment_key", SCHEMA_STRING, offsetof(struct dm_mss_conf, enrolment_key), 1, 1,
     PATH_MAX - 1, 0, NULL},
    {"agent_pubkey", SCHEMA_STRING, offsetof(struct dm_mss_conf, agent_pubkey), 1, 1, PATH_MAX - 1,
     0, NULL},
    {"packages_dir", SCHEMA_STRING, offsetof(struct dm_mss_conf, packages_dir), 1, 1, 1024, 0,
     NULL},
    {"dm_iss_url", SCHEMA_STRING, offsetof(struct dm_mss_conf, dm_iss_url), 1, 9, 256, 0, NULL},
    {"token_ttl_s", SCHEMA_INT, offsetof(struct dm_mss_conf, token_ttl_s), 0, 60, 3600, 0, NULL},
    {"bundle_ttl_s", SCHEMA_INT, offsetof(struct dm_mss_conf, bundle_ttl_s), 0, 3600, 2592000, 0,
     NULL},
    {"cpe_ca", SCHEMA_STRING, offsetof(struct dm_mss_conf, cpe_ca), 0, 1, PATH_MAX - 1, 0, NULL},
    SCHEMA_END,
};

static const struct httpd_route dm_mss_routes[] = {
    {EVHTTP_REQ_POST, "/v1/agent/download-request", dm_mss_download_request, dm_mss_download_fields,
     sizeof(struct dm_mss_download_body)},
    {EVHTTP_REQ_GET, "/v1/agent/packages/*", dm_mss_package_get, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/internal/devices/*", dm_mss_internal_device, NULL, 0},
    {EVHTTP_REQ_POST, "/v1/admin/subscribers", dm_mss_subscriber_create, dm_mss_subscriber_fields,
     sizeof(struct dm_mss_subscriber_body)},
    {EVHTTP_REQ_GET, "/v1/admin/subscribers", dm_mss_subscriber_list, NULL, 0},
    {EVHTTP_REQ_POST, "/v1/admin/subscribers/status", dm_mss_subscriber_status,
     dm_mss_status_fields, sizeof(struct dm_mss_status_body)},
    {EVHTTP_REQ_GET, "/v1/admin/subscribers/*", dm_mss_subscriber_get, NULL, 0},
    {EVHTTP_REQ_POST, "/v1/admin/activation-codes", dm_mss_code_create, dm_mss_code_fields,
     sizeof(struct dm_mss_code_body)},
    {EVHTTP_REQ_POST, "/v1/admin/devices/revoke", dm_mss_admin_device_revoke, dm_mss_hw_id_fields,
     sizeof(struct dm_mss_hw_id_body)},
    {EVHTTP_REQ_GET, "/v1/admin/devices", dm_mss_admin_device_list, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/admin/devices/*", dm_mss_admin_device_get, NULL, 0},
    {EVHTTP_REQ_POST, "/v1/admin/cpes", dm_mss_cpe_create, dm_mss_cpe_fields,
     sizeof(struct dm_mss_cpe_body)},
    {EVHTTP_REQ_POST, "/v1/admin/cpes/status", dm_mss_cpe_status, dm_mss_cpe_status_fields,
     sizeof(struct dm_mss_cpe_status_body)},
    {EVHTTP_REQ_GET, "/v1/admin/cpes", dm_mss_cpe_list, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/admin/cpes/*", dm_mss_cpe_get, NULL, 0},
    {EVHTTP_REQ_POST, "/v1/admin/offline-bundles", dm_mss_bundle_create, dm_mss_bundle_fields,
     sizeof(struct dm_mss_bundle_body)},
    {0, NULL, NULL, NULL, 0},
};

const struct dm_mss_conf *dm_mss_conf(const struct daemon_ctx *d)
{
	return d->cfg.role;
}

struct dm_mss_state *dm_mss_state(const struct daemon_ctx *d)
{
	return d->role_state;
}

/* Read at each use (not at start) so that a SIGHUP reload applies to new requests. */
int64_t dm_mss_token_ttl(const struct daemon_ctx *d)
{
	int64_t v = dm_mss_conf(d)->token_ttl_s;

	return v > 0 ? v : DM_MSS_TOKEN_TTL;
}

int64_t dm_mss_bundle_ttl(const struct daemon_ctx *d)
{
	int64_t v = dm_mss_conf(d)->bundle_ttl_s;

	return v > 0 ? v : DM_MSS_BUNDLE_TTL;
}

static void dm_mss_purge(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_ctx *d = arg;
	int n;

	/* A spent assertion past exp + skew fails its exp check anyway. */
	if ((n = replay_purge(d->db, (int64_t)time(NULL) - JOSE_CLOCK_SKEW)) > 0)
		log_debug("forgot %d expired pairing assertion id(s)", n);
}

static void dm_mss_fini(struct daemon_ctx *d)
{
	struct dm_mss_state *st = d->role_state;

	if (st == NULL)
		return;
	if (st->ev_purge != NULL)
		event_free(st->ev_purge);
	dm_mss_pairing_free(st);
	dm_mss_packages_free(st);
	EVP_PKEY_free(st->enrol_key);
	free(st);
	d->role_state = NULL;
}

static int dm_mss_init(struct daemon_ctx *d)
{
	const struct dm_mss_conf *c = dm_mss_conf(d);
	struct dm_mss_state *st;
	char err[DM_MSS_ERRLEN];
	EVP_PKEY *agent_pub = NULL;
	char *url;
	size_t i;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		log_err("out of memory");
		return -1;
	}
	d->role_state = st;
	/* Checked only: devices are given the configured text as it is. */
	if ((url = cfg_https_url("dm_mss", "dm_iss_url", c->dm_iss_url, err, sizeof(err))) ==
	    NULL) {
		log_err("%s: %s", d->config_path, err);
		goto fail;
	}
	free(url);
	if (pki_cert_file_fingerprint(c->app_ca, 0, st->app_ca_fp, err, sizeof(err)) == -1 ||
	    (st->enrol_key = pki_key_load(c->enrolment_key, err, sizeof(err))) == NULL ||
	    (agent_pub = pki_pubkey_load(c->agent_pubkey, err, sizeof(err))) == NULL ||
	    dm_mss_packages_load(st, c->packages_dir, agent_pub, err, sizeof(err)) == -1) {
		log_err("%s", err);
		goto fail;
	}
	EVP_PKEY_free(agent_pub);
	agent_pub = NULL;
	if (c->cpe_ca == NULL)
		log_info("no dm_mss.cpe_ca: pairing assertions are refused (pairing_disabled)");
	else if (dm_mss_pairing_load(st, c->cpe_ca, d->cfg.tls.ca, err, sizeof(err)) == -1) {
		log_err("%s", err);
		goto fail;
	}
	if ((st->ev_purge = daemon_every(d, DM_MSS_PURGE_S, dm_mss_purge, d, err, sizeof(err))) ==
	    NULL) {
		log_err("%s", err);
		goto fail;
	}
	if (st->npkgs == 0)
		log_warn("no DM agent package in %s: every download request will get no_package",
		         c->packages_dir);
	for (i = 0; i < st->npkgs; i++)
		log_info("DM agent package %s version_number %lld (%lld bytes, sha256 %.16s...)",
		         st->pkgs[i].platform, (long long)st->pkgs[i].version_number,
		         (long long)st->pkgs[i].size, st->pkgs[i].sha256);
	return 0;

fail:
	EVP_PKEY_free(agent_pub);
	return -1; /* the runtime calls fini, which frees st */
}

const struct daemon_role dm_mss_role = {
    .name = "dm-mss",
    .migrations = dm_mss_migrations,
    /* A used activation code or a recorded device must survive a crash once answered. */
    .sync = DB_SYNC_FULL,
    .routes = dm_mss_routes,
    .cfg = {"dm_mss", dm_mss_conf_fields, sizeof(struct dm_mss_conf), 1},
    .init = dm_mss_init,
    .fini = dm_mss_fini,
};
