/*
 * The device side shared by dm-app and dm-agent: config decoding, manifest and offline
 * bundle verification, atomic installation, base64, the CPE link (credential, pairing
 * proof, relay settings).
 */
#include <sys/stat.h>

#include <dirent.h>
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
#include <fcntl.h>
#include <jansson.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "opendm/pairproof.h"
#include "opendm/file.h"
#include "opendm/jose.h"
#include "opendm/pki.h"

#include "../../src/dm_agent/dev.h"
#include "../../src/dm_agent/dev_cdcs.h"
#include "../../src/dm_agent/dev_link.h"
#include "testutil.h"

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
	EVP_PKEY *vendor_a; /* a CDCS vendor the device knows */
	EVP_PKEY *vendor_x; /* one it does not */
	EVP_PKEY *operator_key;
	char vendor_a_pub[PATH_MAX];
	char operator_pub[PATH_MAX];
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

/* base_conf with the Figure 5 keys: vendor-a known, the operator key, no periodic runs. */
static json_t *cdcs_conf(const struct fx *fx)
{
	json_t *j = base_conf(fx);

	json_object_set_new(j, "operator_pubkey", json_string(fx->operator_pub));
	json_object_set_new(j, "vendor_keys", json_pack("{s:s}", "vendor-a", fx->vendor_a_pub));
	json_object_set_new(j, "cdcs_interval_s", json_integer(0));
	json_object_set_new(j, "cdcs_timeout_s", json_integer(7));
	return j;
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
	assert_non_null(fx->vendor_a = pki_key_new());
	assert_non_null(fx->vendor_x = pki_key_new());
	assert_non_null(fx->operator_key = pki_key_new());
	in_dir(fx->vendor_a_pub, fx, "vendor-a.pub");
	in_dir(fx->operator_pub, fx, "operator.pub");
	assert_int_equal(pki_pubkey_write(fx->vendor_a_pub, fx->vendor_a, err, sizeof(err)), 0);
	assert_int_equal(pki_pubkey_write(fx->operator_pub, fx->operator_key, err, sizeof(err)), 0);
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
	EVP_PKEY_free(fx->vendor_a);
	EVP_PKEY_free(fx->vendor_x);
	EVP_PKEY_free(fx->operator_key);
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

	/* Figure 5 keys: optional, defaults, and checked when given. */
	write_conf(fx, base_conf(fx));
	if (dev_config_load(fx->conf, &cfg, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_null(cfg.operator_pubkey);
	assert_null(cfg.vendor_keys);
	assert_int_equal(cfg.cdcs_interval_s, DEV_CDCS_INTERVAL_PSS);
	assert_int_equal(cfg.cdcs_timeout_s, DEV_CDCS_TIMEOUT_S);
	dev_config_free(&cfg);
	write_conf(fx, cdcs_conf(fx));
	if (dev_config_load(fx->conf, &cfg, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_string_equal(cfg.operator_pubkey, fx->operator_pub);
	assert_string_equal(json_string_value(json_object_get(cfg.vendor_keys, "vendor-a")),
	                    fx->vendor_a_pub);
	assert_int_equal(cfg.cdcs_interval_s, 0);
	assert_int_equal(cfg.cdcs_timeout_s, 7);
	dev_config_free(&cfg);
	j = cdcs_conf(fx);
	json_object_set_new(j, "vendor_keys", json_string(fx->vendor_a_pub));
	expect_conf_error(fx, j, "'vendor_keys'");
	j = cdcs_conf(fx);
	json_object_set_new(j, "vendor_keys", json_pack("{s:s}", "../evil", fx->vendor_a_pub));
	expect_conf_error(fx, j, "'vendor_keys'");
	j = cdcs_conf(fx);
	json_object_set_new(j, "vendor_keys", json_pack("{s:i}", "vendor-a", 1));
	expect_conf_error(fx, j, "'vendor_keys'");
	j = cdcs_conf(fx);
	json_object_set_new(j, "cdcs_timeout_s", json_integer(0));
	expect_conf_error(fx, j, "'cdcs_timeout_s'");
	j = cdcs_conf(fx);
	json_object_set_new(j, "cdcs_interval_s", json_integer(-5));
	expect_conf_error(fx, j, "'cdcs_interval_s'");

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

/* --- CDCS (Figure 5, device side) --- */

struct cdcs_fx {
	struct dev_config cfg;
	struct dev_cdcs_keys keys;
};

static void cdcs_load(struct fx *fx, struct cdcs_fx *c)
{
	char err[1024], p[PATH_MAX + 8];

	/* Each test starts with no CDCS history (highest) from another. */
	snprintf(p, sizeof(p), "%s/cdcs", fx->state);
	tu_rmtree(p);

	write_conf(fx, cdcs_conf(fx));
	if (dev_config_load(fx->conf, &c->cfg, err, sizeof(err)) == -1 ||
	    dev_dirs(&c->cfg, err, sizeof(err)) == -1 ||
	    dev_cdcs_keys_load(&c->cfg, &c->keys, err, sizeof(err)) == -1)
		fail_msg("%s", err);
}

static void cdcs_unload(struct cdcs_fx *c)
{
	dev_cdcs_keys_free(&c->keys);
	dev_config_free(&c->cfg);
}

/* The claims of a sample-ca image whose bytes are content. */
static struct cdcsimg_manifest cdcs_claims(const char *vendor, const char *variant,
                                           const char *platform, int64_t vn, const char *content)
{
	struct cdcsimg_manifest m;

	memset(&m, 0, sizeof(m));
	snprintf(m.vendor, sizeof(m.vendor), "%s", vendor);
	snprintf(m.name, sizeof(m.name), "sample-ca");
	snprintf(m.kind, sizeof(m.kind), "ca");
	snprintf(m.variant, sizeof(m.variant), "%s", variant);
	snprintf(m.platform, sizeof(m.platform), "%s", platform);
	snprintf(m.version, sizeof(m.version), "%lld.0", (long long)vn);
	m.version_number = vn;
	m.abi = 1;
	cdcsimg_sha256_hex(content, strlen(content), m.sha256);
	m.size = (int64_t)strlen(content);
	return m;
}

static char *cdcs_sign(EVP_PKEY *vendor_key, const struct cdcsimg_manifest *m)
{
	char err[256], *jws = cdcsimg_manifest_sign(vendor_key, m, 3600, err, sizeof(err));

	if (jws == NULL)
		fail_msg("%s", err);
	return jws;
}

static char *cdcs_approve(EVP_PKEY *op, const struct cdcsimg_manifest *m, const char *man)
{
	char err[256], *jws = cdcsimg_approval_sign(op, m, man, 3600, err, sizeof(err));

	if (jws == NULL)
		fail_msg("%s", err);
	return jws;
}

static void expect_cdcs(struct cdcs_fx *c, const char *man, const char *appr, const char *code)
{
	struct cdcsimg_manifest m;
	const char *got = NULL;
	char err[512];
	int rc = dev_cdcs_verify(&c->cfg, &c->keys, man, appr, 0, &m, &got, err, sizeof(err));

	if (code == NULL) {
		if (rc != 0)
			fail_msg("refused: %s: %s", got, err);
		return;
	}
	if (rc != -1 || got == NULL || strcmp(got, code) != 0)
		fail_msg("want %s, got rc %d %s: %s", code, rc, got ? got : "-", err);
}

/* Sign m with vendor_key, approve it with the operator key: refused with code (NULL: ok). */
static void expect_approved(struct fx *fx, struct cdcs_fx *c, EVP_PKEY *vendor_key,
                            const struct cdcsimg_manifest *m, const char *code)
{
	char *man = cdcs_sign(vendor_key, m), *appr = cdcs_approve(fx->operator_key, m, man);

	expect_cdcs(c, man, appr, code);
	free(man);
	free(appr);
}

static void put_highest(struct cdcs_fx *c, const char *vendor, int64_t vn)
{
	char p[PATH_MAX], num[32];

	snprintf(p, sizeof(p), "%s/cdcs", c->cfg.state_dir);
	(void)mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/cdcs/%s", c->cfg.state_dir, vendor);
	(void)mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/cdcs/%s/sample-ca", c->cfg.state_dir, vendor);
	(void)mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/cdcs/%s/sample-ca/highest", c->cfg.state_dir, vendor);
	snprintf(num, sizeof(num), "%lld\n", (long long)vn);
	put(p, num, 0644);
}

static void test_cdcs_verify(void **state)
{
	struct fx *fx = *state;
	struct cdcs_fx c;
	struct cdcsimg_manifest m, m2, got;
	const char *code;
	char err[512], *man, *appr, *man2, *appr2, *x;
	json_t *j;

	cdcs_load(fx, &c);
	m = cdcs_claims("vendor-a", "sw", "linux-x86_64", 2, "image bytes");
	man = cdcs_sign(fx->vendor_a, &m);
	appr = cdcs_approve(fx->operator_key, &m, man);
	assert_int_equal(
	    dev_cdcs_verify(&c.cfg, &c.keys, man, appr, 0, &got, &code, err, sizeof(err)), 0);
	assert_string_equal(got.vendor, "vendor-a");
	assert_string_equal(got.variant, "sw");
	assert_int_equal(got.version_number, 2);
	assert_string_equal(got.sha256, m.sha256);

	/* Approval missing, or signed by the vendor instead of the operator. */
	expect_cdcs(&c, man, NULL, "not_approved");
	x = cdcs_approve(fx->vendor_a, &m, man);
	expect_cdcs(&c, man, x, "not_approved");
	free(x);
	/* A manifest of an unknown vendor, even approved by the operator. */
	m2 = cdcs_claims("vendor-x", "sw", "linux-x86_64", 2, "image bytes");
	expect_approved(fx, &c, fx->vendor_x, &m2, "unknown_vendor");
	/* vendor-a's name, another key. */
	expect_approved(fx, &c, fx->vendor_x, &m, "bad_signature");
	/* Another platform. */
	m2 = cdcs_claims("vendor-a", "sw", "android-arm64", 2, "image bytes");
	expect_approved(fx, &c, fx->vendor_a, &m2, "wrong_platform");
	/* A valid approval, but of another manifest (same identity, other bytes). */
	m2 = cdcs_claims("vendor-a", "sw", "linux-x86_64", 2, "other bytes");
	man2 = cdcs_sign(fx->vendor_a, &m2);
	expect_cdcs(&c, man2, appr, "approval_mismatch");
	appr2 = cdcs_approve(fx->operator_key, &m2, man2);
	expect_cdcs(&c, man, appr2, "approval_mismatch");
	free(man2);
	free(appr2);
	/* Another ABI (signed by hand: the signing side refuses to make one). */
	assert_non_null(j = cdcsimg_manifest_json(&m));
	json_object_set_new(j, "abi", json_integer(2));
	json_object_set_new(j, "iss", json_string("vendor-a"));
	json_object_set_new(j, "aud", json_string(CDCSIMG_AUD));
	json_object_set_new(j, "sub", json_string(CDCSIMG_SUB));
	assert_non_null(man2 = jose_sign(fx->vendor_a, NULL, j, 3600, err, sizeof(err)));
	json_decref(j);
	expect_cdcs(&c, man2, appr, "bad_claims");
	free(man2);
	/* Anti-rollback: the highest version ever installed is the reference. */
	put_highest(&c, "vendor-a", 2);
	expect_cdcs(&c, man, appr, NULL); /* the same version again */
	put_highest(&c, "vendor-a", 3);
	expect_cdcs(&c, man, appr, "rollback");
	assert_int_equal(dev_cdcs_highest(&c.cfg, "vendor-a", "sample-ca"), 3);
	assert_int_equal(dev_cdcs_highest(&c.cfg, "vendor-b", "sample-ca"), 0);
	free(man);
	free(appr);
	cdcs_unload(&c);

	/* A device configured without keys refuses everything. */
	write_conf(fx, base_conf(fx));
	if (dev_config_load(fx->conf, &c.cfg, err, sizeof(err)) == -1 ||
	    dev_cdcs_keys_load(&c.cfg, &c.keys, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	m = cdcs_claims("vendor-a", "sw", "linux-x86_64", 4, "image bytes");
	man = cdcs_sign(fx->vendor_a, &m);
	appr = cdcs_approve(fx->operator_key, &m, man);
	expect_cdcs(&c, man, appr, "unknown_vendor");
	free(man);
	free(appr);
	cdcs_unload(&c);
}

/* The files of state_dir/cdcs/vendor-a/sample-ca that are not "highest" or "current". */
static void expect_versions(struct cdcs_fx *c, const char *want)
{
	char dir[PATH_MAX], got[1024] = "";
	struct dirent **v;
	int n, i;

	snprintf(dir, sizeof(dir), "%s/cdcs/vendor-a/sample-ca", c->cfg.state_dir);
	n = scandir(dir, &v, NULL, alphasort);
	assert_true(n >= 0);
	for (i = 0; i < n; i++) {
		if (strcmp(v[i]->d_name, ".") != 0 && strcmp(v[i]->d_name, "..") != 0 &&
		    strcmp(v[i]->d_name, "highest") != 0 && strcmp(v[i]->d_name, "current") != 0) {
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%.64s ",
			         v[i]->d_name);
		}
		free(v[i]);
	}
	free(v);
	if (strcmp(got, want) != 0)
		fail_msg("versions '%s', want '%s'", got, want);
}

/* Download (a part with content), install and, when commit, personalize and switch. */
static int cdcs_install(struct fx *fx, struct cdcs_fx *c, const char *variant, int64_t vn,
                        const char *content, const char *signed_content, int commit,
                        const char **code, struct dev_cdcs_inst *inst)
{
	struct cdcsimg_manifest m = cdcs_claims("vendor-a", variant, "linux-x86_64", vn,
	                                        signed_content),
	                        v;
	char part[PATH_MAX], err[512], *man = cdcs_sign(fx->vendor_a, &m),
	                               *appr = cdcs_approve(fx->operator_key, &m, man);
	json_t *rights, *st;
	int rc = -1;

	if (dev_cdcs_verify(&c->cfg, &c->keys, man, appr, 0, &v, code, err, sizeof(err)) == -1)
		goto out;
	assert_int_equal(dev_cdcs_part_path(&c->cfg, &v, part, sizeof(part)), 0);
	assert_non_null(strstr(part, "/cdcs/.download/vendor-a_sample-ca_"));
	put(part, content, 0600);
	if (dev_cdcs_install(&c->cfg, part, man, appr, &v, inst, code, err, sizeof(err)) == -1) {
		/* Nothing half-installed, and the (complete but wrong) part is gone. */
		assert_int_equal(access(part, F_OK), -1);
		goto out;
	}
	assert_int_equal(access(part, F_OK), -1); /* moved in */
	if (!commit) {
		rc = 0;
		goto out;
	}
	assert_non_null(rights = json_pack("[s, s]", "basic", "premium"));
	assert_non_null(
	    st = dev_cdcs_state_json(&v, 1, "vendor-a-0123", rights, "p-1", "ab12", 1000));
	rc = dev_cdcs_commit(inst, st, err, sizeof(err));
	if (rc == -1)
		*code = "commit_failed";
	json_decref(rights);
	json_decref(st);
out:
	free(man);
	free(appr);
	return rc;
}

static void expect_current(struct cdcs_fx *c, int64_t vn, const char *variant, const char *content)
{
	char dir[PATH_MAX], p[PATH_MAX + 64], err[256], *got;
	struct stat sb;
	json_t *st;
	size_t len;

	assert_non_null(st = dev_cdcs_state(&c->cfg, "vendor-a", "sample-ca"));
	assert_int_equal(json_integer_value(json_object_get(st, "version_number")), vn);
	assert_string_equal(json_string_value(json_object_get(st, "variant")), variant);
	assert_true(json_is_true(json_object_get(st, "personalized")));
	assert_string_equal(json_string_value(json_object_get(st, "cdcs_id")), "vendor-a-0123");
	assert_int_equal(json_array_size(json_object_get(st, "rights")), 2);
	/* What revocations are checked against later: the kind and the key that verified it. */
	assert_string_equal(json_string_value(json_object_get(st, "kind")), "ca");
	assert_string_equal(json_string_value(json_object_get(st, "key_sha256")), "ab12");
	json_decref(st);
	assert_int_equal(dev_cdcs_current_dir(&c->cfg, "vendor-a", "sample-ca", dir, sizeof(dir)),
	                 0);
	snprintf(p, sizeof(p), "%s/cdcs.so", dir);
	assert_non_null(got = file_read(p, 4096, &len, err, sizeof(err)));
	assert_string_equal(got, content);
	free(got);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0755);
	snprintf(p, sizeof(p), "%s/store", dir);
	assert_int_equal(stat(p, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(p, sizeof(p), "%s/manifest.jws", dir);
	assert_int_equal(access(p, R_OK), 0);
	snprintf(p, sizeof(p), "%s/approval.jws", dir);
	assert_int_equal(access(p, R_OK), 0);
}

static void test_cdcs_install(void **state)
{
	struct fx *fx = *state;
	struct dev_cdcs_inst inst;
	struct cdcs_fx c;
	const char *code = NULL;
	char p[PATH_MAX], err[256], keep[64];
	const char *keepv[1];
	struct stat sb;
	json_t *all;

	cdcs_load(fx, &c);
	assert_null(dev_cdcs_state(&c.cfg, "vendor-a", "sample-ca"));
	assert_int_equal(json_array_size(all = dev_cdcs_list(&c.cfg)), 0);
	json_decref(all);

	/* The downloaded bytes are not what was signed: nothing installed. */
	assert_int_equal(cdcs_install(fx, &c, "sw", 1, "evil v1", "good v1", 0, &code, &inst), -1);
	assert_string_equal(code, "bad_digest");
	expect_versions(&c, "");
	assert_int_equal(cdcs_install(fx, &c, "sw", 1, "good v1+", "good v1", 0, &code, &inst), -1);
	assert_string_equal(code, "bad_size");
	expect_versions(&c, "");
	assert_null(dev_cdcs_state(&c.cfg, "vendor-a", "sample-ca"));

	/* v1: installed, personalized, current. */
	if (cdcs_install(fx, &c, "sw", 1, "good v1", "good v1", 1, &code, &inst) == -1)
		fail_msg("%s", code);
	expect_current(&c, 1, "sw", "good v1");
	expect_versions(&c, "1 ");
	assert_int_equal(dev_cdcs_highest(&c.cfg, "vendor-a", "sample-ca"), 1);
	assert_int_equal(json_array_size(all = dev_cdcs_list(&c.cfg)), 1);
	json_decref(all);

	/* v2 installed, then its personalization fails: v2 goes, v1 stays current. */
	assert_int_equal(cdcs_install(fx, &c, "sw", 2, "good v2", "good v2", 0, &code, &inst), 0);
	expect_versions(&c, ".new-2 1 ");
	dev_cdcs_abort(&inst);
	expect_versions(&c, "1 ");
	expect_current(&c, 1, "sw", "good v1");
	assert_int_equal(dev_cdcs_highest(&c.cfg, "vendor-a", "sample-ca"), 1);

	/* A commit that fails (here: the version vanished under it) leaves v1 current. */
	assert_int_equal(cdcs_install(fx, &c, "sw", 2, "good v2", "good v2", 0, &code, &inst), 0);
	tu_rmtree(inst.dir);
	{
		json_t *st = dev_cdcs_state_json(&inst.m, 1, NULL, NULL, NULL, NULL, 1);

		assert_int_equal(dev_cdcs_commit(&inst, st, err, sizeof(err)), -1);
		json_decref(st);
	}
	expect_versions(&c, "1 ");
	expect_current(&c, 1, "sw", "good v1");

	/* v2 for real: current switches, v1 is removed only then. */
	if (cdcs_install(fx, &c, "sw", 2, "good v2", "good v2", 1, &code, &inst) == -1)
		fail_msg("%s", code);
	expect_current(&c, 2, "sw", "good v2");
	expect_versions(&c, "2 ");
	assert_int_equal(dev_cdcs_highest(&c.cfg, "vendor-a", "sample-ca"), 2);

	/* The same version_number in another variant replaces the current one in place. */
	if (cdcs_install(fx, &c, "hw", 2, "good v2 hw", "good v2 hw", 1, &code, &inst) == -1)
		fail_msg("%s", code);
	expect_current(&c, 2, "hw", "good v2 hw");
	expect_versions(&c, "2 ");

	/* Leftovers of an interrupted run go; current stays. */
	snprintf(p, sizeof(p), "%s/cdcs/vendor-a/sample-ca/.new-5", c.cfg.state_dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/cdcs/vendor-a/sample-ca/7", c.cfg.state_dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/cdcs/vendor-a/sample-ca/7/store", c.cfg.state_dir);
	assert_int_equal(mkdir(p, 0700), 0);
	expect_versions(&c, ".new-5 2 7 ");
	dev_cdcs_cleanup(&c.cfg);
	expect_versions(&c, "2 ");
	expect_current(&c, 2, "hw", "good v2 hw");

	/* Old downloads go, the one being resumed stays. */
	snprintf(p, sizeof(p), "%s/cdcs/.download/vendor-a_sample-ca_sw_1.part", c.cfg.state_dir);
	put(p, "old", 0600);
	snprintf(p, sizeof(p), "%s/cdcs/.download/vendor-a_sample-ca_sw_3.part", c.cfg.state_dir);
	put(p, "resume me", 0600);
	snprintf(keep, sizeof(keep), "vendor-a_sample-ca_sw_3.part");
	keepv[0] = keep;
	dev_cdcs_parts_prune(&c.cfg, keepv, 1);
	assert_int_equal(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/cdcs/.download/vendor-a_sample-ca_sw_1.part", c.cfg.state_dir);
	assert_int_equal(access(p, F_OK), -1);

	/* Removal: nothing left but highest, so an older version is still a rollback. */
	assert_int_equal(dev_cdcs_remove(&c.cfg, "vendor-a", "sample-ca", err, sizeof(err)), 0);
	expect_versions(&c, "");
	snprintf(p, sizeof(p), "%s/cdcs/vendor-a/sample-ca/current", c.cfg.state_dir);
	assert_int_equal(lstat(p, &sb), -1);
	assert_null(dev_cdcs_state(&c.cfg, "vendor-a", "sample-ca"));
	assert_int_equal(dev_cdcs_highest(&c.cfg, "vendor-a", "sample-ca"), 2);
	assert_int_equal(cdcs_install(fx, &c, "sw", 1, "good v1", "good v1", 1, &code, &inst), -1);
	assert_string_equal(code, "rollback");
	assert_int_equal(dev_cdcs_remove(&c.cfg, "vendor-a", "sample-ca", err, sizeof(err)), 0);
	assert_int_equal(dev_cdcs_remove(&c.cfg, "../x", "sample-ca", err, sizeof(err)), -1);
	cdcs_unload(&c);
}

/* --- the CPE link (issue 5) ------------------------------------------------------------ */

static json_t *cpe_conf(const struct fx *fx, const char *url)
{
	json_t *j = base_conf(fx);

	json_object_set_new(
	    j, "cpe", json_pack("{s:s, s:s}", "pairing_url", url, "ca", "/nonexistent/cpe-ca.crt"));
	return j;
}

/* Write j as the config and load it; the test fails if it does not load. */
static void load_conf(struct fx *fx, json_t *j, struct dev_config *cfg)
{
	char err[1024];

	write_conf(fx, j);
	if (dev_config_load(fx->conf, cfg, err, sizeof(err)) == -1)
		fail_msg("%s", err);
}

static void test_cpe_config(void **state)
{
	struct fx *fx = *state;
	struct dev_config cfg;
	json_t *j;

	load_conf(fx, base_conf(fx), &cfg);
	assert_null(cfg.cpe.pairing_url);
	assert_null(cfg.cpe.ca);
	dev_config_free(&cfg);
	load_conf(fx, cpe_conf(fx, "https://127.0.0.1:7441//"), &cfg);
	assert_string_equal(cfg.cpe.pairing_url, "https://127.0.0.1:7441");
	assert_string_equal(cfg.cpe.ca, "/nonexistent/cpe-ca.crt");
	dev_config_free(&cfg);

	expect_conf_error(fx, cpe_conf(fx, "http://127.0.0.1:7441"), "'cpe.pairing_url'");
	expect_conf_error(fx, cpe_conf(fx, "https://127.0.0.1:7441/a b"), "'cpe.pairing_url'");
	j = cpe_conf(fx, "https://127.0.0.1:7441");
	json_object_del(json_object_get(j, "cpe"), "ca");
	expect_conf_error(fx, j, "'cpe.ca'");
	j = cpe_conf(fx, "https://127.0.0.1:7441");
	json_object_set_new(json_object_get(j, "cpe"), "pin", json_string("123456"));
	expect_conf_error(fx, j, "'cpe.pin'");
	j = base_conf(fx);
	json_object_set_new(j, "cpe", json_string("https://127.0.0.1:7441"));
	expect_conf_error(fx, j, "'cpe'");
}

static void load_cpe_cfg(struct fx *fx, struct dev_config *cfg, int with_cpe)
{
	char err[1024];

	load_conf(fx, with_cpe ? cpe_conf(fx, "https://127.0.0.1:7441") : base_conf(fx), cfg);
	if (dev_dirs(cfg, err, sizeof(err)) == -1)
		fail_msg("%s", err);
}

static void pair_record(struct dev_config *cfg, struct dev_link *l)
{
	char err[1024];
	EVP_PKEY *key;
	X509 *cert;

	assert_int_equal(dev_link_new(HW, &key, &cert, err, sizeof(err)), 0);
	memset(l, 0, sizeof(*l));
	snprintf(l->cpe, sizeof(l->cpe), "cpe-0001");
	snprintf(l->relay_url, sizeof(l->relay_url), "https://127.0.0.1:7442");
	l->paired_at = 1700000000;
	assert_int_equal(dev_link_spki(cert, NULL, l->link_fp), 0);
	if (dev_link_save(cfg, key, cert, l, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	EVP_PKEY_free(key);
	X509_free(cert);
}

static void test_link_credential(void **state)
{
	struct fx *fx = *state;
	struct dev_config cfg;
	struct dev_link l, saved;
	char err[1024], cn[128], fp[65], path[PATH_MAX];
	unsigned char raw[32];
	EVP_PKEY *key, *pub;
	X509 *cert;
	struct stat sb;
	time_t now = time(NULL);

	/* A self-signed certificate for hw_id, valid a year. */
	assert_int_equal(dev_link_new(HW, &key, &cert, err, sizeof(err)), 0);
	assert_int_equal(pki_cert_cn(cert, cn, sizeof(cn)), 0);
	assert_string_equal(cn, HW);
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)), 0);
	assert_non_null(pub = X509_get0_pubkey(cert));
	assert_int_equal(EVP_PKEY_eq(pub, key), 1);
	assert_int_equal(X509_verify(cert, key), 1);
	assert_int_equal(X509_self_signed(cert, 1), 1);
	/* What sd-if-agent checks of a link certificate. */
	assert_int_equal(X509_check_issued(cert, cert), X509_V_OK);
	assert_true(X509_cmp_time(X509_get0_notAfter(cert), &(time_t){now + 364 * 86400}) > 0);
	assert_true(X509_cmp_time(X509_get0_notAfter(cert), &(time_t){now + 366 * 86400}) < 0);
	assert_int_equal(dev_link_spki(cert, raw, fp), 0);
	assert_int_equal(strlen(fp), 64);
	EVP_PKEY_free(key);
	X509_free(cert);

	/* Nothing stored: not paired, no error. */
	load_cpe_cfg(fx, &cfg, 1);
	assert_int_equal(dev_link_load(&cfg, &l, err, sizeof(err)), 0);
	assert_false(l.paired);
	pair_record(&cfg, &saved);
	assert_int_equal(dev_link_load(&cfg, &l, err, sizeof(err)), 0);
	assert_true(l.paired);
	assert_string_equal(l.cpe, "cpe-0001");
	assert_string_equal(l.relay_url, "https://127.0.0.1:7442");
	assert_string_equal(l.link_fp, saved.link_fp);
	assert_int_equal(l.paired_at, 1700000000);
	assert_int_equal(stat(l.key, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_non_null(key = pki_key_load(l.key, err, sizeof(err)));
	EVP_PKEY_free(key);
	assert_int_equal(dev_path(path, sizeof(path), &cfg, "link/pairing.json"), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 077, 0);

	/* Re-pairing replaces key, certificate and record together. */
	pair_record(&cfg, &saved);
	assert_int_equal(dev_link_load(&cfg, &l, err, sizeof(err)), 0);
	assert_string_equal(l.link_fp, saved.link_fp);

	/* A record that names another key, another device, or is garbage: an error. */
	put(path,
	    "{\"cpe\":\"cpe-0001\",\"hw_id\":\"" HW "\",\"link_fp\":"
	    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
	    "\"relay_url\":\"https://127.0.0.1:7442\",\"paired_at\":1}",
	    0600);
	assert_int_equal(dev_link_load(&cfg, &l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "link_fp"));
	assert_false(l.paired);
	put(path, "{\"cpe\":\"cpe-0001\",\"hw_id\":\"hw-0002\"}", 0600);
	assert_int_equal(dev_link_load(&cfg, &l, err, sizeof(err)), -1);
	put(path, "not json", 0600);
	assert_int_equal(dev_link_load(&cfg, &l, err, sizeof(err)), -1);
	/* A key readable by others is refused. */
	pair_record(&cfg, &saved);
	assert_int_equal(chmod(l.key, 0644), 0);
	assert_int_equal(dev_link_load(&cfg, &l, err, sizeof(err)), -1);
	assert_int_equal(chmod(l.key, 0600), 0);
	assert_int_equal(dev_link_load(&cfg, &l, err, sizeof(err)), 0);
	dev_config_free(&cfg);

	/* Without a cpe section the record is not used. */
	load_cpe_cfg(fx, &cfg, 0);
	assert_int_equal(dev_link_load(&cfg, &l, err, sizeof(err)), 0);
	assert_false(l.paired);
	dev_config_free(&cfg);
}

static void test_pair_proof(void **state)
{
	unsigned char exporter[PAIRPROOF_EXPORTER_LEN], spki[32];
	char hex[65];

	(void)state;
	memset(exporter, 1, sizeof(exporter));
	memset(spki, 2, sizeof(spki));
	/* python3: hmac.new(b"123456", b"\x01"*32 + b"\x02"*32 + b"hw-0001", sha256) */
	assert_int_equal(pairproof_make("123456", exporter, spki, HW, hex), 0);
	assert_string_equal(hex,
	                    "4657e108db41132eb1bffc775a4408c5fbdfb6164cdacf6aabb55c71704dd267");
	assert_int_equal(pairproof_make("123457", exporter, spki, HW, hex), 0);
	assert_string_not_equal(hex,
	                        "4657e108db41132eb1bffc775a4408c5fbdfb6164cdacf6aabb55c71704dd267");
	/* dm-app takes only 6 digits (dev_pin_ok); the proof itself refuses no PIN at all. */
	assert_false(dev_pin_ok("12345"));
	assert_false(dev_pin_ok("1234567"));
	assert_false(dev_pin_ok("12345a"));
	assert_int_equal(pairproof_make("", exporter, spki, HW, hex), -1);
	assert_true(dev_pin_ok("000000"));
	assert_false(dev_pin_ok(""));
	assert_false(dev_pin_ok("12 456"));
}

/* Drive both ends of a TLS handshake over a socketpair in one thread. */
static void tls_pair_handshake(SSL *c, SSL *s)
{
	int dc = 0, ds = 0, i, r;

	for (i = 0; i < 1000 && (!dc || !ds); i++) {
		if (!dc) {
			r = SSL_connect(c);
			if (r == 1)
				dc = 1;
			else
				assert_int_equal(SSL_get_error(c, r), SSL_ERROR_WANT_READ);
		}
		if (!ds) {
			r = SSL_accept(s);
			if (r == 1)
				ds = 1;
			else
				assert_int_equal(SSL_get_error(s, r), SSL_ERROR_WANT_READ);
		}
	}
	assert_true(dc && ds);
}

static void write_leaf(const struct fx *fx, const char *name, enum pki_profile profile, X509 *ca,
                       EVP_PKEY *ca_key, struct tls_conf *tc, char *cert, char *key)
{
	static const char *const ips[] = {"127.0.0.1", NULL};
	struct pki_issue req;
	char err[512], file[64];
	EVP_PKEY *k;
	X509 *x;

	memset(&req, 0, sizeof(req));
	req.profile = profile;
	req.subject.cn = name;
	req.ips = ips;
	req.days = 2;
	assert_non_null(k = pki_key_new());
	assert_non_null(x = pki_issue(&req, k, ca, ca_key, err, sizeof(err)));
	snprintf(file, sizeof(file), "%s.crt", name);
	in_dir(cert, fx, file);
	snprintf(file, sizeof(file), "%s.key", name);
	in_dir(key, fx, file);
	assert_int_equal(pki_certs_write(cert, &x, 1, err, sizeof(err)), 0);
	assert_int_equal(pki_key_write(key, k, err, sizeof(err)), 0);
	tc->cert = cert;
	tc->key = key;
	X509_free(x);
	EVP_PKEY_free(k);
}

/* Both ends of one session compute the same exporter, and another session another one. */
static void test_pair_exporter(void **state)
{
	struct fx *fx = *state;
	struct pki_issue req;
	struct tls_conf sc, cc;
	char err[512], ca_path[PATH_MAX], scert[PATH_MAX], skey[PATH_MAX], ccert[PATH_MAX],
	    ckey[PATH_MAX];
	unsigned char a[PAIRPROOF_EXPORTER_LEN], b[PAIRPROOF_EXPORTER_LEN],
	    first[PAIRPROOF_EXPORTER_LEN], spki[32];
	char pa[65], pb[65];
	SSL_CTX *sctx, *cctx;
	SSL *s, *c;
	EVP_PKEY *ca_key;
	X509 *ca;
	int sv[2], round;

	memset(&req, 0, sizeof(req));
	memset(&sc, 0, sizeof(sc));
	memset(&cc, 0, sizeof(cc));
	req.profile = PKI_PROFILE_ROOT;
	req.subject.cn = "test cpe ca";
	req.days = 2;
	assert_non_null(ca_key = pki_key_new());
	assert_non_null(ca = pki_issue(&req, ca_key, NULL, ca_key, err, sizeof(err)));
	in_dir(ca_path, fx, "cpe-ca.crt");
	assert_int_equal(pki_certs_write(ca_path, &ca, 1, err, sizeof(err)), 0);
	write_leaf(fx, "cpe-0001", PKI_PROFILE_SERVER, ca, ca_key, &sc, scert, skey);
	write_leaf(fx, "app", PKI_PROFILE_CLIENT, ca, ca_key, &cc, ccert, ckey);
	sc.ca = cc.ca = ca_path;
	assert_non_null(sctx = tls_server_ctx(&sc, err, sizeof(err)));
	assert_non_null(cctx = tls_client_ctx(&cc, err, sizeof(err)));
	memset(spki, 3, sizeof(spki));
	for (round = 0; round < 2; round++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
		assert_non_null(s = SSL_new(sctx));
		assert_non_null(c = SSL_new(cctx));
		assert_int_equal(SSL_set_fd(s, sv[0]), 1);
		assert_int_equal(SSL_set_fd(c, sv[1]), 1);
		tls_pair_handshake(c, s);
		assert_int_equal(pairproof_exporter(c, a), 0);
		assert_int_equal(SSL_export_keying_material(
		                     s, b, sizeof(b), "EXPORTER-opendm-pairing", 23, NULL, 0, 0),
		                 1);
		assert_memory_equal(a, b, sizeof(a));
		assert_int_equal(pairproof_make("424242", a, spki, HW, pa), 0);
		assert_int_equal(pairproof_make("424242", b, spki, HW, pb), 0);
		assert_string_equal(pa, pb);
		if (round == 0)
			memcpy(first, a, sizeof(a));
		else
			assert_memory_not_equal(first, a, sizeof(a));
		SSL_free(s);
		SSL_free(c);
		close(sv[0]);
		close(sv[1]);
	}
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
}

static void test_link_proxy(void **state)
{
	struct fx *fx = *state;
	struct dev_config cfg;
	struct dev_link l, saved;
	struct httpc_conf hc;
	char err[1024], path[PATH_MAX];
	json_t *j;

	/* Not paired: direct, or the configured proxy with the application credential. */
	load_cpe_cfg(fx, &cfg, 1);
	assert_int_equal(dev_path(path, sizeof(path), &cfg, "link/pairing.json"), 0);
	(void)unlink(path);
	memset(&hc, 0, sizeof(hc));
	assert_int_equal(dev_link_httpc_conf(&cfg, &l, &hc, err, sizeof(err)), 0);
	assert_null(hc.proxy);
	assert_ptr_equal(hc.proxy_tls.cert, cfg.tls.cert);
	dev_config_free(&cfg);
	j = cpe_conf(fx, "https://127.0.0.1:7441");
	json_object_set_new(j, "proxy", json_string("https://127.0.0.1:9000"));
	load_conf(fx, j, &cfg);
	assert_int_equal(dev_link_httpc_conf(&cfg, &l, &hc, err, sizeof(err)), 0);
	assert_string_equal(hc.proxy, "https://127.0.0.1:9000");
	assert_string_equal(hc.proxy_tls.cert, "/nonexistent/app.crt");
	assert_string_equal(hc.proxy_tls.key, fx->key);
	assert_string_equal(hc.proxy_tls.ca, "/nonexistent/ca.crt");

	/* Paired: the relay, the link credential, the CPE CA; the server side is untouched. */
	pair_record(&cfg, &saved);
	memset(&hc, 0, sizeof(hc));
	hc.tls = cfg.tls;
	assert_int_equal(dev_link_httpc_conf(&cfg, &l, &hc, err, sizeof(err)), 0);
	assert_string_equal(hc.proxy, "https://127.0.0.1:7442");
	assert_string_equal(hc.proxy_tls.cert, l.cert);
	assert_string_equal(hc.proxy_tls.key, l.key);
	assert_non_null(strstr(hc.proxy_tls.cert, "/link/cert.pem"));
	assert_non_null(strstr(hc.proxy_tls.key, "/link/key.pem"));
	assert_string_equal(hc.proxy_tls.ca, "/nonexistent/cpe-ca.crt");
	assert_null(hc.proxy_tls.crl);
	assert_string_equal(hc.tls.cert, "/nonexistent/app.crt");
	assert_string_equal(hc.tls.ca, "/nonexistent/ca.crt");
	dev_config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config),          cmocka_unit_test(test_manifest),
	    cmocka_unit_test(test_bundle),          cmocka_unit_test(test_install),
	    cmocka_unit_test(test_base64),          cmocka_unit_test(test_cdcs_verify),
	    cmocka_unit_test(test_cdcs_install),    cmocka_unit_test(test_cpe_config),
	    cmocka_unit_test(test_link_credential), cmocka_unit_test(test_pair_proof),
	    cmocka_unit_test(test_pair_exporter),   cmocka_unit_test(test_link_proxy),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
