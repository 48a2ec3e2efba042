/*
 * dmpeer: who a device is on Figure 5 links. A personalized DM agent presents the
 * certificate dm-iss issued (Figure 4 step 10): issued by the device CA, CN = DM id, URI SAN
 * urn:opendm:dm:<DM id>. The CDCS daemons trust nothing else a device says about itself.
 */
#ifndef OPENDM_DMPEER_H
#define OPENDM_DMPEER_H

#include <stddef.h>

#include "opendm/httpd.h"
#include "opendm/tls.h"

#define DMPEER_ID_MAX 128

/* The DM id of peer if its certificate is a DM certificate from the device CA whose
 * fingerprint is ca_fp: 0 and dm_id filled, else -1. */
int dmpeer_id(const struct tls_peer *peer, const char *ca_fp, char *dm_id, size_t len);
/* The same for a request; on failure replies 403 not_device and returns -1. */
int dmpeer_require(struct httpd_req *req, const char *ca_fp, char *dm_id, size_t len);
/* 1 if s is a well-formed DM id (1-128 characters of A-Z a-z 0-9 . _ : -). */
int dmpeer_id_ok(const char *s);

#endif
