/* file: bounded reads and crash-safe writes of whole files. */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "opendm/file.h"
#include "opendm/log.h"

char *file_read(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL, *nbuf;
	size_t cap, total = 0;
	ssize_t r;
	int fd = -1;

	if (len != NULL)
		*len = 0;
	if (max >= SIZE_MAX / 2) {
		log_seterr(err, errlen, __func__, "%s: size limit %zu is too large", path, max);
		goto fail;
	}
	/* O_NONBLOCK: opening a FIFO must not hang; it is refused below anyway. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		log_seterr(err, errlen, __func__, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) == -1) {
		log_seterr(err, errlen, __func__, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		log_seterr(err, errlen, __func__, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_size < 0 || (unsigned long long)st.st_size > max) {
		log_seterr(err, errlen, __func__, "%s: file is larger than %zu bytes", path, max);
		goto fail;
	}
	/* The size may change while we read: read until EOF, but never past max. */
	cap = (size_t)st.st_size + 1;
	if ((buf = malloc(cap)) == NULL) {
		log_seterr(err, errlen, __func__, "%s: out of memory", path);
		goto fail;
	}
	for (;;) {
		if (total == cap - 1) {
			if (total > max) {
				log_seterr(err, errlen, __func__,
				           "%s: file is larger than %zu bytes", path, max);
				goto fail;
			}
			cap = cap * 2 > max + 2 ? max + 2 : cap * 2;
			if ((nbuf = realloc(buf, cap)) == NULL) {
				log_seterr(err, errlen, __func__, "%s: out of memory", path);
				goto fail;
			}
			buf = nbuf;
		}
		r = read(fd, buf + total, cap - 1 - total);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			log_seterr(err, errlen, __func__, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		total += (size_t)r;
	}
	if (total > max) {
		log_seterr(err, errlen, __func__, "%s: file is larger than %zu bytes", path, max);
		goto fail;
	}
	buf[total] = '\0';
	close(fd);
	if (len != NULL)
		*len = total;
	return buf;
fail:
	free(buf);
	if (fd != -1)
		close(fd);
	return NULL;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	ssize_t w;

	while (len > 0) {
		w = write(fd, p, len);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
                      size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *slash, *base;
	int fd = -1, dfd = -1, created = 0, n;

	slash = strrchr(path, '/');
	base = slash != NULL ? slash + 1 : path;
	if (*base == '\0') {
		log_seterr(err, errlen, __func__, "%s: not a file name", path);
		goto fail;
	}
	if (slash == NULL)
		n = snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		n = snprintf(dir, sizeof(dir), "/");
	else
		n = snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (n < 0 || (size_t)n >= sizeof(dir)) {
		log_seterr(err, errlen, __func__, "%s: path too long", path);
		goto fail;
	}
	/* The temp file lives in the target's directory so that rename(2) is atomic. */
	n = snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, base);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		log_seterr(err, errlen, __func__, "%s: path too long", path);
		goto fail;
	}
	if ((fd = mkstemp(tmp)) == -1) {
		log_seterr(err, errlen, __func__, "%s: cannot create temporary file: %s", path,
		           strerror(errno));
		goto fail;
	}
	created = 1;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 || fchmod(fd, mode & 07777) == -1 ||
	    write_all(fd, data, len) == -1 || fsync(fd) == -1) {
		log_seterr(err, errlen, __func__, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		log_seterr(err, errlen, __func__, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		log_seterr(err, errlen, __func__, "%s: rename: %s", path, strerror(errno));
		goto fail;
	}
	created = 0;
	/* Without this the rename itself may not survive a crash. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_seterr(err, errlen, __func__, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if (fsync(dfd) == -1 && errno != EINVAL) {
		log_seterr(err, errlen, __func__, "%s: fsync: %s", dir, strerror(errno));
		goto fail;
	}
	close(dfd);
	return 0;
fail:
	if (fd != -1)
		close(fd);
	if (dfd != -1)
		close(dfd);
	if (created)
		unlink(tmp);
	return -1;
}

/* Open, then fstat: the mode we report is that of the file a reader will get. */
static int file_stat_regular(const char *path, struct stat *st, char *err, size_t errlen)
{
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1 || fstat(fd, st) == -1) {
		log_seterr(err, errlen, __func__, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st->st_mode)) {
		log_seterr(err, errlen, __func__, "%s: not a regular file", path);
		goto fail;
	}
	close(fd);
	return 0;
fail:
	if (fd != -1)
		close(fd);
	return -1;
}

int file_check_readable(const char *path, char *err, size_t errlen)
{
	struct stat st;

	return file_stat_regular(path, &st, err, errlen);
}

int file_check_private(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (file_stat_regular(path, &st, err, errlen) == -1)
		return -1;
	if ((st.st_mode & 077) != 0) {
		log_seterr(
		    err, errlen, __func__,
		    "%s: private key is readable by group or others (mode %04o); chmod 600 it",
		    path, (unsigned int)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}
