/*
 * test_ini - the fail2ban INI dialect (config/ini.c): case rules, delimiters,
 * continuation and blank lines, comments, errors with file:line, hostile
 * bytes, and unit layering with includes (.local siblings, loops, known/).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/ini.h"
#include "core/diag.h"
#include "core/xmalloc.h"

static const char *val(const struct ini *ini, const char *sec, const char *key)
{
	const struct ini_sect *s = sec ? ini_sect_find(ini, sec) : &ini->defaults;
	const struct ini_opt *o = s ? ini_opt_find(s, key) : NULL;
	return o ? o->value : NULL;
}

static int parse(struct ini *ini, struct diag *d, const char *text)
{
	memset(ini, 0, sizeof *ini);
	return ini_parse(ini, "t.conf", text, strlen(text), d);
}

/* True when some diagnostic contains needle. */
static int has_diag(const struct diag *d, const char *needle)
{
	for (size_t i = 0; i < d->n; i++)
		if (strstr(d->items[i].text, needle))
			return 1;
	return 0;
}

static void case_rules_and_delimiters(void **state)
{
	(void)state;
	struct ini ini;
	struct diag d = DIAG_INIT;
	assert_int_equal(parse(&ini, &d,
			       "[DEFAULT]\nShared = yes\n[Sec]\nKey = v1\nOther: v2\n"
			       "spaced   =   padded value   \nempty =\n[sec]\nkey = lower\n"), 0);
	assert_string_equal(val(&ini, NULL, "shared"), "yes");
	assert_string_equal(val(&ini, "Sec", "key"), "v1");
	assert_string_equal(val(&ini, "Sec", "other"), "v2");
	assert_string_equal(val(&ini, "Sec", "spaced"), "padded value");
	assert_string_equal(val(&ini, "Sec", "empty"), "");
	assert_string_equal(val(&ini, "sec", "key"), "lower"); /* sections are case-sensitive */
	assert_null(val(&ini, "Sec", "Key"));                    /* keys are folded */
	/* the key ends at the first delimiter, ':' or '=' */
	ini_free(&ini);
	assert_int_equal(parse(&ini, &d, "[s]\na:b = c\nx = y:z\n"), 0);
	assert_string_equal(val(&ini, "s", "a"), "b = c");
	assert_string_equal(val(&ini, "s", "x"), "y:z");
	/* the header name runs to the last ']' */
	ini_free(&ini);
	assert_int_equal(parse(&ini, &d, "[a]b] trailing\nk = v\n"), 0);
	assert_string_equal(val(&ini, "a]b", "k"), "v");
	ini_free(&ini);
	assert_int_equal(d.nerrors, 0);
}

static void continuation_and_comments(void **state)
{
	(void)state;
	struct ini ini;
	struct diag d = DIAG_INIT;
	assert_int_equal(parse(&ini, &d,
			       "[s]\n"
			       "list = one\n"          /* 2 */
			       "   two ; comment\n"    /* 3 */
			       "# full comment\n"      /* 4 */
			       "\ttabbed\n"            /* 5 */
			       "\n"                    /* 6: kept as an empty line */
			       "  after-blank\n"       /* 7 */
			       "\n\n"                  /* 8, 9: trailing, dropped */
			       "semi = a;b ;c\n"       /* 10 */
			       "; comment line\n"
			       "hash = x # not a comment\n"
			       "  ;indented comment\n"
			       "crlf = 1\r\n"
			       "  2\r"
			       "cr = 3\n"), 0);
	assert_string_equal(val(&ini, "s", "list"), "one\ntwo\ntabbed\n\nafter-blank");
	const struct ini_opt *o = ini_opt_find(ini_sect_find(&ini, "s"), "list");
	assert_int_equal(o->line, 2);
	assert_int_equal(o->nlines, 5);
	assert_int_equal(o->lines[0], 2);
	assert_int_equal(o->lines[1], 3);
	assert_int_equal(o->lines[2], 5);
	assert_int_equal(o->lines[3], 6);
	assert_int_equal(o->lines[4], 7);
	assert_string_equal(val(&ini, "s", "semi"), "a;b");
	assert_string_equal(val(&ini, "s", "hash"), "x # not a comment");
	assert_string_equal(val(&ini, "s", "crlf"), "1\n2");
	assert_string_equal(val(&ini, "s", "cr"), "3");
	assert_string_equal(o->file, "t.conf");
	ini_free(&ini);
	/* an indented line right after a header is a key line, not a continuation */
	assert_int_equal(parse(&ini, &d, "[s]\n  k = v\n    more\n"), 0);
	assert_string_equal(val(&ini, "s", "k"), "v\nmore");
	ini_free(&ini);
	assert_int_equal(d.nerrors, 0);
}

static void errors_with_location(void **state)
{
	(void)state;
	struct ini ini;
	struct diag d = DIAG_INIT;
	assert_int_equal(parse(&ini, &d, "[s]\nk = v\nno delimiter here\n"), -1);
	assert_true(has_diag(&d, "t.conf:3: expected 'key = value' or '[section]'"));
	ini_free(&ini);
	diag_clear(&d);
	assert_int_equal(parse(&ini, &d, "[s]\n\n  indented no key\n"), -1);
	assert_true(has_diag(&d, "t.conf:3: expected 'key = value' (an indented line continues"));
	ini_free(&ini);
	diag_clear(&d);
	assert_int_equal(parse(&ini, &d, "[s]\n[unclosed\n"), -1);
	assert_true(has_diag(&d, "t.conf:2: expected ']' to close the section header"));
	ini_free(&ini);
	diag_clear(&d);
	assert_int_equal(parse(&ini, &d, "# c\nk = v\n"), -1);
	assert_true(has_diag(&d, "t.conf:2: expected a section header"));
	ini_free(&ini);
	diag_clear(&d);
	assert_int_equal(parse(&ini, &d, "[s]\nk = 1\nK = 2\n"), -1);
	assert_true(has_diag(&d, "t.conf:3: expected each option once per section"));
	ini_free(&ini);
	diag_clear(&d);
	assert_int_equal(parse(&ini, &d, "[s]\n[t]\n[s]\n"), -1);
	assert_true(has_diag(&d, "t.conf:3: expected each section once per file"));
	ini_free(&ini);
	diag_clear(&d);
	assert_int_equal(parse(&ini, &d, "[s]\n = v\n"), -1);
	assert_true(has_diag(&d, "t.conf:2: expected an option name"));
	ini_free(&ini);
	diag_clear(&d);
}

static void hostile_bytes(void **state)
{
	(void)state;
	struct ini ini;
	struct diag d = DIAG_INIT;
	static const char nul[] = "[s]\nk = a\0b\nj = ok\n";
	memset(&ini, 0, sizeof ini);
	assert_int_equal(ini_parse(&ini, "n.conf", nul, sizeof nul - 1, &d), -1);
	assert_true(has_diag(&d, "n.conf:2: expected text, found a NUL byte"));
	assert_string_equal(val(&ini, "s", "j"), "ok");
	ini_free(&ini);
	diag_clear(&d);
	assert_int_equal(parse(&ini, &d, "[s]\nk = \xff\xfe\n"), -1);
	assert_true(has_diag(&d, "t.conf:2: expected UTF-8"));
	ini_free(&ini);
	diag_clear(&d);
	size_t big = 1u << 20;
	char *line = xmalloc(big + 16);
	memcpy(line, "[s]\nk = ", 8);
	memset(line + 8, 'x', big);
	line[8 + big] = '\0';
	assert_int_equal(parse(&ini, &d, line), 0);
	assert_int_equal(strlen(val(&ini, "s", "k")), big);
	ini_free(&ini);
	free(line);
}

static char *fixture(const char *rel)
{
	const char *src = getenv("MXJAIL_SRCDIR");
	return xasprintf("%s/tests/fixtures/config/%s", src ? src : ".", rel);
}

static void unit_layering(void **state)
{
	(void)state;
	struct ini ini = {0};
	struct diag d = DIAG_INIT;
	char *base = fixture("tree/filter.d/t-layer");
	/* t-layer.conf, t-layer.d/01-more.conf, t-layer.local, t-layer.d/02-last.local */
	assert_int_equal(ini_read_unit(&ini, base, &d), 4);
	assert_string_equal(val(&ini, "Definition", "maxlines"), "3");
	assert_string_equal(val(&ini, "Definition", "datepattern"), "{^LN-BEG}");
	/* the value before the last override is kept for known/ */
	assert_string_equal(val(&ini, "KNOWN/Definition", "failregex"),
			    "^local <HOST>$\n^local2 <HOST>$");
	assert_string_equal(val(&ini, "KNOWN/Definition", "maxlines"), "1");
	ini_free(&ini);
	free(base);
	/* includes: before (with its .local sibling), after, loop cut */
	base = fixture("tree/jail");
	assert_true(ini_read_unit(&ini, base, &d) >= 5);
	assert_string_equal(val(&ini, NULL, "log_b"), "from-b");
	assert_string_equal(val(&ini, NULL, "banaction"), "nftables-multiport");
	assert_string_equal(val(&ini, "alpha", "port"), "2222"); /* jail.d .local files come last */
	assert_string_equal(val(&ini, "beta", "port"), "25");
	assert_int_equal(d.nerrors, 0);
	ini_free(&ini);
	free(base);
	/* a unit that does not exist reads nothing */
	base = fixture("tree/filter.d/nonexistent");
	assert_int_equal(ini_read_unit(&ini, base, &d), 0);
	ini_free(&ini);
	free(base);
	/* conditional sections fold into their base section */
	base = fixture("tree/filter.d/t-cond");
	assert_int_equal(ini_read_unit(&ini, base, &d), 1);
	assert_string_equal(val(&ini, "Init", "blocktype?family=inet6"), "REJECT6");
	assert_string_equal(val(&ini, "Init", "blocktype"), "REJECT");
	assert_null(ini_sect_find(&ini, "Init?family=inet6"));
	ini_free(&ini);
	free(base);
}

static void include_errors(void **state)
{
	(void)state;
	struct ini ini = {0};
	struct diag d = DIAG_INIT;
	char *base = fixture("errors/filter.d/bad-include");
	assert_int_equal(ini_read_unit(&ini, base, &d), -1);
	assert_true(has_diag(&d, "bad-include.conf:2: included file"));
	assert_true(has_diag(&d, "nonexistent.conf' not found"));
	ini_free(&ini);
	free(base);
	diag_clear(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(case_rules_and_delimiters),
		cmocka_unit_test(continuation_and_comments),
		cmocka_unit_test(errors_with_location),
		cmocka_unit_test(hostile_bytes),
		cmocka_unit_test(unit_layering),
		cmocka_unit_test(include_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
