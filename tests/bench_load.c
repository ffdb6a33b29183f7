/*
 * bench_load.c: the load side of `make bench`: the message, concurrent
 * submitters on relayqd's Unix socket (the relayq client's own code,
 * client/submit.c), a direct STARTTLS + AUTH client for the stand-in, and
 * the watcher that timestamps arrivals as the stand-in logs them.
 */
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bench.h"
#include "message.h"
#include "mime.h"
#include "submit.h"
#include "tls.h"
#include "util.h"

#define BENCH_SUBMIT_TIMEOUT	120	/* seconds per read or write */
#define BENCH_IO_TIMEOUT	30	/* the direct client's, per step */
#define BENCH_WATCH_POLL_MS	20	/* re-check for stop this often */
#define BENCH_REPLY_MAX		4096

volatile sig_atomic_t	bench_interrupted;

/* Seconds on CLOCK_MONOTONIC. */
double
bench_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep for secs. */
void
bench_sleep(double secs)
{
	struct timespec	 ts;

	ts.tv_sec = (time_t)secs;
	ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
}

/* The envelope sender that names a slot. */
void
bench_sender(size_t slot, char *buf, size_t len)
{
	snprintf(buf, len, "m%zu@%s", slot, BENCH_DOMAIN);
}

/* ---- Arrivals ---- */

/* "m<slot>@bench.invalid" back to slot; -1 for anything else. */
static long
bench_slot_of(const char *addr)
{
	char		*end;
	unsigned long	 n;

	if (addr[0] != 'm' || addr[1] < '0' || addr[1] > '9')
		return -1;
	errno = 0;
	n = strtoul(addr + 1, &end, 10);
	if (errno != 0 || strcmp(end, "@" BENCH_DOMAIN) != 0 ||
	    n > (unsigned long)0x7fffffff)
		return -1;
	return (long)n;
}

/* Remember which slot connection conn is sending now. */
static void
bench_conn_set(struct bench_arrivals *a, unsigned long conn, long slot)
{
	size_t	 n;

	if (conn >= a->nconn) {
		n = a->nconn ? a->nconn : 256;
		while (n <= conn)
			n *= 2;
		a->conn_slot = xreallocarray(a->conn_slot, n,
		    sizeof(*a->conn_slot));
		while (a->nconn < n)
			a->conn_slot[a->nconn++] = -1;
	}
	a->conn_slot[conn] = slot;
}

/* One events.log line: "mail N from=A" or "delivered N file=F". */
static void
bench_arrivals_line(struct bench_arrivals *a, const char *line, double now)
{
	unsigned long	 conn;
	char		*end;
	long		 slot;

	if (strncmp(line, "mail ", 5) == 0) {
		conn = strtoul(line + 5, &end, 10);
		if (strncmp(end, " from=", 6) == 0)
			bench_conn_set(a, conn, bench_slot_of(end + 6));
	} else if (strncmp(line, "delivered ", 10) == 0) {
		conn = strtoul(line + 10, &end, 10);
		slot = conn < a->nconn ? a->conn_slot[conn] : -1;
		if (slot >= 0 && (size_t)slot < a->nslots &&
		    a->at[slot] == 0) {
			a->at[slot] = now;
			a->count++;
			pthread_cond_broadcast(&a->cond);
		} else
			a->unknown++;
		if (conn < a->nconn)
			a->conn_slot[conn] = -1;
	}
}

/* Read what events.log gained and take its complete lines. */
static void
bench_arrivals_read(struct bench_arrivals *a)
{
	char		 buf[16384];
	ssize_t		 n, i;
	double		 now;

	while ((n = read(a->fd, buf, sizeof(buf))) > 0) {
		now = bench_now();
		pthread_mutex_lock(&a->lock);
		for (i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (a->linelen < sizeof(a->line) - 1)
					a->line[a->linelen++] = buf[i];
				continue;
			}
			a->line[a->linelen] = '\0';
			bench_arrivals_line(a, a->line, now);
			a->linelen = 0;
		}
		pthread_mutex_unlock(&a->lock);
	}
}

/* The watcher thread: read, then sleep on inotify until the file grows. */
static void *
bench_arrivals_main(void *arg)
{
	struct bench_arrivals	*a = arg;
	struct pollfd		 pfd;
	char			 ev[4096];
	bool			 stop;

	pfd.fd = a->ifd;
	pfd.events = POLLIN;
	for (;;) {
		pthread_mutex_lock(&a->lock);
		stop = a->stop;
		pthread_mutex_unlock(&a->lock);
		if (stop)
			break;
		bench_arrivals_read(a);
		if (poll(&pfd, 1, BENCH_WATCH_POLL_MS) > 0)
			while (read(a->ifd, ev, sizeof(ev)) > 0)
				continue;
	}
	return NULL;
}

/* Start watching events.log. */
int
bench_arrivals_start(struct bench_arrivals *a, const char *path,
    size_t nslots)
{
	memset(a, 0, sizeof(*a));
	a->fd = a->ifd = -1;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->nslots = nslots;
	a->at = xcalloc(nslots, sizeof(*a->at));
	if ((a->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1 ||
	    inotify_add_watch(a->ifd, path, IN_MODIFY) == -1 ||
	    (a->fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "bench: watching %s: %s\n", path,
		    strerror(errno));
		bench_arrivals_stop(a);
		return -1;
	}
	if (pthread_create(&a->thread, NULL, bench_arrivals_main, a) != 0) {
		fprintf(stderr, "bench: cannot start the watcher\n");
		bench_arrivals_stop(a);
		return -1;
	}
	a->running = true;
	return 0;
}

/* Stop the watcher and free it. */
void
bench_arrivals_stop(struct bench_arrivals *a)
{
	if (a->running) {
		pthread_mutex_lock(&a->lock);
		a->stop = true;
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
		a->running = false;
	}
	if (a->fd != -1)
		close(a->fd);
	if (a->ifd != -1)
		close(a->ifd);
	a->fd = a->ifd = -1;
	free(a->conn_slot);
	free(a->at);
	a->conn_slot = NULL;
	a->at = NULL;
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
}

/* Wait on the condition until deadline; false once it has passed. */
static bool
bench_cond_wait(struct bench_arrivals *a, double deadline)
{
	struct timespec	 ts;
	double		 left = deadline - bench_now();
	double		 wake;

	if (left <= 0 || bench_interrupted)
		return false;
	/* Short slices, so an interrupt is seen soon. */
	wake = left < 0.1 ? left : 0.1;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)wake;
	ts.tv_nsec += (long)((wake - (double)(time_t)wake) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&a->cond, &a->lock, &ts);
	return true;
}

/* Wait for one slot. */
double
bench_arrival_wait(struct bench_arrivals *a, size_t slot, double timeout)
{
	double	 deadline = bench_now() + timeout, at;

	pthread_mutex_lock(&a->lock);
	while ((at = a->at[slot]) == 0 && bench_cond_wait(a, deadline))
		continue;
	pthread_mutex_unlock(&a->lock);
	return at == 0 ? -1 : at;
}

/* How many of [first, first + n) have arrived; caller holds the lock. */
static size_t
bench_arrived_in(const struct bench_arrivals *a, size_t first, size_t n)
{
	size_t	 i, got = 0;

	for (i = first; i < first + n; i++)
		if (a->at[i] != 0)
			got++;
	return got;
}

/* Wait for a range of slots. */
size_t
bench_arrivals_wait_range(struct bench_arrivals *a, size_t first, size_t n,
    double timeout)
{
	double	 deadline = bench_now() + timeout;
	size_t	 got;

	pthread_mutex_lock(&a->lock);
	while ((got = bench_arrived_in(a, first, n)) < n &&
	    bench_cond_wait(a, deadline))
		continue;
	pthread_mutex_unlock(&a->lock);
	return got;
}

/* A slot's arrival time, or 0. */
double
bench_arrival_at(struct bench_arrivals *a, size_t slot)
{
	double	 at;

	pthread_mutex_lock(&a->lock);
	at = a->at[slot];
	pthread_mutex_unlock(&a->lock);
	return at;
}

/* ---- The message ---- */

/* Build a message of about size bytes: the client's text and an image. */
int
bench_msg_build(struct bench_msg *m, size_t size)
{
	struct mime_header	 h;
	struct mime_part	 parts[2];
	unsigned char		*img;
	size_t			 imglen, i, overhead = 1500;
	uint32_t		 x = 2463534242u;

	/* base64 in 76-column lines: 4/3, plus CRLF every 76. */
	imglen = size > overhead + 1024 ?
	    (size - overhead) / 78 * 76 / 4 * 3 : 512;
	img = xmalloc(imglen);
	for (i = 0; i < imglen; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		img[i] = (unsigned char)x;
	}
	memset(&h, 0, sizeof(h));
	h.from = BENCH_USER;
	h.to = BENCH_RCPT;
	h.subject = "relayq bench";
	h.date = time(NULL);
	h.msgid_domain = BENCH_DOMAIN;
	memset(parts, 0, sizeof(parts));
	parts[0].content_type = "text/plain; charset=utf-8";
	parts[0].data = message_text;
	parts[0].len = strlen(message_text);
	parts[1].content_type = "image/png";
	parts[1].disposition = "attachment";
	parts[1].filename = "bench.png";
	parts[1].data = img;
	parts[1].len = imglen;
	parts[1].base64 = 1;
	m->data = mime_build(&h, parts, nitems(parts), &m->len);
	free(img);
	return m->data == NULL ? -1 : 0;
}

void
bench_msg_free(struct bench_msg *m)
{
	free(m->data);
	m->data = NULL;
	m->len = 0;
}

/* ---- Submission ---- */

/* One submission, timed from before connect to the final reply. */
int
bench_submit(const char *socket, const struct bench_msg *msg, size_t slot,
    struct bench_sub *sub, char *err, size_t errlen)
{
	struct submit_params	 p;
	struct submit_status	 st;
	struct sasl_cred	 cred;
	char			 sender[BENCH_ADDR_MAX];
	int			 fd;
	enum submit_result	 r;

	memset(&p, 0, sizeof(p));
	memset(&cred, 0, sizeof(cred));
	str_copy(cred.user, BENCH_USER, sizeof(cred.user));
	str_copy(cred.pass, BENCH_PASSWORD, sizeof(cred.pass));
	bench_sender(slot, sender, sizeof(sender));
	p.helo = "bench." BENCH_DOMAIN;
	p.sender = sender;
	p.rcpt = BENCH_RCPT;
	p.cred = &cred;
	p.msg = msg->data;
	p.msglen = msg->len;
	p.timeout = BENCH_SUBMIT_TIMEOUT;
	sub->ok = false;
	sub->t0 = bench_now();
	if ((fd = submit_connect(socket)) == -1) {
		snprintf(err, errlen, "connect %s: %s", socket,
		    strerror(errno));
		sub->t1 = bench_now();
		return -1;
	}
	r = submit_run(fd, &p, &st);
	sub->t1 = bench_now();
	close(fd);
	sasl_cred_clear(&cred);
	if (r != SUBMIT_QUEUED) {
		snprintf(err, errlen, "%s", st.reason);
		return -1;
	}
	sub->ok = true;
	return 0;
}

struct bench_worker_ctx {
	struct bench_intake	*in;
	atomic_size_t		 next;
	pthread_mutex_t		 lock;
};

/* A submitter thread: take the next message until there is none. */
static void *
bench_worker(void *arg)
{
	struct bench_worker_ctx	*w = arg;
	struct bench_intake	*in = w->in;
	char			 err[256];
	size_t			 i;

	while (!bench_interrupted &&
	    (i = atomic_fetch_add(&w->next, 1)) < in->n) {
		if (bench_submit(in->socket, in->msg, in->first + i,
		    &in->subs[i], err, sizeof(err)) == 0)
			continue;
		pthread_mutex_lock(&w->lock);
		if (in->failed++ == 0)
			snprintf(in->error, sizeof(in->error), "%s", err);
		pthread_mutex_unlock(&w->lock);
	}
	return NULL;
}

/* Run conc submitters over n messages. */
int
bench_intake_run(struct bench_intake *in)
{
	struct bench_worker_ctx	 w;
	pthread_t		*th;
	size_t			 i, started;

	in->subs = xcalloc(in->n, sizeof(*in->subs));
	in->failed = 0;
	in->error[0] = '\0';
	w.in = in;
	atomic_init(&w.next, 0);
	pthread_mutex_init(&w.lock, NULL);
	th = xcalloc(in->conc, sizeof(*th));
	for (started = 0; started < in->conc; started++)
		if (pthread_create(&th[started], NULL, bench_worker, &w) != 0)
			break;
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(th);
	pthread_mutex_destroy(&w.lock);
	return started == 0 ? -1 : 0;
}

/* ---- The direct client ---- */

struct bench_conn {
	int		 fd;
	SSL		*ssl;
	char		 in[BENCH_REPLY_MAX];
	size_t		 inlen;
};

/* Dot-stuff the message once and add the final ".". */
int
bench_direct_init(struct bench_direct *d, const char *cafile, int port,
    const struct bench_msg *m, char *err, size_t errlen)
{
	size_t	 i, o = 0;
	bool	 bol = true;

	memset(d, 0, sizeof(d[0]));
	d->port = port;
	if ((d->ctx = tls_client_ctx(cafile, err, errlen)) == NULL)
		return -1;
	d->stuffed = xmalloc(m->len * 2 + 8);
	for (i = 0; i < m->len; i++) {
		if (bol && m->data[i] == '.')
			d->stuffed[o++] = '.';
		d->stuffed[o++] = m->data[i];
		bol = m->data[i] == '\n';
	}
	if (!bol) {
		d->stuffed[o++] = '\r';
		d->stuffed[o++] = '\n';
	}
	memcpy(d->stuffed + o, ".\r\n", 3);
	d->stuffedlen = o + 3;
	return 0;
}

void
bench_direct_fini(struct bench_direct *d)
{
	if (d->ctx != NULL)
		SSL_CTX_free(d->ctx);
	free(d->stuffed);
	memset(d, 0, sizeof(*d));
}

/* Write all of buf, in the clear or through TLS.  0 or -1. */
static int
bench_conn_write(struct bench_conn *c, const void *buf, size_t len)
{
	const char	*p = buf;
	int		 n;

	if (c->ssl == NULL)
		return write_all(c->fd, buf, len);
	while (len > 0) {
		n = SSL_write(c->ssl, p, len > 1 << 30 ? 1 << 30 : (int)len);
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read one (possibly multi-line) reply; its code, or -1. */
static int
bench_conn_reply(struct bench_conn *c)
{
	char	*nl, sep;
	ssize_t	 n;
	int	 code;

	for (;;) {
		while ((nl = memchr(c->in, '\n', c->inlen)) != NULL) {
			code = (int)strtol(c->in, NULL, 10);
			n = nl - c->in + 1;
			sep = n >= 4 ? c->in[3] : '\0';
			memmove(c->in, nl + 1, c->inlen - (size_t)n);
			c->inlen -= (size_t)n;
			if (sep == ' ')
				return code;
			if (sep != '-')
				return -1;
		}
		if (c->inlen == sizeof(c->in))
			return -1;
		if (c->ssl != NULL)
			n = SSL_read(c->ssl, c->in + c->inlen,
			    (int)(sizeof(c->in) - c->inlen));
		else
			n = read(c->fd, c->in + c->inlen,
			    sizeof(c->in) - c->inlen);
		if (n <= 0)
			return -1;
		c->inlen += (size_t)n;
	}
}

/* Send a command and check the reply code. */
static int
bench_conn_cmd(struct bench_conn *c, int want, const char *cmd,
    const char *what, char *err, size_t errlen)
{
	char	 line[1100];
	int	 code;

	snprintf(line, sizeof(line), "%s\r\n", cmd);
	if (cmd[0] != '\0' && bench_conn_write(c, line, strlen(line)) == -1) {
		snprintf(err, errlen, "direct: writing %s failed", what);
		return -1;
	}
	if ((code = bench_conn_reply(c)) != want) {
		snprintf(err, errlen, "direct: %s: got %d, wanted %d", what,
		    code, want);
		return -1;
	}
	return 0;
}

/*
 * TCP connect to 127.0.0.1:port with bounded reads and writes, and
 * TCP_NODELAY as relayqd's relay has: the comparison is between two
 * clients that do not wait on Nagle.
 */
static int
bench_tcp_connect(int port)
{
	struct sockaddr_in	 sin;
	struct timeval		 tv = { BENCH_IO_TIMEOUT, 0 };
	int			 fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Plaintext greeting, EHLO, STARTTLS, handshake, EHLO again. */
static int
bench_direct_tls(struct bench_direct *d, struct bench_conn *c, char *err,
    size_t errlen)
{
	if (bench_conn_cmd(c, 220, "", "banner", err, errlen) == -1 ||
	    bench_conn_cmd(c, 250, "EHLO bench." BENCH_DOMAIN, "EHLO", err,
	    errlen) == -1 ||
	    bench_conn_cmd(c, 220, "STARTTLS", "STARTTLS", err, errlen) == -1)
		return -1;
	if ((c->ssl = tls_client_new(d->ctx, "127.0.0.1", err,
	    errlen)) == NULL)
		return -1;
	c->inlen = 0;
	if (SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1) {
		snprintf(err, errlen, "direct: TLS handshake failed");
		ERR_clear_error();
		return -1;
	}
	return bench_conn_cmd(c, 250, "EHLO bench." BENCH_DOMAIN, "EHLO",
	    err, errlen);
}

/*
 * AUTH PLAIN, then MAIL, RCPT and DATA in one PIPELINING group (the
 * stand-in offers it, as Gmail does), the body, QUIT.
 */
static int
bench_direct_mail(struct bench_direct *d, struct bench_conn *c, size_t slot,
    char *err, size_t errlen)
{
	struct sasl_cred	 cred;
	char			 b64[512], cmd[1100], sender[BENCH_ADDR_MAX];
	int			 rc;

	memset(&cred, 0, sizeof(cred));
	str_copy(cred.user, BENCH_USER, sizeof(cred.user));
	str_copy(cred.pass, BENCH_PASSWORD, sizeof(cred.pass));
	rc = sasl_plain_encode(&cred, b64, sizeof(b64));
	sasl_cred_clear(&cred);
	snprintf(cmd, sizeof(cmd), "AUTH PLAIN %s", b64);
	secure_zero(b64, sizeof(b64));
	rc = rc == -1 ? -1 : bench_conn_cmd(c, 235, cmd, "AUTH", err, errlen);
	secure_zero(cmd, sizeof(cmd));
	if (rc == -1)
		return -1;
	bench_sender(slot, sender, sizeof(sender));
	snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>\r\nRCPT TO:<" BENCH_RCPT
	    ">\r\nDATA\r\n", sender);
	if (bench_conn_write(c, cmd, strlen(cmd)) == -1) {
		snprintf(err, errlen, "direct: writing MAIL, RCPT, DATA failed");
		return -1;
	}
	if (bench_conn_cmd(c, 250, "", "MAIL", err, errlen) == -1 ||
	    bench_conn_cmd(c, 250, "", "RCPT", err, errlen) == -1 ||
	    bench_conn_cmd(c, 354, "", "DATA", err, errlen) == -1)
		return -1;
	if (bench_conn_write(c, d->stuffed, d->stuffedlen) == -1) {
		snprintf(err, errlen, "direct: writing the message failed");
		return -1;
	}
	if (bench_conn_cmd(c, 250, "", "end of data", err, errlen) == -1)
		return -1;
	return bench_conn_cmd(c, 221, "QUIT", "QUIT", err, errlen);
}

/* One whole direct session for slot. */
int
bench_direct_send(struct bench_direct *d, size_t slot, char *err,
    size_t errlen)
{
	struct bench_conn	 c;
	int			 rc = -1;

	memset(&c, 0, sizeof(c));
	if ((c.fd = bench_tcp_connect(d->port)) == -1) {
		snprintf(err, errlen, "direct: connect: %s", strerror(errno));
		return -1;
	}
	if (bench_direct_tls(d, &c, err, errlen) == 0 &&
	    bench_direct_mail(d, &c, slot, err, errlen) == 0)
		rc = 0;
	if (c.ssl != NULL) {
		SSL_shutdown(c.ssl);
		SSL_free(c.ssl);
	}
	close(c.fd);
	return rc;
}
