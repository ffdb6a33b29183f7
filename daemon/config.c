/*
 * config.c: one key table serves the config file and the command line,
 * so every flag has the same key in the file (DESIGN.md).
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "config.h"
#include "util.h"

enum config_kind {
	CONFIG_PATH,		/* char[CONFIG_PATH_MAX] */
	CONFIG_NAME,		/* char[CONFIG_HOST_MAX] */
	CONFIG_DURATION,	/* unsigned seconds */
	CONFIG_COUNT,		/* unsigned */
	CONFIG_SIZE,		/* size_t */
	CONFIG_RELAY,		/* host:port */
	CONFIG_TLS,		/* starttls | implicit */
	CONFIG_MODE,		/* octal file mode */
	CONFIG_FILE,		/* char[CONFIG_PATH_MAX], may be relative */
	CONFIG_BOOL		/* yes | no */
};

struct config_key {
	const char		*name;
	enum config_kind	 kind;
	size_t			 offset;
	unsigned long long	 min, max;
};

#define OFF(f)	offsetof(struct relayqd_config, f)

static const struct config_key config_keys[] = {
	{ "socket",		CONFIG_PATH,	 OFF(socket),	     0, 0 },
	{ "socket-mode",	CONFIG_MODE,	 OFF(socket_mode),   0, 0777 },
	{ "queue-dir",		CONFIG_PATH,	 OFF(queue_dir),     0, 0 },
	{ "relay",		CONFIG_RELAY,	 0,		     0, 0 },
	{ "tls",		CONFIG_TLS,	 OFF(tls),	     0, 0 },
	{ "ca-file",		CONFIG_PATH,	 OFF(ca_file),	     0, 0 },
	{ "retry-min",		CONFIG_DURATION, OFF(retry_min),     1, 86400 },
	{ "retry-max",		CONFIG_DURATION, OFF(retry_max),     1, 7 * 86400 },
	{ "max-age",		CONFIG_DURATION, OFF(max_age),	     1, 365 * 86400ULL },
	{ "max-parallel",	CONFIG_COUNT,	 OFF(max_parallel),  1, 1000 },
	{ "helo",		CONFIG_NAME,	 OFF(helo),	     0, 0 },
	{ "relay-timeout",	CONFIG_DURATION, OFF(relay_timeout), 0, 3600 },
	{ "max-message-size",	CONFIG_SIZE,	 OFF(max_size),	     1024, 1ULL << 32 },
	{ "max-recipients",	CONFIG_SIZE,	 OFF(max_rcpt),	     1, 1000 },
	{ "idle-timeout",	CONFIG_DURATION, OFF(idle_timeout),  1, 3600 },
	{ "max-connections",	CONFIG_SIZE,	 OFF(max_conn),	     1, 100000 },
	{ "max-connections-per-uid", CONFIG_SIZE, OFF(max_conn_uid), 1, 100000 },
	{ "quota-probe",	CONFIG_DURATION, OFF(quota_probe),   1, 86400 },
	{ "quota-max-pause",	CONFIG_DURATION, OFF(quota_max_pause), 1, 30 * 86400 },
	{ "auth-backoff",	CONFIG_DURATION, OFF(auth_backoff),  1, 86400 },
	{ "account-sessions",	CONFIG_COUNT,	 OFF(account_sessions), 1, 100 },
	{ "daily-cap",		CONFIG_COUNT,	 OFF(daily_cap),     0, 100000 },
	{ "rate-per-minute",	CONFIG_COUNT,	 OFF(per_minute),    0, 10000 },
	{ "conn-messages",	CONFIG_COUNT,	 OFF(conn_messages), 1, 10000 },
	{ "chunking",		CONFIG_BOOL,	 OFF(chunking),	     0, 0 },
	{ "account",		CONFIG_NAME,	 OFF(account),	     0, 0 },
	{ "password-file",	CONFIG_FILE,	 OFF(password_file), 0, 0 },
};

/* Long options: the keys above plus the command-line-only flags. */
enum { OPT_KEY_BASE = 256 };

static int	config_set(void *, const char *, const char *, char *, size_t);
static int	config_set_key(struct relayqd_config *,
		    const struct config_key *, const char *, char *, size_t);
static const struct config_key *config_find(const char *);

/* The defaults DESIGN.md documents. */
void
config_defaults(struct relayqd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	str_copy(cfg->config_file, CONFIG_DEFAULT_FILE,
	    sizeof(cfg->config_file));
	str_copy(cfg->socket, "/run/relayq/relayq.sock", sizeof(cfg->socket));
	cfg->socket_mode = 0666;
	str_copy(cfg->queue_dir, "/var/spool/relayq", sizeof(cfg->queue_dir));
	str_copy(cfg->relay_host, "smtp.gmail.com", sizeof(cfg->relay_host));
	str_copy(cfg->relay_port, "587", sizeof(cfg->relay_port));
	cfg->tls = RELAY_TLS_STARTTLS;
	cfg->retry_min = 60;
	cfg->retry_max = 3600;
	cfg->max_age = 5 * 86400;
	cfg->max_parallel = 4;
	cfg->max_size = 35882577;	/* what Gmail advertises */
	cfg->max_rcpt = 100;
	cfg->idle_timeout = 300;	/* RFC 5321 4.5.3.2.7 */
	cfg->max_conn = 256;
	cfg->max_conn_uid = 32;
	cfg->quota_probe = 3600;	/* Gmail: "up to 24 hours" */
	cfg->quota_max_pause = 86400;
	cfg->auth_backoff = 300;
	cfg->account_sessions = 2;
	cfg->daily_cap = 500;		/* Gmail's personal limit */
	cfg->per_minute = 0;		/* no limit */
	cfg->conn_messages = 100;
	cfg->chunking = true;
}

/* Look a key up by name. */
static const struct config_key *
config_find(const char *name)
{
	size_t	 i;

	for (i = 0; i < nitems(config_keys); i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

/* conf_load's setter: unknown keys are errors. */
static int
config_set(void *arg, const char *key, const char *value, char *err,
    size_t errlen)
{
	const struct config_key	*k;

	if ((k = config_find(key)) == NULL) {
		snprintf(err, errlen, "unknown key");
		return -1;
	}
	return config_set_key(arg, k, value, err, errlen);
}

/* Parse value by the key's kind and store it. */
static int
config_set_key(struct relayqd_config *cfg, const struct config_key *k,
    const char *value, char *err, size_t errlen)
{
	char			*field = (char *)cfg + k->offset;
	unsigned long long	 v;
	char			*end;

	switch (k->kind) {
	case CONFIG_PATH:
	case CONFIG_NAME:
	case CONFIG_FILE:
		if (k->kind == CONFIG_PATH && *value != '/' &&
		    *value != '\0') {
			snprintf(err, errlen, "\"%s\" is not an absolute path",
			    value);
			return -1;
		}
		if (str_copy(field, value, k->kind != CONFIG_NAME ?
		    CONFIG_PATH_MAX : CONFIG_HOST_MAX) == -1) {
			snprintf(err, errlen, "value too long");
			return -1;
		}
		return 0;
	case CONFIG_DURATION:
	case CONFIG_COUNT:
		if ((k->kind == CONFIG_DURATION ?
		    conf_duration(value, k->min, k->max, &v) :
		    parse_uint(value, k->min, k->max, &v)) == -1)
			goto range;
		*(unsigned *)(void *)field = (unsigned)v;
		return 0;
	case CONFIG_SIZE:
		if (parse_uint(value, k->min, k->max, &v) == -1)
			goto range;
		*(size_t *)(void *)field = (size_t)v;
		return 0;
	case CONFIG_RELAY:
		if (conf_hostport(value, "587", cfg->relay_host,
		    sizeof(cfg->relay_host), cfg->relay_port,
		    sizeof(cfg->relay_port)) == -1) {
			snprintf(err, errlen, "\"%s\" is not host:port, "
			    "ip:port or [ipv6]:port", value);
			return -1;
		}
		return 0;
	case CONFIG_BOOL:
		if (strcmp(value, "yes") == 0)
			*(bool *)(void *)field = true;
		else if (strcmp(value, "no") == 0)
			*(bool *)(void *)field = false;
		else {
			snprintf(err, errlen, "\"%s\": expected yes or no",
			    value);
			return -1;
		}
		return 0;
	case CONFIG_TLS:
		if (strcmp(value, "starttls") == 0)
			cfg->tls = RELAY_TLS_STARTTLS;
		else if (strcmp(value, "implicit") == 0)
			cfg->tls = RELAY_TLS_IMPLICIT;
		else {
			snprintf(err, errlen, "\"%s\": expected starttls or "
			    "implicit", value);
			return -1;
		}
		return 0;
	case CONFIG_MODE:
		errno = 0;
		v = strtoull(value, &end, 8);
		if (*value == '\0' || *end != '\0' || errno != 0 || v > k->max)
			goto range;
		cfg->socket_mode = (mode_t)v;
		return 0;
	}
	return 0;
range:
	if (k->kind == CONFIG_DURATION)
		snprintf(err, errlen, "\"%s\": expected a duration from %llus "
		    "to %llus (units s, m, h, d)", value, k->min, k->max);
	else if (k->kind == CONFIG_MODE)
		snprintf(err, errlen, "\"%s\": expected an octal mode such "
		    "as 0660", value);
	else
		snprintf(err, errlen, "\"%s\": expected a number from %llu "
		    "to %llu", value, k->min, k->max);
	return -1;
}

/* The usage text, which lists every key flag. */
void
config_usage(void *fp)
{
	fprintf(fp,
	    "usage: relayqd [-fnv] [-c FILE] [--socket PATH] [--queue-dir DIR]\n"
	    "               [--relay HOST:PORT] [--tls starttls|implicit]\n"
	    "               [--ca-file PEM] [--retry-min SECONDS]\n"
	    "               [--retry-max SECONDS] [--max-age SECONDS]\n"
	    "               [--max-parallel N] [--helo NAME] [--KEY VALUE ...]\n"
	    "       relayqd [-c FILE] [--relay ...] --check-relay USER"
	    " (password on stdin)\n"
	    "Every key of relayqd.conf(5) is also a --KEY flag; flags win over"
	    " the file.\n");
}

/* Build getopt's table: fixed flags, then one entry per key. */
static struct option *
config_longopts(void)
{
	static const struct option fixed[] = {
		{ "foreground",	  no_argument,	     NULL, 'f' },
		{ "config",	  required_argument, NULL, 'c' },
		{ "check-config", no_argument,	     NULL, 'n' },
		{ "verbose",	  no_argument,	     NULL, 'v' },
		{ "help",	  no_argument,	     NULL, 'h' },
		{ "version",	  no_argument,	     NULL, 'V' },
		{ "check-relay",  required_argument, NULL, 'R' },
	};
	struct option	*o;
	size_t		 i, n = nitems(fixed);

	o = xcalloc(n + nitems(config_keys) + 1, sizeof(*o));
	memcpy(o, fixed, sizeof(fixed));
	for (i = 0; i < nitems(config_keys); i++) {
		o[n + i].name = config_keys[i].name;
		o[n + i].has_arg = required_argument;
		o[n + i].val = OPT_KEY_BASE + (int)i;
	}
	return o;
}

/* Two passes over argv: find the file first, then let flags override it. */
int
config_parse(struct relayqd_config *cfg, int argc, char **argv, char *err,
    size_t errlen)
{
	struct option	*longopts = config_longopts();
	const char	*optstr = "+fc:nvhV";
	char		 msg[256];
	int		 ch, rc = -1;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, optstr, longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			cfg->foreground = true;
			break;
		case 'c':
			if (str_copy(cfg->config_file, optarg,
			    sizeof(cfg->config_file)) == -1) {
				snprintf(err, errlen, "-c: path too long");
				goto out;
			}
			cfg->config_given = true;
			break;
		case 'n':
			cfg->check_only = true;
			break;
		case 'R':
			if (str_copy(cfg->check_relay, optarg,
			    sizeof(cfg->check_relay)) == -1 ||
			    optarg[0] == '\0') {
				snprintf(err, errlen, "--check-relay: the user "
				    "name must be 1 to %d bytes",
				    SASL_FIELD_MAX - 1);
				goto out;
			}
			break;
		case 'v':
			cfg->verbose++;
			break;
		case 'h':
			config_usage(stdout);
			rc = 1;
			goto out;
		case 'V':
			printf("relayqd " RELAYQ_VERSION "\n");
			rc = 1;
			goto out;
		case '?':
		case ':':
			snprintf(err, errlen, "%s: unknown option or missing "
			    "value (see relayqd --help)", argv[optind - 1]);
			goto out;
		default:
			break;
		}
	}
	if (optind != argc) {
		snprintf(err, errlen, "unexpected argument \"%s\"",
		    argv[optind]);
		goto out;
	}
	if (cfg->config_given || access(cfg->config_file, F_OK) == 0) {
		if (conf_load(cfg->config_file, config_set, cfg, err,
		    errlen) == -1)
			goto out;
	}
	optind = 1;
	while ((ch = getopt_long(argc, argv, optstr, longopts, NULL)) != -1) {
		if (ch < OPT_KEY_BASE)
			continue;
		if (config_set_key(cfg, &config_keys[ch - OPT_KEY_BASE],
		    optarg, msg, sizeof(msg)) == -1) {
			snprintf(err, errlen, "--%s: %s",
			    config_keys[ch - OPT_KEY_BASE].name, msg);
			goto out;
		}
	}
	if (cfg->retry_min > cfg->retry_max) {
		snprintf(err, errlen, "retry-min (%us) is larger than "
		    "retry-max (%us)", cfg->retry_min, cfg->retry_max);
		goto out;
	}
	if (cfg->socket[0] == '\0' || cfg->queue_dir[0] == '\0') {
		snprintf(err, errlen, "socket and queue-dir must not be empty");
		goto out;
	}
	rc = 0;
out:
	free(longopts);
	return rc;
}
