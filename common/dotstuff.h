/*
 * dotstuff.h: SMTP transparency (RFC 5321 4.5.2), streaming in both
 * directions and correct across arbitrary chunk boundaries.
 */
#ifndef RELAYQ_DOTSTUFF_H
#define RELAYQ_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Stuffer: message bytes in, wire bytes out.  Bare LF and bare CR become
 * CRLF; a line starting with '.' gets another '.'.  dotstuff_finish emits
 * the missing CRLF (if the message does not end in one) and ".\r\n".
 */
struct dotstuff {
	int	 bol;		/* at beginning of line */
	int	 cr;		/* previous byte was CR */
};

void	dotstuff_init(struct dotstuff *);
/*
 * Stuff src into dst.  dst must hold 3 * srclen bytes (worst case: every
 * byte is a bare CR or LF, or a '.' at line start).  Returns bytes written.
 */
size_t	dotstuff_feed(struct dotstuff *, const char *src, size_t srclen,
	    char *dst);
/* Writes at most 5 bytes ("\r\n.\r\n") into dst; returns bytes written. */
size_t	dotstuff_finish(struct dotstuff *, char *dst);

/*
 * Unstuffer, for the server side.  It works on whole lines: the caller
 * splits the DATA stream into lines (without the line terminator) and
 * calls dotstuff_unstuff_line for each.
 *	returns true when the line is the end-of-data marker "."
 *	otherwise *out and *outlen give the line with one leading '.' removed.
 */
bool	dotstuff_unstuff_line(const char *line, size_t len,
	    const char **out, size_t *outlen);

#endif /* RELAYQ_DOTSTUFF_H */
