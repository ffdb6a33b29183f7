/*
 * check_tls.c: the TLS context factories against a throwaway PKI made in
 * the test itself.  Client and server SSLs handshake over an in-memory
 * BIO pair, so no sockets or processes are involved.
 */
#include <sys/stat.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "check_relayq.h"
#include "tls.h"

#define SERVER_SAN	"DNS:smtp.example.test, DNS:*.wild.test, " \
			"DNS:f*.part.test, IP:127.0.0.1, IP:::1"
#define HS_ROUNDS	64

enum hs_result {
	HS_OK,
	HS_CLIENT_FAILED,
	HS_SERVER_FAILED,
	HS_STUCK
};

static const char *const pki_files[] = {
	"ca.pem", "other-ca.pem", "impostor-ca.pem", "server.pem",
	"server.key", "other.key"
};

static char	 pki_dir[] = "/tmp/relayq-tls-XXXXXX";
static bool	 pki_made;	/* pki_dir exists and is ours to remove */
static char	 hs_err[512];	/* the failing side's drained errors */

/* The path of a file in the fixture's directory (static buffer). */
static const char *
pki_path(const char *name)
{
	static char	 path[4][256];
	static int	 slot;

	slot = (slot + 1) % 4;
	snprintf(path[slot], sizeof(path[slot]), "%s/%s", pki_dir, name);
	return path[slot];
}

/* Add one X509v3 extension given in openssl.cnf syntax. */
static void
pki_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX	 v3;
	X509_EXTENSION	*ext;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	ck_assert_ptr_nonnull(ext);
	ck_assert_int_eq(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/*
 * A certificate for key named cn, signed by issuer/ikey, or self-signed
 * when issuer is NULL.  san NULL makes a CA.
 */
static X509 *
pki_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey,
    const char *san, long serial)
{
	X509		*x;
	X509_NAME	*name;

	ck_assert_ptr_nonnull(x = X509_new());
	ck_assert_int_eq(X509_set_version(x, 2), 1);
	ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	ck_assert_int_eq(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0), 1);
	if (issuer == NULL) {
		issuer = x;
		ikey = key;
	}
	ck_assert_int_eq(X509_set_issuer_name(x, X509_get_subject_name(issuer)),
	    1);
	if (san == NULL) {
		pki_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
		pki_ext(x, issuer, NID_key_usage,
		    "critical,keyCertSign,cRLSign");
		pki_ext(x, issuer, NID_subject_key_identifier, "hash");
	} else {
		pki_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
		pki_ext(x, issuer, NID_ext_key_usage, "serverAuth");
		pki_ext(x, issuer, NID_subject_alt_name, san);
	}
	ck_assert_int_ne(X509_sign(x, ikey, EVP_sha256()), 0);
	return x;
}

/* Write a certificate or a private key as PEM. */
static void
pki_write(const char *name, X509 *x, EVP_PKEY *key)
{
	FILE	*fp;

	ck_assert_ptr_nonnull(fp = fopen(pki_path(name), "w"));
	if (x != NULL)
		ck_assert_int_eq(PEM_write_X509(fp, x), 1);
	else
		ck_assert_int_eq(PEM_write_PrivateKey(fp, key, NULL, NULL, 0,
		    NULL, NULL), 1);
	ck_assert_int_eq(fclose(fp), 0);
}

/*
 * Make the CA, a server certificate it signs, an unrelated CA and an
 * impostor CA with the real one's name, in a new directory.  This is an
 * unchecked fixture: it runs in the runner process, so the directory is
 * removed even when a test child dies at a failed assertion (Check's
 * _exit skips checked teardowns).  Tests only read these files.
 */
static void
pki_setup(void)
{
	EVP_PKEY	*cakey, *otherkey, *srvkey;
	X509		*ca, *other, *impostor, *srv;

	/* Reset the template so CK_FORK=no runs work too. */
	snprintf(pki_dir, sizeof(pki_dir), "/tmp/relayq-tls-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(pki_dir));
	pki_made = true;
	ck_assert_ptr_nonnull(cakey = EVP_EC_gen("P-256"));
	ck_assert_ptr_nonnull(otherkey = EVP_EC_gen("P-256"));
	ck_assert_ptr_nonnull(srvkey = EVP_EC_gen("P-256"));
	ca = pki_cert("relayq test CA", cakey, NULL, NULL, NULL, 1);
	other = pki_cert("relayq other CA", otherkey, NULL, NULL, NULL, 2);
	impostor = pki_cert("relayq test CA", otherkey, NULL, NULL, NULL, 1);
	srv = pki_cert("smtp.example.test", srvkey, ca, cakey, SERVER_SAN, 3);
	pki_write("ca.pem", ca, NULL);
	pki_write("other-ca.pem", other, NULL);
	pki_write("impostor-ca.pem", impostor, NULL);
	pki_write("server.pem", srv, NULL);
	pki_write("server.key", NULL, srvkey);
	pki_write("other.key", NULL, otherkey);
	X509_free(ca);
	X509_free(other);
	X509_free(impostor);
	X509_free(srv);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(otherkey);
	EVP_PKEY_free(srvkey);
}

/* Remove the fixture's files and directory, once. */
static void
pki_teardown(void)
{
	size_t	 i;

	if (!pki_made)
		return;
	pki_made = false;
	for (i = 0; i < nitems_ck(pki_files); i++)
		unlink(pki_path(pki_files[i]));
	rmdir(pki_dir);
}

/* True when a handshake step failed for a reason other than wanting I/O. */
static bool
hs_failed(SSL *ssl, int rc)
{
	int	 e;

	if (rc == 1)
		return false;
	e = SSL_get_error(ssl, rc);
	return e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
}

/*
 * Run client and server handshakes over a BIO pair until both finish or
 * one fails; the failing side's errors go to hs_err.
 */
static enum hs_result
hs_run(SSL *client, SSL *server)
{
	BIO	*bc, *bs;
	int	 i, rc, rs;

	ck_assert_int_eq(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(client, bc, bc);
	SSL_set_bio(server, bs, bs);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	hs_err[0] = '\0';
	for (i = 0; i < HS_ROUNDS; i++) {
		ERR_clear_error();
		rc = SSL_do_handshake(client);
		if (hs_failed(client, rc)) {
			tls_strerror(hs_err, sizeof(hs_err));
			return HS_CLIENT_FAILED;
		}
		rs = SSL_do_handshake(server);
		if (hs_failed(server, rs)) {
			tls_strerror(hs_err, sizeof(hs_err));
			return HS_SERVER_FAILED;
		}
		if (rc == 1 && rs == 1)
			return HS_OK;
	}
	return HS_STUCK;
}

/* A server SSL on server.pem, with the given highest version (0 = any). */
static SSL *
server_new(int max_version)
{
	SSL_CTX	*sctx;
	SSL	*s;
	char	 err[512];

	sctx = tls_server_ctx(pki_path("server.pem"), pki_path("server.key"),
	    TLS1_VERSION, max_version, err, sizeof(err));
	ck_assert_msg(sctx != NULL, "server ctx: %s", err);
	ck_assert_ptr_nonnull(s = SSL_new(sctx));
	SSL_CTX_free(sctx);
	return s;
}

/* A client SSL trusting cafile and expecting host. */
static SSL *
client_new(const char *cafile, const char *host)
{
	SSL_CTX	*cctx;
	SSL	*c;
	char	 err[512];

	cctx = tls_client_ctx(pki_path(cafile), err, sizeof(err));
	ck_assert_msg(cctx != NULL, "client ctx: %s", err);
	c = tls_client_new(cctx, host, err, sizeof(err));
	ck_assert_msg(c != NULL, "client ssl for %s: %s", host, err);
	SSL_CTX_free(cctx);
	return c;
}

static const struct {
	const char	*host;
	enum hs_result	 result;
	long		 verify;	/* the client's verify result */
	const char	*sni;		/* what the server saw, NULL for none */
} verify_cases[] = {
	{ "smtp.example.test",	HS_OK, X509_V_OK, "smtp.example.test" },
	{ "SMTP.Example.TEST",	HS_OK, X509_V_OK, "SMTP.Example.TEST" },
	{ "a.wild.test",	HS_OK, X509_V_OK, "a.wild.test" },
	{ "127.0.0.1",		HS_OK, X509_V_OK, NULL },
	{ "::1",		HS_OK, X509_V_OK, NULL },
	{ "other.example.test",	HS_CLIENT_FAILED, X509_V_ERR_HOSTNAME_MISMATCH,
	    "other.example.test" },
	{ "example.test",	HS_CLIENT_FAILED, X509_V_ERR_HOSTNAME_MISMATCH,
	    "example.test" },
	{ "a.b.wild.test",	HS_CLIENT_FAILED, X509_V_ERR_HOSTNAME_MISMATCH,
	    "a.b.wild.test" },
	{ "wild.test",		HS_CLIENT_FAILED, X509_V_ERR_HOSTNAME_MISMATCH,
	    "wild.test" },
	/* "f*.part.test" would match without NO_PARTIAL_WILDCARDS. */
	{ "foo.part.test",	HS_CLIENT_FAILED, X509_V_ERR_HOSTNAME_MISMATCH,
	    "foo.part.test" },
	{ "127.0.0.2",		HS_CLIENT_FAILED,
	    X509_V_ERR_IP_ADDRESS_MISMATCH, NULL },
	{ "::2",		HS_CLIENT_FAILED,
	    X509_V_ERR_IP_ADDRESS_MISMATCH, NULL },
};

/* The certificate is accepted exactly for the names and IPs it carries. */
START_TEST(test_tls_verify_host)
{
	SSL		*c, *s;
	enum hs_result	 r;
	const char	*sni;

	c = client_new("ca.pem", verify_cases[_i].host);
	s = server_new(0);
	r = hs_run(c, s);
	ck_assert_msg(r == verify_cases[_i].result,
	    "%s: result %d, want %d (%s)",
	    verify_cases[_i].host, r, verify_cases[_i].result, hs_err);
	ck_assert_int_eq(SSL_get_verify_result(c), verify_cases[_i].verify);
	if (r != HS_OK)
		ck_assert_msg(strstr(hs_err, "certificate verify failed") !=
		    NULL, "%s: %s", verify_cases[_i].host, hs_err);
	else {
		ck_assert_int_ge(SSL_version(c), TLS1_2_VERSION);
		sni = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
		if (verify_cases[_i].sni == NULL)
			ck_assert_ptr_null(sni);
		else
			ck_assert_str_eq(sni, verify_cases[_i].sni);
	}
	SSL_free(c);
	SSL_free(s);
}
END_TEST

static const struct {
	const char	*cafile;
	long		 verify;
} untrusted_cases[] = {
	{ "other-ca.pem",	X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY },
	/* Same issuer name, different key: the signature cannot match. */
	{ "impostor-ca.pem",	X509_V_ERR_CERT_SIGNATURE_FAILURE },
};

/* A certificate from a CA the client does not trust is refused. */
START_TEST(test_tls_unknown_ca)
{
	SSL	*c, *s;

	c = client_new(untrusted_cases[_i].cafile, "smtp.example.test");
	s = server_new(0);
	ck_assert_int_eq(hs_run(c, s), HS_CLIENT_FAILED);
	ck_assert_int_eq(SSL_get_verify_result(c), untrusted_cases[_i].verify);
	ck_assert_ptr_nonnull(strstr(hs_err, "certificate verify failed"));
	SSL_free(c);
	SSL_free(s);
}
END_TEST

/* A server capped at TLS 1.1 cannot agree with a TLS 1.2+ client. */
START_TEST(test_tls_min_version)
{
	SSL	*c, *s;

	c = client_new("ca.pem", "smtp.example.test");
	s = server_new(TLS1_1_VERSION);
	ck_assert_int_ne(hs_run(c, s), HS_OK);
	ck_assert_int_eq(SSL_is_init_finished(c), 0);
	SSL_free(c);
	SSL_free(s);
}
END_TEST

/* Handshake c with a new SSL of sctx, then let the server's tickets in. */
static void
resume_round(SSL *c, SSL_CTX *sctx)
{
	SSL	*s;
	char	 buf[8];
	int	 i;

	ck_assert_ptr_nonnull(s = SSL_new(sctx));
	ck_assert_msg(hs_run(c, s) == HS_OK, "handshake: %s", hs_err);
	ck_assert_int_eq(SSL_write(s, "ok", 2), 2);
	for (i = 0; i < HS_ROUNDS && SSL_read(c, buf, sizeof(buf)) <= 0; i++)
		;
	ck_assert_int_lt(i, HS_ROUNDS);
	SSL_free(s);
}

/*
 * Session resumption: the second and third connections to a host resume
 * the session the first verified handshake left; a connection to another
 * host (valid for the certificate too) does not get it, so a session is
 * never offered to a host it was not verified for.
 */
START_TEST(test_tls_resumption)
{
	SSL_CTX	*sctx, *cctx;
	SSL	*c;
	char	 err[512];
	int	 i;

	sctx = tls_server_ctx(pki_path("server.pem"), pki_path("server.key"),
	    TLS1_2_VERSION, 0, err, sizeof(err));
	ck_assert_msg(sctx != NULL, "server ctx: %s", err);
	cctx = tls_client_ctx(pki_path("ca.pem"), err, sizeof(err));
	ck_assert_msg(cctx != NULL, "client ctx: %s", err);
	for (i = 0; i < 3; i++) {
		c = tls_client_new(cctx, "smtp.example.test", err, sizeof(err));
		ck_assert_msg(c != NULL, "%s", err);
		resume_round(c, sctx);
		ck_assert_int_eq(SSL_session_reused(c), i > 0);
		ck_assert_int_eq(SSL_get_verify_result(c), X509_V_OK);
		SSL_free(c);
	}
	c = tls_client_new(cctx, "a.wild.test", err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	resume_round(c, sctx);
	ck_assert_int_eq(SSL_session_reused(c), 0);
	SSL_free(c);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}
END_TEST

/* The client context demands TLS 1.2 and peer verification. */
START_TEST(test_tls_client_ctx_settings)
{
	SSL_CTX	*ctx;
	char	 err[256];

	ctx = tls_client_ctx(pki_path("ca.pem"), err, sizeof(err));
	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
	SSL_CTX_free(ctx);
	ctx = tls_client_ctx(NULL, err, sizeof(err));
	ck_assert_msg(ctx != NULL, "default paths: %s", err);
	ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
	SSL_CTX_free(ctx);
}
END_TEST

/* The server context sets the versions it was given; 0 means no maximum. */
START_TEST(test_tls_server_ctx_versions)
{
	SSL_CTX	*ctx;
	char	 err[256];

	ctx = tls_server_ctx(pki_path("server.pem"), pki_path("server.key"),
	    TLS1_2_VERSION, TLS1_3_VERSION, err, sizeof(err));
	ck_assert_msg(ctx != NULL, "%s", err);
	ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	ck_assert_int_eq(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
	SSL_CTX_free(ctx);
	ctx = tls_server_ctx(pki_path("server.pem"), pki_path("server.key"),
	    TLS1_2_VERSION, 0, err, sizeof(err));
	ck_assert_msg(ctx != NULL, "%s", err);
	ck_assert_int_eq(SSL_CTX_get_max_proto_version(ctx), 0);
	SSL_CTX_free(ctx);
}
END_TEST

/* Missing or mismatched files fail with the file named in err. */
START_TEST(test_tls_bad_files)
{
	char		 err[512], want[300];
	const char	*missing = "/nonexistent/relayq/ca.pem";

	ck_assert_ptr_null(tls_client_ctx(missing, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: ", missing);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	ck_assert_uint_gt(strlen(err), strlen(want));

	ck_assert_ptr_null(tls_server_ctx(missing, pki_path("server.key"),
	    TLS1_2_VERSION, 0, err, sizeof(err)));
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);

	ck_assert_ptr_null(tls_server_ctx(pki_path("server.pem"),
	    pki_path("other.key"), TLS1_2_VERSION, 0, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: ", pki_path("other.key"));
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	ck_assert_uint_eq(ERR_peek_error(), 0);
}
END_TEST

/* No SSL is made without a host to verify against. */
START_TEST(test_tls_client_new_needs_host)
{
	SSL_CTX	*ctx;
	char	 err[256];

	ctx = tls_client_ctx(pki_path("ca.pem"), err, sizeof(err));
	ck_assert_ptr_nonnull(ctx);
	ck_assert_ptr_null(tls_client_new(ctx, NULL, err, sizeof(err)));
	ck_assert_str_eq(err, "no host to verify against");
	err[0] = '\0';
	ck_assert_ptr_null(tls_client_new(ctx, "", err, sizeof(err)));
	ck_assert_str_eq(err, "no host to verify against");
	SSL_CTX_free(ctx);
}
END_TEST

/* tls_strerror drains the whole queue, joins with "; ", and truncates. */
START_TEST(test_tls_strerror)
{
	SSL_CTX	*ctx;
	char	 buf[512], small[8];

	ERR_clear_error();
	ck_assert_str_eq(tls_strerror(buf, sizeof(buf)),
	    "no OpenSSL error reported");

	ck_assert_ptr_nonnull(ctx = SSL_CTX_new(TLS_client_method()));
	ck_assert_int_eq(SSL_CTX_use_certificate_file(ctx,
	    "/nonexistent/relayq/x.pem", SSL_FILETYPE_PEM), 0);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ctx,
	    "/nonexistent/relayq/x.key", SSL_FILETYPE_PEM), 0);
	ck_assert_uint_ne(ERR_peek_error(), 0);
	ck_assert_ptr_eq(tls_strerror(buf, sizeof(buf)), buf);
	ck_assert_ptr_nonnull(strstr(buf, "; "));
	ck_assert_ptr_nonnull(strstr(buf, "system lib"));
	ck_assert_uint_eq(ERR_peek_error(), 0);

	ck_assert_int_eq(SSL_CTX_use_certificate_file(ctx,
	    "/nonexistent/relayq/x.pem", SSL_FILETYPE_PEM), 0);
	memset(small, 'x', sizeof(small));
	tls_strerror(small, sizeof(small));
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
	ck_assert_uint_eq(ERR_peek_error(), 0);
	SSL_CTX_free(ctx);
}
END_TEST

/* The tls suite. */
Suite *
tls_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("tls");

	tc = tcase_create("handshake");
	tcase_add_unchecked_fixture(tc, pki_setup, pki_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_tls_verify_host, 0,
	    (int)nitems_ck(verify_cases));
	tcase_add_loop_test(tc, test_tls_unknown_ca, 0,
	    (int)nitems_ck(untrusted_cases));
	tcase_add_test(tc, test_tls_min_version);
	suite_add_tcase(s, tc);

	tc = tcase_create("contexts");
	tcase_add_unchecked_fixture(tc, pki_setup, pki_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_tls_client_ctx_settings);
	tcase_add_test(tc, test_tls_resumption);
	tcase_add_test(tc, test_tls_server_ctx_versions);
	tcase_add_test(tc, test_tls_bad_files);
	tcase_add_test(tc, test_tls_client_new_needs_host);
	tcase_add_test(tc, test_tls_strerror);
	suite_add_tcase(s, tc);

	return s;
}
