/*
 * check_conf.c: the config reader, value parsers, and relayqd's key table.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_relayq.h"
#include "conf.h"
#include "config.h"
#include "scheduler.h"
#include "util.h"

static const struct {
	const char		*in;
	int			 rc;
	unsigned long long	 want;
} duration_cases[] = {
	{ "90",		0, 90 },
	{ "90s",	0, 90 },
	{ "15m",	0, 900 },
	{ "1h",		0, 3600 },
	{ "5d",		0, 432000 },
	{ "0",		-1, 0 },	/* below min 1 */
	{ "",		-1, 0 },
	{ "m",		-1, 0 },
	{ "-5",		-1, 0 },
	{ "5x",		-1, 0 },
	{ "1.5h",	-1, 0 },
	{ "99999999999999999999", -1, 0 },
	{ "400d",	-1, 0 },	/* above max 365d */
};

START_TEST(test_conf_duration)
{
	unsigned long long	 v = 0;
	int			 rc;

	rc = conf_duration(duration_cases[_i].in, 1, 365 * 86400ULL, &v);
	ck_assert_msg(rc == duration_cases[_i].rc, "input \"%s\": rc %d",
	    duration_cases[_i].in, rc);
	if (rc == 0)
		ck_assert_msg(v == duration_cases[_i].want, "input \"%s\": %llu",
		    duration_cases[_i].in, v);
}
END_TEST

static const struct {
	const char	*in;
	int		 rc;
	const char	*host, *port;
} hostport_cases[] = {
	{ "smtp.gmail.com:587",	0, "smtp.gmail.com", "587" },
	{ "smtp.gmail.com",	0, "smtp.gmail.com", "587" },
	{ "127.0.0.1:2525",	0, "127.0.0.1", "2525" },
	{ "[::1]:465",		0, "::1", "465" },
	{ "[::1]",		0, "::1", "587" },
	{ "localhost:0",	-1, NULL, NULL },
	{ "localhost:65536",	-1, NULL, NULL },
	{ "localhost:",		-1, NULL, NULL },
	{ ":25",		-1, NULL, NULL },
	{ "::1:25",		-1, NULL, NULL },
	{ "[::1",		-1, NULL, NULL },
	{ "[::1]x",		-1, NULL, NULL },
	{ "host:25x",		-1, NULL, NULL },
};

START_TEST(test_conf_hostport)
{
	char	 host[64], port[8];
	int	 rc;

	rc = conf_hostport(hostport_cases[_i].in, "587", host, sizeof(host),
	    port, sizeof(port));
	ck_assert_msg(rc == hostport_cases[_i].rc, "input \"%s\": rc %d",
	    hostport_cases[_i].in, rc);
	if (rc == 0) {
		ck_assert_str_eq(host, hostport_cases[_i].host);
		ck_assert_str_eq(port, hostport_cases[_i].port);
	}
}
END_TEST

/* Write text to a fresh temporary file; returns its malloc'd path. */
static char *
write_temp(const char *text)
{
	char	*path = strdup("/tmp/relayq-conf-XXXXXX");
	int	 fd;

	ck_assert_ptr_nonnull(path);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* Run config_parse on a file plus extra flags. */
static int
parse_with(const char *text, char **extra, int nextra,
    struct relayqd_config *cfg, char *err, size_t errlen)
{
	char	*argv[16], *path = write_temp(text);
	int	 argc = 0, i, rc;

	argv[argc++] = (char *)(uintptr_t)"relayqd";
	argv[argc++] = (char *)(uintptr_t)"-c";
	argv[argc++] = path;
	for (i = 0; i < nextra; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	config_defaults(cfg);
	rc = config_parse(cfg, argc, argv, err, errlen);
	unlink(path);
	free(path);
	return rc;
}

START_TEST(test_config_defaults)
{
	struct relayqd_config	 cfg;

	config_defaults(&cfg);
	ck_assert_str_eq(cfg.socket, "/run/relayq/relayq.sock");
	ck_assert_str_eq(cfg.queue_dir, "/var/spool/relayq");
	ck_assert_str_eq(cfg.relay_host, "smtp.gmail.com");
	ck_assert_str_eq(cfg.relay_port, "587");
	ck_assert_int_eq(cfg.tls, RELAY_TLS_STARTTLS);
	ck_assert_uint_eq(cfg.retry_min, 60);
	ck_assert_uint_eq(cfg.retry_max, 3600);
	ck_assert_uint_eq(cfg.max_age, 5 * 86400);
	ck_assert_uint_eq(cfg.socket_mode, 0666);
	ck_assert_uint_eq(cfg.max_size, 35882577);
	ck_assert_uint_eq(cfg.max_rcpt, 100);
	ck_assert(cfg.chunking);
}
END_TEST

START_TEST(test_config_file_and_flags)
{
	struct relayqd_config	 cfg;
	char			 err[512];
	char			*flags[] = { (char *)(uintptr_t)"--retry-min",
				    (char *)(uintptr_t)"5",
				    (char *)(uintptr_t)"--relay",
				    (char *)(uintptr_t)"[::1]:2465" };

	ck_assert_int_eq(parse_with("# comment\n"
	    "relay = localhost:2587\n"
	    "  retry-min=2m   # trailing comment\n"
	    "tls = implicit\n"
	    "socket-mode = 0660\n"
	    "\n"
	    "chunking = no\n"
	    "queue-dir = /tmp/q\n", flags, 4, &cfg, err, sizeof(err)), 0);
	ck_assert(!cfg.chunking);
	ck_assert_uint_eq(cfg.retry_min, 5);		/* the flag wins */
	ck_assert_str_eq(cfg.relay_host, "::1");
	ck_assert_str_eq(cfg.relay_port, "2465");
	ck_assert_int_eq(cfg.tls, RELAY_TLS_IMPLICIT);
	ck_assert_uint_eq(cfg.socket_mode, 0660);
	ck_assert_str_eq(cfg.queue_dir, "/tmp/q");
}
END_TEST

static const struct {
	const char	*text;
	const char	*want;	/* substring of the error */
} bad_cases[] = {
	{ "relay = localhost:2587\nbogus-key = 1\n", ":2: bogus-key: unknown key" },
	{ "retry-min = soon\n", ":1: retry-min: \"soon\"" },
	{ "tls = maybe\n", ":1: tls: \"maybe\": expected starttls or implicit" },
	{ "chunking = off\n", ":1: chunking: \"off\": expected yes or no" },
	{ "queue-dir = relative/path\n", ":1: queue-dir: \"relative/path\" is not an absolute path" },
	{ "just a line\n", ":1: just a line: expected \"key = value\"" },
	{ "max-parallel = 0\n", ":1: max-parallel:" },
	{ "socket-mode = 999\n", ":1: socket-mode:" },
	{ "retry-min = 2h\nretry-max = 1h\n", "retry-min (7200s) is larger than retry-max (3600s)" },
};

START_TEST(test_config_errors_name_file_line_key)
{
	struct relayqd_config	 cfg;
	char			 err[512];

	err[0] = '\0';
	ck_assert_int_eq(parse_with(bad_cases[_i].text, NULL, 0, &cfg, err,
	    sizeof(err)), -1);
	ck_assert_msg(strstr(err, bad_cases[_i].want) != NULL,
	    "case %d: error \"%s\" lacks \"%s\"", _i, err, bad_cases[_i].want);
}
END_TEST

START_TEST(test_config_missing_given_file)
{
	struct relayqd_config	 cfg;
	char			 err[512];
	char			*argv[] = { (char *)(uintptr_t)"relayqd",
				    (char *)(uintptr_t)"-c",
				    (char *)(uintptr_t)"/nonexistent/relayqd.conf",
				    NULL };

	config_defaults(&cfg);
	ck_assert_int_eq(config_parse(&cfg, 3, argv, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/relayqd.conf"));
}
END_TEST

START_TEST(test_config_bad_flag)
{
	struct relayqd_config	 cfg;
	char			 err[512];
	char			*argv[] = { (char *)(uintptr_t)"relayqd",
				    (char *)(uintptr_t)"--max-age",
				    (char *)(uintptr_t)"forever",
				    NULL };

	config_defaults(&cfg);
	str_copy(cfg.config_file, "/nonexistent", sizeof(cfg.config_file));
	ck_assert_int_eq(config_parse(&cfg, 3, argv, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "--max-age: \"forever\"") != NULL, "%s", err);
}
END_TEST

static const struct {
	unsigned	 attempts, min, max, want;
} delay_cases[] = {
	{ 1, 60, 3600, 60 },
	{ 2, 60, 3600, 120 },
	{ 3, 60, 3600, 240 },
	{ 6, 60, 3600, 1920 },
	{ 7, 60, 3600, 3600 },
	{ 100, 60, 3600, 3600 },
	{ 0, 60, 3600, 60 },
	{ 1, 1, 2, 1 },
	{ 2, 1, 2, 2 },
	{ 40, 1, 2, 2 },
	{ 40, 4000000000U, 4000000000U, 4000000000U },
};

START_TEST(test_scheduler_next_delay)
{
	unsigned	 got;

	got = scheduler_next_delay(delay_cases[_i].attempts,
	    delay_cases[_i].min, delay_cases[_i].max);
	ck_assert_msg(got == delay_cases[_i].want,
	    "attempts %u min %u max %u: got %u want %u",
	    delay_cases[_i].attempts, delay_cases[_i].min,
	    delay_cases[_i].max, got, delay_cases[_i].want);
}
END_TEST

Suite *
conf_suite(void)
{
	Suite	*s = suite_create("conf");
	TCase	*tc;

	tc = tcase_create("values");
	tcase_add_loop_test(tc, test_conf_duration, 0,
	    (int)nitems_ck(duration_cases));
	tcase_add_loop_test(tc, test_conf_hostport, 0,
	    (int)nitems_ck(hostport_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("relayqd");
	tcase_add_test(tc, test_config_defaults);
	tcase_add_test(tc, test_config_file_and_flags);
	tcase_add_loop_test(tc, test_config_errors_name_file_line_key, 0,
	    (int)nitems_ck(bad_cases));
	tcase_add_test(tc, test_config_missing_given_file);
	tcase_add_test(tc, test_config_bad_flag);
	suite_add_tcase(s, tc);

	tc = tcase_create("schedule");
	tcase_add_loop_test(tc, test_scheduler_next_delay, 0,
	    (int)nitems_ck(delay_cases));
	suite_add_tcase(s, tc);
	return s;
}
