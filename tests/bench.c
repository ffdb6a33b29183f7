/*
 * bench.c: `make bench`, relayq's benchmark (issue 7).  It measures and
 * reports; it asserts nothing about speed.
 *
 * In a fresh directory under the build directory (on the real disk):
 *   1. the disk's ceiling: write + fsync + rename + directory fsync of
 *	message-sized files, from 1 thread and from C threads;
 *   2. the stand-in (--discard) and relayqd with its defaults, relaying
 *	over STARTTLS + AUTH to the stand-in;
 *   3. idle latency: one message at a time, submit to arrival, and the
 *	same through a direct client (STARTTLS + AUTH + send, no relayqd);
 *   4. the burst: N messages from C concurrent submitters; intake rate
 *	and latency (to the 250 after the durable write), end to end rate
 *	and latency (to arrival at the stand-in), CPU and peak RSS;
 *   4b. the same N with the stand-in stopped (relay sessions wait for its
 *	banner), so intake is measured without relaying competing for the
 *	CPU, then the drain of those N once it resumes;
 *   5. one big message (30 MB): peak RSS while receiving and relaying;
 *   6. a queue filled with 10,000 entries: start-up time, RSS, and RSS
 *	while it drains for a few seconds.
 * With --rtt MS, tests/latency_proxy sits in front of the stand-in and
 * both relayqd and the direct client of phase 3 go through it, so every
 * round trip costs MS as it would against Gmail.  With --compare-reuse,
 * phase 4's end to end is run a second time by a relayqd started with
 * --conn-messages=1 (one message per connection), and the ratio of the
 * two rates is reported.
 * The table goes to stdout, the same figures as JSON to build/bench.json.
 * Every process is stopped and the directory removed at the end, also
 * after a failure or SIGINT/SIGTERM.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "harness.h"
#include "log.h"
#include "util.h"

#define BENCH_ARGS_MAX		16
#define BENCH_START_WAIT	30.0	/* seconds for a process to be ready */
#define BENCH_SLOT_WAIT		60.0	/* seconds for one message to arrive */
#define MB			(1024 * 1024)

struct bench_opts {
	size_t		 n;		/* burst messages */
	size_t		 conc;		/* submitters, and disk threads */
	size_t		 size;		/* bytes per message */
	size_t		 idle;		/* idle-latency samples */
	size_t		 queued;	/* entries for the start-up test */
	size_t		 big;		/* the big message's bytes */
	double		 disk_secs;
	double		 drain_secs;
	double		 timeout;	/* for the burst to arrive */
	unsigned	 rtt;		/* ms through latency_proxy; 0: none */
	bool		 compare_reuse;	/* the burst again, reuse off */
	const char	*json;
	const char	*dargs[BENCH_ARGS_MAX];
	size_t		 ndargs;
	int		 verbose;
};

/* Every figure, in report order; NAN until measured. */
enum bench_figure {
	F_DISK1,
	F_DISKC,
	F_INTAKE_RATE,
	F_INTAKE_RATIO,
	F_INTAKE_P50,
	F_INTAKE_P99,
	F_INTAKE_FAILED,
	F_ALONE_RATE,
	F_ALONE_RATIO,
	F_ALONE_P50,
	F_ALONE_P99,
	F_DRAIN_RATE,
	F_E2E_RATE,
	F_E2E_P50,
	F_E2E_P99,
	F_E2E_MISSING,
	F_E2E_OFF_RATE,
	F_E2E_OFF_P50,
	F_E2E_OFF_P99,
	F_E2E_REUSE_RATIO,
	F_CPU_OFF_PER_1000,
	F_IDLE_P50,
	F_IDLE_ACK_P50,
	F_DIRECT_P50,
	F_IDLE_RATIO,
	F_CPU_PER_1000,
	F_STANDIN_CPU_PER_1000,
	F_RSS_IDLE,
	F_RSS_RUN,
	F_RSS_BIG_IN,
	F_RSS_BIG_RELAY,
	F_RSS_QUEUED_START,
	F_RSS_QUEUED_DRAIN,
	F_QUEUED_DRAINED,
	F_STARTUP_EMPTY,
	F_STARTUP_QUEUED,
	F_WALL,
	F_COUNT
};

/* How a figure is named in the table and the JSON, and shown. */
struct bench_figure_desc {
	const char	*key;		/* JSON, in the shown unit */
	const char	*label;
	const char	*unit;
	double		 scale;		/* stored value to shown unit */
	int		 prec;
};

static const struct bench_figure_desc bench_figures[F_COUNT] = {
	[F_DISK1] = { "disk_files_per_s_1_thread",
	    "disk ceiling, 1 thread", "files/s", 1, 0 },
	[F_DISKC] = { "disk_files_per_s_c_threads",
	    "disk ceiling, C threads", "files/s", 1, 0 },
	[F_INTAKE_RATE] = { "intake_msgs_per_s",
	    "intake, C submitters", "msgs/s", 1, 0 },
	[F_INTAKE_RATIO] = { "intake_to_disk_ratio",
	    "intake / disk ceiling (C threads)", "", 1, 2 },
	[F_INTAKE_P50] = { "intake_p50_ms",
	    "intake latency p50", "ms", 1000, 1 },
	[F_INTAKE_P99] = { "intake_p99_ms",
	    "intake latency p99", "ms", 1000, 1 },
	[F_INTAKE_FAILED] = { "intake_failures",
	    "intake failures", "", 1, 0 },
	[F_ALONE_RATE] = { "intake_alone_msgs_per_s",
	    "intake, relaying paused", "msgs/s", 1, 0 },
	[F_ALONE_RATIO] = { "intake_alone_to_disk_ratio",
	    "  / disk ceiling (C threads)", "", 1, 2 },
	[F_ALONE_P50] = { "intake_alone_p50_ms",
	    "  latency p50", "ms", 1000, 1 },
	[F_ALONE_P99] = { "intake_alone_p99_ms",
	    "  latency p99", "ms", 1000, 1 },
	[F_DRAIN_RATE] = { "drain_msgs_per_s",
	    "drain of those N, relaying resumed", "msgs/s", 1, 1 },
	[F_E2E_RATE] = { "e2e_msgs_per_s",
	    "end to end", "msgs/s", 1, 1 },
	[F_E2E_P50] = { "e2e_p50_ms",
	    "end to end latency p50", "ms", 1000, 0 },
	[F_E2E_P99] = { "e2e_p99_ms",
	    "end to end latency p99", "ms", 1000, 0 },
	[F_E2E_MISSING] = { "e2e_missing",
	    "end to end missing", "", 1, 0 },
	[F_E2E_OFF_RATE] = { "e2e_reuse_off_msgs_per_s",
	    "end to end, reuse off (--conn-messages=1)", "msgs/s", 1, 1 },
	[F_E2E_OFF_P50] = { "e2e_reuse_off_p50_ms",
	    "  latency p50", "ms", 1000, 0 },
	[F_E2E_OFF_P99] = { "e2e_reuse_off_p99_ms",
	    "  latency p99", "ms", 1000, 0 },
	[F_E2E_REUSE_RATIO] = { "e2e_reuse_ratio",
	    "end to end, reuse on / reuse off", "", 1, 2 },
	[F_CPU_OFF_PER_1000] = { "cpu_s_per_1000_reuse_off",
	    "  daemon CPU per 1000, reuse off (u+s)", "s", 1, 2 },
	[F_IDLE_P50] = { "idle_p50_ms",
	    "idle latency p50, relayqd", "ms", 1000, 1 },
	[F_IDLE_ACK_P50] = { "idle_submit_p50_ms",
	    "  of which submit to 250", "ms", 1000, 1 },
	[F_DIRECT_P50] = { "direct_p50_ms",
	    "idle latency p50, direct client", "ms", 1000, 1 },
	[F_IDLE_RATIO] = { "idle_ratio",
	    "idle latency relayqd / direct", "", 1, 2 },
	[F_CPU_PER_1000] = { "cpu_s_per_1000",
	    "daemon CPU per 1000, intake+relay (u+s)", "s", 1, 2 },
	[F_STANDIN_CPU_PER_1000] = { "standin_cpu_s_per_1000",
	    "stand-in CPU per 1000 received", "s", 1, 2 },
	[F_RSS_IDLE] = { "rss_idle_mb",
	    "RSS after start-up, empty queue", "MB", 1.0 / 1024, 1 },
	[F_RSS_RUN] = { "rss_peak_burst_mb",
	    "peak RSS, whole run to end of burst", "MB", 1.0 / 1024, 1 },
	[F_RSS_BIG_IN] = { "rss_peak_big_receive_mb",
	    "peak RSS receiving the big message", "MB", 1.0 / 1024, 1 },
	[F_RSS_BIG_RELAY] = { "rss_peak_big_relay_mb",
	    "peak RSS relaying the big message", "MB", 1.0 / 1024, 1 },
	[F_RSS_QUEUED_START] = { "rss_peak_queued_start_mb",
	    "peak RSS, queue filled, after start", "MB", 1.0 / 1024, 1 },
	[F_RSS_QUEUED_DRAIN] = { "rss_peak_queued_drain_mb",
	    "peak RSS, queue filled, draining", "MB", 1.0 / 1024, 1 },
	[F_QUEUED_DRAINED] = { "queued_drained",
	    "  messages relayed while draining", "", 1, 0 },
	[F_STARTUP_EMPTY] = { "startup_empty_ms",
	    "start-up, empty queue", "ms", 1000, 1 },
	[F_STARTUP_QUEUED] = { "startup_queued_ms",
	    "start-up, queue filled", "ms", 1000, 1 },
	[F_WALL] = { "wall_s",
	    "bench wall time", "s", 1, 0 },
};

/* Everything the run holds, for the cleanup at any point. */
struct bench {
	struct bench_opts	 o;
	double			 r[F_COUNT];
	size_t			 msglen;	/* bytes per message */
	struct harness		 h;
	struct bench_arrivals	 arr;
	bool			 watching;
	struct harness_proc	*standin;
	struct harness_proc	*daemon;
	struct harness_proc	*proxy;		/* latency_proxy, with --rtt */
	int			 relay_port;	/* the proxy's, or the stand-in's */
	struct bench_msg	 msg;
	struct bench_msg	 bigmsg;
	size_t			 next_slot;
	size_t			 nslots;
	char			 phase[64];
};

static struct bench	*bench_self;	/* for the signal handler */

static void	bench_usage(void) __attribute__((noreturn));
static void	bench_path(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* SIGINT/SIGTERM: kill what runs; the waits then fail and clean up. */
static void
bench_on_signal(int sig)
{
	size_t	 i;

	(void)sig;
	bench_interrupted = 1;
	if (bench_self == NULL)
		return;
	for (i = 0; i < bench_self->h.nprocs; i++)
		if (bench_self->h.procs[i].state == HARNESS_PROC_RUNNING)
			kill(bench_self->h.procs[i].pid, SIGKILL);
}

static void
bench_usage(void)
{
	fprintf(stderr,
	    "usage: bench [-n MESSAGES] [-c CONCURRENCY] [-s BYTES] "
	    "[--idle N]\n"
	    "             [--queued N] [--big BYTES] [--disk-secs S] "
	    "[--drain-secs S]\n"
	    "             [--timeout S] [--json PATH] [--quick]\n"
	    "             [--rtt MS] [--compare-reuse] "
	    "[--daemon-arg ARG ...] [-v]\n");
	exit(64);
}

/* A numeric option, or a usage error. */
static unsigned long long
bench_number(const char *name, const char *val, unsigned long long min,
    unsigned long long max)
{
	unsigned long long	 n;

	if (parse_uint(val, min, max, &n) == -1) {
		fprintf(stderr, "bench: %s: bad value '%s'\n", name, val);
		bench_usage();
	}
	return n;
}

/* Defaults from issue 7, then the command line. */
static void
bench_getopt(struct bench_opts *o, int argc, char **argv)
{
	enum { O_IDLE = 256, O_QUEUED, O_BIG, O_DISK, O_DRAIN, O_TIMEOUT,
	    O_JSON, O_QUICK, O_DARG, O_RTT, O_COMPARE };
	static const struct option	 opts[] = {
		{ "messages",	required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "size",	required_argument, NULL, 's' },
		{ "idle",	required_argument, NULL, O_IDLE },
		{ "queued",	required_argument, NULL, O_QUEUED },
		{ "big",	required_argument, NULL, O_BIG },
		{ "disk-secs",	required_argument, NULL, O_DISK },
		{ "drain-secs",	required_argument, NULL, O_DRAIN },
		{ "timeout",	required_argument, NULL, O_TIMEOUT },
		{ "json",	required_argument, NULL, O_JSON },
		{ "quick",	no_argument,	   NULL, O_QUICK },
		{ "daemon-arg",	required_argument, NULL, O_DARG },
		{ "rtt",	required_argument, NULL, O_RTT },
		{ "compare-reuse", no_argument,	   NULL, O_COMPARE },
		{ "verbose",	no_argument,	   NULL, 'v' },
		{ NULL,		0,		   NULL, 0 }
	};
	int	 ch;

	o->n = 2000;
	o->conc = 16;
	o->size = 100 * 1024;
	o->idle = 50;
	o->queued = 10000;
	o->big = 30 * MB;
	o->disk_secs = 3;
	o->drain_secs = 5;
	o->timeout = 600;
	while ((ch = getopt_long(argc, argv, "n:c:s:v", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			o->n = bench_number("-n", optarg, 1, 1000000);
			break;
		case 'c':
			o->conc = bench_number("-c", optarg, 1, 256);
			break;
		case 's':
			o->size = bench_number("-s", optarg, 256, 32 * MB);
			break;
		case O_IDLE:
			o->idle = bench_number("--idle", optarg, 1, 10000);
			break;
		case O_QUEUED:
			o->queued = bench_number("--queued", optarg, 0,
			    1000000);
			break;
		case O_BIG:
			o->big = bench_number("--big", optarg, 0, 34 * MB);
			break;
		case O_DISK:
			o->disk_secs = (double)bench_number("--disk-secs",
			    optarg, 1, 600);
			break;
		case O_DRAIN:
			o->drain_secs = (double)bench_number("--drain-secs",
			    optarg, 0, 600);
			break;
		case O_TIMEOUT:
			o->timeout = (double)bench_number("--timeout", optarg,
			    1, 86400);
			break;
		case O_JSON:
			o->json = optarg;
			break;
		case O_QUICK:
			o->n = 200;
			o->idle = 10;
			o->queued = 1000;
			o->big = 5 * MB;
			o->disk_secs = 1;
			o->drain_secs = 2;
			break;
		case O_DARG:
			if (o->ndargs == BENCH_ARGS_MAX)
				bench_usage();
			o->dargs[o->ndargs++] = optarg;
			break;
		case O_RTT:
			o->rtt = (unsigned)bench_number("--rtt", optarg, 0,
			    10000);
			break;
		case O_COMPARE:
			o->compare_reuse = true;
			break;
		case 'v':
			o->verbose++;
			break;
		default:
			bench_usage();
		}
	}
	if (optind != argc)
		bench_usage();
}

/* Progress on stderr. */
static void
bench_step(struct bench *b, const char *phase)
{
	snprintf(b->phase, sizeof(b->phase), "%s", phase);
	fprintf(stderr, "bench: %s\n", phase);
}

/* Reserve n slots. */
static size_t
bench_slots(struct bench *b, size_t n)
{
	size_t	 first = b->next_slot;

	if (first + n > b->nslots)
		fatalx("bench: out of slots");
	b->next_slot += n;
	return first;
}

/* Format a path; a path that does not fit ends the run. */
static void
bench_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		fatalx("bench: path too long: %s", buf);
}

/* Append arg to an argv of *n entries, keeping it NULL-terminated. */
static void
bench_arg(char **argv, size_t *n, const char *arg)
{
	argv[(*n)++] = (char *)(uintptr_t)arg;
	argv[*n] = NULL;
}

/* Nearest-rank percentile q (0..1) of v[n], sorting v. */
static int
bench_cmp(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
bench_pct(double *v, size_t n, double q)
{
	size_t	 k;

	if (n == 0)
		return NAN;
	qsort(v, n, sizeof(*v), bench_cmp);
	k = (size_t)ceil(q * (double)n);
	return v[k == 0 ? 0 : k - 1];
}

/* ---- Set-up ---- */

/* The run's directory under the build directory, and the paths. */
static int
bench_dirs(struct bench *b)
{
	struct harness	*h = &b->h;
	const char	*build;
	char		 p[PATH_MAX];

	memset(h, 0, sizeof(*h));
	if ((build = getenv("RELAYQ_BUILD")) == NULL || *build == '\0')
		build = "build";
	if (realpath(build, h->build) == NULL) {
		fprintf(stderr, "bench: %s: %s\n", build, strerror(errno));
		return -1;
	}
	bench_path(p, sizeof(p), "%s/tests/certs", h->build);
	if (realpath(p, h->certs) == NULL) {
		fprintf(stderr, "bench: %s: %s (make certs)\n", p,
		    strerror(errno));
		return -1;
	}
	/* Under build/, on the real disk: /tmp may be a tmpfs. */
	bench_path(h->dir, sizeof(h->dir), "%s/bench.XXXXXX", h->build);
	if (mkdtemp(h->dir) == NULL) {
		fprintf(stderr, "bench: mkdtemp %s: %s\n", h->dir,
		    strerror(errno));
		h->dir[0] = '\0';
		return -1;
	}
	bench_path(h->socket, sizeof(h->socket), "%s/relayq.sock", h->dir);
	bench_path(h->queue, sizeof(h->queue), "%s/spool", h->dir);
	bench_path(h->mail, sizeof(h->mail), "%s/mail", h->dir);
	if (strlen(h->socket) >= 100) {
		fprintf(stderr, "bench: socket path too long: %s\n",
		    h->socket);
		return -1;
	}
	return 0;
}

/* Start the stand-in (discarding bodies) and watch its events.log. */
static int
bench_start_standin(struct bench *b)
{
	struct harness	*h = &b->h;
	char		 portfile[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	char		 prog[PATH_MAX], events[PATH_MAX], *port, *argv[16];
	size_t		 n = 0;

	bench_path(prog, sizeof(prog), "%s/tests/standin", h->build);
	bench_path(portfile, sizeof(portfile), "%s/standin.port", h->dir);
	bench_path(cert, sizeof(cert), "%s/server.pem", h->certs);
	bench_path(key, sizeof(key), "%s/server.key", h->certs);
	bench_arg(argv, &n, prog);
	bench_arg(argv, &n, "--port-file");
	bench_arg(argv, &n, portfile);
	bench_arg(argv, &n, "--mail-dir");
	bench_arg(argv, &n, h->mail);
	bench_arg(argv, &n, "--cert");
	bench_arg(argv, &n, cert);
	bench_arg(argv, &n, "--key");
	bench_arg(argv, &n, key);
	bench_arg(argv, &n, "--discard");
	if ((b->standin = harness_spawn(h, "standin", argv)) == NULL ||
	    harness_wait_file(portfile, b->standin, BENCH_START_WAIT) == -1 ||
	    (port = harness_read_file(portfile, NULL)) == NULL) {
		fprintf(stderr, "bench: the stand-in did not start\n");
		return -1;
	}
	h->port = atoi(port);
	free(port);
	bench_path(events, sizeof(events), "%s/events.log", h->mail);
	if (bench_arrivals_start(&b->arr, events, b->nslots) == -1)
		return -1;
	b->watching = true;
	if (b->o.verbose)
		fprintf(stderr, "bench: standin pid %ld port %d\n",
		    (long)b->standin->pid, h->port);
	return 0;
}

/*
 * With --rtt, start latency_proxy in front of the stand-in; relayqd and
 * the direct client use b->relay_port either way.
 */
static int
bench_start_proxy(struct bench *b)
{
	struct harness	*h = &b->h;
	char		 prog[PATH_MAX], portfile[PATH_MAX], to[64], rtt[16];
	char		*port, *argv[16];
	size_t		 n = 0;

	b->relay_port = h->port;
	if (b->o.rtt == 0)
		return 0;
	bench_path(prog, sizeof(prog), "%s/tests/latency_proxy", h->build);
	bench_path(portfile, sizeof(portfile), "%s/proxy.port", h->dir);
	snprintf(to, sizeof(to), "127.0.0.1:%d", h->port);
	snprintf(rtt, sizeof(rtt), "%u", b->o.rtt);
	bench_arg(argv, &n, prog);
	bench_arg(argv, &n, "--listen");
	bench_arg(argv, &n, "127.0.0.1:0");
	bench_arg(argv, &n, "--port-file");
	bench_arg(argv, &n, portfile);
	bench_arg(argv, &n, "--to");
	bench_arg(argv, &n, to);
	bench_arg(argv, &n, "--rtt");
	bench_arg(argv, &n, rtt);
	if (b->o.verbose > 1)
		bench_arg(argv, &n, "-v");	/* each chunk in its log */
	if ((b->proxy = harness_spawn(h, "latency_proxy", argv)) == NULL ||
	    harness_wait_file(portfile, b->proxy, BENCH_START_WAIT) == -1 ||
	    (port = harness_read_file(portfile, NULL)) == NULL) {
		fprintf(stderr, "bench: latency_proxy did not start\n");
		return -1;
	}
	b->relay_port = atoi(port);
	free(port);
	if (b->o.verbose)
		fprintf(stderr, "bench: latency_proxy pid %ld port %d rtt %u "
		    "ms\n", (long)b->proxy->pid, b->relay_port, b->o.rtt);
	return 0;
}

/*
 * Start relayqd (with extra as one more argument unless NULL); the
 * seconds until it answered its banner, or -1.
 */
static double
bench_start_daemon(struct bench *b, const char *extra)
{
	struct harness	*h = &b->h;
	char		 prog[PATH_MAX], relay[64], ca[PATH_MAX];
	char		*argv[16 + BENCH_ARGS_MAX];
	size_t		 n = 0, i;
	double		 t0, at;

	bench_path(prog, sizeof(prog), "%s/relayqd", h->build);
	snprintf(relay, sizeof(relay), "127.0.0.1:%d", b->relay_port);
	bench_path(ca, sizeof(ca), "%s/ca.pem", h->certs);
	bench_arg(argv, &n, prog);
	bench_arg(argv, &n, "--foreground");
	bench_arg(argv, &n, "--socket");
	bench_arg(argv, &n, h->socket);
	bench_arg(argv, &n, "--queue-dir");
	bench_arg(argv, &n, h->queue);
	bench_arg(argv, &n, "--relay");
	bench_arg(argv, &n, relay);
	bench_arg(argv, &n, "--ca-file");
	bench_arg(argv, &n, ca);
	/* Throughput, not Gmail's pacing: one account sends every message. */
	bench_arg(argv, &n, "--daily-cap");
	bench_arg(argv, &n, "0");
	for (i = 0; i < b->o.ndargs; i++)
		bench_arg(argv, &n, b->o.dargs[i]);
	if (extra != NULL)
		bench_arg(argv, &n, extra);
	t0 = bench_now();
	if ((b->daemon = harness_spawn(h, "relayqd", argv)) == NULL ||
	    (at = bench_wait_banner(h->socket, b->daemon,
	    BENCH_START_WAIT)) < 0) {
		fprintf(stderr, "bench: relayqd did not start\n");
		return -1;
	}
	if (b->o.verbose)
		fprintf(stderr, "bench: relayqd pid %ld\n",
		    (long)b->daemon->pid);
	return at - t0;
}

/* SIGTERM relayqd and check it stopped cleanly. */
static int
bench_stop_daemon(struct bench *b)
{
	int	 st;

	st = harness_stop(b->daemon, SIGTERM, 30.0);
	b->daemon = NULL;
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "bench: relayqd did not stop cleanly (%d)\n",
		    st);
		return -1;
	}
	return 0;
}

/* ---- Phases ---- */

/* The disk's ceiling from 1 and from C threads. */
static int
bench_disk(struct bench *b)
{
	char	 dir[PATH_MAX];

	bench_step(b, "disk ceiling");
	bench_path(dir, sizeof(dir), "%s/disk", b->h.dir);
	b->r[F_DISK1] = bench_disk_ceiling(dir, 1, b->msg.len, b->o.disk_secs);
	b->r[F_DISKC] = bench_disk_ceiling(dir, (int)b->o.conc, b->msg.len,
	    b->o.disk_secs);
	rmdir(dir);
	return b->r[F_DISK1] < 0 || b->r[F_DISKC] < 0 ? -1 : 0;
}

/* One message at a time through relayqd, then through a direct client. */
static int
bench_idle(struct bench *b)
{
	struct bench_direct	 d;
	struct bench_sub	 sub;
	double			*lat, *ack, at;
	size_t			 i, first;
	char			 err[256], ca[PATH_MAX];
	int			 rc = -1;

	bench_step(b, "idle latency");
	lat = xcalloc(b->o.idle, sizeof(*lat));
	ack = xcalloc(b->o.idle, sizeof(*ack));
	first = bench_slots(b, b->o.idle);
	for (i = 0; i < b->o.idle; i++) {
		if (bench_submit(b->h.socket, &b->msg, first + i, &sub, err,
		    sizeof(err)) == -1)
			goto done;
		if ((at = bench_arrival_wait(&b->arr, first + i,
		    BENCH_SLOT_WAIT)) < 0) {
			snprintf(err, sizeof(err), "message %zu never arrived",
			    i);
			goto done;
		}
		lat[i] = at - sub.t0;
		ack[i] = sub.t1 - sub.t0;
	}
	b->r[F_IDLE_P50] = bench_pct(lat, b->o.idle, 0.5);
	b->r[F_IDLE_ACK_P50] = bench_pct(ack, b->o.idle, 0.5);

	bench_path(ca, sizeof(ca), "%s/ca.pem", b->h.certs);
	if (bench_direct_init(&d, ca, b->relay_port, &b->msg, err,
	    sizeof(err)) == -1)
		goto done;
	first = bench_slots(b, b->o.idle);
	for (i = 0; i < b->o.idle; i++) {
		sub.t0 = bench_now();
		if (bench_direct_send(&d, first + i, err, sizeof(err)) == -1 ||
		    (at = bench_arrival_wait(&b->arr, first + i,
		    BENCH_SLOT_WAIT)) < 0)
			break;
		lat[i] = at - sub.t0;
	}
	bench_direct_fini(&d);
	if (i < b->o.idle)
		goto done;
	b->r[F_DIRECT_P50] = bench_pct(lat, b->o.idle, 0.5);
	rc = 0;
done:
	if (rc == -1)
		fprintf(stderr, "bench: idle: %s\n", err);
	free(lat);
	free(ack);
	return rc;
}

/* The acknowledged submissions' rate since t0 and latency p50 / p99. */
static void
bench_intake_figures(struct bench *b, const struct bench_intake *in,
    double t0, enum bench_figure rate, enum bench_figure p50,
    enum bench_figure p99)
{
	double	*v, tack = 0;
	size_t	 i, nok = 0;

	v = xcalloc(in->n, sizeof(*v));
	for (i = 0; i < in->n; i++)
		if (in->subs[i].ok) {
			v[nok++] = in->subs[i].t1 - in->subs[i].t0;
			if (in->subs[i].t1 > tack)
				tack = in->subs[i].t1;
		}
	b->r[rate] = (double)nok / (tack - t0);
	b->r[p50] = bench_pct(v, nok, 0.5);
	b->r[p99] = bench_pct(v, nok, 0.99);
	free(v);
}

/*
 * N messages from C submitters; intake, end to end, CPU, peak RSS.  With
 * off, the same N through a relayqd with reuse switched off: only its end
 * to end and CPU are kept.
 */
static int
bench_burst(struct bench *b, bool off)
{
	struct bench_intake	 in;
	double			*v, t0, tarr = 0, cpu0, scpu0;
	size_t			 i, got;
	pid_t			 dpid = b->daemon->pid;

	bench_step(b, off ? "burst, reuse off" : "burst");
	memset(&in, 0, sizeof(in));
	in.socket = b->h.socket;
	in.msg = &b->msg;
	in.n = b->o.n;
	in.conc = b->o.conc;
	in.first = bench_slots(b, b->o.n);
	cpu0 = bench_proc_cpu(dpid);
	scpu0 = bench_proc_cpu(b->standin->pid);
	t0 = bench_now();
	if (bench_intake_run(&in) == -1)
		return -1;
	got = bench_arrivals_wait_range(&b->arr, in.first, in.n,
	    b->o.timeout);
	if (bench_interrupted) {
		free(in.subs);
		return -1;
	}
	b->r[off ? F_CPU_OFF_PER_1000 : F_CPU_PER_1000] =
	    (bench_proc_cpu(dpid) - cpu0) / (double)got * 1000;
	if (!off) {
		b->r[F_STANDIN_CPU_PER_1000] = (bench_proc_cpu(
		    b->standin->pid) - scpu0) / (double)got * 1000;
		b->r[F_RSS_RUN] = (double)bench_proc_kb(dpid, "VmHWM");
		b->r[F_INTAKE_FAILED] = (double)in.failed;
		b->r[F_E2E_MISSING] = (double)(in.n - got);
		bench_intake_figures(b, &in, t0, F_INTAKE_RATE, F_INTAKE_P50,
		    F_INTAKE_P99);
	}
	if (in.failed > 0)
		fprintf(stderr, "bench: %zu submissions failed, first: %s\n",
		    in.failed, in.error);

	v = xcalloc(in.n, sizeof(*v));
	for (got = 0, i = 0; i < in.n; i++) {
		double	 at = bench_arrival_at(&b->arr, in.first + i);

		if (at == 0 || !in.subs[i].ok)
			continue;
		v[got++] = at - in.subs[i].t0;
		if (at > tarr)
			tarr = at;
	}
	b->r[off ? F_E2E_OFF_RATE : F_E2E_RATE] = (double)got / (tarr - t0);
	b->r[off ? F_E2E_OFF_P50 : F_E2E_P50] = bench_pct(v, got, 0.5);
	b->r[off ? F_E2E_OFF_P99 : F_E2E_P99] = bench_pct(v, got, 0.99);
	free(v);
	free(in.subs);
	return got == in.n ? 0 : -1;
}

/* Wait until relayqd removed every delivered entry from queue/. */
static int
bench_wait_empty(struct bench *b)
{
	char	 dir[PATH_MAX];

	/* Arrival is logged before relayqd removes the entry: let it. */
	bench_path(dir, sizeof(dir), "%s/queue", b->h.queue);
	if (harness_wait_count(dir, "", 0, BENCH_SLOT_WAIT) == -1) {
		fprintf(stderr, "bench: %s did not empty\n", dir);
		return -1;
	}
	return 0;
}

/*
 * --compare-reuse: the burst again through a relayqd that sends one
 * message per connection, then relayqd as before for the next phases.
 */
static int
bench_reuse_off(struct bench *b)
{
	if (!b->o.compare_reuse)
		return 0;
	if (bench_wait_empty(b) == -1 || bench_stop_daemon(b) == -1 ||
	    bench_start_daemon(b, "--conn-messages=1") < 0 ||
	    bench_burst(b, true) == -1 || bench_wait_empty(b) == -1 ||
	    bench_stop_daemon(b) == -1)
		return -1;
	return bench_start_daemon(b, NULL) < 0 ? -1 : 0;
}

/*
 * Intake alone: the stand-in is stopped (SIGSTOP), so relay sessions
 * connect and wait for its banner instead of competing with the
 * submissions for the two cores; what is left is the submission path and
 * its durable writes.  Then the stand-in resumes and the N queued
 * messages drain.
 */
static int
bench_alone(struct bench *b)
{
	struct bench_intake	 in;
	double			 t0, tack = 0, tc;
	size_t			 i, got;
	pid_t			 spid = b->standin->pid;
	int			 rc;

	bench_step(b, "intake, relaying paused");
	memset(&in, 0, sizeof(in));
	in.socket = b->h.socket;
	in.msg = &b->msg;
	in.n = b->o.n;
	in.conc = b->o.conc;
	in.first = bench_slots(b, b->o.n);
	if (kill(spid, SIGSTOP) == -1)
		return -1;
	t0 = bench_now();
	rc = bench_intake_run(&in);
	tc = bench_now();
	kill(spid, SIGCONT);
	if (rc == -1)
		return -1;
	got = bench_arrivals_wait_range(&b->arr, in.first, in.n,
	    b->o.timeout);
	if (in.failed > 0)
		fprintf(stderr, "bench: %zu submissions failed, first: %s\n",
		    in.failed, in.error);
	bench_intake_figures(b, &in, t0, F_ALONE_RATE, F_ALONE_P50,
	    F_ALONE_P99);
	for (tack = 0, i = 0; i < in.n; i++) {
		double	 at = bench_arrival_at(&b->arr, in.first + i);

		if (at > tack)
			tack = at;
	}
	b->r[F_DRAIN_RATE] = (double)got / (tack - tc);
	free(in.subs);
	return got == in.n && in.failed == 0 ? 0 : -1;
}

/* One big message: peak RSS while it is received, then relayed. */
static int
bench_big(struct bench *b)
{
	struct bench_sub	 sub;
	pid_t			 dpid = b->daemon->pid;
	size_t			 slot;
	char			 err[256];

	if (b->o.big == 0)
		return 0;
	bench_step(b, "big message");
	if (bench_msg_build(&b->bigmsg, b->o.big) == -1)
		return -1;
	slot = bench_slots(b, 1);
	if (bench_proc_reset_hwm(dpid) == -1)
		fprintf(stderr, "bench: cannot reset VmHWM: %s\n",
		    strerror(errno));
	if (bench_submit(b->h.socket, &b->bigmsg, slot, &sub, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "bench: big message: %s\n", err);
		return -1;
	}
	b->r[F_RSS_BIG_IN] = (double)bench_proc_kb(dpid, "VmHWM");
	bench_proc_reset_hwm(dpid);
	if (bench_arrival_wait(&b->arr, slot, b->o.timeout) < 0) {
		fprintf(stderr, "bench: the big message never arrived\n");
		return -1;
	}
	b->r[F_RSS_BIG_RELAY] = (double)bench_proc_kb(dpid, "VmHWM");
	bench_msg_free(&b->bigmsg);
	return 0;
}

/* A restart over a filled queue: start-up time, RSS, then a drain. */
static int
bench_queued(struct bench *b)
{
	char	 msgfile[PATH_MAX], needle[64];
	size_t	 first;
	int	 fd;

	if (b->o.queued == 0)
		return 0;
	bench_step(b, "queued start-up");
	if (bench_wait_empty(b) == -1 || bench_stop_daemon(b) == -1)
		return -1;
	bench_path(msgfile, sizeof(msgfile), "%s/bench.eml", b->h.dir);
	if ((fd = open(msgfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1 || write_all(fd, b->msg.data, b->msg.len) == -1 ||
	    close(fd) == -1)
		return -1;
	first = bench_slots(b, b->o.queued);
	/* Due in an hour: the start-up holds them all, relaying none. */
	if (bench_fill_queue(b->h.queue, msgfile, first, b->o.queued,
	    (long long)time(NULL) + 3600) == -1)
		return -1;
	unlink(msgfile);
	if ((b->r[F_STARTUP_QUEUED] = bench_start_daemon(b, NULL)) < 0)
		return -1;
	b->r[F_RSS_QUEUED_START] = (double)bench_proc_kb(b->daemon->pid,
	    "VmHWM");
	snprintf(needle, sizeof(needle), "queued=%zu", b->o.queued);
	if (harness_grep(b->daemon->log, needle) == 0)
		fprintf(stderr, "bench: relayqd did not log %s at start-up\n",
		    needle);

	bench_step(b, "queued drain");
	if (kill(b->daemon->pid, SIGUSR1) == -1)
		return -1;
	b->r[F_QUEUED_DRAINED] = (double)bench_arrivals_wait_range(&b->arr,
	    first, b->o.queued, b->o.drain_secs);
	b->r[F_RSS_QUEUED_DRAIN] = (double)bench_proc_kb(b->daemon->pid,
	    "VmHWM");
	return bench_stop_daemon(b);
}

/* After a failure: the end of each process's log on stderr. */
static void
bench_dump_logs(const struct bench *b)
{
	const struct harness_proc	*p;
	size_t				 i, len;
	char				*text;

	for (i = 0; i < b->h.nprocs; i++) {
		p = &b->h.procs[i];
		if ((text = harness_read_file(p->log, &len)) == NULL)
			continue;
		fprintf(stderr, "---- %s (pid %ld), the end of its log:\n%s\n",
		    p->name, (long)p->pid, len > 2000 ? text + len - 2000 :
		    text);
		free(text);
	}
}

/* ---- Report ---- */

/* a / b, or NAN. */
static double
bench_ratio(double a, double b)
{
	return isnan(a) || isnan(b) || b <= 0 ? NAN : a / b;
}

/* The figures computed from others. */
static void
bench_derive(struct bench *b)
{
	b->r[F_INTAKE_RATIO] = bench_ratio(b->r[F_INTAKE_RATE],
	    b->r[F_DISKC]);
	b->r[F_ALONE_RATIO] = bench_ratio(b->r[F_ALONE_RATE],
	    b->r[F_DISKC]);
	b->r[F_IDLE_RATIO] = bench_ratio(b->r[F_IDLE_P50],
	    b->r[F_DIRECT_P50]);
	b->r[F_E2E_REUSE_RATIO] = bench_ratio(b->r[F_E2E_RATE],
	    b->r[F_E2E_OFF_RATE]);
}

/* The table on stdout; "-" for what was not measured. */
static void
bench_table(const struct bench *b)
{
	const struct bench_figure_desc	*f;
	const struct bench_opts		*o = &b->o;
	size_t				 i;

	printf("\nrelayq bench: N=%zu messages of %zu bytes, C=%zu, idle "
	    "samples %zu,\nbig message %zu bytes, filled queue %zu entries, "
	    "drained for %.0f s,\n", o->n, b->msglen, o->conc, o->idle,
	    o->big, o->queued, o->drain_secs);
	if (o->rtt > 0)
		printf("round trip to the stand-in %u ms (latency_proxy)\n",
		    o->rtt);
	else
		printf("round trip to the stand-in: loopback\n");
	for (i = 0; i < F_COUNT; i++) {
		f = &bench_figures[i];
		if (isnan(b->r[i]) || b->r[i] < 0)
			printf("  %-42s %10s %s\n", f->label, "-", f->unit);
		else
			printf("  %-42s %10.*f %s\n", f->label, f->prec,
			    b->r[i] * f->scale, f->unit);
	}
}

/* The same figures as JSON, with the machine and the parameters. */
static int
bench_json(const struct bench *b, const char *path)
{
	const struct bench_figure_desc	*f;
	char				 cpu[256], fs[32], kern[128], date[64];
	long				 mem;
	int				 ncpu;
	time_t				 now = time(NULL);
	struct tm			 tm;
	size_t				 i;
	FILE				*fp;

	bench_machine(b->h.build, cpu, sizeof(cpu), fs, sizeof(fs), &mem,
	    &ncpu, kern, sizeof(kern));
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fprintf(fp, "{\n  \"date\": \"%s\",\n", date);
	fprintf(fp, "  \"machine\": { \"cpu\": \"%s\", \"cpus\": %d, "
	    "\"memory_mb\": %ld, \"kernel\": \"%s\", \"fs\": \"%s\" },\n",
	    cpu, ncpu, mem, kern, fs);
	fprintf(fp, "  \"params\": { \"messages\": %zu, \"concurrency\": "
	    "%zu, \"message_bytes\": %zu, \"idle_samples\": %zu, "
	    "\"queued\": %zu, \"big_bytes\": %zu, \"drain_secs\": %g, "
	    "\"rtt_ms\": %u, \"compare_reuse\": %s },\n",
	    b->o.n, b->o.conc, b->msglen, b->o.idle, b->o.queued, b->o.big,
	    b->o.drain_secs, b->o.rtt, b->o.compare_reuse ? "true" : "false");
	fprintf(fp, "  \"results\": {\n");
	for (i = 0; i < F_COUNT; i++) {
		f = &bench_figures[i];
		if (isnan(b->r[i]) || isinf(b->r[i]) || b->r[i] < 0)
			fprintf(fp, "    \"%s\": null", f->key);
		else
			fprintf(fp, "    \"%s\": %.*f", f->key, f->prec + 1,
			    b->r[i] * f->scale);
		fprintf(fp, "%s\n", i + 1 < F_COUNT ? "," : "");
	}
	fprintf(fp, "  }\n}\n");
	return fclose(fp) == 0 ? 0 : -1;
}

/* The phases in order; stops at the first that fails. */
static int
bench_run(struct bench *b)
{
	if (bench_msg_build(&b->msg, b->o.size) == -1)
		return -1;
	b->msglen = b->msg.len;
	if (bench_disk(b) == -1)
		return -1;
	bench_step(b, "start");
	if (bench_start_standin(b) == -1 || bench_start_proxy(b) == -1 ||
	    (b->r[F_STARTUP_EMPTY] = bench_start_daemon(b, NULL)) < 0)
		return -1;
	b->r[F_RSS_IDLE] = (double)bench_proc_kb(b->daemon->pid, "VmRSS");
	if (bench_idle(b) == -1 || bench_burst(b, false) == -1 ||
	    bench_reuse_off(b) == -1 || bench_alone(b) == -1 ||
	    bench_big(b) == -1)
		return -1;
	return bench_queued(b);
}

int
main(int argc, char **argv)
{
	struct bench		 b;
	struct sigaction	 sa;
	double			 t0 = bench_now();
	char			 path[PATH_MAX];
	size_t			 i;
	int			 rc;

	memset(&b, 0, sizeof(b));
	bench_getopt(&b.o, argc, argv);
	for (i = 0; i < F_COUNT; i++)
		b.r[i] = NAN;
	b.nslots = 2 * b.o.idle + (b.o.compare_reuse ? 3 : 2) * b.o.n + 1 +
	    b.o.queued;
	log_init(LOG_SINK_STDERR, 0, "bench");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bench_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (bench_dirs(&b) == -1) {
		if (b.h.dir[0] != '\0')
			rmdir(b.h.dir);
		return 1;
	}
	bench_self = &b;
	rc = bench_run(&b);
	if (b.watching)
		bench_arrivals_stop(&b.arr);
	if (rc == -1) {
		fprintf(stderr, "bench: stopped during '%s'%s\n", b.phase,
		    bench_interrupted ? " (interrupted)" : "");
		for (i = 0; i < b.h.nprocs; i++)
			harness_stop(&b.h.procs[i], SIGTERM, 5.0);
		bench_dump_logs(&b);
	}
	harness_fini(&b.h);
	bench_self = NULL;
	bench_msg_free(&b.msg);
	bench_msg_free(&b.bigmsg);
	b.r[F_WALL] = bench_now() - t0;
	bench_derive(&b);
	bench_table(&b);
	if (b.o.json == NULL) {
		bench_path(path, sizeof(path), "%s/bench.json", b.h.build);
		b.o.json = path;
	}
	if (bench_json(&b, b.o.json) == -1)
		fprintf(stderr, "bench: %s: %s\n", b.o.json, strerror(errno));
	else
		printf("(JSON in %s)\n", b.o.json);
	return rc == -1 ? 1 : 0;
}
