/*
 * check_listener.c: the Unix socket in a fresh mkdtemp directory: its
 * mode and parent, sessions over real connections, the per-uid cap, the
 * live-daemon and stale-socket checks, an inherited fd, and cleanup.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "check_relayq.h"
#include "listener.h"
#include "queue.h"

#define NCLIENT		4

static struct {
	char			 tmpdir[64];
	char			 sock[128];	/* <tmp>/run/relayq.sock */
	char			 qdir[128];
	struct event_base	*base;
	struct queue		*q;
	struct listener		*l;
	int			 nflush;
	int			 nqueued;
	int			 fd[NCLIENT];
	char			 out[NCLIENT][4096];
	size_t			 outlen[NCLIENT];
} h;

/* nftw callback that removes one entry. */
static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A fresh directory, queue and event base. */
static void
setup(void)
{
	char	 err[256] = "";
	int	 i;

	/* As relayqd does: a peer that hung up is an EPIPE, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	memset(&h, 0, sizeof(h));
	for (i = 0; i < NCLIENT; i++)
		h.fd[i] = -1;
	strcpy(h.tmpdir, "/tmp/relayq-check-listener-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(h.tmpdir));
	snprintf(h.sock, sizeof(h.sock), "%s/run/relayq.sock", h.tmpdir);
	snprintf(h.qdir, sizeof(h.qdir), "%s/q", h.tmpdir);
	h.q = queue_open(h.qdir, err, sizeof(err));
	ck_assert_msg(h.q != NULL, "%s", err);
	h.base = event_base_new();
	ck_assert_ptr_nonnull(h.base);
}

/* Close everything and remove the directory. */
static void
teardown(void)
{
	int	 i;

	for (i = 0; i < NCLIENT; i++) {
		if (h.fd[i] != -1)
			close(h.fd[i]);
	}
	listener_free(h.l);
	queue_close(h.q);
	event_base_free(h.base);
	nftw(h.tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Application callback: a message was queued. */
static void
app_queued(void *arg, const char *id)
{
	ck_assert_ptr_eq(arg, &h);
	ck_assert_ptr_nonnull(id);
	h.nqueued++;
}

/* Application callback: ETRN. */
static void
app_flush(void *arg)
{
	ck_assert_ptr_eq(arg, &h);
	h.nflush++;
}

static const struct smtp_server_cb app_cb = { app_queued, app_flush, NULL };

/* Listener parameters for the fixture's socket. */
static void
make_params(struct listener_params *p, size_t max_conn, size_t max_uid)
{
	memset(p, 0, sizeof(*p));
	p->path = h.sock;
	p->mode = 0660;
	p->fd = -1;
	p->max_conn = max_conn;
	p->max_conn_uid = max_uid;
	p->server.hostname = "relay.test";
	p->server.max_size = 65536;
	p->server.max_rcpt = 10;
	p->server.idle_timeout = 300;
}

/* Start the fixture's listener, failing the test on error. */
static void
start(size_t max_conn, size_t max_uid)
{
	struct listener_params	 p;
	char			 err[256] = "";

	make_params(&p, max_conn, max_uid);
	h.l = listener_new(h.base, h.q, &p, &app_cb, &h, err, sizeof(err));
	ck_assert_msg(h.l != NULL, "listener_new: %s", err);
}

/* Run the loop without blocking and collect what each client got. */
static void
pump(void)
{
	ssize_t	 n;
	int	 i, k, idle = 0;
	bool	 got;

	for (k = 0; k < 10000 && idle < 16; k++) {
		event_base_loop(h.base, EVLOOP_NONBLOCK);
		got = false;
		for (i = 0; i < NCLIENT; i++) {
			if (h.fd[i] == -1)
				continue;
			n = read(h.fd[i], h.out[i] + h.outlen[i],
			    sizeof(h.out[i]) - 1 - h.outlen[i]);
			if (n > 0) {
				h.outlen[i] += (size_t)n;
				h.out[i][h.outlen[i]] = '\0';
				got = true;
			}
		}
		idle = got ? 0 : idle + 1;
	}
}

/* Connect client i to path; -1 with errno on failure. */
static int
client_connect(int i, const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	h.fd[i] = fd;
	return 0;
}

/* Send a line from client i and run the loop. */
static void
client_say(int i, const char *text)
{
	ck_assert_int_eq(write(h.fd[i], text, strlen(text)),
	    (ssize_t)strlen(text));
	pump();
}

/* The socket exists with the configured mode, in a new 0755 parent. */
START_TEST(test_listener_socket_mode)
{
	struct stat	 st;
	char		 dir[128];

	start(10, 10);
	ck_assert_int_eq(lstat(h.sock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0660);
	snprintf(dir, sizeof(dir), "%s/run", h.tmpdir);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0755);
	listener_free(h.l);
	h.l = NULL;
	ck_assert_int_eq(access(h.sock, F_OK), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* A client gets the banner, ETRN reaches the app, QUIT ends the session. */
START_TEST(test_listener_session)
{
	start(10, 10);
	ck_assert_int_eq(client_connect(0, h.sock), 0);
	pump();
	ck_assert_str_eq(h.out[0], "220 relay.test ESMTP relayq\r\n");
	ck_assert_uint_eq(listener_nsessions(h.l), 1);
	client_say(0, "EHLO c\r\nETRN\r\n");
	ck_assert_int_eq(h.nflush, 1);
	client_say(0, "QUIT\r\n");
	ck_assert_ptr_nonnull(strstr(h.out[0], "\r\n221 2.0.0 Bye\r\n"));
	ck_assert_uint_eq(listener_nsessions(h.l), 0);
}
END_TEST

/* Over the per-uid cap the next client gets 421 4.3.2; others stay. */
START_TEST(test_listener_uid_cap)
{
	start(10, 2);
	ck_assert_int_eq(client_connect(0, h.sock), 0);
	ck_assert_int_eq(client_connect(1, h.sock), 0);
	ck_assert_int_eq(client_connect(2, h.sock), 0);
	pump();
	ck_assert_str_eq(h.out[0], "220 relay.test ESMTP relayq\r\n");
	ck_assert_str_eq(h.out[1], "220 relay.test ESMTP relayq\r\n");
	ck_assert_str_eq(h.out[2],
	    "421 4.3.2 Too many connections, try again later\r\n");
	ck_assert_uint_eq(listener_nsessions(h.l), 2);
	client_say(0, "NOOP\r\n");
	ck_assert_str_eq(h.out[0],
	    "220 relay.test ESMTP relayq\r\n250 2.0.0 Ok\r\n");
}
END_TEST

/* The total cap applies the same way. */
START_TEST(test_listener_total_cap)
{
	start(1, 10);
	ck_assert_int_eq(client_connect(0, h.sock), 0);
	ck_assert_int_eq(client_connect(1, h.sock), 0);
	pump();
	ck_assert_str_eq(h.out[0], "220 relay.test ESMTP relayq\r\n");
	ck_assert_str_eq(h.out[1],
	    "421 4.3.2 Too many connections, try again later\r\n");
	ck_assert_uint_eq(listener_nsessions(h.l), 1);
}
END_TEST

/* A second daemon on a live socket is refused and leaves it alone. */
START_TEST(test_listener_refuses_live)
{
	struct listener_params	 p;
	struct listener		*l2;
	char			 err[256] = "";

	start(10, 10);
	make_params(&p, 10, 10);
	l2 = listener_new(h.base, h.q, &p, &app_cb, &h, err, sizeof(err));
	ck_assert_ptr_null(l2);
	ck_assert_msg(strstr(err, "another relayqd is already listening on ")
	    != NULL, "%s", err);
	ck_assert_int_eq(client_connect(0, h.sock), 0);
	pump();
	ck_assert_str_eq(h.out[0], "220 relay.test ESMTP relayq\r\n");
}
END_TEST

/* A stale socket file is replaced; a regular file is not. */
START_TEST(test_listener_stale_and_non_socket)
{
	struct sockaddr_un	 sun;
	struct listener_params	 p;
	char			 dir[128], err[256] = "";
	int			 fd;

	snprintf(dir, sizeof(dir), "%s/run", h.tmpdir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, h.sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);				/* the file stays: stale */
	ck_assert_int_eq(client_connect(3, h.sock), -1);
	start(10, 10);
	ck_assert_int_eq(client_connect(0, h.sock), 0);
	pump();
	ck_assert_str_eq(h.out[0], "220 relay.test ESMTP relayq\r\n");
	listener_free(h.l);
	h.l = NULL;

	fd = open(h.sock, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	make_params(&p, 10, 10);
	h.l = listener_new(h.base, h.q, &p, &app_cb, &h, err, sizeof(err));
	ck_assert_ptr_null(h.l);
	ck_assert_msg(strstr(err, "is not a socket") != NULL, "%s", err);
	ck_assert_int_eq(access(h.sock, F_OK), 0);
}
END_TEST

/* An inherited listening fd is used as is and its path is not removed. */
START_TEST(test_listener_inherited_fd)
{
	struct sockaddr_un	 sun;
	struct listener_params	 p;
	char			 dir[128], err[256] = "";
	int			 fd;

	snprintf(dir, sizeof(dir), "%s/run", h.tmpdir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, h.sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	make_params(&p, 10, 10);
	p.fd = fd;
	h.l = listener_new(h.base, h.q, &p, &app_cb, &h, err, sizeof(err));
	ck_assert_msg(h.l != NULL, "%s", err);
	ck_assert_int_eq(client_connect(0, h.sock), 0);
	pump();
	ck_assert_str_eq(h.out[0], "220 relay.test ESMTP relayq\r\n");
	listener_free(h.l);
	h.l = NULL;
	ck_assert_int_eq(access(h.sock, F_OK), 0);
}
END_TEST

/* listener_free closes live sessions (and their open transactions). */
START_TEST(test_listener_free_closes_sessions)
{
	char	 buf[64];

	start(10, 10);
	ck_assert_int_eq(client_connect(0, h.sock), 0);
	ck_assert_int_eq(client_connect(1, h.sock), 0);
	pump();
	ck_assert_uint_eq(listener_nsessions(h.l), 2);
	listener_free(h.l);
	h.l = NULL;
	/* libevent closes a freed bufferevent's fd from the loop. */
	event_base_loop(h.base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(read(h.fd[0], buf, sizeof(buf)), 0);
	ck_assert_int_eq(read(h.fd[1], buf, sizeof(buf)), 0);
	ck_assert_int_eq(access(h.sock, F_OK), -1);
}
END_TEST

/* The listener suite: its test cases and their fixtures. */
Suite *
listener_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("listener");
	tc = tcase_create("socket");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_listener_socket_mode);
	tcase_add_test(tc, test_listener_session);
	tcase_add_test(tc, test_listener_uid_cap);
	tcase_add_test(tc, test_listener_total_cap);
	tcase_add_test(tc, test_listener_refuses_live);
	tcase_add_test(tc, test_listener_stale_and_non_socket);
	tcase_add_test(tc, test_listener_inherited_fd);
	tcase_add_test(tc, test_listener_free_closes_sessions);
	suite_add_tcase(s, tc);
	return s;
}
