/*
 * check_mailaddr.c: RFC 5321 mailbox and path validation, and its limits.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "check_relayq.h"
#include "mailaddr.h"

static const struct {
	const char	*addr;
	bool		 valid;
} valid_cases[] = {
	{ "user@example.com",			true },
	{ "a@b",				true },
	{ "first.last@example.com",		true },
	{ "user+tag@mail.example.co.uk",	true },
	{ "!#$%&'*+-/=?^_`{|}~@example.com",	true },
	{ "user@[192.0.2.1]",			true },
	{ "user@[IPv6:2001:db8::1]",		true },
	{ "\"john..doe\"@example.com",		true },	/* quoted local part */
	{ "\"a@b\"@example.com",		true },
	{ "\"a\\\"b\"@example.com",		true },	/* quoted pair */
	{ "\"a,b;c\"@example.com",		true },
	{ "j\xc3\xb6rg@b\xc3\xbc" "cher.example",	true },	/* UTF-8 */
	{ "user@xn--bcher-kva.example",		true },
	{ "user@a-b.example",			true },
	{ "",					false },
	{ "user",				false },
	{ "@example.com",			false },
	{ "user@",				false },
	{ "user@@example.com",			false },
	{ "a@b@example.com",			false },
	{ ".user@example.com",			false },
	{ "user.@example.com",			false },
	{ "us..er@example.com",			false },
	{ "us er@example.com",			false },	/* space */
	{ "user@exa mple.com",			false },
	{ "\"us er\"@example.com",		false },	/* quoted */
	{ "user\r@example.com",			false },	/* CR */
	{ "user@example.com\r\n",		false },
	{ "user\n@example.com",			false },	/* LF */
	{ "user@exam\nple.com",			false },
	{ "<user@example.com>",			false },
	{ "user@example.com>",			false },
	{ "\"user@example.com",			false },	/* open quote */
	{ "\"\"@example.com",			false },
	{ "\"a\"b@example.com",			false },
	{ "user@.example.com",			false },
	{ "user@example..com",			false },
	{ "user@example.com.",			false },
	{ "user@-example.com",			false },
	{ "user@example-.com",			false },
	{ "user@exa_mple.com",			false },
	{ "user@[192.0.2.1",			false },
	{ "user@[]",				false },
	{ "user@[a b]",				false },
	{ "us\x01" "er@example.com",		false },	/* control */
	{ "us\x7f" "er@example.com",		false },
	{ "user(c)@example.com",		false },
};

START_TEST(test_mailaddr_valid)
{
	bool	 v;

	v = mailaddr_valid(valid_cases[_i].addr);
	ck_assert_msg(v == valid_cases[_i].valid, "\"%s\": %s",
	    valid_cases[_i].addr, v ? "valid" : "invalid");
}
END_TEST

/* Build "<local of llen>@<domain of dlen>" with labels of at most 63. */
static void
make_addr(char *buf, size_t llen, size_t dlen)
{
	size_t	 i, o = 0;

	for (i = 0; i < llen; i++)
		buf[o++] = 'l';
	buf[o++] = '@';
	for (i = 0; i < dlen; i++)
		buf[o++] = (i % 50 == 49 && i + 1 < dlen) ? '.' : 'd';
	buf[o] = '\0';
}

static const struct {
	size_t	 llen, dlen;
	bool	 valid;
} limit_cases[] = {
	{ 64, 10,	true },		/* local part of exactly 64 */
	{ 65, 10,	false },
	{ 64, 189,	true },		/* 254 in all: the path is 256 */
	{ 64, 190,	false },	/* 255: the path would be 257 */
	{ 10, 243,	true },
	{ 10, 244,	false },
	{ 1, 255,	false },	/* domain of 255 exceeds the path */
	{ 1, 256,	false },
	{ 1, 63,	true },
};

START_TEST(test_mailaddr_limits)
{
	char	 addr[400];

	make_addr(addr, limit_cases[_i].llen, limit_cases[_i].dlen);
	ck_assert_msg(mailaddr_valid(addr) == limit_cases[_i].valid,
	    "local %zu domain %zu", limit_cases[_i].llen,
	    limit_cases[_i].dlen);
}
END_TEST

START_TEST(test_mailaddr_label_limit)
{
	char	 addr[128];

	/* One label of 63 is fine, 64 is not. */
	snprintf(addr, sizeof(addr), "u@%.*s.com", 63,
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	ck_assert(mailaddr_valid(addr));
	snprintf(addr, sizeof(addr), "u@%.*s.com", 64,
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	ck_assert(!mailaddr_valid(addr));
}
END_TEST

static const struct {
	const char	*arg;
	bool		 allow_null;
	int		 rc;
	const char	*addr;		/* expected out */
	const char	*rest;		/* expected *rest */
} path_cases[] = {
	{ "<user@example.com>",		false, 0, "user@example.com", "" },
	{ "  <user@example.com>",	false, 0, "user@example.com", "" },
	{ "<user@example.com> SIZE=100", false, 0, "user@example.com",
	    "SIZE=100" },
	{ "<u@x.org>   BODY=8BITMIME SIZE=5", false, 0, "u@x.org",
	    "BODY=8BITMIME SIZE=5" },
	{ "<>",				true,  0, "", "" },
	{ "<> SIZE=10",			true,  0, "", "SIZE=10" },
	{ "<>",				false, -1, NULL, NULL },
	{ "<@a.example,@b.example:u@c.example>", false, 0, "u@c.example", "" },
	{ "<@a.example:u@c.example>",	false, 0, "u@c.example", "" },
	{ "<\"a b\"@example.com>",	false, -1, NULL, NULL },
	{ "<\"a@b\"@example.com>",	false, 0, "\"a@b\"@example.com", "" },
	{ "user@example.com",		false, -1, NULL, NULL },
	{ "<user@example.com",		false, -1, NULL, NULL },
	{ "<user@example.com>SIZE=1",	false, -1, NULL, NULL },
	{ "<user@example.com>>",	false, -1, NULL, NULL },
	{ "<<user@example.com>",	false, -1, NULL, NULL },
	{ "<user@exa\r\nmple.com>",	false, -1, NULL, NULL },
	{ "<user@example.com\r>",	false, -1, NULL, NULL },
	{ "<us er@example.com>",	false, -1, NULL, NULL },
	{ "<user>",			false, -1, NULL, NULL },
	{ "<@a.example:>",		true,  -1, NULL, NULL },
	{ "<@:u@c.example>",		false, -1, NULL, NULL },
	{ "<@a.example u@c.example>",	false, -1, NULL, NULL },
	{ "<a.example:u@c.example>",	false, -1, NULL, NULL },
	{ "",				true,  -1, NULL, NULL },
	{ "\t<user@example.com>",	false, -1, NULL, NULL },
};

START_TEST(test_mailaddr_parse_path)
{
	char		 out[MAILADDR_MAX];
	const char	*rest = "unset", *why = NULL;
	int		 rc;

	rc = mailaddr_parse_path(path_cases[_i].arg, path_cases[_i].allow_null,
	    out, sizeof(out), &rest, &why);
	ck_assert_msg(rc == path_cases[_i].rc, "\"%s\": rc %d (%s)",
	    path_cases[_i].arg, rc, why ? why : "-");
	if (rc == 0) {
		ck_assert_str_eq(out, path_cases[_i].addr);
		ck_assert_ptr_nonnull(rest);
		ck_assert_str_eq(rest, path_cases[_i].rest);
	} else {
		ck_assert_ptr_nonnull(why);
		ck_assert_uint_gt(strlen(why), 0);
	}
}
END_TEST

START_TEST(test_mailaddr_path_limit)
{
	char		 arg[400], addr[300], out[MAILADDR_MAX];
	const char	*rest, *why;

	/* A 254-octet mailbox makes a 256-octet path: accepted. */
	make_addr(addr, 64, 189);
	snprintf(arg, sizeof(arg), "<%s> SIZE=1", addr);
	ck_assert_int_eq(mailaddr_parse_path(arg, false, out, sizeof(out),
	    &rest, &why), 0);
	ck_assert_str_eq(out, addr);
	ck_assert_str_eq(rest, "SIZE=1");
	/* One more octet is a 257-octet path. */
	make_addr(addr, 64, 190);
	snprintf(arg, sizeof(arg), "<%s>", addr);
	why = NULL;
	ck_assert_int_eq(mailaddr_parse_path(arg, false, out, sizeof(out),
	    &rest, &why), -1);
	ck_assert_str_eq(why, "path too long");
	/* A local part of 65 inside a short path is named as such. */
	make_addr(addr, 65, 10);
	snprintf(arg, sizeof(arg), "<%s>", addr);
	ck_assert_int_eq(mailaddr_parse_path(arg, false, out, sizeof(out),
	    &rest, &why), -1);
	ck_assert_str_eq(why, "local part too long");
}
END_TEST

START_TEST(test_mailaddr_path_small_buffer)
{
	char		 out[8];
	const char	*rest, *why = NULL;

	ck_assert_int_eq(mailaddr_parse_path("<abcdefgh@x>", false, out,
	    sizeof(out), &rest, &why), -1);
	ck_assert_ptr_nonnull(why);
	ck_assert_int_eq(mailaddr_parse_path("<abc@x.y>", false, out,
	    sizeof(out), &rest, &why), 0);
	ck_assert_str_eq(out, "abc@x.y");
}
END_TEST

Suite *
mailaddr_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("mailaddr");

	tc = tcase_create("valid");
	tcase_add_loop_test(tc, test_mailaddr_valid, 0,
	    (int)nitems_ck(valid_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_loop_test(tc, test_mailaddr_limits, 0,
	    (int)nitems_ck(limit_cases));
	tcase_add_test(tc, test_mailaddr_label_limit);
	tcase_add_test(tc, test_mailaddr_path_limit);
	tcase_add_test(tc, test_mailaddr_path_small_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("path");
	tcase_add_loop_test(tc, test_mailaddr_parse_path, 0,
	    (int)nitems_ck(path_cases));
	suite_add_tcase(s, tc);

	return s;
}
