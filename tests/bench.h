/*
 * bench.h: the pieces of `make bench` (tests/bench*.c).
 *
 * bench.c runs the phases and reports; bench_load.c drives load (the
 * submitters on the Unix socket, a direct STARTTLS client for the
 * stand-in, and the watcher that timestamps arrivals from the stand-in's
 * events.log); bench_sys.c measures the machine and the daemon (disk
 * ceiling, /proc readings, filling a queue directory).
 *
 * Every message carries a unique envelope sender "m<slot>@bench.invalid",
 * so an arrival in events.log ("mail N from=..." then "delivered N ...")
 * names the slot whose arrival time it sets.
 */
#ifndef RELAYQ_BENCH_H
#define RELAYQ_BENCH_H

#include <sys/types.h>

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "sasl.h"

#define BENCH_DOMAIN		"bench.invalid"
#define BENCH_RCPT		"sink@" BENCH_DOMAIN
#define BENCH_USER		"bench@gmail.com"
#define BENCH_PASSWORD		"bench-app-password"
#define BENCH_ADDR_MAX		64

/* Set by SIGINT/SIGTERM: every wait gives up and the run cleans up. */
extern volatile sig_atomic_t	bench_interrupted;

/* Seconds on CLOCK_MONOTONIC. */
double	bench_now(void);
/* Sleep for secs (short, bounded waits only). */
void	bench_sleep(double secs);
/* "m<slot>@bench.invalid" into buf. */
void	bench_sender(size_t slot, char *buf, size_t len);

/* ---- Arrivals (bench_load.c) ---- */

struct bench_arrivals {
	pthread_t		 thread;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	bool			 stop;
	bool			 running;
	int			 fd;		/* events.log */
	int			 ifd;		/* inotify */
	char			 line[1024];	/* partial line */
	size_t			 linelen;
	long			*conn_slot;	/* by connection number; -1 */
	size_t			 nconn;
	double			*at;		/* by slot; 0: not yet */
	size_t			 nslots;
	size_t			 count;		/* slots that arrived */
	size_t			 unknown;	/* deliveries with no slot */
};

/* Start watching path (events.log) for nslots slots.  0 or -1. */
int	bench_arrivals_start(struct bench_arrivals *, const char *path,
	    size_t nslots);
void	bench_arrivals_stop(struct bench_arrivals *);
/* Wait until slot arrived; its time, or -1 after timeout seconds. */
double	bench_arrival_wait(struct bench_arrivals *, size_t slot,
	    double timeout);
/*
 * Wait until every slot in [first, first + n) arrived or timeout seconds
 * passed; how many arrived.
 */
size_t	bench_arrivals_wait_range(struct bench_arrivals *, size_t first,
	    size_t n, double timeout);
/* The arrival time of slot, or 0. */
double	bench_arrival_at(struct bench_arrivals *, size_t slot);

/* ---- Submission over the Unix socket (bench_load.c) ---- */

struct bench_msg {
	char			*data;		/* CRLF lines */
	size_t			 len;
};

/* A message of about size bytes: text plus a random "image" part. */
int	bench_msg_build(struct bench_msg *, size_t size);
void	bench_msg_free(struct bench_msg *);

/* One submission's timing: t0 before connect, t1 at the final reply. */
struct bench_sub {
	double			 t0;
	double			 t1;
	bool			 ok;
};

/* A run of n submissions by conc threads, slots first .. first+n-1. */
struct bench_intake {
	const char		*socket;
	const struct bench_msg	*msg;
	size_t			 first;
	size_t			 n;
	size_t			 conc;
	struct bench_sub	*subs;		/* n of them, filled in */
	size_t			 failed;
	char			 error[256];	/* the first failure */
};

/* Submit one message as slot; 0 or -1 with a reason in err. */
int	bench_submit(const char *socket, const struct bench_msg *,
	    size_t slot, struct bench_sub *, char *err, size_t errlen);
/* Run the threads to the end.  0, or -1 if they could not start. */
int	bench_intake_run(struct bench_intake *);

/* ---- The direct client: STARTTLS + AUTH + send (bench_load.c) ---- */

struct bench_direct {
	SSL_CTX			*ctx;
	int			 port;
	char			*stuffed;	/* dot-stuffed body + ".\r\n" */
	size_t			 stuffedlen;
};

int	bench_direct_init(struct bench_direct *, const char *cafile,
	    int port, const struct bench_msg *, char *err, size_t errlen);
void	bench_direct_fini(struct bench_direct *);
/* Send one message as slot, as relayqd would.  0 or -1 with err. */
int	bench_direct_send(struct bench_direct *, size_t slot, char *err,
	    size_t errlen);

/* ---- The machine and the daemon (bench_sys.c) ---- */

/* Files per second for nthreads writers over secs seconds; -1 on error. */
double	bench_disk_ceiling(const char *dir, int nthreads, size_t filesize,
	    double secs);
/* utime + stime of pid in seconds, or -1. */
double	bench_proc_cpu(pid_t);
/* A "Vm...:" field of /proc/pid/status in KB, or -1. */
long	bench_proc_kb(pid_t, const char *field);
/* Reset pid's VmHWM to its current RSS (clear_refs 5).  0 or -1. */
int	bench_proc_reset_hwm(pid_t);
/*
 * Connect to the Unix socket until it answers its 220 banner (or proc
 * exits, or timeout).  The time the banner arrived, or -1.
 */
struct harness_proc;
double	bench_wait_banner(const char *path, struct harness_proc *,
	    double timeout);
/*
 * Fill queuedir/queue/ with n entries sharing msgfile's body (hard
 * links), slots first .. first+n-1, due at next_attempt.  0 or -1.
 */
int	bench_fill_queue(const char *queuedir, const char *msgfile,
	    size_t first, size_t n, long long next_attempt);
/* Describe this machine and the file system that holds dir. */
void	bench_machine(const char *dir, char *cpu, size_t cpulen, char *fs,
	    size_t fslen, long *memmb, int *ncpu, char *kernel,
	    size_t kernlen);

#endif /* RELAYQ_BENCH_H */
