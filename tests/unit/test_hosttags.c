/*
 * test_hosttags - expansion of fail2ban regex tags into named groups.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "filters/hosttags.h"

static void expect_expand(const char *in, int usedns_no, const char *want_sub, unsigned want_nl)
{
	unsigned nl = 99;
	char *out = hosttags_expand(in, usedns_no, &nl);
	if (!strstr(out, want_sub))
		fail_msg("expanding '%s': '%s' not in '%s'", in, want_sub, out);
	assert_int_equal(nl, want_nl);
	free(out);
}

static void host_and_addr(void **state)
{
	(void)state;
	expect_expand("from <HOST>$", 0, "(?P<dns>", 0);
	expect_expand("from <HOST>$", 0, "(?P<ip4>", 0);
	unsigned nl;
	char *o = hosttags_expand("from <HOST>$", 1, &nl);
	assert_null(strstr(o, "(?P<dns>"));
	assert_non_null(strstr(o, "(?P<ip6>"));
	free(o);
	expect_expand("<ADDR>", 0, "\\[?(?:", 0);
	expect_expand("<SUBNET>", 0, "(?P<cidr>\\d+)", 0);
	expect_expand("<F-ID/>", 0, "(?P<fid>\\S+)", 0);
	expect_expand("<F-PORT/>", 0, "(?P<fport>\\w+)", 0);
}

static void custom_tags(void **state)
{
	(void)state;
	expect_expand("user <F-USER>\\S+</F-USER> x", 0, "user (?P<user>\\S+) x", 0);
	expect_expand("<F-ID>\\d+</F-ID>", 0, "(?P<fid>\\d+)", 0);
	expect_expand("<F-ALT_USER1>a</F-ALT_USER1>", 0, "(?P<alt_user1>a)", 0);
	/* a close tag that was never opened stays literal */
	expect_expand("x </F-USER> y", 0, "x </F-USER> y", 0);
	/* lower-case and unknown tags stay literal */
	expect_expand("<user> <F-user> <FOO>", 0, "<user> <F-user> <FOO>", 0);
}

static void skiplines(void **state)
{
	(void)state;
	expect_expand("a<SKIPLINES>b<SKIPLINES>c", 0, "(?P<skiplines1>", 2);
	expect_expand("a<SKIPLINES>b", 0, "a\\n(?P<skiplines0>(?:(?:.*\\n)*?))b", 1);
}

static void garbage(void **state)
{
	(void)state;
	const char *odd[] = {"<", "<>", "</>", "<<HOST>", "<HOST", "a<\x01>b", "<F->", "</F-"};
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		unsigned nl;
		free(hosttags_expand(odd[i], 0, &nl));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(host_and_addr),
		cmocka_unit_test(custom_tags),
		cmocka_unit_test(skiplines),
		cmocka_unit_test(garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
