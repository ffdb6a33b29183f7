/*
 * listener.c: the submission socket and the list of live sessions.
 *
 * Before binding, an existing path is probed: if a connect() succeeds,
 * another daemon is serving it and we refuse to start; a socket nobody
 * answers on is stale and is removed; anything that is not a socket is
 * left alone and refused.  bind() runs under a umask so the socket never
 * has wider permissions than configured, even for an instant.  Each
 * accepted connection becomes an smtp_server session carrying the peer's
 * SO_PEERCRED uid; over the total or per-uid cap the session only says
 * 421 4.3.2 and closes.  Accept errors (EMFILE) pause accepting for 1 s.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "listener.h"
#include "log.h"
#include "smtp_server.h"
#include "util.h"

#define LISTENER_BACKLOG	128
#define LISTENER_BACKOFF_SEC	1
/* Refused sessions allowed on top of max_conn before we just hang up. */
#define LISTENER_REFUSE_MAX	64

struct listener_session {
	TAILQ_ENTRY(listener_session)	 entry;
	struct listener			*l;
	struct smtp_server		*s;
	uid_t				 uid;
};

TAILQ_HEAD(listener_sessions, listener_session);

struct listener {
	struct event_base		*base;
	struct queue			*queue;
	struct listener_params		 params;
	char				*path;
	struct smtp_server_cb		 app_cb;
	void				*app_arg;
	struct evconnlistener		*evl;
	struct event			*backoff;
	bool				 created;	/* we bound path */
	dev_t				 dev;		/* of the socket file */
	ino_t				 ino;
	struct listener_sessions	 sessions;
	size_t				 nsessions;
};

static void	listener_accept_cb(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	listener_error_cb(struct evconnlistener *, void *);
static void	listener_backoff_cb(evutil_socket_t, short, void *);
static void	listener_queued_cb(void *, const char *);
static void	listener_flush_cb(void *);
static void	listener_closed_cb(void *, struct smtp_server *);

static const struct smtp_server_cb listener_server_cb = {
	listener_queued_cb,
	listener_flush_cb,
	listener_closed_cb
};

/* Create the socket's parent directory (one level, 0755) if missing. */
static int
listener_mkparent(const char *path, char *err, size_t errlen)
{
	struct stat	 st;
	char		*copy, *dir;
	int		 rc = 0;

	copy = xstrdup(path);
	dir = dirname(copy);
	if (stat(dir, &st) == -1) {
		/* chmod too: clients of every uid must reach the socket. */
		if (errno != ENOENT || mkdir(dir, 0755) == -1 ||
		    chmod(dir, 0755) == -1) {
			snprintf(err, errlen, "%s: %s", dir, strerror(errno));
			rc = -1;
		} else
			log_info("created %s", dir);
	} else if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", dir);
		rc = -1;
	}
	free(copy);
	return rc;
}

/* Fill a sockaddr_un for path; -1 if it does not fit. */
static int
listener_sockaddr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	return str_copy(sun->sun_path, path, sizeof(sun->sun_path));
}

/*
 * An existing path: refuse if a daemon answers on it or if it is not a
 * socket; remove it if it is a stale socket.
 */
static int
listener_clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	int			 fd, rc;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket; "
		    "refusing to replace it", path);
		return -1;
	}
	listener_sockaddr(path, &sun);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS) {
		/* EAGAIN: a live listener with a full backlog. */
		snprintf(err, errlen, "another relayqd is already listening "
		    "on %s", path);
		close(fd);
		return -1;
	}
	if (errno != ECONNREFUSED && errno != ENOENT) {
		snprintf(err, errlen, "%s: cannot probe: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "%s: removing stale socket: %s", path,
		    strerror(errno));
		return -1;
	}
	log_info("removed stale socket %s", path);
	return 0;
}

/* Bind path under a umask, then set the configured mode.  fd or -1. */
static int
listener_bind(struct listener *l, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	mode_t			 old;
	int			 fd, rc;

	if (listener_sockaddr(l->path, &sun) == -1) {
		snprintf(err, errlen, "%s: socket path too long", l->path);
		return -1;
	}
	if (listener_mkparent(l->path, err, errlen) == -1 ||
	    listener_clear_stale(l->path, err, errlen) == -1)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0777 & ~(l->params.mode & 0777));
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc == -1) {
		snprintf(err, errlen, "bind %s: %s", l->path, strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(l->path, l->params.mode) == -1 || lstat(l->path, &st) == -1) {
		snprintf(err, errlen, "%s: %s", l->path, strerror(errno));
		unlink(l->path);
		close(fd);
		return -1;
	}
	l->created = true;
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	return fd;
}

/* Bind (or adopt) the socket and start accepting. */
struct listener *
listener_new(struct event_base *base, struct queue *queue,
    const struct listener_params *params, const struct smtp_server_cb *cb,
    void *arg, char *err, size_t errlen)
{
	struct listener	*l;
	int		 fd, backlog = LISTENER_BACKLOG;

	l = xcalloc(1, sizeof(*l));
	l->base = base;
	l->queue = queue;
	l->params = *params;
	l->path = xstrdup(params->path != NULL ? params->path : "");
	l->params.path = l->path;
	l->app_cb = *cb;
	l->app_arg = arg;
	TAILQ_INIT(&l->sessions);
	if (params->fd >= 0) {
		fd = params->fd;	/* inherited: already listening */
		backlog = -1;
		evutil_make_socket_nonblocking(fd);
	} else if ((fd = listener_bind(l, err, errlen)) == -1)
		goto fail;
	l->evl = evconnlistener_new(base, listener_accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, backlog, fd);
	if (l->evl == NULL) {
		snprintf(err, errlen, "listen %s: %s", l->path, strerror(errno));
		if (params->fd < 0)
			close(fd);
		goto fail;
	}
	evconnlistener_set_error_cb(l->evl, listener_error_cb);
	if ((l->backoff = evtimer_new(base, listener_backoff_cb, l)) == NULL)
		fatalx("listener_new: evtimer_new failed");
	log_debug("listening on %s%s", l->path,
	    params->fd >= 0 ? " (inherited)" : "");
	return l;

fail:
	listener_free(l);
	return NULL;
}

/* Remove the socket file, but only if it is still the one we bound. */
static void
listener_unlink(struct listener *l)
{
	struct stat	 st;

	if (!l->created || lstat(l->path, &st) == -1)
		return;
	if (st.st_dev != l->dev || st.st_ino != l->ino)
		return;
	if (unlink(l->path) == -1)
		log_warn("unlink %s", l->path);
}

/* Close every session, stop listening, remove the socket we created. */
void
listener_free(struct listener *l)
{
	struct listener_session	*sess;

	if (l == NULL)
		return;
	while ((sess = TAILQ_FIRST(&l->sessions)) != NULL) {
		TAILQ_REMOVE(&l->sessions, sess, entry);
		smtp_server_free(sess->s);
		free(sess);
	}
	l->nsessions = 0;
	if (l->evl != NULL)
		evconnlistener_free(l->evl);
	if (l->backoff != NULL)
		event_free(l->backoff);
	listener_unlink(l);
	free(l->path);
	free(l);
}

/* How many sessions are open. */
size_t
listener_nsessions(const struct listener *l)
{
	return l->nsessions;
}

/* How many open sessions belong to uid. */
static size_t
listener_count_uid(const struct listener *l, uid_t uid)
{
	const struct listener_session	*sess;
	size_t				 n = 0;

	TAILQ_FOREACH(sess, &l->sessions, entry) {
		if (sess->uid == uid)
			n++;
	}
	return n;
}

/* True when a new session for uid would exceed a cap (0: no cap). */
static bool
listener_over_cap(const struct listener *l, uid_t uid)
{
	if (l->params.max_conn > 0 && l->nsessions >= l->params.max_conn)
		return true;
	return l->params.max_conn_uid > 0 &&
	    listener_count_uid(l, uid) >= l->params.max_conn_uid;
}

/* A new connection: identify the peer and start its session. */
static void
listener_accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener		*l = arg;
	struct listener_session	*sess;
	struct bufferevent	*bev;
	struct ucred		 cred;
	socklen_t		 len = sizeof(cred);
	bool			 refuse;

	UNUSED(evl);
	UNUSED(sa);
	UNUSED(salen);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("SO_PEERCRED");
		evutil_closesocket(fd);
		return;
	}
	if (l->params.max_conn > 0 &&
	    l->nsessions >= l->params.max_conn + LISTENER_REFUSE_MAX) {
		log_warnx("refused uid=%u pid=%ld: hanging up, %zu sessions",
		    (unsigned)cred.uid, (long)cred.pid, l->nsessions);
		evutil_closesocket(fd);
		return;
	}
	refuse = listener_over_cap(l, cred.uid);
	bev = bufferevent_socket_new(l->base, fd,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		log_warnx("bufferevent_socket_new failed");
		evutil_closesocket(fd);
		return;
	}
	if (refuse)
		log_warnx("refused uid=%u pid=%ld: too many connections",
		    (unsigned)cred.uid, (long)cred.pid);
	sess = xcalloc(1, sizeof(*sess));
	sess->l = l;
	sess->uid = cred.uid;
	TAILQ_INSERT_TAIL(&l->sessions, sess, entry);
	l->nsessions++;
	sess->s = smtp_server_new(l->base, bev, l->queue, &l->params.server,
	    &listener_server_cb, sess, cred.uid, cred.pid, refuse);
}

/* accept() failed (EMFILE and friends): pause instead of spinning. */
static void
listener_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener	*l = arg;
	struct timeval	 tv = { LISTENER_BACKOFF_SEC, 0 };
	int		 e = EVUTIL_SOCKET_ERROR();

	log_warnx("accept on %s: %s; pausing for %d s", l->path,
	    evutil_socket_error_to_string(e), LISTENER_BACKOFF_SEC);
	evconnlistener_disable(evl);
	evtimer_add(l->backoff, &tv);
}

/* The pause is over: accept again. */
static void
listener_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener	*l = arg;

	UNUSED(fd);
	UNUSED(what);
	evconnlistener_enable(l->evl);
}

/* A session queued a message: tell the application. */
static void
listener_queued_cb(void *arg, const char *id)
{
	struct listener_session	*sess = arg;
	struct listener		*l = sess->l;

	if (l->app_cb.queued != NULL)
		l->app_cb.queued(l->app_arg, id);
}

/* A session asked for ETRN: tell the application. */
static void
listener_flush_cb(void *arg)
{
	struct listener_session	*sess = arg;
	struct listener		*l = sess->l;

	if (l->app_cb.flush != NULL)
		l->app_cb.flush(l->app_arg);
}

/* A session tore itself down: forget it. */
static void
listener_closed_cb(void *arg, struct smtp_server *s)
{
	struct listener_session	*sess = arg;
	struct listener		*l = sess->l;

	TAILQ_REMOVE(&l->sessions, sess, entry);
	l->nsessions--;
	free(sess);
	if (l->app_cb.closed != NULL)
		l->app_cb.closed(l->app_arg, s);
}

/* Later sessions get the new limits; the socket stays as it is. */
void
listener_set_params(struct listener *l, const struct listener_params *p)
{
	l->params.max_conn = p->max_conn;
	l->params.max_conn_uid = p->max_conn_uid;
	l->params.server = p->server;
}

/* Check that fd is a listening AF_UNIX stream socket; 0 or -1. */
static int
listener_check_fd(int fd, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	socklen_t		 len;
	int			 v;

	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == -1) {
		snprintf(err, errlen, "LISTEN_FDS: fd %d: %s", fd,
		    strerror(errno));
		return -1;
	}
	if (v != SOCK_STREAM) {
		snprintf(err, errlen, "LISTEN_FDS: fd %d is not a stream "
		    "socket", fd);
		return -1;
	}
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == -1 ||
	    v == 0) {
		snprintf(err, errlen, "LISTEN_FDS: fd %d is not listening",
		    fd);
		return -1;
	}
	len = sizeof(sun);
	if (getsockname(fd, (struct sockaddr *)&sun, &len) == -1 ||
	    sun.sun_family != AF_UNIX) {
		snprintf(err, errlen, "LISTEN_FDS: fd %d is not a Unix "
		    "socket", fd);
		return -1;
	}
	return 0;
}

/* The sd_listen_fds protocol: fds start at 3. */
int
listener_fd_from_env(int *fd, char *err, size_t errlen)
{
	unsigned long long	 pid, n, i;
	const char		*spid, *sn;
	int			 rc = 0;

	*fd = -1;
	spid = getenv("LISTEN_PID");
	sn = getenv("LISTEN_FDS");
	if (spid != NULL && sn != NULL &&
	    parse_uint(spid, 1, UINT32_MAX, &pid) == 0 &&
	    (pid_t)pid == getpid()) {
		if (parse_uint(sn, 1, 64, &n) == -1) {
			snprintf(err, errlen, "LISTEN_FDS=%s: expected a "
			    "count from 1", sn);
			rc = -1;
		} else if (listener_check_fd(3, err, errlen) == -1)
			rc = -1;
		else {
			*fd = 3;
			if (fcntl(3, F_SETFD, FD_CLOEXEC) == -1)
				log_warn("fcntl FD_CLOEXEC on fd 3");
			/* One socket is used; close any others systemd sent. */
			for (i = 1; i < n; i++) {
				log_warnx("LISTEN_FDS: ignoring extra fd %llu",
				    3 + i);
				close((int)(3 + i));
			}
		}
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return rc;
}
