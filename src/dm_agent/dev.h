/*
 * dev: what dm-app (the Application) and dm-agent share on the device: the device config,
 * the state_dir layout, manifest and offline bundle verification, atomic installation, the
 * stored identity and the control socket protocol (docs/protocol.md, Figure 4).
 */
#ifndef OPENDM_DEV_H
#define OPENDM_DEV_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "opendm/capability.h"
#include "opendm/log.h"
#include "opendm/tls.h"

#define DEV_MAX_CONFIG   (256 * 1024)
#define DEV_MAX_BUNDLE   (256 * 1024 * 1024)
#define DEV_MAX_PACKAGE  (192 * 1024 * 1024)
#define DEV_MAX_CTL_LINE (64 * 1024)
/* An answer line: "play" returns up to 4 MiB of content in base64, plus the JSON around it. */
#define DEV_MAX_CTL_ANSWER    (6 * 1024 * 1024)
#define DEV_MANIFEST_ISS      "opendm-agent-signer"
#define DEV_APP_AUD           "opendm-dm-app"
#define DEV_BUNDLE_ISS        "dm-mss"
#define DEV_BUNDLE_FMT        "opendm-offline-bundle/1"
#define DEV_CDCS_INTERVAL_PSS (-1) /* cdcs_interval_s absent: follow cdcs-pss's interval_s */
#define DEV_CDCS_TIMEOUT_S    20

/* The primary CPE this device pairs with (SD I/F agent, issue 5); absent: no pairing. */
struct dev_cpe {
	char *pairing_url; /* https://host:port of sd-if-agent's pairing API; NULL if no cpe */
	char *ca;          /* the CPE CA certificate: the anchor for the CPE and its relay */
};

struct dev_config {
	char *hw_id;
	char *state_dir;
	struct capability capability;
	struct tls_conf tls;
	char *dm_mss_url;
	char *agent_pubkey;
	char *bundle_pubkey;
	char *log_level_name;
	char *proxy;
	int64_t retry_max_s;
	/* Figure 5 (all optional: a Figure 4-only device has none of them). */
	char *operator_pubkey;   /* path of the operator approval key */
	json_t *vendor_keys;     /* {"vendor-a": "/path/vendor-a-signing.pub", ...} */
	int64_t cdcs_interval_s; /* DEV_CDCS_INTERVAL_PSS: the interval cdcs-pss returns; 0: none */
	int64_t cdcs_timeout_s;  /* per CDCS operation in the child */
	struct dev_cpe cpe;      /* optional "cpe" section */
	enum log_level log_level;
	char path[4096]; /* absolute path of the config file itself */
};

/* Load and check the config at path; -1 with "path: key 'x': reason" in err. */
int dev_config_load(const char *path, struct dev_config *cfg, char *err, size_t errlen);
void dev_config_free(struct dev_config *cfg);
/* 1 if s is an https:// URL without spaces or control characters (it ends up in request
 * lines), else 0. */
int dev_url_ok(const char *s);
/* state_dir + "/" + rel into buf; -1 if it does not fit. */
int dev_path(char *buf, size_t len, const struct dev_config *cfg, const char *rel);
/* Create state_dir and its subdirectories (0700). */
int dev_dirs(const struct dev_config *cfg, char *err, size_t errlen);

/* A verified agent manifest. */
struct dev_manifest {
	char platform[33];
	char version[65];
	int64_t version_number;
	char sha256[65];
	int64_t size;
};

/*
 * Verify a manifest JWS with the pinned agent key: signature, iss, aud, exp, sub "dm-agent",
 * platform == ours, version_number >= installed. -1 with *code (bad_signature,
 * wrong_platform, rollback) and err.
 */
int dev_manifest_verify(EVP_PKEY *pub, const char *jws, const char *platform, int64_t installed,
                        struct dev_manifest *m, const char **code, char *err, size_t errlen);
/* Claims of our own installed manifest (already verified at install): 0, or -1 if none. */
int dev_manifest_installed(const struct dev_config *cfg, struct dev_manifest *m);

/* Standard base64 (with padding, whitespace not allowed) into a malloc'd buffer. */
unsigned char *dev_b64_decode(const char *in, size_t inlen, size_t *outlen);
/* base64url without padding (JWS parts). */
unsigned char *dev_b64url_decode(const char *in, size_t inlen, size_t *outlen);
/* Lower-case hex sha256 of data. */
void dev_sha256_hex(const void *data, size_t len, char out[65]);

/* An offline bundle, after its signature and bindings are verified. */
struct dev_bundle {
	json_t *root; /* owns the strings below */
	const char *manifest;
	const char *enrolment_token;
	const char *dm_iss_url;
	const char *package; /* base64 */
};

/* -1 with *code (bad_bundle, bad_signature, wrong_device, bad_binding) and err. */
int dev_bundle_parse(EVP_PKEY *bundle_pub, const char *text, size_t len, const char *hw_id,
                     struct dev_bundle *b, const char **code, char *err, size_t errlen);
void dev_bundle_free(struct dev_bundle *b);

/* Size and sha256 of the file at path against the manifest: -1 with *code bad_size /
 * bad_digest. */
int dev_package_check(const char *path, const struct dev_manifest *m, const char **code, char *err,
                      size_t errlen);
/*
 * Install the verified package at part as state_dir/agent/dm-agent (0755, via dm-agent.new,
 * rename, directory fsync), then manifest.jws, last, so the installed version changes only
 * once the binary is in place. The package is checked again against m first.
 */
int dev_install(const struct dev_config *cfg, const char *part, const char *manifest_jws,
                const struct dev_manifest *m, const char **code, char *err, size_t errlen);

/* fsync a directory, so that a rename or unlink in it survives a crash. 0/-1 + err. */
int dev_dir_fsync(const char *dir, char *err, size_t errlen);

/* Delete downloads in agent/.download other than keep (a file name): an old version's part
 * can never be completed into what the head-end now offers. */
void dev_download_prune(const struct dev_config *cfg, const char *keep);

/* The stored identity (identity/identity.json). */
struct dev_identity {
	char dm_id[129];
	char hw_id[65];
	char cdcs_pss_url[1024];
	int64_t not_after;
};

/* 0 if the device is personalized with an unexpired certificate, -1 otherwise. */
int dev_identity_load(const struct dev_config *cfg, struct dev_identity *id);
/* The device key: loaded if it exists, else made and written 0600 once. */
EVP_PKEY *dev_key_load_or_new(const struct dev_config *cfg, char *err, size_t errlen);
/* Every certificate in a PEM text; NULL if none or bad. */
STACK_OF(X509) * dev_certs_from_pem(const char *pem, char *err, size_t errlen);

/* The agent's pid if it is running our installed binary, else 0. */
long dev_agent_pid(const struct dev_config *cfg);
/* One request line to the control socket, one JSON answer back (at most DEV_MAX_CTL_ANSWER
 * bytes) within timeout_ms. */
json_t *dev_ctl_call(const struct dev_config *cfg, const json_t *req, long timeout_ms, char *err,
                     size_t errlen);

#endif
