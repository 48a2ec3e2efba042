/*
 * dm-mss: the role's description for the shared daemon runtime. Endpoints are added to
 * dm_mss_routes, one handler per endpoint.
 */
#include "dm_mss.h"

static const struct httpd_route dm_mss_routes[] = {
    {0, NULL, NULL, NULL, 0},
};

const struct daemon_role dm_mss_role = {
    .name = "dm-mss",
    .migrations = dm_mss_migrations,
    .sync = DB_SYNC_NORMAL,
    .routes = dm_mss_routes,
};
