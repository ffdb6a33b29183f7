/*
 * relayq.c: the client's main.  It checks the arguments, takes the
 * password (from argv, wiped there at once, or from standard input),
 * builds the test message, connects to relayqd's socket and runs the
 * submission.  --list, --json, --delete and --flush look after the queue
 * instead (queue_admin.c).  Exit codes follow sysexits(3).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "mailaddr.h"
#include "mailmsg.h"
#include "message.h"
#include "queue_admin.h"
#include "sasl.h"
#include "sendmail.h"
#include "submit.h"
#include "util.h"

#ifndef RELAYQ_VERSION
#define RELAYQ_VERSION	"unknown"
#endif

static const struct option relayq_longopts[] = {
	{ "socket",	required_argument,	NULL,	's' },
	{ "list",	no_argument,		NULL,	'q' },
	{ "json",	no_argument,		NULL,	'j' },
	{ "queue-dir",	required_argument,	NULL,	'd' },
	{ "flush",	no_argument,		NULL,	'F' },
	{ "delete",	required_argument,	NULL,	'D' },
	{ "message",	required_argument,	NULL,	'M' },
	{ "oauth2-token", no_argument,		NULL,	'O' },
	{ "help",	no_argument,		NULL,	'h' },
	{ "version",	no_argument,		NULL,	'V' },
	{ NULL,		0,			NULL,	0 }
};

/* What the command line asks for. */
enum relayq_mode {
	RELAYQ_SUBMIT,
	RELAYQ_LIST,
	RELAYQ_FLUSH,
	RELAYQ_DELETE
};

/* Print the synopsis to fp. */
static void
relayq_usage(FILE *fp)
{
	(void)fprintf(fp,
	    "usage: relayq [--socket PATH] [--message FILE] SENDER PASSWORD "
	    "RECIPIENT\n"
	    "       relayq [--socket PATH] [--message FILE] --oauth2-token "
	    "SENDER TOKEN RECIPIENT\n"
	    "       relayq -q | --list [--json] [--queue-dir DIR]\n"
	    "       relayq --delete ID [--queue-dir DIR]\n"
	    "       relayq --flush [--socket PATH]\n"
	    "       relayq --sendmail [sendmail options] [RECIPIENT ...]\n"
	    "       relayq -h | --help | --version\n"
	    "Submit a test message (text and a PNG image), or FILE, to relayqd.\n"
	    "As sendmail (or --sendmail): see relayq(1), SENDMAIL MODE.\n"
	    "PASSWORD - (TOKEN -) reads it from standard input.\n"
	    "The socket is --socket, else $RELAYQ_SOCKET, else the socket of\n"
	    "$RELAYQ_CONFIG or %s, else %s; the queue is\n"
	    "--queue-dir, else that file's queue-dir, else %s.\n",
	    QUEUE_ADMIN_CONFIG,
	    SUBMIT_SOCKET_DEFAULT, QUEUE_ADMIN_DIR_DEFAULT);
}

/*
 * Fill cred from the arguments.  A password (or with --oauth2-token an
 * access token) given on the command line is copied and then overwritten
 * in argv so ps(1) stops showing it.
 */
static int
relayq_credentials(struct sasl_cred *cred, const char *sender, char *password,
    bool token)
{
	const char	*what = token ? "token" : "password";
	int		 ret;

	cred->mech = token ? SASL_MECH_XOAUTH2 : SASL_MECH_PLAIN;

	if (str_copy(cred->user, sender, sizeof(cred->user)) == -1) {
		(void)fprintf(stderr, "relayq: sender address too long\n");
		return -1;
	}
	if (strcmp(password, "-") == 0) {
		if (read_secret(cred->pass, sizeof(cred->pass),
		    token ? "Token: " : "Password: ") == 0)
			return 0;
		(void)fprintf(stderr, "relayq: no %s, or one longer "
		    "than %d bytes, on standard input\n", what,
		    SASL_SECRET_MAX - 1);
		return -1;
	}
	ret = str_copy(cred->pass, password, sizeof(cred->pass));
	secure_zero(password, strlen(password));
	if (ret == -1 || cred->pass[0] == '\0') {
		(void)fprintf(stderr, "relayq: the %s must be 1 to %d "
		    "bytes\n", what, SASL_SECRET_MAX - 1);
		return -1;
	}
	return 0;
}

/* Check both addresses; 0, or -1 after saying which is wrong. */
static int
relayq_check_addresses(const char *sender, const char *rcpt)
{
	if (!mailaddr_valid(sender)) {
		(void)fprintf(stderr, "relayq: invalid sender address: %s\n",
		    sender);
		return -1;
	}
	if (!mailaddr_valid(rcpt)) {
		(void)fprintf(stderr, "relayq: invalid recipient address: %s\n",
		    rcpt);
		return -1;
	}
	return 0;
}

/* Connect, or explain how to start relayqd; the fd or -1. */
static int
relayq_connect(const char *path)
{
	int	 fd, saved_errno;

	if ((fd = submit_connect(path)) != -1)
		return fd;
	saved_errno = errno;
	(void)fprintf(stderr, "relayq: cannot connect to %s: %s\n"
	    "relayq: is relayqd running? start it with: systemctl start "
	    "relayqd, or relayqd -f --socket %s\n", path,
	    strerror(saved_errno), path);
	errno = saved_errno;
	return -1;
}

/*
 * --message FILE: the file as it is (an RFC 5322 message, such as a
 * failed/ entry's message.eml) with CRLF line endings, long body lines
 * split and Bcc removed, into a new buffer.  NULL after saying why.
 */
static char *
relayq_message_file(const char *file, size_t *lenp)
{
	struct mailmsg_opts	 mo;
	struct mailmsg		 m;
	char			*in, *msg = NULL, err[600];
	size_t			 inlen;
	int			 fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1 ||
	    mailmsg_read(fd, false, &in, &inlen) == -1) {
		(void)fprintf(stderr, "relayq: %s: %s\n", file,
		    errno == EFBIG ? "larger than 64 MiB" : strerror(errno));
		if (fd != -1)
			(void)close(fd);
		return NULL;
	}
	(void)close(fd);
	memset(&mo, 0, sizeof(mo));
	mailmsg_init(&m);
	if (mailmsg_prepare(&m, in, inlen, &mo, err, sizeof(err)) == -1)
		(void)fprintf(stderr, "relayq: %s: %s\n", file, err);
	else {
		msg = m.buf;
		*lenp = m.len;
		m.buf = NULL;
	}
	mailmsg_free(&m);
	free(in);
	return msg;
}

/* Build (or read) the message, connect and submit; the exit status. */
static int
relayq_submit(const char *path, const char *sender, const char *rcpt,
    const struct sasl_cred *cred, const char *file)
{
	struct submit_params	 p;
	struct submit_status	 st;
	enum submit_result	 result;
	char			*msg;
	size_t			 msglen;
	int			 fd;

	if (file != NULL) {
		if ((msg = relayq_message_file(file, &msglen)) == NULL)
			return EX_NOINPUT;
	} else if ((msg = message_build(sender, rcpt, time(NULL),
	    &msglen)) == NULL) {
		(void)fprintf(stderr, "relayq: cannot build the message\n");
		return EX_SOFTWARE;
	}
	if ((fd = relayq_connect(path)) == -1) {
		free(msg);
		return errno == ENAMETOOLONG ? EX_USAGE : EX_UNAVAILABLE;
	}
	memset(&p, 0, sizeof(p));
	p.sender = sender;
	p.rcpt = rcpt;
	p.cred = cred;
	p.msg = msg;
	p.msglen = msglen;
	p.timeout = SUBMIT_TIMEOUT;
	p.transcript = stdout;
	result = submit_run(fd, &p, &st);
	(void)close(fd);
	free(msg);

	if (result == SUBMIT_QUEUED && st.id[0] != '\0')
		(void)printf("queued as %s\n", st.id);
	else if (result == SUBMIT_QUEUED)
		(void)printf("queued (the reply named no queue ID)\n");
	(void)fflush(stdout);
	if (result != SUBMIT_QUEUED)
		(void)fprintf(stderr, "relayq: %s\n", st.reason);
	return submit_exit_status(result);
}

/* Set the mode once; a second, different one is a usage error. */
static int
relayq_set_mode(enum relayq_mode *mode, enum relayq_mode m)
{
	if (*mode != RELAYQ_SUBMIT && *mode != m)
		return -1;
	*mode = m;
	return 0;
}

/* Run a queue tool: --list, --flush or --delete. */
static int
relayq_admin(enum relayq_mode mode, const char *qdir, const char *path,
    const char *id, bool json)
{
	switch (mode) {
	case RELAYQ_LIST:
		return queue_admin_list(qdir, json, stdout);
	case RELAYQ_FLUSH:
		return queue_admin_flush(path, stdout);
	case RELAYQ_DELETE:
		return queue_admin_delete(qdir, id, stdout);
	case RELAYQ_SUBMIT:
		break;
	}
	return EX_SOFTWARE;
}

/* relayqd's config file: $RELAYQ_CONFIG, else the installed one. */
static const char *
relayq_config(void)
{
	const char	*env = getenv("RELAYQ_CONFIG");

	return env != NULL && env[0] != '\0' ? env : QUEUE_ADMIN_CONFIG;
}

/*
 * As sendmail or mailq (argv[0]'s name, or relayq --sendmail): the socket
 * from $RELAYQ_SOCKET or the config, the queue and the account from the
 * config.  -1 when relayq runs as itself.
 */
static int
relayq_as_sendmail(int argc, char *argv[])
{
	struct sendmail_where	 w;
	const char		*name, *env;
	char			 dir[4096], sock[4096], acct[256];

	name = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 :
	    argv[0];
	if (strcmp(name, "sendmail") != 0 && strcmp(name, "mailq") != 0 &&
	    (argc < 2 || strcmp(argv[1], "--sendmail") != 0))
		return -1;
	str_copy(dir, QUEUE_ADMIN_DIR_DEFAULT, sizeof(dir));
	str_copy(sock, SUBMIT_SOCKET_DEFAULT, sizeof(sock));
	queue_admin_defaults(relayq_config(), dir, sizeof(dir), sock,
	    sizeof(sock));
	queue_admin_account(relayq_config(), acct, sizeof(acct));
	if ((env = getenv("RELAYQ_SOCKET")) != NULL && env[0] != '\0')
		str_copy(sock, env, sizeof(sock));
	w.socket = sock;
	w.queue_dir = dir;
	w.account = acct;
	if (strcmp(name, "mailq") == 0)
		return queue_admin_list(dir, false, stdout);
	if (strcmp(name, "sendmail") != 0) {
		argv[1] = argv[0];	/* drop --sendmail */
		return sendmail_main(argc - 1, argv + 1, &w);
	}
	return sendmail_main(argc, argv, &w);
}

/* Parse the command line and run one submission or queue tool. */
int
main(int argc, char *argv[])
{
	struct sasl_cred	 cred;
	enum relayq_mode	 mode = RELAYQ_SUBMIT;
	const char		*path = NULL, *qdir = NULL, *id = NULL;
	const char		*env, *file = NULL;
	char			 confdir[4096], confsock[4096];
	bool			 json = false, token = false;
	int			 ch, status;

	if ((status = relayq_as_sendmail(argc, argv)) != -1)
		return status;
	str_copy(confdir, QUEUE_ADMIN_DIR_DEFAULT, sizeof(confdir));
	str_copy(confsock, SUBMIT_SOCKET_DEFAULT, sizeof(confsock));
	/* "+": options end at the first operand; a password may start with '-'. */
	while ((ch = getopt_long(argc, argv, "+hq", relayq_longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		case 'q':
			if (relayq_set_mode(&mode, RELAYQ_LIST) == -1)
				goto usage;
			break;
		case 'j':
			json = true;
			break;
		case 'd':
			qdir = optarg;
			break;
		case 'F':
			if (relayq_set_mode(&mode, RELAYQ_FLUSH) == -1)
				goto usage;
			break;
		case 'D':
			if (relayq_set_mode(&mode, RELAYQ_DELETE) == -1)
				goto usage;
			id = optarg;
			break;
		case 'M':
			file = optarg;
			break;
		case 'O':
			token = true;
			break;
		case 'h':
			relayq_usage(stdout);
			return EX_OK;
		case 'V':
			(void)printf("relayq %s\n", RELAYQ_VERSION);
			return EX_OK;
		default:
			goto usage;
		}
	}
	if (json && mode == RELAYQ_SUBMIT)
		mode = RELAYQ_LIST;
	if ((json && mode != RELAYQ_LIST) ||
	    ((file != NULL || token) && mode != RELAYQ_SUBMIT) ||
	    argc - optind != (mode == RELAYQ_SUBMIT ? 3 : 0))
		goto usage;
	if (path == NULL && (env = getenv("RELAYQ_SOCKET")) != NULL &&
	    env[0] != '\0')
		path = env;
	if (path == NULL || qdir == NULL)
		queue_admin_defaults(relayq_config(), confdir,
		    sizeof(confdir), confsock, sizeof(confsock));
	if (path == NULL)
		path = confsock;
	if (qdir == NULL)
		qdir = confdir;
	if (mode != RELAYQ_SUBMIT)
		return relayq_admin(mode, qdir, path, id, json);

	memset(&cred, 0, sizeof(cred));
	if (relayq_check_addresses(argv[optind], argv[optind + 2]) == -1 ||
	    relayq_credentials(&cred, argv[optind], argv[optind + 1],
	    token) == -1)
		status = EX_USAGE;
	else
		status = relayq_submit(path, argv[optind], argv[optind + 2],
		    &cred, file);
	sasl_cred_clear(&cred);
	return status;
usage:
	relayq_usage(stderr);
	return EX_USAGE;
}
