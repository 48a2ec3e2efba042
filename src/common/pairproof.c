/* pairproof: the device-CPE pairing proof (pairproof.h). */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>

#include "opendm/pairproof.h"

static const char pairproof_digits[] = "0123456789abcdef";

static void pairproof_hex(const unsigned char *in, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = pairproof_digits[in[i] >> 4];
		out[2 * i + 1] = pairproof_digits[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

int pairproof_exporter(SSL *ssl, unsigned char out[PAIRPROOF_EXPORTER_LEN])
{
	return SSL_export_keying_material(ssl, out, PAIRPROOF_EXPORTER_LEN,
	                                  PAIRPROOF_EXPORTER_LABEL,
	                                  strlen(PAIRPROOF_EXPORTER_LABEL), NULL, 0, 0) == 1
	           ? 0
	           : -1;
}

int pairproof_spki(EVP_PKEY *pub, unsigned char raw[32], char hex[65])
{
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	int len, ok;

	if (pub == NULL || (len = i2d_PUBKEY(pub, &der)) <= 0)
		return -1;
	ok = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	if (ok != 1 || mdlen != sizeof(md))
		return -1;
	if (hex != NULL)
		pairproof_hex(md, sizeof(md), hex);
	if (raw != NULL)
		memcpy(raw, md, sizeof(md));
	return 0;
}

static int pairproof_mac(const char *pin, const unsigned char exporter[PAIRPROOF_EXPORTER_LEN],
                         const unsigned char spki[32], const char *hw_id, unsigned char out[32])
{
	unsigned char msg[PAIRPROOF_EXPORTER_LEN + 32 + PAIRPROOF_HWID_MAX];
	size_t hl = strlen(hw_id);
	unsigned int outlen = 0;

	if (hl > PAIRPROOF_HWID_MAX || pin[0] == '\0')
		return -1;
	memcpy(msg, exporter, PAIRPROOF_EXPORTER_LEN);
	memcpy(msg + PAIRPROOF_EXPORTER_LEN, spki, 32);
	memcpy(msg + PAIRPROOF_EXPORTER_LEN + 32, hw_id, hl);
	if (HMAC(EVP_sha256(), pin, (int)strlen(pin), msg, PAIRPROOF_EXPORTER_LEN + 32 + hl, out,
	         &outlen) == NULL ||
	    outlen != 32)
		return -1;
	return 0;
}

int pairproof_make(const char *pin, const unsigned char exporter[PAIRPROOF_EXPORTER_LEN],
                   const unsigned char spki[32], const char *hw_id, char hex[65])
{
	unsigned char mac[32];

	if (pairproof_mac(pin, exporter, spki, hw_id, mac) == -1)
		return -1;
	pairproof_hex(mac, sizeof(mac), hex);
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

/* Lower-case hex only: the protocol says so, and an upper-case digit is a malformed proof. */
static int pairproof_unhex(const char *hex, unsigned char *out, size_t n)
{
	const char *a, *b;
	size_t i;

	if (strlen(hex) != 2 * n)
		return -1;
	for (i = 0; i < n; i++) {
		if ((a = strchr(pairproof_digits, hex[2 * i])) == NULL || hex[2 * i] == '\0' ||
		    (b = strchr(pairproof_digits, hex[2 * i + 1])) == NULL ||
		    hex[2 * i + 1] == '\0')
			return -1;
		out[i] = (unsigned char)((a - pairproof_digits) << 4 | (b - pairproof_digits));
	}
	return 0;
}

int pairproof_check(const char *pin, const unsigned char exporter[PAIRPROOF_EXPORTER_LEN],
                    const unsigned char spki[32], const char *hw_id, const char *proof_hex)
{
	unsigned char want[32], got[32];
	int ok;

	if (pairproof_unhex(proof_hex, got, sizeof(got)) == -1 ||
	    pairproof_mac(pin, exporter, spki, hw_id, want) == -1)
		return 0;
	/* Constant time: the comparison must not tell how many leading bytes were right. */
	ok = CRYPTO_memcmp(want, got, sizeof(want)) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}
