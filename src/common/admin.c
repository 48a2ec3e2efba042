/* admin: operator authorization and the endpoints shared by every daemon (see admin.h). */
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

/* The roles an operator certificate may hold, as its OU values spell them. */
static const char *const admin_roles[] = {"viewer", "admin", "subscribers", "policy", "catalogue"};

int admin_ca_fingerprint(const char *cert_path, char fp[65], char *err, size_t errlen)
{
	/* The second certificate of the chain file is the CA that issued the daemon. */
	return pki_cert_file_fingerprint(cert_path, 1, fp, err, errlen);
}

const char *admin_role_name(enum admin_role r)
{
	return r == ADMIN_ROLE_READ ? "any" : admin_roles[r];
}

/* 1 if the comma-joined list holds role. */
static int admin_has(const char *ous, const char *role)
{
	size_t n = strlen(role);
	const char *p = ous;

	while (*p != '\0') {
		if (strncmp(p, role, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return 1;
		if ((p = strchr(p, ',')) == NULL)
			break;
		p++;
	}
	return 0;
}

int admin_peer_has_role(const struct tls_peer *p, const char *role)
{
	return admin_has(p->ous, role);
}

/* 1 if the peer holds at least one operator role. */
static int admin_is_operator(const struct tls_peer *p)
{
	size_t i;

	for (i = 0; i < sizeof(admin_roles) / sizeof(admin_roles[0]); i++)
		if (admin_has(p->ous, admin_roles[i]))
			return 1;
	return 0;
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

int admin_authorize(struct daemon_ctx *d, struct httpd_req *req, enum admin_role need)
{
	const struct tls_peer *p = httpd_req_peer(req);

	/* OU alone means nothing: only the service CA issues operator certificates. */
	if (p == NULL || d->admin_ca_fp[0] == '\0' || strcmp(p->issuer_fp, d->admin_ca_fp) != 0 ||
	    !admin_is_operator(p)) {
		log_rwarn(httpd_req_id(req), "refused admin request from '%s'",
		          p != NULL ? p->subject_cn : "?");
		httpd_reply_error(req, 403, "forbidden", "an operator certificate is required");
		return 0;
	}
	if (need == ADMIN_ROLE_READ || admin_has(p->ous, "admin") ||
	    admin_has(p->ous, admin_roles[need]))
		return 1;
	log_rwarn(httpd_req_id(req), "refused %s %s from operator '%s' (roles %s): needs role '%s'",
	          httpd_req_method_name(req), httpd_req_path(req), p->subject_cn, p->ous,
	          admin_roles[need]);
	httpd_reply_error(req, 403, "missing_role",
	                  "this action needs the operator role '%s'; certificate '%s' has: %s",
	                  admin_roles[need], p->subject_cn, p->ous);
	return 0;
}

const char *admin_actor(const struct daemon_ctx *d, struct httpd_req *req, char *buf, size_t len)
{
	const struct tls_peer *p = httpd_req_peer(req);
	const char *kind = "client";

	if (p == NULL || p->subject_cn[0] == '\0') {
		snprintf(buf, len, "unknown");
		return buf;
	}
	if (d->admin_ca_fp[0] != '\0' && strcmp(p->issuer_fp, d->admin_ca_fp) == 0)
		kind = admin_is_operator(p) ? "operator" : p->ou[0] == '\0' ? "service" : "client";
	else if (strncmp(p->san_uri, "urn:opendm:dm:", 14) == 0)
		kind = "device";
	else if (strcmp(p->ou, "cpe") == 0)
		kind = "cpe";
	snprintf(buf, len, "%s:%s", kind, p->subject_cn);
	return buf;
}

void admin_log_level(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct admin_log_level_body *b = httpd_req_body(req);
	enum log_level lvl;

	if (!admin_authorize(d, req, ADMIN_ROLE_ADMIN))
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
