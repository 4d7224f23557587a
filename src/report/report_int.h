/*
 * report_int - the report's tables, shared by report.c (filling them) and
 * the formatters (report_out.c, report_html.c). Not for other modules.
 */
#ifndef MXJAIL_REPORT_REPORT_INT_H
#define MXJAIL_REPORT_REPORT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/strmap.h"
#include "report/report.h"

#define REPORT_MAXJAILS 64     /* jails a bitmask can name; more share the last bit */
#define REPORT_MAXSVC 32
#define REPORT_TEXT_MAX 128    /* user names, relay targets are cut to this */


struct raddr {
	char *id;
	unsigned long count;
	double first, last;
	uint64_t kinds, jails;
	unsigned bans, maxbancount;   /* bans from the state or ban notices */
	unsigned est_bans;            /* estimated from the jails over the logs */
	int live;                  /* banned now (state) */
	int family;                /* 4, 6, or 0 for a failure id that is no address */
	size_t net;                /* index into nets, (size_t)-1 when none */
	char cc[4];
	unsigned asn;
	char *org;
};

struct rnet {
	char *net;
	unsigned long count, naddrs;
	double first, last;
	uint64_t kinds;
	char cc[4];
};

struct ruser {
	char *name;
	unsigned long count;
	uint64_t kinds;
	uint32_t services;         /* bits index r->svc */
	double first, last;
	size_t last_addr;          /* index into addrs of the last one that tried it */
};

/* A counted key (relay target, service, country, ASN...). */
struct rcount {
	char *key;
	unsigned long n, naddrs;
	char *extra;               /* e.g. an ASN's organisation */
};

struct rtable {
	struct rcount *v;
	size_t n, cap;
	struct strmap map;
};

struct rban {
	size_t jail;
	size_t addr;               /* index into addrs */
	double t;
	enum report_ban_source src;
	unsigned bancount;
	int live;
};

struct rkindstat {
	unsigned long count, naddrs;
	double first, last;
};

struct rjailstat {
	char *name;
	unsigned long failures, ignored;
	unsigned long bans[3];     /* per report_ban_source */
	unsigned long live;
};

struct rhour {
	long hour;                 /* epoch / 3600 */
	size_t jail;
	unsigned long n;
};

struct report {
	struct report_opts o;
	double now;
	unsigned long lines, events, skipped_old;
	char **sources;
	size_t nsources;
	char **notes;
	size_t nnotes;

	struct rjailstat *jails;
	size_t njails;
	const char *svc[REPORT_MAXSVC];
	unsigned long svc_count[REPORT_MAXSVC];
	size_t nsvc;

	struct raddr *addrs;
	size_t naddrs, capaddrs;
	struct strmap addrmap;
	unsigned long untracked_addrs;

	struct rnet *nets;
	size_t nnets, capnets;
	struct strmap netmap;

	struct ruser *users;
	size_t nusers, capusers;
	struct strmap usermap;
	unsigned long untracked_users;

	struct rtable relay_targets;   /* to=<...> domain of relay attempts */
	struct rtable spoof_senders;   /* from=<...> of spoof rejects */
	struct rtable countries;       /* filled by report_finish() */
	struct rtable asns;

	struct rkindstat kinds[64];

	struct rhour *hours;
	size_t nhours, caphours;
	struct strmap hourmap;
	long hour_min, hour_max;

	struct rban *bans;
	size_t nbans, capbans;
	unsigned long untracked_bans;
	struct strmap estmap;             /* "jail/id" -> index into est_end */
	double *est_end;
	size_t nest, capest;

	/* policy outcomes */
	unsigned long gl_deferred, gl_passed, rl_limited, pol_spoof;
	struct report_policy_state pstate;
	int have_pstate;

	/* sorted views made by report_finish() */
	size_t *addr_order, *net_order, *user_order;
	size_t nrepeat;                 /* addresses banned twice or more */
	size_t *repeat_order;
	char *geo_name;
	char *audit;                    /* `mxjail audit` output, or NULL */
	int audit_json;
	int finished;
};

/* Bans that make an address a repeat offender: the real ones (state, ban
 * notices; the state's bancount counts earlier ones too), or the estimated
 * ones when there is no real one, so an estimate never doubles a real ban. */
unsigned report_addr_bans(const struct raddr *a);
/* Jail names of a bitmask, comma separated, appended to out. */
void report_jail_list(const struct report *r, uint64_t mask, struct strbuf *out);
/* Kind names of a bitmask, comma separated. */
void report_kind_list(uint64_t mask, struct strbuf *out);
/* A table's entries sorted by n, descending (indices; caller frees). */
size_t *report_table_order(const struct rtable *t);
/* "2025-03-01 00:00:00" in local time, or "-" when t <= 0. */
void report_time(double t, char *buf, size_t len);

#endif
