/*
 * mailmsg.h: a message handed over by a program (sendmail mode, relayq
 * --message) made ready for submission, as every MTA's sendmail does:
 * CRLF line endings, body lines over 998 octets split, Bcc removed,
 * recipients taken from To, Cc and Bcc (-t), and Date, Message-ID and
 * From added when missing.  libc only.
 */
#ifndef RELAYQ_MAILMSG_H
#define RELAYQ_MAILMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define MAILMSG_LINE_MAX	998		/* octets before CRLF */
#define MAILMSG_SIZE_MAX	(64u << 20)	/* what mailmsg_read takes */

struct mailmsg_opts {
	bool		 extract;	/* -t: recipients from To, Cc, Bcc */
	bool		 add_headers;	/* Date, Message-ID, From if missing */
	const char	*sender;	/* the envelope sender (From, Message-ID) */
	const char	*fullname;	/* -F: From's display name, or NULL */
	const char	*local;		/* for recipients without '@', or NULL */
	time_t		 now;
};

struct mailmsg {
	char	*buf;		/* the message, CRLF lines; malloc'd */
	size_t	 len;
	char	**rcpt;		/* the recipients, each once; malloc'd */
	size_t	 nrcpt;
	size_t	 nsplit;	/* body lines that were split */
};

/*
 * Read fd to its end, or (dot_ends) to a line holding only ".", into a
 * new malloc'd buffer.  0, or -1 with errno (EFBIG past
 * MAILMSG_SIZE_MAX).
 */
int	mailmsg_read(int fd, bool dot_ends, char **buf, size_t *len);
/*
 * Prepare the len bytes at in into m (which mailmsg_init set up; its
 * recipients so far are kept).  The header ends at the first empty line,
 * or before the first line that is not a header field (an empty line is
 * then inserted).  A header line over 998 octets is an error; a body line
 * over 998 octets is split (at a UTF-8 character boundary).  0, or -1
 * with the reason in err.
 */
int	mailmsg_prepare(struct mailmsg *m, const char *in, size_t len,
	    const struct mailmsg_opts *o, char *err, size_t errlen);
/*
 * Add one recipient (a bare address; without '@' it becomes o->local),
 * unless already there.  0, or -1 with the reason in err.
 */
int	mailmsg_add_rcpt(struct mailmsg *m, const char *addr, const char *local,
	    char *err, size_t errlen);
/*
 * Add each mailbox of the address list (a header value or a command-line
 * argument) with mailmsg_add_rcpt.  0, or -1 with the reason in err.
 */
int	mailmsg_add_list(struct mailmsg *m, const char *list, const char *local,
	    char *err, size_t errlen);
/*
 * Call add(arg, addr) for each mailbox of an RFC 5322 address list (a
 * header value): display names, comments and groups are skipped, the
 * address inside <> is taken.  0, or -1 with the reason in err (add's -1
 * is passed on).
 */
int	mailmsg_addresses(const char *value,
	    int (*add)(void *arg, const char *addr, char *err, size_t errlen),
	    void *arg, char *err, size_t errlen);
void	mailmsg_init(struct mailmsg *);
void	mailmsg_free(struct mailmsg *);

#endif /* RELAYQ_MAILMSG_H */
