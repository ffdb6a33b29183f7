/*
 * envelope.h: the queue entry's envelope and state, as a text file a
 * person can read with cat.  Format (one "key: value" per line, UTF-8,
 * LF line endings, keys in this order, rcpt repeated):
 *
 *	version: 1
 *	id: 20261126T152134.000123-4f9a2c
 *	sender: alice@example.com          (empty for the null sender)
 *	rcpt: bob@example.com
 *	submitted: 1795705294              (Unix seconds)
 *	uid: 1000                          (submitting uid, SO_PEERCRED)
 *	attempts: 0
 *	next-attempt: 1795705294           (Unix seconds)
 *	state: queued                      (queued, failed, uncertain)
 *	last-reply: 421 4.7.0 Try again later   (may be empty)
 *	uncertain-since: 1795705300        (only with state uncertain)
 *	account: ops@gmail.com             (optional, see below)
 *	rcpt-reply: bob@example.com 250 2.0.0 OK ...   (repeated, optional)
 *
 * "uncertain": the whole message and its final dot went out and the
 * connection was lost before Gmail's reply, so Gmail may have it; it is
 * retried with the same bytes (same Message-ID, which Gmail uses to drop
 * duplicates).  uncertain-since is when that first happened.
 *
 * "account" is written only for an entry submitted without AUTH: it is
 * relayed as relayqd's configured account (relayqd.conf(5) account and
 * password-file), which must still be that address when it is relayed.
 * Such an entry's credentials file holds the address and no password.
 *
 * rcpt-reply records, for a recipient whose fate is settled, the reply
 * that settled it: the 250 to the final dot of the transaction that
 * delivered to it, or the 5xx Gmail gave its RCPT.  Recipients without
 * one are still to be sent; the rest are never sent again.
 *
 * The loader is strict: unknown keys, duplicates, missing keys or bad
 * values fail with "file:line: key: message".  No secret is ever stored
 * here; credentials live in a separate 0600 file.
 */
#ifndef RELAYQ_ENVELOPE_H
#define RELAYQ_ENVELOPE_H

#include <sys/types.h>

#include <stdio.h>
#include <time.h>

#include "mailaddr.h"

#define ENVELOPE_VERSION	1
#define ENVELOPE_ID_MAX		64
#define ENVELOPE_REPLY_MAX	1024
#define ENVELOPE_RCPT_MAX	1000	/* hard cap the loader accepts */

enum envelope_state {
	ENVELOPE_QUEUED,
	ENVELOPE_FAILED,
	ENVELOPE_UNCERTAIN
};

struct envelope {
	char			 id[ENVELOPE_ID_MAX];
	char			 sender[MAILADDR_MAX];
	char			**rcpt;		/* nrcpt malloc'd strings */
	size_t			 nrcpt;
	time_t			 submitted;
	uid_t			 uid;
	unsigned		 attempts;
	time_t			 next_attempt;
	enum envelope_state	 state;
	char			 last_reply[ENVELOPE_REPLY_MAX];
	time_t			 uncertain_since; /* state uncertain: when */
	char			 account[MAILADDR_MAX];	/* "": own credentials */
	/* nrcpt entries (or NULL): the settling reply, NULL while pending. */
	char			**rcpt_reply;
};

void	envelope_init(struct envelope *);
/* Free the recipient list; the struct can be reused after init. */
void	envelope_fini(struct envelope *);
/* Append a copy of rcpt. */
void	envelope_add_rcpt(struct envelope *, const char *rcpt);
/* Record (a copy of) the reply that settled recipient i. */
void	envelope_set_rcpt_reply(struct envelope *, size_t i, const char *);
/* The reply that settled recipient i, or NULL while it is pending. */
const char *envelope_rcpt_reply(const struct envelope *, size_t i);
/* Write the text form to fp; 0 or -1 (errno from stdio). */
int	envelope_dump(const struct envelope *, FILE *fp);
/*
 * Parse the text form from fp.  name is used in error messages.  On error
 * returns -1 and writes "name:line: key: message" into err.
 */
int	envelope_load(struct envelope *, FILE *fp, const char *name,
	    char *err, size_t errlen);
const char *envelope_state_name(enum envelope_state);

#endif /* RELAYQ_ENVELOPE_H */
