/*
 * diag - diagnostics collector (see diag.h).
 */
#include "core/diag.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void add(struct diag *d, enum diag_level lvl, const char *file, unsigned line,
		const char *fmt, va_list ap)
{
	struct strbuf b = STRBUF_INIT;
	if (file && line)
		strbuf_addf(&b, "%s:%u: ", file, line);
	else if (file)
		strbuf_addf(&b, "%s: ", file);
	char *msg;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = xstrdup("(message lost: out of memory)");
	strbuf_adds(&b, msg);
	free(msg);
	d->items = xgrow(d->items, &d->cap, d->n, sizeof *d->items);
	d->items[d->n].level = lvl;
	d->items[d->n].text = strbuf_detach(&b);
	d->n++;
	if (lvl == DIAG_ERROR)
		d->nerrors++;
}

void diag_error(struct diag *d, const char *file, unsigned line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add(d, DIAG_ERROR, file, line, fmt, ap);
	va_end(ap);
}

void diag_warn(struct diag *d, const char *file, unsigned line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add(d, DIAG_WARNING, file, line, fmt, ap);
	va_end(ap);
}

void diag_merge(struct diag *dst, struct diag *src)
{
	for (size_t i = 0; i < src->n; i++) {
		dst->items = xgrow(dst->items, &dst->cap, dst->n, sizeof *dst->items);
		dst->items[dst->n++] = src->items[i];
		if (src->items[i].level == DIAG_ERROR)
			dst->nerrors++;
	}
	free(src->items);
	src->items = NULL;
	src->n = src->cap = src->nerrors = 0;
}

void diag_print(const struct diag *d, void *stream)
{
	FILE *f = stream;
	for (size_t i = 0; i < d->n; i++)
		fprintf(f, "%s: %s\n", d->items[i].level == DIAG_ERROR ? "error" : "warning",
			d->items[i].text);
}

void diag_clear(struct diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->items[i].text);
	free(d->items);
	d->items = NULL;
	d->n = d->cap = d->nerrors = 0;
}
