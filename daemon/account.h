/*
 * account.h: what relayqd has learnt about each Gmail account it sends
 * for, from Gmail's replies: credentials refused, a daily-quota pause, a
 * login backoff, whether a login ever worked, how many sessions run.
 *
 * An account is identified by its user name and password without keeping
 * either: the key is HMAC-SHA256 of "user\0password" under a random key
 * drawn when the table is made, held in memory only, so two entries match
 * exactly when they carry the same credentials, and nothing stored or
 * logged can be used to test a guess of the password.
 */
#ifndef RELAYQ_ACCOUNT_H
#define RELAYQ_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "envelope.h"
#include "sasl.h"

#define ACCOUNT_KEY_LEN		32

struct account {
	unsigned char	 key[ACCOUNT_KEY_LEN];
	unsigned	 running;	/* relay sessions in flight */
	bool		 proven;	/* a login got 235 */
	/* 535 5.7.8, 534 5.7.9, 534 5.7.14, 530 5.7.0: never AUTH again. */
	bool		 refused;
	char		 refusal[ENVELOPE_REPLY_MAX];
	/* 550 5.4.5: no session before paused_until. */
	bool		 quota;
	time_t		 paused_until;
	/* 454 4.7.0 to AUTH: no login before backoff_until. */
	unsigned	 backoffs;	/* in a row */
	time_t		 backoff_until;
	char		 why[ENVELOPE_REPLY_MAX];	/* of the wait */
	/* When sessions started in the last 24 hours, oldest first. */
	time_t		*sends;
	size_t		 nsends;
	size_t		 sends_cap;
	struct account	*next;
};

struct account_table;

/* A table with a fresh random key; NULL if no randomness was available. */
struct account_table *account_table_new(void);
/* Free it; NULL is a no-op.  The key is wiped. */
void		 account_table_free(struct account_table *);
/* The account for cred, created as needed. */
struct account	*account_get(struct account_table *, const struct sasl_cred *);
/* True when cred is the account's. */
bool		 account_match(const struct account_table *,
		    const struct account *, const struct sasl_cred *);
/*
 * When the account may next start a session (0: now): the later of a
 * quota pause and a login backoff.
 */
time_t		 account_wait_until(const struct account *, time_t now);
/* A relay session for the account starts now: count it for pacing. */
void		 account_note_send(struct account *, time_t now);
/*
 * Pacing: when the account may start another session without exceeding
 * daily_cap sessions in 24 hours or per_minute in 60 seconds (0: no such
 * limit); 0 when it may now.  Otherwise why says which limit, for the
 * queue listing.
 */
time_t		 account_pace_until(struct account *, time_t now,
		    unsigned daily_cap, unsigned per_minute, char *why,
		    size_t whylen);
/* Forget refusals and waits (a reload may mean new passwords upstream). */
void		 account_table_reset(struct account_table *);

#endif /* RELAYQ_ACCOUNT_H */
