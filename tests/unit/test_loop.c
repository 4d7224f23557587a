/*
 * test_loop - event loop: timer order and deletion, fd readiness, signals,
 * end-of-turn hooks, events-done hooks (after the fd callbacks, before the
 * timers and turn-end hooks of the same turn); and the clocks beside it
 * (core/clocks).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/clocks.h"
#include "core/loop.h"

struct rec {
	char order[16];
	int n;
	int turns;
	int fd_reads;
	int sigs;
};

static void t_a(struct loop *l, void *arg)
{
	(void)l;
	struct rec *r = arg;
	r->order[r->n++] = 'a';
}

static void t_b(struct loop *l, void *arg)
{
	(void)l;
	struct rec *r = arg;
	r->order[r->n++] = 'b';
}

static void t_stop(struct loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

static void turn(struct loop *l, void *arg)
{
	(void)l;
	((struct rec *)arg)->turns++;
}

static void timers(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct rec r = {0};
	loop_timer_add(l, 20, t_b, &r);
	loop_timer_add(l, 5, t_a, &r);
	uint64_t dead = loop_timer_add(l, 10, t_a, &r);
	loop_timer_del(l, dead);
	loop_timer_add(l, 40, t_stop, &r);
	loop_on_turn_end(l, turn, &r);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(r.n, 2);
	assert_memory_equal(r.order, "ab", 2);
	assert_true(r.turns >= 3);
	loop_free(l);
}

static void on_read(struct loop *l, int fd, unsigned ev, void *arg)
{
	struct rec *r = arg;
	char c;
	assert_true(ev & LOOP_READ);
	assert_int_equal(read(fd, &c, 1), 1);
	r->fd_reads++;
	loop_fd_del(l, fd);
	loop_stop(l);
}

static void fds(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct rec r = {0};
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(loop_fd_add(l, p[0], LOOP_READ, on_read, &r), 0);
	assert_int_equal(loop_fd_add(l, p[0], LOOP_READ, on_read, &r), -17 /* EEXIST */);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(r.fd_reads, 1);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}

/* ---- events-done hooks ---- */

struct order {
	char s[32];
	size_t n;
	int stop_at_turn;
};

static void mark(struct order *o, char c)
{
	if (o->n + 1 < sizeof o->s)
		o->s[o->n++] = c;
}

static void ev_read(struct loop *l, int fd, unsigned ev, void *arg)
{
	(void)l;
	(void)ev;
	char c;
	assert_int_equal(read(fd, &c, 1), 1);
	mark(arg, 'r');
}

static void ev_done(struct loop *l, void *arg)
{
	(void)l;
	mark(arg, 'D');
}

static void ev_done2(struct loop *l, void *arg)
{
	(void)l;
	mark(arg, 'E');
}

static void ev_timer(struct loop *l, void *arg)
{
	mark(arg, 't');
	loop_stop(l);
}

static void ev_turn(struct loop *l, void *arg)
{
	struct order *o = arg;
	mark(o, 'T');
	if (o->stop_at_turn)
		loop_stop(l);
}

static void events_done(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct order o = {0};
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(loop_fd_add(l, p[0], LOOP_READ, ev_read, &o), 0);
	loop_on_turn_end(l, ev_turn, &o);
	loop_on_events_done(l, ev_done, &o);
	loop_on_events_done(l, ev_done2, &o);
	assert_int_equal(write(p[1], "xy", 2), 2);
	/* the timer is due when the byte is read: the same turn */
	loop_timer_add(l, 0, ev_timer, &o);
	assert_int_equal(loop_run(l), 0);
	o.s[o.n] = '\0';
	assert_string_equal(o.s, "rDEtT");
	/* removed: not run any more */
	loop_events_done_del(l, ev_done, &o);
	loop_events_done_del(l, ev_done, &o);   /* twice: nothing */
	o.n = 0;
	o.stop_at_turn = 1;
	assert_int_equal(loop_run(l), 0);      /* the second byte */
	o.s[o.n] = '\0';
	assert_string_equal(o.s, "rET");
	/* a turn of only timers runs no events-done hook */
	loop_fd_del(l, p[0]);
	o.n = 0;
	loop_timer_add(l, 1, ev_timer, &o);
	assert_int_equal(loop_run(l), 0);
	o.s[o.n] = '\0';
	assert_string_equal(o.s, "tT");
	close(p[0]);
	close(p[1]);
	loop_free(l);
}

static void on_sig(struct loop *l, void *arg)
{
	((struct rec *)arg)->sigs++;
	loop_stop(l);
}

static void sigs(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct rec r = {0};
	assert_int_equal(loop_signal_add(l, SIGUSR1, on_sig, &r), 0);
	kill(getpid(), SIGUSR1);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(r.sigs, 1);
	loop_free(l);
}

static void clocks(void **state)
{
	(void)state;
	/* real time is the epoch clock, with a fraction */
	double r = clocks_real();
	assert_true(r >= (double)time(NULL) - 1 && r <= (double)time(NULL) + 1);
	/* monotonic time agrees with the loop's milliseconds and never goes back */
	double m = clocks_mono();
	uint64_t ms = loop_now_ms();
	assert_true(m * 1000 >= (double)ms - 5 && m * 1000 <= (double)ms + 5);
	double m2 = clocks_mono();
	assert_true(m2 >= m);
	/* the thread's CPU time grows with work and not with sleep */
	double c0 = clocks_thread_cpu();
	volatile unsigned long x = 0;
	while (clocks_thread_cpu() - c0 < 0.02)
		x++;
	double c1 = clocks_thread_cpu(), w0 = clocks_mono();
	usleep(50000);
	assert_true(clocks_mono() - w0 >= 0.049);
	assert_true(clocks_thread_cpu() - c1 < 0.02);
	assert_true(x > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(timers),
		cmocka_unit_test(fds),
		cmocka_unit_test(events_done),
		cmocka_unit_test(sigs),
		cmocka_unit_test(clocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
