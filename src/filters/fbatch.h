/*
 * fbatch - a stream of log lines through a set of filters, on one CPU or two.
 *
 * INTERFACE: the caller describes each stream (a log file, `mxjail test`'s
 * input) as an fbatch_set: its taps (one filter each, with the index of the
 * tap whose line preparation it shares) and a callback. fbatch_add() takes a
 * line; the callback gets, for every line and within a line for every tap in
 * order, the filter's verdict and hits, always on the caller's thread and in
 * the order the lines were added. fbatch_finish() returns when every line
 * added so far has reached the callback.
 *
 * THREADS: fbatch_new(1) matches in a worker thread. Lines are copied into a
 * batch; when it is full the caller's thread prepares it (UTF-8 repair and
 * date search, in line order) and hands it to the worker, which runs the
 * taps' filters over it, each filter over the lines in order, while the
 * caller's thread reports the previous batch and goes on adding. When the
 * caller's own work is the smaller part, its thread also matches some taps
 * of the batch itself (measured per set; see assign() in fbatch.c). A
 * filter's state is split the same way: its date detector and UTF-8 scratch
 * (all filter_prepare uses) belong to the caller's thread, its regexes,
 * multi-line buffers and counters to the one thread that matches its tap in
 * a batch. So between fbatch_finish() and the next fbatch_add() the filters
 * are at rest and the caller may read their statistics. With
 * fbatch_new(0) every line is prepared, matched and reported inside
 * fbatch_add(). The results are the same either way.
 */
#ifndef MXJAIL_FILTERS_FBATCH_H
#define MXJAIL_FILTERS_FBATCH_H

#include <stddef.h>
#include <stdint.h>

#include "filters/filter.h"

struct fbatch;

struct fbatch_tap {
	struct filter *f;
	/* the earlier tap whose preparation this one reuses; its own index (or
	 * any unusable value) when it prepares for itself */
	size_t share;
	const struct date_clock *clk;  /* the filter's clock; `now` comes from fbatch_add */
	int journal_now;               /* logtype journal: every line is dated `now` */
};

/* One tap's verdict on one line. hits are valid during the callback only. */
struct fbatch_res {
	size_t tap;
	enum filter_status st;
	int limited;                   /* the line hit the regex match limits */
	const struct filter_hit *hits;
	size_t nhits;
};

/* line/len: the line as added; tag: the caller's value for it. */
typedef void (*fbatch_cb)(void *arg, const char *line, size_t len, uint64_t tag,
			  const struct fbatch_res *r);

struct fbatch_set {
	const struct fbatch_tap *taps;
	size_t ntaps;
	fbatch_cb cb;
	void *arg;
};

/* thread 1: match in a worker thread (started at the first full batch).
 * batch_lines: lines per batch, 0 = the most (256); fewer cost more hand-overs
 * and less memory (the batches' lines and results). */
struct fbatch *fbatch_new(int thread, size_t batch_lines);
/* Finishes first (the callbacks run). */
void fbatch_free(struct fbatch *b);

/* jtime >= 0: a journal entry's time (no date search in the text). now: the
 * clock the line is dated against. The set must stay valid and unchanged
 * until fbatch_finish(); lines of another set finish the pending ones first. */
void fbatch_add(struct fbatch *b, const struct fbatch_set *set, const char *line, size_t len,
		double jtime, double now, uint64_t tag);
void fbatch_finish(struct fbatch *b);
/* Finishes the pending lines, then prepares, matches and reports this one on
 * the caller's thread before returning (a journal entry, which has no read
 * to wait for). */
void fbatch_add_now(struct fbatch *b, const struct fbatch_set *set, const char *line, size_t len,
		    double jtime, double now, uint64_t tag);
/* CPU seconds the worker spent matching since the last call. */
double fbatch_worker_cpu(struct fbatch *b);
/* 1 when the machine has more than one CPU online. */
int fbatch_cpus_spare(void);
/* The `filter_thread` setting (auto, yes, no; unset = auto): 1 use the
 * thread, 0 not, -1 not a valid value. */
int fbatch_setting(const char *v);

#endif
