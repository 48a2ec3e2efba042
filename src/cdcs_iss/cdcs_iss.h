/* cdcs-iss: the role's table and its database schema. */
#ifndef CDCS_ISS_H
#define CDCS_ISS_H

#include <stddef.h>

#include "opendm/daemon.h"

extern const struct daemon_role cdcs_iss_role;
extern const struct db_migration cdcs_iss_migrations[];

#endif
