/*
 * log: one logfmt line per event on stderr.
 *
 * The sink state below is the project's one deliberate global (see log.h): stderr is
 * process-wide, so is the way we write to it.
 */
#include <sys/stat.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "opendm/log.h"

/* One event never exceeds this, newline included, so it stays one atomic write(2). */
#define LOG_LINE_MAX 4096
/* The human message is formatted here first; anything longer is cut anyway. */
#define LOG_MSG_MAX   LOG_LINE_MAX
#define LOG_IDENT_MAX 64
/* Room kept free for the truncation marker, a closing quote and the newline. */
#define LOG_TAIL (sizeof("\xe2\x80\xa6") - 1 + 2)

static char log_ident[LOG_IDENT_MAX];
static enum log_level log_level = LOG_LVL_INFO;
static int log_journal = -1; /* -1: not yet checked */

struct logbuf {
	char b[LOG_LINE_MAX];
	size_t len;
	int full;    /* something did not fit: the line ends with the marker */
	int inquote; /* the cut happened inside a quoted value */
	int fields;
};

/*
 * journald sets JOURNAL_STREAM to the device:inode of the stream it gave us; stderr only goes
 * to the journal if it is still that stream (a child may inherit the variable with stderr
 * redirected elsewhere).
 */
static int log_check_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char c;

	if (js == NULL || sscanf(js, "%llu:%llu%c", &dev, &ino, &c) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident, enum log_level level)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident != NULL ? ident : "");
	log_set_level(level);
	log_journal = log_check_journal();
}

void log_set_level(enum log_level level)
{
	if ((int)level < LOG_LVL_ERR)
		level = LOG_LVL_ERR;
	if (level > LOG_LVL_DEBUG)
		level = LOG_LVL_DEBUG;
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

static const char *const log_names[] = {"err", "warn", "info", "debug"};

int log_level_parse(const char *s, enum log_level *out)
{
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcmp(s, log_names[i]) == 0) {
			if (out != NULL)
				*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *log_level_name(enum log_level level)
{
	if ((int)level < LOG_LVL_ERR || level > LOG_LVL_DEBUG)
		return "?";
	return log_names[level];
}

/* Append n bytes as a unit: either all fit (leaving room for the tail) or the line is cut. */
static void lb_put(struct logbuf *lb, const char *s, size_t n)
{
	if (lb->full)
		return;
	if (lb->len + n > sizeof(lb->b) - LOG_TAIL) {
		lb->full = 1;
		return;
	}
	memcpy(lb->b + lb->len, s, n);
	lb->len += n;
}

static void lb_str(struct logbuf *lb, const char *s)
{
	lb_put(lb, s, strlen(s));
}

/* Length of a valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned int cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are not text. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static int needs_quote(const char *s)
{
	const unsigned char *p;

	if (*s == '\0')
		return 1;
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f)
			return 1;
	return 0;
}

/* Write a value, quoted and escaped when it could break the line or the key=value syntax. */
static void lb_value(struct logbuf *lb, const char *s, int force_quote)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t rem = strlen(s), n;
	char esc[8];

	if (!force_quote && !needs_quote(s)) {
		lb_put(lb, s, rem);
		return;
	}
	lb_put(lb, "\"", 1);
	if (!lb->full)
		lb->inquote = 1;
	while (rem > 0 && !lb->full) {
		n = 1;
		switch (*p) {
		case '"':
			lb_put(lb, "\\\"", 2);
			break;
		case '\\':
			lb_put(lb, "\\\\", 2);
			break;
		case '\n':
			lb_put(lb, "\\n", 2);
			break;
		case '\r':
			lb_put(lb, "\\r", 2);
			break;
		case '\t':
			lb_put(lb, "\\t", 2);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f ||
			    (*p >= 0x80 && (n = utf8_len(p, rem)) == 0)) {
				n = 1;
				snprintf(esc, sizeof(esc), "\\x%02x", *p);
				lb_put(lb, esc, 4);
			} else
				lb_put(lb, (const char *)p, n);
			break;
		}
		p += n;
		rem -= n;
	}
	lb_put(lb, "\"", 1);
	if (!lb->full)
		lb->inquote = 0;
}

static void lb_kv(struct logbuf *lb, const char *key, const char *value, int force_quote)
{
	if (lb->fields++ > 0)
		lb_put(lb, " ", 1);
	lb_str(lb, key);
	lb_put(lb, "=", 1);
	lb_value(lb, value, force_quote);
}

static void lb_head(struct logbuf *lb, enum log_level level)
{
	static const char *const prio[] = {"<3>", "<4>", "<6>", "<7>"};
	struct timespec ts;
	struct tm tm;
	char tbuf[64];

	if (log_journal == -1)
		log_journal = log_check_journal();
	if (log_journal) {
		lb_str(lb, prio[level]);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		snprintf(tbuf, sizeof(tbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		         tm.tm_sec, ts.tv_nsec / 1000000);
		lb_kv(lb, "ts", tbuf, 0);
	}
	lb_kv(lb, "level", log_level_name(level), 0);
	if (log_ident[0] != '\0')
		lb_kv(lb, "daemon", log_ident, 0);
}

/* Close the line and hand it to the kernel in one write(2), so lines never interleave. */
static void lb_flush(struct logbuf *lb)
{
	const char *p;
	size_t left;
	ssize_t w;

	if (lb->full) {
		/* LOG_TAIL bytes were kept free for exactly this. */
		memcpy(lb->b + lb->len, "\xe2\x80\xa6", 3);
		lb->len += 3;
		if (lb->inquote)
			lb->b[lb->len++] = '"';
	}
	lb->b[lb->len++] = '\n';
	p = lb->b;
	left = lb->len;
	while (left > 0) {
		w = write(STDERR_FILENO, p, left);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		left -= (size_t)w;
	}
}

static void lb_msg(struct logbuf *lb, const char *fmt, va_list ap)
{
	char msg[LOG_MSG_MAX];
	int n;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		snprintf(msg, sizeof(msg), "(unformattable message)");
	lb_kv(lb, "msg", msg, 1);
	if (n >= (int)sizeof(msg))
		lb->full = 1;
}

void log_vmsg(enum log_level level, const char *func, const char *rid, const char *fmt, va_list ap)
{
	struct logbuf lb;
	int saved = errno;

	if ((int)level < LOG_LVL_ERR)
		level = LOG_LVL_ERR;
	if (level > LOG_LVL_DEBUG)
		level = LOG_LVL_DEBUG;
	if (level > log_level)
		return;
	lb.len = 0;
	lb.full = 0;
	lb.inquote = 0;
	lb.fields = 0;
	lb_head(&lb, level);
	if (func != NULL)
		lb_kv(&lb, "func", func, 0);
	if (rid != NULL)
		lb_kv(&lb, "rid", rid, 0);
	lb_msg(&lb, fmt, ap);
	lb_flush(&lb);
	/* Callers often log and then look at errno. */
	errno = saved;
}

void log_msg(enum log_level level, const char *func, const char *rid, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, func, rid, fmt, ap);
	va_end(ap);
}

void log_step(const char *flow, int step, const char *rid, const char *subject, const char *fmt,
              ...)
{
	struct logbuf lb;
	char sbuf[16];
	va_list ap;
	int saved = errno;

	if (LOG_LVL_INFO > log_level)
		return;
	lb.len = 0;
	lb.full = 0;
	lb.inquote = 0;
	lb.fields = 0;
	lb_head(&lb, LOG_LVL_INFO);
	lb_kv(&lb, "flow", flow != NULL ? flow : "", 0);
	snprintf(sbuf, sizeof(sbuf), "%d", step);
	lb_kv(&lb, "step", sbuf, 0);
	lb_kv(&lb, "rid", rid != NULL ? rid : "", 0);
	lb_kv(&lb, "subject", subject != NULL ? subject : "", 0);
	va_start(ap, fmt);
	lb_msg(&lb, fmt, ap);
	va_end(ap);
	lb_flush(&lb);
	errno = saved;
}

void log_seterr(char *err, size_t errlen, const char *func, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (err != NULL && errlen > 0)
		vsnprintf(err, errlen, fmt, ap);
	else
		log_vmsg(LOG_LVL_ERR, func, NULL, fmt, ap);
	va_end(ap);
}
