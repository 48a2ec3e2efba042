/*
 * capability: the hardware capability of a secondary device (docs/protocol.md), decoded
 * strictly wherever a device sends it and re-encoded for storage and forwarding.
 */
#ifndef OPENDM_CAPABILITY_H
#define OPENDM_CAPABILITY_H

#include <jansson.h>

#include "opendm/schema.h"

struct capability {
	char *platform; /* linux-x86_64, android-arm64, ... */
	char *tee;      /* none, software, trustzone, sgx */
	int secure_video_path;
	char *hdcp;           /* none, 1.4, 2.2, 2.3 */
	char *max_resolution; /* sd, hd, fhd, uhd */
};

/* For embedding as a SCHEMA_OBJECT member of a request body or config. */
extern const struct schema_field capability_fields[];

/* Check the enumerated values after schema_decode(). 0, or -1 with "key 'x.tee': ..." in err
 * (prefix is the key path of the object, e.g. "capability"). */
int capability_check(const struct capability *c, const char *prefix, char *err, size_t errlen);
/* The capability as a new JSON object, or NULL. */
json_t *capability_to_json(const struct capability *c);
void capability_free(struct capability *c);

#endif
