/*
 * filterdef - release of a filter definition (see filterdef.h).
 */
#include "filters/filterdef.h"

#include <stdlib.h>
#include <string.h>

static void free_srcs(struct filter_src *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].text);
		free(s[i].file);
	}
	free(s);
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void filter_def_free(struct filter_def *d)
{
	if (!d)
		return;
	free(d->name);
	free(d->file);
	free(d->prefregex);
	free_srcs(d->failregex, d->nfailregex);
	free_srcs(d->ignoreregex, d->nignoreregex);
	free_strv(d->datepattern, d->ndatepattern);
	free(d->usedns);
	free(d->logtype);
	free_strv(d->journalmatch, d->njournalmatch);
	free(d->logtimezone);
	free(d->logencoding);
	memset(d, 0, sizeof *d);
}
