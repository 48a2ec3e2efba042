/*
 * cdcs-iss report: Figure 5 step 20, the outbox of confirmed personalizations for cdcs-pss.
 *
 * A confirmation only queues a row (confirm.c); this timer delivers the rows with
 * POST {cdcs_pss_url}/v1/internal/cdcs-state, under our own service certificate and the
 * request id of the confirmation that queued each row. A row is deleted (and step 20 logged)
 * only once cdcs-pss has answered 200, so a report outlives a cdcs-pss outage or our own
 * restart; cdcs-pss records it idempotently, so sending one twice is harmless.
 *
 * One batch is in flight at a time: a row is never sent twice at once, and a confirmation
 * that arrives meanwhile is picked up when the batch ends. A failed row waits 1, 2, 4 ... up
 * to 30 seconds before its next attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "opendm/log.h"
#include "cdcs_iss.h"

#define CDCS_ISS_BACKOFF_MAX 30
#define CDCS_ISS_WHAT_MAX    (2 * CDCS_ISS_ID_MAX + CDCS_ISS_CDCS_ID_MAX + 64)

struct cdcs_iss_report {
	TAILQ_ENTRY(cdcs_iss_report) entry;
	struct cdcs_iss *s;
	int64_t id;
	int64_t attempts; /* failures before this one */
	char rid[HTTPD_RID_MAX + 1];
	char dm_id[DMPEER_ID_MAX + 1];
	char what[CDCS_ISS_WHAT_MAX]; /* "<vendor>/<name> v<N> personalized cdcs_id=..." */
};

int64_t cdcs_iss_report_backoff(int64_t attempts)
{
	int64_t wait;

	if (attempts <= 0)
		return 0;
	if (attempts > 5)
		return CDCS_ISS_BACKOFF_MAX;
	wait = (int64_t)1 << (attempts - 1);
	return wait < CDCS_ISS_BACKOFF_MAX ? wait : CDCS_ISS_BACKOFF_MAX;
}

/* A string member of a report we wrote ourselves, for the log. */
static const char *cdcs_iss_report_str(const json_t *body, const char *key)
{
	const char *v = json_string_value(json_object_get(body, key));

	return v != NULL ? v : "?";
}

static void cdcs_iss_report_arm(struct cdcs_iss *s, int64_t delay_s)
{
	struct timeval tv = {(time_t)(delay_s > 0 ? delay_s : 0), 0};

	if (event_add(s->ev_outbox, &tv) == -1)
		log_err("cannot arm the outbox timer");
}

/* After a batch: wake up when the next row is due, or sleep until a confirmation. */
static void cdcs_iss_report_schedule(struct cdcs_iss *s)
{
	int64_t at, now = (int64_t)time(NULL);
	int r;

	if ((r = cdcs_iss_store_outbox_next(s->d->db, &at)) == 1)
		cdcs_iss_report_arm(s, at - now);
	else if (r == -1) /* the database may come back: look again later */
		cdcs_iss_report_arm(s, CDCS_ISS_BACKOFF_MAX);
}

void cdcs_iss_report_kick(struct cdcs_iss *s)
{
	if (TAILQ_EMPTY(&s->sending))
		cdcs_iss_report_arm(s, 0);
}

/* This attempt failed: the row waits its backoff. */
static void cdcs_iss_report_failed(struct cdcs_iss_report *r, const char *why)
{
	int64_t wait = cdcs_iss_report_backoff(r->attempts + 1);

	log_rwarn(r->rid, "report %s of %s to cdcs-pss failed (attempt %lld): %s; next in %llds",
	          r->what, r->dm_id, (long long)(r->attempts + 1), why, (long long)wait);
	cdcs_iss_store_outbox_retry(r->s->d->db, r->id, (int64_t)time(NULL) + wait);
}

static void cdcs_iss_report_done(struct httpc_resp *resp, void *arg)
{
	struct cdcs_iss_report *r = arg;
	struct cdcs_iss *s = r->s;
	char why[128];

	TAILQ_REMOVE(&s->sending, r, entry);
	if (resp->status == 200 && json_is_true(json_object_get(resp->json, "recorded"))) {
		if (cdcs_iss_store_outbox_delete(s->d->db, r->id) == 0)
			log_step("fig5", 20, r->rid, r->dm_id, "reported to cdcs-pss: %s", r->what);
	} else {
		if (resp->error != NULL)
			snprintf(why, sizeof(why), "%s", resp->error);
		else
			snprintf(why, sizeof(why), "HTTP %ld", resp->status);
		cdcs_iss_report_failed(r, why);
	}
	free(r);
	if (TAILQ_EMPTY(&s->sending))
		cdcs_iss_report_schedule(s);
}

/* Start sending one row. The row is rescheduled when it cannot even start. */
static void cdcs_iss_report_send(struct cdcs_iss *s, const struct cdcs_iss_outbox_row *row)
{
	struct cdcs_iss_report *r;
	char url[CDCS_ISS_URL_MAX + 64];
	json_error_t jerr;
	const char *dm_id;
	json_t *body = NULL;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		log_err("out of memory");
		return;
	}
	r->s = s;
	r->id = row->id;
	r->attempts = row->attempts;
	snprintf(r->rid, sizeof(r->rid), "%s", row->rid);
	snprintf(r->what, sizeof(r->what), "outbox row %lld", (long long)row->id);
	if ((body = json_loads(row->body, JSON_REJECT_DUPLICATES, &jerr)) == NULL ||
	    (dm_id = json_string_value(json_object_get(body, "dm_id"))) == NULL) {
		/* We wrote it: this is a damaged database, not a peer's fault. */
		log_rerr(r->rid, "outbox row %lld is not a report", (long long)row->id);
		cdcs_iss_report_failed(r, "unreadable row");
		goto fail;
	}
	snprintf(r->dm_id, sizeof(r->dm_id), "%s", dm_id);
	snprintf(r->what, sizeof(r->what), "%s/%s v%lld personalized cdcs_id=%s",
	         cdcs_iss_report_str(body, "vendor"), cdcs_iss_report_str(body, "name"),
	         (long long)json_integer_value(json_object_get(body, "version_number")),
	         cdcs_iss_report_str(body, "cdcs_id"));
	snprintf(url, sizeof(url), "%s/v1/internal/cdcs-state", s->cdcs_pss_url);
	TAILQ_INSERT_TAIL(&s->sending, r, entry);
	if (httpc_request(s->pss, "POST", url, r->rid, body, cdcs_iss_report_done, r) == -1) {
		TAILQ_REMOVE(&s->sending, r, entry);
		cdcs_iss_report_failed(r, "cannot start the request");
		goto fail;
	}
	json_decref(body);
	return;
fail:
	json_decref(body);
	free(r);
}

static void cdcs_iss_report_tick(evutil_socket_t fd, short what, void *arg)
{
	struct cdcs_iss *s = arg;
	struct cdcs_iss_outbox_row rows[CDCS_ISS_BATCH];
	int i, n;

	if (!TAILQ_EMPTY(&s->sending))
		return; /* the batch in flight reschedules when it ends */
	if ((n = cdcs_iss_store_outbox_due(s->d->db, (int64_t)time(NULL), rows, CDCS_ISS_BATCH)) ==
	    -1) {
		cdcs_iss_report_arm(s, CDCS_ISS_BACKOFF_MAX);
		return;
	}
	for (i = 0; i < n; i++) {
		cdcs_iss_report_send(s, &rows[i]);
		free(rows[i].body);
	}
	if (TAILQ_EMPTY(&s->sending))
		cdcs_iss_report_schedule(s);
}

int cdcs_iss_report_init(struct cdcs_iss *s)
{
	if ((s->ev_outbox = evtimer_new(s->d->base, cdcs_iss_report_tick, s)) == NULL)
		return -1;
	/* Whatever a previous run left waiting for its backoff goes now. */
	if (cdcs_iss_store_outbox_reset(s->d->db, (int64_t)time(NULL)) == -1)
		return -1;
	cdcs_iss_report_arm(s, 0);
	return 0;
}

void cdcs_iss_report_drop(struct cdcs_iss *s)
{
	struct cdcs_iss_report *r;

	while ((r = TAILQ_FIRST(&s->sending)) != NULL) {
		TAILQ_REMOVE(&s->sending, r, entry);
		free(r);
	}
	if (s->ev_outbox != NULL)
		event_free(s->ev_outbox);
	s->ev_outbox = NULL;
}
