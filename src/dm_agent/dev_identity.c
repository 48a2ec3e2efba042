/* dev_identity: the device's key, certificate and identity.json (Figure 4, step 11). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "opendm/file.h"
#include "opendm/pki.h"

#include "dev.h"

int dev_identity_load(const struct dev_config *cfg, struct dev_identity *id)
{
	char path[PATH_MAX], cert[PATH_MAX], err[256], *text;
	const char *dm, *hw, *url;
	json_t *j = NULL, *na;
	size_t len;
	int rc = -1;

	memset(id, 0, sizeof(*id));
	if (dev_path(path, sizeof(path), cfg, "identity/identity.json") == -1 ||
	    dev_path(cert, sizeof(cert), cfg, "identity/cert.pem") == -1 ||
	    access(cert, R_OK) == -1)
		return -1;
	if ((text = file_read(path, 16 * 1024, &len, err, sizeof(err))) == NULL)
		return -1;
	if ((j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		goto out;
	dm = json_string_value(json_object_get(j, "dm_id"));
	hw = json_string_value(json_object_get(j, "hw_id"));
	url = json_string_value(json_object_get(j, "cdcs_pss_url"));
	na = json_object_get(j, "not_after");
	if (dm == NULL || hw == NULL || url == NULL || !json_is_integer(na) ||
	    strlen(dm) >= sizeof(id->dm_id) || strlen(hw) >= sizeof(id->hw_id) ||
	    strlen(url) >= sizeof(id->cdcs_pss_url) || strcmp(hw, cfg->hw_id) != 0)
		goto out;
	snprintf(id->dm_id, sizeof(id->dm_id), "%s", dm);
	snprintf(id->hw_id, sizeof(id->hw_id), "%s", hw);
	snprintf(id->cdcs_pss_url, sizeof(id->cdcs_pss_url), "%s", url);
	id->not_after = json_integer_value(na);
	rc = id->not_after > (int64_t)time(NULL) ? 0 : -1;
out:
	json_decref(j);
	free(text);
	return rc;
}

EVP_PKEY *dev_key_load_or_new(const struct dev_config *cfg, char *err, size_t errlen)
{
	char path[PATH_MAX];
	EVP_PKEY *key;

	if (dev_path(path, sizeof(path), cfg, "identity/key.pem") == -1) {
		snprintf(err, errlen, "state_dir too long");
		return NULL;
	}
	/* Reused on every retry: dm-iss answers a retried token only for the same key. */
	if (access(path, F_OK) == 0)
		return pki_key_load(path, err, errlen);
	if ((key = pki_key_new()) == NULL) {
		snprintf(err, errlen, "cannot make a key");
		return NULL;
	}
	if (pki_key_write(path, key, err, errlen) == -1) {
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

STACK_OF(X509) * dev_certs_from_pem(const char *pem, char *err, size_t errlen)
{
	STACK_OF(X509) *sk = NULL;
	BIO *bio = NULL;
	X509 *x;

	if (pem == NULL || (bio = BIO_new_mem_buf(pem, -1)) == NULL ||
	    (sk = sk_X509_new_null()) == NULL)
		goto fail;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_push(sk, x) == 0) {
			X509_free(x);
			goto fail;
		}
	}
	ERR_clear_error(); /* the read that ended the loop */
	if (sk_X509_num(sk) == 0)
		goto fail;
	BIO_free(bio);
	return sk;
fail:
	snprintf(err, errlen, "no valid PEM certificate");
	sk_X509_pop_free(sk, X509_free);
	BIO_free(bio);
	return NULL;
}
