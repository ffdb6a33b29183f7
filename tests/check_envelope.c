/*
 * check_envelope.c: the envelope text format, its exact dump, the
 * dump/load round trip and every way the strict loader refuses a file.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_relayq.h"
#include "envelope.h"

#define L_VER	"version: 1\n"
#define L_ID	"id: 20261126T152134.000123-4f9a2c\n"
#define L_SND	"sender: alice@example.com\n"
#define L_RCPT	"rcpt: bob@example.com\n"
#define L_SUB	"submitted: 1795705294\n"
#define L_UID	"uid: 1000\n"
#define L_ATT	"attempts: 0\n"
#define L_NEXT	"next-attempt: 1795705294\n"
#define L_STATE	"state: queued\n"
#define L_LAST	"last-reply: 421 4.7.0 Try again later\n"
#define HEAD	L_VER L_ID L_SND L_RCPT
#define TAIL	L_SUB L_UID L_ATT L_NEXT L_STATE L_LAST
#define GOOD	HEAD TAIL

/* Load text from memory into env; the loader's return value. */
static int
load_text(struct envelope *env, const char *text, size_t len, char *err,
    size_t errlen)
{
	FILE	*fp;
	int	 ret;

	/* fmemopen wants a non-const buffer but only reads it in "r" mode. */
	fp = len > 0 ? fmemopen((void *)(uintptr_t)text, len, "r") :
	    fopen("/dev/null", "r");
	ck_assert_ptr_nonnull(fp);
	ret = envelope_load(env, fp, "q/E1/envelope", err, errlen);
	fclose(fp);
	return ret;
}

/* Dump env into a new malloc'd string; the dump's return value. */
static int
dump_text(const struct envelope *env, char **out)
{
	FILE	*fp;
	size_t	 len;
	int	 ret;

	*out = NULL;
	fp = open_memstream(out, &len);
	ck_assert_ptr_nonnull(fp);
	ret = envelope_dump(env, fp);
	fclose(fp);
	return ret;
}

/* Fill env with a failed message to three recipients. */
static void
make_envelope(struct envelope *env)
{
	envelope_init(env);
	strcpy(env->id, "20261126T152134.000123-4f9a2c");
	strcpy(env->sender, "alice@example.com");
	envelope_add_rcpt(env, "bob@example.com");
	envelope_add_rcpt(env, "Carol.Smith@Example.ORG");
	envelope_add_rcpt(env, "dave+tag@example.net");
	env->submitted = 1795705294;
	env->uid = 1000;
	env->attempts = 7;
	env->next_attempt = 1795712494;
	env->state = ENVELOPE_FAILED;
	strcpy(env->last_reply, "550 5.7.1 Rejected:  two  spaces kept");
}

/* dump writes every key in the documented order, exactly. */
START_TEST(test_envelope_dump_exact)
{
	struct envelope	 env;
	char		*text;

	make_envelope(&env);
	ck_assert_int_eq(dump_text(&env, &text), 0);
	ck_assert_str_eq(text,
	    "version: 1\n"
	    "id: 20261126T152134.000123-4f9a2c\n"
	    "sender: alice@example.com\n"
	    "rcpt: bob@example.com\n"
	    "rcpt: Carol.Smith@Example.ORG\n"
	    "rcpt: dave+tag@example.net\n"
	    "submitted: 1795705294\n"
	    "uid: 1000\n"
	    "attempts: 7\n"
	    "next-attempt: 1795712494\n"
	    "state: failed\n"
	    "last-reply: 550 5.7.1 Rejected:  two  spaces kept\n");
	free(text);
	envelope_fini(&env);
}
END_TEST

/* What dump writes, load reads back field for field. */
START_TEST(test_envelope_round_trip)
{
	struct envelope	 in, out;
	char		*text, err[256];
	size_t		 i;

	make_envelope(&in);
	ck_assert_int_eq(dump_text(&in, &text), 0);
	ck_assert_int_eq(load_text(&out, text, strlen(text), err, sizeof(err)),
	    0);
	ck_assert_str_eq(out.id, in.id);
	ck_assert_str_eq(out.sender, in.sender);
	ck_assert_uint_eq(out.nrcpt, 3);
	for (i = 0; i < 3; i++)
		ck_assert_str_eq(out.rcpt[i], in.rcpt[i]);
	ck_assert_int_eq(out.submitted, 1795705294);
	ck_assert_uint_eq(out.uid, 1000);
	ck_assert_uint_eq(out.attempts, 7);
	ck_assert_int_eq(out.next_attempt, 1795712494);
	ck_assert_int_eq(out.state, ENVELOPE_FAILED);
	ck_assert_str_eq(out.last_reply, in.last_reply);
	free(text);
	envelope_fini(&in);
	envelope_fini(&out);
	ck_assert_ptr_null(out.rcpt);
	ck_assert_uint_eq(out.nrcpt, 0);
}
END_TEST

/* The null sender and an empty last reply are written as "key:". */
START_TEST(test_envelope_empty_values)
{
	struct envelope	 in, out;
	char		*text, err[256];

	make_envelope(&in);
	in.sender[0] = '\0';
	in.last_reply[0] = '\0';
	in.state = ENVELOPE_QUEUED;
	ck_assert_int_eq(dump_text(&in, &text), 0);
	ck_assert_ptr_nonnull(strstr(text, "\nsender:\nrcpt: "));
	ck_assert_ptr_nonnull(strstr(text, "\nstate: queued\nlast-reply:\n"));
	ck_assert_int_eq(load_text(&out, text, strlen(text), err, sizeof(err)),
	    0);
	ck_assert_str_eq(out.sender, "");
	ck_assert_str_eq(out.last_reply, "");
	ck_assert_int_eq(out.state, ENVELOPE_QUEUED);
	free(text);
	envelope_fini(&out);
	envelope_fini(&in);
}
END_TEST

/* State uncertain carries its time; other states write no such key. */
START_TEST(test_envelope_uncertain)
{
	struct envelope	 in, out;
	char		*text, err[256];

	make_envelope(&in);
	in.state = ENVELOPE_UNCERTAIN;
	in.uncertain_since = 1795705300;
	ck_assert_int_eq(dump_text(&in, &text), 0);
	ck_assert_ptr_nonnull(strstr(text, "\nstate: uncertain\n"));
	ck_assert_ptr_nonnull(strstr(text, "\nuncertain-since: 1795705300\n"));
	ck_assert_int_eq(load_text(&out, text, strlen(text), err, sizeof(err)),
	    0);
	ck_assert_int_eq(out.state, ENVELOPE_UNCERTAIN);
	ck_assert_int_eq((long long)out.uncertain_since, 1795705300LL);
	free(text);
	envelope_fini(&out);
	in.state = ENVELOPE_QUEUED;
	ck_assert_int_eq(dump_text(&in, &text), 0);
	ck_assert_ptr_null(strstr(text, "uncertain"));
	free(text);
	envelope_fini(&in);
}
END_TEST

/* rcpt-reply lines settle recipients; a pending one has none. */
START_TEST(test_envelope_rcpt_reply)
{
	struct envelope	 in, out;
	char		*text, err[256];
	const char	*bad;

	envelope_init(&in);
	memcpy(in.id, "20261126T152134.000123-4f9a2c",
	    sizeof("20261126T152134.000123-4f9a2c"));
	memcpy(in.sender, "a@example.com", sizeof("a@example.com"));
	envelope_add_rcpt(&in, "b@example.org");
	envelope_add_rcpt(&in, "\"c d\"@example.org");
	envelope_add_rcpt(&in, "e@bad.example");
	envelope_set_rcpt_reply(&in, 1, "250 2.0.0 OK  1757127926 x - gsmtp");
	envelope_set_rcpt_reply(&in, 2, "553 5.1.2 We weren't able to find "
	    "the recipient domain.");
	ck_assert_int_eq(dump_text(&in, &text), 0);
	ck_assert_ptr_nonnull(strstr(text, "\nrcpt-reply: \"c d\"@example.org "
	    "250 2.0.0 OK  1757127926 x - gsmtp\nrcpt-reply: e@bad.example 553 "
	    "5.1.2 We weren't able to find the recipient domain.\n"));
	ck_assert_ptr_null(strstr(text, "rcpt-reply: b@"));
	ck_assert_int_eq(load_text(&out, text, strlen(text), err, sizeof(err)),
	    0);
	ck_assert_ptr_null(envelope_rcpt_reply(&out, 0));
	ck_assert_str_eq(envelope_rcpt_reply(&out, 1),
	    "250 2.0.0 OK  1757127926 x - gsmtp");
	ck_assert_str_eq(envelope_rcpt_reply(&out, 2), "553 5.1.2 We weren't "
	    "able to find the recipient domain.");
	free(text);
	envelope_fini(&out);
	envelope_fini(&in);
	/* Not a recipient, or settled twice: refused by name. */
	bad = "version: 1\nid: 20261126T152134.000123-4f9a2c\nsender:\n"
	    "rcpt: b@x\nsubmitted: 1\nuid: 0\nattempts: 0\nnext-attempt: 1\n"
	    "state: queued\nlast-reply:\nrcpt-reply: c@x 250 ok\n";
	ck_assert_int_eq(load_text(&out, bad, strlen(bad), err, sizeof(err)),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "rcpt-reply: not a pending "
	    "recipient"));
}
END_TEST

static const struct {
	const char	*text;
	const char	*sender;
	const char	*last;
} good_cases[] = {
	{ GOOD, "alice@example.com", "421 4.7.0 Try again later" },
	{ HEAD L_SUB L_UID L_ATT L_NEXT L_STATE "last-reply: \n",
	    "alice@example.com", "" },
	{ HEAD L_SUB L_UID L_ATT L_NEXT L_STATE "last-reply:\n",
	    "alice@example.com", "" },
	{ L_VER L_ID "sender: \n" L_RCPT TAIL, "",
	    "421 4.7.0 Try again later" },
	/* Keys after version may come in any order. */
	{ L_VER L_LAST L_STATE L_NEXT L_ATT L_UID L_SUB L_RCPT L_SND L_ID,
	    "alice@example.com", "421 4.7.0 Try again later" },
	/* Values are taken verbatim after ": ", UTF-8 included. */
	{ HEAD L_SUB L_UID L_ATT L_NEXT L_STATE
	    "last-reply: 550  x: y \xc3\xa9 \n", "alice@example.com",
	    "550  x: y \xc3\xa9 " },
};

/* Accepted variants load with the exact values. */
START_TEST(test_envelope_load_good)
{
	struct envelope	 env;
	char		 err[256] = "";
	int		 ret;

	ret = load_text(&env, good_cases[_i].text, strlen(good_cases[_i].text),
	    err, sizeof(err));
	ck_assert_msg(ret == 0, "case %d: %s", _i, err);
	ck_assert_str_eq(env.id, "20261126T152134.000123-4f9a2c");
	ck_assert_str_eq(env.sender, good_cases[_i].sender);
	ck_assert_uint_eq(env.nrcpt, 1);
	ck_assert_str_eq(env.rcpt[0], "bob@example.com");
	ck_assert_int_eq(env.submitted, 1795705294);
	ck_assert_uint_eq(env.uid, 1000);
	ck_assert_uint_eq(env.attempts, 0);
	ck_assert_int_eq(env.next_attempt, 1795705294);
	ck_assert_int_eq(env.state, ENVELOPE_QUEUED);
	ck_assert_str_eq(env.last_reply, good_cases[_i].last);
	envelope_fini(&env);
}
END_TEST

#define E	"q/E1/envelope:"

static const struct {
	const char	*text;
	const char	*err;
} bad_cases[] = {
	{ "",		E "0: version: missing key" },
	{ L_ID L_VER,	E "1: id: \"version: 1\" must come first" },
	{ "version: 2\n" L_ID, E "1: version: unsupported version" },
	{ "version: 0\n", E "1: version: unsupported version" },
	{ "version: one\n", E "1: version: bad number" },
	{ "version: 01x\n", E "1: version: bad number" },
	{ "Version: 1\n", E "1: Version: unknown key" },
	{ L_VER L_VER,	E "2: version: duplicate key" },
	{ L_VER L_ID L_ID, E "3: id: duplicate key" },
	{ HEAD L_SUB L_SUB, E "6: submitted: duplicate key" },
	{ HEAD "color: red\n" TAIL, E "5: color: unknown key" },
	{ HEAD "\n" TAIL, E "5: -: missing \": \"" },
	{ HEAD "garbage\n" TAIL, E "5: garbage: missing \": \"" },
	{ HEAD "attempts:0\n", E "5: attempts: missing \": \"" },
	{ HEAD "attempts :0\n", E "5: attempts : missing \": \"" },
	{ HEAD "attempts : 0\n", E "5: attempts : unknown key" },
	{ HEAD L_SUB L_UID L_ATT L_NEXT L_LAST, E "9: state: missing key" },
	{ L_VER L_ID L_SND TAIL, E "9: rcpt: missing key" },
	{ L_VER L_ID L_RCPT TAIL, E "9: sender: missing key" },
	{ HEAD L_SUB L_UID L_ATT L_NEXT L_STATE,
	    E "9: last-reply: missing key" },
	{ HEAD "attempts: -1\n", E "5: attempts: bad number" },
	{ HEAD "attempts: 1x\n", E "5: attempts: bad number" },
	{ HEAD "attempts: \n", E "5: attempts: bad number" },
	{ HEAD "attempts:\n", E "5: attempts: bad number" },
	{ HEAD "attempts:  1\n", E "5: attempts: bad number" },
	{ HEAD "attempts: 4294967296\n", E "5: attempts: number out of range" },
	{ HEAD "uid: 4294967295\n", E "5: uid: number out of range" },
	{ HEAD "submitted: 99999999999999999999\n",
	    E "5: submitted: number out of range" },
	{ HEAD "next-attempt: 1.5\n", E "5: next-attempt: bad number" },
	{ HEAD "state: deferred\n", E "5: state: unknown state" },
	{ HEAD "state: QUEUED\n", E "5: state: unknown state" },
	{ HEAD "last-reply: a\tb\n", E "5: last-reply: control character "
	    "in value" },
	{ L_VER L_ID "sender: alice@example.com\r\n",
	    E "3: sender: control character in value" },
	{ L_VER L_ID "sender: a\x7f" "b\n",
	    E "3: sender: control character in value" },
	{ L_VER "id: ../etc\n", E "2: id: bad queue ID" },
	{ L_VER "id: .hidden\n", E "2: id: bad queue ID" },
	{ L_VER "id: a/b\n", E "2: id: bad queue ID" },
	{ L_VER "id:\n", E "2: id: bad queue ID" },
	{ L_VER "id: 0123456789012345678901234567890123456789012345678901"
	    "234567890123\n", E "2: id: bad queue ID" },
	{ HEAD "rcpt:\n", E "5: rcpt: empty recipient" },
	{ HEAD "x\x01y: 1\n", E "5: x?y: unknown key" },
	{ GOOD "extra: 1\n", E "11: extra: unknown key" },
	{ GOOD "account: not-an-address\n",
	    E "11: account: bad account address" },
	{ GOOD "account:\n", E "11: account: bad account address" },
	{ GOOD "account: ops@gmail.com\naccount: ops@gmail.com\n",
	    E "12: account: duplicate key" },
	/* A file cut short without its final newline is refused. */
	{ HEAD L_SUB L_UID L_ATT L_NEXT L_STATE "last-reply: 421 4.7.0",
	    E "10: -: line not terminated by a newline" },
};

/* Every malformed file fails with the exact "file:line: key: message". */
START_TEST(test_envelope_load_bad)
{
	struct envelope	 env;
	char		 err[256] = "";
	int		 ret;

	ret = load_text(&env, bad_cases[_i].text, strlen(bad_cases[_i].text),
	    err, sizeof(err));
	ck_assert_msg(ret == -1, "case %d loaded: %s", _i, bad_cases[_i].text);
	ck_assert_str_eq(err, bad_cases[_i].err);
	ck_assert_uint_eq(env.nrcpt, 0);
	ck_assert_ptr_null(env.rcpt);
}
END_TEST

/* A NUL byte inside a line is refused, not read as the end of it. */
START_TEST(test_envelope_load_nul)
{
	struct envelope	 env;
	const char	 text[] = HEAD "last-reply: a\0b\n";
	char		 err[256];

	ck_assert_int_eq(load_text(&env, text, sizeof(text) - 1, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, E "5: -: NUL byte in line");
}
END_TEST

/* Build a file of n recipients (each "rcpt: rN@example.com"). */
static char *
rcpt_text(size_t n)
{
	char	*text;
	size_t	 i, len, cap;

	cap = 1024 + n * 32;
	text = malloc(cap);
	ck_assert_ptr_nonnull(text);
	len = (size_t)snprintf(text, cap, "%s%s%s", L_VER, L_ID, L_SND);
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len,
		    "rcpt: r%zu@example.com\n", i);
	snprintf(text + len, cap - len, "%s", TAIL);
	return text;
}

/* ENVELOPE_RCPT_MAX recipients load; one more is refused at its line. */
START_TEST(test_envelope_rcpt_cap)
{
	struct envelope	 env;
	char		*text, err[256], want[256];

	text = rcpt_text(ENVELOPE_RCPT_MAX);
	ck_assert_int_eq(load_text(&env, text, strlen(text), err, sizeof(err)),
	    0);
	ck_assert_uint_eq(env.nrcpt, ENVELOPE_RCPT_MAX);
	ck_assert_str_eq(env.rcpt[ENVELOPE_RCPT_MAX - 1], "r999@example.com");
	envelope_fini(&env);
	free(text);

	text = rcpt_text(ENVELOPE_RCPT_MAX + 1);
	ck_assert_int_eq(load_text(&env, text, strlen(text), err, sizeof(err)),
	    -1);
	snprintf(want, sizeof(want), E "%d: rcpt: too many recipients",
	    3 + ENVELOPE_RCPT_MAX + 1);
	ck_assert_str_eq(err, want);
	ck_assert_uint_eq(env.nrcpt, 0);
	free(text);
}
END_TEST

/* Values one byte under their buffer load; at the buffer size they fail. */
START_TEST(test_envelope_value_limits)
{
	struct envelope	 env;
	char		 text[4096], val[2048], err[256];

	memset(val, 'a', sizeof(val));
	val[MAILADDR_MAX - 1] = '\0';
	snprintf(text, sizeof(text), L_VER L_ID "sender: %s\n" L_RCPT TAIL,
	    val);
	ck_assert_int_eq(load_text(&env, text, strlen(text), err, sizeof(err)),
	    0);
	ck_assert_uint_eq(strlen(env.sender), MAILADDR_MAX - 1);
	envelope_fini(&env);
	val[MAILADDR_MAX - 1] = 'a';
	val[MAILADDR_MAX] = '\0';
	snprintf(text, sizeof(text), L_VER L_ID "sender: %s\n" L_RCPT TAIL,
	    val);
	ck_assert_int_eq(load_text(&env, text, strlen(text), err, sizeof(err)),
	    -1);
	ck_assert_str_eq(err, E "3: sender: value too long");
	snprintf(text, sizeof(text), HEAD "rcpt: %s\n" TAIL, val);
	ck_assert_int_eq(load_text(&env, text, strlen(text), err, sizeof(err)),
	    -1);
	ck_assert_str_eq(err, E "5: rcpt: value too long");

	memset(val, 'b', sizeof(val));
	val[ENVELOPE_REPLY_MAX - 1] = '\0';
	snprintf(text, sizeof(text), HEAD L_SUB L_UID L_ATT L_NEXT L_STATE
	    "last-reply: %s\n", val);
	ck_assert_int_eq(load_text(&env, text, strlen(text), err, sizeof(err)),
	    0);
	ck_assert_uint_eq(strlen(env.last_reply), ENVELOPE_REPLY_MAX - 1);
	envelope_fini(&env);
	val[ENVELOPE_REPLY_MAX - 1] = 'b';
	val[ENVELOPE_REPLY_MAX] = '\0';
	snprintf(text, sizeof(text), HEAD L_SUB L_UID L_ATT L_NEXT L_STATE
	    "last-reply: %s\n", val);
	ck_assert_int_eq(load_text(&env, text, strlen(text), err, sizeof(err)),
	    -1);
	ck_assert_str_eq(err, E "10: last-reply: value too long");

	memset(val, 'c', sizeof(val));
	val[sizeof(val) - 1] = '\0';
	snprintf(text, sizeof(text), HEAD "last-reply: %s\n", val);
	ck_assert_int_eq(load_text(&env, text, strlen(text), err, sizeof(err)),
	    -1);
	ck_assert_str_eq(err, E "5: -: line too long");
}
END_TEST

/* The error is truncated to errlen and always terminated. */
START_TEST(test_envelope_error_truncated)
{
	struct envelope	 env;
	char		 err[8];

	memset(err, 'x', sizeof(err));
	ck_assert_int_eq(load_text(&env, "", 0, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "q/E1/en");
}
END_TEST

/* dump refuses envelopes that load would reject, and writes nothing. */
START_TEST(test_envelope_dump_refuses)
{
	struct envelope	 env;
	char		*text;
	int		 step;

	for (step = 0; step < 7; step++) {
		make_envelope(&env);
		switch (step) {
		case 0:
			envelope_fini(&env);	/* no recipients */
			break;
		case 1:
			strcpy(env.rcpt[1], "x\ny");
			break;
		case 2:
			strcpy(env.last_reply, "250 ok\nrcpt: evil@x.test");
			break;
		case 3:
			strcpy(env.sender, "a\rb");
			break;
		case 4:
			strcpy(env.id, "../x");
			break;
		case 5:
			env.next_attempt = -1;
			break;
		case 6:
			env.state = (enum envelope_state)7;
			break;
		}
		errno = 0;
		ck_assert_msg(dump_text(&env, &text) == -1, "step %d", step);
		ck_assert_int_eq(errno, EINVAL);
		ck_assert_str_eq(text, "");
		free(text);
		envelope_fini(&env);
	}
}
END_TEST

/* A write error (a full disk) is reported, not swallowed. */
START_TEST(test_envelope_dump_write_error)
{
	struct envelope	 env;
	FILE		*fp;

	fp = fopen("/dev/full", "w");
	ck_assert_ptr_nonnull(fp);
	make_envelope(&env);
	errno = 0;
	ck_assert_int_eq(envelope_dump(&env, fp), -1);
	ck_assert_int_eq(errno, ENOSPC);
	fclose(fp);
	envelope_fini(&env);
}
END_TEST

/* State names match the file format; rcpt copies are independent. */
START_TEST(test_envelope_names_and_rcpt)
{
	struct envelope	 env;
	char		 addr[] = "bob@example.com";

	ck_assert_str_eq(envelope_state_name(ENVELOPE_QUEUED), "queued");
	ck_assert_str_eq(envelope_state_name(ENVELOPE_FAILED), "failed");
	envelope_init(&env);
	ck_assert_int_eq(env.state, ENVELOPE_QUEUED);
	ck_assert_uint_eq(env.nrcpt, 0);
	envelope_add_rcpt(&env, addr);
	addr[0] = 'B';
	ck_assert_str_eq(env.rcpt[0], "bob@example.com");
	envelope_fini(&env);
	ck_assert_ptr_null(env.rcpt);
	envelope_fini(&env);
}
END_TEST

/* The envelope suite. */
/*
 * "account" is optional: absent it loads as "", present it round-trips
 * and is written last; dump refuses an invalid one.
 */
START_TEST(test_envelope_account)
{
	struct envelope	 env, back;
	char		 err[256] = "", *buf = NULL;
	size_t		 len = 0;
	FILE		*fp;

	ck_assert_int_eq(load_text(&env, GOOD, strlen(GOOD), err,
	    sizeof(err)), 0);
	ck_assert_str_eq(env.account, "");
	fp = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(envelope_dump(&env, fp), 0);
	fclose(fp);
	ck_assert_ptr_null(strstr(buf, "account"));
	free(buf);
	buf = NULL;

	strcpy(env.account, "ops@gmail.com");
	fp = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(envelope_dump(&env, fp), 0);
	fclose(fp);
	ck_assert_str_eq(buf, GOOD "account: ops@gmail.com\n");
	ck_assert_int_eq(load_text(&back, buf, len, err, sizeof(err)), 0);
	ck_assert_str_eq(back.account, "ops@gmail.com");
	envelope_fini(&back);
	free(buf);
	buf = NULL;

	strcpy(env.account, "no at sign");
	fp = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(envelope_dump(&env, fp), -1);
	ck_assert_int_eq(errno, EINVAL);
	fclose(fp);
	free(buf);
	envelope_fini(&env);
}
END_TEST

Suite *
envelope_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("envelope");

	tc = tcase_create("dump");
	tcase_add_test(tc, test_envelope_dump_exact);
	tcase_add_test(tc, test_envelope_round_trip);
	tcase_add_test(tc, test_envelope_empty_values);
	tcase_add_test(tc, test_envelope_uncertain);
	tcase_add_test(tc, test_envelope_rcpt_reply);
	tcase_add_test(tc, test_envelope_dump_refuses);
	tcase_add_test(tc, test_envelope_dump_write_error);
	tcase_add_test(tc, test_envelope_names_and_rcpt);
	tcase_add_test(tc, test_envelope_account);
	suite_add_tcase(s, tc);

	tc = tcase_create("load");
	tcase_add_loop_test(tc, test_envelope_load_good, 0,
	    (int)nitems_ck(good_cases));
	tcase_add_loop_test(tc, test_envelope_load_bad, 0,
	    (int)nitems_ck(bad_cases));
	tcase_add_test(tc, test_envelope_load_nul);
	tcase_add_test(tc, test_envelope_error_truncated);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_envelope_rcpt_cap);
	tcase_add_test(tc, test_envelope_value_limits);
	suite_add_tcase(s, tc);

	return s;
}
