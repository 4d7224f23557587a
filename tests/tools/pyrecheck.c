/*
 * pyrecheck - test helper: translates Python regexes with pyre and compiles
 * them with PCRE2 the way the filter engine does.
 *
 * Usage: pyrecheck [-r] [-x] < lines
 * Each input line is a pattern, optionally followed by subjects, all
 * separated by the byte 0x1f; with -x every field is hex-encoded instead and
 * fields are separated by spaces (any bytes, newlines included). For each
 * line it prints
 *   OK<TAB>flags-hex<TAB>translated[<TAB>M:start:end | <TAB>N]...
 * (byte offsets of the first match in each subject) or ERR<TAB>message.
 * -r translates without fail2ban's ((?i)x) -> (?i:x) rewrite.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/pyre.h"

/* Decodes hex fields in place: "616263 78" -> "abc\x1fx". */
static void unhex(char *line)
{
	char *w = line;

	for (char *r = line; *r;) {
		if (*r == ' ') {
			*w++ = '\x1f';
			r++;
			continue;
		}
		unsigned v;
		if (!r[1] || sscanf(r, "%2x", &v) != 1)
			break;
		*w++ = (char)v;
		r += 2;
	}
	*w = '\0';
}

static void run(char *line, unsigned opts, pcre2_match_context *mctx)
{
	char err[256];
	uint32_t flags;
	char *sep = strchr(line, '\x1f');
	char *subjects = NULL;

	if (sep) {
		*sep = '\0';
		subjects = sep + 1;
	}
	char *pat = pyre_translate_ex(line, opts, &flags, err, sizeof err);
	if (!pat) {
		printf("ERR\t%s\n", err);
		return;
	}
	uint32_t copts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (flags & ~PYRE_ASCII);
	if (!(flags & PYRE_ASCII))
		copts |= PCRE2_UCP;
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, copts,
				       &ec, &eo, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ec, msg, sizeof msg);
		printf("ERR\tPCRE2: %s at offset %zu in %s\n", (char *)msg, (size_t)eo, pat);
		free(pat);
		return;
	}
	printf("OK\t%x\t%s", (unsigned)flags, pat);
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	while (subjects) {
		char *s = subjects;
		sep = strchr(s, '\x1f');
		if (sep) {
			*sep = '\0';
			subjects = sep + 1;
		} else {
			subjects = NULL;
		}
		int rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, mctx);
		if (rc >= 0) {
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
			printf("\tM:%zu:%zu", (size_t)ov[0], (size_t)ov[1]);
		} else if (rc == PCRE2_ERROR_NOMATCH) {
			printf("\tN");
		} else {
			printf("\tE:%d", rc);
		}
	}
	printf("\n");
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	free(pat);
}

int main(int argc, char **argv)
{
	unsigned opts = PYRE_OPT_F2B_GLOB2LOC;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int c, hex = 0;

	while ((c = getopt(argc, argv, "rx")) != -1) {
		if (c == 'r')
			opts = 0;
		else if (c == 'x')
			hex = 1;
		else {
			fprintf(stderr, "usage: pyrecheck [-r] [-x] < patterns\n");
			return 2;
		}
	}
	pcre2_match_context *mctx = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(mctx, 1000000);
	pcre2_set_depth_limit(mctx, 10000);
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (hex)
			unhex(line);
		run(line, opts, mctx);
		fflush(stdout);
	}
	free(line);
	pcre2_match_context_free(mctx);
	return 0;
}
