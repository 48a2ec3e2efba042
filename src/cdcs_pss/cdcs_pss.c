/*
 * cdcs-pss: the role's description for the shared daemon runtime. Endpoints are added to
 * cdcs_pss_routes, one handler per endpoint.
 */
#include "cdcs_pss.h"

static const struct httpd_route cdcs_pss_routes[] = {
    {0, NULL, NULL, NULL, 0},
};

const struct daemon_role cdcs_pss_role = {
    .name = "cdcs-pss",
    .migrations = cdcs_pss_migrations,
    .sync = DB_SYNC_NORMAL,
    .routes = cdcs_pss_routes,
};
