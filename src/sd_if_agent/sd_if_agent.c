/*
 * sd-if-agent: the role's description for the shared daemon runtime: its config section,
 * what it loads once at start (its own identity as a CPE, the application CA), the relay
 * listener and the control socket, and its endpoints.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/err.h>

#include "opendm/file.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/replay.h"
#include "sd_if_agent.h"

#define SDIF_PATH_MAX  4096
#define SDIF_URL_MAX   512
#define SDIF_CHAIN_MAX (64 * 1024)
#define SDIF_PURGE_S   60
#define SDIF_ERRLEN    512

static const struct schema_field sdif_conf_fields[] = {
    {"app_ca", SCHEMA_STRING, offsetof(struct sdif_conf, app_ca), 1, 1, SDIF_PATH_MAX, 0, NULL},
    /* sun_path holds 108 bytes with the NUL. */
    {"control_socket", SCHEMA_STRING, offsetof(struct sdif_conf, control_socket), 1, 1, 107, 0,
     NULL},
    {"relay_public_url", SCHEMA_STRING, offsetof(struct sdif_conf, relay_public_url), 1, 9,
     SDIF_URL_MAX, 0, NULL},
    {"pin_ttl_s", SCHEMA_INT, offsetof(struct sdif_conf, pin_ttl_s), 0, 1, 3600, 0, NULL},
    {"pin_attempts", SCHEMA_INT, offsetof(struct sdif_conf, pin_attempts), 0, 1, 20, 0, NULL},
    {"assertion_ttl_s", SCHEMA_INT, offsetof(struct sdif_conf, assertion_ttl_s), 0, 1, 3600, 0,
     NULL},
    {"relay", SCHEMA_OBJECT, offsetof(struct sdif_conf, relay), 1, 0, 0, 0, sdif_relay_fields},
    SCHEMA_END,
};

static const struct httpd_route sd_if_agent_routes[] = {
    {EVHTTP_REQ_POST, "/v1/pairing/pair", sdif_pair, sdif_pair_fields,
     sizeof(struct sdif_pair_body)},
    {EVHTTP_REQ_POST, "/v1/pairing/assertion", sdif_assertion, sdif_assertion_fields,
     sizeof(struct sdif_assertion_body)},
    {0, NULL, NULL, NULL, 0},
};

/* Who this CPE is: the CN of its TLS certificate (the CPE id dm-mss knows), the key that
 * signs its assertions, and the chain (leaf + CPE CA) sent with them. */
static int sdif_load_identity(struct sdif *s, const struct tls_conf *tls, char *err, size_t errlen)
{
	STACK_OF(X509) * certs;
	X509 *leaf;
	size_t len;
	int ret = -1;

	if ((certs = pki_certs_load(tls->cert, err, errlen)) == NULL)
		return -1;
	if ((leaf = sk_X509_value(certs, 0)) == NULL || sk_X509_num(certs) < 2 ||
	    pki_cert_cn(leaf, s->cn, sizeof(s->cn)) == -1) {
		snprintf(err, errlen,
		         "tls.cert: %s must hold the CPE certificate (with a CN) and "
		         "the CPE CA",
		         tls->cert);
		goto out;
	}
	if ((s->key = pki_key_load(tls->key, err, errlen)) == NULL)
		goto out;
	if (X509_check_private_key(leaf, s->key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "tls.key: %s does not match %s", tls->key, tls->cert);
		goto out;
	}
	if ((s->cert_chain = file_read(tls->cert, SDIF_CHAIN_MAX, &len, err, errlen)) == NULL)
		goto out;
	ret = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	return ret;
}

static void sdif_purge(evutil_socket_t fd, short what, void *arg)
{
	struct sdif *s = arg;
	int n;

	/* Link proofs past exp + skew fail their exp check anyway. */
	if ((n = replay_purge(s->d->db, (int64_t)time(NULL) - JOSE_CLOCK_SKEW)) > 0)
		log_debug("forgot %d expired link proof id(s)", n);
}

static int sdif_init(struct daemon_ctx *d)
{
	const struct sdif_conf *c = d->cfg.role;
	struct sdif *s;
	char err[SDIF_ERRLEN];

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_err("out of memory");
		return -1;
	}
	d->role_state = s;
	s->d = d;
	if (c == NULL) {
		snprintf(err, sizeof(err), "no sd_if_agent section");
		goto fail;
	}
	s->pin_ttl_s = c->pin_ttl_s > 0 ? c->pin_ttl_s : SDIF_PIN_TTL_DEFAULT;
	s->pin_attempts = c->pin_attempts > 0 ? (int)c->pin_attempts : SDIF_PIN_ATTEMPTS_DEFAULT;
	s->assertion_ttl_s =
	    c->assertion_ttl_s > 0 ? c->assertion_ttl_s : SDIF_ASSERTION_TTL_DEFAULT;
	if (pki_cert_file_fingerprint(c->app_ca, 0, s->app_ca_fp, err, sizeof(err)) == -1 ||
	    sdif_load_identity(s, &d->cfg.tls, err, sizeof(err)) == -1 ||
	    (s->relay_public_url = cfg_https_url("sd_if_agent", "relay_public_url",
	                                         c->relay_public_url, err, sizeof(err))) == NULL)
		goto fail;
	if (sdif_relay_start(s, &c->relay, err, sizeof(err)) == -1 ||
	    sdif_control_start(s, c->control_socket, err, sizeof(err)) == -1)
		goto fail;
	if ((s->ev_purge = daemon_every(d, SDIF_PURGE_S, sdif_purge, s, err, sizeof(err))) == NULL)
		goto fail;
	log_info("CPE %s: relay %s, pairing PINs valid %lld s, %d attempts", s->cn,
	         s->relay_public_url, (long long)s->pin_ttl_s, s->pin_attempts);
	return 0;
fail:
	log_err("%s", err);
	return -1;
}

/* Also runs when init failed half-way or never ran. */
static void sdif_fini(struct daemon_ctx *d)
{
	struct sdif *s = d->role_state;

	if (s == NULL)
		return;
	if (s->ev_purge != NULL)
		event_free(s->ev_purge);
	if (s->relay != NULL)
		sdif_relay_stop(s);
	sdif_control_stop(s);
	sdif_pin_clear(s);
	EVP_PKEY_free(s->key);
	free(s->cert_chain);
	free(s->relay_public_url);
	free(s);
	d->role_state = NULL;
}

const struct daemon_role sd_if_agent_role = {
    .name = "sd-if-agent",
    .migrations = sd_if_agent_migrations,
    .sync = DB_SYNC_FULL,
    .routes = sd_if_agent_routes,
    .cfg = {"sd_if_agent", sdif_conf_fields, sizeof(struct sdif_conf), 1},
    .init = sdif_init,
    .fini = sdif_fini,
};
