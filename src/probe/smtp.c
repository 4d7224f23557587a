/*
 * smtp - the probe's SMTP dialogues on one port: banner and EHLO
 * disclosure, STARTTLS offered, AUTH offered before TLS, (intrusive) AUTH
 * with a made-up account, VRFY/EXPN/RCPT enumeration, open-relay variants,
 * HELO checks, pipelining enforcement and STARTTLS command injection; the
 * smuggling and connection-limit checks (abuse.c) run last.
 *
 * Interface: probe_smtp_port() (probe_int.h). Rules from Postfix's
 * behaviour: every relay and HELO variant gets a fresh connection (the error
 * limits end a shared session with 421), verdicts are taken at RCPT
 * (smtpd_delay_reject answers HELO and sender checks there) and DATA is
 * never sent here (only abuse.c's smuggling check sends one test message to
 * the target's own postmaster). An oracle is a difference between
 * the answers for a real and a made-up user, not a single answer.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "probe/probe_int.h"

struct ehlo_info {
	int starttls, pipelining, auth_plain, auth_login;
	char auth[256]; /* the AUTH line */
};

static void parse_ehlo(const struct smtpreply *r, struct ehlo_info *e)
{
	memset(e, 0, sizeof *e);
	const char *t = strbuf_str(&r->text);
	while (*t) {
		size_t n = strcspn(t, "\n");
		if (n >= 8 && strncasecmp(t, "STARTTLS", 8) == 0)
			e->starttls = 1;
		if (n >= 10 && strncasecmp(t, "PIPELINING", 10) == 0)
			e->pipelining = 1;
		if (n >= 4 && strncasecmp(t, "AUTH", 4) == 0 && (n == 4 || t[4] == ' ' || t[4] == '=')) {
			snprintf(e->auth, sizeof e->auth, "%.*s", (int)(n < 200 ? n : 200), t);
			for (size_t i = 5; i + 5 <= n; i++) {
				if (strncasecmp(t + i, "PLAIN", 5) == 0)
					e->auth_plain = 1;
				if (strncasecmp(t + i, "LOGIN", 5) == 0)
					e->auth_login = 1;
			}
		}
		t += n;
		if (*t)
			t++;
	}
}

void probe_smtp_evidence(struct strbuf *b, const struct smtpreply *r)
{
	strbuf_addf(b, "%d ", r->code);
	const char *t = strbuf_str(&r->text);
	probe_printable(b, t, strcspn(t, "\n"), 200);
}

/* Greeting and EHLO on a new connection (TLS first when implicit). Returns
 * 0 with the EHLO reply in c->reply, -1 with c->err. */
int probe_smtp_start(struct probe_ctx *ctx, const struct probe_port *pp, struct pconn *c,
		      int ehlo)
{
	if (pconn_open(ctx, pp->port, c) != 0)
		return -1;
	if (pp->implicit_tls) {
		SSL_CTX *sc = probe_ssl_ctx(ctx, 0, 0, "ALL:@SECLEVEL=0");
		if (!sc || pconn_tls(c, sc, probe_sni(ctx)) != 0)
			return -1;
	}
	int code = pconn_smtp(c);
	if (code < 0)
		return -1;
	if (code != 220) {
		struct strbuf b = STRBUF_INIT;
		probe_smtp_evidence(&b, &c->reply);
		snprintf(c->err, sizeof c->err, "the server refuses the session: %s", b.s);
		strbuf_free(&b);
		return -1;
	}
	if (!ehlo)
		return 0;
	code = pconn_smtp_cmd(c, "EHLO %s", ctx->o->helo);
	if (code != 250) {
		struct strbuf b = STRBUF_INIT;
		if (code > 0)
			probe_smtp_evidence(&b, &c->reply);
		if (code < 0)
			strbuf_adds(&b, c->err);
		snprintf(c->err, sizeof c->err, "EHLO not accepted: %.280s", b.s);
		strbuf_free(&b);
		return -1;
	}
	return 0;
}

void probe_smtp_quit(struct pconn *c)
{
	if (c->fd >= 0 && c->err[0] == '\0') {
		double save = c->rtimeout;
		c->rtimeout = save < 2 ? save : 2;
		pconn_smtp_cmd(c, "QUIT");
		c->rtimeout = save;
	}
	pconn_close(c);
}

/* Tries AUTH with a made-up account. Returns the final code, or -1. */
static int auth_random(struct pconn *c, const struct ehlo_info *e, struct strbuf *ev)
{
	char user[16], pass[20];
	probe_random_name(user, 10);
	probe_random_name(pass, 16);
	struct strbuf b = STRBUF_INIT;
	int code;
	if (e->auth_plain) {
		char raw[64];
		int n = snprintf(raw, sizeof raw, "%c%s%c%s", 0, user, 0, pass);
		probe_base64(&b, raw, (size_t)n);
		code = pconn_smtp_cmd(c, "AUTH PLAIN %s", b.s);
	} else {
		code = pconn_smtp_cmd(c, "AUTH LOGIN");
		if (code == 334) {
			probe_base64(&b, user, strlen(user));
			code = pconn_smtp_cmd(c, "%s", b.s);
		}
		if (code == 334) {
			strbuf_reset(&b);
			probe_base64(&b, pass, strlen(pass));
			code = pconn_smtp_cmd(c, "%s", b.s);
		}
	}
	if (code > 0) {
		strbuf_addf(ev, "AUTH %s as made-up user %s: ", e->auth_plain ? "PLAIN" : "LOGIN", user);
		probe_smtp_evidence(ev, &c->reply);
	}
	strbuf_free(&b);
	return code;
}

/* VRFY or EXPN for a known and a made-up name on one connection. */
static void enum_cmd(struct probe_ctx *ctx, struct pconn *c, const char *cmd, const char *service,
		     const char *const *known, size_t nknown, const char *fake)
{
	struct strbuf ev = STRBUF_INIT;
	int fcode = pconn_smtp_cmd(c, "%s %s", cmd, fake);
	if (fcode < 0)
		goto out;
	struct strbuf fev = STRBUF_INIT;
	probe_smtp_evidence(&fev, &c->reply);
	for (size_t i = 0; i < nknown; i++) {
		int kcode = pconn_smtp_cmd(c, "%s %s", cmd, known[i]);
		if (kcode < 0)
			break;
		if (kcode / 100 != fcode / 100 || (kcode == 252) != (fcode == 252)) {
			strbuf_addf(&ev, "%s %s -> ", cmd, known[i]);
			probe_smtp_evidence(&ev, &c->reply);
			strbuf_addf(&ev, "; %s %s -> %s", cmd, fake, fev.s);
			int vrfy = cmd[0] == 'V';
			probe_add(ctx->r, vrfy ? "smtp.vrfy.enum" : "smtp.expn.enum", PROBE_MEDIUM,
				  service,
				  vrfy ? "VRFY tells existing users from made-up ones"
				       : "EXPN tells existing users from made-up ones",
				  ev.s, "postconf -e 'disable_vrfy_command = yes'");
			break;
		}
	}
	strbuf_free(&fev);
out:
	strbuf_free(&ev);
}

struct relay_variant {
	const char *name;
	const char *from; /* %1$s relay domain, %2$s server domain, %3$s server address */
	const char *rcpt;
};

static const struct relay_variant relay_variants[] = {
	{"null sender", "<>", "<relaytest@%1$s>"},
	{"external sender and recipient", "<probe@%1$s>", "<relaytest@%1$s>"},
	{"sender at the server's domain", "<postmaster@%2$s>", "<relaytest@%1$s>"},
	{"sender at the server's address literal", "<postmaster@[%3$s]>", "<relaytest@%1$s>"},
	{"%-hack", "<>", "<relaytest%%%1$s@%2$s>"},
	{"%-hack at the address literal", "<>", "<relaytest%%%1$s@[%3$s]>"},
	{"quoted local part", "<>", "<\"relaytest@%1$s\">"},
	{"quoted %-hack", "<>", "<\"relaytest%%%1$s\">"},
	{"quoted local part at the server", "<>", "<\"relaytest@%1$s\"@%2$s>"},
	{"double @", "<>", "<relaytest@%1$s@%2$s>"},
	{"source route", "<>", "<@%2$s:relaytest@%1$s>"},
	{"bang path", "<>", "<%1$s!relaytest>"},
	{"bang path at the server", "<>", "<%1$s!relaytest@%2$s>"},
	{"IP-literal recipient", "<>", "<relaytest@[192.0.2.1]>"},
};

static void relay_tests(struct probe_ctx *ctx, const struct probe_port *pp, const char *service)
{
	struct strbuf open = STRBUF_INIT, refused = STRBUF_INIT;
	size_t nopen = 0;
	for (size_t i = 0; i < sizeof relay_variants / sizeof relay_variants[0]; i++) {
		const struct relay_variant *v = &relay_variants[i];
		char from[512], rcpt[512];
		snprintf(from, sizeof from, v->from, ctx->o->relay_to, ctx->domain, ctx->addrlit);
		snprintf(rcpt, sizeof rcpt, v->rcpt, ctx->o->relay_to, ctx->domain, ctx->addrlit);
		struct pconn c;
		if (probe_smtp_start(ctx, pp, &c, 1) != 0) {
			probe_error(ctx->r, "%s: relay test (%s): %s", service, v->name, c.err);
			pconn_close(&c);
			continue;
		}
		int code = pconn_smtp_cmd(&c, "MAIL FROM:%s", from);
		if (code == 250)
			code = pconn_smtp_cmd(&c, "RCPT TO:%s", rcpt);
		if (code < 0) {
			probe_error(ctx->r, "%s: relay test (%s): %s", service, v->name, c.err);
		} else if (code == 250 || code == 251) {
			strbuf_addf(&open, "%sMAIL FROM:%s RCPT TO:%s -> ", nopen ? "; " : "", from, rcpt);
			probe_smtp_evidence(&open, &c.reply);
			nopen++;
		} else if (!refused.len) {
			strbuf_addf(&refused, "MAIL FROM:%s RCPT TO:%s -> ", from, rcpt);
			probe_smtp_evidence(&refused, &c.reply);
		}
		probe_smtp_quit(&c);
	}
	if (nopen)
		probe_add(ctx->r, "smtp.relay.open", PROBE_HIGH, service,
			  "open relay: RCPT to a foreign domain accepted without authentication",
			  open.s,
			  "put reject_unauth_destination before any permit except permit_mynetworks "
			  "and permit_sasl_authenticated in smtpd_relay_restrictions, and keep "
			  "mynetworks to your own hosts (postconf -e 'mynetworks = 127.0.0.0/8')");
	else if (refused.len)
		probe_add(ctx->r, "smtp.relay.refused", PROBE_INFO, service,
			  "relaying refused for every variant", refused.s, "");
	strbuf_free(&open);
	strbuf_free(&refused);
}

static void rcpt_enum(struct probe_ctx *ctx, const struct probe_port *pp, const char *service,
		      const char *const *known, size_t nknown, const char *fake)
{
	struct pconn c;
	if (probe_smtp_start(ctx, pp, &c, 1) != 0) {
		probe_error(ctx->r, "%s: RCPT enumeration: %s", service, c.err);
		pconn_close(&c);
		return;
	}
	struct strbuf ev = STRBUF_INIT, fev = STRBUF_INIT;
	int fcode = pconn_smtp_cmd(&c, "MAIL FROM:<>");
	if (fcode == 250)
		fcode = pconn_smtp_cmd(&c, "RCPT TO:<%s@%s>", fake, ctx->domain);
	if (fcode > 0) {
		probe_smtp_evidence(&fev, &c.reply);
		for (size_t i = 0; i < nknown; i++) {
			int k = pconn_smtp_cmd(&c, "RCPT TO:<%s@%s>", known[i], ctx->domain);
			if (k < 0)
				break;
			if (k / 100 == 2 && fcode / 100 == 5) {
				strbuf_addf(&ev, "RCPT %s@%s -> ", known[i], ctx->domain);
				probe_smtp_evidence(&ev, &c.reply);
				strbuf_addf(&ev, "; RCPT %s@%s -> %s", fake, ctx->domain, fev.s);
				probe_add(ctx->r, "smtp.rcpt.enum", PROBE_INFO, service,
					  "RCPT tells existing users from made-up ones (normal for an "
					  "MX; the brakes are the error tarpit and connection limits)",
					  ev.s,
					  "keep smtpd_soft_error_limit/smtpd_hard_error_limit low, "
					  "smtpd_error_sleep_time = 1s, and a mxjail jail for "
					  "'User unknown' rejections");
				break;
			}
		}
	}
	if (fcode < 0)
		probe_error(ctx->r, "%s: RCPT enumeration: %s", service, c.err);
	probe_smtp_quit(&c);
	strbuf_free(&ev);
	strbuf_free(&fev);
}

static void helo_tests(struct probe_ctx *ctx, const struct probe_port *pp, const char *service)
{
	static const struct {
		const char *id, *cmd, *title, *fix;
	} v[] = {
		{"smtp.helo.none", NULL, "mail accepted without HELO/EHLO",
		 "postconf -e 'smtpd_helo_required = yes'"},
		{"smtp.helo.nonfqdn", "HELO probe", "non-FQDN HELO name accepted",
		 "add reject_non_fqdn_helo_hostname to smtpd_helo_restrictions"},
		{"smtp.helo.invalid", "HELO probe_!invalid", "syntactically invalid HELO name accepted",
		 "add reject_invalid_helo_hostname to smtpd_helo_restrictions"},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		struct pconn c;
		if (probe_smtp_start(ctx, pp, &c, 0) != 0) {
			probe_error(ctx->r, "%s: HELO test: %s", service, c.err);
			pconn_close(&c);
			continue;
		}
		int code = v[i].cmd ? pconn_smtp_cmd(&c, "%s", v[i].cmd) : 250;
		if (code == 250)
			code = pconn_smtp_cmd(&c, "MAIL FROM:<>");
		if (code == 250)
			code = pconn_smtp_cmd(&c, "RCPT TO:<postmaster@%s>", ctx->domain);
		if (code == 250 || code == 251) {
			struct strbuf ev = STRBUF_INIT;
			strbuf_addf(&ev, "%s, MAIL FROM:<>, RCPT TO:<postmaster@%s> -> ",
				    v[i].cmd ? v[i].cmd : "no HELO", ctx->domain);
			probe_smtp_evidence(&ev, &c.reply);
			probe_add(ctx->r, v[i].id, PROBE_LOW, service, v[i].title, ev.s, v[i].fix);
			strbuf_free(&ev);
		} else if (code < 0) {
			probe_error(ctx->r, "%s: HELO test: %s", service, c.err);
		}
		probe_smtp_quit(&c);
	}
}

/* EHLO and NOOP in one packet: RFC 2920 says EHLO ends a group, so a server
 * that enforces the pipelining rules drops the session here. */
static void pipelining_test(struct probe_ctx *ctx, const struct probe_port *pp,
			    const char *service)
{
	struct pconn c;
	if (probe_smtp_start(ctx, pp, &c, 0) != 0) {
		probe_error(ctx->r, "%s: pipelining test: %s", service, c.err);
		pconn_close(&c);
		return;
	}
	if (pconn_printf(&c, "EHLO %s\r\nNOOP\r\n", ctx->o->helo) == 0) {
		int a = pconn_smtp(&c);
		int b = a == 250 ? pconn_smtp(&c) : -1;
		if (a == 250 && b == 250)
			probe_add(ctx->r, "smtp.pipelining", PROBE_LOW, service,
				  "commands pipelined after EHLO are answered (pipelining rules not "
				  "enforced)",
				  "EHLO+NOOP in one packet -> 250, 250",
				  "postconf -e 'smtpd_forbid_unauth_pipelining = yes' and "
				  "smtpd_data_restrictions = reject_unauth_pipelining");
	}
	probe_smtp_quit(&c);
}

/* STARTTLS and NOOP in one packet: a server that keeps the NOOP across the
 * TLS switch answers it inside TLS (the CVE-2011-0411 class). */
static void injection_test(struct probe_ctx *ctx, const struct probe_port *pp,
			   const char *service)
{
	struct pconn c;
	if (probe_smtp_start(ctx, pp, &c, 1) != 0) {
		pconn_close(&c);
		return;
	}
	int injected = 0;
	if (pconn_printf(&c, "STARTTLS\r\nNOOP\r\n") == 0 && pconn_smtp(&c) == 220) {
		SSL_CTX *sc = NULL;
		if (c.rpos < c.rlen) {
			injected = 1; /* answered the NOOP in plaintext before TLS: also broken */
		} else if ((sc = probe_ssl_ctx(ctx, 0, 0, "ALL:@SECLEVEL=0")) != NULL &&
			   pconn_tls(&c, sc, probe_sni(ctx)) == 0) {
			double w = c.rtimeout < 2 ? c.rtimeout : 2;
			if (pconn_wait(&c, w) == 1 && pconn_smtp(&c) > 0)
				injected = 1;
		}
	}
	if (injected)
		probe_add(ctx->r, "smtp.starttls.injection", PROBE_MEDIUM, service,
			  "a command sent before the TLS switch is answered after it (STARTTLS "
			  "command injection)",
			  "STARTTLS+NOOP in one packet -> 220, then a reply inside TLS",
			  "upgrade the SMTP server (the input buffer must be discarded at STARTTLS)");
	pconn_close(&c);
}

static void disclosure(struct probe_ctx *ctx, const char *service, const char *what,
		       const char *text, const char *id)
{
	struct strbuf m = STRBUF_INIT;
	int ver = 0;
	if (probe_disclosure(text, &m, &ver)) {
		struct strbuf ev = STRBUF_INIT;
		strbuf_addf(&ev, "%s: ", what);
		probe_printable(&ev, text, strcspn(text, "\n"), 200);
		char title[200];
		snprintf(title, sizeof title, "%s names the software%s: %s", what,
			 ver ? " and its version" : "", m.s);
		probe_add(ctx->r, id, ver ? PROBE_LOW : PROBE_INFO, service, title, ev.s,
			  "postconf -e 'smtpd_banner = $myhostname ESMTP'");
		strbuf_free(&ev);
	}
	strbuf_free(&m);
}

void probe_smtp_port(struct probe_ctx *ctx, const struct probe_port *pp)
{
	char service[32];
	snprintf(service, sizeof service, "smtp/%d", pp->port);
	enum probe_kind kind = pp->implicit_tls || pp->port % 1000 == 587 ? KIND_CLIENT : KIND_MX;
	struct pconn c;
	if (probe_smtp_start(ctx, pp, &c, 0) != 0) {
		probe_error(ctx->r, "%s: %s", service, c.err);
		pconn_close(&c);
		return;
	}
	probe_same_ip_warning(ctx, &c, service);
	const char *banner = strbuf_str(&c.reply.text);
	struct strbuf ev = STRBUF_INIT;
	probe_smtp_evidence(&ev, &c.reply);
	probe_add(ctx->r, "smtp.banner", PROBE_INFO, service, "greeting", ev.s, "");
	disclosure(ctx, service, "the greeting", banner, "smtp.banner.disclosure");
	if (!ctx->o->domain && !ctx->domain[0]) {
		size_t n = strcspn(banner, " \n");
		if (memchr(banner, '.', n) && n < sizeof ctx->domain)
			snprintf(ctx->domain, sizeof ctx->domain, "%.*s", (int)n, banner);
	}
	int code = pconn_smtp_cmd(&c, "EHLO %s", ctx->o->helo);
	if (code != 250) {
		strbuf_reset(&ev);
		if (code > 0)
			probe_smtp_evidence(&ev, &c.reply);
		probe_error(ctx->r, "%s: EHLO not accepted: %s", service, code > 0 ? ev.s : c.err);
		pconn_close(&c);
		strbuf_free(&ev);
		return;
	}
	struct ehlo_info e;
	parse_ehlo(&c.reply, &e);
	int offers_tls = e.starttls;
	{
		const char *t = strbuf_str(&c.reply.text);
		size_t n = strcspn(t, "\n");
		char *first = xstrndup(t, n);
		disclosure(ctx, service, "the EHLO reply", first, "smtp.ehlo.disclosure");
		if (!ctx->domain[0] && memchr(first, '.', strcspn(first, " ")) &&
		    strcspn(first, " ") < sizeof ctx->domain)
			snprintf(ctx->domain, sizeof ctx->domain, "%.*s", (int)strcspn(first, " "), first);
		free(first);
	}
	if (!ctx->domain[0])
		snprintf(ctx->domain, sizeof ctx->domain, "[%s]", ctx->addrlit);
	int tls_now = pp->implicit_tls;
	if (!pp->implicit_tls) {
		if (e.starttls)
			probe_add(ctx->r, "smtp.starttls", PROBE_INFO, service, "STARTTLS offered",
				  "EHLO lists STARTTLS", "");
		else
			probe_add(ctx->r, "smtp.starttls.missing",
				  kind == KIND_MX ? PROBE_MEDIUM : PROBE_HIGH, service,
				  "STARTTLS is not offered: mail and passwords travel in cleartext",
				  "EHLO reply has no STARTTLS",
				  "postconf -e 'smtpd_tls_security_level = may' (encrypt on submission) "
				  "with smtpd_tls_chain_files set");
	}
	int authed = 0;
	if (e.auth[0] && !tls_now) {
		strbuf_reset(&ev);
		strbuf_addf(&ev, "before TLS: 250 %s", e.auth);
		probe_add(ctx->r, "smtp.auth.cleartext", PROBE_HIGH, service,
			  "AUTH is offered before TLS: passwords can be sent in cleartext", ev.s,
			  "postconf -e 'smtpd_tls_auth_only = yes'");
	}
	const char *defknown[] = {"postmaster", "root"};
	const char *const *known = defknown;
	size_t nknown = 2;
	if (ctx->o->user) {
		known = &ctx->o->user;
		nknown = 1;
	}
	char fake[24] = "zq";
	probe_random_name(fake + 2, 12);
	if (ctx->o->intrusive) {
		if (e.auth[0] && (e.auth_plain || e.auth_login)) {
			strbuf_reset(&ev);
			int a = auth_random(&c, &e, &ev);
			if (a == 235) {
				authed = 1;
				probe_add(ctx->r, "smtp.auth.anypassword", PROBE_HIGH, service,
					  "AUTH accepted a made-up user and password", ev.s,
					  "check the SASL backend (Dovecot passdb): it must verify "
					  "passwords (no static nopassword=y)");
			}
		}
	}
	if (!pp->implicit_tls && e.starttls && !authed && !c.err[0]) {
		code = pconn_smtp_cmd(&c, "STARTTLS");
		SSL_CTX *sc = code == 220 ? probe_ssl_ctx(ctx, 0, 0, "ALL:@SECLEVEL=0") : NULL;
		if (sc && pconn_tls(&c, sc, probe_sni(ctx)) == 0) {
			tls_now = 1;
			probe_tls_session(ctx, c.ssl, kind, service);
			code = pconn_smtp_cmd(&c, "EHLO %s", ctx->o->helo);
			if (code == 250)
				parse_ehlo(&c.reply, &e);
		} else if (code != 220 && code > 0) {
			strbuf_reset(&ev);
			probe_smtp_evidence(&ev, &c.reply);
			probe_error(ctx->r, "%s: STARTTLS refused: %s", service, ev.s);
		} else {
			probe_error(ctx->r, "%s: STARTTLS: %s", service, c.err);
		}
	} else if (pp->implicit_tls && c.ssl) {
		probe_tls_session(ctx, c.ssl, kind, service);
	}
	if (tls_now && ctx->o->intrusive && !authed && !c.err[0] && e.auth[0] &&
	    (e.auth_plain || e.auth_login)) {
		strbuf_reset(&ev);
		if (auth_random(&c, &e, &ev) == 235)
			probe_add(ctx->r, "smtp.auth.anypassword", PROBE_HIGH, service,
				  "AUTH accepted a made-up user and password", ev.s,
				  "check the SASL backend (Dovecot passdb): it must verify passwords "
				  "(no static nopassword=y)");
	}
	probe_smtp_quit(&c);
	strbuf_free(&ev);

	if (offers_tls && !pp->implicit_tls)
		injection_test(ctx, pp, service);
	if (offers_tls || pp->implicit_tls)
		probe_tls_checks(ctx, PROTO_SMTP, pp, kind, service);
	helo_tests(ctx, pp, service);
	pipelining_test(ctx, pp, service);
	if (ctx->o->intrusive) {
		/* VRFY and EXPN get their own session: their 502/550 answers count
		 * as errors, and Postfix ends a session after a few of those. */
		struct pconn v;
		if (probe_smtp_start(ctx, pp, &v, 1) == 0) {
			enum_cmd(ctx, &v, "VRFY", service, known, nknown, fake);
			enum_cmd(ctx, &v, "EXPN", service, known, nknown, fake);
		} else {
			probe_error(ctx->r, "%s: VRFY/EXPN test: %s", service, v.err);
		}
		probe_smtp_quit(&v);
		relay_tests(ctx, pp, service);
		rcpt_enum(ctx, pp, service, known, nknown, fake);
		probe_smtp_smuggling(ctx, pp, service);
		/* last: the flood may use up the server's per-client rate limit */
		probe_smtp_flood(ctx, pp, kind, service);
	}
}
