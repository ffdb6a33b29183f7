/*
 * sasl.h: AUTH PLAIN (RFC 4616), AUTH LOGIN and AUTH XOAUTH2 encoding and
 * decoding.
 * Every temporary holding a secret is wiped before return.
 */
#ifndef RELAYQ_SASL_H
#define RELAYQ_SASL_H

#include <stddef.h>

#define SASL_FIELD_MAX	256		/* user name, plus NUL */
/*
 * A password or an OAuth2 access token, plus NUL: Google's access tokens
 * may be up to 2048 bytes.
 */
#define SASL_SECRET_MAX	2049

/* How the secret is used: PLAIN/LOGIN password, or an OAuth2 token. */
enum sasl_mech {
	SASL_MECH_PLAIN = 0,		/* zeroed credentials are PLAIN */
	SASL_MECH_XOAUTH2
};

struct sasl_cred {
	char		user[SASL_FIELD_MAX];
	char		pass[SASL_SECRET_MAX];	/* password or access token */
	enum sasl_mech	mech;
};

/* Wipe a credential. */
void	sasl_cred_clear(struct sasl_cred *);

/*
 * Encode "\0user\0pass" as base64 into out (NUL-terminated, no CRLF).
 * 0, or -1 if out is too small.
 */
int	sasl_plain_encode(const struct sasl_cred *, char *out, size_t outlen);
/*
 * Decode a base64 PLAIN response.  authzid must be empty or equal to the
 * authcid; user and password must be non-empty, without NUL, and fit.
 * 0, or -1 with a short reason (safe to log: it never quotes the input).
 */
int	sasl_plain_decode(const char *b64, struct sasl_cred *,
	    const char **reason);
/* base64 of one LOGIN field (user or password); 0 or -1. */
int	sasl_login_encode(const char *field, char *out, size_t outlen);
/* Decode one LOGIN field into out (NUL-terminated); 0 or -1. */
int	sasl_login_decode(const char *b64, char *out, size_t outlen);
/*
 * Encode "user=U\x01auth=Bearer T\x01\x01" (U the user, T the token in
 * pass) as NUL-terminated base64 into out.  0, or -1 if it does not fit.
 */
int	sasl_xoauth2_encode(const struct sasl_cred *, char *out, size_t outlen);
/*
 * Decode a base64 XOAUTH2 initial response into cred (mech XOAUTH2).  The
 * user must be non-empty without control characters, the token non-empty
 * printable ASCII without spaces, shorter than SASL_FIELD_MAX and
 * SASL_SECRET_MAX.
 * 0, or -1 with a short reason that never quotes the input.
 */
int	sasl_xoauth2_decode(const char *b64, struct sasl_cred *,
	    const char **reason);

#endif /* RELAYQ_SASL_H */
