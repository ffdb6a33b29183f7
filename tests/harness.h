/*
 * harness.h: what the integration tests use to run the real programs.
 *
 * Each test gets a fresh mkdtemp directory holding the daemon's socket,
 * its queue, the stand-in's mail directory and one log file per spawned
 * process; harness_fini() stops every process it started (by recorded
 * pid, reaped with waitpid) and removes the directory.  Spawned processes
 * run in their own process group and die with the test (PR_SET_PDEATHSIG).
 * Every wait is a bounded poll: HARNESS_WAIT seconds by default, scaled
 * by $CK_TIMEOUT_MULTIPLIER.
 *
 * Environment: $RELAYQ_BUILD (default "build") holds relayqd, relayq,
 * tests/standin and tests/certs/; $RELAYQ_SRC (default: the directory
 * this file was compiled from) is the source tree, for client/image.png;
 * $RELAYQ_KEEP set keeps the test directories for a post-mortem.
 */
#ifndef RELAYQ_HARNESS_H
#define RELAYQ_HARNESS_H

#include <sys/types.h>

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define HARNESS_WAIT		20.0	/* seconds, before the multiplier */
#define HARNESS_PROCS_MAX	8
#define HARNESS_REPLY_MAX	4096
/* The bytes of each log that harness_dump shows; of relayq's transcript. */
#define HARNESS_DUMP_TAIL	8000
#define HARNESS_DUMP_CLIENT_TAIL 600

enum harness_proc_state {
	HARNESS_PROC_RUNNING,
	HARNESS_PROC_EXITED,	/* reaped; status holds the wait status */
	HARNESS_PROC_UNUSED
};

struct harness_proc {
	enum harness_proc_state	 state;
	pid_t			 pid;
	int			 status;	/* from waitpid, once EXITED */
	char			 name[32];
	char			 log[PATH_MAX];	/* its stdout and stderr */
};

struct harness {
	char			 dir[PATH_MAX];		/* the mkdtemp dir */
	char			 build[PATH_MAX];	/* absolute build dir */
	char			 src[PATH_MAX];		/* source tree */
	char			 certs[PATH_MAX];	/* build/tests/certs */
	char			 socket[PATH_MAX];	/* dir/relayq.sock */
	char			 queue[PATH_MAX];	/* dir/spool */
	char			 mail[PATH_MAX];	/* dir/mail */
	int			 port;			/* stand-in's, or 0 */
	struct harness_proc	 procs[HARNESS_PROCS_MAX];
	size_t			 nprocs;
};

/* A blocking SMTP client on a Unix socket, for submissions by hand. */
struct harness_smtp {
	int			 fd;
	char			 in[HARNESS_REPLY_MAX];
	size_t			 inlen;
	int			 code;		/* of the last reply */
	/* The last reply, every line with its code, joined by '\n'. */
	char			 reply[HARNESS_REPLY_MAX];
};

/*
 * For the Check suites' assertions: unless cond, format the message
 * first (its arguments may read the test directory), then run dump and
 * fini (which print the logs and remove the directory) and fail the test.
 * A failed test leaves its fork at once, so the teardown does not run.
 */
#define HARNESS_WHY_MAX		8192	/* a longer message is cut */
#define harness_check(cond, dump, fini, ...) do {			\
	if (!(cond)) {							\
		char	 harness_why_[HARNESS_WHY_MAX];		\
									\
		if (snprintf(harness_why_, sizeof(harness_why_),	\
		    __VA_ARGS__) < 0)					\
			harness_why_[0] = '\0';				\
		dump;							\
		fini;							\
		ck_abort_msg("%s", harness_why_);			\
	}								\
} while (0)

/* Create the per-test directory and resolve the paths.  0 or -1. */
int	harness_init(struct harness *);
/* Stop every process still running, then remove the directory. */
void	harness_fini(struct harness *);
/*
 * SIGTERM every process still running, the last started first; each must
 * exit 0.  0, or -1 with the first that did not described in why.
 */
int	harness_stop_all(struct harness *, char *why, size_t whylen);
/* Print the end of each process log and of the stand-in's events.log. */
void	harness_dump(const struct harness *);
/* Monotonic seconds. */
double	harness_now(void);
/* Format into buf; 0, or -1 (ENAMETOOLONG) if it does not fit. */
int	harness_fmt(char *buf, size_t len, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* The multiplied wait, in seconds, for secs before the multiplier. */
double	harness_scale(double secs);

/*
 * Start argv[0] (a path) with stdout and stderr appended to
 * dir/<name>-<n>.log, stdin from /dev/null, in its own process group,
 * killed when the test process dies.  NULL on failure.
 */
struct harness_proc *harness_spawn(struct harness *, const char *name,
	    char *const argv[]);
/* The same with input (unless NULL) as its stdin, through a 0600 file. */
struct harness_proc *harness_spawn_input(struct harness *, const char *name,
	    char *const argv[], const char *input);
/*
 * Send sig to p's pid (unless it already exited) and reap it within secs
 * (then SIGKILL and reap).  Returns the wait status, or -1.
 */
int	harness_stop(struct harness_proc *, int sig, double secs);
/* Reap p if it has exited; true when it is no longer running. */
bool	harness_exited(struct harness_proc *);
/* Wait up to secs for p to exit by itself; its wait status or -1. */
int	harness_wait_exit(struct harness_proc *, double secs);

/* Wait until path exists; 0, or -1 on timeout or if watch exits first. */
int	harness_wait_file(const char *path, struct harness_proc *watch,
	    double secs);
/* Wait until path no longer exists; 0 or -1 on timeout. */
int	harness_wait_gone(const char *path, double secs);
/* Wait until a Unix socket at path accepts a connection; 0 or -1. */
int	harness_wait_socket(const char *path, struct harness_proc *watch,
	    double secs);
/* Wait until path contains needle at least n times; 0 or -1. */
int	harness_wait_grep(const char *path, const char *needle, int n,
	    double secs);
/*
 * Wait until the file contains one of the NULL-terminated needles; the
 * index of the first found (in needle order), or -1 on timeout.
 */
int	harness_wait_any(const char *path, const char *const *needles,
	    double secs);
/* Wait until dir holds exactly n entries whose names start with prefix. */
int	harness_wait_count(const char *dir, const char *prefix, int n,
	    double secs);

/*
 * The whole file in a new NUL-terminated malloc'd buffer (the length,
 * without the NUL, in *lenp if not NULL).  NULL with errno.
 */
char	*harness_read_file(const char *path, size_t *lenp);
/*
 * Entries of dir whose names start with prefix; names starting with a dot
 * (., .., a queue/.<ID> removal in progress) only when prefix does.  -1 on
 * error.
 */
int	harness_count(const char *dir, const char *prefix);
/* The first entry name of dir starting with prefix, into buf; 0 or -1. */
int	harness_first(const char *dir, const char *prefix, char *buf,
	    size_t len);
/* How many times needle occurs in the file (0 if it does not exist). */
int	harness_grep(const char *path, const char *needle);
/* How many lines of the file contain both a and b (b may be NULL). */
int	harness_grep_lines(const char *path, const char *a, const char *b);
/* How many times needle occurs in the len bytes at hay. */
int	harness_memcount(const void *hay, size_t len, const char *needle);
/*
 * The value of the first "key: value" line of a text file (an envelope or
 * a stand-in .meta) into buf; 0, or -1 if absent or unreadable.
 */
int	harness_keyval(const char *path, const char *key, char *buf,
	    size_t len);

/* Wait until harness_keyval(path, key) reads exactly value; 0 or -1. */
int	harness_wait_keyval(const char *path, const char *key,
	    const char *value, double secs);

/*
 * Base64 (OpenSSL's codec, independent of common/base64.c).  encode: a
 * new NUL-terminated string.  decode: skips CR and LF; a new buffer and
 * its length in *outlen, or NULL on invalid input.
 */
char	*harness_b64_encode(const void *, size_t);
unsigned char *harness_b64_decode(const char *, size_t, size_t *outlen);

/* Connect and read the banner; the banner's code, or -1. */
int	harness_smtp_open(struct harness_smtp *, const char *path);
/* Send a command line (CRLF added) and read one reply; its code or -1. */
int	harness_smtp_cmd(struct harness_smtp *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Send raw bytes; 0 or -1. */
int	harness_smtp_write(struct harness_smtp *, const void *, size_t);
/* Read one whole (possibly multi-line) reply; its code or -1. */
int	harness_smtp_reply(struct harness_smtp *);
/*
 * Send a message body with dot-stuffing (lines end in CRLF) and the
 * final ".", and read the reply; its code or -1.
 */
int	harness_smtp_data(struct harness_smtp *, const char *body, size_t len);
void	harness_smtp_close(struct harness_smtp *);

/*
 * Find "queued as ID" in text and copy ID (without any <>) to buf.
 * 0 or -1.
 */
int	harness_queue_id(const char *text, char *buf, size_t len);

/*
 * Start the stand-in: --port-file, --mail-dir, --cert certs/<cert>.pem
 * --key certs/<cert>.key (cert NULL: "server"), then the NULL-terminated
 * extra arguments (may be NULL).  Sets h->port.  NULL on failure.
 */
struct harness_proc *harness_standin(struct harness *, const char *cert,
	    const char *const *extra);
/*
 * Start relayqd -f -v with --socket, --queue-dir, --relay
 * <host>:<port>, --ca-file certs/ca.pem, --retry-min 1, --retry-max 2,
 * --relay-timeout 5, then extra (may be NULL); host NULL means
 * 127.0.0.1, port 0 means h->port.  Waits until the socket accepts.
 * NULL on failure.
 */
struct harness_proc *harness_relayqd(struct harness *, const char *host,
	    int port, const char *const *extra);
/*
 * Run the relayq client against h->socket and wait for it (bounded),
 * with input (unless NULL) on its stdin, for a password of "-".  Its
 * stdout and stderr go to *out (malloc'd, NUL-terminated); its wait
 * status to *status.  0, or -1 if it could not be run or did not finish.
 */
int	harness_client(struct harness *, const char *sender,
	    const char *password, const char *rcpt, const char *input,
	    char **out, int *status);

/* An unused ephemeral TCP port on 127.0.0.1 (bound, then closed). */
int	harness_free_port(void);

/* What harness_spawn_with sets up in the child besides the usual. */
struct harness_spawn_opts {
	const char		*input;		/* stdin text, or NULL */
	/*
	 * >= 0: becomes the child's fd 3 with LISTEN_FDS=1 and LISTEN_PID
	 * set to the child's own pid, as systemd's socket activation does.
	 */
	int			 listen_fd;
	const char *const	*env;		/* "NAME=value", NULL-terminated */
	uid_t			 uid;		/* when root: run as this uid (and
						   gid); 0 leaves it */
};

/*
 * harness_spawn_input with the options above (o may be NULL).  The
 * child's environment is the test's, without JOURNAL_STREAM,
 * NOTIFY_SOCKET, LISTEN_* and WATCHDOG_*, plus o->env.
 */
struct harness_proc *harness_spawn_with(struct harness *, const char *name,
	    char *const argv[], const struct harness_spawn_opts *o);

#endif /* RELAYQ_HARNESS_H */
