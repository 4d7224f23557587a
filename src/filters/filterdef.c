/*
 * filterdef - release of a filter definition (see filterdef.h).
 */
#include "filters/filterdef.h"

#include "core/strbuf.h"

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

char *filter_def_key(const struct filter_def *def)
{
	struct strbuf b = STRBUF_INIT;
	strbuf_addf(&b, "P%s\n", def->prefregex ? def->prefregex : "");
	for (size_t i = 0; i < def->nfailregex; i++)
		strbuf_addf(&b, "F%s\n", def->failregex[i].text);
	for (size_t i = 0; i < def->nignoreregex; i++)
		strbuf_addf(&b, "I%s\n", def->ignoreregex[i].text);
	for (size_t i = 0; i < def->ndatepattern; i++)
		strbuf_addf(&b, "D%s\n", def->datepattern[i]);
	for (size_t i = 0; i < def->njournalmatch; i++)
		strbuf_addf(&b, "J%s\n", def->journalmatch[i]);
	strbuf_addf(&b, "M%u\nU%s\nL%s\nZ%s\n", def->maxlines, def->usedns ? def->usedns : "",
		    def->logtype ? def->logtype : "", def->logtimezone ? def->logtimezone : "");
	return strbuf_detach(&b);
}
