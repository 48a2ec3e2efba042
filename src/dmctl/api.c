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
	json_t *url;

	memset(a, 0, sizeof(*a));
	if (dmctl_conf_load(opts->config, &a->conf) == -1)
		return DMCTL_EXIT_USAGE;
	a->loaded = 1;
	if ((url = json_object_get(a->conf.endpoints, role)) == NULL) {
		fprintf(stderr, "dmctl: %s: no endpoint configured for '%s'\n", opts->config, role);
		goto fail;
	}
	a->url = json_string_value(url);
	if ((a->base = event_base_new()) == NULL) {
		fprintf(stderr, "dmctl: cannot create an event loop\n");
		goto fail;
	}
	memset(&hc, 0, sizeof(hc));
	hc.tls = a->conf.tls;
	hc.timeout_ms = DMCTL_API_TIMEOUT_MS;
	hc.max_response = max_response;
	if ((a->c = httpc_new(a->base, &hc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dmctl: %s\n", err);
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

/* A daemon's error document {"error":{"code","message"}}, or a fallback naming the status. */
static void dmctl_api_report(const struct httpc_resp *r)
{
	json_t *e = json_object_get(r->json, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));

	if (code != NULL)
		fprintf(stderr, "dmctl: %s: %s\n", code, msg != NULL ? msg : "");
	else
		fprintf(stderr, "dmctl: http_%ld: unexpected response from the daemon\n",
		        r->status);
}

int dmctl_api_raw(struct dmctl_api *a, const char *method, const char *path, const json_t *body,
                  struct httpc_resp **out)
{
	struct httpc_resp *r;
	char url[1024];
	int n;

	*out = NULL;
	n = snprintf(url, sizeof(url), "%s%s", a->url, path);
	if (n < 0 || (size_t)n >= sizeof(url)) {
		fprintf(stderr, "dmctl: URL too long\n");
		return DMCTL_EXIT_USAGE;
	}
	if ((r = httpc_request_sync(a->c, method, url, NULL, body)) == NULL) {
		fprintf(stderr, "dmctl: out of memory\n");
		return DMCTL_EXIT_FAIL;
	}
	if (r->error != NULL) {
		fprintf(stderr, "dmctl: unreachable: %s: %s\n", a->url, r->error);
		httpc_resp_free(r);
		return DMCTL_EXIT_UNREACH;
	}
	if (r->status < 200 || r->status > 299) {
		dmctl_api_report(r);
		httpc_resp_free(r);
		return DMCTL_EXIT_FAIL;
	}
	*out = r;
	return DMCTL_EXIT_OK;
}

int dmctl_api_call(struct dmctl_api *a, const char *method, const char *path, const json_t *body,
                   json_t **out)
{
	struct httpc_resp *r;
	int status;

	*out = NULL;
	if ((status = dmctl_api_raw(a, method, path, body, &r)) != DMCTL_EXIT_OK)
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

int dmctl_want_help(int argc, char **argv, const char *usage)
{
	int i;

	for (i = 0; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return 1;
		}
	return 0;
}

int dmctl_usage_error(const char *usage, const char *what, const char *arg)
{
	if (arg != NULL)
		fprintf(stderr, "dmctl: %s '%s'\n%s", what, arg, usage);
	else
		fprintf(stderr, "dmctl: %s\n%s", what, usage);
	return DMCTL_EXIT_USAGE;
}

int dmctl_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return -1;
	v = strtoll(s, &end, 10);
	if (*end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int dmctl_valid_id(const char *s, size_t min, size_t max, const char *extra)
{
	size_t n = strlen(s), i;
	char c;

	if (n < min || n > max)
		return 0;
	for (i = 0; i < n; i++) {
		c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr(extra, c) != NULL))
			return 0;
	}
	return 1;
}
