/*
 * dotstuff.c: SMTP transparency (RFC 5321 4.5.2) and line-end
 * normalisation.
 *
 * The stuffer keeps two bits of state between calls, "at the beginning of
 * a line" and "the previous byte was CR", so its output depends only on
 * the byte sequence and never on where the caller's chunks begin or end.
 * A CR is turned into CRLF as soon as it is seen; a LF right after it is
 * then swallowed, even when it arrives in the next chunk.
 */
#include <stdbool.h>
#include <stddef.h>

#include "dotstuff.h"

/* Start a new message: at the beginning of a line, no CR pending. */
void
dotstuff_init(struct dotstuff *ds)
{
	ds->bol = 1;
	ds->cr = 0;
}

/* Stuff src into dst (room for 3 * srclen bytes); the bytes written. */
size_t
dotstuff_feed(struct dotstuff *ds, const char *src, size_t srclen, char *dst)
{
	size_t	 i, o = 0;
	char	 c;

	for (i = 0; i < srclen; i++) {
		c = src[i];
		if (c == '\n' && ds->cr) {
			ds->cr = 0;
			continue;
		}
		ds->cr = (c == '\r');
		if (c == '\r' || c == '\n') {
			dst[o++] = '\r';
			dst[o++] = '\n';
			ds->bol = 1;
			continue;
		}
		if (ds->bol && c == '.')
			dst[o++] = '.';
		dst[o++] = c;
		ds->bol = 0;
	}
	return o;
}

/* End the message: a CRLF if the last line is open, then ".\r\n". */
size_t
dotstuff_finish(struct dotstuff *ds, char *dst)
{
	size_t	 o = 0;

	if (!ds->bol) {
		dst[o++] = '\r';
		dst[o++] = '\n';
	}
	dst[o++] = '.';
	dst[o++] = '\r';
	dst[o++] = '\n';
	dotstuff_init(ds);
	return o;
}

/* Unstuff one DATA line; true when it is the end-of-data marker ".". */
bool
dotstuff_unstuff_line(const char *line, size_t len, const char **out,
    size_t *outlen)
{
	if (len == 1 && line[0] == '.')
		return true;
	if (len > 0 && line[0] == '.') {
		*out = line + 1;
		*outlen = len - 1;
	} else {
		*out = line;
		*outlen = len;
	}
	return false;
}
