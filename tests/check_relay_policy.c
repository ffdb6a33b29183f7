/*
 * check_relay_policy.c: relay_policy_classify over the replies Gmail
 * really sends (reference/gmail-smtp.md), fed through the reply
 * accumulator exactly as the relay feeds them.
 */
#include <string.h>

#include "check_relayq.h"
#include "relay_policy.h"
#include "smtp_proto.h"

#define ID	"98e67ed59e1d1-3276f57b227sm30235195a91.6 - gsmtp"

/* Each case is a whole reply, lines separated by '\n', no CRLF. */
static const struct {
	const char		*reply;
	enum relay_result	 want;
} policy_cases[] = {
	/* Success. */
	{ "250 2.0.0 OK  1757127926 " ID, RELAY_OK },
	{ "250 2.0.0 OK 1465301474 y10sm963243lal.43 - gsmtp", RELAY_OK },
	{ "250 2.1.5 OK " ID, RELAY_OK },
	{ "235 2.7.0 Accepted", RELAY_OK },
	/* Temporary by code. */
	{ "421 4.3.0 Temporary System Problem.  Try again later (10). " ID,
	    RELAY_TEMPFAIL },
	{ "421 4.7.0 Try again later, closing connection. (EHLO) " ID,
	    RELAY_TEMPFAIL },
	{ "421 4.4.5 Server busy, try again later.", RELAY_TEMPFAIL },
	{ "451 4.4.2 Timeout - closing connection. " ID, RELAY_TEMPFAIL },
	{ "454-4.7.0 Too many login attempts, please try again later. "
	    "Learn more at\n"
	    "454 4.7.0  https://support.google.com/mail/answer/7126229 " ID,
	    RELAY_TEMPFAIL },
	{ "454 4.7.0 Too many login attempts, please try again later. " ID,
	    RELAY_TEMPFAIL },
	{ "452-4.5.3 Your message has too many recipients. For more "
	    "information regarding\n"
	    "452-4.5.3 Google's sending limits, go to\n"
	    "452 4.5.3  https://support.google.com/mail/?p="
	    "TooManyRecipientsError " ID, RELAY_TEMPFAIL },
	/* Gmail's temporary 5xx: the daily quota, every wording seen. */
	{ "550-5.4.5 Daily user sending limit exceeded. For more information "
	    "on Gmail\n"
	    "550-5.4.5 sending limits go to\n"
	    "550 5.4.5  https://support.google.com/a/answer/166852 " ID,
	    RELAY_TEMPFAIL },
	{ "550 5.4.5 Daily user sending quota exceeded. " ID, RELAY_TEMPFAIL },
	{ "550 5.4.5 Daily sending quota exceeded. y10sm963243lal.43",
	    RELAY_TEMPFAIL },
	/* Permanent: credentials, both wordings. */
	{ "535-5.7.8 Username and Password not accepted. For more "
	    "information, go to\n"
	    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials " ID,
	    RELAY_PERMFAIL },
	{ "535-5.7.8 Username and Password not accepted. Learn more at\n"
	    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials " ID,
	    RELAY_PERMFAIL },
	{ "534-5.7.9 Application-specific password required. For more "
	    "information, go to\n"
	    "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor "
	    ID, RELAY_PERMFAIL },
	{ "534-5.7.9 Application-specific password required. Learn more at\n"
	    "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor "
	    ID, RELAY_PERMFAIL },
	{ "534-5.7.14 <https://accounts.google.com/signin/continue?sarp=1>\n"
	    "534-5.7.14 Please log in via your web browser and\n"
	    "534-5.7.14 then try again.\n"
	    "534-5.7.14  Learn more at\n"
	    "534 5.7.14  https://support.google.com/mail/answer/78754 " ID,
	    RELAY_PERMFAIL },
	{ "530 5.7.0 Must issue a STARTTLS command first. " ID,
	    RELAY_PERMFAIL },
	{ "530-5.7.0 Authentication Required. Learn more at\n"
	    "530 5.7.0  https://support.google.com/mail/?p=WantAuthError " ID,
	    RELAY_PERMFAIL },
	/* Permanent: the message or a recipient. */
	{ "552-5.3.4 Your message exceeded Google's message size limits. "
	    "Please visit\n"
	    "552-5.3.4  https://support.google.com/mail/?p=MaxSizeError to view "
	    "our size\n"
	    "552 5.3.4 guidelines. " ID, RELAY_PERMFAIL },
	{ "553-5.1.3 The recipient address <x> is not a valid RFC 5321 "
	    "address. Learn\n"
	    "553-5.1.3 more at\n"
	    "553 5.1.3  https://support.google.com/mail/answer/6596 " ID,
	    RELAY_PERMFAIL },
	{ "555 5.5.2 Syntax error. " ID, RELAY_PERMFAIL },
	{ "554 5.6.0 Mail message is malformed. Not accepted.",
	    RELAY_PERMFAIL },
	{ "502 5.5.1 Unrecognized command. " ID, RELAY_PERMFAIL },
	/* Keyed on code and enhanced code: not on the prose. */
	{ "550 5.7.1 Daily user sending quota exceeded.", RELAY_PERMFAIL },
	{ "550 Daily user sending quota exceeded.", RELAY_PERMFAIL },
	{ "552 5.4.5 Daily user sending quota exceeded.", RELAY_PERMFAIL },
	{ "550 5.4.6 Message exceeded 50 hops", RELAY_PERMFAIL },
	/* A 3yz where a final answer was due is not a success. */
	{ "354  Go ahead " ID, RELAY_TEMPFAIL },
};

/*
 * Every row of reference/gmail-smtp.md section 12, with the step it
 * answers: both wording profiles ("Learn more at" and "For more
 * information, go to") and the one- and two-space variants, so the
 * reaction provably keys on code, enhanced code and step only.
 */
#define LEARN	"Learn more at"
#define GOTO	"For more information, go to"
static const struct {
	enum relay_stage	 stage;
	const char		*reply;
	enum relay_reaction	 want;
} react_cases[] = {
	/* 250 after data: delivered (two spaces 2020-25, one in 2016). */
	{ RELAY_STAGE_EOM, "250 2.0.0 OK  1757127926 " ID,
	    RELAY_REACT_DELIVERED },
	{ RELAY_STAGE_EOM, "250 2.0.0 OK 1465301474 y10sm963243lal.43 - gsmtp",
	    RELAY_REACT_DELIVERED },
	/* 421 of any kind, at any step: reconnect with backoff. */
	{ RELAY_STAGE_CONNECT, "421-4.7.0 Try again later, closing connection. "
	    "(EHLO)\n421 4.7.0  https://support.google.com/mail/?p=helo " ID,
	    RELAY_REACT_RECONNECT },
	{ RELAY_STAGE_DATA, "421 4.3.0 Temporary System Problem.  Try again "
	    "later (10). " ID, RELAY_REACT_RECONNECT },
	{ RELAY_STAGE_DATA, "421 4.3.0 Temporary System Problem. Try again "
	    "later (10). " ID, RELAY_REACT_RECONNECT },
	{ RELAY_STAGE_MAIL, "421 4.7.0 Temporary System Problem. Try again "
	    "later.", RELAY_REACT_RECONNECT },
	{ RELAY_STAGE_MAIL, "421 4.4.5 Server busy, try again later.",
	    RELAY_REACT_RECONNECT },
	{ RELAY_STAGE_MAIL, "421 4.7.0 Connection expired, try reconnecting.",
	    RELAY_REACT_RECONNECT },
	{ RELAY_STAGE_AUTH, "421 4.7.0 Try again later, closing connection. "
	    ID, RELAY_REACT_RECONNECT },
	/* 451 4.4.2 idle timeout, seen as the reply to the next command. */
	{ RELAY_STAGE_MAIL, "451 4.4.2 Timeout - closing connection. " ID,
	    RELAY_REACT_RESEND },
	{ RELAY_STAGE_DATA, "451 4.4.2 Timeout - closing connection. " ID,
	    RELAY_REACT_RESEND },
	/* 454 4.7.0 to AUTH: too many logins, or a temporary problem. */
	{ RELAY_STAGE_AUTH, "454-4.7.0 Too many login attempts, please try "
	    "again later. " LEARN "\n454 4.7.0  https://support.google.com/"
	    "mail/answer/7126229 " ID, RELAY_REACT_AUTH_BACKOFF },
	{ RELAY_STAGE_AUTH, "454 4.7.0 Too many login attempts, please try "
	    "again later. " ID, RELAY_REACT_AUTH_BACKOFF },
	{ RELAY_STAGE_AUTH, "454 4.7.0 Cannot authenticate due to temporary "
	    "system problem. Try again later.", RELAY_REACT_AUTH_BACKOFF },
	{ RELAY_STAGE_AUTH, "454-4.7.0 Cannot authenticate due to a temporary "
	    "system problem. Try again later.\n454 4.7.0  https://support."
	    "google.com/mail/?p=client-login " ID, RELAY_REACT_AUTH_BACKOFF },
	/* A 454 elsewhere (STARTTLS refused) is an ordinary retry. */
	{ RELAY_STAGE_CONNECT, "454 4.7.0 TLS not available due to local "
	    "problem", RELAY_REACT_RETRY },
	/* 452 4.5.3 to RCPT: split. */
	{ RELAY_STAGE_RCPT, "452-4.5.3 Your message has too many recipients. "
	    "For more information regarding\n452-4.5.3 Google's sending "
	    "limits, go to\n452 4.5.3  https://support.google.com/mail/?p="
	    "TooManyRecipientsError " ID, RELAY_REACT_SPLIT },
	{ RELAY_STAGE_MAIL, "452 4.5.3 Your message has too many recipients.",
	    RELAY_REACT_RETRY },
	/* 550 5.4.5: pause the account, whatever the step and wording. */
	{ RELAY_STAGE_DATA, "550-5.4.5 Daily user sending limit exceeded. For "
	    "more information on Gmail\n550-5.4.5 sending limits go to\n"
	    "550 5.4.5  https://support.google.com/a/answer/166852 " ID,
	    RELAY_REACT_QUOTA },
	{ RELAY_STAGE_MAIL, "550 5.4.5 Daily user sending quota exceeded. " ID,
	    RELAY_REACT_QUOTA },
	{ RELAY_STAGE_EOM, "550 5.4.5 Daily sending quota exceeded. "
	    "y10sm963243lal.43", RELAY_REACT_QUOTA },
	{ RELAY_STAGE_RCPT, "550 5.4.5 Daily SMTP relay limit exceeded for "
	    "user.", RELAY_REACT_QUOTA },
	/* Credentials: 535 5.7.8, 534 5.7.9, 534 5.7.14, 530 5.7.0. */
	{ RELAY_STAGE_AUTH, "535-5.7.8 Username and Password not accepted. "
	    GOTO "\n535 5.7.8  https://support.google.com/mail/?p="
	    "BadCredentials " ID, RELAY_REACT_CREDENTIALS },
	{ RELAY_STAGE_AUTH, "535-5.7.8 Username and Password not accepted. "
	    LEARN "\n535 5.7.8  https://support.google.com/mail/?p="
	    "BadCredentials " ID, RELAY_REACT_CREDENTIALS },
	{ RELAY_STAGE_AUTH, "535-5.7.8 Username and Password not accepted. "
	    LEARN "\n535 5.7.8 http://support.google.com/mail/bin/answer.py?"
	    "answer=14257 " ID, RELAY_REACT_CREDENTIALS },
	{ RELAY_STAGE_AUTH, "535 5.7.1 Username and Password not accepted.",
	    RELAY_REACT_CREDENTIALS },
	{ RELAY_STAGE_AUTH, "534-5.7.9 Application-specific password required. "
	    GOTO "\n534 5.7.9  https://support.google.com/mail/?p="
	    "InvalidSecondFactor " ID, RELAY_REACT_CREDENTIALS },
	{ RELAY_STAGE_AUTH, "534-5.7.9 Application-specific password required. "
	    LEARN "\n534 5.7.9  https://support.google.com/mail/?p="
	    "InvalidSecondFactor " ID, RELAY_REACT_CREDENTIALS },
	{ RELAY_STAGE_AUTH, "534-5.7.9 Please log in with your web browser and "
	    "then try again. " LEARN "\n534 5.7.9  https://support.google.com/"
	    "mail/?p=WebLoginRequired " ID, RELAY_REACT_CREDENTIALS },
	{ RELAY_STAGE_AUTH, "534-5.7.14 <https://accounts.google.com/signin/"
	    "continue?sarp=1&scc=1>\n534-5.7.14 Please log in via your web "
	    "browser and\n534-5.7.14 then try again.\n534-5.7.14  " LEARN "\n"
	    "534 5.7.14  https://support.google.com/mail/answer/78754 " ID,
	    RELAY_REACT_CREDENTIALS },
	{ RELAY_STAGE_AUTH, "530 5.7.0 Must issue a STARTTLS command first. "
	    ID, RELAY_REACT_CREDENTIALS },
	{ RELAY_STAGE_MAIL, "530-5.7.0 Authentication Required. " LEARN "\n"
	    "530 5.7.0  https://support.google.com/mail/?p=WantAuthError " ID,
	    RELAY_REACT_CREDENTIALS },
	/* 552 size: the message only, at MAIL, RCPT or after the data. */
	{ RELAY_STAGE_MAIL, "552-5.2.3 Your message exceeded Google's message "
	    "size limits. Please visit\n552-5.2.3  https://support.google.com/"
	    "mail/?p=MaxSizeError to view our size\n552 5.2.3 guidelines. " ID,
	    RELAY_REACT_MSG_FAIL },
	{ RELAY_STAGE_EOM, "552-5.3.4 Your message exceeded Google's message "
	    "size limits. Please visit\n552-5.3.4  https://support.google.com/"
	    "mail/?p=MaxSizeError to view our size\n552 5.3.4 guidelines. " ID,
	    RELAY_REACT_MSG_FAIL },
	{ RELAY_STAGE_RCPT, "552 5.3.4 Your message exceeded Google's message "
	    "size limits.", RELAY_REACT_MSG_FAIL },
	/* 553 5.1.2 / 5.1.3 to RCPT: that recipient only. */
	{ RELAY_STAGE_RCPT, "553-5.1.2 We weren't able to find the recipient "
	    "domain. Please check for any\n553-5.1.2 spelling errors, and make "
	    "sure you didn't enter any spaces, periods,\n553 5.1.2 or other "
	    "punctuation after the recipient's email address. " ID,
	    RELAY_REACT_RCPT_FAIL },
	{ RELAY_STAGE_RCPT, "553-5.1.3 The recipient address <x> is not a valid "
	    "RFC-5321 address. Learn\n553-5.1.3 more at\n553 5.1.3  https://"
	    "support.google.com/mail/answer/6596 " ID, RELAY_REACT_RCPT_FAIL },
	{ RELAY_STAGE_RCPT, "550-5.1.1 The email account that you tried to "
	    "reach does not exist.\n550 5.1.1  https://support.google.com/mail/"
	    "?p=NoSuchUser " ID, RELAY_REACT_RCPT_FAIL },
	/* 555, 550 5.7.x, 554 5.6.0: fail the message. */
	{ RELAY_STAGE_MAIL, "555-5.5.2 Syntax error, cannot decode response. "
	    GOTO "\n555-5.5.2  https://support.google.com/a/answer/3221692 and "
	    "review RFC 5321\n555 5.5.2 specifications. " ID,
	    RELAY_REACT_MSG_FAIL },
	{ RELAY_STAGE_MAIL, "555 5.5.2 Syntax error. " ID,
	    RELAY_REACT_MSG_FAIL },
	{ RELAY_STAGE_EOM, "550 5.7.1 Our system has detected an unusual rate "
	    "of unsolicited mail.", RELAY_REACT_MSG_FAIL },
	{ RELAY_STAGE_EOM, "554 5.6.0 Mail message is malformed. Not accepted.",
	    RELAY_REACT_MSG_FAIL },
	/* 502/503/504/501 protocol errors: fail, do not loop. */
	{ RELAY_STAGE_CONNECT, "502 5.5.1 Unrecognized command. " ID,
	    RELAY_REACT_MSG_FAIL },
	{ RELAY_STAGE_MAIL, "503 5.5.1 EHLO/HELO first.",
	    RELAY_REACT_MSG_FAIL },
	{ RELAY_STAGE_AUTH, "504 5.7.4 Unrecognized Authentication Type. " ID,
	    RELAY_REACT_MSG_FAIL },
	{ RELAY_STAGE_AUTH, "501 5.5.2 Cannot Decode response. " ID,
	    RELAY_REACT_MSG_FAIL },
	/* Other temporary replies: retry with backoff. */
	{ RELAY_STAGE_EOM, "451 4.3.0 Mail server temporarily rejected "
	    "message. " ID, RELAY_REACT_RETRY },
	/* The prose counts for nothing. */
	{ RELAY_STAGE_AUTH, "535 5.7.9 Username and Password not accepted.",
	    RELAY_REACT_MSG_FAIL },
	{ RELAY_STAGE_DATA, "550 5.7.1 Daily user sending quota exceeded.",
	    RELAY_REACT_MSG_FAIL },
	{ RELAY_STAGE_MAIL, "454 4.7.0 Too many login attempts, please try "
	    "again later.", RELAY_REACT_RETRY },
	{ RELAY_STAGE_MAIL, "451 4.4.3 Timeout - closing connection.",
	    RELAY_REACT_RETRY },
	{ RELAY_STAGE_DATA, "354  Go ahead " ID, RELAY_REACT_RETRY },
};

/* Feed a '\n'-separated reply into r; ck_assert that it completes. */
static void
policy_feed(struct smtp_reply *r, const char *text)
{
	enum smtp_reply_status	 st = SMTP_REPLY_MORE;
	const char		*p = text, *nl;
	size_t			 len;

	smtp_reply_init(r);
	while (*p != '\0') {
		nl = strchr(p, '\n');
		len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		st = smtp_reply_feed(r, p, len);
		ck_assert_msg(st != SMTP_REPLY_ERROR, "rejected line of: %s",
		    text);
		p += len;
		if (*p == '\n')
			p++;
	}
	ck_assert_msg(st == SMTP_REPLY_DONE, "incomplete: %s", text);
}

START_TEST(test_relay_policy_gmail_replies)
{
	struct smtp_reply	 r;
	enum relay_result	 got;

	policy_feed(&r, policy_cases[_i].reply);
	got = relay_policy_classify(&r);
	ck_assert_msg(got == policy_cases[_i].want,
	    "case %d: got %d, want %d for: %s", _i, (int)got,
	    (int)policy_cases[_i].want, policy_cases[_i].reply);
}
END_TEST

START_TEST(test_relay_policy_react)
{
	struct smtp_reply	 r;
	enum relay_reaction	 got;

	policy_feed(&r, react_cases[_i].reply);
	got = relay_policy_react(react_cases[_i].stage, &r);
	ck_assert_msg(got == react_cases[_i].want,
	    "case %d: got %s, want %s for: %s", _i, relay_policy_name(got),
	    relay_policy_name(react_cases[_i].want), react_cases[_i].reply);
	/* The reaction implies the message's result. */
	ck_assert_int_eq(relay_policy_result(got),
	    got == RELAY_REACT_DELIVERED ? RELAY_OK :
	    (got == RELAY_REACT_CREDENTIALS || got == RELAY_REACT_RCPT_FAIL ||
	    got == RELAY_REACT_MSG_FAIL) ? RELAY_PERMFAIL : RELAY_TEMPFAIL);
}
END_TEST

START_TEST(test_relay_policy_absent_reply)
{
	struct smtp_reply	 r;

	ck_assert_int_eq(relay_policy_classify(NULL), RELAY_TEMPFAIL);
	smtp_reply_init(&r);
	ck_assert_int_eq(relay_policy_classify(&r), RELAY_TEMPFAIL);
}
END_TEST

START_TEST(test_relay_policy_malformed_codes)
{
	struct smtp_reply	 r;

	/* Codes outside 200..599 never count as delivered or rejected. */
	smtp_reply_init(&r);
	r.nlines = 1;
	r.code = 199;
	ck_assert_int_eq(relay_policy_classify(&r), RELAY_TEMPFAIL);
	r.code = 600;
	ck_assert_int_eq(relay_policy_classify(&r), RELAY_TEMPFAIL);
	r.code = 250;
	ck_assert_int_eq(relay_policy_classify(&r), RELAY_OK);
	r.code = 550;
	ck_assert_int_eq(relay_policy_classify(&r), RELAY_PERMFAIL);
	memcpy(r.enh, "5.4.5", sizeof("5.4.5"));
	ck_assert_int_eq(relay_policy_classify(&r), RELAY_TEMPFAIL);
}
END_TEST

Suite *
relay_policy_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("relay_policy");
	tc = tcase_create("gmail");
	tcase_add_loop_test(tc, test_relay_policy_gmail_replies, 0,
	    (int)nitems_ck(policy_cases));
	suite_add_tcase(s, tc);
	tc = tcase_create("react");
	tcase_add_loop_test(tc, test_relay_policy_react, 0,
	    (int)nitems_ck(react_cases));
	suite_add_tcase(s, tc);
	tc = tcase_create("errors");
	tcase_add_test(tc, test_relay_policy_absent_reply);
	tcase_add_test(tc, test_relay_policy_malformed_codes);
	suite_add_tcase(s, tc);
	return s;
}
