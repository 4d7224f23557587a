/*
 * fw_iptables - fail2ban's iptables banactions as a native backend (see fw.h).
 *
 * Layout as fail2ban's: a chain f2b-<jail> per jail ending in RETURN, one
 * jump from INPUT (or `chain`) per protocol with the jail's ports
 * (`-m multiport --dports`, at most 15 ports per rule), and one rule per
 * banned address inserted at the head of the jail's chain. Unlike fail2ban
 * (one iptables process per address), every commit is one
 * `iptables-restore --noflush -w` batch per family, so 10,000 bans cost two
 * processes. Chains are made on a family's first ban, as fail2ban starts
 * actions on demand. One bad line fails the whole batch, so the backend
 * only deletes rules it knows it added (a table of live rules); rebuild()
 * first reads `iptables-save` to delete whatever jumps are left, then
 * re-declares each chain (which empties it under --noflush) and loads every
 * ban again.
 *
 * The tools run synchronously (a batch takes a few milliseconds) with a 10 s
 * limit; their stderr becomes the error message.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "actions/fw.h"
#include "actions/fw_impl.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#define CHAIN_MAX 28     /* iptables' limit on chain names */
#define TOOL_TIMEOUT_MS 10000

struct ipt_jail {
	char *name, *chain;
	struct fw_ports pt;
	int created[2];        /* chain and jumps exist in family 4 (0) / 6 (1) */
	char *jumps[2];        /* the jump rules installed ("-A INPUT ... -j f2b-x" lines) */
};

struct ipt_st {
	char *bindir, *hook;
	int newonly;
	struct ipt_jail *jails;
	size_t njails;
	struct fw_map live;    /* (jail, addr) -> 1 */
	struct fw_map pend;    /* (jail, addr) -> 1 ban, 2 unban */
};

/* ---------------------------------------------------------------- tools */

/* Runs tool with args, input on stdin; stdout into out (may be NULL),
 * stderr into err. Returns 0 when it exited 0. (fw_impl.h) */
int fw_tool_run(const char *bindir, const char *name, const char *arg1, const char *arg2,
		const char *arg3, const char *input, struct strbuf *out, char *err, size_t errlen)
{
	char *path = bindir ? xasprintf("%s/%s", bindir, name) : xstrdup(name);
	int in[2] = {-1, -1}, op[2] = {-1, -1}, ep[2] = {-1, -1};
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(op, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
		int e = errno;
		for (int i = 0; i < 2; i++) {
			if (in[i] >= 0) close(in[i]);
			if (op[i] >= 0) close(op[i]);
			if (ep[i] >= 0) close(ep[i]);
		}
		free(path);
		return fw_errno(err, errlen, e, "%s: pipe: %s", name, strerror(e));
	}
	char *argv[] = {(char *)name, (char *)arg1, (char *)arg2, (char *)arg3, NULL};
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		free(path);
		return fw_errno(err, errlen, e, "%s: fork: %s", name, strerror(e));
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(in[0], 0);
		dup2(op[1], 1);
		dup2(ep[1], 2);
		if (strchr(path, '/'))
			execv(path, argv);
		else
			execvp(path, argv);
		_exit(127);
	}
	close(in[0]);
	close(op[1]);
	close(ep[1]);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(op[0], F_SETFL, O_NONBLOCK);
	fcntl(ep[0], F_SETFL, O_NONBLOCK);
	size_t ilen = input ? strlen(input) : 0, ioff = 0;
	if (ilen == 0) {
		close(in[1]);
		in[1] = -1;
	}
	struct strbuf eb = STRBUF_INIT;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int timed_out = 0;
	while (op[0] >= 0 || ep[0] >= 0 || in[1] >= 0) {
		struct pollfd pf[3];
		int np = 0, ii = -1, oi = -1, ei = -1;
		if (in[1] >= 0) { ii = np; pf[np++] = (struct pollfd){.fd = in[1], .events = POLLOUT}; }
		if (op[0] >= 0) { oi = np; pf[np++] = (struct pollfd){.fd = op[0], .events = POLLIN}; }
		if (ep[0] >= 0) { ei = np; pf[np++] = (struct pollfd){.fd = ep[0], .events = POLLIN}; }
		clock_gettime(CLOCK_MONOTONIC, &t1);
		long ms = TOOL_TIMEOUT_MS - ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
		if (ms <= 0) {
			timed_out = 1;
			break;
		}
		if (poll(pf, (nfds_t)np, (int)ms) < 0 && errno != EINTR)
			break;
		if (ii >= 0 && pf[ii].revents) {
			ssize_t k = write(in[1], input + ioff, ilen - ioff);
			if (k > 0)
				ioff += (size_t)k;
			if ((k < 0 && errno != EAGAIN && errno != EINTR) || ioff == ilen) {
				close(in[1]);
				in[1] = -1;
			}
		}
		int fds[2] = {oi, ei};
		for (int w = 0; w < 2; w++) {
			int i = fds[w];
			if (i < 0 || !pf[i].revents)
				continue;
			char buf[8192];
			ssize_t k = read(pf[i].fd, buf, sizeof buf);
			if (k > 0) {
				if (w == 0 && out)
					strbuf_add(out, buf, (size_t)k);
				else if (w == 1 && eb.len < 4096)
					strbuf_add(&eb, buf, (size_t)k);
			} else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(pf[i].fd);
				if (w == 0)
					op[0] = -1;
				else
					ep[0] = -1;
			}
		}
	}
	if (in[1] >= 0) close(in[1]);
	if (op[0] >= 0) close(op[0]);
	if (ep[0] >= 0) close(ep[0]);
	if (timed_out)
		kill(pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	int rc = 0;
	if (timed_out) {
		rc = fw_errno(err, errlen, ETIMEDOUT, "%s timed out", name);
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		const char *m = strbuf_str(&eb);
		size_t ml = strlen(m);
		while (ml && (m[ml - 1] == '\n' || m[ml - 1] == ' '))
			ml--;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 127 && ml == 0)
			rc = fw_errno(err, errlen, ENOENT, "%s: not found (install iptables)", path);
		else
			rc = fw_errno(err, errlen, EIO, "%s failed (status %d): %.*s", name,
				      WIFEXITED(st) ? WEXITSTATUS(st) : -1, (int)(ml > 400 ? 400 : ml), m);
	}
	strbuf_free(&eb);
	free(path);
	return rc;
}

static const char *save_tool(int f)
{
	return f ? "ip6tables-save" : "iptables-save";
}

/* ---------------------------------------------------------------- rules */

static char *chain_name(const char *jail)
{
	struct strbuf b = STRBUF_INIT;
	strbuf_adds(&b, "f2b-");
	for (const char *p = jail; *p; p++) {
		unsigned char c = (unsigned char)*p;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			 c == '-' || c == '_' || c == '.';
		strbuf_addc(&b, ok ? (char)c : '_');
	}
	if (b.len > CHAIN_MAX) {
		/* keep it unique: a prefix plus a hash of the whole name */
		uint32_t h = 2166136261u;
		for (const char *p = jail; *p; p++)
			h = (h ^ (unsigned char)*p) * 16777619u;
		char *s = strbuf_detach(&b);
		char *r = xasprintf("%.19s-%08x", s, h);
		free(s);
		return r;
	}
	return strbuf_detach(&b);
}

/* The jump rules for one family, as "-A HOOK ... -j CHAIN\n" lines. */
static char *jump_rules(const struct ipt_st *s, const struct ipt_jail *j)
{
	char *tail = xasprintf("%s -j %s", s->newonly ? " -m conntrack --ctstate NEW" : "", j->chain);
	char *rules = fw_ports_rules(&j->pt, s->hook, tail);
	free(tail);
	return rules;
}

static void rule_for(const struct ipt_jail *j, const struct addr *a, char op, struct strbuf *b)
{
	char txt[ADDR_STRLEN + 8];
	addr_format(a, txt, sizeof txt);
	const char *target = !j->pt.reject ? "DROP"
			     : a->family == 4 ? "REJECT --reject-with icmp-port-unreachable"
					      : "REJECT --reject-with icmp6-port-unreachable";
	if (op == 'I')
		strbuf_addf(b, "-I %s 1 -s %s -j %s\n", j->chain, txt, target);
	else
		strbuf_addf(b, "-D %s -s %s -j %s\n", j->chain, txt, target);
}

/* Creation of a jail's chain and jumps in one family. */
static void create_lines(const struct ipt_st *s, const struct ipt_jail *j, struct strbuf *b,
			 char **jumps)
{
	strbuf_addf(b, ":%s - [0:0]\n-A %s -j RETURN\n", j->chain, j->chain);
	*jumps = jump_rules(s, j);
	/* jumps go first in the hook, like fail2ban's -I */
	fw_rules_as(*jumps, "-I", b);
}

/* ---------------------------------------------------------------- backend */

static int ipt_init(void **stp, const struct fw_options *o, char *err, size_t errlen)
{
	const char *hook = o->chain && *o->chain ? o->chain : "INPUT";
	for (const char *p = hook; *p; p++)
		if (*p == ' ' || *p == '\n' || *p == '\t' || (unsigned char)*p < 0x20)
			return fw_errf(err, errlen, "iptables: chain '%s' is not a chain name", hook);
	if (strlen(hook) > CHAIN_MAX)
		return fw_errf(err, errlen, "iptables: chain name '%s' too long", hook);
	struct ipt_st *s = xcalloc(1, sizeof *s);
	s->hook = xstrdup(hook);
	s->bindir = o->bindir ? xstrdup(o->bindir) : NULL;
	s->newonly = o->newonly;
	*stp = s;
	return 0;
}

static void jail_clear(struct ipt_jail *j)
{
	free(j->name);
	free(j->chain);
	fw_ports_clear(&j->pt);
	free(j->jumps[0]);
	free(j->jumps[1]);
}

static void ipt_free(void *st)
{
	struct ipt_st *s = st;
	for (size_t i = 0; i < s->njails; i++)
		jail_clear(&s->jails[i]);
	free(s->jails);
	fw_map_free(&s->live);
	fw_map_free(&s->pend);
	free(s->hook);
	free(s->bindir);
	free(s);
}

static int find_jail(struct ipt_st *s, const char *name)
{
	for (size_t i = 0; i < s->njails; i++)
		if (strcmp(s->jails[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int ipt_declare(void *st, const struct fw_jail *j, char *err, size_t errlen)
{
	struct ipt_st *s = st;
	if (!j || !j->name || !*j->name)
		return fw_errf(err, errlen, "iptables: jail name missing");
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
		s->jails[k].chain = chain_name(j->name);
	}
	fw_ports_clear(&s->jails[k].pt);
	s->jails[k].pt = pt;
	return 0;
}

static int jail_no(struct ipt_st *s, const struct fw_jail *j, char *err, size_t errlen)
{
	int k = j && j->name ? find_jail(s, j->name) : -1;
	if (k >= 0 && fw_ports_same(&s->jails[k].pt, j))
		return k;
	int r = ipt_declare(s, j, err, errlen);
	return r < 0 ? r : find_jail(s, j->name);
}

static int ipt_ban(void *st, const struct fw_jail *j, const struct addr *a, unsigned long timeout,
		   char *err, size_t errlen)
{
	(void)timeout;
	struct ipt_st *s = st;
	return fw_queue(&s->pend, jail_no(s, j, err, errlen), a, 1);
}

static int ipt_unban(void *st, const struct fw_jail *j, const struct addr *a, char *err,
		     size_t errlen)
{
	struct ipt_st *s = st;
	return fw_queue(&s->pend, jail_no(s, j, err, errlen), a, 2);
}

static int ipt_commit(void *st, char *err, size_t errlen)
{
	struct ipt_st *s = st;
	if (!s->pend.n)
		return 0;
	struct strbuf b[2] = {STRBUF_INIT, STRBUF_INIT};
	char **newjumps = xcalloc(s->njails * 2 + 1, sizeof *newjumps);
	int rc = 0;
	/* chains first, then rules; a jail whose ports changed gets new jumps */
	for (size_t i = 0; i < s->pend.cap; i++) {
		struct fw_map_ent *e = &s->pend.e[i];
		if (!e->used || e->val != 1)
			continue;
		int f = e->family == 6;
		struct ipt_jail *j = &s->jails[e->jail];
		if (!j->created[f] && !newjumps[e->jail * 2 + f])
			create_lines(s, j, &b[f], &newjumps[e->jail * 2 + f]);
	}
	for (size_t k = 0; k < s->njails; k++)
		for (int f = 0; f < 2; f++) {
			struct ipt_jail *j = &s->jails[k];
			if (!j->created[f] || !j->jumps[f])
				continue;
			char *want = jump_rules(s, j);
			if (strcmp(want, j->jumps[f]) != 0) {
				fw_rules_as(j->jumps[f], "-D", &b[f]);
				fw_rules_as(want, "-I", &b[f]);
				newjumps[k * 2 + f] = want;
			} else {
				free(want);
			}
		}
	for (size_t i = 0; i < s->pend.cap; i++) {
		struct fw_map_ent *e = &s->pend.e[i];
		if (!e->used)
			continue;
		struct addr a;
		fw_map_key(e, &a);
		int f = a.family == 6;
		struct ipt_jail *j = &s->jails[e->jail];
		int live = fw_map_get(&s->live, e->jail, &a) != NULL;
		if (e->val == 1 && !live)
			rule_for(j, &a, 'I', &b[f]);
		else if (e->val == 2 && live && (j->created[f] || newjumps[e->jail * 2 + f]))
			rule_for(j, &a, 'D', &b[f]);
	}
	int ok[2] = {1, 1};
	for (int f = 0; f < 2; f++) {
		int r = fw_restore(s->bindir, f, strbuf_str(&b[f]), err, errlen);
		if (r < 0) {
			ok[f] = 0;
			rc = r;
		}
	}
	/* record what went through */
	for (size_t k = 0; k < s->njails; k++)
		for (int f = 0; f < 2; f++) {
			char *nj = newjumps[k * 2 + f];
			if (!nj)
				continue;
			if (ok[f]) {
				free(s->jails[k].jumps[f]);
				s->jails[k].jumps[f] = nj;
				s->jails[k].created[f] = 1;
			} else {
				free(nj);
			}
		}
	for (size_t i = 0; i < s->pend.cap; i++) {
		struct fw_map_ent *e = &s->pend.e[i];
		if (!e->used)
			continue;
		struct addr a;
		fw_map_key(e, &a);
		if (!ok[a.family == 6])
			continue;
		int isnew;
		if (e->val == 1)
			*fw_map_put(&s->live, e->jail, &a, &isnew) = 1;
		else
			fw_map_del(&s->live, e->jail, &a);
	}
	fw_map_clear(&s->pend);
	free(newjumps);
	strbuf_free(&b[0]);
	strbuf_free(&b[1]);
	return rc;
}

/* Does the saved table hold the chain and every jump? */
static int save_has(const char *save, const struct ipt_jail *j, int f)
{
	char *decl = xasprintf(":%s ", j->chain);
	int ok = strstr(save, decl) != NULL;
	free(decl);
	for (const char *p = j->jumps[f]; ok && p && *p;) {
		size_t n = strcspn(p, "\n");
		char *line = xstrndup(p, n);
		/* iptables-save prints "-A INPUT -p tcp -m multiport --dports 22 -j f2b-x" */
		ok = strstr(save, line) != NULL;
		free(line);
		p += n + (p[n] ? 1 : 0);
	}
	return ok;
}

static int ipt_check(void *st, char *err, size_t errlen)
{
	struct ipt_st *s = st;
	for (int f = 0; f < 2; f++) {
		int any = 0;
		for (size_t k = 0; k < s->njails; k++)
			any |= s->jails[k].created[f];
		if (!any)
			continue;
		struct strbuf out = STRBUF_INIT;
		int r = fw_tool_run(s->bindir, save_tool(f), "-t", "filter", NULL, NULL, &out, err, errlen);
		if (r < 0) {
			strbuf_free(&out);
			return r;
		}
		for (size_t k = 0; k < s->njails; k++) {
			if (s->jails[k].created[f] && !save_has(strbuf_str(&out), &s->jails[k], f)) {
				strbuf_free(&out);
				return fw_errno(err, errlen, ENOENT, "iptables: chain %s or its jump is gone (%s)",
						s->jails[k].chain, f ? "IPv6" : "IPv4");
			}
		}
		strbuf_free(&out);
	}
	return 0;
}

/* Deletes every rule in the saved table that jumps to one of our chains. */
static void stale_jumps(const struct ipt_st *s, const char *save, struct strbuf *b)
{
	for (const char *p = save; *p;) {
		size_t n = strcspn(p, "\n");
		if (n > 3 && strncmp(p, "-A ", 3) == 0) {
			for (size_t k = 0; k < s->njails; k++) {
				char *tail = xasprintf(" -j %s", s->jails[k].chain);
				size_t tl = strlen(tail);
				int hit = n >= tl && strncmp(p + n - tl, tail, tl) == 0 &&
					  strncmp(p + 3, s->jails[k].chain, strlen(s->jails[k].chain)) != 0;
				free(tail);
				if (hit) {
					strbuf_adds(b, "-D ");
					strbuf_add(b, p + 3, n - 3);
					strbuf_addc(b, '\n');
					break;
				}
			}
		}
		p += n + (p[n] ? 1 : 0);
	}
}

static int ipt_rebuild(void *st, const struct fw_ban *bans, size_t n, char *err, size_t errlen)
{
	struct ipt_st *s = st;
	fw_map_clear(&s->pend);
	fw_map_clear(&s->live);
	for (size_t i = 0; i < n; i++) {
		int k = jail_no(s, bans[i].jail, err, errlen);
		if (k < 0)
			return k;
		int isnew;
		*fw_map_put(&s->live, (uint32_t)k, &bans[i].addr, &isnew) = 1;
	}
	int rc = 0;
	for (int f = 0; f < 2; f++) {
		int any = 0;
		char *used = xcalloc(s->njails + 1, 1);
		for (size_t i = 0; i < s->live.cap; i++)
			if (s->live.e[i].used && (s->live.e[i].family == 6) == f)
				used[s->live.e[i].jail] = 1;
		for (size_t k = 0; k < s->njails; k++)
			if (s->jails[k].created[f])
				used[k] = 1;
		for (size_t k = 0; k < s->njails; k++)
			any |= used[k];
		if (!any) {
			free(used);
			continue;
		}
		struct strbuf save = STRBUF_INIT, b = STRBUF_INIT;
		int r = fw_tool_run(s->bindir, save_tool(f), "-t", "filter", NULL, NULL, &save, err, errlen);
		if (r < 0) {
			free(used);
			strbuf_free(&save);
			rc = r;
			continue;
		}
		stale_jumps(s, strbuf_str(&save), &b);
		char **jumps = xcalloc(s->njails + 1, sizeof *jumps);
		for (size_t k = 0; k < s->njails; k++)
			if (used[k])
				create_lines(s, &s->jails[k], &b, &jumps[k]);
		for (size_t i = 0; i < s->live.cap; i++) {
			struct fw_map_ent *e = &s->live.e[i];
			if (!e->used || (e->family == 6) != f)
				continue;
			struct addr a;
			fw_map_key(e, &a);
			rule_for(&s->jails[e->jail], &a, 'I', &b);
		}
		r = fw_restore(s->bindir, f, strbuf_str(&b), err, errlen);
		for (size_t k = 0; k < s->njails; k++) {
			if (!jumps[k])
				continue;
			if (r == 0) {
				free(s->jails[k].jumps[f]);
				s->jails[k].jumps[f] = jumps[k];
				s->jails[k].created[f] = 1;
			} else {
				free(jumps[k]);
				s->jails[k].created[f] = 0;
			}
		}
		if (r < 0)
			rc = r;
		free(jumps);
		free(used);
		strbuf_free(&save);
		strbuf_free(&b);
	}
	return rc;
}

static int ipt_flush(void *st, char *err, size_t errlen)
{
	struct ipt_st *s = st;
	fw_map_clear(&s->pend);
	fw_map_clear(&s->live);
	int rc = 0;
	for (int f = 0; f < 2; f++) {
		struct strbuf b = STRBUF_INIT;
		for (size_t k = 0; k < s->njails; k++)
			if (s->jails[k].created[f])
				strbuf_addf(&b, "-F %s\n-A %s -j RETURN\n", s->jails[k].chain,
					    s->jails[k].chain);
		int r = fw_restore(s->bindir, f, strbuf_str(&b), err, errlen);
		if (r < 0)
			rc = r;
		strbuf_free(&b);
	}
	return rc;
}

static int ipt_stop(void *st, char *err, size_t errlen)
{
	struct ipt_st *s = st;
	fw_map_clear(&s->pend);
	fw_map_clear(&s->live);
	int rc = 0;
	for (int f = 0; f < 2; f++) {
		struct strbuf b = STRBUF_INIT;
		for (size_t k = 0; k < s->njails; k++) {
			struct ipt_jail *j = &s->jails[k];
			if (!j->created[f])
				continue;
			fw_rules_as(j->jumps[f], "-D", &b);
			strbuf_addf(&b, "-F %s\n-X %s\n", j->chain, j->chain);
		}
		int r = fw_restore(s->bindir, f, strbuf_str(&b), err, errlen);
		if (r < 0)
			rc = r;
		for (size_t k = 0; k < s->njails; k++)
			if (r == 0)
				s->jails[k].created[f] = 0;
		strbuf_free(&b);
	}
	return rc;
}

const struct fw_backend fw_iptables_backend = {
	.name = "iptables",
	.init = ipt_init,
	.declare = ipt_declare,
	.ban = ipt_ban,
	.unban = ipt_unban,
	.commit = ipt_commit,
	.check = ipt_check,
	.rebuild = ipt_rebuild,
	.flush = ipt_flush,
	.stop = ipt_stop,
	.free = ipt_free,
};
