/*
 * abuse - the probe's two SMTP abuse checks that go beyond RCPT, both only
 * with --intrusive: SMTP smuggling (does a bare LF end DATA?) and the
 * per-client connection limit (are simultaneous connections refused?).
 *
 * Interface: probe_smtp_smuggling() and probe_smtp_flood() (probe_int.h),
 * called by probe_smtp_port() after every other check of the port.
 *
 * Smuggling (CVE-2023-51764 and relatives): an outbound MTA that passes a
 * bare "<LF>.<LF>" through lets an attacker end one message and start a
 * second one inside it when the receiving server also takes that sequence
 * as the end of DATA. We test the receiving side directly: ONE message,
 * from the null sender (no bounce can go anywhere) to the target's own
 * postmaster (or --user), with a body that says what it is. Inside that one
 * DATA we send, in turn, text + bare end + "NOOP": a server that ends the
 * data there answers the message and then the smuggled NOOP; a safe server
 * keeps reading (the NOOP becomes message text), and we end the message
 * properly with <CR><LF>.<CR><LF>. Since DATA is never sent twice, at most
 * one message is ever accepted, whatever the server does.
 *
 * Flood: Postfix's anvil refuses the connection beyond
 * smtpd_client_connection_count_limit with "421 4.7.0 ... too many
 * connections from ...", a firewall connlimit refuses or drops the SYN. We
 * open up to o->flood connections one after the other (each through
 * pconn_open, so the pause between our connections applies), keep them
 * open, stop at the first one that is not greeted, and close them all.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/xmalloc.h"
#include "probe/probe_int.h"

static const struct {
	const char *bytes, *name;
} bare_ends[] = {
	{"\n.\n", "<LF>.<LF>"},
	{"\n.\r\n", "<LF>.<CR><LF>"},
	{"\r\n.\n", "<CR><LF>.<LF>"},
};

/* Headers and the explanation of the test message, CRLF throughout, ending
 * at the start of a line. No line starts with a dot. */
static void test_message(struct strbuf *m, const char *helo, const char *rcpt)
{
	char date[64], id[20];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	probe_random_name(id, 16);
	strbuf_addf(m,
		    "From: mxjail probe <probe@%s>\r\n"
		    "To: <%s>\r\n"
		    "Subject: mxjail probe: SMTP smuggling test message\r\n"
		    "Date: %s\r\n"
		    "Message-ID: <%s.smuggling@%s>\r\n"
		    "Auto-Submitted: auto-generated\r\n"
		    "X-Mxjail-Probe: smtp-smuggling\r\n"
		    "\r\n"
		    "This is a test message sent by `mxjail probe --intrusive` to check\r\n"
		    "whether this server takes a bare LF line end as the end of the DATA\r\n"
		    "phase (SMTP smuggling, CVE-2023-51764). Nothing needs to be done\r\n"
		    "with it. If the lines below (parts 1 to 3, each followed by NOOP)\r\n"
		    "are all in this message, the server waited for the standard\r\n"
		    "<CR><LF>.<CR><LF>: that is the safe behaviour.\r\n"
		    "\r\n",
		    helo, rcpt, date, id, helo);
}

void probe_smtp_smuggling(struct probe_ctx *ctx, const struct probe_port *pp,
			  const char *service)
{
	/* Only ever the target's own mailbox: --user (a local part at the
	 * target's domain, or a full address the user says is theirs), else
	 * postmaster, which every domain must accept (RFC 5321 4.5.1). */
	char rcpt[600];
	const char *u = ctx->o->user;
	if (u && strchr(u, '@'))
		snprintf(rcpt, sizeof rcpt, "%s", u);
	else
		snprintf(rcpt, sizeof rcpt, "%s@%s", u ? u : "postmaster", ctx->domain);

	if (strpbrk(rcpt, "<> \t\r\n")) {
		probe_error(ctx->r, "%s: smuggling test: '%s' is not a plain address", service, rcpt);
		return;
	}
	struct pconn c;
	if (probe_smtp_start(ctx, pp, &c, 1) != 0) {
		probe_error(ctx->r, "%s: smuggling test: %s", service, c.err);
		pconn_close(&c);
		return;
	}
	struct strbuf ev = STRBUF_INIT, m = STRBUF_INIT;
	char stage[640] = "MAIL FROM:<>";
	int code = pconn_smtp_cmd(&c, "MAIL FROM:<>");
	if (code == 250) {
		snprintf(stage, sizeof stage, "RCPT TO:<%s>", rcpt);
		code = pconn_smtp_cmd(&c, "%s", stage);
	}
	if (code == 250 || code == 251) {
		snprintf(stage, sizeof stage, "DATA");
		code = pconn_smtp_cmd(&c, "DATA");
	}
	if (code != 354) {
		if (code < 0) {
			probe_error(ctx->r, "%s: smuggling test: %s", service, c.err);
		} else {
			strbuf_addf(&ev, "%s -> ", stage);
			probe_smtp_evidence(&ev, &c.reply);
			probe_add(ctx->r, "smtp.smuggling.untested", PROBE_INFO, service,
				  "SMTP smuggling not tested: no test message accepted without "
				  "authentication",
				  ev.s, "");
		}
		goto out;
	}

	test_message(&m, ctx->o->helo, rcpt);
	if (pconn_write(&c, m.s, m.len) != 0) {
		probe_error(ctx->r, "%s: smuggling test: %s", service, c.err);
		goto out;
	}
	/* Long enough for a server to answer the end of data (the queue file
	 * is written first); a later answer is still caught by the next wait
	 * or by the final end of data. */
	double w = c.rtimeout < 2 ? c.rtimeout : 2;
	size_t nb = sizeof bare_ends / sizeof bare_ends[0];
	int answered = 0; /* the server reacted to a bare end (or closed) */
	for (size_t i = 0; i < nb && !answered; i++) {
		strbuf_reset(&m);
		strbuf_addf(&m, "part %zu of the test, a bare %s follows", i + 1, bare_ends[i].name);
		strbuf_adds(&m, bare_ends[i].bytes);
		strbuf_adds(&m, "NOOP\r\n");
		if (pconn_write(&c, m.s, m.len) != 0) {
			strbuf_addf(&ev, "text, then %s and NOOP: %s", bare_ends[i].name, c.err);
			probe_add(ctx->r, "smtp.smuggling.refused", PROBE_INFO, service,
				  "the server dropped the session at a bare LF in DATA (no SMTP "
				  "smuggling)",
				  ev.s, "");
			answered = 1;
			break;
		}
		int wr = pconn_wait(&c, w);
		if (wr == 0)
			continue;
		answered = 1;
		if (wr < 0) {
			strbuf_addf(&ev, "text, then %s and NOOP: %s", bare_ends[i].name,
				    c.err[0] ? c.err : "the server closed the connection");
			probe_add(ctx->r, "smtp.smuggling.refused", PROBE_INFO, service,
				  "the server dropped the session at a bare LF in DATA (no SMTP "
				  "smuggling)",
				  ev.s, "");
			break;
		}
		code = pconn_smtp(&c);
		if (code < 0) {
			probe_error(ctx->r, "%s: smuggling test: %s", service, c.err);
			break;
		}
		strbuf_addf(&ev, "DATA text, then %s and NOOP -> ", bare_ends[i].name);
		probe_smtp_evidence(&ev, &c.reply);
		if (code / 100 != 2) {
			probe_add(ctx->r, "smtp.smuggling.refused", PROBE_INFO, service,
				  "the server refused a bare LF in DATA (no SMTP smuggling)", ev.s, "");
			break;
		}
		/* The data ended at the bare LF: the NOOP was read as a command. */
		int noop = 0;
		if (pconn_wait(&c, w) == 1 && pconn_smtp(&c) > 0) {
			strbuf_adds(&ev, "; the smuggled NOOP -> ");
			probe_smtp_evidence(&ev, &c.reply);
			noop = 1;
		}
		char title[200];
		snprintf(title, sizeof title,
			 "a bare %s ends DATA%s: SMTP smuggling (CVE-2023-51764) possible",
			 bare_ends[i].name, noop ? " and the command after it is answered" : "");
		probe_add(ctx->r, "smtp.smuggling", PROBE_HIGH, service, title, ev.s,
			  "postconf -e 'smtpd_forbid_bare_newline = normalize' "
			  "'smtpd_forbid_bare_newline_exclusions = $mynetworks' (Postfix 3.7.10+, "
			  "3.8.5+, the default from 3.9; 3.7.9 and 3.8.4 know only 'yes'); clients "
			  "in mynetworks stay exempt, so keep it to your own hosts");
		break;
	}
	if (!answered) {
		code = pconn_smtp_cmd(&c, ".");
		if (code < 0) {
			probe_error(ctx->r, "%s: smuggling test: end of data: %s", service, c.err);
		} else {
			strbuf_adds(&ev, "DATA text with");
			for (size_t i = 0; i < nb; i++)
				strbuf_addf(&ev, "%s %s", i ? "," : "", bare_ends[i].name);
			strbuf_addf(&ev, ", each followed by NOOP: no answer within %.0f s; "
					 "<CR><LF>.<CR><LF> -> ", w);
			probe_smtp_evidence(&ev, &c.reply);
			if (code / 100 == 2)
				probe_add(ctx->r, "smtp.smuggling.guarded", PROBE_INFO, service,
					  "a bare LF does not end DATA (no SMTP smuggling)", ev.s, "");
			else
				probe_add(ctx->r, "smtp.smuggling.refused", PROBE_INFO, service,
					  "a message with bare LFs is refused (no SMTP smuggling)",
					  ev.s, "");
		}
	}
out:
	probe_smtp_quit(&c);
	strbuf_free(&ev);
	strbuf_free(&m);
}

void probe_smtp_flood(struct probe_ctx *ctx, const struct probe_port *pp, enum probe_kind kind,
		      const char *service)
{
	size_t n = ctx->o->flood;
	if (n == 0)
		return;
	struct pconn *v = xcalloc(n, sizeof *v);
	size_t held = 0; /* connections greeted with 220 and still open */
	struct strbuf ev = STRBUF_INIT;
	int limited = 0;
	for (size_t i = 0; i < n; i++) {
		struct pconn *c = &v[i];
		if (probe_smtp_start(ctx, pp, c, 0) == 0) {
			held++;
			continue;
		}
		if (i == 0) {
			probe_error(ctx->r, "%s: connection limit test: %s", service, c->err);
		} else {
			limited = 1;
			strbuf_addf(&ev, "%zu connections from %s open and greeted; connection %zu: ",
				    held, ctx->o->source ? ctx->o->source : "this host", i + 1);
			if (c->reply.code > 0 && c->reply.code != 220)
				probe_smtp_evidence(&ev, &c->reply);
			else
				strbuf_adds(&ev, c->err);
		}
		pconn_close(c);
		break;
	}
	for (size_t i = 0; i < held; i++)
		probe_smtp_quit(&v[i]);
	if (limited) {
		probe_add(ctx->r, "smtp.flood.limited", PROBE_INFO, service,
			  "simultaneous connections from one address are limited", ev.s, "");
	} else if (held == n) {
		strbuf_addf(&ev, "%zu connections from %s open at once, every one greeted with 220",
			    n, ctx->o->source ? ctx->o->source : "this host");
		char title[160];
		snprintf(title, sizeof title,
			 "no limit on simultaneous connections from one address (%zu accepted)", n);
		probe_add(ctx->r, "smtp.flood.unlimited", kind == KIND_MX ? PROBE_LOW : PROBE_MEDIUM,
			  service, title, ev.s,
			  "postconf -e 'smtpd_client_connection_count_limit = 10' "
			  "'smtpd_client_connection_rate_limit = 30' (enforced by anvil; clients in "
			  "smtpd_client_event_limit_exceptions, $mynetworks by default, are exempt), "
			  "or postscreen in front of port 25");
	}
	strbuf_free(&ev);
	free(v);
}
