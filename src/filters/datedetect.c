/*
 * datedetect - finds and parses the timestamp in a log line exactly as
 * fail2ban 1.0.2's DateDetector does. See datedetect.h for the interface.
 *
 * A detector is an ordered list of templates. Each template is a regex built
 * the way fail2ban builds it (strptime-style %-tokens, {^LN-BEG}, {UNB},
 * word-boundary wrappers, EPOCH, LEPOCH, TAI64N); the same regex rewriting
 * rules (flag hoisting, "**" boundary markers, implicit group 1) are applied
 * with the same regexes, here run by PCRE2, so odd user patterns come out as
 * they do in fail2ban. Group 1 of a template is the date text that is cut out
 * of the line.
 *
 * The search order is fail2ban's: the template that matched the previous line
 * is tried first, restricted to the same character span when the characters
 * around it agree; otherwise every template is tried in list order, a match
 * further into the line than before is kept only as a fallback, and the
 * winner bubbles forward by hits/distance weight. Positions are counted in
 * characters, not bytes, because fail2ban works on decoded text and the span
 * of the last match is reused on the next line.
 *
 * All regexes are compiled when the detector is built, with UTF+UCP so that
 * \d, \w and \b mean what they mean in Python 3 (bad patterns are reported
 * then); the JIT code and the byte-mode variant for ASCII lines are made when
 * a template is first tried, since most templates never are and JIT code
 * takes whole pages. Every match runs under match limits. Apart from that
 * first try, finding a date allocates nothing.
 *
 * Callers that give one line to several detectors can pass a memo
 * (datedetect_find_memo) through which detectors share the runs of regexes
 * they have in common (the default templates, mostly).
 *
 * SECURITY: lines are untrusted. PCRE2 with MATCH_INVALID_UTF accepts any
 * bytes; limit hits count as "no match" and are counted.
 */
#include "filters/datedetect.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/diag.h"
#include "core/hash.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "filters/strptime.h"

/* Template flags, as fail2ban names them. */
enum { WORD_END = 1, WORD_BEGIN = 2, LINE_END = 4, LINE_BEGIN = 8 };
/* wordBegin argument: fail2ban passes False, True or 'start'. */
enum { WB_NO = 0, WB_YES = 1, WB_START = 2 };
enum kind { K_PATTERN, K_EPOCH, K_TAI64N };

#define MATCH_LIMIT 200000
#define DEPTH_LIMIT 10000
#define UNUSED_TIME 300.0
#define FAR 0x7fffffffL

struct field_map {
	uint32_t group;
	int key;
};

struct tmpl {
	char *name;
	char *pattern;        /* DatePatternRegex: pattern as given; else NULL */
	char *regex;          /* regex as fail2ban builds it (Python syntax) */
	enum kind kind;
	int longfrm;
	uint32_t grpidx;      /* epoch: group holding the number */
	unsigned flags;
	double weight;
	pcre2_code *code;
	int jitted;           /* code made (on first need: NULL until then) */
	pcre2_code *acode;    /* byte-mode variant for pure-ASCII lines (or NULL) */
	int ajit;
	int astate;           /* acode: 0 not built yet, 1 built, -1 none (non-ASCII regex) */
	uint32_t ncap;        /* capture groups */
	uint64_t rhash;       /* of regex: the memo's key (with the text itself) */
	size_t rlen;          /* strlen(regex) */
	struct field_map *fields;
	size_t nfields;
	/* Per-detector statistics, as DateTemplate.hits and DateDetectorTemplate. */
	unsigned long thits;  /* successful searches (any reason) */
	unsigned long hits;   /* times this template won */
	double last_used;
	long distance;
};

/* One decoded character as fail2ban keeps it for the boundary checks: its
 * UTF-8 bytes (up to four) in the value's first bytes, its length above them;
 * 0 is the empty string. A plain integer so that making and comparing one
 * stays in registers: as a 5-byte struct it went through the stack, where
 * each narrow store stalled the wider load after it (a fifth of the date
 * search's time). */
typedef uint64_t dchar;

static inline dchar dchar_make(const char *p, size_t n)
{
	uint64_t v = 0;
	memcpy(&v, p, n);
	return v | (uint64_t)n << 32;
}

static inline dchar dchar_byte(char c)
{
	return (uint64_t)(unsigned char)c | (uint64_t)1 << 32;
}

static inline size_t dchar_len(dchar c)
{
	return (size_t)(c >> 32);
}

struct datedetect {
	struct tmpl **t;
	size_t n, cap;
	int is_none;
	/* matchTime state */
	size_t first_unused;
	size_t last_idx;      /* SIZE_MAX: none yet */
	long last_pos;        /* char index of the last match start */
	dchar last_pos_prev, last_pos_first;
	long last_end;        /* char index of the last match end */
	dchar last_end_last, last_end_next;
	/* matching */
	pcre2_match_data *md;
	uint32_t ovpairs;
	PCRE2_SIZE *found_ov; /* copy of a fallback match */
	pcre2_match_context *mctx;
	pcre2_jit_stack *jstack;
	int jstack_made;      /* made on the first search */
	pcre2_code *alnum;    /* non-ASCII str.isalnum(), made on first need */
	int alnum_made;
	pcre2_match_data *md1;
	unsigned long limit_hits;
	int ascii;            /* the line being searched is pure ASCII */
	struct datedetect_memo *memo; /* the caller's, during one find (or NULL) */
	struct datedetect_memo_entry *last_me; /* memo entry of the last search */
	struct datedetect_memo_entry *win_me;  /* and of the winning one */
	struct strptime_field *fbuf;
	size_t fcap;
	struct strptime_tzcache tzc;
	/* Last conversion: consecutive log lines mostly carry the same date text,
	 * and turning text into a time costs more than finding it. */
	struct {
		const struct tmpl *tm;
		char text[64];
		size_t len;
		double now;
		int has_tz;
		long tz_offset;
		int rc;
		double t;
		/* Where each field lay in text (nf == 0: not recorded) and the place
		 * of a two-digit seconds field (-1: none): a text that differs only
		 * there is the cached time plus the difference in seconds. */
		int nf;
		short foff[32], flen[32];
		int s_off;
	} cache;
};

/* ---------------------------------------------------------------------------
 * Template construction (runs once per detector, may allocate freely)
 */

/* fail2ban's regexes that rewrite date regexes, in PCRE2 syntax (unchanged). */
enum {
	M_GROUPED, M_GROUP, M_GLOBALFLAGS, M_EXLINE_NO_BOUNDS, M_EXLINE_BOUND_BEG,
	M_EXSANC_BOUND_BEG, M_EXEANC_BOUND_BEG, M_NO_WRD_BOUND_BEG, M_NO_WRD_BOUND_END,
	M_DEL_WRD_BOUNDS, M_LINE_BOUND_BEG, M_LINE_BOUND_END, M_EPOCH_PATTERN, M_DATE_PREMATCH,
	M_COUNT
};

static const struct {
	const char *re;
	uint32_t opts;
} meta_src[M_COUNT] = {
	[M_GROUPED] = {"(?<!(?:\\(\\?))(?<!\\\\)\\((?!\\?)", 0},
	[M_GROUP] = {"^((?:\\(\\?\\w+\\))?\\^?(?:\\(\\?\\w+\\))?)(.*?)(\\$?)$", 0},
	[M_GLOBALFLAGS] = {"((?:^|(?!<\\\\))\\(\\?[a-z]+\\))", 0},
	[M_EXLINE_NO_BOUNDS] = {"^\\{UNB\\}", 0},
	[M_EXLINE_BOUND_BEG] = {"^\\{\\^LN-BEG\\}", 0},
	[M_EXSANC_BOUND_BEG] = {"^\\((?:\\?:)?\\^\\|\\\\b\\|\\\\W\\)", 0},
	[M_EXEANC_BOUND_BEG] = {"\\(\\?=\\\\b\\|\\\\W\\|\\$\\)$", 0},
	[M_NO_WRD_BOUND_BEG] = {"^\\(*(?:\\(\\?\\w+\\))?(?:\\^|\\(*\\*\\*|\\((?:\\?:)?\\^)", 0},
	[M_NO_WRD_BOUND_END] = {"(?<!\\\\)(?:\\$\\)?|\\\\b|\\\\s|\\*\\*\\)*)$", 0},
	[M_DEL_WRD_BOUNDS] = {"^\\(*(?:\\(\\?\\w+\\))?\\(*\\*\\*|(?<!\\\\)\\*\\*\\)*$", 0},
	[M_LINE_BOUND_BEG] = {"^(?:\\(\\?\\w+\\))?(?:\\^|\\((?:\\?:)?\\^(?!\\|))", 0},
	[M_LINE_BOUND_END] = {"(?<![\\\\\\|])(?:\\$\\)?)$", 0},
	[M_EPOCH_PATTERN] = {"(?<!\\\\)\\{L?EPOCH\\}", PCRE2_CASELESS},
	[M_DATE_PREMATCH] = {"(?<!\\\\)\\{DATE\\}", PCRE2_CASELESS},
};

static const char *const default_patterns[] = {
	"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\\s*%z)?",
	"(?:%a )?%b %d %k:%M:%S(?:\\.%f)?(?: %ExY)?",
	"(?:%a )?%b %d %ExY %k:%M:%S(?:\\.%f)?",
	"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
	"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\\.%f)?(?: %z)?",
	"%m/%d/%ExY:%H:%M:%S",
	"%m-%d-%ExY %k:%M:%S(?:\\.%f)?",
	"EPOCH",
	"{^LN-BEG}%H:%M:%S",
	"^<%m/%d/%Exy@%H:%M:%S>",
	"%Exy%Exm%Exd  ?%H:%M:%S",
	"%b %d, %ExY %I:%M:%S %p",
	"^%b-%d-%Exy %k:%M:%S",
	"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\\s*%z)?",
	"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\\.%f)?(?: %ExY)?",
	"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\\.%f)?(?: %ExY)?",
	"TAI64N",
};
#define NDEFAULT (sizeof(default_patterns) / sizeof(default_patterns[0]))

#define EPOCH_RE "\\d{10,11}\\b(?:\\.\\d{3,6})?"
#define LEPOCH_RE "\\d{10,11}(?:\\d{3}(?:\\.\\d{1,6}|\\d{3})?)?"

struct build {
	pcre2_code *meta[M_COUNT];
	pcre2_match_data *md;
	char exy[256];
	const char *file;
	struct diag *d;
	int failed;
	/* fail2ban's default templates, built on first need: [0, ndef_all) is the
	 * cached order (line-begin copies first), def17 the plain defaults. */
	struct tmpl *def_all[2 * NDEFAULT];
	size_t ndef_all;
	struct tmpl *def17[NDEFAULT];
	int have_defaults;
};

static struct tmpl *tmpl_free(struct tmpl *t)
{
	if (!t)
		return NULL;
	free(t->name);
	free(t->pattern);
	free(t->regex);
	free(t->fields);
	pcre2_code_free(t->code);
	pcre2_code_free(t->acode);
	free(t);
	return NULL;
}

static int meta_search(struct build *b, int which, const char *s, size_t len, size_t start)
{
	int rc = pcre2_match(b->meta[which], (PCRE2_SPTR)s, len, start, 0, b->md, NULL);
	return rc > 0;
}

static PCRE2_SIZE *meta_ov(struct build *b)
{
	return pcre2_get_ovector_pointer(b->md);
}

/* Python's pattern.sub(repl, s, count): repl is a fixed string or, with
 * del_stars, the match without its "**". */
static char *meta_sub(struct build *b, int which, const char *s, const char *repl, int count,
		      int del_stars)
{
	struct strbuf out = STRBUF_INIT;
	size_t len = strlen(s), pos = 0, last = 0;
	int done = 0;
	while (pos <= len && (!count || done < count) && meta_search(b, which, s, len, pos)) {
		PCRE2_SIZE *ov = meta_ov(b);
		strbuf_add(&out, s + last, ov[0] - last);
		if (del_stars) {
			for (size_t i = ov[0]; i < ov[1]; i++)
				if (!(s[i] == '*' && i + 1 < ov[1] && s[i + 1] == '*'))
					strbuf_addc(&out, s[i]);
				else
					i++;
		} else {
			strbuf_adds(&out, repl);
		}
		last = ov[1];
		pos = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
		done++;
	}
	if (last < len)
		strbuf_add(&out, s + last, len - last);
	return strbuf_detach(&out);
}

static int is_pyspace(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static char *pystrip(const char *s)
{
	size_t len = strlen(s);
	while (len && is_pyspace((unsigned char)s[len - 1]))
		len--;
	while (len && is_pyspace((unsigned char)*s)) {
		s++;
		len--;
	}
	return xstrndup(s, len);
}

static int starts_with(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static void set_name(struct tmpl *t, char *name)
{
	free(t->name);
	t->name = name;
}

/* DateTemplate.setRegex: boundaries, implicit group 1, flags. Takes regex. */
static void base_set_regex(struct build *b, struct tmpl *t, char *regex_in, int word_begin,
			   int word_end)
{
	char *regex = pystrip(regex_in);
	free(regex_in);
	char *gf = NULL;
	if (meta_search(b, M_GLOBALFLAGS, regex, strlen(regex), 0)) {
		PCRE2_SIZE *ov = meta_ov(b);
		gf = xstrndup(regex + ov[2], ov[3] - ov[2]);
		char *r = meta_sub(b, M_GLOBALFLAGS, regex, "", 1, 0);
		free(regex);
		regex = r;
	}
	int bound_begin = word_begin && !meta_search(b, M_NO_WRD_BOUND_BEG, regex, strlen(regex), 0);
	int bound_end = word_end && !meta_search(b, M_NO_WRD_BOUND_END, regex, strlen(regex), 0);
	if (!meta_search(b, M_GROUPED, regex, strlen(regex), 0) &&
	    meta_search(b, M_GROUP, regex, strlen(regex), 0)) {
		PCRE2_SIZE *ov = meta_ov(b);
		char *r = xasprintf("%.*s(%.*s)%.*s%s", (int)(ov[3] - ov[2]), regex + ov[2],
				    (int)(ov[5] - ov[4]), regex + ov[4], (int)(ov[7] - ov[6]),
				    regex + ov[6], regex + ov[1]);
		free(regex);
		regex = r;
	}
	t->flags = 0;
	if (bound_begin) {
		char *r;
		if (word_begin != WB_START) {
			t->flags |= WORD_BEGIN;
			r = xasprintf("(?=^|\\b|\\W)%s", regex);
		} else {
			t->flags |= LINE_BEGIN;
			r = xasprintf("^(?:\\W{0,2})?%s", regex);
			if (!starts_with(t->name, "{^LN-BEG}"))
				set_name(t, xasprintf("{^LN-BEG}%s", t->name));
		}
		free(regex);
		regex = r;
	}
	if (bound_end) {
		t->flags |= WORD_END;
		char *r = xasprintf("%s(?=\\b|\\W|$)", regex);
		free(regex);
		regex = r;
	}
	if (!(t->flags & LINE_BEGIN) && meta_search(b, M_LINE_BOUND_BEG, regex, strlen(regex), 0))
		t->flags |= LINE_BEGIN;
	if (!(t->flags & LINE_END) && meta_search(b, M_LINE_BOUND_END, regex, strlen(regex), 0))
		t->flags |= LINE_END;
	char *r = meta_sub(b, M_DEL_WRD_BOUNDS, regex, NULL, 0, 1);
	free(regex);
	regex = r;
	if (gf) {
		r = xasprintf("%s%s", gf, regex);
		free(regex);
		free(gf);
		regex = r;
	}
	free(t->regex);
	t->regex = regex;
}

static struct tmpl *tmpl_new(void)
{
	struct tmpl *t = xcalloc(1, sizeof(*t));
	t->weight = 1.0;
	t->distance = FAR;
	t->name = xstrdup("");
	return t;
}

/* DatePatternRegex(pattern). */
static struct tmpl *pattern_template(struct build *b, const char *pattern, char *err,
				     size_t errlen)
{
	struct tmpl *t = tmpl_new();
	t->kind = K_PATTERN;
	t->pattern = xstrdup(pattern);
	int wb = WB_YES, we = 1;
	char *pat = xstrdup(pattern);
	if (meta_search(b, M_EXLINE_NO_BOUNDS, pat, strlen(pat), 0)) {
		char *r = meta_sub(b, M_EXLINE_NO_BOUNDS, pat, "", 0, 0);
		free(pat);
		pat = r;
		wb = WB_NO;
		we = 0;
	}
	if (wb && meta_search(b, M_EXLINE_BOUND_BEG, pat, strlen(pat), 0)) {
		char *r = meta_sub(b, M_EXLINE_BOUND_BEG, pat, "", 0, 0);
		free(pat);
		pat = r;
		wb = WB_START;
	}
	struct strbuf re = STRBUF_INIT, name = STRBUF_INIT;
	int alpha;
	if (strptime_translate(pat, b->exy, &re, &name, &alpha, err, errlen) < 0) {
		free(pat);
		strbuf_free(&re);
		strbuf_free(&name);
		return tmpl_free(t);
	}
	free(pat);
	set_name(t, strbuf_detach(&name));
	char *regex = strbuf_detach(&re);
	if (alpha) {
		char *r = xasprintf("(?iu)%s", regex);
		free(regex);
		regex = r;
	}
	base_set_regex(b, t, regex, wb, we);
	return t;
}

/* DateEpoch(lineBeginOnly, pattern, longFrm). */
static struct tmpl *epoch_template(struct build *b, int line_begin_only, const char *pattern,
				   int longfrm)
{
	struct tmpl *t = tmpl_new();
	t->kind = K_EPOCH;
	t->longfrm = longfrm;
	t->grpidx = 1;
	const char *ere = longfrm ? LEPOCH_RE : EPOCH_RE;
	set_name(t, xstrdup(pattern ? pattern : longfrm ? "LongEpoch" : "Epoch"));
	if (pattern) {
		char *repl = xasprintf("(%s)", ere);
		char *sub = meta_sub(b, M_EPOCH_PATTERN, pattern, repl, 0, 0);
		free(repl);
		t->grpidx = 2;
		base_set_regex(b, t, xasprintf("(%s)", sub), WB_YES, 1);
		free(sub);
	} else if (!line_begin_only) {
		base_set_regex(b, t,
			       xasprintf("((?:^|(?P<square>(?<=^\\[))|(?P<selinux>(?<=\\baudit\\()))%s)"
					 "(?:(?(selinux)(?=:\\d+\\)))|(?(square)(?=\\])))", ere),
			       WB_NO, 1);
	} else {
		base_set_regex(b, t, xasprintf("((?P<square>(?<=^\\[))?%s)(?(square)(?=\\]))", ere),
			       WB_START, 1);
	}
	return t;
}

static struct tmpl *tai64n_template(struct build *b, int word_begin)
{
	struct tmpl *t = tmpl_new();
	t->kind = K_TAI64N;
	set_name(t, xstrdup("TAI64N"));
	base_set_regex(b, t, xstrdup("@[0-9a-f]{24}"), word_begin, 1);
	return t;
}

/* fail2ban's cache key: the pattern, upper-cased when it has no %-token. */
static char *pattern_key(const char *p)
{
	char *k = xstrdup(p);
	if (!strchr(p, '%'))
		for (char *c = k; *c; c++)
			*c = (char)toupper((unsigned char)*c);
	return k;
}

static int key_in(const char *key, const char *a, const char *b2, const char *c)
{
	return !strcmp(key, a) || !strcmp(key, b2) || !strcmp(key, c);
}

/* _getPatternTemplate(pattern, key). */
static struct tmpl *get_pattern_template(struct build *b, const char *pattern, const char *key,
					 char *err, size_t errlen)
{
	if (strstr(key, "EPOCH")) {
		if (meta_search(b, M_EPOCH_PATTERN, pattern, strlen(pattern), 0))
			return epoch_template(b, 0, pattern, strstr(key, "LEPOCH") != NULL);
		if (key_in(key, "EPOCH", "{^LN-BEG}EPOCH", "^EPOCH"))
			return epoch_template(b, strcmp(key, "EPOCH") != 0, NULL, 0);
		if (key_in(key, "LEPOCH", "{^LN-BEG}LEPOCH", "^LEPOCH"))
			return epoch_template(b, strcmp(key, "LEPOCH") != 0, NULL, 1);
	}
	if (key_in(key, "TAI64N", "{^LN-BEG}TAI64N", "^TAI64N"))
		return tai64n_template(b, strcmp(key, "TAI64N") ? WB_START : WB_NO);
	return pattern_template(b, pattern, err, errlen);
}

static struct tmpl *get_pattern_template_k(struct build *b, const char *pattern, char *err,
					   size_t errlen)
{
	char *key = pattern_key(pattern);
	struct tmpl *t = get_pattern_template(b, pattern, key, err, errlen);
	free(key);
	return t;
}

/* DateTemplate.unboundPattern. */
static char *unbound_pattern(struct build *b, const char *s)
{
	char *a = meta_sub(b, M_EXLINE_NO_BOUNDS, s, "", 0, 0);
	char *c = meta_sub(b, M_EXLINE_BOUND_BEG, a, "", 0, 0);
	free(a);
	a = meta_sub(b, M_EXSANC_BOUND_BEG, c, "", 0, 0);
	free(c);
	c = meta_sub(b, M_EXEANC_BOUND_BEG, a, "", 0, 0);
	free(a);
	return c;
}

/* _getAnchoredTemplate: a copy of t whose pattern (or, for epoch/TAI64N, name)
 * is wrapped: with prematch == NULL in "{^LN-BEG}", else into the {DATE} slot. */
static struct tmpl *anchored_template(struct build *b, const struct tmpl *t, const char *prematch,
				      char *err, size_t errlen)
{
	const char *src = t->kind == K_PATTERN ? t->pattern : t->name;
	char *w;
	if (!prematch) {
		w = xasprintf("{^LN-BEG}%s", src);
	} else {
		char *ub = unbound_pattern(b, src);
		w = meta_sub(b, M_DATE_PREMATCH, prematch, ub, 0, 0);
		free(ub);
	}
	struct tmpl *t2 = get_pattern_template_k(b, w, err, errlen);
	free(w);
	return t2;
}

static int build_defaults(struct build *b)
{
	if (b->have_defaults)
		return 0;
	char err[256];
	struct tmpl *anch[NDEFAULT];
	size_t na = 0;
	for (size_t i = 0; i < NDEFAULT; i++) {
		struct tmpl *t = get_pattern_template_k(b, default_patterns[i], err, sizeof(err));
		if (!t)
			return -1;
		b->def17[i] = t;
		if (!starts_with(t->name, "{^LN-BEG}") && !starts_with(t->name, "^")) {
			struct tmpl *t2 = anchored_template(b, t, NULL, err, sizeof(err));
			if (!t2)
				return -1;
			if (strcmp(t2->name, t->name)) {
				t2->weight = 100.0;
				anch[na++] = t2;
			} else {
				tmpl_free(t2);
			}
		}
	}
	for (size_t i = 0; i < na; i++)
		b->def_all[b->ndef_all++] = anch[i];
	for (size_t i = 0; i < NDEFAULT; i++)
		b->def_all[b->ndef_all++] = b->def17[i];
	b->have_defaults = 1;
	return 0;
}

/* Python-only regex syntax that PCRE2 reads differently: \Z and {,n}. */
static char *to_pcre2(const char *re, uint32_t *opts, char *err, size_t errlen)
{
	struct strbuf o = STRBUF_INIT;
	const char *p = re;
	/* Leading global flags, hoisted there by base_set_regex. Python allows
	 * several groups there and refuses one anywhere else. */
	while (p[0] == '(' && p[1] == '?' && strchr("aiLmsux", p[2]) && p[2]) {
		const char *q = p + 2;
		uint32_t f = 0;
		while (*q && strchr("aiLmsux", *q)) {
			switch (*q) {
			case 'i': f |= PCRE2_CASELESS; break;
			case 'm': f |= PCRE2_MULTILINE; break;
			case 's': f |= PCRE2_DOTALL; break;
			case 'x': f |= PCRE2_EXTENDED; break;
			case 'a': *opts &= ~(uint32_t)PCRE2_UCP; break;
			case 'L':
				snprintf(err, errlen, "inline flag L is for byte patterns only");
				strbuf_free(&o);
				return NULL;
			default: break;
			}
			q++;
		}
		if (*q != ')')
			break;
		*opts |= f;
		p = q + 1;
	}
	int in_class = 0;
	for (; *p; p++) {
		if (*p == '\\' && p[1]) {
			if (p[1] == 'Z' && !in_class) {
				strbuf_adds(&o, "\\z");
			} else {
				strbuf_add(&o, p, 2);
			}
			p++;
			continue;
		}
		if (in_class) {
			if (*p == ']' && in_class > 1)
				in_class = 0;
			else
				in_class++;
			strbuf_addc(&o, *p);
			continue;
		}
		if (*p == '[') {
			in_class = 1;
			if (p[1] == '^') {
				strbuf_addc(&o, *p++);
			}
			strbuf_addc(&o, *p);
			continue;
		}
		if (*p == '(' && p[1] == '?' && p[2] && strchr("aiLmsux", p[2])) {
			const char *q = p + 2;
			while (*q && strchr("aiLmsux", *q))
				q++;
			if (*q == ')') {
				snprintf(err, errlen, "global flags not at the start of the expression");
				strbuf_free(&o);
				return NULL;
			}
			if (*q == ':' || *q == '-') {
				/* Scoped flags: PCRE2 has no 'u' (always on here) nor 'a'. */
				strbuf_adds(&o, "(?");
				for (const char *r = p + 2; r < q; r++)
					if (*r != 'u' && *r != 'a')
						strbuf_addc(&o, *r);
				p = q - 1;
				continue;
			}
		}
		if (*p == '{' && p[1] == ',') {
			const char *q = p + 2;
			while (*q >= '0' && *q <= '9')
				q++;
			if (*q == '}' && q > p + 2) {
				strbuf_adds(&o, "{0");
				continue;
			}
		}
		strbuf_addc(&o, *p);
	}
	return strbuf_detach(&o);
}

static int cmp_field(const void *a, const void *b)
{
	const struct field_map *x = a, *y = b;
	return x->group < y->group ? -1 : x->group > y->group;
}

/* Compiles a template's regex: in UTF mode (byte_mode 0), or in byte mode
 * without Unicode classes for pure-ASCII lines (*ascii_re then says whether
 * the PCRE2 text is ASCII at all: byte mode is only right for such patterns). */
static pcre2_code *re_compile(const char *regex, int byte_mode, int *ascii_re, char *err,
			      size_t errlen)
{
	uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
	char *re = to_pcre2(regex, &opts, err, errlen);
	if (!re)
		return NULL;
	const unsigned char *q = (const unsigned char *)re;
	while (*q && *q < 0x80)
		q++;
	if (ascii_re)
		*ascii_re = !*q;
	if (byte_mode)
		opts &= ~(uint32_t)(PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF);
	pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
	pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, opts, &ec, &eo, cc);
	pcre2_compile_context_free(cc);
	free(re);
	if (!code) {
		char msg[160];
		pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof(msg));
		snprintf(err, errlen, "%s at offset %zu", msg, (size_t)eo);
	}
	return code;
}

/* Checks that the regex compiles and takes what matching needs from it (groups,
 * named fields). The compiled code itself is dropped: it is made again, with
 * its JIT code, when a line first tries the template (tmpl_ascii(),
 * tmpl_utf()), as most templates of a detector never are. Log lines are
 * nearly always ASCII, where byte mode without Unicode classes gives the same
 * matches faster; the UTF code is then never needed. */
static int tmpl_compile(struct tmpl *t, char *err, size_t errlen)
{
	int ascii_re = 0;
	pcre2_code *code = re_compile(t->regex, 0, &ascii_re, err, errlen);
	if (!code)
		return -1;
	t->astate = ascii_re ? 0 : -1;
	uint32_t count, esize;
	PCRE2_SPTR table;
	pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &t->ncap);
	t->rhash = hash_str(HASH_SEED, t->regex);
	t->rlen = strlen(t->regex);
	pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, &count);
	pcre2_pattern_info(code, PCRE2_INFO_NAMEENTRYSIZE, &esize);
	pcre2_pattern_info(code, PCRE2_INFO_NAMETABLE, &table);
	t->fields = xcalloc(count ? count : 1, sizeof(*t->fields));
	for (uint32_t i = 0; i < count; i++) {
		const unsigned char *e = table + i * esize;
		int key = strptime_key((const char *)e + 2);
		if (key == STRP_NONE)
			continue;
		t->fields[t->nfields].group = ((uint32_t)e[0] << 8) | e[1];
		t->fields[t->nfields].key = key;
		t->nfields++;
	}
	qsort(t->fields, t->nfields, sizeof(*t->fields), cmp_field);
	pcre2_code_free(code);
	return 0;
}

/* The byte-mode variant, on first need (NULL: none, use the UTF code). */
static pcre2_code *tmpl_ascii(struct tmpl *t)
{
	if (t->astate)
		return t->acode;
	char err[200];
	t->acode = re_compile(t->regex, 1, NULL, err, sizeof err);
	t->astate = -1;
	if (t->acode) {
		t->ajit = pcre2_jit_compile(t->acode, PCRE2_JIT_COMPLETE) == 0;
		t->astate = 1;
	}
	return t->acode;
}

/* The UTF code, on first need (it compiled when the detector was built, so
 * NULL only when memory ran out in PCRE2). */
static pcre2_code *tmpl_utf(struct tmpl *t)
{
	if (!t->code && !t->jitted) {
		char err[200];
		t->code = re_compile(t->regex, 0, NULL, err, sizeof err);
		if (t->code)
			pcre2_jit_compile(t->code, PCRE2_JIT_COMPLETE);
		t->jitted = 1;
	}
	return t->code;
}

/* ---------------------------------------------------------------------------
 * Detector assembly
 */

static int dd_has_name(const struct datedetect *dd, const char *name)
{
	for (size_t i = 0; i < dd->n; i++)
		if (!strcmp(dd->t[i]->name, name))
			return 1;
	return 0;
}

/* _appendTemplate: takes t. Returns -1 on a duplicate that is an error. */
static int dd_append(struct datedetect *dd, struct build *b, struct tmpl *t, int ignore_dup)
{
	if (dd_has_name(dd, t->name)) {
		if (!ignore_dup) {
			diag_error(b->d, b->file, 0, "datepattern: there is already a template named %s",
				   t->name);
			b->failed = 1;
		}
		tmpl_free(t);
		return ignore_dup ? 0 : -1;
	}
	char err[256];
	if (tmpl_compile(t, err, sizeof(err)) < 0) {
		diag_error(b->d, b->file, 0, "datepattern %s: %s", t->pattern ? t->pattern : t->name,
			   err);
		b->failed = 1;
		tmpl_free(t);
		return -1;
	}
	dd->t = xgrow(dd->t, &dd->cap, dd->n, sizeof(*dd->t));
	dd->t[dd->n++] = t;
	return 0;
}

/* addDefaultTemplate(filter, preMatch, allDefaults). */
static int dd_add_defaults(struct datedetect *dd, struct build *b, int line_begin_only,
			   const char *prematch)
{
	if (build_defaults(b) < 0) {
		diag_error(b->d, b->file, 0, "datepattern: cannot build the default templates");
		b->failed = 1;
		return -1;
	}
	int ignore_dup = dd->n > 0;
	if (prematch) {
		for (size_t i = 0; i < NDEFAULT; i++) {
			char err[256];
			struct tmpl *t = anchored_template(b, b->def17[i], prematch, err, sizeof(err));
			if (!t) {
				diag_error(b->d, b->file, 0, "datepattern %s: %s", prematch, err);
				b->failed = 1;
				return -1;
			}
			if (dd_append(dd, b, t, ignore_dup) < 0)
				return -1;
		}
		return 0;
	}
	for (size_t i = 0; i < b->ndef_all; i++) {
		struct tmpl *src = b->def_all[i];
		if (line_begin_only && !(src->flags & LINE_BEGIN))
			continue;
		if (dd_has_name(dd, src->name)) {
			if (!ignore_dup) {
				diag_error(b->d, b->file, 0,
					   "datepattern: there is already a template named %s", src->name);
				b->failed = 1;
				return -1;
			}
			continue;
		}
		/* The built defaults are owned by the build; the detector gets a copy. */
		struct tmpl *t = tmpl_new();
		set_name(t, xstrdup(src->name));
		t->pattern = src->pattern ? xstrdup(src->pattern) : NULL;
		t->regex = xstrdup(src->regex);
		t->kind = src->kind;
		t->longfrm = src->longfrm;
		t->grpidx = src->grpidx;
		t->flags = src->flags;
		t->weight = src->weight;
		if (dd_append(dd, b, t, ignore_dup) < 0)
			return -1;
	}
	return 0;
}

/* DateDetector.appendTemplate(str). */
static int dd_append_pattern(struct datedetect *dd, struct build *b, const char *pattern)
{
	char *key = pattern_key(pattern);
	int rc;
	char err[256] = "";
	if (!strcmp(key, "{^LN-BEG}") || !strcmp(key, "{DEFAULT}")) {
		rc = dd_add_defaults(dd, b, key[1] == '^', NULL);
	} else if (strstr(key, "{DATE}")) {
		rc = dd_add_defaults(dd, b, 0, pattern);
	} else {
		struct tmpl *t;
		if (!strcmp(key, "{NONE}")) {
			t = get_pattern_template(b, "{UNB}^", key, err, sizeof(err));
			dd->is_none = 1;
		} else {
			t = get_pattern_template(b, pattern, key, err, sizeof(err));
		}
		if (!t) {
			diag_error(b->d, b->file, 0, "datepattern %s: %s", pattern, err);
			b->failed = 1;
			rc = -1;
		} else {
			rc = dd_append(dd, b, t, 0);
		}
	}
	free(key);
	return rc;
}

struct datedetect *datedetect_new(const char *const *patterns, size_t n, const char *file,
				  struct diag *d)
{
	struct build b;
	memset(&b, 0, sizeof(b));
	b.file = file;
	b.d = d;
	for (int i = 0; i < M_COUNT; i++) {
		int ec;
		PCRE2_SIZE eo;
		b.meta[i] = pcre2_compile((PCRE2_SPTR)meta_src[i].re, PCRE2_ZERO_TERMINATED,
					  meta_src[i].opts, &ec, &eo, NULL);
	}
	b.md = pcre2_match_data_create(16, NULL);
	strptime_year_re((int64_t)time(NULL), b.exy, sizeof(b.exy));

	struct datedetect *dd = xcalloc(1, sizeof(*dd));
	dd->last_idx = SIZE_MAX;
	dd->last_pos = 1;
	dd->last_end = FAR;
	for (size_t i = 0; i < n && !b.failed; i++) {
		/* A value may hold several patterns, one per line, like fail2ban's. */
		const char *s = patterns[i] ? patterns[i] : "";
		while (*s && !b.failed) {
			const char *nl = strchr(s, '\n');
			size_t l = nl ? (size_t)(nl - s) : strlen(s);
			char *line = xstrndup(s, l);
			char *p = pystrip(line);
			free(line);
			if (*p)
				dd_append_pattern(dd, &b, p);
			free(p);
			s += l + (nl ? 1 : 0);
		}
	}
	if (!b.failed && dd->n == 0)
		dd_add_defaults(dd, &b, 0, NULL);

	for (size_t i = 0; i < b.ndef_all; i++)
		tmpl_free(b.def_all[i]);
	if (!b.have_defaults)
		for (size_t i = 0; i < NDEFAULT; i++)
			tmpl_free(b.def17[i]);
	for (int i = 0; i < M_COUNT; i++)
		pcre2_code_free(b.meta[i]);
	pcre2_match_data_free(b.md);
	if (b.failed) {
		datedetect_free(dd);
		return NULL;
	}

	uint32_t maxcap = 1;
	size_t maxf = 1;
	for (size_t i = 0; i < dd->n; i++) {
		uint32_t c = dd->t[i]->ncap;
		if (c > maxcap)
			maxcap = c;
		if (dd->t[i]->nfields > maxf)
			maxf = dd->t[i]->nfields;
	}
	dd->ovpairs = maxcap + 1;
	dd->md = pcre2_match_data_create(dd->ovpairs, NULL);
	dd->found_ov = xcalloc(2 * (size_t)dd->ovpairs, sizeof(PCRE2_SIZE));
	dd->fbuf = xcalloc(maxf, sizeof(*dd->fbuf));
	dd->fcap = maxf;
	dd->mctx = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(dd->mctx, MATCH_LIMIT);
	pcre2_set_depth_limit(dd->mctx, DEPTH_LIMIT);
	return dd;
}

void datedetect_free(struct datedetect *dd)
{
	if (!dd)
		return;
	for (size_t i = 0; i < dd->n; i++)
		tmpl_free(dd->t[i]);
	free(dd->t);
	pcre2_match_data_free(dd->md);
	free(dd->found_ov);
	free(dd->fbuf);
	pcre2_match_context_free(dd->mctx);
	if (dd->jstack)
		pcre2_jit_stack_free(dd->jstack);
	pcre2_code_free(dd->alnum);
	pcre2_match_data_free(dd->md1);
	free(dd);
}

int datedetect_is_none(const struct datedetect *dd)
{
	return dd && dd->is_none;
}

/* ---------------------------------------------------------------------------
 * Matching (per line: no allocation)
 */

static int is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/* Character index of byte offset b (a character boundary). On a pure-ASCII
 * line characters are bytes: no counting. */
static long char_index(const struct datedetect *dd, const char *line, size_t b)
{
	if (dd->ascii)
		return (long)b;
	long n = 0;
	for (size_t i = 0; i < b; i++)
		n += !is_cont((unsigned char)line[i]);
	return n;
}

/* Byte offset of character index ci, clamped to len; *beyond when ci is at or
 * past the end. */
static size_t byte_offset(const struct datedetect *dd, const char *line, size_t len, long ci,
			  int *beyond)
{
	if (dd->ascii) {
		size_t b = ci <= 0 ? 0 : (size_t)ci < len ? (size_t)ci : len;
		*beyond = b >= len;
		return b;
	}
	size_t i = 0;
	long n = 0;
	while (i < len && n < ci) {
		i++;
		while (i < len && is_cont((unsigned char)line[i]))
			i++;
		n++;
	}
	*beyond = i >= len;
	return i;
}

static dchar char_at(const char *line, size_t len, size_t b)
{
	if (b >= len)
		return 0;
	size_t e = b + 1;
	while (e < len && e - b < 4 && is_cont((unsigned char)line[e]))
		e++;
	return dchar_make(line + b, e - b);
}

/* The character that ends just before byte offset b. */
static dchar char_before(const char *line, size_t b)
{
	if (b == 0)
		return 0;
	size_t s = b - 1;
	while (s > 0 && b - s < 4 && is_cont((unsigned char)line[s]))
		s--;
	return dchar_make(line + s, b - s);
}

/* The same two on the line being matched: on a pure-ASCII line a character
 * is a byte (the common case, per line). */
static inline dchar dd_char_at(const struct datedetect *dd, const char *line, size_t len,
			       size_t b)
{
	if (!dd->ascii)
		return char_at(line, len, b);
	return b < len ? dchar_byte(line[b]) : 0;
}

static inline dchar dd_char_before(const struct datedetect *dd, const char *line, size_t b)
{
	if (!dd->ascii)
		return char_before(line, b);
	return b > 0 ? dchar_byte(line[b - 1]) : 0;
}

/* Python's str.isalnum() for one character ('' is not). */
static int dchar_alnum(struct datedetect *dd, dchar c)
{
	unsigned char b[4];
	size_t n = dchar_len(c);
	memcpy(b, &c, sizeof b);
	if (n == 0)
		return 0;
	if (b[0] < 0x80)
		return isalnum(b[0]) != 0;
	if (!dd->alnum_made) {
		int ec;
		PCRE2_SIZE eo;
		dd->alnum = pcre2_compile((PCRE2_SPTR) "[\\p{L}\\p{N}]", PCRE2_ZERO_TERMINATED,
					  PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &ec, &eo, NULL);
		dd->md1 = pcre2_match_data_create(1, NULL);
		dd->alnum_made = 1;
	}
	if (!dd->alnum)
		return 1;
	int rc = pcre2_match(dd->alnum, b, n, 0, 0, dd->md1, NULL);
	return rc > 0;
}

/* Python line[ci:ci+1]. */
static dchar slice1(const struct datedetect *dd, const char *line, size_t len, long ci)
{
	if (ci < 0)
		return 0;
	int beyond;
	size_t b = byte_offset(dd, line, len, ci, &beyond);
	return beyond ? 0 : dd_char_at(dd, line, len, b);
}

/* pattern.search(line, pos, endpos) in characters; endpos < 0: the end. */
static int tmpl_search(struct datedetect *dd, struct tmpl *t, const char *line, size_t len,
		       long pos, long endpos)
{
	size_t bpos = 0, bend = len;
	int beyond;
	if (pos > 0)
		bpos = byte_offset(dd, line, len, pos, &beyond);
	if (endpos >= 0)
		bend = byte_offset(dd, line, len, endpos, &beyond);
	if (bend < bpos)
		return 0;
	pcre2_code *acode = dd->ascii ? tmpl_ascii(t) : NULL;
	int variant = acode != NULL;
	struct datedetect_memo_entry *me = NULL;
	dd->last_me = NULL;
	if (dd->memo && t->ncap < DATEDETECT_MEMO_PAIRS) {
		struct datedetect_memo *m = dd->memo;
		for (unsigned k = 0; k < m->n; k++) {
			struct datedetect_memo_entry *e = &m->e[k];
			if (e->hash == t->rhash && e->bpos == bpos && e->bend == bend &&
			    e->variant == variant && e->line == line && e->len == len &&
			    e->rlen == t->rlen &&
			    (e->regex == t->regex || memcmp(e->regex, t->regex, t->rlen) == 0)) {
				if (e->rc > 0) {
					/* as the search would leave it: unused pairs unset */
					PCRE2_SIZE *ov = pcre2_get_ovector_pointer(dd->md);
					memcpy(ov, e->ov, 2 * (size_t)e->pairs * sizeof(PCRE2_SIZE));
					for (size_t p = 2 * (size_t)e->pairs; p < 2 * (size_t)dd->ovpairs; p++)
						ov[p] = PCRE2_UNSET;
					t->thits++;
				} else if (e->rc < 0) {
					dd->limit_hits++;
				}
				dd->last_me = e;
				return e->rc > 0;
			}
		}
		if (m->n < DATEDETECT_MEMO_SLOTS)
			me = &m->e[m->n++];
	}
	if (!dd->jstack_made) {
		/* 512 KiB of address space, so only for detectors that search */
		dd->jstack = pcre2_jit_stack_create(32 * 1024, 512 * 1024, NULL);
		if (dd->jstack)
			pcre2_jit_stack_assign(dd->mctx, NULL, dd->jstack);
		dd->jstack_made = 1;
	}
	int rc;
	if (acode) {
		rc = t->ajit ? pcre2_jit_match(acode, (PCRE2_SPTR)line, bend, bpos, 0, dd->md, dd->mctx)
			     : pcre2_match(acode, (PCRE2_SPTR)line, bend, bpos, 0, dd->md, dd->mctx);
	} else {
		pcre2_code *code = tmpl_utf(t);
		rc = code ? pcre2_match(code, (PCRE2_SPTR)line, bend, bpos, 0, dd->md, dd->mctx)
			  : PCRE2_ERROR_NOMEMORY;
	}
	int limit = rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
		    rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT;
	if (me) {
		me->regex = t->regex;
		me->hash = t->rhash;
		me->rlen = t->rlen;
		me->line = line;
		me->len = len;
		me->bpos = bpos;
		me->bend = bend;
		me->variant = variant;
		me->rc = rc > 0 ? 1 : limit ? -1 : 0;
		me->pairs = t->ncap + 1;
		me->has_time = 0;
		dd->last_me = me;
		if (rc > 0)
			memcpy(me->ov, pcre2_get_ovector_pointer(dd->md),
			       2 * (size_t)me->pairs * sizeof(PCRE2_SIZE));
	}
	if (rc <= 0) {
		if (limit)
			dd->limit_hits++;
		return 0;
	}
	t->thits++;
	return 1;
}

static double tmpl_weight(const struct tmpl *t)
{
	return (double)t->hits * t->weight / (double)(t->distance > 1 ? t->distance : 1);
}

/* _reorderTemplate: bubble the winner forward when it outweighs the template
 * at the target slot, or that one has not been used for a while. */
static size_t dd_reorder(struct datedetect *dd, size_t num)
{
	if (!num)
		return num;
	struct tmpl *t = dd->t[num];
	double untime = t->last_used - UNUSED_TIME;
	double weight = tmpl_weight(t);
	size_t pos = dd->first_unused < num ? dd->first_unused : num / 2;
	if (!(weight > tmpl_weight(dd->t[pos]) || untime > dd->t[pos]->last_used)) {
		if (pos == num - 1)
			return num;
		pos = num - 1;
		if (!(weight > tmpl_weight(dd->t[pos]) || untime > dd->t[pos]->last_used))
			return num;
	}
	memmove(dd->t + pos + 1, dd->t + pos, (num - pos) * sizeof(*dd->t));
	dd->t[pos] = t;
	while (dd->first_unused < dd->n && dd->t[dd->first_unused]->hits)
		dd->first_unused++;
	return pos;
}

/* DateDetector.matchTime: returns the winning index (its match in *ov), or
 * SIZE_MAX. */
static size_t dd_match_time(struct datedetect *dd, const char *line, size_t len, double now,
			    const PCRE2_SIZE **ovp)
{
	const unsigned anchored = LINE_BEGIN | LINE_END;
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(dd->md);
	size_t ovbytes = 2 * (size_t)dd->ovpairs * sizeof(PCRE2_SIZE);
	int have_found = 0;
	long found_dist = FAR, found_end = 0;
	size_t found_i = 0;
	struct datedetect_memo_entry *found_me = NULL;
	size_t ignore = SIZE_MAX;
	int match = 0;
	long mdist = 0, mend = 0;
	size_t i = dd->last_idx;
	struct tmpl *t = NULL;
	const PCRE2_SIZE *cur = ov;

	if (i < dd->n) {
		t = dd->t[i];
		if (t->flags & anchored) {
			match = tmpl_search(dd, t, line, len, 0, -1);
			ignore = i;
		} else {
			long d = dd->last_pos, e = dd->last_end;
			dchar before = d >= 1 ? slice1(dd, line, len, d - 1) : 0;
			dchar at = slice1(dd, line, len, d);
			dchar after = slice1(dd, line, len, e);
			dchar endc = e >= 1 ? slice1(dd, line, len, e - 1) : 0;
			if ((before == dd->last_pos_prev ||
			     (at == dd->last_pos_first && !dchar_alnum(dd, dd->last_pos_first))) &&
			    (after == dd->last_end_next ||
			     (endc == dd->last_end_last && !dchar_alnum(dd, dd->last_end_last)))) {
				match = tmpl_search(dd, t, line, len, d, e);
			} else {
				match = tmpl_search(dd, t, line, len, 0, -1);
				ignore = i;
			}
		}
		if (match) {
			mdist = char_index(dd, line, ov[0]);
			mend = mdist + char_index(dd, line + ov[0], ov[1] - ov[0]);
			if (!(dd->n == 1 || (t->flags & anchored) ||
			      (mdist == dd->last_pos && mend == dd->last_end))) {
				have_found = 1;
				found_dist = mdist;
				found_end = mend;
				found_i = i;
				memcpy(dd->found_ov, ov, ovbytes);
				found_me = dd->last_me;
				match = 0;
			}
		}
	}
	if (!match) {
		for (i = 0; i < dd->n; i++) {
			if (i == ignore)
				continue;
			t = dd->t[i];
			if (!tmpl_search(dd, t, line, len, 0, -1))
				continue;
			match = 1;
			mdist = char_index(dd, line, ov[0]);
			mend = mdist + char_index(dd, line + ov[0], ov[1] - ov[0]);
			if (i + 1 >= dd->n)
				break;
			if (t->flags & anchored)
				break;
			if (mdist == 0 && t->hits && !dd->t[i + 1]->thits)
				break;
			if (mdist > t->distance || mdist > dd->last_pos) {
				if (mdist < found_dist) {
					have_found = 1;
					found_dist = mdist;
					found_end = mend;
					found_i = i;
					memcpy(dd->found_ov, ov, ovbytes);
					found_me = dd->last_me;
				}
				match = 0;
				continue;
			}
			break;
		}
		if (!match && have_found) {
			match = 1;
			i = found_i;
			t = dd->t[i];
			mdist = found_dist;
			mend = found_end;
			cur = dd->found_ov;
			dd->last_me = found_me;
		}
	}
	if (!match)
		return SIZE_MAX;
	dd->win_me = dd->last_me;
	t->hits++;
	t->last_used = now;
	t->distance = mdist;
	if (dd->first_unused == i)
		dd->first_unused++;
	size_t bs = cur[0], be = cur[1];
	dd->last_pos = mdist;
	dd->last_pos_prev = dd_char_before(dd, line, bs);
	dd->last_pos_first = dd_char_at(dd, line, len, bs);
	dd->last_end = mend;
	/* line[end-1]: for an empty match at 0 Python takes the line's last char. */
	dd->last_end_last = dd_char_before(dd, line, be > 0 ? be : len);
	dd->last_end_next = dd_char_at(dd, line, len, be);
	if (i && i != dd->last_idx)
		i = dd_reorder(dd, i);
	dd->last_idx = i;
	*ovp = cur;
	return i;
}

/* Python float() of an epoch text (digits of any script, optional '.'). */
static int epoch_value(const char *s, size_t len, int longfrm, double *out)
{
	char buf[64];
	size_t o = 0, nch = 0;
	int dot = 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = strptime_utf8((const unsigned char *)s + i, len - i, &cp);
		i += n;
		nch++;
		if (cp == '.') {
			dot = 1;
			if (o + 1 >= sizeof(buf))
				return -1;
			buf[o++] = '.';
			continue;
		}
		int64_t dv;
		char one[5];
		memcpy(one, s + i - n, n);
		if (strptime_pyint(one, n, &dv) < 0 || dv < 0 || dv > 9 || o + 1 >= sizeof(buf))
			return -1;
		buf[o++] = (char)('0' + dv);
	}
	buf[o] = 0;
	if (!o)
		return -1;
	double v = strtod(buf, NULL);
	if (longfrm && nch >= 13)
		v = (nch >= 16 && !dot) ? v / 1000000 : v / 1000;
	*out = v;
	return 0;
}

static int two_digits(const char *p)
{
	return p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9' ? (p[0] - '0') * 10 + p[1] - '0'
									  : -1;
}

/* Whether every second of the cached text's minute converts to the cached
 * time moved by the difference in seconds, under the same clock. fail2ban's
 * rules for dates without a year or a day compare the date with "now" and
 * move it back a year or a day; each comparison is monotonic in the date, and
 * each move (and a zone-offset change) breaks the step of one second. So when
 * second 59 lies exactly 59 s after second 00, no rule and no offset change
 * acts inside the minute. Costs two conversions per new minute of log text
 * (dd->fbuf holds the fields of the cached text; its seconds are restored). */
static int minute_linear(struct datedetect *dd, const struct tmpl *tm, int sec,
			 const struct strptime_clock *sc)
{
	size_t ks = SIZE_MAX;
	for (size_t k = 0; k < tm->nfields; k++)
		if (dd->fbuf[k].s && dd->fbuf[k].key == STRP_S)
			ks = k;
	if (ks == SIZE_MAX)
		return 0;
	const char *saved = dd->fbuf[ks].s;
	double t0, t59;
	dd->fbuf[ks].s = "00";
	int ok = strptime_fields_time(dd->fbuf, tm->nfields, sc, &t0) == 0;
	dd->fbuf[ks].s = "59";
	ok = ok && strptime_fields_time(dd->fbuf, tm->nfields, sc, &t59) == 0;
	dd->fbuf[ks].s = saved;
	return ok && t59 - t0 == 59.0 && dd->cache.t - t0 == (double)sec;
}

/* Notes where the fields of the cached text lie (see the cache). */
static void record_fields(struct datedetect *dd, const struct tmpl *tm, const char *text,
			  size_t tl, const struct strptime_clock *sc)
{
	dd->cache.nf = 0;
	dd->cache.s_off = -1;
	if (tm->nfields == 0 || tm->nfields > sizeof dd->cache.foff / sizeof dd->cache.foff[0])
		return;
	int s_off = -1, nsec = 0;
	for (size_t k = 0; k < tm->nfields; k++) {
		const struct strptime_field *f = &dd->fbuf[k];
		dd->cache.foff[k] = f->s ? (short)(f->s - text) : -1;
		dd->cache.flen[k] = f->s ? (short)f->len : 0;
		if (f->s && f->key == STRP_S) {
			nsec++;
			if (f->len == 2)
				s_off = (int)(f->s - text);
		}
	}
	if (nsec != 1 || s_off < 0 || (size_t)s_off + 2 > tl)
		s_off = -1;
	for (size_t k = 0; s_off >= 0 && k < tm->nfields; k++) {
		const struct strptime_field *f = &dd->fbuf[k];
		if (f->s && f->key != STRP_S && dd->cache.foff[k] < s_off + 2 &&
		    dd->cache.foff[k] + dd->cache.flen[k] > s_off)
			s_off = -1; /* another field reads the seconds too */
	}
	if (s_off >= 0) {
		int v = two_digits(text + s_off);
		if (v < 0 || v > 59 || !minute_linear(dd, tm, v, sc))
			s_off = -1;
	}
	dd->cache.nf = (int)tm->nfields;
	dd->cache.s_off = s_off;
}

/* The next second of a log: a date text equal to the cached one but for its
 * seconds is the cached time moved by the difference, under the same clock,
 * when minute_linear() found the cached minute free of fail2ban's "now" rules
 * and of zone-offset changes. Every field must lie where it lay before. */
static int seconds_step(struct datedetect *dd, const struct tmpl *tm, const char *text,
			size_t tl, const PCRE2_SIZE *ov, const struct date_clock *clk, double *t)
{
	int so = dd->cache.s_off;
	if (dd->cache.tm != tm || dd->cache.rc != 1 || so < 0 || dd->cache.len != tl ||
	    dd->cache.nf != (int)tm->nfields || dd->cache.now != clk->now ||
	    dd->cache.has_tz != clk->has_tz || dd->cache.tz_offset != clk->tz_offset)
		return 0;
	double old = dd->cache.t;
	if (memcmp(dd->cache.text, text, (size_t)so) != 0 ||
	    memcmp(dd->cache.text + so + 2, text + so + 2, tl - (size_t)so - 2) != 0)
		return 0;
	int nv = two_digits(text + so), ov_s = two_digits(dd->cache.text + so);
	if (nv < 0 || nv > 59 || ov_s < 0)
		return 0;
	for (size_t k = 0; k < tm->nfields; k++) {
		uint32_t g = tm->fields[k].group;
		short off = -1, len = 0;
		if (ov[2 * g] != PCRE2_UNSET) {
			if (ov[2 * g] < ov[2] || ov[2 * g + 1] > ov[3])
				return 0; /* outside the date text */
			off = (short)(ov[2 * g] - ov[2]);
			len = (short)(ov[2 * g + 1] - ov[2 * g]);
		}
		if (off != dd->cache.foff[k] || len != dd->cache.flen[k])
			return 0;
	}
	*t = old + (double)(nv - ov_s);
	dd->cache.t = *t;
	dd->cache.text[so] = text[so];
	dd->cache.text[so + 1] = text[so + 1];
	return 1;
}

static int pattern_time(struct datedetect *dd, const struct tmpl *tm, const char *line,
			const PCRE2_SIZE *ov, const struct date_clock *clk, double *t);

int datedetect_find(struct datedetect *dd, const char *line, size_t len,
		    const struct date_clock *clk, double *t, size_t *mstart, size_t *mend)
{
	size_t i = 0;
	while (i < len && (unsigned char)line[i] < 0x80)
		i++;
	return datedetect_find_ascii(dd, line, len, i == len, clk, t, mstart, mend);
}

int datedetect_find_ascii(struct datedetect *dd, const char *line, size_t len, int ascii,
			  const struct date_clock *clk, double *t, size_t *mstart, size_t *mend)
{
	return datedetect_find_memo(dd, line, len, ascii, NULL, clk, t, mstart, mend);
}

int datedetect_find_memo(struct datedetect *dd, const char *line, size_t len, int ascii,
			 struct datedetect_memo *memo, const struct date_clock *clk, double *t,
			 size_t *mstart, size_t *mend)
{
	dd->ascii = ascii;
	dd->memo = memo;
	dd->win_me = NULL;
	const PCRE2_SIZE *ov;
	size_t i = dd_match_time(dd, line, len, clk->now, &ov);
	dd->memo = NULL;
	if (i == SIZE_MAX)
		return 0;
	struct tmpl *tm = dd->t[i];
	if (ov[2] == PCRE2_UNSET) {
		/* Python's start(1) is -1: the line splits before its last char. */
		size_t p = len ? dchar_len(char_before(line, len)) : 0;
		*mstart = *mend = len - p;
		*t = clk->now;
		return 1;
	}
	*mstart = ov[2];
	*mend = ov[3];
	if (ov[3] == ov[2]) {
		*t = clk->now;
		return 1;
	}
	if (tm->kind == K_EPOCH) {
		uint32_t g = tm->grpidx;
		if (g >= dd->ovpairs || ov[2 * g] == PCRE2_UNSET)
			return -1;
		return epoch_value(line + ov[2 * g], ov[2 * g + 1] - ov[2 * g], tm->longfrm, t) < 0
			       ? -1
			       : 1;
	}
	if (tm->kind == K_TAI64N) {
		/* fail2ban reads hex digits 2..16 of "@4000000...": seconds since
		 * 1970 with the TAI label's top digit dropped. */
		if (ov[3] - ov[2] < 17)
			return -1;
		uint64_t v = 0;
		for (size_t k = 2; k < 17; k++) {
			char c = line[ov[2] + k];
			v = v * 16 + (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
		}
		*t = (double)v;
		return 1;
	}
	/* Another detector made a time of this very match (same regex, so the
	 * same fields) under the same clock: it is the time this one would make. */
	struct datedetect_memo_entry *me = dd->win_me;
	if (me && me->has_time && me->now == clk->now && me->has_tz == clk->has_tz &&
	    me->tz_offset == clk->tz_offset) {
		*t = me->t;
		return 1;
	}
	int rc = pattern_time(dd, tm, line, ov, clk, t);
	if (me && rc == 1) {
		me->has_time = 1;
		me->now = clk->now;
		me->has_tz = clk->has_tz;
		me->tz_offset = clk->tz_offset;
		me->t = *t;
	}
	return rc;
}

/* The time of a strptime-style template's match (group 1 non-empty). */
static int pattern_time(struct datedetect *dd, const struct tmpl *tm, const char *line,
			const PCRE2_SIZE *ov, const struct date_clock *clk, double *t)
{
	size_t tl = ov[3] - ov[2];
	const char *text = line + ov[2];
	if (dd->cache.tm == tm && dd->cache.len == tl && dd->cache.now == clk->now &&
	    dd->cache.has_tz == clk->has_tz && dd->cache.tz_offset == clk->tz_offset &&
	    memcmp(dd->cache.text, text, tl) == 0) {
		*t = dd->cache.t;
		return dd->cache.rc;
	}
	if (seconds_step(dd, tm, text, tl, ov, clk, t))
		return 1;
	/* the fields are only read when the text is new (most lines repeat the
	 * previous line's date text) */
	for (size_t k = 0; k < tm->nfields; k++) {
		uint32_t g = tm->fields[k].group;
		dd->fbuf[k].key = tm->fields[k].key;
		if (ov[2 * g] == PCRE2_UNSET) {
			dd->fbuf[k].s = NULL;
			dd->fbuf[k].len = 0;
		} else {
			dd->fbuf[k].s = line + ov[2 * g];
			dd->fbuf[k].len = ov[2 * g + 1] - ov[2 * g];
		}
	}
	struct strptime_clock sc = {clk->now, clk->has_tz, clk->tz_offset, &dd->tzc};
	int rc = strptime_fields_time(dd->fbuf, tm->nfields, &sc, t) < 0 ? -1 : 1;
	/* Fields outside the date text (group 1) would make the text an incomplete key. */
	int inside = 1;
	for (size_t k = 0; k < tm->nfields; k++)
		if (dd->fbuf[k].s && (dd->fbuf[k].s < text || dd->fbuf[k].s + dd->fbuf[k].len > text + tl))
			inside = 0;
	if (inside && tl <= sizeof dd->cache.text) {
		dd->cache.tm = tm;
		memcpy(dd->cache.text, text, tl);
		dd->cache.len = tl;
		dd->cache.now = clk->now;
		dd->cache.has_tz = clk->has_tz;
		dd->cache.tz_offset = clk->tz_offset;
		dd->cache.rc = rc;
		dd->cache.t = rc == 1 ? *t : 0;
		record_fields(dd, tm, text, tl, &sc);
	} else {
		dd->cache.tm = NULL;
	}
	return rc;
}

int datedetect_parse_tz(const char *s, long *offset)
{
	long min;
	if (!s || strptime_zone(s, strlen(s), &min) < 0)
		return -1;
	*offset = min * 60;
	return 0;
}

size_t datedetect_ntemplates(const struct datedetect *dd)
{
	return dd ? dd->n : 0;
}

const char *datedetect_template(const struct datedetect *dd, size_t i, unsigned long *hits,
				const char **regex)
{
	if (!dd || i >= dd->n)
		return NULL;
	if (hits)
		*hits = dd->t[i]->hits;
	if (regex)
		*regex = dd->t[i]->regex;
	return dd->t[i]->name;
}

unsigned long datedetect_limit_hits(const struct datedetect *dd)
{
	return dd ? dd->limit_hits : 0;
}
