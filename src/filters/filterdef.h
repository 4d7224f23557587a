/*
 * filterdef - a filter definition as the configuration stage hands it over.
 *
 * The config module (config/filterload.c) reads filter.d/NAME.conf with its
 * layering and options, resolves every %(x)s and <tag> interpolation, and fills
 * this struct. Only the regex host tags (<HOST>, <ADDR>, <IP4>, <F-ID>...,
 * <SKIPLINES>) are left in place: the filter compiler (filters/filter.c) expands
 * them. All strings are owned by the struct; filter_def_free() releases them.
 */
#ifndef MXJAIL_FILTERS_FILTERDEF_H
#define MXJAIL_FILTERS_FILTERDEF_H

#include <stddef.h>

/* One regex line and where it came from, for error messages. */
struct filter_src {
	char *text;
	char *file; /* may be NULL (e.g. given on the command line) */
	unsigned line;
};

struct filter_def {
	char *name;                 /* the spec as written, e.g. "postfix[mode=aggressive]" */
	char *file;                 /* main filter.d file read, or NULL */
	char *prefregex;            /* NULL when the filter has none */
	struct filter_src *failregex;
	size_t nfailregex;
	struct filter_src *ignoreregex;
	size_t nignoreregex;
	char **datepattern;         /* newline list; 0 entries = default templates */
	size_t ndatepattern;
	unsigned maxlines;          /* >= 1 */
	char *usedns;               /* "yes", "warn", "no", "raw" */
	char *logtype;              /* "file" or "journal" */
	char **journalmatch;        /* one entry per line of journalmatch */
	size_t njournalmatch;
	char *logtimezone;          /* NULL = local time */
	char *logencoding;          /* NULL = auto */
};

void filter_def_free(struct filter_def *d);

/* The definition as text (caller frees): equal text means equal behaviour, so
 * one compiled filter can serve every jail whose definition has this key. */
char *filter_def_key(const struct filter_def *def);

#endif
