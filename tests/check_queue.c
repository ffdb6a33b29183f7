/*
 * check_queue.c: the durable store on a fresh mkdtemp directory per test:
 * what a commit leaves on disk (files, modes, bytes), that an abort or a
 * failed write leaves nothing, the tmp/ purge, scan order, envelope
 * updates, remove, fail, quarantine, the refusal of writable directories
 * and the credentials file (gone once an entry is in failed/), the entry
 * check before scheduling, the relay lock and the DELETE marker; which
 * errno values mean a bad entry and which a local condition that passes
 * (out of descriptors: EMFILE from every reader, never EINVAL).  The
 * async commit (group commit on worker threads): its completions, each
 * exactly once and never within the call; ENOSPC on a full tmpfs; and
 * queue_async_stop running the completions of commits still in flight.
 */
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "check_relayq.h"
#include "envelope.h"
#include "queue.h"
#include "sasl.h"

#define USER	"alice@example.com"
#define PASS	"hunter2-Secret!pw"
#define MSG	"Subject: hi\r\n\r\n.leading dot kept as is\r\nbody\r\n"

static char	 tmpdir[] = "/tmp/relayq-check-queue-XXXXXX";
static char	 qdir[sizeof(tmpdir) + 8];

/* nftw callback that removes one entry. */
static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A fresh directory for each test; the queue lives in <tmp>/q. */
static void
setup(void)
{
	strcpy(tmpdir, "/tmp/relayq-check-queue-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(qdir, sizeof(qdir), "%s/q", tmpdir);
}

/* Remove the test's directory tree (and a tmpfs a test mounted on q). */
static void
teardown(void)
{
	umount2(qdir, MNT_DETACH);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Build "<qdir>/<a>[/<b>]" into a static buffer. */
static const char *
qpath(const char *a, const char *b)
{
	static char	 buf[4][512];
	static int	 i;

	i = (i + 1) % 4;
	if (b == NULL)
		snprintf(buf[i], sizeof(buf[i]), "%s/%s", qdir, a);
	else
		snprintf(buf[i], sizeof(buf[i]), "%s/%s/%s", qdir, a, b);
	return buf[i];
}

/* Number of entries in a directory, "." and ".." not counted. */
static int
count_entries(const char *path)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	d = opendir(path);
	ck_assert_msg(d != NULL, "opendir %s: %s", path, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * The entries of tmp/ that are submissions: not the empty ones the
 * workers keep ready (.prep-<ID>).
 */
static int
count_tmp(void)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	d = opendir(qpath("tmp", NULL));
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The whole file as a NUL-terminated string; its length in *len. */
static char *
slurp(const char *path, size_t *len)
{
	FILE	*fp;
	char	*buf;
	long	 n;

	fp = fopen(path, "r");
	ck_assert_msg(fp != NULL, "fopen %s: %s", path, strerror(errno));
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

/* The permission bits of path. */
static unsigned
mode_of(const char *path)
{
	struct stat	 st;

	ck_assert_msg(lstat(path, &st) == 0, "%s: %s", path, strerror(errno));
	return (unsigned)(st.st_mode & 07777);
}

/* Open the fixture's queue, failing the test if that is refused. */
static struct queue *
open_queue(void)
{
	struct queue	*q;
	char		 err[256] = "";

	q = queue_open(qdir, err, sizeof(err));
	ck_assert_msg(q != NULL, "queue_open: %s", err);
	return q;
}

/* A two-recipient envelope as the server would fill it. */
static void
make_env(struct envelope *env)
{
	envelope_init(env);
	strcpy(env->sender, "alice@example.com");
	envelope_add_rcpt(env, "bob@example.com");
	envelope_add_rcpt(env, "carol@example.org");
	env->submitted = 1795705294;
	env->uid = 1000;
	env->next_attempt = 1795705294;
}

/* The test account. */
static void
make_cred(struct sasl_cred *cred)
{
	memset(cred, 0, sizeof(*cred));
	strcpy(cred->user, USER);
	strcpy(cred->pass, PASS);
}

/* Receive and commit MSG; the new ID is copied into id. */
static void
commit_one(struct queue *q, char *id, size_t idlen)
{
	struct queue_tx	*tx;
	struct envelope	 env;
	struct sasl_cred cred;

	make_env(&env);
	make_cred(&cred);
	tx = queue_tx_begin(q);
	ck_assert_ptr_nonnull(tx);
	ck_assert_int_eq(queue_tx_write(tx, MSG, 13), 0);
	ck_assert_int_eq(queue_tx_write(tx, &MSG[13], strlen(MSG) - 13), 0);
	snprintf(id, idlen, "%s", queue_tx_id(tx));
	ck_assert_int_eq(queue_tx_commit(tx, &env, &cred), 0);
	ck_assert_str_eq(env.id, id);
	envelope_fini(&env);
}

/* A commit leaves queue/<ID> with the three files, modes and bytes. */
START_TEST(test_queue_commit_files)
{
	struct queue	*q;
	struct envelope	 env;
	char		 id[ENVELOPE_ID_MAX], err[256], *text;
	size_t		 len;

	q = open_queue();
	ck_assert_uint_eq(mode_of(qdir), 0700);
	ck_assert_uint_eq(mode_of(qpath("tmp", NULL)), 0700);
	ck_assert_uint_eq(mode_of(qpath("queue", NULL)), 0700);
	ck_assert_uint_eq(mode_of(qpath("failed", NULL)), 0700);
	commit_one(q, id, sizeof(id));

	ck_assert_int_eq(count_tmp(), 0);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 1);
	ck_assert_int_eq(count_entries(qpath("queue", id)), 3);
	ck_assert_uint_eq(mode_of(qpath("queue", id)), 0700);
	snprintf(err, sizeof(err), "%s/message.eml", id);
	ck_assert_uint_eq(mode_of(qpath("queue", err)), 0600);
	text = slurp(qpath("queue", err), &len);
	ck_assert_uint_eq(len, strlen(MSG));
	ck_assert_mem_eq(text, MSG, len);
	free(text);
	snprintf(err, sizeof(err), "%s/envelope", id);
	ck_assert_uint_eq(mode_of(qpath("queue", err)), 0600);
	snprintf(err, sizeof(err), "%s/credentials", id);
	ck_assert_uint_eq(mode_of(qpath("queue", err)), 0600);

	ck_assert_msg(queue_load(q, id, &env, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(env.id, id);
	ck_assert_str_eq(env.sender, "alice@example.com");
	ck_assert_uint_eq(env.nrcpt, 2);
	ck_assert_str_eq(env.rcpt[0], "bob@example.com");
	ck_assert_str_eq(env.rcpt[1], "carol@example.org");
	ck_assert_int_eq(env.uid, 1000);
	ck_assert_uint_eq(env.attempts, 0);
	ck_assert_int_eq(env.state, ENVELOPE_QUEUED);
	envelope_fini(&env);
	queue_close(q);
}
END_TEST

/* IDs look like 20261127T021934.123456-4f9a2c1b. */
START_TEST(test_queue_id_format)
{
	struct queue	*q;
	struct queue_tx	*tx;
	const char	*id;
	size_t		 i;

	q = open_queue();
	tx = queue_tx_begin(q);
	ck_assert_ptr_nonnull(tx);
	id = queue_tx_id(tx);
	ck_assert_uint_eq(strlen(id), 31);
	for (i = 0; i < 31; i++) {
		if (i == 8)
			ck_assert_int_eq(id[i], 'T');
		else if (i == 15)
			ck_assert_int_eq(id[i], '.');
		else if (i == 22)
			ck_assert_int_eq(id[i], '-');
		else if (i > 22)
			ck_assert_ptr_nonnull(strchr("0123456789abcdef", id[i]));
		else
			ck_assert_ptr_nonnull(strchr("0123456789", id[i]));
	}
	ck_assert_int_eq(access(qpath("tmp", id), F_OK), 0);
	queue_tx_abort(tx);
	queue_close(q);
}
END_TEST

/* An abort removes tmp/<ID>; nothing reaches queue/. */
START_TEST(test_queue_abort_leaves_nothing)
{
	struct queue	*q;
	struct queue_tx	*tx;

	q = open_queue();
	tx = queue_tx_begin(q);
	ck_assert_ptr_nonnull(tx);
	ck_assert_int_eq(queue_tx_write(tx, MSG, strlen(MSG)), 0);
	ck_assert_int_eq(count_tmp(), 1);
	queue_tx_abort(tx);
	queue_tx_abort(NULL);
	ck_assert_int_eq(count_tmp(), 0);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 0);
	queue_close(q);
}
END_TEST

/* A commit that cannot write the envelope fails and leaves nothing. */
START_TEST(test_queue_commit_failure_cleans)
{
	struct queue	*q;
	struct queue_tx	*tx;
	struct envelope	 env;
	struct sasl_cred cred;

	q = open_queue();
	envelope_init(&env);		/* no recipient: not dumpable */
	make_cred(&cred);
	tx = queue_tx_begin(q);
	ck_assert_ptr_nonnull(tx);
	ck_assert_int_eq(queue_tx_write(tx, MSG, strlen(MSG)), 0);
	errno = 0;
	ck_assert_int_eq(queue_tx_commit(tx, &env, &cred), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(count_tmp(), 0);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 0);
	queue_close(q);
}
END_TEST

/*
 * A write error (here EFBIG from RLIMIT_FSIZE, standing in for ENOSPC)
 * sticks, keeps its errno through the commit, and leaves nothing.
 */
START_TEST(test_queue_write_error_sticky)
{
	struct queue	*q;
	struct queue_tx	*tx;
	struct envelope	 env;
	struct sasl_cred cred;
	struct rlimit	 rl, saved;
	static char	 big[100 * 1024];
	int		 rc, e;

	q = open_queue();
	make_env(&env);
	make_cred(&cred);
	memset(big, 'x', sizeof(big));
	signal(SIGXFSZ, SIG_IGN);
	tx = queue_tx_begin(q);
	ck_assert_ptr_nonnull(tx);
	/* Only the soft limit, and only around the write: Check writes too. */
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
	rl = saved;
	rl.rlim_cur = 4096;
	setrlimit(RLIMIT_FSIZE, &rl);
	errno = 0;
	rc = queue_tx_write(tx, big, sizeof(big));
	e = errno;
	setrlimit(RLIMIT_FSIZE, &saved);
	ck_assert_int_eq(rc, -1);
	ck_assert_int_eq(e, EFBIG);
	errno = 0;
	ck_assert_int_eq(queue_tx_write(tx, "a\r\n", 3), -1);
	ck_assert_int_eq(errno, EFBIG);
	errno = 0;
	ck_assert_int_eq(queue_tx_commit(tx, &env, &cred), -1);
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_int_eq(count_tmp(), 0);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 0);
	envelope_fini(&env);
	queue_close(q);
}
END_TEST

/* Many small writes and one large one come out byte for byte. */
START_TEST(test_queue_write_buffering)
{
	struct queue	*q;
	struct queue_tx	*tx;
	struct envelope	 env;
	struct sasl_cred cred;
	static char	 want[300 * 1024];
	char		 id[ENVELOPE_ID_MAX], path[128], *got;
	size_t		 i, off, n, len;

	for (i = 0; i < sizeof(want); i++)
		want[i] = (char)('a' + i % 26);
	q = open_queue();
	make_env(&env);
	make_cred(&cred);
	tx = queue_tx_begin(q);
	ck_assert_ptr_nonnull(tx);
	for (off = 0; off < 100000; off += n) {
		n = 1 + off % 77;
		ck_assert_int_eq(queue_tx_write(tx, want + off, n), 0);
	}
	ck_assert_int_eq(queue_tx_write(tx, want + off, 150000), 0);
	off += 150000;
	ck_assert_int_eq(queue_tx_write(tx, want + off, sizeof(want) - off), 0);
	snprintf(id, sizeof(id), "%s", queue_tx_id(tx));
	ck_assert_int_eq(queue_tx_commit(tx, &env, &cred), 0);
	snprintf(path, sizeof(path), "%s/message.eml", id);
	got = slurp(qpath("queue", path), &len);
	ck_assert_uint_eq(len, sizeof(want));
	ck_assert_mem_eq(got, want, len);
	free(got);
	envelope_fini(&env);
	queue_close(q);
}
END_TEST

/* Whatever is left in tmp/ (entries are directories) goes at open. */
START_TEST(test_queue_open_purges_tmp)
{
	struct queue	*q;
	char		 id[ENVELOPE_ID_MAX];
	FILE		*fp;

	q = open_queue();
	commit_one(q, id, sizeof(id));
	queue_close(q);
	ck_assert_int_eq(mkdir(qpath("tmp", "20260101T000000.000001-deadbeef"),
	    0700), 0);
	fp = fopen(qpath("tmp", "20260101T000000.000001-deadbeef/message.eml"),
	    "w");
	ck_assert_ptr_nonnull(fp);
	fputs("half a message", fp);
	fclose(fp);
	fp = fopen(qpath("tmp", "stray"), "w");
	ck_assert_ptr_nonnull(fp);
	fclose(fp);
	ck_assert_int_eq(count_tmp(), 2);

	q = open_queue();
	ck_assert_int_eq(count_tmp(), 0);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 1);
	ck_assert_int_eq(access(qpath("queue", id), F_OK), 0);
	queue_close(q);
}
END_TEST

struct scan_result {
	char	 names[8][ENVELOPE_ID_MAX];
	size_t	 n;
};

/* queue_scan callback: record each name. */
static void
scan_cb(const char *id, void *arg)
{
	struct scan_result	*r = arg;

	ck_assert_uint_lt(r->n, 8);
	snprintf(r->names[r->n++], ENVELOPE_ID_MAX, "%s", id);
}

/* scan reports names in sorted order and skips dot files. */
START_TEST(test_queue_scan_order)
{
	struct queue		*q;
	struct scan_result	 r;
	char			 id[3][ENVELOPE_ID_MAX];
	size_t			 i;

	q = open_queue();
	for (i = 0; i < 3; i++)
		commit_one(q, id[i], sizeof(id[i]));
	ck_assert_int_eq(mkdir(qpath("queue", "20000101T000000.000000-00000001"),
	    0700), 0);
	ck_assert_int_eq(mkdir(qpath("queue", "30000101T000000.000000-00000001"),
	    0700), 0);
	ck_assert_int_eq(mkdir(qpath("queue", ".hidden"), 0700), 0);
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(queue_scan(q, scan_cb, &r), 0);
	ck_assert_uint_eq(r.n, 5);
	ck_assert_str_eq(r.names[0], "20000101T000000.000000-00000001");
	ck_assert_str_eq(r.names[4], "30000101T000000.000000-00000001");
	for (i = 0; i + 1 < r.n; i++)
		ck_assert_int_lt(strcmp(r.names[i], r.names[i + 1]), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_msg(strcmp(r.names[1], id[i]) == 0 ||
		    strcmp(r.names[2], id[i]) == 0 ||
		    strcmp(r.names[3], id[i]) == 0, "%s not scanned", id[i]);
	}
	queue_close(q);
}
END_TEST

/* update replaces the envelope; it reads back and no temp file stays. */
START_TEST(test_queue_update)
{
	struct queue	*q;
	struct envelope	 env;
	char		 id[ENVELOPE_ID_MAX], err[256], path[128];

	q = open_queue();
	commit_one(q, id, sizeof(id));
	ck_assert_msg(queue_load(q, id, &env, err, sizeof(err)) == 0, "%s", err);
	env.attempts = 3;
	env.next_attempt = 1795709999;
	strcpy(env.last_reply, "421 4.7.0 Try again later");
	ck_assert_int_eq(queue_update(q, &env), 0);
	envelope_fini(&env);
	snprintf(path, sizeof(path), "%s/envelope.tmp", id);
	ck_assert_int_eq(access(qpath("queue", path), F_OK), -1);
	snprintf(path, sizeof(path), "%s/envelope", id);
	ck_assert_uint_eq(mode_of(qpath("queue", path)), 0600);
	ck_assert_msg(queue_load(q, id, &env, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(env.attempts, 3);
	ck_assert_int_eq(env.next_attempt, 1795709999);
	ck_assert_str_eq(env.last_reply, "421 4.7.0 Try again later");
	ck_assert_uint_eq(env.nrcpt, 2);
	envelope_fini(&env);
	queue_close(q);
}
END_TEST

/* load refuses an envelope whose id is not the entry's name. */
START_TEST(test_queue_load_id_mismatch)
{
	struct queue	*q;
	struct envelope	 env;
	char		 id[ENVELOPE_ID_MAX], err[512];

	q = open_queue();
	commit_one(q, id, sizeof(id));
	ck_assert_int_eq(rename(qpath("queue", id),
	    qpath("queue", "20000101T000000.000000-00000001")), 0);
	ck_assert_int_eq(queue_load(q, "20000101T000000.000000-00000001", &env,
	    err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "id: does not match") != NULL, "%s", err);
	ck_assert_int_eq(queue_load(q, "../x", &env, err, sizeof(err)), -1);
	queue_close(q);
}
END_TEST

/* remove deletes the entry directory. */
START_TEST(test_queue_remove)
{
	struct queue	*q;
	char		 id[ENVELOPE_ID_MAX], id2[ENVELOPE_ID_MAX];

	q = open_queue();
	commit_one(q, id, sizeof(id));
	commit_one(q, id2, sizeof(id2));
	ck_assert_int_eq(queue_remove(q, id), 0);
	ck_assert_int_eq(access(qpath("queue", id), F_OK), -1);
	ck_assert_int_eq(access(qpath("queue", id2), F_OK), 0);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 1);
	ck_assert_int_eq(count_tmp(), 0);
	errno = 0;
	ck_assert_int_eq(queue_remove(q, id), -1);
	ck_assert_int_eq(errno, ENOENT);
	queue_close(q);
}
END_TEST

/*
 * A removal cut short by a crash (the entry renamed to queue/.<ID>, some
 * files gone) is invisible to the scan and finished by queue_open.
 */
START_TEST(test_queue_remove_crash_leftover)
{
	struct queue		*q;
	struct scan_result	 r;
	char			 id[ENVELOPE_ID_MAX], gone[600], path[700];

	q = open_queue();
	commit_one(q, id, sizeof(id));
	snprintf(gone, sizeof(gone), "%s/.%s", qpath("queue", NULL), id);
	ck_assert_int_eq(rename(qpath("queue", id), gone), 0);
	snprintf(path, sizeof(path), "%s/credentials", gone);
	ck_assert_int_eq(unlink(path), 0);
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(queue_scan(q, scan_cb, &r), 0);
	ck_assert_uint_eq(r.n, 0);
	queue_close(q);
	q = open_queue();
	ck_assert_int_eq(access(gone, F_OK), -1);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 0);
	queue_close(q);
}
END_TEST

/* fail moves the entry to failed/ with state failed and the reply. */
START_TEST(test_queue_fail)
{
	struct queue	*q;
	struct envelope	 env;
	char		 id[ENVELOPE_ID_MAX], err[256], path[128], *text;

	q = open_queue();
	commit_one(q, id, sizeof(id));
	ck_assert_msg(queue_load(q, id, &env, err, sizeof(err)) == 0, "%s", err);
	strcpy(env.last_reply, "550 5.1.1 No such user");
	ck_assert_int_eq(queue_fail(q, &env), 0);
	ck_assert_int_eq(env.state, ENVELOPE_QUEUED);	/* caller's copy */
	envelope_fini(&env);
	ck_assert_int_eq(access(qpath("queue", id), F_OK), -1);
	/* envelope and message.eml: the password does not go to failed/. */
	ck_assert_int_eq(count_entries(qpath("failed", id)), 2);
	snprintf(path, sizeof(path), "%s/credentials", id);
	errno = 0;
	ck_assert_int_eq(access(qpath("failed", path), F_OK), -1);
	ck_assert_int_eq(errno, ENOENT);
	snprintf(path, sizeof(path), "%s/envelope", id);
	text = slurp(qpath("failed", path), NULL);
	ck_assert_ptr_nonnull(strstr(text, "\nstate: failed\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "\nlast-reply: 550 5.1.1 No such user\n"));
	free(text);
	snprintf(path, sizeof(path), "%s/message.eml", id);
	ck_assert_uint_eq(mode_of(qpath("failed", path)), 0600);
	queue_close(q);
}
END_TEST

/* quarantine moves a bad dir (with REASON) and a stray file to failed/. */
START_TEST(test_queue_quarantine)
{
	struct queue	*q;
	FILE		*fp;
	char		*text;

	q = open_queue();
	ck_assert_int_eq(mkdir(qpath("queue", "baddir"), 0700), 0);
	fp = fopen(qpath("queue", "stray"), "w");
	ck_assert_ptr_nonnull(fp);
	fclose(fp);
	ck_assert_int_eq(queue_quarantine(q, "baddir",
	    "q/queue/baddir/envelope: No such file or directory"), 0);
	ck_assert_int_eq(queue_quarantine(q, "stray", "not a directory"), 0);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 0);
	ck_assert_int_eq(access(qpath("failed", "stray"), F_OK), 0);
	text = slurp(qpath("failed", "baddir/REASON"), NULL);
	ck_assert_str_eq(text,
	    "q/queue/baddir/envelope: No such file or directory\n");
	free(text);
	ck_assert_int_eq(queue_quarantine(q, "../failed", "x"), -1);
	queue_close(q);
}
END_TEST

/* A quarantined complete entry keeps its message but not the password. */
START_TEST(test_queue_quarantine_drops_credentials)
{
	struct queue	*q;
	char		 id[ENVELOPE_ID_MAX], path[128];

	q = open_queue();
	commit_one(q, id, sizeof(id));
	ck_assert_int_eq(queue_quarantine(q, id, "unknown key"), 0);
	snprintf(path, sizeof(path), "%s/credentials", id);
	ck_assert_int_eq(access(qpath("failed", path), F_OK), -1);
	snprintf(path, sizeof(path), "%s/message.eml", id);
	ck_assert_int_eq(access(qpath("failed", path), F_OK), 0);
	snprintf(path, sizeof(path), "%s/REASON", id);
	ck_assert_int_eq(access(qpath("failed", path), F_OK), 0);
	ck_assert_int_eq(count_entries(qpath("failed", id)), 3);
	queue_close(q);
}
END_TEST

/* How each queue_check case damages a fresh entry. */
enum check_damage {
	CHECK_NONE,
	CHECK_NO_MESSAGE,
	CHECK_NO_CREDENTIALS,
	CHECK_NO_ENVELOPE,
	CHECK_MESSAGE_IS_DIR,
	CHECK_STALE_TMP,
	CHECK_STRAY_FILE,
	CHECK_GONE
};

static const struct {
	enum check_damage	 damage;
	int			 rc;
	int			 errnum;	/* when rc is -1 */
	const char		*err;		/* substring, when rc is -1 */
} check_cases[] = {
	{ CHECK_NONE,		 0, 0,		NULL },
	{ CHECK_NO_MESSAGE,	-1, EINVAL,	"/message.eml: missing" },
	{ CHECK_NO_CREDENTIALS,	-1, EINVAL,	"/credentials: missing" },
	{ CHECK_NO_ENVELOPE,	-1, EINVAL,	"/envelope: missing" },
	{ CHECK_MESSAGE_IS_DIR,	-1, EINVAL,
	    "/message.eml: not a regular file" },
	{ CHECK_STALE_TMP,	 0, 0,		NULL },
	{ CHECK_STRAY_FILE,	-1, ENOTDIR,	": not an entry directory" },
	{ CHECK_GONE,		-1, ENOENT,	"No such file" }
};

/* Apply one damage to queue/<id>; the name to check goes into id. */
static void
damage_entry(enum check_damage damage, char *id, size_t idlen)
{
	char	 path[128];
	FILE	*fp;

	switch (damage) {
	case CHECK_NONE:
		return;
	case CHECK_NO_MESSAGE:
	case CHECK_MESSAGE_IS_DIR:
		snprintf(path, sizeof(path), "%s/message.eml", id);
		ck_assert_int_eq(unlink(qpath("queue", path)), 0);
		if (damage == CHECK_MESSAGE_IS_DIR)
			ck_assert_int_eq(mkdir(qpath("queue", path), 0700), 0);
		return;
	case CHECK_NO_CREDENTIALS:
		snprintf(path, sizeof(path), "%s/credentials", id);
		ck_assert_int_eq(unlink(qpath("queue", path)), 0);
		return;
	case CHECK_NO_ENVELOPE:
		snprintf(path, sizeof(path), "%s/envelope", id);
		ck_assert_int_eq(unlink(qpath("queue", path)), 0);
		return;
	case CHECK_STALE_TMP:
		snprintf(path, sizeof(path), "%s/envelope.tmp", id);
		fp = fopen(qpath("queue", path), "w");
		ck_assert_ptr_nonnull(fp);
		fputs("version: 1\nid: half", fp);
		fclose(fp);
		return;
	case CHECK_STRAY_FILE:
		snprintf(id, idlen, "stray.txt");
		fp = fopen(qpath("queue", id), "w");
		ck_assert_ptr_nonnull(fp);
		fclose(fp);
		return;
	case CHECK_GONE:
		snprintf(id, idlen, "20260101T000000.000000-00000000");
		return;
	}
}

/* queue_check accepts a complete entry and names what is wrong. */
START_TEST(test_queue_check)
{
	struct queue	*q;
	char		 id[ENVELOPE_ID_MAX], err[512] = "", path[128];
	int		 rc;

	q = open_queue();
	commit_one(q, id, sizeof(id));
	damage_entry(check_cases[_i].damage, id, sizeof(id));
	errno = 0;
	rc = queue_check(q, id, err, sizeof(err));
	ck_assert_int_eq(rc, check_cases[_i].rc);
	if (rc == -1) {
		ck_assert_int_eq(errno, check_cases[_i].errnum);
		ck_assert_msg(strstr(err, check_cases[_i].err) != NULL,
		    "case %d: %s", _i, err);
		ck_assert_msg(strstr(err, id) != NULL, "no name: %s", err);
	}
	snprintf(path, sizeof(path), "%s/envelope.tmp", id);
	ck_assert_int_eq(access(qpath("queue", path), F_OK), -1);
	ck_assert(queue_exists(q, id) ==
	    (check_cases[_i].damage != CHECK_GONE));
	queue_close(q);
}
END_TEST

/* The relay lock excludes a second holder until it is released. */
START_TEST(test_queue_lock)
{
	struct queue	*q;
	char		 id[ENVELOPE_ID_MAX];
	int		 fd, fd2, other;

	q = open_queue();
	commit_one(q, id, sizeof(id));
	fd = queue_lock(q, id);
	ck_assert_int_ge(fd, 0);
	errno = 0;
	ck_assert_int_eq(queue_lock(q, id), -1);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	/* What relayq --delete does, from another open file description. */
	other = open(qpath("queue", id), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(other, 0);
	errno = 0;
	ck_assert_int_eq(flock(other, LOCK_EX | LOCK_NB), -1);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	queue_unlock(fd);
	ck_assert_int_eq(flock(other, LOCK_EX | LOCK_NB), 0);
	errno = 0;
	ck_assert_int_eq(queue_lock(q, id), -1);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	close(other);
	fd2 = queue_lock(q, id);
	ck_assert_int_ge(fd2, 0);
	queue_unlock(fd2);
	queue_unlock(-1);
	errno = 0;
	ck_assert_int_eq(queue_lock(q, "20260101T000000.000000-00000000"), -1);
	ck_assert_int_eq(errno, ENOENT);
	queue_close(q);
}
END_TEST

/* The DELETE marker is seen, and queue_remove takes it with the entry. */
START_TEST(test_queue_delete_marker)
{
	struct queue	*q;
	char		 id[ENVELOPE_ID_MAX], path[128];
	FILE		*fp;

	q = open_queue();
	commit_one(q, id, sizeof(id));
	ck_assert(!queue_delete_requested(q, id));
	snprintf(path, sizeof(path), "%s/DELETE", id);
	fp = fopen(qpath("queue", path), "w");
	ck_assert_ptr_nonnull(fp);
	fclose(fp);
	ck_assert(queue_delete_requested(q, id));
	ck_assert(!queue_delete_requested(q, "../queue"));
	ck_assert_int_eq(queue_remove(q, id), 0);
	ck_assert(!queue_exists(q, id));
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 0);
	queue_close(q);
}
END_TEST

/* A group- or world-writable queue directory or subdirectory is refused. */
START_TEST(test_queue_open_refuses_writable)
{
	struct queue	*q;
	char		 err[512] = "";

	ck_assert_int_eq(mkdir(qdir, 0700), 0);
	ck_assert_int_eq(chmod(qdir, 0777), 0);
	q = queue_open(qdir, err, sizeof(err));
	ck_assert_ptr_null(q);
	ck_assert_msg(strstr(err, "writable") != NULL, "%s", err);
	ck_assert_msg(strstr(err, qdir) != NULL, "%s", err);

	ck_assert_int_eq(chmod(qdir, 0700), 0);
	q = open_queue();
	queue_close(q);
	ck_assert_int_eq(chmod(qpath("queue", NULL), 0770), 0);
	err[0] = '\0';
	q = queue_open(qdir, err, sizeof(err));
	ck_assert_ptr_null(q);
	ck_assert_msg(strstr(err, "/queue: group or other writable") != NULL,
	    "%s", err);
}
END_TEST

/* The credentials round-trip through their 0600 file, base64 only. */
START_TEST(test_queue_credentials)
{
	struct queue	*q;
	struct sasl_cred cred, want;
	char		 id[ENVELOPE_ID_MAX], path[128], b64[1024], *text;

	q = open_queue();
	commit_one(q, id, sizeof(id));
	memset(&cred, 'x', sizeof(cred));
	ck_assert_int_eq(queue_load_cred(q, id, &cred), 0);
	ck_assert_str_eq(cred.user, USER);
	ck_assert_str_eq(cred.pass, PASS);
	make_cred(&want);
	ck_assert_int_eq(sasl_plain_encode(&want, b64, sizeof(b64)), 0);
	snprintf(path, sizeof(path), "%s/credentials", id);
	text = slurp(qpath("queue", path), NULL);
	ck_assert_str_eq(text, strcat(b64, "\n"));
	free(text);
	queue_close(q);
}
END_TEST

/* The password is in neither the envelope nor the message. */
START_TEST(test_queue_password_not_in_envelope)
{
	struct queue	*q;
	char		 id[ENVELOPE_ID_MAX], path[128], *text;

	q = open_queue();
	commit_one(q, id, sizeof(id));
	snprintf(path, sizeof(path), "%s/envelope", id);
	text = slurp(qpath("queue", path), NULL);
	ck_assert_ptr_nonnull(strstr(text, "sender: alice@example.com\n"));
	ck_assert_ptr_null(strstr(text, PASS));
	ck_assert_ptr_null(strstr(text, "hunter2"));
	free(text);
	snprintf(path, sizeof(path), "%s/message.eml", id);
	text = slurp(qpath("queue", path), NULL);
	ck_assert_ptr_null(strstr(text, "hunter2"));
	free(text);
	queue_close(q);
}
END_TEST

/* The message can be opened for the relay; bad names are refused. */
START_TEST(test_queue_open_message)
{
	struct queue	*q;
	char		 id[ENVELOPE_ID_MAX], buf[256];
	ssize_t		 n;
	int		 fd;

	q = open_queue();
	commit_one(q, id, sizeof(id));
	fd = queue_open_message(q, id);
	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf));
	ck_assert_int_eq(n, (ssize_t)strlen(MSG));
	ck_assert_mem_eq(buf, MSG, (size_t)n);
	close(fd);
	errno = 0;
	ck_assert_int_eq(queue_open_message(q, "../queue"), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(queue_open_message(q, ".hidden"), -1);
	ck_assert_str_eq(queue_dir(q), qdir);
	queue_close(q);
}
END_TEST

/* Damage done to an envelope; each must read as bad content, EINVAL. */
static const struct {
	const char	*text;		/* replaces the envelope; NULL: id */
	const char	*err;		/* substring of the message */
} load_cases[] = {
	{ "version: 1\nid: x", "line not terminated" },
	{ "version: 1\ncolour: blue\n", "unknown key" },
	{ "", "missing key" },
	{ "version: 1\nversion: 1\n", "duplicate key" },
	{ NULL, "id: does not match" }
};

/*
 * A bad envelope fails with errno EINVAL, whatever errno was before (the
 * scheduler moves such an entry aside, and only such an entry).
 */
START_TEST(test_queue_load_content_errno)
{
	struct queue	*q;
	struct envelope	 env;
	char		 id[ENVELOPE_ID_MAX], err[512] = "", path[128];
	FILE		*fp;

	q = open_queue();
	commit_one(q, id, sizeof(id));
	if (load_cases[_i].text != NULL) {
		snprintf(path, sizeof(path), "%s/envelope", id);
		fp = fopen(qpath("queue", path), "w");
		ck_assert_ptr_nonnull(fp);
		fputs(load_cases[_i].text, fp);
		fclose(fp);
	} else {
		ck_assert_int_eq(rename(qpath("queue", id),
		    qpath("queue", "20000101T000000.000000-00000001")), 0);
		snprintf(id, sizeof(id), "20000101T000000.000000-00000001");
	}
	errno = EMFILE;
	ck_assert_int_eq(queue_load(q, id, &env, err, sizeof(err)), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert(queue_content_error(errno));
	ck_assert_msg(strstr(err, load_cases[_i].err) != NULL, "case %d: %s",
	    _i, err);
	ck_assert_uint_eq(env.nrcpt, 0);
	queue_close(q);
}
END_TEST

/*
 * Out of descriptors, every reader of an entry fails with EMFILE (not
 * EINVAL), which is not a content error; with descriptors back, they all
 * work on the same, untouched entry.
 */
START_TEST(test_queue_out_of_descriptors)
{
	struct queue	*q;
	struct envelope	 env;
	struct sasl_cred cred;
	struct rlimit	 old, low;
	char		 id[ENVELOPE_ID_MAX], err[512] = "";
	int		 rc[5], errs[5], fd, i;

	q = open_queue();
	commit_one(q, id, sizeof(id));
	/* The lowest free descriptor becomes the limit: no open succeeds. */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)fd;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	errno = 0;
	rc[0] = queue_check(q, id, err, sizeof(err));
	errs[0] = errno;
	rc[1] = queue_load(q, id, &env, err, sizeof(err));
	errs[1] = errno;
	rc[2] = queue_load_cred(q, id, &cred);
	errs[2] = errno;
	rc[3] = queue_open_message(q, id);
	errs[3] = errno;
	rc[4] = queue_lock(q, id);
	errs[4] = errno;
	/* Restored before any assertion: Check itself may need a file. */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	for (i = 0; i < 5; i++) {
		ck_assert_msg(rc[i] == -1 && errs[i] == EMFILE,
		    "reader %d: rc %d errno %d", i, rc[i], errs[i]);
		ck_assert(!queue_content_error(errs[i]));
	}
	ck_assert_int_eq(queue_check(q, id, err, sizeof(err)), 0);
	ck_assert_int_eq(queue_load(q, id, &env, err, sizeof(err)), 0);
	ck_assert_uint_eq(env.nrcpt, 2);
	envelope_fini(&env);
	ck_assert_int_eq(queue_load_cred(q, id, &cred), 0);
	ck_assert_str_eq(cred.pass, PASS);
	sasl_cred_clear(&cred);
	queue_close(q);
}
END_TEST

static const struct {
	int	 errnum;
	bool	 content;
} content_cases[] = {
	{ EINVAL, true }, { ENOENT, true }, { ENOTDIR, true },
	{ ELOOP, true }, { EISDIR, true },
	{ EMFILE, false }, { ENFILE, false }, { ENOMEM, false },
	{ EIO, false }, { EACCES, false }, { EWOULDBLOCK, false },
	{ ENOSPC, false }, { 0, false }
};

/* Which errno values move an entry aside. */
START_TEST(test_queue_content_error)
{
	ck_assert_msg(queue_content_error(content_cases[_i].errnum) ==
	    content_cases[_i].content, "%s", strerror(content_cases[_i].errnum));
}
END_TEST

/* ---- async commit (group commit on the worker threads) ---- */

#define ASYNC_N		8

static struct {
	int	 calls;
	int	 errnum[ASYNC_N];
	int	 ncalls[ASYNC_N];
	char	 id[ASYNC_N][ENVELOPE_ID_MAX];
} done_log;

/* done callback: arg is the commit's index. */
static void
async_done(void *arg, const char *id, int errnum)
{
	int	 i = (int)(long)arg;

	ck_assert_int_ge(i, 0);
	ck_assert_int_lt(i, ASYNC_N);
	ck_assert_str_eq(id, done_log.id[i]);
	done_log.ncalls[i]++;
	done_log.errnum[i] = errnum;
	done_log.calls++;
}

/* Begin a tx holding MSG and hand it to the workers as commit i. */
static void
async_one(struct queue *q, struct event_base *base, int i)
{
	struct queue_tx	*tx;
	struct envelope	 env;
	struct sasl_cred cred;

	make_env(&env);
	make_cred(&cred);
	tx = queue_tx_begin(q);
	ck_assert_ptr_nonnull(tx);
	ck_assert_int_eq(queue_tx_write(tx, MSG, strlen(MSG)), 0);
	snprintf(done_log.id[i], sizeof(done_log.id[i]), "%s",
	    queue_tx_id(tx));
	ck_assert_int_eq(queue_tx_commit_async(tx, base, &env, &cred,
	    async_done, (void *)(long)i), 0);
	ck_assert_str_eq(env.id, done_log.id[i]);
	envelope_fini(&env);
}

/* Run base until no async commit is pending (each wait is one event). */
static void
async_wait(struct queue *q, struct event_base *base)
{
	int	 i;

	for (i = 0; i < 1000 && queue_async_pending(q) > 0; i++)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_uint_eq(queue_async_pending(q), 0);
}

#define PREP_N		8		/* QUEUE_PREPARED */
#define PREP_PREFIX	".prep-"

/* The names of tmp/'s prepared entries, up to max; their count. */
static int
prepared_names(char names[][ENVELOPE_ID_MAX], int max)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	d = opendir(qpath("tmp", NULL));
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, PREP_PREFIX, strlen(PREP_PREFIX)) != 0)
			continue;
		if (n < max && strlen(de->d_name) < ENVELOPE_ID_MAX)
			memcpy(names[n], de->d_name, strlen(de->d_name) + 1);
		n++;
	}
	closedir(d);
	return n;
}

/*
 * Once the workers run, they keep 8 empty entries ready in tmp/ as
 * .prep-<ID>; a begin takes one under a fresh ID, which the message is
 * then committed as; closing the queue removes the others.
 */
START_TEST(test_queue_prepared_entries)
{
	struct queue		*q;
	struct event_base	*base;
	struct timespec		 nap = { 0, 10 * 1000 * 1000 };
	char			 before[PREP_N + 1][ENVELOPE_ID_MAX];
	char			 after[PREP_N + 1][ENVELOPE_ID_MAX];
	char			 path[600];
	char			*text;
	size_t			 len;
	int			 i, j, n, kept;

	memset(&done_log, 0, sizeof(done_log));
	q = open_queue();
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(prepared_names(before, PREP_N), 0);
	async_one(q, base, 0);		/* starts the workers */
	async_wait(q, base);
	for (i = 0; i < 1000 && prepared_names(before, PREP_N) < PREP_N; i++)
		nanosleep(&nap, NULL);
	ck_assert_int_eq(prepared_names(before, PREP_N + 1), PREP_N);
	ck_assert_int_eq(count_tmp(), 0);

	async_one(q, base, 1);
	ck_assert_int_ne(strncmp(done_log.id[1], PREP_PREFIX,
	    strlen(PREP_PREFIX)), 0);
	n = prepared_names(after, PREP_N + 1);
	ck_assert_int_le(n, PREP_N);
	for (kept = 0, i = 0; i < PREP_N; i++) {
		ck_assert_str_ne(before[i] + strlen(PREP_PREFIX),
		    done_log.id[1]);
		for (j = 0; j < n && j <= PREP_N; j++)
			if (strcmp(before[i], after[j]) == 0)
				kept++;
	}
	ck_assert_int_eq(kept, PREP_N - 1);
	async_wait(q, base);
	ck_assert_int_eq(done_log.errnum[1], 0);
	ck_assert_int_eq(count_entries(qpath("queue", done_log.id[1])), 3);
	snprintf(path, sizeof(path), "%s/message.eml",
	    qpath("queue", done_log.id[1]));
	text = slurp(path, &len);
	ck_assert_uint_eq(len, strlen(MSG));
	ck_assert_int_eq(memcmp(text, MSG, len), 0);
	free(text);
	ck_assert_int_eq(count_tmp(), 0);
	queue_close(q);
	ck_assert_int_eq(count_entries(qpath("tmp", NULL)), 0);
	event_base_free(base);
}
END_TEST

/*
 * Concurrent async commits: each completion runs once, on the loop and
 * never within the call, and leaves a whole entry in queue/.
 */
START_TEST(test_queue_commit_async)
{
	struct queue		*q;
	struct event_base	*base;
	struct envelope		 env;
	char			 err[256];
	int			 i;

	memset(&done_log, 0, sizeof(done_log));
	q = open_queue();
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	for (i = 0; i < ASYNC_N; i++)
		async_one(q, base, i);
	ck_assert_int_eq(done_log.calls, 0);
	ck_assert_uint_eq(queue_async_pending(q), ASYNC_N);
	async_wait(q, base);
	ck_assert_int_eq(done_log.calls, ASYNC_N);
	for (i = 0; i < ASYNC_N; i++) {
		ck_assert_int_eq(done_log.ncalls[i], 1);
		ck_assert_int_eq(done_log.errnum[i], 0);
		ck_assert_int_eq(count_entries(qpath("queue", done_log.id[i])),
		    3);
		ck_assert_int_eq(queue_load(q, done_log.id[i], &env, err,
		    sizeof(err)), 0);
		ck_assert_str_eq(env.id, done_log.id[i]);
		envelope_fini(&env);
	}
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), ASYNC_N);
	ck_assert_int_eq(count_tmp(), 0);
	queue_close(q);
	event_base_free(base);
}
END_TEST

/*
 * queue_async_stop with commits in flight: they finish, their completions
 * run within the call, and a later async commit starts the workers again.
 */
START_TEST(test_queue_async_stop_finishes)
{
	struct queue		*q;
	struct event_base	*base;
	int			 i;

	memset(&done_log, 0, sizeof(done_log));
	q = open_queue();
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	for (i = 0; i < 3; i++)
		async_one(q, base, i);
	queue_async_stop(q);
	ck_assert_int_eq(done_log.calls, 3);
	ck_assert_uint_eq(queue_async_pending(q), 0);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 3);
	async_one(q, base, 3);
	async_wait(q, base);
	ck_assert_int_eq(done_log.calls, 4);
	ck_assert_int_eq(done_log.errnum[3], 0);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 4);
	ck_assert_int_eq(count_tmp(), 0);
	/* queue_close stops the workers itself; the base outlives it. */
	async_one(q, base, 4);
	queue_close(q);
	ck_assert_int_eq(done_log.calls, 5);
	event_base_free(base);
}
END_TEST

/*
 * A tmpfs of 1 MB mounted on the queue directory in a mount namespace of
 * the test process's own.  false when not root (the test says SKIPPED).
 */
static bool
mount_small_tmpfs(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "check_queue: ENOSPC test SKIPPED: not root\n");
		return false;
	}
	ck_assert_msg(unshare(CLONE_NEWNS) == 0, "unshare: %s",
	    strerror(errno));
	ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	ck_assert_int_eq(mkdir(qdir, 0700), 0);
	ck_assert_msg(mount("tmpfs", qdir, "tmpfs", MS_NOSUID | MS_NODEV,
	    "size=1m,mode=0700") == 0, "mount tmpfs: %s", strerror(errno));
	return true;
}

/* Fill the file system holding qdir until a write fails with ENOSPC. */
static void
fill_fs(void)
{
	char	 path[512], buf[16384];
	ssize_t	 n = 0;
	int	 fd, i;

	memset(buf, 'f', sizeof(buf));
	snprintf(path, sizeof(path), "%s/filler", qdir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	ck_assert_int_ne(fd, -1);
	for (i = 0; i < 1024 && (n = write(fd, buf, sizeof(buf))) > 0; i++)
		continue;
	for (i = 0; i < 16384 && n > 0; i++)
		n = write(fd, buf, 1);
	ck_assert_msg(n == -1 && errno == ENOSPC, "filler: no ENOSPC");
	close(fd);
}

/*
 * Fault injection for the whole unit binary: while fsync_fail_ino is set,
 * fsync of that inode fails with EIO; every other fsync is the system
 * call.  Defining fsync here takes the place of libc's in this program.
 */
static volatile ino_t	 fsync_fail_ino;

int
fsync(int fd)
{
	struct stat	 st;

	if (fsync_fail_ino != 0 && fstat(fd, &st) == 0 &&
	    st.st_ino == fsync_fail_ino) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fsync, fd);
}

/* Call cb for each name in queue/: count them. */
static void
scan_count(const char *id, void *arg)
{
	(void)id;
	(*(int *)arg)++;
}

/*
 * A commit renamed into queue/ but not yet completed (its completion needs
 * the loop, which does not run here) is invisible to queue_scan: a SIGHUP
 * rescan must not relay what the client has not been told is accepted.
 * Once completed, the scan sees it.
 */
START_TEST(test_queue_scan_skips_committing)
{
	struct queue		*q;
	struct event_base	*base;
	struct stat		 st;
	int			 i, n = 0;

	memset(&done_log, 0, sizeof(done_log));
	q = open_queue();
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	async_one(q, base, 0);
	for (i = 0; i < 5000 && stat(qpath("queue", done_log.id[0]), &st) == -1;
	    i++)
		usleep(1000);
	ck_assert_msg(i < 5000, "the worker never renamed the entry");
	ck_assert_uint_eq(queue_async_pending(q), 1);
	ck_assert_int_eq(queue_scan(q, scan_count, &n), 0);
	ck_assert_int_eq(n, 0);
	async_wait(q, base);
	ck_assert_int_eq(done_log.errnum[0], 0);
	ck_assert_int_eq(queue_scan(q, scan_count, &n), 0);
	ck_assert_int_eq(n, 1);
	queue_close(q);
	event_base_free(base);
}
END_TEST

/*
 * queue_remove_async: until the workers are done and the loop has run the
 * completion, a scan does not see the entry (a SIGHUP rescan must not
 * send a delivered message again); then it is gone, the other stays.
 */
START_TEST(test_queue_remove_async)
{
	struct queue		*q;
	struct event_base	*base;
	char			 id[ENVELOPE_ID_MAX], id2[ENVELOPE_ID_MAX];
	int			 n = 0;

	q = open_queue();
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	commit_one(q, id, sizeof(id));
	commit_one(q, id2, sizeof(id2));
	ck_assert_int_eq(queue_remove_async(q, base, id), 0);
	ck_assert_uint_eq(queue_async_pending(q), 1);
	ck_assert_int_eq(queue_scan(q, scan_count, &n), 0);
	ck_assert_int_eq(n, 1);
	async_wait(q, base);
	ck_assert_int_eq(access(qpath("queue", id), F_OK), -1);
	ck_assert_int_eq(access(qpath("queue", id2), F_OK), 0);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 1);
	errno = 0;
	ck_assert_int_eq(queue_remove_async(q, base, "../x"), -1);
	ck_assert_int_eq(errno, EINVAL);
	queue_close(q);
	event_base_free(base);
}
END_TEST

/*
 * The fsync of queue/ fails after the rename: the commit reports EIO and
 * the entry is gone from queue/ (the client will be told it was not
 * accepted, so it must not be delivered); tmp/ is empty too.  The next
 * commit, with fsync working again, succeeds.
 */
START_TEST(test_queue_commit_async_dir_fsync_fails)
{
	struct queue		*q;
	struct event_base	*base;
	struct stat		 st;

	memset(&done_log, 0, sizeof(done_log));
	q = open_queue();
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(stat(qpath("queue", NULL), &st), 0);
	fsync_fail_ino = st.st_ino;
	async_one(q, base, 0);
	async_wait(q, base);
	fsync_fail_ino = 0;
	ck_assert_int_eq(done_log.calls, 1);
	ck_assert_int_eq(done_log.errnum[0], EIO);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 0);
	ck_assert_int_eq(count_tmp(), 0);
	async_one(q, base, 1);
	async_wait(q, base);
	ck_assert_int_eq(done_log.errnum[1], 0);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 1);
	queue_close(q);
	event_base_free(base);
}
END_TEST

/*
 * Out of space at commit time (the buffered message is written by the
 * worker): the completion reports ENOSPC and nothing is left behind.
 */
START_TEST(test_queue_commit_async_enospc)
{
	struct queue		*q;
	struct event_base	*base;

	memset(&done_log, 0, sizeof(done_log));
	if (!mount_small_tmpfs())
		return;
	q = open_queue();
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	fill_fs();
	async_one(q, base, 0);
	async_wait(q, base);
	ck_assert_int_eq(done_log.calls, 1);
	ck_assert_int_eq(done_log.errnum[0], ENOSPC);
	ck_assert_int_eq(count_entries(qpath("queue", NULL)), 0);
	ck_assert_int_eq(count_tmp(), 0);
	queue_close(q);
	event_base_free(base);
}
END_TEST

/* The queue suite: its test cases and their fixtures. */
Suite *
queue_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("queue");

	tc = tcase_create("commit");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_queue_commit_files);
	tcase_add_test(tc, test_queue_id_format);
	tcase_add_test(tc, test_queue_abort_leaves_nothing);
	tcase_add_test(tc, test_queue_commit_failure_cleans);
	tcase_add_test(tc, test_queue_write_error_sticky);
	tcase_add_test(tc, test_queue_write_buffering);
	tcase_add_test(tc, test_queue_credentials);
	tcase_add_test(tc, test_queue_password_not_in_envelope);
	tcase_add_test(tc, test_queue_commit_async);
	tcase_add_test(tc, test_queue_prepared_entries);
	tcase_add_test(tc, test_queue_async_stop_finishes);
	tcase_add_test(tc, test_queue_commit_async_enospc);
	tcase_add_test(tc, test_queue_scan_skips_committing);
	tcase_add_test(tc, test_queue_commit_async_dir_fsync_fails);
	tcase_add_test(tc, test_queue_remove_async);
	suite_add_tcase(s, tc);

	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_queue_open_purges_tmp);
	tcase_add_test(tc, test_queue_open_refuses_writable);
	tcase_add_test(tc, test_queue_scan_order);
	tcase_add_test(tc, test_queue_update);
	tcase_add_test(tc, test_queue_load_id_mismatch);
	tcase_add_test(tc, test_queue_remove);
	tcase_add_test(tc, test_queue_remove_crash_leftover);
	tcase_add_test(tc, test_queue_fail);
	tcase_add_test(tc, test_queue_quarantine);
	tcase_add_test(tc, test_queue_quarantine_drops_credentials);
	tcase_add_test(tc, test_queue_open_message);
	tcase_add_loop_test(tc, test_queue_check, 0,
	    (int)(sizeof(check_cases) / sizeof(check_cases[0])));
	tcase_add_test(tc, test_queue_lock);
	tcase_add_test(tc, test_queue_delete_marker);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_queue_load_content_errno, 0,
	    (int)(sizeof(load_cases) / sizeof(load_cases[0])));
	tcase_add_test(tc, test_queue_out_of_descriptors);
	tcase_add_loop_test(tc, test_queue_content_error, 0,
	    (int)(sizeof(content_cases) / sizeof(content_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}
