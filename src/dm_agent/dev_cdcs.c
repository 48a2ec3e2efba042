/*
 * dev_cdcs: verification, installation, switching and removal of the CDCSs on the device
 * (Figure 5 steps 7 and 14 need it; layout in dev_cdcs.h).
 */
/* renameat2(RENAME_EXCHANGE): re-installing the current version swaps it in atomically. */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opendm/file.h"
#include "opendm/pki.h"

#include "dev_cdcs.h"

#define DEV_CDCS_MAX_STATE (64 * 1024) /* bytes of a state.json */
#define DEV_CDCS_MAX_DEPTH 8           /* directory levels under a version (store/...) */
#define DEV_CDCS_NEW       ".new-"
#define DEV_CDCS_TMP_LINK  ".current.tmp"

int dev_cdcs_keys_load(const struct dev_config *cfg, struct dev_cdcs_keys *k, char *err,
                       size_t errlen)
{
	memset(k, 0, sizeof(*k));
	if (cfg->vendor_keys != NULL &&
	    cdcsimg_keyring_load(&k->vendors, cfg->vendor_keys, err, errlen) == -1)
		return -1;
	if (cfg->operator_pubkey != NULL &&
	    (k->operator_pub = pki_pubkey_load(cfg->operator_pubkey, err, errlen)) == NULL) {
		cdcsimg_keyring_free(&k->vendors);
		return -1;
	}
	return 0;
}

void dev_cdcs_keys_free(struct dev_cdcs_keys *k)
{
	cdcsimg_keyring_free(&k->vendors);
	EVP_PKEY_free(k->operator_pub);
	k->operator_pub = NULL;
}

/* A version directory's name: the decimal version_number. */
static int dev_cdcs_is_version(const char *s)
{
	size_t i;

	if (s[0] < '1' || s[0] > '9')
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (s[i] < '0' || s[i] > '9' || i >= 18)
			return 0;
	return 1;
}

static int dev_cdcs_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int dev_cdcs_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

/* state_dir/cdcs/<vendor>/<name>, for valid ids only (they become path components). */
static int dev_cdcs_base(const struct dev_config *cfg, const char *vendor, const char *name,
                         char *buf, size_t len)
{
	if (vendor == NULL || name == NULL || !cdcsimg_valid_id(vendor) || !cdcsimg_valid_id(name))
		return -1;
	return dev_cdcs_fmt(buf, len, "%s/cdcs/%s/%s", cfg->state_dir, vendor, name);
}

static int dev_cdcs_mkdir(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* state_dir/cdcs, its .download, <vendor> and <vendor>/<name>. */
static int dev_cdcs_mkdirs(const struct dev_config *cfg, const char *vendor, const char *name,
                           char *err, size_t errlen)
{
	char p[PATH_MAX];

	if (dev_cdcs_fmt(p, sizeof(p), "%s/cdcs", cfg->state_dir) == -1 ||
	    dev_cdcs_mkdir(p, err, errlen) == -1 ||
	    dev_cdcs_fmt(p, sizeof(p), "%s/cdcs/.download", cfg->state_dir) == -1 ||
	    dev_cdcs_mkdir(p, err, errlen) == -1 ||
	    dev_cdcs_fmt(p, sizeof(p), "%s/cdcs/%s", cfg->state_dir, vendor) == -1 ||
	    dev_cdcs_mkdir(p, err, errlen) == -1 ||
	    dev_cdcs_fmt(p, sizeof(p), "%s/cdcs/%s/%s", cfg->state_dir, vendor, name) == -1 ||
	    dev_cdcs_mkdir(p, err, errlen) == -1) {
		if (err[0] == '\0')
			snprintf(err, errlen, "state_dir too long");
		return -1;
	}
	return 0;
}

/* rm -rf below an open directory, never following links. */
static int dev_cdcs_rmtree_at(int dfd, const char *name, int depth)
{
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EISDIR && errno != EPERM) || depth > DEV_CDCS_MAX_DEPTH)
		return -1;
	if ((fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (dev_cdcs_rmtree_at(dirfd(d), de->d_name, depth + 1) == -1)
			rc = -1;
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) == -1 && errno != ENOENT)
		rc = -1;
	return rc;
}

static void dev_cdcs_rmtree(const char *path)
{
	if (dev_cdcs_rmtree_at(AT_FDCWD, path, 0) == -1)
		log_warn("cannot remove %s: %s", path, strerror(errno));
}

static int64_t dev_cdcs_parse_vn(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || (*end != '\0' && *end != '\n') || v < 0)
		return -1;
	return (int64_t)v;
}

/* The version the `current` link names, or 0. */
static int64_t dev_cdcs_current_vn(const char *base, char *name, size_t len)
{
	char link[PATH_MAX], target[32];
	ssize_t n;

	if (name != NULL && len > 0)
		name[0] = '\0';
	if (dev_cdcs_fmt(link, sizeof(link), "%s/current", base) == -1 ||
	    (n = readlink(link, target, sizeof(target) - 1)) <= 0)
		return 0;
	target[n] = '\0';
	if (!dev_cdcs_is_version(target))
		return 0;
	if (name != NULL)
		snprintf(name, len, "%s", target);
	return dev_cdcs_parse_vn(target);
}

/* What base/highest says, or 0. */
static int64_t dev_cdcs_highest_file(const char *base)
{
	char p[PATH_MAX], err[256], *text;
	int64_t v = 0;
	size_t len;

	if (dev_cdcs_fmt(p, sizeof(p), "%s/highest", base) == 0 &&
	    (text = file_read(p, 32, &len, err, sizeof(err))) != NULL) {
		v = dev_cdcs_parse_vn(text);
		free(text);
	}
	return v > 0 ? v : 0;
}

int64_t dev_cdcs_highest(const struct dev_config *cfg, const char *vendor, const char *name)
{
	char base[PATH_MAX];
	int64_t high, v;

	if (dev_cdcs_base(cfg, vendor, name, base, sizeof(base)) == -1)
		return 0;
	high = dev_cdcs_highest_file(base);
	/* The current version counts even if writing highest was interrupted. */
	if ((v = dev_cdcs_current_vn(base, NULL, 0)) > high)
		high = v;
	return high;
}

int dev_cdcs_verify(const struct dev_config *cfg, const struct dev_cdcs_keys *k,
                    const char *manifest_jws, const char *approval_jws, time_t now,
                    struct cdcsimg_manifest *m, const char **code, char *err, size_t errlen)
{
	int64_t high;

	if (cdcsimg_verify(k->vendors.n > 0 ? &k->vendors : NULL, k->operator_pub, manifest_jws,
	                   approval_jws, now, m, code, err, errlen) == -1)
		return -1;
	if (strcmp(m->platform, cfg->capability.platform) != 0) {
		*code = "wrong_platform";
		snprintf(err, errlen, "%s/%s is for %s, this device is %s", m->vendor, m->name,
		         m->platform, cfg->capability.platform);
		return -1;
	}
	high = dev_cdcs_highest(cfg, m->vendor, m->name);
	if (m->version_number < high) {
		*code = "rollback";
		snprintf(err, errlen,
		         "%s/%s version_number %" PRId64 " is older than %" PRId64
		         " installed before",
		         m->vendor, m->name, m->version_number, high);
		return -1;
	}
	*code = NULL;
	return 0;
}

int dev_cdcs_part_path(const struct dev_config *cfg, const struct cdcsimg_manifest *m, char *buf,
                       size_t len)
{
	if (!cdcsimg_valid_id(m->vendor) || !cdcsimg_valid_id(m->name) ||
	    !cdcsimg_valid_variant(m->variant))
		return -1;
	return dev_cdcs_fmt(buf, len, "%s/cdcs/.download/%s_%s_%s_%" PRId64 ".part", cfg->state_dir,
	                    m->vendor, m->name, m->variant, m->version_number);
}

/* cdcs.so: checked (size, sha256) as it lies in the private version directory, then made
 * executable and durable before it takes its name. */
static int dev_cdcs_put_image(const char *part, const char *dir, const struct cdcsimg_manifest *m,
                              const char **code, char *err, size_t errlen)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	int fd = -1;

	*code = "internal_error";
	if (dev_cdcs_fmt(tmp, sizeof(tmp), "%s/cdcs.so.new", dir) == -1 ||
	    dev_cdcs_fmt(dst, sizeof(dst), "%s/cdcs.so", dir) == -1) {
		snprintf(err, errlen, "state_dir too long");
		return -1;
	}
	if (rename(part, tmp) == -1) {
		snprintf(err, errlen, "rename %s: %s", part, strerror(errno));
		return -1;
	}
	if (cdcsimg_file_check(tmp, m, code, err, errlen) == -1)
		goto fail;
	*code = "internal_error";
	if ((fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1 || fchmod(fd, 0755) == -1 ||
	    fsync(fd) == -1 || rename(tmp, dst) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	return 0;
fail:
	if (fd != -1)
		close(fd);
	(void)unlink(tmp);
	return -1;
}

int dev_cdcs_install(const struct dev_config *cfg, const char *part, const char *manifest_jws,
                     const char *approval_jws, const struct cdcsimg_manifest *m,
                     struct dev_cdcs_inst *inst, const char **code, char *err, size_t errlen)
{
	char p[PATH_MAX];

	memset(inst, 0, sizeof(*inst));
	inst->m = *m;
	*code = "internal_error";
	err[0] = '\0';
	if (dev_cdcs_mkdirs(cfg, m->vendor, m->name, err, errlen) == -1)
		goto fail_part;
	if (dev_cdcs_base(cfg, m->vendor, m->name, inst->base, sizeof(inst->base)) == -1 ||
	    dev_cdcs_fmt(inst->dir, sizeof(inst->dir), "%s/" DEV_CDCS_NEW "%" PRId64, inst->base,
	                 m->version_number) == -1 ||
	    dev_cdcs_fmt(inst->name, sizeof(inst->name), "%" PRId64, m->version_number) == -1) {
		snprintf(err, errlen, "state_dir too long");
		inst->dir[0] = '\0';
		goto fail_part;
	}
	/* A leftover of an interrupted install of the same version. */
	dev_cdcs_rmtree(inst->dir);
	if (mkdir(inst->dir, 0700) == -1) {
		snprintf(err, errlen, "%s: %s", inst->dir, strerror(errno));
		inst->dir[0] = '\0';
		goto fail_part;
	}
	if (dev_cdcs_put_image(part, inst->dir, m, code, err, errlen) == -1)
		goto fail;
	*code = "internal_error";
	if (dev_cdcs_fmt(p, sizeof(p), "%s/manifest.jws", inst->dir) == -1 ||
	    file_write_atomic(p, manifest_jws, strlen(manifest_jws), 0644, err, errlen) == -1 ||
	    dev_cdcs_fmt(p, sizeof(p), "%s/approval.jws", inst->dir) == -1 ||
	    file_write_atomic(p, approval_jws, strlen(approval_jws), 0644, err, errlen) == -1 ||
	    dev_cdcs_fmt(p, sizeof(p), "%s/store", inst->dir) == -1 ||
	    dev_cdcs_mkdir(p, err, errlen) == -1 || dev_dir_fsync(inst->dir, err, errlen) == -1) {
		if (err[0] == '\0')
			snprintf(err, errlen, "state_dir too long");
		goto fail;
	}
	*code = NULL;
	return 0;
fail_part:
	/* Not moved in: the part stays for the next attempt, unless it is complete but wrong. */
	return -1;
fail:
	(void)unlink(part);
	dev_cdcs_abort(inst);
	return -1;
}

json_t *dev_cdcs_state_json(const struct cdcsimg_manifest *m, int personalized, const char *cdcs_id,
                            const json_t *rights, const char *perso_id, const char *key_sha256,
                            int64_t at)
{
	json_t *j =
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:s?, s:o, s:s?, s:s?, s:I, s:s, s:I}",
	              "vendor", m->vendor, "name", m->name, "kind", m->kind, "variant", m->variant,
	              "version", m->version, "version_number", (json_int_t)m->version_number,
	              "personalized", personalized, "cdcs_id", cdcs_id, "rights",
	              rights != NULL ? json_deep_copy(rights) : json_array(), "perso_id", perso_id,
	              "key_sha256", key_sha256, "at", (json_int_t)at, "sha256", m->sha256, "size",
	              (json_int_t)m->size);

	/* Keys with no value are there with null, so every state.json has the same shape. */
	if (j != NULL && cdcs_id == NULL)
		json_object_set_new(j, "cdcs_id", json_null());
	if (j != NULL && perso_id == NULL)
		json_object_set_new(j, "perso_id", json_null());
	if (j != NULL && key_sha256 == NULL)
		json_object_set_new(j, "key_sha256", json_null());
	return j;
}

/* Remove every version directory of base except keep ("" keeps none), and install leftovers. */
static void dev_cdcs_prune_versions(const char *base, const char *keep)
{
	char p[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(base)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, keep) == 0)
			continue;
		if (!dev_cdcs_is_version(de->d_name) &&
		    strncmp(de->d_name, DEV_CDCS_NEW, strlen(DEV_CDCS_NEW)) != 0 &&
		    strcmp(de->d_name, DEV_CDCS_TMP_LINK) != 0)
			continue;
		if (dev_cdcs_fmt(p, sizeof(p), "%s/%s", base, de->d_name) == 0)
			dev_cdcs_rmtree(p);
	}
	closedir(d);
}

/* The new version under its final name; *swapped when it replaced the current one. */
static int dev_cdcs_place(struct dev_cdcs_inst *inst, const char *final, int *swapped, char *err,
                          size_t errlen)
{
	char cur[32];
	struct stat st;

	*swapped = 0;
	(void)dev_cdcs_current_vn(inst->base, cur, sizeof(cur));
	if (lstat(final, &st) == 0) {
		if (strcmp(cur, inst->name) == 0) {
			/* Same version_number again (another variant, or a re-personalization):
			 * `current` keeps naming a complete version at every instant. */
			if (renameat2(AT_FDCWD, inst->dir, AT_FDCWD, final, RENAME_EXCHANGE) ==
			    -1) {
				snprintf(err, errlen, "exchange %s: %s", final, strerror(errno));
				return -1;
			}
			*swapped = 1;
			return 0;
		}
		dev_cdcs_rmtree(final); /* not current: a leftover */
	}
	if (rename(inst->dir, final) == -1) {
		snprintf(err, errlen, "rename %s: %s", inst->dir, strerror(errno));
		return -1;
	}
	return 0;
}

int dev_cdcs_commit(struct dev_cdcs_inst *inst, const json_t *state, char *err, size_t errlen)
{
	char p[PATH_MAX], final[PATH_MAX], tmp[PATH_MAX], link[PATH_MAX], num[32], *text = NULL;
	int swapped = 0;

	err[0] = '\0';
	if ((text = json_dumps(state, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (dev_cdcs_fmt(p, sizeof(p), "%s/state.json", inst->dir) == -1 ||
	    dev_cdcs_fmt(final, sizeof(final), "%s/%s", inst->base, inst->name) == -1 ||
	    dev_cdcs_fmt(tmp, sizeof(tmp), "%s/" DEV_CDCS_TMP_LINK, inst->base) == -1 ||
	    dev_cdcs_fmt(link, sizeof(link), "%s/current", inst->base) == -1) {
		snprintf(err, errlen, "state_dir too long");
		goto fail;
	}
	if (file_write_atomic(p, text, strlen(text), 0644, err, errlen) == -1)
		goto fail;
	if (dev_cdcs_place(inst, final, &swapped, err, errlen) == -1)
		goto fail;
	if (!swapped) {
		/* inst->dir is now final: a failure below takes the new version back out. */
		snprintf(inst->dir, sizeof(inst->dir), "%s", final);
		(void)unlink(tmp);
		if (symlink(inst->name, tmp) == -1 || rename(tmp, link) == -1) {
			snprintf(err, errlen, "switch %s: %s", link, strerror(errno));
			(void)unlink(tmp);
			goto fail;
		}
	}
	/* From here the new version is current: nothing below undoes it. */
	inst->dir[0] = '\0';
	if (dev_dir_fsync(inst->base, err, errlen) == -1)
		log_warn("%s", err);
	if (inst->m.version_number > dev_cdcs_highest_file(inst->base)) {
		snprintf(num, sizeof(num), "%" PRId64 "\n", inst->m.version_number);
		if (dev_cdcs_fmt(p, sizeof(p), "%s/highest", inst->base) == -1 ||
		    file_write_atomic(p, num, strlen(num), 0644, err, errlen) == -1)
			log_warn("highest of %s/%s not written: %s", inst->m.vendor, inst->m.name,
			         err);
	}
	/* Break only after make: the older version (or the swapped-out one) goes last. */
	dev_cdcs_prune_versions(inst->base, inst->name);
	free(text);
	return 0;
fail:
	free(text);
	dev_cdcs_abort(inst);
	return -1;
}

void dev_cdcs_abort(struct dev_cdcs_inst *inst)
{
	if (inst->dir[0] != '\0')
		dev_cdcs_rmtree(inst->dir);
	inst->dir[0] = '\0';
}

int dev_cdcs_remove(const struct dev_config *cfg, const char *vendor, const char *name, char *err,
                    size_t errlen)
{
	char base[PATH_MAX], link[PATH_MAX];

	if (dev_cdcs_base(cfg, vendor, name, base, sizeof(base)) == -1 ||
	    dev_cdcs_fmt(link, sizeof(link), "%s/current", base) == -1) {
		snprintf(err, errlen, "bad vendor or name");
		return -1;
	}
	if (unlink(link) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", link, strerror(errno));
		return -1;
	}
	(void)dev_dir_fsync(base, err, errlen);
	err[0] = '\0';
	dev_cdcs_prune_versions(base, "");
	return 0;
}

json_t *dev_cdcs_state(const struct dev_config *cfg, const char *vendor, const char *name)
{
	char base[PATH_MAX], p[PATH_MAX], cur[32], err[256], *text;
	const char *v, *n;
	json_t *j;
	size_t len;

	if (dev_cdcs_base(cfg, vendor, name, base, sizeof(base)) == -1 ||
	    dev_cdcs_current_vn(base, cur, sizeof(cur)) <= 0 ||
	    dev_cdcs_fmt(p, sizeof(p), "%s/%s/state.json", base, cur) == -1 ||
	    (text = file_read(p, DEV_CDCS_MAX_STATE, &len, err, sizeof(err))) == NULL)
		return NULL;
	j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	free(text);
	v = json_string_value(json_object_get(j, "vendor"));
	n = json_string_value(json_object_get(j, "name"));
	/* The state of another CDCS under this name would be a broken installation. */
	if (v == NULL || n == NULL || strcmp(v, vendor) != 0 || strcmp(n, name) != 0 ||
	    !json_is_integer(json_object_get(j, "version_number"))) {
		log_warn("%s: not the state of %s/%s", p, vendor, name);
		json_decref(j);
		return NULL;
	}
	return j;
}

int dev_cdcs_current_dir(const struct dev_config *cfg, const char *vendor, const char *name,
                         char *buf, size_t len)
{
	char base[PATH_MAX], cur[32];

	if (dev_cdcs_base(cfg, vendor, name, base, sizeof(base)) == -1 ||
	    dev_cdcs_current_vn(base, cur, sizeof(cur)) <= 0)
		return -1;
	return dev_cdcs_fmt(buf, len, "%s/%s", base, cur);
}

static int dev_cdcs_visible(const struct dirent *de)
{
	return cdcsimg_valid_id(de->d_name);
}

/* Sorted valid-id entries of dir (at most max); n or -1. Free each and the array. */
static int dev_cdcs_scan(const char *dir, struct dirent ***out)
{
	return scandir(dir, out, dev_cdcs_visible, alphasort);
}

static void dev_cdcs_scan_free(struct dirent **v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

json_t *dev_cdcs_list(const struct dev_config *cfg)
{
	struct dirent **vendors = NULL, **names = NULL;
	char root[PATH_MAX], dir[PATH_MAX];
	json_t *all = json_array(), *st;
	int nv, nn, i, j;

	if (all == NULL || dev_cdcs_fmt(root, sizeof(root), "%s/cdcs", cfg->state_dir) == -1 ||
	    (nv = dev_cdcs_scan(root, &vendors)) < 0)
		return all;
	for (i = 0; i < nv; i++) {
		if (dev_cdcs_fmt(dir, sizeof(dir), "%s/%s", root, vendors[i]->d_name) == -1 ||
		    (nn = dev_cdcs_scan(dir, &names)) < 0)
			continue;
		for (j = 0; j < nn; j++) {
			if (json_array_size(all) >= DEV_CDCS_MAX_ITEMS * 4)
				break;
			st = dev_cdcs_state(cfg, vendors[i]->d_name, names[j]->d_name);
			if (st == NULL)
				continue;
			/* States written before kind and key_sha256 were recorded: same shape. */
			if (json_object_get(st, "kind") == NULL)
				json_object_set_new(st, "kind", json_null());
			if (json_object_get(st, "key_sha256") == NULL)
				json_object_set_new(st, "key_sha256", json_null());
			json_array_append_new(all, st);
		}
		dev_cdcs_scan_free(names, nn);
	}
	dev_cdcs_scan_free(vendors, nv);
	return all;
}

void dev_cdcs_cleanup(const struct dev_config *cfg)
{
	struct dirent **vendors = NULL, **names = NULL;
	char root[PATH_MAX], dir[PATH_MAX], base[PATH_MAX], cur[32];
	int nv, nn, i, j;

	if (dev_cdcs_fmt(root, sizeof(root), "%s/cdcs", cfg->state_dir) == -1 ||
	    (nv = dev_cdcs_scan(root, &vendors)) < 0)
		return;
	for (i = 0; i < nv; i++) {
		if (dev_cdcs_fmt(dir, sizeof(dir), "%s/%s", root, vendors[i]->d_name) == -1 ||
		    (nn = dev_cdcs_scan(dir, &names)) < 0)
			continue;
		for (j = 0; j < nn; j++) {
			if (dev_cdcs_fmt(base, sizeof(base), "%s/%s", dir, names[j]->d_name) == -1)
				continue;
			(void)dev_cdcs_current_vn(base, cur, sizeof(cur));
			dev_cdcs_prune_versions(base, cur);
		}
		dev_cdcs_scan_free(names, nn);
	}
	dev_cdcs_scan_free(vendors, nv);
}

void dev_cdcs_parts_prune(const struct dev_config *cfg, const char *const *keep, size_t n)
{
	char dir[PATH_MAX];
	struct dirent *de;
	size_t i;
	DIR *d;

	if (dev_cdcs_fmt(dir, sizeof(dir), "%s/cdcs/.download", cfg->state_dir) == -1 ||
	    (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		for (i = 0; i < n; i++)
			if (keep[i] != NULL && strcmp(keep[i], de->d_name) == 0)
				break;
		if (i == n && unlinkat(dirfd(d), de->d_name, 0) == -1)
			log_warn("%s/%s: %s", dir, de->d_name, strerror(errno));
	}
	closedir(d);
}
