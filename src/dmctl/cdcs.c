/*
 * dmctl cdcs: the CDCS catalogue. publish lays out a signed image for cdcs-mss (the vendor's
 * manifest and the operator's approval, made by cdcsimg, the same code that checks them) and
 * registers it; register, withdraw (retire) and list talk to cdcs-mss. The revocation list
 * has its own file (revoke.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "opendm/cdcs.h"
#include "opendm/cdcsimg.h"
#include "opendm/file.h"
#include "opendm/pki.h"
#include "dmctl.h"

#define DMCTL_CDCS_PATH_MAX 4096
#define DMCTL_CDCS_TTL_DAYS 365
#define DMCTL_CDCS_DAYS_MAX 3650
#define DMCTL_CDCS_VNUM_MAX 2147483647LL

static const char dmctl_cdcs_usage[] =
    "usage: dmctl [-c config] [--json] cdcs publish --image F --vendor V --name N\n"
    "            --kind ca|drm --variant X --platform P --version TEXT --version-number NUM\n"
    "            --vendor-key KEY --operator-key KEY --catalogue DIR\n"
    "            [--no-approval] [--no-register] [--ttl-days D]\n"
    "       dmctl [-c config] [--json] cdcs register V/N/X/P/NUM\n"
    "       dmctl [-c config] [--json] cdcs withdraw|retire V N X P NUM\n"
    "       dmctl [-c config] [--json] cdcs list\n"
    "       dmctl [-c config] [--json] cdcs revoke VENDOR/NAME VERSION_NUMBER\n"
    "            --operator-key KEY\n"
    "       dmctl [-c config] [--json] cdcs revoke-key VENDOR --key PUB.pem\n"
    "            --operator-key KEY\n"
    "       dmctl [-c config] [--json] cdcs revocations\n"
    "\n"
    "publish copies the image to DIR/V/N/X/P/NUM/image and writes manifest.jws (signed with\n"
    "the vendor's KEY) and approval.jws (signed with the operator's KEY; --no-approval: none)\n"
    "there, valid D days (default 365), then registers the directory with cdcs-mss unless\n"
    "--no-register. A published version is never overwritten with other content.\n"
    "register asks cdcs-mss to verify and offer a published directory (path relative to its\n"
    "catalogue_dir); withdraw (or retire) stops an image being offered or served; list\n"
    "shows them all. revoke, revoke-key and revocations manage the signed revocation list\n"
    "('dmctl cdcs revoke --help'). Changes need the role catalogue.\n";

struct dmctl_cdcs_args {
	const char *image, *vendor, *name, *kind, *variant, *platform, *version;
	const char *vendor_key, *operator_key, *catalogue;
	long long vnum, days;
	int no_approval, no_register;
};

static const char **dmctl_cdcs_slot(struct dmctl_cdcs_args *a, const char *opt)
{
	static const struct {
		const char *opt;
		size_t off;
	} opts[] = {
	    {"--image", offsetof(struct dmctl_cdcs_args, image)},
	    {"--vendor", offsetof(struct dmctl_cdcs_args, vendor)},
	    {"--name", offsetof(struct dmctl_cdcs_args, name)},
	    {"--kind", offsetof(struct dmctl_cdcs_args, kind)},
	    {"--variant", offsetof(struct dmctl_cdcs_args, variant)},
	    {"--platform", offsetof(struct dmctl_cdcs_args, platform)},
	    {"--version", offsetof(struct dmctl_cdcs_args, version)},
	    {"--vendor-key", offsetof(struct dmctl_cdcs_args, vendor_key)},
	    {"--operator-key", offsetof(struct dmctl_cdcs_args, operator_key)},
	    {"--catalogue", offsetof(struct dmctl_cdcs_args, catalogue)},
	};
	size_t i;

	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (strcmp(opt, opts[i].opt) == 0)
			return (const char **)(void *)((char *)a + opts[i].off);
	return NULL;
}

/* The identity the options give, checked with cdcsimg's rules. */
static int dmctl_cdcs_check(const struct dmctl_cdcs_args *a)
{
	if (!cdcsimg_valid_id(a->vendor))
		return dmctl_usage_error(dmctl_cdcs_usage,
		                         "--vendor wants 1-64 of [A-Za-z0-9._-], not", a->vendor);
	if (!cdcsimg_valid_id(a->name))
		return dmctl_usage_error(dmctl_cdcs_usage,
		                         "--name wants 1-64 of [A-Za-z0-9._-], not", a->name);
	if (!cdcsimg_valid_kind(a->kind))
		return dmctl_usage_error(dmctl_cdcs_usage, "--kind wants ca or drm, not", a->kind);
	if (!cdcsimg_valid_variant(a->variant))
		return dmctl_usage_error(dmctl_cdcs_usage,
		                         "--variant wants 1-16 of [a-z0-9_-], not", a->variant);
	if (!cdcsimg_valid_platform(a->platform))
		return dmctl_usage_error(
		    dmctl_cdcs_usage, "--platform wants 1-32 of [A-Za-z0-9._-], not", a->platform);
	if (!cdcsimg_valid_version(a->version))
		return dmctl_usage_error(
		    dmctl_cdcs_usage, "--version wants 1-32 printable characters, not", a->version);
	return DMCTL_EXIT_OK;
}

static int dmctl_cdcs_parse(int argc, char **argv, struct dmctl_cdcs_args *a)
{
	const char **slot;
	long long *num;
	int i;

	memset(a, 0, sizeof(*a));
	a->vnum = -1;
	a->days = DMCTL_CDCS_TTL_DAYS;
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--no-approval") == 0) {
			a->no_approval = 1;
			continue;
		}
		if (strcmp(argv[i], "--no-register") == 0) {
			a->no_register = 1;
			continue;
		}
		slot = dmctl_cdcs_slot(a, argv[i]);
		num = strcmp(argv[i], "--version-number") == 0 ? &a->vnum
		      : strcmp(argv[i], "--ttl-days") == 0     ? &a->days
		                                               : NULL;
		if (slot == NULL && num == NULL)
			return dmctl_usage_error(dmctl_cdcs_usage, "unexpected argument", argv[i]);
		if (i + 1 == argc)
			return dmctl_usage_error(dmctl_cdcs_usage, "missing value for", argv[i]);
		if (slot != NULL)
			*slot = argv[++i];
		else if (dmctl_parse_int(argv[++i], 1,
		                         num == &a->vnum ? DMCTL_CDCS_VNUM_MAX
		                                         : DMCTL_CDCS_DAYS_MAX,
		                         num) == -1)
			return dmctl_usage_error(dmctl_cdcs_usage,
			                         "--version-number and --ttl-days want an integer "
			                         ">= 1, not",
			                         argv[i]);
	}
	if (a->image == NULL || a->vendor == NULL || a->name == NULL || a->kind == NULL ||
	    a->variant == NULL || a->platform == NULL || a->version == NULL ||
	    a->vendor_key == NULL || a->catalogue == NULL || a->vnum < 0 ||
	    (a->operator_key == NULL && !a->no_approval))
		return dmctl_usage_error(
		    dmctl_cdcs_usage,
		    "--image, --vendor, --name, --kind, --variant, --platform, "
		    "--version, --version-number, --vendor-key, --catalogue "
		    "and (unless --no-approval) --operator-key are required",
		    NULL);
	return dmctl_cdcs_check(a);
}

/* mkdir -p of DIR/V/N/X/P/NUM (every component already checked: no "..", no '/'). */
static int dmctl_cdcs_mkdirs(const struct dmctl_cdcs_args *a, char *dir, size_t len)
{
	const char *parts[5];
	char num[24];
	size_t i, n;

	snprintf(num, sizeof(num), "%lld", a->vnum);
	parts[0] = a->vendor;
	parts[1] = a->name;
	parts[2] = a->variant;
	parts[3] = a->platform;
	parts[4] = num;
	if (snprintf(dir, len, "%s", a->catalogue) >= (int)len)
		goto toolong;
	for (i = 0; i < 5; i++) {
		n = strlen(dir);
		if (snprintf(dir + n, len - n, "/%s", parts[i]) >= (int)(len - n))
			goto toolong;
		if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
			fprintf(stderr, "dmctl: io: mkdir %s: %s\n", dir, strerror(errno));
			return -1;
		}
	}
	return 0;
toolong:
	fprintf(stderr, "dmctl: usage: --catalogue path too long\n");
	return -1;
}

static int dmctl_cdcs_write_all(int fd, const unsigned char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Copy src to dir/image (0644) block by block, through a temporary file, fsync and rename, so
 * that the image is never held in memory and never seen half written. 0/-1.
 */
static int dmctl_cdcs_copy(const char *src, const char *dir)
{
	char tmp[DMCTL_CDCS_PATH_MAX + 32], dst[DMCTL_CDCS_PATH_MAX + 16];
	unsigned char buf[64 * 1024];
	int in = -1, out = -1, dfd = -1, rc = -1;
	int64_t total = 0;
	ssize_t n;

	snprintf(tmp, sizeof(tmp), "%s/.image.XXXXXX", dir);
	snprintf(dst, sizeof(dst), "%s/image", dir);
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "dmctl: io: %s: %s\n", src, strerror(errno));
		return -1;
	}
	if ((out = mkstemp(tmp)) == -1) {
		fprintf(stderr, "dmctl: io: %s: %s\n", tmp, strerror(errno));
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 || (total += n) > CDCSIMG_MAX_SIZE ||
		    dmctl_cdcs_write_all(out, buf, (size_t)n) == -1) {
			fprintf(stderr, "dmctl: io: copying %s: %s\n", src,
			        n == -1 || total <= CDCSIMG_MAX_SIZE ? strerror(errno)
			                                             : "larger than 256 MiB");
			goto out;
		}
	}
	if (fchmod(out, 0644) == -1 || fsync(out) == -1 || close(out) == -1) {
		out = -1;
		fprintf(stderr, "dmctl: io: %s: %s\n", tmp, strerror(errno));
		goto out;
	}
	out = -1;
	if (rename(tmp, dst) == -1) {
		fprintf(stderr, "dmctl: io: %s: %s\n", dst, strerror(errno));
		goto out;
	}
	tmp[0] = '\0';
	/* The rename itself must survive a crash too. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1)
		(void)fsync(dfd);
	rc = 0;
out:
	if (out != -1)
		close(out);
	if (rc == -1 && tmp[0] != '\0')
		unlink(tmp);
	if (dfd != -1)
		close(dfd);
	close(in);
	return rc;
}

/*
 * The image in place: copied unless the same content is already there (publishing again
 * re-signs); other content under a published version is refused. m gets size and sha256.
 */
static int dmctl_cdcs_place(const struct dmctl_cdcs_args *a, const char *dir,
                            struct cdcsimg_manifest *m)
{
	char path[DMCTL_CDCS_PATH_MAX + 16], err[1024], sha[65];
	int64_t size;

	if (cdcsimg_file_digest(a->image, CDCSIMG_MAX_SIZE, sha, &size, err, sizeof(err)) == -1) {
		fprintf(stderr, "dmctl: io: %s\n", err);
		return -1;
	}
	if (size == 0) {
		fprintf(stderr, "dmctl: input: %s: empty file\n", a->image);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/image", dir);
	if (cdcsimg_file_digest(path, CDCSIMG_MAX_SIZE, m->sha256, &m->size, err, sizeof(err)) ==
	    0) {
		if (strcmp(m->sha256, sha) != 0) {
			fprintf(stderr,
			        "dmctl: image_exists: %s holds other content: publish it under "
			        "another --version-number\n",
			        path);
			return -1;
		}
		return 0;
	}
	if (dmctl_cdcs_copy(a->image, dir) == -1)
		return -1;
	/* The digest of what cdcs-mss will serve, not of what was read. */
	if (cdcsimg_file_digest(path, CDCSIMG_MAX_SIZE, m->sha256, &m->size, err, sizeof(err)) ==
	    -1) {
		fprintf(stderr, "dmctl: io: %s\n", err);
		return -1;
	}
	if (strcmp(m->sha256, sha) != 0) {
		fprintf(stderr, "dmctl: io: %s changed while it was copied\n", a->image);
		return -1;
	}
	return 0;
}

static int dmctl_cdcs_write(const char *dir, const char *file, const char *text)
{
	char path[DMCTL_CDCS_PATH_MAX + 32], err[1024];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (file_write_atomic(path, text, strlen(text), 0644, err, sizeof(err)) == -1) {
		fprintf(stderr, "dmctl: io: %s\n", err);
		return -1;
	}
	return 0;
}

/* The vendor's and (unless --no-approval) the operator's key: 0, or -1 after a message. */
static int dmctl_cdcs_keys(const struct dmctl_cdcs_args *a, EVP_PKEY **vkey, EVP_PKEY **okey)
{
	char err[1024];

	*okey = NULL;
	if ((*vkey = pki_key_load(a->vendor_key, err, sizeof(err))) == NULL ||
	    (!a->no_approval &&
	     (*okey = pki_key_load(a->operator_key, err, sizeof(err))) == NULL)) {
		fprintf(stderr, "dmctl: input: %s\n", err);
		EVP_PKEY_free(*vkey);
		*vkey = NULL;
		return -1;
	}
	return 0;
}

/* Sign and write manifest.jws and (okey not NULL) approval.jws. */
static int dmctl_cdcs_sign(const struct dmctl_cdcs_args *a, const char *dir,
                           const struct cdcsimg_manifest *m, EVP_PKEY *vkey, EVP_PKEY *okey)
{
	char err[1024], path[DMCTL_CDCS_PATH_MAX + 32];
	char *manifest = NULL, *approval = NULL;
	int64_t ttl = (int64_t)a->days * 86400;
	int rc = -1;

	if ((manifest = cdcsimg_manifest_sign(vkey, m, ttl, err, sizeof(err))) == NULL ||
	    (okey != NULL && (approval = cdcsimg_approval_sign(okey, m, manifest, ttl, err,
	                                                       sizeof(err))) == NULL)) {
		fprintf(stderr, "dmctl: sign: %s\n", err);
		goto out;
	}
	/* The image is in place already: a manifest never names a file that is not there. */
	if (dmctl_cdcs_write(dir, "manifest.jws", manifest) == -1)
		goto out;
	if (approval != NULL)
		rc = dmctl_cdcs_write(dir, "approval.jws", approval);
	else {
		/* An approval left from an earlier publish approves another manifest. */
		snprintf(path, sizeof(path), "%s/approval.jws", dir);
		if ((rc = unlink(path)) == -1 && errno == ENOENT)
			rc = 0;
		else if (rc == -1)
			fprintf(stderr, "dmctl: io: %s: %s\n", path, strerror(errno));
	}
out:
	free(manifest);
	free(approval);
	return rc;
}

static const struct dmctl_col dmctl_image_cols[] = {
    {"CDCS", "vendor/name", 0},
    {"VARIANT", "variant", 0},
    {"PLATFORM", "platform", 0},
    {"NUM", "version_number", DMCTL_COL_RIGHT},
    {"VERSION", "version", 0},
    {"KIND", "kind", 0},
    {"SIZE", "size", DMCTL_COL_RIGHT},
    {"WITHDRAWN", "withdrawn_at", DMCTL_COL_TIME},
    {"REVOKED", "revoked", 0},
    {"SHA256", "sha256", 0},
    {NULL, NULL, 0},
};

static int dmctl_cdcs_print(const json_t *img)
{
	return dmctl_table_one(dmctl_image_cols, img);
}

static int dmctl_cdcs_list_print(const json_t *doc)
{
	return dmctl_table(dmctl_image_cols, json_object_get(doc, "images"));
}

/* One call to cdcs-mss; takes body. Prints the image record (list: records) it answers. */
static int dmctl_cdcs_call(const struct dmctl_opts *opts, const char *method, const char *path,
                           json_t *body, int list)
{
	json_t *out = NULL;
	int status;

	status = dmctl_api_once_role(opts, "cdcs-mss", method, path, body, &out);
	return dmctl_done(opts, status, out, list ? dmctl_cdcs_list_print : dmctl_cdcs_print);
}

static int dmctl_cdcs_publish(const struct dmctl_opts *opts, int argc, char **argv)
{
	struct dmctl_cdcs_args a;
	struct cdcsimg_manifest m;
	char dir[DMCTL_CDCS_PATH_MAX], rel[DMCTL_CDCS_PATH_MAX];
	EVP_PKEY *vkey = NULL, *okey = NULL;
	json_t *rec;
	int status;

	if ((status = dmctl_cdcs_parse(argc, argv, &a)) != DMCTL_EXIT_OK)
		return status;
	memset(&m, 0, sizeof(m));
	snprintf(m.vendor, sizeof(m.vendor), "%s", a.vendor);
	snprintf(m.name, sizeof(m.name), "%s", a.name);
	snprintf(m.kind, sizeof(m.kind), "%s", a.kind);
	snprintf(m.variant, sizeof(m.variant), "%s", a.variant);
	snprintf(m.platform, sizeof(m.platform), "%s", a.platform);
	snprintf(m.version, sizeof(m.version), "%s", a.version);
	m.version_number = a.vnum;
	m.abi = ODM_CDCS_ABI_VERSION;
	/* Unusable keys are bad input: found before anything is written or sent. */
	if (dmctl_cdcs_keys(&a, &vkey, &okey) == -1)
		return DMCTL_EXIT_USAGE;
	status = DMCTL_EXIT_OK;
	if (dmctl_cdcs_mkdirs(&a, dir, sizeof(dir)) == -1 || dmctl_cdcs_place(&a, dir, &m) == -1 ||
	    dmctl_cdcs_sign(&a, dir, &m, vkey, okey) == -1)
		status = DMCTL_EXIT_FAIL;
	EVP_PKEY_free(vkey);
	EVP_PKEY_free(okey);
	if (status != DMCTL_EXIT_OK)
		return status;
	snprintf(rel, sizeof(rel), "%s/%s/%s/%s/%lld", a.vendor, a.name, a.variant, a.platform,
	         a.vnum);
	if (!a.no_register)
		return dmctl_cdcs_call(opts, "POST", "/v1/admin/images",
		                       json_pack("{s:s}", "path", rel), 0);
	if ((rec = cdcsimg_manifest_json(&m)) == NULL ||
	    json_object_set_new(rec, "path", json_string(rel)) == -1) {
		json_decref(rec);
		return DMCTL_EXIT_FAIL;
	}
	if (!opts->json)
		printf("published (not registered) in %s\n", dir);
	return dmctl_done(opts, DMCTL_EXIT_OK, rec, dmctl_cdcs_print);
}

static int dmctl_cdcs_withdraw(const struct dmctl_opts *opts, int argc, char **argv)
{
	long long vnum;

	if (argc != 5 || dmctl_parse_int(argv[4], 1, DMCTL_CDCS_VNUM_MAX, &vnum) == -1 ||
	    !cdcsimg_valid_id(argv[0]) || !cdcsimg_valid_id(argv[1]) ||
	    !cdcsimg_valid_variant(argv[2]) || !cdcsimg_valid_platform(argv[3]))
		return dmctl_usage_error(
		    dmctl_cdcs_usage, "withdraw: expected VENDOR NAME VARIANT PLATFORM NUM", NULL);
	return dmctl_cdcs_call(opts, "POST", "/v1/admin/images/withdraw",
	                       json_pack("{s:s, s:s, s:s, s:s, s:I}", "vendor", argv[0], "name",
	                                 argv[1], "variant", argv[2], "platform", argv[3],
	                                 "version_number", (json_int_t)vnum),
	                       0);
}

int dmctl_cdcs_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	if (argc >= 1 && (strcmp(argv[0], "revoke") == 0 || strcmp(argv[0], "revoke-key") == 0 ||
	                  strcmp(argv[0], "revocations") == 0))
		return dmctl_revoke_main(opts, argc, argv);
	if (dmctl_want_help(argc, argv, dmctl_cdcs_usage))
		return DMCTL_EXIT_OK;
	if (argc >= 1 && strcmp(argv[0], "publish") == 0)
		return dmctl_cdcs_publish(opts, argc - 1, argv + 1);
	if (argc == 2 && strcmp(argv[0], "register") == 0) {
		if (!dmctl_valid_id(argv[1], 1, 1024, "._/-") || strstr(argv[1], "..") != NULL)
			return dmctl_usage_error(dmctl_cdcs_usage, "register: not a catalogue path",
			                         argv[1]);
		return dmctl_cdcs_call(opts, "POST", "/v1/admin/images",
		                       json_pack("{s:s}", "path", argv[1]), 0);
	}
	/* retire is the operator's word for withdraw. */
	if (argc >= 1 && (strcmp(argv[0], "withdraw") == 0 || strcmp(argv[0], "retire") == 0))
		return dmctl_cdcs_withdraw(opts, argc - 1, argv + 1);
	if (argc == 1 && strcmp(argv[0], "list") == 0)
		return dmctl_cdcs_call(opts, "GET", "/v1/admin/images", NULL, 1);
	return dmctl_usage_error(
	    dmctl_cdcs_usage,
	    "cdcs: expected publish|register|withdraw|retire|list|revoke|revoke-key|revocations",
	    NULL);
}
