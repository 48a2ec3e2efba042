/*
 * config: the JSON configuration file of a head-end or CPE daemon.
 *
 * Every daemon shares the same top-level keys (listen, database, tls, log_level, limits);
 * a role adds its own section under a key named after it (e.g. "dm_mss"), described by its
 * own schema table. The file is parsed into a fresh struct; the caller swaps it in only when
 * cfg_load() succeeded, so a bad reload never disturbs a running daemon.
 */
#ifndef OPENDM_CONFIG_H
#define OPENDM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "opendm/log.h"
#include "opendm/schema.h"
#include "opendm/tls.h"

#define CFG_MAX_FILE (256 * 1024)

struct cfg_listen {
	char *address; /* numeric IPv4/IPv6 address */
	int64_t port;  /* 1..65535 */
};

struct cfg_limits {
	int64_t max_body_bytes;   /* request body limit (413 past it) */
	int64_t max_header_bytes; /* request line + headers limit */
	int64_t max_connections;  /* open client connections */
	int64_t idle_timeout_s;   /* keep-alive / read timeout per connection */
	int64_t shutdown_grace_s; /* SIGTERM: how long in-flight requests may finish */
};

struct cfg_daemon {
	struct cfg_listen listen;
	char *database;           /* SQLite file path */
	struct tls_conf tls;      /* server identity and the CA that clients must chain to */
	char *log_level_name;     /* "err", "warn", "info", "debug" */
	enum log_level log_level; /* parsed from log_level_name */
	struct cfg_limits limits;
	void *role; /* the role's section, decoded with the role's schema */
};

/* The role-specific part: its key in the file, its schema and the size of its struct. */
struct cfg_role_section {
	const char *key; /* e.g. "dm_mss"; NULL when the role has none */
	const struct schema_field *fields;
	size_t size;
	int required;
};

/*
 * Parse path into a fresh *out (defaults applied, then validated). On error returns -1 and
 * err holds one line naming the file and the key. The caller owns *out: cfg_free() it.
 */
int cfg_load(const char *path, const struct cfg_role_section *role, struct cfg_daemon *out,
             char *err, size_t errlen);
void cfg_free(const struct cfg_role_section *role, struct cfg_daemon *cfg);
/*
 * A role's https URL setting (section.key) checked and copied without its trailing '/', so
 * that "/v1/..." can be appended. malloc'd, or NULL with "key 'section.key': why" in err.
 */
char *cfg_https_url(const char *section, const char *key, const char *url, char *err,
                    size_t errlen);

#endif
