/*
 * sasl.c: AUTH PLAIN (RFC 4616), AUTH LOGIN and AUTH XOAUTH2 payloads.
 *
 * Every buffer that held a user name or password in clear or in base64 is
 * wiped before return, on success and on failure.  Reasons returned by the
 * decoder are static strings: they describe the problem and never quote
 * the input, so the server may log them.
 */
#include <string.h>

#include "base64.h"
#include "sasl.h"
#include "util.h"

/* authzid NUL authcid NUL passwd, within SASL_FIELD_MAX / SASL_SECRET_MAX. */
#define SASL_PLAIN_MAX	(2 * SASL_FIELD_MAX + SASL_SECRET_MAX)

#define SASL_XO_USER	"user="
#define SASL_XO_AUTH	"\001auth=Bearer "
/* "user=" U "\1auth=Bearer " T "\1\1", U and T within their maxima. */
#define SASL_XOAUTH2_MAX	(SASL_FIELD_MAX + SASL_SECRET_MAX + 32)
/* The larger of the two: the decoders' buffer. */
#define SASL_DECODE_MAX	(SASL_PLAIN_MAX > SASL_XOAUTH2_MAX ? \
	SASL_PLAIN_MAX : SASL_XOAUTH2_MAX)

static int	sasl_plain_split(const char *, size_t, struct sasl_cred *,
		    const char **);
static int	sasl_xoauth2_split(const char *, size_t, struct sasl_cred *,
		    const char **);

/* Wipe both fields of a credential. */
void
sasl_cred_clear(struct sasl_cred *cred)
{
	secure_zero(cred, sizeof(*cred));
}

/*
 * The base64 step of the decoders: b64 must decode to at most max bytes,
 * which split turns into cred.  On failure cred is cleared; the decoded
 * bytes are wiped either way.
 */
static int
sasl_decode(const char *b64, size_t max, const char *too_long,
    int (*split)(const char *, size_t, struct sasl_cred *, const char **),
    struct sasl_cred *cred, const char **reason)
{
	char		 buf[SASL_DECODE_MAX];
	const char	*dummy;
	size_t		 len;
	long		 n;
	int		 rc = -1;

	if (reason == NULL)
		reason = &dummy;
	sasl_cred_clear(cred);
	len = strlen(b64);
	if (len > base64_encoded_len(max)) {
		*reason = too_long;
		return -1;
	}
	if ((n = base64_decode(b64, len, buf, max)) == -1)
		*reason = "invalid base64";
	else
		rc = split(buf, (size_t)n, cred, reason);
	if (rc == -1)
		sasl_cred_clear(cred);
	secure_zero(buf, sizeof(buf));
	return rc;
}

/* Encode "\0user\0pass" as NUL-terminated base64 into out. */
int
sasl_plain_encode(const struct sasl_cred *cred, char *out, size_t outlen)
{
	char	 buf[SASL_FIELD_MAX + SASL_SECRET_MAX];
	size_t	 ulen, plen, n;
	int	 rc = -1;

	ulen = strnlen(cred->user, SASL_FIELD_MAX);
	plen = strnlen(cred->pass, SASL_SECRET_MAX);
	if (ulen == SASL_FIELD_MAX || plen == SASL_SECRET_MAX)
		return -1;
	buf[0] = '\0';
	memcpy(buf + 1, cred->user, ulen);
	buf[1 + ulen] = '\0';
	memcpy(buf + 2 + ulen, cred->pass, plen);
	n = 2 + ulen + plen;
	if (base64_encode(buf, n, out, outlen, 0) != (size_t)-1)
		rc = 0;
	secure_zero(buf, sizeof(buf));
	return rc;
}

/* Split a decoded PLAIN response into cred; 0, or -1 with a reason. */
static int
sasl_plain_split(const char *buf, size_t len, struct sasl_cred *cred,
    const char **reason)
{
	const char	*authz, *user, *pass, *nul;
	size_t		 zlen, ulen, plen;

	if (len == 0) {
		*reason = "empty PLAIN response";
		return -1;
	}
	authz = buf;
	if ((nul = memchr(authz, '\0', len)) == NULL) {
		*reason = "malformed PLAIN response";
		return -1;
	}
	zlen = (size_t)(nul - authz);
	user = nul + 1;
	if ((nul = memchr(user, '\0', len - zlen - 1)) == NULL) {
		*reason = "malformed PLAIN response";
		return -1;
	}
	ulen = (size_t)(nul - user);
	pass = nul + 1;
	plen = len - zlen - ulen - 2;
	if (memchr(pass, '\0', plen) != NULL) {
		*reason = "malformed PLAIN response";
		return -1;
	}
	if (ulen == 0 || plen == 0) {
		*reason = "empty user name or password";
		return -1;
	}
	if (zlen != 0 && (zlen != ulen || memcmp(authz, user, ulen) != 0)) {
		*reason = "authorization identity differs from user";
		return -1;
	}
	if (ulen >= SASL_FIELD_MAX || plen >= SASL_SECRET_MAX) {
		*reason = "user name or password too long";
		return -1;
	}
	memcpy(cred->user, user, ulen);
	cred->user[ulen] = '\0';
	memcpy(cred->pass, pass, plen);
	cred->pass[plen] = '\0';
	return 0;
}

/* Decode a base64 PLAIN response into cred; 0, or -1 with a loggable reason. */
int
sasl_plain_decode(const char *b64, struct sasl_cred *cred,
    const char **reason)
{
	return sasl_decode(b64, SASL_PLAIN_MAX, "PLAIN response too long",
	    sasl_plain_split, cred, reason);
}

/* Encode one LOGIN field (user or password) as NUL-terminated base64. */
int
sasl_login_encode(const char *field, char *out, size_t outlen)
{
	if (base64_encode(field, strlen(field), out, outlen, 0) == (size_t)-1)
		return -1;
	return 0;
}

/* Decode one non-empty LOGIN field into out, NUL-terminated, without NULs. */
int
sasl_login_decode(const char *b64, char *out, size_t outlen)
{
	long	 n;

	if (outlen == 0)
		return -1;
	n = base64_decode(b64, strlen(b64), out, outlen - 1);
	if (n <= 0 || memchr(out, '\0', (size_t)n) != NULL) {
		secure_zero(out, outlen);
		return -1;
	}
	out[n] = '\0';
	return 0;
}

/* Encode the XOAUTH2 initial response for cred as NUL-terminated base64. */
int
sasl_xoauth2_encode(const struct sasl_cred *cred, char *out, size_t outlen)
{
	char	 buf[SASL_XOAUTH2_MAX];
	size_t	 ulen, tlen, n;
	int	 rc = -1;

	ulen = strnlen(cred->user, SASL_FIELD_MAX);
	tlen = strnlen(cred->pass, SASL_SECRET_MAX);
	if (ulen == SASL_FIELD_MAX || tlen == SASL_SECRET_MAX)
		return -1;
	n = 0;
	memcpy(buf, SASL_XO_USER, strlen(SASL_XO_USER));
	n += strlen(SASL_XO_USER);
	memcpy(buf + n, cred->user, ulen);
	n += ulen;
	memcpy(buf + n, SASL_XO_AUTH, strlen(SASL_XO_AUTH));
	n += strlen(SASL_XO_AUTH);
	memcpy(buf + n, cred->pass, tlen);
	n += tlen;
	buf[n++] = '\001';
	buf[n++] = '\001';
	if (base64_encode(buf, n, out, outlen, 0) != (size_t)-1)
		rc = 0;
	secure_zero(buf, sizeof(buf));
	return rc;
}

/* Split a decoded XOAUTH2 response into cred; 0, or -1 with a reason. */
static int
sasl_xoauth2_split(const char *buf, size_t len, struct sasl_cred *cred,
    const char **reason)
{
	const char	*user, *tok, *end;
	size_t		 ulen, tlen, i, alen;

	*reason = "malformed XOAUTH2 response";
	if (len < strlen(SASL_XO_USER) ||
	    memcmp(buf, SASL_XO_USER, strlen(SASL_XO_USER)) != 0)
		return -1;
	user = buf + strlen(SASL_XO_USER);
	end = buf + len;
	if ((tok = memchr(user, '\001', (size_t)(end - user))) == NULL)
		return -1;
	ulen = (size_t)(tok - user);
	alen = strlen(SASL_XO_AUTH);
	if ((size_t)(end - tok) < alen || memcmp(tok, SASL_XO_AUTH, alen) != 0)
		return -1;
	tok += alen;
	/* The token runs to the closing "\1\1", which ends the response. */
	if ((size_t)(end - tok) < 2 || end[-1] != '\001' || end[-2] != '\001')
		return -1;
	tlen = (size_t)(end - tok) - 2;
	for (i = 0; i < ulen; i++)
		if ((unsigned char)user[i] < 0x20 || user[i] == 0x7f)
			return -1;
	for (i = 0; i < tlen; i++)
		if ((unsigned char)tok[i] <= 0x20 || (unsigned char)tok[i] >= 0x7f)
			return -1;
	if (ulen == 0 || tlen == 0) {
		*reason = "empty user name or token";
		return -1;
	}
	if (ulen >= SASL_FIELD_MAX || tlen >= SASL_SECRET_MAX) {
		*reason = "user name or token too long";
		return -1;
	}
	memcpy(cred->user, user, ulen);
	cred->user[ulen] = '\0';
	memcpy(cred->pass, tok, tlen);
	cred->pass[tlen] = '\0';
	cred->mech = SASL_MECH_XOAUTH2;
	return 0;
}

/* Decode a base64 XOAUTH2 response into cred; 0, or -1 with a reason. */
int
sasl_xoauth2_decode(const char *b64, struct sasl_cred *cred,
    const char **reason)
{
	return sasl_decode(b64, SASL_XOAUTH2_MAX, "XOAUTH2 response too long",
	    sasl_xoauth2_split, cred, reason);
}
