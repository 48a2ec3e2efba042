/* admin: operator endpoints shared by every daemon (see admin.h). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "opendm/admin.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/tls.h"

const struct schema_field admin_log_level_fields[] = {
    {"level", SCHEMA_STRING, offsetof(struct admin_log_level_body, level), 1, 1, 16, 0, NULL},
    SCHEMA_END,
};

int admin_ca_fingerprint(const char *cert_path, char fp[65], char *err, size_t errlen)
{
	/* The second certificate of the chain file is the CA that issued the daemon. */
	return pki_cert_file_fingerprint(cert_path, 1, fp, err, errlen);
}

int admin_authorize_service(struct daemon_ctx *d, struct httpd_req *req, const char *cn)
{
	const struct tls_peer *p = httpd_req_peer(req);

	if (p != NULL && d->admin_ca_fp[0] != '\0' && strcmp(p->issuer_fp, d->admin_ca_fp) == 0 &&
	    p->ou[0] == '\0' && strcmp(p->subject_cn, cn) == 0)
		return 1;
	log_rwarn(httpd_req_id(req), "refused internal request from '%s' (only %s may ask)",
	          p != NULL ? p->subject_cn : "?", cn);
	httpd_reply_error(req, 403, "forbidden", "only %s may call this endpoint", cn);
	return 0;
}

int admin_authorize(struct daemon_ctx *d, struct httpd_req *req)
{
	const struct tls_peer *p = httpd_req_peer(req);

	if (p != NULL && strcmp(p->ou, "admin") == 0 && d->admin_ca_fp[0] != '\0' &&
	    strcmp(p->issuer_fp, d->admin_ca_fp) == 0)
		return 1;
	log_rwarn(httpd_req_id(req), "refused admin request from '%s'",
	          p != NULL ? p->subject_cn : "?");
	httpd_reply_error(req, 403, "forbidden", "an operator certificate is required");
	return 0;
}

void admin_log_level(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct admin_log_level_body *b = httpd_req_body(req);
	enum log_level lvl;

	if (!admin_authorize(d, req))
		return;
	if (log_level_parse(b->level, &lvl) == -1) {
		httpd_reply_error(req, 400, "bad_request",
		                  "level must be one of err, warn, info, debug");
		return;
	}
	log_set_level(lvl);
	log_rinfo(httpd_req_id(req), "log level set to %s by '%s'", log_level_name(lvl),
	          httpd_req_peer(req)->subject_cn);
	httpd_reply_json(req, 200, json_pack("{s:s}", "level", log_level_name(lvl)));
}
