/*
 * ctl: `sd-if-agent -c FILE ctl pair | unpair HW_ID | list [--json]`, the local admin
 * commands, sent to the running agent's control socket (control.c). The config file is read
 * only to find sd_if_agent.control_socket, so an admin who may not read the agent's keys can
 * still run them.
 *
 * Exit status: 0 done, 1 refused by the agent (e.g. not_paired), 2 usage or config error,
 * 3 the agent cannot be reached.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "opendm/config.h"
#include "opendm/file.h"
#include "sd_if_agent.h"

#define SDIF_CTL_ANSWER  (256 * 1024) /* a list of many pairings */
#define SDIF_CTL_WAIT_S  10
#define SDIF_CTL_EX_OK   0
#define SDIF_CTL_EX_NO   1
#define SDIF_CTL_EX_USE  2
#define SDIF_CTL_EX_DOWN 3

static void sdif_ctl_usage(void)
{
	fprintf(stderr, "usage: sd-if-agent -c FILE ctl pair|unpair HW_ID|list [--json]\n");
}

static int sdif_ctl_socket(const char *config_path, struct sockaddr_un *sa)
{
	char err[512];
	const char *p;
	json_t *root = NULL;
	size_t len;
	char *text;
	int ret = -1;

	if ((text = file_read(config_path, CFG_MAX_FILE, &len, err, sizeof(err))) == NULL) {
		fprintf(stderr, "sd-if-agent: %s\n", err);
		return -1;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	free(text);
	p = json_string_value(
	    json_object_get(json_object_get(root, "sd_if_agent"), "control_socket"));
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (p == NULL || p[0] == '\0' || strlen(p) >= sizeof(sa->sun_path))
		fprintf(stderr, "sd-if-agent: %s: no usable sd_if_agent.control_socket\n",
		        config_path);
	else {
		memcpy(sa->sun_path, p, strlen(p) + 1);
		ret = 0;
	}
	json_decref(root);
	return ret;
}

/* One request line out, one answer line back. NULL + message on stderr. */
static json_t *sdif_ctl_call(const struct sockaddr_un *sa, const json_t *req)
{
	struct timeval tv = {SDIF_CTL_WAIT_S, 0};
	char *line = NULL, *buf = NULL;
	size_t len, off = 0;
	json_t *resp = NULL;
	ssize_t n;
	int fd = -1;

	if ((line = json_dumps(req, JSON_COMPACT)) == NULL ||
	    (buf = malloc(SDIF_CTL_ANSWER + 1)) == NULL) {
		fprintf(stderr, "sd-if-agent: out of memory\n");
		goto out;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == -1) {
		fprintf(stderr, "sd-if-agent: %s: %s (is the agent running?)\n", sa->sun_path,
		        strerror(errno));
		goto out;
	}
	len = strlen(line);
	line[len] = '\n'; /* the NUL becomes the line end: len + 1 bytes go out */
	while (off < len + 1) {
		if ((n = send(fd, line + off, len + 1 - off, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "sd-if-agent: send: %s\n", strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	/* The agent closes after its one line: read to EOF (or the bound). */
	for (off = 0; off < SDIF_CTL_ANSWER;) {
		if ((n = read(fd, buf + off, SDIF_CTL_ANSWER - off)) == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "sd-if-agent: no answer from the agent: %s\n",
			        strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	if ((resp = json_loads(buf, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, NULL)) ==
	        NULL ||
	    !json_is_object(resp)) {
		json_decref(resp);
		resp = NULL;
		fprintf(stderr, "sd-if-agent: the agent closed the connection without an answer\n");
	}
out:
	if (fd != -1)
		close(fd);
	free(line);
	free(buf);
	return resp;
}

static void sdif_ctl_print_list(const json_t *resp)
{
	const json_t *row;
	size_t i;

	printf("pairing mode: %s; open tunnels: %lld\n",
	       json_is_true(json_object_get(resp, "pairing_mode")) ? "on" : "off",
	       (long long)json_integer_value(json_object_get(resp, "tunnels")));
	json_array_foreach(json_object_get(resp, "pairings"), i, row)
	{
		printf("%s link_fp=%.16s... paired_at=%lld %s tunnels=%lld\n",
		       json_string_value(json_object_get(row, "hw_id")),
		       json_string_value(json_object_get(row, "link_fp")),
		       (long long)json_integer_value(json_object_get(row, "paired_at")),
		       json_is_true(json_object_get(row, "active")) ? "active" : "unpaired",
		       (long long)json_integer_value(json_object_get(row, "tunnels")));
	}
}

int sdif_ctl_main(const char *config_path, int argc, char **argv)
{
	struct sockaddr_un sa;
	json_t *req = NULL, *resp = NULL;
	const char *cmd;
	int as_json = 0, nargs, rc = SDIF_CTL_EX_USE;
	char *text;

	if (argc >= 1 && strcmp(argv[argc - 1], "--json") == 0) {
		as_json = 1;
		argc--;
	}
	if (argc < 1) {
		sdif_ctl_usage();
		return SDIF_CTL_EX_USE;
	}
	cmd = argv[0];
	nargs = strcmp(cmd, "unpair") == 0 ? 2 : 1;
	if ((strcmp(cmd, "pair") != 0 && strcmp(cmd, "unpair") != 0 && strcmp(cmd, "list") != 0) ||
	    argc != nargs) {
		sdif_ctl_usage();
		return SDIF_CTL_EX_USE;
	}
	if (sdif_ctl_socket(config_path, &sa) == -1)
		return SDIF_CTL_EX_USE;
	req = nargs == 2 ? json_pack("{s:s, s:s}", "cmd", cmd, "hw_id", argv[1])
	                 : json_pack("{s:s}", "cmd", cmd);
	if (req == NULL) {
		fprintf(stderr, "sd-if-agent: out of memory\n");
		return SDIF_CTL_EX_USE;
	}
	if ((resp = sdif_ctl_call(&sa, req)) == NULL) {
		rc = SDIF_CTL_EX_DOWN;
		goto out;
	}
	if (!json_is_true(json_object_get(resp, "ok"))) {
		fprintf(stderr, "sd-if-agent: %s: %s\n",
		        json_string_value(json_object_get(resp, "code")),
		        json_string_value(json_object_get(resp, "message")));
		rc = SDIF_CTL_EX_NO;
		goto out;
	}
	rc = SDIF_CTL_EX_OK;
	if (as_json) {
		json_object_del(resp, "ok");
		if (strcmp(cmd, "pair") == 0)
			json_object_del(resp, "ttl");
		if ((text = json_dumps(resp, JSON_COMPACT)) != NULL)
			printf("%s\n", text);
		free(text);
	} else if (strcmp(cmd, "pair") == 0)
		printf("PIN %s (valid %lld s)\n", json_string_value(json_object_get(resp, "pin")),
		       (long long)json_integer_value(json_object_get(resp, "ttl")));
	else if (strcmp(cmd, "unpair") == 0)
		printf("unpaired %s (%lld tunnel(s) closed)\n", argv[1],
		       (long long)json_integer_value(json_object_get(resp, "tunnels_closed")));
	else
		sdif_ctl_print_list(resp);
out:
	json_decref(req);
	json_decref(resp);
	return rc;
}
