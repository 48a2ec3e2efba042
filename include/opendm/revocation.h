/*
 * revocation: the operator's signed list of revoked CDCS versions and vendor keys
 * (docs/protocol.md, "Revocation list"). A compact JWS ES256 by the operator approval key,
 * made by dmctl, stored by cdcs-mss, passed to agents by cdcs-pss and enforced by the agent.
 */
#ifndef OPENDM_REVOCATION_H
#define OPENDM_REVOCATION_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/evp.h>

#define REVOCATION_ISS          "opendm-operator"
#define REVOCATION_AUD          "opendm-dm-agent"
#define REVOCATION_SUB          "cdcs-revocations"
#define REVOCATION_MAX_VERSIONS 256
#define REVOCATION_MAX_KEYS     64
/* The longest JWS a full list (every entry and id at its maximum) makes, with room to spare:
 * more than JOSE_MAX_TOKEN, hence its own signing and checking here. */
#define REVOCATION_MAX_JWS (96 * 1024)

struct revocation_version {
	char vendor[65], name[65];
	int64_t version_number;
};

struct revocation_key {
	char vendor[65];
	char key_sha256[65];
};

struct revocation_list {
	int64_t serial;
	int64_t iat;
	size_t n_versions, n_keys;
	struct revocation_version *versions;
	struct revocation_key *keys;
};

/* Sign claims built from rl (iat 0: now) with the operator key, after checking rl as verify
 * would: a new JWS string (free) or NULL + err. */
char *revocation_sign(const struct revocation_list *rl, EVP_PKEY *operator_key, char *err,
                      size_t errlen);
/* Verify jws with the operator public key and decode (strict: every claim checked, bounds
 * enforced). 0, or -1 with *code ("bad_signature", "bad_claims") and err; free rl either way. */
int revocation_verify(const char *jws, EVP_PKEY *operator_pub, struct revocation_list *rl,
                      const char **code, char *err, size_t errlen);
void revocation_free(struct revocation_list *rl);
/* 1 if that version / that vendor key is on the list, else 0. */
int revocation_version_revoked(const struct revocation_list *rl, const char *vendor,
                               const char *name, int64_t version_number);
int revocation_key_revoked(const struct revocation_list *rl, const char *vendor,
                           const char *key_sha256);
/* Lower-case hex sha256 of the SubjectPublicKeyInfo DER of key. 0/-1. */
int revocation_key_sha256(EVP_PKEY *key, char out[65]);
/* The list as {"serial","iat","versions":[...],"vendor_keys":[...]} (new reference) or NULL. */
json_t *revocation_to_json(const struct revocation_list *rl);
/* The reverse (e.g. to extend the current list in dmctl): serial >= 0 (0: no list yet), iat
 * optional, entries checked as verify does, other keys ignored (so GET /v1/admin/revocations'
 * answer is accepted as is). 0/-1 + err; free rl either way. */
int revocation_from_json(const json_t *j, struct revocation_list *rl, char *err, size_t errlen);

#endif
