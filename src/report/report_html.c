/*
 * report_html - the report as one self-contained HTML page.
 *
 * The page has no scripts, no fonts, no images and no links to fetch: the
 * charts are inline SVG drawn here (a stacked bar timeline of failures per
 * jail, horizontal bars for the top addresses, networks, user names, kinds
 * and services), followed by the same tables as the text report. It can be
 * mailed, archived or opened on a machine without network access. Every
 * string from a log is HTML-escaped; bars carry a <title> for hover text.
 * Elements have stable ids and classes (svg#timeline, rect.bar) so tests
 * can find them in the DOM.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "report/report_int.h"

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
				      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
#define NPALETTE (sizeof palette / sizeof palette[0])

static void esc(struct strbuf *o, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': strbuf_adds(o, "&lt;"); break;
		case '>': strbuf_adds(o, "&gt;"); break;
		case '&': strbuf_adds(o, "&amp;"); break;
		case '"': strbuf_adds(o, "&quot;"); break;
		case '\'': strbuf_adds(o, "&#39;"); break;
		default: strbuf_addc(o, *s);
		}
	}
}

static size_t topn(const struct report *r, size_t n)
{
	return n < r->o.top ? n : r->o.top;
}

static void utc(double t, const char *fmt, char *buf, size_t len)
{
	time_t s = (time_t)t;
	struct tm tm;
	gmtime_r(&s, &tm);
	strftime(buf, len, fmt, &tm);
}

/* ---------- charts ---------- */

/* Failures per time bucket, one stacked colour per jail. Buckets are hours,
 * or whole days when the log spans more than 20 days, so the chart keeps
 * at most ~500 columns whatever the input. */
static void timeline(const struct report *r, struct strbuf *o)
{
	if (!r->nhours) {
		strbuf_adds(o, "<p class=\"empty\">No dated failures.</p>\n");
		return;
	}
	long h0 = r->hours[0].hour, h1 = r->hours[r->nhours - 1].hour;
	long step = 1;
	while ((h1 - h0) / step + 1 > 500)
		step = step < 24 ? 24 : step * 2;
	size_t nb = (size_t)((h1 - h0) / step + 1);
	size_t nj = r->njails ? r->njails : 1;
	unsigned long *cell = xcalloc(nb * nj, sizeof *cell);
	unsigned long *tot = xcalloc(nb, sizeof *tot);
	unsigned long max = 1;
	for (size_t i = 0; i < r->nhours; i++) {
		size_t b = (size_t)((r->hours[i].hour - h0) / step);
		cell[b * nj + r->hours[i].jail] += r->hours[i].n;
		tot[b] += r->hours[i].n;
		if (tot[b] > max)
			max = tot[b];
	}
	const double W = 1100, H = 300, L = 60, B = 40, T = 10;
	double bw = (W - L - 10) / (double)nb;
	strbuf_addf(o, "<svg id=\"timeline\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
		       "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">"
		       "<title>Failures per %s and jail</title>\n",
		    W, H, W, H, step == 1 ? "hour" : "period");
	/* y axis with 4 grid lines */
	for (int g = 0; g <= 4; g++) {
		double y = T + (H - T - B) * (1.0 - g / 4.0);
		strbuf_addf(o, "<line class=\"grid\" x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" "
			       "stroke=\"#ddd\"/><text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" "
			       "text-anchor=\"end\">%lu</text>\n",
			    L, y, W - 10, y, L - 4, y + 4, (unsigned long)llround(max * g / 4.0));
	}
	strbuf_adds(o, "<g class=\"bars\">\n");
	for (size_t b = 0; b < nb; b++) {
		double x = L + bw * (double)b, y = H - B;
		char when[32];
		utc((double)(h0 + (long)b * step) * 3600.0, step < 24 ? "%Y-%m-%d %H:00" : "%Y-%m-%d",
		    when, sizeof when);
		for (size_t j = 0; j < nj; j++) {
			unsigned long n = cell[b * nj + j];
			if (!n)
				continue;
			double h = (H - T - B) * (double)n / (double)max;
			y -= h;
			strbuf_addf(o, "<rect class=\"bar\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
				       "height=\"%.2f\" fill=\"%s\"><title>",
				    x, y, bw > 1.5 ? bw - 0.5 : bw, h, palette[j % NPALETTE]);
			esc(o, when);
			strbuf_adds(o, " UTC, ");
			esc(o, r->njails ? r->jails[j].name : "");
			strbuf_addf(o, ": %lu</title></rect>\n", n);
		}
	}
	strbuf_adds(o, "</g>\n");
	/* x labels: about eight */
	size_t every = nb / 8 ? nb / 8 : 1;
	for (size_t b = 0; b < nb; b += every) {
		char when[32];
		utc((double)(h0 + (long)b * step) * 3600.0, step < 24 ? "%m-%d %H:00" : "%Y-%m-%d",
		    when, sizeof when);
		strbuf_addf(o, "<text x=\"%.1f\" y=\"%.0f\" font-size=\"11\">%s</text>\n",
			    L + bw * (double)b, H - B + 16, when);
	}
	strbuf_addf(o, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#333\"/>\n", L,
		    H - B, W - 10, H - B);
	strbuf_adds(o, "</svg>\n<p class=\"legend\">");
	for (size_t j = 0; j < r->njails; j++) {
		if (!r->jails[j].failures)
			continue;
		strbuf_addf(o, "<span><i style=\"background:%s\"></i>", palette[j % NPALETTE]);
		esc(o, r->jails[j].name);
		strbuf_adds(o, "</span> ");
	}
	strbuf_adds(o, "</p>\n");
	free(cell);
	free(tot);
}

struct hbar {
	const char *label;
	const char *note;
	unsigned long n;
};

/* Horizontal bars, largest first (the caller sorts). */
static void hbars(struct strbuf *o, const char *id, const char *title, const struct hbar *v,
		  size_t n)
{
	if (!n) {
		strbuf_addf(o, "<p class=\"empty\" id=\"%s\">Nothing to show.</p>\n", id);
		return;
	}
	unsigned long max = 1;
	for (size_t i = 0; i < n; i++)
		if (v[i].n > max)
			max = v[i].n;
	const double W = 900, L = 290, RH = 20;
	double H = RH * (double)n + 10;
	strbuf_addf(o, "<svg id=\"%s\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
		       "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\"><title>",
		    id, W, H, W, H);
	esc(o, title);
	strbuf_adds(o, "</title>\n<g class=\"bars\">\n");
	for (size_t i = 0; i < n; i++) {
		double y = 5 + RH * (double)i;
		double w = (W - L - 80) * (double)v[i].n / (double)max;
		if (w < 1)
			w = 1;
		strbuf_addf(o, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\">",
			    L - 6, y + 14);
		esc(o, v[i].label);
		strbuf_addf(o, "</text><rect class=\"bar\" x=\"%.0f\" y=\"%.1f\" width=\"%.1f\" "
			       "height=\"%.0f\" fill=\"%s\"><title>",
			    L, y + 2, w, RH - 4, palette[i % NPALETTE]);
		esc(o, v[i].label);
		strbuf_addf(o, ": %lu", v[i].n);
		if (v[i].note && *v[i].note) {
			strbuf_adds(o, " (");
			esc(o, v[i].note);
			strbuf_adds(o, ")");
		}
		strbuf_addf(o, "</title></rect><text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">%lu</text>\n",
			    L + w + 4, y + 14, v[i].n);
	}
	strbuf_adds(o, "</g></svg>\n");
}

/* ---------- page ---------- */

static void th(struct strbuf *o, const char *const *cols)
{
	strbuf_adds(o, "<table><thead><tr>");
	for (; *cols; cols++)
		strbuf_addf(o, "<th>%s</th>", *cols);
	strbuf_adds(o, "</tr></thead><tbody>\n");
}

static void td(struct strbuf *o, const char *s)
{
	strbuf_adds(o, "<td>");
	esc(o, s);
	strbuf_adds(o, "</td>");
}

/* A list cell: may wrap after each comma. */
static void tdw(struct strbuf *o, const char *s)
{
	strbuf_adds(o, "<td class=\"w\">");
	for (; *s; s++) {
		char c[2] = {*s, 0};
		esc(o, c);
		if (*s == ',')
			strbuf_addc(o, ' ');
	}
	strbuf_adds(o, "</td>");
}

static void tdn(struct strbuf *o, unsigned long n)
{
	strbuf_addf(o, "<td class=\"n\">%lu</td>", n);
}

void report_format_html(const struct report *r, struct strbuf *o)
{
	char a[32], b[32];
	struct strbuf t = STRBUF_INIT;
	strbuf_adds(o,
		    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
		    "<title>mxjail report</title>\n<style>\n"
		    "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1150px}\n"
		    "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px "
		    "solid #ccc}\n"
		    "table{border-collapse:collapse;font-size:.9em;margin:.5em 0}"
		    "td,th{padding:.15em .6em;border-bottom:1px solid #eee;text-align:left;"
		    "white-space:nowrap}td.w{white-space:normal;font-size:.8em;min-width:20em}"
		    "td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
		    ".legend span{margin-right:1em}.legend i{display:inline-block;width:.9em;"
		    "height:.9em;margin-right:.3em;vertical-align:middle}\n"
		    ".summary{font-size:1.05em}.empty{color:#777}\n"
		    "</style></head><body>\n<h1>mxjail attack report</h1>\n");

	double first = 0, last = 0;
	for (size_t k = 0; k < report_nkinds; k++) {
		if (r->kinds[k].first > 0 && (first <= 0 || r->kinds[k].first < first))
			first = r->kinds[k].first;
		if (r->kinds[k].last > last)
			last = r->kinds[k].last;
	}
	report_time(first, a, sizeof a);
	report_time(last, b, sizeof b);
	strbuf_addf(o, "<p class=\"summary\" id=\"summary\"><b>%lu</b> failures from <b>%zu</b> "
		       "addresses in <b>%zu</b> networks (/24, /64), ",
		    r->events, r->naddrs, r->nnets);
	esc(o, a);
	strbuf_adds(o, " to ");
	esc(o, b);
	strbuf_addf(o, "; %lu log lines read", r->lines);
	if (r->nsources) {
		strbuf_adds(o, " from ");
		for (size_t i = 0; i < r->nsources; i++) {
			if (i)
				strbuf_adds(o, ", ");
			esc(o, r->sources[i]);
		}
	}
	strbuf_adds(o, ".</p>\n");
	if (r->geo_name) {
		strbuf_adds(o, "<p>GeoIP: ");
		esc(o, r->geo_name);
		strbuf_adds(o, "</p>\n");
	}
	for (size_t i = 0; i < r->nnotes; i++) {
		strbuf_adds(o, "<p class=\"note\">");
		esc(o, r->notes[i]);
		strbuf_adds(o, "</p>\n");
	}

	strbuf_adds(o, "<h2>Timeline</h2>\n");
	timeline(r, o);

	/* kinds and services */
	struct hbar *v = xcalloc(report_nkinds + REPORT_MAXSVC + r->o.top + 1, sizeof *v);
	size_t n = 0;
	for (size_t k = 0; k < report_nkinds; k++)
		if (r->kinds[k].count)
			v[n++] = (struct hbar){report_kinds[k].label, report_kinds[k].name,
					       r->kinds[k].count};
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && v[j].n > v[j - 1].n; j--) {
			struct hbar x = v[j];
			v[j] = v[j - 1];
			v[j - 1] = x;
		}
	strbuf_adds(o, "<h2>What they tried</h2>\n");
	hbars(o, "kinds", "Failures per kind of attack", v, n);
	n = 0;
	for (size_t i = 0; i < r->nsvc; i++)
		v[n++] = (struct hbar){r->svc[i], NULL, r->svc_count[i]};
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && v[j].n > v[j - 1].n; j--) {
			struct hbar x = v[j];
			v[j] = v[j - 1];
			v[j - 1] = x;
		}
	strbuf_adds(o, "<h2>Per service</h2>\n");
	hbars(o, "services", "Failures per service", v, n);
	{
		static const char *const c[] = {"kind", "service", "lines", "addresses",
						"first", "last", NULL};
		th(o, c);
		for (size_t k = 0; k < report_nkinds; k++) {
			const struct rkindstat *s = &r->kinds[k];
			if (!s->count)
				continue;
			report_time(s->first, a, sizeof a);
			report_time(s->last, b, sizeof b);
			strbuf_adds(o, "<tr>");
			td(o, report_kinds[k].label);
			td(o, report_kinds[k].service);
			tdn(o, s->count);
			tdn(o, s->naddrs);
			td(o, a);
			td(o, b);
			strbuf_adds(o, "</tr>\n");
		}
		strbuf_adds(o, "</tbody></table>\n");
	}

	/* top addresses */
	n = 0;
	for (size_t i = 0; i < topn(r, r->naddrs); i++) {
		const struct raddr *x = &r->addrs[r->addr_order[i]];
		v[n++] = (struct hbar){x->id, x->cc, x->count};
	}
	strbuf_adds(o, "<h2>Top addresses</h2>\n");
	hbars(o, "top-addresses", "Failures per address", v, n);
	{
		/* country and AS columns only when a GeoIP database was used */
		static const char *const cg[] = {"address", "country", "AS", "failures", "bans",
						 "first seen", "last seen", "tried", NULL};
		static const char *const c[] = {"address", "failures", "bans", "first seen",
						"last seen", "tried", NULL};
		th(o, r->geo_name ? cg : c);
		for (size_t i = 0; i < topn(r, r->naddrs); i++) {
			const struct raddr *x = &r->addrs[r->addr_order[i]];
			report_time(x->first, a, sizeof a);
			report_time(x->last, b, sizeof b);
			strbuf_reset(&t);
			report_kind_list(x->kinds, &t);
			char as[160] = "";
			if (x->asn)
				snprintf(as, sizeof as, "AS%u %s", x->asn, x->org ? x->org : "");
			strbuf_adds(o, "<tr>");
			td(o, x->id);
			if (r->geo_name) {
				td(o, x->cc);
				td(o, as);
			}
			tdn(o, x->count);
			tdn(o, report_addr_bans(x));
			td(o, a);
			td(o, b);
			tdw(o, strbuf_str(&t));
			strbuf_adds(o, "</tr>\n");
		}
		strbuf_adds(o, "</tbody></table>\n");
	}

	n = 0;
	for (size_t i = 0; i < topn(r, r->nnets); i++) {
		const struct rnet *x = &r->nets[r->net_order[i]];
		v[n++] = (struct hbar){x->net, x->cc, x->count};
	}
	strbuf_adds(o, "<h2>Top networks</h2>\n");
	hbars(o, "top-networks", "Failures per /24 or /64 network", v, n);

	n = 0;
	for (size_t i = 0; i < topn(r, r->nusers); i++) {
		const struct ruser *u = &r->users[r->user_order[i]];
		v[n++] = (struct hbar){u->name, NULL, u->count};
	}
	strbuf_addf(o, "<h2>User names tried (%zu distinct)</h2>\n", r->nusers);
	hbars(o, "top-users", "Attempts per user name", v, n);

	/* relay, spoof, policy, bans */
	strbuf_adds(o, "<h2>Relay and spoof attempts</h2>\n");
	for (size_t k = 0; k < report_nkinds; k++)
		if (report_kinds[k].relay_spoof)
			strbuf_addf(o, "<p>%s: <b>%lu</b> from %lu addresses</p>\n",
				    report_kinds[k].label, r->kinds[k].count, r->kinds[k].naddrs);
	if (r->relay_targets.n) {
		size_t *ord = report_table_order(&r->relay_targets);
		n = 0;
		for (size_t i = 0; i < topn(r, r->relay_targets.n); i++)
			v[n++] = (struct hbar){r->relay_targets.v[ord[i]].key, NULL,
					       r->relay_targets.v[ord[i]].n};
		hbars(o, "relay-targets", "Relay attempts per target domain", v, n);
		free(ord);
	}

	strbuf_addf(o, "<h2>Greylisting and rate limits</h2>\n<p>From the logs: %lu greylisted, "
		       "%lu passed greylisting, %lu rate-limited, %lu spoof rejects by policy.</p>\n",
		    r->gl_deferred, r->gl_passed, r->rl_limited, r->pol_spoof);
	if (r->have_pstate)
		strbuf_addf(o, "<p>From the state database: %lu greylist triplets (%lu passed, %lu "
			       "waiting), %lu clients passed (%lu auto-whitelisted), %lu rate-limit keys "
			       "exceeded %lu times.</p>\n",
			    r->pstate.triplets, r->pstate.passed, r->pstate.waiting, r->pstate.clients,
			    r->pstate.whitelisted, r->pstate.rl_keys, r->pstate.rl_exceeded);

	strbuf_adds(o, "<h2>Jails and bans</h2>\n");
	{
		static const char *const c[] = {"jail", "failures", "ignored", "bans (state)",
						"bans (logs)", "bans (estimated)", "banned now",
						NULL};
		th(o, c);
		for (size_t j = 0; j < r->njails; j++) {
			const struct rjailstat *s = &r->jails[j];
			strbuf_adds(o, "<tr>");
			td(o, s->name);
			tdn(o, s->failures);
			tdn(o, s->ignored);
			tdn(o, s->bans[REPORT_BAN_STATE]);
			tdn(o, s->bans[REPORT_BAN_LOG]);
			tdn(o, s->bans[REPORT_BAN_ESTIMATE]);
			tdn(o, s->live);
			strbuf_adds(o, "</tr>\n");
		}
		strbuf_adds(o, "</tbody></table>\n");
	}
	strbuf_addf(o, "<p>%zu repeat offenders (banned twice or more).</p>\n", r->nrepeat);
	if (r->nrepeat) {
		static const char *const c[] = {"address", "bans", "ban count", "jails", "now", NULL};
		th(o, c);
		for (size_t i = 0; i < topn(r, r->nrepeat); i++) {
			const struct raddr *x = &r->addrs[r->repeat_order[i]];
			strbuf_reset(&t);
			report_jail_list(r, x->jails, &t);
			strbuf_adds(o, "<tr>");
			td(o, x->id);
			tdn(o, report_addr_bans(x));
			tdn(o, x->maxbancount);
			tdw(o, strbuf_str(&t));
			td(o, x->live ? "banned" : "");
			strbuf_adds(o, "</tr>\n");
		}
		strbuf_adds(o, "</tbody></table>\n");
	}

	if (r->countries.n) {
		size_t *ord = report_table_order(&r->countries);
		n = 0;
		for (size_t i = 0; i < topn(r, r->countries.n); i++)
			v[n++] = (struct hbar){r->countries.v[ord[i]].key, NULL,
					       r->countries.v[ord[i]].n};
		strbuf_adds(o, "<h2>Countries</h2>\n");
		hbars(o, "countries", "Failures per country", v, n);
		free(ord);
	}
	if (r->asns.n) {
		size_t *ord = report_table_order(&r->asns);
		n = 0;
		for (size_t i = 0; i < topn(r, r->asns.n); i++)
			v[n++] = (struct hbar){r->asns.v[ord[i]].key, r->asns.v[ord[i]].extra,
					       r->asns.v[ord[i]].n};
		strbuf_adds(o, "<h2>Autonomous systems</h2>\n");
		hbars(o, "asns", "Failures per autonomous system", v, n);
		free(ord);
	}
	if (r->audit && !r->audit_json) {
		strbuf_adds(o, "<h2>What the audit flags</h2>\n<pre id=\"audit\">");
		esc(o, r->audit);
		strbuf_adds(o, "</pre>\n");
	}
	free(v);
	strbuf_free(&t);
	report_time(r->now, a, sizeof a);
	strbuf_adds(o, "<p class=\"empty\">Made by mxjail report at ");
	esc(o, a);
	strbuf_adds(o, ".</p>\n</body></html>\n");
}
