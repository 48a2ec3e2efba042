/*
 * dmctl table: what every command prints by default. Rows are the daemons' JSON objects and
 * columns name the member each shows, so a command states its layout once and the text of
 * every value (times, lists, nulls) is written the same way everywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmctl.h"

#define DMCTL_KEY_MAX 128

/* The member a column names: "a" or "a.b" (one level of nesting). */
static const json_t *dmctl_member(const json_t *row, const char *key, size_t len)
{
	char k[DMCTL_KEY_MAX];
	const char *dot;

	if (len >= sizeof(k))
		return NULL;
	memcpy(k, key, len);
	k[len] = '\0';
	if ((dot = strchr(k, '.')) == NULL)
		return json_object_get(row, k);
	k[dot - k] = '\0';
	return json_object_get(json_object_get(row, k), dot + 1);
}

char *dmctl_value_text(const json_t *v, int flags)
{
	char buf[64], *out = NULL, *p, *grown;
	const json_t *e;
	size_t i, n = 0;
	time_t t;
	struct tm tm;

	if (v == NULL)
		return strdup("-");
	switch (json_typeof(v)) {
	case JSON_STRING:
		return strdup(json_string_length(v) > 0 ? json_string_value(v) : "-");
	case JSON_INTEGER:
		t = (time_t)json_integer_value(v);
		if ((flags & DMCTL_COL_TIME) && t > 0 && gmtime_r(&t, &tm) != NULL)
			strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
		else
			snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		return strdup(buf);
	case JSON_REAL:
		snprintf(buf, sizeof(buf), "%g", json_real_value(v));
		return strdup(buf);
	case JSON_TRUE:
		return strdup("yes");
	case JSON_FALSE:
		return strdup("no");
	case JSON_ARRAY:
		if (json_array_size(v) == 0)
			return strdup("-");
		/* A list of scalars reads best as "a,b"; anything deeper as JSON. */
		json_array_foreach(v, i, e)
		{
			if (json_is_object(e) || json_is_array(e))
				return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
			if ((p = dmctl_value_text(e, flags)) == NULL)
				goto fail;
			n += strlen(p) + 1;
			if ((grown = realloc(out, n)) == NULL) {
				free(p);
				goto fail;
			}
			out = grown;
			if (i == 0)
				out[0] = '\0';
			else
				strcat(out, ",");
			strcat(out, p);
			free(p);
		}
		return out;
	case JSON_OBJECT:
		if (json_object_size(v) == 0)
			return strdup("-");
		/* A CDCS reference, as operators name CDCSs. */
		if ((flags & DMCTL_COL_CDCS) && json_is_string(json_object_get(v, "vendor")) &&
		    json_is_string(json_object_get(v, "name"))) {
			n = strlen(dmctl_str(v, "vendor")) + strlen(dmctl_str(v, "name")) + 2;
			if ((out = malloc(n)) != NULL)
				snprintf(out, n, "%s/%s", dmctl_str(v, "vendor"),
				         dmctl_str(v, "name"));
			return out;
		}
		return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	default:
		return strdup("-");
	}
fail:
	free(out);
	return NULL;
}

char *dmctl_cell(const json_t *row, const struct dmctl_col *col)
{
	const char *slash = strchr(col->key, '/');
	char *a, *b, *out;
	size_t n;

	if (slash == NULL)
		return dmctl_value_text(dmctl_member(row, col->key, strlen(col->key)), col->flags);
	/* "vendor/name": two members shown as one, the way operators name a CDCS. */
	a = dmctl_value_text(dmctl_member(row, col->key, (size_t)(slash - col->key)), col->flags);
	b = dmctl_value_text(dmctl_member(row, slash + 1, strlen(slash + 1)), col->flags);
	out = NULL;
	if (a != NULL && b != NULL && (out = malloc((n = strlen(a) + strlen(b) + 2))) != NULL)
		snprintf(out, n, "%s/%s", a, b);
	free(a);
	free(b);
	return out;
}

static size_t dmctl_ncols(const struct dmctl_col *cols)
{
	size_t n = 0;

	while (cols[n].header != NULL)
		n++;
	return n;
}

int dmctl_table(const struct dmctl_col *cols, const json_t *rows)
{
	size_t nc = dmctl_ncols(cols), nr = json_array_size(rows), i, j, *w;
	char **cells;
	int rc = -1;

	if (nc == 0)
		return 0;
	w = calloc(nc, sizeof(*w));
	cells = calloc(nc * (nr + 1), sizeof(*cells));
	if (w == NULL || cells == NULL)
		goto out;
	for (j = 0; j < nc; j++)
		if ((cells[j] = strdup(cols[j].header)) == NULL)
			goto out;
	for (i = 0; i < nr; i++)
		for (j = 0; j < nc; j++)
			if ((cells[(i + 1) * nc + j] =
			         dmctl_cell(json_array_get(rows, i), &cols[j])) == NULL)
				goto out;
	for (i = 0; i < (nr + 1) * nc; i++)
		if (strlen(cells[i]) > w[i % nc])
			w[i % nc] = strlen(cells[i]);
	for (i = 0; i <= nr; i++)
		for (j = 0; j < nc; j++) {
			/* The last column is not padded: no trailing blanks. */
			if (j + 1 == nc)
				printf("%s\n", cells[i * nc + j]);
			else if (cols[j].flags & DMCTL_COL_RIGHT)
				printf("%*s  ", (int)w[j], cells[i * nc + j]);
			else
				printf("%-*s  ", (int)w[j], cells[i * nc + j]);
		}
	rc = 0;
out:
	if (rc == -1)
		fprintf(stderr, "dmctl: out of memory\n");
	for (i = 0; cells != NULL && i < nc * (nr + 1); i++)
		free(cells[i]);
	free(cells);
	free(w);
	return rc;
}

int dmctl_table_one(const struct dmctl_col *cols, const json_t *row)
{
	json_t *rows = json_pack("[O]", row);
	int rc = rows != NULL ? dmctl_table(cols, rows) : -1;

	json_decref(rows);
	return rc;
}

int dmctl_fields(const struct dmctl_col *cols, const json_t *obj)
{
	size_t nc = dmctl_ncols(cols), w = 0, j;
	char *v;

	for (j = 0; j < nc; j++)
		if (strlen(cols[j].header) > w)
			w = strlen(cols[j].header);
	for (j = 0; j < nc; j++) {
		if ((v = dmctl_cell(obj, &cols[j])) == NULL) {
			fprintf(stderr, "dmctl: out of memory\n");
			return -1;
		}
		printf("%-*s  %s\n", (int)w, cols[j].header, v);
		free(v);
	}
	return 0;
}

const char *dmctl_str(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL && v[0] != '\0' ? v : "-";
}
