/*
 * account.c: per-account state, keyed by a keyed hash of the credentials
 * (account.h).  The table is a short list: a relayqd sends for a handful
 * of accounts.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "account.h"
#include "log.h"
#include "util.h"

struct account_table {
	unsigned char	 secret[32];	/* the HMAC key, this process only */
	struct account	*head;
};

/* A table with a fresh random key. */
struct account_table *
account_table_new(void)
{
	struct account_table	*t;

	t = xcalloc(1, sizeof(*t));
	if (RAND_bytes(t->secret, sizeof(t->secret)) != 1) {
		free(t);
		return NULL;
	}
	return t;
}

/* Free the accounts and wipe the key. */
void
account_table_free(struct account_table *t)
{
	struct account	*a;

	if (t == NULL)
		return;
	while ((a = t->head) != NULL) {
		t->head = a->next;
		free(a->sends);
		secure_zero(a, sizeof(*a));
		free(a);
	}
	secure_zero(t->secret, sizeof(t->secret));
	free(t);
}

/*
 * HMAC-SHA256(secret, user "\0" pass "\0" mech) into key, so a password and
 * a token of the same text are two accounts; the input copy is wiped.
 */
static void
account_hash(const struct account_table *t, const struct sasl_cred *cred,
    unsigned char key[ACCOUNT_KEY_LEN])
{
	unsigned char	 buf[SASL_FIELD_MAX + SASL_SECRET_MAX + 3];
	unsigned int	 len = ACCOUNT_KEY_LEN;
	size_t		 ulen, plen;

	ulen = strnlen(cred->user, sizeof(cred->user));
	plen = strnlen(cred->pass, sizeof(cred->pass));
	memcpy(buf, cred->user, ulen);
	buf[ulen] = '\0';
	memcpy(buf + ulen + 1, cred->pass, plen);
	buf[ulen + 1 + plen] = '\0';
	buf[ulen + 2 + plen] = cred->mech == SASL_MECH_XOAUTH2 ? 'X' : 'P';
	if (HMAC(EVP_sha256(), t->secret, (int)sizeof(t->secret), buf,
	    ulen + 3 + plen, key, &len) == NULL || len != ACCOUNT_KEY_LEN)
		fatalx("HMAC-SHA256 failed");
	secure_zero(buf, sizeof(buf));
}

/* The account for cred, created as needed. */
struct account *
account_get(struct account_table *t, const struct sasl_cred *cred)
{
	unsigned char	 key[ACCOUNT_KEY_LEN];
	struct account	*a;

	account_hash(t, cred, key);
	for (a = t->head; a != NULL; a = a->next)
		if (CRYPTO_memcmp(a->key, key, sizeof(key)) == 0)
			return a;
	a = xcalloc(1, sizeof(*a));
	memcpy(a->key, key, sizeof(key));
	a->next = t->head;
	t->head = a;
	return a;
}

/* True when cred hashes to the account's key. */
bool
account_match(const struct account_table *t, const struct account *a,
    const struct sasl_cred *cred)
{
	unsigned char	 key[ACCOUNT_KEY_LEN];

	account_hash(t, cred, key);
	return CRYPTO_memcmp(a->key, key, sizeof(key)) == 0;
}

/* The later of the quota pause and the login backoff, if still ahead. */
time_t
account_wait_until(const struct account *a, time_t now)
{
	time_t	 until = 0;

	if (a->quota && a->paused_until > now)
		until = a->paused_until;
	if (a->backoff_until > now && a->backoff_until > until)
		until = a->backoff_until;
	return until;
}

/* Drop the send times older than 24 hours. */
static void
account_prune(struct account *a, time_t now)
{
	size_t	 old = 0;

	while (old < a->nsends && a->sends[old] <= now - 86400)
		old++;
	if (old == 0)
		return;
	memmove(a->sends, a->sends + old, (a->nsends - old) *
	    sizeof(*a->sends));
	a->nsends -= old;
}

/* Count a session start at now. */
void
account_note_send(struct account *a, time_t now)
{
	account_prune(a, now);
	if (a->nsends == a->sends_cap) {
		a->sends_cap = a->sends_cap ? 2 * a->sends_cap : 64;
		a->sends = xreallocarray(a->sends, a->sends_cap,
		    sizeof(*a->sends));
	}
	a->sends[a->nsends++] = now;
}

/* When the next session fits both limits; 0: now. */
time_t
account_pace_until(struct account *a, time_t now, unsigned daily_cap,
    unsigned per_minute, char *why, size_t whylen)
{
	size_t	 n;

	account_prune(a, now);
	if (daily_cap > 0 && a->nsends >= daily_cap) {
		/* The oldest of the last daily_cap leaves the window then. */
		snprintf(why, whylen, "account at its daily cap of %u "
		    "messages (daily-cap); waits for the 24-hour window",
		    daily_cap);
		return a->sends[a->nsends - daily_cap] + 86400;
	}
	if (per_minute > 0 && a->nsends >= per_minute &&
	    a->sends[a->nsends - per_minute] > now - 60) {
		snprintf(why, whylen, "account at its rate of %u messages a "
		    "minute (rate-per-minute)", per_minute);
		n = a->nsends - per_minute;
		return a->sends[n] + 60;
	}
	return 0;
}

/* Forget what Gmail said: refusals, pauses and backoffs. */
void
account_table_reset(struct account_table *t)
{
	struct account	*a;

	for (a = t->head; a != NULL; a = a->next) {
		a->refused = false;
		a->refusal[0] = '\0';
		a->quota = false;
		a->paused_until = 0;
		a->backoffs = 0;
		a->backoff_until = 0;
	}
}
