/*
 * test_policyreq - framing and parsing of Postfix policy requests: LF and
 * CRLF, duplicates, unknown attributes, byte-at-a-time feeding, pipelining,
 * and every malformed form (NUL, missing '=', empty name, caps); a whole
 * request parsed in place agrees with the same bytes fed one at a time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/xmalloc.h"
#include "policy/policy.h"

static const char REQ[] =
	"request=smtpd_access_policy\n"
	"protocol_state=RCPT\n"
	"protocol_name=ESMTP\n"
	"client_address=192.0.2.1\n"
	"client_name=mail.example.com\n"
	"helo_name=mail.example.com\n"
	"sender=a@example.com\n"
	"recipient=b@example.net\n"
	"recipient_count=0\n"
	"sasl_username=\n"
	"x_unknown_attribute=whatever=with=equals\n"
	"\n";

static void simple(void **state)
{
	(void)state;
	struct policy_parser *pp = policy_parser_new();
	struct policy_req r;
	char err[128] = "";
	policy_req_init(&r);
	long n = policy_parser_feed(pp, REQ, strlen(REQ), &r, err, sizeof(err));
	assert_int_equal(n, (long)strlen(REQ));
	assert_int_equal(r.n, 11);
	assert_string_equal(policy_req_get(&r, "client_address"), "192.0.2.1");
	assert_string_equal(policy_req_get(&r, "sasl_username"), "");
	assert_string_equal(policy_req_get(&r, "x_unknown_attribute"), "whatever=with=equals");
	assert_null(policy_req_get(&r, "size"));
	policy_req_free(&r);
	policy_parser_free(pp);
}

static void crlf_and_duplicates(void **state)
{
	(void)state;
	const char *in = "request=smtpd_access_policy\r\nsender=x@a\r\nsender=y@b\r\n\r\n";
	struct policy_parser *pp = policy_parser_new();
	struct policy_req r;
	char err[128];
	policy_req_init(&r);
	long n = policy_parser_feed(pp, in, strlen(in), &r, err, sizeof(err));
	assert_int_equal(n, (long)strlen(in));
	assert_int_equal(r.n, 3);
	assert_string_equal(policy_req_get(&r, "sender"), "y@b");
	assert_string_equal(policy_req_get(&r, "request"), "smtpd_access_policy");
	policy_req_free(&r);
	policy_parser_free(pp);
}

static void bytewise_and_pipelined(void **state)
{
	(void)state;
	size_t l = strlen(REQ);
	char *two = xmalloc(2 * l);
	memcpy(two, REQ, l);
	memcpy(two + l, REQ, l);
	struct policy_parser *pp = policy_parser_new();
	struct policy_req r;
	char err[128];
	policy_req_init(&r);
	/* one byte at a time: 0 until the final newline */
	for (size_t i = 0; i < l - 1; i++)
		assert_int_equal(policy_parser_feed(pp, two + i, 1, &r, err, sizeof(err)), 0);
	assert_int_equal(policy_parser_feed(pp, two + l - 1, 1, &r, err, sizeof(err)), 1);
	assert_int_equal(r.n, 11);
	/* two requests in one read: the second stays with the caller */
	long n = policy_parser_feed(pp, two, 2 * l, &r, err, sizeof(err));
	assert_int_equal(n, (long)l);
	assert_string_equal(policy_req_get(&r, "recipient"), "b@example.net");
	n = policy_parser_feed(pp, two + n, 2 * l - (size_t)n, &r, err, sizeof(err));
	assert_int_equal(n, (long)l);
	assert_string_equal(policy_req_get(&r, "sender"), "a@example.com");
	/* split in the middle of CRLF */
	const char *c = "a=1\r\n\r\n";
	assert_int_equal(policy_parser_feed(pp, c, 4, &r, err, sizeof(err)), 0);
	assert_int_equal(policy_parser_feed(pp, c + 4, 2, &r, err, sizeof(err)), 0);
	assert_int_equal(policy_parser_feed(pp, c + 6, 1, &r, err, sizeof(err)), 1);
	assert_int_equal(r.n, 1);
	assert_string_equal(policy_req_get(&r, "a"), "1");
	free(two);
	policy_req_free(&r);
	policy_parser_free(pp);
}

static long feed_one(const char *in, size_t len, char *err, size_t errlen)
{
	struct policy_parser *pp = policy_parser_new();
	struct policy_req r;
	policy_req_init(&r);
	long n = policy_parser_feed(pp, in, len, &r, err, errlen);
	/* after an error the parser stays broken */
	if (n < 0) {
		char e2[64];
		assert_true(policy_parser_feed(pp, "a=b\n\n", 5, &r, e2, sizeof(e2)) < 0);
	}
	policy_req_free(&r);
	policy_parser_free(pp);
	return n;
}

static void malformed(void **state)
{
	(void)state;
	char err[128];
	assert_true(feed_one("a=1\nnoequals\n\n", 14, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "'='"));
	assert_true(feed_one("=x\n\n", 4, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "empty name"));
	assert_true(feed_one("a=1\0\n\n", 6, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "NUL"));
	assert_true(feed_one("\n", 1, err, sizeof(err)) < 0);
	assert_true(feed_one("\r\n", 2, err, sizeof(err)) < 0);
}

static void caps(void **state)
{
	(void)state;
	char err[128];
	/* a 1 MB value: rejected once the cap is passed, without a newline */
	size_t big = 1024 * 1024;
	char *b = xmalloc(big + 16);
	memcpy(b, "sender=", 7);
	memset(b + 7, 'x', big);
	memcpy(b + 7 + big, "\n\n", 2);
	assert_true(feed_one(b, big + 9, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "size cap"));
	/* fed in 4 KB pieces the error comes as soon as the cap is crossed */
	struct policy_parser *pp = policy_parser_new();
	struct policy_req r;
	policy_req_init(&r);
	long n = 0;
	size_t off = 0;
	while (off < big + 9 && n == 0) {
		size_t k = big + 9 - off < 4096 ? big + 9 - off : 4096;
		n = policy_parser_feed(pp, b + off, k, &r, err, sizeof(err));
		off += k;
	}
	assert_true(n < 0);
	assert_true(off <= POLICY_REQ_MAX_BYTES + 4096);
	policy_parser_free(pp);

	/* a value just under the cap is accepted whole */
	size_t ok = POLICY_REQ_MAX_BYTES - 7 - 2;
	memset(b + 7, 'y', ok);
	memcpy(b + 7 + ok, "\n\n", 2);
	pp = policy_parser_new();
	n = policy_parser_feed(pp, b, ok + 9, &r, err, sizeof(err));
	assert_int_equal(n, (long)(ok + 9));
	assert_int_equal(strlen(policy_req_get(&r, "sender")), ok);
	policy_parser_free(pp);
	free(b);

	/* attribute count cap */
	struct strbuf_like { char *s; size_t n; } s = { xmalloc(16 * 1000), 0 };
	for (int i = 0; i < POLICY_REQ_MAX_ATTRS; i++)
		s.n += (size_t)sprintf(s.s + s.n, "a%d=1\n", i);
	strcpy(s.s + s.n, "\n");
	pp = policy_parser_new();
	n = policy_parser_feed(pp, s.s, s.n + 1, &r, err, sizeof(err));
	assert_int_equal(n, (long)s.n + 1);
	assert_int_equal(r.n, POLICY_REQ_MAX_ATTRS);
	s.n += (size_t)sprintf(s.s + s.n, "one=more\n\n");
	n = policy_parser_feed(pp, s.s, s.n, &r, err, sizeof(err));
	assert_true(n < 0);
	assert_non_null(strstr(err, "too many"));
	policy_parser_free(pp);
	free(s.s);
	policy_req_free(&r);
}

/* A whole request in one piece is parsed where it lies (the usual case);
 * byte by byte it goes through the general path. Both must give the same
 * attributes, lookups and byte counts, pipelined bytes included. */
static void whole_and_piecewise_agree(void **state)
{
	(void)state;
	static const char *const reqs[] = {
		REQ,
		"a=1\r\nb=\r\nc==x=\r\n\r\n",
		"a=1\nb=2\na=3\nA=4\n\nnext=request\n",
		"x=\r\r\ny=\r\n\ntrailing",
		"k=v\n\r\n",
		"name with spaces=value with spaces\n\n",
	};
	char err[128];
	for (size_t k = 0; k < sizeof reqs / sizeof *reqs; k++) {
		const char *in = reqs[k];
		size_t l = strlen(in);
		struct policy_parser *p1 = policy_parser_new(), *p2 = policy_parser_new();
		struct policy_req r1, r2;
		policy_req_init(&r1);
		policy_req_init(&r2);
		long n1 = policy_parser_feed(p1, in, l, &r1, err, sizeof(err));
		long n2 = 0;
		size_t i = 0;
		while (n2 == 0 && i < l) {
			n2 = policy_parser_feed(p2, in + i, 1, &r2, err, sizeof(err));
			i++;
		}
		assert_true(n1 > 0);
		assert_int_equal(n2, 1);
		assert_int_equal((size_t)n1, i); /* the same end of the request */
		assert_int_equal(r1.n, r2.n);
		for (size_t a = 0; a < r1.n; a++) {
			assert_string_equal(r1.v[a].name, r2.v[a].name);
			assert_string_equal(r1.v[a].value, r2.v[a].value);
			const char *v1 = policy_req_get(&r1, r1.v[a].name);
			const char *v2 = policy_req_get(&r2, r1.v[a].name);
			assert_non_null(v1);
			assert_string_equal(v1, v2);
		}
		assert_null(policy_req_get(&r1, "absent"));
		policy_req_free(&r1);
		policy_req_free(&r2);
		policy_parser_free(p1);
		policy_parser_free(p2);
	}
	/* the values, not only their agreement */
	struct policy_parser *pp = policy_parser_new();
	struct policy_req r;
	policy_req_init(&r);
	const char *in = "a=1\r\nb=\r\nc==x=\r\na=2\r\n\r\n";
	assert_int_equal(policy_parser_feed(pp, in, strlen(in), &r, err, sizeof(err)), (long)strlen(in));
	assert_int_equal(r.n, 4);
	assert_string_equal(policy_req_get(&r, "a"), "2");
	assert_string_equal(policy_req_get(&r, "b"), "");
	assert_string_equal(policy_req_get(&r, "c"), "=x=");
	policy_req_free(&r);
	policy_parser_free(pp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(simple),
		cmocka_unit_test(crlf_and_duplicates),
		cmocka_unit_test(bytewise_and_pipelined),
		cmocka_unit_test(malformed),
		cmocka_unit_test(caps),
		cmocka_unit_test(whole_and_piecewise_agree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
