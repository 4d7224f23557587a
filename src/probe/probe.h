/*
 * probe - `mxjail probe`: talks to a mail server as an outside client would
 * and reports what it proved (open relay, user enumeration, disclosure,
 * cleartext AUTH/LOGIN, any-password logins, TLS protocol versions, ciphers,
 * ephemeral key sizes, certificates, STARTTLS injection, HELO checks and
 * pipelining enforcement; with --intrusive also SMTP smuggling through a
 * bare-LF end of DATA and per-client connection limits).
 *
 * Interface: fill a struct probe_opts, call probe_run(); it resolves the host
 * once and connects only to that address, on the ports listed, with its own
 * timeouts and a pause between its connections. Findings go into a
 * struct probe_report (owned strings; probe_report_free releases them), which
 * probe_report_text / probe_report_json format. Nothing here prints.
 *
 * The SMTP reply parser (smtpreply_*) is public for the unit tests and the
 * fuzzer: it is the code that reads bytes from a possibly hostile server.
 */
#ifndef MXJAIL_PROBE_PROBE_H
#define MXJAIL_PROBE_PROBE_H

#include <stddef.h>

#include "core/strbuf.h"

/* ---------------------------------------------------------------- replies */

#define SMTPREPLY_LINE_MAX 4096  /* bytes per reply line (RFC 5321 says 512) */
#define SMTPREPLY_LINES_MAX 256  /* lines per multiline reply */
#define SMTPREPLY_TEXT_MAX 65536 /* text kept per reply; the rest is dropped */

struct smtpreply {
	int code;            /* 200..599 */
	char enh[16];        /* enhanced status code of the first line ("5.7.1") or "" */
	struct strbuf text;  /* the lines without code and separator, joined by '\n' */
	size_t nlines;
};

struct smtpreply_parser {
	struct strbuf line;  /* the line being received */
	struct strbuf text;
	int code;
	size_t nlines;
};

enum { SMTPREPLY_ERROR = -1, SMTPREPLY_MORE = 0, SMTPREPLY_DONE = 1 };

void smtpreply_init(struct smtpreply_parser *p);
/* Forgets a partial reply (after an error or a TLS switch). */
void smtpreply_reset(struct smtpreply_parser *p);
void smtpreply_free(struct smtpreply_parser *p);
void smtpreply_clear(struct smtpreply *r);
/* Consumes bytes of buf. DONE: one reply is in *out (its old contents are
 * replaced) and *used says how many bytes of buf it took; call again with the
 * rest. MORE: all of buf was taken (*used == n). ERROR: the server is not
 * talking SMTP; err says why (printable text), the parser must be reset. */
int smtpreply_feed(struct smtpreply_parser *p, const char *buf, size_t n, size_t *used,
		   struct smtpreply *out, char *err, size_t errsz);

/* Appends s[0..n) with every byte that is not printable ASCII written as \xNN,
 * at most max bytes of input (then "..."). For evidence shown to the user. */
void probe_printable(struct strbuf *b, const char *s, size_t n, size_t max);

/* ---------------------------------------------------------------- probing */

enum probe_sev { PROBE_HIGH, PROBE_MEDIUM, PROBE_LOW, PROBE_INFO };

#define PROBE_MAX_PORTS 16

struct probe_port {
	int port;
	int implicit_tls; /* TLS from the first byte (465, 993, 995 or a port suffixed 's') */
};

struct probe_opts {
	const char *host;           /* name or address, as given */
	struct probe_port smtp[PROBE_MAX_PORTS];
	size_t nsmtp;
	struct probe_port imap[PROBE_MAX_PORTS];
	size_t nimap;
	struct probe_port pop3[PROBE_MAX_PORTS];
	size_t npop3;
	const char *source;         /* local address to connect from, or NULL */
	double timeout;             /* seconds per connect/read; the whole connection gets 4x */
	unsigned delay_ms;          /* pause between two of our own connections */
	int intrusive;              /* relay, enumeration and login attempts */
	const char *user;           /* a known account for the enumeration tests, or NULL */
	const char *domain;         /* the server's mail domain for RCPT tests, or NULL (banner) */
	const char *relay_to;       /* foreign domain for relay tests */
	const char *helo;           /* name we send in EHLO */
	const char *ca_file;        /* extra trust anchors for the certificate check */
	const char *tls_name;       /* name the certificate must carry (default: host) */
	unsigned flood;             /* simultaneous connections for the flood check (0: skip) */
};

struct probe_finding {
	char *id;        /* "smtp.relay.open" */
	enum probe_sev sev;
	char *service;   /* "smtp/25", "imap/993" */
	char *title;     /* what was proved, one line */
	char *evidence;  /* the server's own words */
	char *fix;       /* the server-side fix, or "" */
};

struct probe_report {
	char *host;
	char *address;   /* the address actually probed */
	struct probe_finding *v;
	size_t n, cap;
	char **warnings; /* e.g. probing from the server's own address */
	size_t nwarn, warncap;
	char **errors;   /* ports or tests that could not be completed, and why */
	size_t nerr, errcap;
};

/* Parses "25,587,465s" into ports (a trailing 's' marks implicit TLS, and
 * so does a port ending in 465, 993 or 995). Returns the count or -1. */
int probe_parse_ports(const char *s, struct probe_port *out, size_t max);

/* Runs every probe the options ask for. Returns 0, or -1 when nothing could
 * be probed at all (bad host or source address; the reason is in errors). */
int probe_run(const struct probe_opts *o, struct probe_report *r);

void probe_add(struct probe_report *r, const char *id, enum probe_sev sev, const char *service,
	       const char *title, const char *evidence, const char *fix);
void probe_warn(struct probe_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void probe_error(struct probe_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const struct probe_finding *probe_find(const struct probe_report *r, const char *id,
				       const char *service);
size_t probe_count(const struct probe_report *r, enum probe_sev sev);
const char *probe_sev_name(enum probe_sev s);
void probe_report_text(const struct probe_report *r, struct strbuf *out);
void probe_report_json(const struct probe_report *r, struct strbuf *out);
void probe_report_free(struct probe_report *r);

#endif
