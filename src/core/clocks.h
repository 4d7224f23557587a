/*
 * clocks - the three clocks mxjail reads, each as seconds with fraction.
 *
 * Monotonic time for intervals and deadlines, real time for timestamps that
 * are stored or shown, and the calling thread's CPU time for costs that must
 * not count time spent waiting for a CPU. (The event loop's timers keep their
 * integer milliseconds: loop_now_ms() in core/loop.h.)
 */
#ifndef MXJAIL_CORE_CLOCKS_H
#define MXJAIL_CORE_CLOCKS_H

double clocks_mono(void);       /* CLOCK_MONOTONIC */
double clocks_real(void);       /* CLOCK_REALTIME: seconds since the epoch */
double clocks_thread_cpu(void); /* CLOCK_THREAD_CPUTIME_ID */

#endif
