/*
 * test_fw_null - unit tests for the firewall interface without a kernel: the
 * null backend's batch semantics (queue, last operation wins, commit, check
 * after a simulated flush, rebuild), jail validation (fail2ban port lists,
 * protocols), set names, the (jail, address) map and the banaction registry.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "actions/fw.h"
#include "actions/fw_impl.h"
#include "core/kvlist.h"
#include "net/addr.h"

static struct addr A(const char *s)
{
	struct addr a;
	assert_int_equal(addr_parse_cidr(s, strlen(s), &a), 0);
	return a;
}

static const struct fw_jail sshd = {"sshd", "ssh", "tcp", 0};
static const struct fw_jail postfix = {"postfix", "smtp,465,submission", "tcp", 0};

static void test_batch_semantics(void **state)
{
	(void)state;
	struct fw fw;
	char err[256];
	assert_int_equal(fw_open(&fw, &fw_null_backend, NULL, err, sizeof err), 0);
	struct addr a1 = A("192.0.2.1"), a2 = A("2001:db8::1"), n1 = A("198.51.100.0/24");
	unsigned long t;

	assert_int_equal(fw_ban(&fw, &sshd, &a1, 600, err, sizeof err), 0);
	assert_int_equal(fw_ban(&fw, &sshd, &a2, 0, err, sizeof err), 0);
	assert_int_equal(fw_ban(&fw, &postfix, &n1, 300, err, sizeof err), 0);
	/* nothing applied before commit */
	assert_int_equal(fw_null_count(&fw), 0);
	assert_int_equal(fw_commit(&fw, err, sizeof err), 0);
	assert_int_equal(fw_null_count(&fw), 3);
	assert_int_equal(fw_null_lookup(&fw, "sshd", &a1, &t), 1);
	assert_int_equal(t, 600);
	assert_int_equal(fw_null_lookup(&fw, "sshd", &a2, &t), 1);
	assert_int_equal(t, 0);
	assert_int_equal(fw_null_lookup(&fw, "postfix", &a1, &t), 0);
	assert_int_equal(fw_null_lookup(&fw, "postfix", &n1, &t), 1);

	/* re-ban replaces the timeout; last operation in a batch wins */
	assert_int_equal(fw_ban(&fw, &sshd, &a1, 3600, err, sizeof err), 0);
	assert_int_equal(fw_unban(&fw, &sshd, &a2, err, sizeof err), 0);
	assert_int_equal(fw_ban(&fw, &sshd, &a2, 10, err, sizeof err), 0);
	assert_int_equal(fw_unban(&fw, &postfix, &n1, err, sizeof err), 0);
	/* unbanning what is not banned is fine */
	struct addr other = A("203.0.113.5");
	assert_int_equal(fw_unban(&fw, &sshd, &other, err, sizeof err), 0);
	assert_int_equal(fw_commit(&fw, err, sizeof err), 0);
	assert_int_equal(fw_null_lookup(&fw, "sshd", &a1, &t), 1);
	assert_int_equal(t, 3600);
	assert_int_equal(fw_null_lookup(&fw, "sshd", &a2, &t), 1);
	assert_int_equal(t, 10);
	assert_int_equal(fw_null_lookup(&fw, "postfix", &n1, &t), 0);
	assert_int_equal(fw_null_count(&fw), 2);

	/* timeouts beyond what nftables accepts are clamped */
	assert_int_equal(fw_ban(&fw, &sshd, &other, 4000000000UL, err, sizeof err), 0);
	assert_int_equal(fw_commit(&fw, err, sizeof err), 0);
	assert_int_equal(fw_null_lookup(&fw, "sshd", &other, &t), 1);
	assert_int_equal(t, FW_MAX_TIMEOUT);

	const char *log = fw_null_log(&fw);
	assert_non_null(strstr(log, "ban sshd 192.0.2.1 600\n"));
	assert_non_null(strstr(log, "ban postfix 198.51.100.0/24 300\n"));
	assert_non_null(strstr(log, "unban postfix 198.51.100.0/24\n"));

	assert_int_equal(fw_flush(&fw, err, sizeof err), 0);
	assert_int_equal(fw_null_count(&fw), 0);
	fw_close(&fw);
}

static void test_flush_check_rebuild(void **state)
{
	(void)state;
	struct fw fw;
	char err[256];
	assert_int_equal(fw_open(&fw, &fw_null_backend, NULL, err, sizeof err), 0);
	struct addr a1 = A("192.0.2.1"), a2 = A("192.0.2.2");
	assert_int_equal(fw_ban(&fw, &sshd, &a1, 600, err, sizeof err), 0);
	assert_int_equal(fw_commit(&fw, err, sizeof err), 0);
	assert_int_equal(fw_check(&fw, err, sizeof err), 0);

	assert_int_equal(fw_null_simulate_flush(&fw), 0);
	assert_int_equal(fw_check(&fw, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "missing"));
	assert_int_equal(fw_ban(&fw, &sshd, &a2, 600, err, sizeof err), 0);
	assert_int_equal(fw_commit(&fw, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "rebuild"));

	struct fw_ban bans[] = {{&sshd, a1, 550}, {&postfix, a2, 0}};
	assert_int_equal(fw_rebuild(&fw, bans, 2, err, sizeof err), 0);
	assert_int_equal(fw_check(&fw, err, sizeof err), 0);
	unsigned long t;
	assert_int_equal(fw_null_lookup(&fw, "sshd", &a1, &t), 1);
	assert_int_equal(t, 550);
	assert_int_equal(fw_null_lookup(&fw, "postfix", &a2, &t), 1);
	assert_int_equal(t, 0);
	assert_int_equal(fw_null_lookup(&fw, "sshd", &a2, &t), 0);
	assert_int_equal(fw_null_count(&fw), 2);

	assert_int_equal(fw_stop(&fw, err, sizeof err), 0);
	assert_int_equal(fw_null_count(&fw), 0);
	fw_close(&fw);
}

static void test_families_and_errors(void **state)
{
	(void)state;
	struct fw fw;
	char err[256];
	struct fw_options o = {.families = FW_FAMILY_4};
	assert_int_equal(fw_open(&fw, &fw_null_backend, &o, err, sizeof err), 0);
	struct addr v6 = A("2001:db8::1");
	assert_int_equal(fw_ban(&fw, &sshd, &v6, 60, err, sizeof err), -EAFNOSUPPORT);
	struct fw_jail bad = {"bad", "nosuchservice", "tcp", 0};
	struct addr v4 = A("192.0.2.1");
	assert_int_equal(fw_ban(&fw, &bad, &v4, 60, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "nosuchservice"));
	struct fw_jail noname = {NULL, NULL, NULL, 0};
	assert_int_equal(fw_ban(&fw, &noname, &v4, 60, err, sizeof err), -EINVAL);
	/* two jails whose set names collide */
	struct fw_jail j1 = {"a-b", NULL, NULL, 0}, j2 = {"a.b", NULL, NULL, 0}, j3 = {"a b", NULL, NULL, 0};
	assert_int_equal(fw_declare(&fw, &j1, err, sizeof err), 0);
	assert_int_equal(fw_declare(&fw, &j2, err, sizeof err), 0);
	assert_int_equal(fw_declare(&fw, &j3, err, sizeof err), -EEXIST);
	/* commit of an empty queue is a no-op */
	assert_int_equal(fw_commit(&fw, err, sizeof err), 0);
	fw_close(&fw);
}

static void test_jail_check(void **state)
{
	(void)state;
	char err[256];
	static const struct {
		const char *port, *proto;
		int ok;
		const char *match;
	} cases[] = {
		{"ssh", "tcp", 1, "tcp dport { 22 }"},
		{"smtp,465,submission", "tcp", 1, "tcp dport { 25, 465, 587 }"},
		{"smtp, ssmtp ,imap2,imap3,imaps,pop3,pop3s", NULL, 1,
		 "tcp dport { 25, 465, 143, 220, 993, 110, 995 }"},
		{"1000:2000", "udp", 1, "udp dport { 1000-2000 }"},
		{"1000-2000,ftp-data", "tcp", 1, "tcp dport { 1000-2000, 20 }"},
		{"domain,953", "tcp,udp", 1, "meta l4proto { tcp, udp } th dport { 53, 953 }"},
		{"domain", "all", 1, "meta l4proto { tcp, udp, sctp, dccp } th dport { 53 }"},
		{"0:65535", "tcp", 1, "meta l4proto tcp"},
		{NULL, "tcp", 1, "meta l4proto tcp"},
		{"", "all", 1, ""},
		{NULL, "{ tcp, udp }", 1, "meta l4proto { tcp, udp }"},
		{"70000", "tcp", 0, NULL},
		{"2000:1000", "tcp", 0, NULL},
		{"nosuchservice", "tcp", 0, NULL},
		{"ssh;drop", "tcp", 0, NULL},
		{"ssh", "icmp", 0, NULL},
		{"ssh", "tcp; flush ruleset", 0, NULL},
		{"}", "tcp", 0, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fw_jail j = {"j", cases[i].port, cases[i].proto, 0};
		struct fw_jspec s;
		int r = fw_jspec_compile(&j, &s, err, sizeof err);
		if (!cases[i].ok) {
			if (r != -EINVAL)
				fail_msg("case %zu (%s/%s) accepted", i, cases[i].port, cases[i].proto);
			continue;
		}
		if (r != 0)
			fail_msg("case %zu (%s/%s): %s", i, cases[i].port, cases[i].proto, err);
		assert_string_equal(s.match, cases[i].match);
		fw_jspec_clear(&s);
	}
	/* garbage of any size is refused without crashing */
	char big[4096];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	struct fw_jail j = {"j", big, "tcp", 0};
	assert_int_equal(fw_jail_check(&j, err, sizeof err), -EINVAL);
	j.port = "ssh";
	j.protocol = big;
	assert_int_equal(fw_jail_check(&j, err, sizeof err), -EINVAL);
}

static void test_set_base(void **state)
{
	(void)state;
	char b[256];
	assert_int_equal(fw_set_base("sshd", b, sizeof b), 4);
	assert_string_equal(b, "sshd");
	fw_set_base("dovecot-pop3imap", b, sizeof b);
	assert_string_equal(b, "dovecot-pop3imap");
	fw_set_base("3proxy", b, sizeof b);
	assert_string_equal(b, "j_3proxy");
	fw_set_base("a b;c\xc3\xa9", b, sizeof b);
	assert_string_equal(b, "a_b_c__");
	assert_int_equal(fw_set_base("", b, sizeof b), 0);
	assert_int_equal(fw_set_base("abc", b, 4), 0);
}

static void test_map(void **state)
{
	(void)state;
	struct fw_map m = {0};
	int isnew;
	char buf[64];
	/* many keys in two jails, then delete every other one and look all up */
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(buf, sizeof buf, "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
		struct addr a = A(buf);
		*fw_map_put(&m, i % 2, &a, &isnew) = i;
		assert_int_equal(isnew, 1);
	}
	assert_int_equal(m.n, 5000);
	for (unsigned i = 0; i < 5000; i += 2) {
		snprintf(buf, sizeof buf, "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
		struct addr a = A(buf);
		assert_int_equal(fw_map_del(&m, i % 2, &a), 1);
		assert_int_equal(fw_map_del(&m, i % 2, &a), 0);
	}
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(buf, sizeof buf, "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
		struct addr a = A(buf);
		uint64_t *v = fw_map_get(&m, i % 2, &a);
		if (i % 2)
			assert_true(v && *v == i);
		else
			assert_null(v);
		assert_null(fw_map_get(&m, (i + 1) % 2, &a));
	}
	assert_int_equal(m.n, 2500);
	fw_map_free(&m);
}

static void test_registry(void **state)
{
	(void)state;
	char err[256];
	struct fw_action act;
	struct fw_jail j = {"postfix", "smtp,465,submission", "tcp", 0};
	struct kvlist opts = KVLIST_INIT;

	assert_int_equal(fw_action_resolve("nftables-multiport", NULL, &j, &act, err, sizeof err), 0);
	assert_ptr_equal(act.backend, &fw_nft_backend);
	assert_int_equal(act.allports, 0);
	assert_string_equal(act.jail.port, "smtp,465,submission");

	assert_int_equal(fw_action_resolve("nftables", NULL, &j, &act, err, sizeof err), 0);
	assert_int_equal(act.allports, 0);

	assert_int_equal(fw_action_resolve("nftables-allports", NULL, &j, &act, err, sizeof err), 0);
	assert_int_equal(act.allports, 1);
	assert_null(act.jail.port);

	kvlist_set(&opts, "type", "allports");
	assert_int_equal(fw_action_resolve("nftables", &opts, &j, &act, err, sizeof err), 0);
	assert_int_equal(act.allports, 1);
	assert_null(act.jail.port);
	kvlist_free(&opts);

	/* options override the jail's port and protocol, as in fail2ban */
	kvlist_set(&opts, "port", "pop3,imap");
	kvlist_set(&opts, "protocol", "udp");
	kvlist_set(&opts, "blocktype", "reject");
	assert_int_equal(fw_action_resolve("nftables-multiport", &opts, &j, &act, err, sizeof err), 0);
	assert_string_equal(act.jail.port, "pop3,imap");
	assert_string_equal(act.jail.protocol, "udp");
	assert_int_equal(act.jail.reject, 1);
	kvlist_free(&opts);

	kvlist_set(&opts, "type", "custom");
	assert_int_equal(fw_action_resolve("nftables", &opts, &j, &act, err, sizeof err), -EINVAL);
	kvlist_free(&opts);
	kvlist_set(&opts, "port", "nosuchservice");
	assert_int_equal(fw_action_resolve("nftables", &opts, &j, &act, err, sizeof err), -EINVAL);
	kvlist_free(&opts);

	static const char *later[] = {"iptables-multiport-log", "iptables-xt_recent-echo"};
	for (size_t i = 0; i < sizeof later / sizeof later[0]; i++) {
		assert_int_equal(fw_action_resolve(later[i], NULL, &j, &act, err, sizeof err), -ENOSYS);
		assert_null(act.backend);
		assert_string_equal(act.name, later[i]);
		assert_non_null(strstr(err, "not built yet"));
	}
	/* ipset and route: native backends, ports per action like fail2ban's */
	assert_int_equal(fw_action_resolve("iptables-ipset-proto6", NULL, &j, &act, err, sizeof err), 0);
	assert_ptr_equal(act.backend, &fw_ipset_backend);
	assert_int_equal(act.allports, 0);
	assert_int_equal(fw_action_resolve("iptables-ipset-proto6-allports", NULL, &j, &act, err,
					   sizeof err), 0);
	assert_ptr_equal(act.backend, &fw_ipset_backend);
	assert_int_equal(act.allports, 1);
	assert_int_equal(fw_action_resolve("route", NULL, &j, &act, err, sizeof err), 0);
	assert_ptr_equal(act.backend, &fw_route_backend);
	assert_null(act.opts.blocktype);
	kvlist_set(&opts, "blocktype", "blackhole");
	assert_int_equal(fw_action_resolve("route", &opts, &j, &act, err, sizeof err), 0);
	assert_string_equal(act.opts.blocktype, "blackhole");
	kvlist_free(&opts);
	kvlist_set(&opts, "blocktype", "drop");
	assert_int_equal(fw_action_resolve("route", &opts, &j, &act, err, sizeof err), -EINVAL);
	kvlist_free(&opts);
	assert_int_equal(fw_action_resolve("sendmail-whois", NULL, &j, &act, err, sizeof err), -ENOENT);
	assert_int_equal(fw_action_resolve("nftables-multiport-x", NULL, &j, &act, err, sizeof err),
			 -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_semantics),
		cmocka_unit_test(test_flush_check_rebuild),
		cmocka_unit_test(test_families_and_errors),
		cmocka_unit_test(test_jail_check),
		cmocka_unit_test(test_set_base),
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_registry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
