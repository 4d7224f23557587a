/*
 * jailopts - a jail's counting parameters from its configuration options.
 *
 * One option table (name, kind, range) for maxretry, findtime, bantime,
 * maxmatches, maxtracked and banprefix6, plus the bantime.* options through
 * jail_incr_parse(); shared by the daemon and `mxjail replay` so both read a
 * jail the same way. Errors name the option and what was expected.
 */
#include "jails/jail.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


enum ptype { P_COUNT, P_TIME, P_SIZE };

struct popt {
	const char *name;
	enum ptype type;
	double min, max;
};

static const struct popt param_table[] = {
	{"maxretry", P_COUNT, 1, 1e6},
	{"findtime", P_TIME, 1, 1e10},
	{"bantime", P_TIME, -1, 1e10},
	{"maxmatches", P_COUNT, 0, 1e4},
	{"maxtracked", P_SIZE, 16, 1e8},
	{"banprefix6", P_COUNT, 0, 128},
};

static int param_value(const struct popt *o, const char *v, double *out, char *err, size_t errlen)
{
	double x;
	if (o->type == P_TIME) {
		if (jail_parse_time(v, &x) < 0) {
			snprintf(err, errlen, "%s: expected a time (600, 10m, 1h30m, -1), got '%s'",
				 o->name, v);
			return -1;
		}
		if (x < 0)
			x = -1;
	} else {
		char *end;
		errno = 0;
		x = strtod(v, &end);
		while (*end == ' ' || *end == '\t')
			end++;
		if (end == v || *end || errno || x != floor(x)) {
			snprintf(err, errlen, "%s: expected a whole number, got '%s'", o->name, v);
			return -1;
		}
	}
	if (x < o->min || x > o->max) {
		snprintf(err, errlen, "%s: %s is out of range (%.0f to %.0f)", o->name, v, o->min, o->max);
		return -1;
	}
	*out = x;
	return 0;
}

int jail_params_from_opts(const struct kvlist *opts, size_t maxtracked_default,
			  struct jail_params *p, int *banprefix6, char *err, size_t errlen)
{
	double val[sizeof param_table / sizeof param_table[0]] = {5, 600, 600, 0, 0, 0};
	int given[sizeof param_table / sizeof param_table[0]] = {0};
	val[4] = (double)maxtracked_default;
	for (size_t i = 0; i < sizeof param_table / sizeof param_table[0]; i++) {
		const char *v = kvlist_get(opts, param_table[i].name);
		if (!v || !*v)
			continue;
		if (param_value(&param_table[i], v, &val[i], err, errlen) < 0)
			return -1;
		given[i] = 1;
	}
	memset(p, 0, sizeof *p);
	p->maxretry = (unsigned)val[0];
	p->findtime = val[1];
	p->bantime = val[2];
	p->maxmatches = given[3] ? (unsigned)val[3] : p->maxretry;
	p->maxtracked = (size_t)val[4];
	*banprefix6 = (int)val[5] == 128 ? 0 : (int)val[5];
	return jail_incr_parse(&p->incr, kvlist_get(opts, "bantime.increment"),
			       kvlist_get(opts, "bantime.factor"), kvlist_get(opts, "bantime.formula"),
			       kvlist_get(opts, "bantime.multipliers"), kvlist_get(opts, "bantime.maxtime"),
			       kvlist_get(opts, "bantime.rndtime"),
			       kvlist_get(opts, "bantime.overalljails"), err, errlen);
}

