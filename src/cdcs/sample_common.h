/*
 * sample_common: what the sample CDCSs (sample_ca*.c, sample_drm.c) do the same way:
 * the CDCS key pair, the personalization request and data, the sealed state, and the
 * decryption of content through sample_content.c. Each sample only names itself and its
 * content system; the functions below are its odm_cdcs_ops (include/opendm/cdcs.h).
 *
 * Sealed storage items (host->store_put/get):
 *   key.pem     the CDCS private key (EC P-256, PKCS#8 PEM), made by perso_request
 *   perso.json  the applied personalization data without its confirm value: identity,
 *               rights and entitlement keys
 */
#ifndef SAMPLE_COMMON_H
#define SAMPLE_COMMON_H

#include <stddef.h>

#include "opendm/cdcs.h"

#include "sample_content.h"

/* Start the CDCS whose ops table is ops: vendor, name and kind, and the content system
 * "<vendor>/<name>" it opens (sample_content.h). */
int sample_init(const struct odm_cdcs_host *host, const struct odm_cdcs_ops *ops, void **ctx);
int sample_perso_request(void *ctx, const char *ticket, char **request_json);
int sample_perso_apply(void *ctx, const char *data, char **confirmation);
int sample_decrypt(void *ctx, const void *in, size_t inlen, void **out, size_t *outlen);
int sample_status(void *ctx, char **status_json);
void sample_fini(void *ctx);

/*
 * The ops table and the entry point of a sample CDCS named id (ca, drm): the one place that
 * ties a sample's vendor, name (hence content system) and kind to the functions above.
 */
#define SAMPLE_CDCS(id, vendor_, name_, kind_)                                                     \
	const struct odm_cdcs_ops *odm_cdcs_entry(uint32_t host_abi)                               \
	    __attribute__((visibility("default")));                                                \
	static int id##_init(const struct odm_cdcs_host *host, void **ctx);                        \
	static const struct odm_cdcs_ops id##_ops = {                                              \
	    .abi_version = ODM_CDCS_ABI_VERSION,                                                   \
	    .vendor = vendor_,                                                                     \
	    .name = name_,                                                                         \
	    .kind = kind_,                                                                         \
	    .init = id##_init,                                                                     \
	    .perso_request = sample_perso_request,                                                 \
	    .perso_apply = sample_perso_apply,                                                     \
	    .decrypt = sample_decrypt,                                                             \
	    .status = sample_status,                                                               \
	    .fini = sample_fini,                                                                   \
	};                                                                                         \
	static int id##_init(const struct odm_cdcs_host *host, void **ctx)                         \
	{                                                                                          \
		return sample_init(host, &id##_ops, ctx);                                          \
	}                                                                                          \
	const struct odm_cdcs_ops *odm_cdcs_entry(uint32_t host_abi)                               \
	{                                                                                          \
		return host_abi == ODM_CDCS_ABI_VERSION ? &id##_ops : NULL;                        \
	}

#endif
