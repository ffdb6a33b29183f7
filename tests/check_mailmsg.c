/*
 * check_mailmsg.c: the sendmail-mode message preparation: line endings,
 * the header/body split, Bcc removal, -t recipients from address lists,
 * the headers added when missing, long lines, and reading standard input
 * up to a lone dot.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_relayq.h"
#include "mailmsg.h"

static const struct {
	const char	*in;
	int		 extract;
	const char	*out;
	const char	*rcpts;		/* joined by ',' */
} prep_cases[] = {
	/* Bare LF becomes CRLF; CRLF stays; a last line gets its CRLF. */
	{ "Subject: a\nTo: x@y.example\n\nbody\n", 0,
	    "Subject: a\r\nTo: x@y.example\r\n\r\nbody\r\n", "" },
	{ "Subject: a\r\n\r\nbody\r\nline 2", 0,
	    "Subject: a\r\n\r\nbody\r\nline 2\r\n", "" },
	/* Bcc (with its continuation) never leaves; -t takes all three. */
	{ "To: a@x.example\nBcc: b@x.example,\n c@x.example\nSubject: s\n"
	    "\nhi\n", 1,
	    "To: a@x.example\r\nSubject: s\r\n\r\nhi\r\n",
	    "a@x.example,b@x.example,c@x.example" },
	{ "bcc: b@x.example\nCC: Carol <c@x.example>\n\nhi\n", 1,
	    "CC: Carol <c@x.example>\r\n\r\nhi\r\n",
	    "b@x.example,c@x.example" },
	/* Without -t the header names no recipient, but Bcc still goes. */
	{ "To: a@x.example\nBcc: b@x.example\n\nhi\n", 0,
	    "To: a@x.example\r\n\r\nhi\r\n", "" },
	/* A continuation line is kept as it came. */
	{ "Subject: one\n\ttwo\nTo: a@x.example,\n  d@x.example\n\nhi\n", 1,
	    "Subject: one\r\n\ttwo\r\nTo: a@x.example,\r\n  d@x.example\r\n"
	    "\r\nhi\r\n", "a@x.example,d@x.example" },
	/* No header at all: an empty header, then the text as body. */
	{ "hello\nworld\n", 0, "\r\nhello\r\nworld\r\n", "" },
	/* A line that is no field ends the header; an empty line goes in. */
	{ "Subject: a\nnot a header\n", 0,
	    "Subject: a\r\n\r\nnot a header\r\n", "" },
	{ "Subject: a\nFrom foo bar\n", 0,
	    "Subject: a\r\n\r\nFrom foo bar\r\n", "" },
	/* Dot lines and a To: in the body are body. */
	{ "Subject: a\n\n.\n..\nTo: z@x.example\n", 1,
	    "Subject: a\r\n\r\n.\r\n..\r\nTo: z@x.example\r\n", "" },
	/* Recipients appear once. */
	{ "To: a@x.example, A@X.EXAMPLE\nCc: a@x.example\n\n", 1,
	    "To: a@x.example, A@X.EXAMPLE\r\nCc: a@x.example\r\n\r\n",
	    "a@x.example" },
	{ "", 0, "\r\n", "" },
};

/* Join m's recipients with ','. */
static void
join_rcpts(const struct mailmsg *m, char *buf, size_t len)
{
	size_t	 i;

	buf[0] = '\0';
	for (i = 0; i < m->nrcpt; i++) {
		if (i > 0)
			strncat(buf, ",", len - strlen(buf) - 1);
		strncat(buf, m->rcpt[i], len - strlen(buf) - 1);
	}
}

/* The prepared bytes and -t recipients, exactly. */
START_TEST(test_mailmsg_prepare)
{
	struct mailmsg_opts	 o;
	struct mailmsg		 m;
	char			 err[256] = "", rcpts[512];

	memset(&o, 0, sizeof(o));
	o.extract = prep_cases[_i].extract;
	mailmsg_init(&m);
	ck_assert_msg(mailmsg_prepare(&m, prep_cases[_i].in,
	    strlen(prep_cases[_i].in), &o, err, sizeof(err)) == 0,
	    "case %d: %s", _i, err);
	ck_assert_uint_eq(m.len, strlen(prep_cases[_i].out));
	ck_assert_msg(memcmp(m.buf, prep_cases[_i].out, m.len) == 0,
	    "case %d: got [%.*s]", _i, (int)m.len, m.buf);
	join_rcpts(&m, rcpts, sizeof(rcpts));
	ck_assert_str_eq(rcpts, prep_cases[_i].rcpts);
	ck_assert_uint_eq(m.nsplit, 0);
	mailmsg_free(&m);
}
END_TEST

static const struct {
	const char	*list;
	const char	*local;
	const char	*want;		/* joined by ','; NULL: refused */
	const char	*err;
} addr_cases[] = {
	{ "a@x.example", NULL, "a@x.example", NULL },
	{ "Alice <a@x.example>, b@y.example", NULL,
	    "a@x.example,b@y.example", NULL },
	{ "\"Doe, John\" <j@x.example>", NULL, "j@x.example", NULL },
	{ "a@x.example (a comment, with a comma)", NULL, "a@x.example", NULL },
	{ "(c) <a@x.example> (d (nested))", NULL, "a@x.example", NULL },
	{ "\"quoted \\\" <x@evil.example>\" <a@x.example>", NULL,
	    "a@x.example", NULL },
	{ "undisclosed-recipients:;", NULL, "", NULL },
	{ "team: a@x.example, b@y.example; c@z.example", NULL,
	    "a@x.example,b@y.example,c@z.example", NULL },
	{ "<@route.example:a@x.example>", NULL, "a@x.example", NULL },
	{ "a@x.example,,b@y.example,", NULL, "a@x.example,b@y.example", NULL },
	{ "  a@x.example  ", NULL, "a@x.example", NULL },
	{ "root", "ops@gmail.com", "ops@gmail.com", NULL },
	{ "root, a@x.example", "ops@gmail.com", "ops@gmail.com,a@x.example",
	    NULL },
	{ "root", NULL, NULL, "has no domain" },
	{ "Alice <a@x.example", NULL, NULL, "unterminated <address>" },
	{ "\"unterminated <a@x.example>", NULL, NULL,
	    "unterminated quoted string" },
	{ "(open <a@x.example>", NULL, NULL, "unterminated comment" },
	{ "foo bar@x.example", NULL, NULL, "cannot read an address" },
	{ "<>", NULL, NULL, "empty address" },
	{ "a@@x.example", NULL, NULL, "invalid recipient address" },
};

/* RFC 5322 address lists: names, comments, groups, routes skipped. */
START_TEST(test_mailmsg_addresses)
{
	struct mailmsg	 m;
	char		 err[512] = "", got[512];
	int		 rc;

	mailmsg_init(&m);
	rc = mailmsg_add_list(&m, addr_cases[_i].list, addr_cases[_i].local,
	    err, sizeof(err));
	if (addr_cases[_i].want == NULL) {
		ck_assert_msg(rc == -1, "case %d accepted", _i);
		ck_assert_msg(strstr(err, addr_cases[_i].err) != NULL,
		    "case %d: %s", _i, err);
	} else {
		ck_assert_msg(rc == 0, "case %d: %s", _i, err);
		join_rcpts(&m, got, sizeof(got));
		ck_assert_str_eq(got, addr_cases[_i].want);
	}
	mailmsg_free(&m);
}
END_TEST

/* Missing From, Date and Message-ID are added at the header's end. */
START_TEST(test_mailmsg_add_headers)
{
	static const char	 in[] = "Subject: hi\n\nbody\n";
	struct mailmsg_opts	 o;
	struct mailmsg		 m;
	char			 err[256] = "", *text;

	memset(&o, 0, sizeof(o));
	o.add_headers = true;
	o.sender = "cron@host.example";
	o.fullname = "Cron \"Daemon\"";
	o.now = 1795705294;
	mailmsg_init(&m);
	ck_assert_int_eq(mailmsg_prepare(&m, in, strlen(in), &o, err,
	    sizeof(err)), 0);
	text = strndup(m.buf, m.len);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(strncmp(text, "Subject: hi\r\nFrom: \"Cron \\\"Daemon\\\"\" "
	    "<cron@host.example>\r\nDate: ", 64) == 0, "%s", text);
	ck_assert_ptr_nonnull(strstr(text, "\r\nMessage-ID: <"));
	ck_assert_ptr_nonnull(strstr(text, "@host.example>\r\n\r\nbody\r\n"));
	ck_assert_ptr_nonnull(strstr(text, " 2026 "));
	free(text);

	/* Without -F: the bare address. */
	o.fullname = NULL;
	ck_assert_int_eq(mailmsg_prepare(&m, in, strlen(in), &o, err,
	    sizeof(err)), 0);
	ck_assert_ptr_nonnull(memmem(m.buf, m.len,
	    "\r\nFrom: cron@host.example\r\n", 27));
	mailmsg_free(&m);
}
END_TEST

/* Present headers (any case) are not added again. */
START_TEST(test_mailmsg_keeps_headers)
{
	static const char	 in[] = "from: a@x.example\nDATE: Thu, 1 Jan "
				    "2026 00:00:00 +0000\nmessage-id: <1@x>\n"
				    "\nbody\n";
	struct mailmsg_opts	 o;
	struct mailmsg		 m;
	char			 err[256] = "";

	memset(&o, 0, sizeof(o));
	o.add_headers = true;
	o.sender = "cron@host.example";
	o.now = 1795705294;
	mailmsg_init(&m);
	ck_assert_int_eq(mailmsg_prepare(&m, in, strlen(in), &o, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(m.len, strlen(in) + 5);	/* 5 LF -> CRLF */
	ck_assert_ptr_null(memmem(m.buf, m.len, "cron@", 5));
	mailmsg_free(&m);
}
END_TEST

/* Body lines over 998 octets are split, never inside a UTF-8 character. */
START_TEST(test_mailmsg_long_lines)
{
	struct mailmsg_opts	 o;
	struct mailmsg		 m;
	char			 in[4000], err[256] = "";
	size_t			 n;

	memset(&o, 0, sizeof(o));
	n = (size_t)snprintf(in, sizeof(in), "Subject: long\n\n");
	memset(in + n, 'a', 2500);
	n += 2500;
	in[n++] = '\n';
	mailmsg_init(&m);
	ck_assert_int_eq(mailmsg_prepare(&m, in, n, &o, err, sizeof(err)), 0);
	ck_assert_uint_eq(m.nsplit, 1);
	/* "Subject: long\r\n\r\n" then 998 + CRLF, 998 + CRLF, 504 + CRLF. */
	ck_assert_uint_eq(m.len, 17 + 2500 + 6);
	ck_assert_mem_eq(m.buf + 17 + 998, "\r\na", 3);
	ck_assert_mem_eq(m.buf + 17 + 998 + 2 + 998, "\r\na", 3);

	/* 997 octets then "é": the split comes before the é. */
	n = (size_t)snprintf(in, sizeof(in), "Subject: long\n\n");
	memset(in + n, 'b', 997);
	n += 997;
	memcpy(in + n, "\xc3\xa9xyz\n", 6);
	n += 6;
	ck_assert_int_eq(mailmsg_prepare(&m, in, n, &o, err, sizeof(err)), 0);
	ck_assert_mem_eq(m.buf + 17 + 997, "\r\n\xc3\xa9xyz\r\n", 9);

	/* A header line that long is refused. */
	memset(in, 'c', 1200);
	memcpy(in, "Subject: ", 9);
	memcpy(in + 1200, "\n\nbody\n", 7);
	ck_assert_int_eq(mailmsg_prepare(&m, in, 1207, &o, err, sizeof(err)),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "header line longer than 998"));
	mailmsg_free(&m);
}
END_TEST

static const struct {
	const char	*in;
	int		 dot_ends;
	const char	*want;
} read_cases[] = {
	{ "a\n.\nb\n",		1, "a\n" },
	{ "a\n.\nb\n",		0, "a\n.\nb\n" },
	{ "a\r\n.\r\nb\r\n",	1, "a\r\n" },
	{ "a\n..\nb\n",		1, "a\n..\nb\n" },
	{ "a\n. \nb\n",		1, "a\n. \nb\n" },
	{ "a\n.",		1, "a\n" },
	{ ".\n",		1, "" },
	{ "no newline",		1, "no newline" },
	{ "",			1, "" },
};

/* Standard input ends at EOF, or (without -i) at a line ".". */
START_TEST(test_mailmsg_read)
{
	char	*buf;
	size_t	 len;
	int	 p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], read_cases[_i].in,
	    strlen(read_cases[_i].in)), (ssize_t)strlen(read_cases[_i].in));
	close(p[1]);
	ck_assert_int_eq(mailmsg_read(p[0], read_cases[_i].dot_ends, &buf,
	    &len), 0);
	close(p[0]);
	ck_assert_uint_eq(len, strlen(read_cases[_i].want));
	ck_assert_str_eq(buf, read_cases[_i].want);
	free(buf);
}
END_TEST

Suite *
mailmsg_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("mailmsg");
	tc = tcase_create("prepare");
	tcase_add_loop_test(tc, test_mailmsg_prepare, 0,
	    (int)nitems_ck(prep_cases));
	tcase_add_test(tc, test_mailmsg_add_headers);
	tcase_add_test(tc, test_mailmsg_keeps_headers);
	tcase_add_test(tc, test_mailmsg_long_lines);
	suite_add_tcase(s, tc);
	tc = tcase_create("addresses");
	tcase_add_loop_test(tc, test_mailmsg_addresses, 0,
	    (int)nitems_ck(addr_cases));
	suite_add_tcase(s, tc);
	tc = tcase_create("read");
	tcase_add_loop_test(tc, test_mailmsg_read, 0,
	    (int)nitems_ck(read_cases));
	suite_add_tcase(s, tc);
	return s;
}
