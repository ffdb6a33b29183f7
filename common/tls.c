/*
 * tls.c: OpenSSL context factories for the relay (client) and the Gmail
 * stand-in (server).
 *
 * The client side never talks to an unverified peer: TLS 1.2 or newer,
 * SSL_VERIFY_PEER against a CA file or the system store, and the
 * certificate checked against the configured host name (SNI sent) or IP
 * literal (no SNI, as RFC 6066 forbids it for addresses).
 *
 * A client context also keeps the last session a verified handshake
 * produced, with the host it was verified for, and offers it to the next
 * connection to that same host (TLS session resumption: a reconnect skips
 * the key exchange and the certificate chain).  A resumed session carries
 * the verification result of the handshake that created it.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "util.h"

#define TLS_HOST_MAX	256

/* A client context's resumable session and the host it was verified for. */
struct tls_resume {
	char		 host[TLS_HOST_MAX];
	SSL_SESSION	*sess;
};

static pthread_once_t	 tls_once = PTHREAD_ONCE_INIT;
static int		 tls_ctx_idx = -1;	/* SSL_CTX: struct tls_resume */
static int		 tls_ssl_idx = -1;	/* SSL: a copy of its host */

static void	tls_resume_free(void *, void *, CRYPTO_EX_DATA *, int, long,
		    void *);
static void	tls_host_free(void *, void *, CRYPTO_EX_DATA *, int, long,
		    void *);
static void	tls_indexes(void);
static int	tls_new_session(SSL *, SSL_SESSION *);

/* Free a context's struct tls_resume with the context. */
static void
tls_resume_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	struct tls_resume	*r = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (r == NULL)
		return;
	SSL_SESSION_free(r->sess);
	free(r);
}

/* Free an SSL's host copy with the SSL. */
static void
tls_host_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

/* The ex_data indexes, once per process. */
static void
tls_indexes(void)
{
	tls_ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL,
	    tls_resume_free);
	tls_ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_host_free);
}

/*
 * OpenSSL has a new session for ssl (with TLS 1.3, a ticket after the
 * handshake): keep a copy for ssl's host when the handshake verified the
 * peer.  A copy, because freeing an SSL that was not shut down cleanly
 * marks its own session unresumable.  0: the reference stays OpenSSL's.
 */
static int
tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_resume	*r;
	SSL_SESSION		*copy;
	const char		*host;

	r = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ctx_idx);
	host = SSL_get_ex_data(ssl, tls_ssl_idx);
	if (r == NULL || host == NULL ||
	    SSL_get_verify_result(ssl) != X509_V_OK ||
	    !SSL_SESSION_is_resumable(sess) ||
	    str_copy(r->host, host, sizeof(r->host)) == -1 ||
	    (copy = SSL_SESSION_dup(sess)) == NULL)
		return 0;
	SSL_SESSION_free(r->sess);
	r->sess = copy;
	return 0;
}

/* Write "what: <drained OpenSSL reasons>" into err. */
static void
tls_error(char *err, size_t errlen, const char *what)
{
	char	 reasons[512];

	tls_strerror(reasons, sizeof(reasons));
	if (errlen > 0)
		snprintf(err, errlen, "%s: %s", what, reasons);
}

/* A verifying client context; cafile NULL means the default paths. */
SSL_CTX *
tls_client_ctx(const char *cafile, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	ERR_clear_error();
	if ((errno = pthread_once(&tls_once, tls_indexes)) != 0 ||
	    tls_ctx_idx == -1 || tls_ssl_idx == -1) {
		tls_error(err, errlen, "ex_data index");
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_error(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	if (SSL_CTX_set_ex_data(ctx, tls_ctx_idx,
	    xcalloc(1, sizeof(struct tls_resume))) != 1) {
		tls_error(err, errlen, "SSL_CTX_set_ex_data");
		goto fail;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, tls_new_session);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		tls_error(err, errlen, "TLS 1.2 minimum");
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cafile != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
			tls_error(err, errlen, cafile);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		tls_error(err, errlen, "default CA store");
		goto fail;
	}
	return ctx;

fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* A server context from a PEM chain and key, within the given versions. */
SSL_CTX *
tls_server_ctx(const char *certfile, const char *keyfile, int min_version,
    int max_version, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_error(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, max_version) != 1) {
		tls_error(err, errlen, "protocol versions");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1) {
		tls_error(err, errlen, certfile);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1) {
		tls_error(err, errlen, keyfile);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errlen, keyfile);
		goto fail;
	}
	return ctx;

fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* True when host is an IPv4 or IPv6 address literal (no brackets). */
static bool
tls_is_ip(const char *host)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1;
}

/* Bind the SSL's verification to host: SNI and name check, or IP check. */
static int
tls_client_identity(SSL *ssl, const char *host)
{
	/*
	 * The SSL_set_tlsext_host_name macro casts its argument to void *;
	 * OpenSSL copies the name and never writes to it.
	 */
	char	*sni = (char *)(uintptr_t)host;

	if (tls_is_ip(host))
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    host) == 1 ? 0 : -1;
	if (SSL_set_tlsext_host_name(ssl, sni) != 1)
		return -1;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}

/* A client SSL that will only accept a certificate for host. */
SSL *
tls_client_new(SSL_CTX *ctx, const char *host, char *err, size_t errlen)
{
	struct tls_resume	*r;
	SSL_SESSION		*resume;
	SSL			*ssl;
	char			*copy;

	ERR_clear_error();
	if (host == NULL || host[0] == '\0') {
		if (errlen > 0)
			snprintf(err, errlen, "no host to verify against");
		return NULL;
	}
	if ((ssl = SSL_new(ctx)) == NULL) {
		tls_error(err, errlen, "SSL_new");
		return NULL;
	}
	if (tls_client_identity(ssl, host) == -1) {
		tls_error(err, errlen, host);
		SSL_free(ssl);
		return NULL;
	}
	copy = xstrdup(host);
	if (SSL_set_ex_data(ssl, tls_ssl_idx, copy) != 1) {
		tls_error(err, errlen, "SSL_set_ex_data");
		free(copy);
		SSL_free(ssl);
		return NULL;
	}
	/* Only a session verified for this very host is offered. */
	r = SSL_CTX_get_ex_data(ctx, tls_ctx_idx);
	if (r != NULL && r->sess != NULL && strcasecmp(r->host, host) == 0 &&
	    SSL_SESSION_is_resumable(r->sess) &&
	    (resume = SSL_SESSION_dup(r->sess)) != NULL) {
		SSL_set_session(ssl, resume);
		SSL_SESSION_free(resume);
	}
	return ssl;
}

/* Drain OpenSSL's error queue into buf as "reason; reason". */
const char *
tls_strerror(char *buf, size_t len)
{
	unsigned long	 e;
	const char	*reason;
	char		 tmp[256];
	size_t		 n = 0;
	int		 w;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		if ((reason = ERR_reason_error_string(e)) == NULL) {
			ERR_error_string_n(e, tmp, sizeof(tmp));
			reason = tmp;
		}
		if (n >= len - 1)
			continue;	/* keep draining */
		w = snprintf(buf + n, len - n, "%s%s", n > 0 ? "; " : "",
		    reason);
		if (w > 0)
			n += (size_t)w;
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "no OpenSSL error reported");
	return buf;
}
