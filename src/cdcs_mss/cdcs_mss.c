/*
 * cdcs-mss: the role's description for the shared daemon runtime: its config section, the
 * keys and the client it loads once at start, and its endpoints.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>

#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/replay.h"
#include "cdcs_mss.h"

#define CDCS_MSS_PURGE_S          60
#define CDCS_MSS_ISS_MAX_RESPONSE (64 * 1024)

static const struct schema_field cdcs_mss_conf_fields[] = {
    {"device_ca", SCHEMA_STRING, offsetof(struct cdcs_mss_conf, device_ca), 1, 1, CDCS_MSS_PATH_MAX,
     0, NULL},
    {"catalogue_dir", SCHEMA_STRING, offsetof(struct cdcs_mss_conf, catalogue_dir), 1, 1,
     CDCS_MSS_PATH_MAX, 0, NULL},
    {"vendor_keys", SCHEMA_JSON, offsetof(struct cdcs_mss_conf, vendor_keys), 1, 0, 0, 0, NULL},
    {"operator_pubkey", SCHEMA_STRING, offsetof(struct cdcs_mss_conf, operator_pubkey), 1, 1,
     CDCS_MSS_PATH_MAX, 0, NULL},
    {"ticket_key", SCHEMA_STRING, offsetof(struct cdcs_mss_conf, ticket_key), 1, 1,
     CDCS_MSS_PATH_MAX, 0, NULL},
    {"public_url", SCHEMA_STRING, offsetof(struct cdcs_mss_conf, public_url), 1, 9,
     CDCS_MSS_URL_MAX, 0, NULL},
    {"cdcs_iss_url", SCHEMA_STRING, offsetof(struct cdcs_mss_conf, cdcs_iss_url), 1, 9,
     CDCS_MSS_URL_MAX, 0, NULL},
    {"download_ticket_ttl_s", SCHEMA_INT, offsetof(struct cdcs_mss_conf, download_ticket_ttl_s), 0,
     1, CDCS_MSS_TICKET_TTL_MAX, 0, NULL},
    {"session_ttl_s", SCHEMA_INT, offsetof(struct cdcs_mss_conf, session_ttl_s), 0, 1,
     CDCS_MSS_SESSION_TTL_MAX, 0, NULL},
    SCHEMA_END,
};

static const struct httpd_route cdcs_mss_routes[] = {
    {EVHTTP_REQ_POST, "/v1/internal/prepare", cdcs_mss_prepare, cdcs_mss_prepare_fields,
     sizeof(struct cdcs_mss_prepare_body)},
    {EVHTTP_REQ_POST, "/v1/cdcs/download", cdcs_mss_download, cdcs_mss_download_fields,
     sizeof(struct cdcs_mss_download_body)},
    {EVHTTP_REQ_GET, "/v1/cdcs/images/*", cdcs_mss_image_get, NULL, 0},
    {EVHTTP_REQ_POST, "/v1/admin/images", cdcs_mss_admin_register, cdcs_mss_path_fields,
     sizeof(struct cdcs_mss_path_body)},
    {EVHTTP_REQ_GET, "/v1/admin/images", cdcs_mss_admin_list, NULL, 0},
    {EVHTTP_REQ_POST, "/v1/admin/images/withdraw", cdcs_mss_admin_withdraw, cdcs_mss_ident_fields,
     sizeof(struct cdcs_mss_ident_body)},
    {EVHTTP_REQ_PUT, "/v1/admin/revocations", cdcs_mss_revocations_put, cdcs_mss_revocations_fields,
     sizeof(struct cdcs_mss_revocations_body)},
    {EVHTTP_REQ_GET, "/v1/admin/revocations", cdcs_mss_revocations_get, NULL, 0},
    {EVHTTP_REQ_GET, "/v1/internal/catalogue/*", cdcs_mss_catalogue_get, NULL, 0},
    {0, NULL, NULL, NULL, 0},
};

/* Read at each use (not at start) so that a SIGHUP reload applies to new requests. */
int64_t cdcs_mss_ticket_ttl(const struct daemon_ctx *d)
{
	const struct cdcs_mss_conf *c = d->cfg.role;

	return c->download_ticket_ttl_s > 0 ? c->download_ticket_ttl_s : CDCS_MSS_TICKET_TTL;
}

int64_t cdcs_mss_session_ttl(const struct daemon_ctx *d)
{
	const struct cdcs_mss_conf *c = d->cfg.role;

	return c->session_ttl_s > 0 ? c->session_ttl_s : CDCS_MSS_SESSION_TTL;
}

int cdcs_mss_text_ok(const char *s, size_t max)
{
	size_t i, n = strnlen(s, max + 1);

	if (n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return 0;
	return 1;
}

static void cdcs_mss_purge(evutil_socket_t fd, short what, void *arg)
{
	struct cdcs_mss *s = arg;
	int64_t now = (int64_t)time(NULL);
	int n;

	/* A ticket past exp + skew fails its exp check anyway; an expired session is refused
	 * before its row is gone, so both can be forgotten. */
	if ((n = replay_purge(s->d->db, now - JOSE_CLOCK_SKEW)) > 0)
		log_debug("forgot %d expired ticket id(s)", n);
	if ((n = cdcs_mss_store_session_purge(s->d->db, now - JOSE_CLOCK_SKEW)) > 0)
		log_debug("forgot %d expired download session(s)", n);
}

static int cdcs_mss_load(struct cdcs_mss *s, const struct cdcs_mss_conf *c, char *err,
                         size_t errlen)
{
	struct stat sb;
	char e[CDCS_MSS_ERRLEN - 64]; /* room for the key name in err */

	if (pki_cert_file_fingerprint(c->device_ca, 0, s->device_ca_fp, e, sizeof(e)) == -1) {
		snprintf(err, errlen, "cdcs_mss.device_ca: %s", e);
		return -1;
	}
	if (cdcsimg_keyring_load(&s->v.vendors, c->vendor_keys, e, sizeof(e)) == -1) {
		snprintf(err, errlen, "cdcs_mss.%s", e);
		return -1;
	}
	if ((s->v.operator_pub = pki_pubkey_load(c->operator_pubkey, e, sizeof(e))) == NULL) {
		snprintf(err, errlen, "cdcs_mss.operator_pubkey: %s", e);
		return -1;
	}
	/* pki_key_load() refuses a key file readable by group or others. */
	if ((s->ticket_key = pki_key_load(c->ticket_key, e, sizeof(e))) == NULL) {
		snprintf(err, errlen, "cdcs_mss.ticket_key: %s", e);
		return -1;
	}
	if (stat(c->catalogue_dir, &sb) == -1 || !S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "cdcs_mss.catalogue_dir: %s: %s", c->catalogue_dir,
		         S_ISDIR(sb.st_mode) ? strerror(errno) : "not a directory");
		return -1;
	}
	if ((s->catalogue_dir = strdup(c->catalogue_dir)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((s->public_url = cfg_https_url("cdcs_mss", "public_url", c->public_url, err, errlen)) ==
	        NULL ||
	    (s->cdcs_iss_url =
	         cfg_https_url("cdcs_mss", "cdcs_iss_url", c->cdcs_iss_url, err, errlen)) == NULL)
		return -1;
	return 0;
}

static int cdcs_mss_init(struct daemon_ctx *d)
{
	const struct cdcs_mss_conf *c = d->cfg.role;
	struct cdcs_mss *s;
	char err[CDCS_MSS_ERRLEN];

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_err("out of memory");
		return -1;
	}
	d->role_state = s;
	s->d = d;
	TAILQ_INIT(&s->pending);
	if (c == NULL) {
		snprintf(err, sizeof(err), "no cdcs_mss section");
		goto fail;
	}
	if (cdcs_mss_load(s, c, err, sizeof(err)) == -1)
		goto fail;
	if (cdcs_mss_revocations_init(s) == -1) {
		snprintf(err, sizeof(err), "cannot apply the stored revocation list");
		goto fail;
	}

	/* Our service certificate is serverAuth + clientAuth: it is also who we are to
	 * cdcs-iss. */
	if ((s->iss = daemon_peer_client(d, CDCS_MSS_ISS_MAX_RESPONSE, err, sizeof(err))) == NULL)
		goto fail;

	if ((s->ev_purge =
	         daemon_every(d, CDCS_MSS_PURGE_S, cdcs_mss_purge, s, err, sizeof(err))) == NULL)
		goto fail;
	log_info("catalogue %s, %zu vendor key(s), cdcs-iss at %s, devices from %s",
	         s->catalogue_dir, s->v.vendors.n, s->cdcs_iss_url, c->device_ca);
	return 0;
fail:
	log_err("%s", err);
	return -1;
}

/* Also runs when init failed half-way or never ran. */
static void cdcs_mss_fini(struct daemon_ctx *d)
{
	struct cdcs_mss *s = d->role_state;

	if (s == NULL)
		return;
	if (s->ev_purge != NULL)
		event_free(s->ev_purge);
	/* Cancels what is in flight without calling back: the waiting requests go next. */
	httpc_free(s->iss);
	cdcs_mss_pending_drop(s);
	cdcsimg_keyring_free(&s->v.vendors);
	EVP_PKEY_free(s->v.operator_pub);
	EVP_PKEY_free(s->ticket_key);
	free(s->catalogue_dir);
	free(s->public_url);
	free(s->cdcs_iss_url);
	free(s);
	d->role_state = NULL;
}

const struct daemon_role cdcs_mss_role = {
    .name = "cdcs-mss",
    .migrations = cdcs_mss_migrations,
    .sync = DB_SYNC_FULL,
    .routes = cdcs_mss_routes,
    .cfg = {"cdcs_mss", cdcs_mss_conf_fields, sizeof(struct cdcs_mss_conf), 1},
    .init = cdcs_mss_init,
    .fini = cdcs_mss_fini,
};
