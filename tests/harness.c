/*
 * harness.c: processes, files and a small SMTP client for the integration
 * tests.  See harness.h.  Every wait here is a poll with a deadline: the
 * programs under test are separate processes, and a bounded poll keeps a
 * broken one from hanging the run.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "harness.h"
#include "util.h"

#define HARNESS_POLL_NS		20000000L	/* 20 ms between polls */
#define HARNESS_IO_WAIT		10.0		/* seconds per SMTP reply */

static void	harness_nap(void);
static int	harness_abs(const char *, char *, size_t);
static int	harness_src_default(char *, size_t);
static int	harness_rm_cb(const char *, const struct stat *, int,
		    struct FTW *);
static int	harness_connect(const char *);
static int	harness_smtp_line(struct harness_smtp *, char *, size_t,
		    double);
static int	harness_argv_add(char **, size_t *, size_t, const char *);

/* Monotonic seconds. */
double
harness_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep one poll interval. */
static void
harness_nap(void)
{
	struct timespec	 ts = { 0, HARNESS_POLL_NS };

	nanosleep(&ts, NULL);
}

/* The multiplied wait, as Check scales its own timeouts. */
double
harness_scale(double secs)
{
	const char	*m = getenv("CK_TIMEOUT_MULTIPLIER");
	char		*end;
	double		 f;

	if (m == NULL || *m == '\0')
		return secs;
	errno = 0;
	f = strtod(m, &end);
	if (errno != 0 || *end != '\0' || f < 1.0 || f > 100.0)
		return secs;
	return secs * f;
}

/* Format into buf; 0, or -1 (ENAMETOOLONG) if it does not fit. */
int
harness_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Resolve path to an absolute, existing path in buf; 0 or -1. */
static int
harness_abs(const char *path, char *buf, size_t len)
{
	char	 tmp[PATH_MAX];

	if (realpath(path, tmp) == NULL)
		return -1;
	if ((size_t)snprintf(buf, len, "%s", tmp) >= len)
		return -1;
	return 0;
}

/* The source tree: two levels up from this file's compile-time name. */
static int
harness_src_default(char *buf, size_t len)
{
	char	 dir[PATH_MAX];
	char	*slash;

	if ((size_t)snprintf(dir, sizeof(dir), "%s", __FILE__) >= sizeof(dir))
		return -1;
	/* Drop "harness.c", then "tests". */
	if ((slash = strrchr(dir, '/')) == NULL)
		return harness_abs("..", buf, len);
	*slash = '\0';
	if ((slash = strrchr(dir, '/')) == NULL)
		return harness_abs(".", buf, len);
	*slash = '\0';
	return harness_abs(dir[0] != '\0' ? dir : "/", buf, len);
}

/* Create the test directory and work out every path. */
int
harness_init(struct harness *h)
{
	const char	*build, *src;
	char		 p[PATH_MAX];

	memset(h, 0, sizeof(*h));
	if ((build = getenv("RELAYQ_BUILD")) == NULL || *build == '\0')
		build = "build";
	if (harness_abs(build, h->build, sizeof(h->build)) == -1) {
		fprintf(stderr, "harness: build dir %s: %s\n", build,
		    strerror(errno));
		return -1;
	}
	src = getenv("RELAYQ_SRC");
	if ((src != NULL && *src != '\0') ? harness_abs(src, h->src,
	    sizeof(h->src)) : harness_src_default(h->src, sizeof(h->src))) {
		fprintf(stderr, "harness: source dir: %s\n", strerror(errno));
		return -1;
	}
	if (harness_fmt(p, sizeof(p), "%s/tests/certs", h->build) == -1 ||
	    harness_abs(p, h->certs, sizeof(h->certs)) == -1) {
		fprintf(stderr, "harness: %s: %s (run make certs)\n", p,
		    strerror(errno));
		return -1;
	}
	/* /tmp keeps the socket path well under sun_path's 108 bytes. */
	snprintf(h->dir, sizeof(h->dir), "/tmp/relayq-it.XXXXXX");
	if (mkdtemp(h->dir) == NULL) {
		fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
		h->dir[0] = '\0';
		return -1;
	}
	if (harness_fmt(h->socket, sizeof(h->socket), "%s/relayq.sock",
	    h->dir) == -1 ||
	    harness_fmt(h->queue, sizeof(h->queue), "%s/spool",
	    h->dir) == -1 ||
	    harness_fmt(h->mail, sizeof(h->mail), "%s/mail", h->dir) == -1 ||
	    mkdir(h->mail, 0700) == -1) {
		fprintf(stderr, "harness: mkdir %s: %s\n", h->mail,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* nftw callback: remove one entry, children first. */
static int
harness_rm_cb(const char *path, const struct stat *st, int type,
    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* Stop what still runs (daemons before the stand-in) and clean up. */
void
harness_fini(struct harness *h)
{
	size_t	 i;

	for (i = h->nprocs; i > 0; i--)
		harness_stop(&h->procs[i - 1], SIGTERM, harness_scale(5.0));
	if (h->dir[0] != '\0' && getenv("RELAYQ_KEEP") == NULL)
		nftw(h->dir, harness_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	h->dir[0] = '\0';
}

/*
 * Print the end of each process log and of the stand-in's events.log.  The
 * client's transcript is mostly base64: its last lines will do.
 */
void
harness_dump(const struct harness *h)
{
	char	 path[PATH_MAX];
	char	*text;
	size_t	 i, len, tail;

	for (i = 0; i <= h->nprocs; i++) {
		if (i < h->nprocs)
			snprintf(path, sizeof(path), "%s", h->procs[i].log);
		else if (harness_fmt(path, sizeof(path), "%s/events.log",
		    h->mail) == -1)
			continue;
		if ((text = harness_read_file(path, &len)) == NULL)
			continue;
		tail = HARNESS_DUMP_TAIL;
		if (i < h->nprocs && strcmp(h->procs[i].name, "relayq") == 0)
			tail = HARNESS_DUMP_CLIENT_TAIL;
		fprintf(stderr, "---- %s ----\n%s%s", path,
		    len > tail ? text + len - tail : text,
		    len > 0 && text[len - 1] != '\n' ? "\n" : "");
		free(text);
	}
}

/*
 * SIGTERM every process still running, the last started first: each must
 * exit 0.  0, or -1 with the first that did not described in why.
 */
int
harness_stop_all(struct harness *h, char *why, size_t whylen)
{
	struct harness_proc	*p;
	size_t			 i;
	int			 status, rc = 0;

	for (i = h->nprocs; i > 0; i--) {
		p = &h->procs[i - 1];
		if (harness_exited(p))
			continue;
		status = harness_stop(p, SIGTERM, harness_scale(HARNESS_WAIT));
		if (rc == 0 && (status == -1 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)) {
			snprintf(why, whylen, "%s (%s) on SIGTERM: wait status "
			    "0x%x", p->name, p->log, (unsigned)status);
			rc = -1;
		}
	}
	return rc;
}

/* Fork and exec argv with stdin from /dev/null. */
struct harness_proc *
harness_spawn(struct harness *h, const char *name, char *const argv[])
{
	return harness_spawn_input(h, name, argv, NULL);
}

/* Fork and exec argv with the process hygiene described in harness.h. */
struct harness_proc *
harness_spawn_input(struct harness *h, const char *name, char *const argv[],
    const char *input)
{
	struct harness_proc	*p;
	char			 in[PATH_MAX];
	pid_t			 parent = getpid(), pid;
	int			 fd, infd;

	if (h->nprocs >= HARNESS_PROCS_MAX)
		return NULL;
	p = &h->procs[h->nprocs];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	if (harness_fmt(p->log, sizeof(p->log), "%s/%s-%zu.log", h->dir,
	    p->name, h->nprocs) == -1 ||
	    harness_fmt(in, sizeof(in), "%s/%s-%zu.in", h->dir, p->name,
	    h->nprocs) == -1)
		return NULL;
	if (input == NULL)
		snprintf(in, sizeof(in), "/dev/null");
	else if ((infd = open(in, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1 || write_all(infd, input, strlen(input)) == -1 ||
	    close(infd) == -1)
		return NULL;
	if ((fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0600)) == -1)
		return NULL;
	if ((pid = fork()) == -1) {
		close(fd);
		return NULL;
	}
	if (pid == 0) {
		setpgid(0, 0);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != parent)
			_exit(127);
		if ((infd = open(in, O_RDONLY | O_CLOEXEC)) == -1 ||
		    dup2(infd, 0) == -1 || dup2(fd, 1) == -1 ||
		    dup2(fd, 2) == -1)
			_exit(127);
		/* Nothing of the test runner's leaks into the program. */
		close_range(3, ~0U, 0);
		unsetenv("JOURNAL_STREAM");
		unsetenv("NOTIFY_SOCKET");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], argv);
		dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	/* Also from the parent, so the group exists before we signal it. */
	setpgid(pid, pid);
	close(fd);
	p->pid = pid;
	p->state = HARNESS_PROC_RUNNING;
	h->nprocs++;
	return p;
}

/* Reap p without blocking if it has exited. */
bool
harness_exited(struct harness_proc *p)
{
	pid_t	 r;

	if (p->state != HARNESS_PROC_RUNNING)
		return true;
	r = waitpid(p->pid, &p->status, WNOHANG);
	if (r == p->pid || (r == -1 && errno == ECHILD)) {
		p->state = HARNESS_PROC_EXITED;
		return true;
	}
	return false;
}

/* Poll for p's exit until the deadline. */
int
harness_wait_exit(struct harness_proc *p, double secs)
{
	double	 end = harness_now() + secs;

	if (p == NULL || p->state == HARNESS_PROC_UNUSED)
		return -1;
	while (!harness_exited(p)) {
		if (harness_now() > end)
			return -1;
		harness_nap();
	}
	return p->status;
}

/* Signal by recorded pid and reap, escalating to SIGKILL. */
int
harness_stop(struct harness_proc *p, int sig, double secs)
{
	if (p == NULL || p->state == HARNESS_PROC_UNUSED)
		return -1;
	if (harness_exited(p))
		return p->status;
	kill(p->pid, sig);
	if (harness_wait_exit(p, secs) != -1)
		return p->status;
	fprintf(stderr, "harness: %s (pid %d) ignored signal %d, killing\n",
	    p->name, (int)p->pid, sig);
	kill(p->pid, SIGKILL);
	if (waitpid(p->pid, &p->status, 0) == -1)
		p->status = -1;
	p->state = HARNESS_PROC_EXITED;
	return p->status;
}

/* Poll for a file. */
int
harness_wait_file(const char *path, struct harness_proc *watch, double secs)
{
	double	 end = harness_now() + secs;

	while (access(path, F_OK) == -1) {
		if (harness_now() > end)
			return -1;
		if (watch != NULL && harness_exited(watch))
			return access(path, F_OK);
		harness_nap();
	}
	return 0;
}

/* Poll for a file's removal. */
int
harness_wait_gone(const char *path, double secs)
{
	double	 end = harness_now() + secs;

	while (access(path, F_OK) == 0) {
		if (harness_now() > end)
			return -1;
		harness_nap();
	}
	return 0;
}

/* A connected Unix stream socket to path, or -1. */
static int
harness_connect(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
	    path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Poll until a connect to the socket succeeds. */
int
harness_wait_socket(const char *path, struct harness_proc *watch,
    double secs)
{
	double	 end = harness_now() + secs;
	int	 fd;

	while ((fd = harness_connect(path)) == -1) {
		if (harness_now() > end)
			return -1;
		if (watch != NULL && harness_exited(watch))
			return -1;
		harness_nap();
	}
	close(fd);
	return 0;
}

/* Poll until the file holds needle n times or more. */
int
harness_wait_grep(const char *path, const char *needle, int n, double secs)
{
	double	 end = harness_now() + secs;

	while (harness_grep(path, needle) < n) {
		if (harness_now() > end)
			return -1;
		harness_nap();
	}
	return 0;
}

/* Poll until any needle shows up in the file. */
int
harness_wait_any(const char *path, const char *const *needles, double secs)
{
	double	 end = harness_now() + secs;
	int	 i;

	for (;;) {
		for (i = 0; needles[i] != NULL; i++)
			if (harness_grep(path, needles[i]) > 0)
				return i;
		if (harness_now() > end)
			return -1;
		harness_nap();
	}
}

/* Poll until dir holds exactly n entries named prefix*. */
int
harness_wait_count(const char *dir, const char *prefix, int n, double secs)
{
	double	 end = harness_now() + secs;

	while (harness_count(dir, prefix) != n) {
		if (harness_now() > end)
			return -1;
		harness_nap();
	}
	return 0;
}

/* Slurp a file. */
char *
harness_read_file(const char *path, size_t *lenp)
{
	FILE	*fp;
	char	*buf = NULL, *nbuf;
	size_t	 len = 0, cap = 0, n;

	if ((fp = fopen(path, "rb")) == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			if ((nbuf = realloc(buf, cap)) == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nbuf;
		}
		n = fread(buf + len, 1, cap - len - 1, fp);
		len += n;
		if (n == 0) {
			if (ferror(fp)) {
				free(buf);
				buf = NULL;
			}
			break;
		}
	}
	fclose(fp);
	if (buf != NULL) {
		buf[len] = '\0';
		if (lenp != NULL)
			*lenp = len;
	}
	return buf;
}

/* Count directory entries by name prefix. */
int
harness_count(const char *dir, const char *prefix)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		/* queue/.<ID>: a removal being finished, not an entry. */
		if (de->d_name[0] == '.' && prefix[0] != '.')
			continue;
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* The first matching entry name, in readdir order. */
int
harness_first(const char *dir, const char *prefix, char *buf, size_t len)
{
	DIR		*d;
	struct dirent	*de;
	int		 rc = -1;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if ((size_t)snprintf(buf, len, "%s", de->d_name) < len)
			rc = 0;
		break;
	}
	closedir(d);
	return rc;
}

/* Occurrences of needle in a memory block (needle non-empty). */
int
harness_memcount(const void *hay, size_t len, const char *needle)
{
	const char	*p = hay, *end = p + len, *hit;
	size_t		 nlen = strlen(needle);
	int		 n = 0;

	if (nlen == 0)
		return 0;
	while (p < end && (hit = memmem(p, (size_t)(end - p), needle,
	    nlen)) != NULL) {
		n++;
		p = hit + nlen;
	}
	return n;
}

/* Occurrences of needle in a file. */
int
harness_grep(const char *path, const char *needle)
{
	char	*buf;
	size_t	 len;
	int	 n;

	if ((buf = harness_read_file(path, &len)) == NULL)
		return 0;
	n = harness_memcount(buf, len, needle);
	free(buf);
	return n;
}

/* Count lines holding both strings. */
int
harness_grep_lines(const char *path, const char *a, const char *b)
{
	char	*text, *line, *next;
	int	 n = 0;

	if ((text = harness_read_file(path, NULL)) == NULL)
		return 0;
	for (line = text; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (strstr(line, a) != NULL && (b == NULL ||
		    strstr(line, b) != NULL))
			n++;
	}
	free(text);
	return n;
}

/* Look up "key: value" in a small text file. */
int
harness_keyval(const char *path, const char *key, char *buf, size_t len)
{
	char	*text, *line, *next;
	size_t	 klen = strlen(key);
	int	 rc = -1;

	if ((text = harness_read_file(path, NULL)) == NULL)
		return -1;
	for (line = text; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (strncmp(line, key, klen) != 0 || line[klen] != ':')
			continue;
		line += klen + 1;
		while (*line == ' ')
			line++;
		if ((size_t)snprintf(buf, len, "%s", line) < len)
			rc = 0;
		break;
	}
	free(text);
	return rc;
}

/* Poll a "key: value" file until the value matches. */
int
harness_wait_keyval(const char *path, const char *key, const char *value,
    double secs)
{
	double	 end = harness_now() + secs;
	char	 buf[1024];

	for (;;) {
		if (harness_keyval(path, key, buf, sizeof(buf)) == 0 &&
		    strcmp(buf, value) == 0)
			return 0;
		if (harness_now() > end)
			return -1;
		harness_nap();
	}
}

/* Base64-encode with OpenSSL. */
char *
harness_b64_encode(const void *src, size_t len)
{
	char	*out;

	if (len > INT_MAX / 2 || (out = malloc(len / 3 * 4 + 5)) == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, src, (int)len);
	return out;
}

/* Base64-decode with OpenSSL, ignoring line breaks. */
unsigned char *
harness_b64_decode(const char *src, size_t len, size_t *outlen)
{
	char		*clean = NULL;
	unsigned char	*out = NULL;
	size_t		 i, n = 0, pad = 0;
	int		 r;

	if (len > INT_MAX / 2 || (clean = malloc(len + 1)) == NULL)
		goto out;
	for (i = 0; i < len; i++)
		if (src[i] != '\r' && src[i] != '\n')
			clean[n++] = src[i];
	if (n % 4 != 0 || (out = malloc(n / 4 * 3 + 1)) == NULL)
		goto out;
	if (n > 0 && clean[n - 1] == '=')
		pad++;
	if (n > 1 && clean[n - 2] == '=')
		pad++;
	if ((r = EVP_DecodeBlock(out, (unsigned char *)clean, (int)n)) < 0) {
		free(out);
		out = NULL;
		goto out;
	}
	*outlen = (size_t)r - pad;
out:
	free(clean);
	return out;
}

/* Read one line (CRLF stripped) into line within secs; its length or -1. */
static int
harness_smtp_line(struct harness_smtp *s, char *line, size_t len,
    double secs)
{
	double		 end = harness_now() + secs;
	struct pollfd	 pfd;
	char		*nl;
	size_t		 n;
	ssize_t		 r;
	int		 ms;

	while ((nl = memchr(s->in, '\n', s->inlen)) == NULL) {
		if (s->inlen == sizeof(s->in))
			return -1;
		ms = (int)((end - harness_now()) * 1000);
		if (ms <= 0)
			return -1;
		pfd.fd = s->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, ms) <= 0)
			return -1;
		r = read(s->fd, s->in + s->inlen, sizeof(s->in) - s->inlen);
		if (r <= 0)
			return -1;
		s->inlen += (size_t)r;
	}
	n = (size_t)(nl - s->in);
	if (n > 0 && s->in[n - 1] == '\r')
		n--;
	if (n >= len)
		return -1;
	memcpy(line, s->in, n);
	line[n] = '\0';
	s->inlen -= (size_t)(nl + 1 - s->in);
	memmove(s->in, nl + 1, s->inlen);
	return (int)n;
}

/* Read a multi-line reply; every line must carry the same code. */
int
harness_smtp_reply(struct harness_smtp *s)
{
	char	 line[1024];
	size_t	 used = 0;
	int	 n, code = -1;

	s->code = -1;
	s->reply[0] = '\0';
	for (;;) {
		n = harness_smtp_line(s, line, sizeof(line),
		    harness_scale(HARNESS_IO_WAIT));
		if (n < 3 || line[0] < '1' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9')
			return -1;
		if (code == -1)
			code = atoi(line);
		else if (code != atoi(line))
			return -1;
		used += (size_t)snprintf(s->reply + used,
		    sizeof(s->reply) - used, "%s%s", used ? "\n" : "", line);
		if (used >= sizeof(s->reply))
			return -1;
		if (n == 3 || line[3] == ' ')
			break;
		if (line[3] != '-')
			return -1;
	}
	s->code = code;
	return code;
}

/* Connect to the submission socket and read the banner. */
int
harness_smtp_open(struct harness_smtp *s, const char *path)
{
	memset(s, 0, sizeof(*s));
	if ((s->fd = harness_connect(path)) == -1)
		return -1;
	return harness_smtp_reply(s);
}

/* Write everything, bounded by the socket staying writable. */
int
harness_smtp_write(struct harness_smtp *s, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 r;

	while (len > 0) {
		r = send(s->fd, p, len, MSG_NOSIGNAL);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* One command, one reply. */
int
harness_smtp_cmd(struct harness_smtp *s, const char *fmt, ...)
{
	char	 line[2048];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		return -1;
	memcpy(line + n, "\r\n", 2);
	if (harness_smtp_write(s, line, (size_t)n + 2) == -1)
		return -1;
	return harness_smtp_reply(s);
}

/* Dot-stuff body line by line, end with ".", and read the reply. */
int
harness_smtp_data(struct harness_smtp *s, const char *body, size_t len)
{
	const char	*p = body, *end = body + len, *nl;
	size_t		 n;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		if (*p == '.' && harness_smtp_write(s, ".", 1) == -1)
			return -1;
		if (harness_smtp_write(s, p, n) == -1)
			return -1;
		p += n;
	}
	if (len > 0 && body[len - 1] != '\n' &&
	    harness_smtp_write(s, "\r\n", 2) == -1)
		return -1;
	if (harness_smtp_write(s, ".\r\n", 3) == -1)
		return -1;
	return harness_smtp_reply(s);
}

/* Close the connection. */
void
harness_smtp_close(struct harness_smtp *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* Pull the queue ID out of "... queued as ID". */
int
harness_queue_id(const char *text, char *buf, size_t len)
{
	const char	*p;
	size_t		 n;

	if ((p = strstr(text, "queued as ")) == NULL)
		return -1;
	p += strlen("queued as ");
	if (*p == '<')
		p++;
	n = strcspn(p, "<> \t\r\n");
	if (n == 0 || n >= len)
		return -1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return 0;
}

/* Append a copy of arg to argv (cap entries, NULL kept at the end). */
static int
harness_argv_add(char **argv, size_t *n, size_t cap, const char *arg)
{
	if (*n + 1 >= cap)
		return -1;
	argv[(*n)++] = (char *)(uintptr_t)arg;
	argv[*n] = NULL;
	return 0;
}

/* Start the stand-in and read its port. */
struct harness_proc *
harness_standin(struct harness *h, const char *cert,
    const char *const *extra)
{
	struct harness_proc	*p;
	char			*argv[32], *text;
	char			 bin[PATH_MAX], pf[PATH_MAX], crt[PATH_MAX];
	char			 key[PATH_MAX];
	size_t			 n = 0, i;
	unsigned long		 port;

	if (cert == NULL)
		cert = "server";
	if ((size_t)snprintf(bin, sizeof(bin), "%s/tests/standin",
	    h->build) >= sizeof(bin) ||
	    (size_t)snprintf(pf, sizeof(pf), "%s/port", h->dir) >= sizeof(pf) ||
	    (size_t)snprintf(crt, sizeof(crt), "%s/%s.pem", h->certs, cert) >=
	    sizeof(crt) ||
	    (size_t)snprintf(key, sizeof(key), "%s/%s.key", h->certs, cert) >=
	    sizeof(key))
		return NULL;
	unlink(pf);
	argv[0] = NULL;
	if (harness_argv_add(argv, &n, nitems(argv), bin) == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), "-v") == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), "--port-file") == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), pf) == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), "--mail-dir") == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), h->mail) == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), "--cert") == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), crt) == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), "--key") == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), key) == -1)
		return NULL;
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		if (harness_argv_add(argv, &n, nitems(argv), extra[i]) == -1)
			return NULL;
	if ((p = harness_spawn(h, "standin", argv)) == NULL)
		return NULL;
	if (harness_wait_file(pf, p, harness_scale(HARNESS_WAIT)) == -1) {
		fprintf(stderr, "harness: stand-in wrote no %s (log %s)\n",
		    pf, p->log);
		return NULL;
	}
	if ((text = harness_read_file(pf, NULL)) == NULL)
		return NULL;
	text[strcspn(text, "\n")] = '\0';
	port = strtoul(text, NULL, 10);
	free(text);
	if (port == 0 || port > 65535)
		return NULL;
	h->port = (int)port;
	return p;
}

/* Start relayqd with the standard test options and wait for its socket. */
struct harness_proc *
harness_relayqd(struct harness *h, const char *host, int port,
    const char *const *extra)
{
	static const char *const std[] = {
		"-f", "-v", "--retry-min", "1", "--retry-max", "2",
		"--relay-timeout", "5"
	};
	struct harness_proc	*p;
	char			*argv[48];
	char			 bin[PATH_MAX], relay[300], ca[PATH_MAX];
	size_t			 n = 0, i;

	if ((size_t)snprintf(bin, sizeof(bin), "%s/relayqd", h->build) >=
	    sizeof(bin) || (size_t)snprintf(relay, sizeof(relay), "%s:%d",
	    host ? host : "127.0.0.1", port ? port : h->port) >=
	    sizeof(relay) || (size_t)snprintf(ca, sizeof(ca), "%s/ca.pem",
	    h->certs) >= sizeof(ca))
		return NULL;
	argv[0] = NULL;
	if (harness_argv_add(argv, &n, nitems(argv), bin) == -1)
		return NULL;
	for (i = 0; i < nitems(std); i++)
		if (harness_argv_add(argv, &n, nitems(argv), std[i]) == -1)
			return NULL;
	if (harness_argv_add(argv, &n, nitems(argv), "--socket") == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), h->socket) == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), "--queue-dir") == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), h->queue) == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), "--relay") == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), relay) == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), "--ca-file") == -1 ||
	    harness_argv_add(argv, &n, nitems(argv), ca) == -1)
		return NULL;
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		if (harness_argv_add(argv, &n, nitems(argv), extra[i]) == -1)
			return NULL;
	if ((p = harness_spawn(h, "relayqd", argv)) == NULL)
		return NULL;
	if (harness_wait_socket(h->socket, p,
	    harness_scale(HARNESS_WAIT)) == -1) {
		fprintf(stderr, "harness: relayqd never accepted on %s "
		    "(log %s)\n", h->socket, p->log);
		return NULL;
	}
	return p;
}

/* Run the client to completion and collect its output. */
int
harness_client(struct harness *h, const char *sender, const char *password,
    const char *rcpt, const char *input, char **out, int *status)
{
	struct harness_proc	*p;
	char			 bin[PATH_MAX];
	char			*argv[] = { bin, (char *)(uintptr_t)"--socket",
				    h->socket, (char *)(uintptr_t)sender,
				    (char *)(uintptr_t)password,
				    (char *)(uintptr_t)rcpt, NULL };

	*out = NULL;
	if ((size_t)snprintf(bin, sizeof(bin), "%s/relayq", h->build) >=
	    sizeof(bin))
		return -1;
	if ((p = harness_spawn_input(h, "relayq", argv, input)) == NULL)
		return -1;
	if (harness_wait_exit(p, harness_scale(HARNESS_WAIT)) == -1) {
		harness_stop(p, SIGKILL, 1.0);
		return -1;
	}
	*status = p->status;
	if ((*out = harness_read_file(p->log, NULL)) == NULL)
		return -1;
	return 0;
}

/* Bind 127.0.0.1:0, note the port, close: nothing listens there now. */
int
harness_free_port(void)
{
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof(sin);
	int			 fd, port = -1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &slen) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/*
 * The child side of harness_spawn_with: stdin from in, stdout and
 * stderr to logfd, the listening socket as fd 3, the environment, the
 * uid.  Never returns.
 */
static void
harness_child_with(const char *in, int logfd,
    const struct harness_spawn_opts *o, char *const argv[])
{
	char	 pid[32];
	size_t	 i;
	int	 infd;

	if ((infd = open(in, O_RDONLY | O_CLOEXEC)) == -1 ||
	    dup2(infd, 0) == -1 || dup2(logfd, 1) == -1 ||
	    dup2(logfd, 2) == -1)
		_exit(127);
	unsetenv("JOURNAL_STREAM");
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (o->listen_fd >= 0) {
		/* dup2 clears FD_CLOEXEC on the new fd: it survives exec. */
		if (dup2(o->listen_fd, 3) == -1)
			_exit(127);
		close_range(4, ~0U, 0);
		snprintf(pid, sizeof(pid), "%ld", (long)getpid());
		if (setenv("LISTEN_FDS", "1", 1) == -1 ||
		    setenv("LISTEN_PID", pid, 1) == -1)
			_exit(127);
	} else
		close_range(3, ~0U, 0);
	for (i = 0; o->env != NULL && o->env[i] != NULL; i++)
		if (putenv((char *)(uintptr_t)o->env[i]) != 0)
			_exit(127);
	if (o->uid != 0 && geteuid() == 0 &&
	    (setgroups(0, NULL) == -1 || setgid((gid_t)o->uid) == -1 ||
	    setuid(o->uid) == -1))
		_exit(127);
	signal(SIGPIPE, SIG_DFL);
	execv(argv[0], argv);
	dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* harness_spawn_input with a listening socket, environment and uid. */
struct harness_proc *
harness_spawn_with(struct harness *h, const char *name, char *const argv[],
    const struct harness_spawn_opts *o)
{
	static const struct harness_spawn_opts none = { NULL, -1, NULL, 0 };
	struct harness_proc	*p;
	char			 in[PATH_MAX];
	pid_t			 parent = getpid(), pid;
	int			 fd, infd;

	if (o == NULL)
		o = &none;
	if (h->nprocs >= HARNESS_PROCS_MAX)
		return NULL;
	p = &h->procs[h->nprocs];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	if (harness_fmt(p->log, sizeof(p->log), "%s/%s-%zu.log", h->dir,
	    p->name, h->nprocs) == -1 ||
	    harness_fmt(in, sizeof(in), "%s/%s-%zu.in", h->dir, p->name,
	    h->nprocs) == -1)
		return NULL;
	if (o->input == NULL)
		snprintf(in, sizeof(in), "/dev/null");
	else if ((infd = open(in, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1 || write_all(infd, o->input, strlen(o->input)) == -1 ||
	    close(infd) == -1)
		return NULL;
	if ((fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0600)) == -1)
		return NULL;
	if ((pid = fork()) == -1) {
		close(fd);
		return NULL;
	}
	if (pid == 0) {
		setpgid(0, 0);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != parent)
			_exit(127);
		harness_child_with(in, fd, o, argv);
	}
	setpgid(pid, pid);
	close(fd);
	p->pid = pid;
	p->state = HARNESS_PROC_RUNNING;
	h->nprocs++;
	return p;
}
