/* dev_link: the link credential and pairing record (state_dir/link), the pairing proof. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "opendm/file.h"
#include "opendm/pki.h"

#include "opendm/pairproof.h"

#include "dev_link.h"

#define DEV_LINK_MAX_JSON 8192

int dev_link_new(const char *hw_id, EVP_PKEY **key, X509 **cert, char *err, size_t errlen)
{
	struct pki_issue req;

	*cert = NULL;
	if ((*key = pki_key_new()) == NULL) {
		snprintf(err, errlen, "cannot make a link key");
		return -1;
	}
	memset(&req, 0, sizeof(req));
	req.subject.cn = hw_id;
	req.subject.ou = "link";
	req.days = DEV_LINK_DAYS;
	/*
	 * pki_issue() self-signs with the root profile only. That is what the CPE checks
	 * (X509_check_issued on itself wants keyCertSign), and nothing ever trusts the link
	 * certificate as an anchor: the CPE and its relay pin its key (link_fp).
	 */
	req.profile = PKI_PROFILE_ROOT;
	if ((*cert = pki_issue(&req, *key, NULL, *key, err, errlen)) == NULL) {
		EVP_PKEY_free(*key);
		*key = NULL;
		return -1;
	}
	return 0;
}

int dev_link_spki(X509 *cert, unsigned char raw[32], char hex[65])
{
	return pairproof_spki(X509_get0_pubkey(cert), raw, hex);
}

int dev_pin_ok(const char *pin)
{
	size_t i;

	for (i = 0; i < DEV_PIN_LEN; i++)
		if (pin[i] < '0' || pin[i] > '9')
			return 0;
	return pin[DEV_PIN_LEN] == '\0';
}

static int dev_link_paths(const struct dev_config *cfg, struct dev_link *l, char *json, size_t len,
                          char *err, size_t errlen)
{
	if (dev_path(l->cert, sizeof(l->cert), cfg, "link/cert.pem") == -1 ||
	    dev_path(l->key, sizeof(l->key), cfg, "link/key.pem") == -1 ||
	    dev_path(json, len, cfg, "link/pairing.json") == -1) {
		snprintf(err, errlen, "state_dir too long");
		return -1;
	}
	return 0;
}

int dev_link_save(const struct dev_config *cfg, EVP_PKEY *key, X509 *cert, const struct dev_link *l,
                  char *err, size_t errlen)
{
	struct dev_link p;
	char path[PATH_MAX], dir[PATH_MAX], *text = NULL;
	json_t *j = NULL;
	int rc = -1;

	if (dev_link_paths(cfg, &p, path, sizeof(path), err, errlen) == -1 ||
	    dev_path(dir, sizeof(dir), cfg, "link") == -1)
		return -1;
	/* The old record names the old key: it goes before the key is replaced. */
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (dev_dir_fsync(dir, err, errlen) == -1 || pki_key_write(p.key, key, err, errlen) == -1 ||
	    pki_certs_write(p.cert, &cert, 1, err, errlen) == -1)
		return -1;
	if ((j = json_pack("{s:s, s:s, s:s, s:s, s:I}", "cpe", l->cpe, "hw_id", cfg->hw_id,
	                   "link_fp", l->link_fp, "relay_url", l->relay_url, "paired_at",
	                   (json_int_t)l->paired_at)) == NULL ||
	    (text = json_dumps(j, JSON_COMPACT)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = file_write_atomic(path, text, strlen(text), 0600, err, errlen);
out:
	free(text);
	json_decref(j);
	return rc;
}

/* pairing.json's fields into l; -1 + err if one is missing or malformed. */
static int dev_link_parse(const struct dev_config *cfg, const char *text, size_t len,
                          struct dev_link *l, char *err, size_t errlen)
{
	const char *cpe, *hw, *fp, *relay;
	json_t *j, *at;
	int rc = -1;

	if ((j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL)) == NULL) {
		snprintf(err, errlen, "not JSON");
		return -1;
	}
	cpe = json_string_value(json_object_get(j, "cpe"));
	hw = json_string_value(json_object_get(j, "hw_id"));
	fp = json_string_value(json_object_get(j, "link_fp"));
	relay = json_string_value(json_object_get(j, "relay_url"));
	at = json_object_get(j, "paired_at");
	if (cpe == NULL || cpe[0] == '\0' || strlen(cpe) >= sizeof(l->cpe) || hw == NULL ||
	    strcmp(hw, cfg->hw_id) != 0 || fp == NULL || strlen(fp) != 64 || relay == NULL ||
	    strlen(relay) >= sizeof(l->relay_url) || !dev_url_ok(relay) || !json_is_integer(at)) {
		snprintf(err, errlen, "a field is missing, malformed or for another hw_id");
		goto out;
	}
	snprintf(l->cpe, sizeof(l->cpe), "%s", cpe);
	snprintf(l->link_fp, sizeof(l->link_fp), "%s", fp);
	snprintf(l->relay_url, sizeof(l->relay_url), "%s", relay);
	l->paired_at = json_integer_value(at);
	rc = 0;
out:
	json_decref(j);
	return rc;
}

int dev_link_load(const struct dev_config *cfg, struct dev_link *l, char *err, size_t errlen)
{
	char path[PATH_MAX], fp[65], e[512], *text = NULL;
	STACK_OF(X509) *certs = NULL;
	size_t len;
	int rc = -1;

	memset(l, 0, sizeof(*l));
	if (dev_link_paths(cfg, l, path, sizeof(path), err, errlen) == -1)
		return -1;
	/* Without a cpe section there is no CA to check the relay with: the direct path. */
	if (cfg->cpe.pairing_url == NULL || access(path, F_OK) == -1)
		return 0;
	if ((text = file_read(path, DEV_LINK_MAX_JSON, &len, e, sizeof(e))) == NULL ||
	    dev_link_parse(cfg, text, len, l, e, sizeof(e)) == -1) {
		snprintf(err, errlen, "%s: %s (pair again)", path, e);
		goto out;
	}
	if (file_check_private(l->key, e, sizeof(e)) == -1 ||
	    (certs = pki_certs_load(l->cert, e, sizeof(e))) == NULL) {
		snprintf(err, errlen, "link credential: %s (pair again)", e);
		goto out;
	}
	if (dev_link_spki(sk_X509_value(certs, 0), NULL, fp) == -1 || strcmp(fp, l->link_fp) != 0) {
		snprintf(err, errlen, "%s: link_fp is not the key of %s (pair again)", path,
		         l->cert);
		goto out;
	}
	l->paired = 1;
	rc = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	free(text);
	return rc;
}

void dev_link_proxy(const struct dev_config *cfg, const struct dev_link *l, struct httpc_conf *hc)
{
	if (!l->paired) {
		/* The device knows a configured proxy by its application credential. */
		hc->proxy = cfg->proxy;
		hc->proxy_tls = cfg->tls;
		return;
	}
	/* The relay admits the link key only, and is a CPE: checked against the CPE CA. */
	hc->proxy = l->relay_url;
	memset(&hc->proxy_tls, 0, sizeof(hc->proxy_tls));
	hc->proxy_tls.cert = (char *)l->cert;
	hc->proxy_tls.key = (char *)l->key;
	hc->proxy_tls.ca = cfg->cpe.ca;
}

int dev_link_httpc_conf(const struct dev_config *cfg, struct dev_link *l, struct httpc_conf *hc,
                        char *err, size_t errlen)
{
	if (dev_link_load(cfg, l, err, errlen) == -1)
		return -1;
	dev_link_proxy(cfg, l, hc);
	return 0;
}
