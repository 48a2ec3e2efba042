/*
 * odm-sha256-rate: how fast the device side verifies a downloaded image, with the very
 * function the agent runs before installing (dev_package_check: read + sha256 + size check).
 * Usage: odm-sha256-rate FILE [ROUNDS]; prints "sha256_verify_mb_s=N" (MB = 10^6 bytes, as
 * openssl speed reports). The file should be in the page cache (run it twice).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>

#include "dev.h"

static int rate_digest(const char *path, struct dev_manifest *m)
{
	unsigned char buf[1 << 16], d[32];
	unsigned int dn;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	FILE *f = fopen(path, "rb");
	size_t n, i;
	int rc = -1;

	if (md == NULL || f == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		if (EVP_DigestUpdate(md, buf, n) != 1)
			goto out;
	if (EVP_DigestFinal_ex(md, d, &dn) != 1)
		goto out;
	for (i = 0; i < 32; i++)
		snprintf(m->sha256 + 2 * i, 3, "%02x", d[i]);
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	EVP_MD_CTX_free(md);
	return rc;
}

int main(int argc, char **argv)
{
	struct dev_manifest m;
	struct timespec a, b;
	struct stat sb;
	const char *code;
	char err[256];
	long rounds = argc > 2 ? strtol(argv[2], NULL, 10) : 5, i;
	double secs;

	if (argc < 2 || rounds < 1 || stat(argv[1], &sb) == -1) {
		fprintf(stderr, "usage: odm-sha256-rate FILE [ROUNDS]\n");
		return 2;
	}
	memset(&m, 0, sizeof(m));
	m.size = (int64_t)sb.st_size;
	/* The expected digest, computed once; then the timed checks must all match it. */
	if (rate_digest(argv[1], &m) == -1 ||
	    dev_package_check(argv[1], &m, &code, err, sizeof(err)) == -1) {
		fprintf(stderr, "odm-sha256-rate: %s\n", err);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < rounds; i++) {
		if (dev_package_check(argv[1], &m, &code, err, sizeof(err)) == -1) {
			fprintf(stderr, "odm-sha256-rate: %s\n", err);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("sha256_verify_mb_s=%.1f\n", (double)m.size * (double)rounds / secs / 1e6);
	return 0;
}
