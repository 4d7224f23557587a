/*
 * ratelimit - sliding-window rate limits for the policy service.
 *
 * Configuration ([ratelimit] in mxjail.conf), one line per limit:
 *     NAME = KEY: N UNIT / WINDOW[, N [UNIT] / WINDOW ...]
 * KEY is client_address, sasl_username, sender, sender_domain or
 * recipient_domain; UNIT is requests (every request), messages (1 at
 * protocol_state DATA), recipients (recipient_count at DATA) or bytes (size
 * at END-OF-MESSAGE); a rule without a unit takes the previous one. The
 * reserved names `action` (the reply when a limit is exceeded) and
 * `max_keys` (cap on tracked keys per limit) are options, not limits.
 *
 * Each (limit, key) holds, per rule, a ring of RL_SLOTS sub-buckets of
 * window/RL_SLOTS seconds: the sum of the ring is the use over the last
 * window, advanced lazily on access, so memory per key is fixed and nothing
 * scans on a timer. Keys live in a ptable with a cap that evicts the idlest
 * key; expiry drops keys idle for longer than the longest window.
 *
 * A request that would take a window over its limit is refused (and not
 * counted); a request that adds nothing (e.g. RCPT for a recipients limit)
 * is refused once a window is already full, so a client is stopped early.
 *
 * State is journaled (pstate.c) in the state namespace "ratelimit", one
 * record per "NAME/KEY" holding the used slots of each window.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kvlist.h"
#include "core/xmalloc.h"
#include "jails/jail.h"
#include "policy/policy_int.h"
#include "store/store.h"

#define RL_SLOTS 16
#define RL_MAX_KEYS 100000
#define RL_MAX_RULES 8
#define RL_SEEN 4096

enum rkeytype { RK_CLIENT, RK_SASL, RK_SENDER, RK_SENDER_DOMAIN, RK_RCPT_DOMAIN };
static const char *const keynames[] = { "client_address", "sasl_username", "sender",
					"sender_domain", "recipient_domain" };
enum runit { RU_REQUESTS, RU_MESSAGES, RU_RECIPIENTS, RU_BYTES, RU_N };
static const char *const unitnames[] = { "requests", "messages", "recipients", "bytes" };

struct rrule {
	double max;
	enum runit unit;
	double window, width;
	char *text;          /* "200 recipients / 1h" as configured */
	char wtxt[32];       /* width as the state rows write it ("%.6g") */
};

struct rwin {
	long long head;      /* bucket number (t / width) of the newest slot */
	double sum;
	double c[RL_SLOTS];
};

struct rkey {
	struct pent e;
	struct rlimit *lim;  /* the limit whose table holds it */
	double last;         /* last counted or refused request */
	unsigned long over;  /* refusals */
	double over_last;
	struct rwin w[];
};

struct rlimit {
	char *name;
	char *qprefix;       /* "NAME/": the start of its keys' rows */
	enum rkeytype key;
	struct rrule r[RL_MAX_RULES];
	size_t nr;
	double maxwin;
	struct ptable keys;
	unsigned long exceeded, evicted;
};

struct ratelimit {
	struct rlimit *l;
	size_t n, cap;
	char *action;
	struct pqueue q;     /* "NAME/KEY" */
	struct strbuf tmp;
	char why[256];       /* the limit and rule of the last refusal */
	struct pstate ps;
	size_t snap;         /* limit the snapshot walk is in */
	/* Recently imported updates (hashes, direct-mapped): a cluster message
	 * delivered twice must not count twice. */
	uint64_t seen[RL_SEEN];
	uint64_t seed;
};

static void rlimit_clear(struct rlimit *l)
{
	free(l->name);
	free(l->qprefix);
	for (size_t i = 0; i < l->nr; i++)
		free(l->r[i].text);
	policy_ptable_free(&l->keys, NULL);
}

void policy_rl_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	for (size_t i = 0; i < rl->n; i++)
		rlimit_clear(&rl->l[i]);
	free(rl->l);
	free(rl->action);
	policy_queue_free(&rl->q);
	policy_pstate_free(&rl->ps);
	strbuf_free(&rl->tmp);
	free(rl);
}

static const char *skipws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* Parses "KEY: N UNIT / WINDOW, ..." into l. */
static int parse_limit(struct rlimit *l, const char *spec)
{
	const char *p = skipws(spec), *colon = strchr(p, ':');
	if (!colon)
		return -1;
	size_t kl = (size_t)(colon - p);
	while (kl && (p[kl - 1] == ' ' || p[kl - 1] == '\t'))
		kl--;
	size_t k;
	for (k = 0; k < sizeof(keynames) / sizeof(*keynames); k++)
		if (strlen(keynames[k]) == kl && strncmp(p, keynames[k], kl) == 0)
			break;
	if (k == sizeof(keynames) / sizeof(*keynames))
		return -1;
	l->key = (enum rkeytype)k;
	p = colon + 1;
	int unit = -1;
	for (;;) {
		p = skipws(p);
		const char *start = p;
		char *end;
		double n = strtod(p, &end);
		if (end == p || !(n >= 0) || n > 1e15)
			return -1;
		p = skipws(end);
		if (isalpha((unsigned char)*p)) {
			size_t ul = 0;
			while (isalpha((unsigned char)p[ul]))
				ul++;
			unit = -1;
			for (int u = 0; u < RU_N; u++)
				if (strlen(unitnames[u]) == ul && strncmp(p, unitnames[u], ul) == 0)
					unit = u;
			/* singular is fine too: "1 message / 1m" */
			for (int u = 0; u < RU_N && unit < 0; u++)
				if (strlen(unitnames[u]) == ul + 1 && strncmp(p, unitnames[u], ul) == 0)
					unit = u;
			if (unit < 0)
				return -1;
			p = skipws(p + ul);
		}
		if (unit < 0 || *p != '/')
			return -1;
		p++;
		const char *we = strchr(p, ',');
		size_t wl = we ? (size_t)(we - p) : strlen(p);
		char wbuf[64];
		if (wl >= sizeof(wbuf))
			return -1;
		memcpy(wbuf, p, wl);
		wbuf[wl] = '\0';
		double win;
		if (jail_parse_time(wbuf, &win) < 0 || win < 1 || win > 366 * 86400.0)
			return -1;
		if (l->nr == RL_MAX_RULES)
			return -1;
		struct rrule *r = &l->r[l->nr++];
		r->max = n;
		r->unit = (enum runit)unit;
		r->window = win;
		r->width = win / RL_SLOTS;
		snprintf(r->wtxt, sizeof(r->wtxt), "%.6g", r->width);
		size_t tl = (size_t)((p + wl) - start);
		while (tl && isspace((unsigned char)start[tl - 1]))
			tl--;
		r->text = xstrndup(start, tl);
		if (win > l->maxwin)
			l->maxwin = win;
		if (!we)
			break;
		p = we + 1;
	}
	return 0;
}

static const struct pstate_ops rl_ops;

struct ratelimit *policy_rl_new(const struct kvlist *conf, char *err, size_t errlen)
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));
	unsigned long maxkeys = RL_MAX_KEYS;
	const char *a = conf ? kvlist_get(conf, "action") : NULL;
	rl->action = xstrdup(a && *a ? a : "DEFER_IF_PERMIT 4.7.1 rate limit exceeded");
	rl->seed = (uint64_t)(uintptr_t)rl ^ 0x9e3779b97f4a7c15ULL;
	if (policy_opt_uint(conf, "ratelimit", "max_keys", RL_MAX_KEYS, 100000000, &maxkeys, err,
			    errlen) < 0)
		goto fail;
	for (size_t i = 0; conf && i < conf->n; i++) {
		const char *name = conf->v[i].key;
		if (strcmp(name, "action") == 0 || strcmp(name, "max_keys") == 0)
			continue;
		if (strchr(name, '/') || !*name) {
			snprintf(err, errlen, "mxjail.conf [ratelimit] %s: a limit name has no '/'", name);
			goto fail;
		}
		rl->l = xgrow(rl->l, &rl->cap, rl->n, sizeof(*rl->l));
		struct rlimit *l = &rl->l[rl->n++];
		memset(l, 0, sizeof(*l));
		l->name = xstrdup(name);
		l->qprefix = xasprintf("%s/", name);
		policy_ptable_init(&l->keys, maxkeys ? maxkeys : RL_MAX_KEYS);
		l->keys.q = &rl->q;
		l->keys.qprefix = l->qprefix;
		if (parse_limit(l, conf->v[i].value) < 0) {
			snprintf(err, errlen,
				 "mxjail.conf [ratelimit] %s: expected 'KEY: N UNIT / WINDOW[, N UNIT / WINDOW]'"
				 " (KEY client_address, sasl_username, sender, sender_domain or"
				 " recipient_domain; UNIT requests, messages, recipients or bytes), got '%s'",
				 name, conf->v[i].value);
			goto fail;
		}
	}
	double retain = 86400;
	for (size_t i = 0; i < rl->n; i++)
		retain = rl->l[i].maxwin + 86400 > retain ? rl->l[i].maxwin + 86400 : retain;
	policy_pstate_init(&rl->ps, "ratelimit", &rl_ops, rl, retain);
	return rl;
fail:
	policy_rl_free(rl);
	return NULL;
}

/* The key's value for a request, lower-cased where case does not matter; 0 if absent. */
static int key_of(struct ratelimit *rl, enum rkeytype k, const struct policy_req *r)
{
	const char *v = NULL;
	strbuf_reset(&rl->tmp);
	switch (k) {
	case RK_CLIENT:
		v = policy_req_get(r, "client_address");
		break;
	case RK_SASL:
		v = policy_req_get(r, "sasl_username");
		break;
	case RK_SENDER:
		v = policy_req_get(r, "sender");
		break;
	case RK_SENDER_DOMAIN:
	case RK_RCPT_DOMAIN:
		v = policy_req_get(r, k == RK_SENDER_DOMAIN ? "sender" : "recipient");
		v = v ? strrchr(v, '@') : NULL;
		if (v)
			v++;
		break;
	}
	if (!v || !*v)
		return 0;
	if (k == RK_CLIENT || k == RK_SASL)
		strbuf_adds(&rl->tmp, v);
	else
		policy_lower(&rl->tmp, v, strlen(v));
	return 1;
}

static void win_advance(struct rwin *w, const struct rrule *r, double t)
{
	long long idx = (long long)floor(t / r->width);
	if (idx <= w->head)
		return;
	if (idx - w->head >= RL_SLOTS) {
		memset(w->c, 0, sizeof(w->c));
		w->sum = 0;
	} else {
		for (long long k = w->head + 1; k <= idx; k++) {
			double *c = &w->c[k % RL_SLOTS];
			w->sum -= *c;
			*c = 0;
		}
		if (w->sum < 1e-9)
			w->sum = 0;
	}
	w->head = idx;
}

/* Adds amount at time t (t may be a little in the past: cluster imports). */
static void win_add(struct rwin *w, const struct rrule *r, double t, double amount)
{
	long long idx = (long long)floor(t / r->width);
	win_advance(w, r, t);
	if (w->head - idx >= RL_SLOTS)
		return;
	w->c[idx % RL_SLOTS] += amount;
	w->sum += amount;
}

static struct rkey *key_get(struct ratelimit *rl, struct rlimit *l, const char *k, size_t kl,
			    int create)
{
	struct rkey *e = (struct rkey *)policy_ptable_get(&l->keys, k, kl);
	if (e || !create)
		return e;
	if (l->keys.max && l->keys.n >= l->keys.max)
		l->evicted++;
	(void)rl;
	e = (struct rkey *)policy_ptable_add(&l->keys, k, kl,
					     sizeof(struct rkey) + l->nr * sizeof(struct rwin),
					     NULL, NULL);
	e->lim = l;
	return e;
}

enum pverdict policy_rl_eval(struct ratelimit *rl, const struct policy_req *r, double now,
			     struct strbuf *out, struct strbuf *key, const struct policy_host *h)
{
	double amt[RU_N] = {1, 0, 0, 0};
	const char *state = policy_req_get(r, "protocol_state");
	if (state && strcmp(state, "DATA") == 0) {
		const char *rc = policy_req_get(r, "recipient_count");
		amt[RU_MESSAGES] = 1;
		amt[RU_RECIPIENTS] = rc ? strtod(rc, NULL) : 0;
		if (!(amt[RU_RECIPIENTS] >= 0 && amt[RU_RECIPIENTS] < 1e9))
			amt[RU_RECIPIENTS] = 0;
	} else if (state && strcmp(state, "END-OF-MESSAGE") == 0) {
		const char *sz = policy_req_get(r, "size");
		amt[RU_BYTES] = sz ? strtod(sz, NULL) : 0;
		if (!(amt[RU_BYTES] >= 0 && amt[RU_BYTES] < 1e15))
			amt[RU_BYTES] = 0;
	}
	for (size_t i = 0; i < rl->n; i++) {
		struct rlimit *l = &rl->l[i];
		if (!key_of(rl, l->key, r))
			continue;
		int adds = 0;
		for (size_t j = 0; j < l->nr; j++)
			if (amt[l->r[j].unit] > 0)
				adds = 1;
		struct rkey *e = key_get(rl, l, rl->tmp.s, rl->tmp.len, adds);
		if (!e)
			continue;
		policy_ptable_touch(&l->keys, &e->e);
		const struct rrule *hit = NULL;
		for (size_t j = 0; j < l->nr && !hit; j++) {
			const struct rrule *ru = &l->r[j];
			double a = amt[ru->unit];
			win_advance(&e->w[j], ru, now);
			if ((a > 0 && e->w[j].sum + a > ru->max) || (a <= 0 && e->w[j].sum >= ru->max))
				hit = ru;
		}
		if (hit || adds) {
			e->last = now;
			policy_queue_entry(&rl->q, &e->e);
		}
		if (hit) {
			e->over++;
			e->over_last = now;
			l->exceeded++;
			strbuf_reset(key);
			strbuf_add(key, e->e.key, e->e.keylen);
			strbuf_adds(out, rl->action);
			snprintf(rl->why, sizeof(rl->why), "%s %s", l->name, hit->text);
			return PV_DEFER;
		}
		for (size_t j = 0; j < l->nr; j++) {
			double a = amt[l->r[j].unit];
			if (a > 0)
				win_add(&e->w[j], &l->r[j], now, a);
		}
		if (h && h->on_ratelimit_add) {
			int done[RU_N] = {0};
			for (size_t j = 0; j < l->nr; j++) {
				enum runit u = l->r[j].unit;
				if (amt[u] > 0 && !done[u]) {
					char lim[256];
					done[u] = 1;
					snprintf(lim, sizeof(lim), "%s/%s", l->name, unitnames[u]);
					h->on_ratelimit_add(h->arg, lim, e->e.key, now, amt[u]);
				}
			}
		}
	}
	return PV_DUNNO;
}

const char *policy_rl_why(const struct ratelimit *rl)
{
	return rl->why;
}

/* Which limit (and unit, for "NAME/UNIT") a name refers to. */
static struct rlimit *find_limit(struct ratelimit *rl, const char *name, size_t n)
{
	for (size_t i = 0; i < rl->n; i++)
		if (strlen(rl->l[i].name) == n && strncmp(rl->l[i].name, name, n) == 0)
			return &rl->l[i];
	return NULL;
}

void policy_rl_import(struct ratelimit *rl, const char *limit, const char *key, double t,
		      double amount)
{
	const char *slash = strchr(limit, '/');
	struct rlimit *l = find_limit(rl, limit, slash ? (size_t)(slash - limit) : strlen(limit));
	if (!l || !*key || !(amount > 0 && amount < 1e15))
		return;
	char idbuf[64];
	int idn = snprintf(idbuf, sizeof(idbuf), "|%.6f|%.6g", t, amount);
	uint64_t h = policy_hash(rl->seed, limit, strlen(limit));
	h = policy_hash(h, key, strlen(key)) ^ policy_hash(h, idbuf, (size_t)idn);
	h |= 1;   /* 0 marks an empty slot */
	if (rl->seen[h % RL_SEEN] == h)
		return;
	rl->seen[h % RL_SEEN] = h;
	int unit = -1;
	for (int u = 0; slash && u < RU_N; u++)
		if (strcmp(slash + 1, unitnames[u]) == 0)
			unit = u;
	struct rkey *e = key_get(rl, l, key, strlen(key), 1);
	for (size_t j = 0; j < l->nr; j++)
		if (unit < 0 || l->r[j].unit == (enum runit)unit)
			win_add(&e->w[j], &l->r[j], t, amount);
	if (t > e->last)
		e->last = t;
	policy_queue_entry(&rl->q, &e->e);
}

/* ---- persistence ---- */

/* Integral counts (the usual case) are written as integers: printing
 * doubles in full precision is most of the cost of a snapshot. */
static void add_num(struct strbuf *out, double v)
{
	if (v >= 0 && v < 1e15 && v == (double)(uint64_t)v) {
		strbuf_addc(out, ' ');
		policy_add_u64(out, (uint64_t)v);
	} else {
		strbuf_addf(out, " %.17g", v);
	}
}

/* v as "%.3f" writes it, by integer arithmetic where the rounding cannot
 * differ (printf's floating-point path costs more than the rest of a row). */
static void add_fixed3(struct strbuf *out, double v)
{
	double x = v * 1000, fl = floor(x), f = x - fl;
	if (!(v >= 0 && v < 1e12) || fabs(f - 0.5) < 1e-3) {
		strbuf_addf(out, "%.3f", v);
		return;
	}
	uint64_t ms = (uint64_t)fl + (f > 0.5);
	char frac[4] = {(char)('0' + ms / 100 % 10), (char)('0' + ms / 10 % 10),
			(char)('0' + ms % 10), 0};
	policy_add_u64(out, ms / 1000);
	strbuf_addc(out, '.');
	strbuf_add(out, frac, 3);
}

/* "2 LAST OVER OVERLAST NRULES" then per rule "WIDTH HEAD N" and N pairs
 * "SLOT COUNT" for the non-empty slots only: most keys have used one or two
 * slots, and rows are written at the rate keys change. */
static void serialise(const struct rlimit *l, const struct rkey *e, struct strbuf *out)
{
	strbuf_adds(out, "2 ");
	add_fixed3(out, e->last);
	strbuf_addc(out, ' ');
	policy_add_u64(out, e->over);
	strbuf_addc(out, ' ');
	add_fixed3(out, e->over_last);
	strbuf_addc(out, ' ');
	policy_add_u64(out, l->nr);
	for (size_t j = 0; j < l->nr; j++) {
		int used = 0;
		for (int k = 0; k < RL_SLOTS; k++)
			used += e->w[j].c[k] != 0;
		strbuf_addc(out, ' ');
		strbuf_adds(out, l->r[j].wtxt);
		if (e->w[j].head < 0) {
			strbuf_addf(out, " %lld", e->w[j].head);
		} else {
			strbuf_addc(out, ' ');
			policy_add_u64(out, (uint64_t)e->w[j].head);
		}
		strbuf_addc(out, ' ');
		policy_add_u64(out, (uint64_t)used);
		for (int k = 0; k < RL_SLOTS; k++)
			if (e->w[j].c[k] != 0) {
				strbuf_addc(out, ' ');
				policy_add_u64(out, (uint64_t)k);
				add_num(out, e->w[j].c[k]);
			}
	}
}

static void load_one(struct ratelimit *rl, const char *k, size_t kl, const char *val, size_t len)
{
	const char *slash = memchr(k, '/', kl);
	if (!slash || len > 64 * 1024 || memchr(k, '\0', kl))
		return;
	struct rlimit *l = find_limit(rl, k, (size_t)(slash - k));
	if (!l)
		return;
	char *s = xstrndup(val, len), *p = s, *end;
	double last, overl;
	unsigned long over;
	size_t nr;
	int n = 0;
	if (sscanf(p, "2 %lf %lu %lf %zu%n", &last, &over, &overl, &nr, &n) < 4) {
		free(s);
		return;
	}
	p += n;
	struct rkey *e = key_get(rl, l, slash + 1, kl - (size_t)(slash - k) - 1, 1);
	e->last = last;
	e->over = over;
	e->over_last = overl;
	for (size_t j = 0; j < nr; j++) {
		double width = strtod(p, &end);
		if (end == p)
			break;
		p = end;
		long long head = strtoll(p, &end, 10);
		if (end == p)
			break;
		p = end;
		long used = strtol(p, &end, 10);
		if (end == p || used < 0 || used > RL_SLOTS)
			break;
		p = end;
		double c[RL_SLOTS] = {0};
		long i;
		for (i = 0; i < used; i++) {
			long slot = strtol(p, &end, 10);
			if (end == p || slot < 0 || slot >= RL_SLOTS)
				break;
			p = end;
			double v = strtod(p, &end);
			if (end == p || !(v >= 0 && v < 1e15))
				break;
			p = end;
			c[slot] = v;
		}
		if (i < used)
			break;
		/* a rule whose window changed since starts afresh */
		if (j < l->nr && fabs(width - l->r[j].width) < 1e-3 * l->r[j].width) {
			e->w[j].head = head;
			e->w[j].sum = 0;
			for (int s2 = 0; s2 < RL_SLOTS; s2++) {
				e->w[j].c[s2] = c[s2];
				e->w[j].sum += c[s2];
			}
		}
	}
	free(s);
}

static int ps_ser(void *arg, struct pent *p, struct strbuf *key, struct strbuf *val)
{
	const struct rkey *e = (const struct rkey *)p;
	(void)arg;
	strbuf_adds(key, e->lim->qprefix);
	strbuf_add(key, p->key, p->keylen);
	serialise(e->lim, e, val);
	return 0;
}

static void ps_set(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	load_one(arg, k, kl, v, vl);
}

static void ps_del(void *arg, const char *k, size_t kl)
{
	struct ratelimit *rl = arg;
	const char *slash = memchr(k, '/', kl);
	struct rlimit *l = slash ? find_limit(rl, k, (size_t)(slash - k)) : NULL;
	struct pent *e = l ? policy_ptable_get(&l->keys, slash + 1, kl - (size_t)(slash - k) - 1) : NULL;
	if (e) {
		policy_ptable_unlink(&l->keys, e);
		policy_ptable_drop(e);
	}
}

/* The snapshot walks the limits' tables one after the other. */
static struct pent *ps_next(void *arg)
{
	struct ratelimit *rl = arg;
	while (rl->snap < rl->n) {
		struct pent *e = policy_ptable_walk(&rl->l[rl->snap].keys, PT_SNAPSHOT);
		if (e)
			return e;
		rl->snap++;
	}
	return NULL;
}

static void ps_restart(void *arg)
{
	struct ratelimit *rl = arg;
	rl->snap = 0;
	for (size_t i = 0; i < rl->n; i++)
		policy_ptable_walk_reset(&rl->l[i].keys, PT_SNAPSHOT);
}

static const struct pstate_ops rl_ops = { ps_ser, ps_set, ps_del, ps_next, ps_restart };

int policy_rl_load(struct ratelimit *rl, const struct pstate_io *io, double now)
{
	int rc = policy_pstate_load(&rl->ps, io, now);
	return rc < 0 ? rc : 0;
}

void policy_rl_nostore(struct ratelimit *rl)
{
	rl->q.off = 1;
}

size_t policy_rl_pending(const struct ratelimit *rl)
{
	return policy_queue_len(&rl->q);
}

int policy_rl_flush(struct ratelimit *rl, const struct pstate_io *io, double now)
{
	int rc = policy_pstate_flush(&rl->ps, io, now, &rl->q);
	return rc < 0 ? rc : 0;
}

size_t policy_rl_expire(struct ratelimit *rl, double now, size_t budget)
{
	size_t seen = 0;
	for (size_t i = 0; i < rl->n && seen < budget; i++) {
		struct rlimit *l = &rl->l[i];
		struct pent *e;
		while (seen < budget && (e = policy_ptable_walk(&l->keys, PT_EXPIRE))) {
			seen++;
			if (now - ((struct rkey *)e)->last > l->maxwin)
				policy_ptable_remove(&l->keys, e);
		}
	}
	return seen;
}

int policy_rl_reset(struct ratelimit *rl, const char *key)
{
	int count = 0;
	const char *slash = strchr(key, '/');
	struct rlimit *only = slash ? find_limit(rl, key, (size_t)(slash - key)) : NULL;
	const char *k = only ? slash + 1 : key;
	struct strbuf lw = STRBUF_INIT;
	policy_lower(&lw, k, strlen(k));
	for (size_t i = 0; i < rl->n; i++) {
		struct rlimit *l = &rl->l[i];
		if (only && only != l)
			continue;
		struct pent *e = policy_ptable_get(&l->keys, k, strlen(k));
		if (!e)
			e = policy_ptable_get(&l->keys, lw.s, lw.len);
		if (e) {
			policy_ptable_remove(&l->keys, e);
			count++;
		}
	}
	strbuf_free(&lw);
	return count;
}

void policy_rl_list(struct ratelimit *rl, int json, double now, struct strbuf *out)
{
	int firstrow = 1;
	if (json)
		strbuf_adds(out, "[");
	for (size_t i = 0; i < rl->n; i++) {
		struct rlimit *l = &rl->l[i];
		for (struct pent *p = l->keys.head; p; p = p->next) {
			struct rkey *e = (struct rkey *)p;
			if (json) {
				strbuf_adds(out, firstrow ? "{\"limit\":" : ",{\"limit\":");
				strbuf_add_json(out, l->name, strlen(l->name));
				strbuf_addf(out, ",\"keytype\":\"%s\",\"key\":", keynames[l->key]);
				strbuf_add_json(out, p->key, p->keylen);
				strbuf_addf(out, ",\"last\":%.0f,\"exceeded\":%lu,\"windows\":[", e->last,
					    e->over);
			} else {
				strbuf_addf(out, "%s %s %s:", l->name, keynames[l->key], p->key);
			}
			for (size_t j = 0; j < l->nr; j++) {
				win_advance(&e->w[j], &l->r[j], now);
				if (json)
					strbuf_addf(out, "%s{\"used\":%.0f,\"max\":%.0f,\"unit\":\"%s\",\"window\":%.0f}",
						    j ? "," : "", e->w[j].sum, l->r[j].max,
						    unitnames[l->r[j].unit], l->r[j].window);
				else
					strbuf_addf(out, "%s %.0f of %s", j ? "," : "", e->w[j].sum,
						    l->r[j].text);
			}
			if (json)
				strbuf_adds(out, "]}");
			else
				strbuf_addf(out, "%s\n", e->over ? " (exceeded)" : "");
			firstrow = 0;
		}
	}
	if (json)
		strbuf_adds(out, "]");
}

/* Top keys by refusals, and the keys at their limit now (the compromised
 * SASL account shows up here). Bounded output: RL_TOP of each per limit. */
#define RL_TOP 10
void policy_rl_status(struct ratelimit *rl, int json, double now, struct strbuf *out)
{
	if (json)
		strbuf_adds(out, "[");
	for (size_t i = 0; i < rl->n; i++) {
		struct rlimit *l = &rl->l[i];
		struct rkey *top[RL_TOP];
		size_t nt = 0;
		struct rkey *full[RL_TOP];
		size_t nf = 0, nfull = 0;
		for (struct pent *p = l->keys.head; p; p = p->next) {
			struct rkey *e = (struct rkey *)p;
			int atmax = 0;
			for (size_t j = 0; j < l->nr; j++) {
				win_advance(&e->w[j], &l->r[j], now);
				if (e->w[j].sum >= l->r[j].max)
					atmax = 1;
			}
			if (atmax || (e->over && now - e->over_last < l->maxwin)) {
				nfull++;
				if (nf < RL_TOP)
					full[nf++] = e;
			}
			if (!e->over)
				continue;
			size_t k = nt < RL_TOP ? nt++ : RL_TOP;
			if (k == RL_TOP && top[RL_TOP - 1]->over >= e->over)
				continue;
			if (k == RL_TOP)
				k = RL_TOP - 1;
			while (k > 0 && top[k - 1]->over < e->over) {
				top[k] = top[k - 1];
				k--;
			}
			top[k] = e;
		}
		if (json) {
			strbuf_adds(out, i ? ",{\"limit\":" : "{\"limit\":");
			strbuf_add_json(out, l->name, strlen(l->name));
			strbuf_addf(out, ",\"keytype\":\"%s\",\"keys\":%zu,\"exceeded\":%lu,"
				    "\"evicted\":%lu,\"over_limit\":%zu,\"top\":[",
				    keynames[l->key], l->keys.n, l->exceeded, l->evicted, nfull);
			for (size_t k = 0; k < nt; k++) {
				strbuf_adds(out, k ? ",{\"key\":" : "{\"key\":");
				strbuf_add_json(out, top[k]->e.key, top[k]->e.keylen);
				strbuf_addf(out, ",\"exceeded\":%lu}", top[k]->over);
			}
			strbuf_adds(out, "],\"over\":[");
			for (size_t k = 0; k < nf; k++) {
				if (k)
					strbuf_addc(out, ',');
				strbuf_add_json(out, full[k]->e.key, full[k]->e.keylen);
			}
			strbuf_adds(out, "]}");
		} else {
			strbuf_addf(out, "  limit %s (%s): %zu keys, %lu refusals, %zu over limit\n",
				    l->name, keynames[l->key], l->keys.n, l->exceeded, nfull);
			for (size_t k = 0; k < nf; k++)
				strbuf_addf(out, "    over limit: %s%s\n", full[k]->e.key,
					    l->key == RK_SASL ? " (SASL account)" : "");
			for (size_t k = 0; k < nt; k++)
				strbuf_addf(out, "    top: %s (%lu refusals)\n", top[k]->e.key,
					    top[k]->over);
		}
	}
	if (json)
		strbuf_adds(out, "]");
}
