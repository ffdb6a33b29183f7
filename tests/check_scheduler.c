/*
 * check_scheduler.c: the retry schedule, scheduler_next_delay: retry_min
 * after the first failure, doubled per further failure, capped at
 * retry_max, without overflow for large counts and bounds.  And the
 * flush (ETRN, SIGUSR1) on a real queue, event loop and relay sessions
 * against a local listener that hangs up: the first flush retries at
 * once, a flush within retry-min of it makes no relay attempt.  And what
 * a waiting entry costs: no credentials, envelope or job of its own, only
 * while it is being relayed.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#if defined(__SANITIZE_ADDRESS__)
/* From libasan (sanitizer/allocator_interface.h, not installed here). */
size_t	__sanitizer_get_current_allocated_bytes(void);
#endif

#include "check_relayq.h"
#include "envelope.h"
#include "queue.h"
#include "sasl.h"
#include "scheduler.h"
#include "tls.h"

static const struct {
	unsigned	 attempts, min, max, want;
} delay_cases[] = {
	/* The defaults: 60 s doubling to 1 h. */
	{ 0, 60, 3600, 60 },
	{ 1, 60, 3600, 60 },
	{ 2, 60, 3600, 120 },
	{ 3, 60, 3600, 240 },
	{ 6, 60, 3600, 1920 },
	{ 7, 60, 3600, 3600 },		/* 3840 capped */
	{ 8, 60, 3600, 3600 },
	{ 1000, 60, 3600, 3600 },
	/* The small values the integration tests use. */
	{ 1, 1, 4, 1 },
	{ 2, 1, 4, 2 },
	{ 3, 1, 4, 4 },
	{ 4, 1, 4, 4 },
	/* min above max: max wins. */
	{ 1, 10, 5, 5 },
	/* No overflow near the top of unsigned. */
	{ 40, UINT_MAX / 2 + 1, UINT_MAX, UINT_MAX },
	{ UINT_MAX, 1, UINT_MAX, UINT_MAX },
	{ 32, 1, UINT_MAX, 2147483648U },
	{ 33, 1, UINT_MAX, UINT_MAX },
	/* min equal to max stays put. */
	{ 5, 30, 30, 30 }
};

/* One row of the table. */
START_TEST(test_scheduler_next_delay)
{
	ck_assert_uint_eq(scheduler_next_delay(delay_cases[_i].attempts,
	    delay_cases[_i].min, delay_cases[_i].max), delay_cases[_i].want);
}
END_TEST

/* A queue with one entry, a scheduler, and a relay that hangs up. */
struct rig {
	char			 dir[64];
	struct queue		*q;
	struct event_base	*base;
	SSL_CTX			*ctx;
	int			 lfd;
	struct event		*accept_ev;
	int			 accepts;	/* relay connections seen */
	char			 port[16];
	char			 id[ENVELOPE_ID_MAX];
	struct scheduler	*sched;
};

/* Accept each relay connection, count it and hang up (a tempfail). */
static void
rig_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rig	*r = arg;
	int		 c;

	(void)what;
	while ((c = accept4(fd, NULL, NULL, SOCK_CLOEXEC)) != -1) {
		r->accepts++;
		close(c);
	}
}

/* Listen on 127.0.0.1, any port, non-blocking; the port into r. */
static void
rig_listen(struct rig *r)
{
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof(sin);

	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	ck_assert_int_ge(r->lfd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(r->lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	ck_assert_int_eq(listen(r->lfd, 16), 0);
	ck_assert_int_eq(getsockname(r->lfd, (struct sockaddr *)&sin, &slen),
	    0);
	snprintf(r->port, sizeof(r->port), "%d", ntohs(sin.sin_port));
	r->accept_ev = event_new(r->base, r->lfd, EV_READ | EV_PERSIST,
	    rig_accept_cb, r);
	ck_assert_ptr_nonnull(r->accept_ev);
	event_add(r->accept_ev, NULL);
}

/* Commit one message, due at due, that has failed attempts times. */
static void
rig_commit_due(struct rig *r, unsigned attempts, time_t due)
{
	struct queue_tx		*tx;
	struct envelope		 env;
	struct sasl_cred	 cred;
	static const char	 msg[] = "Subject: flush\r\n\r\nbody\r\n";

	envelope_init(&env);
	strcpy(env.sender, "alice@example.com");
	envelope_add_rcpt(&env, "bob@example.com");
	env.submitted = time(NULL);
	env.next_attempt = due;
	env.attempts = attempts;
	memset(&cred, 0, sizeof(cred));
	strcpy(cred.user, "alice@example.com");
	strcpy(cred.pass, "flush-pw");
	tx = queue_tx_begin(r->q);
	ck_assert_ptr_nonnull(tx);
	ck_assert_int_eq(queue_tx_write(tx, msg, sizeof(msg) - 1), 0);
	ck_assert_int_eq(queue_tx_commit(tx, &env, &cred), 0);
	snprintf(r->id, sizeof(r->id), "%s", env.id);
	envelope_fini(&env);
}

/* Commit one message, due now, that has failed attempts times. */
static void
rig_commit(struct rig *r, unsigned attempts)
{
	rig_commit_due(r, attempts, time(NULL));
}

/* Set up the rig with one entry and start scheduling it. */
static void
rig_init(struct rig *r, unsigned retry_min, unsigned attempts)
{
	struct scheduler_params	 p;
	char			 qdir[80], err[256] = "";

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "/tmp/relayq-check-sched-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(r->dir));
	snprintf(qdir, sizeof(qdir), "%s/q", r->dir);
	r->q = queue_open(qdir, err, sizeof(err));
	ck_assert_msg(r->q != NULL, "queue_open: %s", err);
	rig_commit(r, attempts);
	r->base = event_base_new();
	ck_assert_ptr_nonnull(r->base);
	r->ctx = tls_client_ctx(NULL, err, sizeof(err));
	ck_assert_msg(r->ctx != NULL, "tls_client_ctx: %s", err);
	rig_listen(r);
	memset(&p, 0, sizeof(p));
	p.relay.base = r->base;
	p.relay.ssl_ctx = r->ctx;
	p.relay.host = "127.0.0.1";
	p.relay.port = r->port;
	p.relay.tls = RELAY_TLS_STARTTLS;
	p.relay.helo = "check.example";
	p.relay.timeout = 5;
	p.relay.fd = -1;
	p.retry_min = retry_min;
	p.retry_max = 3600;
	p.max_age = 86400;
	p.max_parallel = 1;
	r->sched = scheduler_new(r->q, &p);
	scheduler_add(r->sched, r->id);
	ck_assert_uint_eq(scheduler_count(r->sched), 1);
}

/* nftw callback that removes one entry. */
static int
rig_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Free everything and remove the directory. */
static void
rig_fini(struct rig *r)
{
	scheduler_free(r->sched);
	event_free(r->accept_ev);
	close(r->lfd);
	event_base_free(r->base);
	SSL_CTX_free(r->ctx);
	queue_close(r->q);
	nftw(r->dir, rig_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* The entry's attempts as recorded on disk. */
static unsigned
rig_attempts(struct rig *r)
{
	struct envelope	 env;
	char		 err[512];
	unsigned	 n;

	ck_assert_msg(queue_load(r->q, r->id, &env, err, sizeof(err)) == 0,
	    "%s", err);
	n = env.attempts;
	envelope_fini(&env);
	return n;
}

/* Run the event loop for ms milliseconds. */
static void
rig_run_for(struct rig *r, long ms)
{
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(r->base, &tv);
	event_base_dispatch(r->base);
}

/* Run the loop until attempts reach want on disk (at most 10 s). */
static void
rig_run_until(struct rig *r, unsigned want)
{
	int	 i;

	for (i = 0; i < 1000 && rig_attempts(r) < want; i++)
		rig_run_for(r, 10);
	ck_assert_uint_eq(rig_attempts(r), want);
}

/* Seconds on the monotonic clock. */
static double
rig_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * retry-min 600: after the entry's first failure, one flush makes one
 * relay attempt at once; twenty more flushes in the next half second,
 * the loop running between them, make none and count none.
 */
START_TEST(test_scheduler_flush_hammered)
{
	struct rig	 r;
	int		 i;

	rig_init(&r, 600, 0);
	rig_run_until(&r, 1);
	ck_assert_int_eq(r.accepts, 1);
	scheduler_flush(r.sched);
	rig_run_until(&r, 2);
	ck_assert_int_eq(r.accepts, 2);
	for (i = 0; i < 20; i++) {
		scheduler_flush(r.sched);
		rig_run_for(&r, 25);
	}
	ck_assert_int_eq(r.accepts, 2);
	ck_assert_uint_eq(rig_attempts(&r), 2);
	ck_assert_uint_eq(scheduler_count(r.sched), 1);
	rig_fini(&r);
}
END_TEST

/*
 * retry-min 1 (retry-max 3600, 20 failures: the timer is an hour away):
 * a flush right after one that took effect is ignored, and one a second
 * later takes effect again.
 */
START_TEST(test_scheduler_flush_window_ends)
{
	struct rig	 r;
	double		 t0;

	rig_init(&r, 1, 20);
	rig_run_until(&r, 21);
	ck_assert_int_eq(r.accepts, 1);
	t0 = rig_now();
	scheduler_flush(r.sched);
	rig_run_until(&r, 22);
	scheduler_flush(r.sched);
	rig_run_for(&r, 100);
	ck_assert_int_eq(r.accepts, 2);
	ck_assert_uint_eq(rig_attempts(&r), 22);
	while (rig_now() < t0 + 1.05)
		rig_run_for(&r, 20);
	ck_assert_int_eq(r.accepts, 2);
	scheduler_flush(r.sched);
	rig_run_until(&r, 23);
	ck_assert_int_eq(r.accepts, 3);
	rig_fini(&r);
}
END_TEST

/* Bytes in use on the heap (ASan's own count under ASan). */
static size_t
rig_heap_used(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return __sanitizer_get_current_allocated_bytes();
#else
	return mallinfo2().uordblks;
#endif
}

#define RIG_WAITING	100	/* entries added for the footprint test */

/*
 * A waiting entry costs its id, timer, links and counters, not the job
 * with its credentials (a 2048-byte secret field), the envelope and the
 * outcome, which exist only while it is being relayed: 100 entries due
 * in an hour take less than 1 KB of heap each (about 4.4 KB each when
 * every entry embedded them).  And the entry relayed meanwhile (a
 * failed attempt, deferred) is still tracked with the others.
 */
START_TEST(test_scheduler_waiting_footprint)
{
	struct rig	 r;
	char		 first[ENVELOPE_ID_MAX];
	char		 ids[RIG_WAITING][ENVELOPE_ID_MAX];
	size_t		 before, after, i;

	rig_init(&r, 600, 0);
	memcpy(first, r.id, sizeof(first));
	for (i = 0; i < RIG_WAITING; i++) {
		rig_commit_due(&r, 0, time(NULL) + 3600);
		memcpy(ids[i], r.id, sizeof(ids[i]));
	}
	memcpy(r.id, first, sizeof(r.id));
	before = rig_heap_used();
	for (i = 0; i < RIG_WAITING; i++)
		scheduler_add(r.sched, ids[i]);
	after = rig_heap_used();
	ck_assert_uint_eq(scheduler_count(r.sched), RIG_WAITING + 1);
	ck_assert_uint_gt(after, before);
	ck_assert_msg((after - before) / RIG_WAITING < 1024,
	    "%zu bytes of heap per waiting entry",
	    (after - before) / RIG_WAITING);
	/* The first entry is due now: one attempt, the hang-up, deferred. */
	rig_run_until(&r, 1);
	ck_assert_int_eq(r.accepts, 1);
	ck_assert_uint_eq(scheduler_count(r.sched), RIG_WAITING + 1);
	rig_fini(&r);
}
END_TEST

/* The scheduler suite. */
Suite *
scheduler_suite(void)
{
	Suite	*s = suite_create("scheduler");
	TCase	*tc = tcase_create("delay");

	tcase_add_loop_test(tc, test_scheduler_next_delay, 0,
	    (int)nitems_ck(delay_cases));
	suite_add_tcase(s, tc);
	tc = tcase_create("flush");
	tcase_add_test(tc, test_scheduler_flush_hammered);
	tcase_add_test(tc, test_scheduler_flush_window_ends);
	suite_add_tcase(s, tc);
	tc = tcase_create("footprint");
	tcase_add_test(tc, test_scheduler_waiting_footprint);
	suite_add_tcase(s, tc);
	return s;
}
