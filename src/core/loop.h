/*
 * loop - the daemon's single-threaded event loop (epoll + timers + signals).
 *
 * INTERFACE: file descriptors, one-shot timers on the monotonic clock, signals
 * (through signalfd), events-done hooks and end-of-turn hooks. End-of-turn
 * hooks run once after every batch of events: that is where the firewall
 * commits its batched changes (one nftables transaction per turn) and the
 * state store commits.
 * Callbacks may add and remove watches and timers freely, including their own.
 * The loop owns nothing the callbacks pass in `arg`.
 */
#ifndef MXJAIL_CORE_LOOP_H
#define MXJAIL_CORE_LOOP_H

#include <stdint.h>

struct loop;

/* events: LOOP_READ | LOOP_WRITE; the callback gets what is ready (plus LOOP_ERROR
 * for hang-up/error conditions). */
#define LOOP_READ 1u
#define LOOP_WRITE 2u
#define LOOP_ERROR 4u

typedef void (*loop_fd_cb)(struct loop *l, int fd, unsigned events, void *arg);
typedef void (*loop_cb)(struct loop *l, void *arg);

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Returns 0 or -errno. A fd can be registered once; loop_fd_mod changes events. */
int loop_fd_add(struct loop *l, int fd, unsigned events, loop_fd_cb cb, void *arg);
int loop_fd_mod(struct loop *l, int fd, unsigned events);
void loop_fd_del(struct loop *l, int fd);

/* One-shot timer `ms` milliseconds from now; returns an id > 0 for loop_timer_del. */
uint64_t loop_timer_add(struct loop *l, uint64_t ms, loop_cb cb, void *arg);
void loop_timer_del(struct loop *l, uint64_t id);

/* Blocks the signal and calls cb from the loop when it arrives. Returns 0 or -errno. */
int loop_signal_add(struct loop *l, int signo, loop_cb cb, void *arg);

/* cb runs after each turn that handled at least one event or timer. */
void loop_on_turn_end(struct loop *l, loop_cb cb, void *arg);

/* cb runs after the fd callbacks of each turn that had events, before the
 * turn's timers and turn-end hooks: for what those events left to do that
 * must not wait behind them (the policy service's batched replies). */
void loop_on_events_done(struct loop *l, loop_cb cb, void *arg);
/* Not from inside such a hook. */
void loop_events_done_del(struct loop *l, loop_cb cb, void *arg);

/* Runs until loop_stop(); returns 0, or -errno if epoll itself fails. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* Monotonic milliseconds, the timers' clock (core/clocks.h has the others). */
uint64_t loop_now_ms(void);

#endif
