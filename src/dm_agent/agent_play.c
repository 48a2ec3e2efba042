/*
 * agent_play: the "play" command. The protected header of the content (a compact JWE) names
 * its system and level in kid "<vendor>/<name>/<level>"; the agent reads nothing else of it.
 * The installed and personalized CDCS of that system decrypts it in a child of its own; the
 * plaintext goes back to dm-app in base64. Errors: no_cdcs (no such CDCS here), not_entitled
 * (the CDCS holds no key for the level), bad_content, revoked (the CDCS is on the operator's
 * revocation list: never started, even before the next run removes it).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "opendm/file.h"

#include "agent.h"
#include "cdcsproc.h"
#include "dev_cdcs.h"
#include "dev_revoke.h"

#define PLAY_MAX_CONTENT (4 * 1024 * 1024)
#define PLAY_MAX_LEVEL   32
#define PLAY_MAX_HEADER  4096 /* base64url characters of a protected header */

struct agent_play {
	struct agent *a;
	struct agent_play *next, **prevp;
	struct bufferevent *bev; /* NULL once dm-app went away */
	struct cdcsproc *proc;
	struct event *done; /* the answer is sent from here, never from the child's callback */
	json_t *answer;
	char system[2 * CDCSIMG_ID_MAX + 2];
};

static void agent_play_free(struct agent_play *p)
{
	if (p == NULL)
		return;
	if (p->prevp != NULL) {
		*p->prevp = p->next;
		if (p->next != NULL)
			p->next->prevp = p->prevp;
	}
	if (p->proc != NULL)
		cdcsproc_free(p->proc);
	if (p->done != NULL)
		event_free(p->done);
	json_decref(p->answer);
	free(p);
}

static void agent_play_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_play *p = arg;
	json_t *ans = p->answer;

	p->answer = NULL;
	if (p->bev != NULL)
		agent_control_reply(p->bev, ans);
	else
		json_decref(ans);
	agent_play_free(p);
}

static int agent_level_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= PLAY_MAX_LEVEL &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/*
 * kid of the protected header of the compact JWE in text: "<vendor>/<name>/<level>" split
 * into its parts. 0/-1.
 */
static int agent_content_kid(const char *text, size_t len, char *vendor, char *name, char *level)
{
	const char *dot = memchr(text, '.', len), *kid, *s1, *s2;
	unsigned char *hdr = NULL;
	json_t *h = NULL;
	size_t hlen = 0, dots = 0, i;
	int rc = -1;

	for (i = 0; i < len; i++)
		if (text[i] == '.')
			dots++;
	if (dot == NULL || dots != 4 || dot == text || (size_t)(dot - text) > PLAY_MAX_HEADER ||
	    (hdr = dev_b64url_decode(text, (size_t)(dot - text), &hlen)) == NULL ||
	    (h = json_loadb((const char *)hdr, hlen, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		goto out;
	if ((kid = json_string_value(json_object_get(h, "kid"))) == NULL ||
	    (s1 = strchr(kid, '/')) == NULL || (s2 = strchr(s1 + 1, '/')) == NULL ||
	    (size_t)(s1 - kid) > CDCSIMG_ID_MAX || (size_t)(s2 - s1 - 1) > CDCSIMG_ID_MAX ||
	    strlen(s2 + 1) > PLAY_MAX_LEVEL)
		goto out;
	memcpy(vendor, kid, (size_t)(s1 - kid));
	vendor[s1 - kid] = '\0';
	memcpy(name, s1 + 1, (size_t)(s2 - s1 - 1));
	name[s2 - s1 - 1] = '\0';
	snprintf(level, PLAY_MAX_LEVEL + 1, "%s", s2 + 1);
	if (cdcsimg_valid_id(vendor) && cdcsimg_valid_id(name) && agent_level_ok(level))
		rc = 0;
out:
	json_decref(h);
	free(hdr);
	return rc;
}

static int agent_has_right(const json_t *st, const char *level)
{
	const json_t *v;
	size_t i;

	json_array_foreach(json_object_get(st, "rights"), i, v)
	{
		if (json_is_string(v) && strcmp(json_string_value(v), level) == 0)
			return 1;
	}
	return 0;
}

static char *agent_b64(const char *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out != NULL)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
	return out;
}

static void agent_play_cb(json_t *resp, const char *code, const char *err, void *arg)
{
	struct agent_play *p = arg;
	const char *pt = json_string_value(json_object_get(resp, "plaintext"));
	const char *c = json_string_value(json_object_get(resp, "code"));
	const char *m = json_string_value(json_object_get(resp, "message"));

	if (resp != NULL && json_is_true(json_object_get(resp, "ok")) && pt != NULL) {
		log_info("%s: content decrypted", p->system);
		p->answer = json_pack("{s:b, s:O}", "ok", 1, "plaintext",
		                      json_object_get(resp, "plaintext"));
	} else if (resp != NULL) {
		/*
		 * The ABI's decrypt says only "may not" (cdcs_failed, with the CDCS's own reason
		 * in the message): not entitled. A request it could not read is bad content.
		 */
		log_warn("%s: the CDCS refused: %s: %s", p->system, c != NULL ? c : "-",
		         m != NULL ? m : "-");
		if (c == NULL || strcmp(c, "cdcs_failed") == 0)
			c = "not_entitled";
		else if (strcmp(c, "bad_request") == 0)
			c = "bad_content";
		p->answer = agent_control_error(strlen(c) < 64 ? c : "not_entitled",
		                                m != NULL ? m : "the CDCS cannot decrypt it");
	} else {
		log_warn("%s: %s: %s", p->system, code, err);
		p->answer = agent_control_error(code != NULL ? code : "cdcs_protocol",
		                                err != NULL ? err : "no answer from the CDCS");
	}
	if (p->answer == NULL)
		p->answer = agent_control_error("internal_error", "out of memory");
	event_active(p->done, EV_TIMEOUT, 0);
}

/* Everything up to the child's call; an error answer (and *p stays NULL) or NULL. */
static json_t *agent_play_begin(struct agent *a, struct agent_play *p, const char *path)
{
	char vendor[CDCSIMG_ID_MAX + 1], name[CDCSIMG_ID_MAX + 1], level[PLAY_MAX_LEVEL + 1];
	char dir[PATH_MAX], err[512], *text = NULL, *b64 = NULL;
	json_t *st = NULL, *req = NULL, *ans = NULL;
	const char *why;
	size_t len;

	if ((text = file_read(path, PLAY_MAX_CONTENT, &len, err, sizeof(err))) == NULL) {
		ans = agent_control_error("bad_content", err);
		goto out;
	}
	if (agent_content_kid(text, len, vendor, name, level) == -1) {
		ans = agent_control_error("bad_content", "not a compact JWE with a kid "
		                                         "\"<vendor>/<name>/<level>\"");
		goto out;
	}
	snprintf(p->system, sizeof(p->system), "%s/%s", vendor, name);
	st = dev_cdcs_state(&a->cfg, vendor, name);
	if (st == NULL || !json_is_true(json_object_get(st, "personalized")) ||
	    dev_cdcs_current_dir(&a->cfg, vendor, name, dir, sizeof(dir)) == -1) {
		snprintf(err, sizeof(err), "no personalized CDCS for %s", p->system);
		ans = agent_control_error("no_cdcs", err);
		goto out;
	}
	if ((why = dev_revoked_installed(&a->revs, &a->keys, st)) != NULL) {
		snprintf(err, sizeof(err), "%s v%lld is revoked (%s)", p->system,
		         (long long)json_integer_value(json_object_get(st, "version_number")), why);
		log_warn("%s: not played: %s", path, err);
		ans = agent_control_error("revoked", err);
		goto out;
	}
	if (!agent_has_right(st, level)) {
		snprintf(err, sizeof(err), "%s has no right to level %s", p->system, level);
		ans = agent_control_error("not_entitled", err);
		goto out;
	}
	if ((b64 = agent_b64(text, len)) == NULL ||
	    (req = json_pack("{s:s, s:s}", "op", "decrypt", "content", b64)) == NULL) {
		ans = agent_control_error("internal_error", "out of memory");
		goto out;
	}
	if ((p->proc = cdcsproc_start(a->base, "/proc/self/exe", dir, STDERR_FILENO, err,
	                              sizeof(err))) == NULL ||
	    cdcsproc_call(p->proc, req, a->cfg.cdcs_timeout_s * 1000, agent_play_cb, p) == -1) {
		ans = agent_control_error("cdcs_start_failed",
		                          p->proc == NULL ? err : "cannot talk to the CDCS");
		goto out;
	}
	log_info("%s: decrypting %s (level %s)", p->system, path, level);
out:
	free(text);
	free(b64);
	json_decref(st);
	json_decref(req);
	return ans;
}

void agent_play(struct agent *a, struct bufferevent *bev, json_t *cmd)
{
	const char *path = json_string_value(json_object_get(cmd, "path"));
	struct agent_play *p;
	json_t *ans;

	if (path == NULL || path[0] != '/' || strlen(path) >= PATH_MAX) {
		agent_control_reply(bev,
		                    agent_control_error("bad_request", "path must be absolute"));
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->done = event_new(a->base, -1, 0, agent_play_done_cb, p)) == NULL) {
		agent_play_free(p);
		agent_control_reply(bev, agent_control_error("internal_error", "out of memory"));
		return;
	}
	p->a = a;
	p->bev = bev;
	if ((ans = agent_play_begin(a, p, path)) != NULL) {
		agent_play_free(p);
		agent_control_reply(bev, ans);
		return;
	}
	p->next = a->plays;
	if (a->plays != NULL)
		a->plays->prevp = &p->next;
	p->prevp = &a->plays;
	a->plays = p;
}

void agent_play_stop(struct agent *a, const char *vendor, const char *name, const char *code,
                     const char *msg)
{
	char system[sizeof(((struct agent_play *)0)->system)];
	struct agent_play *p;

	snprintf(system, sizeof(system), "%s/%s", vendor, name);
	for (p = a->plays; p != NULL; p = p->next) {
		if (p->proc == NULL || strcmp(p->system, system) != 0)
			continue;
		/* The child runs in the directory about to go: no callback after this. */
		cdcsproc_free(p->proc);
		p->proc = NULL;
		if (p->answer != NULL)
			continue; /* answered already, the answer is on its way */
		log_warn("%s: decryption stopped: %s", system, msg);
		if ((p->answer = agent_control_error(code, msg)) == NULL)
			p->answer = agent_control_error("internal_error", "out of memory");
		event_active(p->done, EV_TIMEOUT, 0);
	}
}

void agent_play_detach(struct agent *a, struct bufferevent *bev)
{
	struct agent_play *p;

	for (p = a->plays; p != NULL; p = p->next)
		if (p->bev == bev)
			p->bev = NULL;
}

void agent_play_cancel(struct agent *a)
{
	while (a->plays != NULL)
		agent_play_free(a->plays);
}
