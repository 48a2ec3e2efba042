/*
 * app_install: Figure 4 steps 1 and 5, online (dm-mss) or from an offline bundle, then the
 * agent start and step 6. Nothing is installed unless the manifest, the size and the digest
 * all verify; a partial download is kept for resuming and never installed.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "opendm/file.h"
#include "opendm/jose.h"
#include "opendm/pki.h"

#include "app.h"

#define APP_RETRY_FIRST_MS 500
#define APP_RETRY_MAX_MS   4000
#define APP_RID_BYTES      12

struct app_retry {
	struct timespec deadline;
	long delay_ms;
};

static void app_retry_init(struct app_retry *r, int64_t max_s)
{
	clock_gettime(CLOCK_MONOTONIC, &r->deadline);
	r->deadline.tv_sec += max_s;
	r->delay_ms = APP_RETRY_FIRST_MS;
}

/* Sleep before the next attempt; -1 when retry_max_s is used up. */
static int app_retry_wait(struct app_retry *r)
{
	struct timespec now, ts;
	long left;

	clock_gettime(CLOCK_MONOTONIC, &now);
	left = (r->deadline.tv_sec - now.tv_sec) * 1000 +
	       (r->deadline.tv_nsec - now.tv_nsec) / 1000000;
	if (left <= 0)
		return -1;
	if (r->delay_ms > left)
		r->delay_ms = left;
	ts.tv_sec = r->delay_ms / 1000;
	ts.tv_nsec = (r->delay_ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	r->delay_ms = r->delay_ms * 2 > APP_RETRY_MAX_MS ? APP_RETRY_MAX_MS : r->delay_ms * 2;
	return 0;
}

static EVP_PKEY *app_pubkey(const char *path, int *rc)
{
	char err[512];
	EVP_PKEY *k = pki_pubkey_load(path, err, sizeof(err));

	if (k == NULL)
		*rc = app_fail(APP_EXIT_USAGE, "config", "%s", err);
	return k;
}

/*
 * Steps 5 and 6 for a verified manifest whose package is at part: install, restart the agent
 * on the new binary, personalize.
 */
static int app_finish(struct app *app, const char *part, const char *manifest,
                      const struct dev_manifest *m, const char *token, const char *dm_iss_url)
{
	const char *code = NULL;
	char err[1024];

	if (dev_install(&app->cfg, part, manifest, m, &code, err, sizeof(err)) == -1) {
		(void)unlink(part);
		return app_fail(APP_EXIT_REFUSED, code != NULL ? code : "install_failed", "%s",
		                err);
	}
	log_step("fig4", 5, app->rid, app->cfg.hw_id, "agent %s (version_number %lld) installed",
	         m->version, (long long)m->version_number);
	if (app_agent_stop(app) == -1)
		return app_fail(APP_EXIT_REFUSED, "agent_failed", "the old dm-agent did not stop");
	if (app_agent_start(app, err, sizeof(err)) == -1)
		return app_fail(APP_EXIT_REFUSED, "agent_failed", "%s", err);
	return app_personalize(app, token, dm_iss_url);
}

static int app_part_path(struct app *app, const struct dev_manifest *m, char *buf, size_t len)
{
	char name[80], rel[128];

	snprintf(name, sizeof(name), "%s.part", m->sha256);
	snprintf(rel, sizeof(rel), "agent/.download/%s", name);
	dev_download_prune(&app->cfg, name);
	return dev_path(buf, len, &app->cfg, rel);
}

/* Step 4's GET: resumable, retried until retry_max_s; 0 when part holds m->size bytes. */
static int app_download(struct app *app, const char *url, const struct dev_manifest *m,
                        const char *part)
{
	struct app_retry rt;
	struct httpc_resp *r;
	struct stat sb;
	const char *code, *msg;
	char etag[80];
	int rc;

	snprintf(etag, sizeof(etag), "\"%s\"", m->sha256);
	app_retry_init(&rt, app->cfg.retry_max_s);
	for (;;) {
		if ((r = httpc_download_sync(app->http, url, app->rid, part, etag, m->size)) ==
		    NULL)
			return app_fail(APP_EXIT_REFUSED, "internal_error", "out of memory");
		if (r->error == NULL &&
		    (r->status == 200 || r->status == 206 || r->status == 416) &&
		    stat(part, &sb) == 0 && sb.st_size == m->size) {
			httpc_resp_free(r);
			return APP_EXIT_OK;
		}
		if (r->error == NULL && r->status == 416) {
			/* Our partial file is not a prefix of this package: start again. */
			(void)unlink(part);
		} else if (r->error == NULL && r->status >= 400 && r->status < 500) {
			app_json_error(r->json, &code, &msg);
			rc = app_fail(APP_EXIT_REFUSED, code, "package download: %s", msg);
			httpc_resp_free(r);
			(void)unlink(part);
			return rc;
		}
		log_rwarn(app->rid, "package download: %s; resuming",
		          r->error != NULL ? r->error : "incomplete or server error");
		httpc_resp_free(r);
		if (app_retry_wait(&rt) == -1)
			return app_fail(APP_EXIT_UNREACHABLE, "unreachable",
			                "package download did not complete within %lld s",
			                (long long)app->cfg.retry_max_s);
	}
}

/*
 * Step 1: the download request, retried on transport errors and 5xx. The device proves who
 * it is with auth_key: "activation_code" (a string) or "pairing" (the CPE's assertion and
 * certificate). Returns the JSON.
 */
static json_t *app_download_request(struct app *app, const char *auth_key, json_t *auth,
                                    int64_t installed, int *rc)
{
	struct app_retry rt;
	struct httpc_resp *r = NULL;
	json_t *body = NULL, *cap = NULL, *out = NULL;
	const char *code, *msg;
	char url[1200];

	snprintf(url, sizeof(url), "%s/v1/agent/download-request", app->cfg.dm_mss_url);
	if ((cap = capability_to_json(&app->cfg.capability)) == NULL ||
	    (body = json_pack("{s:s, s:O, s:O, s:I}", "hw_id", app->cfg.hw_id, "capability", cap,
	                      auth_key, auth, "installed_version", (json_int_t)installed)) ==
	        NULL) {
		*rc = app_fail(APP_EXIT_REFUSED, "internal_error", "out of memory");
		goto out;
	}
	log_step("fig4", 1, app->rid, app->cfg.hw_id, "download request to dm-mss");
	app_retry_init(&rt, app->cfg.retry_max_s);
	for (;;) {
		if ((r = httpc_request_sync(app->http, "POST", url, app->rid, body)) == NULL) {
			*rc = app_fail(APP_EXIT_REFUSED, "internal_error", "out of memory");
			goto out;
		}
		if (r->error == NULL && r->status < 500)
			break;
		log_rwarn(app->rid, "dm-mss: %s", r->error != NULL ? r->error : "server error");
		if (app_retry_wait(&rt) == -1) {
			if (r->error != NULL)
				*rc = app_fail(APP_EXIT_UNREACHABLE, "unreachable", "dm-mss: %s",
				               r->error);
			else {
				app_json_error(r->json, &code, &msg);
				*rc = app_fail(APP_EXIT_UNREACHABLE, code, "%s", msg);
			}
			goto out;
		}
		httpc_resp_free(r);
		r = NULL;
	}
	if (r->status != 200 || !json_is_object(r->json)) {
		app_json_error(r->json, &code, &msg);
		*rc = app_fail(APP_EXIT_REFUSED, code, "%s", msg);
		goto out;
	}
	out = json_incref(r->json);
out:
	httpc_resp_free(r);
	json_decref(body);
	json_decref(cap);
	return out;
}

/* Steps 1 and 4-6 once the request id is made; auth as for app_download_request(). */
static int app_install_auth(struct app *app, const char *auth_key, json_t *auth)
{
	struct dev_manifest inst, m;
	const char *manifest, *pkg, *token, *iss, *code;
	char url[2400], part[PATH_MAX], err[1024];
	EVP_PKEY *pub = NULL;
	json_t *resp = NULL;
	int64_t installed;
	size_t base_len;
	int rc = APP_EXIT_REFUSED;

	installed = dev_manifest_installed(&app->cfg, &inst) == 0 ? inst.version_number : 0;
	if ((pub = app_pubkey(app->cfg.agent_pubkey, &rc)) == NULL)
		return rc;
	if ((resp = app_download_request(app, auth_key, auth, installed, &rc)) == NULL)
		goto out;
	manifest = json_string_value(json_object_get(resp, "manifest"));
	pkg = json_string_value(json_object_get(resp, "package_url"));
	token = json_string_value(json_object_get(resp, "enrolment_token"));
	iss = json_string_value(json_object_get(resp, "dm_iss_url"));
	if (manifest == NULL || pkg == NULL || pkg[0] != '/' || strlen(pkg) > 1024 ||
	    token == NULL || iss == NULL || strncmp(iss, "https://", 8) != 0 ||
	    strlen(iss) > 1024) {
		rc = app_fail(APP_EXIT_REFUSED, "bad_response", "dm-mss answer is incomplete");
		goto out;
	}
	if (dev_manifest_verify(pub, manifest, app->cfg.capability.platform, installed, &m, &code,
	                        err, sizeof(err)) == -1) {
		rc = app_fail(APP_EXIT_REFUSED, code, "%s", err);
		goto out;
	}
	/* package_url is relative (starts with '/'): drop a trailing '/' of the base. */
	base_len = strlen(app->cfg.dm_mss_url);
	if (base_len > 0 && app->cfg.dm_mss_url[base_len - 1] == '/')
		base_len--;
	snprintf(url, sizeof(url), "%.*s%s", (int)base_len, app->cfg.dm_mss_url, pkg);
	if (app_part_path(app, &m, part, sizeof(part)) == -1) {
		rc = app_fail(APP_EXIT_USAGE, "config", "state_dir too long");
		goto out;
	}
	if ((rc = app_download(app, url, &m, part)) != APP_EXIT_OK)
		goto out;
	rc = app_finish(app, part, manifest, &m, token, iss);
out:
	EVP_PKEY_free(pub);
	json_decref(resp);
	return rc;
}

int app_install_online(struct app *app, const char *activation)
{
	json_t *code;
	int rc;

	if (strlen(activation) > 64)
		return app_fail(APP_EXIT_USAGE, "usage", "activation code too long");
	if (jose_random_hex(app->rid, sizeof(app->rid), APP_RID_BYTES) == -1)
		return app_fail(APP_EXIT_REFUSED, "internal_error", "no randomness");
	if ((code = json_string(activation)) == NULL)
		return app_fail(APP_EXIT_REFUSED, "internal_error", "out of memory");
	rc = app_install_auth(app, "activation_code", code);
	json_decref(code);
	return rc;
}

int app_install_paired(struct app *app)
{
	json_t *pairing;
	int rc = APP_EXIT_REFUSED;

	if (jose_random_hex(app->rid, sizeof(app->rid), APP_RID_BYTES) == -1)
		return app_fail(APP_EXIT_REFUSED, "internal_error", "no randomness");
	/* A fresh assertion each time: it is short-lived and dm-mss accepts it once. */
	if ((pairing = app_pair_assertion(app, &rc)) == NULL)
		return rc;
	rc = app_install_auth(app, "pairing", pairing);
	json_decref(pairing);
	return rc;
}

int app_install_offline(struct app *app, const char *file)
{
	struct dev_manifest inst, m;
	struct dev_bundle b;
	EVP_PKEY *bpub = NULL, *apub = NULL;
	unsigned char *bin = NULL;
	char *text = NULL, part[PATH_MAX], err[1024];
	const char *code;
	size_t len, blen;
	int64_t installed;
	int rc = APP_EXIT_REFUSED;

	memset(&b, 0, sizeof(b));
	installed = dev_manifest_installed(&app->cfg, &inst) == 0 ? inst.version_number : 0;
	if ((bpub = app_pubkey(app->cfg.bundle_pubkey, &rc)) == NULL ||
	    (apub = app_pubkey(app->cfg.agent_pubkey, &rc)) == NULL)
		goto out;
	if (jose_random_hex(app->rid, sizeof(app->rid), APP_RID_BYTES) == -1) {
		rc = app_fail(APP_EXIT_REFUSED, "internal_error", "no randomness");
		goto out;
	}
	if ((text = file_read(file, DEV_MAX_BUNDLE, &len, err, sizeof(err))) == NULL) {
		rc = app_fail(APP_EXIT_USAGE, "bad_bundle", "%s", err);
		goto out;
	}
	if (dev_bundle_parse(bpub, text, len, app->cfg.hw_id, &b, &code, err, sizeof(err)) == -1) {
		rc = app_fail(APP_EXIT_REFUSED, code, "%s", err);
		goto out;
	}
	/* Step 1 without a network: the request is the bundle the operator made for us. */
	log_step("fig4", 1, app->rid, app->cfg.hw_id, "offline bundle %s accepted", file);
	if (dev_manifest_verify(apub, b.manifest, app->cfg.capability.platform, installed, &m,
	                        &code, err, sizeof(err)) == -1) {
		rc = app_fail(APP_EXIT_REFUSED, code, "%s", err);
		goto out;
	}
	if ((bin = dev_b64_decode(b.package, strlen(b.package), &blen)) == NULL) {
		rc = app_fail(APP_EXIT_REFUSED, "bad_bundle", "package is not valid base64");
		goto out;
	}
	if ((int64_t)blen != m.size) {
		rc = app_fail(APP_EXIT_REFUSED, "bad_size",
		              "package is %zu bytes, manifest says %lld", blen, (long long)m.size);
		goto out;
	}
	if (app_part_path(app, &m, part, sizeof(part)) == -1 ||
	    file_write_atomic(part, bin, blen, 0600, err, sizeof(err)) == -1) {
		rc = app_fail(APP_EXIT_REFUSED, "install_failed", "%s", err);
		goto out;
	}
	free(bin);
	bin = NULL;
	rc = app_finish(app, part, b.manifest, &m, b.enrolment_token, b.dm_iss_url);
out:
	free(bin);
	free(text);
	dev_bundle_free(&b);
	EVP_PKEY_free(bpub);
	EVP_PKEY_free(apub);
	return rc;
}
