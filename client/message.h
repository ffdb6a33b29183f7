/*
 * message.h: the hardcoded test message relayq submits: a short UTF-8
 * text part and the embedded PNG as a base64 attachment.
 */
#ifndef RELAYQ_MESSAGE_H
#define RELAYQ_MESSAGE_H

#include <stddef.h>
#include <time.h>

#define MESSAGE_SUBJECT		"relayq test message"
#define MESSAGE_IMAGE_NAME	"relayq.png"

/* The text part's body, LF line endings (mime_build makes them CRLF). */
extern const char	message_text[];

/*
 * Build the message from sender to rcpt, dated now, with a Message-ID in
 * the sender's domain.  Returns a malloc'd buffer (not NUL terminated,
 * CRLF line endings) and sets *lenp, or NULL if an address has no domain
 * or the builder fails.
 */
char	*message_build(const char *sender, const char *rcpt, time_t now,
	    size_t *lenp);

#endif /* RELAYQ_MESSAGE_H */
