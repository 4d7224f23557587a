/*
 * test_interp - %(x)s interpolation (every form: section, DEFAULT, vars,
 * __name__, %%, sec/x, default/x, known/x, depth limit, errors) and <tag>
 * substitution (nesting, known/ through the resolver, unknown tags kept,
 * self references and the replacement limit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/interp.h"
#include "core/diag.h"
#include "core/kvlist.h"
#include "core/xmalloc.h"

static const char CONF[] =
	"[DEFAULT]\n"
	"base = /var\n"
	"dflt = from-default\n"
	"[s]\n"
	"log = %(base)s/log\n"
	"name = jail-%(__name__)s\n"
	"pct = 100%% sure\n"
	"other = %(t/x)s+%(default/dflt)s\n"
	"upper = %(T/x)s\n"
	"chain = %(log)s|%(name)s\n"
	"missing = %(nosuch)s\n"
	"badpct = 50% off\n"
	"badref = %(open\n"
	"viavar = %(v)s\n"
	"known = %(known/kv)s+\n"
	"nested = %(indirect)s\n"
	"indirect = %(default/dflt)s!\n"
	"[t]\n"
	"x = tx\n"
	"Mixed = mixed\n"
	"[deep]\n"
	"d0 = %(d1)s\n d1 = x\n";

static struct ini load(const char *text)
{
	struct ini ini = {0};
	struct diag d = DIAG_INIT;
	assert_int_equal(ini_parse(&ini, "i.conf", text, strlen(text), &d), 0);
	return ini;
}

static char *get(const struct ini *ini, const char *sec, const char *opt,
		 const struct kvlist *vars, int *rc, struct interp_err *err)
{
	char *v = NULL;
	*rc = interp_get(ini, sec, opt, vars, 0, &v, NULL, err);
	return v;
}

static void percent_forms(void **state)
{
	(void)state;
	struct ini ini = load(CONF);
	struct interp_err err;
	int rc;
	char *v;
	v = get(&ini, "s", "log", NULL, &rc, &err);
	assert_string_equal(v, "/var/log");
	free(v);
	v = get(&ini, "s", "name", NULL, &rc, &err);
	assert_string_equal(v, "jail-s");
	free(v);
	v = get(&ini, "s", "pct", NULL, &rc, &err);
	assert_string_equal(v, "100% sure");
	free(v);
	v = get(&ini, "s", "other", NULL, &rc, &err);
	assert_string_equal(v, "tx+from-default");
	free(v);
	v = get(&ini, "s", "chain", NULL, &rc, &err);
	assert_string_equal(v, "/var/log|jail-s");
	free(v);
	/* %(default/x)s inside a value reached through another reference */
	v = get(&ini, "s", "nested", NULL, &rc, &err);
	assert_string_equal(v, "from-default!");
	free(v);
	/* a DEFAULT option is read in the context of the asking section */
	v = get(&ini, "DEFAULT", "dflt", NULL, &rc, &err);
	assert_string_equal(v, "from-default");
	free(v);
	/* vars win over the section; keys are case-insensitive */
	struct kvlist vars = KVLIST_INIT;
	kvlist_set(&vars, "V", "from-vars");
	kvlist_set(&vars, "base", "/srv");
	v = get(&ini, "s", "viavar", &vars, &rc, &err);
	assert_string_equal(v, "from-vars");
	free(v);
	v = get(&ini, "s", "LOG", &vars, &rc, &err);
	assert_string_equal(v, "/srv/log");
	free(v);
	kvlist_free(&vars);
	/* raw */
	assert_int_equal(interp_get(&ini, "s", "log", NULL, 1, &v, NULL, &err), INTERP_OK);
	assert_string_equal(v, "%(base)s/log");
	free(v);
	assert_int_equal(interp_get(&ini, "nosuch", "x", NULL, 0, &v, NULL, &err), INTERP_NOSECTION);
	assert_int_equal(interp_get(&ini, "s", "nosuch", NULL, 0, &v, NULL, &err), INTERP_NOOPTION);
	ini_free(&ini);
}

static void percent_errors(void **state)
{
	(void)state;
	struct ini ini = load(CONF);
	struct interp_err err;
	int rc;
	assert_null(get(&ini, "s", "missing", NULL, &rc, &err));
	assert_int_equal(rc, INTERP_ERROR);
	assert_string_equal(err.file, "i.conf");
	assert_int_equal(err.line, 11);
	assert_non_null(strstr(err.msg, "unknown reference %(nosuch)s in option 'missing' of [s]"));
	assert_null(get(&ini, "s", "badpct", NULL, &rc, &err));
	assert_int_equal(rc, INTERP_ERROR);
	assert_int_equal(err.line, 12);
	assert_null(get(&ini, "s", "badref", NULL, &rc, &err));
	assert_int_equal(rc, INTERP_ERROR);
	/* "sec/x" keeps its case: %(T/x)s does not resolve, as in fail2ban */
	assert_null(get(&ini, "s", "upper", NULL, &rc, &err));
	assert_int_equal(rc, INTERP_ERROR);
	ini_free(&ini);
}

static void depth_limit(void **state)
{
	(void)state;
	/* a chain of n references: 10 levels are fine, 11 are too deep */
	for (int n = 9; n <= 10; n++) {
		char *text = xstrdup("[s]\n");
		for (int i = 0; i < n; i++) {
			char *t = xasprintf("%sa%d = %%(a%d)s\n", text, i, i + 1);
			free(text);
			text = t;
		}
		char *t = xasprintf("%sa%d = end%%%%\n", text, n);
		free(text);
		text = t;
		struct ini ini = load(text);
		struct interp_err err;
		int rc;
		char *v = get(&ini, "s", "a0", NULL, &rc, &err);
		if (n == 9) {
			assert_int_equal(rc, INTERP_OK);
			assert_string_equal(v, "end%");
		} else {
			assert_int_equal(rc, INTERP_ERROR);
			assert_non_null(strstr(err.msg, "nested at most 10 deep"));
			assert_int_equal(err.line, 2);
		}
		free(v);
		ini_free(&ini);
		free(text);
	}
	/* self reference ends at the depth limit too */
	struct ini ini = load("[s]\nloop = x%(loop)s\n");
	struct interp_err err;
	int rc;
	assert_null(get(&ini, "s", "loop", NULL, &rc, &err));
	assert_int_equal(rc, INTERP_ERROR);
	ini_free(&ini);
}

static void known_values(void **state)
{
	(void)state;
	/* KNOWN/<sec> is what the reader fills in when a later file overrides */
	struct ini ini = load("[DEFAULT]\nonlydef = d\n[s]\nkv = new\nk2 = %(known/onlydef)s\n"
			      "k3 = %(known/kv)s\n[KNOWN/s]\nkv = old\n");
	struct interp_err err;
	int rc;
	char *v = get(&ini, "s", "k3", NULL, &rc, &err);
	assert_string_equal(v, "old");
	free(v);
	/* falls back to DEFAULT when nothing was overridden */
	v = get(&ini, "s", "k2", NULL, &rc, &err);
	assert_string_equal(v, "d");
	free(v);
	/* get_ex: "known/x" and "sec/x" names as used by <tag>s */
	assert_int_equal(interp_get_ex(&ini, "s", "known/kv", NULL, &v, NULL, &err), INTERP_OK);
	assert_string_equal(v, "old");
	free(v);
	assert_int_equal(interp_get_ex(&ini, "s", "known/k2", NULL, &v, NULL, &err), INTERP_OK);
	assert_string_equal(v, "d");
	free(v);
	assert_int_equal(interp_get_ex(&ini, "s", "default/onlydef", NULL, &v, NULL, &err), INTERP_OK);
	assert_string_equal(v, "d");
	free(v);
	assert_int_equal(interp_get_ex(&ini, "s", "nosuch/x", NULL, &v, NULL, &err), INTERP_NOOPTION);
	ini_free(&ini);
}

static char *resolver(void *ctx, const char *tag, int *failed, struct interp_err *err)
{
	(void)failed;
	(void)err;
	const struct kvlist *extra = ctx;
	const char *v = kvlist_get(extra, tag);
	return v ? xstrdup(v) : NULL;
}

static void tags(void **state)
{
	(void)state;
	struct ini_sect t = {0};
	ini_opt_set(&t, "mode", "more", NULL, 0);
	ini_opt_set(&t, "re-normal", "^n <HOST>$", NULL, 0);
	ini_opt_set(&t, "re-more", "<re-normal>\n^m <HOST> <F-USER>u</F-USER>", NULL, 0);
	ini_opt_set(&t, "failregex", "<re-<mode>>\n^<who> <SKIPLINES> <unknown>$", NULL, 0);
	ini_opt_set(&t, "who", "<known/who>-x", NULL, 0);
	ini_opt_set(&t, "cond?family=inet6", "v6", NULL, 0);
	ini_opt_set(&t, "usecond", "<cond>", NULL, 0);
	struct kvlist extra = KVLIST_INIT;
	kvlist_set(&extra, "known/who", "outer");
	kvlist_set(&extra, "cond", "from-resolver");
	struct interp_err err;
	const char *ignore[] = {"cond", NULL};
	assert_int_equal(interp_tags(&t, ignore, resolver, &extra, &err), 0);
	assert_string_equal(ini_opt_find(&t, "failregex")->value,
			    "^n <HOST>$\n^m <HOST> <F-USER>u</F-USER>\n^outer-x <SKIPLINES> <unknown>$");
	assert_string_equal(ini_opt_find(&t, "usecond")->value, "<cond>");
	ini_sect_clear(&t);
	kvlist_free(&extra);

	/* a tag that refers to itself, directly or through others, is an error */
	ini_opt_set(&t, "a", "x<a>", "f.conf", 7);
	assert_int_equal(interp_tags(&t, NULL, NULL, NULL, &err), INTERP_ERROR);
	assert_non_null(strstr(err.msg, "<a>"));
	assert_string_equal(err.file, "f.conf");
	assert_int_equal(err.line, 7);
	ini_sect_clear(&t);
	ini_opt_set(&t, "a", "<b>", NULL, 0);
	ini_opt_set(&t, "b", "<a>", NULL, 0);
	assert_int_equal(interp_tags(&t, NULL, NULL, NULL, &err), INTERP_ERROR);
	ini_sect_clear(&t);
	/* every occurrence is replaced at once */
	ini_opt_set(&t, "h", "H", NULL, 0);
	ini_opt_set(&t, "v", "<h><h> <h >", NULL, 0);
	assert_int_equal(interp_tags(&t, NULL, NULL, NULL, &err), 0);
	assert_string_equal(ini_opt_find(&t, "v")->value, "HH <h >");
	ini_sect_clear(&t);
	/* an expansion bomb is refused, not built */
	ini_opt_set(&t, "a0", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", NULL, 0);
	for (int i = 1; i < 30; i++) {
		char k[8], v[32];
		snprintf(k, sizeof k, "a%d", i);
		snprintf(v, sizeof v, "<a%d><a%d><a%d><a%d>", i - 1, i - 1, i - 1, i - 1);
		ini_opt_set(&t, k, v, NULL, 0);
	}
	assert_int_equal(interp_tags(&t, NULL, NULL, NULL, &err), INTERP_ERROR);
	ini_sect_clear(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(percent_forms),
		cmocka_unit_test(percent_errors),
		cmocka_unit_test(depth_limit),
		cmocka_unit_test(known_values),
		cmocka_unit_test(tags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
