/*
 * dmctl content encrypt: protected content of the sample CA/DRM systems, made with an
 * entitlement key of the JWK Set that dmctl pki init writes (entitlement-keys.json), in the
 * format the sample CDCSs open (src/cdcs/sample_content.c). Local: no daemon is contacted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <openssl/crypto.h>

#include "opendm/file.h"
#include "../cdcs/sample_content.h"
#include "dmctl.h"

#define DMCTL_KEYS_MAX (256 * 1024)

static const char dmctl_content_usage[] =
    "usage: dmctl [--json] content encrypt --keys FILE --system SYSTEM --level LEVEL\n"
    "                                      --in FILE --out FILE\n"
    "\n"
    "Encrypts --in for SYSTEM at entitlement LEVEL with the key \"SYSTEM/LEVEL\" of the JWK\n"
    "Set --keys (0600, e.g. entitlement-keys.json of dmctl pki init) and writes the compact\n"
    "JWE to --out (0644, atomically). SYSTEM is VENDOR/sample-ca (the sample CA scheme) or\n"
    "VENDOR/sample-drm (the sample DRM scheme) for any VENDOR with keys in --keys, e.g.\n"
    "vendor-a/sample-ca, vendor-b/sample-ca, vendor-b/sample-drm. The result is at most\n"
    "4 MiB, what a device plays. Local: no daemon is contacted.\n";

struct dmctl_content_args {
	const char *keys, *system, *level, *in, *out;
	struct sample_system sys;
};

static int dmctl_content_parse(int argc, char **argv, struct dmctl_content_args *a)
{
	struct {
		const char *opt;
		const char **slot;
	} opts[] = {{"--keys", &a->keys},
	            {"--system", &a->system},
	            {"--level", &a->level},
	            {"--in", &a->in},
	            {"--out", &a->out}};
	size_t k;
	int i;

	memset(a, 0, sizeof(*a));
	if (argc < 1 || strcmp(argv[0], "encrypt") != 0)
		return dmctl_usage_error(dmctl_content_usage, "unknown subcommand",
		                         argc > 0 ? argv[0] : NULL);
	for (i = 1; i < argc; i++) {
		for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
			if (strcmp(argv[i], opts[k].opt) == 0)
				break;
		if (k == sizeof(opts) / sizeof(opts[0]))
			return dmctl_usage_error(dmctl_content_usage, "unexpected argument",
			                         argv[i]);
		if (i + 1 == argc)
			return dmctl_usage_error(dmctl_content_usage, "missing value for", argv[i]);
		*opts[k].slot = argv[++i];
	}
	for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
		if (*opts[k].slot == NULL)
			return dmctl_usage_error(dmctl_content_usage, "missing", opts[k].opt);
	if (sample_system_parse(a->system, &a->sys) == -1)
		return dmctl_usage_error(
		    dmctl_content_usage,
		    "--system wants VENDOR/sample-ca or VENDOR/sample-drm, not", a->system);
	if (!sample_level_ok(a->level))
		return dmctl_usage_error(dmctl_content_usage,
		                         "--level wants 1-32 of [a-z0-9_-], not", a->level);
	return DMCTL_EXIT_OK;
}

/* The 32-byte key kid of the JWK Set at path (which must be private): 0/-1, message printed. */
static int dmctl_content_key(const char *path, const char *system, const char *kid,
                             unsigned char key[SAMPLE_KEY_LEN])
{
	char err[1024], *text = NULL;
	const char *k = NULL, *id;
	size_t slen = strlen(system);
	int known = 0;
	uint8_t *raw = NULL;
	size_t len = 0, i, rawlen = 0;
	cjose_err cerr;
	json_t *set = NULL, *jwk;
	int rc = -1;

	if (file_check_private(path, err, sizeof(err)) == -1 ||
	    (text = file_read(path, DMCTL_KEYS_MAX, &len, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dmctl: bad_keys: %s\n", err);
		goto out;
	}
	set = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	json_array_foreach(json_object_get(set, "keys"), i, jwk)
	{
		if ((id = json_string_value(json_object_get(jwk, "kid"))) == NULL)
			continue;
		/* A system is one the operator runs when the keys file holds keys of it. */
		if (strncmp(id, system, slen) == 0 && id[slen] == '/')
			known = 1;
		if (strcmp(id, kid) == 0 && json_is_string(json_object_get(jwk, "kty")) &&
		    strcmp(json_string_value(json_object_get(jwk, "kty")), "oct") == 0) {
			k = json_string_value(json_object_get(jwk, "k"));
			break;
		}
	}
	if (k == NULL && !known) {
		fprintf(stderr, "dmctl: unknown_system: %s has no keys of system %s\n", path,
		        system);
		goto out;
	}
	if (k == NULL) {
		fprintf(stderr, "dmctl: unknown_key: %s has no oct key \"%s\"\n", path, kid);
		goto out;
	}
	if (!cjose_base64url_decode(k, strlen(k), &raw, &rawlen, &cerr) ||
	    rawlen != SAMPLE_KEY_LEN) {
		fprintf(stderr, "dmctl: bad_keys: %s: key \"%s\" is not 32 bytes of base64url\n",
		        path, kid);
		goto out;
	}
	memcpy(key, raw, SAMPLE_KEY_LEN);
	rc = 0;
out:
	if (raw != NULL) {
		OPENSSL_cleanse(raw, rawlen);
		cjose_get_dealloc()(raw);
	}
	if (text != NULL) {
		OPENSSL_cleanse(text, len);
		free(text);
	}
	json_decref(set);
	return rc;
}

int dmctl_content_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	struct dmctl_content_args a;
	unsigned char key[SAMPLE_KEY_LEN];
	char err[1024], kid[128], *in = NULL, *jwe = NULL;
	size_t len = 0, outlen;
	json_t *res;
	int status;

	if (dmctl_want_help(argc, argv, dmctl_content_usage))
		return DMCTL_EXIT_OK;
	if ((status = dmctl_content_parse(argc, argv, &a)) != DMCTL_EXIT_OK)
		return status;
	snprintf(kid, sizeof(kid), "%s/%s", a.system, a.level);
	if (dmctl_content_key(a.keys, a.system, kid, key) == -1)
		return DMCTL_EXIT_USAGE;
	status = DMCTL_EXIT_FAIL;
	if ((in = file_read(a.in, SAMPLE_CONTENT_MAX, &len, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dmctl: bad_input: %s\n", err);
		status = DMCTL_EXIT_USAGE;
		goto out;
	}
	if ((jwe = sample_content_encrypt(&a.sys, a.level, key, in, len, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "dmctl: encrypt_failed: %s: %s\n", a.in, err);
		goto out;
	}
	/* A device plays at most SAMPLE_CONTENT_MAX: refuse what it would refuse. */
	if ((outlen = strlen(jwe)) > SAMPLE_CONTENT_MAX) {
		fprintf(stderr,
		        "dmctl: too_large: %s: encrypted it would be %zu bytes, more than %d\n",
		        a.in, outlen, SAMPLE_CONTENT_MAX);
		goto out;
	}
	if (file_write_atomic(a.out, jwe, outlen, 0644, err, sizeof(err)) == -1) {
		fprintf(stderr, "dmctl: write_failed: %s\n", err);
		goto out;
	}
	status = DMCTL_EXIT_OK;
	if (opts->json) {
		res = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "out", a.out, "system", a.system,
		                "level", a.level, "kid", kid, "size", (json_int_t)len, "jwe_size",
		                (json_int_t)outlen);
		status = res != NULL ? dmctl_print_json(res) : DMCTL_EXIT_FAIL;
		json_decref(res);
	} else
		printf("%s: %s level %s (%zu bytes, encrypted %zu)\n", a.out, a.system, a.level,
		       len, outlen);
out:
	OPENSSL_cleanse(key, sizeof(key));
	free(jwe);
	free(in);
	return status;
}
