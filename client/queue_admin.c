/*
 * queue_admin.c: relayq --list, --json, --delete and --flush.
 *
 * --list reads <queue-dir>/queue and <queue-dir>/failed itself, as mailq
 * reads the spool: each entry's envelope (common/envelope.c), the size of
 * its message.eml, and for failed/ the REASON file when there is one.  An
 * entry whose directory lock is held is being relayed right now.
 *
 * --delete follows the protocol agreed with relayqd's scheduler: open
 * the entry directory and try flock(LOCK_EX|LOCK_NB).  With the lock, no
 * relay can start on it: unlink its files, remove the directory, fsync
 * the parent, release.  When the lock is busy the entry is being relayed:
 * create <entry>/DELETE and the scheduler removes the entry when that
 * attempt ends (or at its next scan).
 *
 * --flush says ETRN on the submission socket.  Nothing here links more
 * than libc.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "envelope.h"
#include "queue_admin.h"
#include "submit.h"
#include "util.h"

#define QA_PATH_MAX		4096
#define QA_REASON_MAX		1024
#define QA_FLUSH_TIMEOUT	30	/* seconds per reply */

/* The subdirectories --list shows, in order. */
static const char *const qa_subdirs[] = { "queue", "failed" };

/* What --list learns about one entry. */
struct qa_entry {
	const char		*sub;		/* "queue" or "failed" */
	const char		*id;
	struct envelope		 env;
	char			 error[QA_REASON_MAX];	/* "" if loaded */
	char			 reason[QA_REASON_MAX];	/* REASON, or "" */
	long long		 size;		/* message.eml, -1 unknown */
	bool			 relaying;
	bool			 delete_requested;
};

struct qa_defaults {
	char	*dir;
	size_t	 dirlen;
	char	*sock;
	size_t	 socklen;
};

/* conf_load's setter: take queue-dir and socket, ignore the rest. */
static int
qa_conf_set(void *arg, const char *key, const char *value, char *err,
    size_t errlen)
{
	struct qa_defaults	*d = arg;

	UNUSED(err);
	UNUSED(errlen);
	if (strcmp(key, "queue-dir") == 0 && value[0] == '/')
		str_copy(d->dir, value, d->dirlen);
	else if (strcmp(key, "socket") == 0 && value[0] == '/' &&
	    d->sock != NULL)
		str_copy(d->sock, value, d->socklen);
	return 0;
}

/* Read the daemon's config for its queue-dir and socket, if it can. */
void
queue_admin_defaults(const char *conf, char *dir, size_t dirlen, char *sock,
    size_t socklen)
{
	struct qa_defaults	 d = { dir, dirlen, sock, socklen };
	char			 err[256];

	if (access(conf, R_OK) == 0)
		(void)conf_load(conf, qa_conf_set, &d, err, sizeof(err));
}

/* conf_load's setter for queue_admin_account: "account" only. */
static int
qa_conf_account(void *arg, const char *key, const char *value, char *err,
    size_t errlen)
{
	struct qa_defaults	*d = arg;

	UNUSED(err);
	UNUSED(errlen);
	if (strcmp(key, "account") == 0)
		str_copy(d->dir, value, d->dirlen);
	return 0;
}

/* Read the daemon's config for its account, if it can. */
void
queue_admin_account(const char *conf, char *acct, size_t len)
{
	struct qa_defaults	 d = { acct, len, NULL, 0 };
	char			 err[256];

	acct[0] = '\0';
	if (access(conf, R_OK) == 0)
		(void)conf_load(conf, qa_conf_account, &d, err, sizeof(err));
}

/* qsort comparator for entry names: IDs sort by arrival. */
static int
qa_namecmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The sorted names in dir (not starting with '.'), in a malloc'd array
 * of malloc'd strings; *n is their count.  NULL with errno on failure.
 */
static char **
qa_names(const char *dir, size_t *n)
{
	struct dirent	*de;
	DIR		*dp;
	char		**names = NULL;
	size_t		 cap = 0;

	*n = 0;
	if ((dp = opendir(dir)) == NULL)
		return NULL;
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			names = xreallocarray(names, cap, sizeof(*names));
		}
		names[(*n)++] = xstrdup(de->d_name);
	}
	closedir(dp);
	if (*n > 0)
		qsort(names, *n, sizeof(*names), qa_namecmp);
	else if (names == NULL)
		names = xcalloc(1, sizeof(*names));
	return names;
}

/* Free what qa_names returned. */
static void
qa_names_free(char **names, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* The first line of a small text file into buf ("" if absent). */
static void
qa_first_line(int dirfd, const char *name, char *buf, size_t len)
{
	ssize_t	 r;
	int	 fd;

	buf[0] = '\0';
	if ((fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	r = read(fd, buf, len - 1);
	close(fd);
	buf[r > 0 ? r : 0] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
}

/* Load the envelope of the entry open at dirfd into e. */
static void
qa_load_envelope(int dirfd, struct qa_entry *e)
{
	FILE	*fp;
	char	 name[ENVELOPE_ID_MAX + 32];
	int	 fd;

	snprintf(name, sizeof(name), "%s/%s/envelope", e->sub, e->id);
	if ((fd = openat(dirfd, "envelope", O_RDONLY | O_CLOEXEC)) == -1 ||
	    (fp = fdopen(fd, "r")) == NULL) {
		snprintf(e->error, sizeof(e->error), "%s: %s", name,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return;
	}
	if (envelope_load(&e->env, fp, name, e->error, sizeof(e->error)) == 0)
		e->error[0] = '\0';
	else if (e->error[0] == '\0')
		snprintf(e->error, sizeof(e->error), "%s: unreadable", name);
	fclose(fp);
}

/* Gather what --list shows about <sub>/<id>. */
static void
qa_entry_load(const char *queue_dir, struct qa_entry *e)
{
	char		 path[QA_PATH_MAX];
	struct stat	 st;
	int		 fd;

	e->size = -1;
	snprintf(path, sizeof(path), "%s/%s/%s", queue_dir, e->sub, e->id);
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(e->error, sizeof(e->error), "%s/%s: %s", e->sub,
		    e->id, errno == ENOTDIR ? "not an entry directory" :
		    strerror(errno));
		return;
	}
	if (fstatat(fd, "message.eml", &st, 0) == 0)
		e->size = (long long)st.st_size;
	e->delete_requested = faccessat(fd, "DELETE", F_OK, 0) == 0;
	/* A shared lock we cannot get: the scheduler holds it, relaying. */
	if (flock(fd, LOCK_SH | LOCK_NB) == -1)
		e->relaying = errno == EWOULDBLOCK;
	else
		flock(fd, LOCK_UN);
	qa_first_line(fd, "REASON", e->reason, sizeof(e->reason));
	qa_load_envelope(fd, e);
	close(fd);
}

/* "42s", "5m", "3h", "2d" for a duration in seconds. */
static const char *
qa_duration(long long secs, char *buf, size_t len)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, len, "%llds", secs);
	else if (secs < 3600)
		snprintf(buf, len, "%lldm", secs / 60);
	else if (secs < 86400)
		snprintf(buf, len, "%lldh", secs / 3600);
	else
		snprintf(buf, len, "%lldd", secs / 86400);
	return buf;
}

/* The text form: a summary line, then from, to, and the last reply. */
static void
qa_print_text(FILE *out, const struct qa_entry *e, time_t now)
{
	const struct envelope	*env = &e->env;
	char			 age[32], next[48];
	size_t			 i;

	if (e->error[0] != '\0') {
		fprintf(out, "%s  (unreadable: %s)\n", e->id, e->error);
		if (e->reason[0] != '\0')
			fprintf(out, "    reason: %s\n", e->reason);
		return;
	}
	if (strcmp(e->sub, "failed") == 0)
		snprintf(next, sizeof(next), "failed");
	else if (e->relaying)
		snprintf(next, sizeof(next), "relaying now");
	else if (env->next_attempt <= now)
		snprintf(next, sizeof(next), "next: now");
	else
		snprintf(next, sizeof(next), "next: in %s",
		    qa_duration((long long)(env->next_attempt - now), age,
		    sizeof(age)));
	fprintf(out, "%s  %lld bytes  age %s  attempts %u  %s%s\n", e->id,
	    e->size, qa_duration((long long)(now - env->submitted), age,
	    sizeof(age)), env->attempts, next,
	    e->delete_requested ? "  (delete requested)" : "");
	/* Gmail may have it: the reply to the final dot never came. */
	if (env->state == ENVELOPE_UNCERTAIN)
		fprintf(out, "    state: uncertain since %s ago (no reply "
		    "after the message was sent; retried with the same "
		    "bytes)\n", qa_duration((long long)(now -
		    env->uncertain_since), age, sizeof(age)));
	fprintf(out, "    from: %s\n", env->sender[0] ? env->sender : "<>");
	for (i = 0; i < env->nrcpt; i++)
		fprintf(out, "    to: %s\n", env->rcpt[i]);
	if (e->reason[0] != '\0')
		fprintf(out, "    reason: %s\n", e->reason);
	else if (env->last_reply[0] != '\0')
		fprintf(out, "    %s: %s\n", strcmp(e->sub, "failed") == 0 ?
		    "reason" : "last reply", env->last_reply);
}

/* s as a JSON string, with quotes. */
static void
qa_json_str(FILE *out, const char *s)
{
	const unsigned char	*p;

	fputc('"', out);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* One JSON object on one line. */
static void
qa_print_json(FILE *out, const struct qa_entry *e, time_t now)
{
	const struct envelope	*env = &e->env;
	size_t			 i;

	fprintf(out, "{\"queue\":");
	qa_json_str(out, e->sub);
	fprintf(out, ",\"id\":");
	qa_json_str(out, e->id);
	fprintf(out, ",\"size\":%lld,\"relaying\":%s,\"delete_requested\":%s",
	    e->size, e->relaying ? "true" : "false",
	    e->delete_requested ? "true" : "false");
	if (e->reason[0] != '\0') {
		fprintf(out, ",\"reason\":");
		qa_json_str(out, e->reason);
	}
	if (e->error[0] != '\0') {
		fprintf(out, ",\"error\":");
		qa_json_str(out, e->error);
		fprintf(out, "}\n");
		return;
	}
	fprintf(out, ",\"sender\":");
	qa_json_str(out, env->sender);
	fprintf(out, ",\"recipients\":[");
	for (i = 0; i < env->nrcpt; i++) {
		if (i > 0)
			fputc(',', out);
		qa_json_str(out, env->rcpt[i]);
	}
	fprintf(out, "],\"submitted\":%lld,\"age\":%lld,\"uid\":%u,"
	    "\"attempts\":%u,\"next_attempt\":%lld,\"last_reply\":",
	    (long long)env->submitted, (long long)(now - env->submitted),
	    (unsigned)env->uid, env->attempts, (long long)env->next_attempt);
	qa_json_str(out, env->last_reply);
	fprintf(out, ",\"state\":");
	qa_json_str(out, envelope_state_name(env->state));
	if (env->state == ENVELOPE_UNCERTAIN)
		fprintf(out, ",\"uncertain_since\":%lld",
		    (long long)env->uncertain_since);
	fprintf(out, "}\n");
}

/* Explain why the queue cannot be read; the exit status. */
static int
qa_unreadable(const char *queue_dir, const char *path)
{
	int	 e = errno;

	fprintf(stderr, "relayq: cannot read the queue %s: %s\n", path,
	    strerror(e));
	if (e == EACCES || e == EPERM) {
		fprintf(stderr, "relayq: the queue belongs to relayqd's user; "
		    "run this as root or as that user (sudo -u relayq relayq "
		    "--list)\n");
		return EX_NOPERM;
	}
	if (e == ENOENT)
		fprintf(stderr, "relayq: no queue at %s (see --queue-dir)\n",
		    queue_dir);
	return EX_NOINPUT;
}

/* List one of queue/ or failed/; -1 (errno) when it cannot be read. */
static int
qa_list_sub(const char *queue_dir, const char *sub, bool json, FILE *out,
    size_t *count)
{
	struct qa_entry	 e;
	char		 path[QA_PATH_MAX];
	char		**names;
	size_t		 i, n;
	time_t		 now = time(NULL);

	snprintf(path, sizeof(path), "%s/%s", queue_dir, sub);
	if ((names = qa_names(path, &n)) == NULL)
		return -1;
	if (!json)
		fprintf(out, "%s/: %zu %s\n", sub, n,
		    n == 1 ? "entry" : "entries");
	for (i = 0; i < n; i++) {
		memset(&e, 0, sizeof(e));
		envelope_init(&e.env);
		e.sub = sub;
		e.id = names[i];
		qa_entry_load(queue_dir, &e);
		if (json)
			qa_print_json(out, &e, now);
		else
			qa_print_text(out, &e, now);
		envelope_fini(&e.env);
	}
	*count += n;
	qa_names_free(names, n);
	return 0;
}

/* relayq --list / --json. */
int
queue_admin_list(const char *queue_dir, bool json, FILE *out)
{
	char	 path[QA_PATH_MAX];
	size_t	 i, count = 0;

	for (i = 0; i < nitems(qa_subdirs); i++) {
		if (qa_list_sub(queue_dir, qa_subdirs[i], json, out,
		    &count) == -1) {
			snprintf(path, sizeof(path), "%s/%s", queue_dir,
			    qa_subdirs[i]);
			return qa_unreadable(queue_dir, path);
		}
	}
	fflush(out);
	return EX_OK;
}

/* An ID is a single harmless path component. */
static bool
qa_id_ok(const char *id)
{
	size_t	 len = strlen(id);

	return len > 0 && len < ENVELOPE_ID_MAX && id[0] != '.' &&
	    strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789.-_") == len;
}

/* Unlink every file in the locked entry at fd; 0 or -1 (errno). */
static int
qa_empty(int fd)
{
	struct dirent	*de;
	DIR		*dp;
	int		 dfd, rc = 0;

	if ((dfd = dup(fd)) == -1)
		return -1;
	if ((dp = fdopendir(dfd)) == NULL) {
		close(dfd);
		return -1;
	}
	while (rc == 0 && (de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == -1 && errno != ENOENT)
			rc = -1;
	}
	closedir(dp);
	return rc;
}

/* Remove <sub>/<id> while holding its lock, durably. */
static int
qa_remove(const char *parent, int fd, const char *id)
{
	int	 pfd, rc = -1;

	if ((pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if (qa_empty(fd) == 0 && fsync(fd) == 0 &&
	    unlinkat(pfd, id, AT_REMOVEDIR) == 0 && fsync(pfd) == 0)
		rc = 0;
	close(pfd);
	return rc;
}

/* The entry is being relayed: leave the DELETE marker for the scheduler. */
static int
qa_mark(int fd)
{
	int	 mfd, rc = 0;

	if ((mfd = openat(fd, "DELETE", O_WRONLY | O_CREAT | O_CLOEXEC,
	    0600)) == -1)
		return -1;
	if (fsync(mfd) == -1)
		rc = -1;
	close(mfd);
	if (rc == 0 && fsync(fd) == -1)
		rc = -1;
	return rc;
}

/* Delete or mark <queue_dir>/<sub>/<id>, open at fd; the exit status. */
static int
qa_delete_at(const char *queue_dir, const char *sub, int fd, const char *id,
    FILE *out)
{
	char	 parent[QA_PATH_MAX];

	snprintf(parent, sizeof(parent), "%s/%s", queue_dir, sub);
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK)
			goto fail;
		if (qa_mark(fd) == -1)
			goto fail;
		fprintf(out, "%s is being relayed; it will be removed when "
		    "that attempt ends\n", id);
		return EX_OK;
	}
	if (qa_remove(parent, fd, id) == -1)
		goto fail;
	fprintf(out, "%s deleted from %s/\n", id, sub);
	return EX_OK;
fail:
	fprintf(stderr, "relayq: deleting %s/%s: %s\n", parent, id,
	    strerror(errno));
	return errno == EACCES || errno == EPERM ? EX_NOPERM : EX_IOERR;
}

/* relayq --delete ID: from queue/ or failed/. */
int
queue_admin_delete(const char *queue_dir, const char *id, FILE *out)
{
	char	 path[QA_PATH_MAX];
	size_t	 i;
	int	 fd, rc;

	if (!qa_id_ok(id)) {
		fprintf(stderr, "relayq: \"%s\" is not a queue ID\n", id);
		return EX_USAGE;
	}
	for (i = 0; i < nitems(qa_subdirs); i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", queue_dir,
		    qa_subdirs[i], id);
		fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (fd == -1 && errno == ENOENT)
			continue;
		if (fd == -1) {
			snprintf(path, sizeof(path), "%s/%s", queue_dir,
			    qa_subdirs[i]);
			return qa_unreadable(queue_dir, path);
		}
		rc = qa_delete_at(queue_dir, qa_subdirs[i], fd, id, out);
		close(fd);
		fflush(out);
		return rc;
	}
	snprintf(path, sizeof(path), "%s/queue", queue_dir);
	if (access(path, X_OK) == -1)
		return qa_unreadable(queue_dir, path);
	fprintf(stderr, "relayq: no entry %s in %s/queue or %s/failed\n", id,
	    queue_dir, queue_dir);
	return EX_NOINPUT;
}

/* Read one whole reply into buf (lines joined); its code, or -1. */
static int
qa_reply(int fd, char *buf, size_t len)
{
	size_t	 n = 0, start = 0;
	ssize_t	 r;
	char	 c;

	for (;;) {
		if ((r = read(fd, &c, 1)) == -1 && errno == EINTR)
			continue;
		if (r != 1 || n + 1 >= len)
			return -1;
		buf[n++] = c;
		if (c != '\n')
			continue;
		/* "NNN " ends the reply; "NNN-" continues it. */
		if (n - start >= 4 && buf[start + 3] == ' ') {
			buf[n] = '\0';
			return atoi(buf + start);
		}
		if (n - start < 4 || buf[start + 3] != '-')
			return -1;
		start = n;
	}
}

/* Send a command and read its reply, showing both; the code or -1. */
static int
qa_cmd(int fd, const char *cmd, char *buf, size_t len, FILE *out)
{
	char	 line[64];
	char	*p, *eol;
	int	 code;

	if (cmd != NULL) {
		snprintf(line, sizeof(line), "%s\r\n", cmd);
		fprintf(out, "C: %s\n", cmd);
		if (write_all(fd, line, strlen(line)) == -1)
			return -1;
	}
	if ((code = qa_reply(fd, buf, len)) == -1)
		return -1;
	for (p = buf; *p != '\0'; p = eol + 1) {
		if ((eol = strchr(p, '\n')) == NULL)
			break;
		fprintf(out, "S: %.*s\n", (int)(eol - p -
		    (eol > p && eol[-1] == '\r')), p);
	}
	return code;
}

/* relayq --flush: ETRN. */
int
queue_admin_flush(const char *path, FILE *out)
{
	struct timeval	 tv = { QA_FLUSH_TIMEOUT, 0 };
	char		 buf[2048];
	int		 fd, code = -1, rc = EX_TEMPFAIL;

	if ((fd = submit_connect(path)) == -1) {
		fprintf(stderr, "relayq: cannot connect to %s: %s\n"
		    "relayq: is relayqd running?\n", path, strerror(errno));
		return EX_UNAVAILABLE;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (qa_cmd(fd, NULL, buf, sizeof(buf), out) == 220 &&
	    qa_cmd(fd, "EHLO relayq", buf, sizeof(buf), out) == 250)
		code = qa_cmd(fd, "ETRN", buf, sizeof(buf), out);
	if (code == 250)
		rc = EX_OK;
	else if (code == 530) {
		fprintf(stderr, "relayq: relayqd takes a flush only from root "
		    "or its own user\n");
		rc = EX_NOPERM;
	} else
		fprintf(stderr, "relayq: the flush was not accepted\n");
	(void)qa_cmd(fd, "QUIT", buf, sizeof(buf), out);
	close(fd);
	fflush(out);
	return rc;
}
