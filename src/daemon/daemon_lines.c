/*
 * daemon_lines - a source's lines to its filters and their failures to the
 * jails.
 *
 * Each source is an fbatch_set (filters/fbatch.h): its taps, in order, and a
 * callback that hands a tap's failures to every jail behind it. With the
 * filter thread (`filter_thread`, default: when the machine has more than one
 * CPU) a file's lines are matched in batches beside the main thread, which
 * dates the next batch and feeds the previous one's failures to the jails;
 * the jails see the same calls in the same order as with one line at a time,
 * always from the main thread. A file source's lines are finished at the end
 * of each of its wakeups (filesrc_set_done), a journal entry is matched at
 * once on the main thread, so
 * outside a file's read the filters and jails are at rest for everything else
 * in the daemon (control socket, journal, reload, saving positions).
 */
#include <stdlib.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "daemon/daemon_int.h"

static void on_result(void *arg, const char *line, size_t len, uint64_t tag,
		      const struct fbatch_res *r)
{
	(void)line;
	(void)len;
	(void)tag;
	struct daemon_source *src = arg;
	struct daemon_tap *t = &src->taps[r->tap];
	if (r->tap == 0)
		src->line_matched = 0;
	if (r->limited)
		log_warnx("filter %s on %s: regex match limit reached; line treated as not "
			  "matching",
			  t->flt->spec, src->path);
	for (size_t h = 0; h < r->nhits; h++) {
		const struct filter_hit *hit = &r->hits[h];
		if (!hit->id || hit->nofail)
			continue;
		src->line_matched = 1;
		for (size_t k = 0; k < t->njails; k++)
			daemon_on_failure(t->jails[k], hit->id, hit->time, hit->lines, hit->nlines,
					  &hit->groups);
	}
	if (r->tap + 1 == src->ntaps)
		src->lines_matched += (unsigned long)src->line_matched;
}

void daemon_source_taps_ready(struct daemon_source *src)
{
	daemon_lines_drain(src->d); /* no line waits with the old taps */
	free(src->ftaps);
	src->ftaps = xcalloc(src->ntaps ? src->ntaps : 1, sizeof *src->ftaps);
	for (size_t i = 0; i < src->ntaps; i++) {
		src->ftaps[i].f = src->taps[i].flt->f;
		src->ftaps[i].share = src->taps[i].share;
		src->ftaps[i].clk = &src->taps[i].flt->clk;
	}
	src->fset.taps = src->ftaps;
	src->fset.ntaps = src->ntaps;
	src->fset.cb = on_result;
	src->fset.arg = src;
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
	if (jtime >= 0 || src->journal)
		fbatch_add_now(dm->fb, &src->fset, line, len, jtime, dm->line_now, 0);
	else
		fbatch_add(dm->fb, &src->fset, line, len, jtime, dm->line_now, 0);
}

void daemon_lines_drain(struct daemon *dm)
{
	if (!dm->fb)
		return;
	fbatch_finish(dm->fb);
	dm->line_seconds += fbatch_worker_cpu(dm->fb);
}

void daemon_lines_setup(struct daemon *dm, int thread)
{
	if (dm->fb && dm->fb_thread == thread)
		return;
	daemon_lines_drain(dm);
	fbatch_free(dm->fb);
	/* half the most lines per batch: 0.2 MiB less at the peak of a catch-up
	 * (the batches' lines and their results), for hand-overs that cost
	 * little beside the matching */
	dm->fb = fbatch_new(thread, 128);
	dm->fb_thread = thread;
	if (thread)
		log_info("filter thread: log files' lines are matched beside the main thread");
}

void daemon_lines_free(struct daemon *dm)
{
	daemon_lines_drain(dm);
	fbatch_free(dm->fb);
	dm->fb = NULL;
}
