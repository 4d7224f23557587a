/*
 * probe - `mxjail probe` driver and report: resolves the host once, checks
 * the source address, runs the SMTP, IMAP and POP3 dialogues on the ports
 * asked for, and formats the findings as a table grouped by severity or as
 * JSON.
 *
 * Interface: probe.h. SECURITY: the probe connects only to the one address
 * resolved here (every connection goes through pconn_open with ctx->addr),
 * pauses between its own connections, and keeps the relay, enumeration and
 * login tests behind o->intrusive.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/evp.h>

#include "core/xmalloc.h"
#include "probe/probe_int.h"

const char *probe_sev_name(enum probe_sev s)
{
	static const char *n[] = {"high", "medium", "low", "info"};
	return s <= PROBE_INFO ? n[s] : "?";
}

void probe_add(struct probe_report *r, const char *id, enum probe_sev sev, const char *service,
	       const char *title, const char *evidence, const char *fix)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].id, id) == 0 && strcmp(r->v[i].service, service) == 0)
			return; /* one finding per id and service: the first proof is enough */
	r->v = xgrow(r->v, &r->cap, r->n, sizeof *r->v);
	struct probe_finding *f = &r->v[r->n++];
	f->id = xstrdup(id);
	f->sev = sev;
	f->service = xstrdup(service);
	f->title = xstrdup(title);
	f->evidence = xstrdup(evidence ? evidence : "");
	f->fix = xstrdup(fix ? fix : "");
}

static void add_text(char ***v, size_t *n, size_t *cap, const char *fmt, va_list ap)
{
	char buf[1024];
	vsnprintf(buf, sizeof buf, fmt, ap);
	*v = xgrow(*v, cap, *n, sizeof **v);
	(*v)[(*n)++] = xstrdup(buf);
}

void probe_warn(struct probe_report *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_text(&r->warnings, &r->nwarn, &r->warncap, fmt, ap);
	va_end(ap);
}

void probe_error(struct probe_report *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_text(&r->errors, &r->nerr, &r->errcap, fmt, ap);
	va_end(ap);
}

const struct probe_finding *probe_find(const struct probe_report *r, const char *id,
				       const char *service)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].id, id) == 0 && (!service || strcmp(r->v[i].service, service) == 0))
			return &r->v[i];
	return NULL;
}

size_t probe_count(const struct probe_report *r, enum probe_sev sev)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += r->v[i].sev == sev;
	return n;
}

void probe_report_free(struct probe_report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].id);
		free(r->v[i].service);
		free(r->v[i].title);
		free(r->v[i].evidence);
		free(r->v[i].fix);
	}
	for (size_t i = 0; i < r->nwarn; i++)
		free(r->warnings[i]);
	for (size_t i = 0; i < r->nerr; i++)
		free(r->errors[i]);
	free(r->v);
	free(r->warnings);
	free(r->errors);
	free(r->host);
	free(r->address);
	memset(r, 0, sizeof *r);
}

void probe_report_text(const struct probe_report *r, struct strbuf *out)
{
	strbuf_addf(out, "mxjail probe %s (%s)\n", r->host ? r->host : "?",
		    r->address ? r->address : "?");
	for (size_t i = 0; i < r->nwarn; i++)
		strbuf_addf(out, "warning: %s\n", r->warnings[i]);
	for (int s = PROBE_HIGH; s <= PROBE_INFO; s++) {
		size_t n = probe_count(r, (enum probe_sev)s);
		if (!n)
			continue;
		strbuf_addf(out, "\n%s (%zu)\n", probe_sev_name((enum probe_sev)s), n);
		for (size_t i = 0; i < r->n; i++) {
			const struct probe_finding *f = &r->v[i];
			if ((int)f->sev != s)
				continue;
			strbuf_addf(out, "  %-10s %-24s %s\n", f->service, f->id, f->title);
			if (f->evidence[0])
				strbuf_addf(out, "             seen: %s\n", f->evidence);
			if (f->fix[0])
				strbuf_addf(out, "             fix:  %s\n", f->fix);
		}
	}
	for (size_t i = 0; i < r->nerr; i++)
		strbuf_addf(out, "%serror: %s\n", i == 0 ? "\n" : "", r->errors[i]);
	strbuf_addf(out, "\nsummary: %zu high, %zu medium, %zu low, %zu info, %zu errors\n",
		    probe_count(r, PROBE_HIGH), probe_count(r, PROBE_MEDIUM),
		    probe_count(r, PROBE_LOW), probe_count(r, PROBE_INFO), r->nerr);
}

static void json_str(struct strbuf *b, const char *s)
{
	strbuf_add_json(b, s ? s : "", s ? strlen(s) : 0);
}

void probe_report_json(const struct probe_report *r, struct strbuf *out)
{
	strbuf_adds(out, "{\"host\":");
	json_str(out, r->host);
	strbuf_adds(out, ",\"address\":");
	json_str(out, r->address);
	strbuf_adds(out, ",\"findings\":[");
	for (size_t i = 0; i < r->n; i++) {
		const struct probe_finding *f = &r->v[i];
		strbuf_adds(out, i ? ",{\"id\":" : "{\"id\":");
		json_str(out, f->id);
		strbuf_addf(out, ",\"severity\":\"%s\",\"service\":", probe_sev_name(f->sev));
		json_str(out, f->service);
		strbuf_adds(out, ",\"title\":");
		json_str(out, f->title);
		strbuf_adds(out, ",\"evidence\":");
		json_str(out, f->evidence);
		strbuf_adds(out, ",\"fix\":");
		json_str(out, f->fix);
		strbuf_addc(out, '}');
	}
	strbuf_adds(out, "],\"warnings\":[");
	for (size_t i = 0; i < r->nwarn; i++) {
		if (i)
			strbuf_addc(out, ',');
		json_str(out, r->warnings[i]);
	}
	strbuf_adds(out, "],\"errors\":[");
	for (size_t i = 0; i < r->nerr; i++) {
		if (i)
			strbuf_addc(out, ',');
		json_str(out, r->errors[i]);
	}
	strbuf_addf(out, "],\"summary\":{\"high\":%zu,\"medium\":%zu,\"low\":%zu,\"info\":%zu}}\n",
		    probe_count(r, PROBE_HIGH), probe_count(r, PROBE_MEDIUM),
		    probe_count(r, PROBE_LOW), probe_count(r, PROBE_INFO));
}

int probe_parse_ports(const char *s, struct probe_port *out, size_t max)
{
	size_t n = 0;
	const char *p = s;
	while (*p) {
		char *end;
		if (!isdigit((unsigned char)*p))
			return -1;
		long v = strtol(p, &end, 10);
		if (v < 1 || v > 65535 || n >= max)
			return -1;
		int tls = v % 1000 == 465 || v % 1000 == 993 || v % 1000 == 995;
		if (*end == 's') {
			tls = 1;
			end++;
		}
		out[n].port = (int)v;
		out[n].implicit_tls = tls;
		n++;
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		p = end;
	}
	return n ? (int)n : -1;
}

/* Software names seen in greetings, matched as whole words without case. */
static const char *products[] = {"Postfix",   "Exim",      "Sendmail", "Microsoft", "Exchange",
				 "Dovecot",   "Courier",   "qmail",    "hMailServer", "Zimbra",
				 "MDaemon",   "Kerio",     "OpenSMTPD", "Haraka",  "Cyrus",
				 "Debian",    "Ubuntu",    "CentOS",   "Red Hat",  "FreeBSD",
				 "IceWarp",   "CommuniGate", "SmarterMail", "Axigen", "Lotus", NULL};

int probe_disclosure(const char *text, struct strbuf *what, int *has_version)
{
	*has_version = 0;
	int found = 0;
	for (size_t i = 0; products[i]; i++) {
		size_t l = strlen(products[i]);
		for (const char *p = strcasestr(text, products[i]); p; p = strcasestr(p + l, products[i])) {
			if ((p > text && isalnum((unsigned char)p[-1])) || isalnum((unsigned char)p[l]))
				continue;
			strbuf_addf(what, "%s%s", found ? ", " : "", products[i]);
			found = 1;
			/* "Postfix 3.7.11", "Exim 4.96", "Sendmail 8.17.1/8.17.1" */
			const char *q = p + l;
			while (*q == ' ' || *q == '/' || *q == '-' || *q == 'v' || *q == 'V')
				q++;
			if (isdigit((unsigned char)q[0])) {
				size_t k = 0;
				while (isdigit((unsigned char)q[k]) || q[k] == '.')
					k++;
				if (memchr(q, '.', k)) {
					strbuf_addf(what, " %.*s", (int)k, q);
					*has_version = 1;
				}
			}
			break;
		}
	}
	return found;
}

void probe_random_name(char *out, size_t n)
{
	unsigned char r[64];
	if (n > sizeof r)
		n = sizeof r;
	if (getrandom(r, n, 0) != (ssize_t)n)
		for (size_t i = 0; i < n; i++)
			r[i] = (unsigned char)(i * 7 + 3);
	for (size_t i = 0; i < n; i++)
		out[i] = (char)('a' + r[i] % 26);
	out[n] = '\0';
}

void probe_base64(struct strbuf *out, const char *s, size_t n)
{
	size_t need = 4 * ((n + 2) / 3) + 1;
	unsigned char *b = xmalloc(need);
	int k = EVP_EncodeBlock(b, (const unsigned char *)s, (int)n);
	strbuf_add(out, (char *)b, k > 0 ? (size_t)k : 0);
	free(b);
}

void probe_same_ip_warning(struct probe_ctx *ctx, const struct pconn *c, const char *service)
{
	if (!c->same_ip || ctx->same_ip_warned)
		return;
	ctx->same_ip_warned = 1;
	probe_warn(ctx->r,
		   "%s: probing from the server's own address %s: Dovecot treats such clients as "
		   "secured (plaintext logins allowed) and Postfix may trust them through "
		   "mynetworks; use --source with another local address to see what strangers see",
		   service, ctx->addrstr);
}

static int resolve(const char *host, int passive, struct sockaddr_storage *ss, socklen_t *len,
		   int family, char *err, size_t errsz)
{
	struct addrinfo hints = {0}, *res = NULL;
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_NUMERICHOST : 0;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(err, errsz, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int probe_run(const struct probe_opts *o, struct probe_report *r)
{
	struct probe_ctx ctx;
	memset(&ctx, 0, sizeof ctx);
	ctx.o = o;
	ctx.r = r;
	r->host = xstrdup(o->host);
	char err[300];
	if (resolve(o->host, 0, &ctx.addr, &ctx.addrlen, AF_UNSPEC, err, sizeof err) != 0) {
		probe_error(r, "cannot resolve %s", err);
		return -1;
	}
	const void *a = ctx.addr.ss_family == AF_INET
				? (const void *)&((struct sockaddr_in *)&ctx.addr)->sin_addr
				: (const void *)&((struct sockaddr_in6 *)&ctx.addr)->sin6_addr;
	inet_ntop(ctx.addr.ss_family, a, ctx.addrstr, sizeof ctx.addrstr);
	r->address = xstrdup(ctx.addrstr);
	snprintf(ctx.addrlit, sizeof ctx.addrlit, "%s%s", ctx.addr.ss_family == AF_INET6 ? "IPv6:" : "",
		 ctx.addrstr);
	if (o->source) {
		if (resolve(o->source, 1, &ctx.src, &ctx.srclen, ctx.addr.ss_family, err,
			    sizeof err) != 0) {
			probe_error(r, "source address %s is not a numeric address of the same family "
				       "as %s", o->source, ctx.addrstr);
			return -1;
		}
	}
	if (o->domain)
		snprintf(ctx.domain, sizeof ctx.domain, "%s", o->domain);
	ctx.last_connect = -1e9;
	for (size_t i = 0; i < o->nsmtp; i++)
		probe_smtp_port(&ctx, &o->smtp[i]);
	for (size_t i = 0; i < o->nimap; i++)
		probe_imap_port(&ctx, &o->imap[i]);
	for (size_t i = 0; i < o->npop3; i++)
		probe_pop3_port(&ctx, &o->pop3[i]);
	return 0;
}
