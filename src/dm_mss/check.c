/* dm-mss: validation of what clients send, hashing, and who may call what. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "opendm/admin.h"
#include "opendm/log.h"
#include "dm_mss.h"

/* No 0/O, 1/I: a code is read off a screen and typed on a remote control. */
static const char dm_mss_code_alphabet[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/* ASCII only, whatever the locale: these end up in logs, URLs and certificates. */
static int dm_mss_chars_ok(const char *s, size_t min, size_t max, const char *extra)
{
	size_t n;
	char c;

	for (n = 0; (c = s[n]) != '\0'; n++) {
		if (n >= max)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr(extra, c) != NULL))
			return 0;
	}
	return n >= min;
}

int dm_mss_hw_id_ok(const char *s)
{
	return s != NULL && dm_mss_chars_ok(s, DM_MSS_HW_ID_MIN, DM_MSS_HW_ID_MAX, "._:-");
}

int dm_mss_account_ok(const char *s)
{
	return s != NULL && dm_mss_chars_ok(s, 1, DM_MSS_ACCOUNT_MAX, "._-");
}

int dm_mss_cpe_cn_ok(const char *s)
{
	return s != NULL && dm_mss_chars_ok(s, 1, DM_MSS_CPE_CN_MAX, "._-");
}

int dm_mss_device_status_ok(const char *s)
{
	return s != NULL && (strcmp(s, "active") == 0 || strcmp(s, "revoked") == 0);
}

int dm_mss_code_normalize(const char *in, char out[DM_MSS_CODE_LEN + 1])
{
	size_t n = 0;
	int c;

	for (; *in != '\0'; in++) {
		if (*in == '-')
			continue;
		c = *in >= 'a' && *in <= 'z' ? *in - 'a' + 'A' : *in;
		if (n >= DM_MSS_CODE_LEN || strchr(dm_mss_code_alphabet, c) == NULL)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return n == DM_MSS_CODE_LEN ? 0 : -1;
}

static void dm_mss_hex(const unsigned char *md, unsigned int n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned int i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[2 * n] = '\0';
}

int dm_mss_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return -1;
	dm_mss_hex(md, n, out);
	return 0;
}

int dm_mss_sha256_file(const char *path, char out[65], int64_t *size, char *err, size_t errlen)
{
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *ctx = NULL;
	unsigned int n = 0;
	struct stat sb;
	int64_t total = 0;
	ssize_t r;
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		snprintf(err, errlen, "%s: cannot hash: out of memory", path);
		goto fail;
	}
	while ((r = read(fd, buf, sizeof(buf))) != 0) {
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)r) != 1) {
			snprintf(err, errlen, "%s: cannot hash", path);
			goto fail;
		}
		total += r;
	}
	if (EVP_DigestFinal_ex(ctx, md, &n) != 1 || n != 32) {
		snprintf(err, errlen, "%s: cannot hash", path);
		goto fail;
	}
	dm_mss_hex(md, n, out);
	*size = total;
	rc = 0;
fail:
	EVP_MD_CTX_free(ctx);
	close(fd);
	return rc;
}

int dm_mss_authorize_app(struct daemon_ctx *d, struct httpd_req *req)
{
	const struct tls_peer *p = httpd_req_peer(req);
	const struct dm_mss_state *st = dm_mss_state(d);

	if (p != NULL && st != NULL && strcmp(p->issuer_fp, st->app_ca_fp) == 0)
		return 1;
	log_rwarn(httpd_req_id(req),
	          "refused device request from '%s': not an application "
	          "certificate",
	          p != NULL ? p->subject_cn : "?");
	httpd_reply_error(req, 403, "not_application", "an application certificate is required");
	return 0;
}

int dm_mss_authorize_bundle_maker(struct daemon_ctx *d, struct httpd_req *req)
{
	const struct tls_peer *p = httpd_req_peer(req);

	/* Same CA rule as admin_authorize(): OU alone means nothing from another CA. */
	if (p != NULL && d->admin_ca_fp[0] != '\0' && strcmp(p->issuer_fp, d->admin_ca_fp) == 0 &&
	    (admin_peer_has_role(p, "admin") || admin_peer_has_role(p, "subscribers") ||
	     strcmp(p->ou, "offline") == 0))
		return 1;
	log_rwarn(httpd_req_id(req), "refused offline bundle request from '%s'",
	          p != NULL ? p->subject_cn : "?");
	httpd_reply_error(req, 403, "forbidden",
	                  "an operator or offline-bundle certificate is required");
	return 0;
}

void dm_mss_reply(struct httpd_req *req, int status, json_t *body)
{
	if (body == NULL) {
		httpd_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	httpd_reply_json(req, status, body);
}

const char *dm_mss_col_text(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	return t != NULL ? (const char *)t : "";
}
