/* dev_bundle: the offline bundle file (docs/protocol.md, "Offline bundle file"). */
#include <stdio.h>
#include <string.h>

#include "opendm/jose.h"

#include "dev.h"

static const char *dev_bundle_str(json_t *root, const char *key, size_t max)
{
	const char *s = json_string_value(json_object_get(root, key));

	return s != NULL && strlen(s) <= max ? s : NULL;
}

int dev_bundle_parse(EVP_PKEY *bundle_pub, const char *text, size_t len, const char *hw_id,
                     struct dev_bundle *b, const char **code, char *err, size_t errlen)
{
	struct jose_expect ex = {DEV_BUNDLE_ISS, DEV_APP_AUD, hw_id, 0, NULL, NULL};
	const char *fmt, *sig, *jcode = NULL, *msha, *tsha, *url;
	json_t *claims = NULL;
	json_error_t jerr;
	char hex[65], e[256];
	size_t nkeys;

	memset(b, 0, sizeof(*b));
	*code = "bad_bundle";
	if ((b->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		snprintf(err, errlen, "bundle: %s", jerr.text);
		goto fail;
	}
	nkeys = json_is_object(b->root) ? json_object_size(b->root) : 0;
	fmt = dev_bundle_str(b->root, "format", 64);
	sig = dev_bundle_str(b->root, "bundle_sig", JOSE_MAX_TOKEN);
	b->manifest = dev_bundle_str(b->root, "manifest", JOSE_MAX_TOKEN);
	b->enrolment_token = dev_bundle_str(b->root, "enrolment_token", JOSE_MAX_TOKEN);
	b->dm_iss_url = dev_bundle_str(b->root, "dm_iss_url", 1024);
	b->package = dev_bundle_str(b->root, "package", DEV_MAX_BUNDLE);
	if (nkeys != 6 || fmt == NULL || strcmp(fmt, DEV_BUNDLE_FMT) != 0 || sig == NULL ||
	    b->manifest == NULL || b->enrolment_token == NULL || b->dm_iss_url == NULL ||
	    b->package == NULL || strncmp(b->dm_iss_url, "https://", 8) != 0) {
		snprintf(err, errlen, "not an %s file", DEV_BUNDLE_FMT);
		goto fail;
	}
	if ((claims = jose_verify(bundle_pub, sig, &ex, &jcode, e, sizeof(e))) == NULL) {
		*code = jcode != NULL && strcmp(jcode, "wrong_subject") == 0 ? "wrong_device"
		                                                             : "bad_signature";
		snprintf(err, errlen, "bundle_sig: %s", e);
		goto fail;
	}
	*code = "bad_binding";
	msha = json_string_value(json_object_get(claims, "manifest_sha256"));
	tsha = json_string_value(json_object_get(claims, "token_sha256"));
	url = json_string_value(json_object_get(claims, "dm_iss_url"));
	dev_sha256_hex(b->manifest, strlen(b->manifest), hex);
	if (msha == NULL || strcmp(msha, hex) != 0) {
		snprintf(err, errlen, "the manifest is not the one the bundle was signed for");
		goto fail;
	}
	dev_sha256_hex(b->enrolment_token, strlen(b->enrolment_token), hex);
	if (tsha == NULL || strcmp(tsha, hex) != 0) {
		snprintf(err, errlen,
		         "the enrolment token is not the one the bundle was signed for");
		goto fail;
	}
	if (url == NULL || strcmp(url, b->dm_iss_url) != 0) {
		snprintf(err, errlen, "dm_iss_url is not the one the bundle was signed for");
		goto fail;
	}
	json_decref(claims);
	*code = NULL;
	return 0;
fail:
	json_decref(claims);
	dev_bundle_free(b);
	return -1;
}

void dev_bundle_free(struct dev_bundle *b)
{
	json_decref(b->root);
	memset(b, 0, sizeof(*b));
}
