/*
 * replay: the single-use store for signed tokens (the jti of every token accepted), kept in
 * the role's own database so that a token stays spent across restarts.
 *
 * A role adds REPLAY_TABLE_SQL to one of its migrations and passes replay_record() as the
 * jose_jti_fn (jti_arg = its struct db *). replay_record() never opens a transaction of its
 * own: called inside the caller's, the jti is recorded together with what the token bought,
 * or not at all.
 */
#ifndef OPENDM_REPLAY_H
#define OPENDM_REPLAY_H

#include <stdint.h>

#include "opendm/db.h"

#define REPLAY_JTI_MAX 128 /* longer jtis are refused (they are 32 hex characters here) */

#define REPLAY_TABLE_SQL                                                                           \
	"CREATE TABLE used_token ("                                                                \
	" jti TEXT PRIMARY KEY,"                                                                   \
	" exp INTEGER NOT NULL);"                                                                  \
	"CREATE INDEX used_token_exp ON used_token (exp);"

/*
 * A jose_jti_fn over db (a struct db *): 0 when jti was new and is now recorded until exp,
 * 1 when it was already recorded (a replay), -1 on error (logged).
 */
int replay_record(void *db, const char *jti, int64_t exp);
/* Forget the tokens that expired before now (they fail their exp check anyway). Returns
 * the number of rows deleted, or -1. */
int replay_purge(struct db *db, int64_t now);

#endif
