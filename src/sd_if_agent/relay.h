/*
 * relay.h: the parts of relay.c that the unit test reaches directly.
 */
#ifndef SDIF_RELAY_H
#define SDIF_RELAY_H

#include <stddef.h>

#include "sd_if_agent.h"

/* What a (possibly partial) CONNECT preamble means. */
enum sdif_preamble {
	SDIF_PRE_MORE,     /* no blank line yet and still under the limit: read on */
	SDIF_PRE_OK,       /* a well-formed CONNECT: target filled, *used bytes to consume */
	SDIF_PRE_BAD,      /* malformed request line or header: 400 */
	SDIF_PRE_METHOD,   /* a method other than CONNECT: 405 */
	SDIF_PRE_TOO_LONG, /* no end within max bytes: 431 */
};

/*
 * Parse the first n bytes a device sent on its link: "CONNECT host:port HTTP/1.1\r\n",
 * header lines, "\r\n", at most max bytes in all. target (tlen bytes) gets host:port.
 */
enum sdif_preamble sdif_relay_preamble(const char *p, size_t n, size_t max, char *target,
                                       size_t tlen, size_t *used);
/* The port the relay listens on (useful when configured as 0), or -1 when not started. */
int sdif_relay_port(struct sdif *s);

#endif
