/*
 * check_relayq.h: shared declarations for the Check suites.  Unit suites
 * are registered by the Makefile (suites.def), so a new check_<module>.c
 * only has to define "Suite *\n<module>_suite(void)".
 */
#ifndef RELAYQ_CHECK_RELAYQ_H
#define RELAYQ_CHECK_RELAYQ_H

#include <check.h>

#define nitems_ck(a)	(sizeof(a) / sizeof((a)[0]))

#endif /* RELAYQ_CHECK_RELAYQ_H */
