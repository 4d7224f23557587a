/*
 * jailrun - the filters of a set of jails, loaded for reading log files
 * outside the daemon (`mxjail replay`, `mxjail report`).
 *
 * INTERFACE: jailrun_filter_add() loads a jail's filter (a journal jail's
 * filter is loaded for text files), compiles it once per distinct
 * filter_def_key() and returns the index of the entry the jail uses;
 * jailrun_ignore() builds a jail's ignore list, its messages passed on like
 * the filter's; after the last jail, jailrun_share() marks which filters find
 * dates the same way so that a line's date is searched once per group (entry
 * .share is the index whose .fl a filter reads). jailrun_wanted() is the jail
 * selection both commands share: the enabled jails, or the named ones
 * enabled or not. The set owns its filters; jailrun_free() releases them.
 * Nothing here prints: messages go to the caller's struct diag, prefixed
 * with "jail [NAME]: ".
 */
#ifndef MXJAIL_JAILS_JAILRUN_H
#define MXJAIL_JAILS_JAILRUN_H

#include <stddef.h>

#include "config/config.h"
#include "core/diag.h"
#include "filters/filter.h"
#include "jails/ignore.h"

struct jailrun_filter {
	char *key;                 /* filter_def_key() of the loaded definition */
	struct filter *f;
	struct date_clock clk;     /* the filter's logtimezone, if any */
	size_t share;              /* index of the filter whose preparation is reused */
	struct filter_line fl;     /* the line as prepared for this group */
};

struct jailrun {
	struct jailrun_filter *filters;
	size_t nfilters;
};

/* How filter problems reach the caller's diag. */
enum jailrun_diag {
	JAILRUN_DIAG_KEEP,         /* errors stay errors; "cannot be used" only when none said why */
	JAILRUN_DIAG_WARN,         /* every message a warning; a failure adds "cannot be used" */
};

/* Loads jc's filter from the configuration in dir; *idx receives the index
 * of its entry. now starts the filter's date clock. 0, or -1 after an error
 * was added to d. */
int jailrun_filter_add(struct jailrun *jr, const struct jail_conf *jc, const char *dir, double now,
		       enum jailrun_diag how, size_t *idx, struct diag *d);
/* jc's ignore list (ignoreip, ignoreself, ignorecommand) into *out, its
 * messages forwarded as how says. -1 with *out NULL when the options are
 * broken (an error or, with JAILRUN_DIAG_WARN, a warning was added). */
int jailrun_ignore(const struct jail_conf *jc, double now, enum jailrun_diag how,
		   struct ignorelist **out, struct diag *d);
/* Groups the filters that find dates identically (sets .share). */
void jailrun_share(struct jailrun *jr);
/* Whether jc takes part: enabled, or named in want (then enabled or not). */
int jailrun_wanted(const struct jail_conf *jc, char *const *want, size_t nwant);
void jailrun_free(struct jailrun *jr);

#endif
