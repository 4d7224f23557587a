/*
 * test_kvlist - core/kvlist: case-insensitive keys replaced in place, deletion,
 * copying, and fail2ban's boolean words (kvlist_bool, kvlist_get_bool).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/kvlist.h"

static void set_get_del(void **state)
{
	(void)state;
	struct kvlist l = KVLIST_INIT;
	kvlist_set(&l, "Port", "smtp");
	kvlist_set(&l, "protocol", "tcp");
	kvlist_set(&l, "PORT", "submission"); /* same key: replaced in place */
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].key, "Port");
	assert_string_equal(kvlist_get(&l, "port"), "submission");
	assert_null(kvlist_get(&l, "name"));
	assert_int_equal(kvlist_del(&l, "PROTOCOL"), 1);
	assert_int_equal(kvlist_del(&l, "protocol"), 0);
	assert_int_equal(l.n, 1);

	struct kvlist c = KVLIST_INIT;
	kvlist_set(&c, "port", "ssh");
	kvlist_set(&c, "bantime", "1h");
	kvlist_copy(&c, &l);
	assert_int_equal(c.n, 2);
	assert_string_equal(kvlist_get(&c, "port"), "submission");
	assert_string_equal(kvlist_get(&c, "bantime"), "1h");
	kvlist_free(&c);
	kvlist_free(&l);
	assert_int_equal(l.n, 0);
}

static void booleans(void **state)
{
	(void)state;
	static const char *const yes[] = {"true", "TRUE", "yes", "Yes", "on", "ON", "1"};
	static const char *const no[] = {"false", "False", "no", "NO", "off", "Off", "0"};
	static const char *const neither[] = {"", "2", "y", "n", "enabled", "yes ", " no", "truefalse"};
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
		assert_int_equal(kvlist_bool(yes[i]), 1);
	for (size_t i = 0; i < sizeof no / sizeof *no; i++)
		assert_int_equal(kvlist_bool(no[i]), 0);
	for (size_t i = 0; i < sizeof neither / sizeof *neither; i++)
		assert_int_equal(kvlist_bool(neither[i]), -1);
	assert_int_equal(kvlist_bool(NULL), -1);

	struct kvlist l = KVLIST_INIT;
	kvlist_set(&l, "a", "Yes");
	kvlist_set(&l, "b", "off");
	kvlist_set(&l, "c", "");
	kvlist_set(&l, "d", "maybe");
	assert_int_equal(kvlist_get_bool(&l, "a", 0), 1);
	assert_int_equal(kvlist_get_bool(&l, "b", 1), 0);
	assert_int_equal(kvlist_get_bool(&l, "c", 7), 7);     /* empty: the default */
	assert_int_equal(kvlist_get_bool(&l, "d", 7), 7);     /* not a boolean: the default */
	assert_int_equal(kvlist_get_bool(&l, "absent", 5), 5);
	kvlist_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(set_get_del),
		cmocka_unit_test(booleans),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
