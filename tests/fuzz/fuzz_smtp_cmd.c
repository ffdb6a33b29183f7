/*
 * fuzz_smtp_cmd.c: libFuzzer harness for the submission command grammar:
 * smtp_cmd_parse, the MAIL/RCPT parameter helpers and mailaddr_parse_path,
 * in the order smtp_server.c calls them on one command line.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailaddr.h"
#include "smtp_proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Parse one NUL-terminated command line the way the server would. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const known[] = { "SIZE", "BODY", NULL };
	struct smtp_cmd	 cmd;
	char		*line, addr[MAILADDR_MAX], val[32];
	const char	*rest, *reason;
	size_t		 len;

	if (size > 4 * SMTP_CMD_MAX)
		return 0;
	if ((line = malloc(size + 1)) == NULL)
		abort();
	memcpy(line, data, size);
	line[size] = '\0';
	len = strlen(line);
	if (smtp_cmd_parse(line, &cmd) == 0) {
		/* A known verb's argument lies inside the line. */
		if (cmd.verb != SMTP_VERB_UNKNOWN &&
		    (cmd.arg < line || cmd.arg > line + len))
			abort();
		(void)smtp_verb_name(cmd.verb);
		if (mailaddr_parse_path(cmd.arg, cmd.verb == SMTP_VERB_MAIL,
		    addr, sizeof(addr), &rest, &reason) == 0) {
			if (strlen(addr) >= sizeof(addr) || rest < cmd.arg ||
			    rest > line + len)
				abort();
			(void)mailaddr_valid(addr);
			(void)smtp_params_known(rest, known);
			if (smtp_param_get(rest, "SIZE", val, sizeof(val)) ==
			    1 && strlen(val) >= sizeof(val))
				abort();
			(void)smtp_param_get(rest, "BODY", val, sizeof(val));
		}
	}
	free(line);
	return 0;
}
