/*
 * tls.h: OpenSSL context factories.  Client contexts verify the peer
 * (TLS 1.2 minimum, CA file or the system store); tls_client_new sets SNI
 * for names and checks the certificate against the configured host name
 * or IP literal.  A client context remembers the last session a verified
 * handshake gave it and offers it to the next tls_client_new for the same
 * host (session resumption; SSL_session_reused tells).
 */
#ifndef RELAYQ_TLS_H
#define RELAYQ_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* A verifying client context; cafile NULL means the default paths. */
SSL_CTX	*tls_client_ctx(const char *cafile, char *err, size_t errlen);
/* A server context from PEM files (for the stand-in); min_version e.g. TLS1_2_VERSION. */
SSL_CTX	*tls_server_ctx(const char *certfile, const char *keyfile,
	    int min_version, int max_version, char *err, size_t errlen);
/* A client SSL for host (name or IP literal, no brackets). */
SSL	*tls_client_new(SSL_CTX *, const char *host, char *err, size_t errlen);
/* Drain OpenSSL's error queue into buf as "reason; reason". */
const char *tls_strerror(char *buf, size_t len);

#endif /* RELAYQ_TLS_H */
