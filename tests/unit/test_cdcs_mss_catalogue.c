/*
 * Unit tests for src/cdcs_mss/catalogue.c and src/common/cdcsimg.c: what makes a published
 * directory a registrable CDCS image (vendor signature, operator approval and its binding,
 * path, size and digest), and the claims dmctl builds for it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "opendm/cdcs.h"
#include "opendm/cdcsimg.h"
#include "opendm/file.h"
#include "opendm/jose.h"
#include "opendm/pki.h"
#include "../../src/cdcs_mss/cdcs_mss.h"
#include "testutil.h"

#define REL "vendor-a/sample-ca/sw/linux-x86_64/1"

static const char image_data[] = "\x7f"
                                 "ELF pretend CDCS image";

struct fx {
	char dir[512];
	EVP_PKEY *vendor_a, *vendor_b, *op, *other;
	struct cdcs_mss_verifier v;
	struct cdcsimg_manifest m;
};

static void write_text(const char *path, const char *text)
{
	char err[256];

	assert_int_equal(file_write_atomic(path, text, strlen(text), 0644, err, sizeof(err)), 0);
}

static void fx_path(const struct fx *f, const char *rel, const char *file, char *out, size_t len)
{
	snprintf(out, len, "%s/%s%s%s", f->dir, rel, file != NULL ? "/" : "", file ? file : "");
}

/* mkdir -p of dir/rel and the image file (content data). */
static void put_image(struct fx *f, const char *rel, const void *data, size_t len)
{
	char path[1024], err[256];

	fx_path(f, rel, NULL, path, sizeof(path));
	assert_int_equal(tu_mkdir_p(path), 0);
	fx_path(f, rel, "image", path, sizeof(path));
	assert_int_equal(file_write_atomic(path, data, len, 0644, err, sizeof(err)), 0);
}

/* Sign m with vkey (and approve with okey unless NULL) into dir/rel. */
static void put_signed(struct fx *f, const char *rel, const struct cdcsimg_manifest *m,
                       EVP_PKEY *vkey, EVP_PKEY *okey)
{
	char path[1024], err[256], *jws, *appr;

	assert_non_null(jws = cdcsimg_manifest_sign(vkey, m, 3600, err, sizeof(err)));
	fx_path(f, rel, "manifest.jws", path, sizeof(path));
	write_text(path, jws);
	fx_path(f, rel, "approval.jws", path, sizeof(path));
	unlink(path);
	if (okey != NULL) {
		assert_non_null(appr = cdcsimg_approval_sign(okey, m, jws, 3600, err, sizeof(err)));
		write_text(path, appr);
		free(appr);
	}
	free(jws);
}

/* A complete, good publication of f->m at REL. */
static void publish_good(struct fx *f)
{
	put_image(f, REL, image_data, sizeof(image_data) - 1);
	put_signed(f, REL, &f->m, f->vendor_a, f->op);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[1024], err[256];
	json_t *vk;

	assert_non_null(f);
	assert_int_equal(tu_tmpdir(f->dir, sizeof(f->dir), "cdcs_mss_catalogue"), 0);
	assert_non_null(f->vendor_a = pki_key_new());
	assert_non_null(f->vendor_b = pki_key_new());
	assert_non_null(f->op = pki_key_new());
	assert_non_null(f->other = pki_key_new());
	snprintf(path, sizeof(path), "%s/vendor-a.pub", f->dir);
	assert_int_equal(pki_pubkey_write(path, f->vendor_a, err, sizeof(err)), 0);
	/* Only vendor-a is known: vendor-b's key is not in the ring. */
	assert_non_null(vk = json_pack("{s:s}", "vendor-a", path));
	assert_int_equal(cdcsimg_keyring_load(&f->v.vendors, vk, err, sizeof(err)), 0);
	json_decref(vk);
	assert_true(EVP_PKEY_up_ref(f->op));
	f->v.operator_pub = f->op;

	snprintf(f->m.vendor, sizeof(f->m.vendor), "vendor-a");
	snprintf(f->m.name, sizeof(f->m.name), "sample-ca");
	snprintf(f->m.kind, sizeof(f->m.kind), "ca");
	snprintf(f->m.variant, sizeof(f->m.variant), "sw");
	snprintf(f->m.platform, sizeof(f->m.platform), "linux-x86_64");
	snprintf(f->m.version, sizeof(f->m.version), "1.0.0");
	f->m.version_number = 1;
	f->m.abi = ODM_CDCS_ABI_VERSION;
	f->m.size = (int64_t)sizeof(image_data) - 1;
	cdcsimg_sha256_hex(image_data, sizeof(image_data) - 1, f->m.sha256);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	cdcsimg_keyring_free(&f->v.vendors);
	EVP_PKEY_free(f->v.operator_pub);
	EVP_PKEY_free(f->vendor_a);
	EVP_PKEY_free(f->vendor_b);
	EVP_PKEY_free(f->op);
	EVP_PKEY_free(f->other);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

/* Verify rel and expect a refusal with status and code. */
static void expect_refused(struct fx *f, const char *rel, int want_status, const char *want_code)
{
	struct cdcs_mss_image img;
	const char *code = NULL;
	char err[512];
	int status = 0;

	err[0] = '\0';
	assert_int_equal(cdcs_mss_catalogue_verify(&f->v, f->dir, rel, 0, &img, &status, &code, err,
	                                           sizeof(err)),
	                 -1);
	assert_int_equal(status, want_status);
	assert_non_null(code);
	assert_string_equal(code, want_code);
	assert_true(err[0] != '\0');
	/* Nothing stays allocated on a refusal. */
	assert_null(img.manifest);
	assert_null(img.approval);
}

static void test_good(void **state)
{
	struct fx *f = *state;
	struct cdcs_mss_image img;
	const char *code = "x";
	char err[512], path[1024], *text, sha[65];
	size_t len;
	int status = 0;
	json_t *o;

	publish_good(f);
	assert_int_equal(cdcs_mss_catalogue_verify(&f->v, f->dir, REL, 0, &img, &status, &code, err,
	                                           sizeof(err)),
	                 0);
	assert_int_equal(status, 200);
	assert_null(code);
	assert_string_equal(img.path, REL);
	assert_string_equal(img.m.vendor, "vendor-a");
	assert_string_equal(img.m.name, "sample-ca");
	assert_string_equal(img.m.kind, "ca");
	assert_string_equal(img.m.variant, "sw");
	assert_string_equal(img.m.platform, "linux-x86_64");
	assert_string_equal(img.m.version, "1.0.0");
	assert_int_equal(img.m.version_number, 1);
	assert_int_equal(img.m.abi, ODM_CDCS_ABI_VERSION);
	assert_int_equal(img.m.size, sizeof(image_data) - 1);
	assert_string_equal(img.m.sha256, f->m.sha256);
	assert_true(img.m.exp > img.m.iat);
	assert_true(img.m.jti[0] != '\0');
	/* The texts are the files' (what devices get), and manifest_sha256 is of that text. */
	fx_path(f, REL, "manifest.jws", path, sizeof(path));
	assert_non_null(text = file_read(path, JOSE_MAX_TOKEN, &len, err, sizeof(err)));
	assert_string_equal(img.manifest, text);
	cdcsimg_sha256_hex(text, len, sha);
	assert_string_equal(img.m.manifest_sha256, sha);
	free(text);
	assert_non_null(img.approval);

	assert_non_null(o = cdcs_mss_image_json(&img));
	assert_string_equal(json_string_value(json_object_get(o, "path")), REL);
	assert_int_equal(json_integer_value(json_object_get(o, "version_number")), 1);
	assert_true(json_is_null(json_object_get(o, "withdrawn_at")));
	json_decref(o);
	cdcs_mss_image_clear(&img);

	/* A trailing newline (a file edited by hand) is not part of the signed text. */
	fx_path(f, REL, "manifest.jws", path, sizeof(path));
	assert_non_null(text = file_read(path, JOSE_MAX_TOKEN, &len, err, sizeof(err)));
	assert_non_null(text = realloc(text, len + 2));
	memcpy(text + len, "\n", 2);
	write_text(path, text);
	free(text);
	assert_int_equal(cdcs_mss_catalogue_verify(&f->v, f->dir, REL, 0, &img, &status, &code, err,
	                                           sizeof(err)),
	                 0);
	cdcs_mss_image_clear(&img);
}

static void test_unknown_vendor(void **state)
{
	struct fx *f = *state;
	struct cdcsimg_manifest m = f->m;
	const char *rel = "vendor-b/sample-ca/sw/linux-x86_64/1";

	/* Well signed by its own vendor, but no key for vendor-b is configured. */
	snprintf(m.vendor, sizeof(m.vendor), "vendor-b");
	put_image(f, rel, image_data, sizeof(image_data) - 1);
	put_signed(f, rel, &m, f->vendor_b, f->op);
	expect_refused(f, rel, 422, "unknown_vendor");
}

static void test_bad_signature(void **state)
{
	struct fx *f = *state;
	char path[1024], err[256], *text;
	size_t len;

	/* Names vendor-a, signed by vendor-b. */
	put_image(f, REL, image_data, sizeof(image_data) - 1);
	put_signed(f, REL, &f->m, f->vendor_b, f->op);
	expect_refused(f, REL, 422, "bad_signature");

	/* Tampered after signing: one character of the signature changed. */
	publish_good(f);
	fx_path(f, REL, "manifest.jws", path, sizeof(path));
	assert_non_null(text = file_read(path, JOSE_MAX_TOKEN, &len, err, sizeof(err)));
	text[len - 2] = text[len - 2] == 'A' ? 'B' : 'A';
	write_text(path, text);
	free(text);
	expect_refused(f, REL, 422, "bad_signature");

	/* No manifest at all. */
	unlink(path);
	expect_refused(f, REL, 422, "bad_signature");
}

static void test_expired_and_bad_claims(void **state)
{
	struct fx *f = *state;
	struct cdcs_mss_image img;
	const char *code = NULL;
	char err[512];
	int status = 0;

	/* Valid an hour: two hours later the vendor's signature no longer counts. */
	publish_good(f);
	assert_int_equal(cdcs_mss_catalogue_verify(&f->v, f->dir, REL, time(NULL) + 7200, &img,
	                                           &status, &code, err, sizeof(err)),
	                 -1);
	assert_string_equal(code, "bad_signature");

	/* Nothing signs a manifest out of range (here an ABI the device does not have). */
	f->m.abi = ODM_CDCS_ABI_VERSION + 1;
	assert_null(cdcsimg_manifest_sign(f->vendor_a, &f->m, 3600, err, sizeof(err)));
	assert_non_null(strstr(err, "abi"));
	f->m.abi = ODM_CDCS_ABI_VERSION;
	f->m.size = CDCSIMG_MAX_SIZE + 1LL;
	assert_null(cdcsimg_manifest_sign(f->vendor_a, &f->m, 3600, err, sizeof(err)));
	f->m.size = 0;
	assert_null(cdcsimg_manifest_sign(f->vendor_a, &f->m, 3600, err, sizeof(err)));
	f->m.size = (int64_t)sizeof(image_data) - 1;
	snprintf(f->m.kind, sizeof(f->m.kind), "tv");
	assert_null(cdcsimg_manifest_sign(f->vendor_a, &f->m, 3600, err, sizeof(err)));
	snprintf(f->m.kind, sizeof(f->m.kind), "ca");
	snprintf(f->m.variant, sizeof(f->m.variant), "SW");
	assert_null(cdcsimg_manifest_sign(f->vendor_a, &f->m, 3600, err, sizeof(err)));
	snprintf(f->m.variant, sizeof(f->m.variant), "sw");
	snprintf(f->m.vendor, sizeof(f->m.vendor), "..");
	assert_null(cdcsimg_manifest_sign(f->vendor_a, &f->m, 3600, err, sizeof(err)));
}

/* A manifest whose claims are out of range though well signed: bad_claims. */
static void test_bad_claims_signed(void **state)
{
	struct fx *f = *state;
	char path[1024], err[256], *jws;
	json_t *c;

	put_image(f, REL, image_data, sizeof(image_data) - 1);
	c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I}", "iss",
	              "vendor-a", "aud", CDCSIMG_AUD, "sub", CDCSIMG_SUB, "vendor", "vendor-a",
	              "name", "sample-ca", "kind", "ca", "variant", "sw", "platform",
	              "linux-x86_64", "version", "1.0.0", "version_number", (json_int_t)1, "abi",
	              (json_int_t)2, "sha256", f->m.sha256, "size", (json_int_t)f->m.size);
	assert_non_null(c);
	assert_non_null(jws = jose_sign(f->vendor_a, NULL, c, 3600, err, sizeof(err)));
	json_decref(c);
	fx_path(f, REL, "manifest.jws", path, sizeof(path));
	write_text(path, jws);
	free(jws);
	expect_refused(f, REL, 422, "bad_claims");
}

static void test_not_approved(void **state)
{
	struct fx *f = *state;
	struct cdcs_mss_image img;
	const char *code = NULL;
	char err[512], path[1024], *jws, *appr;
	int status = 0;

	/* No approval.jws. */
	put_image(f, REL, image_data, sizeof(image_data) - 1);
	put_signed(f, REL, &f->m, f->vendor_a, NULL);
	expect_refused(f, REL, 422, "not_approved");

	/* Approved with a key that is not the operator's (here the vendor's own). */
	put_signed(f, REL, &f->m, f->vendor_a, f->other);
	expect_refused(f, REL, 422, "not_approved");
	put_signed(f, REL, &f->m, f->vendor_a, f->vendor_a);
	expect_refused(f, REL, 422, "not_approved");

	/* The operator's approval, expired while the manifest is still valid. */
	put_image(f, REL, image_data, sizeof(image_data) - 1);
	assert_non_null(jws = cdcsimg_manifest_sign(f->vendor_a, &f->m, 36000, err, sizeof(err)));
	assert_non_null(appr = cdcsimg_approval_sign(f->op, &f->m, jws, 60, err, sizeof(err)));
	fx_path(f, REL, "manifest.jws", path, sizeof(path));
	write_text(path, jws);
	fx_path(f, REL, "approval.jws", path, sizeof(path));
	write_text(path, appr);
	free(jws);
	free(appr);
	assert_int_equal(cdcs_mss_catalogue_verify(&f->v, f->dir, REL, time(NULL) + 3600, &img,
	                                           &status, &code, err, sizeof(err)),
	                 -1);
	assert_string_equal(code, "not_approved");
	assert_int_equal(cdcs_mss_catalogue_verify(&f->v, f->dir, REL, 0, &img, &status, &code, err,
	                                           sizeof(err)),
	                 0);
	cdcs_mss_image_clear(&img);

	/* No operator key at all. */
	f->v.operator_pub = NULL;
	assert_int_equal(cdcs_mss_catalogue_verify(&f->v, f->dir, REL, 0, &img, &status, &code, err,
	                                           sizeof(err)),
	                 -1);
	assert_string_equal(code, "not_approved");
	f->v.operator_pub = f->op;
}

/* Read a file of the publication. */
static char *slurp(struct fx *f, const char *file)
{
	char path[1024], err[256];
	size_t len;
	char *text;

	fx_path(f, REL, file, path, sizeof(path));
	assert_non_null(text = file_read(path, JOSE_MAX_TOKEN, &len, err, sizeof(err)));
	return text;
}

static void test_approval_binding(void **state)
{
	struct fx *f = *state;
	struct cdcsimg_manifest out, other = f->m;
	char path[1024], err[512], *manifest, *manifest2, *appr;
	const char *code = NULL;

	publish_good(f);
	manifest = slurp(f, "manifest.jws");

	/* An approval of another manifest of the same image (signed again: other jti). */
	assert_non_null(manifest2 =
	                    cdcsimg_manifest_sign(f->vendor_a, &f->m, 3600, err, sizeof(err)));
	assert_string_not_equal(manifest, manifest2);
	assert_non_null(appr =
	                    cdcsimg_approval_sign(f->op, &f->m, manifest2, 3600, err, sizeof(err)));
	assert_int_equal(
	    cdcsimg_verify(&f->v.vendors, f->op, manifest, appr, 0, &out, &code, err, sizeof(err)),
	    -1);
	assert_string_equal(code, "approval_mismatch");
	assert_non_null(strstr(err, "manifest_sha256"));
	fx_path(f, REL, "approval.jws", path, sizeof(path));
	write_text(path, appr);
	expect_refused(f, REL, 422, "not_approved");
	free(appr);

	/* The right manifest text, but an approval for another identity of each kind. */
	const char *fields[] = {"vendor", "name", "variant", "platform", "version_number"};
	for (size_t i = 0; i < 5; i++) {
		other = f->m;
		if (i == 0)
			snprintf(other.vendor, sizeof(other.vendor), "vendor-b");
		else if (i == 1)
			snprintf(other.name, sizeof(other.name), "sample-drm");
		else if (i == 2)
			snprintf(other.variant, sizeof(other.variant), "hw");
		else if (i == 3)
			snprintf(other.platform, sizeof(other.platform), "linux-aarch64");
		else
			other.version_number = 2;
		assert_non_null(
		    appr = cdcsimg_approval_sign(f->op, &other, manifest, 3600, err, sizeof(err)));
		assert_int_equal(cdcsimg_verify(&f->v.vendors, f->op, manifest, appr, 0, &out,
		                                &code, err, sizeof(err)),
		                 -1);
		assert_string_equal(code, "approval_mismatch");
		assert_non_null(strstr(err, fields[i]));
		write_text(path, appr);
		expect_refused(f, REL, 422, "not_approved");
		free(appr);
	}

	/* And the good pair verifies directly, filling the claims. */
	assert_non_null(appr =
	                    cdcsimg_approval_sign(f->op, &f->m, manifest, 3600, err, sizeof(err)));
	assert_int_equal(
	    cdcsimg_verify(&f->v.vendors, f->op, manifest, appr, 0, &out, &code, err, sizeof(err)),
	    0);
	assert_string_equal(out.sha256, f->m.sha256);
	/* The approval is the operator's, not a vendor's: swapped roles fail. */
	assert_int_equal(cdcsimg_verify(&f->v.vendors, f->vendor_a, manifest, appr, 0, &out, &code,
	                                err, sizeof(err)),
	                 -1);
	assert_string_equal(code, "not_approved");
	assert_int_equal(
	    cdcsimg_verify(&f->v.vendors, f->op, appr, manifest, 0, &out, &code, err, sizeof(err)),
	    -1);
	free(appr);
	free(manifest);
	free(manifest2);
}

static void test_digest_and_size(void **state)
{
	struct fx *f = *state;
	char bad[sizeof(image_data) - 1];

	/* Same length, one byte changed. */
	publish_good(f);
	memcpy(bad, image_data, sizeof(bad));
	bad[3] ^= 1;
	put_image(f, REL, bad, sizeof(bad));
	expect_refused(f, REL, 422, "bad_digest");

	/* One byte more. */
	put_image(f, REL,
	          "x\x7f"
	          "ELF pretend CDCS image",
	          sizeof(image_data));
	expect_refused(f, REL, 422, "bad_size");
}

static void test_path(void **state)
{
	struct fx *f = *state;
	struct cdcsimg_manifest m = f->m;
	const char *rel2 = "vendor-a/sample-ca/sw/linux-x86_64/2";
	const char *moved[] = {
	    "vendor-a/sample-ca/hw/linux-x86_64/1", "vendor-a/sample-drm/sw/linux-x86_64/1",
	    "vendor-a/sample-ca/sw/linux-aarch64/1", "vendor-a/sample-ca/sw/linux-x86_64/01"};
	char from[1024], to[1024];
	size_t i;

	/* Version 1 signed, published under /2. */
	put_image(f, rel2, image_data, sizeof(image_data) - 1);
	put_signed(f, rel2, &m, f->vendor_a, f->op);
	expect_refused(f, rel2, 422, "path_mismatch");

	/* A good publication copied elsewhere. */
	publish_good(f);
	for (i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
		put_image(f, moved[i], image_data, sizeof(image_data) - 1);
		fx_path(f, REL, "manifest.jws", from, sizeof(from));
		fx_path(f, moved[i], "manifest.jws", to, sizeof(to));
		assert_int_equal(link(from, to), 0);
		fx_path(f, REL, "approval.jws", from, sizeof(from));
		fx_path(f, moved[i], "approval.jws", to, sizeof(to));
		assert_int_equal(link(from, to), 0);
		expect_refused(f, moved[i], 422, "path_mismatch");
	}

	/* Not a path of five safe components. */
	expect_refused(f, "../vendor-a/sample-ca/sw/linux-x86_64/1", 400, "bad_request");
	expect_refused(f, "vendor-a/../sample-ca/sw/linux-x86_64/1", 400, "bad_request");
	expect_refused(f, "/vendor-a/sample-ca/sw/linux-x86_64/1", 400, "bad_request");
	expect_refused(f, "vendor-a/sample-ca/sw/linux-x86_64", 400, "bad_request");
	expect_refused(f, "vendor-a/sample-ca/sw/linux-x86_64/1/", 400, "bad_request");
	expect_refused(f, "vendor-a/sample-ca/sw/linux-x86_64/1/x", 400, "bad_request");
	expect_refused(f, "vendor-a//sw/linux-x86_64/1", 400, "bad_request");
	expect_refused(f, "vendor-a/sample ca/sw/linux-x86_64/1", 400, "bad_request");
	expect_refused(f, "", 400, "bad_request");
	/* Well formed, nothing there. */
	expect_refused(f, "vendor-a/sample-ca/sw/linux-x86_64/9", 404, "not_found");
}

static void test_peek_and_keyring(void **state)
{
	struct fx *f = *state;
	struct cdcsimg_keyring kr;
	struct cdcsimg_manifest m;
	char err[512], path[1024], *manifest;
	json_t *vk;

	/* peek reads the claims with no key (for a manifest this program verified before). */
	publish_good(f);
	manifest = slurp(f, "manifest.jws");
	assert_int_equal(cdcsimg_manifest_peek(manifest, &m, err, sizeof(err)), 0);
	assert_string_equal(m.vendor, "vendor-a");
	assert_int_equal(m.version_number, 1);
	assert_int_equal(cdcsimg_manifest_peek("not.a.jws", &m, err, sizeof(err)), -1);
	free(manifest);

	/* Config forms that are refused, each with nothing left allocated. */
	assert_int_equal(cdcsimg_keyring_load(&kr, NULL, err, sizeof(err)), -1);
	assert_non_null(vk = json_pack("[s]", "x"));
	assert_int_equal(cdcsimg_keyring_load(&kr, vk, err, sizeof(err)), -1);
	json_decref(vk);
	assert_non_null(vk = json_object());
	assert_int_equal(cdcsimg_keyring_load(&kr, vk, err, sizeof(err)), -1);
	json_decref(vk);
	snprintf(path, sizeof(path), "%s/vendor-a.pub", f->dir);
	assert_non_null(vk = json_pack("{s:s, s:s}", "vendor-a", path, "bad/vendor", path));
	assert_int_equal(cdcsimg_keyring_load(&kr, vk, err, sizeof(err)), -1);
	json_decref(vk);
	assert_non_null(vk = json_pack("{s:s, s:s}", "vendor-a", path, "vendor-b", "/nonexistent"));
	assert_int_equal(cdcsimg_keyring_load(&kr, vk, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "vendor-b"));
	json_decref(vk);
	assert_non_null(vk = json_pack("{s:i}", "vendor-a", 1));
	assert_int_equal(cdcsimg_keyring_load(&kr, vk, err, sizeof(err)), -1);
	json_decref(vk);
	assert_int_equal(kr.n, 0);
	assert_null(cdcsimg_keyring_find(&f->v.vendors, "vendor-b"));
	assert_non_null(cdcsimg_keyring_find(&f->v.vendors, "vendor-a"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_good, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_vendor, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_signature, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expired_and_bad_claims, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_claims_signed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_approved, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_approval_binding, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_digest_and_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peek_and_keyring, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
