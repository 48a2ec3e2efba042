/*
 * opendm/cdcs.h: the CA/DRM client software (CDCS) plug-in ABI, version 1.
 *
 * A CDCS is a shared object exporting one symbol, ODM_CDCS_ENTRY, of type odm_cdcs_entry_fn.
 * The DM agent never loads it into itself: each CDCS runs in a child process of its own (the
 * CDCS host, a fresh exec of the agent binary holding none of the agent's keys), so a crash or
 * a hang in vendor code costs that child only. Calls are synchronous and single-threaded.
 *
 * Memory: every buffer a CDCS returns through an out-parameter is malloc()ed by the CDCS and
 * free()d by the host; every buffer the host passes in is borrowed for the call.
 * Return values: 0 success, -1 failure (the CDCS should say why through host->log first).
 * See docs/cdcs-abi.md for the life cycle and the sample CDCSs in src/cdcs/.
 */
#ifndef OPENDM_CDCS_H
#define OPENDM_CDCS_H

#include <stddef.h>
#include <stdint.h>

#define ODM_CDCS_ABI_VERSION 1
#define ODM_CDCS_ENTRY       "odm_cdcs_entry"

/* Log levels for host->log (the agent's levels). */
enum odm_cdcs_log {
	ODM_CDCS_LOG_ERR = 0,
	ODM_CDCS_LOG_WARN,
	ODM_CDCS_LOG_INFO,
	ODM_CDCS_LOG_DEBUG
};

/* What the host offers a CDCS. */
struct odm_cdcs_host {
	uint32_t abi_version; /* ODM_CDCS_ABI_VERSION of the host */
	void *arg;            /* pass back as the first argument of every host function */
	/* One log line (no newline needed); written to the agent's log under the CDCS's name. */
	void (*log)(void *arg, enum odm_cdcs_log level, const char *msg);
	/*
	 * Sealed storage private to this CDCS version on this device (names: 1-64 characters of
	 * A-Z a-z 0-9 . _ -). put replaces atomically (all or nothing); get returns a malloc'd
	 * copy, or -1 if there is no such item.
	 */
	int (*store_put)(void *arg, const char *name, const void *data, size_t len);
	int (*store_get)(void *arg, const char *name, void **data, size_t *len);
};

/* What a CDCS offers the host. */
struct odm_cdcs_ops {
	uint32_t abi_version; /* ODM_CDCS_ABI_VERSION the CDCS was built against */
	const char *vendor;   /* must equal the manifest's vendor, e.g. "vendor-a" */
	const char *name;     /* must equal the manifest's name, e.g. "sample-ca" */
	const char *kind;     /* "ca" or "drm" */

	/* Load state from sealed storage; *ctx is the CDCS's own context for the calls below. */
	int (*init)(const struct odm_cdcs_host *host, void **ctx);
	/*
	 * Figure 5 step 15: generate the CDCS key pair (kept in sealed storage) and build the
	 * personalization request for the CDCS_ISS as a JSON object text, including ticket (the
	 * personalization ticket, passed through unchanged). The agent forwards it as it is.
	 */
	int (*perso_request)(void *ctx, const char *ticket, char **request_json);
	/*
	 * Figure 5 step 19: apply the personalization data (the CDCS_ISS's answer, a JWE only
	 * this CDCS's key opens). On success *confirmation is the proof the CDCS_ISS asked for,
	 * which the agent sends back without being able to make it itself.
	 */
	int (*perso_apply)(void *ctx, const char *data, char **confirmation);
	/* Decrypt / descramble protected content; -1 when this CDCS may not (not entitled). */
	int (*decrypt)(void *ctx, const void *in, size_t inlen, void **out, size_t *outlen);
	/* A JSON object text describing the CDCS's state (no secrets): personalized, rights... */
	int (*status)(void *ctx, char **status_json);
	void (*fini)(void *ctx);
};

/*
 * The entry point. host_abi is the host's ODM_CDCS_ABI_VERSION; return NULL when the CDCS
 * cannot work with that host. The table must stay valid until the library is unloaded.
 */
typedef const struct odm_cdcs_ops *(*odm_cdcs_entry_fn)(uint32_t host_abi);

#endif
