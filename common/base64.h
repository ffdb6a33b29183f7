/*
 * base64.h: RFC 4648 base64, strict decode, optional 76-column CRLF wrap.
 */
#ifndef RELAYQ_BASE64_H
#define RELAYQ_BASE64_H

#include <stddef.h>

/* Encoded length without wrap, excluding the NUL. */
size_t	base64_encoded_len(size_t srclen);
/* Encoded length with a CRLF after every 76 output columns and at the end. */
size_t	base64_wrapped_len(size_t srclen);
/*
 * Encode src into dst (dstsize must hold the encoded length plus a NUL).
 * wrap != 0 inserts CRLF after every 76 characters and after the last line.
 * Returns the length written (excluding NUL), or (size_t)-1 if dst is short.
 */
size_t	base64_encode(const void *src, size_t srclen, char *dst,
	    size_t dstsize, int wrap);
/*
 * Strict decode: only the alphabet and correct '=' padding, no whitespace.
 * Returns the decoded length, or -1 (invalid input or dst too small).
 * dst is not NUL-terminated.
 */
long	base64_decode(const char *src, size_t srclen, void *dst, size_t dstsize);

#endif /* RELAYQ_BASE64_H */
