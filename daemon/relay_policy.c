/*
 * relay_policy.c: what a relay server's reply means for the message.
 *
 * RFC 5321 4.2.1 classes: 2yz done, 4yz transient, 5yz permanent.  Gmail
 * uses a few 5yz replies for conditions that clear by themselves (the
 * daily sending quota, reference/gmail-smtp.md section 12); those defer
 * the message instead of failing it.  Only the reply code and the
 * enhanced status code are consulted, never the prose, which Google
 * rewords from time to time.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "relay_policy.h"
#include "util.h"

/* Gmail's 5yz replies that mean "try again later". */
static const struct {
	int		 code;
	const char	*enh;
} relay_policy_temp5xx[] = {
	{ 550, "5.4.5" },	/* daily user sending limit/quota exceeded */
};

/* True when a 5yz reply is one of Gmail's temporary conditions. */
static bool
relay_policy_is_temp5xx(const struct smtp_reply *reply)
{
	size_t	 i;

	for (i = 0; i < nitems(relay_policy_temp5xx); i++) {
		if (reply->code == relay_policy_temp5xx[i].code &&
		    strcmp(reply->enh, relay_policy_temp5xx[i].enh) == 0)
			return true;
	}
	return false;
}

/* Map a whole reply to OK, TEMPFAIL or PERMFAIL. */
enum relay_result
relay_policy_classify(const struct smtp_reply *reply)
{
	if (reply == NULL || reply->code < 200 || reply->code > 599 ||
	    reply->nlines == 0)
		return RELAY_TEMPFAIL;
	switch (reply->code / 100) {
	case 2:
		return RELAY_OK;
	case 5:
		if (relay_policy_is_temp5xx(reply))
			return RELAY_TEMPFAIL;
		return RELAY_PERMFAIL;
	default:
		/* 3yz where a final answer was due, and 4yz. */
		return RELAY_TEMPFAIL;
	}
}
