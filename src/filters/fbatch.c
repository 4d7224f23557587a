/*
 * fbatch - log lines through filters on one CPU or two (see fbatch.h).
 *
 * Two batches take turns: one fills (and is prepared on the caller's thread),
 * the other is with the worker or waiting to be reported. The hand-over is a
 * mutex and two condition variables with one batch in flight, after a short
 * spin on each side (see SPIN_S). Nothing here is global: the worker thread
 * belongs to its fbatch and is joined by fbatch_free().
 */
#include "filters/fbatch.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/clocks.h"
#include "core/kvlist.h"
#include "core/xmalloc.h"

#define LB_LINES 256 /* the most lines a batch can take (fbatch_new) */
#define LB_BYTES (128u * 1024)

struct lb_tap {
	struct filter_result res;
	size_t end[LB_LINES];      /* res.n after each line */
	struct date_clock clk;     /* the filter's clock (now set per line) */
};

struct lbatch {
	const struct fbatch_set *set;
	size_t n;
	size_t lines;              /* it is full at this many (<= LB_LINES) */
	size_t off[LB_LINES];
	size_t len[LB_LINES];
	double jtime[LB_LINES];
	double now[LB_LINES];
	uint64_t tag[LB_LINES];
	char *buf;                 /* the lines' bytes */
	size_t blen, bcap;
	char *cbuf;                /* lines whose UTF-8 had to be repaired */
	size_t clen, ccap;
	/* [line * ngroups + group]: one preparation per share leader */
	struct filter_line *fl;
	size_t *coff;              /* the same: offset of the text in cbuf, or SIZE_MAX */
	size_t flcap;
	/* [line * ntaps + tap] */
	unsigned char *st;         /* enum filter_status */
	unsigned char *limited;
	signed char *pre;          /* filter_precheck() by the caller, lines below pre_upto */
	size_t cellcap;
	struct lb_tap *taps;
	unsigned char *mine;       /* [tap]: matched on the caller's thread, not the worker */
	size_t *pre_upto;          /* [tap]: a worker's tap whose prechecks the caller does
	                            * for the lines before this one (0: none) */
	double *took;              /* [tap]: seconds its filter took on this batch */
	double *pre_took;          /* [tap]: seconds of those prechecks */
	size_t *group;             /* [tap]: its leader's group */
	size_t ntaps, tapcap, ngroups;
};

struct fbatch {
	int thread;
	struct lbatch b[2];
	struct lbatch *fill;       /* taking lines */
	struct lbatch *busy;       /* with the worker, or done and not reported yet */
	/* inline mode (and the scratch of one line) */
	struct filter_line *ifl;
	size_t iflcap;
	struct filter_result ires;
	/* the worker */
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	_Atomic(struct lbatch *) job; /* the batch the worker is on (written under mu) */
	int quit;
	int worker_sleeps, caller_sleeps; /* under mu: who waits on go / done */
	int started;
	int failed;                /* it could not be started: batches run inline */
	pthread_t th;
	double cpu;                /* under mu: the worker's CPU seconds not yet taken */
	/* how the work splits (see assign()): seconds per line */
	const struct fbatch_set *cset; /* the set the costs are for */
	double *cost;              /* [tap], prechecks included */
	double *pcost;             /* [tap]: of that, the precheck (0: not measured yet) */
	size_t ncost;
	double base;               /* the caller's own work: reading, dating, reporting */
	double cycle_t0;           /* when the last submit() returned */
	int have_base;
};

int fbatch_cpus_spare(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN) > 1;
}

int fbatch_setting(const char *v)
{
	if (!v || !*v || strcasecmp(v, "auto") == 0)
		return fbatch_cpus_spare();
	return kvlist_bool(v);
}

/* The tap whose preparation tap t uses: its `share` when that is an earlier
 * tap preparing for itself, else t itself. */
static size_t leader(const struct fbatch_set *set, size_t t)
{
	size_t l = set->taps[t].share;
	return l < t && set->taps[l].share == l ? l : t;
}

/* ---------- one line at a time ---------- */

static void line_inline(struct fbatch *b, const struct fbatch_set *set, const char *line,
			size_t len, double jtime, double now, uint64_t tag)
{
	size_t nt = set->ntaps;
	if (nt > b->iflcap) {
		b->ifl = xrealloc(b->ifl, nt * sizeof *b->ifl);
		b->iflcap = nt;
	}
	struct datedetect_memo memo; /* filters with different date settings share searches */
	datedetect_memo_reset(&memo);
	for (size_t t = 0; t < nt; t++) {
		const struct fbatch_tap *tap = &set->taps[t];
		struct date_clock clk = *tap->clk;
		clk.now = now;
		size_t lead = leader(set, t);
		if (lead == t)
			filter_prepare_memo(tap->f, line, len, tap->journal_now ? now : jtime, &clk,
					    &memo, &b->ifl[t]);
		filter_result_reset(&b->ires);
		unsigned long lh = filter_get_stats(tap->f)->limit_hits;
		struct fbatch_res r = {.tap = t};
		r.st = filter_process_prepared(tap->f, &b->ifl[lead], &clk, &b->ires);
		r.limited = filter_get_stats(tap->f)->limit_hits != lh;
		r.hits = b->ires.hits;
		r.nhits = b->ires.n;
		set->cb(set->arg, line, len, tag, &r);
	}
}

/* ---------- batches ---------- */

static void batch_shape(struct lbatch *lb)
{
	const struct fbatch_set *set = lb->set;
	size_t nt = set->ntaps;
	if (nt > lb->tapcap) {
		lb->taps = xrealloc(lb->taps, nt * sizeof *lb->taps);
		memset(lb->taps + lb->tapcap, 0, (nt - lb->tapcap) * sizeof *lb->taps);
		lb->group = xrealloc(lb->group, nt * sizeof *lb->group);
		lb->mine = xrealloc(lb->mine, nt);
		lb->pre_upto = xrealloc(lb->pre_upto, nt * sizeof *lb->pre_upto);
		lb->took = xrealloc(lb->took, nt * sizeof *lb->took);
		lb->pre_took = xrealloc(lb->pre_took, nt * sizeof *lb->pre_took);
		lb->tapcap = nt;
	}
	lb->ntaps = nt;
	lb->ngroups = 0;
	for (size_t t = 0; t < nt; t++)
		lb->group[t] = leader(set, t) == t ? lb->ngroups++ : lb->group[leader(set, t)];
	if (lb->ngroups * lb->lines > lb->flcap) {
		lb->flcap = lb->ngroups * lb->lines;
		lb->fl = xrealloc(lb->fl, lb->flcap * sizeof *lb->fl);
		lb->coff = xrealloc(lb->coff, lb->flcap * sizeof *lb->coff);
	}
	if (nt * lb->lines > lb->cellcap) {
		lb->cellcap = nt * lb->lines;
		lb->st = xrealloc(lb->st, lb->cellcap);
		lb->limited = xrealloc(lb->limited, lb->cellcap);
		lb->pre = xrealloc(lb->pre, lb->cellcap);
	}
}

/* Caller's thread: UTF-8 repair and date search for every line, in order. */
static void batch_prepare(struct lbatch *lb)
{
	const struct fbatch_set *set = lb->set;
	size_t nt = set->ntaps;
	size_t ng = lb->ngroups;
	for (size_t t = 0; t < nt; t++)
		lb->taps[t].clk = *set->taps[t].clk;
	lb->clen = 0;
	for (size_t i = 0; i < lb->n; i++) {
		const char *line = lb->buf + lb->off[i];
		struct datedetect_memo memo;
		datedetect_memo_reset(&memo);
		for (size_t t = 0; t < nt; t++) {
			if (leader(set, t) != t)
				continue;
			size_t cell = i * ng + lb->group[t];
			struct filter_line *fl = &lb->fl[cell];
			struct date_clock clk = lb->taps[t].clk;
			clk.now = lb->now[i];
			filter_prepare_memo(set->taps[t].f, line, lb->len[i],
					    set->taps[t].journal_now ? lb->now[i] : lb->jtime[i], &clk,
					    &memo, fl);
			lb->coff[cell] = SIZE_MAX;
			if (fl->text != line) {
				/* repaired into the filter's scratch, which the next line reuses */
				if (lb->clen + fl->len > lb->ccap) {
					lb->ccap = (lb->clen + fl->len) * 2;
					lb->cbuf = xrealloc(lb->cbuf, lb->ccap);
				}
				if (fl->len)
					memcpy(lb->cbuf + lb->clen, fl->text, fl->len);
				lb->coff[cell] = lb->clen;
				lb->clen += fl->len;
			}
		}
	}
	for (size_t k = 0; k < lb->n * ng; k++)
		if (lb->coff[k] != SIZE_MAX)
			lb->fl[k].text = lb->cbuf + lb->coff[k];
	/* the worker's literal tests the caller takes over (see assign()) */
	for (size_t t = 0; t < nt; t++) {
		if (!lb->pre_upto[t])
			continue;
		double t0 = clocks_mono();
		for (size_t i = 0; i < lb->pre_upto[t]; i++)
			lb->pre[i * nt + t] = (signed char)filter_precheck(
				set->taps[t].f, &lb->fl[i * ng + lb->group[t]]);
		lb->pre_took[t] = clocks_mono() - t0;
	}
}

/* The taps of one side (mine: the caller's) over the prepared lines, one
 * filter at a time: each keeps its lines in order, and its state stays in
 * one cache while it runs. */
static void batch_process(struct lbatch *lb, int mine)
{
	const struct fbatch_set *set = lb->set;
	size_t nt = lb->ntaps;
	for (size_t t = 0; t < nt; t++) {
		if (lb->mine[t] != mine)
			continue;
		double t0 = clocks_mono();
		const struct fbatch_tap *tap = &set->taps[t];
		struct lb_tap *bt = &lb->taps[t];
		filter_result_reset(&bt->res);
		struct date_clock clk = bt->clk;
		for (size_t i = 0; i < lb->n; i++) {
			clk.now = lb->now[i];
			unsigned long lh = filter_get_stats(tap->f)->limit_hits;
			int pre = i < lb->pre_upto[t] ? lb->pre[i * nt + t] : -1;
			lb->st[i * nt + t] = (unsigned char)filter_process_checked(
				tap->f, &lb->fl[i * lb->ngroups + lb->group[t]], &clk, &bt->res, pre);
			lb->limited[i * nt + t] = filter_get_stats(tap->f)->limit_hits != lh;
			bt->end[i] = bt->res.n;
		}
		lb->took[t] = clocks_mono() - t0;
	}
}

/* Which taps the caller's thread matches itself. Both threads should be
 * busy equally long: the caller has its own work (`base`: reading the log,
 * dating lines, reporting, whatever the callback does), the worker only
 * filters. The costliest tap goes to the worker, then each next one to the
 * side with less work so far (on the 1M-line benchmark log this takes the
 * cheapest of three filters to the caller and is 14% faster than leaving all
 * three to the worker); costs are per line, measured on the last batches of
 * the same set. Until there are figures, every tap goes to the worker.
 *
 * Taps come whole, so one side is usually left with more. When that is the
 * worker, the caller also does the first step of its taps for as many lines
 * as evens the sides out: the test for the words a match needs
 * (filter_precheck(), a fair part of a filter's time, as most lines are
 * rejected there; it needs no state, so any lines will do). A precheck's cost
 * is guessed at a quarter of its tap's until it has been measured. */
static void assign(struct fbatch *b, struct lbatch *lb)
{
	size_t nt = lb->ntaps;
	memset(lb->mine, 0, nt);
	memset(lb->pre_upto, 0, nt * sizeof *lb->pre_upto);
	if (!b->thread || b->cset != lb->set || b->ncost != nt || !b->have_base)
		return;
	double mine = b->base, theirs = 0;
	unsigned char done[64] = {0};
	size_t order[64];
	size_t k = 0;
	for (; k < nt && k < sizeof done; k++) {
		size_t best = SIZE_MAX;
		for (size_t t = 0; t < nt && t < sizeof done; t++)
			if (!done[t] && (best == SIZE_MAX || b->cost[t] > b->cost[best]))
				best = t;
		done[best] = 1;
		order[k] = best;
		if (theirs > 0 && mine < theirs) {
			lb->mine[best] = 1;
			mine += b->cost[best];
		} else {
			theirs += b->cost[best];
		}
	}
	for (size_t o = 0; o < k; o++) {
		size_t t = order[o];
		if (lb->mine[t])
			continue;
		double p = b->pcost[t] > 0 ? b->pcost[t] : b->cost[t] / 4;
		if (mine >= theirs || p <= 0)
			break;
		double share = (theirs - mine) / (2 * p); /* of the lines, to even out */
		size_t upto = share >= 1 ? lb->n : (size_t)(share * (double)lb->n + 0.5);
		if (upto < lb->n / 16)
			break; /* not worth a pass of its own */
		lb->pre_upto[t] = upto;
		mine += p * (double)upto / (double)lb->n;
		theirs -= p * (double)upto / (double)lb->n;
	}
}

static double ewma(double old, double v)
{
	return old > 0 ? 0.75 * old + 0.25 * v : v;
}

/* Learns each tap's cost per line from a finished batch. */
static void learn_taps(struct fbatch *b, const struct lbatch *lb, int mine)
{
	if (!lb->n)
		return;
	if (b->cset != lb->set || b->ncost != lb->ntaps) {
		b->cset = lb->set;
		b->ncost = lb->ntaps;
		b->cost = xrealloc(b->cost, (b->ncost ? b->ncost : 1) * sizeof *b->cost);
		memset(b->cost, 0, (b->ncost ? b->ncost : 1) * sizeof *b->cost);
		b->pcost = xrealloc(b->pcost, (b->ncost ? b->ncost : 1) * sizeof *b->pcost);
		memset(b->pcost, 0, (b->ncost ? b->ncost : 1) * sizeof *b->pcost);
		b->have_base = 0;
	}
	for (size_t t = 0; t < lb->ntaps; t++) {
		if (lb->mine[t] != mine)
			continue;
		size_t pn = lb->pre_upto[t];
		if (pn)
			b->pcost[t] = ewma(b->pcost[t], lb->pre_took[t] / (double)pn);
		/* the whole tap, the caller's prechecks included */
		b->cost[t] = ewma(b->cost[t], (lb->took[t] + (pn ? lb->pre_took[t] : 0)) / (double)lb->n);
	}
}

/* Caller's thread: the batch's verdicts to the callback, in line and tap order. */
static void batch_report(struct lbatch *lb)
{
	const struct fbatch_set *set = lb->set;
	size_t nt = lb->ntaps;
	for (size_t i = 0; i < lb->n; i++)
		for (size_t t = 0; t < nt; t++) {
			struct lb_tap *bt = &lb->taps[t];
			size_t from = i ? bt->end[i - 1] : 0;
			struct fbatch_res r = {
				.tap = t,
				.st = (enum filter_status)lb->st[i * nt + t],
				.limited = lb->limited[i * nt + t],
				.hits = bt->res.hits + from,
				.nhits = bt->end[i] - from,
			};
			set->cb(set->arg, lb->buf + lb->off[i], lb->len[i], lb->tag[i], &r);
		}
	if (lb->ccap > 2 * LB_BYTES) {
		/* a batch of broken UTF-8 (repair can triple it): give the room back */
		free(lb->cbuf);
		lb->cbuf = NULL;
		lb->ccap = 0;
	}
	if (lb->bcap > 2 * LB_BYTES) {
		/* an over-long line (`mxjail test` takes lines up to 16 MiB) */
		free(lb->buf);
		lb->buf = NULL;
		lb->bcap = 0;
	}
	lb->n = 0;
	lb->blen = 0;
	lb->set = NULL;
}

/* ---------- the worker ---------- */

/* Waking a sleeping thread costs tens of microseconds on a virtual machine
 * (an interrupt to a halted virtual CPU), about as long as matching a few
 * dozen lines, and it happens for every batch when the two threads take
 * turns. So each side first watches `job` for up to SPIN_S before it sleeps.
 * The loop has no PAUSE instruction on purpose: hypervisors take a PAUSE loop
 * for a lock spin and preempt the virtual CPU. */
#define SPIN_S 50e-6

static int spin_until(struct fbatch *b, int busy)
{
	double end = 0;
	for (unsigned k = 1;; k++) {
		if ((atomic_load_explicit(&b->job, memory_order_acquire) != NULL) == busy)
			return 1;
		if ((k & 255) == 0) {
			double now = clocks_mono();
			if (end == 0)
				end = now + SPIN_S;
			else if (now > end)
				return 0;
		}
	}
}

static void *worker(void *arg)
{
	struct fbatch *b = arg;
	for (;;) {
		spin_until(b, 1);
		pthread_mutex_lock(&b->mu);
		while (!b->job && !b->quit) {
			b->worker_sleeps = 1;
			pthread_cond_wait(&b->go, &b->mu);
			b->worker_sleeps = 0;
		}
		struct lbatch *lb = b->job;
		pthread_mutex_unlock(&b->mu);
		if (!lb)
			break;
		double c0 = clocks_thread_cpu();
		batch_process(lb, 0);
		double c = clocks_thread_cpu() - c0;
		pthread_mutex_lock(&b->mu);
		b->cpu += c;
		atomic_store_explicit(&b->job, NULL, memory_order_release);
		if (b->caller_sleeps)
			pthread_cond_signal(&b->done);
		pthread_mutex_unlock(&b->mu);
	}
	return NULL;
}

static void start_worker(struct fbatch *b)
{
	/* signals belong to the caller's thread (an event loop may read them
	 * through signalfd): the worker never takes one */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int r = pthread_create(&b->th, NULL, worker, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		b->failed = 1; /* batches run inline: slower, same results */
	else
		b->started = 1;
}

static void wait_busy(struct fbatch *b)
{
	if (!b->started || spin_until(b, 0))
		return;
	pthread_mutex_lock(&b->mu);
	while (b->job) {
		b->caller_sleeps = 1;
		pthread_cond_wait(&b->done, &b->mu);
		b->caller_sleeps = 0;
	}
	pthread_mutex_unlock(&b->mu);
}

static void hand_over(struct fbatch *b, struct lbatch *lb)
{
	if (!b->started && !b->failed)
		start_worker(b);
	if (!b->started) {
		batch_process(lb, 0);
		return;
	}
	pthread_mutex_lock(&b->mu);
	atomic_store_explicit(&b->job, lb, memory_order_release);
	if (b->worker_sleeps)
		pthread_cond_signal(&b->go);
	pthread_mutex_unlock(&b->mu);
}

/* The filling batch to the worker; the one it had is reported meanwhile. */
static void submit(struct fbatch *b)
{
	struct lbatch *lb = b->fill, *prev = b->busy;
	double t0 = clocks_mono();
	batch_shape(lb);
	assign(b, lb);
	batch_prepare(lb);
	double w0 = clocks_mono();
	wait_busy(b);
	double waited = clocks_mono() - w0;
	hand_over(b, lb);
	b->busy = lb;
	b->fill = lb == &b->b[0] ? &b->b[1] : &b->b[0];
	batch_process(lb, 1);
	double own = 0; /* tap work on this thread: matching and prechecks */
	for (size_t t = 0; t < lb->ntaps; t++)
		own += lb->mine[t] ? lb->took[t] : lb->pre_upto[t] ? lb->pre_took[t] : 0;
	if (prev) {
		learn_taps(b, prev, 0);
		batch_report(prev);
	}
	learn_taps(b, lb, 1);
	double now = clocks_mono();
	/* the caller's work since the last submit, less waiting and matching */
	if (b->cycle_t0 > 0 && b->cycle_t0 < t0 && lb->n) {
		double base = (now - b->cycle_t0 - waited - own) / (double)lb->n;
		if (base > 0) {
			b->base = ewma(b->have_base ? b->base : 0, base);
			b->have_base = 1;
		}
	}
	b->cycle_t0 = now;
}

void fbatch_finish(struct fbatch *b)
{
	if (b->fill->n)
		submit(b);
	if (b->busy) {
		wait_busy(b);
		struct lbatch *lb = b->busy;
		b->busy = NULL;
		learn_taps(b, lb, 0);
		batch_report(lb);
	}
	b->cycle_t0 = 0; /* the time until the next line is not work */
}

void fbatch_add(struct fbatch *b, const struct fbatch_set *set, const char *line, size_t len,
		double jtime, double now, uint64_t tag)
{
	if (set->ntaps == 0)
		return;
	if (!b->thread) {
		line_inline(b, set, line, len, jtime, now, tag);
		return;
	}
	struct lbatch *lb = b->fill;
	if (lb->n && lb->set != set)
		fbatch_finish(b);
	else if (lb->n && (lb->n == lb->lines || lb->blen + len > LB_BYTES))
		submit(b);
	lb = b->fill;
	if (lb->blen + len > lb->bcap) {
		lb->bcap = lb->blen + len > LB_BYTES ? lb->blen + len : LB_BYTES;
		lb->buf = xrealloc(lb->buf, lb->bcap);
	}
	lb->set = set;
	if (len) /* an empty first line: no buffer yet */
		memcpy(lb->buf + lb->blen, line, len);
	lb->off[lb->n] = lb->blen;
	lb->len[lb->n] = len;
	lb->jtime[lb->n] = jtime;
	lb->now[lb->n] = now;
	lb->tag[lb->n] = tag;
	lb->blen += len;
	lb->n++;
}

void fbatch_add_now(struct fbatch *b, const struct fbatch_set *set, const char *line, size_t len,
		    double jtime, double now, uint64_t tag)
{
	fbatch_finish(b);
	if (set->ntaps)
		line_inline(b, set, line, len, jtime, now, tag);
}

double fbatch_worker_cpu(struct fbatch *b)
{
	if (!b->started)
		return 0;
	pthread_mutex_lock(&b->mu);
	double c = b->cpu;
	b->cpu = 0;
	pthread_mutex_unlock(&b->mu);
	return c;
}

struct fbatch *fbatch_new(int thread, size_t batch_lines)
{
	struct fbatch *b = xcalloc(1, sizeof *b);
	b->thread = thread;
	if (batch_lines == 0 || batch_lines > LB_LINES)
		batch_lines = LB_LINES;
	b->b[0].lines = b->b[1].lines = batch_lines;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->go, NULL);
	pthread_cond_init(&b->done, NULL);
	b->fill = &b->b[0];
	return b;
}

void fbatch_free(struct fbatch *b)
{
	if (!b)
		return;
	fbatch_finish(b);
	if (b->started) {
		pthread_mutex_lock(&b->mu);
		b->quit = 1;
		pthread_cond_signal(&b->go);
		pthread_mutex_unlock(&b->mu);
		pthread_join(b->th, NULL);
	}
	for (int k = 0; k < 2; k++) {
		struct lbatch *lb = &b->b[k];
		for (size_t t = 0; t < lb->tapcap; t++)
			filter_result_free(&lb->taps[t].res);
		free(lb->taps);
		free(lb->group);
		free(lb->mine);
		free(lb->pre_upto);
		free(lb->took);
		free(lb->pre_took);
		free(lb->fl);
		free(lb->coff);
		free(lb->st);
		free(lb->limited);
		free(lb->pre);
		free(lb->buf);
		free(lb->cbuf);
	}
	free(b->ifl);
	free(b->cost);
	free(b->pcost);
	filter_result_free(&b->ires);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->go);
	pthread_cond_destroy(&b->done);
	free(b);
}
