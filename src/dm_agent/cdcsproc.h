/*
 * cdcsproc: the agent's side of a CDCS child process (the CDCS host).
 *
 * The child is a fresh exec of the agent binary, "dm-agent --cdcs-host DIR", where DIR is an
 * installed version directory (cdcs.so, store/). It loads DIR/cdcs.so, checks its vendor and
 * name against DIR/manifest.jws, and serves one JSON request line at a time on stdin with one
 * JSON answer line on stdout (stderr goes to the agent's log). The agent side is asynchronous
 * (libevent): a CDCS that crashes, hangs past its timeout or talks nonsense ends as a failed
 * call with a clear code, never as a stuck or dead agent.
 *
 * Child protocol (docs/cdcs-abi.md): requests
 *   {"op":"perso_request","ticket":"..."}  -> {"ok":true,"request":{...}}
 *   {"op":"perso_apply","data":"<JWE>"}    -> {"ok":true,"confirmation":"..."}
 *   {"op":"decrypt","content":"<base64>"}  -> {"ok":true,"plaintext":"<base64>"}
 *   {"op":"status"}                        -> {"ok":true,"status":{...}}
 * errors {"ok":false,"code":"...","message":"..."}; EOF on stdin: fini and exit 0.
 */
#ifndef OPENDM_CDCSPROC_H
#define OPENDM_CDCSPROC_H

#include <event2/event.h>
#include <jansson.h>

#define CDCSPROC_MAX_LINE (8 * 1024 * 1024) /* an answer line (decrypted content, base64) */

struct cdcsproc;

/*
 * The answer to one call: resp is the child's JSON object (borrowed for the call) when it
 * answered; NULL with code "cdcs_crashed" (the child died: err says how, e.g. "killed by
 * signal 11"), "cdcs_timeout" (killed after the timeout) or "cdcs_protocol" (bad answer).
 */
typedef void (*cdcsproc_cb)(json_t *resp, const char *code, const char *err, void *arg);

/*
 * Start "self --cdcs-host dir" (self: the agent's own executable, /proc/self/exe) with
 * log_fd as its stderr. NULL + err if it cannot be started.
 */
struct cdcsproc *cdcsproc_start(struct event_base *base, const char *self, const char *dir,
                                int log_fd, char *err, size_t errlen);
/*
 * Send one request (borrowed) and call cb once with the answer, within timeout_ms. One call at
 * a time per child. 0/-1 (then cb is not called).
 */
int cdcsproc_call(struct cdcsproc *p, const json_t *req, long timeout_ms, cdcsproc_cb cb,
                  void *arg);
/* Close stdin, give the child a moment to exit, then kill and reap it; no callback runs. */
void cdcsproc_free(struct cdcsproc *p);

/* The child side: main of "dm-agent --cdcs-host DIR". Returns the exit status. */
int cdcshost_main(const char *dir);

#endif
