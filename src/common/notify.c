/*
 * notify: the sd_notify(3) datagram protocol, written out so the daemons need no libsystemd.
 * The protocol is stable and documented: one AF_UNIX datagram of "KEY=VALUE\n" lines to the
 * socket named by NOTIFY_SOCKET ('@' meaning the abstract namespace).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "opendm/daemon.h"
#include "opendm/log.h"

int daemon_notify(const char *state)
{
	struct sockaddr_un sun;
	const char *path = getenv("NOTIFY_SOCKET");
	size_t plen;
	socklen_t slen;
	int fd = -1;

	if (path == NULL || *path == '\0')
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sun.sun_path)) {
		log_warn("NOTIFY_SOCKET is not a usable socket path");
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	slen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);

	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, slen) == -1)
		goto fail;
	close(fd);
	return 0;
fail:
	/* Not fatal: systemd (or devstack) may have stopped listening already. */
	log_debug("%s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}
