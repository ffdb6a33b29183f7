/*
 * relay_policy.h: what a Gmail reply means for the message.  Keys on the
 * reply code and enhanced status code, never on the prose.
 */
#ifndef RELAYQ_RELAY_POLICY_H
#define RELAYQ_RELAY_POLICY_H

#include "relay.h"
#include "smtp_proto.h"

/* 2xx ok, 4xx temporary, 5xx permanent except Gmail's temporary 5xx. */
enum relay_result relay_policy_classify(const struct smtp_reply *);

#endif /* RELAYQ_RELAY_POLICY_H */
