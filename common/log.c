/*
 * log.c: stderr, journald-prefixed stderr, or syslog.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

static enum log_sink	 log_sink = LOG_SINK_STDERR;
static int		 log_verbose;
static const char	*log_ident = "relayq";

static void	log_vwrite(int, const char *, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

/* Set the sink, the verbosity (0 info, 1+ debug) and the program name. */
void
log_init(enum log_sink sink, int verbose, const char *ident)
{
	log_sink = sink;
	log_verbose = verbose;
	log_ident = ident;
	if (sink == LOG_SINK_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/* The journal sets $JOURNAL_STREAM for services whose stderr it reads. */
enum log_sink
log_sink_guess(int foreground)
{
	if (getenv("JOURNAL_STREAM") != NULL)
		return LOG_SINK_JOURNAL;
	return foreground ? LOG_SINK_STDERR : LOG_SINK_SYSLOG;
}

/* Format one event and hand it to the sink; errstr is appended if set. */
static void
log_vwrite(int pri, const char *errstr, const char *fmt, va_list ap)
{
	char	 buf[2048];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	switch (log_sink) {
	case LOG_SINK_SYSLOG:
		if (errstr != NULL)
			syslog(pri, "%s: %s", buf, errstr);
		else
			syslog(pri, "%s", buf);
		break;
	case LOG_SINK_JOURNAL:
		fprintf(stderr, "<%d>%s%s%s\n", pri, buf,
		    errstr ? ": " : "", errstr ? errstr : "");
		break;
	case LOG_SINK_STDERR:
		fprintf(stderr, "%s: %s%s%s\n", log_ident, buf,
		    errstr ? ": " : "", errstr ? errstr : "");
		break;
	}
}

/* A warning with strerror(errno) appended. */
void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved_errno = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, strerror(saved_errno), fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

/* A warning without errno. */
void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, NULL, fmt, ap);
	va_end(ap);
}

/* An ordinary event. */
void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_INFO, NULL, fmt, ap);
	va_end(ap);
}

/* Detail shown only with -v. */
void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (log_verbose < 1)
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_DEBUG, NULL, fmt, ap);
	va_end(ap);
}

/* Log with errno and exit. */
void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved_errno = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, strerror(saved_errno), fmt, ap);
	va_end(ap);
	exit(1);
}

/* Log and exit. */
void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
