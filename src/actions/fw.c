/*
 * fw - backend-independent part of the firewall interface (see fw.h).
 *
 * Holds the fw_*() wrappers, the fail2ban banaction registry, and the jail
 * compiler both backends share: a fail2ban `port` list ("smtp,465,submission",
 * "1000:2000") and `protocol` become one nftables match expression. Port
 * names are resolved here, not by nft, so that an unknown name is reported
 * once against the jail instead of failing every later batch; a small
 * built-in table covers minimal systems whose /etc/services lacks the mail
 * services (Debian 12's has no imap3, which fail2ban's sasl jail uses).
 */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "actions/fw.h"
#include "actions/fw_impl.h"
#include "core/kvlist.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

/* ---- errors ---- */

static void vfmt(char *err, size_t errlen, const char *fmt, va_list ap)
{
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
}

int fw_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfmt(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int fw_errno(char *err, size_t errlen, int e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfmt(err, errlen, fmt, ap);
	va_end(ap);
	return -e;
}

unsigned long fw_clamp_timeout(unsigned long t)
{
	return t > FW_MAX_TIMEOUT ? FW_MAX_TIMEOUT : t;
}

/* ---- wrappers ---- */

int fw_open(struct fw *fw, const struct fw_backend *be, const struct fw_options *o, char *err,
	    size_t errlen)
{
	struct fw_options def = {0};
	fw->be = be;
	fw->st = NULL;
	return be->init(&fw->st, o ? o : &def, err, errlen);
}

void fw_close(struct fw *fw)
{
	if (fw->be && fw->st)
		fw->be->free(fw->st);
	fw->st = NULL;
}

int fw_declare(struct fw *fw, const struct fw_jail *j, char *err, size_t errlen)
{
	return fw->be->declare(fw->st, j, err, errlen);
}

int fw_ban(struct fw *fw, const struct fw_jail *j, const struct addr *a, unsigned long timeout,
	   char *err, size_t errlen)
{
	return fw->be->ban(fw->st, j, a, timeout, err, errlen);
}

int fw_unban(struct fw *fw, const struct fw_jail *j, const struct addr *a, char *err, size_t errlen)
{
	return fw->be->unban(fw->st, j, a, err, errlen);
}

int fw_commit(struct fw *fw, char *err, size_t errlen)
{
	return fw->be->commit(fw->st, err, errlen);
}

int fw_check(struct fw *fw, char *err, size_t errlen)
{
	return fw->be->check(fw->st, err, errlen);
}

int fw_rebuild(struct fw *fw, const struct fw_ban *bans, size_t n, char *err, size_t errlen)
{
	return fw->be->rebuild(fw->st, bans, n, err, errlen);
}

int fw_flush(struct fw *fw, char *err, size_t errlen)
{
	return fw->be->flush(fw->st, err, errlen);
}

int fw_stop(struct fw *fw, char *err, size_t errlen)
{
	return fw->be->stop(fw->st, err, errlen);
}

/* ---- set names ---- */

size_t fw_set_base(const char *jail, char *out, size_t outlen)
{
	size_t n = 0, len = strlen(jail);
	if (len == 0 || len > FW_JAIL_NAME_MAX || outlen < len + 3)
		return 0;
	/* nft identifiers start with a letter; digits or '-' first would not parse */
	if (!isalpha((unsigned char)jail[0])) {
		out[n++] = 'j';
		out[n++] = '_';
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)jail[i];
		out[n++] = (isalnum(c) || c == '_' || c == '-') && c < 128 ? (char)c : '_';
	}
	out[n] = '\0';
	return n;
}

/* ---- ports and protocols ---- */

enum {
	P_TCP = 1, P_UDP = 2, P_SCTP = 4, P_DCCP = 8, P_UDPLITE = 16,
	P_ALL = 0x100,
};

static const struct {
	const char *name;
	unsigned bit;
} protos[] = {
	{"tcp", P_TCP}, {"udp", P_UDP}, {"sctp", P_SCTP}, {"dccp", P_DCCP}, {"udplite", P_UDPLITE},
};

/* Service names fail2ban's stock jails use, for systems without them in /etc/services. */
static const struct {
	const char *name;
	int port;
} builtin_services[] = {
	{"ftp-data", 20}, {"ftp", 21}, {"ssh", 22}, {"telnet", 23}, {"smtp", 25},
	{"domain", 53}, {"http", 80}, {"www", 80}, {"pop3", 110}, {"pop-3", 110},
	{"imap", 143}, {"imap2", 143}, {"imap3", 220}, {"ldap", 389}, {"https", 443},
	{"submissions", 465}, {"smtps", 465}, {"ssmtp", 465}, {"urd", 465},
	{"submission", 587}, {"ldaps", 636}, {"imaps", 993}, {"pop3s", 995},
	{"mysql", 3306}, {"sieve", 4190}, {"http-alt", 8080}, {"webcache", 8080},
};

static int parse_protocol(const char *s, unsigned *mask, char *err, size_t errlen)
{
	*mask = 0;
	if (!s)
		s = "tcp";
	const char *p = s;
	while (*p) {
		while (*p == ',' || *p == '{' || *p == '}' || isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		size_t n = 0;
		while (p[n] && p[n] != ',' && p[n] != '{' && p[n] != '}' && !isspace((unsigned char)p[n]))
			n++;
		unsigned bit = 0;
		if (n == 3 && strncasecmp(p, "all", 3) == 0)
			bit = P_ALL;
		for (size_t i = 0; !bit && i < sizeof protos / sizeof protos[0]; i++)
			if (strlen(protos[i].name) == n && strncasecmp(p, protos[i].name, n) == 0)
				bit = protos[i].bit;
		if (!bit)
			return fw_errf(err, errlen,
				       "protocol '%.*s' not supported (expected tcp, udp, sctp, dccp, udplite or all)",
				       (int)(n > 40 ? 40 : n), p);
		*mask |= bit;
		p += n;
	}
	if (*mask == 0)
		*mask = P_TCP;
	if (*mask & P_ALL)
		*mask = P_ALL;
	return 0;
}

static int resolve_port(const char *s, size_t n, unsigned mask, char *err, size_t errlen)
{
	char name[64];
	if (n == 0)
		return fw_errf(err, errlen, "empty port in port list");
	int digits = 1;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			digits = 0;
	if (digits) {
		if (n > 5)
			return fw_errf(err, errlen, "port '%.*s' out of range 0-65535", (int)(n > 20 ? 20 : n), s);
		int v = 0;
		for (size_t i = 0; i < n; i++)
			v = v * 10 + (s[i] - '0');
		if (v > 65535)
			return fw_errf(err, errlen, "port %d out of range 0-65535", v);
		return v;
	}
	if (n >= sizeof name)
		return fw_errf(err, errlen, "port name '%.*s...' too long", 20, s);
	memcpy(name, s, n);
	name[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.')
			return fw_errf(err, errlen, "bad character in port name '%s'", name);
	const char *lookup[2] = {(mask & P_UDP) && !(mask & P_TCP) ? "udp" : "tcp", "udp"};
	for (int k = 0; k < 2; k++) {
		struct servent *se = getservbyname(name, lookup[k]);
		if (se)
			return ntohs((uint16_t)se->s_port);
	}
	for (size_t i = 0; i < sizeof builtin_services / sizeof builtin_services[0]; i++)
		if (strcasecmp(builtin_services[i].name, name) == 0)
			return builtin_services[i].port;
	return fw_errf(err, errlen, "unknown port name '%s' (not in /etc/services)", name);
}

/* Appends the nft set body ("25, 465, 1000-2000") for a fail2ban port list;
 * *all = 1 when the list covers every port (no port match needed). */
static int compile_ports(const char *s, unsigned mask, struct strbuf *out, int *all, char *err,
			 size_t errlen)
{
	*all = 0;
	if (!s)
		return *all = 1, 0;
	size_t count = 0;
	const char *p = s;
	while (*p) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		size_t n = 0;
		while (p[n] && p[n] != ',' && !isspace((unsigned char)p[n]))
			n++;
		/* "a:b" always a range; "a-b" only between digits (ftp-data is a name) */
		size_t cut = n;
		for (size_t i = 0; i < n; i++)
			if (p[i] == ':') {
				cut = i;
				break;
			}
		if (cut == n) {
			size_t dash = n;
			for (size_t i = 0; i < n; i++)
				if (p[i] == '-')
					dash = i;
			int digits = dash < n && dash > 0;
			for (size_t i = 0; digits && i < n; i++)
				if (i != dash && !isdigit((unsigned char)p[i]))
					digits = 0;
			if (digits)
				cut = dash;
		}
		int lo = resolve_port(p, cut, mask, err, errlen), hi = lo;
		if (lo < 0)
			return lo;
		if (cut < n) {
			hi = resolve_port(p + cut + 1, n - cut - 1, mask, err, errlen);
			if (hi < 0)
				return hi;
			if (hi < lo)
				return fw_errf(err, errlen, "port range %d:%d is reversed", lo, hi);
		}
		if (lo <= 1 && hi == 65535)
			*all = 1;
		if (count++)
			strbuf_adds(out, ", ");
		if (lo == hi)
			strbuf_addf(out, "%d", lo);
		else
			strbuf_addf(out, "%d-%d", lo, hi);
		p += n;
		if (count > 1024)
			return fw_errf(err, errlen, "port list longer than 1024 items");
	}
	if (count == 0)
		*all = 1;
	return 0;
}

static void add_protos(struct strbuf *b, unsigned mask)
{
	int n = 0;
	for (size_t i = 0; i < sizeof protos / sizeof protos[0]; i++)
		if (mask & protos[i].bit)
			n++;
	if (n > 1)
		strbuf_adds(b, "{ ");
	int k = 0;
	for (size_t i = 0; i < sizeof protos / sizeof protos[0]; i++)
		if (mask & protos[i].bit)
			strbuf_addf(b, "%s%s", k++ ? ", " : "", protos[i].name);
	if (n > 1)
		strbuf_adds(b, " }");
}

static int single_proto(unsigned mask)
{
	return mask && (mask & (mask - 1)) == 0 && !(mask & P_ALL);
}

int fw_jspec_compile(const struct fw_jail *j, struct fw_jspec *out, char *err, size_t errlen)
{
	char base[FW_JAIL_NAME_MAX + 8];
	memset(out, 0, sizeof *out);
	if (!j || !j->name || !fw_set_base(j->name, base, sizeof base))
		return fw_errf(err, errlen, "jail name missing or longer than %d bytes", FW_JAIL_NAME_MAX);
	unsigned mask;
	int r = parse_protocol(j->protocol, &mask, err, errlen);
	if (r < 0)
		return r;
	struct strbuf ports = STRBUF_INIT, m = STRBUF_INIT;
	int all;
	r = compile_ports(j->port && *j->port ? j->port : NULL, mask, &ports, &all, err, errlen);
	if (r < 0) {
		strbuf_free(&ports);
		return r;
	}
	unsigned pm = mask == P_ALL ? (P_TCP | P_UDP | P_SCTP | P_DCCP) : mask;
	if (all) {
		if (mask != P_ALL) {
			strbuf_adds(&m, "meta l4proto ");
			add_protos(&m, mask);
		}
	} else if (single_proto(mask)) {
		add_protos(&m, mask);
		strbuf_addf(&m, " dport { %s }", strbuf_str(&ports));
	} else {
		strbuf_adds(&m, "meta l4proto ");
		add_protos(&m, pm);
		strbuf_addf(&m, " th dport { %s }", strbuf_str(&ports));
	}
	strbuf_free(&ports);
	out->name = xstrdup(j->name);
	out->base = xstrdup(base);
	out->match = strbuf_detach(&m);
	out->port = xstrdup(j->port ? j->port : "");
	out->protocol = xstrdup(j->protocol ? j->protocol : "");
	out->reject = j->reject ? (mask == P_TCP ? 2 : 1) : 0;
	return 0;
}

void fw_jspec_clear(struct fw_jspec *s)
{
	free(s->name);
	free(s->base);
	free(s->match);
	free(s->port);
	free(s->protocol);
	memset(s, 0, sizeof *s);
}

int fw_jspec_same(const struct fw_jspec *s, const struct fw_jail *j)
{
	return strcmp(s->port, j->port ? j->port : "") == 0 &&
	       strcmp(s->protocol, j->protocol ? j->protocol : "") == 0 &&
	       (s->reject != 0) == (j->reject != 0);
}

int fw_jail_ports(const struct fw_jail *j, char **ports, unsigned *protos, int *all, char *err,
		  size_t errlen)
{
	*ports = NULL;
	int r = parse_protocol(j->protocol, protos, err, errlen);
	if (r < 0)
		return r;
	struct strbuf b = STRBUF_INIT;
	r = compile_ports(j->port && *j->port ? j->port : NULL, *protos, &b, all, err, errlen);
	if (r < 0) {
		strbuf_free(&b);
		return r;
	}
	/* nft's "25, 1000-2000" into multiport's "25,1000:2000" */
	struct strbuf o = STRBUF_INIT;
	for (const char *p = strbuf_str(&b); *p; p++) {
		if (*p == ' ')
			continue;
		strbuf_addc(&o, *p == '-' ? ':' : *p);
	}
	strbuf_free(&b);
	*ports = strbuf_detach(&o);
	return 0;
}

int fw_ports_set(struct fw_ports *p, const struct fw_jail *j, char *err, size_t errlen)
{
	char *ports = NULL;
	unsigned protos;
	int all;
	int r = fw_jail_ports(j, &ports, &protos, &all, err, errlen);
	if (r < 0)
		return r;
	fw_ports_clear(p);
	p->port = xstrdup(j->port ? j->port : "");
	p->protocol = xstrdup(j->protocol ? j->protocol : "");
	p->ports = ports;
	p->protos = protos;
	p->all = all;
	p->reject = j->reject;
	return 0;
}

int fw_ports_same(const struct fw_ports *p, const struct fw_jail *j)
{
	return p->port && strcmp(p->port, j->port ? j->port : "") == 0 &&
	       strcmp(p->protocol, j->protocol ? j->protocol : "") == 0;
}

void fw_ports_clear(struct fw_ports *p)
{
	free(p->port);
	free(p->protocol);
	free(p->ports);
	memset(p, 0, sizeof *p);
}

static const char *const rule_protos[] = {"tcp", "udp", "sctp", "dccp", "udplite"};

char *fw_ports_rules(const struct fw_ports *p, const char *hook, const char *tail)
{
	struct strbuf b = STRBUF_INIT;
	if (p->all && (p->protos & FW_PROTO_ALL)) {
		strbuf_addf(&b, "-A %s%s\n", hook, tail);
		return strbuf_detach(&b);
	}
	for (int k = 0; k < 5; k++) {
		if (!(p->protos & (1u << k)) && !(p->protos & FW_PROTO_ALL))
			continue;
		if (p->all) {
			strbuf_addf(&b, "-A %s -p %s%s\n", hook, rule_protos[k], tail);
			continue;
		}
		/* multiport takes 15 ports, a range counting as two */
		const char *q = p->ports;
		while (*q) {
			struct strbuf chunk = STRBUF_INIT;
			int used = 0;
			while (*q) {
				size_t n = strcspn(q, ",");
				int cost = memchr(q, ':', n) ? 2 : 1;
				if (used + cost > FW_MULTIPORT_MAX)
					break;
				if (chunk.len)
					strbuf_addc(&chunk, ',');
				strbuf_add(&chunk, q, n);
				used += cost;
				q += n;
				if (*q == ',')
					q++;
			}
			strbuf_addf(&b, "-A %s -p %s -m multiport --dports %s%s\n", hook, rule_protos[k],
				    strbuf_str(&chunk), tail);
			strbuf_free(&chunk);
		}
	}
	return strbuf_detach(&b);
}

void fw_rules_as(const char *rules, const char *op, struct strbuf *b)
{
	for (const char *p = rules; p && *p;) {
		size_t n = strcspn(p, "\n");
		if (n > 3 && strncmp(p, "-A ", 3) == 0)
			strbuf_addf(b, "%s %.*s\n", op, (int)(n - 3), p + 3);
		p += n + (p[n] ? 1 : 0);
	}
}

int fw_restore(const char *bindir, int f, const char *body, char *err, size_t errlen)
{
	if (!*body)
		return 0;
	char *batch = xasprintf("*filter\n%sCOMMIT\n", body);
	int r = fw_tool_run(bindir, f ? "ip6tables-restore" : "iptables-restore", "--noflush", "-w",
			    NULL, batch, NULL, err, errlen);
	free(batch);
	return r;
}

int fw_queue(struct fw_map *pend, int k, const struct addr *a, uint64_t v)
{
	if (k < 0)
		return k;
	int isnew;
	*fw_map_put(pend, (uint32_t)k, a, &isnew) = v;
	return 0;
}

int fw_jail_check(const struct fw_jail *j, char *err, size_t errlen)
{
	struct fw_jspec s;
	int r = fw_jspec_compile(j, &s, err, errlen);
	if (r == 0)
		fw_jspec_clear(&s);
	return r;
}

/* ---- (jail, address) map: linear probing, backward-shift deletion ---- */

static uint64_t key_hash(uint32_t jail, const struct addr *a)
{
	uint64_t h = 1469598103934665603ULL ^ jail;
	int n = a->family == 4 ? 4 : 16;
	for (int i = 0; i < n; i++)
		h = (h ^ a->a[i]) * 1099511628211ULL;
	h = (h ^ (uint64_t)a->prefix) * 1099511628211ULL;
	return h ^ (h >> 29);
}

static int key_eq(const struct fw_map_ent *e, uint32_t jail, const struct addr *a)
{
	return e->jail == jail && e->family == a->family && e->prefix == a->prefix &&
	       memcmp(e->a, a->a, a->family == 4 ? 4 : 16) == 0;
}

static size_t find_slot(const struct fw_map *m, uint32_t jail, const struct addr *a)
{
	size_t i = key_hash(jail, a) & (m->cap - 1);
	while (m->e[i].used && !key_eq(&m->e[i], jail, a))
		i = (i + 1) & (m->cap - 1);
	return i;
}

static void map_grow(struct fw_map *m)
{
	struct fw_map old = *m;
	m->cap = old.cap ? old.cap * 2 : 64;
	m->e = xcalloc(m->cap, sizeof *m->e);
	m->n = 0;
	for (size_t i = 0; i < old.cap; i++) {
		if (!old.e[i].used)
			continue;
		struct addr a;
		fw_map_key(&old.e[i], &a);
		size_t s = find_slot(m, old.e[i].jail, &a);
		m->e[s] = old.e[i];
		m->n++;
	}
	free(old.e);
}

void fw_map_key(const struct fw_map_ent *e, struct addr *out)
{
	memset(out, 0, sizeof *out);
	out->family = e->family;
	out->prefix = e->prefix;
	memcpy(out->a, e->a, 16);
}

uint64_t *fw_map_put(struct fw_map *m, uint32_t jail, const struct addr *a, int *isnew)
{
	if ((m->n + 1) * 4 >= m->cap * 3)
		map_grow(m);
	size_t i = find_slot(m, jail, a);
	*isnew = !m->e[i].used;
	if (*isnew) {
		struct fw_map_ent *e = &m->e[i];
		memset(e, 0, sizeof *e);
		e->used = 1;
		e->jail = jail;
		e->family = (uint8_t)a->family;
		e->prefix = (uint8_t)a->prefix;
		memcpy(e->a, a->a, a->family == 4 ? 4 : 16);
		m->n++;
	}
	return &m->e[i].val;
}

uint64_t *fw_map_get(const struct fw_map *m, uint32_t jail, const struct addr *a)
{
	if (!m->cap)
		return NULL;
	size_t i = find_slot(m, jail, a);
	return m->e[i].used ? &m->e[i].val : NULL;
}

int fw_map_del(struct fw_map *m, uint32_t jail, const struct addr *a)
{
	if (!m->cap)
		return 0;
	size_t i = find_slot(m, jail, a);
	if (!m->e[i].used)
		return 0;
	m->e[i].used = 0;
	m->n--;
	/* backward shift: move later members of the cluster into the hole */
	size_t j = i;
	for (;;) {
		j = (j + 1) & (m->cap - 1);
		if (!m->e[j].used)
			break;
		struct addr k;
		fw_map_key(&m->e[j], &k);
		size_t home = key_hash(m->e[j].jail, &k) & (m->cap - 1);
		/* can e[j] move to i? only if its home is not in (i, j] cyclically */
		int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!between) {
			m->e[i] = m->e[j];
			m->e[j].used = 0;
			i = j;
		}
	}
	return 1;
}

void fw_map_clear(struct fw_map *m)
{
	if (m->cap)
		memset(m->e, 0, m->cap * sizeof *m->e);
	m->n = 0;
}

void fw_map_free(struct fw_map *m)
{
	free(m->e);
	memset(m, 0, sizeof *m);
}

/* ---- banaction registry ---- */

enum reg_kind { REG_NFT, REG_NFT_ALLPORTS, REG_HOSTSDENY, REG_IPT, REG_IPT_ALLPORTS, REG_IPT_NEW,
		REG_IPSET, REG_IPSET_ALLPORTS, REG_ROUTE, REG_LATER };

static const struct {
	const char *name;
	enum reg_kind kind;
} registry[] = {
	{"nftables", REG_NFT},
	{"nftables-multiport", REG_NFT},
	{"nftables-common", REG_NFT},
	{"nftables-allports", REG_NFT_ALLPORTS},
	{"iptables", REG_IPT},
	{"iptables-multiport", REG_IPT},
	{"iptables-multiport-log", REG_LATER},
	{"iptables-allports", REG_IPT_ALLPORTS},
	{"iptables-new", REG_IPT_NEW},
	{"iptables-xt_recent-echo", REG_LATER},
	{"iptables-ipset", REG_IPSET},
	{"iptables-ipset-proto4", REG_IPSET},
	{"iptables-ipset-proto6", REG_IPSET},
	{"iptables-ipset-proto6-allports", REG_IPSET_ALLPORTS},
	{"hostsdeny", REG_HOSTSDENY},
	{"route", REG_ROUTE},
};

static const char *opt(const struct kvlist *opts, const char *key)
{
	return opts ? kvlist_get(opts, key) : NULL;
}

int fw_action_resolve(const char *name, const struct kvlist *opts, const struct fw_jail *jail,
		      struct fw_action *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (!name)
		return fw_errno(err, errlen, ENOENT, "no banaction name");
	size_t k = sizeof registry / sizeof registry[0];
	for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
		if (strcmp(registry[i].name, name) == 0)
			k = i;
	if (k == sizeof registry / sizeof registry[0])
		return fw_errno(err, errlen, ENOENT, "'%s' is not a built-in firewall banaction", name);
	out->name = registry[k].name;
	if (registry[k].kind == REG_LATER)
		return fw_errno(err, errlen, ENOSYS,
				"banaction '%s' is recognised but its native backend is not built yet; "
				"use nftables, nftables-multiport or nftables-allports", name);

	if (registry[k].kind == REG_HOSTSDENY) {
		/* tcp_wrappers know no ports: the whole host is refused */
		out->backend = &fw_hostsdeny_backend;
		out->allports = 1;
		out->opts.path = opt(opts, "file");
		out->opts.daemon_list = opt(opts, "daemon_list");
		out->jail.name = jail ? jail->name : NULL;
		if (out->opts.daemon_list && strpbrk(out->opts.daemon_list, "\n\r#"))
			return fw_errf(err, errlen, "hostsdeny: daemon_list must be one line without '#'");
		if (out->opts.path && out->opts.path[0] != '/')
			return fw_errf(err, errlen, "hostsdeny: file=%s is not an absolute path",
				       out->opts.path);
		return 0;
	}
	if (registry[k].kind == REG_ROUTE) {
		/* a route knows no ports: the whole host is unreachable */
		out->backend = &fw_route_backend;
		out->allports = 1;
		out->jail.name = jail ? jail->name : NULL;
		const char *bt = opt(opts, "blocktype");
		if (bt && strcmp(bt, "unreachable") != 0 && strcmp(bt, "blackhole") != 0 &&
		    strcmp(bt, "prohibit") != 0)
			return fw_errf(err, errlen,
				       "route: blocktype=%s not supported (expected unreachable, "
				       "blackhole or prohibit)", bt);
		out->opts.blocktype = bt;
		return 0;
	}
	int ipset = registry[k].kind == REG_IPSET || registry[k].kind == REG_IPSET_ALLPORTS;
	int ipt = registry[k].kind == REG_IPT || registry[k].kind == REG_IPT_ALLPORTS ||
		  registry[k].kind == REG_IPT_NEW || ipset;
	out->backend = ipset ? &fw_ipset_backend : ipt ? &fw_iptables_backend : &fw_nft_backend;
	out->allports = registry[k].kind == REG_NFT_ALLPORTS || registry[k].kind == REG_IPT_ALLPORTS ||
			registry[k].kind == REG_IPSET_ALLPORTS;
	if (ipt) {
		out->opts.chain = opt(opts, "chain");
		out->opts.newonly = registry[k].kind == REG_IPT_NEW;
		const char *c = out->opts.chain;
		if (c && (!*c || strlen(c) > 28 || strpbrk(c, " \t\n\r")))
			return fw_errf(err, errlen, "%s: chain=%s is not an iptables chain name", name, c);
	}
	const char *type = opt(opts, "type");
	if (type) {
		if (strcmp(type, "allports") == 0)
			out->allports = 1;
		else if (strcmp(type, "multiport") == 0)
			out->allports = 0;
		else
			return fw_errf(err, errlen,
				       "%s: type=%s not supported (expected multiport or allports)", name, type);
	}
	out->jail.name = jail ? jail->name : NULL;
	out->jail.port = opt(opts, "port") ? opt(opts, "port") : jail ? jail->port : NULL;
	out->jail.protocol = opt(opts, "protocol") ? opt(opts, "protocol") : jail ? jail->protocol : NULL;
	out->jail.reject = jail ? jail->reject : 0;
	const char *bt = opt(opts, "blocktype");
	if (bt) {
		if (strcasecmp(bt, "drop") == 0)
			out->jail.reject = 0;
		else if (strncasecmp(bt, "reject", 6) == 0)
			out->jail.reject = 1;
		else
			return fw_errf(err, errlen, "%s: blocktype=%s not supported (expected drop or reject)",
				       name, bt);
	}
	if (out->allports)
		out->jail.port = NULL;
	if (out->jail.name)
		return fw_jail_check(&out->jail, err, errlen);
	return 0;
}
