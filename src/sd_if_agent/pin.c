/*
 * pin: the pairing PIN shown on the TV and the proof a device makes of it. Pure functions
 * of their inputs (the PIN state lives in struct sdif, in memory only: a restart ends
 * pairing mode), so that the state machine is unit-tested on its own.
 *
 * The proof binds the PIN to the TLS session it travels in (the exporter), to the link key
 * the device will use (the SPKI hash) and to its hardware id: a man in the middle runs two
 * sessions with different exporters, so a proof relayed from one fails in the other.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "sd_if_agent.h"

#define SDIF_PIN_SPACE 1000000u
/* The largest multiple of 10^6 below 2^32: values from it up are drawn again, so that
 * every PIN is equally likely (no modulo bias). */
#define SDIF_PIN_LIMIT 4294000000u

int sdif_pin_new(struct sdif *s, time_t now, int64_t ttl_s, int attempts)
{
	unsigned char b[4];
	uint32_t v;

	sdif_pin_clear(s);
	if (ttl_s <= 0 || attempts <= 0)
		return -1;
	do {
		if (RAND_bytes(b, sizeof(b)) != 1)
			return -1;
		v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	} while (v >= SDIF_PIN_LIMIT);
	snprintf(s->pin, sizeof(s->pin), "%06u", (unsigned)(v % SDIF_PIN_SPACE));
	s->pin_expires = now + (time_t)ttl_s;
	s->pin_attempts_left = attempts;
	return 0;
}

void sdif_pin_clear(struct sdif *s)
{
	OPENSSL_cleanse(s->pin, sizeof(s->pin));
	s->pin_expires = 0;
	s->pin_attempts_left = 0;
}

int sdif_pin_active(const struct sdif *s, time_t now)
{
	return s->pin[0] != '\0' && now < s->pin_expires && s->pin_attempts_left > 0;
}

enum sdif_pin_verdict sdif_pin_try(struct sdif *s, time_t now, int proof_ok)
{
	if (!sdif_pin_active(s, now)) {
		/* Forget an expired PIN at once rather than keep a secret no one can use. */
		sdif_pin_clear(s);
		return SDIF_PIN_NONE;
	}
	if (proof_ok)
		return SDIF_PIN_OK;
	if (--s->pin_attempts_left > 0)
		return SDIF_PIN_WRONG;
	sdif_pin_clear(s);
	return SDIF_PIN_VOID;
}

int sdif_proof(const char *pin, const unsigned char exporter[SDIF_EXPORTER_LEN],
               const unsigned char spki_hash[32], const char *hw_id, unsigned char out[32])
{
	unsigned char msg[SDIF_EXPORTER_LEN + 32 + SDIF_HWID_MAX];
	size_t hl = strlen(hw_id);
	unsigned int outlen = 0;

	if (hl > SDIF_HWID_MAX || pin[0] == '\0')
		return -1;
	memcpy(msg, exporter, SDIF_EXPORTER_LEN);
	memcpy(msg + SDIF_EXPORTER_LEN, spki_hash, 32);
	memcpy(msg + SDIF_EXPORTER_LEN + 32, hw_id, hl);
	if (HMAC(EVP_sha256(), pin, (int)strlen(pin), msg, SDIF_EXPORTER_LEN + 32 + hl, out,
	         &outlen) == NULL ||
	    outlen != 32)
		return -1;
	return 0;
}

static int sdif_unhex(const char *hex, unsigned char *out, size_t n)
{
	size_t i;
	int hi, lo;

	if (strlen(hex) != 2 * n)
		return -1;
	for (i = 0; i < n; i++) {
		hi = OPENSSL_hexchar2int((unsigned char)hex[2 * i]);
		lo = OPENSSL_hexchar2int((unsigned char)hex[2 * i + 1]);
		/* The contract says lower case; an upper-case digit is a malformed proof. */
		if (hi < 0 || lo < 0 || (hex[2 * i] >= 'A' && hex[2 * i] <= 'F') ||
		    (hex[2 * i + 1] >= 'A' && hex[2 * i + 1] <= 'F'))
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int sdif_proof_check(const char *pin, const unsigned char exporter[SDIF_EXPORTER_LEN],
                     const unsigned char spki_hash[32], const char *hw_id, const char *proof_hex)
{
	unsigned char want[32], got[32];
	int ok;

	if (sdif_unhex(proof_hex, got, sizeof(got)) == -1 ||
	    sdif_proof(pin, exporter, spki_hash, hw_id, want) == -1)
		return 0;
	/* Constant time: the comparison must not tell how many leading bytes were right. */
	ok = CRYPTO_memcmp(want, got, sizeof(want)) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}

int sdif_spki_fp(EVP_PKEY *pub, unsigned char raw[32], char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	int len, i;

	if (pub == NULL || (len = i2d_PUBKEY(pub, &der)) <= 0)
		return -1;
	i = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	if (i != 1 || mdlen != sizeof(md))
		return -1;
	for (i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0x0f];
	}
	hex[64] = '\0';
	if (raw != NULL)
		memcpy(raw, md, sizeof(md));
	return 0;
}
