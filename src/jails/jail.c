/*
 * jail - failure tracking per id and ban decisions (see jail.h).
 *
 * The table is keyed by attacker-controlled text, so it is capped: records sit
 * in an open-addressing hash (linear probing, backward-shift delete: no
 * tombstones to pile up) and on an LRU list; reaching `maxtracked` evicts the
 * least recently seen record. The id is stored inside the record: an IPv4
 * address in canonical dotted form (almost every id) as its four bytes, which
 * makes the record a 64-byte heap chunk instead of 80, anything else as text.
 * The hash is not stored; it is cheap to compute again from the id.
 *
 * Evidence (the last `maxmatches` lines of an id) is read only when the id is
 * banned, yet with findtime in days a jail tracks tens of thousands of ids: in
 * the heap that was ~600 bytes per record, most of the daemon's memory. So the
 * lines go to an evidence spool (evspool.c: an unlinked file in the state
 * directory for the daemon, in $TMPDIR for replay) as one entry per failure
 * linked to the record's previous one; a record keeps the newest entry's
 * offset and how many lines are live. Dropped lines stay in the spool as dead
 * bytes. When the spool has grown enough since its last compaction (twice, for
 * a file), a fresh spool is started and the records move
 * over a few at a time (each carrying its live lines as one entry; a record
 * touched meanwhile moves first), so no single failure pays for the whole
 * copy; the old spool is freed when the last record has left it.
 */
#include "jails/jail.h"

#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/hash.h"
#include "core/kvlist.h"
#include "core/xmalloc.h"
#include "jails/evspool.h"

struct rec {
	uint64_t ev;             /* newest evidence entry, EVSPOOL_NONE */
	double first, last;
	struct rec *prev, *next; /* LRU: head = most recent */
	unsigned retry;
	unsigned nring : 31;     /* live evidence lines in the chain */
	unsigned gen : 1;        /* spool generation the chain lives in */
	unsigned char v4;        /* id holds an IPv4 address's 4 bytes, else text */
	unsigned char id[];
};

/* An id as the table compares and hashes it. */
struct rkey {
	unsigned char v4;
	unsigned char b[4];
	const char *text;        /* !v4 */
	uint64_t hash;
};

#define IPV4_TEXT 16 /* "255.255.255.255" */

/* Compaction starts once a spool file has doubled since the last one (plus
 * this slack); a spool in memory (replay, or no usable directory) is kept
 * tighter, at 1.5 times, since there the dead bytes are the heap. */
#define SPOOL_SLACK (1u << 20)
#define SPOOL_SLACK_MEM (1u << 18)
/* Hash slots a failure looks at while a compaction is under way; a periodic
 * jail_expire() looks at more, so an idle jail finishes it as well. */
#define MOVE_STEP 8
#define MOVE_STEP_IDLE 1024

struct jail {
	struct jail_params p;
	struct rec **slots;
	size_t nslots, n;
	struct rec *mru, *lru;
	unsigned long evictions;
	char *spooldir;          /* NULL: evidence in memory */
	struct evspool *sp;      /* current spool: records with gen == j->gen */
	struct evspool *old;     /* being emptied by a compaction, else NULL */
	unsigned gen;
	size_t nold;             /* records still in old */
	size_t cursor;           /* next slot the compaction looks at */
	uint64_t base;           /* spool size after the last compaction */
};

static uint64_t mix(uint64_t h)
{
	return h ^ (h >> 29);
}

/* The four bytes of a dotted quad written the way addresses are printed (no
 * leading zeros, no spaces), so that printing them gives the id back. */
static int ipv4_canonical(const char *s, unsigned char b[4])
{
	for (int k = 0; k < 4; k++) {
		if (k && *s++ != '.')
			return 0;
		if (*s < '0' || *s > '9')
			return 0;
		unsigned v = 0;
		int n = 0;
		for (; *s >= '0' && *s <= '9' && n < 4; s++, n++)
			v = v * 10 + (unsigned)(*s - '0');
		if (n > 3 || v > 255 || (n > 1 && s[-n] == '0'))
			return 0;
		b[k] = (unsigned char)v;
	}
	return *s == '\0';
}

static void key_of(const char *id, struct rkey *k)
{
	k->v4 = (unsigned char)ipv4_canonical(id, k->b);
	k->text = id;
	k->hash = mix(k->v4 ? hash_bytes(HASH_SEED, k->b, 4) : hash_str(HASH_SEED, id));
}

static uint64_t rec_hash(const struct rec *r)
{
	return mix(r->v4 ? hash_bytes(HASH_SEED, r->id, 4) : hash_str(HASH_SEED, (const char *)r->id));
}

static int rec_is(const struct rec *r, const struct rkey *k)
{
	if (r->v4 != k->v4)
		return 0;
	return k->v4 ? memcmp(r->id, k->b, 4) == 0 : strcmp((const char *)r->id, k->text) == 0;
}

/* The id as text: buf (IPV4_TEXT bytes) holds it when it is stored as bytes. */
static const char *rec_id(const struct rec *r, char *buf)
{
	if (!r->v4)
		return (const char *)r->id;
	snprintf(buf, IPV4_TEXT, "%u.%u.%u.%u", r->id[0], r->id[1], r->id[2], r->id[3]);
	return buf;
}

static void params_copy(struct jail_params *dst, const struct jail_params *src)
{
	double *m = NULL;
	if (src->incr.nmultipliers) {
		m = xmalloc(src->incr.nmultipliers * sizeof *m);
		memcpy(m, src->incr.multipliers, src->incr.nmultipliers * sizeof *m);
	}
	*dst = *src;
	dst->incr.multipliers = m;
	if (dst->maxretry == 0)
		dst->maxretry = 1;
	if (dst->maxtracked == 0)
		dst->maxtracked = 1000000;
}

struct jail *jail_new(const struct jail_params *p)
{
	struct jail *j = xcalloc(1, sizeof *j);
	params_copy(&j->p, p);
	j->nslots = 64;
	j->slots = xcalloc(j->nslots, sizeof *j->slots);
	/* replay and the tests get a spool in the temporary directory; the daemon
	 * names its state directory */
	const char *tmp = getenv("TMPDIR");
	j->spooldir = xstrdup(tmp && *tmp == '/' ? tmp : "/tmp");
	j->sp = evspool_new(j->spooldir);
	return j;
}

void jail_spool_dir(struct jail *j, const char *dir)
{
	free(j->spooldir);
	j->spooldir = dir ? xstrdup(dir) : NULL;
	/* an empty spool is simply replaced; one in use moves at its next compaction */
	if (!j->old && evspool_size(j->sp) == 0) {
		evspool_free(j->sp);
		j->sp = evspool_new(j->spooldir);
	}
}

static void rec_destroy(struct rec *r)
{
	free(r);
}

void jail_free(struct jail *j)
{
	if (!j)
		return;
	for (struct rec *r = j->mru, *n; r; r = n) {
		n = r->next;
		rec_destroy(r);
	}
	free(j->slots);
	evspool_free(j->sp);
	evspool_free(j->old);
	free(j->spooldir);
	jail_incr_free(&j->p.incr);
	free(j);
}

void jail_set_params(struct jail *j, const struct jail_params *p)
{
	/* a new maxmatches starts the evidence afresh (and with an empty spool) */
	if (p->maxmatches != j->p.maxmatches) {
		for (struct rec *r = j->mru; r; r = r->next) {
			r->ev = EVSPOOL_NONE;
			r->nring = 0;
			r->gen = j->gen & 1;
		}
		evspool_free(j->old);
		evspool_free(j->sp);
		j->old = NULL;
		j->nold = 0;
		j->sp = evspool_new(j->spooldir);
		j->base = 0;
	}
	jail_incr_free(&j->p.incr);
	params_copy(&j->p, p);
}

static size_t find_slot(const struct jail *j, const struct rkey *k)
{
	size_t mask = j->nslots - 1, i = k->hash & mask;
	while (j->slots[i] && !rec_is(j->slots[i], k))
		i = (i + 1) & mask;
	return i;
}

/* The slot of a record that is in the table. */
static size_t rec_slot(const struct jail *j, const struct rec *r)
{
	size_t mask = j->nslots - 1, i = rec_hash(r) & mask;
	while (j->slots[i] != r)
		i = (i + 1) & mask;
	return i;
}

static void grow(struct jail *j)
{
	struct rec **old = j->slots;
	size_t on = j->nslots;
	j->nslots *= 2;
	j->slots = xcalloc(j->nslots, sizeof *j->slots);
	size_t mask = j->nslots - 1;
	for (size_t i = 0; i < on; i++)
		if (old[i]) {
			size_t k = rec_hash(old[i]) & mask;
			while (j->slots[k])
				k = (k + 1) & mask;
			j->slots[k] = old[i];
		}
	free(old);
}

/* Backward-shift deletion for linear probing. */
static void slot_delete(struct jail *j, size_t i)
{
	size_t mask = j->nslots - 1;
	j->slots[i] = NULL;
	for (size_t k = (i + 1) & mask; j->slots[k]; k = (k + 1) & mask) {
		size_t home = rec_hash(j->slots[k]) & mask;
		/* move k back to i when i lies cyclically in [home, k) */
		int movable = (k > i) ? (home <= i || home > k) : (home <= i && home > k);
		if (movable) {
			j->slots[i] = j->slots[k];
			j->slots[k] = NULL;
			i = k;
		}
	}
	j->n--;
}

static void lru_unlink(struct jail *j, struct rec *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		j->mru = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		j->lru = r->prev;
	r->prev = r->next = NULL;
}

static void lru_front(struct jail *j, struct rec *r)
{
	r->next = j->mru;
	r->prev = NULL;
	if (j->mru)
		j->mru->prev = r;
	j->mru = r;
	if (!j->lru)
		j->lru = r;
}

static int in_old(const struct jail *j, const struct rec *r)
{
	return j->old && r->gen != (j->gen & 1);
}

/* The spool a record's chain lives in. */
static struct evspool *rec_spool(const struct jail *j, const struct rec *r)
{
	return in_old(j, r) ? j->old : j->sp;
}

static void left_old(struct jail *j)
{
	if (--j->nold)
		return;
	evspool_free(j->old);
	j->old = NULL;
	j->base = evspool_size(j->sp);
}

/* Moves a record's live lines from the old spool to the current one. */
static void move_rec(struct jail *j, struct rec *r)
{
	if (!in_old(j, r))
		return;
	if (r->nring) {
		char **v = xcalloc(r->nring, sizeof *v);
		size_t n = evspool_read(j->old, r->ev, r->nring, v);
		r->ev = n ? evspool_append(j->sp, EVSPOOL_NONE, (const char *const *)v, n)
			  : EVSPOOL_NONE;
		r->nring = n;
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
	}
	r->gen = j->gen & 1;
	left_old(j);
}

/* One bounded step of a compaction under way: looks at `budget` slots. */
static void compact_step(struct jail *j, size_t budget)
{
	while (j->old && budget--) {
		if (j->cursor >= j->nslots)
			j->cursor = 0; /* deletes and growth shift records: go round again */
		struct rec *r = j->slots[j->cursor++];
		if (r)
			move_rec(j, r);
	}
}

static void compact_maybe(struct jail *j)
{
	if (j->old)
		return;
	uint64_t size = evspool_size(j->sp);
	if (evspool_on_disk(j->sp) ? size <= 2 * j->base + SPOOL_SLACK
				   : size <= j->base + j->base / 2 + SPOOL_SLACK_MEM)
		return;
	j->old = j->sp;
	/* a spool that lost its file goes on in memory rather than fail again */
	j->sp = evspool_new(evspool_on_disk(j->old) ? j->spooldir : NULL);
	j->gen++;
	j->nold = j->n;
	j->cursor = 0;
	if (!j->nold) {
		evspool_free(j->old);
		j->old = NULL;
		j->base = 0;
	}
}

static void remove_rec(struct jail *j, struct rec *r)
{
	slot_delete(j, rec_slot(j, r));
	lru_unlink(j, r);
	if (in_old(j, r))
		left_old(j);
	rec_destroy(r);
}

/* Adds a failure's lines to the record's chain: only the newest `cap` of them
 * can ever be read back, so only those are written. */
static void ev_push(struct jail *j, struct rec *r, const char *const *lines, size_t nlines)
{
	unsigned cap = j->p.maxmatches;
	if (cap == 0 || nlines == 0)
		return;
	if (nlines > cap) {
		lines += nlines - cap;
		nlines = cap;
	}
	move_rec(j, r);
	r->ev = evspool_append(j->sp, r->ev, lines, nlines);
	r->nring = r->nring + nlines > cap ? cap : r->nring + (unsigned)nlines;
}

int jail_add_failure(struct jail *j, const char *id, double t, const char *const *lines,
		     size_t nlines, struct jail_ban *ban)
{
	struct rkey key;
	key_of(id, &key);
	size_t i = find_slot(j, &key);
	struct rec *r = j->slots[i];
	if (r) {
		/* fail2ban's adjustTime: rescale the count as a rate over findtime */
		if (t > r->last) {
			if (r->first < t - j->p.findtime) {
				double span = t - r->first;
				/* Python round(): half to even, which nearbyint() does by default */
				r->retry = (unsigned)nearbyint((double)r->retry / span * j->p.findtime);
				r->first = t - j->p.findtime;
			}
			r->last = t;
		}
		r->retry++;
		lru_unlink(j, r);
		lru_front(j, r);
	} else {
		if (j->n >= j->p.maxtracked && j->lru) {
			remove_rec(j, j->lru);
			j->evictions++;
			i = find_slot(j, &key);
		}
		if ((j->n + 1) * 10 > j->nslots * 7) {
			grow(j);
			i = find_slot(j, &key);
		}
		size_t idlen = key.v4 ? 4 : strlen(id) + 1;
		r = xmalloc(offsetof(struct rec, id) + idlen);
		memset(r, 0, offsetof(struct rec, id));
		r->v4 = key.v4;
		memcpy(r->id, key.v4 ? (const void *)key.b : (const void *)id, idlen);
		r->ev = EVSPOOL_NONE;
		r->gen = j->gen & 1;
		r->retry = 1;
		r->first = r->last = t;
		j->slots[i] = r;
		j->n++;
		lru_front(j, r);
	}
	ev_push(j, r, lines, nlines);
	compact_step(j, MOVE_STEP);
	compact_maybe(j);
	if (r->retry < j->p.maxretry)
		return 0;
	memset(ban, 0, sizeof *ban);
	char buf[IPV4_TEXT];
	ban->id = xstrdup(rec_id(r, buf));
	ban->failures = r->retry;
	ban->first = r->first;
	ban->last = r->last;
	ban->lines = xcalloc(r->nring ? r->nring : 1, sizeof *ban->lines);
	if (r->nring)
		ban->nlines = evspool_read(rec_spool(j, r), r->ev, r->nring, ban->lines);
	remove_rec(j, r);
	return 1;
}

void jail_forget(struct jail *j, const char *id)
{
	struct rkey key;
	key_of(id, &key);
	struct rec *r = j->slots[find_slot(j, &key)];
	if (r)
		remove_rec(j, r);
}

void jail_expire(struct jail *j, double now)
{
	while (j->lru && j->lru->last <= now - j->p.findtime)
		remove_rec(j, j->lru);
	compact_step(j, MOVE_STEP_IDLE);
}

size_t jail_tracked(const struct jail *j)
{
	return j->n;
}

unsigned jail_retry(const struct jail *j, const char *id)
{
	struct rkey key;
	key_of(id, &key);
	const struct rec *r = j->slots[find_slot(j, &key)];
	return r ? r->retry : 0;
}

unsigned long jail_evictions(const struct jail *j)
{
	return j->evictions;
}

unsigned long long jail_spool_bytes(const struct jail *j)
{
	return evspool_size(j->sp) + (j->old ? evspool_size(j->old) : 0);
}

void jail_ban_clear(struct jail_ban *b)
{
	free(b->id);
	for (size_t i = 0; i < b->nlines; i++)
		free(b->lines[i]);
	free(b->lines);
	memset(b, 0, sizeof *b);
}

double jail_bantime(const struct jail_params *p, unsigned prev_bans, double rnd)
{
	double bt = p->bantime;
	if (bt < 0 || !p->incr.enabled)
		return bt;
	const struct bantime_incr *in = &p->incr;
	double t;
	if (in->nmultipliers) {
		size_t k = prev_bans < in->nmultipliers ? prev_bans : in->nmultipliers - 1;
		t = bt * in->factor * in->multipliers[k];
	} else {
		unsigned c = prev_bans < 20 ? prev_bans : 20;
		t = bt * (double)(1u << c) * in->factor;
		if (t < bt)
			t = bt;
	}
	if (in->maxtime > 0 && t > in->maxtime)
		t = in->maxtime;
	if (in->rndtime > 0)
		t += rnd * in->rndtime;
	return t;
}

/* Unit multipliers of fail2ban's time strings; "m" is minutes, "mo" month. */
static double unit_seconds(const char *u, size_t n)
{
	char w[16];
	if (n == 0)
		return 1;
	if (n >= sizeof w)
		return -1;
	for (size_t i = 0; i < n; i++)
		w[i] = (char)tolower((unsigned char)u[i]);
	w[n] = '\0';
	static const struct {
		const char *names;
		double secs;
	} units[] = {
		{" s ss se sec second seconds ", 1},
		{" m mm mi min minute minutes ", 60},
		{" h hh ho hou hour hours ", 3600},
		{" d dd da day days ", 86400},
		{" w ww we wee week weeks ", 604800},
		{" mo mon month months ", 31557600.0 / 12},
		{" y yy ye yea year years ", 31557600.0},
	};
	char key[20];
	snprintf(key, sizeof key, " %s ", w);
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strstr(units[i].names, key))
			return units[i].secs;
	return -1;
}

int jail_parse_time(const char *s, double *out)
{
	double total = 0;
	int terms = 0;
	const char *p = s;
	int sign = 1;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (*p == '+' || *p == '-') {
			sign = *p == '-' ? -1 : 1;
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
		}
		char *end;
		double v = strtod(p, &end);
		if (end == p || !isfinite(v))
			return -1;
		p = end;
		const char *u = p;
		while (isalpha((unsigned char)*p))
			p++;
		double m = unit_seconds(u, (size_t)(p - u));
		if (m < 0)
			return -1;
		total += sign * v * m;
		sign = 1;
		terms++;
	}
	if (!terms)
		return -1;
	*out = total;
	return 0;
}

static int parse_bool(const char *s, int *out)
{
	if (!s)
		return 0;
	int b = kvlist_bool(s);
	if (b < 0)
		return -1;
	*out = b;
	return 0;
}

/* fail2ban's default formula, written with any spacing. */
static int is_default_formula(const char *f)
{
	static const char want[] = "ban.Time*(1<<(ban.Countifban.Count<20else20))*banFactor";
	char buf[128];
	size_t n = 0;
	for (; *f && n + 1 < sizeof buf; f++)
		if (!isspace((unsigned char)*f))
			buf[n++] = *f;
	buf[n] = '\0';
	return strcmp(buf, want) == 0;
}

int jail_incr_parse(struct bantime_incr *incr, const char *increment, const char *factor,
		    const char *formula, const char *multipliers, const char *maxtime,
		    const char *rndtime, const char *overalljails, char *err, size_t errlen)
{
	memset(incr, 0, sizeof *incr);
	incr->factor = 1;
	if (parse_bool(increment, &incr->enabled) < 0) {
		snprintf(err, errlen, "bantime.increment: expected true or false, got '%s'", increment);
		return -1;
	}
	if (parse_bool(overalljails, &incr->overalljails) < 0) {
		snprintf(err, errlen, "bantime.overalljails: expected true or false, got '%s'",
			 overalljails);
		return -1;
	}
	if (factor && *factor) {
		char *end;
		incr->factor = strtod(factor, &end);
		while (*end == ' ')
			end++;
		if (*end || incr->factor <= 0) {
			snprintf(err, errlen, "bantime.factor: expected a positive number, got '%s'",
				 factor);
			return -1;
		}
	}
	if (formula && *formula && !is_default_formula(formula)) {
		snprintf(err, errlen,
			 "bantime.formula: only fail2ban's default formula is supported; use "
			 "bantime.factor, bantime.multipliers and bantime.maxtime instead of '%s'",
			 formula);
		return -1;
	}
	if (multipliers && *multipliers) {
		const char *p = multipliers;
		for (;;) {
			while (*p == ' ' || *p == '\t')
				p++;
			if (!*p)
				break;
			char *end;
			double v = strtod(p, &end);
			if (end == p || v < 0) {
				snprintf(err, errlen, "bantime.multipliers: expected numbers, got '%s'",
					 multipliers);
				jail_incr_free(incr);
				return -1;
			}
			incr->multipliers = xrealloc(incr->multipliers,
						     (incr->nmultipliers + 1) * sizeof(double));
			incr->multipliers[incr->nmultipliers++] = v;
			p = end;
		}
	}
	if (maxtime && *maxtime && jail_parse_time(maxtime, &incr->maxtime) < 0) {
		snprintf(err, errlen, "bantime.maxtime: expected a time like 5w or 86400, got '%s'",
			 maxtime);
		jail_incr_free(incr);
		return -1;
	}
	if (rndtime && *rndtime && jail_parse_time(rndtime, &incr->rndtime) < 0) {
		snprintf(err, errlen, "bantime.rndtime: expected a time, got '%s'", rndtime);
		jail_incr_free(incr);
		return -1;
	}
	return 0;
}

void jail_incr_free(struct bantime_incr *incr)
{
	free(incr->multipliers);
	incr->multipliers = NULL;
	incr->nmultipliers = 0;
}
