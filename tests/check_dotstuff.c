/*
 * check_dotstuff.c: the streaming stuffer against expected wire bytes, fed
 * whole, one byte at a time and at every split point; and the unstuffer.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check_relayq.h"
#include "dotstuff.h"

#define S(s)	s, sizeof(s) - 1

/* Message bytes in, and the exact wire bytes (with the final dot) out. */
static const struct {
	const char	*in;
	size_t		 inlen;
	const char	*wire;
	size_t		 wirelen;
} stuff_cases[] = {
	{ S(""),			S(".\r\n") },
	{ S("a"),			S("a\r\n.\r\n") },
	{ S("a\r\n"),			S("a\r\n.\r\n") },
	{ S("a\nb\n"),			S("a\r\nb\r\n.\r\n") },	/* bare LF */
	{ S("a\rb\r"),			S("a\r\nb\r\n.\r\n") },	/* bare CR */
	{ S("a\r\r\nb"),		S("a\r\n\r\nb\r\n.\r\n") },
	{ S("a\n\rb"),			S("a\r\n\r\nb\r\n.\r\n") },
	{ S("\r\n"),			S("\r\n.\r\n") },
	{ S("\n\n"),			S("\r\n\r\n.\r\n") },
	{ S("."),			S("..\r\n.\r\n") },
	{ S(".\r\n"),			S("..\r\n.\r\n") },
	{ S(".."),			S("...\r\n.\r\n") },
	{ S("..\r\n"),			S("...\r\n.\r\n") },
	{ S("a\r\n.\r\nb\r\n"),		S("a\r\n..\r\nb\r\n.\r\n") },
	{ S("a\n.\nb"),			S("a\r\n..\r\nb\r\n.\r\n") },
	{ S("a\r.b"),			S("a\r\n..b\r\n.\r\n") },
	{ S(".a\r\n.b\r\n"),		S("..a\r\n..b\r\n.\r\n") },
	{ S("a.b\r\n. \r\n"),		S("a.b\r\n.. \r\n.\r\n") },
	{ S("x\r\n.\r\n.\r\n"),		S("x\r\n..\r\n..\r\n.\r\n") },
	{ S("a\0b\r\n"),		S("a\0b\r\n.\r\n") },	/* NUL passes */
	{ S("\xc3\xa4\r\n"),		S("\xc3\xa4\r\n.\r\n") },
};

/* Feed in with the given chunk size (0: all at once); a malloc'd result. */
static char *
stuff_chunked(const char *in, size_t len, size_t chunk, size_t *outlen)
{
	struct dotstuff	 ds;
	char		*out;
	size_t		 off, n, o = 0;

	out = malloc(3 * len + 8);
	ck_assert_ptr_nonnull(out);
	dotstuff_init(&ds);
	if (chunk == 0)
		chunk = len;
	for (off = 0; off < len; off += n) {
		n = len - off < chunk ? len - off : chunk;
		o += dotstuff_feed(&ds, in + off, n, out + o);
		ck_assert_uint_le(o, 3 * (off + n));
	}
	o += dotstuff_finish(&ds, out + o);
	*outlen = o;
	return out;
}

START_TEST(test_dotstuff_whole)
{
	char	*out;
	size_t	 n;

	out = stuff_chunked(stuff_cases[_i].in, stuff_cases[_i].inlen, 0, &n);
	ck_assert_msg(n == stuff_cases[_i].wirelen, "case %d: len %zu", _i, n);
	ck_assert_mem_eq(out, stuff_cases[_i].wire, n);
	free(out);
}
END_TEST

START_TEST(test_dotstuff_byte_at_a_time)
{
	char	*whole, *bytes;
	size_t	 n1, n2;

	whole = stuff_chunked(stuff_cases[_i].in, stuff_cases[_i].inlen, 0,
	    &n1);
	bytes = stuff_chunked(stuff_cases[_i].in, stuff_cases[_i].inlen, 1,
	    &n2);
	ck_assert_msg(n1 == n2, "case %d: %zu vs %zu", _i, n1, n2);
	ck_assert_mem_eq(whole, bytes, n1);
	ck_assert_mem_eq(bytes, stuff_cases[_i].wire, stuff_cases[_i].wirelen);
	free(whole);
	free(bytes);
}
END_TEST

/* Every two-chunk split, so CRLF and ".\r\n" fall across a boundary. */
START_TEST(test_dotstuff_every_split)
{
	struct dotstuff	 ds;
	const char	*in = stuff_cases[_i].in;
	size_t		 len = stuff_cases[_i].inlen, cut, o;
	char		 out[128];

	ck_assert_uint_le(3 * len + 5, sizeof(out));
	for (cut = 0; cut <= len; cut++) {
		dotstuff_init(&ds);
		o = dotstuff_feed(&ds, in, cut, out);
		o += dotstuff_feed(&ds, in + cut, len - cut, out + o);
		o += dotstuff_finish(&ds, out + o);
		ck_assert_msg(o == stuff_cases[_i].wirelen, "case %d cut %zu",
		    _i, cut);
		ck_assert_mem_eq(out, stuff_cases[_i].wire, o);
	}
}
END_TEST

/* The worst case the header promises: 3 * srclen is enough. */
START_TEST(test_dotstuff_worst_case)
{
	static const char	 in[] = "\r\r\r\n\n\n.\n.\n.\r.";
	struct dotstuff		 ds;
	char			 out[3 * sizeof(in) + 5];
	size_t			 o;

	memset(out, 0x55, sizeof(out));
	dotstuff_init(&ds);
	o = dotstuff_feed(&ds, in, sizeof(in) - 1, out);
	ck_assert_uint_le(o, 3 * (sizeof(in) - 1));
	ck_assert_mem_eq(out, "\r\n\r\n\r\n\r\n\r\n..\r\n..\r\n..\r\n..", o);
	ck_assert_uint_eq(dotstuff_finish(&ds, out + o), 5);
	ck_assert_mem_eq(out + o, "\r\n.\r\n", 5);
}
END_TEST

static const struct {
	const char	*line;
	bool		 eod;
	const char	*out;
} unstuff_cases[] = {
	{ ".",		true,	NULL },
	{ "..",		false,	"." },
	{ "...",	false,	".." },
	{ ".a",		false,	"a" },
	{ "a.",		false,	"a." },
	{ "",		false,	"" },
	{ "hello",	false,	"hello" },
	{ ". ",		false,	" " },
};

START_TEST(test_dotstuff_unstuff)
{
	const char	*out = NULL;
	size_t		 outlen = 12345;
	bool		 eod;

	eod = dotstuff_unstuff_line(unstuff_cases[_i].line,
	    strlen(unstuff_cases[_i].line), &out, &outlen);
	ck_assert_msg(eod == unstuff_cases[_i].eod, "\"%s\"",
	    unstuff_cases[_i].line);
	if (!eod) {
		ck_assert_ptr_nonnull(out);
		ck_assert_uint_eq(outlen, strlen(unstuff_cases[_i].out));
		ck_assert_mem_eq(out, unstuff_cases[_i].out, outlen);
	}
}
END_TEST

/* Stuffing then unstuffing line by line gives back the CRLF message. */
START_TEST(test_dotstuff_roundtrip)
{
	static const char	 msg[] =
	    "..\r\n.x\r\nplain\r\n.\r\n\r\nend\r\n";
	char			*wire, back[64];
	const char		*line, *eol, *out;
	size_t			 n, outlen, b = 0;
	bool			 seen_eod = false;

	wire = stuff_chunked(msg, sizeof(msg) - 1, 3, &n);
	for (line = wire; line < wire + n; line = eol + 2) {
		eol = memmem(line, (size_t)(wire + n - line), "\r\n", 2);
		ck_assert_ptr_nonnull(eol);
		if (dotstuff_unstuff_line(line, (size_t)(eol - line), &out,
		    &outlen)) {
			seen_eod = true;
			ck_assert_ptr_eq(eol + 2, wire + n);
			break;
		}
		memcpy(back + b, out, outlen);
		b += outlen;
		memcpy(back + b, "\r\n", 2);
		b += 2;
	}
	ck_assert(seen_eod);
	ck_assert_uint_eq(b, sizeof(msg) - 1);
	ck_assert_mem_eq(back, msg, b);
	free(wire);
}
END_TEST

Suite *
dotstuff_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("dotstuff");

	tc = tcase_create("stuff");
	tcase_add_loop_test(tc, test_dotstuff_whole, 0,
	    (int)nitems_ck(stuff_cases));
	tcase_add_loop_test(tc, test_dotstuff_byte_at_a_time, 0,
	    (int)nitems_ck(stuff_cases));
	tcase_add_loop_test(tc, test_dotstuff_every_split, 0,
	    (int)nitems_ck(stuff_cases));
	tcase_add_test(tc, test_dotstuff_worst_case);
	suite_add_tcase(s, tc);

	tc = tcase_create("unstuff");
	tcase_add_loop_test(tc, test_dotstuff_unstuff, 0,
	    (int)nitems_ck(unstuff_cases));
	tcase_add_test(tc, test_dotstuff_roundtrip);
	suite_add_tcase(s, tc);

	return s;
}
