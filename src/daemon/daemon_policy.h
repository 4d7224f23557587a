/*
 * daemon_policy - the Postfix policy service as a unit the daemon (`mxjail
 * run` with [policy] enabled = yes) and the standalone `mxjail policy` both
 * run: the engine (policy/policy.h) built from mxjail.conf, its listeners
 * (policy/policysrv.h), the write-behind and expiry timers, and the control
 * verbs `policy status`, `greylist list|del`, `ratelimit list|reset`.
 *
 * INTERFACE: daemon_policy_new() reads [policy] listen (default
 * inet:127.0.0.1:10023; `listen` overrides it), [policy] idle_timeout and
 * max_connections, and hands [policy], [greylist], [ratelimit] and [spoof]
 * to the engine. statefile: the engine's own state file (written by its
 * writer thread; NULL = memory only); st: the store whose policy rows an
 * earlier version kept there (moved into statefile once; may be NULL). The
 * caller keeps the loop, store and host alive until daemon_policy_free(),
 * which hands queued state to the writer and waits for it.
 */
#ifndef MXJAIL_DAEMON_DAEMON_POLICY_H
#define MXJAIL_DAEMON_DAEMON_POLICY_H

#include <stddef.h>

struct config;
struct loop;
struct store;
struct strbuf;
struct policy_host;
struct daemon_policy;
struct policy;

#define DAEMON_POLICY_LISTEN_DEFAULT "inet:127.0.0.1:10023"

/* 1 when mxjail.conf [policy] enabled is true. */
int daemon_policy_enabled(const struct config *cfg);
struct daemon_policy *daemon_policy_new(struct loop *l, const struct config *cfg,
					struct store *st, const char *statefile,
					const struct policy_host *host, const char *listen,
					char *err, size_t errlen);
void daemon_policy_free(struct daemon_policy *p);
/* Hands queued state to the writer now (also done every second by a timer). */
void daemon_policy_flush(struct daemon_policy *p);
/* The engine (for cluster imports); valid until daemon_policy_free(). */
struct policy *daemon_policy_engine(struct daemon_policy *p);
/* 1 when verb is one of the policy service's control verbs. */
int daemon_policy_is_verb(const char *verb);
/* Runs a control verb; 0 = OK, -1 = ERR (message in out). p may be NULL
 * (the service is not enabled: an ERR that says so). */
int daemon_policy_ctl(struct daemon_policy *p, int argc, char **argv, int json,
		      struct strbuf *out);

/* The standalone service's banned-client check: the daemon's live bans
 * (its state database dbpath, e.g. STATEDIR/mxjail.sqlite3) read read-only
 * by a thread every `refresh` seconds, never on the request path; a missing
 * file means no bans. daemon_policy_bans_check() is a policy_host
 * is_banned hook (arg = the object): the host, and every banned network
 * (CIDR bans, banprefix6) containing it. */
#define DAEMON_POLICY_BANS_REFRESH 2.0
struct daemon_policy_bans;
struct addr;
struct daemon_policy_bans *daemon_policy_bans_new(const char *dbpath, double refresh);
void daemon_policy_bans_free(struct daemon_policy_bans *b);
int daemon_policy_bans_check(void *arg, const struct addr *a, double now);
/* Live bans in the snapshot in use (loop thread). */
size_t daemon_policy_bans_count(struct daemon_policy_bans *b);

#endif
