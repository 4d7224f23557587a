/*
 * test_policy_state - the policy engine's state file and its writer thread
 * (policy_open, pwriter.c): round trip across restarts with the queue
 * drained at shutdown, migration of rows an earlier version kept in the
 * daemon's store, a file of the earlier table layout converted, kill -9 of
 * a process that flushes like the daemon (what was flushed more than a
 * second before the kill is there), a writer held
 * up by a lock (flushes keep returning, the queue stays bounded, the changes
 * coalesce and all arrive once the lock goes), and a damaged file moved
 * aside.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "core/kvlist.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "policy/policy.h"
#include "policy/pwriter.h"
#include "store/store.h"

#define T0 1700000000.0
#define GL "delay=60;auto_whitelist_clients=0;whitelist_clients=/nonexistent/a;" \
	   "whitelist_recipients=/nonexistent/b"

static void kv(struct kvlist *l, const char *spec)
{
	char *s = xstrdup(spec ? spec : ""), *save = NULL;
	for (char *t = strtok_r(s, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(t, '=');
		if (!eq)
			continue;
		*eq = '\0';
		kvlist_set(l, t, eq + 1);
	}
	free(s);
}

/* An engine with greylisting and one rate limit. */
static struct policy *mk(const char *statefile, struct store *legacy, double now)
{
	struct kvlist p = KVLIST_INIT, g = KVLIST_INIT, r = KVLIST_INIT;
	char err[512] = "x";
	kv(&p, "checks=greylist ratelimit");
	kv(&g, GL);
	kv(&r, "s=sasl_username: 1000 recipients / 1h");
	struct policy *e = statefile
		? policy_open(&p, &g, &r, NULL, statefile, legacy, NULL, now, err, sizeof(err))
		: policy_new(&p, &g, &r, NULL, legacy, NULL, now, err, sizeof(err));
	if (!e)
		fail_msg("policy: %s", err);
	kvlist_free(&p);
	kvlist_free(&g);
	kvlist_free(&r);
	return e;
}

static void eval_triplet(struct policy *p, struct policy_parser *pp, struct policy_req *r,
			 unsigned i, double now)
{
	char buf[512], err[128];
	int n = snprintf(buf, sizeof(buf),
			 "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=%u.%u.%u.1\n"
			 "client_name=unknown\nsender=s@example.org\nrecipient=r@example.net\n"
			 "sasl_username=u%u\nrecipient_count=1\n\n",
			 10 + (i >> 16), (i >> 8) & 255, i & 255, i % 7);
	long got = policy_parser_feed(pp, buf, (size_t)n, r, err, sizeof(err));
	assert_int_equal(got, n);
	struct strbuf out = STRBUF_INIT;
	policy_eval(p, r, now, &out);
	strbuf_free(&out);
}

/* Number of greylist triplets the engine holds. */
static size_t triplets(struct policy *p, double now)
{
	struct strbuf s = STRBUF_INIT;
	policy_greylist_list(p, 1, now, &s);
	size_t n = 0;
	for (const char *q = s.s ? s.s : ""; (q = strstr(q, "\"client\":")); q++)
		n++;
	strbuf_free(&s);
	return n;
}

static int has_triplet(struct policy *p, unsigned i, double now)
{
	struct strbuf s = STRBUF_INIT;
	char want[128];
	snprintf(want, sizeof(want), "\"client\":\"%u.%u.%u.0\"", 10 + (i >> 16), (i >> 8) & 255,
		 i & 255);
	policy_greylist_list(p, 1, now, &s);
	int r = s.s && strstr(s.s, want) != NULL;
	strbuf_free(&s);
	return r;
}

static char *tmpdir(void)
{
	char *d = xstrdup("/tmp/mxjail-test-pws-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void rmdir_all(char *d)
{
	char *cmd = xasprintf("rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(d);
}

/* A state file in a fresh directory, and a parser and request to feed the
 * engine with. */
struct env {
	char *dir, *path;
	struct policy_parser *pp;
	struct policy_req r;
};

static void env_open(struct env *e)
{
	e->dir = tmpdir();
	e->path = xasprintf("%s/policy-state.sqlite3", e->dir);
	e->pp = policy_parser_new();
	policy_req_init(&e->r);
}

static void env_close(struct env *e)
{
	policy_req_free(&e->r);
	policy_parser_free(e->pp);
	free(e->path);
	rmdir_all(e->dir);
}

/* ---- round trip, drained at shutdown ---- */

static void round_trip(void **state)
{
	(void)state;
	struct env e;
	env_open(&e);

	struct policy *p = mk(e.path, NULL, T0);
	for (unsigned i = 0; i < 3000; i++) {
		eval_triplet(p, e.pp, &e.r, i, T0 + i * 0.01);
		if (i % 500 == 250)
			assert_int_equal(policy_flush(p, T0 + i * 0.01), 0);
	}
	/* the last changes are still queued: policy_free hands them over */
	assert_true(policy_pending(p) > 0);
	policy_free(p);

	p = mk(e.path, NULL, T0 + 40);
	assert_int_equal(triplets(p, T0 + 40), 3000);
	/* the retry after the delay passes, from loaded state */
	eval_triplet(p, e.pp, &e.r, 17, T0 + 100);
	char err[64];
	assert_int_equal(policy_state_error(p, err, sizeof(err)), 0);
	assert_int_equal(policy_flush(p, T0 + 100), 0);
	struct strbuf st = STRBUF_INIT;
	policy_status(p, 1, &st);
	assert_non_null(strstr(st.s, ",\"state\":{\"commits\":"));
	assert_non_null(strstr(st.s, "\"error\":null}}"));
	strbuf_reset(&st);
	policy_status(p, 0, &st);
	assert_non_null(strstr(st.s, "state file: "));
	strbuf_free(&st);
	assert_int_equal(policy_greylist_del(p, "10.0.5.1", T0 + 101), 1);
	policy_free(p);

	/* several restarts in a row, each with a few changes */
	for (int k = 0; k < 3; k++) {
		p = mk(e.path, NULL, T0 + 200 + k);
		eval_triplet(p, e.pp, &e.r, 5000 + (unsigned)k, T0 + 200 + k);
		policy_flush(p, T0 + 200 + k);
		policy_free(p);
	}
	p = mk(e.path, NULL, T0 + 300);
	assert_int_equal(triplets(p, T0 + 300), 3000 - 1 + 3);
	assert_false(has_triplet(p, 5, T0 + 300));
	assert_true(has_triplet(p, 5002, T0 + 300));
	policy_free(p);

	env_close(&e);
}

/* ---- rows of an earlier version in the daemon's store ---- */

static void migration(void **state)
{
	(void)state;
	char *dir = tmpdir();
	char *db = xasprintf("%s/mxjail.sqlite3", dir), *path = xasprintf("%s/ps.sqlite3", dir);
	char msg[256];
	struct store *st = NULL;
	struct policy_parser *pp = policy_parser_new();
	struct policy_req r;
	policy_req_init(&r);
	assert_true(store_open(db, NULL, &st, msg, sizeof(msg)) >= 0);
	struct policy *p = mk(NULL, st, T0);   /* the old way: rows in the store */
	for (unsigned i = 0; i < 100; i++)
		eval_triplet(p, pp, &r, i, T0);
	assert_int_equal(policy_flush(p, T0), 0);
	policy_free(p);

	p = mk(path, st, T0 + 10);
	assert_int_equal(triplets(p, T0 + 10), 100);
	policy_free(p);
	/* the store's rows are gone; the file has them */
	void *v = NULL;
	size_t len = 0;
	assert_int_equal(store_kv_get(st, "greylist", "M", T0 + 10, &v, &len, NULL), -ENOENT);
	p = mk(path, st, T0 + 20);
	assert_int_equal(triplets(p, T0 + 20), 100);
	policy_free(p);
	st = store_close(st);

	policy_req_free(&r);
	policy_parser_free(pp);
	free(db);
	free(path);
	rmdir_all(dir);
}

/* ---- a file of the earlier layout (WITHOUT ROWID) ---- */

static char *table_sql(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	char *sql = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE name = 'prow'",
					    -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		sql = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return sql;
}

static void old_layout(void **state)
{
	(void)state;
	struct env e;
	env_open(&e);

	struct policy *p = mk(e.path, NULL, T0);
	for (unsigned i = 0; i < 500; i++)
		eval_triplet(p, e.pp, &e.r, i, T0);
	policy_free(p);
	char *sql = table_sql(e.path);
	assert_non_null(sql);
	assert_null(strstr(sql, "WITHOUT ROWID"));
	free(sql);

	/* the same rows as an earlier version kept them */
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(e.path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN;"
				      " CREATE TABLE old (ns TEXT NOT NULL, key TEXT NOT NULL,"
				      "  val BLOB NOT NULL, expires REAL NOT NULL,"
				      "  PRIMARY KEY (ns, key)) WITHOUT ROWID;"
				      " INSERT INTO old SELECT ns, key, val, expires FROM prow;"
				      " DROP TABLE prow; ALTER TABLE old RENAME TO prow; COMMIT",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	sql = table_sql(e.path);
	assert_non_null(strstr(sql, "WITHOUT ROWID"));
	free(sql);

	p = mk(e.path, NULL, T0 + 10);
	assert_int_equal(triplets(p, T0 + 10), 500);
	eval_triplet(p, e.pp, &e.r, 900, T0 + 10);
	policy_free(p);
	sql = table_sql(e.path);
	assert_null(strstr(sql, "WITHOUT ROWID"));
	free(sql);
	p = mk(e.path, NULL, T0 + 20);
	assert_int_equal(triplets(p, T0 + 20), 501);
	policy_free(p);

	env_close(&e);
}

/* ---- kill -9 ---- */

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The child evaluates new triplets and flushes every 50 ms (the daemon's
 * check interval); after each flush it reports how many it had evaluated.
 * The parent kills it; whatever was flushed a second before the kill must be
 * in the file (the writer commits within milliseconds of a flush). */
static void kill9(void **state)
{
	(void)state;
	char *dir = tmpdir();
	char *path = xasprintf("%s/policy-state.sqlite3", dir);
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		struct policy *p = mk(path, NULL, T0);
		struct policy_parser *pp = policy_parser_new();
		struct policy_req r;
		policy_req_init(&r);
		double last = mono();
		for (unsigned i = 0;; i++) {
			eval_triplet(p, pp, &r, i, T0 + i * 0.001);
			if (mono() - last >= 0.05) {
				policy_flush(p, T0 + i * 0.001);
				last = mono();
				unsigned n = i + 1;
				if (write(fds[1], &n, sizeof(n)) != sizeof(n))
					_exit(1);
			}
			if (i % 8 == 0)
				usleep(1000);   /* a service's pace, not a busy loop */
		}
	}
	close(fds[1]);
	struct { double t; unsigned n; } seen[1024];
	size_t ns = 0;
	double start = mono();
	while (mono() - start < 2.5 && ns < 1024) {
		unsigned n;
		if (read(fds[0], &n, sizeof(n)) != sizeof(n))
			break;
		seen[ns].t = mono();
		seen[ns++].n = n;
	}
	double tkill = mono();
	kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	close(fds[0]);
	assert_true(ns > 10);
	unsigned safe = 0, last = seen[ns - 1].n;
	for (size_t i = 0; i < ns; i++)
		if (tkill - seen[i].t >= 1.0)
			safe = seen[i].n;
	assert_true(safe > 0);

	struct policy *p = mk(path, NULL, T0 + 5);
	size_t have = triplets(p, T0 + 5);
	print_message("kill -9: %u triplets evaluated and flushed, %zu in the file, "
		      "%u flushed >= 1 s before the kill\n", last, have, safe);
	assert_true(have >= safe);
	for (unsigned i = 0; i < safe; i += safe / 10 + 1)
		assert_true(has_triplet(p, i, T0 + 5));
	assert_true(has_triplet(p, safe - 1, T0 + 5));
	policy_free(p);
	free(path);
	rmdir_all(dir);
}

/* ---- a process that forks after opening (a daemon detaching) ---- */

static void fork_after_open(void **state)
{
	(void)state;
	char *dir = tmpdir();
	char *path = xasprintf("%s/policy-state.sqlite3", dir);
	struct policy *p = mk(path, NULL, T0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the child goes on with the engine, as daemon(3)'s child does */
		alarm(20);
		struct policy_parser *pp = policy_parser_new();
		struct policy_req r;
		policy_req_init(&r);
		for (unsigned i = 0; i < 500; i++)
			eval_triplet(p, pp, &r, i, T0 + 1);
		policy_flush(p, T0 + 1);
		for (unsigned i = 500; i < 700; i++)
			eval_triplet(p, pp, &r, i, T0 + 2);
		policy_free(p);   /* drains */
		policy_req_free(&r);
		policy_parser_free(pp);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the parent's copy is dropped the way daemon(3)'s parent exits */
	policy_free(p);
	p = mk(path, NULL, T0 + 3);
	assert_int_equal(triplets(p, T0 + 3), 700);
	policy_free(p);
	free(path);
	rmdir_all(dir);
}

/* ---- a writer that cannot commit ---- */

static void writer_held_up(void **state)
{
	(void)state;
	struct env e;
	env_open(&e);
	struct policy *p = mk(e.path, NULL, T0);

	/* another connection holds the write lock: every commit of the writer
	 * waits out its busy timeout and fails */
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(e.path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	size_t most = 0;
	unsigned i;
	for (i = 0; i < 4000; i++) {
		eval_triplet(p, e.pp, &e.r, i, T0 + i * 0.001);
		/* the same keys again: they coalesce in the queue */
		eval_triplet(p, e.pp, &e.r, i / 2, T0 + i * 0.001);
		if (i % 100 == 99) {
			policy_flush(p, T0 + i * 0.001);   /* returns at once */
			if (policy_pending(p) > most)
				most = policy_pending(p);
		}
	}
	/* three batches went to the writer, the rest waits here, each key once */
	assert_true(most > 0);
	assert_true(policy_pending(p) <= 2 * 4000);
	usleep(2500 * 1000);   /* a failed commit (2 s busy timeout) */
	char why[256];
	int rc = policy_flush(p, T0 + 5);
	policy_state_error(p, why, sizeof(why));
	print_message("writer held up: flush returns %d (%s), %zu keys waiting at most\n", rc, why,
		      most);
	assert_true(rc < 0);
	assert_true(*why);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	/* the writer catches up on its next try */
	for (int k = 0; k < 100 && policy_pending(p); k++) {
		policy_flush(p, T0 + 6);
		usleep(50 * 1000);
	}
	policy_free(p);
	p = mk(e.path, NULL, T0 + 7);
	assert_int_equal(triplets(p, T0 + 7), 4000);
	policy_free(p);

	env_close(&e);
}

/* ---- a damaged file ---- */

static void damaged_file(void **state)
{
	(void)state;
	char *dir = tmpdir();
	char *path = xasprintf("%s/policy-state.sqlite3", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 2000; i++)
		fputs("this is not a database ", f);
	fclose(f);
	struct kvlist pk = KVLIST_INIT;
	kv(&pk, "checks=greylist");
	char err[512];
	struct policy *p = policy_open(&pk, NULL, NULL, NULL, path, NULL, NULL, T0, err,
				       sizeof(err));
	assert_non_null(p);
	assert_non_null(strstr(err, "moved to"));
	policy_free(p);
	kvlist_free(&pk);
	/* no file at all where it cannot be created: an error, no crash */
	char *bad = xasprintf("%s/no/such/dir/state", dir);
	struct kvlist pk2 = KVLIST_INIT;
	p = policy_open(&pk2, NULL, NULL, NULL, bad, NULL, NULL, T0, err, sizeof(err));
	assert_null(p);
	assert_non_null(strstr(err, "policy state"));
	free(bad);
	free(path);
	rmdir_all(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(migration),
		cmocka_unit_test(old_layout),
		cmocka_unit_test(kill9),
		cmocka_unit_test(fork_after_open),
		cmocka_unit_test(writer_held_up),
		cmocka_unit_test(damaged_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
