/*
 * sd-if-agent store: the role's schema, one migration per version. SQL stays portable
 * (DESIGN.md §7) so that a PostgreSQL backend can reuse it.
 */
#include "sd_if_agent.h"

const struct db_migration sd_if_agent_migrations[] = {
    /* Secondary devices paired with this CPE; only these get a relay link. */
    {1, "CREATE TABLE pairing ("
        " hw_id TEXT PRIMARY KEY,"
        " link_cert_fp TEXT NOT NULL UNIQUE,"
        " paired_at INTEGER NOT NULL,"
        " unpaired_at INTEGER);"},
    {0, NULL},
};
