/*
 * strptime - fail2ban's date-pattern dialect: %-tokens to regex, captured
 * fields to a time stamp. See strptime.h for the interface.
 *
 * The token regexes and the field rules are those of fail2ban 1.0.2 under an
 * English/C locale (month and day names, am/pm), which is what a Debian
 * fail2ban service runs with. Regexes are written for PCRE2 compiled with
 * UTF+UCP, so \d and \b behave as in Python's unicode-aware re module; that is
 * why digits are decoded from any script here, like Python's int() does.
 */
#include "filters/strptime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/strbuf.h"

struct tok {
	const char *key;
	const char *re;   /* NULL: %ExY, built per detector */
	const char *name;
};

/* Multi-letter keys first, in the order fail2ban's token regex tries them. */
static const struct tok toks[] = {
	{"ExZ", "(?P<Z>[A-Z](?:[A-Z]{2,4})?)", "ExZone name"},
	{"Exz", "(?P<z>(?:[A-Z](?:[A-Z]{2,4})?)?[+-][01]\\d(?::?\\d{2})?|[A-Z](?:[A-Z]{2,4})?)",
	 "ExZone offset"},
	{"Exd", "(?P<d>[1-2]\\d|0[1-9]|3[0-1])", "ExDay"},
	{"Exm", "(?P<m>0[1-9]|1[0-2])", "ExMonth"},
	{"ExH", "(?P<H>[0-1]\\d|2[0-3])", "Ex24hour"},
	{"Exk", " ?(?P<H>[0-1]?\\d|2[0-3])", "%Exk"},
	{"Exl", " ?(?P<I>1[0-2]|\\d)", "%Exl"},
	{"ExM", "(?P<M>[0-5]\\d)", "ExMinute"},
	{"ExS", "(?P<S>[0-5]\\d|6[0-1])", "ExSecond"},
	{"ExY", NULL, "ExYear"},
	{"Exy", "(?P<y>\\d{2})", "ExYear2"},
	{"d", "(?P<d>[1-2]\\d|[0 ]?[1-9]|3[0-1])", "Day"},
	{"f", "(?P<f>[0-9]{1,6})", "Microseconds"},
	{"H", "(?P<H>[0-1]?\\d|2[0-3])", "24hour"},
	{"I", "(?P<I>1[0-2]|0[1-9]|[1-9])", "12hour"},
	{"G", "(?P<G>\\d\\d\\d\\d)", "%G"},
	{"j", "(?P<j>36[0-6]|3[0-5]\\d|[1-2]\\d\\d|0[1-9]\\d|00[1-9]|[1-9]\\d|0[1-9]|[1-9])",
	 "Yearday"},
	{"m", "(?P<m>0?[1-9]|1[0-2])", "Month"},
	{"M", "(?P<M>[0-5]?\\d)", "Minute"},
	{"S", "(?P<S>[0-5]?\\d|6[0-1])", "Second"},
	{"U", "(?P<U>5[0-3]|[0-4]\\d|\\d)", "Yearweek"},
	{"w", "(?P<w>[0-6])", "Weekday"},
	{"u", "(?P<u>[1-7])", "%u"},
	{"V", "(?P<V>5[0-3]|0[1-9]|[1-4]\\d|\\d)", "%V"},
	{"y", "(?P<y>\\d\\d)", "Year2"},
	{"Y", "(?P<Y>\\d{4})", "Year"},
	{"z", "(?P<z>Z|UTC|GMT|[+-][01]\\d(?::?\\d{2})?)", "Zone offset"},
	{"A", "(?P<A>wednesday|thursday|saturday|tuesday|monday|friday|sunday)", "DAYNAME"},
	{"a", "(?P<a>mon|tue|wed|thu|fri|sat|sun)", "DAY"},
	{"B", "(?P<B>september|february|november|december|january|october|august|march|april"
	      "|june|july|may)", "MONTH"},
	{"b", "(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)", "MON"},
	{"p", "(?P<p>am|pm)", "AMPM"},
	{"Z", "(?P<Z>Z|[A-Z]{3,5})", "Zone name"},
	{"%", "%", "%"},
	{"W", "(?P<W>5[0-3]|[0-4]\\d|\\d)", "Yearweek"},
	{"c", "(?P<a>mon|tue|wed|thu|fri|sat|sun)\\s+(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep"
	      "|oct|nov|dec)\\s+(?P<d>3[0-1]|[1-2]\\d|0[1-9]|[1-9]| [1-9])\\s+(?P<H>2[0-3]|"
	      "[0-1]\\d|\\d):(?P<M>[0-5]\\d|\\d):(?P<S>6[0-1]|[0-5]\\d|\\d)\\s+(?P<Y>\\d\\d\\d\\d)",
	 "%c"},
	{"x", "(?P<m>1[0-2]|0[1-9]|[1-9])/(?P<d>3[0-1]|[1-2]\\d|0[1-9]|[1-9]| [1-9])/(?P<y>\\d\\d)",
	 "%x"},
	{"X", "(?P<H>2[0-3]|[0-1]\\d|\\d):(?P<M>[0-5]\\d|\\d):(?P<S>6[0-1]|[0-5]\\d|\\d)", "%X"},
	{"k", " ?(?P<H>[0-2]?\\d)", "%k"},
	{"l", " ?(?P<I>1?\\d)", "%l"},
};

int strptime_translate(const char *pattern, const char *exy_re, struct strbuf *regex,
		       struct strbuf *name, int *alpha, char *err, size_t errlen)
{
	*alpha = 0;
	for (size_t i = 0; pattern[i]; i++) {
		char c = pattern[i];
		if (c == '%' && (i == 0 || pattern[i - 1] != '%') && pattern[i + 1] &&
		    strchr("aAbBpc", pattern[i + 1]))
			*alpha = 1;
	}
	for (const char *p = pattern; *p;) {
		if (*p != '%') {
			const char *q = strchr(p, '%');
			size_t n = q ? (size_t)(q - p) : strlen(p);
			strbuf_add(regex, p, n);
			strbuf_add(name, p, n);
			p += n;
			continue;
		}
		const struct tok *t = NULL;
		for (size_t k = 0; k < sizeof(toks) / sizeof(toks[0]); k++) {
			size_t kl = strlen(toks[k].key);
			if (strncmp(p + 1, toks[k].key, kl) == 0) {
				t = &toks[k];
				break;
			}
		}
		if (!t) {
			snprintf(err, errlen, "unsupported %%-token \"%%%.3s\" (write %%%% for a "
				 "literal percent sign)", p + 1);
			return -1;
		}
		strbuf_adds(regex, t->re ? t->re : exy_re);
		strbuf_adds(name, t->name);
		p += 1 + strlen(t->key);
	}
	return 0;
}

static int cmp_pref(const void *a, const void *b)
{
	return strcmp(a, b);
}

void strptime_year_re(int64_t now_epoch, char *buf, size_t len)
{
	time_t tt = (time_t)now_epoch;
	struct tm tm;
	int year = 2026;
	if (localtime_r(&tt, &tm))
		year = tm.tm_year + 1900;
	/* fail2ban accepts the decades of last year, three years ahead, and every
	 * third year since 2000 (its test clock lies in 2005). */
	char pref[64][4];
	size_t np = 0;
	int years[64];
	size_t ny = 0;
	years[ny++] = year - 1;
	years[ny++] = year + 3;
	for (int y = 2000; y <= year && ny < 60; y += 3)
		years[ny++] = y;
	for (size_t i = 0; i < ny; i++) {
		char s[16];
		snprintf(s, sizeof(s), "%d", years[i]);
		s[3] = 0;
		size_t j;
		for (j = 0; j < np; j++)
			if (strcmp(pref[j], s) == 0)
				break;
		if (j == np && np < 64)
			memcpy(pref[np++], s, 4);
	}
	qsort(pref, np, sizeof(pref[0]), cmp_pref);
	size_t o = (size_t)snprintf(buf, len, "(?P<Y>(?:");
	for (size_t i = 0; i < np && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "|" : "", pref[i]);
	if (o < len)
		snprintf(buf + o, len - o, ")\\d)");
}

static const char *const keynames[STRP_NKEYS] = {
	"y", "Y", "m", "B", "b", "d", "H", "I", "M", "S", "f", "A", "a", "w", "j", "U", "W",
	"z", "Z", "p",
};

int strptime_key(const char *name)
{
	if (!name[0] || name[1])
		return STRP_NONE;
	for (int k = 0; k < STRP_NKEYS; k++)
		if (keynames[k][0] == name[0])
			return k;
	return STRP_NONE;
}

/* Zero code points of the Unicode 14 decimal-digit runs (Python 3.11 and
 * PCRE2 10.42 both use Unicode 14): \d matches all of them. */
static const uint32_t digit_zero[] = {
	0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66,
	0xce6, 0xd66, 0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810,
	0x1946, 0x19d0, 0x1a80, 0x1a90, 0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0,
	0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10, 0x104a0, 0x10d30, 0x11066,
	0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730,
	0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50, 0x1d7ce,
	0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
};

static int digit_value(uint32_t cp)
{
	if (cp >= '0' && cp <= '9')
		return (int)(cp - '0');
	if (cp < 0x660)
		return -1;
	size_t lo = 0, hi = sizeof(digit_zero) / sizeof(digit_zero[0]);
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (digit_zero[mid] <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return cp - digit_zero[lo] < 10 ? (int)(cp - digit_zero[lo]) : -1;
}

size_t strptime_utf8(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned c = s[0];
	size_t n;
	uint32_t v;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		v = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		v = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		v = c & 0x07;
	} else {
		*cp = 0xFFFD;
		return 1;
	}
	if (len < n)
		goto bad;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			goto bad;
		v = (v << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)))
		goto bad;
	*cp = v;
	return n;
bad:
	*cp = 0xFFFD;
	return 1;
}

static int is_blank(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

int strptime_pyint(const char *str, size_t len, int64_t *out)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (len && is_blank(s[len - 1]))
		len--;
	while (i < len && is_blank(s[i]))
		i++;
	int neg = 0;
	if (i < len && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	int64_t v = 0;
	int ndig = 0, last_us = 0;
	while (i < len) {
		if (s[i] == '_') {
			if (!ndig || last_us)
				return -1;
			last_us = 1;
			i++;
			continue;
		}
		int d;
		size_t n = 1;
		if (s[i] >= '0' && s[i] <= '9') { /* nearly always: no decoding */
			d = s[i] - '0';
		} else {
			uint32_t cp;
			n = strptime_utf8(s + i, len - i, &cp);
			d = digit_value(cp);
			if (d < 0)
				return -1;
		}
		if (v < 1000000000000000LL)
			v = v * 10 + d;
		ndig++;
		last_us = 0;
		i += n;
	}
	if (!ndig || last_us)
		return -1;
	if (v > 1000000000000000LL)
		v = 1000000000000000LL;
	*out = neg ? -v : v;
	return 0;
}

/* fail2ban's zone-abbreviation table: offset in minutes east of UTC. */
static const struct zone {
	const char *name;
	short min;
} zones[] = {
	{"Y", -720}, {"X", -660}, {"NUT", -660}, {"SST", -660}, {"W", -600}, {"CKT", -600},
	{"HAST", -600}, {"HST", -600}, {"TAHT", -600}, {"TKT", -600}, {"V", -540},
	{"AKST", -540}, {"GAMT", -540}, {"GIT", -540}, {"HADT", -540}, {"HNY", -540},
	{"U", -480}, {"AKDT", -480}, {"CIST", -480}, {"HAY", -480}, {"HNP", -480},
	{"PST", -480}, {"PT", -480}, {"T", -420}, {"HAP", -420}, {"HNR", -420},
	{"MST", -420}, {"PDT", -420}, {"S", -360}, {"CST", -360}, {"EAST", -360},
	{"GALT", -360}, {"HAR", -360}, {"HNC", -360}, {"MDT", -360}, {"R", -300},
	{"CDT", -300}, {"COT", -300}, {"EASST", -300}, {"ECT", -300}, {"EST", -300},
	{"ET", -300}, {"HAC", -300}, {"HNE", -300}, {"PET", -300}, {"Q", -240},
	{"AST", -240}, {"BOT", -240}, {"CLT", -240}, {"COST", -240}, {"EDT", -240},
	{"FKT", -240}, {"GYT", -240}, {"HAE", -240}, {"HNA", -240}, {"PYT", -240},
	{"P", -180}, {"ADT", -180}, {"ART", -180}, {"BRT", -180}, {"CLST", -180},
	{"FKST", -180}, {"GFT", -180}, {"HAA", -180}, {"PMST", -180}, {"PYST", -180},
	{"SRT", -180}, {"UYT", -180}, {"WGT", -180}, {"O", -120}, {"BRST", -120},
	{"FNT", -120}, {"PMDT", -120}, {"UYST", -120}, {"WGST", -120}, {"N", -60},
	{"AZOT", -60}, {"CVT", -60}, {"EGT", -60}, {"Z", 0}, {"EGST", 0}, {"GMT", 0},
	{"UTC", 0}, {"WET", 0}, {"WT", 0}, {"A", 60}, {"CET", 60}, {"DFT", 60},
	{"WAT", 60}, {"WEDT", 60}, {"WEST", 60}, {"B", 120}, {"CAT", 120}, {"CEDT", 120},
	{"CEST", 120}, {"EET", 120}, {"SAST", 120}, {"WAST", 120}, {"C", 180},
	{"EAT", 180}, {"EEDT", 180}, {"EEST", 180}, {"IDT", 180}, {"MSK", 180},
	{"D", 240}, {"AMT", 240}, {"AZT", 240}, {"GET", 240}, {"GST", 240}, {"KUYT", 240},
	{"MSD", 240}, {"MUT", 240}, {"RET", 240}, {"SAMT", 240}, {"SCT", 240},
	{"E", 300}, {"AMST", 300}, {"AQTT", 300}, {"AZST", 300}, {"HMT", 300},
	{"MAWT", 300}, {"MVT", 300}, {"PKT", 300}, {"TFT", 300}, {"TJT", 300},
	{"TMT", 300}, {"UZT", 300}, {"YEKT", 300}, {"F", 360}, {"ALMT", 360},
	{"BIOT", 360}, {"BTT", 360}, {"IOT", 360}, {"KGT", 360}, {"NOVT", 360},
	{"OMST", 360}, {"YEKST", 360}, {"G", 420}, {"CXT", 420}, {"DAVT", 420},
	{"HOVT", 420}, {"ICT", 420}, {"KRAT", 420}, {"NOVST", 420}, {"OMSST", 420},
	{"THA", 420}, {"WIB", 420}, {"H", 480}, {"ACT", 480}, {"AWST", 480}, {"BDT", 480},
	{"BNT", 480}, {"CAST", 480}, {"HKT", 480}, {"IRKT", 480}, {"KRAST", 480},
	{"MYT", 480}, {"PHT", 480}, {"SGT", 480}, {"ULAT", 480}, {"WITA", 480},
	{"WST", 480}, {"I", 540}, {"AWDT", 540}, {"IRKST", 540}, {"JST", 540},
	{"KST", 540}, {"PWT", 540}, {"TLT", 540}, {"WDT", 540}, {"WIT", 540},
	{"YAKT", 540}, {"K", 600}, {"AEST", 600}, {"ChST", 600}, {"PGT", 600},
	{"VLAT", 600}, {"YAKST", 600}, {"YAPT", 600}, {"L", 660}, {"AEDT", 660},
	{"LHDT", 660}, {"MAGT", 660}, {"NCT", 660}, {"PONT", 660}, {"SBT", 660},
	{"VLAST", 660}, {"VUT", 660}, {"M", 720}, {"ANAST", 720}, {"ANAT", 720},
	{"FJT", 720}, {"GILT", 720}, {"MAGST", 720}, {"MHT", 720}, {"NZST", 720},
	{"PETST", 720}, {"PETT", 720}, {"TVT", 720}, {"WFT", 720}, {"FJST", 780},
	{"NZDT", 780}, {"NFT", 690}, {"ACDT", 630}, {"LHST", 630}, {"ACST", 570},
	{"CCT", 390}, {"MMT", 390}, {"NPT", 345}, {"SLT", 330}, {"AFT", 270},
	{"IRDT", 270}, {"IRST", 210}, {"HAT", -150}, {"NDT", -150}, {"HNT", -210},
	{"NST", -210}, {"NT", -210}, {"HLV", -270}, {"VET", -270}, {"MART", -570},
	{"MIT", -570},
};

static int isdig(char c)
{
	return c >= '0' && c <= '9';
}

int strptime_zone(const char *s, size_t len, long *minutes)
{
	/* Python's "$" also matches before one final newline. */
	if (len && s[len - 1] == '\n')
		len--;
	size_t a = 0;
	while (a < len && s[a] >= 'A' && s[a] <= 'Z')
		a++;
	if (a == 2 || a > 5)
		return -1;
	long base = 0;
	if (a) {
		size_t k, nz = sizeof(zones) / sizeof(zones[0]);
		for (k = 0; k < nz; k++)
			if (strlen(zones[k].name) == a && memcmp(zones[k].name, s, a) == 0)
				break;
		if (k == nz)
			return -1;
		base = zones[k].min;
	}
	const char *o = s + a;
	size_t ol = len - a;
	if (ol == 0) {
		*minutes = base;
		return 0;
	}
	if (ol < 3 || (o[0] != '+' && o[0] != '-') || (o[1] != '0' && o[1] != '1') || !isdig(o[2]))
		return -1;
	long sign = o[0] == '-' ? -1 : 1;
	long hh = (o[1] - '0') * 10 + (o[2] - '0');
	if (ol == 3) {
		*minutes = base + sign * hh * 60;
		return 0;
	}
	size_t m = 3;
	if (o[3] == ':')
		m = 4;
	if (ol != m + 2 || !isdig(o[m]) || !isdig(o[m + 1]))
		return -1;
	*minutes = base + sign * (hh * 60 + (o[m] - '0') * 10 + (o[m + 1] - '0'));
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (valid for any year). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t yy = yoe + era * 400;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yy + (*m <= 2));
}

static int floordiv(int64_t a, int64_t b, int64_t *q)
{
	int64_t r = a % b;
	*q = a / b - (r != 0 && ((r < 0) != (b < 0)));
	return 0;
}

static int days_in_month(int64_t y, int64_t m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

#define MIN_NAIVE (days_from_civil(1, 1, 1) * 86400)
#define MAX_NAIVE (days_from_civil(9999, 12, 31) * 86400 + 86399)

/* Naive (zone-less) seconds for a broken-down time, as if it were UTC. */
static int64_t naive_of(int64_t y, int64_t mo, int64_t d, int64_t h, int64_t mi, int64_t s)
{
	return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

static void tm_of_naive(int64_t n, struct tm *tm)
{
	int64_t days;
	floordiv(n, 86400, &days);
	int64_t sec = n - days * 86400;
	int y, m, d;
	civil_from_days(days, &y, &m, &d);
	memset(tm, 0, sizeof(*tm));
	tm->tm_year = y - 1900;
	tm->tm_mon = m - 1;
	tm->tm_mday = d;
	tm->tm_hour = (int)(sec / 3600);
	tm->tm_min = (int)(sec / 60 % 60);
	tm->tm_sec = (int)(sec % 60);
	tm->tm_isdst = -1;
}

static int64_t naive_of_tm(const struct tm *tm)
{
	return naive_of(tm->tm_year + 1900LL, tm->tm_mon + 1, tm->tm_mday, tm->tm_hour,
			tm->tm_min, tm->tm_sec);
}

static int mktime_naive(int64_t n, time_t *out)
{
	struct tm tm;
	tm_of_naive(n, &tm);
	time_t t = mktime(&tm);
	if (t == (time_t)-1 && tm.tm_wday == 0 && tm.tm_yday == 0 && tm.tm_isdst == -1)
		return -1;
	*out = t;
	return 0;
}

static int gmtoff_at(int64_t t, int64_t *off)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!localtime_r(&tt, &tm))
		return -1;
	*off = naive_of_tm(&tm) - t;
	return 0;
}

/* Local naive time -> epoch, like Python's time.mktime(dt.timetuple()) with
 * tm_isdst = -1. Away from offset changes the answer is unique and found with
 * localtime_r() (cheap; glibc's mktime() stats the zone file on every call);
 * the hour is then cached. Within four hours of a change (DST gap or overlap,
 * where the answer depends on how mktime() resolves it) mktime() decides. */
static int local_to_epoch(int64_t n, struct strptime_tzcache *c, int64_t *out)
{
	int64_t hour;
	floordiv(n, 3600, &hour);
	hour *= 3600;
	if (c && c->mk_valid && c->mk_hour == hour) {
		*out = n - c->mk_off;
		return 0;
	}
	int64_t off0 = c && c->mk_valid ? c->mk_off : 0, off1, off2, a, b;
	if (gmtoff_at(n - off0, &off1) == 0 && gmtoff_at(n - off1, &off2) == 0 && off1 == off2 &&
	    gmtoff_at(n - off1 - 14400, &a) == 0 && gmtoff_at(n - off1 + 14400, &b) == 0 &&
	    a == off1 && b == off1) {
		*out = n - off1;
		if (c) {
			c->mk_valid = 1;
			c->mk_hour = hour;
			c->mk_off = off1;
		}
		return 0;
	}
	time_t t;
	if (mktime_naive(n, &t) < 0)
		return -1;
	*out = (int64_t)t;
	return 0;
}

/* Epoch -> local naive seconds, like datetime.fromtimestamp() (whole seconds). */
static int epoch_to_local(int64_t t, struct strptime_tzcache *c, int64_t *out)
{
	int64_t hour;
	floordiv(t, 3600, &hour);
	hour *= 3600;
	if (c && c->lt_valid && c->lt_hour == hour) {
		*out = t + c->lt_off;
		return 0;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	if (!localtime_r(&tt, &tm))
		return -1;
	*out = naive_of_tm(&tm);
	if (c) {
		time_t a = (time_t)hour, b = (time_t)(hour + 3599);
		struct tm ta, tb;
		if (localtime_r(&a, &ta) && localtime_r(&b, &tb) &&
		    naive_of_tm(&ta) - hour == *out - t && naive_of_tm(&tb) - (hour + 3599) == *out - t) {
			c->lt_valid = 1;
			c->lt_hour = hour;
			c->lt_off = *out - t;
		}
	}
	return 0;
}

/* "now" as a local naive time in whole seconds; Python rounds the fraction to
 * microseconds, which can carry into the next second. */
static int now_naive(const struct strptime_clock *clk, int64_t *out)
{
	double now = clk->now;
	if (!(now > -1e13 && now < 1e13))
		return -1;
	double ip = trunc(now);
	int64_t sec = (int64_t)ip;
	double us = nearbyint((now - ip) * 1e6); /* half-even, as Python rounds */
	if (us >= 1e6)
		sec += 1;
	else if (us < 0)
		sec -= 1;
	return epoch_to_local(sec, clk->cache, out);
}

static int name_index(const char *const *names, size_t n, const char *s, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		if (strlen(names[i]) != len)
			continue;
		size_t j;
		for (j = 0; j < len; j++) {
			unsigned char c = (unsigned char)s[j];
			if (c >= 'A' && c <= 'Z')
				c = (unsigned char)(c + 32);
			if (c != (unsigned char)names[i][j])
				break;
		}
		if (j == len)
			return (int)i;
	}
	return -1;
}

static const char *const a_month[] = {"jan", "feb", "mar", "apr", "may", "jun",
				      "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const f_month[] = {"january", "february", "march", "april",
				      "may", "june", "july", "august",
				      "september", "october", "november", "december"};
static const char *const a_wday[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
static const char *const f_wday[] = {"monday", "tuesday", "wednesday", "thursday",
				     "friday", "saturday", "sunday"};

#define UNSET INT64_MIN

int strptime_fields_time(const struct strptime_field *f, size_t n,
			 const struct strptime_clock *clk, double *t)
{
	int64_t year = UNSET, month = UNSET, day = UNSET, weekday = UNSET;
	int64_t julian = UNSET, week = UNSET, week_start = 0;
	int64_t hour = 0, minute = 0, second = 0;
	long tzoff = 0;
	int has_tzoff = 0;
	int p_present = 0;
	const char *pval = NULL;
	size_t plen = 0;
	for (size_t i = 0; i < n; i++)
		if (f[i].key == STRP_p) {
			p_present = 1;
			pval = f[i].s;
			plen = f[i].len;
		}
	for (size_t i = 0; i < n; i++) {
		const char *s = f[i].s;
		size_t len = f[i].len;
		int64_t v;
		int k;
		if (!s)
			continue;
		switch (f[i].key) {
		case STRP_y:
			if (strptime_pyint(s, len, &v) < 0)
				return -1;
			year = v <= 2000 ? v + 2000 : v;
			break;
		case STRP_Y:
		case STRP_m:
		case STRP_d:
		case STRP_H:
		case STRP_M:
		case STRP_S:
		case STRP_j:
			if (strptime_pyint(s, len, &v) < 0)
				return -1;
			switch (f[i].key) {
			case STRP_Y: year = v; break;
			case STRP_m: month = v; break;
			case STRP_d: day = v; break;
			case STRP_H: hour = v; break;
			case STRP_M: minute = v; break;
			case STRP_S: second = v; break;
			default: julian = v; break;
			}
			break;
		case STRP_B:
			if ((k = name_index(f_month, 12, s, len)) < 0)
				return -1;
			month = k + 1;
			break;
		case STRP_b:
			if ((k = name_index(a_month, 12, s, len)) < 0)
				return -1;
			month = k + 1;
			break;
		case STRP_I:
			if (strptime_pyint(s, len, &v) < 0)
				return -1;
			hour = v;
			/* A %p group that did not take part is None in Python: no .lower(). */
			if (p_present && !pval)
				return -1;
			if (!pval || plen == 0 || name_index((const char *const[]){"am"}, 1, pval, plen) == 0) {
				if (hour == 12)
					hour = 0;
			} else if (name_index((const char *const[]){"pm"}, 1, pval, plen) == 0) {
				if (hour != 12)
					hour += 12;
			}
			break;
		case STRP_A:
			if ((k = name_index(f_wday, 7, s, len)) < 0)
				return -1;
			weekday = k;
			break;
		case STRP_a:
			if ((k = name_index(a_wday, 7, s, len)) < 0)
				return -1;
			weekday = k;
			break;
		case STRP_w:
			if (strptime_pyint(s, len, &v) < 0)
				return -1;
			weekday = v - 1 < 0 ? 6 : v - 1;
			break;
		case STRP_U:
		case STRP_W:
			if (strptime_pyint(s, len, &v) < 0)
				return -1;
			week = v;
			week_start = f[i].key == STRP_U ? 6 : 0;
			break;
		case STRP_z:
		case STRP_Z:
			if ((len == 1 && s[0] == 'Z') || (len == 3 && (!memcmp(s, "UTC", 3) || !memcmp(s, "GMT", 3)))) {
				tzoff = 0;
			} else if (strptime_zone(s, len, &tzoff) < 0) {
				return -1;
			}
			tzoff *= 60;
			has_tzoff = 1;
			break;
		default:
			break;
		}
	}
	int64_t nown = 0;
	int have_now = 0;
	int assume_year = 0, assume_today = 0;
	if (year == UNSET) {
		if (now_naive(clk, &nown) < 0)
			return -1;
		have_now = 1;
		int y, m, d;
		int64_t days;
		floordiv(nown, 86400, &days);
		civil_from_days(days, &y, &m, &d);
		year = y;
		assume_year = 1;
	}
	if (month == UNSET || day == UNSET) {
		if (julian == UNSET && week != UNSET && weekday != UNSET) {
			if (year < 1 || year > 9999)
				return -1;
			int64_t first = days_from_civil(year, 1, 1);
			/* Monday = 0, like Python's date.weekday(); 1970-01-01 was a Thursday. */
			int64_t fw = ((first % 7) + 7 + 3) % 7;
			int64_t dow = weekday;
			if (week_start != 0) {
				fw = (fw + 1) % 7;
				dow = (dow + 1) % 7;
			}
			int64_t w0 = (7 - fw) % 7;
			if (week == 0)
				julian = 1 + dow - fw;
			else
				julian = 1 + w0 + 7 * (week - 1) + dow;
		}
		if (julian != UNSET) {
			if (year < 1 || year > 9999)
				return -1;
			int64_t ord = julian - 1 + days_from_civil(year, 1, 1);
			if (ord < days_from_civil(1, 1, 1) || ord > days_from_civil(9999, 12, 31))
				return -1;
			int y, m, d;
			civil_from_days(ord, &y, &m, &d);
			year = y;
			month = m;
			day = d;
		}
	}
	if (month == UNSET && day == UNSET) {
		if (!have_now) {
			if (now_naive(clk, &nown) < 0)
				return -1;
			have_now = 1;
		}
		int y, m, d;
		int64_t days;
		floordiv(nown, 86400, &days);
		civil_from_days(days, &y, &m, &d);
		month = m;
		day = d;
		assume_today = 1;
	}
	if (month == UNSET || day == UNSET)
		return -1;
	if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 ||
	    day > days_in_month(year, month) || hour < 0 || hour > 23 || minute < 0 ||
	    minute > 59 || second < 0 || second > 59)
		return -1;
	int64_t dn = naive_of(year, month, day, hour, minute, second);
	if (!has_tzoff && clk->has_tz) {
		tzoff = clk->tz_offset;
		has_tzoff = 1;
	}
	if (has_tzoff) {
		dn -= tzoff;
		if (dn < MIN_NAIVE || dn > MAX_NAIVE)
			return -1;
	}
	if (assume_today && dn > nown) {
		dn -= 86400;
		if (dn < MIN_NAIVE)
			return -1;
	}
	if (assume_year && dn > nown + 86400) {
		/* Python's replace(year=year-1, month=month, day=day) keeps the time of
		 * day of the zone-corrected value but the date as first computed. */
		int64_t days;
		floordiv(dn, 86400, &days);
		int64_t tod = dn - days * 86400;
		if (year - 1 < 1 || day > days_in_month(year - 1, month))
			return -1;
		dn = days_from_civil(year - 1, month, day) * 86400 + tod;
	}
	int64_t out;
	if (has_tzoff) {
		out = dn;
	} else if (local_to_epoch(dn, clk->cache, &out) < 0) {
		return -1;
	}
	*t = (double)out;
	return 0;
}
