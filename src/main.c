/*
 * mxjail - entry point: dispatches to the subcommands in src/cli/.
 *
 * One binary for the daemon and every tool, like postfix(1) or fail2ban-client:
 * the table below is the list `mxjail help` prints.
 */
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
static int cmd_version(int argc, char **argv);

static const struct subcommand commands[] = {
	{"check", cmd_check, "check [-c DIR]",
	 "read the configuration and report errors with file:line"},
	{"test", cmd_test,
	 "test [-c DIR] [--now EPOCH] [--all] [--json] [--print-all-matched|--print-all-missed]\n"
	 "               FILTER[k=v,...] [FILTER2 ...] LOGFILE|-",
	 "run filters over a log and show what they match (like fail2ban-regex)"},
	{"dumpconf", cmd_dumpconf, "dumpconf [-c DIR] [--jail JAIL | --filter FILTER[k=v,...]]",
	 "print the resolved configuration of jails or one filter as JSON"},
	{"version", cmd_version, "version", "print the version"},
	{"help", cmd_help, "help", "list the subcommands"},
};

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("mxjail %s\n", MXJAIL_VERSION);
	return 0;
}

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
