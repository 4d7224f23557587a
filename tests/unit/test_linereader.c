/*
 * test_linereader - line splitting: CRLF, NUL bytes, no final newline,
 * over-long lines cut without growing memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/linereader.h"

static int pipe_with(const char *data, size_t n)
{
	char path[] = "/tmp/mxjail-lr-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static void basic(void **state)
{
	(void)state;
	static const char data[] = "one\r\ntwo\n\nthr\0ee\nlast";
	int fd = pipe_with(data, sizeof data - 1);
	struct linereader r;
	linereader_init(&r, fd, 0);
	const char *l;
	size_t n;
	assert_int_equal(linereader_next(&r, &l, &n), 1);
	assert_int_equal(n, 3);
	assert_memory_equal(l, "one", 3);
	assert_int_equal(linereader_next(&r, &l, &n), 1);
	assert_memory_equal(l, "two", 3);
	assert_int_equal(linereader_next(&r, &l, &n), 1);
	assert_int_equal(n, 0);
	assert_int_equal(linereader_next(&r, &l, &n), 1);
	assert_int_equal(n, 6);
	assert_memory_equal(l, "thr\0ee", 6);
	assert_int_equal(linereader_next(&r, &l, &n), 1);
	assert_int_equal(n, 4);
	assert_memory_equal(l, "last", 4);
	assert_int_equal(linereader_next(&r, &l, &n), 0);
	linereader_free(&r);
	close(fd);
}

static void long_lines(void **state)
{
	(void)state;
	size_t big = 3 * 1024 * 1024;
	char *data = malloc(big + 16);
	memset(data, 'x', big);
	memcpy(data + big, "\nshort\n", 7);
	int fd = pipe_with(data, big + 7);
	struct linereader r;
	linereader_init(&r, fd, 1024 * 1024);
	const char *l;
	size_t n;
	assert_int_equal(linereader_next(&r, &l, &n), 1);
	assert_int_equal(n, 1024 * 1024);
	assert_int_equal(linereader_next(&r, &l, &n), 1);
	assert_int_equal(n, 5);
	assert_memory_equal(l, "short", 5);
	assert_int_equal(linereader_next(&r, &l, &n), 0);
	assert_int_equal(r.truncated, 1);
	assert_true(r.cap < 4u * 1024 * 1024);
	linereader_free(&r);
	close(fd);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(basic),
		cmocka_unit_test(long_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
