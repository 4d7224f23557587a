/*
 * jail - failure counting and ban decisions for one jail, fail2ban semantics.
 *
 * INTERFACE: the daemon feeds failures (id, time, the log lines) with
 * jail_add_failure(); when an id reaches maxretry within findtime the call
 * returns 1 and fills a jail_ban the caller turns into a firewall ban and a
 * stored record. No I/O here: history for bantime.increment comes in as a
 * number (previous bans of this id), the random part as a number in [0,1).
 *
 * findtime is a rate estimate, not a strict window: when the first failure is
 * older than t - findtime, retry = round(retry / (t - first) * findtime) and
 * first = t - findtime (fail2ban's adjustTime). Memory is bounded: at most
 * `maxtracked` ids are tracked; past that the stalest one is evicted, so an
 * attacker spraying addresses cannot grow the table.
 */
#ifndef MXJAIL_JAILS_JAIL_H
#define MXJAIL_JAILS_JAIL_H

#include <stddef.h>

#include "core/kvlist.h"

struct diag;

struct bantime_incr {
	int enabled;          /* bantime.increment */
	double factor;        /* bantime.factor (default 1) */
	double *multipliers;  /* bantime.multipliers; n == 0: the default formula */
	size_t nmultipliers;
	double maxtime;       /* bantime.maxtime, <= 0 = no cap */
	double rndtime;       /* bantime.rndtime, <= 0 = none */
	int overalljails;     /* bantime.overalljails: history across all jails */
};

struct jail_params {
	unsigned maxretry;    /* >= 1 */
	double findtime;      /* seconds */
	double bantime;       /* seconds, < 0 = forever */
	unsigned maxmatches;  /* log lines kept per failure record */
	size_t maxtracked;    /* ids tracked at most (default 1M) */
	struct bantime_incr incr;
};

struct jail_ban {
	char *id;             /* failure id (normalised address or other id) */
	unsigned failures;    /* failure count at ban time */
	double first, last;   /* first/last failure time (after rate rescale) */
	char **lines;         /* evidence: last maxmatches lines, oldest first */
	size_t nlines;
};

struct jail;

struct jail *jail_new(const struct jail_params *p);
void jail_free(struct jail *j);
/* Keeps the evidence lines of tracked ids in an unlinked temporary file in
 * `dir`, created at the first need (the default dir: $TMPDIR, else /tmp).
 * dir NULL, or a directory where no file can be created: in memory. Call it
 * right after jail_new(). */
void jail_spool_dir(struct jail *j, const char *dir);
/* Parameters can change on reload; tracked failures are kept. */
void jail_set_params(struct jail *j, const struct jail_params *p);

/* Adds one failure. Returns 1 and fills *ban (caller frees with jail_ban_clear)
 * when the id reached maxretry: its record is then removed from tracking.
 * Returns 0 otherwise. */
int jail_add_failure(struct jail *j, const char *id, double t, const char *const *lines,
		     size_t nlines, struct jail_ban *ban);
/* Forgets an id (e.g. after an explicit unban or ban). */
void jail_forget(struct jail *j, const char *id);
/* Drops records whose last failure is older than now - findtime. */
void jail_expire(struct jail *j, double now);
size_t jail_tracked(const struct jail *j);
/* Current retry count for an id (0 when not tracked). */
unsigned jail_retry(const struct jail *j, const char *id);
unsigned long jail_evictions(const struct jail *j);
/* Bytes the evidence spool holds (live and dead; two spools mid-compaction). */
unsigned long long jail_spool_bytes(const struct jail *j);
void jail_ban_clear(struct jail_ban *b);

/* Ban length for an id banned `prev_bans` times before (history), with rnd in
 * [0,1) for rndtime. Returns bantime (or < 0 for forever) when increment is off. */
double jail_bantime(const struct jail_params *p, unsigned prev_bans, double rnd);

/* Parses fail2ban time strings: "600", "10m", "1h 30m", "1d12h", "2w", "1mo",
 * "1y", "-1" (forever). Returns 0 and *out seconds, or -1. */
int jail_parse_time(const char *s, double *out);

/* Fills an incr from option strings (any may be NULL). bantime.formula other
 * than fail2ban's default is refused with a clear error. Returns 0 or -1 with
 * a message in err. */
int jail_incr_parse(struct bantime_incr *incr, const char *increment, const char *factor,
		    const char *formula, const char *multipliers, const char *maxtime,
		    const char *rndtime, const char *overalljails, char *err, size_t errlen);
void jail_incr_free(struct bantime_incr *incr);

/* Fills p from a jail's options (maxretry, findtime, bantime, maxmatches,
 * maxtracked, banprefix6, bantime.*); absent ones take fail2ban's defaults
 * (maxtracked: maxtracked_default). *banprefix6 is 0 when not set. Returns 0,
 * or -1 with "option: expected ..." in err. The caller frees with
 * jail_incr_free(&p->incr). */
int jail_params_from_opts(const struct kvlist *opts, size_t maxtracked_default,
			  struct jail_params *p, int *banprefix6, char *err, size_t errlen);

#endif
