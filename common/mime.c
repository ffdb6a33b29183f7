/*
 * mime.c: an RFC 5322 message with a MIME multipart/mixed body (RFC 2045,
 * 2046), RFC 2047 encoded words for a non-ASCII Subject, and the Date and
 * Message-ID fields.
 *
 * The client links this file with libc only, so randomness comes from
 * getrandom(2), falling back to /dev/urandom, and the message is built in
 * a plain growing buffer.  Every line of the output ends in CRLF.  Header
 * values are refused when they hold CR, LF or NUL, so a caller cannot
 * inject header fields.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "mime.h"
#include "util.h"

#define MIME_LINE_MAX	78	/* RFC 5322 2.1.1 "SHOULD" */
#define MIME_TEXT_MAX	998	/* RFC 5322 2.1.1 "MUST", 7bit and 8bit */
#define MIME_EW_CHUNK	39	/* subject octets per encoded word */

struct mime_buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	int	 error;
};

static const char *const mime_days[] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
};
static const char *const mime_months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

/* Fill buf with len random bytes from the kernel; 0 or -1. */
static int
mime_random(void *buf, size_t len)
{
	unsigned char	*p = buf;
	ssize_t		 n;
	size_t		 off = 0;
	int		 fd;

	while (off < len) {
		n = getrandom(p + off, len - off, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off == len)
		return 0;
	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while (off < len) {
		n = read(fd, p + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	return off == len ? 0 : -1;
}

/* Write len random bytes as 2 * len lowercase hex digits plus a NUL. */
static int
mime_random_hex(char *hex, size_t len)
{
	static const char	 digits[] = "0123456789abcdef";
	unsigned char		 raw[32];
	size_t			 i;

	if (len > sizeof(raw) || mime_random(raw, len) == -1)
		return -1;
	for (i = 0; i < len; i++) {
		hex[2 * i] = digits[raw[i] >> 4];
		hex[2 * i + 1] = digits[raw[i] & 0xf];
	}
	hex[2 * len] = '\0';
	return 0;
}

/* Format t as an RFC 5322 date in local time with its numeric offset. */
int
mime_date(time_t t, char *buf, size_t len)
{
	struct tm	 tm;
	long		 off;
	int		 n;
	char		 sign = '+';

	if (localtime_r(&t, &tm) == NULL)
		return -1;
	off = tm.tm_gmtoff / 60;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	n = snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	    mime_days[tm.tm_wday % 7], tm.tm_mday, mime_months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
	    off / 60, off % 60);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return 0;
}

/* True when domain is usable as the right-hand side of a Message-ID. */
static bool
mime_msgid_domain_ok(const char *domain)
{
	const char	*p;

	if (*domain == '\0' || strlen(domain) > 200)
		return false;
	for (p = domain; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.')
			continue;
		return false;
	}
	return true;
}

/* Make "<UTC-timestamp.random@domain>", unique per call. */
int
mime_message_id(const char *domain, char *buf, size_t len)
{
	struct tm	 tm;
	time_t		 now;
	char		 stamp[32], hex[2 * 12 + 1];
	int		 n;

	if (domain == NULL || !mime_msgid_domain_ok(domain))
		return -1;
	now = time(NULL);
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
		return -1;
	if (mime_random_hex(hex, 12) == -1)
		return -1;
	n = snprintf(buf, len, "<%s.%s@%s>", stamp, hex, domain);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return 0;
}

/*
 * Make a random boundary.  "=_" cannot occur in base64 output, and the 128
 * random bits make a match in text negligible; mime_build checks anyway.
 */
int
mime_boundary(char *buf, size_t len)
{
	char	 hex[2 * 16 + 1];
	int	 n;

	if (mime_random_hex(hex, 16) == -1)
		return -1;
	n = snprintf(buf, len, "=_relayq_%s", hex);
	if (n < 0 || (size_t)n >= len || (size_t)n > MIME_BOUNDARY_MAX - 1)
		return -1;
	return 0;
}

/* Make room for n more bytes; a pointer to them, or NULL (error is set). */
static char *
mime_buf_reserve(struct mime_buf *b, size_t n)
{
	size_t	 cap;
	char	*p;

	if (b->error)
		return NULL;
	if (n > SIZE_MAX / 2 - b->len) {
		b->error = 1;
		return NULL;
	}
	if (b->len + n > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->error = 1;
			return NULL;
		}
		b->p = p;
		b->cap = cap;
	}
	return b->p + b->len;
}

/* Append n bytes. */
static void
mime_buf_add(struct mime_buf *b, const void *data, size_t n)
{
	char	*p;

	if ((p = mime_buf_reserve(b, n)) == NULL)
		return;
	memcpy(p, data, n);
	b->len += n;
}

/* Append a NUL-terminated string. */
static void
mime_buf_puts(struct mime_buf *b, const char *s)
{
	mime_buf_add(b, s, strlen(s));
}

/* Append "name: value" CRLF. */
static void
mime_buf_header(struct mime_buf *b, const char *name, const char *value)
{
	mime_buf_puts(b, name);
	mime_buf_puts(b, ": ");
	mime_buf_puts(b, value);
	mime_buf_puts(b, "\r\n");
}

/* True when s is a usable one-line header value (no CR, LF, too long). */
static bool
mime_value_ok(const char *s)
{
	size_t	 len;

	if (s == NULL)
		return false;
	len = strnlen(s, MIME_TEXT_MAX);
	return len < MIME_TEXT_MAX - 32 && str_is_clean(s, len);
}

/* True when s holds an octet >= 0x80. */
static bool
mime_has_8bit(const void *s, size_t len)
{
	const unsigned char	*p = s;
	size_t			 i;

	for (i = 0; i < len; i++)
		if (p[i] >= 0x80)
			return true;
	return false;
}

/*
 * Append the Subject field.  ASCII that fits the 78-column line goes out
 * as is; anything else becomes UTF-8 "B" encoded words of whole characters
 * (RFC 2047 5), one per folded line.
 */
static void
mime_subject(struct mime_buf *b, const char *subject)
{
	char	 word[2 * MIME_EW_CHUNK];
	size_t	 len, off, n;

	len = strlen(subject);
	if (!mime_has_8bit(subject, len) &&
	    len + sizeof("Subject: ") - 1 <= MIME_LINE_MAX) {
		mime_buf_header(b, "Subject", subject);
		return;
	}
	mime_buf_puts(b, "Subject:");
	for (off = 0; off < len; off += n) {
		n = len - off < MIME_EW_CHUNK ? len - off : MIME_EW_CHUNK;
		/* Never split a UTF-8 sequence: back off continuation bytes. */
		while (n > 1 && off + n < len &&
		    ((unsigned char)subject[off + n] & 0xc0) == 0x80)
			n--;
		base64_encode(subject + off, n, word, sizeof(word), 0);
		mime_buf_puts(b, off == 0 ? " =?UTF-8?B?" : "\r\n =?UTF-8?B?");
		mime_buf_puts(b, word);
		mime_buf_puts(b, "?=");
	}
	mime_buf_puts(b, "\r\n");
}

/* Append text converted to CRLF line ends, ending in CRLF. */
static void
mime_text_body(struct mime_buf *b, const char *s, size_t len)
{
	size_t	 i;
	char	*p;

	/* Worst case every byte becomes CRLF, plus a final CRLF. */
	if (len > SIZE_MAX / 2 - 2 || (p = mime_buf_reserve(b, 2 * len + 2))
	    == NULL) {
		b->error = 1;
		return;
	}
	for (i = 0; i < len; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			*p++ = '\r';
			*p++ = '\n';
			b->len += 2;
			if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
				i++;
			continue;
		}
		*p++ = s[i];
		b->len++;
	}
	if (len == 0 || (s[len - 1] != '\n' && s[len - 1] != '\r')) {
		*p++ = '\r';
		*p = '\n';
		b->len += 2;
	}
}

/* Append data as base64 in 76-column CRLF lines. */
static void
mime_base64_body(struct mime_buf *b, const void *data, size_t len)
{
	size_t	 need;
	char	*p;

	if ((need = base64_wrapped_len(len)) == SIZE_MAX ||
	    (p = mime_buf_reserve(b, need + 1)) == NULL) {
		b->error = 1;
		return;
	}
	b->len += base64_encode(data, len, p, need + 1, 1);
}

/* True when a text part can go out as 7bit/8bit: no NUL, lines <= 998. */
static bool
mime_text_ok(const char *s, size_t len)
{
	size_t	 i, col = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '\0')
			return false;
		if (s[i] == '\r' || s[i] == '\n')
			col = 0;
		else if (++col > MIME_TEXT_MAX)
			return false;
	}
	return true;
}

/* True when the part's header values are clean and its text sendable. */
static bool
mime_part_ok(const struct mime_part *part)
{
	const char	*f;

	if (part->data == NULL && part->len != 0)
		return false;
	if (part->content_type != NULL && !mime_value_ok(part->content_type))
		return false;
	if (part->disposition != NULL && !mime_value_ok(part->disposition))
		return false;
	if ((f = part->filename) != NULL) {
		/* A quoted-string of printable ASCII; RFC 2231 is not done. */
		if (!mime_value_ok(f) || *f == '\0' ||
		    mime_has_8bit(f, strlen(f)))
			return false;
		for (; *f != '\0'; f++)
			if (*f == '"' || *f == '\\' || *f < 0x20 || *f == 0x7f)
				return false;
	}
	return part->base64 || mime_text_ok(part->data, part->len);
}

/* Append one body part after its delimiter line. */
static void
mime_part(struct mime_buf *b, const char *boundary,
    const struct mime_part *part)
{
	const char	*ct, *disp;
	size_t		 linelen;

	mime_buf_puts(b, "--");
	mime_buf_puts(b, boundary);
	mime_buf_puts(b, "\r\n");
	ct = part->content_type;
	if (ct == NULL)
		ct = part->base64 ? "application/octet-stream" :
		    "text/plain; charset=utf-8";
	mime_buf_header(b, "Content-Type", ct);
	mime_buf_header(b, "Content-Transfer-Encoding", part->base64 ?
	    "base64" : mime_has_8bit(part->data, part->len) ? "8bit" : "7bit");
	disp = part->disposition;
	if (disp == NULL && part->filename != NULL)
		disp = "attachment";
	if (disp != NULL) {
		mime_buf_puts(b, "Content-Disposition: ");
		mime_buf_puts(b, disp);
		linelen = strlen("Content-Disposition: ") + strlen(disp);
		if (part->filename != NULL) {
			linelen += strlen("; filename=\"\"") +
			    strlen(part->filename);
			mime_buf_puts(b, linelen > MIME_LINE_MAX ?
			    ";\r\n filename=\"" : "; filename=\"");
			mime_buf_puts(b, part->filename);
			mime_buf_puts(b, "\"");
		}
		mime_buf_puts(b, "\r\n");
	}
	mime_buf_puts(b, "\r\n");
	if (part->base64)
		mime_base64_body(b, part->data, part->len);
	else
		mime_text_body(b, part->data, part->len);
}

/* True when the boundary occurs in none of the text parts. */
static bool
mime_boundary_free(const char *boundary, const struct mime_part *parts,
    size_t nparts)
{
	size_t	 i;

	for (i = 0; i < nparts; i++)
		if (!parts[i].base64 && parts[i].len > 0 &&
		    memmem(parts[i].data, parts[i].len, boundary,
		    strlen(boundary)) != NULL)
			return false;
	return true;
}

/* Copy the domain of the From address ("a@b" or "Name <a@b>") into buf. */
static int
mime_from_domain(const char *from, char *buf, size_t len)
{
	const char	*at;
	size_t		 n;

	if ((at = strrchr(from, '@')) == NULL)
		return -1;
	at++;
	n = strspn(at, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.");
	if (n == 0 || n >= len)
		return -1;
	memcpy(buf, at, n);
	buf[n] = '\0';
	return 0;
}

/*
 * Append From, To, Subject, Date, Message-ID and the MIME fields.  A zero
 * date means now; no msgid_domain means the domain of the From address.
 */
static int
mime_headers(struct mime_buf *b, const struct mime_header *h,
    const char *boundary)
{
	char		 date[MIME_DATE_MAX], msgid[MIME_MSGID_MAX];
	char		 fromdom[MIME_MSGID_MAX];
	const char	*domain;

	if (mime_date(h->date != 0 ? h->date : time(NULL), date,
	    sizeof(date)) == -1)
		return -1;
	domain = h->msgid_domain;
	if (domain == NULL) {
		if (mime_from_domain(h->from, fromdom, sizeof(fromdom)) == -1)
			return -1;
		domain = fromdom;
	}
	if (mime_message_id(domain, msgid, sizeof(msgid)) == -1)
		return -1;
	mime_buf_header(b, "From", h->from);
	mime_buf_header(b, "To", h->to);
	mime_subject(b, h->subject);
	mime_buf_header(b, "Date", date);
	mime_buf_header(b, "Message-ID", msgid);
	mime_buf_header(b, "MIME-Version", "1.0");
	mime_buf_puts(b, "Content-Type: multipart/mixed;\r\n boundary=\"");
	mime_buf_puts(b, boundary);
	mime_buf_puts(b, "\"\r\n\r\n");
	return 0;
}

/* Build the whole message into a malloc'd buffer; NULL on error. */
char *
mime_build(const struct mime_header *h, const struct mime_part *parts,
    size_t nparts, size_t *lenp)
{
	struct mime_buf	 b = { NULL, 0, 0, 0 };
	char		 boundary[MIME_BOUNDARY_MAX];
	size_t		 i;
	int		 tries = 0;

	if (!mime_value_ok(h->from) || !mime_value_ok(h->to) ||
	    !mime_value_ok(h->subject) || nparts == 0)
		return NULL;
	for (i = 0; i < nparts; i++)
		if (!mime_part_ok(&parts[i]))
			return NULL;
	do {
		if (++tries > 8 || mime_boundary(boundary,
		    sizeof(boundary)) == -1)
			return NULL;
	} while (!mime_boundary_free(boundary, parts, nparts));

	if (mime_headers(&b, h, boundary) == -1)
		goto fail;
	mime_buf_puts(&b, "This is a multi-part message in MIME format.\r\n");
	for (i = 0; i < nparts; i++)
		mime_part(&b, boundary, &parts[i]);
	mime_buf_puts(&b, "--");
	mime_buf_puts(&b, boundary);
	mime_buf_puts(&b, "--\r\n");
	if (b.error)
		goto fail;
	*lenp = b.len;
	return b.p;
 fail:
	free(b.p);
	return NULL;
}
