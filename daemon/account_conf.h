/*
 * account_conf.h: relayqd's configured account (relayqd.conf account and
 * password-file), used for submissions made without AUTH, such as those
 * of relayq's sendmail mode.  The password stays in its file: it is read
 * each time a relay session needs it and wiped after use, never copied
 * into the queue or a log.  A relative password-file names a file in
 * $CREDENTIALS_DIRECTORY (systemd's LoadCredential=).
 */
#ifndef RELAYQ_ACCOUNT_CONF_H
#define RELAYQ_ACCOUNT_CONF_H

#include <sys/types.h>

#include <stddef.h>

#include "envelope.h"
#include "mailaddr.h"
#include "sasl.h"

#define ACCOUNT_CONF_PATH_MAX	4096

struct queue;

struct account_conf {
	char	address[MAILADDR_MAX];		/* "": no account */
	char	path[ACCOUNT_CONF_PATH_MAX];	/* the resolved password file */
	uid_t	uid;				/* may own it, besides root */
};

/*
 * Check and fill in ac from the config values: both empty (no account),
 * or a valid address and a password file that exists, is a regular file
 * owned by root or uid, grants nothing to others nor write to its group,
 * and holds a password of 1 to SASL_FIELD_MAX - 1 bytes.  credentials_dir
 * is $CREDENTIALS_DIRECTORY (NULL if unset).  0, or -1 with the reason
 * in err; ac is left as it was on error.
 */
int	account_conf_init(struct account_conf *ac, const char *address,
	    const char *password_file, const char *credentials_dir, uid_t uid,
	    char *err, size_t errlen);
/*
 * Read the password from the file (checked again as above) into pass,
 * without its final newline.  0, or -1 with the reason in err (which
 * never quotes the file).  pass is wiped on failure.
 */
int	account_conf_password(const struct account_conf *ac, char *pass,
	    size_t passlen, char *err, size_t errlen);
/*
 * The credentials to relay queue/<id> with: the configured account and
 * its current password when env->account is set (it must equal the
 * configured address), else queue/<id>/credentials.  0, or -1 with errno;
 * an account that is not configured, differs or whose password cannot be
 * read is logged and fails with ENOKEY, a local condition, so the entry
 * waits instead of being moved aside.  ac may be NULL (no account).
 */
int	account_conf_load_cred(const struct account_conf *ac, struct queue *,
	    const char *id, const struct envelope *env, struct sasl_cred *);

#endif /* RELAYQ_ACCOUNT_CONF_H */
