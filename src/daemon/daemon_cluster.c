/*
 * daemon_cluster - `mxjail run` as one node of a cluster: the seam between
 * the daemon's ban table and the Redis link (cluster/cluster.h).
 *
 * OUTGOING: daemon_ban.c calls daemon_cluster_ban() for every local ban and
 * prolongation, daemon_cluster_unban() for an explicit unban (a tombstone;
 * expiry needs none, every node computes the same end), and
 * daemon_cluster_failure() for every failure of a jail with shared counting.
 * The policy engine's update hooks publish greylist triplets and rate-limit
 * additions. All of them only queue; Redis is never waited for.
 *
 * INCOMING: remote bans go through the daemon's normal ban path
 * (daemon_ban_addr: store, log line, firewall, command actions) in the jail
 * of the same name (or [cluster] fallback_jail), after the jail's never-ban
 * check (ignoreip, ignoreself, ignorecommand); then the ban's time of ban and
 * end are set to the remote ones, so the remaining time is the same on every
 * node. A remote ban for an address banned here only moves the end later.
 * While a remote event is applied `applying` is set, so the hooks do not
 * publish it back. A tombstone lifts a local ban only when that ban is not
 * newer than the unban.
 *
 * The stream positions are kept in the store's key/value table ("cluster"
 * namespace), committed with the turn's other state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions/fw.h"
#include "cluster/cluster.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timefmt.h"
#include "core/xmalloc.h"
#include "daemon/daemon_int.h"
#include "daemon/daemon_policy.h"
#include "metrics/metrics.h"
#include "policy/policy.h"
#include "store/store.h"

struct daemon_cluster {
	struct cluster *c;
	int applying;
	uint64_t rearm_timer;
	unsigned long skipped_ignored, skipped_nojail;
};

/* Ends set from remote bans can be earlier than the timer the ban path
 * armed; one re-arm after a burst instead of a table walk per ban. */
static void on_rearm(struct loop *l, void *arg)
{
	(void)l;
	struct daemon *dm = arg;
	dm->cluster->rearm_timer = 0;
	daemon_expiry_arm(dm);
}

static void rearm(struct daemon *dm)
{
	if (!dm->cluster->rearm_timer)
		dm->cluster->rearm_timer = loop_timer_add(dm->loop, 1, on_rearm, dm);
}

static struct daemon_jail *jail_for(struct daemon *dm, const char *name)
{
	if (!dm->set)
		return NULL;
	struct daemon_jail *j = daemon_jail_find(dm->set, name);
	const char *fb = cluster_fallback_jail(dm->cluster->c);
	if (!j && fb)
		j = daemon_jail_find(dm->set, fb);
	return j;
}

static void extend(struct daemon *dm, struct daemon_ban *b, double end, const char *node)
{
	if (b->pending)
		daemon_bans_commit(dm);
	if (store_ban_prolong(dm->store, b->jailname, b->id, end) < 0)
		log_warnx("state: prolonging the ban of %s: %s", b->id, store_error(dm->store));
	b->end = end;
	double now = daemon_now();
	if (b->jail && b->jail->fw) {
		char err[512];
		unsigned long left = 0;
		if (end >= 0) {
			double l = end - now;
			left = l < 1 ? 1 : l > (double)FW_MAX_TIMEOUT ? FW_MAX_TIMEOUT : (unsigned long)(l + 0.999);
		}
		if (fw_ban(b->jail->fw, &b->jail->fwj, &b->a, left, err, sizeof err) < 0)
			log_warnx("[%s] firewall: ban %s: %s", b->jailname, b->id, err);
	}
	char ts[32];
	if (end < 0)
		snprintf(ts, sizeof ts, "forever");
	else
		timefmt_local(end, ts, sizeof ts);
	log_notice("[%s] Prolong %s until %s (cluster, node %s)", b->jailname, b->id, ts, node);
	rearm(dm);
}

static void on_ban(void *arg, const struct cluster_ban *cb)
{
	struct daemon *dm = arg;
	struct daemon_cluster *dc = dm->cluster;
	double now = daemon_now();
	if (cb->end >= 0 && cb->end <= now + 1)
		return;
	struct daemon_jail *j = jail_for(dm, cb->jail);
	if (!j) {
		dc->skipped_nojail++;
		log_debug("cluster: ban of %s in [%s] from node %s: no such jail here", cb->id, cb->jail,
			  cb->node);
		return;
	}
	struct addr a;
	if (addr_parse_cidr(cb->id, strlen(cb->id), &a) < 0) {
		log_debug("cluster: ban of '%s' from node %s: not an address", cb->id, cb->node);
		return;
	}
	char why[320];
	if (daemon_ignored(j, cb->id, NULL, why, sizeof why)) {
		dc->skipped_ignored++;
		log_info("[%s] cluster: not banning %s from node %s: %s", j->name, cb->id, cb->node, why);
		return;
	}
	struct daemon_ban *b = daemon_ban_find(dm, j->name, cb->id);
	if (b) {
		if (b->end >= 0 && (cb->end < 0 || cb->end > b->end + 1))
			extend(dm, b, cb->end, cb->node);
		return;
	}
	char err[256] = "";
	dc->applying = 1;
	int r = daemon_ban_addr(j, &a, now, 0, NULL, 0, 1, err, sizeof err);
	dc->applying = 0;
	if (r < 0) {
		log_warnx("[%s] cluster: ban of %s from node %s: %s", j->name, cb->id, cb->node, err);
		return;
	}
	b = daemon_ban_find(dm, j->name, cb->id);
	if (r == 1 && b && b->pending) {
		/* the same remaining time as on the node that banned */
		b->timeofban = cb->tob > 0 && cb->tob <= now ? cb->tob : now;
		b->end = cb->end;
		b->bantime = cb->end < 0 ? -1 : cb->end - b->timeofban;
		rearm(dm);
	}
	log_info("[%s] cluster: ban %s from node %s", j->name, cb->id, cb->node);
}

static void on_unban(void *arg, const char *jail, const char *id, double t, const char *node)
{
	struct daemon *dm = arg;
	struct daemon_jail *j = jail_for(dm, jail);
	if (!j)
		return;
	struct daemon_ban *b = daemon_ban_find(dm, j->name, id);
	if (!b || b->timeofban > t + 0.001)
		return;
	dm->cluster->applying = 1;
	daemon_unban_id(dm, j->name, id);
	dm->cluster->applying = 0;
	log_info("[%s] cluster: unban %s from node %s", j->name, id, node && *node ? node : "?");
}

struct ae_walk {
	struct cluster *c;
	void (*emit)(struct cluster *c, const struct cluster_ban *b);
};

static void ae_one(struct daemon_ban *b, void *arg)
{
	struct ae_walk *w = arg;
	struct cluster_ban cb = {b->jailname, b->id, cluster_node(w->c), b->timeofban, b->end};
	w->emit(w->c, &cb);
}

static void on_local_bans(void *arg, struct cluster *c,
			  void (*emit)(struct cluster *c, const struct cluster_ban *b))
{
	struct daemon *dm = arg;
	struct ae_walk w = {c, emit};
	daemon_bans_foreach(dm, ae_one, &w);
}

static void on_count(void *arg, const char *jail, const char *id, unsigned n)
{
	struct daemon *dm = arg;
	struct daemon_jail *j = dm->set ? daemon_jail_find(dm->set, jail) : NULL;
	if (!j || n < j->p.maxretry)
		return;
	struct addr a;
	if (addr_parse(id, strlen(id), &a) < 0)
		return;
	char tid[ADDR_STRLEN];
	addr_format(&a, tid, sizeof tid);
	if (daemon_ban_find(dm, j->name, tid))
		return;
	log_notice("[%s] cluster: %s reached %u failures across nodes", j->name, id, n);
	char err[256];
	/* manual = 1: the local counter of the address is reset as well */
	if (daemon_ban_addr(j, &a, daemon_now(), n, NULL, 0, 1, err, sizeof err) >= 0)
		cluster_forget(dm->cluster->c, jail, id);
}

static struct policy *engine(struct daemon *dm)
{
	return dm->policy ? daemon_policy_engine(dm->policy) : NULL;
}

static void on_greylist(void *arg, const char *triplet, double first, double last, unsigned count)
{
	struct policy *p = engine(arg);
	if (p)
		policy_greylist_import(p, triplet, first, last, count);
}

static void on_ratelimit(void *arg, const char *limit, const char *key, double t, double amount)
{
	struct policy *p = engine(arg);
	if (p)
		policy_ratelimit_import(p, limit, key, t, amount);
}

static int load_id(void *arg, const char *name, char *buf, size_t len)
{
	struct daemon *dm = arg;
	void *val = NULL;
	size_t n = 0;
	double exp = 0;
	if (!dm->store || store_kv_get(dm->store, "cluster", name, daemon_now(), &val, &n, &exp) < 0)
		return -1;
	snprintf(buf, len, "%s", (const char *)val);
	free(val);
	return 0;
}

static void save_id(void *arg, const char *name, const char *id)
{
	struct daemon *dm = arg;
	if (dm->store && store_kv_set(dm->store, "cluster", name, id, strlen(id), 0) < 0)
		log_warnx("state: cluster stream position: %s", store_error(dm->store));
}

static void on_link(void *arg, int up, const char *why)
{
	struct daemon *dm = arg;
	struct strbuf s = STRBUF_INIT;
	cluster_status(dm->cluster->c, 0, &s);
	if (up)
		log_notice("cluster: connected to %s", strbuf_str(&s));
	else
		log_warnx("cluster: lost Redis (%s); banning locally, events queued", why);
	strbuf_free(&s);
}

static void collect(struct metrics_buf *b, void *arg)
{
	struct daemon *dm = arg;
	struct cluster_stats st;
	cluster_get_stats(dm->cluster->c, &st);
	metrics_single(b, "mxjail_cluster_up", METRICS_GAUGE,
		       "1 when both Redis connections of the cluster link are up.", st.connected);
	metrics_single(b, "mxjail_cluster_queued", METRICS_GAUGE,
		       "Outgoing cluster events waiting for Redis.", (double)st.queued);
	metrics_single(b, "mxjail_cluster_dropped_total", METRICS_COUNTER,
		       "Outgoing cluster events dropped at the queue cap.", (double)st.dropped);
	metrics_single(b, "mxjail_cluster_commands_total", METRICS_COUNTER,
		       "Commands Redis acknowledged.", (double)st.acked);
	metrics_single(b, "mxjail_cluster_errors_total", METRICS_COUNTER,
		       "Commands Redis answered with an error.", (double)st.errors);
	metrics_single(b, "mxjail_cluster_applied_total", METRICS_COUNTER,
		       "Events of other nodes applied here.", (double)st.applied);
	metrics_single(b, "mxjail_cluster_resyncs_total", METRICS_COUNTER,
		       "Reads of the whole ban index (resync and anti-entropy).", (double)st.resyncs);
	metrics_single(b, "mxjail_cluster_skipped_total", METRICS_COUNTER,
		       "Remote bans not applied: never-ban list or no such jail.",
		       (double)(dm->cluster->skipped_ignored + dm->cluster->skipped_nojail));
}

int daemon_cluster_start(struct daemon *dm, const struct config *cfg)
{
	struct kvlist sec = KVLIST_INIT;
	config_section(cfg, "cluster", &sec);
	struct cluster_opts o;
	char err[512];
	int r = cluster_opts_parse(&sec, &o, err, sizeof err);
	kvlist_free(&sec);
	if (r == 1)
		return 0;
	if (r < 0) {
		log_msg(LOG_LVL_ERROR, "%s", err);
		fprintf(stderr, "mxjail run: %s\n", err);
		return -1;
	}
	struct cluster_host h = {
		.arg = dm,
		.ban = on_ban,
		.unban = on_unban,
		.local_bans = on_local_bans,
		.count = on_count,
		.greylist = on_greylist,
		.ratelimit = on_ratelimit,
		.load_id = load_id,
		.save_id = save_id,
		.link = on_link,
	};
	dm->cluster = xcalloc(1, sizeof *dm->cluster);
	dm->cluster->c = cluster_new(dm->loop, &o, &h);
	metrics_register(daemon_metrics(dm), collect, dm);
	log_info("cluster: node %s, Redis %s%s%s%s%s", o.node, o.url,
		 (o.share & CLUSTER_SHARE_BANS) ? ", bans" : "",
		 (o.share & CLUSTER_SHARE_GREYLIST) ? ", greylist" : "",
		 (o.share & CLUSTER_SHARE_RATELIMIT) ? ", ratelimit" : "",
		 (o.share & CLUSTER_SHARE_COUNTERS) ? ", counters" : "");
	cluster_opts_free(&o);
	return 0;
}

void daemon_cluster_stop(struct daemon *dm)
{
	if (!dm->cluster)
		return;
	if (dm->metrics)
		metrics_unregister(dm->metrics, collect, dm);
	if (dm->cluster->rearm_timer && dm->loop)
		loop_timer_del(dm->loop, dm->cluster->rearm_timer);
	cluster_free(dm->cluster->c);
	free(dm->cluster);
	dm->cluster = NULL;
}

void daemon_cluster_ban(struct daemon *dm, const struct daemon_ban *b)
{
	if (!dm->cluster || dm->cluster->applying)
		return;
	cluster_publish_ban(dm->cluster->c, b->jailname, b->id, b->timeofban, b->end);
}

void daemon_cluster_unban(struct daemon *dm, const char *jail, const char *id)
{
	if (!dm->cluster || dm->cluster->applying)
		return;
	cluster_publish_unban(dm->cluster->c, jail, id, daemon_now());
}

void daemon_cluster_failure(struct daemon_jail *j, const char *id, double t)
{
	struct daemon *dm = j->d;
	if (!dm->cluster || dm->cluster->applying)
		return;
	int dflt = (cluster_share(dm->cluster->c) & CLUSTER_SHARE_COUNTERS) != 0;
	if (!kvlist_get_bool(&j->opts, "cluster_counters", dflt))
		return;
	cluster_count_failure(dm->cluster->c, j->name, id, t, j->p.findtime);
}

void daemon_cluster_greylist_update(void *arg, const char *triplet, double first, double last,
				    unsigned count)
{
	struct daemon *dm = arg;
	if (dm->cluster)
		cluster_publish_greylist(dm->cluster->c, triplet, first, last, count);
}

void daemon_cluster_ratelimit_add(void *arg, const char *limit, const char *key, double t,
				  double amount)
{
	struct daemon *dm = arg;
	if (dm->cluster)
		cluster_publish_ratelimit(dm->cluster->c, limit, key, t, amount);
}

void daemon_cluster_status(struct daemon *dm, int json, struct strbuf *out)
{
	if (!dm->cluster)
		return;
	if (json) {
		strbuf_adds(out, ",\"cluster\":");
		cluster_status(dm->cluster->c, 1, out);
		return;
	}
	strbuf_adds(out, "Cluster:\t");
	cluster_status(dm->cluster->c, 0, out);
	strbuf_addc(out, '\n');
}
