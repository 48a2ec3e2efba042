/* file: bounded reads and crash-safe writes of whole files. */
#ifndef OPENDM_FILE_H
#define OPENDM_FILE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Read a regular file of at most max bytes into a NUL-terminated malloc'd buffer; *len gets
 * the size without the NUL. Returns NULL with a message naming the path in err.
 */
char *file_read(const char *path, size_t max, size_t *len, char *err, size_t errlen);
/*
 * Write data to path atomically: temp file in the same directory with the given mode,
 * fsync, rename, fsync of the directory. Either the old or the new content survives a crash.
 */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
                      size_t errlen);
/* 0 if path is a regular file this process can open for reading, else -1 + message. */
int file_check_readable(const char *path, char *err, size_t errlen);
/* 0 if path is a regular file not readable/writable by group or others, else -1 + message. */
int file_check_private(const char *path, char *err, size_t errlen);

#endif
