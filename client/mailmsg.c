/*
 * mailmsg.c: the message of a sendmail-style submission.  The input is
 * cut into lines (LF, CRLF and a final line without either); the header
 * fields are gathered with their continuation lines, judged by name, and
 * written back as they came (Bcc left out); the body is copied line by
 * line with long lines split.  Recipients of -t come from an RFC 5322
 * address-list parser that skips display names, comments and groups.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mailaddr.h"
#include "mailmsg.h"
#include "mime.h"
#include "util.h"

#define MAILMSG_CHUNK	65536

/* A growing output buffer. */
struct mailmsg_out {
	char	*buf;
	size_t	 len, cap;
};

/* What the header held, and the options for adding recipients. */
struct mailmsg_state {
	struct mailmsg			*m;
	const struct mailmsg_opts	*o;
	bool				 has_date, has_msgid, has_from;
};

/* Append len bytes to out. */
static void
mailmsg_put(struct mailmsg_out *out, const char *p, size_t len)
{
	size_t	 cap;

	if (out->len + len + 1 > out->cap) {
		cap = out->cap ? out->cap : 4096;
		while (cap < out->len + len + 1)
			cap *= 2;
		out->buf = xreallocarray(out->buf, cap, 1);
		out->cap = cap;
	}
	memcpy(out->buf + out->len, p, len);
	out->len += len;
}

/* Append a NUL-terminated string. */
static void
mailmsg_puts(struct mailmsg_out *out, const char *s)
{
	mailmsg_put(out, s, strlen(s));
}

/* Set up an empty message. */
void
mailmsg_init(struct mailmsg *m)
{
	memset(m, 0, sizeof(*m));
}

/* Free the buffer and the recipients. */
void
mailmsg_free(struct mailmsg *m)
{
	size_t	 i;

	for (i = 0; i < m->nrcpt; i++)
		free(m->rcpt[i]);
	free(m->rcpt);
	free(m->buf);
	mailmsg_init(m);
}

/* True when buf[start..end) is the line "." (with or without CR). */
static bool
mailmsg_is_dot(const char *buf, size_t start, size_t end)
{
	size_t	 n = end - start;

	return (n == 1 && buf[start] == '.') ||
	    (n == 2 && buf[start] == '.' && buf[start + 1] == '\r');
}

/* Read fd to EOF or to a lone "." line. */
int
mailmsg_read(int fd, bool dot_ends, char **bufp, size_t *lenp)
{
	char	*buf = NULL, *lf;
	size_t	 len = 0, cap = 0, bol = 0;
	ssize_t	 n;

	for (;;) {
		if (cap - len < MAILMSG_CHUNK) {
			cap = cap ? cap * 2 : 2 * MAILMSG_CHUNK;
			buf = xreallocarray(buf, cap, 1);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		while (dot_ends &&
		    (lf = memchr(buf + bol, '\n', len - bol)) != NULL) {
			if (mailmsg_is_dot(buf, bol, (size_t)(lf - buf))) {
				len = bol;
				goto done;
			}
			bol = (size_t)(lf - buf) + 1;
		}
		if (len > MAILMSG_SIZE_MAX) {
			free(buf);
			errno = EFBIG;
			return -1;
		}
	}
	if (dot_ends && mailmsg_is_dot(buf, bol, len))
		len = bol;
done:
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	return 0;
}

/* True for an address list header that names recipients. */
static bool
mailmsg_is_rcpt_header(const char *name, size_t len)
{
	return (len == 2 && strncasecmp(name, "To", 2) == 0) ||
	    (len == 2 && strncasecmp(name, "Cc", 2) == 0) ||
	    (len == 3 && strncasecmp(name, "Bcc", 3) == 0);
}

/* Add addr unless present; a bare local name becomes local. */
int
mailmsg_add_rcpt(struct mailmsg *m, const char *addr, const char *local,
    char *err, size_t errlen)
{
	size_t	 i;

	if (strchr(addr, '@') == NULL) {
		if (local == NULL || local[0] == '\0') {
			snprintf(err, errlen, "recipient \"%.300s\" has no "
			    "domain, and no account is configured to receive "
			    "local mail", addr);
			return -1;
		}
		addr = local;
	}
	if (!mailaddr_valid(addr)) {
		snprintf(err, errlen, "invalid recipient address \"%.300s\"",
		    addr);
		return -1;
	}
	for (i = 0; i < m->nrcpt; i++)
		if (strcasecmp(m->rcpt[i], addr) == 0)
			return 0;
	m->rcpt = xreallocarray(m->rcpt, m->nrcpt + 1, sizeof(*m->rcpt));
	m->rcpt[m->nrcpt++] = xstrdup(addr);
	return 0;
}

/* What mailmsg_add_list's callback needs. */
struct mailmsg_list {
	struct mailmsg	*m;
	const char	*local;
};

/* mailmsg_addresses' callback for mailmsg_add_list. */
static int
mailmsg_add_cb(void *arg, const char *addr, char *err, size_t errlen)
{
	struct mailmsg_list	*l = arg;

	return mailmsg_add_rcpt(l->m, addr, l->local, err, errlen);
}

/* Add every mailbox of list. */
int
mailmsg_add_list(struct mailmsg *m, const char *list, const char *local,
    char *err, size_t errlen)
{
	struct mailmsg_list	 l = { m, local };

	return mailmsg_addresses(list, mailmsg_add_cb, &l, err, errlen);
}

/* Trim spaces and tabs at both ends of s, in place. */
static char *
mailmsg_trim(char *s)
{
	size_t	 n;

	s += strspn(s, " \t");
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* One mailbox ends: pass its address on, or skip an empty one. */
static int
mailmsg_emit(char *text, char *angle, bool have_angle,
    int (*add)(void *, const char *, char *, size_t), void *arg,
    char *err, size_t errlen)
{
	char	*addr;

	if (have_angle) {
		addr = mailmsg_trim(angle);
		if (addr[0] == '@' && strchr(addr, ':') != NULL)
			addr = strchr(addr, ':') + 1;	/* source route */
	} else
		addr = mailmsg_trim(text);
	if (addr[0] == '\0') {
		if (have_angle) {
			snprintf(err, errlen, "empty address <>");
			return -1;
		}
		return 0;
	}
	if (strpbrk(addr, " \t") != NULL && addr[0] != '"') {
		snprintf(err, errlen, "cannot read an address in \"%.300s\"",
		    addr);
		return -1;
	}
	return add(arg, addr, err, errlen);
}

/* Parse an address list; see mailmsg.h. */
int
mailmsg_addresses(const char *value,
    int (*add)(void *, const char *, char *, size_t), void *arg,
    char *err, size_t errlen)
{
	char		 text[1024], angle[1024];
	size_t		 tlen = 0, alen = 0;
	unsigned	 comment = 0;
	bool		 quoted = false, in_angle = false, have_angle = false;
	bool		 esc = false;
	const char	*p;
	char		 c;

	for (p = value;; p++) {
		c = *p;
		if (c == '\0' || (!quoted && comment == 0 && !in_angle &&
		    (c == ',' || c == ';'))) {
			if (quoted || comment > 0 || in_angle) {
				snprintf(err, errlen, "unterminated %s in "
				    "\"%.300s\"", quoted ? "quoted string" :
				    comment > 0 ? "comment" : "<address>",
				    value);
				return -1;
			}
			text[tlen] = angle[alen] = '\0';
			if (mailmsg_emit(text, angle, have_angle, add, arg,
			    err, errlen) == -1)
				return -1;
			if (c == '\0')
				return 0;
			tlen = alen = 0;
			have_angle = false;
			continue;
		}
		if (esc)
			esc = false;
		else if (c == '\\' && (quoted || comment > 0))
			esc = true;
		else if (c == '"' && comment == 0)
			quoted = !quoted;
		else if (c == '(' && !quoted) {
			comment++;
			continue;
		} else if (c == ')' && !quoted && comment > 0) {
			comment--;
			continue;
		} else if (c == '<' && !quoted && comment == 0 && !in_angle) {
			in_angle = have_angle = true;
			alen = 0;
			continue;
		} else if (c == '>' && !quoted && comment == 0 && in_angle) {
			in_angle = false;
			continue;
		} else if (c == ':' && !quoted && comment == 0 && !in_angle) {
			tlen = 0;	/* a group's name */
			continue;
		}
		if (comment > 0)
			continue;
		if (in_angle && alen < sizeof(angle) - 1)
			angle[alen++] = c;
		else if (!in_angle && tlen < sizeof(text) - 1)
			text[tlen++] = c;
		else {
			snprintf(err, errlen, "address too long in \"%.300s\"",
			    value);
			return -1;
		}
	}
}

/* Length of the field name if line is "name:...", else 0. */
static size_t
mailmsg_field_name(const char *line, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (line[i] == ':')
			return i;
		if (line[i] <= ' ' || line[i] > '~')
			return 0;
	}
	return 0;
}

/* The line at in + off: its length without LF/CRLF, and the next offset. */
static size_t
mailmsg_line(const char *in, size_t len, size_t off, size_t *next)
{
	const char	*lf;
	size_t		 n;

	if ((lf = memchr(in + off, '\n', len - off)) == NULL) {
		*next = len;
		return len - off;
	}
	*next = (size_t)(lf - in) + 1;
	n = (size_t)(lf - in) - off;
	if (n > 0 && in[off + n - 1] == '\r')
		n--;
	return n;
}

/* Judge one whole header field (name and unfolded value). */
static int
mailmsg_field(struct mailmsg_state *st, const char *name, size_t nlen,
    const char *value, char *err, size_t errlen)
{
	if (nlen == 4 && strncasecmp(name, "Date", 4) == 0)
		st->has_date = true;
	else if (nlen == 10 && strncasecmp(name, "Message-ID", 10) == 0)
		st->has_msgid = true;
	else if (nlen == 4 && strncasecmp(name, "From", 4) == 0)
		st->has_from = true;
	if (st->o->extract && mailmsg_is_rcpt_header(name, nlen) &&
	    mailmsg_add_list(st->m, value, st->o->local, err, errlen) == -1)
		return -1;
	return 0;
}

/*
 * Copy the header fields from in (up to *offp) to out, judging each; on
 * return *offp is where the body starts and *blank says whether an empty
 * line ended the header there.
 */
static int
mailmsg_header(struct mailmsg_state *st, const char *in, size_t len,
    size_t *offp, bool *blank, struct mailmsg_out *out, char *err,
    size_t errlen)
{
	struct mailmsg_out	 value = { NULL, 0, 0 };
	size_t			 off = *offp, next, n, nlen, start;
	int			 rc = -1;

	*blank = false;
	while (off < len) {
		n = mailmsg_line(in, len, off, &next);
		if (n == 0) {
			*blank = true;
			off = next;
			break;
		}
		if ((nlen = mailmsg_field_name(in + off, n)) == 0)
			break;		/* the body starts here */
		start = off;
		value.len = 0;
		/* The field and its continuation lines. */
		do {
			if (n > MAILMSG_LINE_MAX) {
				snprintf(err, errlen, "header line longer than "
				    "%d octets: %.40s...", MAILMSG_LINE_MAX,
				    in + start);
				goto done;
			}
			mailmsg_put(&value, in + off, n);
			off = next;
			if (off >= len || (in[off] != ' ' && in[off] != '\t'))
				break;
			n = mailmsg_line(in, len, off, &next);
		} while (1);
		mailmsg_put(&value, "", 1);
		if (mailmsg_field(st, value.buf, nlen, value.buf + nlen + 1,
		    err, errlen) == -1)
			goto done;
		if (nlen == 3 && strncasecmp(value.buf, "Bcc", 3) == 0)
			continue;	/* never sent */
		/* Write the field's lines again, each ending in CRLF. */
		while (start < off) {
			n = mailmsg_line(in, len, start, &next);
			mailmsg_put(out, in + start, n);
			mailmsg_puts(out, "\r\n");
			start = next;
		}
	}
	*offp = off;
	rc = 0;
done:
	free(value.buf);
	return rc;
}

/* Add Date, Message-ID and From where the header had none. */
static int
mailmsg_add_headers(struct mailmsg_state *st, struct mailmsg_out *out,
    char *err, size_t errlen)
{
	const struct mailmsg_opts	*o = st->o;
	const char			*at, *p;
	char				 buf[512];

	if (!st->has_from && o->sender != NULL && o->sender[0] != '\0') {
		mailmsg_puts(out, "From: ");
		if (o->fullname != NULL && o->fullname[0] != '\0') {
			mailmsg_puts(out, "\"");
			for (p = o->fullname; *p != '\0'; p++) {
				if ((unsigned char)*p < ' ')
					continue;
				if (*p == '"' || *p == '\\')
					mailmsg_put(out, "\\", 1);
				mailmsg_put(out, p, 1);
			}
			mailmsg_puts(out, "\" <");
			mailmsg_puts(out, o->sender);
			mailmsg_puts(out, ">\r\n");
		} else {
			mailmsg_puts(out, o->sender);
			mailmsg_puts(out, "\r\n");
		}
	}
	if (!st->has_date) {
		if (mime_date(o->now, buf, sizeof(buf)) == -1) {
			snprintf(err, errlen, "cannot format the date");
			return -1;
		}
		mailmsg_puts(out, "Date: ");
		mailmsg_puts(out, buf);
		mailmsg_puts(out, "\r\n");
	}
	at = o->sender != NULL ? strrchr(o->sender, '@') : NULL;
	if (!st->has_msgid && mime_message_id(at != NULL ? at + 1 :
	    "localhost.localdomain", buf, sizeof(buf)) == 0) {
		mailmsg_puts(out, "Message-ID: ");
		mailmsg_puts(out, buf);
		mailmsg_puts(out, "\r\n");
	}
	return 0;
}

/* Where to split a long line: n octets, or fewer at a UTF-8 boundary. */
static size_t
mailmsg_split_at(const char *p, size_t n)
{
	size_t	 k = n;

	while (k > n - 3 && ((unsigned char)p[k] & 0xc0) == 0x80)
		k--;
	return ((unsigned char)p[k] & 0xc0) == 0x80 ? n : k;
}

/* Copy the body, CRLF lines, splitting those over the limit. */
static void
mailmsg_body(struct mailmsg *m, const char *in, size_t len, size_t off,
    struct mailmsg_out *out)
{
	size_t	 n, next, k;

	while (off < len) {
		n = mailmsg_line(in, len, off, &next);
		if (n > MAILMSG_LINE_MAX)
			m->nsplit++;
		while (n > MAILMSG_LINE_MAX) {
			k = mailmsg_split_at(in + off, MAILMSG_LINE_MAX);
			mailmsg_put(out, in + off, k);
			mailmsg_puts(out, "\r\n");
			off += k;
			n -= k;
		}
		mailmsg_put(out, in + off, n);
		mailmsg_puts(out, "\r\n");
		off = next;
	}
}

/* Prepare the message; see mailmsg.h. */
int
mailmsg_prepare(struct mailmsg *m, const char *in, size_t len,
    const struct mailmsg_opts *o, char *err, size_t errlen)
{
	struct mailmsg_state	 st;
	struct mailmsg_out	 out = { NULL, 0, 0 };
	size_t			 off = 0;
	bool			 blank;

	memset(&st, 0, sizeof(st));
	st.m = m;
	st.o = o;
	if (mailmsg_header(&st, in, len, &off, &blank, &out, err,
	    errlen) == -1 ||
	    (o->add_headers && mailmsg_add_headers(&st, &out, err,
	    errlen) == -1)) {
		free(out.buf);
		return -1;
	}
	mailmsg_puts(&out, "\r\n");
	mailmsg_body(m, in, len, off, &out);
	free(m->buf);
	m->buf = out.buf;
	m->len = out.len;
	if (m->buf == NULL)
		m->buf = xstrdup("");
	return 0;
}
