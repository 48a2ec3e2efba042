/*
 * cdcs-mss catalogue: what makes a published directory a registrable CDCS image. Kept free of
 * any daemon state (keys come in a struct cdcs_mss_verifier) so that it is unit-tested alone;
 * the signature rules themselves are cdcsimg's, shared with dmctl and the device.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "opendm/file.h"
#include "opendm/jose.h"
#include "cdcs_mss.h"

#define CDCS_MSS_COMPONENTS 5 /* vendor/name/variant/platform/version_number */

void cdcs_mss_image_clear(struct cdcs_mss_image *img)
{
	free(img->manifest);
	free(img->approval);
	memset(img, 0, sizeof(*img));
}

json_t *cdcs_mss_image_json(const struct cdcs_mss_image *img)
{
	json_t *o;

	if ((o = cdcsimg_manifest_json(&img->m)) == NULL)
		return NULL;
	if (json_object_set_new(o, "path", json_string(img->path)) == -1 ||
	    json_object_set_new(o, "registered_at", json_integer(img->registered_at)) == -1 ||
	    json_object_set_new(o, "withdrawn_at",
	                        img->withdrawn_at != 0 ? json_integer(img->withdrawn_at)
	                                               : json_null()) == -1 ||
	    json_object_set_new(o, "revoked", json_boolean(img->revoked_at != 0)) == -1 ||
	    json_object_set_new(o, "key_sha256",
	                        img->key_sha256[0] != '\0' ? json_string(img->key_sha256)
	                                                   : json_null()) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

const char *cdcs_mss_image_gone(const struct cdcs_mss_image *img)
{
	if (img->withdrawn_at != 0)
		return "image_withdrawn";
	if (img->revoked_at != 0)
		return "image_revoked";
	return NULL;
}

/*
 * Split relpath into its five components (copied into comp, each a safe path component: the
 * cdcsimg identity charsets, so no "." or ".." and no '/'). 0/-1.
 */
static int cdcs_mss_split(const char *relpath, char comp[CDCS_MSS_COMPONENTS][CDCSIMG_ID_MAX + 1])
{
	const char *p = relpath, *slash;
	size_t i, n;

	if (strnlen(relpath, CDCS_MSS_RELPATH_MAX + 1) > CDCS_MSS_RELPATH_MAX)
		return -1;
	for (i = 0; i < CDCS_MSS_COMPONENTS; i++) {
		slash = strchr(p, '/');
		n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if ((slash == NULL) != (i == CDCS_MSS_COMPONENTS - 1) || n == 0 ||
		    n > CDCSIMG_ID_MAX)
			return -1;
		memcpy(comp[i], p, n);
		comp[i][n] = '\0';
		/* The widest charset of the identity fields; each is checked exactly below. */
		if (!cdcsimg_valid_id(comp[i]))
			return -1;
		p += n + 1;
	}
	return 0;
}

/* A JWS file of the published directory, without trailing white space. NULL if absent. */
static char *cdcs_mss_read_jws(const char *dir, const char *file, char *err, size_t errlen)
{
	char path[CDCS_MSS_PATH_MAX + CDCS_MSS_RELPATH_MAX + 32];
	size_t len;
	char *text;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if ((text = file_read(path, JOSE_MAX_TOKEN + 2, &len, err, errlen)) == NULL)
		return NULL;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' ||
	                   text[len - 1] == '\t'))
		text[--len] = '\0';
	return text;
}

static int cdcs_mss_refuse(int *status, const char **code, int st, const char *c)
{
	*status = st;
	*code = c;
	return -1;
}

int cdcs_mss_catalogue_verify(const struct cdcs_mss_verifier *v, const char *dir,
                              const char *relpath, time_t now, struct cdcs_mss_image *out,
                              int *status, const char **code, char *err, size_t errlen)
{
	char comp[CDCS_MSS_COMPONENTS][CDCSIMG_ID_MAX + 1], vnum[24];
	char idir[CDCS_MSS_PATH_MAX + CDCS_MSS_RELPATH_MAX + 2];
	char ipath[sizeof(idir) + 8];
	const char *icode = NULL, *which = NULL;
	struct stat sb;
	char e[CDCS_MSS_ERRLEN];

	memset(out, 0, sizeof(*out));
	if (cdcs_mss_split(relpath, comp) == -1) {
		snprintf(err, errlen,
		         "key 'path': expected VENDOR/NAME/VARIANT/PLATFORM/VERSION_NUMBER, each "
		         "1-%d of [A-Za-z0-9._-] starting alphanumeric",
		         CDCSIMG_ID_MAX);
		return cdcs_mss_refuse(status, code, 400, "bad_request");
	}
	snprintf(idir, sizeof(idir), "%s/%s", dir, relpath);
	snprintf(ipath, sizeof(ipath), "%s/image", idir);
	if (stat(idir, &sb) == -1 || !S_ISDIR(sb.st_mode) || lstat(ipath, &sb) == -1 ||
	    !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "no image in %s", relpath);
		return cdcs_mss_refuse(status, code, 404, "not_found");
	}
	if ((out->manifest = cdcs_mss_read_jws(idir, "manifest.jws", e, sizeof(e))) == NULL) {
		snprintf(err, errlen, "no usable manifest.jws: %s", e);
		return cdcs_mss_refuse(status, code, 422, "bad_signature");
	}
	/* None is refused by cdcsimg_verify() as not_approved, after the manifest's checks. */
	out->approval = cdcs_mss_read_jws(idir, "approval.jws", e, sizeof(e));
	if (cdcsimg_verify(&v->vendors, v->operator_pub, out->manifest, out->approval, now, &out->m,
	                   &icode, err, errlen) == -1) {
		/* An approval for another manifest is no approval for this one. */
		if (strcmp(icode, "approval_mismatch") == 0)
			icode = "not_approved";
		cdcs_mss_refuse(status, code, 422, icode);
		goto fail;
	}
	snprintf(vnum, sizeof(vnum), "%lld", (long long)out->m.version_number);
	if (strcmp(comp[0], out->m.vendor) != 0)
		which = "vendor";
	else if (strcmp(comp[1], out->m.name) != 0)
		which = "name";
	else if (strcmp(comp[2], out->m.variant) != 0)
		which = "variant";
	else if (strcmp(comp[3], out->m.platform) != 0)
		which = "platform";
	else if (strcmp(comp[4], vnum) != 0)
		which = "version_number";
	if (which != NULL) {
		snprintf(err, errlen, "path %s does not match the manifest's %s", relpath, which);
		cdcs_mss_refuse(status, code, 422, "path_mismatch");
		goto fail;
	}
	if (cdcsimg_file_check(ipath, &out->m, &icode, err, errlen) == -1) {
		cdcs_mss_refuse(status, code, 422, icode);
		goto fail;
	}
	memcpy(out->path, relpath, strlen(relpath) + 1);
	*status = 200;
	*code = NULL;
	return 0;
fail:
	cdcs_mss_image_clear(out);
	return -1;
}
