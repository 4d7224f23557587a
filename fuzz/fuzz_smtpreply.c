/*
 * fuzz_smtpreply - libFuzzer target for the probe's SMTP reply parser, the
 * code that reads whatever a probed server sends. The input is fed whole,
 * then again in chunks whose sizes come from the first byte (so replies
 * split at every position are covered); every reply handed back must have a
 * code of 200..599, at most SMTPREPLY_LINES_MAX lines and at most
 * SMTPREPLY_TEXT_MAX bytes of text, and the parser may never hold more than
 * one line's worth of input.
 */
#include <stdlib.h>
#include <string.h>

#include "probe/probe.h"

static void check(const struct smtpreply *r)
{
	if (r->code < 200 || r->code > 599 || r->nlines == 0 || r->nlines > SMTPREPLY_LINES_MAX ||
	    r->text.len > SMTPREPLY_TEXT_MAX || strlen(r->enh) >= sizeof r->enh)
		abort();
}

static void run(const char *d, size_t n, size_t chunk)
{
	struct smtpreply_parser p;
	struct smtpreply r = {0};
	char err[200];
	smtpreply_init(&p);
	size_t off = 0;
	while (off < n) {
		size_t k = n - off < chunk ? n - off : chunk;
		size_t used = 0;
		int rc = smtpreply_feed(&p, d + off, k, &used, &r, err, sizeof err);
		if (used > k || p.line.len > SMTPREPLY_LINE_MAX)
			abort();
		off += used;
		if (rc == SMTPREPLY_DONE)
			check(&r);
		else if (rc == SMTPREPLY_ERROR)
			smtpreply_reset(&p); /* carry on after the bad line, like a resync */
		else if (used != k)
			abort();
		if (rc == SMTPREPLY_ERROR && used == 0)
			off++; /* always make progress */
	}
	smtpreply_clear(&r);
	smtpreply_free(&p);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	run((const char *)data, size, size ? size : 1);
	if (size > 1)
		run((const char *)data + 1, size - 1, (size_t)data[0] % 17 + 1);
	return 0;
}
