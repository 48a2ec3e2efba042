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
    /*
     * Figure 4: one-time activation codes (only their sha256 is kept, so a copy of the
     * database gives no usable code) and what each device said it is. revoked_at records
     * when an operator revoked the device.
     */
    {2, "CREATE TABLE activation_code ("
        " code_hash TEXT PRIMARY KEY,"
        " subscriber_id INTEGER NOT NULL REFERENCES subscriber (id),"
        " created_at INTEGER NOT NULL,"
        " expires_at INTEGER NOT NULL,"
        " used_at INTEGER,"
        " used_by_hw_id TEXT);"
        "CREATE INDEX activation_code_subscriber ON activation_code (subscriber_id);"
        "ALTER TABLE device ADD COLUMN capability TEXT NOT NULL DEFAULT '{}';"
        "ALTER TABLE device ADD COLUMN revoked_at INTEGER;"},
    /*
     * Issue 5: CPEs (set-top boxes) whose pairing assertions stand for an activation code,
     * each belonging to one subscriber, and the ids of the assertions already spent.
     */
    {3, "CREATE TABLE cpe ("
        " cn TEXT PRIMARY KEY,"
        " subscriber_id INTEGER NOT NULL REFERENCES subscriber (id),"
        " status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),"
        " created_at INTEGER NOT NULL);"
        "CREATE INDEX cpe_subscriber ON cpe (subscriber_id);" REPLAY_TABLE_SQL},
    {0, NULL},
};
