/*
 * cdcs_crashy: for the end-to-end tests, never shipped. It is the real CDCS named by
 * ODM_TEST_CDCS_REAL (a sample CDCS .so), except that perso_apply aborts while the file named
 * by ODM_TEST_CDCS_CRASH_FILE exists: a vendor client that crashes in the middle of its
 * personalization, then works once the fault is gone.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include "opendm/cdcs.h"

const struct odm_cdcs_ops *odm_cdcs_entry(uint32_t host_abi) __attribute__((visibility("default")));

/* A plug-in's own tables live as long as the library: the ABI hands out a pointer to them. */
static const struct odm_cdcs_ops *crashy_real;
static struct odm_cdcs_ops crashy_ops;

static int crashy_perso_apply(void *ctx, const char *data, char **confirmation)
{
	const char *flag = getenv("ODM_TEST_CDCS_CRASH_FILE");

	if (flag != NULL && access(flag, F_OK) == 0)
		abort();
	return crashy_real->perso_apply(ctx, data, confirmation);
}

const struct odm_cdcs_ops *odm_cdcs_entry(uint32_t host_abi)
{
	const char *path = getenv("ODM_TEST_CDCS_REAL");
	odm_cdcs_entry_fn entry;
	void *h;

	if (path == NULL || (h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL)
		return NULL;
	if ((entry = (odm_cdcs_entry_fn)dlsym(h, ODM_CDCS_ENTRY)) == NULL ||
	    (crashy_real = entry(host_abi)) == NULL) {
		dlclose(h);
		return NULL;
	}
	crashy_ops = *crashy_real;
	crashy_ops.perso_apply = crashy_perso_apply;
	return &crashy_ops;
}
