/*
 * test_probe - the probe's SMTP reply parser (single and multiline replies,
 * continuation lines, bare LF, byte-by-byte arrival, several replies in one
 * buffer, garbage, NUL bytes, code changes, 1 MB lines, endless multiline
 * replies), port lists, software/version disclosure and the report output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "probe/probe.h"
#include "probe/probe_int.h"

/* Feeds all of s in chunks of `chunk` bytes; returns the first non-MORE
 * result (DONE or ERROR) and how many bytes were consumed in total. */
static int feed_all(struct smtpreply_parser *p, const char *s, size_t n, size_t chunk,
		    struct smtpreply *out, size_t *consumed, char *err)
{
	size_t off = 0;
	while (off < n) {
		size_t k = n - off < chunk ? n - off : chunk;
		size_t used = 0;
		int rc = smtpreply_feed(p, s + off, k, &used, out, err, 200);
		assert_true(used <= k);
		off += used;
		if (rc != SMTPREPLY_MORE) {
			*consumed = off;
			return rc;
		}
		assert_int_equal(used, k);
	}
	*consumed = off;
	return SMTPREPLY_MORE;
}

static void single_line(void **state)
{
	(void)state;
	struct smtpreply_parser p;
	struct smtpreply r = {0};
	char err[200];
	size_t used;
	smtpreply_init(&p);
	const char *s = "220 mx.example.test ESMTP\r\n";
	assert_int_equal(feed_all(&p, s, strlen(s), 1000, &r, &used, err), SMTPREPLY_DONE);
	assert_int_equal(r.code, 220);
	assert_int_equal(r.nlines, 1);
	assert_string_equal(strbuf_str(&r.text), "mx.example.test ESMTP");
	assert_int_equal(used, strlen(s));
	smtpreply_clear(&r);
	smtpreply_free(&p);
}

static void multiline_any_chunking(void **state)
{
	(void)state;
	const char *s = "250-mx.example.test\r\n250-PIPELINING\r\n250-STARTTLS\n250 SMTPUTF8\r\n";
	for (size_t chunk = 1; chunk <= strlen(s); chunk++) {
		struct smtpreply_parser p;
		struct smtpreply r = {0};
		char err[200];
		size_t used;
		smtpreply_init(&p);
		assert_int_equal(feed_all(&p, s, strlen(s), chunk, &r, &used, err), SMTPREPLY_DONE);
		assert_int_equal(r.code, 250);
		assert_int_equal(r.nlines, 4);
		assert_string_equal(strbuf_str(&r.text),
				    "mx.example.test\nPIPELINING\nSTARTTLS\nSMTPUTF8");
		assert_int_equal(used, strlen(s));
		smtpreply_clear(&r);
		smtpreply_free(&p);
	}
}

static void two_replies_one_buffer(void **state)
{
	(void)state;
	struct smtpreply_parser p;
	struct smtpreply r = {0};
	char err[200];
	size_t used;
	smtpreply_init(&p);
	const char *s = "250 2.1.0 Ok\r\n554 5.7.1 <x@y>: Relay access denied\r\n";
	assert_int_equal(smtpreply_feed(&p, s, strlen(s), &used, &r, err, sizeof err),
			 SMTPREPLY_DONE);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enh, "2.1.0");
	assert_int_equal(used, 14);
	size_t used2;
	assert_int_equal(smtpreply_feed(&p, s + used, strlen(s) - used, &used2, &r, err, sizeof err),
			 SMTPREPLY_DONE);
	assert_int_equal(r.code, 554);
	assert_string_equal(r.enh, "5.7.1");
	assert_string_equal(strbuf_str(&r.text), "5.7.1 <x@y>: Relay access denied");
	assert_int_equal(used + used2, strlen(s));
	smtpreply_clear(&r);
	smtpreply_free(&p);
}

static void bare_code_and_enhanced(void **state)
{
	(void)state;
	struct smtpreply_parser p;
	struct smtpreply r = {0};
	char err[200];
	size_t used;
	smtpreply_init(&p);
	assert_int_equal(smtpreply_feed(&p, "354\r\n", 5, &used, &r, err, sizeof err),
			 SMTPREPLY_DONE);
	assert_int_equal(r.code, 354);
	assert_string_equal(strbuf_str(&r.text), "");
	assert_string_equal(r.enh, "");
	/* not an enhanced code: too many digits, wrong class, no space after */
	const char *no[] = {"250 2.1234.0 x\n", "250 3.1.0 x\n", "250 2.1.0x\n", "250 2..0 x\n"};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(smtpreply_feed(&p, no[i], strlen(no[i]), &used, &r, err, sizeof err),
				 SMTPREPLY_DONE);
		assert_string_equal(r.enh, "");
	}
	assert_int_equal(smtpreply_feed(&p, "550 5.1.1\n", 10, &used, &r, err, sizeof err),
			 SMTPREPLY_DONE);
	assert_string_equal(r.enh, "5.1.1");
	smtpreply_clear(&r);
	smtpreply_free(&p);
}

static void expect_error(const char *s, size_t n, const char *msg_part)
{
	struct smtpreply_parser p;
	struct smtpreply r = {0};
	char err[200] = "";
	size_t used;
	smtpreply_init(&p);
	assert_int_equal(feed_all(&p, s, n, 7, &r, &used, err), SMTPREPLY_ERROR);
	assert_non_null(strstr(err, msg_part));
	smtpreply_reset(&p);
	/* usable again after a reset */
	assert_int_equal(smtpreply_feed(&p, "221 bye\r\n", 9, &used, &r, err, sizeof err),
			 SMTPREPLY_DONE);
	assert_int_equal(r.code, 221);
	smtpreply_clear(&r);
	smtpreply_free(&p);
}

static void garbage(void **state)
{
	(void)state;
	expect_error("HTTP/1.1 400 Bad Request\r\n", 26, "not an SMTP reply line");
	expect_error("* OK IMAP ready\r\n", 17, "not an SMTP reply line");
	expect_error("22\r\n", 4, "not an SMTP reply line");
	expect_error("\r\n", 2, "not an SMTP reply line");
	expect_error("220x\r\n", 6, "not an SMTP reply line");
	expect_error("120 hello\r\n", 11, "not an SMTP reply line");
	expect_error("620 hello\r\n", 11, "not an SMTP reply line");
	expect_error("220-a\r\n250 b\r\n", 14, "code changes");
	expect_error("220 a\0b\r\n", 9, "NUL byte");
	/* the error quotes what arrived in printable form */
	struct smtpreply_parser p;
	struct smtpreply r = {0};
	char err[200];
	size_t used;
	smtpreply_init(&p);
	assert_int_equal(smtpreply_feed(&p, "\x16\x03\x01zz\n", 6, &used, &r, err, sizeof err),
			 SMTPREPLY_ERROR);
	assert_non_null(strstr(err, "\\x16\\x03\\x01zz"));
	smtpreply_free(&p);
}

static void one_megabyte_line(void **state)
{
	(void)state;
	size_t n = 1024 * 1024;
	char *big = malloc(n + 2);
	assert_non_null(big);
	memcpy(big, "220 ", 4);
	memset(big + 4, 'A', n - 4);
	big[n] = '\r';
	big[n + 1] = '\n';
	for (size_t chunk = 1000; chunk <= n; chunk *= 16) {
		struct smtpreply_parser p;
		struct smtpreply r = {0};
		char err[200];
		size_t used;
		smtpreply_init(&p);
		assert_int_equal(feed_all(&p, big, n + 2, chunk, &r, &used, err), SMTPREPLY_ERROR);
		assert_non_null(strstr(err, "longer than"));
		/* it stopped early, holding at most one line's worth */
		assert_true(used <= SMTPREPLY_LINE_MAX + chunk);
		assert_true(p.line.cap <= 4 * SMTPREPLY_LINE_MAX);
		smtpreply_free(&p);
	}
	free(big);
}

static void endless_multiline(void **state)
{
	(void)state;
	struct smtpreply_parser p;
	struct smtpreply r = {0};
	char err[200];
	smtpreply_init(&p);
	int rc = SMTPREPLY_MORE;
	size_t lines = 0;
	while (rc == SMTPREPLY_MORE && lines < 100000) {
		size_t used;
		rc = smtpreply_feed(&p, "250-again and again\r\n", 21, &used, &r, err, sizeof err);
		lines++;
	}
	assert_int_equal(rc, SMTPREPLY_ERROR);
	assert_int_equal(lines, SMTPREPLY_LINES_MAX + 1);
	assert_non_null(strstr(err, "multiline reply longer"));
	smtpreply_free(&p);
}

static void text_cap(void **state)
{
	(void)state;
	/* 200 lines of 4000 bytes: accepted, but only SMTPREPLY_TEXT_MAX kept */
	struct smtpreply_parser p;
	struct smtpreply r = {0};
	char err[200];
	size_t used;
	smtpreply_init(&p);
	char line[4010];
	memcpy(line, "250-", 4);
	memset(line + 4, 'b', 4000);
	memcpy(line + 4004, "\r\n", 2);
	for (int i = 0; i < 199; i++)
		assert_int_equal(smtpreply_feed(&p, line, 4006, &used, &r, err, sizeof err),
				 SMTPREPLY_MORE);
	line[3] = ' ';
	assert_int_equal(smtpreply_feed(&p, line, 4006, &used, &r, err, sizeof err), SMTPREPLY_DONE);
	assert_int_equal(r.nlines, 200);
	assert_true(r.text.len <= SMTPREPLY_TEXT_MAX);
	smtpreply_clear(&r);
	smtpreply_free(&p);
}

static void ports(void **state)
{
	(void)state;
	struct probe_port pp[PROBE_MAX_PORTS];
	assert_int_equal(probe_parse_ports("25,587,465", pp, PROBE_MAX_PORTS), 3);
	assert_int_equal(pp[0].port, 25);
	assert_int_equal(pp[0].implicit_tls, 0);
	assert_int_equal(pp[1].implicit_tls, 0);
	assert_int_equal(pp[2].implicit_tls, 1);
	assert_int_equal(probe_parse_ports("2993,2143,2144s", pp, PROBE_MAX_PORTS), 3);
	assert_int_equal(pp[0].implicit_tls, 1);
	assert_int_equal(pp[1].implicit_tls, 0);
	assert_int_equal(pp[2].implicit_tls, 1);
	assert_int_equal(probe_parse_ports("", pp, PROBE_MAX_PORTS), -1);
	assert_int_equal(probe_parse_ports("0", pp, PROBE_MAX_PORTS), -1);
	assert_int_equal(probe_parse_ports("65536", pp, PROBE_MAX_PORTS), -1);
	assert_int_equal(probe_parse_ports("25,x", pp, PROBE_MAX_PORTS), -1);
	assert_int_equal(probe_parse_ports("25;26", pp, PROBE_MAX_PORTS), -1);
	assert_int_equal(probe_parse_ports("1,2,3", pp, 2), -1);
}

static void disclosure(void **state)
{
	(void)state;
	struct { const char *text; int found, ver; const char *what; } t[] = {
		{"mx.weak.test ESMTP Postfix 3.7.11 (Debian/GNU)", 1, 1, "Postfix 3.7.11, Debian"},
		{"mx.hard.test ESMTP", 0, 0, ""},
		{"mail.example.org ESMTP Exim 4.96 Mon, 1 Jan 2024", 1, 1, "Exim 4.96"},
		{"host ESMTP Sendmail 8.17.1/8.17.1; Mon", 1, 1, "Sendmail 8.17.1"},
		{"Dovecot (Debian) ready.", 1, 0, "Dovecot, Debian"},
		{"postfixadmin.example.test ESMTP", 0, 0, ""},
		{"ready.", 0, 0, ""},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct strbuf w = STRBUF_INIT;
		int ver = -1;
		assert_int_equal(probe_disclosure(t[i].text, &w, &ver), t[i].found);
		assert_int_equal(ver, t[i].ver);
		assert_string_equal(strbuf_str(&w), t[i].what);
		strbuf_free(&w);
	}
}

static void report_output(void **state)
{
	(void)state;
	struct probe_report r = {0};
	r.host = strdup("mx.example.test");
	r.address = strdup("127.0.0.1");
	probe_add(&r, "smtp.relay.open", PROBE_HIGH, "smtp/25", "open relay",
		  "250 2.1.5 \"Ok\"\n\x01", "fix it");
	probe_add(&r, "smtp.relay.open", PROBE_HIGH, "smtp/25", "dup", "dup", "dup");
	probe_add(&r, "smtp.banner", PROBE_INFO, "smtp/25", "greeting", "220 x", "");
	probe_warn(&r, "same %s", "ip");
	probe_error(&r, "imap/143: %s", "connection refused");
	assert_int_equal(r.n, 2);
	assert_int_equal(probe_count(&r, PROBE_HIGH), 1);
	assert_non_null(probe_find(&r, "smtp.banner", "smtp/25"));
	assert_null(probe_find(&r, "smtp.banner", "smtp/587"));
	struct strbuf j = STRBUF_INIT, t = STRBUF_INIT;
	probe_report_json(&r, &j);
	assert_non_null(strstr(j.s, "\"evidence\":\"250 2.1.5 \\\"Ok\\\"\\n\\u0001\""));
	assert_non_null(strstr(j.s, "\"summary\":{\"high\":1,\"medium\":0,\"low\":0,\"info\":1}"));
	assert_non_null(strstr(j.s, "\"errors\":[\"imap/143: connection refused\"]"));
	probe_report_text(&r, &t);
	assert_non_null(strstr(t.s, "warning: same ip"));
	assert_non_null(strstr(t.s, "high (1)"));
	assert_non_null(strstr(t.s, "fix:  fix it"));
	strbuf_free(&j);
	strbuf_free(&t);
	probe_report_free(&r);
}

static void printable(void **state)
{
	(void)state;
	struct strbuf b = STRBUF_INIT;
	probe_printable(&b, "a\\b\r\n\xff", 6, 100);
	assert_string_equal(b.s, "a\\x5cb\\x0d\\x0a\\xff");
	strbuf_reset(&b);
	probe_printable(&b, "abcdef", 6, 3);
	assert_string_equal(b.s, "abc...");
	strbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(single_line),
		cmocka_unit_test(multiline_any_chunking),
		cmocka_unit_test(two_replies_one_buffer),
		cmocka_unit_test(bare_code_and_enhanced),
		cmocka_unit_test(garbage),
		cmocka_unit_test(one_megabyte_line),
		cmocka_unit_test(endless_multiline),
		cmocka_unit_test(text_cap),
		cmocka_unit_test(ports),
		cmocka_unit_test(disclosure),
		cmocka_unit_test(report_output),
		cmocka_unit_test(printable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
