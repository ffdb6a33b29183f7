/*
 * scheduler.h: when each queued message is tried.  One timer per entry,
 * exponential backoff, the max-age give-up, the max-parallel limit, and
 * "retry everything now" for ETRN and SIGUSR1.  It owns the relay
 * sessions and applies their results through the queue.
 */
#ifndef RELAYQ_SCHEDULER_H
#define RELAYQ_SCHEDULER_H

#include <stddef.h>
#include <time.h>

#include "relay.h"

struct account_conf;
struct queue;
struct scheduler;

struct scheduler_params {
	struct relay_params	 relay;		/* copied; strings must outlive */
	unsigned		 retry_min;	/* seconds */
	unsigned		 retry_max;
	unsigned		 max_age;
	unsigned		 max_parallel;
	/*
	 * Account-level reactions (0: the default in parentheses).  After
	 * 550 5.4.5 the account is paused and probed again after
	 * quota_probe (3600 s); paused time does not count against max_age
	 * up to quota_max_pause (86400 s).  454 4.7.0 to AUTH holds every
	 * login of the account for auth_backoff (300 s), doubling while it
	 * lasts.  At most account_sessions (2) sessions per account at once,
	 * and one until a login has worked.
	 */
	unsigned		 quota_probe;
	unsigned		 quota_max_pause;
	unsigned		 auth_backoff;
	unsigned		 account_sessions;
	/*
	 * Pacing per account (0: no limit): at most daily_cap sessions in
	 * any 24 hours and per_minute in any 60 seconds; an entry over a
	 * limit waits, the reason in its envelope's last-reply.
	 */
	unsigned		 daily_cap;
	unsigned		 per_minute;
	/*
	 * Messages one authenticated connection carries, one after the
	 * other, all with the same credentials (0: 100).
	 */
	unsigned		 conn_messages;
	const struct account_conf *account;	/* for no-AUTH entries; may be NULL */
};

struct scheduler *scheduler_new(struct queue *, const struct scheduler_params *);
/* Cancel running relays (their entries stay queued) and free. */
void		 scheduler_free(struct scheduler *);
/* Track queue/<id> (new submission or found by a scan); idempotent. */
void		 scheduler_add(struct scheduler *, const char *id);
/* Pick up every entry in queue/ not yet tracked.  0 or -1. */
int		 scheduler_scan(struct scheduler *);
/*
 * Retry every waiting entry now (ETRN, SIGUSR1), at most once per
 * retry_min: a flush sooner than that after the last one that took effect
 * is ignored (logged "flush ignored").
 */
void		 scheduler_flush(struct scheduler *);
size_t		 scheduler_count(const struct scheduler *);
/* The last outcome, for systemd's STATUS=; "" before the first. */
const char	*scheduler_last_result(const struct scheduler *);
/*
 * Delay before the next try after attempts failures: retry_min doubled
 * per further failure, capped at retry_max.
 */
unsigned	 scheduler_next_delay(unsigned attempts, unsigned min,
		    unsigned max);
/*
 * Replace the parameters (config reload).  Running relays keep theirs;
 * armed timers keep their time; a higher max_parallel starts more now.
 * What Gmail said about accounts (refused credentials, pauses, backoffs)
 * is forgotten.
 */
void		 scheduler_set_params(struct scheduler *,
		    const struct scheduler_params *);

#endif /* RELAYQ_SCHEDULER_H */
