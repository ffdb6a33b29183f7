/*
 * relayqd.c: main.  Reads the configuration, opens the queue, starts the
 * scheduler and the listener on one libevent loop, and handles signals:
 * TERM/INT stop (in-flight deliveries stay queued), HUP rescans the
 * queue, USR1 retries everything now.
 */
#include <sys/stat.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

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
	struct event_base	*base;
	struct evdns_base	*dns;
	SSL_CTX			*ssl_ctx;
	struct queue		*queue;
	struct scheduler	*sched;
	struct listener		*listener;
	struct event		*ev_sig[4];
	char			 helo[CONFIG_HOST_MAX];
};

static void	relayqd_libevent_log_cb(int, const char *);
static void	relayqd_queued_cb(void *, const char *);
static void	relayqd_flush_cb(void *);
static void	relayqd_signal_cb(evutil_socket_t, short, void *);
static void	relayqd_status(struct relayqd *);
static int	relayqd_start(struct relayqd *);
static void	relayqd_stop(struct relayqd *);
static void	relayqd_detach(struct relayqd *);

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

/* ETRN: retry the whole queue now. */
static void
relayqd_flush_cb(void *arg)
{
	struct relayqd	*d = arg;

	log_info("flush requested: retrying %zu queued messages",
	    scheduler_count(d->sched));
	scheduler_flush(d->sched);
}

/* Tell systemd how things stand (no-op outside systemd). */
static void
relayqd_status(struct relayqd *d)
{
	const char	*last = scheduler_last_result(d->sched);

	notify_send("STATUS=%zu queued%s%s", scheduler_count(d->sched),
	    *last ? "; last: " : "", last);
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
		log_info("received SIGHUP, rescanning the queue");
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

	if ((d->ssl_ctx = tls_client_ctx(cfg->ca_file[0] ? cfg->ca_file : NULL,
	    err, sizeof(err))) == NULL) {
		log_warnx("TLS setup: %s", err);
		return -1;
	}
	if ((d->queue = queue_open(cfg->queue_dir, err, sizeof(err))) == NULL) {
		log_warnx("queue %s: %s", cfg->queue_dir, err);
		return -1;
	}
	if ((d->base = event_base_new()) == NULL) {
		log_warnx("event_base_new failed");
		return -1;
	}
	memset(&lp, 0, sizeof(lp));
	lp.path = cfg->socket;
	lp.mode = cfg->socket_mode;
	lp.fd = -1;
	lp.max_conn = cfg->max_conn;
	lp.max_conn_uid = cfg->max_conn_uid;
	lp.server.hostname = d->helo;
	lp.server.max_size = cfg->max_size;
	lp.server.max_rcpt = cfg->max_rcpt;
	lp.server.idle_timeout = (int)cfg->idle_timeout;
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

	d->dns = evdns_base_new(d->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (d->dns == NULL) {
		/* No resolv.conf: /etc/hosts and literals still work. */
		if ((d->dns = evdns_base_new(d->base, 0)) == NULL) {
			log_warnx("evdns_base_new failed");
			return -1;
		}
		evdns_base_load_hosts(d->dns, NULL);
	}
	memset(&sp, 0, sizeof(sp));
	sp.relay.base = d->base;
	sp.relay.dns = d->dns;
	sp.relay.ssl_ctx = d->ssl_ctx;
	sp.relay.host = cfg->relay_host;
	sp.relay.port = cfg->relay_port;
	sp.relay.tls = cfg->tls;
	sp.relay.helo = d->helo;
	sp.relay.timeout = (int)cfg->relay_timeout;
	sp.relay.fd = -1;
	sp.retry_min = cfg->retry_min;
	sp.retry_max = cfg->retry_max;
	sp.max_age = cfg->max_age;
	sp.max_parallel = cfg->max_parallel;
	d->sched = scheduler_new(d->queue, &sp);
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
	log_info("started socket=%s queue=%s relay=%s:%s tls=%s queued=%zu",
	    cfg->socket, cfg->queue_dir, cfg->relay_host, cfg->relay_port,
	    cfg->tls == RELAY_TLS_STARTTLS ? "starttls" : "implicit",
	    scheduler_count(d->sched));
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
	scheduler_free(d->sched);
	for (i = 0; i < nitems(d->ev_sig); i++)
		if (d->ev_sig[i] != NULL)
			event_free(d->ev_sig[i]);
	if (d->dns != NULL)
		evdns_base_free(d->dns, 0);
	if (d->base != NULL)
		event_base_free(d->base);
	queue_close(d->queue);
	if (d->ssl_ctx != NULL)
		SSL_CTX_free(d->ssl_ctx);
}

int
main(int argc, char **argv)
{
	struct relayqd	 d;
	char		 err[1024];
	int		 rc;

	memset(&d, 0, sizeof(d));
	config_defaults(&d.cfg);
	log_init(LOG_SINK_STDERR, 0, "relayqd");
	if ((rc = config_parse(&d.cfg, argc, argv, err, sizeof(err))) != 0) {
		if (rc == 1)
			return EXIT_SUCCESS;
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
	if (d.cfg.helo[0] != '\0')
		str_copy(d.helo, d.cfg.helo, sizeof(d.helo));
	else if (gethostname(d.helo, sizeof(d.helo) - 1) == -1 ||
	    d.helo[0] == '\0')
		str_copy(d.helo, "localhost", sizeof(d.helo));

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
