/*
 * smtp_proto.c: the SMTP grammar shared by every relayq program.
 *
 * Three small parsers with no I/O: command lines for the submission server,
 * the multi-line reply accumulator for every client, and the EHLO keyword
 * parser.  Linked into the libc-only client, so no OpenSSL or libevent here.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp_proto.h"
#include "util.h"

#define SMTP_ENH_PART_MAX	3	/* digits in subject and detail */

static const struct {
	enum smtp_verb	 verb;
	const char	*name;
} smtp_verbs[] = {
	{ SMTP_VERB_HELO,	"HELO" },
	{ SMTP_VERB_EHLO,	"EHLO" },
	{ SMTP_VERB_MAIL,	"MAIL" },
	{ SMTP_VERB_RCPT,	"RCPT" },
	{ SMTP_VERB_DATA,	"DATA" },
	{ SMTP_VERB_RSET,	"RSET" },
	{ SMTP_VERB_NOOP,	"NOOP" },
	{ SMTP_VERB_QUIT,	"QUIT" },
	{ SMTP_VERB_AUTH,	"AUTH" },
	{ SMTP_VERB_ETRN,	"ETRN" },
	{ SMTP_VERB_VRFY,	"VRFY" },
	{ SMTP_VERB_HELP,	"HELP" },
	{ SMTP_VERB_STARTTLS,	"STARTTLS" },
	{ SMTP_VERB_BDAT,	"BDAT" }
};

static const struct {
	const char	*keyword;
	unsigned	 bit;
} smtp_exts[] = {
	{ "STARTTLS",		SMTP_EXT_STARTTLS },
	{ "PIPELINING",		SMTP_EXT_PIPELINING },
	{ "8BITMIME",		SMTP_EXT_8BITMIME },
	{ "SIZE",		SMTP_EXT_SIZE },
	{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCED },
	{ "AUTH",		SMTP_EXT_AUTH },
	{ "SMTPUTF8",		SMTP_EXT_SMTPUTF8 },
	{ "CHUNKING",		SMTP_EXT_CHUNKING }
};

static const struct {
	const char	*name;
	unsigned	 bit;
} smtp_mechs[] = {
	{ "PLAIN",	SMTP_AUTH_PLAIN },
	{ "LOGIN",	SMTP_AUTH_LOGIN },
	{ "XOAUTH2",	SMTP_AUTH_XOAUTH2 }
};

/* Case-insensitive compare of the n bytes at s with the whole of word. */
static bool
smtp_word_eq(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* Skip the path prefix ("FROM:" or "TO:") and any spaces after it. */
static int
smtp_cmd_path_arg(const char *arg, const char *prefix, const char **out)
{
	size_t	 n;

	n = strlen(prefix);
	if (strncasecmp(arg, prefix, n) != 0)
		return -1;
	arg += n;
	while (*arg == ' ')
		arg++;
	*out = arg;
	return 0;
}

/* Split a command line into its verb and argument. */
int
smtp_cmd_parse(const char *line, struct smtp_cmd *cmd)
{
	const char	*arg;
	size_t		 i, n;

	cmd->verb = SMTP_VERB_UNKNOWN;
	cmd->arg = "";
	n = strcspn(line, " ");
	for (i = 0; i < nitems(smtp_verbs); i++) {
		if (smtp_word_eq(line, n, smtp_verbs[i].name)) {
			cmd->verb = smtp_verbs[i].verb;
			break;
		}
	}
	if (cmd->verb == SMTP_VERB_UNKNOWN)
		return 0;
	arg = line + n;
	while (*arg == ' ')
		arg++;
	switch (cmd->verb) {
	case SMTP_VERB_MAIL:
		return smtp_cmd_path_arg(arg, "FROM:", &cmd->arg);
	case SMTP_VERB_RCPT:
		return smtp_cmd_path_arg(arg, "TO:", &cmd->arg);
	default:
		cmd->arg = arg;
		return 0;
	}
}

/* The verb's name for logs. */
const char *
smtp_verb_name(enum smtp_verb verb)
{
	size_t	 i;

	for (i = 0; i < nitems(smtp_verbs); i++) {
		if (smtp_verbs[i].verb == verb)
			return smtp_verbs[i].name;
	}
	return "UNKNOWN";
}

/* True for a byte allowed in an esmtp-keyword (RFC 5321 4.1.2). */
static bool
smtp_param_keychar(char c, bool first)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return !first && c == '-';
}

/* True for a byte allowed in an esmtp-value: CHAR except "=", SP, CTLs. */
static bool
smtp_param_valchar(char c)
{
	return c > ' ' && c < 0x7f && c != '=';
}

/*
 * Read the parameter at *p: its keyword span and value span (value NULL
 * for a bare keyword).  Advances *p past trailing spaces.  -1 if malformed.
 */
static int
smtp_param_next(const char **p, const char **key, size_t *keylen,
    const char **value, size_t *valuelen)
{
	const char	*s = *p;

	*key = s;
	while (smtp_param_keychar(*s, s == *key))
		s++;
	*keylen = (size_t)(s - *key);
	*value = NULL;
	*valuelen = 0;
	if (*keylen == 0)
		return -1;
	if (*s == '=') {
		*value = ++s;
		while (smtp_param_valchar(*s))
			s++;
		*valuelen = (size_t)(s - *value);
		if (*valuelen == 0)
			return -1;
	}
	if (*s != ' ' && *s != '\0')
		return -1;
	while (*s == ' ')
		s++;
	*p = s;
	return 0;
}

/* Find an ESMTP parameter by keyword and copy its value. */
int
smtp_param_get(const char *params, const char *key, char *val, size_t vallen)
{
	const char	*p, *k, *v;
	size_t		 kl, vl;
	int		 found = 0;

	if (vallen == 0)
		return -1;
	val[0] = '\0';
	for (p = params; *p == ' '; p++)
		;
	while (*p != '\0') {
		if (smtp_param_next(&p, &k, &kl, &v, &vl) == -1)
			return -1;
		if (found || !smtp_word_eq(k, kl, key))
			continue;
		if (vl >= vallen)
			return -1;
		if (v != NULL)
			memcpy(val, v, vl);
		val[vl] = '\0';
		found = 1;
	}
	return found;
}

/* True when params is well formed and uses only the known keywords. */
bool
smtp_params_known(const char *params, const char *const *known)
{
	const char		*p, *k, *v;
	const char *const	*kw;
	size_t			 kl, vl;

	for (p = params; *p == ' '; p++)
		;
	while (*p != '\0') {
		if (smtp_param_next(&p, &k, &kl, &v, &vl) == -1)
			return false;
		for (kw = known; *kw != NULL; kw++) {
			if (smtp_word_eq(k, kl, *kw))
				break;
		}
		if (*kw == NULL)
			return false;
	}
	return true;
}

/* Reset a reply accumulator. */
void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* Parse "NNN" at the start of line; -1 unless a valid RFC 5321 code. */
static int
smtp_reply_code(const char *line)
{
	if (line[0] < '2' || line[0] > '5' ||
	    line[1] < '0' || line[1] > '5' ||
	    line[2] < '0' || line[2] > '9')
		return -1;
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

/* Count up to max digits at s; 0 when there are none or too many. */
static size_t
smtp_reply_digits(const char *s, size_t len, size_t max)
{
	size_t	 n = 0;

	while (n < len && s[n] >= '0' && s[n] <= '9')
		n++;
	return n > max ? 0 : n;
}

/*
 * Copy the enhanced status code "c.sss.ddd" at the start of text into enh
 * when it is present, its class matches the reply class and it is followed
 * by a space or the end of the line.
 */
static void
smtp_reply_enh(struct smtp_reply *r, const char *text, size_t len)
{
	size_t	 i, n;

	if (len < 5 || text[0] - '0' != r->code / 100 ||
	    (text[0] != '2' && text[0] != '4' && text[0] != '5') ||
	    text[1] != '.')
		return;
	i = 2;
	if ((n = smtp_reply_digits(text + i, len - i, SMTP_ENH_PART_MAX)) == 0)
		return;
	i += n;
	if (i >= len || text[i] != '.')
		return;
	i++;
	if ((n = smtp_reply_digits(text + i, len - i, SMTP_ENH_PART_MAX)) == 0)
		return;
	i += n;
	if (i < len && text[i] != ' ')
		return;
	memcpy(r->enh, text, i);
	r->enh[i] = '\0';
}

/* Feed one reply line without its CRLF. */
enum smtp_reply_status
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
	const char	*text;
	size_t		 tlen, need;
	int		 code;
	bool		 last;

	if (len < 3 || len > SMTP_REPLY_LINE_MAX - 2 ||
	    memchr(line, '\0', len) != NULL)
		return SMTP_REPLY_ERROR;
	if ((code = smtp_reply_code(line)) == -1)
		return SMTP_REPLY_ERROR;
	if (len == 3)
		last = true;
	else if (line[3] == ' ' || line[3] == '-')
		last = line[3] == ' ';
	else
		return SMTP_REPLY_ERROR;
	if (r->nlines > 0 && code != r->code)
		return SMTP_REPLY_ERROR;
	text = len > 4 ? line + 4 : "";
	tlen = len > 4 ? len - 4 : 0;
	need = r->len + (r->nlines > 0 ? 1 : 0) + tlen;
	if (need > SMTP_REPLY_MAX - 1)
		return SMTP_REPLY_ERROR;
	if (r->nlines == 0) {
		r->code = code;
		smtp_reply_enh(r, text, tlen);
	} else
		r->text[r->len++] = '\n';
	memcpy(r->text + r->len, text, tlen);
	r->len += tlen;
	r->text[r->len] = '\0';
	r->nlines++;
	return last ? SMTP_REPLY_DONE : SMTP_REPLY_MORE;
}

/* The reply's class digit. */
int
smtp_reply_class(const struct smtp_reply *r)
{
	return r->code / 100;
}

/* Render the reply on one line for logs and envelopes. */
void
smtp_reply_oneline(const struct smtp_reply *r, char *buf, size_t len)
{
	size_t	 i, n;
	int	 w;

	if (len == 0)
		return;
	w = snprintf(buf, len, r->len > 0 ? "%03d " : "%03d", r->code);
	if (w < 0 || (size_t)w >= len)
		return;
	n = (size_t)w;
	for (i = 0; i < r->len && n < len - 1; i++, n++) {
		if (r->text[i] == '\n')
			buf[n] = ' ';
		else if ((unsigned char)r->text[i] < 0x20 ||
		    r->text[i] == 0x7f)
			buf[n] = '?';
		else
			buf[n] = r->text[i];
	}
	buf[n] = '\0';
}

/* Add the AUTH mechanisms listed in the n bytes at s. */
static void
smtp_ehlo_mechs(struct smtp_ehlo *e, const char *s, size_t n)
{
	size_t	 i, w;

	while (n > 0) {
		w = 0;
		while (w < n && s[w] != ' ')
			w++;
		for (i = 0; i < nitems(smtp_mechs); i++) {
			if (smtp_word_eq(s, w, smtp_mechs[i].name))
				e->auth |= smtp_mechs[i].bit;
		}
		while (w < n && s[w] == ' ')
			w++;
		s += w;
		n -= w;
	}
}

/* Record the SIZE value in the n bytes at s; 0 when absent or bad. */
static void
smtp_ehlo_size(struct smtp_ehlo *e, const char *s, size_t n)
{
	char			 num[32];
	unsigned long long	 v;

	e->size = 0;
	while (n > 0 && *s == ' ') {
		s++;
		n--;
	}
	if (n == 0 || n >= sizeof(num))
		return;
	memcpy(num, s, n);
	num[n] = '\0';
	if (parse_uint(num, 0, ~0ULL, &v) == 0)
		e->size = v;
}

/* Parse one EHLO keyword line of n bytes. */
static void
smtp_ehlo_line(struct smtp_ehlo *e, const char *s, size_t n)
{
	size_t	 i, kw;

	kw = 0;
	while (kw < n && s[kw] != ' ' && s[kw] != '=')
		kw++;
	for (i = 0; i < nitems(smtp_exts); i++) {
		if (smtp_word_eq(s, kw, smtp_exts[i].keyword))
			break;
	}
	if (i == nitems(smtp_exts))
		return;
	/* "AUTH=PLAIN LOGIN" is an old alias of AUTH; no other takes '='. */
	if (kw < n && s[kw] == '=' && smtp_exts[i].bit != SMTP_EXT_AUTH)
		return;
	e->ext |= smtp_exts[i].bit;
	if (kw < n)
		kw++;
	if (smtp_exts[i].bit == SMTP_EXT_AUTH)
		smtp_ehlo_mechs(e, s + kw, n - kw);
	else if (smtp_exts[i].bit == SMTP_EXT_SIZE)
		smtp_ehlo_size(e, s + kw, n - kw);
}

/* Parse a 250 EHLO reply into extension and mechanism bits. */
void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e)
{
	const char	*p, *end, *nl;

	memset(e, 0, sizeof(*e));
	if (r->code != 250)
		return;
	p = memchr(r->text, '\n', r->len);
	end = r->text + r->len;
	while (p != NULL && p < end) {
		p++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		smtp_ehlo_line(e, p, (size_t)(nl - p));
		p = nl;
	}
}
