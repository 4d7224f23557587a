/*
 * config - reads a fail2ban-layout configuration tree (the public face of the
 * config module; ini.h holds the INI dialect reader underneath).
 *
 * A tree is jail.conf, jail.d/NAME.conf, jail.local, jail.d/NAME.local, filter.d/,
 * action.d/, fail2ban.conf/.local and mxjail.conf. Everything returned is plain
 * data owned by the returned structs: config_free()/filter_def_free() release it.
 * Errors are added to the diag as "file:line: what was expected"; functions
 * return 0 on success and -1 when at least one error was added.
 */
#ifndef MXJAIL_CONFIG_CONFIG_H
#define MXJAIL_CONFIG_CONFIG_H

#include <stddef.h>

#include "core/kvlist.h"
#include "filters/filterdef.h"

struct diag;

/* Loads filter.d/NAME below confdir. spec is "NAME" or "NAME[k=v,k2=\"a,b\"][k3=v]";
 * its options override the filter's [Init] (fail2ban precedence). jailopts (may be
 * NULL) are the jail's own parameters: they feed <tag> substitution and a jail-level
 * failregex/ignoreregex/prefregex/maxlines/datepattern/journalmatch/logtype/
 * logtimezone/usedns overrides the filter's. NAME may also be a path to a file. */
int config_load_filter(const char *confdir, const char *spec, const struct kvlist *jailopts,
		       struct filter_def *out, struct diag *d);

/* One [jail] section after layering and %(x)s interpolation. */
struct jail_conf {
	char *name;
	int enabled;
	char *filter;          /* filter spec, e.g. "postfix[mode=auth]"; "" when none */
	char **logpath;        /* newline list, each possibly a glob with " head"/" tail" */
	size_t nlogpath;
	char **action;         /* newline list of action specs */
	size_t naction;
	char *backend;         /* "auto", "polling", "pyinotify", "systemd[...]"... */
	struct kvlist opts;    /* every option of the section incl. [DEFAULT] ones */
	char *file;            /* file and line of the section header that defined it */
	unsigned line;
};

struct config {
	char *dir;
	struct jail_conf *jails;
	size_t njails;
	struct kvlist general;   /* fail2ban.conf [Definition] after .local layering */
	struct kvlist mxjail;    /* mxjail.conf, keys as "section.key" */
};

/* Reads the whole tree. Missing optional files are fine; a missing jail.conf
 * and jail.local both is an error. Loads no filters (see config_check). */
int config_load(const char *dir, struct config *out, struct diag *d);
void config_free(struct config *c);
/* Frees one jail section's strings and zeroes it. */
void config_jail_clear(struct jail_conf *j);
/* Appends the keys of mxjail.conf [name] to out, without "name." (cfg->mxjail
 * holds them flattened as "section.key"); returns how many. */
size_t config_section(const struct config *cfg, const char *name, struct kvlist *out);

/* Splits "name[k=v,...][k2=v2]" into name and options. Returns 0 or -1 with a
 * message in err (e.g. unbalanced brackets, bad key). */
int config_spec_parse(const char *spec, char **name, struct kvlist *opts, char *err, size_t errlen);

/* Splits an action list ("a[x=1] b\n c[y=\"p q\"]") into specs the way fail2ban
 * does (by whitespace, keeping bracketed options together). *items is an array
 * of stripped, non-empty strings the caller frees. Returns 0 or -1 with err. */
int config_spec_split(const char *list, char ***items, size_t *nitems, char *err, size_t errlen);

/* The value fail2ban_version takes in %(fail2ban_version)s: the fail2ban
 * release whose configuration semantics are implemented. */
#define CONFIG_F2B_VERSION "1.0.2"

#endif
