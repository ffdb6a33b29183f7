/*
 * check_mime.c: the message builder, checked by parsing its output back:
 * line shape, header fields, the boundary, each part's headers and body.
 */
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base64.h"
#include "check_relayq.h"
#include "mime.h"

#define DATE_RE	"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} " \
		"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) " \
		"[0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [+-][0-9]{4}$"
#define MSGID_RE "^<[0-9]{14}\\.[0-9a-f]{24}@[A-Za-z0-9.-]+>$"

static const char mime_text[] =
    "Hello,\n\nthis is relayq's test message.\nA line\r\nand a bare CR\rend.\n";
static const char mime_text_crlf[] =
    "Hello,\r\n\r\nthis is relayq's test message.\r\nA line\r\n"
    "and a bare CR\r\nend.\r\n";

/* One parsed body part. */
struct part {
	char	 headers[1024];		/* unfolded, each ending in "\n" */
	const char *body;		/* the bytes up to the next delimiter */
	size_t	 bodylen;
};

/* The parsed message. */
struct msg {
	char		 headers[4096];
	char		 boundary[MIME_BOUNDARY_MAX];
	struct part	 parts[4];
	size_t		 nparts;
};

/* True when s matches the extended regular expression re. */
static bool
matches(const char *re, const char *s)
{
	regex_t	 r;
	int	 rc;

	ck_assert_int_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	rc = regexec(&r, s, 0, NULL, 0);
	regfree(&r);
	return rc == 0;
}

/* Every line ends in CRLF, has no bare CR or LF and is at most 78 long. */
static void
check_lines(const char *m, size_t len)
{
	size_t	 i, col = 0, line = 1;

	ck_assert_uint_gt(len, 2);
	ck_assert_msg(m[len - 2] == '\r' && m[len - 1] == '\n',
	    "no final CRLF");
	for (i = 0; i < len; i++) {
		if (m[i] == '\r') {
			ck_assert_msg(i + 1 < len && m[i + 1] == '\n',
			    "bare CR on line %zu", line);
			ck_assert_msg(col <= 78, "line %zu has %zu columns",
			    line, col);
			i++;
			col = 0;
			line++;
			continue;
		}
		ck_assert_msg(m[i] != '\n', "bare LF on line %zu", line);
		col++;
	}
}

/*
 * Copy a header block (CRLF lines, ended by an empty line) into out,
 * unfolded, with "\n" line ends; return the position after the blank line.
 */
static size_t
parse_headers(const char *m, size_t len, size_t off, char *out, size_t outlen)
{
	size_t	 o = 0;

	while (off + 1 < len && !(m[off] == '\r' && m[off + 1] == '\n')) {
		while (m[off] != '\r') {
			ck_assert_uint_lt(o + 2, outlen);
			out[o++] = m[off++];
		}
		off += 2;
		/* A continuation line starts with white space. */
		if (m[off] != ' ' && m[off] != '\t')
			out[o++] = '\n';
	}
	out[o] = '\0';
	return off + 2;
}

/* The value of header name in an unfolded block, copied into out. */
static bool
header_value(const char *headers, const char *name, char *out, size_t outlen)
{
	const char	*p = headers, *eol;
	size_t		 n = strlen(name);

	for (; *p != '\0'; p = eol + 1) {
		eol = strchr(p, '\n');
		ck_assert_ptr_nonnull(eol);
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			p += n + 1;
			while (*p == ' ')
				p++;
			ck_assert_uint_lt((size_t)(eol - p), outlen);
			memcpy(out, p, (size_t)(eol - p));
			out[eol - p] = '\0';
			return true;
		}
	}
	return false;
}

/* Split the message into headers and parts; fail the test on bad shape. */
static void
parse_msg(const char *m, size_t len, struct msg *msg)
{
	char		 ct[256], delim[MIME_BOUNDARY_MAX + 8];
	char		 close[MIME_BOUNDARY_MAX + 8];
	const char	*b, *q, *next;
	size_t		 off, dlen;

	memset(msg, 0, sizeof(*msg));
	check_lines(m, len);
	off = parse_headers(m, len, 0, msg->headers, sizeof(msg->headers));
	ck_assert(header_value(msg->headers, "Content-Type", ct, sizeof(ct)));
	ck_assert_msg(strncmp(ct, "multipart/mixed;", 16) == 0, "%s", ct);
	ck_assert_ptr_nonnull(b = strstr(ct, "boundary=\""));
	b += strlen("boundary=\"");
	ck_assert_ptr_nonnull(q = strchr(b, '"'));
	ck_assert_uint_gt((size_t)(q - b), 0);
	ck_assert_uint_le((size_t)(q - b), 70);
	memcpy(msg->boundary, b, (size_t)(q - b));
	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", msg->boundary);
	snprintf(close, sizeof(close), "\r\n--%s--\r\n", msg->boundary);
	dlen = strlen(delim);

	/* The preamble ends where the first delimiter begins. */
	ck_assert_ptr_nonnull(next = memmem(m + off - 2, len - off + 2, delim,
	    dlen));
	for (;;) {
		struct part	*p;
		const char	*start = next + dlen, *end;

		ck_assert_uint_lt(msg->nparts, nitems_ck(msg->parts));
		p = &msg->parts[msg->nparts++];
		off = parse_headers(m, len, (size_t)(start - m), p->headers,
		    sizeof(p->headers));
		/* The body ends at the CRLF that starts the next delimiter. */
		next = memmem(m + off - 2, len - off + 2, delim, dlen);
		end = memmem(m + off - 2, len - off + 2, close, strlen(close));
		ck_assert_ptr_nonnull(end);
		if (next == NULL || next > end) {
			p->body = m + off;
			p->bodylen = (size_t)(end - (m + off)) + 2;
			/* Nothing but the closing delimiter may follow. */
			ck_assert_ptr_eq(end + strlen(close), m + len);
			break;
		}
		p->body = m + off;
		p->bodylen = (size_t)(next - (m + off)) + 2;
	}
}

/* Decode a base64 body of 76-column lines, checking every line length. */
static unsigned char *
decode_b64_body(const char *body, size_t len, size_t *outlen)
{
	unsigned char	*out;
	const char	*line, *eol;
	size_t		 o = 0;
	long		 n;

	out = malloc(len);
	ck_assert_ptr_nonnull(out);
	for (line = body; line < body + len; line = eol + 2) {
		eol = memmem(line, (size_t)(body + len - line), "\r\n", 2);
		ck_assert_ptr_nonnull(eol);
		if (eol + 2 < body + len)
			ck_assert_msg(eol - line == 76, "base64 line of %td",
			    eol - line);
		else
			ck_assert_msg(eol - line > 0 && eol - line <= 76,
			    "last base64 line of %td", eol - line);
		n = base64_decode(line, (size_t)(eol - line), out + o, len - o);
		ck_assert_int_ge(n, 0);
		o += (size_t)n;
	}
	*outlen = o;
	return out;
}

/* Test bytes for the "image" part: a PNG signature, then noise. */
static void
fill_image(unsigned char *img, size_t len)
{
	static const unsigned char	 sig[] = {
		0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'
	};
	unsigned int			 x = 12345;
	size_t				 i;

	for (i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		img[i] = (unsigned char)(x >> 16);
	}
	memcpy(img, sig, len < sizeof(sig) ? len : sizeof(sig));
}

/* Build a text + image message with the given subject. */
static char *
build(const char *subject, const unsigned char *img, size_t imglen,
    size_t *len)
{
	struct mime_header	 h = {
		.from = "Sender <sender@example.com>",
		.to = "rcpt@example.org",
		.subject = subject,
		.date = 1795706494,
		.msgid_domain = "relayq.example",
	};
	struct mime_part	 parts[2] = {
		{ "text/plain; charset=utf-8", NULL, NULL, mime_text,
		    sizeof(mime_text) - 1, 0 },
		{ "image/png", "attachment", "image.png", img, imglen, 1 },
	};

	return mime_build(&h, parts, 2, len);
}

/* Image sizes: empty, one byte, around a line (57), and larger. */
static const size_t image_lens[] = { 0, 1, 56, 57, 58, 5000, 5016 };

START_TEST(test_mime_build_parse_back)
{
	struct msg	 msg;
	unsigned char	*img, *dec;
	char		*m, v[256];
	size_t		 len, imglen = image_lens[_i], declen;

	img = malloc(imglen + 1);
	ck_assert_ptr_nonnull(img);
	fill_image(img, imglen);
	m = build("Test message", img, imglen, &len);
	ck_assert_ptr_nonnull(m);
	parse_msg(m, len, &msg);

	ck_assert(header_value(msg.headers, "From", v, sizeof(v)));
	ck_assert_str_eq(v, "Sender <sender@example.com>");
	ck_assert(header_value(msg.headers, "To", v, sizeof(v)));
	ck_assert_str_eq(v, "rcpt@example.org");
	ck_assert(header_value(msg.headers, "Subject", v, sizeof(v)));
	ck_assert_str_eq(v, "Test message");
	ck_assert(header_value(msg.headers, "MIME-Version", v, sizeof(v)));
	ck_assert_str_eq(v, "1.0");
	ck_assert(header_value(msg.headers, "Date", v, sizeof(v)));
	ck_assert_msg(matches(DATE_RE, v), "Date: %s", v);
	ck_assert(header_value(msg.headers, "Message-ID", v, sizeof(v)));
	ck_assert_msg(matches(MSGID_RE, v), "Message-ID: %s", v);
	ck_assert_ptr_nonnull(strstr(v, "@relayq.example>"));

	ck_assert_uint_eq(msg.nparts, 2);
	ck_assert(header_value(msg.parts[0].headers, "Content-Type", v,
	    sizeof(v)));
	ck_assert_str_eq(v, "text/plain; charset=utf-8");
	ck_assert(header_value(msg.parts[0].headers,
	    "Content-Transfer-Encoding", v, sizeof(v)));
	ck_assert_str_eq(v, "7bit");
	ck_assert(!header_value(msg.parts[0].headers, "Content-Disposition",
	    v, sizeof(v)));
	ck_assert_uint_eq(msg.parts[0].bodylen, sizeof(mime_text_crlf) - 1);
	ck_assert_mem_eq(msg.parts[0].body, mime_text_crlf,
	    msg.parts[0].bodylen);

	ck_assert(header_value(msg.parts[1].headers, "Content-Type", v,
	    sizeof(v)));
	ck_assert_str_eq(v, "image/png");
	ck_assert(header_value(msg.parts[1].headers,
	    "Content-Transfer-Encoding", v, sizeof(v)));
	ck_assert_str_eq(v, "base64");
	ck_assert(header_value(msg.parts[1].headers, "Content-Disposition",
	    v, sizeof(v)));
	ck_assert_str_eq(v, "attachment; filename=\"image.png\"");
	dec = decode_b64_body(msg.parts[1].body, msg.parts[1].bodylen,
	    &declen);
	ck_assert_uint_eq(declen, imglen);
	ck_assert_mem_eq(dec, img, imglen);

	free(dec);
	free(img);
	free(m);
}
END_TEST

START_TEST(test_mime_8bit_text)
{
	static const char	 txt[] = "Gr\xc3\xbc\xc3\x9f" "e\n";
	struct mime_header	 h = { "a@example.com", "b@example.com", "x",
	    1795706494, NULL };
	struct mime_part	 p = { NULL, "inline", NULL, txt,
	    sizeof(txt) - 1, 0 };
	struct msg		 msg;
	char			*m, v[256];
	size_t			 len;

	ck_assert_ptr_nonnull(m = mime_build(&h, &p, 1, &len));
	parse_msg(m, len, &msg);
	ck_assert_uint_eq(msg.nparts, 1);
	ck_assert(header_value(msg.parts[0].headers,
	    "Content-Transfer-Encoding", v, sizeof(v)));
	ck_assert_str_eq(v, "8bit");
	ck_assert(header_value(msg.parts[0].headers, "Content-Type", v,
	    sizeof(v)));
	ck_assert_str_eq(v, "text/plain; charset=utf-8");
	ck_assert(header_value(msg.parts[0].headers, "Content-Disposition",
	    v, sizeof(v)));
	ck_assert_str_eq(v, "inline");
	ck_assert_mem_eq(msg.parts[0].body, "Gr\xc3\xbc\xc3\x9f" "e\r\n",
	    msg.parts[0].bodylen);
	/* Without msgid_domain the From domain is used. */
	ck_assert(header_value(msg.headers, "Message-ID", v, sizeof(v)));
	ck_assert_msg(matches(MSGID_RE, v), "%s", v);
	ck_assert_ptr_nonnull(strstr(v, "@example.com>"));
	free(m);
}
END_TEST

/* Subjects and whether they must come out as encoded words. */
static const struct {
	const char	*subject;
	bool		 encoded;
} subject_cases[] = {
	{ "Plain ASCII subject",					false },
	{ "",								false },
	{ "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln",			true },
	{ "\xe2\x82\xac",						true },
	{ "\xf0\x9f\x93\xa8 mail with an emoji and a long tail of text "
	  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	  "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac",
	  true },
	{ "An ASCII subject that is far too long to fit on one line of "
	  "seventy-eight columns",					true },
};

/* Decode "=?UTF-8?B?...?=" words separated by spaces; each whole UTF-8. */
static void
decode_subject(const char *v, char *out, size_t outlen)
{
	const char	*p = v, *end;
	size_t		 o = 0;
	long		 n;

	while (*p != '\0') {
		ck_assert_msg(strncmp(p, "=?UTF-8?B?", 10) == 0, "%s", p);
		p += 10;
		ck_assert_ptr_nonnull(end = strstr(p, "?="));
		ck_assert_uint_le((size_t)(end - p) + 12, 75);
		n = base64_decode(p, (size_t)(end - p), out + o, outlen - o);
		ck_assert_int_gt(n, 0);
		/* No word starts inside a UTF-8 sequence. */
		ck_assert_int_ne((unsigned char)out[o] & 0xc0, 0x80);
		o += (size_t)n;
		p = end + 2;
		while (*p == ' ')
			p++;
	}
	out[o] = '\0';
}

START_TEST(test_mime_subject)
{
	struct msg	 msg;
	unsigned char	 img[4] = { 1, 2, 3, 4 };
	char		*m, v[512], dec[512];
	size_t		 len;

	m = build(subject_cases[_i].subject, img, sizeof(img), &len);
	ck_assert_ptr_nonnull(m);
	parse_msg(m, len, &msg);
	ck_assert(header_value(msg.headers, "Subject", v, sizeof(v)));
	if (subject_cases[_i].encoded) {
		decode_subject(v, dec, sizeof(dec));
		ck_assert_str_eq(dec, subject_cases[_i].subject);
	} else
		ck_assert_str_eq(v, subject_cases[_i].subject);
	free(m);
}
END_TEST

/* Header values that would inject lines, and other unsendable input. */
START_TEST(test_mime_refuses)
{
	unsigned char		 img[3] = { 0, 1, 2 };
	struct mime_header	 h;
	struct mime_part	 p[2];
	size_t			 len = 777;
	char			*m;

	h = (struct mime_header){ "a@example.com", "b@example.com", "s", 1,
	    "example.com" };
	p[0] = (struct mime_part){ "text/plain", NULL, NULL, "hi\n", 3, 0 };
	p[1] = (struct mime_part){ "image/png", "inline", "i.png", img, 3, 1 };
	ck_assert_ptr_nonnull(m = mime_build(&h, p, 2, &len));
	free(m);

	switch (_i) {
	case 0: h.from = "a@example.com\r\nBcc: victim@example.net"; break;
	case 1: h.to = "b@example.com\nBcc: x@y"; break;
	case 2: h.subject = "hi\r\nX-Injected: 1"; break;
	case 3: h.subject = "caf\xc3\xa9\rX: 1"; break;
	case 4: p[1].content_type = "image/png\r\nX: 1"; break;
	case 5: p[1].filename = "a\r\n.png"; break;
	case 6: p[1].filename = "a\".png"; break;
	case 7: p[1].disposition = "inline\n"; break;
	case 8: h.msgid_domain = "exa mple.com"; break;
	case 9: h.msgid_domain = "x>\r\nY: z"; break;
	case 10: p[0].data = "a\0b"; break;	/* NUL in a text part */
	case 11: h.from = NULL; break;
	default: ck_abort();
	}
	len = 777;
	ck_assert_msg(mime_build(&h, p, 2, &len) == NULL, "case %d built", _i);
	ck_assert_uint_eq(len, 777);
}
END_TEST

START_TEST(test_mime_text_line_too_long)
{
	struct mime_header	 h = { "a@example.com", "b@example.com", "s", 1,
	    "example.com" };
	struct mime_part	 p = { NULL, NULL, NULL, NULL, 0, 0 };
	char			 txt[1200];
	size_t			 len;
	char			*m;

	memset(txt, 'x', sizeof(txt));
	txt[998] = '\n';
	p.data = txt;
	p.len = 999;
	ck_assert_ptr_nonnull(m = mime_build(&h, &p, 1, &len));
	free(m);
	p.len = sizeof(txt);	/* a second line of 201 is fine... */
	ck_assert_ptr_nonnull(m = mime_build(&h, &p, 1, &len));
	free(m);
	txt[998] = 'x';		/* ...but one line of 1200 is not. */
	ck_assert_ptr_null(mime_build(&h, &p, 1, &len));
}
END_TEST

static const struct {
	const char	*tz;
	const char	*want;
} date_cases[] = {
	{ "UTC0",		"Thu, 26 Nov 2026 15:21:34 +0000" },
	{ "EST5",		"Thu, 26 Nov 2026 10:21:34 -0500" },
	{ "IST-5:30",		"Thu, 26 Nov 2026 20:51:34 +0530" },
	{ "XXX-12",		"Fri, 27 Nov 2026 03:21:34 +1200" },
};

START_TEST(test_mime_date)
{
	char	 buf[MIME_DATE_MAX];

	/* CK_FORK: the TZ change stays in this test's process. */
	ck_assert_int_eq(setenv("TZ", date_cases[_i].tz, 1), 0);
	tzset();
	ck_assert_int_eq(mime_date(1795706494, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, date_cases[_i].want);
	ck_assert_msg(matches(DATE_RE, buf), "%s", buf);
	ck_assert_int_eq(mime_date(1795706494, buf, 20), -1);
}
END_TEST

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

START_TEST(test_mime_message_id_unique)
{
	enum { N = 2000 };
	char	(*ids)[MIME_MSGID_MAX];
	size_t	 i;

	ids = calloc(N, sizeof(*ids));
	ck_assert_ptr_nonnull(ids);
	for (i = 0; i < N; i++) {
		ck_assert_int_eq(mime_message_id("example.com", ids[i],
		    sizeof(ids[i])), 0);
		ck_assert_msg(matches(MSGID_RE, ids[i]), "%s", ids[i]);
	}
	qsort(ids, N, sizeof(*ids), cmp_str);
	for (i = 1; i < N; i++)
		ck_assert_str_ne(ids[i - 1], ids[i]);
	free(ids);
}
END_TEST

START_TEST(test_mime_message_id_errors)
{
	char	 buf[MIME_MSGID_MAX];

	ck_assert_int_eq(mime_message_id(NULL, buf, sizeof(buf)), -1);
	ck_assert_int_eq(mime_message_id("", buf, sizeof(buf)), -1);
	ck_assert_int_eq(mime_message_id("a>b", buf, sizeof(buf)), -1);
	ck_assert_int_eq(mime_message_id("a\r\nb", buf, sizeof(buf)), -1);
	ck_assert_int_eq(mime_message_id("example.com", buf, 30), -1);
}
END_TEST

START_TEST(test_mime_boundary)
{
	char	 a[MIME_BOUNDARY_MAX], b[MIME_BOUNDARY_MAX];
	size_t	 i;

	ck_assert_int_eq(mime_boundary(a, sizeof(a)), 0);
	ck_assert_int_eq(mime_boundary(b, sizeof(b)), 0);
	ck_assert_str_ne(a, b);
	ck_assert_uint_le(strlen(a), 70);
	/* RFC 2046 bchars only, and something base64 never produces. */
	for (i = 0; a[i] != '\0'; i++)
		ck_assert_ptr_nonnull(strchr("0123456789"
		    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "'()+_,-./:=?", a[i]));
	ck_assert(strchr(a, '_') != NULL || strchr(a, '.') != NULL);
	ck_assert_int_eq(mime_boundary(a, 10), -1);
}
END_TEST

Suite *
mime_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("mime");

	tc = tcase_create("build");
	tcase_add_loop_test(tc, test_mime_build_parse_back, 0,
	    (int)nitems_ck(image_lens));
	tcase_add_test(tc, test_mime_8bit_text);
	tcase_add_loop_test(tc, test_mime_subject, 0,
	    (int)nitems_ck(subject_cases));
	tcase_add_test(tc, test_mime_text_line_too_long);
	suite_add_tcase(s, tc);

	tc = tcase_create("fields");
	tcase_add_loop_test(tc, test_mime_date, 0, (int)nitems_ck(date_cases));
	tcase_add_test(tc, test_mime_message_id_unique);
	tcase_add_test(tc, test_mime_message_id_errors);
	tcase_add_test(tc, test_mime_boundary);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_mime_refuses, 0, 12);
	suite_add_tcase(s, tc);

	return s;
}
