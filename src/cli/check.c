/*
 * check - `mxjail check [-c DIR]`: reads the whole configuration, loads and
 * compiles every enabled jail's filter, and prints "configuration OK" or every
 * error with file:line. Exit status 0 when OK, 1 otherwise.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/diag.h"
#include "filters/filter.h"

int cmd_check(int argc, char **argv)
{
	const char *dir = MXJAIL_SYSCONFDIR;
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "c:")) != -1) {
		switch (c) {
		case 'c': dir = optarg; break;
		default:
			fprintf(stderr, "usage: mxjail check [-c DIR]\n");
			return 2;
		}
	}
	struct diag d = DIAG_INIT;
	struct config cfg = {0};
	config_load(dir, &cfg, &d);
	for (size_t i = 0; i < cfg.njails; i++) {
		struct jail_conf *j = &cfg.jails[i];
		if (!j->enabled || !j->filter || !*j->filter)
			continue;
		struct filter_def def = {0};
		if (config_load_filter(dir, j->filter, &j->opts, &def, &d) == 0) {
			struct filter *f = filter_compile(&def, &d);
			filter_free(f);
		}
		filter_def_free(&def);
	}
	config_free(&cfg);
	diag_print(&d, stderr);
	int bad = d.nerrors > 0;
	diag_clear(&d);
	if (bad)
		return 1;
	printf("configuration OK\n");
	return 0;
}
