/*
 * filter - a compiled fail2ban filter: prefregex, failregex, ignoreregex, date
 * detection and multi-line state, evaluated on one log line at a time.
 *
 * INTERFACE: filter_compile() takes a filter_def (plain data from the config
 * module), expands the host tags (<HOST>, <ADDR>, <F-ID>...) and compiles every
 * regex with PCRE2 JIT. filter_process() feeds one line and appends the failures
 * it produced to a filter_result; hits own their strings until
 * filter_result_reset(). A filter is single-threaded state (multi-line buffers,
 * date template order): one per filter per reader.
 *
 * SECURITY: every match runs under PCRE2 match and depth limits; a line that
 * hits them is counted in stats.limit_hits (callers compare the counter before
 * and after a line to report it) and treated as not matching.
 */
#ifndef MXJAIL_FILTERS_FILTER_H
#define MXJAIL_FILTERS_FILTER_H

#include <stddef.h>

#include "core/kvlist.h"
#include "filters/datedetect.h"
#include "filters/filterdef.h"

struct diag;
struct filter;

/* One failure (or, with check_all, one pending/nofail result) from a line. */
struct filter_hit {
	int regex;          /* index of the failregex that matched */
	char *id;           /* failure id, normalised (fid, ip4, ip6, dns, mlfid); NULL if pending */
	double time;        /* epoch seconds */
	int nofail;         /* F-NOFAIL or pending multi-line session line */
	char **lines;       /* the log lines that make up this failure ("attempts") */
	size_t nlines;
	char **users;       /* distinct users seen in a multi-line session */
	size_t nusers;
	struct kvlist groups; /* every named F- group, lower-case name -> value */
};

struct filter_arena;

/* The hits' strings (id, lines, users, groups) live in mem, which belongs to
 * the result: read them, never free or change them. */
struct filter_result {
	struct filter_hit *hits;
	size_t n, cap;
	struct filter_arena *mem;
};

/* How fail2ban-regex classifies a line (its "Lines:" summary). */
enum filter_status {
	FILTER_MISSED = 0,  /* no failure */
	FILTER_MATCHED,     /* at least one failure (or pending session line) */
	FILTER_IGNORED,     /* an ignoreregex or an F-NOFAIL hit vetoed the line */
};

struct filter_opts {
	int check_all;      /* evaluate every failregex, not only up to the first hit */
	int raw_host;       /* keep DNS names as they are (never resolve) */
};

struct filter_stats {
	unsigned long lines, matched, ignored, missed, nodate, limit_hits;
	/* per regex: hits counted like fail2ban-regex (every result, incl. nofail) */
	unsigned long *regex_hits;       /* per failregex */
	unsigned long *ignoreregex_hits; /* per ignoreregex */
};

/* Returns NULL and adds "file:line: ..." errors to d when a regex is invalid. */
struct filter *filter_compile(const struct filter_def *def, struct diag *d);
void filter_free(struct filter *f);
void filter_set_opts(struct filter *f, const struct filter_opts *o);

/* journal_time >= 0: the line came from the journal and carries this time; the
 * text is not searched for a date. clk gives "now" and the log time zone. */
enum filter_status filter_process(struct filter *f, const char *line, size_t len,
				  double journal_time, const struct date_clock *clk,
				  struct filter_result *out);

/* A line made ready for filters: UTF-8 repaired and its date found. Filters
 * whose date settings are equal (filter_date_key) can share one preparation,
 * so a line read once costs one date parse however many filters see it. The
 * text may point into the preparing filter's scratch space: valid until that
 * filter prepares or processes its next line. */
struct filter_line {
	const char *text;
	size_t len;
	int ascii;           /* every byte < 0x80 */
	double journal_time; /* >= 0: a journal entry's time; no date search */
	int found;           /* datedetect_find() result */
	double t;
	size_t ms, me;
};

void filter_prepare(struct filter *f, const char *line, size_t len, double journal_time,
		    const struct date_clock *clk, struct filter_line *fl);
/* The same, sharing date-template searches with the other filters that see
 * this line through memo (reset by the caller before each line; may be NULL). */
void filter_prepare_memo(struct filter *f, const char *line, size_t len, double journal_time,
			 const struct date_clock *clk, struct datedetect_memo *memo,
			 struct filter_line *fl);
enum filter_status filter_process_prepared(struct filter *f, const struct filter_line *fl,
					   const struct date_clock *clk, struct filter_result *out);
/* The test filter_process_prepared() starts with: are the words every match
 * needs in the line? 1 they may be, 0 they are not (the line is missed), -1
 * the answer depends on the filter's state (a line without a date takes the
 * last one seen). It reads only what filter_compile() built, so another
 * thread may ask it while one matches with the filter. */
int filter_precheck(const struct filter *f, const struct filter_line *fl);
/* filter_process_prepared() given filter_precheck()'s answer for the line. */
enum filter_status filter_process_checked(struct filter *f, const struct filter_line *fl,
					  const struct date_clock *clk, struct filter_result *out,
					  int pre);
/* Filters with equal keys find dates identically (same datepattern lines and
 * time zone); the string is owned by the filter. */
const char *filter_date_key(const struct filter *f);

const struct filter_stats *filter_get_stats(const struct filter *f);
const struct filter_def *filter_get_def(const struct filter *f);
/* The failregex as compiled (after tag expansion), for messages. */
const char *filter_regex_text(const struct filter *f, size_t idx);
size_t filter_nregex(const struct filter *f);
size_t filter_nignoreregex(const struct filter *f);
const char *filter_ignoreregex_text(const struct filter *f, size_t idx);
/* 1 when the filter's logtype is journal (lines carry their time from outside). */
int filter_is_journal(const struct filter *f);
/* The filter's date detector (for template hit statistics). */
struct datedetect *filter_datedetect(const struct filter *f);

void filter_result_reset(struct filter_result *r);
void filter_result_free(struct filter_result *r);

#endif
