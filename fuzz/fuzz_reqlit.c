/*
 * fuzz_reqlit - libFuzzer target for filters/reqlit: the literal pre-check
 * must never reject a text its pattern matches.
 *
 * Input: a PCRE2 pattern, a NUL byte, then the text (may hold NUL bytes). When
 * PCRE2 compiles the pattern and finds a match in the text, the literal set
 * read from the pattern must accept the text: whole, cut in two pieces at a
 * place taken from the input, and through every scan (the CPU's best and the
 * SSE2/byte-table fallback). Patterns that backtrack for ages are cut short
 * by a match limit (no answer, nothing checked).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "filters/reqlit.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const unsigned char *nul = memchr(data, '\0', size);
	if (!nul || nul == data)
		return 0;
	size_t plen = (size_t)(nul - data);
	const char *text = (const char *)nul + 1;
	size_t tlen = size - plen - 1;
	char *pat = malloc(plen + 1);
	memcpy(pat, data, plen);
	pat[plen] = '\0';

	int ec;
	PCRE2_SIZE eo;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, plen, 0, &ec, &eo, NULL);
	if (!re) {
		free(pat);
		return 0;
	}
	struct reqlit s;
	reqlit_from_pattern(pat, 0, &s);
	reqlit_prepare(&s);
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	pcre2_match_context *mc = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(mc, 10000);
	pcre2_set_depth_limit(mc, 1000);
	int rc = pcre2_match(re, (PCRE2_SPTR)text, tlen, 0, 0, md, mc);
	if (rc >= 0 && s.n) {
		size_t cut = tlen ? (unsigned char)data[0] % (tlen + 1) : 0;
		if (!reqlit_any(&s, text, tlen) ||
		    !reqlit_any_split(&s, text, cut, text + cut, tlen - cut))
			abort();
		s.avx2 = 0;
		if (!reqlit_any(&s, text, tlen) ||
		    !reqlit_any_split(&s, text, cut, text + cut, tlen - cut))
			abort();
	}
	pcre2_match_context_free(mc);
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	reqlit_free(&s);
	free(pat);
	return 0;
}
