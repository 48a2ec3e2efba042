/*
 * dmctl offline-bundle: everything one device needs to install and personalize its DM agent
 * without reaching dm-mss (docs/protocol.md "Offline bundle file"). dm-mss makes the signed
 * parts (POST /v1/admin/offline-bundles, operator or "offline" third-party certificate);
 * dmctl fetches the package and writes the bundle file 0600: it carries a single-use token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "opendm/file.h"
#include "dmctl.h"

#define DMCTL_BUNDLE_CAP_MAX (16 * 1024)
#define DMCTL_BUNDLE_PKG_MAX (128 * 1024 * 1024) /* base64: a bundle under dm-app's 256 MiB */
#define DMCTL_BUNDLE_FORMAT  "opendm-offline-bundle/1"
#define DMCTL_PKG_PREFIX     "/v1/agent/packages/"

static const char dmctl_offline_bundle_usage[] =
    "usage: dmctl [-c config] [--json] offline-bundle --hw-id ID --account A\n"
    "                                            --capability FILE --out FILE\n"
    "\n"
    "Asks dm-mss for a signed offline bundle for device ID of subscriber A (capability:\n"
    "the device's hardware capability JSON object), downloads the DM agent package and\n"
    "writes the bundle to --out (mode 0600). The device installs it with\n"
    "'dm-app install --offline FILE'. Needs an operator or \"offline\" certificate.\n";

struct dmctl_bundle_args {
	const char *hw_id, *account, *capability, *out;
};

static int dmctl_bundle_parse(int argc, char **argv, struct dmctl_bundle_args *a)
{
	const char **slot;
	int i;

	memset(a, 0, sizeof(*a));
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--hw-id") == 0)
			slot = &a->hw_id;
		else if (strcmp(argv[i], "--account") == 0)
			slot = &a->account;
		else if (strcmp(argv[i], "--capability") == 0)
			slot = &a->capability;
		else if (strcmp(argv[i], "--out") == 0)
			slot = &a->out;
		else
			return dmctl_usage_error(dmctl_offline_bundle_usage, "unexpected argument",
			                         argv[i]);
		if (i + 1 == argc)
			return dmctl_usage_error(dmctl_offline_bundle_usage, "missing value for",
			                         argv[i]);
		*slot = argv[++i];
	}
	if (a->hw_id == NULL || a->account == NULL || a->capability == NULL || a->out == NULL)
		return dmctl_usage_error(dmctl_offline_bundle_usage,
		                         "--hw-id, --account, --capability and --out are required",
		                         NULL);
	if (!dmctl_hw_id_ok(a->hw_id))
		return dmctl_usage_error(
		    dmctl_offline_bundle_usage,
		    "not a hardware id (4-64 of A-Z a-z 0-9 . _ : -):", a->hw_id);
	if (!dmctl_account_ok(a->account))
		return dmctl_usage_error(dmctl_offline_bundle_usage,
		                         "--account wants 1-64 of A-Z a-z 0-9 . _ -, not",
		                         a->account);
	return DMCTL_EXIT_OK;
}

/* The capability file: a JSON object (dm-mss checks its keys and values strictly). */
static json_t *dmctl_bundle_capability(const char *path)
{
	char err[1024];
	json_t *cap;
	char *text;
	size_t len;

	if ((text = file_read(path, DMCTL_BUNDLE_CAP_MAX, &len, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dmctl: input: %s\n", err);
		return NULL;
	}
	cap = dmctl_json_object(path, text, len);
	free(text);
	return cap;
}

/* package_url is relative to dm-mss and, since we send our certificate there, must stay a
 * package path: no scheme, host, query or dot segments. */
static int dmctl_bundle_pkg_path_ok(const char *p)
{
	return p != NULL && strncmp(p, DMCTL_PKG_PREFIX, strlen(DMCTL_PKG_PREFIX)) == 0 &&
	       strlen(p) < 256 && strstr(p, "..") == NULL && dmctl_valid_id(p, 1, 255, "/._-");
}

static char *dmctl_base64(const char *data, size_t len)
{
	size_t cap = 4 * ((len + 2) / 3) + 1;
	char *out = malloc(cap);

	if (out != NULL)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
	return out;
}

static int dmctl_bundle_write(const char *path, const json_t *doc, const struct httpc_resp *pkg)
{
	char err[1024];
	char *b64 = NULL, *text = NULL;
	json_t *out = NULL;
	int rc = -1;

	if ((b64 = dmctl_base64(pkg->body, pkg->len)) == NULL)
		goto fail;
	out = json_pack("{s:s, s:O, s:O, s:O, s:O, s:s}", "format", DMCTL_BUNDLE_FORMAT,
	                "bundle_sig", json_object_get(doc, "bundle_sig"), "manifest",
	                json_object_get(doc, "manifest"), "enrolment_token",
	                json_object_get(doc, "enrolment_token"), "dm_iss_url",
	                json_object_get(doc, "dm_iss_url"), "package", b64);
	if (out == NULL || (text = json_dumps(out, JSON_COMPACT)) == NULL)
		goto fail;
	if (file_write_atomic(path, text, strlen(text), 0600, err, sizeof(err)) == -1) {
		fprintf(stderr, "dmctl: io: %s\n", err);
		goto fail;
	}
	rc = 0;
fail:
	if (rc == -1 && (b64 == NULL || out == NULL || text == NULL))
		fprintf(stderr, "dmctl: out of memory\n");
	free(text);
	json_decref(out);
	free(b64);
	return rc;
}

int dmctl_offline_bundle_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	static const char *const parts[] = {"bundle_sig", "manifest", "enrolment_token",
	                                    "dm_iss_url", NULL};
	struct dmctl_bundle_args a;
	struct dmctl_api api;
	struct httpc_resp *pkg = NULL;
	json_t *cap = NULL, *req = NULL, *doc = NULL;
	const char *pkg_path;
	int status, opened = 0;
	size_t i;

	if (dmctl_want_help(argc, argv, dmctl_offline_bundle_usage))
		return DMCTL_EXIT_OK;
	if ((status = dmctl_bundle_parse(argc, argv, &a)) != DMCTL_EXIT_OK)
		return status;
	if ((cap = dmctl_bundle_capability(a.capability)) == NULL)
		return DMCTL_EXIT_USAGE;
	status = DMCTL_EXIT_FAIL;
	if ((req = json_pack("{s:s, s:s, s:O}", "hw_id", a.hw_id, "account", a.account,
	                     "capability", cap)) == NULL)
		goto out;
	if ((status = dmctl_api_open(&api, opts, "dm-mss", DMCTL_BUNDLE_PKG_MAX)) != DMCTL_EXIT_OK)
		goto out;
	opened = 1;
	if ((status = dmctl_api_call(&api, "POST", "/v1/admin/offline-bundles", req, &doc)) !=
	    DMCTL_EXIT_OK)
		goto out;
	status = DMCTL_EXIT_FAIL;
	for (i = 0; parts[i] != NULL; i++)
		if (!json_is_string(json_object_get(doc, parts[i]))) {
			fprintf(stderr, "dmctl: bad_response: no '%s' in the answer\n", parts[i]);
			goto out;
		}
	pkg_path = json_string_value(json_object_get(doc, "package_url"));
	if (!dmctl_bundle_pkg_path_ok(pkg_path)) {
		fprintf(stderr, "dmctl: bad_response: unexpected package_url\n");
		goto out;
	}
	if ((status = dmctl_api_raw(&api, "GET", pkg_path, NULL, &pkg)) != DMCTL_EXIT_OK)
		goto out;
	status = DMCTL_EXIT_FAIL;
	if (pkg->status != 200 || pkg->len == 0) {
		fprintf(stderr, "dmctl: bad_response: HTTP %ld, %zu bytes for the package\n",
		        pkg->status, pkg->len);
		goto out;
	}
	if (dmctl_bundle_write(a.out, doc, pkg) == -1)
		goto out;
	status = DMCTL_EXIT_OK;
	if (opts->json) {
		json_t *o = json_pack("{s:s, s:s, s:I}", "hw_id", a.hw_id, "out", a.out,
		                      "package_size", (json_int_t)pkg->len);

		status = o != NULL ? dmctl_print_json(o) : DMCTL_EXIT_FAIL;
		json_decref(o);
	} else
		printf("offline bundle for %s written to %s (package %zu bytes)\n", a.hw_id, a.out,
		       pkg->len);
out:
	httpc_resp_free(pkg);
	if (opened)
		dmctl_api_close(&api);
	json_decref(doc);
	json_decref(req);
	json_decref(cap);
	return status;
}
