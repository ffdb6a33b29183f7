/*
 * it_durability.c: no accepted message is ever lost (issue 3), shown
 * with the real daemon and the stand-in.
 *
 *	crash		SIGKILL during intake (200 messages, 8 submitters,
 *			several moments); fault points of the test build
 *			(build/tests/relayqd-fault, $RELAYQ_FAULT) after the
 *			stand-in's 250, after the removal, in the middle of
 *			an envelope update and before the commit's rename;
 *			SIGKILL while a relay session is in DATA
 *	disk_full	the queue on a small tmpfs: 452 4.3.1, nothing left
 *			in tmp/, still serving; a state update that fails
 *			for lack of space loses nothing
 *	shutdown	SIGTERM with submissions and deliveries in flight
 *	queue_files	corrupt and foreign entries, modes, the refusal of a
 *			writable queue, the max-age give-up and the retry
 *			schedule, relayq --delete's marker while relaying;
 *			running out of file descriptors postpones an entry
 *			without counting an attempt or moving it
 *
 * Each crash test prints its figures (messages submitted, acknowledged,
 * delivered, duplicates) on stderr.
 */
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"

#define DUR_TIMEOUT	60		/* per test, before the multiplier */
#define DUR_SENDER	"alice@example.com"
#define DUR_RCPT	"bob@example.net"
#define DUR_PASSWORD	"Dur-4bl3-pw"
#define DUR_HEADER	"X-Relayq-Test: "
#define DUR_THREADS	8
#define DUR_PER_THREAD	25
#define DUR_MESSAGES	(DUR_THREADS * DUR_PER_THREAD)
#define DUR_RUNS	3
#define DUR_BIG		(24 * 1024 * 1024)	/* in DATA long enough */
#define DUR_TMPFS_SIZE	"2m"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static struct harness	 dur;		/* one per forked test */
static char		 dur_mnt[PATH_MAX];	/* a mounted tmpfs, or "" */

static void	 dur_dump(void);
static void	 dur_cleanup(void);

/*
 * Fail the test after printing the logs, stopping the processes,
 * unmounting any tmpfs and removing the directory: ck_abort_msg()
 * leaves the forked test at once, so the teardown would not run.
 */
#define dur_assert(cond, ...)						\
	harness_check(cond, dur_dump(), dur_cleanup(), __VA_ARGS__)

/* Format into buf; it must fit. */
#define dur_fmt(buf, len, ...)						\
	dur_assert(harness_fmt((buf), (len), __VA_ARGS__) == 0,		\
	    "does not fit: %s", #buf)

/* Sleep ms milliseconds (poll interval of the loops below). */
static void
dur_nap(long ms)
{
	struct timespec	 ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The standard bounded wait. */
static double
dur_wait(void)
{
	return harness_scale(HARNESS_WAIT);
}

/* Unmount the tmpfs if one is mounted, then remove everything. */
static void
dur_cleanup(void)
{
	size_t	 i;

	for (i = 0; i < dur.nprocs; i++)
		harness_stop(&dur.procs[i], SIGKILL, dur_wait());
	if (dur_mnt[0] != '\0') {
		if (umount2(dur_mnt, MNT_DETACH) == -1)
			fprintf(stderr, "umount %s: %s\n", dur_mnt,
			    strerror(errno));
		dur_mnt[0] = '\0';
	}
	harness_fini(&dur);
}

/* Fresh directory per test. */
static void
dur_setup(void)
{
	dur_mnt[0] = '\0';
	if (harness_init(&dur) == -1) {
		harness_fini(&dur);
		ck_abort_msg("harness_init failed (RELAYQ_BUILD=%s)",
		    getenv("RELAYQ_BUILD") ? getenv("RELAYQ_BUILD") : "build");
	}
}

/* Stop what still runs (daemons must exit 0 on SIGTERM), clean up. */
static void
dur_teardown(void)
{
	char	 why[PATH_MAX + 128];

	dur_assert(harness_stop_all(&dur, why, sizeof(why)) == 0, "%s", why);
	dur_cleanup();
}

/*
 * Print every line of the process logs that moves an entry to failed/
 * (a quarantine, an unreadable entry, a permanent failure), which the
 * tails may have cut off.
 */
static void
dur_grep_failures(void)
{
	static const char *const needles[] = {
		"quarantined", "unreadable", " failed from=", "gave up",
		"cannot move to failed/"
	};
	char	*text, *line, *next;
	size_t	 i, k;

	for (i = 0; i < dur.nprocs; i++) {
		if ((text = harness_read_file(dur.procs[i].log, NULL)) == NULL)
			continue;
		for (line = text; line != NULL && *line != '\0'; line = next) {
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			for (k = 0; k < nitems(needles); k++) {
				if (strstr(line, needles[k]) != NULL) {
					fprintf(stderr, "%s: %s\n",
					    dur.procs[i].log, line);
					break;
				}
			}
		}
		free(text);
	}
}

/*
 * Print what put each entry in failed/ there: its REASON (a quarantine)
 * and its envelope (state and last-reply; the credentials are gone).
 */
static void
dur_dump_failed(void)
{
	static const char *const files[] = { "REASON", "envelope" };
	DIR		*d;
	struct dirent	*de;
	char		 path[PATH_MAX];
	char		*text;
	size_t		 i;
	int		 n;

	n = snprintf(path, sizeof(path), "%s/failed", dur.queue);
	if (n < 0 || (size_t)n >= sizeof(path) || (d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		fprintf(stderr, "---- failed/%s ----\n", de->d_name);
		for (i = 0; i < nitems(files); i++) {
			n = snprintf(path, sizeof(path), "%s/failed/%s/%s",
			    dur.queue, de->d_name, files[i]);
			if (n < 0 || (size_t)n >= sizeof(path))
				continue;
			text = harness_read_file(path, NULL);
			fprintf(stderr, "%s: %s\n", files[i],
			    text != NULL ? text : "(none)\n");
			free(text);
		}
	}
	closedir(d);
	dur_grep_failures();
}

/*
 * One line on the first entry of failed/ for a failure message: its ID
 * and REASON, else the last-reply of its envelope.
 */
static const char *
dur_failed_why(char *buf, size_t len)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[PATH_MAX], *text = NULL, *p, *eol;
	int		 n;

	snprintf(buf, len, "(no entry)");
	n = snprintf(path, sizeof(path), "%s/failed", dur.queue);
	if (n < 0 || (size_t)n >= sizeof(path) || (d = opendir(path)) == NULL)
		return buf;
	while ((de = readdir(d)) != NULL && de->d_name[0] == '.')
		continue;
	if (de == NULL) {
		closedir(d);
		return buf;
	}
	n = snprintf(path, sizeof(path), "%s/failed/%s/REASON", dur.queue,
	    de->d_name);
	if (n > 0 && (size_t)n < sizeof(path))
		text = harness_read_file(path, NULL);
	p = text;
	if (text == NULL) {
		n = snprintf(path, sizeof(path), "%s/failed/%s/envelope",
		    dur.queue, de->d_name);
		if (n > 0 && (size_t)n < sizeof(path))
			text = harness_read_file(path, NULL);
		if (text != NULL && (p = strstr(text, "last-reply:")) == NULL)
			p = text;
	}
	if (p != NULL && (eol = strchr(p, '\n')) != NULL)
		*eol = '\0';
	snprintf(buf, len, "%s: %s", de->d_name, p != NULL ? p :
	    "(no REASON, no envelope)");
	free(text);
	closedir(d);
	return buf;
}

/*
 * Print the tail of each process log, the stand-in's events.log and
 * what is in failed/.
 */
static void
dur_dump(void)
{
	harness_dump(&dur);
	dur_dump_failed();
}

/*
 * Start relayqd (fault: build/tests/relayqd-fault with $RELAYQ_FAULT set
 * to fault) relaying to 127.0.0.1:port (0: the stand-in's), with the
 * harness's standard options and extra; wait for its socket.
 */
static struct harness_proc *
dur_daemon(const char *fault, int port, const char *const *extra)
{
	static const char *const std[] = {
		"-f", "-v", "--retry-min", "1", "--retry-max", "2",
		"--relay-timeout", "5"
	};
	struct harness_proc	*p;
	char			*argv[40];
	char			 bin[PATH_MAX], relay[64], ca[PATH_MAX];
	size_t			 n = 0, i;

	dur_fmt(bin, sizeof(bin), "%s/%s", dur.build,
	    fault ? "tests/relayqd-fault" : "relayqd");
	dur_fmt(relay, sizeof(relay), "127.0.0.1:%d", port ? port : dur.port);
	dur_fmt(ca, sizeof(ca), "%s/ca.pem", dur.certs);
	argv[n++] = bin;
	for (i = 0; i < nitems(std); i++)
		argv[n++] = (char *)(uintptr_t)std[i];
	argv[n++] = (char *)(uintptr_t)"--socket";
	argv[n++] = dur.socket;
	argv[n++] = (char *)(uintptr_t)"--queue-dir";
	argv[n++] = dur.queue;
	argv[n++] = (char *)(uintptr_t)"--relay";
	argv[n++] = relay;
	argv[n++] = (char *)(uintptr_t)"--ca-file";
	argv[n++] = ca;
	for (i = 0; extra != NULL && extra[i] != NULL; i++) {
		dur_assert(n < nitems(argv) - 1, "too many arguments");
		argv[n++] = (char *)(uintptr_t)extra[i];
	}
	argv[n] = NULL;
	if (fault != NULL)
		setenv("RELAYQ_FAULT", fault, 1);
	else
		unsetenv("RELAYQ_FAULT");
	p = harness_spawn(&dur, fault ? "relayqd-fault" : "relayqd", argv);
	unsetenv("RELAYQ_FAULT");
	dur_assert(p != NULL, "cannot spawn %s", bin);
	dur_assert(harness_wait_socket(dur.socket, p, dur_wait()) == 0,
	    "%s never accepted on %s", bin, dur.socket);
	/*
	 * Let the probe's session end before anything else: a SIGTERM that
	 * races a just-closed connection leaks its bufferevent (relayqd
	 * frees the event base without running deferred callbacks), which
	 * ASan reports as a non-zero exit.
	 */
	dur_assert(harness_wait_grep(p->log, "disconnected uid=", 1,
	    dur_wait()) == 0, "the probe's session never ended (%s)", p->log);
	return p;
}

/* Start the stand-in (extra may be NULL) or fail. */
static struct harness_proc *
dur_standin(const char *const *extra)
{
	struct harness_proc	*p;

	p = harness_standin(&dur, NULL, extra);
	dur_assert(p != NULL, "the stand-in did not start");
	return p;
}

/* "<queue-dir>/<sub>[/<name>[/<file>]]" into buf. */
static void
dur_qpath(char *buf, size_t len, const char *sub, const char *name,
    const char *file)
{
	dur_fmt(buf, len, "%s/%s%s%s%s%s", dur.queue, sub, name ? "/" : "",
	    name ? name : "", file ? "/" : "", file ? file : "");
}

/* Entries in <queue-dir>/<sub>. */
static int
dur_count(const char *sub)
{
	char	 path[PATH_MAX];

	dur_qpath(path, sizeof(path), sub, NULL, NULL);
	return harness_count(path, "");
}

/* Wait until <queue-dir>/<sub> holds n entries. */
static void
dur_wait_count(const char *sub, int n, double secs)
{
	char	 path[PATH_MAX];

	dur_qpath(path, sizeof(path), sub, NULL, NULL);
	dur_assert(harness_wait_count(path, "", n, secs) == 0,
	    "%s/ holds %d entries, not %d", sub, harness_count(path, ""), n);
}

/* A message carrying DUR_HEADER token, padded to about size bytes. */
static char *
dur_body(const char *token, size_t size, size_t *lenp)
{
	char	*buf;
	size_t	 len, cap = size + 512;
	int	 n;

	buf = malloc(cap);
	dur_assert(buf != NULL, "out of memory");
	n = snprintf(buf, cap, "From: <%s>\r\nTo: <%s>\r\nSubject: durability "
	    "%s\r\n%s%s\r\n\r\nThis message must not be lost.\r\n",
	    DUR_SENDER, DUR_RCPT, token, DUR_HEADER, token);
	dur_assert(n > 0 && (size_t)n < cap, "body header");
	len = (size_t)n;
	while (len + 902 <= size) {
		memset(buf + len, 'a' + (int)(len / 902 % 26), 900);
		memcpy(buf + len + 900, "\r\n", 2);
		len += 902;
	}
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

/* Banner, EHLO and AUTH PLAIN on a new session; 0 or -1. */
static int
dur_session(struct harness_smtp *s)
{
	char	 plain[128], *b64;
	int	 n, rc = -1;

	if (harness_smtp_open(s, dur.socket) != 220)
		return -1;
	n = snprintf(plain, sizeof(plain), "%c%s%c%s", '\0', DUR_SENDER, '\0',
	    DUR_PASSWORD);
	if ((b64 = harness_b64_encode(plain, (size_t)n)) == NULL)
		return -1;
	if (harness_smtp_cmd(s, "EHLO durability.example") == 250 &&
	    harness_smtp_cmd(s, "AUTH PLAIN %s", b64) == 235)
		rc = 0;
	free(b64);
	return rc;
}

/* MAIL, RCPT, DATA and the body on an open session; the last code. */
static int
dur_transaction(struct harness_smtp *s, const char *body, size_t len)
{
	int	 code;

	if ((code = harness_smtp_cmd(s, "MAIL FROM:<%s>", DUR_SENDER)) != 250 ||
	    (code = harness_smtp_cmd(s, "RCPT TO:<%s>", DUR_RCPT)) != 250 ||
	    (code = harness_smtp_cmd(s, "DATA")) != 354)
		return code;
	return harness_smtp_data(s, body, len);
}

/* Submit one message with token (padded to size); its ID into id. */
static void
dur_submit(const char *token, size_t size, char *id, size_t idlen)
{
	struct harness_smtp	 s;
	char			*body;
	size_t			 len;
	int			 code;

	body = dur_body(token, size, &len);
	dur_assert(dur_session(&s) == 0, "session: %d %s", s.code, s.reply);
	code = dur_transaction(&s, body, len);
	free(body);
	dur_assert(code == 250 && harness_queue_id(s.reply, id, idlen) == 0,
	    "%s: %d %s", token, code, s.reply);
	harness_smtp_cmd(&s, "QUIT");
	harness_smtp_close(&s);
}

/*
 * Count the messages the stand-in recorded whose DUR_HEADER value is
 * "<prefix><number>": counts[number]++ for numbers below n.  Returns how
 * many messages carried the prefix at all.
 */
static int
dur_delivered(const char *prefix, int *counts, int n)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[PATH_MAX], needle[128], *text, *p;
	size_t		 len;
	long		 k;
	int		 found = 0;

	if (counts != NULL)
		memset(counts, 0, sizeof(*counts) * (size_t)n);
	dur_fmt(needle, sizeof(needle), "%s%s", DUR_HEADER, prefix);
	if ((d = opendir(dur.mail)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (strncmp(de->d_name, "msg-", 4) != 0 || len < 4 ||
		    strcmp(de->d_name + len - 4, ".eml") != 0)
			continue;
		dur_fmt(path, sizeof(path), "%s/%s", dur.mail, de->d_name);
		if ((text = harness_read_file(path, NULL)) == NULL)
			continue;
		if ((p = strstr(text, needle)) != NULL) {
			found++;
			k = strtol(p + strlen(needle), NULL, 10);
			if (counts != NULL && k >= 0 && k < n)
				counts[k]++;
		}
		free(text);
	}
	closedir(d);
	return found;
}

/* Wait until the stand-in holds n messages carrying prefix. */
static void
dur_wait_delivered(const char *prefix, int n, double secs)
{
	double	 end = harness_now() + secs;

	while (dur_delivered(prefix, NULL, 0) < n) {
		dur_assert(harness_now() < end, "%d messages \"%s\" delivered, "
		    "not %d", dur_delivered(prefix, NULL, 0), prefix, n);
		dur_nap(20);
	}
}

/* Wait until the log of p holds needle n times. */
static void
dur_wait_log(struct harness_proc *p, const char *needle, int n)
{
	dur_assert(harness_wait_grep(p->log, needle, n, dur_wait()) == 0,
	    "%s: \"%s\" %d times, not %d", p->log, needle,
	    harness_grep(p->log, needle), n);
}

/* The daemon killed itself at the fault point. */
static void
dur_wait_fault(struct harness_proc *p, const char *fault)
{
	char	 line[128];
	int	 status;

	status = harness_wait_exit(p, dur_wait());
	dur_assert(status != -1 && WIFSIGNALED(status) &&
	    WTERMSIG(status) == SIGKILL, "relayqd-fault (%s) did not die by "
	    "SIGKILL: status 0x%x", fault, (unsigned)status);
	dur_fmt(line, sizeof(line), "fault injected: %s", fault);
	dur_assert(harness_grep(p->log, line) == 1, "no \"%s\" in %s", line,
	    p->log);
}

/* ---- crash during intake ---- */

struct dur_intake {
	atomic_int		 acked;		/* 250s so far */
	atomic_int		 open;		/* submitters may connect */
	double			 deadline;
	int			 run;
};

struct dur_submitter {
	struct dur_intake	*in;
	pthread_t		 thread;
	int			 first;		/* first message number */
	int			 done;		/* acknowledged, in order */
	int			 tries;		/* transactions started */
	int			 lost_replies;	/* failed after the final dot */
};

/*
 * One submitter: its DUR_PER_THREAD messages in order on one session,
 * each retried (on a new session, once the gate is open) until a 250.
 */
static void *
dur_submitter_main(void *arg)
{
	struct dur_submitter	*t = arg;
	struct harness_smtp	 s;
	char			 token[64], *body;
	size_t			 len;
	bool			 connected = false;
	int			 code;

	memset(&s, 0, sizeof(s));
	s.fd = -1;
	while (t->done < DUR_PER_THREAD && harness_now() < t->in->deadline) {
		if (!connected) {
			if (!atomic_load(&t->in->open) ||
			    dur_session(&s) == -1) {
				harness_smtp_close(&s);
				dur_nap(5);
				continue;
			}
			connected = true;
		}
		snprintf(token, sizeof(token), "r%d-m%d", t->in->run,
		    t->first + t->done);
		body = dur_body(token, 2048, &len);
		t->tries++;
		code = dur_transaction(&s, body, len);
		free(body);
		if (code == 250) {
			t->done++;
			atomic_fetch_add(&t->in->acked, 1);
			continue;
		}
		if (code == -1)
			t->lost_replies++;
		harness_smtp_close(&s);
		connected = false;
	}
	harness_smtp_close(&s);
	return NULL;
}

/* When (in acknowledgements) each run kills the daemon. */
static int
dur_kill_point(int run)
{
	static const int	 base[] = { 10, 80, 150 };
	unsigned		 seed;

	seed = (unsigned)time(NULL) ^ (unsigned)getpid();

	/* Early, middle and late in the 200, at a random spot in each. */
	return base[run % (int)nitems(base)] + (int)(rand_r(&seed) % 40);
}

/*
 * 200 messages from 8 concurrent submitters, SIGKILL at a random moment,
 * restart: every acknowledged message reaches the stand-in, tmp/ is
 * empty after the restart; the figures are printed.
 */
START_TEST(test_crash_intake)
{
	struct dur_intake	 in;
	struct dur_submitter	 sub[DUR_THREADS];
	struct harness_proc	*d;
	char			 prefix[32], why[1024];
	int			 counts[DUR_MESSAGES];
	int			 i, kill_at, acked_before, tmp_at_kill, tries;
	int			 delivered, dups, missing, lost_replies;
	double			 t0;

	dur_standin(NULL);
	d = dur_daemon(NULL, 0, NULL);
	memset(&in, 0, sizeof(in));
	atomic_init(&in.acked, 0);
	atomic_init(&in.open, 1);
	in.run = _i;
	in.deadline = harness_now() + harness_scale(DUR_TIMEOUT) - 15;
	kill_at = dur_kill_point(_i);
	t0 = harness_now();
	for (i = 0; i < DUR_THREADS; i++) {
		memset(&sub[i], 0, sizeof(sub[i]));
		sub[i].in = &in;
		sub[i].first = i * DUR_PER_THREAD;
		dur_assert(pthread_create(&sub[i].thread, NULL,
		    dur_submitter_main, &sub[i]) == 0, "pthread_create");
	}
	while (atomic_load(&in.acked) < kill_at && harness_now() < in.deadline)
		dur_nap(1);
	atomic_store(&in.open, 0);
	harness_stop(d, SIGKILL, dur_wait());
	acked_before = atomic_load(&in.acked);
	tmp_at_kill = dur_count("tmp");

	d = dur_daemon(NULL, 0, NULL);
	dur_assert(dur_count("tmp") == 0, "tmp/ holds %d entries after the "
	    "restart", dur_count("tmp"));
	atomic_store(&in.open, 1);
	for (i = 0; i < DUR_THREADS; i++)
		pthread_join(sub[i].thread, NULL);
	tries = lost_replies = 0;
	for (i = 0; i < DUR_THREADS; i++) {
		dur_assert(sub[i].done == DUR_PER_THREAD, "submitter %d: only "
		    "%d acknowledged", i, sub[i].done);
		tries += sub[i].tries;
		lost_replies += sub[i].lost_replies;
	}
	dur_wait_count("queue", 0, harness_scale(DUR_TIMEOUT) / 2);
	dur_assert(dur_count("tmp") == 0, "tmp/ not empty at the end");
	/* Read before dur_assert's cleanup removes the directory. */
	dur_failed_why(why, sizeof(why));
	dur_assert(dur_count("failed") == 0, "failed/ not empty: %s", why);

	snprintf(prefix, sizeof(prefix), "r%d-m", _i);
	delivered = dur_delivered(prefix, counts, DUR_MESSAGES);
	dups = missing = 0;
	for (i = 0; i < DUR_MESSAGES; i++) {
		if (counts[i] == 0)
			missing++;
		else
			dups += counts[i] - 1;
	}
	fprintf(stderr, "durability: crash during intake, run %d: killed "
	    "after %d acknowledgements (target %d; %d entries in tmp/); "
	    "messages submitted %d (transactions %d, %d without a reply), "
	    "acknowledged %d, delivered %d distinct in %d copies, "
	    "duplicates %d, lost %d; %.1f s\n", _i + 1, acked_before, kill_at,
	    tmp_at_kill, DUR_MESSAGES, tries, lost_replies, DUR_MESSAGES,
	    DUR_MESSAGES - missing, delivered, dups, missing,
	    harness_now() - t0);
	dur_assert(missing == 0, "%d acknowledged messages never arrived",
	    missing);
	dur_assert(delivered == DUR_MESSAGES + dups, "count mismatch");
}
END_TEST

/* ---- crash during relaying: the fault points ---- */

/*
 * Killed after the stand-in's 250 but before the removal: the entry is
 * still queued and is sent again after the restart (at least once).
 */
START_TEST(test_crash_after_remote_250)
{
	struct harness_proc	*d;
	char			 id[64], path[PATH_MAX];
	int			 counts[1];

	dur_standin(NULL);
	d = dur_daemon("after-remote-250", 0, NULL);
	dur_submit("f250-0", 1024, id, sizeof(id));
	dur_wait_fault(d, "after-remote-250");
	dur_assert(dur_delivered("f250-", NULL, 0) == 1, "first copy");
	dur_qpath(path, sizeof(path), "queue", id, "message.eml");
	dur_assert(access(path, F_OK) == 0, "%s gone before the removal",
	    path);

	d = dur_daemon(NULL, 0, NULL);
	dur_wait_count("queue", 0, dur_wait());
	dur_wait_delivered("f250-", 2, dur_wait());
	dur_delivered("f250-", counts, 1);
	fprintf(stderr, "durability: crash after the remote 250: submitted 1, "
	    "acknowledged 1, delivered %d copies, duplicates %d\n", counts[0],
	    counts[0] - 1);
	dur_assert(counts[0] == 2, "%d copies", counts[0]);
}
END_TEST

/*
 * Killed right after the removal (unlink + fsync of queue/): the
 * message does not come back after the restart.
 */
START_TEST(test_crash_after_remove)
{
	struct harness_proc	*d;
	char			 id[64], path[PATH_MAX];

	dur_standin(NULL);
	d = dur_daemon("after-remove", 0, NULL);
	dur_submit("frm-0", 1024, id, sizeof(id));
	dur_wait_fault(d, "after-remove");
	dur_qpath(path, sizeof(path), "queue", id, NULL);
	dur_assert(access(path, F_OK) == -1, "%s still there", path);

	d = dur_daemon(NULL, 0, NULL);
	dur_wait_log(d, "queued=0", 1);
	/* Anything rescanned now would be tried at once. */
	kill(d->pid, SIGUSR1);
	kill(d->pid, SIGHUP);
	dur_wait_log(d, "rescanning the queue", 1);
	dur_submit("frm-1", 1024, id, sizeof(id));
	dur_wait_delivered("frm-1", 1, dur_wait());
	dur_wait_count("queue", 0, dur_wait());
	fprintf(stderr, "durability: crash after the removal: submitted 2, "
	    "acknowledged 2, delivered %d, duplicates %d\n",
	    dur_delivered("frm-", NULL, 0), dur_delivered("frm-", NULL, 0) - 2);
	dur_assert(dur_delivered("frm-0", NULL, 0) == 1,
	    "the removed message came back");
	dur_assert(harness_grep(d->log, "attempt relay=") == 1,
	    "more than one relay attempt after the restart");
}
END_TEST

/*
 * Killed after envelope.tmp is written and fsynced, before the rename:
 * the old envelope stays readable and the message is delivered.
 */
START_TEST(test_crash_during_envelope_update)
{
	static const char *const tempfail[] = { "--tempfail", "1", NULL };
	struct harness_proc	*d;
	char			 id[64], path[PATH_MAX], tmp[PATH_MAX];
	char			 val[64], why[1024];

	dur_standin(tempfail);
	d = dur_daemon("during-envelope-update", 0, NULL);
	dur_submit("fupd-0", 1024, id, sizeof(id));
	dur_wait_fault(d, "during-envelope-update");
	dur_qpath(path, sizeof(path), "queue", id, "envelope");
	dur_qpath(tmp, sizeof(tmp), "queue", id, "envelope.tmp");
	dur_assert(access(tmp, F_OK) == 0, "no %s", tmp);
	dur_assert(harness_keyval(path, "attempts", val, sizeof(val)) == 0 &&
	    strcmp(val, "0") == 0, "envelope attempts: %s", val);
	dur_assert(harness_keyval(tmp, "attempts", val, sizeof(val)) == 0 &&
	    strcmp(val, "1") == 0, "envelope.tmp attempts: %s", val);

	d = dur_daemon(NULL, 0, NULL);
	dur_wait_log(d, "removed a stale envelope.tmp", 1);
	dur_wait_delivered("fupd-0", 1, dur_wait());
	dur_wait_count("queue", 0, dur_wait());
	/* Read before dur_assert's cleanup removes the directory. */
	dur_failed_why(why, sizeof(why));
	dur_assert(dur_count("failed") == 0, "failed/ not empty: %s", why);
	fprintf(stderr, "durability: crash during an envelope update: "
	    "submitted 1, acknowledged 1, delivered 1, duplicates 0\n");
}
END_TEST

/*
 * Killed after the entry's files are fsynced, before the rename into
 * queue/: the client saw no 250, and after the restart nothing is left.
 */
START_TEST(test_crash_before_commit_rename)
{
	struct harness_smtp	 s;
	struct harness_proc	*d;
	char			*body;
	size_t			 len;
	int			 code;

	dur_standin(NULL);
	d = dur_daemon("before-commit-rename", 0, NULL);
	body = dur_body("fcr-0", 1024, &len);
	dur_assert(dur_session(&s) == 0, "session: %s", s.reply);
	code = dur_transaction(&s, body, len);
	free(body);
	harness_smtp_close(&s);
	dur_assert(code == -1, "the client got %d %s", code, s.reply);
	dur_wait_fault(d, "before-commit-rename");
	dur_assert(dur_count("tmp") == 1, "tmp/ holds %d", dur_count("tmp"));
	dur_assert(dur_count("queue") == 0, "queue/ holds %d",
	    dur_count("queue"));

	d = dur_daemon(NULL, 0, NULL);
	dur_wait_log(d, "queued=0", 1);
	dur_assert(dur_count("tmp") == 0, "tmp/ not purged");
	dur_assert(dur_count("queue") == 0, "queue/ not empty");
	fprintf(stderr, "durability: crash before the commit's rename: "
	    "submitted 1, acknowledged 0, delivered 0\n");
}
END_TEST

/* The first stand-in file still being received, or "". */
static void
dur_receiving(char *name, size_t len)
{
	char	 dir[PATH_MAX];

	dur_fmt(dir, sizeof(dir), "%s", dur.mail);
	if (harness_first(dir, ".tmp-", name, len) == -1)
		name[0] = '\0';
	else if (strstr(name, ".eml") == NULL)
		name[0] = '\0';
}

/*
 * SIGKILL while the relay session is in DATA (the stand-in frozen with
 * SIGSTOP mid-message): the message is delivered whole after restart.
 */
START_TEST(test_crash_in_data)
{
	struct harness_proc	*d, *si;
	char			 id[64], name[256], path[PATH_MAX], *text;
	size_t			 want, got;
	double			 end;

	si = dur_standin(NULL);
	d = dur_daemon(NULL, 0, NULL);
	free(dur_body("fdata-0", DUR_BIG, &want));
	dur_submit("fdata-0", DUR_BIG, id, sizeof(id));
	end = harness_now() + dur_wait();
	name[0] = '\0';
	while (name[0] == '\0' && harness_now() < end &&
	    dur_delivered("fdata-", NULL, 0) == 0) {
		dur_receiving(name, sizeof(name));
		if (name[0] == '\0')
			dur_nap(1);
	}
	kill(si->pid, SIGSTOP);
	dur_assert(name[0] != '\0', "the relay was never seen in DATA");
	dur_assert(dur_delivered("fdata-", NULL, 0) == 0,
	    "the stand-in finished before the kill (make DUR_BIG larger)");
	harness_stop(d, SIGKILL, dur_wait());
	kill(si->pid, SIGCONT);

	d = dur_daemon(NULL, 0, NULL);
	dur_wait_count("queue", 0, dur_wait());
	dur_assert(dur_delivered("fdata-", NULL, 0) == 1, "%d copies",
	    dur_delivered("fdata-", NULL, 0));
	dur_fmt(path, sizeof(path), "%s/msg-000001.eml", dur.mail);
	text = harness_read_file(path, &got);
	dur_assert(text != NULL, "%s: %s", path, strerror(errno));
	free(text);
	dur_assert(got == want, "%zu bytes delivered, %zu sent", got, want);
	fprintf(stderr, "durability: crash with the relay in DATA: submitted "
	    "1 (%zu bytes), acknowledged 1, delivered 1, duplicates 0\n",
	    want);
}
END_TEST

/* ---- disk full ---- */

/*
 * Mount a tmpfs of DUR_TMPFS_SIZE on the queue directory, in a mount
 * namespace of this test process's own so that it disappears with the
 * test whatever happens.  false (the test is skipped, and says so) when
 * not root or when mounting is not permitted.
 */
static bool
dur_mount_tmpfs(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "durability: disk_full SKIPPED: not root "
		    "(mounting a tmpfs needs it)\n");
		return false;
	}
	if (unshare(CLONE_NEWNS) == -1 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1) {
		fprintf(stderr, "durability: disk_full SKIPPED: no private "
		    "mount namespace: %s\n", strerror(errno));
		return false;
	}
	dur_assert(mkdir(dur.queue, 0700) == 0 || errno == EEXIST,
	    "mkdir %s: %s", dur.queue, strerror(errno));
	if (mount("tmpfs", dur.queue, "tmpfs", MS_NOSUID | MS_NODEV,
	    "size=" DUR_TMPFS_SIZE ",mode=0700") == -1) {
		fprintf(stderr, "durability: disk_full SKIPPED: mount -t tmpfs "
		    "%s: %s\n", dur.queue, strerror(errno));
		return false;
	}
	dur_fmt(dur_mnt, sizeof(dur_mnt), "%s", dur.queue);
	return true;
}

/* Fill the queue's file system with <queue-dir>/filler until ENOSPC. */
static void
dur_fill(void)
{
	char	 path[PATH_MAX], buf[16384];
	int	 fd, i;
	ssize_t	 n = 0;

	memset(buf, 'f', sizeof(buf));
	dur_fmt(path, sizeof(path), "%s/filler", dur.queue);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	dur_assert(fd != -1, "%s: %s", path, strerror(errno));
	/* Bounded: the file system is DUR_TMPFS_SIZE. */
	for (i = 0; i < 4096; i++) {
		if ((n = write(fd, buf, sizeof(buf))) <= 0)
			break;
	}
	for (i = 0; n > 0 && i < 16384; i++)
		n = write(fd, buf, 1);
	dur_assert(n == -1 && errno == ENOSPC, "filler: no ENOSPC: %s",
	    strerror(errno));
	close(fd);
}

/* Free the space the filler took. */
static void
dur_unfill(void)
{
	char	 path[PATH_MAX];

	dur_fmt(path, sizeof(path), "%s/filler", dur.queue);
	dur_assert(unlink(path) == 0, "unlink %s: %s", path, strerror(errno));
}

/*
 * On a full queue file system: 452 4.3.1, nothing in tmp/, the daemon
 * keeps serving, and submissions succeed once space returns.  A state
 * update that fails for lack of space loses nothing: the message is
 * delivered once the relay answers.
 */
START_TEST(test_disk_full)
{
	struct harness_smtp	 s;
	struct harness_proc	*d;
	char			*body, id1[64], id2[64], port[16];
	char			 path[PATH_MAX], val[64], line[128];
	const char		*extra[] = { "--port", port, NULL };
	size_t			 len;
	int			 code, relay_port;

	if (!dur_mount_tmpfs())
		return;
	relay_port = harness_free_port();
	dur_assert(relay_port > 0, "no free port");
	d = dur_daemon(NULL, relay_port, NULL);
	dur_submit("full-1", 2048, id1, sizeof(id1));
	dur_qpath(path, sizeof(path), "queue", id1, "envelope");
	dur_assert(harness_wait_keyval(path, "attempts", "1", dur_wait()) == 0,
	    "the first deferral was not recorded");

	dur_fill();
	body = dur_body("full-x", 64 * 1024, &len);
	dur_assert(dur_session(&s) == 0, "session on a full disk: %s",
	    s.reply);
	code = dur_transaction(&s, body, len);
	free(body);
	dur_assert(code == 452 && strstr(s.reply, "4.3.1") != NULL,
	    "a submission on a full disk got %d %s", code, s.reply);
	dur_assert(dur_count("tmp") == 0, "tmp/ holds %d after the 452",
	    dur_count("tmp"));
	dur_assert(harness_smtp_cmd(&s, "NOOP") == 250, "NOOP: %s", s.reply);
	harness_smtp_close(&s);
	dur_assert(!harness_exited(d), "relayqd died on a full disk");

	/* A deferral now cannot record itself: the entry must survive. */
	dur_fmt(line, sizeof(line), "%s: cannot record the attempt", id1);
	dur_wait_log(d, line, 1);
	dur_assert(harness_keyval(path, "id", val, sizeof(val)) == 0 &&
	    strcmp(val, id1) == 0, "envelope unreadable after a failed "
	    "update: %s", val);
	dur_assert(harness_keyval(path, "attempts", val, sizeof(val)) == 0 &&
	    strcmp(val, "1") == 0, "envelope attempts %s", val);

	dur_unfill();
	dur_submit("full-2", 64 * 1024, id2, sizeof(id2));
	dur_wait_count("queue", 2, dur_wait());

	/* The relay comes up while the disk is full again. */
	dur_fill();
	dur_fmt(port, sizeof(port), "%d", relay_port);
	dur_standin(extra);
	dur_wait_delivered("full-", 2, dur_wait());
	dur_wait_count("queue", 0, dur_wait());
	dur_assert(dur_delivered("full-x", NULL, 0) == 0, "the 452'd message "
	    "was delivered");
	dur_assert(dur_count("tmp") == 0, "tmp/ not empty");
	dur_unfill();
	fprintf(stderr, "durability: disk full (tmpfs %s): submitted 3, "
	    "refused with 452 4.3.1: 1, acknowledged 2, delivered 2\n",
	    DUR_TMPFS_SIZE);
}
END_TEST

/* ---- SIGTERM with work in flight ---- */

/* A TCP listener on 127.0.0.1 that never accepts; its port in *port. */
static int
dur_black_hole(int *port)
{
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof(sin);
	int			 fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	dur_assert(fd != -1, "socket: %s", strerror(errno));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	dur_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    listen(fd, 16) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &slen) == 0,
	    "listener: %s", strerror(errno));
	*port = ntohs(sin.sin_port);
	return fd;
}

/*
 * SIGTERM while three relay sessions wait for a banner and two
 * submissions are unfinished: the unfinished ones get no 250, the
 * daemon exits 0, and the three are delivered after the restart.
 */
START_TEST(test_sigterm_in_flight)
{
	struct harness_smtp	 s1, s2;
	struct harness_proc	*d;
	char			 id[64], token[32], *body;
	size_t			 len;
	int			 hole, port, i, status, c1, c2;

	hole = dur_black_hole(&port);
	d = dur_daemon(NULL, port, NULL);
	for (i = 0; i < 3; i++) {
		dur_fmt(token, sizeof(token), "term-%d", i);
		dur_submit(token, 4096, id, sizeof(id));
	}
	dur_wait_log(d, "attempt relay=", 3);

	dur_assert(dur_session(&s1) == 0, "s1: %s", s1.reply);
	dur_assert(harness_smtp_cmd(&s1, "MAIL FROM:<%s>", DUR_SENDER) ==
	    250 && harness_smtp_cmd(&s1, "RCPT TO:<%s>", DUR_RCPT) == 250 &&
	    harness_smtp_cmd(&s1, "DATA") == 354, "s1: %s", s1.reply);
	body = dur_body("term-x", 8192, &len);
	dur_assert(harness_smtp_write(&s1, body, len / 2) == 0, "s1 write");
	free(body);
	dur_assert(dur_session(&s2) == 0, "s2: %s", s2.reply);
	dur_assert(harness_smtp_cmd(&s2, "MAIL FROM:<%s>", DUR_SENDER) ==
	    250 && harness_smtp_cmd(&s2, "RCPT TO:<%s>", DUR_RCPT) == 250,
	    "s2: %s", s2.reply);

	status = harness_stop(d, SIGTERM, dur_wait());
	dur_assert(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "SIGTERM: status 0x%x",
	    (unsigned)status);
	c1 = harness_smtp_reply(&s1);
	c2 = harness_smtp_cmd(&s2, "DATA");
	dur_assert(c1 == -1 || c1 == 421, "mid-DATA session got %d %s", c1,
	    s1.reply);
	dur_assert(c2 == -1 || c2 == 421, "session after RCPT got %d %s", c2,
	    s2.reply);
	harness_smtp_close(&s1);
	harness_smtp_close(&s2);
	close(hole);
	dur_assert(dur_count("queue") == 3, "queue/ holds %d, not 3",
	    dur_count("queue"));
	dur_assert(dur_count("tmp") == 0 || dur_count("tmp") == 1,
	    "tmp/ holds %d", dur_count("tmp"));

	dur_standin(NULL);
	d = dur_daemon(NULL, 0, NULL);
	dur_assert(dur_count("tmp") == 0, "tmp/ not purged");
	dur_wait_delivered("term-", 3, dur_wait());
	dur_wait_count("queue", 0, dur_wait());
	dur_assert(dur_delivered("term-x", NULL, 0) == 0,
	    "the unacknowledged message was delivered");
	fprintf(stderr, "durability: SIGTERM in flight: submitted 5, "
	    "acknowledged 3 (2 unfinished got %d and %d), delivered %d\n",
	    c1, c2, dur_delivered("term-", NULL, 0));
}
END_TEST

/*
 * The fault points exist in build/tests/relayqd-fault only: the
 * production binary holds none of their strings.
 */
START_TEST(test_faults_only_in_test_build)
{
	static const char *const needles[] = {
		"RELAYQ_FAULT", "fault injected", "after-remote-250",
		"during-envelope-update"
	};
	char	 path[PATH_MAX], *bin;
	size_t	 len, i;

	dur_fmt(path, sizeof(path), "%s/relayqd", dur.build);
	bin = harness_read_file(path, &len);
	dur_assert(bin != NULL && len > 10000, "%s: %s", path,
	    strerror(errno));
	for (i = 0; i < nitems(needles); i++)
		dur_assert(harness_memcount(bin, len, needles[i]) == 0,
		    "%s contains \"%s\"", path, needles[i]);
	free(bin);
	dur_fmt(path, sizeof(path), "%s/tests/relayqd-fault", dur.build);
	bin = harness_read_file(path, &len);
	dur_assert(bin != NULL, "%s: %s", path, strerror(errno));
	for (i = 0; i < nitems(needles); i++)
		dur_assert(harness_memcount(bin, len, needles[i]) >= 1,
		    "%s lacks \"%s\"", path, needles[i]);
	free(bin);
}
END_TEST

/* ---- the queue's files ---- */

/* Write text into <queue-dir>/queue/<id>/<file> (append or replace). */
static void
dur_write(const char *id, const char *file, const char *text, bool append)
{
	char	 path[PATH_MAX];
	FILE	*fp;

	dur_qpath(path, sizeof(path), "queue", id, file);
	fp = fopen(path, append ? "a" : "w");
	dur_assert(fp != NULL, "%s: %s", path, strerror(errno));
	fputs(text, fp);
	fclose(fp);
}

/* Truncate queue/<id>/<file> to half its size. */
static void
dur_truncate_half(const char *id, const char *file)
{
	char		 path[PATH_MAX];
	struct stat	 st;

	dur_qpath(path, sizeof(path), "queue", id, file);
	dur_assert(stat(path, &st) == 0 && truncate(path, st.st_size / 2) ==
	    0, "%s: %s", path, strerror(errno));
}

/* Remove queue/<id>/<file>. */
static void
dur_remove(const char *id, const char *file)
{
	char	 path[PATH_MAX];

	dur_qpath(path, sizeof(path), "queue", id, file);
	dur_assert(unlink(path) == 0, "%s: %s", path, strerror(errno));
}

/* name was logged once by name with why, and moved to failed/ with it. */
static void
dur_assert_quarantined(struct harness_proc *d, const char *name,
    const char *why, bool dir)
{
	char	 path[PATH_MAX], *text;

	dur_assert(harness_grep_lines(d->log, name, "moved to failed/") == 1,
	    "%s: not logged once as moved to failed/", name);
	dur_assert(harness_grep_lines(d->log, name, why) >= 1,
	    "%s: the log does not say \"%s\"", name, why);
	dur_qpath(path, sizeof(path), "failed", name, NULL);
	dur_assert(access(path, F_OK) == 0, "%s missing", path);
	if (!dir)
		return;
	dur_qpath(path, sizeof(path), "failed", name, "REASON");
	text = harness_read_file(path, NULL);
	dur_assert(text != NULL && strstr(text, why) != NULL,
	    "%s: \"%s\" expected", path, text ? text : strerror(errno));
	free(text);
	dur_qpath(path, sizeof(path), "failed", name, "credentials");
	dur_assert(access(path, F_OK) == -1, "%s kept", path);
}

/*
 * Corrupt and foreign entries found at start-up are logged by name and
 * moved to failed/ with the reason, once; the good one is delivered, an
 * entry marked DELETE is removed, and the daemon keeps serving.
 */
START_TEST(test_corrupt_entries)
{
	struct harness_proc	*d;
	char			 ids[6][64], token[96], path[PATH_MAX];
	FILE			*fp;
	int			 i, dead;

	dead = harness_free_port();
	d = dur_daemon(NULL, dead, NULL);
	for (i = 0; i < 6; i++) {
		dur_fmt(token, sizeof(token), "bad-%d", i);
		dur_submit(token, 1024, ids[i], sizeof(ids[i]));
	}
	dur_assert(WEXITSTATUS(harness_stop(d, SIGTERM, dur_wait())) == 0,
	    "relayqd did not stop cleanly");
	dur_truncate_half(ids[0], "envelope");
	dur_write(ids[1], "envelope", "colour: blue\n", true);
	dur_remove(ids[2], "message.eml");
	dur_remove(ids[3], "credentials");
	dur_write(ids[4], "DELETE", "", false);
	dur_qpath(path, sizeof(path), "queue", "stray-file.txt", NULL);
	fp = fopen(path, "w");
	dur_assert(fp != NULL, "%s: %s", path, strerror(errno));
	fputs("not an entry\n", fp);
	fclose(fp);
	dur_qpath(path, sizeof(path), "queue", "notes", NULL);
	dur_assert(mkdir(path, 0700) == 0, "mkdir %s", path);

	dur_standin(NULL);
	d = dur_daemon(NULL, 0, NULL);
	dur_wait_delivered("bad-5", 1, dur_wait());
	dur_wait_count("queue", 0, dur_wait());
	dur_assert_quarantined(d, ids[0], "envelope", true);
	dur_assert_quarantined(d, ids[1], "unknown key", true);
	dur_assert_quarantined(d, ids[2], "message.eml: missing", true);
	dur_assert_quarantined(d, ids[3], "credentials: missing", true);
	dur_assert_quarantined(d, "stray-file.txt", "not an entry directory",
	    false);
	dur_assert_quarantined(d, "notes", "envelope: missing", true);
	dur_fmt(token, sizeof(token), "%s deleted by request", ids[4]);
	dur_assert(harness_grep(d->log, token) == 1, "no \"%s\"", token);
	dur_assert(dur_count("failed") == 6, "failed/ holds %d",
	    dur_count("failed"));
	dur_assert(dur_delivered("bad-", NULL, 0) == 1, "%d delivered",
	    dur_delivered("bad-", NULL, 0));

	/* Still serving, and a rescan does not touch them again. */
	kill(d->pid, SIGHUP);
	dur_wait_log(d, "rescanning the queue", 1);
	dur_submit("bad-after", 1024, ids[0], sizeof(ids[0]));
	dur_wait_delivered("bad-after", 1, dur_wait());
	dur_assert(harness_grep(d->log, "moved to failed/") == 6,
	    "quarantine logged %d times", harness_grep(d->log,
	    "moved to failed/"));
	dur_assert(!harness_exited(d), "relayqd died");
}
END_TEST

/* The mode bits of path. */
static unsigned
dur_mode(const char *path)
{
	struct stat	 st;

	dur_assert(lstat(path, &st) == 0, "%s: %s", path, strerror(errno));
	return (unsigned)(st.st_mode & 07777);
}

/*
 * Queue directories are 0700 and the entry's files 0600; the daemon
 * refuses to start, saying why, on a queue writable by others.
 */
START_TEST(test_permissions)
{
	static const char *const subs[] = { "tmp", "queue", "failed" };
	static const char *const files[] = {
		"envelope", "message.eml", "credentials"
	};
	struct harness_proc	*d;
	char			 id[64], path[PATH_MAX], bin[PATH_MAX];
	char			 *argv[] = { bin, (char *)(uintptr_t)"-f",
				    (char *)(uintptr_t)"--socket", dur.socket,
				    (char *)(uintptr_t)"--queue-dir", dur.queue,
				    NULL };
	size_t			 i;
	int			 status;

	d = dur_daemon(NULL, harness_free_port(), NULL);
	dur_submit("perm-0", 1024, id, sizeof(id));
	dur_assert(dur_mode(dur.queue) == 0700, "%s: %04o", dur.queue,
	    dur_mode(dur.queue));
	for (i = 0; i < nitems(subs); i++) {
		dur_qpath(path, sizeof(path), subs[i], NULL, NULL);
		dur_assert(dur_mode(path) == 0700, "%s: %04o", path,
		    dur_mode(path));
	}
	dur_qpath(path, sizeof(path), "queue", id, NULL);
	dur_assert(dur_mode(path) == 0700, "%s: %04o", path, dur_mode(path));
	for (i = 0; i < nitems(files); i++) {
		dur_qpath(path, sizeof(path), "queue", id, files[i]);
		dur_assert(dur_mode(path) == 0600, "%s: %04o", path,
		    dur_mode(path));
	}
	status = harness_stop(d, SIGTERM, dur_wait());
	dur_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "stop");

	dur_fmt(bin, sizeof(bin), "%s/relayqd", dur.build);
	dur_assert(chmod(dur.queue, 0702) == 0, "chmod");
	d = harness_spawn(&dur, "relayqd-o+w", argv);
	dur_assert(d != NULL, "spawn");
	status = harness_wait_exit(d, dur_wait());
	dur_assert(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) != 0, "relayqd ran on a world-writable "
	    "queue: status 0x%x", (unsigned)status);
	dur_assert(harness_grep(d->log, "group or other writable") == 1 &&
	    harness_grep(d->log, dur.queue) >= 1, "no clear message in %s",
	    d->log);

	dur_assert(chmod(dur.queue, 0700) == 0, "chmod");
	dur_qpath(path, sizeof(path), "queue", NULL, NULL);
	dur_assert(chmod(path, 0770) == 0, "chmod");
	d = harness_spawn(&dur, "relayqd-g+w", argv);
	dur_assert(d != NULL, "spawn");
	status = harness_wait_exit(d, dur_wait());
	dur_assert(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) != 0, "relayqd ran on a group-writable "
	    "queue/: status 0x%x", (unsigned)status);
	dur_assert(harness_grep(d->log, "/queue: group or other writable") ==
	    1, "no clear message in %s", d->log);
	fprintf(stderr, "durability: refusal on a writable queue: exit "
	    "status %d\n", WEXITSTATUS(status));
}
END_TEST

/*
 * With the relay down, --retry-min 1 --retry-max 4 --max-age 3: the
 * delays double (1 s, 2 s), then the message goes to failed/ with a
 * "gave up" reason and the attempts recorded, without its credentials.
 */
START_TEST(test_max_age_gives_up)
{
	static const char *const extra[] = {
		"--retry-min", "1", "--retry-max", "4", "--max-age", "3", NULL
	};
	struct harness_proc	*d;
	char			 id[64], path[PATH_MAX], val[1100], line[160];
	char			*end;
	unsigned long		 attempts;

	d = dur_daemon(NULL, harness_free_port(), extra);
	dur_submit("age-0", 1024, id, sizeof(id));
	dur_qpath(path, sizeof(path), "failed", id, "envelope");
	dur_assert(harness_wait_file(path, d, harness_scale(15)) == 0,
	    "%s never appeared", path);
	dur_fmt(line, sizeof(line), "%s deferred", id);
	dur_assert(harness_grep_lines(d->log, line, "attempts=1 next=1s") ==
	    1, "first delay is not 1 s");
	dur_assert(harness_grep_lines(d->log, line, "attempts=2 next=2s") ==
	    1, "second delay is not 2 s");
	dur_assert(harness_keyval(path, "state", val, sizeof(val)) == 0 &&
	    strcmp(val, "failed") == 0, "state: %s", val);
	dur_assert(harness_keyval(path, "attempts", val, sizeof(val)) == 0,
	    "no attempts");
	attempts = strtoul(val, &end, 10);
	dur_assert(*end == '\0' && attempts >= 2 && attempts <= 4,
	    "attempts: %s", val);
	dur_assert(harness_keyval(path, "last-reply", val, sizeof(val)) == 0 &&
	    strncmp(val, "gave up after ", 14) == 0, "last-reply: %s", val);
	dur_fmt(line, sizeof(line), "%s failed", id);
	dur_assert(harness_grep_lines(d->log, line, "gave up after") == 1,
	    "the give-up is not logged");
	dur_qpath(path, sizeof(path), "failed", id, "credentials");
	dur_assert(access(path, F_OK) == -1, "%s kept", path);
	dur_assert(dur_count("queue") == 0, "still queued");
}
END_TEST

/*
 * relayq --delete's side of the lock protocol: while relayed, the entry
 * directory is flock'ed; a DELETE marker left then is honoured when the
 * attempt ends.
 */
START_TEST(test_delete_marker_while_relaying)
{
	struct harness_proc	*d;
	char			 id[64], path[PATH_MAX], line[128];
	int			 hole, port, fd;

	hole = dur_black_hole(&port);
	d = dur_daemon(NULL, port, NULL);
	dur_submit("del-0", 1024, id, sizeof(id));
	dur_wait_log(d, "attempt relay=", 1);
	dur_qpath(path, sizeof(path), "queue", id, NULL);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dur_assert(fd != -1, "%s: %s", path, strerror(errno));
	dur_assert(flock(fd, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK,
	    "the entry being relayed is not locked");
	close(fd);
	dur_write(id, "DELETE", "", false);
	close(hole);		/* resets the pending connection */
	dur_fmt(line, sizeof(line), "%s deleted by request", id);
	dur_wait_log(d, line, 1);
	dur_assert(access(path, F_OK) == -1, "%s still there", path);
	dur_assert(dur_count("failed") == 0, "moved to failed/");
}
END_TEST

/*
 * Out of file descriptors (relayqd's RLIMIT_NOFILE lowered to 3 with
 * prlimit, so every open fails with EMFILE): a deferred entry is
 * postponed, neither counted as an attempt nor moved to failed/; its
 * envelope and credentials stay as they were, and it is delivered once
 * descriptors are free again.
 */
START_TEST(test_fd_exhaustion)
{
	struct harness_proc	*d;
	struct rlimit		 old, low;
	char			 id[64], port[16], line[128];
	char			 envp[PATH_MAX], credp[PATH_MAX];
	char			*env0, *cred0, *env1, *cred1;
	const char		*extra[] = { "--port", port, NULL };
	const char		*needles[] = { line, "moved to failed/", NULL };
	int			 relay_port, found;

	relay_port = harness_free_port();
	dur_assert(relay_port > 0, "no free port");
	d = dur_daemon(NULL, relay_port, NULL);
	dur_submit("fd-0", 1024, id, sizeof(id));
	dur_qpath(envp, sizeof(envp), "queue", id, "envelope");
	dur_qpath(credp, sizeof(credp), "queue", id, "credentials");
	dur_assert(harness_wait_keyval(envp, "attempts", "1", dur_wait()) == 0,
	    "the first deferral was not recorded");

	dur_assert(prlimit(d->pid, RLIMIT_NOFILE, NULL, &old) == 0,
	    "prlimit: %s", strerror(errno));
	low = old;
	low.rlim_cur = 3;
	dur_assert(prlimit(d->pid, RLIMIT_NOFILE, &low, NULL) == 0,
	    "prlimit: %s", strerror(errno));
	dur_fmt(line, sizeof(line), "%s postponed", id);
	found = harness_wait_any(d->log, needles, dur_wait());
	dur_assert(found == 0, "out of descriptors, %s was %s", id,
	    found == 1 ? "moved to failed/" : "never postponed");
	/* From here on nothing can be opened: the files must not change. */
	env0 = harness_read_file(envp, NULL);
	cred0 = harness_read_file(credp, NULL);
	dur_assert(env0 != NULL && cred0 != NULL, "%s: %s", id,
	    strerror(errno));
	dur_wait_log(d, line, 2);
	env1 = harness_read_file(envp, NULL);
	cred1 = harness_read_file(credp, NULL);
	dur_assert(env1 != NULL && strcmp(env0, env1) == 0,
	    "the envelope changed:\n%s\n----\n%s", env0, env1 ? env1 : "");
	dur_assert(cred1 != NULL && strcmp(cred0, cred1) == 0,
	    "the credentials changed");
	free(env1);
	free(cred0);
	free(cred1);
	dur_assert(dur_count("failed") == 0 && dur_count("queue") == 1,
	    "failed/ holds %d, queue/ %d", dur_count("failed"),
	    dur_count("queue"));
	dur_assert(harness_grep_lines(d->log, line, "not counted") >= 2,
	    "the postponement does not say it is not counted");

	dur_assert(prlimit(d->pid, RLIMIT_NOFILE, &old, NULL) == 0,
	    "prlimit: %s", strerror(errno));
	dur_fmt(port, sizeof(port), "%d", relay_port);
	dur_standin(extra);
	dur_wait_delivered("fd-0", 1, dur_wait());
	dur_wait_count("queue", 0, dur_wait());
	dur_assert(harness_grep(d->log, "moved to failed/") == 0 &&
	    harness_grep(d->log, "unreadable") == 0,
	    "the entry was taken for a bad one");
	dur_assert(strstr(env0, "attempts: 1\n") != NULL, "attempts counted "
	    "while out of descriptors:\n%s", env0);
	free(env0);
	fprintf(stderr, "durability: out of descriptors: postponed %d times, "
	    "envelope and credentials unchanged, delivered after\n",
	    harness_grep(d->log, line));
}
END_TEST

/* ---- suites ---- */

/* A TCase with the per-test fixture and a long timeout. */
static TCase *
dur_tcase(const char *name, int timeout)
{
	TCase	*tc = tcase_create(name);

	tcase_add_checked_fixture(tc, dur_setup, dur_teardown);
	tcase_set_timeout(tc, timeout);
	return tc;
}

Suite	*crash_suite(void);
Suite	*disk_full_suite(void);
Suite	*shutdown_suite(void);
Suite	*queue_files_suite(void);

/* SIGKILL during intake and at each fault point, and in DATA. */
Suite *
crash_suite(void)
{
	Suite	*s = suite_create("crash");
	TCase	*tc;

	tc = dur_tcase("intake", DUR_TIMEOUT);
	tcase_add_loop_test(tc, test_crash_intake, 0, DUR_RUNS);
	suite_add_tcase(s, tc);
	tc = dur_tcase("faults", DUR_TIMEOUT);
	tcase_add_test(tc, test_crash_after_remote_250);
	tcase_add_test(tc, test_crash_after_remove);
	tcase_add_test(tc, test_crash_during_envelope_update);
	tcase_add_test(tc, test_crash_before_commit_rename);
	tcase_add_test(tc, test_crash_in_data);
	tcase_add_test(tc, test_faults_only_in_test_build);
	suite_add_tcase(s, tc);
	return s;
}

/* The queue on a full tmpfs. */
Suite *
disk_full_suite(void)
{
	Suite	*s = suite_create("disk_full");
	TCase	*tc = dur_tcase("tmpfs", DUR_TIMEOUT);

	tcase_add_test(tc, test_disk_full);
	suite_add_tcase(s, tc);
	return s;
}

/* SIGTERM with work in flight. */
Suite *
shutdown_suite(void)
{
	Suite	*s = suite_create("shutdown");
	TCase	*tc = dur_tcase("in_flight", DUR_TIMEOUT);

	tcase_add_test(tc, test_sigterm_in_flight);
	suite_add_tcase(s, tc);
	return s;
}

/* Corrupt entries, modes, give-up, the DELETE marker, EMFILE. */
Suite *
queue_files_suite(void)
{
	Suite	*s = suite_create("queue_files");
	TCase	*tc = dur_tcase("files", DUR_TIMEOUT);

	tcase_add_test(tc, test_corrupt_entries);
	tcase_add_test(tc, test_permissions);
	tcase_add_test(tc, test_max_age_gives_up);
	tcase_add_test(tc, test_delete_marker_while_relaying);
	tcase_add_test(tc, test_fd_exhaustion);
	suite_add_tcase(s, tc);
	return s;
}
