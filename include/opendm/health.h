/* health: the GET /v1/health handler every daemon serves (arg is its struct daemon_ctx). */
#ifndef OPENDM_HEALTH_H
#define OPENDM_HEALTH_H

#include "opendm/httpd.h"

void health_get(struct httpd_req *req, void *arg);

#endif
