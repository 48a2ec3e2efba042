/*
 * cdcs-mss: the role's description for the shared daemon runtime. Endpoints are added to
 * cdcs_mss_routes, one handler per endpoint.
 */
#include "cdcs_mss.h"

static const struct httpd_route cdcs_mss_routes[] = {
    {0, NULL, NULL, NULL, 0},
};

const struct daemon_role cdcs_mss_role = {
    .name = "cdcs-mss",
    .migrations = cdcs_mss_migrations,
    .sync = DB_SYNC_FULL,
    .routes = cdcs_mss_routes,
};
