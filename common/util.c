/*
 * util.c: allocation, string, parsing and durability helpers.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Allocate or die. */
void *
xmalloc(size_t size)
{
	void	*p;

	if (size == 0)
		fatalx("xmalloc: zero size");
	if ((p = malloc(size)) == NULL)
		fatal("xmalloc: allocating %zu bytes", size);
	return p;
}

/* Allocate zeroed memory or die. */
void *
xcalloc(size_t nmemb, size_t size)
{
	void	*p;

	if (nmemb == 0 || size == 0)
		fatalx("xcalloc: zero size");
	if ((p = calloc(nmemb, size)) == NULL)
		fatal("xcalloc: allocating %zu * %zu bytes", nmemb, size);
	return p;
}

/* Resize an array, checking the multiplication, or die. */
void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	void	*p;

	if (nmemb == 0 || size == 0)
		fatalx("xreallocarray: zero size");
	if (SIZE_MAX / nmemb < size)
		fatalx("xreallocarray: %zu * %zu overflows", nmemb, size);
	if ((p = realloc(ptr, nmemb * size)) == NULL)
		fatal("xreallocarray: allocating %zu * %zu bytes", nmemb, size);
	return p;
}

/* Duplicate a string or die. */
char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		fatal("xstrdup");
	return p;
}

/* Duplicate at most n bytes of a string or die. */
char *
xstrndup(const char *s, size_t n)
{
	char	*p;

	if ((p = strndup(s, n)) == NULL)
		fatal("xstrndup");
	return p;
}

/* Format into a new string or die; returns the length. */
int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n == -1)
		fatal("xasprintf");
	return n;
}

/* Bounded copy that always terminates and reports truncation. */
int
str_copy(char *dst, const char *src, size_t dstsize)
{
	size_t	 len;

	if (dstsize == 0)
		return -1;
	len = strlen(src);
	if (len >= dstsize) {
		memcpy(dst, src, dstsize - 1);
		dst[dstsize - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

/* Strict decimal parse in the spirit of strtonum(3). */
int
parse_uint(const char *s, unsigned long long min, unsigned long long max,
    unsigned long long *out)
{
	unsigned long long	 v;
	char			*end;

	if (s == NULL || *s < '0' || *s > '9') {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE || v < min || v > max) {
		errno = ERANGE;
		return -1;
	}
	if (*end != '\0') {
		errno = EINVAL;
		return -1;
	}
	*out = v;
	return 0;
}

/* Write everything, riding out EINTR and short writes. */
int
write_all(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Make the directory's entries (renames, unlinks) durable. */
int
fsync_dir(const char *path)
{
	int	 fd, saved_errno;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if (fsync(fd) == -1) {
		saved_errno = errno;
		close(fd);
		errno = saved_errno;
		return -1;
	}
	return close(fd);
}

/* Wipe secrets; explicit_bzero is not optimised away. */
void
secure_zero(void *p, size_t len)
{
	explicit_bzero(p, len);
}

/* Reject strings that could split a protocol line or a text file line. */
bool
str_is_clean(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return false;
	return true;
}

/* Turn terminal echo off (on == 0) or back on; 0 if stdin is a tty. */
static int
util_echo(struct termios *saved, int on)
{
	struct termios	 t;

	if (on)
		return tcsetattr(STDIN_FILENO, TCSAFLUSH, saved);
	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, saved) == -1)
		return -1;
	t = *saved;
	t.c_lflag &= ~(tcflag_t)ECHO;
	return tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
}

/* One line of standard input into buf; see util.h. */
int
read_secret(char *buf, size_t len, const char *prompt)
{
	struct termios	 saved;
	size_t		 n = 0;
	ssize_t		 r;
	char		 c;
	int		 tty, ret = 0;

	tty = util_echo(&saved, 0) == 0;
	if (tty)
		(void)fputs(prompt, stderr);
	for (;;) {
		r = read(STDIN_FILENO, &c, 1);
		if (r == -1 && errno == EINTR)
			continue;
		if (r != 1 || c == '\n')
			break;
		if (n + 1 >= len)
			ret = -1;
		else
			buf[n++] = c;
	}
	secure_zero(&c, sizeof(c));
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	if (tty) {
		(void)util_echo(&saved, 1);
		(void)fputc('\n', stderr);
	}
	if (n == 0)
		ret = -1;
	if (ret == -1)
		secure_zero(buf, len);
	return ret;
}
