/*
 * cdcs-iss store: the role's schema, one migration per version. SQL stays portable
 * (DESIGN.md §7) so that a PostgreSQL backend can reuse it.
 */
#include "cdcs_iss.h"

const struct db_migration cdcs_iss_migrations[] = {
    /* One row per CDCS personalization, so a device identity is issued once. */
    {1, "CREATE TABLE personalization ("
        " id INTEGER PRIMARY KEY,"
        " dm_id TEXT NOT NULL,"
        " cdcs TEXT NOT NULL,"
        " cdcs_version INTEGER NOT NULL,"
        " cdcs_identity TEXT NOT NULL UNIQUE,"
        " personalized_at INTEGER NOT NULL,"
        " UNIQUE (dm_id, cdcs, cdcs_version));"},
    {0, NULL},
};
