/*
 * filterload - internal interface between the filter reader (filterload.c)
 * and the jail reader (config.c).
 *
 * filterload_combined() does what fail2ban's FilterReader does up to
 * getCombined(): read filter.d/NAME with its layering, take the [Definition]
 * options (bracket options and jail values win), fold in [Init] (and its
 * known/ copies), then resolve <tag>s. The jail reader needs the result
 * itself because fail2ban merges it into the jail as "known/<option>" before
 * the jail's own options are interpolated.
 */
#ifndef MXJAIL_CONFIG_FILTERLOAD_H
#define MXJAIL_CONFIG_FILTERLOAD_H

#include "config/ini.h"

struct kvlist;
struct diag;

struct filterload_req {
	const char *confdir;
	const char *name;              /* filter name (or path to a file) */
	const struct kvlist *bracket;  /* options from name[...] */
	const struct kvlist *jailcfg;  /* the jail's options; NULL when standalone */
	const char *backend;           /* jail backend, for logtype; may be NULL */
	int all;                       /* include every [Definition] option */
};

/* Fills combined (an ordered map; each entry keeps the file/lines of its
 * definition). *file gets the main file read (caller frees). When keep is
 * not NULL it receives the files as read (caller ini_free()s it), to trace
 * expanded lines back to their source. Returns 0 or -1 with errors in d. */
int filterload_combined(const struct filterload_req *rq, struct ini_sect *combined, char **file,
			struct ini *keep, struct diag *d);

/* Option names a fail2ban jail reads (JailReader._configOpts), NULL-terminated:
 * only these reach a filter as jail parameters. */
extern const char *const filterload_jail_options[];
/* Option names a fail2ban filter exports (FilterReader._configOpts). */
extern const char *const filterload_filter_options[];

#endif
