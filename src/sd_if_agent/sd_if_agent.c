/*
 * sd-if-agent: the role's description for the shared daemon runtime. Endpoints are added to
 * sd_if_agent_routes, one handler per endpoint.
 */
#include "sd_if_agent.h"

static const struct httpd_route sd_if_agent_routes[] = {
    {0, NULL, NULL, NULL, 0},
};

const struct daemon_role sd_if_agent_role = {
    .name = "sd-if-agent",
    .migrations = sd_if_agent_migrations,
    .sync = DB_SYNC_FULL,
    .routes = sd_if_agent_routes,
};
