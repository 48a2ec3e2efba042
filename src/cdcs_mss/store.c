/*
 * cdcs-mss store: the role's schema, one migration per version. SQL stays portable
 * (DESIGN.md §7) so that a PostgreSQL backend can reuse it.
 */
#include "cdcs_mss.h"

const struct db_migration cdcs_mss_migrations[] = {
    /* The catalogue of CDCS images; a version is unique per vendor, name and variant. */
    {1, "CREATE TABLE cdcs_image ("
        " id INTEGER PRIMARY KEY,"
        " vendor TEXT NOT NULL,"
        " name TEXT NOT NULL,"
        " variant TEXT NOT NULL,"
        " version INTEGER NOT NULL CHECK (version > 0),"
        " sha256 TEXT NOT NULL,"
        " size INTEGER NOT NULL CHECK (size >= 0),"
        " published_at INTEGER NOT NULL,"
        " UNIQUE (vendor, name, variant, version));"},
    {0, NULL},
};
