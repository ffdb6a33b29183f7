/*
 * util.h: small helpers shared by every relayq program.
 *
 * Allocation wrappers that treat exhaustion as fatal, a bounded string copy
 * (glibc 2.36 has no strlcpy), strict unsigned parsing, full writes, and the
 * durability primitive fsync_dir().
 */
#ifndef RELAYQ_UTIL_H
#define RELAYQ_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))
#define UNUSED(x)	((void)(x))

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
int	 xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

/* Copy src into dst (size dstsize), always terminated; -1 if truncated. */
int	 str_copy(char *dst, const char *src, size_t dstsize);

/* Parse a decimal unsigned in [min, max]; 0 on success, -1 with errno. */
int	 parse_uint(const char *, unsigned long long min,
	    unsigned long long max, unsigned long long *out);

/* Write all of buf, retrying on EINTR and short writes; 0 or -1/errno. */
int	 write_all(int fd, const void *buf, size_t len);
/*
 * One line of standard input into buf (NUL-terminated), read byte by byte
 * so no stdio buffer keeps a copy; with a terminal, prompt goes to stderr
 * and echo is off.  The newline (and a CR before it) is dropped.  0, or -1
 * (buf wiped) when the line is empty, missing or too long.
 */
int	 read_secret(char *buf, size_t len, const char *prompt);

/* fsync a directory by path so renames and unlinks in it are durable. */
int	 fsync_dir(const char *path);

/* Zero memory in a way the compiler may not elide. */
void	 secure_zero(void *, size_t);

/* True when s has no CR, LF or NUL within its first len bytes. */
bool	 str_is_clean(const char *s, size_t len);

#endif /* RELAYQ_UTIL_H */
