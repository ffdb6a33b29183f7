/*
 * mime.h: builds an RFC 5322 + MIME multipart/mixed message with CRLF line
 * endings.  Text parts go out as 8bit/7bit, binary parts as base64 in
 * 76-column lines.
 */
#ifndef RELAYQ_MIME_H
#define RELAYQ_MIME_H

#include <stddef.h>
#include <time.h>

#define MIME_DATE_MAX	64
#define MIME_MSGID_MAX	256
#define MIME_BOUNDARY_MAX 71

struct mime_part {
	const char	*content_type;	/* "text/plain; charset=utf-8" */
	const char	*disposition;	/* "inline", "attachment" or NULL */
	const char	*filename;	/* for Content-Disposition, or NULL */
	const void	*data;
	size_t		 len;
	int		 base64;	/* 1: base64-encode, 0: as is (text, LF -> CRLF) */
};

struct mime_header {
	const char	*from;
	const char	*to;
	const char	*subject;	/* ASCII; non-ASCII is RFC 2047 encoded */
	time_t		 date;
	const char	*msgid_domain;	/* right-hand side of Message-ID */
};

/* RFC 5322 date "Thu, 26 Nov 2026 15:21:34 +0000" in local time; 0 or -1. */
int	mime_date(time_t, char *buf, size_t len);
/* "<20261126152134.1a2b3c4d5e6f@domain>", unique per call; 0 or -1. */
int	mime_message_id(const char *domain, char *buf, size_t len);
/* A random boundary that cannot occur in base64 or in the parts; 0 or -1. */
int	mime_boundary(char *buf, size_t len);
/*
 * Build the whole message into a new malloc'd buffer (not NUL terminated)
 * and store its length in *lenp.  Headers: From, To, Subject, Date,
 * Message-ID, MIME-Version, Content-Type multipart/mixed.  NULL on error.
 */
char	*mime_build(const struct mime_header *, const struct mime_part *,
	    size_t nparts, size_t *lenp);

#endif /* RELAYQ_MIME_H */
