/*
 * notify.h: the systemd notify protocol (sd_notify(3)) without
 * libsystemd: one datagram to the AF_UNIX socket in $NOTIFY_SOCKET.
 */
#ifndef RELAYQ_NOTIFY_H
#define RELAYQ_NOTIFY_H

#include <stdbool.h>

/* Send "READY=1", "STATUS=...", ...; 0 when sent or not under systemd. */
int	notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True when $NOTIFY_SOCKET is set: someone listens for notifications. */
bool	notify_enabled(void);
/*
 * The watchdog interval from $WATCHDOG_USEC (sd_watchdog_enabled(3)):
 * microseconds, or 0 when no watchdog is asked of this process
 * ($WATCHDOG_PID, if set, names another pid) or the value is invalid.
 */
unsigned long long notify_watchdog_usec(void);

#endif /* RELAYQ_NOTIFY_H */
