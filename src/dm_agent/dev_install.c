/* dev_install: check a downloaded package and install it atomically (Figure 4, step 5). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "opendm/file.h"

#include "dev.h"

/* Size and digest of an open file, read from the start. */
static int dev_fd_digest(int fd, int64_t *size, char hex[65], char *err, size_t errlen)
{
	EVP_MD_CTX *md = NULL;
	unsigned char buf[65536], d[32];
	unsigned int dn = 0;
	ssize_t n;
	off_t off = 0;
	size_t i;
	int rc = -1;

	if ((md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	while ((n = pread(fd, buf, sizeof(buf), off)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "read: %s", strerror(errno));
			goto out;
		}
		if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
			goto out;
		off += n;
	}
	if (EVP_DigestFinal_ex(md, d, &dn) != 1 || dn != 32)
		goto out;
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	*size = (int64_t)off;
	rc = 0;
out:
	if (rc == -1 && err[0] == '\0')
		snprintf(err, errlen, "sha256 failed");
	EVP_MD_CTX_free(md);
	return rc;
}

static int dev_fd_check(int fd, const struct dev_manifest *m, const char **code, char *err,
                        size_t errlen)
{
	char hex[65];
	int64_t size = 0;

	*code = "internal_error";
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (dev_fd_digest(fd, &size, hex, err, errlen) == -1)
		return -1;
	if (size != m->size) {
		*code = "bad_size";
		snprintf(err, errlen, "package is %lld bytes, the manifest says %lld",
		         (long long)size, (long long)m->size);
		return -1;
	}
	if (strcmp(hex, m->sha256) != 0) {
		*code = "bad_digest";
		snprintf(err, errlen, "package sha256 does not match the manifest");
		return -1;
	}
	*code = NULL;
	return 0;
}

int dev_package_check(const char *path, const struct dev_manifest *m, const char **code, char *err,
                      size_t errlen)
{
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		*code = "internal_error";
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	rc = dev_fd_check(fd, m, code, err, errlen);
	close(fd);
	return rc;
}

int dev_dir_fsync(const char *dir, char *err, size_t errlen)
{
	int fd, rc;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	rc = fsync(fd);
	close(fd);
	if (rc == -1)
		snprintf(err, errlen, "fsync %s: %s", dir, strerror(errno));
	return rc;
}

int dev_install(const struct dev_config *cfg, const char *part, const char *manifest_jws,
                const struct dev_manifest *m, const char **code, char *err, size_t errlen)
{
	char dir[PATH_MAX], tmp[PATH_MAX], dst[PATH_MAX], man[PATH_MAX];
	int fd = -1;

	*code = "internal_error";
	if (dev_path(dir, sizeof(dir), cfg, "agent") == -1 ||
	    dev_path(tmp, sizeof(tmp), cfg, "agent/dm-agent.new") == -1 ||
	    dev_path(dst, sizeof(dst), cfg, "agent/dm-agent") == -1 ||
	    dev_path(man, sizeof(man), cfg, "agent/manifest.jws") == -1) {
		snprintf(err, errlen, "state_dir too long");
		goto fail;
	}
	(void)unlink(tmp);
	/* The part file becomes dm-agent.new: checked through the same open file we chmod and
	 * fsync, so what is verified is what gets installed. */
	if (rename(part, tmp) == -1) {
		snprintf(err, errlen, "rename %s: %s", part, strerror(errno));
		goto fail;
	}
	if ((fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (dev_fd_check(fd, m, code, err, errlen) == -1)
		goto fail;
	*code = "internal_error";
	if (fchmod(fd, 0755) == -1 || fsync(fd) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, dst) == -1) {
		snprintf(err, errlen, "rename %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (dev_dir_fsync(dir, err, errlen) == -1)
		goto fail;
	if (file_write_atomic(man, manifest_jws, strlen(manifest_jws), 0644, err, errlen) == -1)
		goto fail;
	*code = NULL;
	return 0;
fail:
	if (fd != -1)
		close(fd);
	(void)unlink(tmp);
	return -1;
}

void dev_download_prune(const struct dev_config *cfg, const char *keep)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int fd;

	if (dev_path(dir, sizeof(dir), cfg, "agent/.download") == -1 || (d = opendir(dir)) == NULL)
		return;
	fd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, keep) == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == -1)
			log_warn("%s/%s: %s", dir, de->d_name, strerror(errno));
	}
	closedir(d);
}
