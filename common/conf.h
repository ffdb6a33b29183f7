/*
 * conf.h: a "key = value" file reader driven by the caller's setter, and
 * the value parsers the daemon's keys use.  Errors read
 * "file:line: key: message".
 */
#ifndef RELAYQ_CONF_H
#define RELAYQ_CONF_H

#include <stddef.h>

/* Apply one key; 0, or -1 with a message (without file/line) in err. */
typedef int (*conf_set_fn)(void *arg, const char *key, const char *value,
    char *err, size_t errlen);

/*
 * Read path: '#' starts a comment, blank lines are skipped, every other
 * line is "key = value" (spaces around '=' optional, value may be empty).
 * 0, or -1 with "path:line: key: message" in err.
 */
int	conf_load(const char *path, conf_set_fn, void *arg, char *err,
	    size_t errlen);
/* "90", "90s", "15m", "1h", "5d" into seconds within [min, max]; 0 or -1. */
int	conf_duration(const char *, unsigned long long min,
	    unsigned long long max, unsigned long long *out);
/*
 * "host:port", "[v6]:port" or "host" (port from defport) into host and
 * port buffers; 0 or -1.
 */
int	conf_hostport(const char *, const char *defport, char *host,
	    size_t hostlen, char *port, size_t portlen);

#endif /* RELAYQ_CONF_H */
