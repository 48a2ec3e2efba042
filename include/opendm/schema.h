/*
 * schema: strict decoding of a JSON object into a C struct, driven by a field table.
 *
 * Used for config files and for request bodies alike, so both share one set of rules:
 * an unknown key, a missing required key, a wrong type or an out-of-range value is an error
 * whose message names the key by its full path ("tls.cert"). Strings are copied (malloc);
 * schema_free() releases everything schema_decode() stored.
 */
#ifndef OPENDM_SCHEMA_H
#define OPENDM_SCHEMA_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

enum schema_type {
	SCHEMA_STRING,  /* char *, length in [min, max] bytes, no NUL inside */
	SCHEMA_INT,     /* int64_t, value in [min, max] */
	SCHEMA_BOOL,    /* int, 0 or 1 */
	SCHEMA_OBJECT,  /* nested struct at offset, described by sub */
	SCHEMA_STRLIST, /* struct schema_strlist; each string length in [min, max]; at most
	                   max_items */
	SCHEMA_JSON,    /* json_t * (new reference), any JSON value; validated by the caller */
	SCHEMA_OBJLIST, /* struct schema_objlist: an array of objects, each decoded with sub into
	                   an element of max bytes (sizeof the element struct); at least min and
	                   at most max_items elements */
};

struct schema_strlist {
	char **v;
	size_t n;
};

struct schema_objlist {
	void *v; /* n elements of the field's elem_size bytes */
	size_t n;
};

struct schema_field {
	const char *key;
	enum schema_type type;
	size_t offset;                  /* offset of the member in the target struct */
	int required;                   /* 1: must be present */
	int64_t min;                    /* STRING/STRLIST: min length; INT: min value */
	int64_t max;                    /* STRING/STRLIST: max length; INT: max value */
	size_t max_items;               /* STRLIST only */
	const struct schema_field *sub; /* OBJECT, OBJLIST; table ends with key == NULL */
};

#define SCHEMA_END                                                                                 \
	{                                                                                          \
		NULL, 0, 0, 0, 0, 0, 0, NULL                                                       \
	}

/*
 * Decode obj into out (zeroed by the caller, or holding defaults: absent optional keys leave
 * the member untouched). where names the source for messages ("dm-mss.json" or "body").
 * On error returns -1 with "where: key 'a.b': reason" in err; out may then hold partial
 * values, which schema_free() releases.
 */
int schema_decode(const json_t *obj, const struct schema_field *fields, void *out,
                  const char *where, char *err, size_t errlen);
/* Free every string, list and json_t that schema_decode stored into out. */
void schema_free(const struct schema_field *fields, void *out);
/* 1 if s is min..max characters, each of [A-Za-z0-9] or in extra (ids, names, request ids);
 * 0 otherwise, also for NULL. */
int schema_token_ok(const char *s, size_t min, size_t max, const char *extra);

#endif
