/*
 * notify.c: sd_notify as a datagram, including the '@' abstract
 * namespace.  Nothing happens when $NOTIFY_SOCKET is unset.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "notify.h"

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
