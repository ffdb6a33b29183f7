/*
 * config.h: relayqd's settings: defaults, the config file, the command
 * line (flags override the file), and validation.
 */
#ifndef RELAYQ_CONFIG_H
#define RELAYQ_CONFIG_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>

#include "relay.h"

#define CONFIG_DEFAULT_FILE	"/etc/relayq/relayqd.conf"
#define CONFIG_PATH_MAX		4096
#define CONFIG_HOST_MAX		256

struct relayqd_config {
	char			 config_file[CONFIG_PATH_MAX];
	bool			 config_given;	/* -c used: the file must exist */
	bool			 foreground;
	bool			 check_only;	/* -n: validate and exit */
	char			 check_relay[SASL_FIELD_MAX]; /* USER, or "" */
	int			 verbose;
	char			 socket[CONFIG_PATH_MAX];
	mode_t			 socket_mode;
	char			 queue_dir[CONFIG_PATH_MAX];
	char			 relay_host[CONFIG_HOST_MAX];
	char			 relay_port[8];
	enum relay_tls_mode	 tls;
	char			 ca_file[CONFIG_PATH_MAX];	/* "" = system store */
	unsigned		 retry_min;	/* seconds */
	unsigned		 retry_max;
	unsigned		 max_age;
	unsigned		 max_parallel;
	char			 helo[CONFIG_HOST_MAX];		/* "" = gethostname */
	unsigned		 relay_timeout;	/* 0 = RFC 5321 defaults */
	size_t			 max_size;
	size_t			 max_rcpt;
	unsigned		 idle_timeout;
	size_t			 max_conn;
	size_t			 max_conn_uid;
	unsigned		 quota_probe;	/* after 550 5.4.5, seconds */
	unsigned		 quota_max_pause; /* not counted in max-age */
	unsigned		 auth_backoff;	/* after 454 4.7.0, doubling */
	unsigned		 account_sessions; /* at once per account */
	unsigned		 daily_cap;	/* sessions per account a day */
	unsigned		 per_minute;	/* and a minute */
	unsigned		 conn_messages;	/* per relay connection */
	bool			 chunking;	/* BDAT when offered */
	char			 account[CONFIG_HOST_MAX];	/* "" = none */
	char			 password_file[CONFIG_PATH_MAX]; /* may be relative */
};

/* Fill in the defaults of DESIGN.md. */
void	config_defaults(struct relayqd_config *);
/*
 * Parse argv then the config file (flags win).  0 ok; -1 with a message
 * in err; 1 when the program should exit 0 (--help, --version).
 */
int	config_parse(struct relayqd_config *, int argc, char **argv,
	    char *err, size_t errlen);
/* Print usage to fp. */
void	config_usage(void *fp);

#endif /* RELAYQ_CONFIG_H */
