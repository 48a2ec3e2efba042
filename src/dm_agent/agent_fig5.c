/*
 * agent_fig5: the DM agent's side of J.1020 Figure 5 (docs/protocol.md, "Figure 5").
 *
 * One run: authorize at cdcs-pss (step 1), then for each offered CDCS in turn: step 7, verify
 * the offer, POST download (step 8), GET the image with resume, verify and install it, start
 * it in a child (step 14), let it make its personalization request and forward it to cdcs-iss
 * (step 15), let it apply the answer (step 19), confirm, switch `current`. Then the removals
 * and the report to cdcs-pss.
 *
 * Revocations (issue 6): the operator's list comes with the authorize answer and is kept when
 * newer (dev_revoke.h). An offer it revokes is refused before its download; after the
 * installs, every installed CDCS it revokes is removed, whatever else failed. Removals the
 * policy asks for are make-before-break: one waits while an install of its kind failed in
 * this run, since that install may have been its replacement.
 *
 * Everything is asynchronous on the agent's loop. A failing CDCS never stops the run or the
 * agent: its new version is deleted, `current` stays, and the failure is in the answer and in
 * the report. Each step of an item ends by deferring the next one through the run's timer,
 * so failures and callbacks never recurse into each other.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "opendm/jose.h"

#include "agent.h"
#include "cdcsproc.h"
#include "dev_cdcs.h"
#include "dev_link.h"
#include "dev_revoke.h"

#define FIG5_RETRY_FIRST_MS 200
#define FIG5_RETRY_MAX_MS   5000
#define FIG5_DL_STALLS      6 /* image GETs in a row without a new byte before giving up */
#define FIG5_MAX_WAITERS    16
#define FIG5_MAX_URL        1024
#define FIG5_MAX_ERROR      256 /* report: error text */
#define FIG5_SELF           "/proc/self/exe"

struct agent_fig5;
typedef void (*fig5_fn)(struct agent_fig5 *r);
typedef void (*fig5_http_fn)(struct agent_fig5 *r, struct httpc_resp *resp);
typedef void (*fig5_child_fn)(struct agent_fig5 *r, json_t *ans, const char *code, const char *msg);

/* A POST to a head-end daemon, retried on transport errors and 5xx until retry_max_s. */
struct fig5_call {
	char url[FIG5_MAX_URL + 64];
	json_t *body;
	fig5_http_fn done;
	struct timespec deadline;
	long delay_ms;
	int attempts;
};

/* The offered CDCS being handled. Strings are borrowed from the answers held here. */
struct fig5_item {
	const json_t *offer; /* borrowed from run->auth */
	const char *vendor, *name;
	int64_t vn;
	struct cdcsimg_manifest m;
	char part[PATH_MAX];
	json_t *dl;    /* cdcs-mss's download answer */
	json_t *perso; /* cdcs-iss's personalize answer */
	char iss_url[FIG5_MAX_URL + 1];
	struct dev_cdcs_inst inst;
	int have_inst;
	int downloaded; /* the part is complete: no reason to keep it */
	struct cdcsproc *proc;
	int64_t have; /* bytes of the part before the GET in flight */
	int stalls;
	long dl_delay_ms;
	json_t *status;      /* the CDCS's status after personalization */
	char kind[8];        /* "ca"/"drm" once known (offer, then manifest); "" if not */
	char key_sha256[65]; /* the vendor key that verified the manifest */
};

struct agent_fig5 {
	struct agent *a;
	char rid[65];
	struct dev_identity id;
	struct bufferevent *waiters[FIG5_MAX_WAITERS];
	size_t nwaiters;
	json_t *auth; /* cdcs-pss's authorize answer */
	const char *decision;
	size_t idx, n;
	struct fig5_item it;
	json_t *installed, *skipped, *removed, *failed, *results, *keep, *postponed;
	unsigned failed_kinds; /* DEV_KIND_* of the installs that failed in this run */
	struct fig5_call call;
	struct event *timer;
	fig5_fn timer_fn;
	/* a CDCS child's answer, handed to child_fn from the timer (not from its callback) */
	fig5_child_fn child_fn;
	json_t *child_ans;
	char child_code[64], child_msg[512];
};

static void fig5_item_start(struct agent_fig5 *r);
static void fig5_post_send(struct agent_fig5 *r);
static void fig5_removals(struct agent_fig5 *r);

static int fig5_rid_ok(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	return n > 0 && n <= 64 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* An https URL we may put in a request line. */
static int fig5_url_ok(const char *s)
{
	size_t i;

	if (s == NULL || strncmp(s, "https://", 8) != 0 || strlen(s) > FIG5_MAX_URL || s[8] == '\0')
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

static const char *fig5_str(const json_t *o, const char *key, size_t max)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL && s[0] != '\0' && strlen(s) <= max ? s : NULL;
}

static void fig5_defer(struct agent_fig5 *r, fig5_fn fn, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	r->timer_fn = fn;
	if (evtimer_add(r->timer, &tv) == -1) {
		/* Only on a broken loop; the run would hang, so say it loudly. */
		log_rerr(r->rid, "cannot arm the Figure 5 timer");
	}
}

static void fig5_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_fig5 *r = arg;
	fig5_fn fn = r->timer_fn;

	r->timer_fn = NULL;
	if (fn != NULL)
		fn(r);
}

static void fig5_item_clear(struct fig5_item *it)
{
	if (it->proc != NULL)
		cdcsproc_free(it->proc);
	if (it->have_inst)
		dev_cdcs_abort(&it->inst);
	json_decref(it->dl);
	json_decref(it->perso);
	json_decref(it->status);
	memset(it, 0, sizeof(*it));
}

static void fig5_free(struct agent_fig5 *r)
{
	if (r == NULL)
		return;
	fig5_item_clear(&r->it);
	if (r->timer != NULL)
		event_free(r->timer);
	json_decref(r->call.body);
	json_decref(r->child_ans);
	json_decref(r->auth);
	json_decref(r->installed);
	json_decref(r->skipped);
	json_decref(r->removed);
	json_decref(r->failed);
	json_decref(r->results);
	json_decref(r->keep);
	json_decref(r->postponed);
	free(r);
}

/* The answer to every waiter, then the run is over. Takes ans. */
static void fig5_end(struct agent_fig5 *r, json_t *ans, int reached)
{
	struct agent *a = r->a;
	size_t i;

	a->run = NULL;
	for (i = 0; i < r->nwaiters; i++)
		if (r->waiters[i] != NULL)
			agent_control_reply(r->waiters[i], json_incref(ans));
	json_decref(ans);
	fig5_free(r);
	agent_sched_next(a, reached);
}

/* The run could not even start or authorize. */
static void fig5_fatal(struct agent_fig5 *r, const char *code, int unavailable, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

static void fig5_fatal(struct agent_fig5 *r, const char *code, int unavailable, const char *fmt,
                       ...)
{
	char msg[512];
	json_t *ans;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_rwarn(r->rid, "Figure 5 run failed: %s: %s", code, msg);
	ans = agent_control_error(code, msg);
	if (ans != NULL) {
		json_object_set_new(ans, "installed", json_array());
		json_object_set_new(ans, "skipped", json_array());
		json_object_set_new(ans, "removed", json_array());
		json_object_set_new(ans, "failed", json_array());
		json_object_set_new(ans, "postponed", json_array());
		if (unavailable)
			json_object_set_new(ans, "unavailable", json_true());
	}
	fig5_end(r, ans, !unavailable);
}

/* --- HTTP calls ---------------------------------------------------------------------- */

static long fig5_ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static void fig5_post_cb(struct httpc_resp *resp, void *arg)
{
	struct agent_fig5 *r = arg;
	struct fig5_call *c = &r->call;
	const char *code =
	    json_string_value(json_object_get(json_object_get(resp->json, "error"), "code"));
	fig5_http_fn done = c->done;

	if ((resp->error != NULL || resp->status >= 500) && fig5_ms_left(&c->deadline) > 0) {
		log_rwarn(r->rid, "%s: %s (attempt %d), retrying in %ld ms", c->url,
		          resp->error != NULL ? resp->error
		          : code != NULL      ? code
		                              : "5xx",
		          c->attempts, c->delay_ms);
		fig5_defer(r, fig5_post_send, c->delay_ms);
		c->delay_ms =
		    c->delay_ms * 2 > FIG5_RETRY_MAX_MS ? FIG5_RETRY_MAX_MS : c->delay_ms * 2;
		return;
	}
	json_decref(c->body);
	c->body = NULL;
	done(r, resp);
}

static void fig5_post_send(struct agent_fig5 *r)
{
	struct httpc_resp fake;

	r->call.attempts++;
	if (httpc_request(r->a->http5, "POST", r->call.url, r->rid, r->call.body, fig5_post_cb,
	                  r) == 0)
		return;
	memset(&fake, 0, sizeof(fake));
	fake.body = "";
	fake.error = "cannot send the request";
	json_decref(r->call.body);
	r->call.body = NULL;
	r->call.done(r, &fake);
}

/* POST body (taken) to base + path; done gets the final answer. */
static void fig5_post(struct agent_fig5 *r, const char *base, const char *path, json_t *body,
                      fig5_http_fn done)
{
	struct fig5_call *c = &r->call;
	int n;

	json_decref(c->body);
	memset(c, 0, sizeof(*c));
	c->body = body;
	c->done = done;
	c->delay_ms = FIG5_RETRY_FIRST_MS;
	clock_gettime(CLOCK_MONOTONIC, &c->deadline);
	c->deadline.tv_sec += r->a->cfg.retry_max_s;
	n = snprintf(c->url, sizeof(c->url), "%s%s", base, path);
	if (body == NULL || n < 0 || (size_t)n >= sizeof(c->url)) {
		struct httpc_resp fake;

		memset(&fake, 0, sizeof(fake));
		fake.body = "";
		fake.error = body == NULL ? "out of memory" : "URL too long";
		json_decref(c->body);
		c->body = NULL;
		done(r, &fake);
		return;
	}
	fig5_post_send(r);
}

/* The code and message of a failed call: the daemon's error, or the transport's. */
static void fig5_resp_error(const struct httpc_resp *resp, const char **code, const char **msg)
{
	json_t *e = json_object_get(resp->json, "error");

	*code = json_string_value(json_object_get(e, "code"));
	*msg = json_string_value(json_object_get(e, "message"));
	if (resp->error != NULL) {
		*code = "unreachable";
		*msg = resp->error;
	}
	if (*code == NULL)
		*code = resp->status >= 500 ? "unavailable" : "refused";
	if (*msg == NULL)
		*msg = *code;
}

/* --- one item ------------------------------------------------------------------------- */

static void fig5_item_next(struct agent_fig5 *r)
{
	fig5_item_clear(&r->it);
	r->idx++;
	fig5_defer(r, fig5_item_start, 0);
}

static json_t *fig5_ident(const struct fig5_item *it)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I}", "vendor", it->m.vendor, "name", it->m.name,
	                 "variant", it->m.variant, "version", it->m.version, "version_number",
	                 (json_int_t)it->m.version_number);
}

/*
 * The kind of the item, for make-before-break: the verified manifest's or the offer's (set
 * by fig5_item_start), else that of the version installed under the same vendor/name.
 */
static void fig5_item_kind(struct agent_fig5 *r)
{
	struct fig5_item *it = &r->it;
	const char *k;
	json_t *st;

	if (it->kind[0] != '\0' || it->vendor == NULL || it->name == NULL)
		return;
	st = dev_cdcs_state(&r->a->cfg, it->vendor, it->name);
	if ((k = json_string_value(json_object_get(st, "kind"))) != NULL && cdcsimg_valid_kind(k))
		snprintf(it->kind, sizeof(it->kind), "%s", k);
	json_decref(st);
}

static void fig5_item_fail(struct agent_fig5 *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fig5_item_fail(struct agent_fig5 *r, const char *code, const char *fmt, ...)
{
	struct fig5_item *it = &r->it;
	const char *vendor = it->vendor != NULL ? it->vendor : "";
	const char *name = it->name != NULL ? it->name : "";
	const char *slash;
	char msg[512], err[FIG5_MAX_ERROR + 1];
	struct stat sb;
	json_t *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_rwarn(r->rid, "%s/%s v%" PRId64 " failed: %s: %s", vendor, name, it->vn, code, msg);
	fig5_item_kind(r);
	r->failed_kinds |= dev_kind_bit(it->kind);
	/* The child first: it runs in the directory that is about to go. */
	if (it->proc != NULL) {
		cdcsproc_free(it->proc);
		it->proc = NULL;
	}
	if (it->have_inst) {
		dev_cdcs_abort(&it->inst);
		it->have_inst = 0;
	}
	/* A download cut short stays for the next run to resume (the same version only). */
	if (!it->downloaded && it->part[0] != '\0' && stat(it->part, &sb) == 0 &&
	    (slash = strrchr(it->part, '/')) != NULL)
		json_array_append_new(r->keep, json_string(slash + 1));
	snprintf(err, sizeof(err), "%.48s: %.200s", code, msg);
	if ((o = json_pack("{s:s, s:s, s:s, s:s}", "vendor", vendor, "name", name, "code", code,
	                   "message", msg)) != NULL &&
	    it->kind[0] != '\0')
		json_object_set_new(o, "kind", json_string(it->kind));
	json_array_append_new(r->failed, o);
	if (it->vendor != NULL && it->name != NULL && it->vn >= 1)
		json_array_append_new(r->results,
		                      json_pack("{s:s, s:s, s:I, s:s, s:s}", "vendor", vendor,
		                                "name", name, "version_number", (json_int_t)it->vn,
		                                "state", "failed", "error", err));
	fig5_item_next(r);
}

/* A CDCS child's answer goes through the timer: the child may be freed in what follows. */
static void fig5_child_resume(struct agent_fig5 *r)
{
	fig5_child_fn fn = r->child_fn;
	json_t *ans = r->child_ans;

	r->child_fn = NULL;
	r->child_ans = NULL;
	fn(r, ans, r->child_code[0] != '\0' ? r->child_code : NULL, r->child_msg);
	json_decref(ans);
}

static void fig5_child_cb(json_t *resp, const char *code, const char *err, void *arg)
{
	struct agent_fig5 *r = arg;
	const char *c, *m;

	r->child_code[0] = '\0';
	r->child_msg[0] = '\0';
	if (resp == NULL) {
		snprintf(r->child_code, sizeof(r->child_code), "%s",
		         code != NULL ? code : "cdcs_protocol");
		snprintf(r->child_msg, sizeof(r->child_msg), "%s", err != NULL ? err : "no answer");
	} else if (!json_is_true(json_object_get(resp, "ok"))) {
		c = json_string_value(json_object_get(resp, "code"));
		m = json_string_value(json_object_get(resp, "message"));
		snprintf(r->child_code, sizeof(r->child_code), "%s",
		         c != NULL && strlen(c) < 64 ? c : "cdcs_failed");
		snprintf(r->child_msg, sizeof(r->child_msg), "%s",
		         m != NULL ? m : "the CDCS refused");
	} else
		r->child_ans = json_incref(resp);
	fig5_defer(r, fig5_child_resume, 0);
}

/* One request (taken) to the item's CDCS child. */
static void fig5_child(struct agent_fig5 *r, json_t *req, fig5_child_fn fn)
{
	r->child_fn = fn;
	/* The child logs under the run's request id too. */
	if (req != NULL)
		json_object_set_new(req, "rid", json_string(r->rid));
	if (req == NULL || cdcsproc_call(r->it.proc, req, r->a->cfg.cdcs_timeout_s * 1000,
	                                 fig5_child_cb, r) == -1) {
		json_decref(req);
		fig5_item_fail(r, "cdcs_protocol", "cannot send a request to the CDCS");
		return;
	}
	json_decref(req);
}

/* An array of strings (the rights of a CDCS). */
static int fig5_strings(const json_t *a)
{
	const json_t *v;
	size_t i;

	if (!json_is_array(a))
		return 0;
	json_array_foreach(a, i, v) if (!json_is_string(v)) return 0;
	return 1;
}

static void fig5_status_done(struct agent_fig5 *r, json_t *ans, const char *code, const char *msg)
{
	struct fig5_item *it = &r->it;
	json_t *st, *rights;
	const char *cdcs_id;
	char err[512];

	if (code != NULL) {
		fig5_item_fail(r, code, "CDCS status: %s", msg);
		return;
	}
	it->status = json_incref(json_object_get(ans, "status"));
	/* What the CDCS itself holds is the truth; the offer's rights are what was asked for. */
	rights = json_object_get(it->status, "rights");
	if (!fig5_strings(rights))
		rights = fig5_strings(json_object_get(it->offer, "rights"))
		             ? json_object_get(it->offer, "rights")
		             : NULL;
	cdcs_id = fig5_str(it->status, "cdcs_id", 128);
	cdcsproc_free(it->proc);
	it->proc = NULL;
	st = dev_cdcs_state_json(&it->m, 1, cdcs_id, rights, fig5_str(it->perso, "perso_id", 64),
	                         it->key_sha256, (int64_t)time(NULL));
	if (st == NULL) {
		fig5_item_fail(r, "internal_error", "out of memory");
		return;
	}
	it->have_inst = 0; /* commit removes the new version itself if it fails */
	if (dev_cdcs_commit(&it->inst, st, err, sizeof(err)) == -1) {
		json_decref(st);
		fig5_item_fail(r, "install_failed", "%s", err);
		return;
	}
	json_decref(st);
	log_rinfo(r->rid, "%s/%s v%" PRId64 " (%s) installed and personalized, cdcs_id=%s",
	          it->m.vendor, it->m.name, it->m.version_number, it->m.variant,
	          cdcs_id != NULL ? cdcs_id : "-");
	json_array_append_new(r->installed, fig5_ident(it));
	json_array_append_new(r->results,
	                      json_pack("{s:s, s:s, s:I, s:s}", "vendor", it->m.vendor, "name",
	                                it->m.name, "version_number",
	                                (json_int_t)it->m.version_number, "state", "personalized"));
	fig5_item_next(r);
}

static void fig5_confirmed(struct agent_fig5 *r, struct httpc_resp *resp)
{
	const char *code, *msg;

	if (resp->error != NULL || resp->status != 200 ||
	    !json_is_true(json_object_get(resp->json, "confirmed"))) {
		fig5_resp_error(resp, &code, &msg);
		fig5_item_fail(r, code, "cdcs-iss confirm: %s", msg);
		return;
	}
	fig5_child(r, json_pack("{s:s}", "op", "status"), fig5_status_done);
}

static void fig5_applied(struct agent_fig5 *r, json_t *ans, const char *code, const char *msg)
{
	struct fig5_item *it = &r->it;
	const char *conf = fig5_str(ans, "confirmation", 128);
	const char *perso_id = fig5_str(it->perso, "perso_id", 64);

	if (code != NULL) {
		fig5_item_fail(r, code, "the CDCS did not apply its personalization data: %s", msg);
		return;
	}
	if (conf == NULL) {
		fig5_item_fail(r, "cdcs_protocol", "the CDCS gave no confirmation");
		return;
	}
	log_step("fig5", 19, r->rid, r->id.dm_id,
	         "CDCS %s/%s v%" PRId64 " applied its personalization data", it->m.vendor,
	         it->m.name, it->m.version_number);
	fig5_post(r, it->iss_url, "/v1/cdcs/confirm",
	          json_pack("{s:s, s:s, s:s}", "perso_id", perso_id, "confirmation", conf, "result",
	                    "ok"),
	          fig5_confirmed);
}

static void fig5_personalized(struct agent_fig5 *r, struct httpc_resp *resp)
{
	struct fig5_item *it = &r->it;
	const char *code, *msg, *data;

	if (resp->error != NULL || resp->status != 200) {
		fig5_resp_error(resp, &code, &msg);
		fig5_item_fail(r, code, "cdcs-iss personalize: %s", msg);
		return;
	}
	data = fig5_str(resp->json, "personalization_data", 64 * 1024);
	if (data == NULL || fig5_str(resp->json, "perso_id", 64) == NULL) {
		fig5_item_fail(r, "bad_answer", "cdcs-iss personalize: missing fields");
		return;
	}
	it->perso = json_incref(resp->json);
	fig5_child(r, json_pack("{s:s, s:s}", "op", "perso_apply", "data", data), fig5_applied);
}

static void fig5_perso_requested(struct agent_fig5 *r, json_t *ans, const char *code,
                                 const char *msg)
{
	struct fig5_item *it = &r->it;
	json_t *req = json_object_get(ans, "request");

	if (code != NULL) {
		fig5_item_fail(r, code, "the CDCS made no personalization request: %s", msg);
		return;
	}
	if (!json_is_object(req)) {
		fig5_item_fail(r, "cdcs_protocol", "the CDCS's request is not an object");
		return;
	}
	/* Forwarded as the CDCS built it: the agent adds nothing (it holds none of its keys). */
	log_step("fig5", 15, r->rid, r->id.dm_id,
	         "CDCS %s/%s personalization request forwarded to %s", it->m.vendor, it->m.name,
	         it->iss_url);
	fig5_post(r, it->iss_url, "/v1/cdcs/personalize", json_incref(req), fig5_personalized);
}

/* The image is complete: check and install it, start the CDCS (step 14). */
static void fig5_downloaded(struct agent_fig5 *r)
{
	struct fig5_item *it = &r->it;
	const char *code = NULL;
	char err[512];

	it->downloaded = 1;
	if (dev_cdcs_install(&r->a->cfg, it->part,
	                     json_string_value(json_object_get(it->offer, "manifest")),
	                     json_string_value(json_object_get(it->offer, "approval")), &it->m,
	                     &it->inst, &code, err, sizeof(err)) == -1) {
		fig5_item_fail(r, code != NULL ? code : "install_failed", "%s", err);
		return;
	}
	it->have_inst = 1;
	if ((it->proc = cdcsproc_start(r->a->base, FIG5_SELF, it->inst.dir, STDERR_FILENO, err,
	                               sizeof(err))) == NULL) {
		fig5_item_fail(r, "cdcs_start_failed", "%s", err);
		return;
	}
	log_step("fig5", 14, r->rid, r->id.dm_id,
	         "%s/%s v%" PRId64 " (%s) verified (vendor and operator signatures, sha256, size, "
	         "platform, abi, anti-rollback), installed, CDCS started",
	         it->m.vendor, it->m.name, it->m.version_number, it->m.variant);
	fig5_child(r,
	           json_pack("{s:s, s:s}", "op", "perso_request", "ticket",
	                     json_string_value(json_object_get(it->dl, "personalization_ticket"))),
	           fig5_perso_requested);
}

static int64_t fig5_part_size(const char *part)
{
	struct stat sb;

	return stat(part, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

static void fig5_get(struct agent_fig5 *r);

static void fig5_get_cb(struct httpc_resp *resp, void *arg)
{
	struct agent_fig5 *r = arg;
	struct fig5_item *it = &r->it;
	int64_t now = fig5_part_size(it->part);
	const char *code, *msg;

	if (resp->error == NULL && (resp->status == 200 || resp->status == 206) &&
	    now == it->m.size) {
		fig5_downloaded(r);
		return;
	}
	if (resp->error == NULL && resp->status == 416 && now == it->m.size) {
		fig5_downloaded(r); /* complete already; the check decides */
		return;
	}
	if (resp->error == NULL && resp->status < 500 && resp->status != 200 &&
	    resp->status != 206 && resp->status != 416) {
		fig5_resp_error(resp, &code, &msg);
		fig5_item_fail(r, code, "image download: HTTP %ld: %s", resp->status, msg);
		return;
	}
	if (resp->status == 416 || now > it->m.size) {
		/* What we have cannot be the start of this image: start over. */
		(void)unlink(it->part);
		now = 0;
	}
	if (now > it->have) {
		it->stalls = 0;
		it->dl_delay_ms = FIG5_RETRY_FIRST_MS;
	} else if (++it->stalls >= FIG5_DL_STALLS) {
		fig5_item_fail(r, "download_failed", "image download: %s after %d attempts",
		               resp->error != NULL ? resp->error : "no progress", it->stalls);
		return;
	}
	log_rwarn(r->rid,
	          "image download cut at %" PRId64 "/%" PRId64 " bytes (%s), resuming in %ld ms",
	          now, it->m.size, resp->error != NULL ? resp->error : "short", it->dl_delay_ms);
	fig5_defer(r, fig5_get, it->dl_delay_ms);
	it->dl_delay_ms =
	    it->dl_delay_ms * 2 > FIG5_RETRY_MAX_MS ? FIG5_RETRY_MAX_MS : it->dl_delay_ms * 2;
}

/* GET the image, appending to what the part already holds (If-Range: the image's ETag). */
static void fig5_get(struct agent_fig5 *r)
{
	struct fig5_item *it = &r->it;

	it->have = fig5_part_size(it->part);
	if (it->have > it->m.size) {
		(void)unlink(it->part);
		it->have = 0;
	}
	if (it->have == it->m.size) {
		fig5_downloaded(r);
		return;
	}
	if (httpc_download(r->a->http5, json_string_value(json_object_get(it->dl, "image_url")),
	                   r->rid, it->part, json_string_value(json_object_get(it->dl, "etag")),
	                   it->m.size, fig5_get_cb, r) == -1)
		fig5_item_fail(r, "internal_error", "cannot start the image download");
}

static void fig5_download_answer(struct agent_fig5 *r, struct httpc_resp *resp)
{
	struct fig5_item *it = &r->it;
	json_t *j = resp->json;
	const char *code, *msg, *iss;

	if (resp->error != NULL || resp->status != 200) {
		fig5_resp_error(resp, &code, &msg);
		fig5_item_fail(r, code, "cdcs-mss download: %s", msg);
		return;
	}
	iss = json_string_value(json_object_get(j, "cdcs_iss_url"));
	if (!fig5_url_ok(json_string_value(json_object_get(j, "image_url"))) || !fig5_url_ok(iss) ||
	    fig5_str(j, "etag", 128) == NULL ||
	    fig5_str(j, "personalization_ticket", JOSE_MAX_TOKEN) == NULL) {
		fig5_item_fail(r, "bad_answer", "cdcs-mss download: missing or bad fields");
		return;
	}
	/* The image is the one the verified manifest names, or it is not worth fetching. */
	if (json_integer_value(json_object_get(j, "size")) != it->m.size ||
	    json_string_value(json_object_get(j, "sha256")) == NULL ||
	    strcmp(json_string_value(json_object_get(j, "sha256")), it->m.sha256) != 0) {
		fig5_item_fail(r, "bad_answer",
		               "cdcs-mss offers another image than the manifest's");
		return;
	}
	snprintf(it->iss_url, sizeof(it->iss_url), "%s", iss);
	while (strlen(it->iss_url) > 8 && it->iss_url[strlen(it->iss_url) - 1] == '/')
		it->iss_url[strlen(it->iss_url) - 1] = '\0';
	it->dl = json_incref(j);
	it->stalls = 0;
	it->dl_delay_ms = FIG5_RETRY_FIRST_MS;
	fig5_get(r);
}

/* The offer says what the manifest says: a mismatch is a confused or lying head-end. */
static int fig5_offer_matches(const json_t *o, const struct cdcsimg_manifest *m)
{
	const char *variant = json_string_value(json_object_get(o, "variant"));
	const char *sha = json_string_value(json_object_get(o, "sha256"));

	return variant != NULL && strcmp(variant, m->variant) == 0 && sha != NULL &&
	       strcmp(sha, m->sha256) == 0 &&
	       json_integer_value(json_object_get(o, "size")) == m->size &&
	       json_integer_value(json_object_get(o, "version_number")) == m->version_number;
}

/* Every string of a is in b. */
static int fig5_subset(const json_t *a, const json_t *b)
{
	const json_t *x, *y;
	size_t i, j;

	json_array_foreach(a, i, x)
	{
		json_array_foreach(b, j, y) if (json_equal(x, y)) break;
		if (j == json_array_size(b))
			return 0;
	}
	return 1;
}

/*
 * Step 7: nothing to do when this exact CDCS is current and personalized with the rights
 * offered now. Other rights (the subscriber's entitlements changed) need a new
 * personalization: a downgrade must take keys away, not only an upgrade add them.
 */
static int fig5_already(struct agent_fig5 *r, const json_t *o, const char **why)
{
	const char *variant = json_string_value(json_object_get(o, "variant"));
	json_t *st = dev_cdcs_state(&r->a->cfg, r->it.vendor, r->it.name);
	const char *sv = json_string_value(json_object_get(st, "variant"));
	const json_t *want = json_object_get(o, "rights"), *have = json_object_get(st, "rights");
	const char *revoked = dev_revoked_installed(&r->a->revs, &r->a->keys, st);
	int same = st != NULL && json_is_true(json_object_get(st, "personalized")) &&
	           json_integer_value(json_object_get(st, "version_number")) == r->it.vn &&
	           variant != NULL && sv != NULL && strcmp(variant, sv) == 0 && revoked == NULL;

	if (st != NULL && revoked != NULL)
		*why = "the installed one is revoked"; /* re-verified: another key may do */
	else if (st == NULL)
		*why = "not installed";
	else if (json_integer_value(json_object_get(st, "version_number")) != r->it.vn)
		*why = "another version installed";
	else if (variant == NULL || sv == NULL || strcmp(variant, sv) != 0)
		*why = "another variant installed";
	else
		*why = "not personalized";
	if (same && fig5_strings(want) && fig5_strings(have) &&
	    (!fig5_subset(want, have) || !fig5_subset(have, want))) {
		*why = "rights changed";
		same = 0;
	}
	if (same)
		json_array_append_new(r->skipped,
		                      json_pack("{s:s, s:s, s:s, s:O?, s:I}", "vendor",
		                                r->it.vendor, "name", r->it.name, "variant", sv,
		                                "version", json_object_get(st, "version"),
		                                "version_number", (json_int_t)r->it.vn));
	json_decref(st);
	return same;
}

static void fig5_item_start(struct agent_fig5 *r)
{
	struct fig5_item *it = &r->it;
	const json_t *o;
	const char *code = NULL, *url, *why, *k;
	char err[512];

	if (r->idx >= r->n) {
		fig5_removals(r);
		return;
	}
	memset(it, 0, sizeof(*it));
	o = it->offer = json_array_get(json_object_get(r->auth, "install"), r->idx);
	it->vendor = fig5_str(o, "vendor", CDCSIMG_ID_MAX);
	it->name = fig5_str(o, "name", CDCSIMG_ID_MAX);
	it->vn = json_integer_value(json_object_get(o, "version_number"));
	url = json_string_value(json_object_get(o, "download_url"));
	if (it->vendor == NULL || it->name == NULL || !cdcsimg_valid_id(it->vendor) ||
	    !cdcsimg_valid_id(it->name) || it->vn < 1) {
		it->vendor = it->name = NULL;
		fig5_item_fail(r, "bad_offer", "offer %zu: no valid vendor, name, version_number",
		               r->idx);
		return;
	}
	if ((k = fig5_str(o, "kind", 7)) != NULL && cdcsimg_valid_kind(k))
		snprintf(it->kind, sizeof(it->kind), "%s", k);
	/* The offer's own word first: a revoked version costs no verification either. */
	if ((why = dev_revoked(&r->a->revs, it->vendor, it->name, it->vn, NULL)) != NULL) {
		fig5_item_fail(r, "revoked",
		               "%s/%s v%" PRId64 " is revoked by the operator (list serial %" PRId64
		               ")",
		               it->vendor, it->name, it->vn, r->a->revs.serial);
		return;
	}
	if (fig5_already(r, o, &why)) {
		log_step("fig5", 7, r->rid, r->id.dm_id,
		         "%s/%s v%" PRId64 " already installed and personalized: skip", it->vendor,
		         it->name, it->vn);
		fig5_item_next(r);
		return;
	}
	log_step("fig5", 7, r->rid, r->id.dm_id, "%s/%s v%" PRId64 " needed (%s)", it->vendor,
	         it->name, it->vn, why);
	/* Verified before a byte is fetched: an unacceptable CDCS costs no download. */
	if (dev_cdcs_verify(&r->a->cfg, &r->a->keys, fig5_str(o, "manifest", JOSE_MAX_TOKEN),
	                    fig5_str(o, "approval", JOSE_MAX_TOKEN), 0, &it->m, &code, err,
	                    sizeof(err)) == -1) {
		fig5_item_fail(r, code, "%s", err);
		return;
	}
	snprintf(it->kind, sizeof(it->kind), "%s", it->m.kind);
	if (dev_cdcs_key_sha256(&r->a->keys, it->m.vendor, it->key_sha256) == -1) {
		fig5_item_fail(r, "internal_error", "no digest of the key of %s", it->m.vendor);
		return;
	}
	if ((why = dev_revoked(&r->a->revs, it->m.vendor, it->m.name, it->m.version_number,
	                       it->key_sha256)) != NULL) {
		fig5_item_fail(
		    r, "revoked",
		    "%s/%s v%" PRId64 " is revoked by the operator (%s, list serial %" PRId64 ")",
		    it->m.vendor, it->m.name, it->m.version_number,
		    strcmp(why, "version") == 0 ? "version" : "vendor key", r->a->revs.serial);
		return;
	}
	if (strcmp(it->m.vendor, it->vendor) != 0 || strcmp(it->m.name, it->name) != 0 ||
	    !fig5_offer_matches(o, &it->m)) {
		fig5_item_fail(r, "bad_offer", "the offer does not match its manifest");
		return;
	}
	if (!fig5_url_ok(url) || fig5_str(o, "download_ticket", JOSE_MAX_TOKEN) == NULL) {
		fig5_item_fail(r, "bad_offer", "no download_url or download_ticket");
		return;
	}
	if (dev_cdcs_part_path(&r->a->cfg, &it->m, it->part, sizeof(it->part)) == -1) {
		fig5_item_fail(r, "internal_error", "state_dir too long");
		return;
	}
	log_step("fig5", 8, r->rid, r->id.dm_id, "download request for %s/%s v%" PRId64 " to %s",
	         it->vendor, it->name, it->vn, url);
	fig5_post(r, url, "",
	          json_pack("{s:s}", "download_ticket",
	                    json_string_value(json_object_get(o, "download_ticket"))),
	          fig5_download_answer);
}

/* --- after the items ------------------------------------------------------------------- */

static void fig5_finish(struct agent_fig5 *r)
{
	json_t *ans =
	    json_pack("{s:b, s:O, s:O, s:O, s:O, s:O}", "ok", json_array_size(r->failed) == 0,
	              "installed", r->installed, "skipped", r->skipped, "removed", r->removed,
	              "failed", r->failed, "postponed", r->postponed);

	log_rinfo(r->rid,
	          "Figure 5 run done: %zu installed, %zu skipped, %zu removed, %zu failed, %zu "
	          "removal(s) postponed",
	          json_array_size(r->installed), json_array_size(r->skipped),
	          json_array_size(r->removed), json_array_size(r->failed),
	          json_array_size(r->postponed));
	if (ans == NULL)
		ans = agent_control_error("internal_error", "out of memory");
	fig5_end(r, ans, 1);
}

static void fig5_reported(struct agent_fig5 *r, struct httpc_resp *resp)
{
	const char *code, *msg;

	/* cdcs-pss also learns the state from cdcs-iss (step 20) and from the next authorize. */
	if (resp->error != NULL || resp->status != 200) {
		fig5_resp_error(resp, &code, &msg);
		log_rwarn(r->rid, "report to cdcs-pss failed: %s: %s", code, msg);
	}
	fig5_finish(r);
}

static void fig5_report(struct agent_fig5 *r)
{
	const char *keep[FIG5_MAX_WAITERS + DEV_CDCS_MAX_ITEMS];
	size_t i, n = 0;
	json_t *v;

	json_array_foreach(r->keep, i, v) if (n < sizeof(keep) / sizeof(keep[0])) keep[n++] =
	    json_string_value(v);
	dev_cdcs_parts_prune(&r->a->cfg, keep, n);
	if (json_array_size(r->results) == 0) {
		fig5_finish(r);
		return;
	}
	fig5_post(r, r->id.cdcs_pss_url, "/v1/cdcs/report",
	          json_pack("{s:s, s:O}", "decision", r->decision, "results", r->results),
	          fig5_reported);
}

/* Was vendor/name offered for installation in this run? */
static int fig5_offered(const struct agent_fig5 *r, const char *vendor, const char *name)
{
	json_t *o;
	size_t i;

	json_array_foreach(json_object_get(r->auth, "install"), i, o)
	{
		const char *v = json_string_value(json_object_get(o, "vendor"));
		const char *n = json_string_value(json_object_get(o, "name"));

		if (v != NULL && n != NULL && strcmp(v, vendor) == 0 && strcmp(n, name) == 0)
			return 1;
	}
	return 0;
}

/* Remove vendor/name (version vn), its play children stopped first: they run in the
 * directory that goes. error: NULL, or why (in the report and the answer). */
static void fig5_remove(struct agent_fig5 *r, const char *vendor, const char *name, int64_t vn,
                        const char *error)
{
	json_t *rm, *res;
	char err[512];

	snprintf(err, sizeof(err), "%s/%s v%" PRId64 " was %s", vendor, name, vn,
	         error != NULL ? "revoked by the operator" : "removed by the policy");
	agent_play_stop(r->a, vendor, name, error != NULL ? error : "no_cdcs", err);
	if (dev_cdcs_remove(&r->a->cfg, vendor, name, err, sizeof(err)) == -1) {
		log_rwarn(r->rid, "cannot remove %s/%s: %s", vendor, name, err);
		return;
	}
	log_rinfo(r->rid, "%s/%s v%" PRId64 " removed%s%s", vendor, name, vn,
	          error != NULL ? ": " : "", error != NULL ? error : "");
	rm = json_pack("{s:s, s:s, s:I}", "vendor", vendor, "name", name, "version_number",
	               (json_int_t)vn);
	res = json_pack("{s:s, s:s, s:I, s:s}", "vendor", vendor, "name", name, "version_number",
	                (json_int_t)vn, "state", "removed");
	if (error != NULL && rm != NULL && res != NULL) {
		json_object_set_new(rm, "reason", json_string(error));
		json_object_set_new(res, "error", json_string(error));
	}
	json_array_append_new(r->removed, rm);
	json_array_append_new(r->results, res);
}

/* Every installed CDCS the kept list revokes goes, whatever else happened in this run. */
static void fig5_revoked_removals(struct agent_fig5 *r)
{
	json_t *all = dev_cdcs_list(&r->a->cfg), *st;
	const char *why;
	int64_t vn;
	size_t i;

	json_array_foreach(all, i, st)
	{
		if ((why = dev_revoked_installed(&r->a->revs, &r->a->keys, st)) == NULL)
			continue;
		vn = json_integer_value(json_object_get(st, "version_number"));
		log_rwarn(r->rid, "%s/%s v%" PRId64 " is revoked (%s, list serial %" PRId64 ")",
		          json_string_value(json_object_get(st, "vendor")),
		          json_string_value(json_object_get(st, "name")), vn, why,
		          r->a->revs.serial);
		fig5_remove(r, json_string_value(json_object_get(st, "vendor")),
		            json_string_value(json_object_get(st, "name")), vn, "revoked");
	}
	json_decref(all);
}

static void fig5_removals(struct agent_fig5 *r)
{
	json_t *rm = json_object_get(r->auth, "remove"), *o, *st;
	const char *vendor, *name, *kind, *reason;
	int64_t vn;
	size_t i;

	fig5_revoked_removals(r);
	json_array_foreach(rm, i, o)
	{
		vendor = fig5_str(o, "vendor", CDCSIMG_ID_MAX);
		name = fig5_str(o, "name", CDCSIMG_ID_MAX);
		reason = fig5_str(o, "reason", 256);
		if (vendor == NULL || name == NULL || !cdcsimg_valid_id(vendor) ||
		    !cdcsimg_valid_id(name) || fig5_offered(r, vendor, name))
			continue;
		if ((st = dev_cdcs_state(&r->a->cfg, vendor, name)) == NULL)
			continue;
		vn = json_integer_value(json_object_get(st, "version_number"));
		kind = json_string_value(json_object_get(st, "kind"));
		if (dev_removal_postponed(kind, r->failed_kinds)) {
			/* Make before break: what failed may be what was to replace it. */
			log_rwarn(r->rid,
			          "removal of %s/%s v%" PRId64 " (%s) postponed: an install of "
			          "a %s client failed in this run",
			          vendor, name, vn, reason != NULL ? reason : "policy",
			          kind != NULL ? kind : "CA/DRM");
			json_array_append_new(
			    r->postponed,
			    json_pack("{s:s, s:s, s:I, s:s}", "vendor", vendor, "name", name,
			              "version_number", (json_int_t)vn, "reason",
			              "an install of the same kind failed in this run"));
			json_decref(st);
			continue;
		}
		json_decref(st);
		log_rinfo(r->rid, "removing %s/%s v%" PRId64 ": %s", vendor, name, vn,
		          reason != NULL ? reason : "no longer chosen by the policy");
		fig5_remove(r, vendor, name, vn, NULL);
	}
	fig5_report(r);
}

/* --- authorize ------------------------------------------------------------------------- */

static int fig5_auth_ok(const json_t *j)
{
	const json_t *in = json_object_get(j, "install"), *rm = json_object_get(j, "remove");
	const json_t *iv = json_object_get(j, "interval_s");
	const json_t *o;
	size_t i;

	if (fig5_str(j, "decision", 64) == NULL || !json_is_array(in) ||
	    json_array_size(in) > DEV_CDCS_MAX_ITEMS || (rm != NULL && !json_is_array(rm)) ||
	    json_array_size(rm) > DEV_CDCS_MAX_ITEMS * 4 ||
	    (iv != NULL && (!json_is_integer(iv) || json_integer_value(iv) < 0)))
		return 0;
	json_array_foreach(in, i, o) if (!json_is_object(o)) return 0;
	return 1;
}

/* The operator's list as cdcs-pss passed it: kept when it verifies and is newer. A bad one
 * changes nothing; the run goes on with the list kept before. */
static void fig5_revocations(struct agent_fig5 *r, const json_t *v)
{
	const char *code = NULL;
	char err[512];
	int rc;

	if (v == NULL || json_is_null(v))
		return;
	rc = dev_revocations_update(&r->a->cfg, r->a->keys.operator_pub, &r->a->revs,
	                            json_string_value(v), &code, err, sizeof(err));
	if (rc == -1)
		log_rwarn(r->rid, "revocation list ignored: %s: %s", code, err);
	else if (rc == 1)
		log_rinfo(r->rid,
		          "revocation list serial %" PRId64 " kept: %zu version(s), %zu vendor "
		          "key(s) revoked",
		          r->a->revs.serial, r->a->revs.n_versions, r->a->revs.n_keys);
	else
		log_rdebug(r->rid, "revocation list not newer than serial %" PRId64,
		           r->a->revs.serial);
}

static void fig5_authorized(struct agent_fig5 *r, struct httpc_resp *resp)
{
	const char *code, *msg;
	json_t *iv;

	if (resp->error != NULL || resp->status >= 500) {
		fig5_resp_error(resp, &code, &msg);
		fig5_fatal(r, code, 1, "cdcs-pss: %s", msg);
		return;
	}
	if (resp->status != 200) {
		fig5_resp_error(resp, &code, &msg);
		fig5_fatal(r, code, 0, "cdcs-pss refused: %s", msg);
		return;
	}
	if (!fig5_auth_ok(resp->json)) {
		fig5_fatal(r, "bad_answer", 0, "cdcs-pss authorize answer is malformed");
		return;
	}
	r->auth = json_incref(resp->json);
	fig5_revocations(r, json_object_get(r->auth, "revocations"));
	r->decision = json_string_value(json_object_get(r->auth, "decision"));
	r->n = json_array_size(json_object_get(r->auth, "install"));
	if (json_is_integer(iv = json_object_get(r->auth, "interval_s")))
		r->a->pss_interval_s = json_integer_value(iv);
	log_rinfo(r->rid, "decision %s: %zu to install, %zu to remove", r->decision, r->n,
	          json_array_size(json_object_get(r->auth, "remove")));
	r->idx = 0;
	fig5_item_start(r);
}

/* What the device has, as the authorize body lists it. */
static json_t *fig5_installed(struct agent_fig5 *r)
{
	json_t *all = dev_cdcs_list(&r->a->cfg), *out = json_array(), *st;
	size_t i;

	json_array_foreach(all, i, st)
	{
		if (json_array_size(out) >= DEV_CDCS_MAX_ITEMS)
			break;
		json_array_append_new(
		    out,
		    json_pack("{s:O, s:O, s:O, s:O, s:b}", "vendor", json_object_get(st, "vendor"),
		              "name", json_object_get(st, "name"), "variant",
		              json_object_get(st, "variant"), "version_number",
		              json_object_get(st, "version_number"), "personalized",
		              json_is_true(json_object_get(st, "personalized"))));
	}
	json_decref(all);
	return out;
}

static void fig5_begin(struct agent_fig5 *r)
{
	json_t *cap, *inst;

	dev_cdcs_cleanup(&r->a->cfg);
	agent_trust_load(r->a, r->rid);
	cap = capability_to_json(&r->a->cfg.capability);
	inst = fig5_installed(r);
	if (cap == NULL || inst == NULL) {
		json_decref(cap);
		json_decref(inst);
		fig5_fatal(r, "internal_error", 0, "out of memory");
		return;
	}
	log_step("fig5", 1, r->rid, r->id.dm_id, "authorize request to %s (%zu installed)",
	         r->id.cdcs_pss_url, json_array_size(inst));
	fig5_post(r, r->id.cdcs_pss_url, "/v1/cdcs/authorize",
	          json_pack("{s:o, s:o}", "capability", cap, "installed", inst), fig5_authorized);
}

/* --- entry points ------------------------------------------------------------------------ */

struct httpc *agent_fig5_http(struct agent *a, char *err, size_t errlen)
{
	char cert[PATH_MAX], key[PATH_MAX];
	struct httpc_conf hc;
	struct dev_link link;

	if (a->http5 != NULL)
		return a->http5;
	if (dev_path(cert, sizeof(cert), &a->cfg, "identity/cert.pem") == -1 ||
	    dev_path(key, sizeof(key), &a->cfg, "identity/key.pem") == -1) {
		snprintf(err, errlen, "state_dir too long");
		return NULL;
	}
	memset(&hc, 0, sizeof(hc));
	hc.tls.cert = cert;
	hc.tls.key = key;
	hc.tls.ca = a->cfg.tls.ca;
	/* Through the CPE relay when paired (the link credential), else as configured. */
	if (dev_link_httpc_conf(&a->cfg, &link, &hc, err, errlen) == -1)
		return NULL;
	/* A request's whole time, and a download's stall time (httpc.h). */
	hc.timeout_ms = 10000;
	a->http5 = httpc_new(a->base, &hc, err, errlen);
	return a->http5;
}

static int fig5_wait(struct agent_fig5 *r, struct bufferevent *bev)
{
	if (bev == NULL)
		return 0;
	if (r->nwaiters >= FIG5_MAX_WAITERS)
		return -1;
	r->waiters[r->nwaiters++] = bev;
	return 0;
}

void agent_fig5_start(struct agent *a, struct bufferevent *bev, const char *rid)
{
	struct agent_fig5 *r;
	char err[512];

	if (a->run != NULL) {
		log_rinfo(rid, "joining the Figure 5 run %s in progress", a->run->rid);
		if (fig5_wait(a->run, bev) == -1)
			agent_control_reply(bev, agent_control_error("busy", "too many waiting"));
		return;
	}
	if (bev != NULL && rid != NULL && !fig5_rid_ok(rid)) {
		agent_control_reply(bev, agent_control_error("bad_request", "bad rid"));
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		goto oom;
	r->a = a;
	if (rid != NULL && fig5_rid_ok(rid))
		snprintf(r->rid, sizeof(r->rid), "%s", rid);
	else if (jose_random_hex(r->rid, sizeof(r->rid), 12) == -1)
		goto oom;
	if ((r->timer = evtimer_new(a->base, fig5_timer_cb, r)) == NULL ||
	    (r->installed = json_array()) == NULL || (r->skipped = json_array()) == NULL ||
	    (r->removed = json_array()) == NULL || (r->failed = json_array()) == NULL ||
	    (r->results = json_array()) == NULL || (r->keep = json_array()) == NULL ||
	    (r->postponed = json_array()) == NULL)
		goto oom;
	(void)fig5_wait(r, bev);
	a->run = r;
	if (dev_identity_load(&a->cfg, &r->id) == -1) {
		fig5_fatal(r, "not_personalized", 0, "the device has no valid DM certificate");
		return;
	}
	if (agent_fig5_http(a, err, sizeof(err)) == NULL) {
		fig5_fatal(r, "internal_error", 0, "Figure 5 client: %s", err);
		return;
	}
	fig5_begin(r);
	return;
oom:
	fig5_free(r);
	log_rerr(rid, "out of memory");
	if (bev != NULL)
		agent_control_reply(bev, agent_control_error("internal_error", "out of memory"));
	agent_sched_next(a, 0);
}

void agent_fig5_detach(struct agent *a, struct bufferevent *bev)
{
	size_t i;

	if (a->run == NULL)
		return;
	for (i = 0; i < a->run->nwaiters; i++)
		if (a->run->waiters[i] == bev)
			a->run->waiters[i] = NULL;
}

void agent_fig5_cancel(struct agent *a)
{
	/* After the loop stopped: httpc_free() cancels the requests without callbacks, the
	 * child is killed and the version being installed removed by fig5_item_clear(). */
	fig5_free(a->run);
	a->run = NULL;
}

json_t *agent_cdcs_status(struct agent *a)
{
	json_t *all = dev_cdcs_list(&a->cfg);

	if (all == NULL)
		return agent_control_error("internal_error", "out of memory");
	return json_pack("{s:b, s:o}", "ok", 1, "cdcs", all);
}
