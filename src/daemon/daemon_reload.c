/*
 * daemon_reload - `mxjail reload JAIL`: the configuration as read from disk
 * for that one jail, the running configuration for every other jail.
 *
 * INTERFACE: daemon_config_keep_others() rewrites a freshly loaded
 * configuration before the normal reload builds a set from it: every jail
 * section other than the named one is replaced by the options the running
 * jail was built from (struct daemon_jail.opts holds the section's options
 * as they were interpolated then), a jail that is not running stays off, and
 * a running jail whose section disappeared from disk is kept. The reload then
 * carries bans and failure counters over as for a full reload, so only the
 * named jail changes.
 *
 * Filter files are still read from disk for every jail (the set compiles
 * them again); a jail's own settings are what stays as it was.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/xmalloc.h"
#include "daemon/daemon_int.h"

/* Lines of a multi-line option, as the configuration reader splits them. */
static void split_lines(const char *v, char ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	for (const char *p = v; p && *p;) {
		size_t len = strcspn(p, "\n");
		if (len) {
			*out = xrealloc(*out, (*n + 1) * sizeof **out);
			(*out)[(*n)++] = xstrndup(p, len);
		}
		p += len + (p[len] ? 1 : 0);
	}
}

/* The section a running jail was built from. file/line come from the section
 * on disk when there is one (messages), else name the running jail. */
static void jc_from_running(const struct daemon_jail *rj, const struct jail_conf *disk,
			    struct jail_conf *out)
{
	memset(out, 0, sizeof *out);
	out->name = xstrdup(rj->name);
	out->enabled = 1;
	const char *v = kvlist_get(&rj->opts, "filter");
	out->filter = xstrdup(v ? v : "");
	v = kvlist_get(&rj->opts, "backend");
	out->backend = xstrdup(v && *v ? v : "auto");
	split_lines(kvlist_get(&rj->opts, "logpath"), &out->logpath, &out->nlogpath);
	v = kvlist_get(&rj->opts, "action");
	if (v && *v) {
		char err[256];
		if (config_spec_split(v, &out->action, &out->naction, err, sizeof err) < 0) {
			out->action = NULL;
			out->naction = 0;
		}
	}
	kvlist_copy(&out->opts, &rj->opts);
	out->file = xstrdup(disk && disk->file ? disk->file : "(running configuration)");
	out->line = disk ? disk->line : 0;
}

void daemon_config_keep_others(struct daemon *dm, struct config *cfg, const char *jail)
{
	const struct daemon_set *s = dm->set;
	for (size_t i = 0; i < cfg->njails; i++) {
		struct jail_conf *jc = &cfg->jails[i];
		if (strcmp(jc->name, jail) == 0)
			continue;
		const struct daemon_jail *rj = daemon_jail_find(s, jc->name);
		if (!rj) {
			jc->enabled = 0; /* not running: another jail's reload does not start it */
			continue;
		}
		struct jail_conf keep;
		jc_from_running(rj, jc, &keep);
		config_jail_clear(jc);
		*jc = keep;
	}
	/* running jails whose sections are gone from disk keep running */
	for (size_t i = 0; s && i < s->njails; i++) {
		const struct daemon_jail *rj = s->jails[i];
		if (strcmp(rj->name, jail) == 0)
			continue;
		int found = 0;
		for (size_t k = 0; k < cfg->njails && !found; k++)
			found = strcmp(cfg->jails[k].name, rj->name) == 0;
		if (found)
			continue;
		cfg->jails = xrealloc(cfg->jails, (cfg->njails + 1) * sizeof *cfg->jails);
		jc_from_running(rj, NULL, &cfg->jails[cfg->njails++]);
	}
}
