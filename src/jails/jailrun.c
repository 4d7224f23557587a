/*
 * jailrun - loads, deduplicates and groups the filters of a set of jails for
 * commands that read log files outside the daemon (see jailrun.h).
 *
 * Jails whose filters load to the same definition (same filter_def_key())
 * share one compiled filter: many jails on one log with one filter cost one
 * match per line. Filters are compiled with raw_host, because the lines come
 * from files given by hand, not from the daemon's own sources.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/kvlist.h"
#include "core/xmalloc.h"
#include "filters/datedetect.h"
#include "filters/filterdef.h"
#include "jails/jailrun.h"

static void forward(struct diag *d, const struct diag *fd, const char *jail, enum jailrun_diag how)
{
	for (size_t i = 0; i < fd->n; i++) {
		if (how == JAILRUN_DIAG_KEEP && fd->items[i].level == DIAG_ERROR)
			diag_error(d, NULL, 0, "jail [%s]: %s", jail, fd->items[i].text);
		else
			diag_warn(d, NULL, 0, "jail [%s]: %s", jail, fd->items[i].text);
	}
}

int jailrun_filter_add(struct jailrun *jr, const struct jail_conf *jc, const char *dir, double now,
		       enum jailrun_diag how, size_t *idx, struct diag *d)
{
	struct kvlist fopts = KVLIST_INIT;
	kvlist_copy(&fopts, &jc->opts);
	/* the logs read are text: a journal jail's filter is loaded for files */
	const char *be = kvlist_get(&fopts, "backend");
	if (be && strncasecmp(be, "systemd", 7) == 0)
		kvlist_set(&fopts, "backend", "auto");
	struct filter_def def = {0};
	struct diag fd = DIAG_INIT;
	int rc = -1;
	if (config_load_filter(dir, jc->filter, &fopts, &def, &fd) == 0 && fd.nerrors == 0) {
		char *key = filter_def_key(&def);
		for (size_t i = 0; i < jr->nfilters; i++)
			if (strcmp(jr->filters[i].key, key) == 0) {
				*idx = i;
				free(key);
				rc = 0;
				goto out;
			}
		struct filter *f = filter_compile(&def, &fd);
		if (!f) {
			free(key);
			goto out;
		}
		struct filter_opts fo = {.raw_host = 1};
		filter_set_opts(f, &fo);
		jr->filters = xrealloc(jr->filters, (jr->nfilters + 1) * sizeof *jr->filters);
		struct jailrun_filter *jf = &jr->filters[jr->nfilters];
		memset(jf, 0, sizeof *jf);
		jf->key = key;
		jf->f = f;
		jf->clk.now = now;
		if (def.logtimezone && *def.logtimezone &&
		    datedetect_parse_tz(def.logtimezone, &jf->clk.tz_offset) == 0)
			jf->clk.has_tz = 1;
		*idx = jr->nfilters++;
		rc = 0;
	}
out:
	forward(d, &fd, jc->name, how);
	if (rc < 0 && (how == JAILRUN_DIAG_WARN || fd.nerrors == 0))
		diag_error(d, jc->file, jc->line, "jail [%s]: filter '%s' cannot be used", jc->name,
			   jc->filter);
	diag_clear(&fd);
	filter_def_free(&def);
	kvlist_free(&fopts);
	return rc;
}

int jailrun_ignore(const struct jail_conf *jc, double now, enum jailrun_diag how,
		   struct ignorelist **out, struct diag *d)
{
	struct diag igd = DIAG_INIT;
	*out = ignore_new_from_opts(&jc->opts, NULL, jc->file, jc->line, now, &igd);
	forward(d, &igd, jc->name, how);
	size_t nerr = igd.nerrors;
	diag_clear(&igd);
	if (nerr) {
		*out = ignore_free(*out);
		return -1;
	}
	return 0;
}

void jailrun_share(struct jailrun *jr)
{
	for (size_t i = 0; i < jr->nfilters; i++) {
		jr->filters[i].share = i;
		for (size_t m = 0; m < i; m++)
			if (jr->filters[m].share == m &&
			    strcmp(filter_date_key(jr->filters[i].f), filter_date_key(jr->filters[m].f)) ==
				    0) {
				jr->filters[i].share = m;
				break;
			}
	}
}

int jailrun_wanted(const struct jail_conf *jc, char *const *want, size_t nwant)
{
	if (!nwant)
		return jc->enabled;
	for (size_t w = 0; w < nwant; w++)
		if (strcmp(jc->name, want[w]) == 0)
			return 1;
	return 0;
}

void jailrun_free(struct jailrun *jr)
{
	for (size_t i = 0; i < jr->nfilters; i++) {
		filter_free(jr->filters[i].f);
		free(jr->filters[i].key);
	}
	free(jr->filters);
	memset(jr, 0, sizeof *jr);
}
