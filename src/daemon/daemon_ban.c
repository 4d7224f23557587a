/*
 * daemon_ban - from a failure to a ban and back: ignore checks, counting,
 * ban length with increments, the store, the firewall and unban timers.
 *
 * Order of a ban (fail2ban's guarantees, and the store's): the ban is
 * committed to the store first, then the NOTICE "[jail] Ban ADDR" line is
 * logged (recidive reads it), then the firewall change is queued; the
 * end-of-turn hook commits it in one transaction with the others. A failure
 * of an address that is already banned moves the end of its ban to
 * max(old end, t + bantime).
 *
 * New bans are batched: a ban enters the live table at once (so the next
 * failure of the address prolongs it and the policy service sees it) but its
 * store row, log line and firewall change wait in dm->banq until
 * daemon_bans_commit() writes all of them in one SQLite transaction and then
 * reports them. One commit per ban costs a WAL write each (about 0.1 ms):
 * 10,000 bans from `mxjail ban` or a log burst would take a second. Anything
 * that touches a pending ban in the store (prolong, unban) commits the queue
 * first.
 *
 * Live bans are kept in a hash table keyed by (jail, id). Unbans use one
 * loop timer for the earliest end; when it fires, every due ban is lifted
 * and the timer is set for the next one, so 100,000 bans cost one timer.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "actions/fw_cmd.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timefmt.h"
#include "core/xmalloc.h"
#include "daemon/daemon_int.h"
#include "store/store.h"

/* Lifting a ban a little late is harmless; a scan per millisecond is not. */
#define EXPIRY_MIN_MS 100

/* A new ban waiting for the store commit (copies: the caller's buffers die). */
struct banq_item {
	struct daemon_ban *b;
	unsigned failures;
	unsigned prev;                 /* bans before this one (history count) */
	char **lines;
	size_t nlines;
	struct kvlist groups;
	int has_groups;
};

struct daemon_banq {
	struct banq_item *v;
	size_t n, cap;
};

/* ---------- table ---------- */

static uint64_t hash2(const char *a, const char *b)
{
	uint64_t h = hash_str(HASH_SEED, a);
	h = (h ^ 0xff) * 1099511628211ULL; /* a byte no text has: "ab"+"c" != "a"+"bc" */
	return hash_str(h, b);
}

static void tab_grow(struct daemon_bantab *t)
{
	size_t nb = t->nb ? t->nb * 2 : 256;
	struct daemon_ban **b = xcalloc(nb, sizeof *b);
	for (size_t i = 0; i < t->nb; i++)
		for (struct daemon_ban *e = t->b[i], *next; e; e = next) {
			next = e->next;
			size_t k = hash2(e->jailname, e->id) & (nb - 1);
			e->next = b[k];
			b[k] = e;
		}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

struct daemon_ban *daemon_ban_find(struct daemon *dm, const char *jail, const char *id)
{
	struct daemon_bantab *t = &dm->bans;
	if (!t->nb)
		return NULL;
	for (struct daemon_ban *e = t->b[hash2(jail, id) & (t->nb - 1)]; e; e = e->next)
		if (strcmp(e->id, id) == 0 && strcmp(e->jailname, jail) == 0)
			return e;
	return NULL;
}

static struct daemon_ban *tab_add(struct daemon *dm, struct daemon_jail *j, const char *id,
				  const struct addr *a)
{
	struct daemon_bantab *t = &dm->bans;
	if (t->n + 1 > t->nb)
		tab_grow(t);
	struct daemon_ban *e = xcalloc(1, sizeof *e);
	e->jail = j;
	e->jailname = xstrdup(j->name);
	e->id = xstrdup(id);
	e->a = *a;
	size_t k = hash2(e->jailname, e->id) & (t->nb - 1);
	e->next = t->b[k];
	t->b[k] = e;
	t->n++;
	j->banned_now++;
	return e;
}

static void tab_del(struct daemon *dm, struct daemon_ban *e)
{
	struct daemon_bantab *t = &dm->bans;
	struct daemon_ban **pp = &t->b[hash2(e->jailname, e->id) & (t->nb - 1)];
	while (*pp && *pp != e)
		pp = &(*pp)->next;
	if (*pp)
		*pp = e->next;
	t->n--;
	if (e->jail && e->jail->banned_now)
		e->jail->banned_now--;
	free(e->jailname);
	free(e->id);
	free(e);
}

void daemon_bans_foreach(struct daemon *dm, void (*cb)(struct daemon_ban *b, void *arg), void *arg)
{
	struct daemon_bantab *t = &dm->bans;
	for (size_t i = 0; i < t->nb; i++)
		for (struct daemon_ban *e = t->b[i], *next; e; e = next) {
			next = e->next; /* cb may delete e */
			cb(e, arg);
		}
}

void daemon_bans_free(struct daemon *dm)
{
	/* the caller committed the queue while the jails existed (daemon_free) */
	for (size_t i = 0; dm->banq && i < dm->banq->n; i++) {
		struct banq_item *it = &dm->banq->v[i];
		for (size_t k = 0; k < it->nlines; k++)
			free(it->lines[k]);
		free(it->lines);
		kvlist_free(&it->groups);
	}
	free(dm->banq ? dm->banq->v : NULL);
	free(dm->banq);
	dm->banq = NULL;
	struct daemon_bantab *t = &dm->bans;
	for (size_t i = 0; i < t->nb; i++)
		for (struct daemon_ban *e = t->b[i], *next; e; e = next) {
			next = e->next;
			free(e->jailname);
			free(e->id);
			free(e);
		}
	free(t->b);
	memset(t, 0, sizeof *t);
}

/* ---------- firewall helpers ---------- */

static unsigned long fw_timeout(double end, double now)
{
	if (end < 0)
		return 0;
	double left = ceil(end - now);
	if (left < 1)
		left = 1;
	if (left > (double)FW_MAX_TIMEOUT)
		left = (double)FW_MAX_TIMEOUT;
	return (unsigned long)left;
}

static void fw_apply(struct daemon *dm, struct daemon_ban *b, double now)
{
	(void)dm;
	if (!b->jail || !b->jail->fw)
		return;
	char err[512];
	dm->fw_ops[DFW_BAN]++;
	if (fw_ban(b->jail->fw, &b->jail->fwj, &b->a, fw_timeout(b->end, now), err, sizeof err) < 0) {
		dm->fw_errs[DFW_BAN]++;
		log_warnx("[%s] firewall: ban %s: %s", b->jailname, b->id, err);
	}
}

static void fw_remove(struct daemon *dm, struct daemon_ban *b)
{
	(void)dm;
	if (!b->jail || !b->jail->fw)
		return;
	char err[512];
	dm->fw_ops[DFW_UNBAN]++;
	if (fw_unban(b->jail->fw, &b->jail->fwj, &b->a, err, sizeof err) < 0) {
		dm->fw_errs[DFW_UNBAN]++;
		log_warnx("[%s] firewall: unban %s: %s", b->jailname, b->id, err);
	}
}

/* ---------- command actions (action.d) ---------- */

/* The ban's tags for command actions, named as fail2ban's action info. */
static void ticket_values(const struct daemon_ban *b, unsigned failures, char **lines,
			  size_t nlines, const struct kvlist *groups, int restored, struct kvlist *v)
{
	char n[64];
	kvlist_set(v, "ip", b->id);
	kvlist_set(v, "fid", b->id);
	kvlist_set(v, "family", b->a.family == 6 ? "inet6" : "inet4");
	snprintf(n, sizeof n, "%u", failures);
	kvlist_set(v, "failures", n);
	kvlist_set(v, "ipfailures", n);
	kvlist_set(v, "ipjailfailures", n);
	snprintf(n, sizeof n, "%.0f", b->timeofban);
	kvlist_set(v, "time", n);
	snprintf(n, sizeof n, "%.0f", b->bantime < 0 ? -1.0 : b->bantime);
	kvlist_set(v, "bantime", n);
	snprintf(n, sizeof n, "%u", b->bancount);
	kvlist_set(v, "bancount", n);
	kvlist_set(v, "restored", restored ? "1" : "0");
	struct strbuf m = STRBUF_INIT;
	for (size_t i = 0; i < nlines; i++) {
		if (i)
			strbuf_addc(&m, '\n');
		strbuf_adds(&m, lines[i]);
	}
	kvlist_set(v, "matches", strbuf_str(&m));
	kvlist_set(v, "ipmatches", strbuf_str(&m));
	kvlist_set(v, "ipjailmatches", strbuf_str(&m));
	strbuf_free(&m);
	for (size_t i = 0; groups && i < groups->n; i++) {
		char *k = xasprintf("F-%s", groups->v[i].key);
		for (char *p = k + 2; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		kvlist_set(v, k, groups->v[i].value);
		free(k);
	}
}

enum cmd_op { CMD_BAN, CMD_PROLONG, CMD_UNBAN };

static void cmd_apply(struct daemon_ban *b, enum cmd_op op, unsigned failures, char **lines,
		      size_t nlines, const struct kvlist *groups, int restored)
{
	if (!b->jail || !b->jail->ncmds)
		return;
	struct kvlist v = KVLIST_INIT;
	ticket_values(b, failures, lines, nlines, groups, restored, &v);
	for (size_t i = 0; i < b->jail->ncmds; i++) {
		struct fw_cmd *c = b->jail->cmds[i];
		if (op == CMD_BAN)
			fw_cmd_ban(c, &v, restored);
		else if (op == CMD_PROLONG)
			fw_cmd_prolong(c, &v);
		else
			fw_cmd_unban(c, &v);
	}
	kvlist_free(&v);
}

struct shutdown_walk {
	struct daemon_jail *j;
	struct fw_cmd *c;
};

static void shutdown_unban(struct daemon_ban *b, void *arg)
{
	struct shutdown_walk *w = arg;
	if (b->jail != w->j)
		return;
	struct kvlist v = KVLIST_INIT;
	ticket_values(b, 0, NULL, 0, NULL, 0, &v);
	fw_cmd_unban(w->c, &v);
	kvlist_free(&v);
}

void daemon_actions_shutdown(struct daemon *dm)
{
	if (!dm->cmdq)
		return;
	for (size_t i = 0; dm->set && i < dm->set->njails; i++) {
		struct daemon_jail *j = dm->set->jails[i];
		for (size_t k = 0; k < j->ncmds; k++) {
			/* fail2ban: actionflush when the action has one, else unban each */
			if (!fw_cmd_has_flush(j->cmds[k])) {
				struct shutdown_walk w = {j, j->cmds[k]};
				daemon_bans_foreach(dm, shutdown_unban, &w);
			}
			fw_cmd_flush(j->cmds[k]);
			fw_cmd_stop(j->cmds[k]);
		}
	}
	size_t left = fw_cmdq_wait(dm->cmdq, 30);
	if (left)
		log_warnx("command actions: %zu job%s still running at shutdown", left,
			  left == 1 ? "" : "s");
}

void daemon_fw_rebuild(struct daemon *dm, const char *why)
{
	struct fw *fws[16];
	size_t nfw = daemon_fw_all(dm, fws, 16);
	double now = daemon_now();
	struct fw_ban *v = xcalloc(dm->bans.n + 1, sizeof *v);
	for (size_t f = 0; f < nfw; f++) {
		size_t n = 0;
		struct daemon_bantab *t = &dm->bans;
		for (size_t i = 0; i < t->nb; i++)
			for (struct daemon_ban *e = t->b[i]; e; e = e->next) {
				if (!e->jail || e->jail->fw != fws[f])
					continue;
				v[n].jail = &e->jail->fwj;
				v[n].addr = e->a;
				v[n].timeout = fw_timeout(e->end, now);
				n++;
			}
		char err[512];
		const char *be = fws[f]->be->name;
		dm->fw_ops[DFW_REBUILD]++;
		if (fw_rebuild(fws[f], v, n, err, sizeof err) < 0) {
			dm->fw_errs[DFW_REBUILD]++;
			log_warnx("firewall: rebuild (%s): %s", why, err);
		} else if (f == 0 || n)
			log_info("firewall%s%s: %s: %zu ban%s applied", f ? " " : "", f ? be : "", why, n,
				 n == 1 ? "" : "s");
	}
	free(v);
}

/* ---------- expiry ---------- */

static void expiry_fire(struct loop *l, void *arg);

static void expiry_consider(struct daemon *dm, double end)
{
	if (end < 0 || dm->stopping)
		return;
	if (dm->expiry_at > 0 && dm->expiry_at <= end)
		return;
	if (dm->expiry_timer)
		loop_timer_del(dm->loop, dm->expiry_timer);
	double ms = (end - daemon_now()) * 1000.0;
	if (ms < EXPIRY_MIN_MS)
		ms = EXPIRY_MIN_MS;
	dm->expiry_at = end;
	dm->expiry_timer = loop_timer_add(dm->loop, (uint64_t)ms, expiry_fire, dm);
}

static void lift(struct daemon *dm, struct daemon_ban *b, double now)
{
	if (b->pending)
		daemon_bans_commit(dm);
	if (store_unban(dm->store, b->jailname, b->id, now) < 0)
		log_warnx("state: recording the unban of %s: %s", b->id, store_error(dm->store));
	fw_remove(dm, b);
	cmd_apply(b, CMD_UNBAN, 0, NULL, 0, NULL, 0);
	log_notice("[%s] Unban %s", b->jailname, b->id);
	tab_del(dm, b);
}

struct expiry_walk {
	struct daemon *dm;
	double now, next;
};

static void expiry_one(struct daemon_ban *b, void *arg)
{
	struct expiry_walk *w = arg;
	if (b->end < 0)
		return;
	if (b->end <= w->now + 0.001) {
		lift(w->dm, b, w->now);
		return;
	}
	if (w->next < 0 || b->end < w->next)
		w->next = b->end;
}

static void expiry_fire(struct loop *l, void *arg)
{
	(void)l;
	struct daemon *dm = arg;
	dm->expiry_timer = 0;
	dm->expiry_at = 0;
	struct expiry_walk w = {dm, daemon_now(), -1};
	daemon_bans_foreach(dm, expiry_one, &w);
	if (w.next >= 0)
		expiry_consider(dm, w.next);
}

void daemon_expiry_arm(struct daemon *dm)
{
	struct expiry_walk w = {dm, -1e300, -1};
	daemon_bans_foreach(dm, expiry_one, &w);
	if (w.next >= 0)
		expiry_consider(dm, w.next);
}

/* ---------- bans ---------- */

/* What gets banned for a host: the host, or its /banprefix6 for IPv6. */
static struct addr ban_target(const struct daemon_jail *j, const struct addr *a)
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

static void prolong(struct daemon *dm, struct daemon_ban *b, double t)
{
	if (b->end < 0)
		return;
	double now = daemon_now();
	if (t > now)
		t = now;
	double new_end = b->bantime < 0 ? -1 : t + b->bantime;
	if (new_end >= 0 && new_end <= b->end + 1)
		return;
	if (b->pending)
		daemon_bans_commit(dm);
	if (store_ban_prolong(dm->store, b->jailname, b->id, new_end) < 0)
		log_warnx("state: prolonging the ban of %s: %s", b->id, store_error(dm->store));
	b->end = new_end;
	char ts[32];
	timefmt_local(new_end, ts, sizeof ts);
	log_notice("[%s] Prolong %s until %s", b->jailname, b->id, ts);
	fw_apply(dm, b, now);
	cmd_apply(b, CMD_PROLONG, 0, NULL, 0, NULL, 0);
	expiry_consider(dm, new_end);
	daemon_cluster_ban(dm, b);
}

static void banq_push(struct daemon *dm, struct daemon_ban *b, unsigned failures, unsigned prev,
		      char **lines, size_t nlines, const struct kvlist *groups)
{
	if (!dm->banq)
		dm->banq = xcalloc(1, sizeof *dm->banq);
	struct daemon_banq *q = dm->banq;
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		q->v = xrealloc(q->v, q->cap * sizeof *q->v);
	}
	struct banq_item *it = &q->v[q->n++];
	memset(it, 0, sizeof *it);
	it->b = b;
	it->failures = failures;
	it->prev = prev;
	it->nlines = nlines;
	if (nlines) {
		it->lines = xcalloc(nlines, sizeof *it->lines);
		for (size_t i = 0; i < nlines; i++)
			it->lines[i] = xstrdup(lines[i] ? lines[i] : "");
	}
	if (groups && groups->n) {
		kvlist_copy(&it->groups, groups);
		it->has_groups = 1;
	}
	b->pending = 1;
}

void daemon_bans_commit(struct daemon *dm)
{
	struct daemon_banq *q = dm->banq;
	if (!q || !q->n)
		return;
	/* the items leave the queue before anything is reported: a command
	 * action or a log write cannot re-enter with a half-done queue */
	size_t n = q->n;
	struct banq_item *v = q->v;
	q->v = NULL;
	q->n = q->cap = 0;
	struct store_ban *sb = xcalloc(n, sizeof *sb);
	for (size_t i = 0; i < n; i++) {
		const struct daemon_ban *b = v[i].b;
		sb[i].id = b->id;
		sb[i].jail = b->jailname;
		sb[i].timeofban = b->timeofban;
		sb[i].bantime = b->bantime;
		sb[i].bancount = b->bancount;
		sb[i].failures = v[i].failures;
		sb[i].lines = (const char *const *)v[i].lines;
		sb[i].nlines = v[i].nlines;
	}
	/* a failing store must not stop the bans */
	if (store_bans_add(dm->store, sb, n) < 0)
		log_warnx("state: recording %zu ban%s: %s", n, n == 1 ? "" : "s",
			  store_error(dm->store));
	free(sb);
	double now = daemon_now();
	for (size_t i = 0; i < n; i++) {
		struct daemon_ban *b = v[i].b;
		b->pending = 0;
		if (v[i].prev && b->jail && b->bantime != b->jail->p.bantime)
			log_notice("[%s] Increase Ban %s (%u # %.0f s)", b->jailname, b->id,
				   b->bancount, b->bantime);
		log_notice("[%s] Ban %s", b->jailname, b->id);
		fw_apply(dm, b, now);
		cmd_apply(b, CMD_BAN, v[i].failures, v[i].lines, v[i].nlines,
			  v[i].has_groups ? &v[i].groups : NULL, 0);
		for (size_t k = 0; k < v[i].nlines; k++)
			free(v[i].lines[k]);
		free(v[i].lines);
		kvlist_free(&v[i].groups);
	}
	free(v);
}

static int ban_addr(struct daemon_jail *j, const struct addr *a, double t, unsigned failures,
		    char **lines, size_t nlines, int manual, const struct kvlist *groups, char *err,
		    size_t errlen)
{
	struct daemon *dm = j->d;
	struct addr target = ban_target(j, a);
	char id[ADDR_STRLEN];
	addr_format(&target, id, sizeof id);
	struct daemon_ban *b = daemon_ban_find(dm, j->name, id);
	if (b) {
		prolong(dm, b, t);
		return 0;
	}
	/* overalljails counts bans of other jails: those queued must be in the store */
	if (j->p.incr.overalljails && dm->banq && dm->banq->n)
		daemon_bans_commit(dm);
	/* inside the batch transaction, so that a burst of history look-ups
	 * takes the database's read lock once, not twice per address */
	store_begin(dm->store);
	struct store_hist h = {0};
	if (store_history(dm->store, id, j->p.incr.overalljails ? NULL : j->name, 0, &h) < 0) {
		log_warnx("state: ban history of %s: %s", id, store_error(dm->store));
		memset(&h, 0, sizeof h);
	}
	double bt = jail_bantime(&j->p, h.count, daemon_random(dm));
	double now = daemon_now();
	double tob = t > now || t <= 0 ? now : t;
	double end = bt < 0 ? -1 : tob + bt;
	if (end >= 0 && end <= now) {
		snprintf(err, errlen, "the ban of %s would already have ended", id);
		log_info("[%s] %s: not banned, its ban would have ended at once (old log lines)",
			 j->name, id);
		return 0;
	}
	b = tab_add(dm, j, id, &target);
	b->timeofban = tob;
	b->bantime = bt;
	b->end = end;
	b->bancount = h.count + 1;
	j->banned_total++;
	/* committed before it is reported: daemon_bans_commit() does both */
	banq_push(dm, b, failures, h.count, lines, nlines, groups);
	daemon_cluster_ban(dm, b); /* other nodes: queued, sent after this turn's commit */
	expiry_consider(dm, end);
	if (manual) {
		char host[ADDR_STRLEN];
		addr_format(a, host, sizeof host);
		jail_forget(j->j, host);
	}
	return 1;
}

int daemon_ban_addr(struct daemon_jail *j, const struct addr *a, double t, unsigned failures,
		    char **lines, size_t nlines, int manual, char *err, size_t errlen)
{
	return ban_addr(j, a, t, failures, lines, nlines, manual, NULL, err, errlen);
}

void daemon_on_failure(struct daemon_jail *j, const char *id, double t, char **lines,
		       size_t nlines, const struct kvlist *groups)
{
	struct daemon *dm = j->d;
	double now = daemon_now();
	if (t <= 0 || t > now + 60)
		t = now;
	if (t < now - j->p.findtime) {
		log_debug("[%s] Ignore %s: failure at %.0f is older than findtime", j->name, id, t);
		return;
	}
	char why[320];
	if (daemon_ignored(j, id, groups, why, sizeof why)) {
		log_info("[%s] Ignore %s by %s", j->name, id, why);
		return;
	}
	struct addr a;
	if (addr_parse(id, strlen(id), &a) < 0) {
		/* a host name: usedns = yes|warn resolves it (one failure per
		 * address, later, from the resolver); no and raw cannot ban it */
		const char *ud = kvlist_get(&j->opts, "usedns");
		int warn = !ud || !*ud || strcasecmp(ud, "warn") == 0;
		if (warn || strcasecmp(ud, "yes") == 0)
			daemon_dns_failure(j, id, t, lines, nlines, groups, warn);
		else
			log_debug("[%s] Ignore '%s': not an address (usedns = %s)", j->name, id, ud);
		return;
	}
	if (log_enabled(LOG_LVL_INFO)) {
		char ts[32];
		timefmt_local(t, ts, sizeof ts);
		log_info("[%s] Found %s - %s", j->name, id, ts);
	}
	j->failed_total++;
	daemon_cluster_failure(j, id, t);
	struct addr target = ban_target(j, &a);
	char tid[ADDR_STRLEN];
	addr_format(&target, tid, sizeof tid);
	struct daemon_ban *b = daemon_ban_find(dm, j->name, tid);
	if (b) {
		prolong(dm, b, t);
		return;
	}
	struct jail_ban jb;
	if (jail_add_failure(j->j, id, t, (const char *const *)lines, nlines, &jb) != 1)
		return;
	char err[256];
	ban_addr(j, &a, t, jb.failures, jb.lines, jb.nlines, 0, groups, err, sizeof err);
	jail_ban_clear(&jb);
}

struct unban_walk {
	struct daemon *dm;
	const char *jail, *id;
	double now;
	int n;
};

static void unban_one(struct daemon_ban *b, void *arg)
{
	struct unban_walk *w = arg;
	if (w->jail && strcmp(b->jailname, w->jail) != 0)
		return;
	if (w->id && strcmp(b->id, w->id) != 0)
		return;
	daemon_cluster_unban(w->dm, b->jailname, b->id);
	lift(w->dm, b, w->now);
	w->n++;
}

int daemon_unban_id(struct daemon *dm, const char *jail, const char *id)
{
	struct unban_walk w = {dm, jail, id, daemon_now(), 0};
	if (jail) {
		struct daemon_ban *b = daemon_ban_find(dm, jail, id);
		if (b) {
			daemon_cluster_unban(dm, b->jailname, b->id);
			lift(dm, b, w.now);
			w.n = 1;
		}
		return w.n;
	}
	daemon_bans_foreach(dm, unban_one, &w);
	return w.n;
}

int daemon_unban_all(struct daemon *dm, const char *jail)
{
	struct unban_walk w = {dm, jail, NULL, daemon_now(), 0};
	daemon_bans_foreach(dm, unban_one, &w);
	return w.n;
}

void daemon_bans_restore(struct daemon *dm)
{
	struct store_banlist l = STORE_BANLIST_INIT;
	double now = daemon_now();
	if (store_load_bans(dm->store, now, &l) < 0) {
		log_warnx("state: loading bans: %s", store_error(dm->store));
		return;
	}
	size_t n = 0, skipped = 0;
	for (size_t i = 0; i < l.n; i++) {
		const struct store_ban *sb = &l.v[i];
		struct daemon_jail *j = daemon_jail_find(dm->set, sb->jail);
		struct addr a;
		if (!j || addr_parse_cidr(sb->id, strlen(sb->id), &a) < 0) {
			skipped++;
			continue;
		}
		if (daemon_ban_find(dm, j->name, sb->id))
			continue;
		struct daemon_ban *b = tab_add(dm, j, sb->id, &a);
		b->timeofban = sb->timeofban;
		b->bantime = sb->bantime;
		b->end = sb->end;
		b->bancount = sb->bancount;
		/* command actions see the ban again, marked restored (norestored skips) */
		cmd_apply(b, CMD_BAN, sb->failures, NULL, 0, NULL, 1);
		n++;
	}
	store_banlist_free(&l);
	if (n || skipped)
		log_notice("restored %zu live ban%s from the state database%s", n, n == 1 ? "" : "s",
			   skipped ? " (bans of jails not running were kept for later)" : "");
	daemon_expiry_arm(dm);
}

struct rebind_walk {
	struct daemon *dm;
	struct daemon_set *s;
	double now;
};

static void rebind_one(struct daemon_ban *b, void *arg)
{
	struct rebind_walk *w = arg;
	struct daemon_jail *j = daemon_jail_find(w->s, b->jailname);
	if (!j) {
		/* the jail is gone: its firewall objects go with the old set */
		lift(w->dm, b, w->now);
		return;
	}
	b->jail = j;
	j->banned_now++;
}

void daemon_bans_rebind(struct daemon *dm, struct daemon_set *s)
{
	struct rebind_walk w = {dm, s, daemon_now()};
	daemon_bans_foreach(dm, rebind_one, &w);
}
