/*
 * audit - the list of audit checks, the report (findings, notes, score) and
 * its text and JSON forms, plus the small helpers the check modules share
 * (network width, TLS protocol lists, DH size, key files).
 *
 * Interface: see audit.h. Findings are kept in the order added; the text form
 * groups them by severity, high first. The score is 100 minus 25 per high,
 * 10 per medium and 3 per low finding, never below 0: a rough "how far from
 * done" number, while the exit status (any high) is what cron and CI use.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "net/addr.h"

const struct audit_check audit_checks[] = {
	/* Postfix: relay control */
	{"PF-RELAY-MYNETWORKS", AUDIT_HIGH, "mynetworks wider than the host or LAN"},
	{"PF-RELAY-MYNETWORKS-STYLE", AUDIT_MEDIUM, "mynetworks unset with style subnet or class"},
	{"PF-RELAY-OPEN", AUDIT_HIGH, "no reject_unauth_destination before a permit"},
	{"PF-RELAY-POLICY-FIRST", AUDIT_MEDIUM, "access table or policy service before relay control"},
	{"PF-RESTR-DEAD-AFTER-PERMIT", AUDIT_MEDIUM, "permit in the middle of a restriction list"},
	{"PF-RELAY-MX-BACKUP", AUDIT_MEDIUM, "permit_mx_backup without permit_mx_backup_networks"},
	{"PF-RELAY-DOMAINS-NO-MAPS", AUDIT_MEDIUM, "relay_domains without relay_recipient_maps"},
	/* Postfix: enumeration and disclosure */
	{"PF-ENUM-VRFY", AUDIT_MEDIUM, "VRFY enabled"},
	{"PF-ENUM-UNLISTED", AUDIT_MEDIUM, "unknown recipients accepted"},
	{"PF-ENUM-TABLE-NAME", AUDIT_LOW, "reject text names the user table"},
	{"PF-ENUM-UNIX-ACCOUNTS", AUDIT_INFO, "every Unix account is a mail address"},
	{"PF-BANNER-VERSION", AUDIT_MEDIUM, "greeting shows the version"},
	{"PF-BANNER-PRODUCT", AUDIT_LOW, "greeting names the product or OS"},
	/* Postfix: AUTH and TLS */
	{"PF-AUTH-CLEARTEXT", AUDIT_HIGH, "AUTH offered before TLS"},
	{"PF-TLS-SUBMISSION", AUDIT_MEDIUM, "submission without mandatory TLS"},
	{"PF-TLS-OFF", AUDIT_MEDIUM, "no STARTTLS on an MX port"},
	{"PF-TLS-ENCRYPT-MX", AUDIT_MEDIUM, "TLS required on an MX port"},
	{"PF-TLS-NO-CERT", AUDIT_MEDIUM, "TLS enabled without a certificate"},
	{"PF-TLS-PROTOCOLS", AUDIT_MEDIUM, "SSLv2/SSLv3/TLSv1/TLSv1.1 allowed"},
	{"PF-TLS-CIPHERS", AUDIT_MEDIUM, "export, low or null cipher grade"},
	{"PF-TLS-DH", AUDIT_HIGH, "DH parameters below 2048 bits (or custom)"},
	{"PF-TLS-KEY-PERMS", AUDIT_HIGH, "TLS private key readable by others"},
	{"PF-SASL-ANONYMOUS", AUDIT_HIGH, "SASL without noanonymous"},
	{"PF-LIMIT-AUTH-RATE", AUDIT_MEDIUM, "no AUTH rate limit"},
	{"PF-RELAYHOST-SASL-TLS", AUDIT_HIGH, "relayhost password over opportunistic TLS"},
	{"PF-SASL-PASSWD-PERMS", AUDIT_HIGH, "relayhost password table readable by others"},
	/* Postfix: abuse limits */
	{"PF-HELO-REQUIRED", AUDIT_LOW, "HELO not required"},
	{"PF-LIMIT-CONN-RATE", AUDIT_LOW, "no connection rate limit"},
	{"PF-LIMIT-CONN-COUNT", AUDIT_LOW, "connection count limit off or raised"},
	{"PF-LIMIT-ERRORS", AUDIT_LOW, "error tarpit off or loose"},
	{"PF-PIPELINING", AUDIT_LOW, "unauthorised pipelining not rejected"},
	{"PF-LIMIT-SIZE", AUDIT_LOW, "message size unlimited or huge"},
	{"PF-LIMIT-RECIPIENTS", AUDIT_LOW, "recipient limit off or raised"},
	/* Postfix: sender checks and their opposite */
	{"PF-SENDER-NON-FQDN", AUDIT_LOW, "no reject_non_fqdn_sender"},
	{"PF-SENDER-UNKNOWN-DOMAIN", AUDIT_LOW, "no reject_unknown_sender_domain"},
	{"PF-HELO-NON-FQDN", AUDIT_LOW, "no reject_non_fqdn_helo_hostname"},
	{"PF-HELO-INVALID", AUDIT_LOW, "no reject_invalid_helo_hostname"},
	{"PF-REJECT-UNKNOWN-CLIENT", AUDIT_MEDIUM, "reject_unknown_client_hostname on port 25"},
	{"PF-RBL-DEAD", AUDIT_HIGH, "dead or world-listing DNSBL"},
	{"PF-RBL-UNFILTERED", AUDIT_MEDIUM, "Spamhaus without a reply filter"},
	/* Postfix: host role, content checks, protocol */
	{"PF-INET-SENDONLY", AUDIT_MEDIUM, "send-only host listening on the network"},
	{"PF-HEADER-CHECKS-NEVER", AUDIT_MEDIUM, "header_checks rule that can never match"},
	{"PF-HEADER-CHECKS-ALL", AUDIT_HIGH, "header_checks rule that matches everything"},
	{"PF-HEADER-CHECKS-UNREADABLE", AUDIT_MEDIUM, "header_checks table missing"},
	{"PF-SMUGGLING", AUDIT_MEDIUM, "SMTP smuggling not prevented"},
	{"PF-XCLIENT-HOSTS", AUDIT_HIGH, "XCLIENT allowed for a network"},
	{"PF-XFORWARD-HOSTS", AUDIT_MEDIUM, "XFORWARD allowed for a network"},
	{"PF-COMPAT-LEVEL", AUDIT_LOW, "compatibility_level below 2"},
	/* Dovecot */
	{"DC-AUTH-PLAINTEXT", AUDIT_HIGH, "cleartext authentication allowed without TLS"},
	{"DC-SSL-OFF", AUDIT_HIGH, "TLS disabled"},
	{"DC-SSL-MIN-PROTOCOL", AUDIT_MEDIUM, "ssl_min_protocol below TLSv1.2"},
	{"DC-SSL-CIPHERS", AUDIT_MEDIUM, "weak ssl_cipher_list"},
	{"DC-SSL-DH", AUDIT_HIGH, "ssl_dh below 2048 bits"},
	{"DC-SSL-KEY-PERMS", AUDIT_HIGH, "ssl_key readable by others"},
	{"DC-PASSDB-NOPASSWORD", AUDIT_HIGH, "static nopassword passdb without a real backend"},
	{"DC-PASSDB-STATIC-PASSWORD", AUDIT_HIGH, "one static password for every user"},
	{"DC-LISTEN-ALL", AUDIT_LOW, "listening on all addresses"},
	{"DC-AUTH-DEBUG-PASSWORDS", AUDIT_HIGH, "auth_debug_passwords logs passwords"},
	{"DC-AUTH-VERBOSE-PASSWORDS", AUDIT_HIGH, "auth_verbose_passwords logs passwords"},
	{"DC-AUTH-VERBOSE", AUDIT_LOW, "auth_verbose/auth_debug on"},
	{"DC-TRUSTED-NETWORKS", AUDIT_HIGH, "login_trusted_networks too wide"},
	{"DC-AUTH-ANONYMOUS", AUDIT_HIGH, "ANONYMOUS mechanism enabled"},
	{"DC-AUTH-FAILURE-DELAY", AUDIT_MEDIUM, "no delay after failed logins"},
	/* mxjail */
	{"MX-CONFIG-ERRORS", AUDIT_HIGH, "mxjail configuration has errors"},
	{"MX-NO-JAILS", AUDIT_MEDIUM, "no jail enabled"},
	{"MX-LOGPATH-MISSING", AUDIT_HIGH, "jail reads a log file that does not exist"},
	{"MX-POSTFIX-JOURNAL-ONLY", AUDIT_HIGH, "Postfix logs only to the journal, jail reads a file"},
	{"MX-POSTFIX-LOGPATH-MISMATCH", AUDIT_MEDIUM, "jail does not read Postfix's maillog_file"},
	{"MX-NO-SASL-JAIL", AUDIT_MEDIUM, "no jail for SASL failures"},
	{"MX-NO-DOVECOT-JAIL", AUDIT_MEDIUM, "no jail for Dovecot logins"},
	{"MX-IGNOREIP-WIDE", AUDIT_MEDIUM, "ignoreip exempts a wide network"},
};
const size_t audit_ncheck = sizeof audit_checks / sizeof audit_checks[0];

#define AUDIT_MAX_FINDINGS 10000 /* a hostile config cannot grow the report forever */
#define AUDIT_MAX_WHERE 4096

const char *audit_sev_name(enum audit_sev sev)
{
	static const char *const n[] = {"high", "medium", "low", "info"};
	return (unsigned)sev < 4 ? n[sev] : "info";
}

void audit_add(struct audit_report *r, const char *id, enum audit_sev sev, const char *where,
	       const char *seen, const char *why, const char *fix)
{
	for (size_t i = 0; i < r->n; i++) {
		struct audit_finding *f = &r->v[i];
		if (strcmp(f->id, id) == 0 && strcmp(f->seen, seen) == 0 && f->sev == sev) {
			if (!strstr(f->where, where) && strlen(f->where) < AUDIT_MAX_WHERE) {
				char *w = xasprintf("%s, %s", f->where, where);
				free(f->where);
				f->where = w;
			}
			return;
		}
	}
	if (r->n >= AUDIT_MAX_FINDINGS)
		return;
	r->v = xgrow(r->v, &r->cap, r->n, sizeof *r->v);
	struct audit_finding *f = &r->v[r->n++];
	f->id = xstrdup(id);
	f->sev = sev;
	f->where = xstrdup(where);
	f->seen = xstrdup(seen);
	f->why = xstrdup(why);
	f->fix = xstrdup(fix);
}

void audit_note(struct audit_report *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char buf[1024];
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < r->nnotes; i++)
		if (strcmp(r->notes[i], buf) == 0)
			return;
	if (r->nnotes >= 256)
		return;
	r->notes = xgrow(r->notes, &r->notescap, r->nnotes, sizeof *r->notes);
	r->notes[r->nnotes++] = xstrdup(buf);
}

const struct audit_finding *audit_find(const struct audit_report *r, const char *id)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].id, id) == 0)
			return &r->v[i];
	return NULL;
}

size_t audit_count(const struct audit_report *r, enum audit_sev sev)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += r->v[i].sev == sev;
	return n;
}

int audit_score(const struct audit_report *r)
{
	long s = 100 - 25 * (long)audit_count(r, AUDIT_HIGH) - 10 * (long)audit_count(r, AUDIT_MEDIUM) -
		 3 * (long)audit_count(r, AUDIT_LOW);
	return s < 0 ? 0 : (int)s;
}

void audit_format_text(const struct audit_report *r, struct strbuf *out)
{
	static const char *const head[] = {"HIGH", "MEDIUM", "LOW", "INFO"};
	for (int sev = AUDIT_HIGH; sev <= AUDIT_INFO; sev++) {
		size_t n = audit_count(r, (enum audit_sev)sev);
		if (!n)
			continue;
		strbuf_addf(out, "%s (%zu)\n", head[sev], n);
		for (size_t i = 0; i < r->n; i++) {
			const struct audit_finding *f = &r->v[i];
			if ((int)f->sev != sev)
				continue;
			strbuf_addf(out, "  %-28s %s\n", f->id, f->where);
			strbuf_addf(out, "      seen: %s\n      why:  %s\n      fix:  %s\n", f->seen,
				    f->why, f->fix);
		}
		strbuf_addc(out, '\n');
	}
	if (r->n == 0)
		strbuf_adds(out, "no findings\n\n");
	for (size_t i = 0; i < r->nnotes; i++)
		strbuf_addf(out, "note: %s\n", r->notes[i]);
	strbuf_addf(out, "%sscore: %d/100 (%zu high, %zu medium, %zu low, %zu info)\n",
		    r->nnotes ? "\n" : "", audit_score(r), audit_count(r, AUDIT_HIGH),
		    audit_count(r, AUDIT_MEDIUM), audit_count(r, AUDIT_LOW), audit_count(r, AUDIT_INFO));
}

static void json_str(struct strbuf *out, const char *key, const char *v, int comma)
{
	strbuf_addf(out, "\"%s\":", key);
	strbuf_add_json(out, v, strlen(v));
	if (comma)
		strbuf_addc(out, ',');
}

void audit_format_json(const struct audit_report *r, struct strbuf *out)
{
	strbuf_addf(out, "{\"score\":%d,\"high\":%zu,\"medium\":%zu,\"low\":%zu,\"info\":%zu,",
		    audit_score(r), audit_count(r, AUDIT_HIGH), audit_count(r, AUDIT_MEDIUM),
		    audit_count(r, AUDIT_LOW), audit_count(r, AUDIT_INFO));
	strbuf_adds(out, "\"findings\":[");
	int first = 1;
	for (int sev = AUDIT_HIGH; sev <= AUDIT_INFO; sev++)
		for (size_t i = 0; i < r->n; i++) {
			const struct audit_finding *f = &r->v[i];
			if ((int)f->sev != sev)
				continue;
			strbuf_adds(out, first ? "{" : ",{");
			first = 0;
			json_str(out, "id", f->id, 1);
			json_str(out, "severity", audit_sev_name(f->sev), 1);
			json_str(out, "service", f->where, 1);
			json_str(out, "seen", f->seen, 1);
			json_str(out, "why", f->why, 1);
			json_str(out, "fix", f->fix, 0);
			strbuf_addc(out, '}');
		}
	strbuf_adds(out, "],\"notes\":[");
	for (size_t i = 0; i < r->nnotes; i++) {
		if (i)
			strbuf_addc(out, ',');
		strbuf_add_json(out, r->notes[i], strlen(r->notes[i]));
	}
	strbuf_adds(out, "]}\n");
}

void audit_report_free(struct audit_report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].id);
		free(r->v[i].where);
		free(r->v[i].seen);
		free(r->v[i].why);
		free(r->v[i].fix);
	}
	free(r->v);
	for (size_t i = 0; i < r->nnotes; i++)
		free(r->notes[i]);
	free(r->notes);
	memset(r, 0, sizeof *r);
}

/* ---- shared helpers ---- */

static int is_private(const struct addr *a)
{
	static const char *const nets[] = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
					   "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10",
					   "fc00::/7", "fe80::/10", "::1/128", NULL};
	for (size_t i = 0; nets[i]; i++) {
		struct addr n;
		if (addr_parse_cidr(nets[i], strlen(nets[i]), &n) == 0 && addr_in(&n, a))
			return 1;
	}
	return 0;
}

int audit_net_severity(const char *tok)
{
	char buf[128];
	size_t n = strlen(tok);
	if (n == 0 || n >= sizeof buf)
		return -1;
	/* "[2001:db8::]/32" -> "2001:db8::/32" */
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (tok[i] != '[' && tok[i] != ']')
			buf[k++] = tok[i];
	buf[k] = '\0';
	struct addr a;
	if (addr_parse_cidr(buf, k, &a) != 0)
		return -1;
	if (a.family == 4) {
		if (a.prefix < 8)
			return AUDIT_HIGH;
		if (a.prefix < 24 && !is_private(&a))
			return AUDIT_MEDIUM;
	} else {
		if (a.prefix < 4)
			return AUDIT_HIGH;
		if (a.prefix < 48 && !is_private(&a))
			return AUDIT_MEDIUM;
	}
	return -1;
}

unsigned audit_tls_allowed(const char *list)
{
	static const struct {
		const char *name;
		unsigned bit;
	} p[] = {{"SSLv2", AUDIT_SSLV2}, {"SSLv3", AUDIT_SSLV3}, {"TLSv1", AUDIT_TLSV1},
		 {"TLSv1.1", AUDIT_TLSV11}, {"TLSv1.2", AUDIT_TLSV12}, {"TLSv1.3", AUDIT_TLSV13}};
	const size_t np = sizeof p / sizeof p[0];
	/* With an empty list Postfix allows what OpenSSL allows; Debian's has no SSLv2/3. */
	unsigned all = AUDIT_TLSV1 | AUDIT_TLSV11 | AUDIT_TLSV12 | AUDIT_TLSV13 | AUDIT_SSLV3 | AUDIT_SSLV2;
	unsigned include = 0, allowed = all;
	int any = 0, have_include = 0;
	const char *s = list;
	while (*s) {
		while (*s && (*s == ' ' || *s == ',' || *s == ':' || *s == '\t'))
			s++;
		if (!*s)
			break;
		size_t len = strcspn(s, " ,:\t");
		char tok[32];
		snprintf(tok, sizeof tok, "%.*s", (int)len, s);
		s += len;
		any = 1;
		const char *name = tok;
		int op = 0; /* 0 include, '!' exclude, 'g' >=, 'l' <= */
		if (tok[0] == '!')
			op = '!', name = tok + 1;
		else if (tok[0] == '>' && tok[1] == '=')
			op = 'g', name = tok + 2;
		else if (tok[0] == '<' && tok[1] == '=')
			op = 'l', name = tok + 2;
		size_t idx = np;
		for (size_t i = 0; i < np; i++)
			if (strcasecmp(name, p[i].name) == 0)
				idx = i;
		if (idx == np)
			continue;
		if (op == '!')
			allowed &= ~p[idx].bit;
		else if (op == 'g')
			for (size_t i = 0; i < idx; i++)
				allowed &= ~p[i].bit;
		else if (op == 'l')
			for (size_t i = idx + 1; i < np; i++)
				allowed &= ~p[i].bit;
		else {
			include |= p[idx].bit;
			have_include = 1;
		}
	}
	if (!any)
		return AUDIT_TLSV1 | AUDIT_TLSV11 | AUDIT_TLSV12 | AUDIT_TLSV13;
	if (have_include)
		allowed &= include;
	return allowed;
}

#define AUDIT_MAX_PEM (1024 * 1024)

int audit_dh_bits(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > AUDIT_MAX_PEM)
		return -1;
	BIO *b = BIO_new_file(path, "r");
	if (!b)
		return -1;
	int bits = -1;
	EVP_PKEY *pk = PEM_read_bio_Parameters(b, NULL);
	if (pk) {
		if (EVP_PKEY_is_a(pk, "DH") || EVP_PKEY_is_a(pk, "DHX"))
			bits = EVP_PKEY_get_bits(pk);
		EVP_PKEY_free(pk);
	}
	BIO_free(b);
	return bits;
}

int audit_file_has_key(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char line[512];
	int found = 0;
	size_t total = 0;
	while (!found && total < AUDIT_MAX_PEM && fgets(line, sizeof line, f)) {
		total += strlen(line);
		if (strncmp(line, "-----BEGIN", 10) == 0 && strstr(line, "PRIVATE KEY-----"))
			found = 1;
	}
	fclose(f);
	return found;
}
