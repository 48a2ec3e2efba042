/* dev_ctl: the agent's pid file and the client side of its control socket. */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "opendm/file.h"

#include "dev.h"

long dev_agent_pid(const struct dev_config *cfg)
{
	char pidf[PATH_MAX], bin[PATH_MAX], exe[PATH_MAX], proc[64], err[256], *text, *end;
	const char *del = " (deleted)";
	size_t len, dl = strlen(del);
	ssize_t n;
	long pid;

	if (dev_path(pidf, sizeof(pidf), cfg, "agent.pid") == -1 ||
	    dev_path(bin, sizeof(bin), cfg, "agent/dm-agent") == -1 ||
	    (text = file_read(pidf, 64, &len, err, sizeof(err))) == NULL)
		return 0;
	errno = 0;
	pid = strtol(text, &end, 10);
	if (errno != 0 || end == text || (*end != '\0' && *end != '\n') || pid <= 1) {
		free(text);
		return 0;
	}
	free(text);
	/* A stale pid file may name someone else's process now: only ours counts. */
	snprintf(proc, sizeof(proc), "/proc/%ld/exe", pid);
	if ((n = readlink(proc, exe, sizeof(exe) - 1)) <= 0)
		return 0;
	exe[n] = '\0';
	/* An agent whose binary was replaced by an update still counts as ours. */
	if ((size_t)n > dl && strcmp(exe + n - dl, del) == 0)
		exe[n - dl] = '\0';
	if (realpath(bin, pidf) != NULL && strcmp(pidf, exe) == 0)
		return pid;
	if (strcmp(bin, exe) == 0)
		return pid;
	return 0;
}

static long dev_ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

json_t *dev_ctl_call(const struct dev_config *cfg, const json_t *req, long timeout_ms, char *err,
                     size_t errlen)
{
	struct sockaddr_un sa;
	struct timespec deadline;
	struct pollfd pfd;
	char *line = NULL, *buf = NULL;
	size_t len = 0, off = 0;
	json_t *resp = NULL;
	ssize_t n;
	long left;
	int fd = -1;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (dev_path(sa.sun_path, sizeof(sa.sun_path), cfg, "agent.sock") == -1) {
		snprintf(err, errlen, "state_dir too long for a unix socket path");
		goto out;
	}
	if ((line = json_dumps(req, JSON_COMPACT)) == NULL ||
	    (buf = malloc(DEV_MAX_CTL_ANSWER + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		snprintf(err, errlen, "%s: %s", sa.sun_path, strerror(errno));
		goto out;
	}
	len = strlen(line);
	line[len] = '\n'; /* json_dumps' NUL becomes the line end; send len + 1 bytes */
	while (off < len + 1) {
		if ((n = send(fd, line + off, len + 1 - off, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "send: %s", strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	off = 0;
	for (;;) {
		if ((left = dev_ms_left(&deadline)) <= 0) {
			snprintf(err, errlen, "no answer from dm-agent in time");
			goto out;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left) <= 0)
			continue;
		if ((n = read(fd, buf + off, DEV_MAX_CTL_ANSWER - off)) == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "read: %s", strerror(errno));
			goto out;
		}
		if (n == 0 || memchr(buf + off, '\n', (size_t)n) != NULL ||
		    off + n >= DEV_MAX_CTL_ANSWER) {
			off += (size_t)n;
			break;
		}
		off += (size_t)n;
	}
	buf[off] = '\0';
	if ((resp = json_loads(buf, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, NULL)) ==
	        NULL ||
	    !json_is_object(resp)) {
		json_decref(resp);
		resp = NULL;
		snprintf(err, errlen, "dm-agent closed the connection without an answer");
	}
out:
	if (fd != -1)
		close(fd);
	free(line);
	free(buf);
	return resp;
}
