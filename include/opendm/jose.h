/*
 * jose: signed tokens (compact JWS, ES256) and sealed secrets (compact JWE, ECDH-ES+A256GCM),
 * made and checked with cjose. Keys are EC P-256 EVP_PKEYs.
 *
 * jose_verify() checks, in this order: signature, alg == ES256, iss, aud, exp (with skew),
 * iat not in the future, sub when asked, then records jti through the caller's replay store
 * so a token is accepted once only.
 */
#ifndef OPENDM_JOSE_H
#define OPENDM_JOSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <cjose/cjose.h>

#define JOSE_MAX_TOKEN  (16 * 1024)
#define JOSE_CLOCK_SKEW 60 /* seconds */

/*
 * Replay store: record jti until exp. Returns 0 when it was new and is now recorded, 1 when it
 * was already recorded (replay), -1 on storage error.
 */
typedef int (*jose_jti_fn)(void *arg, const char *jti, int64_t exp);

struct jose_expect {
	const char *iss;    /* required issuer */
	const char *aud;    /* required audience (this daemon) */
	const char *sub;    /* required subject, or NULL not to check */
	time_t now;         /* 0 = time(NULL) */
	jose_jti_fn jti_fn; /* NULL: jti not checked (only for non-token uses) */
	void *jti_arg;
};

/*
 * Sign claims (a JSON object; iat, exp and jti are added when absent: exp = iat + ttl_s,
 * jti = 128 random bits) as compact JWS ES256 with key (kid optional). malloc'd or NULL.
 */
char *jose_sign(EVP_PKEY *key, const char *kid, const json_t *claims, int64_t ttl_s, char *err,
                size_t errlen);
/*
 * Verify a compact JWS with pub and check claims against exp. Returns the claims (new ref)
 * or NULL with a short reason in err and, in *code, a snake_case code for the error reply
 * (bad_token, token_expired, token_replayed, wrong_audience, wrong_issuer, wrong_subject).
 */
json_t *jose_verify(EVP_PKEY *pub, const char *token, const struct jose_expect *exp,
                    const char **code, char *err, size_t errlen);

/* The HTTP status a daemon answers for a jose_verify() code: 401 for a bad, expired or
 * misdirected token, 403 wrong_subject (someone else's), 409 token_replayed, 500 otherwise. */
int jose_code_status(const char *code);

/* Encrypt plaintext to recipient pub (EC P-256) as compact JWE ECDH-ES + A256GCM. */
char *jose_encrypt(EVP_PKEY *pub, const void *plaintext, size_t len, char *err, size_t errlen);
/* Decrypt with the private key; malloc'd plaintext and *len, or NULL + err. */
void *jose_decrypt(EVP_PKEY *key, const char *jwe, size_t *len, char *err, size_t errlen);

/* A random identifier: nbytes of randomness as lower-case hex into buf (2*nbytes+1). */
int jose_random_hex(char *buf, size_t buflen, size_t nbytes);

/* A cjose JWK for an EC P-256 key: the public half, or the whole key when priv is set (for
 * signed objects jose_sign/jose_verify do not fit, e.g. the revocation list). NULL + err. */
cjose_jwk_t *jose_jwk(EVP_PKEY *key, int priv, char *err, size_t errlen);

#endif
