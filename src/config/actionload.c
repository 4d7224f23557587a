/*
 * actionload - action.d/NAME into a list of definition-time options (see
 * actionload.h). Mirrors fail2ban 1.0.2's ActionReader + DefinitionInitConfig
 * Reader:
 *  1. init options = bracket options, plus name/actname defaults;
 *  2. variables for %(x)s = the jail's options overlaid by init options;
 *  3. the action's command options come from [Definition] unless a variable
 *     of the same name exists;
 *  4. every [Init] option joins the init options (brackets win) and also
 *     becomes "known/<name>";
 *  5. <tag>s are substituted over the union; tags it lacks are read from
 *     [Definition] (which is how helper options such as _grep_logs reach
 *     actionban); conditional bases, <matches>-like tags, timeout and
 *     bantime are left for run time.
 */
#include "config/actionload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/filterload.h"
#include "config/ini.h"
#include "config/interp.h"
#include "core/diag.h"
#include "core/kvlist.h"
#include "core/xmalloc.h"

/* fail2ban's ActionReader._configOpts */
static const char *const action_options[] = {
	"actionstart", "actionstart_on_demand", "actionstop", "actionflush", "actionreload",
	"actioncheck", "actionrepair", "actionrepair_on_unban", "actionban", "actionprolong",
	"actionreban", "actionunban", "norestored", NULL,
};

/* Left for run time: dynamic values and per-ban values. */
static const char *const runtime_tags[] = {
	"matches", "ipmatches", "ipjailmatches", "timeout", "bantime", NULL,
};

struct al {
	struct ini ini;
	struct kvlist popts;
	struct ini_sect cache;
	const char *file;
};

static int valid_name(const char *n)
{
	if (!*n || strlen(n) > 200 || n[0] == '.')
		return 0;
	for (const char *p = n; *p; p++)
		if (*p == '/' || (unsigned char)*p < 0x20)
			return 0;
	return 1;
}

int actionload(const struct actionload_req *rq, struct kvlist *out, struct diag *d)
{
	struct al a;
	memset(&a, 0, sizeof a);
	struct ini_sect init = {0}, comb = {0};
	char **ignore = NULL;
	size_t nign = 0, capign = 0;
	int rc = -1;
	char *base = NULL;
	if (!valid_name(rq->name)) {
		diag_error(d, NULL, 0, "action name '%s' is not a file name in action.d", rq->name);
		return -1;
	}
	base = xasprintf("%s/action.d/%s", rq->confdir, rq->name);
	int nread = ini_read_unit(&a.ini, base, d);
	if (nread < 0)
		goto out;
	if (nread == 0) {
		diag_error(d, NULL, 0,
			   "action '%s' not found: searched %s/action.d for %s.conf, %s.local and %s.d/",
			   rq->name, rq->confdir, rq->name, rq->name, rq->name);
		goto out;
	}
	a.file = base;
	if (!ini_sect_find(&a.ini, "Definition")) {
		diag_error(d, NULL, 0, "%s.conf: expected a [Definition] section in the action", base);
		goto out;
	}

	/* 1. init options */
	if (rq->bracket)
		for (size_t i = 0; i < rq->bracket->n; i++)
			ini_opt_set(&init, rq->bracket->v[i].key, rq->bracket->v[i].value, NULL, 0);
	const char *jail = rq->jail ? rq->jail : "default";
	const struct ini_opt *nm = ini_opt_find(&init, "name");
	if (!nm || !nm->value)
		nm = ini_opt_set(&init, "name", jail, NULL, 0);
	if (!ini_opt_find(&init, "actname")) {
		char *an;
		const char *n = nm->value;
		size_t jl = strlen(jail);
		if (strcmp(n, jail) == 0)
			an = xstrdup(rq->name);
		else if (strncmp(n, jail, jl) == 0)
			an = xasprintf("%s%s", rq->name, n + jl);
		else
			an = xasprintf("%s-%s", rq->name, n);
		ini_opt_set(&init, "actname", an, NULL, 0);
		free(an);
	}

	/* 2. variables */
	if (rq->jailcfg)
		for (const char *const *k = filterload_jail_options; *k; k++) {
			const char *v = kvlist_get(rq->jailcfg, *k);
			if (v)
				kvlist_set(&a.popts, *k, v);
		}
	for (size_t i = 0; i < init.n; i++)
		kvlist_set(&a.popts, init.opts[i].key, init.opts[i].value ? init.opts[i].value : "");

	/* 3. [Definition] commands */
	for (const char *const *k = action_options; *k; k++) {
		if (kvlist_get(&a.popts, *k))
			continue;
		char *v = NULL;
		const struct ini_opt *where = NULL;
		struct interp_err err;
		int r = interp_get(&a.ini, "Definition", *k, &a.popts, 0, &v, &where, &err);
		if (r == INTERP_ERROR) {
			diag_error(d, err.file ? err.file : base, err.line, "%s", err.msg);
			goto out;
		}
		if (r != INTERP_OK)
			continue;
		struct ini_opt *o = where ? ini_opt_copy(&comb, *k, where) : ini_opt_set(&comb, *k, NULL, NULL, 0);
		free(o->value);
		o->value = v;
	}

	/* 4. [Init] */
	const struct ini_sect *is = ini_sect_find(&a.ini, "Init");
	for (size_t i = 0; is && i < is->n; i++) {
		const char *opt = is->opts[i].key;
		if (strcmp(opt, "__name__") == 0)
			continue;
		int known = strncmp(opt, "known/", 6) == 0;
		char *v = NULL;
		struct interp_err err;
		if (!known || !ini_opt_find(&init, opt)) {
			if (interp_get(&a.ini, "Init", opt, NULL, 0, &v, NULL, &err) != INTERP_OK) {
				diag_error(d, err.file ? err.file : base, err.line, "%s", err.msg);
				free(v);
				goto out;
			}
		}
		if (!known) {
			char *k = xasprintf("known/%s", opt);
			ini_opt_set(&init, k, v, is->opts[i].file, is->opts[i].line);
			free(k);
		}
		if (!ini_opt_find(&init, opt))
			ini_opt_set(&init, opt, v, is->opts[i].file, is->opts[i].line);
		free(v);
	}

	/* 5. tags */
	for (size_t i = 0; i < init.n; i++)
		ini_opt_copy(&comb, init.opts[i].key, &init.opts[i]);
	for (const char *const *k = runtime_tags; *k; k++) {
		ignore = xgrow(ignore, &capign, nign + 1, sizeof *ignore);
		ignore[nign++] = xstrdup(*k);
	}
	for (size_t i = 0; i < comb.n; i++) {
		char *b = interp_conditional_base(comb.opts[i].key);
		if (!b)
			continue;
		ignore = xgrow(ignore, &capign, nign + 1, sizeof *ignore);
		ignore[nign++] = b;
	}
	ignore = xgrow(ignore, &capign, nign + 1, sizeof *ignore);
	ignore[nign] = NULL;
	struct interp_err err;
	struct interp_defsrc src = {&a.ini, &a.popts, &a.cache};
	if (interp_tags(&comb, (const char *const *)ignore, interp_definition_tag, &src, &err) != 0) {
		diag_error(d, err.file ? err.file : base, err.line, "%s", err.msg);
		goto out;
	}
	for (size_t i = 0; i < comb.n; i++)
		if (comb.opts[i].value)
			kvlist_set(out, comb.opts[i].key, comb.opts[i].value);
	rc = 0;
out:
	for (size_t i = 0; i < nign; i++)
		free(ignore[i]);
	free(ignore);
	ini_free(&a.ini);
	ini_sect_clear(&a.cache);
	ini_sect_clear(&init);
	ini_sect_clear(&comb);
	kvlist_free(&a.popts);
	free(base);
	return rc;
}
