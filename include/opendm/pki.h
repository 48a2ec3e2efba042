/*
 * pki: keys, CSRs, certificates and chains with the OpenSSL 3 C API.
 *
 * All keys are ECDSA P-256. Private keys are written PEM (PKCS#8) with mode 0600 through
 * file_write_atomic(); they are never logged.
 */
#ifndef OPENDM_PKI_H
#define OPENDM_PKI_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

enum pki_profile {
	PKI_PROFILE_ROOT,   /* CA:TRUE, keyCertSign|cRLSign, self-signed */
	PKI_PROFILE_SUBCA,  /* CA:TRUE pathlen:0, keyCertSign|cRLSign */
	PKI_PROFILE_SERVER, /* CA:FALSE, digitalSignature, serverAuth+clientAuth (daemons) */
	PKI_PROFILE_CLIENT, /* CA:FALSE, digitalSignature, clientAuth */
};

struct pki_name {
	const char *cn; /* required */
	const char *ou; /* optional; "a,b" makes one OU entry per value */
	const char *o;  /* optional, default "opendm" */
};

struct pki_issue {
	enum pki_profile profile;
	struct pki_name subject;
	const char *const *dns; /* NULL-terminated DNS SANs, or NULL */
	const char *const *ips; /* NULL-terminated IP SANs, or NULL */
	const char *uri;        /* one URI SAN, or NULL */
	int64_t not_before;     /* unix time; 0 = now - 5 minutes */
	int64_t days;           /* validity in days (> 0) */
};

EVP_PKEY *pki_key_new(void);
/* Write a private key PEM (0600, atomic) / a public key PEM (0644). 0/-1 + err. */
int pki_key_write(const char *path, EVP_PKEY *key, char *err, size_t errlen);
int pki_pubkey_write(const char *path, EVP_PKEY *key, char *err, size_t errlen);
/* Load a private key, refusing a file readable by group/others. NULL + err. */
EVP_PKEY *pki_key_load(const char *path, char *err, size_t errlen);
EVP_PKEY *pki_pubkey_load(const char *path, char *err, size_t errlen);

/* A CSR for key with subject CN cn (and optional URI SAN). */
X509_REQ *pki_csr_new(EVP_PKEY *key, const char *cn, const char *uri);
/* PEM text of a CSR / cert (malloc'd, NUL-terminated), and back. */
char *pki_csr_pem(X509_REQ *req);
X509_REQ *pki_csr_from_pem(const char *pem, size_t len, char *err, size_t errlen);
char *pki_cert_pem(X509 *cert);
X509 *pki_cert_from_pem(const char *pem, size_t len, char *err, size_t errlen);

/*
 * Issue a certificate for pubkey signed by issuer_key (issuer_cert NULL: self-signed).
 * Serial: 128 random bits, positive. Adds SKI/AKI and the profile's extensions.
 */
X509 *pki_issue(const struct pki_issue *req, EVP_PKEY *pubkey, X509 *issuer_cert,
                EVP_PKEY *issuer_key, char *err, size_t errlen);

/* Write certs (leaf first) as one PEM file, mode 0644. 0/-1. */
int pki_certs_write(const char *path, X509 *const *certs, size_t n, char *err, size_t errlen);
/* Load every certificate in a PEM file. Returns a stack (caller frees with
 * OSSL_STACK_OF_X509_free / sk_X509_pop_free) or NULL + err. */
STACK_OF(X509) * pki_certs_load(const char *path, char *err, size_t errlen);

/*
 * Verify leaf against trust anchors, with untrusted intermediates, for purpose
 * (X509_PURPOSE_SSL_CLIENT etc., 0 for any). 0 if valid, -1 + reason in err.
 */
int pki_verify(X509 *leaf, STACK_OF(X509) * untrusted, STACK_OF(X509) * anchors, int purpose,
               char *err, size_t errlen);
/* sha256 (lower-case hex) of the DER of certificate number index (0 = first) in a PEM file;
 * how a daemon recognises the CA that issued a peer (tls_peer.issuer_fp). 0/-1 + err. */
int pki_cert_file_fingerprint(const char *path, int index, char fp[65], char *err, size_t errlen);
/* Copy the subject CN / first URI SAN of cert into buf. 0/-1 if absent or too long. */
int pki_cert_cn(X509 *cert, char *buf, size_t len);
int pki_cert_uri(X509 *cert, char *buf, size_t len);

#endif
