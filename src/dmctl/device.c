/*
 * dmctl device: the devices of the head-end as every daemon knows them. dm-mss has the
 * device record (by hardware id), dm-iss the DM ids issued to it, cdcs-pss the CDCSs of each
 * DM id, and every daemon's audit log a part of its history; show brings them together.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmctl.h"

static const char dmctl_device_usage[] =
    "usage: dmctl [-c config] [--json] device list [--account ACCOUNT] [--status S]\n"
    "       dmctl [-c config] [--json] device show ID\n"
    "       dmctl [-c config] [--json] device history ID\n"
    "       dmctl [-c config] [--json] device revoke ID\n"
    "\n"
    "ID is a hardware id (4-64 of A-Z a-z 0-9 . _ : -) or a DM id (dm- and 24 hex digits),\n"
    "which dm-iss resolves to its hardware id. list shows the devices dm-mss recorded\n"
    "(of one account, or with status active or revoked). show prints the device record,\n"
    "its DM ids (dm-iss), the CDCSs of each (cdcs-pss) and its history: the audit rows of\n"
    "every head-end daemon about the hardware id and its DM ids, merged by time, as\n"
    "TIME ROLE ACTOR ACTION SUBJECT DETAIL; history prints only the history. revoke\n"
    "refuses the device any further download or personalization (role subscribers).\n";

static const struct dmctl_col dmctl_device_cols[] = {
    {"HW_ID", "hw_id", 0},
    {"ACCOUNT", "account", 0},
    {"PLATFORM", "platform", 0},
    {"STATUS", "status", 0},
    {"CREATED", "created_at", DMCTL_COL_TIME},
    {NULL, NULL, 0},
};

static const struct dmctl_col dmctl_device_fields[] = {
    {"hw_id", "hw_id", 0},
    {"account", "account", 0},
    {"platform", "platform", 0},
    {"status", "status", 0},
    {"created", "created_at", DMCTL_COL_TIME},
    {"capability", "capability", 0},
    {NULL, NULL, 0},
};

static const struct dmctl_col dmctl_dm_cols[] = {
    {"DM_ID", "dm_id", 0},
    {"STATUS", "status", 0},
    {"ISSUED", "issued_at", DMCTL_COL_TIME},
    {"EXPIRES", "expires_at", DMCTL_COL_TIME},
    {NULL, NULL, 0},
};

static const struct dmctl_col dmctl_device_cdcs_cols[] = {
    {"DM_ID", "dm_id", 0},     {"CDCS", "vendor/name", 0},
    {"VARIANT", "variant", 0}, {"VERSION", "version_number", DMCTL_COL_RIGHT},
    {"STATE", "state", 0},     {"ERROR", "error", 0},
    {NULL, NULL, 0},
};

/* The device as show and history need it. */
struct dmctl_device {
	char hw_id[65];
	json_t *doc; /* {"device": dm-mss record, "dms", "cdcs", "history"} */
};

/* ID to a hardware id: a DM id is looked up at dm-iss. An exit status. */
static int dmctl_device_resolve(struct dmctl_api *a, const char *id, char hw_id[65])
{
	char path[128];
	json_t *dm = NULL;
	const char *hw;
	int status;

	if (!dmctl_dm_id_ok(id)) {
		snprintf(hw_id, 65, "%s", id);
		return DMCTL_EXIT_OK;
	}
	snprintf(path, sizeof(path), "/v1/admin/dms/%s", id);
	if ((status = dmctl_api_use(a, "dm-iss")) != DMCTL_EXIT_OK ||
	    (status = dmctl_api_call(a, "GET", path, NULL, &dm)) != DMCTL_EXIT_OK)
		return status;
	hw = json_string_value(json_object_get(dm, "hw_id"));
	/* It goes into the next URL: only what a hardware id may be. */
	if (hw == NULL || !dmctl_hw_id_ok(hw)) {
		fprintf(stderr, "dmctl: bad_response: dm-iss gave no usable hw_id for %s\n", id);
		json_decref(dm);
		return DMCTL_EXIT_FAIL;
	}
	snprintf(hw_id, 65, "%s", hw);
	json_decref(dm);
	return DMCTL_EXIT_OK;
}

/* The one ID argument, checked. */
static int dmctl_device_id(int argc, char **argv)
{
	if (argc != 1)
		return dmctl_usage_error(dmctl_device_usage, "exactly one ID is required", NULL);
	if (!dmctl_dm_id_ok(argv[0]) && !dmctl_hw_id_ok(argv[0]))
		return dmctl_usage_error(
		    dmctl_device_usage,
		    "not a hardware id (4-64 of A-Z a-z 0-9 . _ : -) or DM id:", argv[0]);
	return DMCTL_EXIT_OK;
}

/* Each DM id's CDCSs at cdcs-pss, as rows with their dm_id; a DM id cdcs-pss never saw has
 * none. */
static int dmctl_device_cdcs(struct dmctl_api *a, const json_t *dms, json_t *rows)
{
	char path[256];
	json_t *doc, *dm, *c, *row;
	size_t i, j;
	int status;

	if ((status = dmctl_api_use(a, "cdcs-pss")) != DMCTL_EXIT_OK)
		return status;
	json_array_foreach(dms, i, dm)
	{
		const char *dm_id = json_string_value(json_object_get(dm, "dm_id"));

		if (dm_id == NULL || !dmctl_valid_id(dm_id, 1, 128, "._:-"))
			continue;
		snprintf(path, sizeof(path), "/v1/admin/devices/%s", dm_id);
		status = dmctl_api_get_opt(a, path, &doc);
		if (status == DMCTL_EXIT_NOTFOUND)
			continue;
		if (status != DMCTL_EXIT_OK)
			return status;
		json_array_foreach(json_object_get(doc, "cdcs"), j, c)
		{
			if ((row = json_deep_copy(c)) == NULL ||
			    json_object_set_new(row, "dm_id", json_string(dm_id)) == -1 ||
			    json_array_append_new(rows, row) == -1) {
				json_decref(doc);
				return DMCTL_EXIT_FAIL;
			}
		}
		json_decref(doc);
	}
	return DMCTL_EXIT_OK;
}

/*
 * Everything about the device ID: record (dm-mss), DM ids (dm-iss), with_cdcs: their CDCSs
 * (cdcs-pss), and the history from every configured head-end daemon. An exit status; on a failure
 * after the record, dev->doc holds what came.
 */
static int dmctl_device_load(struct dmctl_api *a, const char *id, int with_cdcs,
                             struct dmctl_device *dev)
{
	char path[256];
	json_t *dms = NULL, *subjects = NULL, *v, *rows = NULL, *history;
	size_t i;
	int status, st;

	memset(dev, 0, sizeof(*dev));
	/* Every daemon asked must be configured: found before anything is sent. */
	if ((with_cdcs && (status = dmctl_api_use(a, "cdcs-pss")) != DMCTL_EXIT_OK) ||
	    (status = dmctl_api_use(a, "dm-iss")) != DMCTL_EXIT_OK ||
	    (status = dmctl_api_use(a, "dm-mss")) != DMCTL_EXIT_OK)
		return status;
	if ((status = dmctl_device_resolve(a, id, dev->hw_id)) != DMCTL_EXIT_OK)
		return status;
	snprintf(path, sizeof(path), "/v1/admin/devices/%s", dev->hw_id);
	if ((status = dmctl_api_use(a, "dm-mss")) != DMCTL_EXIT_OK ||
	    (status = dmctl_api_call(a, "GET", path, NULL, &v)) != DMCTL_EXIT_OK)
		return status;
	if ((dev->doc = json_pack("{s:o}", "device", v)) == NULL)
		return DMCTL_EXIT_FAIL;
	snprintf(path, sizeof(path), "/v1/admin/dms");
	if (dmctl_query_add(path, sizeof(path), "hw_id", dev->hw_id) == -1)
		return DMCTL_EXIT_USAGE;
	if ((status = dmctl_api_use(a, "dm-iss")) != DMCTL_EXIT_OK ||
	    (status = dmctl_api_call(a, "GET", path, NULL, &v)) != DMCTL_EXIT_OK)
		return status;
	dms = json_incref(json_object_get(v, "dms"));
	json_decref(v);
	status = DMCTL_EXIT_FAIL;
	if (!json_is_array(dms) || json_object_set(dev->doc, "dms", dms) == -1 ||
	    (subjects = json_pack("[s]", dev->hw_id)) == NULL || (rows = json_array()) == NULL)
		goto out;
	json_array_foreach(dms, i, v)
	{
		if (json_is_string(json_object_get(v, "dm_id")) &&
		    json_array_append(subjects, json_object_get(v, "dm_id")) == -1)
			goto out;
	}
	st = DMCTL_EXIT_OK;
	if (with_cdcs)
		st = dmctl_device_cdcs(a, dms, rows);
	if (json_object_set(dev->doc, "cdcs", rows) == -1)
		goto out;
	history = dmctl_audit_collect(a, NULL, subjects, NULL, 0, 0, &status);
	if (history == NULL || json_object_set_new(dev->doc, "history", history) == -1) {
		status = DMCTL_EXIT_FAIL;
		goto out;
	}
	if (status == DMCTL_EXIT_OK)
		status = st;
out:
	json_decref(rows);
	json_decref(subjects);
	json_decref(dms);
	return status;
}

static int dmctl_device_show_print(const json_t *doc)
{
	if (dmctl_fields(dmctl_device_fields, json_object_get(doc, "device")) == -1)
		return -1;
	printf("\nDM IDS\n");
	if (dmctl_table(dmctl_dm_cols, json_object_get(doc, "dms")) == -1)
		return -1;
	printf("\nCDCS\n");
	if (dmctl_table(dmctl_device_cdcs_cols, json_object_get(doc, "cdcs")) == -1)
		return -1;
	printf("\nHISTORY\n");
	return dmctl_audit_print(json_object_get(doc, "history"));
}

static int dmctl_device_history_print(const json_t *doc)
{
	return dmctl_audit_print(json_object_get(doc, "history"));
}

/* show and history: one ID, everything loaded, the part wanted printed. */
static int dmctl_device_show(const struct dmctl_opts *opts, int history, int argc, char **argv)
{
	struct dmctl_device dev;
	struct dmctl_api a;
	json_t *out = NULL;
	int status, st;

	if ((status = dmctl_device_id(argc, argv)) != DMCTL_EXIT_OK)
		return status;
	if ((status = dmctl_api_open(&a, opts, NULL, 0)) != DMCTL_EXIT_OK)
		return status;
	status = dmctl_device_load(&a, argv[0], !history, &dev);
	dmctl_api_close(&a);
	if (dev.doc == NULL)
		return status;
	/* What came is shown even when a daemon failed; the exit status still says so. */
	if (history)
		out = json_pack("{s:s, s:O, s:O}", "hw_id", dev.hw_id, "dms",
		                json_object_get(dev.doc, "dms"), "history",
		                json_object_get(dev.doc, "history"));
	else
		out = json_incref(dev.doc);
	json_decref(dev.doc);
	if (out == NULL || json_object_get(out, "history") == NULL) {
		json_decref(out);
		return status != DMCTL_EXIT_OK ? status : DMCTL_EXIT_FAIL;
	}
	st = dmctl_done(opts, DMCTL_EXIT_OK, out,
	                history ? dmctl_device_history_print : dmctl_device_show_print);
	return status != DMCTL_EXIT_OK ? status : st;
}

static int dmctl_device_revoke_print(const json_t *doc)
{
	printf("device %s: %s\n", dmctl_str(doc, "hw_id"), dmctl_str(doc, "status"));
	return 0;
}

static int dmctl_device_revoke(const struct dmctl_opts *opts, int argc, char **argv)
{
	struct dmctl_api a;
	char hw_id[65];
	json_t *body = NULL, *out = NULL;
	int status;

	if ((status = dmctl_device_id(argc, argv)) != DMCTL_EXIT_OK)
		return status;
	if ((status = dmctl_api_open(&a, opts, "dm-mss", 0)) != DMCTL_EXIT_OK)
		return status;
	if ((status = dmctl_device_resolve(&a, argv[0], hw_id)) == DMCTL_EXIT_OK &&
	    (status = dmctl_api_use(&a, "dm-mss")) == DMCTL_EXIT_OK) {
		if ((body = json_pack("{s:s}", "hw_id", hw_id)) == NULL)
			status = DMCTL_EXIT_FAIL;
		else
			status = dmctl_api_call(&a, "POST", "/v1/admin/devices/revoke", body, &out);
	}
	json_decref(body);
	dmctl_api_close(&a);
	return dmctl_done(opts, status, out, dmctl_device_revoke_print);
}

static int dmctl_device_list_print(const json_t *doc)
{
	return dmctl_table(dmctl_device_cols, json_object_get(doc, "devices"));
}

static int dmctl_device_list(const struct dmctl_opts *opts, int argc, char **argv)
{
	char path[256] = "/v1/admin/devices";
	const char *account = NULL, *st = NULL, *v;
	json_t *out = NULL;
	int i, status;

	for (i = 0; i < argc; i++) {
		if (dmctl_opt_value(argc, argv, &i, dmctl_device_usage, &v) == -1)
			return DMCTL_EXIT_USAGE;
		if (strcmp(argv[i - 1], "--account") == 0 && dmctl_account_ok(v))
			account = v;
		else if (strcmp(argv[i - 1], "--status") == 0 &&
		         (strcmp(v, "active") == 0 || strcmp(v, "revoked") == 0))
			st = v;
		else
			return dmctl_usage_error(
			    dmctl_device_usage, "--account ACCOUNT or --status active|revoked, not",
			    argv[i - 1]);
	}
	if (dmctl_query_add(path, sizeof(path), "account", account) == -1 ||
	    dmctl_query_add(path, sizeof(path), "status", st) == -1)
		return dmctl_usage_error(dmctl_device_usage, "query too long", NULL);
	status = dmctl_api_once(opts, "GET", path, NULL, &out);
	return dmctl_done(opts, status, out, dmctl_device_list_print);
}

int dmctl_device_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	if (dmctl_want_help(argc, argv, dmctl_device_usage))
		return DMCTL_EXIT_OK;
	if (argc < 1)
		return dmctl_usage_error(dmctl_device_usage, "device: missing action", NULL);
	if (strcmp(argv[0], "list") == 0)
		return dmctl_device_list(opts, argc - 1, argv + 1);
	if (strcmp(argv[0], "show") == 0)
		return dmctl_device_show(opts, 0, argc - 1, argv + 1);
	if (strcmp(argv[0], "history") == 0)
		return dmctl_device_show(opts, 1, argc - 1, argv + 1);
	if (strcmp(argv[0], "revoke") == 0)
		return dmctl_device_revoke(opts, argc - 1, argv + 1);
	return dmctl_usage_error(dmctl_device_usage, "device: unknown action", argv[0]);
}
