/*
 * report - `mxjail report`: where attacks come from and what they try.
 *
 *   mxjail report [-c DIR] [--state DIR] [--since DUR] [--now EPOCH] [--jail J]...
 *                 [--geoip FILE] [--top N] [--audit] [--json | --html FILE] [LOG...|-]
 *
 * Two inputs, either or both. LOGs are read once, oldest file first (by
 * modification time, so rotated logs come before the current one), and every
 * line goes through the filters of the enabled jails (or the ones named with
 * --jail), the way `mxjail replay` runs them, so a report works before mxjail
 * ever ran; bans are estimated from each jail's maxretry/findtime/bantime
 * (ignored addresses are no attacks), and mxjail's or
 * fail2ban's own "NOTICE [jail] Ban ADDR" lines count as logged bans. The
 * state database (--state DIR, or with no LOG the configured statedir) adds
 * the bans mxjail made, their history and evidence, and the policy service's
 * greylist and rate-limit rows; the bans are read through a read-only
 * connection, the policy's files from copies, so nothing of the daemon's is
 * ever changed. With --audit the findings of `mxjail audit` are added.
 * Nothing is written except the --html file.
 *
 * The aggregation and the three output formats live in src/report/; this
 * file only wires configuration, filters, logs and the store to it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/clocks.h"
#include "core/diag.h"
#include "core/kvlist.h"
#include "core/linereader.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "filters/filter.h"
#include "jails/ignore.h"
#include "jails/jail.h"
#include "jails/jailrun.h"
#include "net/addr.h"
#include "policy/policy.h"
#include "report/report.h"
#include "store/store.h"
#include "store/store_ro.h"

#define DEFAULT_STATEDIR "/var/lib/mxjail"
#define MAX_AUDIT (16 << 20)   /* bytes of `mxjail audit` output kept */

struct qjail {
	size_t rj;                 /* index in the report */
	size_t flt;
	struct jail_params p;
	struct jail *j;
	struct ignorelist *ign;    /* NULL when the jail's ignore options are broken */
};

struct run {
	struct report *r;
	struct jailrun jr;         /* the jails' filters */
	struct qjail *jails;
	size_t njails;
	struct filter_result res;
	double now;
	unsigned long lines;
};

static void usage(void)
{
	fprintf(stderr, "usage: mxjail report [-c DIR] [--state DIR] [--since DUR] [--now EPOCH]\n"
			"                     [--jail JAIL]... [--geoip FILE] [--top N] [--audit]\n"
			"                     [--json | --html FILE] [LOG...|-]\n");
}

/* ---------- set-up ---------- */

static int add_jail(struct run *q, const struct jail_conf *jc, const char *dir, double now,
		    struct diag *d)
{
	char err[256];
	struct qjail qj = {0};
	int bp6;
	if (!jc->filter || !*jc->filter) {
		diag_error(d, jc->file, jc->line, "jail [%s]: no filter", jc->name);
		return -1;
	}
	if (jail_params_from_opts(&jc->opts, 1000000, &qj.p, &bp6, err, sizeof err) < 0) {
		diag_error(d, jc->file, jc->line, "jail [%s]: %s", jc->name, err);
		jail_incr_free(&qj.p.incr);
		return -1;
	}
	if (jailrun_filter_add(&q->jr, jc, dir, now, JAILRUN_DIAG_WARN, &qj.flt, d) < 0) {
		jail_incr_free(&qj.p.incr);
		return -1;
	}
	/* ignored addresses (ignoreip, ignoreself, ignorecommand) are no attack
	 * for this jail, as in the daemon */
	jailrun_ignore(jc, now, JAILRUN_DIAG_WARN, &qj.ign, d);
	qj.rj = report_jail(q->r, jc->name);
	qj.j = jail_new(&qj.p);
	q->jails = xrealloc(q->jails, (q->njails + 1) * sizeof *q->jails);
	q->jails[q->njails++] = qj;
	return 0;
}

static void run_free(struct run *q)
{
	jailrun_free(&q->jr);
	for (size_t i = 0; i < q->njails; i++) {
		jail_free(q->jails[i].j);
		ignore_free(q->jails[i].ign);
		jail_incr_free(&q->jails[i].p.incr);
	}
	free(q->jails);
	filter_result_free(&q->res);
}

/* ---------- logs ---------- */

/* One line through every filter. The line is one attack however many
 * filters and jails match it; each jail still counts it and may ban. */
static void feed(struct run *q, const char *line, size_t len)
{
	q->lines++;
	double t = -1;
	const struct filter_hit *first = NULL;
	const char *user = NULL;
	size_t mj[64], nmj = 0;
	/* hits of one filter are reset by the next one: keep copies we need */
	char *id = NULL, *usr = NULL;
	double ht = -1;
	struct datedetect_memo memo; /* filters with different date settings share searches */
	datedetect_memo_reset(&memo);
	for (size_t i = 0; i < q->jr.nfilters; i++) {
		struct jailrun_filter *qf = &q->jr.filters[i];
		if (qf->share == i) {
			filter_prepare_memo(qf->f, line, len, -1.0, &qf->clk, &memo, &qf->fl);
			if (qf->fl.found == 1 && t < 0)
				t = qf->fl.t;
		}
		filter_result_reset(&q->res);
		filter_process_prepared(qf->f, &q->jr.filters[qf->share].fl, &qf->clk, &q->res);
		for (size_t h = 0; h < q->res.n; h++) {
			const struct filter_hit *hit = &q->res.hits[h];
			if (!hit->id || hit->nofail)
				continue;
			double when = hit->time > 0 ? hit->time : (t > 0 ? t : q->now);
			if (!first) {
				first = hit;
				id = xstrdup(hit->id);
				ht = when;
				user = kvlist_get(&hit->groups, "user");
				if ((!user || !*user) && hit->nusers)
					user = hit->users[hit->nusers - 1];
				usr = user && *user ? xstrdup(user) : NULL;
			}
			for (size_t k = 0; k < q->njails; k++) {
				struct qjail *qj = &q->jails[k];
				if (qj->flt != i)
					continue;
				if (qj->ign &&
				    ignore_check(qj->ign, hit->id, NULL, clocks_real(), NULL) != IGNORE_NONE) {
					report_ignored(q->r, qj->rj);
					continue;
				}
				int dup = 0;
				for (size_t m = 0; m < nmj; m++)
					dup |= mj[m] == qj->rj;
				if (!dup && nmj < 64)
					mj[nmj++] = qj->rj;
				struct jail_ban jb;
				if (jail_add_failure(qj->j, hit->id, when, NULL, 0, &jb) == 1) {
					char norm[ADDR_STRLEN + 8];
					addr_normalise(hit->id, strlen(hit->id), norm, sizeof norm);
					report_estimate_ban(q->r, qj->rj, norm, when, qj->p.bantime);
					jail_ban_clear(&jb);
				}
			}
			break;   /* one failure per filter per line */
		}
	}
	if (id && nmj)
		report_failure(q->r, mj, nmj, id, ht, line, len, usr);
	report_scan_line(q->r, line, len, first ? ht : t);
	free(id);
	free(usr);
	if (q->lines % 4096 == 0 && t > 0)
		for (size_t k = 0; k < q->njails; k++)
			jail_expire(q->jails[k].j, t);
}

static int read_log(struct run *q, const char *name)
{
	int fd = strcmp(name, "-") == 0 ? 0 : open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "mxjail report: %s: %s\n", name, strerror(errno));
		return -1;
	}
	struct linereader lr;
	linereader_init(&lr, fd, 1 << 20);
	const char *line;
	size_t len;
	int r;
	unsigned long before = q->lines;
	while ((r = linereader_next(&lr, &line, &len)) == 1)
		feed(q, line, len);
	if (r < 0)
		fprintf(stderr, "mxjail report: %s: %s\n", name, strerror(errno));
	linereader_free(&lr);
	if (fd > 0)
		close(fd);
	report_input(q->r, q->lines - before, strcmp(name, "-") == 0 ? "stdin" : name);
	return r < 0 ? -1 : 0;
}

/* ---------- state ---------- */

/* The policy service keeps its tables in its own journal/snapshot rows, in
 * its state file (statefile: a copy, like the store) or, written by an older
 * version, in the store; the engine loads them back as the daemon would, and
 * lists them. */
static void read_policy(struct report *r, const struct config *cfg, struct store *st,
			const char *statefile, double now)
{
	struct kvlist sp = KVLIST_INIT, sg = KVLIST_INIT, sr = KVLIST_INIT, ss = KVLIST_INIT;
	config_section(cfg, "policy", &sp);
	config_section(cfg, "greylist", &sg);
	config_section(cfg, "ratelimit", &sr);
	config_section(cfg, "spoof", &ss);
	char err[512];
	struct policy *p = policy_open(&sp, &sg, &sr, &ss, statefile, st, NULL, now, err,
				       sizeof err);
	kvlist_free(&sp);
	kvlist_free(&sg);
	kvlist_free(&sr);
	kvlist_free(&ss);
	if (!p) {
		report_note(r, "policy state not read: %s", err);
		return;
	}
	struct strbuf gl = STRBUF_INIT, rl = STRBUF_INIT;
	int hg = policy_greylist_list(p, 1, now, &gl) == 0;
	int hr = policy_ratelimit_list(p, 1, now, &rl) == 0;
	if (hg || hr) {
		struct report_policy_state ps;
		report_policy_count(hg ? strbuf_str(&gl) : NULL, hr ? strbuf_str(&rl) : NULL, &ps);
		report_policy_state(r, &ps);
	}
	strbuf_free(&gl);
	strbuf_free(&rl);
	policy_free(p);
}

/* Copies src to dst (created, mode 0600). Returns 0, 1 when src does not
 * exist, -1 on error (errno set). */
static int copy_file(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return errno == ENOENT ? 1 : -1;
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return -1;
	}
	char buf[1 << 16];
	ssize_t n;
	int rc = 0;
	while ((n = read(in, buf, sizeof buf)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -1;
			break;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				rc = -1;
				break;
			}
			off += w;
		}
		if (rc < 0)
			break;
	}
	int e = errno;
	close(in);
	if (close(out) < 0 && rc == 0)
		rc = -1;
	errno = e;
	return rc;
}

/* Removes the scratch directory and whatever SQLite left in it. */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
				char *p = xasprintf("%s/%s", dir, e->d_name);
				unlink(p);
				free(p);
			}
		closedir(d);
	}
	rmdir(dir);
}

struct hist_walk {
	struct report *r;
	int have_logs;
	unsigned long rows, live;
};

/* One ban of the history: counted as a ban from the state, its evidence as
 * failures when no log was read (they are log lines the logs would repeat). */
static int hist_row(void *arg, const struct store_ro_ban *b)
{
	struct hist_walk *w = arg;
	report_ban(w->r, b->jail, b->id, b->timeofban, REPORT_BAN_STATE, b->bancount, b->live);
	w->rows++;
	w->live += b->live != 0;
	if (!w->have_logs && b->nlines > 0) {
		size_t rj = report_jail(w->r, b->jail);
		for (size_t e = 0; e < b->nlines; e++)
			report_failure(w->r, &rj, 1, b->id, b->timeofban, b->lines[e],
				       strlen(b->lines[e]), NULL);
	}
	return 0;
}

/* Copies the database at path and its write-ahead log into dir. Returns the
 * copy's path (caller frees) or NULL with errno set. */
static char *copy_db(const char *path, const char *dir)
{
	char *copy = xasprintf("%s/mxjail.sqlite3", dir);
	char *wal = xasprintf("%s-wal", path), *copywal = xasprintf("%s-wal", copy);
	int cr = copy_file(path, copy);
	if (cr == 0)
		cr = copy_file(wal, copywal) < 0 ? -1 : 0;
	int e = errno;
	free(wal);
	free(copywal);
	if (cr != 0) {
		free(copy);
		errno = cr > 0 ? ENOENT : e;
		return NULL;
	}
	return copy;
}

/* Rows an older policy service kept in the daemon's store (policy.c moves
 * these namespaces into its own file). */
static const char *const legacy_policy_ns[] = {"greylist", "awl", "ratelimit"};

/* The ban history is walked through a read-only connection (store_ro.h): no
 * copy, whatever its size. Only two cases take a copy of the database and
 * its write-ahead log: a file SQLite cannot open read-only (a write-ahead log
 * in a directory we may not write), and policy rows an older version left in
 * the store - policy_open() moves those out of the struct store it is given,
 * and store_open() itself may move a database aside, which a report must
 * never do to the daemon's file. */
static int read_state(struct run *q, const struct config *cfg, const char *statedir,
		      int have_logs, double now)
{
	char *path = xasprintf("%s/mxjail.sqlite3", statedir);
	if (access(path, R_OK) != 0) {
		report_note(q->r, "no state database at %s (%s)", path, strerror(errno));
		free(path);
		return 0;
	}
	const char *tmp = getenv("TMPDIR");
	char *scratch = xasprintf("%s/mxjail-report-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(scratch)) {
		fprintf(stderr, "mxjail report: %s: %s\n", scratch, strerror(errno));
		free(scratch);
		free(path);
		return -1;
	}
	char *copy = NULL;
	const char *src = path;    /* what the read-only walks open */
	struct hist_walk hw = {q->r, have_logs, 0, 0};
	char hmsg[512];
	size_t maxlines = have_logs ? 0 : 1000;
	long hn = store_ro_history(path, now, 0, maxlines, 2000, hist_row, &hw, hmsg, sizeof hmsg);
	if (hn < 0 && hw.rows == 0) {
		copy = copy_db(path, scratch);
		if (!copy) {
			fprintf(stderr, "mxjail report: copying %s: %s\n", path, strerror(errno));
			remove_dir(scratch);
			free(scratch);
			free(path);
			return -1;
		}
		src = copy;
		hn = store_ro_history(copy, now, 0, maxlines, 2000, hist_row, &hw, hmsg,
				      sizeof hmsg);
	}
	if (hn < 0)
		report_note(q->r, "state %s cannot be read (left untouched): %s", path, hmsg);
	report_input(q->r, 0, path);

	/* a store for the policy's legacy rows only when there are some */
	struct store *st = NULL;
	long legacy = hn < 0 ? 0 : store_ro_kv_count(src, legacy_policy_ns,
						      sizeof legacy_policy_ns / sizeof *legacy_policy_ns,
						      now, 2000, hmsg, sizeof hmsg);
	if (legacy != 0 && !copy && !(copy = copy_db(path, scratch)))
		report_note(q->r, "policy rows of %s not copied: %s", path, strerror(errno));
	if (legacy != 0 && copy) {
		struct store_opts so = STORE_OPTS_DEFAULT;
		so.skip_check = 1;
		char msg[512];
		if (store_open(copy, &so, &st, msg, sizeof msg) < 0)
			report_note(q->r, "policy rows of %s not read: %s", path, msg);
	}
	/* the policy service's own file, copied too (missing: nothing copied) */
	char *ps = xasprintf("%s/policy-state.sqlite3", statedir);
	char *pscopy = xasprintf("%s/policy-state.sqlite3", scratch);
	char *pswal = xasprintf("%s-wal", ps), *pscopywal = xasprintf("%s-wal", pscopy);
	if (copy_file(ps, pscopy) < 0 || copy_file(pswal, pscopywal) < 0)
		report_note(q->r, "policy state %s not copied: %s", ps, strerror(errno));
	read_policy(q->r, cfg, st, pscopy, now);
	free(ps);
	free(pscopy);
	free(pswal);
	free(pscopywal);
	if (hn >= 0)
		report_note(q->r, "state %s: %lu bans in force, %lu bans in its history", path,
			    hw.live, hw.rows);
	if (st)
		store_close(st);
	free(copy);
	remove_dir(scratch);
	free(scratch);
	free(path);
	return 0;
}

/* ---------- audit ---------- */

/* Runs `mxjail audit -c DIR [--json]` (this same binary) and hands what it
 * prints to the report: the audit gathers its own inputs (postconf,
 * doveconf), so the report asks it rather than doing that again. Exit 1
 * only means a high finding. */
static void run_audit(struct report *r, const char *dir, int json)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	int fd[2];
	if (n <= 0 || pipe(fd) != 0) {
		report_note(r, "audit: cannot run mxjail audit");
		return;
	}
	exe[n] = '\0';
	pid_t pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		report_note(r, "audit: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 2);
		}
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		char *argv[] = {exe, "audit", "-c", (char *)dir, json ? "--json" : NULL, NULL};
		execv(exe, argv);
		_exit(127);
	}
	close(fd[1]);
	struct strbuf out = STRBUF_INIT;
	char buf[8192];
	ssize_t k;
	while ((k = read(fd[0], buf, sizeof buf)) != 0) {
		if (k < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (out.len < MAX_AUDIT)
			strbuf_add(&out, buf, (size_t)k);
	}
	close(fd[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) <= 1 && out.len && out.len < MAX_AUDIT &&
	    memchr(strbuf_str(&out), '\0', out.len) == NULL)
		report_audit(r, strbuf_str(&out), json);
	else
		report_note(r, "audit: mxjail audit -c %s gave no report (exit %d)", dir,
			    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	strbuf_free(&out);
}

/* ---------- command ---------- */

struct logname {
	const char *name;
	double mtime;
	int pos;
};

static int cmp_logname(const void *a, const void *b)
{
	const struct logname *x = a, *y = b;
	if (x->mtime != y->mtime)
		return x->mtime < y->mtime ? -1 : 1;
	return x->pos - y->pos;
}

int cmd_report(int argc, char **argv)
{
	const char *dir = MXJAIL_SYSCONFDIR, *statedir = NULL, *html = NULL, *geoip = NULL;
	int json = 0, audit = 0;
	double now = -1, since = 0;
	size_t top = 20;
	char **want = NULL;
	size_t nwant = 0;
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"state", required_argument, NULL, 's'},
		{"since", required_argument, NULL, 'S'},
		{"now", required_argument, NULL, 'n'},
		{"jail", required_argument, NULL, 'j'},
		{"geoip", required_argument, NULL, 'g'},
		{"top", required_argument, NULL, 't'},
		{"audit", no_argument, NULL, 'A'},
		{"json", no_argument, NULL, 'J'},
		{"html", required_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, rc = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:j:h", longopts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'c': dir = optarg; break;
		case 's': statedir = optarg; break;
		case 'S':
			if (jail_parse_time(optarg, &since) < 0 || since <= 0) {
				fprintf(stderr, "mxjail report: --since expects a duration (1h, 7d, "
						"600), got '%s'\n", optarg);
				free(want);
				return 2;
			}
			break;
		case 'n':
			now = strtod(optarg, &end);
			if (*end || now < 0) {
				fprintf(stderr, "mxjail report: --now expects epoch seconds, got '%s'\n",
					optarg);
				free(want);
				return 2;
			}
			break;
		case 'j':
			want = xrealloc(want, (nwant + 1) * sizeof *want);
			want[nwant++] = optarg;
			break;
		case 'g': geoip = optarg; break;
		case 't': {
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 100000) {
				fprintf(stderr, "mxjail report: --top expects 1..100000\n");
				free(want);
				return 2;
			}
			top = (size_t)v;
			break;
		}
		case 'J': json = 1; break;
		case 'A': audit = 1; break;
		case 'H': html = optarg; break;
		case 'h': usage(); free(want); return 0;
		default: usage(); free(want); return 2;
		}
	}
	if (json && html) {
		fprintf(stderr, "mxjail report: --json and --html exclude each other\n");
		free(want);
		return 2;
	}
	if (now < 0)
		now = clocks_real();
	int nlogs = argc - optind;

	struct config cfg = {0};
	struct diag d = DIAG_INIT;
	struct report_opts ro = {.since = since > 0 ? now - since : 0, .top = top};
	struct run q = {0};
	q.now = now;
	q.r = report_new(&ro);
	struct report_geo *geo = NULL;
	FILE *hf = NULL;
	if (config_load(dir, &cfg, &d) < 0) {
		rc = 1;
		goto out;
	}
	if (!statedir && nlogs == 0) {
		const char *v = kvlist_get(&cfg.mxjail, "mxjail.statedir");
		statedir = v && *v ? v : DEFAULT_STATEDIR;
	}
	for (size_t w = 0; w < nwant; w++) {
		size_t i;
		for (i = 0; i < cfg.njails; i++)
			if (strcmp(cfg.jails[i].name, want[w]) == 0)
				break;
		if (i == cfg.njails) {
			diag_error(&d, NULL, 0, "no jail [%s] in %s", want[w], dir);
			rc = 1;
		}
	}
	if (rc)
		goto out;
	if (nlogs > 0) {
		for (size_t i = 0; i < cfg.njails; i++) {
			const struct jail_conf *jc = &cfg.jails[i];
			if (jailrun_wanted(jc, want, nwant) && add_jail(&q, jc, dir, now, &d) < 0)
				rc = 1;
		}
		if (rc)
			goto out;
		if (!q.njails)
			report_note(q.r, "no enabled jail in %s: only ban notices and policy lines "
					 "were read from the logs (name jails with --jail)",
				    dir);
		jailrun_share(&q.jr);
		report_note(q.r, "bans marked estimated follow each jail's maxretry, findtime and "
				 "bantime over the logs");
	}
	if (html) {
		hf = fopen(html, "w");
		if (!hf) {
			fprintf(stderr, "mxjail report: %s: %s\n", html, strerror(errno));
			rc = 1;
			goto out;
		}
	}
	diag_print(&d, stderr);
	diag_clear(&d);
	if (nlogs > 0 && !q.jr.nfilters && q.njails) {
		rc = 1;
		goto out;
	}
	/* oldest file first (mail.log.1 before mail.log), so the jails see time
	 * going forward when they estimate bans; stdin last */
	struct logname *ln = xcalloc((size_t)nlogs + 1, sizeof *ln);
	for (int i = 0; i < nlogs; i++) {
		struct stat sb;
		ln[i].name = argv[optind + i];
		ln[i].pos = i;
		ln[i].mtime = strcmp(ln[i].name, "-") == 0 ? 1e300
			      : stat(ln[i].name, &sb) == 0 ? (double)sb.st_mtim.tv_sec +
								  sb.st_mtim.tv_nsec / 1e9
							    : 0;
	}
	qsort(ln, (size_t)nlogs, sizeof *ln, cmp_logname);
	for (int i = 0; i < nlogs; i++)
		if (read_log(&q, ln[i].name) < 0)
			rc = 1;
	free(ln);
	if (statedir && read_state(&q, &cfg, statedir, nlogs > 0, now) < 0)
		rc = 1;

	char gerr[512];
	geo = report_geo_open(geoip, gerr, sizeof gerr);
	if (!geo && geoip) {
		fprintf(stderr, "mxjail report: GeoIP: %s\n", gerr);
		rc = 1;
		goto out;
	}
	if (audit)
		run_audit(q.r, dir, json);
	report_finish(q.r, geo, now);
	struct strbuf o = STRBUF_INIT;
	if (json)
		report_format_json(q.r, &o);
	else if (html)
		report_format_html(q.r, &o);
	else
		report_format_text(q.r, &o);
	if (hf) {
		if (fwrite(o.s ? o.s : "", 1, o.len, hf) != o.len || fflush(hf) != 0) {
			fprintf(stderr, "mxjail report: %s: %s\n", html, strerror(errno));
			rc = 1;
		}
	} else {
		fwrite(o.s ? o.s : "", 1, o.len, stdout);
	}
	strbuf_free(&o);
out:
	if (hf && fclose(hf) != 0 && rc == 0) {
		fprintf(stderr, "mxjail report: %s: %s\n", html, strerror(errno));
		rc = 1;
	}
	diag_print(&d, stderr);
	diag_clear(&d);
	report_geo_close(geo);
	run_free(&q);
	report_free(q.r);
	config_free(&cfg);
	free(want);
	return rc;
}
