/*
 * addr - IPv4/IPv6 address and prefix parsing, normalisation and matching.
 *
 * Written here rather than taken from inet_pton alone because log text needs
 * fail2ban's rules on top: brackets, IPv4-mapped IPv6 folded to IPv4,
 * leading-zero octets refused ("192.0.2.010" is not an address), zone ids
 * refused, canonical RFC 5952 output. Pure functions, no allocation.
 */
#ifndef MXJAIL_NET_ADDR_H
#define MXJAIL_NET_ADDR_H

#include <stddef.h>
#include <stdint.h>

struct addr {
	int family;      /* 4 or 6 */
	uint8_t a[16];   /* network order; IPv4 uses a[0..3] */
	int prefix;      /* prefix length; 32/128 for a host */
};

#define ADDR_STRLEN 64 /* enough for any formatted address with /prefix */

/* Parses one host address (no prefix). Accepts "[::1]", "::ffff:192.0.2.1"
 * (returned as IPv4). Returns 0 or -1. */
int addr_parse(const char *s, size_t n, struct addr *out);
/* Parses "ADDR" or "ADDR/LEN" (also IPv4 netmask "ADDR/255.255.255.0");
 * host bits are cleared. Returns 0 or -1. */
int addr_parse_cidr(const char *s, size_t n, struct addr *out);
/* Writes the canonical text ("2001:db8::1", "192.0.2.0/24" when not a host). */
size_t addr_format(const struct addr *a, char *buf, size_t len);
/* Normalises s when it is an address, else copies s unchanged (a DNS name or
 * an arbitrary failure id). Returns 1 if s was an address, 0 otherwise. */
int addr_normalise(const char *s, size_t n, char *out, size_t outlen);
/* 1 when net (a prefix) contains a (a host or a narrower prefix). */
int addr_in(const struct addr *net, const struct addr *a);
int addr_equal(const struct addr *x, const struct addr *y);
/* 1 for loopback (127/8, ::1). */
int addr_is_loopback(const struct addr *a);

#endif
