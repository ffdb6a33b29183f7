/*
 * it_sendmail.c: relayq as the machine's sendmail, against the real
 * relayqd and the stand-in.  relayqd has a configured account (account
 * and password-file in its config file); the client runs through
 * symlinks named sendmail and mailq, with $RELAYQ_SOCKET and
 * $RELAYQ_CONFIG pointing at the test's daemon.  Each test runs in a
 * fresh directory (tests/harness.h).
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"
#include "util.h"

#define SM_TIMEOUT	60		/* per test, before the multiplier */
#define SM_ACCOUNT	"ops@gmail.com"
#define SM_PASS		"Acct-app-Pass-7x"
#define SM_PASS2	"Acct-new-Pass-9y"
#define SM_ARGS_MAX	16

Suite	*sendmail_suite(void);

static struct harness	 sh;		/* one per forked test */
static char		 sm_conf[PATH_MAX], sm_pwfile[PATH_MAX];

/* Assert, printing every process log first, and clean up on failure. */
#define sm_assert(cond, ...)						\
	harness_check(cond, harness_dump(&sh), harness_fini(&sh),	\
	    __VA_ARGS__)

/* Format into buf; it must fit. */
#define sm_fmt(buf, len, ...)						\
	sm_assert(harness_fmt((buf), (len), __VA_ARGS__) == 0,		\
	    "does not fit: %s", #buf)

/* Write text to path with mode. */
static void
sm_write(const char *path, const char *text, mode_t mode)
{
	int	 fd;

	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	sm_assert(fd != -1 && write_all(fd, text, strlen(text)) == 0 &&
	    fchmod(fd, mode) == 0 && close(fd) == 0, "writing %s: %s", path,
	    strerror(errno));
}

/*
 * A fresh directory with relayqd.conf (the account), the password file
 * (0600) and the sendmail and mailq symlinks to build/relayq.
 */
static void
sm_setup(void)
{
	char	 text[2 * PATH_MAX + 128], bin[PATH_MAX], link[PATH_MAX];

	if (harness_init(&sh) == -1) {
		harness_fini(&sh);
		ck_abort_msg("harness_init failed");
	}
	sm_fmt(sm_conf, sizeof(sm_conf), "%s/relayqd.conf", sh.dir);
	sm_fmt(sm_pwfile, sizeof(sm_pwfile), "%s/gmail-password", sh.dir);
	sm_fmt(text, sizeof(text), "account = " SM_ACCOUNT "\n"
	    "password-file = %s\nqueue-dir = %s\n", sm_pwfile, sh.queue);
	sm_write(sm_conf, text, 0644);
	sm_write(sm_pwfile, SM_PASS "\n", 0600);
	sm_fmt(bin, sizeof(bin), "%s/relayq", sh.build);
	sm_fmt(link, sizeof(link), "%s/sendmail", sh.dir);
	sm_assert(symlink(bin, link) == 0, "symlink: %s", strerror(errno));
	sm_fmt(link, sizeof(link), "%s/mailq", sh.dir);
	sm_assert(symlink(bin, link) == 0, "symlink: %s", strerror(errno));
}

/* Every process still running must exit 0 on SIGTERM; then clean up. */
static void
sm_teardown(void)
{
	char	 why[PATH_MAX + 128];

	sm_assert(harness_stop_all(&sh, why, sizeof(why)) == 0, "%s", why);
	harness_fini(&sh);
}

/* The stand-in (extra args may be NULL) and relayqd -c relayqd.conf. */
static struct harness_proc *
sm_start(const char *const *standin_extra)
{
	const char *const	 extra[] = { "-c", sm_conf, NULL };
	struct harness_proc	*d;

	sm_assert(harness_standin(&sh, NULL, standin_extra) != NULL,
	    "stand-in did not start");
	d = harness_relayqd(&sh, NULL, 0, extra);
	sm_assert(d != NULL, "relayqd did not start");
	return d;
}

/*
 * Run dir/<name> (a symlink to relayq) with the NULL-terminated args,
 * input on stdin, $RELAYQ_SOCKET and $RELAYQ_CONFIG set; its output into
 * *out (malloc'd) and its exit code returned.
 */
static int
sm_run(const char *name, const char *input, char **out, ...)
{
	struct harness_spawn_opts	 o;
	struct harness_proc		*p;
	char				 path[PATH_MAX], envsock[PATH_MAX + 16];
	char				 envconf[PATH_MAX + 16];
	const char			*env[3], *s;
	char				*argv[SM_ARGS_MAX + 2];
	size_t				 n = 0;
	va_list				 ap;

	sm_fmt(path, sizeof(path), "%s/%s", sh.dir, name);
	sm_fmt(envsock, sizeof(envsock), "RELAYQ_SOCKET=%s", sh.socket);
	sm_fmt(envconf, sizeof(envconf), "RELAYQ_CONFIG=%s", sm_conf);
	env[0] = envsock;
	env[1] = envconf;
	env[2] = NULL;
	argv[n++] = path;
	va_start(ap, out);
	while ((s = va_arg(ap, const char *)) != NULL && n < SM_ARGS_MAX)
		argv[n++] = (char *)(uintptr_t)s;
	va_end(ap);
	argv[n] = NULL;
	memset(&o, 0, sizeof(o));
	o.input = input;
	o.listen_fd = -1;
	o.env = env;
	p = harness_spawn_with(&sh, name, argv, &o);
	sm_assert(p != NULL, "cannot run %s", name);
	sm_assert(harness_wait_exit(p, harness_scale(HARNESS_WAIT)) != -1,
	    "%s did not finish", name);
	*out = harness_read_file(p->log, NULL);
	sm_assert(*out != NULL, "no log for %s", name);
	sm_assert(WIFEXITED(p->status), "%s died: 0x%x", name,
	    (unsigned)p->status);
	return WEXITSTATUS(p->status);
}

/* Wait for the stand-in's message n and return its .eml (malloc'd). */
static char *
sm_delivered(int n, char *meta, size_t metalen)
{
	char	 eml[PATH_MAX];
	char	*text;

	sm_fmt(meta, metalen, "%s/msg-%06d.meta", sh.mail, n);
	sm_fmt(eml, sizeof(eml), "%s/msg-%06d.eml", sh.mail, n);
	sm_assert(harness_wait_file(meta, NULL, harness_scale(HARNESS_WAIT))
	    == 0, "message %d never arrived at the stand-in", n);
	text = harness_read_file(eml, NULL);
	sm_assert(text != NULL, "%s: %s", eml, strerror(errno));
	return text;
}

/* The header part of a message (up to the empty line), in place. */
static char *
sm_header(char *msg)
{
	char	*end;

	if ((end = strstr(msg, "\r\n\r\n")) != NULL)
		end[2] = '\0';
	return msg;
}

/*
 * A cron-style run with -t: To, Cc and Bcc are the recipients, Bcc is
 * not in the delivered header but in the envelope (the stand-in's RCPTs),
 * Date, Message-ID and From (the account) are added, the relay
 * authenticated as the configured account, nothing printed.
 */
START_TEST(test_sendmail_t)
{
	static const char	 in[] = "To: bob@example.net\n"
				    "Cc: Carol <carol@example.org>\n"
				    "Bcc: dave@example.com\n"
				    "Subject: cron output\n\nall good\n";
	char			 meta[PATH_MAX], *out, *msg;
	int			 rc;

	sm_start(NULL);
	rc = sm_run("sendmail", in, &out, "-t", (const char *)NULL);
	sm_assert(rc == 0, "sendmail -t exited %d: %s", rc, out);
	sm_assert(out[0] == '\0', "sendmail printed: %s", out);
	free(out);
	msg = sm_delivered(1, meta, sizeof(meta));
	sm_assert(harness_grep(meta, "rcpt: bob@example.net") == 1 &&
	    harness_grep(meta, "rcpt: carol@example.org") == 1 &&
	    harness_grep(meta, "rcpt: dave@example.com") == 1,
	    "recipients wrong in %s", meta);
	sm_assert(harness_grep(meta, "user: " SM_ACCOUNT) == 1,
	    "not authenticated as the account");
	sm_assert(harness_grep(meta, "from: " SM_ACCOUNT) == 1,
	    "envelope sender is not the account");
	sm_assert(harness_memcount(msg, strlen(msg), "dave@") == 0 &&
	    harness_memcount(msg, strlen(msg), "Bcc") == 0,
	    "Bcc delivered: %s", msg);
	sm_header(msg);
	sm_assert(strstr(msg, "\r\nFrom: " SM_ACCOUNT "\r\n") != NULL &&
	    strstr(msg, "\r\nDate: ") != NULL &&
	    strstr(msg, "\r\nMessage-ID: <") != NULL &&
	    strncmp(msg, "To: bob@example.net\r\nCc: Carol <carol@example.org>"
	    "\r\nSubject: cron output\r\n", 71) == 0, "header: %s", msg);
	free(msg);
}
END_TEST

/*
 * -f and -F: the envelope sender and From's display name; a 7-bit
 * message is relayed without BODY=.
 */
START_TEST(test_sendmail_f)
{
	struct harness_proc	*d;
	char			 meta[PATH_MAX], *out, *msg;
	int			 rc;

	d = sm_start(NULL);
	rc = sm_run("sendmail", "Subject: f\n\nhi\n", &out, "-f",
	    "cron@host.example", "-F", "Cron Daemon", "bob@example.net",
	    (const char *)NULL);
	sm_assert(rc == 0, "exited %d: %s", rc, out);
	free(out);
	msg = sm_delivered(1, meta, sizeof(meta));
	sm_assert(harness_grep(meta, "from: cron@host.example") == 1 &&
	    harness_grep(meta, "rcpt: bob@example.net") == 1 &&
	    harness_grep(meta, "user: " SM_ACCOUNT) == 1, "meta wrong");
	sm_assert(strstr(msg, "\r\nFrom: \"Cron Daemon\" <cron@host.example>"
	    "\r\n") != NULL, "From: %s", msg);
	free(msg);
	/* A 7-bit message goes without BODY=. */
	sm_assert(harness_grep_lines(d->log, "relay C: MAIL FROM:<cron@"
	    "host.example> SIZE=", NULL) == 1 &&
	    harness_grep(d->log, "BODY=") == 0, "relay MAIL line wrong");
}
END_TEST

/*
 * A line "." ends the input without -i; with -i (or -oi) it is text and
 * arrives as it was (dot-stuffed on both hops, unstuffed at the end).
 */
START_TEST(test_sendmail_dot)
{
	static const char	 in[] = "Subject: dots\n\nline1\n.\nline3\n"
				    "..two\n";
	char			 meta[PATH_MAX], *out, *msg, *body;
	int			 rc;

	sm_start(NULL);
	rc = sm_run("sendmail", in, &out, "-i", "bob@example.net",
	    (const char *)NULL);
	sm_assert(rc == 0, "-i exited %d: %s", rc, out);
	free(out);
	msg = sm_delivered(1, meta, sizeof(meta));
	body = strstr(msg, "\r\n\r\n");
	sm_assert(body != NULL && strcmp(body, "\r\n\r\nline1\r\n.\r\n"
	    "line3\r\n..two\r\n") == 0, "-i body: %s", msg);
	free(msg);

	rc = sm_run("sendmail", in, &out, "-oi", "bob@example.net",
	    (const char *)NULL);
	sm_assert(rc == 0, "-oi exited %d: %s", rc, out);
	free(out);
	msg = sm_delivered(2, meta, sizeof(meta));
	sm_assert(strstr(msg, "\r\nline3\r\n") != NULL, "-oi: %s", msg);
	free(msg);

	rc = sm_run("sendmail", in, &out, "bob@example.net",
	    (const char *)NULL);
	sm_assert(rc == 0, "exited %d: %s", rc, out);
	free(out);
	msg = sm_delivered(3, meta, sizeof(meta));
	body = strstr(msg, "\r\n\r\n");
	sm_assert(body != NULL && strcmp(body, "\r\n\r\nline1\r\n") == 0,
	    "input did not end at the dot: %s", msg);
	free(msg);
}
END_TEST

/*
 * 8-bit text arrives byte for byte, declared BODY=8BITMIME to relayqd
 * and by relayqd to the stand-in (both offer it); -v shows the dialogue
 * on stderr.  Bare LF became
 * CRLF, and a 1500-octet line was split as relayq(1) says.
 */
START_TEST(test_sendmail_8bit)
{
	struct harness_proc	*d;
	char			 in[2200], meta[PATH_MAX], *out, *msg, *body;
	int			 rc;
	size_t			 n;

	sm_fmt(in, sizeof(in), "Subject: 8bit\n\ncaf\xc3\xa9 "
	    "\xc3\xbc\xe2\x82\xac\n");
	n = strlen(in);
	memset(in + n, 'x', 1500);
	n += 1500;
	in[n++] = '\n';
	in[n] = '\0';
	d = sm_start(NULL);
	rc = sm_run("sendmail", in, &out, "-v", "-oem", "-oee",
	    "bob@example.net", (const char *)NULL);
	sm_assert(rc == 0, "exited %d: %s", rc, out);
	sm_assert(strstr(out, " BODY=8BITMIME") != NULL &&
	    strstr(out, "C: MAIL FROM:<" SM_ACCOUNT ">") != NULL &&
	    strstr(out, "relayq: queued as ") != NULL &&
	    strstr(out, "were split") != NULL, "-v output: %s", out);
	free(out);
	msg = sm_delivered(1, meta, sizeof(meta));
	body = strstr(msg, "\r\n\r\n");
	sm_assert(body != NULL && strncmp(body, "\r\n\r\ncaf\xc3\xa9 \xc3\xbc"
	    "\xe2\x82\xac\r\n", 17) == 0, "8-bit body: %s", msg);
	body += 17;
	sm_assert(strspn(body, "x") == 998 && strncmp(body + 998, "\r\n", 2)
	    == 0 && strspn(body + 1000, "x") == 502 &&
	    strcmp(body + 1502, "\r\n") == 0, "long line: %s", body);
	free(msg);
	/* The relay passed BODY=8BITMIME on to the stand-in (it offers it). */
	sm_assert(harness_grep_lines(d->log, "relay C: MAIL FROM:<" SM_ACCOUNT
	    "> SIZE=", " BODY=8BITMIME") == 1, "relay MAIL without BODY=");
}
END_TEST

/* Other options are accepted and ignored, with a note on stderr. */
START_TEST(test_sendmail_ignored_options)
{
	char	 meta[PATH_MAX], *out, *msg;
	int	 rc;

	sm_start(NULL);
	rc = sm_run("sendmail", "Subject: opts\n\nhi\n", &out, "-B8BITMIME",
	    "-N", "never", "-R", "hdrs", "-odb", "-oem", "bob@example.net",
	    (const char *)NULL);
	sm_assert(rc == 0, "exited %d: %s", rc, out);
	sm_assert(strstr(out, "relayq: ignoring -B 8BITMIME") != NULL &&
	    strstr(out, "relayq: ignoring -N never") != NULL &&
	    strstr(out, "relayq: ignoring -R hdrs") != NULL &&
	    strstr(out, "relayq: ignoring -odb") != NULL &&
	    strstr(out, "-oem") == NULL, "notes: %s", out);
	free(out);
	msg = sm_delivered(1, meta, sizeof(meta));
	free(msg);
	rc = sm_run("sendmail", "", &out, "-bi", (const char *)NULL);
	sm_assert(rc == 64 && strstr(out, "-bi is not supported") != NULL,
	    "-bi: %d %s", rc, out);
	free(out);
	rc = sm_run("sendmail", "Subject: x\n\nhi\n", &out, (const char *)NULL);
	sm_assert(rc == 64 && strstr(out, "no recipients") != NULL,
	    "no recipients: %d %s", rc, out);
	free(out);
}
END_TEST

/* -bs: an SMTP session as swaks writes it, relayed to relayqd. */
START_TEST(test_sendmail_bs)
{
	static const char	 in[] = "EHLO client.example\r\n"
				    "MAIL FROM:<swaks@host.example>\r\n"
				    "RCPT TO:<bob@example.net>\r\n"
				    "DATA\r\n"
				    "Subject: via -bs\r\n\r\nhello\n"
				    ".\r\n"
				    "QUIT\r\n";
	char			 meta[PATH_MAX], *out, *msg;
	int			 rc;

	sm_start(NULL);
	rc = sm_run("sendmail", in, &out, "-bs", (const char *)NULL);
	sm_assert(rc == 0, "exited %d: %s", rc, out);
	sm_assert(strncmp(out, "220 ", 4) == 0 &&
	    strstr(out, "\r\n354 ") != NULL &&
	    strstr(out, "\r\n250 2.0.0 Ok: queued as ") != NULL &&
	    strstr(out, "\r\n221 ") != NULL, "-bs output: %s", out);
	free(out);
	msg = sm_delivered(1, meta, sizeof(meta));
	sm_assert(harness_grep(meta, "from: swaks@host.example") == 1 &&
	    harness_grep(meta, "user: " SM_ACCOUNT) == 1, "meta wrong");
	sm_assert(strcmp(msg, "Subject: via -bs\r\n\r\nhello\r\n") == 0,
	    "-bs message: %s", msg);
	free(msg);
}
END_TEST

/*
 * With the relay down a message waits: mailq (and -bp) list it.  Then
 * the password file changes and SIGHUP re-reads it: the queued message
 * goes out with the new password (the stand-in takes only that one), and
 * no password is in the queue or the log.
 */
START_TEST(test_sendmail_mailq_and_reload)
{
	const char *const	 extra[] = { "-c", sm_conf, NULL };
	char			 portarg[16], qdir[PATH_MAX], meta[PATH_MAX];
	char			*out, *msg;
	const char		*standin[] = { "--port", portarg, "--password",
				    SM_PASS2, NULL };
	struct harness_proc	*d;
	int			 rc, port;

	port = harness_free_port();
	sm_assert(port > 0, "no free port");
	sm_fmt(portarg, sizeof(portarg), "%d", port);
	d = harness_relayqd(&sh, NULL, port, extra);
	sm_assert(d != NULL, "relayqd did not start");
	rc = sm_run("sendmail", "Subject: waits\n\nhi\n", &out,
	    "bob@example.net", (const char *)NULL);
	sm_assert(rc == 0, "exited %d: %s", rc, out);
	free(out);
	sm_assert(harness_wait_grep(d->log, "deferred", 1,
	    harness_scale(HARNESS_WAIT)) == 0, "never deferred");
	rc = sm_run("mailq", NULL, &out, (const char *)NULL);
	sm_assert(rc == 0 && strstr(out, "bob@example.net") != NULL &&
	    strstr(out, SM_ACCOUNT) != NULL, "mailq: %d %s", rc, out);
	free(out);
	rc = sm_run("sendmail", NULL, &out, "-bp", (const char *)NULL);
	sm_assert(rc == 0 && strstr(out, "bob@example.net") != NULL,
	    "-bp: %d %s", rc, out);
	free(out);

	sm_write(sm_pwfile, SM_PASS2 "\n", 0600);
	sm_assert(kill(d->pid, SIGHUP) == 0, "SIGHUP");
	sm_assert(harness_wait_grep(d->log, "reloaded", 1,
	    harness_scale(HARNESS_WAIT)) == 0, "no reload");
	sm_assert(harness_standin(&sh, NULL, standin) != NULL,
	    "stand-in did not start");
	msg = sm_delivered(1, meta, sizeof(meta));
	sm_assert(harness_grep(meta, "user: " SM_ACCOUNT) == 1, "meta wrong");
	free(msg);
	sm_fmt(qdir, sizeof(qdir), "%s/queue", sh.queue);
	sm_assert(harness_wait_count(qdir, "", 0,
	    harness_scale(HARNESS_WAIT)) == 0, "still queued after delivery");
	sm_assert(harness_grep(d->log, SM_PASS) == 0 &&
	    harness_grep(d->log, SM_PASS2) == 0, "a password in the log");
}
END_TEST

/* The daemon stopped, no socket: exit 75 (EX_TEMPFAIL), said plainly. */
START_TEST(test_sendmail_daemon_down)
{
	char	*out;
	int	 rc;

	rc = sm_run("sendmail", "Subject: x\n\nhi\n", &out, "bob@example.net",
	    (const char *)NULL);
	sm_assert(rc == 75, "exit %d: %s", rc, out);
	sm_assert(strstr(out, "relayq: cannot connect to relayqd at ") !=
	    NULL && strstr(out, "nothing was sent") != NULL, "said: %s", out);
	free(out);
	rc = sm_run("sendmail", "QUIT\r\n", &out, "-bs", (const char *)NULL);
	sm_assert(rc == 75 && strstr(out, "421 4.3.0 relayqd is not running\r\n")
	    != NULL, "-bs: %d %s", rc, out);
	free(out);
}
END_TEST

/* A password file others can read stops relayqd at start, saying why. */
START_TEST(test_sendmail_password_file_mode)
{
	char			 bin[PATH_MAX], *log;
	char			*argv[] = { bin, (char *)(uintptr_t)"-f",
				    (char *)(uintptr_t)"-c", sm_conf,
				    (char *)(uintptr_t)"--socket", sh.socket,
				    (char *)(uintptr_t)"--queue-dir", sh.queue,
				    NULL };
	struct harness_proc	*p;
	int			 status;

	sm_write(sm_pwfile, SM_PASS "\n", 0644);
	sm_fmt(bin, sizeof(bin), "%s/relayqd", sh.build);
	p = harness_spawn(&sh, "relayqd", argv);
	sm_assert(p != NULL, "spawn");
	status = harness_wait_exit(p, harness_scale(HARNESS_WAIT));
	sm_assert(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 78, "relayqd status 0x%x",
	    (unsigned)status);
	log = harness_read_file(p->log, NULL);
	sm_assert(log != NULL && strstr(log, "password-file ") != NULL &&
	    strstr(log, "mode 0644 lets others read or change it") != NULL,
	    "reason: %s", log != NULL ? log : "");
	sm_assert(strstr(log, SM_PASS) == NULL, "password in the log");
	free(log);
	sm_assert(access(sh.socket, F_OK) == -1, "a socket was made");
}
END_TEST

/*
 * Under systemd: a relative password-file is read from
 * $CREDENTIALS_DIRECTORY (LoadCredential=).  A reload with a password
 * file that others may read is refused and the running account kept.
 */
START_TEST(test_sendmail_credentials_directory)
{
	struct harness_spawn_opts	 o;
	struct harness_proc		*d;
	char				 bin[PATH_MAX], relay[64], ca[PATH_MAX];
	char				 creddir[PATH_MAX], cred[PATH_MAX];
	char				 env[PATH_MAX + 32], conf[PATH_MAX];
	char				 meta[PATH_MAX], *out, *msg;
	const char			*envv[] = { env, NULL };
	char				*argv[] = { bin, (char *)(uintptr_t)"-f",
					    (char *)(uintptr_t)"-v",
					    (char *)(uintptr_t)"-c", conf,
					    (char *)(uintptr_t)"--socket",
					    sh.socket,
					    (char *)(uintptr_t)"--queue-dir",
					    sh.queue,
					    (char *)(uintptr_t)"--relay", relay,
					    (char *)(uintptr_t)"--ca-file", ca,
					    NULL };
	int				 rc;

	sm_assert(harness_standin(&sh, NULL, NULL) != NULL, "stand-in");
	sm_fmt(creddir, sizeof(creddir), "%s/credentials", sh.dir);
	sm_assert(mkdir(creddir, 0700) == 0, "mkdir: %s", strerror(errno));
	sm_fmt(cred, sizeof(cred), "%s/gmail-password", creddir);
	sm_write(cred, SM_PASS "\n", 0400);
	sm_fmt(conf, sizeof(conf), "%s/relayqd-cred.conf", sh.dir);
	sm_write(conf, "account = " SM_ACCOUNT "\npassword-file = "
	    "gmail-password\n", 0644);
	sm_fmt(env, sizeof(env), "CREDENTIALS_DIRECTORY=%s", creddir);
	sm_fmt(bin, sizeof(bin), "%s/relayqd", sh.build);
	sm_fmt(relay, sizeof(relay), "127.0.0.1:%d", sh.port);
	sm_fmt(ca, sizeof(ca), "%s/ca.pem", sh.certs);
	memset(&o, 0, sizeof(o));
	o.listen_fd = -1;
	o.env = envv;
	d = harness_spawn_with(&sh, "relayqd", argv, &o);
	sm_assert(d != NULL && harness_wait_socket(sh.socket, d,
	    harness_scale(HARNESS_WAIT)) == 0, "relayqd did not start");
	rc = sm_run("sendmail", "Subject: cred\n\nhi\n", &out,
	    "bob@example.net", (const char *)NULL);
	sm_assert(rc == 0, "exited %d: %s", rc, out);
	free(out);
	msg = sm_delivered(1, meta, sizeof(meta));
	sm_assert(harness_grep(meta, "user: " SM_ACCOUNT) == 1, "meta wrong");
	free(msg);

	sm_assert(chmod(cred, 0644) == 0, "chmod");
	sm_assert(kill(d->pid, SIGHUP) == 0, "SIGHUP");
	sm_assert(harness_wait_grep(d->log, "reload failed, keeping the "
	    "running configuration: password-file ", 1,
	    harness_scale(HARNESS_WAIT)) == 0, "bad file not refused");
	sm_assert(harness_grep(d->log, "mode 0644 lets others read") == 1,
	    "no reason given");
	sm_assert(!harness_exited(d), "relayqd stopped");
	sm_assert(harness_grep(d->log, SM_PASS) == 0, "password in the log");
}
END_TEST

/* Without an account, mail without AUTH is 530 and sendmail says why. */
START_TEST(test_sendmail_no_account)
{
	char	*out;
	int	 rc;

	sm_write(sm_conf, "# no account\n", 0644);
	sm_start(NULL);
	rc = sm_run("sendmail", "Subject: x\n\nhi\n", &out, "-f",
	    "a@host.example", "bob@example.net", (const char *)NULL);
	sm_assert(rc == 77 && strstr(out, "530 5.7.0 Authentication "
	    "required") != NULL && strstr(out, "account and password-file")
	    != NULL, "exit %d: %s", rc, out);
	free(out);
}
END_TEST

/* relayq --message FILE sends the file (with AUTH) instead of the test. */
START_TEST(test_sendmail_message_file)
{
	static const char	 file_text[] = "From: alice@example.com\n"
				    "To: bob@example.net\nSubject: resend\n\n"
				    "as it was\n";
	char			 file[PATH_MAX], bin[PATH_MAX], meta[PATH_MAX];
	char			*argv[] = { bin, (char *)(uintptr_t)"--socket",
				    sh.socket, (char *)(uintptr_t)"--message",
				    file, (char *)(uintptr_t)"alice@example.com",
				    (char *)(uintptr_t)"-",
				    (char *)(uintptr_t)"bob@example.net", NULL };
	struct harness_proc	*p;
	char			*msg;

	sm_fmt(file, sizeof(file), "%s/resend.eml", sh.dir);
	sm_write(file, file_text, 0600);
	sm_fmt(bin, sizeof(bin), "%s/relayq", sh.build);
	sm_start(NULL);
	p = harness_spawn_input(&sh, "relayq", argv, "alice-pass\n");
	sm_assert(p != NULL, "spawn");
	sm_assert(harness_wait_exit(p, harness_scale(HARNESS_WAIT)) != -1 &&
	    WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0,
	    "relayq --message status 0x%x", (unsigned)p->status);
	msg = sm_delivered(1, meta, sizeof(meta));
	sm_assert(strcmp(msg, "From: alice@example.com\r\nTo: bob@example.net"
	    "\r\nSubject: resend\r\n\r\nas it was\r\n") == 0, "got: %s", msg);
	sm_assert(harness_grep(meta, "user: alice@example.com") == 1,
	    "not its own credentials");
	free(msg);
}
END_TEST

/* The sendmail interface and the configured account. */
Suite *
sendmail_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("sendmail");
	tc = tcase_create("sendmail");
	tcase_add_checked_fixture(tc, sm_setup, sm_teardown);
	tcase_set_timeout(tc, SM_TIMEOUT);
	tcase_add_test(tc, test_sendmail_t);
	tcase_add_test(tc, test_sendmail_f);
	tcase_add_test(tc, test_sendmail_dot);
	tcase_add_test(tc, test_sendmail_8bit);
	tcase_add_test(tc, test_sendmail_ignored_options);
	tcase_add_test(tc, test_sendmail_bs);
	tcase_add_test(tc, test_sendmail_mailq_and_reload);
	tcase_add_test(tc, test_sendmail_daemon_down);
	tcase_add_test(tc, test_sendmail_password_file_mode);
	tcase_add_test(tc, test_sendmail_credentials_directory);
	tcase_add_test(tc, test_sendmail_no_account);
	tcase_add_test(tc, test_sendmail_message_file);
	suite_add_tcase(s, tc);
	return s;
}
