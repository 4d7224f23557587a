/*
 * test_date - unit tests for filters/datedetect and filters/strptime: every
 * %-token, every special datepattern word, zones, fractions, the year-less rule
 * around a new year, errors, template reordering and bad input.
 *
 * Expected times and spans in the table were produced by fail2ban 1.0.2's
 * DateDetector (matchTime + getTime, as its filter calls them) under Python
 * 3.11 with TZ=CET-01CEST-02,M3.5.0,M10.5.0, the zone of fail2ban's own tests.
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
#include "filters/datedetect.h"
#include "filters/strptime.h"

#define TEST_NOW 1124013600 /* Sun Aug 14 12:00:00 CEST 2005 */

struct dcase {
	const char *what;
	const char *patterns; /* newline-separated; "" = default templates */
	const char *line;
	long now;
	const char *logtz;    /* logtimezone or NULL */
	int rc;               /* 1 found, 0 none, -1 found but invalid */
	double t;
	size_t s, e;          /* byte span of the date text */
};

static const struct dcase cases[] = {
	{"%Y %m %d %H %M %S", "%Y-%m-%d %H:%M:%S", "2005-08-14 12:00:01 x", 1124013600, NULL, 1, 1124013601.000000, 0, 19},
	{"%y two-digit year", "%y/%m/%d %H:%M:%S", "05/01/02 03:04:05", 1124013600, NULL, 1, 1104631445.000000, 0, 17},
	{"%y 00 is 2000", "%y-%m-%d %H:%M", "00-03-04 05:06", 1124013600, NULL, 1, 952142760.000000, 0, 14},
	{"%d with leading blank", "%b %d %H:%M:%S", "Aug  4 10:00:00 host", 1124013600, NULL, 1, 1123142400.000000, 0, 15},
	{"%I %p pm", "%I:%M:%S %p %Y-%m-%d", "01:02:03 PM 2005-03-04", 1124013600, NULL, 1, 1109937723.000000, 0, 22},
	{"%I %p 12 am", "%I:%M:%S %p %Y-%m-%d", "12:02:03 am 2005-03-04", 1124013600, NULL, 1, 1109890923.000000, 0, 22},
	{"%I without %p is am", "%Y-%m-%d %I:%M", "2005-03-04 12:30", 1124013600, NULL, 1, 1109892600.000000, 0, 16},
	{"%f is parsed, dropped", "%Y-%m-%d %H:%M:%S.%f", "2005-03-04 05:06:07.891234", 1124013600, NULL, 1, 1109909167.000000, 0, 26},
	{"%b lower case", "%b %d %Y %H:%M", "mar 04 2005 05:06", 1124013600, NULL, 1, 1109909160.000000, 0, 17},
	{"%B", "%B %d %Y %H:%M", "September 04 2005 05:06", 1124013600, NULL, 1, 1125803160.000000, 0, 23},
	{"%a ignored for the date", "%a %b %d %H:%M:%S %Y", "Sun Jan 23 21:59:59 2005", 1124013600, NULL, 1, 1106513999.000000, 0, 24},
	{"%A", "%A %d.%m.%Y %H:%M", "Friday 04.03.2005 05:06", 1124013600, NULL, 1, 1109909160.000000, 0, 23},
	{"%j day of year", "%j %Y %H:%M:%S", "061 2005 01:02:03", 1124013600, NULL, 1, 1109721723.000000, 0, 17},
	{"%j without year", "%j %H:%M:%S", "200 01:02:03", 1124013600, NULL, 1, 1121727723.000000, 0, 12},
	{"%U %w", "%U %w %Y %H:%M", "10 3 2005 01:02", 1124013600, NULL, 1, 1110326520.000000, 0, 15},
	{"%W %a", "%W %a %Y %H:%M", "10 Wed 2005 01:02", 1124013600, NULL, 1, 1110326520.000000, 0, 17},
	{"%c", "%c", "Tue Mar  1 01:02:03 2005", 1124013600, NULL, 1, 1109635323.000000, 0, 24},
	{"%x %X", "%x %X", "03/01/05 01:02:03", 1124013600, NULL, 1, 1109635323.000000, 0, 17},
	{"%z +hhmm", "%Y-%m-%d %H:%M:%S %z", "2005-03-04 05:06:07 +0200", 1124013600, NULL, 1, 1109905567.000000, 0, 25},
	{"%z -hh:mm", "%Y-%m-%d %H:%M:%S %z", "2005-03-04 05:06:07 -05:30", 1124013600, NULL, 1, 1109932567.000000, 0, 26},
	{"%z +hh", "%Y-%m-%d %H:%M:%S %z", "2005-03-04 05:06:07 +02", 1124013600, NULL, 1, 1109905567.000000, 0, 23},
	{"%z Z", "%Y-%m-%d %H:%M:%S%z", "2005-03-04 05:06:07Z", 1124013600, NULL, 1, 1109912767.000000, 0, 20},
	{"%z GMT", "%Y-%m-%d %H:%M:%S %z", "2005-03-04 05:06:07 GMT", 1124013600, NULL, 1, 1109912767.000000, 0, 23},
	{"%Z name", "%Y-%m-%d %H:%M:%S %Z", "2005-03-04 05:06:07 CEST", 1124013600, NULL, 1, 1109905567.000000, 0, 24},
	{"%Z unknown name: invalid", "%Y-%m-%d %H:%M:%S %Z", "2005-03-04 05:06:07 ABCD", 1124013600, NULL, -1, 0.000000, 0, 24},
	{"%ExZ one letter", "%Y-%m-%d %H:%M:%S %ExZ", "2005-03-04 05:06:07 B", 1124013600, NULL, 1, 1109905567.000000, 0, 21},
	{"%Exz name+offset", "%Y-%m-%d %H:%M:%S %Exz", "2005-03-04 05:06:07 UTC+0130", 1124013600, NULL, 1, 1109907367.000000, 0, 28},
	{"%ExY %Exm %Exd %ExH %ExM %ExS", "%ExY%Exm%Exd%ExH%ExM%ExS", "x 20050304050607 y", 1124013600, NULL, 1, 1109909167.000000, 2, 16},
	{"%ExY refuses 1999", "%ExY-%m-%d %H:%M", "1999-03-04 05:06", 1124013600, NULL, 0, 0.000000, 0, 0},
	{"%Exy", "%Exy%Exm%Exd %H:%M", "050304 05:06", 1124013600, NULL, 1, 1109909160.000000, 0, 12},
	{"%Exk", "%Y-%m-%d %Exk:%M", "2005-03-04  5:06", 1124013600, NULL, 1, 1109909160.000000, 0, 16},
	{"%Exl", "%Y-%m-%d %Exl:%M %p", "2005-03-04 5:06 pm", 1124013600, NULL, 1, 1109952360.000000, 0, 18},
	{"%k %l", "%Y-%m-%d %k:%M", "2005-03-04  5:06", 1124013600, NULL, 1, 1109909160.000000, 0, 16},
	{"%l", "%Y-%m-%d %l:%M %p", "2005-03-04  5:06 PM", 1124013600, NULL, 1, 1109952360.000000, 0, 19},
	{"%% literal", "%%%H:%M:%S %Y-%m-%d", "%05:06:07 2005-03-04", 1124013600, NULL, 1, 1109909167.000000, 0, 20},
	{"Feb 30 invalid", "%Y-%m-%d %H:%M", "2005-02-30 05:06", 1124013600, NULL, -1, 0.000000, 0, 16},
	{"hour 24 invalid", "%Y-%m-%d %k:%M", "2005-02-03 24:06", 1124013600, NULL, -1, 0.000000, 0, 16},
	{"second 60 invalid", "%Y-%m-%d %H:%M:%S", "2005-02-03 23:06:60", 1124013600, NULL, -1, 0.000000, 0, 19},
	{"leap day", "%Y-%m-%d %H:%M", "2004-02-29 05:06", 1124013600, NULL, 1, 1078027560.000000, 0, 16},
	{"time only: today", "%H:%M:%S", "11:00:00 x", 1124013600, NULL, 1, 1124010000.000000, 0, 8},
	{"time only after now: yesterday", "%H:%M:%S", "13:00:00 x", 1124013600, NULL, 1, 1123930800.000000, 0, 8},
	{"year-less, this year", "%b %d %H:%M:%S", "Aug 14 11:00:00", 1124013600, NULL, 1, 1124010000.000000, 0, 15},
	{"year-less, tomorrow still this year", "%b %d %H:%M:%S", "Aug 15 11:00:00", 1124013600, NULL, 1, 1124096400.000000, 0, 15},
	{"year-less, > 1 day ahead: last year", "%b %d %H:%M:%S", "Aug 16 12:00:01", 1124013600, NULL, 1, 1092650401.000000, 0, 15},
	{"new year: Dec 31 seen on Jan 1", "%b %d %H:%M:%S", "Dec 31 23:59:59", 1104536000, NULL, 1, 1104533999.000000, 0, 15},
	{"new year: Jan 1 seen on Dec 31", "%b %d %H:%M:%S", "Jan  1 00:00:10", 1104533400, NULL, 1, 1072911610.000000, 0, 15},
	{"new year: Jan 2 seen on Dec 31", "%b %d %H:%M:%S", "Jan  2 00:00:10", 1104533400, NULL, 1, 1072998010.000000, 0, 15},
	{"year-less Feb 29 falling back to a common year", "%b %d %H:%M:%S", "Feb 29 10:00:00", 1078000000, NULL, 1, 1078045200.000000, 0, 15},
	{"logtimezone", "%Y-%m-%d %H:%M:%S", "2005-03-04 05:06:07", 1124013600, "UTC+0200", 1, 1109905567.000000, 0, 19},
	{"logtimezone loses to %z", "%Y-%m-%d %H:%M:%S %z", "2005-03-04 05:06:07 -0100", 1124013600, "UTC+0200", 1, 1109916367.000000, 0, 25},
	{"local summer time", "%Y-%m-%d %H:%M:%S", "2005-07-04 05:06:07", 1124013600, NULL, 1, 1120446367.000000, 0, 19},
	{"local winter time", "%Y-%m-%d %H:%M:%S", "2005-01-04 05:06:07", 1124013600, NULL, 1, 1104811567.000000, 0, 19},
	{"EPOCH", "EPOCH", "1124013600 x", 1124013600, NULL, 1, 1124013600.000000, 0, 10},
	{"EPOCH fraction", "EPOCH", "1124013600.123456 x", 1124013600, NULL, 1, 1124013600.123456, 0, 17},
	{"EPOCH in brackets", "EPOCH", "[1124013600] x", 1124013600, NULL, 1, 1124013600.000000, 1, 11},
	{"EPOCH selinux", "EPOCH", "type=USER_LOGIN msg=audit(1124013600.481:123): x", 1124013600, NULL, 1, 1124013600.481000, 26, 40},
	{"EPOCH not mid-line", "EPOCH", "x 1124013600 y", 1124013600, NULL, 0, 0.000000, 0, 0},
	{"LEPOCH ms", "LEPOCH", "1124013600123 x", 1124013600, NULL, 1, 1124013600.123000, 0, 13},
	{"LEPOCH us", "LEPOCH", "1124013600123456 x", 1124013600, NULL, 1, 1124013600.123456, 0, 16},
	{"LEPOCH ms.frac", "LEPOCH", "1124013600123.5 x", 1124013600, NULL, 1, 1124013600.123500, 0, 15},
	{"{EPOCH} in a pattern", "^ts={EPOCH};", "ts=1124013600; x", 1124013600, NULL, 1, 1124013600.000000, 0, 14},
	{"{LEPOCH} in a pattern", "^\\[{LEPOCH}\\]", "[1124013600500] x", 1124013600, NULL, 1, 1124013600.500000, 0, 15},
	{"TAI64N", "TAI64N", "@4000000042ff1c2a1b2c3d4e x", 1124013600, NULL, 1, 1124015146.000000, 0, 25},
	{"{^LN-BEG}TAI64N", "{^LN-BEG}TAI64N", "@4000000042ff1c2a1b2c3d4e x", 1124013600, NULL, 1, 1124015146.000000, 0, 25},
	{"{^LN-BEG} anchors", "{^LN-BEG}%H:%M:%S", "x 11:00:00", 1124013600, NULL, 0, 0.000000, 0, 0},
	{"{^LN-BEG} allows two non-word chars", "{^LN-BEG}%H:%M:%S", "[ 11:00:00] x", 1124013600, NULL, 1, 1124010000.000000, 2, 10},
	{"word boundary", "%H:%M:%S", "a11:00:00", 1124013600, NULL, 0, 0.000000, 0, 0},
	{"{UNB} drops word boundary", "{UNB}%H:%M:%S", "a11:00:00b", 1124013600, NULL, 1, 1124010000.000000, 1, 9},
	{"** drops word boundary", "**%H:%M:%S**", "a11:00:00b", 1124013600, NULL, 1, 1124010000.000000, 1, 9},
	{"{NONE}", "{NONE}", "Aug 14 11:00:00 x", 1124013600, NULL, 1, 1124013600.000000, 0, 0},
	{"{DATE}", "^<\\d+>\\d+\\s+{DATE}", "<13>1 2005-08-14T11:00:00.003Z host x", 1124013600, NULL, 1, 1124017200.000000, 0, 30},
	{"{DEFAULT}", "{DEFAULT}", "x Aug 14 11:00:00 y", 1124013600, NULL, 1, 1124010000.000000, 2, 17},
	{"{^LN-BEG} defaults only", "{^LN-BEG}", "x Aug 14 11:00:00 y", 1124013600, NULL, 0, 0.000000, 0, 0},
	{"defaults: syslog", "", "Aug 14 11:00:00 host sshd[1]: x", 1124013600, NULL, 1, 1124010000.000000, 0, 15},
	{"defaults: ISO with zone", "", "2005-08-14T11:00:00.5+02:00 x", 1124013600, NULL, 1, 1124010000.000000, 0, 27},
	{"defaults: apache", "", "1.2.3.4 - - [14/Aug/2005:11:00:00 +0000] \"GET /\"", 1124013600, NULL, 1, 1124017200.000000, 13, 39},
	{"defaults: named", "", "14-Aug-2005 11:00:00.123 client 1.2.3.4", 1124013600, NULL, 1, 1124010000.000000, 0, 24},
	{"defaults: mysql", "", "050814 11:00:00 [Warning] x", 1124013600, NULL, 1, 1124010000.000000, 0, 15},
	{"defaults: tomcat", "", "Aug 14, 2005 11:00:00 AM org.x", 1124013600, NULL, 1, 1124010000.000000, 0, 24},
	{"defaults: zone name", "", "CEST Aug 14 11:00:00 x", 1124013600, NULL, 1, 1124010000.000000, 0, 20},
	{"defaults: no date", "", "nothing here", 1124013600, NULL, 0, 0.000000, 0, 0},
	{"regex with groups", "^(?P<Y>\\d{4})/(?P<m>\\d\\d)/(?P<d>\\d\\d) (?P<H>\\d\\d)h", "2005/03/04 05h x", 1124013600, NULL, 1, 1109908800.000000, 0, 14},
	{"regex with own group 1", "^(\\S+) %H:%M:%S", "host 11:00:00 x", 1124013600, NULL, 1, 1124010000.000000, 0, 4},
	{"optional empty group 1", "T=(%H:%M)?;", "T=; x", 1124013600, NULL, 1, 1124013600.000000, 4, 4},
};

static struct datedetect *make(const char *patterns, struct diag *d)
{
	const char *p[1] = {patterns};
	return datedetect_new(p, *patterns ? 1 : 0, "test", d);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct dcase *c = &cases[i];
		struct diag d = DIAG_INIT;
		struct datedetect *dd = make(c->patterns, &d);
		if (!dd) {
			diag_print(&d, stderr);
			fail_msg("%s: detector refused", c->what);
		}
		struct date_clock clk = {(double)c->now, 0, 0};
		if (c->logtz) {
			assert_int_equal(datedetect_parse_tz(c->logtz, &clk.tz_offset), 0);
			clk.has_tz = 1;
		}
		double t = 0;
		size_t s = 0, e = 0;
		int rc = datedetect_find(dd, c->line, strlen(c->line), &clk, &t, &s, &e);
		if (rc != c->rc)
			fail_msg("%s: rc %d, want %d", c->what, rc, c->rc);
		if (rc != 0 && (s != c->s || e != c->e))
			fail_msg("%s: span [%zu,%zu), want [%zu,%zu)", c->what, s, e, c->s, c->e);
		if (rc == 1 && (t - c->t > 1e-6 || c->t - t > 1e-6))
			fail_msg("%s: time %.6f, want %.6f", c->what, t, c->t);
		datedetect_free(dd);
		diag_clear(&d);
	}
}

/* Patterns fail2ban refuses (or fails on every line) are refused up front. */
static void test_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"%q %H:%M",                 /* unknown token */
		"%e %H:%M",                 /* %e is not a fail2ban 1.0.2 token */
		"%Exb %d",                  /* nor %Exb */
		"%H:%M 100%",               /* lone percent sign */
		"(unclosed %H:%M",
		"(?i)%b %d %H:%M",          /* second global flag group mid-pattern */
		"%Exk:%M %Y-%m-%d",         /* fail2ban's strip turns " ?(" into "?(" */
		"%d %m %d",                 /* group redefined */
		"%Y-%m-%d %H:%M\n%Y-%m-%d %H:%M", /* same template twice */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct diag d = DIAG_INIT;
		struct datedetect *dd = make(bad[i], &d);
		if (dd)
			fail_msg("accepted bad pattern %s", bad[i]);
		assert_true(d.nerrors > 0);
		assert_non_null(strstr(d.items[0].text, "test:"));
		diag_clear(&d);
	}
}

static void test_parse_tz(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int ok;
		long off;
	} z[] = {
		{"UTC", 0, 0}, {"GMT", 0, 0}, {"Z", 0, 0}, {"", 0, 0}, {"UTC+0200", 0, 7200},
		{"UTC-0200", 0, -7200}, {"+02:00", 0, 7200}, {"-0530", 0, -19800}, {"+01", 0, 3600},
		{"CET", 0, 3600}, {"CEST", 0, 7200}, {"EST", 0, -18000}, {"NPT", 0, 20700},
		{"CET+0100", 0, 7200}, {"A", 0, 3600}, {"UTC\n", 0, 0},
		{"UTC+2", -1, 0}, {"utc", -1, 0}, {"ABCD", -1, 0}, {"+2400", -1, 0},
		{"UTC+02:0", -1, 0}, {"Europe/Paris", -1, 0}, {"ABCDEF", -1, 0}, {"CE", -1, 0},
	};
	for (size_t i = 0; i < sizeof(z) / sizeof(z[0]); i++) {
		long off = 12345;
		int rc = datedetect_parse_tz(z[i].s, &off);
		if (rc != z[i].ok || (rc == 0 && off != z[i].off))
			fail_msg("zone \"%s\": rc %d off %ld", z[i].s, rc, off);
	}
}

static void test_none(void **state)
{
	(void)state;
	struct diag d = DIAG_INIT;
	struct datedetect *dd = make("{NONE}", &d);
	assert_non_null(dd);
	assert_true(datedetect_is_none(dd));
	struct date_clock clk = {123.5, 0, 0};
	double t;
	size_t s, e;
	assert_int_equal(datedetect_find(dd, "2005-01-01 00:00:00 x", 21, &clk, &t, &s, &e), 1);
	assert_true(t == 123.5);
	assert_int_equal(s, 0);
	assert_int_equal(e, 0);
	datedetect_free(dd);
	dd = make("", &d);
	assert_false(datedetect_is_none(dd));
	datedetect_free(dd);
}

/* Templates that hit move forward: after a run of syslog lines the syslog
 * template is tried first, and the line-begin copies precede the others. */
static void test_reorder(void **state)
{
	(void)state;
	struct diag d = DIAG_INIT;
	struct datedetect *dd = make("", &d);
	assert_int_equal(datedetect_ntemplates(dd), 31);
	const char *re;
	assert_string_equal(datedetect_template(dd, 0, NULL, &re),
			    "{^LN-BEG}ExYear(?P<_sep>[-/.])Month(?P=_sep)Day(?:T|  ?)24hour:Minute:"
			    "Second(?:[.,]Microseconds)?(?:\\s*Zone offset)?");
	struct date_clock clk = {TEST_NOW, 0, 0};
	double t;
	size_t s, e;
	char line[64];
	for (int i = 0; i < 20; i++) {
		snprintf(line, sizeof(line), "Aug 14 11:%02d:00 host x", i);
		assert_int_equal(datedetect_find(dd, line, strlen(line), &clk, &t, &s, &e), 1);
		assert_true(t == 1124010000.0 + i * 60);
	}
	unsigned long hits;
	const char *name = datedetect_template(dd, 0, &hits, NULL);
	assert_string_equal(name, "{^LN-BEG}(?:DAY )?MON Day %k:Minute:Second(?:\\.Microseconds)?"
				  "(?: ExYear)?");
	assert_int_equal(hits, 20);
	assert_null(datedetect_template(dd, 31, NULL, NULL));
	datedetect_free(dd);
}

/* The last match's position is reused in characters, not bytes. */
static void test_multibyte_positions(void **state)
{
	(void)state;
	struct diag d = DIAG_INIT;
	struct datedetect *dd = make("%H:%M:%S", &d);
	struct date_clock clk = {TEST_NOW, 0, 0};
	double t;
	size_t s, e;
	const char *a = "\xc3\xa9t\xc3\xa9 11:00:00 x"; /* "été 11:00:00 x" */
	const char *b = "abc 11:00:01 x";
	assert_int_equal(datedetect_find(dd, a, strlen(a), &clk, &t, &s, &e), 1);
	assert_int_equal(s, 6);
	assert_int_equal(e, 14);
	assert_int_equal(datedetect_find(dd, b, strlen(b), &clk, &t, &s, &e), 1);
	assert_int_equal(s, 4);
	assert_int_equal(e, 12);
	assert_true(t == 1124010001.0);
	/* A letter before the digits is a word character, also when it is not ASCII. */
	const char *c = "\xc3\xa9" "11:00:00";
	assert_int_equal(datedetect_find(dd, c, strlen(c), &clk, &t, &s, &e), 0);
	/* Digits of other scripts are digits, as in Python. */
	datedetect_free(dd);
	dd = make("%H:%M:%S", &d);
	const char *ar = "1\xd9\xa1:00:00 x"; /* '1' + ARABIC-INDIC DIGIT ONE */
	assert_int_equal(datedetect_find(dd, ar, strlen(ar), &clk, &t, &s, &e), 1);
	assert_true(t == 1124010000.0);
	datedetect_free(dd);
}

static void test_bad_input(void **state)
{
	(void)state;
	struct diag d = DIAG_INIT;
	const char *sets[] = {"", "{^LN-BEG}", "%Y-%m-%d %H:%M:%S", "EPOCH", "^[^\\[]*\\[({DATE})"};
	size_t big = 1 << 20;
	char *line = malloc(big);
	for (size_t i = 0; i < big; i++)
		line[i] = "a1 :-/[\xc3\x80"[i % 9];
	for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
		struct datedetect *dd = make(sets[k], &d);
		assert_non_null(dd);
		struct date_clock clk = {TEST_NOW, 0, 0};
		double t;
		size_t s, e;
		datedetect_find(dd, line, big, &clk, &t, &s, &e);
		const char nul[] = "Aug 14 11:00:00\0 x\0y";
		assert_int_equal(datedetect_find(dd, nul, sizeof(nul) - 1, &clk, &t, &s, &e),
				 k == 0 || k == 1 ? 1 : 0);
		const char inv[] = "\xff\xfe Aug 14 11:00:00 \xc3";
		datedetect_find(dd, inv, sizeof(inv) - 1, &clk, &t, &s, &e);
		datedetect_find(dd, "", 0, &clk, &t, &s, &e);
		datedetect_free(dd);
	}
	free(line);
}

/* Detectors that share template searches (and the times made of them)
 * through a memo give exactly what detectors searching alone give: results,
 * template order and hits, limit hits. Several date settings see the same lines (some with templates in
 * common, two alike), in a mixed order that makes templates win and lose. */
static void test_memo(void **state)
{
	(void)state;
	struct diag d = DIAG_INIT;
	const char *sets[] = {"",         "{^LN-BEG}", "%H:%M:%S", "{^LN-BEG}%H:%M:%S",
			      "EPOCH",    "",          "^[^\\[]*\\[({DATE})",
			      "{^LN-BEG}\n%Y-%m-%d %H:%M:%S"};
	enum { NS = sizeof(sets) / sizeof(sets[0]) };
	static const char *const lines[] = {
		"Aug 14 11:00:00 host sshd[1]: x",
		"Aug 14 11:00:01 host sshd[1]: x",
		"2005-08-14 11:00:02 host y",
		"[2005-08-14 11:00:03] z",
		"x [14/Aug/2005:11:00:04 +0200] \"GET /\"",
		"1124010005 epoch line",
		"[1124010006] epoch line",
		"11:00:07 time only",
		"host 11:00:08 late time",
		"\xc3\xa9t\xc3\xa9 Aug 14 11:00:09 x",
		"\xff\xfe Aug 14 11:00:10 \xc3",
		"",
		"no date at all",
		"Sun Aug 14 11:00:11 2005 x",
		"@4000000042ff1d2c00000000 tai",
		"Aug 14 11:00:12 host sshd[1]: \xd9\xa1\xd9\xa1:00:00",
	};
	enum { NL = sizeof(lines) / sizeof(lines[0]) };
	struct datedetect *with[NS], *alone[NS];
	for (size_t k = 0; k < NS; k++) {
		with[k] = make(sets[k], &d);
		alone[k] = make(sets[k], &d);
	}
	/* set 1 reads dates in another zone: it shares searches, not times */
	struct date_clock clk = {TEST_NOW, 0, 0}, clk_tz = {TEST_NOW, 1, 3600};
	struct datedetect_memo memo;
	unsigned x = 12345;
	for (int n = 0; n < 3000; n++) {
		x = x * 1103515245u + 12345u;
		/* runs of one kind of line, then a change, as in real logs */
		const char *line = lines[(x >> 16) % 7 == 0 ? (x >> 8) % NL : (size_t)(n / 50) % NL];
		size_t len = strlen(line);
		int ascii = 1;
		for (size_t i = 0; i < len; i++)
			ascii &= (unsigned char)line[i] < 0x80;
		datedetect_memo_reset(&memo);
		for (size_t k = 0; k < NS; k++) {
			double t1 = -1, t2 = -1;
			size_t s1 = 0, e1 = 0, s2 = 0, e2 = 0;
			unsigned before = memo.n;
			const struct date_clock *c = k == 1 ? &clk_tz : &clk;
			int r1 = datedetect_find_memo(with[k], line, len, ascii, &memo, c, &t1, &s1,
						      &e1);
			/* set 5 is set 0 again, in the same state: it searches nothing new */
			if (k == 5 && memo.n < DATEDETECT_MEMO_SLOTS)
				assert_int_equal(memo.n, before);
			int r2 = datedetect_find_ascii(alone[k], line, len, ascii, c, &t2, &s2, &e2);
			if (r1 != r2 || s1 != s2 || e1 != e2 || (r1 == 1 && t1 != t2))
				fail_msg("set %zu line %d \"%s\": rc %d/%d t %.3f/%.3f span %zu-%zu/%zu-%zu",
					 k, n, line, r1, r2, t1, t2, s1, e1, s2, e2);
		}
	}
	for (size_t k = 0; k < NS; k++) {
		size_t nt = datedetect_ntemplates(with[k]);
		assert_int_equal(nt, datedetect_ntemplates(alone[k]));
		for (size_t i = 0; i < nt; i++) {
			unsigned long h1, h2;
			const char *a = datedetect_template(with[k], i, &h1, NULL);
			const char *b = datedetect_template(alone[k], i, &h2, NULL);
			assert_string_equal(a, b);
			assert_int_equal(h1, h2);
		}
		assert_int_equal(datedetect_limit_hits(with[k]), datedetect_limit_hits(alone[k]));
		datedetect_free(with[k]);
		datedetect_free(alone[k]);
	}
	diag_clear(&d);
}

static void test_strptime_helpers(void **state)
{
	(void)state;
	int64_t v;
	assert_int_equal(strptime_pyint(" 5", 2, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(strptime_pyint("+07", 3, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(strptime_pyint("1_0", 3, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(strptime_pyint("1__0", 4, &v), -1);
	assert_int_equal(strptime_pyint("", 0, &v), -1);
	assert_int_equal(strptime_pyint("x", 1, &v), -1);
	assert_int_equal(strptime_key("Y"), STRP_Y);
	assert_int_equal(strptime_key("_sep"), STRP_NONE);
	char buf[128];
	strptime_year_re(1124013600, buf, sizeof(buf));
	assert_string_equal(buf, "(?P<Y>(?:200)\\d)");
	strptime_year_re(1795000000, buf, sizeof(buf)); /* 2026 */
	assert_string_equal(buf, "(?P<Y>(?:200|201|202)\\d)");
}

int main(void)
{
	setenv("TZ", "CET-01CEST-02,M3.5.0,M10.5.0", 1);
	tzset();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_parse_tz),
		cmocka_unit_test(test_none),
		cmocka_unit_test(test_reorder),
		cmocka_unit_test(test_multibyte_positions),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_memo),
		cmocka_unit_test(test_strptime_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
