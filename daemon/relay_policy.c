/*
 * relay_policy.c: what a relay server's reply calls for.
 *
 * RFC 5321 4.2.1 classes: 2yz done, 4yz transient, 5yz permanent.  Gmail
 * gives some replies a meaning beyond their class (reference/gmail-smtp.md
 * section 12): a bad password (535 5.7.8), a second factor or a web login
 * wanted (534 5.7.9, 534 5.7.14) or no TLS/AUTH (530 5.7.0) condemn every
 * message sent with those credentials; the daily quota (550 5.4.5) is a
 * 5yz that clears by itself and pauses the whole account; too many logins
 * (454 4.7.0 to AUTH) wants the account to wait; 421 of any kind closes
 * the connection; 451 4.4.2 is an idle timeout, not the message's fault;
 * 452 4.5.3 asks for fewer recipients per transaction; a 5yz to one RCPT
 * concerns that recipient only.  Only the reply code, the enhanced status
 * code and the step are consulted, never the prose, which Google rewords
 * from time to time.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "relay_policy.h"
#include "util.h"

/* Replies whose meaning does not depend on the step. */
static const struct {
	int			 code;
	const char		*enh;
	enum relay_reaction	 reaction;
} relay_policy_table[] = {
	{ 535, "5.7.8",  RELAY_REACT_CREDENTIALS },	/* BadCredentials */
	{ 535, "5.7.1",  RELAY_REACT_CREDENTIALS },	/* legacy forms */
	{ 534, "5.7.9",  RELAY_REACT_CREDENTIALS },	/* app password */
	{ 534, "5.7.14", RELAY_REACT_CREDENTIALS },	/* web login */
	{ 530, "5.7.0",  RELAY_REACT_CREDENTIALS },	/* STARTTLS/AUTH */
	{ 550, "5.4.5",  RELAY_REACT_QUOTA },		/* daily limit */
	{ 451, "4.4.2",  RELAY_REACT_RESEND },		/* idle timeout */
};

/* The table's reaction for reply, or -1. */
static int
relay_policy_lookup(const struct smtp_reply *reply)
{
	size_t	 i;

	for (i = 0; i < nitems(relay_policy_table); i++) {
		if (reply->code == relay_policy_table[i].code &&
		    strcmp(reply->enh, relay_policy_table[i].enh) == 0)
			return (int)relay_policy_table[i].reaction;
	}
	return -1;
}

/* A 4yz: what the step and the code make of it. */
static enum relay_reaction
relay_policy_temp(enum relay_stage stage, const struct smtp_reply *reply)
{
	if (reply->code == 421)
		return RELAY_REACT_RECONNECT;
	if (stage == RELAY_STAGE_AUTH && reply->code == 454 &&
	    strcmp(reply->enh, "4.7.0") == 0)
		return RELAY_REACT_AUTH_BACKOFF;
	if (stage == RELAY_STAGE_RCPT && reply->code == 452 &&
	    strcmp(reply->enh, "4.5.3") == 0)
		return RELAY_REACT_SPLIT;
	return RELAY_REACT_RETRY;
}

/* The reaction a whole reply to stage calls for. */
enum relay_reaction
relay_policy_react(enum relay_stage stage, const struct smtp_reply *reply)
{
	int	 r;

	if (reply == NULL || reply->code < 200 || reply->code > 599 ||
	    reply->nlines == 0)
		return RELAY_REACT_RETRY;
	if ((r = relay_policy_lookup(reply)) != -1)
		return (enum relay_reaction)r;
	switch (reply->code / 100) {
	case 2:
		return RELAY_REACT_DELIVERED;
	case 4:
		return relay_policy_temp(stage, reply);
	case 5:
		/* 552 is the message's size whatever step says it. */
		if (stage == RELAY_STAGE_RCPT && reply->code != 552)
			return RELAY_REACT_RCPT_FAIL;
		return RELAY_REACT_MSG_FAIL;
	default:
		/* 3yz where a final answer was due. */
		return RELAY_REACT_RETRY;
	}
}

/* OK, TEMPFAIL or PERMFAIL for a reaction. */
enum relay_result
relay_policy_result(enum relay_reaction reaction)
{
	switch (reaction) {
	case RELAY_REACT_DELIVERED:
		return RELAY_OK;
	case RELAY_REACT_CREDENTIALS:
	case RELAY_REACT_RCPT_FAIL:
	case RELAY_REACT_MSG_FAIL:
		return RELAY_PERMFAIL;
	default:
		return RELAY_TEMPFAIL;
	}
}

/* The reaction's name, for logs and tests. */
const char *
relay_policy_name(enum relay_reaction reaction)
{
	static const char *const names[] = {
		[RELAY_REACT_DELIVERED] = "delivered",
		[RELAY_REACT_RETRY] = "retry",
		[RELAY_REACT_RECONNECT] = "reconnect",
		[RELAY_REACT_RESEND] = "resend",
		[RELAY_REACT_AUTH_BACKOFF] = "auth-backoff",
		[RELAY_REACT_CREDENTIALS] = "credentials",
		[RELAY_REACT_QUOTA] = "quota",
		[RELAY_REACT_SPLIT] = "split",
		[RELAY_REACT_RCPT_FAIL] = "rcpt-fail",
		[RELAY_REACT_MSG_FAIL] = "msg-fail",
	};

	if ((size_t)reaction >= nitems(names))
		return "unknown";
	return names[reaction];
}

/* Map a whole reply, at any step but RCPT, to OK, TEMPFAIL or PERMFAIL. */
enum relay_result
relay_policy_classify(const struct smtp_reply *reply)
{
	return relay_policy_result(relay_policy_react(RELAY_STAGE_MAIL,
	    reply));
}
