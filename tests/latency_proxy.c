/*
 * latency_proxy.c: the chunk queue and the delaying TCP proxy described
 * in latency_proxy.h.
 *
 * Each connection has two sides (the accepted client, the upstream
 * server) and two directions (up: client to server, down: server to
 * client).  A side's read callback moves whatever arrived into its
 * direction's queue, stamped due rtt/2 later; the direction's one timer
 * moves due chunks into the other side's output buffer.  An EOF or error
 * read from a side is queued as an EOF chunk behind the data, and becomes
 * a shutdown(SHUT_WR) of the other side once that side's output drained.
 * The connection ends when both directions have been shut.  While more
 * than LATENCY_QUEUE_MAX bytes are queued or buffered toward a side, the
 * opposite side is not read.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "latency_proxy.h"
#include "log.h"
#include "util.h"

struct latency_item {
	TAILQ_ENTRY(latency_item)	 entry;
	struct evbuffer			*data;	/* NULL: the EOF */
	uint64_t			 due;
};

struct latency_conn;

/* One end of a proxied connection. */
struct latency_side {
	struct latency_conn	*c;
	struct bufferevent	*bev;
	bool			 connected;
	bool			 read_done;	/* EOF or error read */
};

/* One direction of a proxied connection: from one side to the other. */
struct latency_dir {
	struct latency_conn	*c;
	const char		*name;		/* "up" or "down" */
	struct latency_side	*from;
	struct latency_side	*to;
	struct latency_queue	 q;
	struct event		*timer;
	bool			 eof_due;	/* EOF popped: shut when drained */
	bool			 done;		/* shut, or its receiver failed */
};

struct latency_conn {
	TAILQ_ENTRY(latency_conn)	 entry;
	struct latency_proxy		*p;
	unsigned long			 id;
	struct latency_side		 client;
	struct latency_side		 server;
	struct latency_dir		 up;
	struct latency_dir		 down;
	struct event			*connect_ev;
	uint64_t			 connect_at;
};

struct latency_proxy {
	struct event_base		*base;
	struct evconnlistener		*listener;
	struct sockaddr_in		 to;
	uint64_t			 half;		/* rtt/2, microseconds */
	unsigned			 port;
	int				 verbose;
	unsigned long			 accepted;
	TAILQ_HEAD(, latency_conn)	 conns;
};

static int	latency_dir_deliver(struct latency_dir *);

/* ---- The chunk queue ---- */

/* Microseconds on CLOCK_MONOTONIC. */
uint64_t
latency_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* An empty queue. */
void
latency_queue_init(struct latency_queue *q)
{
	TAILQ_INIT(&q->items);
	q->bytes = 0;
	q->eof = false;
}

/* Free every chunk still held. */
void
latency_queue_fini(struct latency_queue *q)
{
	struct latency_item	*it;

	while ((it = TAILQ_FIRST(&q->items)) != NULL) {
		TAILQ_REMOVE(&q->items, it, entry);
		if (it->data != NULL)
			evbuffer_free(it->data);
		free(it);
	}
	q->bytes = 0;
}

/* Append a chunk (data NULL: the EOF) due at the given time. */
static void
latency_queue_append(struct latency_queue *q, struct evbuffer *data,
    uint64_t due)
{
	struct latency_item	*it;

	it = xcalloc(1, sizeof(*it));
	it->data = data;
	it->due = due;
	TAILQ_INSERT_TAIL(&q->items, it, entry);
}

/* Move all of data into a new chunk due at the given time. */
int
latency_queue_push(struct latency_queue *q, struct evbuffer *data,
    uint64_t due)
{
	struct evbuffer	*copy;
	size_t		 n = evbuffer_get_length(data);

	if (q->eof) {
		errno = EPIPE;
		return -1;
	}
	if (n == 0)
		return 0;
	if ((copy = evbuffer_new()) == NULL ||
	    evbuffer_add_buffer(copy, data) == -1)
		fatalx("latency_queue_push: out of memory");
	latency_queue_append(q, copy, due);
	q->bytes += n;
	return 0;
}

/* Append the EOF due at the given time, once. */
int
latency_queue_push_eof(struct latency_queue *q, uint64_t due)
{
	if (q->eof) {
		errno = EPIPE;
		return -1;
	}
	latency_queue_append(q, NULL, due);
	q->eof = true;
	return 0;
}

/* Remove the head if it is due at now: its bytes to out, or the EOF. */
enum latency_chunk
latency_queue_pop(struct latency_queue *q, uint64_t now, struct evbuffer *out)
{
	struct latency_item	*it = TAILQ_FIRST(&q->items);
	enum latency_chunk	 kind = LATENCY_EOF;

	if (it == NULL || it->due > now)
		return LATENCY_NONE;
	TAILQ_REMOVE(&q->items, it, entry);
	if (it->data != NULL) {
		q->bytes -= evbuffer_get_length(it->data);
		if (evbuffer_add_buffer(out, it->data) == -1)
			fatalx("latency_queue_pop: out of memory");
		evbuffer_free(it->data);
		kind = LATENCY_DATA;
	}
	free(it);
	return kind;
}

/* The head's due time; false when the queue is empty. */
bool
latency_queue_next(const struct latency_queue *q, uint64_t *due)
{
	const struct latency_item	*it = TAILQ_FIRST(&q->items);

	if (it == NULL)
		return false;
	*due = it->due;
	return true;
}

/* ---- Connections ---- */

/* Arm ev to fire at the monotonic time at (now if already past). */
static void
latency_arm(struct event *ev, uint64_t at)
{
	uint64_t	 now = latency_now(), d = at > now ? at - now : 0;
	struct timeval	 tv;

	tv.tv_sec = (time_t)(d / 1000000);
	tv.tv_usec = (suseconds_t)(d % 1000000);
	evtimer_add(ev, &tv);
}

/* No Nagle delay on the proxy's own writes: the delay is ours alone. */
static void
latency_nodelay(struct bufferevent *bev)
{
	evutil_socket_t	 fd = bufferevent_getfd(bev);
	int		 one = 1;

	if (fd != -1 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)) == -1)
		log_warn("TCP_NODELAY");
}

/* Free a connection: its timers, both sockets, what is still queued. */
static void
latency_conn_free(struct latency_conn *c)
{
	if (c->p->verbose)
		log_info("conn=%lu closed", c->id);
	TAILQ_REMOVE(&c->p->conns, c, entry);
	event_free(c->connect_ev);
	event_free(c->up.timer);
	event_free(c->down.timer);
	bufferevent_free(c->client.bev);
	bufferevent_free(c->server.bev);
	latency_queue_fini(&c->up.q);
	latency_queue_fini(&c->down.q);
	free(c);
}

/* Free c once both directions are done; -1 if it was freed. */
static int
latency_conn_check(struct latency_conn *c)
{
	if (!c->up.done || !c->down.done)
		return 0;
	latency_conn_free(c);
	return -1;
}

/* The direction that carries what side s reads. */
static struct latency_dir *
latency_dir_from(struct latency_side *s)
{
	return s == &s->c->client ? &s->c->up : &s->c->down;
}

/* The direction that writes to side s. */
static struct latency_dir *
latency_dir_to(struct latency_side *s)
{
	return s == &s->c->client ? &s->c->down : &s->c->up;
}

/* Read the sender only while little enough is held toward the receiver. */
static void
latency_dir_pace(struct latency_dir *d)
{
	size_t	 held;

	if (d->from->read_done || !d->from->connected)
		return;
	held = d->q.bytes + evbuffer_get_length(bufferevent_get_output(
	    d->to->bev));
	if (held > LATENCY_QUEUE_MAX)
		bufferevent_disable(d->from->bev, EV_READ);
	else
		bufferevent_enable(d->from->bev, EV_READ);
}

/* The EOF was delivered and the output drained: shut; -1 if c freed. */
static int
latency_dir_shut(struct latency_dir *d)
{
	if (!d->eof_due || d->done || !d->to->connected ||
	    evbuffer_get_length(bufferevent_get_output(d->to->bev)) > 0)
		return 0;
	if (shutdown(bufferevent_getfd(d->to->bev), SHUT_WR) == -1 &&
	    errno != ENOTCONN)
		log_warn("conn=%lu %s shutdown", d->c->id, d->name);
	if (d->c->p->verbose)
		log_info("conn=%lu %s eof", d->c->id, d->name);
	d->done = true;
	return latency_conn_check(d->c);
}

/*
 * Move every chunk due now to the receiver's output, then re-arm the
 * timer for the next; -1 if the connection was freed.
 */
static int
latency_dir_deliver(struct latency_dir *d)
{
	struct evbuffer		*out;
	enum latency_chunk	 kind;
	uint64_t		 due;

	if (d->done || !d->to->connected)
		return 0;
	out = bufferevent_get_output(d->to->bev);
	while ((kind = latency_queue_pop(&d->q, latency_now(), out)) ==
	    LATENCY_DATA)
		;
	if (kind == LATENCY_EOF) {
		d->eof_due = true;
		latency_queue_fini(&d->q);
	} else if (latency_queue_next(&d->q, &due))
		latency_arm(d->timer, due);
	latency_dir_pace(d);
	return latency_dir_shut(d);
}

/* A direction's timer: deliver what is due. */
static void
latency_dir_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	UNUSED(fd);
	UNUSED(what);
	latency_dir_deliver(arg);
}

/* Bytes arrived on a side: queue them rtt/2 ahead. */
static void
latency_read_cb(struct bufferevent *bev, void *arg)
{
	struct latency_side	*s = arg;
	struct latency_dir	*d = latency_dir_from(s);
	struct evbuffer		*in = bufferevent_get_input(bev);
	size_t			 n = evbuffer_get_length(in);
	bool			 idle = TAILQ_EMPTY(&d->q.items);

	if (d->done || d->q.eof) {
		/* Nobody to deliver to any more. */
		evbuffer_drain(in, n);
		return;
	}
	latency_queue_push(&d->q, in, latency_now() + s->c->p->half);
	if (s->c->p->verbose)
		log_info("conn=%lu %s bytes=%zu", s->c->id, d->name, n);
	if (idle && d->to->connected)
		latency_arm(d->timer, latency_now() + s->c->p->half);
	latency_dir_pace(d);
}

/* A side's output drained: maybe read the other again, or shut. */
static void
latency_write_cb(struct bufferevent *bev, void *arg)
{
	struct latency_dir	*d = latency_dir_to(arg);

	UNUSED(bev);
	latency_dir_pace(d);
	latency_dir_shut(d);
}

/* The upstream connect finished: deliver what the client already sent. */
static void
latency_connected(struct latency_side *s)
{
	s->connected = true;
	latency_nodelay(s->bev);
	if (s->c->p->verbose)
		log_info("conn=%lu upstream connected", s->c->id);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	latency_dir_deliver(latency_dir_to(s));
}

/*
 * EOF or an error on a side: the other side gets the EOF behind the data
 * already queued.  After an error nothing more can be written to this
 * side, so what was queued toward it is dropped.
 */
static void
latency_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct latency_side	*s = arg;
	struct latency_dir	*out = latency_dir_from(s);
	struct latency_dir	*in = latency_dir_to(s);

	UNUSED(bev);
	if (what & BEV_EVENT_CONNECTED) {
		latency_connected(s);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (s->c->p->verbose || (what & BEV_EVENT_ERROR))
		log_info("conn=%lu %s %s%s%s", s->c->id,
		    s == &s->c->client ? "client" : "upstream",
		    (what & BEV_EVENT_EOF) ? "eof" : "error",
		    (what & BEV_EVENT_ERROR) ? " " : "",
		    (what & BEV_EVENT_ERROR) ?
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()) : "");
	s->read_done = true;
	bufferevent_disable(s->bev, EV_READ);
	if (!out->q.eof && !out->done) {
		if (TAILQ_EMPTY(&out->q.items) && out->to->connected)
			latency_arm(out->timer, latency_now() + s->c->p->half);
		latency_queue_push_eof(&out->q, latency_now() + s->c->p->half);
	}
	if (what & BEV_EVENT_ERROR) {
		latency_queue_fini(&in->q);
		evtimer_del(in->timer);
		in->done = true;
	}
	latency_conn_check(s->c);
}

/* 1.5 rtt after the accept: the upstream connect (SYN, SYN-ACK, ACK). */
static void
latency_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct latency_conn	*c = arg;

	UNUSED(fd);
	UNUSED(what);
	if (latency_now() < c->connect_at) {
		/* libevent's coarse clock woke us a little early. */
		latency_arm(c->connect_ev, c->connect_at);
		return;
	}
	if (bufferevent_socket_connect(c->server.bev,
	    (struct sockaddr *)&c->p->to, sizeof(c->p->to)) == -1)
		latency_event_cb(c->server.bev, BEV_EVENT_ERROR, &c->server);
}

/* Set up one side's bufferevent and callbacks. */
static void
latency_side_init(struct latency_conn *c, struct latency_side *s,
    evutil_socket_t fd)
{
	s->c = c;
	if ((s->bev = bufferevent_socket_new(c->p->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		fatalx("bufferevent_socket_new failed");
	bufferevent_setcb(s->bev, latency_read_cb, latency_write_cb,
	    latency_event_cb, s);
}

/* Set up one direction. */
static void
latency_dir_init(struct latency_conn *c, struct latency_dir *d,
    const char *name, struct latency_side *from, struct latency_side *to)
{
	d->c = c;
	d->name = name;
	d->from = from;
	d->to = to;
	latency_queue_init(&d->q);
	if ((d->timer = evtimer_new(c->p->base, latency_dir_timer_cb,
	    d)) == NULL)
		fatalx("evtimer_new failed");
}

/* A client connected: read it now, connect upstream 1.5 rtt later. */
static void
latency_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct latency_proxy	*p = arg;
	struct latency_conn	*c;

	UNUSED(l);
	UNUSED(sa);
	UNUSED(salen);
	c = xcalloc(1, sizeof(*c));
	c->p = p;
	c->id = ++p->accepted;
	TAILQ_INSERT_TAIL(&p->conns, c, entry);
	latency_side_init(c, &c->client, fd);
	latency_side_init(c, &c->server, -1);
	latency_dir_init(c, &c->up, "up", &c->client, &c->server);
	latency_dir_init(c, &c->down, "down", &c->server, &c->client);
	c->client.connected = true;
	latency_nodelay(c->client.bev);
	bufferevent_enable(c->client.bev, EV_READ | EV_WRITE);
	if ((c->connect_ev = evtimer_new(p->base, latency_connect_cb,
	    c)) == NULL)
		fatalx("evtimer_new failed");
	c->connect_at = latency_now() + 3 * p->half;
	latency_arm(c->connect_ev, c->connect_at);
	if (p->verbose)
		log_info("conn=%lu accepted", c->id);
}

/* accept() failed (EMFILE and the like): say so and go on. */
static void
latency_accept_error_cb(struct evconnlistener *l, void *arg)
{
	UNUSED(l);
	UNUSED(arg);
	log_warn("accept");
}

/* True for an address on 127.0.0.0/8. */
static bool
latency_loopback(const struct sockaddr_in *sin)
{
	return sin->sin_family == AF_INET &&
	    (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
}

/* Listen on listen_addr and relay to to_addr with rtt_ms. */
struct latency_proxy *
latency_proxy_new(struct event_base *base, const struct sockaddr_in *laddr,
    const struct sockaddr_in *to, unsigned rtt_ms, int verbose, char *err,
    size_t errlen)
{
	struct latency_proxy	*p;
	struct sockaddr_in	 sin = *laddr;
	socklen_t		 len = sizeof(sin);

	if (!latency_loopback(laddr) || !latency_loopback(to)) {
		snprintf(err, errlen, "loopback addresses only");
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	p->base = base;
	p->to = *to;
	p->half = (uint64_t)rtt_ms * 1000 / 2;
	p->verbose = verbose;
	TAILQ_INIT(&p->conns);
	p->listener = evconnlistener_new_bind(base, latency_accept_cb, p,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    -1, (struct sockaddr *)&sin, sizeof(sin));
	if (p->listener == NULL || getsockname(evconnlistener_get_fd(
	    p->listener), (struct sockaddr *)&sin, &len) == -1) {
		snprintf(err, errlen, "listen on 127.0.0.1:%u: %s",
		    ntohs(laddr->sin_port), strerror(errno));
		latency_proxy_free(p);
		return NULL;
	}
	evconnlistener_set_error_cb(p->listener, latency_accept_error_cb);
	p->port = ntohs(sin.sin_port);
	return p;
}

/* The port it listens on. */
unsigned
latency_proxy_port(const struct latency_proxy *p)
{
	return p->port;
}

/* Connections accepted so far. */
unsigned long
latency_proxy_accepted(const struct latency_proxy *p)
{
	return p->accepted;
}

/* Close every connection and the listener. */
void
latency_proxy_free(struct latency_proxy *p)
{
	struct latency_conn	*c;

	if (p == NULL)
		return;
	while ((c = TAILQ_FIRST(&p->conns)) != NULL)
		latency_conn_free(c);
	if (p->listener != NULL)
		evconnlistener_free(p->listener);
	free(p);
}
