/*
 * test_strbuf - buffer growth, formatting and JSON escaping of hostile bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/kvlist.h"
#include "core/strbuf.h"

static void json_escape(void **state)
{
	(void)state;
	struct strbuf b = STRBUF_INIT;
	strbuf_add_json(&b, "a\"b\\c\n\x01\xff\xc3\xa9", 10);
	assert_string_equal(strbuf_str(&b), "\"a\\\"b\\\\c\\n\\u0001\\ufffd\xc3\xa9\"");
	strbuf_reset(&b);
	strbuf_add_json(&b, "\0x", 2);
	assert_string_equal(strbuf_str(&b), "\"\\u0000x\"");
	strbuf_free(&b);
}

static void growth(void **state)
{
	(void)state;
	struct strbuf b = STRBUF_INIT;
	for (int i = 0; i < 10000; i++)
		strbuf_addf(&b, "%d,", i);
	assert_true(b.len > 40000);
	char *s = strbuf_detach(&b);
	assert_int_equal(strncmp(s, "0,1,2,", 6), 0);
	free(s);
	assert_string_equal(strbuf_str(&b), "");
}

static void kv(void **state)
{
	(void)state;
	struct kvlist l = KVLIST_INIT;
	kvlist_set(&l, "Mode", "normal");
	kvlist_set(&l, "mode", "aggressive");
	assert_int_equal(l.n, 1);
	assert_string_equal(kvlist_get(&l, "MODE"), "aggressive");
	assert_int_equal(kvlist_del(&l, "mode"), 1);
	assert_null(kvlist_get(&l, "mode"));
	kvlist_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_escape),
		cmocka_unit_test(growth),
		cmocka_unit_test(kv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
