/*
 * queue.h: the durable message store, and the only code that calls
 * fsync/rename on queue paths.
 *
 *	<dir>/tmp/<ID>/		being received; purged at start
 *	<dir>/queue/<ID>/	accepted: message.eml, envelope, credentials
 *	<dir>/failed/<ID>/	given up; kept for a person
 *
 * Commit: fsync message.eml, envelope, credentials (0600), fsync tmp/<ID>,
 * rename tmp/<ID> -> queue/<ID>, fsync tmp/ and queue/.  Envelope updates
 * write envelope.tmp, fsync, rename over envelope, fsync the entry.
 */
#ifndef RELAYQ_QUEUE_H
#define RELAYQ_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "envelope.h"
#include "sasl.h"

struct queue;
struct queue_tx;

enum queue_where {
	QUEUE_DIR_QUEUE,
	QUEUE_DIR_FAILED
};

/*
 * Open (creating with mode 0700 as needed) dir and its tmp/ queue/ failed/,
 * and remove anything left in tmp/.  NULL with a message in err.
 */
struct queue	*queue_open(const char *dir, char *err, size_t errlen);
void		 queue_close(struct queue *);
const char	*queue_dir(const struct queue *);

/* Start receiving a message into tmp/<new ID>.  NULL with errno. */
struct queue_tx	*queue_tx_begin(struct queue *);
const char	*queue_tx_id(const struct queue_tx *);
/* Append message bytes (CRLF lines, already unstuffed).  0 or -1/errno. */
int		 queue_tx_write(struct queue_tx *, const void *, size_t);
/*
 * Make the entry durable in queue/ (see above).  env->id is overwritten
 * with the tx's ID.  The tx is freed in every case.  0, or -1 with errno
 * (ENOSPC/EDQUOT mean "temporarily out of space"); on failure nothing is
 * left behind.
 */
int		 queue_tx_commit(struct queue_tx *, struct envelope *env,
		    const struct sasl_cred *cred);
/* Drop a tx and its tmp/<ID>; NULL is a no-op. */
void		 queue_tx_abort(struct queue_tx *);

/* Call cb for each entry ID in queue/, in ID (arrival) order.  0 or -1. */
int		 queue_scan(struct queue *, void (*cb)(const char *id, void *arg),
		    void *arg);
/* Load queue/<id>/envelope.  -1 with "path:line: key: message" in err. */
int		 queue_load(struct queue *, const char *id, struct envelope *,
		    char *err, size_t errlen);
/* Load queue/<id>/credentials.  0 or -1 with errno. */
int		 queue_load_cred(struct queue *, const char *id,
		    struct sasl_cred *);
/* Open queue/<id>/message.eml read-only (O_CLOEXEC).  fd or -1/errno. */
int		 queue_open_message(struct queue *, const char *id);
/* Atomically replace queue/<id>/envelope with env.  0 or -1/errno. */
int		 queue_update(struct queue *, const struct envelope *env);
/* Delivered: remove queue/<id> and fsync queue/.  0 or -1/errno. */
int		 queue_remove(struct queue *, const char *id);
/*
 * Give up: write env (state failed, last-reply set by the caller) and
 * rename queue/<id> to failed/<id>, fsyncing both parents.  0 or -1/errno.
 */
int		 queue_fail(struct queue *, const struct envelope *env);
/*
 * Move an unreadable entry (or stray file) queue/<name> to failed/<name>
 * and write the reason into failed/<name>/REASON when it is a directory.
 */
int		 queue_quarantine(struct queue *, const char *name,
		    const char *reason);

#endif /* RELAYQ_QUEUE_H */
