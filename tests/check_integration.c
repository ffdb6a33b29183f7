/*
 * check_integration.c: the integration runner.  Every test starts the
 * real relayqd, the real relayq client or a hand-driven SMTP session, and
 * the Gmail stand-in, in a fresh directory (tests/harness.h), and asserts
 * on what can be observed from outside: exit statuses, replies, the
 * stand-in's recorded mail and events, the queue directory and the logs.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

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

#define IT_TIMEOUT	30		/* per test, before the multiplier */
#define IT_SENDER	"alice@example.com"
#define IT_RCPT		"bob@example.net"
#define IT_PASSWORD	"Qx7-hunter2-Zz"

static struct harness	 it;		/* one per forked test */

static void	 it_setup(void);
static void	 it_teardown(void);
static double	 it_wait(void);
static struct harness_proc *it_standin(const char *, const char *const *);
static struct harness_proc *it_relayqd(const char *, int);
static char	*it_client(const char *, const char *, char *, size_t);
static void	 it_smtp_submit(const char *, size_t, char *, size_t);
static void	 it_wait_delivered(struct harness_proc *, const char *);
static void	 it_wait_failed(const char *);
static void	 it_envelope(const char *, const char *, const char *, char *,
		    size_t);
static bool	 it_contains_ci(const char *, size_t, const char *);
static void	 it_assert_no_secret(const char *, size_t, const char *);
static void	 it_assert_no_secret_file(const char *, const char *);
static const char *it_mime_boundary(const char *, size_t, char *, size_t);
static void	 it_mime_check(const char *, size_t, const unsigned char *,
		    size_t);
static TCase	*it_tcase(const char *, int);

/*
 * Assert, printing every log of the test first so a failure can be read
 * without rerunning.  A failed assertion ends the forked test with
 * _exit() and skips the teardown, so the processes are stopped and the
 * directory removed here (harness_fini is idempotent).
 */
#define it_assert(cond, ...)						\
	harness_check(cond, harness_dump(&it), harness_fini(&it),	\
	    __VA_ARGS__)

/* Format into buf; it must fit. */
#define it_fmt(buf, len, ...)						\
	it_assert(harness_fmt((buf), (len), __VA_ARGS__) == 0,		\
	    "does not fit: %s", #buf)

/* Fresh directory per test. */
static void
it_setup(void)
{
	if (harness_init(&it) == -1) {
		harness_fini(&it);
		ck_abort_msg("harness_init failed (RELAYQ_BUILD=%s; see "
		    "stderr)", getenv("RELAYQ_BUILD") ?
		    getenv("RELAYQ_BUILD") : "build");
	}
}

/*
 * Stop what still runs, newest first, and check that each daemon and
 * stand-in exits 0 on SIGTERM (under ASan that also means no leak), then
 * remove the directory.
 */
static void
it_teardown(void)
{
	char	 why[PATH_MAX + 128];

	it_assert(harness_stop_all(&it, why, sizeof(why)) == 0, "%s", why);
	harness_fini(&it);
}

/* The standard bounded wait. */
static double
it_wait(void)
{
	return harness_scale(HARNESS_WAIT);
}

/* Start the stand-in or fail the test. */
static struct harness_proc *
it_standin(const char *cert, const char *const *extra)
{
	struct harness_proc	*p;

	p = harness_standin(&it, cert, extra);
	it_assert(p != NULL, "the stand-in did not start");
	return p;
}

/* Start relayqd (relay to host:port, 0 = the stand-in) or fail. */
static struct harness_proc *
it_relayqd(const char *host, int port)
{
	struct harness_proc	*p;

	p = harness_relayqd(&it, host, port, NULL);
	it_assert(p != NULL, "relayqd did not start");
	return p;
}

/*
 * Run relayq SENDER password RCPT (input on stdin unless NULL); assert it
 * exited 0 and printed "queued as ID"; the ID into id; returns the output
 * (free it).
 */
static char *
it_client(const char *password, const char *input, char *id, size_t idlen)
{
	char	*out = NULL;
	int	 status = -1;

	it_assert(harness_client(&it, IT_SENDER, password, IT_RCPT, input,
	    &out, &status) == 0, "relayq did not run to completion");
	it_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "relayq exit status 0x%x, output:\n%s", (unsigned)status, out);
	it_assert(harness_queue_id(out, id, idlen) == 0,
	    "no \"queued as ID\" in relayq's output:\n%s", out);
	return out;
}

/* Submit body by hand (EHLO, AUTH PLAIN, MAIL, RCPT, DATA); ID into id. */
static void
it_smtp_submit(const char *body, size_t len, char *id, size_t idlen)
{
	struct harness_smtp	 s;
	char			 plain[128];
	char			*b64;
	int			 n;

	n = snprintf(plain, sizeof(plain), "%c%s%c%s", '\0', IT_SENDER, '\0',
	    IT_PASSWORD);
	it_assert(n > 0 && (size_t)n < sizeof(plain), "AUTH PLAIN too long");
	b64 = harness_b64_encode(plain, (size_t)n);
	it_assert(b64 != NULL, "out of memory");
	it_assert(harness_smtp_open(&s, it.socket) == 220,
	    "banner: %d %s", s.code, s.reply);
	it_assert(harness_smtp_cmd(&s, "EHLO it.example") == 250,
	    "EHLO: %s", s.reply);
	it_assert(harness_smtp_cmd(&s, "AUTH PLAIN %s", b64) == 235,
	    "AUTH: %s", s.reply);
	free(b64);
	it_assert(harness_smtp_cmd(&s, "MAIL FROM:<%s>", IT_SENDER) == 250,
	    "MAIL: %s", s.reply);
	it_assert(harness_smtp_cmd(&s, "RCPT TO:<%s>", IT_RCPT) == 250,
	    "RCPT: %s", s.reply);
	it_assert(harness_smtp_cmd(&s, "DATA") == 354, "DATA: %s", s.reply);
	it_assert(harness_smtp_data(&s, body, len) == 250,
	    "end of data: %s", s.reply);
	it_assert(strstr(s.reply, "2.0.0") != NULL &&
	    harness_queue_id(s.reply, id, idlen) == 0,
	    "end of data reply: %s", s.reply);
	it_assert(harness_smtp_cmd(&s, "QUIT") == 221, "QUIT: %s", s.reply);
	harness_smtp_close(&s);
}

/*
 * Wait until queue/<id> and its removal queue/.<id> are gone and relayqd d
 * has logged the delivery.
 */
static void
it_wait_delivered(struct harness_proc *d, const char *id)
{
	char	 path[PATH_MAX], line[128];

	it_fmt(path, sizeof(path), "%s/queue/%s", it.queue, id);
	it_assert(harness_wait_gone(path, it_wait()) == 0,
	    "%s still queued", id);
	it_fmt(path, sizeof(path), "%s/queue/.%s", it.queue, id);
	it_assert(harness_wait_gone(path, it_wait()) == 0,
	    "%s never finished removing", id);
	it_fmt(line, sizeof(line), "%s delivered", id);
	it_assert(harness_wait_grep(d->log, line, 1, it_wait()) == 0,
	    "relayqd never logged \"%s\"", line);
}

/* Wait until failed/<id>/envelope exists and queue/<id> is gone. */
static void
it_wait_failed(const char *id)
{
	char	 path[PATH_MAX];

	it_fmt(path, sizeof(path), "%s/failed/%s/envelope", it.queue, id);
	it_assert(harness_wait_file(path, NULL, it_wait()) == 0,
	    "%s never reached failed/", id);
	it_fmt(path, sizeof(path), "%s/queue/%s", it.queue, id);
	it_assert(access(path, F_OK) == -1 && errno == ENOENT,
	    "%s is in failed/ and still in queue/", id);
}

/* An envelope key of <where>/<id>/envelope, which must be present. */
static void
it_envelope(const char *where, const char *id, const char *key, char *buf,
    size_t len)
{
	char	 path[PATH_MAX];

	it_fmt(path, sizeof(path), "%s/%s/%s/envelope", it.queue, where, id);
	it_assert(harness_keyval(path, key, buf, len) == 0,
	    "%s has no \"%s:\" line", path, key);
}

/* Case-insensitive search in a length-delimited block. */
static bool
it_contains_ci(const char *p, size_t len, const char *needle)
{
	char	*copy;
	bool	 found;

	copy = strndup(p, len);
	it_assert(copy != NULL, "out of memory");
	found = strcasestr(copy, needle) != NULL;
	free(copy);
	return found;
}

/*
 * The text must not contain the password, nor the base64 forms a relay
 * or client could leak (AUTH PLAIN with and without authzid, LOGIN).
 */
static void
it_assert_no_secret(const char *text, size_t len, const char *what)
{
	char	 plain[128];
	char	*b64[3];
	size_t	 i;
	int	 n;

	it_assert(harness_memcount(text, len, IT_PASSWORD) == 0,
	    "%s contains the password", what);
	n = snprintf(plain, sizeof(plain), "%c%s%c%s", '\0', IT_SENDER, '\0',
	    IT_PASSWORD);
	b64[0] = harness_b64_encode(plain, (size_t)n);
	n = snprintf(plain, sizeof(plain), "%s%c%s%c%s", IT_SENDER, '\0',
	    IT_SENDER, '\0', IT_PASSWORD);
	b64[1] = harness_b64_encode(plain, (size_t)n);
	b64[2] = harness_b64_encode(IT_PASSWORD, strlen(IT_PASSWORD));
	for (i = 0; i < 3; i++) {
		it_assert(b64[i] != NULL, "out of memory");
		it_assert(harness_memcount(text, len, b64[i]) == 0,
		    "%s contains the password in base64 (%s)", what, b64[i]);
		free(b64[i]);
	}
}

/* it_assert_no_secret on a file's contents. */
static void
it_assert_no_secret_file(const char *path, const char *what)
{
	char	*text;
	size_t	 len;

	text = harness_read_file(path, &len);
	it_assert(text != NULL, "cannot read %s", path);
	it_assert_no_secret(text, len, what);
	free(text);
}

/*
 * Check the top-level header says multipart/mixed and copy its boundary
 * parameter into buf; returns the start of the body.
 */
static const char *
it_mime_boundary(const char *eml, size_t len, char *buf, size_t buflen)
{
	const char	*end, *b;
	char		*hdr;
	size_t		 n;

	end = memmem(eml, len, "\r\n\r\n", 4);
	it_assert(end != NULL, "the message has no header/body separator");
	hdr = strndup(eml, (size_t)(end - eml) + 2);
	it_assert(hdr != NULL, "out of memory");
	it_assert(strcasestr(hdr, "\r\nContent-Type: multipart/mixed") !=
	    NULL, "not multipart/mixed:\n%s", hdr);
	it_assert(strcasestr(hdr, "\r\nMIME-Version: 1.0\r\n") != NULL,
	    "no MIME-Version: 1.0:\n%s", hdr);
	it_assert((b = strcasestr(hdr, "boundary=")) != NULL,
	    "no boundary parameter:\n%s", hdr);
	b += strlen("boundary=");
	if (*b == '"')
		n = strcspn(++b, "\"");
	else
		n = strcspn(b, "; \t\r\n");
	it_assert(n > 0 && n < buflen && n <= 70, "bad boundary in:\n%s", hdr);
	memcpy(buf, b, n);
	buf[n] = '\0';
	free(hdr);
	return end + 4;
}

/*
 * The message must be multipart/mixed with a non-empty text/plain part
 * and an image part, base64 in lines of at most 76 columns, decoding to
 * exactly the image.
 */
static void
it_mime_check(const char *eml, size_t len, const unsigned char *img,
    size_t imglen)
{
	const char	*p, *end = eml + len, *next, *hend, *line, *nl;
	char		 boundary[80], delim[90];
	unsigned char	*dec;
	size_t		 dlen, declen, hlen;
	int		 ntext = 0, nimage = 0, closed = 0;

	p = it_mime_boundary(eml, len, boundary, sizeof(boundary));
	snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	dlen = strlen(delim);
	/* Treat the CRLF ending the header as the first delimiter's. */
	p -= 2;
	while ((p = memmem(p, (size_t)(end - p), delim, dlen)) != NULL) {
		p += dlen;
		if (end - p >= 2 && memcmp(p, "--", 2) == 0) {
			closed = 1;
			break;
		}
		it_assert(end - p >= 2 && memcmp(p, "\r\n", 2) == 0,
		    "boundary line not ended by CRLF");
		p += 2;
		next = memmem(p, (size_t)(end - p), delim, dlen);
		it_assert(next != NULL, "part without a closing boundary");
		hend = memmem(p, (size_t)(next - p), "\r\n\r\n", 4);
		it_assert(hend != NULL, "part without a header");
		hlen = (size_t)(hend - p) + 2;
		if (it_contains_ci(p, hlen, "Content-Type: text/plain")) {
			it_assert(next - (hend + 4) > 0, "empty text part");
			ntext++;
		} else if (it_contains_ci(p, hlen, "Content-Type: image/")) {
			it_assert(it_contains_ci(p, hlen,
			    "Content-Transfer-Encoding: base64"),
			    "image part not base64");
			for (line = hend + 4; line < next; line = nl + 2) {
				nl = memmem(line, (size_t)(next - line), "\r\n",
				    2);
				if (nl == NULL)
					nl = next;
				it_assert(nl - line <= 76,
				    "base64 line of %td columns", nl - line);
			}
			dec = harness_b64_decode(hend + 4,
			    (size_t)(next - (hend + 4)), &declen);
			it_assert(dec != NULL, "the image part is not base64");
			it_assert(declen == imglen &&
			    memcmp(dec, img, imglen) == 0,
			    "decoded image: %zu bytes, client/image.png: %zu "
			    "bytes, or different bytes", declen, imglen);
			free(dec);
			nimage++;
		}
		p = next;
	}
	it_assert(closed, "no closing boundary --%s--", boundary);
	it_assert(ntext == 1 && nimage == 1, "%d text/plain and %d image "
	    "parts, expected one of each", ntext, nimage);
}

/* ---- delivery ---- */

/*
 * The real client's message crosses relayqd and arrives intact, over
 * verified TLS, with the password never printed or logged.
 */
START_TEST(test_delivery_client_message_arrives)
{
	const char *const	 extra[] = { "--password", IT_PASSWORD, NULL };
	struct harness_proc	*d;
	char			 id[128], path[PATH_MAX], val[256];
	char			*out, *eml, *img;
	size_t			 emllen, imglen;

	it_standin(NULL, extra);
	/* By name: SNI and the host name check against DNS:localhost. */
	d = it_relayqd("localhost", 0);
	out = it_client(IT_PASSWORD, NULL, id, sizeof(id));
	it_assert(strstr(out, "C: AUTH PLAIN ********") != NULL,
	    "no masked AUTH line in:\n%s", out);
	it_assert(strstr(out, "S: 250") != NULL &&
	    strstr(out, "C: DATA") != NULL, "no transcript in:\n%s", out);
	it_assert_no_secret(out, strlen(out), "relayq's output");
	free(out);

	it_fmt(path, sizeof(path), "%s/msg-000001.meta", it.mail);
	it_assert(harness_wait_file(path, NULL, it_wait()) == 0,
	    "the stand-in received nothing");
	it_wait_delivered(d, id);
	it_fmt(path, sizeof(path), "%s/queue", it.queue);
	it_assert(harness_count(path, "") == 0, "queue/ is not empty");
	it_assert(harness_count(it.mail, "msg-") == 2,
	    "expected exactly msg-000001.eml and .meta");

	it_fmt(path, sizeof(path), "%s/msg-000001.meta", it.mail);
	it_assert(harness_keyval(path, "tls", val, sizeof(val)) == 0 &&
	    strcmp(val, "yes") == 0, "meta tls: %s", val);
	it_assert(harness_keyval(path, "auth-tls", val, sizeof(val)) == 0 &&
	    strcmp(val, "yes") == 0, "meta auth-tls: %s", val);
	it_assert(harness_keyval(path, "user", val, sizeof(val)) == 0 &&
	    strcmp(val, IT_SENDER) == 0, "meta user: %s", val);
	it_assert(harness_keyval(path, "from", val, sizeof(val)) == 0 &&
	    strstr(val, IT_SENDER) != NULL, "meta from: %s", val);
	it_assert(harness_keyval(path, "rcpt", val, sizeof(val)) == 0 &&
	    strstr(val, IT_RCPT) != NULL, "meta rcpt: %s", val);

	it_fmt(path, sizeof(path), "%s/client/image.png", it.src);
	img = harness_read_file(path, &imglen);
	it_assert(img != NULL && imglen > 8, "cannot read %s", path);
	it_fmt(path, sizeof(path), "%s/msg-000001.eml", it.mail);
	eml = harness_read_file(path, &emllen);
	it_assert(eml != NULL, "cannot read %s", path);
	it_assert(it_contains_ci(eml, emllen, "\r\nTo: ") ||
	    strncasecmp(eml, "To: ", 4) == 0, "no To: header");
	it_assert(strstr(eml, IT_SENDER) != NULL && strstr(eml, IT_RCPT),
	    "the addresses are not in the header");
	it_mime_check(eml, emllen, (const unsigned char *)img, imglen);
	free(eml);
	free(img);

	it_assert_no_secret_file(d->log, "relayqd's log");
	it_fmt(path, sizeof(path), "%s/events.log", it.mail);
	it_assert(harness_grep(path, "result=235") == 1,
	    "the stand-in did not log one successful AUTH");
	it_assert_no_secret_file(path, "the stand-in's events.log");
}
END_TEST

/*
 * PASSWORD "-": the client reads it from stdin (so ps never shows it), and
 * it is that password the relay presents.
 */
START_TEST(test_delivery_password_from_stdin)
{
	const char *const	 extra[] = { "--password", IT_PASSWORD, NULL };
	struct harness_proc	*d;
	char			 id[128], path[PATH_MAX], val[256];
	char			*out;

	it_standin(NULL, extra);
	d = it_relayqd(NULL, 0);
	out = it_client("-", IT_PASSWORD "\n", id, sizeof(id));
	it_assert_no_secret(out, strlen(out), "relayq's output");
	free(out);
	it_fmt(path, sizeof(path), "%s/msg-000001.meta", it.mail);
	it_assert(harness_wait_file(path, NULL, it_wait()) == 0,
	    "the stand-in received nothing");
	it_assert(harness_keyval(path, "user", val, sizeof(val)) == 0 &&
	    strcmp(val, IT_SENDER) == 0, "meta user: %s", val);
	it_wait_delivered(d, id);
	it_fmt(path, sizeof(path), "%s/events.log", it.mail);
	it_assert(harness_grep(path, "result=235") == 1 &&
	    harness_grep(path, "result=535") == 0,
	    "the stand-in did not accept the password read from stdin");
	it_assert_no_secret_file(d->log, "relayqd's log");
}
END_TEST

/* ---- dots ---- */

/*
 * Lines that begin with dots arrive exactly, through the dot-stuffing of
 * both hops (the stand-in without CHUNKING, or relayqd with chunking = no,
 * so the relay sends DATA) and through BDAT, which carries the message as
 * it is.
 */
static const struct {
	const char	*standin_arg;	/* or NULL */
	const char	*daemon_arg;	/* or NULL */
	const char	*body;		/* the stand-in's "body:" */
} dots_modes[] = {
	{ NULL, NULL, "bdat" },
	{ "--no-chunking", NULL, "data" },
	{ NULL, "--chunking=no", "data" },	/* offered, not used */
};

START_TEST(test_dots_transparent_end_to_end)
{
	static const char	 body[] =
	    "From: <" IT_SENDER ">\r\n"
	    "To: <" IT_RCPT ">\r\n"
	    "Subject: dots\r\n"
	    "\r\n"
	    "first\r\n"
	    ".\r\n"
	    "..x\r\n"
	    ".leading\r\n"
	    "..\r\n"
	    "...\r\n"
	    ". \r\n"
	    "last line.\r\n";
	const char *const	 extra[] = { dots_modes[_i].standin_arg, NULL };
	const char *const	 dextra[] = { dots_modes[_i].daemon_arg, NULL };
	struct harness_proc	*d;
	char			 id[128], path[PATH_MAX], how[16];
	char			*eml;
	size_t			 len;

	it_standin(NULL, extra);
	d = harness_relayqd(&it, NULL, 0, dextra);
	it_assert(d != NULL, "relayqd did not start");
	it_smtp_submit(body, sizeof(body) - 1, id, sizeof(id));
	it_fmt(path, sizeof(path), "%s/msg-000001.meta", it.mail);
	it_assert(harness_wait_file(path, NULL, it_wait()) == 0,
	    "the stand-in received nothing");
	it_assert(harness_keyval(path, "body", how, sizeof(how)) == 0 &&
	    strcmp(how, dots_modes[_i].body) == 0, "sent with %s, not %s",
	    how, dots_modes[_i].body);
	it_fmt(path, sizeof(path), "%s/msg-000001.eml", it.mail);
	eml = harness_read_file(path, &len);
	it_assert(eml != NULL, "cannot read %s", path);
	it_assert(len == sizeof(body) - 1 && memcmp(eml, body, len) == 0,
	    "received %zu bytes, sent %zu; received:\n%s", len,
	    sizeof(body) - 1, eml);
	free(eml);
	it_wait_delivered(d, id);
	it_assert(harness_count(it.mail, "msg-") == 2, "more than one message");
}
END_TEST

/* ---- auth_fail ---- */

/* Gmail's 535 is permanent: the entry moves to failed/ with the reply. */
START_TEST(test_auth_fail_goes_to_failed)
{
	const char *const	 extra[] = { "--password", IT_PASSWORD, NULL };
	char			 id[128], val[1024], path[PATH_MAX];
	char			*out;

	it_standin(NULL, extra);
	it_relayqd(NULL, 0);
	out = it_client("not-" IT_PASSWORD, NULL, id, sizeof(id));
	free(out);
	it_wait_failed(id);
	it_envelope("failed", id, "last-reply", val, sizeof(val));
	it_assert(strstr(val, "535 5.7.8") != NULL &&
	    strstr(val, "Username and Password not accepted") != NULL,
	    "last-reply: %s", val);
	it_envelope("failed", id, "state", val, sizeof(val));
	it_assert(strcmp(val, "failed") == 0, "state: %s", val);
	it_fmt(path, sizeof(path), "%s/queue", it.queue);
	it_assert(harness_count(path, "") == 0, "queue/ is not empty");
	it_assert(harness_count(it.mail, "msg-") == 0,
	    "the stand-in recorded a message");
	it_fmt(path, sizeof(path), "%s/events.log", it.mail);
	it_assert(harness_grep(path, "result=535") == 1,
	    "expected exactly one failed AUTH at the stand-in");
	it_assert(harness_grep(path, "mail ") == 0, "MAIL after a 535");
}
END_TEST

/* ---- tempfail ---- */

/* Two 421s at MAIL FROM, then delivery on the third attempt. */
START_TEST(test_tempfail_delivered_on_third_attempt)
{
	const char *const	 extra[] = { "--tempfail", "2", NULL };
	struct harness_proc	*d;
	char			 id[128], path[PATH_MAX], line[160];
	char			 val[1024];
	char			*out;

	it_standin(NULL, extra);
	d = it_relayqd(NULL, 0);
	out = it_client(IT_PASSWORD, NULL, id, sizeof(id));
	free(out);
	/* Each state lasts the retry delay (1 s, then 2 s): long enough. */
	it_fmt(path, sizeof(path), "%s/queue/%s/envelope", it.queue, id);
	it_assert(harness_wait_keyval(path, "attempts", "1", it_wait()) == 0,
	    "the envelope never showed attempts: 1");
	it_envelope("queue", id, "last-reply", val, sizeof(val));
	it_assert(strstr(val, "421 4.7.0") != NULL, "last-reply: %s", val);
	it_assert(harness_wait_keyval(path, "attempts", "2", it_wait()) == 0,
	    "the envelope never showed attempts: 2");
	it_fmt(path, sizeof(path), "%s/msg-000001.meta", it.mail);
	it_assert(harness_wait_file(path, NULL, it_wait()) == 0,
	    "never delivered");
	it_wait_delivered(d, id);
	it_fmt(path, sizeof(path), "%s/events.log", it.mail);
	it_assert(harness_grep(path, "tempfail ") == 2,
	    "expected 2 tempfails, events.log has %d",
	    harness_grep(path, "tempfail "));
	it_assert(harness_grep(path, "delivered ") == 1,
	    "expected 1 delivery, events.log has %d",
	    harness_grep(path, "delivered "));
	it_fmt(line, sizeof(line), "%s deferred ", id);
	it_assert(harness_grep_lines(d->log, line, " attempts=1 ") == 1,
	    "no \"%s... attempts=1\" line", line);
	it_assert(harness_grep_lines(d->log, line, " attempts=2 ") == 1,
	    "no \"%s... attempts=2\" line", line);
	it_assert(harness_grep_lines(d->log, line, NULL) == 2,
	    "expected exactly two deferrals");
	it_fmt(line, sizeof(line), "%s delivered ", id);
	it_assert(harness_grep_lines(d->log, line, " attempts=3 ") == 1,
	    "no \"%s... attempts=3\" line", line);
	it_assert(harness_grep(d->log, "421 4.7.0") >= 2,
	    "the 421 reply is not in relayqd's log");
	it_assert(harness_count(it.mail, "msg-") == 2, "more than one message");
}
END_TEST

/* ---- tls_refusal ---- */

static const struct {
	const char	*flag;		/* extra stand-in flag or NULL */
	const char	*cert;		/* stand-in certificate */
	const char	*reason[2];	/* last-reply names one of these */
	int		 starttls;	/* 1 if STARTTLS is reached */
} tls_cases[] = {
	{ "--no-starttls", "server", { "STARTTLS", NULL }, 0 },
	{ NULL, "rogue", { "certificate", "verif" }, 1 },
	{ NULL, "wronghost", { "certificate", "mismatch" }, 1 },
	{ NULL, "expired", { "certificate", "expired" }, 1 },
};

/*
 * Without verified TLS the credentials are never sent: no AUTH reaches
 * the stand-in, and the message stays queued with the reason.
 */
START_TEST(test_tls_refusal_keeps_message_queued)
{
	const char *const	 extra[] = { tls_cases[_i].flag, NULL };
	struct harness_proc	*d;
	struct stat		 st;
	char			 id[128], val[1024], path[PATH_MAX];
	char			 outcome[3][160], *out;
	const char *const	 needles[] = { outcome[0], outcome[1],
				    outcome[2], NULL };
	unsigned long		 attempts;
	int			 which;

	it_standin(tls_cases[_i].cert, extra);
	d = it_relayqd(NULL, 0);
	out = it_client(IT_PASSWORD, NULL, id, sizeof(id));
	free(out);
	it_fmt(outcome[0], sizeof(outcome[0]), "%s deferred ", id);
	it_fmt(outcome[1], sizeof(outcome[1]), "%s delivered ", id);
	it_fmt(outcome[2], sizeof(outcome[2]), "%s failed ", id);
	which = harness_wait_any(d->log, needles, it_wait());

	/* First the safety fact, whatever the outcome. */
	it_fmt(path, sizeof(path), "%s/events.log", it.mail);
	it_assert(harness_grep(path, "auth ") == 0,
	    "case %d (%s): AUTH reached the stand-in", _i,
	    tls_cases[_i].cert);
	it_assert(harness_grep(path, "mail ") == 0,
	    "case %d: MAIL reached the stand-in", _i);
	it_assert(which == 0, "case %d (%s): expected \"%s\", relayqd "
	    "logged %s", _i, tls_cases[_i].cert, outcome[0],
	    which == -1 ? "no outcome" : outcome[which]);
	it_assert((harness_grep(path, "starttls ") > 0) ==
	    (tls_cases[_i].starttls == 1),
	    "case %d: STARTTLS %s expected", _i,
	    tls_cases[_i].starttls ? "was" : "was not");
	it_assert(harness_count(it.mail, "msg-") == 0,
	    "case %d: a message was recorded", _i);

	it_fmt(path, sizeof(path), "%s/queue/%s/message.eml", it.queue, id);
	it_assert(access(path, R_OK) == 0, "case %d: %s missing", _i, path);
	it_envelope("queue", id, "last-reply", val, sizeof(val));
	it_assert(it_contains_ci(val, strlen(val), tls_cases[_i].reason[0]) ||
	    (tls_cases[_i].reason[1] != NULL && it_contains_ci(val,
	    strlen(val), tls_cases[_i].reason[1])),
	    "case %d (%s): last-reply does not name the reason: \"%s\"", _i,
	    tls_cases[_i].cert, val);
	it_envelope("queue", id, "attempts", val, sizeof(val));
	attempts = strtoul(val, NULL, 10);
	it_assert(attempts >= 1, "case %d: attempts: %s", _i, val);
	it_envelope("queue", id, "state", val, sizeof(val));
	it_assert(strcmp(val, "queued") == 0, "case %d: state %s", _i, val);

	/* The credentials kept for the retry stay private. */
	it_fmt(path, sizeof(path), "%s/queue/%s/credentials", it.queue, id);
	it_assert(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600,
	    "case %d: credentials mode %o", _i, (unsigned)st.st_mode & 07777);
	it_fmt(path, sizeof(path), "%s/queue/%s", it.queue, id);
	it_assert(stat(path, &st) == 0 && (st.st_mode & 07777) == 0700,
	    "case %d: entry mode %o", _i, (unsigned)st.st_mode & 07777);
	it_fmt(path, sizeof(path), "%s/queue", it.queue);
	it_assert(stat(path, &st) == 0 && (st.st_mode & 07777) == 0700,
	    "case %d: queue/ mode %o", _i, (unsigned)st.st_mode & 07777);
	it_fmt(path, sizeof(path), "%s/queue/%s/envelope", it.queue, id);
	it_assert_no_secret_file(path, "the envelope");
	it_assert_no_secret_file(d->log, "relayqd's log");
}
END_TEST

/* ---- reject_rcpt ---- */

/* 550 5.1.1 at RCPT is permanent. */
START_TEST(test_reject_rcpt_goes_to_failed)
{
	const char *const	 extra[] = { "--reject-rcpt", NULL };
	char			 id[128], val[1024], path[PATH_MAX];
	char			*out;

	it_standin(NULL, extra);
	it_relayqd(NULL, 0);
	out = it_client(IT_PASSWORD, NULL, id, sizeof(id));
	free(out);
	it_wait_failed(id);
	it_envelope("failed", id, "last-reply", val, sizeof(val));
	it_assert(strstr(val, "550 5.1.1") != NULL, "last-reply: %s", val);
	it_envelope("failed", id, "state", val, sizeof(val));
	it_assert(strcmp(val, "failed") == 0, "state: %s", val);
	it_fmt(path, sizeof(path), "%s/queue", it.queue);
	it_assert(harness_count(path, "") == 0, "queue/ is not empty");
	it_assert(harness_count(it.mail, "msg-") == 0,
	    "the stand-in recorded a message");
}
END_TEST

/* ---- drop ---- */

/* A connection lost in DATA is temporary: the retry delivers once. */
START_TEST(test_drop_in_data_delivered_on_retry)
{
	const char *const	 extra[] = { "--drop-in-data", "1", NULL };
	struct harness_proc	*d;
	char			 id[128], path[PATH_MAX], line[160];
	char			*out;

	it_standin(NULL, extra);
	d = it_relayqd(NULL, 0);
	out = it_client(IT_PASSWORD, NULL, id, sizeof(id));
	free(out);
	it_fmt(path, sizeof(path), "%s/msg-000001.meta", it.mail);
	it_assert(harness_wait_file(path, NULL, it_wait()) == 0,
	    "never delivered");
	it_wait_delivered(d, id);
	it_fmt(path, sizeof(path), "%s/events.log", it.mail);
	it_assert(harness_grep(path, "drop ") == 1, "expected one drop");
	it_assert(harness_grep(path, "delivered ") == 1,
	    "expected one delivery");
	it_fmt(line, sizeof(line), "%s deferred ", id);
	it_assert(harness_grep_lines(d->log, line, " attempts=1 ") == 1 &&
	    harness_grep_lines(d->log, line, NULL) == 1,
	    "expected one \"%s... attempts=1\" line", line);
	it_fmt(line, sizeof(line), "%s delivered ", id);
	it_assert(harness_grep_lines(d->log, line, " attempts=2 ") == 1,
	    "no \"%s... attempts=2\" line", line);
	it_assert(harness_count(it.mail, "msg-") == 2, "more than one message");
}
END_TEST

/* ---- restart ---- */

/*
 * Messages queued while the relay is down survive a SIGTERM and are
 * delivered by the next daemon on the same queue.
 */
START_TEST(test_restart_delivers_queue)
{
	struct harness_proc	*d1, *d2;
	char			 id[3][128], path[PATH_MAX], line[160];
	char			*out;
	int			 port, status, i;

	port = harness_free_port();
	it_assert(port > 0, "no free port");
	d1 = it_relayqd(NULL, port);
	for (i = 0; i < 3; i++) {
		out = it_client(IT_PASSWORD, NULL, id[i], sizeof(id[i]));
		free(out);
	}
	for (i = 0; i < 3; i++) {
		it_fmt(line, sizeof(line), "%s deferred ", id[i]);
		it_assert(harness_wait_grep(d1->log, line, 1, it_wait()) == 0,
		    "%s was not tried against the closed port", id[i]);
	}
	status = harness_stop(d1, SIGTERM, it_wait());
	it_assert(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "relayqd on SIGTERM: status 0x%x",
	    (unsigned)status);
	it_assert(access(it.socket, F_OK) == -1,
	    "relayqd left its socket behind");
	it_fmt(path, sizeof(path), "%s/queue", it.queue);
	it_assert(harness_count(path, "") == 3, "queue/ holds %d entries",
	    harness_count(path, ""));
	for (i = 0; i < 3; i++) {
		it_fmt(path, sizeof(path), "%s/queue/%s/message.eml",
		    it.queue, id[i]);
		it_assert(access(path, R_OK) == 0, "%s missing", path);
	}

	it_standin(NULL, NULL);
	d2 = it_relayqd(NULL, 0);
	it_assert(harness_wait_count(it.mail, "msg-", 6, it_wait()) == 0,
	    "the stand-in got %d files, expected 3 messages",
	    harness_count(it.mail, "msg-"));
	it_fmt(path, sizeof(path), "%s/queue", it.queue);
	it_assert(harness_wait_count(path, "", 0, it_wait()) == 0,
	    "queue/ still holds %d entries", harness_count(path, ""));
	for (i = 0; i < 3; i++) {
		it_fmt(line, sizeof(line), "%s delivered", id[i]);
		it_assert(harness_wait_grep(d2->log, line, 1, it_wait()) == 0,
		    "no \"%s\" from the second relayqd", line);
	}
	status = harness_stop(d2, SIGTERM, it_wait());
	it_assert(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "second relayqd: status 0x%x",
	    (unsigned)status);
}
END_TEST

/* ---- stale socket ---- */

/* A socket file nobody listens on is replaced; a live one is refused. */
START_TEST(test_stale_socket_replaced_live_refused)
{
	struct harness_smtp	 s;
	struct sockaddr_un	 sun;
	struct harness_proc	*d1, *d2;
	char			 bin[PATH_MAX], q2[PATH_MAX], ca[PATH_MAX];
	char			 relay[64];
	char			*argv[16];
	int			 fd, status;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	it_fmt(sun.sun_path, sizeof(sun.sun_path), "%s", it.socket);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	it_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sun,
	    sizeof(sun)) == 0, "bind %s: %s", it.socket, strerror(errno));
	close(fd);
	/* A stale socket: the file is there, nobody answers. */
	it_assert(access(it.socket, F_OK) == 0, "no stale socket file");
	it_assert(harness_smtp_open(&s, it.socket) == -1 &&
	    errno == ECONNREFUSED, "the stale socket answered");

	d1 = it_relayqd(NULL, harness_free_port());
	it_assert(harness_smtp_open(&s, it.socket) == 220,
	    "relayqd on a replaced stale socket: %s", s.reply);
	harness_smtp_close(&s);

	/* A second daemon on the live socket (its own queue) must refuse. */
	it_fmt(bin, sizeof(bin), "%s/relayqd", it.build);
	it_fmt(q2, sizeof(q2), "%s/spool2", it.dir);
	it_fmt(ca, sizeof(ca), "%s/ca.pem", it.certs);
	it_fmt(relay, sizeof(relay), "127.0.0.1:%d", harness_free_port());
	argv[0] = bin;
	argv[1] = (char *)(uintptr_t)"-f";
	argv[2] = (char *)(uintptr_t)"--socket";
	argv[3] = it.socket;
	argv[4] = (char *)(uintptr_t)"--queue-dir";
	argv[5] = q2;
	argv[6] = (char *)(uintptr_t)"--relay";
	argv[7] = relay;
	argv[8] = (char *)(uintptr_t)"--ca-file";
	argv[9] = ca;
	argv[10] = NULL;
	d2 = harness_spawn(&it, "relayqd2", argv);
	it_assert(d2 != NULL, "cannot start a second relayqd");
	status = harness_wait_exit(d2, it_wait());
	it_assert(status != -1, "the second relayqd kept running");
	it_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0,
	    "the second relayqd: status 0x%x", (unsigned)status);
	it_assert(harness_grep(d2->log, it.socket) >= 1,
	    "the second relayqd's message does not name %s", it.socket);

	it_assert(!harness_exited(d1), "the first relayqd died");
	it_assert(harness_smtp_open(&s, it.socket) == 220,
	    "the first relayqd no longer answers: %s", s.reply);
	it_assert(harness_smtp_cmd(&s, "QUIT") == 221, "QUIT: %s", s.reply);
	harness_smtp_close(&s);
}
END_TEST

/* ---- runner ---- */

/* A TCase with the per-test directory fixture and a long timeout. */
static TCase *
it_tcase(const char *name, int timeout)
{
	TCase	*tc = tcase_create(name);

	tcase_add_checked_fixture(tc, it_setup, it_teardown);
	tcase_set_timeout(tc, timeout);
	return tc;
}

Suite	*hostile_suite(void);		/* it_hostile.c */
Suite	*tls_downgrade_suite(void);	/* it_hostile.c */
Suite	*secrets_suite(void);		/* it_hostile.c */
Suite	*crash_suite(void);		/* it_durability.c */
Suite	*disk_full_suite(void);		/* it_durability.c */
Suite	*shutdown_suite(void);		/* it_durability.c */
Suite	*queue_files_suite(void);	/* it_durability.c */
Suite	*service_suite(void);		/* it_service.c */
Suite	*gmail_suite(void);		/* it_gmail.c */
Suite	*sendmail_suite(void);		/* it_sendmail.c */

/* One suite per scenario, so CK_RUN_SUITE selects each. */
int
main(void)
{
	SRunner	*sr;
	Suite	*s;
	TCase	*tc;
	int	 failed;

	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(NULL);

	s = suite_create("delivery");
	tc = it_tcase("client", IT_TIMEOUT);
	tcase_add_test(tc, test_delivery_client_message_arrives);
	tcase_add_test(tc, test_delivery_password_from_stdin);
	suite_add_tcase(s, tc);
	srunner_add_suite(sr, s);

	s = suite_create("dots");
	tc = it_tcase("transparency", IT_TIMEOUT);
	tcase_add_loop_test(tc, test_dots_transparent_end_to_end, 0,
	    (int)nitems(dots_modes));
	suite_add_tcase(s, tc);
	srunner_add_suite(sr, s);

	s = suite_create("auth_fail");
	tc = it_tcase("permanent", IT_TIMEOUT);
	tcase_add_test(tc, test_auth_fail_goes_to_failed);
	suite_add_tcase(s, tc);
	srunner_add_suite(sr, s);

	s = suite_create("tempfail");
	tc = it_tcase("retry", IT_TIMEOUT);
	tcase_add_test(tc, test_tempfail_delivered_on_third_attempt);
	suite_add_tcase(s, tc);
	srunner_add_suite(sr, s);

	s = suite_create("tls_refusal");
	tc = it_tcase("no_credentials", IT_TIMEOUT);
	tcase_add_loop_test(tc, test_tls_refusal_keeps_message_queued, 0,
	    (int)nitems(tls_cases));
	suite_add_tcase(s, tc);
	srunner_add_suite(sr, s);

	s = suite_create("reject_rcpt");
	tc = it_tcase("permanent", IT_TIMEOUT);
	tcase_add_test(tc, test_reject_rcpt_goes_to_failed);
	suite_add_tcase(s, tc);
	srunner_add_suite(sr, s);

	s = suite_create("drop");
	tc = it_tcase("retry", IT_TIMEOUT);
	tcase_add_test(tc, test_drop_in_data_delivered_on_retry);
	suite_add_tcase(s, tc);
	srunner_add_suite(sr, s);

	s = suite_create("restart");
	tc = it_tcase("durable", 2 * IT_TIMEOUT);
	tcase_add_test(tc, test_restart_delivers_queue);
	suite_add_tcase(s, tc);
	srunner_add_suite(sr, s);

	s = suite_create("stale_socket");
	tc = it_tcase("listener", IT_TIMEOUT);
	tcase_add_test(tc, test_stale_socket_replaced_live_refused);
	suite_add_tcase(s, tc);
	srunner_add_suite(sr, s);

	srunner_add_suite(sr, hostile_suite());
	srunner_add_suite(sr, tls_downgrade_suite());
	srunner_add_suite(sr, secrets_suite());
	srunner_add_suite(sr, crash_suite());
	srunner_add_suite(sr, disk_full_suite());
	srunner_add_suite(sr, shutdown_suite());
	srunner_add_suite(sr, queue_files_suite());
	srunner_add_suite(sr, service_suite());
	srunner_add_suite(sr, gmail_suite());
	srunner_add_suite(sr, sendmail_suite());

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
