/* testutil: helpers the unit tests share (temporary trees, test certificates). */
#ifndef ODM_TESTUTIL_H
#define ODM_TESTUTIL_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "opendm/pki.h"

/* mkdir -p with mode 0700. 0/-1. */
int tu_mkdir_p(const char *path);
/* A fresh private directory named after name under $ODM_TEST_TMP (else /tmp). 0/-1. */
int tu_tmpdir(char *buf, size_t len, const char *name);
/* rm -rf of a test's own temporary tree (never follows links). */
void tu_rmtree(const char *dir);
/* Issue a 2-day certificate for a new key, signed by ca/ca_key, and write both files;
 * fails the running test on error. */
void tu_make_leaf(const char *cert_path, const char *key_path, enum pki_profile profile,
                  const char *cn, const char *const *dns, const char *const *ips, X509 *ca,
                  EVP_PKEY *ca_key);

#endif
