/*
 * dm-mss package_get: GET /v1/agent/packages/<platform>/<version_number>, the download of
 * step 4, resumable (filesrv). Only a package verified at start can be named: the file path
 * comes from that list, never from the request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/admin.h"
#include "opendm/filesrv.h"
#include "opendm/log.h"
#include "dm_mss.h"

/*
 * The application downloads the package; so does `dmctl offline-bundle`, with an operator or
 * an "offline" certificate, to put it in the bundle. Nobody else.
 */
static int dm_mss_package_reader(struct daemon_ctx *d, struct httpd_req *req)
{
	const struct tls_peer *p = httpd_req_peer(req);
	const struct dm_mss_state *st = dm_mss_state(d);

	if (p == NULL)
		return 0;
	if (strcmp(p->issuer_fp, st->app_ca_fp) == 0)
		return 1;
	return d->admin_ca_fp[0] != '\0' && strcmp(p->issuer_fp, d->admin_ca_fp) == 0 &&
	       (admin_peer_has_role(p, "admin") || admin_peer_has_role(p, "subscribers") ||
	        strcmp(p->ou, "offline") == 0);
}

void dm_mss_package_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	const struct dm_mss_state *st = dm_mss_state(d);
	const char *tail = httpd_req_tail(req);
	const struct dm_mss_pkg *pkg = NULL;
	char want[128];
	size_t i;

	if (!dm_mss_package_reader(d, req)) {
		const struct tls_peer *p = httpd_req_peer(req);

		log_rwarn(httpd_req_id(req), "refused package download by '%s'",
		          p != NULL ? p->subject_cn : "?");
		httpd_reply_error(req, 403, "not_application",
		                  "an application certificate is required");
		return;
	}
	/* Compare with the canonical URL of each package: anything else, however close (leading
	 * zeros, extra slashes, dot segments), names no package. */
	for (i = 0; i < st->npkgs && pkg == NULL; i++) {
		dm_mss_package_url(&st->pkgs[i], want, sizeof(want));
		if (strcmp(want + strlen("/v1/agent/packages/"), tail) == 0)
			pkg = &st->pkgs[i];
	}
	if (pkg == NULL) {
		httpd_reply_error(req, 404, "no_package", "no such DM agent package");
		return;
	}
	filesrv_reply(req, pkg->path, pkg->etag, "application/octet-stream");
}
