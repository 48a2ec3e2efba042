/* filesrv: resumable file downloads over httpd (see filesrv.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "opendm/filesrv.h"
#include "opendm/log.h"

/* What one streaming reply needs between fill() calls. */
struct filesrv_stream {
	int fd;
	int64_t first; /* first byte of the reply */
	int64_t off;   /* next byte to send */
	int64_t end;   /* one past the last byte to send */
	int64_t size;  /* of the file */
	filesrv_done_fn done;
	void *done_arg;
	char rid[HTTPD_RID_MAX + 1];
};

enum filesrv_range {
	FILESRV_WHOLE,   /* no usable Range: 200 with the whole file */
	FILESRV_PART,    /* 206 with [first, last] */
	FILESRV_UNSATIS, /* 416 */
};

/* A non-empty run of digits that fits in int64_t; *s is advanced past it. */
static int filesrv_num(const char **s, int64_t *out)
{
	const char *p = *s;
	int64_t v = 0;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	*s = p;
	*out = v;
	return 0;
}

/*
 * Interpret a Range header against a file of size bytes. Anything but one well-formed byte
 * range is FILESRV_WHOLE: RFC 9110 §14.2 lets a server ignore a Range it does not support, and
 * serving a multi-range as one whole body is simpler and safer than multipart.
 */
static enum filesrv_range filesrv_parse_range(const char *h, int64_t size, int64_t *first,
                                              int64_t *last)
{
	int64_t a, b;

	if (h == NULL || strncasecmp(h, "bytes=", 6) != 0)
		return FILESRV_WHOLE;
	h += 6;
	while (*h == ' ' || *h == '\t')
		h++;
	if (*h == '-') {
		h++;
		if (filesrv_num(&h, &b) == -1)
			return FILESRV_WHOLE;
		while (*h == ' ' || *h == '\t')
			h++;
		if (*h != '\0')
			return FILESRV_WHOLE;
		if (b == 0 || size == 0)
			return FILESRV_UNSATIS;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return FILESRV_PART;
	}
	if (filesrv_num(&h, &a) == -1 || *h++ != '-')
		return FILESRV_WHOLE;
	b = -1;
	if (*h >= '0' && *h <= '9' && filesrv_num(&h, &b) == -1)
		return FILESRV_WHOLE;
	while (*h == ' ' || *h == '\t')
		h++;
	if (*h != '\0' || (b >= 0 && b < a))
		return FILESRV_WHOLE;
	if (a >= size)
		return FILESRV_UNSATIS;
	*first = a;
	*last = b < 0 || b >= size ? size - 1 : b;
	return FILESRV_PART;
}

static int filesrv_fill(struct evbuffer *out, size_t want, void *arg)
{
	struct filesrv_stream *st = arg;
	struct evbuffer_iovec vec;
	int64_t left = st->end - st->off;
	ssize_t n;

	if (left <= 0)
		return 0;
	if ((int64_t)want > left)
		want = (size_t)left;
	if (evbuffer_reserve_space(out, (ev_ssize_t)want, &vec, 1) < 1) {
		log_rerr(st->rid, "out of memory");
		return -1;
	}
	do
		n = pread(st->fd, vec.iov_base, want, (off_t)st->off);
	while (n == -1 && errno == EINTR);
	if (n <= 0) {
		/* The file shrank or failed under us: the length already sent cannot be met. */
		log_rerr(st->rid, "read at %" PRId64 ": %s", st->off,
		         n == 0 ? "unexpected end of file" : strerror(errno));
		return -1;
	}
	vec.iov_len = (size_t)n;
	if (evbuffer_commit_space(out, &vec, 1) == -1) {
		log_rerr(st->rid, "cannot commit read data");
		return -1;
	}
	st->off += n;
	return st->off < st->end ? 1 : 0;
}

static void filesrv_done(void *arg, int ok)
{
	struct filesrv_stream *st = arg;

	if (!ok)
		log_rdebug(st->rid, "download ended early at byte %" PRId64, st->off);
	if (st->done != NULL)
		st->done(st->done_arg, ok, st->first, ok ? st->end - st->first : 0, st->size);
	close(st->fd);
	free(st);
}

/* If-Range with an ETag other than ours (or a date: we give none) voids the Range. */
static int filesrv_if_range_ok(struct httpd_req *req, const char *etag)
{
	const char *ir = httpd_req_header(req, "If-Range");

	return ir == NULL || (etag != NULL && strcmp(ir, etag) == 0);
}

int filesrv_reply(struct httpd_req *req, const char *path, const char *etag,
                  const char *content_type)
{
	return filesrv_reply_cb(req, path, etag, content_type, NULL, NULL);
}

int filesrv_reply_cb(struct httpd_req *req, const char *path, const char *etag,
                     const char *content_type, filesrv_done_fn done, void *done_arg)
{
	struct filesrv_stream *st = NULL;
	enum filesrv_range kind = FILESRV_WHOLE;
	int64_t size, first = 0, last = 0;
	char buf[96];
	struct stat sb;
	int fd, status = 200;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT || errno == ENOTDIR) {
			log_rwarn(httpd_req_id(req), "%s: gone", path);
			httpd_reply_error(req, 404, "not_found", "no such file");
		} else {
			log_rerr(httpd_req_id(req), "%s: %s", path, strerror(errno));
			httpd_reply_error(req, 500, "internal_error", "cannot read the file");
		}
		if (done != NULL)
			done(done_arg, 0, 0, 0, -1);
		return -1;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		log_rerr(httpd_req_id(req), "%s: not a readable regular file", path);
		httpd_reply_error(req, 500, "internal_error", "cannot read the file");
		goto fail;
	}
	size = (int64_t)sb.st_size;

	if (etag != NULL)
		httpd_add_header(req, "ETag", etag);
	httpd_add_header(req, "Accept-Ranges", "bytes");
	if (filesrv_if_range_ok(req, etag))
		kind = filesrv_parse_range(httpd_req_header(req, "Range"), size, &first, &last);
	if (kind == FILESRV_UNSATIS) {
		snprintf(buf, sizeof(buf), "bytes */%" PRId64, size);
		httpd_add_header(req, "Content-Range", buf);
		httpd_reply_error(req, 416, "range_not_satisfiable",
		                  "the range is outside the %" PRId64 " bytes of the file", size);
		close(fd);
		if (done != NULL)
			done(done_arg, 0, 0, 0, size);
		return 0;
	}
	if (kind == FILESRV_PART) {
		snprintf(buf, sizeof(buf), "bytes %" PRId64 "-%" PRId64 "/%" PRId64, first, last,
		         size);
		httpd_add_header(req, "Content-Range", buf);
		status = 206;
	} else {
		first = 0;
		last = size - 1;
	}

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		goto fail;
	}
	st->fd = fd;
	st->first = first;
	st->off = first;
	st->end = last + 1;
	st->size = size;
	snprintf(st->rid, sizeof(st->rid), "%s", httpd_req_id(req));
	httpd_add_header(req, "Content-Type",
	                 content_type != NULL ? content_type : "application/octet-stream");
	/* Set only now: until the stream owns st, a failure reports through fail below. */
	st->done = done;
	st->done_arg = done_arg;
	if (httpd_reply_stream(req, status, st->end - st->off, filesrv_fill, filesrv_done, st) ==
	    -1) {
		httpd_reply_error(req, 500, "internal_error", "cannot start the download");
		free(st);
		goto fail;
	}
	return 0; /* fd and st now belong to the stream: filesrv_done() releases them */

fail:
	close(fd);
	if (done != NULL)
		done(done_arg, 0, 0, 0, -1);
	return -1;
}
