/*
 * sd-if-agent: the SD I/F agent of the primary CPE (J.1020 §7): pairs secondary devices with
 * the CPE (pairing.c, PIN bound to the TLS session), gives a paired device a fresh pairing
 * assertion for dm-mss (assertion.c), relays its traffic to the head-end through CONNECT tunnels
 * it cannot read (relay.c), and takes local admin commands on a unix socket (control.c, and
 * `sd-if-agent -c FILE ctl ...`, ctl.c). docs/protocol.md, "SD I/F agent".
 */
#ifndef SD_IF_AGENT_H
#define SD_IF_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <jansson.h>

#include "opendm/daemon.h"
#include "opendm/pairproof.h"
#include "opendm/httpd.h"
#include "opendm/schema.h"

#define SDIF_HWID_MAX 64
#define SDIF_CN_MAX   128

#define SDIF_PIN_TTL_DEFAULT       300
#define SDIF_PIN_ATTEMPTS_DEFAULT  5
#define SDIF_ASSERTION_TTL_DEFAULT 300
#define SDIF_LINK_CERT_MAX         (8 * 1024) /* PEM of a device's self-signed link cert */
#define SDIF_PROOF_TTL_MAX         120        /* how far ahead a link_proof's exp may be */
/* The TLS exporter both ends of a pairing session compute (RFC 8446 §7.5, no context). */

/* The "relay" part of the "sd_if_agent" config section. */
struct sdif_relay_conf {
	char *address;
	int64_t port;
	struct schema_strlist allow;    /* "127.0.0.1:8441" */
	int64_t max_tunnels;            /* 0: default 1024 */
	int64_t max_tunnels_per_device; /* 0: default 32 */
	int64_t connect_timeout_s;      /* 0: default 10 */
	int64_t idle_timeout_s;         /* 0: default 300 */
	int64_t max_preamble;           /* 0: default 4096 */
};

/* The "sd_if_agent" config section. */
struct sdif_conf {
	char *app_ca;
	char *control_socket;
	char *relay_public_url;
	int64_t pin_ttl_s;       /* 0: default 300 */
	int64_t pin_attempts;    /* 0: default 5 */
	int64_t assertion_ttl_s; /* 0: default 300 */
	struct sdif_relay_conf relay;
};

extern const struct schema_field sdif_relay_fields[]; /* relay.c */

struct sdif_relay; /* relay.c */
struct sdif_ctl;   /* control.c */

/* The role's state, made by init and kept for the life of the process. */
struct sdif {
	struct daemon_ctx *d;
	char cn[SDIF_CN_MAX + 1]; /* our own certificate's CN: the CPE id */
	char app_ca_fp[65];
	EVP_PKEY *key;    /* our TLS key: signs pairing assertions */
	char *cert_chain; /* our certificate + CPE CA (PEM), sent with assertions */
	char *relay_public_url;
	/* Pairing mode: the PIN shown on the TV, while it lasts. */
	char pin[7];
	time_t pin_expires;
	int pin_attempts_left;
	/* Copied from the config at init: a SIGHUP swaps d->cfg, so nothing points into it. */
	int64_t pin_ttl_s;
	int64_t assertion_ttl_s;
	int pin_attempts;
	struct sdif_relay *relay;
	struct sdif_ctl *ctl;
	struct event *ev_purge; /* forgets spent link-proof ids */
};

extern const struct daemon_role sd_if_agent_role;
extern const struct db_migration sd_if_agent_migrations[];

/*
 * relay.c: the CONNECT relay on its own listener (sd_if_agent.relay). start: 0/-1 + err.
 * stop closes every tunnel. close_link: close the open tunnels of the device with this link
 * fingerprint (after an unpair); returns how many. count: open tunnels (total if fp NULL).
 */
int sdif_relay_start(struct sdif *s, const struct sdif_relay_conf *c, char *err, size_t errlen);
void sdif_relay_stop(struct sdif *s);
int sdif_relay_close_link(struct sdif *s, const char *link_fp);
size_t sdif_relay_count(struct sdif *s, const char *link_fp);

/*
 * store.c: 1 and hw_id filled if link_fp (sha256 hex of the link key's SPKI) belongs to an
 * active pairing, 0 if not, -1 on error. The relay asks at every new tunnel.
 */
int sdif_store_link_active(struct db *db, const char *link_fp, char *hw_id, size_t len);
/* The link certificate (PEM, malloc'd) of hw_id's active pairing: 1 found, 0 none, -1 error. */
int sdif_store_link_cert(struct db *db, const char *hw_id, char **pem);
/* Record a pairing, replacing any earlier row of hw_id. 0/-1; the caller holds the
 * transaction. */
int sdif_store_pair(struct db *db, const char *hw_id, const char *link_fp, const char *link_pem,
                    int64_t now);
/* Mark hw_id's pairing ended: 1 done (link_fp filled), 0 no active pairing, -1 error. */
int sdif_store_unpair(struct db *db, const char *hw_id, int64_t now, char link_fp[65]);
/* Every pairing (active and ended) as a JSON array of objects, or NULL on error. */
json_t *sdif_store_list(struct db *db);

/*
 * pin.c: the pairing PIN and its proof, pure functions of their inputs (unit-tested).
 * sdif_pin_new: a fresh uniform 6-digit PIN, valid ttl_s from now, attempts wrong proofs
 * allowed; replaces any earlier PIN. 0/-1 (no randomness).
 */
int sdif_pin_new(struct sdif *s, time_t now, int64_t ttl_s, int attempts);
/* What a pairing attempt with a (right or wrong) proof means for the PIN state. */
enum sdif_pin_verdict {
	SDIF_PIN_NONE,  /* no PIN, or it expired: 409 not_pairing */
	SDIF_PIN_OK,    /* right proof: pair, then sdif_pin_clear() */
	SDIF_PIN_WRONG, /* wrong proof, attempts remain: 403 wrong_pin */
	SDIF_PIN_VOID,  /* wrong proof, the last allowed: PIN cleared, 429 too_many_attempts */
};
/* 1 while a PIN is shown and valid at now. */
int sdif_pin_active(const struct sdif *s, time_t now);
enum sdif_pin_verdict sdif_pin_try(struct sdif *s, time_t now, int proof_ok);
void sdif_pin_clear(struct sdif *s);
/* sha256 of pub's DER SubjectPublicKeyInfo: raw (may be NULL) and lower-case hex. 0/-1. */

/* control.c: the local admin socket (sd_if_agent.control_socket, 0600). 0/-1 + err. */
int sdif_control_start(struct sdif *s, const char *path, char *err, size_t errlen);
void sdif_control_stop(struct sdif *s);

/* ctl.c: `sd-if-agent -c FILE ctl ...` (argv after "ctl"); returns the exit status. */
int sdif_ctl_main(const char *config_path, int argc, char **argv);

/* pairing.c, assertion.c: the API endpoints and their bodies. */
struct sdif_pair_body {
	char *hw_id;
	char *link_cert;
	char *proof;
};
struct sdif_assertion_body {
	char *hw_id;
	char *link_proof;
};
extern const struct schema_field sdif_pair_fields[];
extern const struct schema_field sdif_assertion_fields[];
void sdif_pair(struct httpd_req *req, void *arg);
void sdif_assertion(struct httpd_req *req, void *arg);
/* 1 if the client holds an application certificate (issuer = app CA) and hw_id is
 * well-formed; else replied 403 not_application or 400 bad_request, 0. */
int sdif_request_ok(struct sdif *s, struct httpd_req *req, const char *hw_id);
/* 1 if hw_id is 4-64 characters of A-Z a-z 0-9 . _ : - (it is logged and stored). */
int sdif_hwid_ok(const char *hw_id);

#endif
