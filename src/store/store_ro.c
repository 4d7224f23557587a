/*
 * store_ro - read-only look at another process's state database (see
 * store_ro.h). Kept apart from store_sqlite.c on purpose: store_open()
 * creates, checks, migrates and moves aside damaged files, none of which a
 * reader may do to a database it does not own.
 */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/xmalloc.h"
#include "store/store.h"
#include "store/store_ro.h"

static long fail(sqlite3 *db, int rc, const char *what, const char *path, char *msg,
		 size_t msglen)
{
	snprintf(msg, msglen, "%s: %s: %s", path, what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	if (db)
		sqlite3_close(db);
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CANTOPEN:
		return -EACCES;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

long store_ro_live_bans(const char *path, double now, int busy_ms, store_ro_ban_cb cb,
			void *arg, char *msg, size_t msglen)
{
	struct stat sb;
	if (stat(path, &sb) < 0) {
		int e = errno;
		snprintf(msg, msglen, "%s: %s", path, e == ENOENT ? "no such file" : "cannot stat");
		return -e;
	}
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return fail(db, rc, "opening read-only", path, msg, msglen);
	sqlite3_busy_timeout(db, busy_ms);
	sqlite3_stmt *st = NULL;
	rc = sqlite3_prepare_v2(db,
				"SELECT jail, id, endtime FROM bans"
				" WHERE endtime IS NULL OR endtime > ?1",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return fail(db, rc, "reading bans", path, msg, msglen);
	sqlite3_bind_double(st, 1, now);
	long n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *jail = (const char *)sqlite3_column_text(st, 0);
		const char *id = (const char *)sqlite3_column_text(st, 1);
		double end = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1
			     : sqlite3_column_double(st, 2);
		if (!jail || !id)
			continue;
		cb(arg, jail, id, end);
		n++;
	}
	if (rc != SQLITE_DONE) {
		sqlite3_finalize(st);
		return fail(db, rc, "reading bans", path, msg, msglen);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (msglen)
		*msg = '\0';
	return n;
}

/* Evidence lines of one ban, copied out of the statement before it steps on. */
struct lines {
	char **v;
	size_t n, cap;
};

static void lines_clear(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

/* The evidence statement walks (hid, seq) in key order, as the history walks
 * hid: both advance together, so each ban costs no extra query. ev_rc is the
 * evidence statement's last step result (SQLITE_ROW: a row is pending). */
static int take_lines(sqlite3_stmt *ev, int *ev_rc, sqlite3_int64 hid, size_t maxlines,
		      struct lines *l)
{
	lines_clear(l);
	while (*ev_rc == SQLITE_ROW) {
		sqlite3_int64 eh = sqlite3_column_int64(ev, 0);
		if (eh > hid)
			break;
		if (eh == hid && l->n < maxlines) {
			const char *t = (const char *)sqlite3_column_text(ev, 1);
			size_t len = t ? strnlen(t, STORE_LINE_MAX) : 0;
			l->v = xgrow(l->v, &l->cap, l->n, sizeof *l->v);
			l->v[l->n++] = xstrndup(t ? t : "", len);
		}
		*ev_rc = sqlite3_step(ev);
	}
	return *ev_rc == SQLITE_ROW || *ev_rc == SQLITE_DONE ? 0 : -1;
}

long store_ro_history(const char *path, double now, double since, size_t maxlines,
		      int busy_ms, store_ro_hist_cb cb, void *arg, char *msg, size_t msglen)
{
	struct stat sb;
	if (stat(path, &sb) < 0) {
		int e = errno;
		snprintf(msg, msglen, "%s: %s", path, e == ENOENT ? "no such file" : "cannot stat");
		return -e;
	}
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return fail(db, rc, "opening read-only", path, msg, msglen);
	sqlite3_busy_timeout(db, busy_ms);
	/* One read transaction: both walks see the same snapshot even while the
	 * owner keeps writing. */
	rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return fail(db, rc, "reading history", path, msg, msglen);
	sqlite3_stmt *hs = NULL, *ev = NULL;
	/* the join goes through the bans' primary key (id, jail), not a scan */
	rc = sqlite3_prepare_v2(db,
				"SELECT h.hid, h.jail, h.id, h.timeofban, h.bantime, h.endtime,"
				" h.bancount, h.failures,"
				" b.hid IS NOT NULL AND (b.endtime IS NULL OR b.endtime > ?1)"
				" FROM history h LEFT JOIN bans b"
				" ON b.id = h.id AND b.jail = h.jail AND b.hid = h.hid"
				" WHERE h.timeofban >= ?2 ORDER BY h.hid",
				-1, &hs, NULL);
	if (rc == SQLITE_OK && maxlines > 0)
		rc = sqlite3_prepare_v2(db, "SELECT hid, line FROM evidence ORDER BY hid, seq", -1,
					&ev, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(hs);
		return fail(db, rc, "reading history", path, msg, msglen);
	}
	sqlite3_bind_double(hs, 1, now);
	sqlite3_bind_double(hs, 2, since);
	int ev_rc = ev ? sqlite3_step(ev) : SQLITE_DONE;
	struct lines l = {NULL, 0, 0};
	long n = 0;
	int stop = 0;
	while (!stop && (rc = sqlite3_step(hs)) == SQLITE_ROW) {
		struct store_ro_ban b;
		b.jail = (const char *)sqlite3_column_text(hs, 1);
		b.id = (const char *)sqlite3_column_text(hs, 2);
		if (!b.jail || !b.id)
			continue;
		if (ev && take_lines(ev, &ev_rc, sqlite3_column_int64(hs, 0), maxlines, &l) < 0) {
			rc = ev_rc;
			break;
		}
		b.timeofban = sqlite3_column_double(hs, 3);
		b.bantime = sqlite3_column_double(hs, 4);
		b.end = sqlite3_column_type(hs, 5) == SQLITE_NULL ? -1 : sqlite3_column_double(hs, 5);
		sqlite3_int64 bc = sqlite3_column_int64(hs, 6), fl = sqlite3_column_int64(hs, 7);
		b.bancount = bc < 0 ? 0 : bc > UINT_MAX ? UINT_MAX : (unsigned)bc;
		b.failures = fl < 0 ? 0 : fl > UINT_MAX ? UINT_MAX : (unsigned)fl;
		b.live = sqlite3_column_int(hs, 8) != 0;
		b.lines = (const char *const *)l.v;
		b.nlines = l.n;
		stop = cb(arg, &b) != 0;
		n++;
	}
	lines_clear(&l);
	free(l.v);
	if (!stop && rc != SQLITE_DONE) {
		sqlite3_finalize(hs);
		sqlite3_finalize(ev);
		return fail(db, rc, "reading history", path, msg, msglen);
	}
	sqlite3_finalize(hs);
	sqlite3_finalize(ev);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	if (msglen)
		*msg = '\0';
	return n;
}
