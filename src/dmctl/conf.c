/* dmctl conf: the operator's certificate and the URL of each daemon, from one JSON file. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/file.h"
#include "opendm/schema.h"
#include "dmctl.h"

#define DMCTL_CONF_MAX (64 * 1024)
#define DMCTL_URL_MAX  256

static const struct schema_field dmctl_tls_fields[] = {
    {"cert", SCHEMA_STRING, offsetof(struct tls_conf, cert), 1, 1, 4096, 0, NULL},
    {"key", SCHEMA_STRING, offsetof(struct tls_conf, key), 1, 1, 4096, 0, NULL},
    {"ca", SCHEMA_STRING, offsetof(struct tls_conf, ca), 1, 1, 4096, 0, NULL},
    SCHEMA_END,
};

static const struct schema_field dmctl_conf_fields[] = {
    {"tls", SCHEMA_OBJECT, offsetof(struct dmctl_conf, tls), 1, 0, 0, 0, dmctl_tls_fields},
    {"endpoints", SCHEMA_JSON, offsetof(struct dmctl_conf, endpoints), 1, 0, 0, 0, NULL},
    SCHEMA_END,
};

/* Endpoints map role names to https URLs; anything else would be sent our certificate. */
static int dmctl_conf_check_endpoints(const char *path, const json_t *eps)
{
	const char *role;
	json_t *url;
	const char *s;

	if (!json_is_object(eps)) {
		fprintf(stderr, "dmctl: config: %s: key 'endpoints': expected an object\n", path);
		return -1;
	}
	json_object_foreach((json_t *)eps, role, url)
	{
		s = json_string_value(url);
		if (s == NULL || strncmp(s, "https://", 8) != 0 || strlen(s) > DMCTL_URL_MAX) {
			fprintf(stderr,
			        "dmctl: config: %s: key 'endpoints.%s': expected an https:// URL "
			        "of at most "
			        "%d bytes\n",
			        path, role, DMCTL_URL_MAX);
			return -1;
		}
	}
	return 0;
}

int dmctl_conf_load(const char *path, struct dmctl_conf *conf)
{
	char err[1024];
	json_error_t jerr;
	json_t *root = NULL;
	char *text = NULL;
	size_t len;

	memset(conf, 0, sizeof(*conf));
	if ((text = file_read(path, DMCTL_CONF_MAX, &len, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dmctl: config: %s\n", err);
		goto fail;
	}
	if ((root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		fprintf(stderr, "dmctl: config: %s: line %d column %d: %s\n", path, jerr.line,
		        jerr.column, jerr.text);
		goto fail;
	}
	if (schema_decode(root, dmctl_conf_fields, conf, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "dmctl: config: %s\n", err);
		goto fail;
	}
	if (dmctl_conf_check_endpoints(path, conf->endpoints) == -1)
		goto fail;
	json_decref(root);
	free(text);
	return 0;
fail:
	dmctl_conf_free(conf);
	json_decref(root);
	free(text);
	return -1;
}

void dmctl_conf_free(struct dmctl_conf *conf)
{
	schema_free(dmctl_conf_fields, conf);
}
