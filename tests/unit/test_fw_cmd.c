/*
 * test_fw_cmd - unit tests for action.d command actions: reading an action
 * unit (config/actionload.h: bracket > [Init] > [Definition], name/actname
 * defaults, %(x)s and <tag>s), and running it (actions/fw_cmd.h): start,
 * ban, unban, flush, stop in order through the worker, $f2bV_ escaping of
 * hostile values, per-family on-demand start, timeouts, a full queue,
 * norestored, and Debian's dummy action when the fail2ban tree is present.
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

#include "actions/fw_cmd.h"
#include "config/actionload.h"
#include "core/diag.h"
#include "core/kvlist.h"
#include "core/xmalloc.h"

struct reports {
	char text[8192];
	int errors;
};

static void collect(void *ctx, int level, const char *msg)
{
	struct reports *r = ctx;
	size_t n = strlen(r->text);
	snprintf(r->text + n, sizeof r->text - n, "%d %s\n", level, msg);
	if (level == 0)
		r->errors++;
}

static char dir[256];

static void write_file(const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return xstrdup("");
	static char buf[16384];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return xstrdup(buf);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/mxjail-fwcmd-XXXXXX");
	assert_non_null(mkdtemp(dir));
	char p[512];
	snprintf(p, sizeof p, "%s/action.d", dir);
	mkdir(p, 0700);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct fw_cmd *load(struct fw_cmdq *q, const char *confdir, const char *name,
			   const char *jail, const struct kvlist *bracket, struct kvlist *props)
{
	struct diag d = DIAG_INIT;
	struct actionload_req rq = {confdir, name, jail, bracket, NULL};
	int rc = actionload(&rq, props, &d);
	if (rc != 0)
		diag_print(&d, stderr);
	assert_int_equal(rc, 0);
	diag_clear(&d);
	char err[256] = "";
	struct fw_cmd *c = fw_cmd_new(q, jail, name, props, err, sizeof err);
	if (!c)
		fprintf(stderr, "fw_cmd_new: %s\n", err);
	assert_non_null(c);
	return c;
}

static void test_load_precedence(void **state)
{
	(void)state;
	write_file("action.d/prec.conf",
		   "[INCLUDES]\nbefore = prec-common.conf\n"
		   "[Definition]\nactionban = ban <ip> <a> <b> <c> <name> <actname> %(helper)s\n"
		   "actionunban = <common>\nhelper = H<b>\n"
		   "[Init]\na = init-a\nb = init-b\n");
	write_file("action.d/prec-common.conf", "[Definition]\ncommon = from-common <a>\n");
	write_file("action.d/prec.local", "[Init]\nc = local-c\n");
	struct kvlist br = KVLIST_INIT, props = KVLIST_INIT;
	kvlist_set(&br, "b", "bracket-b");
	struct diag d = DIAG_INIT;
	struct actionload_req rq = {dir, "prec", "sshd", &br, NULL};
	assert_int_equal(actionload(&rq, &props, &d), 0);
	assert_string_equal(kvlist_get(&props, "actionban"),
			    "ban <ip> init-a bracket-b local-c sshd prec Hbracket-b");
	assert_string_equal(kvlist_get(&props, "actionunban"), "from-common init-a");
	assert_string_equal(kvlist_get(&props, "known/b"), "init-b");
	kvlist_free(&props);
	/* name given: actname gets a suffix */
	kvlist_set(&br, "name", "sshd-tcp");
	assert_int_equal(actionload(&rq, &props, &d), 0);
	assert_string_equal(kvlist_get(&props, "actname"), "prec-tcp");
	kvlist_free(&props);
	kvlist_free(&br);
	/* missing action, bad name */
	struct actionload_req miss = {dir, "nosuch", "sshd", NULL, NULL};
	assert_int_equal(actionload(&miss, &props, &d), -1);
	assert_non_null(strstr(d.items[d.n - 1].text, "not found"));
	struct actionload_req bad = {dir, "../etc/passwd", "sshd", NULL, NULL};
	assert_int_equal(actionload(&bad, &props, &d), -1);
	diag_clear(&d);
	kvlist_free(&props);
}

static void test_run_order_and_escaping(void **state)
{
	(void)state;
	char out[400], pwn[400];
	snprintf(out, sizeof out, "%s/out.txt", dir);
	snprintf(pwn, sizeof pwn, "%s/PWNED", dir);
	write_file("action.d/rec.conf",
		   "[Definition]\nactionstart = echo start <name> >> '<out>'\n"
		   "actionban = echo ban <ip> f=<failures> u=<F-USER> t=<bantime> >> '<out>'\n"
		   "            printf '%%s\\n' \"<matches>\" >> '<out>'\n"
		   "actionunban = echo unban <ip> >> '<out>'\n"
		   "actionflush = echo flush >> '<out>'\n"
		   "actionstop = echo stop >> '<out>'\n"
		   "[Init]\nout = /nonexistent\n");
	struct reports rep = {"", 0};
	struct fw_cmdq *q = fw_cmdq_new(0, collect, &rep);
	struct kvlist br = KVLIST_INIT, props = KVLIST_INIT;
	kvlist_set(&br, "out", out);
	struct fw_cmd *c = load(q, dir, "rec", "postfix", &br, &props);
	assert_int_equal(fw_cmd_start(c), 0);
	struct kvlist t = KVLIST_INIT;
	kvlist_set(&t, "ip", "192.0.2.1");
	kvlist_set(&t, "failures", "3");
	kvlist_set(&t, "bantime", "600");
	kvlist_set(&t, "F-user", "bob; touch PWNED");
	char m[1400];
	snprintf(m, sizeof m, "line one\n$(touch %s) `touch %s` '; touch %s; '", pwn, pwn, pwn);
	kvlist_set(&t, "matches", m);
	assert_int_equal(fw_cmd_ban(c, &t, 0), 0);
	struct kvlist u = KVLIST_INIT;
	kvlist_set(&u, "ip", "192.0.2.1");
	assert_int_equal(fw_cmd_unban(c, &u), 0);
	/* an unban of something never banned through a started family still runs
	 * (family inet4 holds bans); flush then stop */
	assert_int_equal(fw_cmd_flush(c), 0);
	assert_int_equal(fw_cmd_stop(c), 0);
	fw_cmd_release(c);
	assert_int_equal(fw_cmdq_wait(q, 20), 0);
	char *text = read_file(out);
	char want[4096];
	snprintf(want, sizeof want,
		 "start postfix\nban 192.0.2.1 f=3 u=bob; touch PWNED t=600\nline one\n"
		 "$(touch %s) `touch %s` '; touch %s; '\nunban 192.0.2.1\nflush\nstop\n",
		 pwn, pwn, pwn);
	assert_string_equal(text, want);
	assert_int_equal(access(pwn, F_OK), -1);
	assert_int_equal(rep.errors, 0);
	free(text);
	fw_cmdq_free(q, 5);
	kvlist_free(&br);
	kvlist_free(&props);
	kvlist_free(&t);
	kvlist_free(&u);
}

static void test_families_run(void **state)
{
	(void)state;
	char out[400], want[1024];
	snprintf(out, sizeof out, "%s/fam2.txt", dir);
	unlink(out);
	write_file("action.d/fam.conf",
		   "[Definition]\nactionstart = echo start <kind> >> '<out>'\n"
		   "actionban = echo ban <kind> <ip> <family> >> '<out>'\n"
		   "actionunban = echo unban <kind> <ip> >> '<out>'\n"
		   "actionstop = echo stop <kind> >> '<out>'\n"
		   "[Init]\nkind = four\n[Init?family=inet6]\nkind = six\n");
	struct reports rep = {"", 0};
	struct fw_cmdq *q = fw_cmdq_new(0, collect, &rep);
	struct kvlist br = KVLIST_INIT, props = KVLIST_INIT;
	kvlist_set(&br, "out", out);
	struct fw_cmd *c = load(q, dir, "fam", "dovecot", &br, &props);
	snprintf(want, sizeof want, "echo ban six <ip> <family> >> '%s'", out);
	assert_string_equal(fw_cmd_command(c, "actionban", "inet6"), want);
	assert_int_equal(fw_cmd_start(c), 0); /* on demand: nothing now */
	struct kvlist t = KVLIST_INIT;
	kvlist_set(&t, "ip", "2001:db8::1");
	fw_cmd_ban(c, &t, 0);
	kvlist_set(&t, "ip", "192.0.2.9");
	fw_cmd_ban(c, &t, 0);
	kvlist_set(&t, "ip", "2001:db8::2");
	fw_cmd_ban(c, &t, 0);
	fw_cmd_unban(c, &t);
	fw_cmd_stop(c);
	fw_cmd_release(c);
	assert_int_equal(fw_cmdq_wait(q, 20), 0);
	char *text = read_file(out);
	assert_string_equal(text, "start six\nban six 2001:db8::1 inet6\nstart four\n"
				  "ban four 192.0.2.9 inet4\nban six 2001:db8::2 inet6\n"
				  "unban six 2001:db8::2\nstop four\nstop six\n");
	free(text);
	assert_int_equal(rep.errors, 0);
	fw_cmdq_free(q, 5);
	kvlist_free(&t);
	kvlist_free(&props);
	kvlist_free(&br);
}

static void test_timeout_full_norestored(void **state)
{
	(void)state;
	char out[400];
	snprintf(out, sizeof out, "%s/slow.txt", dir);
	write_file("action.d/slow.conf",
		   "[Definition]\nnorestored = 1\nactionban = sleep 30; echo late >> '<out>'\n"
		   "actionunban = exit 3\n[Init]\ntimeout = 0.3\n");
	struct reports rep = {"", 0};
	struct fw_cmdq *q = fw_cmdq_new(3, collect, &rep);
	struct kvlist br = KVLIST_INIT, props = KVLIST_INIT;
	kvlist_set(&br, "out", out);
	struct fw_cmd *c = load(q, dir, "slow", "sshd", &br, &props);
	struct kvlist t = KVLIST_INIT;
	kvlist_set(&t, "ip", "192.0.2.1");
	/* the worker is not started yet: the queue fills */
	assert_int_equal(fw_cmd_ban(c, &t, 1), 0); /* restored: skipped (norestored) */
	assert_int_equal(fw_cmd_ban(c, &t, 0), 0);
	assert_int_equal(fw_cmd_unban(c, &t), 0);
	assert_int_equal(fw_cmd_unban(c, &t), -ENOSPC);
	assert_non_null(strstr(rep.text, "queue full"));
	assert_int_equal(fw_cmdq_wait(q, 20), 0);
	assert_non_null(strstr(rep.text, "actionban 192.0.2.1 failed: timed out"));
	assert_non_null(strstr(rep.text, "actionunban 192.0.2.1 failed: exit status 3"));
	assert_int_equal(access(out, F_OK), -1);
	fw_cmd_release(c);
	fw_cmdq_free(q, 5);
	kvlist_free(&t);
	kvlist_free(&props);
	kvlist_free(&br);
}

static void test_bad_options(void **state)
{
	(void)state;
	struct kvlist props = KVLIST_INIT;
	struct fw_cmdq *q = fw_cmdq_new(0, NULL, NULL);
	char err[256];
	kvlist_set(&props, "actionban", "x <loop>");
	kvlist_set(&props, "loop", "<loop>");
	assert_null(fw_cmd_new(q, "j", "a", &props, err, sizeof err));
	kvlist_free(&props);
	kvlist_set(&props, "timeout", "soon");
	assert_null(fw_cmd_new(q, "j", "a", &props, err, sizeof err));
	assert_non_null(strstr(err, "timeout"));
	kvlist_free(&props);
	fw_cmdq_free(q, 1);
}

static void test_debian_dummy(void **state)
{
	(void)state;
	const char *root = getenv("MXJAIL_F2B_ROOT");
	char confdir[512];
	snprintf(confdir, sizeof confdir, "%s/etc/fail2ban", root ? root : "/nonexistent");
	struct stat st;
	if (!root || stat(confdir, &st) < 0) {
		fprintf(stderr, "skipped: MXJAIL_F2B_ROOT not set (Debian's dummy.conf)\n");
		skip();
	}
	char target[400];
	snprintf(target, sizeof target, "%s/dummy.target", dir);
	struct reports rep = {"", 0};
	struct fw_cmdq *q = fw_cmdq_new(0, collect, &rep);
	struct kvlist br = KVLIST_INIT, props = KVLIST_INIT;
	kvlist_set(&br, "target", target);
	struct fw_cmd *c = load(q, confdir, "dummy", "sshd", &br, &props);
	fw_cmd_start(c);
	struct kvlist t = KVLIST_INIT;
	kvlist_set(&t, "ip", "192.0.2.1");
	fw_cmd_ban(c, &t, 0);
	kvlist_set(&t, "ip", "2001:db8::7");
	fw_cmd_ban(c, &t, 0);
	fw_cmd_unban(c, &t);
	fw_cmdq_wait(q, 20);
	char *text = read_file(target);
	assert_string_equal(text, "123\n+192.0.2.1\n+2001:db8::7\n-2001:db8::7\n");
	free(text);
	fw_cmd_flush(c);
	fw_cmd_stop(c);
	fw_cmd_release(c);
	assert_int_equal(fw_cmdq_wait(q, 20), 0);
	assert_int_equal(access(target, F_OK), -1); /* actionstop removes it */
	assert_non_null(strstr(rep.text, "[sshd] dummy " ));
	assert_int_equal(rep.errors, 0);
	fw_cmdq_free(q, 5);
	kvlist_free(&t);
	kvlist_free(&props);
	kvlist_free(&br);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_precedence),
		cmocka_unit_test(test_run_order_and_escaping),
		cmocka_unit_test(test_families_run),
		cmocka_unit_test(test_timeout_full_norestored),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_debian_dummy),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
