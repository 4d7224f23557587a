/*
 * daemon - `mxjail run`: start-up, the event loop's hooks, reload and stop.
 *
 * START: read the configuration (any error: log it, exit 1), set up logging
 * (fail2ban.conf/mxjail.conf logtarget, stderr by default), open the state
 * database (a corrupt one is moved aside by the store: logged, not fatal;
 * an unusable directory falls back to memory), open the firewall, build the
 * jails, re-apply the stored live bans in one fw_rebuild batch, listen on
 * the control socket, start the log sources, then tell systemd READY=1.
 *
 * RUN: the end-of-turn hook commits the firewall batch and the store batch
 * (positions), so both cost one transaction per loop turn. Every few seconds
 * fw_check finds a ruleset flushed under us and rebuilds it from the table.
 * SIGHUP reloads (bans and failure counters stay), SIGTERM/SIGINT stop after
 * saving positions. Bans stay in the kernel across a stop: their timeouts end
 * them, and the next start re-applies what the store still holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "actions/fw_cmd.h"
#include "cluster/cluster.h"
#include "core/clocks.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"
#include "ctl/ctl.h"
#include "daemon/daemon_int.h"
#include "sources/file.h"
#include "sources/journal.h"
#include "store/store.h"

#define CHECK_INTERVAL_MS 5000
#define PURGE_INTERVAL_MS (3600 * 1000)
#define DEFAULT_STATEDIR "/var/lib/mxjail"
#define DEFAULT_SOCKET "/run/mxjail/mxjail.sock"

double daemon_now(void)
{
	return clocks_real();
}

double daemon_random(struct daemon *dm)
{
	uint64_t x = dm->rnd;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	dm->rnd = x;
	return (double)(x >> 11) / 9007199254740992.0;
}

static const char *cfg_get(const struct config *c, const char *key)
{
	const char *v = kvlist_get(&c->mxjail, key);
	return v && *v ? v : NULL;
}

/* Creates dir and its parents (mode for the last one). */
static int mkdirs(const char *dir, mode_t mode)
{
	char *p = xstrdup(dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			free(p);
			return -errno;
		}
		*s = '/';
	}
	int r = mkdir(p, mode) < 0 && errno != EEXIST ? -errno : 0;
	free(p);
	return r;
}

/* fail2ban.conf's logtarget words, and a path for anything else. */
static int setup_logging(const struct daemon_opts *o, const struct config *cfg)
{
	const char *target = o->logtarget;
	if (!target)
		target = cfg_get(cfg, "mxjail.logtarget");
	if (!target)
		target = kvlist_get(&cfg->general, "logtarget");
	const char *lvl = o->loglevel ? o->loglevel : kvlist_get(&cfg->general, "loglevel");
	int level = lvl ? log_level_parse(lvl) : LOG_LVL_INFO;
	if (level < 0) {
		fprintf(stderr, "mxjail run: loglevel '%s' is not one of ERROR, WARNING, NOTICE, "
				"INFO, DEBUG\n",
			lvl);
		return -1;
	}
	enum log_target t = LOG_TO_STDERR;
	const char *path = NULL;
	if (!target || !strcasecmp(target, "STDERR") || !strcasecmp(target, "STDOUT")) {
		/* a detached daemon has no stderr: its messages go to syslog */
		t = o->foreground ? LOG_TO_STDERR : LOG_TO_SYSLOG;
	} else if (!strcasecmp(target, "SYSLOG") || !strcasecmp(target, "SYSTEMD-JOURNAL")) {
		t = LOG_TO_SYSLOG;
	} else {
		t = LOG_TO_FILE;
		path = target;
	}
	int r = log_init(t, path, (enum log_level)level);
	if (r < 0) {
		fprintf(stderr, "mxjail run: cannot open log file %s: %s\n", path, strerror(-r));
		return -1;
	}
	if (t != LOG_TO_STDERR && o->foreground && isatty(2))
		fprintf(stderr, "mxjail: logging to %s\n", t == LOG_TO_FILE ? path : "syslog");
	return 0;
}

static void report_diag(const struct diag *d)
{
	for (size_t i = 0; i < d->n; i++) {
		if (d->items[i].level == DIAG_ERROR)
			log_msg(LOG_LVL_ERROR, "%s", d->items[i].text);
		else
			log_warnx("%s", d->items[i].text);
	}
}

static void declare_jails(struct daemon *dm, struct daemon_set *s)
{
	if (!dm->fw_open)
		return;
	char err[512];
	for (size_t i = 0; i < s->njails; i++) {
		daemon_fw_bind(dm, s->jails[i]);
		if (s->jails[i]->fw && fw_declare(s->jails[i]->fw, &s->jails[i]->fwj, err, sizeof err) < 0)
			log_warnx("[%s] firewall: %s", s->jails[i]->name, err);
	}
}

/* ---------- loop hooks ---------- */

static void on_turn_end(struct loop *l, void *arg)
{
	(void)l;
	struct daemon *dm = arg;
	char err[512];
	daemon_lines_batch_end(dm);
	daemon_bans_commit(dm); /* the turn's new bans: one store commit, then the firewall */
	struct fw *fws[16];
	size_t nfw = daemon_fw_all(dm, fws, 16);
	for (size_t i = 0; i < nfw; i++) {
		int r = fw_commit(fws[i], err, sizeof err);
		if (r < 0)
			dm->fw_errs[DFW_COMMIT]++;
		if (r == -ENOENT)
			daemon_fw_rebuild(dm, "firewall objects missing at commit");
		else if (r < 0)
			log_warnx("firewall: commit: %s", err);
	}
	if (dm->cmdq)
		fw_cmdq_start(dm->cmdq); /* here, not earlier: after daemon() forked */
	daemon_save_positions(dm);
	if (store_flush(dm->store) < 0)
		log_warnx("state: %s", store_error(dm->store));
}

static void on_check(struct loop *l, void *arg)
{
	struct daemon *dm = arg;
	char err[512];
	struct fw *fws[16];
	size_t nfw = daemon_fw_all(dm, fws, 16);
	for (size_t i = 0; i < nfw; i++) {
		int r = fw_check(fws[i], err, sizeof err);
		dm->fw_ops[DFW_CHECK]++;
		if (r < 0)
			dm->fw_errs[DFW_CHECK]++;
		if (r == -ENOENT) {
			log_warnx("firewall: %s; rebuilding from state", err);
			daemon_fw_rebuild(dm, "ruleset repaired");
			break;
		} else if (r < 0) {
			log_warnx("firewall: check: %s", err);
		}
	}
	for (size_t i = 0; dm->set && i < dm->set->njails; i++) {
		jail_expire(dm->set->jails[i]->j, daemon_now());
		daemon_ignore_poll(dm->set->jails[i]);
	}
	daemon_logpaths_poll(dm); /* files matching a logpath glob since the last look */
	loop_timer_add(l, CHECK_INTERVAL_MS, on_check, dm);
}

static void on_purge(struct loop *l, void *arg)
{
	struct daemon *dm = arg;
	if (dm->dbpurgeage > 0 && store_purge(dm->store, daemon_now(), dm->dbpurgeage) < 0)
		log_warnx("state: purge: %s", store_error(dm->store));
	loop_timer_add(l, PURGE_INTERVAL_MS, on_purge, dm);
}

/* Tells systemd, when it started us and waits for word (Type=notify). */
static void notify(struct daemon *dm, const char *state)
{
	if (dm->sd.dl)
		dm->sd.notify(0, state);
}

static void on_watchdog(struct loop *l, void *arg)
{
	struct daemon *dm = arg;
	notify(dm, "WATCHDOG=1");
	loop_timer_add(l, dm->watchdog_usec / 2000, on_watchdog, dm);
}

static void on_stop(struct loop *l, void *arg)
{
	struct daemon *dm = arg;
	log_notice("stopping");
	dm->stopping = 1;
	notify(dm, "STOPPING=1");
	loop_stop(l);
}

static void on_hup(struct loop *l, void *arg)
{
	(void)l;
	struct daemon *dm = arg;
	struct strbuf msg = STRBUF_INIT;
	notify(dm, "RELOADING=1");
	daemon_reload(dm, &msg);
	notify(dm, "READY=1");
	strbuf_free(&msg);
}

/* ---------- reload ---------- */

/* Reading settings that are not per jail. */
static void apply_general(struct daemon *dm, const struct config *cfg)
{
	const char *v = kvlist_get(&cfg->general, "dbpurgeage");
	double t;
	dm->dbpurgeage = 86400;
	if (v && jail_parse_time(v, &t) == 0)
		dm->dbpurgeage = t;
	dm->dbmaxmatches = 10;
	v = kvlist_get(&cfg->general, "dbmaxmatches");
	if (v && *v)
		dm->dbmaxmatches = (unsigned)strtoul(v, NULL, 10);
	if (dm->store)
		store_set_maxmatches(dm->store, dm->dbmaxmatches);
	dm->maxtracked_default = 1000000;
	v = cfg_get(cfg, "mxjail.maxtracked");
	if (v && strtoul(v, NULL, 10) >= 16)
		dm->maxtracked_default = strtoul(v, NULL, 10);
	v = cfg_get(cfg, "mxjail.filter_thread");
	int want = fbatch_setting(v);
	if (want < 0) {
		log_warnx("mxjail.conf: filter_thread = %s: expected auto, yes or no; using auto", v);
		want = fbatch_setting(NULL);
	}
	daemon_lines_setup(dm, want);
	free(dm->default_banaction);
	v = cfg_get(cfg, "mxjail.banaction");
	dm->default_banaction = xstrdup(v && strcasecmp(v, "null") != 0 ? v : "nftables-allports");
	if (strcmp(dm->default_banaction, "nftables") == 0) {
		free(dm->default_banaction);
		dm->default_banaction = xstrdup("nftables-allports");
	}
}

/* [cluster] as one text, to tell whether a reload changed it. */
static char *cluster_conf_text(const struct config *cfg, struct kvlist *sec)
{
	struct strbuf b = STRBUF_INIT;
	for (size_t i = 0; i < cfg->mxjail.n; i++) {
		const struct kv *kv = &cfg->mxjail.v[i];
		if (strncasecmp(kv->key, "cluster.", 8) != 0)
			continue;
		strbuf_addf(&b, "%s=%s\n", kv->key, kv->value ? kv->value : "");
		if (sec)
			kvlist_set(sec, kv->key + 8, kv->value);
	}
	return strbuf_detach(&b);
}

/* Reload: the Redis link is restarted only when [cluster] changed, and only
 * after the new section parsed, so a typo keeps the running link. The new
 * link catches up from the saved stream position as at start. */
static void cluster_reload(struct daemon *dm, const struct config *cfg)
{
	struct kvlist sec = KVLIST_INIT;
	char *t = cluster_conf_text(cfg, &sec);
	if (dm->cluster_conf && strcmp(t, dm->cluster_conf) == 0) {
		kvlist_free(&sec);
		free(t);
		return;
	}
	struct cluster_opts o;
	char err[512] = "";
	int r = cluster_opts_parse(&sec, &o, err, sizeof err);
	kvlist_free(&sec);
	if (r < 0) {
		log_warnx("reload: %s; %s", err,
			  dm->cluster ? "the running cluster link stays" : "no cluster link");
		free(t);
		return;
	}
	if (r == 0)
		cluster_opts_free(&o);
	int had = dm->cluster != NULL;
	daemon_cluster_stop(dm);
	free(dm->cluster_conf);
	dm->cluster_conf = t;
	if (r == 1) {
		if (had)
			log_notice("cluster link stopped ([cluster] has no redis)");
		return;
	}
	if (daemon_cluster_start(dm, cfg) == 0)
		log_notice("cluster link %s", had ? "restarted with the new settings" : "started");
}

int daemon_reload(struct daemon *dm, struct strbuf *msg)
{
	return daemon_reload_jail(dm, NULL, msg);
}

int daemon_reload_jail(struct daemon *dm, const char *jail, struct strbuf *msg)
{
	if (jail)
		log_notice("reloading jail [%s] from %s", jail, dm->confdir);
	else
		log_notice("reloading the configuration from %s", dm->confdir);
	daemon_bans_commit(dm);
	struct diag d = DIAG_INIT;
	struct config cfg = {0};
	config_load(dm->confdir, &cfg, &d);
	/* one jail: the others keep what they run with (daemon_reload.c), and
	 * the global settings and services stay as they are */
	if (jail && d.nerrors == 0)
		daemon_config_keep_others(dm, &cfg, jail);
	struct daemon_set *s = NULL;
	if (d.nerrors == 0) {
		if (!jail)
			apply_general(dm, &cfg);
		s = daemon_set_build(dm, &cfg, &d);
	}
	if (d.nerrors == 0 && !jail)
		daemon_http_start(dm, &cfg);
	if (d.nerrors == 0 && !jail)
		daemon_policy_reload(dm, &cfg);
	if (d.nerrors == 0 && !jail)
		cluster_reload(dm, &cfg);
	config_free(&cfg);
	report_diag(&d);
	if (d.nerrors) {
		for (size_t i = 0; i < d.n; i++)
			if (d.items[i].level == DIAG_ERROR)
				strbuf_addf(msg, "%s\n", d.items[i].text);
		strbuf_addf(msg, "reload failed; the previous configuration stays in use\n");
		log_warnx("reload failed (%zu error%s); the previous configuration stays in use",
			  d.nerrors, d.nerrors == 1 ? "" : "s");
		diag_clear(&d);
		daemon_set_free(s);
		return -1;
	}
	diag_clear(&d);
	/* counters survive: a jail of the same name keeps its tracked failures */
	struct daemon_set *old = dm->set;
	for (size_t i = 0; i < s->njails; i++) {
		struct daemon_jail *nj = s->jails[i];
		struct daemon_jail *oj = daemon_jail_find(old, nj->name);
		if (!oj)
			continue;
		jail_free(nj->j);
		nj->j = oj->j;
		oj->j = NULL;
		jail_set_params(nj->j, &nj->p);
		nj->failed_total = oj->failed_total;
		nj->banned_total = oj->banned_total;
	}
	for (size_t i = 0; old && i < s->nsources; i++)
		for (size_t k = 0; k < old->nsources; k++)
			if (strcmp(s->sources[i]->path, old->sources[k]->path) == 0) {
				s->sources[i]->lines_read = old->sources[k]->lines_read;
				s->sources[i]->lines_matched = old->sources[k]->lines_matched;
				break;
			}
	daemon_set_stop_sources(dm, old);
	store_flush(dm->store);
	declare_jails(dm, s);
	daemon_bans_rebind(dm, s);
	daemon_actions_start(dm, s, old);
	dm->set = s;
	daemon_set_free(old);
	daemon_fw_rebuild(dm, "reload");
	daemon_set_start(dm, s);
	daemon_lines_batch_end(dm);
	if (jail && daemon_jail_find(s, jail)) {
		log_notice("reloaded jail [%s]", jail);
		strbuf_addf(msg, "reloaded jail %s\n", jail);
	} else if (jail) {
		log_notice("jail [%s] is no longer enabled: stopped", jail);
		strbuf_addf(msg, "jail %s is no longer enabled: stopped\n", jail);
	} else {
		log_notice("reloaded: %zu jail%s", s->njails, s->njails == 1 ? "" : "s");
		strbuf_addf(msg, "reloaded %zu jail%s\n", s->njails, s->njails == 1 ? "" : "s");
	}
	return 0;
}

/* ---------- start and stop ---------- */

static int open_store(struct daemon *dm)
{
	int r = mkdirs(dm->statedir, 0700);
	if (r < 0)
		log_warnx("state directory %s: %s", dm->statedir, strerror(-r));
	struct store_opts so = STORE_OPTS_DEFAULT;
	so.maxmatches = dm->dbmaxmatches;
	char msg[1024] = "";
	r = store_open(dm->dbpath, &so, &dm->store, msg, sizeof msg);
	if (r == 1)
		log_warnx("state: %s", msg);
	if (r >= 0)
		return 0;
	log_warnx("state: %s; keeping state in memory only (bans will not survive a restart)",
		  msg);
	r = store_open(":memory:", &so, &dm->store, msg, sizeof msg);
	if (r < 0) {
		log_msg(LOG_LVL_ERROR, "state: %s", msg);
		return -1;
	}
	return 0;
}

static int open_fw(struct daemon *dm, const struct config *cfg)
{
	const char *be = dm->o.backend ? dm->o.backend : cfg_get(cfg, "mxjail.banaction");
	dm->dry_run = be && strcasecmp(be, "null") == 0;
	memset(&dm->fwo, 0, sizeof dm->fwo);
	const char *mode = cfg_get(cfg, "mxjail.nftables_mode");
	dm->fwo.set_only = mode && strcasecmp(mode, "set-only") == 0;
	char err[512];
	int r = fw_open(&dm->fw, dm->dry_run ? &fw_null_backend : &fw_nft_backend, &dm->fwo, err,
			sizeof err);
	if (r < 0) {
		log_msg(LOG_LVL_ERROR, "firewall: %s", err);
		return -1;
	}
	dm->fw_open = 1;
	log_info("firewall backend: %s", dm->dry_run ? "null (dry run, nothing is blocked)" : "nftables");
	return 0;
}

static void daemon_free(struct daemon *dm)
{
	if (dm->set)
		daemon_set_stop_sources(dm, dm->set);
	daemon_bans_commit(dm);
	daemon_dns_free(dm);
	if (dm->stopping || dm->started_loop)
		daemon_actions_shutdown(dm);
	if (dm->store)
		store_flush(dm->store);
	dm->set = daemon_set_free(dm->set);
	daemon_bans_free(dm);
	fw_cmdq_free(dm->cmdq, 5);
	dm->cmdq = NULL;
	if (dm->ctl)
		ctl_server_free(dm->ctl);
	daemon_policy_stop(dm);
	daemon_cluster_stop(dm);
	free(dm->cluster_conf);
	daemon_http_stop(dm);
	if (dm->fw_open) {
		char err[512];
		fw_commit(&dm->fw, err, sizeof err);
		fw_close(&dm->fw);
	}
	for (size_t i = 0; i < dm->nxfw; i++) {
		char err[512];
		fw_commit(&dm->xfw[i]->fw, err, sizeof err);
		fw_close(&dm->xfw[i]->fw);
		free(dm->xfw[i]->key);
		free(dm->xfw[i]);
	}
	free(dm->xfw);
	daemon_lines_free(dm);
	dm->fset = filesrc_set_free(dm->fset);
	dm->store = store_close(dm->store);
	if (dm->loop)
		loop_free(dm->loop);
	free(dm->confdir);
	free(dm->statedir);
	free(dm->socket);
	free(dm->dbpath);
	free(dm->default_banaction);
	free(dm->jcursor);
	sdlib_close(&dm->sd);
}

int daemon_run(const struct daemon_opts *o)
{
	struct daemon dm0 = {0}, *dm = &dm0;
	dm->o = *o;
	dm->confdir = xstrdup(o->confdir ? o->confdir : MXJAIL_SYSCONFDIR);
	dm->rnd = (uint64_t)time(NULL) * 2654435761ULL ^ (uint64_t)getpid() << 32 ^ 0x9e3779b97f4a7c15ULL;

	struct diag d = DIAG_INIT;
	struct config cfg = {0};
	if (config_load(dm->confdir, &cfg, &d) < 0 || d.nerrors) {
		diag_print(&d, stderr);
		fprintf(stderr, "mxjail run: configuration in %s has errors; not starting\n",
			dm->confdir);
		diag_clear(&d);
		config_free(&cfg);
		daemon_free(dm);
		return 1;
	}
	if (setup_logging(o, &cfg) < 0) {
		config_free(&cfg);
		daemon_free(dm);
		return 1;
	}
	report_diag(&d);
	diag_clear(&d);
	const char *v;
	dm->statedir = xstrdup(o->statedir ? o->statedir
			       : (v = cfg_get(&cfg, "mxjail.statedir")) ? v : DEFAULT_STATEDIR);
	dm->socket = xstrdup(o->socket ? o->socket
			     : (v = cfg_get(&cfg, "mxjail.socket")) ? v : DEFAULT_SOCKET);
	dm->dbpath = xasprintf("%s/mxjail.sqlite3", dm->statedir);
	apply_general(dm, &cfg);
	dm->started = daemon_now();

	int rc = 1;
	int err = 0;
	dm->loop = loop_new();
	dm->fset = filesrc_set_new(dm->loop, NULL, &err);
	if (!dm->fset) {
		log_msg(LOG_LVL_ERROR, "inotify: %s", strerror(-err));
		goto out;
	}
	dm->set = daemon_set_build(dm, &cfg, &d);
	if (d.nerrors) {
		diag_print(&d, stderr);
		report_diag(&d);
		fprintf(stderr, "mxjail run: configuration in %s has errors; not starting\n",
			dm->confdir);
		goto out;
	}
	report_diag(&d);
	diag_clear(&d);
	if (open_store(dm) < 0 || open_fw(dm, &cfg) < 0)
		goto out;
	declare_jails(dm, dm->set);
	daemon_actions_start(dm, dm->set, NULL);
	daemon_bans_restore(dm);
	daemon_fw_rebuild(dm, "start");

	char *sockdir = xstrdup(dm->socket);
	char *slash = strrchr(sockdir, '/');
	if (slash && slash != sockdir) {
		*slash = '\0';
		mkdirs(sockdir, 0755);
	}
	free(sockdir);
	char errbuf[512];
	dm->ctl = ctl_server_new(dm->loop, dm->socket, daemon_ctl_handle, dm, errbuf, sizeof errbuf);
	if (!dm->ctl) {
		log_msg(LOG_LVL_ERROR, "control socket %s: %s", dm->socket, errbuf);
		fprintf(stderr, "mxjail run: control socket %s: %s\n", dm->socket, errbuf);
		goto out;
	}
	/* Detach before any thread starts (the policy state writer, the resolver,
	 * the command-action worker): threads do not survive fork(). */
	if (!o->foreground && daemon(0, 0) < 0) {
		log_warn("detaching");
		goto out;
	}
	if (daemon_policy_start(dm, &cfg) < 0)
		goto out;
	if (daemon_cluster_start(dm, &cfg) < 0)
		goto out;
	dm->cluster_conf = cluster_conf_text(&cfg, NULL);
	loop_signal_add(dm->loop, SIGTERM, on_stop, dm);
	loop_signal_add(dm->loop, SIGINT, on_stop, dm);
	loop_signal_add(dm->loop, SIGHUP, on_hup, dm);
	signal(SIGPIPE, SIG_IGN);
	loop_on_turn_end(dm->loop, on_turn_end, dm);
	loop_timer_add(dm->loop, CHECK_INTERVAL_MS, on_check, dm);
	loop_timer_add(dm->loop, 1000, on_purge, dm);
	daemon_set_start(dm, dm->set);
	daemon_lines_batch_end(dm);
	daemon_http_start(dm, &cfg);
	dm->started_loop = 1;
	if (getenv("NOTIFY_SOCKET")) {
		char err[256];
		if (sdlib_open(&dm->sd, err, sizeof err) < 0)
			log_warnx("systemd notification: %s", err);
	}
	if (dm->sd.dl && dm->sd.watchdog_enabled(0, &dm->watchdog_usec) > 0 &&
	    dm->watchdog_usec >= 2000)
		loop_timer_add(dm->loop, dm->watchdog_usec / 2000, on_watchdog, dm);
	size_t nj = dm->set->njails;
	log_notice("mxjail %s started: %zu jail%s, %zu live ban%s, state %s, socket %s%s",
		   MXJAIL_VERSION, nj, nj == 1 ? "" : "s", dm->bans.n, dm->bans.n == 1 ? "" : "s",
		   dm->dbpath, dm->socket, dm->dry_run ? ", dry run" : "");
	notify(dm, "READY=1");
	/* The parsed tree (every jail of jail.conf with all its options) is not
	 * needed once the jails are built, and the heap it leaves can go back to
	 * the system: the idle daemon is most of its own peak. */
	config_free(&cfg);
	malloc_trim(0);
	int lr = loop_run(dm->loop);
	if (lr < 0)
		log_msg(LOG_LVL_ERROR, "event loop: %s", strerror(-lr));
	rc = lr < 0 ? 1 : 0;
out:
	diag_clear(&d);
	config_free(&cfg);
	daemon_free(dm);
	if (rc == 0)
		log_notice("stopped");
	return rc;
}
