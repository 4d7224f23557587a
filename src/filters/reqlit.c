/*
 * reqlit - required literals of a PCRE2 pattern (see reqlit.h).
 *
 * The pattern is read as a sequence of atoms. A literal character that must
 * appear (no quantifier, or one with a minimum of at least one) extends the
 * current run of literal bytes; anything else ends the run. A group that must
 * appear contributes what its alternatives require: the union of the best
 * set of each alternative, or nothing when one alternative requires nothing.
 * Of all runs and groups of a sequence the best set is kept: the one whose
 * shortest member is longest, as that rejects the most lines. The sequence's
 * other required literals (its runs, and groups of one member) become the
 * extras of every member of that set: "disconnect(?= from \S+ auth=0/)" is
 * looked for as "disconnect", and a line with it is kept only when " from "
 * and " auth=0/" are in it as well. Extras are checked anywhere in the line
 * (order and place are the regex's business), so they only ever reject lines
 * the pattern cannot match.
 *
 * A group of literal text only (fail2ban's tag groups such as
 * "(?P<mlfforget>disconnect)") does not end a run. Groups the reader does not
 * look into (scoped options "(?i:...)", conditionals, negative lookarounds,
 * back references by name) require nothing; a positive lookaround's text is
 * in the subject, so it counts like a group.
 *
 * A hand-written reader rather than PCRE2's compiled form: PCRE2 exposes no
 * API for its compiled opcodes, and the reader only has to be safe, not
 * complete. Syntax that would change the meaning of what follows (option
 * settings such as "(?i)", \Q..\E, numeric escapes, "(?R)") or that it cannot
 * read makes the whole answer "nothing known".
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "filters/reqlit.h"

#include <pcre2.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define REQLIT_AVX2 1
#endif

#include "core/strbuf.h"
#include "core/xmalloc.h"

#define REQLIT_MAX_DEPTH 64
#define REQLIT_MAX_LEN 32

struct rdr {
	const char *p;
	int ok;    /* 0: syntax not understood, the answer is "nothing known" */
	int depth;
};

/* Most extra literals one member carries. */
#define REQLIT_MAX_EXTRA 4

/* Bytes of an extras list including its final empty string. */
static size_t ex_size(const char *e)
{
	const char *p = e;
	while (*p)
		p += strlen(p) + 1;
	return (size_t)(p - e) + 1;
}

static size_t ex_count(const char *e)
{
	size_t n = 0;
	for (; e && *e; e += strlen(e) + 1)
		n++;
	return n;
}

static char *ex_dup(const char *e)
{
	if (!e)
		return NULL;
	size_t n = ex_size(e);
	char *d = xmalloc(n);
	memcpy(d, e, n);
	return d;
}

/* Appends v[0:n] to the list *e. */
static void ex_add(char **e, const char *v, size_t n)
{
	size_t old = *e ? ex_size(*e) - 1 : 0;
	char *d = xmalloc(old + n + 2);
	if (old)
		memcpy(d, *e, old);
	memcpy(d + old, v, n);
	d[old + n] = '\0';
	d[old + n + 1] = '\0';
	free(*e);
	*e = d;
}

static void set_add_ex(struct reqlit *s, const char *v, size_t n, const char *ex)
{
	s->s = xgrow(s->s, &s->cap, s->n, sizeof *s->s);
	s->len = xrealloc(s->len, s->cap * sizeof *s->len);
	s->ex = xrealloc(s->ex, s->cap * sizeof *s->ex);
	s->s[s->n] = xmalloc(n + 1);
	memcpy(s->s[s->n], v, n);
	s->s[s->n][n] = '\0';
	s->len[s->n] = n;
	s->ex[s->n] = ex_dup(ex);
	s->n++;
}

static void set_add(struct reqlit *s, const char *v, size_t n)
{
	set_add_ex(s, v, n, NULL);
}

void reqlit_free(struct reqlit *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->s[i]);
		free(s->ex[i]);
	}
	free(s->ex);
	free(s->s);
	free(s->len);
	free(s->off);
	free(s->bmem);
	memset(s, 0, sizeof *s);
}

size_t reqlit_minlen(const struct reqlit *s)
{
	size_t m = 0;
	for (size_t i = 0; i < s->n; i++)
		if (i == 0 || s->len[i] < m)
			m = s->len[i];
	return m;
}

void reqlit_union(struct reqlit *dst, const struct reqlit *src)
{
	for (size_t i = 0; i < src->n; i++)
		set_add_ex(dst, src->s[i], src->len[i], src->ex[i]);
}

/* Does hay[0:hn] contain nd[0:nn]? The needles are short and the texts log
 * lines: sixteen places at a time are tested for the needle's first two
 * bytes, which costs less than memmem()'s set-up. */
static int contains(const char *hay, size_t hn, const char *nd, size_t nn)
{
	if (nn == 0)
		return 1;
	if (nn > hn)
		return 0;
	if (nn == 1)
		return memchr(hay, nd[0], hn) != NULL;
	size_t last = hn - nn, i = 0; /* last possible start */
#if defined(__SSE2__)
	const __m128i f = _mm_set1_epi8(nd[0]), g = _mm_set1_epi8(nd[1]);
	for (; i + 17 <= hn; i += 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(hay + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(hay + i + 1));
		unsigned m = (unsigned)_mm_movemask_epi8(
			_mm_and_si128(_mm_cmpeq_epi8(a, f), _mm_cmpeq_epi8(b, g)));
		while (m) {
			size_t at = i + (unsigned)__builtin_ctz(m);
			m &= m - 1;
			if (at <= last && memcmp(hay + at + 2, nd + 2, nn - 2) == 0)
				return 1;
		}
	}
#endif
	for (; i <= last; i++)
		if (hay[i] == nd[0] && hay[i + 1] == nd[1] && memcmp(hay + i + 2, nd + 2, nn - 2) == 0)
			return 1;
	return 0;
}

/* Does every text that holds member i and its extras hold j's extras? (Each
 * of j's extras must lie within i or within one of i's extras.) */
static int extras_implied(const struct reqlit *s, size_t j, size_t i)
{
	for (const char *e = s->ex[j]; e && *e; e += strlen(e) + 1) {
		size_t el = strlen(e);
		int ok = contains(s->s[i], s->len[i], e, el);
		for (const char *x = s->ex[i]; !ok && x && *x; x += strlen(x) + 1)
			ok = contains(x, strlen(x), e, el);
		if (!ok)
			return 0;
	}
	return 1;
}

void reqlit_minimize(struct reqlit *s)
{
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++) {
		int drop = 0;
		for (size_t j = 0; j < s->n && !drop; j++) {
			if (j == i || !s->s[j])
				continue;
			/* i is implied by a shorter j, or equal to an earlier j */
			if (contains(s->s[i], s->len[i], s->s[j], s->len[j]) &&
			    (s->len[j] < s->len[i] || j < i) && extras_implied(s, j, i))
				drop = 1;
		}
		if (drop) {
			free(s->s[i]);
			free(s->ex[i]);
			s->s[i] = NULL;
		}
	}
	for (size_t i = 0; i < s->n; i++)
		if (s->s[i]) {
			s->s[k] = s->s[i];
			s->ex[k] = s->ex[i];
			s->len[k++] = s->len[i];
		}
	s->n = k;
}

void reqlit_drop_extras(struct reqlit *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->ex[i]);
		s->ex[i] = NULL;
	}
	reqlit_minimize(s);
}

/* How often a byte shows up in log text, roughly: a literal is looked for
 * through its least frequent byte, so few positions need a comparison. */
static int byte_freq(unsigned char c)
{
	if (c == ' ')
		return 100;
	if (c >= 'a' && c <= 'z')
		return strchr("etaoinsrhldcu", c) ? 60 : 30;
	if (c >= '0' && c <= '9')
		return 50;
	if (strchr(".:[]-/=_,<>@", c))
		return 40;
	if (c >= 'A' && c <= 'Z')
		return 15;
	return 10;
}

/* Groups the anchor pairs into at most eight buckets for the nibble scan.
 * A bucket matches every pair built from its nibble sets, so when pairs must
 * share a bucket, those whose merged sets add the fewest such pairs go
 * together (e.g. "Us" and "us" differ in one nibble and cost nothing). */
static void teddy_prepare(struct reqlit *s)
{
	s->teddy = 0;
	free(s->bmem);
	s->bmem = NULL;
	if (!s->avx2 || s->short_member || s->nanc == 0 || s->nanc > 16)
		return;
	/* nibble sets per bucket: low and high nibble of the pair's two bytes */
	uint16_t set[16][4];
	int owner[16]; /* anchor -> bucket */
	unsigned nb = s->nanc;
	for (unsigned k = 0; k < nb; k++) {
		set[k][0] = (uint16_t)(1u << (s->anc[k][0] & 15));
		set[k][1] = (uint16_t)(1u << (s->anc[k][0] >> 4));
		set[k][2] = (uint16_t)(1u << (s->anc[k][1] & 15));
		set[k][3] = (uint16_t)(1u << (s->anc[k][1] >> 4));
		owner[k] = (int)k;
	}
	while (nb > 8) {
		unsigned bx = 0, by = 1;
		unsigned long best = ~0ul;
		for (unsigned x = 0; x < nb; x++)
			for (unsigned y = x + 1; y < nb; y++) {
				unsigned long c = 1;
				for (int q = 0; q < 4; q++)
					c *= (unsigned long)__builtin_popcount(set[x][q] | set[y][q]);
				if (c < best) {
					best = c;
					bx = x;
					by = y;
				}
			}
		for (int q = 0; q < 4; q++)
			set[bx][q] |= set[by][q];
		/* the last bucket takes by's place */
		for (unsigned k = 0; k < s->nanc; k++) {
			if (owner[k] == (int)by)
				owner[k] = (int)bx;
			else if (owner[k] == (int)nb - 1)
				owner[k] = (int)by;
		}
		memcpy(set[by], set[nb - 1], sizeof set[by]);
		nb--;
	}
	memset(s->tlo1, 0, sizeof s->tlo1);
	memset(s->thi1, 0, sizeof s->thi1);
	memset(s->tlo2, 0, sizeof s->tlo2);
	memset(s->thi2, 0, sizeof s->thi2);
	for (unsigned b = 0; b < nb; b++)
		for (unsigned n = 0; n < 16; n++) {
			unsigned char bit = (unsigned char)(1u << b);
			if (set[b][0] & (1u << n))
				s->tlo1[n] |= bit, s->tlo1[n + 16] |= bit;
			if (set[b][1] & (1u << n))
				s->thi1[n] |= bit, s->thi1[n + 16] |= bit;
			if (set[b][2] & (1u << n))
				s->tlo2[n] |= bit, s->tlo2[n + 16] |= bit;
			if (set[b][3] & (1u << n))
				s->thi2[n] |= bit, s->thi2[n + 16] |= bit;
		}
	/* members by bucket of their anchor pair */
	s->bmem = xcalloc(s->n ? s->n : 1, sizeof *s->bmem);
	size_t at = 0;
	for (unsigned b = 0; b < 8; b++) {
		s->bstart[b] = at;
		for (size_t i = 0; i < s->n; i++) {
			const unsigned char *m = (const unsigned char *)s->s[i] + s->off[i];
			unsigned k = 0;
			while (k < s->nanc && (s->anc[k][0] != m[0] || s->anc[k][1] != m[1]))
				k++;
			if (k < s->nanc && owner[k] == (int)b)
				s->bmem[at++] = i;
		}
	}
	s->bstart[8] = at;
	s->teddy = at == s->n; /* every member has its bucket */
}

void reqlit_prepare(struct reqlit *s)
{
	free(s->off);
	s->off = xcalloc(s->n ? s->n : 1, sizeof *s->off);
	s->nanc = 0;
	s->short_member = 0;
#ifdef REQLIT_AVX2
	s->avx2 = __builtin_cpu_supports("avx2") != 0;
#endif
	memset(s->is_anc, 0, sizeof s->is_anc);
	for (size_t i = 0; i < s->n; i++) {
		const unsigned char *m = (const unsigned char *)s->s[i];
		if (s->len[i] < 2) {
			s->short_member = 1;
			continue;
		}
		size_t best = 0;
		int bf = byte_freq(m[0]) * byte_freq(m[1]);
		for (size_t k = 1; k + 1 < s->len[i]; k++) {
			int f = byte_freq(m[k]) * byte_freq(m[k + 1]);
			if (f < bf) {
				bf = f;
				best = k;
			}
		}
		/* Every anchor pair costs a compare per position of every line: a pair
		 * already chosen for another member is reused when it is not much more
		 * frequent than this member's own best. */
		for (unsigned a = 0; a < s->nanc && a < 16; a++) {
			const char *hit = memmem(m, s->len[i], s->anc[a], 2);
			if (hit && byte_freq(s->anc[a][0]) * byte_freq(s->anc[a][1]) <= 4 * bf) {
				best = (size_t)(hit - (const char *)m);
				break;
			}
		}
		s->off[i] = best;
		s->is_anc[m[best]] = 1;
		unsigned k = 0;
		while (k < s->nanc && k < 16 && (s->anc[k][0] != m[best] || s->anc[k][1] != m[best + 1]))
			k++;
		if (k == s->nanc) {
			if (k < 16) {
				s->anc[k][0] = m[best];
				s->anc[k][1] = m[best + 1];
				memset(s->va[k], m[best], sizeof s->va[k]);
				memset(s->vb[k], m[best + 1], sizeof s->vb[k]);
			}
			s->nanc++; /* more than 16: the byte-table scan is used */
		}
	}
	teddy_prepare(s);
}

/* The whole text being searched, in two pieces (see reqlit_any_split). */
struct rtext {
	const char *a, *c;
	size_t alen, clen;
};

/* Does a + c contain lit[0:n]? */
static int text_has(const struct rtext *t, const char *lit, size_t n)
{
	if (contains(t->c, t->clen, lit, n) || contains(t->a, t->alen, lit, n))
		return 1;
	if (!t->alen || !t->clen || n < 2)
		return 0;
	if (n > REQLIT_MAX_LEN)
		return 1; /* not made by the reader; accepting is always safe */
	char j[2 * REQLIT_MAX_LEN];
	size_t ja = t->alen < n - 1 ? t->alen : n - 1, jc = t->clen < n - 1 ? t->clen : n - 1;
	memcpy(j, t->a + t->alen - ja, ja);
	memcpy(j + ja, t->c, jc);
	return contains(j, ja + jc, lit, n);
}

/* Member i was found: does the text also hold its extra literals? */
static int extras_ok(const struct reqlit *s, size_t i, const struct rtext *t)
{
	for (const char *e = s->ex[i]; e && *e; e += strlen(e) + 1)
		if (!text_has(t, e, strlen(e)))
			return 0;
	return 1;
}

/* Is one of the members whose anchor pair starts at text[pos] at its place there? */
static int verify(const struct reqlit *s, const char *text, size_t len, size_t pos,
		  const struct rtext *t)
{
	unsigned char c = (unsigned char)text[pos], d = (unsigned char)text[pos + 1];
	for (size_t i = 0; i < s->n; i++) {
		const char *m = s->s[i];
		size_t o = s->off[i];
		if (s->len[i] < 2 || (unsigned char)m[o] != c || (unsigned char)m[o + 1] != d ||
		    pos < o)
			continue;
		size_t st = pos - o;
		if (st + s->len[i] <= len && memcmp(text + st, m, s->len[i]) == 0 &&
		    extras_ok(s, i, t))
			return 1;
	}
	return 0;
}

#ifdef REQLIT_AVX2
/* The SSE2 loop below with 32 positions per step, for CPUs that have AVX2
 * (checked at run time: the build does not assume it). */
__attribute__((target("avx2"))) static int any_avx2(const struct reqlit *s, const char *text,
						    size_t len, const struct rtext *tx)
{
	unsigned char tail[65] = {0};
	const char *p = text;
	size_t base = 0;
	for (size_t i = 0; i < len; i += 32) {
		if (i + 33 > len) {
			memcpy(tail, text + i, len - i);
			p = (const char *)tail;
			base = i;
		}
		const char *q = p + (i - base);
		__m256i v = _mm256_loadu_si256((const __m256i *)(const void *)q);
		__m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(q + 1));
		__m256i m = _mm256_setzero_si256();
		for (unsigned k = 0; k < s->nanc; k++) {
			__m256i x = _mm256_loadu_si256((const __m256i *)(const void *)s->va[k]);
			__m256i y = _mm256_loadu_si256((const __m256i *)(const void *)s->vb[k]);
			m = _mm256_or_si256(m, _mm256_and_si256(_mm256_cmpeq_epi8(v, x),
								_mm256_cmpeq_epi8(w, y)));
		}
		unsigned bits = (unsigned)_mm256_movemask_epi8(m);
		while (bits) {
			unsigned bit = (unsigned)__builtin_ctz(bits);
			if (i + bit + 1 < len && verify(s, text, len, i + bit, tx))
				return 1;
			bits &= bits - 1;
		}
	}
	return 0;
}
#endif

#ifdef REQLIT_AVX2
/* Is a member of one of the buckets in bmask at its place around text[pos]? */
static int verify_buckets(const struct reqlit *s, const char *text, size_t len, size_t pos,
			  unsigned bmask, const struct rtext *tx)
{
	unsigned char c = (unsigned char)text[pos], d = (unsigned char)text[pos + 1];
	while (bmask) {
		unsigned b = (unsigned)__builtin_ctz(bmask);
		bmask &= bmask - 1;
		for (size_t j = s->bstart[b]; j < s->bstart[b + 1]; j++) {
			size_t i = s->bmem[j], o = s->off[i], ml = s->len[i];
			const unsigned char *m = (const unsigned char *)s->s[i];
			if (m[o] != c || m[o + 1] != d || pos < o)
				continue;
			size_t st = pos - o;
			if (st + ml > len)
				continue;
			/* members are short: a byte loop beats a call to memcmp() */
			const unsigned char *t = (const unsigned char *)text + st;
			size_t k = 0;
			if (ml <= 16) {
				while (k < ml && t[k] == m[k])
					k++;
				if (k == ml && extras_ok(s, i, tx))
					return 1;
			} else if (memcmp(t, m, ml) == 0 && extras_ok(s, i, tx)) {
				return 1;
			}
		}
	}
	return 0;
}

/* The nibble scan (see struct reqlit): 32 positions per step. A text of 33
 * bytes or more is read in place, its last step overlapping the one before;
 * a shorter one is copied into a zero-padded buffer (no member holds NUL). */
__attribute__((target("avx2"))) static int any_teddy(const struct reqlit *s, const char *text,
						     size_t len, const struct rtext *tx)
{
	const __m256i lo1 = _mm256_loadu_si256((const __m256i *)(const void *)s->tlo1);
	const __m256i hi1 = _mm256_loadu_si256((const __m256i *)(const void *)s->thi1);
	const __m256i lo2 = _mm256_loadu_si256((const __m256i *)(const void *)s->tlo2);
	const __m256i hi2 = _mm256_loadu_si256((const __m256i *)(const void *)s->thi2);
	const __m256i nib = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
	unsigned char tail[64];
	size_t i = 0;
	while (i + 1 < len) {
		const char *q;
		size_t base, skip = 0;
		if (i + 33 <= len) {
			base = i;
			q = text + i;
		} else if (len >= 33) {
			base = len - 33;
			skip = i - base; /* positions already looked at */
			q = text + base;
		} else {
			memset(tail, 0, sizeof tail);
			memcpy(tail, text, len);
			base = 0;
			q = (const char *)tail;
		}
		__m256i v = _mm256_loadu_si256((const __m256i *)(const void *)q);
		__m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(q + 1));
		__m256i m1 = _mm256_and_si256(
			_mm256_shuffle_epi8(lo1, _mm256_and_si256(v, nib)),
			_mm256_shuffle_epi8(hi1, _mm256_and_si256(_mm256_srli_epi16(v, 4), nib)));
		__m256i m2 = _mm256_and_si256(
			_mm256_shuffle_epi8(lo2, _mm256_and_si256(w, nib)),
			_mm256_shuffle_epi8(hi2, _mm256_and_si256(_mm256_srli_epi16(w, 4), nib)));
		__m256i m = _mm256_and_si256(m1, m2);
		unsigned bits = ~(unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(m, zero));
		bits &= ~0u << skip;
		if (bits) {
			unsigned char bb[32];
			_mm256_storeu_si256((__m256i *)(void *)bb, m);
			while (bits) {
				unsigned bit = (unsigned)__builtin_ctz(bits);
				bits &= bits - 1;
				if (base + bit + 1 < len && verify_buckets(s, text, len, base + bit, bb[bit], tx))
					return 1;
			}
		}
		i = base + 32;
	}
	return 0;
}
#endif

/* Does text[0:len], one piece of tx, contain a member (and its extras)? */
static int any_in(const struct reqlit *s, const char *text, size_t len, const struct rtext *tx)
{
	if (!s->off || s->short_member) { /* not prepared, or a one-byte member */
		for (size_t i = 0; i < s->n; i++)
			if (contains(text, len, s->s[i], s->len[i]) && extras_ok(s, i, tx))
				return 1;
		return 0;
	}
	size_t i = 0;
#ifdef REQLIT_AVX2
	if (s->avx2 && s->teddy)
		return any_teddy(s, text, len, tx);
	if (s->avx2 && s->nanc <= 16)
		return any_avx2(s, text, len, tx);
#endif
#if defined(__SSE2__)
	/* Sixteen positions at a time: byte i against each pair's first byte and
	 * byte i + 1 against its second, so ordinary letters rarely need a look.
	 * The last positions are checked in a zero-padded copy (no member holds
	 * a NUL byte, so the padding matches nothing). */
	if (s->nanc <= 16) {
		unsigned char tail[33] = {0};
		const char *p = text;
		size_t base = 0;
		for (;;) {
			if (i + 17 > len) {
				if (i >= len)
					break;
				memcpy(tail, text + i, len - i);
				p = (const char *)tail;
				base = i;
			}
			const char *q = p + (i - base);
			__m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
			__m128i w = _mm_loadu_si128((const __m128i *)(const void *)(q + 1));
			__m128i m = _mm_setzero_si128();
			for (unsigned k = 0; k < s->nanc; k++) {
				__m128i x = _mm_loadu_si128((const __m128i *)(const void *)s->va[k]);
				__m128i y = _mm_loadu_si128((const __m128i *)(const void *)s->vb[k]);
				m = _mm_or_si128(m, _mm_and_si128(_mm_cmpeq_epi8(v, x),
								  _mm_cmpeq_epi8(w, y)));
			}
			unsigned bits = (unsigned)_mm_movemask_epi8(m);
			while (bits) {
				unsigned bit = (unsigned)__builtin_ctz(bits);
				if (i + bit + 1 < len && verify(s, text, len, i + bit, tx))
					return 1;
				bits &= bits - 1;
			}
			i += 16;
		}
		return 0;
	}
#endif
	for (; i + 1 < len; i++)
		if (s->is_anc[(unsigned char)text[i]] && verify(s, text, len, i, tx))
			return 1;
	return 0;
}

int reqlit_any_split(const struct reqlit *s, const char *a, size_t alen, const char *c,
		     size_t clen)
{
	if (s->n == 0)
		return 0;
	const struct rtext tx = {a, c, alen, clen};
	if (any_in(s, c, clen, &tx) || (alen && any_in(s, a, alen, &tx)))
		return 1;
	if (!alen || !clen)
		return 0;
	/* a member across the joint: members have at most REQLIT_MAX_LEN bytes */
	char j[2 * REQLIT_MAX_LEN];
	size_t ja = alen < REQLIT_MAX_LEN - 1 ? alen : REQLIT_MAX_LEN - 1;
	size_t jc = clen < REQLIT_MAX_LEN - 1 ? clen : REQLIT_MAX_LEN - 1;
	memcpy(j, a + alen - ja, ja);
	memcpy(j + ja, c, jc);
	return any_in(s, j, ja + jc, &tx);
}

int reqlit_any(const struct reqlit *s, const char *text, size_t len)
{
	return reqlit_any_split(s, "", 0, text, len);
}

/* Is a better than b? Longer shortest member first, then fewer members. */
static int better(const struct reqlit *a, const struct reqlit *b)
{
	if (a->n == 0)
		return 0;
	if (b->n == 0)
		return 1;
	size_t ma = reqlit_minlen(a), mb = reqlit_minlen(b);
	return ma != mb ? ma > mb : a->n < b->n;
}

/* Keeps cand in best when it is better; cand is emptied either way. */
static void offer(struct reqlit *best, struct reqlit *cand)
{
	if (better(cand, best)) {
		reqlit_free(best);
		*best = *cand;
		memset(cand, 0, sizeof *cand);
	} else {
		reqlit_free(cand);
	}
}

/* Offers a run; it is also noted in singles (every literal a sequence
 * requires, which become the extras of the sequence's best set). */
static void offer_run(struct reqlit *best, struct reqlit *singles, struct strbuf *run)
{
	if (run->len) {
		/* a prefix of a required literal is required too; long ones cost more to search */
		size_t n = run->len > REQLIT_MAX_LEN ? REQLIT_MAX_LEN : run->len;
		struct reqlit c = {0};
		set_add(&c, run->s, n);
		set_add(singles, run->s, n);
		offer(best, &c);
	}
	strbuf_reset(run);
}

/* Shortest literal worth keeping as an extra: shorter ones are in nearly
 * every line (the caller's own minimum for members is the same). */
#define REQLIT_MIN_EXTRA 3

/* Every text that matches the sequence contains a member of best and each
 * of singles: the singles a member does not contain itself become its extras,
 * longest first. */
static void attach_extras(struct reqlit *best, const struct reqlit *singles)
{
	for (size_t i = 0; i < best->n; i++) {
		size_t have = ex_count(best->ex[i]);
		for (size_t pass = REQLIT_MAX_LEN; pass >= REQLIT_MIN_EXTRA; pass--)
			for (size_t k = 0; k < singles->n; k++) {
				const char *v = singles->s[k];
				size_t vn = singles->len[k];
				if (vn != pass || have >= REQLIT_MAX_EXTRA ||
				    contains(best->s[i], best->len[i], v, vn))
					continue;
				int dup = 0;
				for (const char *e = best->ex[i]; e && *e; e += strlen(e) + 1)
					if (strlen(e) == vn && memcmp(e, v, vn) == 0)
						dup = 1;
				if (dup)
					continue;
				ex_add(&best->ex[i], v, vn);
				have++;
			}
	}
}

/* Reads a quantifier at r->p if there is one; returns its minimum (0 or 1
 * meaning "at least one"), or 2 when there is no quantifier. */
static int quantifier(struct rdr *r)
{
	const char *p = r->p;
	int min;
	if (*p == '?' || *p == '*') {
		min = 0;
		p++;
	} else if (*p == '+') {
		min = 1;
		p++;
	} else if (*p == '{') {
		const char *q = p + 1;
		unsigned long lo = 0;
		int digits = 0;
		while (*q >= '0' && *q <= '9') {
			lo = lo * 10 + (unsigned long)(*q - '0');
			if (lo > 100000)
				lo = 100000;
			q++;
			digits = 1;
		}
		int comma = 0;
		if (*q == ',') {
			comma = 1;
			q++;
			while (*q >= '0' && *q <= '9')
				q++;
		}
		if (*q != '}' || (!digits && !comma)) {
			/* not a quantifier: a literal '{' follows, which the caller reads */
			return 2;
		}
		min = lo > 0;
		p = q + 1;
	} else {
		return 2;
	}
	if (*p == '?' || *p == '+') /* lazy or possessive */
		p++;
	r->p = p;
	return min;
}

static void read_alts(struct rdr *r, struct reqlit *out);

/* Skips a character class starting at '['. */
static void skip_class(struct rdr *r)
{
	const char *p = r->p + 1;
	if (*p == '^')
		p++;
	if (*p == ']')
		p++;
	while (*p && *p != ']') {
		if (*p == '\\') {
			if (!p[1]) {
				r->ok = 0;
				return;
			}
			p += 2;
		} else if (*p == '[' && p[1] == ':') {
			/* "[:name:]"; PCRE2 reads anything less plain ("[:[:]", a ']'
			 * or '\\' before ":]") by rules not worth copying: give up */
			const char *e = strstr(p + 2, ":]");
			if (!e || strcspn(p + 2, "[]\\") < (size_t)(e - (p + 2))) {
				r->ok = 0;
				return;
			}
			p = e + 2;
		} else {
			p++;
		}
	}
	if (*p != ']') {
		r->ok = 0;
		return;
	}
	r->p = p + 1;
}

/* Skips the group starting at '(' without reading it: it requires nothing
 * as far as the caller knows, the literals around it keep their meaning. */
static void skip_group(struct rdr *r)
{
	const char *p = r->p;
	if (p[1] == '?' && p[2] == '#') { /* comment: up to the first ')' */
		p = strchr(p, ')');
		if (!p) {
			r->ok = 0;
			return;
		}
		r->p = p + 1;
		return;
	}
	int depth = 0;
	while (*p) {
		if (*p == '\\') {
			if (!p[1] || p[1] == 'Q') {
				r->ok = 0;
				return;
			}
			p += 2;
			continue;
		}
		if (*p == '[') {
			r->p = p;
			skip_class(r);
			if (!r->ok)
				return;
			p = r->p;
			continue;
		}
		if (*p == '(') {
			depth++;
		} else if (*p == ')' && --depth == 0) {
			r->p = p + 1;
			return;
		}
		p++;
	}
	r->ok = 0;
}

/* Reads a group starting at '('; *out receives what it requires (if it is
 * mandatory, which the caller decides from the quantifier after it). */
static void read_group(struct rdr *r, struct reqlit *out)
{
	const char *p = r->p + 1;
	int look = 0;
	if (*p == '*' || (p[0] == '?' && p[1] == '#')) {
		/* a verb or option setting such as "(*MARK:x)", "(*UTF)" or
		 * "(*ACCEPT)": not text, and able to change what a match needs;
		 * a comment "(?#...)" passes a quantifier after it on to the atom
		 * before it, which the runs here have already taken as required */
		r->ok = 0;
		return;
	}
	if (*p == '?') {
		p++;
		if (*p == ':' || *p == '|' || *p == '>') {
			p++;
		} else if ((*p == 'P' && p[1] == '<') || (*p == '<' && p[1] != '=' && p[1] != '!') ||
			   *p == '\'') {
			char close = *p == '\'' ? '\'' : '>';
			p = strchr(p + 1, close);
			if (!p) {
				r->ok = 0;
				return;
			}
			p++;
		} else if (*p == '=' || *p == '!') {
			look = *p == '!' ? -1 : 1;
			p++;
		} else if (*p == '<' && (p[1] == '=' || p[1] == '!')) {
			look = p[1] == '!' ? -1 : 1;
			p += 2;
		} else {
			const char *q = p;
			while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || *q == '-' ||
			       *q == '^')
				q++;
			if (*q == ')' && q > p) {
				/* "(?i)": the options change every literal after it */
				r->ok = 0;
				return;
			}
			/* scoped options "(?i:...)", comments, conditionals, recursion,
			 * (?P=name): read as requiring nothing */
			skip_group(r);
			return;
		}
	}
	if (++r->depth > REQLIT_MAX_DEPTH) {
		r->ok = 0;
		return;
	}
	r->p = p;
	struct reqlit in = {0};
	read_alts(r, &in);
	r->depth--;
	if (!r->ok || *r->p != ')') {
		r->ok = 0;
		reqlit_free(&in);
		return;
	}
	r->p++;
	if (look < 0)
		reqlit_free(&in); /* a negative lookaround requires nothing */
	else
		*out = in; /* a positive one's text is in the subject too */
}

/* A group that is nothing but literal text, like fail2ban's tag groups
 * "(?P<mlfforget>disconnect)": appends the text to acc and returns the
 * position after ')', or NULL. Such a group does not end a run, so
 * "Received (?P<x>disconnect) from" yields one literal. */
static const char *literal_group(const char *p, struct strbuf *acc, int depth)
{
	if (*p != '(' || depth > REQLIT_MAX_DEPTH)
		return NULL;
	p++;
	if (*p == '?') {
		p++;
		if (*p == ':') {
			p++;
		} else if ((*p == 'P' && p[1] == '<') || (*p == '<' && p[1] != '=' && p[1] != '!')) {
			p = strchr(p, '>');
			if (!p)
				return NULL;
			p++;
		} else {
			return NULL;
		}
	}
	while (*p != ')') {
		unsigned char c = (unsigned char)*p;
		if (c == '(') {
			p = literal_group(p, acc, depth + 1);
			if (!p)
				return NULL;
		} else if (c == '\\') {
			unsigned char e = (unsigned char)p[1];
			if (!e || e >= 0x80 || e == '\n' || e == '\r' || (e >= '0' && e <= '9') ||
			    (e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z'))
				return NULL;
			strbuf_addc(acc, (char)e);
			p += 2;
		} else if (!c || c >= 0x80 || strchr(".^$*+?{}[|\n\r", c)) {
			return NULL;
		} else {
			strbuf_addc(acc, (char)c);
			p++;
		}
		if (*p == '?' || *p == '*' || *p == '+' || *p == '{')
			return NULL; /* the last atom is repeated or optional */
	}
	return p + 1;
}

/* One alternative: up to '|', ')' or the end. *out receives its best set. */
static void read_seq(struct rdr *r, struct reqlit *out)
{
	struct strbuf run = STRBUF_INIT, lit = STRBUF_INIT;
	struct reqlit singles = {0};
	while (r->ok && *r->p && *r->p != '|' && *r->p != ')') {
		unsigned char c = (unsigned char)*r->p;
		if (c == '(') {
			strbuf_reset(&lit);
			const char *e = literal_group(r->p, &lit, 0);
			if (e && !(*e == '?' || *e == '*' || *e == '+' || *e == '{')) {
				strbuf_add(&run, lit.s, lit.len);
				r->p = e;
				continue;
			}
			offer_run(out, &singles, &run);
			struct reqlit g = {0};
			read_group(r, &g);
			if (!r->ok) {
				reqlit_free(&g);
				break;
			}
			if (quantifier(r) == 0) {
				reqlit_free(&g);
			} else {
				/* a required group with one member: it and its extras
				 * are required literals of this sequence too */
				if (g.n == 1) {
					set_add(&singles, g.s[0], g.len[0]);
					for (const char *e = g.ex[0]; e && *e; e += strlen(e) + 1)
						set_add(&singles, e, strlen(e));
				}
				offer(out, &g);
			}
			continue;
		}
		if (c == '[') {
			offer_run(out, &singles, &run);
			skip_class(r);
			quantifier(r);
			continue;
		}
		if (c == '\\') {
			unsigned char e = (unsigned char)r->p[1];
			if (!e || e >= 0x80 || e == '\n' || e == '\r' || (e >= '0' && e <= '9') ||
			    strchr("QEcxopPNgku", e)) {
				r->ok = 0;
				break;
			}
			if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
				/* a class or an assertion (\d \s \w \b \A \n ...) */
				offer_run(out, &singles, &run);
				r->p += 2;
				quantifier(r);
				continue;
			}
			r->p++;
			c = e; /* an escaped punctuation character is itself */
		} else if (c >= 0x80) {
			/* a multi-byte character: kept out of runs (quantifiers bind to all of it) */
			offer_run(out, &singles, &run);
			r->p++;
			while ((unsigned char)*r->p >= 0x80 && ((unsigned char)*r->p & 0xc0) == 0x80)
				r->p++;
			quantifier(r);
			continue;
		} else if (strchr(".^$*+?{}\n\r", c)) {
			/* newlines stay out: the caller searches single lines */
			offer_run(out, &singles, &run);
			r->p++;
			quantifier(r);
			continue;
		}
		/* a literal byte */
		r->p++;
		int q = quantifier(r);
		if (q == 0) {
			offer_run(out, &singles, &run);
		} else {
			strbuf_addc(&run, (char)c);
			if (q == 1)
				offer_run(out, &singles, &run);
		}
	}
	offer_run(out, &singles, &run);
	if (r->ok)
		attach_extras(out, &singles);
	reqlit_free(&singles);
	strbuf_free(&run);
	strbuf_free(&lit);
}

/* Alternatives up to ')' or the end: the union of each one's best set, or
 * nothing when one of them requires nothing. */
static void read_alts(struct rdr *r, struct reqlit *out)
{
	int none = 0;
	for (;;) {
		struct reqlit a = {0};
		read_seq(r, &a);
		if (!r->ok) {
			reqlit_free(&a);
			break;
		}
		if (a.n == 0)
			none = 1;
		if (!none)
			reqlit_union(out, &a);
		reqlit_free(&a);
		if (*r->p != '|')
			break;
		r->p++;
	}
	if (none || !r->ok)
		reqlit_free(out);
}

int reqlit_from_pattern(const char *pat, uint32_t pflags, struct reqlit *out)
{
	memset(out, 0, sizeof *out);
	if (pflags & (PCRE2_CASELESS | PCRE2_EXTENDED | PCRE2_EXTENDED_MORE | PCRE2_LITERAL))
		return 0;
	struct rdr r = {pat, 1, 0};
	read_alts(&r, out);
	if (!r.ok || *r.p != '\0') {
		reqlit_free(out);
		return 0;
	}
	reqlit_minimize(out);
	return out->n > 0;
}
