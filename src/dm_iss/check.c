/* dm-iss check: what dm-iss decides without a database or a peer: the shape of a hw id and an
 * account, and a DM id's status. */
#include <string.h>

#include "opendm/dmpeer.h"
#include "dm_iss.h"

/* The alphabet of DM ids is that of hw ids; only the lengths differ. */
int dm_iss_hwid_ok(const char *s)
{
	return dmpeer_id_ok(s) && strlen(s) >= DM_ISS_HWID_MIN && strlen(s) <= DM_ISS_HWID_MAX;
}

/* As dm-mss checks accounts: the same alphabet without ':'. */
int dm_iss_account_ok(const char *s)
{
	return dmpeer_id_ok(s) && strchr(s, ':') == NULL && strlen(s) <= DM_ISS_ACCOUNT_MAX;
}

const char *dm_iss_dm_status(int cert_revoked, int64_t not_after, int64_t now, int mss_revoked)
{
	/* Revoked wins over expired: it is final, an expired device may enrol again. */
	if (cert_revoked || mss_revoked)
		return "revoked";
	return not_after < now ? "expired" : "active";
}
