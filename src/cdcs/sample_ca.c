/*
 * sample_ca: the sample conditional access client of vendor-a ("sample-ca", kind "ca").
 *
 * Its content is a compact JWE whose content key is wrapped (A256KW) with the entitlement
 * key of the content's level; the personalization gives it one key per level it is entitled
 * to. Everything but its name and content system is in sample_common.c, which a vendor may
 * read as the reference for the ABI of include/opendm/cdcs.h.
 */
#include "sample_common.h"

SAMPLE_CDCS(ca, "vendor-a", "sample-ca", "ca")
