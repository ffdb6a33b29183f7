/*
 * check_sasl.c: AUTH PLAIN, AUTH LOGIN and AUTH XOAUTH2 payloads.
 */
#include <string.h>

#include "base64.h"
#include "check_relayq.h"
#include "sasl.h"

/* Base64 of raw bytes (which may hold NULs), for building test inputs. */
static void
b64(const char *raw, size_t len, char *out, size_t outlen)
{
	ck_assert_uint_ne(base64_encode(raw, len, out, outlen, 0), (size_t)-1);
}

START_TEST(test_sasl_plain_encode)
{
	struct sasl_cred	 c;
	char			 out[64];

	memset(&c, 0, sizeof(c));
	strcpy(c.user, "tim");
	strcpy(c.pass, "tanstaaftanstaaf");
	ck_assert_int_eq(sasl_plain_encode(&c, out, sizeof(out)), 0);
	/* RFC 4616 section 4, without the authzid. */
	ck_assert_str_eq(out, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
	ck_assert_int_eq(sasl_plain_encode(&c, out,
	    strlen("AHRpbQB0YW5zdGFhZnRhbnN0YWFm")), -1);
	ck_assert_int_eq(sasl_plain_encode(&c, out,
	    strlen("AHRpbQB0YW5zdGFhZnRhbnN0YWFm") + 1), 0);
}
END_TEST

START_TEST(test_sasl_plain_encode_unterminated)
{
	struct sasl_cred	 c;
	char			 out[2048];

	memset(&c, 'a', sizeof(c));
	ck_assert_int_eq(sasl_plain_encode(&c, out, sizeof(out)), -1);
}
END_TEST

START_TEST(test_sasl_plain_roundtrip)
{
	struct sasl_cred	 c, d;
	char			 out[1100];
	const char		*why = NULL;

	memset(&c, 0, sizeof(c));
	memset(c.user, 'u', SASL_FIELD_MAX - 1);
	memset(c.pass, 'p', SASL_FIELD_MAX - 1);
	ck_assert_int_eq(sasl_plain_encode(&c, out, sizeof(out)), 0);
	ck_assert_int_eq(sasl_plain_decode(out, &d, &why), 0);
	ck_assert_str_eq(d.user, c.user);
	ck_assert_str_eq(d.pass, c.pass);
	sasl_cred_clear(&d);
	ck_assert_uint_eq(strlen(d.user) + strlen(d.pass), 0);
}
END_TEST

/* Decoded PLAIN responses (raw, before base64) and the expected outcome. */
static const struct {
	const char	*raw;
	size_t		 len;
	int		 rc;
	const char	*user, *pass;
} plain_cases[] = {
#define RAW(s)	s, sizeof(s) - 1
	{ RAW("\0tim\0tanstaaftanstaaf"),	0, "tim", "tanstaaftanstaaf" },
	{ RAW("tim\0tim\0secret"),		0, "tim", "secret" },
	{ RAW("u@example.com\0u@example.com\0p w"), 0, "u@example.com", "p w" },
	{ RAW("\0tim\0p\xc3\xa4ss"),		0, "tim", "p\xc3\xa4ss" },
	/* authzid differs; no user; no password; one NUL; none; three */
	{ RAW("admin\0tim\0secret"),		-1, NULL, NULL },
	{ RAW("\0\0secret"),			-1, NULL, NULL },
	{ RAW("\0tim\0"),			-1, NULL, NULL },
	{ RAW("\0tim"),				-1, NULL, NULL },
	{ RAW("timsecret"),			-1, NULL, NULL },
	{ RAW("\0tim\0sec\0ret"),		-1, NULL, NULL },
	{ RAW("\0tim\0secret\0"),		-1, NULL, NULL },
	{ RAW(""),				-1, NULL, NULL },
#undef RAW
};

START_TEST(test_sasl_plain_decode)
{
	struct sasl_cred	 c;
	char			 in[128];
	const char		*why = NULL;
	int			 rc;

	b64(plain_cases[_i].raw, plain_cases[_i].len, in, sizeof(in));
	rc = sasl_plain_decode(in, &c, &why);
	ck_assert_msg(rc == plain_cases[_i].rc, "case %d: rc %d", _i, rc);
	if (rc == 0) {
		ck_assert_str_eq(c.user, plain_cases[_i].user);
		ck_assert_str_eq(c.pass, plain_cases[_i].pass);
	} else {
		ck_assert_ptr_nonnull(why);
		ck_assert_uint_gt(strlen(why), 0);
		/* A failed decode leaves nothing behind. */
		ck_assert_str_eq(c.user, "");
		ck_assert_str_eq(c.pass, "");
	}
}
END_TEST

/* Inputs that are not even valid base64, or far too long. */
static const char *const plain_bad_b64[] = {
	"AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n",
	"AHRpbQB0YW5zdGFhZnRhbnN0YWF",
	"=",
	"*",
	"AHRpbQB0YW5z dGFhZnRhbnN0YWFm",
};

START_TEST(test_sasl_plain_decode_bad_base64)
{
	struct sasl_cred	 c;
	const char		*why = NULL;

	ck_assert_int_eq(sasl_plain_decode(plain_bad_b64[_i], &c, &why), -1);
	ck_assert_ptr_nonnull(why);
}
END_TEST

START_TEST(test_sasl_plain_decode_too_long)
{
	struct sasl_cred	 c;
	char			 raw[600], in[1300];
	const char		*why = NULL;

	/* A 300-octet user name: valid shape, over SASL_FIELD_MAX. */
	memset(raw, 'u', sizeof(raw));
	raw[0] = '\0';
	raw[301] = '\0';
	b64(raw, 310, in, sizeof(in));
	ck_assert_int_eq(sasl_plain_decode(in, &c, &why), -1);
	ck_assert_ptr_nonnull(why);
	/* Valid base64, but longer than any acceptable response. */
	memset(in, 'A', 1200);
	in[1200] = '\0';
	why = NULL;
	ck_assert_int_eq(sasl_plain_decode(in, &c, &why), -1);
	ck_assert_ptr_nonnull(why);
}
END_TEST

/*
 * The reason may be logged: it must not contain any part of the input,
 * decoded or not.
 */
START_TEST(test_sasl_plain_reason_never_quotes)
{
	static const char	*secrets[] = {
		"admin\0hunter2user\0hunter2pass",
		"\0hunter2user\0",
		"\0\0hunter2pass",
	};
	static const size_t	 lens[] = { 29, 13, 13 };
	struct sasl_cred	 c;
	char			 in[128];
	const char		*why;
	size_t			 i;

	for (i = 0; i < nitems_ck(secrets); i++) {
		b64(secrets[i], lens[i], in, sizeof(in));
		why = NULL;
		ck_assert_int_eq(sasl_plain_decode(in, &c, &why), -1);
		ck_assert_ptr_nonnull(why);
		ck_assert_msg(strstr(why, "hunter2") == NULL, "reason: %s",
		    why);
		ck_assert_msg(strstr(why, in) == NULL, "reason: %s", why);
	}
	why = NULL;
	ck_assert_int_eq(sasl_plain_decode("aHVudGVyMg==!", &c, &why), -1);
	ck_assert_ptr_nonnull(why);
	ck_assert_ptr_null(strstr(why, "aHVudGVyMg"));
}
END_TEST

START_TEST(test_sasl_login)
{
	char	 enc[64], dec[64];

	ck_assert_int_eq(sasl_login_encode("Username:", enc, sizeof(enc)), 0);
	ck_assert_str_eq(enc, "VXNlcm5hbWU6");
	ck_assert_int_eq(sasl_login_encode("Password:", enc, sizeof(enc)), 0);
	ck_assert_str_eq(enc, "UGFzc3dvcmQ6");
	ck_assert_int_eq(sasl_login_encode("Password:", enc, 12), -1);
	ck_assert_int_eq(sasl_login_decode("dGlt", dec, sizeof(dec)), 0);
	ck_assert_str_eq(dec, "tim");
	/* "tim" needs four bytes with its NUL. */
	ck_assert_int_eq(sasl_login_decode("dGlt", dec, 3), -1);
	ck_assert_int_eq(sasl_login_decode("dGlt", dec, 4), 0);
}
END_TEST

/* LOGIN fields the decoder refuses. */
static const char *const login_bad[] = {
	"",		/* empty field */
	"dGlt\r\n",	/* whitespace */
	"dGl",		/* truncated */
	"AHRpbQ==",	/* "\0tim": NUL inside */
	"dGltAA==",	/* "tim\0" */
	"*",
};

START_TEST(test_sasl_login_decode_rejects)
{
	char	 dec[64];

	memset(dec, 'x', sizeof(dec));
	ck_assert_msg(sasl_login_decode(login_bad[_i], dec, sizeof(dec)) == -1,
	    "accepted \"%s\"", login_bad[_i]);
	/* The output buffer is wiped, not left half-written. */
	ck_assert_int_eq(dec[0], 0);
}
END_TEST

/* Google's XOAUTH2 example (user someuser@example.com, its token). */
#define XO_EXAMPLE	"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5" \
	"LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
#define XO_TOKEN	"ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"

START_TEST(test_sasl_xoauth2_encode)
{
	struct sasl_cred	 c;
	char			 out[256];

	memset(&c, 0, sizeof(c));
	strcpy(c.user, "someuser@example.com");
	strcpy(c.pass, XO_TOKEN);
	c.mech = SASL_MECH_XOAUTH2;
	ck_assert_int_eq(sasl_xoauth2_encode(&c, out, sizeof(out)), 0);
	ck_assert_str_eq(out, XO_EXAMPLE);
	ck_assert_int_eq(sasl_xoauth2_encode(&c, out, strlen(XO_EXAMPLE)), -1);
	memset(c.pass, 't', sizeof(c.pass));
	ck_assert_int_eq(sasl_xoauth2_encode(&c, out, sizeof(out)), -1);
}
END_TEST

START_TEST(test_sasl_xoauth2_roundtrip)
{
	struct sasl_cred	 c, d;
	char			 out[1100];
	const char		*why = NULL;

	ck_assert_int_eq(sasl_xoauth2_decode(XO_EXAMPLE, &d, &why), 0);
	ck_assert_str_eq(d.user, "someuser@example.com");
	ck_assert_str_eq(d.pass, XO_TOKEN);
	ck_assert_int_eq(d.mech, SASL_MECH_XOAUTH2);
	memset(&c, 0, sizeof(c));
	memset(c.user, 'u', SASL_FIELD_MAX - 1);
	memset(c.pass, 'T', SASL_FIELD_MAX - 1);
	ck_assert_int_eq(sasl_xoauth2_encode(&c, out, sizeof(out)), 0);
	ck_assert_int_eq(sasl_xoauth2_decode(out, &d, &why), 0);
	ck_assert_str_eq(d.user, c.user);
	ck_assert_str_eq(d.pass, c.pass);
	/* A PLAIN decode of the same kind of input is PLAIN. */
	ck_assert_int_eq(sasl_plain_decode("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", &d,
	    &why), 0);
	ck_assert_int_eq(d.mech, SASL_MECH_PLAIN);
}
END_TEST

/* Each way a PLAIN response is refused, with the reason the server logs. */
static const struct {
	const char	*raw;
	size_t		 len;		/* 0: strlen(raw) */
	const char	*reason;
} plain_bad[] = {
	{ "", 0, "empty PLAIN response" },
	{ "user", 0, "malformed PLAIN response" },
	{ "\0user", 5, "malformed PLAIN response" },
	{ "\0user\0pa\0ss", 11, "malformed PLAIN response" },
	{ "\0\0pass", 6, "empty user name or password" },
	{ "\0user\0", 6, "empty user name or password" },
	{ "bob\0user\0pass", 13, "authorization identity differs from user" },
};

START_TEST(test_sasl_plain_decode_reasons)
{
	struct sasl_cred	 d;
	char			 in[256];
	const char		*why = NULL;
	size_t			 len;

	len = plain_bad[_i].len != 0 ? plain_bad[_i].len :
	    strlen(plain_bad[_i].raw);
	b64(plain_bad[_i].raw, len, in, sizeof(in));
	memset(&d, 'x', sizeof(d));
	ck_assert_int_eq(sasl_plain_decode(in, &d, &why), -1);
	ck_assert_str_eq(why, plain_bad[_i].reason);
	ck_assert_uint_eq(strlen(d.user) + strlen(d.pass), 0);
}
END_TEST

static const struct {
	const char	*raw;
	size_t		 len;		/* 0: strlen(raw) */
	const char	*reason;
} xoauth2_bad[] = {
	{ "", 0, "malformed XOAUTH2 response" },
	{ "user=a\001auth=Bearer t\001", 0, "malformed XOAUTH2 response" },
	{ "user=a\001auth=Bearer t", 0, "malformed XOAUTH2 response" },
	{ "usr=a\001auth=Bearer t\001\001", 0, "malformed XOAUTH2 response" },
	{ "user=a\001auth=Basic t\001\001", 0, "malformed XOAUTH2 response" },
	{ "user=a\001auth=Bearer\001\001", 0, "malformed XOAUTH2 response" },
	{ "user=a\001auth=Bearer t t\001\001", 0,
	    "malformed XOAUTH2 response" },
	{ "user=a\001auth=Bearer t\001\001\001", 0,
	    "malformed XOAUTH2 response" },
	{ "user=a\001auth=Bearer t\001\001x", 0,
	    "malformed XOAUTH2 response" },
	{ "user=a\nb\001auth=Bearer t\001\001", 0,
	    "malformed XOAUTH2 response" },
	{ "user=a\0b\001auth=Bearer t\001\001", 24,
	    "malformed XOAUTH2 response" },
	{ "user=\001auth=Bearer t\001\001", 0, "empty user name or token" },
	{ "user=a\001auth=Bearer \001\001", 0, "empty user name or token" },
};

START_TEST(test_sasl_xoauth2_decode_rejects)
{
	struct sasl_cred	 d;
	char			 in[256];
	const char		*why = NULL;
	size_t			 len;

	len = xoauth2_bad[_i].len != 0 ? xoauth2_bad[_i].len :
	    strlen(xoauth2_bad[_i].raw);
	b64(xoauth2_bad[_i].raw, len, in, sizeof(in));
	memset(&d, 'x', sizeof(d));
	ck_assert_int_eq(sasl_xoauth2_decode(in, &d, &why), -1);
	ck_assert_str_eq(why, xoauth2_bad[_i].reason);
	ck_assert_uint_eq(strlen(d.user) + strlen(d.pass), 0);
	ck_assert_int_eq(sasl_xoauth2_decode("!!!!", &d, &why), -1);
	ck_assert_str_eq(why, "invalid base64");
}
END_TEST

Suite *
sasl_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("sasl");

	tc = tcase_create("plain");
	tcase_add_test(tc, test_sasl_plain_encode);
	tcase_add_test(tc, test_sasl_plain_encode_unterminated);
	tcase_add_test(tc, test_sasl_plain_roundtrip);
	tcase_add_loop_test(tc, test_sasl_plain_decode, 0,
	    (int)nitems_ck(plain_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("login");
	tcase_add_test(tc, test_sasl_login);
	tcase_add_loop_test(tc, test_sasl_login_decode_rejects, 0,
	    (int)nitems_ck(login_bad));
	suite_add_tcase(s, tc);

	tc = tcase_create("xoauth2");
	tcase_add_test(tc, test_sasl_xoauth2_encode);
	tcase_add_test(tc, test_sasl_xoauth2_roundtrip);
	tcase_add_loop_test(tc, test_sasl_xoauth2_decode_rejects, 0,
	    (int)nitems_ck(xoauth2_bad));
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_sasl_plain_decode_bad_base64, 0,
	    (int)nitems_ck(plain_bad_b64));
	tcase_add_test(tc, test_sasl_plain_decode_too_long);
	tcase_add_test(tc, test_sasl_plain_reason_never_quotes);
	tcase_add_loop_test(tc, test_sasl_plain_decode_reasons, 0,
	    (int)nitems_ck(plain_bad));
	suite_add_tcase(s, tc);

	return s;
}
