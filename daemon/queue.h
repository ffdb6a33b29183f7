/*
 * queue.h: the durable message store, and the only code that calls
 * fsync/rename on queue paths.
 *
 *	<dir>/tmp/<ID>/		being received; purged at start
 *	<dir>/queue/<ID>/	accepted: message.eml, envelope, credentials
 *	<dir>/failed/<ID>/	given up; kept for a person
 *
 * Commit: fsync message.eml, envelope, credentials (0600), fsync tmp/<ID>,
 * rename tmp/<ID> -> queue/<ID>, fsync queue/ and tmp/ (one fsync of each
 * may cover the renames of several concurrent async commits: group
 * commit, see queue.c).  Envelope updates
 * write envelope.tmp, fsync, rename over envelope, fsync the entry.
 * Removal renames queue/<ID> to queue/.<ID> (skipped by scans, removed
 * at start), unlinks the files and the entry, then fsyncs queue/.  Failing
 * unlinks credentials and fsyncs the entry before the move to failed/.
 */
#ifndef RELAYQ_QUEUE_H
#define RELAYQ_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "envelope.h"
#include "sasl.h"

struct event_base;
struct queue;
struct queue_tx;

enum queue_where {
	QUEUE_DIR_QUEUE,
	QUEUE_DIR_FAILED
};

/*
 * Open (creating with mode 0700 as needed) dir and its tmp/ queue/ failed/,
 * and remove anything left in tmp/ and any queue/.<ID> (a removal cut
 * short).  NULL with a message in err.
 */
struct queue	*queue_open(const char *dir, char *err, size_t errlen);
/*
 * queue_async_stop(), then close.  When async commits were started, call
 * it (or queue_async_stop) before their event_base is freed.
 */
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
/*
 * The same commit with its blocking part (the writes, fsyncs and rename)
 * on a pool of worker threads, started on first use, so that concurrent
 * commits overlap and share the fsyncs of queue/ and tmp/.  env and cred
 * are only read during the call (env->id is set to the tx's ID).  0: the
 * tx now belongs to the queue, and done(arg, id, errnum) runs later on
 * base's loop thread (never within this call), after the entry is durable
 * in queue/ (errnum 0) or, on failure, nothing is left behind (errnum as
 * errno of queue_tx_commit).  -1 with errno: the tx is freed, nothing is
 * left behind and done is never called.
 */
int		 queue_tx_commit_async(struct queue_tx *, struct event_base *,
		    struct envelope *env, const struct sasl_cred *cred,
		    void (*done)(void *arg, const char *id, int errnum),
		    void *arg);
/*
 * Where a committed entry goes when its submitter vanished before its
 * done ran: queue_adopt(q, id) calls fn(arg, id) (the daemon schedules
 * it); with fn NULL the entry just stays queued for the next scan.
 */
void		 queue_set_adopt(struct queue *,
		    void (*fn)(void *arg, const char *id), void *arg);
void		 queue_adopt(struct queue *, const char *id);
/*
 * queue_remove() done by the workers (the event loop does not wait for
 * its fsyncs); a failure is logged.  Scans skip the entry meanwhile.
 * -1 with errno when it cannot be handed over (nothing done).
 */
int		 queue_remove_async(struct queue *, struct event_base *,
		    const char *id);
/* Async commits whose done has not run yet, and async removals. */
size_t		 queue_async_pending(const struct queue *);
/*
 * Wait for every async commit handed over so far, run the remaining done
 * callbacks here, stop the workers and release the loop event (the next
 * async commit starts them again).  A no-op when none was started.
 */
void		 queue_async_stop(struct queue *);
/* Drop a tx and its tmp/<ID>; NULL is a no-op. */
void		 queue_tx_abort(struct queue_tx *);

/* Call cb for each entry ID in queue/, in ID (arrival) order.  0 or -1. */
int		 queue_scan(struct queue *, void (*cb)(const char *id, void *arg),
		    void *arg);
/*
 * Load queue/<id>/envelope.  -1 with "path:line: key: message" in err and
 * errno EINVAL for bad text, or the errno of a failed open or read.
 */
int		 queue_load(struct queue *, const char *id, struct envelope *,
		    char *err, size_t errlen);
/* Load queue/<id>/credentials.  0 or -1 with errno. */
int		 queue_load_cred(struct queue *, const char *id,
		    struct sasl_cred *);
/* Open queue/<id>/message.eml read-only (O_CLOEXEC).  fd or -1/errno. */
int		 queue_open_message(struct queue *, const char *id);
/* Atomically replace queue/<id>/envelope with env.  0 or -1/errno. */
int		 queue_update(struct queue *, const struct envelope *env);
/*
 * Delivered: rename queue/<id> to queue/.<id>, delete that, then fsync
 * queue/.  0 or -1/errno.
 */
int		 queue_remove(struct queue *, const char *id);
/*
 * Give up: write env (state failed, last-reply set by the caller) and
 * rename queue/<id> to failed/<id>, fsyncing both parents.  0 or -1/errno.
 */
int		 queue_fail(struct queue *, const struct envelope *env);
/*
 * Move an unreadable entry (or stray file) queue/<name> to failed/<name>,
 * writing the reason into failed/<name>/REASON and removing its
 * credentials when it is a directory.
 */
int		 queue_quarantine(struct queue *, const char *name,
		    const char *reason);
/*
 * Before an entry is scheduled: queue/<id> must be a directory holding
 * regular files envelope, message.eml and credentials; a stale
 * envelope.tmp (a crash mid-update) is removed.  -1 with the reason in
 * err (errno ENOENT when queue/<id> itself is gone, EINVAL when a file is
 * missing or not regular, otherwise that of the failed call).
 */
int		 queue_check(struct queue *, const char *id, char *err,
		    size_t errlen);
/*
 * True when errnum, from queue_check, queue_load, queue_load_cred,
 * queue_open_message or queue_lock, means the entry itself is bad
 * (EINVAL: bad or missing content; ENOENT, ENOTDIR, ELOOP, EISDIR): it
 * is moved aside.  Anything else (EMFILE, ENFILE, ENOMEM, EIO, EACCES...)
 * is a local condition that may pass: the entry is tried again later.
 */
bool		 queue_content_error(int errnum);
/* True when queue/<id> exists (as anything). */
bool		 queue_exists(struct queue *, const char *id);

/*
 * An entry being relayed: flock(LOCK_EX|LOCK_NB) on queue/<id> opened
 * O_RDONLY|O_DIRECTORY.  The fd, or -1 with errno (EWOULDBLOCK: someone
 * else, such as relayq --delete, holds it).
 */
int		 queue_lock(struct queue *, const char *id);
/* Release a queue_lock fd; -1 is a no-op. */
void		 queue_unlock(int fd);
/* True when queue/<id>/DELETE exists: relayq --delete asked for removal. */
bool		 queue_delete_requested(struct queue *, const char *id);

/*
 * Test builds (-DRELAYQ_FAULTS) only: QUEUE_FAULT("name") kills the daemon
 * with SIGKILL when $RELAYQ_FAULT is "name".  Production builds contain
 * no trace of it.
 */
#ifdef RELAYQ_FAULTS
void		 queue_fault(const char *point);
#define QUEUE_FAULT(point)	queue_fault(point)
#else
#define QUEUE_FAULT(point)	do { } while (0)
#endif

#endif /* RELAYQ_QUEUE_H */
