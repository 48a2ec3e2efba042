/*
 * filesrv: serve a regular file over httpd, resumably (RFC 9110 ranges), without ever holding
 * it in memory: the body is read with pread() as the client drains what was sent.
 *
 * Replies carry Content-Length, the caller's strong ETag and Accept-Ranges: bytes. One range
 * (bytes=N-, bytes=N-M, bytes=-S) gives 206 with Content-Range; an unsatisfiable one 416 with a
 * Content-Range that gives only the size; a malformed or multi-range header is ignored (200, as RFC
 * 9110 allows), and so is a Range whose If-Range does not match the ETag. HEAD gets the same
 * headers and no body.
 */
#ifndef OPENDM_FILESRV_H
#define OPENDM_FILESRV_H

#include <stdint.h>

#include "opendm/httpd.h"

/*
 * Reply to req with the file at path. etag is the full header value, quotes included
 * ("\"<sha256>\""), and must name this content exactly (strong); content_type NULL means
 * application/octet-stream. Always replies exactly once: 0 when the file (or 416) is sent,
 * -1 after an error reply (404 not_found when the file is gone, 500 internal_error when it
 * cannot be read or is not a regular file).
 */
int filesrv_reply(struct httpd_req *req, const char *path, const char *etag,
                  const char *content_type);

/*
 * How a reply ended: ok = 1 when all of it was sent (sent bytes starting at first, of a file of
 * size bytes), 0 when it failed, the client left, or nothing was streamed (416, errors: then
 * size is -1 if unknown). Called from the loop, after the request is gone.
 */
typedef void (*filesrv_done_fn)(void *arg, int ok, int64_t first, int64_t sent, int64_t size);
/* filesrv_reply() that calls done(done_arg, ...) exactly once, whatever happens (possibly
 * before it returns). */
int filesrv_reply_cb(struct httpd_req *req, const char *path, const char *etag,
                     const char *content_type, filesrv_done_fn done, void *done_arg);

#endif
