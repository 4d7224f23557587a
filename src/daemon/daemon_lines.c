/*
 * daemon_lines - log lines to filters to jails, on one CPU or two.
 *
 * daemon_line() takes one line of a source. Without the filter thread (one
 * CPU, `filter_thread = no`, journal lines) the line is prepared once per
 * distinct date setting, run through each tap's filter and its failures go
 * to the tap's jails before the next line is read.
 *
 * With the filter thread a file source's lines are copied into a batch
 * (LB_LINES lines or LB_BYTES bytes). The main thread prepares a full batch
 * (UTF-8 repair and date search, in line order, with the filters' own date
 * detectors) and hands it to the worker, which runs every tap's filter over
 * the batch in line order. Meanwhile the main thread feeds the previous
 * batch's failures to the jails, in line order and, within a line, in tap
 * order, and goes on reading. So the jails see exactly the calls that one
 * line at a time gives, from the main thread only.
 *
 * Who touches what while the worker runs: the worker has each filter's
 * regexes, multi-line buffers, counters and the batch's results; the main
 * thread has each filter's date detector and UTF-8 scratch (filter_prepare
 * uses nothing else), the other batch, the jails, the firewall and the
 * store. The hand-over is a mutex and two condition variables, one batch in
 * flight at a time. A source's batches are finished when its wakeup ends
 * (filesrc_set_done), so outside a file source's read the worker is idle and
 * everything else in the daemon (control socket, journal, reload) sees the
 * filters and jails at rest.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "daemon/daemon_int.h"

#define LB_LINES 256
#define LB_BYTES (128u * 1024)

struct lb_tap {
	struct filter_result res;
	size_t end[LB_LINES];      /* res.n after each line */
	struct date_clock clk;     /* the filter's clock for this batch */
	unsigned long limit_hits;  /* the filter's counter after the batch */
};

struct lbatch {
	struct daemon_source *src;
	double now;                /* the clock the lines are dated against */
	size_t n;
	size_t off[LB_LINES];
	size_t len[LB_LINES];
	char *buf;                 /* the lines' bytes */
	size_t blen, bcap;
	char *cbuf;                /* lines whose UTF-8 had to be repaired */
	size_t clen, ccap;
	struct filter_line *fl;    /* [line * ntaps + tap], filled for share leaders */
	size_t *coff;              /* the same: offset of the text in cbuf, or SIZE_MAX */
	size_t flcap;
	struct lb_tap *taps;
	size_t ntaps, tapcap;
	double cpu;                /* the worker's CPU seconds on this batch */
};

struct daemon_lines {
	struct lbatch b[2];
	struct lbatch *fill;       /* taking lines */
	struct lbatch *busy;       /* with the worker, or done and not merged yet */
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	struct lbatch *job;        /* under mu: the batch the worker is on */
	int quit;
	int started;               /* the thread runs */
	int failed;                /* it could not be started: batches run inline */
	pthread_t th;
};

static double thread_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------- one tap's hits to its jails (main thread) ---------- */

/* Returns 1 when a hit counted as a failure. */
static int tap_deliver(struct daemon_tap *t, const struct filter_hit *hits, size_t n)
{
	int matched = 0;
	for (size_t h = 0; h < n; h++) {
		const struct filter_hit *hit = &hits[h];
		if (!hit->id || hit->nofail)
			continue;
		matched = 1;
		for (size_t k = 0; k < t->njails; k++)
			daemon_on_failure(t->jails[k], hit->id, hit->time, hit->lines, hit->nlines,
					  &hit->groups);
	}
	return matched;
}

static void tap_limit(struct daemon_source *src, struct daemon_filter *df, unsigned long lh)
{
	if (lh == df->limit_hits)
		return;
	df->limit_hits = lh;
	log_warnx("filter %s on %s: regex match limit reached; line treated as not matching",
		  df->spec, src->path);
}

/* ---------- one line at a time ---------- */

static void line_now(struct daemon_source *src, const char *line, size_t len, double jtime)
{
	struct daemon *dm = src->d;
	int matched = 0;
	struct datedetect_memo memo; /* filters with different date settings share searches */
	datedetect_memo_reset(&memo);
	for (size_t i = 0; i < src->ntaps; i++) {
		struct daemon_tap *t = &src->taps[i];
		struct daemon_filter *df = t->flt;
		df->clk.now = dm->line_now;
		if (t->share == i)
			filter_prepare_memo(df->f, line, len, jtime, &df->clk, &memo, &t->fl);
		filter_result_reset(&dm->res);
		filter_process_prepared(df->f, &src->taps[t->share].fl, &df->clk, &dm->res);
		tap_limit(src, df, filter_get_stats(df->f)->limit_hits);
		matched |= tap_deliver(t, dm->res.hits, dm->res.n);
	}
	src->lines_matched += (unsigned long)matched;
}

/* ---------- batches ---------- */

static void batch_shape(struct lbatch *b)
{
	size_t nt = b->src->ntaps;
	if (nt > b->tapcap) {
		b->taps = xrealloc(b->taps, nt * sizeof *b->taps);
		memset(b->taps + b->tapcap, 0, (nt - b->tapcap) * sizeof *b->taps);
		b->tapcap = nt;
	}
	b->ntaps = nt;
	if (nt * LB_LINES > b->flcap) {
		b->flcap = nt * LB_LINES;
		b->fl = xrealloc(b->fl, b->flcap * sizeof *b->fl);
		b->coff = xrealloc(b->coff, b->flcap * sizeof *b->coff);
	}
}

/* Main thread: UTF-8 repair and date search for every line, in order. */
static void batch_prepare(struct lbatch *b)
{
	struct daemon_source *src = b->src;
	size_t nt = src->ntaps;
	batch_shape(b);
	for (size_t t = 0; t < nt; t++) {
		b->taps[t].clk = src->taps[t].flt->clk;
		b->taps[t].clk.now = b->now;
	}
	b->clen = 0;
	for (size_t i = 0; i < b->n; i++) {
		const char *line = b->buf + b->off[i];
		struct datedetect_memo memo;
		datedetect_memo_reset(&memo);
		for (size_t t = 0; t < nt; t++) {
			if (src->taps[t].share != t)
				continue;
			struct filter_line *fl = &b->fl[i * nt + t];
			filter_prepare_memo(src->taps[t].flt->f, line, b->len[i], -1.0, &b->taps[t].clk,
					    &memo, fl);
			b->coff[i * nt + t] = SIZE_MAX;
			if (fl->text != line) {
				/* repaired into the filter's scratch, which the next line reuses */
				if (b->clen + fl->len > b->ccap) {
					b->ccap = (b->clen + fl->len) * 2;
					b->cbuf = xrealloc(b->cbuf, b->ccap);
				}
				memcpy(b->cbuf + b->clen, fl->text, fl->len);
				b->coff[i * nt + t] = b->clen;
				b->clen += fl->len;
			}
		}
	}
	for (size_t k = 0; k < b->n * nt; k++)
		if (src->taps[k % nt].share == k % nt && b->coff[k] != SIZE_MAX)
			b->fl[k].text = b->cbuf + b->coff[k];
}

/* Worker (or inline): every tap's filter over the prepared lines. */
static void batch_process(struct lbatch *b)
{
	double c0 = thread_cpu();
	struct daemon_source *src = b->src;
	size_t nt = b->ntaps;
	for (size_t t = 0; t < nt; t++)
		filter_result_reset(&b->taps[t].res);
	for (size_t i = 0; i < b->n; i++)
		for (size_t t = 0; t < nt; t++) {
			struct daemon_tap *tap = &src->taps[t];
			struct lb_tap *bt = &b->taps[t];
			filter_process_prepared(tap->flt->f, &b->fl[i * nt + tap->share], &bt->clk,
						&bt->res);
			bt->end[i] = bt->res.n;
		}
	for (size_t t = 0; t < nt; t++)
		b->taps[t].limit_hits = filter_get_stats(src->taps[t].flt->f)->limit_hits;
	b->cpu = thread_cpu() - c0;
}

/* Main thread: the batch's failures to the jails, in line and tap order. */
static void batch_merge(struct daemon *dm, struct lbatch *b)
{
	struct daemon_source *src = b->src;
	size_t nt = b->ntaps;
	for (size_t i = 0; i < b->n; i++) {
		int matched = 0;
		for (size_t t = 0; t < nt; t++) {
			struct lb_tap *bt = &b->taps[t];
			size_t from = i ? bt->end[i - 1] : 0;
			matched |= tap_deliver(&src->taps[t], bt->res.hits + from, bt->end[i] - from);
		}
		src->lines_matched += (unsigned long)matched;
	}
	for (size_t t = 0; t < nt; t++)
		tap_limit(src, src->taps[t].flt, b->taps[t].limit_hits);
	dm->line_seconds += b->cpu;
	b->n = 0;
	b->blen = 0;
	b->src = NULL;
}

/* ---------- the worker ---------- */

static void *worker(void *arg)
{
	struct daemon_lines *dl = arg;
	pthread_mutex_lock(&dl->mu);
	for (;;) {
		while (!dl->job && !dl->quit)
			pthread_cond_wait(&dl->go, &dl->mu);
		if (!dl->job)
			break;
		struct lbatch *b = dl->job;
		pthread_mutex_unlock(&dl->mu);
		batch_process(b);
		pthread_mutex_lock(&dl->mu);
		dl->job = NULL;
		pthread_cond_signal(&dl->done);
	}
	pthread_mutex_unlock(&dl->mu);
	return NULL;
}

static void start_worker(struct daemon_lines *dl)
{
	/* the loop takes signals through signalfd: the worker must never get one */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int r = pthread_create(&dl->th, NULL, worker, dl);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		log_warnx("filter thread: %s; filters run in the main thread", strerror(r));
		dl->failed = 1;
		return;
	}
	dl->started = 1;
	log_info("filter thread started: log files' lines are matched beside the main thread");
}

static void wait_busy(struct daemon_lines *dl)
{
	if (!dl->started)
		return;
	pthread_mutex_lock(&dl->mu);
	while (dl->job)
		pthread_cond_wait(&dl->done, &dl->mu);
	pthread_mutex_unlock(&dl->mu);
}

static void hand_over(struct daemon_lines *dl, struct lbatch *b)
{
	if (!dl->started && !dl->failed)
		start_worker(dl);
	if (!dl->started) {
		batch_process(b);
		return;
	}
	pthread_mutex_lock(&dl->mu);
	dl->job = b;
	pthread_cond_signal(&dl->go);
	pthread_mutex_unlock(&dl->mu);
}

/* The filling batch to the worker; the one it had goes to the jails meanwhile. */
static void submit(struct daemon *dm)
{
	struct daemon_lines *dl = dm->lines;
	struct lbatch *b = dl->fill, *prev = dl->busy;
	batch_prepare(b);
	wait_busy(dl);
	hand_over(dl, b);
	dl->busy = b;
	dl->fill = b == &dl->b[0] ? &dl->b[1] : &dl->b[0];
	if (prev)
		batch_merge(dm, prev);
}

void daemon_lines_drain(struct daemon *dm)
{
	struct daemon_lines *dl = dm->lines;
	if (!dl)
		return;
	if (dl->fill->n)
		submit(dm);
	if (dl->busy) {
		wait_busy(dl);
		struct lbatch *b = dl->busy;
		dl->busy = NULL;
		batch_merge(dm, b);
	}
}

void daemon_line(struct daemon_source *src, const char *line, size_t len, double jtime)
{
	struct daemon *dm = src->d;
	/* timed per batch (until the turn ends), not per line; the batch's lines
	 * are also dated against one clock reading, so that the date detector's
	 * cache carries from line to line */
	if (!dm->line_busy)
		daemon_lines_batch_begin(dm);
	src->lines_read++;
	struct daemon_lines *dl = dm->lines;
	if (!dl || jtime >= 0 || src->journal || src->ntaps == 0) {
		line_now(src, line, len, jtime);
		return;
	}
	struct lbatch *b = dl->fill;
	if (b->n && (b->src != src || b->n == LB_LINES || b->blen + len > LB_BYTES)) {
		submit(dm);
		b = dl->fill;
	}
	if (!b->n) {
		b->src = src;
		b->now = dm->line_now;
	}
	if (b->blen + len > b->bcap) {
		b->bcap = b->blen + len > LB_BYTES ? b->blen + len : LB_BYTES;
		b->buf = xrealloc(b->buf, b->bcap);
	}
	memcpy(b->buf + b->blen, line, len);
	b->off[b->n] = b->blen;
	b->len[b->n] = len;
	b->blen += len;
	b->n++;
}

struct daemon_lines *daemon_lines_new(void)
{
	struct daemon_lines *dl = xcalloc(1, sizeof *dl);
	pthread_mutex_init(&dl->mu, NULL);
	pthread_cond_init(&dl->go, NULL);
	pthread_cond_init(&dl->done, NULL);
	dl->fill = &dl->b[0];
	return dl;
}

/* Drains first (needs the daemon: the last failures go to the jails). */
void daemon_lines_free(struct daemon *dm)
{
	struct daemon_lines *dl = dm->lines;
	if (!dl)
		return;
	daemon_lines_drain(dm);
	if (dl->started) {
		pthread_mutex_lock(&dl->mu);
		dl->quit = 1;
		pthread_cond_signal(&dl->go);
		pthread_mutex_unlock(&dl->mu);
		pthread_join(dl->th, NULL);
	}
	for (int k = 0; k < 2; k++) {
		struct lbatch *b = &dl->b[k];
		for (size_t t = 0; t < b->tapcap; t++)
			filter_result_free(&b->taps[t].res);
		free(b->taps);
		free(b->fl);
		free(b->coff);
		free(b->buf);
		free(b->cbuf);
	}
	pthread_mutex_destroy(&dl->mu);
	pthread_cond_destroy(&dl->go);
	pthread_cond_destroy(&dl->done);
	free(dl);
	dm->lines = NULL;
}

int daemon_lines_want(const char *setting)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	if (!setting || !*setting || strcasecmp(setting, "auto") == 0)
		return sysconf(_SC_NPROCESSORS_ONLN) > 1;
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
		if (strcasecmp(setting, yes[i]) == 0)
			return 1;
		if (strcasecmp(setting, no[i]) == 0)
			return 0;
	}
	return -1;
}
