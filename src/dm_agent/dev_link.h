/*
 * dev_link: the device's link with its primary CPE (SD I/F agent, issue 5): the link
 * credential and pairing record in state_dir/link (key.pem, cert.pem, pairing.json), the
 * pairing proof, and the relay settings that every head-end request of dm-app and dm-agent
 * uses while the device is paired (docs/integrator-guide.md, "Pairing with a CPE").
 */
#ifndef OPENDM_DEV_LINK_H
#define OPENDM_DEV_LINK_H

#include <limits.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "opendm/httpc.h"

#include "dev.h"

#define DEV_LINK_DAYS 365
#define DEV_PIN_LEN   6

struct dev_link {
	int paired;       /* pairing.json is there, intact, and device.json has a cpe section */
	char cpe[129];    /* the CPE's certificate CN */
	char link_fp[65]; /* sha256 (hex) of the link key's SubjectPublicKeyInfo */
	char relay_url[1025];
	int64_t paired_at;
	char cert[PATH_MAX]; /* state_dir/link/cert.pem */
	char key[PATH_MAX];  /* state_dir/link/key.pem */
};

/* A new link key and its self-signed certificate: CN hw_id, OU link, DEV_LINK_DAYS. 0/-1. */
int dev_link_new(const char *hw_id, EVP_PKEY **key, X509 **cert, char *err, size_t errlen);
/* sha256 of cert's DER SubjectPublicKeyInfo, raw and/or lower-case hex (either may be NULL). */
int dev_link_spki(X509 *cert, unsigned char raw[32], char hex[65]);
/* 1 if pin is exactly DEV_PIN_LEN decimal digits. */
int dev_pin_ok(const char *pin);
/* The TLS exporter of a pairing session (both ends compute it). 0/-1. */
/*
 * proof = HMAC-SHA256(key = pin ASCII, exporter || sha256(link SPKI) || hw_id ASCII) as 64
 * lower-case hex: knowledge of the PIN bound to this very TLS session. 0/-1.
 */
/*
 * Store a pairing: pairing.json is removed first, then key.pem (0600) and cert.pem are
 * written and pairing.json last, so a crash never leaves a record naming another key.
 * l gives cpe, link_fp, relay_url and paired_at. 0/-1 + err.
 */
int dev_link_save(const struct dev_config *cfg, EVP_PKEY *key, X509 *cert, const struct dev_link *l,
                  char *err, size_t errlen);
/* The stored link: 0 with l->paired set or not; -1 + err when a pairing record is there but
 * damaged (a paired device must not fall back to the direct path silently). */
int dev_link_load(const struct dev_config *cfg, struct dev_link *l, char *err, size_t errlen);
/*
 * hc->proxy and hc->proxy_tls: the CPE relay with the link credential (CA = cpe.ca) when l
 * is paired, else the configured proxy (if any) with the application credential. hc points
 * into l and cfg afterwards (httpc_new copies what it keeps).
 */
void dev_link_proxy(const struct dev_config *cfg, const struct dev_link *l, struct httpc_conf *hc);
/* dev_link_load() then dev_link_proxy(): what dm-app and dm-agent call before httpc_new. */
int dev_link_httpc_conf(const struct dev_config *cfg, struct dev_link *l, struct httpc_conf *hc,
                        char *err, size_t errlen);

#endif
