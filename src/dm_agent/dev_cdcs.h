/*
 * dev_cdcs: the CA/DRM client software (CDCS) installed on the device (docs/protocol.md,
 * "Figure 5", device side): verification of an offered CDCS, its installation, state.json,
 * the `current` switch, removal and listing. Shared by dm-agent (the flow) and dm-app (status).
 *
 * Layout under state_dir/cdcs:
 *   <vendor>/<name>/<version_number>/{cdcs.so,manifest.jws,approval.jws,state.json,store/}
 *   <vendor>/<name>/current      -> "<version_number>" (switched by renaming a temp link)
 *   <vendor>/<name>/highest      highest version_number ever installed (anti-rollback)
 *   <vendor>/<name>/.new-<vn>    a version being installed (never `current`)
 *   .download/<vendor>_<name>_<variant>_<version_number>.part
 *   revocations.jws  the newest verified revocation list (dev_revoke.h)
 *
 * A version is installed into .new-<vn> and only takes its final name when it is personalized
 * (dev_cdcs_commit), so a digit-named directory always holds a complete, personalized version
 * and whatever an interrupted install left behind is a dot-directory dev_cdcs_cleanup() removes.
 */
#ifndef OPENDM_DEV_CDCS_H
#define OPENDM_DEV_CDCS_H

#include <limits.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "opendm/cdcsimg.h"

#include "dev.h"

#define DEV_CDCS_MAX_ITEMS 16 /* installed CDCSs reported to cdcs-pss, items per run */

/* The keys that decide which CDCS may run here (device.json vendor_keys, operator_pubkey). */
struct dev_cdcs_keys {
	struct cdcsimg_keyring vendors; /* empty when vendor_keys is not configured */
	EVP_PKEY *operator_pub;         /* NULL when operator_pubkey is not configured */
};

/*
 * Load the configured keys. A key that is not configured stays empty (every CDCS is then
 * refused as unknown_vendor / not_approved); one that is configured but unreadable is an
 * error. 0/-1 + err; k is always safe to free.
 */
int dev_cdcs_keys_load(const struct dev_config *cfg, struct dev_cdcs_keys *k, char *err,
                       size_t errlen);
void dev_cdcs_keys_free(struct dev_cdcs_keys *k);

/* The highest version_number ever installed for vendor/name (0: never). */
int64_t dev_cdcs_highest(const struct dev_config *cfg, const char *vendor, const char *name);

/*
 * Verify an offered CDCS before anything is downloaded: manifest with its vendor's key and
 * operator approval bound to it (cdcsimg_verify: unknown_vendor, bad_signature, not_approved,
 * approval_mismatch, bad_claims incl. abi), platform = ours (wrong_platform), version_number
 * >= the highest installed (rollback). now 0 = time(NULL). 0, or -1 with *code and err.
 */
int dev_cdcs_verify(const struct dev_config *cfg, const struct dev_cdcs_keys *k,
                    const char *manifest_jws, const char *approval_jws, time_t now,
                    struct cdcsimg_manifest *m, const char **code, char *err, size_t errlen);

/* state_dir/cdcs/.download/<vendor>_<name>_<variant>_<vn>.part; -1 if it does not fit. */
int dev_cdcs_part_path(const struct dev_config *cfg, const struct cdcsimg_manifest *m, char *buf,
                       size_t len);

/* A version being installed, from dev_cdcs_install() to dev_cdcs_commit() or _abort(). */
struct dev_cdcs_inst {
	struct cdcsimg_manifest m;
	char base[PATH_MAX]; /* state_dir/cdcs/<vendor>/<name> */
	char dir[PATH_MAX];  /* base/.new-<vn>: what the CDCS child runs in until the commit */
	char name[24];       /* the final directory name, "<vn>" */
};

/*
 * Install the downloaded image at part (verified manifest m, whose JWS texts are stored with
 * it) into inst->dir: cdcs.so (checked again for size and sha256, 0755, written via .new +
 * fsync + rename), manifest.jws, approval.jws, store/ (0700). The part is consumed (moved in)
 * on success; on a failed check (bad_size/bad_digest) it is deleted, since it can never be
 * completed into the image. On failure nothing stays: -1 with *code and err.
 */
int dev_cdcs_install(const struct dev_config *cfg, const char *part, const char *manifest_jws,
                     const char *approval_jws, const struct cdcsimg_manifest *m,
                     struct dev_cdcs_inst *inst, const char **code, char *err, size_t errlen);

/*
 * The state.json object of a personalized version (rights: an array of strings, borrowed,
 * NULL for none; cdcs_id, perso_id and key_sha256, the vendor key that verified m, may be
 * NULL). New reference or NULL.
 */
json_t *dev_cdcs_state_json(const struct cdcsimg_manifest *m, int personalized, const char *cdcs_id,
                            const json_t *rights, const char *perso_id, const char *key_sha256,
                            int64_t at);

/*
 * Make the personalized version current (make-before-break): state.json written last into
 * inst->dir, the directory renamed to "<vn>" (atomically exchanged when that name is the
 * current version being re-installed), `current` switched by renaming a temp link, highest
 * raised, and only then every other version directory removed. On failure before the switch
 * the new version is removed and the old `current` is untouched. 0/-1 + err.
 */
int dev_cdcs_commit(struct dev_cdcs_inst *inst, const json_t *state, char *err, size_t errlen);
/* Remove everything of an install that will not be committed. */
void dev_cdcs_abort(struct dev_cdcs_inst *inst);

/*
 * Remove an installed CDCS: `current` first (so it is never half-there), then every version
 * directory. highest stays, so a removal never reopens a rollback. 0 (also when nothing was
 * installed) / -1 + err.
 */
int dev_cdcs_remove(const struct dev_config *cfg, const char *vendor, const char *name, char *err,
                    size_t errlen);

/* state.json of the current version of vendor/name: new reference, or NULL if none. */
json_t *dev_cdcs_state(const struct dev_config *cfg, const char *vendor, const char *name);
/* The directory of the current version (through the link); 0/-1. */
int dev_cdcs_current_dir(const struct dev_config *cfg, const char *vendor, const char *name,
                         char *buf, size_t len);
/* state.json of every current version (sorted by vendor, name; kind and key_sha256 null
 * when a state lacks them): a new array, never NULL unless out of memory. At most
 * DEV_CDCS_MAX_ITEMS * 4 entries are read. */
json_t *dev_cdcs_list(const struct dev_config *cfg);

/*
 * Remove what an interrupted run left: .new-* directories, version directories that are not
 * `current`, temp links. Downloads are kept (they may be resumed); nothing current is touched.
 */
void dev_cdcs_cleanup(const struct dev_config *cfg);

/*
 * Delete the downloads in cdcs/.download except those named in keep (file names, n of them):
 * a part is only worth keeping while the same version may still be resumed.
 */
void dev_cdcs_parts_prune(const struct dev_config *cfg, const char *const *keep, size_t n);

#endif
