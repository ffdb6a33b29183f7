/*
 * it_service.c: relayqd as a service.  Socket activation with a socket
 * passed the way systemd passes it (fd 3, LISTEN_FDS, LISTEN_PID), the
 * notify protocol on a datagram socket the test owns (READY, STATUS,
 * RELOADING, WATCHDOG, STOPPING), SIGHUP re-reading the configuration
 * with a session open and a message queued, SIGUSR1 and ETRN retries,
 * the queue tools of relayq (--list, --json, --delete, --flush), and
 * relayqd --check-relay and -n.  Each test runs the real programs in a
 * fresh directory (tests/harness.h).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"
#include "util.h"

#define SVC_TIMEOUT		60	/* per test, before the multiplier */
#define SVC_SENDER		"alice@example.com"
#define SVC_RCPT		"bob@example.net"
#define SVC_PASSWORD		"Zq7-app-Pass-Wd42"
#define SVC_NOBODY		65534
#define SVC_NOTIFY_MAX		256	/* notifications kept */
#define SVC_ARGV_MAX		40

Suite	*service_suite(void);

static struct harness	 hh;		/* one per forked test */

static void	svc_public_relayq(char *, size_t);

/* Assert, printing every process log first, and clean up on failure. */
#define svc_assert(cond, ...)						\
	harness_check(cond, harness_dump(&hh), harness_fini(&hh),	\
	    __VA_ARGS__)

/* Format into buf; it must fit. */
#define svc_fmt(buf, len, ...)						\
	svc_assert(harness_fmt((buf), (len), __VA_ARGS__) == 0,		\
	    "does not fit: %s", #buf)

/* A fresh directory per test. */
static void
svc_setup(void)
{
	if (harness_init(&hh) == -1) {
		harness_fini(&hh);
		ck_abort_msg("harness_init failed");
	}
}

/* Every process still running must exit 0 on SIGTERM; then clean up. */
static void
svc_teardown(void)
{
	char	 why[PATH_MAX + 128];

	svc_assert(harness_stop_all(&hh, why, sizeof(why)) == 0, "%s", why);
	harness_fini(&hh);
}

/* Write text to path atomically (tmp file, rename). */
static void
svc_write(const char *path, const char *text)
{
	char	 tmp[PATH_MAX];
	int	 fd;

	svc_fmt(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	svc_assert(fd != -1 && write_all(fd, text, strlen(text)) == 0 &&
	    close(fd) == 0 && rename(tmp, path) == 0, "writing %s: %s", path,
	    strerror(errno));
}

/* An argv under construction: the strings are copied. */
struct svc_argv {
	char	*v[SVC_ARGV_MAX + 1];
	size_t	 n;
};

/* Append the NULL-terminated strings. */
static void
svc_args(struct svc_argv *a, ...)
{
	const char	*s;
	va_list		 ap;

	va_start(ap, a);
	while ((s = va_arg(ap, const char *)) != NULL) {
		svc_assert(a->n < SVC_ARGV_MAX, "too many arguments");
		a->v[a->n++] = xstrdup(s);
		a->v[a->n] = NULL;
	}
	va_end(ap);
}

/* Free an argv's strings. */
static void
svc_args_free(struct svc_argv *a)
{
	size_t	 i;

	for (i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

/*
 * relayqd -f -v --socket --queue-dir --ca-file (the harness's), then the
 * NULL-terminated extra arguments.
 */
static void
svc_daemon_args(struct svc_argv *a, ...)
{
	char		 bin[PATH_MAX], ca[PATH_MAX];
	const char	*s;
	va_list		 ap;

	svc_fmt(bin, sizeof(bin), "%s/relayqd", hh.build);
	svc_fmt(ca, sizeof(ca), "%s/ca.pem", hh.certs);
	memset(a, 0, sizeof(*a));
	svc_args(a, bin, "-f", "-v", "--socket", hh.socket, "--queue-dir",
	    hh.queue, "--ca-file", ca, (const char *)NULL);
	va_start(ap, a);
	while ((s = va_arg(ap, const char *)) != NULL)
		svc_args(a, s, (const char *)NULL);
	va_end(ap);
}

/*
 * Start a program and wait for it; its output and exit status.  Its
 * slot in the harness (HARNESS_PROCS_MAX of them) is given back, with
 * its log and input files, so a test may run many short commands.
 */
static char *
svc_run(const char *name, struct svc_argv *a,
    const struct harness_spawn_opts *o, int *status)
{
	struct harness_proc	*p;
	char			*out, in[PATH_MAX];

	p = harness_spawn_with(&hh, name, a->v, o);
	svc_assert(p != NULL, "cannot start %s", a->v[0]);
	svc_assert(harness_wait_exit(p, harness_scale(HARNESS_WAIT)) != -1,
	    "%s did not finish", name);
	svc_args_free(a);
	out = harness_read_file(p->log, NULL);
	svc_assert(out != NULL, "no output from %s", name);
	svc_assert(WIFEXITED(p->status), "%s: status 0x%x", name,
	    (unsigned)p->status);
	*status = WEXITSTATUS(p->status);
	if (p == &hh.procs[hh.nprocs - 1]) {
		svc_fmt(in, sizeof(in), "%s/%s-%zu.in", hh.dir, p->name,
		    hh.nprocs - 1);
		unlink(in);
		unlink(p->log);
		p->state = HARNESS_PROC_UNUSED;
		hh.nprocs--;
	}
	return out;
}

/* Run relayq with the NULL-terminated arguments; its output. */
static char *
svc_relayq(int *status, ...)
{
	struct svc_argv	 a;
	char		 bin[PATH_MAX];
	const char	*s;
	va_list		 ap;

	memset(&a, 0, sizeof(a));
	svc_fmt(bin, sizeof(bin), "%s/relayq", hh.build);
	svc_args(&a, bin, (const char *)NULL);
	va_start(ap, status);
	while ((s = va_arg(ap, const char *)) != NULL)
		svc_args(&a, s, (const char *)NULL);
	va_end(ap);
	return svc_run("relayq", &a, NULL, status);
}

/* Submit the test message (password on stdin); its queue ID into id. */
static void
svc_submit(char *id, size_t len)
{
	char	*out;
	int	 status;

	svc_assert(harness_client(&hh, SVC_SENDER, "-", SVC_RCPT,
	    SVC_PASSWORD "\n", &out, &status) == 0, "relayq did not run");
	svc_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    harness_queue_id(out, id, len) == 0, "submission failed: %s",
	    out);
	free(out);
}

/* Wait until the process log holds needle n times. */
static void
svc_wait_log(struct harness_proc *p, const char *needle, int n)
{
	svc_assert(harness_wait_grep(p->log, needle, n,
	    harness_scale(HARNESS_WAIT)) == 0, "%s: never logged \"%s\" "
	    "%d times", p->name, needle, n);
}

/* "<id> <what>" in buf, for log lines. */
static const char *
svc_idmsg(char *buf, size_t len, const char *id, const char *what)
{
	svc_fmt(buf, len, "%s %s", id, what);
	return buf;
}

/* <queue>/<sub>/<id>[/<file>] into buf. */
static const char *
svc_entry(char *buf, size_t len, const char *sub, const char *id,
    const char *file)
{
	svc_fmt(buf, len, "%s/%s/%s%s%s", hh.queue, sub, id, file ? "/" : "",
	    file ? file : "");
	return buf;
}

/* A listening Unix stream socket at path, as systemd's .socket makes. */
static int
svc_unix_listener(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	svc_assert(str_copy(sun.sun_path, path, sizeof(sun.sun_path)) == 0,
	    "path too long");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	svc_assert(fd != -1 && bind(fd, (struct sockaddr *)&sun,
	    sizeof(sun)) == 0 && listen(fd, 16) == 0, "listener %s: %s",
	    path, strerror(errno));
	return fd;
}

/* Connect to a Unix socket (a listening one accepts into its backlog). */
static int
svc_unix_connect(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	str_copy(sun.sun_path, path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	svc_assert(fd != -1 && connect(fd, (struct sockaddr *)&sun,
	    sizeof(sun)) == 0, "connect %s: %s", path, strerror(errno));
	return fd;
}

/* Read until a line ends or time is up; the text read (NUL-terminated). */
static void
svc_read_line(int fd, char *buf, size_t len)
{
	struct pollfd	 pfd = { fd, POLLIN, 0 };
	double		 end;
	size_t		 n = 0;
	ssize_t		 r;

	end = harness_now() + harness_scale(HARNESS_WAIT);
	buf[0] = '\0';
	while (n + 1 < len && strchr(buf, '\n') == NULL &&
	    harness_now() < end) {
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((r = read(fd, buf + n, len - 1 - n)) <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
	}
}

/*
 * systemd's way: the socket exists (and takes connections) before
 * relayqd runs; relayqd gets it as fd 3 with LISTEN_FDS=1 and
 * LISTEN_PID, serves it, and leaves the socket file when it stops.  A
 * daemon that ignored LISTEN_FDS would find its --socket path answered
 * and refuse to start.
 */
START_TEST(test_service_socket_activation)
{
	struct harness_spawn_opts	 o;
	struct harness_proc		*d;
	struct svc_argv			 a;
	struct stat			 st;
	char				 banner[512], port[16], id[64];
	int				 lfd, c1, c2, status;

	svc_fmt(port, sizeof(port), "127.0.0.1:%d", harness_free_port());
	lfd = svc_unix_listener(hh.socket);
	c1 = svc_unix_connect(hh.socket);	/* before relayqd runs */
	memset(&o, 0, sizeof(o));
	o.listen_fd = lfd;
	svc_daemon_args(&a, "--relay", port, (const char *)NULL);
	d = harness_spawn_with(&hh, "relayqd", a.v, &o);
	svc_args_free(&a);
	svc_assert(d != NULL, "relayqd did not start");
	svc_read_line(c1, banner, sizeof(banner));
	svc_assert(strncmp(banner, "220 ", 4) == 0, "no banner on the "
	    "connection made before the start: \"%s\"", banner);
	close(c1);
	svc_wait_log(d, "(inherited)", 1);
	svc_submit(id, sizeof(id));

	status = harness_stop(d, SIGTERM, harness_scale(HARNESS_WAIT));
	svc_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "relayqd on SIGTERM: 0x%x", (unsigned)status);
	svc_assert(lstat(hh.socket, &st) == 0 && S_ISSOCK(st.st_mode),
	    "the socket file was removed with the daemon");
	/* Stopped: the socket still takes a submission for the next start. */
	c2 = svc_unix_connect(hh.socket);
	o.listen_fd = lfd;
	svc_daemon_args(&a, "--relay", port, (const char *)NULL);
	d = harness_spawn_with(&hh, "relayqd", a.v, &o);
	svc_args_free(&a);
	svc_assert(d != NULL, "relayqd did not start again");
	svc_read_line(c2, banner, sizeof(banner));
	svc_assert(strncmp(banner, "220 ", 4) == 0, "no banner after the "
	    "restart: \"%s\"", banner);
	close(c2);
	svc_wait_log(d, "queued=1", 1);
	close(lfd);
}
END_TEST

/* A bound datagram socket for NOTIFY_SOCKET. */
static int
svc_notify_socket(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	svc_assert(str_copy(sun.sun_path, path, sizeof(sun.sun_path)) == 0,
	    "path too long");
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	svc_assert(fd != -1 && bind(fd, (struct sockaddr *)&sun,
	    sizeof(sun)) == 0, "notify socket: %s", strerror(errno));
	return fd;
}

/* What the daemon sent, in order; WATCHDOG=1 only counted. */
struct svc_notes {
	char	*msg[SVC_NOTIFY_MAX];
	size_t	 n;
	int	 watchdog;
};

/* Receive until a message starting with want (and holding has) arrives. */
static size_t
svc_notify_wait(int fd, struct svc_notes *nt, const char *want,
    const char *has)
{
	struct pollfd	 pfd = { fd, POLLIN, 0 };
	double		 end;
	char		 buf[1024];
	ssize_t		 r;

	end = harness_now() + harness_scale(HARNESS_WAIT);
	while (harness_now() < end) {
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((r = recv(fd, buf, sizeof(buf) - 1, 0)) <= 0)
			continue;
		buf[r] = '\0';
		if (strcmp(buf, "WATCHDOG=1") == 0) {
			nt->watchdog++;
			continue;
		}
		svc_assert(nt->n < SVC_NOTIFY_MAX, "too many notifications");
		nt->msg[nt->n++] = xstrdup(buf);
		if (strncmp(buf, want, strlen(want)) == 0 &&
		    (has == NULL || strstr(buf, has) != NULL))
			return nt->n - 1;
	}
	svc_assert(0, "no notification %s%s%s within the wait (%zu seen, "
	    "last \"%s\")", want, has ? " with " : "", has ? has : "", nt->n,
	    nt->n ? nt->msg[nt->n - 1] : "");
	return 0;
}

/*
 * NOTIFY_SOCKET: READY=1 first, STATUS= with the queue size and the
 * last result, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 last;
 * WATCHDOG=1 keeps coming at half of WATCHDOG_USEC.
 */
START_TEST(test_service_notify)
{
	struct harness_spawn_opts	 o;
	struct harness_proc		*d;
	struct svc_notes		 nt;
	struct svc_argv			 a;
	char				 path[PATH_MAX], env[PATH_MAX + 32];
	char				 port[16], id[64];
	const char			*envv[] = { env,
					    "WATCHDOG_USEC=200000", NULL };
	size_t				 ready, status0, status1, reload;
	size_t				 ready2, stop, i;
	int				 fd, st, wd;

	memset(&nt, 0, sizeof(nt));
	svc_fmt(path, sizeof(path), "%s/notify.sock", hh.dir);
	svc_fmt(env, sizeof(env), "NOTIFY_SOCKET=%s", path);
	svc_fmt(port, sizeof(port), "127.0.0.1:%d", harness_free_port());
	fd = svc_notify_socket(path);
	memset(&o, 0, sizeof(o));
	o.listen_fd = -1;
	o.env = envv;
	svc_daemon_args(&a, "--relay", port, "--retry-min", "1h",
	    "--retry-max", "2h", (const char *)NULL);
	d = harness_spawn_with(&hh, "relayqd", a.v, &o);
	svc_args_free(&a);
	svc_assert(d != NULL, "relayqd did not start");

	ready = svc_notify_wait(fd, &nt, "READY=1", NULL);
	status0 = svc_notify_wait(fd, &nt, "STATUS=", "0 queued");
	svc_submit(id, sizeof(id));
	svc_fmt(path, sizeof(path), "STATUS=1 queued; last: %s deferred",
	    id);
	status1 = svc_notify_wait(fd, &nt, path, NULL);
	svc_assert(kill(d->pid, SIGHUP) == 0, "kill");
	reload = svc_notify_wait(fd, &nt, "RELOADING=1", NULL);
	ready2 = svc_notify_wait(fd, &nt, "READY=1", NULL);
	wd = nt.watchdog;
	svc_assert(kill(d->pid, SIGTERM) == 0, "kill");
	stop = svc_notify_wait(fd, &nt, "STOPPING=1", NULL);
	st = harness_wait_exit(d, harness_scale(HARNESS_WAIT));
	svc_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "relayqd exit 0x%x", (unsigned)st);

	svc_assert(ready == 0, "READY=1 came after \"%s\"", nt.msg[0]);
	svc_assert(ready < status0 && status0 < status1 && status1 < reload &&
	    reload + 1 == ready2 && ready2 < stop && stop == nt.n - 1,
	    "out of order: READY %zu STATUS %zu,%zu RELOADING %zu READY %zu "
	    "STOPPING %zu of %zu", ready, status0, status1, reload, ready2,
	    stop, nt.n);
	/* 100 ms pings over the whole run, at least a second. */
	svc_assert(wd >= 3, "only %d WATCHDOG=1", wd);
	for (i = 0; i < nt.n; i++)
		free(nt.msg[i]);
	close(fd);
}
END_TEST

/*
 * SIGHUP re-reads the file: a bad file is refused with file:line:key and
 * changes nothing; a good one points the relay elsewhere for the next
 * attempt.  A submission session open across both reloads completes, the
 * message queued before stays queued, and SIGUSR1 retries it at once.
 */
START_TEST(test_service_reload)
{
	struct harness_proc	*d, *s;
	struct harness_smtp	 smtp;
	struct svc_argv		 a;
	char			 conf[PATH_MAX], text[512], line[128];
	char			 events[PATH_MAX], ida[64], idb[64];
	char			*plain;
	static const char	 body[] = "Subject: reload\r\n\r\nheld open "
				    "across two reloads\r\n";

	s = harness_standin(&hh, NULL, NULL);
	svc_assert(s != NULL, "stand-in did not start");
	svc_fmt(events, sizeof(events), "%s/events.log", hh.mail);
	svc_fmt(conf, sizeof(conf), "%s/relayqd.conf", hh.dir);
	svc_fmt(text, sizeof(text), "relay = 127.0.0.1:%d\nretry-min = 1h\n"
	    "retry-max = 2h\nrelay-timeout = 5\n", harness_free_port());
	svc_write(conf, text);
	svc_daemon_args(&a, "-c", conf, (const char *)NULL);
	d = harness_spawn_with(&hh, "relayqd", a.v, NULL);
	svc_args_free(&a);
	svc_assert(d != NULL && harness_wait_socket(hh.socket, d,
	    harness_scale(HARNESS_WAIT)) == 0, "relayqd did not start");
	svc_submit(ida, sizeof(ida));
	svc_wait_log(d, svc_idmsg(line, sizeof(line), ida, "deferred"), 1);

	svc_assert(harness_smtp_open(&smtp, hh.socket) == 220, "banner");
	plain = harness_b64_encode("\0" SVC_SENDER "\0" SVC_PASSWORD,
	    sizeof(SVC_SENDER) + sizeof(SVC_PASSWORD));
	svc_assert(harness_smtp_cmd(&smtp, "EHLO test") == 250 &&
	    harness_smtp_cmd(&smtp, "AUTH PLAIN %s", plain) == 235 &&
	    harness_smtp_cmd(&smtp, "MAIL FROM:<%s>", SVC_SENDER) == 250 &&
	    harness_smtp_cmd(&smtp, "RCPT TO:<%s>", SVC_RCPT) == 250 &&
	    harness_smtp_cmd(&smtp, "DATA") == 354, "open session: %d %s",
	    smtp.code, smtp.reply);
	free(plain);

	svc_fmt(text, sizeof(text), "relay = 127.0.0.1:%d\n"
	    "bogus-key = 1\n", hh.port);
	svc_write(conf, text);
	svc_assert(kill(d->pid, SIGHUP) == 0, "kill");
	svc_wait_log(d, "reload failed", 1);
	svc_fmt(line, sizeof(line), "%s:2: bogus-key: unknown key", conf);
	svc_assert(harness_grep(d->log, line) == 1, "no \"%s\"", line);

	svc_fmt(text, sizeof(text), "relay = 127.0.0.1:%d\nretry-min = 1h\n"
	    "retry-max = 2h\nrelay-timeout = 5\n", hh.port);
	svc_write(conf, text);
	svc_assert(kill(d->pid, SIGHUP) == 0, "kill");
	svc_wait_log(d, "reloaded", 1);

	svc_assert(harness_smtp_data(&smtp, body, sizeof(body) - 1) == 250 &&
	    harness_queue_id(smtp.reply, idb, sizeof(idb)) == 0,
	    "the open session lost its message: %d %s", smtp.code,
	    smtp.reply);
	harness_smtp_cmd(&smtp, "QUIT");
	harness_smtp_close(&smtp);
	/* The new relay took the new message; the old one still waits. */
	svc_wait_log(d, svc_idmsg(line, sizeof(line), idb, "delivered"), 1);
	svc_assert(harness_grep(events, "delivered ") == 1, "stand-in "
	    "deliveries: %d", harness_grep(events, "delivered "));
	svc_assert(access(svc_entry(text, sizeof(text), "queue", ida, NULL),
	    F_OK) == 0, "%s left the queue before SIGUSR1", ida);

	svc_assert(kill(d->pid, SIGUSR1) == 0, "kill");
	svc_wait_log(d, svc_idmsg(line, sizeof(line), ida, "delivered"), 1);
	svc_assert(harness_wait_grep(events, "delivered ", 2,
	    harness_scale(HARNESS_WAIT)) == 0, "the stand-in did not get %s",
	    ida);
	svc_assert(harness_wait_gone(svc_entry(text, sizeof(text), "queue",
	    ida, NULL), harness_scale(HARNESS_WAIT)) == 0, "%s still queued",
	    ida);
}
END_TEST

/* relayq --flush as a user relayqd takes no ETRN from: 530, status 77. */
static void
svc_flush_nobody(void)
{
	struct harness_spawn_opts	 o;
	struct svc_argv			 a;
	char				 bin[PATH_MAX], *out;
	int				 status;

	svc_public_relayq(bin, sizeof(bin));
	memset(&o, 0, sizeof(o));
	o.listen_fd = -1;
	o.uid = SVC_NOBODY;
	memset(&a, 0, sizeof(a));
	svc_args(&a, bin, "--flush", "--socket", hh.socket,
	    (const char *)NULL);
	out = svc_run("relayq", &a, &o, &status);
	svc_assert(status == 77 && strstr(out, "S: 530 5.7.0") != NULL &&
	    strstr(out, "only from root or its own user") != NULL,
	    "flush as nobody: %d %s", status, out);
	free(out);
}

/* relayq --flush says ETRN: a message deferred for an hour goes now. */
START_TEST(test_service_flush)
{
	struct harness_proc	*d, *s;
	struct svc_argv		 a;
	const char		*extra[3];
	char			 relay[32], portstr[16], id[64], line[128];
	char			 path[PATH_MAX], *out;
	int			 port = harness_free_port(), status;

	svc_fmt(relay, sizeof(relay), "127.0.0.1:%d", port);
	svc_fmt(portstr, sizeof(portstr), "%d", port);
	svc_daemon_args(&a, "--relay", relay, "--retry-min", "1h",
	    "--retry-max", "2h", "--relay-timeout", "5", (const char *)NULL);
	d = harness_spawn_with(&hh, "relayqd", a.v, NULL);
	svc_args_free(&a);
	svc_assert(d != NULL && harness_wait_socket(hh.socket, d,
	    harness_scale(HARNESS_WAIT)) == 0, "relayqd did not start");
	svc_submit(id, sizeof(id));
	svc_wait_log(d, svc_idmsg(line, sizeof(line), id, "deferred"), 1);

	extra[0] = "--port";
	extra[1] = portstr;
	extra[2] = NULL;
	s = harness_standin(&hh, NULL, extra);
	svc_assert(s != NULL, "stand-in did not start on %d", port);
	out = svc_relayq(&status, "--flush", "--socket", hh.socket,
	    (const char *)NULL);
	svc_assert(status == 0 && strstr(out, "C: ETRN\n") != NULL &&
	    strstr(out, "S: 250 ") != NULL, "flush: %d %s", status, out);
	free(out);
	svc_wait_log(d, svc_idmsg(line, sizeof(line), id, "delivered"), 1);
	svc_assert(harness_wait_gone(svc_entry(path, sizeof(path), "queue",
	    id, NULL), harness_scale(HARNESS_WAIT)) == 0, "%s still queued",
	    id);
	if (geteuid() == 0)
		svc_flush_nobody();

	/* Without a daemon: a plain explanation and EX_UNAVAILABLE. */
	svc_assert(harness_stop(d, SIGTERM, harness_scale(HARNESS_WAIT)) !=
	    -1, "stop");
	out = svc_relayq(&status, "--flush", "--socket", hh.socket,
	    (const char *)NULL);
	svc_assert(status == 69 && strstr(out, "is relayqd running?") != NULL,
	    "flush without daemon: %d %s", status, out);
	free(out);
}
END_TEST

/* Count the lines of text. */
static int
svc_lines(const char *text)
{
	int	 n = 0;

	for (; *text != '\0'; text++)
		n += *text == '\n';
	return n;
}

/* A copy of relayq that any user can run (the test dir becomes 0711). */
static void
svc_public_relayq(char *bin, size_t binlen)
{
	char	 src[PATH_MAX], *exe;
	size_t	 len;
	int	 fd;

	svc_fmt(src, sizeof(src), "%s/relayq", hh.build);
	svc_fmt(bin, binlen, "%s/pub", hh.dir);
	svc_assert(chmod(hh.dir, 0711) == 0 && mkdir(bin, 0755) == 0,
	    "pub dir");
	svc_fmt(bin, binlen, "%s/pub/relayq", hh.dir);
	exe = harness_read_file(src, &len);
	fd = open(bin, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	svc_assert(exe != NULL && fd != -1 && write_all(fd, exe, len) == 0 &&
	    close(fd) == 0, "copy relayq");
	free(exe);
}

/*
 * relayq --list as a user who cannot read the queue: run it as that
 * user (root) or make the queue unreadable (not root).
 */
static void
svc_list_unreadable(void)
{
	struct harness_spawn_opts	 o;
	struct svc_argv			 a;
	char				 bin[PATH_MAX];
	char				*out;
	int				 status;

	memset(&o, 0, sizeof(o));
	o.listen_fd = -1;
	svc_public_relayq(bin, sizeof(bin));
	if (geteuid() == 0)
		o.uid = SVC_NOBODY;
	else
		svc_assert(chmod(hh.queue, 0) == 0, "chmod");
	memset(&a, 0, sizeof(a));
	svc_args(&a, bin, "--list", "--queue-dir", hh.queue,
	    (const char *)NULL);
	out = svc_run("relayq", &a, &o, &status);
	if (geteuid() != 0)
		chmod(hh.queue, 0700);
	svc_assert(status == 77 && strstr(out, "Permission denied") != NULL &&
	    strstr(out, "run this as root or as that user") != NULL,
	    "unreadable queue: %d %s", status, out);
	free(out);
}

/*
 * relayq --list and --json show a deferred entry in queue/ and a failed
 * one in failed/; --delete removes each while the daemon runs.
 */
START_TEST(test_service_queue_tools)
{
	static const char *const extra[] = { "--tempfail", "1",
					    "--reject-rcpt", NULL };
	struct harness_proc	*d;
	struct svc_argv		 a;
	char			 m1[64], m2[64], line[256], path[PATH_MAX];
	char			*out;
	int			 status;

	svc_assert(harness_standin(&hh, NULL, extra) != NULL, "stand-in");
	svc_fmt(line, sizeof(line), "127.0.0.1:%d", hh.port);
	svc_daemon_args(&a, "--relay", line, "--retry-min", "1h",
	    "--retry-max", "2h", (const char *)NULL);
	d = harness_spawn_with(&hh, "relayqd", a.v, NULL);
	svc_args_free(&a);
	svc_assert(d != NULL && harness_wait_socket(hh.socket, d,
	    harness_scale(HARNESS_WAIT)) == 0, "relayqd did not start");
	svc_submit(m1, sizeof(m1));
	svc_wait_log(d, svc_idmsg(line, sizeof(line), m1, "deferred"), 1);
	svc_submit(m2, sizeof(m2));
	svc_assert(harness_wait_file(svc_entry(path, sizeof(path), "failed",
	    m2, "envelope"), d, harness_scale(HARNESS_WAIT)) == 0,
	    "%s never failed", m2);

	out = svc_relayq(&status, "-q", "--queue-dir", hh.queue,
	    (const char *)NULL);
	svc_assert(status == 0, "--list: %d %s", status, out);
	svc_fmt(line, sizeof(line), "queue/: 1 entry\n%s  33", m1);
	svc_assert(strstr(out, line) != NULL, "no \"%s\" in %s", line, out);
	svc_fmt(line, sizeof(line), "failed/: 1 entry\n%s  33", m2);
	svc_assert(strstr(out, line) != NULL, "no \"%s\" in %s", line, out);
	svc_assert(strstr(out, "attempts 1  next: in ") != NULL &&
	    strstr(out, "  failed\n") != NULL &&
	    harness_memcount(out, strlen(out), "    from: " SVC_SENDER
	    "\n    to: " SVC_RCPT "\n") == 2 &&
	    strstr(out, "    last reply: MAIL FROM:<" SVC_SENDER "> SIZE=33")
	    != NULL && strstr(out, ": 421 4.7.0 Try again later") != NULL &&
	    strstr(out, "    reason: RCPT TO:<" SVC_RCPT ">: 550") != NULL,
	    "--list: %s", out);
	free(out);

	out = svc_relayq(&status, "--json", "--queue-dir", hh.queue,
	    (const char *)NULL);
	svc_assert(status == 0 && svc_lines(out) == 2, "--json: %s", out);
	svc_fmt(line, sizeof(line), "{\"queue\":\"queue\",\"id\":\"%s\","
	    "\"size\":33", m1);
	svc_assert(strncmp(out, line, strlen(line)) == 0, "no %s in %s", line,
	    out);
	svc_fmt(line, sizeof(line), "\n{\"queue\":\"failed\",\"id\":\"%s\","
	    "\"size\":33", m2);
	svc_assert(strstr(out, line) != NULL &&
	    harness_memcount(out, strlen(out), "\"sender\":\"" SVC_SENDER
	    "\",\"recipients\":[\"" SVC_RCPT "\"]") == 2 &&
	    harness_memcount(out, strlen(out), "\"attempts\":1,") >= 1 &&
	    strstr(out, "\"last_reply\":\"MAIL FROM:<" SVC_SENDER ">") !=
	    NULL, "--json: %s",
	    out);
	free(out);

	out = svc_relayq(&status, "--delete", m2, "--queue-dir", hh.queue,
	    (const char *)NULL);
	svc_assert(status == 0 && strstr(out, "deleted from failed/") != NULL &&
	    access(svc_entry(path, sizeof(path), "failed", m2, NULL), F_OK) ==
	    -1, "--delete %s: %d %s", m2, status, out);
	free(out);
	out = svc_relayq(&status, "--delete", m1, "--queue-dir", hh.queue,
	    (const char *)NULL);
	svc_assert(status == 0 && strstr(out, "deleted from queue/") != NULL &&
	    access(svc_entry(path, sizeof(path), "queue", m1, NULL), F_OK) ==
	    -1, "--delete %s: %d %s", m1, status, out);
	free(out);
	out = svc_relayq(&status, "--delete", m1, "--queue-dir", hh.queue,
	    (const char *)NULL);
	svc_assert(status == 66 && strstr(out, "no entry") != NULL,
	    "second --delete: %d %s", status, out);
	free(out);
	out = svc_relayq(&status, "--delete", "../queue", "--queue-dir",
	    hh.queue, (const char *)NULL);
	svc_assert(status == 64, "--delete ../queue: %d %s", status, out);
	free(out);
	svc_list_unreadable();
}
END_TEST

/* A TCP listener on 127.0.0.1 that never says a word; its port in *port. */
static int
svc_silent_relay(int *port)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	int			 fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	svc_assert(fd != -1 && bind(fd, (struct sockaddr *)&sin,
	    sizeof(sin)) == 0 && listen(fd, 4) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0,
	    "silent relay: %s", strerror(errno));
	*port = ntohs(sin.sin_port);
	return fd;
}

/*
 * --delete of an entry being relayed: the lock is busy, so relayq leaves
 * DELETE and says so; when the attempt ends, relayqd removes the entry.
 */
START_TEST(test_service_delete_relaying)
{
	struct pollfd		 pfd;
	struct harness_proc	*d;
	struct svc_argv		 a;
	char			 id[64], line[128], path[PATH_MAX], *out;
	int			 lfd, cfd, port, status;

	lfd = svc_silent_relay(&port);
	svc_fmt(line, sizeof(line), "127.0.0.1:%d", port);
	svc_daemon_args(&a, "--relay", line, "--retry-min", "1h",
	    "--retry-max", "2h", "--relay-timeout", "60", (const char *)NULL);
	d = harness_spawn_with(&hh, "relayqd", a.v, NULL);
	svc_args_free(&a);
	svc_assert(d != NULL && harness_wait_socket(hh.socket, d,
	    harness_scale(HARNESS_WAIT)) == 0, "relayqd did not start");
	svc_submit(id, sizeof(id));
	pfd.fd = lfd;
	pfd.events = POLLIN;
	svc_assert(poll(&pfd, 1, (int)(harness_scale(HARNESS_WAIT) * 1000)) ==
	    1 && (cfd = accept(lfd, NULL, NULL)) != -1, "relayqd never "
	    "connected to the relay");
	svc_wait_log(d, svc_idmsg(line, sizeof(line), id, "attempt"), 1);

	out = svc_relayq(&status, "--list", "--queue-dir", hh.queue,
	    (const char *)NULL);
	svc_assert(status == 0 && strstr(out, "  relaying now\n") != NULL,
	    "--list while relaying: %s", out);
	free(out);
	out = svc_relayq(&status, "--delete", id, "--queue-dir", hh.queue,
	    (const char *)NULL);
	svc_fmt(line, sizeof(line), "%s is being relayed; it will be removed "
	    "when that attempt ends\n", id);
	svc_assert(status == 0 && strcmp(out, line) == 0, "--delete: %d %s",
	    status, out);
	free(out);
	svc_assert(access(svc_entry(path, sizeof(path), "queue", id,
	    "DELETE"), F_OK) == 0 && access(svc_entry(path, sizeof(path),
	    "queue", id, "message.eml"), F_OK) == 0,
	    "not marked, or removed under the relay");
	out = svc_relayq(&status, "--json", "--queue-dir", hh.queue,
	    (const char *)NULL);
	svc_assert(strstr(out, "\"relaying\":true,\"delete_requested\":true")
	    != NULL, "--json: %s", out);
	free(out);

	close(cfd);		/* the attempt ends: connection lost */
	svc_wait_log(d, svc_idmsg(line, sizeof(line), id,
	    "deleted by request"), 1);
	svc_assert(access(svc_entry(path, sizeof(path), "queue", id, NULL),
	    F_OK) == -1 && errno == ENOENT, "%s still in queue/", id);
	close(lfd);
}
END_TEST

/* relayqd --check-relay USER against the stand-in; the output. */
static char *
svc_check_relay(const char *input, const char *ca, int *status)
{
	struct harness_spawn_opts	 o;
	struct svc_argv			 a;
	char				 bin[PATH_MAX], relay[32];
	char				 cafile[PATH_MAX];

	svc_fmt(bin, sizeof(bin), "%s/relayqd", hh.build);
	svc_fmt(relay, sizeof(relay), "127.0.0.1:%d", hh.port);
	svc_fmt(cafile, sizeof(cafile), "%s/%s.pem", hh.certs, ca);
	memset(&a, 0, sizeof(a));
	svc_args(&a, bin, "-c", "/dev/null", "--relay", relay, "--ca-file",
	    cafile, "--check-relay", SVC_SENDER, (const char *)NULL);
	memset(&o, 0, sizeof(o));
	o.listen_fd = -1;
	o.input = input;
	return svc_run("check-relay", &a, &o, status);
}

/*
 * --check-relay: STARTTLS, verification, AUTH and QUIT with the dialogue
 * shown, the password masked and never sent anywhere else; 0 for good
 * credentials, 77 for bad ones, 75 for an unverifiable certificate (and
 * then no AUTH at all), 64 without a password.
 */
START_TEST(test_service_check_relay)
{
	char		 events[PATH_MAX], *out, *b64;
	int		 status;

	svc_assert(harness_standin(&hh, NULL, NULL) != NULL, "stand-in");
	svc_fmt(events, sizeof(events), "%s/events.log", hh.mail);
	out = svc_check_relay(SVC_PASSWORD "\n", "ca", &status);
	b64 = harness_b64_encode("\0" SVC_SENDER "\0" SVC_PASSWORD,
	    sizeof(SVC_SENDER) + sizeof(SVC_PASSWORD));
	svc_assert(status == 0 && strstr(out, "C: STARTTLS\nS: 220 ") !=
	    NULL && strstr(out, ", certificate verified for 127.0.0.1\n") !=
	    NULL && strstr(out, "C: AUTH PLAIN ********\nS: 235 ") != NULL &&
	    strstr(out, "C: QUIT\nS: 221 ") != NULL &&
	    strstr(out, "authentication OK") != NULL, "good: %d %s", status,
	    out);
	svc_assert(strstr(out, SVC_PASSWORD) == NULL && strstr(out, b64) ==
	    NULL, "the password leaked: %s", out);
	free(b64);
	free(out);
	svc_assert(harness_grep(events, "auth 1 user=" SVC_SENDER
	    " tls=yes result=235") == 1 && harness_grep(events, "mail ") == 0,
	    "stand-in events for the good check");

	out = svc_check_relay("wrong\n", "ca", &status);
	svc_assert(status == 77 && strstr(out, "S: 535") != NULL &&
	    strstr(out, "check failed: AUTH PLAIN: 535") != NULL,
	    "bad: %d %s", status, out);
	free(out);

	out = svc_check_relay(SVC_PASSWORD "\n", "rogue-ca", &status);
	svc_assert(status == 75 && strstr(out, "AUTH") == NULL &&
	    strstr(out, "certificate verify failed") != NULL,
	    "untrusted: %d %s", status, out);
	free(out);
	svc_assert(harness_grep(events, "auth ") == 2, "AUTH reached the "
	    "stand-in over an unverified channel");

	out = svc_check_relay(NULL, "ca", &status);
	svc_assert(status == 64 && strstr(out, "no password") != NULL,
	    "no password: %d %s", status, out);
	free(out);
}
END_TEST

/* relayqd -n names the file, line and key of an error, like nginx -t. */
START_TEST(test_service_check_config)
{
	static const struct {
		const char	*text;
		const char	*error;	/* after "<file>:"; NULL: OK */
	} cases[] = {
		{ "relay = smtp.gmail.com:465\ntls = implicit\n", NULL },
		{ "# c\n\nretry-min = 1x\n", "3: retry-min: \"1x\": expected a "
		    "duration" },
		{ "frobnicate = 1\n", "1: frobnicate: unknown key" },
		{ "tls = implicit\ntls = none\n", "2: tls: \"none\": expected "
		    "starttls or implicit" },
	};
	struct svc_argv	 a;
	char		 conf[PATH_MAX], bin[PATH_MAX], want[256], *out;
	size_t		 i;
	int		 status;

	svc_fmt(conf, sizeof(conf), "%s/relayqd.conf", hh.dir);
	svc_fmt(bin, sizeof(bin), "%s/relayqd", hh.build);
	for (i = 0; i < nitems(cases); i++) {
		svc_write(conf, cases[i].text);
		memset(&a, 0, sizeof(a));
		svc_args(&a, bin, "-n", "-c", conf, (const char *)NULL);
		out = svc_run("relayqd-n", &a, NULL, &status);
		if (cases[i].error == NULL) {
			svc_assert(status == 0 && strcmp(out,
			    "relayqd: configuration OK\n") == 0,
			    "case %zu: %d %s", i, status, out);
		} else {
			svc_fmt(want, sizeof(want), "relayqd: %s:%s", conf,
			    cases[i].error);
			svc_assert(status == 78 && strncmp(out, want,
			    strlen(want)) == 0, "case %zu: %d %s (want %s)",
			    i, status, out, want);
		}
		free(out);
	}
}
END_TEST

/* One TCase per test: each gets its own directory and timeout. */
static TCase *
svc_tcase(const char *name, const TTest *t)
{
	TCase	*tc = tcase_create(name);

	tcase_add_checked_fixture(tc, svc_setup, svc_teardown);
	tcase_set_timeout(tc, SVC_TIMEOUT);
	tcase_add_test(tc, t);
	return tc;
}

Suite *
service_suite(void)
{
	Suite	*s = suite_create("service");

	suite_add_tcase(s, svc_tcase("socket_activation",
	    test_service_socket_activation));
	suite_add_tcase(s, svc_tcase("notify", test_service_notify));
	suite_add_tcase(s, svc_tcase("reload", test_service_reload));
	suite_add_tcase(s, svc_tcase("flush", test_service_flush));
	suite_add_tcase(s, svc_tcase("queue_tools",
	    test_service_queue_tools));
	suite_add_tcase(s, svc_tcase("delete_relaying",
	    test_service_delete_relaying));
	suite_add_tcase(s, svc_tcase("check_relay",
	    test_service_check_relay));
	suite_add_tcase(s, svc_tcase("check_config",
	    test_service_check_config));
	return s;
}
