/*
 * GET /v1/internal/catalogue/<vendor>/<name>: what the catalogue holds of one CDCS, for
 * cdcs-pss to check a rule or a campaign before storing it (docs/protocol.md). Withdrawn and
 * revoked images are listed too, marked: a CDCS that was ever registered is known.
 */
#include <stdio.h>
#include <string.h>

#include "opendm/admin.h"
#include "opendm/log.h"
#include "cdcs_mss.h"

/* "<vendor>/<name>" into its two ids. 0/-1. */
static int cdcs_mss_split_cdcs(const char *tail, char vendor[CDCSIMG_ID_MAX + 1],
                               char name[CDCSIMG_ID_MAX + 1])
{
	const char *slash = strchr(tail, '/');
	size_t n;

	if (slash == NULL || (n = (size_t)(slash - tail)) == 0 || n > CDCSIMG_ID_MAX ||
	    strnlen(slash + 1, CDCSIMG_ID_MAX + 1) > CDCSIMG_ID_MAX)
		return -1;
	memcpy(vendor, tail, n);
	vendor[n] = '\0';
	memcpy(name, slash + 1, strlen(slash + 1) + 1);
	return cdcsimg_valid_id(vendor) && cdcsimg_valid_id(name) ? 0 : -1;
}

void cdcs_mss_catalogue_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	char vendor[CDCSIMG_ID_MAX + 1], name[CDCSIMG_ID_MAX + 1], kind[8];
	json_t *images = NULL;
	int r;

	if (!admin_authorize_service(d, req, "cdcs-pss"))
		return;
	if (cdcs_mss_split_cdcs(httpd_req_tail(req), vendor, name) == -1) {
		httpd_reply_error(req, 400, "bad_request",
		                  "path: expected /v1/internal/catalogue/VENDOR/NAME, each 1-%d of "
		                  "[A-Za-z0-9._-] starting alphanumeric",
		                  CDCSIMG_ID_MAX);
		return;
	}
	if ((r = cdcs_mss_store_catalogue(d->db, vendor, name, &images, kind)) == -1) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if (r == 0) {
		httpd_reply_error(req, 404, "unknown_cdcs", "no CDCS %s/%s in the catalogue",
		                  vendor, name);
		return;
	}
	httpd_reply_json(req, 200,
	                 json_pack("{s:s, s:s, s:s, s:o}", "vendor", vendor, "name", name, "kind",
	                           kind, "images", images));
}
