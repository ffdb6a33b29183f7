/*
 * check_submit.c: the client's submission dialogue against a scripted
 * fake relayqd, forked onto the other end of a socketpair.  The fake
 * checks each command it receives against its script, answers, and
 * records every byte it read in a file the test then inspects.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "check_relayq.h"
#include "sasl.h"
#include "submit.h"
#include "util.h"

#define SENDER		"alice@example.com"
#define RCPT		"bob@example.org"
#define PASSWORD	"s3cret-Pa55word"
#define MSG		"Subject: hi\r\n\r\nhello\r\n"

#define BODY		"<body>"	/* read the message up to the dot */
#define PARTIAL		"<partial>"	/* read two body lines only */

enum step_index {
	STEP_GREETING, STEP_EHLO, STEP_AUTH, STEP_MAIL, STEP_RCPT,
	STEP_DATA, STEP_BODY, STEP_QUIT, STEP_COUNT
};

struct step {
	const char	*expect;	/* prefix of the line; NULL: none */
	const char	*reply;		/* NULL: close the connection */
};

static const struct step happy[STEP_COUNT] = {
	{ NULL,		"220-fake.example ESMTP\r\n220 relayqd ready\r\n" },
	{ "EHLO test.example\r\n",
	    "250-fake.example\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n" },
	{ "AUTH PLAIN ",	"235 2.7.0 Authentication successful\r\n" },
	{ "MAIL FROM:<" SENDER ">", "250 2.1.0 Ok\r\n" },
	{ "RCPT TO:<" RCPT ">\r\n", "250 2.1.5 Ok\r\n" },
	{ "DATA\r\n",		"354 End data with <CR><LF>.<CR><LF>\r\n" },
	{ BODY,			"250 2.0.0 Ok: queued as 7F3A9C01B2\r\n" },
	{ "QUIT\r\n",		"221 2.0.0 Bye\r\n" },
};

struct run {
	enum submit_result	 result;
	struct submit_status	 st;
	char			*transcript;
	size_t			 tlen;
	char			*rec;		/* what the fake received */
	int			 server;	/* its exit status */
};

static char		 tmpdir[] = "/tmp/check_submit.XXXXXX";
static char		 sockpath[64];
static struct sasl_cred	 cred;

/* The test credentials. */
static void
setup(void)
{
	memset(&cred, 0, sizeof(cred));
	ck_assert_int_eq(str_copy(cred.user, SENDER, sizeof(cred.user)), 0);
	ck_assert_int_eq(str_copy(cred.pass, PASSWORD, sizeof(cred.pass)), 0);
}

/* A fresh directory for a listening socket. */
static void
setup_dir(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	(void)snprintf(sockpath, sizeof(sockpath), "%s/sock", tmpdir);
}

/* Remove the socket, then the directory. */
static void
teardown_dir(void)
{
	(void)unlink(sockpath);
	ck_assert_int_eq(rmdir(tmpdir), 0);
	(void)str_copy(tmpdir, "/tmp/check_submit.XXXXXX", sizeof(tmpdir));
}

/* Read one line into *line and append it to the recording. */
static int
fake_read_line(FILE *in, FILE *rec, char **line, size_t *cap)
{
	ssize_t	 n;

	if ((n = getline(line, cap, in)) <= 0)
		return -1;
	(void)fwrite(*line, 1, (size_t)n, rec);
	return 0;
}

/* Read what one step expects and answer it; 0 or -1. */
static int
fake_step(FILE *in, FILE *rec, int fd, const struct step *st)
{
	char	*line = NULL;
	size_t	 cap = 0;
	int	 ret = -1, i;

	if (st->expect == NULL)
		ret = 0;
	else if (strcmp(st->expect, BODY) == 0) {
		while (ret == -1 && fake_read_line(in, rec, &line, &cap) == 0)
			if (strcmp(line, ".\r\n") == 0)
				ret = 0;
	} else if (strcmp(st->expect, PARTIAL) == 0) {
		for (i = 0, ret = 0; i < 2 && ret == 0; i++)
			ret = fake_read_line(in, rec, &line, &cap);
	} else if (fake_read_line(in, rec, &line, &cap) == 0 &&
	    strncmp(line, st->expect, strlen(st->expect)) == 0)
		ret = 0;
	free(line);
	/* A client that already hung up is not a script failure. */
	if (ret == 0 && st->reply != NULL)
		(void)write_all(fd, st->reply, strlen(st->reply));
	return ret;
}

/*
 * The fake daemon: play the script, recording what it reads into the
 * (unlinked) file recfd; exit 0, or 1 + the failing step.
 */
static void
fake_server(int fd, int recfd, const struct step *steps, size_t n)
{
	FILE	*in, *rec;
	size_t	 i;
	int	 status = 0;

	alarm(20);
	(void)signal(SIGPIPE, SIG_IGN);
	if ((in = fdopen(fd, "r")) == NULL ||
	    (rec = fdopen(recfd, "w")) == NULL)
		_exit(100);
	for (i = 0; i < n; i++) {
		if (fake_step(in, rec, fd, &steps[i]) == -1) {
			status = 1 + (int)i;
			break;
		}
		if (steps[i].reply == NULL)
			break;
	}
	(void)fclose(rec);
	(void)fclose(in);
	_exit(status);
}

/* The whole file fp, NUL-terminated. */
static char *
slurp(FILE *fp)
{
	char	*buf;
	long	 len;

	ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	ck_assert_int_ge(len, 0);
	rewind(fp);
	buf = xmalloc((size_t)len + 1);
	ck_assert_uint_eq(fread(buf, 1, (size_t)len, fp), (size_t)len);
	buf[len] = '\0';
	return buf;
}

/* Default parameters: the test addresses, credentials and message. */
static void
params_init(struct submit_params *p, const char *msg, size_t msglen)
{
	memset(p, 0, sizeof(*p));
	p->helo = "test.example";
	p->sender = SENDER;
	p->rcpt = RCPT;
	p->cred = &cred;
	p->msg = msg;
	p->msglen = msglen;
	p->timeout = 10;
}

/* Run submit_run against the fake playing steps; fill r. */
static void
run_submit(const struct step *steps, size_t n, struct submit_params *p,
    struct run *r)
{
	FILE	*t, *rec;
	pid_t	 pid;
	int	 sv[2], status;

	memset(r, 0, sizeof(*r));
	ck_assert_ptr_nonnull(rec = tmpfile());
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		(void)close(sv[0]);
		fake_server(sv[1], dup(fileno(rec)), steps, n);
	}
	(void)close(sv[1]);
	t = open_memstream(&r->transcript, &r->tlen);
	ck_assert_ptr_nonnull(t);
	p->transcript = t;
	r->result = submit_run(sv[0], p, &r->st);
	(void)close(sv[0]);
	ck_assert_int_eq(fclose(t), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "fake server died");
	r->server = WEXITSTATUS(status);
	r->rec = slurp(rec);
	(void)fclose(rec);
}

/* Free what run_submit allocated. */
static void
run_free(struct run *r)
{
	free(r->transcript);
	free(r->rec);
}

/* The line of rec that starts with prefix, copied without its CRLF. */
static void
rec_line(const char *rec, const char *prefix, char *out, size_t outlen)
{
	const char	*p, *eol;

	p = strstr(rec, prefix);
	ck_assert_msg(p != NULL && (p == rec || p[-1] == '\n'),
	    "no line \"%s\" in:\n%s", prefix, rec);
	eol = strstr(p, "\r\n");
	ck_assert_ptr_nonnull(eol);
	ck_assert_uint_lt((size_t)(eol - p), outlen);
	memcpy(out, p, (size_t)(eol - p));
	out[eol - p] = '\0';
}

/* The happy path queues, names the ID and exits 0. */
START_TEST(test_submit_queued)
{
	struct submit_params	 p;
	struct run		 r;

	params_init(&p, MSG, strlen(MSG));
	run_submit(happy, STEP_COUNT, &p, &r);
	ck_assert_int_eq(r.server, 0);
	ck_assert_int_eq(r.result, SUBMIT_QUEUED);
	ck_assert_str_eq(r.st.id, "7F3A9C01B2");
	ck_assert_int_eq(submit_exit_status(r.result), EX_OK);
	ck_assert_msg(strstr(r.rec, "DATA\r\nSubject: hi\r\n\r\nhello\r\n"
	    ".\r\nQUIT\r\n") != NULL, "received:\n%s", r.rec);
	run_free(&r);
}
END_TEST

/*
 * Without credentials there is no AUTH (relayqd's configured account);
 * every recipient gets its RCPT, in order.
 */
START_TEST(test_submit_no_auth_rcpts)
{
	static const char *const rcpts[] = {
		"bob@example.org", "carol@example.net", "dave@example.com"
	};
	const struct step	 steps[] = {
		happy[STEP_GREETING], happy[STEP_EHLO], happy[STEP_MAIL],
		{ "RCPT TO:<bob@example.org>\r\n", "250 2.1.5 Ok\r\n" },
		{ "RCPT TO:<carol@example.net>\r\n", "250 2.1.5 Ok\r\n" },
		{ "RCPT TO:<dave@example.com>\r\n", "250 2.1.5 Ok\r\n" },
		happy[STEP_DATA], happy[STEP_BODY], happy[STEP_QUIT]
	};
	struct submit_params	 p;
	struct run		 r;

	params_init(&p, MSG, strlen(MSG));
	p.cred = NULL;
	p.rcpt = NULL;
	p.rcpts = rcpts;
	p.nrcpt = 3;
	run_submit(steps, nitems_ck(steps), &p, &r);
	ck_assert_int_eq(r.server, 0);
	ck_assert_int_eq(r.result, SUBMIT_QUEUED);
	ck_assert_ptr_null(strstr(r.rec, "AUTH"));
	ck_assert_msg(strstr(r.rec, "RCPT TO:<bob@example.org>\r\nRCPT TO:"
	    "<carol@example.net>\r\nRCPT TO:<dave@example.com>\r\nDATA\r\n")
	    != NULL, "received:\n%s", r.rec);
	run_free(&r);

	/* A refused recipient stops the submission: 5xx, no DATA. */
	{
		struct step	 bad[nitems_ck(steps)];

		memcpy(bad, steps, sizeof(steps));
		bad[4].reply = "550 5.1.1 No such user\r\n";
		bad[5] = happy[STEP_QUIT];
		params_init(&p, MSG, strlen(MSG));
		p.cred = NULL;
		p.rcpts = rcpts;
		p.nrcpt = 3;
		run_submit(bad, 6, &p, &r);
		ck_assert_int_eq(r.result, SUBMIT_REJECTED);
		ck_assert_str_eq(r.st.reason, "550 5.1.1 No such user");
		ck_assert_ptr_null(strstr(r.rec, "dave@"));
		run_free(&r);
	}
}
END_TEST

static const struct {
	const char	*reply;		/* the reply to the end of data */
	const char	*id;
} id_cases[] = {
	{ "250 2.0.0 Ok: queued as 7F3A9C01B2\r\n",	"7F3A9C01B2" },
	{ "250 2.0.0 Ok: Queued as 20261127-0001.a_b\r\n", "20261127-0001.a_b" },
	{ "250 2.0.0 Ok: queued as ABC  (at 12:00)\r\n", "ABC" },
	{ "250-2.0.0 Ok\r\n250 2.0.0 queued as Z9\r\n",	"Z9" },
	{ "250 2.0.0 Ok\r\n",				"" },
	{ "250 2.0.0 Ok: queued as \r\n",		"" },
	{ "250 queued as 0123456789012345678901234567890123456789"
	    "012345678901234567890123\r\n",		"" },
};

/* The queue ID is the token after "queued as"; none is still success. */
START_TEST(test_submit_queue_id)
{
	struct step		 steps[STEP_COUNT];
	struct submit_params	 p;
	struct run		 r;

	memcpy(steps, happy, sizeof(happy));
	steps[STEP_BODY].reply = id_cases[_i].reply;
	params_init(&p, MSG, strlen(MSG));
	run_submit(steps, STEP_COUNT, &p, &r);
	ck_assert_int_eq(r.server, 0);
	ck_assert_int_eq(r.result, SUBMIT_QUEUED);
	ck_assert_msg(strcmp(r.st.id, id_cases[_i].id) == 0,
	    "\"%s\": id \"%s\", want \"%s\"", id_cases[_i].reply, r.st.id,
	    id_cases[_i].id);
	run_free(&r);
}
END_TEST

/* Every line sent and received appears, in order, as C: and S: lines. */
START_TEST(test_submit_transcript)
{
	static const char want[] =
	    "S: 220-fake.example ESMTP\n"
	    "S: 220 relayqd ready\n"
	    "C: EHLO test.example\n"
	    "S: 250-fake.example\n"
	    "S: 250-PIPELINING\n"
	    "S: 250-SIZE 10485760\n"
	    "S: 250-ENHANCEDSTATUSCODES\n"
	    "S: 250 AUTH PLAIN LOGIN\n"
	    "C: AUTH PLAIN ********\n"
	    "S: 235 2.7.0 Authentication successful\n"
	    "C: MAIL FROM:<" SENDER "> SIZE=22\n"
	    "S: 250 2.1.0 Ok\n"
	    "C: RCPT TO:<" RCPT ">\n"
	    "S: 250 2.1.5 Ok\n"
	    "C: DATA\n"
	    "S: 354 End data with <CR><LF>.<CR><LF>\n"
	    "C: Subject: hi\n"
	    "C: \n"
	    "C: hello\n"
	    "C: .\n"
	    "S: 250 2.0.0 Ok: queued as 7F3A9C01B2\n"
	    "C: QUIT\n"
	    "S: 221 2.0.0 Bye\n";
	struct submit_params	 p;
	struct run		 r;

	params_init(&p, MSG, strlen(MSG));
	run_submit(happy, STEP_COUNT, &p, &r);
	ck_assert_str_eq(r.transcript, want);
	run_free(&r);
}
END_TEST

/*
 * The daemon receives the real credentials, the transcript shows the
 * AUTH line masked and holds neither the password nor its base64.
 */
START_TEST(test_submit_auth_masked)
{
	struct submit_params	 p;
	struct run		 r;
	char			 b64[1024], want[1100], got[1100];

	ck_assert_int_eq(sasl_plain_encode(&cred, b64, sizeof(b64)), 0);
	params_init(&p, MSG, strlen(MSG));
	run_submit(happy, STEP_COUNT, &p, &r);
	(void)snprintf(want, sizeof(want), "AUTH PLAIN %s", b64);
	rec_line(r.rec, "AUTH ", got, sizeof(got));
	ck_assert_str_eq(got, want);
	ck_assert_ptr_nonnull(strstr(r.transcript, "\nC: AUTH PLAIN ********\n"));
	ck_assert_ptr_null(strstr(r.transcript, PASSWORD));
	ck_assert_ptr_null(strstr(r.transcript, b64));
	run_free(&r);
}
END_TEST

/*
 * An access token goes as AUTH XOAUTH2 with its initial response; the
 * transcript masks it and holds neither the token nor its base64.
 */
START_TEST(test_submit_auth_xoauth2)
{
	struct step		 steps[STEP_COUNT];
	struct submit_params	 p;
	struct run		 r;
	char			 b64[1024], want[1100], got[1100];

	cred.mech = SASL_MECH_XOAUTH2;
	ck_assert_int_eq(sasl_xoauth2_encode(&cred, b64, sizeof(b64)), 0);
	memcpy(steps, happy, sizeof(happy));
	steps[STEP_AUTH].expect = "AUTH XOAUTH2 ";
	params_init(&p, MSG, strlen(MSG));
	run_submit(steps, STEP_COUNT, &p, &r);
	ck_assert_int_eq(r.result, SUBMIT_QUEUED);
	(void)snprintf(want, sizeof(want), "AUTH XOAUTH2 %s", b64);
	rec_line(r.rec, "AUTH ", got, sizeof(got));
	ck_assert_str_eq(got, want);
	ck_assert_ptr_nonnull(strstr(r.transcript,
	    "\nC: AUTH XOAUTH2 ********\n"));
	ck_assert_ptr_null(strstr(r.transcript, PASSWORD));
	ck_assert_ptr_null(strstr(r.transcript, b64));
	run_free(&r);
}
END_TEST

/*
 * Credentials too long for one command line go after a 334 (RFC 4954);
 * both lines are masked.
 */
START_TEST(test_submit_auth_long)
{
	struct step		 steps[STEP_COUNT + 1];
	struct submit_params	 p;
	struct run		 r;
	char			 b64[1024], expect[1100], got[1100];

	memset(cred.user, 'u', 200);
	cred.user[200] = '\0';
	memset(cred.pass, 'p', 250);
	cred.pass[250] = '\0';
	ck_assert_int_eq(sasl_plain_encode(&cred, b64, sizeof(b64)), 0);
	(void)snprintf(expect, sizeof(expect), "%s\r\n", b64);
	memcpy(steps, happy, sizeof(happy[0]) * STEP_AUTH);
	steps[STEP_AUTH].expect = "AUTH PLAIN\r\n";
	steps[STEP_AUTH].reply = "334 \r\n";
	steps[STEP_AUTH + 1].expect = expect;
	steps[STEP_AUTH + 1].reply = happy[STEP_AUTH].reply;
	memcpy(steps + STEP_AUTH + 2, happy + STEP_AUTH + 1,
	    sizeof(happy[0]) * (STEP_COUNT - STEP_AUTH - 1));

	params_init(&p, MSG, strlen(MSG));
	run_submit(steps, nitems_ck(steps), &p, &r);
	ck_assert_int_eq(r.server, 0);
	ck_assert_int_eq(r.result, SUBMIT_QUEUED);
	rec_line(r.rec, b64, got, sizeof(got));
	ck_assert_str_eq(got, b64);
	ck_assert_ptr_nonnull(strstr(r.transcript,
	    "\nC: AUTH PLAIN\nS: 334 \nC: ********\nS: 235 "));
	ck_assert_ptr_null(strstr(r.transcript, "ppppp"));
	ck_assert_ptr_null(strstr(r.transcript, b64));
	run_free(&r);
}
END_TEST

static const struct {
	const char	*ehlo;		/* the fake's EHLO reply */
	const char	*msg;
	int		 size;		/* SIZE=<message length> expected */
	int		 body8;		/* BODY=8BITMIME expected */
} mail_cases[] = {
	{ "250-fake\r\n250-SIZE 1000\r\n250 AUTH PLAIN\r\n", MSG, 1, 0 },
	{ "250-fake\r\n250 SIZE\r\n", MSG, 1, 0 },
	{ "250-fake\r\n250 AUTH PLAIN\r\n", MSG, 0, 0 },
	{ "250 fake\r\n", MSG, 0, 0 },
	{ "250-fake\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n",
	    "Subject: caf\xc3\xa9\r\n\r\n\xe2\x98\x80\r\n", 0, 1 },
	{ "250-fake\r\n250-8BITMIME\r\n250 SIZE 99999\r\n",
	    "Subject: caf\xc3\xa9\r\n\r\nx\r\n", 1, 1 },
	{ "250-fake\r\n250 8BITMIME\r\n", MSG, 0, 0 },
	{ "250-fake\r\n250 AUTH PLAIN\r\n",
	    "Subject: caf\xc3\xa9\r\n\r\nx\r\n", 0, 0 },
};

/* MAIL declares SIZE and BODY=8BITMIME only when offered and needed. */
START_TEST(test_submit_mail_params)
{
	struct step		 steps[STEP_COUNT];
	struct submit_params	 p;
	struct run		 r;
	char			 size[32] = "", want[256], got[256];
	size_t			 len = strlen(mail_cases[_i].msg);

	memcpy(steps, happy, sizeof(happy));
	steps[STEP_EHLO].reply = mail_cases[_i].ehlo;
	params_init(&p, mail_cases[_i].msg, len);
	run_submit(steps, STEP_COUNT, &p, &r);
	ck_assert_int_eq(r.result, SUBMIT_QUEUED);
	if (mail_cases[_i].size)
		(void)snprintf(size, sizeof(size), " SIZE=%zu", len);
	(void)snprintf(want, sizeof(want), "MAIL FROM:<%s>%s%s", SENDER, size,
	    mail_cases[_i].body8 ? " BODY=8BITMIME" : "");
	rec_line(r.rec, "MAIL ", got, sizeof(got));
	ck_assert_msg(strcmp(got, want) == 0, "case %d: \"%s\", want \"%s\"",
	    _i, got, want);
	run_free(&r);
}
END_TEST

/* Lines starting with '.' are stuffed on the wire and in the transcript. */
START_TEST(test_submit_dot_stuffing)
{
	static const char msg[] =
	    "Subject: dots\n\n.hidden\n..two\n.\nbare\rcr\nend";
	static const char wire[] =
	    "DATA\r\nSubject: dots\r\n\r\n..hidden\r\n...two\r\n..\r\n"
	    "bare\r\ncr\r\nend\r\n.\r\n";
	struct submit_params	 p;
	struct run		 r;

	params_init(&p, msg, strlen(msg));
	run_submit(happy, STEP_COUNT, &p, &r);
	ck_assert_int_eq(r.server, 0);
	ck_assert_int_eq(r.result, SUBMIT_QUEUED);
	ck_assert_msg(strstr(r.rec, wire) != NULL, "received:\n%s", r.rec);
	ck_assert_ptr_nonnull(strstr(r.transcript, "\nC: ..hidden\n"
	    "C: ...two\nC: ..\nC: bare\nC: cr\nC: end\nC: .\nS: 250 "));
	run_free(&r);
}
END_TEST

static const struct {
	enum step_index		 at;	 /* the step whose reply differs */
	const char		*reply;	 /* NULL: close instead of replying */
	enum submit_result	 result;
	int			 status; /* sysexits code */
	const char		*reason; /* st.reason, exactly */
	int			 quit;	 /* the client said QUIT */
} fail_cases[] = {
	{ STEP_GREETING, "421 4.3.2 Too many connections, try later\r\n",
	    SUBMIT_TEMPFAIL, EX_TEMPFAIL,
	    "421 4.3.2 Too many connections, try later", 1 },
	{ STEP_GREETING, "554 5.3.2 No service here\r\n",
	    SUBMIT_REJECTED, EX_DATAERR, "554 5.3.2 No service here", 1 },
	{ STEP_EHLO, "421 4.4.2 Idle timeout\r\n",
	    SUBMIT_TEMPFAIL, EX_TEMPFAIL, "421 4.4.2 Idle timeout", 1 },
	{ STEP_AUTH, "535-5.7.8 Username and Password not accepted.\r\n"
	    "535 5.7.8 Learn more\r\n", SUBMIT_REJECTED, EX_DATAERR,
	    "535 5.7.8 Username and Password not accepted. 5.7.8 Learn more",
	    1 },
	{ STEP_MAIL, "452 4.3.1 Insufficient system storage\r\n",
	    SUBMIT_TEMPFAIL, EX_TEMPFAIL,
	    "452 4.3.1 Insufficient system storage", 1 },
	{ STEP_MAIL, "552 5.3.4 Message size exceeds fixed limit\r\n",
	    SUBMIT_REJECTED, EX_DATAERR,
	    "552 5.3.4 Message size exceeds fixed limit", 1 },
	{ STEP_RCPT, "550 5.1.1 No such user\r\n",
	    SUBMIT_REJECTED, EX_DATAERR, "550 5.1.1 No such user", 1 },
	{ STEP_DATA, "250 2.0.0 Ok\r\n",
	    SUBMIT_TEMPFAIL, EX_TEMPFAIL, "250 2.0.0 Ok", 1 },
	{ STEP_DATA, "503 5.5.1 No recipients\r\n",
	    SUBMIT_REJECTED, EX_DATAERR, "503 5.5.1 No recipients", 1 },
	{ STEP_BODY, "554 5.6.0 Message rejected\r\n",
	    SUBMIT_REJECTED, EX_DATAERR, "554 5.6.0 Message rejected", 1 },
	{ STEP_BODY, "451 4.3.0 Queue write failed\r\n",
	    SUBMIT_TEMPFAIL, EX_TEMPFAIL, "451 4.3.0 Queue write failed", 1 },
	{ STEP_GREETING, NULL, SUBMIT_TEMPFAIL, EX_TEMPFAIL,
	    "connection closed by relayqd waiting for the reply to the "
	    "greeting", 0 },
	{ STEP_EHLO, NULL, SUBMIT_TEMPFAIL, EX_TEMPFAIL,
	    "connection closed by relayqd waiting for the reply to EHLO", 0 },
	{ STEP_MAIL, NULL, SUBMIT_TEMPFAIL, EX_TEMPFAIL,
	    "connection closed by relayqd waiting for the reply to MAIL", 0 },
	{ STEP_DATA, NULL, SUBMIT_TEMPFAIL, EX_TEMPFAIL,
	    "connection closed by relayqd waiting for the reply to DATA", 0 },
	{ STEP_BODY, NULL, SUBMIT_TEMPFAIL, EX_TEMPFAIL,
	    "connection closed by relayqd waiting for the reply to the end "
	    "of data", 0 },
	{ STEP_GREETING, "hello\r\n", SUBMIT_TEMPFAIL, EX_TEMPFAIL,
	    "malformed reply to the greeting", 1 },
	{ STEP_MAIL, "250-2.1.0 Ok\r\n251 2.1.0 Ok\r\n", SUBMIT_TEMPFAIL,
	    EX_TEMPFAIL, "malformed reply to MAIL", 1 },
	{ STEP_MAIL, "250 2.1.0 Ok\r\n250 2.1.0 Again\r\n", SUBMIT_TEMPFAIL,
	    EX_TEMPFAIL, "unexpected data after the reply to MAIL", 1 },
};

/*
 * Each unexpected reply or lost connection stops the dialogue with the
 * right result, exit code and reason, and QUIT follows when it can.
 */
START_TEST(test_submit_failures)
{
	struct step		 steps[STEP_COUNT];
	struct submit_params	 p;
	struct run		 r;
	size_t			 n, len;
	int			 at = (int)fail_cases[_i].at;

	memcpy(steps, happy, sizeof(happy));
	steps[at].reply = fail_cases[_i].reply;
	n = (size_t)at + 1;
	if (fail_cases[_i].reply != NULL)
		steps[n++] = happy[STEP_QUIT];
	params_init(&p, MSG, strlen(MSG));
	run_submit(steps, n, &p, &r);

	ck_assert_msg(r.server == 0, "case %d: fake failed at step %d", _i,
	    r.server - 1);
	ck_assert_msg(r.result == fail_cases[_i].result,
	    "case %d: result %d, want %d", _i, r.result,
	    fail_cases[_i].result);
	ck_assert_int_eq(submit_exit_status(r.result), fail_cases[_i].status);
	ck_assert_str_eq(r.st.reason, fail_cases[_i].reason);
	ck_assert_str_eq(r.st.id, "");
	len = strlen(r.rec);
	ck_assert_msg((len >= 6 && strcmp(r.rec + len - 6, "QUIT\r\n") == 0) ==
	    (fail_cases[_i].quit != 0), "case %d: QUIT %s expected", _i,
	    fail_cases[_i].quit ? "" : "not");
	run_free(&r);
}
END_TEST

/*
 * The daemon goes away in the middle of a large body: no SIGPIPE, a
 * temporary failure naming the send.
 */
START_TEST(test_submit_lost_mid_body)
{
	struct step		 steps[STEP_COUNT];
	struct submit_params	 p;
	struct run		 r;
	char			*msg;
	size_t			 len = 4 * 1024 * 1024, i;

	msg = xmalloc(len);
	for (i = 0; i < len; i++)
		msg[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
	memcpy(steps, happy, sizeof(happy));
	steps[STEP_BODY].expect = PARTIAL;
	steps[STEP_BODY].reply = NULL;
	params_init(&p, msg, len);
	run_submit(steps, STEP_BODY + 1, &p, &r);
	ck_assert_int_eq(r.server, 0);
	ck_assert_int_eq(r.result, SUBMIT_TEMPFAIL);
	ck_assert_int_eq(submit_exit_status(r.result), EX_TEMPFAIL);
	ck_assert_msg(strncmp(r.st.reason, "connection lost sending the "
	    "message: ", 37) == 0, "reason: %s", r.st.reason);
	run_free(&r);
	free(msg);
}
END_TEST

/* A daemon that never answers costs the timeout, not forever. */
START_TEST(test_submit_timeout)
{
	static const struct step silent[] = {
		{ "never sent", "220 too late\r\n" }
	};
	struct submit_params	 p;
	struct run		 r;

	params_init(&p, MSG, strlen(MSG));
	p.timeout = 1;
	run_submit(silent, nitems_ck(silent), &p, &r);
	ck_assert_int_eq(r.result, SUBMIT_TEMPFAIL);
	ck_assert_str_eq(r.st.reason,
	    "timed out after 1 s waiting for the reply to the greeting");
	ck_assert_str_eq(r.rec, "");
	run_free(&r);
}
END_TEST

/* Connecting: a listening socket works, a missing one and a long path fail. */
START_TEST(test_submit_connect)
{
	struct sockaddr_un	 sun;
	char			 longpath[200];
	int			 lfd, fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_int_eq(str_copy(sun.sun_path, sockpath,
	    sizeof(sun.sun_path)), 0);

	errno = 0;
	ck_assert_int_eq(submit_connect(sockpath), -1);
	ck_assert_int_eq(errno, ENOENT);

	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, 1), 0);
	fd = submit_connect(sockpath);
	ck_assert_int_ge(fd, 0);
	(void)close(fd);
	(void)close(lfd);

	errno = 0;
	ck_assert_int_eq(submit_connect(sockpath), -1);
	ck_assert_int_eq(errno, ECONNREFUSED);

	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	errno = 0;
	ck_assert_int_eq(submit_connect(longpath), -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
}
END_TEST

Suite *
submit_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("submit");

	tc = tcase_create("dialogue");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_submit_queued);
	tcase_add_test(tc, test_submit_no_auth_rcpts);
	tcase_add_loop_test(tc, test_submit_queue_id, 0,
	    (int)nitems_ck(id_cases));
	tcase_add_test(tc, test_submit_transcript);
	tcase_add_test(tc, test_submit_auth_masked);
	tcase_add_test(tc, test_submit_auth_xoauth2);
	tcase_add_test(tc, test_submit_auth_long);
	tcase_add_loop_test(tc, test_submit_mail_params, 0,
	    (int)nitems_ck(mail_cases));
	tcase_add_test(tc, test_submit_dot_stuffing);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_submit_failures, 0,
	    (int)nitems_ck(fail_cases));
	tcase_add_test(tc, test_submit_lost_mid_body);
	tcase_add_test(tc, test_submit_timeout);
	suite_add_tcase(s, tc);

	tc = tcase_create("connect");
	tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
	tcase_add_test(tc, test_submit_connect);
	suite_add_tcase(s, tc);

	return s;
}
