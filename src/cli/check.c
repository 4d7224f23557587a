/*
 * check - `mxjail check [-c DIR]`: reads the whole configuration, loads and
 * compiles every enabled jail's filter, and prints "configuration OK" or every
 * error with file:line. Exit status 0 when OK, 1 otherwise. Messages from a
 * jail's filter are prefixed "jail [NAME]: " and followed by one naming the
 * jail section's file:line.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/diag.h"
#include "filters/filter.h"

/*
 * A filter's own messages name the filter file; with many jails sharing a tree
 * the reader also needs to know which jail asked for that filter, and where
 * that jail is defined, to fix (or disable) the right one.
 */
static void add_jail_diags(struct diag *d, const struct jail_conf *j, struct diag *fd)
{
	for (size_t i = 0; i < fd->n; i++) {
		const char *text = fd->items[i].text;
		if (fd->items[i].level == DIAG_ERROR)
			diag_error(d, NULL, 0, "jail [%s]: %s", j->name, text);
		else
			diag_warn(d, NULL, 0, "jail [%s]: %s", j->name, text);
	}
	if (fd->nerrors)
		diag_error(d, j->file, j->line, "jail [%s]: filter '%s' cannot be used (%zu error%s above)",
			   j->name, j->filter, fd->nerrors, fd->nerrors == 1 ? "" : "s");
	diag_clear(fd);
}

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
		struct diag fd = DIAG_INIT;
		if (config_load_filter(dir, j->filter, &j->opts, &def, &fd) == 0) {
			struct filter *f = filter_compile(&def, &fd);
			filter_free(f);
		}
		filter_def_free(&def);
		add_jail_diags(&d, j, &fd);
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
