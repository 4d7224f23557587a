/*
 * fuzz_pyre - libFuzzer target for filters/pyre: any byte string either
 * translates into a pattern PCRE2 gets to see, or fails with a message.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "filters/pyre.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char err[256], *s = malloc(size + 1), *pat;
	uint32_t flags;
	int ec;
	PCRE2_SIZE eo;

	memcpy(s, data, size);
	s[size] = '\0';
	pat = pyre_translate(s, &flags, err, sizeof err);
	if (!pat && err[0] == '\0')
		abort(); /* a refusal must say why */
	if (pat) {
		uint32_t o = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (flags & ~PYRE_ASCII);
		pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
					       o | ((flags & PYRE_ASCII) ? 0 : PCRE2_UCP),
					       &ec, &eo, NULL);
		pcre2_code_free(re);
	}
	free(pat);
	free(s);
	return 0;
}
