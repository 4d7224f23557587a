/*
 * interp - the two interpolation stages of fail2ban's configuration.
 *
 * Read time, %(x)s (interp_get): Python configparser's BasicInterpolation as
 * fail2ban extends it. A value is looked up in vars, then its section, then
 * [DEFAULT]; references are expanded recursively (at most 10 levels), `%%`
 * is a percent sign, %(__name__)s is the section name, %(sec/x)s reads
 * section sec, %(default/x)s [DEFAULT], %(known/x)s the value x had before
 * its last override. Lookups of "sec/x" keep the case as written, so
 * %(Sec/x)s does not resolve, exactly like fail2ban.
 *
 * Definition time, <tag> (interp_tags): fail2ban's substituteRecursiveTags
 * over an ordered map of options: innermost tags first (so <a-<b>> works),
 * every occurrence of a tag at once, at most 25 replacements of one tag in one
 * value, self references are errors, unknown tags stay as they are.
 *
 * Errors are returned as INTERP_ERROR with a message in the caller's buffer;
 * "no such section/option" are distinct results because callers fall back.
 */
#ifndef MXJAIL_CONFIG_INTERP_H
#define MXJAIL_CONFIG_INTERP_H

#include <stddef.h>

#include "config/ini.h"

struct kvlist;

enum {
	INTERP_OK = 0,
	INTERP_NOSECTION = 1,
	INTERP_NOOPTION = 2,
	INTERP_ERROR = -1,
};

#define INTERP_MAX_DEPTH 10
#define INTERP_MAX_TAG_REPLACE 25
/* Bound on any value built by interpolation: garbage must not exhaust memory. */
#define INTERP_MAX_VALUE (4u << 20)
/* Bound on all bytes one interp_tags() call may build. */
#define INTERP_MAX_WORK (16u << 20)

struct interp_err {
	char msg[512];
	const char *file; /* location of the option being read, may be NULL */
	unsigned line;
};

/* configparser's get(section, option, raw, vars). On success *out is a new
 * string (caller frees) and *where (if not NULL) the option it came from
 * (NULL when it came from vars). vars may be NULL. */
int interp_get(const struct ini *ini, const char *section, const char *option,
	       const struct kvlist *vars, int raw, char **out, const struct ini_opt **where,
	       struct interp_err *err);

/* fail2ban's get_ex: like interp_get, but "sec/opt" names read sec (known/,
 * default/ handled as in %(..)s) before falling back to the plain lookup. */
int interp_get_ex(const struct ini *ini, const char *section, const char *option,
		  const struct kvlist *vars, char **out, const struct ini_opt **where,
		  struct interp_err *err);

/* fail2ban's getCombOption, as an interp_tags() callback for filter and action
 * files: a tag the combined map lacks is read from [Definition] (with popts as
 * vars) and remembered in cache (a NULL value remembers "absent"). */
struct interp_defsrc {
	const struct ini *ini;
	const struct kvlist *popts;
	struct ini_sect *cache;
};
char *interp_definition_tag(void *ctx, const char *tag, int *failed, struct interp_err *err);

/* ^(\w+)(\?.+)$ : the base name of a conditional option ("name?family=inet6"),
 * or NULL (caller frees). */
char *interp_conditional_base(const char *k);

/* Resolver for tags that are not in the map: returns a new string, NULL when
 * unknown, or sets *failed (with err filled) on a hard error. */
typedef char *(*interp_tag_fn)(void *ctx, const char *tag, int *failed, struct interp_err *err);

/* substituteRecursiveTags: rewrites the values of tags in place (keys in
 * ignore, a NULL-terminated array, are neither expanded nor replaced).
 * Returns 0 or INTERP_ERROR. */
int interp_tags(struct ini_sect *tags, const char *const *ignore, interp_tag_fn fn, void *ctx,
		struct interp_err *err);

#endif
