/* sd-if-agent: the role's table and its database schema. */
#ifndef SD_IF_AGENT_H
#define SD_IF_AGENT_H

#include <stddef.h>

#include "opendm/daemon.h"

extern const struct daemon_role sd_if_agent_role;
extern const struct db_migration sd_if_agent_migrations[];

#endif
