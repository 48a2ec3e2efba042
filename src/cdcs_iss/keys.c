/*
 * cdcs-iss keys: the entitlement keys, a JWK Set of symmetric keys
 * {"keys":[{"kty":"oct","kid":"<vendor>/<name>/<level>","k":"<base64url of 32 bytes>"}]}.
 *
 * The file holds every content key of every CA/DRM system: it must be private, a bad entry
 * stops the daemon at start rather than leaving one level silently unkeyed, and the key bytes
 * are wiped from every buffer they pass through (the file text, the parsed JSON, the decoded
 * copies) as far as this code can reach them. Nothing here logs a key.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "opendm/file.h"
#include "opendm/schema.h"
#include "cdcs_iss.h"

#define CDCS_ISS_KEYS_FILE_MAX (1024 * 1024)
/* 32 bytes in base64url without padding. */
#define CDCS_ISS_K_B64 43

struct cdcs_iss_jwk {
	char *kty;
	char *kid;
	char *k;
};

struct cdcs_iss_jwks {
	struct schema_objlist keys;
};

static const struct schema_field cdcs_iss_jwk_fields[] = {
    {"kty", SCHEMA_STRING, offsetof(struct cdcs_iss_jwk, kty), 1, 1, 16, 0, NULL},
    {"kid", SCHEMA_STRING, offsetof(struct cdcs_iss_jwk, kid), 1, 5, CDCS_ISS_KID_MAX, 0, NULL},
    {"k", SCHEMA_STRING, offsetof(struct cdcs_iss_jwk, k), 1, 1, 1024, 0, NULL},
    SCHEMA_END,
};

static const struct schema_field cdcs_iss_jwks_fields[] = {
    {"keys", SCHEMA_OBJLIST, offsetof(struct cdcs_iss_jwks, keys), 1, 1,
     sizeof(struct cdcs_iss_jwk), CDCS_ISS_KEYS_MAX, cdcs_iss_jwk_fields},
    SCHEMA_END,
};

/* "<vendor>/<name>/<level>", each part as the endpoints accept it. */
static int cdcs_iss_kid_ok(const char *kid)
{
	char buf[CDCS_ISS_KID_MAX + 1], *name, *level;

	if (strlen(kid) >= sizeof(buf))
		return 0;
	memcpy(buf, kid, strlen(kid) + 1);
	if ((name = strchr(buf, '/')) == NULL)
		return 0;
	*name++ = '\0';
	if ((level = strchr(name, '/')) == NULL)
		return 0;
	*level++ = '\0';
	return cdcsimg_valid_id(buf) && cdcsimg_valid_id(name) && cdcsimg_valid_level(level);
}

/* Strict base64url without padding, exactly 32 bytes. */
static int cdcs_iss_k_decode(const char *k, unsigned char out[CDCS_ISS_KEY_LEN], const char *kid,
                             size_t i, char *err, size_t errlen)
{
	uint8_t *raw = NULL;
	size_t n = strlen(k), rawlen = 0, j;
	cjose_err cerr;

	for (j = 0; j < n; j++) {
		if (!((k[j] >= 'A' && k[j] <= 'Z') || (k[j] >= 'a' && k[j] <= 'z') ||
		      (k[j] >= '0' && k[j] <= '9') || k[j] == '-' || k[j] == '_')) {
			snprintf(err, errlen,
			         "key 'keys[%zu].k' (%s): not base64url (A-Z a-z 0-9 - _, no "
			         "padding)",
			         i, kid);
			return -1;
		}
	}
	/* A length of 4n+1 characters is no base64 at all; cjose refuses it. */
	if (!cjose_base64url_decode(k, n, &raw, &rawlen, &cerr)) {
		snprintf(err, errlen, "key 'keys[%zu].k' (%s): not base64url", i, kid);
		return -1;
	}
	if (rawlen != CDCS_ISS_KEY_LEN || n != CDCS_ISS_K_B64) {
		snprintf(err, errlen, "key 'keys[%zu].k' (%s): %zu bytes, a key is %d bytes", i,
		         kid, rawlen, CDCS_ISS_KEY_LEN);
		OPENSSL_cleanse(raw, rawlen);
		cjose_get_dealloc()(raw);
		return -1;
	}
	memcpy(out, raw, CDCS_ISS_KEY_LEN);
	OPENSSL_cleanse(raw, rawlen);
	cjose_get_dealloc()(raw);
	return 0;
}

/* Jansson frees without wiping: overwrite every "k" string of the set in place first. */
static void cdcs_iss_jwks_wipe(json_t *set)
{
	json_t *keys = json_object_get(set, "keys"), *v, *k;
	size_t i;

	if (!json_is_array(keys))
		return;
	json_array_foreach(keys, i, v)
	{
		if (json_is_string(k = json_object_get(v, "k")))
			OPENSSL_cleanse((char *)(uintptr_t)json_string_value(k),
			                json_string_length(k));
	}
}

static void cdcs_iss_jwks_free(struct cdcs_iss_jwks *jw)
{
	struct cdcs_iss_jwk *e;
	size_t i;

	for (i = 0; i < jw->keys.n; i++) {
		e = (struct cdcs_iss_jwk *)jw->keys.v + i;
		if (e->k != NULL)
			OPENSSL_cleanse(e->k, strlen(e->k));
	}
	schema_free(cdcs_iss_jwks_fields, jw);
}

int cdcs_iss_keys_parse(const char *text, size_t len, struct cdcs_iss_keyset *out, char *err,
                        size_t errlen)
{
	struct cdcs_iss_jwks jw;
	struct cdcs_iss_jwk *e;
	json_error_t jerr;
	json_t *set = NULL;
	size_t i;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	memset(&jw, 0, sizeof(jw));
	if ((set = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		/* jerr.text may quote the input, which is secret: only say where. */
		snprintf(err, errlen, "not valid JSON (line %d)", jerr.line);
		goto fail;
	}
	if (!json_is_object(set)) {
		snprintf(err, errlen, "not a JSON object");
		goto fail;
	}
	if (schema_decode(set, cdcs_iss_jwks_fields, &jw, "JWK Set", err, errlen) == -1)
		goto fail;
	if ((out->v = calloc(jw.keys.n, sizeof(*out->v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (i = 0; i < jw.keys.n; i++) {
		e = (struct cdcs_iss_jwk *)jw.keys.v + i;
		if (strcmp(e->kty, "oct") != 0) {
			snprintf(err, errlen, "key 'keys[%zu].kty': \"oct\" expected", i);
			goto fail;
		}
		if (!cdcs_iss_kid_ok(e->kid)) {
			snprintf(err, errlen,
			         "key 'keys[%zu].kid': <vendor>/<name>/<level> expected (vendor, "
			         "name: A-Z a-z 0-9 . _ -, level: a-z 0-9 _ -)",
			         i);
			goto fail;
		}
		if (cdcs_iss_keys_find(out, e->kid) != NULL) {
			snprintf(err, errlen, "key 'keys[%zu].kid': %s appears twice", i, e->kid);
			goto fail;
		}
		if (cdcs_iss_k_decode(e->k, out->v[out->n].k, e->kid, i, err, errlen) == -1)
			goto fail;
		memcpy(out->v[out->n].kid, e->kid, strlen(e->kid) + 1);
		out->n++;
	}
	rc = 0;
fail:
	cdcs_iss_jwks_free(&jw);
	if (set != NULL) {
		cdcs_iss_jwks_wipe(set);
		json_decref(set);
	}
	if (rc == -1)
		cdcs_iss_keys_free(out);
	return rc;
}

int cdcs_iss_keys_load(const char *path, struct cdcs_iss_keyset *out, char *err, size_t errlen)
{
	char msg[CDCS_ISS_ERRLEN], *text;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	if (file_check_private(path, err, errlen) == -1 ||
	    (text = file_read(path, CDCS_ISS_KEYS_FILE_MAX, &len, err, errlen)) == NULL)
		return -1;
	if ((rc = cdcs_iss_keys_parse(text, len, out, msg, sizeof(msg))) == -1)
		snprintf(err, errlen, "%s: %s", path, msg);
	OPENSSL_cleanse(text, len);
	free(text);
	return rc;
}

const struct cdcs_iss_key *cdcs_iss_keys_find(const struct cdcs_iss_keyset *ks, const char *kid)
{
	size_t i;

	for (i = 0; i < ks->n; i++)
		if (strcmp(ks->v[i].kid, kid) == 0)
			return &ks->v[i];
	return NULL;
}

void cdcs_iss_keys_free(struct cdcs_iss_keyset *ks)
{
	if (ks->v != NULL) {
		OPENSSL_cleanse(ks->v, ks->n * sizeof(*ks->v));
		free(ks->v);
	}
	ks->v = NULL;
	ks->n = 0;
}
