/*
 * daemon_setup - turns the configuration into running parts: one compiled
 * filter per distinct filter definition, one jail per enabled section, one
 * source per log file (or per journal match set) with the jails it feeds.
 *
 * Each source is read once: a line is prepared once per distinct date
 * setting (filter_date_key), run through each distinct filter once, and the
 * failures go to every jail behind that filter on that source (daemon_lines.c,
 * which may match a file's lines in the filter thread). Positions are
 * saved in the store per file path (offset + first-line fingerprint) and as
 * one journal cursor, so a restart neither loses nor re-counts lines; a file
 * without a saved position is read back `findtime` seconds (or from its end
 * with ` tail`).
 *
 * DIAGNOSTICS: configuration errors go into the caller's diag with the jail
 * named; recoverable limits (an action not built yet) are logged as warnings.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "actions/fw_cmd.h"
#include "config/actionload.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"
#include "daemon/daemon_int.h"
#include "jails/ignore.h"
#include "sources/journal.h"
#include "sources/logpath.h"
#include "store/store.h"

#define JOURNAL_CURSOR_NAME "journal"

int daemon_jail_params(struct daemon *dm, const struct kvlist *opts, struct jail_params *p,
		       int *banprefix6, char *err, size_t errlen)
{
	return jail_params_from_opts(opts, dm->maxtracked_default, p, banprefix6, err, errlen);
}

/* ---------- filters ---------- */

static struct daemon_filter *filter_get(struct daemon_set *s, const struct filter_def *def,
					const char *spec, struct diag *d)
{
	char *key = filter_def_key(def);
	for (size_t i = 0; i < s->nfilters; i++)
		if (strcmp(s->filters[i]->key, key) == 0) {
			free(key);
			return s->filters[i];
		}
	struct filter *f = filter_compile(def, d);
	if (!f) {
		free(key);
		return NULL;
	}
	struct daemon_filter *df = xcalloc(1, sizeof *df);
	df->key = key;
	df->spec = xstrdup(spec);
	df->f = f;
	df->journal = filter_is_journal(f);
	if (def->logtimezone && datedetect_parse_tz(def->logtimezone, &df->clk.tz_offset) == 0)
		df->clk.has_tz = 1;
	struct strbuf jm = STRBUF_INIT;
	for (size_t i = 0; i < def->njournalmatch; i++) {
		if (i)
			strbuf_addc(&jm, '\n');
		strbuf_adds(&jm, def->journalmatch[i]);
	}
	df->journalmatch = strbuf_detach(&jm);
	s->filters = xrealloc(s->filters, (s->nfilters + 1) * sizeof *s->filters);
	s->filters[s->nfilters++] = df;
	return df;
}

/* ---------- sources ---------- */

static struct daemon_source *source_get(struct daemon *dm, struct daemon_set *s, const char *path,
					int journal)
{
	for (size_t i = 0; i < s->nsources; i++)
		if (strcmp(s->sources[i]->path, path) == 0)
			return s->sources[i];
	struct daemon_source *src = xcalloc(1, sizeof *src);
	src->d = dm;
	src->path = xstrdup(path);
	src->journal = journal;
	src->since = -1;
	s->sources = xrealloc(s->sources, (s->nsources + 1) * sizeof *s->sources);
	s->sources[s->nsources++] = src;
	return src;
}

static void source_attach(struct daemon_source *src, struct daemon_jail *j, int tail)
{
	struct daemon_tap *t = NULL;
	for (size_t i = 0; i < src->ntaps; i++)
		if (src->taps[i].flt == j->flt)
			t = &src->taps[i];
	if (!t) {
		src->taps = xrealloc(src->taps, (src->ntaps + 1) * sizeof *src->taps);
		t = &src->taps[src->ntaps];
		memset(t, 0, sizeof *t);
		t->flt = j->flt;
		t->share = src->ntaps++;
	}
	t->jails = xrealloc(t->jails, (t->njails + 1) * sizeof *t->jails);
	t->jails[t->njails++] = j;
	daemon_source_taps_ready(src);
	if (tail)
		src->tail = 1;
	double since = daemon_now() - j->p.findtime;
	if (src->since < 0 || since < src->since)
		src->since = since;
}

/* ---------- jails ---------- */

static int has_glob(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* Expands logpath lines; *any_exist says whether a file was found. Patterns
 * without glob characters are kept even when missing: the file may appear. */
static int expand_logpaths(const struct jail_conf *jc, struct daemon_jail *j, int *tail,
			   int *any_exist, struct diag *d)
{
	*any_exist = 0;
	*tail = 0;
	for (size_t i = 0; i < jc->nlogpath; i++) {
		struct logpath lp;
		char err[256];
		int r = logpath_parse(jc->logpath[i], &lp, err, sizeof err);
		if (r == 1)
			continue;
		if (r < 0) {
			diag_error(d, jc->file, jc->line, "jail [%s]: logpath: %s", jc->name, err);
			return -1;
		}
		if (lp.tail)
			*tail = 1;
		if (has_glob(lp.pattern)) {
			j->globs = xrealloc(j->globs, (j->nglobs + 1) * sizeof *j->globs);
			j->globtail = xrealloc(j->globtail, (j->nglobs + 1) * sizeof *j->globtail);
			j->globtail[j->nglobs] = lp.tail;
			j->globs[j->nglobs++] = xstrdup(lp.pattern);
		}
		char **list = NULL;
		size_t n = 0;
		if (logpath_glob(lp.pattern, &list, &n, err, sizeof err) < 0) {
			log_warnx("jail [%s]: logpath %s: %s", jc->name, lp.pattern, err);
			n = 0;
		}
		if (n) {
			*any_exist = 1;
			for (size_t k = 0; k < n; k++) {
				j->files = xrealloc(j->files, (j->nfiles + 1) * sizeof *j->files);
				j->files[j->nfiles++] = xstrdup(list[k]);
			}
		} else if (!has_glob(lp.pattern)) {
			j->files = xrealloc(j->files, (j->nfiles + 1) * sizeof *j->files);
			j->files[j->nfiles++] = xstrdup(lp.pattern);
		} else {
			log_warnx("jail [%s]: no file matches logpath %s yet", jc->name, lp.pattern);
		}
		logpath_free_list(list, n);
		free(lp.pattern);
	}
	return 0;
}

/* backend = systemd[journalpath=DIR, journalfiles=GLOBS, journalflags=N]:
 * fail2ban's options for its journal reader. All journal jails share one
 * handle, so the first jail's options are used; a jail asking for other
 * ones is told so. */
static int journal_backend_opts(struct daemon_set *s, const struct jail_conf *jc, const char *be,
				struct diag *d)
{
	char *name = NULL, err[256];
	struct kvlist o = KVLIST_INIT;
	if (config_spec_parse(be, &name, &o, err, sizeof err) < 0) {
		diag_error(d, jc->file, jc->line, "jail [%s]: backend '%s': %s", jc->name, be, err);
		free(name);
		kvlist_free(&o);
		return -1;
	}
	free(name);
	int rc = 0;
	for (size_t i = 0; i < o.n && rc == 0; i++) {
		const char *k = o.v[i].key, *v = o.v[i].value;
		if (strcmp(k, "journalflags") == 0) {
			char *end;
			long f = strtol(v, &end, 10);
			if (!*v || *end || f < 0 || f > 0xffff) {
				diag_error(d, jc->file, jc->line, "jail [%s]: journalflags=%s is not a number",
					   jc->name, v);
				rc = -1;
			}
		} else if (strcmp(k, "journalpath") != 0 && strcmp(k, "journalfiles") != 0) {
			log_warnx("jail [%s]: backend option %s is not supported; ignored", jc->name, k);
		}
	}
	if (rc == 0 && !s->jopts_jail) {
		kvlist_copy(&s->jopts, &o);
		s->jopts_jail = xstrdup(jc->name);
	} else if (rc == 0) {
		int same = s->jopts.n == o.n;
		for (size_t i = 0; i < o.n && same; i++) {
			const char *v = kvlist_get(&s->jopts, o.v[i].key);
			same = v && strcmp(v, o.v[i].value) == 0;
		}
		if (!same)
			log_warnx("jail [%s]: journal jails share one handle; it is opened with the "
				  "backend options of jail [%s], not '%s'",
				  jc->name, s->jopts_jail, be);
	}
	kvlist_free(&o);
	return rc;
}

static void jail_free_one(struct daemon_jail *j)
{
	if (!j)
		return;
	free(j->name);
	if (j->j)
		jail_free(j->j);
	jail_incr_free(&j->p.incr);
	for (size_t i = 0; i < j->nfiles; i++)
		free(j->files[i]);
	free(j->files);
	for (size_t i = 0; i < j->nglobs; i++)
		free(j->globs[i]);
	free(j->globs);
	free(j->globtail);
	free(j->fw_port);
	free(j->fw_protocol);
	free(j->fw_path);
	free(j->fw_dlist);
	free(j->fw_chain);
	free(j->fw_blocktype);
	free(j->actions);
	for (size_t i = 0; i < j->ncmds; i++)
		fw_cmd_release(j->cmds[i]);
	free(j->cmds);
	ignore_free(j->ign);
	kvlist_free(&j->opts);
	free(j);
}

static void cmd_report(void *ctx, int level, const char *msg)
{
	(void)ctx;
	/* from the worker thread; the logger writes each line with one call */
	if (level == 0)
		log_msg(LOG_LVL_ERROR, "%s", msg);
	else if (level == 1)
		log_warnx("%s", msg);
	else if (level == 2)
		log_info("%s", msg);
	else
		log_debug("%s", msg);
}

/* A name that is not a native banaction: action.d/NAME's shell commands. */
static int jail_cmd_action(struct daemon *dm, const struct jail_conf *jc, struct daemon_jail *j,
			   const char *name, const struct kvlist *aopts, struct diag *d)
{
	struct kvlist props = KVLIST_INIT;
	struct diag ad = DIAG_INIT;
	struct actionload_req rq = {dm->confdir, name, jc->name, aopts, &jc->opts};
	int rc = actionload(&rq, &props, &ad);
	for (size_t i = 0; i < ad.n; i++)
		diag_error(d, jc->file, jc->line, "jail [%s]: action '%s': %s", jc->name, name,
			   ad.items[i].text);
	diag_clear(&ad);
	if (rc < 0) {
		kvlist_free(&props);
		return -1;
	}
	if (!dm->cmdq)
		dm->cmdq = fw_cmdq_new(0, cmd_report, dm);
	char err[512];
	struct fw_cmd *c = fw_cmd_new(dm->cmdq, jc->name, name, &props, err, sizeof err);
	kvlist_free(&props);
	if (!c) {
		diag_error(d, jc->file, jc->line, "jail [%s]: action '%s': %s", jc->name, name, err);
		return -1;
	}
	j->cmds = xrealloc(j->cmds, (j->ncmds + 1) * sizeof *j->cmds);
	j->cmds[j->ncmds++] = c;
	return 0;
}

size_t daemon_fw_all(struct daemon *dm, struct fw **out, size_t max)
{
	size_t n = 0;
	if (dm->fw_open && n < max)
		out[n++] = &dm->fw;
	for (size_t i = 0; i < dm->nxfw && n < max; i++)
		out[n++] = &dm->xfw[i]->fw;
	return n;
}

void daemon_fw_bind(struct daemon *dm, struct daemon_jail *j)
{
	j->fw = NULL;
	if (!j->has_fw || !dm->fw_open)
		return;
	if (dm->dry_run || !j->fw_be || j->fw_be == &fw_nft_backend) {
		j->fw = &dm->fw;
		return;
	}
	char *key = xasprintf("%s|%s|%s|%s|%d|%s", j->fw_be->name, j->fw_path ? j->fw_path : "",
			      j->fw_dlist ? j->fw_dlist : "", j->fw_chain ? j->fw_chain : "",
			      j->fw_newonly, j->fw_blocktype ? j->fw_blocktype : "");
	for (size_t i = 0; i < dm->nxfw; i++)
		if (strcmp(dm->xfw[i]->key, key) == 0) {
			j->fw = &dm->xfw[i]->fw;
			free(key);
			return;
		}
	struct fw_options o = dm->fwo;
	o.path = j->fw_path;
	o.daemon_list = j->fw_dlist;
	o.chain = j->fw_chain;
	o.newonly = j->fw_newonly;
	o.blocktype = j->fw_blocktype;
	struct daemon_xfw *x = xcalloc(1, sizeof *x);
	char err[512];
	if (fw_open(&x->fw, j->fw_be, &o, err, sizeof err) < 0) {
		log_warnx("jail [%s]: firewall backend %s: %s; this jail does not block", j->name,
			  j->fw_be->name, err);
		free(x);
		free(key);
		return;
	}
	x->key = key;
	dm->xfw = xrealloc(dm->xfw, (dm->nxfw + 1) * sizeof *dm->xfw);
	dm->xfw[dm->nxfw++] = x;
	log_info("firewall backend %s opened for jail [%s]%s%s", j->fw_be->name, j->name,
		 j->fw_path ? ": " : "", j->fw_path ? j->fw_path : "");
	j->fw = &x->fw;
}

void daemon_actions_start(struct daemon *dm, struct daemon_set *s, struct daemon_set *old)
{
	for (size_t i = 0; old && i < old->njails; i++) {
		struct daemon_jail *oj = old->jails[i];
		struct daemon_jail *nj = daemon_jail_find(s, oj->name);
		for (size_t k = 0; k < oj->ncmds; k++) {
			struct fw_cmd *oc = oj->cmds[k];
			int carried = 0;
			for (size_t m = 0; nj && m < nj->ncmds && !carried; m++) {
				struct fw_cmd *nc = nj->cmds[m];
				if (strcmp(fw_cmd_name(nc), fw_cmd_name(oc)) != 0)
					continue;
				/* same options: keep the running one (started state, bans) */
				if (!fw_cmd_same(oc, fw_cmd_props(nc)))
					continue;
				nj->cmds[m] = oc;
				oj->cmds[k] = nc;
				carried = 1;
			}
			if (!carried) {
				fw_cmd_flush(oj->cmds[k]);
				fw_cmd_stop(oj->cmds[k]);
			}
		}
	}
	(void)dm;
	for (size_t i = 0; i < s->njails; i++)
		for (size_t k = 0; k < s->jails[i]->ncmds; k++)
			fw_cmd_start(s->jails[i]->cmds[k]);
}

/* Picks the jail's actions: one native firewall action (the first), and any
 * number of action.d command actions. */
static int jail_actions(struct daemon *dm, const struct jail_conf *jc, struct daemon_jail *j,
			struct diag *d)
{
	char **items = NULL;
	size_t n = 0;
	char err[512];
	struct strbuf names = STRBUF_INIT;
	const char *port = kvlist_get(&jc->opts, "port");
	const char *proto = kvlist_get(&jc->opts, "protocol");
	struct fw_jail base = {jc->name, port, proto, 0};
	char *fallback = NULL;
	/* fail2ban: an `action =` that is set but empty means no actions (the
	 * jail bans, records and logs, nothing is blocked); only a jail without
	 * the option at all gets mxjail's default banaction */
	int explicit_none = jc->naction == 0 && kvlist_get(&jc->opts, "action");
	if (explicit_none)
		log_info("jail [%s]: action is empty: bans are recorded and logged, nothing is blocked",
			 jc->name);
	if (jc->naction == 0 && !explicit_none && dm->default_banaction) {
		fallback = dm->default_banaction;
		items = xmalloc(sizeof *items);
		items[0] = xstrdup(fallback);
		n = 1;
	} else {
		for (size_t i = 0; i < jc->naction; i++) {
			char **it = NULL;
			size_t m = 0;
			if (config_spec_split(jc->action[i], &it, &m, err, sizeof err) < 0) {
				diag_error(d, jc->file, jc->line, "jail [%s]: action: %s", jc->name, err);
				continue;
			}
			items = xrealloc(items, (n + m + 1) * sizeof *items);
			for (size_t k = 0; k < m; k++)
				items[n++] = it[k];
			free(it);
		}
	}
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		char *name = NULL;
		struct kvlist aopts = KVLIST_INIT;
		if (config_spec_parse(items[i], &name, &aopts, err, sizeof err) < 0) {
			diag_error(d, jc->file, jc->line, "jail [%s]: action '%s': %s", jc->name, items[i],
				   err);
			rc = -1;
			goto next;
		}
		if (names.len)
			strbuf_adds(&names, " ");
		strbuf_adds(&names, name);
		struct fw_action fa;
		int r = fw_action_resolve(name, &aopts, &base, &fa, err, sizeof err);
		if (r == 0) {
			if (j->has_fw) {
				log_warnx("jail [%s]: only one firewall action per jail is used; '%s' "
					  "is ignored",
					  jc->name, name);
			} else {
				j->has_fw = 1;
				j->fw_be = fa.backend;
				j->fw_path = fa.opts.path ? xstrdup(fa.opts.path) : NULL;
				j->fw_dlist = fa.opts.daemon_list ? xstrdup(fa.opts.daemon_list) : NULL;
				j->fw_chain = fa.opts.chain ? xstrdup(fa.opts.chain) : NULL;
				j->fw_newonly = fa.opts.newonly;
				j->fw_blocktype = fa.opts.blocktype ? xstrdup(fa.opts.blocktype) : NULL;
				if (fa.backend == &fw_hostsdeny_backend) {
					const char *flt = jc->filter && *jc->filter ? jc->filter : "";
					const char *note = fw_hostsdeny_libwrap_note(jc->name);
					if (!note)
						note = fw_hostsdeny_libwrap_note(flt);
					if (note)
						log_warnx("jail [%s]: action hostsdeny: %s; consider nftables",
							  jc->name, note);
				}
				j->fw_port = fa.jail.port ? xstrdup(fa.jail.port) : NULL;
				j->fw_protocol = fa.jail.protocol ? xstrdup(fa.jail.protocol) : NULL;
				j->fwj.reject = fa.jail.reject;
			}
		} else if (r == -ENOSYS) {
			log_warnx("jail [%s]: %s; this jail counts failures and logs bans but does not "
				  "block them",
				  jc->name, err);
		} else if (r == -ENOENT) {
			if (jail_cmd_action(dm, jc, j, name, &aopts, d) < 0)
				rc = -1;
		} else {
			diag_error(d, jc->file, jc->line, "jail [%s]: action '%s': %s", jc->name, name,
				   err);
			rc = -1;
		}
	next:
		free(name);
		kvlist_free(&aopts);
		free(items[i]);
	}
	free(items);
	j->actions = strbuf_detach(&names);
	j->fwj.name = j->name;
	j->fwj.port = j->fw_port;
	j->fwj.protocol = j->fw_protocol;
	return rc;
}

static struct daemon_jail *jail_build(struct daemon *dm, struct daemon_set *s,
				      const struct jail_conf *jc, struct diag *d)
{
	char err[512];
	struct daemon_jail *j = xcalloc(1, sizeof *j);
	j->name = xstrdup(jc->name);
	j->d = dm;
	kvlist_copy(&j->opts, &jc->opts);
	if (daemon_jail_params(dm, &jc->opts, &j->p, &j->banprefix6, err, sizeof err) < 0) {
		diag_error(d, jc->file, jc->line, "jail [%s]: %s", jc->name, err);
		goto fail;
	}
	/* backend = policy: no log and no filter; the policy service feeds the
	 * jail its reject/defer events (daemon_policy.c, policyevents = ...) */
	int policy_jail = jc->backend && strcasecmp(jc->backend, "policy") == 0;
	if (!policy_jail && (!jc->filter || !*jc->filter)) {
		diag_error(d, jc->file, jc->line, "jail [%s]: no filter (set filter = NAME)", jc->name);
		goto fail;
	}
	const char *be = jc->backend && *jc->backend ? jc->backend : "auto";
	int journal = !policy_jail && strncasecmp(be, "systemd", 7) == 0;
	int tail = 0, any = 0;
	if (policy_jail)
		goto checks;
	if (!journal) {
		if (expand_logpaths(jc, j, &tail, &any, d) < 0)
			goto fail;
		if (!any && strcasecmp(be, "auto") == 0) {
			log_info("jail [%s]: no log file found (%s); backend auto reads the systemd "
				 "journal",
				 jc->name, jc->nlogpath ? jc->logpath[0] : "no logpath");
			journal = 1;
		} else if (j->nfiles == 0) {
			diag_error(d, jc->file, jc->line, "jail [%s]: no logpath to read", jc->name);
			goto fail;
		}
	}
	j->journal = journal;
	if (journal && strchr(be, '[') && journal_backend_opts(s, jc, be, d) < 0)
		goto fail;
	struct kvlist fopts = KVLIST_INIT;
	kvlist_copy(&fopts, &jc->opts);
	if (journal)
		kvlist_set(&fopts, "backend", strncasecmp(be, "systemd", 7) == 0 ? be : "systemd");
	struct filter_def def = {0};
	struct diag fd = DIAG_INIT;
	if (config_load_filter(dm->confdir, jc->filter, &fopts, &def, &fd) == 0)
		j->flt = filter_get(s, &def, jc->filter, &fd);
	filter_def_free(&def);
	kvlist_free(&fopts);
	for (size_t i = 0; i < fd.n; i++) {
		if (fd.items[i].level == DIAG_ERROR)
			diag_error(d, NULL, 0, "jail [%s]: %s", jc->name, fd.items[i].text);
		else
			diag_warn(d, NULL, 0, "jail [%s]: %s", jc->name, fd.items[i].text);
	}
	size_t ferr = fd.nerrors;
	diag_clear(&fd);
	if (ferr || !j->flt) {
		diag_error(d, jc->file, jc->line, "jail [%s]: filter '%s' cannot be used", jc->name,
			   jc->filter);
		goto fail;
	}
	if (journal && !j->flt->journal)
		log_warnx("jail [%s]: filter '%s' is not set up for the journal", jc->name, jc->filter);
	if (journal && !*j->flt->journalmatch)
		log_warnx("jail [%s]: no journalmatch: every journal entry goes through filter '%s'",
			  jc->name, jc->filter);
checks:;
	struct diag igd = DIAG_INIT;
	j->ign = daemon_ignore_new(&jc->opts, NULL, jc->file, jc->line, &igd);
	for (size_t i = 0; i < igd.n; i++) {
		if (igd.items[i].level == DIAG_ERROR)
			diag_error(d, NULL, 0, "jail [%s]: %s", jc->name, igd.items[i].text);
		else
			log_warnx("jail [%s]: %s", jc->name, igd.items[i].text);
	}
	size_t igerr = igd.nerrors;
	diag_clear(&igd);
	if (igerr)
		goto fail;
	if (jail_actions(dm, jc, j, d) < 0)
		goto fail;
	j->j = jail_new(&j->p);
	jail_spool_dir(j->j, dm->statedir); /* evidence lines on disk, not in the heap */
	if (journal) {
		/* one journal match set per distinct filter */
		char key[64] = "journal";
		for (size_t i = 0; i < s->nfilters; i++)
			if (s->filters[i] == j->flt)
				snprintf(key, sizeof key, "journal:%zu", i);
		source_attach(source_get(dm, s, key, 1), j, 0);
	} else {
		for (size_t i = 0; i < j->nfiles; i++)
			source_attach(source_get(dm, s, j->files[i], 0), j, tail);
	}
	return j;
fail:
	jail_free_one(j);
	return NULL;
}

struct daemon_set *daemon_set_build(struct daemon *dm, const struct config *cfg, struct diag *d)
{
	struct daemon_set *s = xcalloc(1, sizeof *s);
	for (size_t i = 0; i < cfg->njails; i++) {
		const struct jail_conf *jc = &cfg->jails[i];
		if (!jc->enabled)
			continue;
		struct daemon_jail *j = jail_build(dm, s, jc, d);
		if (!j)
			continue;
		s->jails = xrealloc(s->jails, (s->njails + 1) * sizeof *s->jails);
		s->jails[s->njails++] = j;
	}
	/* taps with the same date settings share one preparation of each line */
	for (size_t k = 0; k < s->nsources; k++) {
		struct daemon_source *src = s->sources[k];
		for (size_t i = 0; i < src->ntaps; i++) {
			src->taps[i].share = i;
			if (src->journal)
				continue;
			for (size_t m = 0; m < i; m++)
				if (src->taps[m].share == m &&
				    strcmp(filter_date_key(src->taps[m].flt->f),
					   filter_date_key(src->taps[i].flt->f)) == 0) {
					src->taps[i].share = m;
					break;
				}
		}
		daemon_source_taps_ready(src);
	}
	return s;
}

struct daemon_jail *daemon_jail_find(const struct daemon_set *s, const char *name)
{
	for (size_t i = 0; s && i < s->njails; i++)
		if (strcmp(s->jails[i]->name, name) == 0)
			return s->jails[i];
	return NULL;
}

/* ---------- reading ---------- */

static void on_file_line(const char *line, size_t len, double time, void *arg)
{
	(void)time;
	daemon_line(arg, line, len, -1.0);
}

static void on_file_done(void *arg)
{
	struct daemon_source *src = arg;
	daemon_lines_drain(src->d);
}

static void on_journal_line(const char *line, size_t len, double time, void *arg)
{
	daemon_line(arg, line, len, time >= 0 ? time : daemon_now());
}

/* Date of a line for the read-back search, as the source's first filter sees it. */
static double source_date(const char *line, size_t len, void *arg)
{
	struct daemon_source *src = arg;
	struct daemon_tap *t = &src->taps[0];
	struct filter_line fl;
	t->flt->clk.now = daemon_now();
	filter_prepare(t->flt->f, line, len, -1.0, &t->flt->clk, &fl);
	return fl.found == 1 ? fl.t : -1.0;
}

/* The store keeps a position's fingerprint as bytes: fp (8, little endian)
 * followed by fplen (4). */
static void pos_to_store(const struct filesrc_pos *p, struct store_pos *sp)
{
	memset(sp, 0, sizeof *sp);
	sp->inode = p->inode;
	sp->offset = p->offset;
	for (int i = 0; i < 8; i++)
		sp->fp[i] = (unsigned char)(p->fp >> (8 * i));
	for (int i = 0; i < 4; i++)
		sp->fp[8 + i] = (unsigned char)(p->fplen >> (8 * i));
	sp->fplen = 12;
}

static int pos_from_store(const struct store_pos *sp, struct filesrc_pos *p)
{
	if (sp->fplen != 12)
		return -1;
	p->inode = sp->inode;
	p->offset = sp->offset;
	p->fp = 0;
	p->fplen = 0;
	for (int i = 0; i < 8; i++)
		p->fp |= (uint64_t)sp->fp[i] << (8 * i);
	for (int i = 0; i < 4; i++)
		p->fplen |= (uint32_t)sp->fp[8 + i] << (8 * i);
	return 0;
}

/* Starts following one file source (its saved position, else since/tail). */
static void source_start_file(struct daemon *dm, struct daemon_source *src)
{
	struct store_pos sp;
	struct filesrc_pos pos = {0};
	int have = store_pos_get(dm->store, src->path, &sp) == 0 && pos_from_store(&sp, &pos) == 0;
	pos.path = src->path;
	if (have) {
		src->saved = pos;
		src->have_saved = 1;
	}
	struct filesrc_start st = {
		.mode = src->tail ? FILESRC_TAIL : FILESRC_SINCE,
		.pos = have ? &pos : NULL,
		.since = src->since,
		.date_cb = source_date,
		.date_arg = src,
	};
	src->fs = filesrc_new(dm->fset, src->path, &st, on_file_line, src);
	filesrc_set_done(src->fs, on_file_done);
	log_info("reading %s%s", src->path,
		 have ? " from its saved position" : src->tail ? " from its end" : "");
}

void daemon_logpaths_poll(struct daemon *dm)
{
	struct daemon_set *s = dm->set;
	for (size_t i = 0; s && i < s->njails; i++) {
		struct daemon_jail *j = s->jails[i];
		if (j->journal)
			continue;
		for (size_t g = 0; g < j->nglobs; g++) {
			char **list = NULL;
			size_t n = 0;
			char err[256];
			if (logpath_glob(j->globs[g], &list, &n, err, sizeof err) < 0)
				continue;
			for (size_t k = 0; k < n; k++) {
				int known = 0;
				for (size_t f = 0; f < j->nfiles && !known; f++)
					known = strcmp(j->files[f], list[k]) == 0;
				if (known)
					continue;
				j->files = xrealloc(j->files, (j->nfiles + 1) * sizeof *j->files);
				j->files[j->nfiles++] = xstrdup(list[k]);
				struct daemon_source *src = source_get(dm, s, list[k], 0);
				source_attach(src, j, j->globtail[g]);
				log_notice("[%s] new log file %s (logpath %s)", j->name, list[k], j->globs[g]);
				if (!src->fs)
					source_start_file(dm, src);
			}
			logpath_free_list(list, n);
		}
	}
}

void daemon_set_start(struct daemon *dm, struct daemon_set *s)
{
	int any_journal = 0;
	for (size_t i = 0; i < s->nsources; i++) {
		struct daemon_source *src = s->sources[i];
		if (src->journal) {
			any_journal = 1;
			continue;
		}
		source_start_file(dm, src);
	}
	if (!any_journal)
		return;
	char err[512];
	struct journalsrc_opts jo = {.directory = dm->o.journal_dir};
	/* backend = systemd[...] options (run --journal-dir overrides them) */
	char **files = NULL;
	size_t nfiles = 0;
	if (!jo.directory && s->jopts_jail) {
		const char *v = kvlist_get(&s->jopts, "journalflags");
		if (v)
			jo.flags = (int)strtol(v, NULL, 10);
		jo.directory = kvlist_get(&s->jopts, "journalpath");
		v = kvlist_get(&s->jopts, "journalfiles");
		/* fail2ban: words split at blanks and commas, each a glob */
		for (const char *p = v; p && *p;) {
			size_t n = strcspn(p, " \t\n,");
			if (n) {
				char *pat = xstrndup(p, n), **list = NULL;
				size_t nl = 0;
				char gerr[256];
				if (logpath_glob(pat, &list, &nl, gerr, sizeof gerr) == 0)
					for (size_t k = 0; k < nl; k++) {
						files = xrealloc(files, (nfiles + 1) * sizeof *files);
						files[nfiles++] = xstrdup(list[k]);
					}
				logpath_free_list(list, nl);
				free(pat);
			}
			p += n + (p[n] ? 1 : 0);
		}
		if (v && !nfiles)
			log_warnx("journal: journalfiles=%s matches no file", v);
		jo.files = (const char *const *)files;
		jo.nfiles = nfiles;
	}
	dm->jsrc = journalsrc_new(dm->loop, &jo, err, sizeof err);
	for (size_t i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	if (!dm->jsrc) {
		log_warnx("journal: %s; journal jails read nothing", err);
		return;
	}
	double since = -1;
	for (size_t i = 0; i < s->nsources; i++) {
		struct daemon_source *src = s->sources[i];
		if (!src->journal)
			continue;
		if (journalsrc_add(dm->jsrc, src->taps[0].flt->journalmatch, on_journal_line, src, err,
				   sizeof err) < 0)
			log_warnx("journal: %s", err);
		if (since < 0 || src->since < since)
			since = src->since;
	}
	char cursor[1024];
	int have = store_cursor_get(dm->store, JOURNAL_CURSOR_NAME, cursor, sizeof cursor) == 0;
	struct journalsrc_start st = {have ? cursor : NULL, since};
	if (journalsrc_start(dm->jsrc, &st, err, sizeof err) < 0)
		log_warnx("journal: %s", err);
	else
		log_info("reading the journal%s", have ? " from its saved cursor" : "");
}

void daemon_save_positions(struct daemon *dm)
{
	struct daemon_set *s = dm->set;
	for (size_t i = 0; s && i < s->nsources; i++) {
		struct daemon_source *src = s->sources[i];
		if (!src->fs)
			continue;
		struct filesrc_pos p;
		filesrc_get_pos(src->fs, &p);
		if (src->have_saved && p.inode == src->saved.inode && p.offset == src->saved.offset &&
		    p.fp == src->saved.fp && p.fplen == src->saved.fplen)
			continue;
		struct store_pos sp;
		pos_to_store(&p, &sp);
		if (store_pos_set(dm->store, src->path, &sp) < 0) {
			log_warnx("state: saving the position of %s: %s", src->path,
				  store_error(dm->store));
			continue;
		}
		src->saved = p;
		src->saved.path = src->path;
		src->have_saved = 1;
	}
	if (dm->jsrc) {
		char *c = journalsrc_cursor(dm->jsrc);
		if (c && (!dm->jcursor || strcmp(c, dm->jcursor) != 0)) {
			if (store_cursor_set(dm->store, JOURNAL_CURSOR_NAME, c) == 0) {
				free(dm->jcursor);
				dm->jcursor = c;
				c = NULL;
			}
		}
		free(c);
	}
}

void daemon_set_stop_sources(struct daemon *dm, struct daemon_set *s)
{
	if (!s)
		return;
	daemon_lines_drain(dm);
	daemon_save_positions(dm);
	for (size_t i = 0; i < s->nsources; i++)
		s->sources[i]->fs = filesrc_free(s->sources[i]->fs);
	dm->jsrc = journalsrc_free(dm->jsrc);
}

struct daemon_set *daemon_set_free(struct daemon_set *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->nsources; i++) {
		struct daemon_source *src = s->sources[i];
		filesrc_free(src->fs);
		for (size_t k = 0; k < src->ntaps; k++)
			free(src->taps[k].jails);
		free(src->taps);
		free(src->ftaps);
		free(src->path);
		free(src);
	}
	free(s->sources);
	kvlist_free(&s->jopts);
	free(s->jopts_jail);
	for (size_t i = 0; i < s->njails; i++)
		jail_free_one(s->jails[i]);
	free(s->jails);
	for (size_t i = 0; i < s->nfilters; i++) {
		filter_free(s->filters[i]->f);
		free(s->filters[i]->key);
		free(s->filters[i]->spec);
		free(s->filters[i]->journalmatch);
		free(s->filters[i]);
	}
	free(s->filters);
	free(s);
	return NULL;
}
