/*
 * check_smtp_proto.c: command lines, ESMTP parameters, the reply
 * accumulator and the EHLO parser, driven by tables of real Gmail replies.
 */
#include <stdbool.h>
#include <string.h>

#include "check_relayq.h"
#include "smtp_proto.h"

#define GSMTP		"98e67ed59e1d1-3276f57b227sm30235195a91.6 - gsmtp"
#define MAXLINES	10

/* ---- command lines ---- */

static const struct {
	const char	*line;
	int		 ret;
	enum smtp_verb	 verb;
	const char	*arg;
} cmd_cases[] = {
	{ "MAIL FROM:<a@b> SIZE=10",	0, SMTP_VERB_MAIL, "<a@b> SIZE=10" },
	{ "mail from: <a@b>",		0, SMTP_VERB_MAIL, "<a@b>" },
	{ "MaIl FrOm:<A@B.Example>",	0, SMTP_VERB_MAIL, "<A@B.Example>" },
	{ "MAIL FROM:<>",		0, SMTP_VERB_MAIL, "<>" },
	{ "MAIL  FROM:<a@b>",		0, SMTP_VERB_MAIL, "<a@b>" },
	{ "RCPT TO:<x@y>",		0, SMTP_VERB_RCPT, "<x@y>" },
	{ "rcpt to:  <X@Y>",		0, SMTP_VERB_RCPT, "<X@Y>" },
	{ "MAILFROM:<a@b>",		0, SMTP_VERB_UNKNOWN, "" },
	{ "MAIL <a@b>",			-1, SMTP_VERB_MAIL, "" },
	{ "MAIL",			-1, SMTP_VERB_MAIL, "" },
	{ "MAIL FROM <a@b>",		-1, SMTP_VERB_MAIL, "" },
	{ "MAIL TO:<a@b>",		-1, SMTP_VERB_MAIL, "" },
	{ "RCPT FROM:<a@b>",		-1, SMTP_VERB_RCPT, "" },
	{ "RCPT",			-1, SMTP_VERB_RCPT, "" },
	{ "EHLO client.example",	0, SMTP_VERB_EHLO, "client.example" },
	{ "ehlo  Client.Example",	0, SMTP_VERB_EHLO, "Client.Example" },
	{ "HELO [192.0.2.1]",		0, SMTP_VERB_HELO, "[192.0.2.1]" },
	{ "HELO",			0, SMTP_VERB_HELO, "" },
	{ "DATA",			0, SMTP_VERB_DATA, "" },
	{ "data ",			0, SMTP_VERB_DATA, "" },
	{ "RSET",			0, SMTP_VERB_RSET, "" },
	{ "NOOP",			0, SMTP_VERB_NOOP, "" },
	{ "quit",			0, SMTP_VERB_QUIT, "" },
	{ "AUTH PLAIN AGFsaWNlAHNlY3JldA==", 0, SMTP_VERB_AUTH,
	    "PLAIN AGFsaWNlAHNlY3JldA==" },
	{ "auth login",			0, SMTP_VERB_AUTH, "login" },
	{ "ETRN example.com",		0, SMTP_VERB_ETRN, "example.com" },
	{ "VRFY bob",			0, SMTP_VERB_VRFY, "bob" },
	{ "HELP",			0, SMTP_VERB_HELP, "" },
	{ "StartTLS",			0, SMTP_VERB_STARTTLS, "" },
	{ "BDAT 100 LAST",		0, SMTP_VERB_BDAT, "100 LAST" },
	{ "NOOPX",			0, SMTP_VERB_UNKNOWN, "" },
	{ "HELLO x",			0, SMTP_VERB_UNKNOWN, "" },
	{ "EHLO\tx",			0, SMTP_VERB_UNKNOWN, "" },
	{ " EHLO x",			0, SMTP_VERB_UNKNOWN, "" },
	{ "",				0, SMTP_VERB_UNKNOWN, "" },
	{ "X",				0, SMTP_VERB_UNKNOWN, "" },
};

/* Each command line splits into the expected verb and argument. */
START_TEST(test_smtp_cmd_parse_table)
{
	struct smtp_cmd	 cmd;
	int		 ret;

	ret = smtp_cmd_parse(cmd_cases[_i].line, &cmd);
	ck_assert_msg(ret == cmd_cases[_i].ret, "\"%s\": ret %d, want %d",
	    cmd_cases[_i].line, ret, cmd_cases[_i].ret);
	ck_assert_msg(cmd.verb == cmd_cases[_i].verb,
	    "\"%s\": verb %s, want %s",
	    cmd_cases[_i].line, smtp_verb_name(cmd.verb),
	    smtp_verb_name(cmd_cases[_i].verb));
	ck_assert_msg(strcmp(cmd.arg, cmd_cases[_i].arg) == 0,
	    "\"%s\": arg \"%s\", want \"%s\"", cmd_cases[_i].line, cmd.arg,
	    cmd_cases[_i].arg);
}
END_TEST

/* Every verb has its upper-case name, and the name parses back. */
START_TEST(test_smtp_verb_name_round_trip)
{
	struct smtp_cmd	 cmd;
	enum smtp_verb	 v;
	const char	*name;

	ck_assert_str_eq(smtp_verb_name(SMTP_VERB_UNKNOWN), "UNKNOWN");
	ck_assert_str_eq(smtp_verb_name(SMTP_VERB_STARTTLS), "STARTTLS");
	for (v = SMTP_VERB_HELO; v <= SMTP_VERB_BDAT; v++) {
		name = smtp_verb_name(v);
		ck_assert_str_ne(name, "UNKNOWN");
		if (v == SMTP_VERB_MAIL || v == SMTP_VERB_RCPT)
			continue;
		ck_assert_int_eq(smtp_cmd_parse(name, &cmd), 0);
		ck_assert_msg(cmd.verb == v, "%s parsed as %s", name,
		    smtp_verb_name(cmd.verb));
	}
}
END_TEST

/* ---- ESMTP parameters ---- */

static const struct {
	const char	*params;
	const char	*key;
	size_t		 vallen;
	int		 ret;
	const char	*val;
} param_cases[] = {
	{ "SIZE=10",			"SIZE",	32, 1, "10" },
	{ "size=10 BODY=8BITMIME",	"BODY",	32, 1, "8BITMIME" },
	{ "SIZE=10 BODY=8BITMIME",	"body",	32, 1, "8BITMIME" },
	{ "BODY=8bitmime",		"BODY",	32, 1, "8bitmime" },
	{ "SMTPUTF8",			"SMTPUTF8", 32, 1, "" },
	{ "SIZE=10 SMTPUTF8",		"smtputf8", 32, 1, "" },
	{ "  SIZE=10  ",		"SIZE",	32, 1, "10" },
	{ "SIZE=1 SIZE=2",		"SIZE",	32, 1, "1" },
	{ "X-Y=1",			"X-Y",	32, 1, "1" },
	{ "AUTH=<>",			"AUTH",	32, 1, "<>" },
	{ "SIZE=123456",		"SIZE",	7, 1, "123456" },
	{ "SIZE=10",			"BODY",	32, 0, "" },
	{ "SIZEX=1",			"SIZE",	32, 0, "" },
	{ "",				"SIZE",	32, 0, "" },
	{ "SI ZE",			"SIZE",	32, 0, "" },
	{ "SIZE=123456",		"SIZE",	6, -1, "" },
	{ "SIZE=",			"SIZE",	32, -1, "" },
	{ "SIZE==1",			"SIZE",	32, -1, "" },
	{ "SIZE=a=b",			"SIZE",	32, -1, "" },
	{ "=10",			"SIZE",	32, -1, "" },
	{ "-X=1",			"X",	32, -1, "" },
	{ "SIZE=10 =x",			"SIZE",	32, -1, "" },
	{ "SIZE=1\t",			"SIZE",	32, -1, "" },
	{ "SIZE=1\r",			"SIZE",	32, -1, "" },
	{ "SIZE=1 BODY=\x80",		"SIZE",	32, -1, "" },
	{ "SIZE:1",			"SIZE",	32, -1, "" },
};

/* smtp_param_get finds, misses or rejects exactly as the table says. */
START_TEST(test_smtp_param_get_table)
{
	char	 val[32];
	int	 ret;

	memset(val, 'x', sizeof(val));
	ret = smtp_param_get(param_cases[_i].params, param_cases[_i].key, val,
	    param_cases[_i].vallen);
	ck_assert_msg(ret == param_cases[_i].ret, "\"%s\" %s: ret %d, want %d",
	    param_cases[_i].params, param_cases[_i].key, ret,
	    param_cases[_i].ret);
	if (ret == 1)
		ck_assert_msg(strcmp(val, param_cases[_i].val) == 0,
		    "\"%s\" %s: val \"%s\", want \"%s\"",
		    param_cases[_i].params, param_cases[_i].key, val,
		    param_cases[_i].val);
}
END_TEST

static const char *const param_known[] = { "SIZE", "BODY", "SMTPUTF8", NULL };

static const struct {
	const char	*params;
	bool		 known;
} known_cases[] = {
	{ "SIZE=1 BODY=8BITMIME",	true },
	{ "size=1 smtputf8",		true },
	{ "",				true },
	{ "   ",			true },
	{ "AUTH=<>",			false },
	{ "SIZE=1 RET=HDRS",		false },
	{ "SIZE=",			false },
	{ "SIZES=1",			false },
	{ "SIZE=1 =2",			false },
};

/* smtp_params_known accepts only well-formed, listed keywords. */
START_TEST(test_smtp_params_known_table)
{
	bool	 got;

	got = smtp_params_known(known_cases[_i].params, param_known);
	ck_assert_msg(got == known_cases[_i].known, "\"%s\": got %d, want %d",
	    known_cases[_i].params, got, known_cases[_i].known);
}
END_TEST

/* ---- replies ---- */

static const struct {
	const char		*lines[MAXLINES];
	enum smtp_reply_status	 status;	/* of the last line */
	int			 code;
	const char		*enh;
	size_t			 nlines;
	const char		*text;
	const char		*oneline;
} reply_cases[] = {
	{ { "250 2.0.0 OK  1757127926 " GSMTP }, SMTP_REPLY_DONE, 250, "2.0.0",
	    1, "2.0.0 OK  1757127926 " GSMTP,
	    "250 2.0.0 OK  1757127926 " GSMTP },
	{ { "250 2.0.0 OK 1457127926 y10sm963243lal.43 - gsmtp" },
	    SMTP_REPLY_DONE, 250, "2.0.0", 1,
	    "2.0.0 OK 1457127926 y10sm963243lal.43 - gsmtp",
	    "250 2.0.0 OK 1457127926 y10sm963243lal.43 - gsmtp" },
	{ { "535-5.7.8 Username and Password not accepted. For more "
	    "information, go to",
	    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials "
	    GSMTP }, SMTP_REPLY_DONE, 535, "5.7.8", 2,
	    "5.7.8 Username and Password not accepted. For more information, "
	    "go to\n5.7.8  https://support.google.com/mail/?p=BadCredentials "
	    GSMTP,
	    "535 5.7.8 Username and Password not accepted. For more "
	    "information, go to 5.7.8  "
	    "https://support.google.com/mail/?p=BadCredentials " GSMTP },
	{ { "535-5.7.8 Username and Password not accepted. Learn more at",
	    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials "
	    GSMTP }, SMTP_REPLY_DONE, 535, "5.7.8", 2,
	    "5.7.8 Username and Password not accepted. Learn more at\n"
	    "5.7.8  https://support.google.com/mail/?p=BadCredentials " GSMTP,
	    "535 5.7.8 Username and Password not accepted. Learn more at "
	    "5.7.8  https://support.google.com/mail/?p=BadCredentials "
	    GSMTP },
	{ { "334 " }, SMTP_REPLY_DONE, 334, "", 1, "", "334" },
	{ { "334 VXNlcm5hbWU6" }, SMTP_REPLY_DONE, 334, "", 1, "VXNlcm5hbWU6",
	    "334 VXNlcm5hbWU6" },
	{ { "354  Go ahead " GSMTP }, SMTP_REPLY_DONE, 354, "", 1,
	    " Go ahead " GSMTP, "354  Go ahead " GSMTP },
	{ { "220 smtp.gmail.com ESMTP " GSMTP }, SMTP_REPLY_DONE, 220, "", 1,
	    "smtp.gmail.com ESMTP " GSMTP, "220 smtp.gmail.com ESMTP " GSMTP },
	{ { "220 2.0.0 Ready to start TLS" }, SMTP_REPLY_DONE, 220, "2.0.0", 1,
	    "2.0.0 Ready to start TLS", "220 2.0.0 Ready to start TLS" },
	{ { "235 2.7.0 Accepted" }, SMTP_REPLY_DONE, 235, "2.7.0", 1,
	    "2.7.0 Accepted", "235 2.7.0 Accepted" },
	{ { "550-5.4.5 Daily user sending limit exceeded. For more "
	    "information on Gmail",
	    "550-5.4.5 sending limits go to",
	    "550 5.4.5  https://support.google.com/a/answer/166852 " GSMTP },
	    SMTP_REPLY_DONE, 550, "5.4.5", 3,
	    "5.4.5 Daily user sending limit exceeded. For more information on "
	    "Gmail\n5.4.5 sending limits go to\n5.4.5  "
	    "https://support.google.com/a/answer/166852 " GSMTP,
	    "550 5.4.5 Daily user sending limit exceeded. For more information "
	    "on Gmail 5.4.5 sending limits go to 5.4.5  "
	    "https://support.google.com/a/answer/166852 " GSMTP },
	{ { "421 4.3.0 Temporary System Problem.  Try again later (10). "
	    GSMTP }, SMTP_REPLY_DONE, 421, "4.3.0", 1,
	    "4.3.0 Temporary System Problem.  Try again later (10). " GSMTP,
	    "421 4.3.0 Temporary System Problem.  Try again later (10). "
	    GSMTP },
	{ { "534-5.7.14 <https://accounts.google.com/signin/continue?sarp=1",
	    "534-5.7.14 abc> Please log in via your web browser and",
	    "534-5.7.14 then try again.",
	    "534-5.7.14  Learn more at",
	    "534 5.7.14  https://support.google.com/mail/answer/78754 " GSMTP },
	    SMTP_REPLY_DONE, 534, "5.7.14", 5,
	    "5.7.14 <https://accounts.google.com/signin/continue?sarp=1\n"
	    "5.7.14 abc> Please log in via your web browser and\n"
	    "5.7.14 then try again.\n5.7.14  Learn more at\n"
	    "5.7.14  https://support.google.com/mail/answer/78754 " GSMTP,
	    "534 5.7.14 <https://accounts.google.com/signin/continue?sarp=1 "
	    "5.7.14 abc> Please log in via your web browser and "
	    "5.7.14 then try again. 5.7.14  Learn more at "
	    "5.7.14  https://support.google.com/mail/answer/78754 " GSMTP },
	{ { "250-smtp.gmail.com at your service, [203.0.113.5]",
	    "250-SIZE 35882577", "250 SMTPUTF8" }, SMTP_REPLY_DONE, 250, "", 3,
	    "smtp.gmail.com at your service, [203.0.113.5]\nSIZE 35882577\n"
	    "SMTPUTF8",
	    "250 smtp.gmail.com at your service, [203.0.113.5] SIZE 35882577 "
	    "SMTPUTF8" },
	{ { "250" }, SMTP_REPLY_DONE, 250, "", 1, "", "250" },
	{ { "250-", "250 " }, SMTP_REPLY_DONE, 250, "", 2, "\n", "250  " },
	{ { "451 4.4.2 Timeout - closing connection. " GSMTP },
	    SMTP_REPLY_DONE, 451, "4.4.2",
	    1, "4.4.2 Timeout - closing connection. " GSMTP,
	    "451 4.4.2 Timeout - closing connection. " GSMTP },
	/* Enhanced codes: matching class, 1-3 digit parts, first line only. */
	{ { "550 5.1.1" }, SMTP_REPLY_DONE, 550, "5.1.1", 1, "5.1.1",
	    "550 5.1.1" },
	{ { "550 5.123.456 x" }, SMTP_REPLY_DONE, 550, "5.123.456", 1,
	    "5.123.456 x", "550 5.123.456 x" },
	{ { "250 5.0.0 class mismatch" }, SMTP_REPLY_DONE, 250, "", 1,
	    "5.0.0 class mismatch", "250 5.0.0 class mismatch" },
	{ { "354 3.0.0 no class 3" }, SMTP_REPLY_DONE, 354, "", 1,
	    "3.0.0 no class 3", "354 3.0.0 no class 3" },
	{ { "550 5.1234.1 x" }, SMTP_REPLY_DONE, 550, "", 1, "5.1234.1 x",
	    "550 5.1234.1 x" },
	{ { "550 5.1.1234 x" }, SMTP_REPLY_DONE, 550, "", 1, "5.1.1234 x",
	    "550 5.1.1234 x" },
	{ { "550 5.1.1x" }, SMTP_REPLY_DONE, 550, "", 1, "5.1.1x",
	    "550 5.1.1x" },
	{ { "550 5.7 x" }, SMTP_REPLY_DONE, 550, "", 1, "5.7 x", "550 5.7 x" },
	{ { "550 5..1 x" }, SMTP_REPLY_DONE, 550, "", 1, "5..1 x",
	    "550 5..1 x" },
	{ { "550-No code here", "550 5.1.1 later" }, SMTP_REPLY_DONE, 550, "",
	    2, "No code here\n5.1.1 later", "550 No code here 5.1.1 later" },
	/* Control bytes survive in text but not in the one-line form. */
	{ { "250 a\tb\x01" "c\x7f" "d\x80" }, SMTP_REPLY_DONE, 250, "", 1,
	    "a\tb\x01" "c\x7f" "d\x80", "250 a?b?c?d\x80" },
};

static const struct {
	const char	*lines[MAXLINES];
} reply_bad_cases[] = {
	{ { "" } },
	{ { "25" } },
	{ { "2500 x" } },
	{ { "250_x" } },
	{ { "abc def" } },
	{ { " 250 x" } },
	{ { "150 x" } },
	{ { "650 x" } },
	{ { "099 x" } },
	{ { "260 x" } },
	{ { "25x x" } },
	{ { "250-a", "251 b" } },
	{ { "250-a", "250-b", "550 c" } },
	{ { "250-a", "250" "x" } },
};

/* Feed the lines of case i; all but the last must give MORE. */
static enum smtp_reply_status
reply_feed_case(struct smtp_reply *r, size_t i)
{
	enum smtp_reply_status	 st = SMTP_REPLY_ERROR;
	size_t			 n;

	smtp_reply_init(r);
	for (n = 0; n < MAXLINES && reply_cases[i].lines[n] != NULL; n++) {
		if (n > 0)
			ck_assert_msg(st == SMTP_REPLY_MORE,
			    "case %zu line %zu: want MORE, got %d", i, n, st);
		st = smtp_reply_feed(r, reply_cases[i].lines[n],
		    strlen(reply_cases[i].lines[n]));
	}
	return st;
}

/* Every table reply parses to the exact code, enhanced code and text. */
START_TEST(test_smtp_reply_table)
{
	struct smtp_reply	 r;
	enum smtp_reply_status	 st;
	char			 one[SMTP_REPLY_MAX + 8];
	size_t			 i = (size_t)_i;

	st = reply_feed_case(&r, i);
	ck_assert_msg(st == reply_cases[i].status, "\"%s\": status %d, want %d",
	    reply_cases[i].lines[0], st, reply_cases[i].status);
	if (st != SMTP_REPLY_DONE)
		return;
	ck_assert_int_eq(r.code, reply_cases[i].code);
	ck_assert_int_eq(smtp_reply_class(&r), reply_cases[i].code / 100);
	ck_assert_str_eq(r.enh, reply_cases[i].enh);
	ck_assert_uint_eq(r.nlines, reply_cases[i].nlines);
	ck_assert_str_eq(r.text, reply_cases[i].text);
	ck_assert_uint_eq(r.len, strlen(reply_cases[i].text));
	smtp_reply_oneline(&r, one, sizeof(one));
	ck_assert_str_eq(one, reply_cases[i].oneline);
}
END_TEST

/* Malformed lines and mixed codes: the last line gives ERROR. */
START_TEST(test_smtp_reply_bad_table)
{
	struct smtp_reply	 r;
	enum smtp_reply_status	 st = SMTP_REPLY_DONE;
	size_t			 n, i = (size_t)_i;

	smtp_reply_init(&r);
	for (n = 0; n < MAXLINES && reply_bad_cases[i].lines[n] != NULL; n++) {
		if (n > 0)
			ck_assert_msg(st == SMTP_REPLY_MORE,
			    "bad case %zu line %zu: want MORE, got %d", i, n,
			    st);
		st = smtp_reply_feed(&r, reply_bad_cases[i].lines[n],
		    strlen(reply_bad_cases[i].lines[n]));
	}
	ck_assert_msg(st == SMTP_REPLY_ERROR, "\"%s\": status %d, want ERROR",
	    reply_bad_cases[i].lines[n - 1], st);
}
END_TEST

/* Only len bytes are read: the line need not be NUL-terminated. */
START_TEST(test_smtp_reply_uses_len)
{
	struct smtp_reply	 r;
	const char		 buf[] = "250 OK\r\ngarbage";

	smtp_reply_init(&r);
	ck_assert_int_eq(smtp_reply_feed(&r, buf, 6), SMTP_REPLY_DONE);
	ck_assert_str_eq(r.text, "OK");
	ck_assert_uint_eq(r.len, 2);
	smtp_reply_init(&r);
	ck_assert_int_eq(smtp_reply_feed(&r, "250-OK", 3), SMTP_REPLY_DONE);
	ck_assert_str_eq(r.text, "");
}
END_TEST

/* A NUL inside the line is malformed, not a silent truncation. */
START_TEST(test_smtp_reply_rejects_nul)
{
	struct smtp_reply	 r;

	smtp_reply_init(&r);
	ck_assert_int_eq(smtp_reply_feed(&r, "250 a\0b", 7), SMTP_REPLY_ERROR);
}
END_TEST

/* A line of SMTP_REPLY_LINE_MAX-2 bytes fits; one more byte does not. */
START_TEST(test_smtp_reply_line_limit)
{
	struct smtp_reply	 r;
	char			 line[SMTP_REPLY_LINE_MAX];

	memset(line, 'a', sizeof(line));
	memcpy(line, "250 ", 4);
	smtp_reply_init(&r);
	ck_assert_int_eq(smtp_reply_feed(&r, line, SMTP_REPLY_LINE_MAX - 2),
	    SMTP_REPLY_DONE);
	ck_assert_uint_eq(r.len, SMTP_REPLY_LINE_MAX - 6);
	smtp_reply_init(&r);
	ck_assert_int_eq(smtp_reply_feed(&r, line, SMTP_REPLY_LINE_MAX - 1),
	    SMTP_REPLY_ERROR);
}
END_TEST

/*
 * Fill the text to exactly SMTP_REPLY_MAX-1 bytes (extra = 0) or one byte
 * more (extra = 1), and return the last line's status.
 */
static enum smtp_reply_status
reply_fill(struct smtp_reply *r, size_t extra)
{
	char	 line[SMTP_REPLY_LINE_MAX];
	size_t	 i, last;

	memset(line, 'b', sizeof(line));
	memcpy(line, "550-", 4);
	smtp_reply_init(r);
	/* 8 lines of 500 text bytes, joined by 7 '\n': 4007 bytes. */
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(smtp_reply_feed(r, line, 504),
		    SMTP_REPLY_MORE);
	ck_assert_uint_eq(r->len, 4007);
	last = SMTP_REPLY_MAX - 1 - 4007 - 1 + extra;
	line[3] = ' ';
	return smtp_reply_feed(r, line, 4 + last);
}

/* The whole reply's text is capped at SMTP_REPLY_MAX-1 bytes. */
START_TEST(test_smtp_reply_total_limit)
{
	struct smtp_reply	 r;

	ck_assert_int_eq(reply_fill(&r, 0), SMTP_REPLY_DONE);
	ck_assert_uint_eq(r.len, SMTP_REPLY_MAX - 1);
	ck_assert_uint_eq(strlen(r.text), SMTP_REPLY_MAX - 1);
	ck_assert_uint_eq(r.nlines, 9);
	ck_assert_int_eq(reply_fill(&r, 1), SMTP_REPLY_ERROR);
}
END_TEST

/* The one-line form truncates to the buffer and always terminates it. */
START_TEST(test_smtp_reply_oneline_truncates)
{
	struct smtp_reply	 r;
	char			 buf[8];

	smtp_reply_init(&r);
	ck_assert_int_eq(smtp_reply_feed(&r, "250 2.0.0 OK", 12),
	    SMTP_REPLY_DONE);
	memset(buf, 'x', sizeof(buf));
	smtp_reply_oneline(&r, buf, sizeof(buf));
	ck_assert_str_eq(buf, "250 2.0");
	smtp_reply_oneline(&r, buf, 3);
	ck_assert_str_eq(buf, "25");
	buf[0] = 'x';
	smtp_reply_oneline(&r, buf, 0);
	ck_assert_int_eq(buf[0], 'x');
}
END_TEST

/* ---- EHLO ---- */

static const struct {
	const char		*lines[MAXLINES];
	unsigned		 ext;
	unsigned		 auth;
	unsigned long long	 size;
} ehlo_cases[] = {
	/* Gmail on 587 before STARTTLS. */
	{ { "250-smtp.gmail.com at your service, [203.0.113.5]",
	    "250-SIZE 35882577", "250-8BITMIME", "250-STARTTLS",
	    "250-ENHANCEDSTATUSCODES", "250-PIPELINING", "250-CHUNKING",
	    "250 SMTPUTF8" },
	    SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_STARTTLS |
	    SMTP_EXT_ENHANCED | SMTP_EXT_PIPELINING | SMTP_EXT_CHUNKING |
	    SMTP_EXT_SMTPUTF8, 0, 35882577 },
	/* Gmail after STARTTLS or on 465. */
	{ { "250-smtp.gmail.com at your service, [2001:db8::5]",
	    "250-SIZE 35882577", "250-8BITMIME",
	    "250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH",
	    "250-ENHANCEDSTATUSCODES", "250-PIPELINING", "250-CHUNKING",
	    "250 SMTPUTF8" },
	    SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_AUTH |
	    SMTP_EXT_ENHANCED | SMTP_EXT_PIPELINING | SMTP_EXT_CHUNKING |
	    SMTP_EXT_SMTPUTF8,
	    SMTP_AUTH_LOGIN | SMTP_AUTH_PLAIN | SMTP_AUTH_XOAUTH2, 35882577 },
	/* Gmail 2014. */
	{ { "250-mx.google.com at your service, [198.51.100.7]",
	    "250-AUTH LOGIN PLAIN XOAUTH XOAUTH2 PLAIN-CLIENTTOKEN",
	    "250 ENHANCEDSTATUSCODES" },
	    SMTP_EXT_AUTH | SMTP_EXT_ENHANCED,
	    SMTP_AUTH_LOGIN | SMTP_AUTH_PLAIN | SMTP_AUTH_XOAUTH2, 0 },
	/* relayqd's own advertisement. */
	{ { "250-relayq.localdomain", "250-PIPELINING", "250-8BITMIME",
	    "250-SIZE 10485760", "250-ENHANCEDSTATUSCODES",
	    "250 AUTH PLAIN LOGIN" },
	    SMTP_EXT_PIPELINING | SMTP_EXT_8BITMIME | SMTP_EXT_SIZE |
	    SMTP_EXT_ENHANCED | SMTP_EXT_AUTH,
	    SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN, 10485760 },
	{ { "250-host", "250 AUTH=PLAIN LOGIN" }, SMTP_EXT_AUTH,
	    SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN, 0 },
	{ { "250-host", "250-auth  login", "250 size" },
	    SMTP_EXT_AUTH | SMTP_EXT_SIZE, SMTP_AUTH_LOGIN, 0 },
	{ { "250-host", "250-AUTH PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH",
	    "250 Size 1000" }, SMTP_EXT_AUTH | SMTP_EXT_SIZE, 0, 1000 },
	{ { "250-host", "250 SIZE abc" }, SMTP_EXT_SIZE, 0, 0 },
	{ { "250-host", "250 SIZE -1" }, SMTP_EXT_SIZE, 0, 0 },
	{ { "250-host", "250-STARTTLSX", "250-STARTTLS=1", "250-DSN",
	    "250 X-EXPS GSSAPI" }, 0, 0, 0 },
	/* The greeting line is never a keyword. */
	{ { "250-STARTTLS at your service", "250 8BITMIME" },
	    SMTP_EXT_8BITMIME, 0, 0 },
	{ { "250 smtp.gmail.com at your service" }, 0, 0, 0 },
	{ { "502-5.5.1 x", "502 STARTTLS" }, 0, 0, 0 },
};

/* EHLO replies map to the exact extension and mechanism bits. */
START_TEST(test_smtp_ehlo_parse_table)
{
	struct smtp_reply	 r;
	struct smtp_ehlo	 e;
	enum smtp_reply_status	 st = SMTP_REPLY_ERROR;
	size_t			 n, i = (size_t)_i;

	smtp_reply_init(&r);
	for (n = 0; n < MAXLINES && ehlo_cases[i].lines[n] != NULL; n++)
		st = smtp_reply_feed(&r, ehlo_cases[i].lines[n],
		    strlen(ehlo_cases[i].lines[n]));
	ck_assert_int_eq(st, SMTP_REPLY_DONE);
	memset(&e, 0xff, sizeof(e));
	smtp_ehlo_parse(&r, &e);
	ck_assert_msg(e.ext == ehlo_cases[i].ext, "case %zu: ext %#x, want %#x",
	    i, e.ext, ehlo_cases[i].ext);
	ck_assert_msg(e.auth == ehlo_cases[i].auth,
	    "case %zu: auth %#x, want %#x", i, e.auth, ehlo_cases[i].auth);
	ck_assert_msg(e.size == ehlo_cases[i].size,
	    "case %zu: size %llu, want %llu", i, e.size, ehlo_cases[i].size);
}
END_TEST

/* The smtp_proto suite. */
Suite *
smtp_proto_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("smtp_proto");

	tc = tcase_create("command");
	tcase_add_loop_test(tc, test_smtp_cmd_parse_table, 0,
	    (int)nitems_ck(cmd_cases));
	tcase_add_test(tc, test_smtp_verb_name_round_trip);
	suite_add_tcase(s, tc);

	tc = tcase_create("params");
	tcase_add_loop_test(tc, test_smtp_param_get_table, 0,
	    (int)nitems_ck(param_cases));
	tcase_add_loop_test(tc, test_smtp_params_known_table, 0,
	    (int)nitems_ck(known_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("reply");
	tcase_add_loop_test(tc, test_smtp_reply_table, 0,
	    (int)nitems_ck(reply_cases));
	tcase_add_loop_test(tc, test_smtp_reply_bad_table, 0,
	    (int)nitems_ck(reply_bad_cases));
	tcase_add_test(tc, test_smtp_reply_uses_len);
	tcase_add_test(tc, test_smtp_reply_rejects_nul);
	tcase_add_test(tc, test_smtp_reply_oneline_truncates);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_smtp_reply_line_limit);
	tcase_add_test(tc, test_smtp_reply_total_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("ehlo");
	tcase_add_loop_test(tc, test_smtp_ehlo_parse_table, 0,
	    (int)nitems_ck(ehlo_cases));
	suite_add_tcase(s, tc);

	return s;
}
