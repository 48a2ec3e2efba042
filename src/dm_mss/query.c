/*
 * dm-mss query: what the operator listings share. Their query parameters are checked as
 * strictly as bodies are, and their rows become JSON by column type, so each listing is its
 * SQL and its key names.
 */
#include <string.h>

#include "opendm/log.h"
#include "dm_mss.h"

int dm_mss_query(struct httpd_req *req, const char *key, char *buf, size_t len,
                 int (*ok)(const char *), const char *what)
{
	int rc = httpd_req_query(req, key, buf, len);

	if (rc == 1 && !ok(buf))
		rc = -1;
	if (rc == -1)
		httpd_reply_error(req, 400, "bad_request", "query parameter '%s': %s", key, what);
	return rc;
}

static json_t *dm_mss_col_json(sqlite3_stmt *s, int col)
{
	switch (sqlite3_column_type(s, col)) {
	case SQLITE_INTEGER:
		return json_integer(sqlite3_column_int64(s, col));
	case SQLITE_NULL:
		return json_null();
	default:
		return json_string(dm_mss_col_text(s, col));
	}
}

json_t *dm_mss_rows(struct db *db, sqlite3_stmt *s, const char *const *keys)
{
	json_t *out, *row = NULL;
	int rc = SQLITE_NOMEM, i;

	if ((out = json_array()) == NULL)
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (keys == NULL)
			row = dm_mss_col_json(s, 0);
		else if ((row = json_object()) != NULL)
			for (i = 0; keys[i] != NULL; i++)
				if (json_object_set_new(row, keys[i], dm_mss_col_json(s, i)) ==
				    -1) {
					rc = SQLITE_NOMEM;
					goto fail;
				}
		/* Takes row, even when it fails. */
		if (json_array_append_new(out, row) == -1) {
			row = NULL;
			rc = SQLITE_NOMEM;
			goto fail;
		}
		row = NULL;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_reset(s);
	return out;

fail:
	log_err("%s: %s", __func__, rc == SQLITE_NOMEM ? "out of memory" : db_errmsg(db));
	sqlite3_reset(s);
	json_decref(row);
	json_decref(out);
	return NULL;
}
