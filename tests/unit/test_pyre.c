/*
 * test_pyre - unit tests for filters/pyre: each Python construct is
 * translated, compiled with PCRE2 the way the filter engine does, and run on
 * sample strings whose expected results come from Python 3.11's re.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "filters/pyre.h"

/* Translates and compiles; fails the test on error. */
static pcre2_code *compile(const char *py, uint32_t *flags_out)
{
	char err[200];
	uint32_t flags;
	char *pat = pyre_translate(py, &flags, err, sizeof err);
	if (!pat) {
		print_error("'%s': %s\n", py, err);
		fail();
	}
	uint32_t o = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (flags & ~PYRE_ASCII);
	if (!(flags & PYRE_ASCII))
		o |= PCRE2_UCP;
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, o, &ec, &eo, NULL);
	if (!re) {
		print_error("'%s' -> '%s' does not compile (%d at %zu)\n", py, pat, ec, (size_t)eo);
		fail();
	}
	free(pat);
	if (flags_out)
		*flags_out = flags;
	return re;
}

/* Returns the matched text of the first match (static buffer) or NULL. */
static const char *search(pcre2_code *re, const char *s)
{
	static char buf[256];
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	int rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
	const char *r = NULL;
	if (rc >= 0) {
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
		size_t n = ov[1] - ov[0];
		if (n >= sizeof buf)
			n = sizeof buf - 1;
		memcpy(buf, s + ov[0], n);
		buf[n] = '\0';
		r = buf;
	}
	pcre2_match_data_free(md);
	return r;
}

/* pattern, subject, expected match text (NULL: no match) - from Python. */
struct mcase {
	const char *py, *subj, *want;
};

static const struct mcase match_cases[] = {
	/* named groups and references */
	{"(?P<n>a+)-(?P=n)", "aa-aa", "aa-aa"},
	{"(?P<n>a+)-(?P=n)$", "aa-a", "a-a"},
	{"^(?P<n>a+)-(?P=n)$", "aa-a", NULL},
	{"(a)(b)\\2\\1", "abba", "abba"},
	{"(a)\\1{2}", "aaa", "aaa"},
	{"(a)\\10", "aa0", NULL},      /* \10 is group 10 ... refused, see below */
	/* octal vs group references */
	{"\\101", "A", "A"},
	{"\\0", "\x01\x00", NULL},
	{"x\\012", "x\n", "x\n"},
	{"\\1010", "A0", "A0"},
	{"(a)\\1", "aa", "aa"},
	/* \Z is end of string only */
	{"a\\Z", "a\n", NULL},
	{"a\\Z", "a", "a"},
	{"a$", "a\n", "a"},
	/* {,n} and braces that are text */
	{"^a{,2}$", "aa", "aa"},
	{"^a{,2}$", "aaa", NULL},
	{"^a{,}$", "aaaa", "aaaa"},
	{"a{,3}", "a{,3}", "a"},
	{"a{1", "a{1", "a{1"},
	{"a{x}", "a{x}", "a{x}"},
	{"a{}", "a{}", "a{}"},
	{"{", "{", "{"},
	{"a{1,2}b", "aab", "aab"},
	{"a{1,2}?", "aa", "a"},
	{"a{1,2}+a", "aa", NULL},
	{"a*+a", "aaa", NULL},
	{"(?>a+)a", "aaa", NULL},
	/* escapes */
	{"\\u00e9t\\u00E9", "\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9"},
	{"\\U0001F600", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
	{"\\x41\\x2e", "A.", "A."},
	{"\\x2e", "A", NULL},
	{"a\\vb", "a\x0b" "b", "a\x0b" "b"},
	{"a\\vb", "a\nb", NULL},
	{"\\a\\f", "\x07\x0c", "\x07\x0c"},
	{"\\d+", "x\xd9\xa1\xd9\xa2y", "\xd9\xa1\xd9\xa2"}, /* Arabic-Indic digits */
	{"\\w+", "\xc3\xa9t\xc3\xa9!", "\xc3\xa9t\xc3\xa9"},
	{"\\bfoo\\b", "a foo.", "foo"},
	{"\\bfoo\\b", "\xc3\xa9" "foo", NULL},
	{"\\B", "", NULL},
	{"\\-\\]\\}", "-]}", "-]}"},
	/* classes */
	{"[]a]+", "]a]", "]a]"},
	{"[^]a]", "]ab", "b"},
	{"[(]x[)]", "(x)", "(x)"},
	{"[[:alpha:]]+", "x:]]", ":]]"},
	{"[[:alpha:]]", "b", NULL},
	{"[a-]+", "-a-", "-a-"},
	{"[\\w-]+", "a-b c", "a-b"},
	{"[\\b]", "\x08", "\x08"},
	{"[\\101-\\x43]+", "ABCD", "ABC"},
	{"[\\u00e9-\\u00ea]", "\xc3\xaa", "\xc3\xaa"},
	{"[.^$]+", "$^.", "$^."},
	{"[\\v]", "\x0b", "\x0b"},
	{"[#]", "#", "#"},
	/* flags */
	{"(?i)login", "LOGIN", "LOGIN"},
	{"(?i)(?s)a.b", "A\nB", "A\nB"},
	{"(?m)^b", "a\nb", "b"},
	{"^b", "a\nb", NULL},
	{"(?x) a b # comment\n c", "abc", "abc"},
	{"(?x)a\\ b[ ]c", "a b c", "a b c"},
	{"(?x)a{1, 2}", "a{1,2}", "a{1,2}"},
	{"(?-i:a)b", "aB", NULL},
	{"(?i)(?-i:a)b", "aB", "aB"},
	{"(?i:a)b", "Ab", "Ab"},
	{"(?i:a)b", "AB", NULL},
	{"(?s:.)", "\n", "\n"},
	{"(?a:\\w+)", "\xc3\xa9\xc3\xa9x", "x"},
	{"(?a:\\W)", "\xc3\xa9", NULL}, /* CPython keeps \W Unicode here */
	{"(?a:\\bx)", "\xc3\xa9x", "x"},
	{"(?a)\\w+", "\xc3\xa9x", "x"},
	/* fail2ban's rewrite of ((?i)..) and (?:(?i)..) */
	{"SASL ((?i)LOGIN|PLAIN) x", "SASL login x", "SASL login x"},
	{"(?:(?i)expn|vrfy) y", "EXPN y", "EXPN y"},
	{"(?:(?i)expn|vrfy) y", "VRFY y", "VRFY y"},
	/* comments */
	{"a(?#c\\)d)b", "ab", "ab"},
	{"a(?#c)*", "aaa", "aaa"},
	{"a{1(?#c)}", "a{1}", "a{1}"},
	/* conditionals */
	{"(<)?a(?(1)>|b)", "<a>", "<a>"},
	{"(<)?a(?(1)>|b)", "ab", "ab"},
	{"(?P<o><)?a(?(o)>)", "<a", "a"},
	/* lookaround */
	{"(?<=a)b", "ab", "b"},
	{"(?<!a)b", "ab", NULL},
	{"x(?=y)", "xy", "x"},
	/* PCRE2-special text */
	{"a]", "a]", "a]"},
	{"a}", "a}", "a}"},
	{"#a", "#a", "#a"},
	{"\xc3\xa9+", "\xc3\xa9\xc3\xa9", "\xc3\xa9\xc3\xa9"},
	{"\\\xc3\xa9", "\xc3\xa9", "\xc3\xa9"},
};

static void test_matches(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
		const struct mcase *c = &match_cases[i];
		char err[200];
		uint32_t fl;
		char *t = pyre_translate(c->py, &fl, err, sizeof err);
		if (!t) {
			/* only "(a)\10" above is expected to be refused */
			assert_string_equal(c->py, "(a)\\10");
			continue;
		}
		free(t);
		pcre2_code *re = compile(c->py, NULL);
		const char *got = search(re, c->subj);
		if ((got == NULL) != (c->want == NULL) || (got && strcmp(got, c->want))) {
			print_error("'%s' on '%s': got '%s', want '%s'\n", c->py, c->subj,
				    got ? got : "(none)", c->want ? c->want : "(none)");
			fail();
		}
		pcre2_code_free(re);
	}
}

/* pattern -> exact translation and flags */
struct tcase {
	const char *py, *want;
	uint32_t flags;
};

static const struct tcase trans_cases[] = {
	{"(?P<host>\\S+)", "(?P<host>\\S+)", 0},
	{"(?P<n>a)(?P=n)", "(?P<n>a)(?P=n)", 0},
	{"a\\Z", "a\\z", 0},
	{"a{,5}", "a{0,5}", 0},
	{"a{,}", "a{0,}", 0},
	{"a{007}", "a{7}", 0},
	{"a{1", "a\\{1", 0},
	{"\\u20ac", "\\x{20ac}", 0},
	{"\\x41", "A", 0},
	{"\\x2a", "\\*", 0},
	{"\\012", "\\x{a}", 0},
	{"(a)\\1", "(a)\\g{1}", 0},
	{"[[]", "[\\[]", 0},
	{"[]]", "[\\]]", 0},
	{"[a-]", "[a\\-]", 0},
	{"(?i)x", "x", 0x8},
	{"(?m)x", "x", 0x400},
	{"(?s)x", "x", 0x20},
	{"(?x) a b", "ab", 0},
	{"(?a)x", "x", PYRE_ASCII},
	{"(?u)x", "x", 0},
	{"(?imsx)a b", "ab", 0x8 | 0x400 | 0x20},
	{"(?#c)(?i)x", "x", 0x8},
	{"(?i-s:x)", "(?i-s:x)", 0},
	{"(?x:a b)", "(?:ab)", 0},
	{"(?a:\\d)", "(?:[0-9])", 0},
	{"((?i)a)", "(?i:a)", 0},
	{"(?:(?i)a)", "(?i:a)", 0},
	{"\\((?i)a)", NULL, 0}, /* backslash stops the rewrite: Python refuses */
	{"(?(1)a|b)(c)", "(?(1)a|b)(c)", 0},
	{"(?P<x>c)(?(x)a)", "(?P<x>c)(?(<x>)a)", 0},
	{"\\B", "(?:\\B(?!\\A\\z))", 0},
	{"a\tb", "a\\x{9}b", 0},
	{"", "", 0},
};

static void test_translations(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof trans_cases / sizeof trans_cases[0]; i++) {
		const struct tcase *c = &trans_cases[i];
		char err[200];
		uint32_t fl = 0xdeadbeef;
		char *t = pyre_translate(c->py, &fl, err, sizeof err);
		if (!c->want) {
			assert_null(t);
			continue;
		}
		if (!t || strcmp(t, c->want) != 0 || fl != c->flags) {
			print_error("'%s': got '%s' flags %x, want '%s' flags %x (%s)\n", c->py,
				    t ? t : "NULL", fl, c->want, c->flags, t ? "" : err);
			fail();
		}
		free(t);
	}
}

/* pattern -> exact error (Python's message where Python has one) */
struct ecase {
	const char *py, *err;
};

static const struct ecase err_cases[] = {
	{"^(?i)a", "global flags not at the start of the expression at position 1"},
	{"a|(?i)b", "global flags not at the start of the expression at position 2"},
	{"(?P>n)", "unknown extension ?P> (PCRE recursion (?P>name) is not Python re syntax) at position 0"},
	{"(?<n>a)", "unknown extension ?<n (named groups are written (?P<name>...) in Python) at position 0"},
	{"(?|a)", "unknown extension ?| (not Python re syntax) at position 0"},
	{"(?R)", "unknown extension ?R (not Python re syntax) at position 0"},
	{"a\\z", "bad escape \\z at position 1"},
	{"\\g<1>", "bad escape \\g at position 0"},
	{"\\K", "bad escape \\K at position 0"},
	{"\\p{L}", "bad escape \\p at position 0"},
	{"\\Qa\\E", "bad escape \\Q at position 0"},
	{"[\\A]", "bad escape \\A at position 1"},
	{"[\\8]", "bad escape \\8 at position 1"},
	{"\\N{EM DASH}", "named character escape \\N{...} is not supported; write the character or \\uXXXX at position 0"},
	{"\\x4", "incomplete escape \\x4 at position 0"},
	{"\\u12", "incomplete escape \\u12 at position 0"},
	{"\\U00110000", "bad escape \\U00110000 at position 0"},
	{"\\ud800", "escape of surrogate U+D800 cannot match UTF-8 text at position 0"},
	{"\\777", "octal escape value \\777 outside of range 0-0o377 at position 0"},
	{"\\1(a)", "invalid group reference 1 at position 1"},
	{"(a\\1)", "cannot refer to an open group at position 2"},
	{"(?P=x)", "unknown group name 'x' at position 4"},
	{"(?P<x>a)(?P<x>b)", "redefinition of group name 'x' as group 2; was group 1 at position 12"},
	{"(?P<1x>a)", "bad character in group name '1x' at position 4"},
	{"(?P<abcdefghijabcdefghijabcdefghijabc>a)", "group name 'abcdefghijabcdefghijabcdefghijabc' is longer than 32 bytes (PCRE2 limit) at position 4"},
	{"(?(2)a)(b)", "invalid group reference 2 at position 3"},
	{"(?(1)a|b|c)(x)", "conditional backref with more than two branches at position 8"},
	{"(?(0)a)", "bad group number at position 3"},
	{"a**", "multiple repeat at position 2"},
	{"a{2}{3}", "multiple repeat at position 4"},
	{"*a", "nothing to repeat at position 0"},
	{"^*", "nothing to repeat at position 1"},
	{"\\b+", "nothing to repeat at position 2"},
	{"(?i)*", "nothing to repeat at position 4"},
	{"a{2,1}", "min repeat greater than max repeat at position 2"},
	{"a{70000}", "repeat count above 65535 (PCRE2 limit) at position 1"},
	{"[abc", "unterminated character set at position 0"},
	{"[]", "unterminated character set at position 0"},
	{"[c-a]", "bad character range c-a at position 1"},
	{"[\\d-z]", "bad character range \\d-z at position 1"},
	{"(a", "missing ), unterminated subpattern at position 0"},
	{"a)", "unbalanced parenthesis at position 1"},
	{"a(?#x", "missing ), unterminated comment at position 1"},
	{"a\\", "bad escape (end of pattern) at position 1"},
	{"(?", "unexpected end of pattern at position 2"},
	{"(?i", "missing -, : or ) at position 3"},
	{"(?-i)a", "missing : at position 4"},
	{"(?i-i:a)", "bad inline flags: flag turned on and off at position 5"},
	{"(?au)a", "bad inline flags: flags 'a', 'u' and 'L' are incompatible at position 4"},
	{"(?L)a", "bad inline flags: cannot use 'L' flag with a str pattern at position 2"},
	{"(?u)(?a)a", "ASCII and UNICODE flags are incompatible at position 4"},
	{"a\xff", "invalid UTF-8 in pattern at position 1"},
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
		const struct ecase *c = &err_cases[i];
		char err[200];
		uint32_t fl;
		char *t = pyre_translate(c->py, &fl, err, sizeof err);
		if (t || strcmp(err, c->err) != 0) {
			print_error("'%s': got %s '%s', want '%s'\n", c->py, t ? t : "NULL",
				    t ? "" : err, c->err);
			fail();
		}
	}
}

static void test_small_error_buffer_and_null(void **state)
{
	(void)state;
	char err[8];
	uint32_t fl;
	assert_null(pyre_translate("a**", &fl, err, sizeof err));
	assert_string_equal(err, "multipl");
	assert_null(pyre_translate("a**", &fl, NULL, 0));
	assert_null(pyre_translate(NULL, &fl, err, sizeof err));
	char *t = pyre_translate("a", NULL, NULL, 0);
	assert_string_equal(t, "a");
	free(t);
}

/* Raw mode leaves ((?i)..) alone, so Python's refusal stands. */
static void test_raw_mode(void **state)
{
	(void)state;
	char err[200];
	uint32_t fl;
	assert_null(pyre_translate_ex("((?i)a)", 0, &fl, err, sizeof err));
	assert_string_equal(err, "global flags not at the start of the expression at position 1");
	char *t = pyre_translate_ex("(?i)a", 0, &fl, err, sizeof err);
	assert_string_equal(t, "a");
	assert_int_equal(fl, 0x8);
	free(t);
}

/* Deep nesting, long input and every 2-byte string: bounded, no crash. */
static void test_garbage(void **state)
{
	(void)state;
	char err[200];
	uint32_t fl;
	static char big[PYRE_MAX_PATTERN + 2];
	char s[3] = {0};

	memset(big, '(', 1000);
	big[1000] = '\0';
	assert_null(pyre_translate(big, &fl, err, sizeof err));
	assert_string_equal(err, "too many nested groups (limit 200) at position 200");
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_null(pyre_translate(big, &fl, err, sizeof err));
	for (size_t k = 0; k + 7 < 600000; k += 7)
		memcpy(big + k, "(?P<a>)", 7);
	big[600000 - 600000 % 7] = '\0';
	assert_null(pyre_translate(big, &fl, err, sizeof err)); /* redefinition */
	for (int x = 1; x < 256; x++)
		for (int y = 0; y < 256; y++) {
			s[0] = (char)x;
			s[1] = (char)y;
			char *t = pyre_translate(s, &fl, err, sizeof err);
			free(t);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches),
		cmocka_unit_test(test_translations),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_small_error_buffer_and_null),
		cmocka_unit_test(test_raw_mode),
		cmocka_unit_test(test_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
