/*
 * srccheck - test driver for the log sources (file follower, journal).
 *
 * Usage:
 *	srccheck file [options] PATH...
 *	  --tail | --since T      start mode (default: from the start); --since
 *	                          reads dates as a leading "EPOCH " number
 *	  --pos I PATH INODE OFFSET FP FPLEN   saved position for PATH number I
 *	  --maxline N  --per-turn N  --poll MS  --keep MS
 *	srccheck journal --dir DIR [--cursor C] [--since T] [--tail]
 *	                 [--match NAME SPEC]...   (SPEC: journalmatch lines, "\n"-separated)
 * Output, one record per line, flushed at once:
 *	READY                            set up, sources running
 *	L I TEXT                         file line from PATH number I
 *	J NAME TIME TEXT                 journal line for match set NAME
 *	POS I PATH INODE OFFSET FP FPLEN (file, on "pos"/"quit")
 *	CURSOR C                         (journal, on "pos"/"quit"; "-" when none)
 *	STATS I lines cut rotations truncations open_old present
 *	ERR message                      (then exit 2)
 * TEXT escapes '\\' and bytes outside 0x20..0x7e as \xNN.
 * Commands on stdin: "pos", "stats", "sleep MS" (blocks the loop, answers
 * SLEEPING first), "quit" (prints positions and exits). EOF = quit.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/loop.h"
#include "sources/file.h"
#include "sources/journal.h"

#define MAXF 16

struct ctx {
	struct loop *loop;
	int nfile;
	struct filesrc *f[MAXF];
	struct journalsrc *j;
	char inbuf[4096];
	size_t inlen;
};

struct fileid {
	int i;
};

struct jailid {
	const char *name;
};

static void put_text(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\')
			fputs("\\\\", stdout);
		else if (c < 0x20 || c > 0x7e)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

static void on_file_line(const char *line, size_t len, double t, void *arg)
{
	(void)t;
	struct fileid *id = arg;
	printf("L %d ", id->i);
	put_text(line, len);
	putchar('\n');
	fflush(stdout);
}

static void on_journal_line(const char *line, size_t len, double t, void *arg)
{
	struct jailid *id = arg;
	printf("J %s %.6f ", id->name, t);
	put_text(line, len);
	putchar('\n');
	fflush(stdout);
}

static double epoch_date(const char *line, size_t len, void *arg)
{
	(void)arg;
	size_t i = 0;
	double v = 0;
	while (i < len && line[i] >= '0' && line[i] <= '9')
		v = v * 10 + (line[i++] - '0');
	if (i == 0 || i >= len || line[i] != ' ')
		return -1;
	return v;
}

static void print_state(struct ctx *c)
{
	for (int i = 0; i < c->nfile; i++) {
		struct filesrc_pos p;
		filesrc_get_pos(c->f[i], &p);
		printf("POS %d %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu32 "\n", i, p.path,
		       p.inode, p.offset, p.fp, p.fplen);
	}
	if (c->j) {
		char *cur = journalsrc_cursor(c->j);
		printf("CURSOR %s\n", cur ? cur : "-");
		free(cur);
	}
	fflush(stdout);
}

static void command(struct ctx *c, const char *cmd)
{
	if (!strcmp(cmd, "pos")) {
		print_state(c);
	} else if (!strcmp(cmd, "stats")) {
		for (int i = 0; i < c->nfile; i++) {
			struct filesrc_stats st;
			filesrc_get_stats(c->f[i], &st);
			printf("STATS %d %lu %lu %lu %lu %d %d\n", i, st.lines, st.cut, st.rotations,
			       st.truncations, st.open_old, st.present);
		}
		fflush(stdout);
	} else if (!strncmp(cmd, "sleep ", 6)) {
		printf("SLEEPING\n");
		fflush(stdout);
		usleep((useconds_t)atoi(cmd + 6) * 1000u);
	} else if (!strcmp(cmd, "quit")) {
		print_state(c);
		loop_stop(c->loop);
	}
}

static void on_stdin(struct loop *l, int fd, unsigned ev, void *arg)
{
	(void)ev;
	struct ctx *c = arg;
	ssize_t n = read(fd, c->inbuf + c->inlen, sizeof c->inbuf - 1 - c->inlen);
	if (n <= 0) {
		if (n < 0 && errno == EINTR)
			return;
		loop_fd_del(l, fd);
		command(c, "quit");
		return;
	}
	c->inlen += (size_t)n;
	char *nl;
	while ((nl = memchr(c->inbuf, '\n', c->inlen)) != NULL) {
		*nl = '\0';
		command(c, c->inbuf);
		size_t used = (size_t)(nl + 1 - c->inbuf);
		memmove(c->inbuf, nl + 1, c->inlen - used);
		c->inlen -= used;
	}
	if (c->inlen == sizeof c->inbuf - 1)
		c->inlen = 0;
}

static int fail(const char *msg)
{
	printf("ERR %s\n", msg);
	fflush(stdout);
	return 2;
}

static char *unescape_nl(const char *s)
{
	char *r = strdup(s), *w = r;
	for (const char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] == 'n') {
			*w++ = '\n';
			p++;
		} else {
			*w++ = *p;
		}
	}
	*w = '\0';
	return r;
}

static int run_file(struct ctx *c, int argc, char **argv)
{
	struct filesrc_opts o = {0};
	struct filesrc_start st = {FILESRC_HEAD, NULL, 0, epoch_date, NULL};
	struct filesrc_pos pos[MAXF];
	int havepos[MAXF] = {0};
	const char *paths[MAXF];
	int np = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--tail"))
			st.mode = FILESRC_TAIL;
		else if (!strcmp(a, "--since") && i + 1 < argc) {
			st.mode = FILESRC_SINCE;
			st.since = strtod(argv[++i], NULL);
		} else if (!strcmp(a, "--maxline") && i + 1 < argc)
			o.maxline = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(a, "--per-turn") && i + 1 < argc)
			o.max_per_turn = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(a, "--poll") && i + 1 < argc)
			o.poll_ms = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(a, "--keep") && i + 1 < argc)
			o.keep_old_ms = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(a, "--pos") && i + 6 < argc) {
			int k = atoi(argv[++i]);
			if (k < 0 || k >= MAXF)
				return fail("bad --pos index");
			pos[k].path = argv[++i];
			pos[k].inode = strtoull(argv[++i], NULL, 10);
			pos[k].offset = strtoull(argv[++i], NULL, 10);
			pos[k].fp = strtoull(argv[++i], NULL, 10);
			pos[k].fplen = (uint32_t)strtoul(argv[++i], NULL, 10);
			havepos[k] = 1;
		} else if (a[0] == '-' && a[1])
			return fail("unknown option");
		else if (np < MAXF)
			paths[np++] = a;
	}
	int err = 0;
	struct filesrc_set *s = filesrc_set_new(c->loop, &o, &err);
	if (!s)
		return fail(strerror(-err));
	struct fileid ids[MAXF];
	for (int i = 0; i < np; i++) {
		struct filesrc_start si = st;
		si.pos = havepos[i] ? &pos[i] : NULL;
		ids[i].i = i;
		c->f[i] = filesrc_new(s, paths[i], &si, on_file_line, &ids[i]);
	}
	c->nfile = np;
	printf("READY\n");
	fflush(stdout);
	loop_run(c->loop);
	for (int i = 0; i < np; i++)
		filesrc_free(c->f[i]);
	filesrc_set_free(s);
	return 0;
}

static int run_journal(struct ctx *c, int argc, char **argv)
{
	struct journalsrc_opts o = {0};
	const char *cursor = NULL;
	double since = -1;
	int tail = 0;
	const char *names[MAXF];
	char *specs[MAXF];
	int nm = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--dir") && i + 1 < argc)
			o.directory = argv[++i];
		else if (!strcmp(a, "--cursor") && i + 1 < argc)
			cursor = argv[++i];
		else if (!strcmp(a, "--since") && i + 1 < argc)
			since = strtod(argv[++i], NULL);
		else if (!strcmp(a, "--tail"))
			tail = 1;
		else if (!strcmp(a, "--per-turn") && i + 1 < argc)
			o.max_per_turn = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(a, "--match") && i + 2 < argc && nm < MAXF) {
			names[nm] = argv[++i];
			specs[nm++] = unescape_nl(argv[++i]);
		} else
			return fail("unknown option");
	}
	char err[512];
	c->j = journalsrc_new(c->loop, &o, err, sizeof err);
	if (!c->j) {
		for (int i = 0; i < nm; i++)
			free(specs[i]);
		return fail(err);
	}
	struct jailid ids[MAXF];
	int r = 0;
	for (int i = 0; i < nm; i++) {
		ids[i].name = names[i];
		if (r == 0 &&
		    journalsrc_add(c->j, specs[i], on_journal_line, &ids[i], err, sizeof err) < 0)
			r = fail(err);
		free(specs[i]);
	}
	struct journalsrc_start js = {cursor, tail ? -1.0 : (since >= 0 ? since : 0.0)};
	if (r == 0 && journalsrc_start(c->j, &js, err, sizeof err) < 0)
		r = fail(err);
	if (r == 0) {
		printf("READY\n");
		fflush(stdout);
		loop_run(c->loop);
	}
	c->j = journalsrc_free(c->j);
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return fail("usage: srccheck file|journal ...");
	struct ctx c;
	memset(&c, 0, sizeof c);
	c.loop = loop_new();
	if (!c.loop)
		return fail("no event loop");
	loop_fd_add(c.loop, 0, LOOP_READ, on_stdin, &c);
	int r;
	if (!strcmp(argv[1], "file"))
		r = run_file(&c, argc - 2, argv + 2);
	else if (!strcmp(argv[1], "journal"))
		r = run_journal(&c, argc - 2, argv + 2);
	else
		r = fail("unknown mode");
	loop_free(c.loop);
	return r;
}
