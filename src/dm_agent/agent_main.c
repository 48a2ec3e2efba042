/* dm-agent: the DM agent (Figure 4 steps 7, 11, 12). Usage: dm-agent -c device.json */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "opendm/file.h"

#include "agent.h"
#include "cdcsproc.h"
#include "dev_link.h"

static void agent_usage(FILE *f)
{
	fprintf(f, "usage: dm-agent -c device.json\n");
}

static void agent_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	log_info("signal %d: stopping", (int)sig);
	agent_stop(arg);
}

void agent_stop(struct agent *a)
{
	a->stopping = 1;
	event_base_loopexit(a->base, NULL);
}

static int agent_pidfile(struct agent *a, char *err, size_t errlen)
{
	char text[32];
	long pid;

	if (dev_path(a->pid_path, sizeof(a->pid_path), &a->cfg, "agent.pid") == -1) {
		snprintf(err, errlen, "state_dir too long");
		return -1;
	}
	if ((pid = dev_agent_pid(&a->cfg)) > 0 && pid != (long)getpid()) {
		snprintf(err, errlen, "dm-agent already running (pid %ld)", pid);
		a->pid_path[0] = '\0'; /* not ours to remove */
		return -1;
	}
	snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	return file_write_atomic(a->pid_path, text, strlen(text), 0644, err, errlen);
}

static int agent_setup(struct agent *a, char *err, size_t errlen)
{
	struct httpc_conf hc;
	struct dev_link link;

	if (dev_dirs(&a->cfg, err, errlen) == -1 || agent_pidfile(a, err, errlen) == -1)
		return -1;
	agent_trust_load(a, NULL);
	if ((a->base = event_base_new()) == NULL) {
		snprintf(err, errlen, "event_base_new failed");
		return -1;
	}
	memset(&hc, 0, sizeof(hc));
	hc.tls = a->cfg.tls;
	if (dev_link_httpc_conf(&a->cfg, &link, &hc, err, errlen) == -1)
		return -1;
	/* Bounded attempts, so the last retry ends soon after retry_max_s (dm-app waits that
	 * plus a margin). */
	hc.timeout_ms = 10000;
	if ((a->http = httpc_new(a->base, &hc, err, errlen)) == NULL)
		return -1;
	if ((a->sigterm = evsignal_new(a->base, SIGTERM, agent_signal_cb, a)) == NULL ||
	    (a->sigint = evsignal_new(a->base, SIGINT, agent_signal_cb, a)) == NULL ||
	    event_add(a->sigterm, NULL) == -1 || event_add(a->sigint, NULL) == -1) {
		snprintf(err, errlen, "cannot watch signals");
		return -1;
	}
	if (agent_control_start(a, err, errlen) == -1)
		return -1;
	/* Figure 5: its client once personalized, a run at start, then periodic runs. */
	return agent_sched_start(a, err, errlen);
}

static void agent_teardown(struct agent *a)
{
	agent_personalize_cancel(a);
	agent_fig5_cancel(a);
	agent_play_cancel(a);
	agent_trust_free(a);
	agent_sched_stop(a);
	agent_control_stop(a);
	httpc_free(a->http);
	httpc_free(a->http5);
	if (a->sigterm != NULL)
		event_free(a->sigterm);
	if (a->sigint != NULL)
		event_free(a->sigint);
	if (a->base != NULL)
		event_base_free(a->base);
	if (a->pid_path[0] != '\0')
		(void)unlink(a->pid_path);
	dev_config_free(&a->cfg);
}

int main(int argc, char **argv)
{
	struct agent a;
	const char *conf = NULL;
	char err[1024];
	int ch, rc = 1;

	/* The CDCS host: a fresh exec of this binary per CDCS child (cdcsproc.h). */
	if (argc == 3 && strcmp(argv[1], "--cdcs-host") == 0)
		return cdcshost_main(argv[2]);
	memset(&a, 0, sizeof(a));
	while ((ch = getopt(argc, argv, "c:h")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'h':
			agent_usage(stdout);
			return 0;
		default:
			agent_usage(stderr);
			return 2;
		}
	}
	if (conf == NULL || optind != argc) {
		agent_usage(stderr);
		return 2;
	}
	log_init("dm-agent", LOG_LVL_INFO);
	if (dev_config_load(conf, &a.cfg, err, sizeof(err)) == -1) {
		log_err("%s", err);
		return 2;
	}
	log_set_level(a.cfg.log_level);
	umask(077);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_err("curl_global_init failed");
		dev_config_free(&a.cfg);
		return 1;
	}
	if (agent_setup(&a, err, sizeof(err)) == -1) {
		log_err("%s", err);
		goto out;
	}
	log_info("ready: hw_id=%s", a.cfg.hw_id);
	if (event_base_dispatch(a.base) == -1)
		log_err("event loop failed");
	else
		rc = 0;
	log_info("dm-agent stopped");
out:
	agent_teardown(&a);
	curl_global_cleanup();
	return rc;
}
