/*
 * fuzz_date - libFuzzer target for date detection: the input is used both as a
 * datepattern (next to the default templates) and as a log line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag.h"
#include "filters/datedetect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = 0;
	const char *pats[2] = {"{DEFAULT}", s};
	struct diag d = DIAG_INIT;
	struct date_clock clk = {1124013600, 0, 0};
	double t;
	size_t a, b;
	struct datedetect *dd = datedetect_new(pats, 2, "fuzz", &d);
	if (!dd)
		dd = datedetect_new(pats, 1, "fuzz", &d);
	for (int i = 0; dd && i < 2; i++)
		datedetect_find(dd, s, size, &clk, &t, &a, &b);
	datedetect_free(dd);
	diag_clear(&d);
	free(s);
	return 0;
}
