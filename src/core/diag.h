/*
 * diag - collects user-facing diagnostics ("file:line: message") from parsers.
 *
 * Library modules never print: they add diagnostics here and return an error;
 * the command that called them decides how to show them (mxjail check prints
 * all, the daemon logs them). A diag owns copies of every string.
 */
#ifndef MXJAIL_CORE_DIAG_H
#define MXJAIL_CORE_DIAG_H

#include <stddef.h>

enum diag_level { DIAG_ERROR, DIAG_WARNING };

struct diag_item {
	enum diag_level level;
	char *text; /* "file:line: message" or "message" when no location */
};

struct diag {
	struct diag_item *items;
	size_t n, cap;
	size_t nerrors;
};

#define DIAG_INIT {NULL, 0, 0, 0}

/* file may be NULL (no location); line 0 means "whole file". */
void diag_error(struct diag *d, const char *file, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void diag_warn(struct diag *d, const char *file, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Moves every item of src into dst. */
void diag_merge(struct diag *dst, struct diag *src);
/* Prints every item to the stream, one per line, prefixed by "error: "/"warning: ". */
void diag_print(const struct diag *d, void *stdio_stream);
void diag_clear(struct diag *d);

#endif
