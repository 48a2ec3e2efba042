/*
 * agent_sched: when the agent runs Figure 5 by itself. At start when the device is
 * personalized, then every cdcs_interval_s (device.json) or, by default, the interval_s
 * cdcs-pss returned, each time with +-10% jitter so a fleet restarted together does not ask
 * at the same second. A run that could not reach cdcs-pss is retried sooner (30 s doubling
 * up to the interval). cdcs_interval_s 0: no periodic runs (dm-app asks).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "agent.h"

#define SCHED_DEFAULT_S     3600 /* until cdcs-pss has said */
#define SCHED_RETRY_FIRST_S 30

static void agent_sched_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;

	/* A run in progress re-arms the timer when it ends. */
	if (a->run == NULL)
		agent_fig5_start(a, NULL, NULL);
}

/* s seconds +-10%, in milliseconds. */
static long agent_sched_jitter(int64_t s)
{
	uint32_t rnd = 0;
	int64_t ms = s * 1000, span = ms / 5;

	if (span > 0 && RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) == 1)
		ms = ms - span / 2 + (int64_t)(rnd % (uint32_t)(span + 1));
	return ms > 0 ? (long)ms : 0;
}

static void agent_sched_arm(struct agent *a, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	if (a->sched == NULL)
		return;
	evtimer_del(a->sched);
	if (evtimer_add(a->sched, &tv) == -1)
		log_err("cannot arm the Figure 5 schedule");
	else
		log_debug("next Figure 5 run in %ld s", ms / 1000);
}

/* The periodic interval in seconds, 0 for none. */
static int64_t agent_sched_interval(const struct agent *a)
{
	if (a->cfg.cdcs_interval_s != DEV_CDCS_INTERVAL_PSS)
		return a->cfg.cdcs_interval_s;
	return a->pss_interval_s > 0 ? a->pss_interval_s : SCHED_DEFAULT_S;
}

void agent_sched_next(struct agent *a, int reached)
{
	int64_t every = agent_sched_interval(a), retry;

	if (a->sched == NULL || a->stopping)
		return;
	if (reached) {
		a->sched_fails = 0;
	} else if (a->sched_fails < 16) {
		a->sched_fails++;
	}
	if (every == 0) {
		evtimer_del(a->sched);
		return;
	}
	if (!reached) {
		retry = (int64_t)SCHED_RETRY_FIRST_S << (a->sched_fails - 1);
		if (retry < every)
			every = retry;
	}
	agent_sched_arm(a, agent_sched_jitter(every));
}

int agent_sched_start(struct agent *a, char *err, size_t errlen)
{
	struct dev_identity id;
	int64_t every;

	if ((a->sched = evtimer_new(a->base, agent_sched_cb, a)) == NULL) {
		snprintf(err, errlen, "cannot make the Figure 5 timer");
		return -1;
	}
	if (dev_identity_load(&a->cfg, &id) == 0) {
		/* Personalized already: the Figure 5 client now, and a run as soon as the loop
		 * turns (the control socket is up by then, so dm-app can join it). */
		if (agent_fig5_http(a, err, errlen) == NULL)
			/* Figure 4 must still work: the run will report it. */
			log_err("Figure 5 client: %s", err);
		agent_sched_arm(a, 0);
		return 0;
	}
	/* Not yet: Figure 4 comes first; the periodic run finds the identity once it exists. */
	if ((every = agent_sched_interval(a)) > 0)
		agent_sched_arm(a, agent_sched_jitter(every));
	return 0;
}

void agent_sched_stop(struct agent *a)
{
	if (a->sched != NULL)
		event_free(a->sched);
	a->sched = NULL;
}
