/*
 * run - `mxjail run [-c DIR] [-f] [--state DIR] [--socket PATH] [--backend null]
 * [--journal-dir DIR] [--logtarget T] [--loglevel L]`: starts the daemon
 * (src/daemon/). -f stays in the foreground (systemd's Type=notify, tests);
 * without it mxjail detaches once the configuration is read and the control
 * socket listens, so start-up errors still reach the terminal.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "daemon/daemon.h"

static const char usage[] =
	"usage: mxjail run [-c DIR] [-f] [--state DIR] [--socket PATH] [--backend nftables|null]\n"
	"                  [--journal-dir DIR] [--logtarget STDERR|SYSLOG|FILE] [--loglevel LEVEL]\n";

int cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"foreground", no_argument, NULL, 'f'},
		{"state", required_argument, NULL, 's'},
		{"socket", required_argument, NULL, 'S'},
		{"backend", required_argument, NULL, 'b'},
		{"journal-dir", required_argument, NULL, 'j'},
		{"logtarget", required_argument, NULL, 'l'},
		{"loglevel", required_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct daemon_opts o = {0};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:fh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o.confdir = optarg; break;
		case 'f': o.foreground = 1; break;
		case 's': o.statedir = optarg; break;
		case 'S': o.socket = optarg; break;
		case 'b':
			if (strcmp(optarg, "null") != 0 && strcmp(optarg, "nftables") != 0) {
				fprintf(stderr, "mxjail run: --backend must be nftables or null\n");
				return 2;
			}
			o.backend = optarg;
			break;
		case 'j': o.journal_dir = optarg; break;
		case 'l': o.logtarget = optarg; break;
		case 'v': o.loglevel = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mxjail run: unexpected argument '%s'\n", argv[optind]);
		fputs(usage, stderr);
		return 2;
	}
	return daemon_run(&o);
}
