/*
 * fuzz_smtp_reply.c: libFuzzer harness for the reply accumulator and the
 * EHLO keyword parser, fed the input split at LF as the relay splits
 * what a server sends.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Check what a whole reply may look like, then use it as the relay does. */
static void
fuzz_reply_done(const struct smtp_reply *r)
{
	struct smtp_ehlo	 ehlo;
	char			 one[SMTP_REPLY_LINE_MAX];

	if (r->code < 100 || r->code > 599 || r->len >= SMTP_REPLY_MAX ||
	    r->text[r->len] != '\0' || r->nlines == 0 ||
	    strlen(r->enh) >= sizeof(r->enh))
		abort();
	if (smtp_reply_class(r) != r->code / 100)
		abort();
	smtp_reply_oneline(r, one, sizeof(one));
	if (strlen(one) >= sizeof(one))
		abort();
	smtp_ehlo_parse(r, &ehlo);
}

/* Feed lines (without CR LF) until a reply completes or fails, repeatedly. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply	*r;
	const char		*p = (const char *)data, *end = p + size, *nl;
	size_t			 len;

	if ((r = malloc(sizeof(*r))) == NULL)
		abort();
	smtp_reply_init(r);
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		switch (smtp_reply_feed(r, p, len)) {
		case SMTP_REPLY_DONE:
			fuzz_reply_done(r);
			smtp_reply_init(r);
			break;
		case SMTP_REPLY_ERROR:
			smtp_reply_init(r);
			break;
		case SMTP_REPLY_MORE:
			if (r->len >= SMTP_REPLY_MAX)
				abort();
			break;
		}
		p = nl != NULL ? nl + 1 : end;
	}
	free(r);
	return 0;
}
