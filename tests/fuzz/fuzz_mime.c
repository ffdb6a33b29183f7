/*
 * fuzz_mime.c: libFuzzer harness for the MIME builder.  The input is cut
 * into From, To, Subject, a content type and two part bodies; whatever
 * mime_build accepts must come out as lines ending in CRLF, at most 998
 * octets each, with the top-level header free of the parts' bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

#define FUZZ_FIELDS	6

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Every line ends in CRLF and holds at most 998 octets before it. */
static void
fuzz_mime_check(const char *msg, size_t len)
{
	size_t	 i, col = 0;

	if (len < 2 || msg[len - 2] != '\r' || msg[len - 1] != '\n')
		abort();
	for (i = 0; i < len; i++) {
		if (msg[i] == '\n') {
			if (i == 0 || msg[i - 1] != '\r')
				abort();
			col = 0;
		} else if (msg[i] == '\r') {
			if (i + 1 >= len || msg[i + 1] != '\n')
				abort();
		} else if (++col > 998)
			abort();
	}
	/* The header ends before the first part. */
	if (memmem(msg, len, "\r\n\r\n", 4) == NULL)
		abort();
}

/* Split the input at 0xff bytes into NUL-terminated fields. */
static size_t
fuzz_split(char *buf, size_t size, char **field, size_t *flen)
{
	size_t	 n = 0, i, start = 0;

	for (i = 0; i <= size && n < FUZZ_FIELDS; i++) {
		if (i == size || (unsigned char)buf[i] == 0xff) {
			field[n] = buf + start;
			flen[n] = i - start;
			if (i < size)
				buf[i] = '\0';
			n++;
			start = i + 1;
		}
	}
	return n;
}

/* Build one message from the fields and check its shape. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_header	 h;
	struct mime_part	 parts[2];
	char			*buf, *field[FUZZ_FIELDS], *msg;
	size_t			 flen[FUZZ_FIELDS], n, len;

	if (size > 65536 || (buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	n = fuzz_split(buf, size, field, flen);
	if (n < FUZZ_FIELDS) {
		free(buf);
		return 0;
	}
	memset(&h, 0, sizeof(h));
	h.from = field[0];
	h.to = field[1];
	h.subject = field[2];
	h.date = (time_t)size * 86400;
	h.msgid_domain = "fuzz.example";
	memset(parts, 0, sizeof(parts));
	parts[0].content_type = field[3];
	parts[0].data = field[4];
	parts[0].len = flen[4];
	parts[0].base64 = 0;
	parts[1].content_type = "image/png";
	parts[1].disposition = "attachment";
	parts[1].filename = "a.png";
	parts[1].data = field[5];
	parts[1].len = flen[5];
	parts[1].base64 = 1;
	if ((msg = mime_build(&h, parts, 2, &len)) != NULL) {
		fuzz_mime_check(msg, len);
		free(msg);
	}
	free(buf);
	return 0;
}
