/*
 * GET /v1/cdcs/images/<session>: Figure 5 step 13 (docs/protocol.md). The image a download
 * session bought, to the DM it was bought for, streamed from the catalogue with filesrv
 * (Range / If-Range, so an interrupted download resumes) and never held in memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opendm/filesrv.h"
#include "opendm/log.h"
#include "cdcs_mss.h"

#define CDCS_MSS_RANGE_LOG_MAX 64 /* what of a Range header is worth a log line */
#define CDCS_MSS_ID_LOG_MAX    (4 * 64 + 96)

/* 32 lower-case hex characters. */
static int cdcs_mss_session_id_ok(const char *s)
{
	size_t i;

	if (strlen(s) != 2 * CDCS_MSS_SESSION_HEX_BYTES)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* What the client asks for, for the log: the whole image or its Range (which an If-Range
 * naming other content voids). */
static void cdcs_mss_part(struct httpd_req *req, const char *etag, char *buf, size_t len)
{
	const char *range = httpd_req_header(req, "Range");
	const char *ifr = httpd_req_header(req, "If-Range");

	if (range == NULL)
		snprintf(buf, len, "whole image");
	else if (ifr != NULL && strcmp(ifr, etag) != 0)
		snprintf(buf, len, "whole image (If-Range names other content)");
	else if (!cdcs_mss_text_ok(range, CDCS_MSS_RANGE_LOG_MAX))
		snprintf(buf, len, "Range (not shown)");
	else
		snprintf(buf, len, "Range %s", range);
}

/* What step 13 says once the image has gone out: copied, since the request is gone then. */
struct cdcs_mss_delivery {
	struct daemon_ctx *d;
	char rid[HTTPD_RID_MAX + 1];
	char dm_id[DMPEER_ID_MAX + 1];
	char session[2 * CDCS_MSS_SESSION_HEX_BYTES + 1];
	char what[CDCS_MSS_ID_LOG_MAX];
	char part[CDCS_MSS_RANGE_LOG_MAX + 48];
};

static void cdcs_mss_delivered(void *arg, int ok, int64_t first, int64_t sent, int64_t size)
{
	struct cdcs_mss_delivery *dl = arg;

	if (ok && sent > 0) {
		(void)cdcs_mss_store_session_sent(dl->d->db, dl->session, sent);
		/* Step 13 is done when the image has reached its end (a resumed part counts). */
		if (first + sent == size)
			log_step("fig5", 13, dl->rid, dl->dm_id,
			         "delivered %s: bytes %lld-%lld of %lld (%s)", dl->what,
			         (long long)first, (long long)(first + sent - 1), (long long)size,
			         dl->part);
		else
			log_rinfo(dl->rid, "delivered bytes %lld-%lld of %s (%s)", (long long)first,
			          (long long)(first + sent - 1), dl->what, dl->part);
	} else if (size >= 0) {
		log_rinfo(dl->rid, "delivery of %s to %s did not complete (%s)", dl->what,
		          dl->dm_id, dl->part);
	}
	free(dl);
}

void cdcs_mss_image_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_mss *s = d->role_state;
	const char *id = httpd_req_tail(req), *gone;
	struct cdcs_mss_session ss;
	struct cdcs_mss_image img;
	char dm_id[DMPEER_ID_MAX + 1], path[CDCS_MSS_PATH_MAX + CDCS_MSS_RELPATH_MAX + 16];
	struct cdcs_mss_delivery *dl;
	char etag[70];
	int r;

	if (dmpeer_require(req, s->device_ca_fp, dm_id, sizeof(dm_id)) == -1)
		return;
	if (!cdcs_mss_session_id_ok(id) || (r = cdcs_mss_store_session_get(d->db, id, &ss)) == 0) {
		httpd_reply_error(req, 404, "unknown_session", "no such download session");
		return;
	}
	if (r == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if (strcmp(ss.dm_id, dm_id) != 0) {
		log_rwarn(httpd_req_id(req), "session %.8s... of %s asked for by %s", ss.id,
		          ss.dm_id, dm_id);
		httpd_reply_error(req, 403, "wrong_subject",
		                  "this download session belongs to another device");
		return;
	}
	if (ss.expires <= (int64_t)time(NULL)) {
		httpd_reply_error(req, 410, "session_expired",
		                  "this download session has expired: ask for a new ticket");
		return;
	}
	if ((r = cdcs_mss_store_image_by_id(d->db, ss.image, &img)) != 1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if ((gone = cdcs_mss_image_gone(&img)) != NULL) {
		httpd_reply_error(req, 410, gone, "%s/%s %s version %lld was %s", img.m.vendor,
		                  img.m.name, img.m.variant, (long long)img.m.version_number,
		                  img.withdrawn_at != 0 ? "withdrawn" : "revoked");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s/image", s->catalogue_dir, img.path);
	snprintf(etag, sizeof(etag), "\"%s\"", img.m.sha256);
	if ((dl = calloc(1, sizeof(*dl))) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		goto out;
	}
	dl->d = d;
	snprintf(dl->rid, sizeof(dl->rid), "%s", httpd_req_id(req));
	snprintf(dl->dm_id, sizeof(dl->dm_id), "%s", dm_id);
	snprintf(dl->session, sizeof(dl->session), "%s", ss.id);
	snprintf(dl->what, sizeof(dl->what), "%s/%s %s v%lld (sha256 %.12s...)", img.m.vendor,
	         img.m.name, img.m.variant, (long long)img.m.version_number, img.m.sha256);
	cdcs_mss_part(req, etag, dl->part, sizeof(dl->part));
	/* dl is the callback's from here: it runs exactly once, perhaps before this returns. */
	(void)filesrv_reply_cb(req, path, etag, "application/octet-stream", cdcs_mss_delivered, dl);
out:
	cdcs_mss_image_clear(&img);
}
