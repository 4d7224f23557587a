/*
 * datedetect - finds and parses the timestamp in a log line, as fail2ban does.
 *
 * A detector is built from a filter's `datepattern` lines, or from the default
 * template set when there are none. It is stateful on purpose (like fail2ban's):
 * templates that hit move forward so the next line is found with one try.
 * Times are epoch seconds with fraction. Zone-less dates are interpreted in
 * clk->tz (logtimezone) or the process's local time (TZ honoured).
 */
#ifndef MXJAIL_FILTERS_DATEDETECT_H
#define MXJAIL_FILTERS_DATEDETECT_H

#include <stddef.h>

struct diag;
struct datedetect;

struct date_clock {
	double now;       /* "current" time: year-less dates, {NONE}; tests fix it */
	int has_tz;       /* 1: zone-less dates are at UTC + tz_offset */
	long tz_offset;   /* seconds east of UTC */
};

/* patterns: the datepattern lines (special words {^LN-BEG}, {DEFAULT}, {DATE},
 * {UNB}, {NONE}, EPOCH, LEPOCH, TAI64N, strptime-style %-patterns with %Ex*
 * extensions, or plain regex); n == 0 gives the default templates. file is
 * used in diagnostics only. Returns NULL and adds to d on a bad pattern. */
struct datedetect *datedetect_new(const char *const *patterns, size_t n, const char *file,
				  struct diag *d);
void datedetect_free(struct datedetect *dd);

/* Returns 1 and fills *t and the byte span [*mstart, *mend) of the date text
 * (group 1 of the template, the part fail2ban cuts out of the line) when a
 * date was found; 0 when none. When the date text is empty (as with {NONE},
 * whose span is empty at 0) *t is clk->now: fail2ban then uses the last date
 * it saw, if recent, or now. Returns -1 with the span set when a date text was
 * found but is not a valid date (Feb 30, hour 25, unknown zone name): fail2ban
 * still cuts that text out of the line but treats the line as dateless.
 * Keeps per-detector state (template order, cached local-time offsets): TZ must
 * not change while a detector is in use. */
int datedetect_find(struct datedetect *dd, const char *line, size_t len,
		    const struct date_clock *clk, double *t, size_t *mstart, size_t *mend);

/* The same, for a caller that already knows whether the line is pure ASCII
 * (ascii = 1 promises every byte is < 0x80): faster matching then. */
int datedetect_find_ascii(struct datedetect *dd, const char *line, size_t len, int ascii,
			  const struct date_clock *clk, double *t, size_t *mstart, size_t *mend);

/* A memo of template searches on one line, for a caller that gives the same
 * line to several detectors (filters with different date settings): detectors
 * built from the same template text compile the same regex, and a search of
 * the same regex on the same line from the same place gives the same match, so
 * the second detector takes the first one's result instead of searching again.
 * Each detector still walks its own templates in its own order and keeps its
 * own hit statistics; only the regex run, and the time made of a match, are
 * shared. Searches with more groups
 * than the memo holds are not kept. The caller owns the memo (on the stack is
 * fine; no allocation) and calls datedetect_memo_reset() before each line:
 * entries refer to the line's bytes and to the detectors' templates. The
 * fields are private to datedetect.c. */
#define DATEDETECT_MEMO_SLOTS 6
#define DATEDETECT_MEMO_PAIRS 16
struct datedetect_memo {
	unsigned n;
	struct datedetect_memo_entry {
		const char *regex;     /* the template's regex text (compared, not owned) */
		unsigned long long hash;
		size_t rlen;
		const char *line;
		size_t len, bpos, bend;
		int variant;           /* 1: the byte-mode (ASCII) compilation */
		int rc;                /* 1 match, 0 none, -1 none by a match limit */
		unsigned pairs;
		size_t ov[2 * DATEDETECT_MEMO_PAIRS];
		/* the time a strptime-style template made of the match, under this clock */
		int has_time;
		double now;
		int has_tz;
		long tz_offset;
		double t;
	} e[DATEDETECT_MEMO_SLOTS];
};

static inline void datedetect_memo_reset(struct datedetect_memo *m)
{
	m->n = 0;
}

/* datedetect_find_ascii() sharing template searches through memo (may be NULL). */
int datedetect_find_memo(struct datedetect *dd, const char *line, size_t len, int ascii,
			 struct datedetect_memo *memo, const struct date_clock *clk, double *t,
			 size_t *mstart, size_t *mend);

/* True when the detector was built with {NONE} (lines carry no date). */
int datedetect_is_none(const struct datedetect *dd);

/* Parses a logtimezone value ("UTC", "UTC+0200", "+02:00", "-0530", "GMT"...).
 * Returns 0 and sets *offset (seconds east of UTC), or -1 when invalid. */
int datedetect_parse_tz(const char *s, long *offset);

/* The detector's templates in current order: name (fail2ban's, e.g.
 * "{^LN-BEG}MON Day %k:Minute:Second"), times it won (*hits) and its regex in
 * fail2ban's Python syntax (*regex, may be NULL). NULL when i is out of range.
 * Valid until the next datedetect_find() or datedetect_free(). */
size_t datedetect_ntemplates(const struct datedetect *dd);
const char *datedetect_template(const struct datedetect *dd, size_t i, unsigned long *hits,
				const char **regex);

/* Searches that hit the PCRE2 match/depth limits (each counted as no match). */
unsigned long datedetect_limit_hits(const struct datedetect *dd);

#endif
