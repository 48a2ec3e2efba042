/*
 * POST /v1/cdcs/authorize: Figure 5 steps 1-6 at cdcs-pss (docs/protocol.md).
 *
 * The device is who its DM certificate says; dm-iss is asked whether that DM id is still
 * active and for which account (step 2), the policy decides over the account's levels and
 * the capability the device sent (step 4, recorded with its reasons), and cdcs-mss prepares
 * each chosen CDCS (step 5) before the answer goes back (step 6). Both calls run without
 * blocking the loop; the request waits meanwhile in a struct cdcs_pss_pending, which
 * outlives the client if it leaves (req set to NULL by the abort callback), since an httpc
 * call cannot be cancelled on its own; fini drops the rest.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opendm/jose.h"
#include "opendm/log.h"
#include "cdcs_pss.h"

#define CDCS_PSS_URLBUF (CDCS_PSS_URL_MAX + 64 + DMPEER_ID_MAX)

static const struct schema_field cdcs_pss_installed_fields[] = {
    {"vendor", SCHEMA_STRING, offsetof(struct cdcs_pss_installed, vendor), 1, 1, POLICY_ID_MAX, 0,
     NULL},
    {"name", SCHEMA_STRING, offsetof(struct cdcs_pss_installed, name), 1, 1, POLICY_ID_MAX, 0,
     NULL},
    {"variant", SCHEMA_STRING, offsetof(struct cdcs_pss_installed, variant), 1, 1,
     POLICY_VARIANT_MAX, 0, NULL},
    {"version_number", SCHEMA_INT, offsetof(struct cdcs_pss_installed, version_number), 1, 1,
     INT32_MAX, 0, NULL},
    {"personalized", SCHEMA_BOOL, offsetof(struct cdcs_pss_installed, personalized), 1, 0, 1, 0,
     NULL},
    SCHEMA_END,
};

const struct schema_field cdcs_pss_authorize_fields[] = {
    {"capability", SCHEMA_OBJECT, offsetof(struct cdcs_pss_authorize_body, capability), 1, 0, 0, 0,
     capability_fields},
    {"installed", SCHEMA_OBJLIST, offsetof(struct cdcs_pss_authorize_body, installed), 1, 0,
     sizeof(struct cdcs_pss_installed), CDCS_PSS_ITEMS_MAX, cdcs_pss_installed_fields},
    SCHEMA_END,
};

/* A request waiting for dm-iss, then for cdcs-mss. Everything the answer needs is copied out
 * of the request, whose body is freed with it. */
struct cdcs_pss_pending {
	TAILQ_ENTRY(cdcs_pss_pending) entry;
	struct cdcs_pss *s;
	struct httpd_req *req; /* NULL once the client has gone */
	char rid[HTTPD_RID_MAX + 1];
	char dm_id[DMPEER_ID_MAX + 1];
	char account[POLICY_ACCOUNT_MAX + 1];
	char decision[CDCS_PSS_DECISION_MAX];
	json_t *capability; /* as the device sent it */
	json_t *installed;  /* the distinct slots it has: [{"vendor","name","version_number"}] */
	json_t *chosen;     /* cdcs_pss_choice.choices */
	json_t *remove;     /* [{"vendor","name","reason"}] */
	json_t *replaced;   /* of remove, those a campaign replaces: [{"vendor","name","to"}] */
};

static void cdcs_pss_pending_free(struct cdcs_pss_pending *p)
{
	if (p == NULL)
		return;
	json_decref(p->capability);
	json_decref(p->installed);
	json_decref(p->chosen);
	json_decref(p->remove);
	json_decref(p->replaced);
	free(p);
}

static void cdcs_pss_pending_abort(void *arg)
{
	struct cdcs_pss_pending *p = arg;

	/* The reply would go nowhere; the pending answer still comes and frees p. */
	log_rinfo(p->rid, "client %s left before the answer", p->dm_id);
	p->req = NULL;
}

void cdcs_pss_pending_drop(struct cdcs_pss *s)
{
	struct cdcs_pss_pending *p;

	while ((p = TAILQ_FIRST(&s->pending)) != NULL) {
		TAILQ_REMOVE(&s->pending, p, entry);
		/* httpd_free() ends the request after us; it must not call back into p. */
		if (p->req != NULL) {
			log_rwarn(p->rid, "stopping: dropping a request of %s still waiting",
			          p->dm_id);
			httpd_req_set_abort_cb(p->req, NULL, NULL);
		}
		cdcs_pss_pending_free(p);
	}
}

/* The request waits (again) for a daemon: hooked up before the call is started, so that
 * nothing httpc does can find p half set. */
static void cdcs_pss_pending_wait(struct cdcs_pss_pending *p, struct httpd_req *req)
{
	p->req = req;
	TAILQ_INSERT_TAIL(&p->s->pending, p, entry);
	httpd_req_set_abort_cb(req, cdcs_pss_pending_abort, p);
}

/* The pending request leaves the queue: its client, if still there to answer, else NULL.
 * Always before replying: the request is gone once answered. */
static struct httpd_req *cdcs_pss_pending_take(struct cdcs_pss_pending *p)
{
	struct httpd_req *req = p->req;

	TAILQ_REMOVE(&p->s->pending, p, entry);
	if (req != NULL)
		httpd_req_set_abort_cb(req, NULL, NULL);
	p->req = NULL;
	return req;
}

static int cdcs_pss_same_slot(const json_t *a, const json_t *b)
{
	const char *av = json_string_value(json_object_get(a, "vendor"));
	const char *an = json_string_value(json_object_get(a, "name"));
	const char *bv = json_string_value(json_object_get(b, "vendor"));
	const char *bn = json_string_value(json_object_get(b, "name"));

	return av != NULL && an != NULL && bv != NULL && bn != NULL && strcmp(av, bv) == 0 &&
	       strcmp(an, bn) == 0;
}

/* The element of list (objects with vendor and name) in the same slot as x, or NULL. */
static json_t *cdcs_pss_find_slot(const json_t *list, const json_t *x)
{
	json_t *v;
	size_t i;

	json_array_foreach(list, i, v)
	{
		if (cdcs_pss_same_slot(v, x))
			return v;
	}
	return NULL;
}

/* slot into slots, or its version_number into the one already there if higher. 0/-1. */
static int cdcs_pss_slot_merge(json_t *slots, json_t *slot)
{
	json_t *have = cdcs_pss_find_slot(slots, slot);
	json_int_t v = json_integer_value(json_object_get(slot, "version_number"));

	if (have == NULL)
		return json_array_append(slots, slot);
	if (v > json_integer_value(json_object_get(have, "version_number")))
		return json_object_set_new(have, "version_number", json_integer(v));
	return 0;
}

/* The installed list, checked, as its distinct slots, each with the highest version_number
 * the device has of it (the floor of what it may be offered). NULL after replying. */
static json_t *cdcs_pss_installed_slots(struct httpd_req *req,
                                        const struct cdcs_pss_authorize_body *b)
{
	const struct cdcs_pss_installed *in = b->installed.v;
	json_t *slots = json_array(), *slot;
	size_t i;

	for (i = 0; slots != NULL && i < b->installed.n; i++) {
		if (!policy_id_ok(in[i].vendor) || !policy_id_ok(in[i].name) ||
		    !policy_variant_ok(in[i].variant)) {
			httpd_reply_error(req, 400, "bad_request",
			                  "key 'installed[%zu].%s': only a-z 0-9 . _ - are allowed",
			                  i,
			                  !policy_id_ok(in[i].vendor) ? "vendor"
			                  : !policy_id_ok(in[i].name) ? "name"
			                                              : "variant");
			json_decref(slots);
			return NULL;
		}
		if ((slot = json_pack("{s:s, s:s, s:I}", "vendor", in[i].vendor, "name", in[i].name,
		                      "version_number", (json_int_t)in[i].version_number)) ==
		        NULL ||
		    cdcs_pss_slot_merge(slots, slot) == -1) {
			json_decref(slots);
			slots = NULL;
		}
		json_decref(slot);
	}
	if (slots == NULL)
		httpd_reply_error(req, 500, "internal_error", "out of memory");
	return slots;
}

/* "vendor-a/sample-ca sw v1, vendor-b/sample-drm sw v2" (items) or "vendor-x/old-ca"
 * (slots) for the log; "none" when list is empty. */
static void cdcs_pss_slots_text(const json_t *list, char *buf, size_t len)
{
	const json_t *variant;
	size_t i, n = 0;
	json_t *v;
	int w;

	buf[0] = '\0';
	json_array_foreach(list, i, v)
	{
		variant = json_object_get(v, "variant");
		w = snprintf(buf + n, len - n, "%s%s/%s", i > 0 ? ", " : "",
		             json_string_value(json_object_get(v, "vendor")),
		             json_string_value(json_object_get(v, "name")));
		if (w >= 0 && (size_t)w < len - n && variant != NULL)
			w += snprintf(
			    buf + n + w, len - n - w, " %s v%lld", json_string_value(variant),
			    (long long)json_integer_value(json_object_get(v, "version_number")));
		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
	}
	if (n == 0)
		snprintf(buf, len, "none");
}

/* Step 6: the answer, with what cdcs-mss prepared (install may be empty), the removals
 * and cdcs-mss's revocation list (may be NULL) passed through. */
static void cdcs_pss_reply(struct cdcs_pss_pending *p, struct httpd_req *req, const json_t *install,
                           const json_t *remove, json_t *revocations)
{
	char what[512], gone[512];
	json_t *body;

	cdcs_pss_slots_text(install, what, sizeof(what));
	cdcs_pss_slots_text(remove, gone, sizeof(gone));
	body = json_pack("{s:s, s:s, s:O, s:O, s:I}", "dm_id", p->dm_id, "decision", p->decision,
	                 "install", install, "remove", remove, "interval_s",
	                 (json_int_t)p->s->interval_s);
	if (body != NULL && json_is_string(revocations) &&
	    json_object_set(body, "revocations", revocations) == -1) {
		json_decref(body);
		body = NULL;
	}
	if (body == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	httpd_reply_json(req, 200, body);
	log_step("fig5", 6, p->rid, p->dm_id,
	         "answered %s: install %s; remove %s; next run in %lld s", p->decision, what, gone,
	         (long long)p->s->interval_s);
}

/* Record a note on the decision; the answer does not depend on it. */
static void cdcs_pss_note(struct cdcs_pss_pending *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void cdcs_pss_note(struct cdcs_pss_pending *p, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (cdcs_pss_store_decision_note(p->s->d->db, p->decision, line) == -1)
		log_rerr(p->rid, "cannot note on %s: %s", p->decision, line);
}

/*
 * What cdcs-mss prepared, kept only for the slots we chose, once each and in the variant
 * chosen: a confused cdcs-mss must not make a device install what the policy did not give.
 * The chosen slots without an image are logged and noted on the decision.
 */
static json_t *cdcs_pss_prepared(struct cdcs_pss_pending *p, const json_t *answer)
{
	const json_t *items = json_object_get(answer, "items");
	const json_t *missing = json_object_get(answer, "missing");
	json_t *install = json_array(), *item, *want, *miss;
	const char *variant, *why;
	size_t i;

	json_array_foreach(items, i, item)
	{
		want = cdcs_pss_find_slot(p->chosen, item);
		variant = json_string_value(json_object_get(item, "variant"));
		if (!json_is_object(item) || want == NULL || variant == NULL ||
		    strcmp(variant, json_string_value(json_object_get(want, "variant"))) != 0 ||
		    cdcs_pss_find_slot(install, item) != NULL) {
			log_rwarn(p->rid,
			          "cdcs-mss offered an item that was not asked for: ignored");
			continue;
		}
		if (install != NULL && json_array_append(install, item) == -1) {
			json_decref(install);
			install = NULL;
		}
	}
	json_array_foreach(p->chosen, i, want)
	{
		if (cdcs_pss_find_slot(install, want) != NULL)
			continue;
		miss = cdcs_pss_find_slot(missing, want);
		why = json_string_value(json_object_get(miss, "reason"));
		log_rwarn(p->rid, "%s: no image for %s/%s %s (cdcs-mss: %s)", p->dm_id,
		          json_string_value(json_object_get(want, "vendor")),
		          json_string_value(json_object_get(want, "name")),
		          json_string_value(json_object_get(want, "variant")),
		          why != NULL ? why : "not prepared");
		cdcs_pss_note(p, "no image for %s/%s %s (cdcs-mss: %.200s)",
		              json_string_value(json_object_get(want, "vendor")),
		              json_string_value(json_object_get(want, "name")),
		              json_string_value(json_object_get(want, "variant")),
		              why != NULL ? why : "not prepared");
	}
	return install;
}

/*
 * The removals the answer carries: all but a `from` that a campaign replaces by a `to`
 * cdcs-mss did not prepare (make before break: the device keeps what works). NULL if no
 * memory.
 */
static json_t *cdcs_pss_final_remove(struct cdcs_pss_pending *p, const json_t *install)
{
	json_t *out = json_array(), *r, *by, *to;
	size_t i;

	json_array_foreach(p->remove, i, r)
	{
		if ((by = cdcs_pss_find_slot(p->replaced, r)) != NULL &&
		    cdcs_pss_find_slot(install, (to = json_object_get(by, "to"))) == NULL) {
			log_rwarn(p->rid, "%s: keeps %s/%s: nothing of %s/%s to replace it",
			          p->dm_id, json_string_value(json_object_get(r, "vendor")),
			          json_string_value(json_object_get(r, "name")),
			          json_string_value(json_object_get(to, "vendor")),
			          json_string_value(json_object_get(to, "name")));
			cdcs_pss_note(p, "kept %s/%s: nothing of %s/%s to replace it",
			              json_string_value(json_object_get(r, "vendor")),
			              json_string_value(json_object_get(r, "name")),
			              json_string_value(json_object_get(to, "vendor")),
			              json_string_value(json_object_get(to, "name")));
			continue;
		}
		if (out != NULL && json_array_append(out, r) == -1) {
			json_decref(out);
			out = NULL;
		}
	}
	return out;
}

/* What the device is sent, kept on the decision (explain compares it with the choices). */
static void cdcs_pss_delivered(struct cdcs_pss_pending *p, const json_t *install,
                               const json_t *remove)
{
	json_t *items = json_array(), *doc = NULL, *it;
	char *text = NULL;
	size_t i;

	json_array_foreach(install, i, it)
	{
		if (items != NULL &&
		    json_array_append_new(
		        items, json_pack("{s:O, s:O, s:O, s:O, s:O*}", "vendor",
		                         json_object_get(it, "vendor"), "name",
		                         json_object_get(it, "name"), "variant",
		                         json_object_get(it, "variant"), "version_number",
		                         json_object_get(it, "version_number"), "rights",
		                         json_object_get(it, "rights"))) == -1) {
			json_decref(items);
			items = NULL;
		}
	}
	if (items == NULL ||
	    (doc = json_pack("{s:o, s:O}", "install", items, "remove", remove)) == NULL ||
	    (text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS)) == NULL ||
	    cdcs_pss_store_decision_delivered(p->s->d->db, p->decision, text) == -1)
		log_rerr(p->rid, "cannot record what %s was sent for %s", p->dm_id, p->decision);
	free(text);
	json_decref(doc);
}

static void cdcs_pss_mss_done(struct httpc_resp *resp, void *arg)
{
	struct cdcs_pss_pending *p = arg;
	struct httpd_req *req = cdcs_pss_pending_take(p);
	json_t *install = NULL, *remove = NULL;

	if (resp->status != 200 || !json_is_object(resp->json) ||
	    !json_is_array(json_object_get(resp->json, "items"))) {
		log_rerr(p->rid, "cdcs-mss did not prepare %s for %s: %s (HTTP %ld)", p->decision,
		         p->dm_id, resp->error != NULL ? resp->error : "unexpected answer",
		         resp->status);
		cdcs_pss_note(p, "cdcs-mss unavailable: nothing delivered");
		if (req != NULL)
			httpd_reply_error(req, 503, "cdcs_mss_unavailable",
			                  "the CDCS management server cannot be reached");
		goto out;
	}
	/* "delivered" means sent: not when the client has gone meanwhile. */
	if (req == NULL)
		goto out;
	if ((install = cdcs_pss_prepared(p, resp->json)) != NULL &&
	    (remove = cdcs_pss_final_remove(p, install)) != NULL)
		cdcs_pss_delivered(p, install, remove);
	if (install == NULL || remove == NULL)
		httpd_reply_error(req, 500, "internal_error", "out of memory");
	else
		cdcs_pss_reply(p, req, install, remove, json_object_get(resp->json, "revocations"));
out:
	json_decref(install);
	json_decref(remove);
	cdcs_pss_pending_free(p);
}

/* Step 5 is cdcs-mss's: ask it for each chosen CDCS. 0 (p waits), or -1 (nothing
 * started, p out of the queue). */
static int cdcs_pss_prepare(struct cdcs_pss_pending *p, struct httpd_req *req, const char *platform)
{
	char url[CDCS_PSS_URLBUF];
	json_t *body, *items = json_array(), *c;
	json_int_t floor;
	size_t i;
	int rc;

	json_array_foreach(p->chosen, i, c)
	{
		/* Never older than what the device has: a revoked version is replaced by a
		 * newer one, not by an older one with its own flaws. */
		floor = json_integer_value(
		    json_object_get(cdcs_pss_find_slot(p->installed, c), "version_number"));
		if (items != NULL &&
		    json_array_append_new(
		        items,
		        json_pack("{s:O, s:O, s:O, s:O, s:O, s:I}", "vendor",
		                  json_object_get(c, "vendor"), "name", json_object_get(c, "name"),
		                  "variant", json_object_get(c, "variant"), "min_version",
		                  json_object_get(c, "min_version"), "rights",
		                  json_object_get(c, "rights"), "floor", floor)) == -1) {
			json_decref(items);
			items = NULL;
		}
	}
	if (items == NULL)
		return -1;
	body = json_pack("{s:s, s:s, s:s, s:o}", "dm_id", p->dm_id, "decision", p->decision,
	                 "platform", platform, "items", items);
	if (body == NULL)
		return -1;
	snprintf(url, sizeof(url), "%s/v1/internal/prepare", p->s->cdcs_mss_url);
	cdcs_pss_pending_wait(p, req);
	if ((rc = httpc_request(p->s->http, "POST", url, p->rid, body, cdcs_pss_mss_done, p)) == -1)
		cdcs_pss_pending_take(p);
	json_decref(body);
	return rc;
}

/* The campaign (of ch) that replaces slot by a choice of its own, or NULL. */
static const json_t *cdcs_pss_replacer(const struct cdcs_pss_choice *ch, const json_t *slot)
{
	const char *name, *by;
	json_t *camp, *c;
	size_t i, j;

	json_array_foreach(ch->campaigns, i, camp)
	{
		if (!cdcs_pss_same_slot(json_object_get(camp, "from"), slot))
			continue;
		name = json_string_value(json_object_get(camp, "name"));
		json_array_foreach(ch->choices, j, c)
		{
			by = json_string_value(json_object_get(c, "campaign"));
			if (by != NULL && name != NULL && strcmp(by, name) == 0)
				return camp;
		}
	}
	return NULL;
}

/* One removal with its reason; a campaign's replacement also into replaced. 0/-1. */
static int cdcs_pss_removal(struct cdcs_pss_pending *p, const struct cdcs_pss_choice *ch,
                            const json_t *slot)
{
	const json_t *camp = cdcs_pss_replacer(ch, slot), *to = json_object_get(camp, "to");
	const char *vendor = json_string_value(json_object_get(slot, "vendor"));
	const char *name = json_string_value(json_object_get(slot, "name"));
	char reason[512];

	if (camp != NULL) {
		snprintf(reason, sizeof(reason), "replaced by %s/%s (campaign '%s')",
		         json_string_value(json_object_get(to, "vendor")),
		         json_string_value(json_object_get(to, "name")),
		         json_string_value(json_object_get(camp, "name")));
		if (json_array_append_new(p->replaced, json_pack("{s:s, s:s, s:O}", "vendor",
		                                                 vendor, "name", name, "to", to)) ==
		    -1)
			return -1;
	} else
		snprintf(reason, sizeof(reason),
		         "no rule for %s/%s matches this device (account %s)", vendor, name,
		         p->account);
	return json_array_append_new(p->remove, json_pack("{s:s, s:s, s:s}", "vendor", vendor,
	                                                  "name", name, "reason", reason));
}

/* The slots the device has that the choices leave out, each with why. 0/-1. */
static int cdcs_pss_removals(struct cdcs_pss_pending *p, const struct cdcs_pss_choice *ch)
{
	json_t *v;
	size_t i;

	if ((p->remove = json_array()) == NULL || (p->replaced = json_array()) == NULL)
		return -1;
	json_array_foreach(p->installed, i, v)
	{
		if (cdcs_pss_find_slot(ch->choices, v) == NULL && cdcs_pss_removal(p, ch, v) == -1)
			return -1;
	}
	return 0;
}

/*
 * Step 4 in one transaction: the account's levels, the rules and the device's campaigns
 * read, the decision made and recorded together (and the device's capability and account
 * kept for explain and campaigns), so that the record states exactly the inputs it was made
 * from.
 */
static int cdcs_pss_decide_record(struct cdcs_pss_pending *p, const struct capability *cap,
                                  char **reason)
{
	struct db *db = p->s->d->db;
	struct cdcs_pss_choice ch;
	char hex[33], *capt = NULL, *result = NULL;
	json_t *doc = NULL;
	int rc = -1;

	memset(&ch, 0, sizeof(ch));
	if (db_begin(db) == -1)
		return -1;
	if (cdcs_pss_choose(db, p->dm_id, p->account, cap, &ch) == -1 ||
	    jose_random_hex(hex, sizeof(hex), 16) == -1)
		goto fail;
	snprintf(p->decision, sizeof(p->decision), "dec-%s", hex);
	p->chosen = json_incref(ch.choices);
	if (cdcs_pss_removals(p, &ch) == -1 ||
	    (doc = json_pack("{s:O, s:O, s:O}", "install", p->chosen, "remove", p->remove,
	                     "entitlements", ch.levels)) == NULL ||
	    (capt = json_dumps(p->capability, JSON_COMPACT | JSON_SORT_KEYS)) == NULL ||
	    (result = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS)) == NULL ||
	    cdcs_pss_store_device_seen(db, p->dm_id, p->account, capt) == -1 ||
	    cdcs_pss_store_decision_add(db, p->decision, p->dm_id, p->account, capt, result,
	                                ch.reason) == -1 ||
	    db_commit(db) == -1 || (*reason = strdup(ch.reason)) == NULL)
		goto fail;
	rc = 0;
fail:
	if (rc == -1)
		db_rollback(db);
	cdcs_pss_choice_free(&ch);
	free(capt);
	free(result);
	json_decref(doc);
	return rc;
}

/* The device is active: steps 4 and 5. 1 if waiting for cdcs-mss, 0 when replied. */
static int cdcs_pss_decide(struct cdcs_pss_pending *p, struct httpd_req *req)
{
	struct capability cap;
	char err[CDCS_PSS_ERRLEN], *reason = NULL;
	json_t *none;
	int rc = 0;

	memset(&cap, 0, sizeof(cap));
	/* Checked when it arrived; decoded again from our copy. */
	if (schema_decode(p->capability, capability_fields, &cap, "capability", err, sizeof(err)) ==
	        -1 ||
	    cdcs_pss_decide_record(p, &cap, &reason) == -1) {
		log_rerr(p->rid, "no decision for %s", p->dm_id);
		httpd_reply_error(req, 500, "internal_error", "cannot decide");
		goto out;
	}
	log_step("fig5", 4, p->rid, p->dm_id, "decision %s for account %s: %s", p->decision,
	         p->account, reason);
	if (json_array_size(p->chosen) == 0) {
		if ((none = json_array()) == NULL)
			httpd_reply_error(req, 500, "internal_error", "out of memory");
		else {
			cdcs_pss_delivered(p, none, p->remove);
			cdcs_pss_reply(p, req, none, p->remove, NULL);
		}
		json_decref(none);
		goto out;
	}
	if (cdcs_pss_prepare(p, req, cap.platform) == -1) {
		log_rerr(p->rid, "cannot start the request to cdcs-mss");
		cdcs_pss_note(p, "cdcs-mss unavailable: nothing delivered");
		httpd_reply_error(req, 503, "cdcs_mss_unavailable",
		                  "the CDCS management server cannot be reached");
		goto out;
	}
	rc = 1;
out:
	free(reason);
	capability_free(&cap);
	return rc;
}

enum cdcs_pss_dm_verdict { CDCS_PSS_DM_ACTIVE, CDCS_PSS_DM_INACTIVE, CDCS_PSS_DM_NO_ANSWER };

/* What dm-iss said about our DM id (the account copied into p when active). An answer about
 * another DM id, or a 404 that is not unknown_dm (a wrong dm_iss_url), is no answer. */
static enum cdcs_pss_dm_verdict cdcs_pss_dm_verdict(const struct httpc_resp *resp,
                                                    struct cdcs_pss_pending *p, const char **status)
{
	const char *v, *account;

	*status = "unknown";
	if (resp->json == NULL)
		return CDCS_PSS_DM_NO_ANSWER;
	if (resp->status == 404) {
		v = json_string_value(
		    json_object_get(json_object_get(resp->json, "error"), "code"));
		return v != NULL && strcmp(v, "unknown_dm") == 0 ? CDCS_PSS_DM_INACTIVE
		                                                 : CDCS_PSS_DM_NO_ANSWER;
	}
	if (resp->status != 200 ||
	    (v = json_string_value(json_object_get(resp->json, "dm_id"))) == NULL ||
	    strcmp(v, p->dm_id) != 0 ||
	    (v = json_string_value(json_object_get(resp->json, "status"))) == NULL)
		return CDCS_PSS_DM_NO_ANSWER;
	if (strcmp(v, "revoked") == 0 || strcmp(v, "expired") == 0) {
		*status = v;
		return CDCS_PSS_DM_INACTIVE;
	}
	account = json_string_value(json_object_get(resp->json, "account"));
	if (strcmp(v, "active") != 0 || !policy_account_ok(account))
		return CDCS_PSS_DM_NO_ANSWER;
	memcpy(p->account, account, strlen(account) + 1);
	return CDCS_PSS_DM_ACTIVE;
}

static void cdcs_pss_iss_done(struct httpc_resp *resp, void *arg)
{
	struct cdcs_pss_pending *p = arg;
	struct httpd_req *req = cdcs_pss_pending_take(p);
	const struct tls_peer *peer;
	const char *status;

	if (req == NULL)
		goto out;
	switch (cdcs_pss_dm_verdict(resp, p, &status)) {
	case CDCS_PSS_DM_ACTIVE:
		peer = httpd_req_peer(req);
		log_step("fig5", 2, p->rid, p->dm_id,
		         "authenticated: DM certificate of the device CA, DM id active at dm-iss "
		         "(account %s)",
		         p->account);
		log_step("fig5", 3, p->rid, p->dm_id,
		         "secure channel: mutual TLS 1.3 with '%s' (DM certificate issued by '%s')",
		         peer != NULL ? peer->subject_cn : "?",
		         peer != NULL ? peer->issuer_cn : "?");
		if (cdcs_pss_decide(p, req) == 1)
			return; /* waiting again, now for cdcs-mss */
		break;
	case CDCS_PSS_DM_INACTIVE:
		log_rwarn(p->rid, "refused %s: %s at dm-iss", p->dm_id, status);
		httpd_reply_error(req, 403, "dm_revoked", "this DM id is %s", status);
		break;
	default:
		log_rerr(p->rid, "dm-iss did not answer usably for %s: %s (HTTP %ld)", p->dm_id,
		         resp->error != NULL ? resp->error : "unexpected answer", resp->status);
		httpd_reply_error(req, 503, "dm_iss_unavailable",
		                  "the DM identity server cannot be reached");
		break;
	}
out:
	cdcs_pss_pending_free(p);
}

void cdcs_pss_authorize(struct httpd_req *req, void *arg)
{
	struct daemon_ctx *d = arg;
	struct cdcs_pss *s = d->role_state;
	struct cdcs_pss_authorize_body *b = httpd_req_body(req);
	struct cdcs_pss_pending *p = NULL;
	char url[CDCS_PSS_URLBUF], err[CDCS_PSS_ERRLEN];

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	p->s = s;
	snprintf(p->rid, sizeof(p->rid), "%s", httpd_req_id(req));
	if (dmpeer_require(req, s->device_ca_fp, p->dm_id, sizeof(p->dm_id)) == -1)
		goto fail;
	if (capability_check(&b->capability, "capability", err, sizeof(err)) == -1) {
		httpd_reply_error(req, 400, "bad_request", "%s", err);
		goto fail;
	}
	if ((p->installed = cdcs_pss_installed_slots(req, b)) == NULL)
		goto fail;
	if ((p->capability = capability_to_json(&b->capability)) == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		goto fail;
	}

	snprintf(url, sizeof(url), "%s/v1/internal/dm/%s", s->dm_iss_url, p->dm_id);
	cdcs_pss_pending_wait(p, req);
	if (httpc_request(s->http, "GET", url, p->rid, NULL, cdcs_pss_iss_done, p) == -1) {
		cdcs_pss_pending_take(p);
		log_rerr(p->rid, "cannot start the request to dm-iss");
		httpd_reply_error(req, 503, "dm_iss_unavailable",
		                  "the DM identity server cannot be reached");
		goto fail;
	}
	log_rdebug(p->rid, "%s (%s, %zu installed): asking dm-iss about it", p->dm_id,
	           b->capability.platform, b->installed.n);
	return;
fail:
	cdcs_pss_pending_free(p);
}
