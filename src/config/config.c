/*
 * config - config_load(): the jail tree (jail.conf, jail.d/, jail.local),
 * fail2ban.conf/.local and mxjail.conf into plain structs (see config.h).
 *
 * Follows fail2ban's JailsReader/JailReader: every section except INCLUDES
 * (and the internal KNOWN/ copies) is a jail; enabled, backend and filter are
 * read first (defaults false, "auto", ""); for an enabled jail with a filter
 * the filter's resolved options are merged into the jail as
 * "known/<option>" so that %(known/failregex)s in the jail extends the
 * filter's; then every option is interpolated. fail2ban_version and
 * fail2ban_confpath are provided as defaults, as fail2ban does.
 *
 * DIAGNOSTICS: errors in the options fail2ban itself reads (the jail option
 * table) are reported with file:line; options only actions would read are
 * kept raw when they do not interpolate, since fail2ban never reads them
 * from the jail either. Filters are not checked here (config_load_filter).
 */
#include "config/config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/filterload.h"
#include "config/ini.h"
#include "config/interp.h"
#include "core/diag.h"
#include "core/kvlist.h"
#include "core/xmalloc.h"

static int in_list(const char *const *l, const char *s)
{
	for (; *l; l++)
		if (strcmp(*l, s) == 0)
			return 1;
	return 0;
}

/* get() with a default; errors are reported when report is set. */
static char *get_opt(const struct ini *ini, const char *sec, const char *opt, const char *def,
		     int report, struct diag *d, int *failed)
{
	char *v = NULL;
	struct interp_err err;
	int rc = interp_get(ini, sec, opt, NULL, 0, &v, NULL, &err);
	if (rc == INTERP_OK)
		return v;
	if (rc == INTERP_ERROR && report) {
		diag_error(d, err.file, err.line, "%s", err.msg);
		*failed = 1;
	}
	return def ? xstrdup(def) : NULL;
}

static void split_lines(const char *v, char ***out, size_t *n)
{
	size_t cap = 0;
	const char *p = v;
	for (;;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len) {
			*out = xgrow(*out, &cap, *n, sizeof **out);
			(*out)[(*n)++] = xstrndup(p, len);
		}
		if (!nl)
			break;
		p = nl + 1;
	}
}

/* Merges the filter's combined options into the jail section as known/X. */
static void merge_known(struct ini *ini, const char *jail, const char *confdir,
			const char *filter, const char *backend, int enabled)
{
	char *name = NULL;
	struct kvlist bracket = KVLIST_INIT;
	char ebuf[256];
	if (config_spec_parse(filter, &name, &bracket, ebuf, sizeof ebuf) < 0) {
		kvlist_free(&bracket);
		return;
	}
	struct kvlist first = KVLIST_INIT;
	kvlist_set(&first, "enabled", enabled ? "True" : "False");
	kvlist_set(&first, "backend", backend);
	kvlist_set(&first, "filter", filter);
	struct filterload_req rq = {
		.confdir = confdir,
		.name = name,
		.bracket = &bracket,
		.jailcfg = &first,
		.backend = backend,
		.all = 1,
	};
	struct ini_sect comb;
	memset(&comb, 0, sizeof comb);
	char *file = NULL;
	struct diag scratch = DIAG_INIT; /* config_load_filter reports these */
	if (filterload_combined(&rq, &comb, &file, NULL, &scratch) == 0) {
		struct ini_sect *s = ini_sect_find(ini, jail);
		for (size_t i = 0; s && i < comb.n; i++) {
			const char *k = comb.opts[i].key;
			if (strncmp(k, "known/", 6) == 0 || strcmp(k, "__name__") == 0 ||
			    !comb.opts[i].value)
				continue;
			char *kk = xasprintf("known/%s", k);
			ini_opt_copy(s, kk, &comb.opts[i]);
			free(kk);
		}
	}
	diag_clear(&scratch);
	free(file);
	ini_sect_clear(&comb);
	kvlist_free(&first);
	kvlist_free(&bracket);
	free(name);
}

static void load_jail(struct ini *ini, const char *confdir, struct ini_sect *sec,
		      struct jail_conf *j, struct diag *d, int *failed)
{
	const char *name = sec->name;
	j->name = xstrdup(name);
	j->file = sec->file ? xstrdup(sec->file) : NULL;
	j->line = sec->line;
	char *en = get_opt(ini, name, "enabled", "false", 1, d, failed);
	j->enabled = kvlist_bool(en) == 1;
	free(en);
	char *backend = get_opt(ini, name, "backend", "auto", 1, d, failed);
	char *filter = get_opt(ini, name, "filter", "", 1, d, failed);
	if (j->enabled && *filter)
		merge_known(ini, name, confdir, filter, backend, j->enabled);
	sec = ini_sect_find(ini, name);
	/* every option: the section's own, then [DEFAULT]'s */
	for (int pass = 0; pass < 2; pass++) {
		const struct ini_sect *s = pass ? &ini->defaults : sec;
		for (size_t i = 0; i < s->n; i++) {
			const char *k = s->opts[i].key;
			if (strncmp(k, "known/", 6) == 0 || strcmp(k, "__name__") == 0 ||
			    kvlist_get(&j->opts, k))
				continue;
			int report = j->enabled && in_list(filterload_jail_options, k);
			char *v = get_opt(ini, name, k, NULL, report, d, failed);
			if (!v) {
				char *raw = NULL;
				interp_get(ini, name, k, NULL, 1, &raw, NULL, NULL);
				v = raw ? raw : xstrdup("");
			}
			kvlist_set(&j->opts, k, v);
			free(v);
		}
	}
	j->backend = backend;
	j->filter = filter;
	const char *lp = kvlist_get(&j->opts, "logpath");
	if (lp)
		split_lines(lp, &j->logpath, &j->nlogpath);
	const char *act = kvlist_get(&j->opts, "action");
	if (act && *act) {
		char ebuf[256];
		if (config_spec_split(act, &j->action, &j->naction, ebuf, sizeof ebuf) < 0 &&
		    j->enabled) {
			diag_error(d, j->file, j->line, "jail [%s] action: %s", name, ebuf);
			*failed = 1;
		}
	}
}

static void flat_one(const struct ini *ini, const char *sec, const struct ini_opt *o,
		     const char *prefix, struct kvlist *kv)
{
	char *key = prefix ? xasprintf("%s.%s", prefix, o->key) : xstrdup(o->key);
	if (!kvlist_get(kv, key)) {
		char *v = NULL;
		struct interp_err err;
		if (interp_get(ini, sec, o->key, NULL, 0, &v, NULL, &err) != 0)
			v = xstrdup(o->value ? o->value : "");
		kvlist_set(kv, key, v);
		free(v);
	}
	free(key);
}

/* Every own option of every section (interpolated when possible) into kv as
 * "section.key"; or, with only, the options section only sees (its own, then
 * [DEFAULT]'s, as fail2ban reads fail2ban.conf) as plain "key". */
static void load_flat(const struct ini *ini, const char *only, struct kvlist *kv)
{
	for (size_t i = 0; i < ini->n; i++) {
		const struct ini_sect *s = &ini->sects[i];
		if (strncmp(s->name, "KNOWN/", 6) == 0 || strcmp(s->name, "INCLUDES") == 0)
			continue;
		if (only && strcmp(s->name, only) != 0)
			continue;
		for (size_t k = 0; k < s->n; k++)
			flat_one(ini, s->name, &s->opts[k], only ? NULL : s->name, kv);
	}
	if (only && ini_sect_find(ini, only))
		for (size_t k = 0; k < ini->defaults.n; k++)
			flat_one(ini, only, &ini->defaults.opts[k], NULL, kv);
}

int config_load(const char *dir, struct config *out, struct diag *d)
{
	memset(out, 0, sizeof *out);
	char *base = xstrdup(dir);
	size_t bl = strlen(base);
	while (bl > 1 && base[bl - 1] == '/')
		base[--bl] = '\0';
	out->dir = base;
	int failed = 0;

	struct ini ini;
	memset(&ini, 0, sizeof ini);
	char *p = xasprintf("%s/jail", base);
	int rc = ini_read_unit(&ini, p, d);
	free(p);
	if (rc < 0)
		failed = 1;
	if (rc == 0) {
		diag_error(d, base, 0, "expected jail.conf or jail.local in this directory");
		failed = 1;
	}
	ini_opt_set(&ini.defaults, "fail2ban_version", CONFIG_F2B_VERSION, NULL, 0);
	ini_opt_set(&ini.defaults, "fail2ban_confpath", base, NULL, 0);
	size_t cap = 0;
	for (size_t i = 0; i < ini.n; i++) {
		/* load_jail may add sections (never these), so index, not pointer */
		const char *sn = ini.sects[i].name;
		if (strncmp(sn, "KNOWN/", 6) == 0 || strcmp(sn, "INCLUDES") == 0)
			continue;
		out->jails = xgrow(out->jails, &cap, out->njails, sizeof *out->jails);
		struct jail_conf *j = &out->jails[out->njails++];
		memset(j, 0, sizeof *j);
		load_jail(&ini, base, &ini.sects[i], j, d, &failed);
	}
	ini_free(&ini);

	memset(&ini, 0, sizeof ini);
	p = xasprintf("%s/fail2ban", base);
	if (ini_read_unit(&ini, p, d) < 0)
		failed = 1;
	free(p);
	load_flat(&ini, "Definition", &out->general);
	ini_free(&ini);

	memset(&ini, 0, sizeof ini);
	p = xasprintf("%s/mxjail", base);
	if (ini_read_unit(&ini, p, d) < 0)
		failed = 1;
	free(p);
	load_flat(&ini, NULL, &out->mxjail);
	ini_free(&ini);
	return failed ? -1 : 0;
}

void config_jail_clear(struct jail_conf *j)
{
	free(j->name);
	free(j->filter);
	for (size_t k = 0; k < j->nlogpath; k++)
		free(j->logpath[k]);
	free(j->logpath);
	for (size_t k = 0; k < j->naction; k++)
		free(j->action[k]);
	free(j->action);
	free(j->backend);
	kvlist_free(&j->opts);
	free(j->file);
	memset(j, 0, sizeof *j);
}

size_t config_section(const struct config *cfg, const char *name, struct kvlist *out)
{
	size_t n = strlen(name), found = 0;
	for (size_t i = 0; i < cfg->mxjail.n; i++) {
		const struct kv *kv = &cfg->mxjail.v[i];
		if (strncasecmp(kv->key, name, n) == 0 && kv->key[n] == '.') {
			kvlist_set(out, kv->key + n + 1, kv->value);
			found++;
		}
	}
	return found;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->njails; i++)
		config_jail_clear(&c->jails[i]);
	free(c->jails);
	free(c->dir);
	kvlist_free(&c->general);
	kvlist_free(&c->mxjail);
	memset(c, 0, sizeof *c);
}
