/*
 * store_sqlite - the state store (store.h) on embedded SQLite in WAL mode.
 *
 * SCHEMA (PRAGMA user_version = STORE_SCHEMA_VERSION, application_id 'mxjl'):
 *   history(hid, id, jail, timeofban, bantime, endtime, bancount, failures)
 *       one row per ban ever made, kept until dbpurgeage; endtime NULL = forever
 *   bans(jail, id, hid, timeofban, bantime, endtime, bancount, failures)
 *       the live bans, one per (jail, id), pointing at their history row
 *   evidence(hid, seq, line)      the matched lines of a ban, capped
 *   positions(path, inode, offset, fingerprint, updated)
 *   cursors(source, cursor, updated)
 *   kv(ns, key, value, expires)   generic rows for other modules
 * Upgrades run migrations[] in order, one transaction each; a newer version
 * than we know means a newer mxjail wrote it, and it is moved aside.
 *
 * Indexes are few on purpose: every index is one more b-tree per ban written
 * and per expired ban deleted. Dropping the endtime and jail indexes took
 * 100,000 bans from ~1.5 s to ~0.4 s to write and expiring 90,000 at start
 * from ~0.9 s to ~0.05 s; the queries that lose them (purge, `banned JAIL`)
 * are rare and a full scan of 100,000 rows costs tens of milliseconds.
 *
 * Every statement is prepared once at open (SQLITE_PREPARE_PERSISTENT) and
 * reset after use. Result lists copy strings into a bump arena: loading
 * 100,000 bans costs a few allocations, not 200,000.
 *
 * SECURITY: the file is created 0600 (it holds log lines); everything stored
 * comes from logs and is bound as parameters, never spliced into SQL.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "store/store.h"

#define APPLICATION_ID 0x6d786a6c /* "mxjl" */

enum stmt_id {
	S_BEGIN, S_COMMIT, S_ROLLBACK, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
	S_HIST_INS, S_BAN_PUT, S_EVID_INS,
	S_PROLONG_HIST, S_PROLONG_BAN,
	S_UNBAN_HIST, S_UNBAN_DEL, S_UNBAN_ALL_HIST, S_UNBAN_ALL_DEL,
	S_EXPIRE, S_LOAD, S_BANNED, S_WHY_LIVE, S_WHY_HIST, S_EVID_GET,
	S_HIST_JAIL, S_HIST_ALL,
	S_PURGE_EVID, S_PURGE_HIST, S_PURGE_KV,
	S_POS_SET, S_POS_GET, S_POS_DEL, S_CUR_SET, S_CUR_GET,
	S_KV_SET, S_KV_GET, S_KV_DEL, S_KV_LIST,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT ban",
	[S_RELEASE] = "RELEASE ban",
	[S_ROLLBACK_TO] = "ROLLBACK TO ban",
	[S_HIST_INS] = "INSERT INTO history(id, jail, timeofban, bantime, endtime, bancount,"
		       " failures) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_BAN_PUT] = "INSERT OR REPLACE INTO bans(jail, id, hid, timeofban, bantime, endtime,"
		      " bancount, failures) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_EVID_INS] = "INSERT INTO evidence(hid, seq, line) VALUES (?1, ?2, ?3)",
	/* bantime follows the new end so that both stay consistent. */
	[S_PROLONG_HIST] = "UPDATE history SET endtime = ?3, bantime = CASE WHEN ?3 IS NULL"
			   " THEN -1 ELSE ?3 - timeofban END WHERE hid ="
			   " (SELECT hid FROM bans WHERE jail = ?1 AND id = ?2)",
	[S_PROLONG_BAN] = "UPDATE bans SET endtime = ?3, bantime = CASE WHEN ?3 IS NULL"
			  " THEN -1 ELSE ?3 - timeofban END WHERE jail = ?1 AND id = ?2",
	/* An explicit unban ends the ban now: history then tells the truth. */
	[S_UNBAN_HIST] = "UPDATE history SET endtime = ?3 WHERE hid IN (SELECT hid FROM bans"
			 " WHERE id = ?1 AND (?2 IS NULL OR jail = ?2))"
			 " AND (endtime IS NULL OR endtime > ?3)",
	[S_UNBAN_DEL] = "DELETE FROM bans WHERE id = ?1 AND (?2 IS NULL OR jail = ?2)",
	[S_UNBAN_ALL_HIST] = "UPDATE history SET endtime = ?2 WHERE hid IN (SELECT hid FROM bans"
			     " WHERE ?1 IS NULL OR jail = ?1) AND (endtime IS NULL OR endtime > ?2)",
	[S_UNBAN_ALL_DEL] = "DELETE FROM bans WHERE ?1 IS NULL OR jail = ?1",
	[S_EXPIRE] = "DELETE FROM bans WHERE endtime IS NOT NULL AND endtime <= ?1",
	[S_LOAD] = "SELECT jail, id, timeofban, bantime, endtime, bancount, failures FROM bans",
	[S_BANNED] = "SELECT jail, id, timeofban, bantime, endtime, bancount, failures FROM bans"
		     " WHERE (?1 IS NULL OR jail = ?1) AND (endtime IS NULL OR endtime > ?2)"
		     " ORDER BY jail, timeofban, id",
	[S_WHY_LIVE] = "SELECT jail, id, timeofban, bantime, endtime, bancount, failures, hid"
		       " FROM bans WHERE id = ?1 AND (endtime IS NULL OR endtime > ?2)"
		       " ORDER BY timeofban DESC",
	[S_WHY_HIST] = "SELECT jail, id, timeofban, bantime, endtime, bancount, failures, hid"
		       " FROM history WHERE id = ?1 AND hid NOT IN (SELECT hid FROM bans"
		       " WHERE id = ?1 AND (endtime IS NULL OR endtime > ?2))"
		       " ORDER BY timeofban DESC, hid DESC LIMIT ?3",
	[S_EVID_GET] = "SELECT line FROM evidence WHERE hid = ?1 ORDER BY seq",
	[S_HIST_JAIL] = "SELECT count(*), max(timeofban), max(endtime IS NULL), max(endtime)"
			" FROM history WHERE id = ?1 AND jail = ?2 AND timeofban > ?3",
	[S_HIST_ALL] = "SELECT count(*), max(timeofban), max(endtime IS NULL), max(endtime)"
		       " FROM history WHERE id = ?1 AND timeofban > ?3",
	[S_PURGE_EVID] = "DELETE FROM evidence WHERE hid IN (SELECT hid FROM history WHERE"
			 " endtime IS NOT NULL AND endtime < ?1 AND hid NOT IN"
			 " (SELECT hid FROM bans))",
	[S_PURGE_HIST] = "DELETE FROM history WHERE endtime IS NOT NULL AND endtime < ?1"
			 " AND hid NOT IN (SELECT hid FROM bans)",
	[S_PURGE_KV] = "DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?1",
	[S_POS_SET] = "INSERT OR REPLACE INTO positions(path, inode, offset, fingerprint, updated)"
		      " VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_POS_GET] = "SELECT inode, offset, fingerprint FROM positions WHERE path = ?1",
	[S_POS_DEL] = "DELETE FROM positions WHERE path = ?1",
	[S_CUR_SET] = "INSERT OR REPLACE INTO cursors(source, cursor, updated) VALUES (?1, ?2, ?3)",
	[S_CUR_GET] = "SELECT cursor FROM cursors WHERE source = ?1",
	[S_KV_SET] = "INSERT OR REPLACE INTO kv(ns, key, value, expires) VALUES (?1, ?2, ?3, ?4)",
	[S_KV_GET] = "SELECT value, expires FROM kv WHERE ns = ?1 AND key = ?2"
		     " AND (expires IS NULL OR expires > ?3)",
	[S_KV_DEL] = "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
	[S_KV_LIST] = "SELECT key, value, expires FROM kv WHERE ns = ?1"
		      " AND (expires IS NULL OR expires > ?2) ORDER BY key",
};

/* migrations[v] takes a database from user_version v to v + 1. */
static const char *const migrations[STORE_SCHEMA_VERSION] = {
	"CREATE TABLE history("
	" hid INTEGER PRIMARY KEY,"
	" id TEXT NOT NULL, jail TEXT NOT NULL,"
	" timeofban REAL NOT NULL, bantime REAL NOT NULL, endtime REAL,"
	" bancount INTEGER NOT NULL, failures INTEGER NOT NULL);"
	"CREATE INDEX history_id ON history(id, jail, timeofban);"
	"CREATE TABLE bans("
	" jail TEXT NOT NULL, id TEXT NOT NULL, hid INTEGER NOT NULL,"
	" timeofban REAL NOT NULL, bantime REAL NOT NULL, endtime REAL,"
	" bancount INTEGER NOT NULL, failures INTEGER NOT NULL,"
	" PRIMARY KEY(id, jail)) WITHOUT ROWID;"
	"CREATE TABLE evidence("
	" hid INTEGER NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL,"
	" PRIMARY KEY(hid, seq)) WITHOUT ROWID;"
	"CREATE TABLE positions("
	" path TEXT PRIMARY KEY, inode INTEGER NOT NULL, offset INTEGER NOT NULL,"
	" fingerprint BLOB, updated REAL NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE cursors("
	" source TEXT PRIMARY KEY, cursor TEXT NOT NULL, updated REAL NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE kv("
	" ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB, expires REAL,"
	" PRIMARY KEY(ns, key)) WITHOUT ROWID;"
	"CREATE INDEX kv_expires ON kv(expires) WHERE expires IS NOT NULL;",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	unsigned maxmatches;
	int txn;            /* a batch transaction is open */
	char err[512];
};

/* ---- small helpers ---- */

static void seterr(struct store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(struct store *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	/* quick_check reports over several lines; the caller logs one. */
	for (char *p = s->err; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/* SQLite result code -> negative errno. */
static int sqlerrno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_READONLY: case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_CANTOPEN: return -ENOENT;
	case SQLITE_TOOBIG: case SQLITE_RANGE: case SQLITE_MISUSE: return -EINVAL;
	case SQLITE_CONSTRAINT: return -EEXIST;
	default: return -EIO;
	}
}

/* Records the connection's error for a failed step; returns -errno. */
static int dberr(struct store *s, int rc, const char *what)
{
	seterr(s, "state database: %s: %s", what, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	return sqlerrno(rc);
}

static sqlite3_stmt *stmt(struct store *s, enum stmt_id id)
{
	sqlite3_stmt *st = s->st[id];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* End time column: NULL for forever. */
static void bind_end(sqlite3_stmt *st, int i, double end)
{
	if (end < 0)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_double(st, i, end);
}

/* Runs a statement that returns no rows. */
static int run(struct store *s, enum stmt_id id, const char *what)
{
	int rc = sqlite3_step(s->st[id]);
	sqlite3_reset(s->st[id]);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return dberr(s, rc, what);
	return 0;
}

static int exec_simple(struct store *s, enum stmt_id id, const char *what)
{
	stmt(s, id);
	return run(s, id, what);
}

/* ---- arena for result lists ---- */

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	char mem[];
};

struct store_arena {
	struct arena_block *head;
};

static void *arena_alloc(struct store_arena *a, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	struct arena_block *b = a->head;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > 65536 - sizeof *b ? n : 65536 - sizeof *b;
		b = xmalloc(sizeof *b + cap);
		b->cap = cap;
		b->used = 0;
		b->next = a->head;
		a->head = b;
	}
	void *p = b->mem + b->used;
	b->used += n;
	return p;
}

static const char *arena_col(struct store_arena *a, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	char *p = arena_alloc(a, n + 1);
	if (t)
		memcpy(p, t, n);
	p[n] = '\0';
	return p;
}

void store_banlist_free(struct store_banlist *l)
{
	if (l->arena) {
		struct arena_block *b = l->arena->head;
		while (b) {
			struct arena_block *next = b->next;
			free(b);
			b = next;
		}
		free(l->arena);
	}
	free(l->v);
	*l = (struct store_banlist)STORE_BANLIST_INIT;
}

static struct store_ban *list_push(struct store_banlist *l)
{
	if (!l->arena)
		l->arena = xcalloc(1, sizeof *l->arena);
	l->v = xgrow(l->v, &l->cap, l->n, sizeof *l->v);
	struct store_ban *b = &l->v[l->n++];
	memset(b, 0, sizeof *b);
	return b;
}

/* Columns jail, id, timeofban, bantime, endtime, bancount, failures. */
static struct store_ban *list_row(struct store_banlist *l, sqlite3_stmt *st, double now)
{
	struct store_ban *b = list_push(l);
	b->jail = arena_col(l->arena, st, 0);
	b->id = arena_col(l->arena, st, 1);
	b->timeofban = sqlite3_column_double(st, 2);
	b->bantime = sqlite3_column_double(st, 3);
	if (sqlite3_column_type(st, 4) == SQLITE_NULL) {
		b->end = -1;
		b->remaining = -1;
	} else {
		b->end = sqlite3_column_double(st, 4);
		b->remaining = b->end > now ? b->end - now : 0;
	}
	sqlite3_int64 c = sqlite3_column_int64(st, 5), f = sqlite3_column_int64(st, 6);
	b->bancount = c < 0 ? 0 : c > UINT_MAX ? UINT_MAX : (unsigned)c;
	b->failures = f < 0 ? 0 : f > UINT_MAX ? UINT_MAX : (unsigned)f;
	return b;
}

/* ---- open, check, move aside ---- */

/* Why a try failed: the file is ours to replace, or a real error. */
enum { TRY_OK = 0, TRY_BAD = 1 };

static int is_corrupt_rc(int rc)
{
	int p = rc & 0xff;
	return p == SQLITE_CORRUPT || p == SQLITE_NOTADB || p == SQLITE_FORMAT ||
	       rc == SQLITE_IOERR_SHORT_READ;
}

static void close_db(struct store *s)
{
	for (int i = 0; i < S_COUNT; i++) {
		sqlite3_finalize(s->st[i]);
		s->st[i] = NULL;
	}
	sqlite3_close_v2(s->db);
	s->db = NULL;
}

/* Runs one statement of SQL text and returns its first column as int (or
 * text in buf). rc is the SQLite code of the failure, if any. */
static int pragma(struct store *s, const char *sql, long long *ival, char *buf, size_t len)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			if (ival)
				*ival = sqlite3_column_int64(st, 0);
			if (buf && len) {
				const unsigned char *t = sqlite3_column_text(st, 0);
				snprintf(buf, len, "%s", t ? (const char *)t : "");
			}
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK)
		seterr(s, "%s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return rc;
}

/* Classifies a failed SQLite call during open: corruption makes the file ours
 * to replace, anything else (locked, disk full, I/O) is reported. */
static int open_fail(struct store *s, int rc, const char *path, const char *what)
{
	char m[256];
	snprintf(m, sizeof m, "%s", s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	if (is_corrupt_rc(rc)) {
		seterr(s, "%s: %s", what, m);
		return TRY_BAD;
	}
	seterr(s, "cannot open state database %s: %s: %s", path, what, m);
	return sqlerrno(rc);
}

static int try_open(struct store *s, const char *path, const struct store_opts *o)
{
	int mem = strcmp(path, ":memory:") == 0;
	if (!mem) {
		struct stat sb;
		if (lstat(path, &sb) == 0) {
			if (S_ISDIR(sb.st_mode)) {
				seterr(s, "it is a directory");
				return TRY_BAD;
			}
			if (!S_ISREG(sb.st_mode)) {
				seterr(s, "it is not a regular file");
				return TRY_BAD;
			}
			int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
			if (fd < 0) {
				int e = errno;
				if (e == EACCES || e == EPERM) {
					seterr(s, "cannot open it for writing: %s", strerror(e));
					return TRY_BAD;
				}
				seterr(s, "cannot open state database %s: %s", path, strerror(e));
				return -e;
			}
			close(fd);
		} else if (errno == ENOENT) {
			/* Created by us first so that it (and SQLite's -wal and -shm,
			 * which copy its mode) is 0600: it holds log lines. */
			int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
			if (fd < 0 && errno != EEXIST) {
				int e = errno;
				seterr(s, "cannot create state database %s: %s", path, strerror(e));
				return -e;
			}
			if (fd >= 0)
				close(fd);
		} else {
			int e = errno;
			seterr(s, "cannot open state database %s: %s", path, strerror(e));
			return -e;
		}
	}

	int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK)
		return open_fail(s, rc, path, "open");
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, o->busy_timeout_ms);

	char mode[32];
	rc = pragma(s, "PRAGMA journal_mode=WAL", NULL, mode, sizeof mode);
	if (rc != SQLITE_OK)
		return open_fail(s, rc, path, "journal_mode");
	rc = pragma(s, "PRAGMA synchronous=NORMAL", NULL, NULL, 0);
	if (rc != SQLITE_OK)
		return open_fail(s, rc, path, "synchronous");
	/* Peak RSS: a 64 KiB page cache (default 2 MiB) and no memory-mapped
	 * I/O; the store is written in batches and read in full only at start,
	 * and the pages it misses are in the kernel's page cache. */
	rc = pragma(s, "PRAGMA cache_size=-64", NULL, NULL, 0);
	if (rc == SQLITE_OK)
		rc = pragma(s, "PRAGMA mmap_size=0", NULL, NULL, 0);
	if (rc != SQLITE_OK)
		return open_fail(s, rc, path, "cache_size");

	long long appid = 0, version = 0, ntables = 0;
	rc = pragma(s, "PRAGMA application_id", &appid, NULL, 0);
	if (rc == SQLITE_OK)
		rc = pragma(s, "PRAGMA user_version", &version, NULL, 0);
	if (rc == SQLITE_OK)
		rc = pragma(s, "SELECT count(*) FROM sqlite_schema", &ntables, NULL, 0);
	if (rc != SQLITE_OK)
		return open_fail(s, rc, path, "reading the header");

	if (!o->skip_check && !mem) {
		char res[256];
		rc = pragma(s, "PRAGMA quick_check(1)", NULL, res, sizeof res);
		if (rc != SQLITE_OK)
			return open_fail(s, rc, path, "integrity check");
		if (strcmp(res, "ok") != 0) {
			seterr(s, "integrity check failed: %s", res);
			return TRY_BAD;
		}
	}
	if (appid != 0 && appid != APPLICATION_ID) {
		seterr(s, "it belongs to another program (application_id 0x%llx)", appid);
		return TRY_BAD;
	}
	if (version == 0 && ntables > 0) {
		seterr(s, "it is not an mxjail database (%lld tables, no schema version)", ntables);
		return TRY_BAD;
	}
	if (version > STORE_SCHEMA_VERSION) {
		seterr(s, "schema version %lld is newer than this mxjail's %d", version,
		       STORE_SCHEMA_VERSION);
		return TRY_BAD;
	}
	if (version < 0) {
		seterr(s, "invalid schema version %lld", version);
		return TRY_BAD;
	}

	for (long long v = version; v < STORE_SCHEMA_VERSION; v++) {
		char *sql = xasprintf("BEGIN IMMEDIATE; %s PRAGMA application_id=%d;"
				      " PRAGMA user_version=%lld; COMMIT;",
				      migrations[v], APPLICATION_ID, v + 1);
		char *em = NULL;
		rc = sqlite3_exec(s->db, sql, NULL, NULL, &em);
		free(sql);
		if (rc != SQLITE_OK) {
			char m[256];
			snprintf(m, sizeof m, "%s", em ? em : sqlite3_errstr(rc));
			sqlite3_free(em);
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			if (is_corrupt_rc(rc)) {
				seterr(s, "schema upgrade %lld->%lld: %s", v, v + 1, m);
				return TRY_BAD;
			}
			seterr(s, "cannot upgrade state database %s to schema %lld: %s", path,
			       v + 1, m);
			return sqlerrno(rc);
		}
	}

	/* The hourly purge looks for ended history rows; without this index it
	 * reads the whole table (and the bans table for its NOT IN) each time,
	 * about 0.1 s of blocked event loop with 100,000 bans. Added without a
	 * schema bump: older mxjail versions ignore an extra index. */
	rc = sqlite3_exec(s->db, "CREATE INDEX IF NOT EXISTS history_end ON history(endtime)"
				 " WHERE endtime IS NOT NULL", NULL, NULL, NULL);
	if (rc != SQLITE_OK && is_corrupt_rc(rc)) {
		seterr(s, "creating an index: %s", sqlite3_errstr(rc));
		return TRY_BAD;
	}
	for (int i = 0; i < S_COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&s->st[i], NULL);
		if (rc != SQLITE_OK)
			return open_fail(s, rc, path, "preparing statements");
	}
	return TRY_OK;
}

/* Renames path (and its -wal) to path.corrupt-<UTC time>[-n]; drops -shm,
 * which SQLite rebuilds. A stale -wal left behind would be replayed into the
 * fresh database, so it must go too. */
static int move_aside(const char *path, char *dst, size_t dstlen, char *err, size_t errlen)
{
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
	struct stat sb;
	for (int n = 0; n < 1000; n++) {
		if (n == 0)
			snprintf(dst, dstlen, "%s.corrupt-%s", path, ts);
		else
			snprintf(dst, dstlen, "%s.corrupt-%s-%d", path, ts, n);
		if (lstat(dst, &sb) != 0)
			break;
	}
	if (rename(path, dst) != 0) {
		snprintf(err, errlen, "cannot move %s aside to %s: %s", path, dst, strerror(errno));
		return -errno;
	}
	char *from = xasprintf("%s-wal", path), *to = xasprintf("%s-wal", dst);
	if (rename(from, to) != 0 && errno != ENOENT)
		unlink(from);
	free(from);
	free(to);
	from = xasprintf("%s-shm", path);
	unlink(from);
	free(from);
	return 0;
}

int store_open(const char *path, const struct store_opts *opts, struct store **out,
	       char *msg, size_t msglen)
{
	static const struct store_opts defaults = STORE_OPTS_DEFAULT;
	const struct store_opts *o = opts ? opts : &defaults;
	char why[512], dst[PATH_MAX + 64];
	*out = NULL;
	if (msg && msglen)
		msg[0] = '\0';
	if (!path || !*path) {
		if (msg)
			snprintf(msg, msglen, "state database: empty path");
		return -EINVAL;
	}
	struct store *s = xcalloc(1, sizeof *s);
	s->maxmatches = o->maxmatches;

	int r = try_open(s, path, o);
	if (r == TRY_BAD) {
		snprintf(why, sizeof why, "%s", s->err);
		close_db(s);
		char err[PATH_MAX + 256];
		int m = move_aside(path, dst, sizeof dst, err, sizeof err);
		if (m < 0) {
			if (msg)
				snprintf(msg, msglen, "state database %s is unusable (%s) and %s", path,
					 why, err);
			free(s);
			return m;
		}
		r = try_open(s, path, o);
		if (r == TRY_OK) {
			if (msg)
				snprintf(msg, msglen,
					 "state database %s was unusable (%s); moved it to %s and"
					 " started an empty one", path, why, dst);
			*out = s;
			s->err[0] = '\0';
			return 1;
		}
		if (r == TRY_BAD)
			r = -EIO;
	}
	if (r < 0) {
		if (msg)
			snprintf(msg, msglen, "%s", s->err);
		close_db(s);
		free(s);
		return r;
	}
	s->err[0] = '\0';
	*out = s;
	return 0;
}

struct store *store_close(struct store *s)
{
	if (!s)
		return NULL;
	if (s->txn)
		store_flush(s);
	close_db(s);
	free(s);
	return NULL;
}

const char *store_error(const struct store *s)
{
	return s->err;
}

void store_set_maxmatches(struct store *s, unsigned maxmatches)
{
	s->maxmatches = maxmatches;
}

/* ---- transactions ---- */

int store_begin(struct store *s)
{
	if (s->txn)
		return 0;
	int r = exec_simple(s, S_BEGIN, "begin");
	if (r == 0)
		s->txn = 1;
	return r;
}

int store_flush(struct store *s)
{
	if (!s->txn)
		return 0;
	int r = exec_simple(s, S_COMMIT, "commit");
	if (r < 0) {
		/* A failed COMMIT (disk full) leaves the transaction open:
		 * drop it so the next turn starts clean. */
		if (!sqlite3_get_autocommit(s->db))
			exec_simple(s, S_ROLLBACK, "rollback");
	}
	s->txn = 0;
	return r;
}

int store_dirty(const struct store *s)
{
	return s->txn;
}

/* Runs a write that commits on its own: inside an open batch it becomes a
 * savepoint (a failure undoes only itself) and the batch is committed with it. */
static int wr_begin(struct store *s)
{
	if (s->txn)
		return exec_simple(s, S_SAVEPOINT, "savepoint");
	return exec_simple(s, S_BEGIN, "begin");
}

static int wr_end(struct store *s, int r)
{
	if (r < 0) {
		if (s->txn) {
			exec_simple(s, S_ROLLBACK_TO, "rollback to");
			exec_simple(s, S_RELEASE, "release");
		} else {
			exec_simple(s, S_ROLLBACK, "rollback");
		}
		return r;
	}
	if (s->txn) {
		int e = exec_simple(s, S_RELEASE, "release");
		if (e < 0)
			return e;
	}
	s->txn = 1;
	return store_flush(s);
}

/* ---- bans ---- */

static int ban_one(struct store *s, const struct store_ban *b)
{
	if (!b->id || !b->jail || !*b->id || !*b->jail) {
		seterr(s, "ban without id or jail");
		return -EINVAL;
	}
	double end = b->bantime < 0 ? -1 : b->timeofban + b->bantime;
	sqlite3_stmt *st = stmt(s, S_HIST_INS);
	bind_text(st, 1, b->id);
	bind_text(st, 2, b->jail);
	sqlite3_bind_double(st, 3, b->timeofban);
	sqlite3_bind_double(st, 4, b->bantime < 0 ? -1 : b->bantime);
	bind_end(st, 5, end);
	sqlite3_bind_int64(st, 6, b->bancount);
	sqlite3_bind_int64(st, 7, b->failures);
	int r = run(s, S_HIST_INS, "recording ban history");
	if (r < 0)
		return r;
	sqlite3_int64 hid = sqlite3_last_insert_rowid(s->db);

	st = stmt(s, S_BAN_PUT);
	bind_text(st, 1, b->jail);
	bind_text(st, 2, b->id);
	sqlite3_bind_int64(st, 3, hid);
	sqlite3_bind_double(st, 4, b->timeofban);
	sqlite3_bind_double(st, 5, b->bantime < 0 ? -1 : b->bantime);
	bind_end(st, 6, end);
	sqlite3_bind_int64(st, 7, b->bancount);
	sqlite3_bind_int64(st, 8, b->failures);
	if ((r = run(s, S_BAN_PUT, "recording ban")) < 0)
		return r;

	/* dbmaxmatches keeps the newest lines: the ones that tipped the count. */
	size_t first = b->nlines > s->maxmatches ? b->nlines - s->maxmatches : 0;
	for (size_t i = first; i < b->nlines; i++) {
		const char *line = b->lines[i] ? b->lines[i] : "";
		size_t n = strnlen(line, STORE_LINE_MAX);
		st = stmt(s, S_EVID_INS);
		sqlite3_bind_int64(st, 1, hid);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)(i - first));
		sqlite3_bind_text(st, 3, line, (int)n, SQLITE_STATIC);
		if ((r = run(s, S_EVID_INS, "recording evidence")) < 0)
			return r;
	}
	return 0;
}

int store_bans_add(struct store *s, const struct store_ban *b, size_t n)
{
	int r = wr_begin(s);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++)
		r = ban_one(s, &b[i]);
	return wr_end(s, r);
}

int store_ban_add(struct store *s, const struct store_ban *b)
{
	return store_bans_add(s, b, 1);
}

int store_ban_prolong(struct store *s, const char *jail, const char *id, double new_end)
{
	int r = wr_begin(s);
	if (r < 0)
		return r;
	sqlite3_stmt *st = stmt(s, S_PROLONG_HIST);
	bind_text(st, 1, jail);
	bind_text(st, 2, id);
	bind_end(st, 3, new_end);
	r = run(s, S_PROLONG_HIST, "prolonging ban");
	if (r == 0) {
		st = stmt(s, S_PROLONG_BAN);
		bind_text(st, 1, jail);
		bind_text(st, 2, id);
		bind_end(st, 3, new_end);
		r = run(s, S_PROLONG_BAN, "prolonging ban");
	}
	if (r == 0 && sqlite3_changes(s->db) == 0) {
		seterr(s, "no live ban of %s in %s", id ? id : "", jail ? jail : "");
		r = -ENOENT;
	}
	return wr_end(s, r);
}

static int unban_common(struct store *s, enum stmt_id hist, enum stmt_id del, const char *jail,
			const char *id, double now)
{
	int r = wr_begin(s);
	if (r < 0)
		return r;
	sqlite3_stmt *st = stmt(s, hist);
	if (id) {
		bind_text(st, 1, id);
		bind_text(st, 2, jail);
		sqlite3_bind_double(st, 3, now);
	} else {
		bind_text(st, 1, jail);
		sqlite3_bind_double(st, 2, now);
	}
	r = run(s, hist, "unban");
	int n = 0;
	if (r == 0) {
		st = stmt(s, del);
		bind_text(st, 1, id ? id : jail);
		if (id)
			bind_text(st, 2, jail);
		r = run(s, del, "unban");
		n = sqlite3_changes(s->db);
	}
	r = wr_end(s, r);
	return r < 0 ? r : n;
}

int store_unban(struct store *s, const char *jail, const char *id, double now)
{
	if (!id) {
		seterr(s, "unban without id");
		return -EINVAL;
	}
	return unban_common(s, S_UNBAN_HIST, S_UNBAN_DEL, jail, id, now);
}

int store_unban_all(struct store *s, const char *jail, double now)
{
	return unban_common(s, S_UNBAN_ALL_HIST, S_UNBAN_ALL_DEL, jail, NULL, now);
}

/* Steps a SELECT of ban rows into out. */
static int collect(struct store *s, sqlite3_stmt *st, double now, struct store_banlist *out,
		   const char *what)
{
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		list_row(out, st, now);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return dberr(s, rc, what);
	return 0;
}

int store_load_bans(struct store *s, double now, struct store_banlist *out)
{
	int r = wr_begin(s);
	if (r < 0)
		return r;
	sqlite3_stmt *st = stmt(s, S_EXPIRE);
	sqlite3_bind_double(st, 1, now);
	r = run(s, S_EXPIRE, "dropping expired bans");
	r = wr_end(s, r);
	if (r < 0)
		return r;
	size_t before = out->n;
	r = collect(s, stmt(s, S_LOAD), now, out, "loading bans");
	return r < 0 ? r : (int)(out->n - before);
}

int store_banned(struct store *s, const char *jail, double now, struct store_banlist *out)
{
	sqlite3_stmt *st = stmt(s, S_BANNED);
	bind_text(st, 1, jail);
	sqlite3_bind_double(st, 2, now);
	size_t before = out->n;
	int r = collect(s, st, now, out, "listing bans");
	return r < 0 ? r : (int)(out->n - before);
}

static int load_evidence(struct store *s, struct store_banlist *l, size_t idx,
			 sqlite3_int64 hid)
{
	sqlite3_stmt *st = stmt(s, S_EVID_GET);
	sqlite3_bind_int64(st, 1, hid);
	const char **lines = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		lines = xgrow(lines, &cap, n, sizeof *lines);
		lines[n++] = arena_col(l->arena, st, 0);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(lines);
		return dberr(s, rc, "reading evidence");
	}
	if (n) {
		const char **a = arena_alloc(l->arena, n * sizeof *a);
		memcpy(a, lines, n * sizeof *a);
		l->v[idx].lines = a;
		l->v[idx].nlines = n;
	}
	free(lines);
	return 0;
}

static int why_rows(struct store *s, sqlite3_stmt *st, double now, int live,
		    struct store_banlist *out)
{
	size_t start = out->n;
	sqlite3_int64 *hids = NULL;
	size_t nh = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_ban *b = list_row(out, st, now);
		b->live = live;
		hids = xgrow(hids, &cap, nh, sizeof *hids);
		hids[nh++] = sqlite3_column_int64(st, 7);
	}
	sqlite3_reset(st);
	int r = rc == SQLITE_DONE ? 0 : dberr(s, rc, "why");
	for (size_t i = 0; i < nh && r == 0; i++)
		r = load_evidence(s, out, start + i, hids[i]);
	free(hids);
	return r;
}

int store_why(struct store *s, const char *id, double now, size_t max_history,
	      struct store_banlist *out)
{
	sqlite3_stmt *st = stmt(s, S_WHY_LIVE);
	bind_text(st, 1, id);
	sqlite3_bind_double(st, 2, now);
	size_t before = out->n;
	int r = why_rows(s, st, now, 1, out);
	if (r == 0 && max_history > 0) {
		st = stmt(s, S_WHY_HIST);
		bind_text(st, 1, id);
		sqlite3_bind_double(st, 2, now);
		sqlite3_bind_int64(st, 3, max_history > INT_MAX ? INT_MAX : (sqlite3_int64)max_history);
		r = why_rows(s, st, now, 0, out);
	}
	return r < 0 ? r : (int)(out->n - before);
}

int store_history(struct store *s, const char *id, const char *jail, double since,
		  struct store_hist *out)
{
	enum stmt_id sid = jail ? S_HIST_JAIL : S_HIST_ALL;
	sqlite3_stmt *st = stmt(s, sid);
	bind_text(st, 1, id);
	if (jail)
		bind_text(st, 2, jail);
	sqlite3_bind_double(st, 3, since);
	memset(out, 0, sizeof *out);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->count = (unsigned)sqlite3_column_int64(st, 0);
		out->last_ban = sqlite3_column_double(st, 1);
		out->last_end = sqlite3_column_int64(st, 2) ? -1 : sqlite3_column_double(st, 3);
		rc = SQLITE_DONE;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return dberr(s, rc, "reading ban history");
	return 0;
}

int store_history_since(struct store *s, double since, store_history_cb cb, void *arg)
{
	/* A private statement (rare call; cb may use the store). No index on
	 * timeofban alone: a full scan of the kept history is cheap at start. */
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db,
				    "SELECT jail, id, timeofban FROM history WHERE timeofban >= ?1"
				    " ORDER BY timeofban",
				    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return dberr(s, rc, "reading ban history");
	sqlite3_bind_double(st, 1, since);
	int r = 0;
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *j = (const char *)sqlite3_column_text(st, 0);
		const char *id = (const char *)sqlite3_column_text(st, 1);
		r = cb(arg, j ? j : "", id ? id : "", sqlite3_column_double(st, 2));
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = dberr(s, rc, "reading ban history");
	sqlite3_finalize(st);
	return r;
}

int store_purge(struct store *s, double now, double purgeage)
{
	int r = wr_begin(s);
	if (r < 0)
		return r;
	double cut = now - purgeage;
	sqlite3_stmt *st = stmt(s, S_PURGE_EVID);
	sqlite3_bind_double(st, 1, cut);
	r = run(s, S_PURGE_EVID, "purging evidence");
	int n = 0;
	if (r == 0) {
		st = stmt(s, S_PURGE_HIST);
		sqlite3_bind_double(st, 1, cut);
		r = run(s, S_PURGE_HIST, "purging history");
		n = sqlite3_changes(s->db);
	}
	if (r == 0) {
		st = stmt(s, S_PURGE_KV);
		sqlite3_bind_double(st, 1, now);
		r = run(s, S_PURGE_KV, "purging expired rows");
	}
	r = wr_end(s, r);
	return r < 0 ? r : n;
}

/* ---- batched writes ---- */

static int batch_run(struct store *s, enum stmt_id id, const char *what)
{
	int r = store_begin(s);
	if (r < 0)
		return r;
	return run(s, id, what);
}

int store_pos_set(struct store *s, const char *path, const struct store_pos *p)
{
	sqlite3_stmt *st = stmt(s, S_POS_SET);
	bind_text(st, 1, path);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)p->inode);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)p->offset);
	size_t n = p->fplen > sizeof p->fp ? sizeof p->fp : p->fplen;
	sqlite3_bind_blob(st, 4, p->fp, (int)n, SQLITE_STATIC);
	sqlite3_bind_double(st, 5, (double)time(NULL));
	return batch_run(s, S_POS_SET, "saving log position");
}

int store_pos_get(struct store *s, const char *path, struct store_pos *p)
{
	sqlite3_stmt *st = stmt(s, S_POS_GET);
	bind_text(st, 1, path);
	memset(p, 0, sizeof *p);
	int rc = sqlite3_step(st), r = 0;
	if (rc == SQLITE_ROW) {
		p->inode = (uint64_t)sqlite3_column_int64(st, 0);
		p->offset = (uint64_t)sqlite3_column_int64(st, 1);
		const void *fp = sqlite3_column_blob(st, 2);
		size_t n = (size_t)sqlite3_column_bytes(st, 2);
		if (n > sizeof p->fp)
			n = sizeof p->fp;
		if (fp)
			memcpy(p->fp, fp, n);
		p->fplen = fp ? n : 0;
	} else if (rc == SQLITE_DONE) {
		seterr(s, "no saved position for %s", path);
		r = -ENOENT;
	} else {
		r = dberr(s, rc, "reading log position");
	}
	sqlite3_reset(st);
	return r;
}

int store_pos_del(struct store *s, const char *path)
{
	bind_text(stmt(s, S_POS_DEL), 1, path);
	return batch_run(s, S_POS_DEL, "deleting log position");
}

int store_cursor_set(struct store *s, const char *source, const char *cursor)
{
	sqlite3_stmt *st = stmt(s, S_CUR_SET);
	bind_text(st, 1, source);
	bind_text(st, 2, cursor ? cursor : "");
	sqlite3_bind_double(st, 3, (double)time(NULL));
	return batch_run(s, S_CUR_SET, "saving journal cursor");
}

int store_cursor_get(struct store *s, const char *source, char *buf, size_t len)
{
	sqlite3_stmt *st = stmt(s, S_CUR_GET);
	bind_text(st, 1, source);
	int rc = sqlite3_step(st), r = 0;
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		if (n >= len) {
			seterr(s, "journal cursor of %s is %zu bytes, buffer %zu", source, n, len);
			r = -ERANGE;
		} else {
			memcpy(buf, t ? (const char *)t : "", n);
			buf[n] = '\0';
		}
	} else if (rc == SQLITE_DONE) {
		seterr(s, "no saved cursor for %s", source);
		r = -ENOENT;
	} else {
		r = dberr(s, rc, "reading journal cursor");
	}
	sqlite3_reset(st);
	return r;
}

int store_kv_set(struct store *s, const char *ns, const char *key, const void *val,
		 size_t len, double expires)
{
	if (len > INT_MAX) {
		seterr(s, "kv value too large");
		return -EINVAL;
	}
	sqlite3_stmt *st = stmt(s, S_KV_SET);
	bind_text(st, 1, ns);
	bind_text(st, 2, key);
	sqlite3_bind_blob(st, 3, val ? val : "", (int)len, SQLITE_STATIC);
	if (expires > 0)
		sqlite3_bind_double(st, 4, expires);
	else
		sqlite3_bind_null(st, 4);
	return batch_run(s, S_KV_SET, "saving kv row");
}

int store_kv_get(struct store *s, const char *ns, const char *key, double now, void **val,
		 size_t *len, double *expires)
{
	sqlite3_stmt *st = stmt(s, S_KV_GET);
	bind_text(st, 1, ns);
	bind_text(st, 2, key);
	sqlite3_bind_double(st, 3, now);
	int rc = sqlite3_step(st), r = 0;
	if (rc == SQLITE_ROW) {
		const void *b = sqlite3_column_blob(st, 0);
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		if (val) {
			char *p = xmalloc(n + 1);
			if (b)
				memcpy(p, b, n);
			p[n] = '\0';
			*val = p;
		}
		if (len)
			*len = n;
		if (expires)
			*expires = sqlite3_column_type(st, 1) == SQLITE_NULL ? 0 :
				   sqlite3_column_double(st, 1);
	} else if (rc == SQLITE_DONE) {
		r = -ENOENT;
	} else {
		r = dberr(s, rc, "reading kv row");
	}
	sqlite3_reset(st);
	return r;
}

int store_kv_del(struct store *s, const char *ns, const char *key)
{
	sqlite3_stmt *st = stmt(s, S_KV_DEL);
	bind_text(st, 1, ns);
	bind_text(st, 2, key);
	return batch_run(s, S_KV_DEL, "deleting kv row");
}

int store_kv_foreach(struct store *s, const char *ns, double now, store_kv_cb cb, void *arg)
{
	/* A private statement: the callback may call store_kv_* itself. */
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, stmt_sql[S_KV_LIST], -1, &st, NULL);
	if (rc != SQLITE_OK)
		return dberr(s, rc, "listing kv rows");
	bind_text(st, 1, ns);
	sqlite3_bind_double(st, 2, now);
	int r = 0;
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		const void *v = sqlite3_column_blob(st, 1);
		size_t n = (size_t)sqlite3_column_bytes(st, 1);
		double e = sqlite3_column_type(st, 2) == SQLITE_NULL ? 0 :
			   sqlite3_column_double(st, 2);
		r = cb(k ? k : "", v ? v : "", n, e, arg);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = dberr(s, rc, "listing kv rows");
	sqlite3_finalize(st);
	return r;
}
