/*
 * daemon_ignore - the daemon's seam to jails/ignore.h: builds a jail's ignore
 * list from its options (ignoreip, ignoreself, ignorecommand, ignorecache)
 * and asks it about each failure id before anything is counted or banned.
 *
 * Loopback is never banned whatever the list says; that rule lives in the
 * ignore module and again here for manual bans (which have no list entry to
 * blame). Bad ignoreip entries are configuration errors (the jail does not
 * start); names that do not resolve and missing file: lists are warnings.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/diag.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "daemon/daemon_int.h"
#include "jails/ignore.h"

struct ignorelist *daemon_ignore_new(const struct kvlist *opts, const char *ignoreip,
				     const char *file, unsigned line, struct diag *d)
{
	return ignore_new_from_opts(opts, ignoreip, file, line, daemon_now(), d);
}

int daemon_ignored(struct daemon_jail *j, const char *id, const struct kvlist *groups,
		   char *why, size_t whylen)
{
	/* the ticket's tags are for ignorecommand only: not built per failure otherwise */
	struct kvlist tags = KVLIST_INIT;
	int cmd = ignore_has_command(j->ign);
	if (cmd)
		kvlist_set(&tags, "ip", id);
	for (size_t i = 0; cmd && groups && i < groups->n; i++) {
		char key[128];
		snprintf(key, sizeof key, "F-%s", groups->v[i].key);
		kvlist_set(&tags, key, groups->v[i].value);
	}
	struct ignore_info info = {0};
	enum ignore_reason r = ignore_check(j->ign, id, &tags, daemon_now(), &info);
	kvlist_free(&tags);
	if (r == IGNORE_NONE) {
		if (info.command_failed)
			log_warnx("[%s] ignorecommand for %s failed (%s); not ignored", j->name, id,
				  info.detail);
		return 0;
	}
	/* fail2ban's words first ("by ip", "by command"): log readers grep them */
	const char *word = r == IGNORE_COMMAND ? "command" : "ip";
	if (info.detail[0])
		snprintf(why, whylen, "%s (%s %s)", word, ignore_reason_name(r), info.detail);
	else
		snprintf(why, whylen, "%s (%s)", word, ignore_reason_name(r));
	return 1;
}

void daemon_ignore_poll(struct daemon_jail *j)
{
	struct diag d = DIAG_INIT;
	if (ignore_maybe_reload(j->ign, daemon_now(), &d) > 0)
		log_info("[%s] ignoreip file list changed; re-read", j->name);
	for (size_t i = 0; i < d.n; i++)
		log_warnx("[%s] %s", j->name, d.items[i].text);
	diag_clear(&d);
}

int daemon_ignore_set_list(struct daemon_jail *j, const char *list, char *err, size_t errlen)
{
	struct diag d = DIAG_INIT;
	struct ignorelist *l = daemon_ignore_new(&j->opts, list, NULL, 0, &d);
	if (d.nerrors) {
		snprintf(err, errlen, "%s", d.items[0].text);
		for (size_t i = 0; i < d.n; i++)
			if (d.items[i].level == DIAG_ERROR) {
				snprintf(err, errlen, "%s", d.items[i].text);
				break;
			}
		diag_clear(&d);
		ignore_free(l);
		return -1;
	}
	for (size_t i = 0; i < d.n; i++)
		log_warnx("[%s] %s", j->name, d.items[i].text);
	diag_clear(&d);
	ignore_free(j->ign);
	j->ign = l;
	kvlist_set(&j->opts, "ignoreip", list);
	return 0;
}

void daemon_ignore_format(const struct daemon_jail *j, struct strbuf *out)
{
	size_t n = 0;
	const char *const *e = ignore_entries(j->ign, &n);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_addc(out, ' ');
		strbuf_adds(out, e[i]);
	}
}
