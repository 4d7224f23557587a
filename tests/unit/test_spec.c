/*
 * test_spec - "name[k=v,...][...]" specs and action lists with fail2ban's
 * quoting rules (config/spec.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/config.h"
#include "core/kvlist.h"

static void parse_ok(const char *spec, const char *name, int n, const char *const *kv)
{
	char *nm = NULL, err[256];
	struct kvlist o = KVLIST_INIT;
	if (config_spec_parse(spec, &nm, &o, err, sizeof err) != 0)
		fail_msg("%s: %s", spec, err);
	assert_string_equal(nm, name);
	assert_int_equal(o.n, n);
	for (int i = 0; i < n; i++) {
		assert_string_equal(o.v[i].key, kv[2 * i]);
		assert_string_equal(o.v[i].value, kv[2 * i + 1]);
	}
	free(nm);
	kvlist_free(&o);
}

static void parse_bad(const char *spec, const char *msg)
{
	char *nm = NULL, err[256];
	struct kvlist o = KVLIST_INIT;
	assert_int_equal(config_spec_parse(spec, &nm, &o, err, sizeof err), -1);
	assert_null(nm);
	if (!strstr(err, msg))
		fail_msg("%s: message '%s' lacks '%s'", spec, err, msg);
	kvlist_free(&o);
}

static void specs(void **state)
{
	(void)state;
	parse_ok("sshd", "sshd", 0, NULL);
	parse_ok("sshd[]", "sshd", 0, NULL);
	parse_ok("sshd[mode=aggressive]", "sshd", 1, (const char *const[]){"mode", "aggressive"});
	parse_ok("a[k=v, k2=\"x,y]z\", k3='q\"q']", "a", 3,
		 (const char *const[]){"k", "v", "k2", "x,y]z", "k3", "q\"q"});
	parse_bad("a[k = v]", "expected key=value"); /* no spaces around = */
	parse_ok("act[p=1][q=2]", "act", 2, (const char *const[]){"p", "1", "q", "2"});
	parse_ok("act[p=1] [q=2]", "act", 2, (const char *const[]){"p", "1", "q", "2"});
	parse_ok("x[name=%(__name__)s-tcp, port=\"0:65535\", e=]", "x", 3,
		 (const char *const[]){"name", "%(__name__)s-tcp", "port", "0:65535", "e", ""});
	parse_ok("x[a=  spaced  ,b=multi\nline]", "x", 2,
		 (const char *const[]){"a", "spaced", "b", "multi\nline"});
	parse_ok("x[a.b-c_d=1]", "x", 1, (const char *const[]){"a.b-c_d", "1"});
}

static void spec_errors(void **state)
{
	(void)state;
	parse_bad("[k=v]", "expected NAME");
	parse_bad("name[k=v", "expected NAME");
	parse_bad("a[b]", "expected key=value");
	parse_bad("a[k=\"v\"x]", "expected ',' or ']' after option 'k'");
	parse_bad("", "expected NAME");
}

static void split(void **state)
{
	(void)state;
	char **v = NULL, err[256];
	size_t n = 0;
	assert_int_equal(config_spec_split("a[x=1, y=\"p q\"]   b\n  c[z='1 2'][w=3]\n\nd",
					   &v, &n, err, sizeof err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(v[0], "a[x=1, y=\"p q\"]");
	assert_string_equal(v[1], "b");
	assert_string_equal(v[2], "c[z='1 2'][w=3]");
	assert_string_equal(v[3], "d");
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	/* a bracket that does not parse leaves whitespace-separated words */
	assert_int_equal(config_spec_split("a[x=1 y", &v, &n, err, sizeof err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "a[x=1");
	assert_string_equal(v[1], "y");
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	assert_int_equal(config_spec_split("", &v, &n, err, sizeof err), 0);
	assert_int_equal(n, 0);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(specs),
		cmocka_unit_test(spec_errors),
		cmocka_unit_test(split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
