/*
 * cdcs-pss campaigns: operators create a campaign (its `to` checked with cdcs-mss's
 * catalogue first), read them, and advance, pause, resume or stop one (campaign.h says
 * what each means; campaign_run.c does it).
 */
#include <stdio.h>
#include <string.h>

#include "opendm/admin.h"
#include "opendm/audit.h"
#include "opendm/log.h"
#include "cdcs_pss.h"

#define CDCS_PSS_ACTOR_MAX 200

/* The actions take no parameter: the body is {}. */
const struct schema_field cdcs_pss_campaign_action_fields[] = {
    SCHEMA_END,
};

static void cdcs_pss_campaign_known(struct daemon_ctx *d, struct httpd_req *req,
                                    enum cdcs_pss_cat v)
{
	struct campaign_spec *b = httpd_req_body(req);
	struct campaign_stages st;
	char err[CDCS_PSS_ERRLEN], actor[CDCS_PSS_ACTOR_MAX];
	json_t *doc = NULL;
	int64_t n = 0;
	int rc;

	if (!cdcs_pss_catalogue_known(req, v, b->to.vendor, b->to.name))
		return;
	/* Checked before the lookup; only the stages are wanted again. */
	if (campaign_spec_check(b, &st, err, sizeof(err)) == -1 || db_begin(d->db) == -1) {
		httpd_reply_error(req, 500, "internal_error", "cannot create the campaign");
		return;
	}
	rc = cdcs_pss_campaign_start(d->db, httpd_req_id(req),
	                             admin_actor(d, req, actor, sizeof(actor)), b, &st, &n);
	if (rc == 1 && ((doc = cdcs_pss_store_campaign_json(d->db, b->name, 1)) == NULL ||
	                db_commit(d->db) == -1))
		rc = -1;
	if (rc != 1)
		db_rollback(d->db);
	switch (rc) {
	case 1:
		httpd_reply_json(req, 201, doc);
		return;
	case 0:
		httpd_reply_error(req, 422, "no_devices",
		                  "no device has %s/%s personalized and matches the filter",
		                  b->from.vendor, b->from.name);
		break;
	case 2:
		httpd_reply_error(req, 422, "too_many_devices",
		                  "%lld devices match, at most %d per campaign: narrow the filter",
		                  (long long)n, CAMPAIGN_DEVICES_MAX);
		break;
	case 3:
		httpd_reply_error(req, 409, "campaign_exists", "a campaign named '%s' exists",
		                  b->name);
		break;
	default:
		httpd_reply_error(req, 500, "internal_error", "database error");
		break;
	}
	json_decref(doc);
}

void cdcs_pss_campaign_create(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct campaign_spec *b = httpd_req_body(req);
	struct cdcs_pss_campaign c;
	struct campaign_stages st;
	char err[CDCS_PSS_ERRLEN];
	int found;

	if (!admin_authorize(d, req, ADMIN_ROLE_POLICY))
		return;
	if (campaign_spec_check(b, &st, err, sizeof(err)) == -1) {
		httpd_reply_error(req, 400, "bad_request", "%s", err);
		return;
	}
	/* Saves asking cdcs-mss in vain; the insert checks again. */
	if ((found = cdcs_pss_store_campaign_get(d->db, b->name, &c)) != 0) {
		if (found == 1)
			httpd_reply_error(req, 409, "campaign_exists",
			                  "a campaign named '%s' exists", b->name);
		else
			httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	cdcs_pss_catalogue_check(d, req, b->to.vendor, b->to.name, cdcs_pss_campaign_known);
}

void cdcs_pss_campaign_list(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	json_t *list;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ))
		return;
	if ((list = cdcs_pss_store_campaigns_json(d->db)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	httpd_reply_json(req, 200, json_pack("{s:o}", "campaigns", list));
}

void cdcs_pss_campaign_get(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	const char *name = httpd_req_tail(req);
	json_t *doc;

	if (!admin_authorize(d, req, ADMIN_ROLE_READ))
		return;
	if (!policy_name_ok(name)) {
		httpd_reply_error(req, 400, "bad_request",
		                  "name: 1-64 characters of A-Z a-z 0-9 . _ -");
		return;
	}
	if ((doc = cdcs_pss_store_campaign_json(d->db, name, 1)) != NULL && json_is_null(doc)) {
		json_decref(doc);
		httpd_reply_error(req, 404, "unknown_campaign", "no campaign named '%s'", name);
		return;
	}
	if (doc == NULL)
		httpd_reply_error(req, 500, "internal_error", "database error");
	else
		httpd_reply_json(req, 200, doc);
}

/* ---- advance, pause, resume, stop -------------------------------------------------- */

typedef int (*cdcs_pss_move_fn)(struct daemon_ctx *d, struct httpd_req *req,
                                struct cdcs_pss_campaign *c, enum campaign_status next,
                                const char *actor);

static int cdcs_pss_campaign_advance(struct daemon_ctx *d, struct httpd_req *req,
                                     struct cdcs_pss_campaign *c, enum campaign_status next,
                                     const char *actor)
{
	(void)next;
	return cdcs_pss_campaign_admit(d->db, httpd_req_id(req), actor, c);
}

/* pause, resume and archive: the status alone changes (a paused campaign admits nothing new;
 * an archived one overrides nothing). */
static int cdcs_pss_campaign_status(struct daemon_ctx *d, struct httpd_req *req,
                                    struct cdcs_pss_campaign *c, enum campaign_status next,
                                    const char *actor)
{
	json_t *detail;
	int rc;

	if (cdcs_pss_store_campaign_set(d->db, c->name, next, c->stage, NULL) == -1 ||
	    (detail = json_pack("{s:s, s:s}", "from", campaign_status_name(c->status), "status",
	                        campaign_status_name(next))) == NULL)
		return -1;
	rc = audit_add(d->db, httpd_req_id(req), actor,
	               next == CAMPAIGN_PAUSED    ? "campaign.pause"
	               : next == CAMPAIGN_RUNNING ? "campaign.resume"
	                                          : "campaign.archive",
	               c->name, detail);
	json_decref(detail);
	if (rc == 0)
		log_rinfo(httpd_req_id(req), "campaign '%s' %s by %s", c->name,
		          campaign_status_name(next), actor);
	return rc;
}

static int cdcs_pss_campaign_halt(struct daemon_ctx *d, struct httpd_req *req,
                                  struct cdcs_pss_campaign *c, enum campaign_status next,
                                  const char *actor)
{
	char reason[CDCS_PSS_ACTOR_MAX + 16];

	(void)next;
	snprintf(reason, sizeof(reason), "stopped by %s", actor);
	return cdcs_pss_campaign_stop(d->db, httpd_req_id(req), actor, c, reason);
}

static const struct {
	const char *action;
	cdcs_pss_move_fn fn;
} cdcs_pss_moves[] = {
    {"advance", cdcs_pss_campaign_advance}, {"pause", cdcs_pss_campaign_status},
    {"resume", cdcs_pss_campaign_status},   {"stop", cdcs_pss_campaign_halt},
    {"archive", cdcs_pss_campaign_status},
};

/* Why action is refused (code from campaign_action()), replied as a 409. */
static void cdcs_pss_campaign_refuse(struct httpd_req *req, const struct cdcs_pss_campaign *c,
                                     const char *code)
{
	if (strcmp(code, "last_stage") == 0)
		httpd_reply_error(req, 409, code, "campaign '%s' is at its last stage (%d of %zu)",
		                  c->name, c->stage, c->stages.n);
	else
		httpd_reply_error(req, 409, code, "campaign '%s' is %s", c->name,
		                  campaign_status_name(c->status));
}

#define CDCS_PSS_MOVES (sizeof(cdcs_pss_moves) / sizeof(cdcs_pss_moves[0]))

/* The path's "<name>/<action>": the name into name and the action's index into *i; 0, or
 * -1 replied. */
static int cdcs_pss_campaign_path(struct httpd_req *req, char name[POLICY_NAME_MAX + 1], size_t *i)
{
	const char *tail = httpd_req_tail(req), *slash = strrchr(tail, '/');
	size_t len = slash != NULL ? (size_t)(slash - tail) : 0;

	for (*i = 0; slash != NULL && *i < CDCS_PSS_MOVES; (*i)++)
		if (strcmp(slash + 1, cdcs_pss_moves[*i].action) == 0)
			break;
	if (slash == NULL || *i == CDCS_PSS_MOVES) {
		httpd_reply_error(
		    req, 404, "not_found",
		    "POST /v1/admin/campaigns/<name>/advance|pause|resume|stop|archive");
		return -1;
	}
	if (len > 0 && len <= POLICY_NAME_MAX) {
		memcpy(name, tail, len);
		name[len] = '\0';
		if (policy_name_ok(name))
			return 0;
	}
	httpd_reply_error(req, 400, "bad_request", "name: 1-64 characters of A-Z a-z 0-9 . _ -");
	return -1;
}

/* POST /v1/admin/campaigns/<name>/<action>: the campaign moved and its audit rows written
 * in one transaction; the answer is the campaign as GET shows it. */
void cdcs_pss_campaign_action(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	char name[POLICY_NAME_MAX + 1], actor[CDCS_PSS_ACTOR_MAX];
	struct cdcs_pss_campaign c;
	enum campaign_status next;
	const char *code;
	json_t *doc = NULL;
	size_t i;
	int found;

	if (!admin_authorize(d, req, ADMIN_ROLE_POLICY) ||
	    cdcs_pss_campaign_path(req, name, &i) == -1)
		return;
	admin_actor(d, req, actor, sizeof(actor));
	if (db_begin(d->db) == -1)
		goto fail;
	if ((found = cdcs_pss_store_campaign_get(d->db, name, &c)) != 1) {
		db_rollback(d->db);
		if (found == 0)
			httpd_reply_error(req, 404, "unknown_campaign", "no campaign named '%s'",
			                  name);
		else
			httpd_reply_error(req, 500, "internal_error", "database error");
		return;
	}
	if ((code = campaign_action(c.status, c.stage, &c.stages, cdcs_pss_moves[i].action,
	                            &next)) != NULL) {
		db_rollback(d->db);
		cdcs_pss_campaign_refuse(req, &c, code);
		return;
	}
	if (cdcs_pss_moves[i].fn(d, req, &c, next, actor) == -1 ||
	    (doc = cdcs_pss_store_campaign_json(d->db, name, 1)) == NULL ||
	    db_commit(d->db) == -1) {
		db_rollback(d->db);
		json_decref(doc);
		goto fail;
	}
	httpd_reply_json(req, 200, doc);
	return;
fail:
	httpd_reply_error(req, 500, "internal_error", "database error");
}
