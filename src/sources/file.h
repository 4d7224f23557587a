/*
 * file - follows log files by path through every rotation style.
 *
 * INTERFACE
 *	A filesrc_set owns one inotify instance and one safety-net poll timer,
 *	shared by all its followers, and plugs them into the event loop. A
 *	filesrc follows one path: it reads with its own offset and delivers only
 *	complete lines (a partial last line waits for its newline; a line longer
 *	than `maxline` is cut to maxline bytes and the rest up to its newline is
 *	dropped). Reads are bounded per wakeup (`max_per_turn` bytes); a follower
 *	with more to read reschedules itself on a 0 ms timer so nothing starves.
 *
 * ROTATION
 *	Watched: the file's inode (modify, attrib, move, delete) and its directory
 *	(create, move, delete of the name), or, while the directory is missing,
 *	the nearest existing ancestor. Every wakeup re-stats the path:
 *	- another inode at the path (rename+create, delete+recreate): the old
 *	  descriptor is drained to its end first and kept `keep_old_ms` longer,
 *	  because writers finish on the inode they have open; the new file is read
 *	  from its start;
 *	- the same inode but smaller than what was read, or its first line
 *	  changed (copytruncate, also when the file regrew past the old offset
 *	  before we looked): read again from 0;
 *	- the path is gone: the old inode is drained and kept the same way, and
 *	  the file is read from 0 when it appears again.
 *	A file's identity is its first-line fingerprint (64-bit FNV-1a of the
 *	first line, at most FILESRC_FP_MAX bytes, newline included): ext4 hands
 *	a freed inode number to the next new file at once, so an inode number
 *	alone says nothing after a restart.
 *
 * POSITIONS
 *	filesrc_get_pos() describes how far complete lines were delivered. The
 *	caller stores it and passes it back in filesrc_start.pos on restart: when
 *	the file at the path still has the same fingerprint and is long enough,
 *	reading resumes at the offset; when it was rotated meanwhile, a sibling
 *	`BASE.*` with that fingerprint (not compressed) is read from the offset
 *	and the new file from its start. Without a usable position the start mode
 *	decides: from the start, at the end, or at the first line dated at or
 *	after a time (binary search with a caller-given date parser).
 *
 * OWNERSHIP
 *	The set and followers own their memory and descriptors; free followers
 *	before their set. Callbacks may not free the follower that is calling.
 */
#ifndef MXJAIL_SOURCES_FILE_H
#define MXJAIL_SOURCES_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sources/source.h"

struct loop;
struct filesrc_set;
struct filesrc;

#define FILESRC_FP_MAX 256

struct filesrc_opts {
	size_t maxline;        /* 0 = 64 KiB */
	size_t max_per_turn;   /* bytes read per wakeup and follower; 0 = 256 KiB */
	unsigned poll_ms;      /* safety-net stat interval; 0 = 1000 */
	unsigned keep_old_ms;  /* how long a rotated-away inode is still read; 0 = 5000 */
};

/* The saved position: a plain value the caller may copy anywhere. In output
 * from filesrc_get_pos(), `path` points into the follower (valid while it
 * lives). fplen 0 means "no fingerprint yet" (empty file or no complete first
 * line), which is only consistent with offset 0. */
struct filesrc_pos {
	const char *path;
	uint64_t inode;
	uint64_t offset;
	uint64_t fp;
	uint32_t fplen;
};

/* Returns the time of a line (seconds since the epoch) or a negative value when
 * the line has no date. */
typedef double (*filesrc_date_cb)(const char *line, size_t len, void *arg);

enum filesrc_mode {
	FILESRC_HEAD,   /* read the file from its start */
	FILESRC_TAIL,   /* only lines written from now on */
	FILESRC_SINCE,  /* lines dated at or after `since` (needs date_cb) */
};

struct filesrc_start {
	enum filesrc_mode mode;
	const struct filesrc_pos *pos;  /* saved position or NULL; wins when it still fits */
	double since;
	filesrc_date_cb date_cb;
	void *date_arg;
};

/* NULL opts = defaults. Returns NULL with *err set (-errno) if inotify fails. */
struct filesrc_set *filesrc_set_new(struct loop *l, const struct filesrc_opts *opts, int *err);
/* Returns NULL (for `s = filesrc_set_free(s)`). */
struct filesrc_set *filesrc_set_free(struct filesrc_set *s);

/* Starts following `path` (absolute or relative, need not exist yet). The
 * start decides where reading begins for the file found now; a file that
 * appears later is always read from its start. Lines already there are
 * delivered from the loop, not from inside this call. */
struct filesrc *filesrc_new(struct filesrc_set *s, const char *path,
			    const struct filesrc_start *start, src_line_cb cb, void *arg);
struct filesrc *filesrc_free(struct filesrc *f);
/* done(arg) runs after every wakeup that may have delivered lines (with the
 * line callback's arg): a caller that batches lines finishes them there. */
void filesrc_set_done(struct filesrc *f, void (*done)(void *arg));

void filesrc_get_pos(const struct filesrc *f, struct filesrc_pos *out);
/* Reads what is available now (same as a wakeup; bounded by max_per_turn). */
void filesrc_poke(struct filesrc *f);

struct filesrc_stats {
	unsigned long lines, cut, rotations, truncations;
	int open_old;   /* rotated-away inodes still open */
	int present;    /* the path currently resolves to a regular file */
};
void filesrc_get_stats(const struct filesrc *f, struct filesrc_stats *st);

/* First-line fingerprint of an open file: 1 and *fp, *fplen set, 0 when the file
 * has no complete first line yet (and is shorter than FILESRC_FP_MAX), -errno. */
int filesrc_fingerprint(int fd, uint64_t *fp, uint32_t *fplen);

/* Offset of the first line whose date is >= since in the first `size` bytes of
 * fd (lines without a date belong to the line before them). Assumes dates
 * grow through the file, as in every log; returns `size` when no line is new
 * enough, -errno on read errors. Reads a few blocks per probe (binary search). */
int64_t filesrc_seek_time(int fd, uint64_t size, double since, filesrc_date_cb cb, void *arg);

#endif
