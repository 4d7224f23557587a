/*
 * file - log file follower (see file.h).
 *
 * Each follower keeps one "current" open inode (the file at its path) and a
 * few "old" ones (rotated away or deleted, still read for keep_old_ms because
 * writers finish on them). All reads are pread() at the follower's own
 * offset, so nothing depends on the descriptor's file position. Every wakeup
 * (inotify event for the follower, 0 ms continuation timer, safety-net poll)
 * runs the same fs_check(): read old inodes, re-stat the path, drain and
 * retire the current inode when the path moved on, detect truncation, read.
 *
 * The inotify instance is shared by the whole set (one instance per follower
 * would hit fs.inotify.max_user_instances with globbed logpaths). The kernel
 * returns the same watch descriptor for an inode watched twice, so watches
 * are reference-counted by (wd, follower) entries.
 *
 * SECURITY: log content is untrusted. Lines are capped at maxline, reads per
 * wakeup are capped, no per-line allocation happens.
 */
#include "sources/file.h"
#include "core/loop.h"
#include "core/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (32 * 1024)
#define DEF_MAXLINE (64 * 1024)
#define DEF_PER_TURN (256 * 1024)
#define DEF_POLL_MS 1000
#define DEF_KEEP_OLD_MS 5000
#define MAX_OLD 8

#define DIR_MASK (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | \
		  IN_MOVE_SELF | IN_ATTRIB | IN_ONLYDIR)
#define FILE_MASK (IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF | IN_CLOSE_WRITE)

struct ofile {
	int fd;
	int wd;
	dev_t dev;
	ino_t ino;
	uint64_t off;       /* end of the last complete line delivered */
	uint64_t rpos;      /* bytes consumed from the file (off + partial) */
	char *buf;          /* partial line at the front, read space after it */
	size_t blen;
	int skipping;       /* dropping the rest of a line cut at maxline */
	uint64_t fp;
	uint32_t fplen;
	uint64_t close_at;  /* old inodes: monotonic ms after which to close at EOF */
};

struct wentry {
	int wd;
	struct filesrc *f;
};

struct filesrc_set {
	struct loop *loop;
	int ifd;
	struct filesrc_opts o;
	struct wentry *w;
	size_t nw, capw;
	struct filesrc **f;
	size_t nf, capf;
	uint64_t poll_timer;
};

struct filesrc {
	struct filesrc_set *set;
	char *path;          /* as given (reported in positions) */
	char *abs;           /* absolute form used for every system call */
	char *parent;        /* directory of abs */
	char *base;          /* last component of abs */
	char *wdir;          /* directory currently watched (parent or an ancestor) */
	char *want;          /* name inside wdir whose events matter */
	int dir_wd;
	int dir_stale;
	struct ofile cur;
	struct ofile old[MAX_OLD];
	int nold;
	src_line_cb cb;
	void *arg;
	void (*done)(void *arg); /* after each wakeup's lines (filesrc_set_done) */
	uint64_t cont_timer;
	uint64_t old_timer;  /* closes old inodes when their keep time is over */
	int dirty;
	int present;
	struct filesrc_stats st;
};

/* ---- fingerprint ---- */

static uint64_t fnv1a(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int filesrc_fingerprint(int fd, uint64_t *fp, uint32_t *fplen)
{
	char b[FILESRC_FP_MAX];
	ssize_t n = pread_full(fd, b, sizeof b, 0);
	if (n < 0)
		return -errno;
	const char *nl = memchr(b, '\n', (size_t)n);
	size_t len;
	if (nl)
		len = (size_t)(nl - b) + 1;
	else if ((size_t)n == sizeof b)
		len = sizeof b;
	else
		return 0;
	*fp = fnv1a(b, len);
	*fplen = (uint32_t)len;
	return 1;
}

/* 1 when fd's first fplen bytes still hash to fp. */
static int fp_matches(int fd, uint64_t fp, uint32_t fplen)
{
	char b[FILESRC_FP_MAX];
	if (fplen == 0 || fplen > sizeof b)
		return 0;
	ssize_t n = pread_full(fd, b, fplen, 0);
	return n == (ssize_t)fplen && fnv1a(b, fplen) == fp;
}

/* ---- seek to time ---- */

/* Offset just after the first '\n' at or after `pos`, or size. */
static int64_t next_line_start(int fd, uint64_t pos, uint64_t size)
{
	char b[8192];
	while (pos < size) {
		size_t want = size - pos < sizeof b ? (size_t)(size - pos) : sizeof b;
		ssize_t n = pread_full(fd, b, want, pos);
		if (n < 0)
			return -errno;
		if (n == 0)
			return (int64_t)size;
		const char *nl = memchr(b, '\n', (size_t)n);
		if (nl)
			return (int64_t)(pos + (uint64_t)(nl - b) + 1);
		pos += (uint64_t)n;
	}
	return (int64_t)size;
}

/* Date of the line starting at pos (only its first 16 KiB are shown to the
 * parser); *end gets the start of the next line. */
static double line_date(int fd, uint64_t pos, uint64_t size, filesrc_date_cb cb, void *arg,
			int64_t *end)
{
	static const size_t cap = 16384;
	char *b = xmalloc(cap);
	size_t want = size - pos < cap ? (size_t)(size - pos) : cap;
	ssize_t n = pread_full(fd, b, want, pos);
	if (n <= 0) {
		free(b);
		*end = n < 0 ? -errno : (int64_t)size;
		return -1;
	}
	const char *nl = memchr(b, '\n', (size_t)n);
	size_t len = nl ? (size_t)(nl - b) : (size_t)n;
	size_t tl = len;
	while (tl > 0 && b[tl - 1] == '\r')
		tl--;
	double t = cb(b, tl, arg);
	free(b);
	if (nl)
		*end = (int64_t)(pos + len + 1);
	else
		*end = next_line_start(fd, pos + (uint64_t)n, size);
	return t;
}

int64_t filesrc_seek_time(int fd, uint64_t size, double since, filesrc_date_cb cb, void *arg)
{
	uint64_t lo = 0, hi = size;
	int64_t e;
	/* Bisect while the window is large; lo stays a line start before the
	 * answer. A probe that finds no dated line only shrinks hi, so the
	 * final forward scan from lo still finds the right line. */
	while (lo < hi && hi - lo > 65536) {
		uint64_t mid = lo + (hi - lo) / 2;
		int64_t s = next_line_start(fd, mid - 1, size);
		if (s < 0)
			return s;
		uint64_t p = (uint64_t)s;
		int found = 0;
		double t = -1;
		for (int k = 0; k < 64 && p < hi; k++) {
			t = line_date(fd, p, size, cb, arg, &e);
			if (e < 0)
				return e;
			if (t >= 0) {
				found = 1;
				break;
			}
			p = (uint64_t)e;
		}
		if (found && t < since)
			lo = (uint64_t)e;
		else
			hi = mid;
	}
	uint64_t p = lo;
	while (p < size) {
		double t = line_date(fd, p, size, cb, arg, &e);
		if (e < 0)
			return e;
		if (t >= 0 && t >= since)
			return (int64_t)p;
		p = (uint64_t)e;
	}
	return (int64_t)size;
}

/* ---- watches ---- */

static int set_watch(struct filesrc_set *s, struct filesrc *f, const char *path, uint32_t mask)
{
	int wd = inotify_add_watch(s->ifd, path, mask | IN_MASK_ADD);
	if (wd < 0)
		return -1;
	s->w = xgrow(s->w, &s->capw, s->nw, sizeof *s->w);
	s->w[s->nw++] = (struct wentry){wd, f};
	return wd;
}

static void set_unwatch(struct filesrc_set *s, struct filesrc *f, int wd)
{
	if (wd < 0)
		return;
	int others = 0, removed = 0;
	for (size_t i = 0; i < s->nw; i++) {
		if (!removed && s->w[i].wd == wd && s->w[i].f == f) {
			s->w[i] = s->w[--s->nw];
			removed = 1;
			i--;
			continue;
		}
		if (s->w[i].wd == wd)
			others = 1;
	}
	if (removed && !others)
		inotify_rm_watch(s->ifd, wd);
}

/* ---- reading ---- */

static void of_reset(struct ofile *o)
{
	free(o->buf);
	memset(o, 0, sizeof *o);
	o->fd = -1;
	o->wd = -1;
}

static void of_close(struct filesrc *f, struct ofile *o)
{
	set_unwatch(f->set, f, o->wd);
	if (o->fd >= 0)
		close(o->fd);
	of_reset(o);
}

static void emit(struct filesrc *f, const char *s, size_t n)
{
	size_t max = f->set->o.maxline;
	if (n > max) {
		n = max;
		f->st.cut++;
	}
	while (n > 0 && s[n - 1] == '\r')
		n--;
	f->st.lines++;
	f->cb(s, n, -1.0, f->arg);
}

/* Splits the `n` new bytes at buf[blen..] into lines. */
static void of_split(struct filesrc *f, struct ofile *o, size_t n)
{
	char *p = o->buf;
	size_t end = o->blen + n, start = 0, scan = o->blen;
	const char *nl;
	while (scan < end && (nl = memchr(p + scan, '\n', end - scan)) != NULL) {
		size_t lend = (size_t)(nl - p);
		if (o->skipping)
			o->skipping = 0;
		else
			emit(f, p + start, lend - start);
		start = scan = lend + 1;
		o->off = o->rpos - (end - start);
	}
	size_t rest = end - start;
	if (o->skipping) {
		o->blen = 0;
		return;
	}
	if (rest && start)
		memmove(p, p + start, rest);
	o->blen = rest;
	if (rest >= f->set->o.maxline) {
		emit(f, p, rest);
		o->skipping = 1;
		o->blen = 0;
	}
}

/* Reads until EOF (1), budget exhausted (0) or error (-1). */
static int of_read(struct filesrc *f, struct ofile *o, size_t *budget)
{
	size_t cap = f->set->o.maxline + CHUNK;
	if (!o->buf)
		o->buf = xmalloc(cap);
	for (;;) {
		if (*budget == 0)
			return 0;
		/* at most CHUNK per read: the buffer's pages beyond the longest
		 * partial line plus one chunk are never touched */
		size_t want = cap - o->blen;
		if (want > CHUNK)
			want = CHUNK;
		if (want > *budget)
			want = *budget;
		ssize_t n = pread(o->fd, o->buf + o->blen, want, (off_t)o->rpos);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 1;
		*budget -= (size_t)n;
		o->rpos += (uint64_t)n;
		of_split(f, o, (size_t)n);
	}
}

/* An inode that is done: its unfinished last line is delivered as it is. */
static void of_finish(struct filesrc *f, struct ofile *o)
{
	if (o->blen && !o->skipping)
		emit(f, o->buf, o->blen);
	o->off = o->rpos;
	o->blen = 0;
}

static void of_start_at(struct ofile *o, uint64_t off)
{
	o->off = o->rpos = off;
	o->blen = 0;
	o->skipping = 0;
}

static int of_open(struct filesrc *f, struct ofile *o, const char *path, int watch)
{
	of_reset(o);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -1;
	}
	o->fd = fd;
	o->dev = st.st_dev;
	o->ino = st.st_ino;
	if (watch)
		o->wd = set_watch(f->set, f, path, FILE_MASK);
	return 0;
}

static void retire_cur(struct filesrc *f)
{
	if (f->nold == MAX_OLD) {
		of_finish(f, &f->old[0]);
		of_close(f, &f->old[0]);
		memmove(&f->old[0], &f->old[1], (MAX_OLD - 1) * sizeof f->old[0]);
		f->nold--;
	}
	f->cur.close_at = loop_now_ms() + f->set->o.keep_old_ms;
	f->old[f->nold++] = f->cur;
	memset(&f->cur, 0, sizeof f->cur);
	f->cur.fd = -1;
	f->cur.wd = -1;
	f->st.rotations++;
}

/* ---- directory watch ---- */

static void ensure_dir_watch(struct filesrc *f)
{
	if (f->dir_wd >= 0 && !f->dir_stale && !strcmp(f->wdir, f->parent))
		return;
	/* nearest existing ancestor of the parent, and the name below it */
	char *d = xstrdup(f->parent);
	char *want = xstrdup(f->base);
	struct stat st;
	while (stat(d, &st) < 0 || !S_ISDIR(st.st_mode)) {
		char *slash = strrchr(d, '/');
		if (!slash || slash == d) {
			free(want);
			want = xstrdup(d[0] == '/' && d[1] ? d + 1 : d);
			d[1] = '\0';
			d[0] = '/';
			break;
		}
		free(want);
		want = xstrdup(slash + 1);
		*slash = '\0';
	}
	if (f->dir_wd >= 0 && !f->dir_stale && f->wdir && !strcmp(f->wdir, d) &&
	    !strcmp(f->want, want)) {
		free(d);
		free(want);
		return;
	}
	set_unwatch(f->set, f, f->dir_wd);
	free(f->wdir);
	free(f->want);
	f->wdir = d;
	f->want = want;
	f->dir_stale = 0;
	f->dir_wd = set_watch(f->set, f, d, DIR_MASK);
}

/* ---- the check ---- */

static void fs_check(struct filesrc *f);

static void cont_cb(struct loop *l, void *arg)
{
	(void)l;
	struct filesrc *f = arg;
	f->cont_timer = 0;
	fs_check(f);
}

static void old_cb(struct loop *l, void *arg)
{
	(void)l;
	struct filesrc *f = arg;
	f->old_timer = 0;
	fs_check(f);
}

static void arm_old_timer(struct filesrc *f, uint64_t now)
{
	if (f->old_timer || !f->nold)
		return;
	uint64_t at = f->old[0].close_at;
	for (int i = 1; i < f->nold; i++)
		if (f->old[i].close_at < at)
			at = f->old[i].close_at;
	f->old_timer = loop_timer_add(f->set->loop, at > now ? at - now + 1 : 1, old_cb, f);
}

static void check_truncation(struct filesrc *f)
{
	struct ofile *o = &f->cur;
	struct stat st;
	if (fstat(o->fd, &st) < 0)
		return;
	int trunc = (uint64_t)st.st_size < o->rpos;
	if (!trunc && o->fplen)
		trunc = !fp_matches(o->fd, o->fp, o->fplen);
	if (trunc) {
		/* The lines in the copy were delivered already; a partial line
		 * pending from before the truncation went with the copy. */
		of_start_at(o, 0);
		o->fp = 0;
		o->fplen = 0;
		f->st.truncations++;
	}
	if (!o->fplen && st.st_size > 0)
		filesrc_fingerprint(o->fd, &o->fp, &o->fplen);
}

static void fs_read(struct filesrc *f);

/* Every delivery happens in here, so `done` marks the end of a wakeup's lines. */
static void fs_check(struct filesrc *f)
{
	fs_read(f);
	if (f->done)
		f->done(f->arg);
}

static void fs_read(struct filesrc *f)
{
	struct filesrc_set *s = f->set;
	size_t budget = s->o.max_per_turn;
	uint64_t now = loop_now_ms();
	f->dirty = 0;

	for (int i = 0; i < f->nold;) {
		struct ofile *o = &f->old[i];
		int r = of_read(f, o, &budget);
		if (r != 0 && now >= o->close_at) {
			of_finish(f, o);
			of_close(f, o);
			memmove(&f->old[i], &f->old[i + 1], (size_t)(f->nold - i - 1) * sizeof *o);
			f->nold--;
			continue;
		}
		i++;
	}
	if (budget == 0)
		goto more;

	ensure_dir_watch(f);
	struct stat st;
	f->present = stat(f->abs, &st) == 0 && S_ISREG(st.st_mode);
	if (f->cur.fd >= 0 && (!f->present || st.st_dev != f->cur.dev || st.st_ino != f->cur.ino)) {
		/* rotated away or deleted: finish what the old inode has first */
		int r = of_read(f, &f->cur, &budget);
		if (r == 0)
			goto more;
		retire_cur(f);
	}
	if (f->cur.fd < 0 && f->present) {
		if (of_open(f, &f->cur, f->abs, 1) < 0)
			f->present = 0;
	}
	if (f->cur.fd >= 0) {
		check_truncation(f);
		if (of_read(f, &f->cur, &budget) == 0)
			goto more;
	}
	arm_old_timer(f, now);
	return;
more:
	arm_old_timer(f, now);
	if (!f->cont_timer)
		f->cont_timer = loop_timer_add(s->loop, 0, cont_cb, f);
}

/* ---- inotify and poll ---- */

static void on_inotify(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)events;
	struct filesrc_set *s = arg;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				for (size_t i = 0; i < s->nf; i++)
					s->f[i]->dirty = 1;
				continue;
			}
			for (size_t i = 0; i < s->nw; i++) {
				if (s->w[i].wd != ev->wd)
					continue;
				struct filesrc *f = s->w[i].f;
				if (ev->mask & IN_IGNORED) {
					/* the kernel dropped the watch (inode gone) */
					if (f->dir_wd == ev->wd)
						f->dir_wd = -1;
					if (f->cur.wd == ev->wd)
						f->cur.wd = -1;
					for (int k = 0; k < f->nold; k++)
						if (f->old[k].wd == ev->wd)
							f->old[k].wd = -1;
					s->w[i--] = s->w[--s->nw];
					f->dirty = 1;
					continue;
				}
				if (ev->wd == f->dir_wd) {
					if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF))
						f->dir_stale = 1;
					else if (ev->len && strcmp(ev->name, f->want) != 0)
						continue;
				}
				f->dirty = 1;
			}
		}
	}
	for (size_t i = 0; i < s->nf; i++)
		if (s->f[i]->dirty)
			fs_check(s->f[i]);
}

static void on_poll(struct loop *l, void *arg)
{
	struct filesrc_set *s = arg;
	s->poll_timer = loop_timer_add(l, s->o.poll_ms, on_poll, s);
	for (size_t i = 0; i < s->nf; i++)
		fs_check(s->f[i]);
}

struct filesrc_set *filesrc_set_new(struct loop *l, const struct filesrc_opts *opts, int *err)
{
	int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ifd < 0) {
		if (err)
			*err = -errno;
		return NULL;
	}
	struct filesrc_set *s = xcalloc(1, sizeof *s);
	s->loop = l;
	s->ifd = ifd;
	if (opts)
		s->o = *opts;
	if (!s->o.maxline)
		s->o.maxline = DEF_MAXLINE;
	if (!s->o.max_per_turn)
		s->o.max_per_turn = DEF_PER_TURN;
	if (!s->o.poll_ms)
		s->o.poll_ms = DEF_POLL_MS;
	if (!s->o.keep_old_ms)
		s->o.keep_old_ms = DEF_KEEP_OLD_MS;
	int r = loop_fd_add(l, ifd, LOOP_READ, on_inotify, s);
	if (r < 0) {
		close(ifd);
		free(s);
		if (err)
			*err = r;
		return NULL;
	}
	s->poll_timer = loop_timer_add(l, s->o.poll_ms, on_poll, s);
	return s;
}

struct filesrc_set *filesrc_set_free(struct filesrc_set *s)
{
	if (!s)
		return NULL;
	while (s->nf)
		filesrc_free(s->f[s->nf - 1]);
	loop_timer_del(s->loop, s->poll_timer);
	loop_fd_del(s->loop, s->ifd);
	close(s->ifd);
	free(s->w);
	free(s->f);
	free(s);
	return NULL;
}

/* ---- starting ---- */

static char *absolute(const char *path)
{
	if (path[0] == '/')
		return xstrdup(path);
	char *cwd = getcwd(NULL, 0);
	char *r = xasprintf("%s/%s", cwd ? cwd : ".", path);
	free(cwd);
	return r;
}

static int compressed_name(const char *name)
{
	static const char *ext[] = {".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".Z", ".zip"};
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
		size_t e = strlen(ext[i]);
		if (n > e && !strcmp(name + n - e, ext[i]))
			return 1;
	}
	return 0;
}

/* After a restart: the saved file was rotated while we were away. Finds a
 * sibling BASE.* / BASE-* with the saved fingerprint that still holds lines
 * past the saved offset and queues it as an old inode. */
static void resume_rotated(struct filesrc *f, const struct filesrc_pos *pos)
{
	DIR *d = opendir(f->parent);
	if (!d)
		return;
	size_t bl = strlen(f->base);
	struct dirent *de;
	int tried = 0;
	char *best = NULL;
	while ((de = readdir(d)) != NULL && tried < 64) {
		const char *n = de->d_name;
		if (strncmp(n, f->base, bl) != 0 || !strchr(".-_", n[bl]) || !n[bl] ||
		    compressed_name(n))
			continue;
		tried++;
		char *p = xasprintf("%s/%s", f->parent, n);
		int fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    (uint64_t)st.st_size >= pos->offset && fp_matches(fd, pos->fp, pos->fplen) &&
		    (!best || st.st_ino == pos->inode)) {
			free(best);
			best = p;
			p = NULL;
		}
		if (fd >= 0)
			close(fd);
		free(p);
	}
	closedir(d);
	if (!best)
		return;
	struct ofile *o = &f->old[f->nold];
	if (of_open(f, o, best, 1) == 0) {
		of_start_at(o, pos->offset);
		o->fp = pos->fp;
		o->fplen = pos->fplen;
		o->close_at = loop_now_ms() + f->set->o.keep_old_ms;
		f->nold++;
	}
	free(best);
}

/* Offset just after the last '\n' (searched in the last 64 KiB), so that a line
 * being written when we start is delivered whole. */
static uint64_t tail_offset(int fd, uint64_t size)
{
	uint64_t from = size > CHUNK ? size - CHUNK : 0;
	char *b = xmalloc(CHUNK);
	ssize_t n = pread_full(fd, b, (size_t)(size - from), from);
	uint64_t r = size;
	if (n > 0) {
		const char *nl = memrchr(b, '\n', (size_t)n);
		if (nl)
			r = from + (uint64_t)(nl - b) + 1;
		else if (from == 0)
			r = 0;
	}
	free(b);
	return r;
}

static void apply_start(struct filesrc *f, const struct filesrc_start *start)
{
	struct ofile *o = &f->cur;
	const struct filesrc_pos *pos = start ? start->pos : NULL;
	if (pos && pos->fplen) {
		if (o->fd >= 0) {
			struct stat st;
			if (fstat(o->fd, &st) == 0 && (uint64_t)st.st_size >= pos->offset &&
			    fp_matches(o->fd, pos->fp, pos->fplen)) {
				of_start_at(o, pos->offset);
				o->fp = pos->fp;
				o->fplen = pos->fplen;
				return;
			}
		}
		resume_rotated(f, pos);
		if (f->nold)
			return;   /* the file at the path is newer than the position: read it all */
	} else if (pos) {
		return;           /* saved while empty: everything there now is new */
	}
	if (o->fd < 0 || !start)
		return;
	struct stat st;
	if (fstat(o->fd, &st) < 0)
		return;
	if (start->mode == FILESRC_TAIL) {
		of_start_at(o, tail_offset(o->fd, (uint64_t)st.st_size));
	} else if (start->mode == FILESRC_SINCE && start->date_cb) {
		int64_t off = filesrc_seek_time(o->fd, (uint64_t)st.st_size, start->since,
						start->date_cb, start->date_arg);
		if (off > 0)
			of_start_at(o, (uint64_t)off);
	}
}

struct filesrc *filesrc_new(struct filesrc_set *s, const char *path,
			    const struct filesrc_start *start, src_line_cb cb, void *arg)
{
	struct filesrc *f = xcalloc(1, sizeof *f);
	f->set = s;
	f->path = xstrdup(path);
	f->abs = absolute(path);
	/* drop trailing slashes so the last component is a name */
	size_t n = strlen(f->abs);
	while (n > 1 && f->abs[n - 1] == '/')
		f->abs[--n] = '\0';
	char *slash = strrchr(f->abs, '/');
	f->base = xstrdup(slash + 1);
	f->parent = slash == f->abs ? xstrdup("/") : xstrndup(f->abs, (size_t)(slash - f->abs));
	f->dir_wd = -1;
	of_reset(&f->cur);
	for (int i = 0; i < MAX_OLD; i++)
		of_reset(&f->old[i]);
	f->cb = cb;
	f->arg = arg;

	ensure_dir_watch(f);
	struct stat st;
	f->present = stat(f->abs, &st) == 0 && S_ISREG(st.st_mode);
	if (f->present && of_open(f, &f->cur, f->abs, 1) < 0)
		f->present = 0;
	apply_start(f, start);
	if (f->cur.fd >= 0 && !f->cur.fplen)
		filesrc_fingerprint(f->cur.fd, &f->cur.fp, &f->cur.fplen);

	s->f = xgrow(s->f, &s->capf, s->nf, sizeof *s->f);
	s->f[s->nf++] = f;
	f->cont_timer = loop_timer_add(s->loop, 0, cont_cb, f);
	return f;
}

struct filesrc *filesrc_free(struct filesrc *f)
{
	if (!f)
		return NULL;
	struct filesrc_set *s = f->set;
	for (size_t i = 0; i < s->nf; i++)
		if (s->f[i] == f) {
			memmove(&s->f[i], &s->f[i + 1], (s->nf - i - 1) * sizeof *s->f);
			s->nf--;
			break;
		}
	if (f->cont_timer)
		loop_timer_del(s->loop, f->cont_timer);
	if (f->old_timer)
		loop_timer_del(s->loop, f->old_timer);
	for (int i = 0; i < f->nold; i++)
		of_close(f, &f->old[i]);
	of_close(f, &f->cur);
	set_unwatch(s, f, f->dir_wd);
	free(f->path);
	free(f->abs);
	free(f->parent);
	free(f->base);
	free(f->wdir);
	free(f->want);
	free(f);
	return NULL;
}

void filesrc_get_pos(const struct filesrc *f, struct filesrc_pos *out)
{
	out->path = f->path;
	if (f->cur.fd < 0) {
		out->inode = 0;
		out->offset = 0;
		out->fp = 0;
		out->fplen = 0;
		return;
	}
	out->inode = (uint64_t)f->cur.ino;
	out->fp = f->cur.fp;
	out->fplen = f->cur.fplen;
	/* a position without fingerprint can only mean "nothing read yet" */
	out->offset = f->cur.fplen ? f->cur.off : 0;
}

void filesrc_set_done(struct filesrc *f, void (*done)(void *arg))
{
	f->done = done;
}

void filesrc_poke(struct filesrc *f)
{
	fs_check(f);
}

void filesrc_get_stats(const struct filesrc *f, struct filesrc_stats *st)
{
	*st = f->st;
	st->open_old = f->nold;
	st->present = f->present;
}
