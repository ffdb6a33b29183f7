/*
 * submit.c: the client side of one submission, one blocking step after
 * the other (relayqd does not need the client to pipeline).  Replies are
 * read line by line into common/smtp_proto's reply accumulator; the
 * message goes out through common/dotstuff in chunks.  Each step returns
 * 0, or -1 after recording the result and the reason in the session;
 * submit_run then says QUIT if the connection is still usable.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "dotstuff.h"
#include "sasl.h"
#include "smtp_proto.h"
#include "submit.h"
#include "util.h"

#define SUBMIT_CHUNK	4096		/* message bytes stuffed at a time */
#define SUBMIT_HOST_MAX	256
#define SUBMIT_AUTH_MAX	4096		/* base64 of a PLAIN/XOAUTH2 blob, NUL */
#define SUBMIT_LINE_MAX	(SUBMIT_AUTH_MAX + 16)

struct submit_session {
	int				 fd;
	const struct submit_params	*p;
	struct submit_status		*st;
	enum submit_result		 result;
	int				 lost;	   /* the socket is unusable */
	int				 show_bol; /* transcript at line start */
	char				 in[SMTP_REPLY_LINE_MAX];
	size_t				 inlen;
	size_t				 consumed; /* of in, by the last line */
	struct smtp_reply		 reply;
	struct smtp_ehlo		 ehlo;
};

static void	submit_fail(struct submit_session *, enum submit_result,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
static int	submit_format(struct submit_session *, char *, const char *,
		    ...) __attribute__((format(printf, 3, 4)));

/* Connect to the daemon's socket; the fd, or -1 with errno. */
int
submit_connect(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd, saved_errno;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved_errno = errno;
		close(fd);
		errno = saved_errno;
		return -1;
	}
	return fd;
}

/* Map a result to its sysexits(3) code. */
int
submit_exit_status(enum submit_result result)
{
	switch (result) {
	case SUBMIT_QUEUED:
		return EX_OK;
	case SUBMIT_REJECTED:
		return EX_DATAERR;
	case SUBMIT_TEMPFAIL:
		break;
	}
	return EX_TEMPFAIL;
}

/* Record why the dialogue stopped. */
static void
submit_fail(struct submit_session *s, enum submit_result result,
    const char *fmt, ...)
{
	va_list	 ap;

	s->result = result;
	va_start(ap, fmt);
	(void)vsnprintf(s->st->reason, sizeof(s->st->reason), fmt, ap);
	va_end(ap);
}

/* Record a dead connection: later steps, QUIT included, are skipped. */
static void
submit_lost(struct submit_session *s, const char *doing, const char *what,
    int err)
{
	s->lost = 1;
	if (err == EAGAIN || err == EWOULDBLOCK)
		submit_fail(s, SUBMIT_TEMPFAIL, "timed out after %d s %s %s",
		    s->p->timeout, doing, what);
	else if (err == 0)
		submit_fail(s, SUBMIT_TEMPFAIL,
		    "connection closed by relayqd %s %s", doing, what);
	else
		submit_fail(s, SUBMIT_TEMPFAIL, "connection lost %s %s: %s",
		    doing, what, strerror(err));
}

/* Copy one transcript byte, replacing control bytes with '?'. */
static void
submit_show_byte(FILE *fp, char c)
{
	if ((unsigned char)c < 0x20 || c == 0x7f)
		c = '?';
	(void)putc(c, fp);
}

/* Show one whole line with its "C: " or "S: " prefix. */
static void
submit_show_line(struct submit_session *s, const char *prefix,
    const char *line, size_t len)
{
	size_t	 i;

	if (s->p->transcript == NULL)
		return;
	(void)fputs(prefix, s->p->transcript);
	for (i = 0; i < len; i++)
		submit_show_byte(s->p->transcript, line[i]);
	(void)putc('\n', s->p->transcript);
}

/* Show CRLF-terminated wire bytes as "C: " lines, across chunk ends. */
static void
submit_show_stream(struct submit_session *s, const char *buf, size_t len)
{
	size_t	 i;

	if (s->p->transcript == NULL)
		return;
	for (i = 0; i < len; i++) {
		if (s->show_bol)
			(void)fputs("C: ", s->p->transcript);
		s->show_bol = buf[i] == '\n';
		if (buf[i] == '\n')
			(void)putc('\n', s->p->transcript);
		else if (buf[i] != '\r')
			submit_show_byte(s->p->transcript, buf[i]);
	}
}

/* Send all of buf; what names it for the failure reason. */
static int
submit_send(struct submit_session *s, const char *what, const char *buf,
    size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		n = send(s->fd, buf, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			submit_lost(s, "sending", what, errno);
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Send one command line plus CRLF; the transcript shows shown, if set. */
static int
submit_command(struct submit_session *s, const char *what, const char *line,
    const char *shown)
{
	char	 buf[SUBMIT_LINE_MAX + 2];
	size_t	 len;
	int	 ret;

	len = strlen(line);
	if (len > SUBMIT_LINE_MAX) {
		submit_fail(s, SUBMIT_TEMPFAIL, "%s line too long", what);
		return -1;
	}
	memcpy(buf, line, len);
	memcpy(buf + len, "\r\n", 2);
	if (shown == NULL)
		submit_show_line(s, "C: ", line, len);
	else
		submit_show_line(s, "C: ", shown, strlen(shown));
	ret = submit_send(s, what, buf, len + 2);
	secure_zero(buf, sizeof(buf));
	return ret;
}

/* Format a command into buf of SMTP_CMD_MAX bytes; -1 if it is too long. */
static int
submit_format(struct submit_session *s, char *buf, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(buf, SMTP_CMD_MAX - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= SMTP_CMD_MAX - 2) {
		submit_fail(s, SUBMIT_TEMPFAIL, "command too long: %.20s...",
		    buf);
		return -1;
	}
	return 0;
}

/* Read one line (its CR and LF removed); 0, or -1 if the socket failed. */
static int
submit_read_line(struct submit_session *s, const char *what,
    const char **line, size_t *len)
{
	char	*lf;
	ssize_t	 n;

	memmove(s->in, s->in + s->consumed, s->inlen - s->consumed);
	s->inlen -= s->consumed;
	s->consumed = 0;
	while ((lf = memchr(s->in, '\n', s->inlen)) == NULL) {
		if (s->inlen == sizeof(s->in)) {
			submit_fail(s, SUBMIT_TEMPFAIL,
			    "reply line too long in the reply to %s", what);
			return -1;
		}
		n = recv(s->fd, s->in + s->inlen, sizeof(s->in) - s->inlen, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			submit_lost(s, "waiting for the reply to", what,
			    n == 0 ? 0 : errno);
			return -1;
		}
		s->inlen += (size_t)n;
	}
	*line = s->in;
	*len = (size_t)(lf - s->in);
	s->consumed = *len + 1;
	if (*len > 0 && s->in[*len - 1] == '\r')
		(*len)--;
	return 0;
}

/* Read a whole (possibly multi-line) reply into s->reply. */
static int
submit_read_reply(struct submit_session *s, const char *what)
{
	const char		*line;
	size_t			 len;
	enum smtp_reply_status	 rs;

	smtp_reply_init(&s->reply);
	do {
		if (submit_read_line(s, what, &line, &len) == -1)
			return -1;
		submit_show_line(s, "S: ", line, len);
		rs = smtp_reply_feed(&s->reply, line, len);
	} while (rs == SMTP_REPLY_MORE);
	if (rs == SMTP_REPLY_ERROR) {
		submit_fail(s, SUBMIT_TEMPFAIL, "malformed reply to %s", what);
		return -1;
	}
	if (s->inlen > s->consumed) {
		submit_fail(s, SUBMIT_TEMPFAIL,
		    "unexpected data after the reply to %s", what);
		return -1;
	}
	return 0;
}

/* Read the reply to what; accept it if its class is that of want. */
static int
submit_expect(struct submit_session *s, const char *what, int want)
{
	int	 class;

	if (submit_read_reply(s, what) == -1)
		return -1;
	class = smtp_reply_class(&s->reply);
	if (class == want / 100)
		return 0;
	s->result = class == 5 ? SUBMIT_REJECTED : SUBMIT_TEMPFAIL;
	smtp_reply_oneline(&s->reply, s->st->reason, sizeof(s->st->reason));
	return -1;
}

/* True for a non-empty name of letters, digits, '-' and '.' only. */
static int
submit_is_dns_name(const char *name)
{
	size_t	 i;

	for (i = 0; name[i] != '\0'; i++) {
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= 'A' && name[i] <= 'Z') ||
		    (name[i] >= '0' && name[i] <= '9') ||
		    name[i] == '-' || name[i] == '.'))
			return 0;
	}
	return i > 0;
}

/* The EHLO name: the caller's, else this host's name, else localhost. */
static void
submit_helo_name(const struct submit_params *p, char *buf, size_t len)
{
	if (p->helo != NULL && str_copy(buf, p->helo, len) == 0)
		return;
	if (gethostname(buf, len) == 0 && memchr(buf, '\0', len) != NULL &&
	    submit_is_dns_name(buf))
		return;
	(void)str_copy(buf, "localhost", len);
}

/* The daemon's 220 greeting. */
static int
submit_greeting(struct submit_session *s)
{
	return submit_expect(s, "the greeting", 220);
}

/* EHLO, remembering the extensions the daemon offers. */
static int
submit_ehlo(struct submit_session *s)
{
	char	 name[SUBMIT_HOST_MAX];
	char	 line[SMTP_CMD_MAX];

	submit_helo_name(s->p, name, sizeof(name));
	if (submit_format(s, line, "EHLO %s", name) == -1 ||
	    submit_command(s, "EHLO", line, NULL) == -1 ||
	    submit_expect(s, "EHLO", 250) == -1)
		return -1;
	smtp_ehlo_parse(&s->reply, &s->ehlo);
	return 0;
}

/*
 * AUTH PLAIN (or XOAUTH2 for an access token) with an initial response,
 * masked in the transcript.  When the line would exceed SMTP_CMD_MAX, the
 * response follows a 334 instead (RFC 4954).  The encoded credentials are
 * wiped either way.
 */
static int
submit_auth(struct submit_session *s)
{
	char		 b64[SUBMIT_AUTH_MAX];
	char		 line[SUBMIT_LINE_MAX];
	const char	*cmd, *mask;
	int		 ret = -1, rv;

	if (s->p->cred == NULL)
		return 0;	/* relayqd's configured account */
	if (s->p->cred->mech == SASL_MECH_XOAUTH2) {
		cmd = "AUTH XOAUTH2";
		mask = SUBMIT_AUTH_MASK_XOAUTH2;
		rv = sasl_xoauth2_encode(s->p->cred, b64, sizeof(b64));
	} else {
		cmd = "AUTH PLAIN";
		mask = SUBMIT_AUTH_MASK;
		rv = sasl_plain_encode(s->p->cred, b64, sizeof(b64));
	}
	if (rv == -1) {
		submit_fail(s, SUBMIT_TEMPFAIL, "cannot encode the credentials");
		goto done;
	}
	(void)snprintf(line, sizeof(line), "%s %s", cmd, b64);
	if (strlen(line) + 2 <= SMTP_CMD_MAX) {
		if (submit_command(s, "AUTH", line, mask) == 0 &&
		    submit_expect(s, "AUTH", 235) == 0)
			ret = 0;
	} else if (submit_command(s, "AUTH", cmd, NULL) == 0 &&
	    submit_expect(s, "AUTH", 334) == 0 &&
	    submit_command(s, "AUTH", b64, "********") == 0 &&
	    submit_expect(s, "AUTH", 235) == 0)
		ret = 0;
done:
	secure_zero(b64, sizeof(b64));
	secure_zero(line, sizeof(line));
	return ret;
}

/* True when the message has octets above 0x7f (an 8bit text part). */
static int
submit_is_8bit(const struct submit_params *p)
{
	size_t	 i;

	for (i = 0; i < p->msglen; i++)
		if ((unsigned char)p->msg[i] > 0x7f)
			return 1;
	return 0;
}

/* MAIL FROM, declaring SIZE and BODY=8BITMIME when they are offered. */
static int
submit_mail(struct submit_session *s)
{
	char	 line[SMTP_CMD_MAX];
	char	 size[32] = "";
	const char	*body = "";

	if (s->ehlo.ext & SMTP_EXT_SIZE)
		(void)snprintf(size, sizeof(size), " SIZE=%zu", s->p->msglen);
	if ((s->ehlo.ext & SMTP_EXT_8BITMIME) && submit_is_8bit(s->p))
		body = " BODY=8BITMIME";
	if (submit_format(s, line, "MAIL FROM:<%s>%s%s", s->p->sender, size,
	    body) == -1)
		return -1;
	if (submit_command(s, "MAIL", line, NULL) == -1)
		return -1;
	return submit_expect(s, "MAIL", 250);
}

/* RCPT TO for each recipient; any refusal stops the submission. */
static int
submit_rcpt(struct submit_session *s)
{
	char		 line[SMTP_CMD_MAX];
	const char	*rcpt;
	size_t		 i, n = s->p->nrcpt > 0 ? s->p->nrcpt : 1;

	for (i = 0; i < n; i++) {
		rcpt = s->p->nrcpt > 0 ? s->p->rcpts[i] : s->p->rcpt;
		if (submit_format(s, line, "RCPT TO:<%s>", rcpt) == -1 ||
		    submit_command(s, "RCPT", line, NULL) == -1 ||
		    submit_expect(s, "RCPT", 250) == -1)
			return -1;
	}
	return 0;
}

/* Copy the queue ID out of "250 2.0.0 Ok: queued as <ID>", if present. */
static void
submit_queue_id(const struct smtp_reply *r, char *id, size_t idlen)
{
	static const char	 tag[] = "queued as ";
	const char		*p;
	size_t			 n;

	id[0] = '\0';
	if ((p = strcasestr(r->text, tag)) == NULL)
		return;
	p += sizeof(tag) - 1;
	for (n = 0; p[n] > ' ' && p[n] < 0x7f; n++)
		;
	if (n == 0 || n >= idlen)
		return;
	memcpy(id, p, n);
	id[n] = '\0';
}

/* DATA, the dot-stuffed message shown line by line, the final dot. */
static int
submit_data(struct submit_session *s)
{
	struct dotstuff	 ds;
	char		 out[3 * SUBMIT_CHUNK];
	size_t		 off, n, outlen;

	if (submit_command(s, "DATA", "DATA", NULL) == -1 ||
	    submit_expect(s, "DATA", 354) == -1)
		return -1;
	dotstuff_init(&ds);
	s->show_bol = 1;
	for (off = 0; off < s->p->msglen; off += n) {
		n = s->p->msglen - off;
		if (n > SUBMIT_CHUNK)
			n = SUBMIT_CHUNK;
		outlen = dotstuff_feed(&ds, s->p->msg + off, n, out);
		submit_show_stream(s, out, outlen);
		if (submit_send(s, "the message", out, outlen) == -1)
			return -1;
	}
	outlen = dotstuff_finish(&ds, out);
	submit_show_stream(s, out, outlen);
	if (submit_send(s, "the message", out, outlen) == -1 ||
	    submit_expect(s, "the end of data", 250) == -1)
		return -1;
	submit_queue_id(&s->reply, s->st->id, sizeof(s->st->id));
	return 0;
}

/* Say QUIT and read the answer; its outcome changes nothing. */
static void
submit_quit(struct submit_session *s)
{
	struct submit_status	 ignored;
	struct submit_status	*st = s->st;
	enum submit_result	 result = s->result;

	if (s->lost)
		return;
	s->st = &ignored;
	if (submit_command(s, "QUIT", "QUIT", NULL) == 0)
		(void)submit_read_reply(s, "QUIT");
	s->st = st;
	s->result = result;
}

/* Set the per-call send and receive timeouts on the socket. */
static void
submit_set_timeout(int fd, int seconds)
{
	struct timeval	 tv;

	if (seconds <= 0)
		return;
	tv.tv_sec = seconds;
	tv.tv_usec = 0;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* The dialogue in order; each step stops it by returning -1. */
static int (*const submit_steps[])(struct submit_session *) = {
	submit_greeting,
	submit_ehlo,
	submit_auth,
	submit_mail,
	submit_rcpt,
	submit_data
};

/* The whole dialogue, step by step, then QUIT. */
enum submit_result
submit_run(int fd, const struct submit_params *p, struct submit_status *st)
{
	struct submit_session	 s;
	enum submit_result	 result;
	size_t			 i;

	memset(st, 0, sizeof(*st));
	memset(&s, 0, sizeof(s));
	s.fd = fd;
	s.p = p;
	s.st = st;
	s.result = SUBMIT_QUEUED;
	s.show_bol = 1;
	submit_set_timeout(fd, p->timeout);

	for (i = 0; i < nitems(submit_steps); i++)
		if (submit_steps[i](&s) == -1)
			break;
	submit_quit(&s);
	if (p->transcript != NULL)
		(void)fflush(p->transcript);

	result = s.result;
	secure_zero(&s, sizeof(s));
	return result;
}
