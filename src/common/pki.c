/*
 * pki: keys, CSRs, certificates and chains with the OpenSSL 3 C API.
 *
 * Subject alternative names are built as GENERAL_NAMEs rather than through the X509V3 config
 * string parser, so that a name taken from a request ("a.test,DNS:evil") cannot smuggle in a
 * second name. Private key PEM only ever lives in secure-heap BIOs and cleansed buffers.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "opendm/file.h"
#include "opendm/log.h"
#include "opendm/pki.h"
#include "opendm/tls.h"

#define PKI_MAX_PEM  (1024 * 1024)
#define PKI_MAX_KEY  (64 * 1024)
#define PKI_MAX_DAYS (100 * 366)
#define PKI_MAX_NAME 64 /* ub-common-name etc. (RFC 5280) */
#define PKI_MAX_SAN  1024

/* IA5String content for a DNS name or URI: printable ASCII, bounded. */
static int pki_ia5_ok(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++, n++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return n > 0 && n <= PKI_MAX_SAN;
}

static int pki_gens_add_ia5(GENERAL_NAMES *gens, int type, const char *value)
{
	GENERAL_NAME *gen = NULL;
	ASN1_IA5STRING *ia5 = NULL;

	if (!pki_ia5_ok(value))
		goto fail;
	if ((gen = GENERAL_NAME_new()) == NULL || (ia5 = ASN1_IA5STRING_new()) == NULL)
		goto fail;
	if (!ASN1_STRING_set(ia5, value, (int)strlen(value)))
		goto fail;
	GENERAL_NAME_set0_value(gen, type, ia5);
	ia5 = NULL;
	if (!sk_GENERAL_NAME_push(gens, gen))
		goto fail;
	return 0;
fail:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gen);
	return -1;
}

static int pki_gens_add_ip(GENERAL_NAMES *gens, const char *value)
{
	GENERAL_NAME *gen = NULL;
	ASN1_OCTET_STRING *ip = NULL;

	if ((ip = a2i_IPADDRESS(value)) == NULL)
		goto fail;
	if ((gen = GENERAL_NAME_new()) == NULL)
		goto fail;
	GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
	ip = NULL;
	if (!sk_GENERAL_NAME_push(gens, gen))
		goto fail;
	return 0;
fail:
	ASN1_OCTET_STRING_free(ip);
	GENERAL_NAME_free(gen);
	return -1;
}

/* The SAN list, or NULL with *empty set when there is none to add. */
static GENERAL_NAMES *pki_sans(const char *const *dns, const char *const *ips, const char *uri,
                               int *empty, char *err, size_t errlen)
{
	GENERAL_NAMES *gens;
	size_t i;

	*empty = 0;
	if ((gens = GENERAL_NAMES_new()) == NULL) {
		tls_seterr(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; dns != NULL && dns[i] != NULL; i++)
		if (pki_gens_add_ia5(gens, GEN_DNS, dns[i]) == -1) {
			tls_seterr(err, errlen, "invalid DNS name in SAN");
			goto fail;
		}
	for (i = 0; ips != NULL && ips[i] != NULL; i++)
		if (pki_gens_add_ip(gens, ips[i]) == -1) {
			tls_seterr(err, errlen, "invalid IP address in SAN: %s", ips[i]);
			goto fail;
		}
	if (uri != NULL && pki_gens_add_ia5(gens, GEN_URI, uri) == -1) {
		tls_seterr(err, errlen, "invalid URI in SAN");
		goto fail;
	}
	if (sk_GENERAL_NAME_num(gens) == 0) {
		*empty = 1;
		goto fail;
	}
	return gens;
fail:
	GENERAL_NAMES_free(gens);
	return NULL;
}

static int pki_name_add(X509_NAME *name, int nid, const char *value)
{
	size_t n = strlen(value);

	if (n == 0 || n > PKI_MAX_NAME)
		return -1;
	if (!X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, (const unsigned char *)value,
	                                (int)n, -1, 0))
		return -1;
	return 0;
}

/* One entry per ','-separated value (an operator certificate's roles are several OUs). */
static int pki_name_add_list(X509_NAME *name, int nid, const char *values)
{
	char buf[PKI_MAX_NAME + 1];
	const char *p = values, *comma;
	size_t n;

	for (;;) {
		comma = strchr(p, ',');
		n = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (n == 0 || n > PKI_MAX_NAME)
			return -1;
		memcpy(buf, p, n);
		buf[n] = '\0';
		if (pki_name_add(name, nid, buf) == -1)
			return -1;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

static X509_NAME *pki_name_new(const struct pki_name *pn)
{
	X509_NAME *name;

	if (pn->cn == NULL || (name = X509_NAME_new()) == NULL)
		return NULL;
	if (pki_name_add(name, NID_organizationName, pn->o != NULL ? pn->o : "opendm") == -1)
		goto fail;
	if (pn->ou != NULL && pki_name_add_list(name, NID_organizationalUnitName, pn->ou) == -1)
		goto fail;
	if (pki_name_add(name, NID_commonName, pn->cn) == -1)
		goto fail;
	return name;
fail:
	X509_NAME_free(name);
	return NULL;
}

/* PEM text from a memory BIO into a malloc'd NUL-terminated string. */
static char *pki_bio_strdup(BIO *bio)
{
	BUF_MEM *mem = NULL;
	char *s;

	BIO_get_mem_ptr(bio, &mem);
	if (mem == NULL || (s = malloc(mem->length + 1)) == NULL)
		return NULL;
	memcpy(s, mem->data, mem->length);
	s[mem->length] = '\0';
	return s;
}

EVP_PKEY *pki_key_new(void)
{
	EVP_PKEY *key;

	if ((key = EVP_EC_gen("P-256")) == NULL) {
		log_err("EC P-256 key generation failed");
		ERR_clear_error();
	}
	return key;
}

int pki_key_write(const char *path, EVP_PKEY *key, char *err, size_t errlen)
{
	BIO *bio = NULL;
	BUF_MEM *mem = NULL;
	int rc = -1;

	/* A secure-heap BIO is cleansed when freed, so no copy of the key lingers. */
	if ((bio = BIO_new(BIO_s_secmem())) == NULL) {
		tls_seterr(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if (!PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
		tls_seterr(err, errlen, "%s: cannot encode private key", path);
		goto fail;
	}
	BIO_get_mem_ptr(bio, &mem);
	if (mem == NULL) {
		tls_seterr(err, errlen, "%s: cannot encode private key", path);
		goto fail;
	}
	if (file_write_atomic(path, mem->data, mem->length, 0600, err, errlen) == -1)
		goto fail;
	rc = 0;
fail:
	BIO_free(bio);
	return rc;
}

int pki_pubkey_write(const char *path, EVP_PKEY *key, char *err, size_t errlen)
{
	BIO *bio = NULL;
	BUF_MEM *mem = NULL;
	int rc = -1;

	if ((bio = BIO_new(BIO_s_mem())) == NULL || !PEM_write_bio_PUBKEY(bio, key)) {
		tls_seterr(err, errlen, "%s: cannot encode public key", path);
		goto fail;
	}
	BIO_get_mem_ptr(bio, &mem);
	if (file_write_atomic(path, mem->data, mem->length, 0644, err, errlen) == -1)
		goto fail;
	rc = 0;
fail:
	BIO_free(bio);
	return rc;
}

EVP_PKEY *pki_key_load(const char *path, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	char *buf = NULL;
	size_t len = 0;

	if (file_check_private(path, err, errlen) == -1)
		goto fail;
	if ((buf = file_read(path, PKI_MAX_KEY, &len, err, errlen)) == NULL)
		goto fail;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		tls_seterr(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if ((key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
		tls_seterr(err, errlen, "%s: not a PEM private key", path);
		goto fail;
	}
	if (!EVP_PKEY_is_a(key, "EC")) {
		tls_seterr(err, errlen, "%s: not an EC key", path);
		EVP_PKEY_free(key);
		key = NULL;
		goto fail;
	}
fail:
	BIO_free(bio);
	if (buf != NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	return key;
}

EVP_PKEY *pki_pubkey_load(const char *path, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	char *buf = NULL;
	size_t len = 0;

	if ((buf = file_read(path, PKI_MAX_KEY, &len, err, errlen)) == NULL)
		goto fail;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		tls_seterr(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if ((key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)) == NULL) {
		tls_seterr(err, errlen, "%s: not a PEM public key", path);
		goto fail;
	}
	if (!EVP_PKEY_is_a(key, "EC")) {
		tls_seterr(err, errlen, "%s: not an EC key", path);
		EVP_PKEY_free(key);
		key = NULL;
		goto fail;
	}
fail:
	BIO_free(bio);
	free(buf);
	return key;
}

X509_REQ *pki_csr_new(EVP_PKEY *key, const char *cn, const char *uri)
{
	struct pki_name pn = {.cn = cn};
	X509_REQ *req = NULL;
	X509_NAME *name = NULL;
	GENERAL_NAMES *gens = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	char err[256];
	int empty;

	if (key == NULL || cn == NULL)
		goto fail;
	if ((req = X509_REQ_new()) == NULL || !X509_REQ_set_version(req, X509_REQ_VERSION_1))
		goto fail;
	if ((name = pki_name_new(&pn)) == NULL || !X509_REQ_set_subject_name(req, name))
		goto fail;
	if (!X509_REQ_set_pubkey(req, key))
		goto fail;
	if (uri != NULL) {
		if ((gens = pki_sans(NULL, NULL, uri, &empty, err, sizeof(err))) == NULL)
			goto fail;
		if ((exts = sk_X509_EXTENSION_new_null()) == NULL)
			goto fail;
		if ((ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens)) == NULL ||
		    !sk_X509_EXTENSION_push(exts, ext))
			goto fail;
		ext = NULL;
		if (!X509_REQ_add_extensions(req, exts))
			goto fail;
	}
	if (X509_REQ_sign(req, key, EVP_sha256()) <= 0)
		goto fail;
	X509_NAME_free(name);
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return req;
fail:
	log_err("cannot build CSR");
	ERR_clear_error();
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(gens);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return NULL;
}

char *pki_csr_pem(X509_REQ *req)
{
	BIO *bio;
	char *s = NULL;

	if ((bio = BIO_new(BIO_s_mem())) != NULL && PEM_write_bio_X509_REQ(bio, req))
		s = pki_bio_strdup(bio);
	BIO_free(bio);
	ERR_clear_error();
	return s;
}

/*
 * A CSR whose self-signature does not verify proves nothing about the key, so it is refused
 * here rather than left for each caller to remember.
 */
X509_REQ *pki_csr_from_pem(const char *pem, size_t len, char *err, size_t errlen)
{
	X509_REQ *req = NULL;
	EVP_PKEY *pub;
	BIO *bio = NULL;

	if (pem == NULL || len == 0 || len > PKI_MAX_PEM) {
		tls_seterr(err, errlen, "CSR missing or too large");
		goto fail;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		tls_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if ((req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL)) == NULL) {
		tls_seterr(err, errlen, "not a PEM certificate request");
		goto fail;
	}
	if ((pub = X509_REQ_get0_pubkey(req)) == NULL || X509_REQ_verify(req, pub) != 1) {
		tls_seterr(err, errlen, "CSR signature does not verify");
		X509_REQ_free(req);
		req = NULL;
		goto fail;
	}
fail:
	BIO_free(bio);
	return req;
}

char *pki_cert_pem(X509 *cert)
{
	BIO *bio;
	char *s = NULL;

	if ((bio = BIO_new(BIO_s_mem())) != NULL && PEM_write_bio_X509(bio, cert))
		s = pki_bio_strdup(bio);
	BIO_free(bio);
	ERR_clear_error();
	return s;
}

X509 *pki_cert_from_pem(const char *pem, size_t len, char *err, size_t errlen)
{
	X509 *cert = NULL;
	BIO *bio = NULL;

	if (pem == NULL || len == 0 || len > PKI_MAX_PEM) {
		tls_seterr(err, errlen, "certificate missing or too large");
		goto fail;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		tls_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL)
		tls_seterr(err, errlen, "not a PEM certificate");
fail:
	BIO_free(bio);
	return cert;
}

static int pki_serial_set(X509 *x)
{
	BIGNUM *bn;
	int rc = -1;

	/* Top bit forced to one: 128 bits exactly, never zero, and positive as an INTEGER. */
	if ((bn = BN_new()) == NULL)
		return -1;
	if (BN_rand(bn, 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL)
		rc = 0;
	BN_free(bn);
	return rc;
}

static int pki_ext_add(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int ok;

	if ((ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static int pki_profile_exts(X509 *x, X509V3_CTX *ctx, enum pki_profile profile)
{
	const char *bc, *ku, *eku = NULL;

	switch (profile) {
	case PKI_PROFILE_ROOT:
		bc = "critical,CA:TRUE";
		ku = "critical,keyCertSign,cRLSign";
		break;
	case PKI_PROFILE_SUBCA:
		bc = "critical,CA:TRUE,pathlen:0";
		ku = "critical,keyCertSign,cRLSign";
		break;
	case PKI_PROFILE_SERVER:
		bc = "critical,CA:FALSE";
		ku = "critical,digitalSignature";
		eku = "serverAuth,clientAuth";
		break;
	case PKI_PROFILE_CLIENT:
		bc = "critical,CA:FALSE";
		ku = "critical,digitalSignature";
		eku = "clientAuth";
		break;
	default:
		return -1;
	}
	if (pki_ext_add(x, ctx, NID_basic_constraints, bc) == -1 ||
	    pki_ext_add(x, ctx, NID_key_usage, ku) == -1)
		return -1;
	if (eku != NULL && pki_ext_add(x, ctx, NID_ext_key_usage, eku) == -1)
		return -1;
	/* SKI first: the AKI of a self-signed certificate is taken from it. */
	if (pki_ext_add(x, ctx, NID_subject_key_identifier, "hash") == -1 ||
	    pki_ext_add(x, ctx, NID_authority_key_identifier, "keyid:always") == -1)
		return -1;
	return 0;
}

X509 *pki_issue(const struct pki_issue *req, EVP_PKEY *pubkey, X509 *issuer_cert,
                EVP_PKEY *issuer_key, char *err, size_t errlen)
{
	X509 *x = NULL;
	X509_NAME *name = NULL;
	GENERAL_NAMES *gens = NULL;
	X509V3_CTX ctx;
	int64_t nb;
	int empty;

	if (req == NULL || pubkey == NULL || issuer_key == NULL || req->subject.cn == NULL) {
		tls_seterr(err, errlen, "missing subject, key or issuer key");
		goto fail;
	}
	if (req->days <= 0 || req->days > PKI_MAX_DAYS) {
		tls_seterr(err, errlen, "validity of %lld days out of range", (long long)req->days);
		goto fail;
	}
	if ((req->profile == PKI_PROFILE_ROOT) != (issuer_cert == NULL)) {
		tls_seterr(err, errlen, "only a root certificate is self-signed");
		goto fail;
	}
	if (issuer_cert != NULL) {
		if (X509_check_ca(issuer_cert) == 0) {
			tls_seterr(err, errlen, "issuer certificate is not a CA");
			goto fail;
		}
		if (!X509_check_private_key(issuer_cert, issuer_key)) {
			tls_seterr(err, errlen, "issuer key does not match issuer certificate");
			goto fail;
		}
	}
	if ((name = pki_name_new(&req->subject)) == NULL) {
		tls_seterr(err, errlen, "invalid subject name (empty or longer than %d)",
		           PKI_MAX_NAME);
		goto fail;
	}
	nb = req->not_before != 0 ? req->not_before : (int64_t)time(NULL) - 300;
	if ((x = X509_new()) == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    pki_serial_set(x) == -1 || !X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, issuer_cert != NULL ? X509_get_subject_name(issuer_cert)
	                                                 : name) ||
	    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(nb + req->days * 86400)) == NULL ||
	    !X509_set_pubkey(x, pubkey)) {
		tls_seterr(err, errlen, "cannot build certificate for %s", req->subject.cn);
		goto fail;
	}
	X509V3_set_ctx(&ctx, issuer_cert != NULL ? issuer_cert : x, x, NULL, NULL, 0);
	X509V3_set_ctx_nodb(&ctx);
	if (pki_profile_exts(x, &ctx, req->profile) == -1) {
		tls_seterr(err, errlen, "cannot add extensions for %s", req->subject.cn);
		goto fail;
	}
	gens = pki_sans(req->dns, req->ips, req->uri, &empty, err, errlen);
	if (gens == NULL && !empty)
		goto fail;
	if (gens != NULL &&
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1) {
		tls_seterr(err, errlen, "cannot add subject alternative names");
		goto fail;
	}
	if (X509_sign(x, issuer_key, EVP_sha256()) <= 0) {
		tls_seterr(err, errlen, "cannot sign certificate for %s", req->subject.cn);
		goto fail;
	}
	GENERAL_NAMES_free(gens);
	X509_NAME_free(name);
	return x;
fail:
	GENERAL_NAMES_free(gens);
	X509_NAME_free(name);
	X509_free(x);
	return NULL;
}

int pki_certs_write(const char *path, X509 *const *certs, size_t n, char *err, size_t errlen)
{
	BIO *bio = NULL;
	BUF_MEM *mem = NULL;
	size_t i;
	int rc = -1;

	if (n == 0) {
		tls_seterr(err, errlen, "%s: no certificate to write", path);
		goto fail;
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL) {
		tls_seterr(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	for (i = 0; i < n; i++)
		if (!PEM_write_bio_X509(bio, certs[i])) {
			tls_seterr(err, errlen, "%s: cannot encode certificate", path);
			goto fail;
		}
	BIO_get_mem_ptr(bio, &mem);
	if (file_write_atomic(path, mem->data, mem->length, 0644, err, errlen) == -1)
		goto fail;
	rc = 0;
fail:
	BIO_free(bio);
	return rc;
}

STACK_OF(X509) * pki_certs_load(const char *path, char *err, size_t errlen)
{
	STACK_OF(X509) *sk = NULL;
	X509 *x = NULL;
	BIO *bio = NULL;
	char *buf = NULL;
	size_t len = 0;
	unsigned long e;

	if ((buf = file_read(path, PKI_MAX_PEM, &len, err, errlen)) == NULL)
		goto fail;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL || (sk = sk_X509_new_null()) == NULL) {
		tls_seterr(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	ERR_clear_error();
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			tls_seterr(err, errlen, "%s: out of memory", path);
			goto fail;
		}
	}
	/* The loop ends on "no start line" at EOF; anything else is a broken file. */
	e = ERR_peek_last_error();
	if (sk_X509_num(sk) == 0 || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		tls_seterr(err, errlen, "%s: %s", path,
		           sk_X509_num(sk) == 0 ? "no PEM certificate" : "malformed certificate");
		goto fail;
	}
	ERR_clear_error();
	BIO_free(bio);
	free(buf);
	return sk;
fail:
	sk_X509_pop_free(sk, X509_free);
	BIO_free(bio);
	free(buf);
	return NULL;
}

int pki_verify(X509 *leaf, STACK_OF(X509) * untrusted, STACK_OF(X509) * anchors, int purpose,
               char *err, size_t errlen)
{
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	int i, rc = -1, e;

	if (leaf == NULL || anchors == NULL || sk_X509_num(anchors) == 0) {
		tls_seterr(err, errlen, "no certificate or no trust anchor");
		goto fail;
	}
	if ((store = X509_STORE_new()) == NULL || (ctx = X509_STORE_CTX_new()) == NULL) {
		tls_seterr(err, errlen, "out of memory");
		goto fail;
	}
	for (i = 0; i < sk_X509_num(anchors); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(anchors, i))) {
			tls_seterr(err, errlen, "cannot add trust anchor");
			goto fail;
		}
	X509_STORE_set_flags(store, X509_V_FLAG_X509_STRICT);
	if (!X509_STORE_CTX_init(ctx, store, leaf, untrusted)) {
		tls_seterr(err, errlen, "cannot initialise verification");
		goto fail;
	}
	if (purpose != 0 && !X509_STORE_CTX_set_purpose(ctx, purpose)) {
		tls_seterr(err, errlen, "unknown purpose %d", purpose);
		goto fail;
	}
	if (X509_verify_cert(ctx) != 1) {
		e = X509_STORE_CTX_get_error(ctx);
		tls_seterr(err, errlen, "certificate at depth %d: %s",
		           X509_STORE_CTX_get_error_depth(ctx), X509_verify_cert_error_string(e));
		goto fail;
	}
	rc = 0;
fail:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

/* Copy an ASN.1 string, refusing embedded NULs and truncation. */
static int pki_copy_asn1(const ASN1_STRING *s, int utf8, char *buf, size_t len)
{
	unsigned char *u = NULL;
	int n;

	if (utf8) {
		if ((n = ASN1_STRING_to_UTF8(&u, s)) < 0)
			return -1;
	} else {
		n = ASN1_STRING_length(s);
	}
	if (n <= 0 || (size_t)n >= len ||
	    memchr(utf8 ? (const void *)u : ASN1_STRING_get0_data(s), '\0', (size_t)n) != NULL) {
		OPENSSL_free(u);
		return -1;
	}
	memcpy(buf, utf8 ? (const void *)u : ASN1_STRING_get0_data(s), (size_t)n);
	buf[n] = '\0';
	OPENSSL_free(u);
	return 0;
}

int pki_cert_cn(X509 *cert, char *buf, size_t len)
{
	X509_NAME *name;
	X509_NAME_ENTRY *ent;
	int i;

	if (cert == NULL || len == 0 || (name = X509_get_subject_name(cert)) == NULL)
		return -1;
	if ((i = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0 ||
	    (ent = X509_NAME_get_entry(name, i)) == NULL)
		return -1;
	return pki_copy_asn1(X509_NAME_ENTRY_get_data(ent), 1, buf, len);
}

int pki_cert_uri(X509 *cert, char *buf, size_t len)
{
	GENERAL_NAMES *gens;
	const GENERAL_NAME *gen;
	int i, rc = -1;

	if (cert == NULL || len == 0)
		return -1;
	if ((gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL)) == NULL) {
		ERR_clear_error();
		return -1;
	}
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		gen = sk_GENERAL_NAME_value(gens, i);
		if (gen->type == GEN_URI) {
			rc = pki_copy_asn1(gen->d.uniformResourceIdentifier, 0, buf, len);
			break;
		}
	}
	GENERAL_NAMES_free(gens);
	return rc;
}

int pki_cert_file_fingerprint(const char *path, int index, char fp[65], char *err, size_t errlen)
{
	STACK_OF(X509) * certs;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	int rc = -1;

	if ((certs = pki_certs_load(path, err, errlen)) == NULL)
		return -1;
	if (index < 0 || index >= sk_X509_num(certs)) {
		snprintf(err, errlen, "%s: holds %d certificate(s), certificate #%d expected", path,
		         sk_X509_num(certs), index + 1);
		goto out;
	}
	if (X509_digest(sk_X509_value(certs, index), EVP_sha256(), md, &mdlen) != 1 ||
	    mdlen != 32) {
		snprintf(err, errlen, "%s: cannot hash certificate #%d", path, index + 1);
		goto out;
	}
	for (i = 0; i < mdlen; i++)
		snprintf(fp + 2 * i, 3, "%02x", md[i]);
	rc = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	return rc;
}
