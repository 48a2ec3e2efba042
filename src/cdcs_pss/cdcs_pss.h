/* cdcs-pss: the role's table and its database schema. */
#ifndef CDCS_PSS_H
#define CDCS_PSS_H

#include <stddef.h>

#include "opendm/daemon.h"

extern const struct daemon_role cdcs_pss_role;
extern const struct db_migration cdcs_pss_migrations[];

#endif
