/*
 * relayqd.c: main.  Reads the configuration, opens the queue, starts the
 * scheduler and the listener on one libevent loop, and handles signals:
 * TERM/INT stop (in-flight deliveries stay queued), HUP re-reads the
 * configuration and rescans the queue, USR1 retries everything now.
 * Under systemd it takes an inherited socket ($LISTEN_FDS), reports
 * READY/STATUS/RELOADING/STOPPING and pets the watchdog from the loop.
 * --check-relay runs one authentication against the relay and exits.
 */
#include <sys/stat.h>

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "account_conf.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "queue.h"
#include "relay.h"
#include "scheduler.h"
#include "tls.h"
#include "util.h"

struct relayqd {
	struct relayqd_config	 cfg;
	struct account_conf	 account;	/* account, password-file */
	struct event_base	*base;
	struct evdns_base	*dns;
	SSL_CTX			*ssl_ctx;
	struct queue		*queue;
	struct scheduler	*sched;
	struct listener		*listener;
	struct event		*ev_sig[4];
	struct event		*ev_watchdog;	/* WATCHDOG=1 */
	struct event		*ev_status;	/* STATUS= when it changes */
	char			 helo[CONFIG_HOST_MAX];
	char			 status[512];	/* the last STATUS= sent */
	int			 listen_fd;	/* inherited, or -1 */
	int			 argc;		/* for re-reading the config */
	char			**argv;
};

#define RELAYQD_STATUS_SEC	1

static void	relayqd_libevent_log_cb(int, const char *);
static void	relayqd_queued_cb(void *, const char *);
static void	relayqd_flush_cb(void *);
static void	relayqd_signal_cb(evutil_socket_t, short, void *);
static void	relayqd_status(struct relayqd *);
static int	relayqd_start(struct relayqd *);
static void	relayqd_stop(struct relayqd *);
static void	relayqd_detach(struct relayqd *);
static void	relayqd_reload(struct relayqd *);
static int	relayqd_check_relay(struct relayqd *);

/* libevent's own messages go to our log. */
static void
relayqd_libevent_log_cb(int severity, const char *msg)
{
	if (severity == EVENT_LOG_DEBUG)
		log_debug("libevent: %s", msg);
	else
		log_warnx("libevent: %s", msg);
}

/* A submission was committed: schedule it at once. */
static void
relayqd_queued_cb(void *arg, const char *id)
{
	struct relayqd	*d = arg;

	scheduler_add(d->sched, id);
	relayqd_status(d);
}

/* ETRN, SIGUSR1: retry the whole queue now (the scheduler may refuse). */
static void
relayqd_flush_cb(void *arg)
{
	struct relayqd	*d = arg;

	log_info("flush requested queued=%zu", scheduler_count(d->sched));
	scheduler_flush(d->sched);
}

/* Tell systemd how things stand, when that changed (no-op outside it). */
static void
relayqd_status(struct relayqd *d)
{
	const char	*last = scheduler_last_result(d->sched);
	char		 status[sizeof(d->status)];

	snprintf(status, sizeof(status), "%zu queued%s%s",
	    scheduler_count(d->sched), *last ? "; last: " : "", last);
	if (strcmp(status, d->status) == 0)
		return;
	str_copy(d->status, status, sizeof(d->status));
	notify_send("STATUS=%s", status);
}

/* The watchdog and status timers. */
static void
relayqd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relayqd	*d = arg;

	UNUSED(fd);
	UNUSED(what);
	relayqd_status(d);
}

/* The watchdog: proof that the loop still turns. */
static void
relayqd_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	UNUSED(fd);
	UNUSED(what);
	UNUSED(arg);
	notify_send("WATCHDOG=1");
}

/* Under systemd: STATUS= every second if changed, WATCHDOG=1 if asked. */
static int
relayqd_notify_timers(struct relayqd *d)
{
	unsigned long long	 usec;
	struct timeval		 tv;

	if (!notify_enabled())
		return 0;
	tv.tv_sec = RELAYQD_STATUS_SEC;
	tv.tv_usec = 0;
	d->ev_status = event_new(d->base, -1, EV_PERSIST, relayqd_timer_cb, d);
	if (d->ev_status == NULL || event_add(d->ev_status, &tv) == -1)
		return -1;
	if ((usec = notify_watchdog_usec()) == 0)
		return 0;
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	d->ev_watchdog = event_new(d->base, -1, EV_PERSIST,
	    relayqd_watchdog_cb, d);
	if (d->ev_watchdog == NULL || event_add(d->ev_watchdog, &tv) == -1)
		return -1;
	log_info("watchdog: WATCHDOG=1 every %llu ms", usec / 1000);
	notify_send("WATCHDOG=1");
	return 0;
}

/* Signals arrive as ordinary events on the loop. */
static void
relayqd_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct relayqd	*d = arg;

	UNUSED(what);
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_info("received %s, stopping; queued messages stay queued",
		    sig == SIGTERM ? "SIGTERM" : "SIGINT");
		notify_send("STOPPING=1");
		event_base_loopbreak(d->base);
		break;
	case SIGHUP:
		notify_send("RELOADING=1");
		log_info("received SIGHUP, re-reading the configuration and "
		    "rescanning the queue");
		relayqd_reload(d);
		if (scheduler_scan(d->sched) == -1)
			log_warn("queue scan");
		notify_send("READY=1");
		relayqd_status(d);
		break;
	case SIGUSR1:
		relayqd_flush_cb(d);
		break;
	default:
		break;
	}
}

/*
 * The host's fully qualified name for a short one (the resolver's
 * canonical name, /etc/hosts included); name is left as it is when there
 * is none.  The relay uses an address literal for a name without a dot.
 */
static void
relayqd_fqdn(char *name, size_t len)
{
	struct addrinfo	 hints, *ai = NULL;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = AI_CANONNAME;
	if (getaddrinfo(name, NULL, &hints, &ai) != 0 || ai == NULL)
		return;
	if (ai->ai_canonname != NULL && strchr(ai->ai_canonname, '.') != NULL)
		str_copy(name, ai->ai_canonname, len);
	freeaddrinfo(ai);
}

/*
 * Our EHLO and banner name: helo, else the host's fully qualified name
 * (the relay says an address literal rather than a name without a dot).
 */
static void
relayqd_set_helo(struct relayqd *d)
{
	memset(d->helo, 0, sizeof(d->helo));
	if (d->cfg.helo[0] != '\0')
		str_copy(d->helo, d->cfg.helo, sizeof(d->helo));
	else if (gethostname(d->helo, sizeof(d->helo) - 1) == -1 ||
	    d->helo[0] == '\0')
		str_copy(d->helo, "localhost", sizeof(d->helo));
	else if (strchr(d->helo, '.') == NULL)
		relayqd_fqdn(d->helo, sizeof(d->helo));
}

/* The TLS client context for the configured CA file (or the system's). */
static SSL_CTX *
relayqd_ssl_ctx(const struct relayqd_config *cfg)
{
	SSL_CTX	*ctx;
	char	 err[1024];

	if ((ctx = tls_client_ctx(cfg->ca_file[0] ? cfg->ca_file : NULL,
	    err, sizeof(err))) == NULL)
		log_warnx("TLS setup: %s", err);
	return ctx;
}

/* The listener's parameters from the configuration. */
static void
relayqd_listener_params(struct relayqd *d, struct listener_params *lp)
{
	struct relayqd_config	*cfg = &d->cfg;

	memset(lp, 0, sizeof(*lp));
	lp->path = cfg->socket;
	lp->mode = cfg->socket_mode;
	lp->fd = d->listen_fd;
	lp->max_conn = cfg->max_conn;
	lp->max_conn_uid = cfg->max_conn_uid;
	lp->server.hostname = d->helo;
	lp->server.max_size = cfg->max_size;
	lp->server.max_rcpt = cfg->max_rcpt;
	lp->server.idle_timeout = (int)cfg->idle_timeout;
	lp->server.account = d->account.address;
}

/* The relay's parameters from the configuration. */
static void
relayqd_relay_params(struct relayqd *d, struct relay_params *rp)
{
	struct relayqd_config	*cfg = &d->cfg;

	memset(rp, 0, sizeof(*rp));
	rp->base = d->base;
	rp->dns = d->dns;
	rp->ssl_ctx = d->ssl_ctx;
	rp->host = cfg->relay_host;
	rp->port = cfg->relay_port;
	rp->tls = cfg->tls;
	rp->helo = d->helo;
	rp->timeout = (int)cfg->relay_timeout;
	rp->no_chunking = !cfg->chunking;
	rp->fd = -1;
}

/* The scheduler's parameters from the configuration. */
static void
relayqd_sched_params(struct relayqd *d, struct scheduler_params *sp)
{
	memset(sp, 0, sizeof(*sp));
	relayqd_relay_params(d, &sp->relay);
	sp->retry_min = d->cfg.retry_min;
	sp->retry_max = d->cfg.retry_max;
	sp->max_age = d->cfg.max_age;
	sp->max_parallel = d->cfg.max_parallel;
	sp->quota_probe = d->cfg.quota_probe;
	sp->quota_max_pause = d->cfg.quota_max_pause;
	sp->auth_backoff = d->cfg.auth_backoff;
	sp->account_sessions = d->cfg.account_sessions;
	sp->daily_cap = d->cfg.daily_cap;
	sp->per_minute = d->cfg.per_minute;
	sp->conn_messages = d->cfg.conn_messages;
	sp->account = &d->account;
}

/* The resolver; without resolv.conf, /etc/hosts and literals still work. */
static int
relayqd_dns(struct relayqd *d)
{
	d->dns = evdns_base_new(d->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (d->dns == NULL) {
		if ((d->dns = evdns_base_new(d->base, 0)) == NULL) {
			log_warnx("evdns_base_new failed");
			return -1;
		}
		evdns_base_load_hosts(d->dns, NULL);
	}
	return 0;
}

/*
 * The configured account (account, password-file) of cfg, checked; a
 * relative password-file is looked up in $CREDENTIALS_DIRECTORY.
 */
static int
relayqd_account(const struct relayqd_config *cfg, struct account_conf *ac,
    char *err, size_t errlen)
{
	memset(ac, 0, sizeof(*ac));
	return account_conf_init(ac, cfg->account, cfg->password_file,
	    getenv("CREDENTIALS_DIRECTORY"), geteuid(), err, errlen);
}

/*
 * SIGHUP: read the configuration again and apply it to what follows:
 * new sessions, new relay attempts, timers armed from now on.  Queued
 * messages and open sessions are untouched.  The socket and the queue
 * directory stay as they are until a restart.  A configuration with
 * errors is refused whole and the running one is kept.
 */
static void
relayqd_reload(struct relayqd *d)
{
	struct relayqd_config	 cfg;
	struct account_conf	 account;
	struct scheduler_params	 sp;
	struct listener_params	 lp;
	SSL_CTX			*ctx;
	char			 err[1024];

	config_defaults(&cfg);
	if (config_parse(&cfg, d->argc, d->argv, err, sizeof(err)) != 0) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s", err);
		return;
	}
	if (strcmp(cfg.socket, d->cfg.socket) != 0 ||
	    cfg.socket_mode != d->cfg.socket_mode ||
	    strcmp(cfg.queue_dir, d->cfg.queue_dir) != 0)
		log_warnx("reload: socket, socket-mode and queue-dir changes "
		    "take effect at the next start");
	str_copy(cfg.socket, d->cfg.socket, sizeof(cfg.socket));
	str_copy(cfg.queue_dir, d->cfg.queue_dir, sizeof(cfg.queue_dir));
	cfg.socket_mode = d->cfg.socket_mode;
	cfg.foreground = d->cfg.foreground;
	if (relayqd_account(&cfg, &account, err, sizeof(err)) == -1) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s", err);
		return;
	}
	if ((ctx = relayqd_ssl_ctx(&cfg)) == NULL) {
		log_warnx("reload failed, keeping the running configuration");
		return;
	}
	/* Relays under way hold their own reference to the old context. */
	SSL_CTX_free(d->ssl_ctx);
	d->ssl_ctx = ctx;
	d->cfg = cfg;
	d->account = account;
	relayqd_set_helo(d);
	relayqd_sched_params(d, &sp);
	scheduler_set_params(d->sched, &sp);
	relayqd_listener_params(d, &lp);
	listener_set_params(d->listener, &lp);
	log_info("reloaded %s relay=%s:%s tls=%s retry=%us..%us max-age=%us "
	    "max-parallel=%u account=%s", access(cfg.config_file, F_OK) == 0 ?
	    cfg.config_file : "(no config file)", cfg.relay_host,
	    cfg.relay_port, cfg.tls == RELAY_TLS_STARTTLS ? "starttls" :
	    "implicit", cfg.retry_min, cfg.retry_max, cfg.max_age,
	    cfg.max_parallel, account.address[0] != '\0' ? account.address :
	    "(none)");
}

/* Bring the modules up in dependency order. */
static int
relayqd_start(struct relayqd *d)
{
	static const int		 sigs[] = { SIGTERM, SIGINT, SIGHUP,
					    SIGUSR1 };
	struct relayqd_config		*cfg = &d->cfg;
	struct scheduler_params		 sp;
	struct listener_params		 lp;
	struct smtp_server_cb		 cb;
	char				 err[1024];
	size_t				 i;

	if ((d->ssl_ctx = relayqd_ssl_ctx(cfg)) == NULL)
		return -1;
	if ((d->queue = queue_open(cfg->queue_dir, err, sizeof(err))) == NULL) {
		log_warnx("queue %s: %s", cfg->queue_dir, err);
		return -1;
	}
	if ((d->base = event_base_new()) == NULL) {
		log_warnx("event_base_new failed");
		return -1;
	}
	relayqd_listener_params(d, &lp);
	memset(&cb, 0, sizeof(cb));
	cb.queued = relayqd_queued_cb;
	cb.flush = relayqd_flush_cb;
	if ((d->listener = listener_new(d->base, d->queue, &lp, &cb, d, err,
	    sizeof(err))) == NULL) {
		log_warnx("%s", err);
		return -1;
	}
	if (!cfg->foreground)
		relayqd_detach(d);

	if (relayqd_dns(d) == -1)
		return -1;
	relayqd_sched_params(d, &sp);
	d->sched = scheduler_new(d->queue, &sp);
	queue_set_adopt(d->queue, relayqd_queued_cb, d);
	if (scheduler_scan(d->sched) == -1)
		log_warn("scanning %s", cfg->queue_dir);

	for (i = 0; i < nitems(sigs); i++) {
		d->ev_sig[i] = evsignal_new(d->base, sigs[i],
		    relayqd_signal_cb, d);
		if (d->ev_sig[i] == NULL || evsignal_add(d->ev_sig[i],
		    NULL) == -1) {
			log_warnx("cannot install signal handlers");
			return -1;
		}
	}
	if (relayqd_notify_timers(d) == -1) {
		log_warnx("cannot set up the systemd notification timers");
		return -1;
	}
	log_info("started socket=%s%s queue=%s relay=%s:%s tls=%s queued=%zu "
	    "account=%s", cfg->socket, d->listen_fd >= 0 ? " (inherited)" : "",
	    cfg->queue_dir, cfg->relay_host, cfg->relay_port,
	    cfg->tls == RELAY_TLS_STARTTLS ? "starttls" : "implicit",
	    scheduler_count(d->sched), d->account.address[0] != '\0' ?
	    d->account.address : "(none)");
	notify_send("READY=1");
	relayqd_status(d);
	return 0;
}

/* Leave the terminal: fork, new session, stdio to /dev/null, syslog. */
static void
relayqd_detach(struct relayqd *d)
{
	if (daemon(0, 0) == -1)
		fatal("daemon");
	if (event_reinit(d->base) == -1)
		fatalx("event_reinit failed");
	log_init(LOG_SINK_SYSLOG, d->cfg.verbose, "relayqd");
}

/* Tear down in reverse order. */
static void
relayqd_stop(struct relayqd *d)
{
	size_t	 i;

	listener_free(d->listener);
	/*
	 * Commits in flight finish while the event base still exists; the
	 * entries of sessions already gone are not scheduled now but found
	 * by the next start's scan.
	 */
	if (d->queue != NULL) {
		queue_set_adopt(d->queue, NULL, NULL);
		queue_async_stop(d->queue);
	}
	scheduler_free(d->sched);
	for (i = 0; i < nitems(d->ev_sig); i++)
		if (d->ev_sig[i] != NULL)
			event_free(d->ev_sig[i]);
	if (d->ev_watchdog != NULL)
		event_free(d->ev_watchdog);
	if (d->ev_status != NULL)
		event_free(d->ev_status);
	/*
	 * A bufferevent freed while a deferred callback of its own was
	 * pending (a relay cancelled mid-connect) is released only when that
	 * callback runs: give libevent one pass, with nothing of ours left
	 * to call, before the base goes.
	 */
	if (d->base != NULL)
		event_base_loop(d->base, EVLOOP_NONBLOCK);
	if (d->dns != NULL)
		evdns_base_free(d->dns, 0);
	if (d->base != NULL)
		event_base_free(d->base);
	queue_close(d->queue);
	if (d->ssl_ctx != NULL)
		SSL_CTX_free(d->ssl_ctx);
}

struct relayqd_check {
	struct event_base	*base;
	enum relay_result	 result;
	char			 reply[1024];
	bool			 done;
};

/* --check-relay's transcript: the dialogue on standard output. */
static void
relayqd_check_show(void *arg, const char *dir, const char *line)
{
	UNUSED(arg);
	printf("%s: %s\n", dir, line);
	fflush(stdout);
}

/* --check-relay's session ended. */
static void
relayqd_check_done(void *arg, enum relay_result result, const char *reply)
{
	struct relayqd_check	*c = arg;

	c->result = result;
	str_copy(c->reply, reply, sizeof(c->reply));
	c->done = true;
	event_base_loopexit(c->base, NULL);
}

/*
 * relayqd --check-relay USER: connect to the configured relay, STARTTLS,
 * verify, AUTH with the password from standard input, QUIT.  The exit
 * status: 0 authenticated, EX_NOPERM refused (5xx), EX_TEMPFAIL for
 * anything temporary (no connection, TLS, 4xx), EX_USAGE without a
 * password.
 */
static int
relayqd_check_relay(struct relayqd *d)
{
	struct relayqd_check	 c;
	struct relay_params	 rp;
	struct relay_job	 job;
	struct relay		*r;
	int			 rc = EX_SOFTWARE;

	memset(&job, 0, sizeof(job));
	memset(&c, 0, sizeof(c));
	job.id = "check-relay";
	job.msgfd = -1;
	str_copy(job.cred.user, d->cfg.check_relay, sizeof(job.cred.user));
	if (read_secret(job.cred.pass, sizeof(job.cred.pass),
	    "Password: ") == -1) {
		fprintf(stderr, "relayqd: --check-relay: no password, or one "
		    "longer than %d bytes, on standard input\n",
		    SASL_SECRET_MAX - 1);
		rc = EX_USAGE;
		goto out;
	}
	if ((d->ssl_ctx = relayqd_ssl_ctx(&d->cfg)) == NULL ||
	    (d->base = event_base_new()) == NULL || relayqd_dns(d) == -1)
		goto out;
	c.base = d->base;
	relayqd_relay_params(d, &rp);
	rp.check_only = true;
	rp.transcript = relayqd_check_show;
	printf("checking %s:%s (%s) as %s\n", d->cfg.relay_host,
	    d->cfg.relay_port, d->cfg.tls == RELAY_TLS_STARTTLS ?
	    "STARTTLS" : "implicit TLS", d->cfg.check_relay);
	fflush(stdout);
	if ((r = relay_start(&rp, &job, relayqd_check_done, &c)) == NULL)
		goto out;
	event_base_dispatch(d->base);
	if (!c.done) {
		relay_cancel(r);
		goto out;
	}
	if (c.result == RELAY_OK) {
		printf("relayqd: authentication OK: %s\n", c.reply);
		rc = EXIT_SUCCESS;
	} else {
		printf("relayqd: check failed: %s\n", c.reply);
		rc = c.result == RELAY_PERMFAIL ? EX_NOPERM : EX_TEMPFAIL;
	}
out:
	sasl_cred_clear(&job.cred);
	if (d->dns != NULL)
		evdns_base_free(d->dns, 0);
	if (d->base != NULL)
		event_base_free(d->base);
	if (d->ssl_ctx != NULL)
		SSL_CTX_free(d->ssl_ctx);
	return rc;
}

int
main(int argc, char **argv)
{
	struct relayqd	 d;
	char		 err[1024];
	int		 rc;

	memset(&d, 0, sizeof(d));
	d.listen_fd = -1;
	d.argc = argc;
	d.argv = argv;
	config_defaults(&d.cfg);
	log_init(LOG_SINK_STDERR, 0, "relayqd");
	if ((rc = config_parse(&d.cfg, argc, argv, err, sizeof(err))) != 0) {
		if (rc == 1)
			return EXIT_SUCCESS;
		fprintf(stderr, "relayqd: %s\n", err);
		return EX_CONFIG;
	}
	if (relayqd_account(&d.cfg, &d.account, err, sizeof(err)) == -1) {
		fprintf(stderr, "relayqd: %s\n", err);
		return EX_CONFIG;
	}
	if (d.cfg.check_only) {
		printf("relayqd: configuration OK\n");
		return EXIT_SUCCESS;
	}
	log_init(log_sink_guess(1), d.cfg.verbose, "relayqd");
	event_set_log_callback(relayqd_libevent_log_cb);
	umask(077);
	signal(SIGPIPE, SIG_IGN);
	relayqd_set_helo(&d);
	if (d.cfg.check_relay[0] != '\0')
		return relayqd_check_relay(&d);
	if (listener_fd_from_env(&d.listen_fd, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return EX_OSERR;
	}

	if (relayqd_start(&d) == -1) {
		relayqd_stop(&d);
		return EX_UNAVAILABLE;
	}
	rc = event_base_dispatch(d.base);
	notify_send("STOPPING=1");
	relayqd_stop(&d);
	log_info("stopped");
	return rc == -1 ? EXIT_FAILURE : EXIT_SUCCESS;
}
