/*
 * xmalloc - allocation that never returns NULL.
 *
 * Every x* function aborts the process with a message when memory is exhausted,
 * so callers need no NULL checks. xfree-style helpers are not provided: use free().
 */
#ifndef MXJAIL_CORE_XMALLOC_H
#define MXJAIL_CORE_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Grows an array of elem-sized items so that index `need` fits; doubles capacity. */
void *xgrow(void *p, size_t *cap, size_t need, size_t elem);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
