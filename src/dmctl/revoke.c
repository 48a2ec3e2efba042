/*
 * dmctl cdcs revoke|revoke-key|revocations: the operator's signed revocation list at cdcs-mss.
 * A change is made here, not by the daemon: the current list is fetched and verified with the
 * operator key's public half, extended, given the next serial, signed and uploaded, so that
 * only the holder of the operator key can revoke (cdcs-mss and agents verify the signature).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "opendm/cdcsimg.h"
#include "opendm/pki.h"
#include "opendm/revocation.h"
#include "dmctl.h"

#define DMCTL_REVOKE_VNUM_MAX 2147483647LL

static const char dmctl_revoke_usage[] =
    "usage: dmctl [-c config] [--json] cdcs revoke VENDOR/NAME VERSION_NUMBER\n"
    "            --operator-key KEY\n"
    "       dmctl [-c config] [--json] cdcs revoke-key VENDOR --key PUB.pem\n"
    "            --operator-key KEY\n"
    "       dmctl [-c config] [--json] cdcs revocations\n"
    "\n"
    "revoke adds a CDCS version, revoke-key a vendor's signing key (its PEM public key) to\n"
    "the revocation list: dmctl fetches the current list from cdcs-mss, verifies it with\n"
    "the public half of KEY (the operator approval key, operator-signing.key), adds the\n"
    "entry, signs the list with KEY under the next serial number and uploads it (role\n"
    "catalogue). cdcs-mss stops offering what the list revokes; agents remove it, or\n"
    "replace it with a newer version, at their next check. An entry already on the list\n"
    "changes nothing (exit 0). revocations shows the current list.\n";

static const struct dmctl_col dmctl_revoked_version_cols[] = {
    {"CDCS", "vendor/name", 0},
    {"VERSION", "version_number", DMCTL_COL_RIGHT},
    {NULL, NULL, 0},
};

static const struct dmctl_col dmctl_revoked_key_cols[] = {
    {"VENDOR", "vendor", 0},
    {"KEY_SHA256", "key_sha256", 0},
    {NULL, NULL, 0},
};

/* What to add: a version (vnum > 0) or a vendor key (key_sha256 set). */
struct dmctl_revoke_entry {
	char vendor[65], name[65], key_sha256[65];
	long long vnum;
};

static int dmctl_revocations_print(const json_t *doc)
{
	printf("revocation list serial %lld\n\nREVOKED VERSIONS\n",
	       (long long)json_integer_value(json_object_get(doc, "serial")));
	if (dmctl_table(dmctl_revoked_version_cols, json_object_get(doc, "versions")) == -1)
		return -1;
	printf("\nREVOKED VENDOR KEYS\n");
	return dmctl_table(dmctl_revoked_key_cols, json_object_get(doc, "vendor_keys"));
}

/* The arguments of revoke and revoke-key into e, and the operator key loaded. An exit status. */
static int dmctl_revoke_parse(int key, int argc, char **argv, struct dmctl_revoke_entry *e,
                              EVP_PKEY **okey)
{
	const char *okey_path = NULL, *pub_path = NULL, *v;
	const char *pos[2] = {NULL, NULL};
	char err[1024];
	EVP_PKEY *pub;
	int i, npos = 0;

	memset(e, 0, sizeof(*e));
	*okey = NULL;
	for (i = 0; i < argc; i++) {
		if (argv[i][0] != '-') {
			if (npos == (key ? 1 : 2))
				return dmctl_usage_error(dmctl_revoke_usage, "unexpected argument",
				                         argv[i]);
			pos[npos++] = argv[i];
		} else if (dmctl_opt_value(argc, argv, &i, dmctl_revoke_usage, &v) == -1)
			return DMCTL_EXIT_USAGE;
		else if (strcmp(argv[i - 1], "--operator-key") == 0)
			okey_path = v;
		else if (key && strcmp(argv[i - 1], "--key") == 0)
			pub_path = v;
		else
			return dmctl_usage_error(dmctl_revoke_usage, "unexpected argument",
			                         argv[i - 1]);
	}
	if (npos != (key ? 1 : 2) || okey_path == NULL || (key && pub_path == NULL))
		return dmctl_usage_error(
		    dmctl_revoke_usage,
		    key ? "revoke-key wants VENDOR --key PUB.pem --operator-key "
		          "KEY"
		        : "revoke wants VENDOR/NAME VERSION_NUMBER "
		          "--operator-key KEY",
		    NULL);
	if (key && !cdcsimg_valid_id(pos[0]))
		return dmctl_usage_error(dmctl_revoke_usage,
		                         "not a vendor (1-64 of [A-Za-z0-9._-]):", pos[0]);
	if (key)
		snprintf(e->vendor, sizeof(e->vendor), "%s", pos[0]);
	else if (dmctl_parse_slot(pos[0], e->vendor, e->name) == -1)
		return dmctl_usage_error(dmctl_revoke_usage, "not a VENDOR/NAME:", pos[0]);
	else if (dmctl_parse_int(pos[1], 1, DMCTL_REVOKE_VNUM_MAX, &e->vnum) == -1)
		return dmctl_usage_error(dmctl_revoke_usage,
		                         "VERSION_NUMBER wants an integer >= 1, not", pos[1]);
	if (key) {
		if ((pub = pki_pubkey_load(pub_path, err, sizeof(err))) == NULL) {
			fprintf(stderr, "dmctl: input: %s\n", err);
			return DMCTL_EXIT_USAGE;
		}
		i = revocation_key_sha256(pub, e->key_sha256);
		EVP_PKEY_free(pub);
		if (i == -1) {
			fprintf(stderr, "dmctl: input: %s: cannot hash the public key\n", pub_path);
			return DMCTL_EXIT_USAGE;
		}
	}
	if ((*okey = pki_key_load(okey_path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dmctl: input: %s\n", err);
		return DMCTL_EXIT_USAGE;
	}
	return DMCTL_EXIT_OK;
}

/* The current list from cdcs-mss, verified with okey, into rl (serial 0 if none). *doc gets
 * the daemon's answer. An exit status. */
static int dmctl_revoke_current(struct dmctl_api *a, EVP_PKEY *okey, struct revocation_list *rl,
                                json_t **doc)
{
	const char *jws, *code = NULL;
	char err[1024];
	int status;

	memset(rl, 0, sizeof(*rl));
	if ((status = dmctl_api_call(a, "GET", "/v1/admin/revocations", NULL, doc)) !=
	    DMCTL_EXIT_OK)
		return status;
	if ((jws = json_string_value(json_object_get(*doc, "revocations"))) == NULL)
		return DMCTL_EXIT_OK;
	if (revocation_verify(jws, okey, rl, &code, err, sizeof(err)) == -1) {
		fprintf(stderr,
		        "dmctl: %s: the current revocation list does not verify with the public "
		        "half of --operator-key: %s\n",
		        code != NULL ? code : "bad_signature", err);
		return DMCTL_EXIT_FAIL;
	}
	return DMCTL_EXIT_OK;
}

/* rl with e added, serial + 1, signed with okey: a new JWS or NULL after a message. */
static char *dmctl_revoke_next(const struct revocation_list *rl, const struct dmctl_revoke_entry *e,
                               EVP_PKEY *okey)
{
	struct revocation_list next;
	char err[1024], *jws = NULL;
	json_t *j, *item;

	memset(&next, 0, sizeof(next));
	if ((j = revocation_to_json(rl)) == NULL)
		goto oom;
	if (e->vnum > 0)
		item = json_pack("{s:s, s:s, s:I}", "vendor", e->vendor, "name", e->name,
		                 "version_number", (json_int_t)e->vnum);
	else
		item = json_pack("{s:s, s:s}", "vendor", e->vendor, "key_sha256", e->key_sha256);
	if (json_array_append_new(json_object_get(j, e->vnum > 0 ? "versions" : "vendor_keys"),
	                          item) == -1 ||
	    json_object_set_new(j, "serial", json_integer((json_int_t)rl->serial + 1)) == -1 ||
	    json_object_set_new(j, "iat", json_integer((json_int_t)time(NULL))) == -1)
		goto oom;
	/* from_json enforces the bounds a verifier enforces (e.g. at most 256 versions). */
	if (revocation_from_json(j, &next, err, sizeof(err)) == -1 ||
	    (jws = revocation_sign(&next, okey, err, sizeof(err))) == NULL)
		fprintf(stderr, "dmctl: bad_claims: the new revocation list: %s\n", err);
	revocation_free(&next);
	json_decref(j);
	return jws;
oom:
	fprintf(stderr, "dmctl: out of memory\n");
	json_decref(j);
	return NULL;
}

static int dmctl_revoke_add(const struct dmctl_opts *opts, int key, int argc, char **argv)
{
	struct dmctl_revoke_entry e;
	struct revocation_list rl;
	struct dmctl_api a;
	EVP_PKEY *okey = NULL;
	json_t *doc = NULL, *out = NULL, *body = NULL;
	char *jws = NULL;
	int status, have;

	memset(&rl, 0, sizeof(rl));
	if ((status = dmctl_revoke_parse(key, argc, argv, &e, &okey)) != DMCTL_EXIT_OK)
		return status;
	if ((status = dmctl_api_open(&a, opts, "cdcs-mss", 0)) != DMCTL_EXIT_OK) {
		EVP_PKEY_free(okey);
		return status;
	}
	if ((status = dmctl_revoke_current(&a, okey, &rl, &doc)) != DMCTL_EXIT_OK)
		goto out;
	have = key ? revocation_key_revoked(&rl, e.vendor, e.key_sha256)
	           : revocation_version_revoked(&rl, e.vendor, e.name, e.vnum);
	if (have) {
		if (opts->json)
			status = dmctl_print_json(doc);
		else
			printf("already revoked in revocation list %lld: nothing uploaded\n",
			       (long long)rl.serial);
		goto out;
	}
	status = DMCTL_EXIT_FAIL;
	if ((jws = dmctl_revoke_next(&rl, &e, okey)) == NULL ||
	    (body = json_pack("{s:s}", "revocations", jws)) == NULL)
		goto out;
	if ((status = dmctl_api_call(&a, "PUT", "/v1/admin/revocations", body, &out)) !=
	    DMCTL_EXIT_OK)
		goto out;
	if (opts->json)
		status = dmctl_print_json(out);
	else if (key)
		printf("revocation list %lld: vendor key %s of %s revoked, %lld image(s) revoked\n",
		       (long long)json_integer_value(json_object_get(out, "serial")), e.key_sha256,
		       e.vendor,
		       (long long)json_integer_value(json_object_get(out, "revoked_images")));
	else
		printf("revocation list %lld: %s/%s version %lld revoked, %lld image(s) revoked\n",
		       (long long)json_integer_value(json_object_get(out, "serial")), e.vendor,
		       e.name, e.vnum,
		       (long long)json_integer_value(json_object_get(out, "revoked_images")));
out:
	free(jws);
	json_decref(body);
	json_decref(out);
	json_decref(doc);
	revocation_free(&rl);
	EVP_PKEY_free(okey);
	dmctl_api_close(&a);
	return status;
}

int dmctl_revoke_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	json_t *out = NULL;
	int status;

	if (dmctl_want_help(argc, argv, dmctl_revoke_usage))
		return DMCTL_EXIT_OK;
	if (argc >= 1 && strcmp(argv[0], "revoke") == 0)
		return dmctl_revoke_add(opts, 0, argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "revoke-key") == 0)
		return dmctl_revoke_add(opts, 1, argc - 1, argv + 1);
	if (argc == 1 && strcmp(argv[0], "revocations") == 0) {
		status = dmctl_api_once_role(opts, "cdcs-mss", "GET", "/v1/admin/revocations", NULL,
		                             &out);
		return dmctl_done(opts, status, out, dmctl_revocations_print);
	}
	return dmctl_usage_error(dmctl_revoke_usage, "expected revoke, revoke-key or revocations",
	                         argc > 0 ? argv[0] : NULL);
}
