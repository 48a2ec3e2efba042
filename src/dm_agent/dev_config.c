/* dev_config: the device config file (docs/integrator-guide.md), decoded strictly. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opendm/cdcsimg.h"
#include "opendm/file.h"
#include "opendm/schema.h"

#include "dev.h"

#define DEV_RETRY_DEFAULT 60

static const struct schema_field dev_tls_fields[] = {
    {"cert", SCHEMA_STRING, offsetof(struct tls_conf, cert), 1, 1, PATH_MAX - 1, 0, NULL},
    {"key", SCHEMA_STRING, offsetof(struct tls_conf, key), 1, 1, PATH_MAX - 1, 0, NULL},
    {"ca", SCHEMA_STRING, offsetof(struct tls_conf, ca), 1, 1, PATH_MAX - 1, 0, NULL},
    SCHEMA_END,
};

static const struct schema_field dev_cpe_fields[] = {
    {"pairing_url", SCHEMA_STRING, offsetof(struct dev_cpe, pairing_url), 1, 9, 1024, 0, NULL},
    {"ca", SCHEMA_STRING, offsetof(struct dev_cpe, ca), 1, 1, PATH_MAX - 1, 0, NULL},
    SCHEMA_END,
};

static const struct schema_field dev_fields[] = {
    {"hw_id", SCHEMA_STRING, offsetof(struct dev_config, hw_id), 1, 4, 64, 0, NULL},
    {"state_dir", SCHEMA_STRING, offsetof(struct dev_config, state_dir), 1, 1, 3000, 0, NULL},
    {"capability", SCHEMA_OBJECT, offsetof(struct dev_config, capability), 1, 0, 0, 0,
     capability_fields},
    {"tls", SCHEMA_OBJECT, offsetof(struct dev_config, tls), 1, 0, 0, 0, dev_tls_fields},
    {"dm_mss_url", SCHEMA_STRING, offsetof(struct dev_config, dm_mss_url), 1, 9, 1024, 0, NULL},
    {"agent_pubkey", SCHEMA_STRING, offsetof(struct dev_config, agent_pubkey), 1, 1, PATH_MAX - 1,
     0, NULL},
    {"bundle_pubkey", SCHEMA_STRING, offsetof(struct dev_config, bundle_pubkey), 1, 1, PATH_MAX - 1,
     0, NULL},
    {"log_level", SCHEMA_STRING, offsetof(struct dev_config, log_level_name), 0, 1, 8, 0, NULL},
    {"proxy", SCHEMA_STRING, offsetof(struct dev_config, proxy), 0, 9, 1024, 0, NULL},
    {"retry_max_s", SCHEMA_INT, offsetof(struct dev_config, retry_max_s), 0, 0, 86400, 0, NULL},
    {"operator_pubkey", SCHEMA_STRING, offsetof(struct dev_config, operator_pubkey), 0, 1,
     PATH_MAX - 1, 0, NULL},
    {"vendor_keys", SCHEMA_JSON, offsetof(struct dev_config, vendor_keys), 0, 0, 0, 0, NULL},
    {"cdcs_interval_s", SCHEMA_INT, offsetof(struct dev_config, cdcs_interval_s), 0, 0, 30 * 86400,
     0, NULL},
    {"cdcs_timeout_s", SCHEMA_INT, offsetof(struct dev_config, cdcs_timeout_s), 0, 1, 600, 0, NULL},
    {"cpe", SCHEMA_OBJECT, offsetof(struct dev_config, cpe), 0, 0, 0, 0, dev_cpe_fields},
    SCHEMA_END,
};

static int dev_hw_id_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._:-", *s) != NULL))
			return 0;
	return 1;
}

int dev_url_ok(const char *s)
{
	if (strncmp(s, "https://", 8) != 0 || s[8] == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/* Base URLs: package_url and endpoint paths are appended with their own leading '/'. */
static void dev_url_trim(char *url)
{
	size_t n = strlen(url);

	while (n > 9 && url[n - 1] == '/')
		url[--n] = '\0';
}

/*
 * vendor_keys has the form cdcs-mss takes: an object vendor id -> public key path. The keys
 * themselves are loaded by the agent (cdcsimg_keyring_load); the shape is checked here so a
 * typo is reported when the config is read, by dm-app as well.
 */
static int dev_vendor_keys_check(const json_t *vk, char *err, size_t errlen)
{
	const char *vendor;
	json_t *v;

	if (vk == NULL)
		return 0;
	if (!json_is_object(vk) || json_object_size(vk) == 0 ||
	    json_object_size(vk) > CDCSIMG_MAX_VENDORS) {
		snprintf(err, errlen, "must be an object of 1..%d vendor -> key path",
		         CDCSIMG_MAX_VENDORS);
		return -1;
	}
	json_object_foreach((json_t *)vk, vendor, v)
	{
		if (!cdcsimg_valid_id(vendor)) {
			snprintf(err, errlen, "'%.64s' is not a valid vendor id", vendor);
			return -1;
		}
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) >= PATH_MAX) {
			snprintf(err, errlen, "'%s': must be a key file path", vendor);
			return -1;
		}
	}
	return 0;
}

int dev_config_load(const char *path, struct dev_config *cfg, char *err, size_t errlen)
{
	json_t *root = NULL;
	json_error_t jerr;
	char *text = NULL, e[512];
	size_t len;

	memset(cfg, 0, sizeof(*cfg));
	cfg->retry_max_s = DEV_RETRY_DEFAULT;
	cfg->cdcs_interval_s = DEV_CDCS_INTERVAL_PSS;
	cfg->cdcs_timeout_s = DEV_CDCS_TIMEOUT_S;
	cfg->log_level = LOG_LVL_INFO;
	if (realpath(path, cfg->path) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if ((text = file_read(path, DEV_MAX_CONFIG, &len, err, errlen)) == NULL)
		goto fail;
	if ((root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		snprintf(err, errlen, "%s: line %d: %s", path, jerr.line, jerr.text);
		goto fail;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "%s: not a JSON object", path);
		goto fail;
	}
	if (schema_decode(root, dev_fields, cfg, path, err, errlen) == -1)
		goto fail;
	if (!dev_hw_id_ok(cfg->hw_id)) {
		snprintf(err, errlen, "%s: key 'hw_id': only A-Z a-z 0-9 . _ : - allowed", path);
		goto fail;
	}
	if (cfg->state_dir[0] != '/') {
		snprintf(err, errlen, "%s: key 'state_dir': must be an absolute path", path);
		goto fail;
	}
	if (capability_check(&cfg->capability, "capability", e, sizeof(e)) == -1) {
		snprintf(err, errlen, "%s: %s", path, e);
		goto fail;
	}
	dev_url_trim(cfg->dm_mss_url);
	if (!dev_url_ok(cfg->dm_mss_url)) {
		snprintf(err, errlen, "%s: key 'dm_mss_url': must be an https:// URL", path);
		goto fail;
	}
	if (cfg->cpe.pairing_url != NULL)
		dev_url_trim(cfg->cpe.pairing_url);
	if (cfg->cpe.pairing_url != NULL && !dev_url_ok(cfg->cpe.pairing_url)) {
		snprintf(err, errlen, "%s: key 'cpe.pairing_url': must be an https:// URL", path);
		goto fail;
	}
	if (cfg->proxy != NULL && !dev_url_ok(cfg->proxy)) {
		snprintf(err, errlen, "%s: key 'proxy': must be an https:// URL", path);
		goto fail;
	}
	if (cfg->log_level_name != NULL && log_level_parse(cfg->log_level_name, &cfg->log_level)) {
		snprintf(err, errlen, "%s: key 'log_level': err, warn, info or debug", path);
		goto fail;
	}
	if (dev_vendor_keys_check(cfg->vendor_keys, e, sizeof(e)) == -1) {
		snprintf(err, errlen, "%s: key 'vendor_keys': %s", path, e);
		goto fail;
	}
	if (file_check_private(cfg->tls.key, e, sizeof(e)) == -1) {
		snprintf(err, errlen, "%s: key 'tls.key': %s", path, e);
		goto fail;
	}
	free(text);
	json_decref(root);
	return 0;
fail:
	free(text);
	json_decref(root);
	dev_config_free(cfg);
	return -1;
}

void dev_config_free(struct dev_config *cfg)
{
	/* capability strings are decoded by the sub-table too; schema_free releases them. */
	schema_free(dev_fields, cfg);
	memset(cfg, 0, sizeof(*cfg));
}

int dev_path(char *buf, size_t len, const struct dev_config *cfg, const char *rel)
{
	int n = snprintf(buf, len, "%s/%s", cfg->state_dir, rel);

	return n > 0 && (size_t)n < len ? 0 : -1;
}

int dev_dirs(const struct dev_config *cfg, char *err, size_t errlen)
{
	static const char *const sub[] = {"",    "agent", "agent/.download", "identity",
	                                  "log", "cdcs",  "cdcs/.download",  "link"};
	char p[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		if (dev_path(p, sizeof(p), cfg, sub[i]) == -1) {
			snprintf(err, errlen, "state_dir too long");
			return -1;
		}
		if (mkdir(p, 0700) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", p, strerror(errno));
			return -1;
		}
	}
	return 0;
}
