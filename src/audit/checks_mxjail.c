/*
 * checks_mxjail - audit checks on mxjail's own configuration (read with
 * config_load, -c DIR): configuration errors, no jail at all, jails whose log
 * files do not exist, Postfix logging only to the journal (or to a
 * maillog_file) while the jail reads another file, no jail for SASL or
 * Dovecot login failures, and ignoreip entries that exempt whole networks.
 *
 * Interface: audit_mxjail(input, report). The Postfix and Dovecot views are
 * optional; without them the mail-specific checks assume a mail server
 * (that is what mxjail is for). Whether a syslog daemon writes files is the
 * caller's finding (audit_mx_input.syslog_daemon), so tests can set it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "config/config.h"
#include "core/kvlist.h"
#include "core/xmalloc.h"
#include "sources/logpath.h"

static void add(struct audit_report *r, const char *id, enum audit_sev sev, const char *where,
		char *seen, const char *why, char *fix)
{
	audit_add(r, id, sev, where, seen, why, fix);
	free(seen);
	free(fix);
}

static int journal_backend(const struct jail_conf *j)
{
	return j->backend && strncasecmp(j->backend, "systemd", 7) == 0;
}

/* Filter name and mode ("" when none) of a jail. */
static void jail_filter(const struct jail_conf *j, char *name, size_t nl, char *mode, size_t ml)
{
	char *n = NULL, err[128];
	struct kvlist opts = KVLIST_INIT;
	name[0] = mode[0] = '\0';
	if (j->filter && config_spec_parse(j->filter, &n, &opts, err, sizeof err) == 0) {
		const char *base = strrchr(n, '/');
		snprintf(name, nl, "%s", base ? base + 1 : n);
		const char *m = kvlist_get(&opts, "mode");
		if (!m)
			m = kvlist_get(&j->opts, "mode");
		snprintf(mode, ml, "%s", m ? m : "");
		free(n);
	}
	kvlist_free(&opts);
}

/* Calls back for every existing file of a jail; returns the number found. */
static size_t jail_files(const struct jail_conf *j, char ***files)
{
	size_t total = 0, cap = 0;
	*files = NULL;
	for (size_t i = 0; i < j->nlogpath; i++) {
		struct logpath lp;
		char err[256];
		if (logpath_parse(j->logpath[i], &lp, err, sizeof err) != 0)
			continue;
		char **list = NULL;
		size_t n = 0;
		if (logpath_glob(lp.pattern, &list, &n, err, sizeof err) == 0) {
			for (size_t k = 0; k < n; k++) {
				*files = xgrow(*files, &cap, total, sizeof **files);
				(*files)[total++] = list[k];
			}
			free(list);
		}
		free(lp.pattern);
	}
	return total;
}

static int pf_sasl_enabled(const struct pf_conf *pf)
{
	char *v = pf_expand(pf, NULL, "smtpd_sasl_auth_enable");
	int on = strcasecmp(v, "yes") == 0;
	free(v);
	for (size_t i = 0; !on && i < pf->nsvc; i++) {
		v = pf_expand(pf, &pf->svc[i], "smtpd_sasl_auth_enable");
		on = strcasecmp(v, "yes") == 0;
		free(v);
	}
	return on;
}

void audit_mxjail(const struct audit_mx_input *in, struct audit_report *r)
{
	const struct config *cfg = in->cfg;
	if (in->config_errors > 0)
		add(r, "MX-CONFIG-ERRORS", AUDIT_HIGH, cfg && cfg->dir ? cfg->dir : "mxjail",
		    xasprintf("%d configuration error%s", in->config_errors,
			      in->config_errors == 1 ? "" : "s"),
		    "jails with errors are not started, so the attacks they should stop go on",
		    xasprintf("mxjail check -c %s", cfg && cfg->dir ? cfg->dir : "DIR"));
	if (!cfg)
		return;
	char *maillog = in->pf ? pf_expand(in->pf, NULL, "maillog_file") : NULL;
	size_t enabled = 0;
	int sasl_jail = 0, dovecot_jail = 0;
	for (size_t i = 0; i < cfg->njails; i++) {
		const struct jail_conf *j = &cfg->jails[i];
		if (!j->enabled)
			continue;
		enabled++;
		char where[200], fname[128], mode[64];
		snprintf(where, sizeof where, "jail [%s] (%s:%u)", j->name, j->file ? j->file : "?",
			 j->line);
		jail_filter(j, fname, sizeof fname, mode, sizeof mode);
		int postfix = strncasecmp(fname, "postfix", 7) == 0;
		if ((strcasecmp(fname, "postfix") == 0 &&
		     (strcasecmp(mode, "auth") == 0 || strcasecmp(mode, "aggressive") == 0)) ||
		    strcasecmp(fname, "postfix-sasl") == 0 || strcasecmp(fname, "sasl") == 0)
			sasl_jail = 1;
		if (strncasecmp(fname, "dovecot", 7) == 0)
			dovecot_jail = 1;
		const char *ign = kvlist_get(&j->opts, "ignoreip");
		if (ign) {
			char *copy = xstrdup(ign);
			for (char *t = strtok(copy, " ,\t\n"); t; t = strtok(NULL, " ,\t\n")) {
				int s = audit_net_severity(t);
				if (s >= 0) {
					char *why = xasprintf("attackers from %s are never banned", t);
					add(r, "MX-IGNOREIP-WIDE", s == AUDIT_HIGH ? AUDIT_HIGH : AUDIT_MEDIUM,
					    where, xasprintf("ignoreip = %s", ign), why,
					    xstrdup("ignoreip = 127.0.0.1/8 ::1 <your own addresses>"));
					free(why);
					break;
				}
			}
			free(copy);
		}
		if (journal_backend(j))
			continue;
		char **files;
		size_t nf = jail_files(j, &files);
		char lp[512] = "";
		for (size_t k = 0; k < j->nlogpath && strlen(lp) < 400; k++)
			snprintf(lp + strlen(lp), sizeof lp - strlen(lp), "%s%s", k ? " " : "",
				 j->logpath[k]);
		if (postfix && maillog && *maillog) {
			int reads = 0;
			for (size_t k = 0; k < nf; k++)
				if (strcmp(files[k], maillog) == 0)
					reads = 1;
			if (!reads) {
				char *fix = xasprintf("logpath = %s (in jail [%s])", maillog, j->name);
				add(r, "MX-POSTFIX-LOGPATH-MISMATCH", AUDIT_MEDIUM, where,
				    xasprintf("logpath = %s; Postfix maillog_file = %s", lp, maillog),
				    "Postfix writes its log to maillog_file, which this jail does not read",
				    fix);
			}
		} else if (postfix && !in->syslog_daemon) {
			add(r, "MX-POSTFIX-JOURNAL-ONLY", AUDIT_HIGH, where,
			    xasprintf("logpath = %s; backend = %s; no syslog daemon, maillog_file unset", lp,
				      j->backend ? j->backend : "auto"),
			    "without a syslog daemon Postfix logs only to the journal, so a jail that "
			    "reads a file never sees an attack",
			    xstrdup("backend = systemd (in the jail), or postconf -e "
				    "'maillog_file = /var/log/mail.log'"));
		} else if (nf == 0) {
			add(r, "MX-LOGPATH-MISSING", AUDIT_HIGH, where, xasprintf("logpath = %s", lp),
			    "no file matches the jail's logpath, so the jail watches nothing",
			    xstrdup("point logpath at the file the service writes, or use "
				    "backend = systemd"));
		}
		logpath_free_list(files, nf);
	}
	if (enabled == 0)
		add(r, "MX-NO-JAILS", AUDIT_MEDIUM, cfg->dir ? cfg->dir : "mxjail",
		    xstrdup("no [jail] with enabled = true"), "nothing is banned",
		    xstrdup("enable jails in jail.local, e.g. [postfix] enabled = true"));
	if (enabled && !sasl_jail && (!in->pf || pf_sasl_enabled(in->pf)))
		add(r, "MX-NO-SASL-JAIL", AUDIT_MEDIUM, cfg->dir ? cfg->dir : "mxjail",
		    xstrdup("no enabled jail with filter postfix[mode=auth|aggressive] or postfix-sasl"),
		    "password guessing against SMTP AUTH is never banned",
		    xstrdup("[postfix-sasl] enabled = true, filter = postfix[mode=auth], "
			    "logpath = %(postfix_log)s"));
	if (enabled && !dovecot_jail && in->dc)
		add(r, "MX-NO-DOVECOT-JAIL", AUDIT_MEDIUM, cfg->dir ? cfg->dir : "mxjail",
		    xstrdup("no enabled jail with filter dovecot"),
		    "password guessing against IMAP/POP3 is never banned",
		    xstrdup("[dovecot] enabled = true"));
	free(maillog);
}
