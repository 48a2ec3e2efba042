/*
 * The device side of revocations (dev_revoke.c): the kept list (verified, newest only,
 * 0600), what it revokes (a version, a vendor key, an installed CDCS by the key recorded at
 * install or by its vendor's current key), and the make-before-break rule for removals.
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
#include "opendm/pki.h"
#include "opendm/revocation.h"

#include "../../src/dm_agent/dev.h"
#include "../../src/dm_agent/dev_cdcs.h"
#include "../../src/dm_agent/dev_revoke.h"
#include "testutil.h"

struct fx {
	char dir[PATH_MAX];
	char conf[PATH_MAX];
	char state[PATH_MAX];
	char kept[PATH_MAX]; /* state_dir/cdcs/revocations.jws */
	EVP_PKEY *operator_key;
	EVP_PKEY *forger; /* signs lists the device must not take */
	EVP_PKEY *vendor_a, *vendor_b;
	char sha_a[65], sha_b[65];
	struct dev_config cfg;
	struct dev_cdcs_keys keys;
};

static void path_in(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	assert_true(n > 0 && n < PATH_MAX);
}

static void put(const char *path, const char *text, mode_t mode)
{
	char err[256];

	if (file_write_atomic(path, text, strlen(text), mode, err, sizeof(err)) == -1)
		fail_msg("%s", err);
}

static void put_pub(const struct fx *fx, const char *name, EVP_PKEY *key, char *out)
{
	char err[256];

	path_in(out, fx->dir, name);
	if (pki_pubkey_write(out, key, err, sizeof(err)) == -1)
		fail_msg("%s", err);
}

static int setup(void **state)
{
	char err[1024], key[PATH_MAX], op[PATH_MAX], va[PATH_MAX], vb[PATH_MAX], agent[PATH_MAX];
	struct fx *fx;
	EVP_PKEY *k;
	json_t *j;
	char *text;

	log_init("test_dev_revoke", LOG_LVL_ERR);
	assert_non_null(fx = calloc(1, sizeof(*fx)));
	assert_int_equal(tu_tmpdir(fx->dir, sizeof(fx->dir), "dev_revoke"), 0);
	path_in(fx->conf, fx->dir, "device.json");
	path_in(fx->state, fx->dir, "state");
	path_in(fx->kept, fx->state, DEV_REVOCATIONS_FILE);
	path_in(key, fx->dir, "app.key");
	assert_non_null(k = pki_key_new());
	assert_int_equal(pki_key_write(key, k, err, sizeof(err)), 0);
	put_pub(fx, "agent.pub", k, agent);
	EVP_PKEY_free(k);
	assert_non_null(fx->operator_key = pki_key_new());
	assert_non_null(fx->forger = pki_key_new());
	assert_non_null(fx->vendor_a = pki_key_new());
	assert_non_null(fx->vendor_b = pki_key_new());
	put_pub(fx, "operator.pub", fx->operator_key, op);
	put_pub(fx, "vendor-a.pub", fx->vendor_a, va);
	put_pub(fx, "vendor-b.pub", fx->vendor_b, vb);
	assert_int_equal(revocation_key_sha256(fx->vendor_a, fx->sha_a), 0);
	assert_int_equal(revocation_key_sha256(fx->vendor_b, fx->sha_b), 0);
	j = json_pack("{s:s, s:s, s:{s:s, s:s, s:b, s:s, s:s}, s:{s:s, s:s, s:s}, s:s, s:s, s:s, "
	              "s:s, s:{s:s, s:s}, s:i}",
	              "hw_id", "hw-0001", "state_dir", fx->state, "capability", "platform",
	              "linux-x86_64", "tee", "software", "secure_video_path", 0, "hdcp", "none",
	              "max_resolution", "fhd", "tls", "cert", "/nonexistent/app.crt", "key", key,
	              "ca", "/nonexistent/ca.crt", "dm_mss_url", "https://127.0.0.1:8441/",
	              "agent_pubkey", agent, "bundle_pubkey", agent, "operator_pubkey", op,
	              "vendor_keys", "vendor-a", va, "vendor-b", vb, "cdcs_interval_s", 0);
	assert_non_null(j);
	assert_non_null(text = json_dumps(j, 0));
	put(fx->conf, text, 0644);
	free(text);
	json_decref(j);
	if (dev_config_load(fx->conf, &fx->cfg, err, sizeof(err)) == -1 ||
	    dev_dirs(&fx->cfg, err, sizeof(err)) == -1 ||
	    dev_cdcs_keys_load(&fx->cfg, &fx->keys, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	dev_cdcs_keys_free(&fx->keys);
	dev_config_free(&fx->cfg);
	EVP_PKEY_free(fx->operator_key);
	EVP_PKEY_free(fx->forger);
	EVP_PKEY_free(fx->vendor_a);
	EVP_PKEY_free(fx->vendor_b);
	tu_rmtree(fx->dir);
	free(fx);
	return 0;
}

/* A list of serial that revokes vendor-a/sample-ca version vn (0: none) and vendor-b's key
 * (when with_key), signed by key: a new JWS. */
static char *list_jws(const struct fx *fx, EVP_PKEY *key, int64_t serial, int64_t vn, int with_key)
{
	struct revocation_version v;
	struct revocation_key k;
	struct revocation_list rl;
	char err[256], *jws;

	memset(&rl, 0, sizeof(rl));
	memset(&v, 0, sizeof(v));
	memset(&k, 0, sizeof(k));
	rl.serial = serial;
	rl.iat = 1700000000;
	snprintf(v.vendor, sizeof(v.vendor), "vendor-a");
	snprintf(v.name, sizeof(v.name), "sample-ca");
	v.version_number = vn;
	snprintf(k.vendor, sizeof(k.vendor), "vendor-b");
	snprintf(k.key_sha256, sizeof(k.key_sha256), "%s", fx->sha_b);
	if (vn > 0) {
		rl.versions = &v;
		rl.n_versions = 1;
	}
	if (with_key) {
		rl.keys = &k;
		rl.n_keys = 1;
	}
	if ((jws = revocation_sign(&rl, key, err, sizeof(err))) == NULL)
		fail_msg("revocation_sign: %s", err);
	return jws;
}

/* The kept file's text (NULL if there is none). */
static char *kept_text(const struct fx *fx)
{
	char err[256];
	size_t len;

	if (access(fx->kept, F_OK) == -1)
		return NULL;
	return file_read(fx->kept, DEV_REVOCATIONS_MAX, &len, err, sizeof(err));
}

static void expect_kept(const struct fx *fx, const char *want)
{
	char *got = kept_text(fx);
	struct stat sb;

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
	assert_int_equal(stat(fx->kept, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
}

static void expect_update(struct fx *fx, struct revocation_list *rl, EVP_PKEY *pub, const char *jws,
                          int want, const char *want_code)
{
	const char *code = NULL;
	char err[512] = "";
	int rc = dev_revocations_update(&fx->cfg, pub, rl, jws, &code, err, sizeof(err));

	if (rc != want)
		fail_msg("update: %d, want %d (%s: %s)", rc, want, code ? code : "-", err);
	if (want == -1 && (code == NULL || strcmp(code, want_code) != 0))
		fail_msg("update: code %s, want %s (%s)", code ? code : "-", want_code, err);
}

static void test_keep_newest(void **state)
{
	struct fx *fx = *state;
	struct revocation_list rl, loaded;
	char err[512], *s2, *s1, *s5, *forged;

	(void)unlink(fx->kept);
	assert_int_equal(
	    dev_revocations_load(&fx->cfg, fx->keys.operator_pub, &rl, err, sizeof(err)), 0);
	assert_int_equal(rl.serial, 0);
	assert_int_equal(rl.n_versions + rl.n_keys, 0);

	s2 = list_jws(fx, fx->operator_key, 2, 3, 0);
	s1 = list_jws(fx, fx->operator_key, 1, 4, 1);
	s5 = list_jws(fx, fx->operator_key, 5, 3, 1);
	forged = list_jws(fx, fx->forger, 9, 0, 0);

	/* The first list: verified, kept 0600, and in force. */
	expect_update(fx, &rl, fx->keys.operator_pub, s2, 1, NULL);
	assert_int_equal(rl.serial, 2);
	assert_true(revocation_version_revoked(&rl, "vendor-a", "sample-ca", 3));
	expect_kept(fx, s2);

	/* Older, or the same serial again: nothing changes. */
	expect_update(fx, &rl, fx->keys.operator_pub, s1, 0, NULL);
	expect_update(fx, &rl, fx->keys.operator_pub, s2, 0, NULL);
	assert_int_equal(rl.serial, 2);
	assert_false(revocation_version_revoked(&rl, "vendor-a", "sample-ca", 4));
	expect_kept(fx, s2);

	/* Not the operator's, not a list, no key to check it: refused, nothing changes. */
	expect_update(fx, &rl, fx->keys.operator_pub, forged, -1, "bad_signature");
	expect_update(fx, &rl, fx->keys.operator_pub, "not.a.list", -1, "bad_signature");
	expect_update(fx, &rl, fx->keys.operator_pub, NULL, -1, "bad_claims");
	expect_update(fx, &rl, NULL, s5, -1, "bad_signature");
	assert_int_equal(rl.serial, 2);
	expect_kept(fx, s2);

	/* A newer one replaces it, in memory and on disk. */
	expect_update(fx, &rl, fx->keys.operator_pub, s5, 1, NULL);
	assert_int_equal(rl.serial, 5);
	assert_true(revocation_key_revoked(&rl, "vendor-b", fx->sha_b));
	expect_kept(fx, s5);

	/* What a restart finds: the same list, verified again. */
	assert_int_equal(
	    dev_revocations_load(&fx->cfg, fx->keys.operator_pub, &loaded, err, sizeof(err)), 1);
	assert_int_equal(loaded.serial, 5);
	assert_true(revocation_version_revoked(&loaded, "vendor-a", "sample-ca", 3));
	revocation_free(&loaded);
	/* Without the operator key nothing kept is trusted. */
	assert_int_equal(dev_revocations_load(&fx->cfg, NULL, &loaded, err, sizeof(err)), 0);
	assert_int_equal(loaded.serial, 0);

	/* A kept file someone else wrote is not taken. */
	put(fx->kept, forged, 0600);
	assert_int_equal(
	    dev_revocations_load(&fx->cfg, fx->keys.operator_pub, &loaded, err, sizeof(err)), -1);
	assert_int_equal(loaded.serial, 0);
	assert_int_equal(loaded.n_versions + loaded.n_keys, 0);
	revocation_free(&loaded);

	revocation_free(&rl);
	free(s2);
	free(s1);
	free(s5);
	free(forged);
	(void)unlink(fx->kept);
}

/* An installed CDCS's state.json, as the agent writes it (key NULL: not recorded). */
static json_t *installed(const char *vendor, const char *name, const char *kind, int64_t vn,
                         const char *key)
{
	json_t *st = json_pack("{s:s, s:s, s:s, s:I, s:b}", "vendor", vendor, "name", name, "kind",
	                       kind, "version_number", (json_int_t)vn, "personalized", 1);

	assert_non_null(st);
	if (key != NULL)
		json_object_set_new(st, "key_sha256", json_string(key));
	return st;
}

static void expect_installed(struct fx *fx, const struct revocation_list *rl,
                             const struct dev_cdcs_keys *k, json_t *st, const char *want)
{
	const char *got = dev_revoked_installed(rl, k, st);

	if ((want == NULL) != (got == NULL) || (want != NULL && strcmp(want, got) != 0))
		fail_msg("%s/%s v%lld: %s, want %s",
		         json_string_value(json_object_get(st, "vendor")),
		         json_string_value(json_object_get(st, "name")),
		         (long long)json_integer_value(json_object_get(st, "version_number")),
		         got ? got : "not revoked", want ? want : "not revoked");
	json_decref(st);
	(void)fx;
}

static void test_what_is_revoked(void **state)
{
	struct fx *fx = *state;
	struct revocation_list rl, none;
	struct dev_cdcs_keys nokeys;
	const char *code = NULL;
	char err[512], sha[65], *jws;

	memset(&none, 0, sizeof(none));
	memset(&nokeys, 0, sizeof(nokeys));
	jws = list_jws(fx, fx->operator_key, 1, 3, 1);
	assert_int_equal(
	    revocation_verify(jws, fx->keys.operator_pub, &rl, &code, err, sizeof(err)), 0);
	free(jws);

	/* The ring's keys are what verify manifests: their digests are what a list names. */
	assert_int_equal(dev_cdcs_key_sha256(&fx->keys, "vendor-b", sha), 0);
	assert_string_equal(sha, fx->sha_b);
	assert_int_equal(dev_cdcs_key_sha256(&fx->keys, "vendor-a", sha), 0);
	assert_string_equal(sha, fx->sha_a);
	assert_int_equal(dev_cdcs_key_sha256(&fx->keys, "vendor-x", sha), -1);

	/* Offers: the version listed, exactly; a key listed for its own vendor only. */
	assert_string_equal(dev_revoked(&rl, "vendor-a", "sample-ca", 3, fx->sha_a), "version");
	assert_string_equal(dev_revoked(&rl, "vendor-a", "sample-ca", 3, NULL), "version");
	assert_null(dev_revoked(&rl, "vendor-a", "sample-ca", 4, fx->sha_a));
	assert_null(dev_revoked(&rl, "vendor-a", "sample-drm", 3, fx->sha_a));
	assert_null(dev_revoked(&rl, "vendor-b", "sample-ca", 3, NULL));
	assert_string_equal(dev_revoked(&rl, "vendor-b", "sample-ca", 1, fx->sha_b), "vendor_key");
	assert_string_equal(dev_revoked(&rl, "vendor-b", "sample-drm", 7, fx->sha_b), "vendor_key");
	assert_null(dev_revoked(&rl, "vendor-a", "sample-ca", 1, fx->sha_b));
	assert_null(dev_revoked(&rl, "vendor-b", "sample-ca", 1, fx->sha_a));
	assert_null(dev_revoked(&none, "vendor-a", "sample-ca", 3, fx->sha_b));

	/* Installed: by the key recorded at install... */
	expect_installed(fx, &rl, &fx->keys, installed("vendor-b", "sample-ca", "ca", 1, fx->sha_b),
	                 "vendor_key");
	/* ...which wins over the ring's current key (vendor-b's key was rotated since)... */
	expect_installed(fx, &rl, &fx->keys, installed("vendor-b", "sample-ca", "ca", 1, fx->sha_a),
	                 NULL);
	/* ...or, not recorded (installed before), by the key the ring holds for its vendor. */
	expect_installed(fx, &rl, &fx->keys, installed("vendor-b", "sample-ca", "ca", 1, NULL),
	                 "vendor_key");
	expect_installed(fx, &rl, &nokeys, installed("vendor-b", "sample-ca", "ca", 1, NULL), NULL);
	expect_installed(fx, &rl, NULL, installed("vendor-b", "sample-ca", "ca", 1, NULL), NULL);
	expect_installed(fx, &rl, &fx->keys, installed("vendor-a", "sample-ca", "ca", 3, fx->sha_a),
	                 "version");
	expect_installed(fx, &rl, &fx->keys, installed("vendor-a", "sample-ca", "ca", 2, fx->sha_a),
	                 NULL);
	expect_installed(fx, &none, &fx->keys, installed("vendor-b", "sample-ca", "ca", 1, NULL),
	                 NULL);
	assert_null(dev_revoked_installed(&rl, &fx->keys, NULL));
	revocation_free(&rl);
}

static void test_make_before_break(void **state)
{
	(void)state;
	assert_int_equal(dev_kind_bit("ca"), DEV_KIND_CA);
	assert_int_equal(dev_kind_bit("drm"), DEV_KIND_DRM);
	assert_int_equal(dev_kind_bit("tv"), DEV_KIND_UNKNOWN);
	assert_int_equal(dev_kind_bit(NULL), DEV_KIND_UNKNOWN);

	/* Nothing failed: every removal goes ahead. */
	assert_false(dev_removal_postponed("ca", 0));
	assert_false(dev_removal_postponed("drm", 0));
	assert_false(dev_removal_postponed(NULL, 0));
	/* A CA install failed: the old CA stays, the DRM removal goes ahead. */
	assert_true(dev_removal_postponed("ca", DEV_KIND_CA));
	assert_false(dev_removal_postponed("drm", DEV_KIND_CA));
	/* And the other way round. */
	assert_true(dev_removal_postponed("drm", DEV_KIND_DRM));
	assert_false(dev_removal_postponed("ca", DEV_KIND_DRM));
	assert_true(dev_removal_postponed("ca", DEV_KIND_CA | DEV_KIND_DRM));
	assert_true(dev_removal_postponed("drm", DEV_KIND_CA | DEV_KIND_DRM));
	/* A failure whose kind is unknown might be anything's replacement. */
	assert_true(dev_removal_postponed("ca", DEV_KIND_UNKNOWN));
	assert_true(dev_removal_postponed("drm", DEV_KIND_UNKNOWN));
	/* A client of unknown kind waits for any failure. */
	assert_true(dev_removal_postponed(NULL, DEV_KIND_DRM));
	assert_true(dev_removal_postponed("tv", DEV_KIND_CA));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keep_newest),
	    cmocka_unit_test(test_what_is_revoked),
	    cmocka_unit_test(test_make_before_break),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
