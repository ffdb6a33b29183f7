/*
 * relay.h: one outbound SMTP session delivering one queued message:
 * connect (evdns), EHLO, STARTTLS, verified TLS, EHLO, AUTH, MAIL, RCPT,
 * DATA streamed from disk with dot-stuffing, QUIT.
 */
#ifndef RELAYQ_RELAY_H
#define RELAYQ_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "sasl.h"

struct event_base;
struct evdns_base;
struct relay;

enum relay_tls_mode {
	RELAY_TLS_STARTTLS,
	RELAY_TLS_IMPLICIT
};

enum relay_result {
	RELAY_OK,
	RELAY_TEMPFAIL,
	RELAY_PERMFAIL
};

/*
 * What the reply that ended a session calls for (relay_policy.c decides;
 * reference/gmail-smtp.md section 12).  The scheduler applies the
 * account-level ones to every entry with the same credentials.
 */
enum relay_reaction {
	RELAY_REACT_DELIVERED,	/* 2xx */
	RELAY_REACT_RETRY,	/* temporary: this message later, backoff */
	RELAY_REACT_RECONNECT,	/* 421: the server closes; backoff, retry */
	RELAY_REACT_RESEND,	/* 451 4.4.2 idle timeout: again at once */
	RELAY_REACT_AUTH_BACKOFF, /* 454 4.7.0 at AUTH: the account waits */
	RELAY_REACT_CREDENTIALS, /* 535/534/530: these credentials are dead */
	RELAY_REACT_QUOTA,	/* 550 5.4.5: the account is paused */
	RELAY_REACT_SPLIT,	/* 452 4.5.3 at RCPT: fewer per transaction */
	RELAY_REACT_RCPT_FAIL,	/* 5xx to one RCPT: that recipient fails */
	RELAY_REACT_MSG_FAIL	/* 5xx: the message fails */
};

/* What became of one recipient of the job. */
enum relay_rcpt_status {
	RELAY_RCPT_PENDING,	/* not delivered: to be sent again */
	RELAY_RCPT_DELIVERED,	/* in a transaction whose final dot got 2xx */
	RELAY_RCPT_FAILED	/* its RCPT got a 5xx */
};

#define RELAY_RCPT_REPLY_MAX	512
#define RELAY_RCPT_TX_MAX	100	/* recipients per transaction (Gmail) */

struct relay_rcpt_result {
	enum relay_rcpt_status	 status;
	char			 reply[RELAY_RCPT_REPLY_MAX];	/* that settled it */
};

/* More than the result, for the scheduler (relay_job.outcome). */
struct relay_outcome {
	enum relay_reaction	 reaction;
	bool			 authed;	/* AUTH got 235 */
	bool			 auth_sent;	/* an AUTH command went out */
	/*
	 * The connection was lost (or timed out) after the final dot and
	 * before any reply: the server may or may not have the message.
	 */
	bool			 uncertain;
	/*
	 * Unless NULL, job->nrcpt results, filled in.  A session sends at
	 * most RELAY_RCPT_TX_MAX recipients per transaction, and after
	 * "452 4.5.3" the rest in another transaction of the same session;
	 * a 5xx to one RCPT fails that recipient only.  The result is
	 * RELAY_OK once no recipient is pending and at least one was
	 * delivered; the failed ones are in here.
	 */
	struct relay_rcpt_result *rcpts;
};

struct relay_params {
	struct event_base	*base;
	struct evdns_base	*dns;
	SSL_CTX			*ssl_ctx;
	const char		*host;	/* name or IP literal, no brackets */
	const char		*port;
	enum relay_tls_mode	 tls;
	const char		*helo;	/* our EHLO name */
	int			 timeout; /* seconds; per reply, 0: RFC 5321 defaults */
	int			 fd;	/* -1: connect to host:port; >= 0: an
					   already connected socket (tests) */
	/*
	 * relayqd --check-relay: stop after AUTH (RELAY_OK on 235) and
	 * QUIT; the job needs no message and no recipients.
	 */
	bool			 check_only;
	bool			 no_chunking;	/* never BDAT (chunking = no) */
	/*
	 * Unless NULL, shown each line sent ("C", secrets masked), each
	 * reply line ("S") and each TLS step ("*").
	 */
	void			(*transcript)(void *arg, const char *dir,
				    const char *line);
	void			*transcript_arg;
	/*
	 * Connection reuse (NULL next: one message per connection).  After
	 * a message ends on a connection that can carry another (delivered,
	 * or refused by a 5xx or 4xx to MAIL, RCPT or the data, never after
	 * 421, 451 4.4.2 or a lost connection) and fewer than max_msgs went
	 * over it, its done runs, then next(conn_arg) may hand over another
	 * job carrying the very same credentials: it goes on the same
	 * authenticated connection (RSET first when a transaction is open),
	 * without a second AUTH.  NULL: QUIT.  closed(conn_arg), unless NULL,
	 * runs once when the connection is gone, after the last done.
	 */
	struct relay_job	*(*next)(void *conn_arg);
	void			(*closed)(void *conn_arg);
	void			*conn_arg;
	unsigned		 max_msgs;	/* 0: 1 */
};

struct relay_job {
	const char		*id;	/* queue ID, for logs */
	const char		*sender;
	char *const		*rcpt;
	size_t			 nrcpt;
	int			 msgfd;	/* message.eml; relay closes it */
	struct sasl_cred	 cred;	/* copied; wiped by the relay */
	struct relay_outcome	*outcome; /* unless NULL, filled before done */
	void			*done_arg; /* a job from next: done's arg */
};

/*
 * Called exactly once per relay_start that returned non-NULL, from the
 * event loop, after which the relay is freed.  reply is a one-line text:
 * the server's reply, or a local reason ("no STARTTLS offered", "TLS
 * handshake failed: certificate verify failed").
 */
typedef void (*relay_done_cb)(void *arg, enum relay_result, const char *reply);

/*
 * Begin delivery.  The job's strings must live until done is called.
 * NULL (with job->msgfd closed) if the session cannot even be set up.
 */
struct relay	*relay_start(const struct relay_params *, struct relay_job *,
		    relay_done_cb done, void *arg);
/* Abort (shutdown): frees without calling done. */
void		 relay_cancel(struct relay *);

#endif /* RELAYQ_RELAY_H */
