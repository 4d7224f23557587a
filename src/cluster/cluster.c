/*
 * cluster - the Redis link of a cluster node: two hiredis async connections
 * on the daemon's loop, the bounded outgoing queue, the Lua scripts that
 * merge bans, tombstones, failure counts, greylist triplets and rate-limit
 * windows atomically, the stream reader and the snapshot/anti-entropy round.
 * The data model and guarantees are described in cluster.h.
 *
 * CONNECTIONS: "cmd" carries the queue (pipelined, at most MAX_INFLIGHT
 * unanswered) and the periodic snapshots; "rd" only blocks in XREAD, so a
 * slow read never delays a publish and the other way round. Each goes
 * DOWN -> CONNECTING (AUTH, SELECT, PING sent at once) -> READY; any error,
 * EOF or watchdog timeout frees the context and schedules a reconnect.
 *
 * SECURITY: everything that arrives from Redis is treated as untrusted
 * input: fields are checked for type and length before use, unknown
 * operations are skipped, numbers are parsed with strtod and checked.
 * Nothing here prints: link changes go to the host's notify callback and
 * the last error is kept for cluster_status().
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "cluster/cluster.h"
#include "cluster/redisloop.h"
#include "core/clocks.h"
#include "core/kvlist.h"
#include "core/loop.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "jails/jail.h"

#define MAX_INFLIGHT 256
#define WATCHDOG_MS 50
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define XREAD_BLOCK_MS 1000
#define XREAD_COUNT "512"
#define FIELD_MAX 1024          /* longest jail, id, key we accept from Redis */
#define ID_MAX 48               /* stream ids: "ms-seq" */
#define POLICY_BATCH 128        /* policy records per script call */
#define BATCH_WAIT_MS 2         /* a policy record waits this long for others */
#define BATCH_MAX (1u << 22)    /* longest batch field we accept from Redis */

/* ---------- scripts ---------- */

/* KEYS: bans stream, index. ARGV: op (B|U), jail, id, time (tob or unban
 * time), end, node, maxlen. Returns 'A' applied, 'S' nothing new, 'N' a newer
 * ban beats this unban, 'T <index value>' a newer tombstone beats this ban. */
static const char SCRIPT_BAN[] =
	"local f = ARGV[2] .. '\\t' .. ARGV[3]\n"
	"local t = tonumber(ARGV[4])\n"
	"local e = tonumber(ARGV[5])\n"
	"local cur = redis.call('HGET', KEYS[2], f)\n"
	"local function big(x) if x < 0 then return math.huge end return x end\n"
	"local k, a, b\n"
	"if cur then k, a, b = string.match(cur, '^(%a) (%S+) (%S+)') end\n"
	"if ARGV[1] == 'B' then\n"
	"  if k == 'U' and tonumber(a) and tonumber(a) >= t then return 'T ' .. cur end\n"
	"  if k == 'B' and tonumber(a) and tonumber(b) then\n"
	"    a = tonumber(a) b = tonumber(b)\n"
	"    if big(a) >= big(e) and b >= t then return 'S' end\n"
	"    if big(a) > big(e) then e = a end\n"
	"    if b > t then t = b end\n"
	"  end\n"
	"  redis.call('HSET', KEYS[2], f, 'B ' .. e .. ' ' .. t .. ' ' .. ARGV[6])\n"
	"  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*', 'op', 'B', 'jail', ARGV[2],"
	" 'id', ARGV[3], 'tob', t, 'end', e, 'node', ARGV[6])\n"
	"  return 'A'\n"
	"end\n"
	"if k == 'U' and tonumber(a) and tonumber(a) >= t then return 'S' end\n"
	"if k == 'B' and tonumber(b) and tonumber(b) > t then return 'N' end\n"
	"redis.call('HSET', KEYS[2], f, 'U ' .. t .. ' ' .. ARGV[6])\n"
	"redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*', 'op', 'U', 'jail', ARGV[2],"
	" 'id', ARGV[3], 'tob', t, 'end', -1, 'node', ARGV[6])\n"
	"return 'A'\n";

/* KEYS: bans stream, index, policy stream. ARGV: saved bans id, saved
 * policy id, now, tombstone ttl, force. Returns {mode, bans id to read
 * from, policy id to read from, [field, value]...}: mode 'C' = the saved
 * id is still in the stream, continue; 'S' = snapshot follows (expired
 * entries are deleted on the way). */
static const char SCRIPT_CHECK[] =
	"local function parse(id) local m, s = string.match(id, '^(%d+)-(%d+)$')\n"
	"  return tonumber(m), tonumber(s) end\n"
	"local function lt(x, y) local xm, xs = parse(x) local ym, ys = parse(y)\n"
	"  if xm ~= ym then return xm < ym end return xs < ys end\n"
	"local function first(k) local r = redis.call('XRANGE', k, '-', '+', 'COUNT', 1)\n"
	"  if #r == 0 then return nil end return r[1][1] end\n"
	"local function last(k) local r = redis.call('XREVRANGE', k, '+', '-', 'COUNT', 1)\n"
	"  if #r == 0 then return '0-0' end return r[1][1] end\n"
	"local function valid(s) return s ~= '' and parse(s) ~= nil end\n"
	"local bl = last(KEYS[1])\n"
	"local mode, from = 'S', bl\n"
	"if ARGV[5] == '0' and valid(ARGV[1]) then\n"
	"  local f = first(KEYS[1])\n"
	"  if f and not lt(ARGV[1], f) and not lt(bl, ARGV[1]) then mode = 'C' from = ARGV[1] end\n"
	"end\n"
	"local pl = last(KEYS[3])\n"
	"if valid(ARGV[2]) then local f = first(KEYS[3])\n"
	"  if f and not lt(ARGV[2], f) and not lt(pl, ARGV[2]) then pl = ARGV[2] end end\n"
	"local out = {mode, from, pl}\n"
	"if mode == 'S' then\n"
	"  local now = tonumber(ARGV[3]) local ttl = tonumber(ARGV[4])\n"
	"  local all = redis.call('HGETALL', KEYS[2])\n"
	"  for i = 1, #all, 2 do\n"
	"    local k, a = string.match(all[i + 1], '^(%a) (%S+)')\n"
	"    a = tonumber(a)\n"
	"    if k == nil or a == nil or (k == 'B' and a >= 0 and a < now) or"
	" (k == 'U' and a < now - ttl) then\n"
	"      redis.call('HDEL', KEYS[2], all[i])\n"
	"    else out[#out + 1] = all[i] out[#out + 1] = all[i + 1] end\n"
	"  end\n"
	"end\n"
	"return out\n";

/* KEYS: failure zset. ARGV: time, findtime, unique member. Returns the count. */
static const char SCRIPT_COUNT[] =
	"redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[2])))\n"
	"redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)\n"
	"return redis.call('ZCARD', KEYS[1])\n";

/* KEYS: policy stream. ARGV: node, maxlen, key prefix, greylist ttl,
 * rate-limit ttl, then one record per argument:
 *   "G<TAB>triplet<TAB>first<TAB>last<TAB>count"
 *   "R<TAB>limit<TAB>key<TAB>time<TAB>amount<TAB>unique member"
 * Greylist records older than the stored one and rate-limit members seen
 * before (a replay) are skipped; the rest become ONE stream entry (field b,
 * records joined by newlines), so a busy policy service costs Redis one
 * script call and one entry per batch, not per request. */
static const char SCRIPT_POLICY[] =
	"local node, maxlen, pfx = ARGV[1], ARGV[2], ARGV[3]\n"
	"local out = {}\n"
	"for i = 6, #ARGV do\n"
	"  local r = ARGV[i]\n"
	"  local f = {}\n"
	"  for x in string.gmatch(r, '[^\\t]+') do f[#f + 1] = x end\n"
	"  if f[1] == 'G' and #f == 5 and tonumber(f[4]) then\n"
	"    local k = pfx .. ':gl:' .. f[2]\n"
	"    local l = tonumber(redis.call('HGET', k, 'last'))\n"
	"    if not (l and l > tonumber(f[4])) then\n"
	"      redis.call('HSET', k, 'first', f[3], 'last', f[4], 'count', f[5], 'node', node)\n"
	"      redis.call('EXPIRE', k, ARGV[4])\n"
	"      out[#out + 1] = r\n"
	"    end\n"
	"  elseif f[1] == 'R' and #f == 6 and tonumber(f[4]) then\n"
	"    local k = pfx .. ':rl:' .. f[2] .. ':' .. f[3]\n"
	"    if redis.call('ZADD', k, f[4], f[6]) == 1 then\n"
	"      redis.call('EXPIRE', k, ARGV[5])\n"
	"      out[#out + 1] = r\n"
	"    end\n"
	"  end\n"
	"end\n"
	"if #out > 0 then\n"
	"  redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'op', 'P', 'node', node,"
	" 'b', table.concat(out, '\\n'))\n"
	"end\n"
	"return #out\n";

static const char *const SCRIPTS[] = {SCRIPT_BAN, SCRIPT_CHECK, SCRIPT_COUNT, SCRIPT_POLICY};
#define NSCRIPTS (sizeof SCRIPTS / sizeof SCRIPTS[0])

/* ---------- state ---------- */

enum qkind { Q_BAN, Q_UNBAN, Q_COUNT, Q_FORGET, Q_POLICY, Q_SNAP };
enum cstate { C_DOWN, C_CONNECTING, C_READY };

struct qitem {
	enum qkind kind;
	int argc;
	char **argv;            /* argv[1] is a static script for EVAL items */
	int static_arg1;
	char *jail, *id;
};

struct conn {
	struct cluster *c;
	const char *name;
	redisAsyncContext *ac;
	enum cstate state;
	unsigned pending;        /* requests without a reply */
	uint64_t progress_ms;    /* last reply, or the send that made pending 1 */
	uint64_t limit_ms;       /* the current request may take this long */
	uint64_t backoff_ms;
	uint64_t retry_at;       /* reconnect when loop_now_ms() passes it (0 = none) */
	uint64_t down_since;
	int kill;                /* close from the watchdog (set inside callbacks) */
	unsigned long connects;
};

struct snapent {
	char *field;             /* "jail\tid" */
	char kind;               /* 'B' or 'U' */
	double a;                /* end (B) or unban time (U) */
};

struct cluster {
	struct loop *loop;
	struct cluster_opts o;
	struct cluster_host h;
	char *k_bans, *k_idx, *k_policy;
	struct conn cmd, rd;
	struct qitem *q;         /* ring */
	size_t qcap, qhead, qn, inflight;  /* inflight: items sent, not answered */
	unsigned short bsz[MAX_INFLIGHT];   /* items per unanswered command, oldest first */
	size_t bhead, bn;
	unsigned long dropped, acked, errors, received, applied, resyncs;
	unsigned long seq;
	double started;
	char bans_id[ID_MAX], policy_id[ID_MAX];
	int rd_synced;           /* the check script ran on this rd connection */
	int reading;             /* an XREAD is out */
	uint64_t watchdog;
	uint64_t batch_timer;    /* policy records wait this short while to travel together */
	uint64_t next_resync;
	char sha[NSCRIPTS][41];  /* SHA-1 of each script, for EVALSHA */
	struct snapent *snap;    /* during anti-entropy */
	size_t nsnap;
	char lasterr[256];
};

static void drain(struct cluster *c);
static void rd_next(struct cluster *c);

static void set_err(struct cluster *c, const char *fmt, const char *a, const char *b)
{
	snprintf(c->lasterr, sizeof c->lasterr, fmt, a, b ? b : "");
}

static void notify_link(struct cluster *c, int up)
{
	if (c->h.link)
		c->h.link(c->h.arg, up, c->lasterr);
}

/* ---------- options ---------- */

static int parse_url(struct cluster_opts *o, const char *url, char *err, size_t errlen)
{
	const char *p = url;
	if (!strncmp(p, "unix:", 5)) {
		p += 5;
		while (p[0] == '/' && p[1] == '/')
			p++;
		const char *q = strchr(p, '?');
		o->unixpath = q ? xstrndup(p, (size_t)(q - p)) : xstrdup(p);
		if (q && !strncmp(q, "?db=", 4))
			o->db = atoi(q + 4);
		if (!*o->unixpath || o->unixpath[0] != '/') {
			snprintf(err, errlen, "mxjail.conf [cluster] redis: expected unix:/path/to/socket");
			return -1;
		}
		return 0;
	}
	if (strncmp(p, "redis://", 8) != 0) {
		snprintf(err, errlen,
			 "mxjail.conf [cluster] redis: expected redis://[:password@]host[:port][/db] or unix:/path");
		return -1;
	}
	p += 8;
	const char *at = strrchr(p, '@');
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		const char *pw = colon ? colon + 1 : p;
		free(o->password);
		o->password = xstrndup(pw, (size_t)(at - pw));
		p = at + 1;
	}
	const char *end = p + strcspn(p, "/");
	const char *hs = p, *he = end;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (!rb) {
			snprintf(err, errlen, "mxjail.conf [cluster] redis: unclosed '[' in %s", url);
			return -1;
		}
		hs = p + 1;
		he = rb;
		p = rb + 1;
	} else {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		if (colon)
			he = colon;
		p = colon ? colon : end;
	}
	if (he == hs) {
		o->host = xstrdup("127.0.0.1");
	} else {
		o->host = xstrndup(hs, (size_t)(he - hs));
	}
	o->port = 6379;
	if (*p == ':') {
		char *e;
		long port = strtol(p + 1, &e, 10);
		if (e == p + 1 || port <= 0 || port > 65535 || (e != end)) {
			snprintf(err, errlen, "mxjail.conf [cluster] redis: expected a port number in %s",
				 url);
			return -1;
		}
		o->port = (int)port;
	}
	if (*end == '/' && end[1]) {
		char *e;
		long db = strtol(end + 1, &e, 10);
		if (*e || db < 0 || db > 65535) {
			snprintf(err, errlen, "mxjail.conf [cluster] redis: expected a database number in %s",
				 url);
			return -1;
		}
		o->db = (int)db;
	}
	return 0;
}

static int get_time(const struct kvlist *sec, const char *key, double dflt, double min,
		    double *out, char *err, size_t errlen)
{
	const char *v = kvlist_get(sec, key);
	*out = dflt;
	if (!v || !*v)
		return 0;
	double d;
	char *e;
	d = strtod(v, &e);
	if (e != v && !strcmp(e, "ms")) {
		d /= 1000.0;
	} else if (jail_parse_time(v, &d) < 0) {
		snprintf(err, errlen, "mxjail.conf [cluster] %s: expected a time like 1s, 500ms or 5m, not '%s'",
			 key, v);
		return -1;
	}
	if (!(d >= min) || d > 1e9) {
		snprintf(err, errlen, "mxjail.conf [cluster] %s: '%s' is out of range", key, v);
		return -1;
	}
	*out = d;
	return 0;
}

int cluster_opts_parse(const struct kvlist *sec, struct cluster_opts *o, char *err,
		       size_t errlen)
{
	memset(o, 0, sizeof *o);
	const char *url = kvlist_get(sec, "redis");
	if (!url || !*url)
		return 1;
	o->url = xstrdup(url);
	if (parse_url(o, url, err, errlen) < 0)
		goto fail;
	const char *v = kvlist_get(sec, "password");
	if (v && *v) {
		free(o->password);
		o->password = xstrdup(v);
	}
	v = kvlist_get(sec, "db");
	if (v && *v) {
		char *e;
		long db = strtol(v, &e, 10);
		if (*e || db < 0 || db > 65535) {
			snprintf(err, errlen, "mxjail.conf [cluster] db: expected a number, not '%s'", v);
			goto fail;
		}
		o->db = (int)db;
	}
	v = kvlist_get(sec, "node");
	if (v && *v) {
		o->node = xstrdup(v);
	} else {
		char hn[256] = "";
		gethostname(hn, sizeof hn - 1);
		o->node = xstrdup(*hn ? hn : "node");
	}
	for (const char *s = o->node; *s; s++)
		if (*s == ' ' || *s == '\t' || *s == '\n' || *s == ':') {
			snprintf(err, errlen, "mxjail.conf [cluster] node: no blanks or ':' allowed in '%s'",
				 o->node);
			goto fail;
		}
	v = kvlist_get(sec, "prefix");
	o->prefix = xstrdup(v && *v ? v : "mxjail");
	v = kvlist_get(sec, "share");
	if (!v || !*v)
		v = "bans";
	{
		char *dup = xstrdup(v), *save = NULL;
		for (char *w = strtok_r(dup, " ,\t", &save); w; w = strtok_r(NULL, " ,\t", &save)) {
			if (!strcasecmp(w, "bans"))
				o->share |= CLUSTER_SHARE_BANS;
			else if (!strcasecmp(w, "greylist"))
				o->share |= CLUSTER_SHARE_GREYLIST;
			else if (!strcasecmp(w, "ratelimit"))
				o->share |= CLUSTER_SHARE_RATELIMIT;
			else if (!strcasecmp(w, "counters"))
				o->share |= CLUSTER_SHARE_COUNTERS;
			else if (!strcasecmp(w, "all"))
				o->share |= 15u;
			else {
				snprintf(err, errlen,
					 "mxjail.conf [cluster] share: expected bans, greylist, ratelimit, counters or all, not '%s'",
					 w);
				free(dup);
				goto fail;
			}
		}
		free(dup);
	}
	if (get_time(sec, "timeout", 0.5, 0.01, &o->timeout, err, errlen) < 0 ||
	    get_time(sec, "resync", 300, 1, &o->resync, err, errlen) < 0 ||
	    get_time(sec, "tombstone_ttl", 7 * 86400.0, 60, &o->tombstone_ttl, err, errlen) < 0 ||
	    get_time(sec, "greylist_ttl", 35 * 86400.0, 60, &o->greylist_ttl, err, errlen) < 0 ||
	    get_time(sec, "ratelimit_ttl", 86400.0, 60, &o->ratelimit_ttl, err, errlen) < 0)
		goto fail;
	o->queue_max = 10000;
	v = kvlist_get(sec, "queue");
	if (v && *v) {
		char *e;
		unsigned long n = strtoul(v, &e, 10);
		if (*e || n < 16 || n > 10000000) {
			snprintf(err, errlen, "mxjail.conf [cluster] queue: expected 16..10000000, not '%s'", v);
			goto fail;
		}
		o->queue_max = n;
	}
	o->maxlen = 100000;
	v = kvlist_get(sec, "stream_maxlen");
	if (v && *v) {
		char *e;
		long n = strtol(v, &e, 10);
		if (*e || n < 100) {
			snprintf(err, errlen, "mxjail.conf [cluster] stream_maxlen: expected a number >= 100, not '%s'",
				 v);
			goto fail;
		}
		o->maxlen = n;
	}
	v = kvlist_get(sec, "fallback_jail");
	if (v && *v)
		o->fallback_jail = xstrdup(v);
	return 0;
fail:
	cluster_opts_free(o);
	return -1;
}

void cluster_opts_free(struct cluster_opts *o)
{
	free(o->url);
	free(o->host);
	free(o->unixpath);
	free(o->password);
	free(o->node);
	free(o->prefix);
	free(o->fallback_jail);
	memset(o, 0, sizeof *o);
}

static char *dupnull(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* ---------- queue ---------- */

static struct qitem *qat(struct cluster *c, size_t i)
{
	return &c->q[(c->qhead + i) % c->qcap];
}

static void qitem_free(struct qitem *it)
{
	for (int i = 0; i < it->argc; i++)
		if (!(i == 1 && it->static_arg1))
			free(it->argv[i]);
	free(it->argv);
	free(it->jail);
	free(it->id);
	memset(it, 0, sizeof *it);
}

static void on_batch_timer(struct loop *l, void *arg)
{
	(void)l;
	struct cluster *c = arg;
	c->batch_timer = 0;
	drain(c);
}

/* Takes a NULL-terminated list of strings; argv[1] is kept by pointer when
 * script is set. Returns 0, or -1 when the queue is full (dropped). */
static int enqueue(struct cluster *c, enum qkind kind, const char *jail, const char *id,
		   const char *script, const char *const *args)
{
	if (c->qn >= c->o.queue_max) {
		c->dropped++;
		return -1;
	}
	if (c->qn == c->qcap) {
		size_t ncap = c->qcap ? c->qcap * 2 : 64;
		struct qitem *nq = xcalloc(ncap, sizeof *nq);
		for (size_t i = 0; i < c->qn; i++)
			nq[i] = *qat(c, i);
		free(c->q);
		c->q = nq;
		c->qcap = ncap;
		c->qhead = 0;
	}
	struct qitem *it = qat(c, c->qn);
	memset(it, 0, sizeof *it);
	it->kind = kind;
	size_t n = 0;
	while (args[n])
		n++;
	it->argc = (int)n + (script ? 2 : 0);
	it->argv = xcalloc((size_t)it->argc, sizeof *it->argv);
	int k = 0;
	if (script) {
		it->argv[k++] = xstrdup("EVAL");
		it->argv[k++] = (char *)script;
		it->static_arg1 = 1;
	}
	for (size_t i = 0; i < n; i++)
		it->argv[k++] = xstrdup(args[i]);
	it->jail = dupnull(jail);
	it->id = dupnull(id);
	c->qn++;
	if (kind != Q_POLICY)
		drain(c);
	else if (!c->batch_timer)
		c->batch_timer = loop_timer_add(c->loop, BATCH_WAIT_MS, on_batch_timer, c);
	return 0;
}

static void qpop(struct cluster *c)
{
	qitem_free(qat(c, 0));
	c->qhead = (c->qhead + 1) % c->qcap;
	c->qn--;
	if (c->inflight)
		c->inflight--;
}

/* A policy record of the batch script; NULL when a field holds a tab or a
 * newline (cannot be framed: not shared). */
static char *policy_rec(const char *fmt, const char *a, const char *b, const char *rest)
{
	if (strpbrk(a, "\t\n") || (b && strpbrk(b, "\t\n")) || !*a || (b && !*b))
		return NULL;
	return b ? xasprintf(fmt, a, b, rest) : xasprintf(fmt, a, rest);
}

/* ---------- connections ---------- */

static void conn_down(struct conn *k, const char *why)
{
	struct cluster *c = k->c;
	int was = k->state == C_READY;
	k->state = C_DOWN;
	k->ac = NULL;
	k->pending = 0;
	k->kill = 0;
	if (!k->down_since)
		k->down_since = loop_now_ms();
	if (k == &c->cmd)
		c->inflight = 0, c->bn = 0;   /* unanswered items are sent again */
	else
		c->reading = 0, c->rd_synced = 0;
	if (why && *why)
		set_err(c, "%s: %s", k->name, why);
	k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (k->backoff_ms > BACKOFF_MAX_MS)
		k->backoff_ms = BACKOFF_MAX_MS;
	k->retry_at = loop_now_ms() + k->backoff_ms;
	if (was && k == &c->cmd)
		notify_link(c, 0);
}

static void conn_kill(struct conn *k, const char *why)
{
	redisAsyncContext *ac = k->ac;
	if (ac) {
		ac->data = NULL;
		k->ac = NULL;
		redisAsyncFree(ac);
	}
	conn_down(k, why);
}

static int conn_send(struct conn *k, redisCallbackFn *cb, void *priv, int argc,
		     const char **argv, uint64_t limit_ms)
{
	if (!k->ac)
		return -1;
	/* scripts travel as EVALSHA: the text (up to 2 KB) once per connection */
	const char *v[16 + POLICY_BATCH];
	if (argc >= 2 && argc <= 16 + POLICY_BATCH && !strcmp(argv[0], "EVAL")) {
		for (size_t i = 0; i < NSCRIPTS; i++)
			if (argv[1] == SCRIPTS[i]) {
				memcpy(v, argv, (size_t)argc * sizeof *v);
				v[0] = "EVALSHA";
				v[1] = k->c->sha[i];
				argv = v;
				break;
			}
	}
	if (redisAsyncCommandArgv(k->ac, cb, priv, argc, argv, NULL) != REDIS_OK)
		return -1;
	if (!k->pending++) {
		k->progress_ms = loop_now_ms();
		k->limit_ms = limit_ms;
	}
	return 0;
}

/* The first thing every reply callback does. Returns 0 when r is NULL (the
 * context is going away: nothing may be touched). */
static int conn_reply(struct conn *k, const redisReply *r)
{
	if (!r)
		return 0;
	if (k->pending)
		k->pending--;
	k->progress_ms = loop_now_ms();
	return 1;
}

static uint64_t cmd_limit(const struct cluster *c)
{
	return (uint64_t)(c->o.timeout * 1000.0) + 1;
}

static void on_hello(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct conn *k = priv;
	redisReply *r = reply;
	if (!conn_reply(k, r))
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		set_err(k->c, "%s: %s", k->name, r->str);
		k->kill = 1;
		return;
	}
	if (r->type == REDIS_REPLY_STATUS && !strcasecmp(r->str, "PONG")) {
		k->state = C_READY;
		k->backoff_ms = 0;
		k->down_since = 0;
		k->connects++;
		if (k == &k->c->cmd)
			notify_link(k->c, 1);
		if (k == &k->c->cmd)
			drain(k->c);
		else
			rd_next(k->c);
	}
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct conn *k = ac->data;
	if (!k)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback */
		((redisAsyncContext *)ac)->data = NULL;
		conn_down(k, ac->errstr);
	}
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct conn *k = ac->data;
	(void)status;
	if (!k)
		return;
	conn_down(k, ac->err ? ac->errstr : "connection closed");
}

static void conn_open(struct conn *k)
{
	struct cluster *c = k->c;
	k->retry_at = 0;
	redisAsyncContext *ac = c->o.unixpath ? redisAsyncConnectUnix(c->o.unixpath)
					      : redisAsyncConnect(c->o.host, c->o.port);
	if (!ac) {
		conn_down(k, "out of memory");
		return;
	}
	if (ac->err) {
		char why[256];
		snprintf(why, sizeof why, "%s", ac->errstr);
		redisAsyncFree(ac);
		conn_down(k, why);
		return;
	}
	ac->data = k;
	redisloop_attach(ac, c->loop);
	/* the connect callback must come after the adapter: it asks for a write event */
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	k->ac = ac;
	k->state = C_CONNECTING;
	if (c->o.password) {
		const char *argv[] = {"AUTH", c->o.password};
		conn_send(k, on_hello, k, 2, argv, cmd_limit(c));
	}
	if (c->o.db) {
		char db[16];
		snprintf(db, sizeof db, "%d", c->o.db);
		const char *argv[] = {"SELECT", db};
		conn_send(k, on_hello, k, 2, argv, cmd_limit(c));
	}
	for (size_t i = 0; i < NSCRIPTS; i++) {
		const char *argv[] = {"SCRIPT", "LOAD", SCRIPTS[i]};
		conn_send(k, on_hello, k, 3, argv, cmd_limit(c));
	}
	const char *argv[] = {"PING"};
	conn_send(k, on_hello, k, 1, argv, cmd_limit(c));
}

/* ---------- replies of queued items ---------- */

static double num(const char *s, int *ok)
{
	char *e;
	if (!s || !*s) {
		*ok = 0;
		return 0;
	}
	errno = 0;
	double d = strtod(s, &e);
	if (*e || errno || !isfinite(d))
		*ok = 0;
	return d;
}

static void apply_snapshot(struct cluster *c, const redisReply *r);

static void on_item(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct cluster *c = priv;
	redisReply *r = reply;
	if (!conn_reply(&c->cmd, r))
		return;
	if (!c->qn || !c->inflight || !c->bn)
		return;
	size_t nitems = c->bsz[c->bhead];
	c->bhead = (c->bhead + 1) % MAX_INFLIGHT;
	c->bn--;
	struct qitem *it = qat(c, 0);
	if (r->type == REDIS_REPLY_ERROR && r->str && !strncmp(r->str, "NOSCRIPT", 8)) {
		/* the script cache was flushed: reconnect, load again, replay */
		c->cmd.kill = 1;
		return;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		c->errors++;
		snprintf(c->lasterr, sizeof c->lasterr, "cmd: %s", r->str ? r->str : "error");
	} else {
		c->acked++;
		switch (it->kind) {
		case Q_BAN:
			if (r->type == REDIS_REPLY_STRING && r->len > 2 && r->str[0] == 'T' &&
			    c->h.unban) {
				/* "T U <time> <node>": a newer tombstone; drop our stale ban */
				char kind = 0;
				double t = 0;
				char node[128] = "";
				if (sscanf(r->str + 2, "%c %lf %127s", &kind, &t, node) >= 2 && kind == 'U')
					c->h.unban(c->h.arg, it->jail, it->id, t, node);
			}
			break;
		case Q_COUNT:
			if (r->type == REDIS_REPLY_INTEGER && c->h.count && r->integer > 0)
				c->h.count(c->h.arg, it->jail, it->id,
					   r->integer > 1000000 ? 1000000u : (unsigned)r->integer);
			break;
		case Q_SNAP:
			apply_snapshot(c, r);
			break;
		default:
			break;
		}
	}
	/* a host callback may have queued more; the front is still this command's */
	for (size_t i = 0; i < nitems && c->qn; i++)
		qpop(c);
	drain(c);
}

static void drain(struct cluster *c)
{
	if (c->cmd.state != C_READY || c->cmd.kill)
		return;
	while (c->inflight < c->qn && c->bn < MAX_INFLIGHT) {
		struct qitem *it = qat(c, c->inflight);
		size_t n = 1;
		int r;
		if (it->kind == Q_POLICY) {
			/* consecutive policy records go out as one batch */
			const char *argv[16 + POLICY_BATCH];
			char gl[32], rl[32], ml[32];
			snprintf(ml, sizeof ml, "%ld", c->o.maxlen);
			snprintf(gl, sizeof gl, "%.0f", c->o.greylist_ttl > 0 ? c->o.greylist_ttl : 3024000);
			snprintf(rl, sizeof rl, "%.0f", c->o.ratelimit_ttl > 0 ? c->o.ratelimit_ttl : 86400);
			int k = 0;
			argv[k++] = "EVAL";
			argv[k++] = SCRIPT_POLICY;
			argv[k++] = "1";
			argv[k++] = c->k_policy;
			argv[k++] = c->o.node;
			argv[k++] = ml;
			argv[k++] = c->o.prefix;
			argv[k++] = gl;
			argv[k++] = rl;
			n = 0;
			while (n < POLICY_BATCH && c->inflight + n < c->qn) {
				struct qitem *p = qat(c, c->inflight + n);
				if (p->kind != Q_POLICY)
					break;
				argv[k++] = p->argv[0];
				n++;
			}
			r = conn_send(&c->cmd, on_item, c, k, argv, cmd_limit(c));
		} else {
			r = conn_send(&c->cmd, on_item, c, it->argc, (const char **)it->argv,
				      cmd_limit(c));
		}
		if (r < 0) {
			c->cmd.kill = 1;
			return;
		}
		c->bsz[(c->bhead + c->bn) % MAX_INFLIGHT] = (unsigned short)n;
		c->bn++;
		c->inflight += n;
	}
}

/* ---------- snapshot and anti-entropy ---------- */

static int snap_cmp(const void *a, const void *b)
{
	return strcmp(((const struct snapent *)a)->field, ((const struct snapent *)b)->field);
}

static void ae_emit(struct cluster *c, const struct cluster_ban *b)
{
	struct strbuf f = STRBUF_INIT;
	strbuf_adds(&f, b->jail);
	strbuf_addc(&f, '\t');
	strbuf_adds(&f, b->id);
	struct snapent key = {.field = (char *)strbuf_str(&f)};
	struct snapent *e = c->nsnap ? bsearch(&key, c->snap, c->nsnap, sizeof *c->snap, snap_cmp)
				     : NULL;
	strbuf_free(&f);
	double le = b->end < 0 ? INFINITY : b->end;
	if (e && e->kind == 'B' && (e->a < 0 ? INFINITY : e->a) >= le)
		return;
	/* missing, shorter, or a tombstone: the script decides who wins */
	cluster_publish_ban(c, b->jail, b->id, b->tob, b->end);
}

static int str_ok(const redisReply *e)
{
	return e && e->type == REDIS_REPLY_STRING && e->len > 0 && e->len < FIELD_MAX &&
	       !memchr(e->str, 0, e->len);
}

static void apply_snapshot(struct cluster *c, const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 3)
		return;
	c->resyncs++;
	size_t n = (r->elements - 3) / 2;
	c->snap = xcalloc(n + 1, sizeof *c->snap);
	c->nsnap = 0;
	for (size_t i = 0; i < n; i++) {
		const redisReply *f = r->element[3 + 2 * i], *v = r->element[4 + 2 * i];
		if (!str_ok(f) || !str_ok(v))
			continue;
		const char *tab = memchr(f->str, '\t', f->len);
		if (!tab || tab == f->str || !tab[1])
			continue;
		char kind = v->str[0];
		char a[64] = "", b[64] = "", node[128] = "";
		int nf = sscanf(v->str + 1, " %63s %63s %127s", a, b, node);
		int ok = 1;
		double va = num(a, &ok);
		if (!ok || nf < 2)
			continue;
		char *jail = xstrndup(f->str, (size_t)(tab - f->str));
		const char *id = tab + 1;
		const char *who = kind == 'B' ? node : b;
		if (kind == 'B') {
			double tob = num(b, &ok);
			if (ok && nf == 3 && strcmp(node, c->o.node) != 0 && c->h.ban) {
				struct cluster_ban cb = {jail, id, node, tob, va};
				c->applied++;
				c->h.ban(c->h.arg, &cb);
			}
		} else if (kind == 'U') {
			if (c->h.unban)
				c->h.unban(c->h.arg, jail, id, va, who);
		} else {
			free(jail);
			continue;
		}
		free(jail);
		c->snap[c->nsnap].field = xstrdup(f->str);
		c->snap[c->nsnap].kind = kind;
		c->snap[c->nsnap].a = va;
		c->nsnap++;
	}
	qsort(c->snap, c->nsnap, sizeof *c->snap, snap_cmp);
	if ((c->o.share & CLUSTER_SHARE_BANS) && c->h.local_bans)
		c->h.local_bans(c->h.arg, c, ae_emit);
	for (size_t i = 0; i < c->nsnap; i++)
		free(c->snap[i].field);
	free(c->snap);
	c->snap = NULL;
	c->nsnap = 0;
}

static void check_args(struct cluster *c, int force, const char **argv, char *now, size_t nowlen,
		       char *ttl, size_t ttllen)
{
	snprintf(now, nowlen, "%.3f", clocks_real());
	snprintf(ttl, ttllen, "%.0f", c->o.tombstone_ttl);
	argv[0] = "EVAL";
	argv[1] = SCRIPT_CHECK;
	argv[2] = "3";
	argv[3] = c->k_bans;
	argv[4] = c->k_idx;
	argv[5] = c->k_policy;
	argv[6] = force ? "" : c->bans_id;
	argv[7] = force ? "" : c->policy_id;
	argv[8] = now;
	argv[9] = ttl;
	argv[10] = force ? "1" : "0";
}

void cluster_resync(struct cluster *c)
{
	if (!(c->o.share & CLUSTER_SHARE_BANS))
		return;
	const char *argv[12];
	char now[32], ttl[32];
	check_args(c, 1, argv, now, sizeof now, ttl, sizeof ttl);
	argv[11] = NULL;
	enqueue(c, Q_SNAP, NULL, NULL, SCRIPT_CHECK, argv + 2);
}

/* ---------- the stream reader ---------- */

static int id_ok(const redisReply *e)
{
	if (!e || e->type != REDIS_REPLY_STRING || e->len == 0 || e->len >= ID_MAX)
		return 0;
	for (size_t i = 0; i < e->len; i++)
		if (!((e->str[i] >= '0' && e->str[i] <= '9') || e->str[i] == '-'))
			return 0;
	return 1;
}

static const char *field_n(const redisReply *kv, const char *name, size_t max)
{
	for (size_t i = 0; i + 1 < kv->elements; i += 2) {
		const redisReply *k = kv->element[i], *v = kv->element[i + 1];
		if (!str_ok(k) || v->type != REDIS_REPLY_STRING || v->len >= max ||
		    memchr(v->str, 0, v->len))
			continue;
		if (!strcmp(k->str, name))
			return v->str;
	}
	return NULL;
}

static const char *field(const redisReply *kv, const char *name)
{
	return field_n(kv, name, FIELD_MAX);
}

/* One batch of policy records (see SCRIPT_POLICY), split in place on a copy. */
static void on_policy_batch(struct cluster *c, const char *b)
{
	char *dup = xstrdup(b), *save = NULL;
	for (char *rec = strtok_r(dup, "\n", &save); rec; rec = strtok_r(NULL, "\n", &save)) {
		char *f[7];
		int n = 0;
		for (char *p = rec; n < 7;) {
			f[n++] = p;
			p = strchr(p, '\t');
			if (!p)
				break;
			*p++ = 0;
		}
		int ok = 1;
		if (n == 5 && !strcmp(f[0], "G") && (c->o.share & CLUSTER_SHARE_GREYLIST) &&
		    c->h.greylist) {
			double first = num(f[2], &ok), last = num(f[3], &ok), count = num(f[4], &ok);
			if (ok && *f[1] && count >= 0 && count < 4e9) {
				c->applied++;
				c->h.greylist(c->h.arg, f[1], first, last, (unsigned)count);
			}
		} else if (n == 6 && !strcmp(f[0], "R") && (c->o.share & CLUSTER_SHARE_RATELIMIT) &&
			   c->h.ratelimit) {
			double t = num(f[3], &ok), amount = num(f[4], &ok);
			if (ok && *f[1] && *f[2]) {
				c->applied++;
				c->h.ratelimit(c->h.arg, f[1], f[2], t, amount);
			}
		}
	}
	free(dup);
}

static void on_event(struct cluster *c, int bans, const redisReply *kv)
{
	const char *op = field(kv, "op"), *node = field(kv, "node");
	if (!op || !node || !*node)
		return;
	c->received++;
	if (!strcmp(node, c->o.node))
		return;                 /* our own: already applied here */
	int ok = 1;
	if (bans) {
		const char *jail = field(kv, "jail"), *id = field(kv, "id");
		double tob = num(field(kv, "tob"), &ok), end = num(field(kv, "end"), &ok);
		if (!jail || !id || !*jail || !*id || !ok)
			return;
		c->applied++;
		if (!strcmp(op, "B") && c->h.ban) {
			struct cluster_ban b = {jail, id, node, tob, end};
			c->h.ban(c->h.arg, &b);
		} else if (!strcmp(op, "U") && c->h.unban) {
			c->h.unban(c->h.arg, jail, id, tob, node);
		}
		return;
	}
	if (!strcmp(op, "P")) {
		const char *b = field_n(kv, "b", BATCH_MAX);
		if (b)
			on_policy_batch(c, b);
	}
}

static void on_xread(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct cluster *c = priv;
	redisReply *r = reply;
	if (!conn_reply(&c->rd, r))
		return;
	c->reading = 0;
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(c->lasterr, sizeof c->lasterr, "rd: %s", r->str ? r->str : "error");
		c->rd.kill = 1;          /* e.g. the stream key has the wrong type */
		return;
	}
	int saved_b = 0, saved_p = 0;
	if (r->type == REDIS_REPLY_ARRAY) {
		for (size_t s = 0; s < r->elements; s++) {
			const redisReply *st = r->element[s];
			if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 || !str_ok(st->element[0]) ||
			    st->element[1]->type != REDIS_REPLY_ARRAY)
				continue;
			int bans = !strcmp(st->element[0]->str, c->k_bans);
			if (!bans && strcmp(st->element[0]->str, c->k_policy) != 0)
				continue;
			const redisReply *ents = st->element[1];
			for (size_t i = 0; i < ents->elements; i++) {
				const redisReply *e = ents->element[i];
				if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !id_ok(e->element[0]))
					continue;
				char *dst = bans ? c->bans_id : c->policy_id;
				snprintf(dst, ID_MAX, "%s", e->element[0]->str);
				if (bans)
					saved_b = 1;
				else
					saved_p = 1;
				if (e->element[1]->type == REDIS_REPLY_ARRAY)
					on_event(c, bans, e->element[1]);
			}
		}
	}
	if (saved_b && c->h.save_id)
		c->h.save_id(c->h.arg, "bans", c->bans_id);
	if (saved_p && c->h.save_id)
		c->h.save_id(c->h.arg, "policy", c->policy_id);
	rd_next(c);
}

static void on_check(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct cluster *c = priv;
	redisReply *r = reply;
	if (!conn_reply(&c->rd, r))
		return;
	c->reading = 0;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !str_ok(r->element[0]) ||
	    !id_ok(r->element[1]) || !id_ok(r->element[2])) {
		snprintf(c->lasterr, sizeof c->lasterr, "rd: unexpected answer to the stream check%s%s",
			 r->type == REDIS_REPLY_ERROR ? ": " : "",
			 r->type == REDIS_REPLY_ERROR ? r->str : "");
		c->rd.kill = 1;
		return;
	}
	snprintf(c->bans_id, ID_MAX, "%s", r->element[1]->str);
	snprintf(c->policy_id, ID_MAX, "%s", r->element[2]->str);
	if (r->element[0]->str[0] == 'S')
		apply_snapshot(c, r);
	if (c->h.save_id) {
		c->h.save_id(c->h.arg, "bans", c->bans_id);
		c->h.save_id(c->h.arg, "policy", c->policy_id);
	}
	c->rd_synced = 1;
	rd_next(c);
}

static void rd_next(struct cluster *c)
{
	struct conn *k = &c->rd;
	if (k->state != C_READY || c->reading || k->kill)
		return;
	if (!c->rd_synced) {
		const char *argv[11];
		char now[32], ttl[32];
		check_args(c, 0, argv, now, sizeof now, ttl, sizeof ttl);
		if (conn_send(k, on_check, c, 11, argv, cmd_limit(c)) < 0)
			k->kill = 1;
		else
			c->reading = 1;
		return;
	}
	const char *argv[10];
	int n = 0;
	char block[16];
	snprintf(block, sizeof block, "%d", XREAD_BLOCK_MS);
	argv[n++] = "XREAD";
	argv[n++] = "COUNT";
	argv[n++] = XREAD_COUNT;
	argv[n++] = "BLOCK";
	argv[n++] = block;
	argv[n++] = "STREAMS";
	int b = (c->o.share & CLUSTER_SHARE_BANS) != 0;
	int p = (c->o.share & (CLUSTER_SHARE_GREYLIST | CLUSTER_SHARE_RATELIMIT)) != 0;
	if (b)
		argv[n++] = c->k_bans;
	if (p)
		argv[n++] = c->k_policy;
	if (b)
		argv[n++] = c->bans_id;
	if (p)
		argv[n++] = c->policy_id;
	if (!b && !p)
		return;
	if (conn_send(k, on_xread, c, n, argv, XREAD_BLOCK_MS + cmd_limit(c)) < 0)
		k->kill = 1;
	else
		c->reading = 1;
}

/* ---------- watchdog ---------- */

static void watch_conn(struct cluster *c, struct conn *k, uint64_t now)
{
	if (k->kill) {
		conn_kill(k, NULL);
		return;
	}
	if (k->state == C_DOWN) {
		if (k->retry_at && now >= k->retry_at)
			conn_open(k);
		return;
	}
	if (k->pending && now - k->progress_ms > k->limit_ms) {
		char why[96];
		snprintf(why, sizeof why, "no answer within %llu ms",
			 (unsigned long long)k->limit_ms);
		conn_kill(k, why);
	}
	(void)c;
}

static void on_watchdog(struct loop *l, void *arg)
{
	struct cluster *c = arg;
	uint64_t now = loop_now_ms();
	watch_conn(c, &c->cmd, now);
	watch_conn(c, &c->rd, now);
	if (c->cmd.state == C_READY && now >= c->next_resync) {
		c->next_resync = now + (uint64_t)(c->o.resync * 1000.0);
		cluster_resync(c);
	}
	drain(c);
	rd_next(c);
	c->watchdog = loop_timer_add(l, WATCHDOG_MS, on_watchdog, c);
}

/* ---------- public ---------- */

struct cluster *cluster_new(struct loop *l, const struct cluster_opts *o,
			    const struct cluster_host *h)
{
	struct cluster *c = xcalloc(1, sizeof *c);
	c->loop = l;
	c->o = *o;
	c->o.url = dupnull(o->url);
	c->o.host = dupnull(o->host);
	c->o.unixpath = dupnull(o->unixpath);
	c->o.password = dupnull(o->password);
	c->o.node = xstrdup(o->node ? o->node : "node");
	c->o.prefix = xstrdup(o->prefix ? o->prefix : "mxjail");
	c->o.fallback_jail = dupnull(o->fallback_jail);
	if (!c->o.queue_max)
		c->o.queue_max = 10000;
	if (!(c->o.timeout > 0))
		c->o.timeout = 0.5;
	if (!(c->o.resync > 0))
		c->o.resync = 300;
	if (c->o.maxlen < 100)
		c->o.maxlen = 100000;
	if (h)
		c->h = *h;
	c->k_bans = xasprintf("%s:bans", c->o.prefix);
	c->k_idx = xasprintf("%s:banidx", c->o.prefix);
	c->k_policy = xasprintf("%s:policy", c->o.prefix);
	for (size_t i = 0; i < NSCRIPTS; i++) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;
		EVP_Digest(SCRIPTS[i], strlen(SCRIPTS[i]), md, &mdlen, EVP_sha1(), NULL);
		for (unsigned int k = 0; k < mdlen && k < 20; k++)
			snprintf(c->sha[i] + 2 * k, 3, "%02x", md[k]);
	}
	c->cmd.c = c->rd.c = c;
	c->cmd.name = "cmd";
	c->rd.name = "rd";
	c->started = clocks_real();
	if (c->h.load_id) {
		if (c->h.load_id(c->h.arg, "bans", c->bans_id, sizeof c->bans_id) < 0)
			c->bans_id[0] = 0;
		if (c->h.load_id(c->h.arg, "policy", c->policy_id, sizeof c->policy_id) < 0)
			c->policy_id[0] = 0;
	}
	/* the first snapshot runs on the rd connection (on connect); the timer's
	 * round starts one period later */
	c->next_resync = loop_now_ms() + (uint64_t)(c->o.resync * 1000.0);
	conn_open(&c->cmd);
	conn_open(&c->rd);
	c->watchdog = loop_timer_add(l, WATCHDOG_MS, on_watchdog, c);
	return c;
}

struct cluster *cluster_free(struct cluster *c)
{
	if (!c)
		return NULL;
	if (c->watchdog)
		loop_timer_del(c->loop, c->watchdog);
	c->h.link = NULL;        /* closing is not a lost link */
	if (c->batch_timer)
		loop_timer_del(c->loop, c->batch_timer);
	if (c->cmd.ac)
		conn_kill(&c->cmd, NULL);
	if (c->rd.ac)
		conn_kill(&c->rd, NULL);
	while (c->qn)
		qpop(c);
	free(c->q);
	free(c->k_bans);
	free(c->k_idx);
	free(c->k_policy);
	cluster_opts_free(&c->o);
	free(c);
	return NULL;
}

static void fmt_time(char *buf, size_t len, double t)
{
	if (t < 0)
		snprintf(buf, len, "-1");
	else
		snprintf(buf, len, "%.3f", t);
}

void cluster_publish_ban(struct cluster *c, const char *jail, const char *id, double tob,
			 double end)
{
	if (!c || !(c->o.share & CLUSTER_SHARE_BANS))
		return;
	char t[32], e[32], ml[32];
	fmt_time(t, sizeof t, tob);
	fmt_time(e, sizeof e, end);
	snprintf(ml, sizeof ml, "%ld", c->o.maxlen);
	const char *args[] = {"2", c->k_bans, c->k_idx, "B", jail, id, t, e, c->o.node, ml, NULL};
	enqueue(c, Q_BAN, jail, id, SCRIPT_BAN, args);
}

void cluster_publish_unban(struct cluster *c, const char *jail, const char *id, double t)
{
	if (!c || !(c->o.share & CLUSTER_SHARE_BANS))
		return;
	char ts[32], ml[32];
	fmt_time(ts, sizeof ts, t);
	snprintf(ml, sizeof ml, "%ld", c->o.maxlen);
	const char *args[] = {"2", c->k_bans, c->k_idx, "U", jail, id, ts, "-1", c->o.node, ml, NULL};
	enqueue(c, Q_UNBAN, jail, id, SCRIPT_BAN, args);
}

void cluster_count_failure(struct cluster *c, const char *jail, const char *id, double t,
			   double findtime)
{
	if (!c)
		return;
	char *key = xasprintf("%s:fail:%s:%s", c->o.prefix, jail, id);
	char ts[32], ft[32], member[192];
	snprintf(ts, sizeof ts, "%.3f", t);
	snprintf(ft, sizeof ft, "%.0f", findtime > 0 ? findtime : 600);
	snprintf(member, sizeof member, "%s:%.0f:%lu", c->o.node, c->started, ++c->seq);
	const char *args[] = {"1", key, ts, ft, member, NULL};
	enqueue(c, Q_COUNT, jail, id, SCRIPT_COUNT, args);
	free(key);
}

void cluster_forget(struct cluster *c, const char *jail, const char *id)
{
	if (!c)
		return;
	char *key = xasprintf("%s:fail:%s:%s", c->o.prefix, jail, id);
	const char *args[] = {"DEL", key, NULL};
	enqueue(c, Q_FORGET, jail, id, NULL, args);
	free(key);
}

void cluster_publish_greylist(struct cluster *c, const char *triplet, double first,
			      double last, unsigned count)
{
	if (!c || !(c->o.share & CLUSTER_SHARE_GREYLIST))
		return;
	char rest[96];
	snprintf(rest, sizeof rest, "%.3f\t%.3f\t%u", first, last, count);
	char *rec = policy_rec("G\t%s\t%s", triplet, NULL, rest);
	if (!rec)
		return;
	const char *args[] = {rec, NULL};
	enqueue(c, Q_POLICY, NULL, NULL, NULL, args);
	free(rec);
}

void cluster_publish_ratelimit(struct cluster *c, const char *limit, const char *key,
			       double t, double amount)
{
	if (!c || !(c->o.share & CLUSTER_SHARE_RATELIMIT))
		return;
	char rest[256];
	snprintf(rest, sizeof rest, "%.3f\t%.17g\t%s:%.0f:%lu", t, amount, c->o.node, c->started,
		 ++c->seq);
	char *rec = policy_rec("R\t%s\t%s\t%s", limit, key, rest);
	if (!rec)
		return;
	const char *args[] = {rec, NULL};
	enqueue(c, Q_POLICY, NULL, NULL, NULL, args);
	free(rec);
}

unsigned cluster_share(const struct cluster *c)
{
	return c ? c->o.share : 0;
}

const char *cluster_node(const struct cluster *c)
{
	return c ? c->o.node : "";
}

const char *cluster_fallback_jail(const struct cluster *c)
{
	return c ? c->o.fallback_jail : NULL;
}

void cluster_get_stats(const struct cluster *c, struct cluster_stats *out)
{
	out->connected = cluster_connected(c);
	out->queued = c->qn;
	out->acked = c->acked;
	out->errors = c->errors;
	out->received = c->received;
	out->applied = c->applied;
	out->dropped = c->dropped;
	out->resyncs = c->resyncs;
}

int cluster_connected(const struct cluster *c)
{
	return c && c->cmd.state == C_READY && c->rd.state == C_READY;
}

static void url_safe(const struct cluster *c, struct strbuf *out)
{
	if (c->o.unixpath)
		strbuf_addf(out, "unix:%s", c->o.unixpath);
	else
		strbuf_addf(out, "redis://%s%s:%d/%d", c->o.password ? "***@" : "", c->o.host,
			    c->o.port, c->o.db);
}

static const char *state_name(enum cstate s)
{
	return s == C_READY ? "up" : s == C_CONNECTING ? "connecting" : "down";
}

void cluster_status(const struct cluster *c, int json, struct strbuf *out)
{
	struct strbuf u = STRBUF_INIT;
	url_safe(c, &u);
	uint64_t now = loop_now_ms();
	double down = 0;
	const struct conn *k = c->cmd.state != C_READY ? &c->cmd : &c->rd;
	if (k->state != C_READY && k->down_since)
		down = (double)(now - k->down_since) / 1000.0;
	const char *st = cluster_connected(c) ? "connected" : "disconnected";
	if (json) {
		strbuf_adds(out, "{\"redis\":");
		strbuf_add_json(out, strbuf_str(&u), strlen(strbuf_str(&u)));
		strbuf_adds(out, ",\"node\":");
		strbuf_add_json(out, c->o.node, strlen(c->o.node));
		strbuf_addf(out,
			    ",\"state\":\"%s\",\"cmd\":\"%s\",\"stream\":\"%s\",\"down_seconds\":%.1f,"
			    "\"queued\":%zu,\"queue_max\":%zu,\"dropped\":%lu,\"acked\":%lu,"
			    "\"errors\":%lu,\"received\":%lu,\"applied\":%lu,\"resyncs\":%lu,"
			    "\"last_id\":\"%s\",\"last_error\":",
			    st, state_name(c->cmd.state), state_name(c->rd.state), down, c->qn,
			    c->o.queue_max, c->dropped, c->acked, c->errors, c->received, c->applied,
			    c->resyncs, c->bans_id);
		strbuf_add_json(out, c->lasterr, strlen(c->lasterr));
		strbuf_adds(out, "}");
	} else {
		strbuf_addf(out, "%s node %s: %s (cmd %s, stream %s", strbuf_str(&u), c->o.node, st,
			    state_name(c->cmd.state), state_name(c->rd.state));
		if (down > 0)
			strbuf_addf(out, ", down %.0f s", down);
		strbuf_addf(out, "), queued %zu/%zu, dropped %lu, sent %lu, received %lu, applied %lu, resyncs %lu",
			    c->qn, c->o.queue_max, c->dropped, c->acked, c->received, c->applied,
			    c->resyncs);
		if (*c->lasterr && !cluster_connected(c))
			strbuf_addf(out, ", last error: %s", c->lasterr);
	}
	strbuf_free(&u);
}
