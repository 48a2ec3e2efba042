/*
 * pairproof: the proof that pairs a device with its CPE (docs/protocol.md, "Pairing"), in one
 * place for both ends. The device proves it knows the PIN shown on the TV, bound to its TLS
 * session with the CPE (RFC 8446 exporter) and to its link key:
 *   proof = HMAC-SHA256(key = PIN, exporter(32) || SHA-256(link SPKI DER) || hw_id)
 * A man in the middle has another session, hence another exporter, and cannot pass it on.
 */
#ifndef OPENDM_PAIRPROOF_H
#define OPENDM_PAIRPROOF_H

#include <openssl/evp.h>
#include <openssl/ssl.h>

#define PAIRPROOF_EXPORTER_LABEL "EXPORTER-opendm-pairing"
#define PAIRPROOF_EXPORTER_LEN   32
#define PAIRPROOF_HWID_MAX       64

/* The session's exporter value (either end of the TLS 1.3 connection). 0/-1. */
int pairproof_exporter(SSL *ssl, unsigned char out[PAIRPROOF_EXPORTER_LEN]);
/* SHA-256 of pub's SubjectPublicKeyInfo DER: raw (may be NULL) and lower-case hex (may be
 * NULL). This is a link's fingerprint. 0/-1. */
int pairproof_spki(EVP_PKEY *pub, unsigned char raw[32], char hex[65]);
/* The proof as 64 lower-case hex characters. -1 for an empty PIN or an over-long hw_id. */
int pairproof_make(const char *pin, const unsigned char exporter[PAIRPROOF_EXPORTER_LEN],
                   const unsigned char spki[32], const char *hw_id, char hex[65]);
/* 1 if proof_hex is that proof (lower-case hex, compared in constant time), else 0. */
int pairproof_check(const char *pin, const unsigned char exporter[PAIRPROOF_EXPORTER_LEN],
                    const unsigned char spki[32], const char *hw_id, const char *proof_hex);

#endif
