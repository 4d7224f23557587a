/*
 * pstate - write-behind of the policy engine's tables as a journal plus
 * incremental snapshots, as rows of the engine's state file (pwriter.c) or,
 * for tools and tests, of a store.
 *
 * Writing each changed triplet or rate window as its own row costs a random
 * B-tree update per key: at a few thousand new keys a second that is a
 * quarter of a second of SQLite work per flush, a stall the policy service
 * cannot afford. Instead every flush appends ONE journal row holding all
 * keys changed since the previous flush (their full current value, or a
 * deletion), under a sequential key, which is cheap whatever the rate. To
 * keep the journal short, a snapshot of the whole table is written a chunk
 * per flush; when it is complete a marker row names it and the journal
 * position it started at, and the older snapshot and journal rows are
 * deleted, a few per flush.
 *
 * A flush only serialises: it appends row changes to a batch (memory), which
 * the writer thread commits; the bookkeeping below assumes batches reach the
 * disk in order, which the writer guarantees.
 *
 * Rows in the namespace:
 *   "J<seq, 16 hex>"          journal: records changed since the last flush
 *   "S<gen, 8 hex>-<chunk>"   snapshot chunks of generation gen
 *   "M"                       "gen jstart chunks": the complete snapshot
 * A record is "s<keylen> <vallen>\n<key><value>" (set) or "d<keylen>\n<key>"
 * (delete). Loading applies snapshot M.gen, then the journal from M.jstart
 * on, in order: the state at the last flush. A crash while a snapshot is
 * being written leaves M on the older one, whose journal is still there.
 *
 * Every row expires `retain` seconds after it was written (the longest an
 * entry lives without being touched), so rows of a check that was turned off
 * are purged in time.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "policy/policy_int.h"
#include "policy/pwriter.h"
#include "store/store.h"

#define PS_CHUNK 4096          /* most entries per snapshot chunk (one per flush) */
#define PS_DEL_PER_FLUSH 1024  /* old rows deleted per flush */
#define PS_JOURNAL_ROWS 3600   /* a snapshot at least this often (flushes) */
#define PS_JOURNAL_MIN (4 << 20)

size_t policy_u64_str(char *buf, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	size_t n = sizeof(tmp) - i;
	memcpy(buf, tmp + i, n);
	buf[n] = '\0';
	return n;
}

void policy_add_u64(struct strbuf *b, uint64_t v)
{
	char tmp[24];
	strbuf_add(b, tmp, policy_u64_str(tmp, v));
}

void policy_pstate_init(struct pstate *ps, const char *ns, const struct pstate_ops *ops,
			void *arg, double retain)
{
	memset(ps, 0, sizeof(*ps));
	ps->ns = ns;
	ps->ops = ops;
	ps->arg = arg;
	ps->retain = retain > 0 ? retain : 86400;
	ps->gen = 0;
	ps->seq = 1;
	ps->chunk = PS_CHUNK;
	ps->jrows_max = PS_JOURNAL_ROWS;
	ps->jbytes_min = PS_JOURNAL_MIN;
}

void policy_pstate_free(struct pstate *ps)
{
	strbuf_free(&ps->buf);
	strbuf_free(&ps->key);
	strbuf_free(&ps->val);
	free(ps->dels);
	ps->dels = NULL;
}

static void add_del(struct pstate *ps, const char *key)
{
	ps->dels = xgrow(ps->dels, &ps->ndelcap, ps->ndels, sizeof(*ps->dels));
	snprintf(ps->dels[ps->ndels].k, sizeof(ps->dels[0].k), "%s", key);
	ps->ndels++;
}

/* Applies the records of one row; stops quietly at a damaged record. */
static void apply(struct pstate *ps, const char *b, size_t len)
{
	const char *p = b, *end = b + len;
	while (p < end) {
		char op = *p++;
		char *q;
		unsigned long long kl = strtoull(p, &q, 10), vl = 0;
		if (q == p || q >= end)
			return;
		p = q;
		if (op == 's') {
			if (*p++ != ' ')
				return;
			vl = strtoull(p, &q, 10);
			if (q == p || q >= end)
				return;
			p = q;
		} else if (op != 'd') {
			return;
		}
		if (*p++ != '\n' || kl > (size_t)(end - p) || vl > (size_t)(end - p) - kl)
			return;
		if (op == 's')
			ps->ops->set(ps->arg, p, (size_t)kl, p + kl, (size_t)vl);
		else
			ps->ops->del(ps->arg, p, (size_t)kl);
		p += kl + vl;
	}
}

struct loadctx {
	struct pstate *ps;
	int pass;                 /* 0: snapshot chunks, 1: journal */
	unsigned long long gen, jstart;
};

static int load_row(const char *key, const void *val, size_t len, double expires, void *arg)
{
	struct loadctx *c = arg;
	struct pstate *ps = c->ps;
	unsigned long long a;
	unsigned b;
	(void)expires;
	if (key[0] == 'S' && sscanf(key + 1, "%llx-%x", &a, &b) == 2) {
		if (c->pass == 0 && a == c->gen && c->gen)
			apply(ps, val, len);
		else if (c->pass == 0 && a != c->gen)
			add_del(ps, key);
	} else if (key[0] == 'J' && sscanf(key + 1, "%llx", &a) == 1) {
		if (a >= ps->seq)
			ps->seq = a + 1;
		if (c->pass == 1 && a >= c->jstart) {
			apply(ps, val, len);
			ps->jrows++;
			ps->jbytes += len;
		} else if (c->pass == 1) {
			add_del(ps, key);
		}
	} else if (strcmp(key, "M") != 0 && c->pass == 0) {
		add_del(ps, key);   /* not ours (an older format): clean up */
	}
	return 0;
}

static int io_foreach(const struct pstate_io *io, const char *ns, double now, store_kv_cb cb,
		      void *arg)
{
	return io->pw ? pwriter_foreach(io->pw, ns, now, cb, arg)
		      : store_kv_foreach(io->st, ns, now, cb, arg);
}

int policy_pstate_load(struct pstate *ps, const struct pstate_io *io, double now)
{
	struct loadctx c = { ps, 0, 0, 0 };
	void *m = NULL;
	size_t mlen = 0;
	unsigned chunks = 0;
	int rc = io->pw ? pwriter_get(io->pw, ps->ns, "M", now, &m, &mlen)
			: store_kv_get(io->st, ps->ns, "M", now, &m, &mlen, NULL);
	if (rc == 0) {
		if (sscanf(m, "%llx %llx %x", &c.gen, &c.jstart, &chunks) != 3)
			c.gen = c.jstart = 0;
		free(m);
	} else if (rc != -ENOENT) {
		return rc;
	}
	ps->gen = c.gen;
	ps->gchunks = chunks;
	ps->jfirst = c.jstart;
	rc = io_foreach(io, ps->ns, now, load_row, &c);
	if (rc < 0)
		return rc;
	c.pass = 1;
	rc = io_foreach(io, ps->ns, now, load_row, &c);
	return rc < 0 ? rc : 0;
}

/* Frames one record into ps->buf. */
static void record(struct pstate *ps, const char *k, size_t kl, const char *v, size_t vl, int set)
{
	strbuf_addc(&ps->buf, set ? 's' : 'd');
	policy_add_u64(&ps->buf, kl);
	if (set) {
		strbuf_addc(&ps->buf, ' ');
		policy_add_u64(&ps->buf, vl);
	}
	strbuf_addc(&ps->buf, '\n');
	strbuf_add(&ps->buf, k, kl);
	if (set)
		strbuf_add(&ps->buf, v, vl);
}

static void snapshot_step(struct pstate *ps, struct pbatch *out, double now, size_t nq)
{
	/* as many entries as the journal row has, and at least chunk/8 a
	 * second: flushes that follow each other closely (a busy service)
	 * each take a small share of that floor, so no flush stalls the loop
	 * for a snapshot much longer than for its journal row */
	double since = ps->last_step > 0 && now > ps->last_step ? now - ps->last_step : 1.0;
	if (since > 1.0)
		since = 1.0;
	ps->last_step = now;
	size_t floor = (size_t)((double)(ps->chunk / 8) * since);
	size_t chunk = nq < floor ? floor : nq > ps->chunk ? ps->chunk : nq;
	if (chunk == 0)
		chunk = 1;
	char key[40];
	strbuf_reset(&ps->buf);
	size_t n = 0;
	int done = 0;
	while (n < chunk) {
		struct pent *e = ps->ops->next(ps->arg);
		if (!e) {
			done = 1;
			break;
		}
		strbuf_reset(&ps->key);
		strbuf_reset(&ps->val);
		if (ps->ops->ser(ps->arg, e, &ps->key, &ps->val) == 0)
			record(ps, ps->key.s, ps->key.len, strbuf_str(&ps->val), ps->val.len, 1);
		n++;
	}
	if (ps->buf.len) {
		snprintf(key, sizeof(key), "S%08llx-%08x", (unsigned long long)ps->sgen, ps->schunk);
		pbatch_set(out, ps->ns, key, ps->buf.s, ps->buf.len, now + ps->retain);
		ps->schunk++;
		ps->sbytes_cur += ps->buf.len;
	}
	if (!done)
		return;
	/* complete: name it, then retire the older snapshot and journal */
	char mv[80];
	int ml = snprintf(mv, sizeof(mv), "%llx %llx %x", (unsigned long long)ps->sgen,
			  (unsigned long long)ps->sjstart, ps->schunk);
	pbatch_set(out, ps->ns, "M", mv, (size_t)ml, now + ps->retain);
	for (unsigned i = 0; ps->gen && i < ps->gchunks; i++) {
		snprintf(key, sizeof(key), "S%08llx-%08x", (unsigned long long)ps->gen, i);
		add_del(ps, key);
	}
	for (uint64_t s = ps->jfirst; s < ps->sjstart; s++) {
		snprintf(key, sizeof(key), "J%016" PRIx64, s);
		add_del(ps, key);
	}
	ps->jfirst = ps->sjstart;
	ps->gen = ps->sgen;
	ps->gchunks = ps->schunk;
	ps->snapping = 0;
	ps->jrows = 0;
	ps->jbytes = 0;
	ps->sbytes_last = ps->sbytes_cur;
}

/* See pstate_io.resync. */
static void resync(struct pstate *ps, struct pqueue *q)
{
	char key[40];
	policy_queue_clear(q);
	if (ps->snapping) {
		/* the chunks of the snapshot in progress are abandoned */
		for (unsigned i = 0; i < ps->schunk; i++) {
			snprintf(key, sizeof(key), "S%08llx-%08x", (unsigned long long)ps->sgen, i);
			add_del(ps, key);
		}
	}
	ps->snapping = 1;
	ps->sgen = (ps->sgen > ps->gen ? ps->sgen : ps->gen) + 1;
	ps->sjstart = ps->seq;
	ps->schunk = 0;
	ps->sbytes_cur = 0;
	ps->ops->restart(ps->arg);
}

int policy_pstate_flush(struct pstate *ps, const struct pstate_io *io, double now,
			struct pqueue *q)
{
	char key[40];
	if (io->resync) {
		resync(ps, q);
		return 0;
	}
	/* the deletions, then the newest entries: the order of records within
	 * a row does not matter otherwise (each holds the entry's current
	 * value), a key deleted and added again is deleted first; taking from
	 * the end leaves the rest of the queue in place */
	size_t nq = io->budget && q->n > io->budget ? io->budget : q->n;

	if (nq || q->ngone) {
		strbuf_reset(&ps->buf);
		for (size_t i = 0; i < q->ngone; i++) {
			record(ps, q->gone[i], strlen(q->gone[i]), NULL, 0, 0);
			free(q->gone[i]);
		}
		q->ngone = 0;
		for (size_t i = q->n - nq; i < q->n; i++) {
			struct pent *e = q->v[i];
			if (!e)
				continue;
			e->qpos = 0;
			strbuf_reset(&ps->key);
			strbuf_reset(&ps->val);
			if (ps->ops->ser(ps->arg, e, &ps->key, &ps->val) == 0)
				record(ps, ps->key.s, ps->key.len, strbuf_str(&ps->val), ps->val.len, 1);
		}
		q->n -= nq;
		snprintf(key, sizeof(key), "J%016" PRIx64, ps->seq);
		pbatch_set(io->out, ps->ns, key, ps->buf.s, ps->buf.len, now + ps->retain);
		ps->seq++;
		ps->jrows++;
		ps->jbytes += ps->buf.len;
	}
	if (!ps->snapping && (ps->jrows >= ps->jrows_max ||
			      ps->jbytes > ps->jbytes_min + 2 * ps->sbytes_last)) {
		ps->snapping = 1;
		ps->sgen = ps->gen + 1;
		ps->sjstart = ps->seq;
		ps->schunk = 0;
		ps->sbytes_cur = 0;
		ps->ops->restart(ps->arg);
	}
	/* a chunk about the size of the journal row: the snapshot keeps pace
	 * with the changes while no flush grows much beyond its journal */
	if (ps->snapping)
		snapshot_step(ps, io->out, now, nq);
	for (int i = 0; i < PS_DEL_PER_FLUSH && ps->ndels; i++) {
		pbatch_del(io->out, ps->ns, ps->dels[ps->ndels - 1].k);
		ps->ndels--;
	}
	return 0;
}
