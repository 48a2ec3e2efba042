/*
 * dmctl pki init DIR: the development PKI of DESIGN.md §3, made with the OpenSSL C API.
 *
 * Layout of DIR (created 0700; *.key files 0600, everything else 0644):
 *
 *   ca.crt                          trust anchors: the root certificate only
 *   root-ca.crt  root-ca.key        operator root, 10 years, self-signed
 *   service-ca.crt  service-ca.key  intermediates signed by the root, 5 years each:
 *   cpe-ca.crt      cpe-ca.key        service (daemons, operators), CPE, application,
 *   app-ca.crt      app-ca.key        device (held by dm-iss to issue DM agent certificates)
 *   device-ca.crt   device-ca.key
 *   dm-mss.crt dm-mss.key           daemon certificates (service CA, serverAuth+clientAuth),
 *   dm-iss, cdcs-pss, cdcs-mss,       CN = daemon name, SAN DNS localhost and
 *   cdcs-iss (.crt/.key)              <name>.opendm.test, IP 127.0.0.1 and ::1; 1 year
 *   sd-if-agent.crt/.key            a CPE (CPE CA, server profile): CN cpe-0001, OU cpe, the
 *                                   daemon SANs (sd-if-agent.opendm.test) so that paired
 *                                   devices check it by address like any daemon
 *   app.crt/.key                    application credential (application CA, clientAuth)
 *   operator.crt/.key               dmctl operator (service CA, clientAuth): CN operator, OU admin
 *   thirdparty.crt/.key             a commissioned third party making offline bundles
 *                                   (service CA, clientAuth): CN thirdparty-0001, OU offline
 *   dm-agent-signing.key/.pub       signing key pairs, no certificates: DM agent packages,
 *   vendor-a-signing.key/.pub         the two sample CDCS vendors, and the operator's
 *   vendor-b-signing.key/.pub         approval of a CDCS
 *   operator-signing.key/.pub
 *   enrolment-signing.key/.pub      dm-mss signs enrolment tokens and offline bundles
 *   download-ticket-signing.key/.pub  cdcs-mss signs CDCS download tickets (Figure 5)
 *   perso-ticket-signing.key/.pub   cdcs-iss signs CDCS personalization tickets
 *   entitlement-keys.json           the sample CA/DRM systems' (vendor-a/sample-ca,
 *                                   vendor-b/sample-drm, vendor-b/sample-ca) entitlement keys, a
 * JWK Set (RFC 7517, kty "oct", 256 bits, kid
 *                                   "<vendor>/<cdcs>/<level>"): cdcs-iss personalizes CDCSs
 *                                   with them, dmctl content encrypt protects content
 *
 * Every leaf .crt holds the leaf then its intermediate, ready for a TLS server or client.
 * root-ca.key is written last: its presence means a complete PKI, so init refuses to touch a
 * directory that has one, and an init that failed half-way can simply be run again.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "opendm/file.h"

#include "opendm/pki.h"
#include "opendm/schema.h"
#include "dmctl.h"

#define DAYS_ROOT  (10 * 365 + 2)
#define DAYS_SUBCA (5 * 365 + 1)
#define DAYS_LEAF  365

enum dev_ca { CA_ROOT, CA_SERVICE, CA_CPE, CA_APP, CA_DEVICE, CA_COUNT };

static const struct {
	const char *file;
	const char *cn;
} dev_cas[CA_COUNT] = {
    [CA_ROOT] = {"root-ca", "opendm Development Root CA"},
    [CA_SERVICE] = {"service-ca", "opendm Service CA"},
    [CA_CPE] = {"cpe-ca", "opendm CPE CA"},
    [CA_APP] = {"app-ca", "opendm Application CA"},
    [CA_DEVICE] = {"device-ca", "opendm Device CA"},
};

static const struct {
	const char *file;
	enum dev_ca ca;
	enum pki_profile profile;
	const char *cn;
	const char *ou;
	int daemon; /* adds <file>.opendm.test, 127.0.0.1 and ::1 */
} dev_leaves[] = {
    {"dm-mss", CA_SERVICE, PKI_PROFILE_SERVER, "dm-mss", NULL, 1},
    {"dm-iss", CA_SERVICE, PKI_PROFILE_SERVER, "dm-iss", NULL, 1},
    {"cdcs-pss", CA_SERVICE, PKI_PROFILE_SERVER, "cdcs-pss", NULL, 1},
    {"cdcs-mss", CA_SERVICE, PKI_PROFILE_SERVER, "cdcs-mss", NULL, 1},
    {"cdcs-iss", CA_SERVICE, PKI_PROFILE_SERVER, "cdcs-iss", NULL, 1},
    {"sd-if-agent", CA_CPE, PKI_PROFILE_SERVER, "cpe-0001", "cpe", 1},
    {"app", CA_APP, PKI_PROFILE_CLIENT, "opendm-app-reference", NULL, 0},
    {"operator", CA_SERVICE, PKI_PROFILE_CLIENT, "operator", "admin", 0},
    {"thirdparty", CA_SERVICE, PKI_PROFILE_CLIENT, "thirdparty-0001", "offline", 0},
};

static const char *const dev_signers[] = {
    "dm-agent-signing",  "vendor-a-signing",        "vendor-b-signing",     "operator-signing",
    "enrolment-signing", "download-ticket-signing", "perso-ticket-signing",
};

static int pki_path(char *buf, size_t len, const char *dir, const char *name, const char *ext,
                    char *err, size_t errlen);

/* The sample CA/DRM systems and the entitlement levels the development keys cover. */
static const char *const dev_systems[] = {"vendor-a/sample-ca", "vendor-b/sample-drm",
                                          "vendor-b/sample-ca"};
static const char *const dev_levels[] = {"basic", "premium", "uhd"};

/* entitlement-keys.json: one random 256-bit key per system and level. */
static int pki_entitlement_keys(const char *dir, char *err, size_t errlen)
{
	unsigned char raw[32];
	char path[PATH_MAX], kid[128], *k = NULL, *text = NULL;
	size_t i, j, klen;
	cjose_err cerr;
	json_t *set = NULL, *keys;
	int rc = -1;

	if ((set = json_pack("{s:[]}", "keys")) == NULL)
		goto fail;
	keys = json_object_get(set, "keys");
	for (i = 0; i < sizeof(dev_systems) / sizeof(dev_systems[0]); i++) {
		for (j = 0; j < sizeof(dev_levels) / sizeof(dev_levels[0]); j++) {
			if (RAND_bytes(raw, sizeof(raw)) != 1 ||
			    !cjose_base64url_encode(raw, sizeof(raw), &k, &klen, &cerr))
				goto fail;
			snprintf(kid, sizeof(kid), "%s/%s", dev_systems[i], dev_levels[j]);
			if (json_array_append_new(keys, json_pack("{s:s, s:s, s:s}", "kty", "oct",
			                                          "kid", kid, "k", k)) == -1)
				goto fail;
			OPENSSL_cleanse(k, klen);
			free(k);
			k = NULL;
		}
	}
	if ((text = json_dumps(set, JSON_INDENT(2))) == NULL ||
	    pki_path(path, sizeof(path), dir, "entitlement-keys", "json", err, errlen) == -1 ||
	    file_write_atomic(path, text, strlen(text), 0600, err, errlen) == -1)
		goto fail;
	rc = 0;
fail:
	if (rc == -1 && err[0] == '\0')
		snprintf(err, errlen, "cannot make the entitlement keys");
	OPENSSL_cleanse(raw, sizeof(raw));
	if (k != NULL) {
		OPENSSL_cleanse(k, klen);
		free(k);
	}
	if (text != NULL) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	json_decref(set);
	return rc;
}

static int pki_path(char *buf, size_t len, const char *dir, const char *name, const char *ext,
                    char *err, size_t errlen)
{
	int n = snprintf(buf, len, "%s/%s.%s", dir, name, ext);

	if (n < 0 || (size_t)n >= len) {
		snprintf(err, errlen, "path too long: %s/%s.%s", dir, name, ext);
		return -1;
	}
	return 0;
}

/* Write name.crt (cert, then its issuer unless self-signed) and, if key is set, name.key. */
static int pki_write_pair(const char *dir, const char *name, X509 *cert, X509 *issuer,
                          EVP_PKEY *key, char *err, size_t errlen)
{
	X509 *chain[2] = {cert, issuer};
	char path[PATH_MAX];

	if (pki_path(path, sizeof(path), dir, name, "crt", err, errlen) == -1 ||
	    pki_certs_write(path, chain, issuer != NULL ? 2 : 1, err, errlen) == -1)
		return -1;
	if (key == NULL)
		return 0;
	if (pki_path(path, sizeof(path), dir, name, "key", err, errlen) == -1 ||
	    pki_key_write(path, key, err, errlen) == -1)
		return -1;
	return 0;
}

static int pki_dir_prepare(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", dir);
		return -1;
	}
	if (pki_path(path, sizeof(path), dir, "root-ca", "key", err, errlen) == -1)
		return -1;
	if (lstat(path, &st) == 0 || errno != ENOENT) {
		snprintf(err, errlen, "%s already exists; refusing to overwrite an existing PKI",
		         path);
		return -1;
	}
	return 0;
}

/* A leaf's request: the daemons also answer as <name>.opendm.test and on IPv6 loopback. */
static void pki_leaf_req(size_t i, struct pki_issue *req, const char **dns, const char **ips,
                         char *name, size_t namelen)
{
	memset(req, 0, sizeof(*req));
	req->profile = dev_leaves[i].profile;
	req->subject.cn = dev_leaves[i].cn;
	req->subject.ou = dev_leaves[i].ou;
	req->days = DAYS_LEAF;
	if (dev_leaves[i].profile != PKI_PROFILE_SERVER)
		return;
	dns[0] = "localhost";
	dns[1] = dns[2] = NULL;
	ips[0] = "127.0.0.1";
	ips[1] = ips[2] = NULL;
	if (dev_leaves[i].daemon) {
		snprintf(name, namelen, "%s.opendm.test", dev_leaves[i].file);
		dns[1] = name;
		ips[1] = "::1";
	}
	req->dns = dns;
	req->ips = ips;
}

static int pki_init(const char *dir)
{
	EVP_PKEY *ca_keys[CA_COUNT] = {NULL};
	X509 *ca_certs[CA_COUNT] = {NULL};
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char path[PATH_MAX], err[PATH_MAX + 256] = "", ierr[512], name[128];
	const char *dns[3], *ips[3], *what = NULL;
	struct pki_issue req;
	enum dev_ca ca;
	size_t i;
	int rc = -1;

	if (pki_dir_prepare(dir, err, sizeof(err)) == -1)
		goto fail;

	for (i = 0; i < CA_COUNT; i++) {
		what = dev_cas[i].file;
		memset(&req, 0, sizeof(req));
		req.profile = i == CA_ROOT ? PKI_PROFILE_ROOT : PKI_PROFILE_SUBCA;
		req.subject.cn = dev_cas[i].cn;
		req.days = i == CA_ROOT ? DAYS_ROOT : DAYS_SUBCA;
		if ((ca_keys[i] = pki_key_new()) == NULL) {
			snprintf(err, sizeof(err), "key generation failed");
			goto fail;
		}
		ca_certs[i] = pki_issue(&req, ca_keys[i], i == CA_ROOT ? NULL : ca_certs[CA_ROOT],
		                        ca_keys[CA_ROOT], ierr, sizeof(ierr));
		if (ca_certs[i] == NULL) {
			snprintf(err, sizeof(err), "issuing: %s", ierr);
			goto fail;
		}
		/* The root key is written at the very end (see the top of this file). */
		if (pki_write_pair(dir, dev_cas[i].file, ca_certs[i], NULL,
		                   i == CA_ROOT ? NULL : ca_keys[i], err, sizeof(err)) == -1)
			goto fail;
		printf("%-18s CN=%s (%s)\n", dev_cas[i].file, dev_cas[i].cn,
		       i == CA_ROOT ? "root, 10 years" : "intermediate, 5 years");
	}

	for (i = 0; i < sizeof(dev_leaves) / sizeof(dev_leaves[0]); i++) {
		what = dev_leaves[i].file;
		ca = dev_leaves[i].ca;
		pki_leaf_req(i, &req, dns, ips, name, sizeof(name));
		if ((key = pki_key_new()) == NULL) {
			snprintf(err, sizeof(err), "key generation failed");
			goto fail;
		}
		cert = pki_issue(&req, key, ca_certs[ca], ca_keys[ca], ierr, sizeof(ierr));
		if (cert == NULL) {
			snprintf(err, sizeof(err), "issuing: %s", ierr);
			goto fail;
		}
		if (pki_write_pair(dir, dev_leaves[i].file, cert, ca_certs[ca], key, err,
		                   sizeof(err)) == -1)
			goto fail;
		printf("%-18s CN=%s%s%s, issued by %s, 1 year\n", dev_leaves[i].file,
		       dev_leaves[i].cn, dev_leaves[i].ou != NULL ? " OU=" : "",
		       dev_leaves[i].ou != NULL ? dev_leaves[i].ou : "", dev_cas[ca].file);
		X509_free(cert);
		cert = NULL;
		EVP_PKEY_free(key);
		key = NULL;
	}

	for (i = 0; i < sizeof(dev_signers) / sizeof(dev_signers[0]); i++) {
		what = dev_signers[i];
		if ((key = pki_key_new()) == NULL) {
			snprintf(err, sizeof(err), "key generation failed");
			goto fail;
		}
		if (pki_path(path, sizeof(path), dir, dev_signers[i], "key", err, sizeof(err)) ==
		        -1 ||
		    pki_key_write(path, key, err, sizeof(err)) == -1 ||
		    pki_path(path, sizeof(path), dir, dev_signers[i], "pub", err, sizeof(err)) ==
		        -1 ||
		    pki_pubkey_write(path, key, err, sizeof(err)) == -1)
			goto fail;
		printf("%-18s signing key pair (.key/.pub), no certificate\n", dev_signers[i]);
		EVP_PKEY_free(key);
		key = NULL;
	}

	what = "entitlement-keys.json";
	err[0] = '\0';
	if (pki_entitlement_keys(dir, err, sizeof(err)) == -1)
		goto fail;
	printf("%-18s entitlement keys of the sample CA/DRM systems (JWK Set)\n",
	       "entitlement-keys.json");

	what = "ca.crt and root-ca.key";
	if (pki_path(path, sizeof(path), dir, "ca", "crt", err, sizeof(err)) == -1 ||
	    pki_certs_write(path, &ca_certs[CA_ROOT], 1, err, sizeof(err)) == -1 ||
	    pki_path(path, sizeof(path), dir, "root-ca", "key", err, sizeof(err)) == -1 ||
	    pki_key_write(path, ca_keys[CA_ROOT], err, sizeof(err)) == -1)
		goto fail;
	printf("%-18s trust anchors (the root only)\n", "ca.crt");
	printf("development PKI written to %s; keep root-ca.key offline in real use\n", dir);
	rc = 0;
fail:
	if (rc == -1) {
		if (what != NULL)
			fprintf(stderr, "dmctl pki init: %s: %s\n", what, err);
		else
			fprintf(stderr, "dmctl pki init: %s\n", err);
		if (what != NULL)
			fprintf(stderr,
			        "dmctl pki init: %s is incomplete (no root-ca.key); "
			        "run init again to redo it\n",
			        dir);
	}
	X509_free(cert);
	EVP_PKEY_free(key);
	for (i = 0; i < CA_COUNT; i++) {
		X509_free(ca_certs[i]);
		EVP_PKEY_free(ca_keys[i]);
	}
	return rc;
}

/* 1-max of [A-Za-z0-9._-], not starting with '.' (a CN and a file name at once). */
static int pki_name_ok(const char *s, size_t max)
{
	return s[0] != '.' && schema_token_ok(s, 1, max, "._-");
}

/* The operator roles admin.c knows; checked here so a typo never becomes a useless cert. */
static int pki_roles_ok(const char *roles)
{
	static const char *const known[] = {"admin", "subscribers", "policy", "catalogue",
	                                    "viewer"};
	char buf[160], *tok, *save = NULL;
	size_t i;

	if (strlen(roles) >= sizeof(buf) || roles[0] == '\0' || roles[0] == ',' ||
	    roles[strlen(roles) - 1] == ',' || strstr(roles, ",,") != NULL)
		return 0;
	memcpy(buf, roles, strlen(roles) + 1);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(tok, known[i]) == 0)
				break;
		if (i == sizeof(known) / sizeof(known[0]))
			return 0;
	}
	return 1;
}

/* dmctl pki operator DIR --name CN --role R[,R...] [--out NAME]: an operator certificate from
 * the service CA of an existing PKI, its roles as OU values. */
static int pki_operator(const char *dir, const char *cn, const char *roles, const char *out)
{
	EVP_PKEY *ca_key = NULL, *key = NULL;
	STACK_OF(X509) *ca = NULL;
	X509 *cert = NULL;
	char path[PATH_MAX], err[PATH_MAX + 256] = "", name[128];
	struct pki_issue req;
	struct stat st;
	int rc = -1;

	if (!pki_name_ok(cn, 64)) {
		fprintf(stderr,
		        "dmctl pki operator: --name wants 1-64 of [A-Za-z0-9._-], not '%s'\n", cn);
		return DMCTL_EXIT_USAGE;
	}
	if (!pki_roles_ok(roles)) {
		fprintf(stderr,
		        "dmctl pki operator: --role wants a comma-separated list of admin, "
		        "subscribers, policy, catalogue, viewer, not '%s'\n",
		        roles);
		return DMCTL_EXIT_USAGE;
	}
	snprintf(name, sizeof(name), "%s", out != NULL ? out : "operator-");
	if (out == NULL)
		snprintf(name, sizeof(name), "operator-%s", cn);
	if (!pki_name_ok(name, 100)) {
		fprintf(stderr, "dmctl pki operator: --out wants a file name, not '%s'\n", name);
		return DMCTL_EXIT_USAGE;
	}
	if (pki_path(path, sizeof(path), dir, name, "key", err, sizeof(err)) == -1)
		goto fail;
	if (lstat(path, &st) == 0) {
		snprintf(err, sizeof(err), "%s exists; refusing to overwrite it", path);
		goto fail;
	}
	if (pki_path(path, sizeof(path), dir, "service-ca", "key", err, sizeof(err)) == -1 ||
	    (ca_key = pki_key_load(path, err, sizeof(err))) == NULL ||
	    pki_path(path, sizeof(path), dir, "service-ca", "crt", err, sizeof(err)) == -1 ||
	    (ca = pki_certs_load(path, err, sizeof(err))) == NULL)
		goto fail;
	memset(&req, 0, sizeof(req));
	req.profile = PKI_PROFILE_CLIENT;
	req.subject.cn = cn;
	req.subject.ou = roles;
	req.days = DAYS_LEAF;
	if ((key = pki_key_new()) == NULL) {
		snprintf(err, sizeof(err), "key generation failed");
		goto fail;
	}
	if ((cert = pki_issue(&req, key, sk_X509_value(ca, 0), ca_key, err, sizeof(err))) == NULL ||
	    pki_write_pair(dir, name, cert, sk_X509_value(ca, 0), key, err, sizeof(err)) == -1)
		goto fail;
	printf("%s/%s.crt CN=%s OU=%s, issued by service-ca, 1 year (key %s.key, 0600)\n", dir,
	       name, cn, roles, name);
	rc = 0;
fail:
	if (rc == -1)
		fprintf(stderr, "dmctl pki operator: %s\n", err);
	X509_free(cert);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ca_key);
	sk_X509_pop_free(ca, X509_free);
	return rc == 0 ? DMCTL_EXIT_OK : DMCTL_EXIT_FAIL;
}

static const char pki_usage[] =
    "usage: dmctl pki init DIR\n"
    "       dmctl pki operator DIR --name CN --role ROLE[,ROLE...] [--out NAME]\n"
    "\n"
    "init      create a development PKI in DIR (see docs/operator-guide.md)\n"
    "operator  issue an operator certificate from DIR's service CA into DIR/NAME.crt/.key\n"
    "          (default NAME operator-CN). Roles: admin (everything), subscribers,\n"
    "          policy, catalogue, viewer (read only).\n";

int dmctl_pki_main(int argc, char **argv)
{
	const char *name = NULL, *roles = NULL, *out = NULL;
	int i;

	for (i = 0; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(pki_usage, stdout);
			return DMCTL_EXIT_OK;
		}
	if (argc == 2 && strcmp(argv[0], "init") == 0)
		return pki_init(argv[1]) == 0 ? DMCTL_EXIT_OK : DMCTL_EXIT_FAIL;
	if (argc >= 2 && strcmp(argv[0], "operator") == 0) {
		for (i = 2; i + 1 < argc; i += 2) {
			if (strcmp(argv[i], "--name") == 0)
				name = argv[i + 1];
			else if (strcmp(argv[i], "--role") == 0)
				roles = argv[i + 1];
			else if (strcmp(argv[i], "--out") == 0)
				out = argv[i + 1];
			else
				break;
		}
		if (i != argc || name == NULL || roles == NULL) {
			fprintf(stderr, "dmctl pki operator: wants --name CN --role ROLES\n%s",
			        pki_usage);
			return DMCTL_EXIT_USAGE;
		}
		return pki_operator(argv[1], name, roles, out);
	}
	fputs(pki_usage, stderr);
	return DMCTL_EXIT_USAGE;
}
