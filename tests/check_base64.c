/*
 * check_base64.c: RFC 4648 vectors, the 76-column wrap and strict decoding.
 */
#include <stdint.h>
#include <string.h>

#include "base64.h"
#include "check_relayq.h"

/* RFC 4648 section 10. */
static const struct {
	const char	*plain;
	const char	*enc;
} rfc4648_cases[] = {
	{ "",		"" },
	{ "f",		"Zg==" },
	{ "fo",		"Zm8=" },
	{ "foo",	"Zm9v" },
	{ "foob",	"Zm9vYg==" },
	{ "fooba",	"Zm9vYmE=" },
	{ "foobar",	"Zm9vYmFy" },
};

START_TEST(test_base64_encode_rfc4648)
{
	char		 out[64];
	const char	*plain = rfc4648_cases[_i].plain;
	size_t		 n;

	n = base64_encode(plain, strlen(plain), out, sizeof(out), 0);
	ck_assert_msg(n == strlen(rfc4648_cases[_i].enc), "\"%s\": len %zu",
	    plain, n);
	ck_assert_str_eq(out, rfc4648_cases[_i].enc);
	ck_assert_uint_eq(base64_encoded_len(strlen(plain)), n);
}
END_TEST

START_TEST(test_base64_decode_rfc4648)
{
	unsigned char	 out[64];
	const char	*enc = rfc4648_cases[_i].enc;
	long		 n;

	n = base64_decode(enc, strlen(enc), out, sizeof(out));
	ck_assert_msg(n == (long)strlen(rfc4648_cases[_i].plain),
	    "\"%s\": %ld", enc, n);
	ck_assert_mem_eq(out, rfc4648_cases[_i].plain, (size_t)n);
}
END_TEST

START_TEST(test_base64_binary_roundtrip)
{
	unsigned char	 in[256], back[256];
	char		 enc[400];
	size_t		 i, n;
	long		 m;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(255 - i);
	n = base64_encode(in, sizeof(in), enc, sizeof(enc), 0);
	ck_assert_uint_eq(n, 344);
	m = base64_decode(enc, n, back, sizeof(back));
	ck_assert_int_eq(m, 256);
	ck_assert_mem_eq(back, in, sizeof(in));
}
END_TEST

/* Input lengths around the 57-byte (76-column) line boundary. */
static const size_t wrap_lens[] = { 0, 1, 56, 57, 58, 114, 115, 1000 };

START_TEST(test_base64_encode_wrap)
{
	unsigned char	 in[1000];
	char		 out[1500], *line, *crlf;
	size_t		 len = wrap_lens[_i], n, i, total = 0;

	for (i = 0; i < len; i++)
		in[i] = (unsigned char)(i * 7);
	n = base64_encode(in, len, out, sizeof(out), 1);
	ck_assert_uint_eq(n, base64_wrapped_len(len));
	ck_assert_uint_eq(strlen(out), n);
	if (len == 0) {
		ck_assert_uint_eq(n, 0);
		return;
	}
	ck_assert_msg(out[n - 2] == '\r' && out[n - 1] == '\n',
	    "len %zu: no final CRLF", len);
	for (line = out; *line != '\0'; line = crlf + 2) {
		crlf = strstr(line, "\r\n");
		ck_assert_ptr_nonnull(crlf);
		if (crlf[2] != '\0')
			ck_assert_msg(crlf - line == 76, "len %zu: line %td",
			    len, crlf - line);
		else
			ck_assert_msg(crlf - line > 0 && crlf - line <= 76,
			    "len %zu: last line %td", len, crlf - line);
		total += (size_t)(crlf - line);
	}
	ck_assert_uint_eq(total, base64_encoded_len(len));
}
END_TEST

START_TEST(test_base64_encode_short_dst)
{
	char	 out[9];

	/* "foobar" needs 8 characters plus the NUL. */
	ck_assert_uint_eq(base64_encode("foobar", 6, out, 8, 0), (size_t)-1);
	ck_assert_uint_eq(base64_encode("foobar", 6, out, 9, 0), 8);
	/* Wrapped, it needs 8 + CRLF + NUL. */
	ck_assert_uint_eq(base64_encode("foobar", 6, out, 9, 1), (size_t)-1);
}
END_TEST

/* Everything a strict decoder must refuse. */
static const char *const bad_cases[] = {
	"Zm9",		/* truncated */
	"Z",
	"Zm9vY",
	"Zg=",		/* truncated padding */
	"Zg",		/* missing padding */
	"Zm9v\r\n",	/* whitespace */
	"Zm9v YmFy",
	" Zm9v",
	"Zm9v\n",
	"Zm9v\t",
	"Zm9-",		/* base64url alphabet */
	"Zm9_",
	"Zm9*",
	"Zm\x80v",	/* 8-bit octet */
	"Z===",		/* too much padding */
	"====",
	"=Zm9",
	"Zg==Zm9v",	/* padding in the middle */
	"Zm=v",
	"Zh==",		/* non-zero bits under the padding */
	"Zm9=",
	"Zm8==",
};

START_TEST(test_base64_decode_rejects)
{
	unsigned char	 out[64];
	const char	*in = bad_cases[_i];

	ck_assert_msg(base64_decode(in, strlen(in), out, sizeof(out)) == -1,
	    "accepted case %d", _i);
}
END_TEST

START_TEST(test_base64_decode_short_dst)
{
	unsigned char	 out[6];

	ck_assert_int_eq(base64_decode("Zm9vYmFy", 8, out, 5), -1);
	ck_assert_int_eq(base64_decode("Zm9vYmFy", 8, out, 6), 6);
	ck_assert_int_eq(base64_decode("Zm9vYg==", 8, out, 4), 4);
	ck_assert_int_eq(base64_decode("Zm9vYg==", 8, out, 3), -1);
}
END_TEST

START_TEST(test_base64_decode_embedded_nul)
{
	unsigned char	 out[8];

	/* The length, not a NUL, bounds the input. */
	ck_assert_int_eq(base64_decode("Zm9v\0\0\0\0", 8, out, sizeof(out)),
	    -1);
	ck_assert_int_eq(base64_decode("AA==", 4, out, sizeof(out)), 1);
	ck_assert_uint_eq(out[0], 0);
}
END_TEST

START_TEST(test_base64_lengths)
{
	ck_assert_uint_eq(base64_encoded_len(0), 0);
	ck_assert_uint_eq(base64_encoded_len(1), 4);
	ck_assert_uint_eq(base64_encoded_len(3), 4);
	ck_assert_uint_eq(base64_encoded_len(4), 8);
	ck_assert_uint_eq(base64_wrapped_len(0), 0);
	ck_assert_uint_eq(base64_wrapped_len(57), 78);
	ck_assert_uint_eq(base64_wrapped_len(58), 84);
	ck_assert_uint_eq(base64_wrapped_len(114), 156);
	ck_assert_uint_eq(base64_encoded_len(SIZE_MAX), SIZE_MAX);
	ck_assert_uint_eq(base64_wrapped_len(SIZE_MAX), SIZE_MAX);
}
END_TEST

Suite *
base64_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("base64");

	tc = tcase_create("encode");
	tcase_add_loop_test(tc, test_base64_encode_rfc4648, 0,
	    (int)nitems_ck(rfc4648_cases));
	tcase_add_loop_test(tc, test_base64_encode_wrap, 0,
	    (int)nitems_ck(wrap_lens));
	tcase_add_test(tc, test_base64_encode_short_dst);
	tcase_add_test(tc, test_base64_lengths);
	suite_add_tcase(s, tc);

	tc = tcase_create("decode");
	tcase_add_loop_test(tc, test_base64_decode_rfc4648, 0,
	    (int)nitems_ck(rfc4648_cases));
	tcase_add_test(tc, test_base64_binary_roundtrip);
	tcase_add_test(tc, test_base64_decode_short_dst);
	tcase_add_test(tc, test_base64_decode_embedded_nul);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_base64_decode_rejects, 0,
	    (int)nitems_ck(bad_cases));
	suite_add_tcase(s, tc);

	return s;
}
