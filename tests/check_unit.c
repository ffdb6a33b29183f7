/*
 * check_unit.c: the unit test runner.  Every suite in tests/check_*.c is
 * listed in the generated suites.def (see the Makefile).
 */
#include <stdlib.h>

#include <check.h>

#include "check_relayq.h"

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(NULL);
#define SUITE(name)	srunner_add_suite(sr, name##_suite());
#include "suites.def"
#undef SUITE
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
