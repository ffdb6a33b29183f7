/*
 * queue.c: the durable message store.  This is the only file that calls
 * fsync or rename on queue paths.
 *
 * Every path operation is relative to a directory fd held open for the
 * life of the queue (tmp/, queue/, failed/), so an entry is always
 * addressed as <subdir fd> + <ID> and a name can never climb out.  A
 * message is received into tmp/<ID>/, each file is fsynced, then the
 * entry directory, then one rename moves it to queue/<ID> and both parents
 * are fsynced.  Every failure path removes what it made and keeps errno,
 * because the server turns ENOSPC into "452 4.3.1".
 *
 * Group commit: queue_tx_commit_async() hands the blocking part to a
 * small pool of worker threads, so the fsyncs of concurrent submissions
 * overlap instead of queueing behind each other in the event loop.  A
 * worker writes and fsyncs the entry's files and directory and renames
 * it into queue/; the renamed entries then wait for one fsync of queue/
 * and tmp/ that started after their rename, and one worker does that
 * fsync for all of them at once (the first to find none running leads;
 * entries renamed meanwhile wait for the next round).  Finished commits
 * go on a completion list that the loop drains through an eventfd, so
 * libevent and every callback stay on the loop's thread.  The workers
 * touch only the tx, the buffers prepared for them on the loop thread
 * and the queue's directory fds; everything else is under q->lock.
 *
 * Prepared entries: creating tmp/<ID>/ and its message.eml costs two
 * inode allocations, which on a busy ext4 are CPU work in the kernel
 * (about a tenth of the daemon's CPU in `make bench`).  Once the workers
 * run, they keep up to QUEUE_PREPARED such empty entries ready when they
 * have nothing else to do, and queue_tx_begin() takes one and only
 * renames it to a fresh ID, so the loop no longer creates them at DATA.
 * They live in tmp/ as .prep-<ID>, which every start empties.
 */
#include <sys/types.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "envelope.h"
#include "log.h"
#include "queue.h"
#include "sasl.h"
#include "util.h"

#define QUEUE_WBUF_SIZE		(64 * 1024)	/* message.eml write buffer */
#define QUEUE_CRED_MAX		4096		/* marker, base64 of a PLAIN blob, LF */
/* Marks an OAuth2 token; without it the credentials are a password. */
#define QUEUE_CRED_XOAUTH2	"XOAUTH2 "
#define QUEUE_PURGE_DEPTH	4		/* tmp/<ID>/ holds plain files */
#define QUEUE_ID_TRIES		8
/*
 * Commit workers: enough for the fsyncs of 16 concurrent submitters to
 * overlap.  They block in the disk, not on the CPU; a small stack each.
 */
#define QUEUE_WORKERS		16
#define QUEUE_WORKER_STACK	(256 * 1024)
#define QUEUE_PREPARED		8	/* empty entries kept ready */
#define QUEUE_PREP_PREFIX	".prep-"	/* their names in tmp/ */

#define QUEUE_MESSAGE		"message.eml"
#define QUEUE_ENVELOPE		"envelope"
#define QUEUE_ENVELOPE_TMP	"envelope.tmp"
#define QUEUE_CREDENTIALS	"credentials"
#define QUEUE_REASON		"REASON"
#define QUEUE_DELETE		"DELETE"

enum queue_subdir {
	QUEUE_SUB_TMP,
	QUEUE_SUB_QUEUE,
	QUEUE_SUB_FAILED,
	QUEUE_SUB_COUNT
};

static const char *const queue_subdirs[QUEUE_SUB_COUNT] = {
	[QUEUE_SUB_TMP] = "tmp",
	[QUEUE_SUB_QUEUE] = "queue",
	[QUEUE_SUB_FAILED] = "failed"
};

/* One commit handed to the workers (queue_tx_commit_async). */
struct queue_commit {
	STAILQ_ENTRY(queue_commit)	 link;		/* under q->lock */
	TAILQ_ENTRY(queue_commit)	 pend;		/* loop thread only */
	struct queue_tx			*tx;
	char				*env;		/* envelope text */
	size_t				 envlen;
	char				 cred[QUEUE_CRED_MAX];
	size_t				 credlen;
	char				 id[ENVELOPE_ID_MAX];
	int				 errnum;	/* 0: durable */
	bool				 remove;	/* queue_remove_async */
	void				(*done)(void *, const char *, int);
	void				*arg;
};

STAILQ_HEAD(queue_commits, queue_commit);
TAILQ_HEAD(queue_pending, queue_commit);

struct queue {
	char			*dir;
	int			 fd[QUEUE_SUB_COUNT];

	/* Group commit; started by the first queue_tx_commit_async. */
	bool			 async;		/* workers and event exist */
	struct event		*ev_done;	/* efd readable: completions */
	int			 efd;
	struct queue_pending	 pending;	/* loop thread only */
	size_t			 npending;	/* loop thread only */
	void			(*adopt)(void *, const char *);
	void			*adopt_arg;
	int			 syncfd[2];	/* the leader's queue/, tmp/ */
	size_t			 nworkers;
	pthread_t		 workers[QUEUE_WORKERS];
	pthread_mutex_t		 lock;		/* guards what follows */
	pthread_cond_t		 wake;		/* work, or stopping */
	struct queue_commits	 jobs;		/* waiting for a worker */
	struct queue_commits	 renamed;	/* waiting for the parents */
	struct queue_commits	 done;		/* waiting for the loop */
	STAILQ_HEAD(, queue_tx)	 prepared;	/* empty entries, ready */
	size_t			 nprepared;
	size_t			 npreparing;	/* being made by workers */
	bool			 prep_failed;	/* pause until the next take */
	bool			 prep_off;	/* no RENAME_NOREPLACE here */
	bool			 syncing;	/* a worker fsyncs the parents */
	bool			 stopping;
};

struct queue_tx {
	STAILQ_ENTRY(queue_tx) link;	/* in q->prepared */
	struct queue	*q;
	char		 id[ENVELOPE_ID_MAX];
	int		 entryfd;	/* tmp/<ID> */
	int		 msgfd;		/* tmp/<ID>/message.eml */
	int		 error;		/* sticky errno of a failed write */
	size_t		 buflen;
	char		*buf;		/* QUEUE_WBUF_SIZE bytes */
};

static int	queue_subdir_open(struct queue *, int, enum queue_subdir,
		    char *, size_t);
static int	queue_purge(int, const char *, int);
static void	queue_purge_removed(struct queue *);
static bool	queue_committing(const struct queue *, const char *);
static void	queue_enqueue(struct queue *, struct queue_commit *);
static void	queue_commit_undo(struct queue *, struct queue_commit *, int);
static int	queue_new_id(char *, size_t);
static int	queue_write_file(int, const char *, const void *, size_t, int);
static int	queue_flush(struct queue_tx *);
static void	queue_tx_unlink(struct queue_tx *);
static int	queue_empty_dir(int, const char *);
static int	queue_dump_envelope(const struct envelope *, char **, size_t *);
static int	queue_commit_files(struct queue_tx *, const char *, size_t,
		    const char *, size_t);
static int	queue_encode_cred(const struct sasl_cred *, char *, size_t,
		    size_t *);
static int	queue_commit_rename(struct queue_tx *, const char *, size_t,
		    const char *, size_t);
static int	queue_sync_parents(struct queue *, int, int);
static void	*queue_worker(void *);
static void	queue_done_cb(evutil_socket_t, short, void *);

/* True when name is a usable entry name: one path component, no dot file. */
static bool
queue_name_ok(const char *name)
{
	size_t	 len;

	len = strlen(name);
	return len > 0 && len < ENVELOPE_ID_MAX && name[0] != '.' &&
	    strchr(name, '/') == NULL;
}

/* Close fd keeping errno, for cleanup paths. */
static void
queue_close_fd(int fd)
{
	int	 saved_errno = errno;

	if (fd != -1)
		close(fd);
	errno = saved_errno;
}

/* Refuse a directory that someone else could write into. */
static int
queue_check_dir(int fd, const char *path, char *err, size_t errlen)
{
	struct stat	 st;

	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", path);
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		snprintf(err, errlen, "%s: group or other writable (mode %04o);"
		    " refusing to use it", path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* Create (0700) if missing and open one directory relative to at. */
static int
queue_mkopen(int at, const char *name, const char *path, char *err,
    size_t errlen)
{
	int	 fd;

	if (mkdirat(at, name, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: mkdir: %s", path, strerror(errno));
		return -1;
	}
	/* The top directory may be a symlink an administrator made. */
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
	    (at == AT_FDCWD ? 0 : O_NOFOLLOW));
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (queue_check_dir(fd, path, err, errlen) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Open one of tmp/ queue/ failed/ under the queue's top directory fd. */
static int
queue_subdir_open(struct queue *q, int topfd, enum queue_subdir sub,
    char *err, size_t errlen)
{
	char	*path;
	int	 fd;

	xasprintf(&path, "%s/%s", q->dir, queue_subdirs[sub]);
	fd = queue_mkopen(topfd, queue_subdirs[sub], path, err, errlen);
	free(path);
	if (fd == -1)
		return -1;
	q->fd[sub] = fd;
	return 0;
}

/* Open the queue, creating it as needed, and empty tmp/. */
struct queue *
queue_open(const char *dir, char *err, size_t errlen)
{
	struct queue	*q;
	int		 topfd, i;

	q = xcalloc(1, sizeof(*q));
	q->dir = xstrdup(dir);
	q->efd = -1;
	q->syncfd[0] = q->syncfd[1] = -1;
	TAILQ_INIT(&q->pending);
	for (i = 0; i < QUEUE_SUB_COUNT; i++)
		q->fd[i] = -1;
	if ((errno = pthread_mutex_init(&q->lock, NULL)) != 0 ||
	    (errno = pthread_cond_init(&q->wake, NULL)) != 0)
		fatal("queue_open: pthread");
	STAILQ_INIT(&q->jobs);
	STAILQ_INIT(&q->renamed);
	STAILQ_INIT(&q->done);
	STAILQ_INIT(&q->prepared);
	if ((topfd = queue_mkopen(AT_FDCWD, dir, dir, err, errlen)) == -1)
		goto fail;
	for (i = 0; i < QUEUE_SUB_COUNT; i++) {
		if (queue_subdir_open(q, topfd, (enum queue_subdir)i, err,
		    errlen) == -1)
			goto fail;
	}
	queue_purge_removed(q);
	if (queue_purge(q->fd[QUEUE_SUB_TMP], "tmp", QUEUE_PURGE_DEPTH) == -1 ||
	    fsync(q->fd[QUEUE_SUB_TMP]) == -1) {
		snprintf(err, errlen, "%s/tmp: cannot empty it: %s", dir,
		    strerror(errno));
		goto fail;
	}
	close(topfd);
	return q;

fail:
	queue_close_fd(topfd);
	queue_close(q);
	return NULL;
}

/*
 * Finish the commits in flight, stop the workers, close the directory fds
 * and free the handle; NULL is a no-op.
 */
void
queue_close(struct queue *q)
{
	int	 i;

	if (q == NULL)
		return;
	queue_async_stop(q);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->lock);
	for (i = 0; i < QUEUE_SUB_COUNT; i++)
		queue_close_fd(q->fd[i]);
	free(q->dir);
	free(q);
}

/* The queue's top directory, as given to queue_open. */
const char *
queue_dir(const struct queue *q)
{
	return q->dir;
}

/*
 * Remove everything inside the directory fd (not the directory itself),
 * descending at most depth levels.  name is only for the log.
 */
static int
queue_purge(int fd, const char *name, int depth)
{
	DIR		*d;
	struct dirent	*de;
	int		 dfd, sub, rc = 0, saved_errno = 0;

	if ((dfd = dup(fd)) == -1)
		return -1;
	if ((d = fdopendir(dfd)) == NULL) {
		queue_close_fd(dfd);
		return -1;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			continue;
		if ((errno != EISDIR && errno != EPERM) || depth == 0) {
			rc = -1;
			saved_errno = errno;
			continue;
		}
		sub = openat(fd, de->d_name,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (sub == -1 || queue_purge(sub, de->d_name, depth - 1) == -1 ||
		    unlinkat(fd, de->d_name, AT_REMOVEDIR) == -1) {
			rc = -1;
			saved_errno = errno;
		} else
			log_debug("queue: purged %s/%s", name, de->d_name);
		queue_close_fd(sub);
	}
	closedir(d);
	if (rc == -1)
		errno = saved_errno;
	return rc;
}

/* A sortable unique name: UTC time, microseconds and 32 random bits. */
static int
queue_new_id(char *id, size_t idlen)
{
	struct timespec	 ts;
	struct tm	 tm;
	uint32_t	 r;
	char		 stamp[32];
	ssize_t		 n;

	do
		n = getrandom(&r, sizeof(r), 0);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)sizeof(r)) {
		if (n != -1)
			errno = EIO;
		return -1;
	}
	if (clock_gettime(CLOCK_REALTIME, &ts) == -1 ||
	    gmtime_r(&ts.tv_sec, &tm) == NULL)
		return -1;
	if (strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm) == 0) {
		errno = EOVERFLOW;
		return -1;
	}
	if (snprintf(id, idlen, "%s.%06ld-%08x", stamp, ts.tv_nsec / 1000,
	    (unsigned)r) >= (int)idlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/*
 * Create name in dirfd (which must not exist), write buf, fsync, close.
 * On failure the file is removed and errno kept.
 */
static int
queue_write_file(int dirfd, const char *name, const void *buf, size_t len,
    int flags)
{
	int	 fd, saved_errno;

	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
	    flags, 0600);
	if (fd == -1)
		return -1;
	if (write_all(fd, buf, len) == -1 || fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	return 0;

fail:
	saved_errno = errno;
	if (fd != -1)
		close(fd);
	unlinkat(dirfd, name, 0);
	errno = saved_errno;
	return -1;
}

/*
 * A new empty entry, tmp/<prefix><ID>/ and its message.eml, with no
 * buffer; tx->id is that name.
 */
static struct queue_tx *
queue_tx_new(struct queue *q, const char *prefix)
{
	struct queue_tx	*tx;
	int		 tmpfd = q->fd[QUEUE_SUB_TMP], i, saved_errno;
	size_t		 plen = strlen(prefix);

	/* Also called on the workers: no fatal() on ENOMEM there. */
	if ((tx = calloc(1, sizeof(*tx))) == NULL)
		return NULL;
	tx->q = q;
	tx->entryfd = tx->msgfd = -1;
	memcpy(tx->id, prefix, plen);
	for (i = 0; i < QUEUE_ID_TRIES; i++) {
		if (queue_new_id(tx->id + plen, sizeof(tx->id) - plen) == -1)
			goto fail;
		if (mkdirat(tmpfd, tx->id, 0700) == 0)
			break;
		if (errno != EEXIST)
			goto fail;
	}
	if (i == QUEUE_ID_TRIES)
		goto fail;
	tx->entryfd = openat(tmpfd, tx->id,
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (tx->entryfd == -1) {
		saved_errno = errno;
		unlinkat(tmpfd, tx->id, AT_REMOVEDIR);
		errno = saved_errno;
		goto fail;
	}
	tx->msgfd = openat(tx->entryfd, QUEUE_MESSAGE,
	    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (tx->msgfd == -1) {
		queue_tx_unlink(tx);
		goto fail;
	}
	return tx;

fail:
	saved_errno = errno;
	queue_close_fd(tx->entryfd);
	free(tx);
	errno = saved_errno;
	return NULL;
}

/*
 * A prepared entry renamed to a fresh ID (the ID tells when the message
 * came), or NULL when none is ready.  Either way the workers are told to
 * make more, and to try again once after a failure.  A file system
 * without RENAME_NOREPLACE (NFS, say) turns the preparing off for good.
 */
static struct queue_tx *
queue_tx_take(struct queue *q)
{
	struct queue_tx	*tx;
	char		 id[ENVELOPE_ID_MAX];
	int		 tmpfd = q->fd[QUEUE_SUB_TMP];

	if (!q->async)
		return NULL;
	pthread_mutex_lock(&q->lock);
	if ((tx = STAILQ_FIRST(&q->prepared)) != NULL) {
		STAILQ_REMOVE_HEAD(&q->prepared, link);
		q->nprepared--;
	}
	q->prep_failed = false;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	if (tx == NULL)
		return NULL;
	if (queue_new_id(id, sizeof(id)) == -1 ||
	    renameat2(tmpfd, tx->id, tmpfd, id, RENAME_NOREPLACE) == -1) {
		log_warn("queue: tmp/%s: cannot rename a prepared entry",
		    tx->id);
		if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
			pthread_mutex_lock(&q->lock);
			q->prep_off = true;
			pthread_mutex_unlock(&q->lock);
			log_warnx("queue: entries are no longer prepared "
			    "ahead");
		}
		queue_tx_abort(tx);
		return NULL;
	}
	str_copy(tx->id, id, sizeof(tx->id));
	return tx;
}

/* Start a message in tmp/<ID>/message.eml: a prepared entry, or a new one. */
struct queue_tx *
queue_tx_begin(struct queue *q)
{
	struct queue_tx	*tx;

	if ((tx = queue_tx_take(q)) == NULL &&
	    (tx = queue_tx_new(q, "")) == NULL)
		return NULL;
	tx->buf = xmalloc(QUEUE_WBUF_SIZE);
	return tx;
}

/* The ID the message will have in queue/. */
const char *
queue_tx_id(const struct queue_tx *tx)
{
	return tx->id;
}

/* Write out the buffered message bytes; a failure sticks to the tx. */
static int
queue_flush(struct queue_tx *tx)
{
	if (tx->error != 0) {
		errno = tx->error;
		return -1;
	}
	if (tx->buflen == 0)
		return 0;
	if (write_all(tx->msgfd, tx->buf, tx->buflen) == -1) {
		tx->error = errno;
		return -1;
	}
	tx->buflen = 0;
	return 0;
}

/* Append message bytes through the 64 KB buffer. */
int
queue_tx_write(struct queue_tx *tx, const void *data, size_t len)
{
	if (tx->error != 0) {
		errno = tx->error;
		return -1;
	}
	if (len > QUEUE_WBUF_SIZE - tx->buflen && queue_flush(tx) == -1)
		return -1;
	if (len >= QUEUE_WBUF_SIZE) {
		if (write_all(tx->msgfd, data, len) == -1) {
			tx->error = errno;
			return -1;
		}
		return 0;
	}
	memcpy(tx->buf + tx->buflen, data, len);
	tx->buflen += len;
	return 0;
}

/* Remove tmp/<ID> and whatever the tx has written into it. */
static void
queue_tx_unlink(struct queue_tx *tx)
{
	int	 saved_errno = errno;

	if (tx->entryfd != -1)
		queue_purge(tx->entryfd, tx->id, 0);
	if (unlinkat(tx->q->fd[QUEUE_SUB_TMP], tx->id, AT_REMOVEDIR) == -1 &&
	    errno != ENOENT)
		log_warn("queue: cannot remove tmp/%s", tx->id);
	errno = saved_errno;
}

/* Close and free a tx without touching the disk. */
static void
queue_tx_free(struct queue_tx *tx)
{
	int	 saved_errno = errno;

	if (tx->msgfd != -1)
		close(tx->msgfd);
	if (tx->entryfd != -1)
		close(tx->entryfd);
	free(tx->buf);
	free(tx);
	errno = saved_errno;
}

/* Drop a tx and its tmp/<ID>; NULL is a no-op. */
void
queue_tx_abort(struct queue_tx *tx)
{
	if (tx == NULL)
		return;
	queue_tx_unlink(tx);
	queue_tx_free(tx);
}

/* The envelope's text form in a new buffer. */
static int
queue_dump_envelope(const struct envelope *env, char **buf, size_t *len)
{
	FILE	*fp;
	int	 rc, saved_errno;

	*buf = NULL;
	*len = 0;
	if ((fp = open_memstream(buf, len)) == NULL)
		return -1;
	rc = envelope_dump(env, fp);
	saved_errno = errno;
	if (fclose(fp) == EOF && rc == 0) {
		rc = -1;
		saved_errno = errno;
	}
	if (rc == -1) {
		free(*buf);
		*buf = NULL;
		errno = saved_errno;
	}
	return rc;
}

/*
 * The credentials file's text in buf: base64 of the PLAIN blob, LF, after
 * "XOAUTH2 " when the secret is an OAuth2 token.
 */
static int
queue_encode_cred(const struct sasl_cred *cred, char *buf, size_t buflen,
    size_t *len)
{
	size_t	 mlen = 0;

	if (cred->mech == SASL_MECH_XOAUTH2) {
		mlen = strlen(QUEUE_CRED_XOAUTH2);
		memcpy(buf, QUEUE_CRED_XOAUTH2, mlen);
	}
	if (sasl_plain_encode(cred, buf + mlen, buflen - mlen - 1) == -1) {
		secure_zero(buf, buflen);
		errno = EINVAL;
		return -1;
	}
	*len = strlen(buf);
	buf[(*len)++] = '\n';
	return 0;
}

/*
 * Everything but the rename: message.eml, envelope and credentials are
 * written and fsynced, then the entry directory.
 */
static int
queue_commit_files(struct queue_tx *tx, const char *env, size_t envlen,
    const char *cred, size_t credlen)
{
	int	 rc;

	if (queue_flush(tx) == -1 || fsync(tx->msgfd) == -1)
		return -1;
	rc = close(tx->msgfd);
	tx->msgfd = -1;
	if (rc == -1)
		return -1;
	if (queue_write_file(tx->entryfd, QUEUE_ENVELOPE, env, envlen,
	    O_EXCL) == -1 ||
	    queue_write_file(tx->entryfd, QUEUE_CREDENTIALS, cred, credlen,
	    O_EXCL) == -1)
		return -1;
	return fsync(tx->entryfd);
}

/*
 * The durable files, then the rename to queue/<ID>, which is not yet
 * durable itself (queue_sync_parents).  On failure tmp/<ID> is removed
 * and errno kept; the tx stays allocated either way.
 */
static int
queue_commit_rename(struct queue_tx *tx, const char *env, size_t envlen,
    const char *cred, size_t credlen)
{
	struct queue	*q = tx->q;

	if (queue_commit_files(tx, env, envlen, cred, credlen) == -1) {
		queue_tx_unlink(tx);
		return -1;
	}
	QUEUE_FAULT("before-commit-rename");
	if (renameat(q->fd[QUEUE_SUB_TMP], tx->id, q->fd[QUEUE_SUB_QUEUE],
	    tx->id) == -1) {
		queue_tx_unlink(tx);
		return -1;
	}
	return 0;
}

/*
 * Make every rename done so far durable: fsync queue/, then tmp/ (so a
 * crash cannot leave the entry under both names and the tmp/ purge empty
 * it).  -1 with errno only when queue/ could not be synced.
 */
static int
queue_sync_parents(struct queue *q, int qfd, int tmpfd)
{
	if (fsync(qfd) == -1) {
		log_warn("queue: fsync %s/queue", q->dir);
		return -1;
	}
	if (fsync(tmpfd) == -1)
		log_warn("queue: fsync %s/tmp", q->dir);
	return 0;
}

/*
 * A commit record for tx: env->id set to the tx's ID, the envelope and
 * the credentials rendered for the files.  NULL with errno (tx untouched).
 */
static struct queue_commit *
queue_commit_new(struct queue_tx *tx, struct envelope *env,
    const struct sasl_cred *cred)
{
	struct queue_commit	*c;
	int			 saved_errno;

	if (str_copy(env->id, tx->id, sizeof(env->id)) == -1) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	str_copy(c->id, tx->id, sizeof(c->id));
	if (queue_dump_envelope(env, &c->env, &c->envlen) == -1 ||
	    queue_encode_cred(cred, c->cred, sizeof(c->cred),
	    &c->credlen) == -1) {
		saved_errno = errno;
		free(c->env);
		secure_zero(c->cred, sizeof(c->cred));
		free(c);
		errno = saved_errno;
		return NULL;
	}
	c->tx = tx;
	return c;
}

/* Free a commit record and its tx, wiping the credentials; keeps errno. */
static void
queue_commit_free(struct queue_commit *c)
{
	int	 saved_errno = errno;

	if (c->tx != NULL)
		queue_tx_free(c->tx);
	free(c->env);
	secure_zero(c->cred, sizeof(c->cred));
	free(c);
	errno = saved_errno;
}

/* Make the entry durable in queue/ now; the tx is freed in every case. */
int
queue_tx_commit(struct queue_tx *tx, struct envelope *env,
    const struct sasl_cred *cred)
{
	struct queue		*q = tx->q;
	struct queue_commit	*c;
	int			 rc = -1, saved_errno;

	if ((c = queue_commit_new(tx, env, cred)) == NULL) {
		queue_tx_abort(tx);
		return -1;
	}
	if (queue_commit_rename(tx, c->env, c->envlen, c->cred,
	    c->credlen) == -1)
		goto done;
	if (queue_sync_parents(q, q->fd[QUEUE_SUB_QUEUE],
	    q->fd[QUEUE_SUB_TMP]) == -1) {
		/*
		 * The client will be told the message was not accepted, so
		 * it must not be delivered either: take it back out.
		 */
		saved_errno = errno;
		queue_empty_dir(q->fd[QUEUE_SUB_QUEUE], tx->id);
		errno = saved_errno;
		goto done;
	}
	rc = 0;
done:
	queue_commit_free(c);
	return rc;
}

/*
 * A renamed entry whose parent fsync failed: the client is told it was not
 * accepted, so it must not be delivered either.  Nobody else knows of it
 * yet (queue_scan skips commits in flight), so it is removed unlocked.
 */
static void
queue_commit_undo(struct queue *q, struct queue_commit *c, int errnum)
{
	c->errnum = errnum;
	if (queue_empty_dir(q->fd[QUEUE_SUB_QUEUE], c->id) == -1)
		log_warn("queue: queue/%s failed to commit and cannot be "
		    "removed; it may be delivered although its client was "
		    "told it was not accepted", c->id);
}

/* Hand finished commits to the loop thread (q->lock held). */
static void
queue_finish(struct queue *q, struct queue_commits *list)
{
	uint64_t	 one = 1;
	bool		 was_empty = STAILQ_EMPTY(&q->done);

	STAILQ_CONCAT(&q->done, list);
	/* The loop reads the eventfd before it takes the list. */
	if (was_empty && write(q->efd, &one, sizeof(one)) == -1)
		log_warn("queue: eventfd");
}

/*
 * A commit worker: take a job and bring it to the rename; whenever renamed
 * entries wait and nobody is syncing the parents, lead one round of that
 * for all of them; with nothing else to do, prepare an empty entry.
 * Exits when stopping and nothing is left to take.
 */
static void *
queue_worker(void *arg)
{
	struct queue		*q = arg;
	struct queue_commits	 batch;
	struct queue_commit	*c;
	struct queue_tx		*tx;
	int			 errnum;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		STAILQ_INIT(&batch);
		if (!q->syncing && !STAILQ_EMPTY(&q->renamed)) {
			STAILQ_CONCAT(&batch, &q->renamed);
			q->syncing = true;
			pthread_mutex_unlock(&q->lock);
			errnum = queue_sync_parents(q, q->syncfd[0],
			    q->syncfd[1]) == -1 ? errno : 0;
			if (errnum != 0) {
				/*
				 * An fsync error is reported once per open
				 * file, so a later fsync cannot vouch for the
				 * renames done before this one returned:
				 * they fail with the batch.
				 */
				pthread_mutex_lock(&q->lock);
				STAILQ_CONCAT(&batch, &q->renamed);
				pthread_mutex_unlock(&q->lock);
				STAILQ_FOREACH(c, &batch, link)
					queue_commit_undo(q, c, errnum);
				if (fsync(q->syncfd[0]) == -1)
					log_warn("queue: fsync %s/queue", q->dir);
			}
			pthread_mutex_lock(&q->lock);
			q->syncing = false;
			queue_finish(q, &batch);
		} else if ((c = STAILQ_FIRST(&q->jobs)) != NULL &&
		    c->remove) {
			STAILQ_REMOVE_HEAD(&q->jobs, link);
			pthread_mutex_unlock(&q->lock);
			if (queue_remove(q, c->id) == -1)
				c->errnum = errno;
			pthread_mutex_lock(&q->lock);
			STAILQ_INSERT_TAIL(&batch, c, link);
			queue_finish(q, &batch);
		} else if (c != NULL) {
			STAILQ_REMOVE_HEAD(&q->jobs, link);
			pthread_mutex_unlock(&q->lock);
			if (queue_commit_rename(c->tx, c->env, c->envlen,
			    c->cred, c->credlen) == -1)
				c->errnum = errno;
			secure_zero(c->cred, sizeof(c->cred));
			pthread_mutex_lock(&q->lock);
			if (c->errnum != 0) {
				STAILQ_INSERT_TAIL(&batch, c, link);
				queue_finish(q, &batch);
			} else
				STAILQ_INSERT_TAIL(&q->renamed, c, link);
		} else if (!q->stopping && !q->prep_failed && !q->prep_off &&
		    q->nprepared + q->npreparing < QUEUE_PREPARED) {
			q->npreparing++;
			pthread_mutex_unlock(&q->lock);
			tx = queue_tx_new(q, QUEUE_PREP_PREFIX);
			pthread_mutex_lock(&q->lock);
			q->npreparing--;
			if (tx == NULL)
				q->prep_failed = true;	/* the loop will see */
			else {
				STAILQ_INSERT_TAIL(&q->prepared, tx, link);
				q->nprepared++;
			}
		} else if (q->stopping)
			break;
		else
			pthread_cond_wait(&q->wake, &q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* Run the completions of finished commits on the loop thread, in order. */
static void
queue_run_done(struct queue *q)
{
	struct queue_commits	 list;
	struct queue_commit	*c;

	STAILQ_INIT(&list);
	pthread_mutex_lock(&q->lock);
	STAILQ_CONCAT(&list, &q->done);
	pthread_mutex_unlock(&q->lock);
	while ((c = STAILQ_FIRST(&list)) != NULL) {
		STAILQ_REMOVE_HEAD(&list, link);
		TAILQ_REMOVE(&q->pending, c, pend);
		q->npending--;
		if (c->remove) {
			if (c->errnum != 0) {
				errno = c->errnum;
				log_warn("queue: %s delivered but not removed "
				    "(it may be sent again)", c->id);
			} else
				QUEUE_FAULT("after-remove");
			queue_commit_free(c);
			continue;
		}
		queue_tx_free(c->tx);
		c->tx = NULL;
		c->done(c->arg, c->id, c->errnum);
		queue_commit_free(c);
	}
}

/* The eventfd is readable: some commits have finished. */
static void
queue_done_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t	 n;

	UNUSED(what);
	if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		log_warn("queue: eventfd");
	queue_run_done(arg);
}

/*
 * Start the workers (every signal blocked in them: they belong to the
 * loop) and the completion event on base.
 */
static int
queue_async_start(struct queue *q, struct event_base *base)
{
	pthread_attr_t	 attr;
	sigset_t	 all, old;
	int		 rc = 0, saved_errno;

	/*
	 * The leader's own opens of queue/ and tmp/: an fsync error is
	 * reported once per open file, so the loop's fsyncs of queue/ (a
	 * removal, say) must not be able to take one meant for a commit.
	 */
	if ((q->syncfd[0] = openat(q->fd[QUEUE_SUB_QUEUE], ".",
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    (q->syncfd[1] = openat(q->fd[QUEUE_SUB_TMP], ".",
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		goto fail;
	if ((q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1)
		goto fail;
	q->ev_done = event_new(base, q->efd, EV_READ | EV_PERSIST,
	    queue_done_cb, q);
	if (q->ev_done == NULL || event_add(q->ev_done, NULL) == -1) {
		errno = ENOMEM;
		goto fail;
	}
	if ((rc = pthread_attr_init(&attr)) != 0) {
		errno = rc;
		goto fail;
	}
	pthread_attr_setstacksize(&attr, QUEUE_WORKER_STACK);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	q->stopping = false;
	for (q->nworkers = 0; q->nworkers < QUEUE_WORKERS; q->nworkers++) {
		rc = pthread_create(&q->workers[q->nworkers], &attr,
		    queue_worker, q);
		if (rc != 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (q->nworkers == 0) {
		errno = rc;
		goto fail;
	}
	if (q->nworkers < QUEUE_WORKERS)
		log_warnx("queue: %zu of %d commit workers started: %s",
		    q->nworkers, QUEUE_WORKERS, strerror(rc));
	q->async = true;
	return 0;

fail:
	saved_errno = errno;
	if (q->ev_done != NULL)
		event_free(q->ev_done);
	q->ev_done = NULL;
	queue_close_fd(q->efd);
	queue_close_fd(q->syncfd[0]);
	queue_close_fd(q->syncfd[1]);
	q->efd = q->syncfd[0] = q->syncfd[1] = -1;
	errno = saved_errno;
	return -1;
}

/* Hand c to the workers; it is pending (and hidden from scans) until done. */
static void
queue_enqueue(struct queue *q, struct queue_commit *c)
{
	TAILQ_INSERT_TAIL(&q->pending, c, pend);
	q->npending++;
	pthread_mutex_lock(&q->lock);
	STAILQ_INSERT_TAIL(&q->jobs, c, link);
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
}

/* Hand the commit's blocking part to the workers. */
int
queue_tx_commit_async(struct queue_tx *tx, struct event_base *base,
    struct envelope *env, const struct sasl_cred *cred,
    void (*done)(void *, const char *, int), void *arg)
{
	struct queue		*q = tx->q;
	struct queue_commit	*c;

	if ((!q->async && queue_async_start(q, base) == -1) ||
	    (c = queue_commit_new(tx, env, cred)) == NULL) {
		queue_tx_abort(tx);
		return -1;
	}
	c->done = done;
	c->arg = arg;
	queue_enqueue(q, c);
	return 0;
}

/*
 * queue_remove on the workers, so the event loop never waits for its
 * fsyncs; until it is done, scans skip the entry.
 */
int
queue_remove_async(struct queue *q, struct event_base *base, const char *id)
{
	struct queue_commit	*c;

	if (!queue_name_ok(id)) {
		errno = EINVAL;
		return -1;
	}
	if (!q->async && queue_async_start(q, base) == -1)
		return -1;
	c = xcalloc(1, sizeof(*c));
	c->remove = true;
	str_copy(c->id, id, sizeof(c->id));
	queue_enqueue(q, c);
	return 0;
}

/* Async commits and removals not finished yet. */
size_t
queue_async_pending(const struct queue *q)
{
	return q->npending;
}

/* True when id is a commit in flight: renamed, perhaps, but not durable. */
static bool
queue_committing(const struct queue *q, const char *id)
{
	const struct queue_commit	*c;

	TAILQ_FOREACH(c, &q->pending, pend)
		if (strcmp(c->id, id) == 0)
			return true;
	return false;
}

/* Where committed entries of vanished submitters go. */
void
queue_set_adopt(struct queue *q, void (*fn)(void *, const char *), void *arg)
{
	q->adopt = fn;
	q->adopt_arg = arg;
}

/* Hand a committed entry whose submitter is gone to the adopter. */
void
queue_adopt(struct queue *q, const char *id)
{
	if (q->adopt != NULL)
		q->adopt(q->adopt_arg, id);
	else
		log_info("%s stays queued for the next scan", id);
}

/*
 * Let the workers finish every commit handed to them, join them, release
 * the event and run the completions here.  A completion that starts a new
 * commit starts the workers again, so repeat until none is left.  Then
 * remove the prepared entries.
 */
void
queue_async_stop(struct queue *q)
{
	struct queue_tx	*tx;
	size_t		 i;

	while (q->async) {
		pthread_mutex_lock(&q->lock);
		q->stopping = true;
		pthread_cond_broadcast(&q->wake);
		pthread_mutex_unlock(&q->lock);
		for (i = 0; i < q->nworkers; i++)
			pthread_join(q->workers[i], NULL);
		q->nworkers = 0;
		q->stopping = false;
		event_free(q->ev_done);
		q->ev_done = NULL;
		queue_close_fd(q->efd);
		queue_close_fd(q->syncfd[0]);
		queue_close_fd(q->syncfd[1]);
		q->efd = q->syncfd[0] = q->syncfd[1] = -1;
		q->async = false;
		queue_run_done(q);
	}
	while ((tx = STAILQ_FIRST(&q->prepared)) != NULL) {
		STAILQ_REMOVE_HEAD(&q->prepared, link);
		queue_tx_abort(tx);
	}
	q->nprepared = 0;
}

/* Remove the files in sub/<name> and the directory itself. */
static int
queue_empty_dir(int subfd, const char *name)
{
	int	 fd, rc, saved_errno = errno;

	fd = openat(subfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return -1;
	rc = queue_purge(fd, name, 0);
	close(fd);
	if (rc == -1 || unlinkat(subfd, name, AT_REMOVEDIR) == -1) {
		saved_errno = errno;
		rc = -1;
	}
	errno = saved_errno;
	return rc;
}

/* Compare two names for qsort. */
static int
queue_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Call cb for each name in queue/, in sorted order; dot files (removals,
 * finished here first) and commits in flight are skipped.
 */
int
queue_scan(struct queue *q, void (*cb)(const char *, void *), void *arg)
{
	DIR		*d;
	struct dirent	*de;
	char		**names = NULL;
	size_t		 n = 0, i;
	int		 fd;

	queue_purge_removed(q);
	if ((fd = dup(q->fd[QUEUE_SUB_QUEUE])) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		queue_close_fd(fd);
		return -1;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || queue_committing(q, de->d_name))
			continue;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), queue_name_cmp);
	for (i = 0; i < n; i++) {
		cb(names[i], arg);
		free(names[i]);
	}
	free(names);
	return 0;
}

/* Open queue/<id>/<file> read-only. */
static int
queue_open_file(struct queue *q, const char *id, const char *file)
{
	char	 path[ENVELOPE_ID_MAX + 32];

	if (!queue_name_ok(id)) {
		errno = EINVAL;
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", id, file);
	return openat(q->fd[QUEUE_SUB_QUEUE], path,
	    O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

/* Load queue/<id>/envelope; the envelope must carry the entry's own ID. */
int
queue_load(struct queue *q, const char *id, struct envelope *env, char *err,
    size_t errlen)
{
	FILE	*fp;
	char	*name;
	int	 fd, rc, saved_errno;

	xasprintf(&name, "%s/queue/%s/%s", q->dir, id, QUEUE_ENVELOPE);
	envelope_init(env);
	if ((fd = queue_open_file(q, id, QUEUE_ENVELOPE)) == -1 ||
	    (fp = fdopen(fd, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		queue_close_fd(fd);
		free(name);
		return -1;
	}
	errno = 0;
	rc = envelope_load(env, fp, name, err, errlen);
	/* A read error or no memory may pass; anything else is the text. */
	if (rc == -1 && ferror(fp))
		saved_errno = errno != 0 ? errno : EIO;
	else if (rc == -1 && errno == ENOMEM)
		saved_errno = ENOMEM;
	else
		saved_errno = EINVAL;
	fclose(fp);
	if (rc == 0 && strcmp(env->id, id) != 0) {
		snprintf(err, errlen, "%s: id: does not match the entry name",
		    name);
		envelope_fini(env);
		rc = -1;
	}
	free(name);
	errno = saved_errno;
	return rc;
}

/* Load queue/<id>/credentials. */
int
queue_load_cred(struct queue *q, const char *id, struct sasl_cred *cred)
{
	char		 buf[QUEUE_CRED_MAX];
	const char	*reason, *b64;
	ssize_t		 n = 0;
	size_t		 len = 0, mlen;
	int		 fd, rc = -1, saved_errno = 0;

	if ((fd = queue_open_file(q, id, QUEUE_CREDENTIALS)) == -1)
		return -1;
	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (n == -1)
		saved_errno = errno;
	else if (len == 0 || len == sizeof(buf) - 1 || buf[len - 1] != '\n')
		saved_errno = EINVAL;
	else {
		buf[len - 1] = '\0';
		mlen = strlen(QUEUE_CRED_XOAUTH2);
		b64 = strncmp(buf, QUEUE_CRED_XOAUTH2, mlen) == 0 ? buf + mlen :
		    buf;
		if (sasl_plain_decode(b64, cred, &reason) == 0) {
			if (b64 != buf)
				cred->mech = SASL_MECH_XOAUTH2;
			rc = 0;
		} else
			saved_errno = EINVAL;
	}
	close(fd);
	secure_zero(buf, sizeof(buf));
	errno = saved_errno;
	return rc;
}

/* Open queue/<id>/message.eml read-only. */
int
queue_open_message(struct queue *q, const char *id)
{
	return queue_open_file(q, id, QUEUE_MESSAGE);
}

/* Replace envelope in the entry open at entryfd: tmp file, fsync, rename. */
static int
queue_replace_envelope(int entryfd, const struct envelope *env)
{
	char	*text;
	size_t	 len;
	int	 rc, saved_errno;

	if (queue_dump_envelope(env, &text, &len) == -1)
		return -1;
	rc = queue_write_file(entryfd, QUEUE_ENVELOPE_TMP, text, len, O_TRUNC);
	saved_errno = errno;
	free(text);
	errno = saved_errno;
	if (rc == -1)
		return -1;
	QUEUE_FAULT("during-envelope-update");
	if (renameat(entryfd, QUEUE_ENVELOPE_TMP, entryfd, QUEUE_ENVELOPE) ==
	    -1) {
		saved_errno = errno;
		unlinkat(entryfd, QUEUE_ENVELOPE_TMP, 0);
		errno = saved_errno;
		return -1;
	}
	return fsync(entryfd);
}

/* Open the entry directory queue/<id>. */
static int
queue_open_entry(struct queue *q, const char *id)
{
	if (!queue_name_ok(id)) {
		errno = EINVAL;
		return -1;
	}
	return openat(q->fd[QUEUE_SUB_QUEUE], id,
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
}

/* Atomically replace queue/<id>/envelope with env. */
int
queue_update(struct queue *q, const struct envelope *env)
{
	int	 fd, rc;

	if ((fd = queue_open_entry(q, env->id)) == -1)
		return -1;
	rc = queue_replace_envelope(fd, env);
	queue_close_fd(fd);
	return rc;
}

/*
 * Delivered: remove queue/<id> and make that durable.  The entry first
 * leaves its name in one rename, to queue/.<id> (scans skip dot names;
 * queue_open removes such leftovers), so a crash in the middle of the
 * unlinks cannot leave a half-removed entry for the next scan to
 * quarantine.
 */
int
queue_remove(struct queue *q, const char *id)
{
	char	 gone[ENVELOPE_ID_MAX + 1];
	int	 qfd = q->fd[QUEUE_SUB_QUEUE];

	if (!queue_name_ok(id)) {
		errno = EINVAL;
		return -1;
	}
	snprintf(gone, sizeof(gone), ".%s", id);
	/*
	 * The rename is made durable before the first unlink: a file system
	 * need not keep the order of the two otherwise.
	 */
	if (renameat(qfd, id, qfd, gone) == -1 || fsync(qfd) == -1)
		return -1;
	/* A second pass for a file added meanwhile (relayq --delete). */
	if (queue_empty_dir(qfd, gone) == -1 &&
	    queue_empty_dir(qfd, gone) == -1)
		log_warn("queue: removing queue/%s (finished at the next scan)",
		    gone);
	return fsync(qfd);
}

/* Remove what a crash left of removals: the directories queue/.<ID>. */
static void
queue_purge_removed(struct queue *q)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd, qfd = q->fd[QUEUE_SUB_QUEUE];

	if ((fd = dup(qfd)) == -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		queue_close_fd(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' || !queue_name_ok(de->d_name + 1))
			continue;
		if (queue_empty_dir(qfd, de->d_name) == 0)
			log_info("queue: finished removing %s", de->d_name + 1);
	}
	closedir(d);
}

/* Move queue/<name> to failed/<name> and fsync both parents. */
static int
queue_move_failed(struct queue *q, const char *name)
{
	int	 qfd = q->fd[QUEUE_SUB_QUEUE], ffd = q->fd[QUEUE_SUB_FAILED];

	if (renameat(qfd, name, ffd, name) == -1)
		return -1;
	if (fsync(ffd) == -1 || fsync(qfd) == -1)
		return -1;
	return 0;
}

/*
 * Unlink the credentials in the entry open at fd and make that durable:
 * nothing in failed/ holds a password.
 */
static int
queue_drop_cred(int fd)
{
	if (unlinkat(fd, QUEUE_CREDENTIALS, 0) == -1 && errno != ENOENT)
		return -1;
	return fsync(fd);
}

/*
 * Give up: drop the credentials, write env with state failed, then move
 * the entry to failed/.  A crash between the steps leaves the entry in
 * queue/, where the next scan moves it aside with the reason.
 */
int
queue_fail(struct queue *q, const struct envelope *env)
{
	struct envelope	 failed;
	int		 fd, rc;

	if ((fd = queue_open_entry(q, env->id)) == -1)
		return -1;
	failed = *env;			/* shallow: rcpt stays the caller's */
	failed.state = ENVELOPE_FAILED;
	rc = queue_drop_cred(fd);
	if (rc == 0)
		rc = queue_replace_envelope(fd, &failed);
	queue_close_fd(fd);
	if (rc == -1)
		return -1;
	return queue_move_failed(q, env->id);
}

/* Move a bad entry or stray file to failed/, with a REASON for a dir. */
int
queue_quarantine(struct queue *q, const char *name, const char *reason)
{
	struct stat	 st;
	char		*text;
	int		 fd, len;

	if (!queue_name_ok(name)) {
		errno = EINVAL;
		return -1;
	}
	if (fstatat(q->fd[QUEUE_SUB_QUEUE], name, &st, AT_SYMLINK_NOFOLLOW) ==
	    -1)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		/* Best effort: the move matters more than the note. */
		if ((fd = queue_open_entry(q, name)) != -1) {
			len = xasprintf(&text, "%s\n", reason);
			if (queue_write_file(fd, QUEUE_REASON, text, (size_t)len,
			    O_TRUNC) == -1)
				log_warn("queue: writing %s/REASON", name);
			free(text);
			if (queue_drop_cred(fd) == -1)
				log_warn("queue: removing %s/credentials",
				    name);
			close(fd);
		}
	}
	if (queue_move_failed(q, name) == -1)
		return -1;
	log_warnx("%s quarantined reason=%s", name, reason);
	return 0;
}

/*
 * What is wrong with queue/<id>/<file> as a regular file, or NULL.  errno
 * is EINVAL when the file is missing or not a regular file, and fstatat's
 * own (EIO, ENOMEM...) when it could not be looked at.
 */
static const char *
queue_check_file(int fd, const char *file)
{
	struct stat	 st;

	if (fstatat(fd, file, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno != ENOENT)
			return strerror(errno);
		errno = EINVAL;
		return "missing";
	}
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return "not a regular file";
	}
	return NULL;
}

/* Check that queue/<id> is a complete entry; remove a stale envelope.tmp. */
int
queue_check(struct queue *q, const char *id, char *err, size_t errlen)
{
	static const char *const files[] = {
		QUEUE_ENVELOPE, QUEUE_MESSAGE, QUEUE_CREDENTIALS
	};
	const char	*why;
	size_t		 i;
	int		 fd, saved_errno;

	if ((fd = queue_open_entry(q, id)) == -1) {
		saved_errno = errno;
		snprintf(err, errlen, "%s/queue/%s: %s", q->dir, id,
		    errno == ENOTDIR ? "not an entry directory" :
		    strerror(errno));
		errno = saved_errno;
		return -1;
	}
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if ((why = queue_check_file(fd, files[i])) != NULL) {
			saved_errno = errno;
			snprintf(err, errlen, "%s/queue/%s/%s: %s", q->dir, id,
			    files[i], why);
			close(fd);
			errno = saved_errno;
			return -1;
		}
	}
	if (unlinkat(fd, QUEUE_ENVELOPE_TMP, 0) == 0) {
		log_info("%s: removed a stale envelope.tmp", id);
		if (fsync(fd) == -1)
			log_warn("queue: fsync %s/queue/%s", q->dir, id);
	}
	close(fd);
	return 0;
}

/* True when errnum says the entry itself is bad, not a passing condition. */
bool
queue_content_error(int errnum)
{
	switch (errnum) {
	case EINVAL:		/* bad text, missing or irregular file */
	case ENOENT:		/* a file of the entry is missing */
	case ENOTDIR:		/* a stray file, not an entry directory */
	case ELOOP:		/* a symbolic link (O_NOFOLLOW) */
	case EISDIR:
		return true;
	default:
		return false;
	}
}

/* True when queue/<id> exists. */
bool
queue_exists(struct queue *q, const char *id)
{
	struct stat	 st;

	return queue_name_ok(id) && fstatat(q->fd[QUEUE_SUB_QUEUE], id, &st,
	    AT_SYMLINK_NOFOLLOW) == 0;
}

/* Take the entry's relay lock without blocking; the fd or -1/errno. */
int
queue_lock(struct queue *q, const char *id)
{
	int	 fd;

	if ((fd = queue_open_entry(q, id)) == -1)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		queue_close_fd(fd);
		return -1;
	}
	return fd;
}

/* Release the relay lock (closing the fd drops it). */
void
queue_unlock(int fd)
{
	queue_close_fd(fd);
}

/* True when relayq --delete left queue/<id>/DELETE. */
bool
queue_delete_requested(struct queue *q, const char *id)
{
	struct stat	 st;
	char		 path[ENVELOPE_ID_MAX + 32];

	if (!queue_name_ok(id))
		return false;
	snprintf(path, sizeof(path), "%s/%s", id, QUEUE_DELETE);
	return fstatat(q->fd[QUEUE_SUB_QUEUE], path, &st,
	    AT_SYMLINK_NOFOLLOW) == 0;
}

#ifdef RELAYQ_FAULTS
/* Test builds: die at once, as a power cut would, at the chosen point. */
void
queue_fault(const char *point)
{
	const char	*want = getenv("RELAYQ_FAULT");

	if (want == NULL || strcmp(want, point) != 0)
		return;
	log_warnx("fault injected: %s: SIGKILL", point);
	raise(SIGKILL);
}
#endif
