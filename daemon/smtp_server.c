/*
 * smtp_server.c: one submission session on the Unix socket (STYLE 7.2).
 *
 * The state is the input mode: what the next line means.  Transaction
 * progress is data (helo_seen, authed, tx, tx->env.nrcpt, tx->size and the
 * sticky tx->error).  Commands go through a table of {verb, check,
 * proceed}: check enforces the sequence and syntax and replies itself on
 * refusal; proceed only does the work.
 *
 *	COMMAND ---AUTH---> AUTH_PLAIN | AUTH_XOAUTH2 |
 *	                    AUTH_LOGIN_USER -> AUTH_LOGIN_PASS
 *	   ^  |                         (235/5xx back to COMMAND)
 *	   |  +---DATA 354---> DATA ---"."---> COMMIT ---250/4xx---+
 *	   +-------------------------------------------------------+
 *	any state ---QUIT/timeout/refuse---> CLOSING (output drains, teardown)
 *
 * Replies are appended to the output in order, so PIPELINING is simply the
 * line loop handling every complete line already buffered; it stops in
 * COMMIT and CLOSING, and pauses while SMTPS_OUT_HIWAT bytes of replies
 * wait for a client that does not read them.  The end of data is recognised only as CRLF "."
 * CRLF, so a bare LF can never smuggle a second message.  250 after DATA
 * is sent only from the commit completion, after queue_tx_commit_async()
 * made the message durable on the queue's worker threads.  Reading stays
 * off meanwhile, so a session has one commit in flight and its messages
 * are answered in order.  A session torn down during COMMIT leaves its
 * struct smtps_commit behind: the completion finds it orphaned, frees it,
 * and hands a committed entry to queue_adopt().
 */
#include <sys/types.h>
#include <sys/time.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "base64.h"
#include "dotstuff.h"
#include "envelope.h"
#include "log.h"
#include "mailaddr.h"
#include "queue.h"
#include "sasl.h"
#include "smtp_proto.h"
#include "smtp_server.h"
#include "util.h"

#define SMTPS_READ_HIWAT	(64 * 1024)
/*
 * Replies waiting for a client that does not read: past this, the line
 * loop pauses (reading off) until they have drained.  One command adds
 * at most a few hundred bytes, so output stays under about 32 KB.
 */
#define SMTPS_OUT_HIWAT		(32 * 1024)
/*
 * An AUTH line may be up to 12288 octets (RFC 4954 section 4): base64 of
 * a user name and a password or a token of up to 2048 bytes fits.
 */
#define SMTPS_AUTH_LINE_MAX	12288
#define SMTPS_LINE_BUF		(SMTPS_AUTH_LINE_MAX + 1)

enum smtps_state {
	SMTPS_COMMAND,
	SMTPS_AUTH_PLAIN,
	SMTPS_AUTH_LOGIN_USER,
	SMTPS_AUTH_LOGIN_PASS,
	SMTPS_AUTH_XOAUTH2,
	SMTPS_DATA,
	SMTPS_COMMIT,
	SMTPS_CLOSING
};

/* What went wrong with the message text; the first problem sticks. */
enum smtps_txerr {
	SMTPS_TXERR_NONE,
	SMTPS_TXERR_BARE,	/* bare CR or LF: 554 5.6.0 */
	SMTPS_TXERR_NUL,	/* NUL, not 8bit text (RFC 6152): 554 5.6.0 */
	SMTPS_TXERR_LONG,	/* line over 998 + CRLF: 554 5.6.0 */
	SMTPS_TXERR_SIZE,	/* over max_size: 552 5.3.4 */
	SMTPS_TXERR_IO		/* queue write failed: 452 4.3.1 / 451 4.3.0 */
};

/* What the line reader produced. */
enum smtps_getline {
	SMTPS_LINE_NONE,	/* no complete line buffered */
	SMTPS_LINE_OK,		/* s->line holds one line */
	SMTPS_LINE_DROPPED	/* an over-long line was (partly) discarded */
};

/* A commit in flight; outlives the session if that is torn down first. */
struct smtps_commit {
	struct smtp_server	*s;		/* NULL: the session is gone */
	struct queue		*queue;		/* for an orphan's adoption */
	uid_t			 uid;
};

struct smtps_tx {
	struct queue_tx		*qtx;		/* from DATA on */
	struct envelope		 env;		/* sender and recipients */
	size_t			 size;		/* unstuffed bytes so far */
	enum smtps_txerr	 error;
	int			 errnum;	/* with SMTPS_TXERR_IO */
	bool			 crlf;		/* last data line ended in CRLF */
};

struct smtp_server {
	struct event_base		*base;
	struct bufferevent		*bev;
	struct event			*deadline;
	struct queue			*queue;
	struct smtp_server_params	 params;
	char				*hostname;	/* params' copy */
	char				*account;	/* params' copy, or "" */
	struct smtp_server_cb		 cb;
	void				*arg;
	uid_t				 uid;
	pid_t				 pid;
	enum smtps_state		 state;
	bool				 helo_seen;
	bool				 authed;
	bool				 discard;	/* dropping to the next LF */
	bool				 discard_cr;	/* last dropped byte was CR */
	bool				 in_loop;
	bool				 paused;	/* replies backed up */
	const char			*reason;	/* why CLOSING */
	struct sasl_cred		 cred;
	struct smtps_tx			*tx;
	struct smtps_commit		*commit;	/* in COMMIT */
	char				 addr[MAILADDR_MAX];
	char				 line[SMTPS_LINE_BUF];
};

struct smtps_cmd {
	enum smtp_verb	 verb;
	bool		(*check)(struct smtp_server *, const char *);
	void		(*proceed)(struct smtp_server *, const char *);
};

static void	smtp_server_reply(struct smtp_server *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	smtp_server_process(struct smtp_server *);
static void	smtp_server_resume(struct smtp_server *);
static void	smtp_server_close(struct smtp_server *, const char *);
static void	smtp_server_read_cb(struct bufferevent *, void *);
static void	smtp_server_write_cb(struct bufferevent *, void *);
static void	smtp_server_event_cb(struct bufferevent *, short, void *);
static void	smtp_server_deadline_cb(evutil_socket_t, short, void *);

static bool	smtp_server_check_helo(struct smtp_server *, const char *);
static void	smtp_server_proceed_helo(struct smtp_server *, const char *);
static void	smtp_server_proceed_ehlo(struct smtp_server *, const char *);
static bool	smtp_server_check_auth(struct smtp_server *, const char *);
static void	smtp_server_proceed_auth(struct smtp_server *, const char *);
static bool	smtp_server_check_mail(struct smtp_server *, const char *);
static void	smtp_server_proceed_mail(struct smtp_server *, const char *);
static bool	smtp_server_check_rcpt(struct smtp_server *, const char *);
static void	smtp_server_proceed_rcpt(struct smtp_server *, const char *);
static bool	smtp_server_check_data(struct smtp_server *, const char *);
static void	smtp_server_proceed_data(struct smtp_server *, const char *);
static void	smtp_server_proceed_rset(struct smtp_server *, const char *);
static void	smtp_server_proceed_noop(struct smtp_server *, const char *);
static void	smtp_server_proceed_quit(struct smtp_server *, const char *);
static bool	smtp_server_check_etrn(struct smtp_server *, const char *);
static void	smtp_server_proceed_etrn(struct smtp_server *, const char *);
static void	smtp_server_proceed_vrfy(struct smtp_server *, const char *);
static void	smtp_server_proceed_help(struct smtp_server *, const char *);
static void	smtp_server_proceed_notimpl(struct smtp_server *, const char *);

static const struct smtps_cmd smtp_server_cmds[] = {
	{ SMTP_VERB_HELO,	smtp_server_check_helo,	smtp_server_proceed_helo },
	{ SMTP_VERB_EHLO,	smtp_server_check_helo,	smtp_server_proceed_ehlo },
	{ SMTP_VERB_AUTH,	smtp_server_check_auth,	smtp_server_proceed_auth },
	{ SMTP_VERB_MAIL,	smtp_server_check_mail,	smtp_server_proceed_mail },
	{ SMTP_VERB_RCPT,	smtp_server_check_rcpt,	smtp_server_proceed_rcpt },
	{ SMTP_VERB_DATA,	smtp_server_check_data,	smtp_server_proceed_data },
	{ SMTP_VERB_RSET,	NULL,			smtp_server_proceed_rset },
	{ SMTP_VERB_NOOP,	NULL,			smtp_server_proceed_noop },
	{ SMTP_VERB_QUIT,	NULL,			smtp_server_proceed_quit },
	{ SMTP_VERB_ETRN,	smtp_server_check_etrn,	smtp_server_proceed_etrn },
	{ SMTP_VERB_VRFY,	NULL,			smtp_server_proceed_vrfy },
	{ SMTP_VERB_HELP,	NULL,			smtp_server_proceed_help },
	{ SMTP_VERB_STARTTLS,	NULL,		smtp_server_proceed_notimpl },
	{ SMTP_VERB_BDAT,	NULL,		smtp_server_proceed_notimpl }
};

static const char *const smtp_server_states[] = {
	[SMTPS_COMMAND] = "COMMAND",
	[SMTPS_AUTH_PLAIN] = "AUTH_PLAIN",
	[SMTPS_AUTH_LOGIN_USER] = "AUTH_LOGIN_USER",
	[SMTPS_AUTH_LOGIN_PASS] = "AUTH_LOGIN_PASS",
	[SMTPS_AUTH_XOAUTH2] = "AUTH_XOAUTH2",
	[SMTPS_DATA] = "DATA",
	[SMTPS_COMMIT] = "COMMIT",
	[SMTPS_CLOSING] = "CLOSING"
};

/* The state's name for logs. */
static const char *
smtp_server_state_name(enum smtps_state state)
{
	return smtp_server_states[state];
}

/* Take over bev, send the banner (or the refusal) and start reading. */
struct smtp_server *
smtp_server_new(struct event_base *base, struct bufferevent *bev,
    struct queue *queue, const struct smtp_server_params *params,
    const struct smtp_server_cb *cb, void *arg, uid_t uid, pid_t pid,
    int refuse)
{
	struct smtp_server	*s;
	struct timeval		 tv;

	s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->bev = bev;
	s->queue = queue;
	s->params = *params;
	s->hostname = xstrdup(params->hostname);
	s->params.hostname = s->hostname;
	s->account = xstrdup(params->account != NULL ? params->account : "");
	s->params.account = s->account;
	s->cb = *cb;
	s->arg = arg;
	s->uid = uid;
	s->pid = pid;
	s->state = SMTPS_COMMAND;
	if ((s->deadline = evtimer_new(base, smtp_server_deadline_cb, s)) ==
	    NULL)
		fatalx("smtp_server_new: evtimer_new failed");
	bufferevent_setcb(bev, smtp_server_read_cb, smtp_server_write_cb,
	    smtp_server_event_cb, s);
	bufferevent_setwatermark(bev, EV_READ, 0, SMTPS_READ_HIWAT);
	if (params->idle_timeout > 0) {
		tv.tv_sec = params->idle_timeout;
		tv.tv_usec = 0;
		bufferevent_set_timeouts(bev, &tv, &tv);
	}
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	log_debug("connected uid=%u pid=%ld", (unsigned)uid, (long)pid);
	if (refuse) {
		smtp_server_reply(s,
		    "421 4.3.2 Too many connections, try again later");
		s->state = SMTPS_CLOSING;
		s->reason = "refused";
		bufferevent_disable(bev, EV_READ);
		return s;
	}
	smtp_server_reply(s, "220 %s ESMTP relayq", s->params.hostname);
	return s;
}

/* Drop the transaction and anything it wrote into tmp/. */
static void
smtp_server_tx_free(struct smtp_server *s)
{
	if (s->tx == NULL)
		return;
	queue_tx_abort(s->tx->qtx);
	envelope_fini(&s->tx->env);
	free(s->tx);
	s->tx = NULL;
}

/*
 * Free the session at once: abort the tx, no callback.  A commit in
 * flight is left to finish on its own (smtp_server_commit_cb).
 */
void
smtp_server_free(struct smtp_server *s)
{
	if (s == NULL)
		return;
	if (s->commit != NULL) {
		s->commit->s = NULL;
		s->commit = NULL;
	}
	smtp_server_tx_free(s);
	if (s->deadline != NULL)
		event_free(s->deadline);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	sasl_cred_clear(&s->cred);
	secure_zero(s->line, sizeof(s->line));
	free(s->hostname);
	free(s->account);
	free(s);
}

/* The peer's uid, from SO_PEERCRED. */
uid_t
smtp_server_uid(const struct smtp_server *s)
{
	return s->uid;
}

/* The one teardown: log, tell the owner while s is valid, then free. */
static void
smtp_server_close(struct smtp_server *s, const char *reason)
{
	log_debug("disconnected uid=%u pid=%ld state=%s reason=%s",
	    (unsigned)s->uid, (long)s->pid, smtp_server_state_name(s->state),
	    reason);
	if (s->cb.closed != NULL)
		s->cb.closed(s->arg, s);
	smtp_server_free(s);
}

/* Queue one reply line (CRLF added). */
static void
smtp_server_reply(struct smtp_server *s, const char *fmt, ...)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	va_list		 ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/* Say goodbye: stop reading and tear down once the output has drained. */
static void
smtp_server_closing(struct smtp_server *s, const char *reason)
{
	s->state = SMTPS_CLOSING;
	s->reason = reason;
	bufferevent_disable(s->bev, EV_READ);
	evtimer_del(s->deadline);
}

/* The idle or per-command deadline passed: 421 and close. */
static void
smtp_server_timeout(struct smtp_server *s)
{
	smtp_server_reply(s, "421 4.4.2 %s Error: timeout exceeded",
	    s->params.hostname);
	smtp_server_closing(s, "timeout");
}

/* ---- libevent callbacks ---- */

/* Input arrived: run the line loop. */
static void
smtp_server_read_cb(struct bufferevent *bev, void *arg)
{
	UNUSED(bev);
	smtp_server_process(arg);
}

/*
 * Output drained: in CLOSING, that is the end of the session; when the
 * line loop paused for it, read on.
 */
static void
smtp_server_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_server	*s = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (s->state == SMTPS_CLOSING)
		smtp_server_close(s, s->reason);
	else if (s->paused)
		smtp_server_resume(s);
}

/* EOF, error or an idle timeout on the socket. */
static void
smtp_server_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_server	*s = arg;

	UNUSED(bev);
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    s->state != SMTPS_CLOSING) {
		smtp_server_timeout(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		smtp_server_close(s, "write timeout");
	else if (what & BEV_EVENT_EOF)
		smtp_server_close(s, "eof");
	else
		smtp_server_close(s, "error");
}

/* A line took too long to arrive (a byte-a-second trickle). */
static void
smtp_server_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server	*s = arg;

	UNUSED(fd);
	UNUSED(what);
	if (s->state != SMTPS_CLOSING && s->state != SMTPS_COMMIT &&
	    !s->paused)
		smtp_server_timeout(s);
}

/* ---- line reading ---- */

/* True in the states where a line means something. */
static bool
smtp_server_reading(const struct smtp_server *s)
{
	return s->state != SMTPS_COMMIT && s->state != SMTPS_CLOSING;
}

/* The longest acceptable line, terminator included, in this state. */
static size_t
smtp_server_line_max(const struct smtp_server *s, struct evbuffer *in)
{
	char	 verb[5];

	switch (s->state) {
	case SMTPS_DATA:
		return SMTP_TEXT_MAX;
	case SMTPS_AUTH_PLAIN:
	case SMTPS_AUTH_LOGIN_USER:
	case SMTPS_AUTH_LOGIN_PASS:
	case SMTPS_AUTH_XOAUTH2:
		return SMTPS_AUTH_LINE_MAX;
	default:
		if (evbuffer_copyout(in, verb, sizeof(verb)) ==
		    (ev_ssize_t)sizeof(verb) && strncasecmp(verb, "AUTH ", 5) == 0)
			return SMTPS_AUTH_LINE_MAX;
		return SMTP_CMD_MAX;
	}
}

/* The byte at pos in the buffer, or -1. */
static int
smtp_server_byte_at(struct evbuffer *in, ev_ssize_t pos)
{
	struct evbuffer_ptr	 p;
	unsigned char		 c;

	if (pos < 0 || evbuffer_ptr_set(in, &p, (size_t)pos,
	    EVBUFFER_PTR_SET) == -1 ||
	    evbuffer_copyout_from(in, &p, &c, 1) != 1)
		return -1;
	return c;
}

/* An over-long line started: answer it now (not in DATA), then drop it. */
static void
smtp_server_too_long(struct smtp_server *s)
{
	switch (s->state) {
	case SMTPS_DATA:
		if (s->tx->error == SMTPS_TXERR_NONE)
			s->tx->error = SMTPS_TXERR_LONG;
		break;
	case SMTPS_AUTH_PLAIN:
	case SMTPS_AUTH_LOGIN_USER:
	case SMTPS_AUTH_LOGIN_PASS:
	case SMTPS_AUTH_XOAUTH2:
		sasl_cred_clear(&s->cred);
		s->state = SMTPS_COMMAND;
		smtp_server_reply(s, "500 5.5.2 Line too long");
		break;
	default:
		smtp_server_reply(s, "500 5.5.2 Line too long");
		break;
	}
}

/*
 * Drop n bytes of input.  Outside DATA they may carry a secret (an AUTH
 * line or response), so they are first overwritten where libevent holds
 * them: a drained chunk is freed or reused without being wiped.
 */
static void
smtp_server_drain(struct smtp_server *s, struct evbuffer *in, size_t n)
{
	struct evbuffer_iovec	 v[4];
	struct evbuffer_ptr	 p;
	size_t			 done = 0, k;
	int			 i, nv;

	while (s->state != SMTPS_DATA && done < n) {
		if (evbuffer_ptr_set(in, &p, done, EVBUFFER_PTR_SET) == -1 ||
		    (nv = evbuffer_peek(in, (ev_ssize_t)(n - done), &p, v,
		    (int)nitems(v))) <= 0)
			break;
		for (i = 0; i < nv && i < (int)nitems(v) && done < n; i++) {
			k = v[i].iov_len < n - done ? v[i].iov_len : n - done;
			secure_zero(v[i].iov_base, k);
			done += k;
		}
	}
	evbuffer_drain(in, n);
}

/*
 * Discard mode: drop input up to and including the next LF without ever
 * buffering the line.  Afterwards a data line's terminator is known.
 */
static enum smtps_getline
smtp_server_discard(struct smtp_server *s, struct evbuffer *in,
    ev_ssize_t lf)
{
	size_t	 len = evbuffer_get_length(in);
	int	 c;

	if (lf < 0) {
		if (len > 0)
			s->discard_cr = smtp_server_byte_at(in,
			    (ev_ssize_t)len - 1) == '\r';
		smtp_server_drain(s, in, len);
		return SMTPS_LINE_NONE;
	}
	c = lf > 0 ? smtp_server_byte_at(in, lf - 1) : (s->discard_cr ? '\r' :
	    -1);
	smtp_server_drain(s, in, (size_t)lf + 1);
	s->discard = false;
	if (s->state == SMTPS_DATA)
		s->tx->crlf = c == '\r';
	return SMTPS_LINE_DROPPED;
}

/*
 * Take the next complete line into s->line (NUL-terminated, terminator
 * removed; *crlf says whether it was CRLF or a bare LF).  Over-long lines
 * are answered and discarded here.
 */
static enum smtps_getline
smtp_server_getline(struct smtp_server *s, size_t *len, bool *crlf)
{
	struct evbuffer		*in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr	 p;
	size_t			 max, total;

	p = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (s->discard)
		return smtp_server_discard(s, in, p.pos);
	max = smtp_server_line_max(s, in);
	if (p.pos < 0) {
		if (evbuffer_get_length(in) < max)
			return SMTPS_LINE_NONE;
		smtp_server_too_long(s);
		s->discard = true;
		s->discard_cr = false;
		smtp_server_discard(s, in, -1);
		return SMTPS_LINE_DROPPED;
	}
	total = (size_t)p.pos + 1;
	if (total > max) {
		smtp_server_too_long(s);
		s->discard = true;
		s->discard_cr = false;
		return smtp_server_discard(s, in, p.pos);
	}
	evbuffer_copyout(in, s->line, total);
	smtp_server_drain(s, in, total);
	*crlf = total >= 2 && s->line[total - 2] == '\r';
	*len = total - (*crlf ? 2 : 1);
	s->line[*len] = '\0';
	return SMTPS_LINE_OK;
}

/* True when a command line has only 7-bit, non-NUL, non-CR bytes. */
static bool
smtp_server_line_clean(const char *line, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (line[i] == '\0' || line[i] == '\r' ||
		    (unsigned char)line[i] > 0x7f)
			return false;
	}
	return true;
}

/* ---- commands ---- */

/* Dispatch one command line through the table. */
static void
smtp_server_command(struct smtp_server *s, const char *line)
{
	struct smtp_cmd	 cmd;
	size_t		 i;

	if (smtp_cmd_parse(line, &cmd) == -1) {
		smtp_server_reply(s, "501 5.5.4 Syntax: %s",
		    cmd.verb == SMTP_VERB_MAIL ? "MAIL FROM:<address>" :
		    "RCPT TO:<address>");
		return;
	}
	for (i = 0; i < nitems(smtp_server_cmds); i++) {
		if (smtp_server_cmds[i].verb != cmd.verb)
			continue;
		if (smtp_server_cmds[i].check == NULL ||
		    smtp_server_cmds[i].check(s, cmd.arg))
			smtp_server_cmds[i].proceed(s, cmd.arg);
		return;
	}
	smtp_server_reply(s, "500 5.5.2 Command unrecognized");
}

/* EHLO/HELO need a name. */
static bool
smtp_server_check_helo(struct smtp_server *s, const char *arg)
{
	if (arg[0] == '\0') {
		smtp_server_reply(s, "501 5.5.4 Syntax: EHLO hostname");
		return false;
	}
	return true;
}

/* HELO: a single 250; like RSET it ends any transaction. */
static void
smtp_server_proceed_helo(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	smtp_server_tx_free(s);
	s->helo_seen = true;
	smtp_server_reply(s, "250 %s", s->params.hostname);
}

/* EHLO: the greeting and the extensions. */
static void
smtp_server_proceed_ehlo(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	smtp_server_tx_free(s);
	s->helo_seen = true;
	smtp_server_reply(s, "250-%s", s->params.hostname);
	smtp_server_reply(s, "250-PIPELINING");
	smtp_server_reply(s, "250-8BITMIME");
	smtp_server_reply(s, "250-SIZE %zu", s->params.max_size);
	smtp_server_reply(s, "250-ENHANCEDSTATUSCODES");
	smtp_server_reply(s, "250-AUTH PLAIN LOGIN XOAUTH2");
	smtp_server_reply(s, "250 ETRN");
}

/* Split "MECH [initial-response]"; mech is copied into s->addr. */
static const char *
smtp_server_auth_split(struct smtp_server *s, const char *arg)
{
	size_t	 n;

	n = strcspn(arg, " ");
	if (n >= sizeof(s->addr))
		n = sizeof(s->addr) - 1;
	memcpy(s->addr, arg, n);
	s->addr[n] = '\0';
	arg += strcspn(arg, " ");
	while (*arg == ' ')
		arg++;
	return arg;
}

/* AUTH: after EHLO, once, outside a transaction, PLAIN, LOGIN or XOAUTH2. */
static bool
smtp_server_check_auth(struct smtp_server *s, const char *arg)
{
	if (!s->helo_seen)
		smtp_server_reply(s, "503 5.5.1 Error: send EHLO first");
	else if (s->authed)
		smtp_server_reply(s, "503 5.5.1 Error: already authenticated");
	else if (s->tx != NULL)
		smtp_server_reply(s,
		    "503 5.5.1 Error: AUTH not allowed during a transaction");
	else {
		smtp_server_auth_split(s, arg);
		if (s->addr[0] == '\0')
			smtp_server_reply(s,
			    "501 5.5.4 Syntax: AUTH mechanism [response]");
		else if (strcasecmp(s->addr, "PLAIN") != 0 &&
		    strcasecmp(s->addr, "LOGIN") != 0 &&
		    strcasecmp(s->addr, "XOAUTH2") != 0)
			smtp_server_reply(s,
			    "504 5.5.4 Unrecognized authentication type");
		else
			return true;
	}
	return false;
}

/* True when b64 is valid base64 (decoded into a wiped scratch buffer). */
static bool
smtp_server_b64_ok(const char *b64)
{
	char	 buf[SMTPS_AUTH_LINE_MAX];
	long	 n;

	n = base64_decode(b64, strlen(b64), buf, sizeof(buf));
	secure_zero(buf, sizeof(buf));
	return n >= 0;
}

/* The credentials are complete: keep them for the relay. */
static void
smtp_server_auth_done(struct smtp_server *s, const char *mech)
{
	s->state = SMTPS_COMMAND;
	s->authed = true;
	log_debug("uid=%u AUTH %s ******** accepted", (unsigned)s->uid, mech);
	smtp_server_reply(s, "235 2.7.0 Authentication accepted");
}

/* Refuse an AUTH response and go back to commands. */
static void
smtp_server_auth_fail(struct smtp_server *s, const char *reply)
{
	sasl_cred_clear(&s->cred);
	s->state = SMTPS_COMMAND;
	log_debug("uid=%u AUTH ******** refused: %s", (unsigned)s->uid, reply);
	smtp_server_reply(s, "%s", reply);
}

/* The PLAIN response, from the AUTH line or its continuation. */
static void
smtp_server_auth_plain(struct smtp_server *s, const char *b64)
{
	const char	*reason;

	if (!smtp_server_b64_ok(b64))
		smtp_server_auth_fail(s, "501 5.5.2 Cannot decode response");
	else if (sasl_plain_decode(b64, &s->cred, &reason) == -1)
		smtp_server_auth_fail(s,
		    "535 5.7.8 Authentication credentials invalid");
	else
		smtp_server_auth_done(s, "PLAIN");
}

/*
 * The XOAUTH2 response ("user=U^Aauth=Bearer T^A^A" in base64), from the
 * AUTH line or its continuation: the token is kept as the secret, marked
 * XOAUTH2.  A response that is not that form is a syntax error (501).
 */
static void
smtp_server_auth_xoauth2(struct smtp_server *s, const char *b64)
{
	const char	*reason;

	if (!smtp_server_b64_ok(b64))
		smtp_server_auth_fail(s, "501 5.5.2 Cannot decode response");
	else if (sasl_xoauth2_decode(b64, &s->cred, &reason) == -1)
		smtp_server_auth_fail(s, "501 5.5.2 Malformed XOAUTH2 response");
	else
		smtp_server_auth_done(s, "XOAUTH2");
}

/* One LOGIN field (user or password) into out. */
static int
smtp_server_auth_field(struct smtp_server *s, const char *b64, char *out,
    size_t outlen)
{
	if (!smtp_server_b64_ok(b64)) {
		smtp_server_auth_fail(s, "501 5.5.2 Cannot decode response");
		return -1;
	}
	if (sasl_login_decode(b64, out, outlen) == -1) {
		smtp_server_auth_fail(s,
		    "535 5.7.8 Authentication credentials invalid");
		return -1;
	}
	return 0;
}

/* The LOGIN user name; ask for the password. */
static void
smtp_server_auth_login_user(struct smtp_server *s, const char *b64)
{
	if (smtp_server_auth_field(s, b64, s->cred.user,
	    sizeof(s->cred.user)) == -1)
		return;
	s->state = SMTPS_AUTH_LOGIN_PASS;
	smtp_server_reply(s, "334 UGFzc3dvcmQ6");
}

/* Start PLAIN, LOGIN or XOAUTH2, with or without an initial response. */
static void
smtp_server_proceed_auth(struct smtp_server *s, const char *arg)
{
	const char	*ir;

	ir = smtp_server_auth_split(s, arg);
	log_debug("uid=%u AUTH %s%s", (unsigned)s->uid, s->addr,
	    ir[0] != '\0' ? " ********" : "");
	if (strcasecmp(s->addr, "PLAIN") == 0) {
		if (ir[0] != '\0')
			smtp_server_auth_plain(s, ir);
		else {
			s->state = SMTPS_AUTH_PLAIN;
			smtp_server_reply(s, "334 ");
		}
	} else if (strcasecmp(s->addr, "XOAUTH2") == 0) {
		if (ir[0] != '\0')
			smtp_server_auth_xoauth2(s, ir);
		else {
			s->state = SMTPS_AUTH_XOAUTH2;
			smtp_server_reply(s, "334 ");
		}
	} else if (ir[0] != '\0')
		smtp_server_auth_login_user(s, ir);
	else {
		s->state = SMTPS_AUTH_LOGIN_USER;
		smtp_server_reply(s, "334 VXNlcm5hbWU6");
	}
}

/* A line in one of the AUTH continuation states. */
static void
smtp_server_auth_line(struct smtp_server *s, const char *line)
{
	if (strcmp(line, "*") == 0) {
		smtp_server_auth_fail(s, "501 5.7.0 Authentication aborted");
		return;
	}
	switch (s->state) {
	case SMTPS_AUTH_PLAIN:
		smtp_server_auth_plain(s, line);
		break;
	case SMTPS_AUTH_XOAUTH2:
		smtp_server_auth_xoauth2(s, line);
		break;
	case SMTPS_AUTH_LOGIN_USER:
		smtp_server_auth_login_user(s, line);
		break;
	default:
		if (smtp_server_auth_field(s, line, s->cred.pass,
		    sizeof(s->cred.pass)) == 0)
			smtp_server_auth_done(s, "LOGIN");
		break;
	}
}

/* Check the SIZE and BODY parameters of MAIL. */
static bool
smtp_server_check_mail_params(struct smtp_server *s, const char *params)
{
	static const char *const known[] = { "SIZE", "BODY", NULL };
	char			 val[32];
	unsigned long long	 size;
	int			 r;

	if (!smtp_params_known(params, known)) {
		smtp_server_reply(s, "555 5.5.4 Unsupported parameter");
		return false;
	}
	if ((r = smtp_param_get(params, "SIZE", val, sizeof(val))) == -1 ||
	    (r == 1 && parse_uint(val, 0, ULLONG_MAX, &size) == -1)) {
		smtp_server_reply(s, "501 5.5.4 Syntax error in SIZE parameter");
		return false;
	}
	if (r == 1 && size > s->params.max_size) {
		smtp_server_reply(s, "552 5.3.4 Message size exceeds fixed "
		    "maximum message size");
		return false;
	}
	r = smtp_param_get(params, "BODY", val, sizeof(val));
	if (r == -1 || (r == 1 && strcasecmp(val, "7BIT") != 0 &&
	    strcasecmp(val, "8BITMIME") != 0)) {
		smtp_server_reply(s, "501 5.5.4 Unsupported BODY type");
		return false;
	}
	return true;
}

/* MAIL: sequence, credentials, path syntax, then parameters. */
static bool
smtp_server_check_mail(struct smtp_server *s, const char *arg)
{
	const char	*rest, *reason;

	if (!s->helo_seen)
		smtp_server_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
	else if (!s->authed && s->account[0] == '\0')
		smtp_server_reply(s, "530 5.7.0 Authentication required");
	else if (s->tx != NULL)
		smtp_server_reply(s, "503 5.5.1 Error: nested MAIL command");
	else if (arg[strspn(arg, " ")] != '<')
		smtp_server_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
	else if (mailaddr_parse_path(arg, true, s->addr, sizeof(s->addr),
	    &rest, &reason) == -1)
		smtp_server_reply(s, "553 5.1.7 Bad sender address syntax");
	else
		return smtp_server_check_mail_params(s, rest);
	return false;
}

/* Open the transaction with the sender check_mail parsed. */
static void
smtp_server_proceed_mail(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	s->tx = xcalloc(1, sizeof(*s->tx));
	envelope_init(&s->tx->env);
	str_copy(s->tx->env.sender, s->addr, sizeof(s->tx->env.sender));
	if (!s->authed)
		str_copy(s->tx->env.account, s->account,
		    sizeof(s->tx->env.account));
	smtp_server_reply(s, "250 2.1.0 Ok");
}

/* RCPT: inside a transaction, a non-null path, no parameters, a cap. */
static bool
smtp_server_check_rcpt(struct smtp_server *s, const char *arg)
{
	const char	*rest, *reason;

	if (s->tx == NULL)
		smtp_server_reply(s, "503 5.5.1 Error: need MAIL command");
	else if (arg[strspn(arg, " ")] != '<')
		smtp_server_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
	else if (mailaddr_parse_path(arg, false, s->addr, sizeof(s->addr),
	    &rest, &reason) == -1)
		smtp_server_reply(s, "553 5.1.3 Bad recipient address syntax");
	else if (rest[0] != '\0')
		smtp_server_reply(s, "555 5.5.4 Unsupported parameter");
	else if (s->tx->env.nrcpt >= s->params.max_rcpt ||
	    s->tx->env.nrcpt >= ENVELOPE_RCPT_MAX)
		smtp_server_reply(s, "452 4.5.3 Too many recipients");
	else
		return true;
	return false;
}

/* Add the recipient check_rcpt parsed. */
static void
smtp_server_proceed_rcpt(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	envelope_add_rcpt(&s->tx->env, s->addr);
	smtp_server_reply(s, "250 2.1.5 Ok");
}

/* DATA: needs MAIL and at least one RCPT, and no argument. */
static bool
smtp_server_check_data(struct smtp_server *s, const char *arg)
{
	if (s->tx == NULL)
		smtp_server_reply(s, "503 5.5.1 Error: need MAIL command");
	else if (s->tx->env.nrcpt == 0)
		smtp_server_reply(s, "503 5.5.1 Error: need RCPT command");
	else if (arg[0] != '\0')
		smtp_server_reply(s, "501 5.5.4 Syntax: DATA");
	else
		return true;
	return false;
}

/* The reply for a local storage error. */
static void
smtp_server_reply_errno(struct smtp_server *s, int errnum)
{
	if (errnum == ENOSPC || errnum == EDQUOT)
		smtp_server_reply(s, "452 4.3.1 Insufficient system storage");
	else
		smtp_server_reply(s, "451 4.3.0 Local error in processing");
}

/* Open tmp/<ID> and start reading the message text. */
static void
smtp_server_proceed_data(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	if ((s->tx->qtx = queue_tx_begin(s->queue)) == NULL) {
		log_warn("uid=%u cannot start a queue entry", (unsigned)s->uid);
		smtp_server_reply_errno(s, errno);
		return;
	}
	s->tx->size = 0;
	s->tx->error = SMTPS_TXERR_NONE;
	s->tx->crlf = true;	/* the DATA line's own CRLF */
	s->state = SMTPS_DATA;
	smtp_server_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* RSET: drop the transaction. */
static void
smtp_server_proceed_rset(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	smtp_server_tx_free(s);
	smtp_server_reply(s, "250 2.0.0 Ok");
}

/* NOOP. */
static void
smtp_server_proceed_noop(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	smtp_server_reply(s, "250 2.0.0 Ok");
}

/* QUIT: 221, then close once it is flushed. */
static void
smtp_server_proceed_quit(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	smtp_server_reply(s, "221 2.0.0 Bye");
	smtp_server_closing(s, "quit");
}

/*
 * ETRN: after EHLO/HELO (503 5.5.1, RFC 5321 4.3.2), and authenticated
 * unless the peer is root or the daemon's own user (530 5.7.0, RFC 4954
 * 6): each flush makes a relay attempt, and attempts cost Gmail logins.
 */
static bool
smtp_server_check_etrn(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	if (!s->helo_seen)
		smtp_server_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
	else if (!s->authed && s->uid != 0 && s->uid != geteuid())
		smtp_server_reply(s, "530 5.7.0 Authentication required");
	else
		return true;
	log_debug("flush refused uid=%u", (unsigned)s->uid);
	return false;
}

/* ETRN (any argument): retry the whole queue now. */
static void
smtp_server_proceed_etrn(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	log_info("flush requested uid=%u", (unsigned)s->uid);
	if (s->cb.flush != NULL)
		s->cb.flush(s->arg);
	smtp_server_reply(s, "250 2.0.0 Queue flush started");
}

/* VRFY: we cannot tell, but we would try. */
static void
smtp_server_proceed_vrfy(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	smtp_server_reply(s, "252 2.5.0 Cannot VRFY user, but will accept "
	    "message and attempt delivery");
}

/* HELP: the verbs we know. */
static void
smtp_server_proceed_help(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	smtp_server_reply(s, "214 2.0.0 Commands: EHLO HELO AUTH MAIL RCPT "
	    "DATA RSET NOOP QUIT ETRN VRFY HELP");
}

/* STARTTLS and BDAT: known verbs we do not offer. */
static void
smtp_server_proceed_notimpl(struct smtp_server *s, const char *arg)
{
	UNUSED(arg);
	smtp_server_reply(s, "502 5.5.1 Command not implemented");
}

/* ---- message text ---- */

/* Record the first problem with the message; later text is only counted. */
static void
smtp_server_tx_error(struct smtp_server *s, enum smtps_txerr error,
    int errnum)
{
	if (s->tx->error != SMTPS_TXERR_NONE)
		return;
	s->tx->error = error;
	s->tx->errnum = errnum;
}

/* The message is whole and durable (or not): reply and read on. */
static void
smtp_server_commit_done(struct smtp_server *s, int errnum, const char *id)
{
	if (errnum != 0) {
		errno = errnum;
		log_warn("%s commit failed uid=%u", id, (unsigned)s->uid);
		smtp_server_reply_errno(s, errnum);
	} else {
		smtp_server_reply(s, "250 2.0.0 Ok: queued as %s", id);
		log_info("%s accepted from=<%s> nrcpt=%zu size=%zu uid=%u", id,
		    s->tx->env.sender, s->tx->env.nrcpt, s->tx->size,
		    (unsigned)s->uid);
	}
	smtp_server_tx_free(s);
	s->state = SMTPS_COMMAND;
	bufferevent_enable(s->bev, EV_READ);
	if (errnum == 0 && s->cb.queued != NULL)
		s->cb.queued(s->arg, id);
	/* libevent will not call read_cb again for bytes already buffered. */
	if (!s->in_loop)
		smtp_server_process(s);
}

/*
 * A commit finished on the queue's workers.  When the session is gone the
 * entry is still handed to the scheduler: it is durable in queue/, and a
 * client that left before its 250 may well have it delivered.
 */
static void
smtp_server_commit_cb(void *arg, const char *id, int errnum)
{
	struct smtps_commit	*c = arg;
	struct smtp_server	*s = c->s;

	if (s != NULL) {
		s->commit = NULL;
		free(c);
		smtp_server_commit_done(s, errnum, id);
		return;
	}
	if (errnum != 0) {
		errno = errnum;
		log_warn("%s commit failed uid=%u (session gone)", id,
		    (unsigned)c->uid);
	} else {
		log_info("%s accepted uid=%u (session gone before the reply)",
		    id, (unsigned)c->uid);
		/* Not cb.queued: its arg may have gone with the session. */
		queue_adopt(c->queue, id);
	}
	free(c);
}

/* COMMIT: fill the envelope and hand the entry to the queue's workers. */
static void
smtp_server_commit(struct smtp_server *s)
{
	struct smtps_tx		*tx = s->tx;
	struct smtps_commit	*c;
	struct sasl_cred	 account;
	char			 id[ENVELOPE_ID_MAX];
	int			 errnum, rc;

	str_copy(id, queue_tx_id(tx->qtx), sizeof(id));
	tx->env.submitted = time(NULL);
	tx->env.next_attempt = tx->env.submitted;
	tx->env.uid = s->uid;
	tx->env.attempts = 0;
	tx->env.state = ENVELOPE_QUEUED;
	c = xcalloc(1, sizeof(*c));
	c->s = s;
	c->queue = s->queue;
	c->uid = s->uid;
	/* The configured account's entry keeps its address, no password. */
	memset(&account, 0, sizeof(account));
	str_copy(account.user, tx->env.account, sizeof(account.user));
	rc = queue_tx_commit_async(tx->qtx, s->base, &tx->env,
	    tx->env.account[0] != '\0' ? &account : &s->cred,
	    smtp_server_commit_cb, c);
	if (rc == -1) {
		errnum = errno;
		tx->qtx = NULL;		/* freed by the call */
		free(c);
		smtp_server_commit_done(s, errnum, id);
		return;
	}
	tx->qtx = NULL;			/* the queue's now */
	s->commit = c;
}

/* The final dot: reject a bad message, otherwise commit it. */
static void
smtp_server_data_end(struct smtp_server *s)
{
	switch (s->tx->error) {
	case SMTPS_TXERR_NONE:
		s->state = SMTPS_COMMIT;
		bufferevent_disable(s->bev, EV_READ);
		smtp_server_commit(s);
		return;
	case SMTPS_TXERR_BARE:
		smtp_server_reply(s, "554 5.6.0 Message contains bare CR or LF");
		break;
	case SMTPS_TXERR_NUL:
		smtp_server_reply(s, "554 5.6.0 Message contains a NUL byte");
		break;
	case SMTPS_TXERR_LONG:
		smtp_server_reply(s, "554 5.6.0 Message has a line longer than "
		    "998 characters");
		break;
	case SMTPS_TXERR_SIZE:
		smtp_server_reply(s, "552 5.3.4 Message size exceeds fixed "
		    "maximum message size");
		break;
	case SMTPS_TXERR_IO:
		smtp_server_reply_errno(s, s->tx->errnum);
		break;
	}
	log_info("rejected from=<%s> uid=%u", s->tx->env.sender,
	    (unsigned)s->uid);
	smtp_server_tx_free(s);
	s->state = SMTPS_COMMAND;
}

/*
 * One line of message text.  The end is CRLF "." CRLF and nothing else;
 * problems are remembered and answered after that dot.
 */
static void
smtp_server_data_line(struct smtp_server *s, size_t len, bool crlf)
{
	struct smtps_tx	*tx = s->tx;
	const char	*out;
	size_t		 outlen;
	bool		 after_crlf = tx->crlf;

	tx->crlf = crlf;
	if (after_crlf && crlf && len == 1 && s->line[0] == '.') {
		smtp_server_data_end(s);
		return;
	}
	if (!crlf || memchr(s->line, '\r', len) != NULL)
		smtp_server_tx_error(s, SMTPS_TXERR_BARE, 0);
	else if (memchr(s->line, '\0', len) != NULL)
		smtp_server_tx_error(s, SMTPS_TXERR_NUL, 0);
	if (tx->error != SMTPS_TXERR_NONE)
		return;
	dotstuff_unstuff_line(s->line, len, &out, &outlen);
	if (outlen + 2 > s->params.max_size - tx->size) {
		smtp_server_tx_error(s, SMTPS_TXERR_SIZE, 0);
		return;
	}
	tx->size += outlen + 2;
	/* Both writes land in the queue's buffer, not one syscall each. */
	if (queue_tx_write(tx->qtx, out, outlen) == -1 ||
	    queue_tx_write(tx->qtx, "\r\n", 2) == -1)
		smtp_server_tx_error(s, SMTPS_TXERR_IO, errno);
}

/* One line in COMMAND or an AUTH state: check its bytes, then act. */
static void
smtp_server_command_line(struct smtp_server *s, size_t len, bool crlf)
{
	if (!crlf || !smtp_server_line_clean(s->line, len)) {
		if (s->state != SMTPS_COMMAND)
			sasl_cred_clear(&s->cred);
		s->state = SMTPS_COMMAND;
		smtp_server_reply(s, "500 5.5.2 %s", crlf ?
		    "Invalid character in command" : "Bare LF in command");
	} else if (s->state == SMTPS_COMMAND)
		smtp_server_command(s, s->line);
	else
		smtp_server_auth_line(s, s->line);
	/* The line may have carried a secret (AUTH). */
	secure_zero(s->line, len);
}

/*
 * Too many replies wait for the client: stop reading lines until they
 * have drained (write_cb).  The client's silence is then timed by the
 * write timeout, not the line deadline.
 */
static void
smtp_server_pause(struct smtp_server *s)
{
	s->paused = true;
	bufferevent_disable(s->bev, EV_READ);
	evtimer_del(s->deadline);
}

/* The replies have drained: read again, starting with what is buffered. */
static void
smtp_server_resume(struct smtp_server *s)
{
	s->paused = false;
	bufferevent_enable(s->bev, EV_READ);
	/* libevent will not call read_cb again for bytes already buffered. */
	if (!s->in_loop)
		smtp_server_process(s);
}

/*
 * The line loop: every complete buffered line, until COMMIT or CLOSING,
 * or until too many replies are waiting.
 */
static void
smtp_server_process(struct smtp_server *s)
{
	struct evbuffer		*in = bufferevent_get_input(s->bev);
	struct evbuffer		*out = bufferevent_get_output(s->bev);
	struct timeval		 tv;
	enum smtps_getline	 r;
	size_t			 len = 0;
	bool			 crlf = false, progress = false;

	s->in_loop = true;
	while (smtp_server_reading(s) && !s->paused) {
		if (evbuffer_get_length(out) >= SMTPS_OUT_HIWAT) {
			smtp_server_pause(s);
			break;
		}
		if ((r = smtp_server_getline(s, &len, &crlf)) == SMTPS_LINE_NONE)
			break;
		progress = true;
		if (r == SMTPS_LINE_DROPPED)
			continue;
		if (s->state == SMTPS_DATA)
			smtp_server_data_line(s, len, crlf);
		else
			smtp_server_command_line(s, len, crlf);
	}
	s->in_loop = false;
	/* A partial line must complete within its own deadline. */
	if (progress)
		evtimer_del(s->deadline);
	if (smtp_server_reading(s) && !s->paused &&
	    s->params.idle_timeout > 0 &&
	    (evbuffer_get_length(in) > 0 || s->discard) &&
	    !evtimer_pending(s->deadline, NULL)) {
		tv.tv_sec = s->params.idle_timeout;
		tv.tv_usec = 0;
		evtimer_add(s->deadline, &tv);
	}
}
