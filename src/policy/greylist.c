/*
 * greylist - greylisting with postgrey's semantics, so that sites moving
 * from postgrey keep their behaviour.
 *
 * A triplet is (client network, normalised sender, recipient), lower-cased:
 * the network is the client address cut to /24 (IPv4) or /64 (IPv6), or the
 * host address with `lookup_by = host`. The sender is normalised like
 * postgrey does it: BATV "prvs=" tags removed, "+extension" stripped, and
 * digit-only words (VERP counters) replaced by '#', so that mailing lists do
 * not create a new triplet per message. The first attempt of a triplet is
 * deferred; a retry after `delay` seconds passes and the message gets one
 * X-Greylist header; a first retry later than `retry_window` restarts the
 * delay; entries idle for `max_age` are expired. A client that passed
 * greylisting `auto_whitelist_clients` times (counted at most once an hour)
 * is whitelisted for every triplet.
 *
 * Whitelists are postgrey's files, read unchanged: clients by verified
 * client_name (domain suffix or /regex/), address, CIDR or partial address
 * ("192.0.2" = /24); recipients by "user@domain", "user@", domain or
 * /regex/ (Perl syntax, compiled with PCRE2 under a match limit).
 *
 * State lives in two ptables with caps (the idlest entry is evicted when
 * full); changed entries are queued and policy_gl_flush() journals them
 * (pstate.c) in the state namespaces "greylist" ("first_ms last_ms count")
 * and "awl" ("count last_ms").
 *
 * DIAGNOSTICS: configuration and whitelist errors name the file and line.
 * No network lookups, no I/O outside load/flush.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/kvlist.h"
#include "core/xmalloc.h"
#include "policy/policy_int.h"
#include "store/store.h"

#define GL_MAX_TRIPLETS 1000000
#define GL_MAX_AWL 200000
#define GL_RE_MATCH_LIMIT 100000
#define GL_INSTANCES 20

struct gtrip {
	struct pent e;
	double first, last;
	unsigned count;
};

struct gawl {
	struct pent e;
	double last;
	unsigned count;
};

/* A recipient whitelist entry that is not a regex. */
enum rw_kind { RW_USER_DOMAIN, RW_USER, RW_DOMAIN };
struct rwent {
	enum rw_kind kind;
	char *user, *domain;
};

struct relist {
	pcre2_code **v;
	size_t n, cap;
	pcre2_code *all;   /* one alternation of every pattern, when that compiles */
};

struct greylist {
	double delay, max_age, retry_window;
	int by_host;
	unsigned v4cidr, v6cidr;
	unsigned long awl_clients;
	char *action;         /* "%s" = seconds left, "%r" = recipient domain */
	char *header;         /* "%t" = seconds delayed, "%d" = date */

	struct ptable names;  /* client name suffixes (lower case); plain pents */
	struct relist client_re, rcpt_re;
	struct addr *ips;
	size_t nips, ipcap;
	struct rwent *rw;
	size_t nrw, rwcap;
	pcre2_match_data *md;
	pcre2_match_context *mctx;

	struct ptable trip, awl;
	struct pqueue qtrip, qawl;
	struct pstate ps_trip, ps_awl;

	char inst[GL_INSTANCES][64];   /* recent message instances: one header each */
	unsigned ninst;

	unsigned long wl_client, wl_rcpt, wl_awl, expired, evicted;
	struct strbuf tmp, tmp2;
};

static void relist_free(struct relist *l)
{
	for (size_t i = 0; i < l->n; i++)
		pcre2_code_free(l->v[i]);
	free(l->v);
	pcre2_code_free(l->all);
	memset(l, 0, sizeof(*l));
}

static pcre2_code *re_compile(const char *pat, size_t n, char *msg, size_t msglen)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *c = pcre2_compile((PCRE2_SPTR)pat, n, PCRE2_CASELESS, &ec, &eo, NULL);
	if (!c) {
		PCRE2_UCHAR m[160];
		pcre2_get_error_message(ec, m, sizeof(m));
		snprintf(msg, msglen, "%s at offset %zu", (char *)m, (size_t)eo);
		return NULL;
	}
	pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);   /* interpreted when JIT is unavailable */
	return c;
}

/* One alternation is much cheaper per request than a hundred matches; it is
 * only used when no pattern refers to groups by number or name. */
static void relist_combine(struct relist *l, const struct strbuf *src)
{
	char msg[200];
	if (l->n < 2 || strstr(strbuf_str(src), "\\g") || strstr(strbuf_str(src), "\\k") ||
	    strstr(strbuf_str(src), "(?P") || strstr(strbuf_str(src), "(?R") ||
	    strstr(strbuf_str(src), "(?&"))
		return;
	for (const char *p = strbuf_str(src); *p; p++)
		if (p[0] == '\\' && p[1] >= '1' && p[1] <= '9')
			return;
	l->all = re_compile(src->s, src->len, msg, sizeof(msg));
}

static int relist_match(struct greylist *g, const struct relist *l, const char *s)
{
	size_t n = strlen(s);
	if (l->all)
		return pcre2_match(l->all, (PCRE2_SPTR)s, n, 0, 0, g->md, g->mctx) >= 0;
	for (size_t i = 0; i < l->n; i++)
		if (pcre2_match(l->v[i], (PCRE2_SPTR)s, n, 0, 0, g->md, g->mctx) >= 0)
			return 1;
	return 0;
}

static int all_digits_dots(const char *s, int dots_wanted)
{
	int dots = 0, run = 0;
	for (; *s; s++) {
		if (*s == '.') {
			if (run == 0 || run > 3)
				return 0;
			dots++;
			run = 0;
		} else if (isdigit((unsigned char)*s)) {
			run++;
		} else {
			return 0;
		}
	}
	return dots == dots_wanted && run > 0 && run <= 3;
}

/* The checks both whitelists share: an entry is one word (else msg says
 * what was expected, -1), and "/regex/" is compiled into list and its
 * source added to resrc for the combined pattern (1). 0: not a regex. */
static int regex_entry(struct relist *list, const char *s, size_t n, struct strbuf *resrc,
		       const char *expected, char *msg, size_t msglen)
{
	for (size_t i = 0; i < n; i++)
		if (isspace((unsigned char)s[i])) {
			snprintf(msg, msglen, "%s", expected);
			return -1;
		}
	if (n < 3 || s[0] != '/' || s[n - 1] != '/')
		return 0;
	pcre2_code *c = re_compile(s + 1, n - 2, msg, msglen);
	if (!c)
		return -1;
	list->v = xgrow(list->v, &list->cap, list->n, sizeof(*list->v));
	list->v[list->n++] = c;
	if (resrc->len)
		strbuf_addc(resrc, '|');
	strbuf_adds(resrc, "(?:");
	strbuf_add(resrc, s + 1, n - 2);
	strbuf_addc(resrc, ')');
	return 1;
}

/* Parses one client whitelist line (comment and blanks already removed). */
static int client_line(struct greylist *g, char *s, struct strbuf *resrc, char *msg,
		       size_t msglen)
{
	size_t n = strlen(s);
	struct addr a;

	int re = regex_entry(&g->client_re, s, n, resrc,
			     "expected a client name, address or /regex/", msg, msglen);
	if (re != 0)
		return re < 0 ? -1 : 0;
	int ip = 0;
	char buf[80];
	if (strchr(s, ':') && strchr(strchr(s, ':') + 1, ':')) {
		ip = addr_parse_cidr(s, n, &a) == 0 ? 1 : -1;
	} else if (isdigit((unsigned char)s[0])) {
		char *slash = strchr(s, '/');
		if (slash)
			*slash = '\0';
		if (all_digits_dots(s, 3)) {
			if (slash)
				*slash = '/';
			ip = addr_parse_cidr(s, strlen(s), &a) == 0 ? 1 : -1;
		} else if (!slash && all_digits_dots(s, 2)) {
			snprintf(buf, sizeof(buf), "%s.0/24", s);
			ip = addr_parse_cidr(buf, strlen(buf), &a) == 0 ? 1 : -1;
		} else if (!slash && all_digits_dots(s, 1)) {
			/* postgrey's comment says /16, but it asks NetAddr::IP for
			 * "a.b" with mask 24, which is a.b.0.0/24: keep what it does */
			snprintf(buf, sizeof(buf), "%s.0.0/24", s);
			ip = addr_parse_cidr(buf, strlen(buf), &a) == 0 ? 1 : -1;
		} else if (slash) {
			*slash = '/';
		}
	}
	if (ip < 0)
		return 0;   /* postgrey skips addresses it cannot parse ("300.1.2.3") */
	if (ip > 0) {
		g->ips = xgrow(g->ips, &g->ipcap, g->nips, sizeof(*g->ips));
		g->ips[g->nips++] = a;
		return 0;
	}
	struct strbuf *lw = &g->tmp;
	policy_lower(lw, s, n);
	if (!policy_ptable_get(&g->names, lw->s, lw->len))
		policy_ptable_add(&g->names, lw->s, lw->len, sizeof(struct pent), NULL, NULL);
	return 0;
}

static int rcpt_line(struct greylist *g, char *s, struct strbuf *resrc, char *msg,
		     size_t msglen)
{
	size_t n = strlen(s);
	int re = regex_entry(&g->rcpt_re, s, n, resrc, "expected an address, user@, domain or /regex/",
			     msg, msglen);
	if (re != 0)
		return re < 0 ? -1 : 0;
	policy_lower(&g->tmp, s, n);
	char *l = g->tmp.s;
	char *at = strchr(l, '@');
	struct rwent w = {0};
	if (at && at[1]) {
		w.kind = RW_USER_DOMAIN;
		w.user = xstrndup(l, (size_t)(at - l));
		w.domain = xstrdup(at + 1);
	} else if (at) {
		w.kind = RW_USER;
		w.user = xstrndup(l, (size_t)(at - l));
	} else {
		w.kind = RW_DOMAIN;
		w.domain = xstrdup(l);
	}
	g->rw = xgrow(g->rw, &g->rwcap, g->nrw, sizeof(*g->rw));
	g->rw[g->nrw++] = w;
	return 0;
}

/* Reads the whitespace-separated list of files; missing files are skipped
 * (postgrey's defaults include ".local" files that usually do not exist). */
static int read_files(struct greylist *g, const char *files, int clients, char *err,
		      size_t errlen)
{
	struct strbuf resrc = STRBUF_INIT;
	char *list = xstrdup(files), *save = NULL;
	int rc = 0;
	for (char *f = strtok_r(list, " \t\r\n,", &save); f && rc == 0;
	     f = strtok_r(NULL, " \t\r\n,", &save)) {
		FILE *fp = fopen(f, "r");
		if (!fp) {
			if (errno == ENOENT)
				continue;
			snprintf(err, errlen, "%s: cannot read whitelist: %s", f, strerror(errno));
			rc = -1;
			break;
		}
		char *line = NULL;
		size_t cap = 0;
		ssize_t got;
		unsigned lineno = 0;
		while ((got = getline(&line, &cap, fp)) >= 0) {
			lineno++;
			if (memchr(line, '\0', (size_t)got)) {
				snprintf(err, errlen, "%s:%u: NUL byte in whitelist", f, lineno);
				rc = -1;
				break;
			}
			char *h = strchr(line, '#');
			if (h)
				*h = '\0';
			char *s = line;
			while (isspace((unsigned char)*s))
				s++;
			size_t n = strlen(s);
			while (n && isspace((unsigned char)s[n - 1]))
				s[--n] = '\0';
			if (!n)
				continue;
			char msg[200];
			if ((clients ? client_line(g, s, &resrc, msg, sizeof(msg))
				     : rcpt_line(g, s, &resrc, msg, sizeof(msg))) < 0) {
				snprintf(err, errlen, "%s:%u: %s", f, lineno, msg);
				rc = -1;
				break;
			}
		}
		if (rc == 0 && ferror(fp)) {
			snprintf(err, errlen, "%s: cannot read whitelist: %s", f, strerror(errno));
			rc = -1;
		}
		free(line);
		fclose(fp);
	}
	free(list);
	if (rc == 0)
		relist_combine(clients ? &g->client_re : &g->rcpt_re, &resrc);
	strbuf_free(&resrc);
	return rc;
}

void policy_gl_free(struct greylist *g)
{
	if (!g)
		return;
	policy_ptable_free(&g->names, NULL);
	policy_pstate_free(&g->ps_trip);
	policy_pstate_free(&g->ps_awl);
	policy_ptable_free(&g->trip, NULL);
	policy_ptable_free(&g->awl, NULL);
	policy_queue_free(&g->qtrip);
	policy_queue_free(&g->qawl);
	relist_free(&g->client_re);
	relist_free(&g->rcpt_re);
	for (size_t i = 0; i < g->nrw; i++) {
		free(g->rw[i].user);
		free(g->rw[i].domain);
	}
	free(g->rw);
	free(g->ips);
	pcre2_match_data_free(g->md);
	pcre2_match_context_free(g->mctx);
	free(g->action);
	free(g->header);
	strbuf_free(&g->tmp);
	strbuf_free(&g->tmp2);
	free(g);
}

static const struct pstate_ops trip_ops, awl_ops;

struct greylist *policy_gl_new(const struct kvlist *conf, char *err, size_t errlen)
{
	struct greylist *g = xcalloc(1, sizeof(*g));
	unsigned long v4, v6, maxt, maxa;
	const char *s;

	policy_ptable_init(&g->names, 0);
	if (policy_opt_time(conf, "greylist", "delay", 300, &g->delay, err, errlen) < 0 ||
	    policy_opt_time(conf, "greylist", "max_age", 35 * 86400.0, &g->max_age, err,
			    errlen) < 0 ||
	    policy_opt_time(conf, "greylist", "retry_window", 2 * 86400.0, &g->retry_window,
			    err, errlen) < 0 ||
	    policy_opt_uint(conf, "greylist", "auto_whitelist_clients", 5, 1000000,
			    &g->awl_clients, err, errlen) < 0 ||
	    policy_opt_uint(conf, "greylist", "ipv4cidr", 24, 32, &v4, err, errlen) < 0 ||
	    policy_opt_uint(conf, "greylist", "ipv6cidr", 64, 128, &v6, err, errlen) < 0 ||
	    policy_opt_uint(conf, "greylist", "max_triplets", GL_MAX_TRIPLETS, 100000000, &maxt,
			    err, errlen) < 0 ||
	    policy_opt_uint(conf, "greylist", "max_clients", GL_MAX_AWL, 100000000, &maxa, err,
			    errlen) < 0)
		goto fail;
	g->v4cidr = (unsigned)v4;
	g->v6cidr = (unsigned)v6;
	s = conf ? kvlist_get(conf, "lookup_by") : NULL;
	if (s && strcmp(s, "host") == 0)
		g->by_host = 1;
	else if (s && *s && strcmp(s, "subnet") != 0) {
		snprintf(err, errlen, "mxjail.conf [greylist] lookup_by: expected subnet or host, got '%s'", s);
		goto fail;
	}
	s = conf ? kvlist_get(conf, "action") : NULL;
	g->action = xstrdup(s && *s ? s : "DEFER_IF_PERMIT 4.2.0 Greylisted, please retry in %s seconds");
	s = conf ? kvlist_get(conf, "header") : NULL;
	g->header = xstrdup(s && *s ? s : "X-Greylist: delayed %t seconds by mxjail; %d");
	policy_ptable_init(&g->trip, maxt ? maxt : GL_MAX_TRIPLETS);
	policy_ptable_init(&g->awl, maxa ? maxa : GL_MAX_AWL);
	g->trip.q = &g->qtrip;
	g->awl.q = &g->qawl;
	/* rows outlive the longest an entry can live untouched, plus a day */
	policy_pstate_init(&g->ps_trip, "greylist", &trip_ops, g, g->max_age + 86400);
	policy_pstate_init(&g->ps_awl, "awl", &awl_ops, g, g->max_age + 86400);

	g->md = pcre2_match_data_create(4, NULL);
	g->mctx = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(g->mctx, GL_RE_MATCH_LIMIT);
	pcre2_set_depth_limit(g->mctx, 1000);

	s = conf ? kvlist_get(conf, "whitelist_clients") : NULL;
	if (read_files(g, s ? s : "/etc/postgrey/whitelist_clients /etc/postgrey/whitelist_clients.local",
		       1, err, errlen) < 0)
		goto fail;
	s = conf ? kvlist_get(conf, "whitelist_recipients") : NULL;
	if (read_files(g, s ? s : "/etc/postgrey/whitelist_recipients /etc/postgrey/whitelist_recipients.local",
		       0, err, errlen) < 0)
		goto fail;
	return g;
fail:
	policy_gl_free(g);
	return NULL;
}

/* ---- matching ---- */

static int is_word(unsigned char c)
{
	return isalnum(c) || c == '_';
}

void policy_gl_norm_sender(const char *sender, struct strbuf *out)
{
	strbuf_reset(out);
	const char *at = strchr(sender, '@');
	if (!at) {
		strbuf_adds(out, sender);
		return;
	}
	const char *u = sender, *ue = at;
	/* BATV: prvs=TAG=LOCAL or, seen in the wild, prvs=LOCAL=TAG. The user
	 * part is split at '=' with trailing empty fields dropped (as Perl's
	 * split does: the same as ignoring trailing '='), and only exactly three
	 * fields are rewritten: to the one that does not look like a tag. */
	if (ue - u > 5 && strncmp(u, "prvs=", 5) == 0) {
		const char *end = ue, *e0, *e1;
		while (end > u && end[-1] == '=')
			end--;
		e0 = memchr(u, '=', (size_t)(end - u));
		e1 = e0 ? memchr(e0 + 1, '=', (size_t)(end - e0 - 1)) : NULL;
		if (e1 && !memchr(e1 + 1, '=', (size_t)(end - e1 - 1))) {
			const char *f1 = e0 + 1, *f2 = e1 + 1;
			int t1 = 1, t2 = 1;
			for (int i = 0; i < 10; i++) {
				if (f1 + i >= e1 || !(isdigit((unsigned char)f1[i]) || islower((unsigned char)f1[i])))
					t1 = 0;
				if (f2 + i >= end || !(isdigit((unsigned char)f2[i]) || islower((unsigned char)f2[i])))
					t2 = 0;
			}
			if (t2 && !t1) {
				u = f1;
				ue = e1;
			} else {
				u = f2;
				ue = end;
			}
		}
	}
	const char *plus = memchr(u, '+', (size_t)(ue - u));
	if (plus)
		ue = plus;
	/* digit-only words become '#' (VERP counters); plain runs are copied whole */
	const char *run = u;
	for (const char *p = u; p < ue;) {
		if (isdigit((unsigned char)*p) && (p == u || !is_word((unsigned char)p[-1]))) {
			const char *q = p;
			while (q < ue && isdigit((unsigned char)*q))
				q++;
			if (q == ue || !is_word((unsigned char)*q)) {
				strbuf_add(out, run, (size_t)(p - run));
				strbuf_addc(out, '#');
				run = q;
			}
			p = q;
			continue;
		}
		p++;
	}
	strbuf_add(out, run, (size_t)(ue - run));
	strbuf_adds(out, at);
}

static int name_whitelisted(struct greylist *g, const char *name)
{
	if (!*name || strcmp(name, "unknown") == 0)
		return 0;
	if (g->names.n) {
		policy_lower(&g->tmp, name, strlen(name));
		const char *s = g->tmp.s;
		for (;;) {
			if (policy_ptable_get(&g->names, s, strlen(s)))
				return 1;
			s = strchr(s, '.');
			if (!s)
				break;
			s++;
		}
	}
	return g->client_re.n && relist_match(g, &g->client_re, name);
}

static int rcpt_whitelisted(struct greylist *g, const char *rcpt)
{
	if (g->nrw) {
		policy_lower(&g->tmp, rcpt, strlen(rcpt));
		const char *r = g->tmp.s;
		size_t rl = g->tmp.len;
		for (size_t i = 0; i < g->nrw; i++) {
			const struct rwent *w = &g->rw[i];
			if (w->kind == RW_DOMAIN) {
				size_t dl = strlen(w->domain);
				if (rl > dl && strcmp(r + rl - dl, w->domain) == 0 &&
				    (r[rl - dl - 1] == '@' || r[rl - dl - 1] == '.'))
					return 1;
				continue;
			}
			size_t ul = strlen(w->user);
			if (strncmp(r, w->user, ul) != 0)
				continue;
			const char *p = r + ul;
			if (*p == '+') {
				const char *at = strchr(p + 1, '@');
				if (!at || at == p + 1)
					continue;
				p = at;
			}
			if (*p != '@')
				continue;
			if (w->kind == RW_USER || strcmp(p + 1, w->domain) == 0)
				return 1;
		}
	}
	return g->rcpt_re.n && relist_match(g, &g->rcpt_re, rcpt);
}

static int new_instance(struct greylist *g, const char *inst)
{
	if (!inst || !*inst)
		return 1;
	for (unsigned i = 0; i < GL_INSTANCES; i++)
		if (strncmp(g->inst[i], inst, sizeof(g->inst[0]) - 1) == 0)
			return 0;
	snprintf(g->inst[g->ninst % GL_INSTANCES], sizeof(g->inst[0]), "%s", inst);
	g->ninst++;
	return 1;
}

/* Appends s with %X replaced: one substitution per letter, like postgrey. */
static void subst(struct strbuf *out, const char *tmpl, char k1, const char *v1, char k2,
		  const char *v2)
{
	const char *p = tmpl, *pc;
	while ((pc = strchr(p, '%'))) {
		strbuf_add(out, p, (size_t)(pc - p));
		if (pc[1] == k1 && v1) {
			strbuf_adds(out, v1);
			p = pc + 2;
		} else if (pc[1] == k2 && v2) {
			strbuf_adds(out, v2);
			p = pc + 2;
		} else {
			strbuf_addc(out, '%');
			p = pc + 1;
		}
	}
	strbuf_adds(out, p);
}

/* Whole seconds as text, like "%.0f" of a whole number, without the
 * floating-point formatter (it runs for every deferred request). buf has
 * room for 32 bytes. */
static void fmt_secs(char buf[32], double v)
{
	if (v >= 0 && v < 1e15)
		policy_u64_str(buf, (uint64_t)v);
	else
		snprintf(buf, 32, "%.0f", v);
}

enum pverdict policy_gl_eval(struct greylist *g, const struct policy_req *r, double now,
			     struct strbuf *out, struct strbuf *key, const struct policy_host *h)
{
	const char *state = policy_req_get(r, "protocol_state");
	const char *ca = policy_req_get(r, "client_address");
	const char *cn = policy_req_get(r, "client_name");
	const char *rcpt = policy_req_get(r, "recipient");
	const char *sender = policy_req_get(r, "sender");
	struct addr a;

	if (state && strcmp(state, "RCPT") != 0)
		return PV_DUNNO;
	if (!ca || !cn || !rcpt || !sender || addr_parse(ca, strlen(ca), &a) < 0)
		return PV_DUNNO;

	if (name_whitelisted(g, cn)) {
		g->wl_client++;
		strbuf_adds(key, "client whitelist");
		return PV_DUNNO;
	}
	for (size_t i = 0; i < g->nips; i++)
		if (addr_in(&g->ips[i], &a)) {
			g->wl_client++;
			strbuf_adds(key, "client whitelist");
			return PV_DUNNO;
		}
	if (rcpt_whitelisted(g, rcpt)) {
		g->wl_rcpt++;
		strbuf_adds(key, "recipient whitelist");
		return PV_DUNNO;
	}

	char host[ADDR_STRLEN];
	addr_format(&a, host, sizeof(host));
	struct gawl *w = NULL;
	if (g->awl_clients) {
		w = (struct gawl *)policy_ptable_get(&g->awl, host, strlen(host));
		if (w && w->count >= g->awl_clients) {
			if (now >= w->last + 3600 || w->last > now) {
				w->count++;
				w->last = now;
				policy_queue_entry(&g->qawl, &w->e);
			}
			policy_ptable_touch(&g->awl, &w->e);
			g->wl_awl++;
			strbuf_adds(key, "client auto-whitelist");
			return PV_DUNNO;
		}
	}

	/* the triplet */
	struct addr net = a;
	if (!g->by_host) {
		unsigned bits = a.family == 4 ? g->v4cidr : g->v6cidr;
		unsigned nb = a.family == 4 ? 4 : 16;
		for (unsigned i = 0; i < nb; i++) {
			int keep = (int)bits - (int)(i * 8);
			if (keep <= 0)
				net.a[i] = 0;
			else if (keep < 8)
				net.a[i] &= (uint8_t)(0xff << (8 - keep));
		}
	}
	char netbuf[ADDR_STRLEN];
	addr_format(&net, netbuf, sizeof(netbuf));
	policy_gl_norm_sender(sender, &g->tmp2);
	strbuf_reset(&g->tmp);
	strbuf_adds(&g->tmp, netbuf);
	strbuf_addc(&g->tmp, '/');
	strbuf_add(&g->tmp, g->tmp2.s ? g->tmp2.s : "", g->tmp2.len);
	strbuf_addc(&g->tmp, '/');
	strbuf_adds(&g->tmp, rcpt);
	policy_lower(key, g->tmp.s, g->tmp.len);

	struct gtrip *t = (struct gtrip *)policy_ptable_get(&g->trip, key->s, key->len);
	double first = now;
	int was_ok = 0;
	if (t) {
		first = t->first;
		if (t->last - t->first >= g->delay)
			was_ok = 1;
		else if (now - first > g->retry_window)
			first = now;
		if (first > now)
			first = now;
		policy_ptable_touch(&g->trip, &t->e);
	} else {
		if (g->trip.max && g->trip.n >= g->trip.max)
			g->evicted++;
		t = (struct gtrip *)policy_ptable_add(&g->trip, key->s, key->len, sizeof(*t),
						       NULL, NULL);
	}
	t->first = first;
	t->last = now;
	t->count++;
	policy_queue_entry(&g->qtrip, &t->e);
	if (h && h->on_greylist_update)
		h->on_greylist_update(h->arg, t->e.key, t->first, t->last, t->count);

	double diff = g->delay - (now - first);
	if (g->awl_clients && diff <= 0 && !was_ok) {
		if (!w)
			w = (struct gawl *)policy_ptable_add(&g->awl, host, strlen(host), sizeof(*w),
							      NULL, NULL);
		if (w->count == 0 || now >= w->last + 3600) {
			w->count++;
			w->last = now;
			policy_queue_entry(&g->qawl, &w->e);
		}
	}
	if (diff > 0) {
		char secs[32], *dom;
		fmt_secs(secs, ceil(diff));
		dom = strrchr(rcpt, '@');
		subst(out, g->action, 's', secs, 'r', dom ? dom + 1 : rcpt);
		return PV_DEFER;
	}
	if (!was_ok && new_instance(g, policy_req_get(r, "instance"))) {
		char secs[32], date[64];
		struct tm tm;
		time_t tt = (time_t)now;
		fmt_secs(secs, floor(now - first));
		localtime_r(&tt, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		strbuf_adds(out, "PREPEND ");
		subst(out, g->header, 't', secs, 'd', date);
		return PV_PREPEND;
	}
	return PV_DUNNO;
}

/* ---- state: store, expiry, control ---- */

static void set_entry(struct greylist *g, const char *triplet, double first, double last,
		      unsigned count, int changed);

/* Values are parsed from a length-delimited copy: rows come from disk. */
static int parse_val(const char *v, size_t vl, char *buf, size_t buflen)
{
	if (vl >= buflen)
		return -1;
	memcpy(buf, v, vl);
	buf[vl] = '\0';
	return 0;
}

static int trip_ser(void *arg, struct pent *e, struct strbuf *key, struct strbuf *val)
{
	const struct gtrip *t = (const struct gtrip *)e;
	(void)arg;
	strbuf_add(key, e->key, e->keylen);
	/* milliseconds as integers */
	policy_add_u64(val, (uint64_t)llround(t->first * 1000));
	strbuf_addc(val, ' ');
	policy_add_u64(val, (uint64_t)llround(t->last * 1000));
	strbuf_addc(val, ' ');
	policy_add_u64(val, t->count);
	return 0;
}

static void trip_set(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	struct greylist *g = arg;
	char buf[128];
	unsigned long long fms, lms;
	unsigned count;
	if (parse_val(v, vl, buf, sizeof(buf)) < 0 || memchr(k, '\0', kl) ||
	    sscanf(buf, "%llu %llu %u", &fms, &lms, &count) != 3)
		return;
	double first = (double)fms / 1000, last = (double)lms / 1000;
	char *key = xstrndup(k, kl);
	struct gtrip *t = (struct gtrip *)policy_ptable_get(&g->trip, key, kl);
	if (!t)
		t = (struct gtrip *)policy_ptable_add(&g->trip, key, kl, sizeof(*t), NULL, NULL);
	t->first = first;
	t->last = last;
	t->count = count;
	free(key);
}

static void drop(struct ptable *t, const char *k, size_t kl)
{
	struct pent *e = policy_ptable_get(t, k, kl);
	if (e) {
		policy_ptable_unlink(t, e);
		policy_ptable_drop(e);
	}
}

static void trip_del(void *arg, const char *k, size_t kl)
{
	drop(&((struct greylist *)arg)->trip, k, kl);
}

static struct pent *trip_next(void *arg)
{
	return policy_ptable_walk(&((struct greylist *)arg)->trip, PT_SNAPSHOT);
}

static void trip_restart(void *arg)
{
	policy_ptable_walk_reset(&((struct greylist *)arg)->trip, PT_SNAPSHOT);
}

static const struct pstate_ops trip_ops = { trip_ser, trip_set, trip_del, trip_next,
					    trip_restart };

static int awl_ser(void *arg, struct pent *e, struct strbuf *key, struct strbuf *val)
{
	const struct gawl *w = (const struct gawl *)e;
	(void)arg;
	strbuf_add(key, e->key, e->keylen);
	policy_add_u64(val, w->count);
	strbuf_addc(val, ' ');
	policy_add_u64(val, (uint64_t)llround(w->last * 1000));
	return 0;
}

static void awl_set(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	struct greylist *g = arg;
	char buf[128];
	unsigned long long lms;
	unsigned count;
	if (parse_val(v, vl, buf, sizeof(buf)) < 0 || memchr(k, '\0', kl) ||
	    sscanf(buf, "%u %llu", &count, &lms) != 2)
		return;
	double last = (double)lms / 1000;
	struct gawl *w = (struct gawl *)policy_ptable_get(&g->awl, k, kl);
	if (!w)
		w = (struct gawl *)policy_ptable_add(&g->awl, k, kl, sizeof(*w), NULL, NULL);
	w->count = count;
	w->last = last;
}

static void awl_del(void *arg, const char *k, size_t kl)
{
	drop(&((struct greylist *)arg)->awl, k, kl);
}

static struct pent *awl_next(void *arg)
{
	return policy_ptable_walk(&((struct greylist *)arg)->awl, PT_SNAPSHOT);
}

static void awl_restart(void *arg)
{
	policy_ptable_walk_reset(&((struct greylist *)arg)->awl, PT_SNAPSHOT);
}

static const struct pstate_ops awl_ops = { awl_ser, awl_set, awl_del, awl_next,
					   awl_restart };

int policy_gl_load(struct greylist *g, const struct pstate_io *io, double now)
{
	int rc = policy_pstate_load(&g->ps_trip, io, now);
	if (rc >= 0)
		rc = policy_pstate_load(&g->ps_awl, io, now);
	return rc < 0 ? rc : 0;
}

void policy_gl_nostore(struct greylist *g)
{
	g->qtrip.off = g->qawl.off = 1;
}

size_t policy_gl_pending(const struct greylist *g)
{
	return policy_queue_len(&g->qtrip) + policy_queue_len(&g->qawl);
}

int policy_gl_flush(struct greylist *g, const struct pstate_io *io, double now)
{
	int rc = policy_pstate_flush(&g->ps_trip, io, now, &g->qtrip);
	if (rc >= 0)
		rc = policy_pstate_flush(&g->ps_awl, io, now, &g->qawl);
	return rc < 0 ? rc : 0;
}

static int trip_expired(const struct greylist *g, const struct gtrip *t, double now)
{
	return now - t->last > g->max_age ||
	       (t->last - t->first < g->delay && now - t->last > g->retry_window);
}

size_t policy_gl_expire(struct greylist *g, double now, size_t budget)
{
	size_t seen = 0;
	struct pent *e;
	while (seen < budget && (e = policy_ptable_walk(&g->trip, PT_EXPIRE))) {
		seen++;
		if (trip_expired(g, (struct gtrip *)e, now)) {
			policy_ptable_remove(&g->trip, e);
			g->expired++;
		}
	}
	while (seen < budget && (e = policy_ptable_walk(&g->awl, PT_EXPIRE))) {
		seen++;
		if (now - ((struct gawl *)e)->last > g->max_age) {
			policy_ptable_remove(&g->awl, e);
		}
	}
	return seen;
}

static void set_entry(struct greylist *g, const char *triplet, double first, double last,
		      unsigned count, int changed)
{
	size_t n = strlen(triplet);
	struct gtrip *t = (struct gtrip *)policy_ptable_get(&g->trip, triplet, n);
	if (t) {
		/* the newer observation wins; replaying an update changes nothing */
		if (last < t->last || (last == t->last && first >= t->first && count <= t->count))
			return;
		policy_ptable_touch(&g->trip, &t->e);
	} else {
		t = (struct gtrip *)policy_ptable_add(&g->trip, triplet, n, sizeof(*t), NULL, NULL);
	}
	t->first = first;
	t->last = last;
	if (count > t->count)
		t->count = count;
	if (changed)
		policy_queue_entry(&g->qtrip, &t->e);
}

void policy_gl_import(struct greylist *g, const char *triplet, double first, double last,
		      unsigned count)
{
	set_entry(g, triplet, first, last, count, 1);
}

/* Splits a triplet key "net/sender/recipient" at its first and last '/'. */
static void split3(const char *k, size_t *netlen, const char **snd, size_t *sndlen,
		   const char **rcpt)
{
	const char *a = strchr(k, '/'), *b = strrchr(k, '/');
	if (!a) {
		*netlen = strlen(k);
		*snd = *rcpt = k + *netlen;
		*sndlen = 0;
		return;
	}
	*netlen = (size_t)(a - k);
	*snd = a + 1;
	*sndlen = b > a ? (size_t)(b - a - 1) : 0;
	*rcpt = b > a ? b + 1 : k + strlen(k);
}

int policy_gl_del(struct greylist *g, const char *what)
{
	struct strbuf lw = STRBUF_INIT, ns = STRBUF_INIT;
	char netbuf[ADDR_STRLEN] = "", hostbuf[ADDR_STRLEN] = "";
	struct addr a;
	int count = 0;

	policy_lower(&lw, what, strlen(what));
	policy_gl_norm_sender(lw.s, &ns);
	if (addr_parse(what, strlen(what), &a) == 0) {
		addr_format(&a, hostbuf, sizeof(hostbuf));
		if (!g->by_host) {
			struct addr net = a;
			unsigned bits = a.family == 4 ? g->v4cidr : g->v6cidr;
			for (unsigned i = 0; i < (a.family == 4 ? 4u : 16u); i++) {
				int keep = (int)bits - (int)(i * 8);
				if (keep <= 0)
					net.a[i] = 0;
				else if (keep < 8)
					net.a[i] &= (uint8_t)(0xff << (8 - keep));
			}
			addr_format(&net, netbuf, sizeof(netbuf));
		}
	}
	struct pent *e = g->trip.head;
	while (e) {
		struct pent *nx = e->next;
		size_t nl, sl;
		const char *s, *r;
		split3(e->key, &nl, &s, &sl, &r);
		int hit = strcmp(e->key, lw.s) == 0 ||
			  (nl == lw.len && memcmp(e->key, lw.s, nl) == 0) ||
			  (*netbuf && nl == strlen(netbuf) && memcmp(e->key, netbuf, nl) == 0) ||
			  (*hostbuf && nl == strlen(hostbuf) && memcmp(e->key, hostbuf, nl) == 0) ||
			  (sl == ns.len && ns.len && memcmp(s, ns.s, sl) == 0) ||
			  strcmp(r, lw.s) == 0;
		if (hit) {
			policy_ptable_remove(&g->trip, e);
			count++;
		}
		e = nx;
	}
	if (*hostbuf) {
		e = policy_ptable_get(&g->awl, hostbuf, strlen(hostbuf));
		if (e) {
			policy_ptable_remove(&g->awl, e);
			count++;
		}
	}
	strbuf_free(&lw);
	strbuf_free(&ns);
	return count;
}

void policy_gl_list(struct greylist *g, int json, double now, struct strbuf *out)
{
	if (json)
		strbuf_adds(out, "{\"triplets\":[");
	int firstrow = 1;
	for (struct pent *e = g->trip.head; e; e = e->next) {
		const struct gtrip *t = (const struct gtrip *)e;
		size_t nl, sl;
		const char *s, *r;
		const char *st = t->last - t->first >= g->delay ? "passed" : "waiting";
		split3(e->key, &nl, &s, &sl, &r);
		if (json) {
			strbuf_adds(out, firstrow ? "{\"client\":" : ",{\"client\":");
			strbuf_add_json(out, e->key, nl);
			strbuf_adds(out, ",\"sender\":");
			strbuf_add_json(out, s, sl);
			strbuf_adds(out, ",\"recipient\":");
			strbuf_add_json(out, r, strlen(r));
			strbuf_addf(out, ",\"first\":%.0f,\"last\":%.0f,\"count\":%u,\"state\":\"%s\"}",
				    t->first, t->last, t->count, st);
		} else {
			strbuf_add(out, e->key, e->keylen);
			strbuf_addf(out, "  %s  first %.0fs ago, last %.0fs ago, %u attempt%s\n", st,
				    now - t->first, now - t->last, t->count, t->count == 1 ? "" : "s");
		}
		firstrow = 0;
	}
	if (json) {
		strbuf_adds(out, "],\"clients\":[");
		firstrow = 1;
		for (struct pent *e = g->awl.head; e; e = e->next) {
			const struct gawl *w = (const struct gawl *)e;
			strbuf_adds(out, firstrow ? "{\"client\":" : ",{\"client\":");
			strbuf_add_json(out, e->key, e->keylen);
			strbuf_addf(out, ",\"passes\":%u,\"last\":%.0f,\"whitelisted\":%s}", w->count,
				    w->last, w->count >= g->awl_clients && g->awl_clients ? "true" : "false");
			firstrow = 0;
		}
		strbuf_adds(out, "]}");
	} else {
		for (struct pent *e = g->awl.head; e; e = e->next) {
			const struct gawl *w = (const struct gawl *)e;
			strbuf_addf(out, "client %s  %u pass%s%s, last %.0fs ago\n", e->key, w->count,
				    w->count == 1 ? "" : "es",
				    g->awl_clients && w->count >= g->awl_clients ? " (auto-whitelisted)" : "",
				    now - w->last);
		}
	}
}

void policy_gl_status(struct greylist *g, int json, struct strbuf *out)
{
	if (json)
		strbuf_addf(out, "\"triplets\":%zu,\"clients\":%zu,\"client_whitelist\":%lu,"
			    "\"recipient_whitelist\":%lu,\"auto_whitelist\":%lu,\"expired\":%lu,"
			    "\"evicted\":%lu",
			    g->trip.n, g->awl.n, g->wl_client, g->wl_rcpt, g->wl_awl, g->expired,
			    g->evicted);
	else
		strbuf_addf(out, "  triplets %zu, clients %zu; passes by client whitelist %lu, "
			    "recipient whitelist %lu, auto-whitelist %lu; expired %lu, evicted %lu\n",
			    g->trip.n, g->awl.n, g->wl_client, g->wl_rcpt, g->wl_awl, g->expired,
			    g->evicted);
}
