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
