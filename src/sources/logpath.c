/*
 * logpath - fail2ban logpath lines and glob expansion (see logpath.h).
 *
 * glob(3) does the matching: with GLOB_NOESCAPE its rules are the ones of
 * Python's glob (which treats backslashes literally), and it already skips
 * dot files for `*` and sorts. Existence is then checked with stat(), which
 * drops dangling symlinks as fail2ban does.
 */
#include "sources/logpath.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

int logpath_parse(const char *line, struct logpath *lp, char *err, size_t errlen)
{
	lp->pattern = NULL;
	lp->tail = 0;
	while (*line == ' ' || *line == '\t')
		line++;
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
		n--;
	if (n == 0)
		return 1;
	const char *sp = NULL;
	for (size_t i = n; i-- > 0;)
		if (line[i] == ' ') {
			sp = line + i;
			break;
		}
	if (!sp) {
		lp->pattern = xstrndup(line, n);
		return 0;
	}
	size_t wl = n - (size_t)(sp + 1 - line);
	if (wl == 4 && !strncasecmp(sp + 1, "tail", 4))
		lp->tail = 1;
	else if (!(wl == 4 && !strncasecmp(sp + 1, "head", 4))) {
		snprintf(err, errlen, "logpath \"%.*s\": expected `head` or `tail` after the last "
			 "space, got \"%.*s\"", (int)n, line, (int)wl, sp + 1);
		return -1;
	}
	size_t pl = (size_t)(sp - line);
	while (pl > 0 && (line[pl - 1] == ' ' || line[pl - 1] == '\t'))
		pl--;
	lp->pattern = xstrndup(line, pl);
	return 0;
}

int logpath_glob(const char *pattern, char ***out, size_t *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	if (!*pattern)
		return 0;
	glob_t g;
	int r = glob(pattern, GLOB_NOESCAPE, NULL, &g);
	if (r == GLOB_NOMATCH)
		return 0;
	if (r != 0) {
		snprintf(err, errlen, "logpath %s: %s", pattern,
			 r == GLOB_NOSPACE ? "out of memory" : "read error while expanding");
		if (r != GLOB_ABORTED)
			return -1;
		globfree(&g);
		return -1;
	}
	char **list = xcalloc(g.gl_pathc ? g.gl_pathc : 1, sizeof *list);
	size_t k = 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		struct stat st;
		if (stat(g.gl_pathv[i], &st) == 0)
			list[k++] = xstrdup(g.gl_pathv[i]);
	}
	globfree(&g);
	*out = list;
	*n = k;
	return 0;
}

void logpath_free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}
