/* config: the JSON configuration file shared by every daemon, plus the role's own section. */
#include <sys/stat.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "opendm/config.h"
#include "opendm/file.h"
#include "opendm/log.h"
#include "opendm/schema.h"

#define CFG_PATH_MAX 4096

static const struct schema_field cfg_listen_fields[] = {
    {"address", SCHEMA_STRING, offsetof(struct cfg_listen, address), 1, 1, 64, 0, NULL},
    {"port", SCHEMA_INT, offsetof(struct cfg_listen, port), 1, 1, 65535, 0, NULL},
    SCHEMA_END,
};

static const struct schema_field cfg_tls_fields[] = {
    {"cert", SCHEMA_STRING, offsetof(struct tls_conf, cert), 1, 1, CFG_PATH_MAX, 0, NULL},
    {"key", SCHEMA_STRING, offsetof(struct tls_conf, key), 1, 1, CFG_PATH_MAX, 0, NULL},
    {"ca", SCHEMA_STRING, offsetof(struct tls_conf, ca), 1, 1, CFG_PATH_MAX, 0, NULL},
    {"crl", SCHEMA_STRING, offsetof(struct tls_conf, crl), 0, 1, CFG_PATH_MAX, 0, NULL},
    SCHEMA_END,
};

static const struct schema_field cfg_limits_fields[] = {
    {"max_body_bytes", SCHEMA_INT, offsetof(struct cfg_limits, max_body_bytes), 0, 1024,
     1024 * 1024 * 1024, 0, NULL},
    {"max_header_bytes", SCHEMA_INT, offsetof(struct cfg_limits, max_header_bytes), 0, 1024, 65536,
     0, NULL},
    {"max_connections", SCHEMA_INT, offsetof(struct cfg_limits, max_connections), 0, 1, 100000, 0,
     NULL},
    {"idle_timeout_s", SCHEMA_INT, offsetof(struct cfg_limits, idle_timeout_s), 0, 1, 3600, 0,
     NULL},
    {"shutdown_grace_s", SCHEMA_INT, offsetof(struct cfg_limits, shutdown_grace_s), 0, 0, 600, 0,
     NULL},
    SCHEMA_END,
};

static const struct schema_field cfg_fields[] = {
    {"listen", SCHEMA_OBJECT, offsetof(struct cfg_daemon, listen), 1, 0, 0, 0, cfg_listen_fields},
    {"database", SCHEMA_STRING, offsetof(struct cfg_daemon, database), 1, 1, CFG_PATH_MAX, 0, NULL},
    {"tls", SCHEMA_OBJECT, offsetof(struct cfg_daemon, tls), 1, 0, 0, 0, cfg_tls_fields},
    {"log_level", SCHEMA_STRING, offsetof(struct cfg_daemon, log_level_name), 0, 1, 16, 0, NULL},
    {"limits", SCHEMA_OBJECT, offsetof(struct cfg_daemon, limits), 0, 0, 0, 0, cfg_limits_fields},
    SCHEMA_END,
};

/* A certificate, CA or CRL file must be there and readable now, not at the first handshake. */
static int check_readable(const char *cfgpath, const char *key, const char *path, char *err,
                          size_t errlen)
{
	char why[512];

	if (file_check_readable(path, why, sizeof(why)) == 0)
		return 0;
	log_seterr(err, errlen, __func__, "%s: key '%s': %s", cfgpath, key, why);
	return -1;
}

static int cfg_validate(const char *path, struct cfg_daemon *c, char *err, size_t errlen)
{
	unsigned char addr[sizeof(struct in6_addr)];
	char kerr[512];

	if (log_level_parse(c->log_level_name, &c->log_level) == -1) {
		log_seterr(err, errlen, __func__,
		           "%s: key 'log_level': '%s' is not one of err, warn, info, debug", path,
		           c->log_level_name);
		return -1;
	}
	if (inet_pton(AF_INET, c->listen.address, addr) != 1 &&
	    inet_pton(AF_INET6, c->listen.address, addr) != 1) {
		log_seterr(err, errlen, __func__,
		           "%s: key 'listen.address': '%s' is not a numeric IPv4 or IPv6 address",
		           path, c->listen.address);
		return -1;
	}
	if (check_readable(path, "tls.cert", c->tls.cert, err, errlen) == -1 ||
	    check_readable(path, "tls.ca", c->tls.ca, err, errlen) == -1)
		return -1;
	if (c->tls.crl != NULL && check_readable(path, "tls.crl", c->tls.crl, err, errlen) == -1)
		return -1;
	if (file_check_private(c->tls.key, kerr, sizeof(kerr)) == -1) {
		log_seterr(err, errlen, __func__, "%s: key 'tls.key': %s", path, kerr);
		return -1;
	}
	return 0;
}

int cfg_load(const char *path, const struct cfg_role_section *role, struct cfg_daemon *out,
             char *err, size_t errlen)
{
	const struct schema_field role_wrap[] = {
	    {role != NULL ? role->key : NULL, SCHEMA_OBJECT, 0, role != NULL ? role->required : 0,
	     0, 0, 0, role != NULL ? role->fields : NULL},
	    SCHEMA_END,
	};
	json_t *root = NULL, *rest = NULL, *wrap = NULL, *sec;
	json_error_t jerr;
	char *text = NULL;
	size_t len;

	memset(out, 0, sizeof(*out));
	out->limits.max_body_bytes = 1024 * 1024;
	out->limits.max_header_bytes = 8192;
	out->limits.max_connections = 1024;
	out->limits.idle_timeout_s = 60;
	out->limits.shutdown_grace_s = 10;
	out->log_level = LOG_LVL_INFO;

	if ((text = file_read(path, CFG_MAX_FILE, &len, err, errlen)) == NULL)
		goto fail;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		log_seterr(err, errlen, __func__, "%s: line %d column %d: %s", path, jerr.line,
		           jerr.column, jerr.text);
		goto fail;
	}
	if (!json_is_object(root)) {
		log_seterr(err, errlen, __func__, "%s: expected a JSON object at the top level",
		           path);
		goto fail;
	}
	/*
	 * The role's section lives in its own allocation, so it is decoded on its own; a
	 * one-key wrapper keeps its messages naming the full path ("dm_mss.x").
	 */
	if ((rest = json_copy(root)) == NULL || (wrap = json_object()) == NULL) {
		log_seterr(err, errlen, __func__, "%s: out of memory", path);
		goto fail;
	}
	sec = NULL;
	if (role != NULL && role->key != NULL) {
		sec = json_object_get(root, role->key);
		json_object_del(rest, role->key);
	}
	if (schema_decode(rest, cfg_fields, out, path, err, errlen) == -1)
		goto fail;
	if (role != NULL && role->key != NULL) {
		if ((out->role = calloc(1, role->size > 0 ? role->size : 1)) == NULL) {
			log_seterr(err, errlen, __func__, "%s: out of memory", path);
			goto fail;
		}
		if (sec != NULL && json_object_set(wrap, role->key, sec) == -1) {
			log_seterr(err, errlen, __func__, "%s: out of memory", path);
			goto fail;
		}
		if (schema_decode(wrap, role_wrap, out->role, path, err, errlen) == -1)
			goto fail;
	}
	if (out->log_level_name == NULL && (out->log_level_name = strdup("info")) == NULL) {
		log_seterr(err, errlen, __func__, "%s: out of memory", path);
		goto fail;
	}
	if (cfg_validate(path, out, err, errlen) == -1)
		goto fail;
	json_decref(wrap);
	json_decref(rest);
	json_decref(root);
	free(text);
	return 0;
fail:
	json_decref(wrap);
	json_decref(rest);
	json_decref(root);
	free(text);
	cfg_free(role, out);
	return -1;
}

void cfg_free(const struct cfg_role_section *role, struct cfg_daemon *cfg)
{
	if (cfg == NULL)
		return;
	schema_free(cfg_fields, cfg);
	if (cfg->role != NULL) {
		if (role != NULL && role->fields != NULL)
			schema_free(role->fields, cfg->role);
		free(cfg->role);
		cfg->role = NULL;
	}
}

char *cfg_https_url(const char *section, const char *key, const char *url, char *err, size_t errlen)
{
	size_t i, len = strlen(url);
	char *copy;

	/* Peers are told to go there with their certificate: only https will do, and nothing
	 * a path could be glued onto badly. */
	if (strncmp(url, "https://", 8) != 0 || len <= 8 || url[8] == '/') {
		snprintf(err, errlen, "key '%s.%s': must be an https:// URL", section, key);
		return NULL;
	}
	for (i = 0; i < len; i++) {
		if (url[i] <= ' ' || url[i] >= 0x7f || url[i] == '?' || url[i] == '#' ||
		    url[i] == '"' || url[i] == '\\') {
			snprintf(err, errlen, "key '%s.%s': invalid character in URL", section,
			         key);
			return NULL;
		}
	}
	if ((copy = strdup(url)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	while (len > 8 && copy[len - 1] == '/')
		copy[--len] = '\0';
	return copy;
}
