/*
 * fuzz_line - libFuzzer target for the filter line pipeline: date detection,
 * the 2-line buffer, prefregex with <F-CONTENT>, failregexes with <HOST> and
 * F- groups, ignoreregex and F-NOFAIL, address normalisation.
 *
 * The filter is compiled once (PCRE2 JIT compilation would dominate every
 * run otherwise) from a definition shaped like the stock mail filters. Its
 * multi-line buffer therefore carries over between inputs; that state is
 * bounded by maxlines, so the target stays deterministic enough for libFuzzer
 * and exercises the carry-over path as a real log reader does. The regexes
 * were checked against fail2ban-regex on the seed corpus (same results).
 *
 * The input is split at newlines and every chunk is copied into a buffer of
 * exactly its length: filter_process() takes (pointer, length), and ASan then
 * reports any read past the end. Properties checked beyond "no crash": a
 * failure carries a non-empty id and at least one line.
 */
#include <stdlib.h>
#include <string.h>

#include "core/diag.h"
#include "core/xmalloc.h"
#include "filters/filter.h"

/* Prefix like the stock filters': optional host name, daemon[pid]: */
static const char prefregex[] =
	"^\\s*(?:\\S+ )?(?:postfix(?:-\\w+)?/[\\w/-]+|sshd|dovecot)(?:\\[\\d+\\])?: "
	"<F-CONTENT>.+</F-CONTENT>$";

static const char *const failregex[] = {
	"^warning: [-._\\w]+\\[<HOST>\\]: SASL (?:LOGIN|PLAIN|(?:CRAM|DIGEST)-MD5) "
	"authentication failed:(?: [^\\n]*)?$",
	"^NOQUEUE: reject: RCPT from [-._\\w]+\\[<HOST>\\](?::\\d+)?: 554 5\\.7\\.1 "
	"<[^>]*>: Relay access denied; from=<[^>]*> to=<<F-USER>[^>]*</F-USER>>",
	"^Failed (?:password|publickey) for (?:invalid user )?<F-USER>\\S*</F-USER> "
	"from <HOST>(?: port \\d+)?(?: ssh\\d*)?$",
	"^Invalid user <F-USER>\\S*</F-USER> from <HOST> port \\d+<SKIPLINES>Connection closed "
	"by \\S+ port \\d+ \\[preauth\\]$",
	"^auth(?:-worker\\(\\d+\\))?: [\\w-]+\\(<F-USER>[^,)]*</F-USER>,<ADDR>(?:,<[^>]*>)?\\): "
	"(?:unknown user|Password mismatch)",
	"^<F-NOFAIL>Accepted</F-NOFAIL> \\S+ for <F-USER>\\S+</F-USER> from <HOST>",
};

static const char *const ignoreregex[] = {
	"\\[127\\.0\\.0\\.1\\]: SASL ", /* sees the whole line, as in fail2ban */
};

static struct filter *build(void)
{
	struct filter_def def = {0};
	struct diag d = DIAG_INIT;

	def.name = xstrdup("fuzz-line");
	def.prefregex = xstrdup(prefregex);
	def.nfailregex = sizeof failregex / sizeof failregex[0];
	def.failregex = xcalloc(def.nfailregex, sizeof *def.failregex);
	for (size_t i = 0; i < def.nfailregex; i++) {
		def.failregex[i].text = xstrdup(failregex[i]);
		def.failregex[i].line = (unsigned)i + 1;
	}
	def.nignoreregex = sizeof ignoreregex / sizeof ignoreregex[0];
	def.ignoreregex = xcalloc(def.nignoreregex, sizeof *def.ignoreregex);
	for (size_t i = 0; i < def.nignoreregex; i++)
		def.ignoreregex[i].text = xstrdup(ignoreregex[i]);
	def.maxlines = 2;
	def.usedns = xstrdup("no");
	def.logtype = xstrdup("file");

	struct filter *f = filter_compile(&def, &d);
	filter_def_free(&def);
	if (!f || d.nerrors)
		abort(); /* the harness itself is wrong: fail loudly, not silently */
	diag_clear(&d);

	struct filter_opts o = {.check_all = 1, .raw_host = 1};
	filter_set_opts(f, &o);
	return f;
}

static void check(const struct filter_result *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct filter_hit *h = &r->hits[i];
		if (h->id && !h->nofail && (!*h->id || h->nlines == 0))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static struct filter *f;
	static const struct date_clock clk = {.now = 1700000000.0, .has_tz = 1, .tz_offset = 0};
	struct filter_result res = {0};

	if (!f)
		f = build();
	while (size > 0) {
		const unsigned char *nl = memchr(data, '\n', size);
		size_t len = nl ? (size_t)(nl - data) : size;
		char *line = xmalloc(len ? len : 1);
		memcpy(line, data, len);
		filter_process(f, line, len, -1.0, &clk, &res);
		check(&res);
		filter_result_reset(&res);
		free(line);
		if (!nl)
			break;
		data = nl + 1;
		size -= len + 1;
	}
	filter_result_free(&res);
	return 0;
}
