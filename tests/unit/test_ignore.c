/*
 * test_ignore - the never-ban list: every ignoreip entry form (address,
 * prefix, netmask, IPv4-mapped IPv6, host name through a fake resolver,
 * file: lists re-read on change), loopback always ignored, ignoreself
 * against getifaddrs, literal failure ids, ignorecommand exit codes,
 * timeout with process-group kill, injection attempts, ignorecache hits,
 * expiry and count cap, and the lookup speed on 10k entries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/kvlist.h"
#include "jails/ignore.h"

/* ------------------------------------------------------------ fake DNS */

struct fake_dns {
	const char *names[8];
	const char *addrs[8][4];
	int fail;  /* every lookup fails */
	int calls;
};

static int fake_resolve(void *ctx, const char *name, struct addr *out, size_t max, char *err,
			size_t errlen)
{
	struct fake_dns *f = ctx;
	f->calls++;
	if (f->fail) {
		snprintf(err, errlen, "fake failure");
		return -1;
	}
	for (int i = 0; i < 8 && f->names[i]; i++) {
		if (strcmp(f->names[i], name) != 0)
			continue;
		size_t n = 0;
		for (int k = 0; k < 4 && f->addrs[i][k] && n < max; k++)
			if (addr_parse(f->addrs[i][k], strlen(f->addrs[i][k]), &out[n]) == 0)
				n++;
		return (int)n;
	}
	snprintf(err, errlen, "no such name");
	return -1;
}

static struct ignore_opts opts_noself(struct fake_dns *f)
{
	struct ignore_opts o;
	ignore_opts_init(&o);
	o.ignoreself = 0;
	o.resolve = fake_resolve;
	o.resolve_ctx = f;
	return o;
}

static enum ignore_reason chk(struct ignorelist *l, const char *id)
{
	return ignore_check(l, id, NULL, 0, NULL);
}

/* ------------------------------------------------------------ entries */

static void entry_forms(void **state)
{
	(void)state;
	struct fake_dns f = {0};
	struct ignore_opts o = opts_noself(&f);
	struct diag d = DIAG_INIT;
	struct ignorelist *l = ignore_new(
		"192.0.2.7, 10.0.0.0/8 172.16.0.0/255.240.0.0\n 2001:db8::1 [2001:db8:1::]/48,"
		"  198.51.100.0/24 ::ffff:203.0.113.0/120 203.0.113.0/24 192.0.2.7",
		&o, 0, &d);
	assert_int_equal(d.nerrors, 0);
	size_t n;
	const char *const *e = ignore_entries(l, &n);
	assert_int_equal(n, 8); /* the duplicate 192.0.2.7 is dropped */
	assert_string_equal(e[0], "192.0.2.7");
	assert_null(e[8]);

	struct ignore_info info;
	assert_int_equal(ignore_check(l, "192.0.2.7", NULL, 0, &info), IGNORE_LIST);
	assert_string_equal(info.detail, "192.0.2.7");
	assert_int_equal(chk(l, "192.0.2.8"), IGNORE_NONE);
	assert_int_equal(ignore_check(l, "10.255.1.2", NULL, 0, &info), IGNORE_LIST);
	assert_string_equal(info.detail, "10.0.0.0/8");
	assert_int_equal(chk(l, "11.0.0.1"), IGNORE_NONE);
	/* netmask form: 172.16.0.0/12 */
	assert_int_equal(chk(l, "172.31.255.255"), IGNORE_LIST);
	assert_int_equal(chk(l, "172.32.0.0"), IGNORE_NONE);
	assert_int_equal(chk(l, "172.15.255.255"), IGNORE_NONE);
	assert_int_equal(chk(l, "2001:db8::1"), IGNORE_LIST);
	assert_int_equal(chk(l, "2001:DB8:0::1"), IGNORE_LIST);
	assert_int_equal(chk(l, "[2001:db8::1]"), IGNORE_LIST);
	assert_int_equal(chk(l, "2001:db8::2"), IGNORE_NONE);
	assert_int_equal(chk(l, "2001:db8:1:ffff::9"), IGNORE_LIST);
	assert_int_equal(chk(l, "2001:db8:2::9"), IGNORE_NONE);
	/* a prefix id is ignored when an entry covers all of it */
	assert_int_equal(chk(l, "10.1.0.0/16"), IGNORE_LIST);
	assert_int_equal(chk(l, "10.0.0.0/7"), IGNORE_NONE);
	assert_int_equal(chk(l, "198.51.100.77"), IGNORE_LIST);
	/* ::ffff:203.0.113.0/120 and 203.0.113.0/24 are one prefix in the index */
	assert_int_equal(ignore_size(l), 7);

	/* add / delete at run time */
	assert_int_equal(ignore_add(l, "192.0.2.8 2001:db8::2", 0, &d), 0);
	assert_int_equal(chk(l, "192.0.2.8"), IGNORE_LIST);
	assert_int_equal(chk(l, "2001:db8::2"), IGNORE_LIST);
	assert_int_equal(ignore_del(l, "10.0.0.0/8"), 1);
	assert_int_equal(ignore_del(l, "10.0.0.0/8"), 0);
	assert_int_equal(chk(l, "10.255.1.2"), IGNORE_NONE);
	l = ignore_free(l);
	assert_null(l);
	diag_clear(&d);
}

static void mapped_v6(void **state)
{
	(void)state;
	struct fake_dns f = {0};
	struct ignore_opts o = opts_noself(&f);
	struct diag d = DIAG_INIT;
	struct ignorelist *l =
		ignore_new("::ffff:192.0.2.0/120 10.0.0.0/8 ::ffff:198.51.100.9", &o, 0, &d);
	assert_int_equal(d.nerrors, 0);
	/* mapped entries and mapped ids both fold to IPv4 */
	assert_int_equal(chk(l, "192.0.2.200"), IGNORE_LIST);
	assert_int_equal(chk(l, "::ffff:192.0.2.200"), IGNORE_LIST);
	assert_int_equal(chk(l, "::FFFF:10.9.8.7"), IGNORE_LIST);
	assert_int_equal(chk(l, "198.51.100.9"), IGNORE_LIST);
	assert_int_equal(chk(l, "::ffff:198.51.100.10"), IGNORE_NONE);
	/* IPv4-compatible (not mapped) stays IPv6 */
	assert_int_equal(chk(l, "::10.9.8.7"), IGNORE_NONE);
	ignore_free(l);
	diag_clear(&d);
}

static void bad_entries(void **state)
{
	(void)state;
	struct fake_dns f = {0};
	struct ignore_opts o = opts_noself(&f);
	struct diag d = DIAG_INIT;
	o.cfgfile = "jail.local";
	o.cfgline = 7;
	struct ignorelist *l = ignore_new(
		"10.0.0.0/33 192.0.2.010 10.0.0.0/abc 2001:db8:::1 file:relative 192.0.2.1",
		&o, 0, &d);
	assert_int_equal(d.nerrors, 5);
	assert_non_null(strstr(d.items[0].text, "jail.local:7: ignoreip: expected an address"));
	assert_non_null(strstr(d.items[1].text, "192.0.2.010"));
	assert_non_null(strstr(d.items[4].text, "absolute path"));
	/* the valid entry is still there */
	assert_int_equal(chk(l, "192.0.2.1"), IGNORE_LIST);
	assert_int_equal(f.calls, 0); /* nothing address-like went to DNS */
	ignore_free(l);
	diag_clear(&d);

	/* garbage: long tokens, control bytes, many separators */
	size_t big = 1 << 20;
	char *g = malloc(big + 1);
	for (size_t i = 0; i < big; i++)
		g[i] = (char)(1 + (i * 7919) % 255);
	g[big] = '\0';
	l = ignore_new(g, &o, 0, &d);
	assert_int_equal(chk(l, "192.0.2.1"), IGNORE_NONE);
	ignore_free(l);
	memset(g, 'a', big);
	l = ignore_new(g, &o, 0, &d); /* one 1 MB "name": literal, not resolved */
	assert_int_equal(chk(l, "aaa"), IGNORE_NONE);
	ignore_free(l);
	free(g);
	diag_clear(&d);
}

static void loopback_always(void **state)
{
	(void)state;
	struct fake_dns f = {0};
	struct ignore_opts o = opts_noself(&f);
	struct diag d = DIAG_INIT;
	struct ignorelist *l = ignore_new("", &o, 0, &d);
	const char *lo[] = {"127.0.0.1", "127.1.2.3", "127.255.255.255", "::1",
			    "::ffff:127.0.0.1", "[::1]", "0:0:0:0:0:0:0:1"};
	for (size_t i = 0; i < sizeof lo / sizeof *lo; i++) {
		assert_int_equal(chk(l, lo[i]), IGNORE_LOOPBACK);
		assert_int_equal(chk(NULL, lo[i]), IGNORE_LOOPBACK);
	}
	assert_int_equal(chk(l, "128.0.0.1"), IGNORE_NONE);
	assert_int_equal(chk(l, "126.255.255.255"), IGNORE_NONE);
	assert_int_equal(chk(l, "::2"), IGNORE_NONE);
	assert_int_equal(chk(NULL, "192.0.2.1"), IGNORE_NONE);
	assert_int_equal(chk(l, "localhost"), IGNORE_NONE); /* an id, not an address */
	assert_string_equal(ignore_reason_name(IGNORE_LOOPBACK), "loopback");
	ignore_free(l);
	l = ignore_new(NULL, &o, 0, &d);
	assert_int_equal(chk(l, "127.0.0.1"), IGNORE_LOOPBACK);
	ignore_free(l);
	assert_int_equal(d.nerrors, 0);
	diag_clear(&d);
}

static void literal_ids(void **state)
{
	(void)state;
	struct fake_dns f = {0};
	struct ignore_opts o = opts_noself(&f);
	struct diag d = DIAG_INIT;
	struct ignorelist *l = ignore_new("admin user@example.org 10.0.0.0/8", &o, 0, &d);
	assert_int_equal(d.nerrors, 0);
	struct ignore_info info;
	assert_int_equal(ignore_check(l, "admin", NULL, 0, &info), IGNORE_LIST);
	assert_string_equal(info.detail, "admin");
	assert_int_equal(chk(l, "Admin"), IGNORE_NONE);
	assert_int_equal(chk(l, "user@example.org"), IGNORE_LIST);
	assert_int_equal(chk(l, "10.0.0.0"), IGNORE_LIST);
	/* address entries never match ids that are not addresses */
	assert_int_equal(chk(l, "10.0.0.1x"), IGNORE_NONE);
	assert_int_equal(chk(l, ""), IGNORE_NONE);
	/* "admin" looks like a host name and was looked up; the other was not */
	assert_int_equal(f.calls, 1);
	ignore_free(l);
	diag_clear(&d);
}

static void dns_names(void **state)
{
	(void)state;
	struct fake_dns f = {.names = {"mail.example.org", "gone.example.org"},
			     .addrs = {{"192.0.2.25", "2001:db8::25"}, {NULL}}};
	struct ignore_opts o = opts_noself(&f);
	struct diag d = DIAG_INIT;
	struct ignorelist *l = ignore_new("mail.example.org nxdomain.example.org", &o, 0, &d);
	assert_int_equal(d.nerrors, 0);
	assert_true(d.n >= 1); /* the unresolvable name is a warning */
	assert_non_null(strstr(d.items[0].text, "nxdomain.example.org"));
	struct ignore_info info;
	assert_int_equal(ignore_check(l, "192.0.2.25", NULL, 0, &info), IGNORE_LIST);
	assert_string_equal(info.detail, "mail.example.org");
	assert_int_equal(chk(l, "2001:db8::25"), IGNORE_LIST);
	assert_int_equal(chk(l, "192.0.2.26"), IGNORE_NONE);
	assert_int_equal(f.calls, 2);

	/* the name moves: only a refresh sees it */
	f.addrs[0][0] = "192.0.2.99";
	f.addrs[0][1] = NULL;
	assert_int_equal(chk(l, "192.0.2.99"), IGNORE_NONE);
	diag_clear(&d);
	ignore_refresh(l, 1, &d);
	assert_int_equal(chk(l, "192.0.2.99"), IGNORE_LIST);
	assert_int_equal(chk(l, "192.0.2.25"), IGNORE_NONE);
	assert_int_equal(chk(l, "2001:db8::25"), IGNORE_NONE);

	/* a failing resolver keeps the last good answer */
	f.fail = 1;
	diag_clear(&d);
	assert_int_equal(ignore_refresh(l, 2, &d), -1);
	assert_true(d.n >= 1);
	assert_int_equal(chk(l, "192.0.2.99"), IGNORE_LIST);
	ignore_free(l);
	diag_clear(&d);
}

/* ------------------------------------------------------------ file: */

static void write_file(const char *path, const char *text, time_t mtime)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void file_lists(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_ignore.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], later[256], spec[600];
	snprintf(path, sizeof path, "%s/ok.list", dir);
	snprintf(later, sizeof later, "%s/later.list", dir);
	write_file(path,
		   "# trusted relays\n"
		   "192.0.2.1\n"
		   "198.51.100.0/24   # office\n"
		   "\n"
		   "  2001:db8:5::/48\r\n"
		   "mail.example.org\n"
		   "bogus/99\n"
		   "file:/etc/passwd\n"
		   "203.0.113.7",
		   1000000);
	snprintf(spec, sizeof spec, "10.0.0.0/8 file:%s,file:%s", path, later);

	struct fake_dns f = {.names = {"mail.example.org"}, .addrs = {{"192.0.2.25"}}};
	struct ignore_opts o = opts_noself(&f);
	o.file_check_interval = 5;
	struct diag d = DIAG_INIT;
	struct ignorelist *l = ignore_new(spec, &o, 100, &d);
	/* line 7 and 8 are errors named by file:line; the missing file warns */
	assert_int_equal(d.nerrors, 2);
	int saw7 = 0, saw8 = 0, sawmissing = 0;
	char want7[300], want8[300];
	snprintf(want7, sizeof want7, "%s:7:", path);
	snprintf(want8, sizeof want8, "%s:8:", path);
	for (size_t i = 0; i < d.n; i++) {
		saw7 |= strstr(d.items[i].text, want7) != NULL;
		saw8 |= strstr(d.items[i].text, want8) != NULL;
		sawmissing |= strstr(d.items[i].text, "later.list does not exist") != NULL;
	}
	assert_true(saw7 && saw8 && sawmissing);
	diag_clear(&d);

	struct ignore_info info;
	assert_int_equal(ignore_check(l, "192.0.2.1", NULL, 0, &info), IGNORE_LIST);
	char want[300];
	snprintf(want, sizeof want, "file:%s", path);
	assert_string_equal(info.detail, want);
	assert_int_equal(chk(l, "198.51.100.200"), IGNORE_LIST);
	assert_int_equal(chk(l, "2001:db8:5:1::1"), IGNORE_LIST);
	assert_int_equal(chk(l, "192.0.2.25"), IGNORE_LIST);
	assert_int_equal(chk(l, "203.0.113.7"), IGNORE_LIST);
	assert_int_equal(chk(l, "10.1.1.1"), IGNORE_LIST);
	assert_int_equal(chk(l, "192.0.2.2"), IGNORE_NONE);

	/* rewrite: same size would not be enough without the mtime bump */
	write_file(path, "192.0.2.2\n", 1000001);
	assert_int_equal(ignore_maybe_reload(l, 101, &d), 0); /* too early */
	assert_int_equal(chk(l, "192.0.2.2"), IGNORE_NONE);
	assert_int_equal(ignore_maybe_reload(l, 105, &d), 1);
	assert_int_equal(chk(l, "192.0.2.2"), IGNORE_LIST);
	assert_int_equal(chk(l, "192.0.2.1"), IGNORE_NONE);
	assert_int_equal(chk(l, "198.51.100.200"), IGNORE_NONE);
	assert_int_equal(chk(l, "10.1.1.1"), IGNORE_LIST); /* static entries stay */
	/* same content, same stat: no change */
	assert_int_equal(ignore_maybe_reload(l, 111, &d), 0);
	/* same size, only the mtime moves: re-read */
	write_file(path, "192.0.2.3\n", 1000002);
	assert_int_equal(ignore_maybe_reload(l, 117, &d), 1);
	assert_int_equal(chk(l, "192.0.2.3"), IGNORE_LIST);
	assert_int_equal(chk(l, "192.0.2.2"), IGNORE_NONE);

	/* the missing file appears */
	write_file(later, "2001:db8:77::1\n", 1000000);
	assert_int_equal(ignore_maybe_reload(l, 123, &d), 1);
	assert_int_equal(chk(l, "2001:db8:77::1"), IGNORE_LIST);
	/* a deleted file empties its entries */
	unlink(later);
	assert_int_equal(ignore_maybe_reload(l, 129, &d), 1);
	assert_int_equal(chk(l, "2001:db8:77::1"), IGNORE_NONE);
	/* an unreadable file keeps the old entries (root reads anything: skip) */
	if (geteuid() != 0) {
		struct timespec ts[2] = {{1000003, 0}, {1000003, 0}};
		assert_int_equal(chmod(path, 0), 0);
		assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
		assert_int_equal(ignore_maybe_reload(l, 135, &d), -1);
		assert_int_equal(chk(l, "192.0.2.3"), IGNORE_LIST);
	}
	unlink(path);
	rmdir(dir);
	ignore_free(l);
	diag_clear(&d);
}

/* ------------------------------------------------------------ self */

static void ignoreself(void **state)
{
	(void)state;
	struct addr *a = NULL;
	char err[256];
	int n = ignore_self_addrs(NULL, NULL, &a, err, sizeof err);
	assert_true(n >= 1);
	int has_lo = 0;
	for (int i = 0; i < n; i++) {
		char buf[ADDR_STRLEN];
		addr_format(&a[i], buf, sizeof buf);
		has_lo |= strcmp(buf, "127.0.0.1") == 0;
	}
	assert_true(has_lo);
	free(a);

	struct fake_dns f = {0};
	struct ignore_opts o = opts_noself(&f);
	o.ignoreself = 1;
	struct diag d = DIAG_INIT;
	struct ignorelist *on = ignore_new("", &o, 0, &d);
	o.ignoreself = 0;
	struct ignorelist *off = ignore_new("", &o, 0, &d);
	assert_int_equal(d.nerrors, 0);

	/* every address getifaddrs reports is ignored, independently listed here */
	struct ifaddrs *ifa;
	assert_int_equal(getifaddrs(&ifa), 0);
	int checked = 0;
	for (struct ifaddrs *p = ifa; p; p = p->ifa_next) {
		char buf[INET6_ADDRSTRLEN];
		if (!p->ifa_addr)
			continue;
		if (p->ifa_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)p->ifa_addr)->sin_addr,
				  buf, sizeof buf);
		else if (p->ifa_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)p->ifa_addr)->sin6_addr,
				  buf, sizeof buf);
		else
			continue;
		struct addr x;
		assert_int_equal(addr_parse(buf, strlen(buf), &x), 0);
		enum ignore_reason want = addr_is_loopback(&x) ? IGNORE_LOOPBACK : IGNORE_SELF;
		assert_int_equal(chk(on, buf), want);
		assert_int_equal(chk(off, buf), addr_is_loopback(&x) ? IGNORE_LOOPBACK : IGNORE_NONE);
		printf("  own address %s -> %s\n", buf, ignore_reason_name(want));
		checked++;
	}
	freeifaddrs(ifa);
	assert_true(checked >= 1);
	assert_int_equal(chk(on, "192.0.2.123"), IGNORE_NONE);
	ignore_refresh(on, 1, &d);
	assert_int_equal(chk(on, "127.0.0.1"), IGNORE_LOOPBACK);
	/* the host name's addresses come through the resolver */
	char host[256];
	assert_int_equal(gethostname(host, sizeof host), 0);
	struct fake_dns hf = {.names = {host}, .addrs = {{"203.0.113.250"}}};
	o.ignoreself = 1;
	o.resolve_ctx = &hf;
	struct ignorelist *nat = ignore_new("", &o, 0, &d);
	assert_int_equal(chk(nat, "203.0.113.250"), IGNORE_SELF);
	ignore_free(nat);
	ignore_free(on);
	ignore_free(off);
	diag_clear(&d);
}

/* ------------------------------------------------------------ command */

static void subst_rules(void **state)
{
	(void)state;
	struct kvlist v = KVLIST_INIT, vars = KVLIST_INIT;
	kvlist_set(&v, "ip", "192.0.2.1");
	kvlist_set(&v, "F-user", "bob;rm -rf /");
	kvlist_set(&v, "F-fid", "x");
	kvlist_set(&v, "a.b", "it's");
	char *s = ignore_subst("chk <ip> \"<F-USER>\" <F-ID> <F-HOST><br><sp>|<unknown> <a b> "
			       "<a.b> <F-user> <<ip>>",
			       &v, &vars);
	assert_string_equal(s, "chk 192.0.2.1 \"$f2bV_F_user\" x \n |<unknown> <a b> "
			       "$f2bV_a_b <F-user> <192.0.2.1>");
	assert_int_equal(vars.n, 2);
	assert_string_equal(kvlist_get(&vars, "f2bV_F_user"), "bob;rm -rf /");
	assert_string_equal(kvlist_get(&vars, "f2bV_a_b"), "it's");
	free(s);
	/* without vars (cache keys) the value goes in raw */
	s = ignore_subst("<F-USER>@<ip>", &v, NULL);
	assert_string_equal(s, "bob;rm -rf /@192.0.2.1");
	free(s);
	kvlist_free(&v);
	kvlist_free(&vars);
}

static void command_exit_codes(void **state)
{
	(void)state;
	struct ignore_cmd_result r;
	struct kvlist v = KVLIST_INIT;
	kvlist_set(&v, "ip", "192.0.2.9");
	assert_int_equal(ignore_command_run("exit 0", &v, 5, &r), 1);
	assert_int_equal(r.status, IGNORE_CMD_EXITED);
	assert_int_equal(r.code, 0);
	assert_int_equal(ignore_command_run("exit 1", &v, 5, &r), 0);
	assert_int_equal(r.code, 1);
	assert_int_equal(ignore_command_run("echo out; echo err >&2; exit 3", &v, 5, &r), 0);
	assert_int_equal(r.code, 3);
	assert_string_equal(r.output, "out\nerr\n");
	assert_int_equal(ignore_command_run("test <ip> = 192.0.2.9", &v, 5, &r), 1);
	assert_int_equal(ignore_command_run("kill -9 $$", &v, 5, &r), 0);
	assert_int_equal(r.status, IGNORE_CMD_SIGNALED);
	assert_int_equal(r.code, SIGKILL);
	/* stdin is /dev/null: a command reading it does not hang */
	assert_int_equal(ignore_command_run("read x; test -z \"$x\"", &v, 5, &r), 1);
	kvlist_free(&v);

	/* through the list */
	struct fake_dns f = {0};
	struct ignore_opts o = opts_noself(&f);
	o.ignorecommand = "test <ip> = 192.0.2.9 || test \"<F-USER>\" = admin";
	struct diag d = DIAG_INIT;
	struct ignorelist *l = ignore_new("10.0.0.0/8", &o, 0, &d);
	struct ignore_info info;
	assert_int_equal(ignore_check(l, "192.0.2.9", NULL, 0, &info), IGNORE_COMMAND);
	assert_string_equal(info.detail, "exit status 0");
	assert_int_equal(ignore_check(l, "192.0.2.10", NULL, 0, &info), IGNORE_NONE);
	assert_string_equal(info.detail, "exit status 1");
	assert_int_equal(info.command_failed, 0);
	struct kvlist t = KVLIST_INIT;
	kvlist_set(&t, "F-user", "admin");
	assert_int_equal(ignore_check(l, "192.0.2.10", &t, 0, &info), IGNORE_COMMAND);
	/* the list comes first: the command does not run for listed addresses */
	assert_int_equal(ignore_check(l, "10.0.0.1", NULL, 0, &info), IGNORE_LIST);
	kvlist_free(&t);
	ignore_free(l);

	o.ignorecommand = "exit 2";
	l = ignore_new("", &o, 0, &d);
	assert_int_equal(ignore_check(l, "192.0.2.9", NULL, 0, &info), IGNORE_NONE);
	assert_int_equal(info.command_failed, 1);
	ignore_free(l);
	diag_clear(&d);
}

static int proc_gone(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return 1;
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	return rp && (rp[2] == 'Z' || rp[2] == 'X');
}

static void command_timeout(void **state)
{
	(void)state;
	char pidfile[] = "/tmp/test_ignore_pid.XXXXXX";
	int fd = mkstemp(pidfile);
	assert_true(fd >= 0);
	close(fd);
	struct kvlist v = KVLIST_INIT;
	kvlist_set(&v, "pidfile", pidfile);
	struct ignore_cmd_result r;
	/* a background grandchild must die with the group */
	assert_int_equal(ignore_command_run("sh -c 'echo $$ > <pidfile>; exec sleep 30' & sleep 30; exit 0",
					    &v, 0.4, &r),
			 0);
	assert_int_equal(r.status, IGNORE_CMD_TIMEOUT);
	assert_true(r.elapsed >= 0.39 && r.elapsed < 3);
	printf("  timeout after %.3f s\n", r.elapsed);
	FILE *fp = fopen(pidfile, "r");
	assert_non_null(fp);
	int gpid = 0;
	assert_int_equal(fscanf(fp, "%d", &gpid), 1);
	fclose(fp);
	int gone = 0;
	for (int i = 0; i < 200 && !gone; i++) {
		gone = proc_gone(gpid);
		if (!gone) {
			struct timespec ts = {0, 10000000};
			nanosleep(&ts, NULL);
		}
	}
	assert_true(gone);
	unlink(pidfile);
	kvlist_free(&v);

	/* through the list: a timeout is reported and means "not ignored" */
	struct fake_dns f = {0};
	struct ignore_opts o = opts_noself(&f);
	o.ignorecommand = "sleep 10; exit 0";
	o.command_timeout = 0.2;
	struct diag d = DIAG_INIT;
	struct ignorelist *l = ignore_new("", &o, 0, &d);
	struct ignore_info info;
	assert_int_equal(ignore_check(l, "192.0.2.9", NULL, 0, &info), IGNORE_NONE);
	assert_int_equal(info.command_failed, 1);
	assert_non_null(strstr(info.detail, "timed out"));
	ignore_free(l);
	diag_clear(&d);
}

static void command_injection(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_ignore_inj.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char m1[300], m2[300], m3[300], v1[400], v2[400], v3[400];
	snprintf(m1, sizeof m1, "%s/x1", dir);
	snprintf(m2, sizeof m2, "%s/x2", dir);
	snprintf(m3, sizeof m3, "%s/x3", dir);
	snprintf(v1, sizeof v1, "$(touch %s)", m1);
	snprintf(v2, sizeof v2, ";touch %s;rm -rf %s/nothing", m2, dir);
	snprintf(v3, sizeof v3, "`touch %s`\n'\"|&", m3);
	struct kvlist v = KVLIST_INIT;
	kvlist_set(&v, "ip", v1);
	kvlist_set(&v, "F-user", v2);
	kvlist_set(&v, "fid", v3);
	struct ignore_cmd_result r;
	/* unquoted, quoted and in an argument list: nothing may execute */
	int rc = ignore_command_run("echo <ip> <F-USER> <fid>; printf '%s|%s|%s' \"<ip>\" "
				    "\"<F-USER>\" \"<fid>\"",
				    &v, 5, &r);
	assert_int_equal(rc, 1);
	assert_int_equal(access(m1, F_OK), -1);
	assert_int_equal(access(m2, F_OK), -1);
	assert_int_equal(access(m3, F_OK), -1);
	/* the values arrive byte for byte */
	assert_non_null(strstr(r.output, v1));
	char tail[1300];
	snprintf(tail, sizeof tail, "%s|%s|%s", v1, v2, v3);
	assert_non_null(strstr(r.output, tail));
	/* an inherited variable of the same name cannot pre-empt the value */
	setenv("f2bV_ip", "pre-set", 1);
	rc = ignore_command_run("test \"<ip>\" != pre-set", &v, 5, &r);
	assert_int_equal(rc, 1);
	unsetenv("f2bV_ip");
	/* through ignore_check with a ticket value */
	struct fake_dns f = {0};
	struct ignore_opts o = opts_noself(&f);
	o.ignorecommand = "test \"<F-USER>\" = nobody";
	struct diag d = DIAG_INIT;
	struct ignorelist *l = ignore_new("", &o, 0, &d);
	struct kvlist t = KVLIST_INIT;
	kvlist_set(&t, "F-user", v2);
	assert_int_equal(ignore_check(l, "192.0.2.1", &t, 0, NULL), IGNORE_NONE);
	assert_int_equal(ignore_check(l, v1, &t, 0, NULL), IGNORE_NONE);
	assert_int_equal(access(m1, F_OK), -1);
	assert_int_equal(access(m2, F_OK), -1);
	kvlist_free(&t);
	ignore_free(l);
	kvlist_free(&v);
	rmdir(dir);
	diag_clear(&d);
}

static long count_lines(const char *path)
{
	FILE *fp = fopen(path, "r");
	long n = 0;
	int c;
	if (!fp)
		return 0;
	while ((c = fgetc(fp)) != EOF)
		n += c == '\n';
	fclose(fp);
	return n;
}

static void cache(void **state)
{
	(void)state;
	char counter[] = "/tmp/test_ignore_cnt.XXXXXX";
	int fd = mkstemp(counter);
	assert_true(fd >= 0);
	close(fd);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "echo <ip> >> %s; test <ip> = 192.0.2.1", counter);
	struct fake_dns f = {0};
	struct ignore_opts o = opts_noself(&f);
	o.ignorecommand = cmd;
	o.ignorecache = "key=\"<ip>\", max-count=2, max-time=5m";
	struct diag d = DIAG_INIT;
	struct ignorelist *l = ignore_new("", &o, 0, &d);
	assert_int_equal(d.nerrors, 0);
	struct ignore_info info;
	assert_int_equal(ignore_check(l, "192.0.2.1", NULL, 1000, &info), IGNORE_COMMAND);
	assert_int_equal(info.cached, 0);
	assert_int_equal(count_lines(counter), 1);
	assert_int_equal(ignore_check(l, "192.0.2.1", NULL, 1100, &info), IGNORE_COMMAND);
	assert_int_equal(info.cached, 1);
	assert_int_equal(count_lines(counter), 1);
	/* negative verdicts are cached too */
	assert_int_equal(ignore_check(l, "192.0.2.2", NULL, 1100, &info), IGNORE_NONE);
	assert_int_equal(ignore_check(l, "192.0.2.2", NULL, 1200, &info), IGNORE_NONE);
	assert_int_equal(info.cached, 1);
	assert_int_equal(count_lines(counter), 2);
	/* expiry: 192.0.2.1 was stored at 1000, lives 300 s */
	assert_int_equal(ignore_check(l, "192.0.2.1", NULL, 1299, &info), IGNORE_COMMAND);
	assert_int_equal(info.cached, 1);
	assert_int_equal(ignore_check(l, "192.0.2.1", NULL, 1300, &info), IGNORE_COMMAND);
	assert_int_equal(info.cached, 0);
	assert_int_equal(count_lines(counter), 3);
	/* count cap 2: a third key pushes out the oldest (192.0.2.2) */
	assert_int_equal(ignore_check(l, "192.0.2.3", NULL, 1301, &info), IGNORE_NONE);
	assert_int_equal(count_lines(counter), 4);
	assert_int_equal(ignore_check(l, "192.0.2.1", NULL, 1302, &info), IGNORE_COMMAND);
	assert_int_equal(info.cached, 1);
	assert_int_equal(ignore_check(l, "192.0.2.2", NULL, 1303, &info), IGNORE_NONE);
	assert_int_equal(info.cached, 0);
	assert_int_equal(count_lines(counter), 5);
	/* a list entry added later wins over a cached "not ignored" at once */
	assert_int_equal(ignore_add(l, "192.0.2.3", 1304, &d), 0);
	assert_int_equal(ignore_check(l, "192.0.2.3", NULL, 1304, &info), IGNORE_LIST);
	ignore_free(l);

	/* a key on another tag */
	o.ignorecache = "key=\"<F-USER>\"";
	l = ignore_new("", &o, 0, &d);
	struct kvlist t = KVLIST_INIT;
	kvlist_set(&t, "F-user", "bob");
	assert_int_equal(ignore_check(l, "192.0.2.1", &t, 0, &info), IGNORE_COMMAND);
	assert_int_equal(ignore_check(l, "192.0.2.7", &t, 1, &info), IGNORE_COMMAND);
	assert_int_equal(info.cached, 1);
	kvlist_free(&t);
	ignore_free(l);

	/* bad specifications */
	const char *bad[] = {"max-count=10", "key=\"<ip>\", max-count=abc",
			     "key=\"<ip>\", max-time=soon", "key=\"<ip>\", max-count=0",
			     "key=\"<ip>\" max-count=[1"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct diag e = DIAG_INIT;
		o.ignorecache = bad[i];
		l = ignore_new("", &o, 0, &e);
		assert_true(e.nerrors >= 1);
		assert_non_null(strstr(e.items[0].text, "ignorecache"));
		ignore_free(l);
		diag_clear(&e);
	}
	unlink(counter);
	diag_clear(&d);
}

/* ------------------------------------------------------------ speed */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void speed(void **state)
{
	(void)state;
	struct fake_dns f = {0};
	struct ignore_opts o = opts_noself(&f);
	o.ignoreself = 1; /* real own addresses in the mix */
	char *buf = malloc(10000 * 48);
	size_t len = 0;
	uint32_t seed = 12345;
	for (int i = 0; i < 10000; i++) {
		seed = seed * 1103515245u + 12345u;
		unsigned a = 1 + (seed >> 8) % 120, b = (seed >> 4) & 255, c = seed & 255;
		switch (i % 5) {
		case 0:
			len += (size_t)sprintf(buf + len, "%u.%u.%u.%u ", a, b, c, i & 255);
			break;
		case 1:
			len += (size_t)sprintf(buf + len, "%u.%u.%u.0/24 ", a, b, c);
			break;
		case 2:
			len += (size_t)sprintf(buf + len, "%u.%u.0.0/16,", a + 130, b);
			break;
		case 3:
			len += (size_t)sprintf(buf + len, "2001:db8:%x:%x::/64 ", a, i);
			break;
		default:
			len += (size_t)sprintf(buf + len, "2001:db8:ffff::%x ", i);
			break;
		}
	}
	buf[len] = '\0';
	struct diag d = DIAG_INIT;
	double t0 = now_s();
	struct ignorelist *l = ignore_new(buf, &o, 0, &d);
	double tbuild = now_s() - t0;
	assert_int_equal(d.nerrors, 0);
	size_t n;
	ignore_entries(l, &n);
	assert_true(n >= 9000);

	char q[100000 / 10][48];
	for (int i = 0; i < 100000 / 10; i++) {
		seed = seed * 1103515245u + 12345u;
		if (i % 2)
			sprintf(q[i], "%u.%u.%u.%u", (seed >> 24) & 255, (seed >> 16) & 255,
				(seed >> 8) & 255, seed & 255);
		else
			sprintf(q[i], "2001:db8:%x:%x::%x", (seed >> 20) & 127, (seed >> 8) & 0x3fff,
				seed & 0xff);
	}
	size_t hits = 0;
	t0 = now_s();
	for (int r = 0; r < 10; r++)
		for (int i = 0; i < 100000 / 10; i++)
			hits += ignore_check(l, q[i], NULL, 0, NULL) != IGNORE_NONE;
	double tl = now_s() - t0;
	printf("  10k entries (%zu indexed, built in %.1f ms): 100k lookups in %.1f ms "
	       "(%.0f ns each), %zu hits\n",
	       ignore_size(l), tbuild * 1e3, tl * 1e3, tl * 1e9 / 100000, hits);
	assert_true(hits > 0 && hits < 100000);
	assert_true(tl < 2.0);
	/* a few known members */
	assert_int_equal(chk(l, "2001:db8:ffff::4"), IGNORE_LIST);
	assert_int_equal(chk(l, "2001:db8:ffff::5"), IGNORE_NONE);
	ignore_free(l);
	free(buf);
	diag_clear(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(entry_forms),      cmocka_unit_test(mapped_v6),
		cmocka_unit_test(bad_entries),      cmocka_unit_test(loopback_always),
		cmocka_unit_test(literal_ids),      cmocka_unit_test(dns_names),
		cmocka_unit_test(file_lists),       cmocka_unit_test(ignoreself),
		cmocka_unit_test(subst_rules),      cmocka_unit_test(command_exit_codes),
		cmocka_unit_test(command_timeout),  cmocka_unit_test(command_injection),
		cmocka_unit_test(cache),            cmocka_unit_test(speed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
