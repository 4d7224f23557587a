/*
 * audit_int - helpers shared by the audit check modules (implemented in
 * audit.c); not part of the audit interface.
 */
#ifndef MXJAIL_AUDIT_AUDIT_INT_H
#define MXJAIL_AUDIT_AUDIT_INT_H

/* How wide a network token from mynetworks, *_xclient_hosts, ignoreip or
 * login_trusted_networks is: AUDIT_HIGH for most of the Internet (IPv4 wider
 * than /8, IPv6 wider than /4), AUDIT_MEDIUM for a public range wider than
 * /24 (IPv6 /48), -1 for hosts, private/loopback ranges and non-addresses.
 * Accepts Postfix's "[2001:db8::]/32" form. */
int audit_net_severity(const char *tok);

/* TLS versions a Postfix protocol list (">=TLSv1", "!SSLv2, !SSLv3",
 * "TLSv1.2 TLSv1.3") or a Dovecot ssl_min_protocol allows, as a bit set. */
#define AUDIT_SSLV2 0x01u
#define AUDIT_SSLV3 0x02u
#define AUDIT_TLSV1 0x04u
#define AUDIT_TLSV11 0x08u
#define AUDIT_TLSV12 0x10u
#define AUDIT_TLSV13 0x20u
unsigned audit_tls_allowed(const char *list);

/* 1 when the PEM file contains a private key block. */
int audit_file_has_key(const char *path);

#endif
