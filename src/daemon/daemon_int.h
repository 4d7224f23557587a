/*
 * daemon_int - the daemon's internal structures, shared by the src/daemon/ files only.
 *
 * struct daemon is the process's one mutable context (besides the logger):
 * the loop, store, firewall, control socket, the current configuration set
 * (jails, filters, sources) and the table of live bans. A configuration set
 * is built completely before it replaces the running one, so a reload with a
 * broken configuration leaves the old set running.
 *
 * Ownership: a daemon_set owns its filters, jails and sources; live bans
 * (daemon_ban) belong to the daemon and point at their jail by pointer,
 * re-pointed when a reload replaces the set.
 */
#ifndef MXJAIL_DAEMON_DAEMON_INT_H
#define MXJAIL_DAEMON_DAEMON_INT_H

#include <stddef.h>
#include <stdint.h>

#include "actions/fw.h"
#include "config/config.h"
#include "core/kvlist.h"
#include "core/sdlib.h"
#include "core/strbuf.h"
#include "daemon/daemon.h"
#include "filters/fbatch.h"
#include "filters/filter.h"
#include "jails/jail.h"
#include "net/addr.h"
#include "sources/file.h"

struct loop;
struct store;
struct ctl_server;
struct filesrc_set;
struct journalsrc;
struct daemon;
struct ignorelist;
struct daemon_banq;
struct daemon_dns;

/* One compiled filter per distinct definition (the key is the definition's
 * full text), shared by every jail whose filter resolves to the same. */
struct daemon_filter {
	char *key;
	char *spec;               /* as the first jail wrote it, for messages */
	struct filter *f;
	struct date_clock clk;
	int journal;              /* logtype journal */
	char *journalmatch;       /* lines joined with "\n" ("" = none) */
	unsigned long limit_hits; /* last seen filter stats value */
};

struct daemon_jail {
	char *name;
	struct daemon *d;
	struct jail *j;                /* counters; moved across reloads */
	struct jail_params p;
	struct daemon_filter *flt;
	int journal;                   /* reads the journal, not files */
	char **files;                  /* expanded logpaths (and patterns not found yet) */
	size_t nfiles;
	char **globs;                  /* logpath patterns with glob characters (re-expanded) */
	int *globtail;                 /* their ` tail` flags */
	size_t nglobs;
	/* firewall: the one native action this jail uses (has_fw = 0: counting only) */
	int has_fw;
	struct fw_jail fwj;
	char *fw_port, *fw_protocol;
	const struct fw_backend *fw_be; /* the action's native backend (nftables, hostsdeny) */
	char *fw_path, *fw_dlist;      /* hostsdeny file and daemon_list (NULL = defaults) */
	char *fw_chain;                /* iptables: the hook chain (NULL = INPUT) */
	int fw_newonly;                /* iptables-new */
	char *fw_blocktype;            /* route: unreachable (NULL), blackhole, prohibit */
	struct fw *fw;                 /* bound by daemon_fw_bind(); NULL = not blocking */
	char *actions;                 /* action names for status ("nftables-multiport") */
	struct fw_cmd **cmds;          /* action.d command actions (actions/fw_cmd.h) */
	size_t ncmds;
	int banprefix6;                /* 0 = ban the host; else ban the /N of IPv6 addresses */
	double findtime_readback;      /* first start reads back this many seconds */
	struct ignorelist *ign;        /* jails/ignore.h */
	struct kvlist opts;            /* the section's options (get) */
	unsigned long failed_total, banned_total;
	size_t banned_now;
};

/* A jail fed by a source through one filter. */
struct daemon_tap {
	struct daemon_filter *flt;
	struct daemon_jail **jails;
	size_t njails;
	size_t share;                  /* index of the tap whose preparation is reused */
};

/* A log file (or one journal match set): read once, lines go to every tap. */
struct daemon_source {
	struct daemon *d;
	char *path;                    /* file path, or "journal:<filter key hash>" */
	int journal;
	int tail;
	double since;                  /* first start: read back to here */
	struct filesrc *fs;
	struct daemon_tap *taps;
	size_t ntaps;
	struct filesrc_pos saved;      /* what the store holds (avoid rewrites) */
	int have_saved;
	unsigned long lines_read, lines_matched; /* metrics; carried across reloads */
	struct fbatch_tap *ftaps;      /* the taps as the line batcher sees them */
	struct fbatch_set fset;
	int line_matched;              /* the line being reported had a failure */
};

struct daemon_set {
	struct daemon_filter **filters;
	size_t nfilters;
	struct daemon_jail **jails;
	size_t njails;
	struct daemon_source **sources;
	size_t nsources;
	struct kvlist jopts;           /* backend = systemd[...] options of the shared journal handle */
	char *jopts_jail;              /* the jail they came from (messages) */
};

/* An extra native backend, one per distinct options, open for the daemon's life. */
struct daemon_xfw {
	char *key;
	struct fw fw;
};

/* A live ban. end < 0 = forever. */
struct daemon_ban {
	struct daemon_jail *jail;
	char *jailname;
	char *id;                      /* canonical text (address or prefix) */
	struct addr a;
	double timeofban, bantime, end;
	unsigned bancount;
	int pending;                   /* in dm->banq: not committed to the store yet */
	struct daemon_ban *next;       /* hash chain */
};

struct daemon_bantab {
	struct daemon_ban **b;
	size_t nb, n;
};

/* Firewall calls counted for metrics (daemon.fw_ops / fw_errs index). */
enum daemon_fw_op { DFW_BAN, DFW_UNBAN, DFW_COMMIT, DFW_CHECK, DFW_REBUILD, DFW_NOPS };

struct daemon_http;
struct daemon_policy;
struct metrics;

struct daemon {
	struct daemon_opts o;
	char *confdir, *statedir, *socket, *dbpath;
	struct loop *loop;
	struct store *store;
	struct fw fw;
	int fw_open;
	struct daemon_xfw **xfw;       /* native backends besides nftables (hostsdeny...) */
	size_t nxfw;
	struct fw_cmdq *cmdq;          /* worker for command actions; NULL when none */
	int dry_run;
	struct ctl_server *ctl;
	struct filesrc_set *fset;
	struct journalsrc *jsrc;
	char *jcursor;                 /* last journal cursor saved */
	struct daemon_set *set;
	struct daemon_bantab bans;
	struct daemon_banq *banq;      /* new bans waiting for one store commit (daemon_ban.c) */
	struct daemon_dns *dns;        /* usedns resolver, made on the first host name */
	uint64_t expiry_timer;
	double expiry_at;              /* when expiry_timer fires (0 = none) */
	double started;
	double dbpurgeage;
	unsigned dbmaxmatches;
	size_t maxtracked_default;
	char *default_banaction;
	struct fw_options fwo;
	uint64_t rnd;                  /* xorshift state for bantime.rndtime */
	uint64_t watchdog_usec;
	struct sdlib sd;               /* loaded when started by systemd (NOTIFY_SOCKET) */
	int stopping;
	int started_loop;              /* the loop ran: command actions get stopped */
	struct fbatch *fb;             /* lines to filters (daemon_lines.c) */
	int fb_thread;                 /* fb matches in a worker thread */
	/* metrics (daemon_http.c) */
	struct metrics *metrics;       /* collectors; daemon_metrics() creates it */
	struct daemon_http *http;      /* listener for /metrics and the status page */
	unsigned long fw_ops[DFW_NOPS], fw_errs[DFW_NOPS];
	int line_busy;                 /* lines were handled since line_t0 */
	double line_now;               /* the clock the turn's lines are dated against */
	double line_t0;                /* thread CPU seconds when this batch began */
	double line_seconds;           /* total CPU time spent handling log lines */
	struct daemon_policy *policy;  /* [policy] enabled: the Postfix policy service */
	struct daemon_cluster *cluster; /* [cluster] redis set: this node's link (daemon_cluster.c) */
	char *cluster_conf;            /* [cluster] as last applied, so reload sees changes */
};

/* daemon_lines.c: one line of a source to its filters and jails (jtime >= 0: a
 * journal entry's time). With the filter thread a file's lines wait in a
 * batch until it is full or daemon_lines_drain() (the end of the source's
 * wakeup); their failures reach the jails in the same order either way. */
void daemon_line(struct daemon_source *src, const char *line, size_t len, double jtime);
void daemon_lines_drain(struct daemon *dm);
/* Makes dm->fb for the setting (thread 1: matching in a worker thread). */
void daemon_lines_setup(struct daemon *dm, int thread);
void daemon_lines_free(struct daemon *dm);
/* After the source's taps and their shares are final. */
void daemon_source_taps_ready(struct daemon_source *src);

/* daemon_setup.c: builds a set from the configuration; errors go to d. */
struct daemon_set *daemon_set_build(struct daemon *dm, const struct config *cfg, struct diag *d);
/* Plugs the set's sources into the loop (positions from the store). */
void daemon_set_start(struct daemon *dm, struct daemon_set *s);
/* Saves positions and stops the sources (the set stays usable for lookups). */
void daemon_set_stop_sources(struct daemon *dm, struct daemon_set *s);
struct daemon_set *daemon_set_free(struct daemon_set *s);
struct daemon_jail *daemon_jail_find(const struct daemon_set *s, const char *name);
/* Expands the jails' logpath globs again and starts reading files that
 * match now (the periodic check calls it; a glob per pattern, cheap). */
void daemon_logpaths_poll(struct daemon *dm);
/* Writes changed file positions and the journal cursor into the store batch. */
void daemon_save_positions(struct daemon *dm);
/* Parses the jail's numeric options into p (defaults applied). */
int daemon_jail_params(struct daemon *dm, const struct kvlist *opts, struct jail_params *p,
		       int *banprefix6, char *err, size_t errlen);

/* Command actions: queues actionstart for the set's actions; with old (a
 * reload) an unchanged action of a jail of the same name is carried over
 * with its started state, and old actions not carried are flushed and stopped. */
void daemon_actions_start(struct daemon *dm, struct daemon_set *s, struct daemon_set *old);
/* Stop: lifts the bans through actionflush (or actionunban each), then
 * actionstop; waits a bounded time for the worker. */
void daemon_actions_shutdown(struct daemon *dm);

/* Points j->fw at the backend its action needs (opening extra backends once;
 * the main one in a dry run); call after the main firewall is open. */
void daemon_fw_bind(struct daemon *dm, struct daemon_jail *j);
/* Every open backend: the main one (if open) and the extras. Returns n. */
size_t daemon_fw_all(struct daemon *dm, struct fw **out, size_t max);

/* daemon_ban.c */
void daemon_on_failure(struct daemon_jail *j, const char *id, double t, char **lines,
		       size_t nlines, const struct kvlist *groups);
/* Bans addr in jail now (manual ban or reached maxretry). Returns 1 when a new
 * ban was made, 0 when it was already banned (prolonged), -1 on error (err). */
int daemon_ban_addr(struct daemon_jail *j, const struct addr *a, double t, unsigned failures,
		    char **lines, size_t nlines, int manual, char *err, size_t errlen);
/* Lifts the ban of id in jail (jail NULL = every jail). Returns how many. */
int daemon_unban_id(struct daemon *dm, const char *jail, const char *id);
int daemon_unban_all(struct daemon *dm, const char *jail);
struct daemon_ban *daemon_ban_find(struct daemon *dm, const char *jail, const char *id);
/* Calls cb for each live ban (stable order is not promised). */
void daemon_bans_foreach(struct daemon *dm, void (*cb)(struct daemon_ban *b, void *arg),
			 void *arg);
/* Loads live bans from the store into the table (start). */
void daemon_bans_restore(struct daemon *dm);
/* Rebuilds the firewall from the table (start, after `flush ruleset`). */
void daemon_fw_rebuild(struct daemon *dm, const char *why);
/* Re-points bans at the jails of a new set; bans of vanished jails are lifted. */
void daemon_bans_rebind(struct daemon *dm, struct daemon_set *s);
void daemon_bans_free(struct daemon *dm);
/* Commits the new bans queued since the last call in one store transaction,
 * then reports them (log, firewall queue, command actions). Called at the
 * end of each loop turn, after a `ban` verb and before anything that reads
 * bans back from the store; cheap when nothing is queued. */
void daemon_bans_commit(struct daemon *dm);
void daemon_expiry_arm(struct daemon *dm);

/* daemon_dns.c: usedns = yes|warn. Resolves name off the loop and replays
 * the failure (daemon_on_failure) once per address found; warn logs the
 * lookup as fail2ban does. free stops the resolver without waiting on DNS. */
void daemon_dns_failure(struct daemon_jail *j, const char *name, double t, char **lines,
			size_t nlines, const struct kvlist *groups, int warn);
void daemon_dns_free(struct daemon *dm);

/* daemon_ignore.c: the seam to jails/ignore.h. ignoreip NULL = the option's. */
struct ignorelist *daemon_ignore_new(const struct kvlist *opts, const char *ignoreip,
				     const char *file, unsigned line, struct diag *d);
/* 1 when id must not be banned, with the reason (and matching entry) in why.
 * groups: the failure's F- groups (for ignorecommand tags), may be NULL. */
int daemon_ignored(struct daemon_jail *j, const char *id, const struct kvlist *groups,
		   char *why, size_t whylen);
/* Re-reads changed file: lists (from the periodic check). */
void daemon_ignore_poll(struct daemon_jail *j);
/* Replaces the ignoreip list (runtime `set JAIL ignoreip`); -1 with err. */
int daemon_ignore_set_list(struct daemon_jail *j, const char *list, char *err, size_t errlen);
/* The ignoreip entries as written, blank-separated. */
void daemon_ignore_format(const struct daemon_jail *j, struct strbuf *out);

/* daemon_ctl.c */
int daemon_ctl_handle(void *arg, int argc, char **argv, int json, struct strbuf *out);
/* daemon.c: reload (SIGHUP or `reload`); returns 0 or -1 with a message in out. */
int daemon_reload(struct daemon *dm, struct strbuf *msg);
/* `reload JAIL`: only that jail takes its settings from disk (jail NULL = all). */
int daemon_reload_jail(struct daemon *dm, const char *jail, struct strbuf *msg);
/* daemon_reload.c: turns a freshly loaded cfg into "jail from disk, every
 * other jail as it runs now" (sections rebuilt from the running jails' options). */
void daemon_config_keep_others(struct daemon *dm, struct config *cfg, const char *jail);

/* daemon_http.c: Prometheus metrics and the status page. start (re)reads
 * [mxjail] metrics / metrics_token (restarting the listener when they
 * changed; problems are logged, the daemon runs on without it); stop closes
 * it. daemon_metrics() is the registry other modules add collectors to. */
void daemon_http_start(struct daemon *dm, const struct config *cfg);
void daemon_http_stop(struct daemon *dm);
struct metrics *daemon_metrics(struct daemon *dm);
/* A batch of log lines: begin at the first line of a loop turn, end at the
 * turn's end (and after a synchronous read-back); the thread CPU time in
 * between goes to line_seconds. */
void daemon_lines_batch_begin(struct daemon *dm);
void daemon_lines_batch_end(struct daemon *dm);

/* daemon_policy.c: the Postfix policy service inside `mxjail run` when
 * [policy] enabled = yes (else start does nothing); -1 = cannot start (logged). */
int daemon_policy_start(struct daemon *dm, const struct config *cfg);
void daemon_policy_stop(struct daemon *dm);
/* Reload: rebuilds the service when its mxjail.conf sections changed (checked first). */
void daemon_policy_reload(struct daemon *dm, const struct config *cfg);

/* daemon_cluster.c: [cluster] (see cluster/cluster.h). start: 0 (also when
 * no cluster is configured) or -1 on a bad [cluster] section (logged). The
 * hooks publish local bans/prolongs, explicit unbans (tombstones) and
 * failures of jails with shared counting; they never block. */
int daemon_cluster_start(struct daemon *dm, const struct config *cfg);
void daemon_cluster_stop(struct daemon *dm);
void daemon_cluster_ban(struct daemon *dm, const struct daemon_ban *b);
void daemon_cluster_unban(struct daemon *dm, const char *jail, const char *id);
void daemon_cluster_failure(struct daemon_jail *j, const char *id, double t);
/* policy_host hooks (arg = the daemon). */
void daemon_cluster_greylist_update(void *arg, const char *triplet, double first, double last,
				    unsigned count);
void daemon_cluster_ratelimit_add(void *arg, const char *limit, const char *key, double t,
				  double amount);
/* Appends "Cluster:\t..." (text) or ",\"cluster\":{...}" (json); nothing without a cluster. */
void daemon_cluster_status(struct daemon *dm, int json, struct strbuf *out);

double daemon_now(void);
double daemon_random(struct daemon *dm);

#endif
