/*
 * dmctl args: the checks every command makes on its command line before it sends anything,
 * so that malformed input never reaches a daemon (exit DMCTL_EXIT_USAGE instead).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/cdcsimg.h"
#include "opendm/schema.h"
#include "dmctl.h"

int dmctl_want_help(int argc, char **argv, const char *usage)
{
	int i;

	for (i = 0; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return 1;
		}
	return 0;
}

/* The command a usage text is about: its first word after "dmctl" and the [options]. */
static void dmctl_usage_command(const char *usage, char *buf, size_t len)
{
	const char *p = strstr(usage, "dmctl ");
	size_t n;

	buf[0] = '\0';
	if (p == NULL)
		return;
	for (p += 6; *p == '['; p += strspn(p, " ")) {
		if ((p = strchr(p, ']')) == NULL)
			return;
		p++;
	}
	n = strcspn(p, " \n");
	if (n < len)
		snprintf(buf, len, "%.*s ", (int)n, p);
}

int dmctl_usage_error(const char *usage, const char *what, const char *arg)
{
	char cmd[64];

	/* One line, as every error: the usage itself is one --help away. */
	dmctl_usage_command(usage, cmd, sizeof(cmd));
	if (arg != NULL)
		fprintf(stderr, "dmctl: usage: %s '%s' (see 'dmctl %s--help')\n", what, arg, cmd);
	else
		fprintf(stderr, "dmctl: usage: %s (see 'dmctl %s--help')\n", what, cmd);
	return DMCTL_EXIT_USAGE;
}

int dmctl_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return -1;
	v = strtoll(s, &end, 10);
	if (*end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int dmctl_valid_id(const char *s, size_t min, size_t max, const char *extra)
{
	return schema_token_ok(s, min, max, extra);
}

int dmctl_account_ok(const char *s)
{
	return dmctl_valid_id(s, 1, DMCTL_ACCOUNT_MAX, "._-");
}

int dmctl_hw_id_ok(const char *s)
{
	return dmctl_valid_id(s, 4, 64, "._:-");
}

int dmctl_dm_id_ok(const char *s)
{
	size_t i;

	if (strncmp(s, "dm-", 3) != 0 || strlen(s) != 3 + 24)
		return 0;
	for (i = 3; s[i] != '\0'; i++)
		if (strchr("0123456789abcdef", s[i]) == NULL)
			return 0;
	return 1;
}

int dmctl_name_ok(const char *s)
{
	return dmctl_valid_id(s, 1, 64, "._-");
}

int dmctl_parse_slot(const char *s, char vendor[65], char name[65])
{
	const char *slash = strchr(s, '/');
	size_t n;

	if (slash == NULL || (n = (size_t)(slash - s)) == 0 || n > 64 || strlen(slash + 1) > 64)
		return -1;
	memcpy(vendor, s, n);
	vendor[n] = '\0';
	snprintf(name, 65, "%s", slash + 1);
	return cdcsimg_valid_id(vendor) && cdcsimg_valid_id(name) ? 0 : -1;
}

/* Query values are percent-encoded but for the characters RFC 3986 leaves unreserved. */
int dmctl_query_add(char *path, size_t len, const char *key, const char *value)
{
	size_t n = strlen(path), start = n;
	const unsigned char *p;
	int w;

	if (value == NULL)
		return 0;
	w = snprintf(path + n, len - n, "%c%s=", strchr(path, '?') != NULL ? '&' : '?', key);
	for (p = (const unsigned char *)value; w >= 0 && (size_t)w < len - n && *p != '\0'; p++) {
		n += (size_t)w;
		if (strchr("-._~", *p) != NULL || (*p >= '0' && *p <= '9') ||
		    (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
			w = snprintf(path + n, len - n, "%c", *p);
		else
			w = snprintf(path + n, len - n, "%%%02X", *p);
	}
	if (w < 0 || (size_t)w >= len - n) {
		/* Never a query cut short: the path is left as it was. */
		path[start] = '\0';
		return -1;
	}
	return 0;
}

int dmctl_opt_value(int argc, char **argv, int *i, const char *usage, const char **out)
{
	if (*i + 1 >= argc) {
		dmctl_usage_error(usage, "missing value for", argv[*i]);
		return -1;
	}
	*out = argv[++*i];
	return 0;
}

json_t *dmctl_json_object(const char *what, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *j;

	if ((j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		fprintf(stderr, "dmctl: input: %s: line %d column %d: %s\n", what, jerr.line,
		        jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		fprintf(stderr, "dmctl: input: %s: expected a JSON object\n", what);
		json_decref(j);
		return NULL;
	}
	return j;
}
