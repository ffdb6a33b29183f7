/*
 * log.h: the one log sink of a relayq program.
 *
 * main() calls log_init() once; the sink and level are the only file-static
 * state in common/.  Every event is one line.  Never pass a secret as a
 * format argument.
 */
#ifndef RELAYQ_LOG_H
#define RELAYQ_LOG_H

#include <stdarg.h>

enum log_sink {
	LOG_SINK_STDERR,	/* plain lines, "prog: " prefix */
	LOG_SINK_JOURNAL,	/* "<N>" priority prefixes for journald */
	LOG_SINK_SYSLOG		/* syslog(3), after detaching */
};

void	log_init(enum log_sink, int verbose, const char *ident);
/* Pick the sink DESIGN.md describes: journal if $JOURNAL_STREAM, else stderr. */
enum log_sink log_sink_guess(int foreground);
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif /* RELAYQ_LOG_H */
