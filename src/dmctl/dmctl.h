/* dmctl: the operator tool. Each command group lives in its own file. */
#ifndef DMCTL_H
#define DMCTL_H

/* dmctl pki init DIR: create the development PKI of DESIGN.md §3. Returns an exit status. */
int dmctl_pki_main(int argc, char **argv);
/* dmctl health [ROLE...]: query GET /v1/health of the configured daemons. */
int dmctl_health_main(int argc, char **argv);

#endif
