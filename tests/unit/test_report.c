/*
 * test_report - the report module without logs or filters: naming attack
 * kinds and services from log lines, user names and fields, ban notices and
 * policy lines, the caps on attacker-keyed tables, --since, key/value rows of
 * the policy service, and escaping in the JSON and HTML output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/strbuf.h"
#include "report/report.h"

static const char *kind_of(const char *line)
{
	return report_kinds[report_classify(line, strlen(line))].name;
}

static void classify_mail_stack(void **state)
{
	(void)state;
	static const struct {
		const char *line, *kind, *service;
	} cases[] = {
		{"mx postfix/submission/smtpd[1]: warning: unknown[192.0.2.1]: SASL LOGIN "
		 "authentication failed: UGFzc3dvcmQ6",
		 "sasl_auth_failed", "submission"},
		{"mx postfix/smtpd[1]: lost connection after AUTH from unknown[192.0.2.1]",
		 "lost_after_auth", "smtp"},
		{"mx postfix/smtps/smtpd[1]: disconnect from unknown[192.0.2.1] ehlo=1 auth=0/1 "
		 "commands=1/2",
		 "auth_disconnect", "smtps"},
		{"mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 554 5.7.1 "
		 "<x@example.com>: Relay access denied; from=<a@b> to=<x@example.com>",
		 "relay_denied", "smtp"},
		{"mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 553 5.7.1 "
		 "<ceo@example.org>: Sender address rejected: not owned by user bob; "
		 "from=<ceo@example.org> to=<x@example.net>",
		 "spoof", "smtp"},
		{"mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 450 4.7.1 "
		 "Client host rejected: cannot find your hostname, [192.0.2.1]",
		 "no_rdns", "smtp"},
		{"mx postfix/smtpd[1]: warning: hostname h.example does not resolve to address "
		 "192.0.2.1",
		 "rdns_mismatch", "smtp"},
		{"mx postfix/smtpd[1]: lost connection after CONNECT from unknown[192.0.2.1]",
		 "lost_after_connect", "smtp"},
		{"mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 550 5.1.1 "
		 "<nobody@example.org>: Recipient address rejected: User unknown in local recipient "
		 "table; from=<a@b> to=<nobody@example.org>",
		 "smtp_user_unknown", "smtp"},
		{"mx dovecot: auth: passwd-file(admin,192.0.2.1,<abc>): unknown user",
		 "mail_unknown_user", "imap/pop3"},
		{"mx dovecot: auth: sql(admin,192.0.2.1,<abc>): Password mismatch",
		 "mail_password_mismatch", "imap/pop3"},
		{"mx dovecot: auth-worker(9): pam(admin,192.0.2.1,<abc>): pam_authenticate() failed: "
		 "Authentication failure (password mismatch?)",
		 "mail_pam_failure", "imap/pop3"},
		{"mx dovecot: pop3-login: Disconnected (auth failed, 1 attempts in 2 secs): "
		 "user=<admin>, method=PLAIN, rip=192.0.2.1",
		 "mail_login_failed", "pop3"},
		{"mx sshd[1]: Failed password for invalid user admin from 192.0.2.1 port 2 ssh2",
		 "ssh_failed_password", "ssh"},
		{"mx sshd[1]: Invalid user admin from 192.0.2.1 port 2", "ssh_invalid_user", "ssh"},
		{"mx named[1]: client @0x1 192.0.2.1#53 (x.example): query (cache) 'x/A/IN' denied",
		 "dns_query_denied", "dns"},
		{"something nobody knows", "other", "other"},
		{"", "other", "other"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t k = report_classify(cases[i].line, strlen(cases[i].line));
		assert_string_equal(report_kinds[k].name, cases[i].kind);
		assert_string_equal(report_service(cases[i].line, strlen(cases[i].line), k),
				    cases[i].service);
	}
	/* the line's length is authoritative: nothing past it is read */
	const char *l = "lost connection after AUTH from x";
	assert_string_equal(report_kinds[report_classify(l, 10)].name, "other");
	assert_string_equal(kind_of("sshd[1]: Connection closed by 192.0.2.1"), "ssh_other");
}

static void users_and_fields(void **state)
{
	(void)state;
	char buf[64];
	const char *l = "imap-login: Disconnected (auth failed): user=<admin@example.org>, rip=x";
	assert_int_equal(report_find_user(l, strlen(l), buf, sizeof buf), 1);
	assert_string_equal(buf, "admin@example.org");
	l = "sshd[1]: Failed password for invalid user oracle from 192.0.2.1 port 2 ssh2";
	assert_int_equal(report_find_user(l, strlen(l), buf, sizeof buf), 1);
	assert_string_equal(buf, "oracle");
	l = "sshd[1]: Failed password for root from 192.0.2.1 port 2 ssh2";
	assert_int_equal(report_find_user(l, strlen(l), buf, sizeof buf), 1);
	assert_string_equal(buf, "root");
	l = "client=x[192.0.2.1], sasl_method=PLAIN, sasl_username=bob@example.org";
	assert_int_equal(report_find_user(l, strlen(l), buf, sizeof buf), 1);
	assert_string_equal(buf, "bob@example.org");
	l = "SASL LOGIN authentication failed: UGFzc3dvcmQ6";
	assert_int_equal(report_find_user(l, strlen(l), buf, sizeof buf), 0);
	l = "sshd[1]: Invalid user  from 192.0.2.1";    /* empty name: none */
	assert_int_equal(report_find_user(l, strlen(l), buf, sizeof buf), 0);
	/* a long name is cut to the buffer */
	char small[8];
	l = "sshd[1]: Invalid user abcdefghijklmnop from 192.0.2.1";
	assert_int_equal(report_find_user(l, strlen(l), small, sizeof small), 1);
	assert_string_equal(small, "abcdefg");
	l = "reject: RCPT from u[192.0.2.1]: 554 5.7.1 <v@x.example>: Relay access denied; "
	    "from=<s@y.example> to=<v@x.example> proto=ESMTP";
	assert_int_equal(report_find_field(l, strlen(l), "to", buf, sizeof buf), 1);
	assert_string_equal(buf, "v@x.example");
	assert_int_equal(report_find_field(l, strlen(l), "from", buf, sizeof buf), 1);
	assert_string_equal(buf, "s@y.example");
	assert_int_equal(report_find_field(l, strlen(l), "helo", buf, sizeof buf), 0);
	l = "to=<unterminated";
	assert_int_equal(report_find_field(l, strlen(l), "to", buf, sizeof buf), 0);
}

static char *json_of(struct report *r)
{
	struct strbuf o = STRBUF_INIT;
	report_finish(r, NULL, 2000000000.0);
	report_format_json(r, &o);
	return strbuf_detach(&o);
}

static void failures_bans_and_policy(void **state)
{
	(void)state;
	struct report_opts o = {.top = 5};
	struct report *r = report_new(&o);
	size_t ssh = report_jail(r, "sshd"), pf = report_jail(r, "postfix");
	assert_int_equal(report_jail(r, "sshd"), ssh);
	const char *fl = "Mar  1 10:00:00 mx sshd[1]: Failed password for root from 192.0.2.1 "
			 "port 2 ssh2";
	size_t both[2] = {ssh, pf};
	report_failure(r, both, 2, "192.0.2.1", 1740823200, fl, strlen(fl), NULL);
	report_failure(r, &ssh, 1, "192.0.2.2", 1740823260, fl, strlen(fl), "<b>&\"x\"</b>");
	report_failure(r, &ssh, 1, "2001:db8::1", 1740826800, fl, strlen(fl), NULL);
	report_failure(r, &ssh, 1, "", 1740826800, fl, strlen(fl), NULL);   /* no id: ignored */
	report_ignored(r, ssh);
	const char *n1 = "2025-03-01 10:00:00,1 mxjail[2]: NOTICE  [sshd] Ban 192.0.2.1";
	const char *n2 = "2025-03-01 11:00:00,1 fail2ban.actions [3]: NOTICE [sshd] Restore Ban "
			 "192.0.2.1";
	const char *n3 = "NOTICE [sshd] Ban not-an-address";
	const char *n4 = "NOTICE [sshd] Increase Ban 192.0.2.1 (2 # 1200 s)";
	const char *n5 = "NOTICE [a jail] Ban 192.0.2.9";
	report_scan_line(r, n1, strlen(n1), 1740823200);
	report_scan_line(r, n2, strlen(n2), 1740826800);
	report_scan_line(r, n3, strlen(n3), -1);
	report_scan_line(r, n4, strlen(n4), -1);
	report_scan_line(r, n5, strlen(n5), -1);
	const char *g = "postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[192.0.2.5]: 450 4.2.0 <a@b>: "
			"Recipient address rejected: Greylisted, please retry in 300 seconds";
	report_scan_line(r, g, strlen(g), 1740823200);
	/* what the policy engine lists; a sender cannot fake a marker: it is escaped */
	struct report_policy_state ps;
	report_policy_count(
		"{\"triplets\":[{\"client\":\"192.0.2\",\"sender\":\"a\\\",\\\"state\\\":"
		"\\\"passed\\\"}\",\"recipient\":\"c@d\",\"first\":1,\"last\":400,\"count\":2,"
		"\"state\":\"passed\"},{\"client\":\"192.0.2\",\"sender\":\"b\",\"recipient\":\"c\","
		"\"first\":1,\"last\":1,\"count\":1,\"state\":\"waiting\"}],\"clients\":[{\"client\":"
		"\"192.0.2\",\"passes\":9,\"last\":400,\"whitelisted\":true}]}",
		"[{\"limit\":\"a\",\"keytype\":\"client_address\",\"key\":\"x\",\"last\":1,"
		"\"exceeded\":4,\"windows\":[]},{\"limit\":\"a\",\"keytype\":\"client_address\","
		"\"key\":\"y\",\"last\":1,\"exceeded\":0,\"windows\":[]}]",
		&ps);
	assert_int_equal(ps.triplets, 2);
	assert_int_equal(ps.passed, 1);
	assert_int_equal(ps.waiting, 1);
	assert_int_equal(ps.clients, 1);
	assert_int_equal(ps.whitelisted, 1);
	assert_int_equal(ps.rl_keys, 2);
	assert_int_equal(ps.rl_exceeded, 4);
	report_policy_state(r, &ps);
	assert_int_equal(report_estimate_ban(r, ssh, "192.0.2.2", 1000, 600), 1);
	assert_int_equal(report_estimate_ban(r, ssh, "192.0.2.2", 1500, 600), 0); /* still banned */
	assert_int_equal(report_estimate_ban(r, ssh, "192.0.2.2", 1700, 600), 1);
	assert_int_equal(report_estimate_ban(r, pf, "192.0.2.2", 1500, -1), 1);
	assert_int_equal(report_estimate_ban(r, pf, "192.0.2.2", 9e9, -1), 0);   /* forever */
	char *js = json_of(r);
	assert_non_null(strstr(js, "\"failures\":3,"));
	/* .1 .2 ::1; "[a jail]" is no jail name, so .9 is not a ban */
	assert_non_null(strstr(js, "\"distinct_addresses\":3,"));
	assert_non_null(strstr(js, "\"ssh_failed_password\":{"));
	assert_non_null(strstr(js, "\"lines\":3,\"distinct_addresses\":3"));
	assert_non_null(strstr(js, "{\"name\":\"sshd\",\"failures\":3,\"ignored\":1,"
				   "\"bans\":{\"state\":0,\"log\":2,\"estimated\":2}"));
	assert_non_null(strstr(js, "{\"name\":\"postfix\",\"failures\":1,"));
	assert_non_null(strstr(js, "\"greylisted\":1"));
	assert_non_null(strstr(js, "\"greylist_triplets\":2,\"greylist_passed\":1,"
				   "\"greylist_waiting\":1,\"greylist_clients\":1,"
				   "\"auto_whitelisted\":1,\"ratelimit_keys\":2,"
				   "\"ratelimit_exceeded\":4"));
	assert_non_null(strstr(js, "\"repeat_offenders\":2"));
	assert_non_null(strstr(js, "\"user\":\"<b>&\\\"x\\\"</b>\""));
	assert_non_null(strstr(js, "\"network\":\"2001:db8::/64\""));
	assert_null(strstr(js, "not-an-address"));
	free(js);
	struct strbuf h = STRBUF_INIT;
	report_format_html(r, &h);
	assert_null(strstr(strbuf_str(&h), "<b>&"));
	assert_non_null(strstr(strbuf_str(&h), "&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;"));
	assert_non_null(strstr(strbuf_str(&h), "<svg id=\"timeline\""));
	strbuf_free(&h);
	struct strbuf t = STRBUF_INIT;
	report_format_text(r, &t);
	assert_non_null(strstr(strbuf_str(&t), "3 failures from 3 addresses"));
	strbuf_free(&t);
	r = report_free(r);
	assert_null(r);
}

static void caps_and_since(void **state)
{
	(void)state;
	struct report_opts o = {.max_keys = 50, .since = 1000};
	struct report *r = report_new(&o);
	size_t j = report_jail(r, "sshd");
	char line[256], id[64], user[64];
	for (int i = 0; i < 500; i++) {
		snprintf(id, sizeof id, "10.%d.%d.1", i / 250, i % 250);
		snprintf(user, sizeof user, "user%d\x01\n", i);
		snprintf(line, sizeof line, "sshd[1]: Invalid user x from %s", id);
		report_failure(r, &j, 1, id, 2000 + i, line, strlen(line), user);
	}
	/* before --since: left out */
	report_failure(r, &j, 1, "192.0.2.1", 999, line, strlen(line), NULL);
	char *js = json_of(r);
	assert_non_null(strstr(js, "\"failures\":500,\"skipped_before_since\":1,"));
	assert_non_null(strstr(js, "\"distinct_addresses\":50,"));
	assert_non_null(strstr(js, "\"truncated\":true"));
	assert_non_null(strstr(js, "\"users\":{\"distinct\":50,"));
	assert_non_null(strstr(js, "\"user\":\"user0??\""));   /* control bytes replaced */
	free(js);
	report_free(r);
}

static void empty_report(void **state)
{
	(void)state;
	struct report *r = report_new(NULL);
	char *js = json_of(r);
	assert_non_null(strstr(js, "\"failures\":0,"));
	assert_non_null(strstr(js, "\"first\":null"));
	free(js);
	struct strbuf h = STRBUF_INIT;
	report_format_html(r, &h);
	assert_non_null(strstr(strbuf_str(&h), "No dated failures."));
	strbuf_free(&h);
	report_free(r);
	char err[128];
	assert_null(report_geo_open("/nonexistent/x.mmdb", err, sizeof err));
	assert_non_null(strstr(err, "/nonexistent/x.mmdb"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(classify_mail_stack),
		cmocka_unit_test(users_and_fields),
		cmocka_unit_test(failures_bans_and_policy),
		cmocka_unit_test(caps_and_since),
		cmocka_unit_test(empty_report),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
