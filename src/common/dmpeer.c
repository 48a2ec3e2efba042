/* dmpeer: the DM id of a device peer, from its DM certificate (dmpeer.h). */
#include <stdio.h>
#include <string.h>

#include "opendm/dmpeer.h"
#include "opendm/schema.h"
#include "opendm/log.h"

#define DMPEER_URN "urn:opendm:dm:"

int dmpeer_id_ok(const char *s)
{
	return schema_token_ok(s, 1, DMPEER_ID_MAX, "._:-");
}

int dmpeer_id(const struct tls_peer *peer, const char *ca_fp, char *dm_id, size_t len)
{
	const size_t urn = sizeof(DMPEER_URN) - 1;

	if (peer == NULL || ca_fp == NULL || ca_fp[0] == '\0' ||
	    strcmp(peer->issuer_fp, ca_fp) != 0 || !dmpeer_id_ok(peer->subject_cn))
		return -1;
	/* The CN and the URI SAN must say the same, as dm-iss writes them. */
	if (strncmp(peer->san_uri, DMPEER_URN, urn) != 0 ||
	    strcmp(peer->san_uri + urn, peer->subject_cn) != 0)
		return -1;
	if (strlen(peer->subject_cn) >= len)
		return -1;
	memcpy(dm_id, peer->subject_cn, strlen(peer->subject_cn) + 1);
	return 0;
}

int dmpeer_require(struct httpd_req *req, const char *ca_fp, char *dm_id, size_t len)
{
	const struct tls_peer *peer = httpd_req_peer(req);

	if (dmpeer_id(peer, ca_fp, dm_id, len) == 0)
		return 0;
	log_rwarn(httpd_req_id(req), "refused '%s': not a DM certificate",
	          peer != NULL ? peer->subject_cn : "?");
	httpd_reply_error(req, 403, "not_device", "a DM certificate issued by dm-iss is required");
	return -1;
}
