/*
 * sample_drm: the sample DRM client of vendor-b ("sample-drm", kind "drm").
 *
 * Its content is a compact JWE encrypted directly ("dir", A256CBC-HS512) with a per-file
 * content key: HKDF-SHA256 of the entitlement key of the content's level, salted with the
 * file's content id (cid). The personalization gives it one key per level it is entitled
 * to. Everything but its name and content system is in sample_common.c, which a vendor may
 * read as the reference for the ABI of include/opendm/cdcs.h.
 */
#include "sample_common.h"

SAMPLE_CDCS(drm, "vendor-b", "sample-drm", "drm")
