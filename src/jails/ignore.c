/*
 * ignore - the never-ban list of a jail (see ignore.h for the interface).
 *
 * Lookup: every address and prefix from ignoreip, file: lists and resolved
 * names is kept in one index per family, grouped by prefix length; each group
 * is a sorted array of masked keys. A query masks the address once per
 * prefix length present and binary-searches that group, so a check costs
 * (number of distinct prefix lengths) x log2(entries) comparisons - a few
 * dozen for 10k entries - and the index is rebuilt whole when a source
 * changes (sorting 10k keys takes well under a millisecond). Own addresses
 * sit in a second index so the verdict can say "ignoreself".
 *
 * ignorecommand: the script is fail2ban's template with tags substituted the
 * way fail2ban's actions do; values with shell metacharacters travel as
 * $f2bV_<tag> environment variables, never as script text. The shell runs in
 * its own process group so a timeout can kill everything it started.
 *
 * ignorecache: results of the command are cached per key (fail2ban's
 * `key=..., max-count=N, max-time=T`), oldest out first when full, each
 * entry expiring after max-time. Unlike fail2ban the cache holds command
 * verdicts only: loopback, own addresses and the list are checked first and
 * every time, so an entry added to ignoreip (or a file: list) takes effect at
 * once instead of after max-time, and a cached "not ignored" can never shadow
 * it. fail2ban also caches positive list hits under the key; with the usual
 * key "<ip>" that gives the same answers.
 *
 * SECURITY: values reach the shell only as variables; the child gets stdin
 * from /dev/null, default signal dispositions and an unblocked signal mask.
 */
#include "jails/ignore.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/clocks.h"
#include "core/diag.h"
#include "core/hash.h"
#include "core/kvlist.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "jails/jail.h"

#define MAX_RESOLVED 64               /* addresses kept per name */
#define FILE_MAX_BYTES (64u << 20)    /* a file: list larger than this is refused */
#define CACHE_MAX_COUNT 1000000u      /* cap on ignorecache max-count */

extern char **environ;

/* ------------------------------------------------------------------ index */

struct u128 {
	uint64_t hi, lo;
};

struct b4 {
	int plen;
	size_t n;
	uint32_t *key;
	uint32_t *src;
};

struct b6 {
	int plen;
	size_t n;
	struct u128 *key;
	uint32_t *src;
};

struct lit {
	const char *s; /* points into a source; valid while the index is */
	uint32_t src;
};

struct index {
	struct b4 *b4; /* by prefix length, longest first */
	size_t n4;
	struct b6 *b6;
	size_t n6;
	struct lit *lits; /* sorted by strcmp */
	size_t nlits;
	size_t total;
};

/* One address before it goes into the index. */
struct item {
	int family, plen;
	struct u128 k; /* IPv4 in k.lo */
	uint32_t src;
};

static uint32_t v4mask(int plen)
{
	return plen <= 0 ? 0 : plen >= 32 ? 0xffffffffu : 0xffffffffu << (32 - plen);
}

static struct u128 v6mask(int plen)
{
	struct u128 m;
	m.hi = plen <= 0 ? 0 : plen >= 64 ? ~0ULL : ~0ULL << (64 - plen);
	m.lo = plen <= 64 ? 0 : plen >= 128 ? ~0ULL : ~0ULL << (128 - plen);
	return m;
}

static uint32_t v4key(const struct addr *a)
{
	return (uint32_t)a->a[0] << 24 | (uint32_t)a->a[1] << 16 | (uint32_t)a->a[2] << 8 | a->a[3];
}

static struct u128 v6key(const struct addr *a)
{
	struct u128 k = {0, 0};
	for (int i = 0; i < 8; i++) {
		k.hi = k.hi << 8 | a->a[i];
		k.lo = k.lo << 8 | a->a[8 + i];
	}
	return k;
}

static int u128_cmp(struct u128 x, struct u128 y)
{
	if (x.hi != y.hi)
		return x.hi < y.hi ? -1 : 1;
	if (x.lo != y.lo)
		return x.lo < y.lo ? -1 : 1;
	return 0;
}

static int item_cmp(const void *pa, const void *pb)
{
	const struct item *a = pa, *b = pb;
	if (a->family != b->family)
		return a->family - b->family;
	if (a->plen != b->plen)
		return b->plen - a->plen; /* longest prefix first */
	int c = u128_cmp(a->k, b->k);
	if (c)
		return c;
	return a->src < b->src ? -1 : a->src > b->src;
}

static int lit_cmp(const void *pa, const void *pb)
{
	const struct lit *a = pa, *b = pb;
	int c = strcmp(a->s, b->s);
	if (c)
		return c;
	return a->src < b->src ? -1 : a->src > b->src;
}

static void index_clear(struct index *ix)
{
	for (size_t i = 0; i < ix->n4; i++) {
		free(ix->b4[i].key);
		free(ix->b4[i].src);
	}
	for (size_t i = 0; i < ix->n6; i++) {
		free(ix->b6[i].key);
		free(ix->b6[i].src);
	}
	free(ix->b4);
	free(ix->b6);
	free(ix->lits);
	memset(ix, 0, sizeof *ix);
}

struct collect {
	struct item *items;
	size_t n, cap;
	struct lit *lits;
	size_t nlits, litcap;
};

static void collect_addr(struct collect *c, const struct addr *a, uint32_t src)
{
	struct item it;
	if (a->family != 4 && a->family != 6)
		return;
	memset(&it, 0, sizeof it);
	it.family = a->family;
	it.plen = a->prefix;
	it.src = src;
	if (a->family == 4) {
		it.k.lo = v4key(a) & v4mask(a->prefix);
	} else {
		struct u128 m = v6mask(a->prefix);
		it.k = v6key(a);
		it.k.hi &= m.hi;
		it.k.lo &= m.lo;
	}
	c->items = xgrow(c->items, &c->cap, c->n, sizeof *c->items);
	c->items[c->n++] = it;
}

static void collect_lit(struct collect *c, const char *s, uint32_t src)
{
	c->lits = xgrow(c->lits, &c->litcap, c->nlits, sizeof *c->lits);
	c->lits[c->nlits].s = s;
	c->lits[c->nlits].src = src;
	c->nlits++;
}

/* Turns the collected items into the bucketed index (consumes c). */
static void index_build(struct index *ix, struct collect *c)
{
	index_clear(ix);
	if (c->n)
		qsort(c->items, c->n, sizeof *c->items, item_cmp);
	for (size_t i = 0; i < c->n;) {
		size_t j = i;
		while (j < c->n && c->items[j].family == c->items[i].family &&
		       c->items[j].plen == c->items[i].plen)
			j++;
		/* duplicates are adjacent; the first (lowest source) wins */
		size_t cnt = 0;
		for (size_t k = i; k < j; k++)
			if (k == i || u128_cmp(c->items[k].k, c->items[k - 1].k) != 0)
				cnt++;
		if (c->items[i].family == 4) {
			ix->b4 = xrealloc(ix->b4, (ix->n4 + 1) * sizeof *ix->b4);
			struct b4 *b = &ix->b4[ix->n4++];
			b->plen = c->items[i].plen;
			b->key = xmalloc(cnt * sizeof *b->key);
			b->src = xmalloc(cnt * sizeof *b->src);
			b->n = 0;
			for (size_t k = i; k < j; k++)
				if (k == i || u128_cmp(c->items[k].k, c->items[k - 1].k) != 0) {
					b->key[b->n] = (uint32_t)c->items[k].k.lo;
					b->src[b->n++] = c->items[k].src;
				}
		} else {
			ix->b6 = xrealloc(ix->b6, (ix->n6 + 1) * sizeof *ix->b6);
			struct b6 *b = &ix->b6[ix->n6++];
			b->plen = c->items[i].plen;
			b->key = xmalloc(cnt * sizeof *b->key);
			b->src = xmalloc(cnt * sizeof *b->src);
			b->n = 0;
			for (size_t k = i; k < j; k++)
				if (k == i || u128_cmp(c->items[k].k, c->items[k - 1].k) != 0) {
					b->key[b->n] = c->items[k].k;
					b->src[b->n++] = c->items[k].src;
				}
		}
		ix->total += cnt;
		i = j;
	}
	if (c->nlits)
		qsort(c->lits, c->nlits, sizeof *c->lits, lit_cmp);
	ix->lits = c->lits;
	ix->nlits = c->nlits;
	ix->total += c->nlits;
	free(c->items);
	memset(c, 0, sizeof *c);
}

/* Returns the source index of a matching entry, or -1. */
static long index_find_addr(const struct index *ix, const struct addr *a)
{
	if (a->family == 4) {
		uint32_t q = v4key(a);
		for (size_t i = 0; i < ix->n4; i++) {
			const struct b4 *b = &ix->b4[i];
			if (b->plen > a->prefix)
				continue;
			uint32_t k = q & v4mask(b->plen);
			size_t lo = 0, hi = b->n;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				if (b->key[mid] < k)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo < b->n && b->key[lo] == k)
				return (long)b->src[lo];
		}
	} else if (a->family == 6) {
		struct u128 q = v6key(a);
		for (size_t i = 0; i < ix->n6; i++) {
			const struct b6 *b = &ix->b6[i];
			if (b->plen > a->prefix)
				continue;
			struct u128 m = v6mask(b->plen), k = {q.hi & m.hi, q.lo & m.lo};
			size_t lo = 0, hi = b->n;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				if (u128_cmp(b->key[mid], k) < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo < b->n && u128_cmp(b->key[lo], k) == 0)
				return (long)b->src[lo];
		}
	}
	return -1;
}

static long index_find_lit(const struct index *ix, const char *s)
{
	size_t lo = 0, hi = ix->nlits;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(ix->lits[mid].s, s) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ix->nlits && strcmp(ix->lits[lo].s, s) == 0)
		return (long)ix->lits[lo].src;
	return -1;
}

/* ---------------------------------------------------------------- sources */

enum src_kind { SRC_ADDR, SRC_NAME, SRC_FILE };

/* A name and what it resolved to last time it resolved. */
struct rname {
	char *s;
	int resolvable; /* looks like a host name; others are literal ids only */
	struct addr *a;
	size_t n;
};

/* One ignoreip entry as written. */
struct src {
	enum src_kind kind;
	char *text;
	struct addr *addrs; /* literal addresses/prefixes (ADDR: one; FILE: the file's) */
	size_t naddrs, addrcap;
	struct rname *names; /* NAME: one; FILE: the file's non-address lines */
	size_t nnames, namecap;
	/* FILE */
	char *path;
	int have_stat, missing;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct centry {
	char *key;
	int verdict;
	double expires;
	uint32_t prev, next; /* age order; 0 = none, else index + 1 */
	uint32_t hnext;      /* hash chain; 0 = end */
};

struct cache {
	char *keytmpl;
	size_t max;
	double maxtime;
	struct centry *e;
	size_t ne, ecap;
	uint32_t freelist; /* index + 1 */
	uint32_t oldest, newest;
	size_t count;
	uint32_t *buckets;
	size_t nbuckets; /* power of two */
};

struct ignorelist {
	struct ignore_opts o;
	char *command;
	struct cache *cache;
	struct src *srcs;
	size_t nsrcs, srccap;
	const char **texts; /* NULL-terminated view for ignore_entries() */
	struct index list, self;
	struct addr *selfaddrs;
	size_t nself;
	double next_file_check;
	char *cfgfile;
};

static void src_clear_content(struct src *s)
{
	free(s->addrs);
	s->addrs = NULL;
	s->naddrs = s->addrcap = 0;
	for (size_t i = 0; i < s->nnames; i++) {
		free(s->names[i].s);
		free(s->names[i].a);
	}
	free(s->names);
	s->names = NULL;
	s->nnames = s->namecap = 0;
}

static void src_free(struct src *s)
{
	src_clear_content(s);
	free(s->text);
	free(s->path);
}

static int is_sep(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '\v' ||
	       c == '\f';
}

static int hostname_like(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_'))
			return 0;
	}
	return 1;
}

/* Text that is plainly meant as an address or a prefix but does not parse:
 * refuse it instead of sending it to DNS (glibc would even read
 * "192.0.2.010" as octal). */
static int address_like(const char *s)
{
	size_t colons = 0, other = 0;
	int alldot = 1;
	if (strchr(s, '/'))
		return 1;
	for (const char *p = s; *p; p++) {
		char c = *p;
		if (c == ':')
			colons++;
		else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
			   c == '.' || c == '[' || c == ']'))
			other++;
		if (!((c >= '0' && c <= '9') || c == '.'))
			alldot = 0;
	}
	if (alldot && strchr(s, '.'))
		return 1;
	return colons >= 2 && other == 0;
}

static void src_add_addr(struct src *s, const struct addr *a)
{
	s->addrs = xgrow(s->addrs, &s->addrcap, s->naddrs, sizeof *s->addrs);
	s->addrs[s->naddrs++] = *a;
}

static void src_add_name(struct src *s, const char *name)
{
	s->names = xgrow(s->names, &s->namecap, s->nnames, sizeof *s->names);
	struct rname *r = &s->names[s->nnames++];
	memset(r, 0, sizeof *r);
	r->s = xstrdup(name);
	r->resolvable = hostname_like(name);
}

/* Classifies one token into s. Returns 0, or -1 with a message in err. */
static int token_into(struct src *s, const char *tok, char *err, size_t errlen)
{
	struct addr a;
	size_t n = strlen(tok);
	if (addr_parse_cidr(tok, n, &a) == 0) {
		src_add_addr(s, &a);
		return 0;
	}
	if (address_like(tok)) {
		snprintf(err, errlen,
			 "expected an address (192.0.2.7, 2001:db8::1), a prefix (10.0.0.0/8, "
			 "10.0.0.0/255.0.0.0) or a host name, got '%.80s'",
			 tok);
		return -1;
	}
	src_add_name(s, tok);
	return 0;
}

/* ---------------------------------------------------------------- resolve */

static int resolve_getaddrinfo(void *ctx, const char *name, struct addr *out, size_t max,
			       char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	size_t n = 0;
	(void)ctx;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	int rc = getaddrinfo(name, NULL, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "%s", rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
		char buf[INET6_ADDRSTRLEN];
		const void *p;
		if (ai->ai_family == AF_INET)
			p = &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr;
		else if (ai->ai_family == AF_INET6)
			p = &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr;
		else
			continue;
		if (!inet_ntop(ai->ai_family, p, buf, sizeof buf))
			continue;
		struct addr a;
		if (addr_parse(buf, strlen(buf), &a) < 0)
			continue;
		int dup = 0;
		for (size_t i = 0; i < n && !dup; i++)
			dup = addr_equal(&out[i], &a);
		if (!dup)
			out[n++] = a;
	}
	freeaddrinfo(res);
	return (int)n;
}

static ignore_resolve_fn resolver(const struct ignore_opts *o)
{
	return o->resolve ? o->resolve : resolve_getaddrinfo;
}

/* Resolves one name; keeps the previous result when the lookup fails.
 * Returns 0, or -1 with a warning added. */
static int rname_resolve(const struct ignorelist *l, struct rname *r, struct diag *d)
{
	struct addr buf[MAX_RESOLVED];
	char err[256] = "";
	if (!r->resolvable)
		return 0;
	int n = resolver(&l->o)(l->o.resolve_ctx, r->s, buf, MAX_RESOLVED, err, sizeof err);
	if (n < 0 || n > MAX_RESOLVED) {
		if (d)
			diag_warn(d, l->cfgfile, l->o.cfgline,
				  "ignoreip: cannot resolve '%s': %s%s", r->s,
				  err[0] ? err : "lookup failed",
				  r->n ? " (keeping the previous addresses)" : "");
		return -1;
	}
	free(r->a);
	r->a = n ? xmalloc((size_t)n * sizeof *r->a) : NULL;
	if (n)
		memcpy(r->a, buf, (size_t)n * sizeof *r->a);
	r->n = (size_t)n;
	if (n == 0 && d)
		diag_warn(d, l->cfgfile, l->o.cfgline, "ignoreip: '%s' has no addresses", r->s);
	return 0;
}

static int src_resolve(const struct ignorelist *l, struct src *s, struct diag *d)
{
	int rc = 0;
	for (size_t i = 0; i < s->nnames; i++)
		if (rname_resolve(l, &s->names[i], d) < 0)
			rc = -1;
	return rc;
}

/* ------------------------------------------------------------------ files */

static int same_stat(const struct src *s, const struct stat *st)
{
	return s->have_stat && s->dev == st->st_dev && s->ino == st->st_ino &&
	       s->size == st->st_size && s->mtime.tv_sec == st->st_mtim.tv_sec &&
	       s->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static void remember_stat(struct src *s, const struct stat *st)
{
	s->have_stat = 1;
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->size = st->st_size;
	s->mtime = st->st_mtim;
}

/* Reads the file into fresh content. Returns 1 when the content was replaced,
 * 0 when it is unchanged, -1 when it could not be read (old content kept). */
static int file_load(struct ignorelist *l, struct src *s, int force, struct diag *d)
{
	struct stat st;
	int fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT) {
			int had = s->naddrs || s->nnames;
			if (!s->missing && d)
				diag_warn(d, l->cfgfile, l->o.cfgline,
					  "ignoreip: %s does not exist (yet); it is read when it appears",
					  s->path);
			s->missing = 1;
			s->have_stat = 0;
			src_clear_content(s);
			return had;
		}
		if (d)
			diag_warn(d, l->cfgfile, l->o.cfgline, "ignoreip: cannot open %s: %s", s->path,
				  strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (d)
			diag_warn(d, l->cfgfile, l->o.cfgline, "ignoreip: %s is not a regular file",
				  s->path);
		close(fd);
		return -1;
	}
	s->missing = 0;
	if (!force && same_stat(s, &st)) {
		close(fd);
		return 0;
	}
	if ((uintmax_t)st.st_size > FILE_MAX_BYTES) {
		if (d)
			diag_warn(d, l->cfgfile, l->o.cfgline,
				  "ignoreip: %s: expected at most %u MiB, keeping the previous entries",
				  s->path, FILE_MAX_BYTES >> 20);
		close(fd);
		return -1;
	}
	struct strbuf b = STRBUF_INIT;
	char chunk[65536];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			if (d)
				diag_warn(d, l->cfgfile, l->o.cfgline, "ignoreip: cannot read %s: %s",
					  s->path, strerror(errno));
			strbuf_free(&b);
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		if (b.len + (size_t)r > FILE_MAX_BYTES) {
			if (d)
				diag_warn(d, l->cfgfile, l->o.cfgline,
					  "ignoreip: %s grew past %u MiB, keeping the previous entries",
					  s->path, FILE_MAX_BYTES >> 20);
			strbuf_free(&b);
			close(fd);
			return -1;
		}
		strbuf_add(&b, chunk, (size_t)r);
	}
	close(fd);
	remember_stat(s, &st);

	/* Parse into a scratch source first so that the old names keep their
	 * resolved addresses when they are still listed. */
	struct src fresh;
	memset(&fresh, 0, sizeof fresh);
	const char *p = b.s ? b.s : "", *end = p + b.len;
	unsigned lineno = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		lineno++;
		const char *hash = memchr(p, '#', (size_t)(le - p));
		const char *ce = hash ? hash : le;
		const char *q = p;
		while (q < ce) {
			while (q < ce && (is_sep(*q) || *q == '\0'))
				q++;
			const char *t = q;
			while (q < ce && !is_sep(*q) && *q != '\0')
				q++;
			if (q == t)
				continue;
			char tok[300], err[300];
			if ((size_t)(q - t) >= sizeof tok) {
				if (d)
					diag_error(d, s->path, lineno,
						   "expected an address, a prefix or a host name "
						   "(at most %zu bytes)",
						   sizeof tok - 1);
				continue;
			}
			memcpy(tok, t, (size_t)(q - t));
			tok[q - t] = '\0';
			if (strncmp(tok, "file:", 5) == 0) {
				if (d)
					diag_error(d, s->path, lineno,
						   "expected an address, a prefix or a host name; "
						   "file: lists do not nest");
				continue;
			}
			if (token_into(&fresh, tok, err, sizeof err) < 0 && d)
				diag_error(d, s->path, lineno, "%s", err);
		}
		p = nl ? nl + 1 : end;
	}
	strbuf_free(&b);
	for (size_t i = 0; i < fresh.nnames; i++) {
		struct rname *r = &fresh.names[i];
		for (size_t k = 0; k < s->nnames; k++)
			if (s->names[k].a && strcmp(s->names[k].s, r->s) == 0) {
				r->a = s->names[k].a;
				r->n = s->names[k].n;
				s->names[k].a = NULL;
				s->names[k].n = 0;
				break;
			}
		if (!r->a)
			rname_resolve(l, r, d);
	}
	src_clear_content(s);
	s->addrs = fresh.addrs;
	s->naddrs = fresh.naddrs;
	s->addrcap = fresh.addrcap;
	s->names = fresh.names;
	s->nnames = fresh.nnames;
	s->namecap = fresh.namecap;
	return 1;
}

/* ------------------------------------------------------------------ build */



static void rebuild(struct ignorelist *l)
{
	struct collect c;
	memset(&c, 0, sizeof c);
	for (size_t i = 0; i < l->nsrcs; i++) {
		struct src *s = &l->srcs[i];
		for (size_t k = 0; k < s->naddrs; k++)
			collect_addr(&c, &s->addrs[k], (uint32_t)i);
		for (size_t k = 0; k < s->nnames; k++) {
			collect_lit(&c, s->names[k].s, (uint32_t)i);
			for (size_t m = 0; m < s->names[k].n; m++)
				collect_addr(&c, &s->names[k].a[m], (uint32_t)i);
		}
	}
	index_build(&l->list, &c);

	memset(&c, 0, sizeof c);
	for (size_t i = 0; i < l->nself; i++)
		collect_addr(&c, &l->selfaddrs[i], 0);
	index_build(&l->self, &c);

	free(l->texts);
	l->texts = xmalloc((l->nsrcs + 1) * sizeof *l->texts);
	for (size_t i = 0; i < l->nsrcs; i++)
		l->texts[i] = l->srcs[i].text;
	l->texts[l->nsrcs] = NULL;
}

static int load_self(struct ignorelist *l, struct diag *d)
{
	struct addr *a = NULL;
	char err[256] = "";
	int n = ignore_self_addrs(l->o.resolve ? l->o.resolve : resolve_getaddrinfo,
				  l->o.resolve_ctx, &a, err, sizeof err);
	if (n < 0) {
		if (d)
			diag_warn(d, l->cfgfile, l->o.cfgline,
				  "ignoreself: cannot list own addresses: %s", err);
		return -1;
	}
	free(l->selfaddrs);
	l->selfaddrs = a;
	l->nself = (size_t)n;
	return 0;
}

/* A set of strings for the duplicate check while adding entries (a list of
 * thousands of entries must not cost a quadratic number of compares). */
struct strset {
	const char **slot;
	size_t mask;
};

static void strset_init(struct strset *h, size_t expect)
{
	size_t n = 16;
	while (n < 2 * expect)
		n <<= 1;
	h->slot = xcalloc(n, sizeof *h->slot);
	h->mask = n - 1;
}

/* Returns 1 when s was already in the set, else adds it (not copied). */
static int strset_add(struct strset *h, const char *s)
{
	size_t i = (size_t)hash_str(HASH_SEED, s) & h->mask;
	while (h->slot[i]) {
		if (strcmp(h->slot[i], s) == 0)
			return 1;
		i = (i + 1) & h->mask;
	}
	h->slot[i] = s;
	return 0;
}

/* Adds the entries of a list value; returns 0 or -1 (errors in d). */
static int add_entries(struct ignorelist *l, const char *value, double now, struct diag *d)
{
	int rc = 0;
	const char *p = value ? value : "";
	struct strset seen;
	char **dropped = NULL; /* refused tokens: the set points at them until the end */
	size_t ndropped = 0, droppedcap = 0;
	(void)now;
	strset_init(&seen, l->nsrcs + strlen(p) / 2 + 1);
	for (size_t i = 0; i < l->nsrcs; i++)
		strset_add(&seen, l->srcs[i].text);
	while (*p) {
		while (*p && is_sep(*p))
			p++;
		const char *t = p;
		while (*p && !is_sep(*p))
			p++;
		if (p == t)
			continue;
		char *tok = xstrndup(t, (size_t)(p - t));
		if (strset_add(&seen, tok)) {
			free(tok);
			continue;
		}
		struct src s;
		memset(&s, 0, sizeof s);
		s.text = tok;
		if (strncmp(tok, "file:", 5) == 0) {
			s.kind = SRC_FILE;
			s.path = xstrdup(tok + 5);
			if (s.path[0] != '/') {
				if (d)
					diag_error(d, l->cfgfile, l->o.cfgline,
						   "ignoreip: expected an absolute path after 'file:', "
						   "got '%.80s'",
						   tok);
				rc = -1;
				goto drop;
			}
			file_load(l, &s, 1, d);
		} else {
			char err[300];
			if (token_into(&s, tok, err, sizeof err) < 0) {
				if (d)
					diag_error(d, l->cfgfile, l->o.cfgline, "ignoreip: %s", err);
				rc = -1;
				goto drop;
			}
			s.kind = s.nnames ? SRC_NAME : SRC_ADDR;
			src_resolve(l, &s, d);
		}
		l->srcs = xgrow(l->srcs, &l->srccap, l->nsrcs, sizeof *l->srcs);
		l->srcs[l->nsrcs++] = s;
		continue;
drop:
		s.text = NULL;
		src_free(&s);
		dropped = xgrow(dropped, &droppedcap, ndropped, sizeof *dropped);
		dropped[ndropped++] = tok;
	}
	free(seen.slot);
	for (size_t i = 0; i < ndropped; i++)
		free(dropped[i]);
	free(dropped);
	return rc;
}

/* ------------------------------------------------------------------ cache */

static struct cache *cache_new(const char *spec, const struct ignorelist *l, struct diag *d)
{
	char *name = NULL, err[300] = "";
	struct kvlist kv = KVLIST_INIT;
	char *wrapped = xasprintf("cache[%s]", spec);
	struct cache *c = NULL;
	double maxtime = 300;
	long maxcount = 100;

	if (config_spec_parse(wrapped, &name, &kv, err, sizeof err) < 0) {
		diag_error(d, l->cfgfile, l->o.cfgline, "ignorecache: %s", err);
		goto out;
	}
	const char *key = kvlist_get(&kv, "key");
	const char *mc = kvlist_get(&kv, "max-count");
	const char *mt = kvlist_get(&kv, "max-time");
	if (kv.n == 0) /* fail2ban: an empty option set means no cache */
		goto out;
	if (!key || !*key) {
		diag_error(d, l->cfgfile, l->o.cfgline,
			   "ignorecache: expected key=\"<ip>\" (and optional max-count=N, max-time=T)");
		goto out;
	}
	if (mc) {
		char *e;
		errno = 0;
		maxcount = strtol(mc, &e, 10);
		if (errno || e == mc || *e || maxcount < 1 || maxcount > (long)CACHE_MAX_COUNT) {
			diag_error(d, l->cfgfile, l->o.cfgline,
				   "ignorecache: expected max-count between 1 and %u, got '%s'",
				   CACHE_MAX_COUNT, mc);
			goto out;
		}
	}
	if (mt && (jail_parse_time(mt, &maxtime) < 0 || maxtime < 0)) {
		diag_error(d, l->cfgfile, l->o.cfgline,
			   "ignorecache: expected max-time like 300 or 5m, got '%s'", mt);
		goto out;
	}
	c = xcalloc(1, sizeof *c);
	c->keytmpl = xstrdup(key);
	c->max = (size_t)maxcount;
	c->maxtime = maxtime;
	c->nbuckets = 16;
	while (c->nbuckets < 2 * c->max)
		c->nbuckets <<= 1;
	c->buckets = xcalloc(c->nbuckets, sizeof *c->buckets);
out:
	free(wrapped);
	free(name);
	kvlist_free(&kv);
	return c;
}

static void cache_free(struct cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->ne; i++)
		free(c->e[i].key);
	free(c->e);
	free(c->buckets);
	free(c->keytmpl);
	free(c);
}

static void cache_remove(struct cache *c, uint32_t idx)
{
	struct centry *e = &c->e[idx - 1];
	uint32_t *pp = &c->buckets[hash_str(HASH_SEED, e->key) & (c->nbuckets - 1)];
	while (*pp && *pp != idx)
		pp = &c->e[*pp - 1].hnext;
	if (*pp)
		*pp = e->hnext;
	if (e->prev)
		c->e[e->prev - 1].next = e->next;
	else
		c->oldest = e->next;
	if (e->next)
		c->e[e->next - 1].prev = e->prev;
	else
		c->newest = e->prev;
	free(e->key);
	e->key = NULL;
	e->hnext = c->freelist;
	c->freelist = idx;
	c->count--;
}

/* Returns the verdict (0/1) or -1 on a miss; an expired entry is dropped. */
static int cache_get(struct cache *c, const char *key, double now)
{
	uint32_t i = c->buckets[hash_str(HASH_SEED, key) & (c->nbuckets - 1)];
	while (i) {
		struct centry *e = &c->e[i - 1];
		if (strcmp(e->key, key) == 0) {
			if (e->expires > now)
				return e->verdict;
			cache_remove(c, i);
			return -1;
		}
		i = e->hnext;
	}
	return -1;
}

static void cache_set(struct cache *c, const char *key, int verdict, double now)
{
	uint32_t i = c->buckets[hash_str(HASH_SEED, key) & (c->nbuckets - 1)];
	for (; i; i = c->e[i - 1].hnext)
		if (strcmp(c->e[i - 1].key, key) == 0) {
			c->e[i - 1].verdict = verdict;
			c->e[i - 1].expires = now + c->maxtime;
			return;
		}
	/* Full: drop expired entries from the old end, then the oldest live one
	 * if that did not make room (fail2ban's FIFO). */
	while (c->count >= c->max && c->oldest) {
		int live = c->e[c->oldest - 1].expires > now;
		cache_remove(c, c->oldest);
		if (live)
			break;
	}
	uint32_t idx;
	if (c->freelist) {
		idx = c->freelist;
		c->freelist = c->e[idx - 1].hnext;
	} else {
		c->e = xgrow(c->e, &c->ecap, c->ne, sizeof *c->e);
		idx = (uint32_t)++c->ne;
	}
	struct centry *e = &c->e[idx - 1];
	uint32_t *b = &c->buckets[hash_str(HASH_SEED, key) & (c->nbuckets - 1)];
	e->key = xstrdup(key);
	e->verdict = verdict;
	e->expires = now + c->maxtime;
	e->hnext = *b;
	*b = idx;
	e->prev = c->newest;
	e->next = 0;
	if (c->newest)
		c->e[c->newest - 1].next = idx;
	else
		c->oldest = idx;
	c->newest = idx;
	c->count++;
}

/* ------------------------------------------------------------ public: list */

void ignore_opts_init(struct ignore_opts *o)
{
	memset(o, 0, sizeof *o);
	o->ignoreself = 1;
	o->command_timeout = 60;
	o->file_check_interval = 10;
}

struct ignorelist *ignore_new(const char *ignoreip, const struct ignore_opts *o, double now,
			      struct diag *d)
{
	struct ignorelist *l = xcalloc(1, sizeof *l);
	struct diag scratch = DIAG_INIT;
	if (!d)
		d = &scratch;
	if (o)
		l->o = *o;
	else
		ignore_opts_init(&l->o);
	l->cfgfile = o && o->cfgfile ? xstrdup(o->cfgfile) : NULL;
	l->o.cfgfile = l->cfgfile;
	l->o.ignorecommand = NULL;
	l->o.ignorecache = NULL;
	if (l->o.command_timeout <= 0)
		l->o.command_timeout = 60;
	if (l->o.file_check_interval < 0)
		l->o.file_check_interval = 0;
	if (o && o->ignorecommand && *o->ignorecommand)
		l->command = xstrdup(o->ignorecommand);
	if (o && o->ignorecache && *o->ignorecache)
		l->cache = cache_new(o->ignorecache, l, d);
	add_entries(l, ignoreip, now, d);
	if (l->o.ignoreself)
		load_self(l, d);
	rebuild(l);
	l->next_file_check = now + l->o.file_check_interval;
	diag_clear(&scratch);
	return l;
}

struct ignorelist *ignore_free(struct ignorelist *l)
{
	if (!l)
		return NULL;
	for (size_t i = 0; i < l->nsrcs; i++)
		src_free(&l->srcs[i]);
	free(l->srcs);
	free(l->texts);
	index_clear(&l->list);
	index_clear(&l->self);
	free(l->selfaddrs);
	free(l->command);
	cache_free(l->cache);
	free(l->cfgfile);
	free(l);
	return NULL;
}

int ignore_add(struct ignorelist *l, const char *entries, double now, struct diag *d)
{
	struct diag scratch = DIAG_INIT;
	int rc = add_entries(l, entries, now, d ? d : &scratch);
	rebuild(l);
	diag_clear(&scratch);
	return rc;
}

int ignore_del(struct ignorelist *l, const char *entry)
{
	for (size_t i = 0; i < l->nsrcs; i++)
		if (strcmp(l->srcs[i].text, entry) == 0) {
			src_free(&l->srcs[i]);
			memmove(&l->srcs[i], &l->srcs[i + 1], (l->nsrcs - i - 1) * sizeof *l->srcs);
			l->nsrcs--;
			rebuild(l);
			return 1;
		}
	return 0;
}

const char *const *ignore_entries(const struct ignorelist *l, size_t *n)
{
	if (n)
		*n = l->nsrcs;
	return l->texts;
}

size_t ignore_size(const struct ignorelist *l)
{
	return l->list.total + l->self.total;
}

int ignore_maybe_reload(struct ignorelist *l, double now, struct diag *d)
{
	int changed = 0, failed = 0;
	if (now < l->next_file_check)
		return 0;
	l->next_file_check = now + l->o.file_check_interval;
	for (size_t i = 0; i < l->nsrcs; i++) {
		if (l->srcs[i].kind != SRC_FILE)
			continue;
		int rc = file_load(l, &l->srcs[i], 0, d);
		if (rc > 0)
			changed = 1;
		else if (rc < 0)
			failed = 1;
	}
	if (changed)
		rebuild(l);
	return failed ? -1 : changed;
}

int ignore_refresh(struct ignorelist *l, double now, struct diag *d)
{
	int rc = 0;
	for (size_t i = 0; i < l->nsrcs; i++) {
		struct src *s = &l->srcs[i];
		if (s->kind == SRC_FILE) {
			if (file_load(l, s, 1, d) < 0)
				rc = -1;
		}
		/* a freshly read file resolved its new names already; resolve all
		 * again anyway: that is what a refresh is for */
		if (src_resolve(l, s, d) < 0)
			rc = -1;
	}
	if (l->o.ignoreself && load_self(l, d) < 0)
		rc = -1;
	rebuild(l);
	l->next_file_check = now + l->o.file_check_interval;
	return rc;
}

/* ------------------------------------------------------------------- self */

static void push_addr(struct addr **v, size_t *n, size_t *cap, const struct addr *a)
{
	for (size_t i = 0; i < *n; i++)
		if (addr_equal(&(*v)[i], a))
			return;
	*v = xgrow(*v, cap, *n, sizeof **v);
	(*v)[(*n)++] = *a;
}

int ignore_self_addrs(ignore_resolve_fn resolve, void *ctx, struct addr **out, char *err,
		      size_t errlen)
{
	struct ifaddrs *ifa = NULL;
	struct addr *v = NULL;
	size_t n = 0, cap = 0;
	*out = NULL;
	if (getifaddrs(&ifa) < 0) {
		snprintf(err, errlen, "getifaddrs: %s", strerror(errno));
		return -1;
	}
	for (struct ifaddrs *p = ifa; p; p = p->ifa_next) {
		char buf[INET6_ADDRSTRLEN];
		const void *src;
		if (!p->ifa_addr)
			continue;
		if (p->ifa_addr->sa_family == AF_INET)
			src = &((struct sockaddr_in *)(void *)p->ifa_addr)->sin_addr;
		else if (p->ifa_addr->sa_family == AF_INET6)
			src = &((struct sockaddr_in6 *)(void *)p->ifa_addr)->sin6_addr;
		else
			continue;
		struct addr a;
		if (inet_ntop(p->ifa_addr->sa_family, src, buf, sizeof buf) &&
		    addr_parse(buf, strlen(buf), &a) == 0)
			push_addr(&v, &n, &cap, &a);
	}
	freeifaddrs(ifa);
	/* fail2ban takes the addresses its own host names resolve to; a NAT'd
	 * host may list its public address only there (/etc/hosts). */
	char host[256];
	if (resolve && gethostname(host, sizeof host) == 0) {
		host[sizeof host - 1] = '\0';
		struct addr buf[MAX_RESOLVED];
		char e2[128];
		int k = host[0] ? resolve(ctx, host, buf, MAX_RESOLVED, e2, sizeof e2) : 0;
		for (int i = 0; i < k && i < MAX_RESOLVED; i++)
			push_addr(&v, &n, &cap, &buf[i]);
	}
	*out = v;
	return (int)n;
}

/* ------------------------------------------------------------------ tags */

static int is_meta(char c)
{
	return strchr("\\#&;`|*?~<>^()[]{}$'\"\n\r", c) != NULL && c != '\0';
}

static int has_meta(const char *s)
{
	for (; *s; s++)
		if (is_meta(*s))
			return 1;
	return 0;
}

/* Exact-case lookup; keys starting with "F-" only for F- tags. */
static const char *value_of(const struct kvlist *v, const char *key)
{
	if (!v)
		return NULL;
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->v[i].key, key) == 0)
			return v->v[i].value;
	return NULL;
}

static void add_value(struct strbuf *out, struct kvlist *vars, const char *varname,
		      const char *value)
{
	if (!vars || !has_meta(value)) {
		strbuf_adds(out, value);
		return;
	}
	struct strbuf name = STRBUF_INIT;
	strbuf_adds(&name, "f2bV_");
	for (const char *p = varname; *p; p++) {
		char c = *p;
		int word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			   c == '_';
		strbuf_addc(&name, word ? c : '_');
	}
	kvlist_set(vars, name.s, value);
	strbuf_addc(out, '$');
	strbuf_add(out, name.s, name.len);
	strbuf_free(&name);
}

static int ftag_name(const char *tag, size_t n)
{
	if (n < 3 || tag[0] != 'F' || tag[1] != '-')
		return 0;
	for (size_t i = 2; i < n; i++) {
		char c = tag[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

char *ignore_subst(const char *tmpl, const struct kvlist *values, struct kvlist *vars)
{
	struct strbuf out = STRBUF_INIT;
	const char *p = tmpl ? tmpl : "";
	while (*p) {
		const char *lt = strchr(p, '<');
		if (!lt) {
			strbuf_adds(&out, p);
			break;
		}
		strbuf_add(&out, p, (size_t)(lt - p));
		size_t n = strcspn(lt + 1, " <>");
		if (lt[1 + n] != '>' || n == 0) {
			strbuf_addc(&out, '<');
			p = lt + 1;
			continue;
		}
		char *tag = xstrndup(lt + 1, n);
		if (ftag_name(tag, n)) {
			/* <F-NAME>: the ticket's group "name" (fail2ban maps id and
			 * port to fid and fport); missing groups become "" */
			struct strbuf key = STRBUF_INIT, var = STRBUF_INIT;
			strbuf_adds(&key, "F-");
			char *lower = xstrdup(tag + 2);
			for (char *q = lower; *q; q++)
				if (*q >= 'A' && *q <= 'Z')
					*q = (char)(*q - 'A' + 'a');
			const char *mapped = strcmp(lower, "id") == 0     ? "fid"
					     : strcmp(lower, "port") == 0 ? "fport"
									  : lower;
			strbuf_adds(&key, mapped);
			strbuf_adds(&var, "F_");
			strbuf_adds(&var, mapped);
			const char *v = value_of(values, key.s);
			add_value(&out, vars, var.s, v ? v : "");
			free(lower);
			strbuf_free(&key);
			strbuf_free(&var);
		} else {
			const char *v = strncmp(tag, "F-", 2) == 0 ? NULL : value_of(values, tag);
			if (v)
				add_value(&out, vars, tag, v);
			else if (strcmp(tag, "br") == 0)
				strbuf_addc(&out, '\n');
			else if (strcmp(tag, "sp") == 0)
				strbuf_addc(&out, ' ');
			else
				strbuf_add(&out, lt, n + 2);
		}
		free(tag);
		p = lt + n + 2;
	}
	return strbuf_detach(&out);
}

/* ---------------------------------------------------------------- command */

/* 1 when the child has exited (not reaped), 0 when running. */
static int exited(pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD;
	return si.si_pid == pid;
}

static void drain(int fd, struct ignore_cmd_result *r, size_t *used)
{
	char buf[4096];
	for (;;) {
		ssize_t k = read(fd, buf, sizeof buf);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		size_t room = sizeof r->output - 1 - *used;
		size_t take = (size_t)k < room ? (size_t)k : room;
		memcpy(r->output + *used, buf, take);
		*used += take;
		r->output[*used] = '\0';
	}
}

/* Waits until the child exits or the deadline passes, reading its output;
 * closes *outfd (and sets it to -1) once every writer is gone. Returns 1 when
 * the child exited, 0 on timeout. */
static int wait_child(pid_t pid, int pidfd, int *outfd, double deadline,
		      struct ignore_cmd_result *r, size_t *used)
{
	for (;;) {
		if (exited(pid))
			return 1;
		double left = deadline - clocks_mono();
		if (left <= 0)
			return 0;
		struct pollfd pf[2];
		nfds_t np = 0;
		if (*outfd >= 0)
			pf[np++] = (struct pollfd){.fd = *outfd, .events = POLLIN};
		if (pidfd >= 0)
			pf[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		/* without a pidfd nothing signals the exit: look again every 5 ms */
		int ms = (int)(left * 1000) + 1;
		if (pidfd < 0 && ms > 5)
			ms = 5;
		int rc = poll(pf, np, ms);
		if (rc < 0 && errno != EINTR)
			return exited(pid);
		if (*outfd >= 0 && rc > 0 && pf[0].revents) {
			drain(*outfd, r, used);
			if (pf[0].revents & (POLLHUP | POLLERR) && !(pf[0].revents & POLLIN)) {
				close(*outfd);
				*outfd = -1;
			}
		}
	}
}

/* An environment with the f2bV_ variables replacing any of the same name. */
static char **build_env(const struct kvlist *vars)
{
	size_t n = 0, k = 0;
	while (environ && environ[n])
		n++;
	char **env = xmalloc((n + vars->n + 1) * sizeof *env);
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		int shadowed = 0;
		for (size_t j = 0; j < vars->n && !shadowed; j++)
			shadowed = strlen(vars->v[j].key) == nl &&
				   strncmp(vars->v[j].key, environ[i], nl) == 0;
		if (!shadowed)
			env[k++] = xstrdup(environ[i]);
	}
	for (size_t j = 0; j < vars->n; j++)
		env[k++] = xasprintf("%s=%s", vars->v[j].key, vars->v[j].value);
	env[k] = NULL;
	return env;
}

static void free_env(char **env)
{
	for (size_t i = 0; env[i]; i++)
		free(env[i]);
	free(env);
}

int ignore_command_run(const char *tmpl, const struct kvlist *values, double timeout,
		       struct ignore_cmd_result *res)
{
	struct ignore_cmd_result scratch;
	struct ignore_cmd_result *r = res ? res : &scratch;
	struct kvlist vars = KVLIST_INIT;
	size_t used = 0;
	memset(r, 0, sizeof *r);
	r->status = IGNORE_CMD_ERROR;

	char *script = ignore_subst(tmpl, values, &vars);
	char **env = build_env(&vars);
	int pfd[2] = {-1, -1}, devnull = -1;
	double t0 = clocks_mono();
	if (pipe2(pfd, O_CLOEXEC) < 0 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(r->output, sizeof r->output, "cannot start /bin/sh: %s", strerror(errno));
		goto out;
	}
	char *argv[] = {"sh", "-c", script, NULL};
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(r->output, sizeof r->output, "cannot fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* async-signal-safe calls only from here on */
		sigset_t all;
		struct sigaction dfl;
		setpgid(0, 0);
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		for (int s = 1; s < 32; s++)
			if (s != SIGKILL && s != SIGSTOP)
				sigaction(s, &dfl, NULL);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		dup2(devnull, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execve("/bin/sh", argv, env);
		_exit(127);
	}
	setpgid(pid, pid); /* also here: no window where a kill misses the group */
	close(pfd[1]);
	pfd[1] = -1;
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	int pidfd = -1;
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	int done = wait_child(pid, pidfd, &pfd[0], t0 + timeout, r, &used);
	if (!done) {
		kill(-pid, SIGTERM);
		double grace = clocks_mono() + 0.1;
		while (!exited(pid) && clocks_mono() < grace) {
			struct timespec ts = {0, 2000000};
			nanosleep(&ts, NULL);
		}
		kill(-pid, SIGKILL); /* the whole tree, as fail2ban does */
	}
	int st = 0, werr = 0;
	pid_t w;
	while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
		;
	if (w < 0)
		werr = errno;
	if (pidfd >= 0)
		close(pidfd);
	if (pfd[0] >= 0)
		drain(pfd[0], r, &used);
	r->elapsed = clocks_mono() - t0;
	if (!done) {
		r->status = IGNORE_CMD_TIMEOUT;
		r->code = 0;
	} else if (w < 0) {
		/* someone else reaped it (a SIGCHLD handler that waits for any
		 * child): without a status the answer must be "not ignored" */
		r->status = IGNORE_CMD_ERROR;
		snprintf(r->output, sizeof r->output, "lost the exit status: %s", strerror(werr));
	} else if (WIFEXITED(st)) {
		r->status = IGNORE_CMD_EXITED;
		r->code = WEXITSTATUS(st);
	} else {
		r->status = IGNORE_CMD_SIGNALED;
		r->code = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
	}
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (devnull >= 0)
		close(devnull);
	free_env(env);
	free(script);
	kvlist_free(&vars);
	return r->status == IGNORE_CMD_EXITED && r->code == 0;
}

/* ------------------------------------------------------------------ check */

const char *ignore_reason_name(enum ignore_reason r)
{
	switch (r) {
	case IGNORE_LOOPBACK:
		return "loopback";
	case IGNORE_SELF:
		return "ignoreself";
	case IGNORE_LIST:
		return "ignoreip";
	case IGNORE_COMMAND:
		return "ignorecommand";
	default:
		return "";
	}
}

static void detail(struct ignore_info *info, const char *fmt, const char *s)
{
	if (info)
		snprintf(info->detail, sizeof info->detail, fmt, s);
}

int ignore_has_command(const struct ignorelist *l)
{
	return l && l->command;
}

enum ignore_reason ignore_check(struct ignorelist *l, const char *id, const struct kvlist *tags,
				double now, struct ignore_info *info)
{
	struct addr a;
	int isaddr;
	if (info)
		memset(info, 0, sizeof *info);
	if (!id)
		return IGNORE_NONE;
	isaddr = addr_parse_cidr(id, strlen(id), &a) == 0;
	if (isaddr && addr_is_loopback(&a)) {
		detail(info, "%s", "127.0.0.0/8, ::1");
		return IGNORE_LOOPBACK;
	}
	if (!l)
		return IGNORE_NONE;
	if (isaddr) {
		if (l->o.ignoreself && index_find_addr(&l->self, &a) >= 0) {
			detail(info, "%s", "own address");
			return IGNORE_SELF;
		}
		long s = index_find_addr(&l->list, &a);
		if (s >= 0) {
			detail(info, "%s", l->srcs[s].text);
			return IGNORE_LIST;
		}
	} else {
		long s = index_find_lit(&l->list, id);
		if (s >= 0) {
			detail(info, "%s", l->srcs[s].text);
			return IGNORE_LIST;
		}
	}
	if (!l->command)
		return IGNORE_NONE;

	struct kvlist vals = KVLIST_INIT;
	if (tags)
		kvlist_copy(&vals, tags);
	if (!value_of(&vals, "ip"))
		kvlist_set(&vals, "ip", id);
	char *key = l->cache ? ignore_subst(l->cache->keytmpl, &vals, NULL) : NULL;
	int verdict = key ? cache_get(l->cache, key, now) : -1;
	if (verdict >= 0) {
		if (info) {
			info->cached = 1;
			snprintf(info->detail, sizeof info->detail, "cached verdict for %s", key);
		}
	} else {
		struct ignore_cmd_result r;
		verdict = ignore_command_run(l->command, &vals, l->o.command_timeout, &r);
		if (info) {
			info->command_failed = r.status != IGNORE_CMD_EXITED ||
					       (r.code != 0 && r.code != 1);
			switch (r.status) {
			case IGNORE_CMD_EXITED:
				snprintf(info->detail, sizeof info->detail, "exit status %d%s%.200s",
					 r.code, r.output[0] ? ": " : "", r.output);
				break;
			case IGNORE_CMD_SIGNALED:
				snprintf(info->detail, sizeof info->detail, "killed by signal %d",
					 r.code);
				break;
			case IGNORE_CMD_TIMEOUT:
				snprintf(info->detail, sizeof info->detail,
					 "timed out after %g s (process group killed)",
					 l->o.command_timeout);
				break;
			case IGNORE_CMD_ERROR:
				snprintf(info->detail, sizeof info->detail, "%.250s", r.output);
				break;
			}
		}
		if (key)
			cache_set(l->cache, key, verdict, now);
	}
	free(key);
	kvlist_free(&vals);
	return verdict ? IGNORE_COMMAND : IGNORE_NONE;
}

struct ignorelist *ignore_new_from_opts(const struct kvlist *opts, const char *ignoreip,
					const char *file, unsigned line, double now, struct diag *d)
{
	struct ignore_opts o;
	ignore_opts_init(&o);
	o.ignoreself = kvlist_get_bool(opts, "ignoreself", 1);
	o.ignorecommand = kvlist_get(opts, "ignorecommand");
	o.ignorecache = kvlist_get(opts, "ignorecache");
	o.cfgfile = file;
	o.cfgline = line;
	if (!ignoreip)
		ignoreip = kvlist_get(opts, "ignoreip");
	return ignore_new(ignoreip, &o, now, d);
}
