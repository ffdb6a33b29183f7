/*
 * notify.c: sd_notify as a datagram, including the '@' abstract
 * namespace.  Nothing happens when $NOTIFY_SOCKET is unset.  libsystemd
 * is not used: the protocol is one sendto(), and relayqd stays free of a
 * dependency that the service's whole use of it would not justify.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "notify.h"
#include "util.h"

/* Format one notification and send it. */
int
notify_send(const char *fmt, ...)
{
	struct sockaddr_un	 sun;
	const char		*path;
	char			 msg[512];
	va_list			 ap;
	size_t			 len;
	socklen_t		 salen;
	int			 fd, rc, saved_errno;

	if ((path = getenv("NOTIFY_SOCKET")) == NULL || *path == '\0')
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sun.sun_path)) {
		errno = EINVAL;
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, len);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
	    (path[0] == '@' ? 0 : 1));

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	rc = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, salen) == -1 ? -1 : 0;
	saved_errno = errno;
	close(fd);
	errno = saved_errno;
	return rc;
}

/* Whether notifications go anywhere. */
bool
notify_enabled(void)
{
	const char	*path = getenv("NOTIFY_SOCKET");

	return path != NULL && *path != '\0';
}

/* WATCHDOG_USEC, for this pid only. */
unsigned long long
notify_watchdog_usec(void)
{
	unsigned long long	 usec, pid;
	const char		*s;

	if ((s = getenv("WATCHDOG_PID")) != NULL &&
	    (parse_uint(s, 1, UINT32_MAX, &pid) == -1 ||
	    (pid_t)pid != getpid()))
		return 0;
	if ((s = getenv("WATCHDOG_USEC")) == NULL ||
	    parse_uint(s, 1, UINT64_MAX, &usec) == -1)
		return 0;
	return usec;
}
