/*
 * dmctl agent-package: publish a DM agent build for dm-mss. Copies the binary to
 * OUT/PLATFORM/N/dm-agent (0755) and writes OUT/PLATFORM/N/manifest.jws, the manifest of
 * docs/protocol.md signed with the DM agent signing key; dm-mss serves what it finds there
 * and dm-app trusts only what that key signed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "opendm/file.h"
#include "opendm/jose.h"
#include "opendm/pki.h"
#include "dmctl.h"

#define DMCTL_PKG_MAX  (256 * 1024 * 1024)
#define DMCTL_PKG_TTL  (5LL * 365 * 86400)
#define DMCTL_PATH_MAX 4096
#define DMCTL_VNUM_MAX 2147483647LL

static const char dmctl_agent_package_usage[] =
    "usage: dmctl [--json] agent-package --binary PATH --platform P --version V\n"
    "                                   --version-number N --key KEY --out DIR\n"
    "\n"
    "Copies the DM agent binary PATH to DIR/P/N/dm-agent and writes DIR/P/N/manifest.jws,\n"
    "signed with KEY (the DM agent signing key): platform, version (text), version_number\n"
    "(monotonic integer >= 1), sha256 and size of the binary; valid 5 years. Local: no\n"
    "daemon is contacted.\n";

struct dmctl_pkg_args {
	const char *binary, *platform, *version, *key, *out;
	long long vnum;
};

static int dmctl_pkg_parse(int argc, char **argv, struct dmctl_pkg_args *a)
{
	const char **slot;
	int i;

	memset(a, 0, sizeof(*a));
	a->vnum = -1;
	for (i = 0; i < argc; i++) {
		slot = NULL;
		if (strcmp(argv[i], "--binary") == 0)
			slot = &a->binary;
		else if (strcmp(argv[i], "--platform") == 0)
			slot = &a->platform;
		else if (strcmp(argv[i], "--version") == 0)
			slot = &a->version;
		else if (strcmp(argv[i], "--key") == 0)
			slot = &a->key;
		else if (strcmp(argv[i], "--out") == 0)
			slot = &a->out;
		else if (strcmp(argv[i], "--version-number") != 0)
			return dmctl_usage_error(dmctl_agent_package_usage, "unexpected argument",
			                         argv[i]);
		if (i + 1 == argc)
			return dmctl_usage_error(dmctl_agent_package_usage, "missing value for",
			                         argv[i]);
		if (slot != NULL)
			*slot = argv[++i];
		else if (dmctl_parse_int(argv[++i], 1, DMCTL_VNUM_MAX, &a->vnum) == -1)
			return dmctl_usage_error(dmctl_agent_package_usage,
			                         "--version-number wants an integer >= 1, not",
			                         argv[i]);
	}
	if (a->binary == NULL || a->platform == NULL || a->version == NULL || a->key == NULL ||
	    a->out == NULL || a->vnum < 0)
		return dmctl_usage_error(dmctl_agent_package_usage,
		                         "--binary, --platform, --version, --version-number, --key "
		                         "and --out are all required",
		                         NULL);
	/* The platform becomes a directory name: the protocol's charset keeps it one. */
	if (!dmctl_valid_id(a->platform, 1, 32, "_-") ||
	    strpbrk(a->platform, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != NULL)
		return dmctl_usage_error(dmctl_agent_package_usage,
		                         "--platform wants 1-32 of [a-z0-9_-], not", a->platform);
	if (!dmctl_valid_id(a->version, 1, 32, "._+-"))
		return dmctl_usage_error(dmctl_agent_package_usage,
		                         "--version wants 1-32 of [A-Za-z0-9._+-], not",
		                         a->version);
	return DMCTL_EXIT_OK;
}

static int dmctl_mkdir(const char *path)
{
	if (mkdir(path, 0755) == -1 && errno != EEXIST) {
		fprintf(stderr, "dmctl: io: mkdir %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int dmctl_sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	size_t i;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return -1;
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int dmctl_agent_package_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	struct dmctl_pkg_args a;
	char err[1024], hex[65], dir[DMCTL_PATH_MAX], path[DMCTL_PATH_MAX + 32];
	char *bin = NULL, *jws = NULL;
	EVP_PKEY *key = NULL;
	json_t *claims = NULL;
	size_t len;
	int n, status;

	if (dmctl_want_help(argc, argv, dmctl_agent_package_usage))
		return DMCTL_EXIT_OK;
	if ((status = dmctl_pkg_parse(argc, argv, &a)) != DMCTL_EXIT_OK)
		return status;
	status = DMCTL_EXIT_FAIL;
	if ((key = pki_key_load(a.key, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dmctl: input: %s\n", err);
		status = DMCTL_EXIT_USAGE;
		goto out;
	}
	if ((bin = file_read(a.binary, DMCTL_PKG_MAX, &len, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dmctl: input: %s\n", err);
		status = DMCTL_EXIT_USAGE;
		goto out;
	}
	if (len == 0 || dmctl_sha256_hex(bin, len, hex) == -1) {
		fprintf(stderr, "dmctl: input: %s: empty file or digest failure\n", a.binary);
		goto out;
	}
	claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:I}", "iss", "opendm-agent-signer",
	                   "aud", "opendm-dm-app", "sub", "dm-agent", "platform", a.platform,
	                   "version", a.version, "version_number", (json_int_t)a.vnum, "sha256",
	                   hex, "size", (json_int_t)len);
	if (claims == NULL ||
	    (jws = jose_sign(key, NULL, claims, DMCTL_PKG_TTL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dmctl: sign: cannot sign the manifest: %s\n",
		        claims == NULL ? "out of memory" : err);
		goto out;
	}
	n = snprintf(dir, sizeof(dir), "%s/%s/%lld", a.out, a.platform, a.vnum);
	if (n < 0 || (size_t)n >= sizeof(dir)) {
		fprintf(stderr, "dmctl: usage: --out path too long\n");
		status = DMCTL_EXIT_USAGE;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s", a.out, a.platform);
	if (dmctl_mkdir(a.out) == -1 || dmctl_mkdir(path) == -1 || dmctl_mkdir(dir) == -1)
		goto out;
	/* The binary first: a manifest never names a file that is not there yet. */
	snprintf(path, sizeof(path), "%s/dm-agent", dir);
	if (file_write_atomic(path, bin, len, 0755, err, sizeof(err)) == -1) {
		fprintf(stderr, "dmctl: io: %s\n", err);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/manifest.jws", dir);
	if (file_write_atomic(path, jws, strlen(jws), 0644, err, sizeof(err)) == -1) {
		fprintf(stderr, "dmctl: io: %s\n", err);
		goto out;
	}
	status = DMCTL_EXIT_OK;
	if (opts->json) {
		json_object_set_new(claims, "dir", json_string(dir));
		status = dmctl_print_json(claims);
	} else
		printf("%s: dm-agent %s (version_number %lld, %zu bytes, sha256 %s)\n", dir,
		       a.version, a.vnum, len, hex);
out:
	free(jws);
	free(bin);
	json_decref(claims);
	EVP_PKEY_free(key);
	return status;
}
