/*
 * store - mxjail's persistent state: bans, ban history, evidence, log
 * positions, journal cursors and a namespaced key/value table.
 *
 * INTERFACE: one struct store per database file, used from one thread. The
 * backend is embedded SQLite in WAL mode (store_sqlite.c). Addresses are kept
 * as canonical text (what addr_format()/addr_normalise() produce, e.g.
 * "192.0.2.1", "2001:db8::/64"), so the store does not depend on net/addr and
 * non-address failure ids can be stored too; callers normalise before calling,
 * the store compares bytes.
 *
 * Durability: store_ban_add()/store_bans_add()/store_ban_prolong()/
 * store_unban() run their own transaction and return after COMMIT, so a ban
 * is on disk before it is reported. Positions, cursors and kv writes are
 * batched: the first one opens a transaction, store_flush() (called once per
 * event-loop turn) commits it; a ban commit also commits the pending batch.
 * With synchronous=NORMAL a commit survives a crash of the process (kill -9);
 * a power loss may lose the last commits (the kernel's sets are lost too).
 *
 * Opening never fails because of the store's own state: a file that is not
 * SQLite, fails the integrity check, has a schema from a newer mxjail, belongs
 * to another program, is a directory or cannot be opened is renamed to
 * "<path>.corrupt-<UTC timestamp>" (with its -wal file) and a fresh database
 * is created; store_open() then returns 1 and explains in msg. It fails
 * (negative errno) only when no database can be created at all, e.g. an
 * unwritable directory; the caller may then fall back to ":memory:".
 *
 * DIAGNOSTICS: functions return 0 (or a count) on success, a negative errno
 * value on failure (-ENOENT: not found, -EBUSY: locked, -ENOSPC, -EIO, ...),
 * and leave a message in store_error(). Nothing is printed.
 *
 * Times are seconds since the epoch (double, like the jails). A bantime < 0
 * means forever; an end time < 0 means "never ends".
 */
#ifndef MXJAIL_STORE_STORE_H
#define MXJAIL_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 1
#define STORE_LINE_MAX 4096    /* evidence lines are cut to this many bytes */

struct store;
struct store_arena;

struct store_opts {
	unsigned maxmatches;   /* dbmaxmatches: evidence lines kept per ban (0 = none) */
	int busy_timeout_ms;   /* wait this long for a lock held by another process */
	int skip_check;        /* 1: no PRAGMA quick_check at open */
};
/* maxmatches 10 (fail2ban's dbmaxmatches), busy timeout 2000 ms, check on. */
#define STORE_OPTS_DEFAULT {10, 2000, 0}

/* One ban. As input (store_ban_add) id, jail, timeofban, bantime, bancount,
 * failures and lines are read; end, remaining and live are ignored. As output
 * every string points into the owning list and stays valid until
 * store_banlist_free(). */
struct store_ban {
	const char *id;        /* canonical address, prefix or failure id */
	const char *jail;
	double timeofban;
	double bantime;        /* seconds; < 0 = forever */
	double end;            /* timeofban + bantime, or -1 for forever */
	double remaining;      /* end - now at query time, or -1 for forever */
	unsigned bancount;     /* 1 for a first ban, n for the n-th (increments) */
	unsigned failures;     /* failures counted when banned */
	int live;              /* store_why(): 1 = current ban, 0 = history only */
	const char *const *lines; /* evidence, oldest first */
	size_t nlines;
};

struct store_banlist {
	struct store_ban *v;
	size_t n, cap;
	struct store_arena *arena;   /* owns the strings; private */
};
#define STORE_BANLIST_INIT {NULL, 0, 0, NULL}

/* Previous bans of an id (history, kept until dbpurgeage). */
struct store_hist {
	unsigned count;        /* number of bans */
	double last_ban;       /* timeofban of the newest, 0 when count == 0 */
	double last_end;       /* latest end, -1 when one of them is forever */
};

/* Opens or creates the database at path (":memory:" for a throw-away store).
 * Returns 0, 1 when the old file was moved aside and a fresh one created (msg
 * says why and where it went), or a negative errno with msg filled. */
int store_open(const char *path, const struct store_opts *opts, struct store **out,
	       char *msg, size_t msglen);
/* Commits pending batched writes and closes. Returns NULL. */
struct store *store_close(struct store *s);
/* Last error message ("" when none). Valid until the next call. */
const char *store_error(const struct store *s);
void store_set_maxmatches(struct store *s, unsigned maxmatches);

/* --- bans (each call commits before returning) --- */

/* Records a ban: a history row, the live ban (replacing one of the same jail
 * and id) and its last `maxmatches` evidence lines. */
int store_ban_add(struct store *s, const struct store_ban *b);
/* Same for n bans in one transaction (a start-up or `mxjail ban` burst). */
int store_bans_add(struct store *s, const struct store_ban *b, size_t n);
/* Moves the end of a live ban (prolongation, bantime.increment); new_end < 0
 * = forever. -ENOENT when there is no such live ban. */
int store_ban_prolong(struct store *s, const char *jail, const char *id, double new_end);
/* Removes live bans of id (in jail, or every jail when jail is NULL); history
 * stays, its end is clipped to now. Returns the number removed. */
int store_unban(struct store *s, const char *jail, const char *id, double now);
/* Removes every live ban (of jail, or all when NULL). Returns the number removed. */
int store_unban_all(struct store *s, const char *jail, double now);

/* Start-up: deletes expired live bans and returns every remaining one with
 * its remaining time, in one query. Evidence is not loaded. */
int store_load_bans(struct store *s, double now, struct store_banlist *out);
/* `banned`: live bans (of jail, or all when NULL), ordered by jail and time. */
int store_banned(struct store *s, const char *jail, double now, struct store_banlist *out);
/* `why ADDR`: live bans of id (live = 1) followed by up to max_history
 * earlier bans (live = 0, newest first), each with its evidence lines. Ids
 * are compared as text: for an address inside a banned prefix (banprefix6)
 * the caller also asks for the prefix's text. */
int store_why(struct store *s, const char *id, double now, size_t max_history,
	      struct store_banlist *out);
void store_banlist_free(struct store_banlist *l);

/* History for bantime.increment: bans of id in jail (every jail when jail is
 * NULL: bantime.overalljails) with timeofban > since (0 = all kept). The
 * caller passes count + 1 as the next ban's bancount. */
int store_history(struct store *s, const char *id, const char *jail, double since,
		  struct store_hist *out);

/* Walks the history rows with timeofban >= since, oldest first: jail, id,
 * time of the ban. A non-zero return from cb stops the walk and is returned.
 * The status page fills its 24 h timeline from this at start. */
typedef int (*store_history_cb)(void *arg, const char *jail, const char *id, double timeofban);
int store_history_since(struct store *s, double since, store_history_cb cb, void *arg);

/* Deletes history and evidence of bans that ended before now - purgeage
 * (never those of live bans) and expired kv rows. Commits. Returns the number
 * of history rows deleted. */
int store_purge(struct store *s, double now, double purgeage);

/* --- batched writes: committed by store_flush() --- */

/* Opens the batch transaction explicitly (optional: writes open it). */
int store_begin(struct store *s);
/* Commits the batch if one is open. Call once per event-loop turn. */
int store_flush(struct store *s);
/* 1 while a batch is open. */
int store_dirty(const struct store *s);

/* Log file position: inode, byte offset and a fingerprint of the first line
 * (any bytes, e.g. a hash; at most 256 are kept). */
struct store_pos {
	uint64_t inode;
	uint64_t offset;
	unsigned char fp[256];
	size_t fplen;
};
int store_pos_set(struct store *s, const char *path, const struct store_pos *p);
/* -ENOENT when the path has no saved position. */
int store_pos_get(struct store *s, const char *path, struct store_pos *p);
int store_pos_del(struct store *s, const char *path);

/* Journal cursor per source name. store_cursor_get copies at most len - 1
 * bytes; -ENOENT when none, -ERANGE when the buffer is too small. */
int store_cursor_set(struct store *s, const char *source, const char *cursor);
int store_cursor_get(struct store *s, const char *source, char *buf, size_t len);

/* Key/value rows for other modules, namespaced by module ("greylist",
 * "ratelimit"). expires <= 0: never. Reads skip expired rows; store_purge()
 * deletes them. */
int store_kv_set(struct store *s, const char *ns, const char *key, const void *val,
		 size_t len, double expires);
/* Returns the value (malloc'ed, NUL-terminated, caller frees) in *val. */
int store_kv_get(struct store *s, const char *ns, const char *key, double now, void **val,
		 size_t *len, double *expires);
int store_kv_del(struct store *s, const char *ns, const char *key);
/* Calls cb for each live row of ns in key order; a non-zero return from cb
 * stops the walk and is returned. cb may call other store functions; rows it
 * writes in ns may or may not be visited. */
typedef int (*store_kv_cb)(const char *key, const void *val, size_t len, double expires,
			   void *arg);
int store_kv_foreach(struct store *s, const char *ns, double now, store_kv_cb cb, void *arg);

#endif
