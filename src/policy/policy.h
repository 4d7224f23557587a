/*
 * policy - the Postfix SMTPD access policy engine: request parsing and the
 * checks behind `check_policy_service` (banned clients, spoofed local senders,
 * greylisting with postgrey's semantics, sliding-window rate limits).
 *
 * INTERFACE: pure logic and in-memory state. No sockets, no event loop, no
 * printing; single-threaded; the caller passes `now` (epoch seconds). The
 * socket service (policysrv.c), the daemon and the cluster code call it.
 * policy_eval() never does I/O: state changes are queued; policy_flush()
 * serialises them and a writer thread of the engine commits them to the
 * engine's own state file (policy_open), or, for tools and tests,
 * policy_flush() commits them to a store itself (policy_new).
 *
 * Ownership: a struct policy_req owns its bytes (buf); the name/value
 * pointers stay valid until the next policy_parser_feed() into the same req
 * or policy_req_free(). Every *_list/_status call appends to the caller's
 * strbuf.
 */
#ifndef MXJAIL_POLICY_POLICY_H
#define MXJAIL_POLICY_POLICY_H

#include <stddef.h>
#include <stdint.h>

struct kvlist;           /* core/kvlist.h */
struct store;            /* store/store.h */
struct addr;             /* net/addr.h */
struct strbuf;           /* core/strbuf.h */

/* ---- request parsing (policyreq.c) ---- */

/* A Postfix policy request: the attributes as received (values unmodified,
 * not truncated). Duplicate names: the last one wins for lookups. */
struct policy_attr { const char *name, *value; };
#define POLICY_REQ_IDX 512 /* > 2 x POLICY_REQ_MAX_ATTRS: probes stay short */
struct policy_req {
	struct policy_attr *v;
	size_t n, cap;
	char *buf;                     /* owns the bytes */
	size_t buflen, bufcap;
	/* lookup index: slot -> attribute number + 1 (0 = empty), open
	 * addressing over a hash of the name; the checks look up about a dozen
	 * names per request among the ~25 Postfix sends */
	uint16_t idx[POLICY_REQ_IDX];
};
#define POLICY_REQ_MAX_BYTES (256 * 1024)   /* hard cap on one request */
#define POLICY_REQ_MAX_ATTRS 256           /* hard cap on attribute count */

/* Incremental framing: feed bytes as they arrive on a connection.
 * Returns: >0 = a complete request is in *req and that many bytes of `data`
 *               were consumed (pipelined bytes after it are NOT consumed);
 *           0 = need more bytes (all of `len` consumed, kept in the parser);
 *          <0 = malformed (line without '=', empty name, NUL byte, over a cap):
 *               err says what; the caller logs it with the peer and closes
 *               the connection without replying.
 * CRLF and LF are both accepted. After a complete request the parser is
 * ready for the next one; after an error it must be freed (or reset). */
struct policy_parser;
struct policy_parser *policy_parser_new(void);
void policy_parser_free(struct policy_parser *pp);
/* Forgets any partial request (e.g. to reuse a parser for a new connection). */
void policy_parser_reset(struct policy_parser *pp);
long policy_parser_feed(struct policy_parser *pp, const char *data, size_t len,
			struct policy_req *req, char *err, size_t errlen);
void policy_req_init(struct policy_req *r);
void policy_req_free(struct policy_req *r);
const char *policy_req_get(const struct policy_req *r, const char *name); /* NULL if absent */

/* ---- the engine ---- */
struct policy;

/* What the engine needs from its host (daemon or `mxjail policy`). */
struct policy_host {
	void *arg;
	/* 1 if the address is banned by any jail (daemon's ban table) at time
	 * now; NULL = never */
	int (*is_banned)(void *arg, const struct addr *a, double now);
	/* Every reject/defer verdict (not DUNNO/PREPEND) is reported here, so a
	 * jail can count it (`backend = policy`, `policyevents = spoof ...`).
	 * check = "banned"|"greylist"|"ratelimit"|"spoof"; id = client address text;
	 * key = the rate-limit key / sender / triplet; line = one log-style text line. */
	void (*on_event)(void *arg, const char *check, const char *id, const char *key,
			 const char *line, double now);
	/* Optional (cluster): called on each local state change so it can be shared. */
	void (*on_greylist_update)(void *arg, const char *triplet, double first, double last,
				   unsigned count);
	void (*on_ratelimit_add)(void *arg, const char *limit, const char *key, double t,
				 double amount);
	/* Optional: 0 when on_event would do nothing with this check's events
	 * (not logged at the current level, no jail counts them), so the
	 * event's text is not even built. NULL = always wanted. */
	int (*want_event)(void *arg, const char *check);
};

/* Builds the engine from mxjail.conf sections (kvlists of [policy],
 * [greylist], [ratelimit], [spoof]; any may be NULL = defaults); reads
 * whitelist files; loads persisted state from the store (may be NULL: memory
 * only). Returns NULL with err filled ("mxjail.conf [ratelimit] sasl:
 * expected 'N UNIT / WINDOW'"). host may be NULL. */
struct policy *policy_new(const struct kvlist *policy, const struct kvlist *greylist,
			  const struct kvlist *ratelimit, const struct kvlist *spoof,
			  struct store *st, const struct policy_host *host, double now,
			  char *err, size_t errlen);
/* Like policy_new, but the state lives in its own SQLite file `statefile`
 * (e.g. STATEDIR/policy-state.sqlite3; created, WAL), read at start and
 * written by a thread the engine owns, never on the caller's thread: the
 * caller's thread only serialises queued changes (see policy_flush). Rows
 * an earlier version kept in the daemon's store `legacy` (may be NULL) are
 * moved into the file once. statefile NULL = memory only. On success err
 * holds a warning ("... was damaged; moved to ...") or is empty. */
struct policy *policy_open(const struct kvlist *policy, const struct kvlist *greylist,
			   const struct kvlist *ratelimit, const struct kvlist *spoof,
			   const char *statefile, struct store *legacy,
			   const struct policy_host *host, double now, char *err, size_t errlen);
/* Clean shutdown: with a state file, every queued change is handed to the
 * writer and committed (waiting at most a few seconds for a failing disk). */
void policy_free(struct policy *p);

/* One request -> the reply action text, e.g. "DUNNO", "DEFER_IF_PERMIT 4.2.0
 * Greylisted, see ..., 297 seconds left", "554 5.7.1 ...", "PREPEND X-Greylist: ...".
 * Never blocks, never touches disk (state changes are queued for policy_flush).
 * Writes the action (without "action=") into out (appended; reset it first). */
void policy_eval(struct policy *p, const struct policy_req *r, double now, struct strbuf *out);

/* Write-behind (call at least once a second from a timer, and at shutdown).
 * policy_open engines: serialises the queued changes (at most 2048 keys per
 * table per call) into one batch for the writer thread and returns at once,
 * never waiting for the disk; when the writer is behind (3 batches queued)
 * it does nothing and the changes stay queued, coalesced per key (past
 * 500,000 of them the queue is dropped and a fresh snapshot carries the
 * state instead: memory stays bounded on a failing disk). Returns 0,
 * or the negative errno of the writer's last failed commit (it retries;
 * policy_state_error says why). kill -9 loses what was not yet committed:
 * about the last flush interval. policy_new engines with a store: commits
 * the changes to the store in ONE transaction on this thread; 0 or a
 * negative errno from the store (those changes are then lost). */
int policy_flush(struct policy *p, double now);
/* Number of state changes queued for policy_flush() (not yet serialised). */
size_t policy_pending(const struct policy *p);
/* 0 when state is being saved fine, else a negative errno; buf gets the
 * reason (store or state file error text, "" when none). */
int policy_state_error(struct policy *p, char *buf, size_t len);
/* Incremental expiry: examines at most `budget` entries; call from a timer. */
void policy_expire_step(struct policy *p, double now, size_t budget);

/* Control / CLI, each appends human text or JSON to out; return 0 or -errno. */
int policy_status(struct policy *p, int json, struct strbuf *out);           /* per check counters + top keys */
int policy_greylist_list(struct policy *p, int json, double now, struct strbuf *out);
int policy_greylist_del(struct policy *p, const char *what, double now);    /* triplet or client/sender match; returns count */
int policy_ratelimit_list(struct policy *p, int json, double now, struct strbuf *out);
int policy_ratelimit_reset(struct policy *p, const char *key);             /* returns count */

/* Cluster import (remote nodes' updates, idempotent). */
void policy_greylist_import(struct policy *p, const char *triplet, double first, double last,
			    unsigned count);
void policy_ratelimit_import(struct policy *p, const char *limit, const char *key, double t,
			     double amount);

/* Counters for metrics, without formatting text: requests seen, and per
 * check in the configured order its name ("banned", "spoof", "greylist",
 * "ratelimit", static strings) and verdict counts. */
#define POLICY_COUNTERS_MAX 8
struct policy_check_counters {
	const char *name;
	unsigned long requests, passes, defers, rejects;
};
struct policy_counters {
	unsigned long requests;
	size_t n;
	struct policy_check_counters check[POLICY_COUNTERS_MAX];
};
void policy_counters(const struct policy *p, struct policy_counters *out);

#endif
