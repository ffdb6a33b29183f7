/*
 * check_relay.c: the relay session against a scripted peer in the same
 * process.  The relay gets one end of a socketpair through the params.fd
 * seam; the peer, a bufferevent on the other end, answers each command
 * line with the next reply of its script, can switch to TLS (STARTTLS or
 * from the start) with a certificate made by openssl(1) in a mkdtemp
 * directory, and records every line it receives, so the tests can assert
 * exactly what crossed the wire (and that no AUTH line ever did).
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include <openssl/ssl.h>

#include "check_relayq.h"
#include "log.h"
#include "relay.h"
#include "tls.h"
#include "util.h"

#define HOST		"relay.test"
#define HELO		"helo.test"
#define SENDER		"a@example.org"
#define AUTH_PLAIN_B64	"AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0"	/* \0user@..\0secret */
#define USER_B64	"dXNlckBleGFtcGxlLm9yZw=="
#define PASS_B64	"c2VjcmV0"
#define RUN_SECONDS	10

enum peer_action {
	PEER_REPLY,		/* send the reply */
	PEER_STARTTLS,		/* send the reply, then accept TLS */
	PEER_DATA,		/* send the reply, then collect DATA lines */
	PEER_DATA_EARLY,	/* the same, but answer the first DATA line
				   with the next step */
	PEER_DATA_STALL,	/* send the reply, then read no more */
	PEER_CLOSE		/* close without a reply */
};

struct peer_step {
	const char		*reply;
	enum peer_action	 action;
};

struct peer {
	struct event_base	*base;
	struct bufferevent	*bev;
	SSL_CTX			*ctx;
	const struct peer_step	*steps;
	size_t			 nsteps;
	size_t			 next;
	bool			 in_data;
	bool			 early;	/* answer the next DATA line */
	bool			 closed;
	bool			 stalled;	/* reads no more */
	size_t			 bdat_left;	/* BDAT chunk bytes to come */
	struct evbuffer		*lines;	/* command lines, '\n'-terminated */
	struct evbuffer		*data;	/* DATA lines, '\n'-terminated, or
					   BDAT chunks as they came */
};

struct outcome {
	int			 calls;
	enum relay_result	 result;
	char			 reason[4096];
	struct relay_outcome	 ro;
	struct relay_rcpt_result rcpts[2];
};

static int	 session_timeout = 5;
static bool	 session_no_chunking;	/* params.no_chunking */
static off_t	 session_msg_read;	/* how far the relay read the .eml */
static struct evbuffer *session_transcript;	/* unless NULL, "dir: line\n" */
static SSL_CTX	*tls_cctx;	/* trusts the test certificate, or NULL */
static SSL_CTX	*tls_sctx;	/* serves it */

static const char *const rcpts[] = { "b@example.org", "c@example.org" };

static void	peer_read_cb(struct bufferevent *, void *);
static void	peer_event_cb(struct bufferevent *, short, void *);

/* Stack a server TLS filter on the peer's connection. */
static void
peer_tls(struct peer *p)
{
	struct bufferevent	*tls;
	SSL			*ssl;

	ssl = SSL_new(p->ctx);
	ck_assert_ptr_nonnull(ssl);
	tls = bufferevent_openssl_filter_new(p->base, p->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	ck_assert_ptr_nonnull(tls);
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	p->bev = tls;
	bufferevent_setcb(tls, peer_read_cb, NULL, peer_event_cb, p);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
}

/* Close the peer's end. */
static void
peer_close(struct peer *p)
{
	if (p->bev != NULL)
		bufferevent_free(p->bev);
	p->bev = NULL;
	p->closed = true;
}

/* Play the next step of the script. */
static void
peer_step(struct peer *p)
{
	const struct peer_step	*s;

	if (p->next >= p->nsteps)
		return;
	s = &p->steps[p->next++];
	if (s->action == PEER_CLOSE) {
		peer_close(p);
		return;
	}
	if (s->reply != NULL)
		bufferevent_write(p->bev, s->reply, strlen(s->reply));
	if (s->action == PEER_STARTTLS)
		peer_tls(p);
	else if (s->action == PEER_DATA)
		p->in_data = true;
	else if (s->action == PEER_DATA_EARLY)
		p->in_data = p->early = true;
	else if (s->action == PEER_DATA_STALL) {
		bufferevent_disable(p->bev, EV_READ);
		p->stalled = true;
	}
}

/*
 * Take the bytes of a BDAT chunk as they are; once the chunk is complete,
 * answer it with the next step.  False when no chunk is being read.
 */
static bool
peer_bdat(struct peer *p)
{
	struct evbuffer	*in = bufferevent_get_input(p->bev);
	size_t		 n;

	if (p->bdat_left == 0)
		return false;
	n = evbuffer_get_length(in);
	if (n > p->bdat_left)
		n = p->bdat_left;
	evbuffer_remove_buffer(in, p->data, n);
	p->bdat_left -= n;
	if (p->bdat_left == 0)
		peer_step(p);
	return true;
}

/* Record each CRLF line and answer commands from the script. */
static void
peer_read_cb(struct bufferevent *bev, void *arg)
{
	struct peer	*p = arg;
	char		*line;
	size_t		 len, chunk;

	/* p->bev, not bev: after STARTTLS the lines come from the filter. */
	UNUSED(bev);
	for (;;) {
		if (p->bev == NULL)
			return;
		if (peer_bdat(p)) {
			if (p->bdat_left > 0)
				return;
			continue;
		}
		if ((line = evbuffer_readln(bufferevent_get_input(p->bev),
		    &len, EVBUFFER_EOL_CRLF_STRICT)) == NULL)
			return;
		if (p->in_data && strcmp(line, ".") == 0) {
			p->in_data = false;
			peer_step(p);
		} else if (p->in_data) {
			evbuffer_add_printf(p->data, "%s\n", line);
			if (p->early) {
				p->early = false;
				peer_step(p);
			}
		} else {
			evbuffer_add_printf(p->lines, "%s\n", line);
			if (sscanf(line, "BDAT %zu LAST", &chunk) == 1 &&
			    chunk > 0)
				p->bdat_left = chunk;
			else
				peer_step(p);
		}
		free(line);
	}
}

/* The relay closed its end, or TLS failed on ours. */
static void
peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct peer	*p = arg;

	UNUSED(bev);
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		peer_close(p);
}

/* The relay's done callback: count and keep the outcome. */
static void
outcome_done_cb(void *arg, enum relay_result result, const char *reason)
{
	struct outcome	*o = arg;

	o->calls++;
	o->result = result;
	str_copy(o->reason, reason, sizeof(o->reason));
}

/* The transcript callback: one "dir: line" per call. */
static void
transcript_cb(void *arg, const char *dir, const char *line)
{
	evbuffer_add_printf(arg, "%s: %s\n", dir, line);
}

/* A persistent timer, so EVLOOP_ONCE wakes up to check the clock. */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	UNUSED(fd);
	UNUSED(what);
	UNUSED(arg);
}

/* A message file with the given contents, at offset 0. */
static int
msg_fd(const char *body, size_t len)
{
	int	 fd;

	fd = memfd_create("message.eml", MFD_CLOEXEC);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(write_all(fd, body, len), 0);
	ck_assert_int_eq((int)lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* Fill in params and job for a session over fd (-1: connect). */
static void
setup_job(struct relay_params *p, struct relay_job *job,
    struct event_base *base, SSL_CTX *cctx, int fd, const char *body)
{
	memset(p, 0, sizeof(*p));
	p->base = base;
	p->ssl_ctx = cctx;
	p->host = HOST;
	p->port = "587";
	p->tls = RELAY_TLS_STARTTLS;
	p->helo = HELO;
	p->timeout = session_timeout;
	p->no_chunking = session_no_chunking;
	p->fd = fd;
	memset(job, 0, sizeof(*job));
	job->id = "TESTID";
	job->sender = SENDER;
	job->rcpt = (char *const *)(uintptr_t)rcpts;
	job->nrcpt = nitems(rcpts);
	job->msgfd = msg_fd(body, strlen(body));
	str_copy(job->cred.user, "user@example.org", sizeof(job->cred.user));
	str_copy(job->cred.pass, "secret", sizeof(job->cred.pass));
}

/* Loop until done was called and the peer saw the close, or time is up. */
static void
run_until_done(struct event_base *base, struct outcome *o, struct peer *pr)
{
	struct timeval	 tv = { 0, 20000 };
	struct event	*tick;
	time_t		 deadline;

	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &tv);
	deadline = time(NULL) + RUN_SECONDS;
	while ((o->calls == 0 || (pr != NULL && !pr->closed &&
	    !pr->stalled)) && time(NULL) < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(tick);
}

/*
 * Run one relay session against a peer playing steps.  implicit puts
 * TLS on both ends from the start.  Returns the peer (lines and data
 * still to be inspected) and fills o.
 */
static void
session(const struct peer_step *steps, size_t nsteps, const char *host,
    enum relay_tls_mode mode, const char *body, struct peer *pr,
    struct outcome *o)
{
	struct relay_params	 p;
	struct relay_job	 job;
	struct event_base	*base;
	struct relay		*r;
	SSL_CTX			*cctx;
	char			 err[256];
	int			 sv[2], msgdup;

	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	if (tls_cctx != NULL) {
		SSL_CTX_up_ref(tls_cctx);
		cctx = tls_cctx;
	} else
		cctx = tls_client_ctx(NULL, err, sizeof(err));
	ck_assert_msg(cctx != NULL, "client ctx: %s", err);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_nonblocking(sv[1]);

	memset(pr, 0, sizeof(*pr));
	memset(o, 0, sizeof(*o));
	pr->base = base;
	pr->steps = steps;
	pr->nsteps = nsteps;
	pr->lines = evbuffer_new();
	pr->data = evbuffer_new();
	if (tls_sctx != NULL) {
		SSL_CTX_up_ref(tls_sctx);
		pr->ctx = tls_sctx;
	}
	pr->bev = bufferevent_socket_new(base, sv[1],
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	bufferevent_setcb(pr->bev, peer_read_cb, NULL, peer_event_cb, pr);
	bufferevent_enable(pr->bev, EV_READ | EV_WRITE);
	if (mode == RELAY_TLS_IMPLICIT)
		peer_tls(pr);
	peer_step(pr);			/* the banner */

	setup_job(&p, &job, base, cctx, sv[0], body);
	job.outcome = &o->ro;
	o->ro.rcpts = o->rcpts;
	p.host = host;
	p.tls = mode;
	if (session_transcript != NULL) {
		p.transcript = transcript_cb;
		p.transcript_arg = session_transcript;
	}
	/* A second descriptor on the .eml tells how far the relay read. */
	msgdup = dup(job.msgfd);
	ck_assert_int_ne(msgdup, -1);
	r = relay_start(&p, &job, outcome_done_cb, o);
	ck_assert_ptr_nonnull(r);
	/* The relay took the descriptor and wiped the caller's credential. */
	ck_assert_int_eq(job.msgfd, -1);
	ck_assert_str_eq(job.cred.pass, "");
	run_until_done(base, o, pr);
	session_msg_read = lseek(msgdup, 0, SEEK_CUR);
	close(msgdup);
	ck_assert_int_eq(o->calls, 1);
	ck_assert_msg(pr->closed || pr->stalled,
	    "the relay left the connection open");
	if (pr->stalled && !pr->closed)
		peer_close(pr);
	SSL_CTX_free(cctx);
	if (pr->ctx != NULL)
		SSL_CTX_free(pr->ctx);
	event_base_free(base);
}

/* The peer's received command lines as a string (valid until freed). */
static const char *
peer_lines(struct peer *pr)
{
	evbuffer_add(pr->lines, "", 1);
	return (const char *)evbuffer_pullup(pr->lines, -1);
}

/* The DATA lines the peer received, as a string. */
static const char *
peer_data(struct peer *pr)
{
	evbuffer_add(pr->data, "", 1);
	return (const char *)evbuffer_pullup(pr->data, -1);
}

static int	 log_fd = -1;

/*
 * Send this test's log (debug level) to a memory file instead of stderr;
 * the test runs in its own forked child.  Returns the saved stderr.
 */
static int
log_capture_start(void)
{
	int	 saved;

	log_fd = memfd_create("log", MFD_CLOEXEC);
	ck_assert_int_ne(log_fd, -1);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ne(dup2(log_fd, STDERR_FILENO), -1);
	log_init(LOG_SINK_STDERR, 1, "check_relay");
	return saved;
}

/* Restore stderr and return the captured log (free it). */
static char *
log_capture_stop(int saved)
{
	char	*buf;
	ssize_t	 n;

	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	log_init(LOG_SINK_STDERR, 0, "check_relay");
	buf = xcalloc(1, 65536);
	n = pread(log_fd, buf, 65535, 0);
	ck_assert_int_gt(n, 0);
	close(log_fd);
	log_fd = -1;
	return buf;
}

/* The credentials appear in the log neither in clear nor encoded. */
static void
assert_no_secret(const char *log)
{
	ck_assert_msg(strstr(log, "secret") == NULL, "log: %s", log);
	ck_assert_msg(strstr(log, PASS_B64) == NULL, "log: %s", log);
	ck_assert_msg(strstr(log, AUTH_PLAIN_B64) == NULL, "log: %s", log);
}

/* Free what session() left for inspection. */
static void
peer_free(struct peer *pr)
{
	evbuffer_free(pr->lines);
	evbuffer_free(pr->data);
}

#define BANNER		"220 " HOST " ESMTP test\r\n"
#define EHLO_PLAIN	"250-" HOST " at your service\r\n" \
			"250-SIZE 35882577\r\n250-8BITMIME\r\n" \
			"250-STARTTLS\r\n250 PIPELINING\r\n"
#define EHLO_TLS	"250-" HOST " at your service\r\n" \
			"250-SIZE 35882577\r\n" \
			"250-AUTH LOGIN PLAIN XOAUTH2\r\n250 SMTPUTF8\r\n"
#define QUIT_OK		"221 2.0.0 closing connection\r\n"
#define BODY_SHORT	"Subject: t\n\nhello\n.\n..x\n"

/* ---- plaintext: the session must stop before any credential ---- */

START_TEST(test_relay_no_starttls_offered)
{
	static const struct peer_step steps[] = {
		{ BANNER, PEER_REPLY },
		{ "250-" HOST "\r\n250-SIZE 1000\r\n250 AUTH PLAIN LOGIN\r\n",
		    PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_str_eq(o.reason, "no STARTTLS offered by " HOST
	    "; refusing to send credentials in clear");
	ck_assert_str_eq(peer_lines(&pr), "EHLO " HELO "\nQUIT\n");
	peer_free(&pr);
}
END_TEST

START_TEST(test_relay_plaintext_injected_after_starttls)
{
	static const struct peer_step steps[] = {
		{ BANNER, PEER_REPLY },
		{ EHLO_PLAIN, PEER_REPLY },
		{ "220 2.0.0 Ready to start TLS\r\n"
		    "250-" HOST "\r\n250 AUTH PLAIN\r\n", PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_str_eq(o.reason, "plaintext injected after STARTTLS by "
	    HOST);
	/* Nothing at all was sent after STARTTLS, TLS or otherwise. */
	ck_assert_str_eq(peer_lines(&pr), "EHLO " HELO "\nSTARTTLS\n");
	peer_free(&pr);
}
END_TEST

START_TEST(test_relay_starttls_refused)
{
	static const struct peer_step steps[] = {
		{ BANNER, PEER_REPLY },
		{ EHLO_PLAIN, PEER_REPLY },
		{ "454 4.7.0 TLS not available due to temporary reason\r\n",
		    PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_str_eq(o.reason, "STARTTLS: 454 4.7.0 TLS not available "
	    "due to temporary reason");
	ck_assert_str_eq(peer_lines(&pr), "EHLO " HELO "\nSTARTTLS\nQUIT\n");
	peer_free(&pr);
}
END_TEST

START_TEST(test_relay_starttls_rejected_5xx_defers)
{
	static const struct peer_step steps[] = {
		{ BANNER, PEER_REPLY },
		{ EHLO_PLAIN, PEER_REPLY },
		{ "502 5.5.1 Unrecognized command.\r\n", PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_str_eq(o.reason, "STARTTLS: 502 5.5.1 Unrecognized command.");
	ck_assert_str_eq(peer_lines(&pr), "EHLO " HELO "\nSTARTTLS\nQUIT\n");
	peer_free(&pr);
}
END_TEST

/*
 * The --check-relay transcript shows a hostile server's lines with every
 * control or non-ASCII byte as '?' (review finding 12).
 */
START_TEST(test_relay_transcript_sanitised)
{
	static const struct peer_step steps[] = {
		{ "220 " HOST " \x1b]0;owned\x07 ESMTP\x1b[2J\x7f\x9b" "1m\r\n",
		    PEER_REPLY },
		{ "250-" HOST " \x1b[31mred\r\n250 AUTH PLAIN\x08\x08\r\n",
		    PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;
	const char	*t;
	size_t		 i, len;

	session_transcript = evbuffer_new();
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	evbuffer_add(session_transcript, "", 1);
	len = evbuffer_get_length(session_transcript) - 1;
	t = (const char *)evbuffer_pullup(session_transcript, -1);
	ck_assert_str_eq(t, "*: connected to " HOST ":587\n"
	    "S: 220 " HOST " ?]0;owned? ESMTP?[2J??1m\n"
	    "C: EHLO " HELO "\n"
	    "S: 250-" HOST " ?[31mred\n"
	    "S: 250 AUTH PLAIN??\n"
	    "C: QUIT\n"
	    "S: 221 2.0.0 closing connection\n");
	for (i = 0; i < len; i++)
		ck_assert_msg(t[i] == '\n' || (t[i] >= 0x20 && t[i] < 0x7f),
		    "byte %zu is 0x%02x", i, (unsigned char)t[i]);
	evbuffer_free(session_transcript);
	session_transcript = NULL;
	peer_free(&pr);
}
END_TEST

START_TEST(test_relay_trailing_data)
{
	static const struct peer_step steps[] = {
		{ BANNER "250 2.0.0 unsolicited\r\n", PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_str_eq(o.reason, "banner: trailing data after reply");
	ck_assert_str_eq(peer_lines(&pr), "");
	peer_free(&pr);
}
END_TEST

START_TEST(test_relay_malformed_reply)
{
	static const struct peer_step steps[] = {
		{ BANNER, PEER_REPLY },
		{ "250-" HOST "\r\n251 STARTTLS\r\n", PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_str_eq(o.reason, "EHLO " HELO ": malformed reply");
	ck_assert_str_eq(peer_lines(&pr), "EHLO " HELO "\n");
	peer_free(&pr);
}
END_TEST

START_TEST(test_relay_banner_timeout)
{
	static const struct peer_step steps[] = {
		{ NULL, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session_timeout = 1;
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_str_eq(o.reason, "timeout waiting for banner");
	ck_assert_str_eq(peer_lines(&pr), "");
	peer_free(&pr);
}
END_TEST

START_TEST(test_relay_cancel)
{
	struct relay_params	 p;
	struct relay_job	 job;
	struct event_base	*base;
	struct outcome		 o;
	struct relay		*r;
	SSL_CTX			*cctx;
	char			 buf[256];
	size_t			 len;
	ssize_t			 n;
	int			 sv[2], i;

	base = event_base_new();
	cctx = tls_client_ctx(NULL, buf, sizeof(buf));
	ck_assert_ptr_nonnull(cctx);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	evutil_make_socket_nonblocking(sv[0]);
	memset(&o, 0, sizeof(o));
	setup_job(&p, &job, base, cctx, sv[0], BODY_SHORT);
	ck_assert_int_eq(write_all(sv[1], BANNER, strlen(BANNER)), 0);
	r = relay_start(&p, &job, outcome_done_cb, &o);
	ck_assert_ptr_nonnull(r);
	for (i = 0; i < 50; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	relay_cancel(r);
	/* libevent closes the fd once its deferred callbacks have run. */
	for (i = 0; i < 10; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	/* The relay said EHLO, then closed its end; done was never called. */
	len = 0;
	while ((n = read(sv[1], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	ck_assert_int_eq((int)n, 0);
	ck_assert_str_eq(buf, "EHLO " HELO "\r\n");
	ck_assert_int_eq(o.calls, 0);
	close(sv[1]);
	SSL_CTX_free(cctx);
	event_base_free(base);
}
END_TEST

START_TEST(test_relay_connect_refused)
{
	struct relay_params	 p;
	struct relay_job	 job;
	struct sockaddr_in	 sin;
	struct event_base	*base;
	struct outcome		 o;
	socklen_t		 slen = sizeof(sin);
	SSL_CTX			*cctx;
	char			 port[16], want[64];
	int			 s;

	/* An ephemeral port that nobody listens on any more. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sin, &slen), 0);
	close(s);
	snprintf(port, sizeof(port), "%u", (unsigned)ntohs(sin.sin_port));

	base = event_base_new();
	cctx = tls_client_ctx(NULL, want, sizeof(want));
	ck_assert_ptr_nonnull(cctx);
	memset(&o, 0, sizeof(o));
	setup_job(&p, &job, base, cctx, -1, BODY_SHORT);
	p.host = "127.0.0.1";
	p.port = port;
	ck_assert_ptr_nonnull(relay_start(&p, &job, outcome_done_cb, &o));
	run_until_done(base, &o, NULL);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%s: ", port);
	ck_assert_msg(strncmp(o.reason, want, strlen(want)) == 0,
	    "reason: %s", o.reason);
	SSL_CTX_free(cctx);
	event_base_free(base);
}
END_TEST

/* The descriptor of this process whose local address is sin, or -1. */
static int
fd_bound_to(const struct sockaddr_in *sin)
{
	struct sockaddr_in	 a;
	socklen_t		 alen;
	int			 fd;

	for (fd = 0; fd < 1024; fd++) {
		alen = sizeof(a);
		if (getsockname(fd, (struct sockaddr *)&a, &alen) == 0 &&
		    a.sin_family == AF_INET && a.sin_port == sin->sin_port &&
		    a.sin_addr.s_addr == sin->sin_addr.s_addr)
			return fd;
	}
	return -1;
}

/*
 * Once connected over TCP the relay's socket has TCP_NODELAY: a command
 * never waits for the server's delayed ACK (issue 7: ~42 ms a session).
 * Nagle itself is not timed here; the socket option is what is checked.
 */
START_TEST(test_relay_tcp_nodelay)
{
	struct relay_params	 p;
	struct relay_job	 job;
	struct sockaddr_in	 sin, peer;
	struct timeval		 tv = { 0, 20000 };
	struct event_base	*base;
	struct event		*tick;
	struct outcome		 o;
	struct relay		*r;
	socklen_t		 slen = sizeof(sin);
	SSL_CTX			*cctx;
	char			 port[16], err[256];
	int			 ls, s, fd, one, i;

	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(ls, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(ls, 1), 0);
	ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&sin, &slen), 0);
	snprintf(port, sizeof(port), "%u", (unsigned)ntohs(sin.sin_port));

	base = event_base_new();
	cctx = tls_client_ctx(NULL, err, sizeof(err));
	ck_assert_ptr_nonnull(cctx);
	memset(&o, 0, sizeof(o));
	session_transcript = evbuffer_new();
	setup_job(&p, &job, base, cctx, -1, BODY_SHORT);
	p.host = "127.0.0.1";
	p.port = port;
	p.transcript = transcript_cb;
	p.transcript_arg = session_transcript;
	r = relay_start(&p, &job, outcome_done_cb, &o);
	ck_assert_ptr_nonnull(r);
	/* The relay says "* connected" once its connect completed. */
	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &tv);
	for (i = 0; i < 250 && evbuffer_get_length(session_transcript) == 0;
	    i++)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(tick);
	ck_assert_uint_gt(evbuffer_get_length(session_transcript), 0);
	ck_assert_int_eq(o.calls, 0);
	slen = sizeof(peer);
	s = accept(ls, (struct sockaddr *)&peer, &slen);
	ck_assert_int_ne(s, -1);
	/* The relay's end is the socket bound to the accepted peer address. */
	fd = fd_bound_to(&peer);
	ck_assert_int_ne(fd, -1);
	one = 0;
	slen = sizeof(one);
	ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    &slen), 0);
	ck_assert_int_eq(one, 1);
	relay_cancel(r);
	for (i = 0; i < 10; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	close(s);
	close(ls);
	evbuffer_free(session_transcript);
	session_transcript = NULL;
	SSL_CTX_free(cctx);
	event_base_free(base);
}
END_TEST

/* A nameserver that answers every query with NXDOMAIN. */
static void
nxdomain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sockaddr_storage	 from;
	socklen_t		 flen = sizeof(from);
	unsigned char		 buf[512];
	ssize_t			 n;

	UNUSED(what);
	UNUSED(arg);
	n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
	    &flen);
	if (n < 12)
		return;
	buf[2] |= 0x80;					/* QR: a response */
	buf[3] = (unsigned char)((buf[3] & 0x70) | 0x80 | 3); /* RA, NXDOMAIN */
	sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
}

START_TEST(test_relay_dns_failure)
{
	struct relay_params	 p;
	struct relay_job	 job;
	struct sockaddr_in	 sin;
	struct event_base	*base;
	struct evdns_base	*dns;
	struct event		*ns;
	struct outcome		 o;
	socklen_t		 slen = sizeof(sin);
	SSL_CTX			*cctx;
	char			 err[256];
	int			 s;

	base = event_base_new();
	s = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sin, &slen), 0);
	ns = event_new(base, s, EV_READ | EV_PERSIST, nxdomain_cb, NULL);
	event_add(ns, NULL);
	dns = evdns_base_new(base, 0);
	ck_assert_ptr_nonnull(dns);
	snprintf(err, sizeof(err), "127.0.0.1:%u",
	    (unsigned)ntohs(sin.sin_port));
	ck_assert_int_eq(evdns_base_nameserver_ip_add(dns, err), 0);
	cctx = tls_client_ctx(NULL, err, sizeof(err));
	ck_assert_ptr_nonnull(cctx);
	memset(&o, 0, sizeof(o));
	setup_job(&p, &job, base, cctx, -1, BODY_SHORT);
	p.dns = dns;
	p.host = "relay.invalid";
	ck_assert_ptr_nonnull(relay_start(&p, &job, outcome_done_cb, &o));
	run_until_done(base, &o, NULL);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_msg(strncmp(o.reason, "DNS lookup of relay.invalid failed: ",
	    36) == 0, "reason: %s", o.reason);
	ck_assert_msg(strstr(o.reason, evutil_gai_strerror(EVUTIL_EAI_NONAME))
	    != NULL, "reason: %s", o.reason);
	evdns_base_free(dns, 0);
	event_free(ns);
	close(s);
	SSL_CTX_free(cctx);
	event_base_free(base);
}
END_TEST

/* ---- TLS: a certificate for relay.test made for each test ---- */

/* Log at info to stderr under this suite's name (in the test's child). */
static void
log_setup(void)
{
	log_init(LOG_SINK_STDERR, 0, "check_relay");
}

/*
 * Make a self-signed certificate for relay.test in a fresh mkdtemp
 * directory, load it into a client and a server context, and remove the
 * directory at once, so that nothing is left behind even when the test
 * fails (a failed test's teardown does not run).
 */
static void
tls_setup(void)
{
	char	 dir[64], cert[128], key[128], cmd[512], err[256];
	int	 rv;

	str_copy(dir, "/tmp/check_relay.XXXXXX", sizeof(dir));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey ec "
	    "-pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
	    "-subj /CN=" HOST " -addext subjectAltName=DNS:" HOST
	    " -keyout %s -out %s >/dev/null 2>&1", key, cert);
	rv = system(cmd);
	if (rv == 0) {
		tls_cctx = tls_client_ctx(cert, err, sizeof(err));
		tls_sctx = tls_server_ctx(cert, key, TLS1_2_VERSION, 0, err,
		    sizeof(err));
	}
	unlink(cert);
	unlink(key);
	rmdir(dir);
	ck_assert_msg(rv == 0, "openssl req failed: %d", rv);
	ck_assert_msg(tls_cctx != NULL && tls_sctx != NULL, "ctx: %s", err);
}

/* Drop the test contexts. */
static void
tls_teardown(void)
{
	SSL_CTX_free(tls_cctx);
	SSL_CTX_free(tls_sctx);
	tls_cctx = tls_sctx = NULL;
}

/* A body of n lines, every seventh starting with '.', LF endings. */
static char *
body_make(int n)
{
	struct evbuffer	*b;
	char		*s;
	size_t		 len;
	int		 i;

	b = evbuffer_new();
	evbuffer_add_printf(b, "Subject: big\n\n");
	for (i = 0; i < n; i++)
		evbuffer_add_printf(b, "%sline %d of the message body\n",
		    i % 7 == 0 ? "." : "", i);
	evbuffer_add_printf(b, ".\n");
	len = evbuffer_get_length(b);
	s = xmalloc(len + 1);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

/* What the peer must receive between DATA and ".": dot-stuffed lines. */
static char *
body_stuffed(const char *body)
{
	struct evbuffer	*b;
	const char	*p, *nl;
	char		*s;
	size_t		 len;

	b = evbuffer_new();
	for (p = body; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		evbuffer_add_printf(b, "%s%.*s\n", *p == '.' ? "." : "",
		    (int)(nl - p), p);
	}
	len = evbuffer_get_length(b);
	s = xmalloc(len + 1);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

START_TEST(test_relay_tls_happy_path)
{
	static const struct peer_step steps[] = {
		{ BANNER, PEER_REPLY },
		{ EHLO_PLAIN, PEER_REPLY },
		{ "220 2.0.0 Ready to start TLS\r\n", PEER_STARTTLS },
		{ EHLO_TLS, PEER_REPLY },
		{ "235 2.7.0 Accepted\r\n", PEER_REPLY },
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "354  Go ahead\r\n", PEER_DATA },
		{ "250 2.0.0 OK  1757127926 x - gsmtp\r\n", PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;
	char		 want[1024];
	char		*body, *stuffed, *log;
	int		 saved;

	/* About 200 KB: several refills of the 64 KB output window. */
	body = body_make(6000);
	stuffed = body_stuffed(body);
	saved = log_capture_start();
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, body, &pr,
	    &o);
	log = log_capture_stop(saved);
	ck_assert_msg(strstr(log, "C: AUTH PLAIN ********") != NULL, "log: %s",
	    log);
	assert_no_secret(log);
	free(log);
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_str_eq(o.reason, "250 2.0.0 OK  1757127926 x - gsmtp");
	snprintf(want, sizeof(want), "EHLO " HELO "\nSTARTTLS\nEHLO " HELO
	    "\nAUTH PLAIN " AUTH_PLAIN_B64 "\nMAIL FROM:<" SENDER "> SIZE=%zu"
	    "\nRCPT TO:<b@example.org>\nRCPT TO:<c@example.org>\nDATA\nQUIT\n",
	    strlen(body));
	ck_assert_str_eq(peer_lines(&pr), want);
	ck_assert_str_eq(peer_data(&pr), stuffed);
	ck_assert_ptr_nonnull(strstr(stuffed, "\n..line 7 of"));
	peer_free(&pr);
	free(body);
	free(stuffed);
}
END_TEST

START_TEST(test_relay_tls_wrong_host)
{
	static const struct peer_step steps[] = {
		{ BANNER, PEER_REPLY },
		{ EHLO_PLAIN, PEER_REPLY },
		{ "220 2.0.0 Ready to start TLS\r\n", PEER_STARTTLS },
		{ EHLO_TLS, PEER_REPLY },
		{ "235 2.7.0 Accepted\r\n", PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), "other.test", RELAY_TLS_STARTTLS,
	    BODY_SHORT, &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_str_eq(o.reason, "TLS handshake with other.test failed: "
	    "certificate verify failed; hostname mismatch");
	ck_assert_str_eq(peer_lines(&pr), "EHLO " HELO "\nSTARTTLS\n");
	peer_free(&pr);
}
END_TEST

START_TEST(test_relay_tls_implicit_login)
{
	static const struct peer_step steps[] = {
		{ BANNER, PEER_REPLY },
		{ "250-" HOST "\r\n250 AUTH LOGIN XOAUTH2\r\n", PEER_REPLY },
		{ "334 VXNlcm5hbWU6\r\n", PEER_REPLY },
		{ "334 UGFzc3dvcmQ6\r\n", PEER_REPLY },
		{ "235 2.7.0 Accepted\r\n", PEER_REPLY },
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "251 2.1.5 OK, will forward\r\n", PEER_REPLY },
		{ "354 Go ahead\r\n", PEER_DATA },
		{ "250 2.0.0 OK 1465301474 y10sm963243lal.43 - gsmtp\r\n",
		    PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;
	char		*log;
	int		 saved;

	saved = log_capture_start();
	session(steps, nitems(steps), HOST, RELAY_TLS_IMPLICIT, "no newline",
	    &pr, &o);
	log = log_capture_stop(saved);
	ck_assert_msg(strstr(log, "C: AUTH LOGIN\n") != NULL &&
	    strstr(log, "C: AUTH LOGIN ********") != NULL, "log: %s", log);
	assert_no_secret(log);
	free(log);
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_str_eq(peer_lines(&pr), "EHLO " HELO "\nAUTH LOGIN\n"
	    USER_B64 "\n" PASS_B64 "\nMAIL FROM:<" SENDER ">\n"
	    "RCPT TO:<b@example.org>\nRCPT TO:<c@example.org>\nDATA\nQUIT\n");
	ck_assert_str_eq(peer_data(&pr), "no newline\n");
	peer_free(&pr);
}
END_TEST

START_TEST(test_relay_tls_no_usable_mechanism)
{
	static const struct peer_step steps[] = {
		{ BANNER, PEER_REPLY },
		{ EHLO_PLAIN, PEER_REPLY },
		{ "220 2.0.0 Ready to start TLS\r\n", PEER_STARTTLS },
		{ "250-" HOST "\r\n250 AUTH XOAUTH2 OAUTHBEARER\r\n",
		    PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_str_eq(o.reason, "no usable AUTH mechanism offered by "
	    HOST);
	ck_assert_str_eq(peer_lines(&pr), "EHLO " HELO "\nSTARTTLS\nEHLO "
	    HELO "\nQUIT\n");
	peer_free(&pr);
}
END_TEST

/* Steps up to and including AUTH over STARTTLS; callers append. */
#define STEPS_TO_AUTH \
		{ BANNER, PEER_REPLY }, \
		{ EHLO_PLAIN, PEER_REPLY }, \
		{ "220 2.0.0 Ready to start TLS\r\n", PEER_STARTTLS }, \
		{ EHLO_TLS, PEER_REPLY }, \
		{ "235 2.7.0 Accepted\r\n", PEER_REPLY }

/* A 5xx to one RCPT fails that recipient; the other is delivered. */
START_TEST(test_relay_rcpt_rejected)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "553-5.1.2 We weren't able to find the recipient domain.\r\n"
		    "553 5.1.2 or other punctuation after the recipient's "
		    "email address. x - gsmtp\r\n", PEER_REPLY },
		{ "354  Go ahead\r\n", PEER_DATA },
		{ "250 2.0.0 OK  1757127926 x - gsmtp\r\n", PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_int_eq(o.rcpts[0].status, RELAY_RCPT_DELIVERED);
	ck_assert_str_eq(o.rcpts[0].reply, "250 2.0.0 OK  1757127926 x - "
	    "gsmtp");
	ck_assert_int_eq(o.rcpts[1].status, RELAY_RCPT_FAILED);
	ck_assert_str_eq(o.rcpts[1].reply, "553 5.1.2 We weren't able to find "
	    "the recipient domain. 5.1.2 or other punctuation after the "
	    "recipient's email address. x - gsmtp");
	ck_assert_str_eq(peer_lines(&pr) + strlen(peer_lines(&pr)) -
	    strlen("RCPT TO:<b@example.org>\nRCPT TO:<c@example.org>\nDATA\n"
	    "QUIT\n"), "RCPT TO:<b@example.org>\nRCPT TO:<c@example.org>\n"
	    "DATA\nQUIT\n");
	peer_free(&pr);
}
END_TEST

/* Every RCPT refused: the message fails without DATA. */
START_TEST(test_relay_rcpt_all_rejected)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "553 5.1.3 not a valid address x - gsmtp\r\n", PEER_REPLY },
		{ "550 5.1.1 NoSuchUser x - gsmtp\r\n", PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_PERMFAIL);
	ck_assert_int_eq(o.ro.reaction, RELAY_REACT_RCPT_FAIL);
	ck_assert_int_eq(o.rcpts[0].status, RELAY_RCPT_FAILED);
	ck_assert_int_eq(o.rcpts[1].status, RELAY_RCPT_FAILED);
	ck_assert_ptr_null(strstr(peer_lines(&pr), "DATA"));
	ck_assert_str_eq(peer_data(&pr), "");
	peer_free(&pr);
}
END_TEST

/* 452 4.5.3: the rest go in a second transaction of the same session. */
START_TEST(test_relay_rcpt_split)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "452-4.5.3 Your message has too many recipients.\r\n"
		    "452 4.5.3  https://support.google.com/mail/?p="
		    "TooManyRecipientsError x - gsmtp\r\n", PEER_REPLY },
		{ "354  Go ahead\r\n", PEER_DATA },
		{ "250 2.0.0 OK  1 first - gsmtp\r\n", PEER_REPLY },
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "354  Go ahead\r\n", PEER_DATA },
		{ "250 2.0.0 OK  2 second - gsmtp\r\n", PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;
	const char	*lines;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_str_eq(o.rcpts[0].reply, "250 2.0.0 OK  1 first - gsmtp");
	ck_assert_str_eq(o.rcpts[1].reply, "250 2.0.0 OK  2 second - gsmtp");
	lines = strstr(peer_lines(&pr), "MAIL FROM:");
	ck_assert_ptr_nonnull(lines);
	ck_assert_str_eq(strchr(lines, '\n') + 1, "RCPT TO:<b@example.org>\n"
	    "RCPT TO:<c@example.org>\nDATA\nMAIL FROM:<" SENDER "> SIZE=24\n"
	    "RCPT TO:<c@example.org>\nDATA\nQUIT\n");
	ck_assert_str_eq(peer_data(&pr), "Subject: t\n\nhello\n..\n...x\n"
	    "Subject: t\n\nhello\n..\n...x\n");
	peer_free(&pr);
}
END_TEST

#define EHLO_PIPE	"250-" HOST "\r\n250-SIZE 35882577\r\n" \
			"250-AUTH PLAIN\r\n250 PIPELINING\r\n"
#define STEPS_TO_AUTH_PIPE \
		{ BANNER, PEER_REPLY }, \
		{ EHLO_PLAIN, PEER_REPLY }, \
		{ "220 2.0.0 Ready to start TLS\r\n", PEER_STARTTLS }, \
		{ EHLO_PIPE, PEER_REPLY }, \
		{ "235 2.7.0 Accepted\r\n", PEER_REPLY }

/* The transcript from the first "C: MAIL" on, NUL-terminated. */
static const char *
transcript_from_mail(void)
{
	const char	*t;

	evbuffer_add(session_transcript, "", 1);
	t = (const char *)evbuffer_pullup(session_transcript, -1);
	t = strstr(t, "C: MAIL");
	ck_assert_ptr_nonnull(t);
	return t;
}

/*
 * PIPELINING offered over TLS: MAIL, both RCPTs and DATA go out before
 * any reply is read; a refused recipient fails alone.
 */
START_TEST(test_relay_pipelined)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH_PIPE,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "553 5.1.3 not a valid address\r\n", PEER_REPLY },
		{ "354  Go ahead\r\n", PEER_DATA },
		{ "250 2.0.0 OK  1 x - gsmtp\r\n", PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session_transcript = evbuffer_new();
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_int_eq(o.rcpts[0].status, RELAY_RCPT_DELIVERED);
	ck_assert_int_eq(o.rcpts[1].status, RELAY_RCPT_FAILED);
	ck_assert_str_eq(o.rcpts[1].reply, "553 5.1.3 not a valid address");
	ck_assert_str_eq(transcript_from_mail(), "C: MAIL FROM:<" SENDER
	    "> SIZE=24\nC: RCPT TO:<b@example.org>\nC: RCPT TO:<c@example.org>"
	    "\nC: DATA\nS: 250 2.1.0 OK\nS: 250 2.1.5 OK\n"
	    "S: 553 5.1.3 not a valid address\nS: 354  Go ahead\n"
	    "S: 250 2.0.0 OK  1 x - gsmtp\nC: QUIT\n"
	    "S: 221 2.0.0 closing connection\n");
	ck_assert_str_eq(peer_data(&pr), "Subject: t\n\nhello\n..\n...x\n");
	evbuffer_free(session_transcript);
	session_transcript = NULL;
	peer_free(&pr);
}
END_TEST

#define EHLO_CHUNK	"250-" HOST "\r\n250-SIZE 35882577\r\n" \
			"250-AUTH PLAIN\r\n250-ENHANCEDSTATUSCODES\r\n" \
			"250-PIPELINING\r\n250 CHUNKING\r\n"
#define STEPS_TO_AUTH_CHUNK \
		{ BANNER, PEER_REPLY }, \
		{ EHLO_PLAIN, PEER_REPLY }, \
		{ "220 2.0.0 Ready to start TLS\r\n", PEER_STARTTLS }, \
		{ EHLO_CHUNK, PEER_REPLY }, \
		{ "235 2.7.0 Accepted\r\n", PEER_REPLY }
/* Ends with CRLF, as a queued message does; ".." stays as it is. */
#define BODY_CRLF	"Subject: t\r\n\r\nhello\r\n.\r\n..x\r\n"

/*
 * CHUNKING and PIPELINING offered: MAIL, both RCPTs and "BDAT 29 LAST"
 * with the message as it is (no dot-stuffing, no end marker) go out
 * before any reply is read, and BDAT's reply delivers.
 */
START_TEST(test_relay_bdat)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH_CHUNK,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "553 5.1.3 not a valid address\r\n", PEER_REPLY },
		{ "250 2.0.0 OK  1 x - gsmtp\r\n", PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session_transcript = evbuffer_new();
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_CRLF,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_int_eq(o.ro.uncertain, false);
	ck_assert_int_eq(o.rcpts[0].status, RELAY_RCPT_DELIVERED);
	ck_assert_str_eq(o.rcpts[0].reply, "250 2.0.0 OK  1 x - gsmtp");
	ck_assert_int_eq(o.rcpts[1].status, RELAY_RCPT_FAILED);
	ck_assert_str_eq(transcript_from_mail(), "C: MAIL FROM:<" SENDER
	    "> SIZE=29\nC: RCPT TO:<b@example.org>\nC: RCPT TO:<c@example.org>"
	    "\nC: BDAT 29 LAST\nS: 250 2.1.0 OK\nS: 250 2.1.5 OK\n"
	    "S: 553 5.1.3 not a valid address\n"
	    "S: 250 2.0.0 OK  1 x - gsmtp\nC: QUIT\n"
	    "S: 221 2.0.0 closing connection\n");
	ck_assert_str_eq(peer_data(&pr), BODY_CRLF);
	evbuffer_free(session_transcript);
	session_transcript = NULL;
	peer_free(&pr);
}
END_TEST

/*
 * A message BDAT cannot carry as it is (no CRLF at its end) or one over
 * RELAY_BDAT_MAX goes with DATA, dot-stuffed, though CHUNKING is offered.
 */
START_TEST(test_relay_bdat_not_used)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH_CHUNK,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "354  Go ahead\r\n", PEER_DATA },
		{ "250 2.0.0 OK  1 x - gsmtp\r\n", PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;
	char		*big;
	size_t		 len = 256 * 1024 + 2, i;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_ptr_null(strstr(peer_lines(&pr), "BDAT"));
	ck_assert_str_eq(peer_data(&pr), "Subject: t\n\nhello\n..\n...x\n");
	peer_free(&pr);

	/* Bare LFs inside, though it ends with CRLF: DATA makes them CRLF. */
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS,
	    "Subject: t\n\nhello\r\n", &pr, &o);
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_ptr_null(strstr(peer_lines(&pr), "BDAT"));
	ck_assert_str_eq(peer_data(&pr), "Subject: t\n\nhello\n");
	peer_free(&pr);

	/* chunking = no: a message BDAT could carry goes with DATA. */
	session_no_chunking = true;
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_CRLF,
	    &pr, &o);
	session_no_chunking = false;
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_ptr_null(strstr(peer_lines(&pr), "BDAT"));
	ck_assert_str_eq(peer_data(&pr), "Subject: t\n\nhello\n..\n...x\n");
	peer_free(&pr);

	big = xmalloc(len + 1);
	memset(big, 'x', len);
	for (i = 62; i + 1 < len; i += 64) {
		big[i] = '\r';
		big[i + 1] = '\n';
	}
	big[len - 2] = '\r';
	big[len - 1] = '\n';
	big[len] = '\0';
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, big, &pr, &o);
	ck_assert_msg(o.result == RELAY_OK, "reason: %s", o.reason);
	ck_assert_ptr_null(strstr(peer_lines(&pr), "BDAT"));
	ck_assert_ptr_nonnull(strstr(peer_lines(&pr), "DATA\n"));
	peer_free(&pr);
	free(big);
}
END_TEST

/* Pipelined BDAT, refusals: each is judged as DATA's would be. */
static const struct {
	const char	*mail, *rcpt1, *rcpt2, *bdat;
	enum relay_result result;
	const char	*reason;
} bdat_refused[] = {
	/* The message refused: its own reply decides. */
	{ "250 2.1.0 OK\r\n", "250 2.1.5 OK\r\n", "250 2.1.5 OK\r\n",
	    "552 5.3.4 Your message exceeded Google's message size limits.\r\n",
	    RELAY_PERMFAIL, "BDAT 29 LAST: 552 5.3.4 Your message exceeded "
	    "Google's message size limits." },
	{ "250 2.1.0 OK\r\n", "250 2.1.5 OK\r\n", "250 2.1.5 OK\r\n",
	    "451 4.3.0 Mail server temporarily rejected message.\r\n",
	    RELAY_TEMPFAIL, "BDAT 29 LAST: 451 4.3.0 Mail server temporarily "
	    "rejected message." },
	/* MAIL refused: BDAT's 503 is expected, MAIL's reply decides. */
	{ "555 5.5.2 Syntax error. x - gsmtp\r\n", "503 5.5.1 MAIL first.\r\n",
	    "503 5.5.1 MAIL first.\r\n", "503 5.5.1 MAIL first.\r\n",
	    RELAY_PERMFAIL, "MAIL FROM:<" SENDER "> SIZE=29: 555 5.5.2 Syntax "
	    "error. x - gsmtp" },
	/* Every recipient refused: theirs decide. */
	{ "250 2.1.0 OK\r\n", "550 5.1.1 no such user b\r\n",
	    "550 5.1.1 no such user c\r\n", "503 5.5.1 RCPT first.\r\n",
	    RELAY_PERMFAIL, "every recipient refused; last: 550 5.1.1 no "
	    "such user c" },
};

START_TEST(test_relay_bdat_refused)
{
	const struct peer_step steps[] = {
		STEPS_TO_AUTH_CHUNK,
		{ bdat_refused[_i].mail, PEER_REPLY },
		{ bdat_refused[_i].rcpt1, PEER_REPLY },
		{ bdat_refused[_i].rcpt2, PEER_REPLY },
		{ bdat_refused[_i].bdat, PEER_REPLY },
		{ "250 2.0.0 OK\r\n", PEER_REPLY },	/* RSET */
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_CRLF,
	    &pr, &o);
	ck_assert_int_eq(o.result, bdat_refused[_i].result);
	ck_assert_str_eq(o.reason, bdat_refused[_i].reason);
	ck_assert_int_eq(o.ro.uncertain, false);
	ck_assert_int_ne(o.rcpts[0].status, RELAY_RCPT_DELIVERED);
	ck_assert_ptr_nonnull(strstr(peer_lines(&pr), "BDAT 29 LAST\n"));
	peer_free(&pr);
}
END_TEST

/*
 * No more replies after some of the group's (the peer stops reading; the
 * relay gives up at its timeout, as on a lost connection): uncertain
 * while the server may have taken the message, not once a reply read
 * rules that out.
 */
static const struct {
	const char	*replies[3];	/* then the peer falls silent */
	bool		 uncertain;
	const char	*reason;
} bdat_lost[] = {
	{ { NULL }, true, "timeout waiting for reply to MAIL" },
	{ { "250 2.1.0 OK\r\n" }, true, "timeout waiting for reply to RCPT" },
	{ { "250 2.1.0 OK\r\n", "250 2.1.5 OK\r\n", "550 5.1.1 no\r\n" },
	    true, "timeout waiting for reply to BDAT" },
	{ { "555 5.5.2 Syntax error.\r\n" }, false,
	    "timeout waiting for reply to RCPT" },
	{ { "250 2.1.0 OK\r\n", "550 5.1.1 no\r\n", "550 5.1.1 no\r\n" },
	    false, "timeout waiting for reply to BDAT" },
};

START_TEST(test_relay_bdat_lost)
{
	struct peer_step steps[] = {
		STEPS_TO_AUTH_CHUNK,
		{ NULL, PEER_DATA_STALL },
		{ NULL, PEER_DATA_STALL },
		{ NULL, PEER_DATA_STALL },
	};
	struct peer	 pr;
	struct outcome	 o;
	size_t		 i, n = nitems(steps) - 3;

	for (i = 0; i < 3 && bdat_lost[_i].replies[i] != NULL; i++) {
		steps[n].reply = bdat_lost[_i].replies[i];
		steps[n++].action = i == 2 ? PEER_DATA_STALL : PEER_REPLY;
	}
	session_timeout = 1;
	session(steps, i == 3 ? n : n + 1, HOST, RELAY_TLS_STARTTLS,
	    BODY_CRLF, &pr, &o);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_str_eq(o.reason, bdat_lost[_i].reason);
	ck_assert_int_eq(o.ro.uncertain, bdat_lost[_i].uncertain);
	peer_free(&pr);
}
END_TEST

/* BDAT's reply began with 250: delivered, whatever broke after it. */
START_TEST(test_relay_bdat_accepted)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH_CHUNK,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "250-2.0.0 OK queued\r\nnot a reply\r\n", PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_CRLF,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_str_eq(o.reason, "250-2.0.0 OK queued");
	ck_assert_int_eq(o.rcpts[0].status, RELAY_RCPT_DELIVERED);
	ck_assert_int_eq(o.rcpts[1].status, RELAY_RCPT_DELIVERED);
	ck_assert_int_eq(o.ro.uncertain, false);
	peer_free(&pr);
}
END_TEST

/*
 * Without ENHANCEDSTATUSCODES a stray reply could not be told from the
 * final one, so BDAT is not put in the group: DATA.
 */
START_TEST(test_relay_bdat_needs_enhanced_codes)
{
	static const struct peer_step steps[] = {
		{ BANNER, PEER_REPLY },
		{ EHLO_PLAIN, PEER_REPLY },
		{ "220 2.0.0 Ready to start TLS\r\n", PEER_STARTTLS },
		{ "250-" HOST "\r\n250-AUTH PLAIN\r\n250-PIPELINING\r\n"
		    "250 CHUNKING\r\n", PEER_REPLY },
		{ "235 2.7.0 Accepted\r\n", PEER_REPLY },
		{ "250 OK\r\n", PEER_REPLY },
		{ "250 OK\r\n", PEER_REPLY },
		{ "250 OK\r\n", PEER_REPLY },
		{ "354 Go ahead\r\n", PEER_DATA },
		{ "250 OK\r\n", PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_CRLF,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_ptr_null(strstr(peer_lines(&pr), "BDAT"));
	peer_free(&pr);
}
END_TEST

/*
 * Replies out of step with BDAT in the group: one stray 2xx before
 * MAIL's would shift the verdict onto a RCPT's 250 and report a refused
 * message delivered.  The enhanced codes catch it: the session fails and
 * the entry is uncertain (review R1).  And a 2xx to BDAT after every
 * recipient was refused: the server may have it after all (R3).
 */
static const struct {
	const char	*mail, *rcpt1, *rcpt2, *bdat;
	const char	*reason;	/* prefix */
} bdat_step[] = {
	{ "250 2.0.0 stray\r\n250 2.1.0 OK\r\n", "250 2.1.5 OK b\r\n",
	    "250 2.1.5 OK c\r\n", "554 5.7.0 message refused\r\n",
	    "MAIL FROM:<" SENDER "> SIZE=29: reply out of step: 250 2.0.0 "
	    "stray" },
	{ "250 2.1.0 OK\r\n", "250 2.1.5 OK b\r\n",
	    "250 2.0.0 OK  1 x - gsmtp\r\n", "250 2.0.0 OK  2 y - gsmtp\r\n",
	    "RCPT TO:<c@example.org>: reply out of step: 250 2.0.0 OK" },
	{ "250 2.1.0 OK\r\n", "250 2.1.5 OK b\r\n", "250 2.1.5 OK c\r\n",
	    "250 2.1.5 OK d\r\n",
	    "BDAT 29 LAST: reply out of step: 250 2.1.5 OK d" },
	{ "451 4.3.0 later\r\n", "503 5.5.1 MAIL first.\r\n",
	    "503 5.5.1 MAIL first.\r\n", "250 2.0.0 OK  1 x - gsmtp\r\n",
	    "BDAT: 250 with no recipient accepted" },
};

START_TEST(test_relay_bdat_out_of_step)
{
	const struct peer_step steps[] = {
		STEPS_TO_AUTH_CHUNK,
		{ bdat_step[_i].mail, PEER_REPLY },
		{ bdat_step[_i].rcpt1, PEER_REPLY },
		{ bdat_step[_i].rcpt2, PEER_REPLY },
		{ bdat_step[_i].bdat, PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_CRLF,
	    &pr, &o);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_msg(strncmp(o.reason, bdat_step[_i].reason,
	    strlen(bdat_step[_i].reason)) == 0, "reason: %s", o.reason);
	ck_assert(o.ro.uncertain);
	ck_assert_int_ne(o.rcpts[0].status, RELAY_RCPT_DELIVERED);
	ck_assert_int_ne(o.rcpts[1].status, RELAY_RCPT_DELIVERED);
	peer_free(&pr);
}
END_TEST

/* A pipelined MAIL refused: the rest is read, MAIL's reply judged. */
START_TEST(test_relay_pipelined_mail_refused)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH_PIPE,
		{ "555 5.5.2 Syntax error. x - gsmtp\r\n", PEER_REPLY },
		{ "503 5.5.1 MAIL first.\r\n", PEER_REPLY },
		{ "503 5.5.1 MAIL first.\r\n", PEER_REPLY },
		{ "503 5.5.1 MAIL first.\r\n", PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_PERMFAIL);
	ck_assert_int_eq(o.ro.reaction, RELAY_REACT_MSG_FAIL);
	ck_assert_str_eq(o.reason, "MAIL FROM:<" SENDER "> SIZE=24: 555 "
	    "5.5.2 Syntax error. x - gsmtp");
	ck_assert_int_eq(o.rcpts[0].status, RELAY_RCPT_PENDING);
	ck_assert_str_eq(peer_data(&pr), "");
	peer_free(&pr);
}
END_TEST

/* 421 in the middle of a pipelined group: judged at once. */
START_TEST(test_relay_pipelined_421)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH_PIPE,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "421 4.7.0 Try again later, closing connection.\r\n",
		    PEER_REPLY },
		{ NULL, PEER_REPLY },		/* RCPT c: unanswered */
		{ NULL, PEER_REPLY },		/* DATA: unanswered */
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_int_eq(o.ro.reaction, RELAY_REACT_RECONNECT);
	ck_assert_str_eq(o.reason, "RCPT TO:<b@example.org>: 421 4.7.0 Try "
	    "again later, closing connection.");
	peer_free(&pr);
}
END_TEST

/* Larger than the server's SIZE: failed before MAIL, nothing sent. */
START_TEST(test_relay_size_exceeded)
{
	static const struct peer_step steps[] = {
		{ BANNER, PEER_REPLY },
		{ EHLO_PLAIN, PEER_REPLY },
		{ "220 2.0.0 Ready to start TLS\r\n", PEER_STARTTLS },
		{ "250-" HOST "\r\n250-SIZE 10\r\n250 AUTH PLAIN\r\n",
		    PEER_REPLY },
		{ "235 2.7.0 Accepted\r\n", PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_PERMFAIL);
	ck_assert_int_eq(o.ro.reaction, RELAY_REACT_MSG_FAIL);
	ck_assert_str_eq(o.reason, "message of 24 bytes is larger than "
	    HOST "'s SIZE 10");
	ck_assert_ptr_null(strstr(peer_lines(&pr), "MAIL"));
	ck_assert_ptr_null(strstr(peer_lines(&pr), "DATA"));
	peer_free(&pr);
}
END_TEST

START_TEST(test_relay_quota_at_data_defers)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "550 5.4.5 Daily user sending quota exceeded. x - gsmtp\r\n",
		    PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_str_eq(o.reason, "DATA: 550 5.4.5 Daily user sending quota "
	    "exceeded. x - gsmtp");
	ck_assert_str_eq(peer_data(&pr), "");
	peer_free(&pr);
}
END_TEST

START_TEST(test_relay_connection_lost_in_data)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "354 Go ahead\r\n", PEER_DATA },
		{ NULL, PEER_CLOSE },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_msg(strncmp(o.reason, "connection lost in DATA", 23) == 0,
	    "reason: %s", o.reason);
	ck_assert_str_eq(peer_data(&pr), "Subject: t\n\nhello\n..\n...x\n");
	/* The whole message and its dot went out, no reply came. */
	ck_assert(o.ro.uncertain);
	ck_assert_int_eq(o.ro.reaction, RELAY_REACT_RETRY);
	ck_assert(o.ro.authed);
	peer_free(&pr);
}
END_TEST

/* Lost in the middle of the body: the server cannot have the message. */
START_TEST(test_relay_connection_lost_mid_body_not_uncertain)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "354 Go ahead\r\n", PEER_DATA_EARLY },
		{ NULL, PEER_CLOSE },
	};
	struct peer	 pr;
	struct outcome	 o;
	char		*body;

	/* The relay writes into a closed socket: EPIPE, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	body = body_make(20000);
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, body, &pr,
	    &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_msg(strncmp(o.reason, "connection lost in DATA", 23) == 0,
	    "reason: %s", o.reason);
	ck_assert(!o.ro.uncertain);
	peer_free(&pr);
	free(body);
}
END_TEST

START_TEST(test_relay_failed_quit_still_delivered)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "354 Go ahead\r\n", PEER_DATA },
		{ "250 2.0.0 OK queued\r\n", PEER_REPLY },
		{ NULL, PEER_CLOSE },
	};
	struct peer	 pr;
	struct outcome	 o;

	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_str_eq(o.reason, "250 2.0.0 OK queued");
	peer_free(&pr);
}
END_TEST

/* Replies to the final dot, and what the session must make of them. */
static const struct {
	const char		*name;
	const char		*reply;
	enum relay_result	 result;
	const char		*reason;
	bool			 quit;		/* the relay said QUIT */
	int			 timeout;	/* session_timeout, seconds */
} eom_cases[] = {
	{ "250, then 421 in the same read",
	    "250 2.0.0 OK queued\r\n421 4.7.0 closing\r\n",
	    RELAY_OK, "250 2.0.0 OK queued", false, 5 },
	{ "250, then a malformed line",
	    "250 2.0.0 OK queued\r\n\x1b[2Jgarbage\r\n",
	    RELAY_OK, "250 2.0.0 OK queued", false, 5 },
	{ "250 continued by a malformed line",
	    "250-2.0.0 OK queued\r\nnot a reply\r\n",
	    RELAY_OK, "250-2.0.0 OK queued", false, 5 },
	{ "250 continued by mixed codes",
	    "250-2.0.0 OK queued\r\n451 4.3.0 oops\r\n",
	    RELAY_OK, "250-2.0.0 OK queued", false, 5 },
	{ "250 continued, then silence",
	    "250-2.0.0 OK queued\r\n",
	    RELAY_OK, "250-2.0.0 OK queued", false, 1 },
	{ "a 2xx other than 250",
	    "252 2.0.0 taken\r\n",
	    RELAY_OK, "252 2.0.0 taken", true, 5 },
	{ "451, then trailing data: still strict",
	    "451 4.3.0 try later\r\n250 2.0.0 OK\r\n",
	    RELAY_TEMPFAIL, "end of DATA: trailing data after reply", false,
	    5 },
	{ "garbage: nothing says delivered",
	    "OK, got it\r\n",
	    RELAY_TEMPFAIL, "end of DATA: malformed reply", false, 5 },
};

/*
 * A 2xx to the final dot means delivered whatever follows it: the
 * message is never sent twice (review finding 3).
 */
START_TEST(test_relay_eom_reply)
{
	struct peer_step steps[] = {
		STEPS_TO_AUTH,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "354 Go ahead\r\n", PEER_DATA },
		{ eom_cases[_i].reply, PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;
	const char	*lines, *name = eom_cases[_i].name;
	size_t		 len;

	session_timeout = eom_cases[_i].timeout;
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_msg(o.result == eom_cases[_i].result, "%s: result %d (%s)",
	    name, (int)o.result, o.reason);
	ck_assert_msg(strcmp(o.reason, eom_cases[_i].reason) == 0,
	    "%s: reason %s", name, o.reason);
	lines = peer_lines(&pr);
	len = strlen(lines);
	if (eom_cases[_i].quit)
		ck_assert_msg(len > 10 && strcmp(lines + len - 10,
		    "DATA\nQUIT\n") == 0, "%s: lines %s", name, lines);
	else
		ck_assert_msg(len > 5 && strcmp(lines + len - 5, "DATA\n") == 0,
		    "%s: lines %s", name, lines);
	ck_assert_str_eq(peer_data(&pr), "Subject: t\n\nhello\n..\n...x\n");
	peer_free(&pr);
}
END_TEST

/* A 250 to the final dot followed by an over-long line: delivered. */
START_TEST(test_relay_eom_reply_then_long_line)
{
	struct peer_step steps[] = {
		STEPS_TO_AUTH,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "354 Go ahead\r\n", PEER_DATA },
		{ NULL, PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;
	char		*reply;

	/* "250-" and 3000 bytes without an end: too long for any line. */
	reply = xcalloc(1, 4000);
	memcpy(reply, "250-2.0.0 OK queued\r\n250-", 26);
	memset(reply + 26, 'x', 3000);
	steps[nitems(steps) - 2].reply = reply;
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, BODY_SHORT,
	    &pr, &o);
	ck_assert_int_eq(o.result, RELAY_OK);
	ck_assert_str_eq(o.reason, "250-2.0.0 OK queued");
	peer_free(&pr);
	free(reply);
}
END_TEST

/*
 * A server that stops reading in the middle of the body: the relay holds
 * a bounded window of it (the filter's output and the plain output below
 * it), reads no further into the message, and times out.
 */
START_TEST(test_relay_body_bounded_below_tls)
{
	static const struct peer_step steps[] = {
		STEPS_TO_AUTH,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "354 Go ahead\r\n", PEER_DATA_STALL },
	};
	struct peer	 pr;
	struct outcome	 o;
	char		*body;

	/* About 4 MB; the socket pair holds a few hundred KB. */
	body = body_make(120000);
	session_timeout = 1;
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, body, &pr,
	    &o);
	ck_assert_int_eq(o.result, RELAY_TEMPFAIL);
	ck_assert_str_eq(o.reason, "timeout sending DATA");
	ck_assert_msg(session_msg_read > 0 &&
	    session_msg_read < (off_t)(1024 * 1024), "read %lld of %zu bytes",
	    (long long)session_msg_read, strlen(body));
	peer_free(&pr);
	free(body);
}
END_TEST

/* Replies that arrive while the body streams, and their verdicts. */
static const struct {
	const char		*reply;
	enum relay_result	 result;
} early_cases[] = {
	{ "552 5.3.4 Your message exceeded Google's message size limits.",
	    RELAY_PERMFAIL },
	{ "550 5.4.5 Daily user sending quota exceeded.", RELAY_TEMPFAIL },
	{ "451 4.3.0 Mail server temporarily rejected message.",
	    RELAY_TEMPFAIL },
	{ "250 2.0.0 OK", RELAY_TEMPFAIL },
	{ "354 Go ahead", RELAY_TEMPFAIL },
};

/*
 * A reply in the middle of the body stops it, and the relay hangs up
 * without QUIT: nothing of a command lands in the message (review
 * finding 7).
 */
START_TEST(test_relay_reply_during_body)
{
	struct peer_step steps[] = {
		STEPS_TO_AUTH,
		{ "250 2.1.0 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "250 2.1.5 OK\r\n", PEER_REPLY },
		{ "354 Go ahead\r\n", PEER_DATA_EARLY },
		{ NULL, PEER_REPLY },
		{ QUIT_OK, PEER_REPLY },
	};
	struct peer	 pr;
	struct outcome	 o;
	const char	*lines, *data;
	char		 reply[256], want[512];
	char		*body;
	size_t		 len;

	snprintf(reply, sizeof(reply), "%s\r\n", early_cases[_i].reply);
	steps[nitems(steps) - 2].reply = reply;
	/* About 2 MB: far more than the socket and the output window hold. */
	body = body_make(60000);
	session_timeout = 2;
	session(steps, nitems(steps), HOST, RELAY_TLS_STARTTLS, body, &pr,
	    &o);
	ck_assert_int_eq(o.result, early_cases[_i].result);
	snprintf(want, sizeof(want), "reply before end of DATA: %s",
	    early_cases[_i].reply);
	ck_assert_str_eq(o.reason, want);
	lines = peer_lines(&pr);
	len = strlen(lines);
	ck_assert_msg(len > 5 && strcmp(lines + len - 5, "DATA\n") == 0,
	    "lines: %s", lines);
	data = peer_data(&pr);
	ck_assert_ptr_null(strstr(data, "QUIT"));
	/* The relay stopped: most of the body was never sent. */
	ck_assert_uint_lt(strlen(data), strlen(body) / 2);
	peer_free(&pr);
	free(body);
}
END_TEST

Suite *
relay_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("relay");

	tc = tcase_create("plaintext");
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, log_setup, NULL);
	tcase_add_test(tc, test_relay_no_starttls_offered);
	tcase_add_test(tc, test_relay_plaintext_injected_after_starttls);
	tcase_add_test(tc, test_relay_starttls_refused);
	tcase_add_test(tc, test_relay_starttls_rejected_5xx_defers);
	tcase_add_test(tc, test_relay_trailing_data);
	tcase_add_test(tc, test_relay_transcript_sanitised);
	tcase_add_test(tc, test_relay_malformed_reply);
	tcase_add_test(tc, test_relay_banner_timeout);
	suite_add_tcase(s, tc);

	tc = tcase_create("connect");
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, log_setup, NULL);
	tcase_add_test(tc, test_relay_connect_refused);
	tcase_add_test(tc, test_relay_tcp_nodelay);
	tcase_add_test(tc, test_relay_cancel);
	tcase_add_test(tc, test_relay_dns_failure);
	suite_add_tcase(s, tc);

	tc = tcase_create("tls");
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, log_setup, NULL);
	tcase_add_checked_fixture(tc, tls_setup, tls_teardown);
	tcase_add_test(tc, test_relay_tls_happy_path);
	tcase_add_test(tc, test_relay_tls_wrong_host);
	tcase_add_test(tc, test_relay_tls_implicit_login);
	tcase_add_test(tc, test_relay_tls_no_usable_mechanism);
	tcase_add_test(tc, test_relay_rcpt_rejected);
	tcase_add_test(tc, test_relay_rcpt_all_rejected);
	tcase_add_test(tc, test_relay_rcpt_split);
	tcase_add_test(tc, test_relay_size_exceeded);
	tcase_add_test(tc, test_relay_pipelined);
	tcase_add_test(tc, test_relay_pipelined_mail_refused);
	tcase_add_test(tc, test_relay_pipelined_421);
	tcase_add_test(tc, test_relay_bdat);
	tcase_add_test(tc, test_relay_bdat_not_used);
	tcase_add_loop_test(tc, test_relay_bdat_refused, 0,
	    (int)nitems_ck(bdat_refused));
	tcase_add_loop_test(tc, test_relay_bdat_lost, 0,
	    (int)nitems_ck(bdat_lost));
	tcase_add_test(tc, test_relay_bdat_accepted);
	tcase_add_test(tc, test_relay_bdat_needs_enhanced_codes);
	tcase_add_loop_test(tc, test_relay_bdat_out_of_step, 0,
	    (int)nitems_ck(bdat_step));
	tcase_add_test(tc, test_relay_quota_at_data_defers);
	tcase_add_test(tc, test_relay_connection_lost_in_data);
	tcase_add_test(tc, test_relay_connection_lost_mid_body_not_uncertain);
	tcase_add_test(tc, test_relay_failed_quit_still_delivered);
	tcase_add_loop_test(tc, test_relay_eom_reply, 0, (int)nitems(eom_cases));
	tcase_add_test(tc, test_relay_eom_reply_then_long_line);
	tcase_add_loop_test(tc, test_relay_reply_during_body, 0,
	    (int)nitems(early_cases));
	tcase_add_test(tc, test_relay_body_bounded_below_tls);
	suite_add_tcase(s, tc);
	return s;
}
