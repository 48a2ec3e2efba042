/*
 * The sample CDCSs (src/cdcs), loaded with dlopen as the CDCS host loads them and driven
 * through a fake host table: the personalization request and data of docs/cdcs-abi.md, the
 * sealed state, and the content formats, both as dmctl content encrypt makes them and as the
 * contract describes them (made here independently, with cjose and OpenSSL's other HKDF API).
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "opendm/cdcs.h"
#include "opendm/jose.h"
#include "opendm/pki.h"

#include "../../src/cdcs/sample_content.h"
#include "testutil.h"

#define NLEVELS  3
#define MAXITEMS 8
#define TICKET   "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkbS0xIn0.c2ln"
#define CONFIRM  "00112233445566778899aabbccddeeff"
#define NSYS     4 /* sample-ca, sample-drm, sample-ca as vendor-b, the flaky test one */

static const char *const levels[NLEVELS] = {"basic", "premium", "uhd"};

/* The fake host: sealed storage in memory, the last message logged. */
struct host {
	struct odm_cdcs_host tbl;
	char name[MAXITEMS][65];
	unsigned char *data[MAXITEMS];
	size_t len[MAXITEMS];
	int n, puts;
	char last[512];
};

/* One sample CDCS and the entitlement keys of its system. */
struct sys {
	const char *path;
	enum sample_scheme scheme;
	const char *vendor, *name, *kind;
	struct sample_system id;
	void *dl;
	const struct odm_cdcs_ops *ops;
	unsigned char keys[NLEVELS][SAMPLE_KEY_LEN];
};

struct fx {
	struct sys s[NSYS];
	EVP_PKEY *other; /* a key that is not the CDCS's */
};

static void host_log(void *arg, enum odm_cdcs_log level, const char *msg)
{
	struct host *h = arg;

	snprintf(h->last, sizeof(h->last), "%s", msg);
	if (getenv("ODM_TEST_VERBOSE") != NULL)
		fprintf(stderr, "cdcs log %d: %s\n", (int)level, msg);
}

static int host_find(struct host *h, const char *name)
{
	int i;

	for (i = 0; i < h->n; i++)
		if (strcmp(h->name[i], name) == 0)
			return i;
	return -1;
}

static int host_put(void *arg, const char *name, const void *data, size_t len)
{
	struct host *h = arg;
	int i = host_find(h, name);

	if (i == -1) {
		assert_true(h->n < MAXITEMS);
		i = h->n++;
		snprintf(h->name[i], sizeof(h->name[i]), "%s", name);
	}
	free(h->data[i]);
	h->data[i] = malloc(len + 1);
	assert_non_null(h->data[i]);
	memcpy(h->data[i], data, len);
	h->data[i][len] = '\0';
	h->len[i] = len;
	h->puts++;
	return 0;
}

static int host_get(void *arg, const char *name, void **data, size_t *len)
{
	struct host *h = arg;
	int i = host_find(h, name);

	if (i == -1)
		return -1;
	*data = malloc(h->len[i] + 1);
	assert_non_null(*data);
	memcpy(*data, h->data[i], h->len[i]);
	*len = h->len[i];
	return 0;
}

static void host_init(struct host *h)
{
	memset(h, 0, sizeof(*h));
	h->tbl.abi_version = ODM_CDCS_ABI_VERSION;
	h->tbl.arg = h;
	h->tbl.log = host_log;
	h->tbl.store_put = host_put;
	h->tbl.store_get = host_get;
}

static void host_free(struct host *h)
{
	int i;

	for (i = 0; i < h->n; i++)
		free(h->data[i]);
}

static const char *host_item(struct host *h, const char *name)
{
	int i = host_find(h, name);

	return i == -1 ? NULL : (const char *)h->data[i];
}

static void sys_load(struct sys *s)
{
	odm_cdcs_entry_fn entry;
	char name[160];
	void *sym;
	int i;

	s->dl = dlopen(s->path, RTLD_NOW | RTLD_LOCAL);
	if (s->dl == NULL)
		fail_msg("dlopen %s: %s", s->path, dlerror());
	sym = dlsym(s->dl, ODM_CDCS_ENTRY);
	assert_non_null(sym);
	memcpy(&entry, &sym, sizeof(entry));
	assert_null(entry(ODM_CDCS_ABI_VERSION + 1));
	s->ops = entry(ODM_CDCS_ABI_VERSION);
	assert_non_null(s->ops);
	assert_int_equal(s->ops->abi_version, ODM_CDCS_ABI_VERSION);
	assert_string_equal(s->ops->vendor, s->vendor);
	assert_string_equal(s->ops->name, s->name);
	assert_string_equal(s->ops->kind, s->kind);
	/* Only the entry point is exported: the shared sample code stays private. */
	assert_null(dlsym(s->dl, "sample_init"));
	snprintf(name, sizeof(name), "%s/%s", s->vendor, s->name);
	assert_int_equal(sample_system_parse(name, &s->id), 0);
	assert_int_equal(s->id.scheme, s->scheme);
	for (i = 0; i < NLEVELS; i++)
		assert_int_equal(RAND_bytes(s->keys[i], SAMPLE_KEY_LEN), 1);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	int i;

	assert_non_null(fx);
	fx->s[0] = (struct sys){.path = CDCS_SAMPLE_CA,
	                        .scheme = SAMPLE_CA,
	                        .vendor = "vendor-a",
	                        .name = "sample-ca",
	                        .kind = "ca"};
	fx->s[1] = (struct sys){.path = CDCS_SAMPLE_DRM,
	                        .scheme = SAMPLE_DRM,
	                        .vendor = "vendor-b",
	                        .name = "sample-drm",
	                        .kind = "drm"};
	fx->s[2] = (struct sys){.path = CDCS_SAMPLE_CA_B,
	                        .scheme = SAMPLE_CA,
	                        .vendor = "vendor-b",
	                        .name = "sample-ca",
	                        .kind = "ca"};
	fx->s[3] = (struct sys){.path = CDCS_FLAKY_CA,
	                        .scheme = SAMPLE_CA,
	                        .vendor = "vendor-b",
	                        .name = "sample-ca",
	                        .kind = "ca"};
	for (i = 0; i < NSYS; i++)
		sys_load(&fx->s[i]);
	assert_non_null(fx->other = pki_key_new());
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	/* The plug-ins stay mapped: a leak report can then still name their functions. */
	EVP_PKEY_free(fx->other);
	free(fx);
	return 0;
}

static char *b64url(const unsigned char *raw, size_t len)
{
	char *out = NULL;
	size_t n;
	cjose_err cerr;

	assert_true(cjose_base64url_encode(raw, len, &out, &n, &cerr));
	return out;
}

/* The personalization data plaintext of docs/cdcs-abi.md with keys for the first nkeys
 * levels of rights. */
static json_t *perso_plain(const struct sys *s, int nrights, int nkeys)
{
	json_t *d, *rights, *keys;
	char cdcs_id[64], *k;
	int i;

	snprintf(cdcs_id, sizeof(cdcs_id), "%s-0123456789abcdef01234567", s->vendor);
	d = json_pack("{s:i, s:s, s:s, s:s, s:s, s:[], s:{}, s:s, s:s, s:i}", "v", 1, "dm_id",
	              "dm-test-1", "vendor", s->vendor, "name", s->name, "cdcs_id", cdcs_id,
	              "rights", "keys", "confirm", CONFIRM, "perso_id",
	              "ffeeddccbbaa99887766554433221100", "iat", 1700000000);
	assert_non_null(d);
	rights = json_object_get(d, "rights");
	keys = json_object_get(d, "keys");
	for (i = 0; i < nrights; i++)
		assert_int_equal(json_array_append_new(rights, json_string(levels[i])), 0);
	for (i = 0; i < nkeys; i++) {
		k = b64url(s->keys[i], SAMPLE_KEY_LEN);
		assert_int_equal(json_object_set_new(keys, levels[i], json_string(k)), 0);
		free(k);
	}
	return d;
}

/* jose_encrypt of d to pub (takes d). */
static char *perso_seal(EVP_PKEY *pub, json_t *d)
{
	char err[256], *text = json_dumps(d, JSON_COMPACT), *jwe;

	assert_non_null(text);
	jwe = jose_encrypt(pub, text, strlen(text), err, sizeof(err));
	if (jwe == NULL)
		fail_msg("jose_encrypt: %s", err);
	free(text);
	json_decref(d);
	return jwe;
}

/* perso_request, with its answer checked; returns the CDCS public key. */
static EVP_PKEY *perso_request(const struct sys *s, void *ctx)
{
	char *req = NULL, group[32];
	const char *pem;
	EVP_PKEY *pub;
	json_t *r;
	BIO *bio;

	assert_int_equal(s->ops->perso_request(ctx, "", &req), -1);
	assert_int_equal(s->ops->perso_request(ctx, TICKET, &req), 0);
	assert_non_null(r = json_loads(req, JSON_REJECT_DUPLICATES, NULL));
	free(req);
	assert_string_equal(json_string_value(json_object_get(r, "personalization_ticket")),
	                    TICKET);
	assert_string_equal(json_string_value(json_object_get(r, "vendor")), s->vendor);
	assert_string_equal(json_string_value(json_object_get(r, "name")), s->name);
	assert_int_equal(json_object_size(r), 4);
	assert_non_null(pem = json_string_value(json_object_get(r, "public_key")));
	assert_non_null(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
	assert_non_null(bio = BIO_new_mem_buf(pem, -1));
	pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	json_decref(r);
	assert_non_null(pub);
	assert_true(EVP_PKEY_is_a(pub, "EC"));
	assert_true(EVP_PKEY_get_utf8_string_param(pub, "group", group, sizeof(group), NULL));
	assert_string_equal(group, "prime256v1");
	return pub;
}

/* decrypt: 0 with the plaintext equal to want, or -1. */
static int play(const struct sys *s, void *ctx, const char *jwe, const char *want)
{
	void *out = NULL;
	size_t outlen = 0;

	if (s->ops->decrypt(ctx, jwe, strlen(jwe), &out, &outlen) == -1)
		return -1;
	assert_int_equal(outlen, strlen(want));
	assert_memory_equal(out, want, outlen);
	free(out);
	return 0;
}

/* Content as dmctl content encrypt makes it. */
static char *content(const struct sys *s, int level, const char *text)
{
	char err[256], *jwe;

	jwe = sample_content_encrypt(&s->id, levels[level], s->keys[level], text, strlen(text), err,
	                             sizeof(err));
	if (jwe == NULL)
		fail_msg("sample_content_encrypt: %s", err);
	return jwe;
}

static json_t *status(const struct sys *s, void *ctx)
{
	char *text = NULL;
	json_t *st;

	assert_int_equal(s->ops->status(ctx, &text), 0);
	assert_non_null(st = json_loads(text, 0, NULL));
	free(text);
	assert_string_equal(json_string_value(json_object_get(st, "vendor")), s->vendor);
	assert_null(json_object_get(st, "keys"));
	assert_null(json_object_get(st, "confirm"));
	return st;
}

/* Flip one character of part (0-4) of a compact JWE, keeping the base64url alphabet. */
static void corrupt(char *jwe, int part)
{
	char *p = jwe;
	int i;

	for (i = 0; i < part; i++)
		assert_non_null(p = strchr(p, '.') + 1);
	p[1] = p[1] == 'A' ? 'B' : 'A';
}

/* The whole life of one sample: perso_request, perso_apply, content, restart; other is
 * another system, whose content it must not open. */
static void run_system(struct fx *fx, int idx, int other)
{
	const struct sys *s = &fx->s[idx], *o = &fx->s[other];
	struct host h;
	char *data, *conf = NULL, *c;
	const char *text = "the protected programme";
	EVP_PKEY *pub;
	void *ctx = NULL;
	json_t *st, *stored;

	host_init(&h);
	assert_int_equal(s->ops->init(&h.tbl, &ctx), 0);
	st = status(s, ctx);
	assert_false(json_is_true(json_object_get(st, "personalized")));
	json_decref(st);
	c = content(s, 0, text);
	assert_int_equal(play(s, ctx, c, text), -1); /* not personalized yet */
	free(c);

	pub = perso_request(s, ctx);
	assert_non_null(strstr(host_item(&h, "key.pem"), "-----BEGIN PRIVATE KEY-----"));
	data = perso_seal(pub, perso_plain(s, 2, 2)); /* basic and premium */
	assert_int_equal(s->ops->perso_apply(ctx, data, &conf), 0);
	assert_string_equal(conf, CONFIRM);
	free(conf);
	free(data);
	EVP_PKEY_free(pub);

	/* Sealed: identity and keys, but the confirm value is not kept. */
	assert_non_null(stored = json_loads(host_item(&h, "perso.json"), 0, NULL));
	assert_null(json_object_get(stored, "confirm"));
	assert_int_equal(json_object_size(json_object_get(stored, "keys")), 2);
	json_decref(stored);
	st = status(s, ctx);
	assert_true(json_is_true(json_object_get(st, "personalized")));
	assert_string_equal(json_string_value(json_object_get(st, "dm_id")), "dm-test-1");
	assert_int_equal(json_array_size(json_object_get(st, "entitled")), 2);
	assert_int_equal(json_array_size(json_object_get(st, "rights")), 2);
	json_decref(st);

	c = content(s, 0, text);
	assert_int_equal(play(s, ctx, c, text), 0);
	corrupt(c, 3); /* ciphertext */
	assert_int_equal(play(s, ctx, c, text), -1);
	free(c);
	c = content(s, 1, "premium programme");
	assert_int_equal(play(s, ctx, c, "premium programme"), 0);
	corrupt(c, 4); /* authentication tag */
	assert_int_equal(play(s, ctx, c, "premium programme"), -1);
	free(c);
	c = content(s, 2, text); /* uhd: not entitled */
	assert_int_equal(play(s, ctx, c, text), -1);
	assert_non_null(strstr(h.last, "not entitled"));
	free(c);
	c = content(o, 0, text); /* the other system's content */
	assert_int_equal(play(s, ctx, c, text), -1);
	free(c);
	s->ops->fini(ctx);

	/* A new process: the state comes back from sealed storage. */
	assert_int_equal(s->ops->init(&h.tbl, &ctx), 0);
	c = content(s, 1, text);
	assert_int_equal(play(s, ctx, c, text), 0);
	free(c);
	s->ops->fini(ctx);
	host_free(&h);
}

static void test_sample_ca(void **state)
{
	run_system(*state, 0, 1);
}

static void test_sample_drm(void **state)
{
	run_system(*state, 1, 0);
}

static void test_sample_ca_b(void **state)
{
	run_system(*state, 2, 0);
}

/* s personalized with keys for every level (dm_id "dm-test-1"): its context. */
static void *personalize(const struct sys *s, struct host *h)
{
	char *data, *conf = NULL;
	void *ctx = NULL;
	EVP_PKEY *pub;

	assert_int_equal(s->ops->init(&h->tbl, &ctx), 0);
	pub = perso_request(s, ctx);
	data = perso_seal(pub, perso_plain(s, NLEVELS, NLEVELS));
	assert_int_equal(s->ops->perso_apply(ctx, data, &conf), 0);
	assert_string_equal(conf, CONFIRM);
	free(conf);
	free(data);
	EVP_PKEY_free(pub);
	return ctx;
}

/*
 * vendor-a's and vendor-b's CA clients share a scheme but not a system: given the very same
 * entitlement keys, neither opens the other's content (the kid names the system).
 */
static void test_ca_systems_apart(void **state)
{
	struct fx *fx = *state;
	struct sys *a = &fx->s[0], *b = &fx->s[2];
	const char *text = "one programme, two CA systems";
	struct host ha, hb;
	void *ca, *cb;
	char *c;

	memcpy(b->keys, a->keys, sizeof(a->keys));
	host_init(&ha);
	host_init(&hb);
	ca = personalize(a, &ha);
	cb = personalize(b, &hb);
	c = content(a, 0, text);
	assert_int_equal(play(a, ca, c, text), 0);
	assert_int_equal(play(b, cb, c, text), -1);
	assert_non_null(strstr(hb.last, "vendor-b/sample-ca"));
	free(c);
	c = content(b, 0, text);
	assert_int_equal(play(b, cb, c, text), 0);
	assert_int_equal(play(a, ca, c, text), -1);
	free(c);
	a->ops->fini(ca);
	b->ops->fini(cb);
	host_free(&ha);
	host_free(&hb);
}

static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* perso_apply of a fresh personalization for dm-test-1: its return value. */
static int flaky_apply(const struct sys *s, struct host *h)
{
	char *data, *conf = NULL;
	void *ctx = NULL;
	EVP_PKEY *pub;
	int rc;

	assert_int_equal(s->ops->init(&h->tbl, &ctx), 0);
	pub = perso_request(s, ctx);
	data = perso_seal(pub, perso_plain(s, 1, 1));
	rc = s->ops->perso_apply(ctx, data, &conf);
	if (rc == 0)
		assert_string_equal(conf, CONFIRM);
	else
		assert_null(conf);
	free(conf);
	free(data);
	EVP_PKEY_free(pub);
	s->ops->fini(ctx);
	return rc;
}

/* The flaky test client fails only on the DM ids listed; the shipped one never does. */
static void test_flaky_ca(void **state)
{
	struct fx *fx = *state;
	const struct sys *flaky = &fx->s[3], *real = &fx->s[2];
	char dir[512], list[600];
	struct host h;

	assert_int_equal(tu_tmpdir(dir, sizeof(dir), "sample_cdcs_flaky"), 0);
	snprintf(list, sizeof(list), "%s/fail-list", dir);
	assert_int_equal(setenv("ODM_TEST_CDCS_FAIL_FILE", list, 1), 0);

	host_init(&h);
	assert_int_equal(flaky_apply(flaky, &h), 0); /* no file */
	host_free(&h);
	put_file(list, "dm-other\ndm-test-10\n");
	host_init(&h);
	assert_int_equal(flaky_apply(flaky, &h), 0); /* not listed (a prefix is no match) */
	host_free(&h);
	put_file(list, "dm-other\ndm-test-1\n");
	host_init(&h);
	assert_int_equal(flaky_apply(flaky, &h), -1);
	assert_non_null(strstr(h.last, "dm-test-1"));
	assert_non_null(strstr(h.last, "ODM_TEST_CDCS_FAIL_FILE"));
	host_free(&h);
	host_init(&h);
	assert_int_equal(flaky_apply(real, &h), 0);
	host_free(&h);

	assert_int_equal(unsetenv("ODM_TEST_CDCS_FAIL_FILE"), 0);
	tu_rmtree(dir);
}

/* 1 if the file at path contains needle. */
static int file_contains(const char *path, const char *needle)
{
	size_t n = strlen(needle), len = 0, cap = 0, r;
	char *buf = NULL, *p;
	FILE *f = fopen(path, "rb");
	int hit = 0;

	assert_non_null(f);
	do {
		if (len + 65536 > cap) {
			cap = cap * 2 + 65536;
			assert_non_null(buf = realloc(buf, cap));
		}
		r = fread(buf + len, 1, 65536, f);
		len += r;
	} while (r > 0);
	fclose(f);
	for (p = buf; !hit && p + n <= buf + len; p++)
		hit = memcmp(p, needle, n) == 0;
	free(buf);
	return hit;
}

/* Test-only faults are built into the test plug-in only, never into what ships. */
static void test_no_test_code_shipped(void **state)
{
	(void)state;
	assert_true(file_contains(CDCS_FLAKY_CA, "ODM_TEST_CDCS_FAIL_FILE"));
	assert_false(file_contains(CDCS_SAMPLE_CA, "ODM_TEST"));
	assert_false(file_contains(CDCS_SAMPLE_CA_B, "ODM_TEST"));
	assert_false(file_contains(CDCS_SAMPLE_DRM, "ODM_TEST"));
}

/* Data the CDCS must refuse, with nothing stored. */
static void refuse(const struct sys *s, void *ctx, struct host *h, const char *data)
{
	char *conf = NULL;
	int puts = h->puts;

	assert_int_equal(s->ops->perso_apply(ctx, data, &conf), -1);
	assert_null(conf);
	assert_int_equal(h->puts, puts);
	assert_null(host_item(h, "perso.json"));
}

static void test_perso_refused(void **state)
{
	struct fx *fx = *state;
	const struct sys *s = &fx->s[0];
	struct host h;
	void *ctx = NULL;
	EVP_PKEY *pub;
	json_t *d;
	char *data;
	json_t *st;

	host_init(&h);
	assert_int_equal(s->ops->init(&h.tbl, &ctx), 0);
	refuse(s, ctx, &h, "a.b.c.d.e"); /* before perso_request: no key */
	pub = perso_request(s, ctx);

	data = perso_seal(fx->other, perso_plain(s, 2, 2)); /* to another key */
	refuse(s, ctx, &h, data);
	free(data);
	d = perso_plain(s, 2, 2);
	json_object_set_new(d, "v", json_integer(2));
	data = perso_seal(pub, d);
	refuse(s, ctx, &h, data);
	free(data);
	d = perso_plain(s, 2, 2);
	json_object_set_new(d, "vendor", json_string("vendor-b"));
	data = perso_seal(pub, d);
	refuse(s, ctx, &h, data);
	free(data);
	data = perso_seal(pub, perso_plain(s, 1, 2)); /* a key beyond the rights */
	refuse(s, ctx, &h, data);
	free(data);
	d = perso_plain(s, 2, 2);
	json_object_del(d, "confirm");
	data = perso_seal(pub, d);
	refuse(s, ctx, &h, data);
	free(data);
	data = perso_seal(pub, perso_plain(s, 2, 2));
	corrupt(data, 3);
	refuse(s, ctx, &h, data);
	free(data);

	st = status(s, ctx);
	assert_false(json_is_true(json_object_get(st, "personalized")));
	json_decref(st);
	EVP_PKEY_free(pub);
	s->ops->fini(ctx);

	/* Sealed state that is not valid: init fails rather than starting over. */
	host_put(&h, "perso.json", "{\"v\":1}", 7);
	assert_int_equal(s->ops->init(&h.tbl, &ctx), -1);
	host_free(&h);
}

/* Content made from the contract's words, not with sample_content.c. */
static char *contract_content(const struct sys *s, int level, const char *text, int extra)
{
	unsigned char cek[64];
	const char *cid = "0123456789abcdef0123456789abcdef";
	char kid[128], *ser, *out;
	EVP_PKEY_CTX *pctx;
	cjose_header_t *hdr;
	cjose_jwk_t *jwk;
	cjose_jwe_t *jwe;
	cjose_err cerr;
	size_t ceklen = sizeof(cek);

	snprintf(kid, sizeof(kid), "%s/%s/%s", s->vendor, s->name, levels[level]);
	assert_non_null(hdr = cjose_header_new(&cerr));
	assert_true(cjose_header_set(hdr, CJOSE_HDR_KID, kid, &cerr));
	if (extra)
		assert_true(cjose_header_set(hdr, "zip", "DEF", &cerr));
	if (s->scheme == SAMPLE_CA) {
		assert_true(cjose_header_set(hdr, CJOSE_HDR_ALG, "A256KW", &cerr));
		assert_true(cjose_header_set(hdr, CJOSE_HDR_ENC, "A256GCM", &cerr));
		jwk = cjose_jwk_create_oct_spec(s->keys[level], SAMPLE_KEY_LEN, &cerr);
	} else {
		assert_non_null(pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL));
		assert_int_equal(EVP_PKEY_derive_init(pctx), 1);
		assert_int_equal(EVP_PKEY_CTX_set_hkdf_md(pctx, EVP_sha256()), 1);
		assert_int_equal(EVP_PKEY_CTX_set1_hkdf_key(pctx, s->keys[level], SAMPLE_KEY_LEN),
		                 1);
		assert_int_equal(EVP_PKEY_CTX_set1_hkdf_salt(pctx, (const unsigned char *)cid, 32),
		                 1);
		assert_int_equal(
		    EVP_PKEY_CTX_add1_hkdf_info(
		        pctx, (const unsigned char *)"opendm sample-drm content key", 29),
		    1);
		assert_int_equal(EVP_PKEY_derive(pctx, cek, &ceklen), 1);
		EVP_PKEY_CTX_free(pctx);
		assert_true(cjose_header_set(hdr, CJOSE_HDR_ALG, "dir", &cerr));
		assert_true(cjose_header_set(hdr, CJOSE_HDR_ENC, "A256CBC-HS512", &cerr));
		assert_true(cjose_header_set(hdr, "cid", cid, &cerr));
		jwk = cjose_jwk_create_oct_spec(cek, 64, &cerr);
	}
	assert_non_null(jwk);
	assert_non_null(
	    jwe = cjose_jwe_encrypt(jwk, hdr, (const uint8_t *)text, strlen(text), &cerr));
	assert_non_null(ser = cjose_jwe_export(jwe, &cerr));
	assert_non_null(out = strdup(ser));
	free(ser);
	cjose_jwe_release(jwe);
	cjose_jwk_release(jwk);
	cjose_header_release(hdr);
	return out;
}

static void test_contract_format(void **state)
{
	struct fx *fx = *state;
	const char *text = "made from the contract";
	struct host h;
	EVP_PKEY *pub;
	void *ctx = NULL;
	char *data, *conf, *c;
	int i;

	for (i = 0; i < NSYS; i++) {
		const struct sys *s = &fx->s[i];

		host_init(&h);
		assert_int_equal(s->ops->init(&h.tbl, &ctx), 0);
		pub = perso_request(s, ctx);
		data = perso_seal(pub, perso_plain(s, 3, 3));
		assert_int_equal(s->ops->perso_apply(ctx, data, &conf), 0);
		free(conf);
		free(data);
		EVP_PKEY_free(pub);
		c = contract_content(s, 2, text, 0);
		assert_int_equal(play(s, ctx, c, text), 0);
		free(c);
		/* One exact shape: a header member more (here zip) is refused. */
		c = contract_content(s, 2, text, 1);
		assert_int_equal(play(s, ctx, c, text), -1);
		free(c);
		/* A truncated tag (CVE-2023-37464 in older cjose) is refused. */
		c = contract_content(s, 0, text, 0);
		c[strlen(c) - 4] = '\0';
		assert_int_equal(play(s, ctx, c, text), -1);
		free(c);
		s->ops->fini(ctx);
		host_free(&h);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sample_ca),     cmocka_unit_test(test_sample_drm),
	    cmocka_unit_test(test_sample_ca_b),   cmocka_unit_test(test_ca_systems_apart),
	    cmocka_unit_test(test_flaky_ca),      cmocka_unit_test(test_no_test_code_shipped),
	    cmocka_unit_test(test_perso_refused), cmocka_unit_test(test_contract_format),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
