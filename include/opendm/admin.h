/*
 * admin: the operator endpoints every daemon serves, under /v1/admin/.
 *
 * An operator is a client whose certificate has OU "admin" and was issued by the same CA
 * as this daemon's own certificate (the service CA), so no extra configuration is needed
 * and a device or CPE certificate can never pass, whatever its subject says.
 */
#ifndef OPENDM_ADMIN_H
#define OPENDM_ADMIN_H

#include "opendm/daemon.h"
#include "opendm/httpd.h"

/* The sha256 fingerprint of the CA that issued the certificate in cert_path (its second
 * certificate), which is the CA operators' certificates must come from. 0/-1 + err. */
int admin_ca_fingerprint(const char *cert_path, char fp[65], char *err, size_t errlen);
/* 1 if the request comes from the daemon whose service certificate has CN cn (issued by the
 * same CA as ours, no OU), else replies 403 and returns 0. For daemon-to-daemon calls. */
int admin_authorize_service(struct daemon_ctx *d, struct httpd_req *req, const char *cn);
/* 1 if the request comes from an operator, else replies 403 and returns 0. */
int admin_authorize(struct daemon_ctx *d, struct httpd_req *req);

/* POST /v1/admin/log-level {"level":"debug"}: change the log level at run time. */
void admin_log_level(struct httpd_req *req, void *arg);

struct admin_log_level_body {
	char *level;
};
extern const struct schema_field admin_log_level_fields[];

#endif
