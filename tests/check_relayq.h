/*
 * check_relayq.h: shared declarations for the Check suites.  Unit suites
 * are registered by the Makefile (suites.def), so a new check_<module>.c
 * only has to define "Suite *\n<module>_suite(void)".
 */
#ifndef RELAYQ_CHECK_RELAYQ_H
#define RELAYQ_CHECK_RELAYQ_H

#include <check.h>

#define nitems_ck(a)	(sizeof(a) / sizeof((a)[0]))

/* The prototype of every unit suite (generated; see the Makefile). */
#define SUITE(name)	Suite *name##_suite(void);
#include "suites.def"
#undef SUITE

#endif /* RELAYQ_CHECK_RELAYQ_H */
