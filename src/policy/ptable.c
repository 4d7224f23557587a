/*
 * ptable - the string-keyed hash table behind greylist triplets, the
 * auto-whitelist and rate-limit keys.
 *
 * Chained buckets that double when the load passes 1, an intrusive LRU list
 * so that a table with a cap (keys come from the network: senders,
 * recipients, SASL names) evicts its idlest entry instead of growing, and a
 * resumable bucket cursor so expiry can examine a bounded number of entries
 * per timer tick instead of scanning everything at once.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/xmalloc.h"
#include "policy/policy_int.h"

/* 64x64->128 multiply, folded: the mixing step of the hash below. */
static inline uint64_t fold_mul(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* Eight bytes per step (a triplet key is about 60 bytes, hashed for every
 * request), started from a per-table random seed: keys come from the
 * network, and a fixed hash would let a sender craft colliding recipients
 * that pile up in one chain. Not kept anywhere: the byte order of the
 * machine may show in the value. */
uint64_t policy_hash(uint64_t seed, const char *s, size_t n)
{
	uint64_t h = seed ^ (0x9e3779b97f4a7c15ULL * (n + 1)), w;
	while (n > 8) {
		memcpy(&w, s, 8);
		h = fold_mul(h ^ w, 0xa0761d6478bd642fULL);
		s += 8;
		n -= 8;
	}
	w = 0;
	if (n)
		memcpy(&w, s, n);
	h = fold_mul(h ^ w, 0xe7037ed1a0b428dbULL);
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	return h ^ (h >> 32);
}

void policy_ptable_init(struct ptable *t, size_t max)
{
	memset(t, 0, sizeof(*t));
	t->nb = 64;
	t->b = xcalloc(t->nb, sizeof(*t->b));
	t->max = max;
	if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed))
		t->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)t;
}

void policy_ptable_drop(struct pent *e)
{
	free(e);   /* the key lives in the same allocation */
}

void policy_ptable_free(struct ptable *t, void (*freefn)(struct pent *))
{
	struct pent *e = t->head;
	while (e) {
		struct pent *nx = e->next;
		if (freefn)
			freefn(e);
		else
			free(e);
		e = nx;
	}
	free(t->b);
	memset(t, 0, sizeof(*t));
}

struct pent *policy_ptable_get(struct ptable *t, const char *key, size_t keylen)
{
	uint64_t h = policy_hash(t->seed, key, keylen);
	for (struct pent *e = t->b[h & (t->nb - 1)]; e; e = e->hnext)
		if (e->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
			return e;
	return NULL;
}

static void lru_unlink(struct ptable *t, struct pent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		t->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		t->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push(struct ptable *t, struct pent *e)
{
	e->prev = NULL;
	e->next = t->head;
	if (t->head)
		t->head->prev = e;
	t->head = e;
	if (!t->tail)
		t->tail = e;
}

void policy_ptable_touch(struct ptable *t, struct pent *e)
{
	if (t->head == e)
		return;
	lru_unlink(t, e);
	lru_push(t, e);
}

static void grow(struct ptable *t)
{
	size_t nb = t->nb * 2;
	struct pent **b = xcalloc(nb, sizeof(*b));
	for (size_t i = 0; i < t->nb; i++) {
		struct pent *e = t->b[i];
		while (e) {
			struct pent *nx = e->hnext;
			e->hnext = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
			e = nx;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
	/* walks restart their round: at worst some entries are examined twice */
	for (int w = 0; w < 2; w++) {
		t->cursor[w] = 0;
		t->cur[w] = NULL;
	}
}

void policy_ptable_unlink(struct ptable *t, struct pent *e)
{
	struct pent **pp = &t->b[e->hash & (t->nb - 1)];
	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	for (int w = 0; w < 2; w++)
		if (t->cur[w] == e)
			t->cur[w] = e->hnext;
	lru_unlink(t, e);
	e->hnext = NULL;
	t->n--;
	if (e->qpos && t->q) {
		t->q->v[e->qpos - 1] = NULL;
		e->qpos = 0;
		policy_queue_gone(t->q, t->qprefix, e->key, e->keylen);
	}
}

void policy_ptable_remove(struct ptable *t, struct pent *e)
{
	int queued = e->qpos != 0;
	policy_ptable_unlink(t, e);
	if (t->q && !queued)
		policy_queue_gone(t->q, t->qprefix, e->key, e->keylen);
	policy_ptable_drop(e);
}

struct pent *policy_ptable_add(struct ptable *t, const char *key, size_t keylen, size_t size,
			       void (*evictfn)(struct pent *, void *), void *arg)
{
	if (t->max && t->n >= t->max && t->tail) {
		struct pent *old = t->tail;
		policy_ptable_unlink(t, old);
		if (evictfn)
			evictfn(old, arg);
		else
			free(old);
	}
	if (t->n >= t->nb)
		grow(t);
	/* one allocation for entry and key: one cache miss less per lookup */
	size = (size + 7) & ~(size_t)7;
	struct pent *e = xcalloc(1, size + keylen + 1);
	e->key = (char *)e + size;
	memcpy(e->key, key, keylen);
	e->keylen = keylen;
	e->hash = policy_hash(t->seed, key, keylen);
	e->hnext = t->b[e->hash & (t->nb - 1)];
	t->b[e->hash & (t->nb - 1)] = e;
	lru_push(t, e);
	t->n++;
	return e;
}

void policy_ptable_walk_reset(struct ptable *t, int which)
{
	t->cursor[which] = 0;
	t->cur[which] = NULL;
}

/* How many buckets ahead a walk asks for the entries it will reach: each
 * is a cache miss (entries are scattered over the heap), and a snapshot
 * serialises every entry it walks; the entry and its key are in its first
 * three cache lines. */
#define WALK_AHEAD 8

struct pent *policy_ptable_walk(struct ptable *t, int which)
{
	while (!t->cur[which]) {
		if (t->cursor[which] >= t->nb) {
			t->cursor[which] = 0;
			return NULL;
		}
		if (t->cursor[which] + WALK_AHEAD < t->nb) {
			const char *ahead = (const char *)t->b[t->cursor[which] + WALK_AHEAD];
			if (ahead) {
				__builtin_prefetch(ahead);
				__builtin_prefetch(ahead + 64);
				__builtin_prefetch(ahead + 128);
			}
		}
		t->cur[which] = t->b[t->cursor[which]++];
	}
	struct pent *e = t->cur[which];
	t->cur[which] = e->hnext;
	return e;
}
