/*
 * dev_revoke: the operator's revocation list on the device (docs/protocol.md, "Revocation
 * list") and the make-before-break rule of a Figure 5 run.
 *
 * The newest list the agent verified (operator_pubkey) is kept in state_dir/cdcs/
 * revocations.jws; a list with a serial not higher than the kept one never replaces it. A
 * CDCS is revoked when its vendor/name/version_number is listed, or when the vendor key that
 * verified its manifest (key_sha256, recorded in state.json at install) is listed for its
 * vendor. The decisions are pure functions of their arguments, so they are unit-tested.
 */
#ifndef OPENDM_DEV_REVOKE_H
#define OPENDM_DEV_REVOKE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "opendm/revocation.h"

#include "dev.h"
#include "dev_cdcs.h"

#define DEV_REVOCATIONS_FILE "cdcs/revocations.jws"
#define DEV_REVOCATIONS_MAX  (256 * 1024) /* bytes of the kept JWS */

/*
 * The kept list, verified again with operator_pub, into rl (emptied first: serial 0 when
 * none). 1 loaded, 0 none kept or no operator key, -1 kept but unusable (err; rl empty).
 */
int dev_revocations_load(const struct dev_config *cfg, EVP_PKEY *operator_pub,
                         struct revocation_list *rl, char *err, size_t errlen);

/*
 * A list as cdcs-pss passed it (jws): verified with operator_pub; when its serial is higher
 * than rl's it is written (atomically, 0600) and replaces rl: 1. Not newer: 0, rl and the
 * file unchanged. Refused or not written: -1 with *code (bad_signature, bad_claims,
 * internal_error) and err, rl and the file unchanged.
 */
int dev_revocations_update(const struct dev_config *cfg, EVP_PKEY *operator_pub,
                           struct revocation_list *rl, const char *jws, const char **code,
                           char *err, size_t errlen);

/* Lower-case hex sha256 of the SPKI of vendor's key in k (the key that verifies its
 * manifests). 0, or -1 if k has no key for vendor. */
int dev_cdcs_key_sha256(const struct dev_cdcs_keys *k, const char *vendor, char out[65]);

/* Why vendor/name/version_number verified by key_sha256 (NULL: unknown) is revoked:
 * "version", "vendor_key", or NULL when it is not. */
const char *dev_revoked(const struct revocation_list *rl, const char *vendor, const char *name,
                        int64_t version_number, const char *key_sha256);

/*
 * The same for an installed CDCS (its state.json). A state without key_sha256 (installed
 * before it was recorded) counts as verified by k's current key of its vendor, the only key
 * that could have verified it then.
 */
const char *dev_revoked_installed(const struct revocation_list *rl, const struct dev_cdcs_keys *k,
                                  const json_t *state);

/* Kinds of CDCS, as bits of a set of failed installs. */
#define DEV_KIND_CA      1u
#define DEV_KIND_DRM     2u
#define DEV_KIND_UNKNOWN 4u /* a failed offer whose kind could not be told */

/* The bit of kind ("ca", "drm"; anything else, NULL included: DEV_KIND_UNKNOWN). */
unsigned dev_kind_bit(const char *kind);

/*
 * Make before break: 1 if the removal of a CDCS of kind must wait because an install of the
 * same kind failed in this run (failed: the DEV_KIND_* bits of the failed installs); a
 * failure of unknown kind, or a removal of unknown kind after any failure, waits too. A
 * revoked CDCS never waits: the caller does not ask.
 */
int dev_removal_postponed(const char *kind, unsigned failed);

#endif
