/*
 * listener.h: the submission socket.  Binds the Unix socket (replacing a
 * stale file, refusing when another daemon answers on it), accepts with
 * SO_PEERCRED, caps connections per uid and in total, and owns the live
 * sessions.
 */
#ifndef RELAYQ_LISTENER_H
#define RELAYQ_LISTENER_H

#include <sys/types.h>

#include <stddef.h>

#include "smtp_server.h"

struct event_base;
struct listener;

struct listener_params {
	const char			*path;
	mode_t				 mode;		/* e.g. 0666 */
	int				 fd;		/* inherited (LISTEN_FDS) or -1 */
	size_t				 max_conn;	/* total */
	size_t				 max_conn_uid;	/* per uid */
	struct smtp_server_params	 server;
};

/* NULL with a message in err. */
struct listener	*listener_new(struct event_base *, struct queue *,
		    const struct listener_params *,
		    const struct smtp_server_cb *, void *arg,
		    char *err, size_t errlen);
/* Close every session, stop listening, unlink the socket we created. */
void		 listener_free(struct listener *);
size_t		 listener_nsessions(const struct listener *);

#endif /* RELAYQ_LISTENER_H */
