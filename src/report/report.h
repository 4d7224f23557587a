/*
 * report - `mxjail report`: what attacked this host, from where, trying what.
 *
 * INTERFACE: a struct report aggregates failures (one call per matched log
 * line, with the jails whose filters matched it), bans (from the state
 * database, from mxjail's or fail2ban's own "NOTICE [jail] Ban ADDR" log
 * lines, or estimated by the caller from the jails' maxretry/findtime), key/
 * value rows of the policy service (greylist, rate limits) and policy
 * outcomes found in the mail log. report_finish() sorts and sums; the
 * formatters then append a text table, a JSON document or one self-contained
 * HTML page (inline SVG charts, no external assets) to a strbuf.
 *
 * What kind of attack a line is comes from a fixed table of known messages
 * (report_kind.c: SASL failure, relay denied, unknown user, invalid ssh user,
 * ...); a line none of them knows is counted as "other" under its jail.
 *
 * SECURITY: every table keyed by text from the log (addresses, networks, user
 * names, relay targets, hours) has a cap; past it new keys are counted as
 * "untracked" and the report says that its distinct counts are lower bounds.
 * Nothing here prints or opens files except report_geo_open().
 */
#ifndef MXJAIL_REPORT_REPORT_H
#define MXJAIL_REPORT_REPORT_H

#include <stddef.h>
#include <stdint.h>

struct strbuf;
struct report;
struct report_geo;

struct report_opts {
	double since;          /* ignore events before this epoch (<= 0: everything) */
	size_t top;            /* rows in the top-N tables (default 20) */
	size_t max_keys;       /* cap of each keyed table (default 500000) */
};

/* ---- attack kinds (report_kind.c) ---- */

struct report_kind {
	const char *name;      /* stable identifier used in JSON, e.g. "sasl_auth_failed" */
	const char *label;     /* for people */
	const char *service;   /* default service: "smtp", "imap/pop3", "ssh", ... */
	int relay_spoof;       /* 1: counted in the relay/spoof section */
};
extern const struct report_kind report_kinds[];
extern const size_t report_nkinds;

/* Index into report_kinds of what a log line is; the last entry ("other")
 * when no known message matches. */
size_t report_classify(const char *line, size_t len);
/* The service a line was aimed at ("submission" for postfix/submission/smtpd,
 * "imap" for imap-login ...), else the kind's default. Static string. */
const char *report_service(const char *line, size_t len, size_t kind);
/* A user name found in the line by a known pattern (user=<x>, "Invalid user
 * x from", sasl_username=x, "Failed password for x from"); copies at most
 * len - 1 bytes into buf. Returns 1 when one was found. */
int report_find_user(const char *line, size_t len, char *buf, size_t buflen);
/* The address in to=<...> (relay attempts) or from=<...> (spoof); 1 if found. */
int report_find_field(const char *line, size_t len, const char *field, char *buf,
		      size_t buflen);

/* ---- aggregation (report.c) ---- */

struct report *report_new(const struct report_opts *o);
struct report *report_free(struct report *r);

/* Registers a jail (or a source of bans) by name; returns its index. */
size_t report_jail(struct report *r, const char *name);

/* One matched log line. jails: indices of the jails whose filter produced the
 * failure (the line counts once as an attack, once per jail per hour). id:
 * the failure id (an address normally); user: the filter's F-USER group or
 * NULL (then known patterns are tried). */
void report_failure(struct report *r, const size_t *jails, size_t njails, const char *id,
		    double t, const char *line, size_t len, const char *user);

/* A failure of an address the jail ignores (ignoreip, ignoreself,
 * ignorecommand): counted for the jail, not as an attack. */
void report_ignored(struct report *r, size_t jail);

enum report_ban_source { REPORT_BAN_STATE, REPORT_BAN_LOG, REPORT_BAN_ESTIMATE };
/* One ban. bancount: the n-th ban of this id (state), 0 when unknown. live:
 * 1 when still in force (state only). */
void report_ban(struct report *r, const char *jail, const char *id, double t,
		enum report_ban_source src, unsigned bancount, int live);

/* An estimated ban (the caller's jail reached maxretry within findtime):
 * counted unless an earlier estimated ban of this id in this jail still
 * runs at t (bantime < 0: forever), as a banned address would have been
 * blocked. Returns 1 when counted. */
int report_estimate_ban(struct report *r, size_t jail, const char *id, double t, double bantime);

/* Any log line (matched or not): finds policy outcomes (greylisted, rate
 * limited, spoof rejects) and mxjail/fail2ban ban notices. t < 0: no date. */
void report_scan_line(struct report *r, const char *line, size_t len, double t);

/* The policy service's persisted state: greylist triplets (passed the delay
 * or still waiting), clients that passed (auto-whitelisted ones), rate-limit
 * keys and how often they were exceeded. */
struct report_policy_state {
	unsigned long triplets, passed, waiting, clients, whitelisted;
	unsigned long rl_keys, rl_exceeded;
};
void report_policy_state(struct report *r, const struct report_policy_state *ps);
/* Counts what policy_greylist_list() and policy_ratelimit_list() print as
 * JSON (either may be NULL) into ps. Strings inside are JSON-escaped, so a
 * sender or key cannot fake the markers counted here. */
void report_policy_count(const char *greylist_json, const char *ratelimit_json,
			 struct report_policy_state *ps);

/* The failure ids (normalised addresses) counted so far: i < report_naddrs().
 * Valid until the next event. report_has() is 1 when id (normalised) is one. */
size_t report_naddrs(const struct report *r);
const char *report_addr(const struct report *r, size_t i);
int report_has(struct report *r, const char *id);

/* What `mxjail audit` flags, as it printed it: JSON text (embedded as is
 * under "audit" in --json; it must be one object) or its table (text and
 * HTML). NULL: the audit was not run. */
void report_audit(struct report *r, const char *out, int is_json);

/* Counters of the input, for the header. */
void report_input(struct report *r, unsigned long lines, const char *source);
void report_note(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sorts the tables and looks addresses up in geo (may be NULL). Call once,
 * after the last event and before formatting. now: for "live" and the header. */
void report_finish(struct report *r, struct report_geo *geo, double now);

/* ---- output (report_out.c, report_html.c) ---- */

void report_format_text(const struct report *r, struct strbuf *out);
void report_format_json(const struct report *r, struct strbuf *out);
void report_format_html(const struct report *r, struct strbuf *out);

/* ---- GeoIP (report_geo.c) ---- */

/* Opens a MaxMind-format database: path, or when NULL the first *.mmdb in
 * /usr/share/GeoIP and /var/lib/GeoIP (country or city data first, then
 * ASN data, both used when both exist). Returns NULL with err filled
 * ("" when no database was found and none was asked for). */
struct report_geo *report_geo_open(const char *path, char *err, size_t errlen);
struct report_geo *report_geo_close(struct report_geo *g);
/* Country ISO code (cc, "" when unknown), ASN (0 when unknown) and its
 * organisation. Returns 0, or -1 when the address is not in the data. */
int report_geo_lookup(struct report_geo *g, const char *addr, char *cc, size_t cclen,
		      unsigned *asn, char *org, size_t orglen);
/* The databases in use, for the report header. */
const char *report_geo_name(const struct report_geo *g);

#endif
