/*
 * submit.h: one blocking ESMTP submission to relayqd on a connected
 * stream socket: greeting, EHLO, AUTH PLAIN (unless there are no
 * credentials), MAIL, RCPT for each recipient, DATA, the
 * dot-stuffed message, QUIT.  Every line sent and received is shown on a
 * transcript stream as "C: " and "S: " lines, the AUTH line masked.
 */
#ifndef RELAYQ_SUBMIT_H
#define RELAYQ_SUBMIT_H

#include <stddef.h>
#include <stdio.h>

#include "sasl.h"

#define SUBMIT_SOCKET_DEFAULT	"/run/relayq/relayq.sock"
#define SUBMIT_TIMEOUT		300	/* seconds per read or write */
#define SUBMIT_ID_MAX		64
#define SUBMIT_REASON_MAX	600
#define SUBMIT_AUTH_MASK	"AUTH PLAIN ********"
#define SUBMIT_AUTH_MASK_XOAUTH2 "AUTH XOAUTH2 ********"

enum submit_result {
	SUBMIT_QUEUED,		/* the final 250 arrived */
	SUBMIT_REJECTED,	/* a 5xx reply */
	SUBMIT_TEMPFAIL		/* 4xx, lost connection, timeout, bad reply */
};

struct submit_params {
	const char		*helo;		/* EHLO name; NULL: host name */
	const char		*sender;	/* bare addresses, no brackets */
	const char		*rcpt;		/* one recipient, or: */
	const char *const	*rcpts;		/* nrcpt of them, if nrcpt > 0 */
	size_t			 nrcpt;
	const struct sasl_cred	*cred;		/* NULL: no AUTH (relayqd's
						   configured account) */
	const char		*msg;		/* the message, CRLF lines */
	size_t			 msglen;
	int			 timeout;	/* seconds; 0: wait forever */
	FILE			*transcript;	/* "C: "/"S: " lines */
};

struct submit_status {
	char	id[SUBMIT_ID_MAX];		/* queue ID; "" if none given */
	char	reason[SUBMIT_REASON_MAX];	/* why it failed, one line */
};

/*
 * Connect a stream socket to the Unix socket at path.  Returns the fd, or
 * -1 with errno (ENAMETOOLONG when path does not fit in sun_path).
 */
int	submit_connect(const char *path);
/*
 * Run the whole dialogue on fd (which the caller still owns and closes).
 * On SUBMIT_QUEUED st->id holds the queue ID from "queued as <ID>";
 * otherwise st->reason says why: the server's reply on one line, or what
 * happened to the connection.
 */
enum submit_result submit_run(int fd, const struct submit_params *,
	    struct submit_status *st);
/* The sysexits(3) code for a result: EX_OK, EX_DATAERR or EX_TEMPFAIL. */
int	submit_exit_status(enum submit_result);

#endif /* RELAYQ_SUBMIT_H */
