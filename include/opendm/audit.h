/*
 * audit: who did what, when, under which request id, in each daemon's own database.
 *
 * One table per daemon (created if missing when the daemon opens its database), appended to
 * in the same transaction as the change it records, and served to operators by
 * GET /v1/admin/audit (docs/protocol.md, "Audit log").
 */
#ifndef OPENDM_AUDIT_H
#define OPENDM_AUDIT_H

#include <stddef.h>
#include <jansson.h>

#include "opendm/daemon.h"
#include "opendm/db.h"
#include "opendm/httpd.h"

#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX     1000

/* Create the audit table and its index if missing. 0/-1 + err. */
int audit_init(struct db *db, char *err, size_t errlen);
/* Append one row (detail borrowed, may be NULL); inside the caller's transaction when one is
 * open, so the change and its audit row commit together. 0/-1 (logged). */
int audit_add(struct db *db, const char *rid, const char *actor, const char *action,
              const char *subject, const json_t *detail);
/* audit_add() with the request id and the actor taken from req. */
int audit_req(struct daemon_ctx *d, struct httpd_req *req, const char *action, const char *subject,
              const json_t *detail);
/* Rows in seq order: subject/action NULL = any, after = last seq already seen, limit
 * 1..AUDIT_LIMIT_MAX. A new JSON array, or NULL. */
json_t *audit_query(struct db *db, const char *subject, const char *action, long long after,
                    int limit);

/* GET /v1/admin/audit?subject=&action=&after=&limit= (any operator role). */
void audit_get(struct httpd_req *req, void *arg);

#endif
