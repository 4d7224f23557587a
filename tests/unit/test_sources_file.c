/*
 * test_sources_file - log sources without a journal: the file follower in an
 * event loop (lines, partial lines, cut lines, CR, rename), first-line
 * fingerprints, seek-to-time, logpath lines and globbing; plus the journal
 * source's pure parts (journalmatch parsing and fitting, fail2ban's line
 * format), which need no journal files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/loop.h"
#include "core/strbuf.h"
#include "sources/file.h"
#include "sources/journal.h"
#include "sources/logpath.h"

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/mxjail-srcunit-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *mode, const char *s, size_t n)
{
	FILE *f = fopen(path, mode);
	assert_non_null(f);
	assert_int_equal(fwrite(s, 1, n, f), n);
	fclose(f);
}

struct rec {
	char lines[32][128];
	size_t len[32];
	int n;
};

static void on_line(const char *line, size_t len, double t, void *arg)
{
	struct rec *r = arg;
	assert_true(t < 0);
	if (r->n < 32) {
		size_t k = len < 127 ? len : 127;
		memcpy(r->lines[r->n], line, k);
		r->lines[r->n][k] = '\0';
		r->len[r->n] = len;
		r->n++;
	}
}

static void stop_cb(struct loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

static void run_for(struct loop *l, unsigned ms)
{
	loop_timer_add(l, ms, stop_cb, NULL);
	loop_run(l);
}

static void follower_lines(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof path, "%s/f1.log", tmpdir);
	write_file(path, "w", "a\r\nbb\nccc", 9);
	struct loop *l = loop_new();
	struct filesrc_opts o = {.maxline = 8};
	struct filesrc_set *s = filesrc_set_new(l, &o, NULL);
	assert_non_null(s);
	struct rec r = {0};
	struct filesrc *f = filesrc_new(s, path, NULL, on_line, &r);
	run_for(l, 50);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.lines[0], "a");
	assert_string_equal(r.lines[1], "bb");

	struct filesrc_pos p;
	filesrc_get_pos(f, &p);
	assert_int_equal(p.offset, 6);
	assert_int_equal(p.fplen, 3);   /* "a\r\n" */

	write_file(path, "a", "\n0123456789abc\nz\0z\n", 19);
	run_for(l, 50);
	assert_int_equal(r.n, 5);
	assert_string_equal(r.lines[2], "ccc");
	assert_int_equal(r.len[3], 8);  /* cut at maxline */
	assert_memory_equal(r.lines[3], "01234567", 8);
	assert_int_equal(r.len[4], 3);
	assert_memory_equal(r.lines[4], "z\0z", 3);

	/* rename + create */
	char old[160];
	snprintf(old, sizeof old, "%s.1", path);
	assert_int_equal(rename(path, old), 0);
	write_file(path, "w", "new\n", 4);
	run_for(l, 50);
	assert_int_equal(r.n, 6);
	assert_string_equal(r.lines[5], "new");
	struct filesrc_stats st;
	filesrc_get_stats(f, &st);
	assert_int_equal(st.rotations, 1);
	assert_int_equal(st.cut, 1);
	assert_int_equal(st.open_old, 1);

	filesrc_free(f);
	filesrc_set_free(s);
	loop_free(l);
}

static void follower_restart(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof path, "%s/f2.log", tmpdir);
	write_file(path, "w", "one\ntwo\n", 8);
	struct loop *l = loop_new();
	struct filesrc_set *s = filesrc_set_new(l, NULL, NULL);
	struct rec r = {0};
	struct filesrc *f = filesrc_new(s, path, NULL, on_line, &r);
	run_for(l, 30);
	struct filesrc_pos p;
	filesrc_get_pos(f, &p);
	struct filesrc_pos saved = p;
	saved.path = path;
	filesrc_free(f);
	write_file(path, "a", "three\n", 6);

	struct rec r2 = {0};
	struct filesrc_start st = {.mode = FILESRC_HEAD, .pos = &saved};
	f = filesrc_new(s, path, &st, on_line, &r2);
	run_for(l, 30);
	assert_int_equal(r2.n, 1);
	assert_string_equal(r2.lines[0], "three");
	filesrc_free(f);

	/* a saved fingerprint that does not fit any more: read from the start */
	saved.fp ^= 1;
	struct rec r3 = {0};
	f = filesrc_new(s, path, &st, on_line, &r3);
	run_for(l, 30);
	assert_int_equal(r3.n, 3);
	filesrc_free(f);

	/* tail: nothing old */
	struct rec r4 = {0};
	struct filesrc_start tail = {.mode = FILESRC_TAIL};
	f = filesrc_new(s, path, &tail, on_line, &r4);
	run_for(l, 30);
	assert_int_equal(r4.n, 0);
	filesrc_free(f);
	filesrc_set_free(s);
	loop_free(l);
}

static void fingerprint(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof path, "%s/fp.log", tmpdir);
	write_file(path, "w", "abc", 3);
	int fd = open(path, O_RDONLY);
	uint64_t fp = 0, fp2 = 0;
	uint32_t len = 0, len2 = 0;
	assert_int_equal(filesrc_fingerprint(fd, &fp, &len), 0);   /* no complete line */
	close(fd);
	write_file(path, "a", "\nmore\n", 6);
	fd = open(path, O_RDONLY);
	assert_int_equal(filesrc_fingerprint(fd, &fp, &len), 1);
	assert_int_equal(len, 4);
	close(fd);
	char big[1000];
	memset(big, 'q', sizeof big);
	write_file(path, "w", big, sizeof big);
	fd = open(path, O_RDONLY);
	assert_int_equal(filesrc_fingerprint(fd, &fp2, &len2), 1);
	assert_int_equal(len2, FILESRC_FP_MAX);
	assert_true(fp != fp2);
	close(fd);
}

static double date_epoch(const char *line, size_t len, void *arg)
{
	(void)arg;
	if (len < 2 || line[0] != 'T')
		return -1;
	return atof(line + 1);
}

static void seek_time(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof path, "%s/st.log", tmpdir);
	FILE *f = fopen(path, "w");
	for (int i = 0; i < 100000; i++) {
		fprintf(f, "T%d x\n", 1000 + i / 3);
		if (i % 7 == 0)
			fprintf(f, "  no date here\n");
	}
	fclose(f);
	int fd = open(path, O_RDONLY);
	struct stat st;
	fstat(fd, &st);
	uint64_t size = (uint64_t)st.st_size;
	assert_int_equal(filesrc_seek_time(fd, size, 0, date_epoch, NULL), 0);
	assert_int_equal(filesrc_seek_time(fd, size, 1e9, date_epoch, NULL), (int64_t)size);
	int64_t off = filesrc_seek_time(fd, size, 20000.5, date_epoch, NULL);
	char buf[32] = {0};
	assert_int_equal(pread(fd, buf, 7, off), 7);
	assert_string_equal(buf, "T20001 ");
	/* the line before is older or undated */
	assert_int_equal(pread(fd, buf, 1, off - 1), 1);
	assert_int_equal(buf[0], '\n');
	assert_int_equal(filesrc_seek_time(fd, 0, 5, date_epoch, NULL), 0);
	close(fd);
}

static void logpath_lines(void **state)
{
	(void)state;
	struct logpath lp;
	char err[256];
	assert_int_equal(logpath_parse("  /var/log/mail.log  ", &lp, err, sizeof err), 0);
	assert_string_equal(lp.pattern, "/var/log/mail.log");
	assert_int_equal(lp.tail, 0);
	free(lp.pattern);
	assert_int_equal(logpath_parse("/var/log/*.log TAIL", &lp, err, sizeof err), 0);
	assert_string_equal(lp.pattern, "/var/log/*.log");
	assert_int_equal(lp.tail, 1);
	free(lp.pattern);
	assert_int_equal(logpath_parse("/x head", &lp, err, sizeof err), 0);
	assert_int_equal(lp.tail, 0);
	free(lp.pattern);
	assert_int_equal(logpath_parse("/var/log/my file.log", &lp, err, sizeof err), -1);
	assert_non_null(strstr(err, "head"));
	assert_int_equal(logpath_parse("   ", &lp, err, sizeof err), 1);

	char p[160];
	snprintf(p, sizeof p, "%s/g-b.log", tmpdir);
	write_file(p, "w", "", 0);
	snprintf(p, sizeof p, "%s/g-a.log", tmpdir);
	write_file(p, "w", "", 0);
	snprintf(p, sizeof p, "%s/.g-hidden.log", tmpdir);
	write_file(p, "w", "", 0);
	char dangling[160];
	snprintf(dangling, sizeof dangling, "%s/g-c.log", tmpdir);
	assert_int_equal(symlink("/nonexistent/x", dangling), 0);
	char pat[160];
	snprintf(pat, sizeof pat, "%s/*g-*.log", tmpdir);
	char **list;
	size_t n;
	assert_int_equal(logpath_glob(pat, &list, &n, err, sizeof err), 0);
	assert_int_equal(n, 2);
	assert_non_null(strstr(list[0], "/g-a.log"));
	assert_non_null(strstr(list[1], "/g-b.log"));
	logpath_free_list(list, n);
	snprintf(pat, sizeof pat, "%s/nothing-*.log", tmpdir);
	assert_int_equal(logpath_glob(pat, &list, &n, err, sizeof err), 0);
	assert_int_equal(n, 0);
	logpath_free_list(list, n);
}

#define F(s) {s, sizeof(s) - 1}

static void journal_matches(void **state)
{
	(void)state;
	struct journalmatch m;
	char err[256];
	assert_int_equal(journalmatch_parse("_SYSTEMD_UNIT=sshd.service + _COMM=sshd", &m, err,
					    sizeof err), 0);
	assert_int_equal(m.n, 2);
	struct journalsrc_field e1[] = {F("_SYSTEMD_UNIT=sshd.service"), F("_COMM=x")};
	struct journalsrc_field e2[] = {F("_SYSTEMD_UNIT=other"), F("_COMM=sshd")};
	struct journalsrc_field e3[] = {F("_SYSTEMD_UNIT=other"), F("_COMM=sshd2")};
	assert_true(journalmatch_fits(&m, e1, 2));
	assert_true(journalmatch_fits(&m, e2, 2));
	assert_false(journalmatch_fits(&m, e3, 2));
	journalmatch_clear(&m);

	/* same field twice = OR, different fields = AND; lines are OR groups */
	assert_int_equal(journalmatch_parse("A=1 A=2 B='x y'\nC=3", &m, err, sizeof err), 0);
	assert_int_equal(m.n, 2);
	struct journalsrc_field a2b[] = {F("A=2"), F("B=x y")};
	struct journalsrc_field a3b[] = {F("A=3"), F("B=x y")};
	struct journalsrc_field a1[] = {F("A=1")};
	struct journalsrc_field c3[] = {F("C=3")};
	assert_true(journalmatch_fits(&m, a2b, 2));
	assert_false(journalmatch_fits(&m, a3b, 2));
	assert_false(journalmatch_fits(&m, a1, 1));
	assert_true(journalmatch_fits(&m, c3, 1));
	journalmatch_clear(&m);

	assert_int_equal(journalmatch_parse("", &m, err, sizeof err), 0);
	assert_int_equal(m.n, 0);
	assert_true(journalmatch_fits(&m, c3, 1));
	assert_int_equal(journalmatch_parse("sshd", &m, err, sizeof err), -1);
	assert_int_equal(journalmatch_parse("A=\"x", &m, err, sizeof err), -1);
	assert_int_equal(journalmatch_parse("lower=1", &m, err, sizeof err), -1);
}

static void journal_format(void **state)
{
	(void)state;
	struct strbuf b = STRBUF_INIT;
	struct journalsrc_field e1[] = {F("_HOSTNAME=mx"), F("SYSLOG_IDENTIFIER=sshd"),
					F("_PID=42"), F("MESSAGE=Failed password\nx")};
	double t = journalsrc_format(e1, 4, 1700000000123456ull, 0, &b);
	assert_string_equal(strbuf_str(&b), "mx sshd[42]: Failed password\\nx");
	assert_true(t > 1700000000.1234 && t < 1700000000.1235);

	struct journalsrc_field e2[] = {F("_COMM=dovecot"), F("SYSLOG_PID= 0x1f"),
					F("MESSAGE=a"), F("MESSAGE=b"),
					F("_SOURCE_REALTIME_TIMESTAMP=1600000000000000")};
	t = journalsrc_format(e2, 5, 1700000000000000ull, 0, &b);
	assert_string_equal(strbuf_str(&b), "dovecot[31]: a b");
	assert_true(t == 1600000000.0);

	struct journalsrc_field e3[] = {F("_HOSTNAME=h"), F("SYSLOG_IDENTIFIER=kernel"),
					F("MESSAGE=oops")};
	journalsrc_format(e3, 3, 0, 12345678, &b);
	assert_string_equal(strbuf_str(&b), "h kernel: [   12.345678] oops");

	struct journalsrc_field e4[] = {F("SYSLOG_IDENTIFIER=x"), F("SYSLOG_PID=0"),
					F("_PID=007"), F("MESSAGE=")};
	journalsrc_format(e4, 4, 0, 0, &b);
	assert_string_equal(strbuf_str(&b), "x[7]: ");

	struct journalsrc_field e5[] = {F("SYSLOG_IDENTIFIER=x"), F("SYSLOG_PID=ab'c")};
	journalsrc_format(e5, 2, 0, 0, &b);
	assert_string_equal(strbuf_str(&b), "x[b\"ab'c\"]: ");

	struct journalsrc_field e6[] = {F("MESSAGE=only")};
	journalsrc_format(e6, 1, 0, 0, &b);
	assert_string_equal(strbuf_str(&b), "only");
	strbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(follower_lines),
		cmocka_unit_test(follower_restart),
		cmocka_unit_test(fingerprint),
		cmocka_unit_test(seek_time),
		cmocka_unit_test(logpath_lines),
		cmocka_unit_test(journal_matches),
		cmocka_unit_test(journal_format),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
