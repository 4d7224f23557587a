/*
 * test_store - the SQLite state store: bans across restarts, history for
 * bantime.increment, evidence cap, purge, batched writes, kv expiry, crash
 * durability, recovery from broken database files, the history walks
 * (store_history_since, read-only store_ro_history) and the time to load
 * 100,000 live bans (printed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_ro.h"

#define NOW 1800000000.0

struct fx {
	char dir[64];
	char path[128];
};

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	chmod(p, 0700);
	return remove(p);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	strcpy(f->dir, "/tmp/mxjail-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/state.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	chmod(f->dir, 0700);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct store *open_ok(const char *path, unsigned maxmatches)
{
	struct store_opts o = STORE_OPTS_DEFAULT;
	o.maxmatches = maxmatches;
	struct store *s = NULL;
	char msg[1024];
	int r = store_open(path, &o, &s, msg, sizeof msg);
	if (r != 0)
		fail_msg("store_open(%s) = %d: %s", path, r, msg);
	assert_non_null(s);
	return s;
}

static struct store_ban mkban(const char *id, const char *jail, double t, double bt,
			      const char *const *lines, size_t n)
{
	struct store_ban b = {0};
	b.id = id;
	b.jail = jail;
	b.timeofban = t;
	b.bantime = bt;
	b.bancount = 1;
	b.failures = 5;
	b.lines = lines;
	b.nlines = n;
	return b;
}

static const struct store_ban *find(const struct store_banlist *l, const char *id,
				    const char *jail)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].id, id) && (!jail || !strcmp(l->v[i].jail, jail)))
			return &l->v[i];
	return NULL;
}

/* Bans survive close/open; expired ones are dropped at load; unban keeps history. */
static void restart_and_unban(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f->path, 10);
	const char *lines[] = {"line one 192.0.2.1", "line two 192.0.2.1"};
	struct store_ban b[] = {
		mkban("192.0.2.1", "sshd", NOW - 100, 600, lines, 2),
		mkban("192.0.2.2", "sshd", NOW - 1000, 600, NULL, 0),   /* expired */
		mkban("2001:db8::/64", "dovecot", NOW - 10, -1, NULL, 0), /* forever */
		mkban("192.0.2.1", "postfix", NOW - 50, 3600, NULL, 0),
	};
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(store_ban_add(s, &b[i]), 0);
	s = store_close(s);

	struct stat sb;
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	s = open_ok(f->path, 10);
	struct store_banlist l = STORE_BANLIST_INIT;
	assert_int_equal(store_load_bans(s, NOW, &l), 3);
	const struct store_ban *x = find(&l, "192.0.2.1", "sshd");
	assert_non_null(x);
	assert_true(x->remaining > 499.9 && x->remaining < 500.1);
	assert_true(x->end == NOW + 500);
	x = find(&l, "2001:db8::/64", "dovecot");
	assert_non_null(x);
	assert_true(x->end < 0 && x->remaining < 0 && x->bantime < 0);
	assert_null(find(&l, "192.0.2.2", NULL));
	store_banlist_free(&l);

	/* banned, all and by jail */
	assert_int_equal(store_banned(s, NULL, NOW, &l), 3);
	assert_string_equal(l.v[0].jail, "dovecot");
	store_banlist_free(&l);
	assert_int_equal(store_banned(s, "sshd", NOW, &l), 1);
	assert_string_equal(l.v[0].id, "192.0.2.1");
	store_banlist_free(&l);
	/* a ban that ran out while we were up is not listed */
	assert_int_equal(store_banned(s, "sshd", NOW + 501, &l), 0);
	store_banlist_free(&l);

	/* why: both live bans, the evidence of sshd's */
	assert_int_equal(store_why(s, "192.0.2.1", NOW, 10, &l), 2);
	x = find(&l, "192.0.2.1", "sshd");
	assert_non_null(x);
	assert_int_equal(x->live, 1);
	assert_int_equal(x->nlines, 2);
	assert_string_equal(x->lines[0], "line one 192.0.2.1");
	assert_string_equal(x->lines[1], "line two 192.0.2.1");
	store_banlist_free(&l);

	/* unban in one jail: history stays and shows the end clipped to now */
	assert_int_equal(store_unban(s, "sshd", "192.0.2.1", NOW), 1);
	assert_int_equal(store_unban(s, "sshd", "192.0.2.1", NOW), 0);
	assert_int_equal(store_banned(s, NULL, NOW, &l), 2);
	store_banlist_free(&l);
	assert_int_equal(store_why(s, "192.0.2.1", NOW, 10, &l), 2);
	x = find(&l, "192.0.2.1", "sshd");
	assert_int_equal(x->live, 0);
	assert_true(x->end == NOW);
	assert_int_equal(x->nlines, 2);
	assert_int_equal(find(&l, "192.0.2.1", "postfix")->live, 1);
	store_banlist_free(&l);
	struct store_hist h;
	assert_int_equal(store_history(s, "192.0.2.1", "sshd", 0, &h), 0);
	assert_int_equal(h.count, 1);

	/* unban in every jail, then --all */
	assert_int_equal(store_unban(s, NULL, "192.0.2.1", NOW), 1);
	assert_int_equal(store_unban_all(s, NULL, NOW), 1);
	assert_int_equal(store_banned(s, NULL, NOW, &l), 0);
	store_banlist_free(&l);
	s = store_close(s);

	s = open_ok(f->path, 10);
	assert_int_equal(store_load_bans(s, NOW, &l), 0);
	store_banlist_free(&l);
	assert_int_equal(store_history(s, "2001:db8::/64", NULL, 0, &h), 0);
	assert_int_equal(h.count, 1);
	assert_true(h.last_end == NOW); /* the forever ban was ended by the unban */
	store_close(s);
}

/* History counts per jail and across jails (overalljails), since-filter,
 * forever, prolongation. */
static void increment_history(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f->path, 10);
	struct store_hist h;
	assert_int_equal(store_history(s, "198.51.100.7", "sshd", 0, &h), 0);
	assert_int_equal(h.count, 0);
	assert_true(h.last_ban == 0);

	for (int i = 0; i < 3; i++) {
		struct store_ban b = mkban("198.51.100.7", "sshd", NOW + i * 1000, 600, NULL, 0);
		assert_int_equal(store_history(s, b.id, b.jail, 0, &h), 0);
		b.bancount = h.count + 1;
		assert_int_equal(store_ban_add(s, &b), 0);
	}
	struct store_ban b = mkban("198.51.100.7", "dovecot", NOW + 5000, 60, NULL, 0);
	assert_int_equal(store_ban_add(s, &b), 0);
	b = mkban("198.51.100.8", "sshd", NOW, 60, NULL, 0);
	assert_int_equal(store_ban_add(s, &b), 0);

	assert_int_equal(store_history(s, "198.51.100.7", "sshd", 0, &h), 0);
	assert_int_equal(h.count, 3);
	assert_true(h.last_ban == NOW + 2000);
	assert_true(h.last_end == NOW + 2600);
	assert_int_equal(store_history(s, "198.51.100.7", NULL, 0, &h), 0);
	assert_int_equal(h.count, 4);
	assert_true(h.last_ban == NOW + 5000);
	assert_true(h.last_end == NOW + 5060);
	assert_int_equal(store_history(s, "198.51.100.7", "sshd", NOW + 500, &h), 0);
	assert_int_equal(h.count, 2);

	struct store_banlist l = STORE_BANLIST_INIT;
	assert_int_equal(store_banned(s, "sshd", NOW + 2000, &l), 1);
	assert_int_equal(find(&l, "198.51.100.7", NULL)->bancount, 3);
	store_banlist_free(&l);

	/* prolongation moves the end of the live ban and of its history row */
	assert_int_equal(store_ban_prolong(s, "sshd", "198.51.100.7", NOW + 9000), 0);
	assert_int_equal(store_history(s, "198.51.100.7", "sshd", 0, &h), 0);
	assert_true(h.last_end == NOW + 9000);
	assert_int_equal(store_banned(s, "sshd", NOW + 8000, &l), 1);
	assert_true(l.v[0].bantime == 7000 && l.v[0].end == NOW + 9000);
	store_banlist_free(&l);
	assert_int_equal(store_ban_prolong(s, "sshd", "198.51.100.7", -1), 0);
	assert_int_equal(store_history(s, "198.51.100.7", NULL, 0, &h), 0);
	assert_true(h.last_end < 0);
	assert_int_equal(store_ban_prolong(s, "sshd", "203.0.113.1", NOW), -ENOENT);
	assert_true(strlen(store_error(s)) > 0);

	/* a re-ban of a live (jail, id) replaces the live row, adds history */
	b = mkban("198.51.100.8", "sshd", NOW + 10, 120, NULL, 0);
	b.bancount = 2;
	assert_int_equal(store_ban_add(s, &b), 0);
	assert_int_equal(store_banned(s, "sshd", NOW + 20, &l), 2);
	assert_true(find(&l, "198.51.100.8", NULL)->end == NOW + 130);
	store_banlist_free(&l);
	assert_int_equal(store_history(s, "198.51.100.8", "sshd", 0, &h), 0);
	assert_int_equal(h.count, 2);
	store_close(s);
}

struct seen {
	char ids[16][64];
	double t[16];
	int live[16];
	size_t lines[16];
	char first_line[16][64];
	int n;
	int stop_after;
};

static int since_cb(void *arg, const char *jail, const char *id, double timeofban)
{
	struct seen *w = arg;
	assert_true(w->n < 16);
	snprintf(w->ids[w->n], sizeof w->ids[0], "%s/%s", jail, id);
	w->t[w->n++] = timeofban;
	return w->stop_after && w->n >= w->stop_after ? 7 : 0;
}

static int ro_cb(void *arg, const struct store_ro_ban *b)
{
	struct seen *w = arg;
	assert_true(w->n < 16);
	snprintf(w->ids[w->n], sizeof w->ids[0], "%s/%s", b->jail, b->id);
	w->t[w->n] = b->timeofban;
	w->live[w->n] = b->live;
	w->lines[w->n] = b->nlines;
	snprintf(w->first_line[w->n], sizeof w->first_line[0], "%s", b->nlines ? b->lines[0] : "");
	w->n++;
	return w->stop_after && w->n >= w->stop_after;
}

/* Ended, unbanned and live bans are all in the history walks; the read-only
 * walk leaves the file byte for byte as it was and reads what is still in
 * the write-ahead log of an open writer. */
static void history_walks(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f->path, 2);
	const char *ev1[] = {"line a1", "line a2", "line a3"};
	const char *ev3[] = {"line c1"};
	struct store_ban b[4] = {
		mkban("192.0.2.1", "sshd", NOW - 90000, 600, ev1, 3),      /* older than a day */
		mkban("192.0.2.2", "postfix", NOW - 7200, 600, NULL, 0),   /* ended */
		mkban("192.0.2.3", "sshd", NOW - 3600, -1, ev3, 1),        /* forever, live */
		mkban("2001:db8::/64", "dovecot", NOW - 60, 600, NULL, 0), /* live, then unbanned */
	};
	assert_int_equal(store_bans_add(s, b, 4), 0);
	assert_int_equal(store_unban(s, "dovecot", "2001:db8::/64", NOW - 30), 1);

	struct seen w = {0};
	assert_int_equal(store_history_since(s, NOW - 86400, since_cb, &w), 0);
	assert_int_equal(w.n, 3);
	assert_string_equal(w.ids[0], "postfix/192.0.2.2");
	assert_string_equal(w.ids[1], "sshd/192.0.2.3");
	assert_string_equal(w.ids[2], "dovecot/2001:db8::/64");
	assert_true(w.t[2] == NOW - 60);
	memset(&w, 0, sizeof w);
	w.stop_after = 1;
	assert_int_equal(store_history_since(s, 0, since_cb, &w), 7);
	assert_int_equal(w.n, 1);

	/* the writer stays open: its last commits are in the -wal file */
	struct stat before;
	assert_int_equal(stat(f->path, &before), 0);
	memset(&w, 0, sizeof w);
	char msg[512];
	long n = store_ro_history(f->path, NOW, 0, 10, 1000, ro_cb, &w, msg, sizeof msg);
	assert_int_equal(n, 4);
	assert_string_equal(w.ids[0], "sshd/192.0.2.1");
	assert_int_equal(w.live[0], 0);
	assert_int_equal(w.lines[0], 2);               /* dbmaxmatches 2 kept the newest */
	assert_string_equal(w.first_line[0], "line a2");
	assert_int_equal(w.live[1], 0);
	assert_int_equal(w.lines[1], 0);
	assert_int_equal(w.live[2], 1);
	assert_int_equal(w.lines[2], 1);
	assert_string_equal(w.first_line[2], "line c1");
	assert_int_equal(w.live[3], 0);                /* unbanned: history only */
	/* since, no evidence, an early stop */
	memset(&w, 0, sizeof w);
	n = store_ro_history(f->path, NOW, NOW - 86400, 0, 1000, ro_cb, &w, msg, sizeof msg);
	assert_int_equal(n, 3);
	assert_int_equal(w.lines[1], 0);
	assert_int_equal(w.live[1], 1);
	memset(&w, 0, sizeof w);
	w.stop_after = 2;
	assert_int_equal(store_ro_history(f->path, NOW, 0, 10, 1000, ro_cb, &w, msg, sizeof msg), 2);
	/* the live ban is not live any more later on */
	memset(&w, 0, sizeof w);
	assert_int_equal(store_ro_history(f->path, NOW + 1e9, 0, 0, 1000, ro_cb, &w, msg,
					  sizeof msg), 4);
	assert_int_equal(w.live[2], 1);                /* forever */
	/* kv rows counted per namespace, expired ones not */
	const char *ns[] = {"greylist", "ratelimit"};
	assert_int_equal(store_ro_kv_count(f->path, ns, 2, NOW, 1000, msg, sizeof msg), 0);
	assert_int_equal(store_kv_set(s, "greylist", "a", "1", 1, 0), 0);
	assert_int_equal(store_kv_set(s, "ratelimit", "b", "2", 1, NOW + 10), 0);
	assert_int_equal(store_kv_set(s, "ratelimit", "c", "3", 1, NOW - 10), 0);
	assert_int_equal(store_kv_set(s, "cluster", "d", "4", 1, 0), 0);
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(store_ro_kv_count(f->path, ns, 2, NOW, 1000, msg, sizeof msg), 2);
	assert_int_equal(store_ro_kv_count(f->path, ns, 1, NOW, 1000, msg, sizeof msg), 1);
	store_close(s);

	struct stat after;
	assert_int_equal(stat(f->path, &after), 0);
	assert_true(after.st_ino == before.st_ino);
	/* closed by its owner: read as it is, no -wal or -shm left behind */
	char side[192];
	snprintf(side, sizeof side, "%s-wal", f->path);
	assert_int_equal(access(side, F_OK), -1);
	memset(&w, 0, sizeof w);
	assert_int_equal(store_ro_history(f->path, NOW, 0, 10, 1000, ro_cb, &w, msg, sizeof msg), 4);
	assert_string_equal(w.first_line[2], "line c1");
	assert_int_equal(store_ro_kv_count(f->path, ns, 2, NOW, 1000, msg, sizeof msg), 2);
	assert_int_equal(access(side, F_OK), -1);
	snprintf(side, sizeof side, "%s-shm", f->path);
	assert_int_equal(access(side, F_OK), -1);

	/* missing file, not a database: errors, nothing created */
	char other[192];
	snprintf(other, sizeof other, "%s/none.db", f->dir);
	assert_int_equal(store_ro_history(other, NOW, 0, 10, 100, ro_cb, &w, msg, sizeof msg),
			 -ENOENT);
	assert_int_equal(access(other, F_OK), -1);
	int fd = open(other, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not sqlite at all, just some text\n", 34), 34);
	close(fd);
	memset(&w, 0, sizeof w);
	assert_true(store_ro_history(other, NOW, 0, 10, 100, ro_cb, &w, msg, sizeof msg) < 0);
	assert_true(strlen(msg) > 0);
	assert_int_equal(w.n, 0);
	assert_true(store_ro_kv_count(other, ns, 2, NOW, 100, msg, sizeof msg) < 0);
}

/* dbmaxmatches keeps the newest lines; long lines are cut; hostile bytes kept. */
static void evidence_cap(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f->path, 3);
	const char *lines[] = {"l1", "l2", "l3", "l4", "l5"};
	struct store_ban b = mkban("192.0.2.9", "sshd", NOW, 600, lines, 5);
	assert_int_equal(store_ban_add(s, &b), 0);
	struct store_banlist l = STORE_BANLIST_INIT;
	assert_int_equal(store_why(s, "192.0.2.9", NOW, 0, &l), 1);
	assert_int_equal(l.v[0].nlines, 3);
	assert_string_equal(l.v[0].lines[0], "l3");
	assert_string_equal(l.v[0].lines[2], "l5");
	store_banlist_free(&l);

	char *big = malloc(1 << 20);
	memset(big, 'x', (1 << 20) - 1);
	big[(1 << 20) - 1] = '\0';
	const char *hostile[] = {big, "quote ' \" ; DROP TABLE bans; --", "\xff\xfe utf8 junk"};
	b = mkban("192.0.2.10", "sshd", NOW, 600, hostile, 3);
	assert_int_equal(store_ban_add(s, &b), 0);
	free(big);
	assert_int_equal(store_why(s, "192.0.2.10", NOW, 0, &l), 1);
	assert_int_equal(l.v[0].nlines, 3);
	assert_int_equal(strlen(l.v[0].lines[0]), STORE_LINE_MAX);
	assert_string_equal(l.v[0].lines[1], hostile[1]);
	assert_string_equal(l.v[0].lines[2], hostile[2]);
	store_banlist_free(&l);

	store_set_maxmatches(s, 0);
	b = mkban("192.0.2.11", "sshd", NOW, 600, lines, 5);
	assert_int_equal(store_ban_add(s, &b), 0);
	assert_int_equal(store_why(s, "192.0.2.11", NOW, 0, &l), 1);
	assert_int_equal(l.v[0].nlines, 0);
	store_banlist_free(&l);
	/* why for an unknown id: nothing, no error */
	assert_int_equal(store_why(s, "203.0.113.99", NOW, 5, &l), 0);
	store_banlist_free(&l);
	store_close(s);
}

static int count_evidence(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int n = -1;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM evidence", -1, &st, NULL),
			 SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Purge drops history and evidence of bans that ended before now - age,
 * never those of live bans, and expired kv rows. */
static void purge(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f->path, 10);
	const char *lines[] = {"a", "b"};
	struct store_ban b[] = {
		mkban("192.0.2.1", "sshd", NOW - 10 * 86400, 600, lines, 2), /* old, ended */
		mkban("192.0.2.2", "sshd", NOW - 10 * 86400, -1, lines, 2),  /* old, forever */
		mkban("192.0.2.3", "sshd", NOW - 3600, 600, lines, 2),       /* recent, ended */
		mkban("192.0.2.4", "sshd", NOW - 10, 600, lines, 2),         /* live */
	};
	assert_int_equal(store_bans_add(s, b, 4), 0);
	/* an old ban that ended long ago but is still in the live table (never
	 * loaded since) keeps its history until it is dropped */
	assert_int_equal(store_kv_set(s, "greylist", "old", "1", 1, NOW - 1), 0);
	assert_int_equal(store_kv_set(s, "greylist", "new", "1", 1, NOW + 100), 0);
	assert_int_equal(store_flush(s), 0);

	struct store_banlist l = STORE_BANLIST_INIT;
	assert_int_equal(store_load_bans(s, NOW, &l), 2); /* drops 192.0.2.1 and .3 */
	store_banlist_free(&l);
	assert_int_equal(store_purge(s, NOW, 86400), 1); /* only 192.0.2.1's history */
	struct store_hist h;
	assert_int_equal(store_history(s, "192.0.2.1", NULL, 0, &h), 0);
	assert_int_equal(h.count, 0);
	assert_int_equal(store_history(s, "192.0.2.2", NULL, 0, &h), 0);
	assert_int_equal(h.count, 1);
	assert_int_equal(store_history(s, "192.0.2.3", NULL, 0, &h), 0);
	assert_int_equal(h.count, 1);
	assert_int_equal(count_evidence(f->path), 6);
	assert_int_equal(store_kv_get(s, "greylist", "old", 0, NULL, NULL, NULL), -ENOENT);
	assert_int_equal(store_kv_get(s, "greylist", "new", 0, NULL, NULL, NULL), 0);

	/* once unbanned, the forever ban's history ages like any other */
	assert_int_equal(store_unban(s, NULL, "192.0.2.2", NOW), 1);
	assert_int_equal(store_purge(s, NOW + 2 * 86400, 86400), 2);
	assert_int_equal(store_history(s, "192.0.2.2", NULL, 0, &h), 0);
	assert_int_equal(h.count, 0);
	assert_int_equal(store_history(s, "192.0.2.4", NULL, 0, &h), 0);
	assert_int_equal(h.count, 1); /* live (never loaded as expired): kept */
	assert_int_equal(count_evidence(f->path), 2);
	store_close(s);
}

static int kv_collect(const char *key, const void *val, size_t len, double expires, void *arg)
{
	char *out = arg;
	char tmp[128];
	snprintf(tmp, sizeof tmp, "%s=%.*s@%.0f;", key, (int)len, (const char *)val, expires);
	strcat(out, tmp);
	return 0;
}

static int kv_stop(const char *key, const void *val, size_t len, double expires, void *arg)
{
	(void)key; (void)val; (void)len; (void)expires;
	(*(int *)arg)++;
	return 7;
}

/* kv with namespaces, binary values, expiry; positions; cursors; batching. */
static void kv_positions_cursors(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f->path, 10);
	assert_int_equal(store_dirty(s), 0);
	assert_int_equal(store_kv_set(s, "greylist", "a|b|c", "\0bin\xff", 5, NOW + 60), 0);
	assert_int_equal(store_dirty(s), 1);
	assert_int_equal(store_kv_set(s, "greylist", "k2", "v2", 2, 0), 0);
	assert_int_equal(store_kv_set(s, "ratelimit", "a|b|c", "other", 5, NOW - 1), 0);
	void *v = NULL;
	size_t n = 0;
	double e = 0;
	assert_int_equal(store_kv_get(s, "greylist", "a|b|c", NOW, &v, &n, &e), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(v, "\0bin\xff", 5);
	assert_true(e == NOW + 60);
	free(v);
	assert_int_equal(store_kv_get(s, "greylist", "a|b|c", NOW + 60, &v, &n, &e), -ENOENT);
	assert_int_equal(store_kv_get(s, "ratelimit", "a|b|c", NOW, &v, &n, &e), -ENOENT);
	assert_int_equal(store_kv_get(s, "greylist", "k2", NOW + 1e9, &v, &n, &e), 0);
	assert_true(e == 0);
	free(v);

	char out[512] = "";
	assert_int_equal(store_kv_foreach(s, "greylist", NOW, kv_collect, out), 0);
	assert_string_equal(out, "a|b|c=@1800000060;k2=v2@0;");
	int calls = 0;
	assert_int_equal(store_kv_foreach(s, "greylist", NOW, kv_stop, &calls), 7);
	assert_int_equal(calls, 1);

	struct store_pos p = {.inode = 0xfffffffffffffff0ull, .offset = 123456789012ull,
			      .fplen = 4};
	memcpy(p.fp, "ab\0c", 4);
	assert_int_equal(store_pos_set(s, "/var/log/mail.log", &p), 0);
	assert_int_equal(store_cursor_set(s, "journal", "s=abc;i=1f;b=00"), 0);
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(store_dirty(s), 0);
	assert_int_equal(store_kv_del(s, "greylist", "k2"), 0);
	assert_int_equal(store_flush(s), 0);
	s = store_close(s);

	s = open_ok(f->path, 10);
	struct store_pos q;
	assert_int_equal(store_pos_get(s, "/var/log/mail.log", &q), 0);
	assert_true(q.inode == p.inode && q.offset == p.offset);
	assert_int_equal(q.fplen, 4);
	assert_memory_equal(q.fp, "ab\0c", 4);
	assert_int_equal(store_pos_get(s, "/var/log/other.log", &q), -ENOENT);
	char cur[64], tiny[4];
	assert_int_equal(store_cursor_get(s, "journal", cur, sizeof cur), 0);
	assert_string_equal(cur, "s=abc;i=1f;b=00");
	assert_int_equal(store_cursor_get(s, "journal", tiny, sizeof tiny), -ERANGE);
	assert_int_equal(store_cursor_get(s, "nope", cur, sizeof cur), -ENOENT);
	assert_int_equal(store_kv_get(s, "greylist", "k2", NOW, NULL, NULL, NULL), -ENOENT);
	assert_int_equal(store_pos_del(s, "/var/log/mail.log"), 0);
	assert_int_equal(store_pos_get(s, "/var/log/mail.log", &q), -ENOENT);
	store_close(s);
}

/* kill -9 semantics: a ban returned from store_ban_add is on disk, also the
 * batch it committed; a batch nobody flushed is lost. */
static void crash_durability(void **state)
{
	struct fx *f = *state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *s = NULL;
		char msg[256];
		if (store_open(f->path, NULL, &s, msg, sizeof msg) != 0)
			_exit(2);
		struct store_pos p = {.inode = 1, .offset = 10};
		store_pos_set(s, "/log/a", &p);             /* committed by the ban */
		struct store_ban b = mkban("192.0.2.77", "sshd", NOW, 600, NULL, 0);
		if (store_ban_add(s, &b) != 0)
			_exit(3);
		store_pos_set(s, "/log/b", &p);             /* never flushed */
		store_cursor_set(s, "journal", "lost");
		raise(SIGKILL);
		_exit(4);
	}
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

	struct store *s = open_ok(f->path, 10);
	struct store_banlist l = STORE_BANLIST_INIT;
	assert_int_equal(store_load_bans(s, NOW, &l), 1);
	assert_string_equal(l.v[0].id, "192.0.2.77");
	store_banlist_free(&l);
	struct store_pos q;
	assert_int_equal(store_pos_get(s, "/log/a", &q), 0);
	assert_int_equal(store_pos_get(s, "/log/b", &q), -ENOENT);
	char cur[16];
	assert_int_equal(store_cursor_get(s, "journal", cur, sizeof cur), -ENOENT);
	store_close(s);
}

/* ---- broken files ---- */

static int count_corrupt(const char *dir)
{
	char pat[256];
	snprintf(pat, sizeof pat, "%s/state.db.corrupt-*", dir);
	glob_t g;
	int n = 0;
	if (glob(pat, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			if (!strstr(g.gl_pathv[i], "-wal"))
				n++;
		globfree(&g);
	}
	return n;
}

static void write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

/* Opens expecting recovery (1), checks the message and that the fresh
 * database works, and that the old file was kept. */
static void expect_recovered(struct fx *f, const char *reason_part, int corrupt_before)
{
	struct store *s = NULL;
	char msg[1024];
	int r = store_open(f->path, NULL, &s, msg, sizeof msg);
	print_message("    recovered: %s\n", msg);
	assert_int_equal(r, 1);
	assert_non_null(s);
	assert_non_null(strstr(msg, "moved it to"));
	assert_non_null(strstr(msg, f->path));
	if (reason_part)
		assert_non_null(strstr(msg, reason_part));
	assert_int_equal(count_corrupt(f->dir), corrupt_before + 1);
	struct store_ban b = mkban("192.0.2.5", "sshd", NOW, 600, NULL, 0);
	assert_int_equal(store_ban_add(s, &b), 0);
	struct store_banlist l = STORE_BANLIST_INIT;
	assert_int_equal(store_load_bans(s, NOW, &l), 1);
	store_banlist_free(&l);
	store_close(s);
	/* and the next open is clean */
	s = open_ok(f->path, 10);
	assert_int_equal(store_load_bans(s, NOW, &l), 1);
	store_banlist_free(&l);
	store_close(s);
	unlink(f->path);
}

static void make_db_with_bans(struct fx *f, int n)
{
	struct store *s = open_ok(f->path, 10);
	struct store_ban *b = calloc((size_t)n, sizeof *b);
	char (*ids)[32] = calloc((size_t)n, 32);
	for (int i = 0; i < n; i++) {
		snprintf(ids[i], 32, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		b[i] = mkban(ids[i], "sshd", NOW, 86400, NULL, 0);
	}
	assert_int_equal(store_bans_add(s, b, (size_t)n), 0);
	free(b);
	free(ids);
	store_close(s);
}

static void corrupt_files(void **state)
{
	struct fx *f = *state;
	int k = 0;

	/* garbage bytes */
	char junk[8192];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)(i * 131 + 7);
	write_file(f->path, junk, sizeof junk);
	expect_recovered(f, "not a database", k++);

	/* a real database header followed by garbage pages */
	make_db_with_bans(f, 2000);
	{
		int fd = open(f->path, O_RDWR);
		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, junk, 4096, 4096 * 3), 4096);
		close(fd);
	}
	expect_recovered(f, NULL, k++);

	/* truncated database (half of it gone) */
	make_db_with_bans(f, 5000);
	struct stat sb;
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(truncate(f->path, sb.st_size / 2), 0);
	expect_recovered(f, NULL, k++);

	/* truncated inside the 100-byte header */
	make_db_with_bans(f, 10);
	assert_int_equal(truncate(f->path, 60), 0);
	expect_recovered(f, NULL, k++);

	/* a directory in its place */
	assert_int_equal(mkdir(f->path, 0700), 0);
	expect_recovered(f, "directory", k++);

	/* a schema from a newer mxjail */
	make_db_with_bans(f, 1);
	{
		sqlite3 *db;
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL),
				 SQLITE_OK);
		sqlite3_close(db);
	}
	expect_recovered(f, "newer", k++);

	/* somebody else's database (fail2ban's, say) */
	{
		sqlite3 *db;
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "CREATE TABLE bans(jail TEXT, ip TEXT);"
					      "CREATE TABLE fail2banDb(version INTEGER);",
					      NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
	}
	expect_recovered(f, "not an mxjail database", k++);

	/* a zero-length file is an empty SQLite database: used as is */
	write_file(f->path, "", 0);
	struct store *s = NULL;
	char msg[512];
	assert_int_equal(store_open(f->path, NULL, &s, msg, sizeof msg), 0);
	assert_string_equal(msg, "");
	struct store_ban b = mkban("192.0.2.5", "sshd", NOW, 600, NULL, 0);
	assert_int_equal(store_ban_add(s, &b), 0);
	store_close(s);
	assert_int_equal(count_corrupt(f->dir), k);
	unlink(f->path);

	/* a stale -wal next to a garbage file must not be replayed into the fresh one */
	make_db_with_bans(f, 100);
	{
		pid_t pid = fork();
		if (pid == 0) {
			/* leave a -wal behind: crash with an open write */
			struct store *c = NULL;
			char m[256];
			if (store_open(f->path, NULL, &c, m, sizeof m) != 0)
				_exit(2);
			struct store_ban bb = mkban("192.0.2.200", "sshd", NOW, 600, NULL, 0);
			store_ban_add(c, &bb);
			raise(SIGKILL);
		}
		int st;
		waitpid(pid, &st, 0);
	}
	write_file(f->path, junk, sizeof junk);
	s = NULL;
	assert_int_equal(store_open(f->path, NULL, &s, msg, sizeof msg), 1);
	k++;
	struct store_banlist l = STORE_BANLIST_INIT;
	assert_int_equal(store_load_bans(s, NOW, &l), 0);
	store_banlist_free(&l);
	store_close(s);
	assert_int_equal(count_corrupt(f->dir), k);
}

/* Errors that are not the store's own state are reported, not papered over. */
static void unusable_places(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	char msg[512], path[256];

	snprintf(path, sizeof path, "%s/missing/state.db", f->dir);
	int r = store_open(path, NULL, &s, msg, sizeof msg);
	print_message("    missing dir: %d %s\n", r, msg);
	assert_int_equal(r, -ENOENT);
	assert_null(s);
	assert_non_null(strstr(msg, path));

	/* an unwritable directory: as root, drop to nobody in a child */
	char ro[200];
	snprintf(ro, sizeof ro, "%s/ro", f->dir);
	assert_int_equal(mkdir(ro, 0555), 0);
	assert_int_equal(chmod(f->dir, 0755), 0);
	snprintf(path, sizeof path, "%s/state.db", ro);
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(9);
		char m[512];
		struct store *c = NULL;
		int rr = store_open(path, NULL, &c, m, sizeof m);
		dprintf(fds[1], "%d %s", rr, m);
		_exit(c == NULL ? 0 : 1);
	}
	close(fds[1]);
	char buf[600] = "";
	ssize_t n = read(fds[0], buf, sizeof buf - 1);
	close(fds[0]);
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(n > 0);
	print_message("    unwritable dir: %s\n", buf);
	assert_int_equal(atoi(buf), -EACCES);
	assert_non_null(strstr(buf, "cannot create state database"));
	assert_non_null(strstr(buf, "Permission denied"));

	/* an unreadable file in a writable directory (root's file, seen by
	 * nobody): moved aside, a fresh one is created */
	if (geteuid() == 0) {
		char own[200];
		snprintf(own, sizeof own, "%s/own", f->dir);
		assert_int_equal(mkdir(own, 0700), 0);
		assert_int_equal(chown(own, 65534, 65534), 0);
		snprintf(path, sizeof path, "%s/state.db", own);
		write_file(path, "root only", 9);
		assert_int_equal(pipe(fds), 0);
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			if (setgid(65534) != 0 || setuid(65534) != 0)
				_exit(9);
			char m[512];
			struct store *c = NULL;
			int rr = store_open(path, NULL, &c, m, sizeof m);
			dprintf(fds[1], "%d %s", rr, m);
			_exit(c != NULL && rr == 1 ? 0 : 1);
		}
		close(fds[1]);
		memset(buf, 0, sizeof buf);
		n = read(fds[0], buf, sizeof buf - 1);
		close(fds[0]);
		waitpid(pid, &st, 0);
		print_message("    unreadable file: %s\n", buf);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		assert_non_null(strstr(buf, "cannot open it for writing"));
	} else {
		print_message("    unreadable file: skipped (needs root to drop to nobody)\n");
	}

	/* :memory: works as a fallback */
	assert_int_equal(store_open(":memory:", NULL, &s, msg, sizeof msg), 0);
	struct store_ban b = mkban("192.0.2.5", "sshd", NOW, 600, NULL, 0);
	assert_int_equal(store_ban_add(s, &b), 0);
	store_close(s);

	/* a store locked by another writer: -EBUSY, nothing moved aside */
	snprintf(path, sizeof path, "%s/state.db", f->dir);
	make_db_with_bans(f, 1);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	struct store_opts o = STORE_OPTS_DEFAULT;
	o.busy_timeout_ms = 50;
	assert_int_equal(store_open(path, &o, &s, msg, sizeof msg), 0);
	b = mkban("192.0.2.6", "sshd", NOW, 600, NULL, 0);
	r = store_ban_add(s, &b);
	print_message("    locked: %d %s\n", r, store_error(s));
	assert_int_equal(r, -EBUSY);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	assert_int_equal(store_ban_add(s, &b), 0);
	store_close(s);
	assert_int_equal(count_corrupt(f->dir), 0);
}

/* 100,000 live bans: written in one transaction, loaded after a restart. */
static void load_100k(void **state)
{
	struct fx *f = *state;
	enum { N = 100000 };
	struct store *s = open_ok(f->path, 10);
	struct store_ban *b = calloc(N, sizeof *b);
	char (*ids)[48] = calloc(N, 48);
	for (int i = 0; i < N; i++) {
		if (i % 4 == 3)
			snprintf(ids[i], 48, "2001:db8:%x::%x", i >> 8, i & 255);
		else
			snprintf(ids[i], 48, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		b[i] = mkban(ids[i], i % 3 ? "postfix" : "dovecot", NOW - (i % 600),
			     i % 10 ? 86400 : -1, NULL, 0);
	}
	double t0 = mono();
	assert_int_equal(store_bans_add(s, b, N), 0);
	double t_add = mono() - t0;

	/* single-ban commits, as the daemon reports them one by one */
	enum { M = 2000 };
	const char *lines[] = {"Nov 23 19:09:40 mx dovecot: imap-login: auth failed rip=x",
			       "Nov 23 19:09:41 mx dovecot: imap-login: auth failed rip=x"};
	t0 = mono();
	for (int i = 0; i < M; i++) {
		char id[32];
		snprintf(id, sizeof id, "172.16.%d.%d", i >> 8, i & 255);
		struct store_ban one = mkban(id, "sshd", NOW, 600, lines, 2);
		assert_int_equal(store_ban_add(s, &one), 0);
	}
	double t_one = mono() - t0;
	s = store_close(s);
	free(b);
	free(ids);
	struct stat sb;
	stat(f->path, &sb);

	t0 = mono();
	s = open_ok(f->path, 10);
	double t_open = mono() - t0;
	struct store_banlist l = STORE_BANLIST_INIT;
	t0 = mono();
	int n = store_load_bans(s, NOW + 1, &l);
	double t_load = mono() - t0;
	assert_int_equal(n, N + M);
	size_t forever = 0;
	for (size_t i = 0; i < l.n; i++)
		forever += l.v[i].remaining < 0;
	assert_int_equal(forever, N / 10);
	store_banlist_free(&l);

	/* a day later: the timed ones have expired and are deleted at load */
	t0 = mono();
	n = store_load_bans(s, NOW + 86400 + 601, &l);
	double t_expire = mono() - t0;
	assert_int_equal(n, N / 10);
	store_banlist_free(&l);
	struct store_hist h;
	t0 = mono();
	for (int i = 0; i < 1000; i++) {
		char id[32];
		snprintf(id, sizeof id, "10.0.%d.%d", (i * 4 >> 8) & 255, i * 4 & 255);
		assert_int_equal(store_history(s, id, NULL, 0, &h), 0);
		assert_int_equal(h.count, 1);
	}
	double t_hist = mono() - t0;
	t0 = mono();
	n = store_purge(s, NOW + 30 * 86400, 7 * 86400);
	double t_purge = mono() - t0;
	assert_int_equal(n, N + M - N / 10);
	store_close(s);

	print_message("    100k bans: add in one txn %.3f s; %d single ban commits %.3f s "
		      "(%.0f/s); open+quick_check %.3f s; load %d bans %.3f s; "
		      "load deleting 92k expired %.3f s; 1000 history lookups %.3f s; "
		      "purge of 92k history rows %.3f s; file %.1f MB\n",
		      t_add, M, t_one, M / t_one, t_open, N + M, t_load, t_expire, t_hist,
		      t_purge, sb.st_size / 1e6);
	/* Timings are reported above, not asserted: bench/ holds the figures of record. */
	assert_true(t_open >= 0 && t_load >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(restart_and_unban, setup, teardown),
		cmocka_unit_test_setup_teardown(increment_history, setup, teardown),
		cmocka_unit_test_setup_teardown(history_walks, setup, teardown),
		cmocka_unit_test_setup_teardown(evidence_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(purge, setup, teardown),
		cmocka_unit_test_setup_teardown(kv_positions_cursors, setup, teardown),
		cmocka_unit_test_setup_teardown(crash_durability, setup, teardown),
		cmocka_unit_test_setup_teardown(corrupt_files, setup, teardown),
		cmocka_unit_test_setup_teardown(unusable_places, setup, teardown),
		cmocka_unit_test_setup_teardown(load_100k, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
