/*
 * replay - `mxjail replay`: runs jails over old logs with the logs' own clock
 * and prints who would have been banned when.
 *
 *   mxjail replay [-c DIR] [--jail J]... [--now EPOCH] [--json] LOG...|-
 *
 * The way to tune a jail before enabling it: no firewall, no state database,
 * nothing is written. The enabled jails (or the ones named with --jail,
 * enabled or not) read every LOG given, whatever their logpath says; their
 * filters are loaded for text logs even when the jail's backend is the
 * journal. Time comes from the lines: the replay clock starts at the first
 * dated line and follows the newest line seen, so findtime, bantime, the end
 * of a ban and bantime.increment (counted from the bans of this replay) are
 * what they would have been on the day. Several logs are merged by time, the
 * way lines would have arrived.
 *
 * The decisions follow the daemon's (src/daemon/daemon_ban.c): a failure
 * older than findtime is dropped, ignored ids (ignoreip, ignoreself,
 * ignorecommand) never count, a failure of an address that is banned moves
 * the end of its ban to t + bantime, and a ban whose end would already be past
 * is not made. bantime.rndtime is left out so that two runs agree.
 *
 * Output: a per-jail summary in fail2ban-client's `status` shape and the list
 * of bans; with --json one object per ban, in ban order.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/clocks.h"
#include "core/timefmt.h"
#include "core/diag.h"
#include "core/kvlist.h"
#include "core/linereader.h"
#include "core/strbuf.h"
#include "core/strmap.h"
#include "core/xmalloc.h"
#include "filters/filter.h"
#include "jails/ignore.h"
#include "jails/jail.h"
#include "jails/jailrun.h"
#include "net/addr.h"

/* Lines of a log without any date take the replay clock; tracked failures
 * are dropped once they are older than findtime every this many lines. */
#define EXPIRE_EVERY 4096

struct rjail {
	char *name;
	char *filter_spec;
	size_t flt;                /* index into rp.jr.filters */
	struct jail_params p;
	int banprefix6;
	struct jail *j;
	struct ignorelist *ign;
	unsigned long failed, ignored, too_old, not_addr, banned, prolonged;
};

struct rban {
	size_t jail;
	char *id;
	double time, bantime, end; /* end < 0: forever */
	unsigned failures, bancount, prolongs;
};


struct replay {
	struct jailrun jr;         /* the jails' filters */
	struct rjail *jails;
	size_t njails;
	struct rban *bans;
	size_t nbans;
	struct strmap live;        /* "jail\nid" -> index of its latest ban */
	struct strmap hist_jail;   /* "jail\nid" -> bans so far */
	struct strmap hist_all;    /* "id" -> bans so far, every jail */
	double now;                /* the replay clock (-1 until the first dated line) */
	double first;
	unsigned long lines;
	struct filter_result res;
};


/* ---------- set-up ---------- */

static int add_jail(struct replay *rp, const struct config *cfg, const struct jail_conf *jc,
		    double now, struct diag *d)
{
	char err[512];
	struct rjail rj = {0};
	size_t maxtracked = 1000000;
	const char *mt = kvlist_get(&cfg->mxjail, "mxjail.maxtracked");
	if (mt && *mt)
		maxtracked = strtoul(mt, NULL, 10);
	if (jail_params_from_opts(&jc->opts, maxtracked, &rj.p, &rj.banprefix6, err, sizeof err) < 0) {
		diag_error(d, jc->file, jc->line, "jail [%s]: %s", jc->name, err);
		jail_incr_free(&rj.p.incr);
		return -1;
	}
	if (!jc->filter || !*jc->filter) {
		diag_error(d, jc->file, jc->line, "jail [%s]: no filter (set filter = NAME)", jc->name);
		jail_incr_free(&rj.p.incr);
		return -1;
	}
	if (jailrun_filter_add(&rp->jr, jc, cfg->dir, now, JAILRUN_DIAG_KEEP, &rj.flt, d) < 0) {
		jail_incr_free(&rj.p.incr);
		return -1;
	}
	if (jailrun_ignore(jc, now, JAILRUN_DIAG_KEEP, &rj.ign, d) < 0) {
		jail_incr_free(&rj.p.incr);
		return -1;
	}
	rj.name = xstrdup(jc->name);
	rj.filter_spec = xstrdup(jc->filter);
	rj.j = jail_new(&rj.p);
	rp->jails = xrealloc(rp->jails, (rp->njails + 1) * sizeof *rp->jails);
	rp->jails[rp->njails++] = rj;
	return 0;
}

static void replay_free(struct replay *rp)
{
	jailrun_free(&rp->jr);
	for (size_t i = 0; i < rp->njails; i++) {
		struct rjail *j = &rp->jails[i];
		free(j->name);
		free(j->filter_spec);
		jail_free(j->j);
		jail_incr_free(&j->p.incr);
		ignore_free(j->ign);
	}
	free(rp->jails);
	for (size_t i = 0; i < rp->nbans; i++)
		free(rp->bans[i].id);
	free(rp->bans);
	strmap_free(&rp->live);
	strmap_free(&rp->hist_jail);
	strmap_free(&rp->hist_all);
	filter_result_free(&rp->res);
}

/* ---------- decisions ---------- */

/* What a ban covers: the host, or the /banprefix6 of an IPv6 host. */
static struct addr ban_target(const struct rjail *j, const struct addr *a)
{
	struct addr t = *a;
	if (a->family == 6 && j->banprefix6 > 0 && j->banprefix6 < 128 && a->prefix == 128) {
		char buf[ADDR_STRLEN], cidr[ADDR_STRLEN + 8];
		addr_format(a, buf, sizeof buf);
		snprintf(cidr, sizeof cidr, "%s/%d", buf, j->banprefix6);
		addr_parse_cidr(cidr, strlen(cidr), &t);
	}
	return t;
}

static int is_ignored(struct rjail *j, const char *id, const struct kvlist *groups)
{
	struct kvlist tags = KVLIST_INIT;
	kvlist_set(&tags, "ip", id);
	for (size_t i = 0; groups && i < groups->n; i++) {
		char key[128];
		snprintf(key, sizeof key, "F-%s", groups->v[i].key);
		kvlist_set(&tags, key, groups->v[i].value);
	}
	/* the ignore cache and file: checks run on the real clock, not the log's */
	enum ignore_reason r = ignore_check(j->ign, id, &tags, clocks_real(), NULL);
	kvlist_free(&tags);
	return r != IGNORE_NONE;
}

static void on_failure(struct replay *rp, size_t ji, const struct filter_hit *h, double t)
{
	struct rjail *j = &rp->jails[ji];
	if (t < rp->now - j->p.findtime) {
		j->too_old++;
		return;
	}
	if (is_ignored(j, h->id, &h->groups)) {
		j->ignored++;
		return;
	}
	struct addr a;
	if (addr_parse(h->id, strlen(h->id), &a) < 0) {
		j->not_addr++;
		return;
	}
	j->failed++;
	struct addr target = ban_target(j, &a);
	char id[ADDR_STRLEN];
	addr_format(&target, id, sizeof id);
	struct strbuf key = STRBUF_INIT;
	strbuf_addf(&key, "%s\n%s", j->name, id);
	size_t *live = strmap_slot(&rp->live, strbuf_str(&key), 0, 0);
	if (live) {
		struct rban *b = &rp->bans[*live];
		if (b->end < 0 || b->end > t) {
			/* banned: the end moves to t + bantime, as the daemon does */
			double ne = b->bantime < 0 ? -1 : t + b->bantime;
			if (b->end >= 0 && (ne < 0 || ne > b->end + 1)) {
				b->end = ne;
				b->prolongs++;
				j->prolonged++;
			}
			strbuf_free(&key);
			return;
		}
	}
	struct jail_ban jb;
	if (jail_add_failure(j->j, h->id, t, (const char *const *)h->lines, h->nlines, &jb) != 1) {
		strbuf_free(&key);
		return;
	}
	size_t *hj = strmap_slot(&rp->hist_jail, strbuf_str(&key), 1, 0);
	size_t *ha = strmap_slot(&rp->hist_all, id, 1, 0);
	/* strmap_slot may move the other map's slots only within its own map */
	unsigned prev = (unsigned)(j->p.incr.overalljails ? *ha : *hj);
	double bt = jail_bantime(&j->p, prev, 0.0);
	double end = bt < 0 ? -1 : t + bt;
	if (end >= 0 && end <= rp->now) {
		jail_ban_clear(&jb);
		strbuf_free(&key);
		return;
	}
	(*hj)++;
	(*ha)++;
	rp->bans = xrealloc(rp->bans, (rp->nbans + 1) * sizeof *rp->bans);
	struct rban *b = &rp->bans[rp->nbans];
	b->jail = ji;
	b->id = xstrdup(id);
	b->time = t;
	b->bantime = bt;
	b->end = end;
	b->failures = jb.failures;
	b->bancount = prev + 1;
	b->prolongs = 0;
	*strmap_slot(&rp->live, strbuf_str(&key), 1, 0) = rp->nbans++;
	j->banned++;
	jail_ban_clear(&jb);
	strbuf_free(&key);
}

/* One line through every filter, failures to every jail on that filter. */
static void feed(struct replay *rp, const char *line, size_t len)
{
	rp->lines++;
	struct datedetect_memo memo; /* filters with different date settings share searches */
	datedetect_memo_reset(&memo);
	for (size_t i = 0; i < rp->jr.nfilters; i++) {
		struct jailrun_filter *rf = &rp->jr.filters[i];
		if (rf->share == i) {
			filter_prepare_memo(rf->f, line, len, -1.0, &rf->clk, &memo, &rf->fl);
			if (rf->fl.found == 1 && i == 0) {
				if (rp->first < 0)
					rp->first = rf->fl.t;
				if (rf->fl.t > rp->now)
					rp->now = rf->fl.t;
			}
		}
		filter_result_reset(&rp->res);
		filter_process_prepared(rf->f, &rp->jr.filters[rf->share].fl, &rf->clk, &rp->res);
		for (size_t h = 0; h < rp->res.n; h++) {
			const struct filter_hit *hit = &rp->res.hits[h];
			if (!hit->id || hit->nofail)
				continue;
			double t = hit->time > 0 ? hit->time : rp->now;
			if (t > rp->now) {
				if (rp->first < 0)
					rp->first = t;
				rp->now = t;
			}
			for (size_t k = 0; k < rp->njails; k++)
				if (rp->jails[k].flt == i)
					on_failure(rp, k, hit, t);
		}
	}
	if (rp->lines % EXPIRE_EVERY == 0)
		for (size_t k = 0; k < rp->njails; k++)
			jail_expire(rp->jails[k].j, rp->now);
}

/* ---------- reading ---------- */

struct rlog {
	const char *name;
	int fd;
	struct linereader lr;
	const char *line;      /* the next line, valid until this log is read again */
	size_t len;
	double t;              /* its date (or the previous line's) */
	int have;
};

/* Reads the next line of a log and its date, as the first filter sees it. */
static int rlog_next(struct replay *rp, struct rlog *l)
{
	int r = linereader_next(&l->lr, &l->line, &l->len);
	if (r <= 0) {
		if (r < 0)
			fprintf(stderr, "mxjail replay: %s: %s\n", l->name, strerror(errno));
		l->have = 0;
		return r;
	}
	l->have = 1;
	struct jailrun_filter *rf = &rp->jr.filters[0];
	struct filter_line fl;
	filter_prepare(rf->f, l->line, l->len, -1.0, &rf->clk, &fl);
	if (fl.found == 1)
		l->t = fl.t;
	return 1;
}

static int replay_logs(struct replay *rp, char **names, size_t n)
{
	struct rlog *logs = xcalloc(n, sizeof *logs);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		logs[i].name = names[i];
		logs[i].t = -1e300;
		if (strcmp(names[i], "-") == 0) {
			logs[i].fd = 0;
		} else {
			logs[i].fd = open(names[i], O_RDONLY | O_CLOEXEC);
			if (logs[i].fd < 0) {
				fprintf(stderr, "mxjail replay: %s: %s\n", names[i], strerror(errno));
				rc = -1;
				continue;
			}
		}
		linereader_init(&logs[i].lr, logs[i].fd, 1 << 20);
	}
	if (rc == 0 && n == 1) {
		/* one log: no merge, one date parse per line */
		const char *line;
		size_t len;
		int r;
		while ((r = linereader_next(&logs[0].lr, &line, &len)) == 1)
			feed(rp, line, len);
		if (r < 0) {
			fprintf(stderr, "mxjail replay: %s: %s\n", names[0], strerror(errno));
			rc = -1;
		}
	} else if (rc == 0) {
		for (size_t i = 0; i < n; i++)
			if (rlog_next(rp, &logs[i]) < 0)
				rc = -1;
		for (;;) {
			struct rlog *best = NULL;
			for (size_t i = 0; i < n; i++)
				if (logs[i].have && (!best || logs[i].t < best->t))
					best = &logs[i];
			if (!best)
				break;
			feed(rp, best->line, best->len);
			if (rlog_next(rp, best) < 0)
				rc = -1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (logs[i].lr.buf)
			linereader_free(&logs[i].lr);
		if (logs[i].fd > 0)
			close(logs[i].fd);
	}
	free(logs);
	return rc;
}

/* ---------- output ---------- */

static void fmt_span(double s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "forever");
	else
		snprintf(buf, len, "%.0f", s);
}

static int ban_live(const struct rban *b, double now)
{
	return b->end < 0 || b->end > now;
}

static void print_json(const struct replay *rp)
{
	struct strbuf o = STRBUF_INIT;
	for (size_t i = 0; i < rp->nbans; i++) {
		const struct rban *b = &rp->bans[i];
		char ts[32], te[32];
		timefmt_local(b->time, ts, sizeof ts);
		timefmt_local(b->end, te, sizeof te);
		strbuf_reset(&o);
		strbuf_adds(&o, "{\"jail\":");
		strbuf_add_json(&o, rp->jails[b->jail].name, strlen(rp->jails[b->jail].name));
		strbuf_adds(&o, ",\"address\":");
		strbuf_add_json(&o, b->id, strlen(b->id));
		strbuf_addf(&o, ",\"time\":%.0f,\"time_text\":\"%s\",\"failures\":%u,\"bancount\":%u",
			    b->time, ts, b->failures, b->bancount);
		if (b->bantime < 0)
			strbuf_adds(&o, ",\"bantime\":-1,\"unban\":null,\"unban_text\":\"never\"");
		else
			strbuf_addf(&o, ",\"bantime\":%.0f,\"unban\":%.0f,\"unban_text\":\"%s\"",
				    b->bantime, b->end, te);
		strbuf_addf(&o, ",\"prolongs\":%u,\"banned_at_end\":%s}\n", b->prolongs,
			    ban_live(b, rp->now) ? "true" : "false");
		fputs(strbuf_str(&o), stdout);
	}
	strbuf_free(&o);
}

static void print_text(const struct replay *rp, char **logs, size_t nlogs)
{
	char a[32], b[32];
	timefmt_local(rp->first, a, sizeof a);
	timefmt_local(rp->now, b, sizeof b);
	printf("Replayed %lu lines", rp->lines);
	if (rp->first >= 0)
		printf(" from %s to %s (log time)", a, b);
	printf("\n");
	for (size_t k = 0; k < rp->njails; k++) {
		const struct rjail *j = &rp->jails[k];
		size_t now_banned = 0;
		for (size_t i = 0; i < rp->nbans; i++)
			if (rp->bans[i].jail == k && ban_live(&rp->bans[i], rp->now))
				now_banned++;
		printf("\nStatus for the jail: %s\n", j->name);
		printf("|- Filter\n");
		printf("|  |- Filter:           %s\n", j->filter_spec);
		printf("|  |- Currently failed: %zu\n", jail_tracked(j->j));
		printf("|  |- Total failed:     %lu\n", j->failed);
		printf("|  |- Ignored:          %lu\n", j->ignored);
		if (j->too_old)
			printf("|  |- Older than findtime: %lu\n", j->too_old);
		printf("|  `- File list:       ");
		for (size_t i = 0; i < nlogs; i++)
			printf(" %s", logs[i]);
		printf("\n");
		printf("`- Actions\n");
		printf("   |- Currently banned: %zu\n", now_banned);
		printf("   |- Total banned:     %lu\n", j->banned);
		printf("   |- Prolonged:        %lu\n", j->prolonged);
		printf("   `- Banned IP list:  ");
		for (size_t i = 0; i < rp->nbans; i++)
			if (rp->bans[i].jail == k && ban_live(&rp->bans[i], rp->now))
				printf(" %s", rp->bans[i].id);
		printf("\n");
	}
	printf("\nBans (%zu):\n", rp->nbans);
	if (!rp->nbans)
		return;
	size_t wj = 4, wa = 7;
	for (size_t i = 0; i < rp->nbans; i++) {
		size_t l = strlen(rp->jails[rp->bans[i].jail].name);
		if (l > wj)
			wj = l;
		l = strlen(rp->bans[i].id);
		if (l > wa)
			wa = l;
	}
	printf("%-19s  %-*s  %-*s  %8s  %5s  %9s  %s\n", "TIME", (int)wj, "JAIL", (int)wa, "ADDRESS",
	       "FAILURES", "COUNT", "BANTIME", "UNBAN");
	for (size_t i = 0; i < rp->nbans; i++) {
		const struct rban *bn = &rp->bans[i];
		char ts[32], te[32], sp[32];
		timefmt_local(bn->time, ts, sizeof ts);
		timefmt_local(bn->end, te, sizeof te);
		fmt_span(bn->bantime, sp, sizeof sp);
		printf("%-19s  %-*s  %-*s  %8u  %5u  %9s  %s%s\n", ts, (int)wj,
		       rp->jails[bn->jail].name, (int)wa, bn->id, bn->failures, bn->bancount, sp, te,
		       bn->prolongs ? " (prolonged)" : "");
	}
}

/* ---------- command ---------- */

static void usage(void)
{
	fprintf(stderr, "usage: mxjail replay [-c DIR] [--jail JAIL]... [--now EPOCH] [--json] "
			"LOG...|-\n");
}

int cmd_replay(int argc, char **argv)
{
	const char *dir = MXJAIL_SYSCONFDIR;
	int json = 0;
	double now = -1;
	char **want = NULL;
	size_t nwant = 0;
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"jail", required_argument, NULL, 'j'},
		{"now", required_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, rc = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:j:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': dir = optarg; break;
		case 'j':
			want = xrealloc(want, (nwant + 1) * sizeof *want);
			want[nwant++] = optarg;
			break;
		case 'n': {
			char *end;
			now = strtod(optarg, &end);
			if (*end || now < 0) {
				fprintf(stderr, "mxjail replay: --now expects epoch seconds, got '%s'\n",
					optarg);
				free(want);
				return 2;
			}
			break;
		}
		case 'J': json = 1; break;
		case 'h': usage(); free(want); return 0;
		default: usage(); free(want); return 2;
		}
	}
	if (optind >= argc) {
		usage();
		free(want);
		return 2;
	}
	if (now < 0)
		now = clocks_real();
	struct config cfg = {0};
	struct diag d = DIAG_INIT;
	struct replay rp = {0};
	rp.now = -1;
	rp.first = -1;
	if (config_load(dir, &cfg, &d) < 0) {
		rc = 1;
		goto out;
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
	for (size_t i = 0; i < cfg.njails && rc == 0; i++) {
		const struct jail_conf *jc = &cfg.jails[i];
		if (jailrun_wanted(jc, want, nwant) && add_jail(&rp, &cfg, jc, now, &d) < 0)
			rc = 1;
	}
	if (rc)
		goto out;
	if (rp.njails == 0) {
		diag_error(&d, NULL, 0, "no enabled jail in %s (name one with --jail)", dir);
		rc = 1;
		goto out;
	}
	jailrun_share(&rp.jr);
	diag_print(&d, stderr);
	diag_clear(&d);
	if (replay_logs(&rp, argv + optind, (size_t)(argc - optind)) < 0)
		rc = 1;
	for (size_t k = 0; k < rp.njails; k++)
		jail_expire(rp.jails[k].j, rp.now);
	if (json)
		print_json(&rp);
	else
		print_text(&rp, argv + optind, (size_t)(argc - optind));
out:
	diag_print(&d, stderr);
	diag_clear(&d);
	replay_free(&rp);
	config_free(&cfg);
	free(want);
	return rc;
}
