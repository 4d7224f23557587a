/*
 * store_ro - reads the live bans out of another process's state database
 * (the daemon's STATEDIR/mxjail.sqlite3) without ever writing to it.
 *
 * INTERFACE: one call opens the file read-only (never created, never moved
 * aside, no schema upgrade: that is the owner's business), reads the bans
 * table, closes. Safe on any thread (it owns its connection). The standalone
 * policy service calls it from a refresh thread so that clients banned by
 * the daemon on the same host are refused too. A second call walks the
 * whole ban history with its evidence (`mxjail report`).
 */
#ifndef MXJAIL_STORE_STORE_RO_H
#define MXJAIL_STORE_STORE_RO_H

#include <stddef.h>

/* Called once per live ban: jail, canonical id ("192.0.2.1",
 * "2001:db8::/64", or a non-address failure id) and end (-1 = forever). */
typedef void (*store_ro_ban_cb)(void *arg, const char *jail, const char *id, double end);

/* Reads the bans of path that are live at now. busy_ms: how long to wait
 * for a lock the owner holds. Returns the number of bans passed to cb, or a
 * negative errno (-ENOENT: no such file) with msg filled. */
long store_ro_live_bans(const char *path, double now, int busy_ms, store_ro_ban_cb cb,
			void *arg, char *msg, size_t msglen);

/* One row of the ban history as store_ro_history() hands it over. Strings
 * and lines are valid during the callback only. */
struct store_ro_ban {
	const char *jail, *id;
	double timeofban;
	double bantime;            /* seconds; < 0 = forever */
	double end;                /* -1 = forever */
	unsigned bancount, failures;
	int live;                  /* 1: still a ban in force at now */
	const char *const *lines;  /* evidence, oldest first (at most maxlines) */
	size_t nlines;
};
/* A non-zero return stops the walk. */
typedef int (*store_ro_hist_cb)(void *arg, const struct store_ro_ban *b);

/* Walks every history row of path with timeofban >= since, in the order the
 * bans were made, each with up to maxlines evidence lines (0: none read) cut
 * to STORE_LINE_MAX bytes, and whether it is live at now. Opens read-only
 * like store_ro_live_bans(). Returns the number of rows passed to cb, or a
 * negative errno with msg filled. One pass over the history and one over
 * the evidence, whatever their size. */
long store_ro_history(const char *path, double now, double since, size_t maxlines,
		      int busy_ms, store_ro_hist_cb cb, void *arg, char *msg, size_t msglen);

/* Counts the key/value rows (store_kv_set) of the namespaces ns[0..nns-1]
 * that are live at now, read-only. Returns the count or a negative errno
 * with msg filled. The report asks it whether an older policy service left
 * rows in the daemon's store before it takes a copy to read them. */
long store_ro_kv_count(const char *path, const char *const *ns, size_t nns, double now,
		       int busy_ms, char *msg, size_t msglen);

#endif
