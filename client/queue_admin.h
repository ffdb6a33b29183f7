/*
 * queue_admin.h: relayq's queue tools.  --list reads the queue directory
 * directly (like mailq), --delete removes an entry safely while relayqd
 * runs (the DELETE protocol: see queue_admin.c), --flush sends ETRN over
 * the socket.  Each returns a sysexits(3) status and says what happened
 * on out (errors on stderr).
 */
#ifndef RELAYQ_QUEUE_ADMIN_H
#define RELAYQ_QUEUE_ADMIN_H

#include <stdbool.h>
#include <stdio.h>

#define QUEUE_ADMIN_DIR_DEFAULT		"/var/spool/relayq"
#define QUEUE_ADMIN_CONFIG		"/etc/relayq/relayqd.conf"

/*
 * The daemon's queue-dir and socket from its config file, when the file
 * exists, is readable and sets them; dir and sock are left as they are
 * otherwise.  Lines that do not parse are ignored: relayqd -n judges the
 * file.
 */
void	queue_admin_defaults(const char *conf, char *dir, size_t dirlen,
	    char *sock, size_t socklen);
/*
 * relayqd's configured account (its config's "account") into acct, or
 * "" when the file is unreadable or has none.
 */
void	queue_admin_account(const char *conf, char *acct, size_t len);
/* Print queue/ and failed/ as text, or as one JSON object per line. */
int	queue_admin_list(const char *queue_dir, bool json, FILE *out);
/* Remove queue/<id> or failed/<id>, or mark it for removal. */
int	queue_admin_delete(const char *queue_dir, const char *id, FILE *out);
/* EHLO, ETRN, QUIT on the socket at path: retry the whole queue now. */
int	queue_admin_flush(const char *path, FILE *out);

#endif /* RELAYQ_QUEUE_ADMIN_H */
