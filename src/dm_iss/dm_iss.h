/* dm-iss: the role's table and its database schema. */
#ifndef DM_ISS_H
#define DM_ISS_H

#include <stddef.h>

#include "opendm/daemon.h"

extern const struct daemon_role dm_iss_role;
extern const struct db_migration dm_iss_migrations[];

#endif
