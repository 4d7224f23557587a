/*
 * test_jailrun - jailrun_filter_add() loads each distinct filter once and
 * passes problems on as asked; jailrun_share() groups filters by date key;
 * jailrun_wanted() picks enabled or named jails. Uses the configuration
 * fixture tree (tests/fixtures/config/tree).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/config.h"
#include "core/diag.h"
#include "core/kvlist.h"
#include "core/xmalloc.h"
#include "jails/jailrun.h"

static char *tree(void)
{
	const char *src = getenv("MXJAIL_SRCDIR");
	return xasprintf("%s/tests/fixtures/config/tree", src ? src : ".");
}

static struct jail_conf jc_make(const char *name, const char *filter)
{
	struct jail_conf jc;
	memset(&jc, 0, sizeof jc);
	jc.name = (char *)name;
	jc.filter = (char *)filter;
	jc.file = (char *)"jail.local";
	jc.line = 7;
	jc.enabled = 1;
	return jc;
}

static int has_diag(const struct diag *d, const char *needle)
{
	for (size_t i = 0; i < d->n; i++)
		if (strstr(d->items[i].text, needle))
			return 1;
	return 0;
}

static void dedupe_and_share(void **state)
{
	(void)state;
	char *dir = tree();
	struct jailrun jr = {0};
	struct diag d = DIAG_INIT;
	struct jail_conf a = jc_make("a", "alpha"), b = jc_make("b", "alpha"),
			 c = jc_make("c", "t-basic");
	/* a journal jail's filter is loaded for text logs all the same */
	kvlist_set(&b.opts, "backend", "systemd");
	size_t ia = 9, ib = 9, ic = 9;
	assert_int_equal(jailrun_filter_add(&jr, &a, dir, 1000, JAILRUN_DIAG_KEEP, &ia, &d), 0);
	assert_int_equal(jailrun_filter_add(&jr, &b, dir, 1000, JAILRUN_DIAG_KEEP, &ib, &d), 0);
	assert_int_equal(jailrun_filter_add(&jr, &c, dir, 1000, JAILRUN_DIAG_KEEP, &ic, &d), 0);
	assert_int_equal(d.nerrors, 0);
	assert_int_equal(ia, 0);
	assert_int_equal(ib, 0);
	assert_int_equal(ic, 1);
	assert_int_equal(jr.nfilters, 2);
	assert_non_null(jr.filters[0].f);
	assert_true(jr.filters[1].clk.now == 1000);
	jailrun_share(&jr);
	assert_int_equal(jr.filters[0].share, 0);
	for (size_t i = 0; i < jr.nfilters; i++) {
		size_t m = jr.filters[i].share;
		assert_true(m <= i);
		assert_int_equal(jr.filters[m].share, m);
	}
	jailrun_free(&jr);
	assert_int_equal(jr.nfilters, 0);
	kvlist_free(&b.opts);
	diag_clear(&d);
	free(dir);
}

static void broken_filter(void **state)
{
	(void)state;
	char *dir = tree();
	struct jailrun jr = {0};
	struct jail_conf m = jc_make("m", "missing-filter");
	size_t idx;
	/* replay's way: the filter's own errors stay errors */
	struct diag d = DIAG_INIT;
	assert_int_equal(jailrun_filter_add(&jr, &m, dir, 0, JAILRUN_DIAG_KEEP, &idx, &d), -1);
	assert_true(d.nerrors > 0);
	assert_true(has_diag(&d, "jail [m]: "));
	diag_clear(&d);
	/* report's way: they are warnings, and one error says the filter is unusable */
	assert_int_equal(jailrun_filter_add(&jr, &m, dir, 0, JAILRUN_DIAG_WARN, &idx, &d), -1);
	assert_int_equal(d.nerrors, 1);
	assert_true(has_diag(&d, "filter 'missing-filter' cannot be used"));
	assert_int_equal(jr.nfilters, 0);
	diag_clear(&d);
	jailrun_free(&jr);
	free(dir);
}

static void ignore_lists(void **state)
{
	(void)state;
	struct jail_conf j = jc_make("j", "alpha");
	struct diag d = DIAG_INIT;
	struct ignorelist *ign = NULL;
	kvlist_set(&j.opts, "ignoreip", "192.0.2.0/24");
	assert_int_equal(jailrun_ignore(&j, 0, JAILRUN_DIAG_KEEP, &ign, &d), 0);
	assert_non_null(ign);
	ign = ignore_free(ign);
	/* broken options: no list, and the error carries the jail's name */
	kvlist_set(&j.opts, "ignoreip", "file:relative/path");
	assert_int_equal(jailrun_ignore(&j, 0, JAILRUN_DIAG_KEEP, &ign, &d), -1);
	assert_null(ign);
	assert_true(d.nerrors > 0);
	assert_true(has_diag(&d, "jail [j]: "));
	assert_true(has_diag(&d, "expected an absolute path"));
	diag_clear(&d);
	/* report's way: still no list, the message only a warning */
	assert_int_equal(jailrun_ignore(&j, 0, JAILRUN_DIAG_WARN, &ign, &d), -1);
	assert_null(ign);
	assert_int_equal(d.nerrors, 0);
	assert_true(d.n > 0);
	kvlist_free(&j.opts);
	diag_clear(&d);
}

static void wanted(void **state)
{
	(void)state;
	struct jail_conf on = jc_make("on", "x"), off = jc_make("off", "x");
	off.enabled = 0;
	assert_true(jailrun_wanted(&on, NULL, 0));
	assert_false(jailrun_wanted(&off, NULL, 0));
	char *want[] = {"off"};
	assert_false(jailrun_wanted(&on, want, 1));
	assert_true(jailrun_wanted(&off, want, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dedupe_and_share),
		cmocka_unit_test(broken_filter),
		cmocka_unit_test(ignore_lists),
		cmocka_unit_test(wanted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
