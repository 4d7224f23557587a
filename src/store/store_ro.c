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
#include <unistd.h>

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

/* Opens path read-only. A write-ahead-log database nobody has open (no -wal
 * file: the owner removes it when it closes) is opened immutable: a plain
 * read-only connection would create -wal and -shm files next to it that it
 * cannot remove again, owned by whoever runs the reader. While the owner
 * runs, its -wal and -shm exist and are shared as usual. */
static int ro_open(const char *path, sqlite3 **db)
{
	size_t n = strlen(path);
	char *wal = xmalloc(n + 5);
	memcpy(wal, path, n);
	memcpy(wal + n, "-wal", 5);
	int have_wal = access(wal, F_OK) == 0 || errno != ENOENT;
	free(wal);
	if (have_wal)
		return sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	/* "file:" URI: every byte but unreserved ones and '/' percent-encoded */
	static const char hex[] = "0123456789ABCDEF";
	char *uri = xmalloc(5 + 3 * n + sizeof "?immutable=1");
	char *o = uri;
	memcpy(o, "file:", 5);
	o += 5;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)path[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	memcpy(o, "?immutable=1", sizeof "?immutable=1");
	int rc = sqlite3_open_v2(uri, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX |
				 SQLITE_OPEN_URI, NULL);
	free(uri);
	return rc;
}

/* The start of every walk: path must exist (a missing file is not created),
 * then a read-only connection that waits busy_ms for a writer. 0 with *db,
 * or a negative errno with msg. */
static long ro_begin(const char *path, int busy_ms, sqlite3 **db, char *msg, size_t msglen)
{
	struct stat sb;
	if (stat(path, &sb) < 0) {
		int e = errno;
		snprintf(msg, msglen, "%s: %s", path, e == ENOENT ? "no such file" : "cannot stat");
		return -e;
	}
	*db = NULL;
	int rc = ro_open(path, db);
	if (rc != SQLITE_OK) {
		long r = fail(*db, rc, "opening read-only", path, msg, msglen);
		*db = NULL;
		return r;
	}
	sqlite3_busy_timeout(*db, busy_ms);
	return 0;
}

long store_ro_live_bans(const char *path, double now, int busy_ms, store_ro_ban_cb cb,
			void *arg, char *msg, size_t msglen)
{
	sqlite3 *db = NULL;
	long r = ro_begin(path, busy_ms, &db, msg, msglen);
	if (r < 0)
		return r;
	int rc;
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
	sqlite3 *db = NULL;
	long r = ro_begin(path, busy_ms, &db, msg, msglen);
	if (r < 0)
		return r;
	int rc;
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

long store_ro_kv_count(const char *path, const char *const *ns, size_t nns, double now,
		       int busy_ms, char *msg, size_t msglen)
{
	sqlite3 *db = NULL;
	long r = ro_begin(path, busy_ms, &db, msg, msglen);
	if (r < 0)
		return r;
	int rc;
	sqlite3_stmt *st = NULL;
	rc = sqlite3_prepare_v2(db,
				"SELECT count(*) FROM kv WHERE ns = ?1"
				" AND (expires IS NULL OR expires > ?2)",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return fail(db, rc, "counting rows", path, msg, msglen);
	long n = 0;
	for (size_t i = 0; i < nns; i++) {
		sqlite3_bind_text(st, 1, ns[i], -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 2, now);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			sqlite3_finalize(st);
			return fail(db, rc, "counting rows", path, msg, msglen);
		}
		n += (long)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (msglen)
		*msg = '\0';
	return n;
}
