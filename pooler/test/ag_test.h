/*-------------------------------------------------------------------------
 *
 * ag_test.h
 *	  The few lines every pooler unit test shares: counters, ok() with a
 *	  printf-style description, CHECK() with file and line, and the closing
 *	  "N passed, N failed" line CI reads.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_TEST_H
#define AG_TEST_H

#include <stdarg.h>
#include <stdio.h>

static int	npass,
			nfail;

static void ok(int cond, const char *fmt,...) __attribute__((format(printf, 2, 3), unused));

static void
ok(int cond, const char *fmt, ...)
{
	va_list		ap;

	if (cond)
	{
		npass++;
		return;
	}
	nfail++;
	printf("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

#define CHECK(cond, what) \
	do { \
		if (cond) \
			npass++; \
		else \
		{ \
			nfail++; \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, what); \
		} \
	} while (0)

/* Prints the closing line; returns the exit status. */
static int __attribute__((unused))
ag_test_report(void)
{
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail ? 1 : 0;
}

#endif							/* AG_TEST_H */
