/*
 * relay_policy.h: what a Gmail reply means for the message, the
 * recipient and the account.  Keys on the reply code, the enhanced
 * status code and the step it answered, never on the prose.
 */
#ifndef RELAYQ_RELAY_POLICY_H
#define RELAYQ_RELAY_POLICY_H

#include "relay.h"
#include "smtp_proto.h"

/* The step a reply answered. */
enum relay_stage {
	RELAY_STAGE_CONNECT,	/* banner, EHLO, STARTTLS */
	RELAY_STAGE_AUTH,
	RELAY_STAGE_MAIL,
	RELAY_STAGE_RCPT,
	RELAY_STAGE_DATA,	/* DATA, and a reply while the body streams */
	RELAY_STAGE_EOM		/* the reply to the final dot */
};

/* The reaction a whole reply to stage calls for. */
enum relay_reaction relay_policy_react(enum relay_stage,
		    const struct smtp_reply *);
/* OK, TEMPFAIL or PERMFAIL for a reaction. */
enum relay_result relay_policy_result(enum relay_reaction);
/* "retry", "credentials" ...: for logs and tests. */
const char	*relay_policy_name(enum relay_reaction);
/* 2xx ok, 4xx temporary, 5xx permanent except Gmail's temporary 5xx. */
enum relay_result relay_policy_classify(const struct smtp_reply *);

#endif /* RELAYQ_RELAY_POLICY_H */
