/*
 * bench_sys.c: what `make bench` measures outside relayqd's protocol:
 * the disk's ceiling for durable small-file commits, the daemon's CPU and
 * memory from /proc, its readiness on the socket, a queue directory
 * filled by hand, and a description of the machine.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/utsname.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "envelope.h"
#include "harness.h"
#include "sasl.h"
#include "util.h"

#define BENCH_THREADS_MAX	256

/* ---- The disk's ceiling ---- */

struct bench_disk_ctx {
	int			 dirfd;
	const unsigned char	*buf;
	size_t			 len;
	double			 deadline;
	pthread_barrier_t	 barrier;
};

struct bench_disk_thread {
	struct bench_disk_ctx	*ctx;
	pthread_t		 thread;
	int			 id;
	size_t			 files;
	double			 end;
	int			 error;
};

/* Commit one file the way the queue commits an entry, minus the dirs. */
static int
bench_disk_one(struct bench_disk_ctx *c, int id, size_t k)
{
	char	 tmp[64], name[64];
	int	 fd;

	snprintf(tmp, sizeof(tmp), ".t%d-%zu", id, k);
	snprintf(name, sizeof(name), "f%d-%zu", id, k);
	fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
	if (fd == -1)
		return -1;
	if (write_all(fd, c->buf, c->len) == -1 || fsync(fd) == -1) {
		close(fd);
		return -1;
	}
	if (close(fd) == -1 || renameat(c->dirfd, tmp, c->dirfd, name) == -1)
		return -1;
	return fsync(c->dirfd);
}

/* One writer: write + fsync + rename + directory fsync until deadline. */
static void *
bench_disk_main(void *arg)
{
	struct bench_disk_thread	*t = arg;
	struct bench_disk_ctx		*c = t->ctx;

	pthread_barrier_wait(&c->barrier);
	while (!bench_interrupted && bench_now() < c->deadline) {
		if (bench_disk_one(c, t->id, t->files) == -1) {
			t->error = errno;
			break;
		}
		t->files++;
	}
	t->end = bench_now();
	return NULL;
}

/* Remove what the writers left. */
static void
bench_disk_clean(int dirfd, const struct bench_disk_thread *t, int n)
{
	char	 name[64];
	size_t	 k;
	int	 i;

	for (i = 0; i < n; i++)
		for (k = 0; k <= t[i].files; k++) {
			snprintf(name, sizeof(name), "f%d-%zu", i, k);
			unlinkat(dirfd, name, 0);
			snprintf(name, sizeof(name), ".t%d-%zu", i, k);
			unlinkat(dirfd, name, 0);
		}
}

/* Files per second for nthreads writers. */
double
bench_disk_ceiling(const char *dir, int nthreads, size_t filesize,
    double secs)
{
	struct bench_disk_ctx		 c;
	struct bench_disk_thread	*t;
	unsigned char			*buf;
	double				 start = 0, end = 0;
	size_t				 total = 0, i;
	int				 n, started, err = 0;

	if (nthreads < 1 || nthreads > BENCH_THREADS_MAX)
		return -1;
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		return -1;
	memset(&c, 0, sizeof(c));
	if ((c.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	buf = xmalloc(filesize);
	for (i = 0; i < filesize; i++)
		buf[i] = (unsigned char)(i * 2654435761u >> 24);
	c.buf = buf;
	c.len = filesize;
	t = xcalloc((size_t)nthreads, sizeof(*t));
	pthread_barrier_init(&c.barrier, NULL, (unsigned)nthreads + 1);
	c.deadline = bench_now() + secs + 3600;	/* set for real below */
	for (started = 0; started < nthreads; started++) {
		t[started].ctx = &c;
		t[started].id = started;
		if (pthread_create(&t[started].thread, NULL, bench_disk_main,
		    &t[started]) != 0)
			break;
	}
	if (started < nthreads) {
		/* Release the ones that wait with a deadline already gone. */
		c.deadline = 0;
		for (n = started; n <= nthreads; n++)
			pthread_barrier_wait(&c.barrier);
	} else {
		start = bench_now();
		c.deadline = start + secs;
		pthread_barrier_wait(&c.barrier);
	}
	for (n = 0; n < started; n++) {
		pthread_join(t[n].thread, NULL);
		total += t[n].files;
		if (t[n].end > end)
			end = t[n].end;
		if (t[n].error != 0)
			err = t[n].error;
	}
	bench_disk_clean(c.dirfd, t, started);
	pthread_barrier_destroy(&c.barrier);
	close(c.dirfd);
	free(buf);
	free(t);
	if (started < nthreads || err != 0 || total == 0) {
		if (err != 0)
			fprintf(stderr, "bench: disk: %s\n", strerror(err));
		return -1;
	}
	return (double)total / (end - start);
}

/* ---- /proc ---- */

/* utime + stime of pid in seconds. */
double
bench_proc_cpu(pid_t pid)
{
	char			 path[64], buf[1024], *p;
	unsigned long long	 ut, st;
	FILE			*fp;
	size_t			 n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* After "pid (comm) ": state is field 3, utime 14, stime 15. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Vm...:" line of /proc/pid/status, in KB. */
long
bench_proc_kb(pid_t pid, const char *field)
{
	char	 path[64], line[256];
	size_t	 flen = strlen(field);
	long	 kb = -1;
	FILE	*fp;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			kb = strtol(line + flen + 1, NULL, 10);
			break;
		}
	fclose(fp);
	return kb;
}

/* Reset the peak RSS to the current one. */
int
bench_proc_reset_hwm(pid_t pid)
{
	char	 path[64];
	int	 fd, rc;

	snprintf(path, sizeof(path), "/proc/%ld/clear_refs", (long)pid);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	rc = write_all(fd, "5", 1);
	close(fd);
	return rc;
}

/* ---- Readiness ---- */

/* Read from fd until a line starting "220 " arrives; 0 or -1. */
static int
bench_read_banner(int fd, double deadline)
{
	struct pollfd	 pfd = { fd, POLLIN, 0 };
	char		 buf[1024];
	size_t		 len = 0;
	ssize_t		 n;
	double		 left;

	while ((left = deadline - bench_now()) > 0 && !bench_interrupted) {
		if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
			continue;
		if ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		if (strncmp(buf, "220 ", 4) == 0 || strstr(buf, "\n220 "))
			return 0;
		if (len == sizeof(buf) - 1)
			return -1;
	}
	return -1;
}

/* Wait until the socket answers with its banner. */
double
bench_wait_banner(const char *path, struct harness_proc *proc,
    double timeout)
{
	struct sockaddr_un	 sun;
	double			 deadline = bench_now() + timeout, at;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) == -1)
		return -1;
	while (bench_now() < deadline && !bench_interrupted) {
		if (harness_exited(proc))
			return -1;
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd == -1)
			return -1;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			at = bench_read_banner(fd, deadline) == 0 ?
			    bench_now() : -1;
			(void)write(fd, "QUIT\r\n", 6);
			close(fd);
			return at;
		}
		close(fd);
		bench_sleep(0.001);
	}
	return -1;
}

/* ---- A queue filled by hand ---- */

/* The credentials file every filled entry links to. */
static int
bench_cred_file(const char *path)
{
	struct sasl_cred	 cred;
	char			 b64[512];
	int			 fd, rc;

	memset(&cred, 0, sizeof(cred));
	str_copy(cred.user, BENCH_USER, sizeof(cred.user));
	str_copy(cred.pass, BENCH_PASSWORD, sizeof(cred.pass));
	rc = sasl_plain_encode(&cred, b64, sizeof(b64));
	sasl_cred_clear(&cred);
	if (rc == -1)
		return -1;
	strcat(b64, "\n");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		secure_zero(b64, sizeof(b64));
		return -1;
	}
	rc = write_all(fd, b64, strlen(b64));
	secure_zero(b64, sizeof(b64));
	return close(fd) == -1 ? -1 : rc;
}

/* Write entry/envelope for slot. */
static int
bench_envelope(int entryfd, const char *id, size_t slot,
    long long next_attempt)
{
	struct envelope	 env;
	FILE		*fp;
	int		 fd, rc;

	envelope_init(&env);
	str_copy(env.id, id, sizeof(env.id));
	bench_sender(slot, env.sender, sizeof(env.sender));
	envelope_add_rcpt(&env, BENCH_RCPT);
	env.submitted = time(NULL);
	env.uid = getuid();
	env.next_attempt = (time_t)next_attempt;
	env.state = ENVELOPE_QUEUED;
	fd = openat(entryfd, "envelope", O_WRONLY | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600);
	if (fd == -1 || (fp = fdopen(fd, "w")) == NULL) {
		if (fd != -1)
			close(fd);
		envelope_fini(&env);
		return -1;
	}
	rc = envelope_dump(&env, fp);
	if (fclose(fp) != 0)
		rc = -1;
	envelope_fini(&env);
	return rc;
}

/* One entry: the directory, two hard links and its envelope. */
static int
bench_entry(int queuefd, const char *id, const char *msgfile,
    const char *cred, size_t slot, long long next_attempt)
{
	int	 fd, rc = -1;

	if (mkdirat(queuefd, id, 0700) == -1 ||
	    (fd = openat(queuefd, id, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		return -1;
	if (linkat(AT_FDCWD, msgfile, fd, "message.eml", 0) == 0 &&
	    linkat(AT_FDCWD, cred, fd, "credentials", 0) == 0 &&
	    bench_envelope(fd, id, slot, next_attempt) == 0)
		rc = 0;
	close(fd);
	return rc;
}

/* Fill queue/ with n entries (DESIGN.md's layout, see daemon/queue.h). */
int
bench_fill_queue(const char *queuedir, const char *msgfile, size_t first,
    size_t n, long long next_attempt)
{
	char		 stamp[32], id[ENVELOPE_ID_MAX], cred[PATH_MAX];
	struct tm	 tm;
	time_t		 now = time(NULL);
	size_t		 i;
	int		 qfd, rc = 0;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm) == 0 ||
	    (size_t)snprintf(cred, sizeof(cred), "%s.cred", msgfile) >=
	    sizeof(cred) || bench_cred_file(cred) == -1)
		return -1;
	if ((qfd = open(queuedir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    (rc = openat(qfd, "queue", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		fprintf(stderr, "bench: %s/queue: %s\n", queuedir,
		    strerror(errno));
		if (qfd != -1)
			close(qfd);
		unlink(cred);
		return -1;
	}
	close(qfd);
	qfd = rc;
	rc = 0;
	for (i = 0; i < n && rc == 0 && !bench_interrupted; i++) {
		snprintf(id, sizeof(id), "%s.%06zu-%08zx", stamp, i % 1000000,
		    first + i);
		if ((rc = bench_entry(qfd, id, msgfile, cred, first + i,
		    next_attempt)) == -1)
			fprintf(stderr, "bench: queue/%s: %s\n", id,
			    strerror(errno));
	}
	close(qfd);
	unlink(cred);
	return rc == 0 && i == n ? 0 : -1;
}

/* ---- The machine ---- */

/* The file system type of dir, by name where known. */
static void
bench_fs_name(const char *dir, char *fs, size_t fslen)
{
	static const struct {
		long		 magic;
		const char	*name;
	} types[] = {
		{ 0xEF53, "ext4" }, { 0x58465342, "xfs" },
		{ 0x9123683E, "btrfs" }, { 0x01021994, "tmpfs" },
		{ 0x794c7630, "overlayfs" }, { 0x2fc12fc1, "zfs" }
	};
	struct statfs	 sf;
	size_t		 i;

	snprintf(fs, fslen, "unknown");
	if (statfs(dir, &sf) == -1)
		return;
	snprintf(fs, fslen, "0x%lx", (unsigned long)sf.f_type);
	for (i = 0; i < nitems(types); i++)
		if ((long)sf.f_type == types[i].magic)
			snprintf(fs, fslen, "%s", types[i].name);
}

/* CPU model, CPUs, memory, kernel and the bench directory's fs. */
void
bench_machine(const char *dir, char *cpu, size_t cpulen, char *fs,
    size_t fslen, long *memmb, int *ncpu, char *kernel, size_t kernlen)
{
	struct utsname	 u;
	char		 line[512], *p;
	FILE		*fp;

	snprintf(cpu, cpulen, "unknown");
	if ((fp = fopen("/proc/cpuinfo", "r")) != NULL) {
		while (fgets(line, sizeof(line), fp) != NULL)
			if (strncmp(line, "model name", 10) == 0 &&
			    (p = strchr(line, ':')) != NULL) {
				p += strspn(p + 1, " \t") + 1;
				p[strcspn(p, "\n")] = '\0';
				snprintf(cpu, cpulen, "%s", p);
				break;
			}
		fclose(fp);
	}
	*ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	*memmb = (long)((double)sysconf(_SC_PHYS_PAGES) *
	    (double)sysconf(_SC_PAGESIZE) / 1048576.0);
	snprintf(kernel, kernlen, "unknown");
	if (uname(&u) == 0)
		snprintf(kernel, kernlen, "%s %s", u.sysname, u.release);
	bench_fs_name(dir, fs, fslen);
}
