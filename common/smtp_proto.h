/*
 * smtp_proto.h: the SMTP grammar shared by the server, the relay, the
 * client and the stand-in: command lines, replies, EHLO keywords.
 */
#ifndef RELAYQ_SMTP_PROTO_H
#define RELAYQ_SMTP_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_CMD_MAX		512	/* command line incl. CRLF */
#define SMTP_TEXT_MAX		1000	/* DATA text line incl. CRLF */
#define SMTP_REPLY_LINE_MAX	512	/* one reply line incl. CRLF */
#define SMTP_REPLY_MAX		4096	/* a whole reply, all lines */

/* ---- Command lines (server side) ---- */

enum smtp_verb {
	SMTP_VERB_UNKNOWN,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_AUTH,
	SMTP_VERB_ETRN,
	SMTP_VERB_VRFY,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_BDAT
};

struct smtp_cmd {
	enum smtp_verb	 verb;
	const char	*arg;	/* after the verb and one or more spaces; "" if none */
};

/*
 * Split a command line (CRLF already removed, NUL-terminated) into a verb
 * (case-insensitive) and its argument.  For MAIL and RCPT the argument is
 * what follows "FROM:" / "TO:" (case-insensitive, spaces after the colon
 * allowed); a MAIL/RCPT without that prefix yields -1.  Unknown verbs give
 * SMTP_VERB_UNKNOWN and 0.  Returns 0, or -1 on a syntax error.
 */
int	smtp_cmd_parse(const char *line, struct smtp_cmd *);
/* The verb's name for logs ("MAIL"). */
const char *smtp_verb_name(enum smtp_verb);

/*
 * ESMTP parameters after a path: "SIZE=123 BODY=8BITMIME".  Finds key
 * (case-insensitive) and copies its value into val.  Returns 1 if found
 * (val may be "" for a bare keyword), 0 if absent, -1 if the parameter
 * string is malformed or the value does not fit.
 */
int	smtp_param_get(const char *params, const char *key, char *val,
	    size_t vallen);
/* True when every keyword in params is one of the NULL-terminated list. */
bool	smtp_params_known(const char *params, const char *const *known);

/* ---- Replies (client side) ---- */

enum smtp_reply_status {
	SMTP_REPLY_MORE,	/* a continuation line was consumed */
	SMTP_REPLY_DONE,	/* the last line arrived; the reply is whole */
	SMTP_REPLY_ERROR	/* malformed, mixed codes, or too long */
};

struct smtp_reply {
	int	 code;			/* 100..599 */
	char	 enh[16];		/* "5.7.8", or "" when absent */
	size_t	 nlines;
	size_t	 len;			/* of text */
	/*
	 * Every line's text after "NNN-"/"NNN " (the enhanced code kept),
	 * joined with '\n'.  NUL-terminated.
	 */
	char	 text[SMTP_REPLY_MAX];
};

void	smtp_reply_init(struct smtp_reply *);
/*
 * Feed one reply line without its CRLF (len bytes, need not be NUL
 * terminated).  After DONE or ERROR, call smtp_reply_init before reuse.
 */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *, const char *line,
	    size_t len);
/* The class digit: 2, 3, 4 or 5. */
int	smtp_reply_class(const struct smtp_reply *);
/*
 * One-line form for logs and envelopes: "535 5.7.8 Username and Password
 * not accepted. ... https://..." with lines joined by single spaces,
 * control bytes replaced by '?'.
 */
void	smtp_reply_oneline(const struct smtp_reply *, char *buf, size_t len);

/* ---- EHLO extensions ---- */

enum smtp_ext {
	SMTP_EXT_STARTTLS	= 1 << 0,
	SMTP_EXT_PIPELINING	= 1 << 1,
	SMTP_EXT_8BITMIME	= 1 << 2,
	SMTP_EXT_SIZE		= 1 << 3,
	SMTP_EXT_ENHANCED	= 1 << 4,
	SMTP_EXT_AUTH		= 1 << 5,
	SMTP_EXT_SMTPUTF8	= 1 << 6,
	SMTP_EXT_CHUNKING	= 1 << 7
};

enum smtp_auth_mech {
	SMTP_AUTH_PLAIN		= 1 << 0,
	SMTP_AUTH_LOGIN		= 1 << 1,
	SMTP_AUTH_XOAUTH2	= 1 << 2
};

struct smtp_ehlo {
	unsigned		 ext;	/* enum smtp_ext bits */
	unsigned		 auth;	/* enum smtp_auth_mech bits */
	unsigned long long	 size;	/* SIZE value, 0 if absent or none */
};

/*
 * Parse a 250 EHLO reply: the first line is the greeting, each further
 * line one keyword with parameters (case-insensitive).  "AUTH=PLAIN" lines
 * are honoured as AUTH.  Unknown keywords are ignored.
 */
void	smtp_ehlo_parse(const struct smtp_reply *, struct smtp_ehlo *);

#endif /* RELAYQ_SMTP_PROTO_H */
