/* dev_codec: base64 / base64url decoding and sha256 hex, with every length checked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dev.h"

static int dev_b64_val(unsigned char c, int url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

/*
 * Decode n data characters (no padding); a trailing group of 1 character is invalid and the
 * unused low bits of the last group must be zero (one encoding per byte string).
 */
static unsigned char *dev_b64_core(const char *in, size_t n, size_t *outlen, int url)
{
	unsigned char *out;
	size_t i, o = 0, rem = n % 4;
	uint32_t acc = 0;
	int v, k = 0;

	if (rem == 1 || n / 4 > (SIZE_MAX - 4) / 3)
		return NULL;
	if ((out = malloc(n / 4 * 3 + 3)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if ((v = dev_b64_val((unsigned char)in[i], url)) < 0)
			goto fail;
		acc = (acc << 6) | (uint32_t)v;
		if (++k == 4) {
			out[o++] = (unsigned char)(acc >> 16);
			out[o++] = (unsigned char)(acc >> 8);
			out[o++] = (unsigned char)acc;
			acc = 0;
			k = 0;
		}
	}
	if (k == 2) {
		if (acc & 0xf)
			goto fail;
		out[o++] = (unsigned char)(acc >> 4);
	} else if (k == 3) {
		if (acc & 0x3)
			goto fail;
		out[o++] = (unsigned char)(acc >> 10);
		out[o++] = (unsigned char)(acc >> 2);
	}
	*outlen = o;
	return out;
fail:
	free(out);
	return NULL;
}

unsigned char *dev_b64_decode(const char *in, size_t inlen, size_t *outlen)
{
	size_t pad = 0;

	/* Padded form only: the length is a multiple of 4 with at most two '='. */
	if (in == NULL || inlen % 4 != 0)
		return NULL;
	while (pad < 2 && inlen - pad > 0 && in[inlen - pad - 1] == '=')
		pad++;
	return dev_b64_core(in, inlen - pad, outlen, 0);
}

unsigned char *dev_b64url_decode(const char *in, size_t inlen, size_t *outlen)
{
	if (in == NULL)
		return NULL;
	return dev_b64_core(in, inlen, outlen, 1);
}

void dev_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	size_t i;

	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
		out[0] = '\0';
		return;
	}
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}
