/*
 * relay.c: one outbound SMTP connection delivering queued messages.
 *
 * The session is a state machine on a single bufferevent, in the shape of
 * OpenSMTPD's smtp_client.c: relay_enter() sends the command of a state
 * (or skips on to another state), relay_response() judges one complete
 * reply and picks the next state:
 *
 *	RESOLVE -> BANNER -> EHLO -> STARTTLS -> TLS -> EHLO2 -> AUTH ->
 *	(AUTH_PLAIN | AUTH_LOGIN -> AUTH_LOGIN_USER -> AUTH_LOGIN_PASS |
 *	AUTH_XOAUTH2 [-> AUTH_XOAUTH2_ERR]) ->
 *	MAIL -> RCPT (once per recipient) -> DATA -> BODY -> EOM -> QUIT
 *
 * With implicit TLS the handshake follows the TCP connect and the banner
 * comes over TLS: RESOLVE -> TLS -> BANNER -> EHLO2 -> ...  A transaction
 * carries at most RELAY_RCPT_TX_MAX recipients; recipients left over (or
 * refused with 452 4.5.3) go in another transaction, EOM -> MAIL.  With
 * connection reuse (relay_params.next) a message that ended with the
 * connection still good is followed by the next one: EOM -> MAIL, or
 * RSET -> MAIL after a refused one.  What each reply calls for is
 * relay_policy.c's.
 *
 * Credentials cross only a verified TLS channel: STARTTLS is mandatory,
 * the handshake must verify the certificate against the configured host
 * name, and RELAY_AUTH refuses to run unless tls_ok is set.  Only on the
 * TLS session, and when the server offers PIPELINING, do MAIL, RCPT and
 * DATA go out together.  When it also offers CHUNKING (RFC 3030) and the
 * message is small (RELAY_BDAT_MAX), "BDAT <size> LAST" and the message
 * itself take DATA's place in that group, so a message on a reused
 * connection costs one round trip instead of two: MAIL -> RCPT... ->
 * BDAT, whose reply is the final one.  Otherwise a reply followed by more
 * bytes ("trailing data") ends the session.  After STARTTLS's 220 that is
 * plaintext injection and nothing of it is ever acted on.  The final
 * reply (to the dot, or to BDAT LAST) is the other exception: once it
 * begins with 2xx the message is delivered, and nothing that follows
 * (trailing bytes, a broken rest of the reply, EOF, a timeout) may turn
 * that into a retry that sends it twice.  Lost after the message went out
 * with no final reply (and none before it that rules a delivery out), the
 * message is "uncertain" (relay_outcome).
 *
 * In check-only mode (relayqd --check-relay) the session ends after a
 * successful AUTH with QUIT and RELAY_OK; a transcript callback then
 * shows the dialogue, AUTH data masked.
 *
 * relay_report() gives each message's result to the done callback once;
 * relay_finish() is the one teardown: it reports the open message, tells
 * relay_params.closed, and frees the session.  Failures after a server
 * reply go through RELAY_QUIT first, so the server sees a polite QUIT.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dotstuff.h"
#include "log.h"
#include "relay.h"
#include "relay_policy.h"
#include "sasl.h"
#include "smtp_proto.h"
#include "tls.h"
#include "util.h"

#define RELAY_READ_HIWAT	(2 * SMTP_REPLY_MAX)
#define RELAY_OBUF_MAX		(64 * 1024)	/* body bytes queued at most */
#define RELAY_IBUF_SIZE		(8 * 1024)	/* one read from the .eml */
/*
 * The largest message sent with BDAT LAST in the pipelined group, read
 * whole into memory: a refused MAIL or RCPT then wastes at most this
 * much.  A larger one waits for 354 and streams.
 */
#define RELAY_BDAT_MAX		(256 * 1024)
#define RELAY_REASON_MAX	(SMTP_CMD_MAX + SMTP_REPLY_MAX + 64)
#define RELAY_SECRET_MAX	4096		/* "AUTH XOAUTH2 " + base64 */

enum relay_state {
	RELAY_RESOLVE,
	RELAY_BANNER,
	RELAY_EHLO,
	RELAY_STARTTLS,
	RELAY_TLS,
	RELAY_EHLO2,
	RELAY_AUTH,
	RELAY_AUTH_PLAIN,
	RELAY_AUTH_LOGIN,
	RELAY_AUTH_LOGIN_USER,
	RELAY_AUTH_LOGIN_PASS,
	RELAY_AUTH_XOAUTH2,
	RELAY_AUTH_XOAUTH2_ERR,
	RELAY_RSET,
	RELAY_MAIL,
	RELAY_RCPT,
	RELAY_DATA,
	RELAY_BDAT,
	RELAY_BODY,
	RELAY_EOM,
	RELAY_QUIT
};

/*
 * Per state: its name for logs, the stage named in "connection lost in"
 * reasons, the reply code that lets the session go on (0: no reply is
 * awaited) and the RFC 5321 4.5.3.2 timeout in seconds.
 */
static const struct {
	const char	*name;
	const char	*stage;
	int		 expect;
	int		 timeout;
} relay_states[] = {
	[RELAY_RESOLVE] =		{ "RESOLVE", "connect", 0, 300 },
	[RELAY_BANNER] =		{ "BANNER", "banner", 220, 300 },
	[RELAY_EHLO] =			{ "EHLO", "EHLO", 250, 300 },
	[RELAY_STARTTLS] =		{ "STARTTLS", "STARTTLS", 220, 300 },
	[RELAY_TLS] =			{ "TLS", "TLS handshake", 0, 300 },
	[RELAY_EHLO2] =			{ "EHLO2", "EHLO", 250, 300 },
	[RELAY_AUTH] =			{ "AUTH", "AUTH", 0, 300 },
	[RELAY_AUTH_PLAIN] =		{ "AUTH_PLAIN", "AUTH", 235, 300 },
	[RELAY_AUTH_LOGIN] =		{ "AUTH_LOGIN", "AUTH", 334, 300 },
	[RELAY_AUTH_LOGIN_USER] =	{ "AUTH_LOGIN_USER", "AUTH", 334, 300 },
	[RELAY_AUTH_LOGIN_PASS] =	{ "AUTH_LOGIN_PASS", "AUTH", 235, 300 },
	[RELAY_AUTH_XOAUTH2] =		{ "AUTH_XOAUTH2", "AUTH", 235, 300 },
	[RELAY_AUTH_XOAUTH2_ERR] =	{ "AUTH_XOAUTH2_ERR", "AUTH", 235, 300 },
	[RELAY_RSET] =			{ "RSET", "RSET", 250, 300 },
	[RELAY_MAIL] =			{ "MAIL", "MAIL", 250, 300 },
	[RELAY_RCPT] =			{ "RCPT", "RCPT", 250, 300 },
	[RELAY_DATA] =			{ "DATA", "DATA", 354, 120 },
	[RELAY_BODY] =			{ "BODY", "DATA", 0, 180 },
	[RELAY_BDAT] =			{ "BDAT", "BDAT", 250, 600 },
	[RELAY_EOM] =			{ "EOM", "DATA", 250, 600 },
	[RELAY_QUIT] =			{ "QUIT", "QUIT", 221, 60 },
};

struct relay {
	enum relay_state	 state;
	struct bufferevent	*bev;		/* the one bufferevent */
	struct event_base	*base;
	struct evdns_base	*dns;
	SSL_CTX			*ssl_ctx;
	char			*host;
	char			*port;
	char			*helo;
	char			 literal[INET6_ADDRSTRLEN + 8]; /* our address */
	enum relay_tls_mode	 tls;
	int			 timeout;	/* 0: per-state defaults */
	bool			 check_only;	/* stop after AUTH */
	void			(*transcript)(void *, const char *,
				    const char *);
	void			*transcript_arg;

	const char		*id;		/* idbuf */
	char			 idbuf[64];	/* outlives the job's entry */
	const char		*sender;
	char *const		*rcpt;
	size_t			 nrcpt;
	size_t			 rcptidx;
	struct relay_rcpt_result *rr;		/* nrcpt: what became of each */
	bool			*intx;		/* accepted in this transaction */
	size_t			 ntx;		/* RCPTs sent in it */
	size_t			 naccepted;	/* of them accepted */
	/*
	 * PIPELINING (RFC 2920), after TLS only: MAIL, the transaction's
	 * RCPTs and DATA go out together and their replies are read in
	 * order.  pl_left replies are still due; pl_idx lists the
	 * recipients sent; pl_hold keeps a refusal of MAIL, or the first
	 * RCPT reply that was neither 250 nor a refusal of that recipient,
	 * to be judged once the group's replies are in.
	 */
	bool			 pipelining;
	size_t			 pl_left;
	size_t			*pl_idx;
	size_t			 pl_n;
	size_t			 pl_pos;
	bool			 pl_mail_ok;
	bool			 pl_held;
	enum relay_state	 pl_held_state;
	char			 pl_mailcmd[SMTP_CMD_MAX];
	struct smtp_reply	 pl_hold;
	/*
	 * CHUNKING (RFC 3030) with PIPELINING, for a message of at most
	 * RELAY_BDAT_MAX: "BDAT <size> LAST" and the message end the group
	 * instead of DATA, so its reply, read after MAIL's and the RCPTs',
	 * is the final one.  bdat holds the message read for the next
	 * group; bdat_out says the current group carried it.
	 */
	struct evbuffer		*bdat;
	bool			 bdat_out;
	/*
	 * A 2xx out of step in the group (relay_pl_in_step): the rest of
	 * the group is read without being judged, then the session fails
	 * (never earlier: the replies to MAIL and RCPT must not end it).
	 */
	bool			 pl_desync;
	char			 pl_desync_why[RELAY_REASON_MAX];
	bool			 chunking;	/* BDAT allowed (config) */
	int			 msgfd;
	off_t			 msgsize;
	struct sasl_cred	 cred;

	relay_done_cb		 done;
	void			*arg;
	bool			 job_open;	/* done not yet called for it */
	struct relay_job	*(*next)(void *);
	void			(*closed)(void *);
	void			*conn_arg;
	unsigned		 max_msgs;
	unsigned		 nmsgs;		/* jobs taken on this connection */
	struct relay_outcome	*outcome;	/* the job's, or NULL */
	enum relay_reaction	 reaction;	/* of the deciding reply */
	bool			 authed;
	bool			 auth_sent;
	bool			 uncertain;
	bool			 finishing;
	bool			 tls_ok;	/* verified TLS is up */
	bool			 accepted;	/* a 2xx began the EOM reply */

	struct smtp_reply	 reply;
	struct smtp_ehlo	 ehlo;
	struct dotstuff		 ds;

	/* What RELAY_QUIT reports once the server has answered or gone. */
	enum relay_result	 result;
	char			 reason[RELAY_REASON_MAX];

	char			 cmd[SMTP_CMD_MAX];	/* last command, for reasons */
	char			 line[SMTP_REPLY_LINE_MAX];
	char			 ibuf[RELAY_IBUF_SIZE];
	char			 obuf[3 * RELAY_IBUF_SIZE];
};

static void	relay_enter(struct relay *, enum relay_state);
static void	relay_response(struct relay *);
static void	relay_finish(struct relay *, enum relay_result, const char *);
static void	relay_tx_delivered(struct relay *, const char *);
static void	relay_next_rcpt(struct relay *);
static void	relay_pl_send(struct relay *);
static void	relay_rcpts_done(struct relay *);
static void	relay_eom_response(struct relay *);
static void	relay_quit(struct relay *, enum relay_result, const char *);
static void	relay_fail(struct relay *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	relay_send(struct relay *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	relay_show(struct relay *, const char *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	relay_read_cb(struct bufferevent *, void *);
static void	relay_write_cb(struct bufferevent *, void *);
static void	relay_event_cb(struct bufferevent *, short, void *);

/* Free everything the session owns; the credential copy is wiped. */
static void
relay_free(struct relay *r)
{
	if (r->bev != NULL)
		bufferevent_free(r->bev);
	if (r->msgfd != -1)
		close(r->msgfd);
	if (r->ssl_ctx != NULL)
		SSL_CTX_free(r->ssl_ctx);
	secure_zero(&r->cred, sizeof(r->cred));
	free(r->rr);
	free(r->intx);
	free(r->pl_idx);
	if (r->bdat != NULL)
		evbuffer_free(r->bdat);
	free(r->host);
	free(r->port);
	free(r->helo);
	free(r);
}

/* Report the current job's result once: its outcome, then done. */
static void
relay_report(struct relay *r, enum relay_result result, const char *reason)
{
	if (!r->job_open)
		return;
	r->job_open = false;
	log_debug("%s relay finished in %s result=%d reaction=%s "
	    "reason=\"%s\"", r->id, relay_states[r->state].name, (int)result,
	    relay_policy_name(r->reaction), reason);
	if (r->outcome != NULL) {
		if (r->outcome->rcpts != NULL && r->rr != NULL)
			memcpy(r->outcome->rcpts, r->rr,
			    r->nrcpt * sizeof(*r->rr));
		r->outcome->reaction = r->reaction;
		r->outcome->authed = r->authed;
		r->outcome->auth_sent = r->auth_sent;
		r->outcome->uncertain = r->uncertain;
	}
	if (r->msgfd != -1) {
		close(r->msgfd);
		r->msgfd = -1;
	}
	r->done(r->arg, result, reason);
}

/*
 * The one teardown: report the open job's result, say the connection is
 * gone, then free the session.
 */
static void
relay_finish(struct relay *r, enum relay_result result, const char *reason)
{
	if (r->finishing)
		return;
	r->finishing = true;
	relay_report(r, result, reason);
	if (r->closed != NULL)
		r->closed(r->conn_arg);
	relay_free(r);
}

/*
 * Take a job: copy what must outlive the caller, wipe its credential.
 * False (nothing taken but the message file closed) when it does not
 * carry the connection's credentials.
 */
static bool
relay_take(struct relay *r, struct relay_job *job)
{
	struct stat	 st;
	bool		 same;

	same = strcmp(job->cred.user, r->cred.user) == 0 &&
	    strcmp(job->cred.pass, r->cred.pass) == 0 &&
	    job->cred.mech == r->cred.mech;
	secure_zero(&job->cred, sizeof(job->cred));
	if (!same) {
		if (job->msgfd != -1)
			close(job->msgfd);
		job->msgfd = -1;
		return false;
	}
	r->msgfd = job->msgfd;
	job->msgfd = -1;
	str_copy(r->idbuf, job->id, sizeof(r->idbuf));
	r->sender = job->sender;
	r->rcpt = job->rcpt;
	r->nrcpt = job->nrcpt;
	free(r->rr);
	free(r->intx);
	free(r->pl_idx);
	r->rr = xcalloc(r->nrcpt + 1, sizeof(*r->rr));
	r->intx = xcalloc(r->nrcpt + 1, sizeof(*r->intx));
	r->pl_idx = xcalloc(r->nrcpt + 1, sizeof(*r->pl_idx));
	r->outcome = job->outcome;
	if (job->done_arg != NULL)
		r->arg = job->done_arg;
	r->reaction = RELAY_REACT_RETRY;
	r->accepted = false;
	r->uncertain = false;
	r->bdat_out = false;
	r->auth_sent = false;
	r->msgsize = 0;
	if (r->msgfd != -1 && fstat(r->msgfd, &st) == 0)
		r->msgsize = st.st_size;
	r->job_open = true;
	r->nmsgs++;
	return true;
}

/*
 * A message ended with the connection still good: report it, and carry
 * the next job of the same credentials over the same connection (RSET
 * first when rset), or QUIT.
 */
static void
relay_end_message(struct relay *r, enum relay_result result,
    const char *reason, bool rset)
{
	struct relay_job	*job;
	unsigned		 max = r->max_msgs > 0 ? r->max_msgs : 1;

	if (r->next == NULL || r->nmsgs >= max || r->check_only) {
		relay_quit(r, result, reason);
		return;
	}
	relay_report(r, result, reason);
	if ((job = r->next(r->conn_arg)) == NULL) {
		relay_quit(r, result, reason);
		return;
	}
	if (!relay_take(r, job)) {
		log_warnx("%s relay: a job with other credentials refused",
		    job->id);
		relay_quit(r, result, reason);
		return;
	}
	log_info("%s attempt relay=%s:%s (connection reused, message %u)",
	    r->id, r->host, r->port, r->nmsgs);
	relay_enter(r, rset ? RELAY_RSET : RELAY_MAIL);
}

/*
 * True when the reply awaited now is the final one, to the message (not
 * once the group's replies are out of step: then none is trusted).
 */
static bool
relay_final(const struct relay *r)
{
	return r->state == RELAY_EOM || (r->state == RELAY_BDAT &&
	    !r->pl_desync && r->pl_mail_ok && r->naccepted > 0);
}

/*
 * True when the server may have the message though its final reply was
 * not read: the final dot went out, or a pipelined BDAT LAST did and no
 * reply read so far (a refused MAIL, every RCPT refused) rules it out.
 */
static bool
relay_may_have_it(const struct relay *r)
{
	if (r->state == RELAY_EOM)
		return true;
	if (!r->bdat_out)
		return false;
	if (r->pl_desync)
		return true;
	switch (r->state) {
	case RELAY_MAIL:
		return true;
	case RELAY_RCPT:
		return r->pl_mail_ok;
	case RELAY_BDAT:
		return r->pl_mail_ok && r->naccepted > 0;
	default:
		return false;
	}
}

/*
 * A local failure on a connection that can no longer be trusted: finish
 * TEMPFAIL at once, sending nothing more.  In RELAY_QUIT the outcome is
 * already decided (a failed QUIT after the 250 still means delivered),
 * and so it is once the reply to the final dot has begun with 2xx:
 * whatever breaks after that, the server has the message, and sending
 * it again would deliver it twice.
 */
static void
relay_fail(struct relay *r, const char *fmt, ...)
{
	char	 reason[RELAY_REASON_MAX];
	va_list	 ap;

	if (r->state == RELAY_QUIT) {
		relay_finish(r, r->result, r->reason);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	/* Out of step, what comes next is no news: say what went wrong. */
	if (r->pl_desync)
		str_copy(reason, r->pl_desync_why, sizeof(reason));
	if (relay_final(r) && r->accepted) {
		log_warnx("%s relay=%s:%s accepted the message, then: %s",
		    r->id, r->host, r->port, reason);
		relay_tx_delivered(r, r->reason);
		r->reaction = RELAY_REACT_DELIVERED;
		relay_finish(r, RELAY_OK, r->reason);
		return;
	}
	/*
	 * The whole message and its final dot (or BDAT LAST) went out and
	 * no reply came that rules a delivery out: Gmail may have it.  The
	 * entry says so; the retry sends the same bytes (same Message-ID),
	 * which Gmail uses to drop duplicates.
	 */
	if (relay_may_have_it(r)) {
		r->uncertain = true;
		log_warnx("%s relay=%s:%s delivery uncertain: %s", r->id,
		    r->host, r->port, reason);
	}
	r->reaction = RELAY_REACT_RETRY;
	relay_finish(r, RELAY_TEMPFAIL, reason);
}

/* The transaction's accepted recipients are delivered, with reply. */
static void
relay_tx_delivered(struct relay *r, const char *reply)
{
	size_t	 i;

	for (i = 0; i < r->nrcpt; i++) {
		if (!r->intx[i])
			continue;
		r->intx[i] = false;
		r->rr[i].status = RELAY_RCPT_DELIVERED;
		str_copy(r->rr[i].reply, reply, sizeof(r->rr[i].reply));
	}
}

/* Decide the outcome now, say QUIT, and report once the server answers. */
static void
relay_quit(struct relay *r, enum relay_result result, const char *reason)
{
	r->result = result;
	if (reason != r->reason)
		str_copy(r->reason, reason, sizeof(r->reason));
	relay_enter(r, RELAY_QUIT);
}

/* Apply the current state's timeouts to the bufferevent. */
static void
relay_set_timeouts(struct relay *r)
{
	struct timeval	 tv;

	tv.tv_sec = r->timeout > 0 ? r->timeout :
	    relay_states[r->state].timeout;
	tv.tv_usec = 0;
	/* While the body streams out the server is silent: time writes only. */
	if (r->state == RELAY_BODY)
		bufferevent_set_timeouts(r->bev, NULL, &tv);
	else
		bufferevent_set_timeouts(r->bev, &tv, &tv);
}

/*
 * Show one line of the dialogue to the transcript callback, if any.  The
 * line goes to a terminal (relayqd --check-relay), so a server's control
 * bytes (ESC sequences, C1 controls, DEL) and any non-ASCII byte become
 * '?': what the server says cannot drive the terminal.
 */
static void
relay_show(struct relay *r, const char *dir, const char *fmt, ...)
{
	char	 line[SMTP_REPLY_LINE_MAX + 64];
	va_list	 ap;
	size_t	 i;

	if (r->transcript == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (i = 0; line[i] != '\0'; i++)
		if ((unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] > 0x7e)
			line[i] = '?';
	r->transcript(r->transcript_arg, dir, line);
}

/* Send one command line; r->cmd keeps it for failure reasons. */
static void
relay_send(struct relay *r, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(r->cmd, sizeof(r->cmd) - 2, fmt, ap);
	va_end(ap);
	log_debug("%s relay C: %s", r->id, r->cmd);
	relay_show(r, "C", "%s", r->cmd);
	bufferevent_write(r->bev, r->cmd, strlen(r->cmd));
	bufferevent_write(r->bev, "\r\n", 2);
}

/* evbuffer cleanup for a line that held a secret: wipe, then free it. */
static void
relay_secret_cleanup(const void *data, size_t len, void *extra)
{
	UNUSED(data);
	secure_zero(extra, len);
	free(extra);
}

/*
 * Send "<prefix><base64>\r\n" where the base64 carries a secret.  The
 * line is handed to libevent by reference, so no copy of it is left in
 * freed evbuffer memory: the cleanup wipes it once it is written.
 * shown is what logs and failure reasons say instead.
 */
static int
relay_send_secret(struct relay *r, const char *shown, const char *prefix,
    const char *field)
{
	struct evbuffer	*out;
	char		*line;
	size_t		 plen, len;
	int		 rv;

	line = xmalloc(RELAY_SECRET_MAX);
	plen = strlen(prefix);
	memcpy(line, prefix, plen);
	if (field == NULL && r->cred.mech == SASL_MECH_XOAUTH2)
		rv = sasl_xoauth2_encode(&r->cred, line + plen,
		    RELAY_SECRET_MAX - plen - 2);
	else if (field == NULL)
		rv = sasl_plain_encode(&r->cred, line + plen,
		    RELAY_SECRET_MAX - plen - 2);
	else
		rv = sasl_login_encode(field, line + plen,
		    RELAY_SECRET_MAX - plen - 2);
	if (rv == -1) {
		secure_zero(line, RELAY_SECRET_MAX);
		free(line);
		return -1;
	}
	len = strlen(line);
	memcpy(line + len, "\r\n", 2);
	len += 2;
	str_copy(r->cmd, shown, sizeof(r->cmd));
	log_debug("%s relay C: %s ********", r->id, shown);
	relay_show(r, "C", "%s ********", shown);
	out = bufferevent_get_output(r->bev);
	if (evbuffer_add_reference(out, line, len, relay_secret_cleanup,
	    line) == -1) {
		secure_zero(line, RELAY_SECRET_MAX);
		free(line);
		return -1;
	}
	return 0;
}

/* The step the current state's reply answers, for relay_policy. */
static enum relay_stage
relay_stage(const struct relay *r)
{
	switch (r->state) {
	case RELAY_AUTH:
	case RELAY_AUTH_PLAIN:
	case RELAY_AUTH_LOGIN:
	case RELAY_AUTH_LOGIN_USER:
	case RELAY_AUTH_LOGIN_PASS:
	case RELAY_AUTH_XOAUTH2:
	case RELAY_AUTH_XOAUTH2_ERR:
		return RELAY_STAGE_AUTH;
	case RELAY_MAIL:
		return RELAY_STAGE_MAIL;
	case RELAY_RCPT:
		return RELAY_STAGE_RCPT;
	case RELAY_DATA:
	case RELAY_BODY:
		return RELAY_STAGE_DATA;
	case RELAY_BDAT:
	case RELAY_EOM:
	case RELAY_QUIT:
		return RELAY_STAGE_EOM;
	default:
		return RELAY_STAGE_CONNECT;
	}
}

/* The reply is not the one the state waits for: judge it and QUIT. */
static void
relay_reply_fail(struct relay *r)
{
	char			 one[SMTP_REPLY_MAX + 8];
	char			 reason[RELAY_REASON_MAX];
	enum relay_result	 result;
	int			 class;

	smtp_reply_oneline(&r->reply, one, sizeof(one));
	class = smtp_reply_class(&r->reply);
	if (class == 4 || class == 5) {
		/* No TLS is never the message's fault: keep it queued. */
		if (r->state == RELAY_STARTTLS && r->reply.code != 421)
			r->reaction = RELAY_REACT_RETRY;
		else
			r->reaction = relay_policy_react(relay_stage(r),
			    &r->reply);
		result = relay_policy_result(r->reaction);
		snprintf(reason, sizeof(reason), "%s: %s", r->cmd, one);
	} else {
		r->reaction = RELAY_REACT_RETRY;
		result = RELAY_TEMPFAIL;
		snprintf(reason, sizeof(reason), "%s: unexpected reply: %s",
		    r->cmd, one);
	}
	/*
	 * A refusal of this message alone leaves the connection good for
	 * the next one; 421, 451 4.4.2 and account-level replies end it.
	 */
	if ((class == 4 || class == 5) && r->state >= RELAY_MAIL &&
	    r->state <= RELAY_EOM && r->state != RELAY_BODY &&
	    (r->reaction == RELAY_REACT_MSG_FAIL ||
	    r->reaction == RELAY_REACT_RCPT_FAIL ||
	    r->reaction == RELAY_REACT_RETRY)) {
		relay_end_message(r, result, reason, true);
		return;
	}
	relay_quit(r, result, reason);
}

/*
 * The relay writes a command and waits for its reply, so Nagle's
 * algorithm only holds back the second small segment of a command (a TLS
 * record split, the AUTH line) until the server's delayed ACK, about
 * 40 ms a step.  Turn it off.  A Unix socket (the tests' fd) has no such
 * option: that failure is expected.
 */
static void
relay_nodelay(struct relay *r)
{
	int	 fd, one = 1;

	if ((fd = bufferevent_getfd(r->bev)) == -1)
		return;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1 &&
	    errno != EOPNOTSUPP && errno != ENOTSUP && errno != ENOPROTOOPT)
		log_warn("%s relay: TCP_NODELAY", r->id);
}

/*
 * Our end's address as an RFC 5321 address literal ("[192.0.2.1]",
 * "[IPv6:2001:db8::1]"), for an EHLO without a usable name; "[127.0.0.1]"
 * when the socket has no IP address (a test's Unix socket).
 */
static void
relay_literal(struct relay *r)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	char			 addr[INET6_ADDRSTRLEN];
	int			 fd;

	str_copy(r->literal, "[127.0.0.1]", sizeof(r->literal));
	if ((fd = bufferevent_getfd(r->bev)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return;
	if (ss.ss_family == AF_INET && inet_ntop(AF_INET,
	    &((struct sockaddr_in *)(void *)&ss)->sin_addr, addr,
	    sizeof(addr)) != NULL)
		snprintf(r->literal, sizeof(r->literal), "[%s]", addr);
	else if (ss.ss_family == AF_INET6 && inet_ntop(AF_INET6,
	    &((struct sockaddr_in6 *)(void *)&ss)->sin6_addr, addr,
	    sizeof(addr)) != NULL)
		snprintf(r->literal, sizeof(r->literal), "[IPv6:%s]", addr);
}

/*
 * The EHLO name: the configured one when it is fully qualified (a dot,
 * not "localhost"), else our address literal.  Gmail answers "EHLO
 * localhost" with "421-4.7.0 Try again later, closing connection.
 * (EHLO)" (reference/gmail-smtp.md section 1).
 */
static const char *
relay_helo(const struct relay *r)
{
	const char	*h = r->helo;

	if (h[0] == '\0' || strchr(h, '.') == NULL ||
	    strcasecmp(h, "localhost") == 0 ||
	    strncasecmp(h, "localhost.", 10) == 0 || h[strlen(h) - 1] == '.')
		return r->literal;
	return h;
}

/* BEV_EVENT_CONNECTED on the TCP connection. */
static void
relay_connected(struct relay *r)
{
	relay_literal(r);
	relay_nodelay(r);
	log_debug("%s relay connected to %s:%s", r->id, r->host, r->port);
	relay_show(r, "*", "connected to %s:%s", r->host, r->port);
	if (r->tls == RELAY_TLS_IMPLICIT)
		relay_enter(r, RELAY_TLS);
	else
		relay_enter(r, RELAY_BANNER);
}

/* The connection could not be made: DNS or connect(2) failed. */
static void
relay_connect_error(struct relay *r)
{
	int	 dnserr, err;

	err = EVUTIL_SOCKET_ERROR();
	dnserr = bufferevent_socket_get_dns_error(r->bev);
	if (dnserr != 0)
		relay_fail(r, "DNS lookup of %s failed: %s", r->host,
		    evutil_gai_strerror(dnserr));
	else
		relay_fail(r, "connect to %s:%s: %s", r->host, r->port,
		    err != 0 ? evutil_socket_error_to_string(err) :
		    "connection failed");
}

/* Append one reason to a "; "-separated list. */
static void
relay_reason_add(char *buf, size_t len, const char *what)
{
	size_t	 n;

	n = strlen(buf);
	if (n >= len - 1)
		return;
	snprintf(buf + n, len - n, "%s%s", n > 0 ? "; " : "", what);
}

/* The handshake failed: collect OpenSSL's and the verifier's reasons. */
static void
relay_tls_error(struct relay *r, short what)
{
	char		 reasons[512] = "", num[256];
	const char	*s;
	unsigned long	 e;
	long		 v;
	SSL		*ssl;

	while ((e = bufferevent_get_openssl_error(r->bev)) != 0) {
		/* libevent also queues SSL_get_error() codes: no library. */
		if (ERR_GET_LIB(e) == 0)
			continue;
		if ((s = ERR_reason_error_string(e)) == NULL) {
			ERR_error_string_n(e, num, sizeof(num));
			s = num;
		}
		relay_reason_add(reasons, sizeof(reasons), s);
	}
	ssl = bufferevent_openssl_get_ssl(r->bev);
	if (ssl != NULL && (v = SSL_get_verify_result(ssl)) != X509_V_OK)
		relay_reason_add(reasons, sizeof(reasons),
		    X509_verify_cert_error_string(v));
	if (reasons[0] == '\0')
		relay_reason_add(reasons, sizeof(reasons),
		    (what & BEV_EVENT_EOF) ? "connection closed by peer" :
		    "connection error");
	ERR_clear_error();
	relay_fail(r, "TLS handshake with %s failed: %s", r->host, reasons);
}

/* The handshake completed: confirm verification, then go on over TLS. */
static void
relay_tls_done(struct relay *r)
{
	SSL	*ssl;
	long	 v;

	ssl = bufferevent_openssl_get_ssl(r->bev);
	if (ssl == NULL || (v = SSL_get_verify_result(ssl)) != X509_V_OK) {
		relay_fail(r, "TLS handshake with %s failed: %s", r->host,
		    ssl == NULL ? "no TLS state" :
		    X509_verify_cert_error_string(v));
		return;
	}
	r->tls_ok = true;
	log_debug("%s relay tls=%s cipher=%s", r->id, SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
	relay_show(r, "*", "%s %s, certificate verified for %s",
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl), r->host);
	/* RFC 3207 4.2: forget everything learnt before TLS. */
	memset(&r->ehlo, 0, sizeof(r->ehlo));
	if (r->tls == RELAY_TLS_IMPLICIT)
		relay_enter(r, RELAY_BANNER);
	else
		relay_enter(r, RELAY_EHLO2);
}

/* Put a verifying TLS filter over the plain connection. */
static void
relay_tls_start(struct relay *r)
{
	struct bufferevent	*tls;
	char			 err[256];
	SSL			*ssl;

	/* The filter owns the plain bev's reading from here on. */
	bufferevent_set_timeouts(r->bev, NULL, NULL);
	bufferevent_setwatermark(r->bev, EV_READ, 0, 0);
	/*
	 * The filter encrypts into the plain bev's output only up to that
	 * bev's high write watermark; without one, every body byte the
	 * relay queues goes through at once and the whole message piles up
	 * below the filter.  The low one refills before the socket idles.
	 */
	bufferevent_setwatermark(r->bev, EV_WRITE, RELAY_OBUF_MAX / 2,
	    RELAY_OBUF_MAX);
	ERR_clear_error();
	if ((ssl = tls_client_new(r->ssl_ctx, r->host, err,
	    sizeof(err))) == NULL) {
		relay_fail(r, "TLS setup for %s failed: %s", r->host, err);
		return;
	}
	/* On failure libevent frees ssl; the plain bev stays ours. */
	if ((tls = bufferevent_openssl_filter_new(r->base, r->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)) == NULL) {
		relay_fail(r, "TLS setup for %s failed", r->host);
		return;
	}
	r->bev = tls;
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	bufferevent_setcb(tls, relay_read_cb, relay_write_cb, relay_event_cb,
	    r);
	bufferevent_setwatermark(tls, EV_READ, 0, RELAY_READ_HIWAT);
	relay_set_timeouts(r);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
}

/* STARTTLS, only when offered: never send credentials in clear. */
static void
relay_starttls(struct relay *r)
{
	char	 reason[RELAY_REASON_MAX];

	if ((r->ehlo.ext & SMTP_EXT_STARTTLS) == 0) {
		snprintf(reason, sizeof(reason), "no STARTTLS offered by %s; "
		    "refusing to send credentials in clear", r->host);
		relay_quit(r, RELAY_TEMPFAIL, reason);
		return;
	}
	relay_send(r, "STARTTLS");
}

/* The 220 to STARTTLS: nothing may follow it in plaintext. */
static void
relay_starttls_response(struct relay *r)
{
	struct evbuffer	*in;
	size_t		 n;

	in = bufferevent_get_input(r->bev);
	if ((n = evbuffer_get_length(in)) != 0) {
		log_warnx("%s relay=%s:%s plaintext injected after STARTTLS: "
		    "%zu bytes discarded", r->id, r->host, r->port, n);
		evbuffer_drain(in, n);
		relay_fail(r, "plaintext injected after STARTTLS by %s",
		    r->host);
		return;
	}
	relay_enter(r, RELAY_TLS);
}

/*
 * Pick a mechanism; credentials go only over verified TLS.  An OAuth2
 * token goes only by XOAUTH2.
 */
static void
relay_auth(struct relay *r)
{
	char	 reason[RELAY_REASON_MAX];

	if (!r->tls_ok) {
		/* Unreachable by the state order; a second, separate guard. */
		relay_fail(r, "refusing AUTH to %s without verified TLS",
		    r->host);
		return;
	}
	if (r->cred.mech == SASL_MECH_XOAUTH2) {
		if (r->ehlo.auth & SMTP_AUTH_XOAUTH2)
			relay_enter(r, RELAY_AUTH_XOAUTH2);
		else {
			snprintf(reason, sizeof(reason),
			    "XOAUTH2 not offered by %s", r->host);
			relay_quit(r, RELAY_TEMPFAIL, reason);
		}
	} else if (r->ehlo.auth & SMTP_AUTH_PLAIN)
		relay_enter(r, RELAY_AUTH_PLAIN);
	else if (r->ehlo.auth & SMTP_AUTH_LOGIN)
		relay_enter(r, RELAY_AUTH_LOGIN);
	else {
		snprintf(reason, sizeof(reason),
		    "no usable AUTH mechanism offered by %s", r->host);
		relay_quit(r, RELAY_TEMPFAIL, reason);
	}
}

/*
 * Send one AUTH step.  PLAIN and XOAUTH2 go with their initial response.
 * LOGIN takes Gmail's three steps: "AUTH LOGIN", the user name after "334
 * VXNlcm5hbWU6" (Username:), the password after "334 UGFzc3dvcmQ6".  An
 * XOAUTH2 error challenge (334 + base64 JSON) takes an empty line, never
 * RSET, and the server then gives the real reply (535 or 454).
 */
static void
relay_auth_send(struct relay *r)
{
	int	 rv;

	r->auth_sent = true;
	if (r->state == RELAY_AUTH_PLAIN)
		rv = relay_send_secret(r, "AUTH PLAIN", "AUTH PLAIN ", NULL);
	else if (r->state == RELAY_AUTH_XOAUTH2)
		rv = relay_send_secret(r, "AUTH XOAUTH2", "AUTH XOAUTH2 ",
		    NULL);
	else if (r->state == RELAY_AUTH_XOAUTH2_ERR) {
		str_copy(r->cmd, "AUTH XOAUTH2", sizeof(r->cmd));
		log_debug("%s relay C: (empty line after the XOAUTH2 error)",
		    r->id);
		relay_show(r, "C", "%s", "");
		bufferevent_write(r->bev, "\r\n", 2);
		rv = 0;
	} else if (r->state == RELAY_AUTH_LOGIN) {
		relay_send(r, "AUTH LOGIN");
		rv = 0;
	} else if (r->state == RELAY_AUTH_LOGIN_USER)
		rv = relay_send_secret(r, "AUTH LOGIN", "", r->cred.user);
	else
		rv = relay_send_secret(r, "AUTH LOGIN", "", r->cred.pass);
	if (rv == -1)
		relay_quit(r, RELAY_PERMFAIL, "credentials too long to encode");
}

/* True when an envelope address can go on a command line as is. */
static bool
relay_addr_ok(const char *addr)
{
	size_t	 len;

	len = strlen(addr);
	return len <= 256 && str_is_clean(addr, len) &&
	    strpbrk(addr, "<>") == NULL;
}

/* True when the message (read with pread) has an octet above 127. */
static bool
relay_msg_8bit(int fd)
{
	unsigned char	 buf[8192];
	off_t		 off = 0;
	ssize_t		 n, i;

	while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
		for (i = 0; i < n; i++)
			if (buf[i] & 0x80)
				return true;
		off += n;
	}
	return false;
}

/*
 * True when every line of the message in buf ends with CRLF and no CR
 * stands alone: BDAT sends the bytes as they are, where DATA's stuffing
 * would have made each line end CRLF.  The submission server refuses bare
 * CR and LF, so this only keeps a hand-made entry off the BDAT path.
 */
static bool
relay_bdat_canonical(struct evbuffer *buf)
{
	struct evbuffer_iovec	 v[16];
	const unsigned char	*p;
	size_t			 i, j;
	int			 n;
	bool			 cr = false;

	n = evbuffer_peek(buf, -1, NULL, v, (int)nitems(v));
	if (n < 0 || n > (int)nitems(v))
		return false;
	for (i = 0; i < (size_t)n; i++) {
		p = v[i].iov_base;
		for (j = 0; j < v[i].iov_len; j++) {
			if ((p[j] == '\n') != cr)
				return false;
			cr = p[j] == '\r';
		}
	}
	return !cr;
}

/*
 * For a pipelined BDAT LAST, the whole message in r->bdat, when the
 * server offers CHUNKING, PIPELINING and ENHANCEDSTATUSCODES (without
 * which a stray reply could not be told from the final one), and the
 * message is at most RELAY_BDAT_MAX, ends with CRLF and has no bare CR or
 * LF.  Otherwise r->bdat stays NULL and DATA streams the message.  -1
 * with errno if it cannot be read.
 */
static int
relay_bdat_load(struct relay *r)
{
	char	 tail[2];
	off_t	 off = 0;
	ssize_t	 n;

	if (r->bdat != NULL)
		evbuffer_free(r->bdat);
	r->bdat = NULL;
	if (!r->chunking || !r->pipelining ||
	    (r->ehlo.ext & SMTP_EXT_CHUNKING) == 0 ||
	    (r->ehlo.ext & SMTP_EXT_ENHANCED) == 0 ||
	    r->msgsize < 2 || r->msgsize > RELAY_BDAT_MAX)
		return 0;
	if (pread(r->msgfd, tail, sizeof(tail), r->msgsize - 2) != 2)
		return -1;
	if (tail[0] != '\r' || tail[1] != '\n')
		return 0;
	if ((r->bdat = evbuffer_new()) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	while (off < r->msgsize) {
		n = pread(r->msgfd, r->ibuf, sizeof(r->ibuf), off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0 || evbuffer_add(r->bdat, r->ibuf, (size_t)n) == -1) {
			if (n == 0)
				errno = EIO;	/* shorter than it was */
			else if (n > 0)
				errno = ENOMEM;
			evbuffer_free(r->bdat);
			r->bdat = NULL;
			return -1;
		}
		off += n;
	}
	if (!relay_bdat_canonical(r->bdat)) {
		evbuffer_free(r->bdat);
		r->bdat = NULL;
	}
	return 0;
}

/*
 * MAIL FROM, with SIZE when the server announced it, and BODY=8BITMIME
 * for an 8-bit message when it offered 8BITMIME (RFC 6152).  A message
 * larger than the server's SIZE fails here, before DATA: sending it would
 * only earn a 552 after the whole body.
 */
static void
relay_mail(struct relay *r)
{
	char		 size[32] = "", reason[RELAY_REASON_MAX];
	const char	*body = "";

	r->accepted = false;
	if (!relay_addr_ok(r->sender)) {
		r->reaction = RELAY_REACT_MSG_FAIL;
		relay_end_message(r, RELAY_PERMFAIL, "invalid sender address",
		    false);
		return;
	}
	if ((r->ehlo.ext & SMTP_EXT_SIZE) && r->ehlo.size > 0 &&
	    (unsigned long long)r->msgsize > r->ehlo.size) {
		snprintf(reason, sizeof(reason), "message of %lld bytes is "
		    "larger than %s's SIZE %llu", (long long)r->msgsize,
		    r->host, r->ehlo.size);
		r->reaction = RELAY_REACT_MSG_FAIL;
		relay_end_message(r, RELAY_PERMFAIL, reason, false);
		return;
	}
	if (relay_bdat_load(r) == -1) {
		log_warn("%s relay reading message", r->id);
		relay_fail(r, "reading message: %s", strerror(errno));
		return;
	}
	if (r->ehlo.ext & SMTP_EXT_SIZE)
		snprintf(size, sizeof(size), " SIZE=%lld",
		    (long long)r->msgsize);
	if ((r->ehlo.ext & SMTP_EXT_8BITMIME) && relay_msg_8bit(r->msgfd))
		body = " BODY=8BITMIME";
	relay_send(r, "MAIL FROM:<%s>%s%s", r->sender, size, body);
	if (r->pipelining)
		relay_pl_send(r);
}

/*
 * PIPELINING: after MAIL, the RCPTs of this transaction (every pending
 * recipient, at most RELAY_RCPT_TX_MAX; a bad address fails at once)
 * and DATA, or BDAT LAST and the message, all without waiting; their
 * replies are read in order.
 */
static void
relay_pl_send(struct relay *r)
{
	size_t	 i;

	str_copy(r->pl_mailcmd, r->cmd, sizeof(r->pl_mailcmd));
	r->pl_n = 0;
	r->pl_pos = 0;
	r->pl_mail_ok = false;
	r->pl_held = false;
	r->pl_desync = false;
	r->ntx = 0;
	r->naccepted = 0;
	for (i = 0; i < r->nrcpt && r->pl_n < RELAY_RCPT_TX_MAX; i++) {
		if (r->rr[i].status != RELAY_RCPT_PENDING || r->intx[i])
			continue;
		if (!relay_addr_ok(r->rcpt[i])) {
			r->rr[i].status = RELAY_RCPT_FAILED;
			str_copy(r->rr[i].reply, "invalid recipient address",
			    sizeof(r->rr[i].reply));
			continue;
		}
		r->pl_idx[r->pl_n++] = i;
		relay_send(r, "RCPT TO:<%s>", r->rcpt[i]);
	}
	r->ntx = r->pl_n;
	r->bdat_out = r->pl_n > 0 && r->bdat != NULL;
	if (r->bdat_out) {
		relay_send(r, "BDAT %zu LAST", evbuffer_get_length(r->bdat));
		log_debug("%s relay C: <%zu bytes of message>", r->id,
		    evbuffer_get_length(r->bdat));
		bufferevent_write_buffer(r->bev, r->bdat);
	} else if (r->pl_n > 0)
		relay_send(r, "DATA");
	if (r->bdat != NULL)
		evbuffer_free(r->bdat);
	r->bdat = NULL;
	r->pl_left = 1 + r->pl_n + (r->pl_n > 0 ? 1 : 0);
	str_copy(r->cmd, r->pl_mailcmd, sizeof(r->cmd));
}

/* Wait for the next reply of the pipelined group, in state. */
static void
relay_pl_await(struct relay *r, enum relay_state state)
{
	r->state = state;
	relay_set_timeouts(r);
	smtp_reply_init(&r->reply);
	if (state == RELAY_RCPT) {
		r->rcptidx = r->pl_idx[r->pl_pos];
		snprintf(r->cmd, sizeof(r->cmd), "RCPT TO:<%s>",
		    r->rcpt[r->rcptidx]);
	} else if (state == RELAY_DATA)
		str_copy(r->cmd, "DATA", sizeof(r->cmd));
	else if (state == RELAY_BDAT)
		snprintf(r->cmd, sizeof(r->cmd), "BDAT %lld LAST",
		    (long long)r->msgsize);
}

/* Keep the first reply to judge after the group (state: whose it is). */
static void
relay_pl_hold(struct relay *r)
{
	if (r->pl_held)
		return;
	r->pl_held = true;
	r->pl_held_state = r->state;
	memcpy(&r->pl_hold, &r->reply, sizeof(r->pl_hold));
}

/* Judge the held reply as if it had come alone. */
static void
relay_pl_judge_held(struct relay *r)
{
	r->state = r->pl_held_state;
	memcpy(&r->reply, &r->pl_hold, sizeof(r->reply));
	if (r->state == RELAY_MAIL)
		str_copy(r->cmd, r->pl_mailcmd, sizeof(r->cmd));
	relay_reply_fail(r);
}

/*
 * The group ended with no recipient taken: judge the refusal that stopped
 * it (MAIL's, or a RCPT reply kept by relay_pl_hold), or go on with the
 * recipients left.
 */
static void
relay_pl_no_tx(struct relay *r)
{
	if (!r->pl_mail_ok || r->pl_held)
		relay_pl_judge_held(r);
	else
		relay_rcpts_done(r);
}

/* On to the next reply of the group: a RCPT's, then DATA's or BDAT's. */
static void
relay_pl_advance(struct relay *r)
{
	if (r->state == RELAY_MAIL)
		relay_pl_await(r, RELAY_RCPT);
	else if (++r->pl_pos < r->pl_n)
		relay_pl_await(r, RELAY_RCPT);
	else
		relay_pl_await(r, r->bdat_out ? RELAY_BDAT : RELAY_DATA);
}

/* True when text begins with the 2.1.x enhanced code of MAIL and RCPT. */
static bool
relay_enh_addr(const char *text)
{
	return strncmp(text, "2.1.", 4) == 0;
}

/*
 * With BDAT in the group, the replies are matched to the commands by
 * position alone, and one stray line would shift the final verdict onto
 * an earlier reply.  The enhanced codes (RFC 3463; BDAT goes in the group
 * only when they are offered) tell them apart: a 2xx to MAIL or RCPT is
 * 2.1.x, the final one is not.  False when a 2xx carries the code of
 * another step; a reply without a code is taken by its position.
 */
static bool
relay_pl_in_step(const struct relay *r)
{
	if (!r->bdat_out || smtp_reply_class(&r->reply) != 2 ||
	    r->reply.enh[0] == '\0')
		return true;
	if (r->state == RELAY_BDAT)
		return !relay_enh_addr(r->reply.enh);
	return relay_enh_addr(r->reply.enh);
}

/*
 * One reply of a pipelined group.  A 421 ends everything at once (the
 * server closes).  Otherwise the replies are gathered until DATA's: then
 * the body goes out when recipients were accepted, or the refusal that
 * stopped the transaction is judged.
 */
static void
relay_pl_response(struct relay *r)
{
	enum relay_reaction	 reaction;
	char			 one[SMTP_REPLY_MAX + 8];
	size_t			 i;

	if (r->pl_left > 0)
		r->pl_left--;
	/* 421 and 451 4.4.2: the server is closing; nothing more comes. */
	reaction = relay_policy_react(relay_stage(r), &r->reply);
	if (reaction == RELAY_REACT_RECONNECT ||
	    reaction == RELAY_REACT_RESEND) {
		r->pl_left = 0;
		relay_reply_fail(r);
		return;
	}
	if (!r->pl_desync && !relay_pl_in_step(r)) {
		smtp_reply_oneline(&r->reply, one, sizeof(one));
		snprintf(r->pl_desync_why, sizeof(r->pl_desync_why),
		    "%s: reply out of step: %s", r->cmd, one);
		r->pl_desync = true;
	}
	if (r->pl_desync && r->state == RELAY_BDAT) {
		/* The last reply of the group: now the session may end. */
		r->pl_left = 0;
		r->uncertain = true;
		relay_fail(r, "%s", r->pl_desync_why);
		return;
	}
	if (r->pl_desync) {
		relay_pl_advance(r);
		return;
	}
	switch (r->state) {
	case RELAY_MAIL:
		r->pl_mail_ok = r->reply.code == 250;
		if (!r->pl_mail_ok)
			relay_pl_hold(r);
		break;
	case RELAY_RCPT:
		i = r->rcptidx;
		if (!r->pl_mail_ok)
			break;
		if (r->reply.code == 250 || r->reply.code == 251) {
			r->intx[i] = true;
			r->naccepted++;
			break;
		}
		reaction = relay_policy_react(RELAY_STAGE_RCPT, &r->reply);
		if (reaction == RELAY_REACT_RCPT_FAIL) {
			smtp_reply_oneline(&r->reply, one, sizeof(one));
			log_info("%s relay: recipient <%s> refused: %s", r->id,
			    r->rcpt[i], one);
			r->rr[i].status = RELAY_RCPT_FAILED;
			str_copy(r->rr[i].reply, one, sizeof(r->rr[i].reply));
		} else
			relay_pl_hold(r);	/* stays pending */
		break;
	case RELAY_DATA:
		r->pl_left = 0;
		if (r->reply.code == 354 && r->pl_mail_ok && r->naccepted > 0) {
			relay_enter(r, RELAY_BODY);
			return;
		}
		if (r->reply.code == 354) {
			/* RFC 2920 says a server must not: end it here. */
			relay_fail(r, "DATA: 354 with no recipient accepted");
			return;
		}
		if (r->pl_mail_ok && r->naccepted > 0)
			relay_reply_fail(r);		/* DATA refused */
		else
			relay_pl_no_tx(r);
		return;
	case RELAY_BDAT:
		r->pl_left = 0;
		r->bdat_out = false;
		if (r->pl_mail_ok && r->naccepted > 0) {
			if (smtp_reply_class(&r->reply) == 2)
				relay_eom_response(r);
			else
				relay_reply_fail(r);	/* the message refused */
			return;
		}
		if (smtp_reply_class(&r->reply) == 2) {
			/* The server says it took what we think it refused. */
			r->uncertain = true;
			relay_fail(r, "BDAT: %d with no recipient accepted",
			    r->reply.code);
			return;
		}
		relay_pl_no_tx(r);
		return;
	default:
		break;
	}
	if (r->state == RELAY_MAIL && r->pl_n == 0) {
		/* Every recipient was a bad address: no RCPT went out. */
		r->pl_left = 0;
		relay_pl_no_tx(r);
		return;
	}
	relay_pl_advance(r);
}

/* RCPT TO for the current recipient; a bad address fails it alone. */
static void
relay_rcpt(struct relay *r)
{
	const char	*rcpt = r->rcpt[r->rcptidx];

	if (!relay_addr_ok(rcpt)) {
		r->rr[r->rcptidx].status = RELAY_RCPT_FAILED;
		str_copy(r->rr[r->rcptidx].reply, "invalid recipient address",
		    sizeof(r->rr[r->rcptidx].reply));
		r->rcptidx++;
		relay_next_rcpt(r);
		return;
	}
	r->ntx++;
	relay_send(r, "RCPT TO:<%s>", rcpt);
}

/* True while a recipient is neither settled nor in this transaction. */
static bool
relay_rcpt_pending(const struct relay *r, size_t i)
{
	return r->rr[i].status == RELAY_RCPT_PENDING && !r->intx[i];
}

/*
 * The recipients of this transaction are chosen (all pending ones, at
 * most RELAY_RCPT_TX_MAX, or fewer after 452 4.5.3): DATA when any was
 * accepted; otherwise RSET and another transaction for the ones left,
 * or the end when every recipient was refused.
 */
static void
relay_rcpts_done(struct relay *r)
{
	char	 reason[RELAY_REASON_MAX];
	size_t	 i;

	if (r->naccepted > 0) {
		relay_enter(r, RELAY_DATA);
		return;
	}
	for (i = 0; i < r->nrcpt; i++)
		if (relay_rcpt_pending(r, i)) {
			relay_enter(r, RELAY_RSET);
			return;
		}
	/* An earlier transaction delivered to the others. */
	for (i = 0; i < r->nrcpt; i++)
		if (r->rr[i].status == RELAY_RCPT_DELIVERED) {
			r->reaction = RELAY_REACT_DELIVERED;
			relay_end_message(r, RELAY_OK, r->rr[i].reply, true);
			return;
		}
	snprintf(reason, sizeof(reason), "every recipient refused; last: "
	    "%s", r->rr[r->nrcpt - 1].reply);
	r->reaction = RELAY_REACT_RCPT_FAIL;
	relay_end_message(r, RELAY_PERMFAIL, reason, true);
}

/* RCPT for the next pending recipient, or on to DATA. */
static void
relay_next_rcpt(struct relay *r)
{
	while (r->rcptidx < r->nrcpt && !relay_rcpt_pending(r, r->rcptidx))
		r->rcptidx++;
	if (r->rcptidx == r->nrcpt || r->ntx >= RELAY_RCPT_TX_MAX)
		relay_rcpts_done(r);
	else
		relay_enter(r, RELAY_RCPT);
}

/* A new transaction (MAIL accepted): its recipients from the first. */
static void
relay_tx_start(struct relay *r)
{
	r->rcptidx = 0;
	r->ntx = 0;
	r->naccepted = 0;
	relay_next_rcpt(r);
}

/*
 * The reply to one RCPT: accepted, that recipient refused (5xx: the
 * others go on), or "452 4.5.3" too many (the rest wait for another
 * transaction).  Anything else is judged for the whole session.
 */
static void
relay_rcpt_response(struct relay *r)
{
	char			 one[SMTP_REPLY_MAX + 8];
	enum relay_reaction	 reaction;
	size_t			 i = r->rcptidx;

	if (r->reply.code == 250 || r->reply.code == 251) {
		r->intx[i] = true;
		r->naccepted++;
		r->rcptidx++;
		relay_next_rcpt(r);
		return;
	}
	reaction = relay_policy_react(RELAY_STAGE_RCPT, &r->reply);
	smtp_reply_oneline(&r->reply, one, sizeof(one));
	if (reaction == RELAY_REACT_RCPT_FAIL) {
		log_info("%s relay: recipient <%s> refused: %s", r->id,
		    r->rcpt[i], one);
		r->rr[i].status = RELAY_RCPT_FAILED;
		str_copy(r->rr[i].reply, one, sizeof(r->rr[i].reply));
		r->rcptidx++;
		relay_next_rcpt(r);
	} else if (reaction == RELAY_REACT_SPLIT && r->naccepted > 0) {
		log_info("%s relay: %zu recipients in this transaction, the "
		    "rest in another: %s", r->id, r->naccepted, one);
		r->ntx = RELAY_RCPT_TX_MAX;
		relay_rcpts_done(r);
	} else
		relay_reply_fail(r);
}

/* Queue body bytes until the output holds RELAY_OBUF_MAX or the file ends. */
static void
relay_body_fill(struct relay *r)
{
	struct evbuffer	*out;
	ssize_t		 n;
	size_t		 len;

	out = bufferevent_get_output(r->bev);
	while (evbuffer_get_length(out) < RELAY_OBUF_MAX) {
		n = read(r->msgfd, r->ibuf, sizeof(r->ibuf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			log_warn("%s relay reading message", r->id);
			relay_fail(r, "reading message: %s", strerror(errno));
			return;
		}
		if (n == 0) {
			relay_enter(r, RELAY_EOM);
			return;
		}
		len = dotstuff_feed(&r->ds, r->ibuf, (size_t)n, r->obuf);
		evbuffer_add(out, r->obuf, len);
	}
}

/* Start streaming the message; write_cb refills at the low watermark. */
static void
relay_body_start(struct relay *r)
{
	if (lseek(r->msgfd, 0, SEEK_SET) == -1) {
		relay_fail(r, "reading message: %s", strerror(errno));
		return;
	}
	dotstuff_init(&r->ds);
	str_copy(r->cmd, "end of DATA", sizeof(r->cmd));
	log_debug("%s relay C: <%lld bytes of message>", r->id,
	    (long long)r->msgsize);
	bufferevent_setwatermark(r->bev, EV_WRITE, RELAY_OBUF_MAX / 2, 0);
	relay_body_fill(r);
}

/* The message is out: finish it with the end-of-data marker. */
static void
relay_eom(struct relay *r)
{
	size_t	 len;

	bufferevent_setwatermark(r->bev, EV_WRITE, 0, 0);
	len = dotstuff_finish(&r->ds, r->obuf);
	bufferevent_write(r->bev, r->obuf, len);
}

/* Enter a state: send its command, or move on to the next state. */
static void
relay_enter(struct relay *r, enum relay_state state)
{
	r->state = state;
	relay_set_timeouts(r);
	/* Each state awaits at most one reply, and a fresh one. */
	smtp_reply_init(&r->reply);
	switch (state) {
	case RELAY_RESOLVE:
	case RELAY_BANNER:
		str_copy(r->cmd, "banner", sizeof(r->cmd));
		break;
	case RELAY_EHLO:
	case RELAY_EHLO2:
		relay_send(r, "EHLO %s", relay_helo(r));
		break;
	case RELAY_STARTTLS:
		relay_starttls(r);
		break;
	case RELAY_TLS:
		relay_tls_start(r);
		break;
	case RELAY_AUTH:
		relay_auth(r);
		break;
	case RELAY_AUTH_PLAIN:
	case RELAY_AUTH_LOGIN:
	case RELAY_AUTH_LOGIN_USER:
	case RELAY_AUTH_LOGIN_PASS:
	case RELAY_AUTH_XOAUTH2:
	case RELAY_AUTH_XOAUTH2_ERR:
		relay_auth_send(r);
		break;
	case RELAY_RSET:
		relay_send(r, "RSET");
		break;
	case RELAY_MAIL:
		relay_mail(r);
		break;
	case RELAY_RCPT:
		relay_rcpt(r);
		break;
	case RELAY_DATA:
		relay_send(r, "DATA");
		break;
	case RELAY_BDAT:
		/* Only ever awaited: it goes out with its group. */
		break;
	case RELAY_BODY:
		relay_body_start(r);
		break;
	case RELAY_EOM:
		relay_eom(r);
		break;
	case RELAY_QUIT:
		relay_send(r, "QUIT");
		break;
	}
}

/*
 * A reply while the body is still going out: the server takes no more of
 * it.  Stop sending and hang up without QUIT, which would now be part of
 * the message.  A 4xx or 5xx is judged as at any other step, so Gmail's
 * final "552 5.3.4" (too big) fails the message and its temporary 5xx
 * defer it; anything else is no verdict on the message: defer.
 */
static void
relay_body_response(struct relay *r)
{
	char			 one[SMTP_REPLY_MAX + 8];
	char			 reason[RELAY_REASON_MAX];
	enum relay_result	 result;
	int			 class;

	smtp_reply_oneline(&r->reply, one, sizeof(one));
	class = smtp_reply_class(&r->reply);
	if (class == 4 || class == 5)
		r->reaction = relay_policy_react(RELAY_STAGE_DATA, &r->reply);
	else
		r->reaction = RELAY_REACT_RETRY;
	result = relay_policy_result(r->reaction);
	snprintf(reason, sizeof(reason), "reply before end of DATA: %s", one);
	log_warnx("%s relay=%s:%s %s", r->id, r->host, r->port, reason);
	relay_finish(r, result, reason);
}

/* The end-of-data reply: 2xx means delivered, whatever QUIT brings. */
static void
relay_eom_response(struct relay *r)
{
	char	 one[SMTP_REPLY_MAX + 8];
	size_t	 i;

	smtp_reply_oneline(&r->reply, one, sizeof(one));
	log_debug("%s relay accepted: %s", r->id, one);
	relay_tx_delivered(r, one);
	r->reaction = RELAY_REACT_DELIVERED;
	for (i = 0; i < r->nrcpt; i++)
		if (relay_rcpt_pending(r, i)) {
			/* A completed transaction needs no RSET. */
			relay_enter(r, RELAY_MAIL);
			return;
		}
	relay_end_message(r, RELAY_OK, one, false);
}

/* Authenticated: go on to MAIL, or end there when only checking. */
static void
relay_auth_response(struct relay *r)
{
	char	 one[SMTP_REPLY_MAX + 8];

	r->authed = true;
	if (!r->check_only) {
		relay_enter(r, RELAY_MAIL);
		return;
	}
	smtp_reply_oneline(&r->reply, one, sizeof(one));
	r->reaction = RELAY_REACT_DELIVERED;
	relay_quit(r, RELAY_OK, one);
}

/* A whole reply arrived in r->reply: judge it and choose what follows. */
static void
relay_response(struct relay *r)
{
	if (r->state == RELAY_QUIT) {
		relay_finish(r, r->result, r->reason);
		return;
	}
	if (r->state == RELAY_EOM && smtp_reply_class(&r->reply) == 2) {
		relay_eom_response(r);
		return;
	}
	if (r->state == RELAY_BODY) {
		relay_body_response(r);
		return;
	}
	if (r->pl_left > 0) {
		relay_pl_response(r);
		return;
	}
	if (r->state == RELAY_RCPT) {
		relay_rcpt_response(r);
		return;
	}
	if (r->state == RELAY_AUTH_XOAUTH2 && r->reply.code == 334) {
		relay_enter(r, RELAY_AUTH_XOAUTH2_ERR);
		return;
	}
	if (r->reply.code != relay_states[r->state].expect &&
	    !(r->state == RELAY_RCPT && r->reply.code == 251)) {
		relay_reply_fail(r);
		return;
	}
	switch (r->state) {
	case RELAY_BANNER:
		relay_enter(r, r->tls_ok ? RELAY_EHLO2 : RELAY_EHLO);
		break;
	case RELAY_EHLO:
		smtp_ehlo_parse(&r->reply, &r->ehlo);
		relay_enter(r, RELAY_STARTTLS);
		break;
	case RELAY_STARTTLS:
		relay_starttls_response(r);
		break;
	case RELAY_EHLO2:
		smtp_ehlo_parse(&r->reply, &r->ehlo);
		/* Never before or across STARTTLS: only on the TLS session. */
		r->pipelining = r->tls_ok &&
		    (r->ehlo.ext & SMTP_EXT_PIPELINING) != 0;
		relay_enter(r, RELAY_AUTH);
		break;
	case RELAY_AUTH_LOGIN:
		relay_enter(r, RELAY_AUTH_LOGIN_USER);
		break;
	case RELAY_AUTH_LOGIN_USER:
		relay_enter(r, RELAY_AUTH_LOGIN_PASS);
		break;
	case RELAY_AUTH_PLAIN:
	case RELAY_AUTH_LOGIN_PASS:
	case RELAY_AUTH_XOAUTH2:
	case RELAY_AUTH_XOAUTH2_ERR:
		relay_auth_response(r);
		break;
	case RELAY_RSET:
		relay_enter(r, RELAY_MAIL);
		break;
	case RELAY_MAIL:
		relay_tx_start(r);
		break;
	case RELAY_DATA:
		relay_enter(r, RELAY_BODY);
		break;
	default:
		/* No reply is awaited here (expect is 0): never reached. */
		relay_fail(r, "unexpected reply in %s",
		    relay_states[r->state].name);
		break;
	}
}

/*
 * Awaiting the final reply, look at its first line, complete or not:
 * one that begins "2xx" means the server took the message, and that is
 * what the session reports whatever follows (a malformed or over-long
 * rest, trailing bytes, EOF, a timeout).  r->reason keeps the line.
 */
static void
relay_eom_peek(struct relay *r, struct evbuffer *in)
{
	char		 buf[SMTP_REPLY_MAX];
	ev_ssize_t	 n;
	size_t		 i;

	if (!relay_final(r) || r->accepted || r->reply.nlines > 0)
		return;
	if ((n = evbuffer_copyout(in, buf, sizeof(buf) - 1)) < 4)
		return;
	if (buf[0] != '2' || buf[1] < '0' || buf[1] > '9' || buf[2] < '0' ||
	    buf[2] > '9' || (buf[3] != ' ' && buf[3] != '-' && buf[3] != '\r'))
		return;
	/* Not BDAT's verdict if it has MAIL's or RCPT's code (in_step). */
	buf[n] = '\0';
	if (r->state == RELAY_BDAT && relay_enh_addr(buf + 4))
		return;
	for (i = 0; i < (size_t)n && buf[i] != '\r' && buf[i] != '\n'; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';
	buf[i] = '\0';
	r->accepted = true;
	r->result = RELAY_OK;
	r->reaction = RELAY_REACT_DELIVERED;
	str_copy(r->reason, buf, sizeof(r->reason));
}

/*
 * One complete reply line is buffered (len bytes before the LF): feed it
 * to the accumulator.  Returns true while the session waits for more.
 */
static bool
relay_read_line(struct relay *r, struct evbuffer *in, size_t len)
{
	char	 one[SMTP_REPLY_MAX + 8];
	bool	 more;

	if (len + 1 > sizeof(r->line)) {
		relay_fail(r, "%s: reply line too long", r->cmd);
		return false;
	}
	evbuffer_remove(in, r->line, len + 1);
	if (len == 0 || r->line[len - 1] != '\r') {
		relay_fail(r, "%s: malformed reply (bare LF)", r->cmd);
		return false;
	}
	relay_show(r, "S", "%.*s", (int)(len - 1), r->line);
	switch (smtp_reply_feed(&r->reply, r->line, len - 1)) {
	case SMTP_REPLY_MORE:
		return true;
	case SMTP_REPLY_ERROR:
		relay_fail(r, "%s: malformed reply", r->cmd);
		return false;
	case SMTP_REPLY_DONE:
		break;
	}
	smtp_reply_oneline(&r->reply, one, sizeof(one));
	log_debug("%s relay S: %s", r->id, one);
	if (relay_final(r) && r->accepted)
		str_copy(r->reason, one, sizeof(r->reason));
	/*
	 * The relay never pipelines, so bytes after a reply are an attack;
	 * after STARTTLS's 220 they are plaintext injection, handled there.
	 * After a 2xx to the final dot relay_fail reports delivered, and
	 * drops the connection without QUIT.  A reply in the middle of the
	 * body is judged as it is, since the session hangs up on it anyway.
	 */
	if (evbuffer_get_length(in) != 0 && r->state != RELAY_BODY &&
	    r->pl_left <= 1 &&
	    !(r->state == RELAY_STARTTLS && r->reply.code == 220)) {
		relay_fail(r, "%s: trailing data after reply", r->cmd);
		return false;
	}
	/*
	 * More replies of a pipelined group may be buffered already; the
	 * replies to MAIL and RCPT never end the session synchronously.
	 */
	more = r->pl_left > 1;
	relay_response(r);
	return more;
}

/* Feed every complete line to the reply accumulator. */
static void
relay_read_cb(struct bufferevent *bev, void *arg)
{
	struct relay		*r = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 eol;
	size_t			 eol_len;

	for (;;) {
		relay_eom_peek(r, in);
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos == -1) {
			if (evbuffer_get_length(in) >= sizeof(r->line))
				relay_fail(r, "%s: reply line too long",
				    r->cmd);
			return;
		}
		if (!relay_read_line(r, in, (size_t)eol.pos))
			return;
	}
}

/* The output drained to the low watermark: send more of the body. */
static void
relay_write_cb(struct bufferevent *bev, void *arg)
{
	struct relay	*r = arg;

	UNUSED(bev);
	if (r->state == RELAY_BODY)
		relay_body_fill(r);
}

/* The reason for a timeout in the current state. */
static void
relay_timeout(struct relay *r)
{
	switch (r->state) {
	case RELAY_RESOLVE:
		relay_fail(r, "timeout connecting to %s:%s", r->host, r->port);
		break;
	case RELAY_TLS:
		relay_fail(r, "timeout in TLS handshake with %s", r->host);
		break;
	case RELAY_BODY:
		relay_fail(r, "timeout sending DATA");
		break;
	case RELAY_BANNER:
		relay_fail(r, "timeout waiting for banner");
		break;
	default:
		relay_fail(r, "timeout waiting for reply to %s",
		    relay_states[r->state].stage);
		break;
	}
}

/* The connection dropped before the session was over. */
static void
relay_lost(struct relay *r, short what)
{
	const char	*s;
	unsigned long	 e;
	int		 err = EVUTIL_SOCKET_ERROR();

	s = NULL;
	while ((e = bufferevent_get_openssl_error(r->bev)) != 0)
		if (s == NULL)
			s = ERR_reason_error_string(e);
	if ((what & BEV_EVENT_ERROR) && s != NULL)
		relay_fail(r, "connection lost in %s: %s",
		    relay_states[r->state].stage, s);
	else if ((what & BEV_EVENT_ERROR) && err != 0)
		relay_fail(r, "connection lost in %s: %s",
		    relay_states[r->state].stage,
		    evutil_socket_error_to_string(err));
	else
		relay_fail(r, "connection lost in %s",
		    relay_states[r->state].stage);
}

/* CONNECTED, EOF, ERROR and TIMEOUT, by state. */
static void
relay_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct relay	*r = arg;

	UNUSED(bev);
	if (what & BEV_EVENT_CONNECTED) {
		if (r->state == RELAY_TLS)
			relay_tls_done(r);
		else if (r->state == RELAY_RESOLVE)
			relay_connected(r);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		relay_timeout(r);
	else if (r->state == RELAY_RESOLVE)
		relay_connect_error(r);
	else if (r->state == RELAY_TLS)
		relay_tls_error(r, what);
	else
		relay_lost(r, what);
}

/* Create the plain bufferevent and start connecting (or adopt fd). */
static int
relay_connect(struct relay *r, int fd)
{
	unsigned long long	 port;
	int			 flags;

	flags = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
	if ((r->bev = bufferevent_socket_new(r->base, fd, flags)) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	bufferevent_setcb(r->bev, relay_read_cb, relay_write_cb,
	    relay_event_cb, r);
	bufferevent_setwatermark(r->bev, EV_READ, 0, RELAY_READ_HIWAT);
	/* With implicit TLS nothing is read in plaintext, ever. */
	if (r->tls == RELAY_TLS_STARTTLS)
		bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	relay_enter(r, RELAY_RESOLVE);
	if (fd != -1) {
		/* Deferred: done is never called from inside relay_start. */
		bufferevent_trigger_event(r->bev, BEV_EVENT_CONNECTED, 0);
		return 0;
	}
	if (parse_uint(r->port, 1, 65535, &port) == -1)
		return -1;
	return bufferevent_socket_connect_hostname(r->bev, r->dns, AF_UNSPEC,
	    r->host, (int)port);
}

/* Take the job: copy what must outlive the caller, wipe its credential. */
static struct relay *
relay_new(const struct relay_params *p, struct relay_job *job,
    relay_done_cb done, void *arg)
{
	struct relay	*r;
	struct stat	 st;

	r = xcalloc(1, sizeof(*r));
	r->msgfd = job->msgfd;
	job->msgfd = -1;
	memcpy(&r->cred, &job->cred, sizeof(r->cred));
	secure_zero(&job->cred, sizeof(job->cred));
	r->base = p->base;
	r->dns = p->dns;
	/* A reference of its own: a reload may replace the caller's. */
	if ((r->ssl_ctx = p->ssl_ctx) != NULL)
		SSL_CTX_up_ref(r->ssl_ctx);
	r->host = xstrdup(p->host);
	r->port = xstrdup(p->port);
	r->helo = xstrdup(p->helo);
	r->tls = p->tls;
	r->timeout = p->timeout;
	r->check_only = p->check_only;
	r->transcript = p->transcript;
	r->transcript_arg = p->transcript_arg;
	str_copy(r->idbuf, job->id, sizeof(r->idbuf));
	r->id = r->idbuf;
	r->sender = job->sender;
	r->rcpt = job->rcpt;
	r->nrcpt = job->nrcpt;
	r->rr = xcalloc(r->nrcpt + 1, sizeof(*r->rr));
	r->intx = xcalloc(r->nrcpt + 1, sizeof(*r->intx));
	r->pl_idx = xcalloc(r->nrcpt + 1, sizeof(*r->pl_idx));
	r->done = done;
	r->arg = arg;
	r->job_open = true;
	r->nmsgs = 1;
	r->next = p->next;
	r->closed = p->closed;
	r->conn_arg = p->conn_arg;
	r->max_msgs = p->max_msgs;
	r->chunking = !p->no_chunking;
	r->outcome = job->outcome;
	r->reaction = RELAY_REACT_RETRY;
	if (r->msgfd != -1 && fstat(r->msgfd, &st) == 0)
		r->msgsize = st.st_size;
	return r;
}

/* Begin delivering one message; NULL if the session cannot be set up. */
struct relay *
relay_start(const struct relay_params *p, struct relay_job *job,
    relay_done_cb done, void *arg)
{
	struct relay	*r;

	r = relay_new(p, job, done, arg);
	log_info("%s attempt relay=%s:%s", r->id, r->host, r->port);
	if ((!r->check_only && (r->msgfd == -1 || r->nrcpt == 0)) ||
	    r->ssl_ctx == NULL) {
		log_warnx("%s relay: nothing to send or no TLS context",
		    r->id);
		if (p->fd != -1)
			close(p->fd);
		goto fail;
	}
	if (relay_connect(r, p->fd) == -1) {
		log_warnx("%s relay: cannot connect to %s:%s", r->id, r->host,
		    r->port);
		goto fail;
	}
	return r;
fail:
	r->finishing = true;
	relay_free(r);
	return NULL;
}

/* Abort the session (shutdown): free without calling done. */
void
relay_cancel(struct relay *r)
{
	if (r == NULL || r->finishing)
		return;
	r->finishing = true;
	relay_free(r);
}
