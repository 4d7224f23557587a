/*
 * fw_null - firewall backend that only records (tests and dry runs).
 *
 * Same contract as the nftables backend (fw.h): jails are validated the same
 * way, ban/unban queue and commit applies the queue in order, check() reports
 * missing objects after fw_null_simulate_flush() until rebuild(). Committed
 * operations are appended to a text log ("ban sshd 192.0.2.1 600"), which a
 * dry run can show and a test can compare. Timeouts are recorded as given;
 * nothing expires by itself (the caller's timers unban, as with nftables).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actions/fw.h"
#include "actions/fw_impl.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#define NULL_LOG_MAX (4u << 20) /* keep the log bounded in long dry runs */

struct nop {
	uint32_t jail;
	uint8_t ban;
	struct addr a;
	unsigned long timeout;
};

struct null_st {
	unsigned families;
	int present;                /* our objects "exist" */
	int lost;                   /* removed behind our back: commits fail until rebuild */
	struct fw_jspec *jails;
	size_t njails, capjails;
	struct nop *ops;
	size_t nops, capops;
	struct fw_map live;         /* (jail, addr) -> timeout + 1 */
	struct strbuf log;
	int log_full;
};

static int null_init(void **stp, const struct fw_options *o, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	struct null_st *s = xcalloc(1, sizeof *s);
	s->families = o->families & (FW_FAMILY_4 | FW_FAMILY_6);
	if (!s->families)
		s->families = FW_FAMILY_4 | FW_FAMILY_6;
	*stp = s;
	return 0;
}

static void null_free(void *st)
{
	struct null_st *s = st;
	if (!s)
		return;
	for (size_t i = 0; i < s->njails; i++)
		fw_jspec_clear(&s->jails[i]);
	free(s->jails);
	free(s->ops);
	fw_map_free(&s->live);
	strbuf_free(&s->log);
	free(s);
}

static void logf_(struct null_st *s, const char *verb, const char *jail, const struct addr *a,
		  unsigned long t, int with_t)
{
	if (s->log_full)
		return;
	if (s->log.len > NULL_LOG_MAX) {
		strbuf_adds(&s->log, "... log truncated\n");
		s->log_full = 1;
		return;
	}
	strbuf_adds(&s->log, verb);
	if (jail)
		strbuf_addf(&s->log, " %s", jail);
	if (a) {
		char buf[ADDR_STRLEN];
		addr_format(a, buf, sizeof buf);
		strbuf_addf(&s->log, " %s", buf);
	}
	if (with_t)
		strbuf_addf(&s->log, " %lu", t);
	strbuf_addc(&s->log, '\n');
}

static int find_jail(struct null_st *s, const struct fw_jail *j, char *err, size_t errlen)
{
	if (!j || !j->name)
		return fw_errf(err, errlen, "jail name missing");
	for (size_t i = 0; i < s->njails; i++) {
		if (strcmp(s->jails[i].name, j->name) != 0)
			continue;
		if (!fw_jspec_same(&s->jails[i], j)) {
			struct fw_jspec sp;
			int r = fw_jspec_compile(j, &sp, err, errlen);
			if (r < 0)
				return r;
			fw_jspec_clear(&s->jails[i]);
			s->jails[i] = sp;
		}
		return (int)i;
	}
	struct fw_jspec sp;
	int r = fw_jspec_compile(j, &sp, err, errlen);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->njails; i++)
		if (strcmp(s->jails[i].base, sp.base) == 0) {
			r = fw_errno(err, errlen, EEXIST, "jails '%s' and '%s' map to the same set names (%s_*)",
				     s->jails[i].name, sp.name, sp.base);
			fw_jspec_clear(&sp);
			return r;
		}
	s->jails = xgrow(s->jails, &s->capjails, s->njails, sizeof *s->jails);
	s->jails[s->njails] = sp;
	return (int)s->njails++;
}

static int null_declare(void *st, const struct fw_jail *j, char *err, size_t errlen)
{
	int r = find_jail(st, j, err, errlen);
	return r < 0 ? r : 0;
}

static int queue(struct null_st *s, const struct fw_jail *j, const struct addr *a, int ban,
		 unsigned long timeout, char *err, size_t errlen)
{
	if (!a || (a->family != 4 && a->family != 6))
		return fw_errf(err, errlen, "not an IPv4 or IPv6 address");
	if (a->prefix < 0 || a->prefix > (a->family == 4 ? 32 : 128))
		return fw_errf(err, errlen, "prefix length %d out of range", a->prefix);
	if (!(s->families & (a->family == 4 ? FW_FAMILY_4 : FW_FAMILY_6)))
		return fw_errno(err, errlen, EAFNOSUPPORT, "IPv%d bans are disabled", a->family);
	int ji = find_jail(s, j, err, errlen);
	if (ji < 0)
		return ji;
	s->ops = xgrow(s->ops, &s->capops, s->nops, sizeof *s->ops);
	struct nop *o = &s->ops[s->nops++];
	memset(o, 0, sizeof *o);
	o->jail = (uint32_t)ji;
	o->ban = (uint8_t)ban;
	o->a = *a;
	/* canonical key: bytes past the address are not part of it */
	if (a->family == 4)
		memset(o->a.a + 4, 0, 12);
	o->timeout = fw_clamp_timeout(timeout);
	return 0;
}

static int null_ban(void *st, const struct fw_jail *j, const struct addr *a, unsigned long timeout,
		    char *err, size_t errlen)
{
	return queue(st, j, a, 1, timeout, err, errlen);
}

static int null_unban(void *st, const struct fw_jail *j, const struct addr *a, char *err,
		      size_t errlen)
{
	return queue(st, j, a, 0, 0, err, errlen);
}

static void apply(struct null_st *s, const struct nop *o)
{
	const char *jail = s->jails[o->jail].name;
	if (o->ban) {
		int isnew;
		*fw_map_put(&s->live, o->jail, &o->a, &isnew) = (uint64_t)o->timeout + 1;
		logf_(s, "ban", jail, &o->a, o->timeout, 1);
	} else {
		fw_map_del(&s->live, o->jail, &o->a);
		logf_(s, "unban", jail, &o->a, 0, 0);
	}
}

static int null_commit(void *st, char *err, size_t errlen)
{
	struct null_st *s = st;
	if (!s->nops)
		return 0;
	if (!s->present && !s->lost)
		s->present = 1; /* the first commit creates the objects, as nft's does */
	int r = 0;
	if (!s->present) {
		r = fw_errno(err, errlen, ENOENT, "null firewall objects missing; rebuild from state needed");
	} else {
		for (size_t i = 0; i < s->nops; i++)
			apply(s, &s->ops[i]);
		logf_(s, "commit", NULL, NULL, 0, 0);
	}
	s->nops = 0;
	return r;
}

static int null_check(void *st, char *err, size_t errlen)
{
	struct null_st *s = st;
	if (!s->present && s->njails)
		return fw_errno(err, errlen, ENOENT, "null firewall objects missing (simulated flush)");
	return 0;
}

static int null_rebuild(void *st, const struct fw_ban *bans, size_t n, char *err, size_t errlen)
{
	struct null_st *s = st;
	s->nops = 0;
	for (size_t i = 0; i < n; i++) {
		int r = queue(s, bans[i].jail, &bans[i].addr, 1, bans[i].timeout, err, errlen);
		if (r < 0) {
			s->nops = 0;
			return r;
		}
	}
	fw_map_clear(&s->live);
	s->present = 1;
	s->lost = 0;
	logf_(s, "rebuild", NULL, NULL, n, 1);
	for (size_t i = 0; i < s->nops; i++)
		apply(s, &s->ops[i]);
	s->nops = 0;
	return 0;
}

static int null_flush(void *st, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	struct null_st *s = st;
	s->nops = 0;
	fw_map_clear(&s->live);
	logf_(s, "flush", NULL, NULL, 0, 0);
	return 0;
}

static int null_stop(void *st, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	struct null_st *s = st;
	s->nops = 0;
	fw_map_clear(&s->live);
	s->present = 0;
	logf_(s, "stop", NULL, NULL, 0, 0);
	return 0;
}

const struct fw_backend fw_null_backend = {
	.name = "null",
	.init = null_init,
	.declare = null_declare,
	.ban = null_ban,
	.unban = null_unban,
	.commit = null_commit,
	.check = null_check,
	.rebuild = null_rebuild,
	.flush = null_flush,
	.stop = null_stop,
	.free = null_free,
};

/* ---- inspection ---- */

static struct null_st *null_of(const struct fw *fw)
{
	return fw && fw->be == &fw_null_backend ? fw->st : NULL;
}

const char *fw_null_log(const struct fw *fw)
{
	struct null_st *s = null_of(fw);
	return s ? strbuf_str(&s->log) : NULL;
}

size_t fw_null_count(const struct fw *fw)
{
	struct null_st *s = null_of(fw);
	return s ? s->live.n : 0;
}

int fw_null_lookup(const struct fw *fw, const char *jail, const struct addr *a,
		   unsigned long *timeout)
{
	struct null_st *s = null_of(fw);
	if (!s || !jail || !a)
		return 0;
	struct addr k = *a;
	if (k.family == 4)
		memset(k.a + 4, 0, 12);
	for (size_t i = 0; i < s->njails; i++) {
		if (strcmp(s->jails[i].name, jail) != 0)
			continue;
		uint64_t *v = fw_map_get(&s->live, (uint32_t)i, &k);
		if (!v)
			return 0;
		if (timeout)
			*timeout = (unsigned long)(*v - 1);
		return 1;
	}
	return 0;
}

int fw_null_simulate_flush(struct fw *fw)
{
	struct null_st *s = null_of(fw);
	if (!s)
		return -EINVAL;
	s->present = 0;
	s->lost = 1;
	fw_map_clear(&s->live);
	return 0;
}
