/*
 * mailaddr.c: RFC 5321 mailbox and path validation (4.1.2, 4.5.3.1).
 *
 * The grammar is RFC 5321's, narrowed where a local relay has no use for
 * the rest: the local part is a dot-string or a quoted string whose
 * characters are printable and not space, '<' or '>'; the domain is a
 * dot-separated list of letter/digit/hyphen labels or an address literal.
 * Octets >= 0x80 are accepted in the local part and in labels (SMTPUTF8
 * style); control characters, including CR, LF and NUL, never are.
 * The limits are 64 octets for the local part, 255 for the domain and 256
 * for the whole path with its angle brackets, so a mailbox is at most 254.
 */
#include <stdbool.h>
#include <string.h>

#include "mailaddr.h"

#define MAILADDR_LABEL_MAX	63
#define MAILADDR_MAILBOX_MAX	(MAILADDR_MAX - 2)

/* True for RFC 5321 atext, plus octets >= 0x80. */
static bool
mailaddr_atext(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* True for a letter, digit or octet >= 0x80 (a label's first and last). */
static bool
mailaddr_letdig(unsigned char c)
{
	return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* Check a dot-string local part; NULL if fine, else the reason. */
static const char *
mailaddr_check_dotstring(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0)
		return "empty local part";
	if (s[0] == '.' || s[len - 1] == '.')
		return "local part starts or ends with a dot";
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return "consecutive dots in local part";
		} else if (!mailaddr_atext((unsigned char)s[i]))
			return "invalid character in local part";
	}
	return NULL;
}

/*
 * Measure the local part at the start of s[0..len) (a dot-string up to '@',
 * or a quoted string) into *llen; NULL if well formed, else the reason.
 */
static const char *
mailaddr_scan_local(const char *s, size_t len, size_t *llen)
{
	const char	*at;
	unsigned char	 c;
	size_t		 i;

	if (len == 0 || s[0] != '"') {
		if ((at = memchr(s, '@', len)) == NULL)
			return "missing @";
		*llen = (size_t)(at - s);
		return mailaddr_check_dotstring(s, *llen);
	}
	for (i = 1; i < len && s[i] != '"'; i++) {
		c = (unsigned char)s[i];
		if (c == '\\') {
			if (++i == len)
				break;
			c = (unsigned char)s[i];
			if (c < 0x20 || c == 0x7f)
				return "invalid quoted pair in local part";
			continue;
		}
		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
			return "invalid character in local part";
	}
	if (i >= len)
		return "unterminated quoted local part";
	*llen = i + 1;
	if (*llen == 2)
		return "empty local part";
	return NULL;
}

/* Check an address literal "[...]"; NULL if fine, else the reason. */
static const char *
mailaddr_check_literal(const char *s, size_t len)
{
	size_t	 i;

	if (len < 3 || s[len - 1] != ']')
		return "malformed address literal";
	for (i = 1; i < len - 1; i++)
		if (s[i] < 33 || s[i] > 126 || s[i] == '[' || s[i] == ']' ||
		    s[i] == '\\')
			return "invalid character in address literal";
	return NULL;
}

/* Check a domain of len octets; NULL if fine, else the reason. */
static const char *
mailaddr_check_domain(const char *s, size_t len)
{
	size_t	 i, start = 0;

	if (len == 0)
		return "empty domain";
	if (len > MAILADDR_DOMAIN_MAX)
		return "domain too long";
	if (s[0] == '[')
		return mailaddr_check_literal(s, len);
	for (i = 0; i <= len; i++) {
		if (i < len && s[i] != '.') {
			if (s[i] != '-' &&
			    !mailaddr_letdig((unsigned char)s[i]))
				return "invalid character in domain";
			continue;
		}
		if (i == start)
			return "empty label in domain";
		if (i - start > MAILADDR_LABEL_MAX)
			return "domain label too long";
		if (s[start] == '-' || s[i - 1] == '-')
			return "domain label starts or ends with a hyphen";
		start = i + 1;
	}
	return NULL;
}

/* Check a mailbox of len octets; NULL if fine, else the reason. */
static const char *
mailaddr_check(const char *s, size_t len)
{
	const char	*why;
	size_t		 llen = 0;

	if (memchr(s, '\0', len) != NULL)
		return "NUL in address";
	if ((why = mailaddr_scan_local(s, len, &llen)) != NULL)
		return why;
	if (llen >= len || s[llen] != '@')
		return "missing @";
	if (llen > MAILADDR_LOCAL_MAX)
		return "local part too long";
	if ((why = mailaddr_check_domain(s + llen + 1, len - llen - 1)) != NULL)
		return why;
	if (len > MAILADDR_MAILBOX_MAX)
		return "address too long";
	return NULL;
}

/* True when addr is a valid bare mailbox "local@domain". */
bool
mailaddr_valid(const char *addr)
{
	size_t	 len;

	len = strnlen(addr, MAILADDR_MAX + 1);
	if (len > MAILADDR_MAILBOX_MAX)
		return false;
	return mailaddr_check(addr, len) == NULL;
}

/* Skip a source route "@a,@b:" in s[0..end); the mailbox start, or NULL. */
static const char *
mailaddr_skip_route(const char *s, const char *end)
{
	const char	*p, *colon, *next;

	if ((colon = memchr(s, ':', (size_t)(end - s))) == NULL)
		return NULL;
	for (p = s; p < colon; p = next + 1) {
		if (*p++ != '@')
			return NULL;
		if ((next = memchr(p, ',', (size_t)(colon - p))) == NULL)
			next = colon;
		if (mailaddr_check_domain(p, (size_t)(next - p)) != NULL)
			return NULL;
	}
	return colon + 1;
}

/* Parse "<path>" with optional ESMTP parameters after it. */
int
mailaddr_parse_path(const char *arg, bool allow_null, char *out,
    size_t outlen, const char **rest, const char **reason)
{
	const char	*dummy, *p, *end, *box, *why;
	size_t		 len;

	if (reason == NULL)
		reason = &dummy;
	if (rest != NULL)
		*rest = NULL;
	p = arg;
	while (*p == ' ')
		p++;
	if (*p != '<') {
		*reason = "path must be enclosed in <>";
		return -1;
	}
	if ((end = strchr(p, '>')) == NULL) {
		*reason = "missing > after path";
		return -1;
	}
	if ((size_t)(end - p) + 1 > MAILADDR_MAX) {
		*reason = "path too long";
		return -1;
	}
	if (end[1] != '\0' && end[1] != ' ') {
		*reason = "junk after path";
		return -1;
	}
	box = p + 1;
	if (box == end && !allow_null) {
		*reason = "null path not allowed";
		return -1;
	}
	if (box < end && *box == '@' &&
	    ((box = mailaddr_skip_route(box, end)) == NULL || box == end)) {
		*reason = "malformed source route";
		return -1;
	}
	len = (size_t)(end - box);
	if (len > 0 && (why = mailaddr_check(box, len)) != NULL) {
		*reason = why;
		return -1;
	}
	if (len >= outlen) {
		*reason = "address too long for buffer";
		return -1;
	}
	memcpy(out, box, len);
	out[len] = '\0';
	for (end++; *end == ' '; end++)
		;
	if (rest != NULL)
		*rest = end;
	return 0;
}
