/*
 * conf.c: the configuration file reader and value parsers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "util.h"

#define CONF_LINE_MAX	1024

static char	*conf_trim(char *);

/* Strip leading and trailing blanks in place. */
static char *
conf_trim(char *s)
{
	char	*end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\r' || end[-1] == '\n'))
		*--end = '\0';
	return s;
}

/* Read the file line by line and hand each key to set. */
int
conf_load(const char *path, conf_set_fn set, void *arg, char *err,
    size_t errlen)
{
	FILE		*fp;
	char		 line[CONF_LINE_MAX], msg[256], *p, *key, *value, *eq;
	unsigned	 lineno = 0;
	int		 rc = -1;

	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			snprintf(err, errlen, "%s:%u: line too long", path,
			    lineno);
			goto out;
		}
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		p = conf_trim(line);
		if (*p == '\0')
			continue;
		if ((eq = strchr(p, '=')) == NULL) {
			snprintf(err, errlen, "%s:%u: %s: expected "
			    "\"key = value\"", path, lineno, p);
			goto out;
		}
		*eq = '\0';
		key = conf_trim(p);
		value = conf_trim(eq + 1);
		msg[0] = '\0';
		if (set(arg, key, value, msg, sizeof(msg)) == -1) {
			snprintf(err, errlen, "%s:%u: %s: %s", path, lineno,
			    key, msg);
			goto out;
		}
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	fclose(fp);
	return rc;
}

/* Seconds with an optional s/m/h/d unit. */
int
conf_duration(const char *s, unsigned long long min, unsigned long long max,
    unsigned long long *out)
{
	char			 num[32];
	size_t			 len = strlen(s);
	unsigned long long	 v, mult = 1;

	if (len == 0 || len >= sizeof(num)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(num, s, len + 1);
	switch (num[len - 1]) {
	case 's':
		mult = 1;
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	default:
		len++;
		break;
	}
	num[len - 1] = '\0';
	if (parse_uint(num, 0, max / mult, &v) == -1)
		return -1;
	v *= mult;
	if (v < min || v > max) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

/* Split host:port, honouring [IPv6]:port. */
int
conf_hostport(const char *s, const char *defport, char *host, size_t hostlen,
    char *port, size_t portlen)
{
	const char		*colon, *end;
	size_t			 len;
	unsigned long long	 v;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return -1;
		len = (size_t)(end - s - 1);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return -1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (colon != NULL && strchr(s, ':') != colon)
			return -1;	/* a bare IPv6 literal needs brackets */
		len = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (len == 0 || len >= hostlen)
		return -1;
	memcpy(host, s, len);
	host[len] = '\0';
	if (colon == NULL)
		return str_copy(port, defport, portlen);
	if (parse_uint(colon + 1, 1, 65535, &v) == -1)
		return -1;
	return str_copy(port, colon + 1, portlen);
}
