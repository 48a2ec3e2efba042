/*
 * dmctl health: ask every configured daemon (or the named ones) for GET /v1/health at once,
 * over mutual TLS with the operator certificate, and print one row per daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "opendm/httpc.h"
#include "dmctl.h"

#define DMCTL_HEALTH_MAX 32

static const char dmctl_health_usage[] =
    "usage: dmctl [-c config] [--json] health [ROLE...]\n"
    "\n"
    "Asks every daemon of the config (or the ROLEs named, e.g. dm-mss cdcs-pss) for\n"
    "GET /v1/health at once and prints one row per daemon: status, version, database\n"
    "state and uptime. Exit status 3 if any could not be reached, 1 if any is not ok.\n";

struct dmctl_probe {
	const char *role;
	const char *url;
	long status;
	json_t *body;    /* the health document, or NULL */
	char error[256]; /* transport or protocol error */
	int done;
};

struct dmctl_health {
	struct dmctl_probe probes[DMCTL_HEALTH_MAX];
	size_t n, pending;
	struct event_base *base;
};

static void dmctl_health_done(struct httpc_resp *resp, void *arg)
{
	struct dmctl_probe *p = arg;

	p->done = 1;
	p->status = resp->status;
	if (resp->error != NULL)
		snprintf(p->error, sizeof(p->error), "%s", resp->error);
	else if (resp->json == NULL)
		snprintf(p->error, sizeof(p->error), "HTTP %ld without a JSON body", resp->status);
	else
		p->body = json_incref(resp->json);
}

static int dmctl_health_pick(struct dmctl_health *h, const json_t *eps, int argc, char **argv)
{
	const char *role;
	json_t *url;
	int i;

	if (argc == 0) {
		json_object_foreach((json_t *)eps, role, url)
		{
			if (h->n == DMCTL_HEALTH_MAX)
				break;
			h->probes[h->n].role = role;
			h->probes[h->n++].url = json_string_value(url);
		}
		return 0;
	}
	for (i = 0; i < argc && h->n < DMCTL_HEALTH_MAX; i++) {
		if ((url = json_object_get(eps, argv[i])) == NULL) {
			fprintf(stderr, "dmctl: config: no endpoint configured for '%s'\n",
			        argv[i]);
			return -1;
		}
		h->probes[h->n].role = argv[i];
		h->probes[h->n++].url = json_string_value(url);
	}
	return 0;
}

static int dmctl_health_print(const struct dmctl_health *h, int as_json)
{
	const struct dmctl_probe *p;
	json_t *out = NULL, *row;
	int status = DMCTL_EXIT_OK;
	size_t i;

	if (as_json)
		out = json_array();
	else
		printf("%-12s %-9s %-8s %-9s %s\n", "ROLE", "STATUS", "VERSION", "DATABASE",
		       "UPTIME");
	for (i = 0; i < h->n; i++) {
		p = &h->probes[i];
		if (p->body == NULL) {
			status = DMCTL_EXIT_UNREACH;
			if (as_json)
				json_array_append_new(
				    out, json_pack("{s:s, s:s, s:s}", "role", p->role, "status",
				                   "unreachable", "error", p->error));
			else
				printf("%-12s %-9s %s\n", p->role, "down", p->error);
			continue;
		}
		if (p->status != 200 && status == DMCTL_EXIT_OK)
			status = DMCTL_EXIT_FAIL;
		if (as_json) {
			row = json_deep_copy(p->body);
			json_object_set_new(row, "http_status", json_integer(p->status));
			json_array_append_new(out, row);
			continue;
		}
		printf("%-12s %-9s %-8s %-9s %llds\n", p->role,
		       json_string_value(json_object_get(p->body, "status")),
		       json_string_value(json_object_get(p->body, "version")),
		       json_string_value(
		           json_object_get(json_object_get(p->body, "database"), "state")),
		       (long long)json_integer_value(json_object_get(p->body, "uptime_s")));
	}
	if (as_json) {
		if (dmctl_print_json(out) != DMCTL_EXIT_OK)
			status = DMCTL_EXIT_FAIL;
		json_decref(out);
	}
	return status;
}

int dmctl_health_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	struct dmctl_health h;
	struct dmctl_conf conf;
	struct httpc_conf hc;
	struct httpc *c = NULL;
	char err[1024];
	int status = DMCTL_EXIT_USAGE;
	size_t i;

	if (dmctl_want_help(argc, argv, dmctl_health_usage))
		return DMCTL_EXIT_OK;
	memset(&h, 0, sizeof(h));
	if (dmctl_conf_load(opts->config, &conf) == -1)
		return DMCTL_EXIT_USAGE;
	if (dmctl_health_pick(&h, conf.endpoints, argc, argv) == -1)
		goto out;
	if ((h.base = event_base_new()) == NULL)
		goto out;
	memset(&hc, 0, sizeof(hc));
	hc.tls = conf.tls;
	hc.timeout_ms = 5000;
	if ((c = httpc_new(h.base, &hc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dmctl: config: %s\n", err);
		goto out;
	}
	for (i = 0; i < h.n; i++) {
		char url[300];

		snprintf(url, sizeof(url), "%s/v1/health", h.probes[i].url);
		if (httpc_request(c, "GET", url, NULL, NULL, dmctl_health_done, &h.probes[i]) == -1)
			snprintf(h.probes[i].error, sizeof(h.probes[i].error),
			         "cannot start the request");
		else
			h.pending++;
	}
	while (h.pending > 0) {
		size_t done = 0;

		if (event_base_loop(h.base, EVLOOP_ONCE) == -1)
			break;
		for (i = 0; i < h.n; i++)
			done += h.probes[i].done;
		if (done == h.pending)
			break;
	}
	status = dmctl_health_print(&h, opts->json);
out:
	for (i = 0; i < h.n; i++)
		json_decref(h.probes[i].body);
	if (c != NULL)
		httpc_free(c);
	if (h.base != NULL)
		event_base_free(h.base);
	dmctl_conf_free(&conf);
	return status;
}
