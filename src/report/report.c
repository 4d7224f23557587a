/*
 * report - the report's aggregation: failures, bans and policy outcomes
 * folded into per-address, per-network (/24, /64), per-user, per-kind and
 * per-hour tables (see report.h for the interface).
 *
 * Each table keyed by log text is an open-addressing map from the key to an
 * index into a plain array, so sorting at the end only sorts indices. A kind
 * or jail set is a 64-bit mask: distinct addresses per kind are counted at
 * the end from the address table instead of keeping a set per kind.
 *
 * SECURITY: keys come from attacker-controlled text; every table stops
 * growing at opts.max_keys entries and counts the rest as untracked. Text
 * kept for output (user names, relay targets) is cut to REPORT_TEXT_MAX bytes
 * and control bytes become '?'.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "core/timefmt.h"
#include "core/xmalloc.h"
#include "net/addr.h"
#include "report/report_int.h"


/* ---------- helpers ---------- */

/* Copies text for output: at most REPORT_TEXT_MAX bytes, control bytes as '?'. */
static void clean_text(const char *s, char *out)
{
	size_t n = 0;
	for (; s[n] && n < REPORT_TEXT_MAX - 1; n++) {
		unsigned char c = (unsigned char)s[n];
		out[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[n] = '\0';
}

static void span(double *first, double *last, double t)
{
	if (t <= 0)
		return;
	if (*first <= 0 || t < *first)
		*first = t;
	if (t > *last)
		*last = t;
}

static uint64_t jail_bit(size_t j)
{
	return 1ULL << (j < REPORT_MAXJAILS ? j : REPORT_MAXJAILS - 1);
}

static struct rcount *table_add(struct rtable *t, const char *key, unsigned long n, size_t cap)
{
	size_t *slot = strmap_slot(&t->map, key, 0, (size_t)-1);
	if (!slot) {
		if (t->n >= cap)
			return NULL;
		slot = strmap_slot(&t->map, key, 1, (size_t)-1);
		t->v = xgrow(t->v, &t->cap, t->n, sizeof *t->v);
		memset(&t->v[t->n], 0, sizeof t->v[t->n]);
		t->v[t->n].key = xstrdup(key);
		*slot = t->n++;
	}
	t->v[*slot].n += n;
	return &t->v[*slot];
}

static void table_free(struct rtable *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].key);
		free(t->v[i].extra);
	}
	free(t->v);
	strmap_free(&t->map);
	memset(t, 0, sizeof *t);
}

/* ---------- life cycle ---------- */

struct report *report_new(const struct report_opts *o)
{
	struct report *r = xcalloc(1, sizeof *r);
	if (o)
		r->o = *o;
	if (!r->o.top)
		r->o.top = 20;
	if (!r->o.max_keys)
		r->o.max_keys = 500000;
	return r;
}

struct report *report_free(struct report *r)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->nsources; i++)
		free(r->sources[i]);
	free(r->sources);
	for (size_t i = 0; i < r->nnotes; i++)
		free(r->notes[i]);
	free(r->notes);
	for (size_t i = 0; i < r->njails; i++)
		free(r->jails[i].name);
	free(r->jails);
	for (size_t i = 0; i < r->naddrs; i++) {
		free(r->addrs[i].id);
		free(r->addrs[i].org);
	}
	free(r->addrs);
	strmap_free(&r->addrmap);
	for (size_t i = 0; i < r->nnets; i++)
		free(r->nets[i].net);
	free(r->nets);
	strmap_free(&r->netmap);
	for (size_t i = 0; i < r->nusers; i++)
		free(r->users[i].name);
	free(r->users);
	strmap_free(&r->usermap);
	table_free(&r->relay_targets);
	table_free(&r->spoof_senders);
	table_free(&r->countries);
	table_free(&r->asns);
	free(r->hours);
	strmap_free(&r->hourmap);
	free(r->bans);
	strmap_free(&r->estmap);
	free(r->est_end);
	free(r->addr_order);
	free(r->net_order);
	free(r->user_order);
	free(r->repeat_order);
	free(r->geo_name);
	free(r->audit);
	free(r);
	return NULL;
}

size_t report_jail(struct report *r, const char *name)
{
	for (size_t i = 0; i < r->njails; i++)
		if (strcmp(r->jails[i].name, name) == 0)
			return i;
	r->jails = xrealloc(r->jails, (r->njails + 1) * sizeof *r->jails);
	memset(&r->jails[r->njails], 0, sizeof r->jails[r->njails]);
	r->jails[r->njails].name = xstrdup(name);
	return r->njails++;
}

void report_audit(struct report *r, const char *out, int is_json)
{
	free(r->audit);
	r->audit = NULL;
	if (!out)
		return;
	/* JSON is embedded as it is: accept exactly one object, nothing around it */
	size_t n = strlen(out);
	while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
		n--;
	if (is_json && (n < 2 || out[0] != '{' || out[n - 1] != '}'))
		return;
	r->audit = xstrndup(out, n);
	r->audit_json = is_json;
}

void report_input(struct report *r, unsigned long lines, const char *source)
{
	r->lines += lines;
	if (source) {
		r->sources = xrealloc(r->sources, (r->nsources + 1) * sizeof *r->sources);
		r->sources[r->nsources++] = xstrdup(source);
	}
}

void report_note(struct report *r, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	r->notes = xrealloc(r->notes, (r->nnotes + 1) * sizeof *r->notes);
	r->notes[r->nnotes++] = xstrdup(buf);
}

/* ---------- tables ---------- */

static size_t net_of(struct report *r, const struct addr *a, double t)
{
	struct addr n = *a;
	char buf[ADDR_STRLEN], key[ADDR_STRLEN + 16];
	addr_format(a, buf, sizeof buf);
	snprintf(key, sizeof key, "%s/%d", buf, a->family == 4 ? 24 : 64);
	if (addr_parse_cidr(key, strlen(key), &n) < 0)
		return (size_t)-1;
	addr_format(&n, key, sizeof key);
	size_t *slot = strmap_slot(&r->netmap, key, 0, (size_t)-1);
	if (!slot) {
		if (r->nnets >= r->o.max_keys)
			return (size_t)-1;
		slot = strmap_slot(&r->netmap, key, 1, (size_t)-1);
		r->nets = xgrow(r->nets, &r->capnets, r->nnets, sizeof *r->nets);
		memset(&r->nets[r->nnets], 0, sizeof r->nets[r->nnets]);
		r->nets[r->nnets].net = xstrdup(key);
		*slot = r->nnets++;
	}
	(void)t;
	return *slot;
}

/* The address entry of id, created when new; (size_t)-1 when the table is full. */
static size_t addr_of(struct report *r, const char *id, double t)
{
	char norm[ADDR_STRLEN + 8];
	char clean[REPORT_TEXT_MAX];
	int is_addr = addr_normalise(id, strlen(id), norm, sizeof norm);
	if (!is_addr) {
		clean_text(id, clean);
		snprintf(norm, sizeof norm, "%.*s", (int)(sizeof norm - 1), clean);
	}
	size_t *slot = strmap_slot(&r->addrmap, norm, 0, (size_t)-1);
	if (slot)
		return *slot;
	if (r->naddrs >= r->o.max_keys) {
		r->untracked_addrs++;
		return (size_t)-1;
	}
	slot = strmap_slot(&r->addrmap, norm, 1, (size_t)-1);
	r->addrs = xgrow(r->addrs, &r->capaddrs, r->naddrs, sizeof *r->addrs);
	struct raddr *a = &r->addrs[r->naddrs];
	memset(a, 0, sizeof *a);
	a->id = xstrdup(norm);
	a->net = (size_t)-1;
	struct addr ad;
	if (is_addr && addr_parse(norm, strlen(norm), &ad) == 0) {
		a->family = ad.family;
		a->net = net_of(r, &ad, t);
		if (a->net != (size_t)-1)
			r->nets[a->net].naddrs++;
	}
	*slot = r->naddrs++;
	return *slot;
}

static size_t svc_index(struct report *r, const char *svc)
{
	for (size_t i = 0; i < r->nsvc; i++)
		if (strcmp(r->svc[i], svc) == 0)
			return i;
	if (r->nsvc >= REPORT_MAXSVC)
		return REPORT_MAXSVC - 1;
	r->svc[r->nsvc] = svc;   /* static strings from report_service() */
	return r->nsvc++;
}

static void add_user(struct report *r, const char *user, size_t kind, size_t svc, size_t ai,
		     double t)
{
	char clean[REPORT_TEXT_MAX];
	clean_text(user, clean);
	if (!*clean)
		return;
	size_t *slot = strmap_slot(&r->usermap, clean, 0, (size_t)-1);
	if (!slot) {
		if (r->nusers >= r->o.max_keys) {
			r->untracked_users++;
			return;
		}
		slot = strmap_slot(&r->usermap, clean, 1, (size_t)-1);
		r->users = xgrow(r->users, &r->capusers, r->nusers, sizeof *r->users);
		memset(&r->users[r->nusers], 0, sizeof r->users[r->nusers]);
		r->users[r->nusers].name = xstrdup(clean);
		r->users[r->nusers].last_addr = (size_t)-1;
		*slot = r->nusers++;
	}
	struct ruser *u = &r->users[*slot];
	u->count++;
	u->kinds |= 1ULL << kind;
	u->services |= 1U << svc;
	span(&u->first, &u->last, t);
	if (ai != (size_t)-1)
		u->last_addr = ai;
}

static void add_hour(struct report *r, size_t jail, double t)
{
	if (t <= 0)
		return;
	long h = (long)floor(t / 3600.0);
	char key[48];
	snprintf(key, sizeof key, "%ld/%zu", h, jail);
	size_t *slot = strmap_slot(&r->hourmap, key, 0, (size_t)-1);
	if (!slot) {
		if (r->nhours >= r->o.max_keys)
			return;
		slot = strmap_slot(&r->hourmap, key, 1, (size_t)-1);
		r->hours = xgrow(r->hours, &r->caphours, r->nhours, sizeof *r->hours);
		r->hours[r->nhours] = (struct rhour){h, jail, 0};
		*slot = r->nhours++;
	}
	r->hours[*slot].n++;
	if (r->nhours == 1 || h < r->hour_min)
		r->hour_min = h;
	if (r->nhours == 1 || h > r->hour_max)
		r->hour_max = h;
}

void report_failure(struct report *r, const size_t *jails, size_t njails, const char *id,
		    double t, const char *line, size_t len, const char *user)
{
	if (!id || !*id)
		return;
	if (r->o.since > 0 && t > 0 && t < r->o.since) {
		r->skipped_old++;
		return;
	}
	r->events++;
	size_t kind = report_classify(line, len);
	const char *svc = report_service(line, len, kind);
	size_t si = svc_index(r, svc);
	r->svc_count[si]++;
	struct rkindstat *ks = &r->kinds[kind];
	ks->count++;
	span(&ks->first, &ks->last, t);

	uint64_t jm = 0;
	for (size_t i = 0; i < njails; i++) {
		if (jails[i] >= r->njails)
			continue;
		r->jails[jails[i]].failures++;
		jm |= jail_bit(jails[i]);
		add_hour(r, jails[i], t);
	}
	size_t ai = addr_of(r, id, t);
	if (ai != (size_t)-1) {
		struct raddr *a = &r->addrs[ai];
		a->count++;
		a->kinds |= 1ULL << kind;
		a->jails |= jm;
		span(&a->first, &a->last, t);
		if (a->net != (size_t)-1) {
			struct rnet *n = &r->nets[a->net];
			n->count++;
			n->kinds |= 1ULL << kind;
			span(&n->first, &n->last, t);
		}
	}

	char buf[REPORT_TEXT_MAX];
	if (user && *user)
		add_user(r, user, kind, si, ai, t);
	else if (strcmp(report_kinds[kind].name, "smtp_user_unknown") == 0) {
		if (report_find_field(line, len, "to", buf, sizeof buf))
			add_user(r, buf, kind, si, ai, t);
	} else if (report_find_user(line, len, buf, sizeof buf))
		add_user(r, buf, kind, si, ai, t);

	if (strcmp(report_kinds[kind].name, "relay_denied") == 0 &&
	    report_find_field(line, len, "to", buf, sizeof buf)) {
		char clean[REPORT_TEXT_MAX];
		clean_text(buf, clean);
		const char *at = strrchr(clean, '@');
		table_add(&r->relay_targets, at ? at + 1 : clean, 1, r->o.max_keys);
	}
	if (strcmp(report_kinds[kind].name, "spoof") == 0 &&
	    report_find_field(line, len, "from", buf, sizeof buf)) {
		char clean[REPORT_TEXT_MAX];
		clean_text(buf, clean);
		table_add(&r->spoof_senders, clean, 1, r->o.max_keys);
	}
}

void report_ignored(struct report *r, size_t jail)
{
	if (jail < r->njails)
		r->jails[jail].ignored++;
}

void report_ban(struct report *r, const char *jail, const char *id, double t,
		enum report_ban_source src, unsigned bancount, int live)
{
	if (!id || !*id || !jail)
		return;
	if (r->o.since > 0 && t > 0 && t < r->o.since && !live)
		return;
	size_t j = report_jail(r, jail);
	r->jails[j].bans[src]++;
	if (live)
		r->jails[j].live++;
	size_t ai = addr_of(r, id, t);
	if (ai == (size_t)-1)
		return;
	struct raddr *a = &r->addrs[ai];
	if (src == REPORT_BAN_ESTIMATE)
		a->est_bans++;
	else
		a->bans++;
	if (bancount > a->maxbancount)
		a->maxbancount = bancount;
	if (live)
		a->live = 1;
	a->jails |= jail_bit(j);
	if (r->nbans >= r->o.max_keys) {
		r->untracked_bans++;
		return;
	}
	r->bans = xgrow(r->bans, &r->capbans, r->nbans, sizeof *r->bans);
	r->bans[r->nbans++] = (struct rban){j, ai, t, src, bancount, live};
}

size_t report_naddrs(const struct report *r)
{
	return r->naddrs;
}

const char *report_addr(const struct report *r, size_t i)
{
	return i < r->naddrs ? r->addrs[i].id : NULL;
}

int report_has(struct report *r, const char *id)
{
	char norm[ADDR_STRLEN + 8];
	if (!addr_normalise(id, strlen(id), norm, sizeof norm))
		snprintf(norm, sizeof norm, "%s", id);
	return strmap_slot(&r->addrmap, norm, 0, (size_t)-1) != NULL;
}

int report_estimate_ban(struct report *r, size_t jail, const char *id, double t, double bantime)
{
	char key[REPORT_TEXT_MAX + 32];
	snprintf(key, sizeof key, "%zu/%s", jail, id);
	size_t *slot = strmap_slot(&r->estmap, key, 0, (size_t)-1);
	if (slot && (r->est_end[*slot] < 0 || r->est_end[*slot] > t))
		return 0;
	if (!slot) {
		if (r->nest >= r->o.max_keys) {
			r->untracked_bans++;
			return 0;
		}
		slot = strmap_slot(&r->estmap, key, 1, (size_t)-1);
		r->est_end = xgrow(r->est_end, &r->capest, r->nest, sizeof *r->est_end);
		*slot = r->nest++;
	}
	r->est_end[*slot] = bantime < 0 ? -1 : t + bantime;
	if (jail < r->njails)
		report_ban(r, r->jails[jail].name, id, t, REPORT_BAN_ESTIMATE, 0, 0);
	return 1;
}

static const char *find(const char *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	return n <= len ? memmem(hay, len, needle, n) : NULL;
}

/* "NOTICE [jail] Ban ADDR" or "... Restore Ban ADDR" (fail2ban.log and
 * mxjail's own log, which recidive reads). "Increase Ban" is not a ban of
 * its own: both programs log it next to the "Ban" line. */
static void scan_ban_notice(struct report *r, const char *line, size_t len, double t)
{
	const char *p = find(line, len, "NOTICE");
	if (!p)
		return;
	const char *end = line + len;
	p += 6;
	while (p < end && *p == ' ')
		p++;
	if (p >= end || *p != '[')
		return;
	const char *js = ++p;
	while (p < end && *p != ']' && *p != ' ')
		p++;
	if (p >= end || *p != ']' || p == js || p - js > 64)
		return;
	char jail[80];
	snprintf(jail, sizeof jail, "%.*s", (int)(p - js), js);
	p++;
	while (p < end && *p == ' ')
		p++;
	if ((size_t)(end - p) > 8 && memcmp(p, "Restore ", 8) == 0)
		p += 8;
	if ((size_t)(end - p) < 5 || memcmp(p, "Ban ", 4) != 0)
		return;
	p += 4;
	const char *as = p;
	while (p < end && *p != ' ' && *p != '\t')
		p++;
	char id[ADDR_STRLEN + 8];
	if (p == as || (size_t)(p - as) >= sizeof id)
		return;
	struct addr a;
	if (addr_parse_cidr(as, (size_t)(p - as), &a) < 0)
		return;
	addr_format(&a, id, sizeof id);
	report_ban(r, jail, id, t, REPORT_BAN_LOG, 0, 0);
}

void report_scan_line(struct report *r, const char *line, size_t len, double t)
{
	if (r->o.since > 0 && t > 0 && t < r->o.since)
		return;
	if (find(line, len, " Ban ") && find(line, len, "NOTICE"))
		scan_ban_notice(r, line, len, t);
	/* policy answers as Postfix logs them: a NOQUEUE reject/defer with the
	 * policy service's text, or postgrey's own action= lines */
	if (find(line, len, "Greylisted")) {
		r->gl_deferred++;
		return;
	}
	if (find(line, len, "postgrey")) {
		if (find(line, len, "action=greylist"))
			r->gl_deferred++;
		else if (find(line, len, "action=pass"))
			r->gl_passed++;
		return;
	}
	if (find(line, len, "X-Greylist: delayed")) {
		r->gl_passed++;
		return;
	}
	if ((find(line, len, "ate limit") || find(line, len, "too many ")) &&
	    (find(line, len, "reject:") || find(line, len, "defer"))) {
		r->rl_limited++;
		return;
	}
	if (find(line, len, "reject:") && find(line, len, "poof"))
		r->pol_spoof++;
}

void report_policy_state(struct report *r, const struct report_policy_state *ps)
{
	r->pstate = *ps;
	r->have_pstate = 1;
}

static unsigned long count_str(const char *hay, const char *needle)
{
	unsigned long n = 0;
	size_t len = strlen(needle);
	for (const char *p = hay; (p = strstr(p, needle)); p += len)
		n++;
	return n;
}

void report_policy_count(const char *gl, const char *rl, struct report_policy_state *ps)
{
	memset(ps, 0, sizeof *ps);
	if (gl) {
		ps->passed = count_str(gl, ",\"state\":\"passed\"}");
		ps->waiting = count_str(gl, ",\"state\":\"waiting\"}");
		ps->triplets = ps->passed + ps->waiting;
		ps->whitelisted = count_str(gl, ",\"whitelisted\":true}");
		ps->clients = ps->whitelisted + count_str(gl, ",\"whitelisted\":false}");
	}
	if (rl) {
		static const char mark[] = ",\"exceeded\":";
		for (const char *p = rl; (p = strstr(p, mark)); ) {
			p += sizeof mark - 1;
			char *end;
			unsigned long v = strtoul(p, &end, 10);
			if (end != p && *end == ',') {
				ps->rl_keys++;
				ps->rl_exceeded += v;
			}
		}
	}
}

/* ---------- finishing ---------- */

static int cmp_addr(const void *x, const void *y, void *arg)
{
	const struct report *sort_r = arg;
	const struct raddr *a = &sort_r->addrs[*(const size_t *)x];
	const struct raddr *b = &sort_r->addrs[*(const size_t *)y];
	if (a->count != b->count)
		return a->count < b->count ? 1 : -1;
	if (a->bans != b->bans)
		return a->bans < b->bans ? 1 : -1;
	return strcmp(a->id, b->id);
}

static int cmp_repeat(const void *x, const void *y, void *arg)
{
	const struct report *sort_r = arg;
	const struct raddr *a = &sort_r->addrs[*(const size_t *)x];
	const struct raddr *b = &sort_r->addrs[*(const size_t *)y];
	unsigned na = report_addr_bans(a), nb = report_addr_bans(b);
	if (na != nb)
		return na < nb ? 1 : -1;
	return cmp_addr(x, y, arg);
}

static int cmp_net(const void *x, const void *y, void *arg)
{
	const struct report *sort_r = arg;
	const struct rnet *a = &sort_r->nets[*(const size_t *)x];
	const struct rnet *b = &sort_r->nets[*(const size_t *)y];
	if (a->count != b->count)
		return a->count < b->count ? 1 : -1;
	return strcmp(a->net, b->net);
}

static int cmp_user(const void *x, const void *y, void *arg)
{
	const struct report *sort_r = arg;
	const struct ruser *a = &sort_r->users[*(const size_t *)x];
	const struct ruser *b = &sort_r->users[*(const size_t *)y];
	if (a->count != b->count)
		return a->count < b->count ? 1 : -1;
	return strcmp(a->name, b->name);
}

static int cmp_count(const void *x, const void *y, void *arg)
{
	const struct rtable *sort_t = arg;
	const struct rcount *a = &sort_t->v[*(const size_t *)x];
	const struct rcount *b = &sort_t->v[*(const size_t *)y];
	if (a->n != b->n)
		return a->n < b->n ? 1 : -1;
	return strcmp(a->key, b->key);
}

size_t *report_table_order(const struct rtable *t)
{
	size_t *o = xcalloc(t->n + 1, sizeof *o);
	for (size_t i = 0; i < t->n; i++)
		o[i] = i;
	qsort_r(o, t->n, sizeof *o, cmp_count, (void *)t);
	return o;
}

static size_t *order(size_t n, int (*cmp)(const void *, const void *, void *),
		     const struct report *r)
{
	size_t *o = xcalloc(n + 1, sizeof *o);
	for (size_t i = 0; i < n; i++)
		o[i] = i;
	qsort_r(o, n, sizeof *o, cmp, (void *)r);
	return o;
}

static int cmp_hour(const void *x, const void *y)
{
	const struct rhour *a = x, *b = y;
	if (a->hour != b->hour)
		return a->hour < b->hour ? -1 : 1;
	return a->jail < b->jail ? -1 : a->jail > b->jail;
}

void report_finish(struct report *r, struct report_geo *geo, double now)
{
	if (r->finished)
		return;
	r->finished = 1;
	r->now = now;
	for (size_t i = 0; i < r->naddrs; i++) {
		struct raddr *a = &r->addrs[i];
		for (size_t k = 0; k < report_nkinds; k++)
			if (a->kinds & (1ULL << k))
				r->kinds[k].naddrs++;
		if (report_addr_bans(a) >= 2)
			r->nrepeat++;
	}
	if (geo) {
		free(r->geo_name);
		r->geo_name = xstrdup(report_geo_name(geo));
		for (size_t i = 0; i < r->naddrs; i++) {
			struct raddr *a = &r->addrs[i];
			if (!a->family)
				continue;
			char org[REPORT_TEXT_MAX] = "", clean[REPORT_TEXT_MAX];
			if (report_geo_lookup(geo, a->id, a->cc, sizeof a->cc, &a->asn, org,
					      sizeof org) < 0)
				continue;
			if (a->net != (size_t)-1 && !r->nets[a->net].cc[0])
				memcpy(r->nets[a->net].cc, a->cc, sizeof a->cc);
			if (a->cc[0]) {
				struct rcount *c = table_add(&r->countries, a->cc, a->count,
							     r->o.max_keys);
				if (c)
					c->naddrs++;
			}
			if (a->asn) {
				char key[32];
				snprintf(key, sizeof key, "AS%u", a->asn);
				clean_text(org, clean);
				a->org = xstrdup(clean);
				struct rcount *c = table_add(&r->asns, key, a->count, r->o.max_keys);
				if (c) {
					c->naddrs++;
					if (!c->extra)
						c->extra = xstrdup(clean);
				}
			}
		}
	}
	r->addr_order = order(r->naddrs, cmp_addr, r);
	r->net_order = order(r->nnets, cmp_net, r);
	r->user_order = order(r->nusers, cmp_user, r);
	r->repeat_order = xcalloc(r->nrepeat + 1, sizeof *r->repeat_order);
	size_t k = 0;
	for (size_t i = 0; i < r->naddrs; i++)
		if (report_addr_bans(&r->addrs[i]) >= 2)
			r->repeat_order[k++] = i;
	qsort_r(r->repeat_order, k, sizeof *r->repeat_order, cmp_repeat, r);
	if (r->nhours)
		qsort(r->hours, r->nhours, sizeof *r->hours, cmp_hour);
	/* the map's indices are stale after sorting; nothing adds hours later */
	strmap_free(&r->hourmap);
}

/* ---------- shared by the formatters ---------- */

unsigned report_addr_bans(const struct raddr *a)
{
	if (a->bans || a->maxbancount)
		return a->bans > a->maxbancount ? a->bans : a->maxbancount;
	return a->est_bans;
}

void report_jail_list(const struct report *r, uint64_t mask, struct strbuf *out)
{
	int first = 1;
	for (size_t j = 0; j < r->njails && j < REPORT_MAXJAILS; j++)
		if (mask & jail_bit(j)) {
			if (!first)
				strbuf_addc(out, ',');
			strbuf_adds(out, r->jails[j].name);
			first = 0;
		}
}

void report_kind_list(uint64_t mask, struct strbuf *out)
{
	int first = 1;
	for (size_t k = 0; k < report_nkinds; k++)
		if (mask & (1ULL << k)) {
			if (!first)
				strbuf_addc(out, ',');
			strbuf_adds(out, report_kinds[k].name);
			first = 0;
		}
}

void report_time(double t, char *buf, size_t len)
{
	if (t <= 0)
		snprintf(buf, len, "-");
	else
		timefmt_local(t, buf, len);
}
