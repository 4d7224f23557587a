/*
 * timefmt - times as people read them in mxjail's output and logs.
 */
#ifndef MXJAIL_CORE_TIMEFMT_H
#define MXJAIL_CORE_TIMEFMT_H

#include <stddef.h>

/* "2026-11-23 18:57:48" in local time, or "never" for t < 0 (a ban forever). */
void timefmt_local(double t, char *buf, size_t len);

#endif
