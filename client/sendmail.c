/*
 * sendmail.c: relayq invoked as sendmail (or relayq --sendmail).  The
 * options are those of sendmail(8) that programs use; the others are
 * accepted and ignored with a note on standard error, as other sendmail
 * replacements do.  A message is read from standard input, prepared by
 * mailmsg.c and submitted without AUTH, so relayqd relays it as its
 * configured account.  -bs relays an SMTP session on standard input and
 * output to the daemon; -bp lists the queue and -q flushes it.  Nothing
 * is printed on success (cron mails any output), unless -v.
 */
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "mailaddr.h"
#include "mailmsg.h"
#include "queue_admin.h"
#include "sendmail.h"
#include "submit.h"
#include "util.h"

#define SENDMAIL_ERR_MAX	600
#define SENDMAIL_HOST_MAX	256

/* What the command line asks for. */
enum sendmail_mode {
	SENDMAIL_DELIVER,	/* -bm, the default */
	SENDMAIL_LIST,		/* -bp */
	SENDMAIL_SMTP,		/* -bs */
	SENDMAIL_FLUSH		/* -q */
};

struct sendmail_opts {
	enum sendmail_mode	 mode;
	bool			 extract;	/* -t */
	bool			 dot_ok;	/* -i, -oi: "." does not end */
	int			 verbose;	/* -v */
	const char		*sender;	/* -f, -r */
	const char		*fullname;	/* -F */
};

/* The short usage, on standard error. */
static void
sendmail_usage(void)
{
	(void)fprintf(stderr,
	    "usage: sendmail [-tiv] [-f sender] [-F name] [-o option] "
	    "[recipient ...]\n"
	    "       sendmail -bp | -bs | -q\n"
	    "See relayq(1), SENDMAIL MODE.\n");
}

/* -o: -oi is -i, -oem and -oee are accepted, the rest ignored. */
static void
sendmail_option_o(struct sendmail_opts *o, const char *arg)
{
	if (strcmp(arg, "i") == 0)
		o->dot_ok = true;
	else if (strcmp(arg, "em") != 0 && strcmp(arg, "ee") != 0)
		(void)fprintf(stderr, "relayq: ignoring -o%s (not supported)\n",
		    arg);
}

/* -b: -bm, -bp, -bs; 0, or -1 for a mode relayq does not have. */
static int
sendmail_option_b(struct sendmail_opts *o, const char *arg)
{
	if (strcmp(arg, "m") == 0)
		o->mode = SENDMAIL_DELIVER;
	else if (strcmp(arg, "p") == 0)
		o->mode = SENDMAIL_LIST;
	else if (strcmp(arg, "s") == 0)
		o->mode = SENDMAIL_SMTP;
	else {
		(void)fprintf(stderr, "relayq: -b%s is not supported (only "
		    "-bm, -bp and -bs)\n", arg);
		return -1;
	}
	return 0;
}

/* Parse the options; the index of the first recipient, or -1. */
static int
sendmail_options(int argc, char **argv, struct sendmail_opts *o)
{
	int	 ch;

	opterr = 0;
	optind = 1;
	while ((ch = getopt(argc, argv, ":B:b:F:f:iN:o:q::R:r:tv")) != -1) {
		switch (ch) {
		case 'B':
		case 'N':
		case 'R':
			(void)fprintf(stderr, "relayq: ignoring -%c %s (not "
			    "supported)\n", ch, optarg);
			break;
		case 'b':
			if (sendmail_option_b(o, optarg) == -1)
				return -1;
			break;
		case 'F':
			o->fullname = optarg;
			break;
		case 'f':
		case 'r':
			o->sender = optarg;
			break;
		case 'i':
			o->dot_ok = true;
			break;
		case 'o':
			sendmail_option_o(o, optarg);
			break;
		case 'q':
			if (optarg != NULL)
				(void)fprintf(stderr, "relayq: -q%s: relayqd "
				    "runs the queue itself; flushing it once\n",
				    optarg);
			o->mode = SENDMAIL_FLUSH;
			break;
		case 't':
			o->extract = true;
			break;
		case 'v':
			o->verbose++;
			break;
		case ':':
			(void)fprintf(stderr, "relayq: -%c needs a value\n",
			    optopt);
			return -1;
		default:
			(void)fprintf(stderr, "relayq: unknown option -%c\n",
			    optopt);
			return -1;
		}
	}
	return optind;
}

/*
 * The envelope sender into buf: -f without any <>, else the account,
 * else login@host.  0, or -1 after saying why.
 */
static int
sendmail_sender(const struct sendmail_opts *o, const char *account,
    char *buf, size_t len)
{
	struct passwd	*pw;
	char		 host[SENDMAIL_HOST_MAX];
	size_t		 n;

	if (o->sender != NULL) {
		n = strlen(o->sender);
		if (n >= 2 && o->sender[0] == '<' && o->sender[n - 1] == '>')
			(void)snprintf(buf, len, "%.*s", (int)(n - 2),
			    o->sender + 1);
		else
			(void)snprintf(buf, len, "%s", o->sender);
		if (buf[0] == '\0' || mailaddr_valid(buf))
			return 0;
		(void)fprintf(stderr, "relayq: invalid sender address: %s\n",
		    o->sender);
		return -1;
	}
	if (account != NULL && account[0] != '\0')
		return str_copy(buf, account, len);
	if ((pw = getpwuid(getuid())) == NULL ||
	    gethostname(host, sizeof(host)) == -1)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	(void)snprintf(buf, len, "%s@%s", pw != NULL ? pw->pw_name : "",
	    host);
	if (mailaddr_valid(buf))
		return 0;
	(void)fprintf(stderr, "relayq: no sender: give -f ADDRESS (no "
	    "account in relayqd's configuration, and %s is not an "
	    "address)\n", buf);
	return -1;
}

/* Add the recipients named on the command line (each may be a list). */
static int
sendmail_arg_rcpts(struct mailmsg *m, char **args, int n, const char *local)
{
	char	 err[SENDMAIL_ERR_MAX];
	int	 i;

	for (i = 0; i < n; i++) {
		if (mailmsg_add_list(m, args[i], local, err,
		    sizeof(err)) == -1) {
			(void)fprintf(stderr, "relayq: %s\n", err);
			return -1;
		}
	}
	return 0;
}

/* Connect, or say that the message was not sent and why. */
static int
sendmail_connect(const char *path, int *status)
{
	int	 fd;

	if ((fd = submit_connect(path)) != -1)
		return fd;
	(void)fprintf(stderr, "relayq: cannot connect to relayqd at %s: %s; "
	    "nothing was sent (start relayqd: systemctl start relayqd)\n",
	    path, strerror(errno));
	*status = errno == ENAMETOOLONG ? EX_CONFIG : EX_TEMPFAIL;
	return -1;
}

/* Submit a prepared message without AUTH. */
int
sendmail_submit(const struct sendmail_where *w, const char *sender,
    const char *const *rcpt, size_t nrcpt, const char *msg, size_t msglen,
    int verbose)
{
	struct submit_params	 p;
	struct submit_status	 st;
	enum submit_result	 result;
	int			 fd, status;

	if ((fd = sendmail_connect(w->socket, &status)) == -1)
		return status;
	memset(&p, 0, sizeof(p));
	p.sender = sender;
	p.rcpts = rcpt;
	p.nrcpt = nrcpt;
	p.msg = msg;
	p.msglen = msglen;
	p.timeout = SUBMIT_TIMEOUT;
	p.transcript = verbose ? stderr : NULL;
	result = submit_run(fd, &p, &st);
	(void)close(fd);
	if (result == SUBMIT_QUEUED) {
		if (verbose)
			(void)fprintf(stderr, "relayq: queued as %s\n",
			    st.id[0] != '\0' ? st.id : "(no ID given)");
		return EX_OK;
	}
	(void)fprintf(stderr, "relayq: not sent: %s\n", st.reason);
	if (strncmp(st.reason, "530", 3) == 0) {
		(void)fprintf(stderr, "relayq: relayqd has no account for "
		    "mail without a password: set account and password-file "
		    "in relayqd.conf(5)\n");
		return EX_NOPERM;
	}
	return submit_exit_status(result);
}

/*
 * Copy n bytes of standard input to the socket, each bare LF sent as
 * CRLF; *cr carries "the last byte was CR" across calls.
 */
static int
sendmail_smtp_up(int fd, const char *buf, size_t n, bool *cr)
{
	size_t	 i, start = 0;

	for (i = 0; i < n; i++) {
		if (buf[i] == '\n' && !*cr) {
			if (write_all(fd, buf + start, i - start) == -1 ||
			    write_all(fd, "\r\n", 2) == -1)
				return -1;
			start = i + 1;
		}
		*cr = buf[i] == '\r';
	}
	return write_all(fd, buf + start, n - start);
}

/*
 * -bs: relay SMTP between standard input/output and relayqd until the
 * daemon closes the connection (after QUIT) or the input ends.
 */
static int
sendmail_smtp(const char *path)
{
	struct pollfd	 pfd[2];
	char		 buf[8192];
	ssize_t		 n;
	bool		 cr = false, in_open = true;
	int		 fd, status;

	if ((fd = sendmail_connect(path, &status)) == -1) {
		(void)printf("421 4.3.0 relayqd is not running\r\n");
		return status;
	}
	pfd[0].fd = STDIN_FILENO;
	pfd[1].fd = fd;
	pfd[1].events = POLLIN;
	for (;;) {
		pfd[0].events = in_open ? POLLIN : 0;
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents != 0) {
			if ((n = read(fd, buf, sizeof(buf))) <= 0)
				break;
			if (write_all(STDOUT_FILENO, buf, (size_t)n) == -1)
				break;
		}
		if (in_open && pfd[0].revents != 0) {
			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n <= 0) {
				in_open = false;
				(void)shutdown(fd, SHUT_WR);
			} else if (sendmail_smtp_up(fd, buf, (size_t)n,
			    &cr) == -1)
				break;
		}
	}
	(void)close(fd);
	return EX_OK;
}

/* Read, prepare and submit the message on standard input. */
static int
sendmail_deliver(const struct sendmail_where *w,
    const struct sendmail_opts *o, char **args, int nargs)
{
	struct mailmsg_opts	 mo;
	struct mailmsg		 m;
	char			 sender[MAILADDR_MAX + 2], err[SENDMAIL_ERR_MAX];
	char			*in = NULL;
	size_t			 inlen;
	int			 status = EX_DATAERR;

	mailmsg_init(&m);
	if (sendmail_sender(o, w->account, sender, sizeof(sender)) == -1)
		return EX_USAGE;
	if (sendmail_arg_rcpts(&m, args, nargs, w->account) == -1)
		goto out;
	if (mailmsg_read(STDIN_FILENO, !o->dot_ok, &in, &inlen) == -1) {
		(void)fprintf(stderr, "relayq: reading the message: %s\n",
		    errno == EFBIG ? "larger than 64 MiB" : strerror(errno));
		status = errno == EFBIG ? EX_DATAERR : EX_IOERR;
		goto out;
	}
	memset(&mo, 0, sizeof(mo));
	mo.extract = o->extract;
	mo.add_headers = true;
	mo.sender = sender[0] != '\0' ? sender : w->account;
	mo.fullname = o->fullname;
	mo.local = w->account;
	mo.now = time(NULL);
	if (mailmsg_prepare(&m, in, inlen, &mo, err, sizeof(err)) == -1) {
		(void)fprintf(stderr, "relayq: %s\n", err);
		goto out;
	}
	if (m.nrcpt == 0) {
		(void)fprintf(stderr, "relayq: no recipients: name them as "
		    "arguments, or use -t to take To, Cc and Bcc\n");
		status = EX_USAGE;
		goto out;
	}
	if (m.nsplit > 0 && o->verbose)
		(void)fprintf(stderr, "relayq: %zu line(s) longer than %d "
		    "octets were split\n", m.nsplit, MAILMSG_LINE_MAX);
	status = sendmail_submit(w, sender, (const char *const *)m.rcpt,
	    m.nrcpt, m.buf, m.len, o->verbose);
out:
	free(in);
	mailmsg_free(&m);
	return status;
}

/* sendmail's command line. */
int
sendmail_main(int argc, char **argv, const struct sendmail_where *w)
{
	struct sendmail_opts	 o;
	int			 first;

	memset(&o, 0, sizeof(o));
	if ((first = sendmail_options(argc, argv, &o)) == -1) {
		sendmail_usage();
		return EX_USAGE;
	}
	switch (o.mode) {
	case SENDMAIL_LIST:
		return queue_admin_list(w->queue_dir, false, stdout);
	case SENDMAIL_FLUSH:
		return queue_admin_flush(w->socket, stdout);
	case SENDMAIL_SMTP:
		return sendmail_smtp(w->socket);
	case SENDMAIL_DELIVER:
		break;
	}
	return sendmail_deliver(w, &o, argv + first, argc - first);
}
