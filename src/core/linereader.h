/*
 * linereader - splits a file descriptor's bytes into lines, fast.
 *
 * Reads in large blocks and hands out pointers into its own buffer, so a line
 * costs no allocation. Lines longer than `maxline` are cut at maxline bytes
 * (the rest up to the newline is dropped and counted) so that one endless line
 * cannot grow memory without bound. The trailing "\n" and any "\r" before it
 * are removed; NUL bytes are kept (lengths are authoritative).
 */
#ifndef MXJAIL_CORE_LINEREADER_H
#define MXJAIL_CORE_LINEREADER_H

#include <stddef.h>

struct linereader {
	int fd;
	char *buf;
	size_t cap, start, end;
	size_t maxline;
	int eof;
	int skipping;             /* inside the dropped tail of an over-long line */
	unsigned long truncated;  /* lines cut to maxline */
};

/* maxline 0 = 16 MiB. */
void linereader_init(struct linereader *r, int fd, size_t maxline);
/* Returns 1 and sets *line and *len (valid until the next call), 0 at end of input
 * (a last line without newline is returned before that), -1 on read error
 * (errno set). */
int linereader_next(struct linereader *r, const char **line, size_t *len);
void linereader_free(struct linereader *r);

#endif
