/*
 * base64.c: RFC 4648 base64 with an optional 76-column CRLF wrap (RFC 2045
 * 6.8) and a strict decoder.
 *
 * The decoder accepts exactly the canonical encoding: the 64-character
 * alphabet, a length that is a multiple of four, '=' only as the last one or
 * two characters, and zero bits in the padding (RFC 4648 3.5).  Anything
 * else, whitespace included, is an error: the input comes from SMTP peers
 * and a lenient decoder would let two different strings mean one thing.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "base64.h"

#define BASE64_LINE	76

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Map a character to its 6-bit value, or -1 when not in the alphabet. */
static int
base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Return the unwrapped encoded length of srclen bytes, excluding the NUL. */
size_t
base64_encoded_len(size_t srclen)
{
	if (srclen > (SIZE_MAX / 4 - 1) * 3)
		return SIZE_MAX;
	return (srclen + 2) / 3 * 4;
}

/* Return the encoded length with a CRLF after every full line and the last. */
size_t
base64_wrapped_len(size_t srclen)
{
	size_t	 enc, lines;

	enc = base64_encoded_len(srclen);
	if (enc == SIZE_MAX)
		return SIZE_MAX;
	lines = (enc + BASE64_LINE - 1) / BASE64_LINE;
	if (enc > SIZE_MAX - 2 * lines)
		return SIZE_MAX;
	return enc + 2 * lines;
}

/* Encode src into dst, wrapping at 76 columns with CRLF when wrap is set. */
size_t
base64_encode(const void *src, size_t srclen, char *dst, size_t dstsize,
    int wrap)
{
	const unsigned char	*s = src;
	size_t			 need, i, o = 0, col = 0;
	uint32_t		 v;
	int			 k;

	need = wrap ? base64_wrapped_len(srclen) : base64_encoded_len(srclen);
	if (need == SIZE_MAX || dstsize < need + 1)
		return (size_t)-1;
	for (i = 0; i < srclen; i += 3) {
		v = (uint32_t)s[i] << 16;
		if (i + 1 < srclen)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < srclen)
			v |= s[i + 2];
		for (k = 0; k < 4; k++) {
			if ((size_t)k <= srclen - i)
				dst[o++] = base64_alphabet[(v >> (18 - 6 * k)) &
				    0x3f];
			else
				dst[o++] = '=';
		}
		col += 4;
		if (wrap && (col == BASE64_LINE || i + 3 >= srclen)) {
			dst[o++] = '\r';
			dst[o++] = '\n';
			col = 0;
		}
	}
	dst[o] = '\0';
	return o;
}

/* Strictly decode src into dst; the decoded length, or -1. */
long
base64_decode(const char *src, size_t srclen, void *dst, size_t dstsize)
{
	unsigned char	*d = dst;
	size_t		 i, o = 0, pad = 0, outlen;
	uint32_t	 v;
	int		 k, x;

	if (srclen % 4 != 0 || srclen / 4 > (size_t)(LONG_MAX / 3))
		return -1;
	if (srclen > 0 && src[srclen - 1] == '=')
		pad = (srclen > 1 && src[srclen - 2] == '=') ? 2 : 1;
	outlen = srclen / 4 * 3 - pad;
	if (outlen > dstsize)
		return -1;
	for (i = 0; i < srclen; i += 4) {
		v = 0;
		for (k = 0; k < 4; k++) {
			if (i + 4 == srclen && (size_t)k >= 4 - pad) {
				v <<= 6;
				continue;
			}
			x = base64_value((unsigned char)src[i + (size_t)k]);
			if (x == -1)
				return -1;
			v = v << 6 | (uint32_t)x;
		}
		/* Non-canonical: the bits under the padding must be zero. */
		if (i + 4 == srclen && ((pad == 1 && (v & 0xff) != 0) ||
		    (pad == 2 && (v & 0xffff) != 0)))
			return -1;
		d[o++] = (unsigned char)(v >> 16);
		if (o < outlen)
			d[o++] = (unsigned char)(v >> 8 & 0xff);
		if (o < outlen)
			d[o++] = (unsigned char)(v & 0xff);
	}
	return (long)o;
}
