/*
 * notify.h: the systemd notify protocol (sd_notify(3)) without
 * libsystemd: one datagram to the AF_UNIX socket in $NOTIFY_SOCKET.
 */
#ifndef RELAYQ_NOTIFY_H
#define RELAYQ_NOTIFY_H

/* Send "READY=1", "STATUS=...", ...; 0 when sent or not under systemd. */
int	notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* RELAYQ_NOTIFY_H */
