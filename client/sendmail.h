/*
 * sendmail.h: relayq as sendmail(8) and mailq(1): a message on standard
 * input submitted without AUTH (relayqd uses its configured account),
 * with the options programs such as cron, mdadm and mail(1) use.  Exit
 * codes follow sysexits(3).
 */
#ifndef RELAYQ_SENDMAIL_H
#define RELAYQ_SENDMAIL_H

struct sendmail_where {
	const char	*socket;	/* relayqd's socket */
	const char	*queue_dir;	/* for -bp */
	const char	*account;	/* relayqd's account, or "" if unknown */
};

/* Run the sendmail command line argv (argv[0] is not looked at). */
int	sendmail_main(int argc, char **argv, const struct sendmail_where *);
/*
 * Submit an already prepared message (CRLF lines) without AUTH from
 * sender to the nrcpt recipients; verbose shows the transcript on
 * stderr.  Prints nothing else on success.
 */
int	sendmail_submit(const struct sendmail_where *, const char *sender,
	    const char *const *rcpt, size_t nrcpt, const char *msg,
	    size_t msglen, int verbose);

#endif /* RELAYQ_SENDMAIL_H */
