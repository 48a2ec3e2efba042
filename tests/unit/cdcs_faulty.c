/*
 * cdcs_faulty: a CDCS that misbehaves on purpose, for test_cdcsproc (never shipped). Its
 * perso_apply does what ODM_TEST_CDCS_FAULT says: "abort", "hang", "exit" (status 7),
 * "print" (writes to stdout, then succeeds); otherwise it succeeds. status returns text that
 * is not JSON when the fault is "badstatus".
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "opendm/cdcs.h"

const struct odm_cdcs_ops *odm_cdcs_entry(uint32_t host_abi) __attribute__((visibility("default")));

static const char *faulty_mode(void)
{
	const char *m = getenv("ODM_TEST_CDCS_FAULT");

	return m != NULL ? m : "";
}

static int faulty_init(const struct odm_cdcs_host *host, void **ctx)
{
	*ctx = (void *)host;
	return 0;
}

static int faulty_perso_request(void *ctx, const char *ticket, char **request_json)
{
	return (*request_json = strdup("{\"faulty\":true}")) != NULL ? 0 : -1;
}

static int faulty_perso_apply(void *ctx, const char *data, char **confirmation)
{
	const char *m = faulty_mode();

	if (strcmp(m, "abort") == 0)
		abort();
	if (strcmp(m, "hang") == 0)
		for (;;)
			pause();
	if (strcmp(m, "exit") == 0)
		_exit(7);
	if (strcmp(m, "print") == 0) {
		/* Vendor code that prints: must reach the log, not the protocol. */
		printf("{\"ok\":true,\"confirmation\":\"forged\"}\n");
		fflush(stdout);
	}
	return (*confirmation = strdup("0123456789abcdef0123456789abcdef")) != NULL ? 0 : -1;
}

static int faulty_decrypt(void *ctx, const void *in, size_t inlen, void **out, size_t *outlen)
{
	const struct odm_cdcs_host *host = ctx;

	host->log(host->arg, ODM_CDCS_LOG_WARN, "faulty cannot decrypt anything");
	return -1;
}

static int faulty_status(void *ctx, char **status_json)
{
	*status_json = strdup(strcmp(faulty_mode(), "badstatus") == 0 ? "not json" : "{}");
	return *status_json != NULL ? 0 : -1;
}

static void faulty_fini(void *ctx)
{
}

static const struct odm_cdcs_ops faulty_ops = {
    .abi_version = ODM_CDCS_ABI_VERSION,
    .vendor = "vendor-t",
    .name = "faulty",
    .kind = "ca",
    .init = faulty_init,
    .perso_request = faulty_perso_request,
    .perso_apply = faulty_perso_apply,
    .decrypt = faulty_decrypt,
    .status = faulty_status,
    .fini = faulty_fini,
};

const struct odm_cdcs_ops *odm_cdcs_entry(uint32_t host_abi)
{
	return &faulty_ops;
}
