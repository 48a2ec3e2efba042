/*
 * cdcs-iss: the role's description for the shared daemon runtime. Endpoints are added to
 * cdcs_iss_routes, one handler per endpoint.
 */
#include "cdcs_iss.h"

static const struct httpd_route cdcs_iss_routes[] = {
    {0, NULL, NULL, NULL, 0},
};

const struct daemon_role cdcs_iss_role = {
    .name = "cdcs-iss",
    .migrations = cdcs_iss_migrations,
    .sync = DB_SYNC_FULL,
    .routes = cdcs_iss_routes,
};
