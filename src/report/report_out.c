/*
 * report_out - the report as a terminal table and as one JSON document.
 *
 * The JSON is the complete report (every kind, every hour per jail, the top-N
 * tables); the text shows the same sections cut for a terminal: hours are
 * summed per day there. Both only read a finished report (report_finish()).
 * Text from logs is written with control bytes already replaced (report.c)
 * and JSON strings go through strbuf_add_json.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "report/report_int.h"

static unsigned long total_failures(const struct report *r)
{
	return r->events;
}

static void span_of(const struct report *r, double *first, double *last)
{
	*first = 0;
	*last = 0;
	for (size_t k = 0; k < report_nkinds; k++) {
		const struct rkindstat *s = &r->kinds[k];
		if (s->first > 0 && (*first <= 0 || s->first < *first))
			*first = s->first;
		if (s->last > *last)
			*last = s->last;
	}
}

static unsigned long bans_total(const struct report *r, int src)
{
	unsigned long n = 0;
	for (size_t j = 0; j < r->njails; j++)
		n += src < 0 ? r->jails[j].bans[0] + r->jails[j].bans[1] + r->jails[j].bans[2]
			     : r->jails[j].bans[src];
	return n;
}

static unsigned long live_total(const struct report *r)
{
	unsigned long n = 0;
	for (size_t j = 0; j < r->njails; j++)
		n += r->jails[j].live;
	return n;
}

static size_t topn(const struct report *r, size_t n)
{
	return n < r->o.top ? n : r->o.top;
}

/* ---------- text ---------- */

/* A jail's column: as wide as its name, at least 8. */
static int jail_width(const char *name)
{
	size_t n = strlen(name);
	return n < 8 ? 8 : n > 40 ? 40 : (int)n;
}

static void gmt_day(long day, char *buf, size_t len)
{
	time_t t = (time_t)day * 86400;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d", &tm);
}

static void svc_list(const struct report *r, uint32_t mask, struct strbuf *out)
{
	int first = 1;
	for (size_t i = 0; i < r->nsvc; i++)
		if (mask & (1U << i)) {
			if (!first)
				strbuf_addc(out, ',');
			strbuf_adds(out, r->svc[i]);
			first = 0;
		}
}

void report_format_text(const struct report *r, struct strbuf *o)
{
	char a[32], b[32];
	double first, last;
	span_of(r, &first, &last);
	report_time(first, a, sizeof a);
	report_time(last, b, sizeof b);
	strbuf_addf(o, "mxjail report: %lu log lines", r->lines);
	if (r->nsources) {
		strbuf_adds(o, " from");
		for (size_t i = 0; i < r->nsources; i++)
			strbuf_addf(o, " %s", r->sources[i]);
	}
	strbuf_addf(o, "\n%lu failures from %zu addresses in %zu networks (/24, /64), %s to %s\n",
		    total_failures(r), r->naddrs, r->nnets, a, b);
	if (r->o.since > 0) {
		report_time(r->o.since, a, sizeof a);
		strbuf_addf(o, "since %s (%lu older events left out)\n", a, r->skipped_old);
	}
	if (r->geo_name)
		strbuf_addf(o, "GeoIP: %s\n", r->geo_name);
	for (size_t i = 0; i < r->nnotes; i++)
		strbuf_addf(o, "note: %s\n", r->notes[i]);

	strbuf_addf(o, "\nAttacks by kind\n  %-24s %-10s %8s %9s  %-19s  %s\n", "KIND", "SERVICE",
		    "LINES", "ADDRESSES", "FIRST", "LAST");
	for (size_t k = 0; k < report_nkinds; k++) {
		const struct rkindstat *s = &r->kinds[k];
		if (!s->count)
			continue;
		report_time(s->first, a, sizeof a);
		report_time(s->last, b, sizeof b);
		strbuf_addf(o, "  %-24s %-10s %8lu %9lu  %-19s  %s\n", report_kinds[k].name,
			    report_kinds[k].service, s->count, s->naddrs, a, b);
	}

	strbuf_addf(o, "\nJails\n  %-20s %9s %8s %6s %9s %9s %10s\n", "JAIL", "FAILURES", "IGNORED",
		    "BANS", "(LOGGED)", "(ESTIM.)", "BANNED NOW");
	for (size_t j = 0; j < r->njails; j++) {
		const struct rjailstat *s = &r->jails[j];
		strbuf_addf(o, "  %-20s %9lu %8lu %6lu %9lu %9lu %10lu\n", s->name, s->failures,
			    s->ignored, s->bans[REPORT_BAN_STATE], s->bans[REPORT_BAN_LOG],
			    s->bans[REPORT_BAN_ESTIMATE], s->live);
	}

	strbuf_adds(o, "\nServices\n");
	size_t so[REPORT_MAXSVC];
	for (size_t i = 0; i < r->nsvc; i++) {
		size_t j = i;
		for (; j > 0 && r->svc_count[so[j - 1]] < r->svc_count[i]; j--)
			so[j] = so[j - 1];
		so[j] = i;
	}
	for (size_t i = 0; i < r->nsvc; i++)
		strbuf_addf(o, "  %-12s %9lu\n", r->svc[so[i]], r->svc_count[so[i]]);

	if (r->nhours) {
		/* one row per day, one column per jail (hours: --json, --html) */
		strbuf_adds(o, "\nAttacks per day and jail, UTC (per hour: --json, --html)\n  DAY        "
			       "     TOTAL");
		for (size_t j = 0; j < r->njails; j++)
			strbuf_addf(o, " %*s", jail_width(r->jails[j].name), r->jails[j].name);
		strbuf_addc(o, '\n');
		unsigned long *row = xcalloc(r->njails + 1, sizeof *row);
		long day = r->hours[0].hour / 24, hour = r->hours[0].hour, peak_h = hour;
		unsigned long n = 0, hn = 0, peak = 0;
		for (size_t i = 0; i <= r->nhours; i++) {
			const struct rhour *h = i < r->nhours ? &r->hours[i] : NULL;
			if (!h || h->hour / 24 != day) {
				gmt_day(day, a, sizeof a);
				strbuf_addf(o, "  %s %9lu", a, n);
				for (size_t j = 0; j < r->njails; j++)
					strbuf_addf(o, " %*lu", jail_width(r->jails[j].name), row[j]);
				strbuf_addc(o, '\n');
				if (!h)
					break;
				day = h->hour / 24;
				n = 0;
				memset(row, 0, (r->njails + 1) * sizeof *row);
			}
			if (h->hour != hour) {
				hour = h->hour;
				hn = 0;
			}
			n += h->n;
			hn += h->n;
			if (h->jail < r->njails)
				row[h->jail] += h->n;
			if (hn > peak) {
				peak = hn;
				peak_h = hour;
			}
		}
		free(row);
		gmt_day(peak_h / 24, a, sizeof a);
		strbuf_addf(o, "  busiest hour: %s %02ld:00 UTC with %lu failures\n", a, peak_h % 24,
			    peak);
	}

	struct strbuf t = STRBUF_INIT;
	/* the CC column only when a GeoIP database was used */
	int cc = r->geo_name != NULL;
	strbuf_addf(o, "\nTop addresses\n  %-39s %s%8s %5s  %-19s  %-19s  %s\n", "ADDRESS",
		    cc ? "CC  " : "", "FAILURES", "BANS", "FIRST SEEN", "LAST SEEN", "TRIED");
	for (size_t i = 0; i < topn(r, r->naddrs); i++) {
		const struct raddr *x = &r->addrs[r->addr_order[i]];
		report_time(x->first, a, sizeof a);
		report_time(x->last, b, sizeof b);
		strbuf_reset(&t);
		report_kind_list(x->kinds, &t);
		strbuf_addf(o, "  %-39s %-*s%8lu %5u  %-19s  %-19s  %s\n", x->id, cc ? 4 : 0,
			    cc ? (x->cc[0] ? x->cc : "-") : "", x->count, report_addr_bans(x), a, b,
			    strbuf_str(&t));
	}

	strbuf_addf(o, "\nTop networks\n  %-43s %s%8s %9s  %-19s  %s\n", "NETWORK",
		    cc ? "CC  " : "", "FAILURES", "ADDRESSES", "LAST SEEN", "TRIED");
	for (size_t i = 0; i < topn(r, r->nnets); i++) {
		const struct rnet *x = &r->nets[r->net_order[i]];
		report_time(x->last, b, sizeof b);
		strbuf_reset(&t);
		report_kind_list(x->kinds, &t);
		strbuf_addf(o, "  %-43s %-*s%8lu %9lu  %-19s  %s\n", x->net, cc ? 4 : 0,
			    cc ? (x->cc[0] ? x->cc : "-") : "", x->count, x->naddrs, b,
			    strbuf_str(&t));
	}

	strbuf_addf(o, "\nUser names tried (%zu distinct%s)\n  %-32s %8s  %-20s %s\n", r->nusers,
		    r->untracked_users ? ", more untracked" : "", "USER", "ATTEMPTS", "SERVICES",
		    "LAST FROM");
	for (size_t i = 0; i < topn(r, r->nusers); i++) {
		const struct ruser *u = &r->users[r->user_order[i]];
		strbuf_reset(&t);
		svc_list(r, u->services, &t);
		strbuf_addf(o, "  %-32s %8lu  %-20s %s\n", u->name, u->count, strbuf_str(&t),
			    u->last_addr != (size_t)-1 ? r->addrs[u->last_addr].id : "-");
	}

	size_t kr = 0, ks = 0;
	for (size_t k = 0; k < report_nkinds; k++) {
		if (strcmp(report_kinds[k].name, "relay_denied") == 0)
			kr = k;
		if (strcmp(report_kinds[k].name, "spoof") == 0)
			ks = k;
	}
	strbuf_addf(o, "\nRelay and spoof attempts\n  relay denied: %lu from %lu addresses\n"
		       "  spoofed senders rejected: %lu from %lu addresses\n",
		    r->kinds[kr].count, r->kinds[kr].naddrs, r->kinds[ks].count, r->kinds[ks].naddrs);
	size_t *ord = report_table_order(&r->relay_targets);
	for (size_t i = 0; i < topn(r, r->relay_targets.n); i++)
		strbuf_addf(o, "  relay target %-32s %8lu\n", r->relay_targets.v[ord[i]].key,
			    r->relay_targets.v[ord[i]].n);
	free(ord);

	strbuf_addf(o, "\nGreylisting and rate limits\n  from logs: %lu greylisted, %lu passed "
		       "greylisting, %lu rate-limited, %lu spoof rejects by policy\n",
		    r->gl_deferred, r->gl_passed, r->rl_limited, r->pol_spoof);
	if (r->have_pstate)
		strbuf_addf(o, "  from state: %lu greylist triplets (%lu passed, %lu waiting), %lu "
			       "clients passed (%lu auto-whitelisted), %lu rate-limit keys exceeded "
			       "%lu times\n",
			    r->pstate.triplets, r->pstate.passed, r->pstate.waiting, r->pstate.clients,
			    r->pstate.whitelisted, r->pstate.rl_keys, r->pstate.rl_exceeded);
	else
		strbuf_adds(o, "  from state: no policy data\n");

	strbuf_addf(o, "\nBans: %lu (%lu from state, %lu from logs, %lu estimated), %lu in force, "
		       "%zu repeat offenders\n",
		    bans_total(r, -1), bans_total(r, REPORT_BAN_STATE), bans_total(r, REPORT_BAN_LOG),
		    bans_total(r, REPORT_BAN_ESTIMATE), live_total(r), r->nrepeat);
	if (r->nrepeat) {
		strbuf_addf(o, "  %-39s %5s %8s  %s\n", "ADDRESS", "BANS", "BANCOUNT", "JAILS");
		for (size_t i = 0; i < topn(r, r->nrepeat); i++) {
			const struct raddr *x = &r->addrs[r->repeat_order[i]];
			strbuf_reset(&t);
			report_jail_list(r, x->jails, &t);
			strbuf_addf(o, "  %-39s %5u %8u  %s%s\n", x->id, report_addr_bans(x),
				    x->maxbancount,
				    strbuf_str(&t), x->live ? " (banned now)" : "");
		}
	}

	if (r->audit && !r->audit_json) {
		strbuf_adds(o, "\nWhat the audit flags (mxjail audit)\n  ");
		for (const char *p = r->audit; *p; p++) {
			strbuf_addc(o, *p);
			if (*p == '\n' && p[1] != '\n')
				strbuf_adds(o, "  ");
		}
		strbuf_addc(o, '\n');
	}

	if (r->countries.n) {
		strbuf_adds(o, "\nCountries\n");
		ord = report_table_order(&r->countries);
		for (size_t i = 0; i < topn(r, r->countries.n); i++)
			strbuf_addf(o, "  %-4s %8lu failures %6lu addresses\n",
				    r->countries.v[ord[i]].key, r->countries.v[ord[i]].n,
				    r->countries.v[ord[i]].naddrs);
		free(ord);
	}
	if (r->asns.n) {
		strbuf_adds(o, "\nAutonomous systems\n");
		ord = report_table_order(&r->asns);
		for (size_t i = 0; i < topn(r, r->asns.n); i++)
			strbuf_addf(o, "  %-10s %8lu failures %6lu addresses  %s\n",
				    r->asns.v[ord[i]].key, r->asns.v[ord[i]].n,
				    r->asns.v[ord[i]].naddrs,
				    r->asns.v[ord[i]].extra ? r->asns.v[ord[i]].extra : "");
		free(ord);
	}
	strbuf_free(&t);
}

/* ---------- JSON ---------- */

static void js(struct strbuf *o, const char *s)
{
	strbuf_add_json(o, s, strlen(s));
}

static void jtime(struct strbuf *o, double t)
{
	if (t > 0)
		strbuf_addf(o, "%.0f", t);
	else
		strbuf_adds(o, "null");
}

static void jkinds(struct strbuf *o, uint64_t mask)
{
	strbuf_addc(o, '[');
	int first = 1;
	for (size_t k = 0; k < report_nkinds; k++)
		if (mask & (1ULL << k)) {
			if (!first)
				strbuf_addc(o, ',');
			js(o, report_kinds[k].name);
			first = 0;
		}
	strbuf_addc(o, ']');
}

static void jjails(const struct report *r, struct strbuf *o, uint64_t mask)
{
	strbuf_addc(o, '[');
	int first = 1;
	for (size_t j = 0; j < r->njails && j < REPORT_MAXJAILS; j++)
		if (mask & (1ULL << j)) {
			if (!first)
				strbuf_addc(o, ',');
			js(o, r->jails[j].name);
			first = 0;
		}
	strbuf_addc(o, ']');
}

static void jtable(const struct report *r, struct strbuf *o, const struct rtable *t,
		   const char *keyname, int with_addrs)
{
	size_t *ord = report_table_order(t);
	strbuf_addc(o, '[');
	for (size_t i = 0; i < topn(r, t->n); i++) {
		const struct rcount *c = &t->v[ord[i]];
		strbuf_addf(o, "%s{\"%s\":", i ? "," : "", keyname);
		js(o, c->key);
		strbuf_addf(o, ",\"count\":%lu", c->n);
		if (with_addrs)
			strbuf_addf(o, ",\"addresses\":%lu", c->naddrs);
		if (c->extra) {
			strbuf_adds(o, ",\"organisation\":");
			js(o, c->extra);
		}
		strbuf_addc(o, '}');
	}
	strbuf_addc(o, ']');
	free(ord);
}

void report_format_json(const struct report *r, struct strbuf *o)
{
	double first, last;
	span_of(r, &first, &last);
	strbuf_adds(o, "{\"report_version\":1,\"generated\":");
	jtime(o, r->now);
	strbuf_adds(o, ",\"since\":");
	jtime(o, r->o.since);
	strbuf_addf(o, ",\"lines\":%lu,\"sources\":[", r->lines);
	for (size_t i = 0; i < r->nsources; i++) {
		if (i)
			strbuf_addc(o, ',');
		js(o, r->sources[i]);
	}
	strbuf_addf(o, "],\"failures\":%lu,\"skipped_before_since\":%lu,\"first\":",
		    total_failures(r), r->skipped_old);
	jtime(o, first);
	strbuf_adds(o, ",\"last\":");
	jtime(o, last);
	strbuf_addf(o, ",\"distinct_addresses\":%zu,\"distinct_networks\":%zu,\"truncated\":%s",
		    r->naddrs, r->nnets,
		    r->untracked_addrs || r->untracked_users || r->untracked_bans ? "true" : "false");
	strbuf_adds(o, ",\"geoip\":");
	if (r->geo_name)
		js(o, r->geo_name);
	else
		strbuf_adds(o, "null");
	strbuf_adds(o, ",\"notes\":[");
	for (size_t i = 0; i < r->nnotes; i++) {
		if (i)
			strbuf_addc(o, ',');
		js(o, r->notes[i]);
	}
	strbuf_adds(o, "]");

	strbuf_adds(o, ",\"kinds\":{");
	int firstk = 1;
	for (size_t k = 0; k < report_nkinds; k++) {
		const struct rkindstat *s = &r->kinds[k];
		if (!s->count)
			continue;
		if (!firstk)
			strbuf_addc(o, ',');
		firstk = 0;
		js(o, report_kinds[k].name);
		strbuf_adds(o, ":{\"label\":");
		js(o, report_kinds[k].label);
		strbuf_adds(o, ",\"service\":");
		js(o, report_kinds[k].service);
		strbuf_addf(o, ",\"lines\":%lu,\"distinct_addresses\":%lu,\"first\":", s->count,
			    s->naddrs);
		jtime(o, s->first);
		strbuf_adds(o, ",\"last\":");
		jtime(o, s->last);
		strbuf_addc(o, '}');
	}
	strbuf_adds(o, "}");

	strbuf_adds(o, ",\"jails\":[");
	for (size_t j = 0; j < r->njails; j++) {
		const struct rjailstat *s = &r->jails[j];
		strbuf_addf(o, "%s{\"name\":", j ? "," : "");
		js(o, s->name);
		strbuf_addf(o, ",\"failures\":%lu,\"ignored\":%lu,\"bans\":{\"state\":%lu,\"log\":%lu,"
			       "\"estimated\":%lu},\"banned_now\":%lu}",
			    s->failures, s->ignored, s->bans[REPORT_BAN_STATE], s->bans[REPORT_BAN_LOG],
			    s->bans[REPORT_BAN_ESTIMATE], s->live);
	}
	strbuf_adds(o, "]");

	strbuf_adds(o, ",\"services\":{");
	for (size_t i = 0; i < r->nsvc; i++) {
		if (i)
			strbuf_addc(o, ',');
		js(o, r->svc[i]);
		strbuf_addf(o, ":%lu", r->svc_count[i]);
	}
	strbuf_adds(o, "}");

	strbuf_adds(o, ",\"hourly\":[");
	for (size_t i = 0; i < r->nhours; i++) {
		strbuf_addf(o, "%s{\"hour\":%ld,\"jail\":", i ? "," : "", r->hours[i].hour * 3600L);
		js(o, r->jails[r->hours[i].jail].name);
		strbuf_addf(o, ",\"count\":%lu}", r->hours[i].n);
	}
	strbuf_adds(o, "]");

	strbuf_adds(o, ",\"top_addresses\":[");
	for (size_t i = 0; i < topn(r, r->naddrs); i++) {
		const struct raddr *x = &r->addrs[r->addr_order[i]];
		strbuf_addf(o, "%s{\"address\":", i ? "," : "");
		js(o, x->id);
		strbuf_addf(o, ",\"count\":%lu,\"first\":", x->count);
		jtime(o, x->first);
		strbuf_adds(o, ",\"last\":");
		jtime(o, x->last);
		strbuf_adds(o, ",\"kinds\":");
		jkinds(o, x->kinds);
		strbuf_adds(o, ",\"jails\":");
		jjails(r, o, x->jails);
		strbuf_addf(o, ",\"bans\":%u,\"estimated_bans\":%u,\"network\":", x->bans,
			    x->est_bans);
		if (x->net != (size_t)-1)
			js(o, r->nets[x->net].net);
		else
			strbuf_adds(o, "null");
		if (x->cc[0]) {
			strbuf_adds(o, ",\"country\":");
			js(o, x->cc);
		}
		if (x->asn) {
			strbuf_addf(o, ",\"asn\":%u,\"as_org\":", x->asn);
			js(o, x->org ? x->org : "");
		}
		strbuf_addc(o, '}');
	}
	strbuf_adds(o, "]");

	strbuf_adds(o, ",\"top_networks\":[");
	for (size_t i = 0; i < topn(r, r->nnets); i++) {
		const struct rnet *x = &r->nets[r->net_order[i]];
		strbuf_addf(o, "%s{\"network\":", i ? "," : "");
		js(o, x->net);
		strbuf_addf(o, ",\"count\":%lu,\"addresses\":%lu,\"first\":", x->count, x->naddrs);
		jtime(o, x->first);
		strbuf_adds(o, ",\"last\":");
		jtime(o, x->last);
		strbuf_adds(o, ",\"kinds\":");
		jkinds(o, x->kinds);
		if (x->cc[0]) {
			strbuf_adds(o, ",\"country\":");
			js(o, x->cc);
		}
		strbuf_addc(o, '}');
	}
	strbuf_adds(o, "]");

	strbuf_addf(o, ",\"users\":{\"distinct\":%zu,\"top\":[", r->nusers);
	for (size_t i = 0; i < topn(r, r->nusers); i++) {
		const struct ruser *u = &r->users[r->user_order[i]];
		strbuf_addf(o, "%s{\"user\":", i ? "," : "");
		js(o, u->name);
		strbuf_addf(o, ",\"count\":%lu,\"services\":[", u->count);
		int f = 1;
		for (size_t s = 0; s < r->nsvc; s++)
			if (u->services & (1U << s)) {
				if (!f)
					strbuf_addc(o, ',');
				js(o, r->svc[s]);
				f = 0;
			}
		strbuf_adds(o, "],\"kinds\":");
		jkinds(o, u->kinds);
		strbuf_adds(o, ",\"last_address\":");
		if (u->last_addr != (size_t)-1)
			js(o, r->addrs[u->last_addr].id);
		else
			strbuf_adds(o, "null");
		strbuf_adds(o, ",\"last\":");
		jtime(o, u->last);
		strbuf_addc(o, '}');
	}
	strbuf_adds(o, "]}");

	unsigned long relay = 0, spoof = 0, relay_a = 0, spoof_a = 0;
	for (size_t k = 0; k < report_nkinds; k++) {
		if (strcmp(report_kinds[k].name, "relay_denied") == 0) {
			relay = r->kinds[k].count;
			relay_a = r->kinds[k].naddrs;
		}
		if (strcmp(report_kinds[k].name, "spoof") == 0) {
			spoof = r->kinds[k].count;
			spoof_a = r->kinds[k].naddrs;
		}
	}
	strbuf_addf(o, ",\"relay_spoof\":{\"relay_denied\":%lu,\"relay_addresses\":%lu,"
		       "\"spoof\":%lu,\"spoof_addresses\":%lu,\"top_relay_targets\":",
		    relay, relay_a, spoof, spoof_a);
	jtable(r, o, &r->relay_targets, "domain", 0);
	strbuf_adds(o, ",\"top_spoofed_senders\":");
	jtable(r, o, &r->spoof_senders, "sender", 0);
	strbuf_adds(o, "}");

	strbuf_addf(o, ",\"policy\":{\"log\":{\"greylisted\":%lu,\"greylist_passed\":%lu,"
		       "\"rate_limited\":%lu,\"spoof_rejected\":%lu},\"state\":",
		    r->gl_deferred, r->gl_passed, r->rl_limited, r->pol_spoof);
	if (r->have_pstate)
		strbuf_addf(o, "{\"greylist_triplets\":%lu,\"greylist_passed\":%lu,"
			       "\"greylist_waiting\":%lu,\"greylist_clients\":%lu,"
			       "\"auto_whitelisted\":%lu,\"ratelimit_keys\":%lu,"
			       "\"ratelimit_exceeded\":%lu}}",
			    r->pstate.triplets, r->pstate.passed, r->pstate.waiting, r->pstate.clients,
			    r->pstate.whitelisted, r->pstate.rl_keys, r->pstate.rl_exceeded);
	else
		strbuf_adds(o, "null}");

	strbuf_addf(o, ",\"bans\":{\"total\":%lu,\"by_source\":{\"state\":%lu,\"log\":%lu,"
		       "\"estimated\":%lu},\"banned_now\":%lu,\"repeat_offenders\":%zu,"
		       "\"top_repeat_offenders\":[",
		    bans_total(r, -1), bans_total(r, REPORT_BAN_STATE), bans_total(r, REPORT_BAN_LOG),
		    bans_total(r, REPORT_BAN_ESTIMATE), live_total(r), r->nrepeat);
	for (size_t i = 0; i < topn(r, r->nrepeat); i++) {
		const struct raddr *x = &r->addrs[r->repeat_order[i]];
		strbuf_addf(o, "%s{\"address\":", i ? "," : "");
		js(o, x->id);
		strbuf_addf(o, ",\"bans\":%u,\"estimated_bans\":%u,\"max_bancount\":%u,"
			       "\"banned_now\":%s,\"jails\":",
			    x->bans, x->est_bans, x->maxbancount, x->live ? "true" : "false");
		jjails(r, o, x->jails);
		strbuf_addc(o, '}');
	}
	strbuf_adds(o, "]}");

	strbuf_adds(o, ",\"audit\":");
	strbuf_adds(o, r->audit && r->audit_json ? r->audit : "null");
	strbuf_adds(o, ",\"countries\":");
	jtable(r, o, &r->countries, "country", 1);
	strbuf_adds(o, ",\"asns\":");
	jtable(r, o, &r->asns, "asn", 1);
	strbuf_adds(o, "}\n");
}
