/*
 * test - `mxjail test`: runs filters over a log, the way fail2ban-regex does.
 *
 *   mxjail test [-c DIR] [--now EPOCH] [--all] [--json] [--threads 1|2]
 *               [--print-all-matched|--print-all-missed] FILTER[k=v,...] [FILTER2 ...] LOG|-
 *
 * Every line is read once and handed to each filter in turn (one pass for any
 * number of filters). Without --json it prints a summary like fail2ban-regex
 * (per-regex hits, "Lines: N lines, I ignored, M matched, X missed"; comment
 * and empty lines are skipped as fail2ban-regex skips them). With --json it
 * prints exactly one JSON object per input line, in input order.
 * Matching runs in a second thread (filters/fbatch.h) when the machine has
 * more than one CPU, or with --threads 2; --threads 1 keeps everything in one
 * thread. The output is the same either way.
 * A filter whose logtype is journal takes each line's time from --now, as a
 * journal entry carries its own time.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/clocks.h"
#include "core/diag.h"
#include "core/linereader.h"
#include "filters/fbatch.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "filters/filter.h"

struct tfilter {
	char *spec;
	struct filter *f;
	struct date_clock clk;
	int journal;
	size_t share;       /* index of the filter whose line preparation this one reuses */
};

/* A run's counters and output, filled line by line by on_result(). */
struct trun {
	const struct tfilter *tf;
	size_t nf;
	int json, pmatched, pmissed;
	struct strbuf out, matched_lines, missed_lines;
	unsigned long tested, matched, ignored, missed;
	int any_match, any_ign, fail; /* the line being reported, over its filters */
};

static void usage(void)
{
	fprintf(stderr,
		"usage: mxjail test [-c DIR] [--now EPOCH] [--all] [--json] [--threads 1|2]\n"
		"                   [--print-all-matched|--print-all-missed]\n"
		"                   FILTER[k=v,...] [FILTER2 ...] LOGFILE|-\n");
}

static void json_hit_fields(struct strbuf *o, const struct filter_hit *hits, size_t n)
{
	/* The failure: first hit that is neither pending nor nofail. */
	const struct filter_hit *h = NULL;
	for (size_t i = 0; i < n; i++)
		if (hits[i].id && !hits[i].nofail) {
			h = &hits[i];
			break;
		}
	strbuf_adds(o, "\"match\":");
	strbuf_adds(o, h ? "true" : "false");
	strbuf_adds(o, ",\"regex\":[");
	int first = 1;
	for (size_t i = 0; i < n; i++) {
		if (!hits[i].id || hits[i].nofail)
			continue;
		strbuf_addf(o, "%s%d", first ? "" : ",", hits[i].regex);
		first = 0;
	}
	strbuf_adds(o, "],\"nofail_regex\":[");
	first = 1;
	for (size_t i = 0; i < n; i++) {
		if (hits[i].id && !hits[i].nofail)
			continue;
		strbuf_addf(o, "%s%d", first ? "" : ",", hits[i].regex);
		first = 0;
	}
	strbuf_addc(o, ']');
	if (!h)
		return;
	strbuf_adds(o, ",\"host\":");
	strbuf_add_json(o, h->id, strlen(h->id));
	if (h->time >= 0)
		strbuf_addf(o, ",\"time\":%.6f", h->time);
	else
		strbuf_adds(o, ",\"time\":null");
	strbuf_addf(o, ",\"attempts\":%zu,\"users\":[", h->nlines);
	for (size_t i = 0; i < h->nusers; i++) {
		if (i)
			strbuf_addc(o, ',');
		strbuf_add_json(o, h->users[i], strlen(h->users[i]));
	}
	strbuf_adds(o, "],\"lines\":[");
	for (size_t i = 0; i < h->nlines; i++) {
		if (i)
			strbuf_addc(o, ',');
		strbuf_add_json(o, h->lines[i], strlen(h->lines[i]));
	}
	strbuf_addc(o, ']');
	for (size_t i = 0; i < h->groups.n; i++) {
		const char *k = h->groups.v[i].key;
		if (!strcmp(k, "match") || !strcmp(k, "line") || !strcmp(k, "host") ||
		    !strcmp(k, "time") || !strcmp(k, "regex") || !strcmp(k, "attempts") ||
		    !strcmp(k, "users") || !strcmp(k, "lines") || !strcmp(k, "nofail_regex"))
			continue;
		strbuf_addc(o, ',');
		strbuf_add_json(o, k, strlen(k));
		strbuf_addc(o, ':');
		strbuf_add_json(o, h->groups.v[i].value, strlen(h->groups.v[i].value));
	}
}

static void print_regex_list(const char *title, size_t n, const char *(*text)(const struct filter *, size_t),
			     const unsigned long *hits, const struct filter *f)
{
	unsigned long total = 0;
	for (size_t i = 0; i < n; i++)
		total += hits[i];
	printf("\n%s: %lu total\n", title, total);
	if (!total)
		return;
	printf("|-  #) [# of hits] regular expression\n");
	for (size_t i = 0; i < n; i++)
		if (hits[i])
			printf("|  %2zu) [%lu] %s\n", i + 1, hits[i], text(f, i));
	printf("`-\n");
}

static void print_date_hits(const struct datedetect *dd)
{
	size_t n = datedetect_ntemplates(dd);
	int any = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned long hits = 0;
		const char *name = datedetect_template(dd, i, &hits, NULL);
		if (!name || !hits)
			continue;
		if (!any)
			printf("\nDate template hits:\n|- [# of hits] date format\n");
		any = 1;
		printf("|  [%lu] %s\n", hits, name);
	}
	if (any)
		printf("`-\n");
}

static void print_lines(const char *title, struct strbuf *lines, unsigned long count, int all)
{
	if (!count)
		return;
	if (!all) {
		printf("\n%s line(s): too many to print.  Use --print-all-%s to print all %lu lines\n",
		       title, title[1] == 'a' ? "matched" : "missed", count);
		return;
	}
	printf("\n%s line(s):\n%s", title, strbuf_str(lines));
}

/* One filter's verdict on one line (filters in order, lines in order). */
static void on_result(void *arg, const char *line, size_t len, uint64_t lineno,
		      const struct fbatch_res *r)
{
	struct trun *tr = arg;
	size_t i = r->tap;
	if (i == 0) {
		tr->any_match = tr->any_ign = tr->fail = 0;
		if (tr->json) {
			strbuf_reset(&tr->out);
			strbuf_addf(&tr->out, "{\"line\":%lu,", (unsigned long)lineno);
		}
	}
	if (r->limited)
		fprintf(stderr,
			"mxjail test: %s: line %lu: regex match limit reached; line treated as not "
			"matching\n",
			tr->tf[i].spec, (unsigned long)lineno);
	if (r->st == FILTER_MATCHED)
		tr->any_match = 1;
	else if (r->st == FILTER_IGNORED)
		tr->any_ign = 1;
	for (size_t h = 0; h < r->nhits; h++)
		if (r->hits[h].id && !r->hits[h].nofail)
			tr->fail = 1;
	if (tr->json) {
		if (tr->nf > 1) {
			strbuf_adds(&tr->out, i ? ",{" : "\"results\":[{");
			strbuf_adds(&tr->out, "\"filter\":");
			strbuf_add_json(&tr->out, tr->tf[i].spec, strlen(tr->tf[i].spec));
			strbuf_addc(&tr->out, ',');
		}
		json_hit_fields(&tr->out, r->hits, r->nhits);
		if (tr->nf > 1)
			strbuf_addc(&tr->out, '}');
	}
	if (i + 1 < tr->nf)
		return;
	if (tr->json) {
		if (tr->nf > 1)
			strbuf_addf(&tr->out, "],\"match\":%s", tr->fail ? "true" : "false");
		strbuf_adds(&tr->out, "}\n");
		fwrite(tr->out.s, 1, tr->out.len, stdout);
		return;
	}
	tr->tested++;
	if (tr->any_ign) {
		tr->ignored++;
	} else if (tr->any_match) {
		tr->matched++;
		if (tr->pmatched) {
			strbuf_adds(&tr->matched_lines, "|  ");
			strbuf_add(&tr->matched_lines, line, len);
			strbuf_addc(&tr->matched_lines, '\n');
		}
	} else {
		tr->missed++;
		if (tr->pmissed) {
			strbuf_adds(&tr->missed_lines, "|  ");
			strbuf_add(&tr->missed_lines, line, len);
			strbuf_addc(&tr->missed_lines, '\n');
		}
	}
}

int cmd_test(int argc, char **argv)
{
	const char *dir = MXJAIL_SYSCONFDIR;
	double now = -1;
	int json = 0, all = 0, pmatched = 0, pmissed = 0;
	int threads = fbatch_cpus_spare() ? 2 : 1;
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"now", required_argument, NULL, 'n'},
		{"all", no_argument, NULL, 'a'},
		{"json", no_argument, NULL, 'j'},
		{"print-all-matched", no_argument, NULL, 'M'},
		{"print-all-missed", no_argument, NULL, 'X'},
		{"threads", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': dir = optarg; break;
		case 'n': {
			char *end;
			now = strtod(optarg, &end);
			if (*end || now < 0) {
				fprintf(stderr, "mxjail test: --now expects epoch seconds, got '%s'\n", optarg);
				return 2;
			}
			break;
		}
		case 'a': all = 1; break;
		case 'j': json = 1; break;
		case 'M': pmatched = 1; break;
		case 'X': pmissed = 1; break;
		case 't':
			if (strcmp(optarg, "1") != 0 && strcmp(optarg, "2") != 0) {
				fprintf(stderr, "mxjail test: --threads expects 1 or 2, got '%s'\n",
					optarg);
				return 2;
			}
			threads = optarg[0] - '0';
			break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (argc - optind < 2) {
		usage();
		return 2;
	}
	if (now < 0)
		now = clocks_real();
	const char *logname = argv[argc - 1];
	size_t nf = (size_t)(argc - optind - 1);
	struct tfilter *tf = xcalloc(nf, sizeof *tf);
	struct diag d = DIAG_INIT;
	int bad = 0;
	for (size_t i = 0; i < nf; i++) {
		tf[i].spec = argv[optind + (int)i];
		struct filter_def def = {0};
		if (config_load_filter(dir, tf[i].spec, NULL, &def, &d) == 0) {
			tf[i].f = filter_compile(&def, &d);
			if (tf[i].f) {
				struct filter_opts o = {.check_all = all || !json, .raw_host = 1};
				filter_set_opts(tf[i].f, &o);
				tf[i].journal = filter_is_journal(tf[i].f);
				tf[i].clk.now = now;
				if (def.logtimezone && *def.logtimezone) {
					if (datedetect_parse_tz(def.logtimezone, &tf[i].clk.tz_offset) == 0)
						tf[i].clk.has_tz = 1;
					else
						diag_error(&d, def.file, 0, "logtimezone: unknown zone '%s'",
							   def.logtimezone);
				}
			}
		}
		filter_def_free(&def);
		if (!tf[i].f)
			bad = 1;
	}
	diag_print(&d, stderr);
	if (bad || d.nerrors) {
		diag_clear(&d);
		for (size_t i = 0; i < nf; i++)
			filter_free(tf[i].f);
		free(tf);
		return 1;
	}
	diag_clear(&d);
	/* Filters that find dates the same way share one date parse per line. */
	for (size_t i = 0; i < nf; i++) {
		tf[i].share = i;
		for (size_t j = 0; j < i && !tf[i].journal; j++)
			if (!tf[j].journal && tf[j].share == j &&
			    strcmp(filter_date_key(tf[i].f), filter_date_key(tf[j].f)) == 0) {
				tf[i].share = j;
				break;
			}
	}

	int fd = 0;
	if (strcmp(logname, "-") != 0) {
		fd = open(logname, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "mxjail test: %s: %s\n", logname, strerror(errno));
			for (size_t i = 0; i < nf; i++)
				filter_free(tf[i].f);
			free(tf);
			return 1;
		}
	}
	struct linereader lr;
	linereader_init(&lr, fd, 0);
	struct trun tr = {.tf = tf, .nf = nf, .json = json, .pmatched = pmatched,
			  .pmissed = pmissed, .out = STRBUF_INIT, .matched_lines = STRBUF_INIT,
			  .missed_lines = STRBUF_INIT};
	struct fbatch_tap *taps = xcalloc(nf, sizeof *taps);
	for (size_t i = 0; i < nf; i++) {
		taps[i].f = tf[i].f;
		taps[i].share = tf[i].share;
		taps[i].clk = &tf[i].clk;
		taps[i].journal_now = tf[i].journal;
	}
	struct fbatch_set set = {taps, nf, on_result, &tr};
	struct fbatch *fb = fbatch_new(threads > 1, 0);
	unsigned long lineno = 0;
	double t0 = clocks_real();
	const char *line;
	size_t len;
	int rc;
	while ((rc = linereader_next(&lr, &line, &len)) == 1) {
		lineno++;
		if (!json && (len == 0 || line[0] == '#'))
			continue;
		fbatch_add(fb, &set, line, len, -1.0, now, lineno);
	}
	fbatch_finish(fb);
	if (rc < 0)
		fprintf(stderr, "mxjail test: %s: read error: %s\n", logname, strerror(errno));
	if (lr.truncated)
		fprintf(stderr, "mxjail test: %lu over-long lines were cut to 16 MiB\n", lr.truncated);
	double elapsed = clocks_real() - t0;
	if (!json) {
		printf("\nRunning tests\n=============\n\n");
		for (size_t i = 0; i < nf; i++)
			printf("Use   failregex filter : %s, basedir: %s\n", tf[i].spec, dir);
		printf("Use         log file : %s\n\n\nResults\n=======\n", logname);
		for (size_t i = 0; i < nf; i++) {
			const struct filter_stats *st = filter_get_stats(tf[i].f);
			if (nf > 1)
				printf("\n[%s] Lines: %lu lines, %lu ignored, %lu matched, %lu missed\n",
				       tf[i].spec, st->lines, st->ignored, st->matched, st->missed);
			print_regex_list("Failregex", filter_nregex(tf[i].f), filter_regex_text,
					 st->regex_hits, tf[i].f);
			print_regex_list("Ignoreregex", filter_nignoreregex(tf[i].f),
					 filter_ignoreregex_text, st->ignoreregex_hits, tf[i].f);
			print_date_hits(filter_datedetect(tf[i].f));
		}
		printf("\nLines: %lu lines, %lu ignored, %lu matched, %lu missed\n", tr.tested,
		       tr.ignored, tr.matched, tr.missed);
		printf("[processed in %.2f sec]\n", elapsed);
		print_lines("Matched", &tr.matched_lines, pmatched ? tr.matched : 0, 1);
		print_lines("Missed", &tr.missed_lines, pmissed ? tr.missed : 0, 1);
	}
	fflush(stdout);
	fbatch_free(fb);
	free(taps);
	strbuf_free(&tr.out);
	strbuf_free(&tr.matched_lines);
	strbuf_free(&tr.missed_lines);
	linereader_free(&lr);
	if (fd > 0)
		close(fd);
	for (size_t i = 0; i < nf; i++)
		filter_free(tf[i].f);
	free(tf);
	return rc < 0 ? 1 : 0;
}
