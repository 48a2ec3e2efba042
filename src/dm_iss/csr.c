/* dm-iss csr: what dm-iss needs to know about a device's CSR before certifying its key. */
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include "dm_iss.h"

/* The one subject CN of a CSR, exactly; a second CN or an embedded NUL is refused. */
int dm_iss_csr_cn(X509_REQ *csr, char *buf, size_t len)
{
	const X509_NAME *name = X509_REQ_get_subject_name(csr);
	unsigned char *utf8 = NULL;
	int i, n, rc = -1;

	if (name == NULL || (i = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0 ||
	    X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return -1;
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n > 0 && (size_t)n < len && memchr(utf8, '\0', (size_t)n) == NULL) {
		memcpy(buf, utf8, (size_t)n);
		buf[n] = '\0';
		rc = 0;
	}
	OPENSSL_free(utf8);
	return rc;
}

/* All keys are P-256 (pki.h); anything else in a CSR is refused rather than certified. */
int dm_iss_csr_key_ok(EVP_PKEY *pub)
{
	char group[64];
	size_t glen = 0;

	if (pub == NULL || EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC ||
	    EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                   &glen) != 1)
		return 0;
	return strcmp(group, SN_X9_62_prime256v1) == 0;
}

/* sha256 of the SubjectPublicKeyInfo DER: what a retry must present again. */
int dm_iss_csr_key_fp(EVP_PKEY *pub, char fp[65])
{
	unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned int mdlen = 0, i;
	int len, rc = -1;

	if ((len = i2d_PUBKEY(pub, &der)) <= 0)
		goto fail;
	if (EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		goto fail;
	for (i = 0; i < mdlen; i++)
		snprintf(fp + 2 * i, 3, "%02x", md[i]);
	rc = 0;
fail:
	OPENSSL_free(der);
	ERR_clear_error();
	return rc;
}
