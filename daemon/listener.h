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
/*
 * Config reload: new sessions get these limits and server parameters
 * (path, mode and fd are not changed; open sessions keep theirs).
 */
void		 listener_set_params(struct listener *,
		    const struct listener_params *);
/*
 * Socket activation (sd_listen_fds(3) without libsystemd): when
 * $LISTEN_PID is this process and $LISTEN_FDS is at least 1, *fd is the
 * inherited listening Unix stream socket (fd 3), made close-on-exec;
 * otherwise *fd is -1.  LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are
 * always unset.  -1 with a message in err when the fd is not usable.
 */
int		 listener_fd_from_env(int *fd, char *err, size_t errlen);

#endif /* RELAYQ_LISTENER_H */
