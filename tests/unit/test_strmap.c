/*
 * test_strmap - core/strmap: lookups, creation with an initial value, growth
 * keeping every key, and freeing back to empty.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "core/strmap.h"

static void empty_and_create(void **state)
{
	(void)state;
	struct strmap m = STRMAP_INIT;
	assert_null(strmap_slot(&m, "a", 0, 0));
	size_t *v = strmap_slot(&m, "a", 1, 7);
	assert_non_null(v);
	assert_int_equal(*v, 7);
	*v = 3;
	assert_int_equal(*strmap_slot(&m, "a", 1, 9), 3);
	assert_int_equal(m.n, 1);
	strmap_free(&m);
	assert_int_equal(m.n, 0);
	assert_null(strmap_slot(&m, "a", 0, 0));
}

static void growth_keeps_keys(void **state)
{
	(void)state;
	struct strmap m = STRMAP_INIT;
	char key[32];
	for (size_t i = 0; i < 5000; i++) {
		snprintf(key, sizeof key, "k%zu", i);
		*strmap_slot(&m, key, 1, 0) = i;
	}
	assert_int_equal(m.n, 5000);
	for (size_t i = 0; i < 5000; i++) {
		snprintf(key, sizeof key, "k%zu", i);
		size_t *v = strmap_slot(&m, key, 0, 0);
		assert_non_null(v);
		assert_int_equal(*v, i);
	}
	assert_null(strmap_slot(&m, "k5000", 0, 0));
	strmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_and_create),
		cmocka_unit_test(growth_keeps_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
