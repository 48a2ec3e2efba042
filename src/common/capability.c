/* capability: decoding and checking a device's hardware capability (see capability.h). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "opendm/capability.h"

const struct schema_field capability_fields[] = {
    {"platform", SCHEMA_STRING, offsetof(struct capability, platform), 1, 1, 32, 0, NULL},
    {"tee", SCHEMA_STRING, offsetof(struct capability, tee), 1, 1, 16, 0, NULL},
    {"secure_video_path", SCHEMA_BOOL, offsetof(struct capability, secure_video_path), 1, 0, 1, 0,
     NULL},
    {"hdcp", SCHEMA_STRING, offsetof(struct capability, hdcp), 1, 1, 8, 0, NULL},
    {"max_resolution", SCHEMA_STRING, offsetof(struct capability, max_resolution), 1, 1, 8, 0,
     NULL},
    SCHEMA_END,
};

static const char *const capability_tees[] = {"none", "software", "trustzone", "sgx", NULL};
static const char *const capability_hdcps[] = {"none", "1.4", "2.2", "2.3", NULL};
static const char *const capability_resolutions[] = {"sd", "hd", "fhd", "uhd", NULL};

static int capability_one_of(const char *v, const char *const *set)
{
	for (; *set != NULL; set++)
		if (strcmp(v, *set) == 0)
			return 1;
	return 0;
}

/* Platform names end up in paths and URLs: a strict alphabet keeps them harmless there. */
static int capability_platform_ok(const char *p)
{
	if (*p == '\0' || *p == '-' || *p == '_')
		return 0;
	for (; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_'))
			return 0;
	return 1;
}

int capability_check(const struct capability *c, const char *prefix, char *err, size_t errlen)
{
	if (!capability_platform_ok(c->platform)) {
		snprintf(err, errlen, "key '%s.platform': only a-z, 0-9, '-' and '_' allowed",
		         prefix);
		return -1;
	}
	if (!capability_one_of(c->tee, capability_tees)) {
		snprintf(err, errlen, "key '%s.tee': must be none, software, trustzone or sgx",
		         prefix);
		return -1;
	}
	if (!capability_one_of(c->hdcp, capability_hdcps)) {
		snprintf(err, errlen, "key '%s.hdcp': must be none, 1.4, 2.2 or 2.3", prefix);
		return -1;
	}
	if (!capability_one_of(c->max_resolution, capability_resolutions)) {
		snprintf(err, errlen, "key '%s.max_resolution': must be sd, hd, fhd or uhd",
		         prefix);
		return -1;
	}
	return 0;
}

json_t *capability_to_json(const struct capability *c)
{
	return json_pack("{s:s, s:s, s:b, s:s, s:s}", "platform", c->platform, "tee", c->tee,
	                 "secure_video_path", c->secure_video_path, "hdcp", c->hdcp,
	                 "max_resolution", c->max_resolution);
}

void capability_free(struct capability *c)
{
	schema_free(capability_fields, c);
}
