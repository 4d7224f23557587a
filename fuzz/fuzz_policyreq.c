/*
 * fuzz_policyreq - libFuzzer target for the Postfix policy request parser
 * (policy/policyreq.c) and the engine behind it.
 *
 * The first input byte picks the chunk size the rest is fed in, so splits in
 * every place (inside CRLF, inside a name) are covered. Checked: a complete
 * request never claims more bytes than it was given, names are non-empty and
 * no name or value holds a newline or NUL; every complete request then goes
 * through policy_eval() of a memory-only engine with every check on, whose
 * reply must be one non-empty line.
 */
#include <stdlib.h>
#include <string.h>

#include "core/kvlist.h"
#include "core/strbuf.h"
#include "policy/policy.h"

static struct policy *engine(void)
{
	static struct policy *p;   /* built once: the harness, not the library */
	if (!p) {
		struct kvlist pol = KVLIST_INIT, gl = KVLIST_INIT, rl = KVLIST_INIT, sp = KVLIST_INIT;
		char err[256];
		kvlist_set(&gl, "whitelist_clients", "/nonexistent");
		kvlist_set(&gl, "whitelist_recipients", "/nonexistent");
		kvlist_set(&gl, "max_triplets", "1000");
		kvlist_set(&gl, "delay", "0");
		kvlist_set(&rl, "a", "sasl_username: 5 recipients / 1h, 20 / 1d");
		kvlist_set(&rl, "b", "client_address: 3 requests / 1m");
		kvlist_set(&rl, "c", "sender_domain: 1000 bytes / 1h");
		kvlist_set(&rl, "max_keys", "1000");
		kvlist_set(&sp, "domains", "example.org");
		p = policy_new(&pol, &gl, &rl, &sp, NULL, NULL, 1700000000.0, err, sizeof(err));
		if (!p)
			abort();
		kvlist_free(&pol);
		kvlist_free(&gl);
		kvlist_free(&rl);
		kvlist_free(&sp);
	}
	return p;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t chunk = (size_t)data[0] % 64 + 1;
	const char *s = (const char *)data + 1;
	size_t len = size - 1, pos = 0;
	struct policy_parser *pp = policy_parser_new();
	struct policy_req r;
	struct strbuf out = STRBUF_INIT;
	char err[128];
	double now = 1700000000.0;

	policy_req_init(&r);
	while (pos < len) {
		size_t k = len - pos < chunk ? len - pos : chunk;
		long n = policy_parser_feed(pp, s + pos, k, &r, err, sizeof(err));
		if (n < 0)
			break;
		if (n == 0) {
			pos += k;
			continue;
		}
		if ((size_t)n > k)
			abort();
		pos += (size_t)n;
		for (size_t i = 0; i < r.n; i++)
			if (!r.v[i].name[0] || strchr(r.v[i].name, '\n') || strchr(r.v[i].value, '\n'))
				abort();
		strbuf_reset(&out);
		policy_eval(engine(), &r, now, &out);
		now += 1;
		if (out.len == 0 || memchr(out.s, '\n', out.len))
			abort();
	}
	strbuf_free(&out);
	policy_req_free(&r);
	policy_parser_free(pp);
	return 0;
}
