/* schema: strict decoding of a JSON object into a C struct, driven by a field table. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/log.h"
#include "opendm/schema.h"

/* Full dotted key paths are bounded; a longer one is cut in messages, never overflows. */
#define SCHEMA_PATH_MAX 256
/* An unknown key comes from the peer: show at most this much of it. */
#define SCHEMA_SHOW_MAX 64

struct sctx {
	const char *where;
	char *err;
	size_t errlen;
};

static void fail_msg(struct sctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail_msg(struct sctx *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->err != NULL && c->errlen > 0)
		snprintf(c->err, c->errlen, "%s: %s", c->where, msg);
	else
		log_msg(LOG_LVL_ERR, "schema_decode", NULL, "%s: %s", c->where, msg);
}

static void join_path(char *out, size_t outlen, const char *prefix, const char *key)
{
	if (prefix[0] == '\0')
		snprintf(out, outlen, "%s", key);
	else
		snprintf(out, outlen, "%s.%s", prefix, key);
}

/* A key from the input, made printable and bounded so the message stays one short line. */
static void show_key(char *out, size_t outlen, const char *key)
{
	size_t i, n = 0;

	for (i = 0; key[i] != '\0' && n + 4 < outlen; i++) {
		if (i == SCHEMA_SHOW_MAX) {
			memcpy(out + n, "...", 3);
			n += 3;
			break;
		}
		out[n++] = ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] >= 0x7f ||
		            key[i] == '\'')
		               ? '?'
		               : key[i];
	}
	out[n] = '\0';
}

static const struct schema_field *find_field(const struct schema_field *fields, const char *key)
{
	const struct schema_field *f;

	for (f = fields; f->key != NULL; f++)
		if (strcmp(f->key, key) == 0)
			return f;
	return NULL;
}

/* Copy a JSON string after checking it is one we accept: no NUL inside, length in range. */
static int decode_string(struct sctx *c, const json_t *v, const struct schema_field *f,
                         const char *path, char **out)
{
	const char *s;
	size_t len;
	char *copy;

	if (!json_is_string(v)) {
		fail_msg(c, "key '%s': expected string", path);
		return -1;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (memchr(s, '\0', len) != NULL) {
		fail_msg(c, "key '%s': string contains a NUL byte", path);
		return -1;
	}
	if ((f->min > 0 && len < (uint64_t)f->min) || f->max < 0 || len > (uint64_t)f->max) {
		fail_msg(c, "key '%s': length %zu is out of range [%lld, %lld]", path, len,
		         (long long)f->min, (long long)f->max);
		return -1;
	}
	if ((copy = malloc(len + 1)) == NULL) {
		fail_msg(c, "key '%s': out of memory", path);
		return -1;
	}
	memcpy(copy, s, len + 1);
	free(*out);
	*out = copy;
	return 0;
}

static void free_strlist(struct schema_strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int decode_strlist(struct sctx *c, const json_t *v, const struct schema_field *f,
                          const char *path, struct schema_strlist *l)
{
	char ipath[SCHEMA_PATH_MAX + 32];
	size_t i, n;

	if (!json_is_array(v)) {
		fail_msg(c, "key '%s': expected array of strings", path);
		return -1;
	}
	n = json_array_size(v);
	if (n > f->max_items) {
		fail_msg(c, "key '%s': %zu items, at most %zu allowed", path, n, f->max_items);
		return -1;
	}
	free_strlist(l);
	/* n is kept equal to what v holds, so a partial list is always freeable. */
	if ((l->v = calloc(n > 0 ? n : 1, sizeof(*l->v))) == NULL) {
		fail_msg(c, "key '%s': out of memory", path);
		return -1;
	}
	for (i = 0; i < n; i++) {
		snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
		if (decode_string(c, json_array_get(v, i), f, ipath, &l->v[i]) == -1)
			return -1;
		l->n++;
	}
	return 0;
}

static int decode_object(struct sctx *c, const json_t *obj, const struct schema_field *fields,
                         char *out, const char *prefix);

static void free_objlist(const struct schema_field *f, struct schema_objlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		schema_free(f->sub, (char *)l->v + i * (size_t)f->max);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int decode_objlist(struct sctx *c, const json_t *v, const struct schema_field *f,
                          const char *path, struct schema_objlist *l)
{
	char ipath[SCHEMA_PATH_MAX + 32];
	const json_t *item;
	size_t i, n;

	if (!json_is_array(v)) {
		fail_msg(c, "key '%s': expected array of objects", path);
		return -1;
	}
	n = json_array_size(v);
	if (n > f->max_items || (int64_t)n < f->min) {
		fail_msg(c, "key '%s': %zu items, %lld to %zu allowed", path, n, (long long)f->min,
		         f->max_items);
		return -1;
	}
	if (f->sub == NULL || (size_t)f->max == 0) {
		fail_msg(c, "key '%s': schema has no table for these objects", path);
		return -1;
	}
	free_objlist(f, l);
	if ((l->v = calloc(n > 0 ? n : 1, (size_t)f->max)) == NULL) {
		fail_msg(c, "key '%s': out of memory", path);
		return -1;
	}
	for (i = 0; i < n; i++) {
		snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
		item = json_array_get(v, i);
		/* Counted before decoding, so a half-decoded element is freed with the rest. */
		l->n++;
		if (!json_is_object(item)) {
			fail_msg(c, "key '%s': expected object", ipath);
			return -1;
		}
		if (decode_object(c, item, f->sub, (char *)l->v + i * (size_t)f->max, ipath) == -1)
			return -1;
	}
	return 0;
}

static int decode_field(struct sctx *c, const json_t *v, const struct schema_field *f, char *out,
                        const char *path)
{
	json_int_t iv;

	switch (f->type) {
	case SCHEMA_STRING:
		return decode_string(c, v, f, path, (char **)(void *)(out + f->offset));
	case SCHEMA_INT:
		if (!json_is_integer(v)) {
			fail_msg(c, "key '%s': expected integer", path);
			return -1;
		}
		iv = json_integer_value(v);
		if (iv < f->min || iv > f->max) {
			fail_msg(c, "key '%s': %lld is out of range [%lld, %lld]", path,
			         (long long)iv, (long long)f->min, (long long)f->max);
			return -1;
		}
		*(int64_t *)(void *)(out + f->offset) = (int64_t)iv;
		return 0;
	case SCHEMA_BOOL:
		if (!json_is_boolean(v)) {
			fail_msg(c, "key '%s': expected boolean", path);
			return -1;
		}
		*(int *)(void *)(out + f->offset) = json_is_true(v) ? 1 : 0;
		return 0;
	case SCHEMA_OBJECT:
		if (!json_is_object(v)) {
			fail_msg(c, "key '%s': expected object", path);
			return -1;
		}
		if (f->sub == NULL) {
			fail_msg(c, "key '%s': schema has no table for this object", path);
			return -1;
		}
		return decode_object(c, v, f->sub, out + f->offset, path);
	case SCHEMA_STRLIST:
		return decode_strlist(c, v, f, path,
		                      (struct schema_strlist *)(void *)(out + f->offset));
	case SCHEMA_OBJLIST:
		return decode_objlist(c, v, f, path,
		                      (struct schema_objlist *)(void *)(out + f->offset));
	case SCHEMA_JSON: {
		json_t **slot = (json_t **)(void *)(out + f->offset);

		json_decref(*slot);
		/* The input is const to us; the reference we keep is the caller's to drop. */
		*slot = json_incref((json_t *)(uintptr_t)v);
		return 0;
	}
	}
	fail_msg(c, "key '%s': unknown schema type %d", path, (int)f->type);
	return -1;
}

static int decode_object(struct sctx *c, const json_t *obj, const struct schema_field *fields,
                         char *out, const char *prefix)
{
	const struct schema_field *f;
	char path[SCHEMA_PATH_MAX], shown[SCHEMA_SHOW_MAX + 8];
	const char *key;
	json_t *v;

	/* Unknown keys first: a misspelt optional key must not pass silently as "absent". */
	json_object_foreach((json_t *)(uintptr_t)obj, key, v)
	{
		if (find_field(fields, key) == NULL) {
			show_key(shown, sizeof(shown), key);
			join_path(path, sizeof(path), prefix, shown);
			fail_msg(c, "unknown key '%s'", path);
			return -1;
		}
	}
	for (f = fields; f->key != NULL; f++) {
		join_path(path, sizeof(path), prefix, f->key);
		v = json_object_get(obj, f->key);
		if (v == NULL) {
			if (f->required) {
				fail_msg(c, "missing key '%s'", path);
				return -1;
			}
			continue;
		}
		if (json_is_null(v)) {
			fail_msg(c, "key '%s': null is not allowed", path);
			return -1;
		}
		if (decode_field(c, v, f, out, path) == -1)
			return -1;
	}
	return 0;
}

int schema_decode(const json_t *obj, const struct schema_field *fields, void *out,
                  const char *where, char *err, size_t errlen)
{
	struct sctx c = {where != NULL ? where : "input", err, errlen};

	if (fields == NULL || out == NULL) {
		fail_msg(&c, "no schema or no target");
		return -1;
	}
	if (!json_is_object(obj)) {
		fail_msg(&c, "expected a JSON object");
		return -1;
	}
	return decode_object(&c, obj, fields, out, "");
}

void schema_free(const struct schema_field *fields, void *out)
{
	const struct schema_field *f;
	char *base = out;
	char **s;
	json_t **j;

	if (fields == NULL || out == NULL)
		return;
	for (f = fields; f->key != NULL; f++) {
		switch (f->type) {
		case SCHEMA_STRING:
			s = (char **)(void *)(base + f->offset);
			free(*s);
			*s = NULL;
			break;
		case SCHEMA_STRLIST:
			free_strlist((struct schema_strlist *)(void *)(base + f->offset));
			break;
		case SCHEMA_JSON:
			j = (json_t **)(void *)(base + f->offset);
			json_decref(*j);
			*j = NULL;
			break;
		case SCHEMA_OBJECT:
			schema_free(f->sub, base + f->offset);
			break;
		case SCHEMA_OBJLIST:
			free_objlist(f, (struct schema_objlist *)(void *)(base + f->offset));
			break;
		case SCHEMA_INT:
		case SCHEMA_BOOL:
			break;
		}
	}
}

int schema_token_ok(const char *s, size_t min, size_t max, const char *extra)
{
	size_t n = s != NULL ? strlen(s) : 0, i;

	if (s == NULL || n < min || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr(extra, s[i]) != NULL))
			return 0;
	return 1;
}
