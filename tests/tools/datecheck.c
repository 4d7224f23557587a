/*
 * datecheck - test helper: runs the date detector over stdin, one result per
 * line, so that tests can compare it with fail2ban's DateDetector.
 *
 * Usage: datecheck [--now EPOCH] [--tz ZONE] [--dump] [DATEPATTERN...]
 * Without patterns the default templates are used. Each input line (without
 * its '\n') yields one output line:
 *	-            no date found
 *	T S E        time (%.6f) and byte span [S, E) of the date text
 *	! S E        date text at [S, E) that is not a valid date
 * --dump prints the templates (name, then regex) instead and exits.
 * Exit status 2 on a bad pattern (the diagnostics go to stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "core/diag.h"
#include "filters/datedetect.h"

int main(int argc, char **argv)
{
	struct date_clock clk = {0, 0, 0};
	int dump = 0, i;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--now") && i + 1 < argc) {
			clk.now = strtod(argv[++i], NULL);
		} else if (!strcmp(argv[i], "--tz") && i + 1 < argc) {
			if (datedetect_parse_tz(argv[++i], &clk.tz_offset) < 0) {
				fprintf(stderr, "datecheck: bad zone %s\n", argv[i]);
				return 2;
			}
			clk.has_tz = 1;
		} else if (!strcmp(argv[i], "--dump")) {
			dump = 1;
		} else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else {
			break;
		}
	}
	struct diag d = DIAG_INIT;
	struct datedetect *dd =
		datedetect_new((const char *const *)argv + i, (size_t)(argc - i), "datecheck", &d);
	if (!dd) {
		diag_print(&d, stderr);
		diag_clear(&d);
		return 2;
	}
	if (dump) {
		const char *re;
		for (size_t k = 0; k < datedetect_ntemplates(dd); k++) {
			const char *name = datedetect_template(dd, k, NULL, &re);
			printf("%s\n%s\n", name, re);
		}
		datedetect_free(dd);
		return 0;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		size_t len = (size_t)n;
		if (len && line[len - 1] == '\n')
			len--;
		double t;
		size_t s, e;
		int r = datedetect_find(dd, line, len, &clk, &t, &s, &e);
		if (r > 0)
			printf("%.6f %zu %zu\n", t, s, e);
		else if (r < 0)
			printf("! %zu %zu\n", s, e);
		else
			printf("-\n");
	}
	free(line);
	datedetect_free(dd);
	return 0;
}
