/*
 * dm-iss: the role's description for the shared daemon runtime: its config section, the
 * keys and clients it loads once at start, and its endpoints.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "opendm/file.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/replay.h"
#include "dm_iss.h"

#define DM_ISS_PATH_MAX         4096
#define DM_ISS_BUNDLE_MAX       (256 * 1024)
#define DM_ISS_PURGE_S          60
#define DM_ISS_MSS_MAX_RESPONSE (64 * 1024)

static const struct schema_field dm_iss_conf_fields[] = {
    {"app_ca", SCHEMA_STRING, offsetof(struct dm_iss_conf, app_ca), 1, 1, DM_ISS_PATH_MAX, 0, NULL},
    {"enrolment_pubkey", SCHEMA_STRING, offsetof(struct dm_iss_conf, enrolment_pubkey), 1, 1,
     DM_ISS_PATH_MAX, 0, NULL},
    {"device_ca_cert", SCHEMA_STRING, offsetof(struct dm_iss_conf, device_ca_cert), 1, 1,
     DM_ISS_PATH_MAX, 0, NULL},
    {"device_ca_key", SCHEMA_STRING, offsetof(struct dm_iss_conf, device_ca_key), 1, 1,
     DM_ISS_PATH_MAX, 0, NULL},
    {"trust_bundle", SCHEMA_STRING, offsetof(struct dm_iss_conf, trust_bundle), 1, 1,
     DM_ISS_PATH_MAX, 0, NULL},
    {"dm_mss_url", SCHEMA_STRING, offsetof(struct dm_iss_conf, dm_mss_url), 1, 9, DM_ISS_URL_MAX, 0,
     NULL},
    {"cdcs_pss_url", SCHEMA_STRING, offsetof(struct dm_iss_conf, cdcs_pss_url), 1, 9,
     DM_ISS_URL_MAX, 0, NULL},
    {"cert_days", SCHEMA_INT, offsetof(struct dm_iss_conf, cert_days), 0, 1, DM_ISS_CERT_DAYS_MAX,
     0, NULL},
    SCHEMA_END,
};

static const struct httpd_route dm_iss_routes[] = {
    {EVHTTP_REQ_POST, "/v1/agent/personalize", dm_iss_personalize, dm_iss_personalize_fields,
     sizeof(struct dm_iss_personalize_body)},
    {EVHTTP_REQ_GET, "/v1/internal/dm/*", dm_iss_lookup, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/admin/dms", dm_iss_admin_dms, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/admin/dms/*", dm_iss_admin_dm, NULL, 0},
    {0, NULL, NULL, NULL, 0},
};

static int dm_iss_load_ca(struct dm_iss *s, const struct dm_iss_conf *c, char *err, size_t errlen)
{
	STACK_OF(X509) * certs;

	if ((certs = pki_certs_load(c->device_ca_cert, err, errlen)) == NULL)
		return -1;
	s->ca_cert = sk_X509_shift(certs);
	sk_X509_pop_free(certs, X509_free);
	if (s->ca_cert == NULL || X509_check_ca(s->ca_cert) == 0) {
		snprintf(err, errlen, "dm_iss.device_ca_cert: %s is not a CA certificate",
		         c->device_ca_cert);
		return -1;
	}
	if ((s->ca_key = pki_key_load(c->device_ca_key, err, errlen)) == NULL)
		return -1;
	if (X509_check_private_key(s->ca_cert, s->ca_key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "dm_iss.device_ca_key: %s does not match %s",
		         c->device_ca_key, c->device_ca_cert);
		return -1;
	}
	if ((s->ca_pem = pki_cert_pem(s->ca_cert)) == NULL) {
		snprintf(err, errlen, "cannot encode the device CA certificate");
		return -1;
	}
	return 0;
}

static int dm_iss_load_bundle(struct dm_iss *s, const struct dm_iss_conf *c, char *err,
                              size_t errlen)
{
	STACK_OF(X509) * certs;
	size_t len;

	/* Parsed once here so that a broken file stops the daemon, not every device. */
	if ((certs = pki_certs_load(c->trust_bundle, err, errlen)) == NULL)
		return -1;
	sk_X509_pop_free(certs, X509_free);
	if ((s->trust_bundle = file_read(c->trust_bundle, DM_ISS_BUNDLE_MAX, &len, err, errlen)) ==
	    NULL)
		return -1;
	return 0;
}

static void dm_iss_purge(evutil_socket_t fd, short what, void *arg)
{
	struct dm_iss *s = arg;
	int n;

	/* A token past exp + skew fails its exp check anyway; its row is no longer needed
	 * (a retry is recognised through issued_cert, which is kept). */
	if ((n = replay_purge(s->d->db, (int64_t)time(NULL) - JOSE_CLOCK_SKEW)) > 0)
		log_debug("forgot %d expired token id(s)", n);
}

static int dm_iss_init(struct daemon_ctx *d)
{
	const struct dm_iss_conf *c = d->cfg.role;
	struct dm_iss *s;
	char err[DM_ISS_ERRLEN];

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_err("out of memory");
		return -1;
	}
	d->role_state = s;
	s->d = d;
	TAILQ_INIT(&s->pending);
	TAILQ_INIT(&s->lookups);
	if (c == NULL) {
		snprintf(err, sizeof(err), "no dm_iss section");
		goto fail;
	}
	if (pki_cert_file_fingerprint(c->app_ca, 0, s->app_ca_fp, err, sizeof(err)) == -1 ||
	    (s->enrolment_pub = pki_pubkey_load(c->enrolment_pubkey, err, sizeof(err))) == NULL ||
	    dm_iss_load_ca(s, c, err, sizeof(err)) == -1 ||
	    dm_iss_load_bundle(s, c, err, sizeof(err)) == -1 ||
	    (s->dm_mss_url =
	         cfg_https_url("dm_iss", "dm_mss_url", c->dm_mss_url, err, sizeof(err))) == NULL ||
	    (s->cdcs_pss_url = cfg_https_url("dm_iss", "cdcs_pss_url", c->cdcs_pss_url, err,
	                                     sizeof(err))) == NULL)
		goto fail;
	s->cert_days = c->cert_days > 0 ? c->cert_days : DM_ISS_CERT_DAYS_DEFAULT;

	/* Our service certificate is serverAuth + clientAuth: it is also who we are to dm-mss. */
	if ((s->mss = daemon_peer_client(d, DM_ISS_MSS_MAX_RESPONSE, err, sizeof(err))) == NULL)
		goto fail;

	if ((s->ev_purge = daemon_every(d, DM_ISS_PURGE_S, dm_iss_purge, s, err, sizeof(err))) ==
	    NULL)
		goto fail;
	log_info("device CA %s, certificates for %lld days, dm-mss at %s", c->device_ca_cert,
	         (long long)s->cert_days, s->dm_mss_url);
	return 0;
fail:
	log_err("%s", err);
	return -1;
}

/* Also runs when init failed half-way or never ran. */
static void dm_iss_fini(struct daemon_ctx *d)
{
	struct dm_iss *s = d->role_state;

	if (s == NULL)
		return;
	if (s->ev_purge != NULL)
		event_free(s->ev_purge);
	/* Cancels what is in flight without calling back: the waiting requests go next. */
	httpc_free(s->mss);
	dm_iss_pending_drop(s);
	dm_iss_lookup_drop(s);
	EVP_PKEY_free(s->enrolment_pub);
	EVP_PKEY_free(s->ca_key);
	X509_free(s->ca_cert);
	free(s->ca_pem);
	free(s->trust_bundle);
	free(s->dm_mss_url);
	free(s->cdcs_pss_url);
	free(s);
	d->role_state = NULL;
}

const struct daemon_role dm_iss_role = {
    .name = "dm-iss",
    .migrations = dm_iss_migrations,
    .sync = DB_SYNC_FULL,
    .routes = dm_iss_routes,
    .cfg = {"dm_iss", dm_iss_conf_fields, sizeof(struct dm_iss_conf), 1},
    .init = dm_iss_init,
    .fini = dm_iss_fini,
};
