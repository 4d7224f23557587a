/*
 * policy_int - what the files of the policy engine share: the keyed table
 * (ptable.c), the per-check state (greylist.c, ratelimit.c, spoof.c) and the
 * engine itself (policy.c). Not for use outside src/policy/.
 */
#ifndef MXJAIL_POLICY_INT_H
#define MXJAIL_POLICY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "net/addr.h"
#include "policy/policy.h"

struct kvlist;

/* ---- ptable: string-keyed hash table with an LRU list (ptable.c) ----
 * Entries are structs of the caller that start with a struct pent; the
 * table owns the key copy. The LRU list runs from the most recently touched
 * (head) to the least (tail), so a full table evicts its idlest entry, and a
 * cursor lets expiry walk the table a few entries at a time. A table may
 * have a write-behind queue (below): an entry that leaves the table while
 * queued is taken out of it and its deletion is queued instead. */
struct pent {
	struct pent *hnext;
	struct pent *prev, *next;   /* LRU */
	uint64_t hash;
	char *key;
	size_t keylen;
	uint32_t qpos;              /* 1 + its place in the write-behind queue; 0: not queued */
};

struct pqueue;

struct ptable {
	struct pent **b;
	size_t nb, n;
	size_t max;                 /* 0 = no cap */
	uint64_t seed;              /* hash seed, random per table */
	struct pent *head, *tail;
	/* walks: PT_EXPIRE (expiry) and PT_SNAPSHOT (state snapshots) */
	size_t cursor[2];           /* next bucket */
	struct pent *cur[2];        /* next entry within the current bucket */
	struct pqueue *q;           /* write-behind queue, or NULL */
	const char *qprefix;        /* put before a key in the queue's rows ("" or NULL: none) */
};
enum { PT_EXPIRE, PT_SNAPSHOT };

void policy_ptable_init(struct ptable *t, size_t max);
/* Frees every entry with freefn (or free()); the key is part of the entry. */
void policy_ptable_free(struct ptable *t, void (*freefn)(struct pent *));
struct pent *policy_ptable_get(struct ptable *t, const char *key, size_t keylen);
/* Inserts a zeroed entry of `size` bytes (>= sizeof struct pent) for a key
 * that is not in the table (the key is copied into the same allocation);
 * when the table is full the tail is evicted first and handed to evictfn
 * (which frees it) or freed. */
struct pent *policy_ptable_add(struct ptable *t, const char *key, size_t keylen, size_t size,
			       void (*evictfn)(struct pent *, void *), void *arg);
/* Unlinks e (the caller then frees it with policy_ptable_drop). */
void policy_ptable_unlink(struct ptable *t, struct pent *e);
void policy_ptable_drop(struct pent *e);   /* frees the entry (and its key) */
/* Unlinks and frees e, and queues its deletion (tables with a queue). */
void policy_ptable_remove(struct ptable *t, struct pent *e);
void policy_ptable_touch(struct ptable *t, struct pent *e);   /* move to LRU head */
/* Returns the next entry of a slow walk over the whole table (NULL at the end
 * of a round, after which the walk starts again). Examined entries may be
 * unlinked by the caller before the next call. */
struct pent *policy_ptable_walk(struct ptable *t, int which);
uint64_t policy_hash(uint64_t seed, const char *s, size_t n);

/* ---- write-behind queue of changed entries (policy.c) ----
 * The entries themselves, not copies of their keys: a flush serialises them
 * where they are, without a lookup. An entry is in it once however often it
 * changes (pent.qpos); one that leaves its table is taken out (its slot
 * becomes NULL) and its key goes to the deletions. */
struct pqueue {
	struct pent **v;     /* changed entries in the order of their first change; NULL: gone */
	size_t n, cap;
	char **gone;         /* row keys of deleted entries */
	size_t ngone, gonecap;
	int off;             /* no store: nothing is queued */
};
void policy_queue_entry(struct pqueue *q, struct pent *e);
void policy_queue_gone(struct pqueue *q, const char *prefix, const char *key, size_t keylen);
size_t policy_queue_len(const struct pqueue *q);
/* Forgets everything queued (the entries stay as they are). */
void policy_queue_clear(struct pqueue *q);
void policy_queue_free(struct pqueue *q);

/* ---- write-behind as journal + incremental snapshots (pstate.c) ---- */
struct pwriter;
struct pbatch;
/* Where the rows come from at load and where a flush puts them: the
 * engine's own file (pw, read before its writer thread starts) or a store
 * (the synchronous mode of tools and tests); a flush appends row changes to
 * out and serialises at most `budget` queued entries (0 = all). */
struct pstate_io {
	struct store *st;
	struct pwriter *pw;
	struct pbatch *out;
	size_t budget;
	/* the writer has been unable to keep up for too long: forget the queued
	 * keys (memory stays bounded) and write a fresh snapshot instead, which
	 * holds their current values; until it is complete a restart loads the
	 * older state without them */
	int resync;
};

struct pstate_ops {
	/* the row key and value of an entry; 0 = write it, else skip */
	int (*ser)(void *arg, struct pent *e, struct strbuf *key, struct strbuf *val);
	/* loading: a record sets or deletes an entry (key and value not NUL-terminated) */
	void (*set)(void *arg, const char *key, size_t keylen, const char *val, size_t vallen);
	void (*del)(void *arg, const char *key, size_t keylen);
	/* snapshot walk over every entry: NULL at the end of a round; restart begins one */
	struct pent *(*next)(void *arg);
	void (*restart)(void *arg);
};

struct pstate {
	const char *ns;
	const struct pstate_ops *ops;
	void *arg;
	double retain;
	uint64_t gen, seq;            /* complete snapshot; next journal row */
	uint64_t jfirst;              /* oldest journal row still kept */
	unsigned gchunks;             /* chunks of snapshot gen */
	int snapping;                 /* a snapshot is being written */
	uint64_t sgen, sjstart;
	unsigned schunk;
	size_t jrows, jbytes, sbytes_last, sbytes_cur;
	double last_step;             /* time of the last snapshot chunk */
	struct strbuf buf, key, val;
	struct { char k[40]; } *dels; /* old rows to delete, a few per flush */
	size_t ndels, ndelcap;
	/* tuning, set by init (tests make them small) */
	size_t chunk;                 /* entries per snapshot chunk */
	size_t jrows_max;             /* a snapshot after this many journal rows */
	size_t jbytes_min;            /* ... or this many bytes + twice the last snapshot */
};

void policy_pstate_init(struct pstate *ps, const char *ns, const struct pstate_ops *ops,
			void *arg, double retain);
void policy_pstate_free(struct pstate *ps);
int policy_pstate_load(struct pstate *ps, const struct pstate_io *io, double now);
/* Puts into io->out one journal row with the queued entries (at most
 * io->budget of them; the rest stay queued), one more snapshot chunk and a
 * few deletions of retired rows. Memory only: the rows reach the disk when
 * the batch is committed. */
int policy_pstate_flush(struct pstate *ps, const struct pstate_io *io, double now,
			struct pqueue *q);
/* Appends v in decimal (no printf: snapshots write millions of numbers). */
void policy_add_u64(struct strbuf *b, uint64_t v);
/* v in decimal into buf (NUL-terminated, at least 21 bytes); returns its length. */
size_t policy_u64_str(char *buf, uint64_t v);
/* Starts the snapshot walk of a table again. */
void policy_ptable_walk_reset(struct ptable *t, int which);

/* ---- per-check counters ---- */
enum { CHK_BANNED, CHK_SPOOF, CHK_GREYLIST, CHK_RATELIMIT, CHK_N };
struct pcount {
	unsigned long requests, passes, defers, rejects;
};

/* Verdict of one check. */
enum pverdict { PV_DUNNO, PV_PREPEND, PV_DEFER, PV_REJECT };

/* ---- greylist (greylist.c) ---- */
struct greylist;
struct greylist *policy_gl_new(const struct kvlist *conf, char *err, size_t errlen);
void policy_gl_free(struct greylist *g);
/* The request's verdict; action text appended to out. key (the triplet or
 * whitelist reason) for events. */
enum pverdict policy_gl_eval(struct greylist *g, const struct policy_req *r, double now,
			    struct strbuf *out, struct strbuf *key, const struct policy_host *h);
int policy_gl_load(struct greylist *g, const struct pstate_io *io, double now);
int policy_gl_flush(struct greylist *g, const struct pstate_io *io, double now);
size_t policy_gl_pending(const struct greylist *g);
void policy_gl_nostore(struct greylist *g);   /* memory only: queue nothing */
size_t policy_gl_expire(struct greylist *g, double now, size_t budget);
void policy_gl_list(struct greylist *g, int json, double now, struct strbuf *out);
int policy_gl_del(struct greylist *g, const char *what);
void policy_gl_import(struct greylist *g, const char *triplet, double first, double last,
		     unsigned count);
void policy_gl_status(struct greylist *g, int json, struct strbuf *out);
/* Normalises a sender as postgrey does (BATV, +ext, VERP digits); exposed for tests. */
void policy_gl_norm_sender(const char *sender, struct strbuf *out);

/* ---- rate limits (ratelimit.c) ---- */
struct ratelimit;
struct ratelimit *policy_rl_new(const struct kvlist *conf, char *err, size_t errlen);
void policy_rl_free(struct ratelimit *rl);
enum pverdict policy_rl_eval(struct ratelimit *rl, const struct policy_req *r, double now,
			     struct strbuf *out, struct strbuf *key, const struct policy_host *h);
/* "NAME RULE" of the last refusal, for the event line. */
const char *policy_rl_why(const struct ratelimit *rl);
int policy_rl_load(struct ratelimit *rl, const struct pstate_io *io, double now);
int policy_rl_flush(struct ratelimit *rl, const struct pstate_io *io, double now);
size_t policy_rl_pending(const struct ratelimit *rl);
void policy_rl_nostore(struct ratelimit *rl);
size_t policy_rl_expire(struct ratelimit *rl, double now, size_t budget);
void policy_rl_list(struct ratelimit *rl, int json, double now, struct strbuf *out);
int policy_rl_reset(struct ratelimit *rl, const char *key);
void policy_rl_import(struct ratelimit *rl, const char *limit, const char *key, double t,
		      double amount);
void policy_rl_status(struct ratelimit *rl, int json, double now, struct strbuf *out);

/* ---- spoofed local senders (spoof.c) ---- */
struct spoof;
struct spoof *policy_sp_new(const struct kvlist *conf, char *err, size_t errlen);
void policy_sp_free(struct spoof *s);
size_t policy_sp_domains(const struct spoof *s);   /* served domains known */
enum pverdict policy_sp_eval(struct spoof *s, const struct policy_req *r, struct strbuf *out,
			 struct strbuf *key);

/* ---- shared helpers (policy.c) ---- */
/* Reads a duration option ("300", "5m", "35d"); 0 or -1 with err filled. */
int policy_opt_time(const struct kvlist *l, const char *section, const char *name,
		    double dflt, double *out, char *err, size_t errlen);
int policy_opt_uint(const struct kvlist *l, const char *section, const char *name,
		    unsigned long dflt, unsigned long max, unsigned long *out, char *err,
		    size_t errlen);
/* Lower-cases into out (reset first). */
void policy_lower(struct strbuf *out, const char *s, size_t n);

#endif
