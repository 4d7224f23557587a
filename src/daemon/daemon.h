/*
 * daemon - `mxjail run`: ties sources, filters, jails, firewall, store and
 * control socket together in one event loop.
 *
 * INTERFACE: the CLI fills a daemon_opts from its command line and calls
 * daemon_run(), which returns the process exit status: 0 after a clean stop
 * (SIGTERM/SIGINT, positions saved), 1 when the configuration or the
 * environment does not allow a start (the reason is logged, and printed on
 * stderr before logging is set up). Everything the daemon changes while it
 * runs lives in one context struct created there (see daemon_int.h).
 */
#ifndef MXJAIL_DAEMON_DAEMON_H
#define MXJAIL_DAEMON_DAEMON_H

struct daemon_opts {
	const char *confdir;     /* configuration tree; NULL = MXJAIL_SYSCONFDIR */
	const char *statedir;    /* NULL = [mxjail] statedir or /var/lib/mxjail */
	const char *socket;      /* NULL = [mxjail] socket or /run/mxjail/mxjail.sock */
	const char *backend;     /* "null" (dry run) or "nftables"; NULL = [mxjail] banaction */
	const char *journal_dir; /* read journal files from here instead of the system journal */
	const char *logtarget;   /* overrides fail2ban.conf/mxjail.conf logtarget */
	const char *loglevel;    /* overrides fail2ban.conf loglevel */
	int foreground;          /* -f: do not detach */
};

int daemon_run(const struct daemon_opts *o);

#endif
