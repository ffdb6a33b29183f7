/*
 * check_account_conf.c: the configured account: the config keys, the
 * checks on the password file (owner, mode, type, content), a relative
 * password-file under $CREDENTIALS_DIRECTORY, and where an entry's relay
 * credentials come from.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account_conf.h"
#include "check_relayq.h"
#include "config.h"
#include "envelope.h"
#include "queue.h"

#define ACCOUNT	"ops@gmail.com"

static char	 dir[64];
static char	 pwfile[128];

/* nftw callback that removes one entry. */
static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A fresh directory holding "pw" for each test. */
static void
setup(void)
{
	strcpy(dir, "/tmp/relayq-check-acct-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(pwfile, sizeof(pwfile), "%s/pw", dir);
}

/* Remove the directory. */
static void
teardown(void)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Write len bytes of text to path with mode. */
static void
write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	int	 fd;

	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static const struct {
	const char	*text;
	size_t		 len;		/* 0: strlen */
	const char	*pass;		/* NULL: refused */
	const char	*err;		/* part of the message */
} content_cases[] = {
	{ "app-pass\n",		0, "app-pass",	NULL },
	{ "app-pass",		0, "app-pass",	NULL },
	{ "app-pass\r\n",	0, "app-pass",	NULL },
	{ "with space x\n",	0, "with space x", NULL },
	{ "",			0, NULL,	"empty" },
	{ "\n",			0, NULL,	"empty" },
	{ "\r\n",		0, NULL,	"empty" },
	{ "one\ntwo\n",		0, NULL,	"more than one line" },
	{ "one\rtwo",		0, NULL,	"more than one line" },
	{ "one\n\n",		0, NULL,	"more than one line" },
	{ "a\0b\n",		4, NULL,	"NUL byte" },
};

/* The first line is the password; anything else is refused. */
START_TEST(test_account_conf_content)
{
	struct account_conf	 ac;
	char			 pass[SASL_FIELD_MAX], err[512] = "";
	size_t			 len = content_cases[_i].len;
	int			 rc;

	if (len == 0)
		len = strlen(content_cases[_i].text);
	write_file(pwfile, content_cases[_i].text, len, 0600);
	memset(&ac, 0, sizeof(ac));
	rc = account_conf_init(&ac, ACCOUNT, pwfile, NULL, geteuid(), err,
	    sizeof(err));
	if (content_cases[_i].pass == NULL) {
		ck_assert_msg(rc == -1, "case %d accepted", _i);
		ck_assert_msg(strstr(err, content_cases[_i].err) != NULL,
		    "case %d: %s", _i, err);
		ck_assert_str_eq(ac.address, "");
		return;
	}
	ck_assert_msg(rc == 0, "case %d: %s", _i, err);
	ck_assert_str_eq(ac.address, ACCOUNT);
	ck_assert_str_eq(ac.path, pwfile);
	ck_assert_int_eq(account_conf_password(&ac, pass, sizeof(pass), err,
	    sizeof(err)), 0);
	ck_assert_str_eq(pass, content_cases[_i].pass);
}
END_TEST

/* 255 bytes fit (with or without a newline); 256 do not. */
START_TEST(test_account_conf_length)
{
	struct account_conf	 ac;
	char			 text[SASL_FIELD_MAX + 2], err[512] = "";

	memset(text, 'p', sizeof(text));
	text[SASL_FIELD_MAX - 1] = '\n';
	write_file(pwfile, text, SASL_FIELD_MAX, 0600);
	ck_assert_int_eq(account_conf_init(&ac, ACCOUNT, pwfile, NULL,
	    geteuid(), err, sizeof(err)), 0);
	write_file(pwfile, text, SASL_FIELD_MAX - 1, 0600);
	ck_assert_int_eq(account_conf_init(&ac, ACCOUNT, pwfile, NULL,
	    geteuid(), err, sizeof(err)), 0);
	memset(text, 'p', sizeof(text));
	write_file(pwfile, text, SASL_FIELD_MAX, 0600);
	ck_assert_int_eq(account_conf_init(&ac, ACCOUNT, pwfile, NULL,
	    geteuid(), err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "longer than 255 bytes"));
}
END_TEST

static const struct {
	mode_t		 mode;
	int		 ok;
	const char	*err;
} mode_cases[] = {
	{ 0600, 1, NULL },
	{ 0400, 1, NULL },
	{ 0640, 1, NULL },
	{ 0660, 0, "mode 0660 lets others change it" },
	{ 0604, 0, "mode 0604 lets others read or change it" },
	{ 0644, 0, "mode 0644 lets others read or change it" },
	{ 0601, 0, "mode 0601 lets others read or change it" },
	{ 0602, 0, "mode 0602 lets others read or change it" },
};

/* Nothing for others, no group write: like msmtp, refuse and say why. */
START_TEST(test_account_conf_mode)
{
	struct account_conf	 ac;
	char			 err[512] = "";
	int			 rc;

	write_file(pwfile, "pw\n", 3, mode_cases[_i].mode);
	memset(&ac, 0, sizeof(ac));
	rc = account_conf_init(&ac, ACCOUNT, pwfile, NULL, geteuid(), err,
	    sizeof(err));
	if (mode_cases[_i].ok) {
		ck_assert_msg(rc == 0, "mode %o: %s", mode_cases[_i].mode, err);
		return;
	}
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(strstr(err, mode_cases[_i].err) != NULL, "%s", err);
	ck_assert_ptr_nonnull(strstr(err, pwfile));
	ck_assert_str_eq(ac.address, "");
}
END_TEST

/* Owned by root or the daemon's user; anyone else's file is refused. */
START_TEST(test_account_conf_owner)
{
	struct account_conf	 ac;
	char			 err[512] = "";

	write_file(pwfile, "pw\n", 3, 0600);
	if (geteuid() == 0) {
		ck_assert_int_eq(account_conf_init(&ac, ACCOUNT, pwfile, NULL,
		    4242, err, sizeof(err)), 0);	/* root's */
		ck_assert_int_eq(chown(pwfile, 4243, 0), 0);
	}
	/* The file's owner is now neither root nor 4242. */
	ck_assert_int_eq(account_conf_init(&ac, ACCOUNT, pwfile, NULL, 4242,
	    err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "must be owned by root or by "
	    "relayqd's user (uid 4242)"));
	ck_assert_int_eq(account_conf_init(&ac, ACCOUNT, pwfile, NULL,
	    geteuid() == 0 ? 4243 : geteuid(), err, sizeof(err)), 0);
}
END_TEST

static const struct {
	const char	*address;
	const char	*file;		/* "PW": the test's file */
	const char	*creddir;	/* "DIR": the test's directory */
	const char	*err;		/* NULL: accepted */
	const char	*path;		/* the resolved path, when accepted */
} values_cases[] = {
	{ "",		"",	NULL,	NULL,	"" },
	{ ACCOUNT,	"",	NULL,	"set both or neither", NULL },
	{ "",		"PW",	NULL,	"set both or neither", NULL },
	{ "not-an-address", "PW", NULL,	"is not a mail address", NULL },
	{ ACCOUNT,	"PW",	NULL,	NULL,	"PW" },
	{ ACCOUNT,	"pw",	"DIR",	NULL,	"PW" },
	{ ACCOUNT,	"pw",	NULL,	"$CREDENTIALS_DIRECTORY, but that is "
	    "not set", NULL },
	{ ACCOUNT,	"pw",	"",	"$CREDENTIALS_DIRECTORY, but that is "
	    "not set", NULL },
	{ ACCOUNT,	"sub/pw", "DIR", "without '/'", NULL },
	{ ACCOUNT,	"..",	"DIR",	"without '/'", NULL },
	{ ACCOUNT,	"missing", "DIR", "No such file or directory", NULL },
};

/* The two keys together, and a relative name under the credentials. */
START_TEST(test_account_conf_values)
{
	struct account_conf	 ac;
	char			 err[512] = "";
	const char		*file = values_cases[_i].file;
	const char		*creddir = values_cases[_i].creddir;
	int			 rc;

	write_file(pwfile, "pw\n", 3, 0600);
	if (strcmp(file, "PW") == 0)
		file = pwfile;
	if (creddir != NULL && strcmp(creddir, "DIR") == 0)
		creddir = dir;
	memset(&ac, 0, sizeof(ac));
	rc = account_conf_init(&ac, values_cases[_i].address, file, creddir,
	    geteuid(), err, sizeof(err));
	if (values_cases[_i].err != NULL) {
		ck_assert_msg(rc == -1, "case %d accepted", _i);
		ck_assert_msg(strstr(err, values_cases[_i].err) != NULL,
		    "case %d: %s", _i, err);
		return;
	}
	ck_assert_msg(rc == 0, "case %d: %s", _i, err);
	ck_assert_str_eq(ac.address, values_cases[_i].address);
	ck_assert_str_eq(ac.path, strcmp(values_cases[_i].path, "PW") == 0 ?
	    pwfile : values_cases[_i].path);
}
END_TEST

/* A directory or a FIFO is not a password file (and never blocks). */
START_TEST(test_account_conf_not_regular)
{
	struct account_conf	 ac;
	char			 err[512] = "";

	ck_assert_int_eq(mkdir(pwfile, 0700), 0);
	ck_assert_int_eq(account_conf_init(&ac, ACCOUNT, pwfile, NULL,
	    geteuid(), err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
	ck_assert_int_eq(rmdir(pwfile), 0);
	ck_assert_int_eq(mkfifo(pwfile, 0600), 0);
	ck_assert_int_eq(account_conf_init(&ac, ACCOUNT, pwfile, NULL,
	    geteuid(), err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
}
END_TEST

/* The keys exist in the file (password-file may be relative). */
START_TEST(test_account_conf_config_keys)
{
	struct relayqd_config	 cfg;
	char			 conf[160], err[512] = "";
	char			 a0[] = "relayqd", a1[] = "-c";
	char			 a3[] = "--account", a4[] = "x@y.example";
	char			*argv[] = { a0, a1, conf, NULL };
	char			*argv2[] = { a0, a1, conf, a3, a4, NULL };
	static const char	 text[] = "account = " ACCOUNT "\n"
				    "password-file = gmail-password\n";

	snprintf(conf, sizeof(conf), "%s/relayqd.conf", dir);
	write_file(conf, text, sizeof(text) - 1, 0644);
	config_defaults(&cfg);
	ck_assert_str_eq(cfg.account, "");
	ck_assert_str_eq(cfg.password_file, "");
	ck_assert_int_eq(config_parse(&cfg, 3, argv, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.account, ACCOUNT);
	ck_assert_str_eq(cfg.password_file, "gmail-password");
	config_defaults(&cfg);
	ck_assert_int_eq(config_parse(&cfg, 5, argv2, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.account, "x@y.example");
}
END_TEST

/* Commit an entry with cred (and env->account as given) into q. */
static void
commit_entry(struct queue *q, const char *account,
    const struct sasl_cred *cred, char *id, size_t idlen)
{
	struct queue_tx	*tx;
	struct envelope	 env;

	tx = queue_tx_begin(q);
	ck_assert_ptr_nonnull(tx);
	ck_assert_int_eq(queue_tx_write(tx, "Subject: x\r\n\r\nhi\r\n", 18), 0);
	envelope_init(&env);
	strcpy(env.sender, "a@example.com");
	envelope_add_rcpt(&env, "b@example.com");
	env.submitted = env.next_attempt = time(NULL);
	strcpy(env.account, account);
	ck_assert_int_eq(queue_tx_commit(tx, &env, cred), 0);
	snprintf(id, idlen, "%s", env.id);
	envelope_fini(&env);
}

/* Read queue/<id>/<name> of the queue at qdir into buf. */
static void
read_entry_file(const char *qdir, const char *id, const char *name,
    char *buf, size_t len)
{
	char	 path[512];
	FILE	*fp;
	size_t	 n;

	snprintf(path, sizeof(path), "%s/queue/%s/%s", qdir, id, name);
	fp = fopen(path, "r");
	ck_assert_ptr_nonnull(fp);
	n = fread(buf, 1, len - 1, fp);
	buf[n] = '\0';
	fclose(fp);
}

/*
 * An entry's relay credentials: its own file, or the configured account
 * with the password read now (a changed file is used at once); a missing
 * or different account, or a bad file, is ENOKEY (the entry waits).
 */
START_TEST(test_account_conf_load_cred)
{
	struct account_conf	 ac;
	struct sasl_cred	 own, acct, got;
	struct envelope		 env;
	struct queue		*q;
	char			 qdir[128], id1[ENVELOPE_ID_MAX];
	char			 id2[ENVELOPE_ID_MAX], err[512] = "";
	char			 buf[4096];

	snprintf(qdir, sizeof(qdir), "%s/q", dir);
	q = queue_open(qdir, err, sizeof(err));
	ck_assert_msg(q != NULL, "%s", err);
	memset(&own, 0, sizeof(own));
	strcpy(own.user, "alice@example.com");
	strcpy(own.pass, "alice-secret");
	memset(&acct, 0, sizeof(acct));
	strcpy(acct.user, ACCOUNT);
	commit_entry(q, "", &own, id1, sizeof(id1));
	commit_entry(q, ACCOUNT, &acct, id2, sizeof(id2));
	/* What is on disk for the account's entry: no password. */
	read_entry_file(qdir, id2, "envelope", buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "\naccount: " ACCOUNT "\n"));

	write_file(pwfile, "first-pass\n", 11, 0600);
	ck_assert_int_eq(account_conf_init(&ac, ACCOUNT, pwfile, NULL,
	    geteuid(), err, sizeof(err)), 0);

	envelope_init(&env);
	ck_assert_int_eq(account_conf_load_cred(&ac, q, id1, &env, &got), 0);
	ck_assert_str_eq(got.user, "alice@example.com");
	ck_assert_str_eq(got.pass, "alice-secret");

	strcpy(env.account, ACCOUNT);
	ck_assert_int_eq(account_conf_load_cred(&ac, q, id2, &env, &got), 0);
	ck_assert_str_eq(got.user, ACCOUNT);
	ck_assert_str_eq(got.pass, "first-pass");
	write_file(pwfile, "second-pass\n", 12, 0600);
	ck_assert_int_eq(account_conf_load_cred(&ac, q, id2, &env, &got), 0);
	ck_assert_str_eq(got.pass, "second-pass");

	write_file(pwfile, "second-pass\n", 12, 0644);
	errno = 0;
	ck_assert_int_eq(account_conf_load_cred(&ac, q, id2, &env, &got), -1);
	ck_assert_int_eq(errno, ENOKEY);
	ck_assert_str_eq(got.pass, "");
	ck_assert(!queue_content_error(ENOKEY));
	write_file(pwfile, "second-pass\n", 12, 0600);

	errno = 0;
	ck_assert_int_eq(account_conf_load_cred(NULL, q, id2, &env, &got), -1);
	ck_assert_int_eq(errno, ENOKEY);
	strcpy(env.account, "other@gmail.com");
	errno = 0;
	ck_assert_int_eq(account_conf_load_cred(&ac, q, id2, &env, &got), -1);
	ck_assert_int_eq(errno, ENOKEY);
	ck_assert_str_eq(got.user, "");
	queue_close(q);
}
END_TEST

Suite *
account_conf_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("account_conf");
	tc = tcase_create("password_file");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_account_conf_content, 0,
	    (int)nitems_ck(content_cases));
	tcase_add_test(tc, test_account_conf_length);
	tcase_add_loop_test(tc, test_account_conf_mode, 0,
	    (int)nitems_ck(mode_cases));
	tcase_add_test(tc, test_account_conf_owner);
	tcase_add_loop_test(tc, test_account_conf_values, 0,
	    (int)nitems_ck(values_cases));
	tcase_add_test(tc, test_account_conf_not_regular);
	suite_add_tcase(s, tc);

	tc = tcase_create("use");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_account_conf_config_keys);
	tcase_add_test(tc, test_account_conf_load_cred);
	suite_add_tcase(s, tc);
	return s;
}
