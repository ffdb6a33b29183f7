/*
 * scheduler.c: an evtimer per queued entry; when it fires the entry is
 * handed to a relay session, or waits in the ready list while
 * max-parallel sessions run.  Relay results come back to
 * scheduler_relay_done_cb and are applied through the queue: delivered
 * entries are removed, permanent failures move to failed/, temporary ones
 * get attempts+1, the reply and a later next-attempt.
 *
 * While an entry is relayed its directory is flock'ed (queue_lock), so
 * relayq --delete cannot remove it underneath; it leaves a DELETE marker
 * instead, which is honoured when the attempt ends and at every scan.
 * An entry that is not a complete, readable entry is moved to failed/
 * once, with the reason, when it is first seen.  A local condition that
 * may pass (EMFILE, ENFILE, ENOMEM, EIO, a lock that cannot be taken)
 * postpones the entry instead, without counting an attempt: it never
 * costs the entry its place in queue/ or its credentials.
 *
 * A flush (ETRN, SIGUSR1) makes every waiting entry due now, at most once
 * per retry-min: a flush sooner than that after the last one that took
 * effect is ignored, so a client repeating ETRN causes at most one extra
 * relay attempt (a Gmail login) per entry per retry-min.
 */
#include <sys/queue.h>

#include <errno.h>
#include <search.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "envelope.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "scheduler.h"
#include "util.h"

struct sched_entry {
	TAILQ_ENTRY(sched_entry) all;
	TAILQ_ENTRY(sched_entry) ready;
	bool			 is_ready;
	struct scheduler	*sched;
	char			 id[ENVELOPE_ID_MAX];
	struct event		*timer;
	struct relay		*relay;		/* non-NULL while relaying */
	int			 lockfd;	/* queue_lock fd, or -1 */
	unsigned		 postponed;	/* local errors in a row */
	struct envelope		 env;		/* loaded while relaying */
};

TAILQ_HEAD(sched_list, sched_entry);

struct scheduler {
	struct queue		*queue;
	struct scheduler_params	 params;
	struct sched_list	 entries;
	struct sched_list	 readyq;
	void			*index;		/* tsearch tree by id */
	size_t			 count;
	unsigned		 running;
	bool			 flushed;	/* a flush took effect */
	struct timespec		 last_flush;	/* CLOCK_MONOTONIC */
	char			 last_result[256];
};

/* What sched_admit made of an entry. */
enum sched_admission {
	SCHED_ADMITTED,		/* loaded; go ahead */
	SCHED_DROPPED,		/* deleted, gone or moved aside */
	SCHED_POSTPONED		/* a local error that may pass */
};

static int	 sched_cmp(const void *, const void *);
static struct sched_entry *sched_find(struct scheduler *, const char *);
static void	 sched_forget(struct sched_entry *);
static void	 sched_arm(struct sched_entry *, time_t when);
static void	 sched_timer_cb(evutil_socket_t, short, void *);
static void	 sched_pump(struct scheduler *);
static void	 sched_start(struct sched_entry *);
static int	 sched_lock(struct sched_entry *);
static void	 sched_unreadable(struct sched_entry *, const char *, int);
static void	 sched_relay_done_cb(void *, enum relay_result, const char *);
static void	 sched_delivered(struct sched_entry *, const char *);
static void	 sched_failed(struct sched_entry *, const char *);
static void	 sched_deferred(struct sched_entry *, const char *);
static void	 sched_scan_cb(const char *, void *);
static const char *sched_rcpts(const struct envelope *, char *, size_t);
static int	 sched_deleted(struct scheduler *, const char *);
static void	 sched_unlock(struct sched_entry *);
static void	 sched_postpone(struct sched_entry *, const char *,
		    const char *);

/* Create the scheduler; entries arrive through scheduler_add/scan. */
struct scheduler *
scheduler_new(struct queue *q, const struct scheduler_params *params)
{
	struct scheduler	*s;

	s = xcalloc(1, sizeof(*s));
	s->queue = q;
	s->params = *params;
	TAILQ_INIT(&s->entries);
	TAILQ_INIT(&s->readyq);
	return s;
}

/* Cancel what runs (it stays queued on disk) and free everything. */
void
scheduler_free(struct scheduler *s)
{
	struct sched_entry	*e;

	if (s == NULL)
		return;
	while ((e = TAILQ_FIRST(&s->entries)) != NULL) {
		if (e->relay != NULL) {
			relay_cancel(e->relay);
			e->relay = NULL;
			log_info("%s interrupted: stays queued", e->id);
		}
		sched_forget(e);
	}
	free(s);
}

/* Order the index by queue ID. */
static int
sched_cmp(const void *a, const void *b)
{
	const struct sched_entry	*ea = a, *eb = b;

	return strcmp(ea->id, eb->id);
}

/* The tracked entry for id, or NULL. */
static struct sched_entry *
sched_find(struct scheduler *s, const char *id)
{
	struct sched_entry	 key, **found;

	if (str_copy(key.id, id, sizeof(key.id)) == -1)
		return NULL;
	found = tfind(&key, &s->index, sched_cmp);
	return found ? *found : NULL;
}

/* Stop tracking an entry (its files are the caller's business). */
static void
sched_forget(struct sched_entry *e)
{
	struct scheduler	*s = e->sched;

	if (e->is_ready)
		TAILQ_REMOVE(&s->readyq, e, ready);
	TAILQ_REMOVE(&s->entries, e, all);
	tdelete(e, &s->index, sched_cmp);
	s->count--;
	sched_unlock(e);
	event_free(e->timer);
	envelope_fini(&e->env);
	free(e);
}

/* Fire e's timer at the wall-clock time when (now if in the past). */
static void
sched_arm(struct sched_entry *e, time_t when)
{
	struct timeval	 tv = { 0, 0 };
	time_t		 now = time(NULL);

	if (when > now)
		tv.tv_sec = when - now;
	evtimer_add(e->timer, &tv);
}

/* Release the entry's relay lock, if held. */
static void
sched_unlock(struct sched_entry *e)
{
	queue_unlock(e->lockfd);
	e->lockfd = -1;
}

/*
 * Honour relayq --delete's marker: remove queue/<id>.  0 when there is no
 * marker, 1 when removed, -1 when the removal failed (logged).
 */
static int
sched_deleted(struct scheduler *s, const char *id)
{
	if (!queue_delete_requested(s->queue, id))
		return 0;
	if (queue_remove(s->queue, id) == -1) {
		log_warn("%s: cannot remove the entry deleted by request", id);
		return -1;
	}
	log_info("%s deleted by request", id);
	return 1;
}

/* Move a bad entry or stray file aside, logging it by name, once. */
static void
sched_quarantine(struct scheduler *s, const char *id, const char *err)
{
	log_warnx("%s unreadable, moved to failed/: %s", id, err);
	if (queue_quarantine(s->queue, id, err) == -1)
		log_warn("%s: cannot move to failed/", id);
}

/*
 * Load queue/<id> for scheduling.  An entry deleted by request, gone, or
 * bad in itself is dropped (a bad one moved aside); a local error that
 * may pass (EMFILE, ENOMEM, EIO...) postpones it, with the reason in err.
 */
static enum sched_admission
sched_admit(struct scheduler *s, const char *id, struct envelope *env,
    char *err, size_t errlen)
{
	int	 saved_errno;

	switch (sched_deleted(s, id)) {
	case 1:
		return SCHED_DROPPED;
	case -1:
		snprintf(err, errlen, "cannot remove the entry deleted by "
		    "request");
		return SCHED_POSTPONED;
	default:
		break;
	}
	if (queue_check(s->queue, id, err, errlen) == 0 &&
	    queue_load(s->queue, id, env, err, errlen) == 0)
		return SCHED_ADMITTED;
	saved_errno = errno;
	if (saved_errno == ENOENT && !queue_exists(s->queue, id)) {
		log_info("%s no longer in the queue", id);
		return SCHED_DROPPED;
	}
	if (!queue_content_error(saved_errno))
		return SCHED_POSTPONED;
	sched_quarantine(s, id, err);
	return SCHED_DROPPED;
}

/* Start tracking queue/<id>, scheduled at its envelope's next-attempt. */
void
scheduler_add(struct scheduler *s, const char *id)
{
	struct sched_entry	*e;
	struct envelope		 env;
	enum sched_admission	 admission;
	char			 err[512];

	if (sched_find(s, id) != NULL)
		return;
	envelope_init(&env);
	admission = sched_admit(s, id, &env, err, sizeof(err));
	if (admission == SCHED_DROPPED) {
		envelope_fini(&env);
		return;
	}
	if (admission == SCHED_ADMITTED && env.state == ENVELOPE_FAILED) {
		/* A crash interrupted queue_fail: finish the move. */
		if (queue_fail(s->queue, &env) == -1)
			log_warn("%s: cannot move to failed/", id);
		else
			log_info("%s failed reply=\"%s\"", id, env.last_reply);
		envelope_fini(&env);
		return;
	}
	e = xcalloc(1, sizeof(*e));
	e->sched = s;
	e->lockfd = -1;
	str_copy(e->id, id, sizeof(e->id));
	envelope_init(&e->env);
	if ((e->timer = evtimer_new(s->params.relay.base,
	    sched_timer_cb, e)) == NULL)
		fatalx("evtimer_new");
	TAILQ_INSERT_TAIL(&s->entries, e, all);
	if (tsearch(e, &s->index, sched_cmp) == NULL)
		fatal("tsearch");
	s->count++;
	if (admission == SCHED_POSTPONED)
		sched_postpone(e, "cannot load", err);
	else
		sched_arm(e, env.next_attempt);
	envelope_fini(&env);
}

/* queue_scan's callback. */
static void
sched_scan_cb(const char *id, void *arg)
{
	scheduler_add(arg, id);
}

/* Track everything in queue/ (start-up, SIGHUP). */
int
scheduler_scan(struct scheduler *s)
{
	return queue_scan(s->queue, sched_scan_cb, s);
}

/*
 * Make every waiting entry due now, unless the last flush that did so was
 * less than retry-min ago: then the flush is ignored (and logged), and
 * does not push that time back.
 */
void
scheduler_flush(struct scheduler *s)
{
	struct sched_entry	*e;
	struct timespec		 now;
	long long		 ago;		/* milliseconds */
	unsigned		 n = 0;

	if (clock_gettime(CLOCK_MONOTONIC, &now) == -1)
		fatal("clock_gettime");
	ago = (long long)(now.tv_sec - s->last_flush.tv_sec) * 1000 +
	    (now.tv_nsec - s->last_flush.tv_nsec) / 1000000;
	if (s->flushed && ago < (long long)s->params.retry_min * 1000) {
		log_info("flush ignored: the last one was %lld.%03llds ago, "
		    "less than retry-min (%us)", ago / 1000, ago % 1000,
		    s->params.retry_min);
		return;
	}
	s->flushed = true;
	s->last_flush = now;
	TAILQ_FOREACH(e, &s->entries, all) {
		if (e->relay != NULL || e->is_ready)
			continue;
		sched_arm(e, 0);
		n++;
	}
	log_info("flush: %u waiting entries due now", n);
}

/* How many entries are tracked. */
size_t
scheduler_count(const struct scheduler *s)
{
	return s->count;
}

/* The last outcome, one line. */
const char *
scheduler_last_result(const struct scheduler *s)
{
	return s->last_result;
}

/* retry_min * 2^(attempts-1), capped at retry_max. */
unsigned
scheduler_next_delay(unsigned attempts, unsigned min, unsigned max)
{
	unsigned long long	 d = min;
	unsigned		 i;

	for (i = 1; i < attempts && d < max; i++)
		d *= 2;
	return d > max ? max : (unsigned)d;
}

/* An entry is due: run it or queue it behind max-parallel. */
static void
sched_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched_entry	*e = arg;
	struct scheduler	*s = e->sched;

	UNUSED(fd);
	UNUSED(what);
	if (e->relay != NULL || e->is_ready)
		return;
	e->is_ready = true;
	TAILQ_INSERT_TAIL(&s->readyq, e, ready);
	sched_pump(s);
}

/* Start ready entries while there is room. */
static void
sched_pump(struct scheduler *s)
{
	struct sched_entry	*e;

	while (s->running < s->params.max_parallel &&
	    (e = TAILQ_FIRST(&s->readyq)) != NULL) {
		TAILQ_REMOVE(&s->readyq, e, ready);
		e->is_ready = false;
		sched_start(e);
	}
}

/*
 * Take the entry's relay lock; 0, or -1 when the entry was rescheduled
 * or dropped instead.  Never lets an attempt run unlocked.
 */
static int
sched_lock(struct sched_entry *e)
{
	struct scheduler	*s = e->sched;
	char			 err[512];
	int			 saved_errno;

	if ((e->lockfd = queue_lock(s->queue, e->id)) != -1)
		return 0;
	saved_errno = errno;
	if (saved_errno == EWOULDBLOCK) {
		/* relayq --delete holds it for a moment. */
		log_debug("%s locked by another process; retrying", e->id);
		sched_arm(e, time(NULL) + 1);
		return -1;
	}
	if (!queue_content_error(saved_errno)) {
		sched_postpone(e, "cannot lock", strerror(saved_errno));
		return -1;
	}
	/* Gone, or not an entry directory: sched_admit says which. */
	switch (sched_admit(s, e->id, &e->env, err, sizeof(err))) {
	case SCHED_DROPPED:
		sched_forget(e);
		break;
	case SCHED_POSTPONED:
		sched_postpone(e, "cannot load", err);
		break;
	case SCHED_ADMITTED:
		sched_postpone(e, "cannot lock", strerror(saved_errno));
		break;
	}
	return -1;
}

/*
 * A file of the entry could not be read: a bad file fails the entry, a
 * local error (EMFILE, ENOMEM, EIO...) postpones it.
 */
static void
sched_unreadable(struct sched_entry *e, const char *file, int errnum)
{
	char	 reason[ENVELOPE_REPLY_MAX];

	snprintf(reason, sizeof(reason), "%s unreadable: %s", file,
	    strerror(errnum));
	if (queue_content_error(errnum))
		sched_failed(e, reason);
	else
		sched_postpone(e, "cannot load", reason);
}

/*
 * A local condition stopped the attempt before anything was sent: try
 * again after retry-min (doubling while it lasts, up to retry-max),
 * without counting an attempt or touching the entry on disk.
 */
static void
sched_postpone(struct sched_entry *e, const char *what, const char *why)
{
	struct scheduler	*s = e->sched;
	unsigned		 delay;

	e->postponed++;
	delay = scheduler_next_delay(e->postponed, s->params.retry_min,
	    s->params.retry_max);
	log_warnx("%s postponed next=%us: %s%s%s (a local error; not counted "
	    "as an attempt)", e->id, delay, what, why[0] != '\0' ? ": " : "",
	    why);
	snprintf(s->last_result, sizeof(s->last_result), "%s postponed",
	    e->id);
	sched_unlock(e);
	envelope_fini(&e->env);
	envelope_init(&e->env);
	sched_arm(e, time(NULL) + delay);
}

/* Load the entry and hand it to a relay session. */
static void
sched_start(struct sched_entry *e)
{
	struct scheduler	*s = e->sched;
	struct relay_job	 job;
	char			 reason[ENVELOPE_REPLY_MAX], err[512];
	time_t			 now = time(NULL);

	envelope_fini(&e->env);
	envelope_init(&e->env);
	if (sched_lock(e) == -1)
		return;
	switch (sched_admit(s, e->id, &e->env, err, sizeof(err))) {
	case SCHED_ADMITTED:
		break;
	case SCHED_DROPPED:
		sched_forget(e);
		return;
	case SCHED_POSTPONED:
		sched_postpone(e, "cannot load", err);
		return;
	}
	if (e->env.attempts > 0 &&
	    now - e->env.submitted >= (time_t)s->params.max_age) {
		snprintf(reason, sizeof(reason), "gave up after %u attempts "
		    "over %lds; last reply: %.900s", e->env.attempts,
		    (long)(now - e->env.submitted), e->env.last_reply);
		sched_failed(e, reason);
		return;
	}
	memset(&job, 0, sizeof(job));
	job.id = e->id;
	job.sender = e->env.sender;
	job.rcpt = e->env.rcpt;
	job.nrcpt = e->env.nrcpt;
	if (queue_load_cred(s->queue, e->id, &job.cred) == -1) {
		sched_unreadable(e, "credentials", errno);
		return;
	}
	if ((job.msgfd = queue_open_message(s->queue, e->id)) == -1) {
		sasl_cred_clear(&job.cred);
		sched_unreadable(e, "message.eml", errno);
		return;
	}
	e->relay = relay_start(&s->params.relay, &job, sched_relay_done_cb, e);
	sasl_cred_clear(&job.cred);
	if (e->relay == NULL) {
		/* No connection was made: nothing reached the relay. */
		sched_postpone(e, "cannot start a relay session", "");
		return;
	}
	e->postponed = 0;
	s->running++;
}

/* A relay session ended: apply its result, then start the next. */
static void
sched_relay_done_cb(void *arg, enum relay_result result, const char *reply)
{
	struct sched_entry	*e = arg;
	struct scheduler	*s = e->sched;

	e->relay = NULL;
	s->running--;
	if (result != RELAY_OK) {
		switch (sched_deleted(s, e->id)) {
		case 1:
			sched_forget(e);
			sched_pump(s);
			return;
		case -1:
			/* Not relayed again: the removal is retried. */
			sched_postpone(e, "cannot remove the entry deleted by "
			    "request", "");
			sched_pump(s);
			return;
		default:
			break;
		}
	}
	switch (result) {
	case RELAY_OK:
		sched_delivered(e, reply);
		break;
	case RELAY_PERMFAIL:
		sched_failed(e, reply);
		break;
	case RELAY_TEMPFAIL:
		sched_deferred(e, reply);
		break;
	}
	sched_pump(s);
}

/* "a@x,b@y" for logs, shortened with "..." when long. */
static const char *
sched_rcpts(const struct envelope *env, char *buf, size_t len)
{
	size_t	 i, used = 0;
	int	 n;

	buf[0] = '\0';
	for (i = 0; i < env->nrcpt; i++) {
		n = snprintf(buf + used, len - used, "%s%s", i ? "," : "",
		    env->rcpt[i]);
		if (n < 0 || (size_t)n >= len - used) {
			if (len > 4)
				memcpy(buf + len - 4, "...", 4);
			break;
		}
		used += (size_t)n;
	}
	return buf;
}

/* Gmail took it: remove the entry durably. */
static void
sched_delivered(struct sched_entry *e, const char *reply)
{
	struct scheduler	*s = e->sched;
	char			 rcpts[512];

	log_info("%s delivered from=<%s> to=%s relay=%s:%s attempts=%u "
	    "reply=\"%s\"", e->id, e->env.sender,
	    sched_rcpts(&e->env, rcpts, sizeof(rcpts)), s->params.relay.host,
	    s->params.relay.port, e->env.attempts + 1, reply);
	snprintf(s->last_result, sizeof(s->last_result), "%s delivered",
	    e->id);
	QUEUE_FAULT("after-remote-250");
	if (queue_delete_requested(s->queue, e->id))
		log_info("%s deleted by request (after delivery)", e->id);
	if (queue_remove(s->queue, e->id) == -1)
		log_warn("%s: delivered but cannot remove the queue entry "
		    "(it may be sent again)", e->id);
	QUEUE_FAULT("after-remove");
	sched_forget(e);
}

/* Give up: keep the entry in failed/ with the reason. */
static void
sched_failed(struct sched_entry *e, const char *reason)
{
	struct scheduler	*s = e->sched;
	char			 rcpts[512];

	e->env.state = ENVELOPE_FAILED;
	str_copy(e->env.last_reply, reason, sizeof(e->env.last_reply));
	log_info("%s failed from=<%s> to=%s reply=\"%s\"", e->id,
	    e->env.sender, sched_rcpts(&e->env, rcpts, sizeof(rcpts)), reason);
	snprintf(s->last_result, sizeof(s->last_result), "%s failed", e->id);
	if (queue_fail(s->queue, &e->env) == -1) {
		/* It stays in queue/; try again later rather than lose it. */
		log_warn("%s: cannot move to failed/", e->id);
		sched_unlock(e);
		sched_arm(e, time(NULL) + s->params.retry_max);
		return;
	}
	sched_forget(e);
}

/* Temporary failure: count it, record it, and try again later. */
static void
sched_deferred(struct sched_entry *e, const char *reason)
{
	struct scheduler	*s = e->sched;
	time_t			 now = time(NULL);
	unsigned		 delay;

	e->env.attempts++;
	str_copy(e->env.last_reply, reason, sizeof(e->env.last_reply));
	if (now - e->env.submitted >= (time_t)s->params.max_age) {
		char	 why[ENVELOPE_REPLY_MAX];

		snprintf(why, sizeof(why), "gave up after %u attempts over "
		    "%lds; last reply: %.900s", e->env.attempts,
		    (long)(now - e->env.submitted), reason);
		sched_failed(e, why);
		return;
	}
	delay = scheduler_next_delay(e->env.attempts, s->params.retry_min,
	    s->params.retry_max);
	e->env.next_attempt = now + delay;
	/* Recorded first, so whoever reads the log line finds it on disk. */
	if (queue_update(s->queue, &e->env) == -1)
		log_warn("%s: cannot record the attempt (still queued)",
		    e->id);
	log_info("%s deferred from=<%s> attempts=%u next=%us reply=\"%s\"",
	    e->id, e->env.sender, e->env.attempts, delay, reason);
	snprintf(s->last_result, sizeof(s->last_result), "%s deferred",
	    e->id);
	sched_unlock(e);
	sched_arm(e, e->env.next_attempt);
}

/* New parameters (SIGHUP): timers already armed keep their time. */
void
scheduler_set_params(struct scheduler *s, const struct scheduler_params *p)
{
	s->params = *p;
	sched_pump(s);
}
