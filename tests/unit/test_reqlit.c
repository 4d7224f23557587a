/*
 * test_reqlit - required literals of PCRE2 patterns: what is found for the
 * shapes fail2ban filters use (runs, alternatives, tag groups, lookarounds),
 * what makes the reader give up, the search itself, and a randomised check
 * that no text PCRE2 matches is ever rejected by the literal set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/strbuf.h"
#include "filters/reqlit.h"

/* The set of pat as one string "a|b|c" in the set's order ("" when none). */
static char *set_of(const char *pat, uint32_t flags)
{
	struct reqlit s;
	struct strbuf b = STRBUF_INIT;
	reqlit_from_pattern(pat, flags, &s);
	for (size_t i = 0; i < s.n; i++) {
		if (i)
			strbuf_addc(&b, '|');
		strbuf_add(&b, s.s[i], s.len[i]);
	}
	reqlit_free(&s);
	strbuf_addc(&b, '\0');
	return strbuf_detach(&b);
}

static void expect(const char *pat, uint32_t flags, const char *want)
{
	char *got = set_of(pat, flags);
	if (strcmp(got, want) != 0)
		fail_msg("pattern %s: got \"%s\", want \"%s\"", pat, got, want);
	free(got);
}

static void shapes(void **state)
{
	(void)state;
	expect("^Failed password for (?P<user>\\S+) from ", 0, "Failed password for ");
	expect("^(?:foo bar|baz qux) x", 0, "foo bar|baz qux");
	expect("^(?:abc|\\d+)x", 0, "x");
	expect("abc?d", 0, "ab");
	expect("ab{0,2}cd", 0, "cd");
	expect("ab{2}cd", 0, "ab");
	expect("a\\.b\\[c", 0, "a.b[c");
	expect("a[bc]de", 0, "de");
	expect("Received (?P<x>disconnect) from", 0, "Received disconnect from");
	expect("Received (?P<x>disconnect)? from", 0, "Received ");
	expect("(?!foo)barx", 0, "barx");
	expect("ab(?=cdef)", 0, "cdef");
	expect("(?i:abcdef) defg", 0, " defg");
	expect("(?(<c>)abcdef|x)yz", 0, "yz");
	expect("(?:one|two|one more)", 0, "one|two");
	expect("x(?:abc|(?:de|fg)h)y", 0, "abc|de|fg");
	/* a literal over 32 bytes is cut to its first 32 */
	expect("0123456789abcdefghijklmnopqrstuvwxyz", 0, "0123456789abcdefghijklmnopqrstuv");
	/* nothing known */
	expect("abc", PCRE2_CASELESS, "");
	expect("(?i)abc", 0, "");
	expect("a(?x)bc", 0, "");
	expect("\\Qabc\\E", 0, "");
	expect("abc\\1", 0, "");
	expect("abc|\\d", 0, "");
	expect("(abc", 0, "");
	expect("abc)", 0, "");
	expect("[abc", 0, "");
	expect("", 0, "");
	expect("\\d+\\s*", 0, "");
}

static void check_search(const struct reqlit *s)
{
	const char *yes[] = {
	    "Failed password for root",
	    "xx Invalid user for",
	    "a line long enough to need more than one block of sixteen: Invalid user",
	    "Invalid user",
	};
	const char *no[] = {
	    "",
	    "Failed passwor",
	    "a line long enough to need more than one block of sixteen: Invalid use",
	    "failed password",
	};
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
		assert_true(reqlit_any(s, yes[i], strlen(yes[i])));
	for (size_t i = 0; i < sizeof no / sizeof *no; i++)
		assert_false(reqlit_any(s, no[i], strlen(no[i])));
	/* NUL bytes in the text are ordinary bytes */
	const char nul[] = "\0\0Invalid user\0";
	assert_true(reqlit_any(s, nul, sizeof nul - 1));
	/* every position of a long text, including the last bytes */
	char buf[200];
	for (size_t at = 0; at + 12 <= sizeof buf; at++) {
		memset(buf, 'v', sizeof buf);
		memcpy(buf + at, "Invalid user", 12);
		assert_true(reqlit_any(s, buf, sizeof buf));
		assert_false(reqlit_any(s, buf, at + 11));
	}
}

static void search(void **state)
{
	(void)state;
	struct reqlit s;
	assert_true(reqlit_from_pattern("(?:Failed password|Invalid user) ", 0, &s));
	reqlit_prepare(&s);
	check_search(&s); /* the CPU's best scan */
	s.avx2 = 0;
	check_search(&s); /* SSE2 and the byte table */
	reqlit_free(&s);

	/* more than 16 anchor pairs: the byte-table scan alone */
	assert_true(reqlit_from_pattern("(?:A1x|B2x|C3x|D4x|E5x|F6x|G7x|H8x|I9x|J0x|K1x|L2x|M3x|"
					"N4x|O5x|P6x|Q7x|R8x|S9x|T0x)",
					0, &s));
	reqlit_prepare(&s);
	assert_true(s.nanc > 16);
	char buf[100];
	memset(buf, 'x', sizeof buf);
	assert_false(reqlit_any(&s, buf, sizeof buf));
	memcpy(buf + sizeof buf - 3, "T0x", 3);
	assert_true(reqlit_any(&s, buf, sizeof buf));
	assert_false(reqlit_any(&s, buf, sizeof buf - 1));
	reqlit_free(&s);
}

/* Random patterns over a small alphabet: whenever PCRE2 finds a match, the
 * literal set must accept the text. */
static unsigned long rng = 12345;
static unsigned rnd(unsigned n)
{
	rng = rng * 6364136223846793005ul + 1442695040888963407ul;
	return (unsigned)((rng >> 33) % n);
}

static void gen(struct strbuf *b, int depth)
{
	unsigned n = 1 + rnd(5);
	for (unsigned i = 0; i < n; i++) {
		unsigned k = rnd(depth > 3 ? 6 : 10);
		if (k < 4) {
			strbuf_addc(b, "ab c"[rnd(4)]);
		} else if (k == 4) {
			strbuf_adds(b, rnd(2) ? "[ab]" : ".");
		} else if (k == 5) {
			strbuf_adds(b, rnd(2) ? "\\s" : "\\.");
		} else {
			static const char *const open[] = {"(", "(?:", "(?P<g>", "(?=", "(?!", "(?<n>"};
			strbuf_adds(b, open[rnd(6)]);
			gen(b, depth + 1);
			while (rnd(3) == 0) {
				strbuf_addc(b, '|');
				gen(b, depth + 1);
			}
			strbuf_addc(b, ')');
		}
		static const char *const q[] = {"", "", "", "?", "*", "+", "{0,2}", "{1,2}", "{2}"};
		strbuf_adds(b, q[rnd(9)]);
	}
}

static void never_rejects_a_match(void **state)
{
	(void)state;
	pcre2_match_data *md = pcre2_match_data_create(16, NULL);
	/* nested repetitions of random patterns can backtrack for ages */
	pcre2_match_context *mc = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(mc, 20000);
	unsigned long checked = 0, known = 0;
	for (int round = 0; round < 3000; round++) {
		struct strbuf p = STRBUF_INIT;
		gen(&p, 0);
		int ec;
		PCRE2_SIZE eo;
		pcre2_code *c = pcre2_compile((PCRE2_SPTR)p.s, p.len, PCRE2_DUPNAMES, &ec, &eo, NULL);
		if (!c) {
			strbuf_free(&p);
			continue;
		}
		struct reqlit s;
		reqlit_from_pattern(p.s, 0, &s);
		reqlit_prepare(&s);
		known += s.n > 0;
		for (int t = 0; t < 60; t++) {
			char text[48];
			size_t n = rnd(sizeof text);
			for (size_t i = 0; i < n; i++)
				text[i] = ".ab c"[rnd(5)];
			if (pcre2_match(c, (PCRE2_SPTR)text, n, 0, 0, md, mc) < 0)
				continue;
			checked++;
			if (s.n && !reqlit_any(&s, text, n))
				fail_msg("pattern %s rejects matching text \"%.*s\" (literal %s)", p.s,
					 (int)n, text, s.s[0]);
			/* the same text in two pieces, cut anywhere */
			size_t cut = rnd((unsigned)n + 1);
			if (s.n && !reqlit_any_split(&s, text, cut, text + cut, n - cut))
				fail_msg("pattern %s rejects matching text \"%.*s\" cut at %zu", p.s,
					 (int)n, text, cut);
		}
		reqlit_free(&s);
		pcre2_code_free(c);
		strbuf_free(&p);
	}
	assert_true(checked > 1000);
	assert_true(known > 300);
	pcre2_match_context_free(mc);
	pcre2_match_data_free(md);
}

/* Sets of many members (up to 16 anchor pairs, so that buckets are shared):
 * every scan must agree with a plain memmem() over all members, at every
 * length and position, including texts with NUL bytes. */
static void scans_agree(void **state)
{
	(void)state;
	static const char alpha[] = "aUubRsT e\0:.";
	unsigned avx2_rounds = 0, shared = 0;
	for (int round = 0; round < 400; round++) {
		struct reqlit s = {0};
		unsigned nm = 1 + rnd(20);
		struct strbuf pat = STRBUF_INIT;
		strbuf_adds(&pat, "(?:");
		for (unsigned k = 0; k < nm; k++) {
			unsigned ml = 2 + rnd(5);
			if (k)
				strbuf_addc(&pat, '|');
			for (unsigned i = 0; i < ml; i++) {
				char c = "aUubRsTe:xyzQW"[rnd(14)];
				strbuf_addc(&pat, c);
			}
		}
		strbuf_addc(&pat, ')');
		if (!reqlit_from_pattern(pat.s, 0, &s)) {
			strbuf_free(&pat);
			continue;
		}
		reqlit_prepare(&s);
		avx2_rounds += s.avx2 != 0;
		shared += s.teddy && s.nanc > 8; /* buckets hold several pairs */
		for (int t = 0; t < 40; t++) {
			char text[80];
			size_t n = rnd(sizeof text);
			for (size_t i = 0; i < n; i++)
				text[i] = alpha[rnd(sizeof alpha - 1)];
			if (n > 8 && rnd(2)) {
				size_t k = rnd((unsigned)s.n);
				if (s.len[k] <= n)
					memcpy(text + rnd((unsigned)(n - s.len[k] + 1)), s.s[k], s.len[k]);
			}
			int want = 0;
			for (size_t k = 0; k < s.n && !want; k++)
				want = s.len[k] <= n && memmem(text, n, s.s[k], s.len[k]) != NULL;
			int avx2 = s.avx2;
			if (reqlit_any(&s, text, n) != want)
				fail_msg("pattern %s, text \"%.*s\": scan says %d", pat.s, (int)n, text,
					 !want);
			s.avx2 = 0;
			if (reqlit_any(&s, text, n) != want)
				fail_msg("pattern %s, text \"%.*s\": SSE2 scan says %d", pat.s, (int)n,
					 text, !want);
			s.avx2 = avx2;
		}
		reqlit_free(&s);
		strbuf_free(&pat);
	}
	if (avx2_rounds)
		assert_true(shared > 10);
}

/* Other literals the same sequence requires ride along as extras: a text
 * must hold a member and all of that member's extras, in any order, in
 * either piece of a split text or across the joint. */
static void extras(void **state)
{
	(void)state;
	struct reqlit s;
	assert_true(reqlit_from_pattern(
		"^(?:warning:|disconnect(?= from \\S+(?: \\S+=\\d+)* auth=0/\\d+)) (?P<c>.+)$", 0, &s));
	reqlit_prepare(&s);
	assert_int_equal(s.n, 2);
	assert_true(reqlit_any(&s, "x warning: y", 12));
	assert_true(reqlit_any(&s, "disconnect from h[1.2.3.4] ehlo=1 auth=0/1 quit=1", 49));
	assert_false(reqlit_any(&s, "disconnect from h[1.2.3.4] ehlo=1 quit=1 commands=2", 51));
	assert_true(reqlit_any_split(&s, "disconnect fr", 13, "om x auth=0/2", 13));
	/* the extras here are " auth=0/" and " from " */
	assert_true(reqlit_any_split(&s, " from x auth=0/2 ", 17, "disconnect", 10));
	assert_false(reqlit_any_split(&s, " auth=0/2 ", 10, "disconnect", 10));
	assert_true(reqlit_any_split(&s, "x aut", 5, "h=0/2 disconnect from y", 23));
	assert_false(reqlit_any_split(&s, "x aut", 5, "h=1/2 disconnect from y", 23));
	s.avx2 = 0;
	assert_false(reqlit_any(&s, "disconnect from h[1.2.3.4] ehlo=1 quit=1 commands=2", 51));
	assert_true(reqlit_any_split(&s, "x aut", 5, "h=0/2 disconnect from y", 23));
	reqlit_free(&s);

	/* alternatives keep their own extras; a member with extras is not
	 * dropped for a shorter one it contains, nor the other way round */
	assert_true(reqlit_from_pattern("(?:abcd efg|abcd) (?:xyz1|xyz2) tail", 0, &s));
	reqlit_prepare(&s);
	assert_true(reqlit_any(&s, "abcd xyz2 tail", 14));
	assert_false(reqlit_any(&s, "abcd xyz2 tai", 13));
	reqlit_free(&s);
}

/* Syntax whose effect the reader does not model makes the answer "nothing
 * known" (each of these once produced a literal the pattern does not need). */
static void gives_up(void **state)
{
	(void)state;
	static const char *const pats[] = {
		"(*:mark)needed",        /* a verb, not a group of text */
		"(*ACCEPT)needed",
		"from\\](?#note)?",     /* the '?' belongs to the ']' */
		"[[:[:]||]I",            /* not a POSIX class to PCRE2: "||" is outside */
		"[[:al]pha:]]word",
	};
	for (size_t i = 0; i < sizeof pats / sizeof *pats; i++) {
		struct reqlit s;
		if (reqlit_from_pattern(pats[i], 0, &s))
			fail_msg("pattern %s: literal %s", pats[i], s.s[0]);
		reqlit_free(&s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(shapes),
		cmocka_unit_test(search),
		cmocka_unit_test(never_rejects_a_match),
		cmocka_unit_test(scans_agree),
		cmocka_unit_test(extras),
		cmocka_unit_test(gives_up),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
