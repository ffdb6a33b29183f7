/*
 * check_scheduler.c: the retry schedule, scheduler_next_delay: retry_min
 * after the first failure, doubled per further failure, capped at
 * retry_max, without overflow for large counts and bounds.
 */
#include <limits.h>

#include "check_relayq.h"
#include "scheduler.h"

static const struct {
	unsigned	 attempts, min, max, want;
} delay_cases[] = {
	/* The defaults: 60 s doubling to 1 h. */
	{ 0, 60, 3600, 60 },
	{ 1, 60, 3600, 60 },
	{ 2, 60, 3600, 120 },
	{ 3, 60, 3600, 240 },
	{ 6, 60, 3600, 1920 },
	{ 7, 60, 3600, 3600 },		/* 3840 capped */
	{ 8, 60, 3600, 3600 },
	{ 1000, 60, 3600, 3600 },
	/* The small values the integration tests use. */
	{ 1, 1, 4, 1 },
	{ 2, 1, 4, 2 },
	{ 3, 1, 4, 4 },
	{ 4, 1, 4, 4 },
	/* min above max: max wins. */
	{ 1, 10, 5, 5 },
	/* No overflow near the top of unsigned. */
	{ 40, UINT_MAX / 2 + 1, UINT_MAX, UINT_MAX },
	{ UINT_MAX, 1, UINT_MAX, UINT_MAX },
	{ 32, 1, UINT_MAX, 2147483648U },
	{ 33, 1, UINT_MAX, UINT_MAX },
	/* min equal to max stays put. */
	{ 5, 30, 30, 30 }
};

/* One row of the table. */
START_TEST(test_scheduler_next_delay)
{
	ck_assert_uint_eq(scheduler_next_delay(delay_cases[_i].attempts,
	    delay_cases[_i].min, delay_cases[_i].max), delay_cases[_i].want);
}
END_TEST

/* The scheduler suite. */
Suite *
scheduler_suite(void)
{
	Suite	*s = suite_create("scheduler");
	TCase	*tc = tcase_create("delay");

	tcase_add_loop_test(tc, test_scheduler_next_delay, 0,
	    (int)nitems_ck(delay_cases));
	suite_add_tcase(s, tc);
	return s;
}
