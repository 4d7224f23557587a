/*
 * mxjail - entry point: dispatches to the subcommands in src/cli/.
 *
 * One binary for the daemon and every tool, like postfix(1) or fail2ban-client:
 * the table below is the list `mxjail help` prints.
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

struct subcommand {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
	const char *summary;
};

static int cmd_help(int argc, char **argv);

static const struct subcommand commands[] = {
	{"check", cmd_check, "check [-c DIR]",
	 "read the configuration and report errors with file:line"},
	{"test", cmd_test,
	 "test [-c DIR] [--now EPOCH] [--all] [--json] [--print-all-matched|--print-all-missed]\n"
	 "               FILTER[k=v,...] [FILTER2 ...] LOGFILE|-",
	 "run filters over a log and show what they match (like fail2ban-regex)"},
	{"dumpconf", cmd_dumpconf, "dumpconf [-c DIR] [--jail JAIL | --filter FILTER[k=v,...]]",
	 "print the resolved configuration of jails or one filter as JSON"},
	{"run", cmd_run,
	 "run [-c DIR] [-f] [--state DIR] [--socket PATH] [--backend nftables|null]\n"
	 "               [--journal-dir DIR] [--logtarget T] [--loglevel L]",
	 "run the daemon: follow the logs, count failures, ban through the firewall"},
	{"replay", cmd_replay, "replay [-c DIR] [--jail JAIL]... [--now EPOCH] [--json] LOG...|-",
	 "run jails over old logs with their own clock: who would have been banned when"},
	{"report", cmd_report,
	 "report [-c DIR] [--state DIR] [--since DUR] [--now EPOCH] [--jail JAIL]...\n"
	 "               [--geoip FILE] [--top N] [--audit] [--json | --html FILE] [LOG...|-]",
	 "attacks per hour and jail, top addresses, networks, user names, bans (text/JSON/HTML)"},
	{"status", cmd_status, "status [JAIL] [--json]", "jails, or one jail's counters and bans"},
	{"banned", cmd_banned, "banned [ADDR...] [--json]",
	 "every live ban, or the jails an address is banned in"},
	{"ban", cmd_ban, "ban JAIL ADDR... [--force] [--json]",
	 "ban addresses by hand (ignored ones only with --force)"},
	{"unban", cmd_unban, "unban [JAIL] ADDR...|--all [--json]", "lift bans"},
	{"why", cmd_why, "why ADDR [--json]", "which jail banned an address, when, and the log lines"},
	{"reload", cmd_reload, "reload [JAIL] [--json]",
	 "re-read the configuration; bans and failure counters stay"},
	{"get", cmd_get, "get JAIL bantime|findtime|maxretry|ignoreip [--json]",
	 "show a jail setting"},
	{"set", cmd_set, "set JAIL bantime|findtime|maxretry|ignoreip VALUE [--json]",
	 "change a jail setting until the next reload"},
	{"ping", cmd_ping, "ping", "check that the daemon answers"},
	{"version", cmd_version, "version [--json]", "print the version (and the daemon's)"},
	{"policy", cmd_policy,
	 "policy [-c DIR] [--state DIR] [--listen SPEC] [--socket PATH] [-f] | policy status [--json]",
	 "run the Postfix policy service alone, or show its counters"},
	{"greylist", cmd_greylist, "greylist list|del TRIPLET|CLIENT|SENDER [--json]",
	 "greylist entries of the policy service"},
	{"ratelimit", cmd_ratelimit, "ratelimit list|reset KEY [--json]",
	 "rate-limit windows of the policy service"},
	{"audit", cmd_audit,
	 "audit [--postfix DIR|--postconf FILE] [--postconf-d FILE] [--postconf-P FILE]\n"
	 "               [--postconf-M FILE] [--dovecot FILE|--doveconf FILE] [-c DIR] [--json]",
	 "hardening check of Postfix, Dovecot and the jails (exit 1 on high findings)"},
	{"probe", cmd_probe,
	 "probe HOST[:PORT] [--smtp PORTS] [--imap [PORTS]] [--pop3 [PORTS]] [--intrusive]\n"
	 "               [--source ADDR] [--timeout S] [--user NAME] [--ca FILE] [--json]",
	 "test a mail server from outside: relay, enumeration, cleartext logins, TLS (exit 1 on high)"},
	{"help", cmd_help, "help", "list the subcommands"},
};

static int cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("usage: mxjail SUBCOMMAND [ARGS]\n\nsubcommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		printf("  %-9s %s\n            mxjail %s\n", commands[i].name, commands[i].summary,
		       commands[i].usage);
	printf("\nDefault configuration directory: %s (see mxjail(8), mxjail.conf(5))\n",
	       MXJAIL_SYSCONFDIR);
	return 0;
}

int main(int argc, char **argv)
{
	/*
	 * Peak RSS (issues 2, 3): free memory at the top of the heap goes back to
	 * the kernel once it exceeds 128 KiB, instead of glibc raising that limit
	 * after every large free; a restart that loads 100,000 bans peaked 3.5 MiB
	 * lower. (One arena for all threads, M_ARENA_MAX = 1, made no measurable
	 * difference and is left to glibc.)
	 */
	mallopt(M_TRIM_THRESHOLD, 128 * 1024);
	if (argc < 2) {
		cmd_help(0, NULL);
		return 2;
	}
	const char *name = argv[1];
	if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0)
		name = "help";
	if (strcmp(name, "-V") == 0 || strcmp(name, "--version") == 0)
		name = "version";
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(name, commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "mxjail: unknown subcommand '%s' (try 'mxjail help')\n", name);
	return 2;
}
