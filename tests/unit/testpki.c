/* testpki: certificate helpers shared by the unit tests that link the pki module. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "testutil.h"

void tu_make_leaf(const char *cert_path, const char *key_path, enum pki_profile profile,
                  const char *cn, const char *const *dns, const char *const *ips, X509 *ca,
                  EVP_PKEY *ca_key)
{
	struct pki_issue req = {profile, {cn, NULL, NULL}, dns, ips, NULL, 0, 2};
	char err[256];
	EVP_PKEY *key;
	X509 *cert;

	assert_non_null(key = pki_key_new());
	cert = pki_issue(&req, key, ca, ca_key, err, sizeof(err));
	if (cert == NULL)
		fail_msg("pki_issue %s: %s", cn, err);
	assert_int_equal(pki_key_write(key_path, key, err, sizeof(err)), 0);
	assert_int_equal(pki_certs_write(cert_path, &cert, 1, err, sizeof(err)), 0);
	X509_free(cert);
	EVP_PKEY_free(key);
}
