/* cdcs-iss check: what the endpoints share (cdcs_iss.h). */
#include <string.h>

#include "opendm/audit.h"
#include "cdcs_iss.h"

int cdcs_iss_hex_ok(const char *s, size_t len)
{
	size_t i;

	if (strlen(s) != len)
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int cdcs_iss_audit(struct daemon_ctx *d, struct httpd_req *req, const char *action,
                   const char *dm_id, const char *vendor, const char *name, int64_t version_number,
                   const char *perso_id)
{
	json_t *detail;
	int rc;

	if ((detail =
	         json_pack("{s:s, s:s, s:I, s:s}", "vendor", vendor, "name", name, "version_number",
	                   (json_int_t)version_number, "perso_id", perso_id)) == NULL)
		return -1;
	rc = audit_req(d, req, action, dm_id, detail);
	json_decref(detail);
	return rc;
}
