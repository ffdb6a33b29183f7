/*
 * account_conf.c: the configured account.  Its password file is checked
 * the way msmtp checks its own: a regular file owned by root or the
 * daemon's user that others cannot read (or change).  The check runs at
 * start, at each reload and at every read, so a file made readable later
 * stops being used.  The password is read only when a relay session
 * needs it.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "account_conf.h"
#include "log.h"
#include "queue.h"
#include "util.h"

/* Resolve password_file (relative: under credentials_dir) into out. */
static int
account_conf_path(const char *password_file, const char *credentials_dir,
    char *out, size_t outlen, char *err, size_t errlen)
{
	int	 n;

	if (password_file[0] == '/')
		n = snprintf(out, outlen, "%s", password_file);
	else if (credentials_dir == NULL || credentials_dir[0] == '\0') {
		snprintf(err, errlen, "password-file \"%s\" is relative, which "
		    "names a file in $CREDENTIALS_DIRECTORY, but that is not "
		    "set (use an absolute path, or LoadCredential= in the "
		    "unit)", password_file);
		return -1;
	} else if (strchr(password_file, '/') != NULL ||
	    strcmp(password_file, "..") == 0 || strcmp(password_file, ".") == 0) {
		snprintf(err, errlen, "password-file \"%s\": a relative name "
		    "is a credential's name, without '/'", password_file);
		return -1;
	} else
		n = snprintf(out, outlen, "%s/%s", credentials_dir,
		    password_file);
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "password-file: path too long");
		return -1;
	}
	return 0;
}

/* Judge the opened file's owner, type and mode; 0 or -1 with err. */
static int
account_conf_check_file(const struct account_conf *ac, int fd, char *err,
    size_t errlen)
{
	struct stat	 st;

	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "password-file %s: %s", ac->path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "password-file %s: not a regular file",
		    ac->path);
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != ac->uid) {
		snprintf(err, errlen, "password-file %s: owned by uid %u; it "
		    "must be owned by root or by relayqd's user (uid %u)",
		    ac->path, (unsigned)st.st_uid, (unsigned)ac->uid);
		return -1;
	}
	if ((st.st_mode & (S_IRWXO | S_IWGRP)) != 0) {
		snprintf(err, errlen, "password-file %s: mode %04o lets "
		    "others %s it; it must grant nothing to others (chmod "
		    "600 %s)", ac->path, (unsigned)(st.st_mode & 07777),
		    (st.st_mode & S_IRWXO) != 0 ? "read or change" : "change",
		    ac->path);
		return -1;
	}
	return 0;
}

/*
 * Read the file into pass: one line of 1 to passlen - 1 bytes, with or
 * without a final LF or CRLF, and nothing after it.
 */
static int
account_conf_read(const struct account_conf *ac, int fd, char *pass,
    size_t passlen, char *err, size_t errlen)
{
	char	 buf[SASL_FIELD_MAX + 3];
	size_t	 n = 0;
	ssize_t	 r;
	int	 rc = -1;

	while (n < sizeof(buf)) {
		r = read(fd, buf + n, sizeof(buf) - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(err, errlen, "password-file %s: %s", ac->path,
			    strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0)
		snprintf(err, errlen, "password-file %s: empty", ac->path);
	else if (n >= passlen || n >= SASL_FIELD_MAX)
		snprintf(err, errlen, "password-file %s: longer than %d bytes",
		    ac->path, SASL_FIELD_MAX - 1);
	else if (memchr(buf, '\0', n) != NULL)
		snprintf(err, errlen, "password-file %s: holds a NUL byte",
		    ac->path);
	else if (memchr(buf, '\n', n) != NULL || memchr(buf, '\r', n) != NULL)
		snprintf(err, errlen, "password-file %s: more than one line",
		    ac->path);
	else {
		memcpy(pass, buf, n);
		pass[n] = '\0';
		rc = 0;
	}
done:
	secure_zero(buf, sizeof(buf));
	return rc;
}

/* Open, check and read the password file. */
int
account_conf_password(const struct account_conf *ac, char *pass,
    size_t passlen, char *err, size_t errlen)
{
	int	 fd, rc = -1;

	if (ac->address[0] == '\0') {
		snprintf(err, errlen, "no account is configured");
		goto done;
	}
	if ((fd = open(ac->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		snprintf(err, errlen, "password-file %s: %s", ac->path,
		    strerror(errno));
		goto done;
	}
	if (account_conf_check_file(ac, fd, err, errlen) == 0 &&
	    account_conf_read(ac, fd, pass, passlen, err, errlen) == 0)
		rc = 0;
	(void)close(fd);
done:
	if (rc == -1)
		secure_zero(pass, passlen);
	return rc;
}

/* Check the values and the file, then take them over. */
int
account_conf_init(struct account_conf *ac, const char *address,
    const char *password_file, const char *credentials_dir, uid_t uid,
    char *err, size_t errlen)
{
	struct account_conf	 n;
	char			 pass[SASL_FIELD_MAX];
	int			 rc;

	memset(&n, 0, sizeof(n));
	n.uid = uid;
	if (address[0] == '\0' && password_file[0] == '\0') {
		*ac = n;
		return 0;
	}
	if (address[0] == '\0' || password_file[0] == '\0') {
		snprintf(err, errlen, "account and password-file go together: "
		    "set both or neither");
		return -1;
	}
	if (!mailaddr_valid(address)) {
		snprintf(err, errlen, "account \"%s\" is not a mail address",
		    address);
		return -1;
	}
	str_copy(n.address, address, sizeof(n.address));
	if (account_conf_path(password_file, credentials_dir, n.path,
	    sizeof(n.path), err, errlen) == -1)
		return -1;
	rc = account_conf_password(&n, pass, sizeof(pass), err, errlen);
	secure_zero(pass, sizeof(pass));
	if (rc == 0)
		*ac = n;
	return rc;
}

/* The entry's credentials: its own file, or the configured account's. */
int
account_conf_load_cred(const struct account_conf *ac, struct queue *q,
    const char *id, const struct envelope *env, struct sasl_cred *cred)
{
	char	 err[ACCOUNT_CONF_PATH_MAX + 128];

	if (env->account[0] == '\0')
		return queue_load_cred(q, id, cred);
	memset(cred, 0, sizeof(*cred));
	if (ac == NULL || ac->address[0] == '\0') {
		log_warnx("%s: queued for the account %s, but no account is "
		    "configured; it waits", id, env->account);
		goto fail;
	}
	if (strcmp(ac->address, env->account) != 0) {
		log_warnx("%s: queued for the account %s, but the configured "
		    "account is %s; it waits", id, env->account, ac->address);
		goto fail;
	}
	if (account_conf_password(ac, cred->pass, sizeof(cred->pass), err,
	    sizeof(err)) == -1) {
		log_warnx("%s: %s; it waits", id, err);
		goto fail;
	}
	str_copy(cred->user, ac->address, sizeof(cred->user));
	return 0;
fail:
	sasl_cred_clear(cred);
	errno = ENOKEY;
	return -1;
}
