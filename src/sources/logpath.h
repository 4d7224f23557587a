/*
 * logpath - fail2ban `logpath` lines: glob patterns with a ` head`/` tail` suffix.
 *
 * Semantics follow fail2ban 1.0.2's jail reader: each line of the value is
 * split at its LAST space; when there is one, the word after it must be
 * `head` or `tail` (any case) and the part before it is the pattern (so a
 * path containing a space needs a suffix). `tail` means "start at the end",
 * `head` (the default) "read from the start". Patterns expand like Python's
 * glob.glob(): `*`, `?`, `[...]`, no backslash escapes, `*` does not match a
 * leading dot; paths that do not exist (dangling symlinks) are dropped.
 * Unlike Python the result is sorted, so the daemon's order is stable.
 */
#ifndef MXJAIL_SOURCES_LOGPATH_H
#define MXJAIL_SOURCES_LOGPATH_H

#include <stddef.h>

struct logpath {
	char *pattern;
	int tail;       /* 1 = start at end */
};

/* Parses one line (without newline; leading/trailing blanks ignored). Returns
 * 0, 1 for an empty line (nothing to do), or -1 with a message in err. The
 * caller frees lp->pattern. */
int logpath_parse(const char *line, struct logpath *lp, char *err, size_t errlen);

/* Expands a pattern; *out gets a sorted array of *n malloc'ed paths (the caller
 * frees each and the array). Returns 0, or -1 on a read error of the file
 * system with err set (no match is not an error: *n = 0). */
int logpath_glob(const char *pattern, char ***out, size_t *n, char *err, size_t errlen);

void logpath_free_list(char **list, size_t n);

#endif
