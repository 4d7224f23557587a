/*
 * store_ro - read-only look at another process's state database (see
 * store_ro.h). Kept apart from store_sqlite.c on purpose: store_open()
 * creates, checks, migrates and moves aside damaged files, none of which a
 * reader may do to a database it does not own.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/stat.h>

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
