/*
 * pwriter - the policy engine's own state file, written by a thread of its
 * own (see pwriter.h for the interface and what a crash loses).
 *
 * Why a thread and a file of its own: a commit in the daemon's store runs on
 * the event loop, and SQLite's automatic WAL checkpoint inside a commit
 * stalls it for tens of milliseconds every few seconds - every policy reply
 * waiting behind it. Here the loop thread only copies bytes into a batch;
 * this thread alone owns the connection, commits, and checkpoints when its
 * queue is empty (wal_autocheckpoint = 0), so the WAL never grows past a
 * few seconds of changes and no checkpoint competes with a commit.
 *
 * Table: prow(ns, key, val, expires), unique on (ns, key), so a namespace
 * reads back in key order (the journal's order) through that index. It is a
 * rowid table: a journal row or snapshot chunk is a blob of up to megabytes,
 * and in a WITHOUT ROWID table the blob is part of the b-tree key, so every
 * comparison on the way down to an insert read the whole blob of the cell
 * it compared with, overflow pages and all (most of the writer's time). An
 * older file with the WITHOUT ROWID table is converted when opened.
 * expires <= 0 is never; expired rows are skipped on read and deleted at
 * open and hourly.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clocks.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "policy/pwriter.h"

#define CKPT_FRAMES 1000        /* checkpoint when idle and the WAL has this many pages */
#define CKPT_FRAMES_FORCE 20000 /* ... or even when busy (a writer that never idles) */
#define CKPT_IDLE_S 2.0         /* ... or this long after the last one */
#define PURGE_S 3600.0
#define RETRY_S 1.0             /* pause after a failed commit */
#define SPARE 2                 /* committed batches kept for reuse */

/* ---- batches ---- */

struct pbop {
	size_t ns, key, val, vlen;   /* offsets into data */
	double expires;
	int del;
};

struct pbatch {
	struct strbuf data;
	struct pbop *ops;
	size_t n, cap;
	struct pbatch *next;          /* writer queue */
};

struct pbatch *pbatch_new(void)
{
	return xcalloc(1, sizeof(struct pbatch));
}

struct pbatch *pbatch_free(struct pbatch *b)
{
	if (b) {
		strbuf_free(&b->data);
		free(b->ops);
		free(b);
	}
	return NULL;
}

static struct pbop *addop(struct pbatch *b, const char *ns, const char *key)
{
	b->ops = xgrow(b->ops, &b->cap, b->n, sizeof(*b->ops));
	struct pbop *o = &b->ops[b->n++];
	memset(o, 0, sizeof(*o));
	o->ns = b->data.len;
	strbuf_add(&b->data, ns, strlen(ns) + 1);
	o->key = b->data.len;
	strbuf_add(&b->data, key, strlen(key) + 1);
	return o;
}

void pbatch_set(struct pbatch *b, const char *ns, const char *key, const void *val,
		size_t len, double expires)
{
	struct pbop *o = addop(b, ns, key);
	o->val = b->data.len;
	o->vlen = len;
	o->expires = expires;
	strbuf_add(&b->data, val, len);
}

void pbatch_del(struct pbatch *b, const char *ns, const char *key)
{
	addop(b, ns, key)->del = 1;
}

size_t pbatch_count(const struct pbatch *b)
{
	return b->n;
}

size_t pbatch_bytes(const struct pbatch *b)
{
	return b->data.len;
}

int pbatch_apply_store(const struct pbatch *b, struct store *st)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct pbop *o = &b->ops[i];
		const char *d = b->data.s;
		int rc = o->del ? store_kv_del(st, d + o->ns, d + o->key)
				: store_kv_set(st, d + o->ns, d + o->key, d + o->val, o->vlen,
					       o->expires);
		if (rc < 0 && rc != -ENOENT)
			return rc;
	}
	return 0;
}

/* ---- the writer ---- */

struct pwriter {
	sqlite3 *db;                  /* loop thread before start, then the writer's own */
	char *path;
	int ready;                    /* pwriter_start() was called */
	sqlite3_stmt *set, *del;
	pthread_t th;
	int started, stop;
	pthread_mutex_t mu;
	pthread_cond_t wake;          /* to the writer: a batch or stop */
	pthread_cond_t room;          /* to waiters: a batch is done */
	struct pbatch *head, *tail;
	size_t nq;
	/* committed batches go back to the loop thread for reuse: their buffers
	 * keep their size, so a flush writes into memory that is already mapped
	 * instead of growing (and page-faulting) a fresh one every time */
	struct pbatch *spare;
	size_t nspare;
	int err;                      /* last commit: 0 or -errno */
	char errmsg[256];
	int wal_frames;               /* pages in the WAL (wal hook, writer thread) */
	double last_ckpt, last_purge; /* monotonic */
	struct pwriter_stats st;
};

static int sq_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	default:
		return -EIO;
	}
}

/* Records the connection's error under the lock (callers on either thread). */
static int fail(struct pwriter *pw, int rc, const char *what)
{
	pthread_mutex_lock(&pw->mu);
	snprintf(pw->errmsg, sizeof(pw->errmsg), "%s: %s", what,
		 pw->db ? sqlite3_errmsg(pw->db) : sqlite3_errstr(rc));
	pw->err = sq_errno(rc) ? sq_errno(rc) : -EIO;
	pthread_mutex_unlock(&pw->mu);
	return sq_errno(rc) ? sq_errno(rc) : -EIO;
}

static int exec(struct pwriter *pw, const char *sql)
{
	int rc = sqlite3_exec(pw->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : fail(pw, rc, sql);
}

static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	(void)db;
	(void)name;
	((struct pwriter *)arg)->wal_frames = pages;
	return SQLITE_OK;
}

static int apply(struct pwriter *pw, const struct pbatch *b)
{
	int rc = exec(pw, "BEGIN");
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < b->n; i++) {
		const struct pbop *o = &b->ops[i];
		const char *d = b->data.s;
		sqlite3_stmt *s = o->del ? pw->del : pw->set;
		sqlite3_bind_text(s, 1, d + o->ns, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, d + o->key, -1, SQLITE_STATIC);
		if (!o->del) {
			sqlite3_bind_blob(s, 3, o->vlen ? d + o->val : "", (int)o->vlen,
					  SQLITE_STATIC);
			sqlite3_bind_double(s, 4, o->expires);
		}
		int r = sqlite3_step(s);
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		if (r != SQLITE_DONE) {
			rc = fail(pw, r, o->del ? "deleting a state row" : "writing a state row");
			sqlite3_exec(pw->db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
	}
	rc = exec(pw, "COMMIT");
	if (rc < 0)
		sqlite3_exec(pw->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int pwriter_apply(struct pwriter *pw, const struct pbatch *b)
{
	return apply(pw, b);
}

static void checkpoint(struct pwriter *pw, int mode)
{
	int log = 0, done = 0;
	if (sqlite3_wal_checkpoint_v2(pw->db, NULL, mode, &log, &done) == SQLITE_OK) {
		pw->wal_frames = 0;
		pthread_mutex_lock(&pw->mu);
		pw->st.checkpoints++;
		pthread_mutex_unlock(&pw->mu);
	}
	pw->last_ckpt = clocks_mono();
}

static void purge(struct pwriter *pw)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(pw->db, "DELETE FROM prow WHERE expires > 0 AND expires < ?", -1,
			       &s, NULL) == SQLITE_OK) {
		sqlite3_bind_double(s, 1, (double)time(NULL));
		sqlite3_step(s);
	}
	sqlite3_finalize(s);
	pw->last_purge = clocks_mono();
}

static int setup(struct pwriter *pw, const char *path, char *msg, size_t msglen);
static void close_db(struct pwriter *pw);

/* The writer's own connection, opened in the writer thread (so a fork
 * between pwriter_open and the first batch - a daemon detaching - never
 * carries a connection or a thread across). 0 or -errno, error recorded. */
static int writer_connect(struct pwriter *pw)
{
	char msg[256];
	int rc = setup(pw, pw->path, msg, sizeof(msg));
	if (rc == SQLITE_OK)
		return 0;
	close_db(pw);
	pthread_mutex_lock(&pw->mu);
	snprintf(pw->errmsg, sizeof(pw->errmsg), "%s", msg);
	pw->err = sq_errno(rc) ? sq_errno(rc) : -EIO;
	pw->st.failures++;
	pthread_mutex_unlock(&pw->mu);
	return sq_errno(rc) ? sq_errno(rc) : -EIO;
}

static void *writer_main(void *arg)
{
	struct pwriter *pw = arg;
	pthread_mutex_lock(&pw->mu);
	for (;;) {
		if (!pw->head) {
			if (pw->stop)
				break;
			double idle = clocks_mono() - pw->last_ckpt;
			if (pw->db && (pw->wal_frames >= CKPT_FRAMES ||
			    (pw->wal_frames > 0 && idle >= CKPT_IDLE_S))) {
				pthread_mutex_unlock(&pw->mu);
				checkpoint(pw, SQLITE_CHECKPOINT_PASSIVE);
				pthread_mutex_lock(&pw->mu);
				continue;
			}
			if (pw->db && clocks_mono() - pw->last_purge >= PURGE_S) {
				pthread_mutex_unlock(&pw->mu);
				purge(pw);
				pthread_mutex_lock(&pw->mu);
				continue;
			}
			/* sleep until work, or until the pending checkpoint is due */
			double wait = pw->wal_frames > 0 ? CKPT_IDLE_S - idle + 0.01 : PURGE_S;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)wait;
			ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&pw->wake, &pw->mu, &ts);
			continue;
		}
		struct pbatch *b = pw->head;
		int stopping = pw->stop;
		pthread_mutex_unlock(&pw->mu);
		double t0 = clocks_mono();
		int rc = pw->db ? 0 : writer_connect(pw);
		if (rc == 0)
			rc = apply(pw, b);
		double ms = (clocks_mono() - t0) * 1e3;
		if (rc == 0 && pw->wal_frames >= CKPT_FRAMES_FORCE)
			checkpoint(pw, SQLITE_CHECKPOINT_PASSIVE);
		pthread_mutex_lock(&pw->mu);
		if (rc == 0) {
			pw->head = b->next;
			if (!pw->head)
				pw->tail = NULL;
			pw->nq--;
			pw->err = 0;
			pw->errmsg[0] = '\0';
			pw->st.commits++;
			pw->st.rows += b->n;
			pw->st.commit_ms_total += ms;
			if (ms > pw->st.commit_ms_max)
				pw->st.commit_ms_max = ms;
			pthread_cond_broadcast(&pw->room);
			if (pw->nspare < SPARE) {
				b->next = pw->spare;
				pw->spare = b;
				pw->nspare++;
				continue;
			}
			pthread_mutex_unlock(&pw->mu);
			pbatch_free(b);
			pthread_mutex_lock(&pw->mu);
			continue;
		}
		pw->st.failures++;
		pthread_cond_broadcast(&pw->room);   /* waiters look at err */
		if (stopping)
			break;   /* closing on a failing disk: give up (see pwriter_close) */
		/* keep the batch: the journal must not skip one; try again later */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)RETRY_S;
		pthread_cond_timedwait(&pw->wake, &pw->mu, &ts);
	}
	pthread_mutex_unlock(&pw->mu);
	return NULL;
}

/* ---- opening ---- */

static int is_damage(int rc)
{
	rc &= 0xff;
	return rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT;
}

static void move_aside(const char *path, char *msg, size_t msglen)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
	char *dst = xasprintf("%s.corrupt-%s", path, ts);
	if (rename(path, dst) == 0)
		snprintf(msg, msglen, "%s was damaged; moved to %s, starting empty", path, dst);
	else
		snprintf(msg, msglen, "%s was damaged and could not be moved aside", path);
	char *a = xasprintf("%s-wal", path), *b = xasprintf("%s-wal", dst);
	if (rename(a, b) != 0)
		unlink(a);
	free(a);
	a = xasprintf("%s-shm", path);
	unlink(a);
	free(a);
	free(b);
	free(dst);
}

static void close_db(struct pwriter *pw)
{
	sqlite3_finalize(pw->set);
	sqlite3_finalize(pw->del);
	pw->set = pw->del = NULL;
	sqlite3_close(pw->db);
	pw->db = NULL;
}

#define PROW_COLUMNS "ns TEXT NOT NULL, key TEXT NOT NULL, val BLOB NOT NULL," \
	" expires REAL NOT NULL, UNIQUE (ns, key)"

/* A file of the earlier layout (the same rows in a WITHOUT ROWID table) gets
 * the current one, rows and all, in one transaction. */
static int convert_old_layout(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	int old = 0;
	int rc = sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE type = 'table'"
				    " AND name = 'prow'", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return rc;
	if (sqlite3_step(s) == SQLITE_ROW) {
		const char *sql = (const char *)sqlite3_column_text(s, 0);
		old = sql && strstr(sql, "WITHOUT ROWID") != NULL;
	}
	sqlite3_finalize(s);
	if (!old)
		return SQLITE_OK;
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE;"
			  " CREATE TABLE prow_new (" PROW_COLUMNS ");"
			  " INSERT INTO prow_new SELECT ns, key, val, expires FROM prow ORDER BY ns, key;"
			  " DROP TABLE prow;"
			  " ALTER TABLE prow_new RENAME TO prow;"
			  " COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* 0, or the SQLite code of the first failure (msg filled). */
static int setup(struct pwriter *pw, const char *path, char *msg, size_t msglen)
{
	static const char *const pragmas[] = {
		"PRAGMA journal_mode=WAL",
		"PRAGMA synchronous=NORMAL",
		"PRAGMA wal_autocheckpoint=0",
	};
	int rc = sqlite3_open_v2(path, &pw->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		snprintf(msg, msglen, "%s: %s", path, pw->db ? sqlite3_errmsg(pw->db) : "cannot open");
		return rc;
	}
	sqlite3_busy_timeout(pw->db, 2000);
	sqlite3_stmt *s = NULL;
	rc = sqlite3_prepare_v2(pw->db, "PRAGMA quick_check(1)", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			const unsigned char *t = sqlite3_column_text(s, 0);
			rc = t && strcmp((const char *)t, "ok") == 0 ? SQLITE_OK : SQLITE_CORRUPT;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_OK && rc != SQLITE_DONE) {
		snprintf(msg, msglen, "%s: %s", path,
			 rc == SQLITE_CORRUPT ? "fails the quick check" : sqlite3_errmsg(pw->db));
		return rc;
	}
	for (size_t i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++) {
		rc = sqlite3_exec(pw->db, pragmas[i], NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			snprintf(msg, msglen, "%s: %s", path, sqlite3_errmsg(pw->db));
			return rc;
		}
	}
	rc = convert_old_layout(pw->db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(pw->db, "CREATE TABLE IF NOT EXISTS prow (" PROW_COLUMNS ")", NULL,
				  NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(msg, msglen, "%s: %s", path, sqlite3_errmsg(pw->db));
		return rc;
	}
	sqlite3_wal_hook(pw->db, wal_hook, pw);
	pw->wal_frames = 0;
	rc = sqlite3_prepare_v2(pw->db, "INSERT OR REPLACE INTO prow (ns, key, val, expires)"
				" VALUES (?, ?, ?, ?)", -1, &pw->set, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(pw->db, "DELETE FROM prow WHERE ns = ? AND key = ?", -1,
					&pw->del, NULL);
	if (rc != SQLITE_OK)
		snprintf(msg, msglen, "%s: %s", path, sqlite3_errmsg(pw->db));
	return rc;
}

int pwriter_open(const char *path, double now, struct pwriter **out, char *msg, size_t msglen)
{
	struct pwriter *pw = xcalloc(1, sizeof(*pw));
	int moved = 0;
	pthread_mutex_init(&pw->mu, NULL);
	pthread_cond_init(&pw->wake, NULL);
	pthread_cond_init(&pw->room, NULL);
	*out = NULL;
	int rc = setup(pw, path, msg, msglen);
	if (rc != SQLITE_OK && is_damage(rc)) {
		close_db(pw);
		move_aside(path, msg, msglen);
		moved = 1;
		char m2[512];
		rc = setup(pw, path, m2, sizeof(m2));
		if (rc != SQLITE_OK)
			snprintf(msg, msglen, "%s", m2);
	}
	if (rc != SQLITE_OK) {
		int e = sq_errno(rc) ? sq_errno(rc) : -EIO;
		close_db(pw);
		pthread_mutex_destroy(&pw->mu);
		pthread_cond_destroy(&pw->wake);
		pthread_cond_destroy(&pw->room);
		free(pw);
		return e;
	}
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(pw->db, "DELETE FROM prow WHERE expires > 0 AND expires < ?", -1,
			       &s, NULL) == SQLITE_OK) {
		sqlite3_bind_double(s, 1, now);
		sqlite3_step(s);
	}
	sqlite3_finalize(s);
	pw->last_ckpt = pw->last_purge = clocks_mono();
	pw->path = xstrdup(path);
	*out = pw;
	return moved;
}

int pwriter_get(struct pwriter *pw, const char *ns, const char *key, double now, void **val,
		size_t *len)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(pw->db, "SELECT val FROM prow WHERE ns = ? AND key = ?"
				    " AND (expires <= 0 OR expires > ?)", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return fail(pw, rc, "reading the state");
	sqlite3_bind_text(s, 1, ns, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 3, now);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(s, 0);
		char *v = xmalloc(n + 1);
		if (n)
			memcpy(v, sqlite3_column_blob(s, 0), n);
		v[n] = '\0';
		*val = v;
		*len = n;
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = -ENOENT;
	} else {
		rc = fail(pw, rc, "reading the state");
	}
	sqlite3_finalize(s);
	return rc;
}

int pwriter_foreach(struct pwriter *pw, const char *ns, double now, store_kv_cb cb, void *arg)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(pw->db, "SELECT key, val, expires FROM prow WHERE ns = ?"
				    " AND (expires <= 0 OR expires > ?) ORDER BY key", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return fail(pw, rc, "reading the state");
	sqlite3_bind_text(s, 1, ns, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 2, now);
	int ret = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(s, 0);
		const void *v = sqlite3_column_blob(s, 1);
		size_t n = (size_t)sqlite3_column_bytes(s, 1);
		if ((ret = cb(k ? k : "", v ? v : "", n, sqlite3_column_double(s, 2), arg)) != 0)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = fail(pw, rc, "reading the state");
	sqlite3_finalize(s);
	return ret;
}

static int count_cb(const char *key, const void *val, size_t len, double expires, void *arg)
{
	(void)key; (void)val; (void)len; (void)expires; (void)arg;
	return 1;
}

int pwriter_empty(struct pwriter *pw, const char *ns, double now)
{
	return pwriter_foreach(pw, ns, now, count_cb, NULL) == 0;
}

int pwriter_start(struct pwriter *pw)
{
	/* loading is over: the loop thread's connection goes, the writer
	 * opens its own when the first batch arrives (see writer_connect) */
	if (pw->db && !pw->started) {
		checkpoint(pw, SQLITE_CHECKPOINT_TRUNCATE);
		close_db(pw);
	}
	pw->ready = 1;
	return 0;
}

/* Started by the first submit, in the process that submits. */
static int start_thread(struct pwriter *pw)
{
	/* the thread blocks every signal (it inherits the mask at creation):
	 * the daemon takes SIGTERM/SIGHUP through its loop, which only works if
	 * no other thread can receive them */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&pw->th, NULL, writer_main, pw);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_mutex_lock(&pw->mu);
		snprintf(pw->errmsg, sizeof(pw->errmsg), "starting the state writer: %s",
			 strerror(rc));
		pw->err = -rc;
		pthread_mutex_unlock(&pw->mu);
		return -rc;
	}
	pw->started = 1;
	return 0;
}

int pwriter_submit(struct pwriter *pw, struct pbatch *b)
{
	if (!pw->ready)
		return -EINVAL;
	if (!pw->started && start_thread(pw) < 0)
		return -EAGAIN;
	pthread_mutex_lock(&pw->mu);
	if (pw->nq >= PWRITER_QUEUE || pw->stop) {
		pthread_mutex_unlock(&pw->mu);
		return -EAGAIN;
	}
	b->next = NULL;
	if (pw->tail)
		pw->tail->next = b;
	else
		pw->head = b;
	pw->tail = b;
	pw->nq++;
	pthread_cond_signal(&pw->wake);
	pthread_mutex_unlock(&pw->mu);
	return 0;
}

struct pbatch *pwriter_batch(struct pwriter *pw)
{
	pthread_mutex_lock(&pw->mu);
	struct pbatch *b = pw->spare;
	if (b) {
		pw->spare = b->next;
		pw->nspare--;
	}
	pthread_mutex_unlock(&pw->mu);
	if (!b)
		return pbatch_new();
	strbuf_reset(&b->data);
	b->n = 0;
	b->next = NULL;
	return b;
}

int pwriter_room(struct pwriter *pw)
{
	pthread_mutex_lock(&pw->mu);
	int r = pw->nq < PWRITER_QUEUE && !pw->stop;
	pthread_mutex_unlock(&pw->mu);
	return r;
}

int pwriter_wait_room(struct pwriter *pw, double timeout)
{
	double end = clocks_mono() + timeout;
	int rc = 0;
	pthread_mutex_lock(&pw->mu);
	while (pw->nq >= PWRITER_QUEUE && !pw->stop) {
		double left = end - clocks_mono();
		if (left <= 0 || !pw->started) {
			rc = -ETIMEDOUT;
			break;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		double w = left < 0.1 ? left : 0.1;
		ts.tv_nsec += (long)(w * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&pw->room, &pw->mu, &ts);
	}
	pthread_mutex_unlock(&pw->mu);
	return rc;
}

int pwriter_status(struct pwriter *pw)
{
	pthread_mutex_lock(&pw->mu);
	int r = pw->err;
	pthread_mutex_unlock(&pw->mu);
	return r;
}

void pwriter_error(struct pwriter *pw, char *buf, size_t len)
{
	pthread_mutex_lock(&pw->mu);
	snprintf(buf, len, "%s", pw->errmsg);
	pthread_mutex_unlock(&pw->mu);
}

void pwriter_stats(struct pwriter *pw, struct pwriter_stats *out)
{
	pthread_mutex_lock(&pw->mu);
	*out = pw->st;
	out->queued = pw->nq;
	pthread_mutex_unlock(&pw->mu);
}

struct pwriter *pwriter_close(struct pwriter *pw, double drain_timeout)
{
	if (!pw)
		return NULL;
	if (pw->started) {
		/* let the writer drain; a disk that keeps failing gets drain_timeout */
		double end = clocks_mono() + drain_timeout;
		pthread_mutex_lock(&pw->mu);
		while (pw->head && pw->err == 0) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&pw->room, &pw->mu, &ts);
		}
		while (pw->head && clocks_mono() < end) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&pw->room, &pw->mu, &ts);
		}
		pw->stop = 1;
		pthread_cond_signal(&pw->wake);
		pthread_mutex_unlock(&pw->mu);
		pthread_join(pw->th, NULL);
	}
	while (pw->head) {   /* what a failing disk did not take */
		struct pbatch *b = pw->head;
		pw->head = b->next;
		pbatch_free(b);
	}
	while (pw->spare) {
		struct pbatch *b = pw->spare;
		pw->spare = b->next;
		pbatch_free(b);
	}
	if (pw->db)
		checkpoint(pw, SQLITE_CHECKPOINT_TRUNCATE);
	close_db(pw);
	free(pw->path);
	pthread_mutex_destroy(&pw->mu);
	pthread_cond_destroy(&pw->wake);
	pthread_cond_destroy(&pw->room);
	free(pw);
	return NULL;
}
