/*
 * standin.c: a local stand-in for smtp.gmail.com, for tests and the demo.
 *
 * It speaks the dialogue that /work/shared/reference/gmail-smtp.md records
 * for smtp.gmail.com:587 (STARTTLS) and :465 (implicit TLS), with Gmail's
 * exact reply lines, on 127.0.0.1 only.  One libevent loop; one session per
 * connection, a state machine read top to bottom in standin_process().
 *
 * What it receives is recorded in --mail-dir so tests can assert on it:
 *	msg-NNNNNN.eml	the message as received, dot-stuffing removed, CRLF
 *			kept, the final ".\r\n" excluded
 *	msg-NNNNNN.meta	"from: A", "rcpt: A" (repeated), "user: U",
 *			"tls: yes|no", "auth-tls: yes|no", "body: data|bdat"
 *			(how the message came); renamed into place
 *			after the .eml, so a test that sees it sees both
 *	events.log	one line per event, flushed at once:
 *			connect N, starttls N, tls N version=V resumed=yes|no,
 *			tlsfail N
 *			reason=R, auth N user=U tls=yes|no result=CODE
 *			(" mech=XOAUTH2" appended for a token),
 *			mail N from=A, delivered N file=F, tempfail N,
 *			drop N, close N
 * Addresses are recorded without their angle brackets.  No password is
 * ever written anywhere; the buffers that held one are wiped.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "base64.h"
#include "log.h"
#include "smtp_proto.h"
#include "tls.h"
#include "util.h"

#define STANDIN_SIZE_MAX	35882577ULL	/* Gmail's advertised SIZE */
#define STANDIN_LINE_MAX	12290	/* command or SASL line, with CRLF:
					   RFC 4954's 12288 for AUTH */
#define STANDIN_CHUNK		65536	/* message bytes handled per piece */
#define STANDIN_IBUF_MAX	(2 * STANDIN_CHUNK)	/* input read ahead */
#define STANDIN_OBUF_MAX	65536	/* unsent replies before reading pauses */
#define STANDIN_RCPT_MAX	100	/* Gmail: 452 4.5.3 on the 101st */
#define STANDIN_UNKNOWN_MAX	10	/* unrecognized commands before goodbye */
#define STANDIN_ADDR_MAX	256	/* RFC 5321 path, with NUL */
#define STANDIN_USER_MAX	256
#define STANDIN_SASL_MAX	4096	/* decoded SASL response: a
					   2048-byte token fits */
#define STANDIN_XO_AUTH		"\001auth=Bearer "
/* Gmail's XOAUTH2 error challenge, before base64 (gmail-smtp.md 5). */
#define STANDIN_XOAUTH2_ERR	"{\"status\":\"401\",\"schemes\":\"Bearer\"," \
				"\"scope\":\"https://mail.google.com/\"}"
#define STANDIN_ID_MAX		64
#define STANDIN_IDLE_DEFAULT	600	/* seconds; Gmail's is unknown */
#define STANDIN_HOST		"smtp.gmail.com"
#define STANDIN_MECHS		"LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN " \
				"OAUTHBEARER XOAUTH"

/* --auth-fail: how every AUTH is answered, whatever the password. */
enum standin_auth_fail {
	STANDIN_AUTH_CHECK,	/* by --password */
	STANDIN_AUTH_BAD,	/* 535 5.7.8 BadCredentials */
	STANDIN_AUTH_APP,	/* 534 5.7.9 InvalidSecondFactor */
	STANDIN_AUTH_WEB,	/* 534 5.7.14 web login */
	STANDIN_AUTH_THROTTLE,	/* 454 4.7.0 Too many login attempts */
	STANDIN_AUTH_TEMP	/* 454 4.7.0 temporary system problem */
};

/* How TLS is offered: STARTTLS (587), not at all, or from the first byte (465). */
enum standin_tls_mode {
	STANDIN_TLS_STARTTLS,
	STANDIN_TLS_NONE,
	STANDIN_TLS_IMPLICIT
};

enum standin_state {
	STANDIN_HANDSHAKE,	/* TLS handshake running; input is not read */
	STANDIN_COMMAND,	/* reading command lines */
	STANDIN_AUTH_PLAIN,	/* after "334 ": the PLAIN response */
	STANDIN_AUTH_USER,	/* after "334 VXNlcm5hbWU6": the LOGIN user */
	STANDIN_AUTH_PASS,	/* after "334 UGFzc3dvcmQ6": the LOGIN password */
	STANDIN_AUTH_XOAUTH2,	/* after "334 ": the XOAUTH2 response */
	STANDIN_AUTH_XOERR,	/* after "334 <base64 JSON>": an empty line */
	STANDIN_DATA,		/* after 354: message text up to "." */
	STANDIN_BDAT,		/* a BDAT chunk of known size */
	STANDIN_STARTTLS,	/* 220 queued; upgrade once it has drained */
	STANDIN_CLOSING,	/* last reply queued; close once it has drained */
	STANDIN_DEAD		/* close now, without a reply */
};

/* One mail transaction: MAIL, RCPTs, then DATA or BDAT chunks. */
struct standin_tx {
	bool			 active;	/* MAIL accepted */
	char			 from[STANDIN_ADDR_MAX];
	char			 rcpt[STANDIN_RCPT_MAX][STANDIN_ADDR_MAX];
	size_t			 nrcpt;
	FILE			*fp;		/* the .tmp message file */
	char			 tmppath[PATH_MAX];
	unsigned long long	 size;		/* message bytes kept */
	bool			 toobig;
	bool			 ioerr;
	bool			 drop;		/* --drop-in-data chose this one */
	bool			 dropdot;	/* --drop-after-dot chose it */
	bool			 bol;		/* DATA: at the start of a line */
	bool			 bdat;		/* BDAT used: DATA is refused */
	bool			 bdat_last;
	unsigned long long	 bdat_left;	/* chunk bytes still to read */
	const char		*bdat_error;	/* reply after a refused chunk */
	bool			 bdat_burst;	/* --burst-at-data: 421 after it */
};

struct standin;

struct standin_sess {
	TAILQ_ENTRY(standin_sess) entry;
	struct standin		*si;
	struct bufferevent	*bev;
	evutil_socket_t		 fd;
	bool			 fd_in_bev;	/* the TLS bev closes fd */
	unsigned		 conn;		/* connection number */
	char			 id[STANDIN_ID_MAX];
	char			 peer[INET6_ADDRSTRLEN];
	enum standin_state	 state;
	bool			 greeted;	/* EHLO or HELO seen */
	bool			 tls;
	bool			 authed;
	bool			 auth_tls;	/* AUTH happened under TLS */
	bool			 skipping;	/* discarding an overlong line */
	char			 user[STANDIN_USER_MAX];
	int			 xo_mode;	/* refusal due after XOERR */
	unsigned		 unknown;
	unsigned		 txseq;
	struct standin_tx	 tx;
};

struct standin {
	struct event_base	*base;
	struct evconnlistener	*listener;
	struct event		*ev_term;
	struct event		*ev_int;
	SSL_CTX			*ctx;
	FILE			*events;
	const char		*maildir;
	const char		*password;	/* NULL: any but "wrong" */
	const char		*token;		/* XOAUTH2; NULL: any but "wrong" */
	enum standin_tls_mode	 mode;
	const char		*starttls_reply; /* refuse STARTTLS with it */
	const char		*inject;	/* plaintext sent after the 220 */
	int			 tls_max;	/* highest TLS version offered */
	bool			 reject_rcpt;
	bool			 quota;
	bool			 legacy;	/* --profile legacy wording */
	int			 auth_fail;	/* enum standin_auth_fail */
	unsigned long long	 auth_fail_left; /* how many AUTHs fail so */
	unsigned long long	 quota_left;	/* --quota-count */
	unsigned long long	 idle_left;	/* --idle-at-mail */
	unsigned long long	 burst_left;	/* --burst-at-data */
	unsigned long long	 dropdot_left;	/* --drop-after-dot */
	const char		*mechs;		/* AUTH line after TLS */
	const char		*reject_domain;	/* 553 5.1.2 for it */
	unsigned long long	 size_max;	/* --size: SIZE and the limit */
	size_t			 rcpt_max;	/* --rcpt-max: 452 after */
	bool			 discard;	/* count message bytes, keep none */
	bool			 chunking;	/* CHUNKING offered */
	unsigned long long	 tempfail_left;
	unsigned long long	 drop_left;
	unsigned		 idle;		/* seconds */
	unsigned		 nconn;
	unsigned		 nmsg;		/* last message number used */
	char			 chunk[STANDIN_CHUNK];
	TAILQ_HEAD(, standin_sess) sessions;
};

static void	standin_event(struct standin *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	standin_reply(struct standin_sess *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	standin_process(struct standin_sess *);
static void	standin_drop(struct standin_sess *);
static void	standin_read_cb(struct bufferevent *, void *);
static void	standin_write_cb(struct bufferevent *, void *);
static void	standin_event_cb(struct bufferevent *, short, void *);
static void	standin_burst(struct standin_sess *);

/* Append one line to events.log and flush it at once. */
static void
standin_event(struct standin *si, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vfprintf(si->events, fmt, ap);
	va_end(ap);
	fputc('\n', si->events);
	if (fflush(si->events) != 0)
		log_warn("events.log");
}

/* Copy s into buf with control bytes, non-ASCII and (unless allowed) spaces as '?'. */
static const char *
standin_printable(const char *s, char *buf, size_t len, bool spaces)
{
	size_t	 i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		buf[i] = ((s[i] > ' ' || (spaces && s[i] == ' ')) &&
		    s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

/* A session id in Gmail's 2025 shape, e.g. 98e67ed59e1d1-3276f57b227sm30235195a91.6. */
static void
standin_make_id(char *buf, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	static const char	 alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char		 r[36];
	char			 p[36];
	size_t			 i;

	if (RAND_bytes(r, sizeof(r)) != 1)
		fatalx("RAND_bytes failed");
	for (i = 0; i < 24; i++)
		p[i] = hex[r[i] % 16];
	for (; i < 32; i++)
		p[i] = (char)('0' + r[i] % 10);
	for (; i < 35; i++)
		p[i] = alnum[r[i] % (sizeof(alnum) - 1)];
	snprintf(buf, len, "%.13s-%.11ssm%.8s%.3s.%u", p, p + 13, p + 24,
	    p + 32, 1U + r[35] % 100U);
}

/* Queue one reply line (CRLF added) and show it with -v. */
static void
standin_reply(struct standin_sess *s, const char *fmt, ...)
{
	char	 line[SMTP_REPLY_LINE_MAX];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		fatalx("reply line too long");
	log_debug("%u S: %s", s->conn, line);
	evbuffer_add(bufferevent_get_output(s->bev), line, (size_t)n);
	evbuffer_add(bufferevent_get_output(s->bev), "\r\n", 2);
}

/* Queue a one-line reply ending in Gmail's "<id> - gsmtp". */
static void
standin_replyid(struct standin_sess *s, const char *text)
{
	standin_reply(s, "%s %s - gsmtp", text, s->id);
}

/* "Learn more at" (legacy profile) or "For more information, go to". */
static const char *
standin_more(const struct standin_sess *s)
{
	return s->si->legacy ? "Learn more at" : "For more information, go to";
}

/* The one space (legacy profile) or two before text that follows a code. */
static const char *
standin_gap(const struct standin_sess *s)
{
	return s->si->legacy ? " " : "  ";
}

/* Queue a last reply and close once it has been written. */
static void
standin_close_after(struct standin_sess *s)
{
	bufferevent_disable(s->bev, EV_READ);
	s->state = STANDIN_CLOSING;
}

/* Forget the transaction, removing its unfinished message file. */
static void
standin_tx_reset(struct standin_sess *s)
{
	struct standin_tx	*tx = &s->tx;

	if (tx->fp != NULL) {
		fclose(tx->fp);
		if (unlink(tx->tmppath) == -1)
			log_warn("unlink %s", tx->tmppath);
	}
	memset(tx, 0, sizeof(*tx));
}

/* Free a session: its transaction, bufferevent and socket. */
static void
standin_sess_free(struct standin_sess *s)
{
	standin_event(s->si, "close %u", s->conn);
	standin_tx_reset(s);
	TAILQ_REMOVE(&s->si->sessions, s, entry);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (!s->fd_in_bev)
		close(s->fd);
	secure_zero(s->user, sizeof(s->user));
	free(s);
}

/* An orderly close after the last reply: TLS close_notify, then free. */
static void
standin_sess_close(struct standin_sess *s)
{
	SSL	*ssl;

	if (s->fd_in_bev && s->tls &&
	    (ssl = bufferevent_openssl_get_ssl(s->bev)) != NULL)
		SSL_shutdown(ssl);
	standin_sess_free(s);
}

/* Set callbacks, the idle timeout and both directions on s->bev. */
static void
standin_bev_setup(struct standin_sess *s)
{
	struct timeval	 tv = { (time_t)s->si->idle, 0 };

	bufferevent_setcb(s->bev, standin_read_cb, standin_write_cb,
	    standin_event_cb, s);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_setwatermark(s->bev, EV_READ, 0, STANDIN_IBUF_MAX);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* A server-side TLS bufferevent on the session's socket, or NULL. */
static struct bufferevent *
standin_tls_bev(struct standin_sess *s)
{
	struct bufferevent	*bev;
	SSL			*ssl;
	char			 err[256];

	if ((ssl = SSL_new(s->si->ctx)) == NULL) {
		log_warnx("%u SSL_new: %s", s->conn, tls_strerror(err,
		    sizeof(err)));
		return NULL;
	}
	/* On failure libevent frees ssl (CLOSE_ON_FREE). */
	bev = bufferevent_openssl_socket_new(s->si->base, s->fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		log_warnx("%u bufferevent_openssl_socket_new failed", s->conn);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* The 220 to STARTTLS has been written: replace the plain bev with TLS. */
static void
standin_starttls_upgrade(struct standin_sess *s)
{
	struct bufferevent	*tls;

	if ((tls = standin_tls_bev(s)) == NULL) {
		standin_sess_free(s);
		return;
	}
	bufferevent_free(s->bev);
	s->bev = tls;
	s->fd_in_bev = true;
	s->state = STANDIN_HANDSHAKE;
	standin_bev_setup(s);
}

/* The handshake finished: log it and start over as RFC 3207 requires. */
static void
standin_tls_done(struct standin_sess *s)
{
	SSL	*ssl = bufferevent_openssl_get_ssl(s->bev);

	s->tls = true;
	standin_event(s->si, "tls %u version=%s resumed=%s", s->conn,
	    SSL_get_version(ssl), SSL_session_reused(ssl) ? "yes" : "no");
	log_debug("%u TLS %s %s", s->conn, SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
	s->greeted = false;
	s->authed = false;
	s->auth_tls = false;
	secure_zero(s->user, sizeof(s->user));
	standin_tx_reset(s);
	s->state = STANDIN_COMMAND;
	if (s->si->mode == STANDIN_TLS_IMPLICIT)
		standin_reply(s, "220 %s ESMTP %s - gsmtp", STANDIN_HOST,
		    s->id);
}

/* Record why a handshake failed, from libevent's and OpenSSL's queues. */
static void
standin_tls_failed(struct standin_sess *s, short what)
{
	char		 reason[512], shown[512];
	const char	*one;
	unsigned long	 e;

	reason[0] = '\0';
	while ((e = bufferevent_get_openssl_error(s->bev)) != 0) {
		if ((one = ERR_reason_error_string(e)) == NULL)
			continue;
		if (reason[0] != '\0')
			strncat(reason, "; ", sizeof(reason) - strlen(reason) - 1);
		strncat(reason, one, sizeof(reason) - strlen(reason) - 1);
	}
	if (reason[0] == '\0')
		str_copy(reason, (what & BEV_EVENT_EOF) ? "connection closed" :
		    "socket error", sizeof(reason));
	standin_event(s->si, "tlsfail %u reason=%s", s->conn,
	    standin_printable(reason, shown, sizeof(shown), true));
}

/* ---- AUTH ---- */

/* --auth-fail's replies other than 535 (gmail-smtp.md section 4). */
static void
standin_auth_refused(struct standin_sess *s, int mode)
{
	switch (mode) {
	case STANDIN_AUTH_APP:
		standin_reply(s, "534-5.7.9 Application-specific password "
		    "required. %s", standin_more(s));
		standin_replyid(s, "534 5.7.9  https://support.google.com/mail/"
		    "?p=InvalidSecondFactor");
		break;
	case STANDIN_AUTH_WEB:
		standin_reply(s, "534-5.7.14 <https://accounts.google.com/signin/"
		    "continue?sarp=1&scc=1&plt=AKgnsbs>");
		standin_reply(s, "534-5.7.14 Please log in via your web browser "
		    "and");
		standin_reply(s, "534-5.7.14 then try again.");
		standin_reply(s, "534-5.7.14  Learn more at");
		standin_replyid(s, "534 5.7.14  https://support.google.com/mail/"
		    "answer/78754");
		break;
	case STANDIN_AUTH_THROTTLE:
		if (s->si->legacy)
			standin_replyid(s, "454 4.7.0 Too many login attempts, "
			    "please try again later.");
		else {
			standin_reply(s, "454-4.7.0 Too many login attempts, "
			    "please try again later. Learn more at");
			standin_replyid(s, "454 4.7.0  https://support.google.com"
			    "/mail/answer/7126229");
		}
		break;
	default:
		standin_replyid(s, "454 4.7.0 Cannot authenticate due to "
		    "temporary system problem. Try again later.");
		break;
	}
}

/* An undecodable SASL response. */
static void
standin_auth_undecodable(struct standin_sess *s)
{
	standin_event(s->si, "auth %u user= tls=%s result=501", s->conn,
	    s->tls ? "yes" : "no");
	standin_replyid(s, "501 5.5.2 Cannot Decode response.");
}

/* The refusal of an AUTH by mode: 535 5.7.8, or standin_auth_refused. */
static void
standin_auth_reject(struct standin_sess *s, int mode)
{
	if (mode != STANDIN_AUTH_CHECK && mode != STANDIN_AUTH_BAD)
		standin_auth_refused(s, mode);
	else {
		standin_reply(s, "535-5.7.8 Username and Password not "
		    "accepted. %s", standin_more(s));
		standin_replyid(s, "535 5.7.8  https://support.google.com/"
		    "mail/?p=BadCredentials");
	}
}

/*
 * Judge one credential pair (a password, or with xoauth2 a token), reply
 * 235 or refuse, and log the attempt.  A refused token first gets Gmail's
 * "334 <base64 JSON>" challenge: the refusal and its event follow the
 * client's next line (standin_auth_xoerr).
 */
static void
standin_auth_check(struct standin_sess *s, const char *user, size_t userlen,
    const char *pass, size_t passlen, bool xoauth2)
{
	const char	*want = xoauth2 ? s->si->token : s->si->password;
	char		 shown[STANDIN_USER_MAX], json[256];
	bool		 ok;
	int		 mode = STANDIN_AUTH_CHECK, code;

	if (s->si->auth_fail != STANDIN_AUTH_CHECK &&
	    s->si->auth_fail_left > 0) {
		s->si->auth_fail_left--;
		mode = s->si->auth_fail;
	}
	if (want != NULL)
		ok = passlen == strlen(want) &&
		    CRYPTO_memcmp(pass, want, passlen) == 0;
	else
		ok = passlen > 0 && !(passlen == 5 &&
		    memcmp(pass, "wrong", 5) == 0);
	ok = ok && userlen > 0 && userlen < sizeof(s->user);
	if (mode != STANDIN_AUTH_CHECK)
		ok = false;
	code = ok ? 235 : mode == STANDIN_AUTH_APP ||
	    mode == STANDIN_AUTH_WEB ? 534 : mode == STANDIN_AUTH_THROTTLE ||
	    mode == STANDIN_AUTH_TEMP ? 454 : 535;
	if (userlen >= sizeof(shown))
		userlen = sizeof(shown) - 1;
	if (xoauth2 && !ok) {
		memcpy(s->user, user, userlen);
		s->user[userlen] = '\0';
		s->xo_mode = mode;
		s->state = STANDIN_AUTH_XOERR;
		(void)base64_encode(STANDIN_XOAUTH2_ERR,
		    strlen(STANDIN_XOAUTH2_ERR), json, sizeof(json), 0);
		standin_reply(s, "334 %s", json);
		return;
	}
	memcpy(shown, user, userlen);
	shown[userlen] = '\0';
	standin_event(s->si, "auth %u user=%s tls=%s result=%d%s", s->conn,
	    standin_printable(shown, shown, sizeof(shown), false),
	    s->tls ? "yes" : "no", code, xoauth2 ? " mech=XOAUTH2" : "");
	if (ok) {
		s->authed = true;
		s->auth_tls = s->tls;
		memcpy(s->user, user, userlen);
		s->user[userlen] = '\0';
		standin_reply(s, "235 2.7.0 Accepted");
	} else
		standin_auth_reject(s, mode);
	secure_zero(shown, sizeof(shown));
}

/*
 * The client's line after a refused token's challenge.  Gmail takes any
 * line as the (empty) SASL reply; the stand-in insists on the empty line
 * RFC 4954 calls for and answers anything else 501, so a client that
 * sends RSET or a retry there is caught.
 */
static void
standin_auth_xoerr(struct standin_sess *s, const char *line)
{
	bool	 empty = line[0] == '\0';

	s->state = STANDIN_COMMAND;
	standin_event(s->si, "auth %u user=%s tls=%s result=%d mech=XOAUTH2",
	    s->conn, standin_printable(s->user, s->user, sizeof(s->user),
	    false), s->tls ? "yes" : "no", !empty ? 501 :
	    s->xo_mode == STANDIN_AUTH_APP || s->xo_mode == STANDIN_AUTH_WEB ?
	    534 : s->xo_mode == STANDIN_AUTH_THROTTLE ||
	    s->xo_mode == STANDIN_AUTH_TEMP ? 454 : 535);
	secure_zero(s->user, sizeof(s->user));
	if (!empty)
		standin_replyid(s, "501 5.5.2 Cannot Decode response.");
	else
		standin_auth_reject(s, s->xo_mode);
}

/* AUTH XOAUTH2's response: base64 of "user=U^Aauth=Bearer T^A^A". */
static void
standin_auth_xoauth2(struct standin_sess *s, const char *b64)
{
	char		 buf[STANDIN_SASL_MAX];
	const char	*user, *tok, *end, *p;
	size_t		 alen = strlen(STANDIN_XO_AUTH);
	long		 n;

	s->state = STANDIN_COMMAND;
	n = base64_decode(b64, strlen(b64), buf, sizeof(buf));
	if (n < 5 || memcmp(buf, "user=", 5) != 0) {
		standin_auth_undecodable(s);
		goto done;
	}
	user = buf + 5;
	end = buf + n;
	if ((p = memchr(user, '\001', (size_t)(end - user))) == NULL ||
	    (size_t)(end - p) < alen + 2 || memcmp(p, STANDIN_XO_AUTH,
	    alen) != 0 || end[-1] != '\001' || end[-2] != '\001') {
		standin_auth_undecodable(s);
		goto done;
	}
	tok = p + alen;
	standin_auth_check(s, user, (size_t)(p - user), tok,
	    (size_t)(end - 2 - tok), true);
done:
	secure_zero(buf, sizeof(buf));
}

/* AUTH PLAIN's response: base64 of "authzid\0authcid\0passwd". */
static void
standin_auth_plain(struct standin_sess *s, const char *b64)
{
	char	 buf[STANDIN_SASL_MAX];
	char	*user, *pass, *end;
	long	 n;

	s->state = STANDIN_COMMAND;
	n = base64_decode(b64, strlen(b64), buf, sizeof(buf));
	if (n < 0 || (user = memchr(buf, '\0', (size_t)n)) == NULL) {
		standin_auth_undecodable(s);
		goto done;
	}
	user++;
	end = buf + n;
	if ((pass = memchr(user, '\0', (size_t)(end - user))) == NULL) {
		standin_auth_undecodable(s);
		goto done;
	}
	pass++;
	if (memchr(pass, '\0', (size_t)(end - pass)) != NULL) {
		standin_auth_undecodable(s);
		goto done;
	}
	standin_auth_check(s, user, (size_t)(pass - 1 - user), pass,
	    (size_t)(end - pass), false);
done:
	secure_zero(buf, sizeof(buf));
}

/* AUTH LOGIN's user name; the password is asked for next. */
static void
standin_auth_login_user(struct standin_sess *s, const char *b64)
{
	long	 n;

	n = base64_decode(b64, strlen(b64), s->user, sizeof(s->user) - 1);
	if (n < 0 || memchr(s->user, '\0', (size_t)n) != NULL) {
		secure_zero(s->user, sizeof(s->user));
		s->state = STANDIN_COMMAND;
		standin_auth_undecodable(s);
		return;
	}
	s->user[n] = '\0';
	s->state = STANDIN_AUTH_PASS;
	standin_reply(s, "334 UGFzc3dvcmQ6");
}

/* AUTH LOGIN's password, checked with the user given before. */
static void
standin_auth_login_pass(struct standin_sess *s, const char *b64)
{
	char	 pass[STANDIN_SASL_MAX];
	char	 user[STANDIN_USER_MAX];
	long	 n;

	s->state = STANDIN_COMMAND;
	str_copy(user, s->user, sizeof(user));
	secure_zero(s->user, sizeof(s->user));
	n = base64_decode(b64, strlen(b64), pass, sizeof(pass));
	if (n < 0 || memchr(pass, '\0', (size_t)n) != NULL)
		standin_auth_undecodable(s);
	else
		standin_auth_check(s, user, strlen(user), pass, (size_t)n,
		    false);
	secure_zero(pass, sizeof(pass));
	secure_zero(user, sizeof(user));
}

/* One line while a SASL exchange waits for the client. */
static void
standin_sasl_line(struct standin_sess *s, const char *line)
{
	if (strcmp(line, "*") == 0 && s->state != STANDIN_AUTH_XOERR) {
		secure_zero(s->user, sizeof(s->user));
		s->state = STANDIN_COMMAND;
		standin_replyid(s, "501 5.0.0 Authentication aborted.");
		return;
	}
	switch (s->state) {
	case STANDIN_AUTH_PLAIN:
		standin_auth_plain(s, line);
		break;
	case STANDIN_AUTH_XOAUTH2:
		standin_auth_xoauth2(s, line);
		break;
	case STANDIN_AUTH_XOERR:
		standin_auth_xoerr(s, line);
		break;
	case STANDIN_AUTH_USER:
		standin_auth_login_user(s, line);
		break;
	default:
		standin_auth_login_pass(s, line);
		break;
	}
}

/* AUTH <mechanism> [initial-response]. */
static void
standin_cmd_auth(struct standin_sess *s, const char *arg)
{
	char		 mech[32];
	const char	*ir;
	size_t		 n;

	n = strcspn(arg, " ");
	ir = arg + n + strspn(arg + n, " ");
	if (!s->greeted)
		standin_replyid(s, "503 5.5.1 EHLO/HELO first.");
	else if (s->si->mode == STANDIN_TLS_STARTTLS && !s->tls) {
		standin_event(s->si, "auth %u user= tls=no result=530",
		    s->conn);
		standin_replyid(s, "530 5.7.0 Must issue a STARTTLS command "
		    "first.");
	} else if (s->authed)
		standin_replyid(s, "503 5.7.0 No identity changes permitted.");
	else if (n == 0 || n >= sizeof(mech))
		standin_replyid(s, "504 5.7.4 Unrecognized Authentication "
		    "Type.");
	else {
		memcpy(mech, arg, n);
		mech[n] = '\0';
		if (strcasecmp(mech, "PLAIN") == 0 && *ir != '\0')
			standin_auth_plain(s, ir);
		else if (strcasecmp(mech, "PLAIN") == 0) {
			s->state = STANDIN_AUTH_PLAIN;
			standin_reply(s, "334 ");
		} else if (strcasecmp(mech, "LOGIN") == 0 && *ir != '\0')
			standin_auth_login_user(s, ir);
		else if (strcasecmp(mech, "LOGIN") == 0) {
			s->state = STANDIN_AUTH_USER;
			standin_reply(s, "334 VXNlcm5hbWU6");
		} else if (strcasecmp(mech, "XOAUTH2") == 0 && *ir != '\0')
			standin_auth_xoauth2(s, ir);
		else if (strcasecmp(mech, "XOAUTH2") == 0) {
			s->state = STANDIN_AUTH_XOAUTH2;
			standin_reply(s, "334 ");
		} else if (strcasecmp(mech, "XOAUTH") == 0)
			standin_replyid(s, "504 5.7.4 XOAUTH is no longer "
			    "supported.");
		else
			standin_replyid(s, "504 5.7.4 Unrecognized "
			    "Authentication Type.");
	}
}

/* ---- Envelope ---- */

/*
 * Split "<addr> params" into addr (without brackets) and the parameters.
 * 0, or -1 when there are no brackets, the address has spaces, brackets or
 * control bytes, or it does not fit.
 */
static int
standin_path(const char *arg, char *addr, size_t len, const char **params)
{
	const char	*close;
	size_t		 n, i;

	if (arg == NULL || arg[0] != '<' || (close = strchr(arg, '>')) == NULL)
		return -1;
	n = (size_t)(close - arg - 1);
	if (n >= len)
		return -1;
	for (i = 0; i < n; i++)
		if ((unsigned char)arg[1 + i] <= ' ' || arg[1 + i] == '<' ||
		    arg[1 + i] == 0x7f)
			return -1;
	if (close[1] != '\0' && close[1] != ' ')
		return -1;
	memcpy(addr, arg + 1, n);
	addr[n] = '\0';
	*params = close + 1 + strspn(close + 1, " ");
	return 0;
}

/* The sequence checks MAIL, RCPT, DATA and BDAT share; false if refused. */
static bool
standin_check_envelope(struct standin_sess *s, bool need_tx)
{
	if (!s->greeted)
		standin_replyid(s, "503 5.5.1 EHLO/HELO first.");
	else if (s->si->mode == STANDIN_TLS_STARTTLS && !s->tls)
		standin_replyid(s, "530 5.7.0 Must issue a STARTTLS command "
		    "first.");
	else if (!s->authed) {
		standin_reply(s, "530-5.7.0 Authentication Required. Learn "
		    "more at");
		standin_replyid(s, "530 5.7.0  https://support.google.com/mail/"
		    "?p=WantAuthError");
	} else if (need_tx && !s->tx.active)
		standin_replyid(s, "503 5.5.1 MAIL first.");
	else
		return true;
	return false;
}

/* Gmail's three-line reply for a message over the size limit. */
static void
standin_reply_toobig(struct standin_sess *s)
{
	standin_reply(s, "552-5.3.4 Your message exceeded Google's message "
	    "size limits. Please visit");
	standin_reply(s, "552-5.3.4  https://support.google.com/mail/"
	    "?p=MaxSizeError to view our size");
	standin_replyid(s, "552 5.3.4 guidelines.");
}

/* Gmail's reply to a malformed MAIL FROM. */
static void
standin_reply_syntax(struct standin_sess *s)
{
	standin_reply(s, "555-5.5.2 Syntax error, cannot decode response. "
	    "For more information, go to");
	standin_reply(s, "555-5.5.2  https://support.google.com/a/answer/"
	    "3221692 and review RFC 5321");
	standin_replyid(s, "555 5.5.2 specifications.");
}

/* True (with the reply sent) when a SIZE= parameter is bad or too big. */
static bool
standin_size_refused(struct standin_sess *s, const char *params)
{
	char			 val[32];
	unsigned long long	 size;
	int			 r;

	r = smtp_param_get(params, "SIZE", val, sizeof(val));
	if (r == 0)
		return false;
	if (r < 0 || parse_uint(val, 0, ULLONG_MAX, &size) == -1) {
		standin_reply_syntax(s);
		return true;
	}
	if (size <= s->si->size_max)
		return false;
	standin_reply_toobig(s);
	return true;
}

/* MAIL FROM:<addr> [params]; arg is NULL when "FROM:" was missing. */
static void
standin_cmd_mail(struct standin_sess *s, const char *arg)
{
	struct standin	*si = s->si;
	const char	*params;
	char		 from[STANDIN_ADDR_MAX];

	if (!standin_check_envelope(s, false))
		return;
	if (s->tx.active)
		standin_replyid(s, "503 5.5.1 Nested MAIL command.");
	else if (standin_path(arg, from, sizeof(from), &params) == -1)
		standin_reply_syntax(s);
	else if (standin_size_refused(s, params))
		return;
	else if (si->tempfail_left > 0) {
		si->tempfail_left--;
		standin_event(si, "tempfail %u", s->conn);
		standin_replyid(s, "421 4.7.0 Try again later, closing "
		    "connection.");
		standin_close_after(s);
	} else if (si->idle_left > 0) {
		si->idle_left--;
		standin_event(si, "idle %u", s->conn);
		standin_replyid(s, "451 4.4.2 Timeout - closing connection.");
		standin_close_after(s);
	} else if (si->quota || si->quota_left > 0) {
		if (si->quota_left > 0)
			si->quota_left--;
		standin_event(si, "quota %u", s->conn);
		if (si->legacy)
			standin_replyid(s, "550 5.4.5 Daily user sending quota "
			    "exceeded.");
		else {
			standin_reply(s, "550-5.4.5 Daily user sending limit "
			    "exceeded. For more information on Gmail");
			standin_reply(s, "550-5.4.5 sending limits go to");
			standin_replyid(s, "550 5.4.5  https://support.google.com"
			    "/a/answer/166852");
		}
	} else {
		s->tx.active = true;
		str_copy(s->tx.from, from, sizeof(s->tx.from));
		standin_event(si, "mail %u from=%s", s->conn, from);
		standin_replyid(s, "250 2.1.0 OK");
	}
}

/* True when addr is at domain (case-insensitive). */
static bool
standin_in_domain(const char *addr, const char *domain)
{
	const char	*at = strrchr(addr, '@');

	return at != NULL && strcasecmp(at + 1, domain) == 0;
}

/* RCPT TO:<addr> [params]. */
static void
standin_cmd_rcpt(struct standin_sess *s, const char *arg)
{
	struct standin_tx	*tx = &s->tx;
	const char		*params;
	char			 to[STANDIN_ADDR_MAX];

	if (!standin_check_envelope(s, true))
		return;
	if (standin_path(arg, to, sizeof(to), &params) == -1 || to[0] == '\0') {
		standin_reply(s, "553-5.1.3 The recipient address is not a "
		    "valid RFC 5321 address. Learn");
		standin_reply(s, "553-5.1.3 more at");
		standin_replyid(s, "553 5.1.3  https://support.google.com/mail/"
		    "answer/6596");
	} else if (tx->nrcpt >= s->si->rcpt_max) {
		standin_event(s->si, "rcpt-toomany %u", s->conn);
		standin_reply(s, "452-4.5.3 Your message has too many "
		    "recipients. For more information regarding");
		standin_reply(s, "452-4.5.3 Google's sending limits, go to");
		standin_replyid(s, "452 4.5.3  https://support.google.com/mail/"
		    "?p=TooManyRecipientsError");
	} else if (s->si->reject_domain != NULL &&
	    standin_in_domain(to, s->si->reject_domain)) {
		standin_event(s->si, "rcpt-refused %u to=%s", s->conn, to);
		standin_reply(s, "553-5.1.2 We weren't able to find the "
		    "recipient domain. Please check for any");
		standin_reply(s, "553-5.1.2 spelling errors, and make sure you "
		    "didn't enter any spaces, periods,");
		standin_replyid(s, "553 5.1.2 or other punctuation after the "
		    "recipient's email address.");
	} else if (s->si->reject_rcpt) {
		standin_reply(s, "550-5.1.1 The email account that you tried "
		    "to reach does not exist. Please try");
		standin_reply(s, "550-5.1.1 double-checking the recipient's "
		    "email address for typos or");
		standin_reply(s, "550-5.1.1 unnecessary spaces. For more "
		    "information, go to");
		standin_replyid(s, "550 5.1.1  https://support.google.com/mail/"
		    "?p=NoSuchUser");
	} else {
		str_copy(tx->rcpt[tx->nrcpt++], to, sizeof(tx->rcpt[0]));
		standin_replyid(s, "250 2.1.5 OK");
	}
}

/* ---- Message text ---- */

/* Open the transaction's temporary message file; -1 after replying 451. */
static int
standin_tx_open(struct standin_sess *s)
{
	struct standin_tx	*tx = &s->tx;

	if (tx->fp != NULL)
		return 0;
	snprintf(tx->tmppath, sizeof(tx->tmppath), "%s/.tmp-%u-%u.eml",
	    s->si->maildir, s->conn, ++s->txseq);
	if ((tx->fp = fopen(tx->tmppath, "wx")) == NULL) {
		log_warn("%s", tx->tmppath);
		standin_replyid(s, "451 4.3.0 Mail server temporarily rejected "
		    "message.");
		return -1;
	}
	tx->size = 0;
	tx->bol = true;
	if (s->si->drop_left > 0) {
		s->si->drop_left--;
		tx->drop = true;
	} else if (s->si->dropdot_left > 0) {
		s->si->dropdot_left--;
		tx->dropdot = true;
	}
	return 0;
}

/* Keep len message bytes, unless the message is already too big. */
static void
standin_tx_write(struct standin_sess *s, const char *p, size_t len)
{
	struct standin_tx	*tx = &s->tx;

	if (tx->toobig || tx->ioerr)
		return;
	if (tx->size + len > s->si->size_max) {
		tx->toobig = true;
		return;
	}
	tx->size += len;
	if (!s->si->discard && fwrite(p, 1, len, tx->fp) != len)
		tx->ioerr = true;
}

/* Write the .meta file for message number n; 0 or -1. */
static int
standin_write_meta(struct standin_sess *s, unsigned n)
{
	struct standin_tx	*tx = &s->tx;
	char			 tmp[PATH_MAX], path[PATH_MAX];
	FILE			*fp;
	size_t			 i;
	int			 bad;

	snprintf(tmp, sizeof(tmp), "%s/.tmp-%u-%u.meta", s->si->maildir,
	    s->conn, s->txseq);
	snprintf(path, sizeof(path), "%s/msg-%06u.meta", s->si->maildir, n);
	if ((fp = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(fp, "from: %s\n", tx->from);
	for (i = 0; i < tx->nrcpt; i++)
		fprintf(fp, "rcpt: %s\n", tx->rcpt[i]);
	fprintf(fp, "user: %s\n", s->user);
	fprintf(fp, "tls: %s\n", s->tls ? "yes" : "no");
	fprintf(fp, "auth-tls: %s\n", s->auth_tls ? "yes" : "no");
	fprintf(fp, "body: %s\n", tx->bdat ? "bdat" : "data");
	bad = ferror(fp);
	if (fclose(fp) != 0 || bad || rename(tmp, path) == -1) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* The message is complete: file it and reply, or refuse it. */
static void
standin_deliver(struct standin_sess *s)
{
	struct standin_tx	*tx = &s->tx;
	char			 eml[PATH_MAX];
	unsigned		 n;
	int			 bad;

	bad = ferror(tx->fp);
	bad |= fclose(tx->fp) != 0;
	tx->fp = NULL;
	n = s->si->nmsg + 1;
	snprintf(eml, sizeof(eml), "%s/msg-%06u.eml", s->si->maildir, n);
	if (tx->toobig || tx->ioerr || bad || rename(tx->tmppath, eml) == -1) {
		unlink(tx->tmppath);
		if (tx->toobig)
			standin_reply_toobig(s);
		else
			standin_replyid(s, "451 4.3.0 Mail server temporarily "
			    "rejected message.");
	} else if (standin_write_meta(s, n) == -1) {
		log_warn("%s: meta", eml);
		unlink(eml);
		standin_replyid(s, "451 4.3.0 Mail server temporarily "
		    "rejected message.");
	} else {
		s->si->nmsg = n;
		standin_event(s->si, "delivered %u file=msg-%06u.eml", s->conn,
		    n);
		if (tx->dropdot) {
			/* Kept, but the client never hears of it. */
			standin_event(s->si, "dropdot %u", s->conn);
			standin_tx_reset(s);
			standin_drop(s);
			return;
		}
		standin_reply(s, "250 2.0.0 OK%s%lld %s - gsmtp",
		    standin_gap(s), (long long)time(NULL), s->id);
	}
	standin_tx_reset(s);
}

/* The connection is cut now: --drop-in-data chose this transaction. */
static void
standin_drop(struct standin_sess *s)
{
	struct linger	 lg = { 1, 0 };

	standin_event(s->si, "drop %u", s->conn);
	/* An RST, not a FIN: as abrupt as a crashed server. */
	setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	s->state = STANDIN_DEAD;
}

/*
 * DATA: take one line (or a STANDIN_CHUNK piece of a longer one) from the
 * input, undo dot-stuffing and keep it.  True when something was consumed.
 */
static bool
standin_data_feed(struct standin_sess *s)
{
	struct evbuffer		*in = bufferevent_get_input(s->bev);
	struct standin_tx	*tx = &s->tx;
	struct evbuffer_ptr	 eol;
	char			*p = s->si->chunk;
	size_t			 n, eol_len;
	bool			 whole;

	if (evbuffer_get_length(in) == 0)
		return false;
	if (tx->drop) {
		standin_drop(s);
		return false;
	}
	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	whole = eol.pos >= 0 && (size_t)eol.pos + eol_len <= STANDIN_CHUNK;
	if (whole)
		n = (size_t)eol.pos + eol_len;
	else if (evbuffer_get_length(in) >= STANDIN_CHUNK)
		n = STANDIN_CHUNK;
	else
		return false;
	evbuffer_remove(in, p, n);
	if (tx->bol && whole && n == 3 && memcmp(p, ".\r\n", 3) == 0) {
		log_debug("%u C: <%llu bytes of message>", s->conn, tx->size);
		s->state = STANDIN_COMMAND;
		standin_deliver(s);
		return true;
	}
	if (tx->bol && p[0] == '.')
		standin_tx_write(s, p + 1, n - 1);
	else
		standin_tx_write(s, p, n);
	tx->bol = whole;
	return true;
}

/* BDAT: take chunk bytes as they are; reply when the chunk is complete. */
static bool
standin_bdat_feed(struct standin_sess *s)
{
	struct evbuffer		*in = bufferevent_get_input(s->bev);
	struct standin_tx	*tx = &s->tx;
	size_t			 n;

	if (tx->bdat_left > 0 && evbuffer_get_length(in) == 0)
		return false;
	if (tx->drop) {
		standin_drop(s);
		return false;
	}
	n = evbuffer_get_length(in);
	if (n > STANDIN_CHUNK)
		n = STANDIN_CHUNK;
	if (n > tx->bdat_left)
		n = (size_t)tx->bdat_left;
	evbuffer_remove(in, s->si->chunk, n);
	if (tx->bdat_error == NULL && !tx->bdat_burst)
		standin_tx_write(s, s->si->chunk, n);
	tx->bdat_left -= n;
	if (tx->bdat_left > 0)
		return true;
	s->state = STANDIN_COMMAND;
	if (tx->bdat_burst)
		standin_burst(s);
	else if (tx->bdat_error != NULL) {
		standin_replyid(s, tx->bdat_error);
		tx->bdat_error = NULL;
	} else if (tx->bdat_last)
		standin_deliver(s);
	else
		standin_replyid(s, "250 2.0.0 OK");
	return true;
}

/* Gmail's 421 4.3.0 at the message (--burst-at-data), and the close. */
static void
standin_burst(struct standin_sess *s)
{
	standin_event(s->si, "burst %u", s->conn);
	standin_tx_reset(s);
	standin_reply(s, "421 4.3.0 Temporary System Problem.%sTry again "
	    "later (10). %s - gsmtp", standin_gap(s), s->id);
	standin_close_after(s);
}

/* DATA: 354 and switch to reading message text. */
static void
standin_cmd_data(struct standin_sess *s)
{
	if (!standin_check_envelope(s, true))
		return;
	if (s->tx.bdat)
		standin_replyid(s, "503 5.5.1 No DATA after BDAT.");
	else if (s->tx.nrcpt == 0)
		standin_replyid(s, "503 5.5.1 RCPT first.");
	else if (s->si->burst_left > 0) {
		s->si->burst_left--;
		standin_burst(s);
	} else if (standin_tx_open(s) == 0) {
		s->state = STANDIN_DATA;
		standin_reply(s, "354%sGo ahead %s - gsmtp", standin_gap(s),
		    s->id);
	}
}

/* BDAT size [LAST] (RFC 3030): the chunk is always read, even if refused. */
static void
standin_cmd_bdat(struct standin_sess *s, const char *arg)
{
	struct standin_tx	*tx = &s->tx;
	unsigned long long	 size;
	char			 num[24];
	size_t			 n;
	const char		*rest;

	n = strcspn(arg, " ");
	rest = arg + n + strspn(arg + n, " ");
	if (n == 0 || n >= sizeof(num) || (*rest != '\0' &&
	    strcasecmp(rest, "LAST") != 0)) {
		standin_replyid(s, "501 5.5.4 Syntax error in parameters.");
		standin_close_after(s);
		return;
	}
	memcpy(num, arg, n);
	num[n] = '\0';
	if (parse_uint(num, 0, ULLONG_MAX, &size) == -1) {
		standin_replyid(s, "501 5.5.4 Syntax error in parameters.");
		standin_close_after(s);
		return;
	}
	/* Sequence errors are answered after the chunk has been read. */
	if (!s->greeted || !s->authed || (s->si->mode == STANDIN_TLS_STARTTLS
	    && !s->tls) || !tx->active || tx->nrcpt == 0)
		tx->bdat_error = "503 5.5.1 RCPT first.";
	else if (!tx->bdat && s->si->burst_left > 0) {
		/* Answered once the chunk is read, as Gmail does. */
		s->si->burst_left--;
		tx->bdat_burst = true;
	} else if (standin_tx_open(s) == -1)
		tx->bdat_error = "451 4.3.0 Mail server temporarily rejected "
		    "message.";
	tx->bdat = tx->active;
	tx->bdat_left = size;
	tx->bdat_last = *rest != '\0';
	s->state = STANDIN_BDAT;
}

/* ---- Commands ---- */

/* EHLO name: Gmail's extension list, with STARTTLS or AUTH as fits. */
static void
standin_cmd_ehlo(struct standin_sess *s, const char *arg)
{
	bool	 offer_tls = s->si->mode == STANDIN_TLS_STARTTLS && !s->tls;
	char	 name[STANDIN_ADDR_MAX];

	if (*arg == '\0') {
		standin_reply(s, "501-5.5.4 Empty HELO/EHLO argument not "
		    "allowed, closing connection.");
		standin_replyid(s, "501 5.5.4  https://support.google.com/mail/"
		    "?p=helo");
		standin_close_after(s);
		return;
	}
	if (strcasecmp(arg, "localhost") == 0 ||
	    strncasecmp(arg, "localhost.", 10) == 0) {
		/* What Gmail says to a client that cannot name itself. */
		standin_event(s->si, "ehlo-refused %u", s->conn);
		standin_reply(s, "421-4.7.0 Try again later, closing connection. "
		    "(EHLO)");
		standin_replyid(s, "421 4.7.0  https://support.google.com/mail/"
		    "?p=helo");
		standin_close_after(s);
		return;
	}
	standin_event(s->si, "ehlo %u name=%s", s->conn,
	    standin_printable(arg, name, sizeof(name), false));
	standin_tx_reset(s);
	s->greeted = true;
	standin_reply(s, "250-%s at your service, [%s]", STANDIN_HOST, s->peer);
	standin_reply(s, "250-SIZE %llu", s->si->size_max);
	standin_reply(s, "250-8BITMIME");
	if (offer_tls)
		standin_reply(s, "250-STARTTLS");
	else
		standin_reply(s, "250-AUTH %s", s->si->mechs);
	standin_reply(s, "250-ENHANCEDSTATUSCODES");
	standin_reply(s, "250-PIPELINING");
	if (s->si->chunking)
		standin_reply(s, "250-CHUNKING");
	standin_reply(s, "250 SMTPUTF8");
}

/* HELO name: one line, no extensions. */
static void
standin_cmd_helo(struct standin_sess *s, const char *arg)
{
	if (*arg == '\0') {
		standin_cmd_ehlo(s, arg);
		return;
	}
	standin_tx_reset(s);
	s->greeted = true;
	standin_reply(s, "250 %s at your service", STANDIN_HOST);
}

/* STARTTLS: 220, then the handshake once the 220 has been written. */
static void
standin_cmd_starttls(struct standin_sess *s)
{
	struct evbuffer	*in = bufferevent_get_input(s->bev);

	if (s->si->mode == STANDIN_TLS_NONE)
		standin_replyid(s, "502 5.5.1 Unrecognized command.");
	else if (s->tls)
		standin_replyid(s, "454 5.5.1 STARTTLS may not be repeated.");
	else if (s->si->starttls_reply != NULL) {
		standin_event(s->si, "starttls-refused %u", s->conn);
		standin_reply(s, "%s", s->si->starttls_reply);
	}
	else if (evbuffer_get_length(in) > 0) {
		/* Pipelined plaintext is never carried into the TLS session. */
		log_debug("%u discarding %zu bytes after STARTTLS", s->conn,
		    evbuffer_get_length(in));
		evbuffer_drain(in, evbuffer_get_length(in));
		standin_replyid(s, "454 4.5.0 SMTP protocol violation, no "
		    "commands allowed to pipeline after STARTTLS, see RFC 3207.");
		standin_close_after(s);
	} else {
		standin_event(s->si, "starttls %u", s->conn);
		standin_reply(s, "220 2.0.0 Ready to start TLS");
		/* --inject-after-starttls: CVE-2011-0411, in the same write. */
		if (s->si->inject != NULL) {
			standin_event(s->si, "inject %u", s->conn);
			standin_reply(s, "%s", s->si->inject);
		}
		bufferevent_disable(s->bev, EV_READ);
		s->state = STANDIN_STARTTLS;
	}
}

/* An unrecognized command; too many of them end the session. */
static void
standin_cmd_unknown(struct standin_sess *s)
{
	if (++s->unknown > STANDIN_UNKNOWN_MAX) {
		standin_replyid(s, "502 5.5.1 Too many unrecognized commands, "
		    "goodbye.");
		standin_close_after(s);
	} else
		standin_replyid(s, "502 5.5.1 Unrecognized command.");
}

/* Show a command with -v, hiding what AUTH carries. */
static void
standin_show_cmd(struct standin_sess *s, const char *line,
    const struct smtp_cmd *cmd)
{
	int	 n;

	if (cmd->verb != SMTP_VERB_AUTH || *cmd->arg == '\0' ||
	    cmd->arg[strcspn(cmd->arg, " ")] == '\0') {
		log_debug("%u C: %s", s->conn, line);
		return;
	}
	n = (int)(cmd->arg - line) + (int)strcspn(cmd->arg, " ");
	log_debug("%u C: %.*s <hidden>", s->conn, n, line);
}

/* One command line in STANDIN_COMMAND. */
static void
standin_command(struct standin_sess *s, const char *line)
{
	struct smtp_cmd	 cmd;
	int		 syntax;

	syntax = smtp_cmd_parse(line, &cmd);
	standin_show_cmd(s, line, &cmd);
	switch (cmd.verb) {
	case SMTP_VERB_EHLO:
		standin_cmd_ehlo(s, cmd.arg);
		break;
	case SMTP_VERB_HELO:
		standin_cmd_helo(s, cmd.arg);
		break;
	case SMTP_VERB_STARTTLS:
		standin_cmd_starttls(s);
		break;
	case SMTP_VERB_AUTH:
		standin_cmd_auth(s, cmd.arg);
		break;
	case SMTP_VERB_MAIL:
		standin_cmd_mail(s, syntax == 0 ? cmd.arg : NULL);
		break;
	case SMTP_VERB_RCPT:
		standin_cmd_rcpt(s, syntax == 0 ? cmd.arg : NULL);
		break;
	case SMTP_VERB_DATA:
		standin_cmd_data(s);
		break;
	case SMTP_VERB_BDAT:
		standin_cmd_bdat(s, cmd.arg);
		break;
	case SMTP_VERB_RSET:
		standin_tx_reset(s);
		standin_replyid(s, "250 2.1.5 Flushed");
		break;
	case SMTP_VERB_NOOP:
		standin_replyid(s, "250 2.0.0 OK");
		break;
	case SMTP_VERB_QUIT:
		standin_replyid(s, "221 2.0.0 closing connection");
		standin_close_after(s);
		break;
	default:
		standin_cmd_unknown(s);
		break;
	}
}

/*
 * Take one line (CRLF or LF removed) into buf.  1 with a line, 0 when more
 * input is needed, -1 when an overlong line has just been discarded.
 */
static int
standin_getline(struct standin_sess *s, char *buf, size_t len)
{
	struct evbuffer		*in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr	 eol;
	size_t			 n, eol_len;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (eol.pos < 0) {
		if (evbuffer_get_length(in) >= len) {
			evbuffer_drain(in, evbuffer_get_length(in));
			s->skipping = true;
		}
		return 0;
	}
	n = (size_t)eol.pos;
	if (s->skipping || n >= len) {
		evbuffer_drain(in, n + eol_len);
		s->skipping = false;
		return -1;
	}
	evbuffer_remove(in, buf, n);
	evbuffer_drain(in, eol_len);
	buf[n] = '\0';
	if (strlen(buf) != n)
		return -1;	/* a NUL byte: treated like an unusable line */
	return 1;
}

/* Read and act on one line; false when no complete line is buffered. */
static bool
standin_line_feed(struct standin_sess *s)
{
	char	 line[STANDIN_LINE_MAX];
	int	 r;

	r = standin_getline(s, line, sizeof(line));
	if (r == 0)
		return false;
	if (r == -1) {
		s->state = STANDIN_COMMAND;
		standin_replyid(s, "500 5.5.2 Line too long or malformed.");
	} else if (s->state == STANDIN_COMMAND)
		standin_command(s, line);
	else {
		log_debug("%u C: <SASL response hidden>", s->conn);
		standin_sasl_line(s, line);
	}
	secure_zero(line, sizeof(line));
	return true;
}

/*
 * Act on everything buffered that the current state may read, then settle.
 * A client that does not read its replies is not served further until it
 * does (write_cb resumes), so neither buffer grows without bound.
 */
static void
standin_process(struct standin_sess *s)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	bool		 more = true;

	while (more && evbuffer_get_length(out) < STANDIN_OBUF_MAX) {
		switch (s->state) {
		case STANDIN_COMMAND:
		case STANDIN_AUTH_PLAIN:
		case STANDIN_AUTH_USER:
		case STANDIN_AUTH_PASS:
		case STANDIN_AUTH_XOAUTH2:
		case STANDIN_AUTH_XOERR:
			more = standin_line_feed(s);
			break;
		case STANDIN_DATA:
			more = standin_data_feed(s);
			break;
		case STANDIN_BDAT:
			more = standin_bdat_feed(s);
			break;
		default:
			more = false;
			break;
		}
	}
	if (s->state == STANDIN_DEAD)
		standin_sess_free(s);
	else if (s->state == STANDIN_CLOSING && evbuffer_get_length(out) == 0)
		standin_sess_close(s);
}

/* Input arrived. */
static void
standin_read_cb(struct bufferevent *bev, void *arg)
{
	UNUSED(bev);
	standin_process(arg);
}

/* The output has drained: finish a close or a STARTTLS, or read on. */
static void
standin_write_cb(struct bufferevent *bev, void *arg)
{
	struct standin_sess	*s = arg;

	UNUSED(bev);
	if (s->state == STANDIN_CLOSING)
		standin_sess_close(s);
	else if (s->state == STANDIN_STARTTLS)
		standin_starttls_upgrade(s);
	else if (s->state != STANDIN_HANDSHAKE)
		standin_process(s);
}

/* Handshake done, idle timeout, EOF or error. */
static void
standin_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct standin_sess	*s = arg;

	UNUSED(bev);
	if (what & BEV_EVENT_CONNECTED) {
		standin_tls_done(s);
		standin_process(s);
	} else if ((what & BEV_EVENT_TIMEOUT) && s->state != STANDIN_HANDSHAKE &&
	    s->state != STANDIN_CLOSING) {
		standin_tx_reset(s);
		standin_replyid(s, "451 4.4.2 Timeout - closing connection.");
		standin_close_after(s);
	} else {
		if (s->state == STANDIN_HANDSHAKE)
			standin_tls_failed(s, what);
		standin_sess_free(s);
	}
}

/* ---- Listener and process ---- */

/* A new connection: banner now, or after the handshake in 465 mode. */
static void
standin_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct standin		*si = arg;
	struct standin_sess	*s;

	UNUSED(l);
	UNUSED(salen);
	s = xcalloc(1, sizeof(*s));
	s->si = si;
	s->fd = fd;
	s->conn = ++si->nconn;
	standin_make_id(s->id, sizeof(s->id));
	if (sa->sa_family != AF_INET || inet_ntop(AF_INET,
	    &((struct sockaddr_in *)(void *)sa)->sin_addr, s->peer,
	    sizeof(s->peer)) == NULL)
		str_copy(s->peer, "127.0.0.1", sizeof(s->peer));
	TAILQ_INSERT_TAIL(&si->sessions, s, entry);
	/* --discard (the benchmark): no Nagle delay in front of replies. */
	if (si->discard)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
		    sizeof(int));
	standin_event(si, "connect %u", s->conn);
	if (si->mode == STANDIN_TLS_IMPLICIT) {
		s->bev = standin_tls_bev(s);
		s->fd_in_bev = s->bev != NULL;
		s->state = STANDIN_HANDSHAKE;
	} else {
		s->bev = bufferevent_socket_new(si->base, fd,
		    BEV_OPT_DEFER_CALLBACKS);
		s->state = STANDIN_COMMAND;
	}
	if (s->bev == NULL) {
		standin_sess_free(s);
		return;
	}
	standin_bev_setup(s);
	if (s->state == STANDIN_COMMAND)
		standin_reply(s, "220 %s ESMTP %s - gsmtp", STANDIN_HOST, s->id);
}

/* accept(2) failed (e.g. EMFILE): log and keep listening. */
static void
standin_accept_error_cb(struct evconnlistener *l, void *arg)
{
	UNUSED(l);
	UNUSED(arg);
	log_warn("accept");
}

/* SIGTERM or SIGINT: leave the loop; main frees everything. */
static void
standin_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct standin	*si = arg;

	UNUSED(what);
	log_debug("signal %d, exiting", (int)sig);
	event_base_loopbreak(si->base);
}

/* Continue numbering after the highest msg-NNNNNN.meta already in the dir. */
static void
standin_scan_maildir(struct standin *si)
{
	DIR			*d;
	struct dirent		*de;
	unsigned long long	 n;
	char			 num[8];

	if ((d = opendir(si->maildir)) == NULL)
		fatal("%s", si->maildir);
	while ((de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != 15 || strncmp(de->d_name, "msg-", 4) != 0 ||
		    strcmp(de->d_name + 10, ".meta") != 0)
			continue;
		memcpy(num, de->d_name + 4, 6);
		num[6] = '\0';
		if (parse_uint(num, 0, 999999, &n) == 0 && n > si->nmsg)
			si->nmsg = (unsigned)n;
	}
	closedir(d);
}

/* Bind 127.0.0.1:port and return the port actually bound. */
static unsigned
standin_listen(struct standin *si, unsigned port)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	si->listener = evconnlistener_new_bind(si->base, standin_accept_cb, si,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    -1, (struct sockaddr *)&sin, sizeof(sin));
	if (si->listener == NULL)
		fatal("listen on 127.0.0.1:%u", port);
	evconnlistener_set_error_cb(si->listener, standin_accept_error_cb);
	if (getsockname(evconnlistener_get_fd(si->listener),
	    (struct sockaddr *)&sin, &len) == -1)
		fatal("getsockname");
	return ntohs(sin.sin_port);
}

/* Write "port\n" to path atomically: tests wait for the file to appear. */
static void
standin_write_port(const char *path, unsigned port)
{
	char	*tmp;
	FILE	*fp;
	int	 bad;

	xasprintf(&tmp, "%s.tmp", path);
	if ((fp = fopen(tmp, "w")) == NULL)
		fatal("%s", tmp);
	fprintf(fp, "%u\n", port);
	bad = ferror(fp);
	if (fclose(fp) != 0 || bad)
		fatalx("%s: write failed", tmp);
	if (rename(tmp, path) == -1)
		fatal("rename %s", tmp);
	free(tmp);
}

/* Print the usage and exit 64 (EX_USAGE). */
static void __attribute__((noreturn))
standin_usage(void)
{
	fprintf(stderr,
	    "usage: standin --mail-dir DIR [--port N] [--port-file FILE]\n"
	    "               [--cert PEM --key PEM] [--password PW] [--token T]\n"
	    "               [--no-starttls | --tls-implicit] [--tempfail N]\n"
	    "               [--drop-in-data N] [--reject-rcpt] [--quota]\n"
	    "               [--idle-timeout SECONDS] [--tls-max 1.0|1.1|1.2|1.3]\n"
	    "               [--starttls-reply REPLY] [--inject-after-starttls LINE]\n"
	    "               [--discard] [--profile legacy|current]\n"
	    "               [--auth-fail bad|app-password|web-login|throttle|"
	    "temporary]\n"
	    "               [--auth-fail-count N] [--quota-count N]\n"
	    "               [--idle-at-mail N] [--burst-at-data N]\n"
	    "               [--drop-after-dot N] [--auth-mechs LIST]\n"
	    "               [--reject-domain DOMAIN] [--size N] [--rcpt-max N]\n"
	    "               [--no-chunking] [-v]\n");
	exit(64);
}

/* A numeric option in [min, max], or a usage error. */
static unsigned long long
standin_number(const char *name, const char *val, unsigned long long min,
    unsigned long long max)
{
	unsigned long long	 n;

	if (parse_uint(val, min, max, &n) == -1) {
		fprintf(stderr, "standin: --%s: bad value '%s'\n", name, val);
		standin_usage();
	}
	return n;
}

/* A --tls-max value: 1.0, 1.1, 1.2 or 1.3. */
static int
standin_tls_version(const char *val)
{
	static const struct {
		const char	*name;
		int		 version;
	} v[] = {
		{ "1.0", TLS1_VERSION }, { "1.1", TLS1_1_VERSION },
		{ "1.2", TLS1_2_VERSION }, { "1.3", TLS1_3_VERSION }
	};
	size_t	 i;

	for (i = 0; i < nitems(v); i++)
		if (strcmp(val, v[i].name) == 0)
			return v[i].version;
	fprintf(stderr, "standin: --tls-max: bad value '%s'\n", val);
	standin_usage();
}

/* A reply line given on the command line: printable, fits a reply. */
static const char *
standin_reply_arg(const char *name, const char *val)
{
	size_t	 i, len = strlen(val);

	for (i = 0; i < len; i++)
		if ((unsigned char)val[i] < 0x20 || (unsigned char)val[i] >= 0x7f)
			break;
	if (len < 3 || i < len || len > SMTP_REPLY_LINE_MAX - 3) {
		fprintf(stderr, "standin: --%s: bad reply line\n", name);
		standin_usage();
	}
	return val;
}

/* An --auth-fail mode: bad, app-password, web-login, throttle, temporary. */
static int
standin_auth_mode(const char *val)
{
	static const struct {
		const char	*name;
		int		 mode;
	} m[] = {
		{ "bad", STANDIN_AUTH_BAD }, { "app-password", STANDIN_AUTH_APP },
		{ "web-login", STANDIN_AUTH_WEB },
		{ "throttle", STANDIN_AUTH_THROTTLE },
		{ "temporary", STANDIN_AUTH_TEMP }
	};
	size_t	 i;

	for (i = 0; i < nitems(m); i++)
		if (strcmp(val, m[i].name) == 0)
			return m[i].mode;
	fprintf(stderr, "standin: --auth-fail: bad value '%s'\n", val);
	standin_usage();
}

struct standin_args {
	unsigned	 port;
	const char	*port_file;
	const char	*cert;
	const char	*key;
	int		 verbose;
};

/* Parse the command line into si and a; exits 64 on a usage error. */
static void
standin_getopt(int argc, char **argv, struct standin *si,
    struct standin_args *a)
{
	enum { O_PORT = 256, O_PORTFILE, O_CERT, O_KEY, O_MAILDIR, O_PASSWORD,
	    O_TOKEN, O_NOSTARTTLS, O_IMPLICIT, O_TEMPFAIL, O_REJECT, O_DROP, O_QUOTA,
	    O_IDLE, O_TLSMAX, O_STLSREPLY, O_INJECT, O_DISCARD, O_PROFILE,
	    O_AUTHFAIL, O_AUTHFAILN, O_QUOTAN, O_IDLEMAIL, O_BURST, O_DROPDOT,
	    O_MECHS, O_REJDOMAIN, O_SIZE, O_RCPTMAX, O_NOCHUNKING };
	static const struct option	 opts[] = {
		{ "port",		required_argument, NULL, O_PORT },
		{ "port-file",		required_argument, NULL, O_PORTFILE },
		{ "cert",		required_argument, NULL, O_CERT },
		{ "key",		required_argument, NULL, O_KEY },
		{ "mail-dir",		required_argument, NULL, O_MAILDIR },
		{ "password",		required_argument, NULL, O_PASSWORD },
		{ "token",		required_argument, NULL, O_TOKEN },
		{ "no-starttls",	no_argument,	   NULL, O_NOSTARTTLS },
		{ "tls-implicit",	no_argument,	   NULL, O_IMPLICIT },
		{ "tempfail",		required_argument, NULL, O_TEMPFAIL },
		{ "reject-rcpt",	no_argument,	   NULL, O_REJECT },
		{ "drop-in-data",	required_argument, NULL, O_DROP },
		{ "quota",		no_argument,	   NULL, O_QUOTA },
		{ "idle-timeout",	required_argument, NULL, O_IDLE },
		{ "discard",		no_argument,	   NULL, O_DISCARD },
		{ "no-chunking",	no_argument,	   NULL, O_NOCHUNKING },
		{ "tls-max",		required_argument, NULL, O_TLSMAX },
		{ "starttls-reply",	required_argument, NULL, O_STLSREPLY },
		{ "inject-after-starttls", required_argument, NULL, O_INJECT },
		{ "profile",		required_argument, NULL, O_PROFILE },
		{ "auth-fail",		required_argument, NULL, O_AUTHFAIL },
		{ "auth-fail-count",	required_argument, NULL, O_AUTHFAILN },
		{ "quota-count",	required_argument, NULL, O_QUOTAN },
		{ "idle-at-mail",	required_argument, NULL, O_IDLEMAIL },
		{ "burst-at-data",	required_argument, NULL, O_BURST },
		{ "drop-after-dot",	required_argument, NULL, O_DROPDOT },
		{ "auth-mechs",		required_argument, NULL, O_MECHS },
		{ "reject-domain",	required_argument, NULL, O_REJDOMAIN },
		{ "size",		required_argument, NULL, O_SIZE },
		{ "rcpt-max",		required_argument, NULL, O_RCPTMAX },
		{ "verbose",		no_argument,	   NULL, 'v' },
		{ NULL,			0,		   NULL, 0 }
	};
	int	 ch;

	while ((ch = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (ch) {
		case O_PORT:
			a->port = (unsigned)standin_number("port", optarg, 0,
			    65535);
			break;
		case O_PORTFILE:
			a->port_file = optarg;
			break;
		case O_CERT:
			a->cert = optarg;
			break;
		case O_KEY:
			a->key = optarg;
			break;
		case O_MAILDIR:
			si->maildir = optarg;
			break;
		case O_PASSWORD:
			si->password = optarg;
			break;
		case O_TOKEN:
			si->token = optarg;
			break;
		case O_NOSTARTTLS:
			if (si->mode == STANDIN_TLS_IMPLICIT)
				standin_usage();
			si->mode = STANDIN_TLS_NONE;
			break;
		case O_IMPLICIT:
			if (si->mode == STANDIN_TLS_NONE)
				standin_usage();
			si->mode = STANDIN_TLS_IMPLICIT;
			break;
		case O_TEMPFAIL:
			si->tempfail_left = standin_number("tempfail", optarg,
			    0, UINT_MAX);
			break;
		case O_REJECT:
			si->reject_rcpt = true;
			break;
		case O_DROP:
			si->drop_left = standin_number("drop-in-data", optarg,
			    0, UINT_MAX);
			break;
		case O_QUOTA:
			si->quota = true;
			break;
		case O_IDLE:
			si->idle = (unsigned)standin_number("idle-timeout",
			    optarg, 1, 86400);
			break;
		case O_TLSMAX:
			si->tls_max = standin_tls_version(optarg);
			break;
		case O_STLSREPLY:
			si->starttls_reply = standin_reply_arg("starttls-reply",
			    optarg);
			break;
		case O_INJECT:
			si->inject = standin_reply_arg("inject-after-starttls",
			    optarg);
			break;
		case O_DISCARD:
			si->discard = true;
			break;
		case O_NOCHUNKING:
			si->chunking = false;
			break;
		case O_PROFILE:
			if (strcmp(optarg, "legacy") == 0)
				si->legacy = true;
			else if (strcmp(optarg, "current") != 0)
				standin_usage();
			break;
		case O_AUTHFAIL:
			si->auth_fail = standin_auth_mode(optarg);
			break;
		case O_AUTHFAILN:
			si->auth_fail_left = standin_number("auth-fail-count",
			    optarg, 0, UINT_MAX);
			break;
		case O_QUOTAN:
			si->quota_left = standin_number("quota-count", optarg,
			    0, UINT_MAX);
			break;
		case O_IDLEMAIL:
			si->idle_left = standin_number("idle-at-mail", optarg,
			    0, UINT_MAX);
			break;
		case O_BURST:
			si->burst_left = standin_number("burst-at-data", optarg,
			    0, UINT_MAX);
			break;
		case O_DROPDOT:
			si->dropdot_left = standin_number("drop-after-dot",
			    optarg, 0, UINT_MAX);
			break;
		case O_MECHS:
			si->mechs = standin_reply_arg("auth-mechs", optarg);
			break;
		case O_REJDOMAIN:
			si->reject_domain = optarg;
			break;
		case O_SIZE:
			si->size_max = standin_number("size", optarg, 1,
			    STANDIN_SIZE_MAX);
			break;
		case O_RCPTMAX:
			si->rcpt_max = (size_t)standin_number("rcpt-max", optarg,
			    1, STANDIN_RCPT_MAX);
			break;
		case 'v':
			a->verbose++;
			break;
		default:
			standin_usage();
		}
	}
	if (optind != argc || si->maildir == NULL)
		standin_usage();
	if (si->mode != STANDIN_TLS_NONE && (a->cert == NULL || a->key == NULL)) {
		fprintf(stderr, "standin: TLS needs --cert and --key\n");
		standin_usage();
	}
	if (strlen(si->maildir) > PATH_MAX - 64)
		fatalx("--mail-dir: path too long");
}

/*
 * The server context.  With --tls-max below 1.2 the stand-in really offers
 * TLS 1.0/1.1: security level 0 lets OpenSSL 3 negotiate them, so it is
 * the client that must refuse.
 */
static void
standin_tls_ctx(struct standin *si, const struct standin_args *a)
{
	char	 err[256];
	int	 min = TLS1_2_VERSION;

	if (si->tls_max != 0 && si->tls_max < TLS1_2_VERSION)
		min = TLS1_VERSION;
	if ((si->ctx = tls_server_ctx(a->cert, a->key, min, si->tls_max, err,
	    sizeof(err))) == NULL)
		fatalx("TLS: %s", err);
	if (min < TLS1_2_VERSION) {
		SSL_CTX_set_security_level(si->ctx, 0);
		if (SSL_CTX_set_cipher_list(si->ctx, "DEFAULT:@SECLEVEL=0") != 1)
			fatalx("TLS: cipher list: %s", tls_strerror(err,
			    sizeof(err)));
	}
}

/* Set up, run the loop until SIGTERM/SIGINT, free everything, exit 0. */
int
main(int argc, char **argv)
{
	struct standin		*si;
	struct standin_args	 a;
	struct standin_sess	*s;
	char			*path;
	unsigned		 port;

	si = xcalloc(1, sizeof(*si));
	memset(&a, 0, sizeof(a));
	si->idle = STANDIN_IDLE_DEFAULT;
	si->mechs = STANDIN_MECHS;
	si->size_max = STANDIN_SIZE_MAX;
	si->rcpt_max = STANDIN_RCPT_MAX;
	si->chunking = true;
	si->auth_fail_left = ULLONG_MAX;
	TAILQ_INIT(&si->sessions);
	standin_getopt(argc, argv, si, &a);
	log_init(LOG_SINK_STDERR, a.verbose, "standin");
	signal(SIGPIPE, SIG_IGN);

	if (mkdir(si->maildir, 0700) == -1 && errno != EEXIST)
		fatal("mkdir %s", si->maildir);
	standin_scan_maildir(si);
	xasprintf(&path, "%s/events.log", si->maildir);
	if ((si->events = fopen(path, "a")) == NULL)
		fatal("%s", path);
	free(path);
	if (si->mode != STANDIN_TLS_NONE)
		standin_tls_ctx(si, &a);
	if ((si->base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	si->ev_term = evsignal_new(si->base, SIGTERM, standin_signal_cb, si);
	si->ev_int = evsignal_new(si->base, SIGINT, standin_signal_cb, si);
	if (si->ev_term == NULL || si->ev_int == NULL ||
	    evsignal_add(si->ev_term, NULL) == -1 ||
	    evsignal_add(si->ev_int, NULL) == -1)
		fatalx("signal events failed");
	port = standin_listen(si, a.port);
	if (a.port_file != NULL)
		standin_write_port(a.port_file, port);
	log_info("listening on 127.0.0.1:%u (%s)", port,
	    si->mode == STANDIN_TLS_IMPLICIT ? "implicit TLS" :
	    si->mode == STANDIN_TLS_NONE ? "no TLS" : "STARTTLS");

	event_base_dispatch(si->base);

	while ((s = TAILQ_FIRST(&si->sessions)) != NULL)
		standin_sess_free(s);
	evconnlistener_free(si->listener);
	event_free(si->ev_term);
	event_free(si->ev_int);
	event_base_free(si->base);
	SSL_CTX_free(si->ctx);
	fclose(si->events);
	free(si);
	libevent_global_shutdown();
	return 0;
}
