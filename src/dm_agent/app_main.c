/*
 * dm-app: the Application. Usage:
 *   dm-app -c device.json install --code CODE | --paired | --offline FILE
 *   dm-app -c device.json pair --pin PIN
 *   dm-app -c device.json status [--json]
 *   dm-app -c device.json stop
 *   dm-app -c device.json cdcs sync [--json]
 *   dm-app -c device.json cdcs status [--json]
 *   dm-app -c device.json play FILE [--out OUT]
 */
#include <sys/file.h>

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "app.h"
#include "dev_link.h"

static void app_usage(FILE *f)
{
	fprintf(f, "usage: dm-app -c device.json install --code CODE\n"
	           "       dm-app -c device.json install --paired\n"
	           "       dm-app -c device.json pair --pin PIN\n"
	           "       dm-app -c device.json install --offline FILE\n"
	           "       dm-app -c device.json status [--json]\n"
	           "       dm-app -c device.json stop\n"
	           "       dm-app -c device.json cdcs sync [--json]\n"
	           "       dm-app -c device.json cdcs status [--json]\n"
	           "       dm-app -c device.json play FILE [--out OUT]\n");
}

int app_fail(int status, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One line whatever a server said. */
	for (i = 0; msg[i] != '\0'; i++)
		if ((unsigned char)msg[i] < 0x20)
			msg[i] = ' ';
	fprintf(stderr, "dm-app: %s: %s\n", code, msg);
	return status;
}

static int app_setup(struct app *app, int need_http, char *err, size_t errlen)
{
	struct httpc_conf hc;
	struct dev_link link;

	if (dev_dirs(&app->cfg, err, errlen) == -1)
		return -1;
	if (!need_http)
		return 0;
	if ((app->base = event_base_new()) == NULL) {
		snprintf(err, errlen, "event_base_new failed");
		return -1;
	}
	memset(&hc, 0, sizeof(hc));
	hc.tls = app->cfg.tls;
	/* Through the CPE relay when paired (the link credential), else as configured. */
	if (dev_link_httpc_conf(&app->cfg, &link, &hc, err, errlen) == -1)
		return -1;
	if ((app->http = httpc_new(app->base, &hc, err, errlen)) == NULL)
		return -1;
	return 0;
}

/*
 * One install or stop at a time per device: two would race on the agent and the download.
 * Held until dm-app exits.
 */
static int app_lock(struct app *app)
{
	char path[PATH_MAX];
	int fd;

	if (dev_path(path, sizeof(path), &app->cfg, "app.lock") == -1 ||
	    (fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) == -1)
		return app_fail(APP_EXIT_USAGE, "config", "cannot open the lock in state_dir");
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		close(fd);
		return app_fail(APP_EXIT_REFUSED, "busy", "another dm-app is installing");
	}
	app->lock_fd = fd;
	return APP_EXIT_OK;
}

static int app_run(struct app *app, int argc, char **argv)
{
	char err[1024];
	const char *cmd = argv[0];
	int rc;

	if (strcmp(cmd, "install") == 0 && argc == 2 && strcmp(argv[1], "--paired") == 0) {
		if (app_setup(app, 1, err, sizeof(err)) == -1)
			return app_fail(APP_EXIT_USAGE, "config", "%s", err);
		if ((rc = app_lock(app)) != APP_EXIT_OK)
			return rc;
		return app_install_paired(app);
	}
	if (strcmp(cmd, "pair") == 0) {
		/* The PIN is checked here and never echoed, even in the usage error. */
		if (argc != 3 || strcmp(argv[1], "--pin") != 0 || !dev_pin_ok(argv[2])) {
			fprintf(stderr, "dm-app: usage: the PIN is %d digits\n", DEV_PIN_LEN);
			goto usage;
		}
		if (app_setup(app, 0, err, sizeof(err)) == -1)
			return app_fail(APP_EXIT_USAGE, "config", "%s", err);
		if ((rc = app_lock(app)) != APP_EXIT_OK)
			return rc;
		return app_pair(app, argv[2]);
	}
	if (strcmp(cmd, "install") == 0) {
		if (argc != 3 ||
		    (strcmp(argv[1], "--code") != 0 && strcmp(argv[1], "--offline") != 0))
			goto usage;
		if (app_setup(app, strcmp(argv[1], "--code") == 0, err, sizeof(err)) == -1)
			return app_fail(APP_EXIT_USAGE, "config", "%s", err);
		if ((rc = app_lock(app)) != APP_EXIT_OK)
			return rc;
		if (strcmp(argv[1], "--code") == 0)
			return app_install_online(app, argv[2]);
		return app_install_offline(app, argv[2]);
	}
	if (strcmp(cmd, "status") == 0) {
		if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json") != 0))
			goto usage;
		return app_status(app, argc == 2);
	}
	if (strcmp(cmd, "cdcs") == 0) {
		if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "--json") != 0))
			goto usage;
		if (strcmp(argv[1], "sync") == 0)
			return app_cdcs_sync(app, argc == 3);
		if (strcmp(argv[1], "status") == 0)
			return app_cdcs_status(app, argc == 3);
		goto usage;
	}
	if (strcmp(cmd, "play") == 0) {
		if (argc == 2)
			return app_play(app, argv[1], NULL);
		if (argc == 4 && strcmp(argv[2], "--out") == 0)
			return app_play(app, argv[1], argv[3]);
		goto usage;
	}
	if (strcmp(cmd, "stop") == 0) {
		if (argc != 1)
			goto usage;
		if ((rc = app_lock(app)) != APP_EXIT_OK)
			return rc;
		if (app_agent_stop(app) == -1)
			return app_fail(APP_EXIT_REFUSED, "stop_failed", "dm-agent did not stop");
		return APP_EXIT_OK;
	}
usage:
	app_usage(stderr);
	return APP_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	struct app app;
	const char *conf = NULL;
	char err[1024];
	int ch, rc;

	memset(&app, 0, sizeof(app));
	app.lock_fd = -1;
	while ((ch = getopt(argc, argv, "+c:h")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'h':
			app_usage(stdout);
			return APP_EXIT_OK;
		default:
			app_usage(stderr);
			return APP_EXIT_USAGE;
		}
	}
	if (conf == NULL || optind >= argc) {
		app_usage(stderr);
		return APP_EXIT_USAGE;
	}
	log_init("dm-app", LOG_LVL_INFO);
	if (dev_config_load(conf, &app.cfg, err, sizeof(err)) == -1)
		return app_fail(APP_EXIT_USAGE, "config", "%s", err);
	log_set_level(app.cfg.log_level);
	umask(077);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		dev_config_free(&app.cfg);
		return app_fail(APP_EXIT_REFUSED, "internal_error", "curl_global_init failed");
	}
	rc = app_run(&app, argc - optind, argv + optind);
	httpc_free(app.http);
	if (app.base != NULL)
		event_base_free(app.base);
	dev_config_free(&app.cfg);
	if (app.lock_fd != -1)
		close(app.lock_fd);
	curl_global_cleanup();
	return rc;
}
