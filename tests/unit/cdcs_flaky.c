/*
 * cdcs_flaky: for the end-to-end tests, never shipped. The sample CA as vendor-b/sample-ca
 * (sample_ca_b.c), except that its personalization fails on the devices whose DM id is a line
 * of the file named by ODM_TEST_CDCS_FAIL_FILE (while that file exists): the replacement
 * client that does not work on some devices of a vendor switch.
 *
 * The DM id is only known once the personalization data is open, so the real apply runs
 * first; its sealed state is in the version being installed, which the agent deletes when
 * the apply fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../src/cdcs/sample_common.h"

#define FLAKY_MAX_LINE 256

const struct odm_cdcs_ops *odm_cdcs_entry(uint32_t host_abi) __attribute__((visibility("default")));

/* The host of the running CDCS, for the log line that becomes the agent's error message. */
static const struct odm_cdcs_host *flaky_host;

static int flaky_init(const struct odm_cdcs_host *host, void **ctx);
static int flaky_perso_apply(void *ctx, const char *data, char **confirmation);

static const struct odm_cdcs_ops flaky_ops = {
    .abi_version = ODM_CDCS_ABI_VERSION,
    .vendor = "vendor-b",
    .name = "sample-ca",
    .kind = "ca",
    .init = flaky_init,
    .perso_request = sample_perso_request,
    .perso_apply = flaky_perso_apply,
    .decrypt = sample_decrypt,
    .status = sample_status,
    .fini = sample_fini,
};

static int flaky_init(const struct odm_cdcs_host *host, void **ctx)
{
	flaky_host = host;
	return sample_init(host, &flaky_ops, ctx);
}

/* 1 if dm_id is a whole line of the file at path. */
static int flaky_listed(const char *path, const char *dm_id)
{
	char line[FLAKY_MAX_LINE];
	FILE *f;
	int hit = 0;

	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (!hit && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		hit = strcmp(line, dm_id) == 0;
	}
	fclose(f);
	return hit;
}

/* The DM id the applied personalization data named, from the CDCS's own status. */
static int flaky_dm_id(void *ctx, char *out, size_t len)
{
	char *text = NULL;
	const char *id;
	json_t *st;
	int rc = -1;

	if (sample_status(ctx, &text) == -1)
		return -1;
	st = json_loads(text, 0, NULL);
	if ((id = json_string_value(json_object_get(st, "dm_id"))) != NULL && strlen(id) < len) {
		snprintf(out, len, "%s", id);
		rc = 0;
	}
	json_decref(st);
	free(text);
	return rc;
}

static int flaky_perso_apply(void *ctx, const char *data, char **confirmation)
{
	const char *path = getenv("ODM_TEST_CDCS_FAIL_FILE");
	char dm_id[FLAKY_MAX_LINE], msg[FLAKY_MAX_LINE + 128];

	if (sample_perso_apply(ctx, data, confirmation) == -1)
		return -1;
	if (path == NULL || flaky_dm_id(ctx, dm_id, sizeof(dm_id)) == -1 ||
	    !flaky_listed(path, dm_id))
		return 0;
	free(*confirmation);
	*confirmation = NULL;
	snprintf(msg, sizeof(msg),
	         "test fault: personalization refused on %s (listed in ODM_TEST_CDCS_FAIL_FILE)",
	         dm_id);
	flaky_host->log(flaky_host->arg, ODM_CDCS_LOG_ERR, msg);
	return -1;
}

const struct odm_cdcs_ops *odm_cdcs_entry(uint32_t host_abi)
{
	return host_abi == ODM_CDCS_ABI_VERSION ? &flaky_ops : NULL;
}
