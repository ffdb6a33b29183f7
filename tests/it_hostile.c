/*
 * it_hostile.c: integration suites for hostile input and secrets.  Each
 * test runs the real relayqd (and, for the TLS cases, the stand-in) in a
 * fresh directory (tests/harness.h) and talks to it as an attacker would:
 * raw bytes on the submission socket, slow or silent clients, too many
 * connections, abrupt closes, a relay that refuses or downgrades TLS or
 * injects plaintext after STARTTLS.  Assertions are on exact replies, the
 * queue directory, the daemon's logs and /proc.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"
#include "util.h"

#define HOSTILE_TIMEOUT		60	/* per test, before the multiplier */
#define HOSTILE_SENDER		"alice@example.com"
#define HOSTILE_RCPT		"bob@example.net"
#define HOSTILE_PASSWORD	"Vq9-tr0ub4dor-Kx"
#define HOSTILE_HUGE		(10 * 1024 * 1024)	/* the 10 MB line */
#define HOSTILE_GMAIL_SIZE	35882577ULL		/* the default max */
/*
 * relayqd's peak resident set (VmHWM) after 10 MB lines in both command
 * and DATA modes.  Measured at about 9 MB (gcc -O2) and about 30 MB under
 * ASan, whose shadow memory and quarantine count too; relayqd.8 states
 * the bound for the normal build.
 */
#define HOSTILE_HWM_KB		(32 * 1024)
#define HOSTILE_HWM_SAN_KB	(128 * 1024)
#define HOSTILE_IDLE		2	/* --idle-timeout for the timeout tests */
/*
 * Commands pipelined by a client that does not read its replies (EHLO,
 * with a NOOP every 16th): about 3 MB in, 50 MB of replies out, which a
 * daemon buffering them all would hold at once.
 */
#define HOSTILE_UNREAD_N	400000

/* A string literal with NULs inside, and its length. */
#define BYTES(lit)		(lit), sizeof(lit) - 1

Suite	*hostile_suite(void);
Suite	*tls_downgrade_suite(void);
Suite	*secrets_suite(void);

static struct harness	 hh;		/* one per forked test */

/*
 * Assert, printing every process log first; a failed assertion skips the
 * teardown, so stop the processes and remove the directory here too.
 */
#define hostile_assert(cond, ...)					\
	harness_check(cond, harness_dump(&hh), harness_fini(&hh),	\
	    __VA_ARGS__)

/* Format into buf; it must fit. */
#define hostile_fmt(buf, len, ...)					\
	hostile_assert(harness_fmt((buf), (len), __VA_ARGS__) == 0,	\
	    "does not fit: %s", #buf)

/* A fresh directory per test. */
static void
hostile_setup(void)
{
	if (harness_init(&hh) == -1) {
		harness_fini(&hh);
		ck_abort_msg("harness_init failed");
	}
}

/* Every process still running must exit 0 on SIGTERM; then clean up. */
static void
hostile_teardown(void)
{
	char	 why[PATH_MAX + 128];

	hostile_assert(harness_stop_all(&hh, why, sizeof(why)) == 0, "%s", why);
	harness_fini(&hh);
}

/*
 * Start relayqd relaying to a closed port (nothing is ever delivered),
 * with the extra flags (NULL-terminated, may be NULL).
 */
static struct harness_proc *
hostile_daemon(const char *const *extra)
{
	struct harness_proc	*d;
	int			 port = harness_free_port();

	hostile_assert(port > 0, "no free port");
	d = harness_relayqd(&hh, NULL, port, extra);
	hostile_assert(d != NULL, "relayqd did not start");
	return d;
}

/* Entries in the queue's sub-directory (tmp, queue or failed). */
static int
hostile_count(const char *sub)
{
	char	 path[PATH_MAX];

	hostile_fmt(path, sizeof(path), "%s/%s", hh.queue, sub);
	return harness_count(path, "");
}

/* Assert neither tmp/ nor queue/ holds anything. */
static void
hostile_assert_nothing_queued(const char *when)
{
	int	 tmp = hostile_count("tmp"), queue = hostile_count("queue");

	hostile_assert(tmp == 0, "%s: tmp/ holds %d entries", when, tmp);
	hostile_assert(queue == 0, "%s: queue/ holds %d entries", when,
	    queue);
}

/* Connect and expect the 220 banner. */
static void
hostile_open(struct harness_smtp *s)
{
	hostile_assert(harness_smtp_open(s, hh.socket) == 220,
	    "banner: %d %s", s->code, s->reply);
}

/* Write raw bytes; the daemon must keep reading. */
static void
hostile_send(struct harness_smtp *s, const void *buf, size_t len)
{
	hostile_assert(harness_smtp_write(s, buf, len) == 0, "write of %zu "
	    "bytes failed: %s", len, strerror(errno));
}

/* Write a C string. */
static void
hostile_say(struct harness_smtp *s, const char *text)
{
	hostile_send(s, text, strlen(text));
}

/*
 * Read one reply: its code must be code and its last line must contain
 * text (an enhanced code such as "5.5.2", or a longer fragment).
 */
static void
hostile_expect(struct harness_smtp *s, int code, const char *text,
    const char *what)
{
	int	 got = harness_smtp_reply(s);

	hostile_assert(got == code && strstr(s->reply, text) != NULL,
	    "%s: expected %d ...%s..., got %d \"%s\"", what, code, text, got,
	    s->reply);
}

/* The AUTH PLAIN initial response for the test credentials (free it). */
static char *
hostile_plain_b64(void)
{
	char	 plain[128];
	char	*b64;
	int	 n;

	n = snprintf(plain, sizeof(plain), "%c%s%c%s", '\0', HOSTILE_SENDER,
	    '\0', HOSTILE_PASSWORD);
	hostile_assert(n > 0 && (size_t)n < sizeof(plain), "PLAIN too long");
	b64 = harness_b64_encode(plain, (size_t)n);
	hostile_assert(b64 != NULL, "out of memory");
	return b64;
}

/* EHLO and AUTH PLAIN with the test credentials. */
static void
hostile_login(struct harness_smtp *s)
{
	char	*b64 = hostile_plain_b64();

	hostile_assert(harness_smtp_cmd(s, "EHLO hostile.example") == 250,
	    "EHLO: %s", s->reply);
	hostile_assert(harness_smtp_cmd(s, "AUTH PLAIN %s", b64) == 235,
	    "AUTH: %s", s->reply);
	free(b64);
}

/* MAIL, RCPT and DATA up to the 354. */
static void
hostile_begin_data(struct harness_smtp *s)
{
	hostile_assert(harness_smtp_cmd(s, "MAIL FROM:<%s>", HOSTILE_SENDER) ==
	    250, "MAIL: %s", s->reply);
	hostile_assert(harness_smtp_cmd(s, "RCPT TO:<%s>", HOSTILE_RCPT) ==
	    250, "RCPT: %s", s->reply);
	hostile_assert(harness_smtp_cmd(s, "DATA") == 354, "DATA: %s",
	    s->reply);
}

/* The session still works: NOOP gets 250. */
static void
hostile_alive(struct harness_smtp *s, const char *what)
{
	hostile_assert(harness_smtp_cmd(s, "NOOP") == 250,
	    "%s: the session does not go on: NOOP got %d %s", what, s->code,
	    s->reply);
}

/* Send len copies of c, in 1 MB writes. */
static void
hostile_flood(struct harness_smtp *s, int c, size_t len)
{
	static char	 chunk[1024 * 1024];
	size_t		 n;

	memset(chunk, c, sizeof(chunk));
	while (len > 0) {
		n = len < sizeof(chunk) ? len : sizeof(chunk);
		hostile_send(s, chunk, n);
		len -= n;
	}
}

/* A "Key: N kB" line of /proc/<pid>/status, in kB, or -1. */
static long
hostile_proc_kb(pid_t pid, const char *key)
{
	char	 path[64], *text, *p;
	long	 kb = -1;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((text = harness_read_file(path, NULL)) == NULL)
		return -1;
	if ((p = strstr(text, key)) != NULL)
		kb = strtol(p + strlen(key), NULL, 10);
	free(text);
	return kb;
}

/* True when this binary runs under AddressSanitizer (make sanitize). */
static bool
hostile_asan(void)
{
	char	*maps;
	bool	 asan;

	if ((maps = harness_read_file("/proc/self/maps", NULL)) == NULL)
		return false;
	asan = strstr(maps, "libasan") != NULL;
	free(maps);
	return asan || getenv("CK_TIMEOUT_MULTIPLIER") != NULL;
}

/* ---- hostile: line limits ---- */

/*
 * A command line of 512 octets with its CRLF is accepted; 513 or more is
 * "500 5.5.2 Line too long" and the session goes on.
 */
START_TEST(test_hostile_long_command_line)
{
	struct harness_smtp	 s;
	char			 line[2048];

	hostile_daemon(NULL);
	hostile_open(&s);
	memset(line, 0, sizeof(line));
	memcpy(line, "NOOP ", 5);
	memset(line + 5, 'x', 505);		/* 510 + CRLF = 512 */
	hostile_assert(harness_smtp_cmd(&s, "%s", line) == 250,
	    "a 512-octet line: %d %s", s.code, s.reply);
	line[510] = 'x';			/* 511 + CRLF = 513 */
	hostile_assert(harness_smtp_cmd(&s, "%s", line) == 500 &&
	    strstr(s.reply, "5.5.2 Line too long") != NULL,
	    "a 513-octet line: %d %s", s.code, s.reply);
	memset(line + 5, 'y', 1500);
	hostile_assert(harness_smtp_cmd(&s, "%s", line) == 500 &&
	    strstr(s.reply, "5.5.2 Line too long") != NULL,
	    "a 1507-octet line: %d %s", s.code, s.reply);
	hostile_alive(&s, "after long lines");
	harness_smtp_close(&s);
}
END_TEST

/*
 * A text line of 998 octets plus CRLF is fine; 999 gets 554 5.6.0 after
 * the final dot and nothing is queued; the session goes on.
 */
START_TEST(test_hostile_long_data_line)
{
	struct harness_smtp	 s;
	static char		 body[1200];

	hostile_daemon(NULL);
	hostile_open(&s);
	hostile_login(&s);
	hostile_begin_data(&s);
	memcpy(body, "Subject: long\r\n\r\n", 17);
	memset(body + 17, 'a', 998);
	memcpy(body + 17 + 998, "\r\n.\r\n", 6);
	hostile_say(&s, body);
	hostile_expect(&s, 250, "queued as", "998-octet line");
	hostile_begin_data(&s);
	memset(body + 17, 'b', 999);
	memcpy(body + 17 + 999, "\r\n.\r\n", 6);
	hostile_say(&s, body);
	hostile_expect(&s, 554, "5.6.0", "999-octet line");
	hostile_alive(&s, "after a long text line");
	hostile_assert(hostile_count("queue") == 1, "queue/ does not hold "
	    "exactly the first message");
	hostile_assert(hostile_count("tmp") == 0, "tmp/ is not empty");
	harness_smtp_close(&s);
}
END_TEST

/*
 * 10 MB without a line end, in command mode and in DATA: one clear reply
 * each, the session goes on, and the daemon's peak memory stays bounded.
 */
START_TEST(test_hostile_huge_line_bounded_memory)
{
	struct harness_proc	*d;
	struct harness_smtp	 s;
	long			 hwm, bound;

	d = hostile_daemon(NULL);
	hostile_open(&s);
	hostile_login(&s);
	hostile_flood(&s, 'A', HOSTILE_HUGE);
	hostile_say(&s, "\r\n");
	hostile_expect(&s, 500, "5.5.2 Line too long", "10 MB command line");
	hostile_alive(&s, "after a 10 MB command line");
	hostile_flood(&s, '\0', HOSTILE_HUGE);
	hostile_say(&s, "\r\n");
	hostile_expect(&s, 500, "5.5.2 Line too long", "10 MB of NUL");
	hostile_alive(&s, "after 10 MB of NUL");

	hostile_begin_data(&s);
	hostile_say(&s, "Subject: huge\r\n\r\n");
	hostile_flood(&s, 'B', HOSTILE_HUGE);
	hostile_say(&s, "\r\n.\r\n");
	hostile_expect(&s, 554, "5.6.0", "10 MB text line");
	hostile_alive(&s, "after a 10 MB text line");
	hostile_assert_nothing_queued("after the 10 MB lines");

	hwm = hostile_proc_kb(d->pid, "VmHWM:");
	bound = hostile_asan() ? HOSTILE_HWM_SAN_KB : HOSTILE_HWM_KB;
	fprintf(stderr, "hostile: relayqd VmHWM %ld kB (bound %ld kB)\n", hwm,
	    bound);
	hostile_assert(hwm > 0 && hwm < bound, "relayqd VmHWM %ld kB, bound "
	    "%ld kB", hwm, bound);
	harness_smtp_close(&s);
}
END_TEST

/* The reply lines of the unread pipeline, streamed and checked. */
struct hostile_unread {
	const char	*ehlo;		/* the whole EHLO reply, CRLFs */
	size_t		 cmd;		/* whose reply is arriving */
	size_t		 off;		/* bytes of it seen */
};

/* Command i of the unread pipeline and (in *reply) its whole reply. */
static const char *
hostile_unread_cmd(const struct hostile_unread *u, size_t i,
    const char **reply)
{
	*reply = i % 16 == 15 ? "250 2.0.0 Ok\r\n" : u->ehlo;
	return i % 16 == 15 ? "NOOP\r\n" : "EHLO hostile.example\r\n";
}

/* Check n reply bytes against the replies due, in order. */
static void
hostile_unread_check(struct hostile_unread *u, const char *buf, size_t n)
{
	const char	*reply;
	size_t		 i;

	for (i = 0; i < n; i++) {
		hostile_assert(u->cmd < HOSTILE_UNREAD_N, "a reply beyond the "
		    "last command: \"%.*s\"", (int)(n - i), buf + i);
		hostile_unread_cmd(u, u->cmd, &reply);
		hostile_assert(buf[i] == reply[u->off], "reply %zu, byte %zu: "
		    "got \"%.40s\", want \"%s\"", u->cmd, u->off, buf + i,
		    reply);
		if (reply[++u->off] == '\0') {
			u->cmd++;
			u->off = 0;
		}
	}
}

/*
 * RFC 2920 pipelining by a client that never reads: the daemon stops
 * reading lines while its replies back up, so its peak memory stays
 * under the bound of relayqd.8; once the client reads, every reply
 * arrives, in order, and the session goes on.
 */
START_TEST(test_hostile_unread_replies_bounded_memory)
{
	struct harness_proc	*d;
	struct harness_smtp	 s;
	struct hostile_unread	 u;
	struct pollfd		 pfd;
	static char		 buf[64 * 1024];
	char			*in, *ehlo, *p;
	const char		*cmd, *reply;
	size_t			 i, len = 0, off = 0;
	ssize_t			 n;
	long			 hwm, bound;
	int			 r;

	d = hostile_daemon(NULL);
	hostile_open(&s);
	hostile_assert(harness_smtp_cmd(&s, "EHLO hostile.example") == 250,
	    "EHLO: %s", s.reply);
	hostile_assert(s.inlen == 0, "bytes after the EHLO reply");
	/* The EHLO reply as it is on the wire. */
	ehlo = malloc(strlen(s.reply) * 2 + 3);
	hostile_assert(ehlo != NULL, "out of memory");
	for (p = s.reply, i = 0; *p != '\0'; p++) {
		if (*p == '\n')
			ehlo[i++] = '\r';
		ehlo[i++] = *p;
	}
	memcpy(ehlo + i, "\r\n", 3);
	memset(&u, 0, sizeof(u));
	u.ehlo = ehlo;
	in = malloc(HOSTILE_UNREAD_N * 24);
	hostile_assert(in != NULL, "out of memory");
	for (i = 0; i < HOSTILE_UNREAD_N; i++) {
		cmd = hostile_unread_cmd(&u, i, &reply);
		memcpy(in + len, cmd, strlen(cmd));
		len += strlen(cmd);
	}

	/* Write without reading until the daemon stops taking input. */
	pfd.fd = s.fd;
	while (off < len) {
		n = send(s.fd, in + off, len - off, MSG_DONTWAIT |
		    MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		hostile_assert(n == -1 && (errno == EAGAIN ||
		    errno == EWOULDBLOCK), "send: %s", strerror(errno));
		pfd.events = POLLOUT;
		if ((r = poll(&pfd, 1, 500)) == 0)
			break;
		hostile_assert(r == 1, "poll: %s", strerror(errno));
	}
	fprintf(stderr, "hostile: %zu of %zu bytes of commands written "
	    "unread\n", off, len);

	/* Now read every reply, writing the rest of the commands. */
	while (u.cmd < HOSTILE_UNREAD_N) {
		pfd.events = POLLIN | (off < len ? POLLOUT : 0);
		r = poll(&pfd, 1, (int)(harness_scale(HARNESS_WAIT) * 1000));
		hostile_assert(r == 1, "stalled at reply %zu, %zu of %zu bytes "
		    "written", u.cmd, off, len);
		if ((pfd.revents & POLLOUT) && off < len &&
		    (n = send(s.fd, in + off, len - off, MSG_DONTWAIT |
		    MSG_NOSIGNAL)) > 0)
			off += (size_t)n;
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(s.fd, buf, sizeof(buf), MSG_DONTWAIT);
			hostile_assert(n > 0 || (n == -1 && errno == EAGAIN),
			    "the daemon hung up at reply %zu", u.cmd);
			if (n > 0)
				hostile_unread_check(&u, buf, (size_t)n);
		}
	}
	free(in);
	free(ehlo);
	hostile_assert(u.off == 0, "a partial last reply");

	hwm = hostile_proc_kb(d->pid, "VmHWM:");
	bound = hostile_asan() ? HOSTILE_HWM_SAN_KB : HOSTILE_HWM_KB;
	fprintf(stderr, "hostile: relayqd VmHWM %ld kB after %d unread "
	    "commands (bound %ld kB)\n", hwm, HOSTILE_UNREAD_N, bound);
	hostile_assert(hwm > 0 && hwm < bound, "relayqd VmHWM %ld kB, bound "
	    "%ld kB", hwm, bound);
	hostile_alive(&s, "after the unread pipeline");
	harness_smtp_close(&s);
}
END_TEST

static const struct {
	const char	*name;
	const char	*bytes;		/* the offending line */
	size_t		 len;
	const char	*reply;		/* expected after "500 " */
} bad_cmd_cases[] = {
	{ "NUL", BYTES("NO\0OP\r\n"), "5.5.2 Invalid character" },
	{ "8-bit verb", BYTES("N\xc3\x96OP\r\n"), "5.5.2 Invalid character" },
	{ "8-bit address", BYTES("MAIL FROM:<caf\xc3\xa9@example.com>\r\n"),
	    "5.5.2 Invalid character" },
	{ "high byte", BYTES("NOOP \xff\r\n"), "5.5.2 Invalid character" },
	{ "bare LF", BYTES("NOOP\n"), "5.5.2 Bare LF" },
	{ "bare CR", BYTES("NO\rOP\r\n"), "5.5.2 Invalid character" },
	{ "CR CR LF", BYTES("NOOP\r\r\n"), "5.5.2 Invalid character" },
};

/*
 * NUL, bytes over 0x7F, bare LF and bare CR in a command: 500 5.5.2, and
 * the next command (in the same write) is answered normally.
 */
START_TEST(test_hostile_bad_command_bytes)
{
	struct harness_smtp	 s;
	char			 what[64];

	hostile_daemon(NULL);
	hostile_open(&s);
	hostile_login(&s);
	hostile_fmt(what, sizeof(what), "%s", bad_cmd_cases[_i].name);
	hostile_send(&s, bad_cmd_cases[_i].bytes, bad_cmd_cases[_i].len);
	hostile_say(&s, "NOOP\r\n");
	hostile_expect(&s, 500, bad_cmd_cases[_i].reply, what);
	hostile_expect(&s, 250, "2.0.0", what);
	hostile_assert(harness_smtp_cmd(&s, "MAIL FROM:<%s>",
	    HOSTILE_SENDER) == 250, "%s: MAIL after: %s", what, s.reply);
	harness_smtp_close(&s);
}
END_TEST

static const struct {
	const char	*name;
	const char	*text;		/* message text, before the final dot */
	size_t		 len;
	const char	*reply;		/* after "554 " */
} bad_text_cases[] = {
	{ "bare LF", BYTES("Subject: x\r\n\r\none\ntwo"), "5.6.0 Message "
	    "contains bare" },
	{ "bare CR", BYTES("Subject: x\r\n\r\none\rtwo"), "5.6.0 Message "
	    "contains bare" },
	{ "NUL", BYTES("Subject: x\r\n\r\none\0two"), "5.6.0 Message "
	    "contains a NUL" },
	{ "bare LF then dot", BYTES("Subject: x\r\n\r\nend\n.\nmore"),
	    "5.6.0 Message contains bare" },
};

/*
 * Bad message text is refused 554 5.6.0 after the real end of data, and
 * nothing is queued; a bare-LF "." never ends the message early.
 */
START_TEST(test_hostile_bad_text_bytes)
{
	struct harness_smtp	 s;

	hostile_daemon(NULL);
	hostile_open(&s);
	hostile_login(&s);
	hostile_begin_data(&s);
	hostile_send(&s, bad_text_cases[_i].text, bad_text_cases[_i].len);
	hostile_say(&s, "\r\n.\r\n");
	hostile_expect(&s, 554, bad_text_cases[_i].reply,
	    bad_text_cases[_i].name);
	hostile_alive(&s, bad_text_cases[_i].name);
	hostile_assert_nothing_queued(bad_text_cases[_i].name);
	harness_smtp_close(&s);
}
END_TEST

/* ---- hostile: size and recipients ---- */

/*
 * With the default maximum (Gmail's 35882577): SIZE= one over is 552
 * 5.3.4, SIZE= equal is accepted; a body that only shows it is too big
 * during DATA is 552 5.3.4 after the dot, and tmp/ is left empty.
 */
START_TEST(test_hostile_message_too_big)
{
	struct harness_smtp	 s;
	static char		 chunk[64 * 1000];
	size_t			 sent, i;

	hostile_daemon(NULL);
	hostile_open(&s);
	hostile_login(&s);
	hostile_assert(harness_smtp_cmd(&s, "MAIL FROM:<%s> SIZE=%llu",
	    HOSTILE_SENDER, HOSTILE_GMAIL_SIZE + 1) == 552 &&
	    strstr(s.reply, "5.3.4") != NULL, "SIZE over: %d %s", s.code,
	    s.reply);
	hostile_assert(harness_smtp_cmd(&s, "MAIL FROM:<%s> SIZE=%llu",
	    HOSTILE_SENDER, HOSTILE_GMAIL_SIZE) == 250, "SIZE equal: %s",
	    s.reply);
	hostile_assert(harness_smtp_cmd(&s, "RCPT TO:<%s>", HOSTILE_RCPT) ==
	    250, "RCPT: %s", s.reply);
	hostile_assert(harness_smtp_cmd(&s, "DATA") == 354, "DATA: %s",
	    s.reply);
	/* 998-octet lines, 64 to a write, until one octet over. */
	for (i = 0; i < sizeof(chunk); i += 1000) {
		memset(chunk + i, 'z', 998);
		memcpy(chunk + i + 998, "\r\n", 2);
	}
	for (sent = 0; sent <= HOSTILE_GMAIL_SIZE; sent += sizeof(chunk))
		hostile_send(&s, chunk, sizeof(chunk));
	hostile_assert(hostile_count("tmp") == 1, "no tmp/ entry while the "
	    "message is received");
	hostile_say(&s, ".\r\n");
	hostile_expect(&s, 552, "5.3.4", "a body over the maximum");
	hostile_alive(&s, "after an oversize body");
	hostile_assert_nothing_queued("after an oversize body");
	harness_smtp_close(&s);
}
END_TEST

/*
 * 101 recipients pipelined in one write: 100 accepted, the 101st is
 * 452 4.5.3, and the message goes out to the 100.
 */
START_TEST(test_hostile_too_many_recipients)
{
	struct harness_smtp	 s;
	static char		 batch[101 * 40];
	char			 id[128], path[PATH_MAX], what[32];
	size_t			 used = 0;
	int			 i, n;

	hostile_daemon(NULL);
	hostile_open(&s);
	hostile_login(&s);
	hostile_assert(harness_smtp_cmd(&s, "MAIL FROM:<%s>", HOSTILE_SENDER) ==
	    250, "MAIL: %s", s.reply);
	for (i = 0; i < 101; i++) {
		n = snprintf(batch + used, sizeof(batch) - used,
		    "RCPT TO:<r%03d@example.net>\r\n", i);
		hostile_assert(n > 0 && (size_t)n < sizeof(batch) - used,
		    "batch too small");
		used += (size_t)n;
	}
	hostile_send(&s, batch, used);
	for (i = 0; i < 100; i++) {
		hostile_fmt(what, sizeof(what), "RCPT %d", i + 1);
		hostile_expect(&s, 250, "2.1.5", what);
	}
	hostile_expect(&s, 452, "4.5.3", "RCPT 101");
	hostile_assert(harness_smtp_cmd(&s, "DATA") == 354, "DATA: %s",
	    s.reply);
	hostile_say(&s, "Subject: many\r\n\r\nhi\r\n.\r\n");
	hostile_expect(&s, 250, "queued as", "end of data");
	hostile_assert(harness_queue_id(s.reply, id, sizeof(id)) == 0,
	    "no ID in %s", s.reply);
	hostile_fmt(path, sizeof(path), "%s/queue/%s/envelope", hh.queue, id);
	hostile_assert(harness_grep(path, "rcpt:") == 100, "the envelope has "
	    "%d recipients", harness_grep(path, "rcpt:"));
	hostile_assert(harness_grep(path, "r100@") == 0, "the 101st is in the "
	    "envelope");
	harness_smtp_close(&s);
}
END_TEST

/* ---- hostile: sequence and syntax ---- */

#define SEQ_MAX	8

static const struct {
	const char	*name;
	bool		 ehlo;		/* send EHLO first */
	bool		 auth;		/* then AUTH PLAIN */
	const char	*cmd[SEQ_MAX];	/* then these, NULL-terminated */
	int		 code[SEQ_MAX];
	const char	*enh[SEQ_MAX];
} seq_cases[] = {
	{ "MAIL before EHLO", false, false,
	    { "MAIL FROM:<a@example.com>", NULL }, { 503 }, { "5.5.1" } },
	{ "AUTH before EHLO", false, false, { "AUTH PLAIN", NULL }, { 503 },
	    { "5.5.1" } },
	{ "MAIL without AUTH", true, false,
	    { "MAIL FROM:<a@example.com>", NULL }, { 530 }, { "5.7.0" } },
	{ "AUTH twice", true, true, { "AUTH PLAIN", "AUTH LOGIN", NULL },
	    { 503, 503 }, { "5.5.1", "5.5.1" } },
	{ "RCPT before MAIL", true, true, { "RCPT TO:<b@example.net>", NULL },
	    { 503 }, { "5.5.1" } },
	{ "DATA before MAIL", true, true, { "DATA", NULL }, { 503 },
	    { "5.5.1" } },
	{ "DATA before RCPT", true, true,
	    { "MAIL FROM:<a@example.com>", "DATA", NULL }, { 250, 503 },
	    { "2.1.0", "5.5.1" } },
	{ "nested MAIL", true, true,
	    { "MAIL FROM:<a@example.com>", "MAIL FROM:<a@example.com>",
	    NULL }, { 250, 503 }, { "2.1.0", "5.5.1" } },
	{ "malformed senders", true, true,
	    { "MAIL FROM:a@example.com", "MAIL FROM:<a@example.com",
	    "MAIL FROM:<a b@example.com>", "MAIL FROM:<@example.com>",
	    "MAIL FROM:<a@>", "MAIL FROM:<a@example.com> SIZE=x",
	    "MAIL FROM:<a@example.com> FOO=1", NULL },
	    { 501, 553, 553, 553, 553, 501, 555 },
	    { "5.5.4", "5.1.7", "5.1.7", "5.1.7", "5.1.7", "5.5.4",
	    "5.5.4" } },
	{ "malformed recipients", true, true,
	    { "MAIL FROM:<>", "RCPT TO:<>", "RCPT TO:b@example.net",
	    "RCPT TO:<b@@example.net>", "RCPT TO:<b@example.net> X=1",
	    "RCPT TO:<b@example.net>", NULL },
	    { 250, 553, 501, 553, 555, 250 },
	    { "2.1.0", "5.1.3", "5.5.4", "5.1.3", "5.5.4", "2.1.5" } },
	{ "unknown and unoffered", true, false,
	    { "FOO bar", "STARTTLS", "BDAT 10 LAST", "EXPN staff",
	    "AUTH CRAM-MD5", "AUTH", "EHLO", NULL },
	    { 500, 502, 502, 500, 504, 501, 501 },
	    { "5.5.2", "5.5.1", "5.5.1", "5.5.2", "5.5.4", "5.5.4",
	    "5.5.4" } },
	{ "bad AUTH responses", true, false,
	    { "AUTH PLAIN !!!!", "AUTH PLAIN dXNlcg==", "AUTH LOGIN", "*",
	    NULL }, { 501, 535, 334, 501 },
	    { "5.5.2", "5.7.8", "", "5.7.0" } },
};

/* Commands out of order and bad syntax get the RFC 5321/4954 replies. */
START_TEST(test_hostile_sequence)
{
	struct harness_smtp	 s;
	char			*b64, what[160];
	size_t			 i;

	hostile_daemon(NULL);
	hostile_open(&s);
	if (seq_cases[_i].ehlo)
		hostile_assert(harness_smtp_cmd(&s, "EHLO x.example") == 250,
		    "EHLO: %s", s.reply);
	if (seq_cases[_i].auth) {
		b64 = hostile_plain_b64();
		hostile_assert(harness_smtp_cmd(&s, "AUTH PLAIN %s", b64) ==
		    235, "AUTH: %s", s.reply);
		free(b64);
	}
	for (i = 0; i < SEQ_MAX && seq_cases[_i].cmd[i] != NULL; i++) {
		hostile_fmt(what, sizeof(what), "%s: \"%s\"",
		    seq_cases[_i].name, seq_cases[_i].cmd[i]);
		hostile_assert(harness_smtp_cmd(&s, "%s",
		    seq_cases[_i].cmd[i]) == seq_cases[_i].code[i] &&
		    strstr(s.reply, seq_cases[_i].enh[i]) != NULL,
		    "%s: expected %d %s, got %d \"%s\"", what,
		    seq_cases[_i].code[i], seq_cases[_i].enh[i], s.code,
		    s.reply);
	}
	hostile_alive(&s, seq_cases[_i].name);
	hostile_assert_nothing_queued(seq_cases[_i].name);
	harness_smtp_close(&s);
}
END_TEST

/*
 * AUTH is refused inside a transaction, and a second AUTH after a failed
 * one is allowed (nothing was authenticated).
 */
START_TEST(test_hostile_auth_in_transaction)
{
	struct harness_smtp	 s;
	char			*b64 = hostile_plain_b64();

	hostile_daemon(NULL);
	hostile_open(&s);
	hostile_assert(harness_smtp_cmd(&s, "EHLO x.example") == 250,
	    "EHLO: %s", s.reply);
	hostile_assert(harness_smtp_cmd(&s, "AUTH PLAIN dXNlcg==") == 535,
	    "a bad PLAIN blob: %s", s.reply);
	hostile_assert(harness_smtp_cmd(&s, "AUTH PLAIN %s", b64) == 235,
	    "AUTH after a failed one: %s", s.reply);
	hostile_assert(harness_smtp_cmd(&s, "MAIL FROM:<%s>", HOSTILE_SENDER) ==
	    250, "MAIL: %s", s.reply);
	hostile_assert(harness_smtp_cmd(&s, "AUTH PLAIN %s", b64) == 503 &&
	    strstr(s.reply, "5.5.1") != NULL, "AUTH in a transaction: %s",
	    s.reply);
	free(b64);
	harness_smtp_close(&s);
}
END_TEST

/* ---- hostile: pipelining (RFC 2920) ---- */

/* Read the replies of a pipelined batch: codes and enhanced codes. */
static void
hostile_expect_batch(struct harness_smtp *s, const int *code,
    const char *const *enh, size_t n, const char *what)
{
	char	 label[96];
	size_t	 i;

	for (i = 0; i < n; i++) {
		hostile_fmt(label, sizeof(label), "%s, reply %zu", what, i + 1);
		hostile_expect(s, code[i], enh[i], label);
	}
}

/*
 * A whole session in one write, with errors inside the batch: every
 * command is answered in order, and the good message is queued.
 */
START_TEST(test_hostile_pipelined_batch)
{
	static const int	 code[] = { 250, 235, 553, 250, 553, 250, 250,
				    354, 250, 250, 221 };
	static const char *const enh[] = { "PIPELINING", "2.7.0", "5.1.7",
				    "2.1.0", "5.1.3", "2.1.5", "2.1.5", "354",
				    "queued as", "2.0.0", "2.0.0" };
	struct harness_smtp	 s;
	char			 batch[1024];
	char			*b64 = hostile_plain_b64();

	hostile_daemon(NULL);
	hostile_open(&s);
	hostile_fmt(batch, sizeof(batch), "EHLO x.example\r\n"
	    "AUTH PLAIN %s\r\n"
	    "MAIL FROM:<bad address>\r\n"
	    "MAIL FROM:<%s>\r\n"
	    "RCPT TO:<nobody@>\r\n"
	    "RCPT TO:<%s>\r\n"
	    "RCPT TO:<carol@example.org>\r\n"
	    "DATA\r\n"
	    "Subject: batch\r\n\r\nbody\r\n.\r\n"
	    "NOOP\r\n"
	    "QUIT\r\n", b64, HOSTILE_SENDER, HOSTILE_RCPT);
	free(b64);
	hostile_say(&s, batch);
	hostile_expect_batch(&s, code, enh, nitems(code), "pipelined batch");
	hostile_assert(hostile_count("queue") == 1, "queue/ does not hold "
	    "exactly one message");
	hostile_assert(hostile_count("tmp") == 0, "tmp/ is not empty");
	harness_smtp_close(&s);
}
END_TEST

/*
 * RFC 2920 3.1: input pipelined behind DATA is not discarded.  After the
 * 354 it is message text (the message is queued, the QUIT behind it
 * answered); behind a refused DATA each line is a command in turn.
 */
START_TEST(test_hostile_pipelined_after_354)
{
	static const int	 ok_code[] = { 250, 250, 354 };
	static const char *const ok_enh[] = { "2.1.0", "2.1.5", "354" };
	static const int	 bad_code[] = { 250, 553, 503, 500, 500, 500,
				    500, 250 };
	static const char *const bad_enh[] = { "2.1.0", "5.1.3", "5.5.1",
				    "5.5.2", "5.5.2", "5.5.2", "5.5.2",
				    "2.0.0" };
	struct harness_smtp	 s;
	char			 batch[512], id[128], path[PATH_MAX];
	char			*eml;
	size_t			 len;

	hostile_daemon(NULL);
	hostile_open(&s);
	hostile_login(&s);
	hostile_fmt(batch, sizeof(batch), "MAIL FROM:<%s>\r\n"
	    "RCPT TO:<%s>\r\nDATA\r\nSubject: piped\r\n\r\nNOOP\r\n"
	    "QUIT\r\n.\r\nNOOP\r\n", HOSTILE_SENDER, HOSTILE_RCPT);
	hostile_say(&s, batch);
	hostile_expect_batch(&s, ok_code, ok_enh, nitems(ok_code),
	    "after 354");
	hostile_expect(&s, 250, "queued as", "after 354, end of data");
	hostile_assert(harness_queue_id(s.reply, id, sizeof(id)) == 0,
	    "no ID in %s", s.reply);
	hostile_expect(&s, 250, "2.0.0", "after 354, the NOOP behind");
	hostile_fmt(path, sizeof(path), "%s/queue/%s/message.eml", hh.queue,
	    id);
	eml = harness_read_file(path, &len);
	hostile_assert(eml != NULL, "cannot read %s", path);
	hostile_assert(strcmp(eml, "Subject: piped\r\n\r\nNOOP\r\nQUIT\r\n") ==
	    0, "the pipelined text was not kept as the message: \"%s\"", eml);
	free(eml);

	hostile_fmt(batch, sizeof(batch), "MAIL FROM:<%s>\r\n"
	    "RCPT TO:<nobody>\r\nDATA\r\nSubject: refused\r\n\r\nbody\r\n"
	    ".\r\nNOOP\r\n", HOSTILE_SENDER);
	hostile_say(&s, batch);
	hostile_expect_batch(&s, bad_code, bad_enh, nitems(bad_code),
	    "behind a refused DATA");
	hostile_assert(hostile_count("queue") == 1, "queue/ does not hold "
	    "exactly one message");
	harness_smtp_close(&s);
}
END_TEST

/*
 * RFC 2920/4954: the response pipelined behind AUTH is the answer to the
 * 334, and the commands behind it are handled after the 235.
 */
START_TEST(test_hostile_pipelined_after_334)
{
	static const int	 plain_code[] = { 250, 334, 235, 250, 250 };
	static const char *const plain_enh[] = { "AUTH", "334 ", "2.7.0",
				    "2.1.0", "2.0.0" };
	static const int	 login_code[] = { 250, 334, 334, 235, 250 };
	static const char *const login_enh[] = { "AUTH", "VXNlcm5hbWU6",
				    "UGFzc3dvcmQ6", "2.7.0", "2.1.0" };
	struct harness_smtp	 s;
	char			 batch[512];
	char			*b64 = hostile_plain_b64(), *user, *pass;

	hostile_daemon(NULL);
	hostile_open(&s);
	hostile_fmt(batch, sizeof(batch), "EHLO x.example\r\nAUTH PLAIN\r\n"
	    "%s\r\nMAIL FROM:<%s>\r\nRSET\r\n", b64, HOSTILE_SENDER);
	free(b64);
	hostile_say(&s, batch);
	hostile_expect_batch(&s, plain_code, plain_enh, nitems(plain_code),
	    "PLAIN");
	harness_smtp_close(&s);

	user = harness_b64_encode(HOSTILE_SENDER, strlen(HOSTILE_SENDER));
	pass = harness_b64_encode(HOSTILE_PASSWORD, strlen(HOSTILE_PASSWORD));
	hostile_assert(user != NULL && pass != NULL, "out of memory");
	hostile_open(&s);
	hostile_fmt(batch, sizeof(batch), "EHLO x.example\r\nAUTH LOGIN\r\n"
	    "%s\r\n%s\r\nMAIL FROM:<%s>\r\n", user, pass, HOSTILE_SENDER);
	free(user);
	free(pass);
	hostile_say(&s, batch);
	hostile_expect_batch(&s, login_code, login_enh, nitems(login_code),
	    "LOGIN");
	harness_smtp_close(&s);
}
END_TEST

/* ---- hostile: timeouts and connections ---- */

/* Read one reply within secs without blocking longer; its code or -1. */
static int
hostile_poll_reply(struct harness_smtp *s, double secs)
{
	struct pollfd	 pfd = { s->fd, POLLIN, 0 };

	if (poll(&pfd, 1, (int)(secs * 1000)) <= 0)
		return -1;
	return harness_smtp_reply(s);
}

/*
 * A silent client and one trickling a byte a second are both dropped with
 * 421 4.4.2 after the idle timeout, while a well-behaved client in
 * parallel completes a whole submission without waiting for them.
 */
START_TEST(test_hostile_idle_and_trickle)
{
	const char *const	 extra[] = { "--idle-timeout", "2", NULL };
	struct harness_smtp	 idle, trickle, good;
	double			 t0, t_good, t_idle = -1, t_trickle = -1, now;
	double			 limit;
	char			 body[] = "Subject: prompt\r\n\r\nhi\r\n";
	char			 id[128];
	int			 i, code;

	hostile_daemon(extra);
	hostile_open(&idle);
	hostile_open(&trickle);
	t0 = harness_now();
	hostile_say(&trickle, "N");

	hostile_open(&good);
	hostile_login(&good);
	hostile_begin_data(&good);
	hostile_assert(harness_smtp_data(&good, body, strlen(body)) == 250 &&
	    harness_queue_id(good.reply, id, sizeof(id)) == 0,
	    "the parallel client: %s", good.reply);
	hostile_assert(harness_smtp_cmd(&good, "QUIT") == 221, "QUIT: %s",
	    good.reply);
	t_good = harness_now() - t0;
	harness_smtp_close(&good);
	hostile_assert(t_good < HOSTILE_IDLE, "the parallel client took "
	    "%.2f s, as long as the idle timeout", t_good);

	/* One byte a second; bounded by twice the timeout plus slack. */
	limit = harness_scale(2.0 * HOSTILE_IDLE + 3.0);
	for (i = 0; i < 60 && (t_idle < 0 || t_trickle < 0); i++) {
		now = harness_now() - t0;
		hostile_assert(now < limit, "no 421 after %.1f s (idle %s, "
		    "trickle %s)", now, t_idle < 0 ? "open" : "dropped",
		    t_trickle < 0 ? "open" : "dropped");
		if (t_trickle < 0)
			(void)harness_smtp_write(&trickle, "O", 1);
		if (t_idle < 0 && (code = hostile_poll_reply(&idle,
		    0.5)) != -1) {
			hostile_assert(code == 421 &&
			    strstr(idle.reply, "4.4.2") != NULL,
			    "silent client: %s", idle.reply);
			t_idle = harness_now() - t0;
		}
		if (t_trickle < 0 && (code = hostile_poll_reply(&trickle,
		    0.5)) != -1) {
			hostile_assert(code == 421 &&
			    strstr(trickle.reply, "4.4.2") != NULL,
			    "trickling client: %s", trickle.reply);
			t_trickle = harness_now() - t0;
		}
	}
	hostile_assert(t_idle >= HOSTILE_IDLE - 0.5 && t_trickle >=
	    HOSTILE_IDLE - 0.5, "dropped too early: silent at %.2f s, "
	    "trickle at %.2f s", t_idle, t_trickle);
	hostile_assert(t_trickle < HOSTILE_IDLE + 1.5 * harness_scale(1.0),
	    "the trickle kept its session for %.2f s", t_trickle);
	harness_smtp_close(&idle);
	harness_smtp_close(&trickle);
	hostile_assert(hostile_count("queue") == 1, "the parallel message "
	    "is not queued");
	hostile_assert(hostile_count("tmp") == 0, "tmp/ is not empty");
}
END_TEST

/*
 * Over --max-connections the next client gets 421 4.3.2; the others are
 * served normally, and a slot freed is usable again.
 */
START_TEST(test_hostile_max_connections)
{
	const char *const	 extra[] = { "--max-connections", "3", NULL };
	struct harness_proc	*d;
	struct harness_smtp	 s[4];
	int			 i;

	d = hostile_daemon(extra);
	for (i = 0; i < 3; i++)
		hostile_open(&s[i]);
	hostile_assert(harness_smtp_open(&s[3], hh.socket) == 421 &&
	    strstr(s[3].reply, "4.3.2") != NULL, "the 4th connection: %d %s",
	    s[3].code, s[3].reply);
	harness_smtp_close(&s[3]);
	for (i = 0; i < 3; i++)
		hostile_alive(&s[i], "a connection under the cap");
	hostile_login(&s[1]);
	hostile_assert(harness_smtp_cmd(&s[0], "QUIT") == 221, "QUIT: %s",
	    s[0].reply);
	harness_smtp_close(&s[0]);
	/* The slot is free once the daemon has torn the session down. */
	hostile_assert(harness_wait_grep(d->log, "reason=quit", 1,
	    harness_scale(HARNESS_WAIT)) == 0, "the QUIT session never ended");
	hostile_assert(harness_smtp_open(&s[0], hh.socket) == 220,
	    "the freed slot was not reusable: %s", s[0].reply);
	for (i = 0; i < 3; i++)
		harness_smtp_close(&s[i]);
}
END_TEST

/* ---- hostile: abrupt close ---- */

static const struct {
	const char	*name;
	const char	*upto;		/* cut before this marker ("" = all) */
	int		 tmp;		/* entries tmp/ must show before */
	int		 queued;	/* complete entries after */
} cut_cases[] = {
	{ "after the banner", "EHLO", 0, 0 },
	{ "inside EHLO", "O x.example", 0, 0 },
	{ "after EHLO", "AUTH", 0, 0 },
	{ "in AUTH's 334", "<PLAIN>", 0, 0 },
	{ "after MAIL", "RCPT", 0, 0 },
	{ "right after DATA's 354", "Subject", 1, 0 },
	{ "inside a text line", "ject: cut", 1, 0 },
	{ "at a line start in DATA", "second", 1, 0 },
	{ "before the final dot", ".\r\nQUIT", 1, 0 },
	{ "inside the final CRLF.CRLF", "\r\nQUIT", 1, 0 },
	{ "after the final dot", "QUIT", 0, 1 },
};

/*
 * The client vanishes at each point of a submission: nothing stays in
 * tmp/, and queue/ holds only a message whose final dot arrived, whole.
 */
START_TEST(test_hostile_abrupt_close)
{
	struct harness_proc	*d;
	struct harness_smtp	 s;
	char			 script[1024], tmp[PATH_MAX], path[PATH_MAX];
	char			 id[128], *b64 = hostile_plain_b64(), *p, *eml;
	const char		*name = cut_cases[_i].name;
	size_t			 len;
	int			 before, n;

	d = hostile_daemon(NULL);
	hostile_fmt(script, sizeof(script), "EHLO x.example\r\n"
	    "AUTH PLAIN\r\n%s\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n"
	    "DATA\r\nSubject: cut\r\n\r\nfirst\r\nsecond\r\n.\r\nQUIT\r\n",
	    b64, HOSTILE_SENDER, HOSTILE_RCPT);
	/* "<PLAIN>" stands for the response to the 334. */
	p = strstr(script, strcmp(cut_cases[_i].upto, "<PLAIN>") == 0 ? b64 :
	    cut_cases[_i].upto);
	free(b64);
	hostile_assert(p != NULL, "%s: no marker", name);
	hostile_fmt(tmp, sizeof(tmp), "%s/tmp", hh.queue);
	/*
	 * The client's going away is logged "reason=eof", or "reason=error"
	 * when the kernel answers the close with a reset (the client left
	 * replies unread): count session ends of either kind, after the
	 * start-up probe's session has ended, so that it cannot be taken
	 * for this one.
	 */
	hostile_assert(harness_wait_grep(d->log, "disconnected uid=", 1,
	    harness_scale(HARNESS_WAIT)) == 0, "%s: the probe's session never "
	    "ended", name);
	before = harness_grep(d->log, "disconnected uid=");
	hostile_open(&s);
	hostile_send(&s, script, (size_t)(p - script));
	if (cut_cases[_i].tmp > 0)
		hostile_assert(harness_wait_count(tmp, "", 1,
		    harness_scale(HARNESS_WAIT)) == 0, "%s: no tmp/ entry "
		    "before the close", name);
	if (cut_cases[_i].queued > 0) {
		hostile_fmt(path, sizeof(path), "%s/queue", hh.queue);
		hostile_assert(harness_wait_count(path, "", 1,
		    harness_scale(HARNESS_WAIT)) == 0, "%s: never queued",
		    name);
	}
	harness_smtp_close(&s);
	hostile_assert(harness_wait_grep(d->log, "disconnected uid=",
	    before + 1, harness_scale(HARNESS_WAIT)) == 0, "%s: relayqd did "
	    "not log the close", name);
	n = harness_grep_lines(d->log, "disconnected uid=", "reason=eof") +
	    harness_grep_lines(d->log, "disconnected uid=", "reason=error");
	hostile_assert(n == before + 1, "%s: a session ended otherwise than "
	    "by the client going away", name);
	/* The close is logged just before the tx is aborted. */
	hostile_assert(harness_wait_count(tmp, "", 0,
	    harness_scale(HARNESS_WAIT)) == 0, "%s: tmp/ never emptied", name);
	n = hostile_count("queue");
	hostile_assert(n == cut_cases[_i].queued, "%s: queue/ holds %d, "
	    "expected %d", name, n, cut_cases[_i].queued);
	if (cut_cases[_i].queued == 0)
		return;
	hostile_fmt(path, sizeof(path), "%s/queue", hh.queue);
	hostile_assert(harness_first(path, "", id, sizeof(id)) == 0,
	    "no entry");
	hostile_fmt(path, sizeof(path), "%s/queue/%s/message.eml", hh.queue,
	    id);
	eml = harness_read_file(path, &len);
	hostile_assert(eml != NULL && strcmp(eml,
	    "Subject: cut\r\n\r\nfirst\r\nsecond\r\n") == 0,
	    "%s: message.eml is not whole", name);
	free(eml);
	hostile_fmt(path, sizeof(path), "%s/queue/%s/envelope", hh.queue, id);
	hostile_assert(harness_grep(path, "rcpt: " HOSTILE_RCPT) == 1,
	    "%s: the envelope is not whole", name);
}
END_TEST

/* ---- tls_downgrade ---- */

static const struct {
	const char	*name;
	const char	*flag;		/* stand-in flag */
	const char	*value;
	const char	*reason[2];	/* last-reply names one of these */
	const char	*event;		/* the stand-in logged this */
} downgrade_cases[] = {
	{ "STARTTLS 454", "--starttls-reply",
	    "454 4.7.0 TLS not available due to local problem",
	    { "454 4.7.0", NULL }, "starttls-refused " },
	{ "STARTTLS 554", "--starttls-reply",
	    "554 5.7.3 Unable to initialize security subsystem",
	    { "554 5.7.3", NULL }, "starttls-refused " },
	{ "TLS 1.1 only", "--tls-max", "1.1", { "protocol", "version" },
	    "tlsfail " },
	{ "TLS 1.0 only", "--tls-max", "1.0", { "protocol", "version" },
	    "tlsfail " },
	{ "plaintext injected after 220", "--inject-after-starttls",
	    "250 2.0.0 injected: go ahead", { "inject", NULL }, "inject " },
};

/*
 * A relay that refuses STARTTLS, offers only TLS 1.0/1.1, or injects
 * plaintext behind its 220 never sees the credentials (nor MAIL); the
 * message stays queued with a readable reason, the attempt temporary.
 */
START_TEST(test_tls_downgrade_keeps_message_queued)
{
	const char *const	 extra[] = { "--password", HOSTILE_PASSWORD,
				    downgrade_cases[_i].flag,
				    downgrade_cases[_i].value, NULL };
	const char		*name = downgrade_cases[_i].name;
	struct harness_proc	*d;
	char			 id[128], val[1024], path[PATH_MAX];
	char			 line[160], *out = NULL;
	int			 status = -1;

	hostile_assert(harness_standin(&hh, NULL, extra) != NULL,
	    "the stand-in did not start");
	d = harness_relayqd(&hh, NULL, 0, NULL);
	hostile_assert(d != NULL, "relayqd did not start");
	hostile_assert(harness_client(&hh, HOSTILE_SENDER, HOSTILE_PASSWORD,
	    HOSTILE_RCPT, NULL, &out, &status) == 0 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0 && harness_queue_id(out, id,
	    sizeof(id)) == 0, "%s: relayq: %s", name, out ? out : "");
	free(out);
	hostile_fmt(line, sizeof(line), "%s deferred ", id);
	hostile_assert(harness_wait_grep(d->log, line, 1,
	    harness_scale(HARNESS_WAIT)) == 0, "%s: never deferred", name);

	hostile_fmt(path, sizeof(path), "%s/events.log", hh.mail);
	hostile_assert(harness_grep(path, downgrade_cases[_i].event) >= 1,
	    "%s: the stand-in never logged \"%s\"", name,
	    downgrade_cases[_i].event);
	hostile_assert(harness_grep(path, "auth ") == 0, "%s: AUTH reached "
	    "the stand-in", name);
	hostile_assert(harness_grep(path, "mail ") == 0, "%s: MAIL reached "
	    "the stand-in", name);
	hostile_assert(harness_grep(path, "\ntls ") == 0, "%s: a TLS session "
	    "was established", name);
	hostile_assert(harness_count(hh.mail, "msg-") == 0, "%s: a message "
	    "was recorded", name);
	hostile_fmt(val, sizeof(val), "%s delivered", id);
	hostile_assert(harness_grep(d->log, val) == 0, "%s: delivered", name);
	hostile_fmt(val, sizeof(val), "%s failed", id);
	hostile_assert(harness_grep(d->log, val) == 0, "%s: failed", name);

	hostile_fmt(path, sizeof(path), "%s/queue/%s/message.eml", hh.queue,
	    id);
	hostile_assert(access(path, R_OK) == 0, "%s: %s missing", name, path);
	hostile_fmt(path, sizeof(path), "%s/queue/%s/envelope", hh.queue, id);
	hostile_assert(harness_keyval(path, "last-reply", val,
	    sizeof(val)) == 0, "%s: no last-reply", name);
	hostile_assert(strcasestr(val, downgrade_cases[_i].reason[0]) !=
	    NULL || (downgrade_cases[_i].reason[1] != NULL &&
	    strcasestr(val, downgrade_cases[_i].reason[1]) != NULL),
	    "%s: last-reply does not name the reason: \"%s\"", name, val);
	hostile_assert(harness_keyval(path, "state", val, sizeof(val)) == 0 &&
	    strcmp(val, "queued") == 0, "%s: state %s", name, val);
	hostile_assert(harness_grep_lines(d->log, line,
	    downgrade_cases[_i].reason[0]) >= 1 ||
	    (downgrade_cases[_i].reason[1] != NULL &&
	    harness_grep_lines(d->log, line,
	    downgrade_cases[_i].reason[1]) >= 1), "%s: the deferral log line "
	    "does not give the reason", name);
}
END_TEST

/* ---- secrets ---- */

/* Assert the text holds neither the password nor its base64 forms. */
static void
secrets_assert_none(const char *text, size_t len, const char *what)
{
	char	 plain[128];
	char	*b64[4];
	size_t	 i;
	int	 n;

	hostile_assert(harness_memcount(text, len, HOSTILE_PASSWORD) == 0,
	    "%s contains the password", what);
	n = snprintf(plain, sizeof(plain), "%c%s%c%s", '\0', HOSTILE_SENDER,
	    '\0', HOSTILE_PASSWORD);
	b64[0] = harness_b64_encode(plain, (size_t)n);
	n = snprintf(plain, sizeof(plain), "%s%c%s%c%s", HOSTILE_SENDER, '\0',
	    HOSTILE_SENDER, '\0', HOSTILE_PASSWORD);
	b64[1] = harness_b64_encode(plain, (size_t)n);
	b64[2] = harness_b64_encode(HOSTILE_PASSWORD,
	    strlen(HOSTILE_PASSWORD));
	/* The password's base64 alone, without a trailing pad group. */
	b64[3] = harness_b64_encode(HOSTILE_PASSWORD,
	    strlen(HOSTILE_PASSWORD) / 3 * 3);
	for (i = 0; i < nitems(b64); i++) {
		hostile_assert(b64[i] != NULL, "out of memory");
		hostile_assert(harness_memcount(text, len, b64[i]) == 0,
		    "%s contains the password in base64 (%s)", what, b64[i]);
		free(b64[i]);
	}
}

/* Every regular file under dir (recursively): no secret; count them. */
static int
secrets_walk(const char *dir)
{
	DIR		*d;
	struct dirent	*e;
	struct stat	 st;
	char		 path[PATH_MAX], *text;
	size_t		 len;
	int		 n = 0;

	d = opendir(dir);
	hostile_assert(d != NULL, "opendir %s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		hostile_fmt(path, sizeof(path), "%s/%s", dir, e->d_name);
		hostile_assert(lstat(path, &st) == 0, "lstat %s", path);
		if (S_ISDIR(st.st_mode)) {
			n += secrets_walk(path);
			continue;
		}
		hostile_assert(strcmp(e->d_name, "credentials") != 0,
		    "%s is still there", path);
		if (!S_ISREG(st.st_mode))
			continue;
		text = harness_read_file(path, &len);
		hostile_assert(text != NULL, "cannot read %s", path);
		secrets_assert_none(text, len, path);
		free(text);
		n++;
	}
	closedir(d);
	return n;
}

/* /proc/<pid>/cmdline (NULs kept) and its length; free it. */
static char *
secrets_cmdline(pid_t pid, size_t *len)
{
	char	 path[64], *text;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	text = harness_read_file(path, len);
	hostile_assert(text != NULL && *len > 0, "cannot read %s", path);
	return text;
}

/*
 * A full delivery with a known password; then no log line, no file the
 * daemon left (the credentials file must be gone) and neither process's
 * command line holds the password or its base64 forms.
 */
START_TEST(test_secrets_nowhere_after_delivery)
{
	const char *const	 extra[] = { "--password", HOSTILE_PASSWORD,
				    NULL };
	struct harness_proc	*d;
	char			 id[128], path[PATH_MAX], line[160];
	char			*out = NULL, *text;
	size_t			 len;
	int			 status = -1;

	hostile_assert(harness_standin(&hh, NULL, extra) != NULL,
	    "the stand-in did not start");
	d = harness_relayqd(&hh, NULL, 0, NULL);
	hostile_assert(d != NULL, "relayqd did not start");
	hostile_assert(harness_client(&hh, HOSTILE_SENDER, HOSTILE_PASSWORD,
	    HOSTILE_RCPT, NULL, &out, &status) == 0 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0 && harness_queue_id(out, id,
	    sizeof(id)) == 0, "relayq: %s", out ? out : "");
	secrets_assert_none(out, strlen(out), "relayq's output");
	free(out);
	hostile_fmt(line, sizeof(line), "%s delivered", id);
	hostile_assert(harness_wait_grep(d->log, line, 1,
	    harness_scale(HARNESS_WAIT)) == 0, "never delivered");
	/* The removal runs after the delivery is logged, off the loop. */
	hostile_fmt(path, sizeof(path), "%s/queue/.%s", hh.queue, id);
	hostile_assert(harness_wait_gone(path, harness_scale(HARNESS_WAIT)) ==
	    0, "%s never removed", path);
	hostile_fmt(path, sizeof(path), "%s/events.log", hh.mail);
	hostile_assert(harness_grep(path, "result=235") == 1,
	    "the stand-in did not accept the password");

	text = harness_read_file(d->log, &len);
	hostile_assert(text != NULL, "cannot read the log");
	hostile_assert(harness_memcount(text, len, "\n") >= 3,
	    "the log is too short to mean anything");
	secrets_assert_none(text, len, "relayqd's log");
	free(text);
	/* The test directory: the queue, every log, the stand-in's files. */
	hostile_assert(secrets_walk(hh.dir) >= 4, "fewer files than the "
	    "logs and the delivered message");
	text = secrets_cmdline(d->pid, &len);
	hostile_assert(harness_memcount(text, len, "relayqd") == 1,
	    "not relayqd's command line");
	secrets_assert_none(text, len, "relayqd's /proc/pid/cmdline");
	free(text);
	hostile_fmt(path, sizeof(path), "%s/queue/%s", hh.queue, id);
	hostile_assert(access(path, F_OK) == -1 && errno == ENOENT,
	    "%s is still there", path);
}
END_TEST

/*
 * A permanent failure (535) moves the entry to failed/ without its
 * credentials file; nothing there holds the password.
 */
START_TEST(test_secrets_gone_from_failed)
{
	const char *const	 extra[] = { "--password", "another-one",
				    NULL };
	struct harness_proc	*d;
	char			 id[128], path[PATH_MAX];
	char			*out = NULL;
	int			 status = -1;

	hostile_assert(harness_standin(&hh, NULL, extra) != NULL,
	    "the stand-in did not start");
	d = harness_relayqd(&hh, NULL, 0, NULL);
	hostile_assert(d != NULL, "relayqd did not start");
	hostile_assert(harness_client(&hh, HOSTILE_SENDER, HOSTILE_PASSWORD,
	    HOSTILE_RCPT, NULL, &out, &status) == 0 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0 && harness_queue_id(out, id,
	    sizeof(id)) == 0, "relayq: %s", out ? out : "");
	free(out);
	hostile_fmt(path, sizeof(path), "%s/failed/%s/envelope", hh.queue, id);
	hostile_assert(harness_wait_file(path, NULL,
	    harness_scale(HARNESS_WAIT)) == 0, "never moved to failed/");
	hostile_fmt(path, sizeof(path), "%s/failed/%s/credentials", hh.queue,
	    id);
	hostile_assert(access(path, F_OK) == -1 && errno == ENOENT,
	    "%s is still there", path);
	hostile_assert(secrets_walk(hh.queue) >= 2, "failed/%s lost its files",
	    id);
	hostile_assert(harness_grep(d->log, HOSTILE_PASSWORD) == 0,
	    "the password is in relayqd's log");
}
END_TEST

/*
 * relayq overwrites its PASSWORD argument: while it waits in the middle
 * of the dialogue with a fake daemon, /proc/<pid>/cmdline still shows the
 * addresses but not the password.
 */
START_TEST(test_secrets_client_cmdline_scrubbed)
{
	struct sockaddr_un	 sun;
	struct harness_proc	*c;
	struct pollfd		 pfd;
	char			 bin[PATH_MAX], buf[256], *text;
	char			*argv[] = { bin, (char *)(uintptr_t)"--socket",
				    hh.socket, (char *)(uintptr_t)HOSTILE_SENDER,
				    (char *)(uintptr_t)HOSTILE_PASSWORD,
				    (char *)(uintptr_t)HOSTILE_RCPT, NULL };
	size_t			 len;
	ssize_t			 n;
	int			 lfd, cfd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	hostile_fmt(sun.sun_path, sizeof(sun.sun_path), "%s", hh.socket);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	hostile_assert(lfd >= 0 && bind(lfd, (struct sockaddr *)&sun,
	    sizeof(sun)) == 0 && listen(lfd, 1) == 0, "fake daemon: %s",
	    strerror(errno));
	hostile_fmt(bin, sizeof(bin), "%s/relayq", hh.build);
	c = harness_spawn(&hh, "relayq", argv);
	hostile_assert(c != NULL, "cannot start relayq");
	pfd.fd = lfd;
	pfd.events = POLLIN;
	hostile_assert(poll(&pfd, 1, (int)(harness_scale(HARNESS_WAIT) *
	    1000)) == 1 && (cfd = accept(lfd, NULL, NULL)) >= 0,
	    "relayq never connected");
	hostile_assert(write(cfd, "220 fake ESMTP\r\n", 16) == 16,
	    "write banner");
	/* Its EHLO shows it is in the dialogue, the password long parsed. */
	pfd.fd = cfd;
	hostile_assert(poll(&pfd, 1, (int)(harness_scale(HARNESS_WAIT) *
	    1000)) == 1 && (n = read(cfd, buf, sizeof(buf) - 1)) > 0,
	    "relayq said nothing");
	buf[n] = '\0';
	hostile_assert(strncasecmp(buf, "EHLO ", 5) == 0, "relayq sent %s",
	    buf);
	text = secrets_cmdline(c->pid, &len);
	hostile_assert(harness_memcount(text, len, HOSTILE_SENDER) == 1 &&
	    harness_memcount(text, len, HOSTILE_RCPT) == 1,
	    "not relayq's command line");
	secrets_assert_none(text, len, "relayq's /proc/pid/cmdline");
	free(text);
	close(cfd);
	close(lfd);
	hostile_assert(harness_wait_exit(c, harness_scale(HARNESS_WAIT)) !=
	    -1, "relayq did not exit when the fake daemon went away");
}
END_TEST

/* ---- suites ---- */

/* A TCase with the per-test directory fixture. */
static TCase *
hostile_tcase(const char *name)
{
	TCase	*tc = tcase_create(name);

	tcase_add_checked_fixture(tc, hostile_setup, hostile_teardown);
	tcase_set_timeout(tc, HOSTILE_TIMEOUT);
	return tc;
}

/* Hostile input on the submission socket. */
Suite *
hostile_suite(void)
{
	Suite	*s = suite_create("hostile");
	TCase	*tc;

	tc = hostile_tcase("lines");
	tcase_add_test(tc, test_hostile_long_command_line);
	tcase_add_test(tc, test_hostile_long_data_line);
	tcase_add_test(tc, test_hostile_huge_line_bounded_memory);
	tcase_add_loop_test(tc, test_hostile_bad_command_bytes, 0,
	    (int)nitems(bad_cmd_cases));
	tcase_add_loop_test(tc, test_hostile_bad_text_bytes, 0,
	    (int)nitems(bad_text_cases));
	suite_add_tcase(s, tc);

	tc = hostile_tcase("limits");
	tcase_add_test(tc, test_hostile_message_too_big);
	tcase_add_test(tc, test_hostile_too_many_recipients);
	tcase_add_test(tc, test_hostile_idle_and_trickle);
	tcase_add_test(tc, test_hostile_max_connections);
	suite_add_tcase(s, tc);

	tc = hostile_tcase("protocol");
	tcase_add_loop_test(tc, test_hostile_sequence, 0,
	    (int)nitems(seq_cases));
	tcase_add_test(tc, test_hostile_auth_in_transaction);
	tcase_add_test(tc, test_hostile_pipelined_batch);
	tcase_add_test(tc, test_hostile_pipelined_after_354);
	tcase_add_test(tc, test_hostile_pipelined_after_334);
	tcase_add_test(tc, test_hostile_unread_replies_bounded_memory);
	suite_add_tcase(s, tc);

	tc = hostile_tcase("abrupt");
	tcase_add_loop_test(tc, test_hostile_abrupt_close, 0,
	    (int)nitems(cut_cases));
	suite_add_tcase(s, tc);
	return s;
}

/* TLS refusals and downgrades on the relay side. */
Suite *
tls_downgrade_suite(void)
{
	Suite	*s = suite_create("tls_downgrade");
	TCase	*tc = hostile_tcase("no_credentials");

	tcase_add_loop_test(tc, test_tls_downgrade_keeps_message_queued, 0,
	    (int)nitems(downgrade_cases));
	suite_add_tcase(s, tc);
	return s;
}

/* Password hygiene. */
Suite *
secrets_suite(void)
{
	Suite	*s = suite_create("secrets");
	TCase	*tc = hostile_tcase("password");

	tcase_add_test(tc, test_secrets_nowhere_after_delivery);
	tcase_add_test(tc, test_secrets_gone_from_failed);
	tcase_add_test(tc, test_secrets_client_cmdline_scrubbed);
	suite_add_tcase(s, tc);
	return s;
}
