/*
 * fuzz_http - libFuzzer target for metrics/http's request parser and the
 * Prometheus label escaping: any bytes must parse or be refused without
 * reading past the buffer; an accepted request has a method, an origin-form
 * path and headers whose names and values hold no control characters; an
 * escaped label value holds no raw newline or unescaped quote.
 */
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "metrics/http.h"
#include "metrics/metrics.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	/* exact-size copy: ASan catches any read past what the peer sent */
	char *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	struct http_request rq;
	long r = http_parse_request(buf, size, &rq);
	if (r > (long)size)
		abort();
	if (r > 0) {
		if (!rq.method || rq.path[0] != '/' || rq.minor < 0 || rq.minor > 1)
			abort();
		for (size_t i = 0; i < rq.nheaders; i++)
			for (const char *p = rq.headers[i].value; *p; p++)
				if ((unsigned char)*p < 0x20 && *p != '\t')
					abort();
		char out[64];
		http_query_get(rq.query, "token", out, sizeof out);
		http_header(&rq, "Authorization");
	}
	free(buf);

	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	struct strbuf o = STRBUF_INIT;
	metrics_escape_label(&o, s);
	for (size_t i = 0; i < o.len; i++) {
		if (o.s[i] == '\n')
			abort();
		if (o.s[i] == '\\')
			i++; /* the escaped character */
		else if (o.s[i] == '"')
			abort();
	}
	strbuf_free(&o);
	free(s);
	return 0;
}
