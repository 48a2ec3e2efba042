/*
 * admin: operator authorization and the operator endpoints every daemon serves.
 *
 * An operator is a client whose certificate was issued by the same CA as this daemon's own
 * certificate (the service CA) and whose subject OU values name its roles (admin,
 * subscribers, policy, catalogue, viewer), so no extra configuration is needed and a device or
 * CPE certificate can never pass, whatever its subject says (docs/protocol.md, "Operators").
 */
#ifndef OPENDM_ADMIN_H
#define OPENDM_ADMIN_H

#include "opendm/daemon.h"
#include "opendm/httpd.h"
#include "opendm/tls.h"

/* The sha256 fingerprint of the CA that issued the certificate in cert_path (its second
 * certificate), which is the CA operators' certificates must come from. 0/-1 + err. */
int admin_ca_fingerprint(const char *cert_path, char fp[65], char *err, size_t errlen);
/* 1 if the request comes from the daemon whose service certificate has CN cn (issued by the
 * same CA as ours, no OU), else replies 403 and returns 0. For daemon-to-daemon calls. */
int admin_authorize_service(struct daemon_ctx *d, struct httpd_req *req, const char *cn);
/* What an action needs: READ is any operator role; admin may do everything. */
enum admin_role {
	ADMIN_ROLE_READ,
	ADMIN_ROLE_ADMIN,
	ADMIN_ROLE_SUBSCRIBERS,
	ADMIN_ROLE_POLICY,
	ADMIN_ROLE_CATALOGUE,
};

/* The role's name as written in certificates ("policy"; "any" for READ). */
const char *admin_role_name(enum admin_role r);
/* 1 if the request comes from an operator holding `need` (or admin), else replies 403 and
 * returns 0: "forbidden" for anyone who is no operator, "missing_role" (naming the role
 * needed and the roles held) for an operator without it. */
int admin_authorize(struct daemon_ctx *d, struct httpd_req *req, enum admin_role need);
/* 1 if the certificate's OU values include role (the issuer is not checked here). */
int admin_peer_has_role(const struct tls_peer *p, const char *role);
/* Who made the request, for audit rows: "operator:<CN>", "device:<DM id>", "service:<CN>",
 * "cpe:<CN>", "client:<CN>" or "unknown". Returns buf. */
const char *admin_actor(const struct daemon_ctx *d, struct httpd_req *req, char *buf, size_t len);

/* POST /v1/admin/log-level {"level":"debug"}: change the log level at run time. */
void admin_log_level(struct httpd_req *req, void *arg);

struct admin_log_level_body {
	char *level;
};
extern const struct schema_field admin_log_level_fields[];

#endif
