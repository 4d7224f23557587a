/*
 * test_filter - the filter engine on hand-built definitions: prefregex and
 * F-CONTENT, failregex order and check_all, ignoreregex, F- groups, ALT/TUPLE,
 * multi-line buffers with <SKIPLINES>, F-MLFID sessions, address
 * normalisation, invalid UTF-8, and the match limit on a pathological line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "core/diag.h"
#include "core/xmalloc.h"
#include "filters/filter.h"

#define NOW 1124013600.0

struct fx {
	struct filter *f;
	struct filter_result r;
	struct date_clock clk;
};

static struct filter *build(const char *pref, const char *const *fail, const char *const *ign,
			    unsigned maxlines, const char *datepattern, int check_all)
{
	struct filter_def d = {0};
	d.name = xstrdup("t");
	if (pref)
		d.prefregex = xstrdup(pref);
	size_t n = 0;
	while (fail && fail[n])
		n++;
	d.failregex = xcalloc(n + 1, sizeof *d.failregex);
	for (size_t i = 0; i < n; i++)
		d.failregex[i].text = xstrdup(fail[i]);
	d.nfailregex = n;
	n = 0;
	while (ign && ign[n])
		n++;
	d.ignoreregex = xcalloc(n + 1, sizeof *d.ignoreregex);
	for (size_t i = 0; i < n; i++)
		d.ignoreregex[i].text = xstrdup(ign[i]);
	d.nignoreregex = n;
	d.maxlines = maxlines;
	if (datepattern) {
		d.datepattern = xcalloc(1, sizeof(char *));
		d.datepattern[0] = xstrdup(datepattern);
		d.ndatepattern = 1;
	}
	struct diag dg = DIAG_INIT;
	struct filter *f = filter_compile(&d, &dg);
	if (!f) {
		diag_print(&dg, stderr);
		fail_msg("filter did not compile");
	}
	diag_clear(&dg);
	filter_def_free(&d);
	struct filter_opts o = {.check_all = check_all, .raw_host = 1};
	filter_set_opts(f, &o);
	return f;
}

static enum filter_status feed(struct filter *f, struct filter_result *r, const char *line)
{
	struct date_clock clk = {.now = NOW};
	filter_result_reset(r);
	return filter_process(f, line, strlen(line), -1, &clk, r);
}

static const char *group(const struct filter_hit *h, const char *k)
{
	return kvlist_get(&h->groups, k);
}

static void basic_host(void **state)
{
	(void)state;
	const char *fr[] = {"^\\s*auth failure from <HOST> user <F-USER>\\S+</F-USER>$", NULL};
	struct filter *f = build(NULL, fr, NULL, 1, NULL, 0);
	struct filter_result r = {0};
	assert_int_equal(feed(f, &r, "Aug 14 11:59:59 auth failure from 192.0.2.1 user bob"),
			 FILTER_MATCHED);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.hits[0].id, "192.0.2.1");
	assert_string_equal(group(&r.hits[0], "user"), "bob");
	assert_int_equal(r.hits[0].nlines, 1);
	assert_true(r.hits[0].time > 0);
	/* IPv6 normalised, v4-mapped folded */
	assert_int_equal(feed(f, &r, "Aug 14 11:59:59 auth failure from 2001:DB8:0::1 user x"),
			 FILTER_MATCHED);
	assert_string_equal(r.hits[0].id, "2001:db8::1");
	assert_int_equal(feed(f, &r, "Aug 14 11:59:59 auth failure from ::ffff:192.0.2.7 user x"),
			 FILTER_MATCHED);
	assert_string_equal(r.hits[0].id, "192.0.2.7");
	assert_int_equal(feed(f, &r, "Aug 14 11:59:59 nothing here"), FILTER_MISSED);
	assert_int_equal(r.n, 0);
	filter_result_free(&r);
	filter_free(f);
}

static void prefregex_content(void **state)
{
	(void)state;
	const char *fr[] = {"^bad login from <HOST>$", "^relay denied from <HOST>$", NULL};
	struct filter *f = build("^\\s*\\S+ \\S+\\[\\d+\\]: <F-CONTENT>.+</F-CONTENT>$", fr, NULL, 1,
				 NULL, 0);
	struct filter_result r = {0};
	assert_int_equal(feed(f, &r, "Aug 14 11:59:59 host smtpd[12]: relay denied from 192.0.2.3"),
			 FILTER_MATCHED);
	assert_int_equal(r.hits[0].regex, 1);
	assert_string_equal(r.hits[0].id, "192.0.2.3");
	/* the prefix must match: the same text without it is not a failure */
	assert_int_equal(feed(f, &r, "Aug 14 11:59:59 relay denied from 192.0.2.3"), FILTER_MISSED);
	filter_result_free(&r);
	filter_free(f);
}

static void ignoreregex(void **state)
{
	(void)state;
	const char *fr[] = {"failed for \\S+ from <HOST>", NULL};
	const char *ig[] = {"for trusted ", NULL};
	struct filter *f = build(NULL, fr, ig, 1, NULL, 0);
	struct filter_result r = {0};
	assert_int_equal(feed(f, &r, "Aug 14 11:59:59 failed for trusted from 192.0.2.4"),
			 FILTER_IGNORED);
	assert_int_equal(r.n, 0);
	assert_int_equal(feed(f, &r, "Aug 14 11:59:59 failed for eve from 192.0.2.4"),
			 FILTER_MATCHED);
	filter_result_free(&r);
	filter_free(f);
}

static void check_all_counts(void **state)
{
	(void)state;
	const char *fr[] = {"from <HOST>", "from <ADDR>$", NULL};
	struct filter *f = build(NULL, fr, NULL, 1, NULL, 1);
	struct filter_result r = {0};
	assert_int_equal(feed(f, &r, "Aug 14 11:59:59 from 192.0.2.5"), FILTER_MATCHED);
	assert_int_equal(r.n, 2);
	filter_free(f);
	f = build(NULL, fr, NULL, 1, NULL, 0);
	assert_int_equal(feed(f, &r, "Aug 14 11:59:59 from 192.0.2.5"), FILTER_MATCHED);
	assert_int_equal(r.n, 1);
	assert_int_equal(filter_get_stats(f)->regex_hits[0], 1);
	filter_result_free(&r);
	filter_free(f);
}

static void fid_and_alt(void **state)
{
	(void)state;
	const char *fr[] = {
		"session <F-ID>\\w+</F-ID> (?:user <F-ALT_USER>\\w+</F-ALT_USER>|login <F-USER>\\w+</F-USER>) from <HOST>",
		NULL};
	struct filter *f = build(NULL, fr, NULL, 1, NULL, 0);
	struct filter_result r = {0};
	assert_int_equal(feed(f, &r, "Aug 14 11:59:59 session abc user joe from 192.0.2.6"),
			 FILTER_MATCHED);
	/* a complex id keeps the id; the address goes to "ip" */
	assert_string_equal(r.hits[0].id, "abc");
	assert_string_equal(group(&r.hits[0], "ip"), "192.0.2.6");
	assert_string_equal(group(&r.hits[0], "user"), "joe");
	filter_result_free(&r);
	filter_free(f);
}

static void multiline_skiplines(void **state)
{
	(void)state;
	const char *fr[] = {"^\\s*conn (?P<c>\\d+) start from <HOST><SKIPLINES>\\s*conn (?P=c) auth failed$",
			    NULL};
	struct filter *f = build(NULL, fr, NULL, 5, NULL, 0);
	struct filter_result r = {0};
	assert_int_equal(feed(f, &r, "Aug 14 11:59:50 conn 7 start from 192.0.2.8"), FILTER_MISSED);
	assert_int_equal(feed(f, &r, "Aug 14 11:59:51 conn 9 start from 192.0.2.9"), FILTER_MISSED);
	assert_int_equal(feed(f, &r, "Aug 14 11:59:52 conn 7 auth failed"), FILTER_MATCHED);
	assert_string_equal(r.hits[0].id, "192.0.2.8");
	/* the skipped line of connection 9 is not part of the failure */
	assert_int_equal(r.hits[0].nlines, 2);
	assert_int_equal(feed(f, &r, "Aug 14 11:59:53 conn 9 auth failed"), FILTER_MATCHED);
	assert_string_equal(r.hits[0].id, "192.0.2.9");
	filter_result_free(&r);
	filter_free(f);
}

static void mlfid_session(void **state)
{
	(void)state;
	const char *fr[] = {
		"^\\s*sshd\\[<F-MLFID>\\d+</F-MLFID>\\]: <F-NOFAIL>Connection</F-NOFAIL> from <HOST>(?: port \\d+)?$",
		"^\\s*sshd\\[<F-MLFID>\\d+</F-MLFID>\\]: Failed password for <F-USER>\\S+</F-USER>$",
		"^\\s*sshd\\[<F-MLFID>\\d+</F-MLFID>\\]: Disconnected<F-MLFFORGET>x</F-MLFFORGET>$",
		NULL};
	struct filter *f = build(NULL, fr, NULL, 1, NULL, 0);
	struct filter_result r = {0};
	assert_int_equal(feed(f, &r, "Aug 14 11:59:50 sshd[42]: Connection from 192.0.2.10 port 22"),
			 FILTER_MISSED);
	assert_int_equal(feed(f, &r, "Aug 14 11:59:51 sshd[42]: Failed password for root"),
			 FILTER_MATCHED);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.hits[0].id, "192.0.2.10");
	assert_int_equal(r.hits[0].nusers, 1);
	assert_int_equal(feed(f, &r, "Aug 14 11:59:52 sshd[42]: Failed password for admin"),
			 FILTER_MATCHED);
	assert_int_equal(r.hits[0].nusers, 2);
	/* a different session id knows no address: pending, not a failure */
	feed(f, &r, "Aug 14 11:59:53 sshd[43]: Failed password for root");
	for (size_t i = 0; i < r.n; i++)
		assert_null(r.hits[i].id);
	filter_result_free(&r);
	filter_free(f);
}

/* A result collects hits of several lines (several filters) before its reset:
 * earlier hits' strings must survive later, larger ones; and a long session
 * whose values are replaced again and again keeps working. */
static void results_and_sessions_keep_strings(void **state)
{
	(void)state;
	const char *fr[] = {"^\\s*user (?P<user>\\S+) from <HOST>(?: (?P<tail>.*))?$", NULL};
	struct filter *f = build(NULL, fr, NULL, 1, NULL, 0);
	struct filter_result r = {0};
	struct date_clock clk = {.now = NOW};
	const char *l1 = "Aug 14 11:59:59 user bob from 192.0.2.21";
	assert_int_equal(filter_process(f, l1, strlen(l1), -1, &clk, &r), FILTER_MATCHED);
	size_t big = 3u << 20; /* larger than any arena chunk kept */
	char *l2 = xmalloc(big + 100);
	int n = snprintf(l2, 100, "Aug 14 11:59:59 user eve from 192.0.2.22 ");
	memset(l2 + n, 'x', big);
	l2[n + big] = '\0';
	assert_int_equal(filter_process(f, l2, (size_t)n + big, -1, &clk, &r), FILTER_MATCHED);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.hits[0].id, "192.0.2.21");
	assert_string_equal(group(&r.hits[0], "user"), "bob");
	assert_null(group(&r.hits[0], "tail"));
	assert_string_equal(r.hits[0].lines[0], l1);
	assert_string_equal(r.hits[1].id, "192.0.2.22");
	assert_int_equal(strlen(group(&r.hits[1], "tail")), big);
	filter_result_reset(&r);
	assert_int_equal(filter_process(f, l1, strlen(l1), -1, &clk, &r), FILTER_MATCHED);
	assert_string_equal(group(&r.hits[0], "user"), "bob");
	free(l2);
	filter_result_free(&r);
	filter_free(f);

	/* one session, many lines, each replacing the user value */
	const char *mr[] = {
		"^\\s*sshd\\[<F-MLFID>\\d+</F-MLFID>\\]: <F-NOFAIL>Connection</F-NOFAIL> from <HOST>$",
		"^\\s*sshd\\[<F-MLFID>\\d+</F-MLFID>\\]: Failed password for <F-USER>\\S+</F-USER>$",
		NULL};
	f = build(NULL, mr, NULL, 1, NULL, 0);
	assert_int_equal(feed(f, &r, "Aug 14 11:59:50 sshd[7]: Connection from 192.0.2.23"),
			 FILTER_MISSED);
	char line[600];
	for (int i = 0; i < 3000; i++) {
		snprintf(line, sizeof line, "Aug 14 11:59:51 sshd[7]: Failed password for u%04d%0400d", i,
			 0);
		assert_int_equal(feed(f, &r, line), FILTER_MATCHED);
		assert_int_equal(r.n, 1);
		assert_string_equal(r.hits[0].id, "192.0.2.23");
		assert_int_equal(r.hits[0].nusers, (size_t)i + 1);
		assert_string_equal(group(&r.hits[0], "user"), strstr(line, " for ") + 5);
	}
	filter_result_free(&r);
	filter_free(f);
}

static void invalid_utf8_and_nul(void **state)
{
	(void)state;
	const char *fr[] = {"user (?P<user>.+) from <HOST>$", NULL};
	struct filter *f = build(NULL, fr, NULL, 1, NULL, 0);
	struct filter_result r = {0};
	struct date_clock clk = {.now = NOW};
	static const char line[] = "Aug 14 11:59:59 user \xff\xfe\0x from 192.0.2.11";
	assert_int_equal(filter_process(f, line, sizeof line - 1, -1, &clk, &r), FILTER_MATCHED);
	assert_string_equal(r.hits[0].id, "192.0.2.11");
	filter_result_free(&r);
	filter_free(f);
}

static void pathological_line_is_bounded(void **state)
{
	(void)state;
	/* Nested quantifiers over the same text: exponential without limits. */
	const char *fr[] = {"^\\s*Disconnected: (?:(?:\\w+:?\\s?)*)*from <HOST>$", NULL};
	struct filter *f = build(NULL, fr, NULL, 1, NULL, 0);
	struct filter_result r = {0};
	char line[512] = "Aug 14 11:59:59 Disconnected: ";
	for (int i = 0; i < 28; i++)
		strcat(line, "a: ");
	/* "from " keeps the literal pre-check from rejecting the line first */
	strcat(line, "test no match from x!");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(feed(f, &r, line), FILTER_MISSED);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	/* a bound against a hang, not a speed claim (sanitizer builds are slow) */
	assert_true(ms < 2000.0);
	assert_true(filter_get_stats(f)->limit_hits >= 1);
	filter_result_free(&r);
	filter_free(f);
}

static void bad_regex_reports_location(void **state)
{
	(void)state;
	struct filter_def d = {0};
	d.name = xstrdup("bad");
	d.file = xstrdup("filter.d/bad.conf");
	d.failregex = xcalloc(2, sizeof *d.failregex);
	d.failregex[0].text = xstrdup("from <HOST> (unclosed");
	d.failregex[0].file = xstrdup("filter.d/bad.conf");
	d.failregex[0].line = 7;
	d.failregex[1].text = xstrdup("no id group here");
	d.failregex[1].line = 8;
	d.nfailregex = 2;
	d.maxlines = 1;
	struct diag dg = DIAG_INIT;
	assert_null(filter_compile(&d, &dg));
	assert_int_equal(dg.nerrors, 2);
	assert_non_null(strstr(dg.items[0].text, "filter.d/bad.conf:7:"));
	assert_non_null(strstr(dg.items[1].text, "filter.d/bad.conf:8:"));
	assert_non_null(strstr(dg.items[1].text, "failure-id"));
	diag_clear(&dg);
	filter_def_free(&d);
}

/* filter_precheck(): the literal test on its own, as the filter thread's
 * caller runs it; its answer given to filter_process_checked() changes
 * nothing but the work done. */
static void precheck(void **state)
{
	(void)state;
	const char *fr[] = {"^auth failure from <HOST>$", "^relay denied from <HOST>$", NULL};
	struct filter *f = build("^\\s*\\S+ mail: <F-CONTENT>.+</F-CONTENT>$", fr, NULL, 1, NULL, 0);
	struct date_clock clk = {.now = NOW};
	struct filter_result r = {0};
	static const struct {
		const char *line;
		int pre;
		enum filter_status st;
	} cases[] = {
		{"Aug 14 11:59:59 mx mail: auth failure from 192.0.2.1", 1, FILTER_MATCHED},
		{"Aug 14 11:59:59 mx mail: relay denied from 192.0.2.2", 1, FILTER_MATCHED},
		/* words of both regexes there, the line still not a match */
		{"Aug 14 11:59:59 mx mail: auth failure from 192.0.2.3 port 25", 1, FILTER_MISSED},
		/* no failregex word, or not the prefregex's */
		{"Aug 14 11:59:59 mx mail: connect from 192.0.2.3", 0, FILTER_MISSED},
		{"Aug 14 11:59:59 mx sshd: auth failure from 192.0.2.4", 0, FILTER_MISSED},
		/* the date cut out leaves "auth failure" whole across the cut */
		{"mx mail: auth Aug 14 11:59:59 failure from 192.0.2.5", -2, FILTER_MISSED},
		/* no date: what the regexes see depends on the lines before (here a
		 * recent date, which the line takes) */
		{"mx mail: auth failure from 192.0.2.6", -1, FILTER_MATCHED},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct filter_line fl;
		const char *line = cases[i].line;
		filter_prepare(f, line, strlen(line), -1, &clk, &fl);
		int pre = filter_precheck(f, &fl);
		if (cases[i].pre != -2)
			assert_int_equal(pre, cases[i].pre);
		filter_result_reset(&r);
		enum filter_status checked = filter_process_checked(f, &fl, &clk, &r, pre);
		size_t n = r.n;
		filter_result_reset(&r);
		filter_prepare(f, line, strlen(line), -1, &clk, &fl);
		assert_int_equal(filter_process_prepared(f, &fl, &clk, &r), checked);
		assert_int_equal(r.n, n);
		if (cases[i].pre != -2 && checked != cases[i].st)
			fail_msg("case %zu: status %d, not %d", i, (int)checked, (int)cases[i].st);
	}
	/* a journal entry's line is all text: decided at once */
	struct filter_line fl;
	const char *j = "mx mail: auth failure from 192.0.2.7";
	filter_prepare(f, j, strlen(j), NOW, &clk, &fl);
	assert_int_equal(filter_precheck(f, &fl), 1);
	filter_result_reset(&r);
	assert_int_equal(filter_process_checked(f, &fl, &clk, &r, 1), FILTER_MATCHED);
	filter_result_free(&r);
	filter_free(f);
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(basic_host),
		cmocka_unit_test(prefregex_content),
		cmocka_unit_test(ignoreregex),
		cmocka_unit_test(check_all_counts),
		cmocka_unit_test(fid_and_alt),
		cmocka_unit_test(multiline_skiplines),
		cmocka_unit_test(mlfid_session),
		cmocka_unit_test(results_and_sessions_keep_strings),
		cmocka_unit_test(invalid_utf8_and_nul),
		cmocka_unit_test(pathological_line_is_bounded),
		cmocka_unit_test(bad_regex_reports_location),
		cmocka_unit_test(precheck),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
