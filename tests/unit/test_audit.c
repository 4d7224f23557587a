/*
 * test_audit - `mxjail audit` checks (src/audit/): one test per check id in
 * audit_checks[], each with a snippet that must raise it and one that must
 * not; plus the postconf/doveconf readers, Postfix's $name expansion with
 * compatibility_level, severities that depend on the service, the saved lab
 * configurations (tests/fixtures/audit/) and the report forms.
 *
 * Postfix snippets are main.cf lines; a line "P:..." is postconf -P output,
 * "M:..." postconf -M output. "@T@" is a scratch directory with key files,
 * header_checks tables and logs made at start, "@F@" tests/fixtures/audit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "audit/audit.h"
#include "config/config.h"
#include "core/diag.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

static char tmpdir[256];
static char fixdir[512];

/* ---- scaffolding ---- */

static char *subst(const char *s)
{
	struct strbuf b = STRBUF_INIT;
	for (const char *p = s; *p;) {
		if (strncmp(p, "@T@", 3) == 0) {
			strbuf_adds(&b, tmpdir);
			p += 3;
		} else if (strncmp(p, "@F@", 3) == 0) {
			strbuf_adds(&b, fixdir);
			p += 3;
		} else {
			strbuf_addc(&b, *p++);
		}
	}
	return strbuf_detach(&b);
}

static void write_file(const char *rel, const char *text, mode_t mode)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	char *t = subst(text);
	fputs(t, f);
	free(t);
	fclose(f);
	chmod(path, mode);
}

static void load_pf(struct pf_conf *pf, const char *text)
{
	struct diag d = DIAG_INIT;
	memset(pf, 0, sizeof *pf);
	pf_builtin_defaults(pf);
	char *t = subst(text);
	struct strbuf mainb = STRBUF_INIT, pb = STRBUF_INIT, mb = STRBUF_INIT;
	strbuf_adds(&mainb, "compatibility_level = 3.6\n");
	for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, "P:", 2) == 0) {
			strbuf_adds(&pb, line + 2);
			strbuf_addc(&pb, '\n');
		} else if (strncmp(line, "M:", 2) == 0) {
			strbuf_adds(&mb, line + 2);
			strbuf_addc(&mb, '\n');
		} else {
			strbuf_adds(&mainb, line);
			strbuf_addc(&mainb, '\n');
		}
	}
	pf_parse_main(&pf->main, "t.cf", strbuf_str(&mainb), mainb.len, &d);
	if (pb.len)
		pf_parse_overrides(pf, "t.P", pb.s, pb.len, &d);
	if (mb.len)
		pf_parse_master(pf, "t.M", mb.s, mb.len, &d);
	assert_int_equal(d.nerrors, 0);
	diag_clear(&d);
	strbuf_free(&mainb);
	strbuf_free(&pb);
	strbuf_free(&mb);
	free(t);
}

static void run_pf(const char *text, struct audit_report *r)
{
	struct pf_conf pf;
	load_pf(&pf, text);
	audit_postfix(&pf, r);
	pf_conf_free(&pf);
}

static void run_dc(const char *text, struct audit_report *r)
{
	struct dc_conf dc = {0};
	struct diag d = DIAG_INIT;
	char *t = subst(text);
	dc_parse(&dc, "t.conf", t, strlen(t), &d);
	free(t);
	assert_int_equal(d.nerrors, 0);
	diag_clear(&d);
	audit_dovecot(&dc, r);
	dc_conf_free(&dc);
}

/* mxjail snippets: jail.local text; pf may be NULL; dc says "Dovecot given". */
struct mxcase {
	const char *jail;
	const char *pf;
	int syslog;
	int dc;
};

static void run_mx(const struct mxcase *c, struct audit_report *r)
{
	static int seq;
	char dir[512];
	snprintf(dir, sizeof dir, "%s/mx%d", tmpdir, seq++);
	mkdir(dir, 0755);
	char rel[64];
	snprintf(rel, sizeof rel, "mx%d/jail.local", seq - 1);
	write_file(rel, c->jail, 0644);
	struct config cfg = {0};
	struct diag d = DIAG_INIT;
	config_load(dir, &cfg, &d);
	struct pf_conf pf;
	if (c->pf)
		load_pf(&pf, c->pf);
	struct dc_conf dc = {0};
	struct audit_mx_input in = {&cfg, c->pf ? &pf : NULL, c->dc ? &dc : NULL, c->syslog,
				    (int)d.nerrors};
	audit_mxjail(&in, r);
	if (c->pf)
		pf_conf_free(&pf);
	config_free(&cfg);
	diag_clear(&d);
}

struct tcase {
	const char *id;
	char kind; /* 'p' Postfix, 'd' Dovecot, 'm' mxjail */
	const char *pos, *neg;
	struct mxcase mpos, mneg;
};

static void run_case(const struct tcase *c, int positive, struct audit_report *r)
{
	memset(r, 0, sizeof *r);
	if (c->kind == 'p')
		run_pf(positive ? c->pos : c->neg, r);
	else if (c->kind == 'd')
		run_dc(positive ? c->pos : c->neg, r);
	else
		run_mx(positive ? &c->mpos : &c->mneg, r);
}

#define PF(id, pos, neg) {id, 'p', pos, neg, {0}, {0}}
#define DC(id, pos, neg) {id, 'd', pos, neg, {0}, {0}}
#define MX(id, ...) {id, 'm', NULL, NULL, __VA_ARGS__}

static const struct tcase cases[] = {
	/* relay control */
	PF("PF-RELAY-MYNETWORKS", "mynetworks = 0.0.0.0/0",
	   "mynetworks = 127.0.0.0/8 [::1]/128 192.168.1.0/24 [fd00::]/64"),
	PF("PF-RELAY-MYNETWORKS-STYLE", "mynetworks_style = subnet", "mynetworks_style = host"),
	PF("PF-RELAY-OPEN",
	   "smtpd_relay_restrictions = permit_mynetworks, permit\n"
	   "smtpd_recipient_restrictions = permit_sasl_authenticated",
	   "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
	   "reject_unauth_destination"),
	PF("PF-RELAY-OPEN", "smtpd_relay_restrictions = warn_if_reject, reject_unauth_destination",
	   "smtpd_relay_restrictions = warn_if_reject, reject_unauth_destination, reject"),
	PF("PF-RELAY-POLICY-FIRST",
	   "smtpd_relay_restrictions = check_policy_service inet:127.0.0.1:10023, permit_mynetworks, "
	   "reject_unauth_destination",
	   "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination, "
	   "check_policy_service inet:127.0.0.1:10023"),
	PF("PF-RESTR-DEAD-AFTER-PERMIT", "smtpd_helo_restrictions = permit, reject_invalid_helo_hostname",
	   "smtpd_helo_restrictions = reject_invalid_helo_hostname, permit"),
	PF("PF-RELAY-MX-BACKUP",
	   "smtpd_relay_restrictions = permit_mynetworks, permit_mx_backup, reject_unauth_destination",
	   "smtpd_relay_restrictions = permit_mynetworks, permit_mx_backup, reject_unauth_destination\n"
	   "permit_mx_backup_networks = 192.0.2.0/24"),
	PF("PF-RELAY-DOMAINS-NO-MAPS", "relay_domains = example.org",
	   "relay_domains = example.org\nrelay_recipient_maps = hash:/etc/postfix/relay_recipients"),
	/* enumeration and disclosure */
	PF("PF-ENUM-VRFY", "disable_vrfy_command = no", "disable_vrfy_command = yes"),
	PF("PF-ENUM-UNLISTED", "smtpd_reject_unlisted_recipient = no",
	   "smtpd_reject_unlisted_recipient = yes"),
	PF("PF-ENUM-TABLE-NAME", "show_user_unknown_table_name = yes",
	   "show_user_unknown_table_name = no"),
	PF("PF-ENUM-UNIX-ACCOUNTS", "mydestination = $myhostname, localhost",
	   "mydestination = $myhostname, localhost\n"
	   "local_recipient_maps = hash:/etc/postfix/local_recipients"),
	PF("PF-BANNER-VERSION", "smtpd_banner = $myhostname ESMTP $mail_name $mail_version",
	   "smtpd_banner = $myhostname ESMTP"),
	PF("PF-BANNER-PRODUCT", "smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)",
	   "smtpd_banner = $myhostname ESMTP"),
	/* AUTH and TLS */
	PF("PF-AUTH-CLEARTEXT",
	   "smtpd_sasl_auth_enable = yes\nsmtpd_tls_security_level = may\nsmtpd_tls_auth_only = no",
	   "smtpd_sasl_auth_enable = yes\nsmtpd_tls_security_level = may\nsmtpd_tls_auth_only = yes"),
	PF("PF-TLS-SUBMISSION",
	   "M:smtp inet n - y - - smtpd\n"
	   "M:submission inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes -o "
	   "smtpd_tls_security_level=may",
	   "M:smtp inet n - y - - smtpd\n"
	   "M:submission inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes -o "
	   "smtpd_tls_security_level=encrypt"),
	PF("PF-TLS-OFF", "smtpd_tls_security_level = none",
	   "smtpd_tls_security_level = may\nsmtpd_tls_chain_files = @T@/key600.pem"),
	PF("PF-TLS-ENCRYPT-MX",
	   "smtpd_tls_security_level = encrypt\nsmtpd_tls_cert_file = /etc/ssl/certs/mx.pem",
	   "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = /etc/ssl/certs/mx.pem\n"
	   "M:smtp inet n - y - - smtpd\n"
	   "M:submission inet n - y - - smtpd -o smtpd_tls_security_level=encrypt"),
	PF("PF-TLS-NO-CERT", "smtpd_tls_security_level = may",
	   "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = /etc/ssl/certs/mx.pem"),
	PF("PF-TLS-PROTOCOLS", "smtpd_tls_security_level = may\nsmtpd_tls_protocols = !SSLv2",
	   "smtpd_tls_security_level = may\nsmtpd_tls_protocols = >=TLSv1.2"),
	PF("PF-TLS-CIPHERS", "smtpd_tls_security_level = encrypt\nsmtpd_tls_mandatory_ciphers = export",
	   "smtpd_tls_security_level = encrypt\nsmtpd_tls_mandatory_ciphers = high"),
	PF("PF-TLS-DH", "smtpd_tls_dh1024_param_file = @F@/dh1024.pem", "smtpd_tls_dh1024_param_file ="),
	PF("PF-TLS-KEY-PERMS", "smtpd_tls_key_file = @T@/key644.pem",
	   "smtpd_tls_key_file = @T@/key600.pem"),
	PF("PF-SASL-ANONYMOUS", "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_security_options = noplaintext",
	   "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_security_options = noanonymous"),
	PF("PF-LIMIT-AUTH-RATE", "smtpd_sasl_auth_enable = yes",
	   "smtpd_sasl_auth_enable = yes\nsmtpd_client_auth_rate_limit = 20"),
	PF("PF-RELAYHOST-SASL-TLS",
	   "smtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd\n"
	   "smtp_tls_security_level = may\nsmtp_sasl_security_options = noanonymous",
	   "smtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd\n"
	   "smtp_tls_security_level = encrypt"),
	PF("PF-SASL-PASSWD-PERMS",
	   "smtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = hash:@T@/sasl_passwd644\n"
	   "smtp_tls_security_level = encrypt",
	   "smtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = hash:@T@/sasl_passwd600\n"
	   "smtp_tls_security_level = encrypt"),
	/* abuse limits */
	PF("PF-HELO-REQUIRED", "smtpd_helo_required = no", "smtpd_helo_required = yes"),
	PF("PF-LIMIT-CONN-RATE", "smtpd_client_connection_rate_limit = 0",
	   "smtpd_client_connection_rate_limit = 60"),
	PF("PF-LIMIT-CONN-COUNT", "smtpd_client_connection_count_limit = 0",
	   "smtpd_client_connection_count_limit = 10"),
	PF("PF-LIMIT-ERRORS", "smtpd_error_sleep_time = 0s",
	   "smtpd_soft_error_limit = 3\nsmtpd_hard_error_limit = 6"),
	PF("PF-PIPELINING", "smtpd_data_restrictions =",
	   "smtpd_data_restrictions = reject_unauth_pipelining"),
	PF("PF-LIMIT-SIZE", "message_size_limit = 0", "message_size_limit = 52428800"),
	PF("PF-LIMIT-RECIPIENTS", "smtpd_recipient_limit = 0", "smtpd_recipient_limit = 100"),
	/* sender checks and the opposite mistakes */
	PF("PF-SENDER-NON-FQDN", "smtpd_sender_restrictions =",
	   "smtpd_sender_restrictions = reject_non_fqdn_sender"),
	PF("PF-SENDER-UNKNOWN-DOMAIN", "smtpd_sender_restrictions = reject_non_fqdn_sender",
	   "smtpd_sender_restrictions = reject_unknown_sender_domain"),
	PF("PF-HELO-NON-FQDN", "smtpd_helo_restrictions = reject_invalid_helo_hostname",
	   "smtpd_helo_restrictions = reject_non_fqdn_helo_hostname"),
	PF("PF-HELO-INVALID", "smtpd_helo_restrictions = reject_non_fqdn_helo_hostname",
	   "smtpd_helo_restrictions = reject_invalid_helo_hostname"),
	PF("PF-REJECT-UNKNOWN-CLIENT", "smtpd_client_restrictions = reject_unknown_client_hostname",
	   "smtpd_client_restrictions = reject_unknown_reverse_client_hostname"),
	PF("PF-RBL-DEAD", "smtpd_client_restrictions = reject_rbl_client dnsbl.sorbs.net",
	   "smtpd_client_restrictions = reject_rbl_client zen.spamhaus.org=127.0.0.[2..11]"),
	PF("PF-RBL-UNFILTERED", "smtpd_recipient_restrictions = reject_unauth_destination, "
				"reject_rbl_client zen.spamhaus.org",
	   "smtpd_recipient_restrictions = reject_unauth_destination, "
	   "reject_rbl_client zen.spamhaus.org=127.0.0.[2..255]"),
	/* host role, content checks, protocol */
	PF("PF-INET-SENDONLY", "mydestination =\ninet_interfaces = all",
	   "mydestination =\ninet_interfaces = loopback-only"),
	PF("PF-HEADER-CHECKS-NEVER", "header_checks = regexp:@T@/hc_never.regexp",
	   "header_checks = regexp:@T@/hc_good.regexp"),
	PF("PF-HEADER-CHECKS-ALL", "header_checks = pcre:@T@/hc_all.pcre",
	   "header_checks = pcre:@T@/hc_good.pcre"),
	PF("PF-HEADER-CHECKS-UNREADABLE", "header_checks = regexp:@T@/no-such-table",
	   "header_checks = regexp:@T@/hc_good.regexp"),
	PF("PF-SMUGGLING", "smtpd_forbid_bare_newline = no", "smtpd_forbid_bare_newline = normalize"),
	PF("PF-XCLIENT-HOSTS", "smtpd_authorized_xclient_hosts = 0.0.0.0/0",
	   "smtpd_authorized_xclient_hosts = 127.0.0.1"),
	PF("PF-XFORWARD-HOSTS", "smtpd_authorized_xforward_hosts = 198.51.0.0/16",
	   "smtpd_authorized_xforward_hosts = 127.0.0.1"),
	PF("PF-COMPAT-LEVEL", "compatibility_level = 0", "compatibility_level = 3.6"),
	/* Dovecot */
	DC("DC-AUTH-PLAINTEXT", "disable_plaintext_auth = no", "disable_plaintext_auth = yes"),
	DC("DC-SSL-OFF", "protocol pop3 {\n  ssl = no\n}\n", "ssl = required\n"),
	DC("DC-SSL-MIN-PROTOCOL", "ssl_min_protocol = TLSv1", "ssl_min_protocol = TLSv1.2"),
	DC("DC-SSL-CIPHERS", "ssl_cipher_list = ALL:@SECLEVEL=0", "ssl_cipher_list = HIGH:!aNULL:!MD5"),
	DC("DC-SSL-DH", "ssl_dh = <@F@/dh1024.pem", "ssl_dh = <@F@/ffdhe2048.pem"),
	DC("DC-SSL-KEY-PERMS", "ssl_key = <@T@/key644.pem", "ssl_key = <@T@/key600.pem"),
	DC("DC-PASSDB-NOPASSWORD",
	   "passdb {\n  driver = static\n  args = nopassword=y proxy=y host=localhost\n}\n",
	   "passdb {\n  driver = static\n  args = nopassword=y proxy=y host=10.0.0.5\n}\n"),
	DC("DC-PASSDB-STATIC-PASSWORD", "passdb {\n  driver = static\n  args = password=secret\n}\n",
	   "passdb {\n  driver = passwd-file\n  args = /etc/dovecot/users\n}\n"),
	DC("DC-LISTEN-ALL", "listen = *, ::", "listen = 127.0.0.1"),
	DC("DC-AUTH-DEBUG-PASSWORDS", "auth_debug_passwords = yes", "auth_debug_passwords = no"),
	DC("DC-AUTH-VERBOSE-PASSWORDS", "auth_verbose_passwords = plain", "auth_verbose_passwords = no"),
	DC("DC-AUTH-VERBOSE", "auth_verbose = yes", "auth_verbose = no"),
	DC("DC-TRUSTED-NETWORKS", "login_trusted_networks = 0.0.0.0/0",
	   "login_trusted_networks = 10.0.0.5 127.0.0.1"),
	DC("DC-AUTH-ANONYMOUS", "auth_mechanisms = plain anonymous", "auth_mechanisms = plain login"),
	DC("DC-AUTH-FAILURE-DELAY", "auth_failure_delay = 0", "auth_failure_delay = 2 secs"),
	/* mxjail */
	MX("MX-CONFIG-ERRORS", {"[postfix\nenabled = true\n", NULL, 1, 0},
	   {"[postfix]\nenabled = true\nlogpath = @T@/mail.log\n", NULL, 1, 0}),
	MX("MX-NO-JAILS", {"[postfix]\nenabled = false\nlogpath = @T@/mail.log\n", NULL, 1, 0},
	   {"[postfix]\nenabled = true\nlogpath = @T@/mail.log\n", NULL, 1, 0}),
	MX("MX-LOGPATH-MISSING",
	   {"[dovecot]\nenabled = true\nfilter = dovecot\nlogpath = @T@/no-such.log\n", NULL, 1, 0},
	   {"[dovecot]\nenabled = true\nfilter = dovecot\nlogpath = @T@/mail.log\n", NULL, 1, 0}),
	MX("MX-POSTFIX-JOURNAL-ONLY",
	   {"[postfix]\nenabled = true\nfilter = postfix\nlogpath = @T@/mail.log\n", NULL, 0, 0},
	   {"[postfix]\nenabled = true\nfilter = postfix\nbackend = systemd\n", NULL, 0, 0}),
	MX("MX-POSTFIX-LOGPATH-MISMATCH",
	   {"[postfix]\nenabled = true\nfilter = postfix\nlogpath = @T@/mail.log\n",
	    "maillog_file = @T@/postfix.log", 1, 0},
	   {"[postfix]\nenabled = true\nfilter = postfix\nlogpath = @T@/postfix.log\n",
	    "maillog_file = @T@/postfix.log", 1, 0}),
	MX("MX-NO-SASL-JAIL",
	   {"[postfix]\nenabled = true\nfilter = postfix\nlogpath = @T@/mail.log\n", NULL, 1, 0},
	   {"[postfix]\nenabled = true\nfilter = postfix[mode=aggressive]\nlogpath = @T@/mail.log\n",
	    NULL, 1, 0}),
	MX("MX-NO-DOVECOT-JAIL",
	   {"[postfix]\nenabled = true\nfilter = postfix\nlogpath = @T@/mail.log\n", NULL, 1, 1},
	   {"[postfix]\nenabled = true\nfilter = postfix\nlogpath = @T@/mail.log\n"
	    "[dovecot]\nenabled = true\nfilter = dovecot\nlogpath = @T@/mail.log\n",
	    NULL, 1, 1}),
	MX("MX-IGNOREIP-WIDE",
	   {"[DEFAULT]\nignoreip = 127.0.0.1/8 0.0.0.0/0\n[postfix]\nenabled = true\n"
	    "logpath = @T@/mail.log\n",
	    NULL, 1, 0},
	   {"[DEFAULT]\nignoreip = 127.0.0.1/8 ::1\n[postfix]\nenabled = true\n"
	    "logpath = @T@/mail.log\n",
	    NULL, 1, 0}),
};
#define NCASES (sizeof cases / sizeof cases[0])

static void dump(const struct audit_report *r)
{
	struct strbuf b = STRBUF_INIT;
	audit_format_text(r, &b);
	print_message("%s", strbuf_str(&b));
	strbuf_free(&b);
}

/* One check: its positive snippet raises it, its negative one does not. */
static void check_case(void **state)
{
	const struct tcase *c = *state;
	struct audit_report r;
	run_case(c, 1, &r);
	if (!audit_find(&r, c->id)) {
		dump(&r);
		fail_msg("%s: not raised by the positive snippet", c->id);
	}
	const struct audit_finding *f = audit_find(&r, c->id);
	assert_non_null(f->why[0] ? f->why : NULL);
	assert_non_null(f->fix[0] ? f->fix : NULL);
	assert_non_null(f->seen[0] ? f->seen : NULL);
	audit_report_free(&r);
	run_case(c, 0, &r);
	if (audit_find(&r, c->id)) {
		dump(&r);
		fail_msg("%s: raised by the negative snippet", c->id);
	}
	audit_report_free(&r);
}

/* ---- other tests ---- */

static void every_check_has_a_case(void **state)
{
	(void)state;
	assert_true(audit_ncheck >= 40);
	for (size_t i = 0; i < audit_ncheck; i++) {
		int found = 0;
		for (size_t k = 0; k < NCASES; k++)
			if (strcmp(cases[k].id, audit_checks[i].id) == 0)
				found = 1;
		if (!found)
			fail_msg("check %s has no test case", audit_checks[i].id);
	}
	for (size_t k = 0; k < NCASES; k++) {
		int found = 0;
		for (size_t i = 0; i < audit_ncheck; i++)
			if (strcmp(cases[k].id, audit_checks[i].id) == 0)
				found = 1;
		if (!found)
			fail_msg("test case %s names no check", cases[k].id);
	}
}

static char *exp_of(const struct pf_conf *pf, const char *name)
{
	return pf_expand(pf, NULL, name);
}

static void expansion_follows_compatibility_level(void **state)
{
	(void)state;
	struct pf_conf pf = {0};
	struct diag d = DIAG_INIT;
	pf_builtin_defaults(&pf);
	char *v = exp_of(&pf, "smtpd_relay_restrictions");
	assert_string_equal(v, ""); /* level 0 */
	free(v);
	v = exp_of(&pf, "mynetworks_style");
	assert_string_equal(v, "subnet");
	free(v);
	v = exp_of(&pf, "smtpd_hard_error_limit");
	assert_string_equal(v, "20");
	free(v);
	const char *m = "compatibility_level = 3.6\nmyhostname = mx.example.org\n"
			"smtpd_banner = $myhostname ESMTP ${mail_name} $(mail_version)\n"
			"a = ${myhostname?{set}:{unset}} ${nosuch?{set}:{unset}} ${nosuch:fallback} $$x\n"
			"b = ${{$compatibility_level} ==level {3.6} ? {eq} : {ne}} "
			"${{$compatibility_level} <level {3.10} ? {lt} : {ge}}\n"
			"loop = $loop x\n";
	pf_parse_main(&pf.main, "t", m, strlen(m), &d);
	v = exp_of(&pf, "smtpd_relay_restrictions");
	assert_string_equal(v, "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination");
	free(v);
	v = exp_of(&pf, "mynetworks_style");
	assert_string_equal(v, "host");
	free(v);
	v = exp_of(&pf, "smtpd_banner");
	assert_string_equal(v, "mx.example.org ESMTP Postfix 3.7");
	free(v);
	v = exp_of(&pf, "a");
	assert_string_equal(v, "set unset fallback $x");
	free(v);
	v = exp_of(&pf, "b");
	assert_string_equal(v, "eq lt");
	free(v);
	v = exp_of(&pf, "loop"); /* self-reference ends at the depth cap */
	assert_true(strlen(v) < 100);
	free(v);
	assert_int_equal(d.nerrors, 0);
	pf_conf_free(&pf);
	diag_clear(&d);
}

static void saved_postconf_d_is_read(void **state)
{
	(void)state;
	char path[600];
	snprintf(path, sizeof path, "%s/postconf-d.txt", fixdir);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	struct strbuf b = STRBUF_INIT;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		strbuf_add(&b, buf, n);
	fclose(f);
	struct pf_conf pf = {0};
	struct diag d = DIAG_INIT;
	pf_parse_main(&pf.defaults, path, b.s, b.len, &d);
	assert_int_equal(d.n, 0);
	const char *m = "compatibility_level = 3.6\n";
	pf_parse_main(&pf.main, "t", m, strlen(m), &d);
	char *v = exp_of(&pf, "relay_domains");
	assert_string_equal(v, "");
	free(v);
	v = exp_of(&pf, "smtpd_tls_key_file"); /* $smtpd_tls_cert_file, empty */
	assert_string_equal(v, "");
	free(v);
	v = exp_of(&pf, "smtpd_forbid_bare_newline");
	assert_string_equal(v, "no");
	free(v);
	pf_conf_free(&pf);
	strbuf_free(&b);
	diag_clear(&d);
}

static void postconf_formats(void **state)
{
	(void)state;
	struct pf_conf pf = {0};
	struct diag d = DIAG_INIT;
	const char *m = "# comment\nmynetworks = 127.0.0.0/8\n  192.168.0.0/16\n"
			"#between\n  [::1]/128\n\nmynetworks = 10.0.0.0/8\n"
			"not a setting\nsmtpd_banner = a # not a comment\n";
	pf_parse_main(&pf.main, "main.cf", m, strlen(m), &d);
	assert_string_equal(kvlist_get(&pf.main, "mynetworks"), "10.0.0.0/8"); /* last wins */
	assert_string_equal(kvlist_get(&pf.main, "smtpd_banner"), "a # not a comment");
	assert_int_equal(d.nerrors, 0);
	assert_true(d.n >= 1); /* "not a setting" is a warning with file:line */
	assert_non_null(strstr(d.items[0].text, "main.cf:8"));
	diag_clear(&d);
	const char *p = "submission/inet/smtpd_tls_security_level = encrypt\n"
			"127.0.0.1:2465/inet/smtpd_tls_wrappermode = yes\nbroken line\n";
	pf_parse_overrides(&pf, "P", p, strlen(p), &d);
	assert_int_equal(pf.nsvc, 2);
	assert_string_equal(pf.svc[1].name, "127.0.0.1:2465");
	assert_string_equal(kvlist_get(&pf.svc[0].over, "smtpd_tls_security_level"), "encrypt");
	const char *mm = "submission inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes\n"
			 "  -o { smtpd_client_restrictions = permit_sasl_authenticated, reject }\n"
			 "pickup unix n - y 60 1 pickup\nshort line\n";
	pf_parse_master(&pf, "M", mm, strlen(mm), &d);
	assert_int_equal(pf.nsvc, 3);
	assert_string_equal(pf.svc[0].command, "smtpd");
	assert_string_equal(kvlist_get(&pf.svc[0].over, "smtpd_client_restrictions"),
			    "permit_sasl_authenticated, reject");
	assert_string_equal(kvlist_get(&pf.svc[0].over, "smtpd_tls_security_level"), "encrypt");
	assert_string_equal(pf_raw(&pf, &pf.svc[0], "smtpd_sasl_auth_enable"), "yes");
	assert_int_equal(d.nerrors, 0);
	pf_conf_free(&pf);
	diag_clear(&d);
}

static void doveconf_tree(void **state)
{
	(void)state;
	struct dc_conf dc = {0};
	struct diag d = DIAG_INIT;
	const char *t = "# 2.3.19.1: /etc/dovecot/dovecot.conf\nlisten = 127.0.0.1\n"
			"service imap-login {\n  inet_listener imap {\n    port = 143\n  }\n}\n"
			"passdb {\n  driver = static\n  args = nopassword=y\n}\nprotocol pop3 {\n"
			"  ssl = no\n}\n}\nbogus line\nssl_key = # hidden, use -P to show it\n";
	dc_parse(&dc, "dc", t, strlen(t), &d);
	assert_string_equal(dc_get(&dc.root, "listen"), "127.0.0.1");
	assert_int_equal(dc.root.nkids, 5);
	const struct dc_node *svc = &dc.root.kids[1];
	assert_string_equal(svc->key, "service");
	assert_string_equal(svc->name, "imap-login");
	assert_string_equal(svc->kids[0].name, "imap");
	assert_string_equal(dc_get(&svc->kids[0], "port"), "143");
	assert_int_equal(d.nerrors, 0);
	assert_int_equal(d.n, 2); /* stray '}' and the bogus line */
	dc_set(&dc.root, "ssl_key", "</etc/ssl/key.pem");
	assert_string_equal(dc_get(&dc.root, "ssl_key"), "</etc/ssl/key.pem");
	dc_conf_free(&dc);
	diag_clear(&d);
}

static void hostile_input(void **state)
{
	(void)state;
	size_t n = 1024 * 1024 + 100;
	char *big = xmalloc(n + 1);
	memset(big, 'a', n);
	memcpy(big, "x = ", 4);
	big[n / 2] = '\0'; /* NUL inside */
	big[n - 1] = '\n';
	big[n] = '\0';
	struct pf_conf pf = {0};
	struct diag d = DIAG_INIT;
	pf_parse_main(&pf.main, "big", big, n, &d);
	pf_parse_overrides(&pf, "big", big, n, &d);
	pf_parse_master(&pf, "big", big, n, &d);
	/* unbalanced braces and deep nesting */
	const char *e = "a = ${{{{{{${b?{${c:${", *e2 = "b = $a $a $a $a $a $a $a $a\n";
	pf_parse_main(&pf.main, "e", e, strlen(e), &d);
	pf_parse_main(&pf.main, "e2", e2, strlen(e2), &d);
	pf_builtin_defaults(&pf);
	char *v = pf_expand(&pf, NULL, "b");
	assert_true(strlen(v) <= 64 * 1024 + 64);
	free(v);
	struct audit_report r = {0};
	audit_postfix(&pf, &r);
	audit_report_free(&r);
	pf_conf_free(&pf);
	struct dc_conf dc = {0};
	dc_parse(&dc, "big", big, n, &d);
	struct strbuf deep = STRBUF_INIT;
	for (int i = 0; i < 100; i++)
		strbuf_adds(&deep, "passdb x {\n");
	strbuf_adds(&deep, "}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n}\n");
	dc_parse(&dc, "deep", deep.s, deep.len, &d);
	audit_dovecot(&dc, &r);
	audit_report_free(&r);
	dc_conf_free(&dc);
	strbuf_free(&deep);
	free(big);
	diag_clear(&d);
}

static void severity_depends_on_service(void **state)
{
	(void)state;
	struct audit_report r = {0};
	run_pf("smtpd_tls_security_level = may\nsmtpd_tls_protocols = >=TLSv1\n"
	       "smtpd_tls_mandatory_protocols = >=TLSv1\nsmtpd_tls_cert_file = /x.pem\n"
	       "M:smtp inet n - y - - smtpd\n"
	       "M:submission inet n - y - - smtpd -o smtpd_tls_security_level=encrypt\n",
	       &r);
	size_t low = 0, med = 0;
	for (size_t i = 0; i < r.n; i++)
		if (strcmp(r.v[i].id, "PF-TLS-PROTOCOLS") == 0) {
			if (r.v[i].sev == AUDIT_LOW && strstr(r.v[i].where, "port 25"))
				low++;
			if (r.v[i].sev == AUDIT_MEDIUM && strstr(r.v[i].where, "port 587"))
				med++;
		}
	assert_int_equal(low, 1);
	assert_int_equal(med, 1);
	audit_report_free(&r);
	/* 2048-bit custom DH is info only; 1024 is high */
	run_pf("smtpd_tls_dh1024_param_file = @F@/ffdhe2048.pem", &r);
	assert_int_equal(audit_find(&r, "PF-TLS-DH")->sev, AUDIT_INFO);
	audit_report_free(&r);
	run_pf("smtpd_tls_dh1024_param_file = @F@/dh1024.pem", &r);
	assert_int_equal(audit_find(&r, "PF-TLS-DH")->sev, AUDIT_HIGH);
	audit_report_free(&r);
	/* a public /16 in mynetworks is medium, the world is high */
	run_pf("mynetworks = 127.0.0.0/8 198.51.0.0/16", &r);
	assert_int_equal(audit_find(&r, "PF-RELAY-MYNETWORKS")->sev, AUDIT_MEDIUM);
	audit_report_free(&r);
	run_pf("mynetworks = [::]/0", &r);
	assert_int_equal(audit_find(&r, "PF-RELAY-MYNETWORKS")->sev, AUDIT_HIGH);
	audit_report_free(&r);
	/* the passdb incident: proxy_maybe, or a proxy to itself, is no fix */
	run_dc("listen = 192.0.2.1\npassdb {\n  driver = static\n"
	       "  args = nopassword=y proxy_maybe=y host=10.0.0.5\n}\n",
	       &r);
	assert_non_null(audit_find(&r, "DC-PASSDB-NOPASSWORD"));
	audit_report_free(&r);
	run_dc("listen = 192.0.2.1\npassdb {\n  driver = static\n"
	       "  args = nopassword=y proxy=y host=192.0.2.1\n}\n",
	       &r);
	assert_non_null(audit_find(&r, "DC-PASSDB-NOPASSWORD"));
	audit_report_free(&r);
	run_dc("passdb {\n  driver = static\n  args = nopassword\n}\n", &r);
	assert_non_null(audit_find(&r, "DC-PASSDB-NOPASSWORD"));
	audit_report_free(&r);
	/* the static password itself is never shown */
	run_dc("passdb {\n  driver = static\n  args = password=s3cret\n}\n", &r);
	struct strbuf b = STRBUF_INIT;
	audit_format_json(&r, &b);
	assert_null(strstr(b.s, "s3cret"));
	strbuf_free(&b);
	audit_report_free(&r);
	/* header_checks: if/endif blocks and a negated catch-all */
	run_pf("header_checks = regexp:@T@/hc_ifblock.regexp", &r);
	assert_null(audit_find(&r, "PF-HEADER-CHECKS-ALL"));
	assert_null(audit_find(&r, "PF-HEADER-CHECKS-NEVER"));
	audit_report_free(&r);
	run_pf("header_checks = regexp:@T@/hc_negall.regexp", &r);
	assert_int_equal(audit_find(&r, "PF-HEADER-CHECKS-ALL")->sev, AUDIT_HIGH);
	audit_report_free(&r);
}

static struct strbuf slurp(const char *name)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", fixdir, name);
	struct strbuf b = STRBUF_INIT;
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		strbuf_add(&b, buf, n);
	fclose(f);
	return b;
}

static void lab_audit(const char *which, struct audit_report *r)
{
	char name[64];
	struct pf_conf pf = {0};
	struct diag d = DIAG_INIT;
	struct strbuf b;
	snprintf(name, sizeof name, "pf-%s.n", which);
	b = slurp(name);
	pf_parse_main(&pf.main, name, b.s, b.len, &d);
	strbuf_free(&b);
	b = slurp("postconf-d.txt");
	pf_parse_main(&pf.defaults, "d", b.s, b.len, &d);
	strbuf_free(&b);
	snprintf(name, sizeof name, "pf-%s.P", which);
	b = slurp(name);
	pf_parse_overrides(&pf, name, b.s, b.len, &d);
	strbuf_free(&b);
	snprintf(name, sizeof name, "pf-%s.M", which);
	b = slurp(name);
	pf_parse_master(&pf, name, b.s, b.len, &d);
	strbuf_free(&b);
	struct dc_conf dc = {0};
	snprintf(name, sizeof name, "dc-%s.n", which);
	b = slurp(name);
	dc_parse(&dc, name, b.s, b.len, &d);
	strbuf_free(&b);
	assert_int_equal(d.nerrors, 0);
	audit_postfix(&pf, r);
	audit_dovecot(&dc, r);
	pf_conf_free(&pf);
	dc_conf_free(&dc);
	diag_clear(&d);
}

static void saved_lab_configs(void **state)
{
	(void)state;
	struct audit_report r = {0};
	lab_audit("weak", &r);
	/* the weaknesses the range's weak targets were built with (DH files are
	 * not in the fixtures: their size is checked in the e2e test) */
	static const char *const weak[] = {
		"PF-RELAY-MYNETWORKS", "PF-ENUM-VRFY", "PF-BANNER-VERSION", "PF-TLS-PROTOCOLS",
		"PF-AUTH-CLEARTEXT", "PF-SMUGGLING", "PF-TLS-OFF", "PF-HELO-REQUIRED",
		"PF-LIMIT-CONN-RATE", "DC-AUTH-PLAINTEXT", "DC-PASSDB-NOPASSWORD", "DC-SSL-OFF",
		"DC-SSL-MIN-PROTOCOL", "DC-SSL-CIPHERS", NULL};
	for (size_t i = 0; weak[i]; i++)
		if (!audit_find(&r, weak[i])) {
			dump(&r);
			fail_msg("weak lab: %s not raised", weak[i]);
		}
	assert_true(audit_count(&r, AUDIT_HIGH) >= 4);
	audit_report_free(&r);
	lab_audit("hard", &r);
	if (audit_count(&r, AUDIT_HIGH) != 0) {
		dump(&r);
		fail_msg("hardened lab has high findings");
	}
	audit_report_free(&r);
}

static void report_forms(void **state)
{
	(void)state;
	struct audit_report r = {0};
	audit_add(&r, "PF-ENUM-VRFY", AUDIT_MEDIUM, "smtp/inet", "disable_vrfy_command = no", "w", "f");
	audit_add(&r, "PF-ENUM-VRFY", AUDIT_MEDIUM, "submission/inet", "disable_vrfy_command = no", "w",
		  "f");
	audit_add(&r, "PF-RELAY-OPEN", AUDIT_HIGH, "main.cf", "x \"quoted\"\n", "w", "f");
	audit_note(&r, "assumed %s", "defaults");
	assert_int_equal(r.n, 2);
	assert_string_equal(r.v[0].where, "smtp/inet, submission/inet");
	assert_int_equal(audit_score(&r), 65);
	struct strbuf b = STRBUF_INIT;
	audit_format_text(&r, &b);
	const char *hi = strstr(b.s, "HIGH (1)"), *me = strstr(b.s, "MEDIUM (1)");
	assert_non_null(hi);
	assert_non_null(me);
	assert_true(hi < me);
	assert_non_null(strstr(b.s, "score: 65/100"));
	strbuf_reset(&b);
	audit_format_json(&r, &b);
	assert_non_null(strstr(b.s, "\"score\":65,\"high\":1,\"medium\":1"));
	assert_non_null(strstr(b.s, "\"seen\":\"x \\\"quoted\\\"\\n\""));
	assert_non_null(strstr(b.s, "\"notes\":[\"assumed defaults\"]"));
	strbuf_free(&b);
	audit_report_free(&r);
	for (int i = 0; i < 10; i++)
		audit_add(&r, "X", AUDIT_HIGH, "w", i ? "b" : "a", "w", "f");
	assert_int_equal(audit_score(&r), 50);
	audit_report_free(&r);
}

static int make_scratch(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mxjail-test-audit-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	const char *src = getenv("MXJAIL_SRCDIR");
	snprintf(fixdir, sizeof fixdir, "%s/tests/fixtures/audit", src ? src : ".");
	const char *key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
	write_file("key644.pem", key, 0644);
	write_file("key600.pem", key, 0600);
	write_file("sasl_passwd644", "[relay.example]:587 user:pass\n", 0644);
	write_file("sasl_passwd600", "[relay.example]:587 user:pass\n", 0600);
	write_file("hc_never.regexp", "# envelope commands never reach header_checks\n"
				      "/^MAIL FROM:.*spammer/ REJECT\n",
		   0644);
	write_file("hc_good.regexp", "/^Subject:.*viagra/ REJECT spam\n/^X-Spam-Flag: YES/ DISCARD\n",
		   0644);
	write_file("hc_good.pcre", "/^Subject:.*\\bcasino\\b/i REJECT spam\n", 0644);
	write_file("hc_all.pcre", "/^Subject:.*casino/ REJECT spam\n/.*/ REJECT everything\n", 0644);
	write_file("hc_ifblock.regexp",
		   "if /^Subject:/\n!/lottery/ WARN not a lottery\nendif\n", 0644);
	write_file("hc_negall.regexp", "!/^X-Never-Present-/ REJECT\n", 0644);
	write_file("mail.log", "", 0644);
	write_file("postfix.log", "", 0644);
	return 0;
}

static void remove_scratch(void)
{
	char cmd[400];
	if (strncmp(tmpdir, "/tmp/mxjail-test-audit-", 23) == 0) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
}

int main(void)
{
	if (make_scratch() != 0) {
		fprintf(stderr, "cannot make a scratch directory\n");
		return 1;
	}
	struct CMUnitTest tests[NCASES + 16];
	size_t n = 0;
	for (size_t i = 0; i < NCASES; i++) {
		tests[n] = (struct CMUnitTest){cases[i].id, check_case, NULL, NULL, (void *)&cases[i]};
		n++;
	}
	const struct CMUnitTest more[] = {
		cmocka_unit_test(every_check_has_a_case),
		cmocka_unit_test(expansion_follows_compatibility_level),
		cmocka_unit_test(saved_postconf_d_is_read),
		cmocka_unit_test(postconf_formats),
		cmocka_unit_test(doveconf_tree),
		cmocka_unit_test(hostile_input),
		cmocka_unit_test(severity_depends_on_service),
		cmocka_unit_test(saved_lab_configs),
		cmocka_unit_test(report_forms),
	};
	for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
		tests[n++] = more[i];
	int rc = _cmocka_run_group_tests("audit", tests, n, NULL, NULL);
	remove_scratch();
	return rc;
}
