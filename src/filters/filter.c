/*
 * filter - compiled fail2ban filter and its line pipeline (see filter.h).
 *
 * PIPELINE (fail2ban 1.0.2 semantics, which users' filters rely on):
 *   date detection cuts the timestamp out (regexes see pre + post), the line
 *   joins a buffer of `maxlines` lines, `prefregex` must match (its
 *   <F-CONTENT> replaces the text the failregexes see), failregexes run in
 *   order (stopping at the first unless check_all), `ignoreregex` vetoes,
 *   groups of prefregex and failregex merge, and <F-MLFID> sessions merge
 *   lines of one connection. The failure id is the first of fid, ip4, ip6,
 *   dns; addresses are normalised.
 *
 * Regexes are Python `re` syntax: tags are expanded (hosttags.c), the result
 * is translated (pyre.c) and compiled once with PCRE2 JIT in UTF + UCP mode.
 * Lines with invalid UTF-8 are repaired with U+FFFD first, as fail2ban's
 * decoder does, so every match can skip PCRE2's own UTF check.
 *
 * SECURITY: every match runs under a match limit and a depth limit; a line that
 * hits a limit counts in stats.limit_hits and is treated as not matching, so
 * a pathological line costs milliseconds, never minutes.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "filters/filter.h"

#include <pcre2.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/clocks.h"
#include "core/diag.h"
#include "core/hash.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "filters/hosttags.h"
#include "filters/pyre.h"
#include "filters/reqlit.h"
#include "net/addr.h"

#define MATCH_LIMIT 200000u
#define DEPTH_LIMIT 5000u
#define MLFID_MAX 100          /* sessions remembered, oldest dropped first */
#define MLFID_TTL 300.0        /* seconds (wall clock, like fail2ban) */
#define LAST_DATE_SLACK 60.0   /* a line without date reuses the last one this long */

/* ---------------------------------------------------------------- regexes */

struct rxname {
	char *name;
	const char *key; /* name as a record key (see keytab) */
	uint32_t num;
	int dup; /* same name as the entry before */
};

struct rxpair {
	char *group; /* e.g. alt_user_1 */
	char *to;    /* e.g. user */
	const char *tokey;
};

/* Record keys the engine itself asks for. A group name (or ALT/TUPLE
 * target) with one of these texts is stored as the pointer into this table,
 * so looking one of them up compares pointers only (see fdict_find). */
enum {
	K_FID, K_IP4, K_IP6, K_DNS, K_MLFID, K_CIDR, K_IP, K_USER, K_NOFAIL,
	K_MLFGAINED, K_MLFFORGET, K_MLFPENDING, K_CONTENT, NKEYS
};
static const char keytab[NKEYS][16] = {
	"fid", "ip4", "ip6", "dns", "mlfid", "cidr", "ip", "user", "nofail",
	"mlfgained", "mlfforget", "mlfpending", "content",
};
#define KEY(k) (keytab[k])

static const char *key_intern(const char *name)
{
	for (int k = 0; k < NKEYS; k++)
		if (strcmp(name, keytab[k]) == 0)
			return keytab[k];
	return name;
}

/* The bit of an interned key, or 0 for any other. */
static unsigned key_bit(const char *k)
{
	uintptr_t p = (uintptr_t)k, lo = (uintptr_t)keytab[0], hi = (uintptr_t)keytab[NKEYS];
	return p >= lo && p < hi ? 1u << ((p - lo) / sizeof keytab[0]) : 0;
}

struct rx {
	pcre2_code *code;
	char *text;               /* after tag expansion, as fail2ban shows it */
	struct rxname *names;
	size_t nnames;
	struct rxpair *alt, *tup; /* F-ALT_* and F-TUPLE_* groups, sorted by group */
	size_t nalt, ntup;
	unsigned nskip;           /* <SKIPLINES> count */
	int has_id;               /* has fid/ip4/ip6/dns/mlfid */
	int jit;                  /* code is JIT-compiled (-1: not tried yet) */
	pcre2_code *acode;        /* ASCII variant (no UCP) for pure-ASCII text, or NULL */
	int ajit;
	int content;              /* group number of F-CONTENT, or -1 */
	uint32_t ngroups;         /* capture groups */
	pcre2_match_data *md;     /* sized for this regex: JIT cost grows with the ovector */
	char *pat;                /* the PCRE2 pattern (failregexes: for the combined prefilter) */
	uint32_t pflags;          /* compile flags implied by the Python pattern */
	int in_any;               /* part of the filter's combined prefilter */
	int has_first;            /* anchored at the start: first[] lists the possible first bytes */
	uint8_t first[32];
};

/* ---------------------------------------------------------- buffered lines */

/* A log line split like fail2ban's tuple: s[0:ds] + s[de:len] is what the
 * regexes see, s[ds:de] is the cut-out date text. Shared by reference between
 * the line buffer and match bookkeeping. */
struct tline {
	int refs;
	int ascii;   /* every byte < 0x80 */
	char *s;
	size_t len, cap;
	size_t ds, de;
};

struct tlist {
	struct tline **v;
	size_t n, cap;
};

/* ------------------------------------------------------- failure records */

/* Bump allocation for the strings of failure records and of results: a
 * record or a result is reset as a whole, so the hot path makes no
 * malloc/free pair per group value, matched line or hit. Chunks never move,
 * so a string handed out stays put until the next reset. */
struct achunk {
	struct achunk *next;
	size_t cap, used;
	char data[]; /* 8-byte aligned: the header is three words */
};

struct filter_arena {
	struct achunk *head;
	size_t used; /* bytes handed out since the last reset */
};

#define ARENA_KEEP ((size_t)1 << 20) /* larger arenas are released on reset */

static __attribute__((noinline)) struct achunk *ar_grow(struct filter_arena *a, size_t n)
{
	struct achunk *c = a->head;
	size_t cap = c ? 2 * c->cap : 512;
	if (cap < n)
		cap = n;
	c = xmalloc(sizeof *c + cap);
	c->next = a->head;
	c->cap = cap;
	c->used = 0;
	a->head = c;
	return c;
}

static inline void *ar_alloc(struct filter_arena *a, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	struct achunk *c = a->head;
	if (!c || c->cap - c->used < n)
		c = ar_grow(a, n);
	void *p = c->data + c->used;
	c->used += n;
	a->used += n;
	return p;
}

static char *ar_strndup(struct filter_arena *a, const char *s, size_t n)
{
	char *p = ar_alloc(a, n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void ar_free(struct filter_arena *a)
{
	for (struct achunk *c = a->head, *nx; c; c = nx) {
		nx = c->next;
		free(c);
	}
	a->head = NULL;
	a->used = 0;
}

/* Forgets every string; the memory is kept (as one chunk) unless it is large. */
static void ar_reset(struct filter_arena *a)
{
	struct achunk *c = a->head;
	a->used = 0;
	if (!c)
		return;
	if (!c->next && c->cap <= ARENA_KEEP) {
		c->used = 0;
		return;
	}
	size_t total = 0;
	for (struct achunk *k = c; k; k = k->next)
		total += k->cap;
	ar_free(a);
	if (total <= ARENA_KEEP) {
		c = xmalloc(sizeof *c + total);
		c->next = NULL;
		c->cap = total;
		c->used = 0;
		a->head = c;
	}
}

/* Keys are never copied: they are group names owned by the compiled regexes
 * or string literals, both living as long as the filter. */
struct fent {
	const char *k;
	char *v; /* in the dict's arena; NULL = Python None */
};

/* A list of strings living in some dict's arena. */
struct strv {
	const char **v;
	size_t n, cap;
};

/* The per-failure dictionary fail2ban builds (groups plus bookkeeping). The
 * values and list strings live in ar; a dict is either a per-filter scratch
 * record (reset for every use) or a cached <F-MLFID> session (heap). */
struct fdict {
	struct fent *e;
	size_t n, cap;
	struct strv matches, nfmatches, users;
	struct filter_arena ar;
	size_t live;   /* arena bytes right after the last compaction */
	unsigned kset; /* bit k: key keytab[k] is present */
};

struct mlfid_ent {
	char *key;
	uint64_t hash;
	struct fdict *fail;
	double expires;
};

/* Result of one search, with the line bookkeeping fail2ban's Regex keeps. */
struct search {
	int matched;
	size_t start, end;           /* match span in the subject */
	struct tlist matched_lines;  /* getMatchedTupleLines() */
	struct tlist unmatched;      /* getUnmatchedTupleLines() */
};

struct filter {
	struct filter_def def;
	struct rx pref;
	int has_pref;
	struct rx *fail;
	size_t nfail;
	struct rx *ign;
	size_t nign;
	struct rx any;                /* all combinable failregexes as one alternation */
	int has_any;
	struct datedetect *dd;
	int journal;
	unsigned maxlines;
	int usedns_no;
	struct filter_opts opts;
	struct filter_stats st;

	pcre2_match_context *mctx;
	pcre2_jit_stack *jit;
	pcre2_match_data *md;

	struct tlist lbuf;            /* fail2ban's __lineBuffer */
	struct tline **pool;          /* free tlines for reuse */
	size_t npool, cappool;
	struct strbuf buf, cbuf, ibuf, clean, lasttext;
	int has_last;
	double last_date;

	/* per-line scratch, kept to avoid allocations on the hot path */
	struct tlist org;
	PCRE2_SIZE *pref_ov;          /* prefregex offsets of the current line */
	size_t pref_ovn;

	/* scratch failure records: the prefregex's groups, a failregex's, both
	 * merged, and a private copy of a session that ends */
	struct fdict dpre, dfail, dm, dcopy;
	struct search srch, stmp;     /* a failregex's and an ignoreregex's search */
	/* the last IPv6 id normalised without a prefix (the same address tends
	 * to come back line after line, and formatting it is costly) */
	char v6in[64], v6out[64];

	struct mlfid_ent mlfid[MLFID_MAX];
	size_t nmlfid;                /* entries in insertion order */
	int ign_flag;                 /* an ignoreregex matched on this line */
	int ascii;                    /* the buffer being matched is pure ASCII */
	char *date_key;               /* see filter_date_key() */
	/* Literals a line must contain to be worth matching: one of req_pre (the
	 * prefregex needs it) and one of req_fail (some failregex needs it). An
	 * empty set checks nothing; use_req 0 checks nothing at all. */
	struct reqlit req_pre, req_fail;
	int use_req;
	unsigned long req_seen[2], req_pass[2]; /* lines checked / passed: fail, pre */
	/* With at most 64 failregexes: per first byte of the text, the ones that
	 * can match it (bit i = failregex i), and those in the combined regex. */
	uint64_t *fmask;
	uint64_t anymask;
};

/* ================================================================ helpers */

static void strv_add(struct strv *s, const char *v)
{
	if (s->n == s->cap)
		s->v = xgrow(s->v, &s->cap, s->n, sizeof *s->v);
	s->v[s->n++] = v;
}

static void strv_push(struct filter_arena *a, struct strv *s, const char *v, size_t n)
{
	strv_add(s, ar_strndup(a, v, n));
}

static int strv_has(const struct strv *s, const char *v)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], v) == 0)
			return 1;
	return 0;
}

static struct fent *fdict_find(const struct fdict *d, const char *k)
{
	unsigned bit = key_bit(k);
	if (bit && !(d->kset & bit))
		return NULL;
	for (size_t i = 0; i < d->n; i++)
		if (d->e[i].k == k)
			return &d->e[i];
	if (bit)
		return NULL; /* every key with its text is this very pointer */
	for (size_t i = 0; i < d->n; i++)
		if (d->e[i].k[0] == k[0] && strcmp(d->e[i].k, k) == 0)
			return &d->e[i];
	return NULL;
}

static const char *fdict_get(const struct fdict *d, const char *k)
{
	const struct fent *e = fdict_find(d, k);
	return e ? e->v : NULL;
}

/* Python truthiness of a string value: set and non-empty. */
static int fdict_true(const struct fdict *d, const char *k)
{
	const char *v = fdict_get(d, k);
	return v && *v;
}

static inline void fdict_append(struct fdict *d, const char *k, char *v)
{
	if (d->n == d->cap)
		d->e = xgrow(d->e, &d->cap, d->n, sizeof *d->e);
	d->e[d->n].k = k;
	d->e[d->n].v = v;
	d->n++;
	d->kset |= key_bit(k);
}

/* Sets k to a copy of v[0:n] (v NULL = None). v may be one of d's own values:
 * the arena never moves them. */
static void fdict_setn(struct fdict *d, const char *k, const char *v, size_t n)
{
	char *nv = v ? ar_strndup(&d->ar, v, n) : NULL;
	struct fent *e = fdict_find(d, k);
	if (e)
		e->v = nv;
	else
		fdict_append(d, k, nv);
}

static void fdict_set(struct fdict *d, const char *k, const char *v)
{
	fdict_setn(d, k, v, v ? strlen(v) : 0);
}

/* Removes k; returns 1 when its value was truthy. */
static int fdict_pop_true(struct fdict *d, const char *k)
{
	struct fent *e = fdict_find(d, k);
	if (!e)
		return 0;
	int t = e->v && *e->v;
	d->kset &= ~key_bit(e->k);
	size_t i = (size_t)(e - d->e);
	memmove(&d->e[i], &d->e[i + 1], (d->n - i - 1) * sizeof *d->e);
	d->n--;
	return t;
}

/* Empties a scratch record, keeping its memory. */
static void fdict_reset(struct fdict *d)
{
	d->n = 0;
	d->kset = 0;
	d->matches.n = d->nfmatches.n = d->users.n = 0;
	ar_reset(&d->ar);
}

static void fdict_destroy(struct fdict *d)
{
	free(d->e);
	free(d->matches.v);
	free(d->nfmatches.v);
	free(d->users.v);
	ar_free(&d->ar);
	memset(d, 0, sizeof *d);
}

static void fdict_free(struct fdict *d)
{
	if (!d)
		return;
	fdict_destroy(d);
	free(d);
}

static void strv_copy(struct fdict *d, struct strv *dst, const struct strv *src)
{
	for (size_t i = 0; i < src->n; i++)
		strv_push(&d->ar, dst, src->v[i], strlen(src->v[i]));
}

/* d (reset first) becomes a copy of s with its own strings. */
static void fdict_copy_into(struct fdict *d, const struct fdict *s)
{
	fdict_reset(d);
	for (size_t i = 0; i < s->n; i++)
		fdict_append(d, s->e[i].k, s->e[i].v ? ar_strndup(&d->ar, s->e[i].v, strlen(s->e[i].v))
						     : NULL);
	strv_copy(d, &d->matches, &s->matches);
	strv_copy(d, &d->nfmatches, &s->nfmatches);
	strv_copy(d, &d->users, &s->users);
	d->live = d->ar.used;
}

static struct fdict *fdict_clone(const struct fdict *s)
{
	struct fdict *d = xcalloc(1, sizeof *d);
	fdict_copy_into(d, s);
	return d;
}

/* ============================================================ tline pool */

static struct tline *tl_new(struct filter *f)
{
	struct tline *t;
	if (f->npool)
		t = f->pool[--f->npool];
	else
		t = xcalloc(1, sizeof *t);
	t->refs = 1;
	t->ascii = 0;
	t->len = t->ds = t->de = 0;
	return t;
}

static void tl_set(struct tline *t, const char *a, size_t alen, const char *b, size_t blen,
		   const char *c, size_t clen)
{
	size_t need = alen + blen + clen + 1;
	if (need > t->cap) {
		t->s = xrealloc(t->s, need);
		t->cap = need;
	}
	memcpy(t->s, a, alen);
	memcpy(t->s + alen, b, blen);
	memcpy(t->s + alen + blen, c, clen);
	t->len = alen + blen + clen;
	t->s[t->len] = '\0';
	t->ds = alen;
	t->de = alen + blen;
}

static struct tline *tl_ref(struct tline *t)
{
	t->refs++;
	return t;
}

static void tl_unref(struct filter *f, struct tline *t)
{
	if (--t->refs > 0)
		return;
	if (t->cap > 65536) { /* do not keep huge lines around */
		free(t->s);
		t->s = NULL;
		t->cap = 0;
	}
	f->pool = xgrow(f->pool, &f->cappool, f->npool, sizeof *f->pool);
	f->pool[f->npool++] = t;
}

static void tlist_push(struct tlist *l, struct tline *t)
{
	l->v = xgrow(l->v, &l->cap, l->n, sizeof *l->v);
	l->v[l->n++] = t;
}

static void tlist_clear(struct filter *f, struct tlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		tl_unref(f, l->v[i]);
	l->n = 0;
}

static void tlist_free(struct filter *f, struct tlist *l)
{
	tlist_clear(f, l);
	free(l->v);
	l->v = NULL;
	l->cap = 0;
}

/* Copies refs of src[from:to] to the end of dst. */
static void tlist_extend(struct tlist *dst, struct tline **src, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		tlist_push(dst, tl_ref(src[i]));
}

/* Makes room for n bytes plus the NUL in b (whose text may be dropped). */
static char *sb_room(struct strbuf *b, size_t n)
{
	if (n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < n + 1)
			cap *= 2;
		b->s = xrealloc(b->s, cap);
		b->cap = cap;
	}
	return b->s;
}

/* b = s[0:n] */
static void sb_set(struct strbuf *b, const char *s, size_t n)
{
	char *d = sb_room(b, n);
	memcpy(d, s, n);
	d[n] = '\0';
	b->len = n;
}

/* "\n".join(pre + post for each line) + "\n" */
static void build_buf(struct strbuf *b, struct tline **v, size_t n)
{
	size_t total = n ? n : 1;
	for (size_t i = 0; i < n; i++)
		total += v[i]->ds + (v[i]->len - v[i]->de);
	char *d = sb_room(b, total);
	for (size_t i = 0; i < n; i++) {
		if (i)
			*d++ = '\n';
		memcpy(d, v[i]->s, v[i]->ds);
		d += v[i]->ds;
		memcpy(d, v[i]->s + v[i]->de, v[i]->len - v[i]->de);
		d += v[i]->len - v[i]->de;
	}
	*d++ = '\n';
	*d = '\0';
	b->len = total;
}

static int tline_vis_eq(const struct tline *t, const char *s, size_t n)
{
	size_t vl = t->ds + (t->len - t->de);
	return vl == n && memcmp(t->s, s, t->ds) == 0 &&
	       memcmp(t->s + t->de, s + t->ds, t->len - t->de) == 0;
}

/* ============================================================ compiling */

static int cmp_pair(const void *a, const void *b)
{
	return strcmp(((const struct rxpair *)a)->group, ((const struct rxpair *)b)->group);
}

static const char *const id_groups[] = {"fid", "ip4", "ip6", "dns", "mlfid"};

static void rx_free(struct rx *r)
{
	pcre2_match_data_free(r->md);
	pcre2_code_free(r->acode);
	pcre2_code_free(r->code);
	free(r->pat);
	free(r->text);
	for (size_t i = 0; i < r->nnames; i++)
		free(r->names[i].name);
	free(r->names);
	for (size_t i = 0; i < r->nalt; i++) {
		free(r->alt[i].group);
		free(r->alt[i].to);
	}
	free(r->alt);
	for (size_t i = 0; i < r->ntup; i++) {
		free(r->tup[i].group);
		free(r->tup[i].to);
	}
	free(r->tup);
	memset(r, 0, sizeof *r);
}

static void rx_first_bytes(struct rx *r, int multiline);

/* Compiles the ASCII variant of r (same pattern without PCRE2_UCP) when r uses
 * Unicode classes; the JIT falls back to the interpreter when unavailable. */
static void rx_add_ascii(struct rx *r, uint32_t opts)
{
	r->jit = -1;
	if (!(opts & PCRE2_UCP)) {
		r->jit = pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE) == 0;
		return;
	}
	/* A pattern that is ASCII itself can run in byte mode on ASCII text, which
	 * is faster still than UTF mode; one with other characters keeps UTF. */
	uint32_t aopts = opts & ~(uint32_t)PCRE2_UCP;
	const unsigned char *q = (const unsigned char *)r->pat;
	while (*q && *q < 0x80)
		q++;
	if (!*q)
		aopts &= ~(uint32_t)PCRE2_UTF;
	int ec;
	PCRE2_SIZE eo;
	r->acode = pcre2_compile((PCRE2_SPTR)r->pat, PCRE2_ZERO_TERMINATED, aopts, &ec, &eo, NULL);
	if (!r->acode && (aopts & PCRE2_UTF) == 0) /* e.g. \x{100}: needs UTF */
		r->acode = pcre2_compile((PCRE2_SPTR)r->pat, PCRE2_ZERO_TERMINATED,
					 aopts | PCRE2_UTF, &ec, &eo, NULL);
	if (r->acode)
		r->ajit = pcre2_jit_compile(r->acode, PCRE2_JIT_COMPLETE) == 0;
}

/* Maps "alt_user_1" -> "user" and "tuple_id" -> "fid" (fail2ban's renames). */
static char *complex_target(const char *name, size_t prelen)
{
	const char *s = name + prelen;
	size_t n = strlen(s);
	/* strip a trailing _<digits> */
	size_t k = n;
	while (k > 0 && s[k - 1] >= '0' && s[k - 1] <= '9')
		k--;
	if (k < n && k > 0 && s[k - 1] == '_')
		n = k - 1;
	char *t = xstrndup(s, n);
	if (strcmp(t, "id") == 0) {
		free(t);
		return xstrdup("fid");
	}
	if (strcmp(t, "port") == 0) {
		free(t);
		return xstrdup("fport");
	}
	return t;
}

static int rx_compile(struct rx *r, const char *src, const char *file, unsigned line,
		      int usedns_no, int multiline, struct diag *d)
{
	memset(r, 0, sizeof *r);
	r->text = hosttags_expand(src, usedns_no, &r->nskip);
	const char *t = r->text;
	while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r')
		t++;
	if (!*t) {
		diag_error(d, file, line, "cannot add an empty regex");
		return -1;
	}
	char err[256];
	uint32_t flags = 0;
	char *pat = pyre_translate(r->text, &flags, err, sizeof err);
	if (!pat) {
		diag_error(d, file, line, "regex cannot be used: %s: %s", err, src);
		return -1;
	}
	uint32_t opts = PCRE2_UTF | PCRE2_DUPNAMES | (flags & ~(uint32_t)PYRE_ASCII);
	if (!(flags & PYRE_ASCII))
		opts |= PCRE2_UCP;
	if (multiline)
		opts |= PCRE2_MULTILINE;
	int ec;
	PCRE2_SIZE eo;
	r->code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, opts, &ec, &eo, NULL);
	if (!r->code) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ec, msg, sizeof msg);
		diag_error(d, file, line, "invalid regex at offset %zu: %s: %s", (size_t)eo,
			   (const char *)msg, src);
		free(pat);
		return -1;
	}
	r->pat = pat;
	r->pflags = flags;
	/* Almost every log line is pure ASCII, where Unicode and ASCII classes (\\d \\w \\s
	 * \\b) agree and the ASCII variant runs markedly faster; the Unicode variant
	 * is JIT-compiled only when a line with other characters shows up. */
	rx_add_ascii(r, opts);
	rx_first_bytes(r, multiline);
	r->content = pcre2_substring_number_from_name(r->code, (PCRE2_SPTR) "content");
	if (r->content < 0)
		r->content = -1;
	pcre2_pattern_info(r->code, PCRE2_INFO_CAPTURECOUNT, &r->ngroups);
	r->md = pcre2_match_data_create_from_pattern(r->code, NULL);

	uint32_t count = 0, esize = 0;
	PCRE2_SPTR table;
	pcre2_pattern_info(r->code, PCRE2_INFO_NAMECOUNT, &count);
	pcre2_pattern_info(r->code, PCRE2_INFO_NAMEENTRYSIZE, &esize);
	pcre2_pattern_info(r->code, PCRE2_INFO_NAMETABLE, &table);
	r->names = xcalloc(count ? count : 1, sizeof *r->names);
	for (uint32_t i = 0; i < count; i++) {
		PCRE2_SPTR e = table + (size_t)i * esize;
		r->names[i].num = ((uint32_t)e[0] << 8) | e[1];
		r->names[i].name = xstrdup((const char *)e + 2);
		r->names[i].key = key_intern(r->names[i].name);
		r->names[i].dup = i > 0 && strcmp(r->names[i - 1].name, r->names[i].name) == 0;
		const char *nm = r->names[i].name;
		for (size_t k = 0; k < sizeof id_groups / sizeof id_groups[0]; k++)
			if (strcmp(nm, id_groups[k]) == 0)
				r->has_id = 1;
		if (strlen(nm) > 4 && strncmp(nm, "alt_", 4) == 0) {
			r->alt = xrealloc(r->alt, (r->nalt + 1) * sizeof *r->alt);
			r->alt[r->nalt].group = xstrdup(nm);
			r->alt[r->nalt].to = complex_target(nm, 4);
			r->alt[r->nalt].tokey = key_intern(r->alt[r->nalt].to);
			r->nalt++;
		} else if (strlen(nm) > 4 && strncmp(nm, "tuple_", 6) == 0) {
			r->tup = xrealloc(r->tup, (r->ntup + 1) * sizeof *r->tup);
			r->tup[r->ntup].group = xstrdup(nm);
			r->tup[r->ntup].to = complex_target(nm, 6);
			r->tup[r->ntup].tokey = key_intern(r->tup[r->ntup].to);
			r->ntup++;
		}
	}
	r->nnames = count;
	if (r->nalt)
		qsort(r->alt, r->nalt, sizeof *r->alt, cmp_pair);
	if (r->ntup)
		qsort(r->tup, r->ntup, sizeof *r->tup, cmp_pair);
	return 0;
}

/* ---- first-byte analysis ------------------------------------------------
 * Most failregexes are anchored (^) and begin with a literal word, so the
 * first byte of the text decides for most of them that they cannot match.
 * This reads just enough of the PCRE2 pattern to list the possible first
 * bytes; anything it does not understand means "any byte" (no filtering). */

#define FB_SET(s, c) ((s)[(uint8_t)(c) >> 3] |= (uint8_t)(1u << ((uint8_t)(c) & 7)))
#define FB_HAS(s, c) ((s)[(uint8_t)(c) >> 3] & (1u << ((uint8_t)(c) & 7)))

static void fb_add(uint8_t *set, unsigned char c, int caseless)
{
	FB_SET(set, c);
	if (caseless && c < 0x80) {
		if (c >= 'a' && c <= 'z')
			FB_SET(set, c - 32);
		else if (c >= 'A' && c <= 'Z')
			FB_SET(set, c + 32);
	}
}

/* True when the atom ending at p is optional (followed by ?, * or {0). */
static int fb_optional(const char *p)
{
	return *p == '?' || *p == '*' || (p[0] == '{' && (p[1] == '0' || p[1] == ','));
}

static const char *fb_alts(const char *p, uint8_t *set, int caseless, int *ok);

/* First bytes of the atom at p; returns the position after the atom or NULL. */
static const char *fb_atom(const char *p, uint8_t *set, int caseless, int *ok)
{
	unsigned char c = (unsigned char)*p;
	if (c == '(') {
		int ci = caseless;
		p++;
		if (*p == '?') {
			p++;
			if (*p == ':') {
				p++;
			} else if (*p == 'P' && p[1] == '<') {
				p = strchr(p, '>');
				if (!p)
					return NULL;
				p++;
			} else if (*p == '<' && p[1] != '=' && p[1] != '!') {
				p = strchr(p, '>');
				if (!p)
					return NULL;
				p++;
			} else {
				/* inline flags "(?i:" / "(?-i:"; anything else (lookaround...) is unknown */
				const char *q = p;
				int neg = 0;
				while (*q && *q != ':' && *q != ')') {
					if (*q == '-')
						neg = 1;
					else if (*q == 'i')
						ci = !neg;
					else if (*q != 's' && *q != 'm' && *q != 'x')
						return NULL;
					q++;
				}
				if (*q != ':')
					return NULL;
				p = q + 1;
			}
		}
		p = fb_alts(p, set, ci, ok);
		if (!p || *p != ')')
			return NULL;
		p++;
	} else if (c == '[') {
		p++;
		if (*p == '^')
			return NULL;
		int firstc = 1;
		while (*p && (*p != ']' || firstc)) {
			unsigned char a = (unsigned char)*p;
			if (a == '\\') {
				unsigned char e = (unsigned char)p[1];
				if (!e || isalnum(e))
					return NULL; /* \d, \w, \x.. classes: unknown */
				a = e;
				p++;
			} else if (a == '[' && p[1] == ':') {
				return NULL;
			}
			if (p[1] == '-' && p[2] && p[2] != ']') {
				unsigned char b = (unsigned char)p[2];
				if (b == '\\' || b < a || a >= 0x80 || b >= 0x80)
					return NULL;
				for (unsigned x = a; x <= b; x++)
					fb_add(set, (unsigned char)x, caseless);
				p += 3;
			} else {
				if (a >= 0x80)
					return NULL;
				fb_add(set, a, caseless);
				p++;
			}
			firstc = 0;
		}
		if (*p != ']')
			return NULL;
		p++;
	} else if (c == '\\') {
		unsigned char e = (unsigned char)p[1];
		if (!e || isalnum(e))
			return NULL;
		fb_add(set, e, caseless);
		p += 2;
	} else if (c == 0 || strchr(".^$|)*+?{", c) || (c >= 0x80 && caseless)) {
		return NULL;
	} else {
		fb_add(set, c, caseless);
		p++;
	}
	if (fb_optional(p))
		return NULL;
	return p;
}

/* Alternatives up to the closing ')' (or the end): first bytes of each. */
static const char *fb_alts(const char *p, uint8_t *set, int caseless, int *ok)
{
	for (;;) {
		const char *q = fb_atom(p, set, caseless, ok);
		if (!q) {
			*ok = 0;
			return NULL;
		}
		/* skip the rest of this alternative, honouring nesting and classes */
		int depth = 0;
		while (*q) {
			if (*q == '\\' && q[1]) {
				q += 2;
				continue;
			}
			if (*q == '[') {
				q++;
				if (*q == '^')
					q++;
				if (*q == ']')
					q++;
				while (*q && *q != ']') {
					if (*q == '\\' && q[1])
						q++;
					q++;
				}
				if (*q)
					q++;
				continue;
			}
			if (*q == '(')
				depth++;
			else if (*q == ')') {
				if (depth == 0)
					break;
				depth--;
			} else if (*q == '|' && depth == 0)
				break;
			q++;
		}
		if (*q == '|') {
			p = q + 1;
			continue;
		}
		return q;
	}
}

/* Fills r->first when every top-level alternative of r's pattern starts with
 * "^" (not in multi-line mode) followed by an atom with known first bytes. */
static void rx_first_bytes(struct rx *r, int multiline)
{
	if (!r->pat || multiline || (r->pflags & PCRE2_MULTILINE))
		return;
	uint8_t set[32] = {0};
	int ok = 1, caseless = (r->pflags & PCRE2_CASELESS) != 0;
	const char *p = r->pat;
	/* "^a|b": the second alternative is not anchored */
	for (const char *q = p; *q;) {
		if (*q == '\\' && q[1]) {
			q += 2;
		} else if (*q == '[') {
			q++;
			if (*q == '^')
				q++;
			if (*q == ']')
				q++;
			while (*q && *q != ']')
				q += (*q == '\\' && q[1]) ? 2 : 1;
			if (*q)
				q++;
		} else if (*q == '(') {
			int depth = 1;
			q++;
			while (*q && depth) {
				if (*q == '\\' && q[1])
					q++;
				else if (*q == '(')
					depth++;
				else if (*q == ')')
					depth--;
				q++;
			}
		} else if (*q == '|') {
			return;
		} else {
			q++;
		}
	}
	if (*p != '^') /* also covers an empty pattern */
		return;
	const char *q = fb_alts(p + 1, set, caseless, &ok);
	if (!ok || !q || *q != '\0')
		return;
	memcpy(r->first, set, sizeof set);
	r->has_first = 1;
}

/* A pattern whose meaning depends on group numbers cannot be put inside a
 * larger one: numbered backreferences, recursion, numbered conditions. */
static int uses_group_numbers(const char *p)
{
	for (; *p; p++) {
		if (p[0] == '\\' && p[1]) {
			if ((p[1] >= '1' && p[1] <= '9') || p[1] == 'g')
				return 1;
			p++;
		} else if (p[0] == '(' && p[1] == '?' &&
			   ((p[2] >= '0' && p[2] <= '9') || p[2] == '+' || p[2] == '-' || p[2] == 'R' ||
			    p[2] == '(' || p[2] == '&' || p[2] == '|')) {
			return 1;
		}
	}
	return 0;
}

/* Most lines match no failregex. Asking one alternation of all of them first
 * turns N JIT calls per line (each ~50 cycles even when it fails on the first
 * character) into one. Regexes whose possible first bytes are known stay out:
 * the first byte already rules most of them out without any call. Duplicate group names are allowed (PCRE2_DUPNAMES), so
 * the alternatives keep their own names; their matches are never read. A
 * regex with a numbered construct or an ASCII-only flag stays out and is
 * always tried on its own. */
static void build_any(struct filter *f)
{
	struct strbuf b = STRBUF_INIT;
	size_t n = 0;
	for (size_t i = 0; i < f->nfail; i++) {
		struct rx *r = &f->fail[i];
		uint32_t known = PCRE2_CASELESS | PCRE2_DOTALL | PCRE2_MULTILINE;
		/* regexes with known first bytes are dispatched on the first byte instead */
		if (!r->code || !r->pat || r->has_first || (r->pflags & ~known) ||
		    uses_group_numbers(r->pat))
			continue;
		strbuf_adds(&b, n ? "|(?:" : "(?:");
		if (r->pflags) {
			strbuf_adds(&b, "(?");
			if (r->pflags & PCRE2_CASELESS)
				strbuf_addc(&b, 'i');
			if (r->pflags & PCRE2_DOTALL)
				strbuf_addc(&b, 's');
			if (r->pflags & PCRE2_MULTILINE)
				strbuf_addc(&b, 'm');
			strbuf_addc(&b, ')');
		}
		strbuf_adds(&b, r->pat);
		strbuf_addc(&b, ')');
		r->in_any = 1;
		n++;
	}
	uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_DUPNAMES | PCRE2_NO_AUTO_CAPTURE;
	if (f->maxlines > 1)
		opts |= PCRE2_MULTILINE;
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *code = n >= 2 ? pcre2_compile((PCRE2_SPTR)b.s, b.len, opts, &ec, &eo, NULL) : NULL;
	if (!code) {
		strbuf_free(&b);
		for (size_t i = 0; i < f->nfail; i++)
			f->fail[i].in_any = 0;
		return;
	}
	memset(&f->any, 0, sizeof f->any);
	f->any.has_first = 1;
	for (size_t i = 0; i < f->nfail; i++) {
		if (!f->fail[i].in_any)
			continue;
		if (!f->fail[i].has_first)
			f->any.has_first = 0;
		for (size_t k = 0; k < sizeof f->any.first; k++)
			f->any.first[k] |= f->fail[i].first[k];
	}
	f->any.code = code;
	f->any.pat = strbuf_detach(&b);
	rx_add_ascii(&f->any, opts);
	f->any.md = pcre2_match_data_create(1, NULL);
	f->any.text = xstrdup("(combined failregexes)");
	f->has_any = 1;
}

/* Shortest literal worth a search: one or two bytes are in nearly every line. */
#define REQ_MIN_LEN 3
/* More failregex literals than this cost more to search than the regexes. */
#define REQ_MAX_FAIL 24

/* Computes the literal pre-check (see struct filter). It holds only for
 * one-line filters: with maxlines > 1 a match may take its words from earlier
 * lines in the buffer. When ignoreregexes are tried before the prefregex
 * (fail2ban does so when there are many failregexes) a line can be "ignored"
 * without any failregex, so no line may be skipped. */
static void build_req(struct filter *f)
{
	f->use_req = 0;
	if (f->maxlines != 1 || (f->nign && f->nign + 2 < f->nfail) || f->nfail == 0)
		return;
	if (f->has_pref && reqlit_from_pattern(f->pref.pat, f->pref.pflags, &f->req_pre) &&
	    reqlit_minlen(&f->req_pre) < REQ_MIN_LEN)
		reqlit_free(&f->req_pre);
	for (size_t i = 0; i < f->nfail; i++) {
		struct reqlit one;
		if (!reqlit_from_pattern(f->fail[i].pat, f->fail[i].pflags, &one) ||
		    reqlit_minlen(&one) < REQ_MIN_LEN) {
			reqlit_free(&one);
			reqlit_free(&f->req_fail);
			break;
		}
		reqlit_union(&f->req_fail, &one);
		reqlit_free(&one);
	}
	reqlit_minimize(&f->req_fail);
	if (f->req_fail.n > REQ_MAX_FAIL)
		reqlit_drop_extras(&f->req_fail); /* fewer, plainer members */
	if (f->req_fail.n > REQ_MAX_FAIL)
		reqlit_free(&f->req_fail);
	f->use_req = f->req_pre.n > 0 || f->req_fail.n > 0;
	reqlit_prepare(&f->req_pre);
	reqlit_prepare(&f->req_fail);
}

/* Does the text a + c (the line without its date) contain one of s? A literal
 * may also span the place where the date was cut out. */
static int req_has(const struct reqlit *s, const char *a, size_t alen, const char *c, size_t clen)
{
	return s->n == 0 || reqlit_any_split(s, a, alen, c, clen);
}

static void build_fmask(struct filter *f)
{
	if (f->nfail == 0 || f->nfail > 64)
		return;
	f->fmask = xcalloc(256, sizeof *f->fmask);
	for (size_t i = 0; i < f->nfail; i++) {
		const struct rx *r = &f->fail[i];
		if (r->in_any)
			f->anymask |= (uint64_t)1 << i;
		for (unsigned c = 0; c < 256; c++)
			if (r->code && (!r->has_first || FB_HAS(r->first, c)))
				f->fmask[c] |= (uint64_t)1 << i;
	}
}

/* Both literal checks; the one that has let fewer lines through so far goes
 * first, as it more often spares the other (the answer is the same either way). */
static int req_both(struct filter *f, const char *a, size_t alen, const char *c, size_t clen)
{
	int first = f->req_pass[1] * f->req_seen[0] < f->req_pass[0] * f->req_seen[1];
	for (int k = 0; k < 2; k++) {
		int w = k ? !first : first;
		const struct reqlit *s = w ? &f->req_pre : &f->req_fail;
		if (s->n == 0)
			continue;
		f->req_seen[w]++;
		if (!req_has(s, a, alen, c, clen))
			return 0;
		f->req_pass[w]++;
	}
	return 1;
}

struct filter *filter_compile(const struct filter_def *def, struct diag *d)
{
	struct filter *f = xcalloc(1, sizeof *f);
	size_t before = d->nerrors;
	f->maxlines = def->maxlines ? def->maxlines : 1;
	f->usedns_no = def->usedns && strcmp(def->usedns, "no") == 0;
	f->journal = def->logtype && strcmp(def->logtype, "journal") == 0;
	f->opts.raw_host = 1;
	const char *file = def->file;

	/* Keep our own copy of the definition (names, options, for messages). */
	f->def.name = xstrdup(def->name ? def->name : "");
	f->def.file = def->file ? xstrdup(def->file) : NULL;
	f->def.maxlines = f->maxlines;
	f->def.usedns = xstrdup(def->usedns ? def->usedns : "warn");
	f->def.logtype = xstrdup(def->logtype ? def->logtype : "file");
	f->def.logtimezone = def->logtimezone ? xstrdup(def->logtimezone) : NULL;

	if (def->prefregex && *def->prefregex) {
		f->def.prefregex = xstrdup(def->prefregex);
		if (rx_compile(&f->pref, def->prefregex, file, 0, f->usedns_no, 0, d) == 0)
			f->has_pref = 1;
	}
	f->fail = xcalloc(def->nfailregex ? def->nfailregex : 1, sizeof *f->fail);
	for (size_t i = 0; i < def->nfailregex; i++) {
		const struct filter_src *s = &def->failregex[i];
		if (rx_compile(&f->fail[i], s->text, s->file ? s->file : file, s->line, f->usedns_no,
			       f->maxlines > 1, d) != 0)
			continue;
		if (!f->fail[i].has_id && !(f->has_pref && f->pref.has_id))
			diag_error(d, s->file ? s->file : file, s->line,
				   "no failure-id group (<HOST>, <ADDR>, <F-ID>, <F-MLFID>...) in "
				   "failregex: %s",
				   s->text);
	}
	f->nfail = def->nfailregex;
	if (d->nerrors == before)
		build_any(f);
	f->ign = xcalloc(def->nignoreregex ? def->nignoreregex : 1, sizeof *f->ign);
	for (size_t i = 0; i < def->nignoreregex; i++) {
		const struct filter_src *s = &def->ignoreregex[i];
		rx_compile(&f->ign[i], s->text, s->file ? s->file : file, s->line, f->usedns_no, 0, d);
	}
	f->nign = def->nignoreregex;

	f->dd = datedetect_new((const char *const *)def->datepattern, def->ndatepattern, file, d);
	struct strbuf key = STRBUF_INIT;
	for (size_t i = 0; i < def->ndatepattern; i++) {
		strbuf_adds(&key, def->datepattern[i]);
		strbuf_addc(&key, '\n');
	}
	strbuf_addc(&key, '\x01');
	strbuf_adds(&key, def->logtimezone ? def->logtimezone : "");
	f->date_key = strbuf_detach(&key);

	f->mctx = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(f->mctx, MATCH_LIMIT);
	pcre2_set_depth_limit(f->mctx, DEPTH_LIMIT);
	f->jit = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
	pcre2_jit_stack_assign(f->mctx, NULL, f->jit);

	f->st.regex_hits = xcalloc(f->nfail ? f->nfail : 1, sizeof *f->st.regex_hits);
	f->st.ignoreregex_hits = xcalloc(f->nign ? f->nign : 1, sizeof *f->st.ignoreregex_hits);

	if (d->nerrors > before || !f->dd) {
		filter_free(f);
		return NULL;
	}
	build_req(f);
	build_fmask(f);
	return f;
}

static void search_free(struct filter *f, struct search *s);

void filter_free(struct filter *f)
{
	if (!f)
		return;
	if (f->has_pref)
		rx_free(&f->pref);
	for (size_t i = 0; i < f->nfail; i++)
		rx_free(&f->fail[i]);
	free(f->fail);
	if (f->has_any)
		rx_free(&f->any);
	for (size_t i = 0; i < f->nign; i++)
		rx_free(&f->ign[i]);
	free(f->ign);
	datedetect_free(f->dd);
	pcre2_jit_stack_free(f->jit);
	pcre2_match_context_free(f->mctx);
	tlist_free(f, &f->lbuf);
	search_free(f, &f->srch);
	search_free(f, &f->stmp);
	for (size_t i = 0; i < f->npool; i++) {
		free(f->pool[i]->s);
		free(f->pool[i]);
	}
	free(f->pool);
	strbuf_free(&f->buf);
	strbuf_free(&f->cbuf);
	strbuf_free(&f->ibuf);
	tlist_free(f, &f->org);
	free(f->pref_ov);
	strbuf_free(&f->clean);
	strbuf_free(&f->lasttext);
	for (size_t i = 0; i < f->nmlfid; i++) {
		free(f->mlfid[i].key);
		fdict_free(f->mlfid[i].fail);
	}
	fdict_destroy(&f->dpre);
	fdict_destroy(&f->dfail);
	fdict_destroy(&f->dm);
	fdict_destroy(&f->dcopy);
	free(f->st.regex_hits);
	free(f->st.ignoreregex_hits);
	filter_def_free(&f->def);
	free(f->date_key);
	reqlit_free(&f->req_pre);
	reqlit_free(&f->req_fail);
	free(f->fmask);
	free(f);
}

void filter_set_opts(struct filter *f, const struct filter_opts *o)
{
	f->opts = *o;
}

const char *filter_date_key(const struct filter *f)
{
	return f->date_key;
}

const struct filter_stats *filter_get_stats(const struct filter *f)
{
	return &f->st;
}

const struct filter_def *filter_get_def(const struct filter *f)
{
	return &f->def;
}

const char *filter_regex_text(const struct filter *f, size_t idx)
{
	return idx < f->nfail ? f->fail[idx].text : NULL;
}

size_t filter_nregex(const struct filter *f)
{
	return f->nfail;
}

size_t filter_nignoreregex(const struct filter *f)
{
	return f->nign;
}

const char *filter_ignoreregex_text(const struct filter *f, size_t idx)
{
	return idx < f->nign ? f->ign[idx].text : NULL;
}

int filter_is_journal(const struct filter *f)
{
	return f->journal;
}

struct datedetect *filter_datedetect(const struct filter *f)
{
	return f->dd;
}

/* ============================================================== matching */


static void search_reset(struct filter *f, struct search *s)
{
	tlist_clear(f, &s->matched_lines);
	tlist_clear(f, &s->unmatched);
	s->matched = 0;
}

static void search_free(struct filter *f, struct search *s)
{
	tlist_free(f, &s->matched_lines);
	tlist_free(f, &s->unmatched);
}

/* Runs r on subj (the ASCII variant when f->ascii says the text allows it);
 * 1 match, 0 none, -1 a match or depth limit was hit. */
static int rx_try(struct filter *f, struct rx *r, const char *subj, size_t len)
{
	const pcre2_code *c = r->code;
	int jit;
	if (f->ascii && r->acode) {
		c = r->acode;
		jit = r->ajit;
	} else {
		if (r->jit < 0)
			r->jit = pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE) == 0;
		jit = r->jit;
	}
	int rc = jit ? pcre2_jit_match(c, (PCRE2_SPTR)subj, len, 0, 0, r->md, f->mctx)
		     : pcre2_match(c, (PCRE2_SPTR)subj, len, 0, PCRE2_NO_UTF_CHECK, r->md, f->mctx);
	return rc >= 0 ? 1 : rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

/* Runs r on subj; 1 match, 0 none. Limit hits count and read as no match. */
static int rx_exec(struct filter *f, struct rx *r, const char *subj, size_t len)
{
	int rc = rx_try(f, r, subj, len);
	if (rc < 0)
		f->st.limit_hits++;
	return rc > 0;
}

static const char *ov_value(const PCRE2_SIZE *ov, size_t nov, uint32_t num, const char *subj,
			    size_t *len)
{
	if (num >= nov || ov[2 * num] == PCRE2_UNSET)
		return NULL;
	*len = ov[2 * num + 1] - ov[2 * num];
	return subj + ov[2 * num];
}

static const char *grp_value(const struct rx *r, uint32_t num, const char *subj, size_t *len)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
	if (num >= pcre2_get_ovector_count(r->md) || ov[2 * num] == PCRE2_UNSET)
		return NULL;
	*len = ov[2 * num + 1] - ov[2 * num];
	return subj + ov[2 * num];
}

static size_t count_nl(const char *s, size_t from, size_t to)
{
	size_t n = 0;
	for (size_t i = from; i < to; i++)
		n += s[i] == '\n';
	return n;
}

/* Searches r in subj and fills the matched/unmatched line lists from org. */
static int rx_search(struct filter *f, struct rx *r, const char *subj, size_t len,
		     struct tline **org, size_t norg, struct search *s)
{
	search_reset(f, s);
	if (!rx_exec(f, r, subj, len))
		return 0;
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
	s->matched = 1;
	s->start = ov[0];
	s->end = ov[1];
	if (norg <= 1) {
		tlist_extend(&s->matched_lines, org, 0, norg);
		return 1;
	}
	/* Lines touched by the match, by counting newlines like fail2ban does. */
	size_t mls = 0;
	for (size_t i = s->start + 1 > len ? len : s->start + 1; i > 0; i--)
		if (subj[i - 1] == '\n') {
			mls = i;
			break;
		}
	size_t from = s->end ? s->end - 1 : 0;
	size_t mle = len;
	for (size_t i = from; i < len; i++)
		if (subj[i] == '\n') {
			mle = i + 1;
			break;
		}
	size_t lc1 = count_nl(subj, 0, mls), lc2 = count_nl(subj, 0, mle);
	if (lc1 > norg)
		lc1 = norg;
	if (lc2 > norg)
		lc2 = norg;
	if (lc2 < lc1)
		lc2 = lc1;
	tlist_extend(&s->matched_lines, org, lc1, lc2);
	tlist_extend(&s->unmatched, org, 0, lc1);
	/* Lines swallowed by <SKIPLINES> are not part of the failure. */
	if (r->nskip) {
		struct strbuf sk = STRBUF_INIT;
		for (unsigned k = 0; k < r->nskip; k++) {
			char nm[32];
			snprintf(nm, sizeof nm, "skiplines%u", k);
			int num = pcre2_substring_number_from_name(r->code, (PCRE2_SPTR)nm);
			size_t gl = 0;
			const char *g = num > 0 ? grp_value(r, (uint32_t)num, subj, &gl) : NULL;
			if (g)
				strbuf_add(&sk, g, gl);
		}
		size_t n = 0;
		const char *p = strbuf_str(&sk), *e = p + sk.len;
		while (p < e) {
			const char *nl = memchr(p, '\n', (size_t)(e - p));
			size_t l = nl ? (size_t)(nl - p) : (size_t)(e - p);
			if (l > 0 && p[l - 1] == '\r')
				l--;
			for (size_t m = n; m < s->matched_lines.n; m++) {
				if (tline_vis_eq(s->matched_lines.v[m], p, l)) {
					tlist_push(&s->unmatched, s->matched_lines.v[m]);
					memmove(&s->matched_lines.v[m], &s->matched_lines.v[m + 1],
						(s->matched_lines.n - m - 1) * sizeof(struct tline *));
					s->matched_lines.n--;
					n = m;
					break;
				}
			}
			p = nl ? nl + 1 : e;
		}
		strbuf_free(&sk);
	}
	tlist_extend(&s->unmatched, org, lc2, norg);
	return 1;
}

/* Collects the named groups of a match (offsets ov) into d (ALT merged, TUPLE joined). */
static void rx_groups_ov(const struct rx *r, const PCRE2_SIZE *ov, size_t nov, const char *subj,
			 struct fdict *d)
{
	/* PCRE2's name table is sorted: a duplicate name follows its first use.
	 * Into an empty record the other names go without a lookup. */
	int fresh = d->n == 0;
	for (size_t i = 0; i < r->nnames; i++) {
		const char *nm = r->names[i].key;
		size_t gl = 0;
		const char *g = ov_value(ov, nov, r->names[i].num, subj, &gl);
		if (fresh && !r->names[i].dup) {
			fdict_append(d, nm, g ? ar_strndup(&d->ar, g, gl) : NULL);
			continue;
		}
		struct fent *e = fdict_find(d, nm);
		if (e && e->v && r->names[i].dup)
			continue; /* duplicate name: the first set one wins */
		if (g)
			fdict_setn(d, nm, g, gl);
		else if (!e)
			fdict_setn(d, nm, NULL, 0);
	}
	for (size_t i = 0; i < r->nalt; i++) {
		const char *v = fdict_get(d, r->alt[i].group);
		if (v && *v && !fdict_true(d, r->alt[i].tokey))
			fdict_set(d, r->alt[i].tokey, v);
	}
	for (size_t i = 0; i < r->ntup; i++) {
		/* fail2ban builds a Python tuple; we keep it as a space-joined string. */
		const char *v = fdict_get(d, r->tup[i].group);
		const char *t = fdict_get(d, r->tup[i].tokey);
		size_t tl = t ? strlen(t) : 0, vl = v ? strlen(v) : 0;
		char *nv = ar_alloc(&d->ar, tl + vl + 2);
		memcpy(nv, t ? t : "", tl);
		nv[tl] = ' ';
		memcpy(nv + tl + 1, v ? v : "", vl);
		nv[tl + 1 + vl] = '\0';
		fdict_setn(d, r->tup[i].tokey, nv, tl + 1 + vl);
	}
}

static void push_lines(struct fdict *d, struct strv *dst, const struct tlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		strv_push(&d->ar, dst, l->v[i]->s, l->v[i]->len);
}

/* fail2ban's _ignoreLine(): returns the index of the ignoreregex that matched or -1. */
static int ignore_line(struct filter *f, struct tline **org, size_t norg,
		       const struct search *fs, struct search *tmp)
{
	struct tline **lines = org;
	size_t nlines = norg;
	struct strbuf *local = &f->ibuf;
	if (fs && f->maxlines > 1) {
		lines = fs->matched_lines.v;
		nlines = fs->matched_lines.n;
	}
	build_buf(local, lines, nlines);
	int found = -1;
	for (size_t i = 0; i < f->nign; i++) {
		if (!rx_search(f, &f->ign[i], local->s, local->len, lines, nlines, tmp))
			continue;
		found = (int)i;
		f->ign_flag = 1;
		f->st.ignoreregex_hits[i]++;
		if ((!f->opts.check_all || f->maxlines > 1) && fs) {
			tlist_clear(f, &f->lbuf);
			tlist_extend(&f->lbuf, fs->unmatched.v, 0, fs->unmatched.n);
		}
		if (!f->opts.check_all)
			break;
	}
	return found;
}

/* Updates the users set from fail's "user"; returns the users list or NULL. */
static struct strv *update_users(struct fdict *d, const char *user)
{
	if (user && *user) {
		if (!strv_has(&d->users, user))
			strv_push(&d->ar, &d->users, user, strlen(user));
		return &d->users;
	}
	return d->users.n ? &d->users : NULL;
}


static struct mlfid_ent *mlfid_get(struct filter *f, const char *key, double now)
{
	uint64_t h = hash_str(HASH_SEED, key);
	for (size_t i = 0; i < f->nmlfid; i++) {
		if (f->mlfid[i].hash != h || strcmp(f->mlfid[i].key, key) != 0)
			continue;
		if (f->mlfid[i].expires > now)
			return &f->mlfid[i];
		/* expired: drop it */
		free(f->mlfid[i].key);
		fdict_free(f->mlfid[i].fail);
		memmove(&f->mlfid[i], &f->mlfid[i + 1], (f->nmlfid - i - 1) * sizeof f->mlfid[0]);
		f->nmlfid--;
		return NULL;
	}
	return NULL;
}

static void mlfid_unset(struct filter *f, const char *key)
{
	for (size_t i = 0; i < f->nmlfid; i++)
		if (strcmp(f->mlfid[i].key, key) == 0) {
			free(f->mlfid[i].key);
			fdict_free(f->mlfid[i].fail);
			memmove(&f->mlfid[i], &f->mlfid[i + 1],
				(f->nmlfid - i - 1) * sizeof f->mlfid[0]);
			f->nmlfid--;
			return;
		}
}

/* Inserts a session (takes ownership of fail); drops the oldest when full. */
static void mlfid_set(struct filter *f, const char *key, struct fdict *fail, double now)
{
	if (f->nmlfid >= MLFID_MAX) {
		while (f->nmlfid) {
			struct mlfid_ent old = f->mlfid[0];
			memmove(&f->mlfid[0], &f->mlfid[1], (f->nmlfid - 1) * sizeof f->mlfid[0]);
			f->nmlfid--;
			int live = old.expires > now;
			free(old.key);
			fdict_free(old.fail);
			if (live && f->nmlfid < MLFID_MAX)
				break;
		}
	}
	f->mlfid[f->nmlfid].key = xstrdup(key);
	f->mlfid[f->nmlfid].hash = hash_str(HASH_SEED, key);
	f->mlfid[f->nmlfid].fail = fail;
	f->mlfid[f->nmlfid].expires = now + MLFID_TTL;
	f->nmlfid++;
}

/* fail2ban's _mergeFailure(): merges a line of an <F-MLFID> session. `fail` is
 * a scratch record; the returned record is it, the cached session (which
 * later changes then update, as in fail2ban) or a scratch copy of a session
 * that ended with this line. */
static struct fdict *merge_failure(struct filter *f, const char *mlfid, struct fdict *fail,
				   const struct search *s)
{
	double now = clocks_mono();
	struct mlfid_ent *ent = mlfid_get(f, mlfid, now);
	struct strv *users = NULL;
	int nf = 0;
	if (fdict_true(fail, KEY(K_MLFGAINED))) {
		nf |= 8 | 1;
		if (!fdict_true(fail, KEY(K_NOFAIL)))
			fdict_set(fail, KEY(K_NOFAIL), fdict_get(fail, KEY(K_MLFGAINED)));
	} else if (fdict_true(fail, KEY(K_NOFAIL))) {
		nf |= 1;
	}
	if (fdict_pop_true(fail, KEY(K_MLFFORGET)))
		nf |= 2;
	if (ent) {
		struct fdict *g = ent->fail;
		/* values replaced over a long session pile up in its arena */
		if (g->ar.used > 2 * g->live + 65536) {
			ent->fail = fdict_clone(g);
			fdict_free(g);
			g = ent->fail;
		}
		users = update_users(g, fdict_get(fail, KEY(K_USER)));
		if (fdict_pop_true(g, KEY(K_NOFAIL)))
			nf |= 4;
		if (fdict_pop_true(g, KEY(K_MLFGAINED)))
			nf |= 4;
		if (nf & 8)
			fdict_pop_true(g, KEY(K_MLFPENDING));
		if ((nf & 4) == 0 && !fdict_true(g, KEY(K_MLFPENDING)))
			g->matches.n = 0;
		for (size_t i = 0; i < fail->n; i++)
			if (fail->e[i].v)
				fdict_set(g, fail->e[i].k, fail->e[i].v);
		/* A dict update of "matches"/"nofail-matches"/"users" from fail: fail's own
		 * lists are only set for non-mlfid records, so nothing to carry here. */
		fail = g;
		if (nf & 2) {
			/* The cached entry goes away: continue with a private copy. */
			fdict_copy_into(&f->dcopy, g);
			fail = &f->dcopy;
			mlfid_unset(f, mlfid);
			users = fail->users.n ? &fail->users : NULL;
		}
	} else if (!(nf & 2)) {
		fail = fdict_clone(fail);
		users = update_users(fail, fdict_get(fail, KEY(K_USER)));
		mlfid_set(f, mlfid, fail, now);
	}
	if (fdict_pop_true(fail, KEY(K_MLFPENDING)) || (users && users->n > 1)) {
		fdict_pop_true(fail, KEY(K_NOFAIL));
		fdict_pop_true(fail, KEY(K_MLFGAINED));
		nf &= ~(8 | 1);
	}
	if ((nf & 1) == 0) {
		/* matches = nofail-matches + matches (+ this failure's lines); the
		 * strings stay where they are, only the lists change */
		struct strv m = fail->nfmatches;
		fail->nfmatches = fail->matches;
		for (size_t i = 0; i < fail->nfmatches.n; i++)
			strv_add(&m, fail->nfmatches.v[i]);
		fail->nfmatches.n = 0;
		if ((nf & 8) == 0)
			push_lines(fail, &m, &s->matched_lines);
		fail->matches = m;
	} else if ((nf & 3) == 1) {
		push_lines(fail, &fail->nfmatches, &s->matched_lines);
	}
	return fail;
}

/* Copies a record into a hit; the strings go into the result's arena. */
static void hit_from(struct filter_arena *a, struct filter_hit *h, int idx, const char *id,
		     double t, const struct fdict *d)
{
	memset(h, 0, sizeof *h);
	h->regex = idx;
	h->id = id ? ar_strndup(a, id, strlen(id)) : NULL;
	h->time = t;
	h->nofail = fdict_true(d, KEY(K_NOFAIL));
	h->nlines = d->matches.n;
	h->lines = ar_alloc(a, (d->matches.n ? d->matches.n : 1) * sizeof *h->lines);
	for (size_t i = 0; i < d->matches.n; i++)
		h->lines[i] = ar_strndup(a, d->matches.v[i], strlen(d->matches.v[i]));
	h->nusers = d->users.n;
	h->users = ar_alloc(a, (d->users.n ? d->users.n : 1) * sizeof *h->users);
	for (size_t i = 0; i < d->users.n; i++)
		h->users[i] = ar_strndup(a, d->users.v[i], strlen(d->users.v[i]));
	/* The groups as a kvlist (read-only for callers): like kvlist_set, a key
	 * equal to an earlier one but for case replaces that one's value. */
	struct kv *kv = ar_alloc(a, (d->n ? d->n : 1) * sizeof *kv);
	size_t n = 0;
	for (size_t i = 0; i < d->n; i++) {
		const char *k = d->e[i].k, *v = d->e[i].v;
		if (!v || (k[0] == 's' && strncmp(k, "skiplines", 9) == 0) ||
		    (k[0] == 'a' && strncmp(k, "alt_", 4) == 0) ||
		    (k[0] == 't' && strncmp(k, "tuple_", 6) == 0) ||
		    (k[0] == 'c' && strcmp(k, "content") == 0))
			continue;
		char *vc = ar_strndup(a, v, strlen(v));
		size_t j = 0;
		while (j < n && ((kv[j].key[0] | 0x20) != (k[0] | 0x20) || strcasecmp(kv[j].key, k) != 0))
			j++;
		if (j < n) {
			kv[j].value = vc;
			continue;
		}
		kv[n].key = ar_strndup(a, k, strlen(k));
		kv[n].value = vc;
		n++;
	}
	h->groups.v = kv;
	h->groups.n = h->groups.cap = n;
}

static void rx_groups(const struct rx *r, const char *subj, struct fdict *d)
{
	rx_groups_ov(r, pcre2_get_ovector_pointer(r->md), pcre2_get_ovector_count(r->md), subj, d);
}

static void result_push(struct filter *f, struct filter_result *out, int idx, const char *id,
			double t, const struct fdict *d)
{
	f->st.regex_hits[idx]++;
	if (out->n == out->cap)
		out->hits = xgrow(out->hits, &out->cap, out->n, sizeof *out->hits);
	if (!out->mem)
		out->mem = xcalloc(1, sizeof *out->mem);
	hit_from(out->mem, &out->hits[out->n++], idx, id, t, d);
}

/* Normalises an address group with an optional prefix like fail2ban's IPAddr. */
static void norm_ip(const char *ip, const char *cidr, int family, char *out, size_t outlen)
{
	struct addr a;
	size_t n = strlen(ip);
	/* Without a prefix, an IPv4 group comes out as written whether it parses
	 * or not (a parsed IPv4 text is canonical already): no parse needed. */
	if (family == 4 && !(cidr && *cidr) && n < outlen && memchr(ip, ':', n) == NULL) {
		memcpy(out, ip, n + 1);
		return;
	}
	int ok = addr_parse(ip, n, &a) == 0 && (family == 0 || a.family == family ||
						 (family == 6 && a.family == 4));
	if (!ok) {
		snprintf(out, outlen, "%s", ip);
		return;
	}
	if (cidr && *cidr) {
		long plen = strtol(cidr, NULL, 10);
		/* Re-parse without the v4-mapped folding: a prefix applies to the family seen. */
		char tmp[ADDR_STRLEN + 8];
		snprintf(tmp, sizeof tmp, "%s/%ld", ip, plen);
		struct addr p;
		if (addr_parse_cidr(tmp, strlen(tmp), &p) == 0) {
			if (p.prefix == 0) {
				/* fail2ban prints a zero-length prefix without "/0" */
				p.prefix = p.family == 4 ? 32 : 128;
			}
			addr_format(&p, out, outlen);
			return;
		}
	}
	/* a parsed IPv4 text is already canonical (leading zeros are refused) */
	if (a.family == 4 && n < outlen && memchr(ip, ':', n) == NULL) {
		memcpy(out, ip, n + 1);
		return;
	}
	addr_format(&a, out, outlen);
}

/* fail2ban's findFailure(). date_ok: 0 means no date (None). */
static void find_failure(struct filter *f, struct tline *tl, double date, int date_ok,
			 struct filter_result *out)
{
	struct tlist *org = &f->org;
	tlist_clear(f, org);
	if (f->maxlines > 1) {
		tlist_push(&f->lbuf, tl);
		if (f->lbuf.n > f->maxlines) {
			size_t drop = f->lbuf.n - f->maxlines;
			for (size_t i = 0; i < drop; i++)
				tl_unref(f, f->lbuf.v[i]);
			memmove(f->lbuf.v, f->lbuf.v + drop, f->maxlines * sizeof *f->lbuf.v);
			f->lbuf.n = f->maxlines;
		}
	} else {
		tlist_clear(f, &f->lbuf);
		tlist_push(&f->lbuf, tl);
	}
	tlist_extend(org, f->lbuf.v, 0, f->lbuf.n);
	f->ascii = 1;
	for (size_t i = 0; i < org->n; i++)
		f->ascii &= org->v[i]->ascii;
	struct strbuf *buf = &f->buf;
	build_buf(buf, org->v, org->n);
	int buf_valid = 1;
	struct search *s = &f->srch, *tmp = &f->stmp;

	if (f->nign && f->nign + 2 < f->nfail) {
		if (ignore_line(f, org->v, org->n, NULL, tmp) >= 0)
			goto done;
	}

	/* The prefregex's groups are only needed when a failregex matches: keep its
	 * offsets (and its subject, f->buf, untouched) and build the dict lazily. */
	struct fdict *pre = &f->dpre;
	int have_pre = 0, pre_built = 0;
	if (f->has_pref) {
		if (!rx_exec(f, &f->pref, buf->s, buf->len))
			goto done;
		have_pre = 1;
		size_t nov = 2 * ((size_t)f->pref.ngroups + 1);
		if (f->pref_ovn < nov) {
			f->pref_ov = xrealloc(f->pref_ov, nov * sizeof *f->pref_ov);
			f->pref_ovn = nov;
		}
		memcpy(f->pref_ov, pcre2_get_ovector_pointer(f->pref.md), nov * sizeof *f->pref_ov);
		size_t cl;
		const char *content = f->pref.content > 0
					      ? ov_value(f->pref_ov, f->pref.ngroups + 1,
							 (uint32_t)f->pref.content, buf->s, &cl)
					      : NULL;
		if (content && cl) {
			struct tline *rt = tl_new(f);
			tl_set(rt, "", 0, "", 0, content, cl);
			rt->ascii = f->ascii;
			tlist_clear(f, &f->lbuf);
			tlist_push(&f->lbuf, rt);
			buf = &f->cbuf; /* f->buf stays the prefregex's subject */
			buf_valid = 0;
		}
	}

	/* 0: no combined regex matched this buffer, so its members cannot match */
	int any = 1;
	if (f->has_any) {
		if (!buf_valid) {
			build_buf(buf, f->lbuf.v, f->lbuf.n);
			buf_valid = 1;
		}
		unsigned char c0 = (unsigned char)buf->s[0];
		if (f->any.has_first && !FB_HAS(f->any.first, c0))
			any = 0;
		else
			any = rx_try(f, &f->any, buf->s, buf->len) != 0;
	}
	for (size_t i = 0; i < f->nfail; i++) {
		if (f->fmask && buf_valid) {
			/* jump to the next failregex that can match this text: the
			 * ones in between would be passed over below without effect */
			uint64_t cand = f->fmask[(unsigned char)buf->s[0]];
			if (!any)
				cand &= ~f->anymask;
			cand >>= i;
			if (!cand)
				break;
			i += (size_t)__builtin_ctzll(cand);
		}
		struct rx *r = &f->fail[i];
		if (!r->code || (!any && r->in_any))
			continue;
		if (!buf_valid) {
			build_buf(buf, f->lbuf.v, f->lbuf.n);
			buf_valid = 1;
			/* the text changed after a match: the prefilter's answer is void */
			any = 1;
		}
		if (r->has_first && !FB_HAS(r->first, (unsigned char)buf->s[0]))
			continue;
		if (!rx_search(f, r, buf->s, buf->len, org->v, org->n, s))
			continue;
		struct fdict *fail = &f->dfail;
		fdict_reset(fail);
		rx_groups(r, buf->s, fail);
		if (f->nign && ignore_line(f, org->v, org->n, s, tmp) >= 0) {
			buf_valid = 0;
			if (!f->opts.check_all)
				break;
			continue;
		}
		if (!f->opts.check_all || f->maxlines > 1) {
			tlist_clear(f, &f->lbuf);
			tlist_extend(&f->lbuf, s->unmatched.v, 0, s->unmatched.n);
			buf_valid = 0;
		}
		if (have_pre) {
			if (!pre_built) {
				fdict_reset(pre);
				rx_groups_ov(&f->pref, f->pref_ov, f->pref.ngroups + 1, f->buf.s, pre);
				fdict_pop_true(pre, KEY(K_CONTENT));
				pre_built = 1;
			}
			/* prefregex groups first, then the failregex's own (None
			 * included). The values are borrowed, not copied: both scratch
			 * records stay as they are for the rest of this iteration, and
			 * whatever keeps a record beyond it copies the strings. */
			struct fdict *m = &f->dm;
			fdict_reset(m);
			for (size_t k = 0; k < pre->n; k++)
				fdict_append(m, pre->e[k].k, pre->e[k].v);
			for (size_t k = 0; k < fail->n; k++) {
				struct fent *e = pre->n ? fdict_find(m, fail->e[k].k) : NULL;
				if (e)
					e->v = fail->e[k].v;
				else
					fdict_append(m, fail->e[k].k, fail->e[k].v);
			}
			fail = m;
		}
		/* a scratch record's strings stay valid for this whole iteration */
		const char *mlfid = fdict_get(fail, KEY(K_MLFID));
		if (mlfid) {
			fail = merge_failure(f, mlfid, fail, s);
			if (fdict_true(fail, KEY(K_NOFAIL)) && !f->opts.check_all)
				break;
		} else {
			push_lines(fail, &fail->matches, &s->matched_lines);
		}
		/* failure id */
		char idbuf[ADDR_STRLEN + 512];
		const char *fid = fdict_get(fail, KEY(K_FID));
		const char *ip = fdict_get(fail, KEY(K_IP4));
		const char *cidr = fdict_get(fail, KEY(K_CIDR));
		const char *id = NULL;
		int pending = 0;
		if (ip) {
			norm_ip(ip, cidr, 4, idbuf, sizeof idbuf);
		} else if ((ip = fdict_get(fail, KEY(K_IP6)))) {
			int plain = !(cidr && *cidr);
			if (plain && f->v6in[0] && strcmp(ip, f->v6in) == 0) {
				memcpy(idbuf, f->v6out, strlen(f->v6out) + 1);
			} else {
				norm_ip(ip, cidr, 6, idbuf, sizeof idbuf);
				if (plain && strlen(ip) < sizeof f->v6in &&
				    strlen(idbuf) < sizeof f->v6out) {
					memcpy(f->v6in, ip, strlen(ip) + 1);
					memcpy(f->v6out, idbuf, strlen(idbuf) + 1);
				}
			}
		} else if ((ip = fdict_get(fail, KEY(K_DNS)))) {
			snprintf(idbuf, sizeof idbuf, "%s", ip);
		} else if (fid) {
			ip = fid;
			snprintf(idbuf, sizeof idbuf, "%s", fid);
		} else if (!mlfid) {
			ip = "";
			idbuf[0] = '\0';
		} else {
			pending = 1;
		}
		if (pending) {
			fdict_set(fail, KEY(K_MLFPENDING), "1");
			id = NULL;
		} else if (fid && strcmp(fid, ip) != 0) {
			/* complex id: the address goes to "ip", the id stays as written */
			fdict_set(fail, KEY(K_IP), idbuf);
			id = fid;
		} else {
			id = idbuf;
		}
		result_push(f, out, (int)i, id, date_ok ? date : -1.0, fail);
		if (!f->opts.check_all)
			break;
	}
done:
	search_reset(f, s);
	search_reset(f, tmp);
	tlist_clear(f, org);
}

/* Index of the first byte >= 0x80, or n; 32 then eight bytes at a time. */
static size_t ascii_prefix(const unsigned char *p, size_t n)
{
	size_t i = 0;
#if defined(__SSE2__)
	for (; i + 32 <= n; i += 32) {
		__m128i v = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + i)),
					 _mm_loadu_si128((const __m128i *)(const void *)(p + i + 16)));
		if (_mm_movemask_epi8(v))
			break;
	}
#else
	for (; i + 32 <= n; i += 32) {
		uint64_t w[4];
		memcpy(w, p + i, sizeof w);
		if ((w[0] | w[1] | w[2] | w[3]) & 0x8080808080808080ull)
			break;
	}
#endif
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (w & 0x8080808080808080ull)
			break;
	}
	while (i < n && p[i] < 0x80)
		i++;
	return i;
}

/* Copies line into f->clean with invalid UTF-8 replaced by U+FFFD. *ascii tells
 * whether the line is pure ASCII. */
static const char *clean_utf8(struct filter *f, const char *line, size_t *len, int *ascii)
{
	const unsigned char *p = (const unsigned char *)line;
	size_t n = *len, i = ascii_prefix(p, n);
	*ascii = i == n;
	if (i == n)
		return line;
	size_t off = 0;
	int bad = 0;
	strbuf_reset(&f->clean);
	while (i < n) {
		unsigned char c = p[i];
		size_t l = 0;
		uint32_t cp = 0;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			l = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			l = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			l = 4;
			cp = c & 0x07;
		}
		int ok = l && i + l <= n;
		for (size_t k = 1; ok && k < l; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				ok = 0;
			else
				cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (ok && ((l == 2 && cp < 0x80) || (l == 3 && cp < 0x800) ||
			   (l == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff)))
			ok = 0;
		if (ok) {
			i += l;
			continue;
		}
		strbuf_add(&f->clean, line + off, i - off);
		strbuf_adds(&f->clean, "\xef\xbf\xbd");
		i++;
		off = i;
		bad = 1;
	}
	if (!bad)
		return line;
	strbuf_add(&f->clean, line + off, n - off);
	*len = f->clean.len;
	return f->clean.s;
}

void filter_prepare(struct filter *f, const char *line, size_t len, double journal_time,
		    const struct date_clock *clk, struct filter_line *fl)
{
	filter_prepare_memo(f, line, len, journal_time, clk, NULL, fl);
}

void filter_prepare_memo(struct filter *f, const char *line, size_t len, double journal_time,
			 const struct date_clock *clk, struct datedetect_memo *memo,
			 struct filter_line *fl)
{
	fl->text = clean_utf8(f, line, &len, &fl->ascii);
	fl->len = len;
	fl->journal_time = journal_time;
	fl->found = 0;
	fl->ms = fl->me = 0;
	if (journal_time < 0)
		fl->found = datedetect_find_memo(f->dd, fl->text, len, fl->ascii, memo, clk, &fl->t,
						 &fl->ms, &fl->me);
}

enum filter_status filter_process(struct filter *f, const char *line, size_t len,
				  double journal_time, const struct date_clock *clk,
				  struct filter_result *out)
{
	struct filter_line fl;
	filter_prepare(f, line, len, journal_time, clk, &fl);
	return filter_process_prepared(f, &fl, clk, out);
}

int filter_precheck(const struct filter *f, const struct filter_line *fl)
{
	if (!f->use_req)
		return 1;
	/* a + c as filter_process_checked() cuts them, for the two cases that do
	 * not depend on the lines before */
	const char *a = "", *c = fl->text;
	size_t alen = 0, clen = fl->len;
	if (fl->journal_time < 0) {
		if (fl->found != 1 || fl->me <= fl->ms)
			return -1;
		a = fl->text, alen = fl->ms, c = fl->text + fl->me, clen = fl->len - fl->me;
	}
	return req_has(&f->req_fail, a, alen, c, clen) && req_has(&f->req_pre, a, alen, c, clen);
}

enum filter_status filter_process_prepared(struct filter *f, const struct filter_line *fl,
					   const struct date_clock *clk, struct filter_result *out)
{
	return filter_process_checked(f, fl, clk, out, -1);
}

enum filter_status filter_process_checked(struct filter *f, const struct filter_line *fl,
					  const struct date_clock *clk, struct filter_result *out,
					  int pre)
{
	const char *line = fl->text;
	size_t len = fl->len;
	f->st.lines++;
	/* The line as three parts: a + c is what the regexes see, b the date text. */
	const char *a = "", *b = "", *c = line;
	size_t alen = 0, blen = 0, clen = len;
	double date = 0;
	int date_ok = 0;
	if (fl->journal_time >= 0) {
		date = fl->journal_time;
		date_ok = 1;
		f->last_date = date;
		f->has_last = 1;
		strbuf_reset(&f->lasttext);
	} else {
		double t = fl->t;
		size_t ms = fl->ms, me = fl->me;
		int found = fl->found;
		if (found == 1 && me > ms) {
			a = line, alen = ms, b = line + ms, blen = me - ms, c = line + me, clen = len - me;
			date = t;
			date_ok = 1;
			sb_set(&f->lasttext, line + ms, me - ms);
			f->last_date = t;
			f->has_last = 1;
		} else if (found == 1) {
			/* the template matched an empty date: last known date if recent, or now */
			a = line, alen = ms, c = line + me, clen = len - me;
			if (f->has_last && f->last_date > clk->now - LAST_DATE_SLACK) {
				a = "", alen = 0, b = strbuf_str(&f->lasttext), blen = f->lasttext.len;
				c = line, clen = len;
				date = f->last_date;
			} else {
				date = clk->now;
			}
			date_ok = 1;
		} else {
			/* no date, or a date text that is not a valid date (found == -1: the
			 * text is still cut out): the last date when recent, else none */
			if (found == -1) {
				a = line, alen = ms, b = line + ms, blen = me - ms;
				c = line + me, clen = len - me;
			}
			f->st.nodate++;
			if (f->has_last && f->last_date > clk->now - LAST_DATE_SLACK) {
				a = "", alen = 0, b = strbuf_str(&f->lasttext), blen = f->lasttext.len;
				c = line, clen = len;
				date = f->last_date;
				date_ok = 1;
			}
		}
	}
	/* A line without the words every match needs cannot match: it is missed
	 * without running a regex. Nothing else changes for it (one-line filters
	 * keep no buffer, multi-line sessions only change on a failregex match). */
	if (f->use_req && (pre >= 0 ? !pre : !req_both(f, a, alen, c, clen))) {
		tlist_clear(f, &f->lbuf);
		f->ign_flag = 0;
		f->st.missed++;
		return FILTER_MISSED;
	}
	struct tline *tl = tl_new(f);
	tl->ascii = fl->ascii;
	tl_set(tl, a, alen, b, blen, c, clen);
	size_t first = out->n;
	f->ign_flag = 0;
	find_failure(f, tl, date, date_ok, out);
	/* Classified like fail2ban-regex: a nofail hit or an ignoreregex hit makes the
	 * line "ignored" even when another regex produced a failure. */
	enum filter_status st = FILTER_MISSED;
	int fails = 0, nofails = 0;
	for (size_t i = first; i < out->n; i++) {
		if (out->hits[i].nofail)
			nofails++;
		else
			fails++;
	}
	if (nofails || f->ign_flag) {
		st = FILTER_IGNORED;
		f->st.ignored++;
	} else if (fails) {
		st = FILTER_MATCHED;
		f->st.matched++;
	} else {
		f->st.missed++;
	}
	return st;
}

void filter_result_reset(struct filter_result *r)
{
	r->n = 0;
	if (r->mem)
		ar_reset(r->mem);
}

void filter_result_free(struct filter_result *r)
{
	r->n = 0;
	if (r->mem) {
		ar_free(r->mem);
		free(r->mem);
		r->mem = NULL;
	}
	free(r->hits);
	r->hits = NULL;
	r->cap = 0;
}
