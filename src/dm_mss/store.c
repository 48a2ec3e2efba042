/*
 * dm-mss store: the role's schema, one migration per version. SQL stays portable
 * (DESIGN.md §7) so that a PostgreSQL backend can reuse it.
 */
#include "dm_mss.h"

const struct db_migration dm_mss_migrations[] = {
    /* Subscribers and the devices registered to them: Figure 4 step 2 checks these. */
    {1, "CREATE TABLE subscriber ("
        " id INTEGER PRIMARY KEY,"
        " account TEXT NOT NULL UNIQUE,"
        " status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),"
        " device_limit INTEGER NOT NULL DEFAULT 5 CHECK (device_limit >= 0),"
        " created_at INTEGER NOT NULL);"
        "CREATE TABLE device ("
        " id INTEGER PRIMARY KEY,"
        " hw_id TEXT NOT NULL UNIQUE,"
        " subscriber_id INTEGER NOT NULL REFERENCES subscriber (id),"
        " platform TEXT NOT NULL,"
        " status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),"
        " created_at INTEGER NOT NULL);"
        "CREATE INDEX device_subscriber ON device (subscriber_id);"},
    {0, NULL},
};
