/*
 * fuzz_date - libFuzzer target for date detection. The input is a log line for
 * the default templates (built once: building all of them per input would
 * leave the fuzzer little time to explore), and, when it is short enough to be
 * a pattern, also a datepattern of its own that the same text is searched with.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag.h"
#include "filters/datedetect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct datedetect *def;
	struct diag d = DIAG_INIT;
	struct date_clock clk = {1124013600, 0, 0};
	double t;
	size_t a, b;
	if (!def)
		def = datedetect_new(NULL, 0, "fuzz", &d);
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = 0;
	for (int i = 0; def && i < 2; i++)
		datedetect_find(def, s, size, &clk, &t, &a, &b);
	if (size <= 256) {
		const char *pats[1] = {s};
		struct datedetect *dd = datedetect_new(pats, 1, "fuzz", &d);
		if (dd)
			datedetect_find(dd, s, size, &clk, &t, &a, &b);
		datedetect_free(dd);
	}
	diag_clear(&d);
	free(s);
	return 0;
}
