/*
 * latency_proxy_main.c: the latency_proxy program (see latency_proxy.h).
 *
 *	latency_proxy --listen 127.0.0.1:PORT --to 127.0.0.1:PORT --rtt MS
 *	    [--port-file FILE] [-v]
 *
 * Port 0 in --listen takes an ephemeral port; the port listened on is
 * printed on stdout and, with --port-file, written to FILE atomically
 * (as the stand-in does), so a caller can wait for the file.  Runs until
 * SIGTERM or SIGINT, then closes every connection and exits 0.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "latency_proxy.h"
#include "log.h"
#include "util.h"

#define LATENCY_RTT_MAX		10000	/* milliseconds */

/* Print the usage and exit 64 (EX_USAGE). */
static void __attribute__((noreturn))
latency_usage(void)
{
	fprintf(stderr, "usage: latency_proxy --listen 127.0.0.1:PORT "
	    "--to 127.0.0.1:PORT --rtt MS\n"
	    "                     [--port-file FILE] [-v]\n");
	exit(64);
}

/* "127.0.0.1:PORT" (an IPv4 literal, port 0 allowed) into sin. */
static void
latency_addr(const char *name, const char *arg, struct sockaddr_in *sin)
{
	const char		*colon = strrchr(arg, ':');
	char			 host[INET_ADDRSTRLEN];
	unsigned long long	 n;
	size_t			 len = colon == NULL ? 0 : (size_t)(colon - arg);

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	if (len == 0 || len >= sizeof(host) ||
	    parse_uint(colon + 1, 0, 65535, &n) == -1) {
		fprintf(stderr, "latency_proxy: %s: bad address '%s'\n", name,
		    arg);
		latency_usage();
	}
	memcpy(host, arg, len);
	host[len] = '\0';
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
		fprintf(stderr, "latency_proxy: %s: bad address '%s'\n", name,
		    arg);
		latency_usage();
	}
	sin->sin_port = htons((uint16_t)n);
}

/* Write "port\n" to path through a rename: callers wait for the file. */
static void
latency_write_port(const char *path, unsigned port)
{
	char	*tmp;
	FILE	*fp;
	int	 bad;

	xasprintf(&tmp, "%s.tmp", path);
	if ((fp = fopen(tmp, "w")) == NULL)
		fatal("%s", tmp);
	fprintf(fp, "%u\n", port);
	bad = ferror(fp);
	if (fclose(fp) != 0 || bad)
		fatalx("%s: write failed", tmp);
	if (rename(tmp, path) == -1)
		fatal("rename %s", tmp);
	free(tmp);
}

/* SIGTERM or SIGINT: leave the loop; main frees everything. */
static void
latency_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	UNUSED(sig);
	UNUSED(what);
	event_base_loopbreak(arg);
}

/* Parse the arguments, run the loop until a signal, free, exit 0. */
int
main(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_TO, O_RTT, O_PORTFILE };
	static const struct option	 opts[] = {
		{ "listen",	required_argument, NULL, O_LISTEN },
		{ "to",		required_argument, NULL, O_TO },
		{ "rtt",	required_argument, NULL, O_RTT },
		{ "port-file",	required_argument, NULL, O_PORTFILE },
		{ "verbose",	no_argument,	   NULL, 'v' },
		{ NULL,		0,		   NULL, 0 }
	};
	struct sockaddr_in	 laddr, to;
	struct event_base	*base;
	struct event		*ev_term, *ev_int;
	struct latency_proxy	*p;
	const char		*port_file = NULL;
	unsigned long long	 rtt = 0;
	char			 err[256];
	int			 ch, verbose = 0, have = 0;

	while ((ch = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (ch) {
		case O_LISTEN:
			latency_addr("--listen", optarg, &laddr);
			have |= 1;
			break;
		case O_TO:
			latency_addr("--to", optarg, &to);
			have |= 2;
			break;
		case O_RTT:
			if (parse_uint(optarg, 0, LATENCY_RTT_MAX, &rtt) == -1)
				latency_usage();
			have |= 4;
			break;
		case O_PORTFILE:
			port_file = optarg;
			break;
		case 'v':
			verbose++;
			break;
		default:
			latency_usage();
		}
	}
	if (optind != argc || have != 7)
		latency_usage();
	log_init(LOG_SINK_STDERR, verbose, "latency_proxy");
	signal(SIGPIPE, SIG_IGN);

	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	ev_term = evsignal_new(base, SIGTERM, latency_signal_cb, base);
	ev_int = evsignal_new(base, SIGINT, latency_signal_cb, base);
	if (ev_term == NULL || ev_int == NULL ||
	    evsignal_add(ev_term, NULL) == -1 ||
	    evsignal_add(ev_int, NULL) == -1)
		fatalx("signal events failed");
	if ((p = latency_proxy_new(base, &laddr, &to, (unsigned)rtt, verbose,
	    err, sizeof(err))) == NULL)
		fatalx("%s", err);
	printf("%u\n", latency_proxy_port(p));
	fflush(stdout);
	if (port_file != NULL)
		latency_write_port(port_file, latency_proxy_port(p));
	log_info("listening on 127.0.0.1:%u, to 127.0.0.1:%u, rtt %llu ms",
	    latency_proxy_port(p), ntohs(to.sin_port), rtt);

	event_base_dispatch(base);

	log_info("stopping after %lu connections", latency_proxy_accepted(p));
	latency_proxy_free(p);
	event_free(ev_term);
	event_free(ev_int);
	event_base_free(base);
	libevent_global_shutdown();
	return 0;
}
