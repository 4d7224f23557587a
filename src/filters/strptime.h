/*
 * strptime - fail2ban's date-pattern dialect: %-tokens to regex, and the
 * captured fields back to a time stamp.
 *
 * fail2ban does not use libc strptime(): a datepattern is a regular expression
 * in which %-tokens (%Y, %b, %ExY, %k...) stand for named capture groups, and
 * the captured groups are turned into a time by its own rules (two-digit years
 * in 20xx, year-less dates in the current or previous year, zone names from a
 * fixed table, fractions dropped). libc's strptime() knows neither the regex
 * part nor these rules, so both halves are written here.
 *
 * INTERFACE
 *	strptime_translate() turns a pattern into PCRE2 regex text and a display
 *	name. strptime_key() maps a capture-group name to the field it feeds.
 *	strptime_fields_time() computes the time from the captured fields, with
 *	"now" and the zone taken from a strptime_clock; the clock also carries a
 *	small cache of local-time offsets so that mktime() runs about once per
 *	hour of log time, not once per line (the cache assumes TZ does not change
 *	while it is in use). strptime_zone() parses a zone ("CEST", "UTC+0200",
 *	"-05:30") as fail2ban's validateTimeZone() does.
 *
 * DIAGNOSTICS
 *	Functions return -1 on bad input; strptime_translate() also writes a
 *	message into the caller's buffer. Nothing is printed.
 */
#ifndef MXJAIL_FILTERS_STRPTIME_H
#define MXJAIL_FILTERS_STRPTIME_H

#include <stddef.h>
#include <stdint.h>

struct strbuf;

/* The capture groups that carry meaning; any other group name is ignored. */
enum strptime_key {
	STRP_NONE = -1,
	STRP_y, STRP_Y, STRP_m, STRP_B, STRP_b, STRP_d, STRP_H, STRP_I, STRP_M,
	STRP_S, STRP_f, STRP_A, STRP_a, STRP_w, STRP_j, STRP_U, STRP_W, STRP_z,
	STRP_Z, STRP_p,
	STRP_NKEYS
};

/* One captured group, in group-number order; s == NULL: did not participate. */
struct strptime_field {
	int key;
	const char *s;
	size_t len;
};

/* Local-time conversion cache, one per user (a detector); zero-initialise. */
struct strptime_tzcache {
	int mk_valid;      /* naive local hour [mk_hour, +3600) maps with mk_off */
	int64_t mk_hour;
	int64_t mk_off;
	int lt_valid;      /* UTC hour [lt_hour, +3600) has local offset lt_off */
	int64_t lt_hour;
	int64_t lt_off;
};

struct strptime_clock {
	double now;        /* "now" for year-less and day-less dates */
	int has_tz;        /* zone-less times are at UTC + tz_offset ... */
	long tz_offset;    /* ... seconds east of UTC; else local time (TZ) */
	struct strptime_tzcache *cache; /* may be NULL */
};

/* Writes the PCRE2 regex for a %-pattern into *regex and fail2ban's display
 * name into *name (both appended). exy_re is the regex for %ExY (see
 * strptime_year_re). Sets *alpha when the pattern has a %a %A %b %B %p %c token
 * (fail2ban then matches case-insensitively). Returns -1 and a message in err
 * for a '%' that starts no token. */
int strptime_translate(const char *pattern, const char *exy_re, struct strbuf *regex,
		       struct strbuf *name, int *alpha, char *err, size_t errlen);

/* The %ExY regex: years from 2000 to three years after the current year,
 * matched by century-decade prefix as fail2ban builds it. */
void strptime_year_re(int64_t now_epoch, char *buf, size_t len);

/* The field for a capture-group name, or STRP_NONE. */
int strptime_key(const char *name);

/* Returns 0 and *t, or -1 when the fields make no valid date (Feb 30, hour 25,
 * unknown zone name, unknown month name...). */
int strptime_fields_time(const struct strptime_field *f, size_t n,
			 const struct strptime_clock *clk, double *t);

/* Parses "[ABBR][+-HH[[:]MM]]" (fail2ban's fixed-offset zones). Returns 0 and
 * *minutes east of UTC, or -1. */
int strptime_zone(const char *s, size_t len, long *minutes);

/* Python int(): optional blanks, sign, decimal digits of any script with
 * single underscores between them. Huge values are clamped to +-1e15. */
int strptime_pyint(const char *s, size_t len, int64_t *out);

/* Decodes one UTF-8 sequence at s (len > 0); returns its length (1 for an
 * invalid byte, with *cp = 0xFFFD). */
size_t strptime_utf8(const unsigned char *s, size_t len, uint32_t *cp);

#endif
