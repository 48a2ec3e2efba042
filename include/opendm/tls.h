/*
 * tls: the project's single TLS policy (DESIGN.md §2), for servers and clients.
 *
 * TLS 1.3 only; AEAD suites; groups X25519 and P-256; peer certificate required and verified
 * on both ends; no session tickets; no 0-RTT; SSL_OP_IGNORE_UNEXPECTED_EOF; optional CRL
 * checked for the whole chain. A private key file readable by group or others is refused.
 */
#ifndef OPENDM_TLS_H
#define OPENDM_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

#define TLS_CIPHERSUITES                                                                           \
	"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
#define TLS_GROUPS "X25519:P-256"

struct tls_conf {
	char *cert; /* PEM: leaf first, then intermediates */
	char *key;  /* PEM private key, mode 0600 or stricter */
	char *ca;   /* PEM trust anchors for verifying the peer */
	char *crl;  /* optional PEM CRL(s); NULL for none */
};

/* Who is on the other end, captured once when the handshake completes. */
struct tls_peer {
	char subject_cn[128];
	char issuer_cn[128];
	char serial[80];      /* hex, upper case */
	char fingerprint[65]; /* sha256 of the leaf DER, lower-case hex */
	char issuer_fp[65];   /* sha256 of the issuing CA certificate DER */
	char san_uri[256];    /* first URI SAN, "" if none (DM id lives here) */
	char ou[64];          /* first subject OU, "" if none */
	char ous[160];        /* every subject OU joined with ',' (an operator's roles) */
};

/* Server context: cert chain + key, verify clients against ca. NULL + message on error. */
SSL_CTX *tls_server_ctx(const struct tls_conf *conf, char *err, size_t errlen);
/* Client context for raw OpenSSL clients (bench, tests). */
SSL_CTX *tls_client_ctx(const struct tls_conf *conf, char *err, size_t errlen);
/* Apply the policy (versions, suites, groups, options) to a context made elsewhere, e.g. by
 * libcurl in CURLOPT_SSL_CTX_FUNCTION. 0/-1. */
int tls_apply_policy(SSL_CTX *ctx, char *err, size_t errlen);
/* Fill *peer from a verified connection's peer certificate and chain. 0/-1. */
int tls_peer_from_ssl(SSL *ssl, struct tls_peer *peer);
/* Fill *peer from a certificate (issuer_fp left empty). 0/-1. */
int tls_peer_from_cert(X509 *cert, struct tls_peer *peer);
/* Write "message: what OpenSSL said" into err (consuming the OpenSSL error queue); with no
 * buffer, only clear the queue. */
void tls_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Format the OpenSSL error queue (and clear it) into buf; returns buf. */
const char *tls_errstr(char *buf, size_t len);

#endif
