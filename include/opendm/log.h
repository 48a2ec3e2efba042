/*
 * log: one structured line per event on stderr (logfmt), journald-friendly.
 *
 * The sink is process-wide state, as stderr itself is: log.c holds the ident and level
 * (the one deliberate exception to "no globals", as in OpenBSD's log.c). Every line:
 *   ts=2026-11-24T17:00:00.123Z level=info daemon=dm-mss func=foo rid=abc msg="text" k=v...
 * Under systemd (JOURNAL_STREAM set) the line starts with "<N>" (sd-daemon priority prefix)
 * and omits ts=, since journald stamps it. Values with spaces, quotes or control characters
 * are quoted and escaped, so one event is always one line whatever a peer sent.
 */
#ifndef OPENDM_LOG_H
#define OPENDM_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN = 1,
	LOG_LVL_INFO = 2,
	LOG_LVL_DEBUG = 3,
};

/* Set the process ident (e.g. "dm-mss") and the lowest level written. */
void log_init(const char *ident, enum log_level level);
/* Change the level (e.g. on config reload). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "err|warn|info|debug"; returns 0 and sets *out, or -1. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

/*
 * Write one event. func is the caller's __func__, rid a request id or NULL. fmt is the
 * human message; it is escaped, never trusted to be one line.
 */
void log_msg(enum log_level level, const char *func, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_vmsg(enum log_level level, const char *func, const char *rid, const char *fmt, va_list ap);

/*
 * A step of a J.1020 flow: flow is "fig4" or "fig5", step its number, subject the hw id or
 * DM id. Written at info level as: flow=fig4 step=7 rid=.. subject=.. msg="..".
 */
void log_step(const char *flow, int step, const char *rid, const char *subject, const char *fmt,
              ...) __attribute__((format(printf, 5, 6)));

/*
 * Report an error: into err when the caller gave a buffer (it decides what to do with the
 * message), else into the log at error level under func. Shared by every module that takes
 * an (err, errlen) pair.
 */
void log_seterr(char *err, size_t errlen, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_err(...)   log_msg(LOG_LVL_ERR, __func__, NULL, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __func__, NULL, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __func__, NULL, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __func__, NULL, __VA_ARGS__)
/* The same with a request id. */
#define log_rerr(rid, ...)   log_msg(LOG_LVL_ERR, __func__, (rid), __VA_ARGS__)
#define log_rwarn(rid, ...)  log_msg(LOG_LVL_WARN, __func__, (rid), __VA_ARGS__)
#define log_rinfo(rid, ...)  log_msg(LOG_LVL_INFO, __func__, (rid), __VA_ARGS__)
#define log_rdebug(rid, ...) log_msg(LOG_LVL_DEBUG, __func__, (rid), __VA_ARGS__)

#endif
