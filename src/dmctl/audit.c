/*
 * dmctl audit: the audit log every daemon keeps (GET /v1/admin/audit), from one daemon or from
 * all configured ones merged into one time line. device history uses the same collection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmctl.h"

#define DMCTL_AUDIT_PAGE  1000 /* the daemons' largest page */
#define DMCTL_AUDIT_PAGES 100  /* at most this many pages per daemon and subject */
#define DMCTL_AUDIT_TEXT  128  /* subject and action filters, as the daemons take them */

static const char dmctl_audit_usage[] =
    "usage: dmctl [-c config] [--json] audit [--role ROLE] [--subject S] [--action A]\n"
    "                                        [--after SEQ] [--limit N]\n"
    "\n"
    "Prints the audit log: who did what, when, under which request id. Without --role,\n"
    "the logs of every head-end daemon in the config, merged by time. --subject and\n"
    "--action keep only rows about S (an account, hw_id, DM id, rule or campaign name,\n"
    "vendor/name...) or of action A (e.g. device.revoke); --after only rows after\n"
    "sequence number SEQ of that daemon; --limit at most N rows (1-1000, default 100)\n"
    "from each daemon, the oldest first. Any operator role may read it.\n";

static const struct dmctl_col dmctl_audit_cols[] = {
    {"TIME", "ts", DMCTL_COL_TIME},
    {"ROLE", "role", 0},
    {"ACTOR", "actor", 0},
    {"ACTION", "action", 0},
    {"SUBJECT", "subject", 0},
    {"DETAIL", "detail", 0},
    {NULL, NULL, 0},
};

static int dmctl_audit_cmp(const void *pa, const void *pb)
{
	const json_t *a = *(const json_t *const *)pa, *b = *(const json_t *const *)pb;
	json_int_t x, y;
	int c;

	/* Milliseconds: rows of one flow often share their second. */
	x = json_integer_value(json_object_get(a, "ts_ms"));
	y = json_integer_value(json_object_get(b, "ts_ms"));
	if (x == 0 || y == 0) {
		x = json_integer_value(json_object_get(a, "ts"));
		y = json_integer_value(json_object_get(b, "ts"));
	}
	if (x != y)
		return x < y ? -1 : 1;
	if ((c = strcmp(dmctl_str(a, "role"), dmctl_str(b, "role"))) != 0)
		return c;
	x = json_integer_value(json_object_get(a, "seq"));
	y = json_integer_value(json_object_get(b, "seq"));
	return x < y ? -1 : x > y;
}

void dmctl_audit_sort(json_t *entries)
{
	size_t n = json_array_size(entries), i;
	json_t **v;

	if (n < 2 || (v = calloc(n, sizeof(*v))) == NULL)
		return;
	for (i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(entries, i));
	qsort(v, n, sizeof(*v), dmctl_audit_cmp);
	json_array_clear(entries);
	for (i = 0; i < n; i++)
		json_array_append_new(entries, v[i]);
	free(v);
}

int dmctl_audit_print(const json_t *entries)
{
	return dmctl_table(dmctl_audit_cols, entries);
}

/* One daemon's rows about subject (NULL: any), page after page unless limit > 0. Appended to
 * out with "role"; an exit status. */
static int dmctl_audit_fetch(struct dmctl_api *a, const char *subject, const char *action,
                             long long after, int limit, json_t *out)
{
	char path[1024], num[24];
	json_t *doc = NULL, *e;
	const char *role;
	size_t i, n;
	int page, status = DMCTL_EXIT_OK;

	for (page = 0; page < DMCTL_AUDIT_PAGES; page++) {
		snprintf(path, sizeof(path), "/v1/admin/audit");
		snprintf(num, sizeof(num), "%lld", after);
		if (dmctl_query_add(path, sizeof(path), "subject", subject) == -1 ||
		    dmctl_query_add(path, sizeof(path), "action", action) == -1 ||
		    dmctl_query_add(path, sizeof(path), "after", num) == -1)
			return DMCTL_EXIT_USAGE;
		snprintf(num, sizeof(num), "%d", limit > 0 ? limit : DMCTL_AUDIT_PAGE);
		if (dmctl_query_add(path, sizeof(path), "limit", num) == -1)
			return DMCTL_EXIT_USAGE;
		if ((status = dmctl_api_call(a, "GET", path, NULL, &doc)) != DMCTL_EXIT_OK)
			return status;
		role = json_string_value(json_object_get(doc, "role"));
		n = json_array_size(json_object_get(doc, "entries"));
		json_array_foreach(json_object_get(doc, "entries"), i, e)
		{
			if (!json_is_object(e) ||
			    json_object_set_new(e, "role",
			                        json_string(role != NULL ? role : a->role)) == -1 ||
			    json_array_append(out, e) == -1) {
				json_decref(doc);
				fprintf(stderr, "dmctl: bad_response: audit entries from %s\n",
				        a->role);
				return DMCTL_EXIT_FAIL;
			}
			/* A daemon whose seq does not grow would keep us paging forever. */
			if (json_integer_value(json_object_get(e, "seq")) <= after)
				page = DMCTL_AUDIT_PAGES;
			else
				after = json_integer_value(json_object_get(e, "seq"));
		}
		json_decref(doc);
		if (limit > 0 || n < DMCTL_AUDIT_PAGE)
			break;
	}
	return status;
}

/* The head-end daemons. sd-if-agent runs on the subscriber's CPE: its operators are the
 * household, not ours, and it refuses our certificate. */
static const char *const dmctl_audit_headend[] = {"dm-mss",   "dm-iss",   "cdcs-pss",
                                                  "cdcs-mss", "cdcs-iss", NULL};

json_t *dmctl_audit_collect(struct dmctl_api *a, const json_t *roles, const json_t *subjects,
                            const char *action, long long after, int limit, int *status)
{
	json_t *out = json_array(), *all = NULL, *v;
	size_t i, j;
	int st;

	*status = DMCTL_EXIT_OK;
	if (roles == NULL) {
		/* Every head-end daemon the config names. */
		if ((all = json_array()) == NULL)
			goto fail;
		for (i = 0; dmctl_audit_headend[i] != NULL; i++)
			if (json_object_get(a->conf.endpoints, dmctl_audit_headend[i]) != NULL &&
			    json_array_append_new(all, json_string(dmctl_audit_headend[i])) == -1)
				goto fail;
		roles = all;
	}
	if (out == NULL)
		goto fail;
	json_array_foreach(roles, i, v)
	{
		if ((st = dmctl_api_use(a, json_string_value(v))) == DMCTL_EXIT_OK) {
			if (subjects == NULL)
				st = dmctl_audit_fetch(a, NULL, action, after, limit, out);
			for (j = 0; subjects != NULL && j < json_array_size(subjects); j++)
				if ((st = dmctl_audit_fetch(
				         a, json_string_value(json_array_get(subjects, j)), action,
				         after, limit, out)) != DMCTL_EXIT_OK)
					break;
		}
		/* The others' rows are still worth showing; the first failure is the status. */
		if (st != DMCTL_EXIT_OK && *status == DMCTL_EXIT_OK)
			*status = st;
	}
	json_decref(all);
	dmctl_audit_sort(out);
	return out;
fail:
	fprintf(stderr, "dmctl: out of memory\n");
	json_decref(all);
	json_decref(out);
	*status = DMCTL_EXIT_FAIL;
	return NULL;
}

/* A filter value as the daemons take it: 1-128 printable ASCII characters, no space. */
static int dmctl_audit_text_ok(const char *s)
{
	size_t n = strlen(s), i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return n >= 1 && n <= DMCTL_AUDIT_TEXT;
}

struct dmctl_audit_args {
	const char *role, *subject, *action;
	long long after, limit;
};

static int dmctl_audit_parse(int argc, char **argv, struct dmctl_audit_args *p)
{
	const char *v;
	int i;

	memset(p, 0, sizeof(*p));
	p->limit = 100;
	for (i = 0; i < argc; i++) {
		if (dmctl_opt_value(argc, argv, &i, dmctl_audit_usage, &v) == -1)
			return DMCTL_EXIT_USAGE;
		if (strcmp(argv[i - 1], "--role") == 0 && dmctl_valid_id(v, 1, 32, "-_"))
			p->role = v;
		else if (strcmp(argv[i - 1], "--subject") == 0 && dmctl_audit_text_ok(v))
			p->subject = v;
		else if (strcmp(argv[i - 1], "--action") == 0 && dmctl_audit_text_ok(v))
			p->action = v;
		else if (strcmp(argv[i - 1], "--after") == 0 &&
		         dmctl_parse_int(v, 0, (long long)1 << 62, &p->after) == 0)
			continue;
		else if (strcmp(argv[i - 1], "--limit") == 0 &&
		         dmctl_parse_int(v, 1, DMCTL_AUDIT_PAGE, &p->limit) == 0)
			continue;
		else
			return dmctl_usage_error(dmctl_audit_usage, "bad option or value",
			                         argv[i - 1]);
	}
	return DMCTL_EXIT_OK;
}

int dmctl_audit_main(const struct dmctl_opts *opts, int argc, char **argv)
{
	struct dmctl_audit_args p;
	struct dmctl_api a;
	json_t *roles = NULL, *entries = NULL, *doc = NULL, *subjects = NULL;
	int status, st;

	if (dmctl_want_help(argc, argv, dmctl_audit_usage))
		return DMCTL_EXIT_OK;
	if (argc > 0 && argv[0][0] != '-')
		return dmctl_usage_error(dmctl_audit_usage, "unexpected argument", argv[0]);
	if ((status = dmctl_audit_parse(argc, argv, &p)) != DMCTL_EXIT_OK)
		return status;
	/* A role that is not configured is a usage error, found before anything is sent. */
	if ((status = dmctl_api_open(&a, opts, p.role, 0)) != DMCTL_EXIT_OK)
		return status;
	status = DMCTL_EXIT_FAIL;
	if ((p.role != NULL && (roles = json_pack("[s]", p.role)) == NULL) ||
	    (p.subject != NULL && (subjects = json_pack("[s]", p.subject)) == NULL))
		goto out;
	if ((entries = dmctl_audit_collect(&a, roles, subjects, p.action, p.after, (int)p.limit,
	                                   &status)) == NULL)
		goto out;
	if ((doc = json_pack("{s:O}", "entries", entries)) == NULL ||
	    (p.role != NULL && json_object_set_new(doc, "role", json_string(p.role)) == -1))
		goto out;
	if (opts->json)
		st = dmctl_print_json(doc);
	else
		st = dmctl_audit_print(entries) == 0 ? DMCTL_EXIT_OK : DMCTL_EXIT_FAIL;
	if (status == DMCTL_EXIT_OK)
		status = st;
out:
	json_decref(doc);
	json_decref(entries);
	json_decref(subjects);
	json_decref(roles);
	dmctl_api_close(&a);
	return status;
}
