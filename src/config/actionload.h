/*
 * actionload - reads one action.d unit the way fail2ban's ActionReader does
 * and hands back its options as plain data for the command-action runner.
 *
 * INTERFACE: actionload() reads action.d/NAME.conf (+ NAME.d/, NAME.local,
 * [INCLUDES]) below confdir and returns, in an ordered kvlist, every command
 * (actionstart, actionban...), every [Init] option and every bracket option,
 * with %(x)s expanded and <tag>s between them substituted (definition time).
 * Tags the action cannot know (<ip>, <failures>, <F-USER>, <matches>,
 * <bantime>) are left for the runner. Conditional options keep their key
 * ("blocktype?family=inet6"), so the runner can pick per address family.
 *
 * Precedence, as in fail2ban: bracket options (`NAME[k=v]`) beat [Init],
 * which beats [Definition]; the jail's own options (bantime, logpath...)
 * are the variables %(x)s in [Definition] sees. `name` defaults to the jail's
 * name, `actname` to the action's file name.
 *
 * DIAGNOSTICS: file and interpolation errors go to d as "file:line: ...";
 * a missing action names the directory searched. Returns 0 or -1.
 */
#ifndef MXJAIL_CONFIG_ACTIONLOAD_H
#define MXJAIL_CONFIG_ACTIONLOAD_H

struct kvlist;
struct diag;

struct actionload_req {
	const char *confdir;
	const char *name;              /* action file name without .conf, e.g. "sendmail-whois" */
	const char *jail;              /* jail name (default for <name>) */
	const struct kvlist *bracket;  /* options from NAME[...]; may be NULL */
	const struct kvlist *jailcfg;  /* the jail's options; may be NULL */
};

int actionload(const struct actionload_req *rq, struct kvlist *out, struct diag *d);

#endif
