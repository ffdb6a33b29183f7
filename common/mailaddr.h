/*
 * mailaddr.h: RFC 5321 path validation.
 */
#ifndef RELAYQ_MAILADDR_H
#define RELAYQ_MAILADDR_H

#include <stdbool.h>
#include <stddef.h>

#define MAILADDR_LOCAL_MAX	64
#define MAILADDR_DOMAIN_MAX	255
#define MAILADDR_MAX		256	/* path limit incl. brackets, RFC 5321 4.5.3.1.3 */

/*
 * Validate a mailbox "local@domain" (no brackets): printable ASCII (or
 * UTF-8 octets >= 0x80), no spaces/CR/LF/NUL/<>, one '@' outside a quoted
 * local part, local <= 64, domain <= 255 and non-empty, total <= 254
 * (so that "<" addr ">" fits the 256-octet path limit).
 */
bool	mailaddr_valid(const char *addr);

/*
 * Parse a path argument such as "<a@b>" or "<>" (RFC 5321 Reverse-path /
 * Forward-path, without the "FROM:"/"TO:" prefix, leading spaces allowed).
 * Writes the bare address (empty for "<>") into out and sets *rest to the
 * text after '>' (ESMTP parameters, leading spaces skipped).
 * allow_null permits "<>".  Source routes "<@a,@b:x@y>" are accepted and
 * stripped.  0, or -1 with *reason set to a short static string.
 */
int	mailaddr_parse_path(const char *arg, bool allow_null, char *out,
	    size_t outlen, const char **rest, const char **reason);

#endif /* RELAYQ_MAILADDR_H */
