/*
 * fw - the firewall backend interface: ban and unban addresses per jail.
 *
 * INTERFACE: a backend is a `const struct fw_backend` (a vtable of plain
 * functions) plus the opaque state its init() creates; `struct fw` pairs the
 * two and the fw_*() wrappers below call through it. Backends: fw_nft_backend
 * (native nftables through libnftables) and fw_null_backend (records in
 * memory; tests and dry runs). fw_action_resolve() maps fail2ban banaction
 * names ("nftables-multiport", "iptables-allports"...) to a backend.
 *
 * Batch model: ban() and unban() only queue; commit() applies everything
 * queued in one transaction (the daemon calls it from the event loop's
 * end-of-turn hook). Within one batch the last operation on an address wins.
 * check() verifies that the backend's kernel objects still exist (a firewall
 * reload may `flush ruleset`); rebuild() recreates them from the caller's list
 * of live bans. Kernel element expiry produces no event: the caller keeps its
 * own timers and unbans; kernel timeouts are a safety net.
 *
 * DIAGNOSTICS: every call returns 0 or a negative errno and, on error, a
 * message in the caller's buffer (err, errlen; may be NULL/0). Nothing here
 * prints or logs.
 *
 * OWNERSHIP: backends copy what they keep from fw_jail and fw_options; the
 * caller's strings need to live only for the duration of the call.
 */
#ifndef MXJAIL_ACTIONS_FW_H
#define MXJAIL_ACTIONS_FW_H

#include <stddef.h>

#include "net/addr.h"

struct kvlist;

/* Longest element timeout nftables accepts; longer bans are clamped (the
 * caller's own timer still ends them at the right time). */
#define FW_MAX_TIMEOUT 99999999UL

/* Address families to handle (fw_options.families). */
#define FW_FAMILY_4 1u
#define FW_FAMILY_6 2u

struct fw_options {
	const char *table;        /* table name; NULL = "mxjail" */
	const char *table_family; /* NULL = "inet"; set-only mode also takes ip, ip6, bridge, netdev */
	int set_only;             /* maintain sets only; the admin's ruleset references them */
	unsigned families;        /* FW_FAMILY_4 | FW_FAMILY_6; 0 = both */
	const char *path;         /* hostsdeny: the file (NULL = /etc/hosts.deny) */
	const char *daemon_list;  /* hostsdeny: the daemon list of each line (NULL = "ALL") */
	const char *chain;        /* iptables: the chain jumping to f2b-<jail> (NULL = "INPUT") */
	int newonly;              /* iptables-new: match only new connections */
	const char *bindir;       /* iptables: where iptables-restore etc. are (NULL = PATH) */
	const char *blocktype;    /* route: unreachable (NULL), blackhole or prohibit */
};

/* What a jail bans: the jail's name and its fail2ban `port` / `protocol`. */
struct fw_jail {
	const char *name;     /* jail name; set names derive from it */
	const char *port;     /* "smtp,465,submission", "1000:2000"; NULL or "" = every port */
	const char *protocol; /* "tcp" (NULL), "udp", "sctp", "tcp,udp", "all" */
	int reject;           /* 0 = drop, 1 = reject */
};

/* One live ban handed to rebuild(). */
struct fw_ban {
	const struct fw_jail *jail;
	struct addr addr;     /* host or prefix */
	unsigned long timeout; /* remaining seconds, 0 = forever */
};

struct fw_backend {
	const char *name;
	int (*init)(void **st, const struct fw_options *o, char *err, size_t errlen);
	/* Makes the jail known (its sets and rules are created with the next
	 * commit); ban/unban declare implicitly. A changed port/protocol
	 * replaces the jail's rules. */
	int (*declare)(void *st, const struct fw_jail *j, char *err, size_t errlen);
	int (*ban)(void *st, const struct fw_jail *j, const struct addr *a, unsigned long timeout,
		   char *err, size_t errlen);
	int (*unban)(void *st, const struct fw_jail *j, const struct addr *a, char *err, size_t errlen);
	/* Applies the queued batch. -ENOENT: our objects are gone (rebuild needed). */
	int (*commit)(void *st, char *err, size_t errlen);
	/* 0 when everything exists, -ENOENT with what is missing, other -errno on failure. */
	int (*check)(void *st, char *err, size_t errlen);
	/* Drops the queue, recreates every object and loads the given bans. */
	int (*rebuild)(void *st, const struct fw_ban *bans, size_t n, char *err, size_t errlen);
	/* Empties every set (all bans lifted), keeps the structure. */
	int (*flush)(void *st, char *err, size_t errlen);
	/* Removes what the backend created (set-only mode: empties the sets). */
	int (*stop)(void *st, char *err, size_t errlen);
	void (*free)(void *st);
};

extern const struct fw_backend fw_nft_backend;
extern const struct fw_backend fw_null_backend;
/* fail2ban's hostsdeny: "ALL: <ip>" lines in a block mxjail owns inside the
 * file ("# BEGIN mxjail" .. "# END mxjail"), rewritten atomically at commit;
 * the admin's own lines are kept as they are. */
extern const struct fw_backend fw_hostsdeny_backend;
/* A note when hosts.deny cannot protect the service a jail (or filter) name
 * suggests (not linked with libwrap), else NULL. */
const char *fw_hostsdeny_libwrap_note(const char *service);
/* fail2ban's iptables, iptables-multiport, -allports, -new: own chains
 * f2b-<jail> with one rule per banned address, a jump from INPUT (or the
 * `chain` option) per protocol and port list; each commit is one
 * `iptables-restore --noflush` (and one ip6tables-restore) batch. */
extern const struct fw_backend fw_iptables_backend;
/* fail2ban's iptables-ipset(-proto4/-proto6/-proto6-allports): per jail and
 * family a hash:ip set f2b-<jail> / f2b-<jail>6 with element timeouts,
 * filled through libipset (a commit is a few netlink messages), and one
 * "-m set --match-set" rule per protocol through iptables-restore. */
extern const struct fw_backend fw_ipset_backend;
/* fail2ban's route: an unreachable (blocktype=blackhole, prohibit) route per
 * banned host in the main table, through rtnetlink (libmnl), one batch of
 * messages per commit. */
extern const struct fw_backend fw_route_backend;

struct fw {
	const struct fw_backend *be;
	void *st;
};

int fw_open(struct fw *fw, const struct fw_backend *be, const struct fw_options *o, char *err,
	    size_t errlen);
void fw_close(struct fw *fw); /* frees the state; does not touch the kernel */
int fw_declare(struct fw *fw, const struct fw_jail *j, char *err, size_t errlen);
int fw_ban(struct fw *fw, const struct fw_jail *j, const struct addr *a, unsigned long timeout,
	   char *err, size_t errlen);
int fw_unban(struct fw *fw, const struct fw_jail *j, const struct addr *a, char *err, size_t errlen);
int fw_commit(struct fw *fw, char *err, size_t errlen);
int fw_check(struct fw *fw, char *err, size_t errlen);
int fw_rebuild(struct fw *fw, const struct fw_ban *bans, size_t n, char *err, size_t errlen);
int fw_flush(struct fw *fw, char *err, size_t errlen);
int fw_stop(struct fw *fw, char *err, size_t errlen);

/* Validates a jail's port and protocol the way the backends will (port
 * names resolved through /etc/services, with a built-in table of the mail
 * and login services as fallback). Returns 0 or -EINVAL with a message. */
int fw_jail_check(const struct fw_jail *j, char *err, size_t errlen);

/* Set names for a jail: "<base>_v4", "<base>_v6" (hosts), "<base>_n4",
 * "<base>_n6" (prefixes), base = jail name with characters outside
 * [A-Za-z0-9_-] turned into '_' and "j_" in front when it does not start with
 * a letter. Writes base; returns its length, or 0 when it does not fit. */
size_t fw_set_base(const char *jail, char *out, size_t outlen);

/* The banaction registry. `name` is the action name without options
 * ("nftables-multiport"); `opts` its [k=v] options (may be NULL); `jail`
 * the jail's own name/port/protocol. On success out->backend is set and
 * out->jail holds the jail as that action means it (pointers into opts or
 * jail, valid while they are). Returns 0; -ENOSYS for a known name whose
 * backend is not built yet (out->name set, message says so); -ENOENT for a
 * name that is not a firewall banaction (run its action.d commands
 * instead); -EINVAL for bad options. Backends other than nftables need their
 * own fw opened with out->opts (one per distinct options). */
struct fw_action {
	const struct fw_backend *backend;
	const char *name;     /* canonical name ("nftables", "iptables-ipset"...) */
	int allports;         /* the action ignores ports */
	struct fw_jail jail;
	struct fw_options opts; /* backend options from the action's [k=v] (hostsdeny file...) */
};
int fw_action_resolve(const char *name, const struct kvlist *opts, const struct fw_jail *jail,
		      struct fw_action *out, char *err, size_t errlen);

/* Null backend inspection (tests, dry runs). Only valid on a fw opened with
 * fw_null_backend; other backends return NULL / 0 / -EINVAL. */
const char *fw_null_log(const struct fw *fw);   /* committed operations, one per line */
size_t fw_null_count(const struct fw *fw);      /* live bans */
/* 1 and *timeout (0 = forever) when addr is banned in jail, else 0. */
int fw_null_lookup(const struct fw *fw, const char *jail, const struct addr *a,
		   unsigned long *timeout);
/* Simulates `flush ruleset`: check() reports missing until rebuild(). */
int fw_null_simulate_flush(struct fw *fw);

#endif
