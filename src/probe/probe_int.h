/*
 * probe_int - what the probe's modules share: the run context (the one
 * address we may connect to, options, report, rate limit), the connection
 * layer (conn.c: TCP with deadlines, optional TLS, SMTP replies and text
 * lines), the TLS checks (tls.c) and the protocol dialogues (smtp.c,
 * mailbox.c). Not a public interface.
 */
#ifndef MXJAIL_PROBE_PROBE_INT_H
#define MXJAIL_PROBE_PROBE_INT_H

#include <openssl/ssl.h>
#include <sys/socket.h>

#include "probe/probe.h"

struct probe_ctx {
	const struct probe_opts *o;
	struct probe_report *r;
	struct sockaddr_storage addr; /* the only address we connect to (port set per call) */
	socklen_t addrlen;
	char addrstr[64];
	char addrlit[80];              /* the address as an SMTP literal body: 192.0.2.1 or IPv6:... */
	struct sockaddr_storage src;
	socklen_t srclen;
	double last_connect;          /* monotonic seconds of our last connect */
	int same_ip_warned;
	char domain[256];             /* server's mail domain for RCPT tests */
};

/* Which peers look at TLS how: an MX talks to other MTAs that mostly do not
 * verify, a client port (submission, IMAP, POP3) to people's mail programs. */
enum probe_kind { KIND_MX, KIND_CLIENT };

struct pconn {
	int fd;
	SSL *ssl;
	SSL_CTX *sslctx;              /* owned when set by pconn_tls */
	double deadline;              /* whole-connection deadline, monotonic */
	double rtimeout;              /* per connect/read */
	char rbuf[16384];
	size_t rpos, rlen;
	int same_ip;                  /* our source address equals the server's */
	int timed_out;                /* the last error was a timeout, not a refusal */
	char err[320];
	struct smtpreply_parser sp;
	struct smtpreply reply;       /* the last SMTP reply read */
};

enum { PROTO_SMTP, PROTO_IMAP, PROTO_POP3 };

/* Pauses for the rate limit, then connects (from the source address, if
 * any) within the timeout. 0 or -1 with c->err set. */
int pconn_open(struct probe_ctx *ctx, int port, struct pconn *c);
void pconn_close(struct pconn *c);
int pconn_write(struct pconn *c, const char *s, size_t n);
int pconn_printf(struct pconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads one SMTP reply into c->reply; returns its code or -1 (c->err). */
int pconn_smtp(struct pconn *c);
/* Sends a command (CRLF added) and reads the reply: code or -1. */
int pconn_smtp_cmd(struct pconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads one text line (line end removed, at most max bytes) or -1. */
int pconn_line(struct pconn *c, struct strbuf *line, size_t max);
/* 1 when bytes arrive within secs, 0 when none, -1 on error. */
int pconn_wait(struct pconn *c, double secs);
/* TLS handshake over the connection; takes ownership of ctx. 0 or -1. */
int pconn_tls(struct pconn *c, SSL_CTX *ctx, const char *sni);
/* Raw bytes, for the hand-built hellos: up to n bytes, 0 on EOF, -1 on error. */
long pconn_read_raw(struct pconn *c, unsigned char *buf, size_t n);

/* A client context at security level 0 limited to [minv, maxv] (0 = any)
 * with an OpenSSL cipher list (or NULL). */
SSL_CTX *probe_ssl_ctx(struct probe_ctx *ctx, int minv, int maxv, const char *ciphers);

/* Connects and brings the connection to the point where the client's TLS
 * hello is due: greeting, EHLO and STARTTLS for SMTP, STARTTLS / STLS for
 * IMAP / POP3, nothing for implicit TLS. 0 or -1 (c->err). */
int probe_tls_preamble(struct probe_ctx *ctx, int proto, const struct probe_port *pp,
		       struct pconn *c);
/* Every TLS check of one port, each on a fresh connection: a default
 * handshake (certificate, negotiated key), each version TLSv1..TLSv1.3,
 * SSLv2/SSLv3 hellos, a DHE-only handshake and the weak-cipher handshake. */
void probe_tls_checks(struct probe_ctx *ctx, int proto, const struct probe_port *pp,
		      enum probe_kind kind, const char *service);
/* Certificate and negotiated-parameter findings of an established session. */
void probe_tls_session(struct probe_ctx *ctx, SSL *ssl, enum probe_kind kind,
		       const char *service);

/* The name to send as SNI: --name, else the host unless it is an address. */
const char *probe_sni(const struct probe_ctx *ctx);

void probe_smtp_port(struct probe_ctx *ctx, const struct probe_port *pp);

/* SMTP pieces smtp.c shares with abuse.c. probe_smtp_start connects, reads
 * the greeting (after TLS when implicit) and sends EHLO when asked: 0 with
 * the last reply in c->reply, or -1 with c->err. probe_smtp_quit sends QUIT
 * (short wait) and closes. probe_smtp_evidence appends "CODE first line". */
int probe_smtp_start(struct probe_ctx *ctx, const struct probe_port *pp, struct pconn *c,
		     int ehlo);
void probe_smtp_quit(struct pconn *c);
void probe_smtp_evidence(struct strbuf *b, const struct smtpreply *r);

/* The intrusive abuse checks of one SMTP port (abuse.c): whether a bare LF
 * ends DATA (SMTP smuggling; one test message to the target's own
 * postmaster or --user), and whether simultaneous connections from one
 * address are limited (up to o->flood of them, all closed at the end). */
void probe_smtp_smuggling(struct probe_ctx *ctx, const struct probe_port *pp,
			  const char *service);
void probe_smtp_flood(struct probe_ctx *ctx, const struct probe_port *pp, enum probe_kind kind,
		      const char *service);
void probe_imap_port(struct probe_ctx *ctx, const struct probe_port *pp);
void probe_pop3_port(struct probe_ctx *ctx, const struct probe_port *pp);

/* Software names in a greeting: 1 with the names (and versions, then
 * *has_version = 1) appended to what, or 0. */
int probe_disclosure(const char *text, struct strbuf *what, int *has_version);
/* A random lower-case name of n letters (n < outsz). */
void probe_random_name(char *out, size_t n);
/* Base64 of s[0..n). */
void probe_base64(struct strbuf *out, const char *s, size_t n);
void probe_same_ip_warning(struct probe_ctx *ctx, const struct pconn *c, const char *service);

#endif
