/*
 * reqlit - required literals of a PCRE2 pattern, for rejecting a log line
 * before any regex runs.
 *
 * INTERFACE: reqlit_from_pattern() reads a translated (PCRE2 syntax) pattern
 * and returns a set of literal byte strings of which every match must contain
 * at least one (an "any of" set); a member may carry extra literals that
 * must be there too (an "all of" list). reqlit_union() widens a set to "this
 * or that"; reqlit_any() tells whether a text contains one of the set (with
 * its extras), reqlit_any_split() the same for a text in two pieces. An empty
 * set (n == 0) means nothing is known: the caller must not reject anything.
 * Strings are owned by the set; reqlit_free() releases them.
 *
 * Why not PCRE2's own information: pcre2_pattern_info() gives at most one
 * first and one last required code unit, which nearly every log line has
 * (":" or " "). A whole word such as "Failed password" rejects almost all
 * lines of other services with one memmem(). The reader is conservative:
 * whatever it does not understand (case folding, inline flags, classes,
 * escapes with letters) ends a literal or gives up, never adds one.
 */
#ifndef MXJAIL_FILTERS_REQLIT_H
#define MXJAIL_FILTERS_REQLIT_H

#include <stddef.h>
#include <stdint.h>

struct reqlit {
	char **s;
	size_t *len;
	size_t n, cap;
	/* ex[i]: literals that every text containing s[i] must also contain to
	 * be accepted (other words the same part of the pattern requires, e.g.
	 * "disconnect" plus " auth=0/"), as NUL-terminated strings one after
	 * the other, ended by an empty one; NULL for none */
	char **ex;
	/* set by reqlit_prepare(): each member is found through its rarest pair
	 * of adjacent bytes (members have at least two bytes; one-byte members
	 * are searched with memchr) */
	size_t *off;             /* offset of that pair in the member */
	unsigned nanc;           /* distinct anchor pairs */
	unsigned char anc[16][2];
	unsigned char va[16][32], vb[16][32]; /* anc[k][0] and anc[k][1] repeated */
	int avx2;                /* the CPU has AVX2: 32 positions at a time */
	unsigned char is_anc[256];
	int short_member;        /* a member of one byte: plain search */
	/* With AVX2 the anchor pairs are looked up by their nibbles (four table
	 * lookups per 32 positions, whatever their number) in up to eight
	 * buckets; a position's bucket bits select the members to compare. */
	int teddy;
	unsigned char tlo1[32], thi1[32], tlo2[32], thi2[32];
	size_t *bmem;            /* member indices grouped by bucket */
	size_t bstart[9];        /* bucket b: bmem[bstart[b]..bstart[b + 1]) */
};

/* Fills out (which must be empty) with literals one of which every match of
 * pat contains; returns 1, or 0 with out empty when none is known. pflags are
 * the PCRE2 compile options implied by the pattern (PCRE2_CASELESS or
 * PCRE2_EXTENDED make the answer "nothing known"). */
int reqlit_from_pattern(const char *pat, uint32_t pflags, struct reqlit *out);
/* dst becomes "dst or src" (both must be non-empty for that to mean anything). */
void reqlit_union(struct reqlit *dst, const struct reqlit *src);
/* Drops duplicates and literals containing another member (implied by it). */
void reqlit_minimize(struct reqlit *s);
/* Forgets every member's extra literals (which can keep members apart that
 * minimizing would merge), then minimizes. */
void reqlit_drop_extras(struct reqlit *s);
/* Makes reqlit_any() fast; call after the last change to the set. */
void reqlit_prepare(struct reqlit *s);
/* Length of the shortest member (0 for an empty set). */
size_t reqlit_minlen(const struct reqlit *s);
/* 1 when text[0:len] contains at least one member (and its extra literals). */
int reqlit_any(const struct reqlit *s, const char *text, size_t len);
/* The same for the text a + c given in two pieces (a line with its date cut
 * out): members and extras may lie in either piece or span the joint. */
int reqlit_any_split(const struct reqlit *s, const char *a, size_t alen, const char *c,
		     size_t clen);
void reqlit_free(struct reqlit *s);

#endif
