/*
 * test_fw_hostsdeny - unit tests for the hostsdeny backend on a temp file
 * (never /etc/hosts.deny): the block of "ALL: <ip>" lines mxjail owns, the
 * admin's lines kept, tcp_wrappers' forms for IPv6 and prefixes, one line per
 * address across jails, atomic rewrite keeping the file mode, check() after
 * the block was edited away, rebuild, flush/stop, the registry entry and the
 * libwrap note.
 */
#include <errno.h>
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

#include "actions/fw.h"
#include "core/kvlist.h"
#include "net/addr.h"

static char dir[128], path[256];

static struct addr A(const char *s)
{
	struct addr a;
	assert_int_equal(addr_parse_cidr(s, strlen(s), &a), 0);
	return a;
}

static char *slurp(void)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void put(const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/mxjail-hd-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/hosts.deny", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const struct fw_jail sshd = {"sshd", NULL, NULL, 0};
static const struct fw_jail named = {"named-refused", NULL, NULL, 0};

#define BEGIN "# BEGIN mxjail (managed by mxjail; edits inside are lost)\n"
#define END "# END mxjail\n"

static void test_block_lifecycle(void **state)
{
	(void)state;
	put("# admin's own\nsshd: 203.0.113.99\n");
	chmod(path, 0640);
	struct fw fw;
	char err[256];
	struct fw_options o = {0};
	o.path = path;
	assert_int_equal(fw_open(&fw, &fw_hostsdeny_backend, &o, err, sizeof err), 0);
	struct addr a = A("192.0.2.7"), b = A("2001:db8::1"), n4 = A("198.51.100.0/24"),
		    n6 = A("2001:db8:5::/48");
	assert_int_equal(fw_ban(&fw, &sshd, &a, 600, err, sizeof err), 0);
	assert_int_equal(fw_ban(&fw, &sshd, &b, 600, err, sizeof err), 0);
	assert_int_equal(fw_ban(&fw, &named, &a, 0, err, sizeof err), 0);
	assert_int_equal(fw_ban(&fw, &named, &n4, 0, err, sizeof err), 0);
	assert_int_equal(fw_ban(&fw, &named, &n6, 0, err, sizeof err), 0);
	/* nothing is written before commit */
	assert_string_equal(slurp(), "# admin's own\nsshd: 203.0.113.99\n");
	assert_int_equal(fw_commit(&fw, err, sizeof err), 0);
	assert_string_equal(slurp(), "# admin's own\nsshd: 203.0.113.99\n" BEGIN
				     "ALL: 192.0.2.7\nALL: 198.51.100.0/255.255.255.0\n"
				     "ALL: [2001:db8:5::]/48\nALL: [2001:db8::1]\n" END);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(fw_check(&fw, err, sizeof err), 0);
	/* one jail unbans a shared address: the line stays */
	assert_int_equal(fw_unban(&fw, &sshd, &a, err, sizeof err), 0);
	assert_int_equal(fw_unban(&fw, &sshd, &b, err, sizeof err), 0);
	assert_int_equal(fw_commit(&fw, err, sizeof err), 0);
	assert_string_equal(slurp(), "# admin's own\nsshd: 203.0.113.99\n" BEGIN
				     "ALL: 192.0.2.7\nALL: 198.51.100.0/255.255.255.0\n"
				     "ALL: [2001:db8:5::]/48\n" END);
	/* the admin adds a line after ours: kept on the next rewrite */
	FILE *f = fopen(path, "a");
	fputs("ALL: 203.0.113.50\n", f);
	fclose(f);
	assert_int_equal(fw_unban(&fw, &named, &a, err, sizeof err), 0);
	assert_int_equal(fw_commit(&fw, err, sizeof err), 0);
	assert_string_equal(slurp(), "# admin's own\nsshd: 203.0.113.99\nALL: 203.0.113.50\n" BEGIN
				     "ALL: 198.51.100.0/255.255.255.0\nALL: [2001:db8:5::]/48\n" END);
	/* an editor drops our block: check says so, rebuild restores */
	put("# admin's own\n");
	assert_int_equal(fw_check(&fw, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "lost"));
	struct fw_ban bans[] = {{&sshd, A("192.0.2.8"), 60}};
	assert_int_equal(fw_rebuild(&fw, bans, 1, err, sizeof err), 0);
	assert_string_equal(slurp(), "# admin's own\n" BEGIN "ALL: 192.0.2.8\n" END);
	assert_int_equal(fw_check(&fw, err, sizeof err), 0);
	/* stop removes the block, not the admin's lines */
	assert_int_equal(fw_stop(&fw, err, sizeof err), 0);
	assert_string_equal(slurp(), "# admin's own\n");
	fw_close(&fw);
	/* no temp files left behind */
	char cmd[300];
	snprintf(cmd, sizeof cmd, "test $(ls '%s' | wc -l) -eq 1", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_missing_file_and_daemon_list(void **state)
{
	(void)state;
	unlink(path);
	struct fw fw;
	char err[256];
	struct fw_options o = {0};
	o.path = path;
	o.daemon_list = "sshd, vsftpd";
	assert_int_equal(fw_open(&fw, &fw_hostsdeny_backend, &o, err, sizeof err), 0);
	assert_int_equal(fw_flush(&fw, err, sizeof err), 0);
	assert_null(slurp()); /* nothing banned: no file made */
	struct addr a = A("192.0.2.9");
	fw_ban(&fw, &sshd, &a, 0, err, sizeof err);
	assert_int_equal(fw_commit(&fw, err, sizeof err), 0);
	assert_string_equal(slurp(), BEGIN "sshd, vsftpd: 192.0.2.9\n" END);
	fw_close(&fw);
	o.daemon_list = "ALL\nALL: 0.0.0.0/0.0.0.0";
	assert_int_equal(fw_open(&fw, &fw_hostsdeny_backend, &o, err, sizeof err), -EINVAL);
	/* a directory where the file should be */
	o.daemon_list = NULL;
	o.path = dir;
	assert_int_equal(fw_open(&fw, &fw_hostsdeny_backend, &o, err, sizeof err), 0);
	fw_ban(&fw, &sshd, &a, 0, err, sizeof err);
	assert_true(fw_commit(&fw, err, sizeof err) < 0);
	fw_close(&fw);
}

static void test_registry_and_note(void **state)
{
	(void)state;
	struct kvlist opts = KVLIST_INIT;
	struct fw_action act;
	char err[256];
	struct fw_jail j = {"named-refused-udp", "domain,953", "udp", 0};
	kvlist_set(&opts, "file", path);
	assert_int_equal(fw_action_resolve("hostsdeny", &opts, &j, &act, err, sizeof err), 0);
	assert_ptr_equal(act.backend, &fw_hostsdeny_backend);
	assert_string_equal(act.opts.path, path);
	assert_true(act.allports);
	kvlist_set(&opts, "file", "relative/hosts.deny");
	assert_int_equal(fw_action_resolve("hostsdeny", &opts, &j, &act, err, sizeof err), -EINVAL);
	kvlist_free(&opts);
	assert_int_equal(fw_action_resolve("hostsdeny", NULL, &j, &act, err, sizeof err), 0);
	assert_null(act.opts.path);
	assert_non_null(fw_hostsdeny_libwrap_note("postfix-sasl"));
	assert_non_null(strstr(fw_hostsdeny_libwrap_note("postfix"), "libwrap"));
	assert_non_null(fw_hostsdeny_libwrap_note("named-refused-udp"));
	assert_null(fw_hostsdeny_libwrap_note("sshd"));
	assert_null(fw_hostsdeny_libwrap_note(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_lifecycle),
		cmocka_unit_test(test_missing_file_and_daemon_list),
		cmocka_unit_test(test_registry_and_note),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
