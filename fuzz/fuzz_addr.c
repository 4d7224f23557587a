/*
 * fuzz_addr - libFuzzer target for net/addr: any accepted text must format
 * and re-parse to the same value (parse -> format -> parse round trip).
 */
#include <stdlib.h>
#include <string.h>

#include "net/addr.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct addr a, b;
	char buf[ADDR_STRLEN];
	size_t n;

	if (addr_parse_cidr((const char *)data, size, &a) < 0)
		return 0;
	n = addr_format(&a, buf, sizeof buf);
	if (n == 0 || addr_parse_cidr(buf, n, &b) < 0 || !addr_equal(&a, &b))
		abort();
	return 0;
}
