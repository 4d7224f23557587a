/*
 * clocks - clock_gettime() as seconds with fraction (see clocks.h).
 */
#include "core/clocks.h"

#include <time.h>

static double read_clock(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double clocks_mono(void)
{
	return read_clock(CLOCK_MONOTONIC);
}

double clocks_real(void)
{
	return read_clock(CLOCK_REALTIME);
}

double clocks_thread_cpu(void)
{
	return read_clock(CLOCK_THREAD_CPUTIME_ID);
}
