/*
 * addr - IPv4/IPv6 address and prefix parsing, normalisation and matching.
 *
 * Interface: see addr.h. Every function is pure, allocation-free and takes a
 * (pointer, length) pair, so any byte string - NULs, invalid UTF-8, 1 MB of
 * garbage - is simply "not an address".
 *
 * Why not inet_pton alone: the text comes from log lines and must normalise to
 * the same failure id fail2ban 1.0.2 (IPAddr in server/ipdns.py) produces.
 *  - IPv4 is parsed here: exactly four decimal octets, no leading zeros, so
 *    "192.0.2.010" is refused on every libc (glibc refuses it too, others read
 *    it as octal or accept it), which keeps such text a raw, unbanned id.
 *  - IPv6 goes through inet_pton after a character check, but an embedded
 *    IPv4 tail ("::ffff:1.2.3.4") is checked with the same strict IPv4 rules.
 *  - "[...]" around the whole text is dropped (fail2ban does so when the text
 *    is longer than two bytes); "[::1]/64" is accepted as well, for config.
 *  - IPv4-mapped values (inside ::ffff:0:0/96) fold to IPv4, prefixes too:
 *    "::ffff:192.0.2.0/120" is 192.0.2.0/24. fail2ban folds hosts only, so
 *    its ignoreip "::ffff:192.0.2.0/120" can never match the (folded) hosts
 *    it compares with; folding both sides keeps parse/format a round trip.
 *  - Zone ids ("fe80::1%eth0") are refused: fail2ban cannot ban them either.
 *  - A prefix is decimal (surrounding blanks and leading zeros allowed, as
 *    Python's int() does) or a contiguous netmask of the same family
 *    ("/255.255.255.0", "/ffff:ffff::"). Host bits are cleared.
 * Other deliberate differences from fail2ban, on text it mishandles: a prefix
 * above 32/128, a negative one or a netmask of the other family is refused
 * (fail2ban keeps a bogus plen or raises), and "/0" is printed (fail2ban
 * prints "0.0.0.0" for 0.0.0.0/0, which reads as a host).
 *
 * Output uses inet_ntop, which is what Python's socket.inet_ntop calls, so the
 * text is the RFC 5952 form fail2ban prints, including glibc's "::a.b.c.d" for
 * IPv4-compatible and "::ffff:a.b.c.d" for IPv4-mapped prefixes.
 */
#include "net/addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define V6_TEXTMAX 45 /* longest IPv6 text: INET6_ADDRSTRLEN - 1 */

static int maxlen(int family)
{
	return family == 4 ? 32 : 128;
}

static int bytelen(int family)
{
	return family == 4 ? 4 : 16;
}

static int valid(const struct addr *a)
{
	return a && (a->family == 4 || a->family == 6) && a->prefix >= 0 &&
	       a->prefix <= maxlen(a->family);
}

/* Strict dotted quad: 4 octets of 1-3 digits, value <= 255, no leading 0. */
static int parse_v4(const char *s, size_t n, uint8_t out[4])
{
	size_t i = 0;

	for (int k = 0; k < 4; k++) {
		unsigned v = 0;
		size_t start = i;

		if (k > 0) {
			if (i >= n || s[i] != '.')
				return -1;
			start = ++i;
		}
		while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255)
			return -1;
		if (i - start > 1 && s[start] == '0')
			return -1;
		out[k] = (uint8_t)v;
	}
	return i == n ? 0 : -1;
}

static int parse_v6(const char *s, size_t n, uint8_t out[16])
{
	char buf[V6_TEXTMAX + 1];
	size_t lastcolon = 0;
	int havedot = 0;

	if (n < 2 || n > V6_TEXTMAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == ':')
			lastcolon = i;
		else if (c == '.')
			havedot = 1;
		else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			   (c >= 'A' && c <= 'F')))
			return -1;
	}
	if (havedot) {
		uint8_t tail[4];
		if (s[lastcolon] != ':' ||
		    parse_v4(s + lastcolon + 1, n - lastcolon - 1, tail) < 0)
			return -1;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
}

static int is_mapped(const uint8_t a[16])
{
	static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return memcmp(a, pfx, sizeof pfx) == 0;
}

/* One host address, no brackets, no prefix; fold selects mapped -> IPv4. */
static int parse_host(const char *s, size_t n, int fold, struct addr *out)
{
	struct addr r;

	memset(&r, 0, sizeof r);
	if (n > 0 && memchr(s, ':', n) == NULL) {
		if (parse_v4(s, n, r.a) < 0)
			return -1;
		r.family = 4;
		r.prefix = 32;
	} else {
		if (parse_v6(s, n, r.a) < 0)
			return -1;
		r.family = 6;
		r.prefix = 128;
		if (fold && is_mapped(r.a)) {
			memmove(r.a, r.a + 12, 4);
			memset(r.a + 4, 0, 12);
			r.family = 4;
			r.prefix = 32;
		}
	}
	*out = r;
	return 0;
}

static int bracketed(const char *s, size_t n)
{
	return n > 2 && s[0] == '[' && s[n - 1] == ']';
}

int addr_parse(const char *s, size_t n, struct addr *out)
{
	if (!s || !out)
		return -1;
	if (bracketed(s, n)) {
		s++;
		n -= 2;
	}
	return parse_host(s, n, 1, out);
}

static void clear_host_bits(struct addr *a)
{
	int nb = bytelen(a->family);

	for (int i = 0; i < nb; i++) {
		int bit = i * 8;
		if (bit >= a->prefix)
			a->a[i] = 0;
		else if (bit + 8 > a->prefix)
			a->a[i] &= (uint8_t)(0xff << (8 - (a->prefix - bit)));
	}
	for (int i = nb; i < 16; i++)
		a->a[i] = 0;
}

/* Number of leading one bits when m is a contiguous mask, else -1. */
static int mask_len(const struct addr *m)
{
	int nb = bytelen(m->family), len = 0, i = 0;

	while (i < nb && m->a[i] == 0xff) {
		len += 8;
		i++;
	}
	if (i < nb) {
		uint8_t b = m->a[i];
		while (b & 0x80) {
			len++;
			b = (uint8_t)(b << 1);
		}
		if (b != 0)
			return -1;
		for (i++; i < nb; i++)
			if (m->a[i] != 0)
				return -1;
	}
	return len;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

static int parse_plen(const char *s, size_t n, int family)
{
	size_t i = 0, end = n;
	long v = 0;

	if (memchr(s, '.', n) || memchr(s, ':', n)) {
		struct addr m;
		int len;
		if (addr_parse(s, n, &m) < 0 || m.family != family)
			return -1;
		len = mask_len(&m);
		return len;
	}
	while (i < end && is_blank(s[i]))
		i++;
	while (end > i && is_blank(s[end - 1]))
		end--;
	if (i == end)
		return -1;
	for (; i < end; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > 128)
			return -1;
	}
	return v <= maxlen(family) ? (int)v : -1;
}

int addr_parse_cidr(const char *s, size_t n, struct addr *out)
{
	const char *slash, *end;
	struct addr r;
	size_t hn;
	int plen;

	if (!s || !out)
		return -1;
	if (bracketed(s, n)) {
		s++;
		n -= 2;
	}
	end = s + n;
	slash = memchr(s, '/', n);
	if (!slash)
		return parse_host(s, n, 1, out);
	hn = (size_t)(slash - s);
	if (bracketed(s, hn)) {
		s++;
		hn -= 2;
	}
	if (parse_host(s, hn, 0, &r) < 0)
		return -1;
	plen = parse_plen(slash + 1, (size_t)(end - slash - 1), r.family);
	if (plen < 0)
		return -1;
	r.prefix = plen;
	if (r.family == 6 && plen >= 96 && is_mapped(r.a)) {
		memmove(r.a, r.a + 12, 4);
		memset(r.a + 4, 0, 12);
		r.family = 4;
		r.prefix = plen - 96;
	}
	clear_host_bits(&r);
	*out = r;
	return 0;
}

size_t addr_format(const struct addr *a, char *buf, size_t len)
{
	char tmp[ADDR_STRLEN];
	size_t n;

	if (buf && len > 0)
		buf[0] = '\0';
	if (!buf || !valid(a))
		return 0;
	if (a->family == 4) {
		/* dotted quad by hand: glibc's inet_ntop goes through sprintf, and
		 * the daemon formats an address for every failure */
		n = 0;
		for (int i = 0; i < 4; i++) {
			unsigned v = a->a[i];
			if (i)
				tmp[n++] = '.';
			if (v >= 100)
				tmp[n++] = (char)('0' + v / 100);
			if (v >= 10)
				tmp[n++] = (char)('0' + v / 10 % 10);
			tmp[n++] = (char)('0' + v % 10);
		}
		tmp[n] = '\0';
	} else {
		if (!inet_ntop(AF_INET6, a->a, tmp, sizeof tmp))
			return 0;
		n = strlen(tmp);
	}
	if (a->prefix < maxlen(a->family))
		n += (size_t)snprintf(tmp + n, sizeof tmp - n, "/%d", a->prefix);
	if (n >= len)
		return 0;
	memcpy(buf, tmp, n + 1);
	return n;
}

int addr_normalise(const char *s, size_t n, char *out, size_t outlen)
{
	struct addr a;

	if (!out || outlen == 0)
		return 0;
	out[0] = '\0';
	if (!s)
		return 0;
	if (addr_parse_cidr(s, n, &a) == 0 && addr_format(&a, out, outlen) > 0)
		return 1;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

/* 1 when the first bits of x and y agree. */
static int same_bits(const uint8_t *x, const uint8_t *y, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(x, y, (size_t)full) != 0)
		return 0;
	if (rest) {
		uint8_t m = (uint8_t)(0xff << (8 - rest));
		return (x[full] & m) == (y[full] & m);
	}
	return 1;
}

int addr_in(const struct addr *net, const struct addr *a)
{
	if (!valid(net) || !valid(a) || net->family != a->family ||
	    a->prefix < net->prefix)
		return 0;
	return same_bits(net->a, a->a, net->prefix);
}

int addr_equal(const struct addr *x, const struct addr *y)
{
	if (!valid(x) || !valid(y) || x->family != y->family ||
	    x->prefix != y->prefix)
		return 0;
	return same_bits(x->a, y->a, x->prefix);
}

int addr_is_loopback(const struct addr *a)
{
	static const uint8_t one[16] = {0, 0, 0, 0, 0, 0, 0, 0,
					0, 0, 0, 0, 0, 0, 0, 1};

	if (!valid(a))
		return 0;
	if (a->family == 4)
		return a->prefix >= 8 && a->a[0] == 127;
	if (a->prefix == 128 && memcmp(a->a, one, 16) == 0)
		return 1;
	/* Parsing folds ::ffff:127.x to IPv4; a hand-built value may not be. */
	return a->prefix >= 104 && is_mapped(a->a) && a->a[12] == 127;
}
