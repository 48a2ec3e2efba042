/*
 * dm-iss: the role's description for the shared daemon runtime. Endpoints are added to
 * dm_iss_routes, one handler per endpoint.
 */
#include "dm_iss.h"

static const struct httpd_route dm_iss_routes[] = {
    {0, NULL, NULL, NULL, 0},
};

const struct daemon_role dm_iss_role = {
    .name = "dm-iss",
    .migrations = dm_iss_migrations,
    .sync = DB_SYNC_FULL,
    .routes = dm_iss_routes,
};
