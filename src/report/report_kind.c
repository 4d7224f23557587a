/*
 * report_kind - what kind of attack a matched log line is, which service it
 * was aimed at and which user name it tried.
 *
 * A filter says that a line is a failure, not what was tried: postfix's one
 * filter covers SASL guessing, relay probes and hosts without reverse DNS.
 * The report wants those apart, so each line is compared with a short
 * ordered table of the messages Postfix, Dovecot, OpenSSH, BIND, Pure-FTPd
 * and Roundcube write. Only fixed substrings are searched (no regex): the
 * line was already matched and anchored by its filter, this only names it.
 * The first row whose every needle occurs wins, so specific rows come first.
 */
#include <stdio.h>
#include <string.h>

#include "report/report.h"

const struct report_kind report_kinds[] = {
	{"sasl_auth_failed", "SMTP AUTH (SASL) failed", "smtp", 0},
	{"lost_after_auth", "lost connection after AUTH", "smtp", 0},
	{"auth_disconnect", "disconnect after failed AUTH", "smtp", 0},
	{"relay_denied", "relay access denied", "smtp", 1},
	{"spoof", "sender spoofing rejected", "smtp", 1},
	{"no_rdns", "no reverse DNS (cannot find your hostname)", "smtp", 0},
	{"rdns_mismatch", "hostname does not resolve to address", "smtp", 0},
	{"lost_after_connect", "lost connection after CONNECT (scan)", "smtp", 0},
	{"lost_connection", "lost connection after other command", "smtp", 0},
	{"helo_rejected", "HELO rejected", "smtp", 0},
	{"smtp_user_unknown", "unknown recipient (user enumeration)", "smtp", 0},
	{"sender_rejected", "sender address rejected", "smtp", 0},
	{"rbl", "listed in a DNS blocklist", "smtp", 0},
	{"too_many_errors", "too many errors", "smtp", 0},
	{"pipelining", "improper command pipelining", "smtp", 0},
	{"smtp_rejected", "other SMTP reject", "smtp", 0},
	{"mail_unknown_user", "IMAP/POP3 unknown user", "imap/pop3", 0},
	{"mail_password_mismatch", "IMAP/POP3 password mismatch", "imap/pop3", 0},
	{"mail_pam_failure", "IMAP/POP3 PAM authentication failure", "imap/pop3", 0},
	{"mail_login_failed", "IMAP/POP3 login failed", "imap/pop3", 0},
	{"ssh_failed_password", "SSH failed password", "ssh", 0},
	{"ssh_invalid_user", "SSH invalid user", "ssh", 0},
	{"ssh_too_many", "SSH too many authentication failures", "ssh", 0},
	{"ssh_other", "other SSH failure", "ssh", 0},
	{"dns_query_denied", "DNS query denied", "dns", 0},
	{"ftp_auth_failed", "FTP authentication failed", "ftp", 0},
	{"web_login_failed", "webmail login failed", "web", 0},
	{"recidive", "banned again (recidive)", "mxjail", 0},
	{"other", "other failure", "other", 0},
};
const size_t report_nkinds = sizeof report_kinds / sizeof report_kinds[0];
_Static_assert(sizeof report_kinds / sizeof report_kinds[0] <= 64, "kind sets are 64-bit masks");

/* Row of the classifier: every non-NULL needle must occur. */
struct krule {
	const char *kind;
	const char *n1, *n2;
};

static const struct krule rules[] = {
	{"sasl_auth_failed", "SASL ", "authentication failed"},
	{"lost_after_auth", "lost connection after AUTH ", NULL},
	{"auth_disconnect", "disconnect from ", " auth=0/"},
	{"relay_denied", "Relay access denied", NULL},
	{"spoof", "Sender address rejected: not owned by", NULL},
	{"spoof", "Sender address rejected: not logged in", NULL},
	{"no_rdns", "cannot find your hostname", NULL},
	{"rdns_mismatch", "does not resolve to address", NULL},
	{"lost_after_connect", "lost connection after CONNECT ", NULL},
	{"lost_connection", "lost connection after ", NULL},
	{"helo_rejected", "Helo command rejected", NULL},
	{"smtp_user_unknown", "User unknown", "reject:"},
	{"smtp_user_unknown", "Recipient address rejected", "reject:"},
	{"sender_rejected", "Sender address rejected", "reject:"},
	{"rbl", " blocked using ", NULL},
	{"too_many_errors", "too many errors after", NULL},
	{"pipelining", "improper command pipelining", NULL},
	{"smtp_rejected", "reject:", NULL},
	{"mail_unknown_user", "): unknown user", NULL},
	{"mail_unknown_user", "User not known to the underlying", NULL},
	{"mail_password_mismatch", "Password mismatch", NULL},
	{"mail_password_mismatch", "nvalid credentials", NULL},
	{"mail_pam_failure", "pam_authenticate() failed", NULL},
	{"mail_login_failed", "(auth failed, ", NULL},
	{"mail_login_failed", "-login: ", "auth"},
	{"ssh_failed_password", "Failed password for ", NULL},
	{"ssh_failed_password", "Failed keyboard-interactive", NULL},
	{"ssh_invalid_user", "nvalid user ", NULL},
	{"ssh_invalid_user", "llegal user ", NULL},
	{"ssh_too_many", "maximum authentication attempts exceeded", NULL},
	{"ssh_too_many", "Too many authentication failures", NULL},
	{"ssh_other", "sshd", NULL},
	{"dns_query_denied", "query", " denied"},
	{"ftp_auth_failed", "pure-ftpd", "uthentication failed"},
	{"ftp_auth_failed", "ftp", "uthentication failed"},
	{"web_login_failed", "oundcube", NULL},
	{"recidive", "] Ban ", NULL},
	{"mail_login_failed", "dovecot", NULL},
};

static const char *find(const char *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	if (n == 0 || n > len)
		return NULL;
	return memmem(hay, len, needle, n);
}

static size_t kind_index(const char *name)
{
	for (size_t i = 0; i < report_nkinds; i++)
		if (strcmp(report_kinds[i].name, name) == 0)
			return i;
	return report_nkinds - 1;
}

size_t report_classify(const char *line, size_t len)
{
	for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
		if (!find(line, len, rules[i].n1))
			continue;
		if (rules[i].n2 && !find(line, len, rules[i].n2))
			continue;
		return kind_index(rules[i].kind);
	}
	return report_nkinds - 1;
}

const char *report_service(const char *line, size_t len, size_t kind)
{
	if (kind >= report_nkinds)
		kind = report_nkinds - 1;
	const char *svc = report_kinds[kind].service;
	if (strcmp(svc, "smtp") == 0) {
		/* the master.cf service name is the middle of postfix/NAME/smtpd */
		if (find(line, len, "/submission/"))
			return "submission";
		if (find(line, len, "/smtps/"))
			return "smtps";
		return "smtp";
	}
	if (strcmp(svc, "imap/pop3") == 0) {
		if (find(line, len, "imap-login"))
			return "imap";
		if (find(line, len, "pop3-login"))
			return "pop3";
		if (find(line, len, "managesieve-login"))
			return "sieve";
		if (find(line, len, "submission-login"))
			return "submission";
		return "imap/pop3";
	}
	if (kind == report_nkinds - 1) {
		if (find(line, len, "postfix"))
			return "smtp";
		if (find(line, len, "dovecot"))
			return "imap/pop3";
		if (find(line, len, "sshd"))
			return "ssh";
	}
	return svc;
}

/* Copies the bytes from p up to the first byte of stop (or the end), at most
 * buflen - 1 of them. Returns 1 when something non-empty was copied. */
static int copy_until(const char *p, const char *end, const char *stop, char *buf, size_t buflen)
{
	size_t n = 0;
	while (p + n < end && !strchr(stop, p[n]) && p[n] != '\0')
		n++;
	if (n == 0 || buflen == 0)
		return 0;
	if (n > buflen - 1)
		n = buflen - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return 1;
}

int report_find_field(const char *line, size_t len, const char *field, char *buf, size_t buflen)
{
	char pat[32];
	snprintf(pat, sizeof pat, " %s=<", field);
	const char *p = find(line, len, pat);
	if (!p)
		return 0;
	p += strlen(pat);
	return copy_until(p, line + len, ">", buf, buflen);
}

int report_find_user(const char *line, size_t len, char *buf, size_t buflen)
{
	const char *end = line + len;
	const char *p;
	if ((p = find(line, len, " user=<")))
		return copy_until(p + 7, end, ">", buf, buflen);
	if ((p = find(line, len, "sasl_username=")))
		return copy_until(p + 14, end, ", ", buf, buflen);
	/* sshd: "Failed password for [invalid user ]NAME from", "Invalid user NAME from" */
	static const char *const lead[] = {"Failed password for invalid user ",
					   "Failed password for ", "nvalid user ", "llegal user "};
	for (size_t i = 0; i < sizeof lead / sizeof lead[0]; i++) {
		if (!(p = find(line, len, lead[i])))
			continue;
		p += strlen(lead[i]);
		const char *from = find(p, (size_t)(end - p), " from ");
		if (!from || from == p)
			return 0;
		size_t n = (size_t)(from - p);
		if (n > buflen - 1)
			n = buflen - 1;
		memcpy(buf, p, n);
		buf[n] = '\0';
		return 1;
	}
	return 0;
}
