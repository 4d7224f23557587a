/*
 * policy - the policy engine: runs the configured checks on one Postfix
 * policy request and answers with an action; holds the counters, the
 * write-behind to the store and the control views.
 *
 * Checks run in the order of `[policy] checks` (default: banned spoof
 * greylist ratelimit). The first check that defers or rejects gives the
 * answer; a PREPEND from greylisting (the X-Greylist header)
 * is kept and returned only if no later check refuses the request. Every
 * defer/reject goes to the host's on_event() so jails can count them.
 *
 * policy_eval() does no I/O: changed entries are remembered in queues.
 * policy_flush() serialises them into a batch of rows (memory only) and hands
 * it to the state writer thread (pwriter.c), which commits it to the
 * engine's own file; when the writer is behind, the entries simply stay queued,
 * where further changes of the same key cost nothing more. (Built with
 * policy_new() and a store instead, the batch is committed to the store
 * synchronously: tools and tests.) Expiry walks a bounded number of entries
 * per policy_expire_step().
 *
 * Counters per check (requests, passes, defers, rejects) and a bounded
 * top-keys table (space-saving counts of the keys that were refused) feed
 * `mxjail policy status`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/kvlist.h"
#include "core/xmalloc.h"
#include "jails/jail.h"
#include "policy/policy_int.h"
#include "policy/pwriter.h"
#include "store/store.h"

#define TOPK 32
#define TOP_SHOWN 10
#define FLUSH_BUDGET 2048     /* most queued entries per table serialised in one flush: bounds
				 * the stall after the writer was held up (~1 ms) */
#define DRAIN_TIMEOUT 5.0     /* seconds policy_free waits for a failing disk */
#define PENDING_MAX 500000    /* queued entries while the writer is stuck: then resync */

/* the namespaces of pstate.c's rows */
static const char *const state_ns[] = { "greylist", "awl", "ratelimit" };

static const char *const chkname[CHK_N] = { "banned", "spoof", "greylist", "ratelimit" };

struct topk {
	char *key[TOPK];
	size_t cap[TOPK];     /* of key: a replacement that fits is copied in place */
	uint64_t h[TOPK];     /* hash of key: most comparisons end here */
	unsigned long n[TOPK];
	size_t used;
};

struct policy {
	int order[CHK_N];
	size_t norder;
	char *banned_action;   /* "%a" = client address */
	struct policy_host host;
	struct store *st;      /* synchronous mode (policy_new) */
	struct pwriter *pw;    /* own state file (policy_open) */
	struct pbatch *held;   /* serialised, not yet taken by the writer */
	double flush_now;      /* clock of the latest flush */
	unsigned long resyncs; /* queues dropped for a fresh snapshot (writer stuck) */
	struct greylist *gl;
	struct ratelimit *rl;
	struct spoof *sp;
	struct pcount cnt[CHK_N];
	struct topk top[CHK_N];
	unsigned long total;
	double now;            /* of the latest request: the clock of status views */
	struct strbuf act, key, prepend, line;
};

/* ---- helpers shared by the checks ---- */

void policy_queue_entry(struct pqueue *q, struct pent *e)
{
	if (q->off || e->qpos)
		return;
	q->v = xgrow(q->v, &q->cap, q->n, sizeof(*q->v));
	q->v[q->n++] = e;
	e->qpos = (uint32_t)q->n;
}

void policy_queue_gone(struct pqueue *q, const char *prefix, const char *key, size_t keylen)
{
	if (q->off)
		return;
	size_t pl = prefix ? strlen(prefix) : 0;
	char *k = xmalloc(pl + keylen + 1);
	if (pl)
		memcpy(k, prefix, pl);
	memcpy(k + pl, key, keylen);
	k[pl + keylen] = '\0';
	q->gone = xgrow(q->gone, &q->gonecap, q->ngone, sizeof(*q->gone));
	q->gone[q->ngone++] = k;
}

size_t policy_queue_len(const struct pqueue *q)
{
	return q->n + q->ngone;
}

static void free_gone(struct pqueue *q)
{
	for (size_t i = 0; i < q->ngone; i++)
		free(q->gone[i]);
	q->ngone = 0;
}

void policy_queue_clear(struct pqueue *q)
{
	for (size_t i = 0; i < q->n; i++)
		if (q->v[i])
			q->v[i]->qpos = 0;
	q->n = 0;
	free_gone(q);
}

void policy_queue_free(struct pqueue *q)
{
	/* the entries may be gone already: only the queue's own memory */
	free_gone(q);
	free(q->v);
	free(q->gone);
	q->v = NULL;
	q->gone = NULL;
	q->n = q->ngone = q->cap = q->gonecap = 0;
}

void policy_lower(struct strbuf *out, const char *s, size_t n)
{
	strbuf_reset(out);
	strbuf_add(out, s, n);
	for (size_t i = 0; i < out->len; i++)
		if (out->s[i] >= 'A' && out->s[i] <= 'Z')
			out->s[i] = (char)(out->s[i] + 32);
}

int policy_opt_time(const struct kvlist *l, const char *section, const char *name,
		    double dflt, double *out, char *err, size_t errlen)
{
	const char *v = l ? kvlist_get(l, name) : NULL;
	*out = dflt;
	if (!v || !*v)
		return 0;
	if (jail_parse_time(v, out) < 0 || *out < 0) {
		snprintf(err, errlen, "mxjail.conf [%s] %s: expected a duration like 300, 5m or 35d, got '%s'",
			 section, name, v);
		return -1;
	}
	return 0;
}

int policy_opt_uint(const struct kvlist *l, const char *section, const char *name,
		    unsigned long dflt, unsigned long max, unsigned long *out, char *err,
		    size_t errlen)
{
	const char *v = l ? kvlist_get(l, name) : NULL;
	char *end;
	*out = dflt;
	if (!v || !*v)
		return 0;
	errno = 0;
	unsigned long x = strtoul(v, &end, 10);
	while (*end == ' ' || *end == '\t')
		end++;
	if (errno || end == v || *end || v[0] == '-' || x > max) {
		snprintf(err, errlen, "mxjail.conf [%s] %s: expected a number from 0 to %lu, got '%s'",
			 section, name, max, v);
		return -1;
	}
	*out = x;
	return 0;
}

/* Space-saving top-k: a key not in a full table replaces the smallest count
 * and inherits it, so memory is fixed whatever the attacker sends. */
static void top_add(struct topk *t, const char *key)
{
	size_t len = strlen(key);
	uint64_t h = policy_hash(0, key, len);
	size_t min = 0;
	for (size_t i = 0; i < t->used; i++) {
		if (t->h[i] == h && strcmp(t->key[i], key) == 0) {
			t->n[i]++;
			return;
		}
		if (t->n[i] < t->n[min])
			min = i;
	}
	size_t i = t->used < TOPK ? t->used++ : min;
	if (t->cap[i] < len + 1) {
		free(t->key[i]);
		t->cap[i] = len + 1 < 64 ? 64 : len + 1;
		t->key[i] = xmalloc(t->cap[i]);
	}
	memcpy(t->key[i], key, len + 1);
	t->h[i] = h;
	t->n[i]++;   /* a new slot's 0, or the count it inherits */
}

static void top_free(struct topk *t)
{
	for (size_t i = 0; i < t->used; i++)
		free(t->key[i]);
	memset(t, 0, sizeof(*t));
}

/* ---- construction ---- */

static void flush_into(struct policy *p, struct pbatch *b, double now, size_t budget)
{
	struct pstate_io io = { p->st, p->pw, b, budget, 0 };
	if (p->gl)
		policy_gl_flush(p->gl, &io, now);
	if (p->rl)
		policy_rl_flush(p->rl, &io, now);
}

/* Clean shutdown: everything queued goes to the writer, which commits it
 * before it stops (a disk that keeps failing gets DRAIN_TIMEOUT). */
static void drain(struct policy *p)
{
	double now = p->flush_now > p->now ? p->flush_now : p->now;
	if (now <= 0)
		now = (double)time(NULL);
	for (;;) {
		if (p->held) {
			if (pwriter_wait_room(p->pw, DRAIN_TIMEOUT) < 0 ||
			    pwriter_submit(p->pw, p->held) < 0)
				break;
			p->held = NULL;
		}
		if (policy_pending(p) == 0)
			break;
		if (pwriter_wait_room(p->pw, DRAIN_TIMEOUT) < 0)
			break;
		p->held = pbatch_new();
		flush_into(p, p->held, now, 0);
	}
	p->pw = pwriter_close(p->pw, DRAIN_TIMEOUT);
	p->held = pbatch_free(p->held);
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	if (p->pw)
		drain(p);
	policy_gl_free(p->gl);
	policy_rl_free(p->rl);
	policy_sp_free(p->sp);
	for (int i = 0; i < CHK_N; i++)
		top_free(&p->top[i]);
	free(p->banned_action);
	strbuf_free(&p->act);
	strbuf_free(&p->key);
	strbuf_free(&p->prepend);
	strbuf_free(&p->line);
	free(p);
}

/* The engine without its state (memory only until the caller attaches it). */
static struct policy *build(const struct kvlist *policy, const struct kvlist *greylist,
			    const struct kvlist *ratelimit, const struct kvlist *spoof,
			    const struct policy_host *host, double now, char *err, size_t errlen)
{
	struct policy *p = xcalloc(1, sizeof(*p));
	const char *v = policy ? kvlist_get(policy, "checks") : NULL;
	char *list = xstrdup(v && *v ? v : "banned spoof greylist ratelimit"), *save = NULL;

	if (host)
		p->host = *host;
	p->now = now;
	/* the header date is local time: read the zone now, not per request */
	tzset();
	for (char *t = strtok_r(list, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
		int c;
		for (c = 0; c < CHK_N; c++)
			if (strcmp(t, chkname[c]) == 0)
				break;
		if (c == CHK_N) {
			snprintf(err, errlen,
				 "mxjail.conf [policy] checks: expected banned, spoof, greylist or ratelimit, got '%s'",
				 t);
			free(list);
			goto fail;
		}
		for (size_t i = 0; i < p->norder; i++)
			if (p->order[i] == c) {
				snprintf(err, errlen, "mxjail.conf [policy] checks: '%s' listed twice", t);
				free(list);
				goto fail;
			}
		p->order[p->norder++] = c;
	}
	free(list);
	v = policy ? kvlist_get(policy, "banned_action") : NULL;
	p->banned_action = xstrdup(v && *v ? v : "554 5.7.1 Service unavailable; client [%a] is banned");

	for (size_t i = 0; i < p->norder; i++) {
		switch (p->order[i]) {
		case CHK_GREYLIST:
			if (!(p->gl = policy_gl_new(greylist, err, errlen)))
				goto fail;
			break;
		case CHK_RATELIMIT:
			if (!(p->rl = policy_rl_new(ratelimit, err, errlen)))
				goto fail;
			break;
		case CHK_SPOOF:
			if (!(p->sp = policy_sp_new(spoof, err, errlen)))
				goto fail;
			break;
		default:
			break;
		}
	}
	return p;
fail:
	policy_free(p);
	return NULL;
}

static void nostore(struct policy *p)
{
	/* nothing would ever drain the write-behind queues */
	if (p->gl)
		policy_gl_nostore(p->gl);
	if (p->rl)
		policy_rl_nostore(p->rl);
}

static int load(struct policy *p, double now)
{
	struct pstate_io io = { p->st, p->pw, NULL, 0, 0 };
	int rc = p->gl ? policy_gl_load(p->gl, &io, now) : 0;
	if (rc >= 0 && p->rl)
		rc = policy_rl_load(p->rl, &io, now);
	return rc;
}

struct policy *policy_new(const struct kvlist *policy, const struct kvlist *greylist,
			  const struct kvlist *ratelimit, const struct kvlist *spoof,
			  struct store *st, const struct policy_host *host, double now,
			  char *err, size_t errlen)
{
	struct policy *p = build(policy, greylist, ratelimit, spoof, host, now, err, errlen);
	if (!p)
		return NULL;
	if (!st) {
		nostore(p);
		return p;
	}
	p->st = st;
	if (load(p, now) < 0) {
		snprintf(err, errlen, "policy state: %s", store_error(st));
		policy_free(p);
		return NULL;
	}
	return p;
}

/* ---- migration from the store ---- */

struct migrate {
	const char *ns;
	struct pbatch *b;       /* NULL: the file has its own rows, only collect keys */
	struct strbuf keys;     /* NUL-separated */
	size_t nkeys;
};

static int migrate_row(const char *key, const void *val, size_t len, double expires, void *arg)
{
	struct migrate *m = arg;
	if (m->b)
		pbatch_set(m->b, m->ns, key, val, len, expires);
	strbuf_add(&m->keys, key, strlen(key) + 1);
	m->nkeys++;
	return 0;
}

/* Earlier versions kept these rows in the daemon's store (the same format):
 * they are copied into the state file once, when it has none of its own in
 * that namespace, and then deleted from the store. */
static int migrate(struct policy *p, struct store *legacy, double now, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(state_ns) / sizeof(state_ns[0]); i++) {
		struct migrate m = { state_ns[i], NULL, STRBUF_INIT, 0 };
		if (pwriter_empty(p->pw, m.ns, now))
			m.b = pbatch_new();
		int rc = store_kv_foreach(legacy, m.ns, now, migrate_row, &m);
		if (rc >= 0 && m.b && pbatch_count(m.b))
			rc = pwriter_apply(p->pw, m.b);
		if (rc < 0) {
			char why[256] = "";
			if (m.b)
				pwriter_error(p->pw, why, sizeof(why));
			snprintf(err, errlen, "policy state: moving [%s] rows from the store: %s",
				 m.ns, *why ? why : store_error(legacy));
			pbatch_free(m.b);
			strbuf_free(&m.keys);
			return rc;
		}
		if (m.nkeys) {
			const char *k = m.keys.s;
			store_begin(legacy);
			for (size_t j = 0; j < m.nkeys; j++, k += strlen(k) + 1)
				store_kv_del(legacy, m.ns, k);
			store_flush(legacy);
		}
		pbatch_free(m.b);
		strbuf_free(&m.keys);
	}
	return 0;
}

struct policy *policy_open(const struct kvlist *policy, const struct kvlist *greylist,
			   const struct kvlist *ratelimit, const struct kvlist *spoof,
			   const char *statefile, struct store *legacy,
			   const struct policy_host *host, double now, char *err, size_t errlen)
{
	struct policy *p = build(policy, greylist, ratelimit, spoof, host, now, err, errlen);
	char msg[512] = "", why[256] = "";
	if (!p)
		return NULL;
	if (!statefile) {
		nostore(p);
		if (errlen)
			err[0] = '\0';
		return p;
	}
	int rc = pwriter_open(statefile, now, &p->pw, msg, sizeof(msg));
	if (rc < 0) {
		snprintf(err, errlen, "policy state: %s", msg);
		goto fail;
	}
	if (legacy && migrate(p, legacy, now, err, errlen) < 0)
		goto fail;
	if (load(p, now) < 0) {
		pwriter_error(p->pw, why, sizeof(why));
		snprintf(err, errlen, "policy state: %s: %s", statefile, why);
		goto fail;
	}
	if (pwriter_start(p->pw) < 0) {
		pwriter_error(p->pw, why, sizeof(why));
		snprintf(err, errlen, "policy state: %s", why);
		goto fail;
	}
	/* success: err carries a warning (a damaged file moved aside) or nothing */
	snprintf(err, errlen, "%s", rc == 1 ? msg : "");
	return p;
fail:
	/* the queues hold nothing yet: close without draining */
	p->pw = pwriter_close(p->pw, 0);
	policy_free(p);
	return NULL;
}

/* ---- evaluation ---- */

static enum pverdict banned_eval(struct policy *p, const struct policy_req *r, double now,
				 struct strbuf *out, struct strbuf *key)
{
	const char *ca = policy_req_get(r, "client_address");
	struct addr a;
	if (!p->host.is_banned || !ca || addr_parse(ca, strlen(ca), &a) < 0)
		return PV_DUNNO;
	if (!p->host.is_banned(p->host.arg, &a, now))
		return PV_DUNNO;
	strbuf_adds(key, ca);
	for (const char *s = p->banned_action; *s; s++) {
		if (s[0] == '%' && s[1] == 'a') {
			strbuf_adds(out, ca);
			s++;
		} else {
			strbuf_addc(out, *s);
		}
	}
	return PV_REJECT;
}

void policy_eval(struct policy *p, const struct policy_req *r, double now, struct strbuf *out)
{
	const struct policy_host *h = &p->host;
	int have_prepend = 0;

	p->total++;
	if (now > p->now)
		p->now = now;
	for (size_t i = 0; i < p->norder; i++) {
		int c = p->order[i];
		enum pverdict v = PV_DUNNO;
		if (c < 0 || c >= CHK_N)
			continue;
		struct pcount *pc = &p->cnt[c];
		strbuf_reset(&p->act);
		strbuf_reset(&p->key);
		switch (c) {
		case CHK_BANNED:
			v = banned_eval(p, r, now, &p->act, &p->key);
			break;
		case CHK_SPOOF:
			v = policy_sp_eval(p->sp, r, &p->act, &p->key);
			break;
		case CHK_GREYLIST:
			v = policy_gl_eval(p->gl, r, now, &p->act, &p->key, h);
			break;
		case CHK_RATELIMIT:
			v = policy_rl_eval(p->rl, r, now, &p->act, &p->key, h);
			break;
		}
		pc->requests++;
		if (v == PV_DUNNO || v == PV_PREPEND) {
			pc->passes++;
			if (v == PV_PREPEND && !have_prepend) {
				strbuf_reset(&p->prepend);
				strbuf_add(&p->prepend, p->act.s, p->act.len);
				have_prepend = 1;
			}
			continue;
		}
		if (v == PV_DEFER)
			pc->defers++;
		else
			pc->rejects++;
		const char *ca = policy_req_get(r, "client_address");
		const char *k = strbuf_str(&p->key);
		top_add(&p->top[c], k);
		if (h->on_event && (!h->want_event || h->want_event(h->arg, chkname[c]))) {
			strbuf_reset(&p->line);
			strbuf_addf(&p->line, "policy %s %s client=%s key=%s", chkname[c],
				    v == PV_DEFER ? "defer" : "reject", ca ? ca : "unknown", k);
			if (c == CHK_RATELIMIT)
				strbuf_addf(&p->line, " limit=%s", policy_rl_why(p->rl));
			strbuf_addf(&p->line, ": %s", strbuf_str(&p->act));
			h->on_event(h->arg, chkname[c], ca ? ca : "unknown", k, p->line.s, now);
		}
		strbuf_add(out, p->act.s, p->act.len);
		return;
	}
	if (have_prepend)
		strbuf_add(out, p->prepend.s, p->prepend.len);
	else
		strbuf_adds(out, "DUNNO");
}

/* ---- state ---- */

int policy_flush(struct policy *p, double now)
{
	int rc;
	p->flush_now = now;
	if (p->pw) {
		/* never blocks: with the writer's queue full the entries stay queued
		 * here, each once however often it changes, until it catches up */
		rc = pwriter_status(p->pw);
		if (p->held) {
			if (pwriter_submit(p->pw, p->held) < 0)
				return rc;
			p->held = NULL;
		}
		if (!pwriter_room(p->pw) && policy_pending(p) > PENDING_MAX) {
			/* a writer stuck this long (a failing disk): keep memory
			 * bounded, a fresh snapshot will carry the current state */
			struct pstate_io io = { NULL, p->pw, NULL, 0, 1 };
			if (p->gl)
				policy_gl_flush(p->gl, &io, now);
			if (p->rl)
				policy_rl_flush(p->rl, &io, now);
			p->resyncs++;
			return rc;
		}
		if (!pwriter_room(p->pw) || policy_pending(p) == 0)
			return rc;
		struct pbatch *b = pwriter_batch(p->pw);
		flush_into(p, b, now, FLUSH_BUDGET);
		if (pbatch_count(b) == 0)
			pbatch_free(b);
		else if (pwriter_submit(p->pw, b) < 0)
			p->held = b;   /* batches must reach the file in order */
		return rc;
	}
	if (!p->st)
		return 0;
	struct pbatch *b = pbatch_new();
	flush_into(p, b, now, 0);
	if ((rc = store_begin(p->st)) >= 0)
		rc = pbatch_apply_store(b, p->st);
	int frc = store_flush(p->st);
	pbatch_free(b);
	return rc < 0 ? rc : frc < 0 ? frc : 0;
}

int policy_state_error(struct policy *p, char *buf, size_t len)
{
	if (len)
		buf[0] = '\0';
	if (p->pw) {
		pwriter_error(p->pw, buf, len);
		return pwriter_status(p->pw);
	}
	if (p->st)
		snprintf(buf, len, "%s", store_error(p->st));
	return 0;
}

size_t policy_pending(const struct policy *p)
{
	/* a serialised batch the writer has not taken yet counts, so the
	 * caller's timer keeps calling policy_flush until it is handed over */
	return (p->gl ? policy_gl_pending(p->gl) : 0) + (p->rl ? policy_rl_pending(p->rl) : 0) +
	       (p->held != NULL);
}

void policy_expire_step(struct policy *p, double now, size_t budget)
{
	size_t used = p->gl ? policy_gl_expire(p->gl, now, budget) : 0;
	if (p->rl && used < budget)
		policy_rl_expire(p->rl, now, budget - used);
}

/* ---- control ---- */

static void top_print(const struct topk *t, int json, struct strbuf *out)
{
	size_t idx[TOPK];
	size_t n = t->used;
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && t->n[idx[j]] > t->n[idx[j - 1]]; j--) {
			size_t x = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = x;
		}
	if (n > TOP_SHOWN)
		n = TOP_SHOWN;
	for (size_t i = 0; i < n; i++) {
		if (json) {
			strbuf_adds(out, i ? ",{\"key\":" : "{\"key\":");
			strbuf_add_json(out, t->key[idx[i]], strlen(t->key[idx[i]]));
			strbuf_addf(out, ",\"count\":%lu}", t->n[idx[i]]);
		} else {
			strbuf_addf(out, "    top: %s (%lu)\n", t->key[idx[i]], t->n[idx[i]]);
		}
	}
}

int policy_status(struct policy *p, int json, struct strbuf *out)
{
	double now = p->now > 0 ? p->now : (double)time(NULL);
	if (json)
		strbuf_addf(out, "{\"requests\":%lu,\"checks\":[", p->total);
	else
		strbuf_addf(out, "policy: %lu requests\n", p->total);
	for (size_t i = 0; i < p->norder; i++) {
		int c = p->order[i];
		const struct pcount *k = &p->cnt[c];
		if (json) {
			strbuf_addf(out, "%s{\"name\":\"%s\",\"requests\":%lu,\"passes\":%lu,"
				    "\"defers\":%lu,\"rejects\":%lu,\"top\":[",
				    i ? "," : "", chkname[c], k->requests, k->passes, k->defers,
				    k->rejects);
			top_print(&p->top[c], 1, out);
			strbuf_adds(out, "]");
			if (c == CHK_GREYLIST) {
				strbuf_addc(out, ',');
				policy_gl_status(p->gl, 1, out);
			} else if (c == CHK_RATELIMIT) {
				strbuf_adds(out, ",\"limits\":");
				policy_rl_status(p->rl, 1, now, out);
			} else if (c == CHK_SPOOF) {
				strbuf_addf(out, ",\"domains\":%zu", policy_sp_domains(p->sp));
			}
			strbuf_adds(out, "}");
		} else {
			strbuf_addf(out, "%s: requests %lu, passes %lu, defers %lu, rejects %lu\n",
				    chkname[c], k->requests, k->passes, k->defers, k->rejects);
			if (c == CHK_GREYLIST)
				policy_gl_status(p->gl, 0, out);
			else if (c == CHK_RATELIMIT)
				policy_rl_status(p->rl, 0, now, out);
			else if (c == CHK_SPOOF)
				strbuf_addf(out, "  served domains %zu\n", policy_sp_domains(p->sp));
			top_print(&p->top[c], 0, out);
		}
	}
	if (json)
		strbuf_adds(out, "]");
	if (p->pw) {
		/* the writer's side: commits on disk, not the loop's serialising */
		struct pwriter_stats ws;
		char why[256];
		pwriter_stats(p->pw, &ws);
		int bad = policy_state_error(p, why, sizeof(why)) < 0;
		if (json) {
			strbuf_addf(out, ",\"state\":{\"commits\":%lu,\"rows\":%lu,"
				    "\"commit_ms_total\":%.3f,\"commit_ms_max\":%.3f,\"queued\":%zu,"
				    "\"pending\":%zu,\"checkpoints\":%lu,\"failures\":%lu,\"resyncs\":%lu,"
				    "\"error\":", ws.commits, ws.rows, ws.commit_ms_total, ws.commit_ms_max,
				    ws.queued, policy_pending(p), ws.checkpoints, ws.failures, p->resyncs);
			if (bad)
				strbuf_add_json(out, why, strlen(why));
			else
				strbuf_adds(out, "null");
			strbuf_addc(out, '}');
		} else {
			strbuf_addf(out, "state file: %lu commits by the writer (%lu rows), %.1f ms in "
				    "total, longest %.1f ms; %zu batches queued, %zu changes pending, "
				    "%lu checkpoints\n", ws.commits, ws.rows, ws.commit_ms_total,
				    ws.commit_ms_max, ws.queued, policy_pending(p), ws.checkpoints);
			if (bad)
				strbuf_addf(out, "state file: failing (%lu failures): %s\n", ws.failures,
					    why);
			if (p->resyncs)
				strbuf_addf(out, "state file: %lu times the queue outgrew a stuck writer "
					    "and a fresh snapshot was started\n", p->resyncs);
		}
	}
	if (json)
		strbuf_addc(out, '}');
	return 0;
}

int policy_greylist_list(struct policy *p, int json, double now, struct strbuf *out)
{
	if (!p->gl)
		return -ENOENT;
	policy_gl_list(p->gl, json, now, out);
	return 0;
}

int policy_greylist_del(struct policy *p, const char *what, double now)
{
	(void)now;
	if (!p->gl)
		return -ENOENT;
	return policy_gl_del(p->gl, what);
}

int policy_ratelimit_list(struct policy *p, int json, double now, struct strbuf *out)
{
	if (!p->rl)
		return -ENOENT;
	policy_rl_list(p->rl, json, now, out);
	return 0;
}

int policy_ratelimit_reset(struct policy *p, const char *key)
{
	if (!p->rl)
		return -ENOENT;
	return policy_rl_reset(p->rl, key);
}

void policy_greylist_import(struct policy *p, const char *triplet, double first, double last,
			    unsigned count)
{
	if (p->gl && triplet && *triplet)
		policy_gl_import(p->gl, triplet, first, last, count);
}

void policy_ratelimit_import(struct policy *p, const char *limit, const char *key, double t,
			     double amount)
{
	if (p->rl && limit && key)
		policy_rl_import(p->rl, limit, key, t, amount);
}

void policy_counters(const struct policy *p, struct policy_counters *out)
{
	memset(out, 0, sizeof *out);
	out->requests = p->total;
	for (size_t i = 0; i < p->norder && out->n < POLICY_COUNTERS_MAX; i++) {
		int c = p->order[i];
		struct policy_check_counters *o = &out->check[out->n++];
		o->name = chkname[c];
		o->requests = p->cnt[c].requests;
		o->passes = p->cnt[c].passes;
		o->defers = p->cnt[c].defers;
		o->rejects = p->cnt[c].rejects;
	}
}
