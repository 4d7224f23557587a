/*
 * daemon_policy - the policy service unit (see daemon_policy.h) and its seam
 * to `mxjail run`: the daemon's ban table answers the engine's "is this
 * client banned" question, and every reject/defer the engine reports is a
 * failure for the jails with `backend = policy` whose `policyevents` name
 * that check (e.g. [policy-spoof] with policyevents = spoof bans after
 * maxretry spoof attempts within findtime, like any jail). For the
 * standalone `mxjail policy` the same question is answered from a snapshot
 * of the daemon's live bans that a thread reads from its database
 * (daemon_policy_bans_*, at the end of this file).
 *
 * Timing: requests are answered from memory (policy_eval never does I/O);
 * the write-behind queue is handed to the writer as soon as about a hundred
 * changes are queued (looked at every 20 ms: small batches keep each stall of
 * the loop well under a millisecond) and at least once a second otherwise (kill -9 loses about a second of updates), and a short
 * timer expires a bounded number of entries. On the loop thread a flush only
 * serialises the changes (its cost is in `policy status`); the engine's
 * writer thread commits them to STATEDIR/policy-state.sqlite3.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#include "core/clocks.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"
#include "daemon/daemon_int.h"
#include "daemon/daemon_policy.h"
#include "metrics/metrics.h"
#include "policy/policy.h"
#include "policy/policysrv.h"
#include "store/store.h"
#include "store/store_ro.h"

#define FLUSH_CHECK_MS 20     /* how often the queue is looked at */
#define FLUSH_PENDING 128      /* flush at once from this many queued changes */
#define FLUSH_MAX_AGE 1.0      /* and at the latest this long after the last one */
#define EXPIRE_MS 100
#define EXPIRE_BUDGET 500

struct daemon_policy {
	struct loop *loop;
	struct store *store;
	struct policy_host host;      /* copied: the engine may keep the pointer */
	struct policy *engine;
	struct policysrv *srv;
	uint64_t flush_timer, expire_timer;
	int flush_failing;
	char *conftext;               /* the sections it was built from (reload compares) */
	unsigned long flushes;
	double flush_us, flush_max_us;     /* time spent committing state, for status */
	double last_flush;                 /* monotonic seconds */
	/* inside `mxjail run`: prefix lengths of live bans (is_banned) */
	uint64_t pfx4[2], pfx6[2];
	size_t pfx_seen_n;
	double pfx_built;                  /* monotonic seconds; 0 = never */
};

int daemon_policy_enabled(const struct config *cfg)
{
	return kvlist_get_bool(&cfg->mxjail, "policy.enabled", 0);
}

struct policy *daemon_policy_engine(struct daemon_policy *p)
{
	return p ? p->engine : NULL;
}

/* The policy's sections as one text, to tell whether a reload changed them. */
static char *conf_text(const struct config *cfg)
{
	static const char *const names[] = {"policy.", "greylist.", "ratelimit.", "spoof."};
	struct strbuf b = STRBUF_INIT;
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
		for (size_t i = 0; i < cfg->mxjail.n; i++) {
			const struct kv *kv = &cfg->mxjail.v[i];
			if (strncasecmp(kv->key, names[k], strlen(names[k])) == 0)
				strbuf_addf(&b, "%s=%s\n", kv->key, kv->value ? kv->value : "");
		}
	return strbuf_detach(&b);
}

static void eval_cb(void *arg, const struct policy_req *r, struct strbuf *out)
{
	struct daemon_policy *p = arg;
	policy_eval(p->engine, r, clocks_real(), out);
}

void daemon_policy_flush(struct daemon_policy *p)
{
	double t0 = clocks_mono() * 1e6;
	int r = policy_flush(p->engine, clocks_real());
	double took = clocks_mono() * 1e6 - t0;
	p->last_flush = (t0 + took) / 1e6;
	p->flushes++;
	p->flush_us += took;
	if (took > p->flush_max_us)
		p->flush_max_us = took;
	if (took >= 100000)
		log_debug("policy: saving state took %.0f ms", took / 1000);
	if (r < 0 && !p->flush_failing) {
		char why[256];
		policy_state_error(p->engine, why, sizeof why);
		log_warnx("policy: saving state: %s; kept in memory, retrying",
			  *why ? why : strerror(-r));
	}
	p->flush_failing = r < 0;
	if (p->store && store_flush(p->store) < 0)
		log_warnx("policy: state: %s", store_error(p->store));
}

static void on_flush(struct loop *l, void *arg)
{
	struct daemon_policy *p = arg;
	/* small commits often: each stalls the loop for about a microsecond
	 * per queued change, so none grows long at high request rates */
	size_t n = policy_pending(p->engine);
	if (n >= FLUSH_PENDING || (n && clocks_mono() - p->last_flush >= FLUSH_MAX_AGE))
		daemon_policy_flush(p);
	p->flush_timer = loop_timer_add(l, FLUSH_CHECK_MS, on_flush, p);
}

static void on_expire(struct loop *l, void *arg)
{
	struct daemon_policy *p = arg;
	policy_expire_step(p->engine, clocks_real(), EXPIRE_BUDGET);
	p->expire_timer = loop_timer_add(l, EXPIRE_MS, on_expire, p);
}

/* Postfix may keep hundreds to thousands of idle connections open; the usual
 * soft limit of 1024 descriptors would refuse them long before max_connections.
 * The soft limit is raised as far as the hard limit allows. */
static void raise_nofile(size_t conns)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rlim_t want = (rlim_t)conns + 1024;
	if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
		want = rl.rlim_max;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warnx("policy: cannot raise the open files limit to %llu: %s",
				  (unsigned long long)want, strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)conns + 64)
		log_warnx("policy: open files limit %llu allows fewer than max_connections = %zu",
			  (unsigned long long)rl.rlim_cur, conns);
}

struct daemon_policy *daemon_policy_new(struct loop *l, const struct config *cfg,
					struct store *st, const char *statefile,
					const struct policy_host *host, const char *listen,
					char *err, size_t errlen)
{
	struct kvlist sp = KVLIST_INIT, sg = KVLIST_INIT, sr = KVLIST_INIT, ss = KVLIST_INIT;
	config_section(cfg, "policy", &sp);
	config_section(cfg, "greylist", &sg);
	config_section(cfg, "ratelimit", &sr);
	config_section(cfg, "spoof", &ss);
	struct daemon_policy *p = xcalloc(1, sizeof *p);
	p->loop = l;
	p->store = st;
	struct policysrv_opts so = {0};
	const char *v = kvlist_get(&sp, "idle_timeout");
	if (v && *v)
		so.idle_timeout = strtod(v, NULL);
	v = kvlist_get(&sp, "max_connections");
	if (v && *v)
		so.max_conns = strtoul(v, NULL, 10);
	if (!listen) {
		listen = kvlist_get(&sp, "listen");
		if (!listen || !*listen)
			listen = DAEMON_POLICY_LISTEN_DEFAULT;
	}
	if (host)
		p->host = *host;
	raise_nofile(so.max_conns ? so.max_conns : POLICYSRV_MAX_CONNS_DEFAULT);
	p->engine = policy_open(&sp, &sg, &sr, &ss, statefile, st, &p->host, clocks_real(),
				err, errlen);
	if (p->engine && *err)
		log_warnx("policy: %s", err);
	if (p->engine)
		p->srv = policysrv_new(l, listen, &so, eval_cb, p, err, errlen);
	kvlist_free(&sp);
	kvlist_free(&sg);
	kvlist_free(&sr);
	kvlist_free(&ss);
	if (!p->engine || !p->srv) {
		daemon_policy_free(p);
		return NULL;
	}
	p->conftext = conf_text(cfg);
	p->last_flush = clocks_mono();
	p->flush_timer = loop_timer_add(l, FLUSH_CHECK_MS, on_flush, p);
	p->expire_timer = loop_timer_add(l, EXPIRE_MS, on_expire, p);
	return p;
}

void daemon_policy_free(struct daemon_policy *p)
{
	if (!p)
		return;
	policysrv_free(p->srv);
	if (p->engine) {
		daemon_policy_flush(p);
		policy_free(p->engine);
	}
	if (p->flush_timer)
		loop_timer_del(p->loop, p->flush_timer);
	if (p->expire_timer)
		loop_timer_del(p->loop, p->expire_timer);
	free(p->conftext);
	free(p);
}

int daemon_policy_is_verb(const char *verb)
{
	return !strcmp(verb, "policy") || !strcmp(verb, "greylist") || !strcmp(verb, "ratelimit");
}

static int fail(struct strbuf *out, const char *msg)
{
	strbuf_addf(out, "%s\n", msg);
	return -1;
}

static int ctl_run(struct daemon_policy *p, int argc, char **argv, int json, struct strbuf *out);

int daemon_policy_ctl(struct daemon_policy *p, int argc, char **argv, int json,
		      struct strbuf *out)
{
	size_t mark = out->len;
	int r = ctl_run(p, argc, argv, json, out);
	if (out->len > mark && out->s[out->len - 1] != '\n')
		strbuf_addc(out, '\n');
	return r;
}

static int ctl_run(struct daemon_policy *p, int argc, char **argv, int json, struct strbuf *out)
{
	const char *verb = argv[0], *sub = argc > 1 ? argv[1] : "";
	if (!p)
		return fail(out, "the policy service is not running here ([policy] enabled = no)");
	double now = clocks_real();
	int r;
	if (!strcmp(verb, "policy")) {
		if (strcmp(sub, "status") != 0 || argc != 2)
			return fail(out, "usage: policy status");
		if (json) {
			strbuf_adds(out, "{\"service\":");
			policysrv_format(p->srv, 1, out);
			strbuf_addf(out, ",\"state_commits\":%lu,\"state_commit_ms\":%.3f,"
				    "\"state_commit_max_ms\":%.3f,\"checks\":",
				    p->flushes, p->flush_us / 1000, p->flush_max_us / 1000);
			size_t mark = out->len;
			r = policy_status(p->engine, 1, out);
			while (out->len > mark && out->s[out->len - 1] == '\n')
				out->s[--out->len] = '\0';
			if (out->len == mark)
				strbuf_adds(out, "null");
			strbuf_adds(out, "}\n");
		} else {
			policysrv_format(p->srv, 0, out);
			strbuf_addf(out, "State commits: %lu, %.1f ms in total, longest %.1f ms\n",
				    p->flushes, p->flush_us / 1000, p->flush_max_us / 1000);
			r = policy_status(p->engine, 0, out);
		}
		return r < 0 ? -1 : 0;
	}
	if (!strcmp(verb, "greylist")) {
		if (!strcmp(sub, "list") && argc == 2)
			return policy_greylist_list(p->engine, json, now, out) < 0 ? -1 : 0;
		if (!strcmp(sub, "del") && argc == 3) {
			r = policy_greylist_del(p->engine, argv[2], now);
			if (r < 0)
				return fail(out, strerror(-r));
			if (json)
				strbuf_addf(out, "{\"deleted\":%d}\n", r);
			else
				strbuf_addf(out, "%d greylist entr%s deleted\n", r, r == 1 ? "y" : "ies");
			return 0;
		}
		return fail(out, "usage: greylist list | greylist del TRIPLET|CLIENT|SENDER");
	}
	if (!strcmp(verb, "ratelimit")) {
		if (!strcmp(sub, "list") && argc == 2)
			return policy_ratelimit_list(p->engine, json, now, out) < 0 ? -1 : 0;
		if (!strcmp(sub, "reset") && argc == 3) {
			r = policy_ratelimit_reset(p->engine, argv[2]);
			if (r < 0)
				return fail(out, strerror(-r));
			if (json)
				strbuf_addf(out, "{\"reset\":%d}\n", r);
			else
				strbuf_addf(out, "%d rate-limit window%s reset\n", r, r == 1 ? "" : "s");
			return 0;
		}
		return fail(out, "usage: ratelimit list | ratelimit reset KEY");
	}
	return fail(out, "not a policy verb");
}

/* ---------- inside `mxjail run` ---------- */

/* Prometheus: the service's own counters, and per check the engine's
 * passes/defers/rejects (policy_counters: no text is formatted per scrape). */
static void collect(struct metrics_buf *b, void *arg)
{
	struct daemon_policy *p = arg;
	struct policysrv_stats st;
	policysrv_stats(p->srv, &st);
	metrics_single(b, "mxjail_policy_connections", METRICS_GAUGE,
		       "Open connections to the policy service.", (double)st.conns);
	metrics_family(b, "mxjail_policy_connections_total", METRICS_COUNTER,
		       "Connections accepted, and refused (over the limit or no descriptor).");
	metrics_sample1(b, "result", "accepted", (double)st.accepted);
	metrics_sample1(b, "result", "refused", (double)st.refused);
	metrics_single(b, "mxjail_policy_requests_total", METRICS_COUNTER,
		       "Policy requests answered.", (double)st.requests);
	metrics_single(b, "mxjail_policy_malformed_total", METRICS_COUNTER,
		       "Malformed or oversized requests (closed without a reply).",
		       (double)st.malformed);
	metrics_single(b, "mxjail_policy_timeouts_total", METRICS_COUNTER,
		       "Connections closed idle or with a reply nobody read.", (double)st.timeouts);
	metrics_single(b, "mxjail_policy_state_commits_total", METRICS_COUNTER,
		       "Commits of greylist and rate-limit state.", (double)p->flushes);
	metrics_single(b, "mxjail_policy_state_commit_seconds_total", METRICS_COUNTER,
		       "Time spent in those commits (the event loop waits meanwhile).",
		       p->flush_us / 1e6);
	struct policy_counters pc;
	policy_counters(p->engine, &pc);
	if (!pc.n)
		return;
	metrics_family(b, "mxjail_policy_verdicts_total", METRICS_COUNTER,
		       "Verdicts per check: pass, defer, reject.");
	for (size_t i = 0; i < pc.n; i++) {
		const struct policy_check_counters *c = &pc.check[i];
		metrics_sample2(b, "check", c->name, "verdict", "pass", (double)c->passes);
		metrics_sample2(b, "check", c->name, "verdict", "defer", (double)c->defers);
		metrics_sample2(b, "check", c->name, "verdict", "reject", (double)c->rejects);
	}
}

/* The network of a with its first len bits (host bits cleared). */
static struct addr net_of(const struct addr *a, int len)
{
	struct addr n = *a;
	int bytes = n.family == 4 ? 4 : 16;
	for (int i = 0; i < bytes; i++) {
		int keep = len - i * 8;
		if (keep >= 8)
			continue;
		n.a[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
	}
	n.prefix = len;
	return n;
}

static void mask_set(uint64_t *m, int len)
{
	if (len >= 0 && len < 128)
		m[len / 64] |= 1ULL << (len % 64);
}

static void mask_one(struct daemon_ban *b, void *arg)
{
	struct daemon_policy *p = arg;
	if (b->a.family == 4 && b->a.prefix < 32)
		mask_set(p->pfx4, b->a.prefix);
	else if (b->a.family == 6 && b->a.prefix < 128)
		mask_set(p->pfx6, b->a.prefix);
}

/* Which prefix lengths the live bans use. The ban table is keyed by text,
 * so an address inside a banned network is found by looking up its network
 * at each length in use: usually none or one or two (manual CIDR bans,
 * banprefix6), not 32 or 128. The set is rebuilt by one walk of the table
 * when the number of bans changed and at least once a second (a ban and an
 * unban between two requests leave the count alone). A walk costs about
 * 10-20 ns per ban; with many bans changing fast it runs at most every
 * PFX_MIN_GAP seconds and meanwhile every length is tried (bounded, rare). */
#define PFX_MAX_AGE 1.0
#define PFX_MIN_GAP 0.1
#define PFX_SMALL 20000
static int prefixes_usable(struct daemon_policy *p, struct daemon *dm)
{
	double t = clocks_mono();
	int changed = dm->bans.n != p->pfx_seen_n;
	if (!changed && t - p->pfx_built < PFX_MAX_AGE)
		return 1;
	if (changed && dm->bans.n > PFX_SMALL && t - p->pfx_built < PFX_MIN_GAP)
		return 0;
	memset(p->pfx4, 0, sizeof p->pfx4);
	memset(p->pfx6, 0, sizeof p->pfx6);
	daemon_bans_foreach(dm, mask_one, p);
	p->pfx_seen_n = dm->bans.n;
	p->pfx_built = t;
	return 1;
}

static int banned_in(struct daemon *dm, const char *id, double now)
{
	for (size_t i = 0; i < dm->set->njails; i++) {
		const struct daemon_ban *b = daemon_ban_find(dm, dm->set->jails[i]->name, id);
		/* lifted a little late by the expiry timer: already over */
		if (b && (b->end < 0 || b->end > now))
			return 1;
	}
	return 0;
}

static int is_banned(void *arg, const struct addr *a, double now)
{
	struct daemon *dm = arg;
	if (!dm->bans.n || !dm->set)
		return 0;
	char id[ADDR_STRLEN];
	addr_format(a, id, sizeof id);
	if (banned_in(dm, id, now))
		return 1;
	struct daemon_policy *p = dm->policy;
	int hostlen = a->family == 4 ? 32 : 128;
	uint64_t all[2] = {~0ULL, ~0ULL};
	const uint64_t *m = all;
	if (p && prefixes_usable(p, dm))
		m = a->family == 4 ? p->pfx4 : p->pfx6;
	for (int len = hostlen - 1; len >= 0; len--) {
		if (!(m[len / 64] & (1ULL << (len % 64))))
			continue;
		struct addr n = net_of(a, len);
		addr_format(&n, id, sizeof id);
		if (banned_in(dm, id, now))
			return 1;
	}
	return 0;
}

/* policyevents: words (blank or comma separated) naming checks; "all" = every one. */
static int wants(const char *list, const char *check)
{
	if (!list || !*list)
		return 0;
	size_t cl = strlen(check);
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')
			p++;
		const char *e = p;
		while (*e && *e != ' ' && *e != ',' && *e != '\t' && *e != '\n')
			e++;
		size_t n = (size_t)(e - p);
		if (n && ((n == cl && strncasecmp(p, check, n) == 0) ||
			  (n == 3 && strncasecmp(p, "all", 3) == 0)))
			return 1;
		p = e;
	}
	return 0;
}

/* greylist defers are routine (most first attempts) and Postfix logs them
 * too: one log write per request would cost more than the check */
static enum log_level event_level(const char *check)
{
	return strcmp(check, "greylist") == 0 ? LOG_LVL_DEBUG : LOG_LVL_INFO;
}

/* Whether jail j counts this check's events (backend = policy, policyevents). */
static int jail_counts(const struct daemon_jail *j, const char *check)
{
	const char *be = kvlist_get(&j->opts, "backend");
	return be && strcasecmp(be, "policy") == 0 &&
	       wants(kvlist_get(&j->opts, "policyevents"), check);
}

static void on_event(void *arg, const char *check, const char *id, const char *key,
		     const char *line, double now)
{
	struct daemon *dm = arg;
	(void)key;
	log_msg(event_level(check), "%s", line);
	for (size_t i = 0; dm->set && i < dm->set->njails; i++) {
		struct daemon_jail *j = dm->set->jails[i];
		if (!jail_counts(j, check))
			continue;
		char *lines[] = {(char *)line};
		daemon_on_failure(j, id, now, lines, 1, NULL);
	}
}

/* Whether on_event() would log this check's event or feed it to a jail. */
static int want_event(void *arg, const char *check)
{
	struct daemon *dm = arg;
	if (log_enabled(event_level(check)))
		return 1;
	for (size_t i = 0; dm->set && i < dm->set->njails; i++)
		if (jail_counts(dm->set->jails[i], check))
			return 1;
	return 0;
}

int daemon_policy_start(struct daemon *dm, const struct config *cfg)
{
	if (!daemon_policy_enabled(cfg))
		return 0;
	struct policy_host host = {.arg = dm, .is_banned = is_banned, .on_event = on_event,
				   .want_event = want_event,
				   .on_greylist_update = daemon_cluster_greylist_update,
				   .on_ratelimit_add = daemon_cluster_ratelimit_add};
	char err[512];
	char *statefile = xasprintf("%s/policy-state.sqlite3", dm->statedir);
	dm->policy = daemon_policy_new(dm->loop, cfg, dm->store, statefile, &host, NULL, err,
				       sizeof err);
	free(statefile);
	if (!dm->policy) {
		log_msg(LOG_LVL_ERROR, "policy service: %s", err);
		fprintf(stderr, "mxjail run: policy service: %s\n", err);
		return -1;
	}
	metrics_register(daemon_metrics(dm), collect, dm->policy);
	log_info("policy service started");
	return 0;
}

void daemon_policy_stop(struct daemon *dm)
{
	if (dm->policy && dm->metrics)
		metrics_unregister(dm->metrics, collect, dm->policy);
	daemon_policy_free(dm->policy);
	dm->policy = NULL;
}

/* Reload: the service is rebuilt only when its sections changed, and only
 * after the new ones have been checked, so a typo keeps the running one. The
 * old engine's state is committed first and the new one loads it back;
 * Postfix reconnects (its open connections are closed). */
void daemon_policy_reload(struct daemon *dm, const struct config *cfg)
{
	if (!daemon_policy_enabled(cfg)) {
		if (dm->policy) {
			daemon_policy_stop(dm);
			log_notice("policy service stopped ([policy] enabled = no)");
		}
		return;
	}
	char *t = conf_text(cfg);
	int same = dm->policy && strcmp(t, dm->policy->conftext) == 0;
	free(t);
	if (same)
		return;
	struct kvlist sp = KVLIST_INIT, sg = KVLIST_INIT, sr = KVLIST_INIT, ss = KVLIST_INIT;
	config_section(cfg, "policy", &sp);
	config_section(cfg, "greylist", &sg);
	config_section(cfg, "ratelimit", &sr);
	config_section(cfg, "spoof", &ss);
	char err[512] = "";
	struct policy *check = policy_new(&sp, &sg, &sr, &ss, NULL, NULL, clocks_real(), err,
					  sizeof err);
	kvlist_free(&sp);
	kvlist_free(&sg);
	kvlist_free(&sr);
	kvlist_free(&ss);
	if (!check) {
		log_warnx("reload: policy service: %s; %s", err,
			  dm->policy ? "the running one stays" : "not started");
		return;
	}
	policy_free(check);
	int had = dm->policy != NULL;
	daemon_policy_stop(dm);
	if (daemon_policy_start(dm, cfg) == 0)
		log_notice("policy service %s", had ? "restarted with the new settings" : "started");
}

/* ---------- standalone: the daemon's bans read from its database ---------- */

/* One snapshot of the daemon's live bans, built on the refresh thread and
 * never changed after it is handed over: open addressing keyed by the
 * address bits and prefix length, plus which prefix lengths occur, so a
 * lookup is one probe for the host and one per length in use. */
struct banent {
	struct addr a;                 /* family 0 = empty slot */
	double end;                    /* -1 = forever */
};

struct banidx {
	struct banent *v;
	size_t cap, n;
	uint64_t pfx4[2], pfx6[2];
	int ok;                        /* the read worked (else msg says why) */
	char msg[512];
};

struct daemon_policy_bans {
	char *path;
	double refresh;
	struct banidx *cur;            /* loop thread only */
	_Atomic(struct banidx *) next; /* handed over by the refresh thread */
	char lastmsg[512];             /* last problem logged (loop thread) */
	pthread_t th;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;                      /* under mu */
};

static uint64_t addr_hash(const struct addr *a)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(a->family * 131 + a->prefix);
	int bytes = a->family == 4 ? 4 : 16;
	for (int i = 0; i < bytes; i++)
		h = (h ^ a->a[i]) * 1099511628211ULL;
	return h ^ (h >> 29);
}

static int addr_same(const struct addr *x, const struct addr *y)
{
	return x->family == y->family && x->prefix == y->prefix &&
	       memcmp(x->a, y->a, x->family == 4 ? 4 : 16) == 0;
}

static void banidx_free(struct banidx *x)
{
	if (x) {
		free(x->v);
		free(x);
	}
}

static void banidx_put(struct banidx *x, const struct addr *a, double end)
{
	if ((x->n + 1) * 2 > x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 1024;
		struct banent *v = xcalloc(cap, sizeof *v);
		for (size_t i = 0; i < x->cap; i++) {
			if (!x->v[i].a.family)
				continue;
			size_t k = addr_hash(&x->v[i].a) & (cap - 1);
			while (v[k].a.family)
				k = (k + 1) & (cap - 1);
			v[k] = x->v[i];
		}
		free(x->v);
		x->v = v;
		x->cap = cap;
	}
	size_t k = addr_hash(a) & (x->cap - 1);
	while (x->v[k].a.family) {
		if (addr_same(&x->v[k].a, a)) {
			/* the same network banned by several jails: the longest ban */
			if (x->v[k].end >= 0 && (end < 0 || end > x->v[k].end))
				x->v[k].end = end;
			return;
		}
		k = (k + 1) & (x->cap - 1);
	}
	x->v[k].a = *a;
	x->v[k].end = end;
	x->n++;
	if (a->family == 4 && a->prefix < 32)
		mask_set(x->pfx4, a->prefix);
	else if (a->family == 6 && a->prefix < 128)
		mask_set(x->pfx6, a->prefix);
}

static void banidx_cb(void *arg, const char *jail, const char *id, double end)
{
	struct banidx *x = arg;
	struct addr a;
	(void)jail;
	/* failure ids that are not addresses cannot match a client */
	if (addr_parse_cidr(id, strlen(id), &a) == 0)
		banidx_put(x, &a, end);
}

static int banidx_has(const struct banidx *x, const struct addr *a, double now)
{
	if (!x || !x->n)
		return 0;
	int hostlen = a->family == 4 ? 32 : 128;
	const uint64_t *m = a->family == 4 ? x->pfx4 : x->pfx6;
	for (int len = hostlen; len >= 0; len--) {
		if (len < hostlen && !(m[len / 64] & (1ULL << (len % 64))))
			continue;
		struct addr n = len == hostlen ? *a : net_of(a, len);
		n.prefix = len;
		for (size_t k = addr_hash(&n) & (x->cap - 1); x->v[k].a.family;
		     k = (k + 1) & (x->cap - 1))
			if (addr_same(&x->v[k].a, &n))
				return x->v[k].end < 0 || x->v[k].end > now;
	}
	return 0;
}

/* The refresh thread: reads the file, builds a snapshot, hands it over (a
 * snapshot the loop has not taken yet is replaced and freed here). The read
 * never runs on the loop thread: 100,000 bans take tens of milliseconds. */
static void *bans_thread(void *arg)
{
	struct daemon_policy_bans *b = arg;
	for (;;) {
		struct banidx *x = xcalloc(1, sizeof *x);
		long r = store_ro_live_bans(b->path, clocks_real(), 200, banidx_cb, x, x->msg, sizeof x->msg);
		x->ok = r >= 0 || r == -ENOENT;   /* no daemon database: no bans */
		if (r == -ENOENT)
			x->msg[0] = '\0';
		struct banidx *old = atomic_exchange(&b->next, x);
		banidx_free(old);
		pthread_mutex_lock(&b->mu);
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		double t = (double)until.tv_nsec / 1e9 + b->refresh;
		until.tv_sec += (time_t)t;
		until.tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
		while (!b->stop && pthread_cond_timedwait(&b->cv, &b->mu, &until) == 0)
			;
		int stop = b->stop;
		pthread_mutex_unlock(&b->mu);
		if (stop)
			return NULL;
	}
}

struct daemon_policy_bans *daemon_policy_bans_new(const char *dbpath, double refresh)
{
	struct daemon_policy_bans *b = xcalloc(1, sizeof *b);
	b->path = xstrdup(dbpath);
	b->refresh = refresh > 0.05 ? refresh : DAEMON_POLICY_BANS_REFRESH;
	atomic_init(&b->next, NULL);
	pthread_mutex_init(&b->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* the thread takes no signals: the loop receives them (signalfd), and
	 * an unblocked SIGTERM landing here would kill the process */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&b->th, NULL, bans_thread, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e)
		log_warnx("policy: cannot start the thread reading bans from %s: %s; "
			  "no banned-client check", dbpath, strerror(e));
	else
		b->started = 1;
	return b;
}

void daemon_policy_bans_free(struct daemon_policy_bans *b)
{
	if (!b)
		return;
	if (b->started) {
		pthread_mutex_lock(&b->mu);
		b->stop = 1;
		pthread_cond_signal(&b->cv);
		pthread_mutex_unlock(&b->mu);
		pthread_join(b->th, NULL);
	}
	banidx_free(atomic_exchange(&b->next, NULL));
	banidx_free(b->cur);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b->path);
	free(b);
}

/* Takes a newer snapshot when the thread left one (an atomic load per
 * request otherwise); a failed read keeps the previous bans. */
static void bans_take(struct daemon_policy_bans *b)
{
	if (!atomic_load_explicit(&b->next, memory_order_acquire))
		return;
	struct banidx *x = atomic_exchange(&b->next, NULL);
	if (!x)
		return;
	if (strcmp(x->msg, b->lastmsg) != 0) {
		if (*x->msg)
			log_warnx("policy: daemon's bans: %s%s", x->msg,
				  b->cur ? "; using the last bans read" : "");
		else if (*b->lastmsg)
			log_notice("policy: reading the daemon's bans from %s again", b->path);
		snprintf(b->lastmsg, sizeof b->lastmsg, "%s", x->msg);
	}
	if (!x->ok) {
		banidx_free(x);
		return;
	}
	if (!b->cur || b->cur->n != x->n)
		log_debug("policy: %zu live bans read from %s", x->n, b->path);
	banidx_free(b->cur);
	b->cur = x;
}

int daemon_policy_bans_check(void *arg, const struct addr *a, double now)
{
	struct daemon_policy_bans *b = arg;
	bans_take(b);
	return banidx_has(b->cur, a, now);
}

size_t daemon_policy_bans_count(struct daemon_policy_bans *b)
{
	bans_take(b);
	return b->cur ? b->cur->n : 0;
}
