/*
 * checks_postfix - the Postfix audit checks: relay control, user enumeration,
 * AUTH and TLS, disclosure, abuse limits, sender/HELO checks and the tutorial
 * rules that reject real mail, header_checks tables, SMTP smuggling,
 * XCLIENT/XFORWARD, relayhost credentials and key file permissions.
 *
 * Interface: audit_postfix(pf, report). Settings that smtpd reads are judged
 * per smtpd service from master.cf (postconf -M, or the services named by
 * postconf -P plus the stock `smtp inet` one), because a -o override on
 * submission/587 or smtps/465 changes the answer; the role of a service
 * (port 25 MX, submission, implicit-TLS submission) sets the severity where
 * the norms differ (RFC 8996 on 587/465, opportunistic TLS on 25).
 *
 * SECURITY: files named by the configuration (DH parameters, keys, regexp
 * tables) are only stat()ed or read, never executed; tables are read up to a
 * size cap.
 */
#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

enum role { ROLE_MX, ROLE_SUBMISSION, ROLE_SMTPS };

struct svc_view {
	const struct pf_service *svc; /* NULL: main.cf view (no master.cf known) */
	enum role role;
	char where[160];
};

/* ---- helpers ---- */

static char *val(const struct pf_conf *pf, const struct pf_service *svc, const char *name)
{
	return pf_expand(pf, svc, name);
}

static int is_yes(const char *v)
{
	return strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0;
}

static int bool_param(const struct pf_conf *pf, const struct pf_service *svc, const char *name)
{
	char *v = val(pf, svc, name);
	int r = is_yes(v);
	free(v);
	return r;
}

static long num_param(const struct pf_conf *pf, const struct pf_service *svc, const char *name,
		      long dflt)
{
	char *v = val(pf, svc, name);
	char *end;
	long n = strtol(v, &end, 10);
	if (end == v)
		n = dflt;
	free(v);
	return n;
}

/* "postconf -P 'svc/type/name=value'" when the service overrides it, else -e. */
static char *fix_for(const struct pf_conf *pf, const struct pf_service *svc, const char *name,
		     const char *value)
{
	if (svc && kvlist_get(&svc->over, name))
		return xasprintf("postconf -P '%s/%s/%s=%s'", svc->name, svc->type, name, value);
	(void)pf;
	return xasprintf("postconf -e '%s = %s'", name, value);
}

static void add(struct audit_report *r, const char *id, enum audit_sev sev, const char *where,
		char *seen, const char *why, char *fix)
{
	audit_add(r, id, sev, where, seen, why, fix);
	free(seen);
	free(fix);
}

static char *seen1(const struct pf_conf *pf, const struct pf_service *svc, const char *name)
{
	const char *raw = pf_raw(pf, svc, name);
	char *x = val(pf, svc, name);
	char *s;
	if (raw && strcmp(raw, x) != 0)
		s = xasprintf("%s = %s (expands to: %s)", name, raw, x);
	else
		s = xasprintf("%s = %s%s", name, x, pf_is_explicit(pf, svc, name) ? "" : " (default)");
	free(x);
	return s;
}

/* Splits a Postfix list (blanks and commas separate; {...} is one item). */
struct words {
	char **w;
	size_t n, cap;
};

static void words_split(struct words *ws, const char *s)
{
	const char *p = s;
	while (*p) {
		while (*p && (isspace((unsigned char)*p) || *p == ','))
			p++;
		if (!*p)
			break;
		const char *st = p;
		if (*p == '{') {
			int depth = 0;
			for (; *p; p++) {
				if (*p == '{')
					depth++;
				else if (*p == '}' && --depth == 0) {
					p++;
					break;
				}
			}
		} else {
			while (*p && !isspace((unsigned char)*p) && *p != ',')
				p++;
		}
		if (ws->n < 4096) {
			ws->w = xgrow(ws->w, &ws->cap, ws->n, sizeof *ws->w);
			ws->w[ws->n++] = xstrndup(st, (size_t)(p - st));
		}
	}
}

static void words_free(struct words *ws)
{
	for (size_t i = 0; i < ws->n; i++)
		free(ws->w[i]);
	free(ws->w);
	memset(ws, 0, sizeof *ws);
}

/* A restriction with its table or domain argument, if it takes one. */
struct restr {
	char *name;
	char *arg; /* NULL when none */
};

struct restrs {
	struct restr *v;
	size_t n;
};

static int takes_arg(const char *n)
{
	static const char *const with_arg[] = {
		"reject_rbl_client", "reject_rhsbl_client", "reject_rhsbl_sender",
		"reject_rhsbl_helo", "reject_rhsbl_recipient", "reject_rhsbl_reverse_client",
		"permit_dnswl_client", "permit_rhswl_client", "reject_dnsbl_client", NULL};
	if (strncmp(n, "check_", 6) == 0)
		return 1;
	for (size_t i = 0; with_arg[i]; i++)
		if (strcmp(n, with_arg[i]) == 0)
			return 1;
	return 0;
}

static void restrs_parse(struct restrs *rs, const char *s)
{
	struct words ws = {0};
	words_split(&ws, s);
	rs->v = xcalloc(ws.n + 1, sizeof *rs->v);
	rs->n = 0;
	for (size_t i = 0; i < ws.n; i++) {
		struct restr *x = &rs->v[rs->n++];
		x->name = xstrdup(ws.w[i]);
		for (char *c = x->name; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (takes_arg(x->name) && i + 1 < ws.n)
			x->arg = xstrdup(ws.w[++i]);
	}
	words_free(&ws);
}

static void restrs_free(struct restrs *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->v[i].name);
		free(rs->v[i].arg);
	}
	free(rs->v);
	memset(rs, 0, sizeof *rs);
}

static int restrs_has(const struct restrs *rs, const char *name)
{
	for (size_t i = 0; i < rs->n; i++)
		if (strcmp(rs->v[i].name, name) == 0)
			return 1;
	return 0;
}

static const char *const restriction_lists[] = {
	"smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
	"smtpd_relay_restrictions", "smtpd_recipient_restrictions", "smtpd_data_restrictions",
	"smtpd_end_of_data_restrictions", "smtpd_etrn_restrictions", NULL};

/* 1 when some restriction list of the service contains name. */
static int any_list_has(const struct pf_conf *pf, const struct pf_service *svc, const char *name)
{
	int found = 0;
	for (size_t i = 0; restriction_lists[i] && !found; i++) {
		char *v = val(pf, svc, restriction_lists[i]);
		struct restrs rs;
		restrs_parse(&rs, v);
		found = restrs_has(&rs, name);
		restrs_free(&rs);
		free(v);
	}
	return found;
}

/* ---- services ---- */

static int port_of(const char *name)
{
	const char *c = strrchr(name, ':');
	const char *p = c ? c + 1 : name;
	if (strcmp(p, "smtp") == 0)
		return 25;
	if (strcmp(p, "submission") == 0)
		return 587;
	if (strcmp(p, "smtps") == 0 || strcmp(p, "submissions") == 0)
		return 465;
	char *end;
	long n = strtol(p, &end, 10);
	return (*p && !*end && n > 0 && n < 65536) ? (int)n : 0;
}

static void svc_describe(const struct pf_conf *pf, const struct pf_service *svc, struct svc_view *v)
{
	v->svc = svc;
	v->role = ROLE_MX;
	if (!svc) {
		snprintf(v->where, sizeof v->where, "main.cf (smtp/25)");
		return;
	}
	int port = port_of(svc->name);
	if (strcmp(svc->type, "pass") == 0 && strcmp(svc->name, "smtpd") == 0)
		port = 25; /* behind postscreen */
	if (port == 465 || bool_param(pf, svc, "smtpd_tls_wrappermode"))
		v->role = ROLE_SMTPS;
	else if (port == 587 || (port != 25 && kvlist_get(&svc->over, "smtpd_sasl_auth_enable") &&
				 bool_param(pf, svc, "smtpd_sasl_auth_enable")))
		v->role = ROLE_SUBMISSION;
	static const char *const rolename[] = {"MX", "submission", "implicit TLS submission"};
	if (port)
		snprintf(v->where, sizeof v->where, "%s/%s (port %d, %s)", svc->name, svc->type, port,
			 rolename[v->role]);
	else
		snprintf(v->where, sizeof v->where, "%s/%s (%s)", svc->name, svc->type,
			 rolename[v->role]);
}

/* The smtpd services to judge. */
static size_t smtpd_services(const struct pf_conf *pf, struct svc_view *out, size_t max)
{
	size_t n = 0;
	int have_smtp = 0;
	for (size_t i = 0; i < pf->nsvc && n < max; i++) {
		const struct pf_service *s = &pf->svc[i];
		/* services known only from postconf -P have no command: inet ones are smtpd */
		int smtpd = strcmp(s->command, "smtpd") == 0 ||
			    (!*s->command && strcmp(s->type, "inet") == 0);
		if (!smtpd)
			continue;
		if (strcmp(s->name, "smtp") == 0 || port_of(s->name) == 25)
			have_smtp = 1;
		svc_describe(pf, s, &out[n++]);
	}
	/* Without master.cf, the stock `smtp inet ... smtpd` is assumed to exist. */
	if (!pf->have_master && !have_smtp && n < max)
		svc_describe(pf, NULL, &out[n++]);
	return n;
}

/* ---- relay control ---- */

static const char *wide_net(const char *list, enum audit_sev *sev)
{
	static char found[128];
	struct words ws = {0};
	words_split(&ws, list);
	const char *res = NULL;
	*sev = AUDIT_INFO;
	for (size_t i = 0; i < ws.n; i++) {
		int s = audit_net_severity(ws.w[i]);
		if (s >= 0 && (!res || s < (int)*sev)) {
			snprintf(found, sizeof found, "%s", ws.w[i]);
			res = found;
			*sev = (enum audit_sev)s;
		}
	}
	words_free(&ws);
	return res;
}

static void check_mynetworks(const struct pf_conf *pf, struct audit_report *r)
{
	if (pf_is_explicit(pf, NULL, "mynetworks")) {
		char *v = val(pf, NULL, "mynetworks");
		enum audit_sev sev;
		const char *net = wide_net(v, &sev);
		if (net) {
			char *why = xasprintf("every client in %s may relay mail anywhere without "
					      "logging in: permit_mynetworks trusts the whole range",
					      net);
			add(r, "PF-RELAY-MYNETWORKS", sev, "main.cf", seen1(pf, NULL, "mynetworks"), why,
			    xstrdup("postconf -e 'mynetworks = 127.0.0.0/8 [::1]/128' (add only your "
				    "own LAN or host addresses)"));
			free(why);
		}
		free(v);
		return;
	}
	char *style = val(pf, NULL, "mynetworks_style");
	if (strcasecmp(style, "class") == 0 || strcasecmp(style, "subnet") == 0)
		add(r, "PF-RELAY-MYNETWORKS-STYLE",
		    strcasecmp(style, "class") == 0 ? AUDIT_HIGH : AUDIT_MEDIUM, "main.cf",
		    seen1(pf, NULL, "mynetworks_style"),
		    "without an explicit mynetworks Postfix trusts every host on the server's "
		    "subnet (or whole class), which at a hosting provider means other customers",
		    xstrdup("postconf -e 'mynetworks = 127.0.0.0/8 [::1]/128'"));
	free(style);
}

/* Result of walking one restriction list as an unauthenticated stranger. */
enum walk { WALK_PROTECTS, WALK_PERMITS, WALK_FALLS_THROUGH };

static enum walk walk_relay(const struct restrs *rs, const char **policy_before)
{
	*policy_before = NULL;
	for (size_t i = 0; i < rs->n; i++) {
		const char *n = rs->v[i].name;
		/* warn_if_reject turns the next restriction into a log line only */
		if (i > 0 && strcmp(rs->v[i - 1].name, "warn_if_reject") == 0)
			continue;
		if (strcmp(n, "reject_unauth_destination") == 0 ||
		    strcmp(n, "defer_unauth_destination") == 0 || strcmp(n, "reject") == 0 ||
		    strcmp(n, "defer") == 0)
			return WALK_PROTECTS;
		if (strcmp(n, "permit") == 0)
			return WALK_PERMITS;
		if (!*policy_before && (strcmp(n, "check_policy_service") == 0 ||
					(strncmp(n, "check_", 6) == 0 && strstr(n, "_access"))))
			*policy_before = n;
	}
	return WALK_FALLS_THROUGH;
}

static void check_relay(const struct pf_conf *pf, const struct svc_view *sv, struct audit_report *r)
{
	char *rel = val(pf, sv->svc, "smtpd_relay_restrictions");
	char *rcp = val(pf, sv->svc, "smtpd_recipient_restrictions");
	struct restrs a, b;
	restrs_parse(&a, rel);
	restrs_parse(&b, rcp);
	const char *pa, *pb;
	enum walk wa = walk_relay(&a, &pa), wb = walk_relay(&b, &pb);
	if (wa != WALK_PROTECTS && wb != WALK_PROTECTS) {
		char *seen = xasprintf("smtpd_relay_restrictions = %s; smtpd_recipient_restrictions = %s",
				       *rel ? rel : "(empty)", *rcp ? rcp : "(empty)");
		add(r, "PF-RELAY-OPEN", AUDIT_HIGH, sv->where, seen,
		    "neither restriction list reaches reject_unauth_destination before a permit, "
		    "so a stranger can send mail to any domain through this server (open relay)",
		    fix_for(pf, sv->svc, "smtpd_relay_restrictions",
			    "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"));
	}
	/* a table or policy server consulted before relay control can answer OK */
	const char *pol = wa == WALK_PROTECTS && !pa ? NULL : pa;
	const char *list = "smtpd_relay_restrictions";
	if (!pol && wa != WALK_PROTECTS) {
		pol = pb;
		list = "smtpd_recipient_restrictions";
	}
	if (pol) {
		char *seen = xasprintf("%s = %s", list, pol == pa ? rel : rcp);
		char *why = xasprintf("%s is consulted before reject_unauth_destination; an OK "
				      "answer from it relays mail for anyone",
				      pol);
		char *fix = xasprintf("move %s after reject_unauth_destination in %s", pol, list);
		add(r, "PF-RELAY-POLICY-FIRST", AUDIT_MEDIUM, sv->where, seen, why, fix);
		free(why);
	}
	if (restrs_has(&a, "permit_mx_backup") || restrs_has(&b, "permit_mx_backup")) {
		char *mx = val(pf, sv->svc, "permit_mx_backup_networks");
		if (!*mx)
			add(r, "PF-RELAY-MX-BACKUP", AUDIT_MEDIUM, sv->where,
			    xstrdup("permit_mx_backup with permit_mx_backup_networks = (empty)"),
			    "anyone can make this server a relay for a domain by publishing an MX "
			    "record that names it",
			    xstrdup("postconf -e 'permit_mx_backup_networks = <the primary MX "
				    "networks>' (or remove permit_mx_backup)"));
		free(mx);
	}
	restrs_free(&a);
	restrs_free(&b);
	free(rel);
	free(rcp);
}

static void check_dead_after_permit(const struct pf_conf *pf, const struct svc_view *sv,
				    struct audit_report *r)
{
	for (size_t l = 0; restriction_lists[l]; l++) {
		char *v = val(pf, sv->svc, restriction_lists[l]);
		struct restrs rs;
		restrs_parse(&rs, v);
		for (size_t i = 0; i + 1 < rs.n; i++)
			if (strcmp(rs.v[i].name, "permit") == 0) {
				char *seen = xasprintf("%s = %s", restriction_lists[l], v);
				char *fix = xasprintf("remove 'permit' from the middle of %s (restrictions "
						      "after it never run; the list permits at its end anyway)",
						      restriction_lists[l]);
				add(r, "PF-RESTR-DEAD-AFTER-PERMIT", AUDIT_MEDIUM, sv->where, seen,
				    "a bare permit ends the list, so every check written after it is "
				    "never applied",
				    fix);
				break;
			}
		restrs_free(&rs);
		free(v);
	}
}

static void check_unix_accounts(const struct pf_conf *pf, struct audit_report *r)
{
	char *maps = val(pf, NULL, "local_recipient_maps");
	char *dest = val(pf, NULL, "mydestination");
	if (strstr(maps, "unix:passwd.byname") && dest[strspn(dest, " \t,")] != '\0')
		add(r, "PF-ENUM-UNIX-ACCOUNTS", AUDIT_INFO, "main.cf", seen1(pf, NULL, "local_recipient_maps"),
		    "every Unix account (www-data, daemon, ...) of this host is a deliverable address "
		    "that answers RCPT probes with 250 and receives spam",
		    xstrdup("list real mailboxes only: postconf -e 'local_recipient_maps = "
			    "hash:/etc/postfix/local_recipients $alias_maps' (or use virtual mailboxes)"));
	free(maps);
	free(dest);
}

static void check_relay_domains(const struct pf_conf *pf, struct audit_report *r)
{
	char *rd = val(pf, NULL, "relay_domains");
	char *maps = val(pf, NULL, "relay_recipient_maps");
	struct words ws = {0};
	words_split(&ws, rd);
	if (ws.n && !*maps)
		add(r, "PF-RELAY-DOMAINS-NO-MAPS", AUDIT_MEDIUM, "main.cf",
		    xasprintf("relay_domains = %s; relay_recipient_maps = (empty)", rd),
		    "mail for any made-up address in the relayed domains is accepted and then "
		    "bounced by the next hop, which makes this server a backscatter source",
		    xstrdup("postconf -e 'relay_recipient_maps = hash:/etc/postfix/relay_recipients'"));
	words_free(&ws);
	free(rd);
	free(maps);
}

/* ---- enumeration and disclosure ---- */

static void check_enumeration(const struct pf_conf *pf, const struct svc_view *sv,
			      struct audit_report *r)
{
	if (!bool_param(pf, sv->svc, "disable_vrfy_command"))
		add(r, "PF-ENUM-VRFY", AUDIT_MEDIUM, sv->where,
		    seen1(pf, sv->svc, "disable_vrfy_command"),
		    "VRFY answers 252 for real users and 550 for unknown ones, a free list of "
		    "valid accounts for password guessing and spam",
		    fix_for(pf, sv->svc, "disable_vrfy_command", "yes"));
	char *v = val(pf, sv->svc, "smtpd_reject_unlisted_recipient");
	if (strcasecmp(v, "no") == 0)
		add(r, "PF-ENUM-UNLISTED", AUDIT_MEDIUM, sv->where,
		    seen1(pf, sv->svc, "smtpd_reject_unlisted_recipient"),
		    "mail to unknown users is accepted and bounced later, producing backscatter "
		    "to forged senders",
		    fix_for(pf, sv->svc, "smtpd_reject_unlisted_recipient", "yes"));
	free(v);
	if (bool_param(pf, sv->svc, "show_user_unknown_table_name"))
		add(r, "PF-ENUM-TABLE-NAME", AUDIT_LOW, sv->where,
		    seen1(pf, sv->svc, "show_user_unknown_table_name"),
		    "the reject text names the lookup table (e.g. 'in local recipient table'), "
		    "telling an attacker how accounts are stored",
		    fix_for(pf, sv->svc, "show_user_unknown_table_name", "no"));
}

static int has_version_number(const char *s)
{
	for (const char *p = s; *p; p++)
		if (isdigit((unsigned char)p[0]) && p[1] == '.' && isdigit((unsigned char)p[2]))
			return 1;
	return 0;
}

static void check_banner(const struct pf_conf *pf, const struct svc_view *sv, struct audit_report *r)
{
	const char *raw = pf_raw(pf, sv->svc, "smtpd_banner");
	if (!raw)
		return;
	char *x = val(pf, sv->svc, "smtpd_banner");
	if (strstr(raw, "mail_version") || has_version_number(x))
		add(r, "PF-BANNER-VERSION", AUDIT_MEDIUM, sv->where, seen1(pf, sv->svc, "smtpd_banner"),
		    "the greeting tells every scanner the exact software version to match against "
		    "known vulnerabilities",
		    fix_for(pf, sv->svc, "smtpd_banner", "$myhostname ESMTP"));
	else if (strstr(raw, "mail_name") || strcasestr(x, "postfix") || strcasestr(x, "debian") ||
		 strcasestr(x, "ubuntu"))
		add(r, "PF-BANNER-PRODUCT", AUDIT_LOW, sv->where, seen1(pf, sv->svc, "smtpd_banner"),
		    "the greeting names the product or OS, which helps scanners pick exploits "
		    "(RFC 5321 only needs the host name)",
		    fix_for(pf, sv->svc, "smtpd_banner", "$myhostname ESMTP"));
	free(x);
}

/* ---- AUTH and TLS ---- */

static char *tls_level(const struct pf_conf *pf, const struct pf_service *svc)
{
	char *lvl = val(pf, svc, "smtpd_tls_security_level");
	if (!*lvl) {
		/* the obsolete booleans decide when the level is empty */
		free(lvl);
		if (bool_param(pf, svc, "smtpd_enforce_tls"))
			return xstrdup("encrypt");
		return xstrdup(bool_param(pf, svc, "smtpd_use_tls") ? "may" : "none");
	}
	return lvl;
}

static int have_cert(const struct pf_conf *pf, const struct pf_service *svc)
{
	static const char *const p[] = {"smtpd_tls_cert_file", "smtpd_tls_chain_files",
					"smtpd_tls_eccert_file", "smtpd_tls_dcert_file", NULL};
	for (size_t i = 0; p[i]; i++) {
		char *v = val(pf, svc, p[i]);
		int set = *v != '\0';
		free(v);
		if (set)
			return 1;
	}
	return 0;
}

static void check_auth_tls(const struct pf_conf *pf, const struct svc_view *sv,
			   struct audit_report *r)
{
	int sasl = bool_param(pf, sv->svc, "smtpd_sasl_auth_enable");
	char *lvl = tls_level(pf, sv->svc);
	int wrapper = sv->role == ROLE_SMTPS;
	int enforced = wrapper || strcasecmp(lvl, "encrypt") == 0;
	int tls_on = wrapper || strcasecmp(lvl, "none") != 0;

	if (sasl && !enforced && !bool_param(pf, sv->svc, "smtpd_tls_auth_only")) {
		char *seen = xasprintf("smtpd_sasl_auth_enable = yes; smtpd_tls_auth_only = no; "
				       "smtpd_tls_security_level = %s",
				       lvl);
		add(r, "PF-AUTH-CLEARTEXT", AUDIT_HIGH, sv->where, seen,
		    "AUTH is offered before STARTTLS, so passwords can cross the network in "
		    "cleartext and be sniffed",
		    fix_for(pf, sv->svc, "smtpd_tls_auth_only", "yes"));
	}
	if (sv->role == ROLE_SUBMISSION && !enforced) {
		char *seen = xasprintf("smtpd_tls_security_level = %s", lvl);
		char *fix = sv->svc ? xasprintf("postconf -P '%s/%s/smtpd_tls_security_level=encrypt'",
						sv->svc->name, sv->svc->type)
				    : xstrdup("postconf -e 'smtpd_tls_security_level = encrypt'");
		add(r, "PF-TLS-SUBMISSION", sasl && !tls_on ? AUDIT_HIGH : AUDIT_MEDIUM, sv->where,
		    seen,
		    "the submission port should require TLS (encrypt); otherwise clients can be "
		    "downgraded to cleartext by stripping STARTTLS",
		    fix);
	}
	if (sv->role == ROLE_MX && !wrapper && strcasecmp(lvl, "encrypt") == 0)
		add(r, "PF-TLS-ENCRYPT-MX", AUDIT_MEDIUM, sv->where,
		    xasprintf("smtpd_tls_security_level = %s", lvl),
		    "servers that cannot do TLS can no longer deliver to you; RFC 3207 says a "
		    "public MX must not require TLS",
		    fix_for(pf, sv->svc, "smtpd_tls_security_level", "may"));
	if (sv->role == ROLE_MX && !tls_on)
		add(r, "PF-TLS-OFF", AUDIT_MEDIUM, sv->where, xasprintf("smtpd_tls_security_level = %s", lvl),
		    "no STARTTLS is offered, so all mail to this server travels in cleartext",
		    fix_for(pf, sv->svc, "smtpd_tls_security_level", "may"));
	if (tls_on && !have_cert(pf, sv->svc))
		add(r, "PF-TLS-NO-CERT", AUDIT_MEDIUM, sv->where,
		    xasprintf("smtpd_tls_security_level = %s; no smtpd_tls_cert_file or "
			      "smtpd_tls_chain_files",
			      wrapper ? "(wrappermode)" : lvl),
		    "TLS is enabled without a certificate, so every TLS handshake fails",
		    xstrdup("postconf -e 'smtpd_tls_chain_files = /etc/postfix/key.pem, "
			    "/etc/postfix/fullchain.pem'"));

	if (tls_on) {
		/* the mandatory settings apply where TLS is enforced */
		const char *pname = enforced ? "smtpd_tls_mandatory_protocols" : "smtpd_tls_protocols";
		char *prot = val(pf, sv->svc, pname);
		unsigned allowed = audit_tls_allowed(prot);
		if (allowed & (AUDIT_SSLV2 | AUDIT_SSLV3)) {
			add(r, "PF-TLS-PROTOCOLS", AUDIT_HIGH, sv->where, seen1(pf, sv->svc, pname),
			    "SSLv2/SSLv3 are broken (DROWN, POODLE) and must never be allowed",
			    fix_for(pf, sv->svc, pname, ">=TLSv1.2"));
		} else if (allowed & (AUDIT_TLSV1 | AUDIT_TLSV11)) {
			if (sv->role == ROLE_MX)
				add(r, "PF-TLS-PROTOCOLS", AUDIT_LOW, sv->where, seen1(pf, sv->svc, pname),
				    "TLSv1/TLSv1.1 are deprecated (RFC 8996); on port 25 keeping them is a "
				    "trade-off, since old senders would fall back to cleartext",
				    fix_for(pf, sv->svc, pname, ">=TLSv1.2"));
			else
				add(r, "PF-TLS-PROTOCOLS", AUDIT_MEDIUM, sv->where,
				    seen1(pf, sv->svc, pname),
				    "TLSv1/TLSv1.1 are deprecated (RFC 8996) and have no place on a port "
				    "that only your own users' clients use",
				    fix_for(pf, sv->svc, pname, ">=TLSv1.2"));
		}
		free(prot);
		const char *cname = enforced ? "smtpd_tls_mandatory_ciphers" : "smtpd_tls_ciphers";
		char *ciph = val(pf, sv->svc, cname);
		if (strcasecmp(ciph, "export") == 0 || strcasecmp(ciph, "low") == 0 ||
		    strcasecmp(ciph, "null") == 0)
			add(r, "PF-TLS-CIPHERS", enforced ? AUDIT_HIGH : AUDIT_MEDIUM, sv->where,
			    seen1(pf, sv->svc, cname),
			    "export, low or null cipher grades can be broken or give no encryption at "
			    "all",
			    fix_for(pf, sv->svc, cname, enforced ? "high" : "medium"));
		free(ciph);
	}
	if (sasl) {
		static const char *const o[] = {"smtpd_sasl_security_options",
						"smtpd_sasl_tls_security_options", NULL};
		for (size_t i = 0; o[i]; i++) {
			char *v = val(pf, sv->svc, o[i]);
			if (!strstr(v, "noanonymous")) {
				add(r, "PF-SASL-ANONYMOUS", AUDIT_HIGH, sv->where, seen1(pf, sv->svc, o[i]),
				    "without noanonymous the ANONYMOUS mechanism logs anyone in, which "
				    "makes permit_sasl_authenticated an open relay",
				    fix_for(pf, sv->svc, o[i], "noanonymous"));
				free(v);
				break;
			}
			free(v);
		}
		if (num_param(pf, sv->svc, "smtpd_client_auth_rate_limit", 0) == 0)
			add(r, "PF-LIMIT-AUTH-RATE", AUDIT_MEDIUM, sv->where,
			    seen1(pf, sv->svc, "smtpd_client_auth_rate_limit"),
			    "one client may try passwords as fast as the server answers",
			    fix_for(pf, sv->svc, "smtpd_client_auth_rate_limit", "20"));
	}
	free(lvl);
}

static void check_tls_files(const struct pf_conf *pf, struct audit_report *r)
{
	/* DH parameters: Postfix 3.7's built-in group is 2048 bits; a file replaces it */
	char *dh = val(pf, NULL, "smtpd_tls_dh1024_param_file");
	if (*dh) {
		int bits = audit_dh_bits(dh);
		if (bits > 0 && bits < 2048)
			add(r, "PF-TLS-DH", AUDIT_HIGH, "main.cf",
			    xasprintf("smtpd_tls_dh1024_param_file = %s (%d bits)", dh, bits),
			    "DHE with a group smaller than 2048 bits can be broken by a well-funded "
			    "attacker (Logjam)",
			    xstrdup("postconf -e 'smtpd_tls_dh1024_param_file =' (use Postfix's "
				    "built-in 2048-bit group, or an RFC 7919 ffdhe2048/3072 file)"));
		else if (bits >= 2048)
			add(r, "PF-TLS-DH", AUDIT_INFO, "main.cf",
			    xasprintf("smtpd_tls_dh1024_param_file = %s (%d bits)", dh, bits),
			    "custom DH parameters are big enough, but Postfix's built-in group is "
			    "maintained for you",
			    xstrdup("postconf -e 'smtpd_tls_dh1024_param_file =' (optional)"));
		else
			audit_note(r, "smtpd_tls_dh1024_param_file %s could not be read; DH size not checked",
				   dh);
	}
	free(dh);
	/* private keys readable by others */
	static const char *const keys[] = {"smtpd_tls_key_file", "smtpd_tls_eckey_file",
					   "smtpd_tls_chain_files", "smtp_tls_key_file",
					   "smtp_tls_chain_files", NULL};
	for (size_t i = 0; keys[i]; i++) {
		char *v = val(pf, NULL, keys[i]);
		struct words ws = {0};
		words_split(&ws, v);
		for (size_t k = 0; k < ws.n; k++) {
			struct stat st;
			if (stat(ws.w[k], &st) != 0 || !S_ISREG(st.st_mode))
				continue;
			/* chain files hold certificates too: only the file with a key counts */
			if (strstr(keys[i], "chain") && !audit_file_has_key(ws.w[k]))
				continue;
			if (st.st_mode & S_IROTH) {
				char *fix = xasprintf("chmod 600 %s", ws.w[k]);
				add(r, "PF-TLS-KEY-PERMS", AUDIT_HIGH, "main.cf",
				    xasprintf("%s = %s (mode %04o)", keys[i], ws.w[k],
					      (unsigned)(st.st_mode & 07777)),
				    "every local user (and every compromised service) can read the TLS "
				    "private key and impersonate the server",
				    fix);
			}
		}
		words_free(&ws);
		free(v);
	}
}

static void check_relayhost_sasl(const struct pf_conf *pf, struct audit_report *r)
{
	if (!bool_param(pf, NULL, "smtp_sasl_auth_enable"))
		return;
	char *maps = val(pf, NULL, "smtp_sasl_password_maps");
	if (!*maps) {
		free(maps);
		return;
	}
	char *lvl = val(pf, NULL, "smtp_tls_security_level");
	if (!*lvl) {
		free(lvl);
		lvl = xstrdup(bool_param(pf, NULL, "smtp_enforce_tls") ? "encrypt"
			      : bool_param(pf, NULL, "smtp_use_tls") ? "may" : "none");
	}
	if (strcasecmp(lvl, "none") == 0 || strcasecmp(lvl, "may") == 0 ||
	    strcasecmp(lvl, "dane") == 0) {
		char *opts = val(pf, NULL, "smtp_sasl_security_options");
		int noplain = strstr(opts, "noplaintext") != NULL;
		add(r, "PF-RELAYHOST-SASL-TLS", noplain ? AUDIT_MEDIUM : AUDIT_HIGH, "main.cf",
		    xasprintf("smtp_sasl_password_maps = %s; smtp_tls_security_level = %s; "
			      "smtp_sasl_security_options = %s",
			      maps, lvl, opts),
		    noplain ? "with opportunistic TLS a stripped STARTTLS makes relayhost logins fail "
			      "or use weaker mechanisms"
			    : "with opportunistic TLS an attacker who strips STARTTLS receives the "
			      "relayhost password in cleartext",
		    xstrdup("postconf -e 'smtp_tls_security_level = encrypt'"));
		free(opts);
	}
	/* the password table itself, and its compiled .db/.lmdb */
	const char *c = strchr(maps, ':');
	if (c) {
		char path[1024];
		snprintf(path, sizeof path, "%.*s", (int)strcspn(c + 1, " ,"), c + 1);
		static const char *const sfx[] = {"", ".db", ".lmdb", ".cdb", NULL};
		for (size_t i = 0; sfx[i]; i++) {
			char p[1100];
			struct stat st;
			snprintf(p, sizeof p, "%s%s", path, sfx[i]);
			if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IROTH)) {
				char *fix = xasprintf("chmod 600 %s", p);
				add(r, "PF-SASL-PASSWD-PERMS", AUDIT_HIGH, "main.cf",
				    xasprintf("smtp_sasl_password_maps file %s (mode %04o)", p,
					      (unsigned)(st.st_mode & 07777)),
				    "every local user can read the relayhost credentials", fix);
			}
		}
	}
	free(lvl);
	free(maps);
}

/* ---- abuse limits ---- */

static void check_limits(const struct pf_conf *pf, const struct svc_view *sv, struct audit_report *r)
{
	const struct pf_service *s = sv->svc;
	if (sv->role == ROLE_MX && !bool_param(pf, s, "smtpd_helo_required"))
		add(r, "PF-HELO-REQUIRED", AUDIT_LOW, sv->where, seen1(pf, s, "smtpd_helo_required"),
		    "clients may skip HELO/EHLO, so HELO checks never run for the crudest spam tools",
		    fix_for(pf, s, "smtpd_helo_required", "yes"));
	if (num_param(pf, s, "smtpd_client_connection_rate_limit", 0) == 0)
		add(r, "PF-LIMIT-CONN-RATE", AUDIT_LOW, sv->where,
		    seen1(pf, s, "smtpd_client_connection_rate_limit"),
		    "one client may open connections as fast as it likes (dictionary attacks, "
		    "floods)",
		    fix_for(pf, s, "smtpd_client_connection_rate_limit", "60"));
	long cc = num_param(pf, s, "smtpd_client_connection_count_limit", 50);
	if (cc == 0 || cc > 50)
		add(r, "PF-LIMIT-CONN-COUNT", cc == 0 ? AUDIT_MEDIUM : AUDIT_LOW, sv->where,
		    seen1(pf, s, "smtpd_client_connection_count_limit"),
		    "one client may hold many smtpd processes at once and starve everyone else",
		    fix_for(pf, s, "smtpd_client_connection_count_limit", "10"));
	char *sleep = val(pf, s, "smtpd_error_sleep_time");
	long soft = num_param(pf, s, "smtpd_soft_error_limit", 10);
	long hard = num_param(pf, s, "smtpd_hard_error_limit", 20);
	int nosleep = strtol(sleep, NULL, 10) == 0;
	if (nosleep || hard > 20 || soft > 10) {
		char *seen = xasprintf("smtpd_error_sleep_time = %s; smtpd_soft_error_limit = %ld; "
				       "smtpd_hard_error_limit = %ld",
				       sleep, soft, hard);
		add(r, "PF-LIMIT-ERRORS", AUDIT_LOW, sv->where, seen,
		    "a client that makes many errors (recipient guessing, password tries) is slowed "
		    "down and disconnected late or never",
		    xstrdup("postconf -e 'smtpd_error_sleep_time = 1s' 'smtpd_soft_error_limit = 3' "
			    "'smtpd_hard_error_limit = 6'"));
	} else if (hard >= 20) {
		char *seen = xasprintf("smtpd_hard_error_limit = %ld", hard);
		add(r, "PF-LIMIT-ERRORS", AUDIT_INFO, sv->where, seen,
		    "20 errors per connection (the default) still allow 20 recipient or password "
		    "guesses per connection",
		    xstrdup("postconf -e 'smtpd_soft_error_limit = 3' 'smtpd_hard_error_limit = 6'"));
	}
	free(sleep);
	if (!any_list_has(pf, s, "reject_unauth_pipelining") &&
	    !bool_param(pf, s, "smtpd_forbid_unauth_pipelining"))
		add(r, "PF-PIPELINING", AUDIT_LOW, sv->where,
		    xstrdup("smtpd_forbid_unauth_pipelining = no; no reject_unauth_pipelining"),
		    "spam tools that send commands without waiting for answers are not caught",
		    fix_for(pf, s, "smtpd_forbid_unauth_pipelining", "yes"));
	long size = num_param(pf, s, "message_size_limit", 10240000);
	if (size == 0 || size > 200L * 1024 * 1024)
		add(r, "PF-LIMIT-SIZE", AUDIT_LOW, sv->where, seen1(pf, s, "message_size_limit"),
		    "unlimited or huge messages let one client fill the queue file system",
		    fix_for(pf, s, "message_size_limit", "52428800"));
	long rcpt = num_param(pf, s, "smtpd_recipient_limit", 1000);
	if (rcpt == 0 || rcpt > 1000)
		add(r, "PF-LIMIT-RECIPIENTS", AUDIT_LOW, sv->where, seen1(pf, s, "smtpd_recipient_limit"),
		    "one message may be sent to an unbounded number of recipients",
		    fix_for(pf, s, "smtpd_recipient_limit", "1000"));
}

/* ---- sender/HELO checks and rules that reject real mail ---- */

struct dead_bl {
	const char *zone;
	const char *why;
};

static const struct dead_bl dead_bls[] = {
	{"nerd.dk", "the zone is dead"},
	{"sorbs.net", "SORBS was shut down on 2024-06-05"},
	{"ahbl.org", "AHBL lists the whole Internet since 2015"},
	{"njabl.org", "NJABL is dead"},
	{"dsbl.org", "DSBL is dead"},
	{"dnsbl.inps.de", "the zone is dead"},
	{NULL, NULL},
};

static void check_sender_rules(const struct pf_conf *pf, const struct svc_view *sv,
			       struct audit_report *r)
{
	const struct pf_service *s = sv->svc;
	if (sv->role != ROLE_MX)
		return; /* submission lists are about authenticated users */
	static const struct {
		const char *id, *name, *list, *why;
	} wanted[] = {
		{"PF-SENDER-NON-FQDN", "reject_non_fqdn_sender", "smtpd_sender_restrictions",
		 "senders without a domain (user@host) are accepted although no reply can reach them"},
		{"PF-SENDER-UNKNOWN-DOMAIN", "reject_unknown_sender_domain", "smtpd_sender_restrictions",
		 "senders from domains that do not exist in DNS are accepted, a common spam trait"},
		{"PF-HELO-NON-FQDN", "reject_non_fqdn_helo_hostname", "smtpd_helo_restrictions",
		 "HELO names that are not fully qualified are accepted, a common bot trait"},
		{"PF-HELO-INVALID", "reject_invalid_helo_hostname", "smtpd_helo_restrictions",
		 "syntactically invalid HELO names are accepted, a common bot trait"},
	};
	for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++)
		if (!any_list_has(pf, s, wanted[i].name)) {
			char *v = val(pf, s, wanted[i].list);
			char *fix = xasprintf("postconf -e '%s = %s%s%s'", wanted[i].list, v,
					      *v ? ", " : "", wanted[i].name);
			add(r, wanted[i].id, AUDIT_LOW, sv->where,
			    xasprintf("%s not in any restriction list", wanted[i].name), wanted[i].why,
			    fix);
			free(v);
		}
	if (any_list_has(pf, s, "reject_unknown_client_hostname") ||
	    any_list_has(pf, s, "reject_unknown_client"))
		add(r, "PF-REJECT-UNKNOWN-CLIENT", AUDIT_MEDIUM, sv->where,
		    xstrdup("reject_unknown_client_hostname on an MX port"),
		    "real mail servers with mismatched reverse DNS are refused (450 4.7.25 for days, "
		    "then a bounce to the sender)",
		    xstrdup("use reject_unknown_reverse_client_hostname instead of "
			    "reject_unknown_client_hostname"));
	/* DNSBLs */
	for (size_t l = 0; restriction_lists[l]; l++) {
		char *v = val(pf, s, restriction_lists[l]);
		struct restrs rs;
		restrs_parse(&rs, v);
		for (size_t i = 0; i < rs.n; i++) {
			const struct restr *x = &rs.v[i];
			if (!x->arg || (strncmp(x->name, "reject_rbl", 10) != 0 &&
					strncmp(x->name, "reject_rhsbl", 12) != 0))
				continue;
			char zone[256];
			snprintf(zone, sizeof zone, "%.*s", (int)strcspn(x->arg, "="), x->arg);
			size_t zl = strlen(zone);
			for (size_t k = 0; dead_bls[k].zone; k++) {
				size_t dl = strlen(dead_bls[k].zone);
				if (zl >= dl && strcasecmp(zone + zl - dl, dead_bls[k].zone) == 0 &&
				    (zl == dl || zone[zl - dl - 1] == '.')) {
					char *why = xasprintf("%s: a dead or world-listing DNSBL rejects real "
							      "mail or adds nothing but latency",
							      dead_bls[k].why);
					add(r, "PF-RBL-DEAD", AUDIT_HIGH, sv->where,
					    xasprintf("%s = ... %s %s", restriction_lists[l], x->name, x->arg),
					    why, xasprintf("remove '%s %s' from %s", x->name, x->arg,
							   restriction_lists[l]));
					free(why);
				}
			}
			if (strcasestr(zone, "spamhaus.org") && !strchr(x->arg, '='))
				add(r, "PF-RBL-UNFILTERED", AUDIT_MEDIUM, sv->where,
				    xasprintf("%s = ... %s %s", restriction_lists[l], x->name, x->arg),
				    "Spamhaus answers 127.255.255.254 to queries via public resolvers; "
				    "without a reply filter that error code rejects every sender",
				    xasprintf("use '%s %s=127.0.0.[2..255]' and a non-public resolver",
					      x->name, zone));
		}
		restrs_free(&rs);
		free(v);
	}
}

/* ---- host role ---- */

static void check_sendonly(const struct pf_conf *pf, struct audit_report *r)
{
	static const char *const dest[] = {"mydestination", "relay_domains",
					   "virtual_alias_domains", "virtual_mailbox_domains", NULL};
	for (size_t i = 0; dest[i]; i++) {
		char *v = val(pf, NULL, dest[i]);
		int set = v[strspn(v, " \t,")] != '\0';
		free(v);
		if (set)
			return;
	}
	/* receives no mail: SASL submission would still need listeners */
	for (size_t i = 0; i < pf->nsvc; i++)
		if (bool_param(pf, &pf->svc[i], "smtpd_sasl_auth_enable"))
			return;
	char *ii = val(pf, NULL, "inet_interfaces");
	if (strcasecmp(ii, "loopback-only") != 0 && strcmp(ii, "127.0.0.1") != 0 &&
	    strcmp(ii, "[::1]") != 0 && strcmp(ii, "localhost") != 0 &&
	    strcmp(ii, "127.0.0.1, [::1]") != 0)
		add(r, "PF-INET-SENDONLY", AUDIT_MEDIUM, "main.cf", seen1(pf, NULL, "inet_interfaces"),
		    "this host accepts mail for no domain, yet smtpd listens on the network and "
		    "becomes a target for nothing in return",
		    xstrdup("postconf -e 'inet_interfaces = loopback-only'"));
	free(ii);
}

/* ---- header_checks ---- */

/* Samples of real header lines: a rule matching all of them matches everything. */
static const char *const header_samples[] = {
	"Received: from mail.example.org (mail.example.org [198.51.100.7]) by mx.example.net",
	"From: Alice <alice@example.org>",
	"Subject: lunch",
	"X-Mailer: x",
	"Message-ID: <1@example.org>",
	NULL,
};

/*
 * A header line is "Name: value" with a name of printable characters other
 * than ':' and space. A pattern anchored at ^ whose literal start contains a
 * space or an envelope-looking token before any ':' can never match.
 */
static int anchored_impossible(const char *pat)
{
	if (pat[0] != '^')
		return 0;
	for (const char *p = pat + 1; *p; p++) {
		if (*p == ':')
			return 0;
		if (*p == ' ')
			return 1;
		if (strchr("\\[(.*+?{|$", *p))
			return 0;
	}
	return 0;
}

struct hc_rule {
	char *pat;
	int icase;
	int negate;
	char *action;
	unsigned line;
};

/* Parses "/pattern/flags ACTION" (or !/pattern/); returns 0 when not a rule. */
static int hc_parse(char *line, struct hc_rule *out)
{
	char *p = line;
	while (isspace((unsigned char)*p))
		p++;
	out->negate = 0;
	if (*p == '!') {
		out->negate = 1;
		p++;
	}
	if (strncasecmp(p, "if", 2) == 0 && isspace((unsigned char)p[2])) {
		p += 2;
		while (isspace((unsigned char)*p))
			p++;
	}
	char delim = *p;
	if (!delim || isalnum((unsigned char)delim) || isspace((unsigned char)delim))
		return 0;
	char *st = ++p;
	while (*p && *p != delim) {
		if (*p == '\\' && p[1])
			p++;
		p++;
	}
	if (!*p)
		return 0;
	*p++ = '\0';
	out->pat = st;
	out->icase = 1;
	while (*p && !isspace((unsigned char)*p)) {
		if (*p == 'i')
			out->icase = !out->icase;
		p++;
	}
	while (isspace((unsigned char)*p))
		p++;
	out->action = p;
	return 1;
}

#define HC_MAX_TABLE (16 * 1024 * 1024)

static void check_header_table(const struct pf_conf *pf, const char *param, const char *table,
			       struct audit_report *r)
{
	(void)pf;
	int is_pcre = strncmp(table, "pcre:", 5) == 0;
	if (!is_pcre && strncmp(table, "regexp:", 7) != 0)
		return;
	const char *path = table + (is_pcre ? 5 : 7);
	struct stat st;
	/* only regular files, and only so much of them: a table named /dev/zero
	 * must not make the audit read forever */
	FILE *f = stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= HC_MAX_TABLE
			  ? fopen(path, "r")
			  : NULL;
	if (!f) {
		char *fix = xasprintf("create %s or remove it from %s", path, param);
		add(r, "PF-HEADER-CHECKS-UNREADABLE", AUDIT_MEDIUM, "main.cf",
		    xasprintf("%s = %s (not a readable table file)", param, table),
		    "cleanup cannot open the table and defers every message until it exists", fix);
		return;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0, depth = 0;
	while ((n = getline(&line, &cap, f)) > 0 && lineno < 100000) {
		lineno++;
		if (strnlen(line, (size_t)n) < (size_t)n)
			continue; /* a NUL byte: not a table line Postfix would use */
		line[strcspn(line, "\r\n")] = '\0';
		char *t = line;
		while (isspace((unsigned char)*t))
			t++;
		if (!*t || *t == '#')
			continue;
		if (strncasecmp(t, "endif", 5) == 0) {
			if (depth > 0)
				depth--;
			continue;
		}
		/* inside if/endif a rule only sees lines the if already selected */
		int nested = depth > 0;
		if (strncasecmp(t, "if", 2) == 0 && isspace((unsigned char)t[2]))
			depth++;
		struct hc_rule hr;
		if (!hc_parse(t, &hr))
			continue;
		int all = 1, never = 0, compiled = 0;
		if (is_pcre) {
			int err;
			PCRE2_SIZE off;
			pcre2_code *re = pcre2_compile((PCRE2_SPTR)hr.pat, PCRE2_ZERO_TERMINATED,
						       hr.icase ? PCRE2_CASELESS : 0, &err, &off, NULL);
			if (re) {
				compiled = 1;
				pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
				for (size_t k = 0; header_samples[k]; k++) {
					int m = pcre2_match(re, (PCRE2_SPTR)header_samples[k],
							    PCRE2_ZERO_TERMINATED, 0, 0, md, NULL) >= 0;
					if (m == hr.negate)
						all = 0;
				}
				pcre2_match_data_free(md);
				pcre2_code_free(re);
			}
		} else {
			regex_t re;
			if (regcomp(&re, hr.pat, REG_EXTENDED | REG_NOSUB | (hr.icase ? REG_ICASE : 0)) == 0) {
				compiled = 1;
				for (size_t k = 0; header_samples[k]; k++) {
					int m = regexec(&re, header_samples[k], 0, NULL, 0) == 0;
					if (m == hr.negate)
						all = 0;
				}
				regfree(&re);
			}
		}
		if (!compiled)
			never = 1;
		else if (!hr.negate && anchored_impossible(hr.pat))
			never = 1;
		if (never) {
			char *why = compiled ? xstrdup("header lines look like 'Name: value' and a name has "
						       "no spaces; envelope commands (MAIL FROM, RCPT TO) "
						       "never reach header_checks")
					     : xstrdup("the pattern does not compile, so Postfix skips the "
						       "rule");
			char *fix = xasprintf("rewrite %s line %u (for envelope senders use "
					      "check_sender_access)",
					      path, lineno);
			add(r, "PF-HEADER-CHECKS-NEVER", AUDIT_MEDIUM, "main.cf",
			    xasprintf("%s = %s, line %u: %s/%s/", param, table, lineno,
				      hr.negate ? "!" : "", hr.pat),
			    why, fix);
			free(why);
		} else if (all && !nested) {
			char act[32];
			snprintf(act, sizeof act, "%.*s", (int)strcspn(hr.action, " \t"), hr.action);
			int harmful = strcasecmp(act, "REJECT") == 0 || strcasecmp(act, "DISCARD") == 0 ||
				      strcasecmp(act, "HOLD") == 0 || strcasecmp(act, "DEFER") == 0 ||
				      strcasecmp(act, "REDIRECT") == 0 || strcasecmp(act, "FILTER") == 0 ||
				      strcasecmp(act, "BCC") == 0;
			char *fix = xasprintf("narrow %s line %u so that it names a header", path, lineno);
			add(r, "PF-HEADER-CHECKS-ALL", harmful ? AUDIT_HIGH : AUDIT_LOW, "main.cf",
			    xasprintf("%s = %s, line %u: %s/%s/ %s", param, table, lineno,
				      hr.negate ? "!" : "", hr.pat, hr.action),
			    harmful ? "the rule matches every header, so every message gets this action"
				    : "the rule matches every header line",
			    fix);
		}
	}
	free(line);
	fclose(f);
}

static void check_header_checks(const struct pf_conf *pf, struct audit_report *r)
{
	static const char *const params[] = {"header_checks", "mime_header_checks",
					     "nested_header_checks", "body_checks", NULL};
	char *seen_tables[8] = {0};
	size_t ns = 0;
	for (size_t i = 0; params[i]; i++) {
		if (i > 0 && i < 3 && !pf_is_explicit(pf, NULL, params[i]))
			continue; /* defaults to $header_checks: checked once */
		char *v = val(pf, NULL, params[i]);
		struct words ws = {0};
		words_split(&ws, v);
		for (size_t k = 0; k < ws.n; k++) {
			int dup = 0;
			for (size_t j = 0; j < ns; j++)
				if (strcmp(seen_tables[j], ws.w[k]) == 0)
					dup = 1;
			if (dup)
				continue;
			if (ns < 8)
				seen_tables[ns++] = xstrdup(ws.w[k]);
			check_header_table(pf, params[i], ws.w[k], r);
		}
		words_free(&ws);
		free(v);
	}
	for (size_t j = 0; j < ns; j++)
		free(seen_tables[j]);
}

/* ---- smuggling, XCLIENT/XFORWARD, compatibility ---- */

static void check_misc(const struct pf_conf *pf, const struct svc_view *sv, struct audit_report *r)
{
	const struct pf_service *s = sv->svc;
	const char *raw = pf_raw(pf, s, "smtpd_forbid_bare_newline");
	if (!raw) {
		if (!pf->builtin_defaults)
			add(r, "PF-SMUGGLING", AUDIT_HIGH, sv->where,
			    xstrdup("smtpd_forbid_bare_newline unknown to this Postfix"),
			    "this Postfix predates the SMTP smuggling fix (CVE-2023-51764): forged "
			    "messages can be hidden inside one accepted message",
			    xstrdup("upgrade Postfix (3.5.23/3.6.13/3.7.9/3.8.4 or later); meanwhile "
				    "postconf -e 'smtpd_data_restrictions = reject_unauth_pipelining' "
				    "'smtpd_discard_ehlo_keywords = chunking'"));
	} else {
		char *v = val(pf, s, "smtpd_forbid_bare_newline");
		if (strcasecmp(v, "no") == 0)
			add(r, "PF-SMUGGLING", AUDIT_MEDIUM, sv->where,
			    seen1(pf, s, "smtpd_forbid_bare_newline"),
			    "bare <LF> line endings are accepted, so a second forged message can be "
			    "smuggled inside one (CVE-2023-51764)",
			    fix_for(pf, s, "smtpd_forbid_bare_newline", "normalize"));
		free(v);
	}
	static const struct {
		const char *id, *param;
		enum audit_sev sev;
		const char *why;
	} xs[] = {
		{"PF-XCLIENT-HOSTS", "smtpd_authorized_xclient_hosts", AUDIT_HIGH,
		 "hosts allowed XCLIENT can claim any client address and login, bypassing relay "
		 "control and bans"},
		{"PF-XFORWARD-HOSTS", "smtpd_authorized_xforward_hosts", AUDIT_MEDIUM,
		 "hosts allowed XFORWARD can forge the client address that logs and filters see"},
	};
	for (size_t i = 0; i < 2; i++) {
		char *v = val(pf, s, xs[i].param);
		enum audit_sev sev;
		const char *net = wide_net(v, &sev);
		int all = strstr(v, "static:all") != NULL;
		if (net || all) {
			char *why = xasprintf("%s (%s)", xs[i].why, all ? "static:all" : net);
			add(r, xs[i].id, all || sev == AUDIT_HIGH ? AUDIT_HIGH : xs[i].sev, sv->where,
			    seen1(pf, s, xs[i].param), why,
			    fix_for(pf, s, xs[i].param, "<only the proxy or content filter address>"));
			free(why);
		}
		free(v);
	}
}

static void check_compat(const struct pf_conf *pf, struct audit_report *r)
{
	char *lvl = val(pf, NULL, "compatibility_level");
	if (strtol(lvl, NULL, 10) < 2)
		add(r, "PF-COMPAT-LEVEL", AUDIT_LOW, "main.cf", seen1(pf, NULL, "compatibility_level"),
		    "a level below 2 keeps the old unsafe defaults (mynetworks_style = subnet, "
		    "relay_domains = $mydestination, no smtpd_relay_restrictions)",
		    xstrdup("postconf -e 'compatibility_level = 3.6' (after reading "
			    "COMPATIBILITY_README)"));
	free(lvl);
}

void audit_postfix(const struct pf_conf *pf, struct audit_report *r)
{
	if (pf->builtin_defaults)
		audit_note(r, "no postconf -d output: built-in Postfix 3.7 defaults were assumed for "
			      "settings not in main.cf");
	if (!pf->have_master)
		audit_note(r, "no postconf -M output: services were taken from postconf -P, plus "
			      "the stock smtp/inet listener");
	check_mynetworks(pf, r);
	check_relay_domains(pf, r);
	check_unix_accounts(pf, r);
	check_tls_files(pf, r);
	check_relayhost_sasl(pf, r);
	check_sendonly(pf, r);
	check_header_checks(pf, r);
	check_compat(pf, r);
	struct svc_view sv[64];
	size_t n = smtpd_services(pf, sv, 64);
	for (size_t i = 0; i < n; i++) {
		check_relay(pf, &sv[i], r);
		check_dead_after_permit(pf, &sv[i], r);
		check_enumeration(pf, &sv[i], r);
		check_banner(pf, &sv[i], r);
		check_auth_tls(pf, &sv[i], r);
		check_limits(pf, &sv[i], r);
		check_sender_rules(pf, &sv[i], r);
		check_misc(pf, &sv[i], r);
	}
}
