/*
 * store_ro - reads the live bans out of another process's state database
 * (the daemon's STATEDIR/mxjail.sqlite3) without ever writing to it.
 *
 * INTERFACE: one call opens the file read-only (never created, never moved
 * aside, no schema upgrade: that is the owner's business), reads the bans
 * table, closes. Safe on any thread (it owns its connection). The standalone
 * policy service calls it from a refresh thread so that clients banned by
 * the daemon on the same host are refused too.
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

#endif
