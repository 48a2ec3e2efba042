/* cdcs-iss check: what the endpoints share (cdcs_iss.h). */
#include <string.h>

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
