/*
 * fw_ipset - fail2ban's iptables-ipset banactions as a native backend (see fw.h).
 *
 * Layout as fail2ban's iptables-ipset(-proto4/-proto6/-proto6-allports): per
 * jail and address family one ipset `f2b-<jail>` (IPv6: `f2b-<jail>6`) of
 * type hash:ip with timeout support, and in front of the hook chain (INPUT
 * or `chain`) one rule per protocol, "-m multiport --dports PORTS -m set
 * --match-set SET src -j DROP|REJECT". Sets and rules are made on a family's
 * first ban, as fail2ban starts actions on demand.
 *
 * Elements go through libipset in the kernel's own protocol: one session,
 * every add/del of a commit parsed as restore lines, so libipset packs the
 * elements of one set into a few netlink messages (10,000 bans are a handful
 * of messages, not 10,000 ipset processes). Elements carry the ban's
 * remaining time as their timeout (clamped to ipset's limit); the daemon's
 * own timer unbans anyway. The iptables rules go through the iptables
 * backend's batch runner (one `iptables-restore --noflush -w` per family).
 *
 * check() asks libipset whether each set exists and iptables-save whether
 * each rule is there; rebuild() re-creates sets (-exist), flushes them,
 * replaces the rules and loads every ban again.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libipset/ipset.h>

#include "actions/fw.h"
#include "actions/fw_impl.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#define SETNAME_MAX 31        /* IPSET_MAXNAMELEN - 1 */
#define IPSET_TIMEOUT_MAX 2147483UL /* fail2ban's bound for ipset timeouts */
#define IPSET_MAXELEM 1048576u

struct ips_jail {
	char *name;
	char *set[2];          /* family 4 (0) / 6 (1) */
	struct fw_ports pt;
	int created[2];
	char *rules[2];        /* "-A HOOK ... --match-set SET src -j X\n" lines installed */
};

struct ips_st {
	char *bindir, *hook;
	struct ipset *ips;
	struct strbuf msg;     /* libipset's last error text */
	struct ips_jail *jails;
	size_t njails;
	struct fw_map pend;    /* (jail, addr) -> timeout + 1 (ban) or 0 (unban) */
};

/* ---------------------------------------------------------------- libipset */

static int ips_error(struct ipset *ipset, void *p, int status, const char *msg, ...)
{
	(void)ipset;
	(void)status;
	struct ips_st *s = p;
	va_list ap;
	va_start(ap, msg);
	char buf[512];
	vsnprintf(buf, sizeof buf, msg, ap);
	va_end(ap);
	if (s->msg.len < 1024) {
		if (s->msg.len)
			strbuf_adds(&s->msg, "; ");
		strbuf_adds(&s->msg, buf);
	}
	return -1;
}

static int ips_std_error(struct ipset *ipset, void *p)
{
	struct ips_st *s = p;
	struct ipset_session *se = ipset_session(ipset);
	const char *m = ipset_session_report_msg(se);
	if (m && *m && s->msg.len < 1024) {
		if (s->msg.len)
			strbuf_adds(&s->msg, "; ");
		strbuf_adds(&s->msg, m);
	}
	int warn = ipset_session_report_type(se) == IPSET_WARNING;
	ipset_session_report_reset(se);
	return warn ? 0 : -1;
}

static int ips_out(struct ipset_session *se, void *p, const char *fmt, ...)
{
	(void)se;
	(void)p;
	(void)fmt;
	return 0; /* listings are not needed: success or failure is the answer */
}

/* Runs one ipset command line (restore syntax; modified in place). */
static int ips_line(struct ips_st *s, const char *line)
{
	char *l = xstrdup(line);
	int r = ipset_parse_line(s->ips, l);
	free(l);
	return r;
}

static int ips_fail(struct ips_st *s, const char *what, char *err, size_t errlen)
{
	int r = fw_errno(err, errlen, EIO, "ipset: %s: %s", what,
			 s->msg.len ? strbuf_str(&s->msg) : "failed");
	strbuf_reset(&s->msg);
	return r;
}

/* Runs many lines as `ipset restore` would: libipset aggregates the
 * add/del lines of one set into few netlink messages only on this path
 * (its line counter is private to the restore reader). */
static int ips_stream(struct ips_st *s, const char *text, size_t len)
{
	if (!len)
		return 0;
	FILE *f = fmemopen((void *)text, len, "r");
	if (!f) {
		strbuf_adds(&s->msg, "fmemopen failed");
		return -1;
	}
	int r = ipset_parse_stream(s->ips, f);
	fclose(f);
	return r;
}

/* Sends what libipset still holds back for aggregation. */
static int ips_flushq(struct ips_st *s)
{
	struct ipset_session *se = ipset_session(s->ips);
	int r = ipset_commit(se);
	if (r < 0 && !s->msg.len) {
		const char *m = ipset_session_report_msg(se);
		strbuf_adds(&s->msg, m && *m ? m : "commit failed");
	}
	ipset_session_report_reset(se);
	return r;
}

/* ---------------------------------------------------------------- names, rules */

static char *set_name(const char *jail, int six)
{
	struct strbuf b = STRBUF_INIT;
	strbuf_adds(&b, "f2b-");
	for (const char *p = jail; *p; p++) {
		unsigned char c = (unsigned char)*p;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			 c == '-' || c == '_' || c == '.';
		strbuf_addc(&b, ok ? (char)c : '_');
	}
	if (six)
		strbuf_addc(&b, '6');
	if (b.len > SETNAME_MAX) {
		/* unique and short: a prefix plus a hash of the whole name */
		uint32_t h = 2166136261u;
		for (const char *p = jail; *p; p++)
			h = (h ^ (unsigned char)*p) * 16777619u;
		char *t = strbuf_detach(&b);
		char *r = xasprintf("%.20s-%08x%s", t, h, six ? "6" : "");
		free(t);
		return r;
	}
	return strbuf_detach(&b);
}

/* The rules of one jail and family as "-A HOOK ...\n" lines. */
static char *jail_rules(const struct ips_st *s, const struct ips_jail *j, int f)
{
	const char *target = !j->pt.reject ? "DROP"
			     : f == 0 ? "REJECT --reject-with icmp-port-unreachable"
				      : "REJECT --reject-with icmp6-port-unreachable";
	char *tail = xasprintf(" -m set --match-set %s src -j %s", j->set[f], target);
	char *rules = fw_ports_rules(&j->pt, s->hook, tail);
	free(tail);
	return rules;
}

/* ---------------------------------------------------------------- backend */

static int ips_init(void **stp, const struct fw_options *o, char *err, size_t errlen)
{
	const char *hook = o->chain && *o->chain ? o->chain : "INPUT";
	if (strlen(hook) > 28 || strpbrk(hook, " \t\n\r"))
		return fw_errf(err, errlen, "ipset: chain '%s' is not an iptables chain name", hook);
	ipset_load_types();
	struct ipset *ips = ipset_init();
	if (!ips)
		return fw_errno(err, errlen, ENOMEM, "ipset: cannot start a libipset session");
	struct ips_st *s = xcalloc(1, sizeof *s);
	s->ips = ips;
	s->hook = xstrdup(hook);
	s->bindir = o->bindir ? xstrdup(o->bindir) : NULL;
	ipset_custom_printf(ips, ips_error, ips_std_error, ips_out, s);
	*stp = s;
	return 0;
}

static void ips_free(void *st)
{
	struct ips_st *s = st;
	for (size_t i = 0; i < s->njails; i++) {
		struct ips_jail *j = &s->jails[i];
		free(j->name);
		free(j->set[0]);
		free(j->set[1]);
		fw_ports_clear(&j->pt);
		free(j->rules[0]);
		free(j->rules[1]);
	}
	free(s->jails);
	fw_map_free(&s->pend);
	ipset_fini(s->ips);
	strbuf_free(&s->msg);
	free(s->hook);
	free(s->bindir);
	free(s);
}

static int find_jail(const struct ips_st *s, const char *name)
{
	for (size_t i = 0; i < s->njails; i++)
		if (strcmp(s->jails[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int ips_declare(void *st, const struct fw_jail *j, char *err, size_t errlen)
{
	struct ips_st *s = st;
	if (!j || !j->name || !*j->name)
		return fw_errf(err, errlen, "ipset: jail name missing");
	struct fw_ports pt = {0};
	int r = fw_ports_set(&pt, j, err, errlen);
	if (r < 0)
		return r;
	int k = find_jail(s, j->name);
	if (k < 0) {
		s->jails = xrealloc(s->jails, (s->njails + 1) * sizeof *s->jails);
		k = (int)s->njails++;
		memset(&s->jails[k], 0, sizeof s->jails[k]);
		s->jails[k].name = xstrdup(j->name);
		s->jails[k].set[0] = set_name(j->name, 0);
		s->jails[k].set[1] = set_name(j->name, 1);
	}
	fw_ports_clear(&s->jails[k].pt);
	s->jails[k].pt = pt;
	return 0;
}

static int jail_no(struct ips_st *s, const struct fw_jail *j, char *err, size_t errlen)
{
	int k = j && j->name ? find_jail(s, j->name) : -1;
	if (k >= 0 && fw_ports_same(&s->jails[k].pt, j))
		return k;
	int r = ips_declare(s, j, err, errlen);
	return r < 0 ? r : find_jail(s, j->name);
}

static unsigned long ips_timeout(unsigned long t)
{
	return t > IPSET_TIMEOUT_MAX ? IPSET_TIMEOUT_MAX : t;
}

static int ips_ban(void *st, const struct fw_jail *j, const struct addr *a, unsigned long timeout,
		   char *err, size_t errlen)
{
	struct ips_st *s = st;
	return fw_queue(&s->pend, jail_no(s, j, err, errlen), a, ips_timeout(timeout) + 1);
}

static int ips_unban(void *st, const struct fw_jail *j, const struct addr *a, char *err,
		     size_t errlen)
{
	struct ips_st *s = st;
	return fw_queue(&s->pend, jail_no(s, j, err, errlen), a, 0);
}

/* Creates the jail's set for family f (-exist) and, when with_rules, its rules. */
static int make_family(struct ips_st *s, struct ips_jail *j, int f, char *err, size_t errlen)
{
	char line[160];
	/* room for a million bans (ipset's default is 65,536); a set of the same
	 * name made by fail2ban has the default size, and -exist refuses
	 * different parameters: then the set is used as it is */
	snprintf(line, sizeof line, "create %s hash:ip timeout 0 maxelem %u%s -exist", j->set[f],
		 IPSET_MAXELEM, f ? " family inet6" : "");
	if (ips_line(s, line) < 0 || ips_flushq(s) < 0) {
		strbuf_reset(&s->msg);
		snprintf(line, sizeof line, "create %s hash:ip timeout 0%s -exist", j->set[f],
			 f ? " family inet6" : "");
		if (ips_line(s, line) < 0 || ips_flushq(s) < 0)
			return ips_fail(s, j->set[f], err, errlen);
	}
	char *rules = jail_rules(s, j, f);
	struct strbuf b = STRBUF_INIT;
	if (j->rules[f])
		fw_rules_as(j->rules[f], "-D", &b); /* ports changed: the old rules go */
	fw_rules_as(rules, "-I", &b);
	int r = fw_restore(s->bindir, f, strbuf_str(&b), err, errlen);
	strbuf_free(&b);
	if (r < 0) {
		free(rules);
		return r;
	}
	free(j->rules[f]);
	j->rules[f] = rules;
	j->created[f] = 1;
	return 0;
}

/* The restore line of one element. */
static void elem_line(struct strbuf *b, const struct ips_jail *j, const struct addr *a, int ban,
		      unsigned long timeout)
{
	char txt[ADDR_STRLEN + 8];
	addr_format(a, txt, sizeof txt);
	int f = a->family == 6;
	if (ban)
		strbuf_addf(b, "add %s %s timeout %lu -exist\n", j->set[f], txt, timeout);
	else
		strbuf_addf(b, "del %s %s -exist\n", j->set[f], txt);
}

static int ips_commit(void *st, char *err, size_t errlen)
{
	struct ips_st *s = st;
	if (!s->pend.n)
		return 0;
	int rc = 0;
	/* a family's set and rules exist before its first element; a jail whose
	 * ports changed since gets its rules replaced */
	for (size_t i = 0; i < s->pend.cap; i++) {
		struct fw_map_ent *e = &s->pend.e[i];
		if (!e->used || !e->val)
			continue;
		struct ips_jail *j = &s->jails[e->jail];
		int f = e->family == 6;
		if (!j->created[f]) {
			int r = make_family(s, j, f, err, errlen);
			if (r < 0)
				rc = r;
		}
	}
	for (size_t k = 0; k < s->njails; k++)
		for (int f = 0; f < 2; f++) {
			struct ips_jail *j = &s->jails[k];
			if (!j->created[f])
				continue;
			char *want = jail_rules(s, j, f);
			if (strcmp(want, j->rules[f]) != 0) {
				int r = make_family(s, j, f, err, errlen);
				if (r < 0)
					rc = r;
			}
			free(want);
		}
	strbuf_reset(&s->msg);
	int bad = 0;
	struct strbuf b = STRBUF_INIT;
	for (size_t i = 0; i < s->pend.cap; i++) {
		struct fw_map_ent *e = &s->pend.e[i];
		if (!e->used)
			continue;
		struct addr a;
		fw_map_key(e, &a);
		struct ips_jail *j = &s->jails[e->jail];
		if (!j->created[a.family == 6])
			continue; /* an unban in a family never used, or its creation failed */
		elem_line(&b, j, &a, e->val != 0, e->val ? (unsigned long)e->val - 1 : 0);
	}
	if (ips_stream(s, strbuf_str(&b), b.len) < 0)
		bad = 1;
	strbuf_free(&b);
	if (bad) {
		/* a set destroyed under us makes every add fail: rebuild */
		int gone = strstr(strbuf_str(&s->msg), "does not exist") != NULL;
		int r = ips_fail(s, "commit", err, errlen);
		rc = gone ? -ENOENT : r;
	}
	fw_map_clear(&s->pend);
	return rc;
}

static int ips_check(void *st, char *err, size_t errlen)
{
	struct ips_st *s = st;
	for (int f = 0; f < 2; f++) {
		struct strbuf save = STRBUF_INIT;
		int saved = 0;
		for (size_t k = 0; k < s->njails; k++) {
			struct ips_jail *j = &s->jails[k];
			if (!j->created[f])
				continue;
			char line[96];
			snprintf(line, sizeof line, "list %s -name", j->set[f]);
			if (ips_line(s, line) < 0 || ips_flushq(s) < 0) {
				strbuf_reset(&s->msg);
				strbuf_free(&save);
				return fw_errno(err, errlen, ENOENT, "ipset: set %s is gone", j->set[f]);
			}
			if (!saved) {
				int r = fw_tool_run(s->bindir, f ? "ip6tables-save" : "iptables-save", "-t",
						    "filter", NULL, NULL, &save, err, errlen);
				if (r < 0) {
					strbuf_free(&save);
					return r;
				}
				saved = 1;
			}
			for (const char *p = j->rules[f]; p && *p;) {
				size_t n = strcspn(p, "\n");
				char *l = xstrndup(p, n);
				int ok = strstr(strbuf_str(&save), l) != NULL;
				free(l);
				if (!ok) {
					strbuf_free(&save);
					return fw_errno(err, errlen, ENOENT,
							"ipset: the rule matching set %s is gone", j->set[f]);
				}
				p += n + (p[n] ? 1 : 0);
			}
		}
		strbuf_free(&save);
	}
	return 0;
}

/* Deletes every rule of the saved table that matches one of our sets. */
static void stale_rules(const struct ips_st *s, int f, const char *save, struct strbuf *b)
{
	for (const char *p = save; *p;) {
		size_t n = strcspn(p, "\n");
		if (n > 3 && strncmp(p, "-A ", 3) == 0)
			for (size_t k = 0; k < s->njails; k++) {
				char *m = xasprintf("--match-set %s src ", s->jails[k].set[f]);
				char *l = xstrndup(p, n);
				int hit = strstr(l, m) != NULL;
				free(m);
				free(l);
				if (hit) {
					strbuf_addf(b, "-D %.*s\n", (int)(n - 3), p + 3);
					break;
				}
			}
		p += n + (p[n] ? 1 : 0);
	}
}

static int ips_rebuild(void *st, const struct fw_ban *bans, size_t n, char *err, size_t errlen)
{
	struct ips_st *s = st;
	fw_map_clear(&s->pend);
	for (size_t i = 0; i < n; i++) {
		int k = jail_no(s, bans[i].jail, err, errlen);
		if (k < 0)
			return k;
		s->jails[k].created[bans[i].addr.family == 6] |= 2; /* needed */
	}
	int rc = 0;
	for (int f = 0; f < 2; f++) {
		int any = 0;
		for (size_t k = 0; k < s->njails; k++)
			any |= s->jails[k].created[f];
		if (!any)
			continue;
		struct strbuf save = STRBUF_INIT, b = STRBUF_INIT;
		int r = fw_tool_run(s->bindir, f ? "ip6tables-save" : "iptables-save", "-t", "filter",
				    NULL, NULL, &save, err, errlen);
		if (r < 0) {
			strbuf_free(&save);
			rc = r;
			for (size_t k = 0; k < s->njails; k++)
				s->jails[k].created[f] = 0;
			continue;
		}
		stale_rules(s, f, strbuf_str(&save), &b);
		strbuf_free(&save);
		if (b.len && fw_restore(s->bindir, f, strbuf_str(&b), err, errlen) < 0)
			rc = -EIO;
		strbuf_free(&b);
		for (size_t k = 0; k < s->njails; k++) {
			struct ips_jail *j = &s->jails[k];
			if (!j->created[f])
				continue;
			j->created[f] = 0;
			free(j->rules[f]);
			j->rules[f] = NULL;
			char line[96];
			snprintf(line, sizeof line, "flush %s", j->set[f]);
			ips_line(s, line); /* fails when the set is gone: made below */
			ips_flushq(s);
			strbuf_reset(&s->msg);
			r = make_family(s, j, f, err, errlen);
			if (r < 0)
				rc = r;
		}
	}
	strbuf_reset(&s->msg);
	int bad = 0;
	struct strbuf b = STRBUF_INIT;
	for (size_t i = 0; i < n; i++) {
		struct ips_jail *j = &s->jails[find_jail(s, bans[i].jail->name)];
		if (!j->created[bans[i].addr.family == 6])
			continue;
		elem_line(&b, j, &bans[i].addr, 1, ips_timeout(bans[i].timeout));
	}
	if (ips_stream(s, strbuf_str(&b), b.len) < 0)
		bad = 1;
	strbuf_free(&b);
	if (bad)
		rc = ips_fail(s, "rebuild", err, errlen);
	return rc;
}

static int ips_flush(void *st, char *err, size_t errlen)
{
	struct ips_st *s = st;
	fw_map_clear(&s->pend);
	strbuf_reset(&s->msg);
	int bad = 0;
	for (size_t k = 0; k < s->njails; k++)
		for (int f = 0; f < 2; f++) {
			if (!s->jails[k].created[f])
				continue;
			char line[96];
			snprintf(line, sizeof line, "flush %s", s->jails[k].set[f]);
			if (ips_line(s, line) < 0)
				bad = 1;
		}
	if (ips_flushq(s) < 0)
		bad = 1;
	return bad ? ips_fail(s, "flush", err, errlen) : 0;
}

static int ips_stop(void *st, char *err, size_t errlen)
{
	struct ips_st *s = st;
	fw_map_clear(&s->pend);
	int rc = 0;
	for (int f = 0; f < 2; f++) {
		struct strbuf b = STRBUF_INIT;
		for (size_t k = 0; k < s->njails; k++)
			if (s->jails[k].created[f])
				fw_rules_as(s->jails[k].rules[f], "-D", &b);
		if (fw_restore(s->bindir, f, strbuf_str(&b), err, errlen) < 0)
			rc = -EIO;
		strbuf_free(&b);
		for (size_t k = 0; k < s->njails; k++) {
			struct ips_jail *j = &s->jails[k];
			if (!j->created[f])
				continue;
			/* a set still referenced cannot be destroyed: flush it then */
			char line[96];
			snprintf(line, sizeof line, "destroy %s", j->set[f]);
			if (ips_line(s, line) < 0 || ips_flushq(s) < 0) {
				strbuf_reset(&s->msg);
				snprintf(line, sizeof line, "flush %s", j->set[f]);
				ips_line(s, line);
				ips_flushq(s);
				strbuf_reset(&s->msg);
			}
			j->created[f] = 0;
			free(j->rules[f]);
			j->rules[f] = NULL;
		}
	}
	return rc;
}

const struct fw_backend fw_ipset_backend = {
	.name = "ipset",
	.init = ips_init,
	.declare = ips_declare,
	.ban = ips_ban,
	.unban = ips_unban,
	.commit = ips_commit,
	.check = ips_check,
	.rebuild = ips_rebuild,
	.flush = ips_flush,
	.stop = ips_stop,
	.free = ips_free,
};
