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

#endif
