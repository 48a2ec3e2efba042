/*
 * cdcs-mss store: the role's schema, one migration per version, and its queries. SQL stays
 * portable (DESIGN.md §7) so that a PostgreSQL backend can reuse it.
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "opendm/log.h"
#include "opendm/replay.h"
#include "cdcs_mss.h"

const struct db_migration cdcs_mss_migrations[] = {
    /*
     * The catalogue: every registered image, with the manifest and approval texts devices get
     * (serving never re-reads or re-hashes them). Withdrawn images stay, so that a version
     * is never registered again with other bytes. Download tickets are single use; a
     * session is what a spent ticket bought: the image, for one DM, for a while.
     */
    {1, "CREATE TABLE image ("
        " id INTEGER PRIMARY KEY,"
        " vendor TEXT NOT NULL,"
        " name TEXT NOT NULL,"
        " variant TEXT NOT NULL,"
        " platform TEXT NOT NULL,"
        " version_number INTEGER NOT NULL CHECK (version_number > 0),"
        " version TEXT NOT NULL,"
        " kind TEXT NOT NULL,"
        " sha256 TEXT NOT NULL,"
        " size INTEGER NOT NULL CHECK (size > 0),"
        " path TEXT NOT NULL,"
        " manifest TEXT NOT NULL,"
        " approval TEXT NOT NULL,"
        " registered_at INTEGER NOT NULL,"
        " withdrawn_at INTEGER,"
        " UNIQUE (vendor, name, variant, platform, version_number));" REPLAY_TABLE_SQL
        "CREATE TABLE session ("
        " id TEXT PRIMARY KEY,"
        " dm_id TEXT NOT NULL,"
        " image INTEGER NOT NULL REFERENCES image (id),"
        " created INTEGER NOT NULL,"
        " expires INTEGER NOT NULL,"
        " personalization_ticket TEXT NOT NULL,"
        " bytes_sent INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX session_expires ON session (expires);"},
    /*
     * Revocation (docs/protocol.md, "Revocation list"): every list the operator stored, the
     * highest serial being the one in force; which vendor key verified each image (NULL
     * for images registered before it was recorded, until init finds it); and when the list
     * in force revoked it. Revoked images stay, like withdrawn ones.
     */
    {2, "ALTER TABLE image ADD COLUMN key_sha256 TEXT;"
        "ALTER TABLE image ADD COLUMN revoked_at INTEGER;"
        "CREATE TABLE revocations ("
        " serial INTEGER PRIMARY KEY CHECK (serial > 0),"
        " jws TEXT NOT NULL,"
        " stored_at INTEGER NOT NULL);"},
    {0, NULL},
};

#define CDCS_MSS_IMAGE_COLS                                                                        \
	"id, vendor, name, variant, platform, version_number, version, kind, sha256, size, path,"  \
	" manifest, approval, registered_at, withdrawn_at, key_sha256, revoked_at"

static int cdcs_mss_col(sqlite3_stmt *st, int i, char *dst, size_t len)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	if (s == NULL || strlen((const char *)s) >= len)
		return -1;
	memcpy(dst, s, strlen((const char *)s) + 1);
	return 0;
}

static char *cdcs_mss_col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s != NULL ? strdup((const char *)s) : NULL;
}

/* A row of CDCS_MSS_IMAGE_COLS into out. 0/-1. */
static int cdcs_mss_image_row(sqlite3_stmt *st, struct cdcs_mss_image *out)
{
	struct cdcsimg_manifest *m = &out->m;

	memset(out, 0, sizeof(*out));
	out->id = sqlite3_column_int64(st, 0);
	if (cdcs_mss_col(st, 1, m->vendor, sizeof(m->vendor)) == -1 ||
	    cdcs_mss_col(st, 2, m->name, sizeof(m->name)) == -1 ||
	    cdcs_mss_col(st, 3, m->variant, sizeof(m->variant)) == -1 ||
	    cdcs_mss_col(st, 4, m->platform, sizeof(m->platform)) == -1 ||
	    cdcs_mss_col(st, 6, m->version, sizeof(m->version)) == -1 ||
	    cdcs_mss_col(st, 7, m->kind, sizeof(m->kind)) == -1 ||
	    cdcs_mss_col(st, 8, m->sha256, sizeof(m->sha256)) == -1 ||
	    cdcs_mss_col(st, 10, out->path, sizeof(out->path)) == -1) {
		log_err("image row %lld is incomplete", (long long)out->id);
		return -1;
	}
	m->version_number = sqlite3_column_int64(st, 5);
	m->size = sqlite3_column_int64(st, 9);
	out->registered_at = sqlite3_column_int64(st, 13);
	out->withdrawn_at =
	    sqlite3_column_type(st, 14) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 14);
	if (sqlite3_column_type(st, 15) != SQLITE_NULL &&
	    cdcs_mss_col(st, 15, out->key_sha256, sizeof(out->key_sha256)) == -1) {
		log_err("image row %lld: bad key_sha256", (long long)out->id);
		return -1;
	}
	out->revoked_at =
	    sqlite3_column_type(st, 16) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 16);
	if ((out->manifest = cdcs_mss_col_dup(st, 11)) == NULL ||
	    (out->approval = cdcs_mss_col_dup(st, 12)) == NULL) {
		log_err("out of memory");
		cdcs_mss_image_clear(out);
		return -1;
	}
	return 0;
}

/* Step st (bound) for at most one image row. 1/0/-1. */
static int cdcs_mss_image_one(struct db *db, sqlite3_stmt *st, struct cdcs_mss_image *out)
{
	int rc, ret = -1;

	memset(out, 0, sizeof(*out));
	if ((rc = sqlite3_step(st)) == SQLITE_DONE)
		ret = 0;
	else if (rc != SQLITE_ROW)
		log_err("image lookup: %s", db_errmsg(db));
	else if (cdcs_mss_image_row(st, out) == 0)
		ret = 1;
	sqlite3_reset(st);
	return ret;
}

static int cdcs_mss_bind_ident(struct db *db, sqlite3_stmt *st, const char *vendor,
                               const char *name, const char *variant, const char *platform,
                               int64_t version_number)
{
	if (sqlite3_bind_text(st, 1, vendor, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, variant, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, platform, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, version_number) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return 0;
}

int cdcs_mss_store_image_get(struct db *db, const char *vendor, const char *name,
                             const char *variant, const char *platform, int64_t version_number,
                             struct cdcs_mss_image *out)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "SELECT " CDCS_MSS_IMAGE_COLS " FROM image WHERE vendor = ?1"
	                         " AND name = ?2 AND variant = ?3 AND platform = ?4"
	                         " AND version_number = ?5")) == NULL ||
	    cdcs_mss_bind_ident(db, st, vendor, name, variant, platform, version_number) == -1)
		return -1;
	return cdcs_mss_image_one(db, st, out);
}

int cdcs_mss_store_image_by_id(struct db *db, int64_t id, struct cdcs_mss_image *out)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "SELECT " CDCS_MSS_IMAGE_COLS " FROM image WHERE id = ?1")) ==
	    NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return cdcs_mss_image_one(db, st, out);
}

int cdcs_mss_store_image_choose(struct db *db, const char *vendor, const char *name,
                                const char *variant, const char *platform, int64_t min_version,
                                struct cdcs_mss_image *out)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "SELECT " CDCS_MSS_IMAGE_COLS " FROM image WHERE vendor = ?1"
	                         " AND name = ?2 AND variant = ?3 AND platform = ?4"
	                         " AND version_number >= ?5 AND withdrawn_at IS NULL"
	                         " AND revoked_at IS NULL"
	                         " ORDER BY version_number DESC LIMIT 1")) == NULL ||
	    cdcs_mss_bind_ident(db, st, vendor, name, variant, platform, min_version) == -1)
		return -1;
	return cdcs_mss_image_one(db, st, out);
}

int cdcs_mss_store_image_insert(struct db *db, struct cdcs_mss_image *img)
{
	const struct cdcsimg_manifest *m = &img->m;
	sqlite3_stmt *st;
	int rc;

	if ((st = db_prepare(
	         db, "INSERT INTO image (vendor, name, variant, platform,"
	             " version_number, version, kind, sha256, size, path, manifest,"
	             " approval, registered_at, key_sha256)"
	             " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)")) ==
	        NULL ||
	    cdcs_mss_bind_ident(db, st, m->vendor, m->name, m->variant, m->platform,
	                        m->version_number) == -1)
		return -1;
	if (sqlite3_bind_text(st, 6, m->version, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 7, m->kind, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 8, m->sha256, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 9, m->size) != SQLITE_OK ||
	    sqlite3_bind_text(st, 10, img->path, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 11, img->manifest, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 12, img->approval, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 13, img->registered_at) != SQLITE_OK ||
	    (img->key_sha256[0] != '\0'
	         ? sqlite3_bind_text(st, 14, img->key_sha256, -1, SQLITE_TRANSIENT)
	         : sqlite3_bind_null(st, 14)) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		log_err("cannot record image %s: %s", img->path, db_errmsg(db));
	else
		img->id = sqlite3_last_insert_rowid(db_handle(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int cdcs_mss_store_image_withdraw(struct db *db, const char *vendor, const char *name,
                                  const char *variant, const char *platform, int64_t version_number,
                                  int64_t now)
{
	sqlite3_stmt *st;
	int rc, changed;

	/* Withdrawing twice keeps the first time: that is when it stopped being served. */
	if ((st = db_prepare(db, "UPDATE image SET withdrawn_at = COALESCE(withdrawn_at, ?6)"
	                         " WHERE vendor = ?1 AND name = ?2 AND variant = ?3"
	                         " AND platform = ?4 AND version_number = ?5")) == NULL ||
	    cdcs_mss_bind_ident(db, st, vendor, name, variant, platform, version_number) == -1)
		return -1;
	if (sqlite3_bind_int64(st, 6, now) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	rc = sqlite3_step(st);
	changed = sqlite3_changes(db_handle(db));
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_err("cannot withdraw: %s", db_errmsg(db));
		return -1;
	}
	return changed > 0 ? 1 : 0;
}

json_t *cdcs_mss_store_image_list(struct db *db)
{
	struct cdcs_mss_image img;
	sqlite3_stmt *st;
	json_t *list, *o;
	int rc;

	if ((list = json_array()) == NULL)
		return NULL;
	if ((st = db_prepare(db, "SELECT " CDCS_MSS_IMAGE_COLS " FROM image ORDER BY vendor,"
	                         " name, variant, platform, version_number")) == NULL)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cdcs_mss_image_row(st, &img) == -1)
			break;
		o = cdcs_mss_image_json(&img);
		cdcs_mss_image_clear(&img);
		if (o == NULL || json_array_append_new(list, o) == -1) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return list;
	log_err("image list: %s", rc == SQLITE_NOMEM ? "out of memory" : db_errmsg(db));
fail:
	json_decref(list);
	return NULL;
}

int cdcs_mss_store_catalogue(struct db *db, const char *vendor, const char *name, json_t **images,
                             char kind[8])
{
	sqlite3_stmt *st;
	json_t *list, *o;
	int rc;

	*images = NULL;
	kind[0] = '\0';
	if ((list = json_array()) == NULL)
		return -1;
	if ((st = db_prepare(db, "SELECT variant, platform, version_number, version,"
	                         " withdrawn_at IS NOT NULL, revoked_at IS NOT NULL, kind"
	                         " FROM image WHERE vendor = ?1 AND name = ?2"
	                         " ORDER BY variant, platform, version_number")) == NULL)
		goto fail;
	if (sqlite3_bind_text(st, 1, vendor, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		goto fail;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		o = json_pack("{s:s?, s:s?, s:I, s:s?, s:b, s:b}", "variant",
		              (const char *)sqlite3_column_text(st, 0), "platform",
		              (const char *)sqlite3_column_text(st, 1), "version_number",
		              (json_int_t)sqlite3_column_int64(st, 2), "version",
		              (const char *)sqlite3_column_text(st, 3), "withdrawn",
		              sqlite3_column_int(st, 4), "revoked", sqlite3_column_int(st, 5));
		if (o == NULL || json_array_append_new(list, o) == -1 ||
		    cdcs_mss_col(st, 6, kind, 8) == -1) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_err("catalogue of %s/%s: %s", vendor, name,
		        rc == SQLITE_NOMEM ? "out of memory or bad row" : db_errmsg(db));
		goto fail;
	}
	if (json_array_size(list) == 0) {
		json_decref(list);
		return 0;
	}
	*images = list;
	return 1;
fail:
	json_decref(list);
	return -1;
}

int cdcs_mss_store_image_next_unkeyed(struct db *db, int64_t after, int64_t *id)
{
	sqlite3_stmt *st;
	int rc;

	*id = 0;
	if ((st = db_prepare(db, "SELECT MIN(id) FROM image WHERE key_sha256 IS NULL"
	                         " AND id > ?1")) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, after);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW) {
		log_err("image lookup: %s", db_errmsg(db));
		return -1;
	}
	return *id > after ? 1 : 0;
}

/* Step st (bound) that changes rows; always reset. 0/-1 (logged with what). */
static int cdcs_mss_done(struct db *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		log_err("cannot %s: %s", what, db_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int cdcs_mss_store_image_set_key(struct db *db, int64_t id, const char *key_sha256)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "UPDATE image SET key_sha256 = ?2 WHERE id = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, key_sha256, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return cdcs_mss_done(db, st, "record an image's vendor key");
}

/* An image as the revocation list sees it. */
struct cdcs_mss_revokee {
	int64_t id;
	int revoked; /* now */
	int want;    /* by rl */
};

static int cdcs_mss_vendor_has_revoked_key(const struct revocation_list *rl, const char *vendor)
{
	size_t i;

	for (i = 0; vendor != NULL && i < rl->n_keys; i++)
		if (strcmp(rl->keys[i].vendor, vendor) == 0)
			return 1;
	return 0;
}

int cdcs_mss_store_image_revoke(struct db *db, const struct revocation_list *rl, int64_t now)
{
	struct cdcs_mss_revokee *v = NULL, *nv;
	const char *vendor, *name, *key;
	size_t n = 0, cap = 0, i;
	sqlite3_stmt *st;
	int rc, count = 0;

	/* Read first, then write: the catalogue is small, and no update runs under a read. */
	if ((st = db_prepare(db, "SELECT id, vendor, name, version_number, key_sha256,"
	                         " revoked_at IS NOT NULL FROM image")) == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap == 0 ? 64 : 2 * cap;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		vendor = (const char *)sqlite3_column_text(st, 1);
		name = (const char *)sqlite3_column_text(st, 2);
		key = (const char *)sqlite3_column_text(st, 4);
		v[n].id = sqlite3_column_int64(st, 0);
		v[n].revoked = sqlite3_column_int(st, 5);
		/* An image whose verifying key is unknown (none of today's keys verifies it) is
		 * revoked with any revoked key of its vendor: fail closed. */
		v[n].want =
		    revocation_version_revoked(rl, vendor, name, sqlite3_column_int64(st, 3)) ||
		    (key != NULL ? revocation_key_revoked(rl, vendor, key)
		                 : cdcs_mss_vendor_has_revoked_key(rl, vendor));
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_err("image scan: %s", rc == SQLITE_NOMEM ? "out of memory" : db_errmsg(db));
		goto fail;
	}
	for (i = 0; i < n; i++) {
		count += v[i].want;
		if (v[i].want == v[i].revoked)
			continue;
		/* A list that no longer names an image gives it back (a mistaken entry). */
		if ((st = db_prepare(db, "UPDATE image SET revoked_at = ?2 WHERE id = ?1")) == NULL)
			goto fail;
		if (sqlite3_bind_int64(st, 1, v[i].id) != SQLITE_OK ||
		    (v[i].want ? sqlite3_bind_int64(st, 2, now) : sqlite3_bind_null(st, 2)) !=
		        SQLITE_OK) {
			log_err("cannot bind: %s", db_errmsg(db));
			sqlite3_reset(st);
			goto fail;
		}
		if (cdcs_mss_done(db, st, "mark an image revoked") == -1)
			goto fail;
	}
	free(v);
	return count;
fail:
	free(v);
	return -1;
}

int cdcs_mss_store_revocations_get(struct db *db, int64_t *serial, char **jws)
{
	sqlite3_stmt *st;
	int rc, ret = -1;

	*serial = 0;
	*jws = NULL;
	if ((st = db_prepare(db, "SELECT serial, jws FROM revocations"
	                         " ORDER BY serial DESC LIMIT 1")) == NULL)
		return -1;
	if ((rc = sqlite3_step(st)) == SQLITE_DONE)
		ret = 0;
	else if (rc != SQLITE_ROW)
		log_err("revocation list lookup: %s", db_errmsg(db));
	else if ((*jws = cdcs_mss_col_dup(st, 1)) == NULL)
		log_err("out of memory");
	else {
		*serial = sqlite3_column_int64(st, 0);
		ret = 1;
	}
	sqlite3_reset(st);
	return ret;
}

int cdcs_mss_store_revocations_put(struct db *db, int64_t serial, const char *jws, int64_t now)
{
	sqlite3_stmt *st;

	if ((st = db_prepare(db, "INSERT INTO revocations (serial, jws, stored_at)"
	                         " VALUES (?1, ?2, ?3)")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, serial) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, jws, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, now) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	return cdcs_mss_done(db, st, "store the revocation list");
}

int cdcs_mss_store_session_insert(struct db *db, const struct cdcs_mss_session *s,
                                  const char *perso_ticket)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = db_prepare(db, "INSERT INTO session (id, dm_id, image, created, expires,"
	                         " personalization_ticket) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")) ==
	    NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, s->id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, s->dm_id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, s->image) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, s->created) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, s->expires) != SQLITE_OK ||
	    sqlite3_bind_text(st, 6, perso_ticket, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		log_err("cannot record session: %s", db_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int cdcs_mss_store_session_sent(struct db *db, const char *id, int64_t n)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = db_prepare(
	         db, "UPDATE session SET bytes_sent = bytes_sent + ?2 WHERE id = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, n) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		log_err("cannot count bytes sent: %s", db_errmsg(db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int cdcs_mss_store_session_get(struct db *db, const char *id, struct cdcs_mss_session *out)
{
	sqlite3_stmt *st;
	int rc, ret = -1;

	memset(out, 0, sizeof(*out));
	if ((st = db_prepare(db, "SELECT id, dm_id, image, created, expires FROM session"
	                         " WHERE id = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		goto out;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		log_err("session lookup: %s", db_errmsg(db));
		goto out;
	}
	if (cdcs_mss_col(st, 0, out->id, sizeof(out->id)) == -1 ||
	    cdcs_mss_col(st, 1, out->dm_id, sizeof(out->dm_id)) == -1) {
		log_err("session row is incomplete");
		goto out;
	}
	out->image = sqlite3_column_int64(st, 2);
	out->created = sqlite3_column_int64(st, 3);
	out->expires = sqlite3_column_int64(st, 4);
	ret = 1;
out:
	sqlite3_reset(st);
	return ret;
}

int cdcs_mss_store_jti_spent(struct db *db, const char *jti)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = db_prepare(db, "SELECT 1 FROM used_token WHERE jti = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, jti, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		log_err("cannot bind: %s", db_errmsg(db));
		sqlite3_reset(st);
		return -1;
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	log_err("token lookup: %s", db_errmsg(db));
	return -1;
}

int cdcs_mss_store_session_purge(struct db *db, int64_t now)
{
	sqlite3_stmt *st;
	int rc, n;

	if ((st = db_prepare(db, "DELETE FROM session WHERE expires < ?1")) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, now);
	rc = sqlite3_step(st);
	n = sqlite3_changes(db_handle(db));
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_err("session purge: %s", db_errmsg(db));
		return -1;
	}
	return n;
}
