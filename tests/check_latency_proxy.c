/*
 * check_latency_proxy.c: the latency proxy of `bench --rtt`: its chunk
 * queue, then the proxy in process between a client and an echo server
 * on loopback.  Timing assertions are lower bounds only (a reply through
 * the proxy takes at least the round trips it models), which a slow
 * machine cannot break.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "check_relayq.h"
#include "latency_proxy.h"

#define LP_BANNER	"220 echo ready\r\n"
#define LP_US		1000	/* microseconds per millisecond */

/* ---- The chunk queue ---- */

/* A new evbuffer holding s. */
static struct evbuffer *
lp_buf(const char *s)
{
	struct evbuffer	*b = evbuffer_new();

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(evbuffer_add(b, s, strlen(s)), 0);
	return b;
}

/* True when b holds exactly s. */
static bool
lp_buf_is(struct evbuffer *b, const char *s)
{
	size_t	 n = evbuffer_get_length(b);

	return n == strlen(s) && (n == 0 ||
	    memcmp(evbuffer_pullup(b, -1), s, n) == 0);
}

START_TEST(test_latency_queue_due_order)
{
	struct latency_queue	 q;
	struct evbuffer		*in = lp_buf("ab"), *out = evbuffer_new();
	uint64_t		 due;

	latency_queue_init(&q);
	ck_assert_int_eq(latency_queue_push(&q, in, 100), 0);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	evbuffer_add(in, "cd", 2);
	ck_assert_int_eq(latency_queue_push(&q, in, 200), 0);
	ck_assert_int_eq(latency_queue_push_eof(&q, 300), 0);
	ck_assert_uint_eq(q.bytes, 4);

	ck_assert_int_eq(latency_queue_pop(&q, 99, out), LATENCY_NONE);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
	ck_assert(latency_queue_next(&q, &due));
	ck_assert_uint_eq(due, 100);
	ck_assert_int_eq(latency_queue_pop(&q, 100, out), LATENCY_DATA);
	ck_assert(lp_buf_is(out, "ab"));
	ck_assert_uint_eq(q.bytes, 2);
	ck_assert_int_eq(latency_queue_pop(&q, 199, out), LATENCY_NONE);
	ck_assert(latency_queue_next(&q, &due));
	ck_assert_uint_eq(due, 200);
	/* Long overdue: still one chunk per pop, in order, the EOF last. */
	ck_assert_int_eq(latency_queue_pop(&q, 10000, out), LATENCY_DATA);
	ck_assert(lp_buf_is(out, "abcd"));
	ck_assert_int_eq(latency_queue_pop(&q, 10000, out), LATENCY_EOF);
	ck_assert_int_eq(latency_queue_pop(&q, 10000, out), LATENCY_NONE);
	ck_assert(!latency_queue_next(&q, &due));
	ck_assert_uint_eq(q.bytes, 0);
	latency_queue_fini(&q);
	evbuffer_free(in);
	evbuffer_free(out);
}
END_TEST

START_TEST(test_latency_queue_empty_push)
{
	struct latency_queue	 q;
	struct evbuffer		*in = evbuffer_new();
	uint64_t		 due;

	latency_queue_init(&q);
	ck_assert_int_eq(latency_queue_push(&q, in, 5), 0);
	ck_assert(!latency_queue_next(&q, &due));
	ck_assert_uint_eq(q.bytes, 0);
	latency_queue_fini(&q);
	evbuffer_free(in);
}
END_TEST

START_TEST(test_latency_queue_nothing_after_eof)
{
	struct latency_queue	 q;
	struct evbuffer		*in = lp_buf("late"), *out = evbuffer_new();

	latency_queue_init(&q);
	ck_assert_int_eq(latency_queue_push_eof(&q, 10), 0);
	ck_assert_int_eq(latency_queue_push_eof(&q, 20), -1);
	ck_assert_int_eq(latency_queue_push(&q, in, 30), -1);
	/* Refused, so the bytes are still the caller's. */
	ck_assert(lp_buf_is(in, "late"));
	ck_assert_int_eq(latency_queue_pop(&q, 100, out), LATENCY_EOF);
	ck_assert_int_eq(latency_queue_pop(&q, 100, out), LATENCY_NONE);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
	latency_queue_fini(&q);
	evbuffer_free(in);
	evbuffer_free(out);
}
END_TEST

/* fini frees what is still held (ASan reports a leak otherwise). */
START_TEST(test_latency_queue_fini_held)
{
	struct latency_queue	 q;
	struct evbuffer		*in = lp_buf("x");
	uint64_t		 due;

	latency_queue_init(&q);
	ck_assert_int_eq(latency_queue_push(&q, in, 1), 0);
	ck_assert_int_eq(latency_queue_push_eof(&q, 2), 0);
	latency_queue_fini(&q);
	ck_assert_uint_eq(q.bytes, 0);
	ck_assert(!latency_queue_next(&q, &due));
	evbuffer_free(in);
}
END_TEST

/* ---- The proxy, in process ---- */

/* A client, the proxy and an echo server on one event loop. */
struct lp_test {
	struct event_base	*base;
	struct latency_proxy	*proxy;
	struct evconnlistener	*echo;
	struct bufferevent	*client;
	struct event		*guard;
	struct evbuffer		*got;		/* what the client received */
	const char		*send;		/* sent after the banner */
	size_t			 sendlen;
	bool			 pinged;	/* send went out */
	bool			 shut;		/* client shut its write side */
	bool			 eof;		/* the client saw EOF or error */
	bool			 timeout;
	uint64_t		 t0;		/* client connect */
	uint64_t		 t_banner;
	uint64_t		 t_send;
	uint64_t		 t_echo;
	uint64_t		 t_shut;
	uint64_t		 t_eof;
};

/* Echo server: whatever arrives goes back. */
static void
lp_echo_read_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	evbuffer_add_buffer(bufferevent_get_output(bev),
	    bufferevent_get_input(bev));
}

/* Echo server: its output flushed after EOF: close. */
static void
lp_echo_flushed_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	bufferevent_free(bev);
}

/* Echo server: EOF or error: close once what is echoed went out. */
static void
lp_echo_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if ((what & BEV_EVENT_ERROR) || evbuffer_get_length(
	    bufferevent_get_output(bev)) == 0) {
		bufferevent_free(bev);
		return;
	}
	bufferevent_setcb(bev, NULL, lp_echo_flushed_cb, NULL, NULL);
}

/* Echo server: a connection from the proxy gets the banner. */
static void
lp_echo_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct lp_test		*t = arg;
	struct bufferevent	*bev;

	(void)l;
	(void)sa;
	(void)salen;
	bev = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
	ck_assert_ptr_nonnull(bev);
	bufferevent_setcb(bev, lp_echo_read_cb, NULL, lp_echo_event_cb, t);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	bufferevent_write(bev, LP_BANNER, strlen(LP_BANNER));
}

/* 127.0.0.1:port. */
static struct sockaddr_in
lp_addr(const char *ip, unsigned port)
{
	struct sockaddr_in	 sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	return sin;
}

/* Client: the banner, then the echo of what it sent. */
static void
lp_client_read_cb(struct bufferevent *bev, void *arg)
{
	struct lp_test	*t = arg;
	size_t		 blen = strlen(LP_BANNER);

	evbuffer_add_buffer(t->got, bufferevent_get_input(bev));
	if (t->t_banner == 0 && evbuffer_get_length(t->got) >= blen) {
		t->t_banner = latency_now();
		t->t_send = latency_now();
		bufferevent_write(bev, t->send, t->sendlen);
		t->pinged = true;
	}
	if (t->pinged && t->t_echo == 0 &&
	    evbuffer_get_length(t->got) >= blen + t->sendlen)
		t->t_echo = latency_now();
}

/* Client: once what it sent went out, shut its write side. */
static void
lp_client_write_cb(struct bufferevent *bev, void *arg)
{
	struct lp_test	*t = arg;

	if (!t->pinged || t->shut)
		return;
	t->shut = true;
	t->t_shut = latency_now();
	ck_assert_int_eq(shutdown(bufferevent_getfd(bev), SHUT_WR), 0);
}

/* Client: EOF or error ends the test's loop. */
static void
lp_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct lp_test	*t = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		t->eof = true;
		t->t_eof = latency_now();
		event_base_loopbreak(t->base);
	}
}

/* The loop's bound: give up after a while. */
static void
lp_guard_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lp_test	*t = arg;

	(void)fd;
	(void)what;
	t->timeout = true;
	event_base_loopbreak(t->base);
}

/*
 * Run a client through a proxy with rtt_ms to the echo server (or, when
 * refuse, to a port nobody listens on) until the client sees EOF.
 */
static void
lp_run(struct lp_test *t, unsigned rtt_ms, bool refuse, const char *send,
    size_t sendlen)
{
	struct sockaddr_in	 any = lp_addr("127.0.0.1", 0), to;
	struct timeval		 tv = { 20, 0 };
	socklen_t		 len = sizeof(to);
	char			 err[128];
	int			 fd;

	memset(t, 0, sizeof(*t));
	t->send = send;
	t->sendlen = sendlen;
	ck_assert_ptr_nonnull(t->base = event_base_new());
	ck_assert_ptr_nonnull(t->got = evbuffer_new());
	if (refuse) {
		/* A port just bound and released: nothing listens there. */
		ck_assert_int_ne(fd = socket(AF_INET, SOCK_STREAM, 0), -1);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&any,
		    sizeof(any)), 0);
		ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&to,
		    &len), 0);
		close(fd);
	} else {
		t->echo = evconnlistener_new_bind(t->base, lp_echo_accept_cb,
		    t, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
		    (struct sockaddr *)&any, sizeof(any));
		ck_assert_ptr_nonnull(t->echo);
		ck_assert_int_eq(getsockname(evconnlistener_get_fd(t->echo),
		    (struct sockaddr *)&to, &len), 0);
	}
	t->proxy = latency_proxy_new(t->base, &any, &to, rtt_ms, 0, err,
	    sizeof(err));
	ck_assert_msg(t->proxy != NULL, "latency_proxy_new: %s", err);
	to = lp_addr("127.0.0.1", latency_proxy_port(t->proxy));
	t->client = bufferevent_socket_new(t->base, -1, BEV_OPT_CLOSE_ON_FREE);
	ck_assert_ptr_nonnull(t->client);
	bufferevent_setcb(t->client, lp_client_read_cb, lp_client_write_cb,
	    lp_client_event_cb, t);
	t->t0 = latency_now();
	ck_assert_int_eq(bufferevent_socket_connect(t->client,
	    (struct sockaddr *)&to, sizeof(to)), 0);
	bufferevent_enable(t->client, EV_READ | EV_WRITE);
	t->guard = evtimer_new(t->base, lp_guard_cb, t);
	evtimer_add(t->guard, &tv);
	event_base_dispatch(t->base);
	ck_assert_msg(!t->timeout, "no EOF within 20 s");
	ck_assert_uint_eq(latency_proxy_accepted(t->proxy), 1);
}

/* Free what lp_run set up. */
static void
lp_done(struct lp_test *t)
{
	bufferevent_free(t->client);
	latency_proxy_free(t->proxy);
	if (t->echo != NULL)
		evconnlistener_free(t->echo);
	event_free(t->guard);
	evbuffer_free(t->got);
	event_base_free(t->base);
}

/*
 * The banner 2 rtt after the connect (1.5 for the handshake, 0.5 for
 * the bytes), an echo 1 rtt after the send, and the server's close 1 rtt
 * after the client's half-close.
 */
START_TEST(test_latency_proxy_round_trips)
{
	struct lp_test	 t;
	const char	 ping[] = "PING\r\n";

	lp_run(&t, 100, false, ping, strlen(ping));
	ck_assert(lp_buf_is(t.got, LP_BANNER "PING\r\n"));
	ck_assert(t.t_banner > 0 && t.t_echo > 0 && t.shut);
	ck_assert_uint_ge(t.t_banner - t.t0, 200 * LP_US);
	ck_assert_uint_ge(t.t_echo - t.t_send, 100 * LP_US);
	ck_assert_uint_ge(t.t_eof - t.t_shut, 100 * LP_US);
	lp_done(&t);
}
END_TEST

/* More than LATENCY_QUEUE_MAX each way: every byte, in order. */
START_TEST(test_latency_proxy_large_in_order)
{
	struct lp_test	 t;
	size_t		 n = LATENCY_QUEUE_MAX + LATENCY_QUEUE_MAX / 2, i;
	char		*big = malloc(n);
	const char	*got;

	ck_assert_ptr_nonnull(big);
	for (i = 0; i < n; i++)
		big[i] = (char)('a' + (i * 7 + i / 4093) % 26);
	lp_run(&t, 10, false, big, n);
	ck_assert_uint_eq(evbuffer_get_length(t.got), strlen(LP_BANNER) + n);
	got = (const char *)evbuffer_pullup(t.got, -1);
	ck_assert(memcmp(got, LP_BANNER, strlen(LP_BANNER)) == 0);
	ck_assert(memcmp(got + strlen(LP_BANNER), big, n) == 0);
	free(big);
	lp_done(&t);
}
END_TEST

/* Upstream refuses: the client gets no bytes, and the close after 2 rtt. */
START_TEST(test_latency_proxy_refused)
{
	struct lp_test	 t;

	lp_run(&t, 60, true, "x", 1);
	ck_assert(t.eof);
	ck_assert_uint_eq(evbuffer_get_length(t.got), 0);
	ck_assert_uint_ge(t.t_eof - t.t0, 120 * LP_US);
	lp_done(&t);
}
END_TEST

/* Only loopback addresses, either way. */
START_TEST(test_latency_proxy_loopback_only)
{
	struct event_base	*base = event_base_new();
	struct sockaddr_in	 lo = lp_addr("127.0.0.1", 0);
	struct sockaddr_in	 far = lp_addr("192.0.2.1", 25);
	char			 err[128] = "";

	ck_assert_ptr_null(latency_proxy_new(base, &lo, &far, 10, 0, err,
	    sizeof(err)));
	ck_assert_str_eq(err, "loopback addresses only");
	err[0] = '\0';
	ck_assert_ptr_null(latency_proxy_new(base, &far, &lo, 10, 0, err,
	    sizeof(err)));
	ck_assert_str_eq(err, "loopback addresses only");
	event_base_free(base);
}
END_TEST

Suite *
latency_proxy_suite(void)
{
	Suite	*s = suite_create("latency_proxy");
	TCase	*tc;

	tc = tcase_create("queue");
	tcase_add_test(tc, test_latency_queue_due_order);
	tcase_add_test(tc, test_latency_queue_empty_push);
	tcase_add_test(tc, test_latency_queue_nothing_after_eof);
	tcase_add_test(tc, test_latency_queue_fini_held);
	suite_add_tcase(s, tc);

	tc = tcase_create("proxy");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_latency_proxy_round_trips);
	tcase_add_test(tc, test_latency_proxy_large_in_order);
	tcase_add_test(tc, test_latency_proxy_refused);
	tcase_add_test(tc, test_latency_proxy_loopback_only);
	suite_add_tcase(s, tc);
	return s;
}
