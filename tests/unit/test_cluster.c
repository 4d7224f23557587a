/*
 * test_cluster - the Redis link (cluster/cluster.h): [cluster] option
 * parsing, the bounded queue and backoff against a closed port, and - with a
 * real redis-server started on a free loopback port (skipped when it is not
 * installed) - two nodes in one loop: a ban reaches the other node, the later
 * end wins, an unban becomes a tombstone that a stale ban cannot beat, a newer
 * ban beats the tombstone, shared failure counts add up, greylist and
 * rate-limit updates are delivered, a node's own events are not echoed.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "cluster/cluster.h"
#include "core/clocks.h"
#include "core/kvlist.h"
#include "core/loop.h"
#include "core/strbuf.h"

static int parse(const char *const *kv, struct cluster_opts *o, char *err, size_t len)
{
	struct kvlist l = KVLIST_INIT;
	for (; *kv; kv += 2)
		kvlist_set(&l, kv[0], kv[1]);
	int r = cluster_opts_parse(&l, o, err, len);
	kvlist_free(&l);
	return r;
}

static void opts(void **state)
{
	(void)state;
	struct cluster_opts o;
	char err[256];
	const char *none[] = {"node", "a", NULL};
	assert_int_equal(parse(none, &o, err, sizeof err), 1);

	const char *full[] = {"redis", "redis://:s3cret@10.1.2.3:6380/4", "node", "mx1", "share",
			      "bans, greylist ratelimit", "timeout", "250ms", "queue", "100", NULL};
	assert_int_equal(parse(full, &o, err, sizeof err), 0);
	assert_string_equal(o.host, "10.1.2.3");
	assert_int_equal(o.port, 6380);
	assert_int_equal(o.db, 4);
	assert_string_equal(o.password, "s3cret");
	assert_string_equal(o.node, "mx1");
	assert_int_equal(o.share, CLUSTER_SHARE_BANS | CLUSTER_SHARE_GREYLIST | CLUSTER_SHARE_RATELIMIT);
	assert_true(o.timeout > 0.249 && o.timeout < 0.251);
	assert_int_equal(o.queue_max, 100);
	cluster_opts_free(&o);

	const char *unix_[] = {"redis", "unix:///run/redis/redis.sock?db=2", NULL};
	assert_int_equal(parse(unix_, &o, err, sizeof err), 0);
	assert_string_equal(o.unixpath, "/run/redis/redis.sock");
	assert_int_equal(o.db, 2);
	assert_int_equal(o.share, CLUSTER_SHARE_BANS);
	cluster_opts_free(&o);

	const char *v6[] = {"redis", "redis://[::1]:7000", NULL};
	assert_int_equal(parse(v6, &o, err, sizeof err), 0);
	assert_string_equal(o.host, "::1");
	assert_int_equal(o.port, 7000);
	cluster_opts_free(&o);

	const char *bad[][5] = {
		{"redis", "http://x", NULL},
		{"redis", "redis://h:99999", NULL},
		{"redis", "redis://h/x", NULL},
		{"redis", "redis://h", "share", "bans frobs", NULL},
		{"redis", "redis://h", "node", "a b", NULL},
		{"redis", "redis://h", "timeout", "soon", NULL},
		{"redis", "unix:relative", NULL},
		{"redis", "redis://h", "queue", "3", NULL},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = 0;
		assert_int_equal(parse(bad[i], &o, err, sizeof err), -1);
		assert_non_null(strstr(err, "[cluster]"));
	}
}

/* ---------- a host that records what it is told ---------- */

struct rec {
	char last_ban[128], last_unban[128];
	double ban_end, unban_t;
	int bans, unbans, counts, gl, rl, links_up;
	unsigned count;
	char ids[2][64];
	struct cluster_ban local;      /* reported by local_bans when local.id set */
};

static void r_ban(void *arg, const struct cluster_ban *b)
{
	struct rec *r = arg;
	snprintf(r->last_ban, sizeof r->last_ban, "%s %s %s", b->jail, b->id, b->node);
	r->ban_end = b->end;
	r->bans++;
}

static void r_unban(void *arg, const char *jail, const char *id, double t, const char *node)
{
	(void)node;
	struct rec *r = arg;
	snprintf(r->last_unban, sizeof r->last_unban, "%s %s", jail, id);
	r->unban_t = t;
	r->unbans++;
}

static void r_local(void *arg, struct cluster *c,
		    void (*emit)(struct cluster *c, const struct cluster_ban *b))
{
	struct rec *r = arg;
	if (r->local.id)
		emit(c, &r->local);
}

static void r_count(void *arg, const char *jail, const char *id, unsigned n)
{
	(void)jail;
	(void)id;
	struct rec *r = arg;
	r->count = n;
	r->counts++;
}

static void r_gl(void *arg, const char *t, double first, double last, unsigned count)
{
	(void)t;
	(void)first;
	(void)last;
	(void)count;
	((struct rec *)arg)->gl++;
}

static void r_rl(void *arg, const char *lim, const char *key, double t, double amount)
{
	(void)lim;
	(void)key;
	(void)t;
	(void)amount;
	((struct rec *)arg)->rl++;
}

static int r_load(void *arg, const char *name, char *buf, size_t len)
{
	struct rec *r = arg;
	const char *v = r->ids[strcmp(name, "bans") ? 1 : 0];
	if (!*v)
		return -1;
	snprintf(buf, len, "%s", v);
	return 0;
}

static void r_save(void *arg, const char *name, const char *id)
{
	struct rec *r = arg;
	snprintf(r->ids[strcmp(name, "bans") ? 1 : 0], sizeof r->ids[0], "%s", id);
}

static void r_link(void *arg, int up, const char *why)
{
	(void)why;
	if (up)
		((struct rec *)arg)->links_up++;
}

static struct cluster_host host_for(struct rec *r)
{
	struct cluster_host h = {r, r_ban, r_unban, r_local, r_count, r_gl, r_rl, r_load, r_save,
				 r_link};
	return h;
}

/* Runs the loop until cond() holds or ms pass. */
struct waiter {
	int (*cond)(void *);
	void *arg;
	uint64_t until;
	int ok;
};

static void w_tick(struct loop *l, void *arg)
{
	struct waiter *w = arg;
	if (w->cond && w->cond(w->arg)) {
		w->ok = 1;
		loop_stop(l);
		return;
	}
	if (loop_now_ms() >= w->until) {
		loop_stop(l);
		return;
	}
	loop_timer_add(l, 5, w_tick, w);
}

static int run_until(struct loop *l, int (*cond)(void *), void *arg, uint64_t ms)
{
	struct waiter w = {cond, arg, loop_now_ms() + ms, 0};
	loop_timer_add(l, 1, w_tick, &w);
	loop_run(l);
	return w.ok;
}

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	bind(s, (struct sockaddr *)&a, sizeof a);
	getsockname(s, (struct sockaddr *)&a, &len);
	close(s);
	return ntohs(a.sin_port);
}

static void closed_port(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct cluster_opts o = {0};
	o.host = "127.0.0.1";
	o.port = free_port();
	o.node = "x";
	o.share = 15;
	o.queue_max = 16;
	o.timeout = 0.2;
	struct rec r = {0};
	struct cluster_host h = host_for(&r);
	struct cluster *c = cluster_new(l, &o, &h);
	uint64_t t0 = loop_now_ms();
	for (int i = 0; i < 20; i++)
		cluster_publish_ban(c, "sshd", "192.0.2.1", clocks_real(), -1);
	assert_true(loop_now_ms() - t0 < 100);    /* publishing never waits */
	run_until(l, NULL, NULL, 400);
	struct strbuf s = STRBUF_INIT;
	cluster_status(c, 1, &s);
	assert_non_null(strstr(strbuf_str(&s), "\"state\":\"disconnected\""));
	assert_non_null(strstr(strbuf_str(&s), "\"queued\":16"));
	assert_non_null(strstr(strbuf_str(&s), "\"dropped\":4"));
	strbuf_free(&s);
	assert_false(cluster_connected(c));
	cluster_free(c);
	loop_free(l);
}

/* ---------- against a real redis-server ---------- */

static pid_t redis_pid;
static int redis_port;

static int redis_start(void)
{
	const char *bin = "/usr/bin/redis-server";
	if (access(bin, X_OK) != 0)
		return -1;
	redis_port = free_port();
	char port[16];
	snprintf(port, sizeof port, "%d", redis_port);
	redis_pid = fork();
	if (redis_pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(bin, bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
		      "no", "--dir", "/tmp", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)redis_port),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
		close(s);
		if (ok)
			return 0;
		usleep(20000);
	}
	return -1;
}

static void redis_stop(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
		redis_pid = 0;
	}
}

struct two {
	struct rec *a, *b;
	struct cluster *ca, *cb;
	int want;
};

static int both_up(void *arg)
{
	struct two *t = arg;
	return cluster_connected(t->ca) && cluster_connected(t->cb);
}

static int b_bans(void *arg)
{
	struct two *t = arg;
	return t->b->bans >= t->want;
}

static int b_unbans(void *arg)
{
	struct two *t = arg;
	return t->b->unbans >= t->want;
}

static int a_bans(void *arg)
{
	struct two *t = arg;
	return t->a->bans >= t->want;
}

static int counted(void *arg)
{
	struct two *t = arg;
	return t->b->counts >= t->want;
}

static int policy_in(void *arg)
{
	struct two *t = arg;
	return t->b->gl >= 1 && t->b->rl >= 1;
}

static void two_nodes(void **state)
{
	(void)state;
	if (redis_start() < 0) {
		redis_stop();
		skip();
	}
	struct loop *l = loop_new();
	struct cluster_opts o = {0};
	o.host = "127.0.0.1";
	o.port = redis_port;
	o.share = 15;
	o.timeout = 1;
	o.resync = 3600;
	struct rec ra = {0}, rb = {0};
	struct cluster_host ha = host_for(&ra), hb = host_for(&rb);
	o.node = "A";
	struct cluster *ca = cluster_new(l, &o, &ha);
	o.node = "B";
	struct cluster *cb = cluster_new(l, &o, &hb);
	struct two t = {&ra, &rb, ca, cb, 0};
	assert_true(run_until(l, both_up, &t, 3000));
	assert_true(run_until(l, NULL, NULL, 50) == 0);   /* both past the stream check */

	double now = clocks_real();
	/* a ban reaches B, not A (own events are not echoed) */
	cluster_publish_ban(ca, "sshd", "192.0.2.9", now, now + 600);
	t.want = 1;
	assert_true(run_until(l, b_bans, &t, 2000));
	assert_string_equal(rb.last_ban, "sshd 192.0.2.9 A");
	assert_true(rb.ban_end > now + 599 && rb.ban_end < now + 601);
	assert_int_equal(ra.bans, 0);
	/* a shorter ban changes nothing; a longer one travels */
	cluster_publish_ban(ca, "sshd", "192.0.2.9", now, now + 300);
	cluster_publish_ban(ca, "sshd", "192.0.2.9", now, now + 900);
	t.want = 2;
	assert_true(run_until(l, b_bans, &t, 2000));
	run_until(l, NULL, NULL, 100);
	assert_int_equal(rb.bans, 2);
	assert_true(rb.ban_end > now + 899);
	/* unban on A: a tombstone for B */
	cluster_publish_unban(ca, "sshd", "192.0.2.9", now + 1);
	t.want = 1;
	assert_true(run_until(l, b_unbans, &t, 2000));
	assert_string_equal(rb.last_unban, "sshd 192.0.2.9");
	/* B, back from a partition with its old ban, cannot resurrect it: the
	 * script answers with the tombstone and B is told to lift it */
	cluster_publish_ban(cb, "sshd", "192.0.2.9", now, now + 900);
	assert_true(run_until(l, NULL, NULL, 200) == 0);
	assert_int_equal(rb.unbans, 2);
	assert_int_equal(ra.bans, 0);
	/* a newer ban wins over the tombstone */
	cluster_publish_ban(cb, "sshd", "192.0.2.9", now + 5, now + 905);
	t.want = 1;
	assert_true(run_until(l, a_bans, &t, 2000));
	/* an older unban does not beat that newer ban */
	cluster_publish_unban(ca, "sshd", "192.0.2.9", now + 2);
	run_until(l, NULL, NULL, 200);
	assert_int_equal(rb.unbans, 2);
	/* anti-entropy: B holds a ban the index lacks; a resync publishes it */
	rb.local = (struct cluster_ban){"dovecot", "198.51.100.4", "B", now, now + 100};
	cluster_resync(cb);
	t.want = 1;
	assert_true(run_until(l, a_bans, &t, 2000));
	t.want = 2;
	assert_true(run_until(l, a_bans, &t, 2000));
	assert_non_null(strstr(ra.last_ban, "198.51.100.4"));
	/* shared counting: 2 on A + 1 on B = 3 */
	cluster_count_failure(ca, "sshd", "203.0.113.5", now, 600);
	cluster_count_failure(ca, "sshd", "203.0.113.5", now, 600);
	cluster_count_failure(cb, "sshd", "203.0.113.5", now, 600);
	t.want = 1;
	assert_true(run_until(l, counted, &t, 2000));
	assert_int_equal(rb.count, 3);
	/* greylist and rate-limit updates travel on the policy stream */
	cluster_publish_greylist(ca, "192.0.2.0/a@b/c@d", now, now, 1);
	cluster_publish_ratelimit(ca, "sasl/recipients", "alice", now, 3);
	assert_true(run_until(l, policy_in, &t, 2000));
	assert_int_equal(ra.gl, 0);
	/* positions were handed to the host for saving */
	assert_true(strchr(rb.ids[0], '-') != NULL);

	/* Redis goes away: both notice within the timeout, publishing still returns */
	redis_stop();
	run_until(l, NULL, NULL, 1500);
	assert_false(cluster_connected(ca));
	cluster_publish_ban(ca, "sshd", "192.0.2.10", now, now + 60);
	struct strbuf s = STRBUF_INIT;
	cluster_status(ca, 0, &s);
	assert_non_null(strstr(strbuf_str(&s), "disconnected"));
	assert_non_null(strstr(strbuf_str(&s), "queued 1/"));
	strbuf_free(&s);
	cluster_free(ca);
	cluster_free(cb);
	loop_free(l);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(opts),
		cmocka_unit_test(closed_port),
		cmocka_unit_test(two_nodes),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	redis_stop();
	return r;
}
