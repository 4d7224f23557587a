/*
 * timefmt - local time formatting for output and logs (see timefmt.h).
 */
#include "core/timefmt.h"

#include <stdio.h>
#include <time.h>

void timefmt_local(double t, char *buf, size_t len)
{
	if (t < 0) {
		snprintf(buf, len, "never");
		return;
	}
	time_t s = (time_t)t;
	struct tm tm;
	localtime_r(&s, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}
