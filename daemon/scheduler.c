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
 * Gmail's account-level replies apply to every entry that carries the
 * same user name and password (account.h keys them by a keyed hash):
 * refused credentials (535 5.7.8, 534 5.7.9, 534 5.7.14, 530 5.7.0) fail
 * every such entry with that reply and no further AUTH; the daily quota
 * (550 5.4.5) pauses the account and keeps its entries queued, without
 * counting attempts, until a probe after quota-probe; too many logins
 * (454 4.7.0) holds the account's logins for auth-backoff, doubling.  An
 * account runs one session until a login has worked, then at most
 * account-sessions.  451 4.4.2 (Gmail's idle timeout) is sent again at
 * once, not counted.  A connection lost after the final dot leaves the
 * entry "uncertain" (envelope.h), retried with the same bytes.
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

#include "account.h"
#include "account_conf.h"
#include "envelope.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "relay_policy.h"
#include "scheduler.h"
#include "util.h"

#define SCHED_RESEND_MAX	3	/* 451 4.4.2 in a row sent again at once */

/*
 * What one attempt needs, allocated when it starts (sched_run_begin) and
 * wiped and freed when it ends, on every path (sched_run_end): so a
 * waiting entry costs only its id, timer, links and counters, not a
 * credential (a 2048-byte token), an envelope and an outcome.
 */
struct sched_run {
	struct relay_job	 job;		/* its credentials wiped at end */
	struct relay_outcome	 outcome;
	/* The pending recipients and their env indices. */
	char			**prcpt;
	size_t			*pidx;
	size_t			 npending;
	struct envelope		 env;
};

struct sched_entry {
	TAILQ_ENTRY(sched_entry) all;
	TAILQ_ENTRY(sched_entry) ready;	/* in readyq or blockedq */
	struct account		*blocked_acct;	/* is_blocked: that account */
	struct sched_conn	*conn;		/* while relaying */
	struct sched_run	*run;		/* during an attempt, else NULL */
	struct scheduler	*sched;
	struct event		*timer;
	struct relay		*relay;		/* non-NULL while relaying */
	int			 lockfd;	/* queue_lock fd, or -1 */
	unsigned		 resends;	/* 451 4.4.2 in a row */
	unsigned		 postponed;	/* local errors in a row */
	bool			 is_ready;
	bool			 is_blocked;	/* its account is busy */
	char			 id[ENVELOPE_ID_MAX];
};

TAILQ_HEAD(sched_list, sched_entry);

/*
 * One relay connection: its account and the entry it carries now.  With
 * connection reuse it carries several, one after the other.
 */
struct sched_conn {
	TAILQ_ENTRY(sched_conn)	 entry;
	struct scheduler	*sched;
	struct relay		*relay;
	struct account		*acct;
	struct sched_entry	*cur;		/* NULL between messages */
};

struct scheduler {
	struct queue		*queue;
	struct scheduler_params	 params;
	struct sched_list	 entries;
	struct sched_list	 readyq;
	struct sched_list	 blockedq;	/* waiting for their account */
	TAILQ_HEAD(, sched_conn) conns;
	struct account_table	*accounts;
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

static void	 sched_params_set(struct scheduler *,
		    const struct scheduler_params *);
static struct sched_run *sched_run_begin(struct sched_entry *);
static void	 sched_run_end(struct sched_entry *);
static void	 sched_rcpt_free(struct sched_run *);
static int	 sched_cmp(const void *, const void *);
static struct sched_entry *sched_find(struct scheduler *, const char *);
static void	 sched_forget(struct sched_entry *);
static void	 sched_arm(struct sched_entry *, time_t when);
static void	 sched_timer_cb(evutil_socket_t, short, void *);
static void	 sched_pump(struct scheduler *);
static void	 sched_start(struct sched_entry *);
static struct account *sched_prepare(struct sched_entry *, struct account *);
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
static bool	 sched_account_full(const struct scheduler *,
		    const struct account *);
static void	 sched_block(struct sched_entry *, struct account *);
static void	 sched_postpone(struct sched_entry *, const char *,
		    const char *);

/* Copy the parameters, filling in the account-level defaults. */
static void
sched_params_set(struct scheduler *s, const struct scheduler_params *p)
{
	s->params = *p;
	if (s->params.quota_probe == 0)
		s->params.quota_probe = 3600;
	if (s->params.quota_max_pause == 0)
		s->params.quota_max_pause = 86400;
	if (s->params.auth_backoff == 0)
		s->params.auth_backoff = 300;
	if (s->params.account_sessions == 0)
		s->params.account_sessions = 2;
	if (s->params.conn_messages == 0)
		s->params.conn_messages = 100;
}

/* Create the scheduler; entries arrive through scheduler_add/scan. */
struct scheduler *
scheduler_new(struct queue *q, const struct scheduler_params *params)
{
	struct scheduler	*s;

	s = xcalloc(1, sizeof(*s));
	s->queue = q;
	sched_params_set(s, params);
	TAILQ_INIT(&s->entries);
	TAILQ_INIT(&s->readyq);
	TAILQ_INIT(&s->blockedq);
	TAILQ_INIT(&s->conns);
	if ((s->accounts = account_table_new()) == NULL)
		fatalx("no randomness for the account table");
	return s;
}

/* Cancel what runs (it stays queued on disk) and free everything. */
void
scheduler_free(struct scheduler *s)
{
	struct sched_entry	*e;
	struct sched_conn	*c;

	if (s == NULL)
		return;
	while ((c = TAILQ_FIRST(&s->conns)) != NULL) {
		TAILQ_REMOVE(&s->conns, c, entry);
		relay_cancel(c->relay);
		if ((e = c->cur) != NULL) {
			e->relay = NULL;
			e->conn = NULL;
			sched_run_end(e);
			log_info("%s interrupted: stays queued", e->id);
		}
		free(c);
	}
	while ((e = TAILQ_FIRST(&s->entries)) != NULL)
		sched_forget(e);
	account_table_free(s->accounts);
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
	if (e->is_blocked)
		TAILQ_REMOVE(&s->blockedq, e, ready);
	TAILQ_REMOVE(&s->entries, e, all);
	tdelete(e, &s->index, sched_cmp);
	s->count--;
	sched_unlock(e);
	event_free(e->timer);
	sched_run_end(e);
	free(e);
}

/*
 * Start an attempt's state (after the lock is taken): the job without
 * message or credentials yet, an empty envelope.
 */
static struct sched_run *
sched_run_begin(struct sched_entry *e)
{
	struct sched_run	*run;

	sched_run_end(e);
	run = xcalloc(1, sizeof(*run));
	run->job.msgfd = -1;
	envelope_init(&run->env);
	e->run = run;
	return run;
}

/*
 * End the attempt's state, whichever way it ended: wipe the credentials,
 * close a message file no relay took, free the rest.
 */
static void
sched_run_end(struct sched_entry *e)
{
	struct sched_run	*run = e->run;

	if (run == NULL)
		return;
	e->run = NULL;
	sasl_cred_clear(&run->job.cred);
	if (run->job.msgfd != -1)
		close(run->job.msgfd);
	sched_rcpt_free(run);
	envelope_fini(&run->env);
	free(run);
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
		if (e->relay != NULL || e->is_ready || e->is_blocked)
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
	if (e->relay != NULL || e->is_ready || e->is_blocked)
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
		/*
		 * It waited for an account that is still busy: back to wait,
		 * without loading it again (a session of that account is
		 * running, and its end brings it back).  Without this, every
		 * session's end reloaded every waiting entry from disk.
		 */
		if (e->blocked_acct != NULL &&
		    sched_account_full(s, e->blocked_acct)) {
			sched_block(e, e->blocked_acct);
			continue;
		}
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
	struct envelope		 env;
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
	envelope_init(&env);
	switch (sched_admit(s, e->id, &env, err, sizeof(err))) {
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
	envelope_fini(&env);
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
	sched_run_end(e);
	sched_arm(e, time(NULL) + delay);
}

/* max-age, plus the quota cap while Gmail's daily limit pauses acct. */
static time_t
sched_max_age(const struct scheduler *s, const struct account *acct)
{
	time_t	 age = (time_t)s->params.max_age;

	if (acct != NULL && acct->quota)
		age += (time_t)s->params.quota_max_pause;
	return age;
}

/*
 * The account waits (quota pause, login backoff): the entry waits with
 * it until when, without an attempt counted; the envelope says why.
 * Past max-age (plus the quota cap) it is given up.
 */
static void
sched_hold(struct sched_entry *e, struct account *acct, time_t when)
{
	struct scheduler	*s = e->sched;
	struct envelope		*env = &e->run->env;
	char			 reason[ENVELOPE_REPLY_MAX];
	time_t			 now = time(NULL);

	if (env->attempts > 0 &&
	    now - env->submitted >= sched_max_age(s, acct)) {
		snprintf(reason, sizeof(reason), "gave up after %lds; %.900s",
		    (long)(now - env->submitted), acct->why);
		sched_failed(e, reason);
		return;
	}
	env->next_attempt = when;
	str_copy(env->last_reply, acct->why, sizeof(env->last_reply));
	if (queue_update(s->queue, env) == -1)
		log_warn("%s: cannot record the wait (still queued)", e->id);
	log_info("%s held next=%lds attempts=%u (not counted): %s", e->id,
	    (long)(when - now), env->attempts, acct->why);
	snprintf(s->last_result, sizeof(s->last_result), "%s held", e->id);
	sched_unlock(e);
	sched_run_end(e);
	sched_arm(e, when);
}

/*
 * What the account allows before a session starts.  True when the entry
 * was dealt with instead: failed (refused credentials: no AUTH is ever
 * tried again with them), held (paused or backing off), or blocked until
 * one of the account's sessions ends.
 */
static bool
sched_account_gate(struct sched_entry *e, struct account *acct, time_t now,
    bool reuse)
{
	struct scheduler	*s = e->sched;
	time_t			 until;

	if (acct->refused) {
		log_info("%s not sent: Gmail refused these credentials "
		    "before; no new AUTH", e->id);
		sched_failed(e, acct->refusal);
		return true;
	}
	if ((until = account_wait_until(acct, now)) != 0) {
		sched_hold(e, acct, until);
		return true;
	}
	if ((until = account_pace_until(acct, now, s->params.daily_cap,
	    s->params.per_minute, acct->why, sizeof(acct->why))) != 0) {
		sched_hold(e, acct, until);
		return true;
	}
	if (!reuse && sched_account_full(s, acct)) {
		log_debug("%s waits for its account (%u sessions)", e->id,
		    acct->running);
		sched_unlock(e);
		sched_run_end(e);
		sched_block(e, acct);
		return true;
	}
	return false;
}

/* True when acct runs all the sessions it may (one until a login works). */
static bool
sched_account_full(const struct scheduler *s, const struct account *acct)
{
	unsigned	 limit;

	limit = acct->proven ? s->params.account_sessions : 1;
	return acct->running >= limit;
}

/* The entry waits in blockedq until a session of acct ends. */
static void
sched_block(struct sched_entry *e, struct account *acct)
{
	e->is_blocked = true;
	e->blocked_acct = acct;
	TAILQ_INSERT_TAIL(&e->sched->blockedq, e, ready);
}

/* Entries that waited for a busy account try again (in order). */
static void
sched_unblock(struct scheduler *s)
{
	struct sched_entry	*e;

	while ((e = TAILQ_FIRST(&s->blockedq)) != NULL) {
		TAILQ_REMOVE(&s->blockedq, e, ready);
		e->is_blocked = false;
		e->is_ready = true;
		TAILQ_INSERT_TAIL(&s->readyq, e, ready);
	}
}

/*
 * Gmail refused acct's credentials: every entry not in flight that
 * carries them is made due now, and fails at the gate without an AUTH.
 */
static void
sched_refuse_all(struct scheduler *s, struct account *acct)
{
	struct sched_entry	*e;
	struct sasl_cred	 cred;
	struct envelope		 env;
	char			 err[256];
	unsigned		 n = 0;
	bool			 match;

	TAILQ_FOREACH(e, &s->entries, all) {
		if (e->relay != NULL || e->is_ready)
			continue;
		/* What it would be relayed with: its own or the account's. */
		envelope_init(&env);
		match = queue_load(s->queue, e->id, &env, err, sizeof(err)) ==
		    0 && account_conf_load_cred(s->params.account, s->queue,
		    e->id, &env, &cred) == 0;
		envelope_fini(&env);
		if (!match)
			continue;
		if (account_match(s->accounts, acct, &cred)) {
			if (e->is_blocked) {
				TAILQ_REMOVE(&s->blockedq, e, ready);
				e->is_blocked = false;
			}
			sched_arm(e, 0);
			n++;
		}
		sasl_cred_clear(&cred);
	}
	if (n > 0)
		log_info("credentials refused by Gmail: %u more queued "
		    "entries with them fail without AUTH", n);
}

/* Drop the pending-recipient arrays of an attempt. */
static void
sched_rcpt_free(struct sched_run *run)
{
	free(run->prcpt);
	free(run->pidx);
	free(run->outcome.rcpts);
	run->prcpt = NULL;
	run->pidx = NULL;
	run->outcome.rcpts = NULL;
	run->npending = 0;
}

/* The recipients with no settling reply yet; how many. */
static size_t
sched_pending(struct sched_run *run)
{
	size_t	 i;

	sched_rcpt_free(run);
	run->prcpt = xcalloc(run->env.nrcpt + 1, sizeof(*run->prcpt));
	run->pidx = xcalloc(run->env.nrcpt + 1, sizeof(*run->pidx));
	for (i = 0; i < run->env.nrcpt; i++) {
		if (envelope_rcpt_reply(&run->env, i) != NULL)
			continue;
		run->prcpt[run->npending] = run->env.rcpt[i];
		run->pidx[run->npending++] = i;
	}
	return run->npending;
}

/* Keep what the attempt settled for each recipient in the envelope. */
static void
sched_rcpt_record(struct sched_run *run)
{
	const struct relay_rcpt_result	*rr = run->outcome.rcpts;
	size_t				 j;

	for (j = 0; rr != NULL && j < run->npending; j++)
		if (rr[j].status != RELAY_RCPT_PENDING)
			envelope_set_rcpt_reply(&run->env, run->pidx[j],
			    rr[j].reply);
	sched_rcpt_free(run);
}

/*
 * Every recipient is settled: delivered when none failed, else failed/
 * with the envelope's rcpt-reply lines saying which got what.  False
 * (nothing done) while some are pending.
 */
static bool
sched_settle(struct sched_entry *e, const char *reply)
{
	const struct envelope	*env = &e->run->env;
	char			 reason[ENVELOPE_REPLY_MAX];
	const char		*r;
	size_t			 i, nfail = 0, first = 0;

	for (i = 0; i < env->nrcpt; i++) {
		if ((r = envelope_rcpt_reply(env, i)) == NULL)
			return false;
		if (r[0] != '2' && nfail++ == 0)
			first = i;
	}
	if (nfail == 0) {
		sched_delivered(e, reply);
		return true;
	}
	if (env->nrcpt == 1)
		snprintf(reason, sizeof(reason), "RCPT TO:<%.256s>: %.700s",
		    env->rcpt[first], envelope_rcpt_reply(env, first));
	else
		snprintf(reason, sizeof(reason), "failed for %zu of %zu "
		    "recipients (see rcpt-reply): RCPT TO:<%.256s>: %.600s",
		    nfail, env->nrcpt, env->rcpt[first],
		    envelope_rcpt_reply(env, first));
	sched_failed(e, reason);
	return true;
}

/*
 * Take the lock, load the entry and build its job (in e->run) for a new
 * connection, or (want) for a connection of that account being reused.
 * Its account, or NULL when the entry was dealt with instead: dropped,
 * failed, held, postponed, blocked, or put back for another connection;
 * then the attempt's state is gone already (sched_run_end).
 */
static struct account *
sched_prepare(struct sched_entry *e, struct account *want)
{
	struct scheduler	*s = e->sched;
	struct sched_run	*run;
	struct relay_job	*jp;
	struct account		*acct;
	char			 reason[ENVELOPE_REPLY_MAX], err[512];
	time_t			 now = time(NULL);

	if (sched_lock(e) == -1)
		return NULL;
	run = sched_run_begin(e);
	jp = &run->job;
	switch (sched_admit(s, e->id, &run->env, err, sizeof(err))) {
	case SCHED_ADMITTED:
		break;
	case SCHED_DROPPED:
		sched_forget(e);
		return NULL;
	case SCHED_POSTPONED:
		sched_postpone(e, "cannot load", err);
		return NULL;
	}
	if (sched_pending(run) == 0) {
		/* Settled before a crash kept it from leaving queue/. */
		if (!sched_settle(e, "every recipient settled before"))
			sched_postpone(e, "cannot settle", "");
		return NULL;
	}
	jp->id = e->id;
	jp->sender = run->env.sender;
	jp->rcpt = run->prcpt;
	jp->nrcpt = run->npending;
	if (account_conf_load_cred(s->params.account, s->queue, e->id,
	    &run->env, &jp->cred) == -1) {
		sched_unreadable(e, "credentials", errno);
		return NULL;
	}
	acct = account_get(s->accounts, &jp->cred);
	if (want != NULL && acct != want) {
		/* Not for this connection: it waits for one of its own. */
		sched_unlock(e);
		sched_run_end(e);
		e->is_ready = true;
		TAILQ_INSERT_TAIL(&s->readyq, e, ready);
		return NULL;
	}
	/* Whatever the gate decides ends the attempt, and may free e. */
	if (sched_account_gate(e, acct, now, want != NULL))
		return NULL;
	if (run->env.attempts > 0 &&
	    now - run->env.submitted >= sched_max_age(s, acct)) {
		sasl_cred_clear(&jp->cred);
		snprintf(reason, sizeof(reason), "gave up after %u attempts "
		    "over %lds; last reply: %.900s", run->env.attempts,
		    (long)(now - run->env.submitted), run->env.last_reply);
		sched_failed(e, reason);
		return NULL;
	}
	if ((jp->msgfd = queue_open_message(s->queue, e->id)) == -1) {
		sasl_cred_clear(&jp->cred);
		sched_unreadable(e, "message.eml", errno);
		return NULL;
	}
	run->outcome.rcpts = xcalloc(run->npending,
	    sizeof(*run->outcome.rcpts));
	jp->outcome = &run->outcome;
	jp->done_arg = e;
	e->postponed = 0;
	account_note_send(acct, now);
	return acct;
}

/*
 * The connection's relay wants another message (connection reuse): the
 * first entry waiting for this account that is ready to go, its job
 * carrying the same credentials; NULL: none, the connection ends.
 */
static struct relay_job *
sched_next_cb(void *arg)
{
	struct sched_conn	*c = arg;
	struct scheduler	*s = c->sched;
	struct sched_entry	*e;

	for (;;) {
		TAILQ_FOREACH(e, &s->blockedq, ready)
			if (e->blocked_acct == c->acct)
				break;
		if (e == NULL)
			return NULL;
		TAILQ_REMOVE(&s->blockedq, e, ready);
		e->is_blocked = false;
		if (sched_prepare(e, c->acct) == NULL)
			continue;
		e->relay = c->relay;
		e->conn = c;
		c->cur = e;
		return &e->run->job;
	}
}

/* The connection's relay is gone: its slot is free for another. */
static void
sched_closed_cb(void *arg)
{
	struct sched_conn	*c = arg;
	struct scheduler	*s = c->sched;
	struct sched_entry	*e = c->cur;

	c->acct->running--;
	s->running--;
	TAILQ_REMOVE(&s->conns, c, entry);
	free(c);
	if (e != NULL) {
		/*
		 * Handed over but never taken: try it again later (the
		 * credentials are wiped, the message file closed).
		 */
		e->relay = NULL;
		e->conn = NULL;
		sched_postpone(e, "the relay connection ended", "");
	}
	sched_unblock(s);
	sched_pump(s);
}

/* Load the entry and open a relay connection for it. */
static void
sched_start(struct sched_entry *e)
{
	struct scheduler	*s = e->sched;
	struct relay_params	 p;
	struct sched_conn	*c;
	struct account		*acct;

	if ((acct = sched_prepare(e, NULL)) == NULL)
		return;
	c = xcalloc(1, sizeof(*c));
	c->sched = s;
	c->acct = acct;
	c->cur = e;
	p = s->params.relay;
	p.next = sched_next_cb;
	p.closed = sched_closed_cb;
	p.conn_arg = c;
	p.max_msgs = s->params.conn_messages;
	e->relay = relay_start(&p, &e->run->job, sched_relay_done_cb, e);
	sasl_cred_clear(&e->run->job.cred);
	if (e->relay == NULL) {
		/* No connection was made: nothing reached the relay. */
		free(c);
		sched_postpone(e, "cannot start a relay session", "");
		return;
	}
	c->relay = e->relay;
	e->conn = c;
	TAILQ_INSERT_TAIL(&s->conns, c, entry);
	acct->running++;
	s->running++;
}

/*
 * An account-level reply: remember it on the account, and let this entry
 * fail (credentials) or wait with the account (quota, login backoff)
 * without counting an attempt.  False when the reaction is not one.
 */
static bool
sched_account_reply(struct sched_entry *e, struct account *acct,
    enum relay_reaction reaction, const char *reply)
{
	struct scheduler	*s = e->sched;
	time_t			 now = time(NULL);
	unsigned		 delay;

	switch (reaction) {
	case RELAY_REACT_CREDENTIALS:
		acct->refused = true;
		str_copy(acct->refusal, reply, sizeof(acct->refusal));
		log_warnx("%s Gmail refused the credentials: every queued "
		    "message with them fails, no further AUTH until a reload",
		    e->id);
		sched_failed(e, reply);
		sched_refuse_all(s, acct);
		return true;
	case RELAY_REACT_QUOTA:
		acct->quota = true;
		acct->paused_until = now + (time_t)s->params.quota_probe;
		snprintf(acct->why, sizeof(acct->why), "account paused by "
		    "Gmail's daily limit, probed again in %us: %.900s",
		    s->params.quota_probe, reply);
		sched_hold(e, acct, acct->paused_until);
		return true;
	case RELAY_REACT_AUTH_BACKOFF:
		acct->backoffs++;
		delay = scheduler_next_delay(acct->backoffs,
		    s->params.auth_backoff, 16 * s->params.auth_backoff);
		acct->backoff_until = now + delay;
		snprintf(acct->why, sizeof(acct->why), "account logins held "
		    "for %us after: %.900s", delay, reply);
		sched_hold(e, acct, acct->backoff_until);
		return true;
	default:
		return false;
	}
}

/*
 * Apply a finished session to its entry: delivered, an account-level
 * reply, Gmail's idle timeout (sent again at once, not counted), a
 * permanent failure, or a deferral (uncertain when the reply to the
 * final dot never came).
 */
static void
sched_apply(struct sched_entry *e, struct account *acct,
    enum relay_result result, const char *reply)
{
	struct sched_run	*run = e->run;
	enum relay_reaction	 reaction = run->outcome.reaction;

	sched_rcpt_record(run);
	if (result == RELAY_OK && acct != NULL)
		acct->quota = false;
	if (sched_settle(e, reply))
		return;
	if (acct != NULL && sched_account_reply(e, acct, reaction, reply))
		return;
	if (reaction == RELAY_REACT_RESEND && e->resends < SCHED_RESEND_MAX) {
		e->resends++;
		log_info("%s sent again now (not counted): %s", e->id, reply);
		/* Recipients settled before the timeout stay settled. */
		if (queue_update(e->sched->queue, &run->env) == -1)
			log_warn("%s: cannot record the attempt", e->id);
		sched_unlock(e);
		sched_run_end(e);
		sched_arm(e, 0);
		return;
	}
	e->resends = 0;
	if (result == RELAY_OK)
		log_warnx("%s relay reported delivered with recipients left",
		    e->id);
	if (result == RELAY_PERMFAIL) {
		sched_failed(e, reply);
		return;
	}
	if (run->outcome.uncertain && run->env.state != ENVELOPE_UNCERTAIN) {
		run->env.state = ENVELOPE_UNCERTAIN;
		run->env.uncertain_since = time(NULL);
	}
	sched_deferred(e, reply);
}

/* A relay session ended: apply its result, then start the next. */
static void
sched_relay_done_cb(void *arg, enum relay_result result, const char *reply)
{
	struct sched_entry	*e = arg;
	struct scheduler	*s = e->sched;
	struct account		*acct = NULL;

	if (e->conn != NULL) {
		acct = e->conn->acct;
		e->conn->cur = NULL;
	}
	e->relay = NULL;
	e->conn = NULL;
	sasl_cred_clear(&e->run->job.cred);
	if (acct != NULL && e->run->outcome.authed) {
		acct->proven = true;
		acct->backoffs = 0;
		acct->backoff_until = 0;
	}
	/* The connection's slot is given back by sched_closed_cb. */
	if (result != RELAY_OK) {
		switch (sched_deleted(s, e->id)) {
		case 1:
			sched_forget(e);
			return;
		case -1:
			/* Not relayed again: the removal is retried. */
			sched_postpone(e, "cannot remove the entry deleted by "
			    "request", "");
			return;
		default:
			break;
		}
	}
	sched_apply(e, acct, result, reply);
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
	const struct envelope	*env = &e->run->env;
	char			 rcpts[512];

	log_info("%s delivered from=<%s> to=%s relay=%s:%s attempts=%u "
	    "reply=\"%s\"", e->id, env->sender,
	    sched_rcpts(env, rcpts, sizeof(rcpts)), s->params.relay.host,
	    s->params.relay.port, env->attempts + 1, reply);
	snprintf(s->last_result, sizeof(s->last_result), "%s delivered",
	    e->id);
	QUEUE_FAULT("after-remote-250");
	if (queue_delete_requested(s->queue, e->id))
		log_info("%s deleted by request (after delivery)", e->id);
	/* The fault point "after-remove" is in the removal's completion. */
	if (queue_remove_async(s->queue, s->params.relay.base, e->id) == -1) {
		if (queue_remove(s->queue, e->id) == -1)
			log_warn("%s: delivered but cannot remove the queue "
			    "entry (it may be sent again)", e->id);
		QUEUE_FAULT("after-remove");
	}
	sched_forget(e);
}

/* Give up: keep the entry in failed/ with the reason. */
static void
sched_failed(struct sched_entry *e, const char *reason)
{
	struct scheduler	*s = e->sched;
	struct envelope		*env = &e->run->env;
	char			 rcpts[512];

	env->state = ENVELOPE_FAILED;
	str_copy(env->last_reply, reason, sizeof(env->last_reply));
	log_info("%s failed from=<%s> to=%s reply=\"%s\"", e->id,
	    env->sender, sched_rcpts(env, rcpts, sizeof(rcpts)), reason);
	snprintf(s->last_result, sizeof(s->last_result), "%s failed", e->id);
	if (queue_fail(s->queue, env) == -1) {
		/* It stays in queue/; try again later rather than lose it. */
		log_warn("%s: cannot move to failed/", e->id);
		sched_unlock(e);
		sched_run_end(e);
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
	struct envelope		*env = &e->run->env;
	time_t			 now = time(NULL);
	unsigned		 delay;

	env->attempts++;
	str_copy(env->last_reply, reason, sizeof(env->last_reply));
	if (now - env->submitted >= (time_t)s->params.max_age) {
		char	 why[ENVELOPE_REPLY_MAX];

		snprintf(why, sizeof(why), "gave up after %u attempts over "
		    "%lds; last reply: %.900s", env->attempts,
		    (long)(now - env->submitted), reason);
		sched_failed(e, why);
		return;
	}
	delay = scheduler_next_delay(env->attempts, s->params.retry_min,
	    s->params.retry_max);
	env->next_attempt = now + delay;
	/* Recorded first, so whoever reads the log line finds it on disk. */
	if (queue_update(s->queue, env) == -1)
		log_warn("%s: cannot record the attempt (still queued)",
		    e->id);
	log_info("%s deferred from=<%s> attempts=%u next=%us reply=\"%s\"",
	    e->id, env->sender, env->attempts, delay, reason);
	snprintf(s->last_result, sizeof(s->last_result), "%s deferred",
	    e->id);
	sched_unlock(e);
	sched_arm(e, env->next_attempt);
	sched_run_end(e);
}

/* New parameters (SIGHUP): timers already armed keep their time. */
void
scheduler_set_params(struct scheduler *s, const struct scheduler_params *p)
{
	sched_params_set(s, p);
	account_table_reset(s->accounts);
	sched_pump(s);
}
