/*
 * check_message.c: the client's test message, taken apart again as a
 * mail reader would: CRLF lines, the headers, the two MIME parts, the
 * text and the base64 image decoded back to the embedded PNG bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "check_relayq.h"
#include "base64.h"
#include "image.h"
#include "message.h"

#define SENDER		"alice.example@gmail.com"
#define RCPT		"bob@example.org"
#define WHEN		((time_t)1764170494)
#define FIELD_MAX	512

static char	*msg;
static size_t	 msglen;

/* Build a fresh message for each test. */
static void
setup(void)
{
	msg = message_build(SENDER, RCPT, WHEN, &msglen);
	ck_assert_ptr_nonnull(msg);
	ck_assert_uint_gt(msglen, image_png_len);
}

/* Free it. */
static void
teardown(void)
{
	free(msg);
	msg = NULL;
}

/* The offset of needle in hay[0..haylen), or -1. */
static long
find(const char *hay, size_t haylen, const char *needle)
{
	size_t	 n = strlen(needle), i;

	for (i = 0; n <= haylen && i <= haylen - n; i++)
		if (memcmp(hay + i, needle, n) == 0)
			return (long)i;
	return -1;
}

/*
 * The unfolded value of header name in the header block hdr[0..len);
 * 0 if found, -1 if absent or it occurs twice.
 */
static int
header_get(const char *hdr, size_t len, const char *name, char *val,
    size_t vallen)
{
	size_t	 i = 0, n = strlen(name), o = 0;
	int	 found = 0;

	while (i < len) {
		if (len - i > n + 1 && strncasecmp(hdr + i, name, n) == 0 &&
		    hdr[i + n] == ':') {
			if (found++)
				return -1;
			i += n + 1;
			while (i < len && hdr[i] == ' ')
				i++;
			/* Copy up to a CRLF that is not followed by a fold. */
			while (i + 1 < len && !(hdr[i] == '\r' &&
			    (i + 2 >= len || (hdr[i + 2] != ' ' &&
			    hdr[i + 2] != '\t')))) {
				if (hdr[i] != '\r' && hdr[i] != '\n' &&
				    o + 1 < vallen)
					val[o++] = hdr[i];
				i++;
			}
			val[o] = '\0';
		}
		while (i < len && hdr[i] != '\n')
			i++;
		i++;
	}
	return found == 1 ? 0 : -1;
}

/* The header block of msg (up to the blank line) and its length. */
static size_t
header_block_len(const char *m, size_t len)
{
	long	 end = find(m, len, "\r\n\r\n");

	ck_assert_int_gt(end, 0);
	return (size_t)end + 2;
}

/* The boundary parameter of the top-level Content-Type. */
static void
get_boundary(char *b, size_t blen)
{
	char		 ct[FIELD_MAX];
	const char	*p, *q;

	ck_assert_int_eq(header_get(msg, header_block_len(msg, msglen),
	    "Content-Type", ct, sizeof(ct)), 0);
	ck_assert_msg(strncmp(ct, "multipart/mixed;", 16) == 0, "%s", ct);
	p = strstr(ct, "boundary=\"");
	ck_assert_ptr_nonnull(p);
	p += 10;
	q = strchr(p, '"');
	ck_assert_ptr_nonnull(q);
	ck_assert_uint_lt((size_t)(q - p), blen);
	memcpy(b, p, (size_t)(q - p));
	b[q - p] = '\0';
}

struct part {
	const char	*start;		/* the part's headers */
	size_t		 len;		/* up to the CRLF before the delimiter */
};

/* Split the body at the boundary; the number of parts found (max n). */
static size_t
split_parts(struct part *parts, size_t n)
{
	char		 boundary[FIELD_MAX], delim[FIELD_MAX + 8];
	const char	*p, *end = msg + msglen;
	long		 off;
	size_t		 count = 0;

	get_boundary(boundary, sizeof(boundary));
	(void)snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	off = find(msg, msglen, delim);
	ck_assert_int_gt(off, 0);
	p = msg + off + strlen(delim);
	/* After each delimiter: "--" closes, CRLF opens a part. */
	while (end - p >= 2 && memcmp(p, "\r\n", 2) == 0) {
		p += 2;
		off = find(p, (size_t)(end - p), delim);
		ck_assert_int_ge(off, 0);
		if (count < n) {
			parts[count].start = p;
			parts[count].len = (size_t)off;
		}
		count++;
		p += off + (long)strlen(delim);
	}
	ck_assert_msg(end - p >= 4 && memcmp(p, "--\r\n", 4) == 0,
	    "no close delimiter");
	return count;
}

/* Every line ends in CRLF: no bare CR, no bare LF, CRLF at the end. */
START_TEST(test_message_lines_end_crlf)
{
	size_t	 i, lines = 0;

	for (i = 0; i < msglen; i++) {
		if (msg[i] == '\r')
			ck_assert_msg(i + 1 < msglen && msg[i + 1] == '\n',
			    "bare CR at offset %zu", i);
		if (msg[i] == '\n') {
			ck_assert_msg(i > 0 && msg[i - 1] == '\r',
			    "bare LF at offset %zu", i);
			lines++;
		}
		ck_assert_msg(msg[i] != '\0', "NUL at offset %zu", i);
	}
	ck_assert(msglen >= 2 && memcmp(msg + msglen - 2, "\r\n", 2) == 0);
	ck_assert_uint_gt(lines, 100);
}
END_TEST

/* No line is longer than RFC 5322's 998 characters. */
START_TEST(test_message_line_length)
{
	size_t	 i, col = 0;

	for (i = 0; i < msglen; i++) {
		col = msg[i] == '\n' ? 0 : col + 1;
		ck_assert_msg(col <= 999, "line too long at offset %zu", i);
	}
}
END_TEST

static const struct {
	const char	*name;
	const char	*value;		/* exact, or NULL to check prefix */
	const char	*prefix;
	const char	*suffix;
} header_cases[] = {
	{ "From",		SENDER,		NULL,	NULL },
	{ "To",			RCPT,		NULL,	NULL },
	{ "Subject",		"relayq test message", NULL, NULL },
	{ "MIME-Version",	"1.0",		NULL,	NULL },
	{ "Message-ID",		NULL,		"<",	"@gmail.com>" },
	{ "Date",		NULL,		NULL,	NULL },
	{ "Content-Type",	NULL,		"multipart/mixed;", "\"" },
};

/* Each top-level header is present once with the expected value. */
START_TEST(test_message_headers)
{
	char	 val[FIELD_MAX];
	size_t	 hlen = header_block_len(msg, msglen), n;
	int	 ret;

	ret = header_get(msg, hlen, header_cases[_i].name, val, sizeof(val));
	ck_assert_msg(ret == 0, "%s: missing or repeated",
	    header_cases[_i].name);
	if (header_cases[_i].value != NULL)
		ck_assert_msg(strcmp(val, header_cases[_i].value) == 0,
		    "%s: \"%s\", want \"%s\"", header_cases[_i].name, val,
		    header_cases[_i].value);
	if (header_cases[_i].prefix != NULL)
		ck_assert_msg(strncmp(val, header_cases[_i].prefix,
		    strlen(header_cases[_i].prefix)) == 0,
		    "%s: \"%s\" lacks prefix \"%s\"", header_cases[_i].name,
		    val, header_cases[_i].prefix);
	if (header_cases[_i].suffix != NULL) {
		n = strlen(header_cases[_i].suffix);
		ck_assert_msg(strlen(val) >= n &&
		    strcmp(val + strlen(val) - n, header_cases[_i].suffix) == 0,
		    "%s: \"%s\" lacks suffix \"%s\"", header_cases[_i].name,
		    val, header_cases[_i].suffix);
	}
}
END_TEST

/* The Date header is the RFC 5322 rendering of the given time. */
START_TEST(test_message_date)
{
	char	 val[FIELD_MAX];
	char	 want[64];
	struct tm tm;

	ck_assert_int_eq(header_get(msg, header_block_len(msg, msglen),
	    "Date", val, sizeof(val)), 0);
	ck_assert_ptr_nonnull(localtime_r(&(time_t){ WHEN }, &tm));
	ck_assert_uint_gt(strftime(want, sizeof(want), "%d %b %Y %H:%M:%S",
	    &tm), 0);
	ck_assert_msg(strstr(val, want) != NULL, "Date \"%s\" lacks \"%s\"",
	    val, want);
}
END_TEST

/* Two messages never share a Message-ID. */
START_TEST(test_message_id_unique)
{
	char	*other, a[FIELD_MAX], b[FIELD_MAX];
	size_t	 otherlen;

	other = message_build(SENDER, RCPT, WHEN, &otherlen);
	ck_assert_ptr_nonnull(other);
	ck_assert_int_eq(header_get(msg, header_block_len(msg, msglen),
	    "Message-ID", a, sizeof(a)), 0);
	ck_assert_int_eq(header_get(other, header_block_len(other, otherlen),
	    "Message-ID", b, sizeof(b)), 0);
	ck_assert_str_ne(a, b);
	free(other);
}
END_TEST

/* A sender without a domain gives no Message-ID domain: no message. */
START_TEST(test_message_needs_sender_domain)
{
	size_t	 len = 0;

	ck_assert_ptr_null(message_build("nodomain", RCPT, WHEN, &len));
	ck_assert_ptr_null(message_build("trailing@", RCPT, WHEN, &len));
}
END_TEST

/* The body holds exactly two parts. */
START_TEST(test_message_two_parts)
{
	struct part	 parts[4];

	ck_assert_uint_eq(split_parts(parts, nitems_ck(parts)), 2);
}
END_TEST

/* The text part is UTF-8 text/plain and carries the text, CRLF lines. */
START_TEST(test_message_text_part)
{
	struct part	 parts[2];
	char		 val[FIELD_MAX], *want;
	size_t		 hlen, i, o;

	ck_assert_uint_eq(split_parts(parts, 2), 2);
	hlen = header_block_len(parts[0].start, parts[0].len);
	ck_assert_int_eq(header_get(parts[0].start, hlen, "Content-Type",
	    val, sizeof(val)), 0);
	ck_assert_str_eq(val, "text/plain; charset=utf-8");

	want = malloc(2 * strlen(message_text) + 1);
	ck_assert_ptr_nonnull(want);
	for (i = o = 0; message_text[i] != '\0'; i++) {
		if (message_text[i] == '\n')
			want[o++] = '\r';
		want[o++] = message_text[i];
	}
	/* The part's body ends before the CRLF that opens the delimiter. */
	ck_assert_uint_eq(parts[0].len - (hlen + 2) + 2, o);
	ck_assert(memcmp(parts[0].start + hlen + 2, want, o - 2) == 0);
	free(want);
}
END_TEST

/* The image part's headers: type, base64, attachment named relayq.png. */
START_TEST(test_message_image_headers)
{
	struct part	 parts[2];
	char		 val[FIELD_MAX];
	size_t		 hlen;

	ck_assert_uint_eq(split_parts(parts, 2), 2);
	hlen = header_block_len(parts[1].start, parts[1].len);
	ck_assert_int_eq(header_get(parts[1].start, hlen, "Content-Type",
	    val, sizeof(val)), 0);
	ck_assert_msg(strncmp(val, "image/png", 9) == 0, "%s", val);
	ck_assert_int_eq(header_get(parts[1].start, hlen,
	    "Content-Transfer-Encoding", val, sizeof(val)), 0);
	ck_assert_str_eq(val, "base64");
	ck_assert_int_eq(header_get(parts[1].start, hlen,
	    "Content-Disposition", val, sizeof(val)), 0);
	ck_assert_str_eq(val, "attachment; filename=\"relayq.png\"");
}
END_TEST

/*
 * The image part is base64 in 76-column lines (the last one shorter or
 * equal) and decodes to the embedded bytes, which are a PNG.
 */
START_TEST(test_message_image_decodes)
{
	static const unsigned char sig[8] = {
		0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'
	};
	struct part	 parts[2];
	const char	*p, *end, *eol;
	char		*b64;
	unsigned char	*bin;
	size_t		 hlen, b64len = 0, nlines = 0, len;
	long		 dlen, off;

	ck_assert_uint_eq(split_parts(parts, 2), 2);
	hlen = header_block_len(parts[1].start, parts[1].len);
	p = parts[1].start + hlen + 2;
	end = parts[1].start + parts[1].len;
	b64 = malloc(parts[1].len);
	bin = malloc(parts[1].len);
	ck_assert(b64 != NULL && bin != NULL);
	while (p < end) {
		off = find(p, (size_t)(end - p) + 2, "\r\n");
		ck_assert_int_ge(off, 0);
		eol = p + off;
		len = (size_t)off;
		nlines++;
		if (eol + 2 < end)
			ck_assert_msg(len == 76, "line %zu: %zu columns",
			    nlines, len);
		else
			ck_assert_msg(len > 0 && len <= 76,
			    "last line: %zu columns", len);
		memcpy(b64 + b64len, p, len);
		b64len += len;
		p = eol + 2;
	}
	ck_assert_uint_eq(nlines, (base64_encoded_len(image_png_len) + 75) / 76);
	dlen = base64_decode(b64, b64len, bin, parts[1].len);
	ck_assert_int_eq(dlen, (long)image_png_len);
	ck_assert(memcmp(bin, image_png, image_png_len) == 0);
	ck_assert(memcmp(bin, sig, sizeof(sig)) == 0);
	free(b64);
	free(bin);
}
END_TEST

/* The embedded image is a real PNG of a sensible size. */
START_TEST(test_message_image_is_png)
{
	static const unsigned char sig[8] = {
		0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'
	};

	ck_assert_uint_ge(image_png_len, 20 * 1024);
	ck_assert_uint_le(image_png_len, 60 * 1024);
	ck_assert(memcmp(image_png, sig, sizeof(sig)) == 0);
	ck_assert(memcmp(image_png + 12, "IHDR", 4) == 0);
	ck_assert(memcmp(image_png + image_png_len - 8, "IEND", 4) == 0);
}
END_TEST

Suite *
message_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("message");

	tc = tcase_create("format");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_message_lines_end_crlf);
	tcase_add_test(tc, test_message_line_length);
	tcase_add_loop_test(tc, test_message_headers, 0,
	    (int)nitems_ck(header_cases));
	tcase_add_test(tc, test_message_date);
	tcase_add_test(tc, test_message_id_unique);
	tcase_add_test(tc, test_message_needs_sender_domain);
	suite_add_tcase(s, tc);

	tc = tcase_create("parts");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_message_two_parts);
	tcase_add_test(tc, test_message_text_part);
	tcase_add_test(tc, test_message_image_headers);
	tcase_add_test(tc, test_message_image_decodes);
	tcase_add_test(tc, test_message_image_is_png);
	suite_add_tcase(s, tc);

	return s;
}
