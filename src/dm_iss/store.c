/*
 * dm-iss store: the role's schema, one migration per version. SQL stays portable
 * (DESIGN.md §7) so that a PostgreSQL backend can reuse it.
 */
#include "dm_iss.h"

const struct db_migration dm_iss_migrations[] = {
    /* Every certificate issued, so a serial or a DM id is never handed out twice. */
    {1, "CREATE TABLE issued_cert ("
        " serial TEXT PRIMARY KEY,"
        " dm_id TEXT NOT NULL UNIQUE,"
        " hw_id TEXT NOT NULL,"
        " not_after INTEGER NOT NULL,"
        " revoked_at INTEGER,"
        " issued_at INTEGER NOT NULL);"
        "CREATE INDEX issued_cert_hw ON issued_cert (hw_id);"},
    {0, NULL},
};
