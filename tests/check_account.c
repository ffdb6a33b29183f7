/*
 * check_account.c: the account key is the user, the secret and the
 * mechanism, so a connection and its limits are never shared between a
 * password and an OAuth2 token.
 */
#include <string.h>

#include "account.h"
#include "check_relayq.h"
#include "sasl.h"

/* A credential of user, secret and mechanism. */
static void
acct_cred(struct sasl_cred *c, const char *user, const char *pass,
    enum sasl_mech mech)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->user, user);
	strcpy(c->pass, pass);
	c->mech = mech;
}

START_TEST(test_account_key_has_mechanism)
{
	struct account_table	*t;
	struct account		*plain, *xo, *xo2, *other;
	struct sasl_cred	 c;

	t = account_table_new();
	ck_assert_ptr_nonnull(t);
	acct_cred(&c, "alice@example.com", "secret", SASL_MECH_PLAIN);
	plain = account_get(t, &c);
	ck_assert_ptr_eq(account_get(t, &c), plain);
	acct_cred(&c, "alice@example.com", "secret", SASL_MECH_XOAUTH2);
	xo = account_get(t, &c);
	ck_assert_ptr_ne(xo, plain);
	ck_assert(account_match(t, xo, &c));
	ck_assert(!account_match(t, plain, &c));
	xo2 = account_get(t, &c);
	ck_assert_ptr_eq(xo2, xo);
	acct_cred(&c, "alice@example.com", "other-token", SASL_MECH_XOAUTH2);
	other = account_get(t, &c);
	ck_assert_ptr_ne(other, xo);
	ck_assert(!account_match(t, xo, &c));
	account_table_free(t);
}
END_TEST

Suite *
account_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("account");
	tc = tcase_create("key");
	tcase_add_test(tc, test_account_key_has_mechanism);
	suite_add_tcase(s, tc);
	return s;
}
