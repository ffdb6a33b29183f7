/*
 * fuzz_session.c: libFuzzer harness for one submission session
 * (daemon/smtp_server.c) fed an arbitrary byte stream over a socketpair.
 *
 * The queue is a stand-in kept in memory (below), so the harness runs at
 * fuzzing speed and commits never touch a disk; the session code is the
 * real one.  The first input byte picks the limits (1 to 4 recipients,
 * a message maximum of 1 KiB to 16 KiB) so the fuzzer reaches them.  What
 * must hold: every reply line is "NNN", "NNN " or "NNN-" text CRLF with a
 * code in 200..559; a commit carries a sender and 1..max recipients and
 * at most max_size bytes; the session frees its transaction (the stub
 * counts open ones) and goes away on EOF.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "envelope.h"
#include "log.h"
#include "queue.h"
#include "sasl.h"
#include "smtp_server.h"

#define FUZZ_ROUNDS	4096	/* loop turns per input, a bound */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	LLVMFuzzerInitialize(int *, char ***);

struct queue_tx {
	size_t	 size;
};

static struct {
	struct event_base	*base;
	size_t			 max_size;
	size_t			 max_rcpt;
	int			 open_tx;
	bool			 closed;
	char			 out[8192];	/* a partial reply line */
	size_t			 outlen;
} fz;

/* ---- the in-memory queue ---- */

/* Open a transaction. */
struct queue_tx *
queue_tx_begin(struct queue *q)
{
	struct queue_tx	*tx;

	(void)q;
	if ((tx = calloc(1, sizeof(*tx))) == NULL)
		abort();
	fz.open_tx++;
	return tx;
}

/* A fixed ID. */
const char *
queue_tx_id(const struct queue_tx *tx)
{
	(void)tx;
	return "FUZZ0000000001";
}

/* Count the bytes; the session must stay under its maximum. */
int
queue_tx_write(struct queue_tx *tx, const void *buf, size_t len)
{
	(void)buf;
	tx->size += len;
	if (tx->size > fz.max_size)
		abort();
	return 0;
}

/* Check the envelope the session built, then forget the tx. */
int
queue_tx_commit(struct queue_tx *tx, struct envelope *env,
    const struct sasl_cred *cred)
{
	(void)cred;
	if (env->nrcpt == 0 || env->nrcpt > fz.max_rcpt ||
	    tx->size > fz.max_size)
		abort();
	free(tx);
	fz.open_tx--;
	return 0;
}

/* A commit's completion, due on the next loop pass. */
struct fuzz_commit {
	void	(*done)(void *, const char *, int);
	void	*arg;
};

/* Run a deferred completion. */
static void
fuzz_commit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fuzz_commit	*c = arg;

	(void)fd;
	(void)what;
	c->done(c->arg, "FUZZ0000000001", 0);
	free(c);
}

/* Check and forget the tx now; complete on a later pass, like the queue. */
int
queue_tx_commit_async(struct queue_tx *tx, struct event_base *base,
    struct envelope *env, const struct sasl_cred *cred,
    void (*done)(void *, const char *, int), void *arg)
{
	struct fuzz_commit	*c;
	struct timeval		 tv = { 0, 0 };

	if (queue_tx_commit(tx, env, cred) == -1)
		return -1;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		abort();
	c->done = done;
	c->arg = arg;
	if (event_base_once(base, -1, EV_TIMEOUT, fuzz_commit_cb, c, &tv) == -1)
		abort();
	return 0;
}

/* A committed entry whose session is gone: nothing schedules here. */
void
queue_adopt(struct queue *q, const char *id)
{
	(void)q;
	(void)id;
}

/* Forget the tx (NULL is fine). */
void
queue_tx_abort(struct queue_tx *tx)
{
	if (tx == NULL)
		return;
	free(tx);
	fz.open_tx--;
}

/* ---- the session ---- */

/* The session is gone. */
static void
fuzz_closed(void *arg, struct smtp_server *s)
{
	(void)arg;
	(void)s;
	fz.closed = true;
}

/* One reply line (without CRLF) must be "NNN" [" " | "-" text]. */
static void
fuzz_reply_line(const char *p, size_t len)
{
	int	 code;

	if (len < 3 || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' ||
	    p[2] < '0' || p[2] > '9')
		abort();
	code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	if (code > 559 || (len > 3 && p[3] != ' ' && p[3] != '-'))
		abort();
	if (memchr(p, '\r', len) != NULL || memchr(p, '\0', len) != NULL)
		abort();
}

/* Read what the server said and check each complete line. */
static void
fuzz_drain(int fd)
{
	char	 buf[4096], *nl;
	ssize_t	 n;
	size_t	 i, start;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (i = 0; i < (size_t)n; i++) {
			if (fz.outlen >= sizeof(fz.out))
				abort();
			fz.out[fz.outlen++] = buf[i];
		}
		start = 0;
		while ((nl = memchr(fz.out + start, '\n',
		    fz.outlen - start)) != NULL) {
			i = (size_t)(nl - fz.out);
			if (i == start || fz.out[i - 1] != '\r')
				abort();
			fuzz_reply_line(fz.out + start, i - 1 - start);
			start = i + 1;
		}
		memmove(fz.out, fz.out + start, fz.outlen - start);
		fz.outlen -= start;
	}
}

/* Quiet logs, one event base for the whole run. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(LOG_SINK_STDERR, -1, "fuzz_session");
	if ((fz.base = event_base_new()) == NULL)
		abort();
	return 0;
}

/* Write the input, run the loop until idle, then EOF and teardown. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct smtp_server_cb	 cb = { NULL, NULL, fuzz_closed };
	struct smtp_server_params	 params;
	struct bufferevent		*bev;
	struct smtp_server		*s;
	size_t				 off = 1, round;
	ssize_t				 n;
	int				 sv[2];

	if (size < 1 || size > 256 * 1024)
		return 0;
	fz.max_rcpt = 1 + (data[0] & 3);
	fz.max_size = (size_t)1024 << ((data[0] >> 2) & 3);
	fz.closed = false;
	fz.outlen = 0;
	memset(&params, 0, sizeof(params));
	params.hostname = "fuzz.test";
	params.max_size = fz.max_size;
	params.max_rcpt = fz.max_rcpt;
	params.idle_timeout = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1 ||
	    fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(sv[1], F_SETFL, O_NONBLOCK) == -1)
		abort();
	bev = bufferevent_socket_new(fz.base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		abort();
	s = smtp_server_new(fz.base, bev, NULL, &params, &cb, NULL, 1000, 1,
	    0);
	if (off == size)
		shutdown(sv[1], SHUT_WR);
	for (round = 0; round < FUZZ_ROUNDS && !fz.closed; round++) {
		if (off < size) {
			n = write(sv[1], data + off, size - off);
			if (n > 0)
				off += (size_t)n;
			else if (n == -1 && errno != EAGAIN)
				off = size;	/* the server went away */
			if (off == size)
				shutdown(sv[1], SHUT_WR);
		}
		event_base_loop(fz.base, EVLOOP_NONBLOCK);
		fuzz_drain(sv[1]);
	}
	if (!fz.closed)
		smtp_server_free(s);
	close(sv[1]);
	if (fz.open_tx != 0)
		abort();
	return 0;
}
