/*
 * GET /v1/cdcs/images/<session>: Figure 5 step 13 (docs/protocol.md). The image a download
 * session bought, to the DM it was bought for, streamed from the catalogue with filesrv
 * (Range / If-Range, so an interrupted download resumes) and never held in memory.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "opendm/filesrv.h"
#include "opendm/log.h"
#include "cdcs_mss.h"

#define CDCS_MSS_RANGE_LOG_MAX 64 /* what of a Range header is worth a log line */

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

void cdcs_mss_image_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_mss *s = d->role_state;
	const char *id = httpd_req_tail(req);
	struct cdcs_mss_session ss;
	struct cdcs_mss_image img;
	char dm_id[DMPEER_ID_MAX + 1], path[CDCS_MSS_PATH_MAX + CDCS_MSS_RELPATH_MAX + 16];
	char etag[70], part[CDCS_MSS_RANGE_LOG_MAX + 48], rid[HTTPD_RID_MAX + 1];
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
	if (img.withdrawn_at != 0) {
		httpd_reply_error(req, 410, "image_withdrawn",
		                  "%s/%s %s version %lld was withdrawn", img.m.vendor, img.m.name,
		                  img.m.variant, (long long)img.m.version_number);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s/image", s->catalogue_dir, img.path);
	snprintf(etag, sizeof(etag), "\"%s\"", img.m.sha256);
	/*
	 * filesrv has no completion hook, so step 13 is logged as the reply starts, with the
	 * part asked for. Everything logged is copied first: req may be gone once the reply is
	 * under way (the stream may end, or fail, within filesrv_reply()).
	 */
	cdcs_mss_part(req, etag, part, sizeof(part));
	snprintf(rid, sizeof(rid), "%s", httpd_req_id(req));
	if (filesrv_reply(req, path, etag, "application/octet-stream") == 0)
		log_step("fig5", 13, rid, dm_id,
		         "streaming %s/%s %s v%lld (%lld bytes, sha256 %.12s...): %s", img.m.vendor,
		         img.m.name, img.m.variant, (long long)img.m.version_number,
		         (long long)img.m.size, img.m.sha256, part);
out:
	cdcs_mss_image_clear(&img);
}
