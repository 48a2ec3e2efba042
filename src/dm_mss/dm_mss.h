/* dm-mss: the role's table and its database schema. */
#ifndef DM_MSS_H
#define DM_MSS_H

#include <stddef.h>

#include "opendm/daemon.h"

extern const struct daemon_role dm_mss_role;
extern const struct db_migration dm_mss_migrations[];

#endif
