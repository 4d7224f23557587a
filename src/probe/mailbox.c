/*
 * mailbox - the probe's IMAP and POP3 dialogues on one port: greeting
 * disclosure, STARTTLS/STLS offered, plaintext LOGIN/USER allowed before TLS
 * (IMAP LOGINDISABLED, POP3 CAPA USER/SASL), and with --intrusive whether a
 * made-up user with a made-up password logs in (the static nopassword passdb
 * incident). Then the TLS checks of tls.c.
 *
 * Interface: probe_imap_port(), probe_pop3_port() (probe_int.h). Dovecot
 * treats a client whose address equals its own as secured, so a probe from
 * the server's own address is flagged as not showing what strangers see.
 * Lines are capped at 8 KiB and responses at 1000 lines.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "probe/probe_int.h"

#define MB_LINE_MAX 8192

static int has_word(const char *caps, const char *w)
{
	size_t wl = strlen(w);
	for (const char *p = caps; (p = strcasestr(p, w)) != NULL; p += wl) {
		int start = p == caps || p[-1] == ' ' || p[-1] == '[' || p[-1] == '\n';
		int end = p[wl] == '\0' || p[wl] == ' ' || p[wl] == ']' || p[wl] == '\n';
		if (start && end)
			return 1;
	}
	return 0;
}

static void greeting_disclosure(struct probe_ctx *ctx, const char *service, const char *greet,
				const char *fix)
{
	struct strbuf m = STRBUF_INIT, ev = STRBUF_INIT;
	int ver = 0;
	const char *t = greet;
	const char *rb = strchr(t, ']');
	if (rb)
		t = rb + 1; /* skip the capability list */
	if (probe_disclosure(t, &m, &ver)) {
		probe_printable(&ev, greet, strlen(greet), 200);
		char title[200];
		snprintf(title, sizeof title, "the greeting names the software%s: %s",
			 ver ? " and its version" : "", m.s);
		probe_add(ctx->r, strncmp(service, "imap", 4) == 0 ? "imap.banner.disclosure"
								    : "pop3.banner.disclosure",
			  ver ? PROBE_LOW : PROBE_INFO, service, title, ev.s, fix);
	}
	strbuf_free(&m);
	strbuf_free(&ev);
}

static int mb_tls(struct probe_ctx *ctx, struct pconn *c)
{
	SSL_CTX *sc = probe_ssl_ctx(ctx, 0, 0, "ALL:@SECLEVEL=0");
	if (!sc) {
		snprintf(c->err, sizeof c->err, "cannot create a TLS context");
		return -1;
	}
	return pconn_tls(c, sc, probe_sni(ctx));
}

/* Sends a tagged IMAP command, collects untagged lines into caps (those
 * starting with "* CAPABILITY") and leaves the tagged line in line. */
static int imap_cmd(struct pconn *c, const char *tag, const char *cmd, struct strbuf *line,
		    struct strbuf *caps)
{
	if (pconn_printf(c, "%s %s\r\n", tag, cmd) != 0)
		return -1;
	size_t tl = strlen(tag);
	for (int i = 0; i < 1000; i++) {
		if (pconn_line(c, line, MB_LINE_MAX) != 0)
			return -1;
		if (caps && strncasecmp(line->s, "* CAPABILITY ", 13) == 0) {
			strbuf_reset(caps);
			strbuf_adds(caps, line->s + 13);
		}
		if (line->len > tl && strncmp(line->s, tag, tl) == 0 && line->s[tl] == ' ')
			return 0;
	}
	snprintf(c->err, sizeof c->err, "more than 1000 lines before the tagged answer");
	return -1;
}

static const char *FIX_PLAINTEXT =
	"dovecot: disable_plaintext_auth = yes (2.3) or auth_allow_cleartext = no (2.4), "
	"and probe from another address: same-IP clients count as secured";
static const char *FIX_TLS = "dovecot: ssl = required with ssl_cert/ssl_key set";
static const char *FIX_ANYPASS =
	"dovecot: replace the static passdb with nopassword=y by one that checks passwords "
	"(or a proxy to a different backend that does)";

/* Opens the port (TLS first on an implicit-TLS port), reads the greeting
 * and checks that it starts with ok (IMAP compares without case, POP3 with);
 * a greeting that fits is reported as finding id banner. 0, or -1 after the error
 * was reported; c is set up either way, for pconn_close(). */
static int mb_greet(struct probe_ctx *ctx, const struct probe_port *pp, struct pconn *c,
		    const char *service, const char *banner, const char *proto, const char *ok,
		    int (*cmp)(const char *, const char *, size_t), struct strbuf *line,
		    struct strbuf *ev)
{
	if (pconn_open(ctx, pp->port, c) != 0 || (pp->implicit_tls && mb_tls(ctx, c) != 0) ||
	    pconn_line(c, line, MB_LINE_MAX) != 0) {
		probe_error(ctx->r, "%s: %s", service, c->err);
		return -1;
	}
	if (cmp(line->s, ok, strlen(ok)) != 0) {
		probe_printable(ev, line->s, line->len, 80);
		probe_error(ctx->r, "%s: not %s greeting: \"%s\"", service, proto, ev->s);
		return -1;
	}
	probe_same_ip_warning(ctx, c, service);
	probe_printable(ev, line->s, line->len, 200);
	probe_add(ctx->r, banner, PROBE_INFO, service, "greeting", ev->s, "");
	greeting_disclosure(ctx, service, line->s, "dovecot: login_greeting = ready.");
	return 0;
}

/* A made-up login the server took: what, the command text, and its answer. */
static void mb_anypass(struct probe_ctx *ctx, const char *what, const char *service,
		       struct strbuf *ev, const struct strbuf *line)
{
	probe_printable(ev, line->s, line->len, 200);
	probe_add(ctx->r, what, PROBE_HIGH, service,
		  "a made-up user logged in with a made-up password", ev->s, FIX_ANYPASS);
}

typedef void mb_login_fn(struct probe_ctx *ctx, struct pconn *c, const char *service,
			 const char *when);

/* After STARTTLS/STLS (ok: the server agreed): the handshake, the session's
 * checks and, when intrusive, a made-up login over it. */
static void mb_upgrade(struct probe_ctx *ctx, struct pconn *c, const char *service, int ok,
		       const char *cmd, const struct strbuf *line, mb_login_fn *login)
{
	if (ok && mb_tls(ctx, c) == 0) {
		probe_tls_session(ctx, c->ssl, KIND_CLIENT, service);
		if (ctx->o->intrusive) {
			char when[32];
			snprintf(when, sizeof when, "after %s", cmd);
			login(ctx, c, service, when);
		}
	} else {
		probe_error(ctx->r, "%s: %s failed: %s", service, cmd, c->err[0] ? c->err : line->s);
	}
}

static void imap_login_random(struct probe_ctx *ctx, struct pconn *c, const char *service,
			      const char *when)
{
	char user[16], pass[20], cmd[64];
	probe_random_name(user, 10);
	probe_random_name(pass, 16);
	snprintf(cmd, sizeof cmd, "LOGIN %s %s", user, pass);
	struct strbuf line = STRBUF_INIT;
	if (imap_cmd(c, "a5", cmd, &line, NULL) == 0 && strncasecmp(line.s, "a5 OK", 5) == 0) {
		struct strbuf ev = STRBUF_INIT;
		strbuf_addf(&ev, "%s: a5 LOGIN %s %s -> ", when, user, pass);
		mb_anypass(ctx, "imap.anypassword", service, &ev, &line);
		strbuf_free(&ev);
	}
	strbuf_free(&line);
}

void probe_imap_port(struct probe_ctx *ctx, const struct probe_port *pp)
{
	char service[32];
	snprintf(service, sizeof service, "imap/%d", pp->port);
	struct pconn c;
	struct strbuf line = STRBUF_INIT, caps = STRBUF_INIT, ev = STRBUF_INIT;
	if (mb_greet(ctx, pp, &c, service, "imap.banner", "an IMAP", "* OK", strncasecmp, &line, &ev) != 0)
		goto out;
	if (imap_cmd(&c, "a1", "CAPABILITY", &line, &caps) != 0) {
		probe_error(ctx->r, "%s: CAPABILITY: %s", service, c.err);
		goto out;
	}
	int starttls = has_word(caps.s ? caps.s : "", "STARTTLS");
	int disabled = has_word(caps.s ? caps.s : "", "LOGINDISABLED");
	if (!pp->implicit_tls) {
		strbuf_reset(&ev);
		strbuf_adds(&ev, "CAPABILITY before TLS: ");
		probe_printable(&ev, strbuf_str(&caps), caps.len, 300);
		if (!starttls)
			probe_add(ctx->r, "imap.tls.missing", PROBE_HIGH, service,
				  "STARTTLS is not offered: passwords travel in cleartext", ev.s, FIX_TLS);
		if (!disabled)
			probe_add(ctx->r, "imap.plaintext.login", PROBE_HIGH, service,
				  "LOGIN is allowed before TLS (no LOGINDISABLED)", ev.s, FIX_PLAINTEXT);
		if (!disabled && ctx->o->intrusive)
			imap_login_random(ctx, &c, service, "before TLS");
		else if (starttls)
			mb_upgrade(ctx, &c, service,
				   imap_cmd(&c, "a2", "STARTTLS", &line, NULL) == 0 &&
					   strncasecmp(line.s, "a2 OK", 5) == 0,
				   "STARTTLS", &line, imap_login_random);
	} else {
		probe_tls_session(ctx, c.ssl, KIND_CLIENT, service);
		if (ctx->o->intrusive)
			imap_login_random(ctx, &c, service, "over TLS");
	}
	if (!c.err[0])
		imap_cmd(&c, "a9", "LOGOUT", &line, NULL);
	pconn_close(&c);
	if (starttls || pp->implicit_tls)
		probe_tls_checks(ctx, PROTO_IMAP, pp, KIND_CLIENT, service);
out:
	pconn_close(&c);
	strbuf_free(&line);
	strbuf_free(&caps);
	strbuf_free(&ev);
}

static int pop3_ok(struct pconn *c, const char *cmd, struct strbuf *line)
{
	if (pconn_printf(c, "%s\r\n", cmd) != 0 || pconn_line(c, line, MB_LINE_MAX) != 0)
		return -1;
	return strncmp(line->s, "+OK", 3) == 0;
}

static void pop3_login_random(struct probe_ctx *ctx, struct pconn *c, const char *service,
			      const char *when)
{
	char user[16], pass[20], cmd[64];
	probe_random_name(user, 10);
	probe_random_name(pass, 16);
	struct strbuf line = STRBUF_INIT;
	snprintf(cmd, sizeof cmd, "USER %s", user);
	if (pop3_ok(c, cmd, &line) == 1) {
		snprintf(cmd, sizeof cmd, "PASS %s", pass);
		if (pop3_ok(c, cmd, &line) == 1) {
			struct strbuf ev = STRBUF_INIT;
			strbuf_addf(&ev, "%s: USER %s, PASS %s -> ", when, user, pass);
			mb_anypass(ctx, "pop3.anypassword", service, &ev, &line);
			strbuf_free(&ev);
		}
	}
	strbuf_free(&line);
}

void probe_pop3_port(struct probe_ctx *ctx, const struct probe_port *pp)
{
	char service[32];
	snprintf(service, sizeof service, "pop3/%d", pp->port);
	struct pconn c;
	struct strbuf line = STRBUF_INIT, caps = STRBUF_INIT, ev = STRBUF_INIT;
	if (mb_greet(ctx, pp, &c, service, "pop3.banner", "a POP3", "+OK", strncmp, &line, &ev) != 0)
		goto out;
	int ok = pop3_ok(&c, "CAPA", &line);
	if (ok < 0) {
		probe_error(ctx->r, "%s: CAPA: %s", service, c.err);
		goto out;
	}
	for (int i = 0; ok == 1 && i < 1000; i++) {
		if (pconn_line(&c, &line, MB_LINE_MAX) != 0) {
			probe_error(ctx->r, "%s: CAPA: %s", service, c.err);
			goto out;
		}
		if (strcmp(line.s, ".") == 0)
			break;
		strbuf_addf(&caps, "%s%s", caps.len ? "\n" : "", line.s);
	}
	const char *cs = strbuf_str(&caps);
	int stls = has_word(cs, "STLS");
	int user = has_word(cs, "USER");
	const char *sasl = strcasestr(cs, "SASL ");
	int plain_sasl = sasl && (sasl == cs || sasl[-1] == '\n') && sasl[5] && sasl[5] != '\n';
	if (!pp->implicit_tls) {
		strbuf_reset(&ev);
		strbuf_adds(&ev, "CAPA before TLS: ");
		probe_printable(&ev, cs, caps.len, 300);
		if (!stls)
			probe_add(ctx->r, "pop3.tls.missing", PROBE_HIGH, service,
				  "STLS is not offered: passwords travel in cleartext", ev.s, FIX_TLS);
		if (user || plain_sasl)
			probe_add(ctx->r, "pop3.plaintext.login", PROBE_HIGH, service,
				  "USER/PASS or SASL logins are offered before TLS", ev.s, FIX_PLAINTEXT);
		if ((user || !stls) && ctx->o->intrusive)
			pop3_login_random(ctx, &c, service, "before TLS");
		else if (stls)
			mb_upgrade(ctx, &c, service, pop3_ok(&c, "STLS", &line) == 1, "STLS", &line,
				   pop3_login_random);
	} else {
		probe_tls_session(ctx, c.ssl, KIND_CLIENT, service);
		if (ctx->o->intrusive)
			pop3_login_random(ctx, &c, service, "over TLS");
	}
	if (!c.err[0])
		pop3_ok(&c, "QUIT", &line);
	pconn_close(&c);
	if (stls || pp->implicit_tls)
		probe_tls_checks(ctx, PROTO_POP3, pp, KIND_CLIENT, service);
out:
	pconn_close(&c);
	strbuf_free(&line);
	strbuf_free(&caps);
	strbuf_free(&ev);
}
