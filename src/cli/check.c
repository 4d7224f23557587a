/*
 * check - `mxjail check [-c DIR]`: reads the whole configuration and tells
 * everything `mxjail run` would refuse or warn about, each with file:line, then
 * prints "configuration OK" (exit 0) or exits 1 when there was an error.
 *
 * What is checked: every enabled jail's filter is loaded and compiled (its
 * messages are prefixed "jail [NAME]: " and followed by one naming the jail
 * section's file:line), the jail's numeric options, jails with `backend =
 * policy` (no filter or log needed; `policyevents` must name policy checks),
 * [mxjail] metrics / metrics_token, [cluster], and [policy], [greylist],
 * [ratelimit], [spoof] through the same parsers the daemon uses (the policy
 * engine is built without a store, as a reload checks it). mxjail.conf errors
 * point at the key's line when the parser names the key, else the section's.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "cli/cli.h"
#include "cluster/cluster.h"
#include "config/config.h"
#include "config/ini.h"
#include "core/diag.h"
#include "core/kvlist.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "filters/fbatch.h"
#include "filters/filter.h"
#include "jails/jail.h"
#include "metrics/http.h"
#include "policy/policy.h"

/* The checks a policy jail can listen to (policy.h on_event), plus "all". */
static const char *const policy_checks[] = {"banned", "spoof", "greylist", "ratelimit", "all"};

/*
 * A filter's own messages name the filter file; with many jails sharing a tree
 * the reader also needs to know which jail asked for that filter, and where
 * that jail is defined, to fix (or disable) the right one.
 */
static void add_jail_diags(struct diag *d, const struct jail_conf *j, struct diag *fd)
{
	for (size_t i = 0; i < fd->n; i++) {
		const char *text = fd->items[i].text;
		if (fd->items[i].level == DIAG_ERROR)
			diag_error(d, NULL, 0, "jail [%s]: %s", j->name, text);
		else
			diag_warn(d, NULL, 0, "jail [%s]: %s", j->name, text);
	}
	if (fd->nerrors)
		diag_error(d, j->file, j->line, "jail [%s]: filter '%s' cannot be used (%zu error%s above)",
			   j->name, j->filter, fd->nerrors, fd->nerrors == 1 ? "" : "s");
	diag_clear(fd);
}

/* ---------- mxjail.conf locations ---------- */

/*
 * config_load flattens mxjail.conf into "section.key" without origins, so
 * the unit is read once more here only to point messages at lines. Its read
 * errors were already reported by config_load.
 */
struct where {
	struct ini ini;
	char *fallback;               /* DIR/mxjail.conf */
};

static void where_load(struct where *w, const char *dir)
{
	memset(w, 0, sizeof *w);
	struct diag scratch = DIAG_INIT;
	char *base = xasprintf("%s/mxjail", dir);
	ini_read_unit(&w->ini, base, &scratch);
	diag_clear(&scratch);
	free(base);
	w->fallback = xasprintf("%s/mxjail.conf", dir);
}

static void where_free(struct where *w)
{
	ini_free(&w->ini);
	free(w->fallback);
}

/* Where sect/key was set (key may be NULL): the key's line, the section's,
 * or the file as a whole. */
static void where_at(const struct where *w, const char *sect, const char *key,
		     const char **file, unsigned *line)
{
	*file = w->fallback;
	*line = 0;
	struct ini_sect *s = ini_sect_find(&w->ini, sect);
	if (!s)
		return;
	const struct ini_opt *o = key ? ini_opt_find(s, key) : NULL;
	if (o && o->file) {
		*file = o->file;
		*line = o->line;
	} else if (s->file) {
		*file = s->file;
		*line = s->line;
	}
}

/* The parsers' messages read "mxjail.conf [SECT] KEY: ..."; the section and
 * key in them find the line. Other texts get the section's line. */
static void report(struct diag *d, const struct where *w, const char *sect, int error,
		   const char *msg)
{
	char key[64] = "";
	const char *p = strstr(msg, "mxjail.conf [");
	if (p) {
		p = strchr(p, ']');
		if (p && p[1] == ' ') {
			size_t n = strcspn(p + 2, ": ");
			if (n < sizeof key && p[2 + n] == ':') {
				memcpy(key, p + 2, n);
				key[n] = '\0';
			}
		}
	}
	const char *file;
	unsigned line;
	where_at(w, sect, *key ? key : NULL, &file, &line);
	if (error)
		diag_error(d, file, line, "%s", msg);
	else
		diag_warn(d, file, line, "%s", msg);
}

static const char *opt(const struct config *cfg, const char *key)
{
	const char *v = kvlist_get(&cfg->mxjail, key);
	return v && *v ? v : NULL;
}

/* ---------- [mxjail] filter_thread ---------- */

static void check_filter_thread(struct diag *d, const struct where *w, const struct config *cfg)
{
	const char *v = opt(cfg, "mxjail.filter_thread");
	if (fbatch_setting(v) >= 0)
		return;
	const char *file;
	unsigned line;
	where_at(w, "mxjail", "filter_thread", &file, &line);
	diag_warn(d, file, line,
		  "mxjail.conf [mxjail] filter_thread = %s: expected auto, yes or no; auto is used",
		  v);
}

/* ---------- [mxjail] metrics ---------- */

static void check_metrics(struct diag *d, const struct where *w, const struct config *cfg)
{
	const char *listen = opt(cfg, "mxjail.metrics");
	const char *token = opt(cfg, "mxjail.metrics_token");
	if (!listen || kvlist_bool(listen) == 0) /* off, no, false */
		return;
	const char *file;
	unsigned line;
	where_at(w, "mxjail", "metrics", &file, &line);
	char err[512];
	struct sockaddr_storage ss;
	socklen_t sl;
	int r = http_parse_listen(listen, &ss, &sl, err, sizeof err);
	if (r < 0)
		diag_error(d, file, line, "mxjail.conf [mxjail] metrics = %s: %s", listen, err);
	else if (r == 1 && !token)
		diag_error(d, file, line,
			   "mxjail.conf [mxjail] metrics = %s is not a loopback address and "
			   "metrics_token is not set: the status page lists every banned address, "
			   "so mxjail run would not serve it",
			   listen);
}

/* ---------- [cluster] ---------- */

static void check_cluster(struct diag *d, const struct where *w, const struct config *cfg)
{
	struct kvlist sec = KVLIST_INIT;
	size_t n = config_section(cfg, "cluster", &sec);
	struct cluster_opts o;
	char err[512] = "";
	int r = cluster_opts_parse(&sec, &o, err, sizeof err);
	kvlist_free(&sec);
	if (r < 0) {
		report(d, w, "cluster", 1, err);
		return;
	}
	if (r == 1) {
		if (n)
			report(d, w, "cluster", 0,
			       "mxjail.conf [cluster]: no redis = URL, so this node runs alone");
		return;
	}
	if (o.fallback_jail) {
		int found = 0;
		for (size_t i = 0; i < cfg->njails; i++)
			if (cfg->jails[i].enabled && !strcmp(cfg->jails[i].name, o.fallback_jail))
				found = 1;
		if (!found) {
			snprintf(err, sizeof err,
				 "mxjail.conf [cluster] fallback_jail: no enabled jail [%s]; remote "
				 "bans of jails this node lacks are skipped",
				 o.fallback_jail);
			report(d, w, "cluster", 0, err);
		}
	}
	cluster_opts_free(&o);
}

/* ---------- [policy], [greylist], [ratelimit], [spoof] ---------- */

/* Only a syntax check: the daemon opens the listeners, and a port taken now
 * may be free when it starts. */
static void check_listen(struct diag *d, const struct where *w, const char *listen)
{
	char *dup = xstrdup(listen), *save = NULL;
	for (char *t = strtok_r(dup, " ,\t\n", &save); t; t = strtok_r(NULL, " ,\t\n", &save)) {
		if ((!strncmp(t, "inet:", 5) && t[5]) || (!strncmp(t, "unix:", 5) && t[5] == '/'))
			continue;
		char msg[512];
		snprintf(msg, sizeof msg,
			 "mxjail.conf [policy] listen: expected inet:HOST:PORT, inet:PORT or "
			 "unix:/PATH, not '%s'",
			 t);
		report(d, w, "policy", 1, msg);
	}
	free(dup);
}

static void check_number(struct diag *d, const struct where *w, const struct kvlist *sp,
			 const char *key)
{
	const char *v = kvlist_get(sp, key);
	if (!v || !*v)
		return;
	char *e;
	double x = strtod(v, &e);
	while (*e == ' ' || *e == '\t')
		e++;
	if (*e || !(x > 0)) {
		char msg[512];
		snprintf(msg, sizeof msg, "mxjail.conf [policy] %s: expected a positive number, not '%s'",
			 key, v);
		report(d, w, "policy", 1, msg);
	}
}

static void check_policy(struct diag *d, const struct where *w, const struct config *cfg)
{
	struct kvlist sp = KVLIST_INIT, sg = KVLIST_INIT, sr = KVLIST_INIT, ss = KVLIST_INIT;
	size_t n = config_section(cfg, "policy", &sp) + config_section(cfg, "greylist", &sg) +
		   config_section(cfg, "ratelimit", &sr) + config_section(cfg, "spoof", &ss);
	if (n) {
		const char *listen = kvlist_get(&sp, "listen");
		if (listen && *listen)
			check_listen(d, w, listen);
		check_number(d, w, &sp, "idle_timeout");
		check_number(d, w, &sp, "max_connections");
		char err[512] = "";
		struct policy *p = policy_new(&sp, &sg, &sr, &ss, NULL, NULL, (double)time(NULL), err,
					      sizeof err);
		if (!p) {
			/* the message names its section; find which one for the line */
			const char *sect = "policy";
			static const char *const names[] = {"greylist", "ratelimit", "spoof"};
			for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
				char tag[32];
				snprintf(tag, sizeof tag, "[%s]", names[i]);
				if (strstr(err, tag))
					sect = names[i];
			}
			report(d, w, sect, 1, *err ? err : "mxjail.conf [policy]: the engine cannot be built");
		}
		policy_free(p);
	}
	kvlist_free(&sp);
	kvlist_free(&sg);
	kvlist_free(&sr);
	kvlist_free(&ss);
}

/* ---------- jails ---------- */

static int is_policy_jail(const struct jail_conf *j)
{
	return j->backend && !strcasecmp(j->backend, "policy");
}

/* backend = policy: the events come from the policy service, so there is no
 * filter or log to check, but the checks it listens to must exist. */
static void check_policy_jail(struct diag *d, const struct config *cfg, const struct jail_conf *j)
{
	const char *ev = kvlist_get(&j->opts, "policyevents");
	if (!ev || !*ev) {
		diag_warn(d, j->file, j->line,
			  "jail [%s]: backend = policy without policyevents: no event ever reaches it",
			  j->name);
	} else {
		char *dup = xstrdup(ev), *save = NULL;
		for (char *t = strtok_r(dup, " ,\t\n", &save); t; t = strtok_r(NULL, " ,\t\n", &save)) {
			int known = 0;
			for (size_t i = 0; i < sizeof policy_checks / sizeof policy_checks[0]; i++)
				if (!strcasecmp(t, policy_checks[i]))
					known = 1;
			if (!known)
				diag_error(d, j->file, j->line,
					   "jail [%s]: policyevents: expected banned, spoof, greylist, "
					   "ratelimit or all, not '%s'",
					   j->name, t);
		}
		free(dup);
	}
	if (!kvlist_get_bool(&cfg->mxjail, "policy.enabled", 0))
		diag_warn(d, j->file, j->line,
			  "jail [%s]: backend = policy but mxjail.conf [policy] enabled is not yes: "
			  "the jail gets no events",
			  j->name);
}

static void check_jail(struct diag *d, const char *dir, const struct config *cfg,
		       const struct jail_conf *j)
{
	char err[512];
	struct jail_params p;
	int prefix6 = 0;
	memset(&p, 0, sizeof p);
	if (jail_params_from_opts(&j->opts, 1000000, &p, &prefix6, err, sizeof err) < 0)
		diag_error(d, j->file, j->line, "jail [%s]: %s", j->name, err);
	jail_incr_free(&p.incr);
	if (is_policy_jail(j)) {
		check_policy_jail(d, cfg, j);
		return;
	}
	if (!j->filter || !*j->filter) {
		diag_error(d, j->file, j->line, "jail [%s]: no filter (set filter = NAME)", j->name);
		return;
	}
	struct filter_def def = {0};
	struct diag fd = DIAG_INIT;
	if (config_load_filter(dir, j->filter, &j->opts, &def, &fd) == 0) {
		struct filter *f = filter_compile(&def, &fd);
		filter_free(f);
	}
	filter_def_free(&def);
	add_jail_diags(d, j, &fd);
}

int cmd_check(int argc, char **argv)
{
	const char *dir = MXJAIL_SYSCONFDIR;
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "c:")) != -1) {
		switch (c) {
		case 'c': dir = optarg; break;
		default:
			fprintf(stderr, "usage: mxjail check [-c DIR]\n");
			return 2;
		}
	}
	struct diag d = DIAG_INIT;
	struct config cfg = {0};
	config_load(dir, &cfg, &d);
	for (size_t i = 0; i < cfg.njails; i++)
		if (cfg.jails[i].enabled)
			check_jail(&d, dir, &cfg, &cfg.jails[i]);
	struct where w;
	where_load(&w, cfg.dir ? cfg.dir : dir);
	check_filter_thread(&d, &w, &cfg);
	check_metrics(&d, &w, &cfg);
	check_cluster(&d, &w, &cfg);
	check_policy(&d, &w, &cfg);
	where_free(&w);
	config_free(&cfg);
	diag_print(&d, stderr);
	int bad = d.nerrors > 0;
	diag_clear(&d);
	if (bad)
		return 1;
	printf("configuration OK\n");
	return 0;
}
