/*
 * daemon_ctl - the control verbs the daemon answers on its socket (ctl.h):
 * ping, version, status [JAIL], banned [ADDR...], ban JAIL ADDR... [--force],
 * unban [JAIL] ADDR...|--all, why ADDR, reload [JAIL], get/set JAIL
 * bantime|findtime|maxretry|ignoreip.
 *
 * Bodies are rendered here, as text close to fail2ban-client's (the tree
 * drawn with |- and `-) or as JSON when the client asked for it, so the CLI
 * only prints what it receives. Arguments come from a peer the socket
 * already checked (root or our uid) but are still validated: addresses are
 * parsed, jails looked up, numbers range-checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/timefmt.h"
#include "core/log.h"
#include "ctl/ctl.h"
#include "core/xmalloc.h"
#include "daemon/daemon_int.h"
#include "daemon/daemon_policy.h"
#include "store/store.h"

static void jstr(struct strbuf *o, const char *s)
{
	strbuf_add_json(o, s ? s : "", s ? strlen(s) : 0);
}

static int err_out(struct strbuf *out, const char *fmt, const char *a)
{
	strbuf_addf(out, fmt, a);
	strbuf_addc(out, '\n');
	return -1;
}

/* ---------- status ---------- */

static void jail_bans(struct daemon *dm, const char *jail, struct store_banlist *l)
{
	if (store_banned(dm->store, jail, daemon_now(), l) < 0)
		log_warnx("state: %s", store_error(dm->store));
}

static int cmd_status(struct daemon *dm, int argc, char **argv, int json, struct strbuf *o)
{
	struct daemon_set *s = dm->set;
	if (argc < 2) {
		if (json) {
			strbuf_addf(o, "{\"jails\":[");
			for (size_t i = 0; i < s->njails; i++) {
				if (i)
					strbuf_addc(o, ',');
				jstr(o, s->jails[i]->name);
			}
			strbuf_addf(o, "],\"banned\":%zu,\"uptime\":%.0f,\"dry_run\":%s", dm->bans.n,
				    daemon_now() - dm->started, dm->dry_run ? "true" : "false");
			daemon_cluster_status(dm, 1, o);
			strbuf_adds(o, "}\n");
			return 0;
		}
		strbuf_addf(o, "Status\n|- Number of jail:\t%zu\n`- Jail list:\t", s->njails);
		for (size_t i = 0; i < s->njails; i++)
			strbuf_addf(o, "%s%s", i ? ", " : "", s->jails[i]->name);
		strbuf_addc(o, '\n');
		daemon_cluster_status(dm, 0, o);
		return 0;
	}
	struct daemon_jail *j = daemon_jail_find(s, argv[1]);
	if (!j)
		return err_out(o, "Sorry but the jail '%s' does not exist", argv[1]);
	struct store_banlist l = STORE_BANLIST_INIT;
	jail_bans(dm, j->name, &l);
	size_t tracked = jail_tracked(j->j);
	if (json) {
		strbuf_adds(o, "{\"jail\":");
		jstr(o, j->name);
		strbuf_addf(o, ",\"currently_failed\":%zu,\"total_failed\":%lu,", tracked,
			    j->failed_total);
		strbuf_addf(o, "\"%s\":[", j->journal ? "journal_matches" : "files");
		if (j->journal) {
			jstr(o, j->flt->journalmatch);
		} else {
			for (size_t i = 0; i < j->nfiles; i++) {
				if (i)
					strbuf_addc(o, ',');
				jstr(o, j->files[i]);
			}
		}
		strbuf_addf(o, "],\"currently_banned\":%zu,\"total_banned\":%lu,\"banned\":[",
			    j->banned_now, j->banned_total);
		for (size_t i = 0; i < l.n; i++) {
			if (i)
				strbuf_addc(o, ',');
			jstr(o, l.v[i].id);
		}
		strbuf_adds(o, "],\"actions\":");
		jstr(o, j->actions);
		strbuf_addf(o, ",\"firewall\":%s,\"evictions\":%lu}\n", j->has_fw ? "true" : "false",
			    jail_evictions(j->j));
		store_banlist_free(&l);
		return 0;
	}
	strbuf_addf(o, "Status for the jail: %s\n|- Filter\n", j->name);
	strbuf_addf(o, "|  |- Currently failed:\t%zu\n|  |- Total failed:\t%lu\n", tracked,
		    j->failed_total);
	if (j->journal) {
		strbuf_adds(o, "|  `- Journal matches:\t");
		for (const char *p = j->flt->journalmatch; *p; p++)
			strbuf_addc(o, *p == '\n' ? ' ' : *p);
		strbuf_addc(o, '\n');
	} else {
		strbuf_adds(o, "|  `- File list:\t");
		for (size_t i = 0; i < j->nfiles; i++)
			strbuf_addf(o, "%s%s", i ? " " : "", j->files[i]);
		strbuf_addc(o, '\n');
	}
	strbuf_addf(o, "`- Actions\n   |- Currently banned:\t%zu\n   |- Total banned:\t%lu\n",
		    j->banned_now, j->banned_total);
	strbuf_adds(o, "   `- Banned IP list:\t");
	for (size_t i = 0; i < l.n; i++)
		strbuf_addf(o, "%s%s", i ? " " : "", l.v[i].id);
	strbuf_addc(o, '\n');
	store_banlist_free(&l);
	return 0;
}

/* ---------- banned ---------- */

static void ban_json(struct strbuf *o, const struct store_ban *b)
{
	strbuf_adds(o, "{\"jail\":");
	jstr(o, b->jail);
	strbuf_adds(o, ",\"address\":");
	jstr(o, b->id);
	strbuf_addf(o, ",\"timeofban\":%.0f,\"bantime\":%.0f,\"end\":%.0f,\"remaining\":%.0f,"
		       "\"bancount\":%u,\"failures\":%u",
		    b->timeofban, b->bantime, b->end, b->remaining, b->bancount, b->failures);
}

static void ban_text(struct strbuf *o, const struct store_ban *b)
{
	char t1[32], t2[32];
	timefmt_local(b->timeofban, t1, sizeof t1);
	timefmt_local(b->end, t2, sizeof t2);
	if (b->end < 0)
		strbuf_addf(o, "%-16s %-39s %s  forever\n", b->jail, b->id, t1);
	else
		strbuf_addf(o, "%-16s %-39s %s  %s  %.0f s left\n", b->jail, b->id, t1, t2,
			    b->remaining);
}

/* Which ids to look up for an address: itself and the prefixes jails ban. */
static int lookup_ids(const char *arg, char ids[][ADDR_STRLEN], size_t *n)
{
	struct addr a;
	if (addr_parse_cidr(arg, strlen(arg), &a) < 0)
		return -1;
	addr_format(&a, ids[0], ADDR_STRLEN);
	*n = 1;
	return 0;
}

static int cmd_banned(struct daemon *dm, int argc, char **argv, int json, struct strbuf *o)
{
	double now = daemon_now();
	struct store_banlist l = STORE_BANLIST_INIT;
	if (argc < 2) {
		jail_bans(dm, NULL, &l);
		if (json) {
			strbuf_addc(o, '[');
			for (size_t i = 0; i < l.n; i++) {
				if (i)
					strbuf_addc(o, ',');
				ban_json(o, &l.v[i]);
				strbuf_addc(o, '}');
			}
			strbuf_adds(o, "]\n");
		} else {
			if (l.n)
				strbuf_addf(o, "%-16s %-39s %-19s  %-19s  %s\n", "JAIL", "ADDRESS", "BANNED",
					    "ENDS", "REMAINING");
			for (size_t i = 0; i < l.n; i++)
				ban_text(o, &l.v[i]);
		}
		store_banlist_free(&l);
		return 0;
	}
	/* banned ADDR...: the jails each address is banned in (fail2ban 1.1's form) */
	if (json)
		strbuf_addc(o, '{');
	for (int i = 1; i < argc; i++) {
		char ids[2][ADDR_STRLEN];
		size_t n;
		if (lookup_ids(argv[i], ids, &n) < 0)
			return err_out(o, "'%s' is not an IP address", argv[i]);
		struct store_banlist w = STORE_BANLIST_INIT;
		if (store_why(dm->store, ids[0], now, 0, &w) < 0)
			log_warnx("state: %s", store_error(dm->store));
		if (json) {
			if (i > 1)
				strbuf_addc(o, ',');
			jstr(o, ids[0]);
			strbuf_adds(o, ":[");
		} else {
			strbuf_addf(o, "%s:", ids[0]);
		}
		int k = 0;
		for (size_t m = 0; m < w.n; m++) {
			if (!w.v[m].live)
				continue;
			if (json) {
				if (k)
					strbuf_addc(o, ',');
				jstr(o, w.v[m].jail);
			} else {
				strbuf_addf(o, "%s%s", k ? ", " : " ", w.v[m].jail);
			}
			k++;
		}
		if (json)
			strbuf_addc(o, ']');
		else
			strbuf_adds(o, k ? "\n" : " not banned\n");
		store_banlist_free(&w);
	}
	if (json)
		strbuf_adds(o, "}\n");
	return 0;
}

/* ---------- ban / unban ---------- */

static int cmd_ban(struct daemon *dm, int argc, char **argv, int json, struct strbuf *o)
{
	int force = 0, nargs = 0;
	char *args[CTL_MAX_ARGS];
	for (int i = 1; i < argc && nargs < CTL_MAX_ARGS; i++) {
		if (strcmp(argv[i], "--force") == 0)
			force = 1;
		else
			args[nargs++] = argv[i];
	}
	if (nargs < 2)
		return err_out(o, "%s", "usage: ban JAIL ADDR... [--force]");
	struct daemon_jail *j = daemon_jail_find(dm->set, args[0]);
	if (!j)
		return err_out(o, "Sorry but the jail '%s' does not exist", args[0]);
	struct addr *v = xcalloc((size_t)nargs, sizeof *v);
	for (int i = 1; i < nargs; i++) {
		if (addr_parse_cidr(args[i], strlen(args[i]), &v[i]) < 0) {
			free(v);
			return err_out(o, "'%s' is not an IP address or prefix", args[i]);
		}
		char id[ADDR_STRLEN], why[320];
		addr_format(&v[i], id, sizeof id);
		if (!force && (daemon_ignored(j, id, NULL, why, sizeof why) ||
			       (addr_is_loopback(&v[i]) && snprintf(why, sizeof why, "loopback")))) {
			strbuf_addf(o, "refusing to ban %s: jail %s ignores it (%s); use --force\n",
				    args[i], j->name, why);
			free(v);
			return -1;
		}
	}
	int n = 0;
	char err[256];
	for (int i = 1; i < nargs; i++) {
		const char *line = "manual ban (mxjail ban)";
		if (daemon_ban_addr(j, &v[i], daemon_now(), 0, (char **)&line, 1, 1, err, sizeof err) > 0)
			n++;
	}
	free(v);
	/* one store transaction for every address of the call, before the reply */
	daemon_bans_commit(dm);
	if (json)
		strbuf_addf(o, "{\"banned\":%d}\n", n);
	else
		strbuf_addf(o, "%d\n", n);
	return 0;
}

static int cmd_unban(struct daemon *dm, int argc, char **argv, int json, struct strbuf *o)
{
	int all = 0, first = 1, n = 0;
	const char *jail = NULL;
	if (argc >= 2 && daemon_jail_find(dm->set, argv[1])) {
		jail = argv[1];
		first = 2;
	}
	for (int i = first; i < argc; i++)
		if (strcmp(argv[i], "--all") == 0)
			all = 1;
	if (all) {
		n = daemon_unban_all(dm, jail);
		/* bans of jails that are not running live only in the store */
		int extra = store_unban_all(dm->store, jail, daemon_now());
		if (extra > 0 && n == 0)
			n = extra;
	} else {
		if (first >= argc)
			return err_out(o, "%s", "usage: unban [JAIL] ADDR...|--all");
		for (int i = first; i < argc; i++) {
			struct addr a;
			if (addr_parse_cidr(argv[i], strlen(argv[i]), &a) < 0)
				return err_out(o, "'%s' is not an IP address or prefix (nor a jail)",
					       argv[i]);
		}
		for (int i = first; i < argc; i++) {
			struct addr a;
			char id[ADDR_STRLEN];
			addr_parse_cidr(argv[i], strlen(argv[i]), &a);
			addr_format(&a, id, sizeof id);
			int k = daemon_unban_id(dm, jail, id);
			if (k == 0 && store_unban(dm->store, jail, id, daemon_now()) > 0)
				k = 1;
			n += k;
			if (k == 0 && !json && argc - first == 1 && !jail)
				return err_out(o, "%s is not banned", id);
		}
	}
	if (json)
		strbuf_addf(o, "{\"unbanned\":%d}\n", n);
	else
		strbuf_addf(o, "%d\n", n);
	return 0;
}

/* ---------- why ---------- */

static int cmd_why(struct daemon *dm, int argc, char **argv, int json, struct strbuf *o)
{
	if (argc != 2)
		return err_out(o, "%s", "usage: why ADDR");
	struct addr a;
	if (addr_parse_cidr(argv[1], strlen(argv[1]), &a) < 0)
		return err_out(o, "'%s' is not an IP address", argv[1]);
	char id[ADDR_STRLEN];
	addr_format(&a, id, sizeof id);
	struct store_banlist l = STORE_BANLIST_INIT;
	double now = daemon_now();
	if (store_why(dm->store, id, now, 10, &l) < 0)
		log_warnx("state: %s", store_error(dm->store));
	/* an IPv6 host may be banned through its jail's banprefix6 */
	for (size_t i = 0; a.family == 6 && a.prefix == 128 && i < dm->set->njails; i++) {
		int p = dm->set->jails[i]->banprefix6;
		if (!p)
			continue;
		char buf[ADDR_STRLEN + 8];
		snprintf(buf, sizeof buf, "%s/%d", id, p);
		struct addr net;
		char nid[ADDR_STRLEN];
		if (addr_parse_cidr(buf, strlen(buf), &net) < 0)
			continue;
		addr_format(&net, nid, sizeof nid);
		if (store_why(dm->store, nid, now, 10, &l) < 0)
			log_warnx("state: %s", store_error(dm->store));
	}
	if (json) {
		strbuf_adds(o, "{\"address\":");
		jstr(o, id);
		strbuf_adds(o, ",\"bans\":[");
		for (size_t i = 0; i < l.n; i++) {
			if (i)
				strbuf_addc(o, ',');
			ban_json(o, &l.v[i]);
			strbuf_addf(o, ",\"live\":%s,\"lines\":[", l.v[i].live ? "true" : "false");
			for (size_t k = 0; k < l.v[i].nlines; k++) {
				if (k)
					strbuf_addc(o, ',');
				jstr(o, l.v[i].lines[k]);
			}
			strbuf_adds(o, "]}");
		}
		strbuf_adds(o, "]}\n");
		store_banlist_free(&l);
		return 0;
	}
	if (l.n == 0)
		strbuf_addf(o, "%s has no bans on record\n", id);
	for (size_t i = 0; i < l.n; i++) {
		const struct store_ban *b = &l.v[i];
		char t1[32], t2[32];
		timefmt_local(b->timeofban, t1, sizeof t1);
		timefmt_local(b->end, t2, sizeof t2);
		strbuf_addf(o, "%s %s in jail %s since %s", b->live ? "Banned" : "Was banned", b->id,
			    b->jail, t1);
		if (b->end < 0)
			strbuf_adds(o, ", forever");
		else if (b->live)
			strbuf_addf(o, " until %s (%.0f s left)", t2, b->remaining);
		else
			strbuf_addf(o, " until %s", t2);
		strbuf_addf(o, "; ban #%u after %u failure%s\n", b->bancount, b->failures,
			    b->failures == 1 ? "" : "s");
		for (size_t k = 0; k < b->nlines; k++)
			strbuf_addf(o, "  %s\n", b->lines[k]);
	}
	store_banlist_free(&l);
	return 0;
}

/* ---------- get / set ---------- */

static void time_text(double t, struct strbuf *o)
{
	if (t < 0)
		strbuf_adds(o, "-1");
	else
		strbuf_addf(o, "%.0f", t);
}

static int cmd_get(struct daemon *dm, int argc, char **argv, int json, struct strbuf *o)
{
	if (argc != 3)
		return err_out(o, "%s", "usage: get JAIL bantime|findtime|maxretry|ignoreip");
	struct daemon_jail *j = daemon_jail_find(dm->set, argv[1]);
	if (!j)
		return err_out(o, "Sorry but the jail '%s' does not exist", argv[1]);
	struct strbuf v = STRBUF_INIT;
	int num = 1;
	if (!strcmp(argv[2], "bantime"))
		time_text(j->p.bantime, &v);
	else if (!strcmp(argv[2], "findtime"))
		time_text(j->p.findtime, &v);
	else if (!strcmp(argv[2], "maxretry"))
		strbuf_addf(&v, "%u", j->p.maxretry);
	else if (!strcmp(argv[2], "ignoreip")) {
		daemon_ignore_format(j, &v);
		num = 0;
	} else {
		strbuf_free(&v);
		return err_out(o, "unknown setting '%s' (bantime, findtime, maxretry, ignoreip)",
			       argv[2]);
	}
	if (json) {
		strbuf_adds(o, "{\"jail\":");
		jstr(o, j->name);
		strbuf_adds(o, ",\"key\":");
		jstr(o, argv[2]);
		strbuf_adds(o, ",\"value\":");
		if (num)
			strbuf_adds(o, strbuf_str(&v));
		else
			jstr(o, strbuf_str(&v));
		strbuf_adds(o, "}\n");
	} else {
		strbuf_addf(o, "%s\n", strbuf_str(&v));
	}
	strbuf_free(&v);
	return 0;
}

static int cmd_set(struct daemon *dm, int argc, char **argv, int json, struct strbuf *o)
{
	if (argc < 4)
		return err_out(o, "%s", "usage: set JAIL bantime|findtime|maxretry|ignoreip VALUE");
	struct daemon_jail *j = daemon_jail_find(dm->set, argv[1]);
	if (!j)
		return err_out(o, "Sorry but the jail '%s' does not exist", argv[1]);
	const char *key = argv[2];
	char err[512];
	if (!strcmp(key, "ignoreip")) {
		struct strbuf list = STRBUF_INIT;
		for (int i = 3; i < argc; i++)
			strbuf_addf(&list, "%s%s", i > 3 ? " " : "", argv[i]);
		int r = daemon_ignore_set_list(j, strbuf_str(&list), err, sizeof err);
		strbuf_free(&list);
		if (r < 0)
			return err_out(o, "%s", err);
	} else if (!strcmp(key, "bantime") || !strcmp(key, "findtime") || !strcmp(key, "maxretry")) {
		if (argc != 4)
			return err_out(o, "%s", "set: one value expected");
		struct kvlist opts = KVLIST_INIT;
		kvlist_copy(&opts, &j->opts);
		kvlist_set(&opts, key, argv[3]);
		struct jail_params p;
		int bp6;
		int r = daemon_jail_params(dm, &opts, &p, &bp6, err, sizeof err);
		if (r == 0) {
			jail_incr_free(&j->p.incr);
			j->p = p;
			jail_set_params(j->j, &j->p);
			kvlist_set(&j->opts, key, argv[3]);
		}
		kvlist_free(&opts);
		if (r < 0)
			return err_out(o, "%s", err);
	} else {
		return err_out(o, "unknown setting '%s' (bantime, findtime, maxretry, ignoreip)", key);
	}
	log_notice("[%s] set %s = %s (until the next reload)", j->name, key, argv[3]);
	char *gv[] = {"get", argv[1], argv[2]};
	return cmd_get(dm, 3, gv, json, o);
}

/* ---------- dispatch ---------- */

int daemon_ctl_handle(void *arg, int argc, char **argv, int json, struct strbuf *out)
{
	struct daemon *dm = arg;
	const char *verb = argv[0];
	/* verbs read bans back from the store: bans of this turn go in first */
	daemon_bans_commit(dm);
	if (!strcmp(verb, "ping")) {
		strbuf_adds(out, json ? "{\"pong\":true}\n" : "pong\n");
		return 0;
	}
	if (!strcmp(verb, "version")) {
		if (json)
			strbuf_adds(out, "{\"version\":\"" MXJAIL_VERSION "\"}\n");
		else
			strbuf_adds(out, MXJAIL_VERSION "\n");
		return 0;
	}
	if (daemon_policy_is_verb(verb))
		return daemon_policy_ctl(dm->policy, argc, argv, json, out);
	if (!strcmp(verb, "status"))
		return cmd_status(dm, argc, argv, json, out);
	if (!strcmp(verb, "banned"))
		return cmd_banned(dm, argc, argv, json, out);
	if (!strcmp(verb, "ban"))
		return cmd_ban(dm, argc, argv, json, out);
	if (!strcmp(verb, "unban"))
		return cmd_unban(dm, argc, argv, json, out);
	if (!strcmp(verb, "why"))
		return cmd_why(dm, argc, argv, json, out);
	if (!strcmp(verb, "get"))
		return cmd_get(dm, argc, argv, json, out);
	if (!strcmp(verb, "set"))
		return cmd_set(dm, argc, argv, json, out);
	if (!strcmp(verb, "reload")) {
		if (argc > 1 && !daemon_jail_find(dm->set, argv[1]))
			return err_out(out, "Sorry but the jail '%s' does not exist", argv[1]);
		struct strbuf msg = STRBUF_INIT;
		int r = daemon_reload_jail(dm, argc > 1 ? argv[1] : NULL, &msg);
		if (json) {
			strbuf_addf(out, "{\"ok\":%s,\"message\":", r == 0 ? "true" : "false");
			jstr(out, strbuf_str(&msg));
			strbuf_adds(out, "}\n");
		} else {
			strbuf_adds(out, strbuf_str(&msg));
		}
		strbuf_free(&msg);
		return r == 0 ? 0 : -1;
	}
	return err_out(out, "unknown command '%s'", verb);
}
