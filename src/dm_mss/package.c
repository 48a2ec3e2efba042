/*
 * dm-mss packages: the DM agent packages published in packages_dir, verified once at start.
 *
 * Layout: <packages_dir>/<platform>/<version_number>/{dm-agent, manifest.jws}, as written by
 * `dmctl agent-package`. Every manifest must verify with the agent signing key and agree with
 * its directory and its binary (size, sha256): a mismatch stops the daemon, naming the file,
 * because serving it would only make every device refuse it at step 5. Per platform the
 * highest version_number is served.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "opendm/file.h"
#include "opendm/jose.h"
#include "opendm/log.h"
#include "dm_mss.h"

#define DM_MSS_MAX_PKGS     256
#define DM_MSS_VERSION_DIGS 15

/* Platform names are path components here and in URLs: the capability alphabet. */
static int dm_mss_platform_ok(const char *s)
{
	size_t n;

	if (s[0] == '\0' || s[0] == '-' || s[0] == '_')
		return 0;
	for (n = 0; s[n] != '\0'; n++)
		if (n >= DM_MSS_PLATFORM_MAX ||
		    !((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '-' ||
		      s[n] == '_'))
			return 0;
	return 1;
}

/* A version_number directory: 1..DM_MSS_VERSION_DIGS digits, no leading zero. */
static int dm_mss_version_parse(const char *s, int64_t *out)
{
	int64_t v = 0;
	size_t n;

	if (s[0] < '1' || s[0] > '9')
		return -1;
	for (n = 0; s[n] != '\0'; n++) {
		if (n >= DM_MSS_VERSION_DIGS || s[n] < '0' || s[n] > '9')
			return -1;
		v = v * 10 + (s[n] - '0');
	}
	*out = v;
	return 0;
}

static int dm_mss_claim_str(json_t *claims, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(claims, key));

	return v != NULL && strcmp(v, want) == 0;
}

static int dm_mss_claim_int(json_t *claims, const char *key, int64_t *out)
{
	json_t *v = json_object_get(claims, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (int64_t)json_integer_value(v);
	return 0;
}

/* Verify one package directory into *pkg. 0/-1 + err naming the file. */
static int dm_mss_package_verify(const char *dir, const char *platform, int64_t number,
                                 EVP_PKEY *pub, struct dm_mss_pkg *pkg, char *err, size_t errlen)
{
	const struct jose_expect exp = {
	    "opendm-agent-signer", "opendm-dm-app", "dm-agent", 0, NULL, NULL};
	char mpath[PATH_MAX], reason[512], sha[65];
	const char *code = NULL, *msha;
	json_t *claims = NULL;
	int64_t size, vnum, csize;
	size_t len;
	char *jws;
	int rc = -1;

	if ((size_t)snprintf(mpath, sizeof(mpath), "%s/manifest.jws", dir) >= sizeof(mpath) ||
	    (size_t)snprintf(pkg->path, sizeof(pkg->path), "%s/dm-agent", dir) >=
	        sizeof(pkg->path)) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	if ((jws = file_read(mpath, JOSE_MAX_TOKEN, &len, err, errlen)) == NULL)
		return -1;
	while (len > 0 && (jws[len - 1] == '\n' || jws[len - 1] == '\r' || jws[len - 1] == ' '))
		jws[--len] = '\0';
	if ((claims = jose_verify(pub, jws, &exp, &code, reason, sizeof(reason))) == NULL) {
		snprintf(err, errlen, "%s: %s (%s)", mpath, reason,
		         code != NULL ? code : "bad_token");
		goto fail;
	}
	msha = json_string_value(json_object_get(claims, "sha256"));
	if (!dm_mss_claim_str(claims, "platform", platform) ||
	    dm_mss_claim_int(claims, "version_number", &vnum) == -1 || vnum != number ||
	    !json_is_string(json_object_get(claims, "version")) ||
	    dm_mss_claim_int(claims, "size", &csize) == -1 || msha == NULL || strlen(msha) != 64 ||
	    strspn(msha, "0123456789abcdef") != 64) {
		snprintf(err, errlen,
		         "%s: platform, version_number, version, size or sha256 missing or not "
		         "matching its directory %s/%lld",
		         mpath, platform, (long long)number);
		goto fail;
	}
	if (dm_mss_sha256_file(pkg->path, sha, &size, err, errlen) == -1)
		goto fail;
	if (size != csize || strcmp(sha, msha) != 0) {
		snprintf(
		    err, errlen,
		    "%s: does not match %s (size %lld, manifest says %lld; sha256 %s, manifest "
		    "says %s)",
		    pkg->path, mpath, (long long)size, (long long)csize, sha, msha);
		goto fail;
	}
	/* dm_mss_platform_ok() bounded it to DM_MSS_PLATFORM_MAX. */
	memcpy(pkg->platform, platform, strlen(platform) + 1);
	pkg->version_number = number;
	pkg->size = size;
	memcpy(pkg->sha256, sha, sizeof(pkg->sha256));
	snprintf(pkg->etag, sizeof(pkg->etag), "\"%s\"", sha);
	pkg->manifest = jws;
	jws = NULL;
	rc = 0;
fail:
	json_decref(claims);
	free(jws);
	return rc;
}

/* Keep pkg if it is the newest of its platform so far; takes its manifest either way. */
static int dm_mss_package_keep(struct dm_mss_state *st, struct dm_mss_pkg *pkg)
{
	struct dm_mss_pkg *grown;
	size_t i;

	for (i = 0; i < st->npkgs; i++) {
		if (strcmp(st->pkgs[i].platform, pkg->platform) != 0)
			continue;
		if (pkg->version_number > st->pkgs[i].version_number) {
			free(st->pkgs[i].manifest);
			st->pkgs[i] = *pkg;
		} else {
			free(pkg->manifest);
		}
		return 0;
	}
	if (st->npkgs >= DM_MSS_MAX_PKGS ||
	    (grown = realloc(st->pkgs, (st->npkgs + 1) * sizeof(*grown))) == NULL) {
		free(pkg->manifest);
		return -1;
	}
	st->pkgs = grown;
	st->pkgs[st->npkgs++] = *pkg;
	return 0;
}

static int dm_mss_platform_load(struct dm_mss_state *st, const char *pdir, const char *platform,
                                EVP_PKEY *pub, char *err, size_t errlen)
{
	struct dm_mss_pkg pkg;
	char vdir[PATH_MAX];
	struct dirent *e;
	struct stat sb;
	int64_t number;
	DIR *dp;
	int rc = -1;

	if ((dp = opendir(pdir)) == NULL) {
		snprintf(err, errlen, "%s: %s", pdir, strerror(errno));
		return -1;
	}
	while ((e = readdir(dp)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(vdir, sizeof(vdir), "%s/%s", pdir, e->d_name) >=
		        sizeof(vdir) ||
		    stat(vdir, &sb) == -1 || !S_ISDIR(sb.st_mode) ||
		    dm_mss_version_parse(e->d_name, &number) == -1) {
			/* A stray file is not a package; say so rather than guess. */
			log_warn("%s: not a <version_number> directory: ignored", vdir);
			continue;
		}
		memset(&pkg, 0, sizeof(pkg));
		if (dm_mss_package_verify(vdir, platform, number, pub, &pkg, err, errlen) == -1)
			goto fail;
		if (dm_mss_package_keep(st, &pkg) == -1) {
			snprintf(err, errlen, "%s: too many packages or out of memory", vdir);
			goto fail;
		}
	}
	rc = 0;
fail:
	closedir(dp);
	return rc;
}

int dm_mss_packages_load(struct dm_mss_state *st, const char *dir, EVP_PKEY *pub, char *err,
                         size_t errlen)
{
	char pdir[PATH_MAX];
	struct dirent *e;
	struct stat sb;
	DIR *dp;
	int rc = -1;

	if ((dp = opendir(dir)) == NULL) {
		snprintf(err, errlen, "packages_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(dp)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(pdir, sizeof(pdir), "%s/%s", dir, e->d_name) >= sizeof(pdir) ||
		    stat(pdir, &sb) == -1 || !S_ISDIR(sb.st_mode) ||
		    !dm_mss_platform_ok(e->d_name)) {
			log_warn("%s: not a <platform> directory: ignored", pdir);
			continue;
		}
		if (dm_mss_platform_load(st, pdir, e->d_name, pub, err, errlen) == -1)
			goto fail;
	}
	rc = 0;
fail:
	closedir(dp);
	return rc;
}

void dm_mss_packages_free(struct dm_mss_state *st)
{
	size_t i;

	for (i = 0; i < st->npkgs; i++)
		free(st->pkgs[i].manifest);
	free(st->pkgs);
	st->pkgs = NULL;
	st->npkgs = 0;
}

const struct dm_mss_pkg *dm_mss_package_newest(const struct dm_mss_state *st, const char *platform)
{
	size_t i;

	for (i = 0; i < st->npkgs; i++)
		if (strcmp(st->pkgs[i].platform, platform) == 0)
			return &st->pkgs[i];
	return NULL;
}

void dm_mss_package_url(const struct dm_mss_pkg *pkg, char *buf, size_t len)
{
	snprintf(buf, len, "/v1/agent/packages/%s/%lld", pkg->platform,
	         (long long)pkg->version_number);
}
