/*
 * it_gmail.c: relayqd as a Gmail client, against the stand-in producing
 * Gmail's replies (reference/gmail-smtp.md section 12): refused
 * credentials end every attempt with them after one AUTH, the daily quota
 * pauses the account without counting attempts, too many logins hold the
 * account's logins, 421 and 451 4.4.2 reconnect without failing the
 * message, a connection lost after the final dot leaves the entry
 * "uncertain" and the retry sends the same bytes, AUTH LOGIN when PLAIN is
 * not offered, XOAUTH2 with a valid, an expired and a throttled token,
 * implicit TLS, and an EHLO name that is never "localhost".
 * Each test runs the real programs in a fresh directory (tests/harness.h).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"
#include "util.h"

#define GM_TIMEOUT	60		/* per test, before the multiplier */
#define GM_USER		"alice@example.com"
#define GM_RCPT		"bob@example.net"
#define GM_GOOD		"Gm4il-app-pass-OK"
#define GM_BAD		"Gm4il-wrong-pass"
#define GM_TOKEN	"ya29.it-gmail-valid-token"
#define GM_EXPIRED	"ya29.it-gmail-expired-token"
#define GM_BODY		"Subject: it_gmail\r\nMessage-ID: <it-gmail@example." \
			"com>\r\n\r\nhello\r\n"

Suite	*gmail_suite(void);

static struct harness	 gh;		/* one per forked test */

/* Assert, printing the logs first, and clean up on failure. */
#define gm_assert(cond, ...)						\
	harness_check(cond, harness_dump(&gh), harness_fini(&gh),	\
	    __VA_ARGS__)

/* Format into buf; it must fit. */
#define gm_fmt(buf, len, ...)						\
	gm_assert(harness_fmt((buf), (len), __VA_ARGS__) == 0,		\
	    "does not fit: %s", #buf)

/* A fresh directory per test. */
static void
gm_setup(void)
{
	if (harness_init(&gh) == -1) {
		harness_fini(&gh);
		ck_abort_msg("harness_init failed");
	}
}

/* Every process still running must exit 0 on SIGTERM; then clean up. */
static void
gm_teardown(void)
{
	char	 why[PATH_MAX + 128];

	gm_assert(harness_stop_all(&gh, why, sizeof(why)) == 0, "%s", why);
	harness_fini(&gh);
}

/* The standard bounded wait. */
static double
gm_wait(void)
{
	return harness_scale(HARNESS_WAIT);
}

/* Start the stand-in with the extra arguments, or fail. */
static struct harness_proc *
gm_standin(const char *const *extra)
{
	struct harness_proc	*p;

	p = harness_standin(&gh, NULL, extra);
	gm_assert(p != NULL, "the stand-in did not start");
	return p;
}

/* Start relayqd towards 127.0.0.1:port (0: the stand-in's), or fail. */
static struct harness_proc *
gm_relayqd(int port, const char *const *extra)
{
	struct harness_proc	*p;

	p = harness_relayqd(&gh, NULL, port, extra);
	gm_assert(p != NULL, "relayqd did not start");
	return p;
}

/* Submit one message of body to the nrcpt recipients; its ID into id. */
static void
gm_submit_to(const char *const *rcpts, size_t nrcpt, const char *body,
    char *id, size_t idlen)
{
	struct harness_smtp	 s;
	char			 plain[128];
	char			*b64;
	size_t			 i;
	int			 len;

	len = snprintf(plain, sizeof(plain), "%c%s%c%s", '\0', GM_USER, '\0',
	    GM_GOOD);
	gm_assert(len > 0 && (size_t)len < sizeof(plain), "AUTH too long");
	b64 = harness_b64_encode(plain, (size_t)len);
	gm_assert(b64 != NULL, "out of memory");
	gm_assert(harness_smtp_open(&s, gh.socket) == 220, "banner: %s",
	    s.reply);
	gm_assert(harness_smtp_cmd(&s, "EHLO it.example") == 250, "EHLO: %s",
	    s.reply);
	gm_assert(harness_smtp_cmd(&s, "AUTH PLAIN %s", b64) == 235,
	    "AUTH: %s", s.reply);
	free(b64);
	gm_assert(harness_smtp_cmd(&s, "MAIL FROM:<%s>", GM_USER) == 250,
	    "MAIL: %s", s.reply);
	for (i = 0; i < nrcpt; i++)
		gm_assert(harness_smtp_cmd(&s, "RCPT TO:<%s>", rcpts[i]) == 250,
		    "RCPT %s: %s", rcpts[i], s.reply);
	gm_assert(harness_smtp_cmd(&s, "DATA") == 354, "DATA: %s", s.reply);
	gm_assert(harness_smtp_data(&s, body, strlen(body)) == 250 &&
	    harness_queue_id(s.reply, id, idlen) == 0, "end of data: %s",
	    s.reply);
	gm_assert(harness_smtp_cmd(&s, "QUIT") == 221, "QUIT: %s", s.reply);
	harness_smtp_close(&s);
}

/*
 * Submit n messages by hand in one session authenticated as GM_USER with
 * password; their queue IDs into ids (n of ENVELOPE-sized slots).
 */
static void
gm_submit(const char *password, size_t n, char ids[][64])
{
	struct harness_smtp	 s;
	char			 plain[128];
	char			*b64;
	size_t			 i;
	int			 len;

	len = snprintf(plain, sizeof(plain), "%c%s%c%s", '\0', GM_USER, '\0',
	    password);
	gm_assert(len > 0 && (size_t)len < sizeof(plain), "AUTH too long");
	b64 = harness_b64_encode(plain, (size_t)len);
	gm_assert(b64 != NULL, "out of memory");
	gm_assert(harness_smtp_open(&s, gh.socket) == 220, "banner: %s",
	    s.reply);
	gm_assert(harness_smtp_cmd(&s, "EHLO it.example") == 250, "EHLO: %s",
	    s.reply);
	gm_assert(harness_smtp_cmd(&s, "AUTH PLAIN %s", b64) == 235,
	    "AUTH: %s", s.reply);
	free(b64);
	for (i = 0; i < n; i++) {
		gm_assert(harness_smtp_cmd(&s, "MAIL FROM:<%s>", GM_USER) ==
		    250, "MAIL: %s", s.reply);
		gm_assert(harness_smtp_cmd(&s, "RCPT TO:<%s>", GM_RCPT) == 250,
		    "RCPT: %s", s.reply);
		gm_assert(harness_smtp_cmd(&s, "DATA") == 354, "DATA: %s",
		    s.reply);
		gm_assert(harness_smtp_data(&s, GM_BODY, strlen(GM_BODY)) ==
		    250 && harness_queue_id(s.reply, ids[i], 64) == 0,
		    "end of data: %s", s.reply);
	}
	gm_assert(harness_smtp_cmd(&s, "QUIT") == 221, "QUIT: %s", s.reply);
	harness_smtp_close(&s);
}

/* The stand-in's events.log path. */
static const char *
gm_events(char *buf, size_t len)
{
	gm_fmt(buf, len, "%s/events.log", gh.mail);
	return buf;
}

/* <queue>/<sub>/<id>/envelope into buf. */
static const char *
gm_envelope(char *buf, size_t len, const char *sub, const char *id)
{
	gm_fmt(buf, len, "%s/%s/%s/envelope", gh.queue, sub, id);
	return buf;
}

/* Wait until relayqd's log holds "<id> <what>". */
static void
gm_wait_log(struct harness_proc *d, const char *id, const char *what)
{
	char	 line[256];

	gm_fmt(line, sizeof(line), "%s %s", id, what);
	gm_assert(harness_wait_grep(d->log, line, 1, gm_wait()) == 0,
	    "relayqd never logged \"%s\"", line);
}

/* Wait until queue/<id> is gone and relayqd logged its delivery. */
static void
gm_wait_delivered(struct harness_proc *d, const char *id)
{
	char	 path[PATH_MAX];

	gm_fmt(path, sizeof(path), "%s/queue/%s", gh.queue, id);
	gm_assert(harness_wait_gone(path, gm_wait()) == 0, "%s still queued",
	    id);
	gm_wait_log(d, id, "delivered");
}

/* relayq --list on the test's queue; its output (free it). */
static char *
gm_list(void)
{
	struct harness_proc	*c;
	char			 bin[PATH_MAX];
	char			*argv[5], *out;

	gm_fmt(bin, sizeof(bin), "%s/relayq", gh.build);
	argv[0] = bin;
	argv[1] = (char *)(uintptr_t)"--list";
	argv[2] = (char *)(uintptr_t)"--queue-dir";
	argv[3] = gh.queue;
	argv[4] = NULL;
	c = harness_spawn(&gh, "relayq", argv);
	gm_assert(c != NULL && harness_wait_exit(c, gm_wait()) != -1 &&
	    WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0,
	    "relayq --list failed");
	out = harness_read_file(c->log, NULL);
	gm_assert(out != NULL, "no output from relayq --list");
	return out;
}

/* ---- credentials ---- */

/*
 * Twenty messages with a bad password wait in the queue while Gmail is
 * unreachable, with three carrying a good one.  When Gmail comes up,
 * the bad password costs exactly one AUTH: its 535 5.7.8 fails all
 * twenty with that reply, and the good ones are delivered.
 */
START_TEST(test_gmail_bad_password_one_auth)
{
	char			 bad[20][64], good[3][64];
	char			 path[PATH_MAX], val[1024], portstr[16];
	const char		*extra[] = { "--port", portstr, "--password",
				    GM_GOOD, NULL };
	struct harness_proc	*d;
	int			 port, n535, n235, ndel, ngate;
	size_t			 i;

	port = harness_free_port();
	gm_assert(port > 0, "no free port");
	gm_fmt(portstr, sizeof(portstr), "%d", port);
	d = gm_relayqd(port, NULL);
	gm_submit(GM_BAD, nitems(bad), bad);
	gm_submit(GM_GOOD, nitems(good), good);
	/* Gmail was unreachable: the first attempts found nobody. */
	gm_assert(harness_wait_grep(d->log, "connect to 127.0.0.1:", 1,
	    gm_wait()) == 0, "no failed connection logged");
	gm_standin(extra);
	for (i = 0; i < nitems(good); i++)
		gm_wait_delivered(d, good[i]);
	for (i = 0; i < nitems(bad); i++) {
		gm_assert(harness_wait_file(gm_envelope(path, sizeof(path),
		    "failed", bad[i]), NULL, gm_wait()) == 0,
		    "%s never reached failed/", bad[i]);
		gm_assert(harness_keyval(path, "last-reply", val,
		    sizeof(val)) == 0 && strstr(val, "535 5.7.8") != NULL,
		    "%s last-reply: %s", bad[i], val);
	}
	gm_events(path, sizeof(path));
	n535 = harness_grep(path, "result=535");
	n235 = harness_grep(path, "result=235");
	ndel = harness_grep(path, "delivered ");
	ngate = harness_grep(d->log, "no new AUTH");
	gm_assert(n535 == 1, "%d AUTHs were refused, want exactly 1", n535);
	/* The good ones share connections when they overlap (reuse). */
	gm_assert(n235 >= 1 && n235 <= 3, "%d AUTHs accepted, want 1 to 3",
	    n235);
	gm_assert(ndel == 3, "deliveries: %d", ndel);
	gm_assert(ngate == 19, "expected 19 entries failed at the gate, log "
	    "has %d", ngate);
	gm_assert(harness_grep(d->log, GM_BAD) == 0 &&
	    harness_grep(d->log, GM_GOOD) == 0, "a password in the log");
}
END_TEST

/* Every other credential reply: two messages, one AUTH, both failed. */
static const struct {
	const char	*mode;
	const char	*profile;
	const char	*want;
} cred_cases[] = {
	{ "app-password", "current", "534 5.7.9" },
	{ "web-login", "current", "534 5.7.14" },
	{ "bad", "legacy", "535 5.7.8" },
};

START_TEST(test_gmail_credential_replies)
{
	const char	*extra[] = { "--auth-fail", cred_cases[_i].mode,
			    "--profile", cred_cases[_i].profile, NULL };
	char		 ids[2][64], path[PATH_MAX], val[1024], want[32];
	size_t		 i;

	gm_standin(extra);
	gm_relayqd(0, NULL);
	gm_submit(GM_GOOD, nitems(ids), ids);
	for (i = 0; i < nitems(ids); i++) {
		gm_assert(harness_wait_file(gm_envelope(path, sizeof(path),
		    "failed", ids[i]), NULL, gm_wait()) == 0,
		    "%s never reached failed/", ids[i]);
		gm_assert(harness_keyval(path, "last-reply", val,
		    sizeof(val)) == 0 && strstr(val, cred_cases[_i].want) !=
		    NULL, "%s last-reply: %s", ids[i], val);
	}
	gm_fmt(want, sizeof(want), "result=%.3s", cred_cases[_i].want);
	gm_assert(harness_grep(gm_events(path, sizeof(path)), "auth ") == 1 &&
	    harness_grep(path, want) == 1, "want exactly one AUTH (%s)",
	    want);
	gm_assert(harness_grep(path, "mail ") == 0, "MAIL after refusal");
}
END_TEST

/* ---- account-level waits ---- */

/*
 * 550 5.4.5 at MAIL: the account is paused, the entry stays queued with
 * no attempt counted and the reason in its envelope; the probe after
 * quota-probe delivers it.
 */
START_TEST(test_gmail_quota_pauses_account)
{
	const char	*sextra[] = { "--quota-count", "1", NULL };
	const char	*dextra[] = { "--quota-probe", "2", NULL };
	struct harness_proc	*d;
	char		 id[1][64], path[PATH_MAX], line[128];

	gm_standin(sextra);
	d = gm_relayqd(0, dextra);
	gm_submit(GM_GOOD, 1, id);
	gm_wait_log(d, id[0], "held");
	gm_wait_delivered(d, id[0]);
	gm_fmt(line, sizeof(line), "%s held", id[0]);
	gm_assert(harness_grep_lines(d->log, line, "attempts=0 (not counted)"
	    ": account paused by Gmail's daily limit") == 1,
	    "no \"%s attempts=0 ... account paused\" line", line);
	gm_fmt(line, sizeof(line), "%s delivered", id[0]);
	gm_assert(harness_grep_lines(d->log, line, " attempts=1 ") == 1,
	    "the quota counted as an attempt");
	gm_assert(harness_grep(gm_events(path, sizeof(path)), "quota ") == 1 &&
	    harness_grep(path, "delivered ") == 1, "quota/delivery events");
	gm_assert(harness_grep(d->log, " failed ") == 0, "failed on quota");
}
END_TEST

/* 454 4.7.0 to AUTH: the account's logins wait auth-backoff. */
START_TEST(test_gmail_auth_throttle_backs_off)
{
	const char	*sextra[] = { "--auth-fail", "throttle",
			    "--auth-fail-count", "1", NULL };
	const char	*dextra[] = { "--auth-backoff", "2", NULL };
	struct harness_proc	*d;
	char		 id[1][64], path[PATH_MAX], line[128];

	gm_standin(sextra);
	d = gm_relayqd(0, dextra);
	gm_submit(GM_GOOD, 1, id);
	gm_wait_delivered(d, id[0]);
	gm_fmt(line, sizeof(line), "%s held", id[0]);
	gm_assert(harness_grep_lines(d->log, line, "attempts=0 (not counted)"
	    ": account logins held for 2s after: AUTH PLAIN: 454 4.7.0") == 1,
	    "no \"%s ... logins held for 2s\" line", line);
	gm_fmt(line, sizeof(line), "%s delivered", id[0]);
	gm_assert(harness_grep_lines(d->log, line, " attempts=1 ") == 1,
	    "the 454 counted as an attempt");
	gm_assert(harness_grep(gm_events(path, sizeof(path)),
	    "result=454") == 1 && harness_grep(path, "result=235") == 1,
	    "AUTH events");
}
END_TEST

/* An account-level wait, and what it shows in relayqd's log. */
static const struct {
	const char	*sflag, *sval;		/* stand-in: the reply, once */
	const char	*dflag;			/* relayqd: the wait, 2 s */
	const char	*why;			/* in the "held" lines */
	const char	*event;			/* stand-in events: once */
	int		 mails;			/* MAILs accepted */
} wait_cases[] = {
	{ "--quota-count", "1", "--quota-probe",
	    "account paused by Gmail's daily limit", "quota ", 2 },
	{ "--auth-fail", "throttle", "--auth-backoff",
	    "account logins held for 2s", "result=454", 2 },
};

/*
 * The wait is the account's: the second message, queued behind the
 * first, is held without a connection of its own; after the wait both
 * go over one connection.
 */
START_TEST(test_gmail_account_wait_holds_all)
{
	const char	*sextra[] = { wait_cases[_i].sflag, wait_cases[_i].sval,
			    "--auth-fail-count", "1", NULL };
	const char	*dextra[] = { wait_cases[_i].dflag, "2",
			    "--account-sessions", "1", NULL };
	struct harness_proc	*d;
	char		 ids[2][64], path[PATH_MAX], line[128];
	size_t		 i;
	int		 nconn, nmail, nevent;

	gm_standin(sextra);
	d = gm_relayqd(0, dextra);
	gm_submit(GM_GOOD, nitems(ids), ids);
	for (i = 0; i < nitems(ids); i++)
		gm_wait_delivered(d, ids[i]);
	for (i = 0; i < nitems(ids); i++) {
		gm_fmt(line, sizeof(line), "%s held", ids[i]);
		gm_assert(harness_grep_lines(d->log, line, wait_cases[_i].why)
		    == 1, "no \"%s ... %s\" line", line, wait_cases[_i].why);
		gm_fmt(line, sizeof(line), "%s delivered", ids[i]);
		gm_assert(harness_grep_lines(d->log, line, " attempts=1 ") ==
		    1, "%s: the wait counted as an attempt", ids[i]);
	}
	gm_events(path, sizeof(path));
	nconn = harness_grep(path, "connect ");
	nmail = harness_grep(path, "mail ");
	nevent = harness_grep(path, wait_cases[_i].event);
	gm_assert(nconn == 2 && nmail == wait_cases[_i].mails && nevent == 1,
	    "%d connections, %d MAIL, %d \"%s\"", nconn, nmail, nevent,
	    wait_cases[_i].event);
}
END_TEST

/* ---- pacing ---- */

/* Each pacing limit: the flag, its value, and the reason it gives. */
static const struct {
	const char	*flag;
	const char	*why;
} pace_cases[] = {
	{ "--daily-cap", "account at its daily cap of 2 messages" },
	{ "--rate-per-minute", "account at its rate of 2 messages a minute" },
};

/*
 * Three messages with a limit of two: two are delivered, the third
 * waits in the queue with the reason shown by relayq --list, without an
 * attempt counted.
 */
START_TEST(test_gmail_pacing)
{
	const char	*dextra[] = { pace_cases[_i].flag, "2", NULL };
	struct harness_proc	*d;
	char		 ids[3][64], path[PATH_MAX], line[256];
	char		*out;
	const char	*held = NULL;
	size_t		 i;

	gm_standin(NULL);
	d = gm_relayqd(0, dextra);
	gm_submit(GM_GOOD, nitems(ids), ids);
	gm_assert(harness_wait_grep(d->log, pace_cases[_i].why, 1,
	    gm_wait()) == 0, "nobody held for \"%s\"", pace_cases[_i].why);
	gm_assert(harness_wait_count(gh.mail, "msg-", 4, gm_wait()) == 0,
	    "two messages were not delivered");
	for (i = 0; i < nitems(ids); i++) {
		gm_fmt(path, sizeof(path), "%s/queue/%s", gh.queue, ids[i]);
		if (access(path, F_OK) == 0) {
			gm_assert(held == NULL, "more than one held");
			held = ids[i];
		}
	}
	gm_assert(held != NULL, "none held");
	gm_fmt(line, sizeof(line), "%s held", held);
	gm_assert(harness_grep_lines(d->log, line, pace_cases[_i].why) == 1 &&
	    harness_grep_lines(d->log, line, "attempts=0 (not counted)") == 1,
	    "no \"%s ... %s\" line", line, pace_cases[_i].why);
	out = gm_list();
	gm_fmt(line, sizeof(line), "    last reply: %s", pace_cases[_i].why);
	gm_assert(strstr(out, held) != NULL && strstr(out, line) != NULL &&
	    strstr(out, "attempts 0  next: in ") != NULL, "--list: %s", out);
	free(out);
	gm_assert(harness_grep(gm_events(path, sizeof(path)), "mail ") == 2,
	    "the held message was sent");
}
END_TEST

/* ---- reconnects ---- */

/* 451 4.4.2 (idle timeout) at MAIL: sent again at once, not counted. */
START_TEST(test_gmail_idle_timeout_resent)
{
	const char	*sextra[] = { "--idle-at-mail", "1", NULL };
	const char	*dextra[] = { "--retry-min", "600", "--retry-max",
			    "600", NULL };
	struct harness_proc	*d;
	char		 id[1][64], path[PATH_MAX], line[128];

	gm_standin(sextra);
	d = gm_relayqd(0, dextra);
	gm_submit(GM_GOOD, 1, id);
	gm_wait_delivered(d, id[0]);
	gm_wait_log(d, id[0], "sent again now (not counted)");
	gm_fmt(line, sizeof(line), "%s delivered", id[0]);
	gm_assert(harness_grep_lines(d->log, line, " attempts=1 ") == 1,
	    "the 451 4.4.2 counted as an attempt");
	gm_assert(harness_grep(gm_events(path, sizeof(path)), "idle ") == 1 &&
	    harness_grep(path, "connect ") == 2, "idle/connect events");
}
END_TEST

/*
 * 421 4.3.0 at the message (a burst), to DATA or, with CHUNKING, to the
 * BDAT chunk: deferred with backoff, not failed.
 */
static const struct {
	const char	*standin_arg;	/* or NULL */
	const char	*reason;	/* in the "deferred" line */
} burst_modes[] = {
	{ "--no-chunking", "DATA: 421 4.3.0" },
	{ NULL, " LAST: 421 4.3.0" },
};

START_TEST(test_gmail_burst_421_deferred)
{
	const char	*sextra[] = { "--burst-at-data", "1",
			    burst_modes[_i].standin_arg, NULL };
	struct harness_proc	*d;
	char		 id[1][64], path[PATH_MAX], line[128];

	gm_standin(sextra);
	d = gm_relayqd(0, NULL);
	gm_submit(GM_GOOD, 1, id);
	gm_wait_delivered(d, id[0]);
	gm_fmt(line, sizeof(line), "%s deferred", id[0]);
	gm_assert(harness_grep_lines(d->log, line,
	    burst_modes[_i].reason) == 1, "no \"%s ... %s\" line", line,
	    burst_modes[_i].reason);
	gm_fmt(line, sizeof(line), "%s delivered", id[0]);
	gm_assert(harness_grep_lines(d->log, line, " attempts=2 ") == 1,
	    "not delivered on the second attempt");
	gm_assert(harness_grep(gm_events(path, sizeof(path)), "burst ") == 1 &&
	    harness_grep(path, "delivered ") == 1, "burst/delivery events");
}
END_TEST

/*
 * The stand-in keeps the message and drops the connection after the
 * final dot without a reply: the entry is "uncertain" (relayq --list
 * says so), and the retry sends the same bytes.
 */
START_TEST(test_gmail_uncertain_after_dot)
{
	const char	*sextra[] = { "--drop-after-dot", "1", NULL };
	const char	*dextra[] = { "--retry-min", "600", "--retry-max",
			    "600", NULL };
	struct harness_proc	*d, *c;
	char		 id[1][64], path[PATH_MAX], bin[PATH_MAX];
	char		 val[64];
	char		*out, *m1, *m2;
	char		*argv[5];
	size_t		 l1, l2;

	gm_standin(sextra);
	d = gm_relayqd(0, dextra);
	gm_submit(GM_GOOD, 1, id);
	gm_assert(harness_wait_keyval(gm_envelope(path, sizeof(path), "queue",
	    id[0]), "state", "uncertain", gm_wait()) == 0,
	    "the envelope never said state: uncertain");
	gm_assert(harness_keyval(path, "uncertain-since", val,
	    sizeof(val)) == 0 && strtoll(val, NULL, 10) > 0,
	    "uncertain-since: %s", val);
	gm_fmt(bin, sizeof(bin), "%s/relayq", gh.build);
	argv[0] = bin;
	argv[1] = (char *)(uintptr_t)"--list";
	argv[2] = (char *)(uintptr_t)"--queue-dir";
	argv[3] = gh.queue;
	argv[4] = NULL;
	c = harness_spawn(&gh, "relayq", argv);
	gm_assert(c != NULL && harness_wait_exit(c, gm_wait()) != -1 &&
	    WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0,
	    "relayq --list failed");
	out = harness_read_file(c->log, NULL);
	gm_assert(out != NULL && strstr(out, id[0]) != NULL &&
	    strstr(out, "state: uncertain since") != NULL,
	    "--list: %s", out ? out : "(none)");
	free(out);
	/* Retry now rather than in retry-min. */
	gm_assert(kill(d->pid, SIGUSR1) == 0, "SIGUSR1");
	gm_wait_delivered(d, id[0]);
	gm_fmt(path, sizeof(path), "%s/msg-000001.eml", gh.mail);
	m1 = harness_read_file(path, &l1);
	gm_fmt(path, sizeof(path), "%s/msg-000002.eml", gh.mail);
	m2 = harness_read_file(path, &l2);
	gm_assert(m1 != NULL && m2 != NULL && l1 == l2 &&
	    memcmp(m1, m2, l1) == 0 && strstr(m1, "Message-ID: <it-gmail@")
	    != NULL, "the retry did not send the same bytes");
	free(m1);
	free(m2);
	gm_assert(harness_grep(gm_events(path, sizeof(path)), "dropdot ") == 1,
	    "dropdot events");
}
END_TEST

/* ---- recipients ---- */

/*
 * 553 5.1.2 for one recipient: the other is delivered, and the entry,
 * in failed/, records which recipient got which reply.
 */
START_TEST(test_gmail_rcpt_partial)
{
	const char *const	 rcpts[] = { GM_RCPT, "x@bad.example" };
	const char		*sextra[] = { "--reject-domain", "bad.example",
				    NULL };
	struct harness_proc	*d;
	char			 id[64], path[PATH_MAX], val[1024];
	char			*env;

	gm_standin(sextra);
	d = gm_relayqd(0, NULL);
	gm_submit_to(rcpts, nitems(rcpts), GM_BODY, id, sizeof(id));
	gm_assert(harness_wait_file(gm_envelope(path, sizeof(path), "failed",
	    id), NULL, gm_wait()) == 0, "%s never reached failed/", id);
	env = harness_read_file(path, NULL);
	gm_assert(env != NULL && strstr(env, "\nrcpt-reply: " GM_RCPT
	    " 250 2.0.0 OK") != NULL && strstr(env, "\nrcpt-reply: "
	    "x@bad.example 553 5.1.2 We weren't able to find the recipient "
	    "domain.") != NULL, "envelope: %s", env ? env : "(none)");
	free(env);
	gm_assert(harness_keyval(path, "last-reply", val, sizeof(val)) == 0 &&
	    strstr(val, "failed for 1 of 2 recipients") != NULL,
	    "last-reply: %s", val);
	gm_fmt(path, sizeof(path), "%s/msg-000001.meta", gh.mail);
	gm_assert(harness_grep(path, "rcpt: ") == 1 &&
	    harness_grep(path, "rcpt: " GM_RCPT) == 1, "meta recipients");
	gm_assert(harness_grep(gm_events(path, sizeof(path)),
	    "rcpt-refused ") == 1 && harness_grep(path, "delivered ") == 1,
	    "rcpt events");
	gm_assert(harness_grep(d->log, "recipient <x@bad.example> refused") ==
	    1, "no refusal logged");
}
END_TEST

/* Recipients of a message, the count and the rcpt-max each case uses. */
static const struct {
	size_t		 n;		/* recipients */
	const char	*rcpt_max;	/* stand-in's, NULL: Gmail's 100 */
	size_t		 first;		/* in the first transaction */
	int		 toomany;	/* 452 4.5.3 replies */
} split_cases[] = {
	{ 5, "3", 3, 2 },		/* 452 4.5.3 on the 4th and 5th */
	{ 150, NULL, 100, 0 },		/* relayqd's own cap of 100 */
};

/* Too many recipients for one transaction: two, in one session. */
START_TEST(test_gmail_rcpt_split)
{
	const char	*sextra[] = { "--rcpt-max", split_cases[_i].rcpt_max,
			    NULL };
	const char	*dextra[] = { "--max-recipients", "200", NULL };
	struct harness_proc	*d;
	char		 id[64], path[PATH_MAX];
	char		*rcpts[150];
	size_t		 i, n = split_cases[_i].n;
	int		 first, second, n452;

	for (i = 0; i < n; i++)
		gm_assert(asprintf(&rcpts[i], "r%zu@example.net", i) > 0,
		    "asprintf");
	gm_standin(split_cases[_i].rcpt_max != NULL ? sextra : NULL);
	d = gm_relayqd(0, dextra);
	gm_submit_to((const char *const *)rcpts, n, GM_BODY, id, sizeof(id));
	for (i = 0; i < n; i++)
		free(rcpts[i]);
	gm_wait_delivered(d, id);
	gm_fmt(path, sizeof(path), "%s/msg-000001.meta", gh.mail);
	first = harness_grep(path, "rcpt: ");
	gm_fmt(path, sizeof(path), "%s/msg-000002.meta", gh.mail);
	second = harness_grep(path, "rcpt: ");
	gm_assert(first == (int)split_cases[_i].first &&
	    second == (int)(n - split_cases[_i].first),
	    "transactions of %d and %d recipients", first, second);
	gm_assert(harness_grep(gm_events(path, sizeof(path)), "connect ") == 1 &&
	    harness_grep(path, "delivered ") == 2 && harness_grep(path,
	    "result=235") == 1, "not one session with two transactions");
	n452 = harness_grep(path, "rcpt-toomany ");
	gm_assert(n452 == split_cases[_i].toomany, "%d replies 452 4.5.3, "
	    "want %d", n452, split_cases[_i].toomany);
}
END_TEST

/* Larger than the advertised SIZE: failed before MAIL, with the reason. */
START_TEST(test_gmail_size_before_data)
{
	const char	*sextra[] = { "--size", "64", NULL };
	const char *const rcpts[] = { GM_RCPT };
	char		 id[64], path[PATH_MAX], val[1024];

	gm_standin(sextra);
	gm_relayqd(0, NULL);
	gm_submit_to(rcpts, 1, GM_BODY "a line to pass sixty-four bytes\r\n",
	    id, sizeof(id));
	gm_assert(harness_wait_file(gm_envelope(path, sizeof(path), "failed",
	    id), NULL, gm_wait()) == 0, "%s never reached failed/", id);
	gm_assert(harness_keyval(path, "last-reply", val, sizeof(val)) == 0 &&
	    strstr(val, "is larger than 127.0.0.1's SIZE 64") != NULL,
	    "last-reply: %s", val);
	gm_assert(harness_grep(gm_events(path, sizeof(path)), "mail ") == 0,
	    "MAIL was sent");
}
END_TEST

/* ---- connection reuse ---- */

/* conn-messages, and the connections and logins five messages take. */
static const struct {
	const char	*conn_messages;
	int		 connections;
} reuse_cases[] = {
	{ "100", 1 },
	{ "2", 3 },
};

/*
 * Five messages due at once for one account: they go over one
 * authenticated connection after another, at most conn-messages each,
 * one AUTH per connection, each connection after the first resuming the
 * TLS session.
 */
START_TEST(test_gmail_connection_reuse)
{
	char		 ids[5][64], path[PATH_MAX], portstr[16];
	const char	*sextra[] = { "--port", portstr, "--password", GM_GOOD,
			    NULL };
	const char	*dextra[] = { "--retry-min", "600", "--retry-max",
			    "600", "--conn-messages",
			    reuse_cases[_i].conn_messages, NULL };
	struct harness_proc	*d;
	int		 port, nconn, nauth, nfull, nresumed;
	size_t		 i;

	port = harness_free_port();
	gm_assert(port > 0, "no free port");
	gm_fmt(portstr, sizeof(portstr), "%d", port);
	d = gm_relayqd(port, dextra);
	gm_submit(GM_GOOD, nitems(ids), ids);
	for (i = 0; i < nitems(ids); i++)
		gm_wait_log(d, ids[i], "deferred");
	gm_standin(sextra);
	gm_assert(kill(d->pid, SIGUSR1) == 0, "SIGUSR1");
	for (i = 0; i < nitems(ids); i++)
		gm_wait_delivered(d, ids[i]);
	gm_events(path, sizeof(path));
	nconn = harness_grep(path, "connect ");
	nauth = harness_grep(path, "result=235");
	gm_assert(nconn == reuse_cases[_i].connections && nauth == nconn,
	    "%d connections and %d AUTHs for 5 messages, want %d", nconn,
	    nauth, reuse_cases[_i].connections);
	gm_assert(harness_grep(path, "delivered ") == 5, "deliveries");
	gm_assert(harness_grep(d->log, "(connection reused, message ") ==
	    5 - reuse_cases[_i].connections, "reuse log lines");
	/* Each reconnection resumes the TLS session of the one before. */
	nfull = harness_grep(path, "resumed=no");
	nresumed = harness_grep(path, "resumed=yes");
	gm_assert(nfull == 1 && nresumed == nconn - 1,
	    "%d full TLS handshakes and %d resumed, want 1 and %d", nfull,
	    nresumed, nconn - 1);
}
END_TEST

/* ---- session details ---- */

/* PLAIN not offered: AUTH LOGIN, and the message goes through. */
START_TEST(test_gmail_auth_login)
{
	const char	*sextra[] = { "--auth-mechs", "LOGIN XOAUTH2",
			    "--password", GM_GOOD, NULL };
	struct harness_proc	*d;
	char		 id[1][64], path[PATH_MAX];

	gm_standin(sextra);
	d = gm_relayqd(0, NULL);
	gm_submit(GM_GOOD, 1, id);
	gm_wait_delivered(d, id[0]);
	gm_fmt(path, sizeof(path), "%s/msg-000001.meta", gh.mail);
	gm_assert(harness_grep(path, "user: " GM_USER) == 1, "meta user");
	gm_assert(harness_grep(gm_events(path, sizeof(path)),
	    "result=235") == 1, "AUTH LOGIN events");
}
END_TEST

/* ---- XOAUTH2 ---- */

/*
 * Submit n messages in one session authenticated as GM_USER by AUTH
 * XOAUTH2 with token; their queue IDs into ids.
 */
static void
gm_submit_xoauth2(const char *token, size_t n, char ids[][64])
{
	struct harness_smtp	 s;
	char			 raw[256];
	char			*b64;
	size_t			 i;
	int			 len;

	len = snprintf(raw, sizeof(raw), "user=%s\001auth=Bearer %s\001\001",
	    GM_USER, token);
	gm_assert(len > 0 && (size_t)len < sizeof(raw), "AUTH too long");
	b64 = harness_b64_encode(raw, (size_t)len);
	gm_assert(b64 != NULL, "out of memory");
	gm_assert(harness_smtp_open(&s, gh.socket) == 220, "banner: %s",
	    s.reply);
	gm_assert(harness_smtp_cmd(&s, "EHLO it.example") == 250, "EHLO: %s",
	    s.reply);
	gm_assert(harness_smtp_cmd(&s, "AUTH XOAUTH2 %s", b64) == 235,
	    "AUTH: %s", s.reply);
	free(b64);
	for (i = 0; i < n; i++) {
		gm_assert(harness_smtp_cmd(&s, "MAIL FROM:<%s>", GM_USER) ==
		    250, "MAIL: %s", s.reply);
		gm_assert(harness_smtp_cmd(&s, "RCPT TO:<%s>", GM_RCPT) == 250,
		    "RCPT: %s", s.reply);
		gm_assert(harness_smtp_cmd(&s, "DATA") == 354, "DATA: %s",
		    s.reply);
		gm_assert(harness_smtp_data(&s, GM_BODY, strlen(GM_BODY)) ==
		    250 && harness_queue_id(s.reply, ids[i], 64) == 0,
		    "end of data: %s", s.reply);
	}
	gm_assert(harness_smtp_cmd(&s, "QUIT") == 221, "QUIT: %s", s.reply);
	harness_smtp_close(&s);
}

/*
 * relayq --oauth2-token SENDER - RECIPIENT, the token on standard input:
 * relayqd relays with AUTH XOAUTH2 and the stand-in, which accepts only
 * that token, records the user.
 */
START_TEST(test_gmail_xoauth2_valid)
{
	/* _i 1: 2048 bytes, the longest access token Google issues. */
	static char		 token[2049], input[2050];
	const char		*sextra[] = { "--token", token, NULL };
	struct harness_proc	*d, *c;
	char			 bin[PATH_MAX], path[PATH_MAX];
	char			*argv[8];
	size_t			 i;

	if (_i == 0)
		gm_fmt(token, sizeof(token), "%s", GM_TOKEN);
	else {
		for (i = 0; i < sizeof(token) - 1; i++)
			token[i] = "ya29.A-b_c9"[i % 11];
		token[sizeof(token) - 1] = '\0';
	}
	gm_fmt(input, sizeof(input), "%s\n", token);
	gm_standin(sextra);
	d = gm_relayqd(0, NULL);
	gm_fmt(bin, sizeof(bin), "%s/relayq", gh.build);
	argv[0] = bin;
	argv[1] = (char *)(uintptr_t)"--socket";
	argv[2] = gh.socket;
	argv[3] = (char *)(uintptr_t)"--oauth2-token";
	argv[4] = (char *)(uintptr_t)GM_USER;
	argv[5] = (char *)(uintptr_t)"-";
	argv[6] = (char *)(uintptr_t)GM_RCPT;
	argv[7] = NULL;
	c = harness_spawn_input(&gh, "relayq", argv, input);
	gm_assert(c != NULL && harness_wait_exit(c, gm_wait()) != -1 &&
	    WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0,
	    "relayq --oauth2-token failed");
	/* A long token goes in the 334 continuation, masked all the same. */
	gm_assert(harness_grep(c->log, _i == 0 ? "C: AUTH XOAUTH2 ********" :
	    "C: AUTH XOAUTH2\nS: 334 \nC: ********\n") == 1 &&
	    harness_grep(c->log, token) == 0, "relayq transcript");
	gm_fmt(path, sizeof(path), "%s/msg-000001.meta", gh.mail);
	gm_assert(harness_wait_file(path, NULL, gm_wait()) == 0,
	    "nothing delivered");
	gm_assert(harness_grep(path, "user: " GM_USER) == 1, "meta user");
	gm_assert(harness_grep(gm_events(path, sizeof(path)),
	    "result=235 mech=XOAUTH2") == 1 && harness_grep(path, "auth ") == 1,
	    "want one XOAUTH2 AUTH accepted");
	gm_assert(harness_grep(d->log, token) == 0, "the token in the log");
}
END_TEST

/*
 * Two messages queued with an expired token: one AUTH XOAUTH2, Gmail's
 * 334 challenge answered with the empty line, and its 535 5.7.8 fails
 * both (the credentials reaction), the token never logged.
 */
START_TEST(test_gmail_xoauth2_expired)
{
	const char		*sextra[] = { "--token", GM_TOKEN, NULL };
	struct harness_proc	*d;
	char			 ids[2][64], path[PATH_MAX], val[1024];
	size_t			 i;

	gm_standin(sextra);
	d = gm_relayqd(0, NULL);
	gm_submit_xoauth2(GM_EXPIRED, nitems(ids), ids);
	for (i = 0; i < nitems(ids); i++) {
		gm_assert(harness_wait_file(gm_envelope(path, sizeof(path),
		    "failed", ids[i]), NULL, gm_wait()) == 0,
		    "%s never reached failed/", ids[i]);
		gm_assert(harness_keyval(path, "last-reply", val,
		    sizeof(val)) == 0 && strstr(val, "535 5.7.8") != NULL,
		    "%s last-reply: %s", ids[i], val);
	}
	gm_events(path, sizeof(path));
	gm_assert(harness_grep(path, "auth ") == 1 &&
	    harness_grep(path, "result=535 mech=XOAUTH2") == 1,
	    "want exactly one AUTH XOAUTH2, refused with 535 after the "
	    "empty line");
	gm_assert(harness_grep(path, "mail ") == 0, "MAIL after refusal");
	gm_assert(harness_grep(d->log, GM_EXPIRED) == 0, "the token in the log");
}
END_TEST

/*
 * A token answered "334 <JSON>", then after the empty line 454 4.7.0
 * (too many logins): the account's logins wait auth-backoff, no attempt
 * counted, and the next login with the token delivers.
 */
START_TEST(test_gmail_xoauth2_throttle)
{
	const char		*sextra[] = { "--token", GM_TOKEN, "--auth-fail",
				    "throttle", "--auth-fail-count", "1", NULL };
	const char		*dextra[] = { "--auth-backoff", "2", NULL };
	struct harness_proc	*d;
	char			 id[1][64], path[PATH_MAX], line[128];

	gm_standin(sextra);
	d = gm_relayqd(0, dextra);
	gm_submit_xoauth2(GM_TOKEN, 1, id);
	gm_wait_delivered(d, id[0]);
	gm_fmt(line, sizeof(line), "%s held", id[0]);
	gm_assert(harness_grep_lines(d->log, line, "attempts=0 (not counted)"
	    ": account logins held for 2s after: AUTH XOAUTH2: 454 4.7.0") ==
	    1, "no \"%s ... logins held for 2s\" line", line);
	gm_assert(harness_grep(gm_events(path, sizeof(path)),
	    "result=454 mech=XOAUTH2") == 1 &&
	    harness_grep(path, "result=235 mech=XOAUTH2") == 1, "AUTH events");
}
END_TEST

/* --tls implicit against the stand-in's implicit TLS (465). */
START_TEST(test_gmail_implicit_tls)
{
	const char	*sextra[] = { "--tls-implicit", NULL };
	const char	*dextra[] = { "--tls", "implicit", NULL };
	struct harness_proc	*d;
	char		 id[1][64], path[PATH_MAX];

	gm_standin(sextra);
	d = gm_relayqd(0, dextra);
	gm_submit(GM_GOOD, 1, id);
	gm_wait_delivered(d, id[0]);
	gm_assert(harness_grep(gm_events(path, sizeof(path)),
	    "starttls ") == 0 && harness_grep(path, "tls=yes result=235") == 1,
	    "implicit TLS events");
	gm_fmt(path, sizeof(path), "%s/msg-000001.meta", gh.mail);
	gm_assert(harness_grep(path, "auth-tls: yes") == 1, "AUTH without TLS");
}
END_TEST

/* Read one whole reply from fd into buf (bounded); its length. */
static size_t
gm_read_reply(int fd, char *buf, size_t len)
{
	size_t	 n = 0;
	ssize_t	 r;
	int	 i;

	for (i = 0; i < 200 && n + 1 < len; i++) {
		r = read(fd, buf + n, len - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		/* Whole once the last line has "NNN " and a CRLF. */
		if (n >= 2 && buf[n - 1] == '\n') {
			char	*last = buf + n - 2;

			while (last > buf && last[-1] != '\n')
				last--;
			if (strlen(last) > 3 && last[3] == ' ')
				break;
		}
	}
	buf[n] = '\0';
	return n;
}

/*
 * The stand-in answers "EHLO localhost" as Gmail does (421 4.7.0 ...
 * (EHLO)), and relayqd configured with --helo localhost sends an address
 * literal instead, so its message goes through.
 */
START_TEST(test_gmail_ehlo_never_localhost)
{
	const char	*dextra[] = { "--helo", "localhost", NULL };
	struct sockaddr_in	 sin;
	struct harness_proc	*d;
	char		 id[1][64], path[PATH_MAX], buf[2048];
	int		 fd;

	gm_standin(NULL);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	gm_assert(fd != -1, "socket");
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)gh.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	gm_assert(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
	    "connect to the stand-in");
	gm_read_reply(fd, buf, sizeof(buf));
	gm_assert(strncmp(buf, "220 ", 4) == 0, "banner: %s", buf);
	gm_assert(write(fd, "EHLO localhost\r\n", 16) == 16, "write");
	gm_read_reply(fd, buf, sizeof(buf));
	gm_assert(strncmp(buf, "421-4.7.0 ", 10) == 0 &&
	    strstr(buf, "(EHLO)") != NULL && strstr(buf, "\r\n421 4.7.0 ") !=
	    NULL, "EHLO localhost: %s", buf);
	close(fd);

	d = gm_relayqd(0, dextra);
	gm_submit(GM_GOOD, 1, id);
	gm_wait_delivered(d, id[0]);
	gm_events(path, sizeof(path));
	gm_assert(harness_grep(path, "ehlo-refused ") == 1,
	    "the probe's EHLO localhost was not refused");
	gm_assert(harness_grep(path, "name=[127.0.0.1]") >= 1,
	    "relayqd did not say EHLO [127.0.0.1]");
}
END_TEST

/* ---- runner ---- */

/* A TCase with the per-test directory fixture and a long timeout. */
static TCase *
gm_tcase(Suite *s, const char *name)
{
	TCase	*tc = tcase_create(name);

	tcase_add_checked_fixture(tc, gm_setup, gm_teardown);
	tcase_set_timeout(tc, GM_TIMEOUT);
	suite_add_tcase(s, tc);
	return tc;
}

Suite *
gmail_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("gmail");
	tc = gm_tcase(s, "credentials");
	tcase_add_test(tc, test_gmail_bad_password_one_auth);
	tcase_add_loop_test(tc, test_gmail_credential_replies, 0,
	    (int)nitems(cred_cases));
	tc = gm_tcase(s, "account");
	tcase_add_test(tc, test_gmail_quota_pauses_account);
	tcase_add_test(tc, test_gmail_auth_throttle_backs_off);
	tcase_add_loop_test(tc, test_gmail_account_wait_holds_all, 0,
	    (int)nitems(wait_cases));
	tc = gm_tcase(s, "pacing");
	tcase_add_loop_test(tc, test_gmail_pacing, 0, (int)nitems(pace_cases));
	tc = gm_tcase(s, "reconnect");
	tcase_add_test(tc, test_gmail_idle_timeout_resent);
	tcase_add_loop_test(tc, test_gmail_burst_421_deferred, 0,
	    (int)nitems(burst_modes));
	tcase_add_test(tc, test_gmail_uncertain_after_dot);
	tc = gm_tcase(s, "recipients");
	tcase_add_test(tc, test_gmail_rcpt_partial);
	tcase_add_loop_test(tc, test_gmail_rcpt_split, 0,
	    (int)nitems(split_cases));
	tcase_add_test(tc, test_gmail_size_before_data);
	tc = gm_tcase(s, "reuse");
	tcase_add_loop_test(tc, test_gmail_connection_reuse, 0,
	    (int)nitems(reuse_cases));
	tc = gm_tcase(s, "session");
	tcase_add_test(tc, test_gmail_auth_login);
	tcase_add_loop_test(tc, test_gmail_xoauth2_valid, 0, 2);
	tcase_add_test(tc, test_gmail_xoauth2_expired);
	tcase_add_test(tc, test_gmail_xoauth2_throttle);
	tcase_add_test(tc, test_gmail_implicit_tls);
	tcase_add_test(tc, test_gmail_ehlo_never_localhost);
	return s;
}
