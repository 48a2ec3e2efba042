/*
 * sample_ca_b: the sample conditional access client as vendor-b ships it ("sample-ca", kind
 * "ca"), the replacement an operator switches vendor-a's client for. The same scheme as
 * sample_ca.c (A256KW content, one key per entitled level), but its own content system
 * "vendor-b/sample-ca" with keys of its own: vendor-a's client cannot open its content, nor
 * it vendor-a's.
 */
#include "sample_common.h"

SAMPLE_CDCS(ca_b, "vendor-b", "sample-ca", "ca")
