/*
 * daemon_http - `mxjail run`'s metrics listener: Prometheus text on /metrics,
 * a read-only status page on / and the same data as JSON on /status.json.
 *
 * CONFIGURATION: mxjail.conf [mxjail] `metrics = ADDRESS:PORT` (off when
 * unset or "off"), `metrics_token = SECRET`. With a token every request must
 * carry it ("Authorization: Bearer SECRET" or "?token=SECRET"); a listener on
 * a non-loopback address is refused without one, because the page lists
 * every banned address. Read at start and on reload (the listener restarts
 * only when the address or token changed). A bad address or a busy port is
 * logged as an error and the daemon keeps running without the listener:
 * metrics must never cost the protection.
 *
 * COUNTERS: the daemon's own collector reads what the daemon keeps anyway
 * (jail totals, per source line counts, firewall call counts, the CPU
 * time of line handling measured per loop batch, the state file's size). Other
 * modules add theirs with metrics_register(daemon_metrics(dm), cb, arg)
 * (metrics/metrics.h). The 24 h timeline on the page is kept here: failure
 * and ban totals are sampled every 10 s into 15-minute buckets; at start
 * the bans of the last 24 h are read back from the store's history (failures
 * before the start are not kept anywhere, so that series starts empty).
 *
 * SECURITY: everything from the configuration or the logs that reaches the
 * page is HTML-escaped; the page has no scripts and no external assets, and
 * its Content-Security-Policy forbids both. The token is compared in constant time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/clocks.h"
#include "core/kvlist.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timefmt.h"
#include "core/xmalloc.h"
#include "daemon/daemon_int.h"
#include "metrics/http.h"
#include "metrics/metrics.h"
#include "store/store.h"

#define TL_BUCKET 900                      /* seconds per timeline bucket */
#define TL_N (86400 / TL_BUCKET)           /* buckets in 24 h */
#define TL_SAMPLE_MS 10000
#define PAGE_MAX_BANS 1000                 /* rows on the page / in status.json */

struct daemon_http {
	struct daemon *dm;
	struct http_server *srv;
	char *listen, *token;
	uint64_t timer;
	long long slot[TL_N];                  /* which 15-minute slot each bucket holds */
	unsigned long fail[TL_N], bans[TL_N];
	unsigned long last_fail, last_bans;    /* totals at the previous sample */
};

/* The thread's CPU time, not wall time: on a busy machine a batch can wait
 * for the CPU as long as it runs, and that is not time spent matching. */
void daemon_lines_batch_begin(struct daemon *dm)
{
	dm->line_busy = 1;
	dm->line_t0 = clocks_thread_cpu();
	dm->line_now = daemon_now();
}

void daemon_lines_batch_end(struct daemon *dm)
{
	if (!dm->line_busy)
		return;
	double d = clocks_thread_cpu() - dm->line_t0;
	if (d > 0)
		dm->line_seconds += d;
	dm->line_busy = 0;
}

/* ---------- the timeline ---------- */

static void tl_add(struct daemon_http *h, double t, unsigned long fail, unsigned long bans)
{
	long long slot = (long long)(t / TL_BUCKET);
	size_t i = (size_t)(slot % TL_N);
	if (h->slot[i] != slot) {
		h->slot[i] = slot;
		h->fail[i] = h->bans[i] = 0;
	}
	h->fail[i] += fail;
	h->bans[i] += bans;
}

static void totals(struct daemon *dm, unsigned long *fail, unsigned long *bans)
{
	*fail = *bans = 0;
	for (size_t i = 0; dm->set && i < dm->set->njails; i++) {
		*fail += dm->set->jails[i]->failed_total;
		*bans += dm->set->jails[i]->banned_total;
	}
}

/* Adds what happened since the last sample to the current bucket. Totals
 * going down (a jail removed by a reload) just move the baseline. */
static void tl_sample(struct daemon_http *h)
{
	unsigned long f, b;
	totals(h->dm, &f, &b);
	unsigned long df = f >= h->last_fail ? f - h->last_fail : 0;
	unsigned long db = b >= h->last_bans ? b - h->last_bans : 0;
	h->last_fail = f;
	h->last_bans = b;
	tl_add(h, daemon_now(), df, db);
}

static void on_sample(struct loop *l, void *arg)
{
	struct daemon_http *h = arg;
	tl_sample(h);
	h->timer = loop_timer_add(l, TL_SAMPLE_MS, on_sample, h);
}

static void seed_ban(struct daemon_ban *b, void *arg)
{
	struct daemon_http *h = arg;
	if (b->timeofban > daemon_now() - 86400)
		tl_add(h, b->timeofban, 0, 1);
}

static int seed_hist(void *arg, const char *jail, const char *id, double timeofban)
{
	(void)jail;
	(void)id;
	tl_add(arg, timeofban, 0, 1);
	return 0;
}

/* Every ban of the last 24 h, ended or not, is in the store's history; the
 * live bans are the fallback when there is no store or it cannot be read. */
static void tl_seed(struct daemon_http *h)
{
	struct daemon *dm = h->dm;
	double since = (double)((long long)(daemon_now() - 86400) / TL_BUCKET + 1) * TL_BUCKET;
	if (dm->store && store_history_since(dm->store, since, seed_hist, h) == 0)
		return;
	if (dm->store)
		log_warnx("metrics: timeline without ban history: %s", store_error(dm->store));
	memset(h->slot, 0, sizeof h->slot);
	memset(h->bans, 0, sizeof h->bans);
	daemon_bans_foreach(dm, seed_ban, h);
}

/* ---------- the daemon's collector ---------- */

static void file_size(const char *path, double *sum)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
		*sum += (double)st.st_size;
}

static void collect_daemon(struct metrics_buf *b, void *arg)
{
	struct daemon *dm = arg;
	struct daemon_set *s = dm->set;
	metrics_family(b, "mxjail_info", METRICS_GAUGE, "mxjail version (always 1).");
	metrics_sample1(b, "version", MXJAIL_VERSION, 1);
	metrics_single(b, "mxjail_start_time_seconds", METRICS_GAUGE,
		       "When the daemon started, seconds since the epoch.", dm->started);
	metrics_single(b, "mxjail_dry_run", METRICS_GAUGE,
		       "1 when the null firewall backend is in use (nothing is blocked).",
		       dm->dry_run);
	static const struct {
		const char *name, *help;
		int type;
	} jf[] = {
		{"mxjail_jail_failures_total", "Failures counted by the jail.", METRICS_COUNTER},
		{"mxjail_jail_failed", "Addresses with failures being tracked now.", METRICS_GAUGE},
		{"mxjail_jail_bans_total", "Bans made by the jail.", METRICS_COUNTER},
		{"mxjail_jail_banned", "Addresses banned by the jail now.", METRICS_GAUGE},
		{"mxjail_jail_evictions_total",
		 "Tracked addresses forgotten because the jail hit maxtracked.", METRICS_COUNTER},
	};
	for (size_t k = 0; k < sizeof jf / sizeof jf[0]; k++) {
		metrics_family(b, jf[k].name, (enum metrics_type)jf[k].type, jf[k].help);
		for (size_t i = 0; s && i < s->njails; i++) {
			struct daemon_jail *j = s->jails[i];
			double v = k == 0   ? (double)j->failed_total
				   : k == 1 ? (double)(j->j ? jail_tracked(j->j) : 0)
				   : k == 2 ? (double)j->banned_total
				   : k == 3 ? (double)j->banned_now
					    : (double)(j->j ? jail_evictions(j->j) : 0);
			metrics_sample1(b, "jail", j->name, v);
		}
	}
	metrics_single(b, "mxjail_bans", METRICS_GAUGE, "Live bans in every jail.",
		       (double)dm->bans.n);
	metrics_family(b, "mxjail_source_lines_total", METRICS_COUNTER,
		       "Log lines read from the source (file path or journal match set).");
	for (size_t i = 0; s && i < s->nsources; i++)
		metrics_sample1(b, "source", s->sources[i]->path, (double)s->sources[i]->lines_read);
	metrics_family(b, "mxjail_source_matched_total", METRICS_COUNTER,
		       "Log lines from the source that produced at least one failure.");
	for (size_t i = 0; s && i < s->nsources; i++)
		metrics_sample1(b, "source", s->sources[i]->path,
				(double)s->sources[i]->lines_matched);
	double limit = 0;
	for (size_t i = 0; s && i < s->nfilters; i++)
		limit += (double)filter_get_stats(s->filters[i]->f)->limit_hits;
	metrics_single(b, "mxjail_regex_seconds_total", METRICS_COUNTER,
		       "CPU seconds spent handling log lines (dates, regexes, failure accounting), "
		       "measured per event-loop batch.",
		       dm->line_seconds);
	metrics_single(b, "mxjail_regex_limit_hits_total", METRICS_COUNTER,
		       "Lines whose match hit the PCRE2 match or depth limit (current filters).",
		       limit);
	static const char *const ops[DFW_NOPS] = {"ban", "unban", "commit", "check", "rebuild"};
	metrics_family(b, "mxjail_fw_operations_total", METRICS_COUNTER,
		       "Firewall calls made (ban and unban are queued, then committed per loop turn).");
	for (int i = 0; i < DFW_NOPS; i++)
		if (i != DFW_COMMIT) /* a commit runs every turn, mostly with nothing queued */
			metrics_sample1(b, "op", ops[i], (double)dm->fw_ops[i]);
	metrics_family(b, "mxjail_fw_errors_total", METRICS_COUNTER, "Firewall calls that failed.");
	for (int i = 0; i < DFW_NOPS; i++)
		metrics_sample1(b, "op", ops[i], (double)dm->fw_errs[i]);
	if (dm->dbpath) {
		double sz = 0;
		char *wal = xasprintf("%s-wal", dm->dbpath);
		file_size(dm->dbpath, &sz);
		file_size(wal, &sz);
		free(wal);
		metrics_single(b, "mxjail_state_db_bytes", METRICS_GAUGE,
			       "Size of the state database with its write-ahead log.", sz);
	}
	if (dm->http && dm->http->srv) {
		struct http_stats st;
		http_server_stats(dm->http->srv, &st);
		metrics_single(b, "mxjail_http_requests_total", METRICS_COUNTER,
			       "Requests answered by the metrics listener.", (double)st.requests);
		metrics_single(b, "mxjail_http_rejected_total", METRICS_COUNTER,
			       "Requests the listener refused as malformed or over a limit, and "
			       "connections cut by a timeout or to make room.",
			       (double)(st.errors + st.timeouts + st.evicted));
		metrics_single(b, "mxjail_http_clients", METRICS_GAUGE,
			       "Connections open to the metrics listener.", (double)st.clients);
	}
	metrics_process(b);
}

struct metrics *daemon_metrics(struct daemon *dm)
{
	if (!dm->metrics) {
		dm->metrics = metrics_new();
		metrics_register(dm->metrics, collect_daemon, dm);
	}
	return dm->metrics;
}

/* ---------- pages ---------- */

static void html(struct strbuf *o, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': strbuf_adds(o, "&lt;"); break;
		case '>': strbuf_adds(o, "&gt;"); break;
		case '&': strbuf_adds(o, "&amp;"); break;
		case '"': strbuf_adds(o, "&quot;"); break;
		case '\'': strbuf_adds(o, "&#39;"); break;
		default: strbuf_addc(o, *s);
		}
	}
}

static void jstr(struct strbuf *o, const char *s)
{
	strbuf_add_json(o, s ? s : "", s ? strlen(s) : 0);
}

struct banvec {
	struct daemon_ban **v;
	size_t n, cap;
};

static void collect_ban(struct daemon_ban *b, void *arg)
{
	struct banvec *bv = arg;
	bv->v = xgrow(bv->v, &bv->cap, bv->n, sizeof *bv->v);
	bv->v[bv->n++] = b;
}

static int ban_newest_first(const void *a, const void *b)
{
	const struct daemon_ban *x = *(struct daemon_ban *const *)a;
	const struct daemon_ban *y = *(struct daemon_ban *const *)b;
	if (x->timeofban != y->timeofban)
		return x->timeofban < y->timeofban ? 1 : -1;
	int c = strcmp(x->jailname, y->jailname);
	return c ? c : strcmp(x->id, y->id);
}

static void fmt_duration(struct strbuf *o, double s)
{
	long long t = (long long)(s + 0.5);
	if (t >= 86400)
		strbuf_addf(o, "%lldd %02lldh", t / 86400, t % 86400 / 3600);
	else if (t >= 3600)
		strbuf_addf(o, "%lldh %02lldm", t / 3600, t % 3600 / 60);
	else
		strbuf_addf(o, "%lldm %02llds", t / 60, t % 60);
}

/* The timeline as inline SVG: failures (wide bars) and bans (narrow, in front). */
static void timeline_svg(struct daemon_http *h, struct strbuf *o)
{
	double now = daemon_now();
	long long cur = (long long)(now / TL_BUCKET);
	unsigned long maxv = 1, sumf = 0, sumb = 0;
	for (long long k = 0; k < TL_N; k++) {
		size_t i = (size_t)((cur - k) % TL_N);
		if (h->slot[i] != cur - k)
			continue;
		if (h->fail[i] > maxv)
			maxv = h->fail[i];
		if (h->bans[i] > maxv)
			maxv = h->bans[i];
		sumf += h->fail[i];
		sumb += h->bans[i];
	}
	const int W = 10, H = 160, top = 10, left = 40;
	strbuf_addf(o,
		    "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		    "height=\"%d\" role=\"img\" aria-label=\"failures and bans per 15 minutes, last 24 "
		    "hours\" data-failures=\"%lu\" data-bans=\"%lu\">\n",
		    left + TL_N * W + 10, H + top + 30, sumf, sumb);
	strbuf_addf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>\n", left,
		    top + H, left + TL_N * W, top + H);
	strbuf_addf(o, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%lu</text>\n",
		    left - 4, top + 10, maxv);
	strbuf_addf(o, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">0</text>\n",
		    left - 4, top + H);
	for (int hrs = 24; hrs >= 0; hrs -= 6)
		strbuf_addf(o,
			    "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n",
			    left + (24 - hrs) * (TL_N / 24) * W, top + H + 16,
			    hrs == 24 ? "-24h" : hrs == 18 ? "-18h" : hrs == 12 ? "-12h" : hrs == 6 ? "-6h"
												  : "now");
	for (long long k = TL_N - 1; k >= 0; k--) {
		size_t i = (size_t)((cur - k) % TL_N);
		if (h->slot[i] != cur - k || (!h->fail[i] && !h->bans[i]))
			continue;
		int x = left + (int)(TL_N - 1 - k) * W;
		int hf = (int)((double)h->fail[i] * H / (double)maxv);
		int hb = (int)((double)h->bans[i] * H / (double)maxv);
		char when[32];
		timefmt_local((double)(cur - k) * TL_BUCKET, when, sizeof when);
		strbuf_addf(o, "<g class=\"slot\"><title>%s: %lu failures, %lu bans</title>", when,
			    h->fail[i], h->bans[i]);
		if (h->fail[i])
			strbuf_addf(o,
				    "<rect class=\"fail\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
				    "fill=\"#f0a030\"/>",
				    x, top + H - (hf ? hf : 1), W - 1, hf ? hf : 1);
		if (h->bans[i])
			strbuf_addf(o,
				    "<rect class=\"ban\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
				    "fill=\"#c02020\"/>",
				    x + 2, top + H - (hb ? hb : 1), W - 5, hb ? hb : 1);
		strbuf_adds(o, "</g>\n");
	}
	strbuf_adds(o, "</svg>\n");
}

static const char page_style[] =
	"body{font:14px/1.4 sans-serif;margin:1.5em;color:#222}"
	"table{border-collapse:collapse;margin-bottom:1.5em}"
	"th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}"
	"th{background:#eee}td.n{text-align:right}"
	".key span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}";

static void page_html(struct daemon *dm, const char *token_q, struct strbuf *o)
{
	struct daemon_set *s = dm->set;
	double now = daemon_now();
	strbuf_adds(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		       "<meta http-equiv=\"refresh\" content=\"5\">"
		       "<title>mxjail status</title><style>");
	strbuf_adds(o, page_style);
	strbuf_adds(o, "</style></head><body>\n<h1>mxjail</h1>\n<p id=\"summary\">");
	strbuf_addf(o, "Version %s, up ", MXJAIL_VERSION);
	fmt_duration(o, now - dm->started);
	strbuf_addf(o, ", <span id=\"njails\">%zu</span> jail%s, <span id=\"nbans\">%zu</span> live "
		       "ban%s%s. Updated ",
		    s ? s->njails : 0, s && s->njails == 1 ? "" : "s", dm->bans.n,
		    dm->bans.n == 1 ? "" : "s", dm->dry_run ? ", dry run (nothing is blocked)" : "");
	char t[32];
	timefmt_local(now, t, sizeof t);
	strbuf_addf(o, "%s. <a href=\"metrics%s\">metrics</a> <a href=\"status.json%s\">json</a></p>\n",
		    t, token_q, token_q);

	strbuf_adds(o, "<h2>Jails</h2>\n<table id=\"jails\"><tr><th>Jail</th><th>Currently failed"
		       "</th><th>Total failed</th><th>Currently banned</th><th>Total banned</th>"
		       "<th>Actions</th><th>Logs</th></tr>\n");
	for (size_t i = 0; s && i < s->njails; i++) {
		struct daemon_jail *j = s->jails[i];
		strbuf_adds(o, "<tr class=\"jail\"><td>");
		html(o, j->name);
		strbuf_addf(o, "</td><td class=\"n\">%zu</td><td class=\"n\">%lu</td><td class=\"n\">%zu"
			       "</td><td class=\"n\">%lu</td><td>",
			    j->j ? jail_tracked(j->j) : 0, j->failed_total, j->banned_now,
			    j->banned_total);
		html(o, j->actions);
		strbuf_adds(o, "</td><td>");
		if (j->journal) {
			strbuf_adds(o, "journal: ");
			html(o, j->flt->journalmatch);
		}
		for (size_t f = 0; !j->journal && f < j->nfiles; f++) {
			if (f)
				strbuf_adds(o, "<br>");
			html(o, j->files[f]);
		}
		strbuf_adds(o, "</td></tr>\n");
	}
	strbuf_adds(o, "</table>\n<h2>Last 24 hours</h2>\n<p class=\"key\"><span "
		       "style=\"background:#f0a030\"></span>failures<span "
		       "style=\"background:#c02020\"></span>bans (per 15 minutes)</p>\n");
	timeline_svg(dm->http, o);

	struct banvec bv = {0};
	daemon_bans_foreach(dm, collect_ban, &bv);
	if (bv.n)
		qsort(bv.v, bv.n, sizeof *bv.v, ban_newest_first);
	strbuf_addf(o, "<h2>Live bans</h2>\n<table id=\"bans\"><tr><th>Jail</th><th>Address</th>"
		       "<th>Banned at</th><th>Ends</th><th>Remaining</th><th>Ban count</th></tr>\n");
	for (size_t i = 0; i < bv.n && i < PAGE_MAX_BANS; i++) {
		struct daemon_ban *b = bv.v[i];
		strbuf_adds(o, "<tr class=\"ban\"><td>");
		html(o, b->jailname);
		strbuf_adds(o, "</td><td class=\"addr\">");
		html(o, b->id);
		timefmt_local(b->timeofban, t, sizeof t);
		strbuf_addf(o, "</td><td>%s</td><td>", t);
		timefmt_local(b->end, t, sizeof t);
		strbuf_addf(o, "%s</td><td class=\"n\">", t);
		if (b->end < 0)
			strbuf_adds(o, "forever");
		else
			fmt_duration(o, b->end > now ? b->end - now : 0);
		strbuf_addf(o, "</td><td class=\"n\">%u</td></tr>\n", b->bancount);
	}
	strbuf_adds(o, "</table>\n");
	if (bv.n > PAGE_MAX_BANS)
		strbuf_addf(o, "<p>%zu more bans are not shown (<code>mxjail banned</code> lists "
			       "them all).</p>\n",
			    bv.n - PAGE_MAX_BANS);
	if (!bv.n)
		strbuf_adds(o, "<p id=\"nobans\">No live bans.</p>\n");
	free(bv.v);
	strbuf_adds(o, "</body></html>\n");
}

static void page_json(struct daemon *dm, struct strbuf *o)
{
	struct daemon_set *s = dm->set;
	struct daemon_http *h = dm->http;
	double now = daemon_now();
	strbuf_adds(o, "{\"version\":");
	jstr(o, MXJAIL_VERSION);
	strbuf_addf(o, ",\"now\":%.3f,\"uptime\":%.0f,\"dry_run\":%s,\"jails\":[", now,
		    now - dm->started, dm->dry_run ? "true" : "false");
	for (size_t i = 0; s && i < s->njails; i++) {
		struct daemon_jail *j = s->jails[i];
		strbuf_adds(o, i ? ",{\"name\":" : "{\"name\":");
		jstr(o, j->name);
		strbuf_addf(o, ",\"currently_failed\":%zu,\"total_failed\":%lu,\"currently_banned\":%zu,"
			       "\"total_banned\":%lu}",
			    j->j ? jail_tracked(j->j) : 0, j->failed_total, j->banned_now,
			    j->banned_total);
	}
	struct banvec bv = {0};
	daemon_bans_foreach(dm, collect_ban, &bv);
	if (bv.n)
		qsort(bv.v, bv.n, sizeof *bv.v, ban_newest_first);
	strbuf_addf(o, "],\"live_bans\":%zu,\"bans\":[", bv.n);
	for (size_t i = 0; i < bv.n && i < PAGE_MAX_BANS; i++) {
		struct daemon_ban *b = bv.v[i];
		strbuf_adds(o, i ? ",{\"jail\":" : "{\"jail\":");
		jstr(o, b->jailname);
		strbuf_adds(o, ",\"address\":");
		jstr(o, b->id);
		strbuf_addf(o, ",\"timeofban\":%.0f,\"end\":%.0f,\"bancount\":%u}", b->timeofban,
			    b->end, b->bancount);
	}
	free(bv.v);
	long long cur = (long long)(now / TL_BUCKET);
	strbuf_addf(o, "],\"timeline\":{\"bucket_seconds\":%d,\"start\":%lld,\"failures\":[",
		    TL_BUCKET, (cur - TL_N + 1) * TL_BUCKET);
	for (int pass = 0; pass < 2; pass++) {
		if (pass)
			strbuf_adds(o, "],\"bans\":[");
		for (long long k = TL_N - 1; k >= 0; k--) {
			size_t i = (size_t)((cur - k) % TL_N);
			unsigned long v = h->slot[i] != cur - k ? 0 : pass ? h->bans[i] : h->fail[i];
			strbuf_addf(o, "%lu%s", v, k ? "," : "");
		}
	}
	strbuf_adds(o, "]}}\n");
}

/* ---------- requests ---------- */

static int token_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;
	for (size_t i = 0; i < la; i++)
		d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return d == 0;
}

static int authorised(struct daemon_http *h, const struct http_request *rq, char *given,
		      size_t givenlen)
{
	given[0] = '\0';
	if (!h->token)
		return 1;
	const char *a = http_header(rq, "Authorization");
	if (a && strncasecmp(a, "Bearer ", 7) == 0) {
		snprintf(given, givenlen, "%s", a + 7);
		if (token_eq(given, h->token)) {
			given[0] = '\0'; /* came in a header: links need not carry it */
			return 1;
		}
	}
	if (http_query_get(rq->query, "token", given, givenlen) >= 0 && token_eq(given, h->token))
		return 1;
	given[0] = '\0';
	return 0;
}

static void on_request(void *arg, const struct http_request *rq, struct http_response *rs)
{
	struct daemon_http *h = arg;
	struct daemon *dm = h->dm;
	char given[256];
	if (!authorised(h, rq, given, sizeof given)) {
		rs->status = 401;
		rs->headers = "WWW-Authenticate: Bearer realm=\"mxjail\"\r\n";
		strbuf_adds(&rs->body, "401 Unauthorized: a token is required (Authorization: Bearer "
				       "TOKEN, or ?token=TOKEN)\n");
		return;
	}
	tl_sample(h);
	if (strcmp(rq->path, "/metrics") == 0) {
		rs->content_type = METRICS_CONTENT_TYPE;
		metrics_render(daemon_metrics(dm), &rs->body);
	} else if (strcmp(rq->path, "/") == 0 || strcmp(rq->path, "/index.html") == 0) {
		struct strbuf q = STRBUF_INIT;
		if (given[0]) {
			/* keep the token on the page's own links; percent-encode it */
			strbuf_adds(&q, "?token=");
			for (const unsigned char *p = (const unsigned char *)given; *p; p++) {
				if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				    (*p >= '0' && *p <= '9') || strchr("-._~", *p))
					strbuf_addc(&q, (char)*p);
				else
					strbuf_addf(&q, "%%%02X", *p);
			}
		}
		rs->content_type = "text/html; charset=utf-8";
		rs->headers = "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n";
		page_html(dm, strbuf_str(&q), &rs->body);
		strbuf_free(&q);
	} else if (strcmp(rq->path, "/status.json") == 0) {
		rs->content_type = "application/json";
		page_json(dm, &rs->body);
	} else {
		rs->status = 404;
		strbuf_adds(&rs->body, "404 Not Found (try /, /metrics or /status.json)\n");
	}
}

/* ---------- start and stop ---------- */

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static const char *opt(const struct config *cfg, const char *key)
{
	const char *v = kvlist_get(&cfg->mxjail, key);
	return v && *v ? v : NULL;
}

void daemon_http_start(struct daemon *dm, const struct config *cfg)
{
	const char *listen = opt(cfg, "mxjail.metrics");
	const char *token = opt(cfg, "mxjail.metrics_token");
	if (kvlist_bool(listen) == 0) /* off, no, false */
		listen = NULL;
	struct daemon_http *h = dm->http;
	if (h && h->srv && same(h->listen, listen) && same(h->token, token))
		return;
	if (h && h->srv) {
		log_info("metrics: closing %s", h->listen);
		h->srv = http_server_free(h->srv);
	}
	if (!listen)
		return;
	if (!h) {
		h = dm->http = xcalloc(1, sizeof *h);
		h->dm = dm;
		totals(dm, &h->last_fail, &h->last_bans);
		tl_seed(h);
		h->timer = loop_timer_add(dm->loop, TL_SAMPLE_MS, on_sample, h);
	}
	free(h->listen);
	free(h->token);
	h->listen = xstrdup(listen);
	h->token = token ? xstrdup(token) : NULL;
	char err[512];
	struct sockaddr_storage ss;
	socklen_t sl;
	int lr = http_parse_listen(listen, &ss, &sl, err, sizeof err);
	if (lr == 1 && !token) {
		log_msg(LOG_LVL_ERROR,
			"metrics = %s is not a loopback address and metrics_token is not set; the "
			"status page lists every banned address, so it is not served",
			listen);
		return;
	}
	struct http_server *srv =
		lr < 0 ? NULL : http_server_new(dm->loop, listen, NULL, on_request, h, err, sizeof err);
	if (!srv) {
		log_msg(LOG_LVL_ERROR, "metrics = %s: %s; running without the metrics listener", listen,
			err);
		return;
	}
	h->srv = srv;
	daemon_metrics(dm);
	log_notice("metrics: serving /metrics and the status page on http://%s/%s", listen,
		   token ? " (token required)" : "");
}

void daemon_http_stop(struct daemon *dm)
{
	struct daemon_http *h = dm->http;
	if (h) {
		http_server_free(h->srv);
		if (h->timer && dm->loop)
			loop_timer_del(dm->loop, h->timer);
		free(h->listen);
		free(h->token);
		free(h);
		dm->http = NULL;
	}
	dm->metrics = metrics_free(dm->metrics);
}
