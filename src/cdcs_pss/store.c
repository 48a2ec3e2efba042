/*
 * cdcs-pss store: the role's schema, one migration per version. SQL stays portable
 * (DESIGN.md §7) so that a PostgreSQL backend can reuse it.
 */
#include "cdcs_pss.h"

const struct db_migration cdcs_pss_migrations[] = {
    /* Entitlement levels per subscriber account, the input of every policy decision. */
    {1, "CREATE TABLE entitlement ("
        " account TEXT NOT NULL,"
        " level TEXT NOT NULL,"
        " granted_at INTEGER NOT NULL,"
        " PRIMARY KEY (account, level));"
        "CREATE TABLE decision ("
        " id INTEGER PRIMARY KEY,"
        " dm_id TEXT NOT NULL,"
        " outcome TEXT NOT NULL,"
        " reason TEXT NOT NULL,"
        " decided_at INTEGER NOT NULL);"},
    {0, NULL},
};
