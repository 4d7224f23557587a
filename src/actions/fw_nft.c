/*
 * fw_nft - native nftables backend through libnftables (see fw.h).
 *
 * Kernel objects, all in one table (default `inet mxjail`):
 *   set <jail>_v4 / _v6   hosts, hash sets with per-element timeouts
 *   set <jail>_n4 / _n6   prefixes (CIDR bans), small interval sets
 *   chain input           hook input, priority filter - 10, one rule per set:
 *                         `ip saddr @<jail>_v4 tcp dport { 25, 465 } drop`
 * Set-only mode creates only the sets (in a table the admin's own ruleset
 * defines and references); no chain, and stop() never deletes the table.
 *
 * Every commit is one nft_run_cmd_from_buffer() call. Host bans are grouped
 * per set into three commands, `add {e timeout 1s}; delete {e}; add {e
 * timeout T}`: on kernels before 6.12 re-adding an element keeps its old
 * timeout, and the leading add also makes the delete safe when the element
 * has already expired (one failing command fails the whole batch). Unbans use
 * the first two commands only.
 *
 * Interval sets refuse overlapping elements, and nft checks overlaps against
 * the kernel's contents only, ignoring deletions earlier in the same batch.
 * So the backend keeps the (few) prefixes itself and writes only the
 * maximal ones; a prefix inside a wider live ban stays in memory and goes to
 * the kernel when the wider one is lifted. Such an add runs in a second
 * transaction right after the first (a gap well under a millisecond).
 *
 * A batch that still fails is retried one operation per transaction, after
 * checking that our objects exist at all: when they do not (`flush ruleset`
 * by a firewall reload), commit returns -ENOENT and the caller rebuilds.
 *
 * The libnftables context is let go while the firewall is quiet: it keeps the
 * cache of its last command, and every cached table holds four 128 KiB hash
 * tables, the context one more: 640 KiB that an idle daemon has no use for. A
 * periodic check that finds no other command since the previous check frees
 * it; the next command makes a new one (about 70 us, once).
 *
 * libnftables itself (with libnftnl, gmp, jansson and libxtables, 1.3 MiB
 * resident) is loaded at run time (core/dynlib) and unloaded while no jail
 * uses the backend: the jails of a configuration without nftables actions
 * only count. Such a backend removes a table left from an earlier run at
 * rebuild and then holds no kernel objects until a jail is declared. Whether
 * there is such a table is asked over plain netlink (libmnl, which mxjail
 * links anyway), so that the usual answer, none, costs no library load.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "actions/fw.h"
#include "actions/fw_impl.h"
#include "core/dynlib.h"
#include "core/loop.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#define MAX_PREFIXES 4096 /* per jail and family: interval sets must stay small */

struct prefix {
	struct addr net;
	uint64_t expires;  /* monotonic ms, 0 = forever */
	uint64_t kexpires; /* what the kernel element was given */
	uint8_t in_kernel, dead, want;
};

struct njail {
	struct fw_jspec spec;
	struct prefix *pfx[2];
	size_t npfx[2], cappfx[2];
	int pfx_dirty[2];
	int created; /* its sets were committed */
};

struct op {
	uint32_t jail;
	uint8_t ban;
	struct addr a;
	unsigned long timeout;
};

/* The functions of libnftables mxjail calls. */
struct nftlib {
	void *dl;
	__typeof__(nft_ctx_new) *ctx_new;
	__typeof__(nft_ctx_free) *ctx_free;
	__typeof__(nft_ctx_buffer_output) *buffer_output;
	__typeof__(nft_ctx_buffer_error) *buffer_error;
	__typeof__(nft_ctx_output_set_flags) *output_set_flags;
	__typeof__(nft_run_cmd_from_buffer) *run_cmd;
	__typeof__(nft_ctx_get_output_buffer) *output_buffer;
	__typeof__(nft_ctx_get_error_buffer) *error_buffer;
};

#define NFTLIB_FN(member, symbol) {#symbol, offsetof(struct nftlib, member)}
static const struct dynlib_fn nftlib_fns[] = {
	NFTLIB_FN(ctx_new, nft_ctx_new),
	NFTLIB_FN(ctx_free, nft_ctx_free),
	NFTLIB_FN(buffer_output, nft_ctx_buffer_output),
	NFTLIB_FN(buffer_error, nft_ctx_buffer_error),
	NFTLIB_FN(output_set_flags, nft_ctx_output_set_flags),
	NFTLIB_FN(run_cmd, nft_run_cmd_from_buffer),
	NFTLIB_FN(output_buffer, nft_ctx_get_output_buffer),
	NFTLIB_FN(error_buffer, nft_ctx_get_error_buffer),
};
#undef NFTLIB_FN

struct nft_st {
	struct nftlib lib;   /* loaded while needed: see ctx_put() */
	struct nft_ctx *ctx; /* NULL while quiet: see ctx_get() */
	int absent;          /* no jails: our table is known not to exist */
	int used;            /* commands since the last check */
	char *table;      /* "inet mxjail" */
	char *tname;
	uint8_t nfproto;  /* the table's family, as netlink names it */
	int set_only;
	unsigned families;
	struct njail *jails;
	size_t njails, capjails;
	int rules_dirty;
	struct op *ops;
	size_t nops, capops;
	struct fw_map pend; /* (jail, addr) -> index into ops + 1 */
};

static const char *fam_str[2] = {"4", "6"};
static const char *fam_type[2] = {"ipv4_addr", "ipv6_addr"};
static const char *fam_match[2] = {"ip", "ip6"};

static int fidx(const struct addr *a)
{
	return a->family == 6;
}

static int fam_on(const struct nft_st *s, int f)
{
	return (s->families & (f ? FW_FAMILY_6 : FW_FAMILY_4)) != 0;
}

static int is_host(const struct addr *a)
{
	return a->prefix == (a->family == 4 ? 32 : 128);
}

/* The library and a context, made when missing. */
static int ctx_get(struct nft_st *s, char *err, size_t errlen)
{
	if (!s->lib.dl) {
		char e[256];
		s->lib.dl = dynlib_open("libnftables.so.1", nftlib_fns,
					sizeof nftlib_fns / sizeof nftlib_fns[0], &s->lib, e, sizeof e);
		if (!s->lib.dl)
			return fw_errf(err, errlen, "%s", e);
	}
	if (!s->ctx) {
		s->ctx = s->lib.ctx_new(NFT_CTX_DEFAULT);
		if (!s->ctx)
			return fw_errno(err, errlen, ENOMEM, "libnftables: cannot create a context");
		s->lib.buffer_output(s->ctx);
		s->lib.buffer_error(s->ctx);
		s->lib.output_set_flags(s->ctx, NFT_CTX_OUTPUT_TERSE);
	}
	return 0;
}

/* Lets the context go, and the library too while no jail uses the backend. */
static void ctx_put(struct nft_st *s)
{
	if (s->ctx)
		s->lib.ctx_free(s->ctx);
	s->ctx = NULL;
	if (s->njails == 0) {
		dynlib_close(s->lib.dl);
		memset(&s->lib, 0, sizeof s->lib);
	}
}

static int run(struct nft_st *s, const char *text, char *err, size_t errlen)
{
	int r = ctx_get(s, err, errlen);
	if (r < 0)
		return r;
	s->used++;
	if (s->lib.run_cmd(s->ctx, text) == 0)
		return 0;
	/* the error buffer echoes the failing command, which may hold thousands
	 * of elements: keep the "Error:" line and the start of the next */
	const char *e = s->lib.error_buffer(s->ctx);
	if (!e || !*e)
		e = "nft: command failed";
	if (err && errlen) {
		size_t n = strlen(e);
		if (n >= errlen)
			n = errlen - 1;
		memcpy(err, e, n);
		err[n] = '\0';
		while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
			err[--n] = '\0';
		/* one line: newlines become spaces, runs of spaces (the caret line) one */
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			char c = err[i] == '\n' || err[i] == '\t' ? ' ' : err[i];
			if (c == ' ' && k && err[k - 1] == ' ')
				continue;
			err[k++] = c;
		}
		err[k] = '\0';
	}
	return -EIO;
}

/* ---- lifecycle ---- */

static int valid_ident(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static int nft_init(void **stp, const struct fw_options *o, char *err, size_t errlen)
{
	const char *name = o->table ? o->table : "mxjail";
	const char *fam = o->table_family ? o->table_family : "inet";
	*stp = NULL;
	if (!valid_ident(name))
		return fw_errf(err, errlen, "nftables table name '%s' is not a valid identifier", name);
	static const struct {
		const char *name;
		uint8_t nfproto;
	} fams[] = {{"inet", NFPROTO_INET}, {"ip", NFPROTO_IPV4}, {"ip6", NFPROTO_IPV6},
		    {"bridge", NFPROTO_BRIDGE}, {"netdev", NFPROTO_NETDEV}};
	int nfproto = -1;
	for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++)
		if (strcmp(fam, fams[i].name) == 0)
			nfproto = fams[i].nfproto;
	if (nfproto < 0 || (!o->set_only && strcmp(fam, "inet") != 0))
		return fw_errf(err, errlen, "nftables table family '%s' not supported%s", fam,
			       o->set_only ? "" : " (native mode uses inet)");
	struct nft_st *s = xcalloc(1, sizeof *s);
	s->table = xasprintf("%s %s", fam, name);
	s->tname = xstrdup(name);
	s->nfproto = (uint8_t)nfproto;
	s->set_only = o->set_only != 0;
	s->families = o->families ? o->families & (FW_FAMILY_4 | FW_FAMILY_6) : FW_FAMILY_4 | FW_FAMILY_6;
	if (!s->families)
		s->families = FW_FAMILY_4 | FW_FAMILY_6;
	*stp = s;
	return 0;
}

static void clear_pending(struct nft_st *s)
{
	s->nops = 0;
	fw_map_clear(&s->pend);
}

static void nft_free(void *st)
{
	struct nft_st *s = st;
	if (!s)
		return;
	for (size_t i = 0; i < s->njails; i++) {
		fw_jspec_clear(&s->jails[i].spec);
		free(s->jails[i].pfx[0]);
		free(s->jails[i].pfx[1]);
	}
	free(s->jails);
	free(s->ops);
	fw_map_free(&s->pend);
	free(s->table);
	free(s->tname);
	s->njails = 0;
	ctx_put(s);
	free(s);
}

/* ---- jails ---- */

static int find_jail(struct nft_st *s, const struct fw_jail *j, char *err, size_t errlen)
{
	if (!j || !j->name)
		return fw_errf(err, errlen, "jail name missing");
	for (size_t i = 0; i < s->njails; i++) {
		struct njail *nj = &s->jails[i];
		if (strcmp(nj->spec.name, j->name) != 0)
			continue;
		if (!fw_jspec_same(&nj->spec, j)) {
			struct fw_jspec sp;
			int r = fw_jspec_compile(j, &sp, err, errlen);
			if (r < 0)
				return r;
			fw_jspec_clear(&nj->spec);
			nj->spec = sp;
			s->rules_dirty = 1;
		}
		return (int)i;
	}
	struct fw_jspec sp;
	int r = fw_jspec_compile(j, &sp, err, errlen);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->njails; i++)
		if (strcmp(s->jails[i].spec.base, sp.base) == 0) {
			r = fw_errno(err, errlen, EEXIST, "jails '%s' and '%s' map to the same set names (%s_*)",
				     s->jails[i].spec.name, sp.name, sp.base);
			fw_jspec_clear(&sp);
			return r;
		}
	s->jails = xgrow(s->jails, &s->capjails, s->njails, sizeof *s->jails);
	struct njail *nj = &s->jails[s->njails];
	memset(nj, 0, sizeof *nj);
	nj->spec = sp;
	s->rules_dirty = 1;
	return (int)s->njails++;
}

static int nft_declare(void *st, const struct fw_jail *j, char *err, size_t errlen)
{
	int r = find_jail(st, j, err, errlen);
	return r < 0 ? r : 0;
}

static int check_addr(struct nft_st *s, const struct addr *a, struct addr *out, char *err,
		      size_t errlen)
{
	if (!a || (a->family != 4 && a->family != 6))
		return fw_errf(err, errlen, "not an IPv4 or IPv6 address");
	int max = a->family == 4 ? 32 : 128;
	if (a->prefix < 0 || a->prefix > max)
		return fw_errf(err, errlen, "prefix length %d out of range", a->prefix);
	if (!fam_on(s, fidx(a)))
		return fw_errno(err, errlen, EAFNOSUPPORT, "IPv%d bans are disabled", a->family);
	*out = *a;
	/* clear host bits, and everything past the address */
	for (int i = 0; i < 16; i++) {
		int bits = a->prefix - i * 8;
		if (i >= max / 8)
			out->a[i] = 0;
		else if (bits <= 0)
			out->a[i] = 0;
		else if (bits < 8)
			out->a[i] &= (uint8_t)(0xff << (8 - bits));
	}
	return 0;
}

/* ---- prefixes ---- */

static struct prefix *pfx_find(struct njail *nj, const struct addr *a)
{
	int f = fidx(a);
	for (size_t i = 0; i < nj->npfx[f]; i++)
		if (addr_equal(&nj->pfx[f][i].net, a) && nj->pfx[f][i].net.prefix == a->prefix)
			return &nj->pfx[f][i];
	return NULL;
}

static int pfx_cmp(const void *x, const void *y)
{
	const struct prefix *a = x, *b = y;
	int c = memcmp(a->net.a, b->net.a, 16);
	if (c)
		return c;
	return a->net.prefix - b->net.prefix;
}

/* Marks the prefixes the kernel should hold: live ones not inside a wider
 * live one. Sorted by address, then shorter first, a prefix is covered iff
 * the last maximal prefix before it contains it (prefixes nest or are disjoint). */
static void pfx_compute(struct njail *nj, int f, uint64_t now)
{
	struct prefix *p = nj->pfx[f];
	size_t n = nj->npfx[f];
	for (size_t i = 0; i < n; i++)
		if (p[i].expires && p[i].expires <= now)
			p[i].dead = 1;
	if (n > 1)
		qsort(p, n, sizeof *p, pfx_cmp);
	const struct prefix *cur = NULL;
	for (size_t i = 0; i < n; i++) {
		p[i].want = 0;
		if (p[i].dead)
			continue;
		if (cur && addr_in(&cur->net, &p[i].net))
			continue;
		p[i].want = 1;
		cur = &p[i];
	}
}

static void pfx_sweep(struct njail *nj, int f)
{
	size_t k = 0;
	for (size_t i = 0; i < nj->npfx[f]; i++)
		if (!nj->pfx[f][i].dead)
			nj->pfx[f][k++] = nj->pfx[f][i];
	nj->npfx[f] = k;
}

static unsigned long remaining(uint64_t expires, uint64_t now)
{
	if (!expires)
		return 0;
	uint64_t ms = expires > now ? expires - now : 0;
	unsigned long t = (unsigned long)((ms + 999) / 1000);
	return fw_clamp_timeout(t ? t : 1);
}

static void add_timeout(struct strbuf *b, unsigned long t)
{
	if (t)
		strbuf_addf(b, " timeout %lus", t);
}

/* ---- queueing ---- */

static int queue(struct nft_st *s, const struct fw_jail *j, const struct addr *a0, int ban,
		 unsigned long timeout, char *err, size_t errlen)
{
	struct addr a;
	int r = check_addr(s, a0, &a, err, errlen);
	if (r < 0)
		return r;
	int ji = find_jail(s, j, err, errlen);
	if (ji < 0)
		return ji;
	timeout = fw_clamp_timeout(timeout);
	struct njail *nj = &s->jails[ji];
	if (!is_host(&a)) {
		int f = fidx(&a);
		struct prefix *p = pfx_find(nj, &a);
		if (!ban) {
			if (p) {
				p->dead = 1;
				nj->pfx_dirty[f] = 1;
			}
			return 0;
		}
		if (!p) {
			if (nj->npfx[f] >= MAX_PREFIXES)
				return fw_errno(err, errlen, ENOSPC, "jail %s: more than %d prefix bans",
						nj->spec.name, MAX_PREFIXES);
			nj->pfx[f] = xgrow(nj->pfx[f], &nj->cappfx[f], nj->npfx[f], sizeof *p);
			p = &nj->pfx[f][nj->npfx[f]++];
			memset(p, 0, sizeof *p);
			p->net = a;
		}
		p->dead = 0;
		p->expires = timeout ? loop_now_ms() + (uint64_t)timeout * 1000 : 0;
		nj->pfx_dirty[f] = 1;
		return 0;
	}
	int isnew;
	uint64_t *slot = fw_map_put(&s->pend, (uint32_t)ji, &a, &isnew);
	if (isnew) {
		s->ops = xgrow(s->ops, &s->capops, s->nops, sizeof *s->ops);
		*slot = ++s->nops;
	}
	struct op *o = &s->ops[*slot - 1];
	o->jail = (uint32_t)ji;
	o->a = a;
	o->ban = (uint8_t)ban;
	o->timeout = timeout;
	return 0;
}

static int nft_ban(void *st, const struct fw_jail *j, const struct addr *a, unsigned long timeout,
		   char *err, size_t errlen)
{
	return queue(st, j, a, 1, timeout, err, errlen);
}

static int nft_unban(void *st, const struct fw_jail *j, const struct addr *a, char *err,
		     size_t errlen)
{
	return queue(st, j, a, 0, 0, err, errlen);
}

/* ---- text generation ---- */

static void set_name(struct strbuf *b, const struct njail *nj, int net, int f)
{
	strbuf_addf(b, "%s_%s%s", nj->spec.base, net ? "n" : "v", fam_str[f]);
}

static void emit_sets(struct nft_st *s, struct strbuf *b, const struct njail *nj, int flush)
{
	for (int f = 0; f < 2; f++) {
		if (!fam_on(s, f))
			continue;
		for (int net = 0; net < 2; net++) {
			strbuf_addf(b, "add set %s ", s->table);
			set_name(b, nj, net, f);
			strbuf_addf(b, " { type %s; flags %s; }\n", fam_type[f],
				    net ? "interval,timeout" : "timeout");
			if (flush) {
				strbuf_addf(b, "flush set %s ", s->table);
				set_name(b, nj, net, f);
				strbuf_addc(b, '\n');
			}
		}
	}
}

static void emit_rules(struct nft_st *s, struct strbuf *b)
{
	strbuf_addf(b, "add chain %s input { type filter hook input priority filter - 10; policy accept; }\n",
		    s->table);
	strbuf_addf(b, "flush chain %s input\n", s->table);
	for (size_t i = 0; i < s->njails; i++) {
		const struct njail *nj = &s->jails[i];
		static const char *verdict[] = {"drop", "reject", "reject with tcp reset"};
		for (int f = 0; f < 2; f++) {
			if (!fam_on(s, f))
				continue;
			for (int net = 0; net < 2; net++) {
				strbuf_addf(b, "add rule %s input %s saddr @", s->table, fam_match[f]);
				set_name(b, nj, net, f);
				strbuf_addf(b, "%s%s %s\n", *nj->spec.match ? " " : "", nj->spec.match,
					    verdict[nj->spec.reject]);
			}
		}
	}
}

/* Table, sets of jails not yet created, chain and rules when they changed. */
static void emit_structure(struct nft_st *s, struct strbuf *b)
{
	int any = s->rules_dirty;
	for (size_t i = 0; i < s->njails; i++)
		if (!s->jails[i].created)
			any = 1;
	if (!any)
		return;
	strbuf_addf(b, "add table %s\n", s->table);
	for (size_t i = 0; i < s->njails; i++)
		if (!s->jails[i].created)
			emit_sets(s, b, &s->jails[i], 0);
	if (!s->set_only && s->rules_dirty)
		emit_rules(s, b);
}

static void elem_list(struct strbuf *b, const struct op *const *v, size_t n, int with_timeout,
		      int bans_only)
{
	char buf[ADDR_STRLEN];
	int k = 0;
	strbuf_adds(b, " { ");
	for (size_t i = 0; i < n; i++) {
		if (bans_only && !v[i]->ban)
			continue;
		addr_format(&v[i]->a, buf, sizeof buf);
		if (k++)
			strbuf_adds(b, ", ");
		strbuf_adds(b, buf);
		if (with_timeout == 1)
			strbuf_adds(b, " timeout 1s");
		else if (with_timeout == 2)
			add_timeout(b, v[i]->timeout);
	}
	strbuf_adds(b, " }\n");
}

/* The idiom for a group of host operations on one set (see the top comment). */
static void emit_host_group(struct nft_st *s, struct strbuf *b, const struct op *const *v, size_t n)
{
	const struct njail *nj = &s->jails[v[0]->jail];
	int f = fidx(&v[0]->a), bans = 0;
	for (size_t i = 0; i < n; i++)
		bans += v[i]->ban;
	strbuf_addf(b, "add element %s ", s->table);
	set_name(b, nj, 0, f);
	elem_list(b, v, n, 1, 0);
	strbuf_addf(b, "delete element %s ", s->table);
	set_name(b, nj, 0, f);
	elem_list(b, v, n, 0, 0);
	if (bans) {
		strbuf_addf(b, "add element %s ", s->table);
		set_name(b, nj, 0, f);
		elem_list(b, v, n, 2, 1);
	}
}

static int op_cmp(const void *x, const void *y)
{
	const struct op *a = *(const struct op *const *)x, *b = *(const struct op *const *)y;
	if (a->jail != b->jail)
		return a->jail < b->jail ? -1 : 1;
	return a->a.family - b->a.family;
}

static const struct op **sorted_ops(struct nft_st *s)
{
	const struct op **v = xmalloc((s->nops ? s->nops : 1) * sizeof *v);
	for (size_t i = 0; i < s->nops; i++)
		v[i] = &s->ops[i];
	qsort(v, s->nops, sizeof *v, op_cmp);
	return v;
}

static void emit_hosts(struct nft_st *s, struct strbuf *b, const struct op **v, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = i + 1;
		while (k < n && op_cmp(&v[i], &v[k]) == 0)
			k++;
		emit_host_group(s, b, v + i, k - i);
		i = k;
	}
}

/* Prefix changes of one set, one line per element (commands joined by ';',
 * so that the one-by-one retry can split the text at newlines): deletions
 * and re-bans into p1, additions into p1 too unless something was deleted
 * from the set in this batch (then into p2, see the top comment). */
static void pfx_cmd(struct strbuf *b, struct nft_st *s, const struct njail *nj, int f,
		    const char *verb, const char *elem, unsigned long timeout, int one_second)
{
	strbuf_addf(b, "%s element %s ", verb, s->table);
	set_name(b, nj, 1, f);
	strbuf_addf(b, " { %s", elem);
	if (one_second)
		strbuf_adds(b, " timeout 1s");
	else
		add_timeout(b, timeout);
	strbuf_adds(b, " }");
}

static void emit_prefixes(struct nft_st *s, struct njail *nj, int f, uint64_t now, struct strbuf *p1,
			  struct strbuf *p2)
{
	char buf[ADDR_STRLEN];
	pfx_compute(nj, f, now);
	int deleted = 0;
	for (size_t i = 0; i < nj->npfx[f]; i++) {
		struct prefix *p = &nj->pfx[f][i];
		if (!p->in_kernel || (p->want && p->kexpires == p->expires))
			continue;
		addr_format(&p->net, buf, sizeof buf);
		pfx_cmd(p1, s, nj, f, "add", buf, 0, 1);
		strbuf_adds(p1, "; ");
		pfx_cmd(p1, s, nj, f, "delete", buf, 0, 0);
		if (p->want) {
			strbuf_adds(p1, "; ");
			pfx_cmd(p1, s, nj, f, "add", buf, remaining(p->expires, now), 0);
			p->kexpires = p->expires;
		} else {
			p->in_kernel = 0;
			deleted = 1;
		}
		strbuf_addc(p1, '\n');
	}
	for (size_t i = 0; i < nj->npfx[f]; i++) {
		struct prefix *p = &nj->pfx[f][i];
		if (!p->want || p->in_kernel)
			continue;
		struct strbuf *b = deleted ? p2 : p1;
		addr_format(&p->net, buf, sizeof buf);
		pfx_cmd(b, s, nj, f, "add", buf, remaining(p->expires, now), 0);
		strbuf_addc(b, '\n');
		p->in_kernel = 1;
		p->kexpires = p->expires;
	}
	pfx_sweep(nj, f);
	nj->pfx_dirty[f] = 0;
}

/* ---- check ---- */

/* Lists only set and chain declarations: `list table` or `list chain` would
 * make libnftables fetch every element of every set (about a second per
 * 100,000 bans), `list sets` / `list chains` do not. Individual rules are
 * therefore not verified; a `flush ruleset` removes the table and a
 * `flush chain` the admin would have to type on purpose. */
static int do_check(struct nft_st *s, char *err, size_t errlen)
{
	struct strbuf cmd = STRBUF_INIT, missing = STRBUF_INIT, pat = STRBUF_INIT;
	int nmiss = 0, ncreated = 0;
	for (size_t i = 0; i < s->njails; i++)
		ncreated += s->jails[i].created;
	if (ncreated == 0 && s->set_only)
		return 0;
	char fam[16];
	snprintf(fam, sizeof fam, "%.*s", (int)strcspn(s->table, " "), s->table);
	strbuf_addf(&cmd, "list sets table %s", s->table);
	if (!s->set_only)
		strbuf_addf(&cmd, "; list chains %s", fam);
	char e2[256];
	int r = run(s, strbuf_str(&cmd), e2, sizeof e2);
	strbuf_free(&cmd);
	if (r < 0)
		return fw_errno(err, errlen, ENOENT, "table %s is missing (ruleset flushed?)", s->table);
	const char *out = s->lib.output_buffer(s->ctx);
	if (!out)
		out = "";
	if (!s->set_only) {
		/* our table's block in the chain listing, up to its closing brace */
		strbuf_addf(&pat, "table %s {\n", s->table);
		int found = 0;
		for (const char *t = out; !found && (t = strstr(t, pat.s)) != NULL; t += pat.len) {
			const char *end = strstr(t, "\n}");
			const char *c = strstr(t, "\tchain input {");
			found = c && (!end || c < end);
		}
		if (!found) {
			strbuf_adds(&missing, " chain input");
			nmiss++;
		}
	}
	for (size_t i = 0; i < s->njails; i++) {
		const struct njail *nj = &s->jails[i];
		if (!nj->created)
			continue;
		for (int f = 0; f < 2; f++) {
			if (!fam_on(s, f))
				continue;
			for (int net = 0; net < 2; net++) {
				strbuf_reset(&pat);
				strbuf_adds(&pat, "\tset ");
				set_name(&pat, nj, net, f);
				strbuf_adds(&pat, " {\n");
				if (strstr(out, pat.s))
					continue;
				if (nmiss++ < 8) {
					strbuf_adds(&missing, " set ");
					set_name(&missing, nj, net, f);
				}
			}
		}
	}
	r = 0;
	if (nmiss)
		r = fw_errno(err, errlen, ENOENT, "table %s: %d object(s) missing:%s", s->table, nmiss,
			     strbuf_str(&missing));
	strbuf_free(&missing);
	strbuf_free(&pat);
	return r;
}

static int nft_check(void *st, char *err, size_t errlen)
{
	struct nft_st *s = st;
	int quiet = s->used == 0; /* nothing but checks since the last one */
	int r = s->absent ? 0 : do_check(s, err, errlen);
	if (quiet || s->absent)
		ctx_put(s);
	s->used = 0;
	return r;
}

/* After a commit found our objects gone: forget what we believed was in the kernel. */
static void mark_lost(struct nft_st *s)
{
	for (size_t i = 0; i < s->njails; i++) {
		s->jails[i].created = 0;
		for (int f = 0; f < 2; f++)
			for (size_t k = 0; k < s->jails[i].npfx[f]; k++)
				s->jails[i].pfx[f][k].in_kernel = 0;
	}
	s->rules_dirty = 1;
}

/* ---- commit ---- */

/* The batch failed although our objects exist: apply what can be applied,
 * one operation per transaction, and report the first failure. */
static int retry_one_by_one(struct nft_st *s, const char *structure, const struct op **v,
			    const char *prefixes, char *err, size_t errlen)
{
	char first[512] = "";
	size_t fails = 0, total = 0;
	char e2[512];
	struct strbuf b = STRBUF_INIT;
	if (*structure) {
		total++;
		if (run(s, structure, e2, sizeof e2) < 0) {
			fails++;
			snprintf(first, sizeof first, "%s", e2);
		}
	}
	for (size_t i = 0; i < s->nops; i++) {
		strbuf_reset(&b);
		emit_host_group(s, &b, v + i, 1);
		total++;
		if (run(s, b.s, e2, sizeof e2) < 0 && fails++ == 0)
			snprintf(first, sizeof first, "%s", e2);
	}
	/* prefix changes: one line per element */
	for (const char *p = prefixes; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p + 1) : strlen(p);
		strbuf_reset(&b);
		strbuf_add(&b, p, n);
		p += n;
		total++;
		if (run(s, b.s, e2, sizeof e2) < 0 && fails++ == 0)
			snprintf(first, sizeof first, "%s", e2);
	}
	strbuf_free(&b);
	if (!fails)
		return 0;
	return fw_errno(err, errlen, EIO, "%zu of %zu firewall operations failed; first: %s", fails,
			total, first);
}

static int nft_commit(void *st, char *err, size_t errlen)
{
	struct nft_st *s = st;
	int pdirty = 0;
	for (size_t i = 0; i < s->njails; i++)
		pdirty |= s->jails[i].pfx_dirty[0] | s->jails[i].pfx_dirty[1] | !s->jails[i].created;
	if (!s->nops && !pdirty && !s->rules_dirty)
		return 0;

	struct strbuf structure = STRBUF_INIT, b = STRBUF_INIT, p1 = STRBUF_INIT, p2 = STRBUF_INIT;
	emit_structure(s, &structure);
	const struct op **v = sorted_ops(s);
	emit_hosts(s, &b, v, s->nops);
	uint64_t now = loop_now_ms();
	for (size_t i = 0; i < s->njails; i++)
		for (int f = 0; f < 2; f++)
			if (s->jails[i].pfx_dirty[f])
				emit_prefixes(s, &s->jails[i], f, now, &p1, &p2);

	struct strbuf all = STRBUF_INIT;
	strbuf_add(&all, strbuf_str(&structure), structure.len);
	strbuf_add(&all, strbuf_str(&b), b.len);
	strbuf_add(&all, strbuf_str(&p1), p1.len);
	int r = all.len ? run(s, all.s, err, errlen) : 0;
	if (r < 0) {
		char e2[256];
		int c = do_check(s, e2, sizeof e2);
		if (c == -ENOENT) {
			mark_lost(s);
			r = fw_errno(err, errlen, ENOENT, "%s; rebuild from state needed", e2);
		} else {
			r = retry_one_by_one(s, strbuf_str(&structure), v, strbuf_str(&p1), err, errlen);
		}
	}
	if (r != -ENOENT) {
		for (size_t i = 0; i < s->njails; i++)
			s->jails[i].created = 1;
		s->rules_dirty = 0;
		s->absent = 0;
		if (p2.len) {
			int r2 = run(s, p2.s, err, errlen);
			if (r == 0)
				r = r2;
		}
	}
	free(v);
	clear_pending(s);
	strbuf_free(&all);
	strbuf_free(&structure);
	strbuf_free(&b);
	strbuf_free(&p1);
	strbuf_free(&p2);
	return r;
}

/* ---- rebuild, flush, stop ---- */

/* Whether our table exists: 1, 0, or -1 when the kernel could not be asked
 * (one NFT_MSG_GETTABLE request). */
static int table_exists(const struct nft_st *s)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl)
		return -1;
	struct timeval tv = {2, 0};
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = 1;
	struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof *g);
	g->nfgen_family = s->nfproto;
	g->version = NFNETLINK_V0;
	g->res_id = 0;
	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, s->tname);
	int r = -1, found = 0;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 || mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		goto out;
	for (;;) { /* the table (if any), then the acknowledgement or the error */
		ssize_t k = mnl_socket_recvfrom(nl, buf, sizeof buf);
		if (k <= 0)
			goto out;
		int left = (int)k;
		for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(h, left);
		     h = mnl_nlmsg_next(h, &left)) {
			if (h->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE))
				found = 1;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
				r = e->error == 0 ? found : e->error == -ENOENT ? 0 : -1;
				goto out;
			}
		}
	}
out:
	mnl_socket_close(nl);
	return r;
}

static int nft_rebuild(void *st, const struct fw_ban *bans, size_t n, char *err, size_t errlen)
{
	struct nft_st *s = st;
	clear_pending(s);
	for (size_t i = 0; i < s->njails; i++)
		for (int f = 0; f < 2; f++)
			s->jails[i].npfx[f] = 0;
	/* queue everything as bans: hosts land in ops, prefixes in the lists */
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++)
		r = queue(s, bans[i].jail, &bans[i].addr, 1, bans[i].timeout, err, errlen);
	if (r < 0) {
		clear_pending(s);
		return r;
	}
	struct strbuf b = STRBUF_INIT;
	if (s->njails == 0) {
		/* nothing to enforce: only a table left from an earlier run goes (the
		 * admin's own table in set-only mode stays) */
		r = s->set_only ? 0 : table_exists(s);
		if (r != 0) {
			strbuf_addf(&b, "add table %s\ndelete table %s\n", s->table, s->table);
			r = run(s, b.s, err, errlen);
		}
		strbuf_free(&b);
		s->absent = r == 0;
		ctx_put(s);
		return r;
	}
	if (s->set_only) {
		strbuf_addf(&b, "add table %s\n", s->table);
	} else {
		/* delete and recreate: also removes sets of jails that no longer exist */
		strbuf_addf(&b, "add table %s\ndelete table %s\nadd table %s\n", s->table, s->table,
			    s->table);
	}
	for (size_t i = 0; i < s->njails; i++)
		emit_sets(s, &b, &s->jails[i], s->set_only);
	if (!s->set_only)
		emit_rules(s, &b);
	/* fresh sets: plain adds, one command per set */
	const struct op **v = sorted_ops(s);
	for (size_t i = 0; i < s->nops;) {
		size_t k = i + 1;
		while (k < s->nops && op_cmp(&v[i], &v[k]) == 0)
			k++;
		strbuf_addf(&b, "add element %s ", s->table);
		set_name(&b, &s->jails[v[i]->jail], 0, fidx(&v[i]->a));
		elem_list(&b, v + i, k - i, 2, 1);
		i = k;
	}
	free(v);
	uint64_t now = loop_now_ms();
	char buf[ADDR_STRLEN];
	for (size_t i = 0; i < s->njails; i++) {
		struct njail *nj = &s->jails[i];
		for (int f = 0; f < 2; f++) {
			pfx_compute(nj, f, now);
			pfx_sweep(nj, f);
			int k = 0;
			for (size_t j = 0; j < nj->npfx[f]; j++) {
				struct prefix *p = &nj->pfx[f][j];
				p->in_kernel = p->want;
				p->kexpires = p->expires;
				if (!p->want)
					continue;
				if (k++ == 0) {
					strbuf_addf(&b, "add element %s ", s->table);
					set_name(&b, nj, 1, f);
					strbuf_adds(&b, " { ");
				} else {
					strbuf_adds(&b, ", ");
				}
				addr_format(&p->net, buf, sizeof buf);
				strbuf_adds(&b, buf);
				add_timeout(&b, remaining(p->expires, now));
			}
			if (k)
				strbuf_adds(&b, " }\n");
			nj->pfx_dirty[f] = 0;
		}
	}
	r = run(s, b.s, err, errlen);
	strbuf_free(&b);
	clear_pending(s);
	if (r < 0) {
		mark_lost(s);
		return r;
	}
	for (size_t i = 0; i < s->njails; i++)
		s->jails[i].created = 1;
	s->rules_dirty = 0;
	s->absent = 0;
	return 0;
}

static int nft_flush(void *st, char *err, size_t errlen)
{
	struct nft_st *s = st;
	clear_pending(s);
	struct strbuf b = STRBUF_INIT;
	for (size_t i = 0; i < s->njails; i++) {
		struct njail *nj = &s->jails[i];
		nj->npfx[0] = nj->npfx[1] = 0;
		nj->pfx_dirty[0] = nj->pfx_dirty[1] = 0;
		if (!nj->created)
			continue;
		for (int f = 0; f < 2; f++)
			for (int net = 0; net < 2 && fam_on(s, f); net++) {
				strbuf_addf(&b, "flush set %s ", s->table);
				set_name(&b, nj, net, f);
				strbuf_addc(&b, '\n');
			}
	}
	int r = b.len ? run(s, b.s, err, errlen) : 0;
	strbuf_free(&b);
	return r;
}

static int nft_stop(void *st, char *err, size_t errlen)
{
	struct nft_st *s = st;
	if (s->set_only)
		return nft_flush(st, err, errlen);
	clear_pending(s);
	if (s->absent)
		return 0;
	struct strbuf b = STRBUF_INIT;
	strbuf_addf(&b, "add table %s\ndelete table %s\n", s->table, s->table);
	int r = run(s, b.s, err, errlen);
	strbuf_free(&b);
	for (size_t i = 0; i < s->njails; i++)
		s->jails[i].npfx[0] = s->jails[i].npfx[1] = 0;
	mark_lost(s);
	return r;
}

const struct fw_backend fw_nft_backend = {
	.name = "nftables",
	.init = nft_init,
	.declare = nft_declare,
	.ban = nft_ban,
	.unban = nft_unban,
	.commit = nft_commit,
	.check = nft_check,
	.rebuild = nft_rebuild,
	.flush = nft_flush,
	.stop = nft_stop,
	.free = nft_free,
};
