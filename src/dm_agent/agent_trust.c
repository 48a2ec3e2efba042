/*
 * agent_trust: the keys and the revocation list the agent decides with (agent.h). Held by the
 * agent rather than by a run, so that "play" refuses a revoked CDCS between runs too.
 */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "dev_revoke.h"

void agent_trust_load(struct agent *a, const char *rid)
{
	struct revocation_list kept;
	char err[512];
	int rc;

	/* Read for each run: a device.json change needs no restart of the loop. A key that no
	 * longer loads leaves the keys empty, so every CDCS is refused (fail closed). */
	dev_cdcs_keys_free(&a->keys);
	if (dev_cdcs_keys_load(&a->cfg, &a->keys, err, sizeof(err)) == -1)
		log_rwarn(rid, "CDCS keys: %s (every CDCS will be refused)", err);
	/* The list only ever moves forward: one that cannot be read or verified now, or an older
	 * one, never replaces what is held, so revoked clients stay revoked. */
	rc = dev_revocations_load(&a->cfg, a->keys.operator_pub, &kept, err, sizeof(err));
	if (rc == -1)
		log_rwarn(rid, "kept revocation list unreadable: %s (the one in memory stays)",
		          err);
	if (rc == 1 && kept.serial >= a->revs.serial) {
		revocation_free(&a->revs);
		a->revs = kept;
	} else
		revocation_free(&kept);
	if (a->revs.serial > 0)
		log_rdebug(rid, "revocation list serial %lld: %zu version(s), %zu vendor key(s)",
		           (long long)a->revs.serial, a->revs.n_versions, a->revs.n_keys);
}

void agent_trust_free(struct agent *a)
{
	dev_cdcs_keys_free(&a->keys);
	revocation_free(&a->revs);
	memset(&a->revs, 0, sizeof(a->revs));
}
