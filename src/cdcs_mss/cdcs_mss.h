/* cdcs-mss: the role's table and its database schema. */
#ifndef CDCS_MSS_H
#define CDCS_MSS_H

#include <stddef.h>

#include "opendm/daemon.h"

extern const struct daemon_role cdcs_mss_role;
extern const struct db_migration cdcs_mss_migrations[];

#endif
