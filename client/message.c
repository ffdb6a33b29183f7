/*
 * message.c: the test message, built with common/mime from a fixed text
 * and the PNG compiled into the client.
 */
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "image.h"
#include "message.h"
#include "mime.h"

const char message_text[] =
    "Hello!\n"
    "\n"
    "This is a test message from relayq. It went from the relayq client\n"
    "to relayqd over a local socket, was written to the queue on disk,\n"
    "and was then relayed to you over TLS.\n"
    "\n"
    "The attached picture, relayq.png, shows that attachments arrive\n"
    "intact. Have a nice day \xe2\x98\x80\n";

/* The right-hand side of an address, or NULL when there is none. */
static const char *
message_domain(const char *addr)
{
	const char	*at;

	if ((at = strrchr(addr, '@')) == NULL || at[1] == '\0')
		return NULL;
	return at + 1;
}

/* Assemble the headers and the two parts and let mime_build write them. */
char *
message_build(const char *sender, const char *rcpt, time_t now, size_t *lenp)
{
	struct mime_header	 hdr;
	struct mime_part	 parts[2];

	memset(&hdr, 0, sizeof(hdr));
	hdr.from = sender;
	hdr.to = rcpt;
	hdr.subject = MESSAGE_SUBJECT;
	hdr.date = now;
	if ((hdr.msgid_domain = message_domain(sender)) == NULL)
		return NULL;

	memset(parts, 0, sizeof(parts));
	parts[0].content_type = "text/plain; charset=utf-8";
	parts[0].disposition = "inline";
	parts[0].data = message_text;
	parts[0].len = sizeof(message_text) - 1;
	parts[0].base64 = 0;
	parts[1].content_type = "image/png";
	parts[1].disposition = "attachment";
	parts[1].filename = MESSAGE_IMAGE_NAME;
	parts[1].data = image_png;
	parts[1].len = image_png_len;
	parts[1].base64 = 1;

	return mime_build(&hdr, parts, 2, lenp);
}
