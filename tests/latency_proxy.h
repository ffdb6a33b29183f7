/*
 * latency_proxy.h: a TCP proxy on loopback that adds a round-trip time,
 * for `make bench --rtt` (tests/bench.c) and its unit suite.
 *
 * The kernel here has no netem, so the delay is built in user space:
 * every chunk read from one side is delivered to the other rtt/2 later,
 * in order, and so is a half-close.  A new connection reaches the
 * upstream server 1.5 rtt after the client connected (SYN, SYN-ACK and
 * ACK), so a server's banner arrives 2 rtt after the client's connect, as
 * over real TCP.  Unlike real TCP the client's connect() returns at once,
 * but a client that speaks first still has its bytes arrive no earlier
 * than 1.5 rtt.  There is no bandwidth limit and no loss: only latency.
 *
 * The chunk queue is exposed for the tests; the proxy's main() is in
 * tests/latency_proxy_main.c.
 */
#ifndef RELAYQ_LATENCY_PROXY_H
#define RELAYQ_LATENCY_PROXY_H

#include <sys/queue.h>

#include <netinet/in.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;

/* Stop reading a side while more than this is queued toward the other. */
#define LATENCY_QUEUE_MAX	(4 * 1024 * 1024)

/* What latency_queue_pop() found at the head of the queue. */
enum latency_chunk {
	LATENCY_NONE,		/* empty, or the head is not due yet */
	LATENCY_DATA,		/* bytes, moved to the caller's buffer */
	LATENCY_EOF		/* the sender's half-close or close */
};

struct latency_item;

/* Timestamped chunks for one direction, oldest first. */
struct latency_queue {
	TAILQ_HEAD(, latency_item)	 items;
	size_t				 bytes;	/* data bytes held */
	bool				 eof;	/* an EOF was pushed */
};

/* Microseconds on CLOCK_MONOTONIC. */
uint64_t	latency_now(void);

void	latency_queue_init(struct latency_queue *);
/* Free every chunk still held. */
void	latency_queue_fini(struct latency_queue *);
/*
 * Append the whole of data (moved out of it, so data is left empty), due
 * at the given time; an empty data appends nothing.  0, or -1 after an
 * EOF was pushed.
 */
int	latency_queue_push(struct latency_queue *, struct evbuffer *data,
	    uint64_t due);
/* Append the EOF, due at the given time.  0, or -1 if already pushed. */
int	latency_queue_push_eof(struct latency_queue *, uint64_t due);
/*
 * If the head is due at now, remove it: its bytes go to out (DATA), or
 * it was the EOF.  NONE when empty or the head is due later.
 */
enum latency_chunk latency_queue_pop(struct latency_queue *, uint64_t now,
	    struct evbuffer *out);
/* The head's due time in *due; false when empty. */
bool	latency_queue_next(const struct latency_queue *, uint64_t *due);

struct latency_proxy;

/*
 * Listen on listen_addr (port 0: an ephemeral one) and relay each
 * connection to to_addr with rtt_ms of round-trip time; both addresses
 * must be on 127.0.0.0/8.  verbose logs each connection and chunk.
 * NULL with a reason in err.
 */
struct latency_proxy *latency_proxy_new(struct event_base *,
	    const struct sockaddr_in *listen_addr,
	    const struct sockaddr_in *to_addr, unsigned rtt_ms, int verbose,
	    char *err, size_t errlen);
/* The port it listens on. */
unsigned	latency_proxy_port(const struct latency_proxy *);
/* Connections accepted so far. */
unsigned long	latency_proxy_accepted(const struct latency_proxy *);
/* Close every connection and the listener; NULL is a no-op. */
void	latency_proxy_free(struct latency_proxy *);

#endif /* RELAYQ_LATENCY_PROXY_H */
