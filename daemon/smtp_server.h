/*
 * smtp_server.h: one submission session on the Unix socket.  The state
 * machine lives in smtp_server.c; it replies 250 to DATA only after
 * queue_tx_commit_async() has made the message durable.
 */
#ifndef RELAYQ_SMTP_SERVER_H
#define RELAYQ_SMTP_SERVER_H

#include <sys/types.h>

#include <stddef.h>

struct bufferevent;
struct event_base;
struct queue;
struct smtp_server;

struct smtp_server_params {
	const char	*hostname;	/* in the banner and EHLO greeting */
	size_t		 max_size;	/* message bytes; advertised as SIZE */
	size_t		 max_rcpt;	/* per message */
	int		 idle_timeout;	/* seconds without a complete command */
	/*
	 * The configured account (NULL or "": none).  MAIL without AUTH is
	 * accepted only with one, and the entry records it (envelope
	 * "account"); its credentials file then holds the address and no
	 * password.  Without one, MAIL needs AUTH (530 5.7.0).
	 */
	const char	*account;
};

struct smtp_server_cb {
	/*
	 * A message was committed as queue/<id> and acknowledged.  When the
	 * session was torn down while its commit was in flight, the entry
	 * goes to queue_adopt() instead (arg may be gone by then).
	 */
	void	(*queued)(void *arg, const char *id);
	/* ETRN: retry the queue now. */
	void	(*flush)(void *arg);
	/*
	 * The session is closing: it is still valid during the call and is
	 * freed when the callback returns.  Drop any reference to it; do not
	 * free it.
	 */
	void	(*closed)(void *arg, struct smtp_server *);
};

/*
 * Take ownership of bev (a connected stream socket, BEV_OPT_CLOSE_ON_FREE)
 * and send the banner.  uid is the peer's (SO_PEERCRED), for logs and the
 * envelope.  With refuse set, the session only says "421 4.3.2 Too many
 * connections, try again later" and closes.
 */
struct smtp_server *smtp_server_new(struct event_base *, struct bufferevent *,
		    struct queue *, const struct smtp_server_params *,
		    const struct smtp_server_cb *, void *arg, uid_t uid,
		    pid_t pid, int refuse);
/* Close at once (daemon shutdown): aborts an open tx, no callback. */
void		 smtp_server_free(struct smtp_server *);
uid_t		 smtp_server_uid(const struct smtp_server *);

#endif /* RELAYQ_SMTP_SERVER_H */
