/*
 * ignore - which failure ids a jail must never ban: loopback, the host's own
 * addresses (ignoreself), the ignoreip list and the ignorecommand verdict
 * (with ignorecache), in fail2ban's syntax.
 *
 * INTERFACE: ignore_new() builds a list from the jail's option strings; the
 * daemon asks ignore_check() for every failure id and logs the reason code;
 * it calls ignore_maybe_reload() from a timer (file: lists, at most every
 * file_check_interval seconds) and ignore_refresh() when DNS names and own
 * addresses should be looked up again (e.g. on reload). The list owns all its
 * data; nothing here prints: problems go to a struct diag or into the
 * ignore_info/ignore_cmd_result the caller passed.
 *
 * Entries (separated by blanks or commas): an address ("192.0.2.7",
 * "2001:db8::1", "[::1]", "::ffff:192.0.2.7" = 192.0.2.7), a prefix
 * ("10.0.0.0/8", "10.0.0.0/255.0.0.0", "2001:db8::/32"), a host name
 * (resolved at load and on ignore_refresh()), or "file:/path" (one entry per
 * line, '#' starts a comment; re-read when its inode, size or mtime changes).
 * Loopback (127.0.0.0/8, ::1) is ignored whatever the configuration.
 *
 * Failure ids that are not addresses (a filter's <F-ID>, e.g. a user name)
 * never match an address entry. In fail2ban 1.0.2 they never match anything
 * in ignoreip (a non-address entry is only ever resolved through DNS and
 * compared as addresses); mxjail also ignores such an id when an entry is
 * literally equal to it (case-sensitive), so `ignoreip = admin` protects the
 * id "admin". That only ever ignores more than fail2ban, never less.
 */
#ifndef MXJAIL_JAILS_IGNORE_H
#define MXJAIL_JAILS_IGNORE_H

#include <stddef.h>

#include "core/kvlist.h"
#include "net/addr.h"

struct diag;
struct kvlist;

enum ignore_reason {
	IGNORE_NONE = 0,     /* not ignored: the id may be banned */
	IGNORE_LOOPBACK,     /* 127.0.0.0/8 or ::1, always */
	IGNORE_SELF,         /* one of the host's own addresses (ignoreself) */
	IGNORE_LIST,         /* an ignoreip entry (address, prefix, name, file:) */
	IGNORE_COMMAND,      /* ignorecommand exited with status 0 (maybe cached) */
};

/* Resolves a host name into at most max addresses. Returns how many were
 * written (0 = name without addresses) or -1 with a message in err. Tests
 * install a fake; the default (NULL) uses getaddrinfo. */
typedef int (*ignore_resolve_fn)(void *ctx, const char *name, struct addr *out, size_t max,
				 char *err, size_t errlen);

struct ignore_opts {
	int ignoreself;             /* fail2ban's default is 1 */
	const char *ignorecommand;  /* NULL/"" = none; template with <ip>, <F-USER>... */
	const char *ignorecache;    /* NULL/"" = none; `key="<ip>", max-count=100, max-time=5m` */
	double command_timeout;     /* seconds; fail2ban runs commands with 60 */
	double file_check_interval; /* seconds between checks of file: lists (default 10) */
	ignore_resolve_fn resolve;  /* NULL = getaddrinfo */
	void *resolve_ctx;
	const char *cfgfile;        /* where ignoreip came from, for diagnostics (may be NULL) */
	unsigned cfgline;
};

/* Fills the defaults: ignoreself on, timeout 60 s, file checks every 10 s. */
void ignore_opts_init(struct ignore_opts *o);

struct ignorelist;

/* Builds a list from an ignoreip value (may be NULL or empty). Always returns
 * a usable list: a bad entry is reported as an error in d and skipped, a name
 * that does not resolve or a missing file is a warning (the file is picked up
 * when it appears). `now` starts the file check clock. The caller frees. */
struct ignorelist *ignore_new(const char *ignoreip, const struct ignore_opts *o, double now,
			      struct diag *d);
/* The same, from a jail's options (ignoreself, ignorecommand, ignorecache and,
 * unless ignoreip is given, ignoreip); file/line name the jail section. */
struct ignorelist *ignore_new_from_opts(const struct kvlist *opts, const char *ignoreip,
					const char *file, unsigned line, double now,
					struct diag *d);
struct ignorelist *ignore_free(struct ignorelist *l); /* returns NULL */

/* Adds entries (same syntax) / removes one entry as written. add returns 0 or
 * -1 (errors in d); del returns 1 when removed, 0 when there was no such entry. */
int ignore_add(struct ignorelist *l, const char *entries, double now, struct diag *d);
int ignore_del(struct ignorelist *l, const char *entry);
/* The entries as written ("10.0.0.0/8", "file:/etc/x"), NULL-terminated,
 * valid until the list changes. */
const char *const *ignore_entries(const struct ignorelist *l, size_t *n);
/* Number of addresses/prefixes and literal ids currently matched (incl. self). */
size_t ignore_size(const struct ignorelist *l);

/* Details of a verdict for the log line: the entry that matched ("10.0.0.0/8",
 * "mail.example.org", "file:/etc/ok.list"), or the command status. */
struct ignore_info {
	char detail[256];
	int cached;                 /* IGNORE_COMMAND/NONE came from ignorecache */
	int command_failed;         /* the command timed out, was killed or could not run */
};

/* The verdict for one failure id (a normalised address or any other id).
 * tags (may be NULL) are the ticket's values for ignorecommand/ignorecache
 * ("ip", "fid", "F-user" for <F-USER>...); "ip" defaults to the id. l may be
 * NULL (loopback only). Runs ignorecommand synchronously on a cache miss.
 * info may be NULL. */
enum ignore_reason ignore_check(struct ignorelist *l, const char *id, const struct kvlist *tags,
				double now, struct ignore_info *info);
/* 1 when l runs an ignorecommand (only then does ignore_check read tags). */
int ignore_has_command(const struct ignorelist *l);
/* "loopback", "ignoreself", "ignoreip", "ignorecommand" or "" - for logs. */
const char *ignore_reason_name(enum ignore_reason r);

/* Re-reads file: lists whose inode/size/mtime changed, at most once every
 * file_check_interval seconds of `now`. Returns 1 when the list changed, 0
 * otherwise, -1 when a file could not be read (the old entries are kept). */
int ignore_maybe_reload(struct ignorelist *l, double now, struct diag *d);
/* Resolves every name again, re-reads the host's own addresses and re-reads
 * every file. A name that fails to resolve keeps its previous addresses.
 * Returns 0, or -1 when something failed (warnings in d). */
int ignore_refresh(struct ignorelist *l, double now, struct diag *d);

/* The host's own addresses (getifaddrs, plus the addresses of gethostname()
 * through the resolver when one is given). *out is allocated; the caller
 * frees. Returns the count, or -1 with a message in err. */
int ignore_self_addrs(ignore_resolve_fn resolve, void *ctx, struct addr **out, char *err,
		      size_t errlen);

/* ignorecommand. */
enum ignore_cmd_status {
	IGNORE_CMD_EXITED,   /* code = exit status */
	IGNORE_CMD_SIGNALED, /* code = signal number */
	IGNORE_CMD_TIMEOUT,  /* killed (process group) after the timeout */
	IGNORE_CMD_ERROR,    /* could not start; output holds the reason */
};

struct ignore_cmd_result {
	enum ignore_cmd_status status;
	int code;
	double elapsed;      /* seconds */
	char output[512];    /* first bytes of stdout + stderr, NUL-terminated */
};

/* Substitutes the tags of tmpl the way fail2ban's actions do: <tag> takes the
 * value of key "tag" (exact case) from values, <F-NAME> (upper case) the
 * value of "F-name" (NAME lowered; ID -> fid, PORT -> fport; "" when absent),
 * <br> and <sp> are a newline and a space, other tags stay as they are. A
 * value containing a shell metacharacter (\ # & ; ` | * ? ~ < > ^ ( ) [ ] { }
 * $ ' " CR LF) is never put into the script: the tag becomes
 * $f2bV_<tag> (non-word characters -> '_', F- tags as f2bV_F_<name>) and
 * the value goes into *vars under that name. With vars == NULL every value is
 * inserted raw (for cache keys). Returns the script; the caller frees it. */
char *ignore_subst(const char *tmpl, const struct kvlist *values, struct kvlist *vars);

/* Runs tmpl through /bin/sh -c in its own process group, the substituted
 * values with metacharacters in its environment, stdin from /dev/null, and
 * waits at most timeout seconds (then SIGTERM, SIGKILL to the group). Returns 1
 * when the command exited with status 0 (= ignore), 0 otherwise (exit != 0,
 * signal, timeout, error: see r, which may be NULL). */
int ignore_command_run(const char *tmpl, const struct kvlist *values, double timeout,
		       struct ignore_cmd_result *r);

#endif
