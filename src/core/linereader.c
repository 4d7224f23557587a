/*
 * linereader - block-buffered line splitting (see linereader.h).
 */
#include "core/linereader.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK (256 * 1024)

void linereader_init(struct linereader *r, int fd, size_t maxline)
{
	memset(r, 0, sizeof *r);
	r->fd = fd;
	r->maxline = maxline ? maxline : 16u * 1024 * 1024;
	r->cap = BLOCK * 4;
	r->buf = xmalloc(r->cap);
}

static size_t trim_cr(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	return n;
}

int linereader_next(struct linereader *r, const char **line, size_t *len)
{
	for (;;) {
		char *s = r->buf + r->start;
		size_t avail = r->end - r->start;
		char *nl = avail ? memchr(s, '\n', avail) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - s);
			r->start += n + 1;
			if (r->skipping) {
				r->skipping = 0;
				continue;
			}
			*line = s;
			*len = trim_cr(s, n);
			return 1;
		}
		if (avail >= r->maxline && !r->skipping) {
			/* Hand out the first maxline bytes, drop the rest of this line. */
			r->start += avail;
			r->skipping = 1;
			r->truncated++;
			*line = s;
			*len = r->maxline;
			return 1;
		}
		if (r->skipping) {
			r->start = r->end = 0;
			avail = 0;
		}
		if (r->eof) {
			if (avail == 0)
				return 0;
			r->start = r->end;
			*line = s;
			*len = trim_cr(s, avail);
			return 1;
		}
		/* Make room: move the partial line to the front, grow if needed. */
		if (r->start > 0) {
			memmove(r->buf, r->buf + r->start, avail);
			r->start = 0;
			r->end = avail;
		}
		if (r->cap - r->end < BLOCK) {
			r->cap = r->cap * 2;
			r->buf = xrealloc(r->buf, r->cap);
		}
		ssize_t got;
		do
			got = read(r->fd, r->buf + r->end, r->cap - r->end);
		while (got < 0 && errno == EINTR);
		if (got < 0)
			return -1;
		if (got == 0)
			r->eof = 1;
		r->end += (size_t)got;
	}
}

void linereader_free(struct linereader *r)
{
	free(r->buf);
	r->buf = NULL;
}
