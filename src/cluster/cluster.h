/*
 * cluster - several mxjail nodes sharing bans, failure counts, greylist
 * triplets and rate-limit windows through one Redis server.
 *
 * DATA IN REDIS (all keys under `prefix`, default "mxjail"):
 *   PREFIX:bans     stream of ban/unban events (op B|U, jail, id, tob, end, node)
 *   PREFIX:banidx   hash "jail<TAB>id" -> "B end tob node" | "U time node":
 *                   the current answer per ban, with tombstones for unbans
 *   PREFIX:policy   stream of batches (op P) of greylist and rate-limit updates
 *   PREFIX:gl:TRIPLET, PREFIX:rl:LIMIT:KEY, PREFIX:fail:JAIL:ID
 *                   per-item records with TTLs (greylist, rate limits,
 *                   shared failure counts)
 * Every write is one EVAL script, so the index merge and the stream append
 * are atomic: a ban only wins over a tombstone that is older than the ban,
 * an unban only over a ban that is older than it, and the end time of a ban
 * only grows. A node back from a partition therefore cannot resurrect an
 * unbanned address, and replaying an event twice changes nothing.
 *
 * DELIVERY: a second connection blocks in XREAD on both streams from the
 * last applied ids (the host persists them). On every (re)connect a script
 * checks that the saved ban id is still in the stream; when it was trimmed
 * away (or Redis lost its data) the node reads the whole index instead,
 * applies it, and continues from the stream's newest id. The same snapshot
 * runs every `resync` seconds as anti-entropy: local bans missing from the
 * index (or with a later end) are published again.
 *
 * NEVER ON THE CRITICAL PATH: publishing only appends to a bounded queue
 * (`queue` items; past it new events are dropped and counted; bans are
 * repaired by the next resync). Items leave the queue when Redis answered,
 * so a reconnect replays everything not yet acknowledged. hiredis 0.14 has
 * no command timeouts: a watchdog closes a connection whose oldest request
 * waited longer than `timeout` (a SIGSTOPped Redis still accepts TCP), and
 * reconnects with exponential backoff (100 ms .. 5 s).
 *
 * INTERFACE: cluster_opts_parse() reads the [cluster] keys; cluster_new()
 * starts connecting at once and calls the host back from the loop only.
 * Publishing functions never block and never fail. Strings passed to the
 * host are valid during the call only.
 */
#ifndef MXJAIL_CLUSTER_CLUSTER_H
#define MXJAIL_CLUSTER_CLUSTER_H

#include <stddef.h>

struct kvlist;
struct loop;
struct strbuf;
struct cluster;

#define CLUSTER_SHARE_BANS 1u
#define CLUSTER_SHARE_GREYLIST 2u
#define CLUSTER_SHARE_RATELIMIT 4u
#define CLUSTER_SHARE_COUNTERS 8u

struct cluster_opts {
	char *url;             /* as written, for status (password hidden) */
	char *host;            /* TCP host, or NULL with unixpath */
	int port;
	char *unixpath;
	char *password;        /* NULL = no AUTH */
	int db;
	char *node;            /* this node's name */
	char *prefix;
	unsigned share;        /* CLUSTER_SHARE_* */
	double timeout;        /* seconds a reply may take */
	size_t queue_max;
	double resync;         /* anti-entropy period, seconds */
	long maxlen;           /* stream length kept (approximate) */
	double tombstone_ttl;  /* unbans are remembered this long */
	double greylist_ttl, ratelimit_ttl;
	char *fallback_jail;   /* remote bans of jails this node lacks; NULL = skip */
};

/* sec holds the [cluster] keys without the section name ("redis", "node"...).
 * Returns 0, 1 when there is no `redis` key (cluster off), -1 with err. */
int cluster_opts_parse(const struct kvlist *sec, struct cluster_opts *o, char *err,
		       size_t errlen);
void cluster_opts_free(struct cluster_opts *o);

/* A ban as shared: end < 0 = forever; tob = time of ban. */
struct cluster_ban {
	const char *jail, *id, *node;
	double tob, end;
};

struct cluster_host {
	void *arg;
	/* Remote ban (stream or snapshot); apply idempotently, keep the later end. */
	void (*ban)(void *arg, const struct cluster_ban *b);
	/* Tombstone: lift a local ban of jail/id whose time of ban is <= t. */
	void (*unban)(void *arg, const char *jail, const char *id, double t, const char *node);
	/* Anti-entropy: call emit(c, b) for every live local ban. */
	void (*local_bans)(void *arg, struct cluster *c,
			   void (*emit)(struct cluster *c, const struct cluster_ban *b));
	/* Shared failure count of jail/id after adding one failure. */
	void (*count)(void *arg, const char *jail, const char *id, unsigned n);
	void (*greylist)(void *arg, const char *triplet, double first, double last,
			 unsigned count);
	void (*ratelimit)(void *arg, const char *limit, const char *key, double t, double amount);
	/* Persisted stream positions ("bans", "policy"): 0 and buf filled, or -1. */
	int (*load_id)(void *arg, const char *name, char *buf, size_t len);
	void (*save_id)(void *arg, const char *name, const char *id);
	/* The link went up (up = 1) or down (why says what happened), for the log. */
	void (*link)(void *arg, int up, const char *why);
};

struct cluster *cluster_new(struct loop *l, const struct cluster_opts *o,
			    const struct cluster_host *h);
/* Closes the connections (unsent events are lost; the next start resyncs). */
struct cluster *cluster_free(struct cluster *c);

void cluster_publish_ban(struct cluster *c, const char *jail, const char *id, double tob,
			 double end);
void cluster_publish_unban(struct cluster *c, const char *jail, const char *id, double t);
/* Adds one failure at t to the shared count (window findtime); the host's
 * count() gets the total. cluster_forget() clears it (after a ban). The
 * caller decides which jails count together (share = counters is only the
 * default for jails without cluster_counters). */
void cluster_count_failure(struct cluster *c, const char *jail, const char *id, double t,
			   double findtime);
void cluster_forget(struct cluster *c, const char *jail, const char *id);
void cluster_publish_greylist(struct cluster *c, const char *triplet, double first,
			      double last, unsigned count);
void cluster_publish_ratelimit(struct cluster *c, const char *limit, const char *key,
			       double t, double amount);
unsigned cluster_share(const struct cluster *c);
const char *cluster_node(const struct cluster *c);
/* [cluster] fallback_jail, or NULL. */
const char *cluster_fallback_jail(const struct cluster *c);
/* Starts a snapshot + anti-entropy round now (also done on a timer). */
void cluster_resync(struct cluster *c);

/* One status line (json = 0) or a JSON object (json = 1). */
void cluster_status(const struct cluster *c, int json, struct strbuf *out);
/* 1 when both connections are up. */
int cluster_connected(const struct cluster *c);

/* Counters for metrics: commands acknowledged, events read from the streams
 * (own ones included), remote events applied, events dropped at the queue cap. */
struct cluster_stats {
	int connected;
	size_t queued;
	unsigned long acked, errors, received, applied, dropped, resyncs;
};
void cluster_get_stats(const struct cluster *c, struct cluster_stats *out);

#endif
