/*
 * tls: the project's single TLS policy (DESIGN.md §2), for servers and clients.
 *
 * odm_tls does not link odm_pki (the bench links tls alone), hence its own small name helpers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "opendm/file.h"
#include "opendm/log.h"
#include "opendm/tls.h"

#define TLS_VERIFY_DEPTH 4

/* The message, then what OpenSSL said (its queue is consumed). */
void tls_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	char ossl[256];
	size_t n;
	va_list ap;

	if (err == NULL || errlen == 0) {
		ERR_clear_error();
		return;
	}
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (ERR_peek_error() == 0)
		return;
	tls_errstr(ossl, sizeof(ossl));
	n = strlen(err);
	if (n < errlen)
		snprintf(err + n, errlen - n, ": %s", ossl);
}

const char *tls_errstr(char *buf, size_t len)
{
	unsigned long e;
	size_t n = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		if (n > 0 && n + 2 < len) {
			memcpy(buf + n, "; ", 3);
			n += 2;
		}
		if (n + 1 < len)
			ERR_error_string_n(e, buf + n, len - n);
		n = strlen(buf);
	}
	if (n == 0)
		snprintf(buf, len, "no OpenSSL error");
	return buf;
}

int tls_apply_policy(SSL_CTX *ctx, char *err, size_t errlen)
{
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
		tls_seterr(err, errlen, "cannot restrict to TLS 1.3");
		return -1;
	}
	if (!SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERSUITES)) {
		tls_seterr(err, errlen, "cannot set cipher suites");
		return -1;
	}
	if (!SSL_CTX_set1_groups_list(ctx, TLS_GROUPS)) {
		tls_seterr(err, errlen, "cannot set groups");
		return -1;
	}
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	/* Tickets cost 30-45% server CPU per handshake and nothing resumes (DESIGN.md §2). */
	if (!SSL_CTX_set_num_tickets(ctx, 0) || !SSL_CTX_set_max_early_data(ctx, 0)) {
		tls_seterr(err, errlen, "cannot disable tickets and early data");
		return -1;
	}
	return 0;
}

static SSL_CTX *tls_ctx_new(const struct tls_conf *conf, int server, char *err, size_t errlen)
{
	SSL_CTX *ctx = NULL;
	X509_STORE *store;
	X509_LOOKUP *lookup;
	STACK_OF(X509_NAME) * names;

	if (conf == NULL || conf->cert == NULL || conf->key == NULL || conf->ca == NULL) {
		tls_seterr(err, errlen, "TLS needs a certificate, a key and a CA file");
		goto fail;
	}
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method())) == NULL) {
		tls_seterr(err, errlen, "cannot create TLS context");
		goto fail;
	}
	if (tls_apply_policy(ctx, err, errlen) == -1)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, conf->cert) != 1) {
		tls_seterr(err, errlen, "certificate %s", conf->cert);
		goto fail;
	}
	if (file_check_private(conf->key, err, errlen) == -1)
		goto fail;
	if (SSL_CTX_use_PrivateKey_file(ctx, conf->key, SSL_FILETYPE_PEM) != 1) {
		tls_seterr(err, errlen, "private key %s", conf->key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_seterr(err, errlen, "private key %s does not match certificate %s", conf->key,
		           conf->cert);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, conf->ca, NULL) != 1) {
		tls_seterr(err, errlen, "CA file %s", conf->ca);
		goto fail;
	}
	if (conf->crl != NULL) {
		store = SSL_CTX_get_cert_store(ctx);
		/* X509_load_crl_file() on PEM loads every CRL of the file, not just the first. */
		if ((lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file())) == NULL ||
		    X509_load_crl_file(lookup, conf->crl, X509_FILETYPE_PEM) <= 0) {
			tls_seterr(err, errlen, "CRL file %s", conf->crl);
			goto fail;
		}
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
	if (server) {
		if (!SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"opendm", 6)) {
			tls_seterr(err, errlen, "cannot set session id context");
			goto fail;
		}
		if ((names = SSL_load_client_CA_file(conf->ca)) == NULL) {
			tls_seterr(err, errlen, "CA file %s: no CA names", conf->ca);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_server_ctx(const struct tls_conf *conf, char *err, size_t errlen)
{
	return tls_ctx_new(conf, 1, err, errlen);
}

SSL_CTX *tls_client_ctx(const struct tls_conf *conf, char *err, size_t errlen)
{
	return tls_ctx_new(conf, 0, err, errlen);
}

/* One entry of a name as UTF-8, "" when absent; -1 if it does not fit or holds a NUL. */
static int tls_name_entry(const X509_NAME *name, int nid, char *buf, size_t len)
{
	const X509_NAME_ENTRY *ent;
	unsigned char *u = NULL;
	int i, n, rc = -1;

	buf[0] = '\0';
	if (name == NULL || (i = X509_NAME_get_index_by_NID(name, nid, -1)) < 0)
		return 0;
	if ((ent = X509_NAME_get_entry(name, i)) == NULL ||
	    (n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(ent))) < 0)
		goto fail;
	if ((size_t)n >= len || memchr(u, '\0', (size_t)n) != NULL)
		goto fail;
	memcpy(buf, u, (size_t)n);
	buf[n] = '\0';
	rc = 0;
fail:
	OPENSSL_free(u);
	return rc;
}

/* Every value of nid joined with ','; a value holding ',' or overlong names fail. */
static int tls_name_entries(const X509_NAME *name, int nid, char *buf, size_t len)
{
	const X509_NAME_ENTRY *ent;
	unsigned char *u = NULL;
	size_t used = 0;
	int i = -1, n;

	buf[0] = '\0';
	while ((i = X509_NAME_get_index_by_NID(name, nid, i)) >= 0) {
		if ((ent = X509_NAME_get_entry(name, i)) == NULL ||
		    (n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(ent))) < 0)
			return -1;
		if (memchr(u, '\0', (size_t)n) != NULL || memchr(u, ',', (size_t)n) != NULL ||
		    used + (used > 0) + (size_t)n >= len) {
			OPENSSL_free(u);
			return -1;
		}
		if (used > 0)
			buf[used++] = ',';
		memcpy(buf + used, u, (size_t)n);
		used += (size_t)n;
		buf[used] = '\0';
		OPENSSL_free(u);
		u = NULL;
	}
	return 0;
}

static int tls_first_uri(X509 *cert, char *buf, size_t len)
{
	GENERAL_NAMES *gens;
	const GENERAL_NAME *gen;
	const ASN1_IA5STRING *s;
	int i, n, rc = 0;

	buf[0] = '\0';
	if ((gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL)) == NULL)
		return 0;
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		gen = sk_GENERAL_NAME_value(gens, i);
		if (gen->type != GEN_URI)
			continue;
		s = gen->d.uniformResourceIdentifier;
		n = ASN1_STRING_length(s);
		if ((size_t)n >= len || memchr(ASN1_STRING_get0_data(s), '\0', (size_t)n) != NULL) {
			rc = -1;
			break;
		}
		memcpy(buf, ASN1_STRING_get0_data(s), (size_t)n);
		buf[n] = '\0';
		break;
	}
	GENERAL_NAMES_free(gens);
	return rc;
}

static int tls_fingerprint(X509 *cert, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n, i;

	if (!X509_digest(cert, EVP_sha256(), md, &n) || len < 2 * (size_t)n + 1)
		return -1;
	for (i = 0; i < n; i++) {
		buf[2 * i] = hex[md[i] >> 4];
		buf[2 * i + 1] = hex[md[i] & 0xf];
	}
	buf[2 * n] = '\0';
	return 0;
}

int tls_peer_from_cert(X509 *cert, struct tls_peer *peer)
{
	BIGNUM *bn = NULL;
	char *hex = NULL;
	int rc = -1;

	memset(peer, 0, sizeof(*peer));
	if (cert == NULL)
		return -1;
	/* A truncated identity could match somebody else's, so overlong names fail. */
	if (tls_name_entry(X509_get_subject_name(cert), NID_commonName, peer->subject_cn,
	                   sizeof(peer->subject_cn)) == -1 ||
	    tls_name_entry(X509_get_issuer_name(cert), NID_commonName, peer->issuer_cn,
	                   sizeof(peer->issuer_cn)) == -1 ||
	    tls_name_entry(X509_get_subject_name(cert), NID_organizationalUnitName, peer->ou,
	                   sizeof(peer->ou)) == -1 ||
	    tls_name_entries(X509_get_subject_name(cert), NID_organizationalUnitName, peer->ous,
	                     sizeof(peer->ous)) == -1 ||
	    tls_first_uri(cert, peer->san_uri, sizeof(peer->san_uri)) == -1)
		goto fail;
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL)) == NULL ||
	    (hex = BN_bn2hex(bn)) == NULL || strlen(hex) >= sizeof(peer->serial))
		goto fail;
	memcpy(peer->serial, hex, strlen(hex) + 1);
	if (tls_fingerprint(cert, peer->fingerprint, sizeof(peer->fingerprint)) == -1)
		goto fail;
	rc = 0;
fail:
	OPENSSL_free(hex);
	BN_free(bn);
	ERR_clear_error();
	if (rc == -1)
		memset(peer, 0, sizeof(*peer));
	return rc;
}

int tls_peer_from_ssl(SSL *ssl, struct tls_peer *peer)
{
	STACK_OF(X509) * chain;
	X509 *cert;

	memset(peer, 0, sizeof(*peer));
	/* Identity of an unverified peer means nothing; never report one. */
	if (ssl == NULL || (cert = SSL_get0_peer_certificate(ssl)) == NULL ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return -1;
	if (tls_peer_from_cert(cert, peer) == -1)
		return -1;
	chain = SSL_get0_verified_chain(ssl);
	if (chain == NULL || sk_X509_num(chain) < 2 ||
	    tls_fingerprint(sk_X509_value(chain, 1), peer->issuer_fp, sizeof(peer->issuer_fp)) ==
	        -1) {
		memset(peer, 0, sizeof(*peer));
		return -1;
	}
	return 0;
}
