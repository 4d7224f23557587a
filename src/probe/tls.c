/*
 * tls - the probe's TLS checks on one port: which protocol versions the
 * server accepts (TLSv1..TLSv1.3 through OpenSSL; SSLv2 and SSLv3 through
 * hand-built ClientHellos, because Debian's OpenSSL has no SSLv3 code at all),
 * the ephemeral key of a default handshake and of a DHE-only TLS 1.2
 * handshake (a default one negotiates X25519 and hides a small DH group),
 * export/3DES/RC4/NULL cipher acceptance, and the certificate (trust, name,
 * validity, key size).
 *
 * Interface: probe_int.h. Every check uses its own fresh connection, and
 * the client runs at OpenSSL security level 0: the point is to see the weak
 * protocols and groups a server offers, which level 2 would refuse to speak.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "core/xmalloc.h"
#include "probe/probe_int.h"

SSL_CTX *probe_ssl_ctx(struct probe_ctx *ctx, int minv, int maxv, const char *ciphers)
{
	SSL_CTX *s = SSL_CTX_new(TLS_client_method());
	if (!s)
		return NULL;
	SSL_CTX_set_security_level(s, 0);
	SSL_CTX_set_min_proto_version(s, minv);
	SSL_CTX_set_max_proto_version(s, maxv);
	SSL_CTX_set_verify(s, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_default_verify_paths(s);
	if (ctx->o->ca_file)
		SSL_CTX_load_verify_locations(s, ctx->o->ca_file, NULL);
	SSL_CTX_set_options(s, SSL_OP_LEGACY_SERVER_CONNECT);
	if (ciphers && SSL_CTX_set_cipher_list(s, ciphers) != 1) {
		ERR_clear_error();
		SSL_CTX_free(s);
		return NULL;
	}
	return s;
}

const char *probe_sni(const struct probe_ctx *ctx)
{
	const char *n = ctx->o->tls_name ? ctx->o->tls_name : ctx->o->host;
	unsigned char tmp[16];
	if (inet_pton(AF_INET, n, tmp) == 1 || inet_pton(AF_INET6, n, tmp) == 1)
		return NULL; /* no SNI for address literals */
	return n;
}

/* Reads lines until the one starting with tag; 0 with the line, or -1. */
static int imap_tagged(struct pconn *c, const char *tag, struct strbuf *line)
{
	size_t tl = strlen(tag);
	for (int i = 0; i < 1000; i++) {
		if (pconn_line(c, line, 8192) != 0)
			return -1;
		if (line->len > tl && strncmp(line->s, tag, tl) == 0 && line->s[tl] == ' ')
			return 0;
	}
	snprintf(c->err, sizeof c->err, "more than 1000 lines before the tagged answer");
	return -1;
}

int probe_tls_preamble(struct probe_ctx *ctx, int proto, const struct probe_port *pp,
		       struct pconn *c)
{
	if (pconn_open(ctx, pp->port, c) != 0)
		return -1;
	if (pp->implicit_tls)
		return 0;
	struct strbuf line = STRBUF_INIT;
	int rc = -1;
	if (proto == PROTO_SMTP) {
		if (pconn_smtp(c) != 220)
			goto out;
		if (pconn_smtp_cmd(c, "EHLO %s", ctx->o->helo) != 250)
			goto out;
		if (pconn_smtp_cmd(c, "STARTTLS") != 220)
			goto out;
		rc = 0;
	} else if (proto == PROTO_IMAP) {
		if (pconn_line(c, &line, 8192) != 0 || strncmp(strbuf_str(&line), "* OK", 4) != 0)
			goto out;
		if (pconn_printf(c, "t1 STARTTLS\r\n") != 0 || imap_tagged(c, "t1", &line) != 0)
			goto out;
		rc = strncmp(line.s, "t1 OK", 5) == 0 ? 0 : -1;
	} else {
		if (pconn_line(c, &line, 8192) != 0 || strncmp(strbuf_str(&line), "+OK", 3) != 0)
			goto out;
		if (pconn_printf(c, "STLS\r\n") != 0 || pconn_line(c, &line, 8192) != 0)
			goto out;
		rc = strncmp(line.s, "+OK", 3) == 0 ? 0 : -1;
	}
out:
	if (rc != 0 && !c->err[0])
		snprintf(c->err, sizeof c->err, "STARTTLS refused");
	strbuf_free(&line);
	return rc;
}

static const char *fix_protocols(int proto, enum probe_kind kind)
{
	if (proto == PROTO_SMTP)
		return kind == KIND_MX
			       ? "postconf -e 'smtpd_tls_protocols = >=TLSv1.2' (a trade-off on port 25: "
				 "some old MTAs then fall back to plaintext)"
			       : "postconf -e 'smtpd_tls_mandatory_protocols = >=TLSv1.2' "
				 "'smtpd_tls_protocols = >=TLSv1.2' (or the service's -o overrides)";
	return "dovecot: ssl_min_protocol = TLSv1.2";
}

static const char *fix_dh(int proto)
{
	if (proto == PROTO_SMTP)
		return "remove smtpd_tls_dh1024_param_file (Postfix >= 3.7 has a built-in 2048-bit group) "
		       "or point it at a file made by 'openssl genpkey -genparam -algorithm DH -pkeyopt "
		       "group:ffdhe3072'";
	return "dovecot: ssl_dh = </etc/dovecot/dh.pem, made by 'openssl genpkey -genparam "
	       "-algorithm DH -pkeyopt group:ffdhe3072'";
}

static const char *fix_cert(int proto)
{
	if (proto == PROTO_SMTP)
		return "install a certificate from a public CA for the server's name (e.g. Let's "
		       "Encrypt) in smtpd_tls_chain_files";
	return "install a certificate from a public CA for the server's name in ssl_cert/ssl_key";
}

static void key_desc(SSL *ssl, struct strbuf *b, int *dh_bits)
{
	EVP_PKEY *k = NULL;
	*dh_bits = 0;
	if (!SSL_get_peer_tmp_key(ssl, &k) || !k) {
		strbuf_adds(b, "none");
		return;
	}
	int id = EVP_PKEY_get_base_id(k);
	int bits = EVP_PKEY_get_bits(k);
	if (id == EVP_PKEY_DH) {
		strbuf_addf(b, "DH %d bits", bits);
		*dh_bits = bits;
	} else if (id == EVP_PKEY_EC) {
		char g[80] = "";
		size_t gl = 0;
		EVP_PKEY_get_group_name(k, g, sizeof g, &gl);
		strbuf_addf(b, "ECDH %s %d bits", g, bits);
	} else if (id == EVP_PKEY_X25519) {
		strbuf_adds(b, "X25519");
	} else if (id == EVP_PKEY_X448) {
		strbuf_adds(b, "X448");
	} else {
		strbuf_addf(b, "%s %d bits", OBJ_nid2sn(id), bits);
	}
	EVP_PKEY_free(k);
}

static void subject_cn(X509 *cert, char *out, size_t n)
{
	out[0] = '\0';
	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out, (int)n);
}

void probe_tls_session(struct probe_ctx *ctx, SSL *ssl, enum probe_kind kind,
		       const char *service)
{
	int proto = strncmp(service, "smtp", 4) == 0 ? PROTO_SMTP : PROTO_IMAP;
	struct strbuf ev = STRBUF_INIT;
	int dh_bits;
	strbuf_addf(&ev, "%s %s, key exchange ", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	key_desc(ssl, &ev, &dh_bits);
	X509 *cert = SSL_get1_peer_certificate(ssl);
	if (!cert) {
		strbuf_adds(&ev, ", no certificate");
		probe_add(ctx->r, "tls.session", PROBE_INFO, service, "TLS session negotiated",
			  strbuf_str(&ev), "");
		probe_add(ctx->r, "tls.cert.missing", kind == KIND_MX ? PROBE_LOW : PROBE_HIGH, service,
			  "the server sent no certificate (anonymous TLS)", strbuf_str(&ev),
			  fix_cert(proto));
		strbuf_free(&ev);
		return;
	}
	char cn[256];
	subject_cn(cert, cn, sizeof cn);
	const ASN1_TIME *na = X509_get0_notAfter(cert), *nb = X509_get0_notBefore(cert);
	int days = 0, secs = 0;
	ASN1_TIME_diff(&days, &secs, NULL, na);
	strbuf_addf(&ev, ", certificate CN=%s, expires in %d days", cn, days);
	probe_add(ctx->r, "tls.session", PROBE_INFO, service, "TLS session negotiated",
		  strbuf_str(&ev), "");
	enum probe_sev cs = kind == KIND_MX ? PROBE_LOW : PROBE_MEDIUM;

	strbuf_reset(&ev);
	if (X509_cmp_current_time(na) < 0) {
		strbuf_addf(&ev, "notAfter %d days ago (CN=%s)", -days, cn);
		probe_add(ctx->r, "tls.cert.expired", kind == KIND_MX ? PROBE_MEDIUM : PROBE_HIGH,
			  service, "the certificate has expired", ev.s, fix_cert(proto));
	} else if (X509_cmp_current_time(nb) > 0) {
		probe_add(ctx->r, "tls.cert.notyet", cs, service, "the certificate is not valid yet",
			  cn, fix_cert(proto));
	} else if (days < 14) {
		strbuf_addf(&ev, "expires in %d days (CN=%s)", days, cn);
		probe_add(ctx->r, "tls.cert.expiring", cs, service,
			  "the certificate expires within 14 days", ev.s,
			  "renew the certificate (and check the renewal job)");
	}
	long vr = SSL_get_verify_result(ssl);
	if (vr != X509_V_OK) {
		strbuf_reset(&ev);
		const char *why = X509_verify_cert_error_string(vr);
		strbuf_addf(&ev, "%s%s (CN=%s)", why,
			    X509_check_issued(cert, cert) == X509_V_OK && !strstr(why, "self-signed")
				    ? ", self-signed"
				    : "",
			    cn);
		probe_add(ctx->r, "tls.cert.untrusted", cs, service,
			  "the certificate does not verify against the trusted CAs", ev.s,
			  fix_cert(proto));
	}
	const char *name = ctx->o->tls_name ? ctx->o->tls_name : ctx->o->host;
	unsigned char tmp[16];
	int is_ip = inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1;
	int ok = is_ip ? X509_check_ip_asc(cert, name, 0) == 1
		       : X509_check_host(cert, name, 0, 0, NULL) == 1;
	if (!ok) {
		strbuf_reset(&ev);
		strbuf_addf(&ev, "certificate CN=%s does not name %s", cn, name);
		probe_add(ctx->r, "tls.cert.name", cs, service,
			  "the certificate is not issued for the name probed", ev.s, fix_cert(proto));
	}
	EVP_PKEY *pk = X509_get0_pubkey(cert);
	if (pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA && EVP_PKEY_get_bits(pk) < 2048) {
		strbuf_reset(&ev);
		strbuf_addf(&ev, "RSA %d bits (CN=%s)", EVP_PKEY_get_bits(pk), cn);
		probe_add(ctx->r, "tls.cert.weakkey", PROBE_MEDIUM, service,
			  "the certificate's RSA key is shorter than 2048 bits", ev.s, fix_cert(proto));
	}
	X509_free(cert);
	strbuf_free(&ev);
}

/* One handshake on a fresh connection. 1 accepted (info filled), 0 refused
 * by the server, -1 the connection could not get that far. */
static int try_tls(struct probe_ctx *ctx, int proto, const struct probe_port *pp, int minv,
		   int maxv, const char *ciphers, struct strbuf *info, int *dh_bits)
{
	SSL_CTX *sc = probe_ssl_ctx(ctx, minv, maxv, ciphers);
	if (!sc)
		return 0; /* nothing of that kind compiled into our OpenSSL */
	struct pconn c;
	if (probe_tls_preamble(ctx, proto, pp, &c) != 0) {
		SSL_CTX_free(sc);
		if (info)
			strbuf_adds(info, c.err);
		pconn_close(&c);
		return -1;
	}
	int rc = pconn_tls(&c, sc, probe_sni(ctx)) == 0 ? 1 : 0;
	if (rc == 0 && c.timed_out) {
		rc = -1; /* a stalled handshake proves nothing either way */
		if (info)
			strbuf_adds(info, c.err);
	}
	if (rc == 1 && info) {
		strbuf_addf(info, "%s %s, key exchange ", SSL_get_version(c.ssl),
			    SSL_get_cipher_name(c.ssl));
		key_desc(c.ssl, info, dh_bits);
	}
	pconn_close(&c);
	return rc;
}

static int sslv2_v3(struct probe_ctx *ctx, int proto, const struct probe_port *pp, int v2)
{
	unsigned char h[128];
	size_t n = 0;
	if (v2) {
		static const unsigned char specs[] = {1, 0, 0x80, 2, 0, 0x80, 3, 0, 0x80, 4, 0, 0x80,
						      5, 0, 0x80, 6, 0, 0x40, 7, 0, 0xc0};
		size_t body = 9 + sizeof specs + 16;
		h[n++] = (unsigned char)(0x80 | (body >> 8));
		h[n++] = (unsigned char)(body & 0xff);
		h[n++] = 1;                          /* CLIENT-HELLO */
		h[n++] = 0, h[n++] = 2;              /* SSL 2.0 */
		h[n++] = 0, h[n++] = sizeof specs;   /* cipher specs */
		h[n++] = 0, h[n++] = 0;              /* session id */
		h[n++] = 0, h[n++] = 16;             /* challenge */
		memcpy(h + n, specs, sizeof specs);
		n += sizeof specs;
		RAND_bytes(h + n, 16);
		n += 16;
	} else {
		static const unsigned char suites[] = {0, 0x0a, 0, 0x05, 0, 0x04, 0, 0x2f, 0, 0x35, 0,
						       0x33, 0, 0x39, 0, 0x16, 0, 0x09, 0, 0x03, 0, 0xff};
		size_t body = 2 + 32 + 1 + 2 + sizeof suites + 2;
		h[n++] = 0x16, h[n++] = 3, h[n++] = 0;                 /* handshake record, SSL 3.0 */
		h[n++] = (unsigned char)((body + 4) >> 8), h[n++] = (unsigned char)(body + 4);
		h[n++] = 1, h[n++] = 0;                                /* ClientHello */
		h[n++] = (unsigned char)(body >> 8), h[n++] = (unsigned char)body;
		h[n++] = 3, h[n++] = 0;
		RAND_bytes(h + n, 32);
		n += 32;
		h[n++] = 0;                                            /* session id */
		h[n++] = 0, h[n++] = sizeof suites;
		memcpy(h + n, suites, sizeof suites);
		n += sizeof suites;
		h[n++] = 1, h[n++] = 0;                                /* null compression */
	}
	struct pconn c;
	if (probe_tls_preamble(ctx, proto, pp, &c) != 0 || pconn_write(&c, (char *)h, n) != 0) {
		pconn_close(&c);
		return -1;
	}
	unsigned char r[16];
	size_t got = 0;
	while (got < 11) {
		long k = pconn_read_raw(&c, r + got, sizeof r - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	pconn_close(&c);
	if (v2)
		return got >= 3 && (r[0] & 0x80) && r[2] == 4;
	return got >= 11 && r[0] == 0x16 && r[1] == 3 && r[2] == 0 && r[5] == 2 && r[9] == 3 &&
	       r[10] == 0;
}

void probe_tls_checks(struct probe_ctx *ctx, int proto, const struct probe_port *pp,
		      enum probe_kind kind, const char *service)
{
	static const struct {
		int v;
		const char *name;
	} vers[] = {{TLS1_VERSION, "TLSv1"},
		    {TLS1_1_VERSION, "TLSv1.1"},
		    {TLS1_2_VERSION, "TLSv1.2"},
		    {TLS1_3_VERSION, "TLSv1.3"}};
	struct strbuf acc = STRBUF_INIT, ref = STRBUF_INIT, old = STRBUF_INIT, ev = STRBUF_INIT;
	int accepted[4] = {0};
	int any = 0, failed = 0;
	{
		/* A default handshake for the certificate and the negotiated key, in
		 * case the dialogue connection could not switch to TLS itself. */
		struct pconn c;
		SSL_CTX *sc = probe_ssl_ctx(ctx, 0, 0, "ALL:@SECLEVEL=0");
		if (sc && probe_tls_preamble(ctx, proto, pp, &c) == 0) {
			if (pconn_tls(&c, sc, probe_sni(ctx)) == 0)
				probe_tls_session(ctx, c.ssl, kind, service);
		} else if (sc) {
			SSL_CTX_free(sc);
		}
		pconn_close(&c);
	}
	for (size_t i = 0; i < 4; i++) {
		strbuf_reset(&ev);
		int dh;
		int rc = try_tls(ctx, proto, pp, vers[i].v, vers[i].v,
				 vers[i].v == TLS1_3_VERSION ? NULL : "ALL:@SECLEVEL=0", &ev, &dh);
		if (rc < 0) {
			failed = 1;
			probe_error(ctx->r, "%s: %s check: %s", service, vers[i].name, ev.s);
			continue;
		}
		accepted[i] = rc;
		any |= rc;
		strbuf_addf(rc ? &acc : &ref, " %s", vers[i].name);
		if (rc && i < 2)
			strbuf_addf(&old, "%s%s", old.len ? ", " : "", ev.s);
	}
	for (int v2 = 1; v2 >= 0; v2--) {
		int rc = sslv2_v3(ctx, proto, pp, v2);
		const char *nm = v2 ? "SSLv2" : "SSLv3";
		if (rc < 0) {
			failed = 1;
			continue;
		}
		strbuf_addf(rc ? &acc : &ref, " %s", nm);
		if (rc)
			probe_add(ctx->r, v2 ? "tls.sslv2" : "tls.sslv3", PROBE_HIGH, service,
				  v2 ? "the server speaks SSLv2" : "the server speaks SSLv3 (POODLE)",
				  v2 ? "SSLv2 SERVER-HELLO to an SSLv2-only CLIENT-HELLO"
				     : "ServerHello version 3.0 to an SSLv3-only ClientHello",
				  fix_protocols(proto, KIND_CLIENT));
	}
	strbuf_reset(&ev);
	strbuf_addf(&ev, "accepted:%s; refused:%s", acc.len ? acc.s : " none",
		    ref.len ? ref.s : " none");
	probe_add(ctx->r, "tls.versions", PROBE_INFO, service, "TLS protocol versions", ev.s, "");
	if (!any) {
		if (!failed)
			probe_add(ctx->r, "tls.handshake", kind == KIND_MX ? PROBE_MEDIUM : PROBE_HIGH,
				  service, "no TLS handshake succeeded with any protocol version",
				  ev.s, fix_cert(proto));
		goto out;
	}
	if (old.len) {
		strbuf_reset(&ev);
		strbuf_addf(&ev, "%s accepted: %s", accepted[0] ? "TLSv1" : "TLSv1.1", old.s);
		probe_add(ctx->r, "tls.old", kind == KIND_MX ? PROBE_LOW : PROBE_MEDIUM, service,
			  kind == KIND_MX ? "TLS 1.0/1.1 accepted (on port 25 a trade-off: refusing "
					    "them sends old MTAs to plaintext)"
					  : "TLS 1.0/1.1 accepted (RFC 8996 deprecates them)",
			  ev.s, fix_protocols(proto, kind));
	}
	if (accepted[0] || accepted[1] || accepted[2]) {
		int maxv = accepted[2] ? TLS1_2_VERSION : accepted[1] ? TLS1_1_VERSION : TLS1_VERSION;
		int dh = 0;
		strbuf_reset(&ev);
		int rc = try_tls(ctx, proto, pp, TLS1_VERSION, maxv, "kEDH:@SECLEVEL=0", &ev, &dh);
		if (rc == 1 && dh > 0) {
			probe_add(ctx->r, "tls.dhe", PROBE_INFO, service, "DHE group size", ev.s, "");
			if (dh < 2048)
				probe_add(ctx->r, "tls.dh.small", dh < 1024 ? PROBE_HIGH : PROBE_MEDIUM,
					  service, "DHE group smaller than 2048 bits (Logjam class)",
					  ev.s, fix_dh(proto));
		}
		strbuf_reset(&ev);
		rc = try_tls(ctx, proto, pp, TLS1_VERSION, maxv,
			     "3DES:RC4:DES:EXP:LOW:eNULL:@SECLEVEL=0", &ev, &dh);
		if (rc == 1)
			probe_add(ctx->r, "tls.cipher.weak", kind == KIND_MX ? PROBE_LOW : PROBE_MEDIUM,
				  service, "a weak cipher (3DES/RC4/DES/export/NULL) was negotiated",
				  ev.s,
				  proto == PROTO_SMTP
					  ? "postconf -e 'smtpd_tls_exclude_ciphers = 3DES, RC4, DES, "
					    "eNULL, EXPORT, LOW' (or smtpd_tls_mandatory_ciphers = high)"
					  : "dovecot: ssl_cipher_list = HIGH:!aNULL:!3DES:!RC4");
	}
out:
	strbuf_free(&acc);
	strbuf_free(&ref);
	strbuf_free(&old);
	strbuf_free(&ev);
}
