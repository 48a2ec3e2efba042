/*
 * The device side shared by dm-app and dm-agent: config decoding, manifest and offline
 * bundle verification, atomic installation, base64.
 */
#include <sys/stat.h>

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "opendm/file.h"
#include "opendm/jose.h"
#include "opendm/pki.h"

#include "../../src/dm_agent/dev.h"

#define HW "hw-0001"

struct fx {
	char dir[PATH_MAX];
	char key[PATH_MAX];   /* the device's TLS key, 0600 */
	char loose[PATH_MAX]; /* a key file readable by others */
	char agent_pub[PATH_MAX];
	char bundle_pub[PATH_MAX];
	char conf[PATH_MAX];
	char state[PATH_MAX];
	EVP_PKEY *agent;  /* the DM agent signing key */
	EVP_PKEY *bundle; /* the enrolment key */
	EVP_PKEY *other;
};

static void in_dir(char *out, const struct fx *fx, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", fx->dir, name);

	assert_true(n > 0 && n < PATH_MAX);
}

static void put(const char *path, const char *text, mode_t mode)
{
	char err[256];

	if (file_write_atomic(path, text, strlen(text), mode, err, sizeof(err)) == -1)
		fail_msg("%s", err);
}

static json_t *base_conf(const struct fx *fx)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:b, s:s, s:s}, s:{s:s, s:s, s:s}, s:s, s:s, "
	                 "s:s, s:i}",
	                 "hw_id", HW, "state_dir", fx->state, "capability", "platform",
	                 "linux-x86_64", "tee", "software", "secure_video_path", 0, "hdcp", "none",
	                 "max_resolution", "fhd", "tls", "cert", "/nonexistent/app.crt", "key",
	                 fx->key, "ca", "/nonexistent/ca.crt", "dm_mss_url",
	                 "https://127.0.0.1:8441/", "agent_pubkey", fx->agent_pub, "bundle_pubkey",
	                 fx->bundle_pub, "retry_max_s", 5);
}

static void write_conf(const struct fx *fx, json_t *j)
{
	char *text = json_dumps(j, 0);

	assert_non_null(text);
	put(fx->conf, text, 0644);
	free(text);
	json_decref(j);
}

static int setup(void **state)
{
	const char *base = getenv("ODM_TEST_TMP");
	struct fx *fx;
	char err[256];
	EVP_PKEY *k;

	log_init("test_device", LOG_LVL_ERR);
	if (base == NULL)
		base = "/tmp";
	(void)mkdir(base, 0700);
	assert_non_null(fx = calloc(1, sizeof(*fx)));
	snprintf(fx->dir, sizeof(fx->dir), "%s/device.XXXXXX", base);
	assert_non_null(mkdtemp(fx->dir));
	in_dir(fx->key, fx, "app.key");
	in_dir(fx->loose, fx, "loose.key");
	in_dir(fx->agent_pub, fx, "agent.pub");
	in_dir(fx->bundle_pub, fx, "bundle.pub");
	in_dir(fx->conf, fx, "device.json");
	in_dir(fx->state, fx, "state");
	assert_non_null(k = pki_key_new());
	assert_int_equal(pki_key_write(fx->key, k, err, sizeof(err)), 0);
	assert_int_equal(pki_key_write(fx->loose, k, err, sizeof(err)), 0);
	assert_int_equal(chmod(fx->loose, 0644), 0);
	EVP_PKEY_free(k);
	assert_non_null(fx->agent = pki_key_new());
	assert_non_null(fx->bundle = pki_key_new());
	assert_non_null(fx->other = pki_key_new());
	assert_int_equal(pki_pubkey_write(fx->agent_pub, fx->agent, err, sizeof(err)), 0);
	assert_int_equal(pki_pubkey_write(fx->bundle_pub, fx->bundle, err, sizeof(err)), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[PATH_MAX + 16];

	EVP_PKEY_free(fx->agent);
	EVP_PKEY_free(fx->bundle);
	EVP_PKEY_free(fx->other);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* Load must fail with a message naming the file and want. */
static void expect_conf_error(struct fx *fx, json_t *j, const char *want)
{
	struct dev_config cfg;
	char err[1024];

	write_conf(fx, j);
	assert_int_equal(dev_config_load(fx->conf, &cfg, err, sizeof(err)), -1);
	if (strstr(err, fx->conf) == NULL || strstr(err, want) == NULL)
		fail_msg("error %s does not name %s and %s", err, fx->conf, want);
}

static void test_config(void **state)
{
	struct fx *fx = *state;
	struct dev_config cfg;
	char err[1024];
	json_t *j;

	write_conf(fx, base_conf(fx));
	if (dev_config_load(fx->conf, &cfg, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_string_equal(cfg.hw_id, HW);
	assert_string_equal(cfg.capability.platform, "linux-x86_64");
	assert_string_equal(cfg.dm_mss_url, "https://127.0.0.1:8441"); /* trailing / dropped */
	assert_int_equal(cfg.retry_max_s, 5);
	assert_int_equal(cfg.log_level, LOG_LVL_INFO);
	assert_null(cfg.proxy);
	assert_string_equal(cfg.path, fx->conf);
	dev_config_free(&cfg);

	j = base_conf(fx);
	json_object_set_new(j, "colour", json_string("blue"));
	expect_conf_error(fx, j, "'colour'");
	j = base_conf(fx);
	json_object_del(j, "hw_id");
	expect_conf_error(fx, j, "'hw_id'");
	j = base_conf(fx);
	json_object_set_new(j, "hw_id", json_string("hw 0001"));
	expect_conf_error(fx, j, "'hw_id'");
	j = base_conf(fx);
	json_object_set_new(j, "hw_id", json_string("hw1"));
	expect_conf_error(fx, j, "'hw_id'");
	j = base_conf(fx);
	json_object_set_new(json_object_get(j, "capability"), "tee", json_string("magic"));
	expect_conf_error(fx, j, "capability.tee");
	j = base_conf(fx);
	json_object_set_new(j, "dm_mss_url", json_string("http://127.0.0.1:8441"));
	expect_conf_error(fx, j, "'dm_mss_url'");
	j = base_conf(fx);
	json_object_set_new(j, "proxy", json_string("socks://x"));
	expect_conf_error(fx, j, "'proxy'");
	j = base_conf(fx);
	json_object_set_new(json_object_get(j, "tls"), "key", json_string(fx->loose));
	expect_conf_error(fx, j, "'tls.key'");
	j = base_conf(fx);
	json_object_set_new(j, "state_dir", json_string("relative/state"));
	expect_conf_error(fx, j, "'state_dir'");
	j = base_conf(fx);
	json_object_set_new(j, "retry_max_s", json_integer(-1));
	expect_conf_error(fx, j, "'retry_max_s'");
	j = base_conf(fx);
	json_object_set_new(j, "log_level", json_string("loud"));
	expect_conf_error(fx, j, "'log_level'");

	put(fx->conf, "{\"hw_id\": ", 0644);
	assert_int_equal(dev_config_load(fx->conf, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, fx->conf));
}

static char *manifest(EVP_PKEY *key, const char *platform, int64_t vn, const char *sha,
                      int64_t size)
{
	char err[256], *jws;
	json_t *c =
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:I}", "iss", DEV_MANIFEST_ISS, "aud",
	              DEV_APP_AUD, "sub", "dm-agent", "platform", platform, "version", "0.1.0",
	              "version_number", (json_int_t)vn, "sha256", sha, "size", (json_int_t)size);

	assert_non_null(c);
	jws = jose_sign(key, NULL, c, 3600, err, sizeof(err));
	json_decref(c);
	if (jws == NULL)
		fail_msg("%s", err);
	return jws;
}

static const char SHA_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static void expect_manifest(struct fx *fx, EVP_PKEY *pub, const char *jws, int64_t installed,
                            const char *code)
{
	struct dev_manifest m;
	const char *got = NULL;
	char err[512];
	int rc =
	    dev_manifest_verify(pub, jws, "linux-x86_64", installed, &m, &got, err, sizeof(err));

	if (code == NULL) {
		if (rc != 0)
			fail_msg("refused: %s: %s", got, err);
		return;
	}
	assert_int_equal(rc, -1);
	assert_non_null(got);
	assert_string_equal(got, code);
}

static void test_manifest(void **state)
{
	struct fx *fx = *state;
	struct dev_manifest m;
	const char *code;
	char err[512], *jws, *bad, *dot;

	jws = manifest(fx->agent, "linux-x86_64", 3, SHA_A, 1234);
	assert_int_equal(
	    dev_manifest_verify(fx->agent, jws, "linux-x86_64", 0, &m, &code, err, sizeof(err)), 0);
	assert_int_equal(m.version_number, 3);
	assert_int_equal(m.size, 1234);
	assert_string_equal(m.sha256, SHA_A);
	assert_string_equal(m.version, "0.1.0");
	expect_manifest(fx, fx->agent, jws, 3, NULL);       /* re-install of the same version */
	expect_manifest(fx, fx->agent, jws, 4, "rollback"); /* older than installed */
	expect_manifest(fx, fx->other, jws, 0, "bad_signature");

	/* One changed byte in the payload. */
	assert_non_null(bad = strdup(jws));
	dot = strchr(bad, '.');
	dot[5] = dot[5] == 'A' ? 'B' : 'A';
	expect_manifest(fx, fx->agent, bad, 0, "bad_signature");
	free(bad);
	free(jws);

	jws = manifest(fx->other, "linux-x86_64", 3, SHA_A, 1234);
	expect_manifest(fx, fx->agent, jws, 0, "bad_signature");
	free(jws);
	jws = manifest(fx->agent, "android-arm64", 3, SHA_A, 1234);
	expect_manifest(fx, fx->agent, jws, 0, "wrong_platform");
	free(jws);
	jws = manifest(fx->agent, "linux-x86_64", 3, "not-hex", 1234);
	expect_manifest(fx, fx->agent, jws, 0, "bad_signature");
	free(jws);
	expect_manifest(fx, fx->agent, "x.y.z", 0, "bad_signature");
}

static char *bundle(const struct fx *fx, const char *sub, const char *man, const char *tok,
                    const char *pkg_b64)
{
	char err[256], mh[65], th[65], *sig, *text;
	json_t *c, *b;

	dev_sha256_hex(man, strlen(man), mh);
	dev_sha256_hex(tok, strlen(tok), th);
	assert_non_null(c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "iss", DEV_BUNDLE_ISS,
	                              "aud", DEV_APP_AUD, "sub", sub, "manifest_sha256", mh,
	                              "token_sha256", th, "dm_iss_url", "https://127.0.0.1:8442"));
	sig = jose_sign(fx->bundle, NULL, c, 600, err, sizeof(err));
	assert_non_null(sig);
	b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "format", DEV_BUNDLE_FMT, "bundle_sig", sig,
	              "manifest", man, "enrolment_token", "tok-1", "dm_iss_url",
	              "https://127.0.0.1:8442", "package", pkg_b64);
	assert_non_null(b);
	text = json_dumps(b, 0);
	json_decref(b);
	json_decref(c);
	free(sig);
	return text;
}

static void expect_bundle(struct fx *fx, const char *text, const char *code)
{
	struct dev_bundle b;
	const char *got = NULL;
	char err[512];
	int rc = dev_bundle_parse(fx->bundle, text, strlen(text), HW, &b, &got, err, sizeof(err));

	if (code == NULL) {
		if (rc != 0)
			fail_msg("refused: %s: %s", got, err);
		assert_string_equal(b.enrolment_token, "tok-1");
		assert_string_equal(b.package, "Zm9v");
		dev_bundle_free(&b);
		return;
	}
	assert_int_equal(rc, -1);
	assert_null(b.root);
	assert_string_equal(got, code);
}

static void test_bundle(void **state)
{
	struct fx *fx = *state;
	char *t, *man = manifest(fx->agent, "linux-x86_64", 1, SHA_A, 3);
	json_t *j;

	t = bundle(fx, HW, man, "tok-1", "Zm9v");
	expect_bundle(fx, t, NULL);
	free(t);
	t = bundle(fx, "hw-other", man, "tok-1", "Zm9v");
	expect_bundle(fx, t, "wrong_device");
	free(t);
	/* Signed for another token than the one in the file. */
	t = bundle(fx, HW, man, "tok-2", "Zm9v");
	expect_bundle(fx, t, "bad_binding");
	free(t);
	/* Manifest swapped after signing. */
	t = bundle(fx, HW, "another-manifest", "tok-1", "Zm9v");
	j = json_loads(t, 0, NULL);
	json_object_set_new(j, "manifest", json_string(man));
	free(t);
	t = json_dumps(j, 0);
	json_decref(j);
	expect_bundle(fx, t, "bad_binding");
	free(t);
	/* Signature by another key. */
	t = bundle(fx, HW, man, "tok-1", "Zm9v");
	j = json_loads(t, 0, NULL);
	json_object_set_new(j, "bundle_sig", json_object_get(j, "manifest"));
	json_incref(json_object_get(j, "bundle_sig"));
	free(t);
	t = json_dumps(j, 0);
	json_decref(j);
	expect_bundle(fx, t, "bad_signature");
	free(t);
	expect_bundle(fx, "{\"format\": \"opendm-offline-bundle/0\"}", "bad_bundle");
	expect_bundle(fx, "not json", "bad_bundle");
	free(man);
}

static void load_state_cfg(struct fx *fx, struct dev_config *cfg)
{
	char err[1024];

	write_conf(fx, base_conf(fx));
	if (dev_config_load(fx->conf, cfg, err, sizeof(err)) == -1 ||
	    dev_dirs(cfg, err, sizeof(err)) == -1)
		fail_msg("%s", err);
}

static void install(struct fx *fx, struct dev_config *cfg, const char *content,
                    const char *signed_content, int64_t vn, const char *code)
{
	struct dev_manifest m;
	const char *got = NULL;
	char sha[65], part[PATH_MAX], err[512], *jws;
	int rc;

	dev_sha256_hex(signed_content, strlen(signed_content), sha);
	jws = manifest(fx->agent, "linux-x86_64", vn, sha, (int64_t)strlen(signed_content));
	assert_int_equal(
	    dev_manifest_verify(fx->agent, jws, "linux-x86_64", 0, &m, &got, err, sizeof(err)), 0);
	assert_int_equal(dev_path(part, sizeof(part), cfg, "agent/.download/x.part"), 0);
	put(part, content, 0600);
	rc = dev_install(cfg, part, jws, &m, &got, err, sizeof(err));
	free(jws);
	if (code == NULL) {
		if (rc != 0)
			fail_msg("%s: %s", got, err);
	} else {
		assert_int_equal(rc, -1);
		assert_string_equal(got, code);
	}
	/* Installed or refused, the part file is gone, and so is dm-agent.new. */
	assert_int_equal(access(part, F_OK), -1);
	assert_int_equal(dev_path(part, sizeof(part), cfg, "agent/dm-agent.new"), 0);
	assert_int_equal(access(part, F_OK), -1);
}

static void expect_installed(struct dev_config *cfg, const char *content, int64_t vn)
{
	struct dev_manifest m;
	char path[PATH_MAX], err[256], *got;
	struct stat sb;
	size_t len;

	assert_int_equal(dev_path(path, sizeof(path), cfg, "agent/dm-agent"), 0);
	assert_non_null(got = file_read(path, 4096, &len, err, sizeof(err)));
	assert_string_equal(got, content);
	free(got);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0755);
	assert_int_equal(dev_manifest_installed(cfg, &m), 0);
	assert_int_equal(m.version_number, vn);
}

static void test_install(void **state)
{
	struct fx *fx = *state;
	struct dev_config cfg;
	struct dev_manifest m;
	char old[PATH_MAX], cur[PATH_MAX];

	load_state_cfg(fx, &cfg);
	assert_int_equal(dev_manifest_installed(&cfg, &m), -1);
	install(fx, &cfg, "#!/bin/sh\necho v1\n", "#!/bin/sh\necho v1\n", 1, NULL);
	expect_installed(&cfg, "#!/bin/sh\necho v1\n", 1);
	/* A v2 whose bytes differ from what was signed: v1 stays, binary and manifest. */
	install(fx, &cfg, "#!/bin/sh\necho v3\n", "#!/bin/sh\necho v2\n", 2, "bad_digest");
	expect_installed(&cfg, "#!/bin/sh\necho v1\n", 1);
	install(fx, &cfg, "#!/bin/sh\necho v2", "#!/bin/sh\necho v2\n", 2, "bad_size");
	expect_installed(&cfg, "#!/bin/sh\necho v1\n", 1);
	install(fx, &cfg, "#!/bin/sh\necho v2\n", "#!/bin/sh\necho v2\n", 2, NULL);
	expect_installed(&cfg, "#!/bin/sh\necho v2\n", 2);

	/* Old downloads go, the one being resumed stays. */
	assert_int_equal(dev_path(old, sizeof(old), &cfg, "agent/.download/old.part"), 0);
	assert_int_equal(dev_path(cur, sizeof(cur), &cfg, "agent/.download/cur.part"), 0);
	put(old, "old", 0600);
	put(cur, "cur", 0600);
	dev_download_prune(&cfg, "cur.part");
	assert_int_equal(access(old, F_OK), -1);
	assert_int_equal(access(cur, F_OK), 0);
	dev_config_free(&cfg);
}

static void expect_b64(const char *in, int url, const char *want)
{
	size_t n = 0;
	unsigned char *out =
	    url ? dev_b64url_decode(in, strlen(in), &n) : dev_b64_decode(in, strlen(in), &n);

	if (want == NULL) {
		if (out != NULL)
			fail_msg("'%s' decoded", in);
		return;
	}
	if (out == NULL)
		fail_msg("'%s' refused", in);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(out, want, n);
	free(out);
}

static void test_base64(void **state)
{
	expect_b64("", 0, "");
	expect_b64("Zg==", 0, "f");
	expect_b64("Zm8=", 0, "fo");
	expect_b64("Zm9v", 0, "foo");
	expect_b64("Zm9vYmFy", 0, "foobar");
	expect_b64("+/+/", 0, "\xfb\xff\xbf");
	expect_b64("Zg=", 0, NULL);      /* length not a multiple of 4 */
	expect_b64("Zg", 0, NULL);       /* padding required */
	expect_b64("Z===", 0, NULL);     /* three pads */
	expect_b64("Zh==", 0, NULL);     /* non-zero unused bits */
	expect_b64("Zm9=", 0, NULL);     /* non-zero unused bits */
	expect_b64("Zm9v\n", 0, NULL);   /* whitespace */
	expect_b64("Zg==Zg==", 0, NULL); /* padding in the middle */
	expect_b64("-_-_", 0, NULL);     /* url alphabet in standard */
	expect_b64("Zm9v!A==", 0, NULL);
	expect_b64("Zg", 1, "f");
	expect_b64("-_-_", 1, "\xfb\xff\xbf");
	expect_b64("Z", 1, NULL);
	expect_b64("Zg==", 1, NULL);
	expect_b64("+/+/", 1, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config), cmocka_unit_test(test_manifest),
	    cmocka_unit_test(test_bundle), cmocka_unit_test(test_install),
	    cmocka_unit_test(test_base64),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
