/*
 * agent_cdcshost: "dm-agent --cdcs-host DIR", the child process one CDCS runs in.
 *
 * The agent spawns a fresh exec of itself per CDCS, so vendor code never shares an address
 * space with the agent's keys or its event loop. This process loads DIR/cdcs.so and nothing
 * else, checks that the CDCS is the one DIR/manifest.jws names (the agent verified that
 * manifest at install; here it is only decoded), gives it the host table (log, sealed
 * storage in DIR/store/) and serves one JSON request line at a time (cdcsproc.h).
 *
 * The protocol runs on private copies of stdin and stdout; fd 0 becomes /dev/null and fd 1
 * a copy of stderr, so a CDCS that prints cannot corrupt the protocol, only the log.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "opendm/cdcs.h"
#include "opendm/file.h"
#include "opendm/jose.h"
#include "opendm/log.h"

#include "cdcsproc.h"
#include "dev.h"

#define CDCSHOST_MAX_ITEM    (1024 * 1024)     /* one sealed storage item */
#define CDCSHOST_MAX_CONTENT (4 * 1024 * 1024) /* content to decrypt, and its plaintext */
#define CDCSHOST_MAX_OUT     (64 * 1024)       /* a request, confirmation or status */
#define CDCSHOST_MAX_ID      64                /* vendor, name, store item names */
#define CDCSHOST_MAX_RID     64
#define CDCSHOST_ID_CHARS    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

struct cdcshost {
	char dir[PATH_MAX - 64]; /* room for the file names below it */
	char store[PATH_MAX];
	char vendor[CDCSHOST_MAX_ID + 1];
	char name[CDCSHOST_MAX_ID + 1];
	char kind[CDCSHOST_MAX_ID + 1];
	void *dl;
	const struct odm_cdcs_ops *ops;
	void *ctx;
	struct odm_cdcs_host host;
	int out_fd;         /* the protocol's answers: the agent's pipe */
	FILE *in;           /* the protocol's requests */
	const char *op;     /* the operation running, the func= of the CDCS's log lines */
	const char *rid;    /* the request id the agent sent with it, or NULL */
	char last[256];     /* the last error or warning the CDCS logged for this request */
	char unusable[512]; /* why the CDCS cannot be served, or "" */
};

/* 1 if s is 1-max characters of [A-Za-z0-9._-] and not "." or "..". */
static int cdcshost_id_ok(const char *s, size_t max)
{
	size_t n;

	if (s == NULL || (n = strlen(s)) == 0 || n > max || strspn(s, CDCSHOST_ID_CHARS) != n)
		return 0;
	return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* --- the host table offered to the CDCS --- */

static void cdcshost_log(void *arg, enum odm_cdcs_log level, const char *msg)
{
	struct cdcshost *h = arg;
	enum log_level lvl = LOG_LVL_INFO;

	if (msg == NULL)
		return;
	if (level == ODM_CDCS_LOG_ERR || level == ODM_CDCS_LOG_WARN) {
		lvl = level == ODM_CDCS_LOG_ERR ? LOG_LVL_ERR : LOG_LVL_WARN;
		/* Its own account of a failure is the best message for the agent's answer. */
		snprintf(h->last, sizeof(h->last), "%s", msg);
	} else if (level == ODM_CDCS_LOG_DEBUG)
		lvl = LOG_LVL_DEBUG;
	log_msg(lvl, h->op, h->rid, "%s", msg);
}

static int cdcshost_item(struct cdcshost *h, const char *name, char *path, size_t len)
{
	int n;

	if (!cdcshost_id_ok(name, CDCSHOST_MAX_ID)) {
		log_msg(LOG_LVL_WARN, h->op, h->rid, "sealed storage: invalid item name");
		return -1;
	}
	n = snprintf(path, len, "%s/%s", h->store, name);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int cdcshost_store_put(void *arg, const char *name, const void *data, size_t len)
{
	struct cdcshost *h = arg;
	char path[PATH_MAX], err[512];

	if (cdcshost_item(h, name, path, sizeof(path)) == -1)
		return -1;
	if ((data == NULL && len > 0) || len > CDCSHOST_MAX_ITEM) {
		log_msg(LOG_LVL_WARN, h->op, h->rid, "sealed storage: %s: larger than %d bytes",
		        name, CDCSHOST_MAX_ITEM);
		return -1;
	}
	if (mkdir(h->store, 0700) == -1 && errno != EEXIST) {
		log_msg(LOG_LVL_ERR, h->op, h->rid, "%s: %s", h->store, strerror(errno));
		return -1;
	}
	if (file_write_atomic(path, data != NULL ? data : "", len, 0600, err, sizeof(err)) == -1) {
		log_msg(LOG_LVL_ERR, h->op, h->rid, "sealed storage: %s", err);
		return -1;
	}
	return 0;
}

static int cdcshost_store_get(void *arg, const char *name, void **data, size_t *len)
{
	struct cdcshost *h = arg;
	char path[PATH_MAX], err[512];
	struct stat st;

	if (data == NULL || len == NULL || cdcshost_item(h, name, path, sizeof(path)) == -1)
		return -1;
	/* No such item is an answer, not an error to log. */
	if (lstat(path, &st) == -1 && errno == ENOENT)
		return -1;
	if ((*data = file_read(path, CDCSHOST_MAX_ITEM, len, err, sizeof(err))) == NULL) {
		log_msg(LOG_LVL_ERR, h->op, h->rid, "sealed storage: %s", err);
		return -1;
	}
	return 0;
}

/* --- loading the CDCS --- */

/* vendor, name and kind from the payload of DIR/manifest.jws (verified at install). */
static int cdcshost_manifest(struct cdcshost *h)
{
	char path[PATH_MAX], err[512], *jws = NULL;
	const char *p1, *p2;
	unsigned char *payload = NULL;
	size_t len, plen = 0;
	json_t *c = NULL, *abi;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/manifest.jws", h->dir);
	if ((jws = file_read(path, JOSE_MAX_TOKEN, &len, err, sizeof(err))) == NULL) {
		snprintf(h->unusable, sizeof(h->unusable), "%s", err);
		return -1;
	}
	if ((p1 = strchr(jws, '.')) == NULL || (p2 = strchr(p1 + 1, '.')) == NULL ||
	    (payload = dev_b64url_decode(p1 + 1, (size_t)(p2 - p1 - 1), &plen)) == NULL ||
	    (c = json_loadb((const char *)payload, plen, 0, NULL)) == NULL || !json_is_object(c)) {
		snprintf(h->unusable, sizeof(h->unusable),
		         "manifest.jws: not a JWS with a JSON payload");
		goto fail;
	}
	if (!cdcshost_id_ok(json_string_value(json_object_get(c, "vendor")), CDCSHOST_MAX_ID) ||
	    !cdcshost_id_ok(json_string_value(json_object_get(c, "name")), CDCSHOST_MAX_ID) ||
	    !cdcshost_id_ok(json_string_value(json_object_get(c, "kind")), CDCSHOST_MAX_ID)) {
		snprintf(h->unusable, sizeof(h->unusable),
		         "manifest.jws: bad vendor, name or kind");
		goto fail;
	}
	abi = json_object_get(c, "abi");
	if (!json_is_integer(abi) || json_integer_value(abi) != ODM_CDCS_ABI_VERSION) {
		snprintf(h->unusable, sizeof(h->unusable), "manifest.jws: abi is not %d",
		         ODM_CDCS_ABI_VERSION);
		goto fail;
	}
	snprintf(h->vendor, sizeof(h->vendor), "%s",
	         json_string_value(json_object_get(c, "vendor")));
	snprintf(h->name, sizeof(h->name), "%s", json_string_value(json_object_get(c, "name")));
	snprintf(h->kind, sizeof(h->kind), "%s", json_string_value(json_object_get(c, "kind")));
	rc = 0;
fail:
	json_decref(c);
	free(payload);
	free(jws);
	return rc;
}

/* dlopen DIR/cdcs.so, check its table against the manifest, and init it. */
static int cdcshost_load(struct cdcshost *h)
{
	char path[PATH_MAX], ident[2 * CDCSHOST_MAX_ID + 8];
	const struct odm_cdcs_ops *o;
	odm_cdcs_entry_fn entry;
	const char *e;
	void *sym;

	if (cdcshost_manifest(h) == -1)
		return -1;
	snprintf(ident, sizeof(ident), "cdcs:%s/%s", h->vendor, h->name);
	log_init(ident, log_get_level());
	snprintf(path, sizeof(path), "%s/cdcs.so", h->dir);
	/* Always a path with a slash: never a library search, never another object. */
	if ((h->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		e = dlerror();
		snprintf(h->unusable, sizeof(h->unusable), "%s",
		         e != NULL ? e : "cdcs.so: dlopen failed");
		return -1;
	}
	/* The ISO C cast of void * to a function pointer goes through memcpy. */
	if ((sym = dlsym(h->dl, ODM_CDCS_ENTRY)) == NULL) {
		snprintf(h->unusable, sizeof(h->unusable), "cdcs.so: no symbol %s", ODM_CDCS_ENTRY);
		return -1;
	}
	memcpy(&entry, &sym, sizeof(entry));
	if ((o = entry(ODM_CDCS_ABI_VERSION)) == NULL || o->abi_version != ODM_CDCS_ABI_VERSION) {
		snprintf(h->unusable, sizeof(h->unusable), "cdcs.so: does not offer ABI version %d",
		         ODM_CDCS_ABI_VERSION);
		return -1;
	}
	if (o->vendor == NULL || o->name == NULL || o->kind == NULL ||
	    strcmp(o->vendor, h->vendor) != 0 || strcmp(o->name, h->name) != 0 ||
	    strcmp(o->kind, h->kind) != 0) {
		snprintf(h->unusable, sizeof(h->unusable),
		         "cdcs.so names itself %.64s/%.64s (%.16s), the manifest %s/%s (%s)",
		         o->vendor != NULL ? o->vendor : "?", o->name != NULL ? o->name : "?",
		         o->kind != NULL ? o->kind : "?", h->vendor, h->name, h->kind);
		return -1;
	}
	if (o->init == NULL || o->perso_request == NULL || o->perso_apply == NULL ||
	    o->decrypt == NULL || o->status == NULL || o->fini == NULL) {
		snprintf(h->unusable, sizeof(h->unusable), "cdcs.so: incomplete ops table");
		return -1;
	}
	h->ops = o;
	h->op = "init";
	if (o->init(&h->host, &h->ctx) == -1) {
		snprintf(h->unusable, sizeof(h->unusable), "init failed: %s",
		         h->last[0] != '\0' ? h->last : "see the log");
		h->ops = NULL;
		return -1;
	}
	return 0;
}

/* --- the request loop --- */

/*
 * One line of at most max bytes into *buf (NUL-terminated, grown as needed): 1 a line,
 * 0 end of input, -1 a line too long (read through its end and dropped).
 */
static int cdcshost_readline(FILE *in, char **buf, size_t *cap, size_t max)
{
	size_t n = 0, ncap;
	int ch, toolong = 0;
	char *nbuf;

	while ((ch = getc(in)) != EOF && ch != '\n') {
		if (toolong || n == max) {
			toolong = 1;
			continue;
		}
		if (n + 1 >= *cap) {
			ncap = *cap == 0 ? 4096 : *cap * 2;
			if (ncap > max + 1)
				ncap = max + 1;
			if ((nbuf = realloc(*buf, ncap)) == NULL)
				return 0;
			*buf = nbuf;
			*cap = ncap;
		}
		(*buf)[n++] = (char)ch;
	}
	/* A line cut by the end of input is no request: the agent went away. */
	if (ch == EOF)
		return 0;
	if (toolong)
		return -1;
	if (*buf == NULL && (*buf = malloc(*cap = 1)) == NULL)
		return 0;
	(*buf)[n] = '\0';
	return 1;
}

static int cdcshost_write(struct cdcshost *h, json_t *resp)
{
	char *text;
	size_t len, off = 0;
	ssize_t w;
	int rc = 0;

	if (resp == NULL || (text = json_dumps(resp, JSON_COMPACT)) == NULL) {
		json_decref(resp);
		return -1;
	}
	json_decref(resp);
	len = strlen(text);
	text[len] = '\n'; /* json_dumps leaves the NUL: room for the newline, written by length */
	for (len++; off < len; off += (size_t)w) {
		if ((w = write(h->out_fd, text + off, len - off)) == -1 && errno == EINTR)
			w = 0;
		else if (w == -1) {
			rc = -1;
			break;
		}
	}
	free(text);
	return rc;
}

static json_t *cdcshost_error(const char *code, const char *msg)
{
	return json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "message", msg);
}

/* The CDCS said no: its own last complaint, else which call failed. */
static json_t *cdcshost_refused(struct cdcshost *h)
{
	char msg[300];

	if (h->last[0] != '\0')
		return cdcshost_error("cdcs_failed", h->last);
	snprintf(msg, sizeof(msg), "%s failed", h->op);
	return cdcshost_error("cdcs_failed", msg);
}

/* A JSON object text a CDCS returned (request, status) as an answer member. */
static json_t *cdcshost_object(struct cdcshost *h, char *text, const char *member)
{
	json_t *v = NULL;

	if (text != NULL && strnlen(text, CDCSHOST_MAX_OUT + 1) <= CDCSHOST_MAX_OUT)
		v = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	free(text);
	if (!json_is_object(v)) {
		json_decref(v);
		log_msg(LOG_LVL_ERR, h->op, h->rid, "the CDCS returned no JSON object");
		return cdcshost_error("cdcs_failed", "the CDCS returned no JSON object");
	}
	return json_pack("{s:b, s:o}", "ok", 1, member, v);
}

static json_t *cdcshost_decrypt(struct cdcshost *h, const char *b64)
{
	unsigned char *in = NULL;
	void *out = NULL;
	char *enc = NULL;
	size_t inlen = 0, outlen = 0;
	json_t *resp;

	if (b64 == NULL || strlen(b64) > (CDCSHOST_MAX_CONTENT + 2) / 3 * 4 ||
	    (in = dev_b64_decode(b64, strlen(b64), &inlen)) == NULL || inlen == 0)
		resp = cdcshost_error("bad_request", "content: base64 of 1 to 4 MiB wanted");
	else if (h->ops->decrypt(h->ctx, in, inlen, &out, &outlen) == -1)
		resp = cdcshost_refused(h);
	else if ((out == NULL && outlen > 0) || outlen > CDCSHOST_MAX_CONTENT ||
	         (enc = malloc((outlen + 2) / 3 * 4 + 1)) == NULL)
		resp = cdcshost_error("cdcs_failed", "the CDCS returned no usable plaintext");
	else {
		EVP_EncodeBlock((unsigned char *)enc, out, (int)outlen);
		resp = json_pack("{s:b, s:s}", "ok", 1, "plaintext", enc);
	}
	if (out != NULL) {
		OPENSSL_cleanse(out, outlen);
		free(out);
	}
	if (enc != NULL) {
		OPENSSL_cleanse(enc, strlen(enc));
		free(enc);
	}
	free(in);
	return resp;
}

static json_t *cdcshost_confirm(struct cdcshost *h, char *conf)
{
	json_t *resp;

	if (conf == NULL || strnlen(conf, CDCSHOST_MAX_OUT + 1) > CDCSHOST_MAX_OUT)
		resp = cdcshost_error("cdcs_failed", "the CDCS returned no confirmation");
	else
		resp = json_pack("{s:b, s:s}", "ok", 1, "confirmation", conf);
	free(conf);
	return resp;
}

static json_t *cdcshost_handle(struct cdcshost *h, const char *line)
{
	const char *op, *arg, *rid;
	char *text = NULL;
	json_t *req, *resp;

	if ((req = json_loads(line, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(req) || (op = json_string_value(json_object_get(req, "op"))) == NULL) {
		json_decref(req);
		return cdcshost_error("bad_request", "a JSON object with \"op\" wanted");
	}
	rid = json_string_value(json_object_get(req, "rid"));
	h->rid = rid != NULL && strlen(rid) <= CDCSHOST_MAX_RID ? rid : NULL;
	h->last[0] = '\0';
	if (strcmp(op, "perso_request") == 0) {
		h->op = "perso_request";
		if ((arg = json_string_value(json_object_get(req, "ticket"))) == NULL)
			resp = cdcshost_error("bad_request", "ticket: a string wanted");
		else if (h->ops->perso_request(h->ctx, arg, &text) == -1)
			resp = cdcshost_refused(h);
		else
			resp = cdcshost_object(h, text, "request");
	} else if (strcmp(op, "perso_apply") == 0) {
		h->op = "perso_apply";
		if ((arg = json_string_value(json_object_get(req, "data"))) == NULL)
			resp = cdcshost_error("bad_request", "data: a string wanted");
		else if (h->ops->perso_apply(h->ctx, arg, &text) == -1)
			resp = cdcshost_refused(h);
		else
			resp = cdcshost_confirm(h, text);
	} else if (strcmp(op, "decrypt") == 0) {
		h->op = "decrypt";
		resp = cdcshost_decrypt(h, json_string_value(json_object_get(req, "content")));
	} else if (strcmp(op, "status") == 0) {
		h->op = "status";
		if (h->ops->status(h->ctx, &text) == -1)
			resp = cdcshost_refused(h);
		else
			resp = cdcshost_object(h, text, "status");
	} else
		resp = cdcshost_error("bad_request", "unknown op");
	h->op = "cdcs-host";
	h->rid = NULL;
	json_decref(req);
	return resp != NULL ? resp : cdcshost_error("cdcs_failed", "out of memory");
}

/*
 * Answer each request until the agent closes our input. An unusable CDCS still answers the
 * first request, with why, so that the agent can report more than "exited with 1".
 */
static int cdcshost_serve(struct cdcshost *h)
{
	char *line = NULL;
	size_t cap = 0;
	json_t *resp;
	int r, rc = 0;

	while ((r = cdcshost_readline(h->in, &line, &cap, CDCSPROC_MAX_LINE)) != 0) {
		if (h->ops == NULL)
			resp = cdcshost_error("cdcs_unusable", h->unusable);
		else if (r == -1)
			resp = cdcshost_error("bad_request", "request line too long");
		else
			resp = cdcshost_handle(h, line);
		if (cdcshost_write(h, resp) == -1) {
			log_err("cannot answer the agent: %s", strerror(errno));
			rc = 1;
			break;
		}
		if (h->ops == NULL) {
			rc = 1;
			break;
		}
	}
	free(line);
	return rc;
}

/* Protocol fds of our own; 0 and 1 then point where vendor code can do no harm. */
static int cdcshost_fds(struct cdcshost *h)
{
	int in_fd, null_fd;

	if ((in_fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3)) == -1 ||
	    (h->out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3)) == -1 ||
	    (null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (dup2(null_fd, STDIN_FILENO) == -1 || dup2(STDERR_FILENO, STDOUT_FILENO) == -1 ||
	    (h->in = fdopen(in_fd, "r")) == NULL) {
		close(null_fd);
		return -1;
	}
	close(null_fd);
	return 0;
}

int cdcshost_main(const char *dir)
{
	static const struct rlimit nocore = {0, 0};
	struct cdcshost h;
	enum log_level level = LOG_LVL_INFO;
	const char *env = getenv("ODM_CDCS_LOG_LEVEL");
	int rc;

	if (env != NULL)
		(void)log_level_parse(env, &level);
	log_init("cdcs-host", level);
	memset(&h, 0, sizeof(h));
	h.out_fd = -1;
	h.op = "cdcs-host";
	/* An agent that dies takes its CDCS children along; a crash dumps no CDCS secrets. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	(void)setrlimit(RLIMIT_CORE, &nocore);
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	if (dir == NULL || dir[0] == '\0' || strlen(dir) >= sizeof(h.dir)) {
		log_err("usage: dm-agent --cdcs-host DIR");
		return 2;
	}
	snprintf(h.dir, sizeof(h.dir), "%s", dir);
	snprintf(h.store, sizeof(h.store), "%s/store", dir);
	if (cdcshost_fds(&h) == -1) {
		log_err("cannot set up the protocol descriptors: %s", strerror(errno));
		return 1;
	}
	h.host.abi_version = ODM_CDCS_ABI_VERSION;
	h.host.arg = &h;
	h.host.log = cdcshost_log;
	h.host.store_put = cdcshost_store_put;
	h.host.store_get = cdcshost_store_get;
	if (cdcshost_load(&h) == -1)
		log_err("%s: CDCS unusable: %s", dir, h.unusable);
	rc = cdcshost_serve(&h);
	if (h.ops != NULL) {
		h.op = "fini";
		h.ops->fini(h.ctx);
	}
	/* cdcs.so stays mapped: the process ends here, and a leak report can still name it. */
	fclose(h.in);
	close(h.out_fd);
	log_debug("end of input: exit %d", rc);
	return rc;
}
