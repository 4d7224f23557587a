/*
 * test_filterload - config_load_filter() and config_load() on the fixture
 * trees: precedence (brackets > [Init] > [Definition] > [DEFAULT]), tags and
 * modes, known/, conditional [Init?...], jail overrides and logtype, regex
 * sources, jail layering, and error messages (file:line, missing filter).
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

static char *fixture(const char *rel)
{
	const char *src = getenv("MXJAIL_SRCDIR");
	return xasprintf("%s/tests/fixtures/config/%s", src ? src : ".", rel);
}

static int has_diag(const struct diag *d, const char *needle)
{
	for (size_t i = 0; i < d->n; i++)
		if (strstr(d->items[i].text, needle))
			return 1;
	return 0;
}

static void load(const char *spec, const struct kvlist *jail, struct filter_def *f)
{
	char *dir = fixture("tree");
	struct diag d = DIAG_INIT;
	int rc = config_load_filter(dir, spec, jail, f, &d);
	if (rc != 0)
		fail_msg("%s: %s", spec, d.n ? d.items[0].text : "?");
	diag_clear(&d);
	free(dir);
}

static void tags_modes_precedence(void **state)
{
	(void)state;
	struct filter_def f;
	load("t-tags", NULL, &f);
	assert_string_equal(f.prefregex, "^\\s*tagd(?:\\[\\d+\\])?:\\s+<F-CONTENT>.+</F-CONTENT>$");
	assert_int_equal(f.nfailregex, 3);
	assert_string_equal(f.failregex[0].text, "^normal <HOST>$");
	/* [Init] beats [Definition]; t-tags.local's [Init] beats t-tags.conf's */
	assert_string_equal(f.failregex[1].text, "^local-who from <HOST> at local-who$");
	/* tags the config does not know reach the filter compiler untouched */
	assert_string_equal(f.failregex[2].text, "^keep <SKIPLINES> <F-ID>x</F-ID> <unknown-tag>$");
	/* %(known/ignoreregex)s in the .local extends the .conf's */
	assert_int_equal(f.nignoreregex, 2);
	assert_string_equal(f.ignoreregex[0].text, "^ign local-who$");
	assert_string_equal(f.ignoreregex[1].text, "^local-ign <HOST>$");
	assert_string_equal(f.logtype, "file");
	assert_string_equal(f.name, "t-tags");
	assert_non_null(strstr(f.file, "filter.d/t-tags.conf"));
	/* every regex knows where it was written */
	assert_non_null(strstr(f.failregex[0].file, "t-tags.conf"));
	assert_int_equal(f.failregex[0].line, 13); /* the failregex line it came from */
	assert_int_equal(f.failregex[1].line, 14);
	filter_def_free(&f);

	/* bracket options beat [Init]; nested <re-<mode>> follows the mode */
	load("t-tags[mode=aggressive, who=\"a,b\"]", NULL, &f);
	assert_int_equal(f.nfailregex, 5);
	assert_string_equal(f.failregex[0].text, "^normal <HOST>$");
	assert_string_equal(f.failregex[1].text, "^more <HOST> user <F-USER>\\S+</F-USER>$");
	assert_string_equal(f.failregex[2].text, "^aggressive <HOST>$");
	assert_string_equal(f.failregex[3].text, "^a,b from <HOST> at local-who$");
	assert_int_equal(f.failregex[0].line, 8); /* traced through <re-<mode>> */
	assert_int_equal(f.failregex[2].line, 12);
	assert_non_null(strstr(f.failregex[2].file, "t-tags.conf"));
	filter_def_free(&f);
}

static void layering_and_dialect(void **state)
{
	(void)state;
	struct filter_def f;
	load("t-basic", NULL, &f);
	assert_int_equal(f.nfailregex, 4);
	assert_string_equal(f.failregex[0].text, "^\\s*basicd(?:\\[\\d+\\])?:\\s+auth failed from <HOST>$");
	assert_string_equal(f.failregex[1].text, "^\\s*basicd(?:\\[\\d+\\])?:\\s+100 bad <HOST>");
	assert_string_equal(f.failregex[2].text, "^\\s*basicd(?:\\[\\d+\\])?:\\s+defval <ADDR> (?:x;y)$");
	assert_string_equal(f.failregex[3].text,
			    "^\\s*basicd(?:\\[\\d+\\])?:\\s+section Definition <HOST>$");
	assert_int_equal(f.failregex[0].line, 11);
	assert_int_equal(f.failregex[3].line, 16);
	assert_int_equal(f.maxlines, 2);
	assert_int_equal(f.ndatepattern, 2);
	assert_string_equal(f.datepattern[0], "^%Y-%m-%d %H:%M:%S");
	assert_int_equal(f.njournalmatch, 2);
	assert_string_equal(f.journalmatch[0], "_SYSTEMD_UNIT=basic.service + _COMM=basicd");
	filter_def_free(&f);

	load("t-layer", NULL, &f);
	assert_int_equal(f.maxlines, 3); /* t-layer.d/01-more.conf */
	assert_int_equal(f.nfailregex, 3);
	assert_string_equal(f.failregex[2].text, "^d-local <HOST>$");
	assert_non_null(strstr(f.failregex[0].file, "t-layer.local"));
	assert_non_null(strstr(f.failregex[2].file, "t-layer.d/02-last.local"));
	filter_def_free(&f);

	load("t-keys", NULL, &f);
	assert_int_equal(f.nfailregex, 2);
	assert_string_equal(f.failregex[1].text, "^tab-indented <HOST>$");
	assert_string_equal(f.ignoreregex[0].text, "^no-spaces <HOST>$");
	assert_int_equal(f.maxlines, 5);
	filter_def_free(&f);

	/* conditional [Init?family=inet6] options keep their tag for later */
	load("t-cond[family=inet6]", NULL, &f);
	assert_string_equal(f.failregex[0].text, "^cond <HOST> <blocktype>$");
	assert_string_equal(f.failregex[1].text, "^other inet$");
	filter_def_free(&f);
}

static void jail_overrides(void **state)
{
	(void)state;
	struct filter_def f;
	struct kvlist jail = KVLIST_INIT;
	kvlist_set(&jail, "backend", "systemd[journalflags=1]");
	kvlist_set(&jail, "maxretry", "3");
	kvlist_set(&jail, "logtimezone", "UTC");
	kvlist_set(&jail, "port", "not a filter parameter");
	load("t-basic", &jail, &f);
	assert_string_equal(f.logtype, "journal");
	assert_string_equal(f.logtimezone, "UTC");
	assert_int_equal(f.nfailregex, 4);
	filter_def_free(&f);
	/* a jail's failregex replaces the filter's, datepattern too */
	kvlist_set(&jail, "backend", "auto");
	kvlist_set(&jail, "failregex", "^jail <HOST>$\n^jail2 <HOST>$");
	kvlist_set(&jail, "datepattern", "{^LN-BEG}EPOCH");
	kvlist_set(&jail, "usedns", "no");
	load("t-basic", &jail, &f);
	assert_string_equal(f.logtype, "file");
	assert_int_equal(f.nfailregex, 2);
	assert_string_equal(f.failregex[0].text, "^jail <HOST>$");
	assert_null(f.failregex[0].file);
	assert_int_equal(f.ndatepattern, 1);
	assert_string_equal(f.datepattern[0], "{^LN-BEG}EPOCH");
	assert_string_equal(f.usedns, "no");
	assert_int_equal(f.nignoreregex, 1);
	filter_def_free(&f);
	kvlist_free(&jail);
}

static void jails(void **state)
{
	(void)state;
	char *dir = fixture("tree");
	struct config c;
	struct diag d = DIAG_INIT;
	assert_int_equal(config_load(dir, &c, &d), 0);
	assert_int_equal(d.nerrors, 0);
	assert_int_equal(c.njails, 5);
	struct jail_conf *a = &c.jails[0], *b = &c.jails[1], *g = &c.jails[2], *dl = &c.jails[3],
			 *e = &c.jails[4];
	assert_string_equal(a->name, "alpha");
	assert_true(a->enabled);
	assert_string_equal(a->filter, "alpha");
	assert_int_equal(a->nlogpath, 2);
	assert_string_equal(a->logpath[0], "/var/log/a.log");
	assert_string_equal(a->logpath[1], "/var/log/second.log tail");
	assert_string_equal(kvlist_get(&a->opts, "port"), "2222");
	assert_string_equal(kvlist_get(&a->opts, "maxretry"), "3");
	assert_string_equal(kvlist_get(&a->opts, "log_c"), "from-b+/var/log/a.log");
	assert_int_equal(a->naction, 1);
	assert_string_equal(a->action[0], "nftables-multiport[port=\"2222\", name=alpha]");
	assert_string_equal(a->backend, "auto");
	assert_int_equal(a->line, 15);
	assert_true(b->enabled);
	assert_string_equal(b->filter, "t-tags[mode=more]");
	assert_string_equal(b->backend, "systemd[journalflags=1]");
	assert_int_equal(b->naction, 3);
	assert_string_equal(b->action[1], "mail-whois[dest=\"x@y\", sender=a]");
	assert_string_equal(b->action[2], "other-action");
	assert_true(g->enabled);
	assert_string_equal(g->filter, "");
	assert_false(dl->enabled);
	assert_string_equal(e->name, "epsilon");
	/* %(known/failregex)s in a jail extends the filter's */
	const char *fr = kvlist_get(&e->opts, "failregex");
	assert_non_null(strstr(fr, "auth failed from <HOST>$\n"));
	assert_non_null(strstr(fr, "\n^extra <HOST>$"));
	assert_string_equal(kvlist_get(&c.general, "loglevel"), "NOTICE");
	assert_string_equal(kvlist_get(&c.general, "dbfile"), "/var/log/fail2ban.log.db");
	assert_string_equal(kvlist_get(&c.mxjail, "policy.greylist"), "yes");
	assert_string_equal(kvlist_get(&c.mxjail, "store.path"), "/var/lib/mxjail");
	/* the jail's failregex reaches the filter */
	struct filter_def f;
	assert_int_equal(config_load_filter(dir, e->filter, &e->opts, &f, &d), 0);
	assert_int_equal(f.nfailregex, 5);
	assert_string_equal(f.failregex[4].text, "^extra <HOST>$");
	filter_def_free(&f);
	config_free(&c);
	free(dir);
}

static void errors(void **state)
{
	(void)state;
	char *dir = fixture("errors");
	struct config c;
	struct diag d = DIAG_INIT;
	assert_int_equal(config_load(dir, &c, &d), -1);
	assert_true(has_diag(&d, "errors/jail.conf:6: expected 'key = value' or '[section]'"));
	assert_true(has_diag(&d, "errors/jail.conf:28: expected ']' to close the section header"));
	assert_true(has_diag(&d, "errors/jail.conf:9: unknown reference %(nosuch)s in option "
				 "'logpath' of [bad-ref]"));
	assert_true(has_diag(&d, "errors/jail.conf:24: expected %(..)s references nested at most 10"));
	config_free(&c);
	diag_clear(&d);

	struct filter_def f;
	assert_int_equal(config_load_filter(dir, "missing-filter", NULL, &f, &d), -1);
	assert_true(has_diag(&d, "filter 'missing-filter' not found: searched "));
	assert_true(has_diag(&d, "errors/filter.d for missing-filter.conf"));
	filter_def_free(&f);
	diag_clear(&d);
	assert_int_equal(config_load_filter(dir, "bad-tag", NULL, &f, &d), -1);
	assert_true(has_diag(&d, "bad-tag.conf:2: expected <tag> definitions without self reference"));
	filter_def_free(&f);
	diag_clear(&d);
	assert_int_equal(config_load_filter(dir, "bad-percent", NULL, &f, &d), -1);
	assert_true(has_diag(&d, "bad-percent.conf:2: expected '%%' or '%(name)s' in option 'failregex'"));
	filter_def_free(&f);
	diag_clear(&d);
	assert_int_equal(config_load_filter(dir, "no-value", NULL, &f, &d), -1);
	assert_true(has_diag(&d, "no-value.conf:5: expected 'key = value'"));
	filter_def_free(&f);
	diag_clear(&d);
	assert_int_equal(config_load_filter(dir, "bad-include", NULL, &f, &d), -1);
	assert_true(has_diag(&d, "bad-include.conf:2: included file"));
	filter_def_free(&f);
	diag_clear(&d);
	assert_int_equal(config_load_filter(dir, "x[a=1", NULL, &f, &d), -1);
	assert_true(has_diag(&d, "filter 'x[a=1': expected NAME or NAME[key=value,...]"));
	filter_def_free(&f);
	diag_clear(&d);
	free(dir);
	/* no jail.conf at all */
	assert_int_equal(config_load("/nonexistent-mxjail-dir", &c, &d), -1);
	assert_true(has_diag(&d, "expected jail.conf or jail.local"));
	config_free(&c);
	diag_clear(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tags_modes_precedence),
		cmocka_unit_test(layering_and_dialect),
		cmocka_unit_test(jail_overrides),
		cmocka_unit_test(jails),
		cmocka_unit_test(errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
