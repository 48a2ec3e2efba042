/* audit: the audit log of each daemon (see audit.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opendm/admin.h"
#include "opendm/audit.h"
#include "opendm/log.h"

#define AUDIT_TEXT_MAX 128 /* subject and action filters */

static const char audit_schema[] =
    "CREATE TABLE IF NOT EXISTS audit ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ts_ms INTEGER NOT NULL,"
    " rid TEXT NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " detail TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_subject ON audit (subject, seq);";

int audit_init(struct db *db, char *err, size_t errlen)
{
	char *msg = NULL;

	/* Not a role migration: every role has the table, whatever its own schema version. */
	if (sqlite3_exec(db_handle(db), audit_schema, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "audit table: %s", msg != NULL ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int audit_add(struct db *db, const char *rid, const char *actor, const char *action,
              const char *subject, const json_t *detail)
{
	struct timespec now;
	sqlite3_stmt *st;
	char *text = NULL;
	int rc = -1;

	if ((text = detail != NULL ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS)
	                           : strdup("{}")) == NULL) {
		log_err("%s: out of memory", __func__);
		goto fail;
	}
	if ((st = db_prepare(db, "INSERT INTO audit (ts_ms, rid, actor, action, subject, detail)"
	                         " VALUES (?, ?, ?, ?, ?, ?)")) == NULL)
		goto fail;
	clock_gettime(CLOCK_REALTIME, &now);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now.tv_sec * 1000 + now.tv_nsec / 1000000);
	sqlite3_bind_text(st, 2, rid != NULL ? rid : "-", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, actor != NULL ? actor : "unknown", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, subject != NULL ? subject : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, text, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		log_err("%s: %s %s: %s", __func__, action, subject != NULL ? subject : "",
		        db_errmsg(db));
	else
		rc = 0;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
fail:
	free(text);
	return rc;
}

int audit_req(struct daemon_ctx *d, struct httpd_req *req, const char *action, const char *subject,
              const json_t *detail)
{
	char actor[200];

	return audit_add(d->db, httpd_req_id(req), admin_actor(d, req, actor, sizeof(actor)),
	                 action, subject, detail);
}

json_t *audit_query(struct db *db, const char *subject, const char *action, long long after,
                    int limit)
{
	sqlite3_stmt *st;
	json_t *out = NULL, *row, *detail;
	int rc;

	if ((st = db_prepare(db,
	                     "SELECT seq, ts_ms, rid, actor, action, subject, detail FROM audit"
	                     " WHERE (?1 IS NULL OR subject = ?1) AND (?2 IS NULL OR action = ?2)"
	                     " AND seq > ?3 ORDER BY seq LIMIT ?4")) == NULL)
		return NULL;
	if (subject != NULL)
		sqlite3_bind_text(st, 1, subject, -1, SQLITE_STATIC);
	if (action != NULL)
		sqlite3_bind_text(st, 2, action, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, after);
	sqlite3_bind_int(st, 4, limit);
	if ((out = json_array()) == NULL)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		detail = json_loads((const char *)sqlite3_column_text(st, 6), 0, NULL);
		row = json_pack("{s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:o}", "seq",
		                (json_int_t)sqlite3_column_int64(st, 0), "ts",
		                (json_int_t)(sqlite3_column_int64(st, 1) / 1000), "ts_ms",
		                (json_int_t)sqlite3_column_int64(st, 1), "rid",
		                (const char *)sqlite3_column_text(st, 2), "actor",
		                (const char *)sqlite3_column_text(st, 3), "action",
		                (const char *)sqlite3_column_text(st, 4), "subject",
		                (const char *)sqlite3_column_text(st, 5), "detail",
		                detail != NULL ? detail : json_object());
		if (row == NULL || json_array_append_new(out, row) == -1)
			goto fail;
	}
	if (rc != SQLITE_DONE) {
		log_err("%s: %s", __func__, db_errmsg(db));
		goto fail;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return out;
fail:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	json_decref(out);
	return NULL;
}

/* A query parameter: 1 found, 0 absent, -1 (400 sent) malformed. */
static int audit_param(struct httpd_req *req, const char *key, char *buf, size_t len)
{
	int rc = httpd_req_query(req, key, buf, len);
	size_t i;

	for (i = 0; rc == 1 && buf[i] != '\0'; i++)
		if ((unsigned char)buf[i] < 0x21 || (unsigned char)buf[i] > 0x7e)
			rc = -1;
	if (rc == -1)
		httpd_reply_error(req, 400, "bad_request",
		                  "query parameter '%s': 1-%zu printable characters", key, len - 1);
	return rc;
}

/* A decimal query parameter in [min, max]: 1, 0 absent, -1 (400 sent). */
static int audit_param_int(struct httpd_req *req, const char *key, long long min, long long max,
                           long long *out)
{
	char buf[24], *end;
	int rc = audit_param(req, key, buf, sizeof(buf));

	if (rc != 1)
		return rc;
	errno = 0;
	*out = strtoll(buf, &end, 10);
	if (errno != 0 || *end != '\0' || buf[0] == '-' || buf[0] == '+' || *out < min ||
	    *out > max) {
		httpd_reply_error(req, 400, "bad_request",
		                  "query parameter '%s': an integer from %lld to %lld", key, min,
		                  max);
		return -1;
	}
	return 1;
}

void audit_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	char subject[AUDIT_TEXT_MAX + 1], action[AUDIT_TEXT_MAX + 1];
	long long after = 0, limit = AUDIT_LIMIT_DEFAULT;
	int has_subject, has_action;
	json_t *entries;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ))
		return;
	if ((has_subject = audit_param(req, "subject", subject, sizeof(subject))) == -1 ||
	    (has_action = audit_param(req, "action", action, sizeof(action))) == -1 ||
	    audit_param_int(req, "after", 0, (long long)1 << 62, &after) == -1 ||
	    audit_param_int(req, "limit", 1, AUDIT_LIMIT_MAX, &limit) == -1)
		return;
	if ((entries = audit_query(d->db, has_subject ? subject : NULL, has_action ? action : NULL,
	                           after, (int)limit)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "the audit log cannot be read");
		return;
	}
	httpd_reply_json(req, 200,
	                 json_pack("{s:s, s:o}", "role", d->role->name, "entries", entries));
}
