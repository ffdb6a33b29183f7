/*
 * envelope.c: the queue entry's envelope as readable "key: value" text.
 *
 * The format is described in envelope.h.  envelope_dump writes the keys in
 * the documented order and refuses values that could not be read back;
 * envelope_load accepts exactly what dump writes (plus an empty value
 * written as "key:") and names the file, line and key of anything else.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envelope.h"
#include "util.h"

/* The longest line: a key, ": ", the longest value and the LF. */
#define ENVELOPE_LINE_MAX	(32 + ENVELOPE_REPLY_MAX)
#define ENVELOPE_TIME_MAX	(sizeof(time_t) >= 8 ?			\
				    (unsigned long long)INT64_MAX :	\
				    (unsigned long long)INT32_MAX)
#define ENVELOPE_UID_MAX	((unsigned long long)UINT32_MAX - 1)

enum envelope_key {
	ENVELOPE_KEY_VERSION,
	ENVELOPE_KEY_ID,
	ENVELOPE_KEY_SENDER,
	ENVELOPE_KEY_RCPT,
	ENVELOPE_KEY_SUBMITTED,
	ENVELOPE_KEY_UID,
	ENVELOPE_KEY_ATTEMPTS,
	ENVELOPE_KEY_NEXT_ATTEMPT,
	ENVELOPE_KEY_STATE,
	ENVELOPE_KEY_LAST_REPLY,
	ENVELOPE_KEY_UNCERTAIN,		/* optional */
	ENVELOPE_KEY_ACCOUNT,		/* optional */
	ENVELOPE_KEY_RCPT_REPLY,	/* optional, repeated */
	ENVELOPE_KEY_COUNT
};

static const char *envelope_parse_version(struct envelope *, const char *);
static const char *envelope_parse_id(struct envelope *, const char *);
static const char *envelope_parse_sender(struct envelope *, const char *);
static const char *envelope_parse_rcpt(struct envelope *, const char *);
static const char *envelope_parse_submitted(struct envelope *, const char *);
static const char *envelope_parse_uid(struct envelope *, const char *);
static const char *envelope_parse_attempts(struct envelope *, const char *);
static const char *envelope_parse_next(struct envelope *, const char *);
static const char *envelope_parse_state(struct envelope *, const char *);
static const char *envelope_parse_reply(struct envelope *, const char *);
static const char *envelope_parse_uncertain(struct envelope *, const char *);
static const char *envelope_parse_account(struct envelope *, const char *);
static const char *envelope_parse_rcpt_reply(struct envelope *, const char *);

/*
 * Indexed by enum envelope_key, in the order dump writes.  parse stores
 * one value and returns NULL, or the error message.
 */
static const struct {
	const char	*name;
	const char	*(*parse)(struct envelope *, const char *);
} envelope_keys[ENVELOPE_KEY_COUNT] = {
	{ "version",		envelope_parse_version },
	{ "id",			envelope_parse_id },
	{ "sender",		envelope_parse_sender },
	{ "rcpt",		envelope_parse_rcpt },
	{ "submitted",		envelope_parse_submitted },
	{ "uid",		envelope_parse_uid },
	{ "attempts",		envelope_parse_attempts },
	{ "next-attempt",	envelope_parse_next },
	{ "state",		envelope_parse_state },
	{ "last-reply",		envelope_parse_reply },
	{ "uncertain-since",	envelope_parse_uncertain },
	{ "account",		envelope_parse_account },
	{ "rcpt-reply",		envelope_parse_rcpt_reply }
};

static const char *const envelope_states[] = {
	[ENVELOPE_QUEUED] = "queued",
	[ENVELOPE_FAILED] = "failed",
	[ENVELOPE_UNCERTAIN] = "uncertain"
};

/* Set up an empty envelope. */
void
envelope_init(struct envelope *env)
{
	memset(env, 0, sizeof(*env));
	env->state = ENVELOPE_QUEUED;
}

/* Free the recipient list. */
void
envelope_fini(struct envelope *env)
{
	size_t	 i;

	for (i = 0; i < env->nrcpt; i++) {
		free(env->rcpt[i]);
		if (env->rcpt_reply != NULL)
			free(env->rcpt_reply[i]);
	}
	free(env->rcpt);
	free(env->rcpt_reply);
	env->rcpt = NULL;
	env->rcpt_reply = NULL;
	env->nrcpt = 0;
}

/* Append a copy of rcpt to the recipient list. */
void
envelope_add_rcpt(struct envelope *env, const char *rcpt)
{
	env->rcpt = xreallocarray(env->rcpt, env->nrcpt + 1,
	    sizeof(*env->rcpt));
	if (env->rcpt_reply != NULL) {
		env->rcpt_reply = xreallocarray(env->rcpt_reply,
		    env->nrcpt + 1, sizeof(*env->rcpt_reply));
		env->rcpt_reply[env->nrcpt] = NULL;
	}
	env->rcpt[env->nrcpt++] = xstrdup(rcpt);
}

/* Record the reply that settled recipient i (a copy). */
void
envelope_set_rcpt_reply(struct envelope *env, size_t i, const char *reply)
{
	if (i >= env->nrcpt)
		return;
	if (env->rcpt_reply == NULL)
		env->rcpt_reply = xcalloc(env->nrcpt,
		    sizeof(*env->rcpt_reply));
	free(env->rcpt_reply[i]);
	env->rcpt_reply[i] = xstrdup(reply);
}

/* The reply that settled recipient i, or NULL. */
const char *
envelope_rcpt_reply(const struct envelope *env, size_t i)
{
	if (env->rcpt_reply == NULL || i >= env->nrcpt)
		return NULL;
	return env->rcpt_reply[i];
}

/* The state's name as written in the file. */
const char *
envelope_state_name(enum envelope_state state)
{
	if ((size_t)state >= nitems(envelope_states))
		return "unknown";
	return envelope_states[state];
}

/* True when s has no control byte (C0 or DEL), so it fits on one line. */
static bool
envelope_text_ok(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	}
	return true;
}

/*
 * True for a usable queue ID: it names a directory, so it is non-empty,
 * made of letters, digits, '.', '-' and '_', and does not start with '.'.
 */
static bool
envelope_id_ok(const char *id)
{
	const char	*p;

	if (id[0] == '\0' || id[0] == '.' || strlen(id) >= ENVELOPE_ID_MAX)
		return false;
	for (p = id; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
		    *p == '_')
			continue;
		return false;
	}
	return true;
}

/* True when the envelope would load back as written. */
static bool
envelope_dumpable(const struct envelope *env)
{
	size_t	 i;

	if (!envelope_id_ok(env->id) || !envelope_text_ok(env->sender) ||
	    !envelope_text_ok(env->last_reply) ||
	    (env->account[0] != '\0' && !mailaddr_valid(env->account)) ||
	    env->nrcpt == 0 || env->nrcpt > ENVELOPE_RCPT_MAX ||
	    env->submitted < 0 || env->next_attempt < 0 ||
	    env->uncertain_since < 0 ||
	    env->uid == (uid_t)-1 ||
	    (size_t)env->state >= nitems(envelope_states))
		return false;
	for (i = 0; i < env->nrcpt; i++) {
		if (env->rcpt[i][0] == '\0' ||
		    strlen(env->rcpt[i]) >= MAILADDR_MAX ||
		    !envelope_text_ok(env->rcpt[i]))
			return false;
		if (envelope_rcpt_reply(env, i) != NULL &&
		    (!envelope_text_ok(env->rcpt_reply[i]) ||
		    strlen(env->rcpt_reply[i]) >= ENVELOPE_REPLY_MAX))
			return false;
	}
	return true;
}

/* Write "key: value", or "key:" when the value is empty. */
static void
envelope_put(FILE *fp, enum envelope_key key, const char *value)
{
	if (value[0] == '\0')
		fprintf(fp, "%s:\n", envelope_keys[key].name);
	else
		fprintf(fp, "%s: %s\n", envelope_keys[key].name, value);
}

/* Write a numeric "key: value" line. */
static void
envelope_put_num(FILE *fp, enum envelope_key key, unsigned long long value)
{
	fprintf(fp, "%s: %llu\n", envelope_keys[key].name, value);
}

/* Write the text form of env to fp, keys in the documented order. */
int
envelope_dump(const struct envelope *env, FILE *fp)
{
	size_t	 i;

	if (!envelope_dumpable(env)) {
		errno = EINVAL;
		return -1;
	}
	envelope_put_num(fp, ENVELOPE_KEY_VERSION, ENVELOPE_VERSION);
	envelope_put(fp, ENVELOPE_KEY_ID, env->id);
	envelope_put(fp, ENVELOPE_KEY_SENDER, env->sender);
	for (i = 0; i < env->nrcpt; i++)
		envelope_put(fp, ENVELOPE_KEY_RCPT, env->rcpt[i]);
	envelope_put_num(fp, ENVELOPE_KEY_SUBMITTED,
	    (unsigned long long)env->submitted);
	envelope_put_num(fp, ENVELOPE_KEY_UID, (unsigned long long)env->uid);
	envelope_put_num(fp, ENVELOPE_KEY_ATTEMPTS, env->attempts);
	envelope_put_num(fp, ENVELOPE_KEY_NEXT_ATTEMPT,
	    (unsigned long long)env->next_attempt);
	envelope_put(fp, ENVELOPE_KEY_STATE, envelope_state_name(env->state));
	envelope_put(fp, ENVELOPE_KEY_LAST_REPLY, env->last_reply);
	if (env->state == ENVELOPE_UNCERTAIN)
		envelope_put_num(fp, ENVELOPE_KEY_UNCERTAIN,
		    (unsigned long long)env->uncertain_since);
	if (env->account[0] != '\0')
		envelope_put(fp, ENVELOPE_KEY_ACCOUNT, env->account);
	for (i = 0; i < env->nrcpt; i++)
		if (envelope_rcpt_reply(env, i) != NULL)
			fprintf(fp, "%s: %s %s\n",
			    envelope_keys[ENVELOPE_KEY_RCPT_REPLY].name,
			    env->rcpt[i], env->rcpt_reply[i]);
	if (fflush(fp) == EOF || ferror(fp))
		return -1;
	return 0;
}

/* Parse a decimal in [0, max]; NULL or the message. */
static const char *
envelope_number(const char *value, unsigned long long max,
    unsigned long long *out)
{
	if (parse_uint(value, 0, max, out) == -1)
		return errno == ERANGE ? "number out of range" : "bad number";
	return NULL;
}

/* "version: 1". */
static const char *
envelope_parse_version(struct envelope *env, const char *value)
{
	unsigned long long	 v;
	const char		*msg;

	UNUSED(env);
	if ((msg = envelope_number(value, ~0ULL, &v)) != NULL)
		return msg;
	if (v != ENVELOPE_VERSION)
		return "unsupported version";
	return NULL;
}

/* "id: <queue ID>". */
static const char *
envelope_parse_id(struct envelope *env, const char *value)
{
	if (!envelope_id_ok(value))
		return "bad queue ID";
	str_copy(env->id, value, sizeof(env->id));
	return NULL;
}

/* "sender: <address>", empty for the null sender. */
static const char *
envelope_parse_sender(struct envelope *env, const char *value)
{
	if (str_copy(env->sender, value, sizeof(env->sender)) == -1)
		return "value too long";
	return NULL;
}

/* "rcpt: <address>", repeated once per recipient. */
static const char *
envelope_parse_rcpt(struct envelope *env, const char *value)
{
	if (value[0] == '\0')
		return "empty recipient";
	if (strlen(value) >= MAILADDR_MAX)
		return "value too long";
	if (env->nrcpt >= ENVELOPE_RCPT_MAX)
		return "too many recipients";
	envelope_add_rcpt(env, value);
	return NULL;
}

/* "submitted: <Unix seconds>". */
static const char *
envelope_parse_submitted(struct envelope *env, const char *value)
{
	unsigned long long	 v;
	const char		*msg;

	if ((msg = envelope_number(value, ENVELOPE_TIME_MAX, &v)) != NULL)
		return msg;
	env->submitted = (time_t)v;
	return NULL;
}

/* "uid: <submitting uid>". */
static const char *
envelope_parse_uid(struct envelope *env, const char *value)
{
	unsigned long long	 v;
	const char		*msg;

	if ((msg = envelope_number(value, ENVELOPE_UID_MAX, &v)) != NULL)
		return msg;
	env->uid = (uid_t)v;
	return NULL;
}

/* "attempts: <count>". */
static const char *
envelope_parse_attempts(struct envelope *env, const char *value)
{
	unsigned long long	 v;
	const char		*msg;

	if ((msg = envelope_number(value, UINT32_MAX, &v)) != NULL)
		return msg;
	env->attempts = (unsigned)v;
	return NULL;
}

/* "next-attempt: <Unix seconds>". */
static const char *
envelope_parse_next(struct envelope *env, const char *value)
{
	unsigned long long	 v;
	const char		*msg;

	if ((msg = envelope_number(value, ENVELOPE_TIME_MAX, &v)) != NULL)
		return msg;
	env->next_attempt = (time_t)v;
	return NULL;
}

/* "state: queued" or "state: failed". */
static const char *
envelope_parse_state(struct envelope *env, const char *value)
{
	size_t	 i;

	for (i = 0; i < nitems(envelope_states); i++) {
		if (strcmp(value, envelope_states[i]) == 0) {
			env->state = (enum envelope_state)i;
			return NULL;
		}
	}
	return "unknown state";
}

/* "last-reply: <one-line reply>", possibly empty. */
static const char *
envelope_parse_reply(struct envelope *env, const char *value)
{
	if (str_copy(env->last_reply, value, sizeof(env->last_reply)) == -1)
		return "value too long";
	return NULL;
}

/* "uncertain-since: <Unix seconds>", only with state uncertain. */
static const char *
envelope_parse_uncertain(struct envelope *env, const char *value)
{
	unsigned long long	 v;
	const char		*msg;

	if ((msg = envelope_number(value, ENVELOPE_TIME_MAX, &v)) != NULL)
		return msg;
	env->uncertain_since = (time_t)v;
	return NULL;
}

/* "account: <address>": relayed as the configured account. */
static const char *
envelope_parse_account(struct envelope *env, const char *value)
{
	if (!mailaddr_valid(value))
		return "bad account address";
	str_copy(env->account, value, sizeof(env->account));
	return NULL;
}

/*
 * "rcpt-reply: <address> <reply>": the address must be a recipient
 * listed before and not settled yet (an address may hold spaces when
 * quoted: the line is matched against each recipient).
 */
static const char *
envelope_parse_rcpt_reply(struct envelope *env, const char *value)
{
	const char	*reply;
	size_t		 i, n;

	for (i = 0; i < env->nrcpt; i++) {
		n = strlen(env->rcpt[i]);
		if (strncmp(value, env->rcpt[i], n) == 0 && value[n] == ' ' &&
		    value[n + 1] != '\0' && envelope_rcpt_reply(env, i) == NULL)
			break;
	}
	if (i == env->nrcpt)
		return "not a pending recipient";
	reply = value + strlen(env->rcpt[i]) + 1;
	if (strlen(reply) >= ENVELOPE_REPLY_MAX)
		return "value too long";
	envelope_set_rcpt_reply(env, i, reply);
	return NULL;
}

/* Format "name:line: key: message" into err, control bytes in key masked. */
static void
envelope_error(char *err, size_t errlen, const char *name, size_t line,
    const char *key, const char *msg)
{
	char	 safe[40];
	size_t	 i;

	for (i = 0; key[i] != '\0' && i < sizeof(safe) - 1; i++) {
		if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
			safe[i] = '?';
		else
			safe[i] = key[i];
	}
	safe[i] = '\0';
	if (errlen > 0)
		snprintf(err, errlen, "%s:%zu: %s: %s", name, line, safe, msg);
}

/*
 * Split one line (its LF already removed) into key and value in place and
 * apply it.  seen counts the keys met so far.  NULL or the message; *key
 * points at the key for the caller's error.
 */
static const char *
envelope_line(struct envelope *env, char *line, size_t lineno,
    unsigned seen[ENVELOPE_KEY_COUNT], const char **key)
{
	char	*colon, *value;
	size_t	 k;

	*key = line[0] == '\0' ? "-" : line;
	if ((colon = strchr(line, ':')) == NULL)
		return "missing \": \"";
	*colon = '\0';
	if (colon[1] == ' ')
		value = colon + 2;
	else if (colon[1] == '\0')
		value = colon + 1;
	else
		return "missing \": \"";
	for (k = 0; k < ENVELOPE_KEY_COUNT; k++) {
		if (strcmp(line, envelope_keys[k].name) == 0)
			break;
	}
	if (k == ENVELOPE_KEY_COUNT)
		return "unknown key";
	if (lineno == 1 && k != ENVELOPE_KEY_VERSION)
		return "\"version: 1\" must come first";
	if (seen[k] > 0 && k != ENVELOPE_KEY_RCPT &&
	    k != ENVELOPE_KEY_RCPT_REPLY)
		return "duplicate key";
	seen[k]++;
	if (!envelope_text_ok(value))
		return "control character in value";
	return envelope_keys[k].parse(env, value);
}

/* Name the first required key that never appeared, or NULL. */
static const char *
envelope_missing(const unsigned seen[ENVELOPE_KEY_COUNT])
{
	size_t	 k;

	for (k = 0; k < ENVELOPE_KEY_COUNT; k++) {
		if (seen[k] == 0 && k != ENVELOPE_KEY_UNCERTAIN &&
		    k != ENVELOPE_KEY_ACCOUNT &&
		    k != ENVELOPE_KEY_RCPT_REPLY)
			return envelope_keys[k].name;
	}
	return NULL;
}

/*
 * Parse the text form from fp into env, which need not be initialised.
 * On error env is left empty (initialised, no recipients) and err holds
 * "name:line: key: message".
 */
int
envelope_load(struct envelope *env, FILE *fp, const char *name, char *err,
    size_t errlen)
{
	unsigned	 seen[ENVELOPE_KEY_COUNT] = { 0 };
	char		*line = NULL;
	const char	*key = "-", *msg = NULL;
	size_t		 cap = 0, lineno = 0;
	ssize_t		 n;

	envelope_init(env);
	while (msg == NULL && (n = getline(&line, &cap, fp)) != -1) {
		lineno++;
		key = "-";
		if ((size_t)n > ENVELOPE_LINE_MAX)
			msg = "line too long";
		else if (line[n - 1] != '\n')
			msg = "line not terminated by a newline";
		else if (memchr(line, '\0', (size_t)n) != NULL)
			msg = "NUL byte in line";
		else {
			line[n - 1] = '\0';
			msg = envelope_line(env, line, lineno, seen, &key);
		}
	}
	if (msg == NULL && ferror(fp))
		msg = "read error";
	if (msg == NULL && (key = envelope_missing(seen)) != NULL)
		msg = "missing key";
	if (msg != NULL)
		envelope_error(err, errlen, name, lineno, key, msg);
	free(line);
	if (msg != NULL) {
		envelope_fini(env);
		envelope_init(env);
		return -1;
	}
	return 0;
}
