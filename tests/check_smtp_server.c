/*
 * check_smtp_server.c: the submission state machine, driven over a
 * socketpair.  The server end is a bufferevent on a private event_base;
 * the test end is a plain non-blocking fd.  Each test writes a scripted
 * dialogue (line by line, pipelined in one write, or one byte at a time),
 * runs the loop without blocking until it is idle, and asserts the exact
 * reply codes and what reached queue/ and tmp/.
 */
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "base64.h"
#include "check_relayq.h"
#include "envelope.h"
#include "log.h"
#include "queue.h"
#include "sasl.h"
#include "smtp_server.h"
#include "util.h"

#define HOST		"relay.test"
#define USER		"alice@example.com"
#define PASS		"s3cret-Pa55word"
#define MAXSIZE		(64 * 1024)
#define NREPLY		64
#define OUT_MAX		(1024 * 1024)

/* What the client writes after DATA, and what must land on disk. */
#define BODY_WIRE	"Subject: test\r\n" \
			"\r\n" \
			"..dot line\r\n" \
			"...two dots\r\n" \
			"..\r\n" \
			"caf\xc3\xa9 8bit\r\n" \
			"plain . line\r\n" \
			".\r\n"
#define BODY_DISK	"Subject: test\r\n" \
			"\r\n" \
			".dot line\r\n" \
			"..two dots\r\n" \
			".\r\n" \
			"caf\xc3\xa9 8bit\r\n" \
			"plain . line\r\n"

enum send_mode {
	SEND_STEPWISE,		/* each line, then run the loop */
	SEND_PIPELINED,		/* the whole script in one write */
	SEND_BYTEWISE		/* one byte at a time */
};

static struct {
	char			 tmpdir[64];
	char			 qdir[80];
	struct event_base	*base;
	struct queue		*q;
	struct smtp_server	*s;
	struct bufferevent	*bev;		/* the server end */
	int			 sndbuf;	/* its SO_SNDBUF, if not 0 */
	int			 fd;		/* the client end */
	uid_t			 uid;		/* the session's peer uid */
	bool			 closed;
	int			 closed_tmp;	/* tmp/ entries during closed */
	int			 nqueued;
	int			 nadopted;	/* queue_adopt calls */
	char			 queued_id[ENVELOPE_ID_MAX];
	char			 queued_ids[4][ENVELOPE_ID_MAX];
	int			 nflush;
	char			*out;		/* everything the server said */
	size_t			 outlen;
	bool			 eof;
	const char		*account;	/* the configured account */
} h;

/* nftw callback that removes one entry. */
static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A fresh queue directory and event base for each test. */
static void
setup(void)
{
	char	 err[256] = "";

	memset(&h, 0, sizeof(h));
	h.fd = -1;
	h.uid = getuid();
	strcpy(h.tmpdir, "/tmp/relayq-check-smtps-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(h.tmpdir));
	snprintf(h.qdir, sizeof(h.qdir), "%s/q", h.tmpdir);
	h.q = queue_open(h.qdir, err, sizeof(err));
	ck_assert_msg(h.q != NULL, "queue_open: %s", err);
	h.base = event_base_new();
	ck_assert_ptr_nonnull(h.base);
	h.out = calloc(1, OUT_MAX + 1);
	ck_assert_ptr_nonnull(h.out);
}

/*
 * Free the session (if still open), the queue before its loop, and the
 * directory (unmounting a tmpfs a test put on it).
 */
static void
teardown(void)
{
	smtp_server_free(h.s);
	if (h.fd != -1)
		close(h.fd);
	queue_close(h.q);
	event_base_free(h.base);
	free(h.out);
	umount2(h.qdir, MNT_DETACH);
	nftw(h.tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Callback: a message was queued. */
static void
cb_queued(void *arg, const char *id)
{
	ck_assert_ptr_eq(arg, &h);
	if (h.nqueued < 4)
		snprintf(h.queued_ids[h.nqueued], sizeof(h.queued_ids[0]),
		    "%s", id);
	h.nqueued++;
	snprintf(h.queued_id, sizeof(h.queued_id), "%s", id);
}

/* The queue's adopter: a committed entry whose session is gone. */
static void
cb_adopt(void *arg, const char *id)
{
	ck_assert_ptr_eq(arg, &h.nadopted);
	h.nadopted++;
	snprintf(h.queued_id, sizeof(h.queued_id), "%s", id);
}

/* Callback: ETRN. */
static void
cb_flush(void *arg)
{
	ck_assert_ptr_eq(arg, &h);
	h.nflush++;
}

/* Number of entries in <qdir>/<sub>. */
static int
count_entries(const char *sub)
{
	char		 path[256];
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	snprintf(path, sizeof(path), "%s/%s", h.qdir, sub);
	d = opendir(path);
	ck_assert_msg(d != NULL, "opendir %s: %s", path, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n;
}

/*
 * Callback: the session is tearing itself down.  It must still be whole
 * (readable; under ASan a freed one aborts the test), and its tx not yet
 * aborted, which closed_tmp records.
 */
static void
cb_closed(void *arg, struct smtp_server *s)
{
	ck_assert_ptr_eq(arg, &h);
	ck_assert_ptr_eq(s, h.s);
	ck_assert(!h.closed);
	ck_assert_uint_eq(smtp_server_uid(s), h.uid);
	h.closed_tmp = count_entries("tmp");
	h.closed = true;
	h.s = NULL;
}

static const struct smtp_server_cb callbacks = {
	cb_queued, cb_flush, cb_closed
};

/* Start a session with the given limits over a new socketpair. */
static void
start_with(size_t max_size, size_t max_rcpt, int idle, int refuse)
{
	struct smtp_server_params	 p;
	struct bufferevent		*bev;
	int				 sv[2];

	/* A second session in one test: the first must be gone. */
	ck_assert_ptr_null(h.s);
	if (h.fd != -1)
		close(h.fd);
	h.closed = h.eof = false;
	h.outlen = 0;
	h.out[0] = '\0';
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(evutil_make_socket_nonblocking(sv[0]), 0);
	ck_assert_int_eq(evutil_make_socket_nonblocking(sv[1]), 0);
	if (h.sndbuf > 0)
		ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF,
		    &h.sndbuf, sizeof(h.sndbuf)), 0);
	bev = bufferevent_socket_new(h.base, sv[0],
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	ck_assert_ptr_nonnull(bev);
	memset(&p, 0, sizeof(p));
	p.hostname = HOST;
	p.account = h.account;
	p.max_size = max_size;
	p.max_rcpt = max_rcpt;
	p.idle_timeout = idle;
	h.fd = sv[1];
	h.bev = bev;
	h.s = smtp_server_new(h.base, bev, h.q, &p, &callbacks, &h, h.uid,
	    getpid(), refuse);
	ck_assert_ptr_nonnull(h.s);
}

/* Start a session with the usual limits. */
static void
start(void)
{
	start_with(MAXSIZE, 5, 300, 0);
}

/*
 * Read whatever the server has sent; true if anything arrived.  The I/O
 * helpers assert only on failure: a passing ck_assert writes a checkpoint
 * to Check's own file, which the RLIMIT_FSIZE test cannot afford.
 */
static bool
client_read(void)
{
	ssize_t	 n;
	bool	 got = false;

	for (;;) {
		if (h.outlen >= OUT_MAX)
			ck_abort_msg("the server said more than %d bytes", OUT_MAX);
		n = read(h.fd, h.out + h.outlen, OUT_MAX - h.outlen);
		if (n > 0) {
			h.outlen += (size_t)n;
			h.out[h.outlen] = '\0';
			got = true;
			continue;
		}
		if (n == 0 && !h.eof) {
			h.eof = true;
			got = true;
		}
		return got;
	}
}

/*
 * Run the loop without blocking until nothing moves for a while; a commit
 * on the queue's workers counts as moving (the loop then waits for its
 * completion event).
 */
static void
pump(void)
{
	int	 i, idle = 0;

	for (i = 0; i < 100000 && idle < 16; i++) {
		if (queue_async_pending(h.q) > 0)
			event_base_loop(h.base, EVLOOP_ONCE);
		else
			event_base_loop(h.base, EVLOOP_NONBLOCK);
		if (client_read() || queue_async_pending(h.q) > 0)
			idle = 0;
		else
			idle++;
	}
}

/* Write len bytes to the server, running the loop when the socket is full. */
static void
client_write(const char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		n = write(h.fd, buf, len);
		if (n == -1 && errno == EAGAIN) {
			pump();
			continue;
		}
		if (n <= 0)
			ck_abort_msg("write: %s", strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* Send a string and run the loop. */
static void
say(const char *text)
{
	client_write(text, strlen(text));
	pump();
}

/* Split the transcript into the final line of each reply. */
static size_t
finals(char lines[NREPLY][600])
{
	const char	*p = h.out, *eol;
	size_t		 n = 0, len;

	while ((eol = strstr(p, "\r\n")) != NULL) {
		len = (size_t)(eol - p);
		if (len >= 4 && p[3] == ' ') {
			ck_assert_uint_lt(n, NREPLY);
			ck_assert_uint_lt(len, 600);
			memcpy(lines[n], p, len);
			lines[n][len] = '\0';
			n++;
		} else
			ck_assert_msg(len >= 4 && p[3] == '-',
			    "malformed reply line \"%.*s\"", (int)len, p);
		p = eol + 2;
	}
	return n;
}

/* The transcript's final reply lines must start with want[], in order. */
static void
expect(const char *const *want)
{
	static char	 got[NREPLY][600];
	size_t		 n, i;

	n = finals(got);
	for (i = 0; want[i] != NULL; i++) {
		ck_assert_msg(i < n, "reply %zu missing (want \"%s\"); got:\n%s",
		    i, want[i], h.out);
		ck_assert_msg(strncmp(got[i], want[i], strlen(want[i])) == 0,
		    "reply %zu is \"%s\", want \"%s\"", i, got[i], want[i]);
	}
	ck_assert_msg(i == n, "%zu replies, want %zu; got:\n%s", n, i, h.out);
}

/* The last final reply line. */
static const char *
last_reply(void)
{
	static char	 got[NREPLY][600];
	size_t		 n;

	n = finals(got);
	ck_assert_uint_gt(n, 0);
	return got[n - 1];
}

/* The content of queue/<id>/message.eml (malloc'd, NUL-terminated). */
static char *
read_message(const char *id, size_t *len)
{
	char	*buf;
	ssize_t	 n;
	size_t	 off = 0;
	int	 fd;

	fd = queue_open_message(h.q, id);
	ck_assert_msg(fd >= 0, "open %s: %s", id, strerror(errno));
	buf = malloc(OUT_MAX + 1);
	ck_assert_ptr_nonnull(buf);
	while ((n = read(fd, buf + off, OUT_MAX - off)) > 0)
		off += (size_t)n;
	close(fd);
	buf[off] = '\0';
	*len = off;
	return buf;
}

/* "AUTH PLAIN <base64 of \0USER\0PASS>\r\n" into buf. */
static const char *
auth_plain_line(char *buf, size_t len)
{
	struct sasl_cred	 cred;
	char			 b64[512];

	memset(&cred, 0, sizeof(cred));
	strcpy(cred.user, USER);
	strcpy(cred.pass, PASS);
	ck_assert_int_eq(sasl_plain_encode(&cred, b64, sizeof(b64)), 0);
	snprintf(buf, len, "AUTH PLAIN %s\r\n", b64);
	return buf;
}

/* base64 of one LOGIN field plus CRLF into buf. */
static const char *
login_line(const char *field, char *buf, size_t len)
{
	char	 b64[512];

	ck_assert_int_eq(sasl_login_encode(field, b64, sizeof(b64)), 0);
	snprintf(buf, len, "%s\r\n", b64);
	return buf;
}

/* EHLO and AUTH PLAIN, with their replies checked. */
static void
login(void)
{
	char	 line[1024];

	say("EHLO client.example\r\n");
	say(auth_plain_line(line, sizeof(line)));
	ck_assert_str_eq(last_reply(), "235 2.7.0 Authentication accepted");
}

/* The ID in the last "250 2.0.0 Ok: queued as <ID>". */
static const char *
queued_id_from_reply(void)
{
	const char	*p;

	p = strstr(h.out, "250 2.0.0 Ok: queued as ");
	ck_assert_ptr_nonnull(p);
	p += strlen("250 2.0.0 Ok: queued as ");
	ck_assert_ptr_nonnull(strstr(p, "\r\n"));
	return p;
}

/* The canonical session: the full script as an array of chunks. */
static void
happy_script(const char *script[10], char *auth, size_t authlen)
{
	script[0] = "EHLO client.example\r\n";
	script[1] = auth_plain_line(auth, authlen);
	script[2] = "MAIL FROM:<alice@example.com> SIZE=100 BODY=8BITMIME\r\n";
	script[3] = "RCPT TO:<bob@example.com>\r\n";
	script[4] = "RCPT TO:<carol@example.org>\r\n";
	script[5] = "DATA\r\n";
	script[6] = BODY_WIRE;
	script[7] = "QUIT\r\n";
	script[8] = NULL;
}

static const char *const happy_replies[] = {
	"220 " HOST " ESMTP relayq",
	"250 ETRN",
	"235 2.7.0 Authentication accepted",
	"250 2.1.0 Ok",
	"250 2.1.5 Ok",
	"250 2.1.5 Ok",
	"354 End data with <CR><LF>.<CR><LF>",
	"250 2.0.0 Ok: queued as ",
	"221 2.0.0 Bye",
	NULL
};

/* Run the canonical session in one of the three ways and check it all. */
static void
run_happy(enum send_mode mode)
{
	const char	*script[10], *id;
	char		 auth[1024], idbuf[ENVELOPE_ID_MAX], err[256], *msg;
	struct envelope	 env;
	struct sasl_cred cred;
	size_t		 i, j, len, before;

	start();
	pump();
	happy_script(script, auth, sizeof(auth));
	for (i = 0; script[i] != NULL; i++) {
		before = h.outlen;
		if (mode == SEND_BYTEWISE) {
			for (j = 0; script[i][j] != '\0'; j++) {
				client_write(&script[i][j], 1);
				pump();
			}
		} else
			client_write(script[i], strlen(script[i]));
		if (mode != SEND_PIPELINED) {
			pump();
			ck_assert_msg(h.outlen > before, "no reply to step %zu",
			    i);
		}
	}
	pump();
	expect(happy_replies);
	ck_assert(h.closed);
	ck_assert(h.eof);

	id = queued_id_from_reply();
	len = strcspn(id, "\r");
	ck_assert_uint_lt(len, sizeof(idbuf));
	memcpy(idbuf, id, len);
	idbuf[len] = '\0';
	ck_assert_int_eq(h.nqueued, 1);
	ck_assert_str_eq(h.queued_id, idbuf);
	ck_assert_int_eq(count_entries("tmp"), 0);
	ck_assert_int_eq(count_entries("queue"), 1);

	msg = read_message(idbuf, &len);
	ck_assert_uint_eq(len, strlen(BODY_DISK));
	ck_assert_mem_eq(msg, BODY_DISK, len);
	free(msg);
	ck_assert_msg(queue_load(h.q, idbuf, &env, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_str_eq(env.sender, "alice@example.com");
	ck_assert_uint_eq(env.nrcpt, 2);
	ck_assert_str_eq(env.rcpt[0], "bob@example.com");
	ck_assert_str_eq(env.rcpt[1], "carol@example.org");
	ck_assert_uint_eq(env.uid, getuid());
	ck_assert_uint_eq(env.attempts, 0);
	ck_assert_int_eq(env.state, ENVELOPE_QUEUED);
	ck_assert_int_le(env.submitted, time(NULL));
	ck_assert_int_gt(env.submitted, time(NULL) - 60);
	ck_assert_int_eq(env.next_attempt, env.submitted);
	envelope_fini(&env);
	ck_assert_int_eq(queue_load_cred(h.q, idbuf, &cred), 0);
	ck_assert_str_eq(cred.user, USER);
	ck_assert_str_eq(cred.pass, PASS);
}

/* ---- the happy path, three ways ---- */

/* Line by line: every step answered, the message on disk unstuffed. */
START_TEST(test_smtp_server_happy_path)
{
	run_happy(SEND_STEPWISE);
}
END_TEST

/* The whole dialogue in one write gives the same replies and bytes. */
START_TEST(test_smtp_server_pipelined)
{
	run_happy(SEND_PIPELINED);
}
END_TEST

/* One byte at a time gives the same replies and bytes. */
START_TEST(test_smtp_server_bytewise)
{
	run_happy(SEND_BYTEWISE);
}
END_TEST

/* Two messages on one connection, the second pipelined after the first. */
START_TEST(test_smtp_server_two_messages_pipelined)
{
	static const char *const want[] = {
		"220 ", "250 ETRN", "235 2.7.0", "250 2.1.0", "250 2.1.5",
		"354 ", "250 2.0.0 Ok: queued as ", "250 2.1.0", "250 2.1.5",
		"354 ", "250 2.0.0 Ok: queued as ", "250 2.0.0 Ok", NULL
	};

	start();
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
	    "DATA\r\nfirst\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<c@example.com>\r\n"
	    "DATA\r\nsecond\r\n.\r\nNOOP\r\n");
	expect(want);
	ck_assert_int_eq(h.nqueued, 2);
	ck_assert_int_eq(count_entries("queue"), 2);
	ck_assert_int_eq(count_entries("tmp"), 0);
	ck_assert(!h.closed);
}
END_TEST

/* ---- sequence ---- */

/* MAIL before EHLO is out of sequence. */
START_TEST(test_smtp_server_mail_before_ehlo)
{
	static const char *const want[] = {
		"220 ", "503 5.5.1 ", "503 5.5.1 ", NULL
	};

	start();
	say("MAIL FROM:<a@example.com>\r\n");
	say("AUTH PLAIN AGFAYgBj\r\n");
	expect(want);
}
END_TEST

/* MAIL without AUTH needs credentials to relay. */
START_TEST(test_smtp_server_mail_without_auth)
{
	static const char *const want[] = {
		"220 ", "250 " HOST, "530 5.7.0 Authentication required", NULL
	};

	start();
	say("HELO client.example\r\n");
	say("MAIL FROM:<a@example.com>\r\n");
	expect(want);
}
END_TEST

/* The entry's credentials file, as base64 text. */
static void
read_cred_file(const char *id, char *buf, size_t len)
{
	char	 path[256];
	FILE	*fp;
	size_t	 n;

	snprintf(path, sizeof(path), "%s/queue/%s/credentials", h.qdir, id);
	fp = fopen(path, "r");
	ck_assert_ptr_nonnull(fp);
	n = fread(buf, 1, len - 1, fp);
	buf[n] = '\0';
	fclose(fp);
}

/*
 * With a configured account, MAIL without AUTH is accepted; the entry
 * records the account and its credentials file holds the address and no
 * password.  A session that did AUTH keeps its own credentials.
 */
START_TEST(test_smtp_server_configured_account)
{
	static const char *const want[] = {
		"220 ", "250 " HOST, "250 2.1.0 Ok", "250 2.1.5 Ok",
		"354 ", "250 2.0.0 Ok: queued as ", NULL
	};
	struct envelope	 env;
	char		 id[ENVELOPE_ID_MAX], err[256], cred[256];

	h.account = "ops@gmail.com";
	start();
	say("HELO client.example\r\n");
	say("MAIL FROM:<cron@host.example>\r\n");
	say("RCPT TO:<bob@example.com>\r\n");
	say("DATA\r\n");
	say("Subject: x\r\n\r\nhi\r\n.\r\n");
	expect(want);
	ck_assert_int_eq(h.nqueued, 1);
	str_copy(id, h.queued_id, sizeof(id));
	ck_assert_msg(queue_load(h.q, id, &env, err, sizeof(err)) == 0, "%s",
	    err);
	ck_assert_str_eq(env.account, "ops@gmail.com");
	ck_assert_str_eq(env.sender, "cron@host.example");
	envelope_fini(&env);
	read_cred_file(id, cred, sizeof(cred));
	/* base64 of "\0ops@gmail.com\0": the address, an empty password. */
	ck_assert_str_eq(cred, "AG9wc0BnbWFpbC5jb20A\n");

	/* AUTH in the same session: its own credentials from then on. */
	say("AUTH PLAIN AGFAYgBj\r\n");
	ck_assert_str_eq(last_reply(), "235 2.7.0 Authentication accepted");
	say("MAIL FROM:<a@example.com>\r\n");
	say("RCPT TO:<bob@example.com>\r\n");
	say("DATA\r\n");
	say("Subject: y\r\n\r\nhi\r\n.\r\n");
	ck_assert_int_eq(h.nqueued, 2);
	ck_assert_msg(queue_load(h.q, h.queued_id, &env, err, sizeof(err)) ==
	    0, "%s", err);
	ck_assert_str_eq(env.account, "");
	envelope_fini(&env);
}
END_TEST

/* AUTH twice, or inside a transaction, is 503. */
START_TEST(test_smtp_server_auth_twice)
{
	char	 line[1024];

	start();
	login();
	say(auth_plain_line(line, sizeof(line)));
	ck_assert_str_eq(last_reply(),
	    "503 5.5.1 Error: already authenticated");
}
END_TEST

/* RCPT before MAIL, DATA before RCPT, nested MAIL: 503 5.5.1. */
START_TEST(test_smtp_server_tx_sequence)
{
	static const char *const want[] = {
		"220 ", "250 ETRN", "235 ", "503 5.5.1 Error: need MAIL",
		"503 5.5.1 Error: need MAIL", "250 2.1.0", "503 5.5.1 Error: need RCPT",
		"503 5.5.1 Error: nested MAIL", "250 2.0.0 Ok", "503 5.5.1 Error: need MAIL",
		NULL
	};

	start();
	login();
	say("RCPT TO:<b@example.com>\r\n");
	say("DATA\r\n");
	say("MAIL FROM:<a@example.com>\r\n");
	say("DATA\r\n");
	say("MAIL FROM:<a@example.com>\r\n");
	say("RSET\r\n");
	say("RCPT TO:<b@example.com>\r\n");
	expect(want);
	ck_assert_int_eq(count_entries("tmp"), 0);
}
END_TEST

/* ---- AUTH ---- */

/* AUTH PLAIN with an empty 334 continuation, then a usable session. */
START_TEST(test_smtp_server_auth_plain_continuation)
{
	struct sasl_cred	 cred;
	char			 line[1024], b64[1024];

	start();
	say("EHLO c\r\n");
	say("AUTH PLAIN\r\n");
	ck_assert_ptr_nonnull(strstr(h.out, "\r\n334 \r\n"));
	auth_plain_line(line, sizeof(line));
	snprintf(b64, sizeof(b64), "%s", line + strlen("AUTH PLAIN "));
	say(b64);
	ck_assert_str_eq(last_reply(), "235 2.7.0 Authentication accepted");
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
	    "x\r\n.\r\n");
	ck_assert_int_eq(h.nqueued, 1);
	ck_assert_int_eq(queue_load_cred(h.q, h.queued_id, &cred), 0);
	ck_assert_str_eq(cred.user, USER);
	ck_assert_str_eq(cred.pass, PASS);
}
END_TEST

/* AUTH LOGIN asks Username: then Password: and keeps both. */
START_TEST(test_smtp_server_auth_login)
{
	static const char *const want[] = {
		"220 ", "250 ETRN", "334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6",
		"235 2.7.0 Authentication accepted", NULL
	};
	struct sasl_cred	 cred;
	char			 line[512];

	start();
	say("EHLO c\r\n");
	say("AUTH LOGIN\r\n");
	say(login_line(USER, line, sizeof(line)));
	say(login_line(PASS, line, sizeof(line)));
	expect(want);
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
	    "x\r\n.\r\n");
	ck_assert_int_eq(h.nqueued, 1);
	ck_assert_int_eq(queue_load_cred(h.q, h.queued_id, &cred), 0);
	ck_assert_str_eq(cred.user, USER);
	ck_assert_str_eq(cred.pass, PASS);
}
END_TEST

/* "*" cancels; bad base64 is 501 5.5.2; then AUTH still works. */
START_TEST(test_smtp_server_auth_errors)
{
	static const char *const want[] = {
		"220 ", "250 ETRN", "334 ", "501 5.7.0 Authentication aborted",
		"501 5.5.2 ", "334 VXNlcm5hbWU6", "501 5.5.2 ",
		"535 5.7.8 ", "504 5.5.4 ", "501 5.5.4 ", "235 2.7.0 ", NULL
	};
	char	 line[1024];

	start();
	say("EHLO c\r\n");
	say("AUTH PLAIN\r\n");
	say("*\r\n");
	say("AUTH PLAIN not*base64!\r\n");
	say("AUTH LOGIN\r\n");
	say("%%%\r\n");
	say("AUTH PLAIN AGFsaWNlAA==\r\n");	/* "\0alice\0": no password */
	say("AUTH CRAM-MD5\r\n");
	say("AUTH\r\n");
	say(auth_plain_line(line, sizeof(line)));
	expect(want);
}
END_TEST

/* ---- AUTH XOAUTH2 ---- */

#define TOKEN		"ya29.a0Af-token_value~1"

/* base64 of raw bytes into out. */
static const char *
xo_b64(const char *raw, char *out, size_t outlen)
{
	ck_assert_uint_ne(base64_encode(raw, strlen(raw), out, outlen, 0),
	    (size_t)-1);
	return out;
}

static const struct {
	const char	*name;
	bool		 continuation;	/* AUTH XOAUTH2, 334, response */
	const char	*raw;		/* NULL: not base64 at all */
	const char	*reply;
} xoauth2_cases[] = {
	{ "initial response", false,
	    "user=" USER "\001auth=Bearer " TOKEN "\001\001",
	    "235 2.7.0 Authentication accepted" },
	{ "334 continuation", true,
	    "user=" USER "\001auth=Bearer " TOKEN "\001\001",
	    "235 2.7.0 Authentication accepted" },
	{ "no closing ^A^A", false,
	    "user=" USER "\001auth=Bearer " TOKEN,
	    "501 5.5.2 Malformed XOAUTH2 response" },
	{ "not Bearer", true,
	    "user=" USER "\001auth=Basic " TOKEN "\001\001",
	    "501 5.5.2 Malformed XOAUTH2 response" },
	{ "empty token", false,
	    "user=" USER "\001auth=Bearer \001\001",
	    "501 5.5.2 Malformed XOAUTH2 response" },
	{ "a PLAIN blob", false, "\001" USER "\001" PASS,
	    "501 5.5.2 Malformed XOAUTH2 response" },
	{ "bad base64", false, NULL, "501 5.5.2 Cannot decode response" },
	{ "bad base64, continuation", true, NULL,
	    "501 5.5.2 Cannot decode response" },
};

/*
 * AUTH XOAUTH2, with its initial response or after "334 ": a well-formed
 * response is 235 and the entry's credentials file holds the token marked
 * XOAUTH2; anything else is 501 and the session still works for PLAIN.
 */
START_TEST(test_smtp_server_auth_xoauth2)
{
	struct sasl_cred	 cred;
	char			 b64[1024], line[1200], path[512], file[1100];
	ssize_t			 n;
	int			 fd;

	start();
	say("EHLO c\r\n");
	if (xoauth2_cases[_i].raw != NULL)
		xo_b64(xoauth2_cases[_i].raw, b64, sizeof(b64));
	else
		strcpy(b64, "not*base64!");
	if (xoauth2_cases[_i].continuation) {
		say("AUTH XOAUTH2\r\n");
		ck_assert_str_eq(last_reply(), "334 ");
		snprintf(line, sizeof(line), "%s\r\n", b64);
	} else
		snprintf(line, sizeof(line), "AUTH XOAUTH2 %s\r\n", b64);
	say(line);
	ck_assert_msg(strcmp(last_reply(), xoauth2_cases[_i].reply) == 0,
	    "%s: %s", xoauth2_cases[_i].name, last_reply());
	if (xoauth2_cases[_i].reply[0] != '2') {
		say(auth_plain_line(line, sizeof(line)));
		ck_assert_str_eq(last_reply(),
		    "235 2.7.0 Authentication accepted");
	}
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
	    "x\r\n.\r\n");
	ck_assert_int_eq(h.nqueued, 1);
	ck_assert_int_eq(queue_load_cred(h.q, h.queued_id, &cred), 0);
	ck_assert_str_eq(cred.user, USER);
	snprintf(path, sizeof(path), "%s/queue/%s/credentials", h.qdir,
	    h.queued_id);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = read(fd, file, sizeof(file) - 1);
	close(fd);
	ck_assert_int_gt(n, 0);
	file[n] = '\0';
	if (xoauth2_cases[_i].reply[0] == '2') {
		ck_assert_str_eq(cred.pass, TOKEN);
		ck_assert_int_eq(cred.mech, SASL_MECH_XOAUTH2);
		ck_assert_msg(strncmp(file, "XOAUTH2 ", 8) == 0, "%s", file);
	} else {
		ck_assert_str_eq(cred.pass, PASS);
		ck_assert_int_eq(cred.mech, SASL_MECH_PLAIN);
		ck_assert_msg(strncmp(file, "XOAUTH2 ", 8) != 0, "%s", file);
	}
}
END_TEST

/* Neither the token nor the XOAUTH2 response ever reaches the log. */
START_TEST(test_smtp_server_token_not_logged)
{
	char	 path[128], b64[1024], line[1200], buf[8192];
	ssize_t	 n;
	int	 fd;

	snprintf(path, sizeof(path), "%s/log", h.tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	log_init(LOG_SINK_STDERR, 2, "check_smtp_server");
	start();
	xo_b64("user=" USER "\001auth=Bearer " TOKEN "\001\001", b64,
	    sizeof(b64));
	snprintf(line, sizeof(line), "EHLO c\r\nAUTH XOAUTH2 %s\r\n", b64);
	say(line);
	ck_assert_str_eq(last_reply(), "235 2.7.0 Authentication accepted");
	say("AUTH XOAUTH2\r\n");
	ck_assert_str_eq(last_reply(),
	    "503 5.5.1 Error: already authenticated");
	say("QUIT\r\n");
	start();
	say("EHLO c\r\nAUTH XOAUTH2\r\n");
	snprintf(line, sizeof(line), "%s\r\n", b64);
	say(line);
	ck_assert_str_eq(last_reply(), "235 2.7.0 Authentication accepted");
	fflush(stderr);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_msg(strstr(buf, "AUTH XOAUTH2 ********") != NULL, "%s", buf);
	ck_assert_ptr_null(strstr(buf, TOKEN));
	ck_assert_ptr_null(strstr(buf, b64));
	close(fd);
}
END_TEST

/* Neither the password nor its base64 ever reaches the log. */
START_TEST(test_smtp_server_password_not_logged)
{
	char	 path[128], line[1024], plain[1024], pass64[512], buf[8192];
	ssize_t	 n;
	int	 fd;

	snprintf(path, sizeof(path), "%s/log", h.tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	log_init(LOG_SINK_STDERR, 2, "check_smtp_server");
	start();
	login();
	auth_plain_line(plain, sizeof(plain));
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
	    "x\r\n.\r\nRSET\r\n");
	say("QUIT\r\n");
	start();
	say("EHLO c\r\nAUTH LOGIN\r\n");
	say(login_line(USER, line, sizeof(line)));
	say(login_line(PASS, pass64, sizeof(pass64)));
	ck_assert_str_eq(last_reply(), "235 2.7.0 Authentication accepted");
	fflush(stderr);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_msg(strstr(buf, " accepted from=<a@example.com> nrcpt=1 "
	    "size=3 uid=") != NULL, "log:\n%s", buf);
	ck_assert_msg(strstr(buf, "AUTH PLAIN ********") != NULL, "%s", buf);
	ck_assert_ptr_null(strstr(buf, PASS));
	plain[strlen(plain) - 2] = '\0';
	ck_assert_ptr_null(strstr(buf, plain + strlen("AUTH PLAIN ")));
	pass64[strlen(pass64) - 2] = '\0';
	ck_assert_ptr_null(strstr(buf, pass64));
	close(fd);
}
END_TEST

/*
 * libevent's allocator, replaced for the wipe test: every block libevent
 * frees (its evbuffer chunks among them) is searched for the needles.
 */
static struct {
	const char	*needle[2];	/* the secret, and a control */
	size_t		 len[2];
	int		 found[2];	/* freed blocks holding each */
} mm;

/* Count the needles in a block about to be freed. */
static void
mm_scan(void *p)
{
	size_t	 size, i;

	if (p == NULL)
		return;
	size = malloc_usable_size(p);
	for (i = 0; i < nitems_ck(mm.needle); i++) {
		if (mm.len[i] > 0 && memmem(p, size, mm.needle[i], mm.len[i]) !=
		    NULL)
			mm.found[i]++;
	}
}

/* libevent's malloc. */
static void *
mm_malloc_cb(size_t size)
{
	return malloc(size);
}

/* libevent's realloc: a copy, so the old block is scanned. */
static void *
mm_realloc_cb(void *p, size_t size)
{
	void	*q;
	size_t	 old;

	if ((q = malloc(size)) == NULL || p == NULL)
		return q;
	old = malloc_usable_size(p);
	memcpy(q, p, old < size ? old : size);
	mm_scan(p);
	free(p);
	return q;
}

/* libevent's free. */
static void
mm_free_cb(void *p)
{
	mm_scan(p);
	free(p);
}

enum wipe_mode {
	WIPE_PLAIN_IR,		/* AUTH PLAIN <response> */
	WIPE_PLAIN_CONT,	/* AUTH PLAIN, 334, <response> */
	WIPE_LOGIN,		/* AUTH LOGIN, 334, user, 334, password */
	WIPE_PIPELINED,		/* AUTH PLAIN <response> and more, one write */
	WIPE_BYTEWISE,		/* AUTH PLAIN <response>, a byte at a time */
	WIPE_TOO_LONG		/* an over-long AUTH line, discarded */
};

static const struct {
	const char	*name;
	enum wipe_mode	 mode;
} wipe_cases[] = {
	{ "PLAIN initial response", WIPE_PLAIN_IR },
	{ "PLAIN continuation", WIPE_PLAIN_CONT },
	{ "LOGIN", WIPE_LOGIN },
	{ "pipelined", WIPE_PIPELINED },
	{ "bytewise", WIPE_BYTEWISE },
	{ "over-long AUTH line", WIPE_TOO_LONG }
};

#define WIPE_CONTROL	"Control-marker: message text is not wiped"
#define WIPE_TAIL	"MAIL FROM:<a@example.com>\r\n" \
			"RCPT TO:<b@example.com>\r\nDATA\r\n" \
			WIPE_CONTROL "\r\n.\r\nQUIT\r\n"

/*
 * The AUTH bytes (base64 credentials) are wiped from libevent's input
 * chunks before those are drained: no block libevent frees, up to the
 * session's end, holds them.  Message text is not wiped, and finding it
 * proves the scan sees the chunks.
 */
START_TEST(test_smtp_server_auth_bytes_wiped)
{
	char		 plain[1024], pass64[512], line[16384], *b64;
	const char	*secret;
	size_t		 i;

	auth_plain_line(plain, sizeof(plain));
	b64 = plain + strlen("AUTH PLAIN ");
	login_line(PASS, pass64, sizeof(pass64));
	pass64[strlen(pass64) - 2] = '\0';
	b64[strlen(b64) - 2] = '\0';
	secret = wipe_cases[_i].mode == WIPE_LOGIN ? pass64 : b64;
	memset(&mm, 0, sizeof(mm));
	mm.needle[0] = secret;
	mm.len[0] = strlen(secret);
	mm.needle[1] = WIPE_CONTROL;
	mm.len[1] = strlen(WIPE_CONTROL);
	event_set_mem_functions(mm_malloc_cb, mm_realloc_cb, mm_free_cb);

	start();
	switch (wipe_cases[_i].mode) {
	case WIPE_PLAIN_IR:
		say("EHLO c\r\n");
		snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", b64);
		say(line);
		break;
	case WIPE_PLAIN_CONT:
		say("EHLO c\r\nAUTH PLAIN\r\n");
		ck_assert_str_eq(last_reply(), "334 ");
		snprintf(line, sizeof(line), "%s\r\n", b64);
		say(line);
		break;
	case WIPE_LOGIN:
		say("EHLO c\r\nAUTH LOGIN\r\n");
		say(login_line(USER, line, sizeof(line)));
		snprintf(line, sizeof(line), "%s\r\n", pass64);
		say(line);
		break;
	case WIPE_PIPELINED:
		snprintf(line, sizeof(line), "EHLO c\r\nAUTH PLAIN %s\r\n"
		    WIPE_TAIL, b64);
		say(line);
		break;
	case WIPE_BYTEWISE:
		snprintf(line, sizeof(line), "EHLO c\r\nAUTH PLAIN %s\r\n",
		    b64);
		for (i = 0; line[i] != '\0'; i++) {
			client_write(&line[i], 1);
			pump();
		}
		break;
	case WIPE_TOO_LONG:
		/* Over RFC 4954's 12288 octets for an AUTH line. */
		snprintf(line, sizeof(line), "EHLO c\r\nAUTH PLAIN %0*d%s\r\n",
		    12300, 0, b64);
		say(line);
		ck_assert_str_eq(last_reply(), "500 5.5.2 Line too long");
		snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", b64);
		say(line);
		break;
	}
	if (wipe_cases[_i].mode != WIPE_PIPELINED)
		say(WIPE_TAIL);
	pump();
	event_set_mem_functions(NULL, NULL, NULL);
	ck_assert_msg(strstr(h.out, "235 2.7.0 ") != NULL, "%s", h.out);
	ck_assert_str_eq(last_reply(), "221 2.0.0 Bye");
	ck_assert_int_eq(h.nqueued, 1);
	/* The session's bufferevent and its buffers are freed. */
	ck_assert(h.closed);
	ck_assert(h.eof);
	ck_assert_msg(mm.found[0] == 0, "%s: %d freed libevent blocks hold "
	    "the credentials", wipe_cases[_i].name, mm.found[0]);
	ck_assert_msg(mm.found[1] > 0, "%s: the control text was never seen",
	    wipe_cases[_i].name);
}
END_TEST

/* ---- MAIL and RCPT ---- */

/* MAIL syntax, parameters and SIZE; RCPT syntax. */
START_TEST(test_smtp_server_mail_params)
{
	static const char *const want[] = {
		"220 ", "250 ETRN", "235 ",
		"501 5.5.4 Syntax: MAIL FROM:<address>",
		"501 5.5.4 Syntax: MAIL FROM:<address>",
		"553 5.1.7 ",
		"555 5.5.4 ",
		"501 5.5.4 Unsupported BODY",
		"501 5.5.4 Syntax error in SIZE",
		"552 5.3.4 ",
		"250 2.1.0",
		"553 5.1.3 ",
		"553 5.1.3 ",
		"501 5.5.4 Syntax: RCPT TO:<address>",
		"555 5.5.4 ",
		"250 2.1.5",
		NULL
	};
	char	 line[128];

	start();
	login();
	say("MAIL FROM:a@example.com\r\n");
	say("MAIL a@example.com\r\n");
	say("MAIL FROM:<a@@example.com>\r\n");
	say("MAIL FROM:<a@example.com> SMTPUTF8\r\n");
	say("MAIL FROM:<a@example.com> BODY=BINARYMIME\r\n");
	say("MAIL FROM:<a@example.com> SIZE=12x\r\n");
	snprintf(line, sizeof(line), "MAIL FROM:<a@example.com> SIZE=%d\r\n",
	    MAXSIZE + 1);
	say(line);
	snprintf(line, sizeof(line), "MAIL FROM:<a@example.com> SIZE=%d "
	    "BODY=7BIT\r\n", MAXSIZE);
	say(line);
	say("RCPT TO:<>\r\n");
	say("RCPT TO:<b@>\r\n");
	say("RCPT TO:b@example.com\r\n");
	say("RCPT TO:<b@example.com> NOTIFY=NEVER\r\n");
	say("RCPT TO:<b@example.com>\r\n");
	expect(want);
}
END_TEST

/* The recipient cap answers 452 4.5.3 and the message still goes. */
START_TEST(test_smtp_server_too_many_rcpts)
{
	static const char *const want[] = {
		"220 ", "250 ETRN", "235 ", "250 2.1.0", "250 2.1.5",
		"250 2.1.5", "452 4.5.3 Too many recipients", "354 ",
		"250 2.0.0 Ok: queued as ", NULL
	};
	struct envelope	 env;
	char		 err[256];

	start_with(MAXSIZE, 2, 300, 0);
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
	    "RCPT TO:<c@example.com>\r\nRCPT TO:<d@example.com>\r\n"
	    "DATA\r\nhi\r\n.\r\n");
	expect(want);
	ck_assert_int_eq(queue_load(h.q, h.queued_id, &env, err, sizeof(err)),
	    0);
	ck_assert_uint_eq(env.nrcpt, 2);
	envelope_fini(&env);
}
END_TEST

/* ---- lines ---- */

/* An over-long command is 500 once; the session goes on. */
START_TEST(test_smtp_server_long_line)
{
	static const char *const want[] = {
		"220 ", "500 5.5.2 Line too long", "250 2.0.0 Ok",
		"500 5.5.2 Line too long", "250 2.0.0 Ok", "250 2.0.0 Ok",
		"500 5.5.2 Line too long", "250 2.0.0 Ok", NULL
	};
	static char	 big[200 * 1024];

	start();
	memset(big, 'A', 511);
	memcpy(big + 511, "\r\n", 3);		/* 513 with CRLF */
	say(big);
	say("NOOP\r\n");
	memset(big, 'B', sizeof(big) - 1);	/* 200 KB, no LF */
	big[sizeof(big) - 1] = '\0';
	say(big);
	say(big);
	say("\r\nNOOP\r\n");
	memset(big, 'C', 510);			/* exactly 512 with CRLF */
	memcpy(big, "NOOP ", 5);
	memcpy(big + 510, "\r\n", 3);
	say(big);
	memset(big, 'D', 511);
	memcpy(big + 511, "\r\n", 3);
	say(big);
	say("NOOP\r\n");
	expect(want);
	ck_assert(!h.closed);
}
END_TEST

/* Bare LF, NUL and 8-bit bytes in a command are 500 5.5.2 and ignored. */
START_TEST(test_smtp_server_bad_command_bytes)
{
	static const char *const want[] = {
		"220 ", "500 5.5.2 Bare LF", "500 5.5.2 Invalid character",
		"500 5.5.2 Invalid character", "500 5.5.2 Invalid character",
		"250 2.0.0 Ok", NULL
	};

	start();
	say("NOOP\n");
	client_write("NO\0OP\r\n", 7);
	pump();
	say("NOOP \xc3\xa9\r\n");
	say("NO\rOP\r\n");
	say("NOOP\r\n");
	expect(want);
}
END_TEST

/* The other verbs answer as documented. */
START_TEST(test_smtp_server_other_verbs)
{
	static const char *const want[] = {
		"220 ", "250 2.0.0 Ok", "250 2.0.0 Ok", "252 2.5.0 ",
		"214 2.0.0 ", "502 5.5.1 ", "502 5.5.1 ",
		"500 5.5.2 Command unrecognized", "501 5.5.4 Syntax: EHLO",
		"250 " HOST, "250 2.0.0 Queue flush started",
		"250 2.0.0 Queue flush started", "221 2.0.0 Bye", NULL
	};

	start();
	say("NOOP\r\nRSET\r\nVRFY bob\r\nHELP\r\nSTARTTLS\r\nBDAT 10 LAST\r\n"
	    "FOO bar\r\nEHLO\r\nHELO c\r\nETRN\r\nETRN @example.com\r\nQUIT\r\n"
	    "NOOP\r\n");
	expect(want);
	ck_assert_int_eq(h.nflush, 2);
	ck_assert(h.closed);
}
END_TEST

enum etrn_peer {
	ETRN_OWN,		/* the daemon's own uid */
	ETRN_ROOT,
	ETRN_OTHER		/* any other user */
};

static const struct {
	const char	*name;
	enum etrn_peer	 peer;
	const char	*before;	/* commands before ETRN */
	bool		 auth;		/* AUTH PLAIN after them */
	const char	*reply;		/* to ETRN */
	int		 nflush;
} etrn_cases[] = {
	{ "own uid, no EHLO", ETRN_OWN, "", false, "503 5.5.1 ", 0 },
	{ "root, no EHLO", ETRN_ROOT, "NOOP\r\n", false, "503 5.5.1 ", 0 },
	{ "other, no EHLO", ETRN_OTHER, "", false, "503 5.5.1 ", 0 },
	{ "other, EHLO, no AUTH", ETRN_OTHER, "EHLO c\r\n", false,
	    "530 5.7.0 Authentication required", 0 },
	{ "other, HELO, no AUTH", ETRN_OTHER, "HELO c\r\n", false,
	    "530 5.7.0 Authentication required", 0 },
	{ "other, failed AUTH", ETRN_OTHER, "EHLO c\r\nAUTH PLAIN =\r\n",
	    false, "530 5.7.0 Authentication required", 0 },
	{ "other, EHLO and AUTH", ETRN_OTHER, "EHLO c\r\n", true,
	    "250 2.0.0 Queue flush started", 1 },
	{ "own uid, EHLO", ETRN_OWN, "EHLO c\r\n", false,
	    "250 2.0.0 Queue flush started", 1 },
	{ "own uid, HELO", ETRN_OWN, "HELO c\r\n", false,
	    "250 2.0.0 Queue flush started", 1 },
	{ "root, EHLO", ETRN_ROOT, "EHLO c\r\n", false,
	    "250 2.0.0 Queue flush started", 1 }
};

/*
 * ETRN needs EHLO/HELO (503 5.5.1), then AUTH unless the peer is root or
 * the daemon's own user (530 5.7.0); a refused ETRN flushes nothing and
 * the session goes on.
 */
START_TEST(test_smtp_server_etrn_access)
{
	char	 line[1024];

	switch (etrn_cases[_i].peer) {
	case ETRN_OWN:
		h.uid = geteuid();
		break;
	case ETRN_ROOT:
		h.uid = 0;
		break;
	case ETRN_OTHER:
		h.uid = geteuid() == 4242 ? 4243 : 4242;
		break;
	}
	start();
	say(etrn_cases[_i].before);
	if (etrn_cases[_i].auth) {
		say(auth_plain_line(line, sizeof(line)));
		ck_assert_str_eq(last_reply(),
		    "235 2.7.0 Authentication accepted");
	}
	say("ETRN\r\n");
	ck_assert_msg(strncmp(last_reply(), etrn_cases[_i].reply,
	    strlen(etrn_cases[_i].reply)) == 0, "%s: ETRN got \"%s\", want "
	    "\"%s\"", etrn_cases[_i].name, last_reply(), etrn_cases[_i].reply);
	ck_assert_int_eq(h.nflush, etrn_cases[_i].nflush);
	say("NOOP\r\n");
	ck_assert_str_eq(last_reply(), "250 2.0.0 Ok");
	ck_assert(!h.closed);
}
END_TEST

/* EHLO advertises exactly the promised extensions. */
START_TEST(test_smtp_server_ehlo_lines)
{
	char	 want[512];

	start();
	say("EHLO client.example\r\n");
	snprintf(want, sizeof(want),
	    "220 " HOST " ESMTP relayq\r\n"
	    "250-" HOST "\r\n"
	    "250-PIPELINING\r\n"
	    "250-8BITMIME\r\n"
	    "250-SIZE %d\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-AUTH PLAIN LOGIN XOAUTH2\r\n"
	    "250 ETRN\r\n", MAXSIZE);
	ck_assert_str_eq(h.out, want);
}
END_TEST

#define UNREAD_N	2000	/* commands pipelined while not reading */
#define UNREAD_BOUND	(33 * 1024)	/* 32 KB plus one reply */

/* Command i of the unread pipeline: EHLO, with a NOOP every 16th. */
static const char *
unread_cmd(size_t i, const char **reply)
{
	static char	 ehlo[512];

	snprintf(ehlo, sizeof(ehlo), "250-" HOST "\r\n250-PIPELINING\r\n"
	    "250-8BITMIME\r\n250-SIZE %d\r\n250-ENHANCEDSTATUSCODES\r\n"
	    "250-AUTH PLAIN LOGIN XOAUTH2\r\n250 ETRN\r\n", MAXSIZE);
	*reply = i % 16 == 15 ? "250 2.0.0 Ok\r\n" : ehlo;
	return i % 16 == 15 ? "NOOP\r\n" : "EHLO c\r\n";
}

/*
 * A client pipelining commands without reading the replies: the server's
 * output buffer stays under about 32 KB (it stops reading lines), and once
 * the client reads, every reply arrives, in order.
 */
START_TEST(test_smtp_server_unread_replies_bounded)
{
	static char	 in[UNREAD_N * 8], want[UNREAD_N * 160];
	const char	*cmd, *reply;
	size_t		 i, inlen = 0, wantlen = 0, len, max = 0;
	int		 k;

	h.sndbuf = 4096;
	start();
	wantlen = (size_t)snprintf(want, sizeof(want), "220 " HOST
	    " ESMTP relayq\r\n");
	for (i = 0; i < UNREAD_N; i++) {
		cmd = unread_cmd(i, &reply);
		memcpy(in + inlen, cmd, strlen(cmd));
		inlen += strlen(cmd);
		memcpy(want + wantlen, reply, strlen(reply));
		wantlen += strlen(reply);
	}
	ck_assert_int_eq(write(h.fd, in, inlen), (ssize_t)inlen);
	/* Run the server for a while without reading its replies. */
	for (k = 0; k < 1000; k++) {
		event_base_loop(h.base, EVLOOP_NONBLOCK);
		len = evbuffer_get_length(bufferevent_get_output(h.bev));
		if (len > max)
			max = len;
	}
	ck_assert_msg(max > UNREAD_BOUND / 2 && max <= UNREAD_BOUND,
	    "%zu bytes of replies buffered, bound %d", max, UNREAD_BOUND);
	pump();
	ck_assert_uint_eq(h.outlen, wantlen);
	ck_assert_mem_eq(h.out, want, wantlen);
	ck_assert(!h.closed);
	say("QUIT\r\n");
	ck_assert(h.closed);
}
END_TEST

/* ---- DATA ---- */

/* A body over max_size is read to the end, refused 552, not queued. */
START_TEST(test_smtp_server_oversized_body)
{
	static const char *const want[] = {
		"220 ", "250 ETRN", "235 ", "250 2.1.0", "250 2.1.5", "354 ",
		"552 5.3.4 ", "250 2.0.0 Ok", NULL
	};
	static char	 body[4096];
	size_t		 i;

	start_with(2048, 5, 300, 0);
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
	for (i = 0; i + 64 < sizeof(body); i += 64) {
		memset(body + i, 'x', 62);
		memcpy(body + i + 62, "\r\n", 2);
	}
	body[i] = '\0';
	client_write(body, strlen(body));
	ck_assert_int_eq(count_entries("tmp"), 1);
	say(".\r\nNOOP\r\n");
	expect(want);
	ck_assert_int_eq(h.nqueued, 0);
	ck_assert_int_eq(count_entries("queue"), 0);
	ck_assert_int_eq(count_entries("tmp"), 0);
}
END_TEST

/* A body of exactly max_size is accepted. */
START_TEST(test_smtp_server_body_at_limit)
{
	start_with(16, 5, 300, 0);
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
	    "0123456789abcd\r\n.\r\n");
	ck_assert_msg(strncmp(last_reply(), "250 2.0.0 Ok: queued as ", 24) ==
	    0, "%s", last_reply());
}
END_TEST

/*
 * A bare LF in the text is refused after the real end; a ".\r\n" after a
 * bare LF is not the end, so nothing after it is taken as a command.
 */
START_TEST(test_smtp_server_bare_lf_in_data)
{
	static const char *const want[] = {
		"220 ", "250 ETRN", "235 ", "250 2.1.0", "250 2.1.5", "354 ",
		"554 5.6.0 Message contains bare CR or LF", "250 2.0.0 Ok", NULL
	};

	start();
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
	    "Subject: x\r\n\r\nline\n.\r\nMAIL FROM:<evil@example.com>\r\n"
	    "RCPT TO:<victim@example.com>\r\nDATA\r\nsmuggled\r\n.\r\n"
	    "NOOP\r\n");
	expect(want);
	ck_assert_int_eq(h.nqueued, 0);
	ck_assert_int_eq(count_entries("queue"), 0);
	ck_assert_int_eq(count_entries("tmp"), 0);
}
END_TEST

/* A bare CR and a 1001-byte line are refused 554 5.6.0 after the dot. */
START_TEST(test_smtp_server_bad_text_lines)
{
	static const char *const want[] = {
		"220 ", "250 ETRN", "235 ", "250 2.1.0", "250 2.1.5", "354 ",
		"554 5.6.0 Message contains bare CR", "250 2.1.0", "250 2.1.5",
		"354 ", "554 5.6.0 Message has a line longer", "250 2.1.0",
		"250 2.1.5", "354 ", "250 2.0.0 Ok: queued as ", NULL
	};
	static char	 line[1100];

	start();
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
	    "a\rb\r\n.\r\n");
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
	memset(line, 'x', 999);			/* 1001 with CRLF */
	memcpy(line + 999, "\r\n.\r\n", 6);
	say(line);
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
	memset(line, 'y', 998);			/* 1000 with CRLF: fine */
	memcpy(line + 998, "\r\n.\r\n", 6);
	say(line);
	expect(want);
	ck_assert_int_eq(h.nqueued, 1);
	ck_assert_int_eq(count_entries("queue"), 1);
	ck_assert_int_eq(count_entries("tmp"), 0);
}
END_TEST

/* A NUL byte is not 8bit text (RFC 6152): 554 5.6.0, nothing queued. */
START_TEST(test_smtp_server_nul_in_data)
{
	static const char *const want[] = {
		"220 ", "250 ETRN", "235 ", "250 2.1.0", "250 2.1.5", "354 ",
		"554 5.6.0 Message contains a NUL byte", "250 2.0.0 Ok", NULL
	};
	static const char	 text[] = "Subject: nul\r\n\r\nab\0cd\r\n"
				    "more\r\n.\r\nNOOP\r\n";

	start();
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
	    "DATA\r\n");
	client_write(text, sizeof(text) - 1);
	pump();
	expect(want);
	ck_assert_int_eq(h.nqueued, 0);
	ck_assert_int_eq(count_entries("queue"), 0);
	ck_assert_int_eq(count_entries("tmp"), 0);
}
END_TEST

/* EOF in the middle of DATA leaves nothing in tmp/ or queue/. */
START_TEST(test_smtp_server_eof_mid_data)
{
	start();
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
	    "Subject: half\r\n\r\nsome text\r\n");
	ck_assert_str_eq(last_reply(), "354 End data with <CR><LF>.<CR><LF>");
	ck_assert_int_eq(count_entries("tmp"), 1);
	ck_assert_int_eq(shutdown(h.fd, SHUT_WR), 0);
	pump();
	ck_assert(h.closed);
	ck_assert_int_eq(h.nqueued, 0);
	ck_assert_int_eq(count_entries("tmp"), 0);
	ck_assert_int_eq(count_entries("queue"), 0);
}
END_TEST

/* A failing disk write is answered after the dot, nothing is queued. */
START_TEST(test_smtp_server_write_error)
{
	struct rlimit	 rl, saved;
	static char	 body[80 * 1024];
	size_t		 i;

	start_with(1024 * 1024, 5, 300, 0);
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
	for (i = 0; i + 100 + 4 <= sizeof(body); i += 100) {
		memset(body + i, 'z', 98);
		memcpy(body + i + 98, "\r\n", 2);
	}
	memcpy(body + i, ".\r\n", 4);
	/* Files may not grow past 1 KB while the message is written. */
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
	rl = saved;
	rl.rlim_cur = 1024;
	setrlimit(RLIMIT_FSIZE, &rl);
	say(body);
	setrlimit(RLIMIT_FSIZE, &saved);
	ck_assert_str_eq(last_reply(), "451 4.3.0 Local error in processing");
	ck_assert_int_eq(h.nqueued, 0);
	ck_assert_int_eq(count_entries("queue"), 0);
	ck_assert_int_eq(count_entries("tmp"), 0);
	say("NOOP\r\n");
	ck_assert_str_eq(last_reply(), "250 2.0.0 Ok");
}
END_TEST

/* ---- limits and teardown ---- */

/* Over the connection cap: 421 4.3.2 and the session closes itself. */
START_TEST(test_smtp_server_refuse)
{
	start_with(MAXSIZE, 5, 300, 1);
	say("EHLO c\r\n");
	ck_assert_str_eq(h.out,
	    "421 4.3.2 Too many connections, try again later\r\n");
	ck_assert(h.closed);
	ck_assert(h.eof);
}
END_TEST

/* Run the loop for about ms milliseconds. */
static void
pump_for(int ms)
{
	struct timespec	 ts = { 0, 10 * 1000 * 1000 };
	int		 i;

	for (i = 0; i < ms / 10; i++) {
		pump();
		nanosleep(&ts, NULL);
	}
	pump();
}

/* Silence past idle_timeout: 421 4.4.2 and close. */
START_TEST(test_smtp_server_idle_timeout)
{
	start_with(MAXSIZE, 5, 1, 0);
	say("EHLO c\r\n");
	pump_for(500);
	ck_assert(!h.closed);
	pump_for(1500);
	ck_assert(h.closed);
	ck_assert_str_eq(last_reply(),
	    "421 4.4.2 " HOST " Error: timeout exceeded");
}
END_TEST

/* A byte every 200 ms resets the idle timer but not the line deadline. */
START_TEST(test_smtp_server_trickle_deadline)
{
	const char	*cmd = "NOOP NOOP NOOP NOOP NOOP\r\n";
	size_t		 i;

	start_with(MAXSIZE, 5, 1, 0);
	for (i = 0; cmd[i] != '\0' && !h.closed; i++) {
		client_write(&cmd[i], 1);
		pump_for(200);
	}
	ck_assert(h.closed);
	ck_assert_uint_lt(i, 12);
	ck_assert_str_eq(last_reply(),
	    "421 4.4.2 " HOST " Error: timeout exceeded");
}
END_TEST

/*
 * The closed callback runs before the session is freed: during it the
 * session is readable and its tx (tmp/<ID>) not yet aborted; afterwards
 * the tx is gone.
 */
START_TEST(test_smtp_server_closed_while_valid)
{
	h.uid = getuid() == 4242 ? 4243 : 4242;
	start();
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
	    "text\r\n");
	ck_assert_int_eq(count_entries("tmp"), 1);
	ck_assert_int_eq(shutdown(h.fd, SHUT_WR), 0);
	pump();
	ck_assert(h.closed);
	ck_assert_int_eq(h.closed_tmp, 1);
	ck_assert_int_eq(count_entries("tmp"), 0);
	ck_assert_int_eq(count_entries("queue"), 0);
}
END_TEST

/* smtp_server_free mid-DATA (daemon shutdown) aborts the tx. */
START_TEST(test_smtp_server_free_aborts)
{
	start();
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
	    "text\r\n");
	ck_assert_int_eq(count_entries("tmp"), 1);
	ck_assert_uint_eq(smtp_server_uid(h.s), getuid());
	smtp_server_free(h.s);
	h.s = NULL;
	ck_assert(!h.closed);
	ck_assert_int_eq(count_entries("tmp"), 0);
	ck_assert_int_eq(count_entries("queue"), 0);
	pump();
	ck_assert(h.eof);
}
END_TEST

/* ---- the commit on the queue's workers ---- */

/*
 * Three messages pipelined in one write: the replies come in order, each
 * 250 names the entry holding that message's text, and cb.queued sees the
 * same IDs in the same order.
 */
START_TEST(test_smtp_server_pipelined_commit_order)
{
	static const char *const want[] = {
		"220 ", "250 ETRN", "235 2.7.0",
		"250 2.1.0", "250 2.1.5", "354 ", "250 2.0.0 Ok: queued as ",
		"250 2.1.0", "250 2.1.5", "354 ", "250 2.0.0 Ok: queued as ",
		"250 2.1.0", "250 2.1.5", "354 ", "250 2.0.0 Ok: queued as ",
		"250 2.0.0 Ok", NULL
	};
	static const char *const text[] = { "one\r\n", "two\r\n", "three\r\n" };
	const char	*p;
	char		 id[ENVELOPE_ID_MAX], *msg;
	size_t		 i, len;

	start();
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
	    "DATA\r\none\r\n.\r\n"
	    "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
	    "DATA\r\ntwo\r\n.\r\n"
	    "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
	    "DATA\r\nthree\r\n.\r\nNOOP\r\n");
	expect(want);
	ck_assert_int_eq(h.nqueued, 3);
	p = h.out;
	for (i = 0; i < 3; i++) {
		p = strstr(p, "250 2.0.0 Ok: queued as ");
		ck_assert_ptr_nonnull(p);
		p += strlen("250 2.0.0 Ok: queued as ");
		len = strcspn(p, "\r");
		ck_assert_uint_lt(len, sizeof(id));
		memcpy(id, p, len);
		id[len] = '\0';
		ck_assert_str_eq(h.queued_ids[i], id);
		msg = read_message(id, &len);
		ck_assert_str_eq(msg, text[i]);
		free(msg);
	}
	ck_assert_int_eq(count_entries("queue"), 3);
	ck_assert_int_eq(count_entries("tmp"), 0);
}
END_TEST

/*
 * Run the loop until the session has handed its commit to the workers,
 * without running the completion (it fires on a later pass).
 */
static void
run_until_committing(void)
{
	int	 i;

	for (i = 0; i < 10000 && queue_async_pending(h.q) == 0; i++)
		event_base_loop(h.base, EVLOOP_NONBLOCK);
	ck_assert_uint_eq(queue_async_pending(h.q), 1);
	ck_assert_int_eq(h.nqueued, 0);
}

/*
 * The session is freed while its commit is in flight: the completion then
 * touches nothing of it (ASan in make sanitize), and the committed entry
 * still reaches the queue's adopter, whether the completion comes through
 * the loop (_i 0) or from queue_close (_i 1, daemon shutdown).
 */
START_TEST(test_smtp_server_free_during_commit)
{
	static const char	 msg[] =
	    "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
	    "DATA\r\nSubject: gone\r\n\r\nbye\r\n.\r\nNOOP\r\n";
	char			 path[256];
	struct stat		 st;

	start();
	login();
	queue_set_adopt(h.q, cb_adopt, &h.nadopted);
	client_write(msg, strlen(msg));
	run_until_committing();
	smtp_server_free(h.s);
	h.s = NULL;
	if (_i == 0)
		pump();
	else {
		queue_close(h.q);
		h.q = NULL;
	}
	ck_assert(!h.closed);
	/*
	 * The entry goes to the queue's adopter, never to the session's
	 * queued callback, whose argument may have gone with the session.
	 */
	ck_assert_int_eq(h.nqueued, 0);
	ck_assert_int_eq(h.nadopted, 1);
	snprintf(path, sizeof(path), "%s/queue/%s/message.eml", h.qdir,
	    h.queued_id);
	ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(count_entries("queue"), 1);
	ck_assert_int_eq(count_entries("tmp"), 0);
	/* The client saw no 250 for it, and the NOOP was never answered. */
	client_read();
	ck_assert_ptr_null(strstr(h.out, "queued as"));
	ck_assert_str_eq(last_reply(), "354 End data with <CR><LF>.<CR><LF>");
	if (_i == 0)
		ck_assert(h.eof);
}
END_TEST

/*
 * Out of space when the worker writes the message: 452 4.3.1, nothing in
 * tmp/ or queue/, the session goes on, and once space is back the next
 * message is accepted.  The queue is on a 1 MB tmpfs in a mount namespace
 * of the test process's own; skipped (and said so) when not root.
 */
START_TEST(test_smtp_server_commit_enospc)
{
	static const char	 msg[] =
	    "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
	    "DATA\r\nSubject: full\r\n\r\nno room\r\n.\r\n";
	char			 err[256], path[300], buf[16384];
	ssize_t			 n = 0;
	int			 fd, i;

	if (geteuid() != 0) {
		fprintf(stderr, "check_smtp_server: ENOSPC SKIPPED: not root\n");
		return;
	}
	queue_close(h.q);
	ck_assert_msg(unshare(CLONE_NEWNS) == 0, "unshare: %s",
	    strerror(errno));
	ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	ck_assert_msg(mount("tmpfs", h.qdir, "tmpfs", MS_NOSUID | MS_NODEV,
	    "size=1m,mode=0700") == 0, "mount: %s", strerror(errno));
	h.q = queue_open(h.qdir, err, sizeof(err));
	ck_assert_msg(h.q != NULL, "queue_open: %s", err);

	start();
	login();
	say("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
	ck_assert_str_eq(last_reply(), "354 End data with <CR><LF>.<CR><LF>");
	memset(buf, 'f', sizeof(buf));
	snprintf(path, sizeof(path), "%s/filler", h.qdir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	ck_assert_int_ne(fd, -1);
	for (i = 0; i < 1024 && (n = write(fd, buf, sizeof(buf))) > 0; i++)
		continue;
	for (i = 0; i < 16384 && n > 0; i++)
		n = write(fd, buf, 1);
	ck_assert_msg(n == -1 && errno == ENOSPC, "filler: no ENOSPC");
	close(fd);
	say("Subject: full\r\n\r\nno room\r\n.\r\n");
	ck_assert_str_eq(last_reply(), "452 4.3.1 Insufficient system storage");
	ck_assert_int_eq(h.nqueued, 0);
	ck_assert_int_eq(count_entries("tmp"), 0);
	ck_assert_int_eq(count_entries("queue"), 0);
	say("NOOP\r\n");
	ck_assert_str_eq(last_reply(), "250 2.0.0 Ok");

	ck_assert_int_eq(unlink(path), 0);
	say(msg);
	ck_assert_ptr_nonnull(strstr(last_reply(), "250 2.0.0 Ok: queued as "));
	ck_assert_int_eq(h.nqueued, 1);
	ck_assert_int_eq(count_entries("queue"), 1);
	ck_assert_int_eq(count_entries("tmp"), 0);
}
END_TEST

/* The smtp_server suite: its test cases and their fixtures. */
Suite *
smtp_server_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("smtp_server");

	tc = tcase_create("dialogue");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_smtp_server_happy_path);
	tcase_add_test(tc, test_smtp_server_pipelined);
	tcase_add_test(tc, test_smtp_server_bytewise);
	tcase_add_test(tc, test_smtp_server_two_messages_pipelined);
	tcase_add_test(tc, test_smtp_server_pipelined_commit_order);
	tcase_add_loop_test(tc, test_smtp_server_free_during_commit, 0, 2);
	tcase_add_test(tc, test_smtp_server_commit_enospc);
	tcase_add_test(tc, test_smtp_server_ehlo_lines);
	tcase_add_test(tc, test_smtp_server_other_verbs);
	tcase_add_test(tc, test_smtp_server_unread_replies_bounded);
	suite_add_tcase(s, tc);

	tc = tcase_create("sequence");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_smtp_server_mail_before_ehlo);
	tcase_add_test(tc, test_smtp_server_mail_without_auth);
	tcase_add_test(tc, test_smtp_server_configured_account);
	tcase_add_test(tc, test_smtp_server_auth_twice);
	tcase_add_loop_test(tc, test_smtp_server_etrn_access, 0,
	    (int)nitems_ck(etrn_cases));
	tcase_add_test(tc, test_smtp_server_tx_sequence);
	tcase_add_test(tc, test_smtp_server_auth_plain_continuation);
	tcase_add_test(tc, test_smtp_server_auth_login);
	tcase_add_test(tc, test_smtp_server_auth_errors);
	tcase_add_test(tc, test_smtp_server_password_not_logged);
	tcase_add_loop_test(tc, test_smtp_server_auth_xoauth2, 0,
	    (int)nitems_ck(xoauth2_cases));
	tcase_add_test(tc, test_smtp_server_token_not_logged);
	tcase_add_loop_test(tc, test_smtp_server_auth_bytes_wiped, 0,
	    (int)nitems_ck(wipe_cases));
	tcase_add_test(tc, test_smtp_server_mail_params);
	tcase_add_test(tc, test_smtp_server_too_many_rcpts);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_smtp_server_long_line);
	tcase_add_test(tc, test_smtp_server_bad_command_bytes);
	tcase_add_test(tc, test_smtp_server_oversized_body);
	tcase_add_test(tc, test_smtp_server_body_at_limit);
	tcase_add_test(tc, test_smtp_server_bare_lf_in_data);
	tcase_add_test(tc, test_smtp_server_bad_text_lines);
	tcase_add_test(tc, test_smtp_server_nul_in_data);
	tcase_add_test(tc, test_smtp_server_eof_mid_data);
	tcase_add_test(tc, test_smtp_server_write_error);
	tcase_add_test(tc, test_smtp_server_refuse);
	tcase_add_test(tc, test_smtp_server_idle_timeout);
	tcase_add_test(tc, test_smtp_server_trickle_deadline);
	tcase_add_test(tc, test_smtp_server_free_aborts);
	tcase_add_test(tc, test_smtp_server_closed_while_valid);
	suite_add_tcase(s, tc);
	return s;
}
