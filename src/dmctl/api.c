/*
 * dmctl api: one blocking call to a head-end daemon over mutual TLS with the operator's
 * certificate, and the uniform report of what went wrong (exit status + one stderr line).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/httpc.h"
#include "dmctl.h"

#define DMCTL_API_TIMEOUT_MS 60000

int dmctl_api_open(struct dmctl_api *a, const struct dmctl_opts *opts, const char *role,
                   size_t max_response)
{
	struct httpc_conf hc;
	char err[1024];

	memset(a, 0, sizeof(*a));
	if (dmctl_conf_load(opts->config, &a->conf) == -1)
		return DMCTL_EXIT_USAGE;
	a->loaded = 1;
	a->config = opts->config;
	if (role != NULL && dmctl_api_use(a, role) != DMCTL_EXIT_OK)
		goto fail;
	if ((a->base = event_base_new()) == NULL) {
		fprintf(stderr, "dmctl: cannot create an event loop\n");
		goto fail;
	}
	memset(&hc, 0, sizeof(hc));
	hc.tls = a->conf.tls;
	hc.timeout_ms = DMCTL_API_TIMEOUT_MS;
	hc.max_response = max_response;
	if ((a->c = httpc_new(a->base, &hc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dmctl: config: %s\n", err);
		goto fail;
	}
	return DMCTL_EXIT_OK;
fail:
	dmctl_api_close(a);
	return DMCTL_EXIT_USAGE;
}

void dmctl_api_close(struct dmctl_api *a)
{
	if (a->c != NULL)
		httpc_free(a->c);
	if (a->base != NULL)
		event_base_free(a->base);
	if (a->loaded)
		dmctl_conf_free(&a->conf);
	memset(a, 0, sizeof(*a));
}

int dmctl_api_use(struct dmctl_api *a, const char *role)
{
	const char *url = json_string_value(json_object_get(a->conf.endpoints, role));

	if (url == NULL) {
		fprintf(stderr, "dmctl: config: %s: no endpoint configured for '%s'\n", a->config,
		        role);
		return DMCTL_EXIT_USAGE;
	}
	a->url = url;
	a->role = role;
	return DMCTL_EXIT_OK;
}

/* A daemon's error document {"error":{"code","message"}}, or a fallback naming the status. */
static void dmctl_api_report(const struct dmctl_api *a, const struct httpc_resp *r)
{
	json_t *e = json_object_get(r->json, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));

	/* Naming the daemon matters when a command asks several (device show, audit). */
	if (code != NULL)
		fprintf(stderr, "dmctl: %s: %s (%s)\n", code, msg != NULL ? msg : "", a->role);
	else
		fprintf(stderr, "dmctl: http_%ld: unexpected response from %s\n", r->status,
		        a->role);
}

/* What an HTTP error status means for the exit status. */
static int dmctl_api_exit(long status)
{
	if (status == 403)
		return DMCTL_EXIT_FORBIDDEN;
	if (status == 404)
		return DMCTL_EXIT_NOTFOUND;
	return DMCTL_EXIT_FAIL;
}

/* dmctl_api_raw(); quiet404: a 404 is returned without a message. */
static int dmctl_api_send(struct dmctl_api *a, const char *method, const char *path,
                          const json_t *body, int quiet404, struct httpc_resp **out)
{
	struct httpc_resp *r;
	char url[1024];
	int n;

	*out = NULL;
	n = snprintf(url, sizeof(url), "%s%s", a->url, path);
	if (n < 0 || (size_t)n >= sizeof(url)) {
		fprintf(stderr, "dmctl: usage: URL too long\n");
		return DMCTL_EXIT_USAGE;
	}
	if ((r = httpc_request_sync(a->c, method, url, NULL, body)) == NULL) {
		fprintf(stderr, "dmctl: out of memory\n");
		return DMCTL_EXIT_FAIL;
	}
	if (r->error != NULL) {
		fprintf(stderr, "dmctl: unreachable: %s at %s: %s\n", a->role, a->url, r->error);
		httpc_resp_free(r);
		return DMCTL_EXIT_UNREACH;
	}
	if (r->status < 200 || r->status > 299) {
		if (!(quiet404 && r->status == 404))
			dmctl_api_report(a, r);
		n = dmctl_api_exit(r->status);
		httpc_resp_free(r);
		return n;
	}
	*out = r;
	return DMCTL_EXIT_OK;
}

int dmctl_api_raw(struct dmctl_api *a, const char *method, const char *path, const json_t *body,
                  struct httpc_resp **out)
{
	return dmctl_api_send(a, method, path, body, 0, out);
}

/* dmctl_api_call(), quiet404 as in dmctl_api_send(). */
static int dmctl_api_json(struct dmctl_api *a, const char *method, const char *path,
                          const json_t *body, int quiet404, json_t **out)
{
	struct httpc_resp *r;
	int status;

	*out = NULL;
	if ((status = dmctl_api_send(a, method, path, body, quiet404, &r)) != DMCTL_EXIT_OK)
		return status;
	if (r->json == NULL && r->len == 0) {
		/* An action answered with an empty 2xx body (e.g. a revocation) succeeded. */
		httpc_resp_free(r);
		*out = json_object();
		return *out != NULL ? DMCTL_EXIT_OK : DMCTL_EXIT_FAIL;
	}
	if (!json_is_object(r->json)) {
		fprintf(stderr, "dmctl: bad_response: HTTP %ld without a JSON object\n", r->status);
		httpc_resp_free(r);
		return DMCTL_EXIT_FAIL;
	}
	*out = json_incref(r->json);
	httpc_resp_free(r);
	return DMCTL_EXIT_OK;
}

int dmctl_api_call(struct dmctl_api *a, const char *method, const char *path, const json_t *body,
                   json_t **out)
{
	return dmctl_api_json(a, method, path, body, 0, out);
}

int dmctl_api_get_opt(struct dmctl_api *a, const char *path, json_t **out)
{
	return dmctl_api_json(a, "GET", path, NULL, 1, out);
}

int dmctl_api_once_role(const struct dmctl_opts *opts, const char *role, const char *method,
                        const char *path, json_t *body, json_t **out)
{
	struct dmctl_api a;
	int status;

	*out = NULL;
	if (body == NULL && strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0) {
		fprintf(stderr, "dmctl: out of memory\n");
		return DMCTL_EXIT_FAIL;
	}
	if ((status = dmctl_api_open(&a, opts, role, 0)) == DMCTL_EXIT_OK) {
		status = dmctl_api_call(&a, method, path, body, out);
		dmctl_api_close(&a);
	}
	json_decref(body);
	return status;
}

int dmctl_api_once(const struct dmctl_opts *opts, const char *method, const char *path,
                   json_t *body, json_t **out)
{
	return dmctl_api_once_role(opts, "dm-mss", method, path, body, out);
}

int dmctl_print_json(const json_t *doc)
{
	if (json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) == -1)
		return DMCTL_EXIT_FAIL;
	printf("\n");
	return DMCTL_EXIT_OK;
}

int dmctl_done(const struct dmctl_opts *opts, int status, json_t *out, int (*print)(const json_t *))
{
	if (status == DMCTL_EXIT_OK) {
		if (opts->json)
			status = dmctl_print_json(out);
		else if (print != NULL && print(out) == -1)
			status = DMCTL_EXIT_FAIL;
	}
	json_decref(out);
	return status;
}
