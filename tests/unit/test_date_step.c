/*
 * test_date_step - the date detector's shortcut for consecutive seconds
 * (a date text equal to the previous one but for its seconds is the previous
 * time plus the difference) must give exactly what a full conversion gives:
 * one detector sees every line in order (and takes the shortcut), another
 * sees an unrelated date before each line and so converts each in full.
 * Lines walk through minutes, DST changes in both directions, the year-less
 * and day-less rules near "now" (also with "now" inside a minute), fractions,
 * zone offsets and a fixed log time zone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/diag.h"
#include "filters/datedetect.h"

static struct datedetect *detector(const char *pattern)
{
	struct diag d = DIAG_INIT;
	const char *p[] = {pattern};
	struct datedetect *dd = datedetect_new(p, *pattern ? 1 : 0, "test", &d);
	assert_non_null(dd);
	diag_clear(&d);
	return dd;
}

/* Feeds lines made from fmt (a printf format of the line with %s for the
 * minute and %s for the seconds "00".."61") to one detector, and compares
 * every result with a second detector that sees another date (the minute
 * "other") just before each line, so it never has the previous second
 * cached and converts every line in full. */
static void walk(const char *pattern, const char *fmt, const char *const *minutes, size_t nmin,
		 const char *other, const struct date_clock *clk)
{
	struct datedetect *dd = detector(pattern), *full = detector(pattern);
	for (size_t m = 0; m < nmin; m++) {
		for (int sec = 0; sec < 62; sec++) {
			/* 60 and 61 are no valid seconds: both sides must refuse them alike */
			char ss[3], line[128], busy[128];
			snprintf(ss, sizeof ss, "%02d", sec);
			snprintf(line, sizeof line, fmt, minutes[m], ss);
			snprintf(busy, sizeof busy, fmt, other, "30");
			double t1 = 0, t2 = 0, tb;
			size_t s1 = 0, e1 = 0, s2 = 0, e2 = 0, sb, eb;
			int r1 = datedetect_find(dd, line, strlen(line), clk, &t1, &s1, &e1);
			datedetect_find(full, busy, strlen(busy), clk, &tb, &sb, &eb);
			int r2 = datedetect_find(full, line, strlen(line), clk, &t2, &s2, &e2);
			if (r1 != r2 || (r1 == 1 && (t1 != t2 || s1 != s2 || e1 != e2)))
				fail_msg("%s: \"%s\": rc %d/%d t %.6f/%.6f", pattern, line, r1, r2, t1,
					 t2);
		}
	}
	datedetect_free(dd);
	datedetect_free(full);
}

static void local_zone(void **state)
{
	(void)state;
	/* Sun Aug 14 12:00:00 CEST 2005 */
	struct date_clock clk = {1124013600.0, 0, 0};
	const char *iso[] = {"2005-03-27 01:59", "2005-03-27 02:00", "2005-03-27 02:59",
			     "2005-03-27 03:00", "2005-08-10 11:59", "2005-08-11 11:59",
			     "2005-08-14 11:59", "2005-08-14 12:00", "2004-08-15 12:00",
			     "2004-08-13 12:00", "2005-10-30 01:59", "2005-10-30 02:00",
			     "2005-10-30 02:59", "2005-10-30 03:00"};
	size_t niso = sizeof iso / sizeof *iso;
	walk("%Y-%m-%d %H:%M:%S", "%s:%s host x", iso, niso, "2005-01-05 07:07", &clk);
	walk("%Y-%m-%d %H:%M:%S.%f", "%s:%s.250 host x", iso, niso, "2005-01-05 07:07", &clk);
	walk("%Y-%m-%d %H:%M:%S%z", "%s:%s+0200 host x", iso, niso, "2005-01-05 07:07", &clk);
	walk("", "%s:%s host x", iso, niso, "2005-01-05 07:07", &clk);

	/* year-less: around "now", a day later (previous year), months back */
	const char *syslog[] = {"Mar 27 01:59", "Mar 27 02:00", "Mar 27 02:59", "Aug 10 11:59",
				"Aug 11 12:00", "Aug 14 11:59", "Aug 14 12:00", "Aug 15 11:59",
				"Aug 15 12:00", "Aug 16 12:00", "Aug 20 12:00", "Oct 30 02:59",
				"Dec 31 23:59", "Jan  1 00:00", "Feb 29 12:00"};
	size_t nsys = sizeof syslog / sizeof *syslog;
	walk("%b %d %H:%M:%S", "%s:%s mx1 postfix/smtpd[1]: x", syslog, nsys, "Jan  5 07:07", &clk);
	walk("", "%s:%s mx1 postfix/smtpd[1]: x", syslog, nsys, "Jan  5 07:07", &clk);
	walk("{^LN-BEG}", "%s:%s mx1 sshd[1]: x", syslog, nsys, "Jan  5 07:07", &clk);
	/* "now" inside a minute: the rules act within the minutes of now and of
	 * now plus a day, which the shortcut must see */
	struct date_clock mid = {1124013600.0 + 30, 0, 0};
	walk("%b %d %H:%M:%S", "%s:%s mx1 postfix/smtpd[1]: x", syslog, nsys, "Jan  5 07:07",
	     &mid);
	walk("{^LN-BEG}", "%s:%s mx1 sshd[1]: x", syslog, nsys, "Jan  5 07:07", &mid);
	/* time of day only: the day-less rule moves a time after now back a day */
	const char *tod[] = {"00:00", "11:59", "12:00", "12:01", "23:59", "02:00", "02:59"};
	size_t ntod = sizeof tod / sizeof *tod;
	walk("%H:%M:%S", "[%s:%s] x", tod, ntod, "07:07", &clk);
	walk("%H:%M:%S", "[%s:%s] x", tod, ntod, "07:07", &mid);
	/* "now" at a new year: the year-less rule moves December back a year */
	struct date_clock ny = {1104537600.0 + 30, 0, 0}; /* 2005-01-01 01:00:30 CET */
	walk("%b %d %H:%M:%S", "%s:%s x", syslog, nsys, "Jan  5 07:07", &ny);
}

static void fixed_zone(void **state)
{
	(void)state;
	struct date_clock clk = {1124013600.0, 1, -5 * 3600};
	const char *iso[] = {"2005-03-27 01:59", "2005-03-27 02:00", "2005-08-10 11:59",
			     "2005-08-14 16:59", "2005-08-14 17:00", "2005-10-30 02:59"};
	walk("%Y-%m-%d %H:%M:%S", "%s:%s x", iso, sizeof iso / sizeof *iso, "2005-01-05 07:07",
	     &clk);
	const char *syslog[] = {"Aug 10 11:59", "Aug 14 16:59", "Aug 15 16:59", "Aug 15 17:00",
				"Mar 27 02:00"};
	walk("%b %d %H:%M:%S", "%s:%s x", syslog, sizeof syslog / sizeof *syslog, "Jan  5 07:07",
	     &clk);
}

int main(void)
{
	setenv("TZ", "CET-01CEST-02,M3.5.0,M10.5.0", 1);
	tzset();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(local_zone),
		cmocka_unit_test(fixed_zone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
